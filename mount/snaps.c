/* snaps.c: the snapshot table: which snapshots a mount serves (one, the
 * whole store, or a list of sources, each perhaps from a directory down),
 * how a FUSE inode names a snapshot and one of its inodes, and the lazy
 * open of each snapshot's index. Serving a whole store, snapshots get slots
 * from a hash of their names, so their inode numbers survive remounts;
 * their indexes are opened on first use, so a mount of a big store starts
 * at once. A list's snapshots get slots from their positions, and are
 * opened at once, so a bad name or PATH fails the mount.
 *
 * A whole-store mount is refreshed (snap_table_refresh, from the session's
 * refresh thread): the snapshots it shows are a view, published whole and
 * never changed after, which a refresh replaces. FUSE threads read the
 * current view without a lock; views and snapshots are kept until the
 * table is freed, so one a thread still holds stays valid. A slot is never
 * given twice in a mount: a removed snapshot still decodes, and the files
 * open from it keep reading.
 */
#include "mount_internal.h"

#include <stdio.h>
#include <string.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <time.h>

struct snap_table {
	struct cairn_store *store;        /* borrowed */
	const struct mount_log *log;      /* borrowed */
	bool whole_store;                 /* a directory per snapshot: the store, or nomerge */
	bool merged;                      /* several sources in one tree */
	bool by_position;                 /* a list of sources: slot = position + 1 */
	struct snap *snaps;               /* at open: sorted by name, or in the sources' order */
	bool versions;                    /* -o versions */
	size_t count;                     /* of snaps */
	_Atomic(struct snap_view *) view; /* the current one; ->older: those replaced */
	/* The refresh's (one caller at a time): */
	struct snap *added;        /* snapshots made by refreshes (added_next) */
	size_t served;             /* snapshots in the slot map: every one shown so far */
	struct timespec dir_stamp; /* STORE/snapshots' mtime at the last listing */
	/* Held shared while an index opens, exclusively while a refresh
	 * replaces the store handle's remote manifest, in which the open
	 * looks the snapshot up without the handle's lock. */
	pthread_rwlock_t store_lock;
};

/* ---- inodes ---- */

static const struct snap_view *current_view(const struct snap_table *table)
{
	return atomic_load_explicit(&((struct snap_table *)table)->view, memory_order_acquire);
}

static struct snap *snap_by_slot(const struct snap_table *table, uint64_t slot)
{
	return snap_view_slot(current_view(table), slot);
}

/* Serving one snapshot from PATH down, PATH's inode and the root trade
 * places: the mount's root is 1, as FUSE wants. */
static uint64_t swap_root(const struct snap *snap, uint64_t ino)
{
	return ino == CAIRN_INDEX_ROOT ? snap->root : ino == snap->root ? CAIRN_INDEX_ROOT : ino;
}

int snap_table_decode(const struct snap_table *table, uint64_t ino, struct snap **ret_snap,
		      uint64_t *ret_ino)
{
	struct snap *snap;

	if (!table->whole_store && !table->merged) {
		*ret_snap = &table->snaps[0];
		*ret_ino = swap_root(&table->snaps[0], ino);
		return 0;
	}
	if (ino == CAIRN_INDEX_ROOT && !table->merged)
		return SNAP_STORE_ROOT;
	if (ino == CAIRN_INDEX_ROOT) {
		*ret_snap = &table->snaps[table->count - 1];
		*ret_ino = (*ret_snap)->root;
		return 0;
	}
	uint64_t slot = ino >> SLOT_SHIFT;
	if (table->by_position)
		snap = slot >= 1 && slot <= table->count ? &table->snaps[slot - 1] : NULL;
	else
		snap = snap_by_slot(table, slot);
	if (!snap)
		return -ENOENT;
	*ret_snap = snap;
	*ret_ino = ino & ((1ull << SLOT_SHIFT) - 1);
	return 0;
}

uint64_t snap_encode(const struct snap *snap, uint64_t ino)
{
	if (snap->mount_root && ino == snap->root)
		return CAIRN_INDEX_ROOT;
	return snap->slot ? snap->slot << SLOT_SHIFT | ino : swap_root(snap, ino);
}

/* ---- the table ---- */

