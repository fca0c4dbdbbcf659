/* read.c: file contents on the daemon's side. The mount reads through the
 * index's content reader (content.h), one per thread, with its own chunk
 * source: the shared cache of decompressed chunks, filled with each chunk's
 * record neighbours on a miss and by a readahead thread that fetches the
 * next chunks of a sequential reader. The fallback read is here; the blob
 * cache takes a thread's reader to make and check blobs. read.c owns the
 * chunk cache, the per-thread buffers and the readahead queue, and calls
 * nothing of the mount above it.
 */
#include "mount_internal.h"

#include <string.h>

#define READAHEAD_MAX 16
/* A sequential reader past this offset has the rest of its file prefetched
 * (a remote store). */
#define PREFETCH_AFTER (1u << 20)
/* A missed chunk's record neighbours are cached when the record lies within
 * NEAR_SPAN of one of the last NEAR_RECENT records missed in the same pack. */
#define NEAR_RECENT 8
#define NEAR_SPAN   (2u << 20)

struct read_path {
	struct cairn_store *store;   /* borrowed */
	const struct mount_log *log; /* borrowed */
	struct chunk_cache *chunks;
	pthread_key_t ctx_key; /* one struct read_ctx per thread */

	pthread_t readahead_thread;
	bool readahead_started;
	pthread_mutex_t readahead_lock; /* protects the queue and stopping */
	pthread_cond_t readahead_cond;
	struct readahead_item {
		struct cairn_id id;
		uint64_t size;
	} readahead_queue[READAHEAD_MAX];
	size_t readahead_len;
	bool stopping;

	pthread_mutex_t near_lock; /* protects the recent misses below */
	struct recent_miss {
		uint32_t pack_num;
		uint64_t offset;
	} recent[NEAR_RECENT];
	unsigned recent_next;
	atomic_uint_fast64_t neighbours; /* chunks cached as record neighbours */
};

/* Each thread that reads keeps an unpacker and a chunk_max scratch buffer:
 * chunks are decompressed into the scratch and cached in an allocation of
 * their exact size, so the cache's bound is what it holds. */
struct read_ctx {
	struct cairn_unpacker *unpacker;
	uint8_t *scratch;
	/* The thread's content reader on the mount's chunk source, and the file
	 * it is bound to (bound_idx NULL: none known). */
	struct cairn_content_reader *reader;
	struct cairn_index *bound_idx;
	uint64_t bound_ino;
	struct cairn_index_file bound_file;
	uint8_t *reply; /* the thread's reply buffer for fallback reads */
	size_t reply_cap;
};

static void read_ctx_release(void *arg)
{
	struct read_ctx *ctx = arg;

	if (!ctx)
		return;
	cairn_content_reader_free(ctx->reader);
	cairn_unpacker_free(ctx->unpacker);
	free(ctx->scratch);
	free(ctx->reply);
	free(ctx);
}

static const struct cairn_chunk_source_ops source_ops;

static struct read_ctx *read_ctx(struct read_path *rp)
{
	struct read_ctx *ctx = pthread_getspecific(rp->ctx_key);
	const struct cairn_chunk_source source = {
		.ops = &source_ops, .userdata = rp, .flags = CAIRN_CHUNK_SOURCE_SHARED};

	if (ctx)
		return ctx;
	ctx = calloc(1, sizeof(*ctx));
	if (!ctx)
		return NULL;
	ctx->scratch = malloc(cairn_store_params(rp->store)->chunk_max);
	if (!ctx->scratch || cairn_unpacker_new(rp->store, &ctx->unpacker) < 0 ||
	    cairn_content_reader_new(rp->store, &source, &ctx->reader) < 0 ||
	    pthread_setspecific(rp->ctx_key, ctx) != 0) {
		read_ctx_release(ctx);
		return NULL;
	}
	return ctx;
}

uint8_t *read_path_reply_buffer(struct read_path *rp, size_t size)
{
	struct read_ctx *ctx = read_ctx(rp);

	if (!ctx)
		return NULL;
	if (size > ctx->reply_cap) {
		/* Reads come in the kernel's request size (at most max_pages):
		 * one buffer per thread, kept, instead of an allocation (and, at
		 * this size, an mmap, page faults and a munmap) per read. */
		free(ctx->reply);
		ctx->reply_cap = 0;
		ctx->reply = malloc(size);
		if (!ctx->reply)
			return NULL;
		ctx->reply_cap = size;
	}
	return ctx->reply;
}

