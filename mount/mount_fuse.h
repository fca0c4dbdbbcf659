/* mount_fuse.h: the parts of mount/ that speak FUSE, on top of those in
 * mount_internal.h: an open file, the passthrough table (passthrough.c, or
 * passthrough_none.c where libfuse has no passthrough: meson picks one),
 * the filesystem the ops serve (fs.c), and the session that sets it all up
 * (session.c), and libfuse, which fuse_dl.c opens. Only these files include
 * fuse_lowlevel.h.
 */
#ifndef CAIRN_BUILDING_MOUNT
#error "mount_fuse.h is internal to mount/; use mount.h"
#endif
#ifndef CAIRN_MOUNT_FUSE_H
#define CAIRN_MOUNT_FUSE_H

#include "config.h"
#define FUSE_USE_VERSION CAIRN_FUSE_USE_VERSION
#include <fuse_lowlevel.h>

#include "mount_internal.h"

struct backing;

struct open_file {
	struct cairn_index *idx; /* the snapshot's, open while the mount lives */
	uint64_t ino;            /* in the snapshot */
	struct cairn_index_file file;
	_Atomic uint64_t next_offset; /* where a sequential reader reads next */
	/* The file's blob as it is made, once a READ found it (a reference);
	 * its READs read what is written (growing.c). */
	_Atomic(struct growing *) growing;
	/* The passthrough table's, under its lock: */
	struct backing *backing; /* NULL unless passed through */
	/* A fallback open (direct_io or cached) of a file that may pass
	 * through, from its reply until its RELEASE: while it lives, its inode
	 * must not pass through (passthrough.c says why). On the table's
	 * fallback list. */
	bool fallback;
	struct open_file *fallback_next;
	struct open_file *open_prev, *open_next; /* fs->open_files, under open_lock */
};

/* ---- libfuse itself (fuse_dl.c) ---- */

/* Starts opening libfuse on a thread of its own (or not: fuse_dl_wait
 * then opens it). */
void fuse_dl_start(void);
/* Waits for the library: 0, or -ELIBACC with msg saying why. Nothing in
 * mount/ calls libfuse before this has returned 0. */
int fuse_dl_wait(char *msg, size_t msg_size);
/* Waits for a load fuse_dl_start began, if any (a setup that failed). */
void fuse_dl_join(void);

/* ---- passthrough (passthrough.c or passthrough_none.c) ---- */

/* The backing ids registered with the kernel (one per file id, shared by
 * its opens, released on the last close), the opens that must not meet a
 * passthrough open yet, and the decision of each open's read path. */
struct passthrough;

enum open_path {
	OPEN_PASSTHROUGH, /* the kernel reads the blob itself */
	OPEN_CACHED,      /* through the daemon, kept in the page cache */
	OPEN_DIRECT,      /* through the daemon, direct_io (blob not ready) */
};

/* blobs may be NULL (no usable blob cache); it and log are borrowed.
 * Returns 0 or -ENOMEM. */
int passthrough_new(const struct cairn_mount_options *o, struct blob_cache *blobs,
		    const struct mount_log *log, struct passthrough **ret);
/* Frees the table and the backings still in it (at unmount). */
void passthrough_free(struct passthrough *pt);
/* Negotiates the connection at init: passthrough where offered, and the
 * other capabilities (set through an API that differs with the libfuse
 * version, which is what picks this file). Returns NULL when passthrough is
 * on, else why it is off (a static string; NULL and still off means the
 * kernel refused it). */
const char *passthrough_init_conn(struct passthrough *pt, struct fuse_conn_info *conn);
/* Asks for capability flag (a FUSE_CAP_*) through the same API, where the
 * kernel offers it; returns whether it is on. */
bool conn_want(struct fuse_conn_info *conn, uint64_t flag);
void conn_unwant(struct fuse_conn_info *conn, uint64_t flag);
/* Whether opens may pass through now (it turns off when the kernel refuses
 * a backing file). */
