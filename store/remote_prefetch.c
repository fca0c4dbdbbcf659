/* remote_prefetch.c: a whole file's pack bytes fetched ahead of its read.
 * On demand (remote_packs.c) a reader fetches one record's blocks at a
 * time; a caller that is about to read a whole file (cat, extract, the
 * mount's blob maker) knows its chunk list up front. Here the chunks'
 * records become block extents of their packs (gaps up to PREFETCH_GAP
 * fetched along, so a GET is not split for a block or two); a file that
 * lacks only a few blocks gets them at once, in about one GET, and a
 * larger one is handed to the store's background fetcher (remote_fetch.c),
 * which keeps REMOTE_FETCH_PARALLEL range GETs in flight while the caller
 * returns and reads: each of its reads waits only for blocks not there yet.
 */
#include "remote.h"

#include "store_internal.h"

#include <stdlib.h>
#include <string.h>

#define PREFETCH_GAP REMOTE_BLOCK /* bytes between ranges fetched along */
#define GAP_BLOCKS   (PREFETCH_GAP / REMOTE_BLOCK)
/* A file missing at most this many blocks is fetched at once, in the
 * caller's thread (about one GET); more goes to the background. */
#define SYNC_BLOCKS 16

struct plan {
	const struct cairn_store *store;
	struct remote_extent *extents; /* blocks [first, last] of a pack */
	size_t count;
};

static int extent_compare(const void *a, const void *b)
{
	const struct remote_extent *x = a, *y = b;

	if (x->pack_num != y->pack_num)
		return x->pack_num < y->pack_num ? -1 : 1;
	return x->first < y->first ? -1 : x->first > y->first;
}

/* The records of ids as sorted extents, overlapping ones and those less
 * than PREFETCH_GAP apart merged (small chunks share records, records
 * share blocks, and a GET is not split for a block or two). */
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
		p->extents[p->count++] = (struct remote_extent){
			.pack_num = e->pack_num,
			.first = e->offset / REMOTE_BLOCK,
			.last = (end - 1) / REMOTE_BLOCK,
		};
	}
	if (p->count > 1)
		qsort(p->extents, p->count, sizeof(*p->extents), extent_compare);
	size_t n = 0;
	for (size_t i = 0; i < p->count; i++) {
		struct remote_extent *last = n ? &p->extents[n - 1] : NULL;
		const struct remote_extent *e = &p->extents[i];
		if (last && last->pack_num == e->pack_num &&
		    e->first <= last->last + 1 + GAP_BLOCKS) {
			if (e->last > last->last)
				last->last = e->last;
		} else {
			p->extents[n++] = *e;
		}
	}
	p->count = n;
	return 0;
}

/* Blocks of the extents this process must fetch (refreshed from the .have
 * maps). rs->lock held. */
static int64_t missing(const struct cairn_store *store, const struct remote_extent *extents,
		       size_t count)
{
	int64_t total = 0;
	int r;

	for (size_t i = 0; i < count; i++) {
		const struct remote_extent *e = &extents[i];
		struct remote_pack_cache *pack = remote_pack_cache_get(store, e->pack_num, &r);
		if (r < 0)
			return r;
		if (!pack)
			continue;
		int m = remote_pack_probe(pack, e->first, e->last);
		if (m < 0)
			return m;
		if (m)
			total += (int64_t)(e->last - e->first + 1);
		remote_pack_touch(pack);
	}
	return total;
}

int cairn_store_prefetch(const struct cairn_store *store, const struct cairn_id *ids, size_t count,
			 char *msg, size_t msg_size)
{
	struct remote_state *rs = store->remote;
	struct plan p = {.store = store};
	struct remote_pack_cache *pack;
	int r;

	if (!rs || count == 0)
		return 0;
	if (msg_size)
		msg[0] = '\0';
	if ((r = collect(&p, ids, count)) < 0) {
		cairn_format(msg, msg_size, "prefetch: out of memory");
		return r;
	}
	pthread_mutex_lock(&rs->lock);
	int64_t blocks = missing(store, p.extents, p.count);
	if (blocks <= 0) {
		r = (int)blocks;
		free(p.extents);
	} else if (blocks <= SYNC_BLOCKS) {
		/* A small file: its GET here, no thread to start for it. */
		for (size_t i = 0; i < p.count && r == 0; i++)
			r = remote_fetch_blocks(store, p.extents[i].pack_num, p.extents[i].first,
						p.extents[i].last, &pack, msg, msg_size);
		free(p.extents);
	} else {
		r = remote_fetch_queue(store, p.extents, p.count); /* takes them */
	}
	pthread_mutex_unlock(&rs->lock);
	if (r < 0 && (!msg_size || !msg[0]))
		cairn_format(msg, msg_size, "prefetch: %s", strerror(-r));
	return r;
}

bool cairn_store_is_remote(const struct cairn_store *store)
{
	return store->remote != NULL;
}
