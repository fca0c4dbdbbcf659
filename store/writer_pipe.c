/* writer_pipe.c: files through the writer as a pipeline, so the thread that
 * reads the archive does little more than copy bytes. That calling thread
 * appends each file's bytes to a batch (batch_size bytes, many files or a
 * piece of one) and hands full batches on. Cutter threads take batches as
 * they come, cut every piece with the chunker and prepare each chunk
 * (chunk_prepare: its id). A cut point depends on where the chunk before it
 * began, so a piece that continues a file from an earlier batch is cut as if
 * a chunk began at its start. The sequencer takes the batches strictly in
 * order and carries the real chunker state across each boundary: it re-cuts
 * from there until a real cut falls on one of the cutter's (past a shared cut
 * both agree, the state being reset there; it takes a chunk or two on
 * ordinary data) and takes the cutter's chunks from then on. Cut points,
 * chunk lists and snapshots are therefore those of one sequential pass (data
 * that never resynchronises, say long runs of one byte cut only at
 * chunk_max, is cut by the sequencer alone: slower, never different). The
 * sequencer then deduplicates and groups every chunk in file order
 * (writer_chunks.c), exactly as one pass did, and queues each finished
 * file's chunk list for the calling thread, which collects the results
 * during its next calls and hands them to the file callback in order.
 */
#include "writer_internal.h"

#include <stdio.h>
#include <string.h>

/* 512 KiB: against 1 MiB, 1.5 MB less peak memory on 2 cores, against 2
 * MiB 6.5 MB, against 4 MiB 17 MB, with the reading thread's CPU share the
 * same (0.08 of the add's on linux 6.1; docs/BENCHMARKS.md). A batch is at
 * least two chunk_max. */
#define BATCH_MIN_SIZE (1u << 19)
/* Files a batch holds at most: 1024 is 512 bytes a file, smaller than
 * most files of a source tree, and each piece and its cuts take room
 * (a batch's arrays touched all of their pages: 460 KB a batch at 4096). */
#define BATCH_PIECES 1024u

/* ---- cutting (cutter threads) ---- */

static void cut_piece(struct cairn_writer *w, struct cairn_chunker *chunker, struct batch *b,
		      struct piece *p, uint32_t *next_cut)
{
	const uint8_t *data = b->data + p->start;
	uint32_t pos = 0, last = 0;

	cairn_chunker_reset(chunker);
	p->first_cut = *next_cut;
	p->cut_count = 0;
	while (pos < p->len) {
		int cut;
		pos += (uint32_t)cairn_chunker_scan(chunker, data + pos, p->len - pos, &cut);
		/* A file's end ends its last chunk: a cut for both chains. */
		if (!cut && !(p->flags & PIECE_END))
			break;
		struct cut *c = &b->cuts[p->first_cut + p->cut_count++];
		c->end = p->start + pos;
		c->prepared = false;
		/* A continuation's first chunk began in an earlier batch. */
		if (last > 0 || (p->flags & PIECE_BEGIN))
			chunk_prepare(w, data + last, pos - last, c);
		last = pos;
	}
	p->tail_len = chunker->len;
	p->tail_hash = chunker->hash;
	*next_cut += p->cut_count;
}

static void *cutter_main(void *arg)
{
	struct cairn_writer *w = arg;
	struct cairn_chunker chunker;

	pthread_setname_np(pthread_self(), "cairn-cut");
	cairn_chunker_init(&chunker, &w->store->params);
	pthread_mutex_lock(&w->pipe_lock);
	for (;;) {
		while (!w->pipe_stopping && w->seq_cut_next == w->seq_submitted)
			pthread_cond_wait(&w->pipe_cond, &w->pipe_lock);
		if (w->pipe_stopping)
			break;
		struct batch *b = w->batch_ring[w->seq_cut_next++ % w->batch_total];
		pthread_mutex_unlock(&w->pipe_lock);
		uint32_t next_cut = 0;
		for (uint32_t i = 0; i < b->piece_count; i++)
			cut_piece(w, &chunker, b, &b->pieces[i], &next_cut);
		pthread_mutex_lock(&w->pipe_lock);
		b->cut_done = true;
		pthread_cond_broadcast(&w->pipe_cond);
	}
	pthread_mutex_unlock(&w->pipe_lock);
	return NULL;
}

