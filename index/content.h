/* content.h: the one reader of file contents (included by index.h). A
 * content reader walks a regular file's chunk list (its runs: chunks and
 * holes, see "file contents" in index.h) and gets each chunk's bytes from a
 * chunk source. `cairn cat`, `cairn extract`, the mount's fallback read and
 * its blob maker all read through it, so the run arithmetic (locating an
 * offset, holes as zeros, clamping at the end, checking a chunk's size
 * against its run) exists once: invariant 5, the same bytes every way.
 *
 * The chunk source is pluggable. The default one decompresses chunks with
 * an unpacker of the store into a one-chunk buffer; the mount plugs in its
 * shared cache of decompressed chunks; later sources (object storage, delta
 * chunks) plug in here too.
 *
 * Conventions as in index.h: 0 (or a documented non-negative value) on
 * success, -errno on failure; corrupt or missing data is -EBADMSG; the
 * message of a failure is kept on the reader; out-parameters are written
 * only on success.
 */
#ifndef CAIRN_CONTENT_H
#define CAIRN_CONTENT_H

#include <stddef.h>
#include <stdint.h>

#include "index.h" /* which includes this at its end */
#include "store.h"

/* ---- chunk sources ----
 *
 * A source hands out a chunk's bytes by id as a reference that the caller
 * gives back with release: a source with a cache of decompressed chunks
 * lends its cached bytes without copying them. */

/* A chunk lent by a source. */
struct cairn_chunk {
	const uint8_t *data; /* size bytes, valid until released */
	uint64_t size;
	void *ref; /* the source's own handle on the bytes (a cache entry, ...) */
};

struct cairn_chunk_source_ops {
	/* Lends the bytes of chunk id. size is the chunk's size as the file's
	 * run records it: a hint for the buffer (the reader itself checks the
	 * size the source returns against it). The bytes must be checked
	 * against id (a store's unpacker does) or come from where they were
	 * checked. Returns 0 and the chunk in *ret, or -errno with a one-line
	 * reason written to msg (msg_size bytes, NUL-terminated): -ENOENT (no
	 * such chunk) and -EBADMSG (damaged) are reported to the reader's
	 * caller as -EBADMSG; -ENOMEM, -EIO etc. as they are. */
	int (*get)(void *userdata, const struct cairn_id *id, uint64_t size,
		   struct cairn_chunk *ret, char *msg, size_t msg_size);
	/* Gives back a chunk that get lent. NULL when there is nothing to give
	 * back (the bytes stay valid until the next get). */
	void (*release)(void *userdata, const struct cairn_chunk *chunk);
};

/* The source may be used by several readers in several threads at once.
 * Without this flag a source belongs to one reader (and its thread). */
#define CAIRN_CHUNK_SOURCE_SHARED 1u

/* A chunk source: the ops (usually a static const table) and their
 * userdata. A reader copies this struct; ops and userdata are borrowed and
 * must outlive every reader that uses them. */
struct cairn_chunk_source {
	const struct cairn_chunk_source_ops *ops;
	void *userdata;
	unsigned flags; /* CAIRN_CHUNK_SOURCE_* */
};

/* ---- the content reader ----
 *
 * A reader is bound to one file at a time (cairn_content_open) and can be
 * rebound to any file of any snapshot opened on its store: one reader per
 * thread serves every file that thread reads. It holds at most one lent
 * chunk at a time and gives it back before it asks for the next, so a
 * source with a one-chunk buffer (the default) works, and a sequence of
 * small reads within one chunk gets it from the source each time (the
 * default source then decodes it once).
 *
 * A reader is used by one thread at a time. Everything it returns by
 * pointer (run bytes, the error message) stays valid until its next call,
 * except cairn_content_error, which does not change anything. */

struct cairn_content_reader;

/* Returns 0 and a new, unbound reader in *ret, -ENOMEM, or -EINVAL (source
 * without get). store is borrowed and must outlive the reader; its chunk
 * ids name the chunks (every snapshot the reader opens must be on store)
 * and it verifies chunks for cairn_content_copy_to_fd and
 * cairn_content_check_fd. source is copied; NULL: the default source, an
 * unpacker of store with a buffer of the store's chunk_max, owned by the
 * reader (it remembers the last chunk it decoded, so it decodes each chunk
 * of a sequential read once). */
int cairn_content_reader_new(struct cairn_store *store, const struct cairn_chunk_source *source,
			     struct cairn_content_reader **ret);
/* Gives back a lent chunk and frees the reader (and its default source).
 * Accepts NULL. */
void cairn_content_reader_free(struct cairn_content_reader *reader);
/* For _cleanup_(cairn_content_reader_freep): frees *p (which may be NULL). */
static inline void cairn_content_reader_freep(struct cairn_content_reader **p)
{
	cairn_content_reader_free(*p);
}
/* The message of the reader's last failure, "" if none: the offset in the
 * bound file and what went wrong (the chunk, its pack and offset), or the
 * index's message (which names the snapshot). The file is the caller's to
 * name: it knows the path ("SNAPSHOT:PATH: offset N: ..."). Owned by the
 * reader; valid until its next call that fails. */
