/* import_internal.h: what the files of an import share: import.c (the
 * archive stream and the entry loop), import_decode.c (a compressed stream
 * decoded on its own thread), import_messages.c (failures, warnings,
 * progress), entry.c (one entry into the tree: metadata, xattrs, content)
 * and commit.c. Together they are the only files of cairn that use
 * libarchive.
 */
#ifndef CAIRN_BUILDING_INDEX
#error "import_internal.h is internal to index/; use index.h"
#endif
#ifndef CAIRN_IMPORT_INTERNAL_H
#define CAIRN_IMPORT_INTERNAL_H

#include "index_internal.h"

#include <archive.h>
#include <archive_entry.h>

#define IMPORT_READ_SIZE (1u << 20)
/* libarchive is handed the input in slices of this size: each is a point
 * where the ratio bound is checked (import_check_ratio). */
#define IMPORT_FEED_SIZE (64u << 10)

/* import_rar.c: the walk of a RAR 4 stream's blocks as they pass. */
enum import_rar_phase { WALK_MARKER, WALK_HEADER, WALK_DATA, WALK_OFF };

struct import_rar {
	enum import_rar_phase phase;
	uint8_t head[320];  /* a block header's first bytes: a file's name (cut) */
	size_t have;        /* bytes of the marker or block header seen */
	size_t head_size;   /* the block header's HEAD_SIZE; 0: not seen yet */
	uint64_t data_left; /* of the block's data */
	bool check;         /* the data are a whole stored file's: CRC them */
	uint32_t crc, want;
	char name[256];
	uint64_t files;   /* file headers seen (a file's first part only) */
	uint64_t entries; /* RAR entries libarchive handed out */
	uint64_t bad;     /* the first damaged file (from 1, as files); 0: none */
	char bad_name[256];
};

struct cairn_import {
	struct cairn_store *store;
	struct cairn_writer *writer;
	uint64_t max_entries;
	uint64_t max_ratio, ratio_slack; /* see cairn_import_options */
	bool keep_partial;               /* cairn_import_options.partial */
	cairn_import_progress_fn progress_fn;
	void *progress_data;
	cairn_import_warn_fn warn_fn;
	void *warn_data;

	/* the input: raw bytes hashed while libarchive reads them */
	int fd;
	bool seekable;
	uint64_t in_pos;           /* offset of the next byte libarchive gets */
	uint64_t hashed;           /* bytes [0, hashed) went into source_hasher */
	_Atomic uint64_t raw_read; /* furthest offset handed out: progress, ratio
				      (written by the decoding thread, if any) */
	uint64_t input_size;       /* 0 when unknown */
	uint64_t unpacked;         /* file data bytes libarchive handed out */
	uint8_t *in_buf;
	size_t in_off, in_len;     /* in_buf holds [in_off, in_len) not yet handed out */
	int read_errno;            /* why the read callback failed */
	bool stopped;              /* the read callback failed the import; imp->error says why */
	bool read_failed;          /* a read callback returned -1 (libarchive may
				      swallow it while it chooses the format) */
	bool at_end;               /* the last read callback returned 0: the input ended */
	struct decode_pipe *pipe;  /* a compressed stream decoded on its own thread */
	struct prefetch *prefetch; /* a plain file read ahead on its own thread */
	const uint8_t *in_cur;     /* the block being handed out: in_buf or a prefetched one */
	struct cairn_file_hasher source_hasher;
	struct snap_source source;
	char *label;
	const char *source_name; /* points into label */