/* ---- sequencing (the sequencer thread) ---- */

static int seq_emit(struct cairn_writer *w, const uint8_t *data, uint32_t size,
		    const struct cut *prepared)
{
	struct cairn_id id;

	if (w->seq_ref_count == w->seq_ref_cap) {
		size_t cap = w->seq_ref_cap ? w->seq_ref_cap * 2 : 64;
		struct cairn_chunk_ref *refs = realloc(w->seq_refs, cap * sizeof(*refs));
		if (!refs)
			return -ENOMEM;
		w->seq_refs = refs;
		w->seq_ref_cap = cap;
	}
	int r = store_chunk(w, data, size, prepared, &id);
	if (r == 0)
		w->seq_refs[w->seq_ref_count++] = (struct cairn_chunk_ref){.id = id, .size = size};
	return r;
}

/* Stores the cutter's chunks from cut k on (the first starting at pos) and
 * keeps the rest of the piece as the carry, with the cutter's state. */
static int take_cuts(struct cairn_writer *w, const struct batch *b, const struct piece *p,
		     uint32_t k, uint32_t pos)
{
	const struct cut *cuts = b->cuts + p->first_cut;
	uint32_t end = p->start + p->len;

	for (; k < p->cut_count; k++) {
		int r = seq_emit(w, b->data + pos, cuts[k].end - pos, &cuts[k]);
		if (r < 0)
			return r;
		pos = cuts[k].end;
	}
	memcpy(w->carry, b->data + pos, end - pos);
	w->carry_len = end - pos;
	w->chunker.len = p->tail_len;
	w->chunker.hash = p->tail_hash;
	return 0;
}

/* The chunk that spans the boundary: the carry and this piece's bytes up to
 * the real cut. Returns 1 when it goes on past the piece. */
static int seq_boundary(struct cairn_writer *w, const struct batch *b, const struct piece *p,
			uint32_t *pos)
{
	uint32_t end = p->start + p->len;
	int cut;
	size_t n = cairn_chunker_scan(&w->chunker, b->data + *pos, end - *pos, &cut);

	memcpy(w->carry + w->carry_len, b->data + *pos, n);
	w->carry_len += (uint32_t)n;
	*pos += (uint32_t)n;
	if (!cut && !(p->flags & PIECE_END))
		return 1;
	int r = seq_emit(w, w->carry, w->carry_len, NULL);
	w->carry_len = 0;
	cairn_chunker_reset(&w->chunker);
	return r;
}

/* A piece that continues a file: the real chain from the carried state until
 * it meets one of the cutter's cuts, the cutter's chunks after that. */
static int seq_continue(struct cairn_writer *w, const struct batch *b, const struct piece *p)
{
	const struct cut *cuts = b->cuts + p->first_cut;
	uint32_t pos = p->start, end = p->start + p->len, k = 0;
	int r = w->carry_len > 0 ? seq_boundary(w, b, p, &pos) : 0;

	if (r != 0)
		return r < 0 ? r : 0;
	for (;;) {
		while (k < p->cut_count && cuts[k].end < pos)
			k++;
		if (k < p->cut_count && cuts[k].end == pos)
			return take_cuts(w, b, p, k + 1, pos);
		if (pos == end)
			return 0;
		int cut;
		uint32_t n =
			(uint32_t)cairn_chunker_scan(&w->chunker, b->data + pos, end - pos, &cut);
		if (!cut && !(p->flags & PIECE_END)) {
			memcpy(w->carry, b->data + pos, n);
			w->carry_len = n;
			return 0;
		}
		r = seq_emit(w, b->data + pos, n, NULL);
		if (r < 0)
			return r;
		pos += n;
	}
}

