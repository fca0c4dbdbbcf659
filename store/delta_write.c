/* delta_write.c: the writer's delta chunks. Every chunk's sketch (sketch.c)
 * is computed by the cutter threads (chunk_prepare, writer_chunks.c); for
 * each new chunk the sequencer looks for a similar chunk: among
 * the session's recent new chunks (super-feature map in memory, their bytes
 * in a bounded cache) and in the store's sketch table (any snapshot, any
 * name). When one is found its bytes go with the chunk's group to a
 * worker, which compresses the chunk plain and with the base as a zstd
 * prefix and keeps the delta only when it is clearly smaller. Chains are
 * bounded (DELTA_MAX_DEPTH): a base at the bound is not used, the chunk is
 * stored whole (a rebase). The chunk's id stays the id of its bytes, and
 * dedup hits are still confirmed by bytes (writer_chunks.c).
 */
#include "writer_internal.h"

#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>
#include <zstd.h>

/* A delta is kept when it takes under this share of the plain frame. */
#define DELTA_KEEP_PERCENT 80
/* A delta under 1/DELTA_TINY of its chunk is kept without trying plain:
 * on linux 6.1 a plain frame beat such a delta by 134 bytes in all, and
 * against 1/32 it saves compressing 85 of the 100 MB tried plain. */
#define DELTA_TINY 8
/* A session base is one of the new chunks of the last DELTA_WINDOW bytes
 * (so many slots as average chunks fit, entry index modulo the slots): the
 * reach of the 8 MiB cache of recent chunks' bytes this replaced, so the
 * same bases are chosen and the packs are the same bytes. Only the last
 * ring_bytes of them are kept in memory; an older base is read back from
 * its pack (base_from_pack). A 4 MiB window gave typescript 5.6.3 -> 5.7.3
 * 3.05x patch-from, 8 MiB 2.74x; a window without bound (every session
 * chunk) made linux 6.1's packs 1.6% smaller but cost its first add 0.44
 * CPU-s of read-back (3,329 bases decoded); keeping the bytes cost 8 MB of
 * peak memory (docs/BENCHMARKS.md, "Delta chunks"). */
#define DELTA_WINDOW (8u << 20)
/* The ring covers the chunks on their way to a worker, so that a read-back
 * rarely waits: every group that can exist holding an average chunk, and
 * at least DELTA_RING_MIN. On linux 6.1's first add (the most session
 * bases) 512 KiB read back 1,922 bases, 1 MiB 1,578, about 0.15 s of the
 * sequencer's time either way; 512 KiB kept 0.5 MB more off the peak. */
#define DELTA_RING_MIN   (1u << 19)
#define DELTA_CANDIDATES (2 * SKETCH_SUPER)

struct cache_slot {
	uint32_t entry; /* index + 1 of the entry whose bytes these are; 0: none */
	uint32_t size;
	uint64_t window_pos; /* its start in the window, as if a ring of DELTA_WINDOW */
	uint64_t pos;        /* where its bytes went in the ring, counted from its start */
};

/* The session's super-features are kept by their tag (the high half, as in
 * the store's table, sketch.c): a false match (one in 2^32) only costs a
 * futile delta attempt. One generation of them, tag -> entry: */
struct sf_map {
	uint32_t *tag;   /* open addressing */
	uint32_t *entry; /* entry index + 1; 0: empty */
	size_t cap, count;
};

/* A new chunk's tags, for the commit's sketch table. */
struct session_sketch {
	uint32_t entry;
	uint32_t tag[SKETCH_SUPER];
};

struct delta_writer {
	struct sketch_table *table;
	/* The super-features of the chunks in reach as bases: two
	 * generations, each of at most DELTA_WINDOW bytes of new chunks
	 * (maps[cur] the newer), so they hold every chunk in reach and not
	 * much more. A map of the whole session's (what they replaced) took
	 * 4.2 MB on linux 6.12, and only found chunks out of reach beyond. */
	struct sf_map maps[2];
	unsigned cur;
	uint64_t gen_start; /* window_head when maps[cur] began */
	/* Every sketched new chunk's tags, in order (a newer tag wins). */
	struct session_sketch *sketches;
	size_t sketch_count, sketch_cap;
	/* Recent chunks' bytes in one ring of ring_bytes: slots of their
	 * own, reallocated at each chunk's size, fragmented the heap by
	 * several MB. A slot's bytes are there while the ring has not
	 * wrapped over them (ring_head - pos <= ring_bytes); its chunk is a
	 * base while window_head - window_pos <= DELTA_WINDOW. */
	uint8_t *ring;
	uint64_t ring_head, window_head;
	uint32_t ring_bytes;
	struct cache_slot *cache;
	size_t cache_slots;
};

