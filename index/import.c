/* import.c: reading one archive with libarchive in one streaming pass. The
 * read callback hashes the raw bytes as libarchive asks for them, so the
 * snapshot's source id costs no second pass; a regular file may be seeked
 * (zip's central directory, 7z's header), and then the bytes skipped are
 * hashed at the end. A compressed stream is decoded on a thread of its own
 * (import_decode.c). Formats that read other files (mtree) and filters that
 * run external programs are not enabled. The messages an import gives are
 * made in import_messages.c, each entry is added in entry.c.
 */
#include "archive_dl.h"
#include "import_internal.h"

#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

/* Counts what comes out of the filters (a tar's headers too) and the file
 * data (a zip's or 7z's own compression), against the raw bytes read. */
int import_check_ratio(struct cairn_import *imp, struct archive *a)
{
	uint64_t unpacked = imp->unpacked;

	if (imp->max_ratio == CAIRN_IMPORT_NO_RATIO)
		return 0;
	/* Without a filter (of this handle's, or the decoder's before it),
	 * filter 0 is the input itself: its position is an offset, which a
	 * seek moves past bytes never read (a zip's central directory, at the
	 * end of a file of any size), not output. */
	if (imp->pipe || archive_filter_count(a) > 1) {
		la_int64_t filtered = archive_filter_bytes(a, 0);
		if (filtered > 0 && (uint64_t)filtered > unpacked)
			unpacked = (uint64_t)filtered;
	}
	uint64_t bound = imp->raw_read > (UINT64_MAX - imp->ratio_slack) / imp->max_ratio
				 ? UINT64_MAX
				 : imp->raw_read * imp->max_ratio + imp->ratio_slack;
	if (unpacked <= bound)
		return import_nested_check_ratio(imp);
	return import_fail(imp, -E2BIG,
			   "it unpacks to more than %llu times its size (%llu bytes from the "
			   "first %llu): refused as a decompression bomb",
			   (unsigned long long)imp->max_ratio, (unsigned long long)unpacked,
			   (unsigned long long)imp->raw_read);
}

/* ---- the handle ---- */

int cairn_import_new(struct cairn_store *store, struct cairn_writer *writer,
		     const struct cairn_import_options *options, struct cairn_import **ret)
{
	struct cairn_import *imp = calloc(1, sizeof(*imp));

	if (!imp)
		return -ENOMEM;
	imp->store = store;
	imp->writer = writer;
	imp->fd = -1;
	imp->max_entries =
		options && options->max_entries ? options->max_entries : CAIRN_IMPORT_MAX_ENTRIES;
	imp->max_ratio =
		options && options->max_ratio ? options->max_ratio : CAIRN_IMPORT_MAX_RATIO;
	imp->ratio_slack =
		options && options->ratio_slack ? options->ratio_slack : CAIRN_IMPORT_RATIO_SLACK;
	imp->keep_partial = options && options->partial;
	import_input_options(imp, options);
	imp->nest_depth = imp->nest_max = options ? options->recursion_depth : 0;
	imp->spool_fd = -1;
	imp->in_buf = malloc(IMPORT_READ_SIZE);
	imp->in_cur = imp->in_buf;
	if (!imp->in_buf) {
		free(imp);
		return -ENOMEM;
	}
	*ret = imp;
	return 0;
}

void cairn_import_free(struct cairn_import *imp)
{
	if (!imp)
		return;
	import_prefetch_stop(imp);
	tree_release(&imp->tree);
	path_parts_release(&imp->parts);
	path_parts_release(&imp->link_parts);
	buf_release(&imp->runs);
	free(imp->split_parts);
	if (imp->spool_fd >= 0)
		close(imp->spool_fd);
	buf_release(&imp->done_runs);
	free(imp->pending);
	free(imp->in_buf);
	free(imp->label);
	free(imp);
}

const char *cairn_import_error(const struct cairn_import *imp)
{
	return imp->error;
}

void cairn_import_set_progress(struct cairn_import *imp, cairn_import_progress_fn fn,
			       void *userdata)
{
	imp->progress_fn = fn;
	imp->progress_data = userdata;
}

void cairn_import_set_warn(struct cairn_import *imp, cairn_import_warn_fn fn, void *userdata)
{
	imp->warn_fn = fn;
	imp->warn_data = userdata;
}

