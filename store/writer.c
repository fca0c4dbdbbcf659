/* writer.c: adding chunks to a store. The calling thread cuts, hashes and
 * deduplicates; a pool of threads compresses new chunks and appends them to
 * the open pack. New chunks smaller than chunk_avg are gathered into groups
 * of up to chunk_max bytes that compress as one frame (small files gain most
 * of the ratio they would lose alone). A dedup hit is only trusted after comparing bytes with the
 * stored chunk (DESIGN.md invariant 3): distinct bytes under one id are
 * re-hashed with the next id variant and stored apart. Nothing is visible to
 * readers until commit renames a merged chunk table into place.
 */
#include "store_internal.h"

#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <sys/resource.h>
#include <zstd.h>

#define LOCK_NAME   "lock"
#define BLOCK_SHIFT 12
#define BLOCK_SIZE  (1u << BLOCK_SHIFT)
#define WORKER_NICE 5

enum entry_state {
	ENTRY_PENDING = 0,
	ENTRY_STORED = 1,
	ENTRY_FAILED = 2,
};

struct new_entry {
	struct table_entry e; /* location written by a worker before state */
	atomic_int state;
	bool in_open_group; /* main thread only: bytes still in w->open_group */
};

/* Chunk bytes on their way to a pack: one frame's worth. */
struct group {
	uint8_t *data; /* chunk_max bytes */
	uint32_t size;
	unsigned count;
	struct new_entry *members[RECORD_MAX_MEMBERS];
};

struct cairn_writer {
	struct cairn_store *store;
	int lock_fd;
	unsigned thread_count, threads_started;
	pthread_t *threads;

	pthread_mutex_t lock;     /* protects the fields down to "main thread only" */
	pthread_cond_t work_cond; /* a group was queued, or stopping */
	pthread_cond_t done_cond; /* a group was stored, or a queue slot freed */
	struct group **queue;
	size_t queue_cap, queue_head, queue_len;
	size_t in_flight; /* groups queued or being compressed */
	bool stopping;
	int failure; /* first worker error, sticky */
	char failure_msg[512];
	struct group **free_groups;
	size_t free_count, group_count, group_limit;
	int pack_fd; /* the open pack, -1 if none */
	uint32_t pack_num;
	uint64_t pack_size, pack_records;
	char pack_tmp[32];
	struct store_checksum_stream pack_checksum;
	struct table_pack *sealed; /* packs sealed since the last commit */
	size_t sealed_count, sealed_cap;
	uint32_t next_pack_num;
	uint64_t bytes_stored;

	/* main thread only */
	struct new_entry **blocks;
	size_t block_count, entry_count;
	uint32_t *map; /* open addressing: entry index + 1, 0 = empty */
	size_t map_cap;
	struct cairn_chunker chunker;
	struct group *chunk_group; /* data holds the chunk being cut */
	struct group *open_group;  /* small new chunks gathered so far, or NULL */
	bool in_file;
	uint64_t file_size;
	struct cairn_chunk_ref *refs;
	size_t ref_count, ref_cap;
	struct frame_reader reader; /* for confirming dedup hits */
	uint8_t *confirm_buf;
	struct cairn_writer_stats stats;
	char error[512];
};

void writer_set_error(struct cairn_writer *w, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(w->error, sizeof(w->error), fmt, ap);
	va_end(ap);
}

const char *cairn_writer_error(const struct cairn_writer *writer)
{
	return writer->error;
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

static void pack_discard(struct cairn_writer *w)
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
static int pack_seal(struct cairn_writer *w)
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
	close(w->pack_fd);
	w->pack_fd = -1;
	return 0;
}

/* record: room for the record header and member table, then the payload. */
static int pack_append(struct cairn_writer *w, struct group *group, uint8_t *record,
		       uint32_t stored_size, uint8_t codec)
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

/* ---- the worker pool ---- */

struct worker_ctx {
	ZSTD_CCtx *cctx;
	uint8_t *record; /* header room + compress bound */
	size_t record_cap;
};

