/* import_decode.c: an import's decoding on a thread of its own. A
 * compressed stream (gzip, xz, bzip2, zstd, lz4, lzip) is decoded by a
 * second libarchive handle (format "raw") on its own thread, into a ring of
 * blocks that the archive's handle reads as an uncompressed stream. The
 * thread calling cairn_import_archive then parses entries, cuts, hashes and
 * indexes while the decoder runs: for .tar.xz the decoder alone is the
 * critical path, as it is for bsdtar. The decoder reads the input through
 * on_decoder_read (hashing it, as import.c's on_read does); the ratio bound
 * and the progress are checked on the archive's side, against the raw bytes
 * the decoder has read, and the ring's bound keeps the decoder at most
 * PIPE_SLOTS blocks ahead of that check.
 */
#include "import_internal.h"

#include <poll.h>
#include <pthread.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

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
	int wake_fd;      /* an eventfd: import_pipe_stop wakes a decoder blocked in read */
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
	return import_next_slice(imp, ret_buf);
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
		cairn_format(message, sizeof(message), "%s", import_la_error(pipe->decoder, ""));
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
				     import_la_error(pipe->decoder, ""));
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

void import_pipe_free(struct decode_pipe *pipe)
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

/* Starts the decoder thread; on failure the caller reads the input itself. */
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
	pipe->decoder = archive_read_new();
	if (!pipe->decoder) {
		import_pipe_free(pipe);
		return -ENOMEM;
	}
	import_add_filters(pipe->decoder);
	archive_read_support_format_raw(pipe->decoder);
	archive_read_set_callback_data(pipe->decoder, imp);
	archive_read_set_read_callback(pipe->decoder, on_decoder_read);
	imp->pipe = pipe;
	int r = -pthread_create(&pipe->thread, NULL, decoder_main, imp);
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

struct archive *import_pipe_decoder(const struct cairn_import *imp)
{
	return imp->pipe ? imp->pipe->decoder : NULL;
}