	struct tree tree;
	struct path_parts parts, link_parts;
	struct buf runs; /* snap_chunk_list + snap_runs of the file being read */
	/* files whose chunk lists the writer hands back later (import_content.c) */
	struct buf done_runs; /* the chunk list of a file handed back */
	uint32_t *pending;    /* their inodes, in order; UINT32_MAX until bound */
	size_t pending_head, pending_len, pending_cap;
	uint64_t pending_base; /* the cookie of pending[0] */
	bool content_unbound;  /* the last entry's content is pending, its inode not placed */
	bool content_failed;   /* a handed-back file failed the import; imp->error says why */
	struct cairn_writer_stats base_stats;
	uint64_t entries, skipped;
	const char *entry_path; /* of the entry being read, for messages */
	char last_entry[256];   /* the last entry's path (cut), whose data
				   libarchive skips when it reads the next header */
	bool started, imported, committed;
	bool partial; /* damaged: holds the entries read before the damage */

	/* archives inside this one (import_nested.c) */
	unsigned nest_depth;        /* levels still expanded below this archive */
	unsigned nest_max;          /* the depth asked for at the top; 0: not asked */
	struct cairn_import *outer; /* the import this one is nested in, or NULL */
	uint64_t nested_unpacked;   /* what finished nested imports unpacked */
	int spool_fd;               /* the entry being read, if it may be an archive */
	uint64_t snapshot_size;
	uint64_t snapshot_entries; /* the written snapshot's dirents */
	char error[1024];

	/* import_input.c: how the input is read (options, borrowed) */
	unsigned strip_components;
	const char *charset;
	const char *const *passphrases;
	size_t passphrase_count;
	cairn_import_passphrase_fn passphrase_fn;
	void *passphrase_data;
	bool passphrase_asked;
	bool encrypted_data_failed;      /* an encrypted entry's data did not decode */
	struct import_part *split_parts; /* a split archive's parts; NULL: just fd */
	size_t part_count;
	uint64_t part_pos; /* the read position across the parts */

	struct import_rar rar; /* import_rar.c */
};

/* Records "LABEL: PATH: message" (or "LABEL: message" between entries) and
 * returns r. */
int import_fail(struct cairn_import *imp, int r, const char *fmt, ...) _printf_(3, 4);
/* Records "LABEL: after N entries (the last: PATH): what" for damage found
 * between entries, and returns r. */
int import_fail_between(struct cairn_import *imp, int r, const char *what);
/* Sends "LABEL: PATH: message" to the warning callback. */
void import_warn(struct cairn_import *imp, const char *fmt, ...) _printf_(2, 3);
/* Adds one archive entry to the tree, reading its data. Returns 0 or -errno
 * (message on imp). */
int import_entry(struct cairn_import *imp, struct archive *a, struct archive_entry *entry);

/* ---- a plain file read ahead (import_prefetch.c) ---- */

/* Starts reading the input ahead from imp->in_pos. Returns 0 or -errno. */
int import_prefetch_start(struct cairn_import *imp);
/* The block read at offset (*ret valid until the next call): its size, 0 at
 * the end, or -errno. */
ssize_t import_prefetch_read(struct cairn_import *imp, uint64_t offset, const uint8_t **ret);
/* Stops the thread; what libarchive holds is copied to in_buf. */
void import_prefetch_stop(struct cairn_import *imp);

/* ---- contents handed back later (import_content.c) ---- */

/* Ends the file being written without waiting for its chunks: the writer's
 * threads cut and store it while the archive reads on. */
int import_content_defer(struct cairn_import *imp);
/* Names the inode the deferred content belongs to. */
void import_content_bind(struct cairn_import *imp, uint32_t ino);
/* Waits for every deferred content and fills in its inode. */
int import_content_flush(struct cairn_import *imp);
/* The file id over a chunk list (snap_chunk_list + runs) and the list stored
 * once per distinct content in the tree; used for every file. */
void import_file_id_of_runs(struct cairn_import *imp, const struct buf *runs, struct cairn_id *ret);
int import_content_intern(struct cairn_import *imp, const struct buf *runs, uint64_t *ret);
/* Starts handing chunk lists back to imp (cairn_writer_set_file_fn). */
void import_content_start(struct cairn_import *imp);
/* Fails the import (-E2BIG) when the archive unpacks to more than the
 * ratio bound allows (cairn_import_options); a decompression bomb. */
