/* table.c: the chunk table, STORE/chunks: one sorted array of fixed-size
 * entries (chunk id -> pack, offset, sizes) with a 256-way fanout, mapped
 * read-only and searched in place, so opening a store costs O(1) in chunks.
 * A writer's commit merges its new entries with the mapped table into a temp
 * file and renames it over the old one.
 */
#include "store_internal.h"

#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>

static size_t table_body_offset_entries(uint32_t pack_count)
{
	return sizeof(struct table_header) + (size_t)pack_count * sizeof(struct table_pack) +
	       FANOUT_SIZE * sizeof(uint32_t);
}

static uint64_t table_header_check(const struct table_header *header)
{
	return store_checksum(header, offsetof(struct table_header, check));
}

static int table_check_layout(const struct table_header *header, size_t file_size, char *msg,
			      size_t msg_size)
{
	if (memcmp(header->magic, TABLE_MAGIC, 8) != 0) {
		cairn_format(msg, msg_size, "is not a cairn chunk table (bad magic)");
		return -EBADMSG;
	}
	if (header->check != table_header_check(header)) {
		cairn_format(msg, msg_size, "has a damaged header (checksum mismatch)");
		return -EBADMSG;
	}
	if (header->version != TABLE_VERSION) {
		cairn_format(msg, msg_size, "has format version %u; this cairn reads version %u",
			     header->version, TABLE_VERSION);
		return header->version > TABLE_VERSION ? -EOPNOTSUPP : -EBADMSG;
	}
	if (header->header_size != sizeof(struct table_header) ||
	    header->entry_count > file_size / sizeof(struct table_entry) ||
	    header->pack_count > file_size / sizeof(struct table_pack) ||
	    table_body_offset_entries(header->pack_count) +
			    header->entry_count * sizeof(struct table_entry) !=
		    file_size) {
		cairn_format(msg, msg_size, "has a size (%zu bytes) that does not match its header",
			     file_size);
		return -EBADMSG;
	}
	return 0;
}

/* The fanout and pack list are small; checking them at load lets lookups
 * trust their bounds. */
static int table_check_index(const struct chunk_table *table, char *msg, size_t msg_size)
{
	uint32_t prev = 0;

	for (size_t i = 0; i < FANOUT_SIZE; i++) {
		if (table->fanout[i] < prev || table->fanout[i] > table->entry_count) {
			cairn_format(msg, msg_size, "has a damaged fanout at %zu", i);
			return -EBADMSG;
		}
		prev = table->fanout[i];
	}
	if (prev != table->entry_count) {
		cairn_format(msg, msg_size, "has a fanout that does not add up");
		return -EBADMSG;
	}
	for (size_t i = 1; i < table->pack_count; i++) {
		if (table->packs[i].pack_num <= table->packs[i - 1].pack_num) {
			cairn_format(msg, msg_size, "has an unsorted pack list");
			return -EBADMSG;
		}
	}
	if (table->pack_count > 0 &&
	    table->packs[table->pack_count - 1].pack_num >= table->next_pack_num) {
		cairn_format(msg, msg_size, "has a pack numbered past its next pack number");
		return -EBADMSG;
	}
	return 0;
}

static int table_map(int fd, size_t size, struct chunk_table *table, char *msg, size_t msg_size)
{
	if (size < sizeof(struct table_header)) {
		cairn_format(msg, msg_size, "is truncated (%zu bytes)", size);
		return -EBADMSG;
	}
	void *map = mmap(NULL, size, PROT_READ, MAP_SHARED, fd, 0);
	if (map == MAP_FAILED) {
		cairn_format(msg, msg_size, "cannot be mapped: %s", strerror(errno));
		return -errno;
	}
	table->map = map;
	table->map_size = size;
	table->header = map;
	/* The load reads only the header, pack list and fanout. Cold, a fault
	 * there would read around it (up to the disk's read_ahead_kb, 8 MB on
	 * some: most of a large table) before a mount could answer its first
	 * stat; read just those pages, and let lookups read ahead as usual. */
	(void)madvise(map, size, MADV_RANDOM);
	int r = table_check_layout(table->header, size, msg, msg_size);
	if (r == 0) {
		const uint8_t *base = map;
		table->entry_count = table->header->entry_count;
		table->pack_count = table->header->pack_count;
		table->next_pack_num = table->header->next_pack_num;
		table->packs = (const struct table_pack *)(base + sizeof(struct table_header));
		table->fanout = (const uint32_t *)(table->packs + table->pack_count);
		table->entries = (const struct table_entry *)(base + table_body_offset_entries(
									     table->pack_count));
		r = table_check_index(table, msg, msg_size);
	}
	(void)madvise(map, size, MADV_NORMAL);
	return r;
}

