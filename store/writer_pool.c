/* writer_pool.c: the writer's compression worker pool. The calling thread
 * fills groups (one frame's worth of new chunks) and queues them; each
 * worker takes one, compresses it with its own zstd context and, under
 * w->lock, appends it to the open pack (pack_write.c), then marks its
 * members stored or failed. The first failure is sticky: the calling thread
 * sees it at its next submit, wait or commit. Groups are recycled through a
 * free list, and their number is bounded, which bounds the writer's memory.
 */
#include "writer_internal.h"

#include <string.h>
#include <sys/resource.h>
#include <zstd.h>

#define WORKER_NICE 5

struct worker_ctx {
	ZSTD_CCtx *cctx;
	uint8_t *record; /* header room + compress bound */
	size_t record_cap;
	uint8_t *scratch; /* a delta's plain frame: compress bound of chunk_max */
};

static uint32_t compress_group(struct cairn_writer *w, struct worker_ctx *ctx,
			       const struct group *group, uint8_t *ret_codec)
{
	size_t head = record_head_size(group->count);
	uint8_t *payload = ctx->record + head;
	if (group->delta && group->delta->active && group->count == 1)
		return delta_compress(w, ctx->cctx, group, payload, ctx->record_cap - head,
				      ctx->scratch, ret_codec);
	size_t n = ZSTD_compressCCtx(ctx->cctx, payload, ctx->record_cap - head, group->data,
				     group->size, w->store->params.zstd_level);

	/* Frames that do not shrink are stored raw: cheaper to read. */
	if (ZSTD_isError(n) || n >= group->size) {
		memcpy(payload, group->data, group->size);
		*ret_codec = CODEC_RAW;
		return group->size;
	}
	*ret_codec = CODEC_ZSTD;
	return (uint32_t)n;
}

static void worker_finish(struct cairn_writer *w, struct worker_ctx *ctx, struct group *group,
			  uint32_t stored_size, uint8_t codec)
{
	int state = ENTRY_FAILED;

	pthread_mutex_lock(&w->lock);
	if (w->failure == 0) {
		int r = pack_append(w, group, ctx->record, stored_size, codec);
		if (r < 0)
			w->failure = r;
		else
			state = ENTRY_STORED;
	}
	for (unsigned i = 0; i < group->count; i++)
		atomic_store_explicit(&group->members[i]->state, state, memory_order_release);
	w->free_groups[w->free_count++] = group;
	w->in_flight--;
	pthread_cond_broadcast(&w->done_cond);
	pthread_mutex_unlock(&w->lock);
}

static void *worker_main(void *arg)
{
	struct cairn_writer *w = arg;
	struct worker_ctx ctx = {.cctx = ZSTD_createCCtx()};

	/* The calling thread (reading the archive), the cutters and the
	 * sequencer (writer_pipe.c) are the critical path whenever compression
	 * keeps up; workers yield the CPU to them and take what is left. When
	 * they fall behind, the sequencer blocks on the full queue and they get
	 * every core anyway. Linux keeps a nice value per thread. */
	pthread_setname_np(pthread_self(), "cairn-zstd");
	errno = 0;
	int nice_now = getpriority(PRIO_PROCESS, 0);
	if (errno == 0)
		setpriority(PRIO_PROCESS, (id_t)gettid(), nice_now + WORKER_NICE);

	ctx.record_cap = pack_scratch_size(&w->store->params);
	ctx.record = malloc(ctx.record_cap);
	ctx.scratch = malloc(ZSTD_compressBound(w->store->params.chunk_max));
	pthread_mutex_lock(&w->lock);
	if ((!ctx.cctx || !ctx.record || !ctx.scratch) && w->failure == 0) {
		w->failure = -ENOMEM;
		cairn_format(w->failure_msg, sizeof(w->failure_msg), "out of memory");
	}
	for (;;) {
		while (!w->stopping && w->queue_len == 0)
			pthread_cond_wait(&w->work_cond, &w->lock);
		if (w->queue_len == 0)
			break;
		struct group *group = w->queue[w->queue_head];
		w->queue_head = (w->queue_head + 1) % w->queue_cap;
		w->queue_len--;
		pthread_cond_broadcast(&w->done_cond);
		pthread_mutex_unlock(&w->lock);

		uint8_t codec = CODEC_RAW;
		uint32_t stored =
			ctx.record && ctx.scratch ? compress_group(w, &ctx, group, &codec) : 0;
		worker_finish(w, &ctx, group, stored, codec);
		pthread_mutex_lock(&w->lock);
	}
	pthread_mutex_unlock(&w->lock);
	ZSTD_freeCCtx(ctx.cctx);
	free(ctx.record);
	free(ctx.scratch);
	return NULL;
}

