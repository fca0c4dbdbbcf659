/* index.h: the facade of cairn's snapshot index: turning an archive into a
 * snapshot (one mmappable file per archive in STORE/snapshots/NAME, its file
 * contents in the chunk store) and reading snapshots back in place.
 *
 * A snapshot is immutable once committed. Opening one costs O(1) in its
 * entries: the file is mapped, its header, section table, section bounds and
 * source record are checked, and every later access is bounds-checked on its
 * own, so a damaged or hostile file gives -EBADMSG, never a crash or a read
 * out of bounds. cairn_index_check verifies everything (checksums of every
 * section, every record) in O(size). The byte layout is in docs/FORMAT.md,
 * "Snapshot index".
 *
 * Conventions as in store.h: 0 (or a documented non-negative value) on
 * success, -errno on failure, corrupt data -EBADMSG, a newer format
 * -EOPNOTSUPP, a too small buffer -ENOBUFS; messages are kept on the handle
 * named in the function's comment; out-parameters are written only on
 * success.
 */
#ifndef CAIRN_INDEX_H
#define CAIRN_INDEX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "store.h"

/* The root directory's inode number in every snapshot. */
#define CAIRN_INDEX_ROOT 1u

/* ---- snapshot names ----
 *
 * A name is 1..CAIRN_SNAPSHOT_NAME_MAX bytes of printable ASCII other than
 * space, '/', ':' and '\\', or UTF-8 (bytes >= 0x80); it does not start with
 * '.' or '-', and not with "tmp-" (temp files use that prefix). */

#define CAIRN_SNAPSHOT_NAME_MAX 200

/* Returns 0 if name is allowed, else -EINVAL and a reason in msg. */
int cairn_snapshot_name_check(const char *name, char *msg, size_t msg_size);
/* The default name for an archive at path: its file name without archive
 * and compression suffixes ("x/typescript-5.7.3.tgz" -> "typescript-5.7.3").
 * Returns 0, or -EINVAL if that is not an allowed name (msg says why; buf
 * still holds the stripped file name, which `cairn mount ARCHIVE` names its
 * mount point after), or -ENAMETOOLONG (buf unset). */
int cairn_snapshot_default_name(const char *path, char *buf, size_t buf_size, char *msg,
				size_t msg_size);
/* Checks that STORE/snapshots, if there is one, is a real directory (not a
 * symbolic link, a file or a FIFO). Returns 0, or -errno with a one-line
 * reason naming the path in msg. Every use of the directory refuses such a
 * thing too; this lets a command refuse it before it starts. */
int cairn_snapshot_dir_check(const struct cairn_store *store, char *msg, size_t msg_size);
/* Whether STORE/snapshots/name exists: 1, 0, or -errno. */
int cairn_snapshot_exists(const struct cairn_store *store, const char *name);
/* The names of the store's snapshots, sorted bytewise, in a malloc'd array
 * of malloc'd strings (free with cairn_snapshot_names_free). Returns 0 or
 * -errno. A store with no snapshots directory has none. */
int cairn_snapshot_list(const struct cairn_store *store, char ***ret_names, size_t *ret_count);
void cairn_snapshot_names_free(char **names, size_t count);
/* Removes snapshot name (STORE/snapshots/name) and makes the removal durable
 * (fsyncs the directory). Call only while holding the store's writer (its
 * lock), as gc must see every snapshot it keeps chunks for. A mount that
 * has the snapshot open keeps reading it; its chunks stay until gc.
 * Returns 0, or -errno with a one-line reason in msg: -ENOENT (no such
 * snapshot), -EINVAL (not an allowed name), or what unlinking or fsyncing
 * returned (the snapshot may then be gone but not durably so). */
int cairn_snapshot_remove(const struct cairn_store *store, const char *name, char *msg,
			  size_t msg_size);
/* Removes STORE/snapshots/tmp-* left by writers that died, and when ret is
 * not NULL adds their count and sizes to it. Call only while holding the
 * store's writer (its lock). Returns 0 or -errno. */
