/* remote_fetch.c: how a remote store's pack blocks come into the per-host
 * mirror, with no lock held across the network. The handle's rs->lock
 * guards the in-memory state only: each pack's block map (BLOCK_UNKNOWN,
 * BLOCK_PRESENT, BLOCK_FETCHING), its forward readers, the queue below.
 * A reader needing blocks claims the missing ones (BLOCK_FETCHING), lets
 * go of the lock, GETs them on a client of the handle's pool, writes them
 * into the pack file and then marks them in the .have map (the host's
 * shared truth: data first, so other processes may trust it), and marks
 * them present; a reader needing a block another thread fetches waits on
 * `landed` for it, and readers of other blocks go on meanwhile.
 *
 * In the background, one thread per handle (started on first use, joined
 * by remote_fetch_free) runs a queue of extents: whole files about to be
 * read (cairn_store_prefetch) and read-ahead for readers that keep going
 * forward through a pack (remote_read_ahead), with up to
 * REMOTE_FETCH_PARALLEL range GETs in flight (s3_get_stream: as one ends,
 * the next starts). Each range is written to the pack file as it lands, so
 * memory stays at those GETs' buffers. A failed background GET only puts
 * its blocks back to unknown: the reader's own fetch tries them again and
 * reports what fails.
 */
#include "remote.h"

#include "s3.h"
#include "store_internal.h"

#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define MAX_BLOCKS (REMOTE_GET_MAX / REMOTE_BLOCK)
/* A background GET: from 1 MiB (a reader waits for the first) to 4 MiB. */
#define BG_START_BLOCKS ((1u << 20) / REMOTE_BLOCK)
#define BG_MAX_BLOCKS   ((4u << 20) / REMOTE_BLOCK)
#define CLIENTS_MAX     16 /* idle clients kept */
/* Read-ahead: a stream's window starts at RA_START blocks and doubles up
 * to RA_MAX; a read up to RA_SLACK blocks past what the stream queued
 * still continues it. */
#define RA_START 8
#define RA_MAX   256
#define RA_SLACK 16
/* A pack is queued whole once a reader missed this many times in it and
 * read a sixteenth of it (read_ahead_pack). */
#define RA_PACK_MISSES 4

struct fetch_job {
	struct fetch_job *next;
	struct remote_extent *extents;
	size_t count, i; /* the cursor: extent i, */
	uint64_t b;      /* from block b on */
	uint64_t grow;   /* blocks of its next GET at most: doubling, so the first land soon */
};

/* A background GET in flight. */
struct fetch_slot {
	struct remote_pack_cache *pack;
	uint64_t first, count;
	/* Kept from GET to GET while the stream runs (freed when it ends): a
	 * buffer of up to 4 MiB per GET, freshly mapped each time, cost the
	 * page faults and zeroing of every byte fetched. */
	uint8_t *buf;
	size_t cap;
	char key[REMOTE_PREFIX_MAX + REMOTE_KEY_MAX + 2];
};

struct remote_fetch {
	pthread_cond_t landed; /* a GET of pack blocks ended */
	pthread_cond_t work;   /* the queue got work, or stop */
	struct s3_client *idle[CLIENTS_MAX];
	size_t idle_count;
	unsigned fetching; /* GETs of pack blocks in flight, all threads */
	struct fetch_job *head, *tail;
	const struct cairn_store *store; /* the fetcher's */
	pthread_t thread;
	pid_t owner; /* the process the thread runs in */
	bool started;
	atomic_bool stop; /* written under rs->lock, read by the stream too */
	uint64_t stream_clock;
	struct fetch_slot slots[REMOTE_FETCH_PARALLEL]; /* the fetcher's own */
};

static uint64_t min_u64(uint64_t a, uint64_t b)
{
	return a < b ? a : b;
}

static struct remote_fetch *fetch_get(struct remote_state *rs)
{
	if (rs->fetch)
		return rs->fetch;
	struct remote_fetch *f = calloc(1, sizeof(*f));
	if (!f)
		return NULL;
	pthread_cond_init(&f->landed, NULL);
	pthread_cond_init(&f->work, NULL);
	rs->fetch = f;
	return f;
}

static uint64_t block_count(const struct remote_pack_cache *pack)
{
	return (pack->size + REMOTE_BLOCK - 1) / REMOTE_BLOCK;
}

static int blocks_ready(struct remote_pack_cache *pack)
{
	if (!pack->blocks && !(pack->blocks = calloc(block_count(pack) + 1, 1)))
		return -ENOMEM;
	return 0;
}

