/* read.c: file contents on the daemon's side: the fallback read path (runs
 * located by binary search, chunks through the shared cache, the next chunks
 * of a sequential reader fetched ahead by the readahead thread) and the
 * whole-file copy and check that the blob cache makes and verifies blobs
 * with. It owns the chunk cache, the per-thread buffers and the readahead
 * queue, and calls nothing of the mount above it.
 */
#include "mount_internal.h"

#include <string.h>

#define READAHEAD_MAX 16

struct read_path {
	struct cairn_store *store;   /* borrowed */
	const struct mount_log *log; /* borrowed */
	struct chunk_cache *chunks;
	pthread_key_t ctx_key; /* one struct read_ctx per thread */

	pthread_t readahead_thread;
	bool readahead_started;
	pthread_mutex_t readahead_lock; /* protects the queue and stopping */
	pthread_cond_t readahead_cond;
	struct cairn_id readahead_queue[READAHEAD_MAX];
	size_t readahead_len;
	bool stopping;
};

/* Each thread that reads keeps an unpacker and a chunk_max scratch buffer:
 * chunks are decompressed into the scratch and cached in an allocation of
 * their exact size, so the cache's bound is what it holds. */
struct read_ctx {
	struct cairn_unpacker *unpacker;
	uint8_t *scratch;
	uint8_t *reply; /* the thread's reply buffer for fallback reads */
	size_t reply_cap;
};

static void read_ctx_release(void *arg)
{
	struct read_ctx *ctx = arg;

	if (!ctx)
		return;
	cairn_unpacker_free(ctx->unpacker);
	free(ctx->scratch);
	free(ctx->reply);
	free(ctx);
}

static struct read_ctx *read_ctx(struct read_path *rp)
{
	struct read_ctx *ctx = pthread_getspecific(rp->ctx_key);

