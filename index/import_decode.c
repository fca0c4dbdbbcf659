/* import_decode.c: an import's decoding on a thread of its own. A
 * compressed stream is taken apart one layer at a time on its own thread,
 * into a ring of blocks that the archive's handle reads as an uncompressed
 * stream: gzip and lz4 by zlib and liblz4, which check their checksums
 * (import_layers.c), the others (xz, bzip2, zstd, lzip, compress, rpm, lz4's
 * legacy frames) each by a libarchive handle (format "raw") with that one
 * filter. The stream is decoded to its end even when the archive ends
 * before it (import_pipe_finish), so the checks at its end are made. The
 * thread calling cairn_import_archive then parses entries, cuts, hashes and
 * indexes while the decoder runs: for .tar.xz the decoder alone is the
 * critical path, as it is for bsdtar. The decoder reads the input through
 * input_next (hashing it, as import.c's on_read does); the ratio bound
 * and the progress are checked on the archive's side, against the raw bytes
 * the decoder has read, and the ring's bound keeps the decoder at most
 * PIPE_SLOTS blocks ahead of that check.
 */
#include "import_internal.h"

#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#define PIPE_SLOTS      8
#define PIPE_BLOCK_SIZE (256u << 10)

#define PIPE_LAYERS_MAX 8

struct decode_pipe {
	struct decode_layer layers[PIPE_LAYERS_MAX]; /* [0]: the input */
	unsigned layer_count;
	pthread_t thread;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	uint8_t *blocks[PIPE_SLOTS];
	size_t sizes[PIPE_SLOTS];
	unsigned head, count; /* full blocks: [head, head + count) */
	bool reading;         /* the archive's side holds the block at head */
	bool done, cancel;
	int error;   /* the decoder failed (EBADMSG, or read_errno) */
	bool failed; /* the decoder's thread: failure holds why */
	char failure[512];
	int read_errno;   /* reading the input failed (decoder's thread) */
	bool input_ended; /* the decoder read to the end of the input */
	int wake_fd;      /* an eventfd: import_pipe_stop wakes a decoder blocked in read */
	char message[512];
	/* the decoder thread's own: the slot it fills */
	unsigned slot;
	size_t fill;
	bool open;
	struct cairn_import *imp;
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
		n = import_input_read(imp, buf, size);
	while (n < 0 && errno == EINTR);
	return n;
}

/* ---- the layers ---- */

int import_layer_fail(struct decode_layer *l, const char *fmt, ...)
{
	struct decode_pipe *pipe = l->pipe;
	va_list ap;

	if (pipe->failed)
		return -1; /* a layer above a failed one: the first says why */
	va_start(ap, fmt);
	vsnprintf(pipe->failure, sizeof(pipe->failure), fmt, ap);
	va_end(ap);
	pipe->failed = true;
	return -1;
}

int import_layer_read(struct decode_layer *l, const uint8_t **ret, size_t *ret_size)
{
	if (l->head_off < l->head_len) {
		*ret = l->head + l->head_off;
		*ret_size = l->head_len - l->head_off;
		l->head_off = l->head_len;
		return 1;
	}
	if (l->rest_len > 0) {
		*ret = l->rest;
		*ret_size = l->rest_len;
		l->rest_len = 0;
		return 1;
	}
	return l->next(l, ret, ret_size);
}

/* Gathers the first want (<= 8) bytes of l into l->head, or fewer when l
 * ends before; nothing of l has been handed out yet. */
static int layer_peek(struct decode_layer *l, size_t want)
{
	while (l->head_len < want && l->rest_len == 0) {
		const uint8_t *p;
		size_t n;
		int r = l->next(l, &p, &n);
		if (r <= 0)
			return r;
		size_t take = n < want - l->head_len ? n : want - l->head_len;
		memcpy(l->head + l->head_len, p, take);
		l->head_len += take;
		l->rest = p + take;
		l->rest_len = n - take;
	}
	return 0;
}

/* The input: read(2) on the decoder's thread, each slice hashed. */
static int input_next(struct decode_layer *l, const uint8_t **ret, size_t *ret_size)
{
	struct cairn_import *imp = l->pipe->imp;

	if (imp->in_off == imp->in_len) {
		ssize_t n = decoder_read(imp, imp->in_buf, IMPORT_READ_SIZE);
		if (n < 0) {
			imp->pipe->read_errno = errno;
			return import_layer_fail(l, "reading: %s", strerror(errno));
		}
		imp->in_off = 0;
		imp->in_len = (size_t)n;
		if (n == 0)
			imp->pipe->input_ended = true;
	}
	const void *slice;
	la_ssize_t n = import_next_slice(imp, &slice);
	if (n == 0)
		return 0;
	*ret = slice;
	*ret_size = (size_t)n;
	return 1;
}

