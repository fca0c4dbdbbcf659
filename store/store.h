/* store.h: the facade of cairn's content-addressed chunk store.
 *
 * A store is a directory holding a config, immutable pack files of compressed
 * chunks and one sorted chunk table. Chunks are named by a keyed XXH3-128 id of
 * their bytes. Writers cut streams into content-defined chunks, keep each
 * distinct chunk once and commit atomically; readers map the chunk table and
 * verify every chunk against its id as they decompress it. The byte layouts are
 * in docs/FORMAT.md.
 *
 * Conventions: functions return 0 (or a documented non-negative value) on
 * success and -errno on failure; corrupt data is -EBADMSG, an unsupported
 * format version -EOPNOTSUPP, a too small caller buffer -ENOBUFS. On failure
 * the handle named in the function's comment keeps a one-line message for the
 * caller to print. Out-parameters are written only on success.
 */
#ifndef CAIRN_STORE_H
#define CAIRN_STORE_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define CAIRN_ID_SIZE 16
/* Length of an id as lowercase hex, without the terminating NUL. */
#define CAIRN_ID_HEX 32

/* A chunk id or file id: keyed XXH3-128, big-endian canonical bytes. */
struct cairn_id {
	uint8_t bytes[CAIRN_ID_SIZE];
};

/* A chunk of a file as the writer cut it. */
struct cairn_chunk_ref {
	struct cairn_id id;
	uint32_t size;
};

/* Parameters fixed when a store is created. */
struct cairn_store_params {
	uint32_t chunk_min; /* bytes; a file shorter than this is one chunk */
	uint32_t chunk_avg; /* target mean chunk size, a power of two */
	uint32_t chunk_max; /* no chunk is longer */
	int32_t zstd_level; /* 1..19 */
	uint64_t pack_max;  /* a pack is sealed once it reaches this many bytes */
	uint8_t id_hash;    /* enum cairn_id_hash: how chunk ids are made */
};

/* How a store names its chunks; fixed at init. Both are keyed by the
 * store's random key, so ids of one store say nothing about another's
 * content. XXH3-128 is fast and detects damage, but anyone who knows the
 * key (who can read the store's config) can craft two chunks with one id;
 * HMAC-SHA-256 (truncated to 128 bits: about 2^64 work to find a
 * collision) resists that, for stores that others can write. */
enum cairn_id_hash {
	CAIRN_ID_XXH3 = 0,
	CAIRN_ID_SHA256 = 1,
};

/* Limits on the parameters (checked by cairn_store_params_check). */
#define CAIRN_CHUNK_MIN_LIMIT 256u
#define CAIRN_CHUNK_MAX_LIMIT (16u << 20)

/* Sums over a store's chunk table. */
struct cairn_store_stats {
	uint64_t chunk_count;
	uint64_t pack_count;
	uint64_t chunk_bytes;  /* sum of uncompressed chunk sizes */
	uint64_t stored_bytes; /* compressed bytes in packs (a grouped frame's split by size) */
	uint64_t pack_bytes;   /* sum of pack file sizes, headers included */
};

/* The delta chunks of a store (cairn_store_delta_stats). */
struct cairn_store_delta_stats {
	uint64_t chunks;       /* chunks stored as deltas */
	uint64_t chunk_bytes;  /* their uncompressed bytes */
	uint64_t stored_bytes; /* their records' payload bytes */
	/* what their plain frames would have taken, less stored_bytes; for
	 * deltas kept without trying a plain frame (under 1/32 of their
	 * chunk), estimated at the ratio of the store's whole chunks */
	uint64_t saved_bytes;
};

struct cairn_store;
struct cairn_unpacker;
struct cairn_writer;

/* ---- ids ---- */

/* Writes id as 32 lowercase hex digits plus NUL into out (33 bytes). */
void cairn_id_to_hex(const struct cairn_id *id, char out[CAIRN_ID_HEX + 1]);
/* Parses 32 hex digits. Returns 0, or -EINVAL if hex is not exactly that. */
int cairn_id_from_hex(const char *hex, struct cairn_id *ret);
/* Returns <0, 0, >0 like memcmp. */
int cairn_id_compare(const struct cairn_id *a, const struct cairn_id *b);