	if (ctx)
		return ctx;
	ctx = calloc(1, sizeof(*ctx));
	if (!ctx)
		return NULL;
	ctx->scratch = malloc(cairn_store_params(rp->store)->chunk_max);
	if (!ctx->scratch || cairn_unpacker_new(rp->store, &ctx->unpacker) < 0 ||
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

	chunk_cache_put(rp->chunks, have ? have : cache_copy(rp, id, data, size));
}

/* A referenced chunk from the cache, decompressing (and verifying) it on a
 * miss. NULL on failure, logged with the store's message. */
static struct cached_chunk *chunk_get(struct read_path *rp, const struct cairn_id *id)
{
	struct cached_chunk *chunk = chunk_cache_get(rp->chunks, id);
	if (chunk)
		return chunk;
	struct read_ctx *ctx = read_ctx(rp);
	if (!ctx)
		return NULL;
	uint32_t max = cairn_store_params(rp->store)->chunk_max;
	int64_t n = cairn_unpacker_get_neighbours(ctx->unpacker, id, ctx->scratch, max,
						  cache_neighbour, rp);
	if (n < 0) {
		mount_log(rp->log, CAIRN_LOG_ERROR, "%s", cairn_unpacker_error(ctx->unpacker));
		return NULL;
	}
	return cache_copy(rp, id, ctx->scratch, (uint32_t)n);
}

/* ---- readahead ---- */

static void readahead_push(struct read_path *rp, const struct cairn_id *id)
{
	pthread_mutex_lock(&rp->readahead_lock);
	if (rp->readahead_len < READAHEAD_MAX) {
		rp->readahead_queue[rp->readahead_len++] = *id;
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
		struct cairn_id id = rp->readahead_queue[0];
		rp->readahead_len--;
		memmove(rp->readahead_queue, rp->readahead_queue + 1,
			rp->readahead_len * sizeof(rp->readahead_queue[0]));
		pthread_mutex_unlock(&rp->readahead_lock);
		chunk_cache_put(rp->chunks, chunk_get(rp, &id));
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
static void read_ahead(struct read_path *rp, struct cairn_index *idx, uint64_t ino,
		       const struct cairn_index_file *file, uint32_t run)
{
	struct cairn_index_run next;

	for (uint32_t i = run + 1; i <= run + 2 && i < file->run_count; i++) {
		if (cairn_index_run(idx, ino, i, &next) < 0 || next.hole)
			continue;
		struct cached_chunk *cached = chunk_cache_get(rp->chunks, &next.chunk_id);
		if (cached)
			chunk_cache_put(rp->chunks, cached);
		else
			readahead_push(rp, &next.chunk_id);
	}
}

/* ---- the fallback read ---- */

static int copy_run(struct read_path *rp, const struct cairn_index_run *run, uint64_t in_run,
		    void *out, size_t n)
{
	if (run->hole) {
		memset(out, 0, n);
		return 0;
	}
	struct cached_chunk *chunk = chunk_get(rp, &run->chunk_id);
	if (!chunk)
		return -EIO;
	int r = 0;
	if (chunk->size != run->size)
		r = -EIO;
	else
		memcpy(out, chunk->data + in_run, n);
	chunk_cache_put(rp->chunks, chunk);
	return r;
}

ssize_t read_path_read(struct read_path *rp, struct cairn_index *idx, uint64_t ino,
		       const struct cairn_index_file *file, _Atomic uint64_t *next_offset,
		       uint64_t offset, void *buf, size_t len)
{
	struct cairn_index_run run;
	uint32_t run_number = 0;
	size_t done = 0;

	if (offset >= file->size)
		return 0;
	if (len > file->size - offset)
		len = (size_t)(file->size - offset);
	bool sequential = atomic_load(next_offset) == offset;
	while (done < len) {
		uint64_t at = offset + done;
		int r = cairn_index_find_run(idx, ino, at, &run_number);
		if (r == 0)
			r = cairn_index_run(idx, ino, run_number, &run);
		if (r < 0)
			return r == -ERANGE ? (ssize_t)done : -EIO;
		uint64_t in_run = at - run.offset;
		size_t n =
			run.size - in_run < len - done ? (size_t)(run.size - in_run) : len - done;
		r = copy_run(rp, &run, in_run, (uint8_t *)buf + done, n);
		if (r < 0)
			return r;
		done += n;
	}
	atomic_store(next_offset, offset + done);
	if (sequential && done > 0)
		read_ahead(rp, idx, ino, file, run_number);
	return (ssize_t)done;
}

/* ---- whole files, for blobs ---- */

int read_path_copy_file(struct read_path *rp, struct cairn_index *idx, uint64_t ino,
			const struct cairn_index_file *file, int fd)
{
	struct cairn_index_run run;

	for (uint32_t i = 0; i < file->run_count; i++) {
		int r = cairn_index_run(idx, ino, i, &run);
		if (r < 0)
			return -EIO;
		if (run.hole)
			return -EOPNOTSUPP; /* sparse files are never made into blobs */
		struct cached_chunk *chunk = chunk_get(rp, &run.chunk_id);
		if (!chunk)
			return -EIO;
		r = chunk->size == run.size ? cairn_store_chunk_verify(rp->store, &run.chunk_id,
								       chunk->data, chunk->size)
					    : -EBADMSG;
		if (r == 0)
			r = cairn_write_all(fd, chunk->data, chunk->size);
		chunk_cache_put(rp->chunks, chunk);
		if (r < 0)
			return r == -ENOENT ? -EBADMSG : r;
	}
	return 0;
}

int read_path_check_copy(struct read_path *rp, struct cairn_index *idx, uint64_t ino,
			 const struct cairn_index_file *file, int fd)
{
	const uint32_t chunk_max = cairn_store_params(rp->store)->chunk_max;
	const size_t window = chunk_max > (4u << 20) ? chunk_max : (4u << 20);
	struct cairn_index_run run;
	uint64_t base = 0, filled = 0; /* buf holds the blob's bytes [base, base + filled) */

	_cleanup_free_ uint8_t *buf = malloc(window);
	if (!buf)
		return -ENOMEM;
	for (uint32_t i = 0; i < file->run_count; i++) {
		int r = cairn_index_run(idx, ino, i, &run);
		if (r < 0)
			return -EIO;
		if (run.hole || run.size > chunk_max)
			return -EBADMSG;
		/* Read a window of many runs at a time, starting at this one. */
		if (run.offset + run.size > base + filled) {
			uint64_t want = file->size - run.offset;
			ssize_t n = cairn_pread_full(fd, buf, want < window ? (size_t)want : window,
						     (off_t)run.offset);
			if (n < 0)
				return (int)n;
			base = run.offset;
			filled = (uint64_t)n;
			if (run.size > filled)
				return -EBADMSG; /* the blob is shorter than its runs */
		}
		if (cairn_store_chunk_verify(rp->store, &run.chunk_id, buf + (run.offset - base),
					     run.size) < 0)
			return -EBADMSG;
	}
	return 0;
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
	pthread_cond_destroy(&rp->readahead_cond);
	free(rp);
}