static int post_result(struct cairn_writer *w, const struct piece *p)
{
	int r = 0;

	pthread_mutex_lock(&w->pipe_lock);
	if (w->done_count == w->done_cap) {
		size_t cap = w->done_cap ? w->done_cap * 2 : 256;
		struct file_done *done = realloc(w->done, cap * sizeof(*done));
		if (done) {
			w->done = done;
			w->done_cap = cap;
		}
	}
	if (w->done_ref_count + w->seq_ref_count > w->done_ref_cap) {
		size_t cap = w->done_ref_cap ? w->done_ref_cap : 1024;
		while (cap < w->done_ref_count + w->seq_ref_count)
			cap *= 2;
		struct cairn_chunk_ref *refs = realloc(w->done_refs, cap * sizeof(*refs));
		if (refs) {
			w->done_refs = refs;
			w->done_ref_cap = cap;
		}
	}
	if (w->done_count < w->done_cap &&
	    w->done_ref_count + w->seq_ref_count <= w->done_ref_cap) {
		if (w->seq_ref_count) /* an empty file has none, and maybe no array yet */
			memcpy(w->done_refs + w->done_ref_count, w->seq_refs,
			       w->seq_ref_count * sizeof(*w->seq_refs));
		w->done[w->done_count++] = (struct file_done){
			.cookie = p->cookie,
			.size = w->seq_file_size,
			.first_ref = w->done_ref_count,
			.ref_count = w->seq_ref_count,
			.sync = (p->flags & PIECE_SYNC) != 0,
		};
		w->done_ref_count += w->seq_ref_count;
	} else {
		r = -ENOMEM;
	}
	pthread_mutex_unlock(&w->pipe_lock);
	return r;
}

static int seq_piece(struct cairn_writer *w, const struct batch *b, const struct piece *p)
{
	int r;

	w->stats.bytes_in += p->len;
	if (p->flags & PIECE_BEGIN) {
		w->seq_ref_count = 0;
		w->seq_file_size = p->len;
		w->carry_len = 0;
		r = take_cuts(w, b, p, 0, p->start);
	} else {
		w->seq_file_size += p->len;
		r = seq_continue(w, b, p);
	}
	if (r == 0 && (p->flags & PIECE_END))
		r = post_result(w, p);
	return r;
}

static int seq_batch(struct cairn_writer *w, const struct batch *b)
{
	for (uint32_t i = 0; i < b->piece_count; i++) {
		int r = seq_piece(w, b, &b->pieces[i]);
		if (r < 0) {
			if (r == -ENOMEM)
				writer_set_error(w, "%s: out of memory", w->store->path);
			return r;
		}
	}
	return 0;
}

static void *sequencer_main(void *arg)
{
	struct cairn_writer *w = arg;

	pthread_setname_np(pthread_self(), "cairn-seq");
	pthread_mutex_lock(&w->pipe_lock);
	for (;;) {
		while (!w->pipe_stopping &&
		       (w->seq_sequenced == w->seq_submitted ||
			!w->batch_ring[w->seq_sequenced % w->batch_total]->cut_done))
			pthread_cond_wait(&w->pipe_cond, &w->pipe_lock);
		if (w->pipe_stopping)
			break;
		struct batch *b = w->batch_ring[w->seq_sequenced % w->batch_total];
		bool failed = w->pipe_error < 0;
		pthread_mutex_unlock(&w->pipe_lock);
		/* After a failure the rest is dropped: the archive fails. */
		int r = failed ? 0 : seq_batch(w, b);
		pthread_mutex_lock(&w->pipe_lock);
		if (r < 0 && w->pipe_error == 0)
			w->pipe_error = r;
		b->used = 0;
		b->piece_count = 0;
		b->cut_done = false;
		w->batch_free[w->batch_free_count++] = b;
		w->seq_sequenced++;
		w->pub_stats = w->stats;
		pthread_cond_broadcast(&w->pipe_cond);
	}
	pthread_mutex_unlock(&w->pipe_lock);
	return NULL;
}

