/* store_internal.h: what the files of store/ share in memory: hashing, the
 * chunker, the chunk table mapping, the pack reader and the store handle's
 * innards. The on-disk structs are in format.h, the writer's innards in
 * writer_internal.h. Nothing outside store/ includes this, except unit tests
 * (and the store's fuzz target and chunking benchmark) that test a part on
 * its own: they define CAIRN_BUILDING_STORE.
 */
#ifndef CAIRN_BUILDING_STORE
#error "store_internal.h is internal to store/; use store.h"
#endif
#ifndef CAIRN_STORE_INTERNAL_H
#define CAIRN_STORE_INTERNAL_H

#include "format.h"
#include "store.h"
#include "path.h"
#include "util.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>

struct remote_state;

/* ---- hashing (hash.c) ---- */

/* Distinct ids for distinct bytes that collide on variant 0 are made by
 * re-hashing with the next variant's secret; this bounds the search. */
#define ID_VARIANTS 8
#define SECRET_SIZE 192

/* A test seam: replaces the chunk id function. */
typedef void (*cairn_id_fn)(const struct cairn_store *store, const void *data, size_t size,
			    unsigned variant, struct cairn_id *ret);

/* Computes the id of data under variant (0 <= variant < ID_VARIANTS). */
void store_chunk_id(const struct cairn_store *store, const void *data, size_t size,
		    unsigned variant, struct cairn_id *ret);
/* Derives the chunk and file secrets from the key into store (and opens
 * OpenSSL for a store with sha256 ids). Returns 0, or -ENOSYS with the
 * message on store when OpenSSL is missing. */
int store_derive_secrets(struct cairn_store *store);
uint64_t store_checksum(const void *data, size_t size);
/* XXH3-128 of data as 32 hex digits (the remote mirror's directory name). */
void store_hash128_hex(const void *data, size_t size, char out[33]);

/* Streaming XXH3-64, for checksums over data written in pieces. */
struct store_checksum_stream {
	_Alignas(64) unsigned char opaque[640];
};
void store_checksum_stream_init(struct store_checksum_stream *stream);
void store_checksum_stream_update(struct store_checksum_stream *stream, const void *data,
				  size_t size);
uint64_t store_checksum_stream_final(const struct store_checksum_stream *stream);

/* ---- chunker (chunker.c) ---- */

/* FastCDC-style content-defined chunker with normalised chunking. The state
 * carries across calls, so cut points depend on the bytes only. */
struct cairn_chunker {
	uint64_t gear[256];
	uint64_t mask_small; /* used below avg: harder to match */
	uint64_t mask_large; /* used from avg on: easier to match */
	uint32_t min, avg, max;
	uint32_t len; /* bytes in the current chunk so far */
	uint64_t hash;
};

/* params must have passed cairn_store_params_check. */
void cairn_chunker_init(struct cairn_chunker *chunker, const struct cairn_store_params *params);
/* Starts a new chunk (a new file). */
void cairn_chunker_reset(struct cairn_chunker *chunker);
/* Scans data for the end of the current chunk. Returns how many bytes of data
 * belong to it; *ret_cut says whether the chunk ends after them (then the
 * chunker is reset for the next one). */
size_t cairn_chunker_scan(struct cairn_chunker *chunker, const uint8_t *data, size_t size,
			  int *ret_cut);

/* ---- the chunk table (table.c) ---- */

struct chunk_table {
	void *map; /* NULL for an empty mapping */
	size_t map_size;
	const struct table_header *header;
	const struct table_pack *packs;
	const uint32_t *fanout;
	const struct table_entry *entries;
	uint64_t entry_count;
	uint32_t pack_count;
	uint32_t next_pack_num;
	struct chunk_table *retired_next; /* the store's list of replaced tables */
};

/* Maps and checks STORE/chunks. Returns 0 or -errno, with a message in msg. */
int table_load(int dirfd, struct chunk_table **ret, char *msg, size_t msg_size);
void table_free(struct chunk_table *table);
/* Binary search (narrowed by the fanout). Returns the entry or NULL. */
const struct table_entry *table_find(const struct chunk_table *table, const struct cairn_id *id);
/* The table's pack entry for pack_num, or NULL. */
const struct table_pack *table_find_pack(const struct chunk_table *table, uint32_t pack_num);
/* Checks the body checksum and the order of entries. Returns 0 or -EBADMSG
 * with a message. O(entries). */