void cairn_import_source_id(const struct cairn_import *imp, struct cairn_id *ret)
{
	memcpy(ret->bytes, imp->source.archive_id, CAIRN_ID_SIZE);
}

void cairn_import_stats(const struct cairn_import *imp, struct cairn_import_stats *ret)
{
	struct cairn_writer_stats stats;

	cairn_writer_stats(imp->writer, &stats);
	*ret = (struct cairn_import_stats){
		.entries = imp->entries,
		.skipped = imp->skipped,
		.archive_size = imp->source.size,
		.content_bytes = stats.bytes_in - imp->base_stats.bytes_in,
		.new_bytes = stats.bytes_new - imp->base_stats.bytes_new,
		.stored_bytes = stats.bytes_stored - imp->base_stats.bytes_stored,
		.snapshot_size = imp->snapshot_size,
		.snapshot_entries = imp->snapshot_entries,
		.partial = imp->partial,
	};
}

/* ---- libarchive callbacks ---- */

static void hash_input(struct cairn_import *imp, const void *data, size_t size)
{
	if (imp->in_pos == imp->hashed) {
		cairn_file_hasher_update(&imp->source_hasher, data, size);
		/* A decoder's thread: its output is walked instead. */
		if (!imp->pipe)
			import_rar_feed(imp, data, size);
		imp->hashed += size;
	}
	imp->in_pos += size;
	if (imp->in_pos > imp->raw_read)
		imp->raw_read = imp->in_pos;
}

/* The ratio bound, checked in a read callback: a failure stops the import
 * with imp->error, naming the entry whose data libarchive was reading (or
 * skipping, between headers). */
int import_ratio_gate(struct cairn_import *imp, struct archive *a)
{
	const char *path = imp->entry_path;
	if (!path && imp->last_entry[0])
		imp->entry_path = imp->last_entry;
	int r = import_check_ratio(imp, a);
	imp->entry_path = path;
	if (r < 0) {
		imp->read_errno = E2BIG;
		imp->stopped = true;
		imp->read_failed = true;
		archive_set_error(a, E2BIG, "%s", imp->error);
	}
	return r;
}

/* The next slice of in_buf (at most IMPORT_FEED_SIZE), hashed. */
la_ssize_t import_next_slice(struct cairn_import *imp, const void **ret_buf)
{
	size_t n = imp->in_len - imp->in_off;
	if (n > IMPORT_FEED_SIZE)
		n = IMPORT_FEED_SIZE;
	const uint8_t *slice = imp->in_cur + imp->in_off;
	imp->in_off += n;
	hash_input(imp, slice, n);
	*ret_buf = slice;
	return (la_ssize_t)n;
}

/* A stream's next block. When none is waiting, the store writer first
 * hands on what it holds: a pipe that stalls must not hold back the file
 * data read before it. */
static ssize_t stream_read(struct cairn_import *imp)
{
	struct pollfd pfd = {.fd = imp->fd, .events = POLLIN};
	ssize_t n;

	if (poll(&pfd, 1, 0) == 0)
		cairn_writer_files_kick(imp->writer);
	do
		n = import_input_read(imp, imp->in_buf, IMPORT_READ_SIZE);
	while (n < 0 && errno == EINTR);
	return n;
}

/* Reads IMPORT_READ_SIZE at a time and hands libarchive IMPORT_FEED_SIZE
 * slices: libarchive may unpack a lot between two calls of ours (skipping
 * an entry's data, say), but never without one, so each slice is a check of
 * the ratio bound. */
static la_ssize_t on_read(struct archive *a, void *userdata, const void **ret_buf)
{
	struct cairn_import *imp = userdata;

	if (imp->in_off == imp->in_len) {
		ssize_t n;
		imp->in_cur = imp->in_buf;
		if (imp->prefetch) {
			n = import_prefetch_read(imp, imp->in_pos, &imp->in_cur);
			if (n < 0)
				errno = (int)-n;
		} else {
			n = stream_read(imp);
		}
		if (n < 0) {
			imp->read_errno = errno;
			imp->read_failed = true;
			archive_set_error(a, errno, "reading: %s", strerror(errno));
			return -1;
		}
		imp->in_off = 0;
		imp->in_len = (size_t)n;
	}
	if (import_ratio_gate(imp, a) < 0)
		return -1;
	la_ssize_t n = import_next_slice(imp, ret_buf);
	imp->at_end = n == 0;
	import_progress(imp);
	return n;
}

