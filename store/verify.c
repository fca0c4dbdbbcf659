/* verify.c: a full check of a store: the chunk table's checksum and order,
 * every listed pack's header, size, footer, checksum and record count, and
 * every chunk decompressed and re-hashed against its id. Problems are reported one line
 * each, naming pack, offset and chunk, so a user knows exactly what is lost.
 */
#include "store_internal.h"

#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

struct verify {
	struct cairn_store *store;
	const struct chunk_table *table;
	cairn_verify_report_fn report;
	void *userdata;
	int64_t problems;
	struct frame_reader reader;
	uint8_t *chunk;
	uint8_t *io_buf;
};

#define IO_BUF_SIZE (1u << 20)

static void problem(struct verify *v, const char *fmt, ...) _printf_(2, 3);
static void problem(struct verify *v, const char *fmt, ...)
{
	char line[600];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	v->problems++;
	if (v->report)
		v->report(v->userdata, line);
}

/* Walks the record headers from the pack header to the footer: the footer's
 * record count is outside the checksum, so only the walk can check it. */
static void verify_pack_records(struct verify *v, int fd, const char *name, uint64_t end,
				uint64_t record_count)
{
	struct pack_record record;
	uint64_t count = 0;
	uint64_t off = sizeof(struct pack_header);

	while (off < end) {
		if (end - off < sizeof(record) ||
		    cairn_pread_full(fd, &record, sizeof(record), off) != sizeof(record) ||
		    record.magic != RECORD_MAGIC || record.members < 1 ||
		    record.members > RECORD_MAX_MEMBERS ||
		    record_head_size(record.members) + (uint64_t)record.stored_size > end - off) {
			problem(v, "packs/%s: damaged record at offset %llu (walking the records)",
				name, (unsigned long long)off);
			return;
		}
		off += record_head_size(record.members) + record.stored_size;
		count++;
	}
	if (count != record_count)
		problem(v, "packs/%s: the footer counts %llu records, the pack holds %llu", name,
			(unsigned long long)record_count, (unsigned long long)count);
}

/* Streams the pack through the checksum: catches damage that no chunk read
 * would (the gaps, the footer) as well as damage to chunks. */
static void verify_pack_whole(struct verify *v, int fd, const struct table_pack *pack,
			      const char *name)
{
	struct pack_header header;
	struct pack_footer footer;
	struct stat st;

	if (fstat(fd, &st) < 0) {
		problem(v, "packs/%s: %s", name, strerror(errno));
		return;
	}
	char why[400];
	if (store_remote_ensure(v->store, pack->pack_num, 0, pack->size, why, sizeof(why)) < 0) {
		problem(v, "packs/%s: %s", name, why);
		return;
	}
	if ((uint64_t)st.st_size != pack->size) {
		problem(v, "packs/%s: size %lld, the chunk table says %llu", name,
			(long long)st.st_size, (unsigned long long)pack->size);
		return;
	}
	if (pack->size < sizeof(header) + sizeof(footer) ||
	    cairn_pread_full(fd, &header, sizeof(header), 0) != sizeof(header) ||
	    memcmp(header.magic, PACK_MAGIC, 8) != 0 || header.pack_num != pack->pack_num ||
	    header.check != store_checksum(&header, offsetof(struct pack_header, check))) {
		problem(v, "packs/%s: damaged pack header", name);
		return;
	}
	uint64_t end = pack->size - sizeof(footer);
	if (cairn_pread_full(fd, &footer, sizeof(footer), end) != sizeof(footer) ||
	    memcmp(footer.magic, PACK_FOOTER_MAGIC, 8) != 0 || footer.data_end != end) {
		problem(v, "packs/%s: damaged pack footer", name);
		return;
	}
	struct store_checksum_stream sum;
	store_checksum_stream_init(&sum);
	for (uint64_t off = 0; off < end;) {
		size_t want = end - off < IO_BUF_SIZE ? (size_t)(end - off) : IO_BUF_SIZE;
		ssize_t n = cairn_pread_full(fd, v->io_buf, want, off);
		if (n != (ssize_t)want) {
			problem(v, "packs/%s: read error at offset %llu", name,
				(unsigned long long)off);
			return;
		}
		store_checksum_stream_update(&sum, v->io_buf, want);
		off += want;
	}
	if (store_checksum_stream_final(&sum) != footer.checksum) {
		problem(v, "packs/%s: checksum mismatch (the pack's bytes changed)", name);
		return;
	}
	verify_pack_records(v, fd, name, end, footer.record_count);
}