/* ---- the calling thread ---- */

/* Hands the results sequenced so far to the file callback, in order; a
 * synchronous file's chunks go to w->refs. */
static int collect(struct cairn_writer *w)
{
	int r = 0;

	pthread_mutex_lock(&w->pipe_lock);
	struct file_done *done = w->done;
	struct cairn_chunk_ref *refs = w->done_refs;
	size_t count = w->done_count, done_cap = w->done_cap, ref_cap = w->done_ref_cap;
	w->done = w->taken_done;
	w->done_cap = w->taken_done_cap;
	w->done_refs = w->taken_refs;
	w->done_ref_cap = w->taken_ref_cap;
	w->done_count = 0;
	w->done_ref_count = 0;
	pthread_mutex_unlock(&w->pipe_lock);
	w->taken_done = done;
	w->taken_done_cap = done_cap;
	w->taken_refs = refs;
	w->taken_ref_cap = ref_cap;

	for (size_t i = 0; r == 0 && i < count; i++) {
		const struct file_done *d = &done[i];
		if (!d->sync) {
			if (w->file_fn)
				r = w->file_fn(w->file_data, d->cookie, d->size,
					       refs + d->first_ref, d->ref_count);
			continue;
		}
		if (d->ref_count > w->ref_cap) {
			struct cairn_chunk_ref *copy =
				realloc(w->refs, d->ref_count * sizeof(*copy));
			if (!copy)
				return -ENOMEM;
			w->refs = copy;
			w->ref_cap = d->ref_count;
		}
		if (d->ref_count)
			memcpy(w->refs, refs + d->first_ref, d->ref_count * sizeof(*refs));
		w->ref_count = d->ref_count;
	}
	return r;
}

static void batch_submit(struct cairn_writer *w)
{
	struct batch *b = TAKE_PTR(w->batch);

	pthread_mutex_lock(&w->pipe_lock);
	b->cut_done = false;
	w->batch_ring[w->seq_submitted++ % w->batch_total] = b;
	pthread_cond_broadcast(&w->pipe_cond);
	pthread_mutex_unlock(&w->pipe_lock);
}

static int batch_take(struct cairn_writer *w)
{
	pthread_mutex_lock(&w->pipe_lock);
	while (w->batch_free_count == 0 && w->pipe_error == 0)
		pthread_cond_wait(&w->pipe_cond, &w->pipe_lock);
	int r = w->pipe_error;
	if (r == 0)
		w->batch = w->batch_free[--w->batch_free_count];
	pthread_mutex_unlock(&w->pipe_lock);
	return r < 0 ? r : collect(w);
}

/* Starts a piece in the batch being filled, handing it on first when full. */
static int piece_add(struct cairn_writer *w, uint32_t flags)
{
	if (w->batch && (w->batch->piece_count == w->piece_cap || w->batch->used == w->batch_size))
		batch_submit(w);
	int r = w->batch ? 0 : batch_take(w);
	if (r < 0)
		return r;
	struct batch *b = w->batch;
	b->pieces[b->piece_count++] = (struct piece){.start = b->used, .flags = flags};
	return 0;
}

int pipe_drain(struct cairn_writer *w)
{
	if (w->batch && w->batch->piece_count > 0)
		batch_submit(w);
	pthread_mutex_lock(&w->pipe_lock);
	while (w->seq_sequenced < w->seq_submitted)
		pthread_cond_wait(&w->pipe_cond, &w->pipe_lock);
	int r = w->pipe_error;
	pthread_mutex_unlock(&w->pipe_lock);
	int c = collect(w);
	return r < 0 ? r : c;
}

