/* mount_internal.h: the parts of mount/ that need no FUSE headers, bottom
 * up: the log helper and options (options.c), the snapshot table (snaps.c),
 * the chunk cache (chunks.c), the read path (read.c), the blob cache's
 * directories (cachedir.c) and the blob cache (blobs.c). Each part owns its state behind an opaque
 * handle and calls only the parts above it in this file; the FUSE side (mount_fuse.h: the
 * passthrough table, the ops and the session) sits on top of them.
 */
#ifndef CAIRN_BUILDING_MOUNT
#error "mount_internal.h is internal to mount/; use mount.h"
#endif
#ifndef CAIRN_MOUNT_INTERNAL_H
#define CAIRN_MOUNT_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>
#include <sys/types.h>

#include "index.h"
#include "mount.h"
#include "store.h"
#include "util.h"

/* ---- the log (options.c) ---- */

/* Where a part's log lines go: the options' callback, borrowed. */
struct mount_log {
	cairn_mount_log_fn fn; /* NULL: lines are dropped */
	void *userdata;
};

/* Formats one line and hands it to log->fn. Any thread. */
void mount_log(const struct mount_log *log, enum cairn_log_level level, const char *fmt, ...)
	_printf_(3, 4);

/* The default blob cache directory: $XDG_CACHE_HOME/cairn, else
 * ~/.cache/cairn, else /var/cache/cairn. */
void mount_default_cache_dir(char *buf, size_t size);

/* ---- the snapshot table (snaps.c) ----
 *
 * Inode numbers. Serving one snapshot, a FUSE inode is the snapshot's own
 * inode number (the root is 1 in both; serving SNAPSHOT:PATH, PATH's inode
 * and 1 trade places). Serving a store, the root is 1 and snapshot s's
 * inode i is slot(s) << SLOT_SHIFT | i, where slot(s) comes from a hash of
 * the name: stable across remounts whatever other snapshots come and go.
 * Serving a list of sources (merged, or -o nomerge), slot(s) is s's
 * position in the list plus one: stable across remounts of the same list;
 * merged, the last source's root directory is the mount's root, 1. */
#define SLOT_SHIFT 40
#define SLOT_MAX   ((1u << 23) - 1)

/* snap_table_decode's positive result: the inode is the store's root
 * directory (whole-store and nomerge modes), which belongs to no snapshot. */
#define SNAP_STORE_ROOT 1

struct snap {
	char *name;                /* its directory's name (whole-store and nomerge modes) */
	char *snapshot;            /* the snapshot's name */
	uint64_t root;             /* the inode served as its root: 1, or PATH's */
	uint64_t slot;             /* 0 when serving one snapshot */
	bool mount_root;           /* its root is the mount's root (FUSE inode 1) */
	pthread_mutex_t open_lock; /* serialises the first open of idx */
	_Atomic(struct cairn_index *) idx; /* opened on first use */
	struct snap *added_next;           /* the table's list of those a refresh made */
};

/* The snapshots a mount shows now: made whole and never changed after; a
 * refresh of a whole-store mount publishes the next one. Every view stays
 * valid until the table is freed. */
struct snap_view {
	struct snap **snaps; /* in name order serving a store, else the sources' order */
	size_t count;
	/* slot -> snapshot (open addressing), over every snapshot the mount has
	 * shown, removed ones too: their files stay readable */
	struct snap **slot_map;
	size_t slot_map_cap;
	struct snap_view *older; /* the views this one replaced */
};

struct snap_table;

/* The snapshots a mount serves: o->snapshot alone (opened now, so a bad
 * name fails the mount), or every snapshot of the store (o->snapshot NULL,
 * opened on first use). store is borrowed and must outlive the table.
 * Returns 0, or -errno with a one-line message in msg. */
int snap_table_open(const struct cairn_mount_options *o, struct cairn_store *store,
		    const struct mount_log *log, struct snap_table **ret, char *msg,
		    size_t msg_size);
void snap_table_free(struct snap_table *table);
/* Whether the table serves the whole store, or the sources with nomerge:
 * a directory per snapshot under a root of its own. */