int cairn_snapshot_remove_leftovers(const struct cairn_store *store, struct cairn_leftovers *ret);
/* Lists the leftovers of writers that died in the whole store, those in
 * STORE/snapshots/ included: cairn_store_leftovers with the snapshots'
 * directory. Returns the number found, -EBUSY while a writer is at work,
 * or -errno (message on the store handle). */
int64_t cairn_snapshot_leftovers(struct cairn_store *store, cairn_leftover_fn fn, void *userdata);

/* ---- reading a snapshot ----
 *
 * An opened handle is read-only and may be used by any number of threads at
 * once. Its error message is the first corruption found; once set it no
 * longer changes, so the pointer from cairn_index_error stays valid. */

struct cairn_index;

/* Returns a new, unbound handle, or NULL when out of memory. */
struct cairn_index *cairn_index_new(void);
/* Unmaps and frees. Accepts NULL. */
void cairn_index_free(struct cairn_index *idx);
/* For _cleanup_(cairn_index_freep): frees *p (which may be NULL). */
static inline void cairn_index_freep(struct cairn_index **p)
{
	cairn_index_free(*p);
}
/* The message of the failure; "" if none. After a call on idx returned
 * -EBADMSG (in any thread) the message is set and never changes again. */
const char *cairn_index_error(const struct cairn_index *idx);

/* Maps and checks STORE/snapshots/name. The store must outlive idx. Returns
 * 0, -ENOENT (no such snapshot), -EBADMSG (damaged), -EOPNOTSUPP (newer
 * format), or another -errno; message on idx. */
int cairn_index_open(struct cairn_index *idx, const struct cairn_store *store, const char *name);
/* cairn_index_open checks every section's checksum before it returns, so
 * nothing is served from a byte changed after the commit; a damaged section
 * is -EBADMSG naming it. This flag leaves the sections unchecked, for
 * `cairn verify`, which reports each damaged section itself with
 * cairn_index_check, and for the open-time benchmark: nothing may be served
 * from such a handle. */
#define CAIRN_INDEX_OPEN_UNCHECKED 2u
int cairn_index_open_flags(struct cairn_index *idx, const struct cairn_store *store,
			   const char *name, unsigned flags);
/* The name idx was opened with; owned by idx. */
const char *cairn_index_name(const struct cairn_index *idx);

struct cairn_index_info {
	uint64_t inode_count;
	uint64_t dirent_count;
	uint64_t entry_count; /* archive entries read */
	uint64_t skipped;     /* archive entries skipped with a warning */
	bool partial;         /* the archive was damaged: only the entries read
				 before the damage (cairn_import_options.partial) */
	uint64_t file_count;  /* regular files (hard links counted once) */
	uint64_t file_bytes;  /* their total size */
	int64_t created_sec;
	uint64_t file_size; /* of the snapshot file */
	/* the source archive; the strings are owned by idx */
	const char *source_name;
	const char *source_format;
	uint64_t source_size;
	int64_t source_mtime_sec;
	uint32_t source_mtime_nsec;
	struct cairn_id source_id;
	/* The archive had an entry for the root ("./"): the root's mode,
	 * owner, xattrs and mtime are that entry's (else an implied
	 * directory's: 0755, the archive's mtime). */
	bool root_listed;
};
void cairn_index_info(const struct cairn_index *idx, struct cairn_index_info *ret);
/* Asks the kernel to read the sections a tree walk touches (inodes, entries,
 * names, xattrs) into the page cache in the background, and returns at
 * once: a cold walk then finds them there instead of faulting page by page.
 * Only for an index opened from a file; a hint, so it cannot fail. */
void cairn_index_prefetch(const struct cairn_index *idx);

