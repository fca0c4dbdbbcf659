/* read.c: file contents on the daemon's side: the fallback read path (runs
 * located by binary search, chunks through the shared cache, the next chunks
 * of a sequential reader fetched ahead) and the whole-file copy that makes a
 * blob for passthrough.
 */
#include "mount_internal.h"

#include <string.h>

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

	cairn_unpacker_free(ctx->unpacker);
	free(ctx->scratch);
	free(ctx->reply);
	free(ctx);
}

static struct read_ctx *read_ctx(struct fs *fs)
{
	struct read_ctx *ctx = pthread_getspecific(fs->unpacker_key);

	if (ctx)
		return ctx;
	ctx = calloc(1, sizeof(*ctx));
	if (!ctx)
		return NULL;
	ctx->scratch = malloc(cairn_store_params(fs->store)->chunk_max);
	if (!ctx->scratch || cairn_unpacker_new(fs->store, &ctx->unpacker) < 0 ||
	    pthread_setspecific(fs->unpacker_key, ctx) != 0) {
		read_ctx_release(ctx);
		return NULL;
	}
	return ctx;
}

uint8_t *fs_reply_buffer(struct fs *fs, size_t size)
{
	struct read_ctx *ctx = read_ctx(fs);

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

int fs_read_init(struct fs *fs)
{
	return -pthread_key_create(&fs->unpacker_key, read_ctx_release);
}

/* Caches a copy of a chunk's bytes in a block of their size; returns it
 * referenced, or NULL when out of memory. */
static struct cached_chunk *cache_copy(struct fs *fs, const struct cairn_id *id, const void *data,
				       uint32_t size)
{
	uint8_t *copy = malloc(size ? size : 1);

	if (!copy)
		return NULL;
	memcpy(copy, data, size);
	return chunk_cache_insert(fs->chunks, id, copy, size);
}

/* A small chunk's neighbours in its record, decompressed with it: cached
 * unless already there, so reading the next small files of a directory
 * costs no decompression (on whichever thread serves them). */
static void cache_neighbour(void *userdata, const struct cairn_id *id, const void *data,
			    uint32_t size)
{
	struct fs *fs = userdata;
	struct cached_chunk *have = chunk_cache_get(fs->chunks, id);

	chunk_cache_put(fs->chunks, have ? have : cache_copy(fs, id, data, size));
}

/* A referenced chunk from the cache, decompressing (and verifying) it on a
 * miss. NULL on failure, logged with the store's message. */
static struct cached_chunk *chunk_get(struct fs *fs, const struct cairn_id *id)
{
	struct cached_chunk *chunk = chunk_cache_get(fs->chunks, id);
	if (chunk)
		return chunk;
	struct read_ctx *ctx = read_ctx(fs);
	if (!ctx)
		return NULL;
	uint32_t max = cairn_store_params(fs->store)->chunk_max;
	int64_t n = cairn_unpacker_get_neighbours(ctx->unpacker, id, ctx->scratch, max,
						  cache_neighbour, fs);
	if (n < 0) {
		fs_log(fs, CAIRN_LOG_ERROR, "%s", cairn_unpacker_error(ctx->unpacker));
		return NULL;
	}
	return cache_copy(fs, id, ctx->scratch, (uint32_t)n);
}

/* ---- readahead ---- */

static void readahead_push(struct fs *fs, struct snap *snap, const struct cairn_id *id)
{
	pthread_mutex_lock(&fs->readahead_lock);
	if (fs->readahead_len < ARRAY_SIZE(fs->readahead_queue)) {
		fs->readahead_queue[fs->readahead_len] = *id;
		fs->readahead_snap[fs->readahead_len] = snap;
		fs->readahead_len++;
		pthread_cond_signal(&fs->readahead_cond);
	}
	pthread_mutex_unlock(&fs->readahead_lock);
}

void *fs_readahead_main(void *arg)
{
	struct fs *fs = arg;

	pthread_mutex_lock(&fs->readahead_lock);
	while (!fs->stopping) {
		if (fs->readahead_len == 0) {
			pthread_cond_wait(&fs->readahead_cond, &fs->readahead_lock);
			continue;
		}
		struct cairn_id id = fs->readahead_queue[0];
		fs->readahead_len--;
		memmove(fs->readahead_queue, fs->readahead_queue + 1,
			fs->readahead_len * sizeof(fs->readahead_queue[0]));
		memmove(fs->readahead_snap, fs->readahead_snap + 1,
			fs->readahead_len * sizeof(fs->readahead_snap[0]));
		pthread_mutex_unlock(&fs->readahead_lock);
		chunk_cache_put(fs->chunks, chunk_get(fs, &id));
		pthread_mutex_lock(&fs->readahead_lock);
	}
	pthread_mutex_unlock(&fs->readahead_lock);
	return NULL;
}

/* A sequential reader gets the chunks of the next two runs fetched ahead. */
static void read_ahead(struct fs *fs, struct open_file *of, struct cairn_index *idx, uint32_t run)
{
	struct cairn_index_run next;

	for (uint32_t i = run + 1; i <= run + 2 && i < of->file.run_count; i++) {
		if (cairn_index_run(idx, of->ino, i, &next) < 0 || next.hole)
			continue;
		struct cached_chunk *cached = chunk_cache_get(fs->chunks, &next.chunk_id);
		if (cached)
			chunk_cache_put(fs->chunks, cached);
		else
			readahead_push(fs, of->snap, &next.chunk_id);
	}
}

/* ---- the fallback read ---- */

static int copy_run(struct fs *fs, const struct cairn_index_run *run, uint64_t in_run, void *out,
		    size_t n)
{
	if (run->hole) {
		memset(out, 0, n);
		return 0;
	}
	struct cached_chunk *chunk = chunk_get(fs, &run->chunk_id);
	if (!chunk)
		return -EIO;
	int r = 0;
	if (chunk->size != run->size)
		r = -EIO;
	else
		memcpy(out, chunk->data + in_run, n);
	chunk_cache_put(fs->chunks, chunk);
	return r;
}

ssize_t fs_read_fallback(struct fs *fs, struct open_file *of, uint64_t offset, void *buf,
			 size_t len)
{
	struct cairn_index *idx;
	struct cairn_index_run run;
	uint32_t run_number = 0;
	size_t done = 0;

	int r = fs_index(fs, of->snap, &idx);
	if (r < 0)
		return r;
	if (offset >= of->file.size)
		return 0;
	if (len > of->file.size - offset)
		len = (size_t)(of->file.size - offset);
	bool sequential = atomic_load(&of->next_offset) == offset;
	while (done < len) {
		uint64_t at = offset + done;
		r = cairn_index_find_run(idx, of->ino, at, &run_number);
		if (r == 0)
			r = cairn_index_run(idx, of->ino, run_number, &run);
		if (r < 0)
			return r == -ERANGE ? (ssize_t)done : -EIO;
		uint64_t in_run = at - run.offset;
		size_t n =
			run.size - in_run < len - done ? (size_t)(run.size - in_run) : len - done;
		r = copy_run(fs, &run, in_run, (uint8_t *)buf + done, n);
		if (r < 0)
			return r;
		done += n;
	}
	atomic_store(&of->next_offset, offset + done);
	if (sequential && done > 0)
		read_ahead(fs, of, idx, run_number);
	return (ssize_t)done;
}

/* ---- whole files, for blobs ---- */

int fs_copy_file(struct fs *fs, struct snap *snap, uint64_t ino,
		 const struct cairn_index_file *file, int fd)
{
	struct cairn_index *idx;
	struct cairn_index_run run;

	int r = fs_index(fs, snap, &idx);
	if (r < 0)
		return r;
	for (uint32_t i = 0; i < file->run_count; i++) {
		r = cairn_index_run(idx, ino, i, &run);
		if (r < 0)
			return -EIO;
		if (run.hole)
			return -EOPNOTSUPP; /* sparse files are never made into blobs */
		struct cached_chunk *chunk = chunk_get(fs, &run.chunk_id);
		if (!chunk)
			return -EIO;
		r = chunk->size == run.size ? cairn_store_chunk_verify(fs->store, &run.chunk_id,
								       chunk->data, chunk->size)
					    : -EBADMSG;
		if (r == 0)
			r = cairn_write_all(fd, chunk->data, chunk->size);
		chunk_cache_put(fs->chunks, chunk);
		if (r < 0)
			return r == -ENOENT ? -EBADMSG : r;
	}
	return 0;
}

int fs_check_copy(struct fs *fs, struct snap *snap, uint64_t ino,
		  const struct cairn_index_file *file, int fd)
{
	const uint32_t chunk_max = cairn_store_params(fs->store)->chunk_max;
	const size_t window = chunk_max > (4u << 20) ? chunk_max : (4u << 20);
	struct cairn_index *idx;
	struct cairn_index_run run;
	uint64_t base = 0, filled = 0; /* buf holds the blob's bytes [base, base + filled) */

	int r = fs_index(fs, snap, &idx);
	if (r < 0)
		return r;
	_cleanup_free_ uint8_t *buf = malloc(window);
	if (!buf)
		return -ENOMEM;
	for (uint32_t i = 0; i < file->run_count; i++) {
		r = cairn_index_run(idx, ino, i, &run);
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
		if (cairn_store_chunk_verify(fs->store, &run.chunk_id, buf + (run.offset - base),
					     run.size) < 0)
			return -EBADMSG;
	}
	return 0;
}