int import_check_ratio(struct cairn_import *imp, struct archive *a);
/* Reports progress now. */
void import_progress(struct cairn_import *imp);
/* libarchive's reason for a's last failure: its message, else its errno's
 * text, else fallback (a reader may fail without a message). */
const char *import_la_error(struct archive *a, const char *fallback);
/* import_la_error for the archive's handle, falling back on what the input
 * says ("truncated archive" when the last read found its end). Never NULL. */
const char *import_reason(const struct cairn_import *imp, struct archive *a);
/* Whether a header's warning (libarchive's message) says the archive's
 * bytes are wrong: a CRC, checksum or size that does not match, a
 * truncation. */
bool import_warning_is_damage(const char *msg);

/* ---- import_input.c: how the input is read ---- */

/* Copies the options import_input.c applies (options may be NULL). */
void import_input_options(struct cairn_import *imp, const struct cairn_import_options *options);
/* Sets up a's reading before it opens: passphrases, the names' charset,
 * and libarchive's raw format behind a decoded stream (a bare .gz). Returns
 * 0 or -errno (message on imp). */
int import_input_setup(struct cairn_import *imp, struct archive *a);
/* The input's read(2), lseek(2) (-1 and errno) and cairn_pread_full
 * (-errno): of fd, or across the parts of a split archive as if they were
 * one file. */
ssize_t import_input_read(struct cairn_import *imp, void *buf, size_t size);
off_t import_input_seek(struct cairn_import *imp, off_t offset, int whence);
ssize_t import_input_pread(struct cairn_import *imp, void *buf, size_t size, uint64_t offset);
/* The parts' total size. */
uint64_t import_input_size(const struct cairn_import *imp);
/* Rewrites an entry before it is added: a bare compressed file's one entry
 * is named after the file, --strip-components. Returns 0, 1 when the entry
 * is to be skipped, or -errno (message on imp). */
int import_input_entry(struct cairn_import *imp, struct archive *a, struct archive_entry *entry);
/* ---- import_rar.c: CRCs of a RAR 4 archive's stored members ---- */

/* The input's next bytes, in order from its start (the raw input, or the
 * decoder's output when there is a decoder). */
void import_rar_feed(struct cairn_import *imp, const void *data, size_t size);
/* After libarchive handed out an entry's header. */
void import_rar_entry(struct cairn_import *imp, struct archive *a);
/* After an entry's data were read: fails the import (-EBADMSG, message on
 * imp) when the walk found a stored member's data, this one's or one
 * before it, damaged. */
int import_rar_check(struct cairn_import *imp, struct archive *a);
/* Before the commit, once all the input went past: the same, for any
 * member. */
int import_rar_finish(struct cairn_import *imp, struct archive *a);

/* ---- import_nested.c: archives inside archives (cairn add -r) ---- */

/* Before each entry: drops the spool of the one before. */
void import_nested_entry(struct cairn_import *imp);
/* A block of a regular file's data: the first one decides (by its magic
 * bytes) whether the file may be an archive, and then every block is
 * spooled to a temp file. Returns 0 or -errno (message on imp). */
int import_nested_block(struct cairn_import *imp, const void *data, size_t size, int64_t offset);
/* After a spooled file was placed at the last component of imp->parts in
 * directory node parent: when it opens as an archive, its entries become a
 * directory in its place and the file is kept as NAME.orig. A file that
 * does not open as one stays a file. Returns 0 or -errno (message on imp). */
int import_nested_expand(struct cairn_import *imp, uint32_t parent);
/* Counts one more entry against max_entries, of this archive and of the
 * archives it is nested in. Returns 0 or -E2BIG (message on imp). */
int import_count_entry(struct cairn_import *imp);
/* The ratio bound of each archive imp is nested in, with what every
 * level below it unpacked. Returns 0 or -E2BIG (message on imp). */