struct cairn_index_stat {
	uint64_t ino;
	uint32_t mode; /* file type and permissions, as st_mode */
	uint32_t nlink;
	uint32_t uid;
	uint32_t gid;
	uint64_t size;
	uint64_t rdev; /* makedev(major, minor) for devices */
	int64_t mtime_sec;
	uint32_t mtime_nsec;
	const char *user;  /* owned by idx; NULL when the archive had none */
	const char *group; /* owned by idx; NULL when the archive had none */
};
/* Attributes of ino. Returns 0, -ENOENT (no such inode), -EBADMSG. */
int cairn_index_getattr(struct cairn_index *idx, uint64_t ino, struct cairn_index_stat *ret);

/* The inode named name (len bytes, no NUL needed) in directory dir: a
 * binary search. Returns 0, -ENOENT, -ENOTDIR, -EBADMSG. */
int cairn_index_lookup(struct cairn_index *idx, uint64_t dir, const char *name, size_t len,
		       uint64_t *ret_ino);

/* Earlier versions of entries (an archive that held NAME more than once):
 * with show, each directory also lists, after its own entries, NAME.versions
 * for each such NAME, a directory holding the earlier ones as 1..N-1 in
 * archive order, and lookup finds them (a real entry of that name wins).
 * Set it before the handle is shared. */
void cairn_index_show_versions(struct cairn_index *idx, bool show);
struct cairn_index_dirent {
	uint64_t ino;
	const char *name; /* NUL-terminated, owned by idx */
	size_t name_len;
	unsigned type; /* DT_* */
};
/* The entry at position pos (0-based, in name order) of directory dir.
 * Positions are stable: a readdir offset. Returns 1 and the entry, 0 past
 * the last entry, -ENOTDIR, -ENOENT, -EBADMSG. */
int cairn_index_readdir(struct cairn_index *idx, uint64_t dir, uint64_t pos,
			struct cairn_index_dirent *ret);

/* The target of symlink ino: NUL-terminated, owned by idx. Returns 0,
 * -EINVAL (not a symlink), -ENOENT, -EBADMSG. */
int cairn_index_readlink(struct cairn_index *idx, uint64_t ino, const char **ret_target,
			 size_t *ret_len);

struct cairn_index_xattr {
	const char *name; /* NUL-terminated, owned by idx */
	size_t name_len;
	const void *value; /* owned by idx */
	size_t value_size;
};
/* The xattr at position pos (sorted by name) of ino. Returns 1 and the
 * xattr, 0 past the last one, -ENOENT, -EBADMSG. */
int cairn_index_xattr(struct cairn_index *idx, uint64_t ino, size_t pos,
		      struct cairn_index_xattr *ret);
/* The xattr named name of ino. Returns 0, -ENODATA, -ENOENT, -EBADMSG. */
int cairn_index_getxattr(struct cairn_index *idx, uint64_t ino, const char *name,
			 struct cairn_index_xattr *ret);

/* Resolves a path inside the snapshot ("", "/" and "." are the root;
 * "a/b/../c" is walked component by component). With follow, symlinks are
 * followed (the last component too), absolute targets from the snapshot's
 * root, at most 40 of them; without, only ".." and intermediate symlinks
 * are. Returns 0, -ENOENT, -ENOTDIR, -ELOOP, -EBADMSG. */
int cairn_index_resolve(struct cairn_index *idx, const char *path, bool follow, uint64_t *ret_ino);

/* ---- file contents ----
 *
 * A regular file's content is a list of runs, each a chunk or a hole
 * (zeros), with cumulative end offsets: cairn_index_find_run is a binary
 * search. To read the bytes, use a content reader (content.h). */

struct cairn_index_file {
	struct cairn_id file_id; /* see docs/FORMAT.md for files with holes */
	uint64_t size;
	uint32_t run_count;
	bool sparse; /* some runs are holes */
};
/* Returns 0, -EISDIR/-EINVAL (not a regular file), -ENOENT, -EBADMSG. */
int cairn_index_file(struct cairn_index *idx, uint64_t ino, struct cairn_index_file *ret);