static uint32_t compress_group(struct cairn_writer *w, struct worker_ctx *ctx,
			       const struct group *group, uint8_t *ret_codec)
{
	size_t head = record_head_size(group->count);
	uint8_t *payload = ctx->record + head;
	size_t n = ZSTD_compressCCtx(ctx->cctx, payload, ctx->record_cap - head, group->data,
				     group->size, w->store->params.zstd_level);

	/* Frames that do not shrink are stored raw: cheaper to read. */
	if (ZSTD_isError(n) || n >= group->size) {
		memcpy(payload, group->data, group->size);
		*ret_codec = CODEC_RAW;
		return group->size;
	}
	*ret_codec = CODEC_ZSTD;
	return (uint32_t)n;
}

static void worker_finish(struct cairn_writer *w, struct worker_ctx *ctx, struct group *group,
			  uint32_t stored_size, uint8_t codec)
{
	int state = ENTRY_FAILED;

	pthread_mutex_lock(&w->lock);
	if (w->failure == 0) {
		int r = pack_append(w, group, ctx->record, stored_size, codec);
		if (r < 0)
			w->failure = r;
		else
			state = ENTRY_STORED;
	}
	for (unsigned i = 0; i < group->count; i++)
		atomic_store_explicit(&group->members[i]->state, state, memory_order_release);
	w->free_groups[w->free_count++] = group;
	w->in_flight--;
	pthread_cond_broadcast(&w->done_cond);
	pthread_mutex_unlock(&w->lock);
}

static void *worker_main(void *arg)
{
	struct cairn_writer *w = arg;
	struct worker_ctx ctx = {.cctx = ZSTD_createCCtx()};

	/* The calling thread (decoding the archive, cutting, hashing) is the
	 * critical path whenever compression keeps up; workers yield the CPU
	 * to it and take what is left. When they fall behind, the calling
	 * thread blocks on the full queue and they get every core anyway.
	 * Linux keeps a nice value per thread. */
	errno = 0;
	int nice_now = getpriority(PRIO_PROCESS, 0);
	if (errno == 0)
		setpriority(PRIO_PROCESS, (id_t)gettid(), nice_now + WORKER_NICE);

	ctx.record_cap = pack_scratch_size(&w->store->params);
	ctx.record = malloc(ctx.record_cap);
	pthread_mutex_lock(&w->lock);
	if ((!ctx.cctx || !ctx.record) && w->failure == 0) {
		w->failure = -ENOMEM;
		cairn_format(w->failure_msg, sizeof(w->failure_msg), "out of memory");
	}
	for (;;) {
		while (!w->stopping && w->queue_len == 0)
			pthread_cond_wait(&w->work_cond, &w->lock);
		if (w->queue_len == 0)
			break;
		struct group *group = w->queue[w->queue_head];
		w->queue_head = (w->queue_head + 1) % w->queue_cap;
		w->queue_len--;
		pthread_cond_broadcast(&w->done_cond);
		pthread_mutex_unlock(&w->lock);

		uint8_t codec = CODEC_RAW;
		uint32_t stored = ctx.record ? compress_group(w, &ctx, group, &codec) : 0;
		worker_finish(w, &ctx, group, stored, codec);
		pthread_mutex_lock(&w->lock);
	}
	pthread_mutex_unlock(&w->lock);
	ZSTD_freeCCtx(ctx.cctx);
	free(ctx.record);
	return NULL;
}

/* Returns the sticky worker failure, copying its message (w->lock held). */
static int check_failure_locked(struct cairn_writer *w)
{
	if (w->failure < 0)
		writer_set_error(w, "%s", w->failure_msg);
	return w->failure;
}