struct candidate {
	bool session;
	uint32_t index; /* session: entry index */
	struct cairn_id id;
	unsigned hits;
};

/* ---- the session's super-features ---- */

static uint32_t map_tag(uint64_t sf)
{
	uint32_t tag = (uint32_t)(sf >> 32);

	return tag ? tag : 1;
}

static size_t map_find_slot(const struct sf_map *m, uint32_t tag)
{
	size_t i = (size_t)tag & (m->cap - 1);

	while (m->entry[i] != 0 && m->tag[i] != tag)
		i = (i + 1) & (m->cap - 1);
	return i;
}

static int map_grow(struct sf_map *m)
{
	struct sf_map grown = {.cap = m->cap ? m->cap * 2 : 4096, .count = m->count};

	grown.tag = calloc(grown.cap, sizeof(*grown.tag));
	grown.entry = calloc(grown.cap, sizeof(*grown.entry));
	if (!grown.tag || !grown.entry) {
		free(grown.tag);
		free(grown.entry);
		return -ENOMEM;
	}
	for (size_t i = 0; i < m->cap; i++) {
		if (m->entry[i] == 0)
			continue;
		size_t slot = map_find_slot(&grown, m->tag[i]);
		grown.tag[slot] = m->tag[i];
		grown.entry[slot] = m->entry[i];
	}
	free(m->tag);
	free(m->entry);
	*m = grown;
	return 0;
}

static int map_put(struct sf_map *m, uint64_t sf, size_t index)
{
	/* Up to 3/4 full, as the chunk table: probes stay short. */
	if ((m->count + 1) * 4 > m->cap * 3 && map_grow(m) < 0)
		return -ENOMEM;
	size_t slot = map_find_slot(m, map_tag(sf));
	m->count += m->entry[slot] == 0;
	m->tag[slot] = map_tag(sf);
	m->entry[slot] = (uint32_t)(index + 1);
	return 0;
}

static uint32_t map_get(const struct sf_map *m, uint64_t sf)
{
	return m->cap ? m->entry[map_find_slot(m, map_tag(sf))] : 0;
}

static void map_clear(struct sf_map *m)
{
	if (m->cap)
		memset(m->entry, 0, m->cap * sizeof(*m->entry));
	m->count = 0;
}

static void map_free(struct sf_map *m)
{
	free(m->tag);
	free(m->entry);
}

/* The newest chunk in reach with sf's tag: entry index + 1, or 0. */
static uint32_t session_get(const struct delta_writer *d, uint64_t sf)
{
	uint32_t index = map_get(&d->maps[d->cur], sf);

	return index ? index : map_get(&d->maps[d->cur ^ 1], sf);
}

/* Remembers chunk index's sketch: in the newer generation (starting a new
 * one once it holds DELTA_WINDOW bytes: the older one's chunks are then out
 * of reach) and among the session's. */
static int session_put(struct delta_writer *d, const struct sketch *sketch, size_t index)
{
	if (d->window_head - d->gen_start >= DELTA_WINDOW) {
		d->cur ^= 1;
		map_clear(&d->maps[d->cur]);
		d->gen_start = d->window_head;
	}
	for (unsigned s = 0; s < SKETCH_SUPER; s++) {
		int r = map_put(&d->maps[d->cur], sketch->sf[s], index);
		if (r < 0)
			return r;
	}
	if (d->sketch_count == d->sketch_cap) {
		size_t cap = d->sketch_cap ? d->sketch_cap * 2 : 1024;
		struct session_sketch *grown = realloc(d->sketches, cap * sizeof(*grown));
		if (!grown)
			return -ENOMEM;
		d->sketches = grown;
		d->sketch_cap = cap;
	}
	struct session_sketch *out = &d->sketches[d->sketch_count++];
	out->entry = (uint32_t)index;
	for (unsigned s = 0; s < SKETCH_SUPER; s++)
		out->tag[s] = map_tag(sketch->sf[s]);
	return 0;
}

/* ---- the cache of recent chunks' bytes ---- */

/* Where a chunk of size goes in a ring of ring_size whose head is at head:
 * a chunk's bytes never wrap, it starts the ring anew instead. */