int table_load(int dirfd, struct chunk_table **ret, char *msg, size_t msg_size)
{
	char why[256];
	struct stat st;

	_cleanup_close_ int fd = cairn_open_file_beneath(dirfd, TABLE_NAME, O_RDONLY, 0);
	if (fd < 0) {
		cairn_format(msg, msg_size, "chunk table %s: %s", TABLE_NAME,
			     cairn_path_strerror(fd));
		return fd == -ENOENT ? -EBADMSG : fd;
	}
	if (fstat(fd, &st) < 0)
		return -errno;
	struct chunk_table *table = calloc(1, sizeof(*table));
	if (!table)
		return -ENOMEM;
	int r = table_map(fd, (size_t)st.st_size, table, why, sizeof(why));
	if (r < 0) {
		cairn_format(msg, msg_size, "chunk table %s %s", TABLE_NAME, why);
		table_free(table);
		return r;
	}
	*ret = table;
	return 0;
}

void table_free(struct chunk_table *table)
{
	if (!table)
		return;
	if (table->map)
		munmap(table->map, table->map_size);
	free(table);
}

const struct table_entry *table_find(const struct chunk_table *table, const struct cairn_id *id)
{
	uint8_t first = id->bytes[0];
	size_t lo = first ? table->fanout[first - 1] : 0, hi = table->fanout[first];

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int c = memcmp(table->entries[mid].chunk_id, id->bytes, CAIRN_ID_SIZE);
		if (c == 0)
			return &table->entries[mid];
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return NULL;
}

const struct table_pack *table_find_pack(const struct chunk_table *table, uint32_t pack_num)
{
	size_t lo = 0, hi = table->pack_count;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (table->packs[mid].pack_num == pack_num)
			return &table->packs[mid];
		if (table->packs[mid].pack_num < pack_num)
			lo = mid + 1;
		else
			hi = mid;
	}
	return NULL;
}

int table_check_body(const struct chunk_table *table, char *msg, size_t msg_size)
{
	const uint8_t *body = (const uint8_t *)table->map + sizeof(struct table_header);
	size_t body_size = table->map_size - sizeof(struct table_header);

	if (store_checksum(body, body_size) != table->header->body_checksum) {
		cairn_format(msg, msg_size, "chunk table %s: body checksum mismatch", TABLE_NAME);
		return -EBADMSG;
	}
	for (uint64_t i = 0; i < table->entry_count; i++) {
		const struct table_entry *entry = &table->entries[i];
		uint8_t first = entry->chunk_id[0];
		uint32_t lo = first ? table->fanout[first - 1] : 0;
		if (i < lo || i >= table->fanout[first] ||
		    (i > 0 &&
		     memcmp(table->entries[i - 1].chunk_id, entry->chunk_id, CAIRN_ID_SIZE) >= 0)) {
			cairn_format(msg, msg_size, "chunk table %s: entry %llu is out of order",
				     TABLE_NAME, (unsigned long long)i);
			return -EBADMSG;
		}
	}
	return 0;
}

/* ---- writing ---- */

struct table_out {
	int fd;
	uint8_t *buf;
	size_t len, cap;
	struct store_checksum_stream checksum;
	int error;
};

static void out_flush(struct table_out *out)
{
	if (out->error == 0 && out->len > 0)
		out->error = cairn_write_all(out->fd, out->buf, out->len);
	out->len = 0;
}

static void out_put(struct table_out *out, const void *data, size_t size)
{
	store_checksum_stream_update(&out->checksum, data, size);
	if (out->len + size > out->cap)
		out_flush(out);
	memcpy(out->buf + out->len, data, size);
	out->len += size;
}

/* Walks old and new in id order; a new entry replaces an old one with the
 * same id. Calls emit for each entry of the result. */
