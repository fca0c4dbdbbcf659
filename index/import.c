/* import.c: reading one archive with libarchive in one streaming pass. The
 * read callback hashes the raw bytes as libarchive asks for them, so the
 * snapshot's source id costs no second pass; a regular file may be seeked
 * (zip's central directory, 7z's header), and then the bytes skipped are
 * hashed at the end. Formats that read other files (mtree) and filters
 * that run external programs are not enabled.
 */
#include "import_internal.h"

#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

/* libarchive's messages may end in a newline. */
static void trim(char *msg)
{
	size_t len = strlen(msg);

	while (len > 0 && (msg[len - 1] == '\n' || msg[len - 1] == ' '))
		msg[--len] = '\0';
}

int import_fail(struct cairn_import *imp, int r, const char *fmt, ...)
{
	char msg[700];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	trim(msg);
	if (imp->entry_path)
		cairn_format(imp->error, sizeof(imp->error), "%s: %s: %s", imp->label,
			     imp->entry_path, msg);
	else
		cairn_format(imp->error, sizeof(imp->error), "%s: %s", imp->label, msg);
	return r;
}

void import_warn(struct cairn_import *imp, const char *fmt, ...)
{
	char msg[700], line[1024];
	va_list ap;

	if (!imp->warn_fn)
		return;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	trim(msg);
	if (imp->entry_path)
		cairn_format(line, sizeof(line), "%s: %s: %s", imp->label, imp->entry_path, msg);
	else
		cairn_format(line, sizeof(line), "%s: %s", imp->label, msg);
	imp->warn_fn(imp->warn_data, line);
}

void import_progress(struct cairn_import *imp)
{
	struct cairn_writer_stats stats;

	if (!imp->progress_fn)
		return;
	cairn_writer_stats(imp->writer, &stats);
	struct cairn_import_progress p = {
		.archive_bytes = imp->raw_read,
		.archive_size = imp->input_size,
		.entries = imp->entries,
		.content_bytes = stats.bytes_in - imp->base_stats.bytes_in,
		.new_bytes = stats.bytes_new - imp->base_stats.bytes_new,
		.stored_bytes = stats.bytes_stored - imp->base_stats.bytes_stored,
	};
	imp->progress_fn(imp->progress_data, &p);
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
	imp->in_buf = malloc(IMPORT_READ_SIZE);
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
	tree_release(&imp->tree);
	path_parts_release(&imp->parts);
	path_parts_release(&imp->link_parts);
	buf_release(&imp->runs);
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
	};
}

/* ---- libarchive callbacks ---- */

static void hash_input(struct cairn_import *imp, const void *data, size_t size)
{
	if (imp->in_pos == imp->hashed) {
		cairn_file_hasher_update(&imp->source_hasher, data, size);
		imp->hashed += size;
	}
	imp->in_pos += size;
	if (imp->in_pos > imp->raw_read)
		imp->raw_read = imp->in_pos;
}

static la_ssize_t on_read(struct archive *a, void *userdata, const void **ret_buf)
{
	struct cairn_import *imp = userdata;
	ssize_t n;

	do
		n = read(imp->fd, imp->in_buf, IMPORT_READ_SIZE);
	while (n < 0 && errno == EINTR);
	if (n < 0) {
		imp->read_errno = errno;
		archive_set_error(a, errno, "reading: %s", strerror(errno));
		return -1;
	}
	hash_input(imp, imp->in_buf, (size_t)n);
	import_progress(imp);
	*ret_buf = imp->in_buf;
	return n;
}

static la_int64_t on_seek(struct archive *a, void *userdata, la_int64_t offset, int whence)
{
	struct cairn_import *imp = userdata;
	off_t pos = lseek(imp->fd, offset, whence);

	if (pos < 0) {
		imp->read_errno = errno;
		archive_set_error(a, errno, "seeking: %s", strerror(errno));
		return ARCHIVE_FATAL;
	}
	imp->in_pos = (uint64_t)pos;
	return pos;
}

static la_int64_t on_skip(struct archive *a, void *userdata, la_int64_t request)
{
	struct cairn_import *imp = userdata;
	off_t pos = lseek(imp->fd, request, SEEK_CUR);

	if (pos < 0)
		return 0; /* libarchive reads through instead */
	imp->in_pos = (uint64_t)pos;
	return request;
}

/* ---- the source id ---- */

/* Hashes what libarchive did not read in order: the tail of a regular file,
 * or the rest of a stream (a tar's trailing padding). */
