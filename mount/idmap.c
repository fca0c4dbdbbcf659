/* idmap.c: the owners and modes a mount shows: -o mapowners (an archive's
 * user and group names looked up in the local passwd and group databases,
 * as borg mount does), uidmap=/gidmap= ranges, uid=/gid=, and
 * umask/dmask/fmask. A lookup through NSS can take milliseconds (LDAP,
 * sssd), so each distinct name is looked up once per mount and its answer,
 * found or not, kept in a small hash table.
 */
#include "mount_internal.h"

#include <grp.h>
#include <pwd.h>
#include <string.h>
#include <sys/stat.h>

#define NAME_CACHE_MAX 65536 /* names remembered; past that, looked up each time */

struct name_entry {
	char *name;
	int64_t id; /* -1: unknown here */
};

struct name_cache {
	pthread_mutex_t lock;       /* protects entries and count */
	struct name_entry *entries; /* open addressing, power-of-two capacity */
	size_t cap, count;
};

struct idmap {
	const struct cairn_mount_options *o; /* borrowed */
	struct name_cache users, groups;
};

static uint64_t hash_name(const char *name)
{
	uint64_t hash = 0xcbf29ce484222325ull;

	for (const unsigned char *p = (const unsigned char *)name; *p; p++)
		hash = (hash ^ *p) * 0x100000001b3ull;
	return hash;
}

/* The local id of a user (is_group false) or group name, or -1. */
static int64_t nss_lookup(const char *name, bool is_group)
{
	long max = sysconf(is_group ? _SC_GETGR_R_SIZE_MAX : _SC_GETPW_R_SIZE_MAX);
	size_t size = max > 0 ? (size_t)max : 16384;

	for (int tries = 0; tries < 8; tries++, size *= 2) {
		_cleanup_free_ char *buf = malloc(size);
		struct passwd pw, *pw_found = NULL;
		struct group gr, *gr_found = NULL;
		if (!buf)
			return -1;
		int r = is_group ? getgrnam_r(name, &gr, buf, size, &gr_found)
				 : getpwnam_r(name, &pw, buf, size, &pw_found);
		if (r == ERANGE)
			continue;
		if (r != 0)
			return -1;
		if (is_group)
			return gr_found ? (int64_t)gr_found->gr_gid : -1;
		return pw_found ? (int64_t)pw_found->pw_uid : -1;
	}
	return -1;
}

static struct name_entry *cache_slot(struct name_cache *cache, const char *name)
{
	for (size_t i = hash_name(name) & (cache->cap - 1);; i = (i + 1) & (cache->cap - 1))
		if (!cache->entries[i].name || strcmp(cache->entries[i].name, name) == 0)
			return &cache->entries[i];
}

static int cache_grow(struct name_cache *cache)
{
	size_t cap = cache->cap ? cache->cap * 2 : 64;
	struct name_entry *old = cache->entries;
	size_t old_cap = cache->cap;

	cache->entries = calloc(cap, sizeof(*cache->entries));
	if (!cache->entries) {
		cache->entries = old;
		return -ENOMEM;
	}
	cache->cap = cap;
	for (size_t i = 0; i < old_cap; i++)
		if (old[i].name)
			*cache_slot(cache, old[i].name) = old[i];
	free(old);
	return 0;
}

/* Remembers name's answer, unless the cache is full or out of memory (the
 * name is then looked up again next time). Under the lock. */
static void cache_insert(struct name_cache *cache, const char *name, int64_t id)
{
	if (cache->count >= NAME_CACHE_MAX ||
	    ((cache->count + 1) * 2 > cache->cap && cache_grow(cache) < 0))
		return;
	char *copy = strdup(name);
	if (copy) {
		*cache_slot(cache, name) = (struct name_entry){copy, id};
		cache->count++;
	}
}

/* The local id of name, through the cache. The lock is held across the NSS
 * call: the first user of a name waits for it, the others find it. */
static int64_t cache_lookup(struct name_cache *cache, const char *name, bool is_group)
{
	int64_t id;

	pthread_mutex_lock(&cache->lock);
	struct name_entry *e = cache->cap ? cache_slot(cache, name) : NULL;
	if (e && e->name) {
		id = e->id;
	} else {
		id = nss_lookup(name, is_group);
		cache_insert(cache, name, id);
	}
	pthread_mutex_unlock(&cache->lock);
	return id;
}

static void cache_release(struct name_cache *cache)
{
	for (size_t i = 0; i < cache->cap; i++)
		free(cache->entries[i].name);
	free(cache->entries);
	pthread_mutex_destroy(&cache->lock);
}

int idmap_new(const struct cairn_mount_options *o, struct idmap **ret)
{
	struct idmap *map = calloc(1, sizeof(*map));

	if (!map)
		return -ENOMEM;
	map->o = o;
	pthread_mutex_init(&map->users.lock, NULL);
	pthread_mutex_init(&map->groups.lock, NULL);
	*ret = map;
	return 0;
}

void idmap_free(struct idmap *map)
{
	if (!map)
		return;
	cache_release(&map->users);
	cache_release(&map->groups);
	free(map);
}

static uint32_t map_range(const struct cairn_mount_id_range *ranges, unsigned count, uint32_t id)
{
	for (unsigned i = 0; i < count; i++)
		if (id >= ranges[i].from && id - ranges[i].from < ranges[i].count)
			return ranges[i].to + (id - ranges[i].from);
	return id;
}

static uint32_t map_owner(struct idmap *map, bool is_group, const char *name, uint32_t id)
{
	const struct cairn_mount_options *o = map->o;

	if ((is_group ? o->gid : o->uid) >= 0)
		return (uint32_t)(is_group ? o->gid : o->uid);
	if (o->mapowners && name && *name) {
		int64_t local = cache_lookup(is_group ? &map->groups : &map->users, name, is_group);
		if (local >= 0)
			return (uint32_t)local;
	}
	return is_group ? map_range(o->gidmap, o->gidmap_count, id)
			: map_range(o->uidmap, o->uidmap_count, id);
}

void idmap_apply(struct idmap *map, const struct cairn_index_stat *in, struct stat *st)
{
	const struct cairn_mount_options *o = map->o;
	int32_t mask = S_ISDIR(in->mode) ? o->dmask : o->fmask;

	if (o->umask >= 0)
		st->st_mode &= ~(mode_t)(o->umask & 07777);
	if (mask >= 0)
		st->st_mode &= ~(mode_t)(mask & 07777);
	st->st_uid = map_owner(map, false, in->user, in->uid);
	st->st_gid = map_owner(map, true, in->group, in->gid);
}