static void verify_packs(struct verify *v)
{
	char name[32];

	for (uint32_t i = 0; i < v->table->pack_count; i++) {
		const struct table_pack *pack = &v->table->packs[i];
		pack_name(pack->pack_num, name);
		_cleanup_close_ int fd =
			cairn_open_file_beneath(v->store->packs_dirfd, name, O_RDONLY, 0);
		if (fd < 0) {
			problem(v, "packs/%s: %s", name, cairn_path_strerror(fd));
			continue;
		}
		verify_pack_whole(v, fd, pack, name);
	}
}

static int compare_location(const void *a, const void *b, void *ctx)
{
	const struct table_entry *entries = ctx;
	const struct table_entry *x = &entries[*(const uint32_t *)a];
	const struct table_entry *y = &entries[*(const uint32_t *)b];

	if (x->pack_num != y->pack_num)
		return x->pack_num < y->pack_num ? -1 : 1;
	return x->offset < y->offset ? -1 : x->offset > y->offset;
}

static void verify_entry(struct verify *v, const struct table_entry *entry)
{
	char msg[400];

	if (!table_find_pack(v->table, entry->pack_num)) {
		struct cairn_id id;
		char hex[CAIRN_ID_HEX + 1];
		memcpy(id.bytes, entry->chunk_id, CAIRN_ID_SIZE);
		cairn_id_to_hex(&id, hex);
		problem(v, "chunk %s: the chunk table points to pack %08x, which it does not list",
			hex, entry->pack_num);
		return;
	}
	int fd = store_pack_fd(v->store, entry->pack_num);
	if (fd < 0)
		return; /* reported once by verify_packs */
	int64_t r = frame_reader_get(&v->reader, v->store, fd, entry, v->chunk,
				     v->store->params.chunk_max, msg, sizeof(msg));
	if (r < 0)
		problem(v, "%s", msg);
}

/* Visits chunks in pack order, so the reads are sequential. */
static int verify_entries(struct verify *v)
{
	uint64_t count = v->table->entry_count;

	if (count > UINT32_MAX)
		return -EFBIG;
	_cleanup_free_ uint32_t *order = malloc((count ? count : 1) * sizeof(*order));
	if (!order)
		return -ENOMEM;
	for (uint32_t i = 0; i < count; i++)
		order[i] = i;
	qsort_r(order, count, sizeof(*order), compare_location, (void *)v->table->entries);
	for (uint64_t i = 0; i < count; i++)
		verify_entry(v, &v->table->entries[order[i]]);
	return 0;
}

int64_t cairn_store_verify(struct cairn_store *store, cairn_verify_report_fn report, void *userdata)
{
	char msg[400];
	struct verify v = {
		.store = store,
		.table = store_table(store),
		.report = report,
		.userdata = userdata,
		.chunk = malloc(store->params.chunk_max),
		.io_buf = malloc(IO_BUF_SIZE),
	};
	int r = 0;

	if (!v.table)
		r = -EBADF;
	else if (!v.chunk || !v.io_buf || frame_reader_init(&v.reader, &store->params, 1) < 0)
		r = -ENOMEM;
	if (r == 0) {
		if (table_check_body(v.table, msg, sizeof(msg)) < 0)
			problem(&v, "%s", msg);
		verify_packs(&v);
		r = verify_entries(&v);
	}
	if (r < 0)
		store_set_error(store, "%s: verify: %s", store->path, strerror(-r));
	frame_reader_release(&v.reader);
	free(v.chunk);
	free(v.io_buf);
	return r < 0 ? r : v.problems;
}