struct cairn_index_run {
	struct cairn_id chunk_id; /* all zero for a hole */
	uint64_t offset;          /* where the run starts in the file */
	uint64_t size;            /* bytes */
	bool hole;
};
/* Run number i of regular file ino. Returns 0, -ERANGE (no such run),
 * -EBADMSG, or what cairn_index_file returns. */
int cairn_index_run(struct cairn_index *idx, uint64_t ino, uint32_t i, struct cairn_index_run *ret);
/* The number of the run that holds byte offset of ino. Returns 0 and the
 * run's number, -ERANGE (offset >= size), -EBADMSG, ... */
int cairn_index_find_run(struct cairn_index *idx, uint64_t ino, uint64_t offset, uint32_t *ret_run);

/* ---- full verification ---- */

typedef void (*cairn_index_report_fn)(void *userdata, const char *problem);
/* Checks every section's checksum, every record and reference, the order
 * and uniqueness of every directory's names, the tree shape and link
 * counts, and (with check_chunks) that the store holds every chunk the
 * snapshot names. O(size). Returns the number of problems reported (0: the
 * snapshot is sound) or -errno when it could not run. */
int64_t cairn_index_check(struct cairn_index *idx, bool check_chunks, cairn_index_report_fn report,
			  void *userdata);

/* ---- sets of chunk ids (live.c) ----
 *
 * What gc keeps (the chunks every snapshot names), what `info` counts (the
 * chunks one snapshot alone names) and what `verify` reads once each. A set
 * is a hash table of 16-byte ids: its memory is about 16 to 43 bytes a
 * distinct chunk, whatever the number of files naming them. One thread at a
 * time; contains and next may run concurrently with each other. */

struct cairn_chunk_set;

/* Returns 0 and a new, empty set in *ret, or -ENOMEM. */
int cairn_chunk_set_new(struct cairn_chunk_set **ret);
/* Accepts NULL. */
void cairn_chunk_set_free(struct cairn_chunk_set *set);
/* For _cleanup_(cairn_chunk_set_freep): frees *p (which may be NULL). */
static inline void cairn_chunk_set_freep(struct cairn_chunk_set **p)
{
	cairn_chunk_set_free(*p);
}
/* Adds id. Returns 1 when it was not in the set, 0 when it was, or
 * -ENOMEM (the set is unchanged). */
int cairn_chunk_set_add(struct cairn_chunk_set *set, const struct cairn_id *id);
bool cairn_chunk_set_contains(const struct cairn_chunk_set *set, const struct cairn_id *id);
/* The number of distinct ids in the set. */
uint64_t cairn_chunk_set_count(const struct cairn_chunk_set *set);
/* Iterates the set in no particular order: start with *pos = 0; returns 1
 * and the next id (advancing *pos), or 0 after the last. The set must not
 * change during an iteration. */
int cairn_chunk_set_next(const struct cairn_chunk_set *set, size_t *pos, struct cairn_id *ret);

/* Adds every chunk id the opened snapshot idx names (holes are none).
 * First checks every section of idx against its checksum, so a damaged
 * snapshot is refused whole instead of giving a short list: a chunk that
 * looks unused must never be one a snapshot still needs. O(size of idx).
 * Returns 0, -EBADMSG (damaged; message on idx) or -ENOMEM; on failure the
 * set may hold some of the snapshot's ids. */
int cairn_chunk_set_add_snapshot(struct cairn_chunk_set *set, struct cairn_index *idx);

/* The set of chunk ids named by the store's snapshots, except the one named
 * except (NULL: all of them). Lists STORE/snapshots once; to keep the list
 * stable, hold the store's writer (as gc must). Returns 0 and a new set, or
 * -errno with a one-line reason (naming the snapshot) in msg: -EBADMSG for
 * a damaged snapshot, -ENOMEM, or what listing or opening returned. */
int cairn_snapshot_chunk_set(const struct cairn_store *store, const char *except,
			     struct cairn_chunk_set **ret, char *msg, size_t msg_size);