/* ---- parameters ---- */

/* Fills p with the defaults: 16/64/256 KiB chunks, zstd level 3, 64 MiB packs. */
void cairn_store_params_default(struct cairn_store_params *p);
/* Returns 0 if p is usable, else -EINVAL and, when msg is not NULL, a reason
 * in msg (at most msg_size bytes including NUL). */
int cairn_store_params_check(const struct cairn_store_params *p, char *msg, size_t msg_size);

/* ---- the store handle ----
 *
 * A handle is made empty with _new, then bound to a directory with _create or
 * _open. It is safe to use from many threads for reading (unpackers); _create,
 * _open and writer commits must not race other calls on the same handle's
 * error message, which is why every thread that reads uses its own unpacker. */

/* Returns a new, unbound handle, or NULL when out of memory. */
struct cairn_store *cairn_store_new(void);
/* Releases the handle, its mappings and file descriptors. Accepts NULL. The
 * handle must have no live unpacker or writer. */
void cairn_store_free(struct cairn_store *store);
/* For _cleanup_(cairn_store_freep): frees *p (which may be NULL). */
static inline void cairn_store_freep(struct cairn_store **p)
{
	cairn_store_free(*p);
}
/* The last error message on this handle; "" if none. Valid until the next
 * call on the handle. */
const char *cairn_store_error(const struct cairn_store *store);

/* Creates a new store at path (the directory may exist but must be empty;
 * missing parents are not created) with params (NULL: defaults), a fresh
 * random hash key, private permissions (0700), and binds the handle to it.
 * Returns 0, -EEXIST if path already holds a store or other files, -EINVAL for
 * bad params, or another -errno. Crash-safe: the config is the last thing
 * written, so a half-made store is an empty directory or has no config.
 * Creators exclude each other (a flock on the directory while creating): of
 * two at once, the second gets -EEXIST once the first is done. */
int cairn_store_create(struct cairn_store *store, const char *path,
		       const struct cairn_store_params *params);
/* cairn_store_create with like's parameters and hash key (like: an open
 * store), so that chunk ids, file ids and snapshot files are the same bytes
 * in both: for `cairn copy` into a new store. Returns as cairn_store_create. */
int cairn_store_create_like(struct cairn_store *store, const char *path,
			    const struct cairn_store *like);
/* Whether two open stores share their hash key, so that the same bytes have
 * the same chunk id (and the same file ids and checksums) in both. */
bool cairn_store_same_key(const struct cairn_store *a, const struct cairn_store *b);
/* Whether path names a remote store (s3://BUCKET[/PREFIX], docs/FORMAT.md
 * "Remote stores"). _create and _open take one wherever they take a
 * directory: the handle then works on the host's mirror of the remote
 * store (in $XDG_CACHE_HOME/cairn/remote, or $CAIRN_REMOTE_CACHE), synced
 * to its committed state when opened; pack bytes are fetched as they are
 * read, snapshot files when first opened (cairn_store_snapshot_fetch), and
 * a writer's commits reach the remote with cairn_writer_publish. */
bool cairn_store_path_is_remote(const char *path);
/* Binds the handle to the existing store at path: reads and checks the config
 * and maps the chunk table. Takes no lock. path itself may be a symlink;
 * nothing inside the store is ever reached through one (path.h). Returns 0,
 * -ENOENT if there is no store at path, -EBADMSG for a damaged config or
 * table, -EOPNOTSUPP for a newer format, -ELOOP, -ENOTDIR, -EISDIR or -EBADFD
 * when a part of the store (config, chunks, packs/, lock, readers) is a
 * symlink or of the wrong type (cairn_path_strerror), or another -errno. */
int cairn_store_open(struct cairn_store *store, const char *path);
/* cairn_store_open, for a caller that will open snapshot (NULL: none) next:
 * on a remote store whose mirror lacks it, its file is fetched in the same
 * round trip as the tables (a mount's first stat waits one round trip
 * less). The same on a local store. */
int cairn_store_open_for(struct cairn_store *store, const char *path, const char *snapshot);

