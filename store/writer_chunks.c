/* writer_chunks.c: the session's new chunks, on the sequencer (or the
 * calling thread for put and gc, while no file is in the pipeline). Each
 * chunk is looked up among the session's new chunks (an open-addressing map
 * over blocks of entries) and the store's table; a hit counts only once its
 * bytes compare equal with the stored or pending copy, and a collision
 * re-hashes with the next id variant. New chunks below chunk_avg are grouped
 * into one frame, larger ones are a frame of their own; full groups go to
 * the pool (writer_pool.c). chunk_prepare is the per-chunk work that runs
 * in parallel, before a chunk's turn in sequence (writer_pipe.c).
 */
#include "writer_internal.h"

#include <fcntl.h>
#include <stdio.h>
#include <string.h>

/* ---- the session's new entries ---- */

static size_t map_slot(const struct cairn_id *id, size_t cap)
{
	uint64_t key;

	memcpy(&key, id->bytes, sizeof(key));
	return (size_t)key & (cap - 1);
}

static struct new_entry *map_find(const struct cairn_writer *w, const struct cairn_id *id)
{
	if (w->map_cap == 0)
		return NULL;
	for (size_t slot = map_slot(id, w->map_cap);; slot = (slot + 1) & (w->map_cap - 1)) {
		uint32_t index = w->map[slot];
		if (index == 0)
			return NULL;
		struct new_entry *entry = entry_at(w, index - 1);
		if (memcmp(entry->e.chunk_id, id->bytes, CAIRN_ID_SIZE) == 0)
			return entry;
	}
}

static void map_insert(struct cairn_writer *w, size_t index)
{
	struct cairn_id id;

	memcpy(id.bytes, entry_at(w, index)->e.chunk_id, CAIRN_ID_SIZE);
	size_t slot = map_slot(&id, w->map_cap);
	while (w->map[slot] != 0)
		slot = (slot + 1) & (w->map_cap - 1);
	w->map[slot] = (uint32_t)(index + 1);
}

static int map_grow(struct cairn_writer *w)
{
	size_t cap = w->map_cap ? w->map_cap * 2 : 4096;
	uint32_t *map = calloc(cap, sizeof(*map));

	if (!map)
		return -ENOMEM;
	free(w->map);
	w->map = map;
	w->map_cap = cap;
	for (size_t i = 0; i < w->entry_count; i++)
		map_insert(w, i);
	return 0;
}

static struct new_entry *entry_add(struct cairn_writer *w, const struct cairn_id *id,
				   unsigned variant, uint32_t size)
{
	if ((w->entry_count + 1) * 2 > w->map_cap && map_grow(w) < 0)
		return NULL;
	if (w->entry_count == w->block_count * BLOCK_SIZE) {
		struct new_entry **blocks =
			realloc(w->blocks, (w->block_count + 1) * sizeof(*blocks));
		if (!blocks)
			return NULL;
		w->blocks = blocks;
		w->blocks[w->block_count] = calloc(BLOCK_SIZE, sizeof(struct new_entry));
		if (!w->blocks[w->block_count])
			return NULL;
		w->block_count++;
	}
	struct new_entry *entry = entry_at(w, w->entry_count);
	memset(entry, 0, sizeof(*entry));
	memcpy(entry->e.chunk_id, id->bytes, CAIRN_ID_SIZE);
	entry->e.size = size;
	entry->e.variant = (uint8_t)variant;
	atomic_init(&entry->state, ENTRY_PENDING);
	map_insert(w, w->entry_count++);
	return entry;
}

/* ---- confirming a dedup hit by comparing bytes ---- */

enum { CONFIRM_DIFFERENT = 0, CONFIRM_SAME = 1, CONFIRM_ABSENT = 2 };

/* Waits until a submitted session entry is stored, then returns a private fd
 * of its pack: the open pack may be sealed and closed meanwhile. */
static int session_entry_fd(struct cairn_writer *w, struct new_entry *entry)
{
	int fd;

	pthread_mutex_lock(&w->lock);
	while (atomic_load(&entry->state) == ENTRY_PENDING)
		pthread_cond_wait(&w->done_cond, &w->lock);
	if (atomic_load(&entry->state) == ENTRY_FAILED) {
		int r = check_failure_locked(w);
		pthread_mutex_unlock(&w->lock);
		return r < 0 ? r : -EIO;
	}
	if (w->pack_fd >= 0 && entry->e.pack_num == w->pack_num) {
		fd = fcntl(w->pack_fd, F_DUPFD_CLOEXEC, 0);
		if (fd < 0)
			fd = -errno;
	} else {
		fd = -EAGAIN; /* sealed: open it by name */
	}
	pthread_mutex_unlock(&w->lock);
	return fd;
}