uint64_t read_path_neighbours(struct read_path *rp)
{
	return atomic_load(&rp->neighbours);
}

struct chunk_cache *read_path_chunks(struct read_path *rp)
{
	return rp->chunks;
}

/* ---- chunks through the cache ---- */

/* Caches a copy of a chunk's bytes in a block of their size; returns it
 * referenced, or NULL when out of memory. */
static struct cached_chunk *cache_copy(struct read_path *rp, const struct cairn_id *id,
				       const void *data, uint32_t size)
{
	uint8_t *copy = malloc(size ? size : 1);

	if (!copy)
		return NULL;
	memcpy(copy, data, size);
	return chunk_cache_insert(rp->chunks, id, copy, size);
}

/* A small chunk's neighbours in its record, decompressed with it: cached
 * unless already there, so reading the next small files of a directory
 * costs no decompression (on whichever thread serves them). */
static void cache_neighbour(void *userdata, const struct cairn_id *id, const void *data,
			    uint32_t size)
{
	struct read_path *rp = userdata;
	struct cached_chunk *have = chunk_cache_get(rp->chunks, id);

	if (!have)
		atomic_fetch_add(&rp->neighbours, 1);
	chunk_cache_put(rp->chunks, have ? have : cache_copy(rp, id, data, size));
}

/* Whether a missed chunk's record neighbours are worth caching: when the
 * reads go through the archive in order (tar, cp -r, a directory's files
 * one after another), the next misses are the neighbours of this one, or in
 * records near it; when they jump about (2,000 random small files), every
 * neighbour would be copied, checked and cached for nothing (a record of
 * small files holds a few dozen of them), which was a quarter of the
 * daemon's CPU and most of its page faults. A miss near a recent one says
 * the reads are in order; the first record of such a run costs its
 * neighbours once (the thread's unpacker keeps the record's frame, so a
 * read of the next file on the same thread decodes nothing again). */
static bool neighbours_pay(struct read_path *rp, const struct cairn_id *id)
{
	struct cairn_chunk_info info;
	bool near = false;

	if (cairn_store_chunk_info(rp->store, id, &info) < 0 || !info.shared_frame)
		return false;
	pthread_mutex_lock(&rp->near_lock);
	for (unsigned i = 0; i < NEAR_RECENT && !near; i++) {
		const struct recent_miss *m = &rp->recent[i];
		uint64_t gap = m->offset > info.record_offset ? m->offset - info.record_offset
							      : info.record_offset - m->offset;
		near = m->pack_num == info.pack_num && m->offset > 0 && gap <= NEAR_SPAN;
	}
	rp->recent[rp->recent_next++ % NEAR_RECENT] =
		(struct recent_miss){.pack_num = info.pack_num, .offset = info.record_offset};
	pthread_mutex_unlock(&rp->near_lock);
	return near;
}

/* A referenced chunk from the cache, decompressing (and verifying) it on a
 * miss. size is what the snapshot says the chunk holds (0: not known): a
 * chunk alone in its record then decompresses straight into the block the
 * cache keeps, with no copy out of the scratch buffer. NULL on failure,
 * logged with the store's message. */