/* Hands a filled group to the workers; the writer no longer owns it. */
static int submit_group(struct cairn_writer *w, struct group *group)
{
	for (unsigned i = 0; i < group->count; i++)
		group->members[i]->in_open_group = false;
	pthread_mutex_lock(&w->lock);
	while (w->queue_len == w->queue_cap && w->failure == 0)
		pthread_cond_wait(&w->done_cond, &w->lock);
	int r = check_failure_locked(w);
	if (r == 0) {
		size_t slot = (w->queue_head + w->queue_len) % w->queue_cap;
		w->queue[slot] = group;
		w->queue_len++;
		w->in_flight++;
		pthread_cond_signal(&w->work_cond);
	} else {
		for (unsigned i = 0; i < group->count; i++)
			atomic_store(&group->members[i]->state, ENTRY_FAILED);
		w->free_groups[w->free_count++] = group;
	}
	pthread_mutex_unlock(&w->lock);
	return r;
}

static int wait_idle(struct cairn_writer *w)
{
	pthread_mutex_lock(&w->lock);
	while (w->in_flight > 0)
		pthread_cond_wait(&w->done_cond, &w->lock);
	int r = check_failure_locked(w);
	pthread_mutex_unlock(&w->lock);
	return r;
}

/* Returns an empty group, or NULL when out of memory. At most group_limit
 * exist: every one is queued, with a worker, free, or held by the writer. */
static struct group *group_get(struct cairn_writer *w)
{
	struct group *group = NULL;

	pthread_mutex_lock(&w->lock);
	if (w->free_count > 0)
		group = w->free_groups[--w->free_count];
	else if (w->group_count < w->group_limit && (group = calloc(1, sizeof(*group)))) {
		group->data = malloc(w->store->params.chunk_max);
		if (group->data)
			w->group_count++;
		else
			free(TAKE_PTR(group));
	}
	pthread_mutex_unlock(&w->lock);
	if (group) {
		group->size = 0;
		group->count = 0;
	}
	return group;
}

static void group_free(struct group *group)
{
	if (group) {
		free(group->data);
		free(group);
	}
}

/* ---- the session's new entries ---- */

static struct new_entry *entry_at(const struct cairn_writer *w, size_t index)
{
	return &w->blocks[index >> BLOCK_SHIFT][index & (BLOCK_SIZE - 1)];
}

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

/* A chunk of chunk_avg or more is a frame of its own: the writer's chunk
 * group goes to the workers as it is and a fresh one takes its place. */
static int submit_large(struct cairn_writer *w, struct new_entry *entry)
{
	struct group *next = group_get(w);

	if (!next)
		return -ENOMEM;
	struct group *group = w->chunk_group;
	w->chunk_group = next;
	group->size = entry->e.size;
	group->count = 1;
	group->members[0] = entry;
	return submit_group(w, group);
}

static int store_new(struct cairn_writer *w, const struct cairn_id *id, unsigned variant,
		     uint32_t size)
{
	struct new_entry *entry = entry_add(w, id, variant, size);

	if (!entry)
		return -ENOMEM;
	w->stats.chunks_new++;
	w->stats.bytes_new += size;
	if (size < w->store->params.chunk_avg)
		return group_small(w, entry, w->chunk_group->data);
	return submit_large(w, entry);
}

int writer_restore_chunk(struct cairn_writer *w, const struct table_entry *old, const void *data)
{
	struct cairn_id id;

	memcpy(id.bytes, old->chunk_id, CAIRN_ID_SIZE);
	struct new_entry *entry = entry_add(w, &id, old->variant, old->size);
	if (!entry)
		return -ENOMEM;
	memcpy(w->chunk_group->data, data, old->size);
	if (old->size < w->store->params.chunk_avg)
		return group_small(w, entry, w->chunk_group->data);
	return submit_large(w, entry);
}

struct cairn_store *writer_store(const struct cairn_writer *w)
{
	return w->store;
}

bool writer_is_dirty(const struct cairn_writer *w)
{
	return w->entry_count > 0 || w->open_group || w->in_file;
}

struct frame_reader *writer_reader(struct cairn_writer *w)
{
	return &w->reader;
}