int check_failure_locked(struct cairn_writer *w)
{
	if (w->failure < 0)
		writer_set_error(w, "%s", w->failure_msg);
	return w->failure;
}

int submit_group(struct cairn_writer *w, struct group *group)
{
	for (unsigned i = 0; i < group->count; i++)
		group->members[i]->in_open_group = false;
	pthread_mutex_lock(&w->lock);
	while (w->queue_len == w->queue_cap && w->failure == 0)
		pthread_cond_wait(&w->done_cond, &w->lock);
	int r = check_failure_locked(w);
	if (r == 0) {
		size_t slot = (w->queue_head + w->queue_len) % w->queue_cap;
		w->queue[slot] = group;
		w->queue_len++;
		w->in_flight++;
		pthread_cond_signal(&w->work_cond);
	} else {
		for (unsigned i = 0; i < group->count; i++)
			atomic_store(&group->members[i]->state, ENTRY_FAILED);
		w->free_groups[w->free_count++] = group;
	}
	pthread_mutex_unlock(&w->lock);
	return r;
}

int wait_idle(struct cairn_writer *w)
{
	pthread_mutex_lock(&w->lock);
	while (w->in_flight > 0)
		pthread_cond_wait(&w->done_cond, &w->lock);
	int r = check_failure_locked(w);
	pthread_mutex_unlock(&w->lock);
	return r;
}

/* Returns an empty group, or NULL when out of memory. At most group_limit
 * exist: every one is queued, with a worker, free, or held by the writer. */
struct group *group_get(struct cairn_writer *w)
{
	struct group *group = NULL;

	pthread_mutex_lock(&w->lock);
	if (w->free_count > 0)
		group = w->free_groups[--w->free_count];
	else if (w->group_count < w->group_limit && (group = calloc(1, sizeof(*group)))) {
		group->data = malloc(w->store->params.chunk_max);
		if (group->data)
			w->group_count++;
		else
			free(TAKE_PTR(group));
	}
	pthread_mutex_unlock(&w->lock);
	if (group) {
		group->size = 0;
		group->count = 0;
		if (group->delta)
			group->delta->active = false;
	}
	return group;
}

void groups_trim(struct cairn_writer *w)
{
	size_t max = w->store->params.chunk_max;

	pthread_mutex_lock(&w->lock);
	for (size_t i = 0; i < w->free_count; i++) {
		struct group *group = w->free_groups[i];
		cairn_drop_pages(group->data, max);
		delta_job_release(group->delta);
	}
	pthread_mutex_unlock(&w->lock);
}

void group_free(struct group *group)
{
	if (group) {
		delta_job_release(group->delta);
		free(group->delta);
		free(group->data);
		free(group);
	}
}

int writer_start_threads(struct cairn_writer *w)
{
	int r = 0;

	for (unsigned i = 0; r == 0 && i < w->thread_count; i++) {
		r = -pthread_create(&w->threads[i], NULL, worker_main, w);
		if (r == 0)
			w->threads_started++;
		else
			store_set_error(w->store, "cannot start a thread: %s", strerror(-r));
	}
	return r;
}

void writer_stop_threads(struct cairn_writer *w)
{
	pthread_mutex_lock(&w->lock);
	w->stopping = true;
	pthread_cond_broadcast(&w->work_cond);
	pthread_mutex_unlock(&w->lock);
	for (unsigned i = 0; i < w->threads_started; i++)
		pthread_join(w->threads[i], NULL);
}