bool passthrough_on(struct passthrough *pt);
/* Picks the read path of an open and sets fi for it (backing_id,
 * direct_io or keep_cache). */
enum open_path passthrough_open(struct passthrough *pt, fuse_req_t req, struct open_file *of,
				struct fuse_file_info *fi);
/* The open is gone (released, or its reply failed): ends it as a fallback
 * open, or drops its hold on the backing id, closing the id on its last
 * open. */
void passthrough_release(struct passthrough *pt, fuse_req_t req, struct open_file *of);

/* ---- the transport (transport.c, or transport_none.c before libfuse
 * 3.18: meson picks one) ---- */

struct fs;
/* Before the session starts: whether to ask libfuse for FUSE over io_uring
 * (the library has it, the kernel allows it, the options want it); keeps
 * the reason when not: the mount then uses /dev/fuse. */
bool transport_prepare(struct fs *fs);
/* Whether the libfuse in use has FUSE over io_uring compiled in (opened
 * already: fuse_dl_wait). */
bool transport_library_has_uring(void);
/* At INIT: takes io_uring where it was asked for and the kernel offers it,
 * and logs which transport serves the mount and why. */
void transport_init_conn(struct fs *fs, struct fuse_conn_info *conn);
/* "io_uring" or "dev_fuse": the channel req came over. */
const char *transport_of(fuse_req_t req);
/* Where a reply of size bytes to req may be written so that sending it
 * copies nothing more: the request's own buffer in the ring, over io_uring;
 * NULL over /dev/fuse (write a buffer of your own: the kernel copies it
 * straight from there). */
void *transport_reply_buffer(fuse_req_t req, size_t size);

/* ---- the mount as root (direct_mount.c) ---- */

/* As root: opens /dev/fuse and mounts it on o->mountpoint with mount(2),
 * as libfuse would (source: the mount table's source). Returns 0 with the
 * fd in *ret_fd, for libfuse as /dev/fd/N; else -errno, and nothing is
 * mounted (-EPERM: not root): libfuse then mounts. */
int direct_mount(const struct cairn_mount_options *o, const char *source, int *ret_fd);
/* Takes down, lazily, a mount direct_mount made, unless it is gone
 * already; fd stays open (the session closes it). */
void direct_unmount(const char *mountpoint, int fd);

/* ---- the filesystem (fs.c) ---- */

struct fs_stats {
	atomic_uint_fast64_t reads; /* READ requests that reached the daemon */
	atomic_uint_fast64_t opens_passthrough;
	atomic_uint_fast64_t opens_cached; /* small files, keep_cache */
	atomic_uint_fast64_t opens_direct; /* blob not ready: direct_io fallback */
	atomic_uint_fast64_t read_errors;
	/* READs answered from a blob its worker had written (growing.c). */
	atomic_uint_fast64_t reads_growing;
	/* Metadata requests that reached the daemon: what the kernel caches
	 * (entries, attributes, symlinks, directory pages) is asked once. */
	atomic_uint_fast64_t lookups, getattrs, readlinks, opendirs, readdirs;
	/* Refreshes of a whole-store mount (refresh.c): wake-ups, and those
	 * that changed the root. */
	atomic_uint_fast64_t refreshes, refresh_changes;
};