/* Blocks [first, last] not known present asked of the .have map again:
 * another process on the host may have fetched them. */
static int refresh(struct remote_pack_cache *pack, uint64_t first, uint64_t last)
{
	uint8_t small[256];

	while (first <= last && pack->blocks[first] != BLOCK_UNKNOWN)
		first++;
	if (first > last)
		return 0;
	uint64_t n = last - first + 1;
	_cleanup_free_ uint8_t *big = n > sizeof(small) ? malloc(n) : NULL;
	uint8_t *have = n > sizeof(small) ? big : small;
	if (!have)
		return -ENOMEM;
	ssize_t got = cairn_pread_full(pack->have_fd, have, n, first);
	if (got < 0)
		return (int)got;
	for (ssize_t i = 0; i < got; i++)
		if (have[i] == 1 && pack->blocks[first + i] == BLOCK_UNKNOWN)
			pack->blocks[first + i] = BLOCK_PRESENT;
	return 0;
}

static void mark(struct remote_pack_cache *pack, uint64_t first, uint64_t count, uint8_t state)
{
	memset(pack->blocks + first, state, count);
}

/* Writes a GET's bytes into the pack file, then marks them in the .have
 * map (in that order: another process trusts the map). */
static int land(struct remote_pack_cache *pack, uint64_t first, uint64_t count, const void *data,
		uint64_t size)
{
	uint8_t ones[MAX_BLOCKS];

	int r = cairn_pwrite_all(pack->fd, data, size, first * REMOTE_BLOCK);
	if (r < 0)
		return r;
	memset(ones, 1, count);
	return cairn_pwrite_all(pack->have_fd, ones, count, first);
}

static uint64_t run_size(const struct remote_pack_cache *pack, uint64_t first, uint64_t count)
{
	return min_u64(count * REMOTE_BLOCK, pack->size - first * REMOTE_BLOCK);
}

/* ---- the reader's own fetch ---- */

static struct s3_client *client_take(struct remote_fetch *f)
{
	return f->idle_count ? f->idle[--f->idle_count] : NULL;
}

/* rs->lock held. */
static void client_give(struct remote_fetch *f, struct s3_client *c)
{
	if (c && f->idle_count < CLIENTS_MAX)
		f->idle[f->idle_count++] = c;
	else
		s3_client_free(c);
}

/* GETs blocks [first, first + count) of pack (claimed by the caller) on a
 * pooled client, without rs->lock, and lands them. Returns 0 or -errno
 * with a message in msg. */
static int get_unlocked(struct remote_state *rs, struct s3_client **client,
			struct remote_pack_cache *pack, uint64_t first, uint64_t count, char *msg,
			size_t msg_size)
{
	char key[REMOTE_PREFIX_MAX + REMOTE_KEY_MAX + 2];
	uint64_t size = run_size(pack, first, count);
	int r = *client ? 0 : s3_client_new(rs->cfg, rs->url.bucket, client);

	if (r < 0) {
		cairn_format(msg, msg_size, "cannot be fetched: %s", strerror(-r));
		return r;
	}
	_cleanup_free_ uint8_t *buf = malloc(size);
	if (!buf) {
		cairn_format(msg, msg_size, "cannot be fetched: out of memory");
		return -ENOMEM;
	}
	struct s3_range range = {.key = remote_key(&rs->url, pack->key, key, sizeof(key)),
				 .offset = first * REMOTE_BLOCK,
				 .size = size,
				 .dest = buf};
	r = s3_get_ranges(*client, &range, 1, 1);
	if (r < 0) {
		cairn_format(msg, msg_size, "cannot be fetched: %s", s3_error(*client));
		return r;
	}
	r = land(pack, first, count, buf, size);
	if (r < 0)
		cairn_format(msg, msg_size, "cannot be fetched: %s/packs: %s", rs->mirror,
			     strerror(-r));
	return r;
}

/* Fetches the claimed run [first, first + count) of pack. rs->lock held,
 * let go during the GET; pack stays valid (fetching > 0: never closed). */
