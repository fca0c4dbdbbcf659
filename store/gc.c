/* gc.c: garbage collection. Chunks that nothing uses any more leave the
 * chunk table, and packs with much unused space are rewritten: their live
 * chunks go through the writer again (same ids) into new packs, and the old
 * packs are deleted once the new table is committed. The commit is the same
 * atomic rename as an add's, so gc is exactly as crash-safe.
 */
#include "store_internal.h"

#include <stdio.h>
#include <fcntl.h>
#include <string.h>
#include <sys/file.h>

struct gc {
	struct cairn_writer *writer;
	struct cairn_store *store;
	const struct chunk_table *table;
	uint64_t *dropped;    /* bit per old entry */
	uint64_t *live_bytes; /* per old pack: the stored bytes live chunks account for */
	bool *pack_dropped;   /* per old pack */
	struct cairn_gc_stats stats;
};

static bool bit_get(const uint64_t *bits, uint64_t i)
{
	return bits[i / 64] >> (i % 64) & 1;
}

static size_t pack_index(const struct chunk_table *table, const struct table_entry *entry)
{
	const struct table_pack *pack = table_find_pack(table, entry->pack_num);

	return pack ? (size_t)(pack - table->packs) : SIZE_MAX;
}

/* Marks dead entries and sums each pack's live share. */
static int gc_mark(struct gc *gc, cairn_chunk_live_fn live, void *userdata)
{
	const struct chunk_table *table = gc->table;

	for (uint64_t i = 0; i < table->entry_count; i++) {
		const struct table_entry *entry = &table->entries[i];
		struct cairn_id id;
		memcpy(id.bytes, entry->chunk_id, CAIRN_ID_SIZE);
		if (!live(userdata, &id)) {
			gc->dropped[i / 64] |= 1ull << (i % 64);
			gc->stats.chunks_dropped++;
			continue;
		}
		size_t pack = pack_index(table, entry);
		if (pack == SIZE_MAX || entry->frame_size == 0) {
			writer_set_error(gc->writer,
					 "%s: the chunk table points into pack %08x, which it "
					 "does not list; run cairn verify",
					 gc->store->path, entry->pack_num);
			return -EBADMSG;
		}
		gc->live_bytes[pack] +=
			(uint64_t)entry->stored_size * entry->size / entry->frame_size;
	}
	return 0;
}

/* A dead base that a live delta needs lives on (delta_keep_bases). */
static void gc_revive(void *ctx, uint64_t i)
{
	struct gc *gc = ctx;
	const struct table_entry *entry = &gc->table->entries[i];
	size_t pack = pack_index(gc->table, entry);

	gc->stats.chunks_dropped--;
	if (pack != SIZE_MAX && entry->frame_size > 0)
		gc->live_bytes[pack] +=
			(uint64_t)entry->stored_size * entry->size / entry->frame_size;
}

/* A pack is rewritten when more than a tenth of it is no longer used. */
static void gc_choose(struct gc *gc)
{
	for (uint32_t i = 0; i < gc->table->pack_count; i++) {
		uint64_t size = gc->table->packs[i].size;
		gc->pack_dropped[i] = gc->live_bytes[i] * 10 < size * 9;
		if (gc->pack_dropped[i]) {
			gc->stats.packs_deleted++;
			gc->stats.packs_rewritten += gc->live_bytes[i] > 0;
		}
		gc->stats.bytes_before += size;
	}
}

static int compare_location(const void *a, const void *b, void *ctx)
{
	const struct table_entry *entries = ctx;
	const struct table_entry *x = &entries[*(const uint64_t *)a];
	const struct table_entry *y = &entries[*(const uint64_t *)b];

	if (x->pack_num != y->pack_num)
		return x->pack_num < y->pack_num ? -1 : 1;
	return x->offset < y->offset ? -1 : x->offset > y->offset;
}

static int gc_move_one(struct gc *gc, const struct table_entry *entry)
{
	char msg[400];
	int fd = store_pack_fd(gc->store, entry->pack_num);

	if (fd < 0) {
		writer_set_error(gc->writer, "%s: pack %08x: %s", gc->store->path, entry->pack_num,
				 strerror(-fd));
		return fd;
	}
	int64_t r = frame_reader_get(writer_reader(gc->writer), gc->store, fd, entry,
				     writer_buffer(gc->writer), gc->store->params.chunk_max, msg,
				     sizeof(msg));
	if (r < 0) {
		writer_set_error(gc->writer, "%s: %s (gc moves it; run cairn verify)",
				 gc->store->path, msg);
		return (int)r;
	}
	gc->stats.chunks_moved++;
	return writer_restore_chunk(gc->writer, entry, writer_buffer(gc->writer));
}

