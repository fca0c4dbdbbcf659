/* chunks.c: the mount's cache of decompressed chunks, shared by every thread
 * on the fallback read path. Entries are refcounted, so a reader copies out
 * of a chunk without holding the lock, and evicted least-recently-used once
 * the cache holds more than its bound. Chunks are verified against their ids
 * before they get here (the store's unpacker does it), so a hit is as good
 * as a fresh read.
 */
#include "mount_internal.h"

#include <fcntl.h>
#include <inttypes.h>
#include <malloc.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#define BUCKETS  65536u
#define TRIM_MIN (2u << 20)

struct chunk_cache {
	pthread_mutex_t lock; /* protects everything below */
	struct cached_chunk *buckets[BUCKETS];
	struct cached_chunk lru; /* sentinel: lru.lru_next is the most recent */
	uint64_t bytes, bound;
	uint64_t evicted; /* bytes evicted since the last trim */
};

/* What a cached chunk costs in memory: its bytes, its record, and the
 * allocator's headers. The bound applies to this, not to bytes alone, so a
 * cache full of tiny chunks stays within it too. */
static uint64_t chunk_cost(uint32_t size)
{
	return (uint64_t)size + sizeof(struct cached_chunk) + 32;
}

/* The process's anonymous resident bytes (resident less file-backed and
 * shared, from /proc/self/statm); UINT64_MAX when it cannot be read, so the
 * caller trims as if it were over. */