/* What the ops serve: the parts below, made and freed by session.c. */
struct fs {
	struct cairn_mount_options o;
	struct mount_log log;
	struct cairn_store *store;
	struct snap_table *snaps;
	struct union_table *merge; /* NULL unless several sources are merged */
	struct idmap *ids;
	struct read_path *reads;
	struct blob_cache *blobs; /* NULL: none (nopassthrough, or unusable) */
	struct passthrough *pt;
	/* Every open file, freed at unmount if still there: the kernel drops
	 * the RELEASEs still queued when the connection ends. */
	pthread_mutex_t open_lock; /* protects open_files */
	struct open_file *open_files;
	uint32_t owner_uid, owner_gid; /* of the store root directory and snapshot dirs */
	/* The root's mtime: the mount's start, then the last refresh that
	 * changed it (the kernel drops its cached listing when it moves). */
	_Atomic int64_t root_mtime_sec;
	struct fs_stats stats;
	/* Set at init where the kernel takes ENOSYS for "never ask again"
	 * (fs_init_round_trips): OPENDIR always, OPEN where nothing can pass
	 * through. Without an open a READ carries no handle: its file is
	 * found by inode, and whether it continues a sequential read by a
	 * hint per inode slot (a collision costs a readahead at most). */
	bool no_opendir, no_open;
	_Atomic uint64_t seq_hint[64];
	/* transport.c: why the mount is not served over io_uring; NULL: it is
	 * asked for (the log line comes at INIT). */
	const char *transport_why;
};

/* The attributes of inode ino of a snapshot, as the mount shows them
 * (st_ino is the FUSE inode). Returns 0 or -errno. */
int fs_snap_getattr(struct fs *fs, struct snap *snap, uint64_t ino, struct stat *st);

/* ---- refreshing a whole-store mount (refresh.c) ---- */

#define REFRESH_REMOTE_DEFAULT 60 /* seconds: one GET of cairn-head each */
#define REFRESH_LOCAL_DEFAULT  5  /* seconds: a stat and a 64-byte read each */

struct refresher;
/* Seconds between refreshes of this mount: -o refresh, else the default
 * for its store; 0 (never) for a mount of listed snapshots. */
unsigned refresh_interval(const struct fs *fs);
/* Starts the thread refreshing the mount (none when refresh_interval is
 * 0: *ret NULL), once the session is mounted; it tells the kernel through
 * se. Returns 0 or -errno. */
int refresher_start(struct fs *fs, struct fuse_session *se, struct refresher **ret);
/* Stops and joins it, before the session is unmounted. Accepts NULL. */
void refresher_stop(struct refresher *rf);

/* ---- several sources in one tree (union.c) ----
 *
 * Where sources share a path, the last one's entry wins; where they share
 * a directory, it is merged: the last source's directory, then each
 * earlier source's directory there, down to the first source that has a
 * non-directory there (that one and those before it are hidden). A merged
 * directory's inode is its last source's (snap_encode), its listing is
 * built on its first lookup, and kept until unmount; nothing is built for
 * a directory only one source has. */
struct union_table;
struct union_dir;

/* The table, with the merged root built (a failure fails the mount).
 * Returns 0 or -errno. */
int union_new(struct fs *fs, struct union_table **ret);
void union_free(struct union_table *table);
/* The merged directory of FUSE inode ino, or NULL (not merged). */
const struct union_dir *union_find(struct union_table *table, uint64_t ino);
/* Returns 1 with ino's attributes when ino is a merged directory, 0 when it
 * is not, or -errno. */
int union_getattr(struct fs *fs, uint64_t ino, struct stat *st);
/* Returns 1 with the attributes of parent's entry name when parent is a
 * merged directory, 0 when it is not, or -errno (-ENOENT). */
int union_lookup(struct fs *fs, uint64_t parent, const char *name, struct stat *st);
/* The entry at pos (name order, each name once) of merged directory dir:
 * 1 with its name (valid while the mount lives) and attributes, 0 past the
 * last one, or -errno. */
int union_readdir(struct fs *fs, const struct union_dir *dir, size_t pos, const char **ret_name,
		  struct stat *st);

/* ---- the ops on open files (files.c), in fs.c's table ---- */

void op_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi);
void op_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, struct fuse_file_info *fi);
void op_release(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi);
void op_lseek(fuse_req_t req, fuse_ino_t ino, off_t off, int whence, struct fuse_file_info *fi);

/* The ops, for the session (userdata: the struct fs). */
extern const struct fuse_lowlevel_ops cairn_fs_ops;

#endif
