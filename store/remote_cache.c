/* remote_cache.c: the per-host mirror's pack files held under one size
 * bound (CAIRN_REMOTE_CACHE_MAX, or cairn_store_set_cache_max; default 10%
 * of the mirror's filesystem). The bytes counted are those the pack files
 * hold on disk (st_blocks: they are sparse). After every few MiB fetched,
 * a fetcher sums them over packs/ and, when near or over the bound, evicts
 * whole pack files least recently used first, down to a low water mark
 * under it: a pack's .have map's mtime is its last use (written by every
 * fetch, touched by a read at most once a second), so mounts and commands
 * on the host share the order. Eviction clears the .have map first and
 * then punches the pack's bytes out. Only packs the handle's manifest
 * lists are evicted (a writer's unpushed pack is the only copy of its
 * bytes), and never one a reader of this handle holds between its fetch
 * and its pread (store_remote_ensure_hold). A reader in another process
 * that loses that race reads zeros, which fail the chunk check and are
 * fetched once more (store_remote_refetch): never wrong bytes.
 */
#include "remote.h"

#include "store_internal.h"

#include <dirent.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <time.h>

/* A check evicts once the packs are within max/HEADROOM of the bound, and
 * then down to max - max/LOW_WATER: the filesystem adds blocks of its own
 * to a file after the check has counted it (ext4 allocates an extent tree
 * block for a sparse pack when writeback places its data, seconds after the
 * write), and a check that left the packs a few KiB under the bound would
 * see them over it with nothing left to fetch and check again. */
#define HEADROOM  64
#define LOW_WATER 16
/* A check after this many fetched bytes at most (less for small bounds). */
#define CHECK_EVERY (16u << 20)
/* ... and after this many when the last check could not get under it. */
#define RECHECK (256u << 10)

struct cached_pack {
	uint32_t pack_num;
	uint64_t bytes; /* on disk */
	struct timespec used;
};

static uint64_t cache_max(struct remote_state *rs, int dirfd)
{
	struct statvfs st;
	const char *env = getenv("CAIRN_REMOTE_CACHE_MAX");

	if (rs->cache_max)
		return rs->cache_max;
	if (env && *env && cairn_parse_size(env, &rs->cache_max) == 0 && rs->cache_max)
		return rs->cache_max;
	if (fstatvfs(dirfd, &st) == 0)
		rs->cache_max = (uint64_t)st.f_blocks * st.f_frsize / 10;
	if (!rs->cache_max)
		rs->cache_max = UINT64_MAX;
	return rs->cache_max;
}

void remote_pack_touch(struct remote_pack_cache *pack)
{
	time_t now = time(NULL);

	if (pack->have_fd >= 0 && pack->touched != now && futimens(pack->have_fd, NULL) == 0)
		pack->touched = now;
}

static int used_compare(const void *a, const void *b)
{
	const struct cached_pack *x = a, *y = b;

	if (x->used.tv_sec != y->used.tv_sec)
		return x->used.tv_sec < y->used.tv_sec ? -1 : 1;
	return (x->used.tv_nsec > y->used.tv_nsec) - (x->used.tv_nsec < y->used.tv_nsec);
}

/* The mirror's pack files with their bytes on disk; *ret_total their sum. */
static int list_packs(int packs_fd, struct cached_pack **ret, size_t *ret_count,
		      uint64_t *ret_total)
{
	struct cached_pack *packs = NULL;
	size_t count = 0, cap = 0;
	struct dirent *de;
	struct stat st;
	char have[32];

	int fd = fcntl(packs_fd, F_DUPFD_CLOEXEC, 0);
	DIR *dir = fd >= 0 ? fdopendir(fd) : NULL;
	if (!dir) {
		if (fd >= 0)
			close(fd);
		return -errno;
	}
	rewinddir(dir);
	*ret_total = 0;
	while ((de = readdir(dir))) {
		uint32_t num;
		char end;
		if (strlen(de->d_name) != 13 ||
		    sscanf(de->d_name, "%8" SCNx32 ".pac%c", &num, &end) != 2 || end != 'k' ||
		    fstatat(packs_fd, de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0 ||
		    !S_ISREG(st.st_mode) || st.st_blocks == 0)
			continue;
		if (count == cap) {
			struct cached_pack *more =
				realloc(packs, (cap = cap ? cap * 2 : 64) * sizeof(*packs));
			if (!more) {
				free(packs);
				closedir(dir);
				return -ENOMEM;
			}
			packs = more;
		}
		struct cached_pack *p = &packs[count++];
		*p = (struct cached_pack){.pack_num = num, .bytes = (uint64_t)st.st_blocks * 512};
		cairn_format(have, sizeof(have), "%08" PRIx32 ".have", num);
		if (fstatat(packs_fd, have, &st, AT_SYMLINK_NOFOLLOW) == 0)
			p->used = st.st_mtim;
		*ret_total += p->bytes;
	}
	closedir(dir);
	*ret = packs;
	*ret_count = count;
	return 0;
}

/* Clears pack_num's .have map, then drops its bytes (the file keeps its
 * size, sparse, as a sync makes it). */
static int evict(int packs_fd, uint32_t pack_num)
{
	char name[32];
	struct stat st;

	cairn_format(name, sizeof(name), "%08" PRIx32 ".have", pack_num);
	int fd = cairn_open_file_beneath(packs_fd, name, O_WRONLY, 0);
	if (fd >= 0) {
		int r = ftruncate(fd, 0) < 0 ? -errno : 0;
		close(fd);
		if (r < 0)
			return r;
	} else if (fd != -ENOENT) {
		return fd;
	}
	cairn_format(name, sizeof(name), "%08" PRIx32 ".pack", pack_num);
	fd = cairn_open_file_beneath(packs_fd, name, O_WRONLY, 0);
	if (fd < 0)
		return fd;
	int r = fstat(fd, &st) < 0 ? -errno : 0;
	if (r == 0 &&
	    fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 0, st.st_size) < 0 &&
	    (ftruncate(fd, 0) < 0 || ftruncate(fd, st.st_size) < 0))
		r = -errno;
	close(fd);
	return r;
}