static uint64_t ring_place(uint64_t head, uint64_t ring_size, uint32_t size)
{
	if (head % ring_size + size > ring_size)
		head += ring_size - head % ring_size;
	return head;
}

static void cache_put(struct delta_writer *d, size_t index, const uint8_t *data, uint32_t size)
{
	struct cache_slot *slot = &d->cache[index % d->cache_slots];

	if (size > DELTA_WINDOW)
		return;
	uint64_t window_pos = ring_place(d->window_head, DELTA_WINDOW, size);
	d->window_head = window_pos + size;
	*slot = (struct cache_slot){.entry = (uint32_t)(index + 1),
				    .size = size,
				    .window_pos = window_pos,
				    .pos = UINT64_MAX};
	if (size > d->ring_bytes || (!d->ring && !(d->ring = malloc(d->ring_bytes))))
		return; /* read back from its pack if wanted */
	slot->pos = ring_place(d->ring_head, d->ring_bytes, size);
	memcpy(d->ring + slot->pos % d->ring_bytes, data, size);
	d->ring_head = slot->pos + size;
}

/* Whether entry index is within the window: false when not. *ret_bytes is
 * its bytes in the ring, or NULL when they have to be read back. */
static bool cache_get(const struct delta_writer *d, uint32_t index, const uint8_t **ret_bytes)
{
	const struct cache_slot *slot = &d->cache[index % d->cache_slots];

	if (slot->entry != index + 1 || d->window_head - slot->window_pos > DELTA_WINDOW)
		return false;
	*ret_bytes = slot->pos != UINT64_MAX && d->ring_head - slot->pos <= d->ring_bytes
			     ? d->ring + slot->pos % d->ring_bytes
			     : NULL;
	return true;
}

/* ---- finding the session's bases for the frame reader ---- */

static int session_base(void *ctx, const struct cairn_id *id, const struct table_entry **ret,
			int *ret_fd, bool *ret_own_fd)
{
	struct cairn_writer *w = ctx;
	struct new_entry *entry = writer_find_new(w, id);

	if (!entry || entry->in_open_group)
		return -ENOENT;
	int fd = writer_new_entry_fd(w, entry, ret_own_fd);
	if (fd < 0)
		return fd;
	*ret = &entry->e;
	*ret_fd = fd;
	return 0;
}

int delta_writer_new(struct cairn_writer *w)
{
	struct delta_writer *d = calloc(1, sizeof(*d));

	if (!d)
		return -ENOMEM;
	w->delta = d;
	/* Every group that can exist holding an average chunk, at least. */
	size_t in_flight = w->group_limit * (size_t)w->store->params.chunk_avg;
	d->ring_bytes = in_flight > DELTA_RING_MIN ? (uint32_t)in_flight : DELTA_RING_MIN;
	d->ring_bytes = d->ring_bytes < DELTA_WINDOW ? d->ring_bytes : DELTA_WINDOW;
	d->cache_slots = DELTA_WINDOW / w->store->params.chunk_avg;
	d->cache = calloc(d->cache_slots, sizeof(*d->cache));
	if (!d->cache || sketch_table_load(w->store->dirfd, &d->table) < 0)
		return -ENOMEM;
	w->reader.session_base = session_base;
	w->reader.session_ctx = w;
	return 0;
}

void delta_writer_free(struct cairn_writer *w)
{
	struct delta_writer *d = w->delta;

	if (!d)
		return;
	sketch_table_free(d->table);
	map_free(&d->maps[0]);
	map_free(&d->maps[1]);
	free(d->sketches);
	free(d->ring);
	free(d->cache);
	free(d);
	w->delta = NULL;
}

/* ---- choosing a base ---- */

static void candidate_add(struct candidate *cands, unsigned *count, bool session, uint32_t index,
			  const struct cairn_id *id)
{
	for (unsigned i = 0; i < *count; i++) {
		if (cands[i].session == session &&
		    (session ? cands[i].index == index : cairn_id_compare(&cands[i].id, id) == 0)) {
			cands[i].hits++;
			return;
		}
	}
	cands[(*count)++] = (struct candidate){.session = session,
					       .index = index,
					       .id = id ? *id : (struct cairn_id){{0}},
					       .hits = 1};
}

static unsigned candidates_find(struct cairn_writer *w, const struct sketch *sketch, size_t self,
				struct candidate *cands)
{
	unsigned count = 0;