uint8_t *writer_buffer(struct cairn_writer *w)
{
	return w->confirm_buf;
}

/* Stores the chunk of size bytes in w->chunk_group->data. */
static int store_chunk(struct cairn_writer *w, uint32_t size, struct cairn_id *ret)
{
	const uint8_t *data = w->chunk_group->data;
	struct cairn_id id;

	w->stats.chunks_in++;
	for (unsigned variant = 0; variant < ID_VARIANTS; variant++) {
		store_chunk_id(w->store, data, size, variant, &id);
		int r = find_chunk(w, &id, data, size);
		if (r == CONFIRM_DIFFERENT) {
			w->stats.collisions++;
			continue;
		}
		if (r == CONFIRM_ABSENT)
			r = store_new(w, &id, variant, size);
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
	memcpy(w->chunk_group->data, data, size);
	w->stats.bytes_in += size;
	return store_chunk(w, (uint32_t)size, ret);
}

/* ---- files ---- */

int cairn_writer_file_begin(struct cairn_writer *w)
{
	if (w->in_file)
		return -EBUSY;
	cairn_chunker_reset(&w->chunker);
	w->in_file = true;
	w->file_size = 0;
	w->chunk_group->size = 0;
	w->ref_count = 0;
	return 0;
}

static int emit_chunk(struct cairn_writer *w)
{
	struct cairn_id id;
	uint32_t size = w->chunk_group->size;

	if (w->ref_count == w->ref_cap) {
		size_t cap = w->ref_cap ? w->ref_cap * 2 : 64;
		struct cairn_chunk_ref *refs = realloc(w->refs, cap * sizeof(*refs));
		if (!refs)
			return -ENOMEM;
		w->refs = refs;
		w->ref_cap = cap;
	}
	int r = store_chunk(w, size, &id);
	w->chunk_group->size = 0;
	if (r < 0)
		return r;
	w->refs[w->ref_count++] = (struct cairn_chunk_ref){.id = id, .size = size};
	return 0;
}

int cairn_writer_file_write(struct cairn_writer *w, const void *data, size_t size)
{
	const uint8_t *p = data;

	if (!w->in_file)
		return -EINVAL;
	w->file_size += size;
	w->stats.bytes_in += size;
	while (size > 0) {
		int cut;
		size_t n = cairn_chunker_scan(&w->chunker, p, size, &cut);
		struct group *chunk = w->chunk_group;
		memcpy(chunk->data + chunk->size, p, n);
		chunk->size += (uint32_t)n;
		p += n;
		size -= n;
		if (cut) {
			int r = emit_chunk(w);
			if (r < 0)
				return r;
		}
	}
	return 0;
}

int cairn_writer_file_end(struct cairn_writer *w, struct cairn_id *ret_file_id, uint64_t *ret_size,
			  const struct cairn_chunk_ref **ret_chunks, size_t *ret_count)
{
	if (!w->in_file)
		return -EINVAL;
	w->in_file = false;
	if (w->chunk_group->size > 0) {
		int r = emit_chunk(w);
		if (r < 0)
			return r;
	}
	struct cairn_file_hasher hasher;
	uint64_t end = 0;
	cairn_file_id_init(&hasher, w->store);
	for (size_t i = 0; i < w->ref_count; i++) {
		end += w->refs[i].size;
		cairn_file_id_add_run(&hasher, &w->refs[i].id, end);
	}
	cairn_file_hasher_final(&hasher, ret_file_id);
	*ret_size = w->file_size;
	*ret_chunks = w->refs;
	*ret_count = w->ref_count;
	return 0;
}

/* ---- commit ---- */

static int compare_entry_ptr(const void *a, const void *b)
{
	const struct table_entry *const *x = a, *const *y = b;

	return memcmp((*x)->chunk_id, (*y)->chunk_id, CAIRN_ID_SIZE);
}

static int seal_open_pack(struct cairn_writer *w)
{
	int r = 0;

	pthread_mutex_lock(&w->lock);
	if (w->pack_fd >= 0 && w->pack_records > 0)
		r = pack_seal(w);
	else
		pack_discard(w);
	if (r < 0) {
		w->failure = r;
		check_failure_locked(w);
	}
	pthread_mutex_unlock(&w->lock);
	return r;
}

/* *ret_renamed: the new table is in place, even if the call failed after
 * the rename (see table_write_merged); the handle then maps it too. */
static int write_table(struct cairn_writer *w, const uint64_t *old_dropped,
		       const bool *old_pack_dropped, bool *ret_renamed)
{
	char msg[400], load_msg[400];
	struct chunk_table *table;

	_cleanup_free_ const struct table_entry **sorted =
		malloc((w->entry_count ? w->entry_count : 1) * sizeof(*sorted));
	if (!sorted)
		return -ENOMEM;
	for (size_t i = 0; i < w->entry_count; i++)
		sorted[i] = &entry_at(w, i)->e;
	qsort(sorted, w->entry_count, sizeof(*sorted), compare_entry_ptr);
	struct table_build build = {
		.new_entries = sorted,
		.new_count = w->entry_count,
		.new_packs = w->sealed,
		.new_pack_count = w->sealed_count,
		.next_pack_num = w->next_pack_num,
		.old_dropped = old_dropped,
		.old_pack_dropped = old_pack_dropped,
	};
	int r = table_write_merged(w->store->dirfd, store_table(w->store), &build, msg, sizeof(msg),
				   ret_renamed);
	if (*ret_renamed) {
		int load = table_load(w->store->dirfd, &table, load_msg, sizeof(load_msg));
		if (load == 0)
			store_swap_table(w->store, table);
		else if (r == 0)
			cairn_format(msg, sizeof(msg), "%s", load_msg);
		r = r < 0 ? r : load;
	}
	if (r < 0)
		writer_set_error(w, "%s: %s", w->store->path, msg);
	return r;
}

static void session_reset(struct cairn_writer *w)
{
	w->entry_count = 0;
	if (w->map)
		memset(w->map, 0, w->map_cap * sizeof(*w->map));
	w->sealed_count = 0;
}

int cairn_writer_commit(struct cairn_writer *w)
{
	return writer_commit_with(w, NULL, NULL);
}

int writer_commit_with(struct cairn_writer *w, const uint64_t *old_dropped,
		       const bool *old_pack_dropped)
{
	if (w->in_file)
		return -EBUSY;
	int r = w->open_group ? submit_group(w, TAKE_PTR(w->open_group)) : 0;
	if (r == 0)
		r = wait_idle(w);
	if (r == 0)
		r = seal_open_pack(w);
	if (r == 0 && w->sealed_count > 0) {
		r = cairn_fsync_dir(w->store->packs_dirfd, ".");
		if (r < 0)
			writer_set_error(w, "%s/packs: fsync: %s", w->store->path, strerror(-r));
	}
	bool renamed = false;
	if (r == 0)
		r = write_table(w, old_dropped, old_pack_dropped, &renamed);
	/* Once the new table is in place, the session's packs are the store's:
	 * a failure after that must not make free or rollback delete them. */
	if (renamed)
		session_reset(w);
	if (r < 0) {
		pthread_mutex_lock(&w->lock);
		if (w->failure == 0)
			w->failure = r;
		cairn_format(w->failure_msg, sizeof(w->failure_msg), "%s", w->error);
		pthread_mutex_unlock(&w->lock);
		return r;
	}
	session_reset(w);
	return 0;
}

static void writer_abandon(struct cairn_writer *w);

int cairn_writer_rollback(struct cairn_writer *w)
{
	/* In-flight groups finish (or fail) first: they write into the packs
	 * that are about to go. */
	wait_idle(w);
	pthread_mutex_lock(&w->lock);
	if (w->open_group) {
		w->free_groups[w->free_count++] = TAKE_PTR(w->open_group);
	}
	w->failure = 0;
	w->failure_msg[0] = '\0';
	pthread_mutex_unlock(&w->lock);
	writer_abandon(w);
	session_reset(w);
	w->in_file = false;
	w->chunk_group->size = 0;
	w->ref_count = 0;
	frame_reader_forget(&w->reader);
	return 0;
}

void cairn_writer_stats(const struct cairn_writer *writer, struct cairn_writer_stats *ret)
{
	struct cairn_writer *w = (struct cairn_writer *)writer;

	*ret = w->stats;
	pthread_mutex_lock(&w->lock);
	ret->bytes_stored = w->bytes_stored;
	pthread_mutex_unlock(&w->lock);
}

/* ---- open and free ---- */

static int take_lock(struct cairn_writer *w, unsigned flags)
{
	struct cairn_store *store = w->store;

	w->lock_fd = openat(store->dirfd, LOCK_NAME, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (w->lock_fd < 0) {
		int r = -errno;
		store_set_error(store, "%s/lock: %s", store->path, strerror(errno));
		return r;
	}
	int op = LOCK_EX | ((flags & CAIRN_WRITER_NOWAIT) ? LOCK_NB : 0);
	while (flock(w->lock_fd, op) < 0) {
		if (errno == EINTR)
			continue;
		int r = -errno;
		if (r == -EWOULDBLOCK)
			store_set_error(store, "%s: another cairn process is writing to this store",
					store->path);
		else
			store_set_error(store, "%s/lock: %s", store->path, strerror(errno));
		return r;
	}
	return 0;
}

/* Under the lock, no other writer runs: temp files and packs that the
 * current table does not list are leftovers of a writer that died. */
static int remove_leftovers_in(struct cairn_writer *w, int dirfd, bool packs)
{
	const struct chunk_table *table = store_table(w->store);
	int fd = openat(dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	DIR *dir = fdopendir(fd);
	if (!dir) {
		close(fd);
		return -errno;
	}
	struct dirent *de;
	while ((de = readdir(dir))) {
		uint32_t num;
		size_t len = strlen(de->d_name);
		bool tmp = strncmp(de->d_name, "tmp-", 4) == 0 ||
			   (len > 4 && strcmp(de->d_name + len - 4, ".tmp") == 0);
		bool stray = packs && pack_parse_name(de->d_name, &num) == 0 &&
			     !table_find_pack(table, num);
		if (tmp || stray)
			unlinkat(dirfd, de->d_name, 0);
		if (packs && pack_parse_name(de->d_name, &num) == 0 && num >= w->next_pack_num)
			w->next_pack_num = num == UINT32_MAX ? num : num + 1; /* never wrap */
	}
	closedir(dir);
	return 0;
}

static int writer_refresh(struct cairn_writer *w)
{
	struct cairn_store *store = w->store;
	struct chunk_table *table;
	char msg[400];

	/* Another writer may have committed since the handle was opened. */
	int r = table_load(store->dirfd, &table, msg, sizeof(msg));
	if (r < 0) {
		store_set_error(store, "%s: %s", store->path, msg);
		return r;
	}
	/* A commit rewrites the whole table with a fresh checksum: check the old
	 * one first, so damage is reported rather than sealed in. */
	r = table_check_body(table, msg, sizeof(msg));
	if (r < 0) {
		store_set_error(store, "%s: %s; run cairn verify", store->path, msg);
		table_free(table);
		return r;
	}
	store_swap_table(store, table);
	w->next_pack_num = table->next_pack_num;
	r = remove_leftovers_in(w, store->dirfd, false);
	if (r == 0)
		r = remove_leftovers_in(w, store->packs_dirfd, true);
	if (r < 0)
		store_set_error(store, "%s: removing leftovers: %s", store->path, strerror(-r));
	return r;
}

static int writer_alloc(struct cairn_writer *w, unsigned threads)
{
	const struct cairn_store_params *params = &w->store->params;

	if (threads == 0) {
		long n = sysconf(_SC_NPROCESSORS_ONLN);
		threads = n > 0 ? (unsigned)n : 1;
	}
	w->thread_count = threads > 64 ? 64 : threads;
	w->queue_cap = 2 * (size_t)w->thread_count + 2;
	/* Every group is queued, with a worker, free, or the writer's chunk or
	 * open group: this bounds the writer's memory. */
	w->group_limit = w->queue_cap + w->thread_count + 3;
	w->queue = calloc(w->queue_cap, sizeof(*w->queue));
	w->free_groups = calloc(w->group_limit, sizeof(*w->free_groups));
	w->threads = calloc(w->thread_count, sizeof(*w->threads));
	w->confirm_buf = malloc(params->chunk_max);
	if (!w->queue || !w->free_groups || !w->threads || !w->confirm_buf ||
	    frame_reader_init(&w->reader, params, FRAME_READER_MAX_FRAMES) < 0)
		return -ENOMEM;
	w->chunk_group = group_get(w);
	if (!w->chunk_group)
		return -ENOMEM;
	cairn_chunker_init(&w->chunker, params);
	return 0;
}

int cairn_writer_open(struct cairn_store *store, unsigned flags, unsigned threads,
		      struct cairn_writer **ret)
{
	struct cairn_writer *w = calloc(1, sizeof(*w));

	if (!w)
		return -ENOMEM;
	w->store = store;
	w->lock_fd = -1;
	w->pack_fd = -1;
	pthread_mutex_init(&w->lock, NULL);
	pthread_cond_init(&w->work_cond, NULL);
	pthread_cond_init(&w->done_cond, NULL);
	int r = take_lock(w, flags);
	if (r == 0)
		r = writer_refresh(w);
	if (r == 0) {
		r = writer_alloc(w, threads);
		if (r < 0)
			store_set_error(store, "out of memory");
	}
	for (unsigned i = 0; r == 0 && i < w->thread_count; i++) {
		r = -pthread_create(&w->threads[i], NULL, worker_main, w);
		if (r == 0)
			w->threads_started++;
		else
			store_set_error(store, "cannot start a thread: %s", strerror(-r));
	}
	if (r < 0) {
		cairn_writer_free(w);
		return r;
	}
	*ret = w;
	return 0;
}

static void writer_stop_threads(struct cairn_writer *w)
{
	pthread_mutex_lock(&w->lock);
	w->stopping = true;
	pthread_cond_broadcast(&w->work_cond);
	pthread_mutex_unlock(&w->lock);
	for (unsigned i = 0; i < w->threads_started; i++)
		pthread_join(w->threads[i], NULL);
}

/* Removes the packs of an uncommitted session. */
static void writer_abandon(struct cairn_writer *w)
{
	char name[32];

	pack_discard(w);
	for (size_t i = 0; i < w->sealed_count; i++) {
		store_forget_pack_fd(w->store, w->sealed[i].pack_num);
		pack_name(w->sealed[i].pack_num, name);
		unlinkat(w->store->packs_dirfd, name, 0);
	}
	w->sealed_count = 0;
}

void cairn_writer_free(struct cairn_writer *w)
{
	if (!w)
		return;
	writer_stop_threads(w);
	if (w->store->packs_dirfd >= 0)
		writer_abandon(w);
	for (size_t i = 0; i < w->free_count; i++)
		group_free(w->free_groups[i]);
	group_free(w->chunk_group);
	group_free(w->open_group);
	for (size_t i = 0; i < w->block_count; i++)
		free(w->blocks[i]);
	free(w->blocks);
	free(w->map);
	free(w->free_groups);
	free(w->queue);
	free(w->threads);
	free(w->sealed);
	free(w->refs);
	free(w->confirm_buf);
	frame_reader_release(&w->reader);
	pthread_cond_destroy(&w->work_cond);
	pthread_cond_destroy(&w->done_cond);
	pthread_mutex_destroy(&w->lock);
	if (w->lock_fd >= 0)
		close(w->lock_fd);
	free(w);
}
