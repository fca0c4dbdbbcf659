/* remote_packs.c: a remote store's packs in the per-host mirror: sparse
 * files filled on demand. Beside each packs/N.pack, packs/N.have holds one
 * byte per REMOTE_BLOCK bytes of the pack, 1 once the block's bytes are in
 * the file; it is written after the data, a byte at a time, so mounts on one
 * host may share it. Before store/ preads a record of a remote pack it asks
 * for its range here: missing blocks are fetched, neighbours coalesced into
 * one GET, and a read that keeps going forward fetches further ahead each
 * time (1, 2, 4, ... blocks up to REMOTE_GET_MAX), so a whole file costs a
 * few GETs while a small one costs one block. The bytes are checked by
 * their readers (record checks, chunk ids); one that fails has its blocks
 * forgotten and fetched once more (store_remote_refetch).
 */
#include "remote.h"

#include "store_internal.h"

#include <fcntl.h>
#include <string.h>

static uint64_t min_u64(uint64_t a, uint64_t b)
{
	return a < b ? a : b;
}

/* How many blocks to fetch from first on, missing ones only: the range's
 * own, and ahead as many more as the present blocks just before it (a read
 * going forward), up to REMOTE_GET_MAX in all. */
static uint64_t run_length(const uint8_t *have, uint64_t block_count, uint64_t first, uint64_t last)
{
	const uint64_t max = REMOTE_GET_MAX / REMOTE_BLOCK;
	uint64_t behind = 0;

	while (behind < max && behind < first && have[first - behind - 1])
		behind++;
	uint64_t want = min_u64(max, (last - first + 1) + behind);
	uint64_t n = 0;
	while (n < want && first + n < block_count && !have[first + n])
		n++;
	return n;
}

static int fetch_run(struct remote_pack_cache *pack, uint64_t block, uint64_t count,
		     remote_fetch_fn fetch, void *ctx, uint8_t *buf)
{
	uint8_t ones[REMOTE_GET_MAX / REMOTE_BLOCK];
	uint64_t offset = block * REMOTE_BLOCK;
	uint64_t size = min_u64(count * REMOTE_BLOCK, pack->size - offset);

	int r = fetch(ctx, pack->key, offset, size, buf);
	if (r < 0)
		return r;
	r = cairn_pwrite_all(pack->fd, buf, size, offset);
	if (r < 0)
		return r;
	memset(ones, 1, count);
	return cairn_pwrite_all(pack->have_fd, ones, count, block);
}

int remote_pack_ensure(struct remote_pack_cache *pack, uint64_t offset, uint64_t size,
		       remote_fetch_fn fetch, void *ctx)
{
	if (size == 0 || offset >= pack->size)
		return 0; /* the read comes up short, and says so */
	uint64_t block_count = (pack->size + REMOTE_BLOCK - 1) / REMOTE_BLOCK;
	uint64_t first = offset / REMOTE_BLOCK;
	uint64_t last = (min_u64(offset + size, pack->size) - 1) / REMOTE_BLOCK;
	/* the whole map: a pack's is a few KiB at most */
	_cleanup_free_ uint8_t *have = malloc(block_count);
	_cleanup_free_ uint8_t *buf = NULL;
	if (!have)
		return -ENOMEM;
	ssize_t n = cairn_pread_full(pack->have_fd, have, block_count, 0);
	if (n < 0)
		return (int)n;
	memset(have + n, 0, block_count - (size_t)n);
	for (uint64_t b = first; b <= last;) {
		if (have[b]) {
			b++;
			continue;
		}
		uint64_t count = run_length(have, block_count, b, last);
		if (!buf && !(buf = malloc(REMOTE_GET_MAX)))
			return -ENOMEM;
		int r = fetch_run(pack, b, count, fetch, ctx, buf);
		if (r < 0)
			return r;
		memset(have + b, 1, count);
		b += count;
	}
	return 0;
}

int remote_pack_forget(struct remote_pack_cache *pack, uint64_t offset, uint64_t size)
{
	static const uint8_t zeros[256];

	if (size == 0 || offset >= pack->size)
		return 0;
	uint64_t first = offset / REMOTE_BLOCK;
	uint64_t last = (min_u64(offset + size, pack->size) - 1) / REMOTE_BLOCK;
	for (uint64_t b = first; b <= last; b += sizeof(zeros)) {
		int r = cairn_pwrite_all(pack->have_fd, zeros, min_u64(sizeof(zeros), last - b + 1),
					 b);
		if (r < 0)
			return r;
	}
	return 0;
}