static struct cached_chunk *chunk_get(struct read_path *rp, const struct cairn_id *id,
				      uint64_t size)
{
	struct cached_chunk *chunk = chunk_cache_get(rp->chunks, id);
	if (chunk)
		return chunk;
	struct read_ctx *ctx = read_ctx(rp);
	if (!ctx)
		return NULL;
	uint32_t max = cairn_store_params(rp->store)->chunk_max;
	uint8_t *block = size > 0 && size <= max ? malloc(size) : NULL;
	uint8_t *out = block ? block : ctx->scratch;
	cairn_chunk_fn near = neighbours_pay(rp, id) ? cache_neighbour : NULL;
	int64_t n =
		cairn_unpacker_get_neighbours(ctx->unpacker, id, out, block ? size : max, near, rp);
	if (n == -ENOBUFS && block) {
		/* The table's size is not the snapshot's: the reader reports
		 * the disagreement once it has the chunk. */
		free(block);
		block = NULL;
		out = ctx->scratch;
		n = cairn_unpacker_get_neighbours(ctx->unpacker, id, out, max, near, rp);
	}
	if (n < 0) {
		free(block);
		mount_log(rp->log, CAIRN_LOG_ERROR, "%s", cairn_unpacker_error(ctx->unpacker));
		return NULL;
	}
	if (!block || (uint64_t)n != size) {
		/* A chunk shorter than the snapshot says: cached at its size
		 * (the reader reports the disagreement). */
		chunk = cache_copy(rp, id, out, (uint32_t)n);
		free(block);
		return chunk;
	}
	return chunk_cache_insert(rp->chunks, id, block, (uint32_t)n);
}

/* The mount's chunk source for the content reader: chunks lent straight
 * from the shared cache (a reference each), fetched with their record
 * neighbours on a miss. A failure is logged here and is -EIO to the
 * reader, as it always was to the kernel. */
static int source_get(void *userdata, const struct cairn_id *id, uint64_t size,
		      struct cairn_chunk *ret, char *msg, size_t msg_size)
{
	struct read_path *rp = userdata;

	struct cached_chunk *chunk = chunk_get(rp, id, size); /* the reader checks the size */
	if (!chunk) {
		cairn_format(msg, msg_size, "cannot read a chunk (see the log)");
		return -EIO;
	}
	*ret = (struct cairn_chunk){.data = chunk->data, .size = chunk->size, .ref = chunk};
	return 0;
}

static void source_release(void *userdata, const struct cairn_chunk *chunk)
{
	struct read_path *rp = userdata;

	chunk_cache_put(rp->chunks, chunk->ref);
}

static const struct cairn_chunk_source_ops source_ops = {
	.get = source_get,
	.release = source_release,
};

/* ---- readahead ---- */

static void readahead_push(struct read_path *rp, const struct cairn_index_run *run)
{
	pthread_mutex_lock(&rp->readahead_lock);
	if (rp->readahead_len < READAHEAD_MAX) {
		rp->readahead_queue[rp->readahead_len++] =
			(struct readahead_item){.id = run->chunk_id, .size = run->size};
		pthread_cond_signal(&rp->readahead_cond);
	}
	pthread_mutex_unlock(&rp->readahead_lock);
}

/* The readahead thread: decompresses queued chunks into the cache. */
static void *readahead_main(void *arg)
{
	struct read_path *rp = arg;

	pthread_mutex_lock(&rp->readahead_lock);
	while (!rp->stopping) {
		if (rp->readahead_len == 0) {
			pthread_cond_wait(&rp->readahead_cond, &rp->readahead_lock);
			continue;
		}
		struct readahead_item item = rp->readahead_queue[0];
		rp->readahead_len--;
		memmove(rp->readahead_queue, rp->readahead_queue + 1,
			rp->readahead_len * sizeof(rp->readahead_queue[0]));
		pthread_mutex_unlock(&rp->readahead_lock);
		chunk_cache_put(rp->chunks, chunk_get(rp, &item.id, item.size));
		pthread_mutex_lock(&rp->readahead_lock);
	}
	pthread_mutex_unlock(&rp->readahead_lock);
	return NULL;
}

int read_path_readahead_start(struct read_path *rp)
{
	int r = -pthread_create(&rp->readahead_thread, NULL, readahead_main, rp);

	rp->readahead_started = r == 0;
	return r;
}

void read_path_readahead_stop(struct read_path *rp)
{
	if (!rp->readahead_started)
		return;
	pthread_mutex_lock(&rp->readahead_lock);
	rp->stopping = true;
	pthread_cond_broadcast(&rp->readahead_cond);
	pthread_mutex_unlock(&rp->readahead_lock);
	pthread_join(rp->readahead_thread, NULL);
	rp->readahead_started = false;
}