/* A libarchive layer: one filter, format raw, reading the layer below. */
static la_ssize_t on_layer_read(struct archive *a, void *userdata, const void **ret_buf)
{
	const uint8_t *p;
	size_t n;
	int r = import_layer_read(userdata, &p, &n);

	if (r < 0) {
		archive_set_error(a, EBADMSG, "the layer below failed");
		return -1;
	}
	if (r == 0)
		return 0;
	*ret_buf = p;
	return (la_ssize_t)n;
}

/* A decoder that ran out of input says so in its own words ("No progress
 * is possible"): name the cause. */
static int archive_layer_fail(struct decode_layer *l)
{
	const char *msg = archive_error_string(l->archive);

	if (!msg)
		msg = "cannot decode the stream";
	return import_layer_fail(
		l, "%s%s", l->pipe->input_ended && !strcasestr(msg, "truncat") ? "truncated: " : "",
		msg);
}

static int archive_next(struct decode_layer *l, const uint8_t **ret, size_t *ret_size)
{
	for (;;) {
		const void *data;
		size_t size;
		la_int64_t offset;
		int r = archive_read_data_block(l->archive, &data, &size, &offset);
		if (r == ARCHIVE_EOF)
			return 0;
		if (r < ARCHIVE_WARN)
			return archive_layer_fail(l);
		if (size > 0) {
			*ret = data;
			*ret_size = size;
			return 1;
		}
	}
}

static void archive_release(struct decode_layer *l)
{
	archive_read_free(l->archive);
	l->archive = NULL;
}

static int archive_layer_init(struct decode_layer *l, int (*enable)(struct archive *))
{
	struct archive_entry *entry;

	l->archive = archive_read_new();
	if (!l->archive)
		return import_layer_fail(l, "out of memory");
	l->next = archive_next;
	l->release = archive_release;
	enable(l->archive);
	archive_read_support_format_raw(l->archive);
	archive_read_set_callback_data(l->archive, l->below);
	archive_read_set_read_callback(l->archive, on_layer_read);
	if (archive_read_open1(l->archive) != ARCHIVE_OK ||
	    archive_read_next_header(l->archive, &entry) < ARCHIVE_WARN)
		return archive_layer_fail(l);
	return 0;
}

enum layer_kind { LAYER_GZIP, LAYER_LZ4, LAYER_ARCHIVE };

static const struct layer_magic {
	uint8_t len;
	uint8_t magic[6];
	enum layer_kind kind;
	int (*enable)(struct archive *);
} layer_magics[] = {
	{2, {0x1f, 0x8b}, LAYER_GZIP, NULL},
	{4, {0x04, 0x22, 0x4d, 0x18}, LAYER_LZ4, NULL},
	{6, {0xfd, '7', 'z', 'X', 'Z', 0x00}, LAYER_ARCHIVE, archive_read_support_filter_xz},
	{3, {'B', 'Z', 'h'}, LAYER_ARCHIVE, archive_read_support_filter_bzip2},
	{4, {0x28, 0xb5, 0x2f, 0xfd}, LAYER_ARCHIVE, archive_read_support_filter_zstd},
	{4, {'L', 'Z', 'I', 'P'}, LAYER_ARCHIVE, archive_read_support_filter_lzip},
	{4, {0x02, 0x21, 0x4c, 0x18}, LAYER_ARCHIVE, archive_read_support_filter_lz4}, /* legacy */
	{2, {0x1f, 0x9d}, LAYER_ARCHIVE, archive_read_support_filter_compress},
	{4, {0xed, 0xab, 0xee, 0xdb}, LAYER_ARCHIVE, archive_read_support_filter_rpm},
};

static const struct layer_magic *find_magic(const uint8_t *head, size_t have)
{
	for (size_t i = 0; i < ARRAY_SIZE(layer_magics); i++)
		if (have >= layer_magics[i].len &&
		    memcmp(head, layer_magics[i].magic, layer_magics[i].len) == 0)
			return &layer_magics[i];
	return NULL;
}

