/* snaps.c: the snapshot table: which snapshots a mount serves, how a FUSE
 * inode names a snapshot and one of its inodes, and the lazy open of each
 * snapshot's index. Serving a whole store, snapshots get slots from a hash
 * of their names, so their inode numbers survive remounts; their indexes
 * are opened on first use, so a mount of a big store starts at once.
 */
#include "mount_internal.h"

#include <string.h>

struct snap_table {
	struct cairn_store *store;   /* borrowed */
	const struct mount_log *log; /* borrowed */
	bool whole_store;
	bool versions;      /* -o versions */
	struct snap *snaps; /* sorted by name */
	size_t count;
	uint32_t *slot_map; /* open addressing: slot -> snap index + 1 */
	size_t slot_map_cap;
};

/* ---- inodes ---- */

static struct snap *snap_by_slot(const struct snap_table *table, uint64_t slot)
{
	for (size_t s = slot & (table->slot_map_cap - 1);;
	     s = (s + 1) & (table->slot_map_cap - 1)) {
		uint32_t index = table->slot_map[s];
		if (index == 0)
			return NULL;
		if (table->snaps[index - 1].slot == slot)
			return &table->snaps[index - 1];
	}
}

int snap_table_decode(const struct snap_table *table, uint64_t ino, struct snap **ret_snap,
		      uint64_t *ret_ino)
{
	if (!table->whole_store) {
		*ret_snap = &table->snaps[0];
		*ret_ino = ino;
		return 0;
	}
	if (ino == CAIRN_INDEX_ROOT)
		return SNAP_STORE_ROOT;
	struct snap *snap = snap_by_slot(table, ino >> SLOT_SHIFT);
	if (!snap)
		return -ENOENT;
	*ret_snap = snap;
	*ret_ino = ino & ((1ull << SLOT_SHIFT) - 1);
	return 0;
}

uint64_t snap_encode(const struct snap *snap, uint64_t ino)
{
	return snap->slot ? snap->slot << SLOT_SHIFT | ino : ino;
}

/* ---- the table ---- */

bool snap_table_whole_store(const struct snap_table *table)
{
	return table->whole_store;
}

size_t snap_table_count(const struct snap_table *table)
{
	return table->count;
}

struct snap *snap_table_at(struct snap_table *table, size_t i)
{
	return &table->snaps[i];
}

struct snap *snap_table_find(struct snap_table *table, const char *name)
{
	size_t lo = 0, hi = table->count;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int c = strcmp(table->snaps[mid].name, name);
		if (c == 0)
			return &table->snaps[mid];
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return NULL;
}

int snap_index(struct snap_table *table, struct snap *snap, struct cairn_index **ret)
{
	struct cairn_index *idx = atomic_load_explicit(&snap->idx, memory_order_acquire);
	int r = 0;

	if (idx) {
		*ret = idx;
		return 0;
	}
	pthread_mutex_lock(&snap->open_lock);
	idx = atomic_load(&snap->idx);
	if (!idx) {
		idx = cairn_index_new();
		r = idx ? cairn_index_open(idx, table->store, snap->name) : -ENOMEM;
		if (r == 0 && table->whole_store) {
			struct cairn_index_info info;
			cairn_index_info(idx, &info);
			if (info.inode_count >= (1ull << SLOT_SHIFT))
				r = -EFBIG;
		}
		if (r < 0) {
			mount_log(table->log, CAIRN_LOG_ERROR, "snapshot %s: %s", snap->name,
				  idx ? cairn_index_error(idx) : "out of memory");
			cairn_index_free(TAKE_PTR(idx));
		} else {
			cairn_index_show_versions(idx, table->versions);
			cairn_index_prefetch(idx);
			atomic_store_explicit(&snap->idx, idx, memory_order_release);
		}
	}
	pthread_mutex_unlock(&snap->open_lock);
	if (r < 0)
		return r == -ENOMEM ? r : -EIO;
	*ret = idx;
	return 0;
}

int snap_table_index(struct snap_table *table, uint64_t ino, int on_root, struct snap **ret_snap,
		     struct cairn_index **ret_idx, uint64_t *ret_ino)
{
	int r = snap_table_decode(table, ino, ret_snap, ret_ino);
	if (r == SNAP_STORE_ROOT)
		return on_root;
	if (r < 0)
		return r;
	return snap_index(table, *ret_snap, ret_idx);
}

int snap_index_error(struct snap_table *table, struct cairn_index *idx, int r)
{
	if (r == -EBADMSG) {
		mount_log(table->log, CAIRN_LOG_ERROR, "%s", cairn_index_error(idx));
		return -EIO;
	}
	return r;
}