	for (unsigned s = 0; s < SKETCH_SUPER; s++) {
		uint32_t index = session_get(w->delta, sketch->sf[s]);
		struct cairn_id id;
		if (index != 0 && index - 1 != self)
			candidate_add(cands, &count, true, index - 1, NULL);
		const struct table_entry *stored =
			sketch_table_find(w->delta->table, store_table(w->store), sketch->sf[s]);
		/* Never the chunk's own id (a damaged copy being stored anew). */
		if (stored &&
		    memcmp(stored->chunk_id, entry_at(w, self)->e.chunk_id, CAIRN_ID_SIZE) != 0) {
			memcpy(id.bytes, stored->chunk_id, CAIRN_ID_SIZE);
			candidate_add(cands, &count, false, 0, &id);
		}
	}
	return count;
}

static struct delta_job *job_get(struct group *group)
{
	if (!group->delta)
		group->delta = calloc(1, sizeof(*group->delta));
	return group->delta;
}

void delta_job_release(struct delta_job *job)
{
	if (job && job->own) {
		munmap(job->own, job->own_size);
		job->own = NULL;
	}
}

/* Where a base of size bytes goes for the chunk of the writer's chunk
 * group (its bytes not copied in yet): after them in the group's buffer,
 * else in the job's own. Returns it and its room, or NULL. */