static int confirm_session(struct cairn_writer *w, struct new_entry *entry, const uint8_t *data,
			   uint32_t size)
{
	char msg[400];

	if (entry->e.size != size)
		return CONFIRM_DIFFERENT;
	if (entry->in_open_group) {
		const uint8_t *bytes = w->open_group->data + entry->e.inner_offset;
		return memcmp(bytes, data, size) == 0 ? CONFIRM_SAME : CONFIRM_DIFFERENT;
	}
	int fd = session_entry_fd(w, entry);
	bool own = fd >= 0;
	if (fd == -EAGAIN)
		fd = store_pack_fd(w->store, entry->e.pack_num);
	if (fd < 0) {
		writer_set_error(w, "%s: reading back a new chunk: %s", w->store->path,
				 strerror(-fd));
		return fd;
	}
	/* The open pack is still growing; never reuse a frame cached from it. */
	frame_reader_forget(&w->reader);
	int r = frame_reader_confirm(&w->reader, w->store, fd, &entry->e, data, w->confirm_buf,
				     w->store->params.chunk_max, msg, sizeof(msg));
	if (own)
		close(fd);
	if (r < 0) {
		writer_set_error(w, "%s: %s", w->store->path, msg);
		return r;
	}
	return r == 1 ? CONFIRM_SAME : CONFIRM_DIFFERENT;
}

/* Returns SAME, DIFFERENT, ABSENT when the stored chunk is damaged or its
 * pack is gone (a fresh copy then replaces it at commit), or -errno. */
static int confirm_stored(struct cairn_writer *w, const struct table_entry *entry,
			  const uint8_t *data, uint32_t size)
{
	char msg[400];

	if (entry->size != size)
		return CONFIRM_DIFFERENT;
	int fd = store_pack_fd(w->store, entry->pack_num);
	if (fd == -ENOENT)
		return CONFIRM_ABSENT;
	if (fd < 0) {
		writer_set_error(w, "%s: opening a pack: %s", w->store->path, strerror(-fd));
		return fd;
	}
	int r = frame_reader_confirm(&w->reader, w->store, fd, entry, data, w->confirm_buf,
				     w->store->params.chunk_max, msg, sizeof(msg));
	if (r == -EBADMSG)
		return CONFIRM_ABSENT;
	if (r < 0) {
		writer_set_error(w, "%s: %s", w->store->path, msg);
		return r;
	}
	return r == 1 ? CONFIRM_SAME : CONFIRM_DIFFERENT;
}

/* Looks id up among new and stored chunks: SAME (a confirmed hit),
 * DIFFERENT (a collision: try the next variant), ABSENT or -errno. */
static int find_chunk(struct cairn_writer *w, const struct cairn_id *id, const uint8_t *data,
		      uint32_t size)
{
	struct new_entry *pending = map_find(w, id);

	if (pending)
		return confirm_session(w, pending, data, size);
	const struct table_entry *stored = table_find(store_table(w->store), id);
	if (!stored)
		return CONFIRM_ABSENT;
	return confirm_stored(w, stored, data, size);
}

/* ---- storing one chunk ---- */

/* Appends a small new chunk to the open group, submitting the group first
 * when the chunk does not fit. */
static int group_small(struct cairn_writer *w, struct new_entry *entry, const uint8_t *data)
{
	uint32_t size = entry->e.size;

	if (w->open_group && (w->open_group->count == RECORD_MAX_MEMBERS ||
			      w->open_group->size + size > w->store->params.chunk_max)) {
		int r = submit_group(w, TAKE_PTR(w->open_group));
		if (r < 0)
			return r;
	}
	if (!w->open_group && !(w->open_group = group_get(w)))
		return -ENOMEM;
	struct group *group = w->open_group;
	memcpy(group->data + group->size, data, size);
	entry->e.inner_offset = group->size;
	entry->in_open_group = true;
	group->members[group->count++] = entry;
	group->size += size;
	return 0;
}