static la_int64_t on_seek(struct archive *a, void *userdata, la_int64_t offset, int whence)
{
	struct cairn_import *imp = userdata;

	/* The fd is ahead of libarchive by what in_buf still holds. */
	if (whence == SEEK_CUR) {
		offset += (la_int64_t)imp->in_pos;
		whence = SEEK_SET;
	}
	off_t pos = import_input_seek(imp, offset, whence);
	if (pos < 0) {
		imp->read_errno = errno;
		archive_set_error(a, errno, "seeking: %s", strerror(errno));
		return ARCHIVE_FATAL;
	}
	imp->in_off = imp->in_len = 0;
	imp->in_pos = (uint64_t)pos;
	imp->at_end = false;
	return pos;
}

static la_int64_t on_skip(struct archive *a, void *userdata, la_int64_t request)
{
	struct cairn_import *imp = userdata;
	off_t pos = import_input_seek(imp, (off_t)imp->in_pos + request, SEEK_SET);

	if (pos < 0)
		return 0; /* libarchive reads through instead */
	imp->in_off = imp->in_len = 0;
	imp->in_pos = (uint64_t)pos;
	return request;
}

/* ---- the source id ---- */

/* What a stream may hold after its archive's end that is read and hashed: a
 * tar's record padding (10 KiB; 4 MiB at bsdtar's largest blocking factor),
 * a compressed stream's padding. Beyond it the input is not read: a pipe of
 * endless zeros after a tar, or /dev/zero, must end. */
#define IMPORT_TRAILING_MAX (4u << 20)

static void hash_more(struct cairn_import *imp, const void *data, size_t size)
{
	cairn_file_hasher_update(&imp->source_hasher, data, size);
	if (!imp->pipe)
		import_rar_feed(imp, data, size);
	imp->hashed += size;
	if (imp->hashed > imp->raw_read)
		imp->raw_read = imp->hashed;
}

/* The tail of a regular file, which has an end: the id is the whole file's. */
static int hash_file_rest(struct cairn_import *imp)
{
	for (;;) {
		ssize_t n = import_input_pread(imp, imp->in_buf, IMPORT_READ_SIZE, imp->hashed);
		if (n < 0)
			return import_fail(imp, (int)n, "reading: %s", strerror((int)-n));
		if (n == 0)
			return 0;
		hash_more(imp, imp->in_buf, (size_t)n);
	}
}

static ssize_t read_retry(int fd, void *buf, size_t size)
{
	ssize_t n;

	do
		n = read(fd, buf, size);
	while (n < 0 && errno == EINTR);
	return n < 0 ? -errno : n;
}

/* The rest of a stream, up to IMPORT_TRAILING_MAX bytes past what libarchive
 * took. Returns 1 when more follows, which is left unread. */
static int hash_stream_rest(struct cairn_import *imp)
{
	size_t left = IMPORT_TRAILING_MAX;
	size_t have = imp->in_len - imp->in_off;
	size_t take = have < left ? have : left;

	/* Bytes read but not handed out come first. */
	hash_more(imp, imp->in_buf + imp->in_off, take);
	imp->in_off = imp->in_len;
	if (take < have)
		return 1;
	for (left -= take;;) {
		size_t want = left == 0 ? 1 : left < IMPORT_READ_SIZE ? left : IMPORT_READ_SIZE;
		ssize_t n = read_retry(imp->fd, imp->in_buf, want);
		if (n < 0)
			return import_fail(imp, (int)n, "reading: %s", strerror((int)-n));
		if (n == 0)
			return 0;
		if (left == 0)
			return 1; /* this read only looked: its bytes are not hashed */
		hash_more(imp, imp->in_buf, (size_t)n);
		left -= (size_t)n;
	}
}

/* Hashes what libarchive did not read in order: the tail of a regular file,
 * or what follows the archive in a stream (a tar's trailing padding), up to
 * a bound. Returns 1 when a stream was cut there. */
static int hash_rest(struct cairn_import *imp)
{
	return imp->seekable ? hash_file_rest(imp) : hash_stream_rest(imp);
}