/* On a remote store, makes sure STORE/snapshots/name holds the snapshot's
 * bytes, fetching them (checked against the manifest's size and checksum)
 * when they are not on this host yet; index/ calls it before it opens a
 * snapshot. 0 at once on a local store, and for a name the store lacks (the
 * open then says so). Returns 0 or -errno with a message in msg.
 * Thread-safe. */
int cairn_store_snapshot_fetch(const struct cairn_store *store, const char *name, char *msg,
			       size_t msg_size);

/* The directory file descriptor of the bound store (O_PATH|O_DIRECTORY), for
 * *at() calls by the layers above; owned by the handle. -EBADF if unbound. */
int cairn_store_dirfd(const struct cairn_store *store);
/* The store's path as given to _create/_open; owned by the handle. */
const char *cairn_store_path(const struct cairn_store *store);
/* The bound store's parameters; owned by the handle. */
const struct cairn_store_params *cairn_store_params(const struct cairn_store *store);

/* Pins the store's packs for as long as the handle lives: takes a shared
 * lock on STORE/readers, which gc must take exclusively before it deletes
 * anything. A mount pins its store, so gc never removes a pack under it.
 * Waits while a gc runs. A store this process may not write to cannot be
 * gc'd by it either and is not pinned. Returns 0 or -errno. */
int cairn_store_pin(struct cairn_store *store);

/* A reading handle brought up to the store's committed state (a mount's
 * refresh): on a remote store one GET of cairn-head, and only when it
 * names another manifest the mirror synced as cairn_store_open syncs it;
 * then, on any store, the chunk table mapped again if it changed. A
 * replaced table stays mapped until the handle is freed, so readers on
 * other threads never lose theirs. swap_lock (or NULL) is held
 * exclusively only while the handle's remote manifest is replaced: hold
 * it shared around cairn_store_snapshot_fetch (cairn_index_open) on other
 * threads. Returns 1 when something changed, 0 when not, or -errno with a
 * message on the handle. One caller at a time, never with a writer on the
 * handle (store/refresh.c). */
int cairn_store_refresh(struct cairn_store *store, pthread_rwlock_t *swap_lock);

/* Sums over the current chunk table (O(chunks)). Returns 0 or -errno. */
int cairn_store_stats(const struct cairn_store *store, struct cairn_store_stats *ret);
/* Sums over the store's delta chunks, reading each one's reference (one
 * small read per delta). Returns 0 or -errno. Not thread-safe with a
 * writer on the same handle. */
int cairn_store_delta_stats(struct cairn_store *store, struct cairn_store_delta_stats *ret);
/* Whether the chunk id is stored as a delta: returns 1 and its base's id in
 * *ret_base, 0 when it is stored whole, -ENOENT when the store lacks it, or
 * -errno (one small read). */
int cairn_store_chunk_base(struct cairn_store *store, const struct cairn_id *id,
			   struct cairn_id *ret_base);
/* Whether the committed chunk table holds id; when it does and ret_size is not
 * NULL, writes the chunk's uncompressed size. Thread-safe. */
bool cairn_store_has_chunk(const struct cairn_store *store, const struct cairn_id *id,
			   uint32_t *ret_size);

struct cairn_chunk_info {
	uint32_t size;         /* uncompressed bytes */
	uint64_t stored_bytes; /* its share of the compressed bytes in its pack */
	uint32_t pack_num;
	uint64_t record_offset; /* where its record starts in the pack */
	bool shared_frame;      /* compressed together with other chunks */
};
/* What the committed table says of chunk id. Returns 0, or -ENOENT when
 * the store has no such chunk. Thread-safe. */
int cairn_store_chunk_info(const struct cairn_store *store, const struct cairn_id *id,
			   struct cairn_chunk_info *ret);

/* Before a whole file is read (cat, extract, the mount's blob maker): on a
 * remote store, starts fetching the pack bytes of chunks ids[0..count)
 * that the host's mirror lacks, neighbouring ranges coalesced (gaps up to
 * 64 KiB): a few blocks at once, more in the background (the handle's
 * fetcher thread, up to 8 range GETs in flight) while the caller reads on;
 * a read of a block on its way waits for it rather than fetch it again. A
 * no-op on a local store. Best effort: the reads fetch on demand what this
 * did not, and report what fails. Returns 0, or -errno with a message in
 * msg. Thread-safe. */