bool snap_table_whole_store(const struct snap_table *table);
/* Whether the table merges several sources into one tree (union.c). */
bool snap_table_merged(const struct snap_table *table);
size_t snap_table_count(const struct snap_table *table);
/* Snapshot i of snap_table_count(): in name order serving a store, else in
 * the sources' order. */
struct snap *snap_table_at(struct snap_table *table, size_t i);
/* The snapshot whose directory has that name, or NULL. */
struct snap *snap_table_find(struct snap_table *table, const char *name);
/* Splits a FUSE inode into its snapshot and the snapshot's inode. Returns
 * 0, SNAP_STORE_ROOT (whole-store mode's root: nothing written), or
 * -ENOENT. */
int snap_table_decode(const struct snap_table *table, uint64_t ino, struct snap **ret_snap,
		      uint64_t *ret_ino);
/* The FUSE inode of the snapshot's inode ino. */
uint64_t snap_encode(const struct snap *snap, uint64_t ino);
/* The snapshot's index, opening it on first use (failures logged). Returns
 * 0, -ENOMEM, or -EIO. Any thread. */
int snap_index(struct snap_table *table, struct snap *snap, struct cairn_index **ret);
/* snap_table_decode then snap_index: the snapshot, its index and its inode
 * for a FUSE inode. Returns 0, on_root for the store's root (whole-store
 * mode), or -errno. */
int snap_table_index(struct snap_table *table, uint64_t ino, int on_root, struct snap **ret_snap,
		     struct cairn_index **ret_idx, uint64_t *ret_ino);
/* What an error r of a call on idx is to the kernel: damage (-EBADMSG) is
 * logged and becomes -EIO; anything else stays r. */
int snap_index_error(struct snap_table *table, struct cairn_index *idx, int r);
/* The inodes of the snapshots opened so far (for statfs). */
uint64_t snap_table_inode_count(struct snap_table *table);
/* The snapshots shown now (whole-store mode's root). Any thread; valid
 * until the table is freed. */
const struct snap_view *snap_table_view(const struct snap_table *table);

/* Refreshing a whole-store mount (not a list of snapshots). */
bool snap_table_refreshable(const struct snap_table *table);
/* Names a refresh added to the root or removed from it (malloc'd). */
struct snap_changes {
	char **names;
	size_t count, cap;
};
void snap_changes_release(struct snap_changes *c);
/* Brings the table up to the store (cairn_store_refresh: new chunks are
 * found from then on), then, when the store's list of snapshots moved,
 * publishes a view of it: new snapshots get slots (from the hash of their
 * names, never one given before in this mount); removed ones leave the
 * listing and lookups, yet their inodes still decode and their indexes stay
 * open until the table is freed. Returns 1 with the names added and removed
 * in changes, 0 when the root is unchanged, or -errno with a message in msg
 * and nothing changed. One caller at a time (the session's refresh
 * thread); FUSE threads may use the table meanwhile. */
int snap_table_refresh(struct snap_table *table, struct snap_changes *changes, char *msg,
		       size_t msg_size);

/* ---- views of the store's snapshots (snapview.c) ---- */

/* The snapshot in slot, or NULL. Any thread. */
struct snap *snap_view_slot(const struct snap_view *view, uint64_t slot);
/* The snapshot of that name in a view in name order, or NULL. */
struct snap *snap_view_find(const struct snap_view *view, const char *name);
/* The first view: count snapshots (borrowed) in their order; hashed: each
 * gets its slot from the hash of its name (serving a store), else keeps its
 * own (0: none, not in the map). NULL when out of memory. */
struct snap_view *snap_view_first(struct snap *snaps, size_t count, bool hashed);
/* The view of names (sorted) after old, of whose map served snapshots are
 * in: those old has kept, new ones (snap_new) with slots no snapshot of
 * the map has, pushed on *made; every name added or removed in changes.
 * NULL when out of memory (*made still the caller's to free). */
struct snap_view *snap_view_next(const struct snap_view *old, size_t served, char **names,
				 size_t count, struct snap **made, struct snap_changes *changes);
void snap_view_free(struct snap_view *view);
/* A snapshot of the store by that name, its index not open yet; NULL when
 * out of memory. snap_release frees what it holds, not the struct. */