int table_check_body(const struct chunk_table *table, char *msg, size_t msg_size);

/* A table being written: the writer's merge output. */
struct table_build {
	const struct table_entry *const *new_entries; /* sorted by id */
	size_t new_count;
	const struct table_pack *new_packs; /* sorted, all numbered above the old ones */
	size_t new_pack_count;
	uint32_t next_pack_num;
	const uint64_t *old_dropped;  /* bit i set: leave out old entry i (gc); may be NULL */
	const bool *old_pack_dropped; /* [i]: leave out old pack i (gc); may be NULL */
};
/* Writes old merged with build into a temp file and renames it over
 * STORE/chunks. An entry of build with the id of an old one replaces it.
 * *ret_renamed says whether the rename happened: it may have even when the
 * call fails (the fsync of the directory after it), and then the new table
 * is the store's and everything it lists must stay. */
int table_write_merged(int dirfd, const struct chunk_table *old, const struct table_build *build,
		       char *msg, size_t msg_size, bool *ret_renamed);
/* Writes an empty table (for a new store). */
int table_write_empty(int dirfd, char *msg, size_t msg_size);

/* ---- pack names and the frame reader (pack_read.c) ---- */

void pack_name(uint32_t pack_num, char buf[32]);
/* Parses "%08x.pack"; returns 0 or -EINVAL. */
int pack_parse_name(const char *name, uint32_t *ret);

/* The scratch size a frame reader needs for one record. */
size_t pack_scratch_size(const struct cairn_store_params *params);

/* Reads chunks out of pack records: one thread's zstd context, a record
 * buffer, and the last few decompressed grouped frames (least recently used
 * goes first), so reading the members of a grouped frame in turn, or
 * alternating between a few, decompresses each once. */
#define FRAME_READER_MAX_FRAMES 4
struct ZSTD_DCtx_s;
struct frame_reader {
	struct ZSTD_DCtx_s *dctx;
	uint8_t *record; /* pack_scratch_size bytes: the last record read */
	bool record_valid;
	uint32_t record_pack;
	uint64_t record_offset;
	unsigned frame_count;
	struct frame_slot {
		uint8_t *data; /* chunk_max bytes */
		bool valid;    /* data holds the frame of the record at pack/offset */
		uint32_t pack;
		uint64_t offset;
		uint64_t used;
	} frames[FRAME_READER_MAX_FRAMES];
	uint64_t clock;
	/* Per level of a delta chain being decoded (delta.c), made on first
	 * use: the delta's payload, copied out of record before its base is
	 * read, and the base's bytes. */
	unsigned delta_level;
	struct {
		uint8_t *payload;
		uint8_t *base;
	} delta[DELTA_MAX_DEPTH];
	/* Finds a delta's base that the chunk table does not list (the
	 * writer's session, not yet committed), or NULL. */
	int (*session_base)(void *ctx, const struct cairn_id *id, const struct table_entry **ret,
			    int *ret_fd, bool *ret_own_fd);
	void *session_ctx;
};
/* frames: how many decompressed frames to keep, 1..FRAME_READER_MAX_FRAMES. */
int frame_reader_init(struct frame_reader *reader, const struct cairn_store_params *params,
		      unsigned frames);
void frame_reader_release(struct frame_reader *reader);
/* Forgets the cached frames (their pack may be reused or damaged). */
void frame_reader_forget(struct frame_reader *reader);
/* Reads entry's chunk from the pack open on fd into out (out_size >= the
 * chunk's size), checking the record against entry and the bytes against the
 * id. Returns the chunk size, -ENOBUFS, or -EBADMSG/-errno with a message
 * naming the pack, offset and chunk. */
int64_t frame_reader_get(struct frame_reader *reader, const struct cairn_store *store, int fd,
			 const struct table_entry *entry, void *out, size_t out_size, char *msg,
			 size_t msg_size);

/* Fetches entry's chunk bytes, checked against the record but not yet
 * against the id: decoded into out (a lone chunk) or inside the reader's
 * frame cache. Returns a pointer to them, or NULL with *ret set and a
 * message. */
const uint8_t *frame_fetch(struct frame_reader *reader, const struct cairn_store *store, int fd,
			   const struct table_entry *entry, void *out, size_t out_size, char *msg,
			   size_t msg_size, int64_t *ret);