static int fetch_run(struct remote_state *rs, struct remote_fetch *f,
		     struct remote_pack_cache *pack, uint64_t first, uint64_t count, char *msg,
		     size_t msg_size)
{
	mark(pack, first, count, BLOCK_FETCHING);
	pack->fetching++;
	f->fetching++;
	struct s3_client *client = client_take(f);
	pthread_mutex_unlock(&rs->lock);
	int r = get_unlocked(rs, &client, pack, first, count, msg, msg_size);
	if (r < 0 && client) {
		s3_client_free(client); /* its connection may be in a bad state */
		client = NULL;
	}
	pthread_mutex_lock(&rs->lock);
	client_give(f, client);
	mark(pack, first, count, r == 0 ? BLOCK_PRESENT : BLOCK_UNKNOWN);
	if (r == 0)
		rs->cache_fetched += run_size(pack, first, count);
	pack->fetching--;
	f->fetching--;
	pthread_cond_broadcast(&f->landed);
	return r;
}

int remote_fetch_blocks(const struct cairn_store *store, uint32_t pack_num, uint64_t first,
			uint64_t last, struct remote_pack_cache **ret_pack, char *msg,
			size_t msg_size)
{
	struct remote_state *rs = store->remote;
	struct remote_fetch *f = fetch_get(rs);
	int r;

	*ret_pack = NULL;
	if (!f)
		return -ENOMEM;
	for (;;) {
		struct remote_pack_cache *pack = remote_pack_cache_get(store, pack_num, &r);
		if (!pack)
			return r;
		if ((r = blocks_ready(pack)) < 0)
			return r;
		uint64_t end = min_u64(last, block_count(pack) - 1);
		if ((r = refresh(pack, first, end)) < 0)
			return r;
		uint64_t b = first;
		bool waiting = false;
		for (; b <= end && pack->blocks[b] != BLOCK_UNKNOWN; b++)
			waiting |= pack->blocks[b] == BLOCK_FETCHING;
		if (b <= end) {
			uint64_t e = b;
			while (e < end && pack->blocks[e + 1] == BLOCK_UNKNOWN &&
			       e + 1 - b < MAX_BLOCKS)
				e++;
			if ((r = fetch_run(rs, f, pack, b, e - b + 1, msg, msg_size)) < 0)
				return r;
			continue;
		}
		if (!waiting) {
			*ret_pack = pack;
			return 0;
		}
		pthread_cond_wait(&f->landed, &rs->lock); /* pack may be gone: look again */
	}
}

int remote_pack_probe(struct remote_pack_cache *pack, uint64_t first, uint64_t last)
{
	int r = blocks_ready(pack);

	if (r < 0 || pack->size == 0)
		return r;
	last = min_u64(last, block_count(pack) - 1);
	if ((r = refresh(pack, first, last)) < 0)
		return r;
	for (uint64_t b = first; b <= last; b++)
		if (pack->blocks[b] == BLOCK_UNKNOWN)
			return 1;
	return 0;
}

int remote_pack_forget(struct remote_pack_cache *pack, uint64_t first, uint64_t last)
{
	static const uint8_t zeros[256];

	if (pack->size == 0)
		return 0;
	last = min_u64(last, block_count(pack) - 1);
	for (uint64_t b = first; b <= last; b++)
		if (pack->blocks && pack->blocks[b] == BLOCK_PRESENT)
			pack->blocks[b] = BLOCK_UNKNOWN;
	for (uint64_t b = first; b <= last; b += sizeof(zeros)) {
		int r = cairn_pwrite_all(pack->have_fd, zeros, min_u64(sizeof(zeros), last - b + 1),
					 b);
		if (r < 0)
			return r;
	}
	return 0;
}

/* ---- the background fetcher ---- */

static void job_free(struct fetch_job *job)
{
	free(job->extents);
	free(job);
}

/* The next run of job to GET into slot: claimed, with its buffer. rs->lock
 * held. Returns 1, 0 when the job has no more, or -ENOMEM. */