uint64_t snap_table_inode_count(struct snap_table *table)
{
	uint64_t count = 0;

	for (size_t i = 0; i < table->count; i++) {
		struct cairn_index *idx = atomic_load(&table->snaps[i].idx);
		struct cairn_index_info info;
		if (idx) {
			cairn_index_info(idx, &info);
			count += info.inode_count;
		}
	}
	return count;
}

/* ---- setting up ---- */

static uint64_t name_hash(const char *name)
{
	uint64_t hash = 0xcbf29ce484222325ull;

	for (const unsigned char *p = (const unsigned char *)name; *p; p++)
		hash = (hash ^ *p) * 0x100000001b3ull;
	return hash;
}

/* Slots from a hash of the name, so a snapshot keeps its inode numbers when
 * others are added or removed (unless two names share a slot). */
static int assign_slots(struct snap_table *table)
{
	size_t cap = 16;

	while (cap < table->count * 2)
		cap *= 2;
	table->slot_map = calloc(cap, sizeof(*table->slot_map));
	if (!table->slot_map)
		return -ENOMEM;
	table->slot_map_cap = cap;
	for (size_t i = 0; i < table->count; i++) {
		uint64_t slot = name_hash(table->snaps[i].name) % SLOT_MAX + 1;
		for (;;) {
			size_t s = slot & (cap - 1);
			while (table->slot_map[s] &&
			       table->snaps[table->slot_map[s] - 1].slot != slot)
				s = (s + 1) & (cap - 1);
			if (!table->slot_map[s]) {
				table->slot_map[s] = (uint32_t)(i + 1);
				break;
			}
			slot = slot % SLOT_MAX + 1;
		}
		table->snaps[i].slot = slot;
	}
	return 0;
}

static int snaps_init(struct snap_table *table, char **names, size_t count)
{
	table->snaps = calloc(count ? count : 1, sizeof(*table->snaps));
	if (!table->snaps)
		return -ENOMEM;
	for (size_t i = 0; i < count; i++) {
		table->snaps[i].name = TAKE_PTR(names[i]);
		pthread_mutex_init(&table->snaps[i].open_lock, NULL);
	}
	table->count = count;
	return table->whole_store ? assign_slots(table) : 0;
}

static int snaps_list(struct snap_table *table, const struct cairn_mount_options *o, char *msg,
		      size_t msg_size)
{
	char **names = NULL;
	size_t count = 0;

	int r = table->whole_store ? cairn_snapshot_list(table->store, &names, &count) : 0;
	if (r == 0 && !table->whole_store) {
		names = calloc(1, sizeof(*names));
		names[0] = names ? strdup(o->snapshot) : NULL;
		count = 1;
		r = names && names[0] ? 0 : -ENOMEM;
	}
	if (r == 0)
		r = snaps_init(table, names, count);
	cairn_snapshot_names_free(names, count);
	if (r < 0)
		cairn_format(msg, msg_size, "%s: cannot list snapshots: %s", o->store_path,
			     strerror(-r));
	return r;
}

int snap_table_open(const struct cairn_mount_options *o, struct cairn_store *store,
		    const struct mount_log *log, struct snap_table **ret, char *msg,
		    size_t msg_size)
{
	struct snap_table *table = calloc(1, sizeof(*table));

	if (!table)
		return -ENOMEM;
	table->store = store;
	table->log = log;
	table->whole_store = !o->snapshot;
	table->versions = o->versions;
	int r = snaps_list(table, o, msg, msg_size);
	if (r == 0 && !table->whole_store) {
		/* One snapshot: open it now, so a bad name fails the mount. */
		struct cairn_index *idx = cairn_index_new();
		r = idx ? cairn_index_open(idx, store, o->snapshot) : -ENOMEM;
		if (r < 0) {
			cairn_format(msg, msg_size, "%s",
				     idx ? cairn_index_error(idx) : "out of memory");
			cairn_index_free(idx);
		} else {
			cairn_index_show_versions(idx, o->versions);
			atomic_store(&table->snaps[0].idx, idx);
		}
	}
	if (r < 0) {
		snap_table_free(table);
		return r;
	}
	*ret = table;
	return 0;
}

void snap_table_free(struct snap_table *table)
{
	if (!table)
		return;
	for (size_t i = 0; i < table->count; i++) {
		cairn_index_free(atomic_load(&table->snaps[i].idx));
		pthread_mutex_destroy(&table->snaps[i].open_lock);
		free(table->snaps[i].name);
	}
	free(table->snaps);
	free(table->slot_map);
	free(table);
}