/* ---- adding an archive ----
 *
 * An import reads one archive in one streaming pass with libarchive, sends
 * every file's content to the store writer and builds the tree in memory;
 * cairn_import_commit then commits the writer (so every chunk the snapshot
 * names is durable) and renames the snapshot into place. Nothing is visible
 * before that; after a failed import the caller frees the writer, which
 * abandons its uncommitted chunks. One thread. */

struct cairn_import;

struct cairn_import_options {
	uint64_t max_entries; /* 0: CAIRN_IMPORT_MAX_ENTRIES */
	/* Decompression bombs: the import fails once the bytes unpacked (file
	 * data, or the output of the archive's filters) exceed max_ratio times
	 * the raw bytes read so far plus ratio_slack, which lets small archives
	 * of zeros through. max_ratio 0: CAIRN_IMPORT_MAX_RATIO;
	 * CAIRN_IMPORT_NO_RATIO: no bound. ratio_slack 0: CAIRN_IMPORT_RATIO_SLACK. */
	uint64_t max_ratio;
	uint64_t ratio_slack;
	/* Damage found after the archive opened (a checksum that does not
	 * match, a damaged header) fails the import; with partial, the entries
	 * read before it make a snapshot marked partial instead, and the
	 * damage is a warning. */
	bool partial;
	/* Leading path components dropped from each entry's path and hard
	 * link target, as tar --strip-components N; an entry left with
	 * nothing is skipped (silently, as tar does). Symlink targets are kept
	 * as written. */
	unsigned strip_components;
	/* The charset of names that the archive does not mark as UTF-8
	 * (libarchive's hdrcharset: "CP932", "CP437"), converted to the
	 * locale's (UTF-8 in a UTF-8 locale); NULL: as libarchive reads them.
	 * Borrowed until cairn_import_archive returns. */
	const char *charset;
	/* Passphrases for encrypted entries (what libarchive decrypts: zip), tried in order;
	 * borrowed until cairn_import_archive returns. */
	const char *const *passphrases;
	size_t passphrase_count;
	/* Archives inside the archive (a tar in a tar, a .deb's data.tar.xz,
	 * a jar in a war) become directories, down to this many levels; 0:
	 * none. See import_nested.c and docs/FORMAT.md. */
	unsigned recursion_depth;
};
/* What `cairn add -r` asks for. */
#define CAIRN_IMPORT_RECURSION_DEPTH 4u

#define CAIRN_IMPORT_MAX_ENTRIES (16u << 20)
#define CAIRN_IMPORT_MAX_RATIO   1000u
#define CAIRN_IMPORT_NO_RATIO    UINT64_MAX
#define CAIRN_IMPORT_RATIO_SLACK (64ull << 20)
#define CAIRN_XATTR_VALUE_MAX    65536u
#define CAIRN_XATTR_LIST_MAX     (1u << 20)
#define CAIRN_SYMLINK_MAX        4095u

struct cairn_import_progress {
	uint64_t archive_bytes; /* raw bytes read so far */
	uint64_t archive_size;  /* 0 when unknown */
	uint64_t entries;
	uint64_t content_bytes; /* file content sent to the store */
	uint64_t new_bytes;     /* of that, not already stored */
	uint64_t stored_bytes;  /* compressed size of the new bytes */
};
typedef void (*cairn_import_progress_fn)(void *userdata, const struct cairn_import_progress *p);
/* A warning about one entry (skipped, or not fully representable), naming
 * the archive and the entry. */
typedef void (*cairn_import_warn_fn)(void *userdata, const char *warning);

/* Starts an import that sends content to writer (borrowed, open on store).
 * options may be NULL. Returns 0 or -ENOMEM. */
int cairn_import_new(struct cairn_store *store, struct cairn_writer *writer,
		     const struct cairn_import_options *options, struct cairn_import **ret);