int cairn_store_prefetch(const struct cairn_store *store, const struct cairn_id *ids, size_t count,
			 char *msg, size_t msg_size);
/* On a remote store, bounds the pack bytes its host's mirror keeps: when
 * over it, whole pack files are evicted, least recently used first
 * (default: $CAIRN_REMOTE_CACHE_MAX, else 10% of the cache's filesystem).
 * A no-op on a local store. Returns 0. */
int cairn_store_set_cache_max(struct cairn_store *store, uint64_t bytes);
/* Whether store is a remote store's mirror (prefetching pays). */
bool cairn_store_is_remote(const struct cairn_store *store);

/* Computes the store's keyed chunk id of data (variant 0). Thread-safe. */
void cairn_store_chunk_id(const struct cairn_store *store, const void *data, size_t size,
			  struct cairn_id *ret);

/* Checks that data are the bytes of chunk id as the committed table records
 * it: its size, and its id under the chunk's variant. Returns 0, -ENOENT when
 * the store has no such chunk, or -EBADMSG when the bytes differ.
 * Thread-safe. */
int cairn_store_chunk_verify(const struct cairn_store *store, const struct cairn_id *id,
			     const void *data, size_t size);

/* Streaming keyed XXH3-128 with the store's file secret (for checksums of
 * the layers above, and file ids). The state is caller-allocated and
 * embedded by value. */
struct cairn_file_hasher {
	_Alignas(64) unsigned char opaque[640];
};
void cairn_file_hasher_init(struct cairn_file_hasher *hasher, const struct cairn_store *store);
void cairn_file_hasher_update(struct cairn_file_hasher *hasher, const void *data, size_t size);
void cairn_file_hasher_final(const struct cairn_file_hasher *hasher, struct cairn_id *ret);

/* A file id names a file's content by its chunk list (docs/FORMAT.md "Ids"):
 * the file hasher over a 16-byte domain, then each run of the file as its
 * chunk id (16 zero bytes for a hole) and the offset where the run ends (8
 * bytes, little-endian). A store confirms every chunk id by its bytes, so
 * files with different content have different chunk lists, and their ids
 * differ unless the keyed hash of two lists of keyed ids collides. Start
 * with cairn_file_id_init, add each run, end with cairn_file_hasher_final. */
void cairn_file_id_init(struct cairn_file_hasher *hasher, const struct cairn_store *store);
void cairn_file_id_add_run(struct cairn_file_hasher *hasher, const struct cairn_id *chunk_id,
			   uint64_t end);

/* ---- reading ----
 *
 * An unpacker holds one thread's decompression state and scratch buffers.
 * Any number may be live on one store handle, each used by one thread at a
 * time. */

/* Returns 0 and a new unpacker in *ret, or -ENOMEM. */
int cairn_unpacker_new(struct cairn_store *store, struct cairn_unpacker **ret);
/* Accepts NULL. */
void cairn_unpacker_free(struct cairn_unpacker *unpacker);
/* For _cleanup_(cairn_unpacker_freep): frees *p (which may be NULL). */
static inline void cairn_unpacker_freep(struct cairn_unpacker **p)
{
	cairn_unpacker_free(*p);
}
/* The unpacker's last error message; valid until its next call. */
const char *cairn_unpacker_error(const struct cairn_unpacker *unpacker);

/* Copies the chunk named id into buf (capacity buf_size) after checking its
 * bytes against id. Returns the chunk's size (>= 0), -ENOENT if the store has
 * no such chunk, -ENOBUFS if buf_size is too small, -EBADMSG if the stored
 * chunk is damaged (the message names the pack and offset), or -EIO etc. */
int64_t cairn_unpacker_get(struct cairn_unpacker *unpacker, const struct cairn_id *id, void *buf,
			   size_t buf_size);

/* Called with a chunk's verified bytes (valid only during the call). */
typedef void (*cairn_chunk_fn)(void *userdata, const struct cairn_id *id, const void *data,
			       uint32_t size);