/* Takes off layers while the top one's output starts like a compressed
 * stream (a .tar.gz.xz, an rpm's payload). Returns 0 or -1. */
static int build_layers(struct decode_pipe *pipe)
{
	for (;;) {
		struct decode_layer *top = &pipe->layers[pipe->layer_count - 1];
		if (layer_peek(top, 6) < 0)
			return -1;
		const struct layer_magic *m = find_magic(top->head, top->head_len);
		if (!m)
			return 0;
		if (pipe->layer_count == PIPE_LAYERS_MAX)
			return import_layer_fail(top, "more than %u layers of compression",
						 PIPE_LAYERS_MAX - 1);
		struct decode_layer *l = &pipe->layers[pipe->layer_count++];
		*l = (struct decode_layer){.below = top, .pipe = pipe};
		int r = m->kind == LAYER_GZIP  ? import_gzip_layer_init(l)
			: m->kind == LAYER_LZ4 ? import_lz4_layer_init(l)
					       : archive_layer_init(l, m->enable);
		if (r < 0)
			return -1;
		/* Its filter did not take it (a tar whose first name starts
		 * "BZh"): the handle passes the bytes on as they are. */
		if (l->archive && archive_filter_count(l->archive) < 2)
			return 0;
	}
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

/* Copies a block into slots; false when the pipe was cancelled. */
static bool pipe_put(struct decode_pipe *pipe, const uint8_t *p, size_t size)
{
	while (size > 0) {
		if (!pipe->open && !pipe_wait_slot(pipe, &pipe->slot))
			return false;
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
	return true;
}

static void *decoder_main(void *arg)
{
	struct decode_pipe *pipe = arg;
	pthread_setname_np(pthread_self(), "cairn-decode");
	int r = build_layers(pipe);
	struct decode_layer *top = &pipe->layers[pipe->layer_count - 1];

	/* Blocks as the top layer yields them, gathered into slots: every
	 * byte decoded before a failure reaches the archive's side before the
	 * failure does, so its message names the entry the stream broke in. */
	while (r == 0) {
		const uint8_t *p;
		size_t size;
		r = import_layer_read(top, &p, &size);
		if (r <= 0)
			break;
		if (!pipe_put(pipe, p, size))
			goto cancelled;
		r = 0;
	}
	if (pipe->open && pipe->fill > 0)
		pipe_publish(pipe);
cancelled:
	pthread_mutex_lock(&pipe->lock);
	if (r < 0) {
		pipe->error = pipe->read_errno ? pipe->read_errno : EBADMSG;
		cairn_format(pipe->message, sizeof(pipe->message), "%s",
			     pipe->failed ? pipe->failure : "cannot decode the stream");
	}
	pipe->done = true;
	pthread_cond_broadcast(&pipe->cond);
	pthread_mutex_unlock(&pipe->lock);
	return NULL;
}

/* The archive's read callback in a pipeline: the decoder's next block. */
la_ssize_t import_pipe_read(struct archive *a, void *userdata, const void **ret_buf)
{
	struct cairn_import *imp = userdata;
	struct decode_pipe *pipe = imp->pipe;

	if (import_ratio_gate(imp, a) < 0)
		return -1;
	import_progress(imp);
	pthread_mutex_lock(&pipe->lock);
	if (pipe->reading) {
		pipe->head = (pipe->head + 1) % PIPE_SLOTS;
		pipe->count--;
		pipe->reading = false;
		pthread_cond_broadcast(&pipe->cond);
	}
	if (pipe->count == 0 && !pipe->done) {
		/* The decoder is behind (a stalled pipe, say): the store writer
		 * hands on what it holds meanwhile. */
		pthread_mutex_unlock(&pipe->lock);
		cairn_writer_files_kick(imp->writer);
		pthread_mutex_lock(&pipe->lock);
	}
	while (pipe->count == 0 && !pipe->done)
		pthread_cond_wait(&pipe->cond, &pipe->lock);
	la_ssize_t n = 0;
	if (pipe->count > 0) {
		pipe->reading = true;
		*ret_buf = pipe->blocks[pipe->head];
		n = (la_ssize_t)pipe->sizes[pipe->head];
		import_rar_feed(imp, *ret_buf, (size_t)n); /* a .rar.gz */
	} else if (pipe->error) {
		/* A read error keeps its errno; bad data is EBADMSG. */
		imp->read_errno = pipe->read_errno;
		imp->read_failed = true;
		archive_set_error(a, pipe->read_errno ? pipe->read_errno : EBADMSG, "%s",
				  pipe->message);
		n = -1;
	}
	imp->at_end = n == 0;
	pthread_mutex_unlock(&pipe->lock);
	return n;
}

/* Whether the input starts like a stream that a filter decodes. The bytes
 * looked at stay in the input (in_buf for a stream). */
bool import_input_is_compressed(struct cairn_import *imp)
{
	uint8_t head[6];
	size_t have;

	if (imp->seekable) {
		ssize_t n = import_input_pread(imp, head, sizeof(head), 0);
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
	return find_magic(head, have) != NULL;
}

void import_pipe_free(struct decode_pipe *pipe)
{
	if (!pipe)
		return;
	for (unsigned i = pipe->layer_count; i-- > 1;)
		if (pipe->layers[i].release)
			pipe->layers[i].release(&pipe->layers[i]);
	for (unsigned i = 0; i < PIPE_SLOTS; i++)
		free(pipe->blocks[i]);
	if (pipe->wake_fd >= 0)
		close(pipe->wake_fd);
	pthread_mutex_destroy(&pipe->lock);
	pthread_cond_destroy(&pipe->cond);
	free(pipe);
}

/* Starts the decoder thread. */
int import_pipe_start(struct cairn_import *imp)
{
	struct decode_pipe *pipe = calloc(1, sizeof(*pipe));

	if (!pipe)
		return -ENOMEM;
	pthread_mutex_init(&pipe->lock, NULL);
	pthread_cond_init(&pipe->cond, NULL);
	pipe->wake_fd = eventfd(0, EFD_CLOEXEC);
	if (pipe->wake_fd < 0) {
		int r = -errno;
		import_pipe_free(pipe);
		return r;
	}
	for (unsigned i = 0; i < PIPE_SLOTS; i++)
		if (!(pipe->blocks[i] = malloc(PIPE_BLOCK_SIZE))) {
			import_pipe_free(pipe);
			return -ENOMEM;
		}
	pipe->imp = imp;
	pipe->layers[0] = (struct decode_layer){.pipe = pipe, .next = input_next};
	pipe->layer_count = 1;
	imp->pipe = pipe;
	int r = -pthread_create(&pipe->thread, NULL, decoder_main, pipe);
	if (r < 0) {
		imp->pipe = NULL;
		import_pipe_free(pipe);
	}
	return r;
}

/* Stops the decoder (it may be blocked on a full ring, or still decoding
 * what follows the archive's end) and waits for it. */
void import_pipe_stop(struct cairn_import *imp)
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

/* The archive ended: the rest of the stream is read here, at most the
 * ratio bound, and its failure is the archive's (a CRC32 at its end). */
int import_pipe_finish(struct cairn_import *imp, struct archive *a)
{
	if (!imp->pipe)
		return 0;
	la_int64_t filtered = archive_filter_bytes(a, 0);
	uint64_t unpacked = imp->unpacked;
	if (filtered > 0 && (uint64_t)filtered > unpacked)
		unpacked = (uint64_t)filtered;
	for (;;) {
		const void *block;
		la_ssize_t n = import_pipe_read(a, imp, &block);
		if (n == 0)
			return 0;
		if (n < 0 && imp->stopped)
			return -imp->read_errno;
		if (n < 0)
			return import_fail_between(imp,
						   imp->read_errno ? -imp->read_errno : -EBADMSG,
						   imp->pipe->message);
		unpacked += (uint64_t)n;
		imp->unpacked = unpacked;
	}
}

static void append_filter(char *out, const char *name)
{
	size_t len = strlen(out);

	cairn_format(out + len, SNAP_FORMAT_SIZE - len, "+%s", name ? name : "?");
}

void import_pipe_record_filters(const struct cairn_import *imp, char *out)
{
	const struct decode_pipe *pipe = imp->pipe;

	if (!pipe)
		return;
	for (unsigned i = pipe->layer_count; i-- > 1;) {
		const struct decode_layer *l = &pipe->layers[i];
		if (l->name) {
			append_filter(out, l->name);
			continue;
		}
		/* the filters of its handle, the last one applied first */
		int filters = archive_filter_count(l->archive);
		for (int f = 0; f + 1 < filters; f++)
			append_filter(out, archive_filter_name(l->archive, f));
	}
}