void cairn_import_free(struct cairn_import *imp);
/* For _cleanup_(cairn_import_freep): frees *p (which may be NULL). */
static inline void cairn_import_freep(struct cairn_import **p)
{
	cairn_import_free(*p);
}
const char *cairn_import_error(const struct cairn_import *imp);
void cairn_import_set_progress(struct cairn_import *imp, cairn_import_progress_fn fn,
			       void *userdata);
void cairn_import_set_warn(struct cairn_import *imp, cairn_import_warn_fn fn, void *userdata);
/* Asks for a passphrase when an encrypted entry is met that none of the
 * options' passphrases opens: archive names the archive, entry the entry
 * (NULL: the archive's headers). Returns the passphrase (borrowed until the
 * import is freed), or NULL to give up, which fails the import. Asked once
 * per import at most; called on the importing thread. */
typedef const char *(*cairn_import_passphrase_fn)(void *userdata, const char *archive,
						  const char *entry);
void cairn_import_set_passphrase(struct cairn_import *imp, cairn_import_passphrase_fn fn,
				 void *userdata);
/* After a failed cairn_import_archive: whether an encrypted entry's data
 * failed to decode, which is what a wrong passphrase that passed the
 * format's check does (zip's traditional encryption checks one byte, so 1
 * wrong passphrase in 256 passes it, and libarchive keeps the first that
 * passes). With several passphrases, an import with the others first may
 * succeed. */
bool cairn_import_encrypted_data_failed(const struct cairn_import *imp);

/* Reads the archive from fd (not closed; a regular file is read from its
 * start and may be seeked, anything else is read as a stream). label names
 * the archive in messages and, by its last component, in the source
 * record. Returns 0, or -errno with the message on imp (-EBADMSG: the
 * archive is malformed, damaged (a CRC or size libarchive only warns about
 * included) or unsupported, or the input is not an archive; -E2BIG: a
 * limit was exceeded, the ratio bound of a decompression bomb included).
 * Call once per import. */
int cairn_import_archive(struct cairn_import *imp, int fd, const char *label);
/* A split archive (archive.tar.001, .002, ...): the fds (borrowed, regular
 * files, the first one the fd given to cairn_import_archive) are read as
 * one file, byte after byte. Call before cairn_import_archive. Returns 0,
 * -ENOMEM, or -EINVAL (not a regular file; message on imp). */
int cairn_import_set_parts(struct cairn_import *imp, const int *fds, size_t count);

/* Multi-volume RAR 4 archives (rar_volumes.c). Whether fd (a regular file)
 * starts with a RAR 4 archive header that marks a volume: 1, else 0. */
int cairn_rar_is_volume(int fd);
/* Walks the blocks of the RAR 4 volumes fds (in order; borrowed, regular
 * files) for what libarchive does not check: the CRCs of the parts of split
 * files and of stored files, files that do not continue in the next volume,
 * a last volume that announces a next one. Returns 0; -EBADMSG with msg
 * ("ENTRY: why", or "why" alone) and *ret_volume the index of the volume at
 * fault; -ENOENT when the last volume announces a next one (msg: the file
 * that continues there, or ""); or another -errno of a read. */
int cairn_rar_volumes_check(const int *fds, size_t count, size_t *ret_volume, char *msg,
			    size_t msg_size);

/* The id of the archive's raw bytes, after cairn_import_archive. */
void cairn_import_source_id(const struct cairn_import *imp, struct cairn_id *ret);

#define CAIRN_IMPORT_REPLACE 1u /* replace an existing snapshot of that name */
/* Commits the writer, writes STORE/snapshots/name through a fsynced temp
 * file and renames it into place. Without CAIRN_IMPORT_REPLACE an existing
 * name is -EEXIST. The caller holds the writer, so no other add races it.
 * Returns 0 or -errno (message on imp). */
int cairn_import_commit(struct cairn_import *imp, const char *name, unsigned flags);