/* cairn_unpacker_get, and then, when the chunk is one of several small
 * chunks compressed together (docs/FORMAT.md "Records"), fn for each of the
 * others whose bytes match their ids: they came out of the same
 * decompression, and a small file's neighbours in an archive tend to be read
 * next. */
int64_t cairn_unpacker_get_neighbours(struct cairn_unpacker *unpacker, const struct cairn_id *id,
				      void *buf, size_t buf_size, cairn_chunk_fn fn,
				      void *userdata);

/* ---- writing ----
 *
 * One writer at a time per store (an exclusive flock on STORE/lock); readers
 * are never blocked. A writer runs threads that cut and hash files' bytes
 * (cutters), deduplicate them in order (the sequencer) and compress them
 * (workers); its calls must come from one thread. Nothing it writes is visible to readers before
 * cairn_writer_commit. */

#define CAIRN_WRITER_NOWAIT 1u /* fail with -EWOULDBLOCK instead of waiting for the lock */

/* What writers that died left behind (docs/FORMAT.md "Commit protocol"):
 * temp files and packs that no committed chunk table lists. */
struct cairn_leftovers {
	uint64_t files;
	uint64_t bytes; /* their sizes */
};

struct cairn_writer_stats {
	/* removed when the writer was opened (a gc reports them) */
	struct cairn_leftovers leftovers;
	uint64_t bytes_in;     /* bytes given to put/file_write */
	uint64_t chunks_in;    /* chunks cut or put */
	uint64_t chunks_new;   /* of those, not in the store before */
	uint64_t bytes_new;    /* uncompressed size of the new chunks */
	uint64_t bytes_stored; /* their payload size in packs */
	uint64_t collisions;   /* id matches whose bytes differed */
};

/* Takes the store's write lock (waiting for it unless flags has
 * CAIRN_WRITER_NOWAIT), removes leftovers of writers that died (temp files,
 * packs no table lists; counted in the writer's stats) and starts threads
 * (0: as many cutters and workers as CPUs the process may run on). On
 * failure the message is on the store handle. */
int cairn_writer_open(struct cairn_store *store, unsigned flags, unsigned threads,
		      struct cairn_writer **ret);
/* Abandons everything not committed, removes its temp files, stops the threads
 * and drops the lock. Accepts NULL. */
void cairn_writer_free(struct cairn_writer *writer);
/* For _cleanup_(cairn_writer_freep): frees *p (which may be NULL). */
static inline void cairn_writer_freep(struct cairn_writer **p)
{
	cairn_writer_free(*p);
}
/* The writer's last error message; valid until its next call. */
const char *cairn_writer_error(const struct cairn_writer *writer);

/* Stores one chunk (1..chunk_max bytes, not cut further) unless an identical
 * chunk is already stored; writes its id to *ret. Returns 0 or -errno. The
 * bytes are copied; data may be reused on return. */
int cairn_writer_put(struct cairn_writer *writer, const void *data, size_t size,
		     struct cairn_id *ret);

/* Streaming a file: begin, any number of writes (any sizes: the cut points do
 * not depend on them), end. end writes the file's size and a borrowed array
 * of its chunks (valid until the next file_begin, commit or free). An empty
 * file has no chunks. The file id is made from the chunk list by whoever
 * needs it (cairn_file_id_init; the content is hashed once, by its chunks):
 * the index makes it over all of a file's runs, holes included. */
int cairn_writer_file_begin(struct cairn_writer *writer);
int cairn_writer_file_write(struct cairn_writer *writer, const void *data, size_t size);
int cairn_writer_file_end(struct cairn_writer *writer, uint64_t *ret_size,
			  const struct cairn_chunk_ref **ret_chunks, size_t *ret_count);

/* Files handed over without waiting: the calling thread only copies their
 * bytes; threads cut, hash and deduplicate them. cairn_writer_file_end_async
 * ends a file; its result (size and chunks, the array valid during the call)
 * reaches fn later, on the calling thread, during a later file_begin,
 * file_write, file_end or cairn_writer_files_flush, always in the order the
 * files ended, cookie as given. A non-zero return from fn fails that call.
 * A synchronous file_end first delivers every result before its own. */
typedef int (*cairn_writer_file_fn)(void *userdata, uint64_t cookie, uint64_t size,
				    const struct cairn_chunk_ref *chunks, size_t count);