/* Moves the live chunks of dropped packs, in pack order. */
static int gc_move(struct gc *gc)
{
	const struct chunk_table *table = gc->table;
	size_t count = 0;

	_cleanup_free_ uint64_t *order = malloc((table->entry_count + 1) * sizeof(*order));
	if (!order)
		return -ENOMEM;
	for (uint64_t i = 0; i < table->entry_count; i++) {
		/* gc_mark made sure every live entry's pack is listed. */
		if (!bit_get(gc->dropped, i) &&
		    gc->pack_dropped[pack_index(table, &table->entries[i])])
			order[count++] = i;
	}
	qsort_r(order, count, sizeof(*order), compare_location, (void *)table->entries);
	for (size_t i = 0; i < count; i++) {
		int r = gc_move_one(gc, &table->entries[order[i]]);
		if (r < 0)
			return r;
	}
	return 0;
}

/* After the commit nothing lists the dropped packs: delete them. A pack
 * that stays (a failed unlink, or a crash before the fsync) is a stray
 * that the next writer removes. A failed fsync is still reported: the
 * disk is failing. */
static int gc_delete_packs(struct gc *gc, const uint32_t *nums, size_t count)
{
	char name[32];

	for (size_t i = 0; i < count; i++) {
		store_forget_pack_fd(gc->store, nums[i]);
		pack_name(nums[i], name);
		unlinkat(gc->store->packs_dirfd, name, 0);
	}
	int r = count > 0 ? cairn_fsync_dir(gc->store->packs_dirfd, ".") : 0;
	if (r < 0)
		writer_set_error(gc->writer,
				 "%s/packs: gc is done, but the fsync after deleting %zu unused "
				 "packs failed: %s",
				 gc->store->path, count, strerror(-r));
	return r;
}

static int gc_run(struct gc *gc, cairn_chunk_live_fn live, void *userdata)
{
	size_t count = 0;

	int r = gc_mark(gc, live, userdata);
	if (r < 0)
		return r;
	r = delta_keep_bases(gc->store, gc->table, gc->dropped, gc_revive, gc);
	if (r < 0) {
		writer_set_error(gc->writer, "%s: reading a delta's base reference: %s",
				 gc->store->path, strerror(-r));
		return r;
	}
	gc_choose(gc);
	/* The commit may free the old table: keep the numbers to delete. */
	_cleanup_free_ uint32_t *doomed = malloc((gc->table->pack_count + 1) * sizeof(*doomed));
	if (!doomed)
		return -ENOMEM;
	for (uint32_t i = 0; i < gc->table->pack_count; i++)
		if (gc->pack_dropped[i])
			doomed[count++] = gc->table->packs[i].pack_num;
	r = gc_move(gc);
	if (r == 0)
		r = writer_commit_with(gc->writer, gc->dropped, gc->pack_dropped);
	if (r < 0)
		return r;
	gc->table = NULL;
	r = gc_delete_packs(gc, doomed, count);
	struct cairn_store_stats after;
	if (r == 0)
		r = cairn_store_stats(gc->store, &after);
	if (r == 0)
		gc->stats.bytes_after = after.pack_bytes;
	return r;
}

/* Mounts pin the store (cairn_store_pin): while any does, gc would delete
 * packs it may read, so gc refuses. The lock is held for the whole gc, so
 * no mount starts halfway through. Returns the locked fd or -errno. */
static int gc_lock_readers(struct gc *gc)
{
	int fd = cairn_open_file_beneath(cairn_store_dirfd(gc->store), READERS_NAME,
					 O_RDWR | O_CREAT, 0600);
	if (fd < 0) {
		writer_set_error(gc->writer, "%s/%s: %s", gc->store->path, READERS_NAME,
				 cairn_path_strerror(fd));
		return fd;
	}
	if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
		int r = errno == EWOULDBLOCK ? -EBUSY : -errno;
		writer_set_error(gc->writer,
				 "%s is mounted: gc would delete packs the mount reads; unmount "
				 "it first",
				 gc->store->path);
		close(fd);
		return r;
	}
	return fd;
}

int cairn_writer_gc(struct cairn_writer *writer, cairn_chunk_live_fn live, void *userdata,
		    struct cairn_gc_stats *ret)
{
	struct gc gc = {.writer = writer};

	if (writer_is_dirty(writer))
		return -EBUSY;
	gc.store = writer_store(writer);
	_cleanup_close_ int readers = gc_lock_readers(&gc);
	if (readers < 0)
		return readers;
	gc.table = store_table(gc.store);
	gc.dropped = calloc(gc.table->entry_count / 64 + 1, sizeof(uint64_t));
	gc.live_bytes = calloc(gc.table->pack_count + 1, sizeof(uint64_t));
	gc.pack_dropped = calloc(gc.table->pack_count + 1, sizeof(bool));
	int r = gc.dropped && gc.live_bytes && gc.pack_dropped ? 0 : -ENOMEM;
	if (r == 0)
		r = gc_run(&gc, live, userdata);
	free(gc.dropped);
	free(gc.live_bytes);
	free(gc.pack_dropped);
	if (r == 0)
		*ret = gc.stats;
	return r;
}