static int hash_rest(struct cairn_import *imp)
{
	for (;;) {
		ssize_t n = imp->seekable ? cairn_pread_full(imp->fd, imp->in_buf, IMPORT_READ_SIZE,
							     imp->hashed)
					  : read(imp->fd, imp->in_buf, IMPORT_READ_SIZE);
		if (n < 0 && errno == EINTR && !imp->seekable)
			continue;
		if (n < 0)
			return import_fail(imp, imp->seekable ? (int)n : -errno, "reading: %s",
					   strerror(imp->seekable ? (int)-n : errno));
		if (n == 0)
			return 0;
		cairn_file_hasher_update(&imp->source_hasher, imp->in_buf, (size_t)n);
		imp->hashed += (uint64_t)n;
		if (imp->hashed > imp->raw_read)
			imp->raw_read = imp->hashed;
	}
}

int cairn_archive_id(const struct cairn_store *store, int fd, struct cairn_id *ret)
{
	struct cairn_file_hasher hasher;
	uint64_t offset = 0;
	_cleanup_free_ uint8_t *buf = malloc(IMPORT_READ_SIZE);

	if (!buf)
		return -ENOMEM;
	cairn_file_hasher_init(&hasher, store);
	for (;;) {
		ssize_t n = cairn_pread_full(fd, buf, IMPORT_READ_SIZE, offset);
		if (n < 0)
			return (int)n;
		if (n == 0)
			break;
		cairn_file_hasher_update(&hasher, buf, (size_t)n);
		offset += (uint64_t)n;
	}
	cairn_file_hasher_final(&hasher, ret);
	return 0;
}

/* ---- the archive ---- */

static struct archive *archive_new(struct cairn_import *imp)
{
	struct archive *a = archive_read_new();

	if (!a)
		return NULL;
	archive_read_support_filter_gzip(a);
	archive_read_support_filter_bzip2(a);
	archive_read_support_filter_xz(a);
	archive_read_support_filter_lzma(a);
	archive_read_support_filter_lzip(a);
	archive_read_support_filter_zstd(a);
	archive_read_support_filter_lz4(a);
	archive_read_support_filter_compress(a);
	archive_read_support_filter_rpm(a);
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
	archive_read_set_read_callback(a, on_read);
	if (imp->seekable) {
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

/* "tar+gzip": the format, then its filters from the inside out, in the
 * order of the file name's suffixes. */
static void record_format(struct cairn_import *imp, struct archive *a)
{
	char *out = imp->source.format;
	int filters = archive_filter_count(a);

	cairn_format(out, SNAP_FORMAT_SIZE, "%s", format_family(archive_format(a)));
	for (int i = 0; i + 1 < filters; i++) {
		size_t len = strlen(out);
		const char *name = archive_filter_name(a, i);
		cairn_format(out + len, SNAP_FORMAT_SIZE - len, "+%s", name ? name : "?");
	}
}

static int read_entries(struct cairn_import *imp, struct archive *a)
{
	struct archive_entry *entry;

	for (;;) {
		imp->entry_path = NULL;
		int r = archive_read_next_header(a, &entry);
		if (r == ARCHIVE_EOF)
			return 0;
		if (r == ARCHIVE_RETRY)
			continue;
		if (r < ARCHIVE_WARN)
			return import_fail(imp, imp->read_errno ? -imp->read_errno : -EBADMSG,
					   "after %llu entries: %s",
					   (unsigned long long)imp->entries,
					   archive_error_string(a));
		if (++imp->entries > imp->max_entries)
			return import_fail(imp, -E2BIG, "more than %llu entries",
					   (unsigned long long)imp->max_entries);
		if (r == ARCHIVE_WARN) {
			imp->entry_path = archive_entry_pathname(entry);
			import_warn(imp, "%s", archive_error_string(a));
		}
		r = import_entry(imp, a, entry);
		if (r < 0)
			return r;
	}
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
	cairn_file_hasher_init(&imp->source_hasher, imp->store);
	cairn_writer_stats(imp->writer, &imp->base_stats);
	return tree_init(&imp->tree, imp->source.mtime_sec);
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
	struct archive *a = archive_new(imp);
	if (!a)
		return import_fail(imp, -ENOMEM, "out of memory");
	if (archive_read_open1(a) != ARCHIVE_OK)
		r = import_fail(imp, imp->read_errno ? -imp->read_errno : -EBADMSG, "%s",
				archive_error_string(a));
	else
		r = read_entries(imp, a);
	if (r == 0) {
		record_format(imp, a);
		imp->entry_path = NULL;
		r = hash_rest(imp);
	}
	archive_read_free(a);
	if (r < 0)
		return r;
	cairn_file_hasher_final(&imp->source_hasher, &id);
	memcpy(imp->source.archive_id, id.bytes, CAIRN_ID_SIZE);
	imp->source.size = imp->hashed;
	imp->imported = true;
	import_progress(imp);
	return 0;
}