int cairn_archive_id(const struct cairn_store *store, int fd, struct cairn_id *ret)
{
	return cairn_archive_id_parts(store, &fd, 1, ret);
}

/* ---- the archive ---- */

void import_add_filters(struct archive *a)
{
	archive_read_support_filter_gzip(a);
	archive_read_support_filter_bzip2(a);
	archive_read_support_filter_xz(a);
	archive_read_support_filter_lzma(a);
	archive_read_support_filter_lzip(a);
	archive_read_support_filter_zstd(a);
	archive_read_support_filter_lz4(a);
	archive_read_support_filter_compress(a);
	archive_read_support_filter_rpm(a);
}

static struct archive *archive_new(struct cairn_import *imp)
{
	struct archive *a = archive_read_new();

	if (!a)
		return NULL;
	import_add_filters(a);
	archive_read_support_format_tar(a);
	archive_read_support_format_gnutar(a);
	archive_read_support_format_cpio(a);
	archive_read_support_format_zip(a);
	archive_read_support_format_7zip(a);
	archive_read_support_format_iso9660(a);
	archive_read_support_format_ar(a);
	archive_read_support_format_rar(a);
	archive_read_support_format_rar5(a);
	archive_read_support_format_cab(a);
	archive_read_support_format_lha(a);
	archive_read_support_format_xar(a);
	archive_read_support_format_empty(a);
	archive_read_set_callback_data(a, imp);
	archive_read_set_read_callback(a, imp->pipe ? import_pipe_read : on_read);
	if (imp->seekable && !imp->pipe) {
		archive_read_set_seek_callback(a, on_seek);
		archive_read_set_skip_callback(a, on_skip);
	}
	return a;
}

static const char *format_family(int format)
{
	switch (format & ARCHIVE_FORMAT_BASE_MASK) {
	case ARCHIVE_FORMAT_TAR:
		return "tar";
	case ARCHIVE_FORMAT_CPIO:
		return "cpio";
	case ARCHIVE_FORMAT_ZIP:
		return "zip";
	case ARCHIVE_FORMAT_7ZIP:
		return "7z";
	case ARCHIVE_FORMAT_ISO9660:
		return "iso9660";
	case ARCHIVE_FORMAT_AR:
		return "ar";
	case ARCHIVE_FORMAT_RAR:
		return "rar";
	case ARCHIVE_FORMAT_RAR_V5:
		return "rar5";
	case ARCHIVE_FORMAT_CAB:
		return "cab";
	case ARCHIVE_FORMAT_LHA:
		return "lha";
	case ARCHIVE_FORMAT_XAR:
		return "xar";
	case ARCHIVE_FORMAT_EMPTY:
		return "empty";
	default:
		return "unknown";
	}
}

static void record_filters(char *out, struct archive *a);

/* "tar+gzip": the format, then its filters from the inside out, in the
 * order of the file name's suffixes. */
static void record_format(struct cairn_import *imp, struct archive *a)
{
	char *out = imp->source.format;

	cairn_format(out, SNAP_FORMAT_SIZE, "%s", format_family(archive_format(a)));
	/* The archive's own handle may have found a filter inside what the
	 * decoder took off (an lzma stream): those come first. */
	record_filters(out, a);
	import_pipe_record_filters(imp, out);
}

static void record_filters(char *out, struct archive *a)
{
	int filters = archive_filter_count(a);

	for (int i = 0; i + 1 < filters; i++) {
		size_t len = strlen(out);
		const char *name = archive_filter_name(a, i);
		cairn_format(out + len, SNAP_FORMAT_SIZE - len, "+%s", name ? name : "?");
	}
}

/* The data import_entry left unread (a skipped entry's): read through with
 * the ratio bound checked at each block, rather than unpacked unseen by
 * libarchive on its way to the next header. An error stops the draining
 * only: libarchive reports it again where it matters. */
static int drain_entry(struct cairn_import *imp, struct archive *a)
{
	for (;;) {
		const void *data;
		size_t size;
		la_int64_t offset;
		int r = archive_read_data_block(a, &data, &size, &offset);
		if (r != ARCHIVE_OK && r != ARCHIVE_WARN)
			return 0;
		imp->unpacked += size;
		r = import_check_ratio(imp, a);
		if (r < 0)
			return r;
	}
}