void cairn_writer_set_file_fn(struct cairn_writer *writer, cairn_writer_file_fn fn, void *userdata);
int cairn_writer_file_end_async(struct cairn_writer *writer, uint64_t cookie);
/* Hands on the bytes copied so far without waiting for a full batch: for a
 * caller about to block on its input (a pipe that stalls would otherwise
 * hold them back). */
void cairn_writer_files_kick(struct cairn_writer *writer);
/* Waits for every file ended so far and delivers the results not yet
 * delivered. Returns 0 or -errno (the first failure of the threads, or fn's). */
int cairn_writer_files_flush(struct cairn_writer *writer);

/* Makes everything put so far durable and visible: waits for the threads,
 * seals and fsyncs the open pack, writes the merged chunk table to a temp
 * file, fsyncs it and renames it into place. The store handle then reads the
 * new table. The writer stays usable. Returns 0 or -errno (nothing changes
 * for readers on failure). */
int cairn_writer_commit(struct cairn_writer *writer);

/* On a remote store, makes what was committed into the host's mirror since
 * the writer opened (packs, chunk table, snapshot files added, replaced or
 * removed) the remote store's new state: uploads what the remote lacks,
 * then its manifest, and last its pointer, after checking that the writer
 * still holds the store's lease and nobody committed meanwhile. On failure
 * the remote store is as it was (the mirror is synced back to it when next
 * opened). 0 at once on a local store. Returns 0 or -errno with a message
 * on the writer. */
int cairn_writer_publish(struct cairn_writer *writer);

/* What the gc of a remote store did to its objects (cairn_writer_publish_gc). */
struct cairn_remote_gc_stats {
	uint64_t listed;          /* objects of the store the bucket listing gave */
	uint64_t condemned;       /* unreferenced objects in the new manifest's list */
	uint64_t condemned_bytes; /* their bytes (the listing's sizes) */
	uint64_t newly_condemned; /* of them, found unreferenced by this gc */
	uint64_t deleted;         /* deleted: condemned for longer than the grace period */
	uint64_t deleted_bytes;
	uint64_t delete_failed; /* deletes that failed: they stay condemned */
	char delete_error[300]; /* the first failed delete's message, or "" */
};

/* cairn_writer_publish for gc: on a remote store, lists the bucket under
 * its prefix and records every object of the store that the new manifest
 * does not reference as condemned (with the time it was first found so;
 * docs/FORMAT.md "Remote stores"), publishes, and then deletes the objects
 * condemned grace_seconds or longer ago (0: at once, unsafe while other
 * hosts read the store), and the mirror's files of packs no longer listed.
 * A failed delete is counted in ret, not an error: the object stays
 * condemned and the next gc deletes it. ret is zeroed; on a local store it
 * stays so. Returns 0 or -errno with a message on the writer. */
int cairn_writer_publish_gc(struct cairn_writer *writer, int64_t grace_seconds,
			    struct cairn_remote_gc_stats *ret);
/* Drops everything put since the last commit (and a file in progress):
 * waits for the threads, deletes the session's packs and forgets its
 * chunks, keeping the lock, so the writer can go on with the next archive
 * after a failed one. Clears a worker failure. Returns 0 or -errno. */
int cairn_writer_rollback(struct cairn_writer *writer);
/* Counters since the writer was opened. */
void cairn_writer_stats(const struct cairn_writer *writer, struct cairn_writer_stats *ret);

/* ---- copying records between stores of one key (writer_copy.c) ---- */

struct cairn_record_copier;
/* Whether the caller wants chunk id copied. */
typedef bool (*cairn_chunk_want_fn)(void *userdata, const struct cairn_id *id);
/* Told of each chunk a copy stored. */
typedef void (*cairn_chunk_copied_fn)(void *userdata, const struct cairn_id *id, uint32_t size);

/* A copier of records from src into writer's store, which must have src's
 * hash key (cairn_store_same_key): both borrowed, outliving the copier.
 * Returns 0 and the handle in *ret, or -ENOMEM. Used on the writer's
 * thread. */