void pipe_trim(struct cairn_writer *w)
{
	pthread_mutex_lock(&w->pipe_lock);
	for (size_t i = 0; i < w->batch_free_count; i++)
		cairn_drop_pages(w->batch_free[i]->data, w->batch_size);
	pthread_mutex_unlock(&w->pipe_lock);
	if (w->batch && w->batch->piece_count == 0 && w->batch->used == 0)
		cairn_drop_pages(w->batch->data, w->batch_size);
}

void pipe_reset(struct cairn_writer *w)
{
	if (w->batch) {
		w->batch->used = 0;
		w->batch->piece_count = 0;
	}
	pthread_mutex_lock(&w->pipe_lock);
	while (w->seq_sequenced < w->seq_submitted)
		pthread_cond_wait(&w->pipe_cond, &w->pipe_lock);
	w->pipe_error = 0;
	w->done_count = 0;
	w->done_ref_count = 0;
	pthread_mutex_unlock(&w->pipe_lock);
	w->in_file = false;
	w->carry_len = 0;
	w->seq_ref_count = 0;
	w->ref_count = 0;
}

void cairn_writer_set_file_fn(struct cairn_writer *w, cairn_writer_file_fn fn, void *userdata)
{
	w->file_fn = fn;
	w->file_data = userdata;
}

int cairn_writer_file_begin(struct cairn_writer *w)
{
	if (w->in_file)
		return -EBUSY;
	int r = collect(w);
	if (r == 0)
		r = piece_add(w, PIECE_BEGIN);
	if (r < 0)
		return r;
	w->in_file = true;
	w->file_size = 0;
	return 0;
}

int cairn_writer_file_write(struct cairn_writer *w, const void *data, size_t size)
{
	const uint8_t *p = data;

	if (!w->in_file)
		return -EINVAL;
	w->file_size += size;
	while (size > 0) {
		if (!w->batch || w->batch->used == w->batch_size) {
			int r = piece_add(w, 0); /* the file goes on in the next batch */
			if (r < 0)
				return r;
		}
		struct batch *b = w->batch;
		uint32_t room = w->batch_size - b->used;
		uint32_t n = size < room ? (uint32_t)size : room;
		memcpy(b->data + b->used, p, n);
		b->used += n;
		b->pieces[b->piece_count - 1].len += n;
		p += n;
		size -= n;
	}
	return 0;
}

/* Ends the file in progress: its last piece, or NULL when a failure took
 * the batch (the failure is then returned by the next call). */
static struct piece *file_close(struct cairn_writer *w, uint32_t flags)
{
	w->in_file = false;
	/* A kick handed the file's last piece on: it ends in an empty one. */
	if (!w->batch && piece_add(w, 0) < 0)
		return NULL;
	struct piece *p = &w->batch->pieces[w->batch->piece_count - 1];
	p->flags |= flags;
	return p;
}

int cairn_writer_file_end_async(struct cairn_writer *w, uint64_t cookie)
{
	if (!w->in_file)
		return -EINVAL;
	struct piece *p = file_close(w, PIECE_END);
	if (!p) {
		int r = pipe_drain(w);
		return r < 0 ? r : -EIO;
	}
	p->cookie = cookie;
	return 0;
}

int cairn_writer_file_end(struct cairn_writer *w, uint64_t *ret_size,
			  const struct cairn_chunk_ref **ret_chunks, size_t *ret_count)
{
	if (!w->in_file)
		return -EINVAL;
	struct piece *p = file_close(w, PIECE_END | PIECE_SYNC);
	w->ref_count = 0;
	int r = pipe_drain(w);
	if (r == 0 && !p)
		r = -EIO;
	if (r < 0)
		return r;
	*ret_size = w->file_size;
	*ret_chunks = w->refs;
	*ret_count = w->ref_count;
	return 0;
}

void cairn_writer_files_kick(struct cairn_writer *w)
{
	if (w->batch && w->batch->used > 0)
		batch_submit(w);
}