const char *cairn_content_error(const struct cairn_content_reader *reader);

/* Binds the reader to regular file ino of idx (borrowed: it must stay open
 * while the reader is bound to it, that is until the next open or the
 * free), positioned at its first run, and gives back a lent chunk. With
 * ret_file not NULL, writes the file's description there. Returns 0,
 * -EISDIR or -EINVAL (not a regular file), -ENOENT, -EBADMSG (message on
 * the reader), or -EXDEV when idx was opened on another store (or none).
 * On failure the reader is unbound. */
int cairn_content_open(struct cairn_content_reader *reader, struct cairn_index *idx, uint64_t ino,
		       struct cairn_index_file *ret_file);

/* ---- walking the runs ---- */

struct cairn_content_run {
	struct cairn_index_run run; /* where it lies in the file, its chunk id */
	uint32_t number;            /* the run's number in the chunk list */
	/* run.size bytes of the chunk, or NULL for a hole (zeros). Lent: valid
	 * until the reader's next call. */
	const uint8_t *data;
};

/* Positions the bound reader at the run that holds byte offset (a binary
 * search, cairn_index_find_run), or at the end when offset >= the file's
 * size. Returns 0, -EBADMSG, or -EINVAL (not bound). */
int cairn_content_seek(struct cairn_content_reader *reader, uint64_t offset);
/* The run at the reader's position with its bytes (got from the source and
 * checked against the run's size), and moves the position on by one.
 * Returns 1 and the run, 0 at the end of the file, -EBADMSG (the index or
 * the chunk is damaged or missing, or the chunk's size disagrees with the
 * run), -EINVAL (not bound), or what the source returned. */
int cairn_content_next(struct cairn_content_reader *reader, struct cairn_content_run *ret);

/* Copies up to len bytes of the bound file from offset into buf, holes as
 * zeros. Returns the count (short only at the end of the file: 0 at or
 * past it) or -errno as cairn_content_next. Holds no lent chunk when it
 * returns. Afterwards the reader is positioned after the run that held
 * the last byte copied, for cairn_content_peek. */
int64_t cairn_content_read(struct cairn_content_reader *reader, uint64_t offset, void *buf,
			   size_t len);

/* The run ahead places after the last one the reader served (by
 * cairn_content_next or cairn_content_read): ahead 1 is the one it would
 * serve next. Reads only the index, no chunk: a caller fetching ahead for
 * a sequential reader (the mount, the next two runs) learns their chunk
 * ids and holes. Returns 0 and the run, -ERANGE when there is no such run
 * (past the end, ahead 0, or none served since the last open or seek),
 * -EBADMSG, -EINVAL. */
int cairn_content_peek(struct cairn_content_reader *reader, uint32_t ahead,
		       struct cairn_index_run *ret);

/* ---- whole files ---- */

/* Before the whole bound file is read: on a remote store, fetches the pack
 * bytes of its chunks that the host lacks, in few parallel range GETs
 * (cairn_store_prefetch); a no-op on a local store. Best effort: whatever
 * it could not fetch is fetched on demand by the read, which reports what
 * fails. Returns 0, -EINVAL (not bound), or -errno with the message on the
 * reader. cairn_content_copy_to_fd calls it. */
int cairn_content_prefetch(struct cairn_content_reader *reader);

/* Writes the whole bound file to fd at its current offset (a blob: the
 * mount's passthrough copy), every chunk checked against its id with
 * cairn_store_chunk_verify as it is written, whatever the source. Returns
 * 0, -EOPNOTSUPP for a file with holes (sparse files are never copied
 * whole), -EBADMSG (a chunk does not match its id, or is missing), or
 * -errno (of the source, or of writing). fd may have been written in part
 * on failure. progress, unless NULL, is called with userdata and the bytes
 * written so far after each run is written (checked before it was). */
typedef void (*cairn_progress_fn)(void *userdata, uint64_t done);
int cairn_content_copy_to_fd(struct cairn_content_reader *reader, int fd,
			     cairn_progress_fn progress, void *userdata);
/* Checks that fd's bytes [0, size) are the bound file's (a blob found in
 * the mount's cache; its size is the caller's to check): reads fd in
 * windows of many runs (pread; its offset is unchanged) and checks each
 * run's bytes against its chunk id with cairn_store_chunk_verify. Uses no
 * chunk source. Returns 0, -EBADMSG when they differ (or the file has
 * holes, or fd is shorter), or -errno (-ENOMEM, of reading). */
int cairn_content_check_fd(struct cairn_content_reader *reader, int fd);

#endif