/* cpio's reader skips damage to the next good header with a warning. */
static bool skipped_to_header(int r, struct archive *a)
{
	const char *msg = archive_error_string(a);

	return r == ARCHIVE_WARN && msg && strncmp(msg, "Skipped ", 8) == 0 &&
	       strstr(msg, "before finding valid header");
}

static int read_entries(struct cairn_import *imp, struct archive *a)
{
	struct archive_entry *entry;

	for (;;) {
		imp->entry_path = NULL;
		int r = archive_read_next_header(a, &entry);
		if (r == ARCHIVE_EOF)
			return 0;
		/* A damaged header (a size that lied, say): libarchive would
		 * look for the next good one, as bsdtar -x does, and lose what
		 * lies between. Damage fails the import. */
		if (r == ARCHIVE_RETRY || skipped_to_header(r, a))
			return import_fail_between(imp, -EBADMSG, import_reason(imp, a));
		if (r < ARCHIVE_WARN)
			return import_fail(imp, imp->read_errno ? -imp->read_errno : -EBADMSG,
					   "after %llu entries: %s",
					   (unsigned long long)imp->entries, import_reason(imp, a));
		import_rar_entry(imp, a);
		int counted = import_count_entry(imp);
		if (counted < 0)
			return counted;
		imp->entry_path = archive_entry_pathname(entry);
		cairn_format(imp->last_entry, sizeof(imp->last_entry), "%s",
			     imp->entry_path ? imp->entry_path : "");
		/* A header that disagrees with itself (a zip's two copies of
		 * its CRC or sizes): bsdtar -x fails it too. */
		if (r == ARCHIVE_WARN && import_warning_is_damage(archive_error_string(a)))
			return import_fail(imp, -EBADMSG, "%s", import_reason(imp, a));
		if (r == ARCHIVE_WARN)
			import_warn(imp, "%s", import_reason(imp, a));
		r = import_check_ratio(imp, a);
		if (r == 0)
			r = import_input_entry(imp, a, entry); /* 1: skipped */
		if (r == 0)
			r = import_entry(imp, a, entry);
		if (r >= 0)
			r = drain_entry(imp, a);
		if (r < 0)
			return r;
	}
}

/* libarchive chooses the filters and the format. */
static int open_archive(struct cairn_import *imp, struct archive *a)
{
	int opened = archive_read_open1(a);
	int r = imp->read_errno ? -imp->read_errno : -EBADMSG;
	const char *why = import_reason(imp, a);

	if (opened != ARCHIVE_OK && strcmp(why, "Unrecognized archive format") == 0)
		return import_fail(imp, r, "not an archive (%s)", why);
	/* A format's bidder takes a failed read for "not mine", and then the
	 * "empty" format, which bids when nothing can be read, wins: the
	 * failure is the answer, not an empty archive. */
	if (opened != ARCHIVE_OK || imp->read_failed)
		return import_fail(imp, r, "%s", why);
	return 0;
}

/* An archive of no entries is small: an empty tar is its end marker padded
 * to a record (10 KiB; 4 MiB at bsdtar's largest blocking factor), an empty
 * zip is 22 bytes. */
#define IMPORT_EMPTY_MAX (4u << 20)

/* A large input in which libarchive finds no entry at all is not an
 * archive: to libarchive, 140 MB of zeros is a tar's end marker, and what
 * follows the end of an archive is never read. */
static int check_some_entries(struct cairn_import *imp, bool cut)
{
	if (imp->entries > 0 || imp->hashed <= IMPORT_EMPTY_MAX)
		return 0;
	return import_fail(imp, -EBADMSG,
			   "not an archive: no entries in its %s%llu bytes (an empty archive is at "
			   "most 4 MiB)",
			   cut ? "first " : "", (unsigned long long)imp->hashed);
}