static int job_next(struct remote_fetch *f, struct fetch_job *job, struct fetch_slot *slot)
{
	struct remote_state *rs = f->store->remote;
	int r;

	for (; job->i < job->count; job->i++, job->b = 0) {
		const struct remote_extent *e = &job->extents[job->i];
		struct remote_pack_cache *pack = remote_pack_cache_get(f->store, e->pack_num, &r);
		if (!pack || pack->size == 0 || blocks_ready(pack) < 0)
			continue; /* a local pack, or the reader finds out */
		uint64_t last = min_u64(e->last, block_count(pack) - 1);
		for (job->b = job->b > e->first ? job->b : e->first; job->b <= last;) {
			if (pack->blocks[job->b] != BLOCK_UNKNOWN) {
				job->b++; /* there, or on its way */
				continue;
			}
			uint64_t b = job->b, end = min_u64(last, b + job->grow - 1);
			if (refresh(pack, b, end) < 0)
				break;
			if (pack->blocks[b] != BLOCK_UNKNOWN)
				continue;
			for (uint64_t i = b + 1; i <= end; i++)
				if (pack->blocks[i] != BLOCK_UNKNOWN)
					end = i - 1;
			size_t need = run_size(pack, b, end - b + 1);
			if (slot->cap < need) {
				free(slot->buf);
				slot->cap = 0;
				/* the most a GET asks for: one allocation per slot */
				size_t want = need > BG_MAX_BLOCKS * REMOTE_BLOCK
						      ? need
						      : (size_t)BG_MAX_BLOCKS * REMOTE_BLOCK;
				if (!(slot->buf = malloc(want)))
					return -ENOMEM;
				slot->cap = want;
			}
			slot->pack = pack;
			slot->first = b;
			slot->count = end - b + 1;
			remote_key(&rs->url, pack->key, slot->key, sizeof(slot->key));
			mark(pack, b, slot->count, BLOCK_FETCHING);
			pack->fetching++;
			f->fetching++;
			job->b = end + 1;
			job->grow = min_u64(job->grow * 2, BG_MAX_BLOCKS);
			return 1;
		}
	}
	return 0;
}

static int stream_next(void *userdata, unsigned index, struct s3_range *range)
{
	struct remote_fetch *f = userdata;
	struct remote_state *rs = f->store->remote;
	struct fetch_slot *slot = &f->slots[index];
	int r = 0;

	pthread_mutex_lock(&rs->lock);
	while (!f->stop && f->head && (r = job_next(f, f->head, slot)) == 0) {
		struct fetch_job *done = f->head;
		if (!(f->head = done->next))
			f->tail = NULL;
		job_free(done);
	}
	if (f->stop)
		r = -1;
	pthread_mutex_unlock(&rs->lock);
	if (r <= 0)
		return r < 0 ? -1 : 0;
	*range = (struct s3_range){.key = slot->key,
				   .offset = slot->first * REMOTE_BLOCK,
				   .size = run_size(slot->pack, slot->first, slot->count),
				   .dest = slot->buf};
	return 1;
}

static void stream_done(void *userdata, unsigned index, const struct s3_range *range)
{
	struct remote_fetch *f = userdata;
	struct remote_state *rs = f->store->remote;
	struct fetch_slot *slot = &f->slots[index];
	int r = range->result;

	if (r == 0)
		r = land(slot->pack, slot->first, slot->count, slot->buf, range->size);
	pthread_mutex_lock(&rs->lock);
	mark(slot->pack, slot->first, slot->count, r == 0 ? BLOCK_PRESENT : BLOCK_UNKNOWN);
	slot->pack->fetching--;
	f->fetching--;
	if (r == 0) {
		/* held: the pack a reader waits for is not the one evicted */
		slot->pack->readers++;
		remote_cache_fetched(f->store, range->size);
		slot->pack->readers--;
	}
	pthread_cond_broadcast(&f->landed);
	pthread_mutex_unlock(&rs->lock);
}

static bool stream_stopped(void *userdata)
{
	struct remote_fetch *f = userdata;

	return atomic_load(&f->stop);
}

static void drop_jobs(struct remote_fetch *f)
{
	while (f->head) {
		struct fetch_job *job = f->head;
		f->head = job->next;
		job_free(job);
	}
	f->tail = NULL;
}

/* After a stream: no GET in flight, the slots' buffers go. */
static void slots_release(struct remote_fetch *f)
{
	for (size_t i = 0; i < REMOTE_FETCH_PARALLEL; i++) {
		free(f->slots[i].buf);
		f->slots[i].buf = NULL;
		f->slots[i].cap = 0;
	}
}

static void *fetcher_main(void *arg)
{
	struct remote_fetch *f = arg;
	struct remote_state *rs = f->store->remote;
	struct s3_client *client = NULL;
	const struct s3_stream_ops ops = {
		.next = stream_next, .done = stream_done, .stopped = stream_stopped};

	(void)s3_client_new(rs->cfg, rs->url.bucket, &client);
	pthread_mutex_lock(&rs->lock);
	while (!f->stop) {
		if (!f->head) {
			pthread_cond_wait(&f->work, &rs->lock);
			continue;
		}
		if (!client) {
			drop_jobs(f); /* the readers fetch it themselves, and say why not */
			continue;
		}
		pthread_mutex_unlock(&rs->lock);
		(void)s3_get_stream(client, REMOTE_FETCH_PARALLEL, &ops, f);
		slots_release(f);
		pthread_mutex_lock(&rs->lock);
		remote_cache_settle(f->store); /* the last GETs' bytes under the bound too */
	}
	pthread_mutex_unlock(&rs->lock);
	s3_client_free(client);
	return NULL;
}