struct cairn_import_stats {
	uint64_t entries;      /* archive entries read */
	uint64_t skipped;      /* entries skipped with a warning */
	uint64_t archive_size; /* raw bytes read */
	uint64_t content_bytes;
	uint64_t new_bytes;
	uint64_t stored_bytes;
	uint64_t snapshot_size; /* bytes of the snapshot file (after commit) */
	/* the snapshot's entries, as cairn_index_info's dirent_count (after
	 * commit): names in the tree, the parents that paths only imply
	 * included, a name that a later entry replaced counted once */
	uint64_t snapshot_entries;
	bool partial; /* damaged: only the entries before the damage */
};
void cairn_import_stats(const struct cairn_import *imp, struct cairn_import_stats *ret);

/* Computes the id the import would record for the archive in fd (a regular
 * file), reading it once without decompressing. Returns 0 or -errno. */
int cairn_archive_id(const struct cairn_store *store, int fd, struct cairn_id *ret);
/* The same for a split archive's parts, read one after the other. */
int cairn_archive_id_parts(const struct cairn_store *store, const int *fds, size_t count,
			   struct cairn_id *ret);

/* ---- copying snapshots between stores (copy.c) ----
 *
 * A copy sends a snapshot's chunks that the destination lacks and then
 * the snapshot itself, rewritten under the destination's hash key when the
 * keys differ (chunk ids, file ids, checksums; the rest byte for byte).
 * Every chunk read from the source is checked against its id; the
 * destination's writer confirms a chunk it already holds by its bytes.
 * With the same key, a chunk id the destination's table holds is taken as
 * that chunk and not read. */

struct cairn_copy;

struct cairn_copy_stats {
	uint64_t chunks;         /* distinct chunks the snapshot names */
	uint64_t chunks_sent;    /* of those, stored in the destination by this copy */
	uint64_t chunks_present; /* of those, there already */
	uint64_t bytes;          /* uncompressed bytes of the distinct chunks */
	uint64_t bytes_sent;     /* of those, sent */
	uint64_t stored_bytes;   /* payload bytes the sent chunks took in packs */
	uint64_t snapshot_size;  /* bytes of the snapshot file */
	bool rekeyed;            /* the stores' keys differ: ids were made again */
};

/* A copier from src into dst through writer (open on dst, borrowed; all
 * three must outlive the copier). Returns 0 and the handle in *ret, or
 * -ENOMEM. Not thread-safe: one thread uses it, as the writer. */
int cairn_copy_new(struct cairn_store *src, struct cairn_store *dst, struct cairn_writer *writer,
		   struct cairn_copy **ret);
/* Accepts NULL. */
void cairn_copy_free(struct cairn_copy *copy);
static inline void cairn_copy_freep(struct cairn_copy **p)
{
	cairn_copy_free(*p);
}
/* The last failure's one-line message: the store, the snapshot, and for a
 * chunk the file and the chunk's id. Valid until the next call. */
const char *cairn_copy_error(const struct cairn_copy *copy);

#define CAIRN_COPY_REPLACE 1u /* replace dst's snapshot of that name */
/* Copies src's snapshot name into dst as new_name: its chunks that dst
 * lacks, committed by the writer, then the snapshot (temp file, fsync,
 * rename), so it never names an uncommitted chunk. Returns 0 (copied, and
 * *ret, which may be NULL, says what was done), 1 (dst has new_name from
 * the same archive bytes already: nothing done), -EEXIST (dst has another
 * new_name and flags lack CAIRN_COPY_REPLACE), -EFBIG (a chunk is larger
 * than dst's chunk_max), -EBADMSG (a damaged chunk or snapshot in src), or
 * another -errno; on failure the writer is rolled back, nothing of the
 * snapshot is left in dst, and the message is on copy. */
int cairn_copy_snapshot(struct cairn_copy *copy, const char *name, const char *new_name,
			unsigned flags, struct cairn_copy_stats *ret);

/* Reading file contents: the content reader and its chunk sources. */
#include "content.h"

#endif
