/* import.c: reading one archive with libarchive in one streaming pass. The
 * read callback hashes the raw bytes as libarchive asks for them, so the
 * snapshot's source id costs no second pass; a regular file may be seeked
 * (zip's central directory, 7z's header), and then the bytes skipped are
 * hashed at the end. A compressed stream is decoded on a thread of its own
 * (see "decoding on a thread of its own"). Formats that read other files
 * (mtree) and filters that run external programs are not enabled.
 */
#include "import_internal.h"

#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/stat.h>

/* libarchive's messages may end in a newline. */
static void trim(char *msg)
{
	size_t len = strlen(msg);

	while (len > 0 && (msg[len - 1] == '\n' || msg[len - 1] == ' '))
		msg[--len] = '\0';
}

/* "LABEL: PATH: msg", "LABEL: msg" between entries. A path too long to
 * read (the limits tests use 64 KiB names) is cut, so the message after it
 * still fits in the line. */
#define MSG_PATH_MAX 240

static void format_line(const struct cairn_import *imp, char *out, size_t size, const char *msg)
{
	size_t len = imp->entry_path ? strlen(imp->entry_path) : 0;

	if (!imp->entry_path)
		cairn_format(out, size, "%s: %s", imp->label, msg);
	else if (len <= MSG_PATH_MAX)
		cairn_format(out, size, "%s: %s: %s", imp->label, imp->entry_path, msg);
	else
		cairn_format(out, size, "%s: %.*s... (a path of %zu bytes): %s", imp->label,
			     MSG_PATH_MAX, imp->entry_path, len, msg);
}