static int import_open_input(struct cairn_import *imp, int fd, const char *label)
{
	struct stat st;

	imp->label = strdup(label);
	if (!imp->label)
		return -ENOMEM;
	const char *slash = strrchr(imp->label, '/');
	imp->source_name = slash && slash[1] ? slash + 1 : imp->label;
	imp->fd = fd;
	if (fstat(fd, &st) < 0)
		return import_fail(imp, -errno, "%s", strerror(errno));
	imp->seekable = S_ISREG(st.st_mode) && lseek(fd, 0, SEEK_SET) == 0;
	if (imp->seekable) {
		imp->input_size = (uint64_t)st.st_size;
		imp->source.mtime_sec = st.st_mtim.tv_sec;
		imp->source.mtime_nsec = (uint32_t)st.st_mtim.tv_nsec;
	}
	if (imp->part_count > 0)
		imp->input_size = import_input_size(imp); /* a split archive */
	cairn_file_hasher_init(&imp->source_hasher, imp->store);
	cairn_writer_stats(imp->writer, &imp->base_stats);
	return tree_init(&imp->tree, imp->source.mtime_sec);
}

/* Damage found after the archive opened: with keep_partial, what was read
 * before it becomes a partial snapshot, and the failure a warning. */
static int keep_partial(struct cairn_import *imp)
{
	if (!imp->keep_partial)
		return -EBADMSG;
	/* The entry that broke may have left its file open in the writer:
	 * close it; its chunks stay unnamed (gc drops them). */
	uint64_t size;
	const struct cairn_chunk_ref *chunks;
	size_t count;
	(void)cairn_writer_file_end(imp->writer, &size, &chunks, &count);
	imp->partial = true;
	if (imp->warn_fn) {
		char line[sizeof(imp->error) + 100];
		cairn_format(line, sizeof(line),
			     "%s; kept the entries read before the damage as a partial snapshot",
			     imp->error);
		imp->warn_fn(imp->warn_data, line);
	}
	imp->error[0] = '\0';
	return 0;
}

int cairn_import_archive(struct cairn_import *imp, int fd, const char *label)
{
	struct cairn_id id;

	if (imp->started)
		return -EALREADY;
	imp->started = true;
	int r = import_open_input(imp, fd, label);
	if (r < 0)
		return r;
	char why[256];
	if ((r = archive_dl_load(why, sizeof(why))) < 0)
		return import_fail(imp, r, "%s", why);
	import_content_start(imp);
	/* Only the decoder's layers check a gzip or lz4 stream's checksums. */
	if (import_input_is_compressed(imp)) {
		if ((r = import_pipe_start(imp)) < 0)
			return import_fail(imp, r, "starting the decoder: %s", strerror(-r));
	} else if (imp->seekable && (r = import_prefetch_start(imp)) < 0) {
		return import_fail(imp, r, "starting the reader: %s", strerror(-r));
	}
	struct archive *a = archive_new(imp);
	bool opened = false;
	r = a ? import_input_setup(imp, a) : import_fail(imp, -ENOMEM, "out of memory");
	if (r == 0)
		r = open_archive(imp, a);
	if (r == 0) {
		opened = true;
		r = read_entries(imp, a);
		if (r == 0)
			r = import_pipe_finish(imp, a);
	}
	if (r == -EBADMSG && opened)
		r = keep_partial(imp);
	/* The files read so far get their chunk lists (a partial snapshot's too). */
	if (r == 0)
		r = import_content_flush(imp);
	cairn_writer_set_file_fn(imp->writer, NULL, NULL);
	import_pipe_stop(imp);
	import_prefetch_stop(imp);
	bool cut = false;
	if (r == 0) {
		record_format(imp, a);
		imp->entry_path = NULL;
		r = hash_rest(imp);
		cut = r == 1;
		if (cut)
			r = 0;
	}
	if (r == 0 && !imp->partial)
		r = import_rar_finish(imp, a);
	if (r == 0)
		r = check_some_entries(imp, cut);
	if (r == 0 && cut)
		import_warn(imp,
			    "ignored what follows the archive's end after %u MiB of it (not read, "
			    "not in the source id)",
			    IMPORT_TRAILING_MAX >> 20);
	if (a)
		archive_read_free(a);
	import_pipe_free(TAKE_PTR(imp->pipe));
	if (r < 0)
		return r;
	cairn_file_hasher_final(&imp->source_hasher, &id);
	memcpy(imp->source.archive_id, id.bytes, CAIRN_ID_SIZE);
	imp->source.size = imp->hashed;
	imp->imported = true;
	import_progress(imp);
	return 0;
}