/* A chunk of chunk_avg or more is a frame of its own. */
static int submit_large(struct cairn_writer *w, struct new_entry *entry, const uint8_t *data)
{
	/* w->chunk_group may carry the base delta_consider chose for it. */
	struct group *group = TAKE_PTR(w->chunk_group);

	if (!group && !(group = group_get(w)))
		return -ENOMEM;
	memcpy(group->data, data, entry->e.size);
	group->size = entry->e.size;
	group->count = 1;
	group->members[0] = entry;
	int r = submit_group(w, group);
	if (r == 0 && !(w->chunk_group = group_get(w)))
		r = -ENOMEM;
	return r;
}

static int store_new(struct cairn_writer *w, const struct cairn_id *id, unsigned variant,
		     const uint8_t *data, uint32_t size, const struct cut *prepared)
{
	struct new_entry *entry = entry_add(w, id, variant, size);

	if (!entry)
		return -ENOMEM;
	w->stats.chunks_new++;
	w->stats.bytes_new += size;
	int r = delta_consider(w, entry, data, prepared);
	if (r < 0)
		return r;
	if (r == 0 && size < w->store->params.chunk_avg)
		return group_small(w, entry, data);
	return submit_large(w, entry, data);
}

int writer_restore_chunk(struct cairn_writer *w, const struct table_entry *old, const void *data)
{
	struct cairn_id id;

	memcpy(id.bytes, old->chunk_id, CAIRN_ID_SIZE);
	struct new_entry *entry = entry_add(w, &id, old->variant, old->size);
	if (!entry)
		return -ENOMEM;
	if (old->size < w->store->params.chunk_avg)
		return group_small(w, entry, data);
	return submit_large(w, entry, data);
}

void chunk_prepare(struct cairn_writer *w, const uint8_t *data, uint32_t size, struct cut *cut)
{
	store_chunk_id(w->store, data, size, 0, &cut->id);
	/* The sketch here rather than on the sequencer, which is one thread
	 * for the whole add; the gear table is read-only once the pipeline
	 * runs. */
	cut->sketched = sketch_compute(w->chunker.gear, data, size, &cut->sketch);
	cut->prepared = true;
}

int store_chunk(struct cairn_writer *w, const uint8_t *data, uint32_t size,
		const struct cut *prepared, struct cairn_id *ret)
{
	struct cairn_id id;

	w->stats.chunks_in++;
	for (unsigned variant = 0; variant < ID_VARIANTS; variant++) {
		if (variant == 0 && prepared && prepared->prepared)
			id = prepared->id;
		else
			store_chunk_id(w->store, data, size, variant, &id);
		int r = find_chunk(w, &id, data, size);
		if (r == CONFIRM_DIFFERENT) {
			w->stats.collisions++;
			continue;
		}
		if (r == CONFIRM_ABSENT)
			r = store_new(w, &id, variant, data, size,
				      prepared && prepared->prepared ? prepared : NULL);
		if (r < 0)
			return r;
		*ret = id;
		return 0;
	}
	writer_set_error(w, "%s: a chunk of %u bytes collides with %d stored chunks",
			 w->store->path, size, ID_VARIANTS);
	return -EBADMSG;
}

int cairn_writer_put(struct cairn_writer *w, const void *data, size_t size, struct cairn_id *ret)
{
	if (size == 0 || size > w->store->params.chunk_max || w->in_file)
		return -EINVAL;
	int r = pipe_drain(w); /* the sequencer's state is then this thread's */
	if (r < 0)
		return r;
	w->stats.bytes_in += size;
	return store_chunk(w, data, (uint32_t)size, NULL, ret);
}

/* ---- for delta_write.c ---- */

struct new_entry *writer_entry_add(struct cairn_writer *w, const struct cairn_id *id,
				   unsigned variant, uint32_t size)
{
	return entry_add(w, id, variant, size);
}

struct new_entry *writer_find_new(struct cairn_writer *w, const struct cairn_id *id)
{
	return map_find(w, id);
}

int writer_new_entry_fd(struct cairn_writer *w, struct new_entry *entry, bool *ret_own)
{
	int fd = session_entry_fd(w, entry);

	*ret_own = fd >= 0;
	if (fd == -EAGAIN)
		fd = store_pack_fd(w->store, entry->e.pack_num);
	return fd;
}
