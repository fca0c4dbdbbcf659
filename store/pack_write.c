/* pack_write.c: the writer's open pack, STORE/packs/NNNNNNNN.pack.tmp:
 * starting it with a header, appending one record per compressed group
 * (record header, member table, frame), and sealing it (footer with the
 * checksum of everything before it, fsync, rename to NNNNNNNN.pack) when the
 * next record would take it past pack_max or at commit. Workers call in
 * holding w->lock, so one pack is written by one thread at a time. The
 * formats are in format.h and docs/FORMAT.md; pack_read.c reads them back.
 */
#include "writer_internal.h"

#include <fcntl.h>
#include <stdio.h>
#include <string.h>

static void pack_header_init(struct pack_header *header, uint32_t pack_num)
{
	memset(header, 0, sizeof(*header));
	memcpy(header->magic, PACK_MAGIC, 8);
	header->version = PACK_VERSION;
	header->pack_num = pack_num;
	header->check = store_checksum(header, offsetof(struct pack_header, check));
}

/* Fills a record header for the member table that follows it in memory. */
static void pack_record_init(struct pack_record *record, unsigned members, uint32_t frame_size,
			     uint32_t stored_size, uint8_t codec)
{
	struct store_checksum_stream sum;

	memset(record, 0, sizeof(*record));
	record->magic = RECORD_MAGIC;
	record->members = (uint16_t)members;
	record->codec = codec;
	record->frame_size = frame_size;
	record->stored_size = stored_size;
	store_checksum_stream_init(&sum);
	store_checksum_stream_update(&sum, record, offsetof(struct pack_record, check));
	store_checksum_stream_update(&sum, record + 1, members * sizeof(struct pack_member));
	record->check = store_checksum_stream_final(&sum);
}

/* ---- the open pack (callers hold w->lock) ---- */

static int pack_fail(struct cairn_writer *w, const char *name, int r)
{
	cairn_format(w->failure_msg, sizeof(w->failure_msg), "%s/packs/%s: %s", w->store->path,
		     name, strerror(-r));
	return r;
}

static int pack_start(struct cairn_writer *w)
{
	struct pack_header header;
	uint32_t num = w->next_pack_num;

	/* Numbers are never reused, and the table must list its packs below
	 * the next number: at the last one the store is full (or its table
	 * lies), and a pack numbered so would make a table no one can load. */
	if (num == UINT32_MAX) {
		cairn_format(w->failure_msg, sizeof(w->failure_msg),
			     "%s/packs: no pack numbers left (the next would be %08x)",
			     w->store->path, num);
		return -EOVERFLOW;
	}
	snprintf(w->pack_tmp, sizeof(w->pack_tmp), "%08x.pack.tmp", num);
	int fd = openat(w->store->packs_dirfd, w->pack_tmp, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC,
			0600);
	if (fd < 0)
		return pack_fail(w, w->pack_tmp, -errno);
	pack_header_init(&header, num);
	int r = cairn_pwrite_all(fd, &header, sizeof(header), 0);
	if (r < 0) {
		close(fd);
		unlinkat(w->store->packs_dirfd, w->pack_tmp, 0);
		return pack_fail(w, w->pack_tmp, r);
	}
	store_checksum_stream_init(&w->pack_checksum);
	store_checksum_stream_update(&w->pack_checksum, &header, sizeof(header));
	w->next_pack_num++;
	w->pack_fd = fd;
	w->pack_num = num;
	w->pack_size = sizeof(header);
	w->pack_records = 0;
	return 0;
}

void pack_discard(struct cairn_writer *w)
{
	if (w->pack_fd < 0)
		return;
	close(w->pack_fd);
	unlinkat(w->store->packs_dirfd, w->pack_tmp, 0);
	w->pack_fd = -1;
}

static int sealed_append(struct cairn_writer *w, uint32_t num, uint64_t size)
{
	if (w->sealed_count == w->sealed_cap) {
		size_t cap = w->sealed_cap ? w->sealed_cap * 2 : 8;
		struct table_pack *sealed = realloc(w->sealed, cap * sizeof(*sealed));
		if (!sealed)
			return -ENOMEM;
		w->sealed = sealed;
		w->sealed_cap = cap;
	}
	w->sealed[w->sealed_count++] = (struct table_pack){.pack_num = num, .size = size};
	return 0;
}

/* Footer, fsync, rename to its final name. The directory is fsynced at
 * commit, once for all packs sealed since the last. */
int pack_seal(struct cairn_writer *w)
{
	struct pack_footer footer = {.record_count = w->pack_records, .data_end = w->pack_size};
	char name[32];

	memcpy(footer.magic, PACK_FOOTER_MAGIC, 8);
	footer.checksum = store_checksum_stream_final(&w->pack_checksum);
	pack_name(w->pack_num, name);
	int r = cairn_pwrite_all(w->pack_fd, &footer, sizeof(footer), w->pack_size);
	if (r == 0 && fsync(w->pack_fd) < 0)
		r = -errno;
	if (r == 0 && renameat(w->store->packs_dirfd, w->pack_tmp, w->store->packs_dirfd, name) < 0)
		r = -errno;
	if (r == 0)
		r = sealed_append(w, w->pack_num, w->pack_size + sizeof(footer));
	if (r < 0) {
		pack_discard(w);
		return pack_fail(w, name, r);
	}
	store_remote_pack_sealed(w->store, w->pack_num, w->pack_size + sizeof(footer));
	close(w->pack_fd);
	w->pack_fd = -1;
	return 0;
}

/* record: room for the record header and member table, then the payload. */
int pack_append(struct cairn_writer *w, struct group *group, uint8_t *record, uint32_t stored_size,
		uint8_t codec)
{
	size_t head = record_head_size(group->count);
	size_t record_size = head + stored_size;
	int r;

	if (w->pack_fd >= 0 && w->pack_records > 0 &&
	    w->pack_size + record_size + sizeof(struct pack_footer) > w->store->params.pack_max) {
		r = pack_seal(w);
		if (r < 0)
			return r;
	}
	if (w->pack_fd < 0) {
		r = pack_start(w);
		if (r < 0)
			return r;
	}
	struct pack_member *members = (struct pack_member *)(record + sizeof(struct pack_record));
	for (unsigned i = 0; i < group->count; i++) {
		const struct table_entry *e = &group->members[i]->e;
		members[i] = (struct pack_member){.size = e->size, .variant = e->variant};
		memcpy(members[i].chunk_id, e->chunk_id, CAIRN_ID_SIZE);
	}
	pack_record_init((struct pack_record *)record, group->count, group->size, stored_size,
			 codec);
	r = cairn_pwrite_all(w->pack_fd, record, record_size, w->pack_size);
	if (r < 0)
		return pack_fail(w, w->pack_tmp, r);
	store_checksum_stream_update(&w->pack_checksum, record, record_size);
	for (unsigned i = 0; i < group->count; i++) {
		struct table_entry *e = &group->members[i]->e;
		e->pack_num = w->pack_num;
		e->offset = w->pack_size;
		e->stored_size = stored_size;
		e->frame_size = group->size;
		e->members = (uint16_t)group->count;
		e->codec = codec;
	}
	w->pack_size += record_size;
	w->pack_records++;
	w->bytes_stored += stored_size;
	return 0;
}
