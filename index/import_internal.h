/* import_internal.h: what import.c (the archive stream and the entry loop)
 * and entry.c (one entry into the tree: metadata, xattrs, content) share.
 * Together they are the only files of cairn that use libarchive.
 */
#ifndef CAIRN_IMPORT_INTERNAL_H
#define CAIRN_IMPORT_INTERNAL_H

#include "index_internal.h"

#include <archive.h>
#include <archive_entry.h>

#define IMPORT_READ_SIZE (1u << 20)
/* libarchive is handed the input in slices of this size: each is a point
 * where the ratio bound is checked (import_check_ratio). */
#define IMPORT_FEED_SIZE (64u << 10)

struct cairn_import {
	struct cairn_store *store;
	struct cairn_writer *writer;
	uint64_t max_entries;
	uint64_t max_ratio, ratio_slack; /* see cairn_import_options */
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
	size_t in_off, in_len;    /* in_buf holds [in_off, in_len) not yet handed out */
	int read_errno;           /* why the read callback failed */
	bool stopped;             /* the read callback failed the import; imp->error says why */
	struct decode_pipe *pipe; /* a compressed stream decoded on its own thread */
	struct cairn_file_hasher source_hasher;
	struct snap_source source;
	char *label;
	const char *source_name; /* points into label */

	struct tree tree;
	struct path_parts parts, link_parts;
	struct buf runs; /* snap_chunk_list + snap_runs of the file being read */
	struct cairn_writer_stats base_stats;
	uint64_t entries, skipped;
	const char *entry_path; /* of the entry being read, for messages */
	char last_entry[256];   /* the last entry's path (cut), whose data
				   libarchive skips when it reads the next header */
	bool started, imported, committed;
	uint64_t snapshot_size;
	char error[1024];
};

/* Records "LABEL: PATH: message" (or "LABEL: message" between entries) and
 * returns r. */
int import_fail(struct cairn_import *imp, int r, const char *fmt, ...) _printf_(3, 4);
/* Sends "LABEL: PATH: message" to the warning callback. */
void import_warn(struct cairn_import *imp, const char *fmt, ...) _printf_(2, 3);
/* Adds one archive entry to the tree, reading its data. Returns 0 or -errno
 * (message on imp). */
int import_entry(struct cairn_import *imp, struct archive *a, struct archive_entry *entry);
/* Fails the import (-E2BIG) when the archive unpacks to more than the
 * ratio bound allows (cairn_import_options); a decompression bomb. */
int import_check_ratio(struct cairn_import *imp, struct archive *a);
/* Reports progress now. */
void import_progress(struct cairn_import *imp);

#endif