int import_nested_check_ratio(struct cairn_import *imp);

/* ---- import.c, for the decoder ---- */

/* Enables the filters (decompressors) an import accepts on a. */
void import_add_filters(struct archive *a);
/* The next slice of in_buf (at most IMPORT_FEED_SIZE), hashed. */
la_ssize_t import_next_slice(struct cairn_import *imp, const void **ret_buf);
/* The ratio bound, checked in a read callback: a failure stops the import
 * (imp->stopped) with imp->error and returns -E2BIG. */
int import_ratio_gate(struct cairn_import *imp, struct archive *a);

/* ---- import_decode.c: a compressed stream decoded on its own thread ---- */

/* Whether the input starts like a stream that a filter decodes. The bytes
 * looked at stay in the input (in_buf for a stream). */
bool import_input_is_compressed(struct cairn_import *imp);
/* Starts the decoder thread (imp->pipe). Returns 0 or -errno. */
int import_pipe_start(struct cairn_import *imp);
/* The archive's read callback while imp->pipe runs: the decoder's next
 * block. */
la_ssize_t import_pipe_read(struct archive *a, void *userdata, const void **ret_buf);
/* After the archive's last entry: reads the decoded stream to its end, so
 * that the checks at its end (gzip's CRC32 and size, lz4's content
 * checksum) are made. Returns 0 or -errno (message on imp). Accepts imp
 * without a pipe. */
int import_pipe_finish(struct cairn_import *imp, struct archive *a);
/* Appends "+NAME" for each layer the decoder took off, the innermost
 * first, to out (SNAP_FORMAT_SIZE bytes). Accepts imp without a pipe. */
void import_pipe_record_filters(const struct cairn_import *imp, char *out);
/* Stops the decoder thread and waits for it. Accepts imp without a pipe. */
void import_pipe_stop(struct cairn_import *imp);
/* Frees a stopped pipe. Accepts NULL. */
void import_pipe_free(struct decode_pipe *pipe);

/* ---- the decoder's layers (import_decode.c, import_layers.c) ----
 *
 * The decoder takes a compressed stream apart one layer at a time: each
 * layer decodes the bytes of the one below it (the first: the input). All
 * of it runs on the decoder's thread. */

struct decode_layer;
/* The layer's next block: 1 (*ret, *ret_size > 0, valid until the next
 * call), 0 at its end, -1 when it failed (import_layer_fail). */
typedef int (*decode_next_fn)(struct decode_layer *l, const uint8_t **ret, size_t *ret_size);

struct decode_layer {
	struct decode_layer *below; /* NULL: the input */
	struct decode_pipe *pipe;
	decode_next_fn next;
	void (*release)(struct decode_layer *l);
	const char *name;        /* for the format; NULL: a libarchive handle's */
	struct archive *archive; /* a libarchive layer's handle */
	void *state;             /* a gzip or lz4 layer's */
	uint8_t head[8];         /* bytes looked at: handed out first */
	size_t head_off, head_len;
	const uint8_t *rest; /* the rest of the block they came from */
	size_t rest_len;
	const uint8_t *in; /* of the block from below, not yet decoded */
	size_t in_len;
	bool below_ended;
};

/* The next block of l: what was looked at first, then l->next. */
int import_layer_read(struct decode_layer *l, const uint8_t **ret, size_t *ret_size);
/* Records why the decoding failed (the first failure only) and returns -1. */
int import_layer_fail(struct decode_layer *l, const char *fmt, ...) _printf_(2, 3);
/* Sets l up to decode gzip with zlib, which checks every member's CRC32
 * and size, or lz4 frames with liblz4, which checks their content and
 * block checksums. Return 0 or -1 (failed, message recorded). */
int import_gzip_layer_init(struct decode_layer *l);
int import_lz4_layer_init(struct decode_layer *l);

#endif