/* A sequential reader gets the chunks of the next two runs fetched ahead. */
static void read_ahead(struct read_path *rp, struct cairn_content_reader *reader)
{
	struct cairn_index_run next;

	for (uint32_t ahead = 1; ahead <= 2; ahead++) {
		if (cairn_content_peek(reader, ahead, &next) < 0 || next.hole)
			continue;
		struct cached_chunk *cached = chunk_cache_get(rp->chunks, &next.chunk_id);
		if (cached)
			chunk_cache_put(rp->chunks, cached);
		else
			readahead_push(rp, &next);
	}
}

/* ---- the fallback read ---- */

/* Binds this thread's reader to the file unless it is bound to it already:
 * sequential reads of one file then cost no lookup of its description. */
static int reader_bind(struct read_ctx *ctx, struct cairn_index *idx, uint64_t ino)
{
	if (ctx->bound_idx == idx && ctx->bound_ino == ino)
		return 0;
	ctx->bound_idx = NULL;
	int r = cairn_content_open(ctx->reader, idx, ino, &ctx->bound_file);
	if (r < 0)
		return r;
	ctx->bound_idx = idx;
	ctx->bound_ino = ino;
	return 0;
}

ssize_t read_path_read(struct read_path *rp, struct cairn_index *idx, uint64_t ino,
		       _Atomic uint64_t *next_offset, uint64_t offset, void *buf, size_t len)
{
	struct read_ctx *ctx = read_ctx(rp);

	if (!ctx)
		return -ENOMEM;
	int r = reader_bind(ctx, idx, ino);
	if (r < 0)
		return r;
	if (offset >= ctx->bound_file.size)
		return 0;
	bool sequential = atomic_load(next_offset) == offset;
	/* A reader that went through the first MiB in order reads the file
	 * whole, most likely (cat, cp, tar): on a remote store, the rest is
	 * fetched in the background now, in few large parallel GETs, as for a
	 * blob (a no-op on a local store, or once the blocks are here). */
	if (sequential && offset < PREFETCH_AFTER && offset + len >= PREFETCH_AFTER &&
	    ctx->bound_file.size > PREFETCH_AFTER)
		(void)cairn_content_prefetch(ctx->reader); /* best effort */
	int64_t n = cairn_content_read(ctx->reader, offset, buf, len);
	if (n < 0) {
		ctx->bound_idx = NULL; /* whatever state it was left in */
		return n;
	}
	atomic_store(next_offset, offset + (uint64_t)n);
	if (sequential && n > 0)
		read_ahead(rp, ctx->reader);
	return (ssize_t)n;
}

struct cairn_content_reader *read_path_reader(struct read_path *rp)
{
	struct read_ctx *ctx = read_ctx(rp);

	if (!ctx)
		return NULL;
	ctx->bound_idx = NULL; /* the caller binds it to its own file */
	return ctx->reader;
}

/* ---- setting up ---- */

int read_path_new(struct cairn_store *store, uint64_t chunk_cache_bound,
		  const struct mount_log *log, struct read_path **ret)
{
	struct read_path *rp = calloc(1, sizeof(*rp));

	if (!rp)
		return -ENOMEM;
	int r = -pthread_key_create(&rp->ctx_key, read_ctx_release);
	if (r < 0) {
		free(rp);
		return r;
	}
	rp->store = store;
	rp->log = log;
	pthread_mutex_init(&rp->readahead_lock, NULL);
	pthread_mutex_init(&rp->near_lock, NULL);
	pthread_cond_init(&rp->readahead_cond, NULL);
	r = chunk_cache_new(chunk_cache_bound, &rp->chunks);
	if (r < 0) {
		read_path_free(rp);
		return r;
	}
	*ret = rp;
	return 0;
}

void read_path_free(struct read_path *rp)
{
	if (!rp)
		return;
	read_path_readahead_stop(rp);
	/* Threads that exited released their buffers; this one's go now. */
	read_ctx_release(pthread_getspecific(rp->ctx_key));
	pthread_key_delete(rp->ctx_key);
	chunk_cache_free(rp->chunks);
	pthread_mutex_destroy(&rp->readahead_lock);
	pthread_mutex_destroy(&rp->near_lock);
	pthread_cond_destroy(&rp->readahead_cond);
	free(rp);
}