static uint64_t anonymous_resident(void)
{
	char buf[128];
	uint64_t size, resident, shared;
	int fd = open("/proc/self/statm", O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		return UINT64_MAX;
	ssize_t n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return UINT64_MAX;
	buf[n] = '\0';
	if (sscanf(buf, "%" SCNu64 " %" SCNu64 " %" SCNu64, &size, &resident, &shared) != 3 ||
	    shared > resident)
		return UINT64_MAX;
	return (resident - shared) * (uint64_t)sysconf(_SC_PAGESIZE);
}

static size_t bucket_of(const struct cairn_id *id)
{
	uint32_t key;

	memcpy(&key, id->bytes + 4, sizeof(key));
	return key & (BUCKETS - 1);
}

int chunk_cache_new(uint64_t bound, struct chunk_cache **ret)
{
	struct chunk_cache *cache = calloc(1, sizeof(*cache));

	if (!cache)
		return -ENOMEM;
	pthread_mutex_init(&cache->lock, NULL);
	cache->lru.lru_next = cache->lru.lru_prev = &cache->lru;
	cache->bound = bound;
	*ret = cache;
	return 0;
}

static void chunk_free(struct cached_chunk *chunk)
{
	free(chunk->data);
	free(chunk);
}

void chunk_cache_free(struct chunk_cache *cache)
{
	if (!cache)
		return;
	for (struct cached_chunk *c = cache->lru.lru_next, *next; c != &cache->lru; c = next) {
		next = c->lru_next;
		chunk_free(c);
	}
	pthread_mutex_destroy(&cache->lock);
	free(cache);
}

static void lru_unlink(struct cached_chunk *chunk)
{
	chunk->lru_prev->lru_next = chunk->lru_next;
	chunk->lru_next->lru_prev = chunk->lru_prev;
}

static void lru_push_front(struct chunk_cache *cache, struct cached_chunk *chunk)
{
	chunk->lru_next = cache->lru.lru_next;
	chunk->lru_prev = &cache->lru;
	cache->lru.lru_next->lru_prev = chunk;
	cache->lru.lru_next = chunk;
}

static struct cached_chunk *find_locked(struct chunk_cache *cache, const struct cairn_id *id)
{
	for (struct cached_chunk *c = cache->buckets[bucket_of(id)]; c; c = c->hash_next)
		if (cairn_id_compare(&c->id, id) == 0)
			return c;
	return NULL;
}

static void unhash_locked(struct chunk_cache *cache, struct cached_chunk *chunk)
{
	struct cached_chunk **p = &cache->buckets[bucket_of(&chunk->id)];

	while (*p != chunk)
		p = &(*p)->hash_next;
	*p = chunk->hash_next;
	lru_unlink(chunk);
	cache->bytes -= chunk_cost(chunk->size);
}

/* Drops unreferenced chunks from the cold end until under the bound; the
 * chunks are freed after the lock is released. */
static struct cached_chunk *evict_locked(struct chunk_cache *cache)
{
	struct cached_chunk *doomed = NULL;

	for (struct cached_chunk *c = cache->lru.lru_prev, *prev;
	     c != &cache->lru && cache->bytes > cache->bound; c = prev) {
		prev = c->lru_prev;
		if (atomic_load(&c->refs) > 1)
			continue;
		unhash_locked(cache, c);
		cache->evicted += chunk_cost(c->size);
		c->hash_next = doomed;
		doomed = c;
	}
	return doomed;
}

struct cached_chunk *chunk_cache_get(struct chunk_cache *cache, const struct cairn_id *id)
{
	pthread_mutex_lock(&cache->lock);
	struct cached_chunk *chunk = find_locked(cache, id);
	if (chunk) {
		atomic_fetch_add(&chunk->refs, 1);
		lru_unlink(chunk);
		lru_push_front(cache, chunk);
	}
	pthread_mutex_unlock(&cache->lock);
	return chunk;
}

struct cached_chunk *chunk_cache_insert(struct chunk_cache *cache, const struct cairn_id *id,
					uint8_t *data, uint32_t size)
{
	struct cached_chunk *chunk = calloc(1, sizeof(*chunk));

	if (!chunk) {
		free(data);
		return NULL;
	}
	chunk->id = *id;
	chunk->size = size;
	chunk->data = data;
	atomic_init(&chunk->refs, 2); /* the cache's and the caller's */
	pthread_mutex_lock(&cache->lock);
	struct cached_chunk *existing = find_locked(cache, id);
	if (existing) {
		atomic_fetch_add(&existing->refs, 1);
	} else {
		size_t bucket = bucket_of(id);
		chunk->hash_next = cache->buckets[bucket];
		cache->buckets[bucket] = chunk;
		lru_push_front(cache, chunk);
		cache->bytes += chunk_cost(size);
	}
	struct cached_chunk *doomed = evict_locked(cache);
	bool check = cache->evicted >= cache->bound / 8 + TRIM_MIN;
	if (check)
		cache->evicted = 0;
	pthread_mutex_unlock(&cache->lock);
	if (existing)
		chunk_free(chunk);
	while (doomed) {
		struct cached_chunk *next = doomed->hash_next;
		chunk_cache_put(cache, doomed);
		doomed = next;
	}
	/* Chunks of every size come and go in LRU order and leave holes in the
	 * allocator's arenas that it never returns on its own. Each time an
	 * eighth of the bound has been evicted, the free pages go back if the
	 * daemon's anonymous memory has grown past the bound and a quarter:
	 * not every time, since pages handed back are faulted in (and zeroed)
	 * again by the next chunks, which cost a sequential read a quarter of
	 * its time when every check trimmed. */
	if (check && anonymous_resident() > cache->bound + cache->bound / 4 + 2 * TRIM_MIN)
		malloc_trim(0);
	return existing ? existing : chunk;
}

void chunk_cache_put(struct chunk_cache *cache, struct cached_chunk *chunk)
{
	(void)cache;
	if (chunk && atomic_fetch_sub(&chunk->refs, 1) == 1)
		chunk_free(chunk);
}

uint64_t chunk_cache_bytes(struct chunk_cache *cache)
{
	pthread_mutex_lock(&cache->lock);
	uint64_t bytes = cache->bytes;
	pthread_mutex_unlock(&cache->lock);
	return bytes;
}