bool snap_table_whole_store(const struct snap_table *table)
{
	return table->whole_store;
}

bool snap_table_merged(const struct snap_table *table)
{
	return table->merged;
}

const struct snap_view *snap_table_view(const struct snap_table *table)
{
	return current_view(table);
}

size_t snap_table_count(const struct snap_table *table)
{
	return current_view(table)->count;
}

struct snap *snap_table_at(struct snap_table *table, size_t i)
{
	return current_view(table)->snaps[i];
}

struct snap *snap_table_find(struct snap_table *table, const char *name)
{
	if (table->by_position) {
		for (size_t i = 0; i < table->count; i++)
			if (strcmp(table->snaps[i].name, name) == 0)
				return &table->snaps[i];
		return NULL;
	}
	return snap_view_find(current_view(table), name);
}

/* The index's message names the snapshot already; the failures that leave
 * none (no memory, too many inodes) get one here. */
static void log_open_failure(struct snap_table *table, const struct snap *snap,
			     const struct cairn_index *idx, int r)
{
	const char *why = idx ? cairn_index_error(idx) : "";

	if (*why)
		mount_log(table->log, CAIRN_LOG_ERROR, "%s", why);
	else
		mount_log(table->log, CAIRN_LOG_ERROR, "snapshot %s: %s", snap->snapshot,
			  strerror(-r));
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
		pthread_rwlock_rdlock(&table->store_lock);
		r = idx ? cairn_index_open(idx, table->store, snap->snapshot) : -ENOMEM;
		pthread_rwlock_unlock(&table->store_lock);
		if (r == 0 && snap->slot) {
			struct cairn_index_info info;
			cairn_index_info(idx, &info);
			if (info.inode_count >= (1ull << SLOT_SHIFT))
				r = -EFBIG;
		}
		if (r < 0) {
			log_open_failure(table, snap, idx, r);
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
	const struct snap_view *view = current_view(table);
	uint64_t count = 0;

	for (size_t i = 0; i < view->count; i++) {
		struct cairn_index *idx = atomic_load(&view->snaps[i]->idx);
		struct cairn_index_info info;
		if (idx) {
			cairn_index_info(idx, &info);
			count += info.inode_count;
		}
	}
	return count;
}

/* ---- setting up ---- */

/* The first view: the table's snapshots in their order, slots from the
 * hash of their names (serving a store) or their positions. */
static int view_init(struct snap_table *table)
{
	struct snap_view *view = snap_view_first(table->snaps, table->count,
						 table->whole_store && !table->by_position);

	if (!view)
		return -ENOMEM;
	table->served = table->count;
	atomic_store(&table->view, view);
	return 0;
}

static int snaps_init(struct snap_table *table, char **names, size_t count)
{
	table->snaps = calloc(count ? count : 1, sizeof(*table->snaps));
	if (!table->snaps)
		return -ENOMEM;
	for (size_t i = 0; i < count; i++) {
		table->snaps[i].name = TAKE_PTR(names[i]);
		table->snaps[i].snapshot = strdup(table->snaps[i].name);
		table->snaps[i].root = CAIRN_INDEX_ROOT;
		pthread_mutex_init(&table->snaps[i].open_lock, NULL);
		table->count = i + 1;
		if (!table->snaps[i].snapshot)
			return -ENOMEM;
	}
	return 0;
}

/* STORE/snapshots' mtime (zero when it is missing): a local store's
 * listing changes only with it. */
static struct timespec snapshots_stamp(const struct snap_table *table)
{
	struct stat st;

	if (fstatat(cairn_store_dirfd(table->store), "snapshots", &st, AT_SYMLINK_NOFOLLOW) < 0)
		return (struct timespec){0};
	return st.st_mtim;
}

/* Keeps the stamp a listing was made at. Directory times tick coarsely (a
 * jiffy on ext4): a change just after the listing may leave the same time,
 * so a stamp this recent is not trusted and the next refresh lists again. */
static void stamp_keep(struct snap_table *table, struct timespec stamp)
{
	struct timespec now;

	clock_gettime(CLOCK_REALTIME, &now);
	table->dir_stamp = now.tv_sec - stamp.tv_sec > 1 ? stamp : (struct timespec){0};
}

static int snaps_list(struct snap_table *table, const struct cairn_mount_options *o, char *msg,
		      size_t msg_size)
{
	char **names = NULL;
	size_t count = 0;

	stamp_keep(table, snapshots_stamp(table));
	int r = cairn_snapshot_list(table->store, &names, &count);
	if (r == 0)
		r = snaps_init(table, names, count);
	cairn_snapshot_names_free(names, count);
	if (r < 0)
		cairn_format(msg, msg_size, "%s: cannot list snapshots: %s", o->store_path,
			     strerror(-r));
	return r;
}

/* Whether an earlier source's directory, or a later source's snapshot,
 * has this name. */
static bool name_taken(const struct snap_table *table, const struct cairn_mount_options *o,
		       size_t i, const char *name)
{
	for (size_t j = 0; j < i; j++)
		if (strcmp(table->snaps[j].name, name) == 0)
			return true;
	for (size_t j = i + 1; j < o->source_count; j++)
		if (strcmp(o->sources[j].snapshot, name) == 0)
			return true;
	return false;
}

/* With nomerge, source i's directory: its snapshot's name, or, when an
 * earlier source has it already, "NAME (2)", "NAME (3)", ...: the same
 * list gives the same names. */
static char *source_dir_name(const struct snap_table *table, const struct cairn_mount_options *o,
			     size_t i)
{
	const char *snapshot = o->sources[i].snapshot;
	char *name = strdup(snapshot);

	for (unsigned k = 2; name && name_taken(table, o, i, name); k++) {
		free(name);
		if (asprintf(&name, "%s (%u)", snapshot, k) < 0)
			return NULL;
	}
	return name;
}

static int sources_init(struct snap_table *table, const struct cairn_mount_options *o)
{
	size_t count = o->source_count;

	table->snaps = calloc(count, sizeof(*table->snaps));
	if (!table->snaps)
		return -ENOMEM;
	for (size_t i = 0; i < count; i++) {
		struct snap *snap = &table->snaps[i];
		pthread_mutex_init(&snap->open_lock, NULL);
		table->count = i + 1;
		snap->snapshot = strdup(o->sources[i].snapshot);
		snap->name = source_dir_name(table, o, i);
		if (!snap->snapshot || !snap->name)
			return -ENOMEM;
		snap->root = CAIRN_INDEX_ROOT;
		snap->slot = table->by_position ? i + 1 : 0;
	}
	table->snaps[count - 1].mount_root = !table->whole_store;
	return 0;
}

/* Opens source i's index now, and finds the directory it is served from. */
static int source_open(struct snap_table *table, const struct cairn_mount_source *source,
		       struct snap *snap, char *msg, size_t msg_size)
{
	_cleanup_(cairn_index_freep) struct cairn_index *idx = cairn_index_new();
	struct cairn_index_stat st;
	struct cairn_index_info info;

	if (!idx)
		return -ENOMEM;
	int r = cairn_index_open(idx, table->store, snap->snapshot);
	if (r < 0) {
		cairn_format(msg, msg_size, "%s", cairn_index_error(idx));
		return r;
	}
	cairn_index_show_versions(idx, table->versions);
	cairn_index_info(idx, &info);
	if (snap->slot && info.inode_count >= (1ull << SLOT_SHIFT)) {
		cairn_format(msg, msg_size, "snapshot %s: too many inodes to serve with others",
			     snap->snapshot);
		return -EFBIG;
	}
	const char *path = source->path ? source->path : "";
	r = cairn_index_resolve(idx, path, true, &snap->root);
	if (r == 0)
		r = cairn_index_getattr(idx, snap->root, &st);
	if (r == 0 && !S_ISDIR(st.mode))
		r = -ENOTDIR;
	if (r < 0) {
		cairn_format(msg, msg_size, "%s:%s: %s", snap->snapshot, path,
			     r == -ENOENT    ? "no such directory in the snapshot"
			     : r == -ENOTDIR ? "not a directory"
			     : r == -EBADMSG ? cairn_index_error(idx)
					     : strerror(-r));
		return r;
	}
	atomic_store(&snap->idx, TAKE_PTR(idx));
	return 0;
}

/* The sources (or o->snapshot alone, as a list of one): each opened now,
 * so that a bad name or PATH fails the mount before it is in place. */
static int sources_open(struct snap_table *table, const struct cairn_mount_options *o, char *msg,
			size_t msg_size)
{
	struct cairn_mount_source one = {.snapshot = o->snapshot};
	struct cairn_mount_options single;

	if (o->source_count == 0) {
		single = *o;
		single.sources = &one;
		single.source_count = 1;
		o = &single;
	}
	table->whole_store = o->nomerge;
	table->merged = !o->nomerge && o->source_count > 1;
	table->by_position = table->whole_store || table->merged;
	int r = sources_init(table, o);
	for (size_t i = 0; r == 0 && i < o->source_count; i++)
		r = source_open(table, &o->sources[i], &table->snaps[i], msg, msg_size);
	if (r == -ENOMEM && !msg[0])
		cairn_format(msg, msg_size, "out of memory");
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
	table->versions = o->versions;
	pthread_rwlock_init(&table->store_lock, NULL);
	int r = 0;
	if (o->snapshot || o->source_count) {
		r = sources_open(table, o, msg, msg_size);
	} else {
		table->whole_store = true;
		r = snaps_list(table, o, msg, msg_size);
	}
	if (r == 0 && (r = view_init(table)) < 0)
		cairn_format(msg, msg_size, "out of memory");
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
	for (size_t i = 0; i < table->count; i++)
		snap_release(&table->snaps[i]);
	free(table->snaps);
	while (table->added) {
		struct snap *next = table->added->added_next;
		snap_release(table->added);
		free(table->added);
		table->added = next;
	}
	for (struct snap_view *view = atomic_load(&table->view), *older; view; view = older) {
		older = view->older;
		snap_view_free(view);
	}
	pthread_rwlock_destroy(&table->store_lock);
	free(table);
}

/* ---- refreshing a whole-store mount ---- */

bool snap_table_refreshable(const struct snap_table *table)
{
	return table->whole_store && !table->by_position;
}

/* Publishes the view of names when it differs from the current one. */
static int table_relist(struct snap_table *table, char **names, size_t count,
			struct snap_changes *changes)
{
	struct snap_view *old = atomic_load(&table->view);
	struct snap *made = NULL;

	struct snap_view *view = snap_view_next(old, table->served, names, count, &made, changes);
	if (!view || changes->count == 0) {
		while (made) {
			struct snap *next = made->added_next;
			snap_release(made);
			free(made);
			made = next;
		}
		snap_view_free(view);
		return view ? 0 : -ENOMEM;
	}
	while (made) {
		struct snap *next = made->added_next;
		made->added_next = table->added;
		table->added = made;
		table->served++;
		made = next;
	}
	view->older = old;
	atomic_store_explicit(&table->view, view, memory_order_release);
	return 1;
}

int snap_table_refresh(struct snap_table *table, struct snap_changes *changes, char *msg,
		       size_t msg_size)
{
	char **names = NULL;
	size_t count = 0;

	*changes = (struct snap_changes){0};
	if (!snap_table_refreshable(table))
		return 0;
	int r = cairn_store_refresh(table->store, &table->store_lock);
	if (r < 0) {
		cairn_format(msg, msg_size, "%s", cairn_store_error(table->store));
		return r;
	}
	/* A remote store's listing moves with its pointer; a local one's with
	 * the directory (an add or rm renames or unlinks in it). */
	struct timespec stamp = snapshots_stamp(table);
	bool moved = stamp.tv_sec != table->dir_stamp.tv_sec ||
		     stamp.tv_nsec != table->dir_stamp.tv_nsec;
	if (r == 0 && (cairn_store_is_remote(table->store) || !moved))
		return 0;
	stamp_keep(table, stamp);
	r = cairn_snapshot_list(table->store, &names, &count);
	if (r == 0)
		r = table_relist(table, names, count, changes);
	cairn_snapshot_names_free(names, count);
	if (r < 0) {
		snap_changes_release(changes);
		cairn_format(msg, msg_size, "%s: cannot list snapshots: %s",
			     cairn_store_path(table->store), strerror(-r));
	}
	return r;
}
