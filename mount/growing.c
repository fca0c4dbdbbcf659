/* growing.c: a blob while it is made, shared with the reads of its file.
 * The background worker writes a large file's blob run by run, each run
 * checked against its id before it is written; meanwhile the kernel reads
 * the same file through the daemon (a fallback open). A read of bytes the
 * worker has written reads them back from the blob's temp file instead of
 * fetching and decompressing the same chunks a second time (the chunk
 * cache holds only the last few MiB of them). A read ahead of the worker
 * takes the chunk path and does not wait for it: the worker is bound by
 * the disk it writes to, the reader need not be, and the chunks the reader
 * decompresses are in the cache when the worker comes to them.
 */
#include "mount_internal.h"

#include <fcntl.h>

struct growing {
	struct cairn_id file_id;
	/* The blob's file (its temp file while it is made), our own descriptor,
	 * set by the worker before done moves: reads use pread only. */
	atomic_int fd;
	uint64_t size;
	atomic_uint refs;
	_Atomic uint64_t done; /* bytes written, each run checked before */
	atomic_bool failed;
};

int growing_new(const struct cairn_id *file_id, uint64_t size, struct growing **ret)
{
	struct growing *g = calloc(1, sizeof(*g));

	if (!g)
		return -ENOMEM;
	g->file_id = *file_id;
	g->size = size;
	atomic_init(&g->fd, -1);
	atomic_init(&g->refs, 1);
	atomic_init(&g->done, 0);
	atomic_init(&g->failed, false);
	*ret = g;
	return 0;
}

int growing_attach(struct growing *g, int fd)
{
	if (atomic_load(&g->fd) >= 0)
		return 0;
	int own = fcntl(fd, F_DUPFD_CLOEXEC, 0);
	if (own < 0)
		return -errno;
	atomic_store(&g->fd, own);
	return 0;
}

struct growing *growing_ref(struct growing *g)
{
	atomic_fetch_add(&g->refs, 1);
	return g;
}

void growing_put(struct growing *g)
{
	if (!g || atomic_fetch_sub(&g->refs, 1) != 1)
		return;
	if (atomic_load(&g->fd) >= 0)
		close(atomic_load(&g->fd));
	free(g);
}

const struct cairn_id *growing_file_id(const struct growing *g)
{
	return &g->file_id;
}

void growing_advance(void *userdata, uint64_t done)
{
	struct growing *g = userdata;

	atomic_store(&g->done, done);
}

void growing_end(struct growing *g, bool ok)
{
	atomic_store(&g->failed, !ok || atomic_load(&g->done) != g->size);
}

ssize_t growing_read(struct growing *g, uint64_t offset, void *buf, size_t len)
{
	if (offset >= g->size || len == 0)
		return 0;
	uint64_t end = len < g->size - offset ? offset + len : g->size;

	/* done is stored after the write returned: the bytes below it are in
	 * the file for any read that sees it. */
	if (atomic_load(&g->failed) || atomic_load(&g->done) < end)
		return -EAGAIN;
	ssize_t n = cairn_pread_full(atomic_load(&g->fd), buf, (size_t)(end - offset), offset);
	return n == (ssize_t)(end - offset) ? n : -EAGAIN;
}
