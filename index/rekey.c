/* rekey.c: a snapshot file rewritten for another store, for `cairn copy`.
 * Every store has its own hash key, so the same bytes have other chunk ids
 * there, and every keyed field of the snapshot (docs/FORMAT.md, "Snapshot
 * index") must be made again under the other key: each run's chunk id (the
 * caller's map says what it became), each chunk list's file id (made from
 * the new runs), each section's checksum and the header's. Everything else
 * stays byte for byte, so the layout, inode numbers and metadata are the
 * source's. The source's archive id is kept as it is: it can only be made
 * from the archive's bytes, which a copy does not have (FORMAT.md, "SOURCE").
 * With the same key and a map that changes nothing, the copy is the very
 * same bytes.
 */
#include "index_internal.h"

#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

static const uint8_t zero_id[CAIRN_ID_SIZE];

struct rekey {
	struct cairn_index *src;
	const struct cairn_store *dst;
	bool same_key;
	index_id_map_fn map;
	void *userdata;
	uint8_t *out;
	uint8_t *done; /* one byte per 8 bytes of CHUNKS: that list is rewritten */
};

/* Rewrites the runs of one chunk list into the copy and makes its file id
 * again when a run changed or the key differs. Reads the source's mapping,
 * writes only the copy. */
static int rekey_list(struct rekey *k, uint64_t ino, const struct snap_chunk_list *list)
{
	size_t list_offset = (size_t)((const uint8_t *)list - k->src->base);
	struct snap_run *out_runs = (struct snap_run *)(k->out + list_offset + sizeof(*list));
	const struct snap_run *runs = (const struct snap_run *)(list + 1);
	struct cairn_file_hasher hasher;
	bool changed = false;

	cairn_file_id_init(&hasher, k->dst);
	for (uint32_t i = 0; i < list->run_count; i++) {
		struct cairn_id id;
		memcpy(id.bytes, runs[i].chunk_id, CAIRN_ID_SIZE);
		if (memcmp(id.bytes, zero_id, CAIRN_ID_SIZE) != 0) {
			struct cairn_id mapped;
			uint64_t start = i ? runs[i - 1].end : 0;
			int r = k->map(k->userdata, ino, &id, runs[i].end - start, &mapped);
			if (r < 0)
				return r;
			changed |= memcmp(mapped.bytes, id.bytes, CAIRN_ID_SIZE) != 0;
			id = mapped;
			memcpy(out_runs[i].chunk_id, id.bytes, CAIRN_ID_SIZE);
		}
		cairn_file_id_add_run(&hasher, &id, runs[i].end);
	}
	/* Same key and the same runs: the file id stays, even one of the older
	 * kind made from the bytes (FORMAT.md, "Ids"). */
	if (changed || !k->same_key) {
		struct cairn_id file_id;
		cairn_file_hasher_final(&hasher, &file_id);
		memcpy(k->out + list_offset, file_id.bytes, CAIRN_ID_SIZE);
	}
	return 0;
}

static int rekey_lists(struct rekey *k)
{
	struct cairn_index *idx = k->src;

	for (uint64_t ino = 1; ino <= idx->inode_count; ino++) {
		const struct snap_inode *inode = index_inode(idx, ino);
		const struct snap_chunk_list *list;
		if (!inode)
			return -EBADMSG;
		if ((inode->mode & S_IFMT) != S_IFREG)
			continue;
		int r = index_chunk_list(idx, ino, inode, &list);
		if (r < 0)
			return r;
		/* Hard links and files of equal content share one list. */
		if (k->done[inode->data / 8])
			continue;
		k->done[inode->data / 8] = 1;
		if ((r = rekey_list(k, ino, list)) < 0)
			return r;
	}
	return 0;
}

static uint64_t sum(const struct cairn_store *store, const void *data, size_t size)
{
	return index_checksum(store, data, size);
}

/* Version 3: every page's sum in PAGES, the pages running from SOURCE to
 * the end of the file (FORMAT.md, "PAGES"). */
static void rekey_pages(struct rekey *k, const struct snap_section *sections, uint64_t size)
{
	const struct snap_section *pages = &sections[SECTION_PAGES - 1];
	uint64_t at = sections[0].offset;

	for (uint64_t i = 0; at < size; i++, at += SNAP_PAGE_SIZE) {
		uint64_t n = size - at < SNAP_PAGE_SIZE ? size - at : SNAP_PAGE_SIZE;
		uint64_t s = sum(k->dst, k->out + at, n);
		memcpy(k->out + pages->offset + i * 8, &s, sizeof(s));
	}
}

/* The pages' sums, the sections' checksums, then the header's over them
 * (FORMAT.md, "Layout"), as write.c makes them. */
static void rekey_checksums(struct rekey *k)
{
	struct snap_header *h = (struct snap_header *)k->out;
	struct snap_section *sections = (struct snap_section *)(h + 1);
	struct cairn_file_hasher hasher;
	struct cairn_id id;

	if (h->section_count > SNAP_SECTION_COUNT)
		rekey_pages(k, sections, k->src->size);
	for (uint32_t i = 0; i < h->section_count; i++)
		sections[i].checksum = sum(k->dst, k->out + sections[i].offset, sections[i].size);
	cairn_file_hasher_init(&hasher, k->dst);
	cairn_file_hasher_update(&hasher, h, offsetof(struct snap_header, checksum));
	cairn_file_hasher_update(&hasher, sections, h->section_count * sizeof(*sections));
	cairn_file_hasher_final(&hasher, &id);
	memcpy(&h->checksum, id.bytes, sizeof(h->checksum));
}

int index_rekey(struct cairn_index *src, const struct cairn_store *dst, index_id_map_fn map,
		void *userdata, uint8_t **ret_data, size_t *ret_size)
{
	struct rekey k = {
		.src = src,
		.dst = dst,
		.same_key = cairn_store_same_key(src->store, dst),
		.map = map,
		.userdata = userdata,
	};

	if (!src->header || src->size > SIZE_MAX)
		return -EINVAL;
	int r = index_touch_all(src);
	if (r < 0)
		return r;
	_cleanup_free_ uint8_t *out = malloc(src->size ? src->size : 1);
	_cleanup_free_ uint8_t *done = calloc(src->chunks_size / 8 + 1, 1);
	if (!out || !done)
		return -ENOMEM;
	memcpy(out, src->base, src->size);
	k.out = out;
	k.done = done;
	r = rekey_lists(&k);
	if (r < 0)
		return r;
	rekey_checksums(&k);
	*ret_data = TAKE_PTR(out);
	*ret_size = src->size;
	return 0;
}