int cairn_record_copier_new(struct cairn_store *src, struct cairn_writer *writer,
			    struct cairn_record_copier **ret);
/* Accepts NULL. */
void cairn_record_copier_free(struct cairn_record_copier *copier);
static inline void cairn_record_copier_freep(struct cairn_record_copier **p)
{
	cairn_record_copier_free(*p);
}
/* The last failure's message (naming the pack, offset and chunk). */
const char *cairn_record_copier_error(const struct cairn_record_copier *copier);
/* Copies the record of src that holds chunk id into the writer's open
 * pack with its stored bytes as they are (no recompression), when it is
 * not a delta and every chunk in it is one want() accepts and one the
 * destination holds neither committed nor in this session. Each chunk is
 * decoded and checked against its id first. Then copied() is called for
 * each of them, and they are the session's like put chunks (commit,
 * rollback). Returns the number of chunks stored (>= 1), 0 when the record
 * does not qualify (nothing done: read and put the chunk instead),
 * -ENOENT when src lacks id, or -errno (-EBADMSG: damaged; message on the
 * copier). */
int cairn_record_copier_copy(struct cairn_record_copier *copier, const struct cairn_id *id,
			     cairn_chunk_want_fn want, cairn_chunk_copied_fn copied,
			     void *userdata);

/* ---- garbage collection ---- */

struct cairn_gc_stats {
	uint64_t chunks_dropped;  /* chunks no longer used, removed from the table */
	uint64_t chunks_moved;    /* live chunks copied out of rewritten packs */
	uint64_t packs_rewritten; /* packs deleted after their live chunks moved */
	uint64_t packs_deleted;   /* packs deleted in all (rewritten or wholly dead) */
	uint64_t bytes_before;    /* pack bytes before */
	uint64_t bytes_after;     /* pack bytes after */
};

/* Says whether the chunk id is still used by anything the caller keeps. */
typedef bool (*cairn_chunk_live_fn)(void *userdata, const struct cairn_id *id);

/* Drops every chunk for which live() is false, and rewrites each pack of
 * which more than a tenth is no longer used: its live chunks are stored
 * afresh (regrouped and recompressed) in new packs, then it is deleted. The
 * writer must hold no uncommitted work (-EBUSY otherwise); gc commits like
 * cairn_writer_commit, so a crash leaves the store as before or as after.
 * Packs are deleted only after the commit. Returns 0 or -errno (message on
 * the writer; a damaged chunk that must move aborts gc, naming it). */
int cairn_writer_gc(struct cairn_writer *writer, cairn_chunk_live_fn live, void *userdata,
		    struct cairn_gc_stats *ret);

/* ---- verification ---- */

/* Called for each leftover found: its path relative to the store and its
 * size in bytes. */
typedef void (*cairn_leftover_fn)(void *userdata, const char *path, uint64_t size);

/* Lists, without removing anything, the leftovers of writers that died:
 * temp files (tmp-*, *.tmp) in the store's directory and in packs/, packs
 * that the committed chunk table does not list, and files named tmp-* in
 * each subdirectory of the store that dirs names (NULL-terminated, may be
 * NULL: the layers above keep their temp files there). The next writer
 * (an add, rm or gc) removes them all. Holds a shared flock on STORE/lock
 * while it looks, taken without waiting, so a running writer's files are
 * never taken for leftovers. Returns the number found, -EBUSY when a
 * writer is at work now, or another -errno (message on the store handle).
 * Not thread-safe on the handle's message. */
int64_t cairn_store_leftovers(struct cairn_store *store, const char *const *dirs,
			      cairn_leftover_fn fn, void *userdata);

/* Called once per problem found, with a one-line description naming the
 * pack, offset and chunk. */
typedef void (*cairn_verify_report_fn)(void *userdata, const char *problem);

/* Re-reads every pack and the chunk table: checks every record's header,
 * decompresses and re-hashes every chunk, checks sizes, pack trailers, the
 * table's checksum and order, and that every table entry has its record.
 * Returns the number of problems found (0: the store is sound) or -errno when
 * it could not run at all (message on the store handle). */
int64_t cairn_store_verify(struct cairn_store *store, cairn_verify_report_fn report,
			   void *userdata);

#endif