static uint8_t *job_room(struct cairn_writer *w, struct delta_job *job, uint32_t size,
			 size_t *ret_room)
{
	size_t max = w->store->params.chunk_max;
	uint32_t chunk = entry_at(w, w->entry_count - 1)->e.size;

	if ((size_t)chunk + size <= max) {
		*ret_room = max - chunk;
		return job->base = w->chunk_group->data + chunk;
	}
	if (!job->own) {
		void *p =
			mmap(NULL, max, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		if (p == MAP_FAILED)
			return NULL;
		job->own = p;
		job->own_size = max;
	}
	*ret_room = max;
	return job->base = job->own;
}

/* A session base no longer in the ring: read back from its pack (and
 * checked against its id) through the writer's frame reader, waiting for
 * its worker if it is still being compressed. Returns its size, or 0 when
 * it cannot be read (it is then simply not used). */
static uint32_t base_from_pack(struct cairn_writer *w, struct new_entry *base,
			       struct delta_job *job)
{
	bool own_fd;
	char msg[400];
	size_t room;
	uint8_t *out = job_room(w, job, base->e.size, &room);
	if (!out)
		return 0;
	int fd = writer_new_entry_fd(w, base, &own_fd);

	if (fd < 0)
		return 0;
	int64_t n =
		frame_reader_get(&w->reader, w->store, fd, &base->e, out, room, msg, sizeof(msg));
	if (own_fd)
		close(fd);
	return n == (int64_t)base->e.size ? base->e.size : 0;
}

/* A session base within the window: its bytes from the ring, the open
 * group, or its pack. Its entry must be in a pack before the delta is (a
 * reader of the delta reads it back from there). */
static int base_from_session(struct cairn_writer *w, uint32_t index, struct delta_job *job)
{
	struct new_entry *base = entry_at(w, index);
	const uint8_t *bytes = NULL;
	uint32_t size = base->e.size;

	if (!cache_get(w->delta, index, &bytes) || base->delta_depth >= DELTA_MAX_DEPTH)
		return 0;
	if (!bytes && base->in_open_group)
		bytes = w->open_group->data + base->e.inner_offset;
	size_t room;
	if (bytes && job_room(w, job, size, &room))
		memcpy(job->base, bytes, size);
	else if (bytes || base_from_pack(w, base, job) == 0)
		return 0;
	if (base->in_open_group) {
		int r = submit_group(w, TAKE_PTR(w->open_group));
		if (r < 0)
			return r;
	}
	job->base_size = size;
	memcpy(job->ref.base_id, base->e.chunk_id, CAIRN_ID_SIZE);
	job->ref.depth = (uint8_t)(base->delta_depth + 1);
	return 1;
}

/* A stored base: read (and checked against its id) through the writer's
 * frame reader. A damaged or unreadable one is simply not used. */
static int base_from_store(struct cairn_writer *w, const struct cairn_id *id, struct delta_job *job)
{
	const struct table_entry *base = table_find(store_table(w->store), id);
	struct delta_ref ref = {.depth = 0};
	char msg[400];

	if (!base)
		return 0;
	int fd = store_pack_fd(w->store, base->pack_num);
	if (fd < 0)
		return 0;
	if (base->codec == CODEC_DELTA && delta_read_ref(w->store, fd, base, &ref) < 0)
		return 0;
	size_t room;
	if (ref.depth >= DELTA_MAX_DEPTH || !job_room(w, job, base->size, &room))
		return 0;
	if (frame_reader_get(&w->reader, w->store, fd, base, job->base, room, msg, sizeof(msg)) < 0)
		return 0;
	job->base_size = base->size;
	memcpy(job->ref.base_id, base->chunk_id, CAIRN_ID_SIZE);
	job->ref.depth = (uint8_t)(ref.depth + 1);
	return 1;
}

static int base_choose(struct cairn_writer *w, struct candidate *cands, unsigned count,
		       struct delta_job *job)
{
	for (unsigned round = 0; round < count; round++) {
		unsigned best = 0;
		for (unsigned i = 1; i < count; i++)
			if (cands[i].hits > cands[best].hits)
				best = i;
		if (cands[best].hits == 0)
			return 0;
		int r = cands[best].session ? base_from_session(w, cands[best].index, job)
					    : base_from_store(w, &cands[best].id, job);
		if (r != 0)
			return r;
		cands[best].hits = 0;
	}
	return 0;
}

int delta_consider(struct cairn_writer *w, struct new_entry *entry, const uint8_t *data,
		   const struct cut *prepared)
{
	struct delta_writer *d = w->delta;
	struct candidate cands[DELTA_CANDIDATES];
	struct sketch sketch;
	size_t self = w->entry_count - 1;

	entry->delta_depth = 0;
	if (prepared ? !prepared->sketched
		     : !sketch_compute(w->chunker.gear, data, entry->e.size, &sketch))
		return 0;
	if (prepared)
		sketch = prepared->sketch;
	unsigned count = candidates_find(w, &sketch, self, cands);
	int r = 0;
	struct delta_job *job = count > 0 ? job_get(w->chunk_group) : NULL;
	if (job) {
		job->ref = (struct delta_ref){.base_size = 0};
		r = base_choose(w, cands, count, job);
		if (r != 1)
			delta_job_release(job);
		if (r < 0)
			return r;
		if (r == 1) {
			job->ref.base_size = job->base_size;
			job->active = true;
			entry->delta_depth = job->ref.depth;
		}
	}
	/* Remembered after the search: a chunk is never its own base. */
	if (session_put(d, &sketch, self) < 0)
		return r; /* only bases and hints the less */
	cache_put(d, self, data, entry->e.size);
	return r;
}

/* ---- the worker side ---- */

/* The delta against the base into payload + its reference; returns its
 * size, or 0 when zstd failed. */
static size_t compress_delta(struct ZSTD_CCtx_s *cctx, const struct group *group,
			     const struct delta_job *job, int level, uint8_t *out, size_t cap)
{
	size_t n = ZSTD_CCtx_reset(cctx, ZSTD_reset_session_and_parameters);

	if (!ZSTD_isError(n))
		n = ZSTD_CCtx_setParameter(cctx, ZSTD_c_compressionLevel, level);
	if (!ZSTD_isError(n))
		n = ZSTD_CCtx_refPrefix(cctx, job->base, job->base_size);
	if (!ZSTD_isError(n))
		n = ZSTD_compress2(cctx, out, cap, group->data, group->size);
	ZSTD_CCtx_reset(cctx, ZSTD_reset_session_and_parameters);
	return ZSTD_isError(n) ? 0 : n;
}

uint32_t delta_compress(struct cairn_writer *w, struct ZSTD_CCtx_s *cctx, const struct group *group,
			uint8_t *payload, size_t cap, uint8_t *scratch, uint8_t *ret_codec)
{
	struct delta_job *job = group->delta;
	size_t ref_size = sizeof(struct delta_ref);
	int level = w->store->params.zstd_level;

	job->active = false;
	size_t n = compress_delta(cctx, group, job, level, payload + ref_size, cap - ref_size);
	delta_job_release(job);
	/* A delta this small beats nearly any plain frame zstd makes of
	 * source or text: the plain frame is not worth its time (plain_size
	 * 0: not measured, `cairn info` estimates it). */
	if (n > 0 && (ref_size + n) * DELTA_TINY < group->size) {
		job->ref.plain_size = 0;
		memcpy(payload, &job->ref, ref_size);
		*ret_codec = CODEC_DELTA;
		return (uint32_t)(ref_size + n);
	}
	size_t plain = ZSTD_compressCCtx(cctx, scratch, ZSTD_compressBound(group->size),
					 group->data, group->size, level);
	bool raw = ZSTD_isError(plain) || plain >= group->size;
	uint32_t plain_size = raw ? group->size : (uint32_t)plain;
	if (n > 0 && (ref_size + n) * 100 < (uint64_t)plain_size * DELTA_KEEP_PERCENT) {
		job->ref.plain_size = plain_size;
		memcpy(payload, &job->ref, ref_size);
		*ret_codec = CODEC_DELTA;
		return (uint32_t)(ref_size + n);
	}
	memcpy(payload, raw ? group->data : scratch, plain_size);
	*ret_codec = raw ? CODEC_RAW : CODEC_ZSTD;
	return plain_size;
}

/* ---- commit ---- */

static int raise_config(struct cairn_writer *w)
{
	for (size_t i = 0; i < w->entry_count; i++) {
		if (entry_at(w, i)->e.codec != CODEC_DELTA)
			continue;
		int r = store_config_raise(w->store);
		if (r < 0)
			writer_set_error(w, "%s", w->store->error);
		return r;
	}
	return 0;
}

struct sketch_cursor {
	struct cairn_writer *w;
	size_t at; /* sketch * SKETCH_SUPER + super-feature */
};

static bool session_next(void *ctx, uint64_t *sf, const uint8_t **id)
{
	struct sketch_cursor *c = ctx;
	const struct delta_writer *d = c->w->delta;

	if (c->at == d->sketch_count * SKETCH_SUPER)
		return false;
	const struct session_sketch *sketch = &d->sketches[c->at / SKETCH_SUPER];
	*sf = (uint64_t)sketch->tag[c->at % SKETCH_SUPER] << 32; /* all the table keeps */
	*id = entry_at(c->w, sketch->entry)->e.chunk_id;
	c->at++;
	return true;
}

static void session_rewind(void *ctx)
{
	((struct sketch_cursor *)ctx)->at = 0;
}

/* The session's sketches merged into STORE/sketches, streamed from the
 * session's list of them (a tag twice: the newer chunk wins). Written before the chunk table: a
 * hint naming chunks a failed commit never stored only costs a futile lookup, and a failing disk
 * fails the commit cleanly. */
static int write_sketches(struct cairn_writer *w)
{
	struct delta_writer *d = w->delta;
	struct sketch_cursor cursor = {.w = w};

	if (d->sketch_count == 0)
		return 0;
	const struct sketch_source source = {session_next, session_rewind, &cursor};
	int r = sketch_table_write(w->store->dirfd, d->table, d->sketch_count * SKETCH_SUPER,
				   &source);
	if (r < 0)
		writer_set_error(w, "%s/%s: %s", w->store->path, SKETCH_NAME, strerror(-r));
	return r;
}

int delta_commit_prepare(struct cairn_writer *w)
{
	int r = raise_config(w);

	return r < 0 ? r : write_sketches(w);
}

void delta_commit_done(struct cairn_writer *w)
{
	struct delta_writer *d = w->delta;
	struct sketch_table *table = NULL;

	if (d->sketch_count > 0 && sketch_table_load(w->store->dirfd, &table) == 0) {
		sketch_table_free(d->table);
		d->table = table;
	}
}

void delta_trim(struct cairn_writer *w)
{
	struct delta_writer *d = w->delta;

	if (!d || !d->ring)
		return;
	for (size_t i = 0; i < d->cache_slots; i++)
		d->cache[i].pos = UINT64_MAX;
	cairn_drop_pages(d->ring, d->ring_bytes);
}

void delta_session_reset(struct cairn_writer *w)
{
	struct delta_writer *d = w->delta;

	if (!d)
		return;
	map_clear(&d->maps[0]);
	map_clear(&d->maps[1]);
	d->cur = 0;
	d->gen_start = 0;
	free(TAKE_PTR(d->sketches));
	d->sketch_count = d->sketch_cap = 0;
	for (size_t i = 0; i < d->cache_slots; i++)
		d->cache[i].entry = 0;
	/* Between sessions (a commit, a rollback) the ring's pages go back. */
	if (d->ring)
		cairn_drop_pages(d->ring, d->ring_bytes);
	d->ring_head = 0;
	d->window_head = 0;
}