static uint64_t merge_entries(const struct chunk_table *old, const struct table_build *build,
			      void (*emit)(void *ctx, const struct table_entry *entry), void *ctx)
{
	uint64_t i = 0, count = 0;
	size_t j = 0;
	uint64_t old_count = old ? old->entry_count : 0;

	while (i < old_count || j < build->new_count) {
		const struct table_entry *entry;
		if (i < old_count && build->old_dropped &&
		    (build->old_dropped[i / 64] >> (i % 64) & 1)) {
			i++;
			continue;
		}
		if (j == build->new_count) {
			entry = &old->entries[i++];
		} else if (i == old_count) {
			entry = build->new_entries[j++];
		} else {
			int c = memcmp(old->entries[i].chunk_id, build->new_entries[j]->chunk_id,
				       CAIRN_ID_SIZE);
			if (c == 0)
				i++;
			entry = c < 0 ? &old->entries[i++] : build->new_entries[j++];
		}
		emit(ctx, entry);
		count++;
	}
	return count;
}

static void count_fanout(void *ctx, const struct table_entry *entry)
{
	uint32_t *fanout = ctx;

	fanout[entry->chunk_id[0]]++;
}

static void emit_entry(void *ctx, const struct table_entry *entry)
{
	out_put(ctx, entry, sizeof(*entry));
}

static int table_write(int dirfd, const struct chunk_table *old, const struct table_build *build,
		       char *msg, size_t msg_size, bool *ret_renamed)
{
	char tmp_name[64];
	struct table_header header = {.version = TABLE_VERSION,
				      .header_size = sizeof(struct table_header)};
	struct table_out out = {.cap = 1u << 20};
	uint32_t fanout[FANOUT_SIZE] = {0};
	int r;

	*ret_renamed = false;
	uint64_t count = merge_entries(old, build, count_fanout, fanout);
	for (size_t i = 1; i < FANOUT_SIZE; i++)
		fanout[i] += fanout[i - 1];
	memcpy(header.magic, TABLE_MAGIC, 8);
	header.entry_count = count;
	header.pack_count = (uint32_t)build->new_pack_count;
	for (uint32_t i = 0; old && i < old->pack_count; i++)
		header.pack_count += !(build->old_pack_dropped && build->old_pack_dropped[i]);
	header.next_pack_num = build->next_pack_num;

	_cleanup_free_ uint8_t *buf = out.buf = malloc(out.cap);
	if (!buf)
		return -ENOMEM;
	_cleanup_close_ int fd = out.fd =
		cairn_tmp_open(dirfd, "tmp-chunks-", "", 0600, tmp_name, sizeof(tmp_name));
	if (fd < 0) {
		cairn_format(msg, msg_size, "creating a temp chunk table tmp-chunks-*: %s",
			     strerror(-fd));
		return fd;
	}
	store_checksum_stream_init(&out.checksum);
	out.error = cairn_write_all(fd, &header, sizeof(header)); /* placeholder */
	for (uint32_t i = 0; old && i < old->pack_count; i++)
		if (!(build->old_pack_dropped && build->old_pack_dropped[i]))
			out_put(&out, &old->packs[i], sizeof(struct table_pack));
	if (build->new_pack_count)
		out_put(&out, build->new_packs, build->new_pack_count * sizeof(struct table_pack));
	out_put(&out, fanout, sizeof(fanout));
	merge_entries(old, build, emit_entry, &out);
	out_flush(&out);
	header.body_checksum = store_checksum_stream_final(&out.checksum);
	header.check = table_header_check(&header);
	r = out.error;
	if (r == 0)
		r = cairn_pwrite_all(fd, &header, sizeof(header), 0);
	if (r < 0) {
		cairn_format(msg, msg_size, "writing the chunk table to %s: %s", tmp_name,
			     strerror(-r));
		unlinkat(dirfd, tmp_name, 0);
		return r;
	}
	r = cairn_commit_file(dirfd, fd, tmp_name, TABLE_NAME, ret_renamed);
	if (r < 0 && *ret_renamed)
		cairn_format(msg, msg_size,
			     "the chunk table %s is in place, but the fsync of the store directory "
			     "failed: %s",
			     TABLE_NAME, strerror(-r));
	else if (r < 0)
		cairn_format(msg, msg_size, "committing the chunk table %s as %s: %s", tmp_name,
			     TABLE_NAME, strerror(-r));
	if (r < 0)
		unlinkat(dirfd, tmp_name, 0);
	return r;
}

int table_write_merged(int dirfd, const struct chunk_table *old, const struct table_build *build,
		       char *msg, size_t msg_size, bool *ret_renamed)
{
	return table_write(dirfd, old, build, msg, msg_size, ret_renamed);
}

int table_write_empty(int dirfd, char *msg, size_t msg_size)
{
	struct table_build build = {.next_pack_num = 1};
	bool renamed;

	return table_write(dirfd, NULL, &build, msg, msg_size, &renamed);
}
