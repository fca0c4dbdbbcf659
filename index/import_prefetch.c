/* import_prefetch.c: a plain archive in a regular file read ahead on a
 * thread of its own. read(2) copying the page cache into the import's buffer
 * cost the reading thread (the one running libarchive and filling the store
 * writer's batches) as much CPU as everything else it did, and that thread
 * bounds how far an add scales with cores. The prefetcher preads
 * IMPORT_READ_SIZE blocks in order into a ring, ahead of libarchive; on_read
 * takes the block at the offset it wants, which is the next one unless
 * libarchive sought or skipped, and then the ring restarts there. The bytes
 * libarchive gets are those that read(2) gave at that offset; a read error
 * reaches it at the same offset, with its errno.
 */
#include "import_internal.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define PREFETCH_SLOTS 4

struct prefetch {
	struct cairn_import *imp;
	pthread_t thread;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	uint8_t *blocks[PREFETCH_SLOTS];
	ssize_t sizes[PREFETCH_SLOTS]; /* bytes, 0 at the end, -errno */
	uint64_t offsets[PREFETCH_SLOTS];
	unsigned head, count; /* filled slots from head */
	bool held;            /* the head slot is libarchive's until the next take */
	uint64_t next;        /* the offset the thread reads next */
	uint64_t generation;  /* counts restarts: a read begun before one is dropped */
	bool ended;           /* it read the end, or failed: it waits for a restart */
	bool stop;
};

static void *prefetch_main(void *arg)
{
	struct prefetch *p = arg;

	pthread_setname_np(pthread_self(), "cairn-io");
	pthread_mutex_lock(&p->lock);
	for (;;) {
		while (!p->stop && (p->ended || p->count == PREFETCH_SLOTS))
			pthread_cond_wait(&p->cond, &p->lock);
		if (p->stop)
			break;
		unsigned slot = (p->head + p->count) % PREFETCH_SLOTS;
		uint64_t offset = p->next, generation = p->generation;
		pthread_mutex_unlock(&p->lock);
		ssize_t n = import_input_pread(p->imp, p->blocks[slot], IMPORT_READ_SIZE, offset);
		pthread_mutex_lock(&p->lock);
		if (generation != p->generation)
			continue; /* restarted elsewhere meanwhile */
		p->sizes[slot] = n;
		p->offsets[slot] = offset;
		p->count++;
		if (n > 0)
			p->next += (uint64_t)n;
		else
			p->ended = true;
		pthread_cond_broadcast(&p->cond);
	}
	pthread_mutex_unlock(&p->lock);
	return NULL;
}

ssize_t import_prefetch_read(struct cairn_import *imp, uint64_t offset, const uint8_t **ret)
{
	struct prefetch *p = imp->prefetch;

	pthread_mutex_lock(&p->lock);
	if (p->held) {
		p->head = (p->head + 1) % PREFETCH_SLOTS;
		p->count--;
		p->held = false;
	}
	if (!(p->count > 0 && p->offsets[p->head] == offset) &&
	    !(p->count == 0 && !p->ended && p->next == offset)) {
		p->count = 0; /* libarchive sought: start over there */
		p->next = offset;
		p->generation++;
		p->ended = false;
	}
	pthread_cond_broadcast(&p->cond);
	while (p->count == 0)
		pthread_cond_wait(&p->cond, &p->lock);
	ssize_t n = p->sizes[p->head];
	*ret = p->blocks[p->head];
	p->held = true;
	pthread_mutex_unlock(&p->lock);
	return n;
}

int import_prefetch_start(struct cairn_import *imp)
{
	struct prefetch *p = calloc(1, sizeof(*p));

	if (!p)
		return -ENOMEM;
	for (unsigned i = 0; i < PREFETCH_SLOTS; i++)
		if (!(p->blocks[i] = malloc(IMPORT_READ_SIZE))) {
			while (i-- > 0)
				free(p->blocks[i]);
			free(p);
			return -ENOMEM;
		}
	p->imp = imp;
	p->next = imp->in_pos;
	pthread_mutex_init(&p->lock, NULL);
	pthread_cond_init(&p->cond, NULL);
	int r = -pthread_create(&p->thread, NULL, prefetch_main, p);
	if (r < 0) {
		pthread_mutex_destroy(&p->lock);
		pthread_cond_destroy(&p->cond);
		for (unsigned i = 0; i < PREFETCH_SLOTS; i++)
			free(p->blocks[i]);
		free(p);
		return r;
	}
	imp->prefetch = p;
	return 0;
}

void import_prefetch_stop(struct cairn_import *imp)
{
	struct prefetch *p = TAKE_PTR(imp->prefetch);

	if (!p)
		return;
	pthread_mutex_lock(&p->lock);
	p->stop = true;
	pthread_cond_broadcast(&p->cond);
	pthread_mutex_unlock(&p->lock);
	pthread_join(p->thread, NULL);
	/* What libarchive still holds moves to in_buf, where the rest of the
	 * import looks for it. */
	if (imp->in_cur != imp->in_buf) {
		memcpy(imp->in_buf, imp->in_cur, imp->in_len);
		imp->in_cur = imp->in_buf;
	}
	/* As if read(2) had read it: the fd stands after what was handed out. */
	(void)lseek(imp->fd, (off_t)(imp->in_pos + (imp->in_len - imp->in_off)), SEEK_SET);
	for (unsigned i = 0; i < PREFETCH_SLOTS; i++)
		free(p->blocks[i]);
	pthread_mutex_destroy(&p->lock);
	pthread_cond_destroy(&p->cond);
	free(p);
}
