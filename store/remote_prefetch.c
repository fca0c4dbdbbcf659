/* remote_prefetch.c: a whole file's pack bytes fetched ahead of its read.
 * On demand (remote_packs.c) a reader fetches one record's blocks at a
 * time, serially, growing its GETs as it goes forward; a caller that is
 * about to read a whole file (cat, extract, the mount's blob maker) knows
 * its chunk list up front. Here the chunks' records become block extents
 * of their packs, the blocks the mirror's .have maps already hold are
 * dropped, and the missing ones are coalesced (gaps up to PREFETCH_GAP
 * fetched along, so a GET is not split for a block or two) into GETs of up
 * to REMOTE_GET_MAX, run PREFETCH_PARALLEL at a time by s3_get_ranges.
 * Each batch is planned from fresh .have maps and fetched under the
 * handle's lock, so a reader of the same handle waits for it rather than
 * fetching its blocks again; between batches the lock is let go.
 */
#include "remote.h"

#include "s3.h"
#include "store_internal.h"

#include <stdlib.h>
#include <string.h>

#define PREFETCH_PARALLEL 8
#define PREFETCH_GAP      REMOTE_BLOCK /* bytes between ranges fetched along */
#define GAP_BLOCKS        (PREFETCH_GAP / REMOTE_BLOCK)
#define MAX_BLOCKS        (REMOTE_GET_MAX / REMOTE_BLOCK)

/* Blocks [first, last] of a pack that a chunk's record touches. */
struct extent {
	uint32_t pack_num;
	uint64_t first, last;
};

/* One GET: blocks [first, last] of pack. */
struct get {
	struct remote_pack_cache *pack;
	uint64_t first, last;
};

struct plan {
	const struct cairn_store *store;
	struct extent *extents;
	size_t count;
	size_t i;   /* the cursor: extent i, */
	uint64_t b; /* from block b on */
	uint8_t *have;
	size_t have_cap;
	uint32_t have_pack;
	bool have_valid;
};

static int extent_compare(const void *a, const void *b)
{
	const struct extent *x = a, *y = b;

	if (x->pack_num != y->pack_num)
		return x->pack_num < y->pack_num ? -1 : 1;
	return x->first < y->first ? -1 : x->first > y->first;
}

/* The records of ids as sorted extents, overlapping and touching ones
 * merged (small chunks share records, records share blocks). */
static int collect(struct plan *p, const struct cairn_id *ids, size_t count)
{
	const struct chunk_table *table = store_table(p->store);

	p->extents = malloc((count ? count : 1) * sizeof(*p->extents));
	if (!p->extents)
		return -ENOMEM;
	for (size_t i = 0; i < count; i++) {
		const struct table_entry *e = table ? table_find(table, &ids[i]) : NULL;
		if (!e)
			continue; /* the read says what is missing */
		uint64_t end = e->offset + record_head_size(e->members) + e->stored_size;
		p->extents[p->count++] = (struct extent){
			.pack_num = e->pack_num,
			.first = e->offset / REMOTE_BLOCK,
			.last = (end - 1) / REMOTE_BLOCK,
		};
	}
	if (p->count > 1)
		qsort(p->extents, p->count, sizeof(*p->extents), extent_compare);
	size_t n = 0;
	for (size_t i = 0; i < p->count; i++) {
		struct extent *last = n ? &p->extents[n - 1] : NULL;
		const struct extent *e = &p->extents[i];
		if (last && last->pack_num == e->pack_num && e->first <= last->last + 1) {
			if (e->last > last->last)
				last->last = e->last;
		} else {
			p->extents[n++] = *e;
		}
	}
	p->count = n;
	return 0;
}

/* pack's .have map into p->have (read afresh once per batch). */
static int load_have(struct plan *p, const struct remote_pack_cache *pack, uint64_t blocks)
{
	if (p->have_valid && p->have_pack == pack->pack_num)
		return 0;
	if (blocks > p->have_cap) {
		uint8_t *have = realloc(p->have, blocks);
		if (!have)
			return -ENOMEM;
		p->have = have;
		p->have_cap = blocks;
	}
	ssize_t n = cairn_pread_full(pack->have_fd, p->have, blocks, 0);
	if (n < 0)
		return (int)n;
	memset(p->have + n, 0, blocks - (size_t)n);
	p->have_pack = pack->pack_num;
	p->have_valid = true;
	return 0;
}

/* Plans up to PREFETCH_PARALLEL GETs of missing blocks from the cursor on,
 * and moves the cursor past them. rs->lock held. Returns how many, or
 * -errno. */