int import_fail(struct cairn_import *imp, int r, const char *fmt, ...)
{
	char msg[700];
	va_list ap;

	if (imp->stopped)
		return r; /* the read callback's message says why libarchive failed */
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	trim(msg);
	format_line(imp, imp->error, sizeof(imp->error), msg);
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
	format_line(imp, line, sizeof(line), msg);
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

/* Counts what comes out of the filters (a tar's headers too) and the file
 * data (a zip's or 7z's own compression), against the raw bytes read. */
int import_check_ratio(struct cairn_import *imp, struct archive *a)
{
	uint64_t unpacked = imp->unpacked;
	la_int64_t filtered = archive_filter_bytes(a, 0);

	if (imp->max_ratio == CAIRN_IMPORT_NO_RATIO)
		return 0;
	if (filtered > 0 && (uint64_t)filtered > unpacked)
		unpacked = (uint64_t)filtered;
	uint64_t bound = imp->raw_read > (UINT64_MAX - imp->ratio_slack) / imp->max_ratio
				 ? UINT64_MAX
				 : imp->raw_read * imp->max_ratio + imp->ratio_slack;
	if (unpacked <= bound)
		return 0;
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

/* The ratio bound, checked in a read callback: a failure stops the import
 * with imp->error, naming the entry whose data libarchive was reading (or
 * skipping, between headers). */
static int ratio_gate(struct cairn_import *imp, struct archive *a)
{
	const char *path = imp->entry_path;
	if (!path && imp->last_entry[0])
		imp->entry_path = imp->last_entry;
	int r = import_check_ratio(imp, a);
	imp->entry_path = path;
	if (r < 0) {
		imp->read_errno = E2BIG;
		imp->stopped = true;
		archive_set_error(a, E2BIG, "%s", imp->error);
	}
	return r;
}

/* The next slice of in_buf (at most IMPORT_FEED_SIZE), hashed. */
static la_ssize_t next_slice(struct cairn_import *imp, const void **ret_buf)
{
	size_t n = imp->in_len - imp->in_off;
	if (n > IMPORT_FEED_SIZE)
		n = IMPORT_FEED_SIZE;
	const uint8_t *slice = imp->in_buf + imp->in_off;
	imp->in_off += n;
	hash_input(imp, slice, n);
	*ret_buf = slice;
	return (la_ssize_t)n;
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
		do
			n = read(imp->fd, imp->in_buf, IMPORT_READ_SIZE);
		while (n < 0 && errno == EINTR);
		if (n < 0) {
			imp->read_errno = errno;
			archive_set_error(a, errno, "reading: %s", strerror(errno));
			return -1;
		}
		imp->in_off = 0;
		imp->in_len = (size_t)n;
	}
	if (ratio_gate(imp, a) < 0)
		return -1;
	la_ssize_t n = next_slice(imp, ret_buf);
	import_progress(imp);
	return n;
}

/* ---- decoding on a thread of its own ----
 *
 * A compressed stream (gzip, xz, bzip2, zstd, lz4, lzip) is decoded by a
 * second libarchive handle (format "raw") on its own thread, into a ring of
 * blocks that the archive's handle reads as an uncompressed stream. The
 * thread calling cairn_import_archive then parses entries, cuts, hashes and
 * indexes while the decoder runs: for .tar.xz the decoder alone is the
 * critical path, as it is for bsdtar. The decoder reads the input through
 * on_decoder_read (hashing it, as on_read does); the ratio bound and the
 * progress are checked on the archive's side, against the raw bytes the
 * decoder has read, and the ring's bound keeps the decoder at most
 * PIPE_SLOTS blocks ahead of that check. */

#define PIPE_SLOTS      8
#define PIPE_BLOCK_SIZE (256u << 10)

struct decode_pipe {
	struct archive *decoder;
	pthread_t thread;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	uint8_t *blocks[PIPE_SLOTS];
	size_t sizes[PIPE_SLOTS];
	unsigned head, count; /* full blocks: [head, head + count) */
	bool reading;         /* the archive's side holds the block at head */
	bool done, cancel;
	int error;        /* the decoder failed (EBADMSG, or read_errno) */
	int read_errno;   /* reading the input failed (decoder's thread) */
	bool input_ended; /* the decoder read to the end of the input */
	int wake_fd;      /* an eventfd: pipe_stop wakes a decoder blocked in read */
	char message[512];
	/* the decoder thread's own: the slot it fills */
	unsigned slot;
	size_t fill;
	bool open;
};

static void pipe_publish(struct decode_pipe *pipe);

/* read(2) of the input on the decoder's thread. A stream (a pipe from a
 * producer that may stall) is polled together with wake_fd, so that a
 * failed import never waits for the producer's next bytes. */
static ssize_t decoder_read(struct cairn_import *imp, void *buf, size_t size)
{
	if (!imp->seekable) {
		struct pollfd fds[2] = {
			{.fd = imp->fd, .events = POLLIN},
			{.fd = imp->pipe->wake_fd, .events = POLLIN},
		};
		int r = poll(fds, 2, 0);
		if (r == 0 && imp->pipe->open && imp->pipe->fill > 0) {
			/* About to wait for the producer: hand over what is
			 * decoded so far, so that the archive's side never
			 * waits for bytes that are already here. */
			pipe_publish(imp->pipe);
		}
		while (r == 0 || (r < 0 && errno == EINTR))
			r = poll(fds, 2, -1);
		if (r < 0)
			return -1;
		if (fds[1].revents) {
			errno = ECANCELED;
			return -1;
		}
	}
	ssize_t n;
	do
		n = read(imp->fd, buf, size);
	while (n < 0 && errno == EINTR);
	return n;
}

static la_ssize_t on_decoder_read(struct archive *a, void *userdata, const void **ret_buf)
{
	struct cairn_import *imp = userdata;

	if (imp->in_off == imp->in_len) {
		ssize_t n = decoder_read(imp, imp->in_buf, IMPORT_READ_SIZE);
		if (n < 0) {
			imp->pipe->read_errno = errno;
			archive_set_error(a, errno, "reading: %s", strerror(errno));
			return -1;
		}
		imp->in_off = 0;
		imp->in_len = (size_t)n;
		if (n == 0)
			imp->pipe->input_ended = true;
	}
	return next_slice(imp, ret_buf);
}

/* Waits for a free slot; false when the pipe was cancelled. */
static bool pipe_wait_slot(struct decode_pipe *pipe, unsigned *ret_slot)
{
	pthread_mutex_lock(&pipe->lock);
	while (!pipe->cancel && pipe->count == PIPE_SLOTS)
		pthread_cond_wait(&pipe->cond, &pipe->lock);
	bool ok = !pipe->cancel;
	*ret_slot = (pipe->head + pipe->count) % PIPE_SLOTS;
	pthread_mutex_unlock(&pipe->lock);
	return ok;
}

/* Hands the slot being filled to the archive's side. */
static void pipe_publish(struct decode_pipe *pipe)
{
	pthread_mutex_lock(&pipe->lock);
	pipe->sizes[pipe->slot] = pipe->fill;
	pipe->count++;
	pthread_cond_broadcast(&pipe->cond);
	pthread_mutex_unlock(&pipe->lock);
	pipe->open = false;
	pipe->fill = 0;
}

static void *decoder_main(void *arg)
{
	struct cairn_import *imp = arg;
	struct decode_pipe *pipe = imp->pipe;
	bool failed = false;
	char message[sizeof(pipe->message)] = "";
	struct archive_entry *entry;

	if (archive_read_open1(pipe->decoder) != ARCHIVE_OK ||
	    archive_read_next_header(pipe->decoder, &entry) < ARCHIVE_WARN) {
		failed = true;
		cairn_format(message, sizeof(message), "%s", archive_error_string(pipe->decoder));
	}
	/* Blocks as the filter yields them, gathered into slots: every byte
	 * decoded before a failure reaches the archive's side before the
	 * failure does, so its message names the entry the stream broke in. */
	while (!failed) {
		const void *data;
		size_t size;
		la_int64_t offset;
		int r = archive_read_data_block(pipe->decoder, &data, &size, &offset);
		if (r == ARCHIVE_EOF)
			break;
		if (r < ARCHIVE_WARN) {
			failed = true;
			cairn_format(message, sizeof(message), "%s",
				     archive_error_string(pipe->decoder));
			break;
		}
		const uint8_t *p = data;
		while (size > 0) {
			if (!pipe->open && !pipe_wait_slot(pipe, &pipe->slot))
				goto cancelled;
			pipe->open = true;
			size_t room = PIPE_BLOCK_SIZE - pipe->fill;
			size_t n = room < size ? room : size;
			memcpy(pipe->blocks[pipe->slot] + pipe->fill, p, n);
			pipe->fill += n;
			p += n;
			size -= n;
			if (pipe->fill == PIPE_BLOCK_SIZE)
				pipe_publish(pipe);
		}
	}
	if (pipe->open && pipe->fill > 0)
		pipe_publish(pipe);
cancelled:
	pthread_mutex_lock(&pipe->lock);
	if (failed) {
		pipe->error = pipe->read_errno ? pipe->read_errno : EBADMSG;
		/* A decoder that ran out of input says so in its own words
		 * ("No progress is possible"): name the cause. */
		cairn_format(pipe->message, sizeof(pipe->message), "%s%s",
			     pipe->input_ended && !pipe->read_errno &&
					     !strcasestr(message, "truncat")
				     ? "truncated: "
				     : "",
			     message[0] ? message : "cannot decode the stream");
	}
	pipe->done = true;
	pthread_cond_broadcast(&pipe->cond);
	pthread_mutex_unlock(&pipe->lock);
	return NULL;
}

/* The archive's read callback in a pipeline: the decoder's next block. */
static la_ssize_t on_pipe_read(struct archive *a, void *userdata, const void **ret_buf)
{
	struct cairn_import *imp = userdata;
	struct decode_pipe *pipe = imp->pipe;

	if (ratio_gate(imp, a) < 0)
		return -1;
	import_progress(imp);
	pthread_mutex_lock(&pipe->lock);
	if (pipe->reading) {
		pipe->head = (pipe->head + 1) % PIPE_SLOTS;
		pipe->count--;
		pipe->reading = false;
		pthread_cond_broadcast(&pipe->cond);
	}
	while (pipe->count == 0 && !pipe->done)
		pthread_cond_wait(&pipe->cond, &pipe->lock);
	la_ssize_t n = 0;
	if (pipe->count > 0) {
		pipe->reading = true;
		*ret_buf = pipe->blocks[pipe->head];
		n = (la_ssize_t)pipe->sizes[pipe->head];
	} else if (pipe->error) {
		/* A read error keeps its errno; bad data is EBADMSG. */
		imp->read_errno = pipe->read_errno;
		archive_set_error(a, pipe->read_errno ? pipe->read_errno : EBADMSG, "%s",
				  pipe->message);
		n = -1;
	}
	pthread_mutex_unlock(&pipe->lock);
	return n;
}

/* Whether the input starts like a stream that a filter decodes. The bytes
 * looked at stay in the input (in_buf for a stream). */
static bool input_is_compressed(struct cairn_import *imp)
{
	static const struct {
		uint8_t len;
		uint8_t magic[6];
	} magics[] = {
		{2, {0x1f, 0x8b}},                     /* gzip */
		{6, {0xfd, '7', 'z', 'X', 'Z', 0x00}}, /* xz */
		{3, {'B', 'Z', 'h'}},                  /* bzip2 */
		{4, {0x28, 0xb5, 0x2f, 0xfd}},         /* zstd */
		{4, {0x04, 0x22, 0x4d, 0x18}},         /* lz4 */
		{4, {'L', 'Z', 'I', 'P'}},             /* lzip */
	};
	uint8_t head[6];
	size_t have;

	if (imp->seekable) {
		ssize_t n = cairn_pread_full(imp->fd, head, sizeof(head), 0);
		if (n < 0)
			return false;
		have = (size_t)n;
	} else {
		while (imp->in_len < sizeof(head)) {
			ssize_t n = read(imp->fd, imp->in_buf + imp->in_len,
					 IMPORT_READ_SIZE - imp->in_len);
			if (n < 0 && errno == EINTR)
				continue;
			if (n <= 0)
				break;
			imp->in_len += (size_t)n;
		}
		have = imp->in_len < sizeof(head) ? imp->in_len : sizeof(head);
		memcpy(head, imp->in_buf, have);
	}
	for (size_t i = 0; i < ARRAY_SIZE(magics); i++)
		if (have >= magics[i].len && memcmp(head, magics[i].magic, magics[i].len) == 0)
			return true;
	return false;
}

static void pipe_free(struct decode_pipe *pipe)
{
	if (!pipe)
		return;
	if (pipe->decoder)
		archive_read_free(pipe->decoder);
	for (unsigned i = 0; i < PIPE_SLOTS; i++)
		free(pipe->blocks[i]);
	if (pipe->wake_fd >= 0)
		close(pipe->wake_fd);
	pthread_mutex_destroy(&pipe->lock);
	pthread_cond_destroy(&pipe->cond);
	free(pipe);
}

static void add_filters(struct archive *a);

/* Starts the decoder thread; on failure the caller reads the input itself. */
static int pipe_start(struct cairn_import *imp)
{
	struct decode_pipe *pipe = calloc(1, sizeof(*pipe));

	if (!pipe)
		return -ENOMEM;
	pthread_mutex_init(&pipe->lock, NULL);
	pthread_cond_init(&pipe->cond, NULL);
	pipe->wake_fd = eventfd(0, EFD_CLOEXEC);
	if (pipe->wake_fd < 0) {
		int r = -errno;
		pipe_free(pipe);
		return r;
	}
	for (unsigned i = 0; i < PIPE_SLOTS; i++)
		if (!(pipe->blocks[i] = malloc(PIPE_BLOCK_SIZE))) {
			pipe_free(pipe);
			return -ENOMEM;
		}
	pipe->decoder = archive_read_new();
	if (!pipe->decoder) {
		pipe_free(pipe);
		return -ENOMEM;
	}
	add_filters(pipe->decoder);
	archive_read_support_format_raw(pipe->decoder);
	archive_read_set_callback_data(pipe->decoder, imp);
	archive_read_set_read_callback(pipe->decoder, on_decoder_read);
	imp->pipe = pipe;
	int r = -pthread_create(&pipe->thread, NULL, decoder_main, imp);
	if (r < 0) {
		imp->pipe = NULL;
		pipe_free(pipe);
	}
	return r;
}

/* Stops the decoder (it may be blocked on a full ring, or still decoding
 * what follows the archive's end) and waits for it. */
static void pipe_stop(struct cairn_import *imp)
{
	struct decode_pipe *pipe = imp->pipe;

	if (!pipe)
		return;
	pthread_mutex_lock(&pipe->lock);
	pipe->cancel = true;
	pthread_cond_broadcast(&pipe->cond);
	pthread_mutex_unlock(&pipe->lock);
	uint64_t one = 1;
	(void)!write(pipe->wake_fd, &one, sizeof(one));
	pthread_join(pipe->thread, NULL);
}

static la_int64_t on_seek(struct archive *a, void *userdata, la_int64_t offset, int whence)
{
	struct cairn_import *imp = userdata;

	/* The fd is ahead of libarchive by what in_buf still holds. */
	if (whence == SEEK_CUR) {
		offset += (la_int64_t)imp->in_pos;
		whence = SEEK_SET;
	}
	off_t pos = lseek(imp->fd, offset, whence);
	if (pos < 0) {
		imp->read_errno = errno;
		archive_set_error(a, errno, "seeking: %s", strerror(errno));
		return ARCHIVE_FATAL;
	}
	imp->in_off = imp->in_len = 0;
	imp->in_pos = (uint64_t)pos;
	return pos;
}

static la_int64_t on_skip(struct archive *a, void *userdata, la_int64_t request)
{
	struct cairn_import *imp = userdata;
	off_t pos = lseek(imp->fd, (off_t)imp->in_pos + request, SEEK_SET);

	if (pos < 0)
		return 0; /* libarchive reads through instead */
	imp->in_off = imp->in_len = 0;
	imp->in_pos = (uint64_t)pos;
	return request;
}

/* ---- the source id ---- */

/* Hashes what libarchive did not read in order: the tail of a regular file,
 * or the rest of a stream (a tar's trailing padding). */
static int hash_rest(struct cairn_import *imp)
{
	/* A stream's bytes read but not handed out come first. */
	if (!imp->seekable && imp->in_off < imp->in_len) {
		cairn_file_hasher_update(&imp->source_hasher, imp->in_buf + imp->in_off,
					 imp->in_len - imp->in_off);
		imp->hashed += imp->in_len - imp->in_off;
		imp->in_off = imp->in_len;
	}
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

static void add_filters(struct archive *a)
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
	add_filters(a);
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
	archive_read_set_read_callback(a, imp->pipe ? on_pipe_read : on_read);
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
	/* In a pipeline, the archive's own handle may have found a filter
	 * inside the decoded stream (a .tar.gz.gz): those come first. */
	struct archive *handles[] = {a, imp->pipe ? imp->pipe->decoder : NULL};
	for (size_t h = 0; h < ARRAY_SIZE(handles) && handles[h]; h++)
		record_filters(out, handles[h]);
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

static int read_entries(struct cairn_import *imp, struct archive *a)
{
	struct archive_entry *entry;
	bool retrying = false;

	for (;;) {
		imp->entry_path = NULL;
		int r = archive_read_next_header(a, &entry);
		if (r == ARCHIVE_EOF)
			return 0;
		/* A damaged header (a size that lied, say): libarchive looks for
		 * the next good one, as bsdtar -x does; say so once per stretch. */
		if (r == ARCHIVE_RETRY && !retrying) {
			import_warn(imp, "after %llu entries: %s; skipped to the next good header",
				    (unsigned long long)imp->entries, archive_error_string(a));
			imp->skipped++;
		}
		retrying = r == ARCHIVE_RETRY;
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
		imp->entry_path = archive_entry_pathname(entry);
		cairn_format(imp->last_entry, sizeof(imp->last_entry), "%s",
			     imp->entry_path ? imp->entry_path : "");
		if (r == ARCHIVE_WARN)
			import_warn(imp, "%s", archive_error_string(a));
		r = import_check_ratio(imp, a);
		if (r == 0)
			r = import_entry(imp, a, entry);
		if (r == 0)
			r = drain_entry(imp, a);
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
	/* Without a thread, the same bytes are decoded in this one. */
	if (input_is_compressed(imp))
		(void)pipe_start(imp);
	struct archive *a = archive_new(imp);
	if (!a)
		r = import_fail(imp, -ENOMEM, "out of memory");
	else if (archive_read_open1(a) != ARCHIVE_OK)
		r = import_fail(imp, imp->read_errno ? -imp->read_errno : -EBADMSG, "%s",
				archive_error_string(a));
	else
		r = read_entries(imp, a);
	pipe_stop(imp);
	if (r == 0) {
		record_format(imp, a);
		imp->entry_path = NULL;
		r = hash_rest(imp);
	}
	if (a)
		archive_read_free(a);
	pipe_free(TAKE_PTR(imp->pipe));
	if (r < 0)
		return r;
	cairn_file_hasher_final(&imp->source_hasher, &id);
	memcpy(imp->source.archive_id, id.bytes, CAIRN_ID_SIZE);
	imp->source.size = imp->hashed;
	imp->imported = true;
	import_progress(imp);
	return 0;
}