struct snap *snap_new(const char *name);
void snap_release(struct snap *snap);

/* ---- owners and modes (idmap.c) ---- */

struct stat;
struct idmap;

/* The owner mapping and masks of o (borrowed: it must outlive the map).
 * Returns 0 or -ENOMEM. */
int idmap_new(const struct cairn_mount_options *o, struct idmap **ret);
void idmap_free(struct idmap *map);
/* Applies umask/dmask/fmask to st->st_mode (filled from in already) and
 * sets st's owner from in's, as the options say. Any thread. */
void idmap_apply(struct idmap *map, const struct cairn_index_stat *in, struct stat *st);

/* ---- the decompressed chunk cache (chunks.c) ---- */

struct chunk_cache;
struct cached_chunk {
	struct cairn_id id;
	uint32_t size;
	atomic_uint refs;
	uint8_t *data;
	/* cache bookkeeping, under the cache's lock */
	struct cached_chunk *hash_next;
	struct cached_chunk *lru_prev, *lru_next;
};

int chunk_cache_new(uint64_t bound, struct chunk_cache **ret);
void chunk_cache_free(struct chunk_cache *cache);
/* A referenced chunk, or NULL on a miss. Release it with chunk_cache_put. */
struct cached_chunk *chunk_cache_get(struct chunk_cache *cache, const struct cairn_id *id);
/* Inserts a decompressed chunk (data taken over), returning it referenced;
 * if another thread inserted it first, that one is returned and data freed. */
struct cached_chunk *chunk_cache_insert(struct chunk_cache *cache, const struct cairn_id *id,
					uint8_t *data, uint32_t size);
void chunk_cache_put(struct chunk_cache *cache, struct cached_chunk *chunk);
/* What the cache holds, counted as its bound counts (bytes and overhead). */
uint64_t chunk_cache_bytes(struct chunk_cache *cache);

/* ---- the read path (read.c) ---- */

struct read_path;

/* The daemon's side of file contents: a chunk cache of chunk_cache_bound
 * bytes shared by every thread, one unpacker per thread, and a readahead
 * queue served by its own thread (read_path_readahead_start). store is
 * borrowed and must outlive it. Returns 0 or -errno. */
int read_path_new(struct cairn_store *store, uint64_t chunk_cache_bound,
		  const struct mount_log *log, struct read_path **ret);
/* Stops the readahead thread and frees the caches and the calling thread's
 * buffers; every other thread that read through it must have exited. */
void read_path_free(struct read_path *rp);
/* Starts and stops the readahead thread. Returns 0 or -errno. */
int read_path_readahead_start(struct read_path *rp);
void read_path_readahead_stop(struct read_path *rp);
/* The shared chunk cache (borrowed, lives as long as rp). */
struct chunk_cache *read_path_chunks(struct read_path *rp);
/* Chunks cached so far as the record neighbours of a missed chunk (the
 * stats xattr's neighbours=). */
uint64_t read_path_neighbours(struct read_path *rp);
/* This thread's buffer of at least size bytes for a read reply, valid until
 * its next call; NULL when out of memory. */
uint8_t *read_path_reply_buffer(struct read_path *rp, size_t size);
/* Reads len bytes of file ino of idx at offset into buf through this
 * thread's content reader (holes are zeros). *next_offset is where a
 * sequential reader reads next: a read that starts there also fetches the
 * next chunks ahead. Returns the count (short at the end of the file) or
 * -errno: -EBADMSG for damage, -EIO when a chunk cannot be read. */
ssize_t read_path_read(struct read_path *rp, struct cairn_index *idx, uint64_t ino,
		       _Atomic uint64_t *next_offset, uint64_t offset, void *buf, size_t len);
/* This thread's content reader on the mount's chunk source, for the caller
 * to bind to a file (cairn_content_open) and use until this thread's next
 * call into rp; NULL when out of memory. */
struct cairn_content_reader *read_path_reader(struct read_path *rp);

/* ---- the blob cache's directories (cachedir.c) ---- */

/* Opens CACHE (dir, made if missing; the only path followed through a
 * symlink) and CACHE/blobs, each the mount's user's and writable by no one
 * else. A refused dir gives way to the user's default cache directory, and
 * the warning says which and why. Returns 0 with both fds and the blobs
 * directory's path (for logs, malloc'd), or -errno, logged. */