/* This handle's entry of pack_num, or NULL. */
static struct remote_pack_cache *cached(const struct remote_state *rs, uint32_t pack_num)
{
	const struct remote_pack *p = remote_manifest_pack(&rs->manifest, pack_num);

	return p && rs->packs ? &rs->packs[p - rs->manifest.packs] : NULL;
}

/* Only a pack the remote has (the manifest lists it: a writer's pack not
 * pushed yet is the only copy), and none a reader holds or a GET fills. */
static bool evictable(const struct remote_state *rs, uint32_t pack_num)
{
	const struct remote_pack_cache *pack = cached(rs, pack_num);

	return pack && pack->readers == 0 && pack->fetching == 0;
}

/* What this handle knew present of an evicted pack is gone. */
static void evicted(const struct remote_state *rs, uint32_t pack_num)
{
	struct remote_pack_cache *pack = cached(rs, pack_num);

	if (pack && pack->blocks)
		memset(pack->blocks, BLOCK_UNKNOWN, (pack->size + REMOTE_BLOCK - 1) / REMOTE_BLOCK);
	if (pack) {
		memset(pack->streams, 0, sizeof(pack->streams));
		pack->demand = 0;
		pack->misses = 0;
		pack->whole_queued = false;
	}
}

static void cache_check(const struct cairn_store *store, uint64_t bytes, bool now)
{
	struct remote_state *rs = store->remote;
	struct cached_pack *packs = NULL;
	size_t count = 0;
	uint64_t total = 0;

	uint64_t max = cache_max(rs, store->dirfd);
	uint64_t every = max / 8 < CHECK_EVERY ? max / 8 : CHECK_EVERY;
	rs->cache_fetched += bytes;
	if (max == UINT64_MAX || rs->cache_fetched < (now && rs->cache_fetched ? 1 : every))
		return;
	rs->cache_fetched = 0;
	if (list_packs(store->packs_dirfd, &packs, &count, &total) < 0)
		return; /* the next check tries again */
	uint64_t high = max - max / HEADROOM, low = max - max / LOW_WATER;
	if (total > high && count > 0) {
		qsort(packs, count, sizeof(*packs), used_compare);
		for (size_t i = 0; i < count && total > low; i++)
			if (evictable(rs, packs[i].pack_num) &&
			    evict(store->packs_dirfd, packs[i].pack_num) == 0) {
				evicted(rs, packs[i].pack_num);
				total -= packs[i].bytes;
			}
	}
	/* Still over (the packs over it were being fetched or read): again
	 * soon, not after the next few MiB. */
	if (total > high)
		rs->cache_fetched = every - (every < RECHECK ? every : RECHECK);
	free(packs);
}

void remote_cache_fetched(const struct cairn_store *store, uint64_t bytes)
{
	cache_check(store, bytes, false);
}

void remote_cache_settle(const struct cairn_store *store)
{
	cache_check(store, 0, true);
}

int cairn_store_set_cache_max(struct cairn_store *store, uint64_t bytes)
{
	struct remote_state *rs = store->remote;

	if (!rs)
		return 0;
	pthread_mutex_lock(&rs->lock);
	rs->cache_max = bytes;
	pthread_mutex_unlock(&rs->lock);
	return 0;
}