/* rs->lock held. */
static int fetcher_start(const struct cairn_store *store, struct remote_fetch *f)
{
	sigset_t all, old;

	if (f->started && f->owner == getpid())
		return 0;
	f->started = false; /* a child of a fork has no thread */
	f->store = store;
	f->stop = false;
	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, &old);
	int r = -pthread_create(&f->thread, NULL, fetcher_main, f);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (r < 0)
		return r;
	f->started = true;
	f->owner = getpid();
	return 0;
}

int remote_fetch_queue(const struct cairn_store *store, struct remote_extent *extents, size_t count)
{
	struct remote_state *rs = store->remote;
	struct remote_fetch *f = fetch_get(rs);
	struct fetch_job *job = f ? calloc(1, sizeof(*job)) : NULL;
	int r = job ? fetcher_start(store, f) : -ENOMEM;

	if (r < 0) {
		free(job);
		free(extents);
		return r;
	}
	*job = (struct fetch_job){.extents = extents, .count = count, .grow = BG_START_BLOCKS};
	if (f->tail)
		f->tail->next = job;
	else
		f->head = job;
	f->tail = job;
	pthread_cond_signal(&f->work);
	return 0;
}

/* The pack's stream that a read of blocks [first, last] continues: one
 * whose span it touches or nearly does; or NULL, with *lru the one to
 * replace. */
static struct remote_stream *stream_find(struct remote_pack_cache *pack, uint64_t first,
					 struct remote_stream **lru)
{
	*lru = &pack->streams[0];
	for (size_t i = 0; i < REMOTE_STREAMS; i++) {
		struct remote_stream *t = &pack->streams[i];
		if (t->used && first + RA_SLACK >= t->lo && first <= t->hi + RA_SLACK)
			return t;
		if (t->used < (*lru)->used)
			*lru = t;
	}
	return NULL;
}

/* Queues blocks [first, end) of pack: one extent going up (its GETs grow
 * to BG_MAX_BLOCKS), pieces of BG_START_BLOCKS from the top down when down
 * (a reader going backward wants the nearest first); then tail. */
static void queue_span(const struct cairn_store *store, struct remote_pack_cache *pack,
		       uint64_t first, uint64_t end, bool down, const struct remote_extent *tail)
{
	uint64_t piece = down ? BG_START_BLOCKS : end - first;
	size_t count = first < end ? (size_t)((end - first + piece - 1) / piece) : 0;
	struct remote_extent *e = calloc(count + 1, sizeof(*e));

	if (!e)
		return;
	for (size_t i = 0; i < count; i++) {
		uint64_t top = down ? end - i * piece : min_u64(first + (i + 1) * piece, end);
		uint64_t bottom = top - first > piece ? top - piece : first;
		e[i] = (struct remote_extent){
			.pack_num = pack->pack_num, .first = bottom, .last = top - 1};
	}
	if (tail)
		e[count++] = *tail;
	if (count)
		(void)remote_fetch_queue(store, e, count); /* best effort: the reads fetch */
	else
		free(e);
}

/* A reader that has read a good share of a pack in scattered order (a tree
 * read in path order, which is pack order only piecewise) will want the
 * rest: queued whole, once, in large GETs. */
static void read_ahead_pack(const struct cairn_store *store, struct remote_pack_cache *pack,
			    uint64_t first, uint64_t last, bool missed)
{
	uint64_t blocks = block_count(pack);

	pack->demand += last - first + 1;
	pack->misses += missed;
	if (pack->whole_queued || pack->misses < RA_PACK_MISSES || pack->demand * 16 < blocks)
		return;
	pack->whole_queued = true;
	queue_span(store, pack, 0, blocks, false, NULL);
}

/* Whether blocks [first, last] of pack are in the queue still (a prefetch
 * the fetcher has not reached yet): a read of them is no miss of its own. */