int cairn_writer_files_flush(struct cairn_writer *w)
{
	if (w->in_file)
		return -EBUSY;
	int r = pipe_drain(w);
	/* The end of an archive's files (or of those before a nested
	 * archive): the snapshot is written next, and the commit, which gave
	 * these pages back, came after it, at the add's peak memory (1-2 MB
	 * above the stream's on linux 6.12; docs/BENCHMARKS.md). */
	if (r == 0) {
		pipe_trim(w);
		groups_trim(w);
		delta_trim(w);
	}
	return r;
}

/* ---- start and stop ---- */

static int pipe_alloc(struct cairn_writer *w)
{
	const struct cairn_store_params *params = &w->store->params;

	w->batch_size =
		params->chunk_max * 2 > BATCH_MIN_SIZE ? params->chunk_max * 2 : BATCH_MIN_SIZE;
	w->piece_cap = BATCH_PIECES;
	/* A cutter's cuts are chunk_min apart, plus each piece's end. */
	w->cut_cap = w->batch_size / params->chunk_min + w->piece_cap + 1;
	/* Enough for every cutter, the sequencer and the one being filled
	 * (one more cost 1.7 MB of peak memory on 2 cores and no time);
	 * capped, as each is batch_size of memory. */
	w->batch_total = w->thread_count + 2 < 16 ? w->thread_count + 2 : 16;
	w->batch_all = calloc(w->batch_total, sizeof(*w->batch_all));
	w->batch_free = calloc(w->batch_total, sizeof(*w->batch_free));
	w->batch_ring = calloc(w->batch_total, sizeof(*w->batch_ring));
	w->cutters = calloc(w->thread_count, sizeof(*w->cutters));
	w->carry = malloc(params->chunk_max);
	if (!w->batch_all || !w->batch_free || !w->batch_ring || !w->cutters || !w->carry)
		return -ENOMEM;
	for (unsigned i = 0; i < w->batch_total; i++) {
		struct batch *b = &w->batch_all[i];
		b->data = malloc(w->batch_size);
		b->pieces = calloc(w->piece_cap, sizeof(*b->pieces));
		b->cuts = calloc(w->cut_cap, sizeof(*b->cuts));
		if (!b->data || !b->pieces || !b->cuts)
			return -ENOMEM;
		w->batch_free[w->batch_free_count++] = b;
	}
	cairn_chunker_init(&w->chunker, params);
	return 0;
}

int pipe_start(struct cairn_writer *w)
{
	int r = pipe_alloc(w);

	if (r < 0) {
		store_set_error(w->store, "out of memory");
		return r;
	}
	r = -pthread_create(&w->sequencer, NULL, sequencer_main, w);
	w->sequencer_started = r == 0;
	for (unsigned i = 0; r == 0 && i < w->thread_count; i++) {
		r = -pthread_create(&w->cutters[i], NULL, cutter_main, w);
		if (r == 0)
			w->cutters_started++;
	}
	if (r < 0)
		store_set_error(w->store, "cannot start a thread: %s", strerror(-r));
	return r;
}

void pipe_stop(struct cairn_writer *w)
{
	pthread_mutex_lock(&w->pipe_lock);
	w->pipe_stopping = true;
	pthread_cond_broadcast(&w->pipe_cond);
	pthread_mutex_unlock(&w->pipe_lock);
	for (unsigned i = 0; i < w->cutters_started; i++)
		pthread_join(w->cutters[i], NULL);
	if (w->sequencer_started)
		pthread_join(w->sequencer, NULL);
	for (unsigned i = 0; w->batch_all && i < w->batch_total; i++) {
		free(w->batch_all[i].data);
		free(w->batch_all[i].pieces);
		free(w->batch_all[i].cuts);
	}
	free(w->batch_all);
	free(w->batch_free);
	free(w->batch_ring);
	free(w->cutters);
	free(w->carry);
	free(w->done);
	free(w->done_refs);
	free(w->taken_done);
	free(w->taken_refs);
	free(w->seq_refs);
}