static int plan_batch(struct plan *p, struct get *gets)
{
	int n = 0, r;

	p->have_valid = false;
	for (; p->i < p->count; p->i++, p->b = 0) {
		const struct extent *e = &p->extents[p->i];
		struct remote_pack_cache *pack = remote_pack_cache_get(p->store, e->pack_num, &r);
		if (r < 0)
			return r;
		if (!pack || pack->size == 0)
			continue; /* a local pack: nothing to fetch */
		uint64_t blocks = (pack->size + REMOTE_BLOCK - 1) / REMOTE_BLOCK;
		if ((r = load_have(p, pack, blocks)) < 0)
			return r;
		remote_pack_touch(pack);
		uint64_t last = e->last < blocks ? e->last : blocks - 1;
		if (p->b < e->first)
			p->b = e->first;
		for (; p->b <= last; p->b++) {
			if (p->have[p->b])
				continue;
			struct get *g = n ? &gets[n - 1] : NULL;
			if (g && g->pack == pack && p->b - g->last <= GAP_BLOCKS + 1 &&
			    p->b - g->first < MAX_BLOCKS) {
				g->last = p->b;
				continue;
			}
			if (n == PREFETCH_PARALLEL)
				return n;
			gets[n++] = (struct get){.pack = pack, .first = p->b, .last = p->b};
		}
	}
	return n;
}

static uint64_t get_size(const struct get *g)
{
	uint64_t offset = g->first * REMOTE_BLOCK;
	uint64_t size = (g->last - g->first + 1) * REMOTE_BLOCK;

	return size < g->pack->size - offset ? size : g->pack->size - offset;
}

/* Runs the GETs at once and writes what came into the packs, then marks
 * it in their .have maps. rs->lock held. Returns 0 or the first -errno. */
static int fetch_batch(const struct cairn_store *store, const struct get *gets, int count)
{
	struct remote_state *rs = store->remote;
	uint8_t ones[MAX_BLOCKS];
	char keys[PREFETCH_PARALLEL][REMOTE_PREFIX_MAX + REMOTE_KEY_MAX + 2];
	struct s3_range ranges[PREFETCH_PARALLEL];
	uint64_t total = 0;

	for (int i = 0; i < count; i++)
		total += get_size(&gets[i]);
	_cleanup_free_ uint8_t *buf = malloc(total);
	if (!buf)
		return -ENOMEM;
	memset(ones, 1, sizeof(ones));
	uint8_t *dest = buf;
	for (int i = 0; i < count; i++) {
		ranges[i] = (struct s3_range){
			.key = remote_key(&rs->url, gets[i].pack->key, keys[i], sizeof(keys[i])),
			.offset = gets[i].first * REMOTE_BLOCK,
			.size = get_size(&gets[i]),
			.dest = dest,
		};
		dest += ranges[i].size;
	}
	int r = s3_get_ranges(rs->client, ranges, (size_t)count, PREFETCH_PARALLEL);
	uint64_t fetched = 0;
	if (r < 0)
		remote_set_error(rs, "%s", s3_error(rs->client));
	for (int i = 0; i < count; i++) {
		int w = ranges[i].result;
		if (w == 0)
			w = cairn_pwrite_all(gets[i].pack->fd, ranges[i].dest, ranges[i].size,
					     (off_t)ranges[i].offset);
		if (w == 0)
			w = cairn_pwrite_all(gets[i].pack->have_fd, ones,
					     gets[i].last - gets[i].first + 1,
					     (off_t)gets[i].first);
		if (w == 0)
			fetched += ranges[i].size;
		if (w < 0 && r == 0) {
			r = w;
			remote_set_error(rs, "%s/%s: %s", rs->mirror, "packs", strerror(-w));
		}
	}
	remote_cache_fetched(store, fetched);
	return r;
}

int cairn_store_prefetch(const struct cairn_store *store, const struct cairn_id *ids, size_t count,
			 char *msg, size_t msg_size)
{
	struct remote_state *rs = store->remote;
	struct get gets[PREFETCH_PARALLEL];
	struct plan p = {.store = store};
	int r;

	if (!rs || count == 0)
		return 0;
	if ((r = collect(&p, ids, count)) < 0)
		goto out;
	do {
		pthread_mutex_lock(&rs->lock);
		rs->error[0] = '\0';
		r = plan_batch(&p, gets);
		if (r > 0) {
			int f = fetch_batch(store, gets, r);
			r = f < 0 ? f : 1;
		}
		if (r < 0)
			cairn_format(msg, msg_size, "prefetch: %s",
				     rs->error[0] ? rs->error : strerror(-r));
		pthread_mutex_unlock(&rs->lock);
	} while (r > 0);
out:
	if (r == -ENOMEM)
		cairn_format(msg, msg_size, "prefetch: out of memory");
	free(p.extents);
	free(p.have);
	return r;
}

bool cairn_store_is_remote(const struct cairn_store *store)
{
	return store->remote != NULL;
}