int cache_dir_open(const char *dir, const struct mount_log *log, int *ret_cachefd, int *ret_blobsfd,
		   char **ret_path);
/* (Re)opens blobs under the trusted CACHE fd, making it if missing, never
 * through a symlink. Returns its fd, or -errno with the reason in why
 * (-EPERM: refused). */
int cache_dir_blobs(int cachefd, char *why, size_t why_size);
/* Lists the blobs in the blobs directory dirfd (our own regular files
 * only; temp files no live mount holds are removed on the way) and, if they
 * take more than bound bytes, deletes the least recently used down to 90%
 * of it: an open blob stays readable (and a backing file in use) after its
 * unlink. Returns the bytes the blobs then take. */
uint64_t cache_dir_evict(int dirfd, uint64_t bound);
/* cache_dir_blobs, or, when CACHE itself was removed, cache_dir_open's
 * checks again on the parent of blobs_path (no fallback), replacing
 * *cachefd. */
int cache_dir_reopen(const char *blobs_path, int *cachefd, char *why, size_t why_size);

/* ---- the blob cache (blobs.c) ---- */

/* CACHE/blobs/<file id>: whole-file copies that the kernel reads directly
 * through passthrough, made and checked by rp's content readers (rp is
 * borrowed; it must outlive the cache). A background worker scans the cache once and makes
 * the blobs of large files. Returns 0 or -errno. */
struct blob_cache;
int blob_cache_new(const char *dir, uint64_t bound, struct read_path *rp,
		   const struct mount_log *log, struct blob_cache **ret);
/* Stops the worker and frees the cache. */
void blob_cache_free(struct blob_cache *cache);
/* Opens the verified blob of file ino of idx. With inline_work, a blob not
 * yet checked in this mount is checked, and a missing one made, before it
 * returns (one thread makes a blob, others wait for it); without, such a
 * blob is left to the background worker and -EAGAIN returned. Returns an
 * O_RDONLY fd, -EAGAIN, or -errno. idx must stay open while the cache
 * lives (a job may hold it). */
int blob_cache_open(struct blob_cache *cache, struct cairn_index *idx, uint64_t ino,
		    const struct cairn_index_file *file, bool inline_work);
/* Asks the background worker to make the blob (once per file id). */
void blob_cache_schedule(struct blob_cache *cache, struct cairn_index *idx, uint64_t ino,
			 const struct cairn_index_file *file);
/* Blobs made in this mount, for the stats xattr. */
uint64_t blob_cache_made(struct blob_cache *cache);
/* The blob of file_id queued or being made now, referenced (growing_put),
 * or NULL. */
struct growing *blob_cache_growing(struct blob_cache *cache, const struct cairn_id *file_id);

/* ---- a blob while it is made (growing.c) ---- */

/* Shared by the worker making it and the reads of its file meanwhile, from
 * the moment it is queued. */
struct growing;
/* The blob of a file of size bytes, queued: nothing written yet. One
 * reference, the job's. Returns 0 or -ENOMEM. */
int growing_new(const struct cairn_id *file_id, uint64_t size, struct growing **ret);
/* The worker's, once: the file it writes (a duplicate is kept for reads).
 * Returns 0 (also when one is attached already) or -errno. */
int growing_attach(struct growing *g, int fd);
struct growing *growing_ref(struct growing *g);
void growing_put(struct growing *g);
const struct cairn_id *growing_file_id(const struct growing *g);
/* The worker's: done bytes are written (a cairn_progress_fn, g as its
 * userdata); then the end, ok or not (a failed blob serves no read). */
void growing_advance(void *userdata, uint64_t done);
void growing_end(struct growing *g, bool ok);
/* Reads [offset, offset + len) of the file (len cut at its end) from the
 * blob if the worker has written it. Returns the bytes read (0 at or past
 * the end of the file), or -EAGAIN: read through the chunk path instead
 * (not written yet, or the making failed). Never waits for the worker. */
ssize_t growing_read(struct growing *g, uint64_t offset, void *buf, size_t len);

#endif