/* ---- delta records (delta.c) ---- */

/* Decodes the delta record of entry (payload: its stored_size bytes) into
 * out (entry->size bytes): reads its base through reader (the table, else
 * reader->session_base), checks the base against its id, then decodes with
 * the base as prefix. The caller checks out against entry's id. Returns NULL
 * or why it failed (in why, or a constant). */
const char *delta_decode(struct frame_reader *reader, const struct cairn_store *store,
			 const struct table_entry *entry, const uint8_t *payload, void *out,
			 char *why, size_t why_size);
/* Reads the delta reference of entry (a CODEC_DELTA entry) from the pack
 * open on fd. Returns 0, or -EBADMSG/-errno. Not checked beyond its size. */
int delta_read_ref(const struct cairn_store *store, int fd, const struct table_entry *entry,
		   struct delta_ref *ret);
/* gc: clears the dropped bit of every base a live delta needs, down the
 * chain, calling revive(ctx, index) for each. Returns 0 or -errno. */
int delta_keep_bases(struct cairn_store *store, const struct chunk_table *table, uint64_t *dropped,
		     void (*revive)(void *, uint64_t), void *ctx);

/* Compares entry's stored chunk with data (entry->size bytes), decoding
 * through scratch (chunk_max bytes) when needed: 1 when equal (no re-hash:
 * data has the id already), 0 when the stored bytes differ but match the id
 * (a collision), -EBADMSG when they do not match the id (damage) or the
 * record is bad, -errno; a message as frame_reader_get's. */
int frame_reader_confirm(struct frame_reader *reader, const struct cairn_store *store, int fd,
			 const struct table_entry *entry, const void *data, void *scratch,
			 size_t scratch_size, char *msg, size_t msg_size);

/* After frame_reader_get of entry from a grouped record: calls fn with every
 * other member of the record whose bytes match its id. */
void frame_reader_each_member(struct frame_reader *reader, const struct cairn_store *store,
			      const struct table_entry *entry, cairn_chunk_fn fn, void *userdata);

/* ---- the writer's parts that gc drives (writer*.c; innards in writer_internal.h) ---- */

/* Stores data again as the chunk old describes (same id and variant) in the
 * writer's session, whatever the table holds: gc moving a live chunk out of
 * a pack it rewrites. */
int writer_restore_chunk(struct cairn_writer *w, const struct table_entry *old, const void *data);
/* Commits like cairn_writer_commit, leaving out what build's old_dropped
 * and old_pack_dropped mark. */
int writer_commit_with(struct cairn_writer *w, const uint64_t *old_dropped,
		       const bool *old_pack_dropped);
struct cairn_store *writer_store(const struct cairn_writer *w);
/* Whether the writer holds work not yet committed. */
bool writer_is_dirty(const struct cairn_writer *w);
/* The writer's frame reader and chunk buffer (chunk_max bytes). */
struct frame_reader *writer_reader(struct cairn_writer *w);
uint8_t *writer_buffer(struct cairn_writer *w);
void writer_set_error(struct cairn_writer *w, const char *fmt, ...) _printf_(2, 3);

/* ---- the store handle (store.c) ---- */

struct pack_fd {
	uint32_t pack_num;
	int fd;
};

struct cairn_store {
	char *path;
	int dirfd;
	int packs_dirfd;
	struct cairn_store_params params;
	uint8_t hash_key[KEY_SIZE];
	uint8_t chunk_secret[ID_VARIANTS][SECRET_SIZE];
	uint8_t chunk_mac_key[ID_VARIANTS][32]; /* CAIRN_ID_SHA256's HMAC keys */
	uint8_t file_secret[SECRET_SIZE];
	cairn_id_fn id_fn;       /* NULL: the real one; set by tests only */
	uint32_t config_version; /* CONFIG_VERSION, or CONFIG_VERSION_DELTA once deltas may be in */

	_Atomic(struct chunk_table *) table;
	struct chunk_table *retired; /* replaced tables some unpacker may still use */
	atomic_uint unpackers;       /* live unpackers on this handle */

	int pin_fd; /* STORE/readers, shared-locked by cairn_store_pin, or -1 */

	struct remote_state *remote; /* s3:// stores: the mirror's remote side; else NULL */