static bool queued(const struct remote_fetch *f, uint32_t pack_num, uint64_t first, uint64_t last)
{
	for (const struct fetch_job *job = f->head; job; job = job->next) {
		for (size_t i = job->i; i < job->count; i++) {
			const struct remote_extent *e = &job->extents[i];
			uint64_t from = i == job->i && job->b > e->first ? job->b : e->first;
			if (e->pack_num == pack_num && from <= first && last <= e->last)
				return true;
		}
	}
	return false;
}

void remote_read_ahead(const struct cairn_store *store, struct remote_pack_cache *pack,
		       uint64_t first, uint64_t last, bool missed)
{
	struct remote_state *rs = store->remote;
	struct remote_stream *lru;
	uint64_t blocks = block_count(pack);

	if (!fetch_get(rs))
		return;
	if (missed && queued(rs->fetch, pack->pack_num, first, last))
		missed = false;
	read_ahead_pack(store, pack, first, last, missed);
	uint64_t clock = ++rs->fetch->stream_clock;
	struct remote_stream *s = stream_find(pack, first, &lru);
	if (!s) {
		/* A new reader: read-ahead only once it misses again nearby. */
		if (missed)
			*lru = (struct remote_stream){.lo = first,
						      .hi = last + 1,
						      .read_lo = first,
						      .read_hi = last + 1,
						      .prev = first,
						      .window = RA_START,
						      .misses = 1,
						      .used = clock};
		return;
	}
	bool down = first < s->prev;
	s->used = clock;
	s->prev = first;
	s->read_lo = first < s->read_lo ? first : s->read_lo;
	s->read_hi = last + 1 > s->read_hi ? last + 1 : s->read_hi;
	s->lo = s->read_lo < s->lo ? s->read_lo : s->lo;
	s->hi = s->read_hi > s->hi ? s->read_hi : s->hi;
	s->misses += missed;
	uint64_t margin = down ? s->read_lo - s->lo : s->hi - s->read_hi;
	if (s->misses < 2 || (margin >= s->window / 2 && !missed))
		return; /* not a stream yet, or enough queued still */
	/* The span's holes go along (after the part ahead): a reader that
	 * jumps comes back for what it skipped. The fetcher passes over what
	 * is there or on its way. */
	struct remote_extent holes = {
		.pack_num = pack->pack_num, .first = s->lo, .last = s->hi - 1};
	if (down) {
		uint64_t lo = s->read_lo > s->window ? s->read_lo - s->window : 0;
		queue_span(store, pack, lo, s->read_lo, true, &holes);
		s->lo = lo < s->lo ? lo : s->lo;
	} else {
		uint64_t hi = min_u64(s->read_hi + s->window, blocks);
		queue_span(store, pack, s->read_hi, hi, false, &holes);
		s->hi = hi > s->hi ? hi : s->hi;
	}
	s->window = min_u64(s->window * 2, RA_MAX);
}

/* The block maps go with the packs' entries (rs->packs is about to be
 * freed or remade). */
static void blocks_free(struct remote_state *rs)
{
	for (size_t i = 0; rs->packs && i < rs->manifest.pack_count; i++) {
		free(rs->packs[i].blocks);
		rs->packs[i].blocks = NULL;
	}
}

bool remote_fetch_idle(const struct remote_state *rs)
{
	return !rs->fetch || (rs->fetch->fetching == 0 && !rs->fetch->head);
}

void remote_fetch_drain(struct remote_state *rs)
{
	struct remote_fetch *f = rs->fetch;

	if (f) {
		drop_jobs(f);
		while (f->fetching > 0)
			pthread_cond_wait(&f->landed, &rs->lock);
	}
	blocks_free(rs); /* a probe makes them without a fetch */
}

void remote_fetch_free(struct remote_state *rs)
{
	struct remote_fetch *f = rs ? rs->fetch : NULL;

	if (!f) {
		if (rs)
			blocks_free(rs); /* a probe makes them without a fetch */
		return;
	}
	pthread_mutex_lock(&rs->lock);
	bool join = f->started && f->owner == getpid();
	f->stop = true;
	drop_jobs(f);
	pthread_cond_broadcast(&f->work);
	pthread_mutex_unlock(&rs->lock);
	if (join)
		pthread_join(f->thread, NULL);
	while (f->idle_count)
		s3_client_free(f->idle[--f->idle_count]);
	blocks_free(rs);
	pthread_cond_destroy(&f->landed);
	pthread_cond_destroy(&f->work);
	free(f);
	rs->fetch = NULL;
}
