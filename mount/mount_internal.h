/* mount_internal.h: what the files of mount/ share: the filesystem state,
 * inode numbering, the chunk cache, the blob cache and the table of
 * passthrough backing ids.
 */
#ifndef CAIRN_MOUNT_INTERNAL_H
#define CAIRN_MOUNT_INTERNAL_H

#include "config.h"
#define FUSE_USE_VERSION CAIRN_FUSE_USE_VERSION
#include <fuse_lowlevel.h>

#include <pthread.h>
#include <stdatomic.h>

#include "index.h"
#include "mount.h"
#include "store.h"
#include "util.h"

/* ---- inode numbers ----
 *
 * Serving one snapshot, a FUSE inode is the snapshot's own inode number
 * (the root is 1 in both). Serving a store, the root is 1 and snapshot s's
 * inode i is slot(s) << SLOT_SHIFT | i, where slot(s) comes from a hash of
 * the name: stable across remounts whatever other snapshots come and go. */
#define SLOT_SHIFT 40
#define SLOT_MAX   ((1u << 23) - 1)

struct snap {
	char *name;
	uint64_t slot;                     /* 0 when serving one snapshot */
	pthread_mutex_t open_lock;         /* serialises the first open of idx */
	_Atomic(struct cairn_index *) idx; /* opened on first use */
};

/* ---- the decompressed chunk cache ---- */

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

/* ---- the filesystem ---- */

struct fs;

/* The blob cache: CACHE/blobs/<file id>, whole-file copies that the
 * kernel reads directly through passthrough. */
struct blob_cache;
int blob_cache_new(struct fs *fs, const char *dir, uint64_t bound, struct blob_cache **ret);
void blob_cache_free(struct blob_cache *cache);
/* Opens the verified blob of a file. With inline_work, a blob not yet
 * checked in this mount is checked, and a missing one made, before it
 * returns (one thread makes a blob, others wait for it); without, such a
 * blob is left to the background worker and -EAGAIN returned. Returns an
 * O_RDONLY fd, -EAGAIN, or -errno. */
int blob_cache_open(struct blob_cache *cache, struct snap *snap, uint64_t ino,
		    const struct cairn_index_file *file, bool inline_work);
/* Asks a background worker to make the blob (once per file id). */
void blob_cache_schedule(struct blob_cache *cache, struct snap *snap, uint64_t ino,
			 const struct cairn_index_file *file);

/* A passthrough backing id shared by every open file with the same file id,
 * released on the last close. */
struct backing {
	struct cairn_id file_id;
	int backing_id;
	unsigned opens;
	struct backing *next;
};

struct open_file {
	struct snap *snap;
	uint64_t ino;
	struct cairn_index_file file;
	struct backing *backing;      /* NULL unless passed through */
	_Atomic uint64_t next_offset; /* where a sequential reader reads next */
	/* A direct_io open of a file that may pass through, from its reply
	 * until its first READ or its RELEASE: the kernel may not have taken
	 * the reply in yet, and it fails the open (EIO) if the inode has a
	 * passthrough open by then. On fs->unsettled, under backing_lock. */
	atomic_bool unsettled;
	struct open_file *unsettled_next;
	struct open_file *open_prev, *open_next; /* fs->open_files, under open_lock */
};

struct fs_stats {
	atomic_uint_fast64_t reads; /* READ requests that reached the daemon */
	atomic_uint_fast64_t opens_passthrough;
	atomic_uint_fast64_t opens_cached; /* small files, keep_cache */
	atomic_uint_fast64_t opens_direct; /* blob not ready: direct_io fallback */
	atomic_uint_fast64_t blobs_made;
	atomic_uint_fast64_t read_errors;
};

struct fs {
	struct cairn_mount_options o;
	struct cairn_store *store;
	bool whole_store;
	struct snap *snaps; /* sorted by name */
	size_t snap_count;
	uint32_t *slot_map; /* open addressing: slot -> snap index + 1 */
	size_t slot_map_cap;
	struct fuse_session *se;
	pthread_key_t unpacker_key; /* one struct read_ctx per thread (read.c) */
	struct chunk_cache *chunks;
	struct blob_cache *blobs;
	atomic_bool passthrough;      /* decided at init, turned off on EPERM */
	bool passthrough_ever;        /* it was on at init */
	pthread_mutex_t backing_lock; /* protects backings and unsettled */
	struct backing *backings;
	struct open_file *unsettled; /* no passthrough open for these inodes */
	/* Every open file, freed at unmount if still there: the kernel drops
	 * the RELEASEs still queued when the connection ends. */
	pthread_mutex_t open_lock; /* protects open_files */
	struct open_file *open_files;
	uint32_t owner_uid, owner_gid; /* of the store root directory and snapshot dirs */
	int64_t start_sec;
	struct fs_stats stats;
	pthread_t readahead_thread;
	pthread_mutex_t readahead_lock; /* protects the readahead queue */
	pthread_cond_t readahead_cond;
	struct cairn_id readahead_queue[16];
	struct snap *readahead_snap[16];
	size_t readahead_len;
	bool stopping;
};

void fs_log(struct fs *fs, enum cairn_log_level level, const char *fmt, ...) _printf_(3, 4);

/* Splits a FUSE inode into its snapshot and the snapshot's inode. Returns 0,
 * 1 for the store root (whole-store mode), or -ENOENT. */
int fs_decode(struct fs *fs, fuse_ino_t ino, struct snap **ret_snap, uint64_t *ret_ino);
fuse_ino_t fs_encode(const struct snap *snap, uint64_t ino);
/* The snapshot's opened index, opening it on first use. -errno on failure. */
int fs_index(struct fs *fs, struct snap *snap, struct cairn_index **ret);

/* This thread's buffer of at least size bytes for a read reply, valid until
 * its next call; NULL when out of memory. */
uint8_t *fs_reply_buffer(struct fs *fs, size_t size);
/* Reads len bytes of an open file at offset into buf through the chunk cache
 * (holes are zeros). Returns the count or -errno. */
ssize_t fs_read_fallback(struct fs *fs, struct open_file *of, uint64_t offset, void *buf,
			 size_t len);
/* Copies a whole file into fd (its blob), checking every chunk against its
 * id as it is written. Returns 0, -EBADMSG for a chunk that does not match,
 * or -errno. */
int fs_copy_file(struct fs *fs, struct snap *snap, uint64_t ino,
		 const struct cairn_index_file *file, int fd);
/* Checks a blob found in the cache against the file's chunk list: every run's
 * bytes against its chunk id. Returns 0, -EBADMSG when they differ, or
 * -errno. */
int fs_check_copy(struct fs *fs, struct snap *snap, uint64_t ino,
		  const struct cairn_index_file *file, int fd);

/* Creates the per-thread unpacker key. */
int fs_read_init(struct fs *fs);
/* The readahead thread: decompresses queued chunks into the cache. */
void *fs_readahead_main(void *arg);
/* What init negotiates with the kernel, and the log line saying so. */
void fs_init_conn(struct fs *fs, struct fuse_conn_info *conn);

extern const struct fuse_lowlevel_ops cairn_fs_ops;

#endif