	pthread_mutex_t fd_lock; /* protects fds, fd_count, fd_cap */
	struct pack_fd *fds;     /* sorted by pack_num */
	size_t fd_count, fd_cap;

	char error[512];
};

#define READERS_NAME "readers"
#define LOCK_NAME    "lock"

/* Where a name is looked at for leftovers.c's rule: the store's own
 * directory, packs/, or a directory of a layer above (only tmp-* there). */
enum leftover_dir { LEFTOVER_TOP, LEFTOVER_PACKS, LEFTOVER_OTHER };
/* Whether name, in where, is a leftover of a writer that died: a temp file,
 * or in packs/ a pack that table does not list. Only meaningful while no
 * writer is at work (the lock is held). */
bool store_is_leftover(const char *name, enum leftover_dir where, const struct chunk_table *table);

/* cairn_openat_beneath's way without openat2 (path.c): one O_NOFOLLOW
 * openat per name. Exposed for the unit tests, which check both ways. */
int path_open_walk(int dirfd, const char *path, int flags, mode_t mode);

/* Rewrites config at CONFIG_VERSION_DELTA unless it is there already (the
 * writer, holding the lock, before it commits its first delta). Returns 0
 * or -errno with a message on the store. */
int store_config_raise(struct cairn_store *store);

/* Binds the handle to the store directory at path (store->dirfd, when
 * already open, is that directory; path then only names it in messages). */
int store_bind(struct cairn_store *store, const char *path);

/* ---- remote stores (remote_*.c; remote.h) ---- */

/* Before a pread of [offset, offset + size) of pack_num: on a remote
 * store, makes sure those bytes are in the mirror's pack file. 0 at once on
 * a local store or a pack only the mirror has (a writer's). Returns 0 or
 * -errno with a message in msg. Thread-safe. */
/* cairn_store_create with the hash key given (NULL: a new random one); a
 * remote store's mirror is made by it too. */
int store_create_keyed(struct cairn_store *store, const char *path,
		       const struct cairn_store_params *params, const uint8_t *key);
int store_remote_ensure(const struct cairn_store *store, uint32_t pack_num, uint64_t offset,
			uint64_t size, char *msg, size_t msg_size);
/* store_remote_ensure, and on success the pack is held (never evicted
 * from the host's cache) until store_remote_release: around a pread. */
int store_remote_ensure_hold(const struct cairn_store *store, uint32_t pack_num, uint64_t offset,
			     uint64_t size, char *msg, size_t msg_size);
void store_remote_release(const struct cairn_store *store, uint32_t pack_num);
/* After bytes of that range failed their check: on a remote pack, forgets
 * them and fetches them again, returning 1 (read again); 0 when the pack
 * is local (the damage is real), or -errno with a message. */
int store_remote_refetch(const struct cairn_store *store, uint32_t pack_num, uint64_t offset,
			 uint64_t size, char *msg, size_t msg_size);

/* A writer sealed pack_num (size bytes): on a remote store, its upload
 * starts now, in the background. Thread-safe. */
void store_remote_pack_sealed(const struct cairn_store *store, uint32_t pack_num, uint64_t size);
/* Writes " (fetched twice from s3://B/P/KEY)" naming the remote object of
 * pack_num into buf, or "" when it has none. */
void store_remote_describe(const struct cairn_store *store, uint32_t pack_num, char *buf,
			   size_t size);

/* The current table; never NULL on a bound store. */
static inline const struct chunk_table *store_table(const struct cairn_store *store)
{
	return atomic_load_explicit(&((struct cairn_store *)store)->table, memory_order_acquire);
}
/* Replaces the current table. The old one is freed at once when no unpacker
 * is live (none can hold it), else kept until the store is freed. */
void store_swap_table(struct cairn_store *store, struct chunk_table *table);
/* The shared read fd of a pack; owned by the store. Returns fd or -errno. */
int store_pack_fd(struct cairn_store *store, uint32_t pack_num);
/* Closes the cached fd of pack_num, if any (the writer before unlinking). */
void store_forget_pack_fd(struct cairn_store *store, uint32_t pack_num);
void store_set_error(struct cairn_store *store, const char *fmt, ...) _printf_(2, 3);

/* Test seam: swap the chunk id function (NULL restores the real one). Only
 * for unit tests; a store written with another function is unreadable. */
void cairn_store_testing_set_id_fn(struct cairn_store *store, cairn_id_fn fn);

#endif
