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

#include "s3.h"
#include "store_internal.h"

#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

static uint64_t min_u64(uint64_t a, uint64_t b)
{
	return a < b ? a : b;
}

/* How many blocks to fetch from first (a missing one) on: the range's own,
 * and ahead as many more as the present blocks just before it (a read
 * going forward), up to REMOTE_GET_MAX in all, ending at a missing block. */
static uint64_t run_length(const uint8_t *have, uint64_t block_count, uint64_t first, uint64_t last)
{
	const uint64_t max = REMOTE_GET_MAX / REMOTE_BLOCK;
	uint64_t behind = 0;

	while (behind < max && behind < first && have[first - behind - 1])
		behind++;
	uint64_t want = min_u64(max, (last - first + 1) + behind);
	uint64_t n = 0;
	/* Up to the last missing block in the window: present ones between
	 * (read by another thread ahead) are fetched again rather than
	 * splitting the GET. */
	for (uint64_t i = 0; i < want && first + i < block_count; i++)
		if (!have[first + i])
			n = i + 1;
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

/* ---- the store's hooks ---- */

/* remote_fetch_fn over the store's client (rs->lock held). */
static int client_fetch(void *ctx, const char *key, uint64_t offset, uint64_t size, void *dest)
{
	struct remote_state *rs = ctx;
	char full[REMOTE_PREFIX_MAX + REMOTE_KEY_MAX + 2];
	struct s3_range range = {.key = remote_key(&rs->url, key, full, sizeof(full)),
				 .offset = offset,
				 .size = size,
				 .dest = dest};

	int r = s3_get_ranges(rs->client, &range, 1, 1);
	if (r == 0)
		rs->cache_fetched += size;
	if (r < 0)
		remote_set_error(rs, "%s", s3_error(rs->client));
	return r;
}

struct remote_pack_cache *remote_pack_cache_get(const struct cairn_store *store, uint32_t pack_num,
						int *ret)
{
	struct remote_state *rs = store->remote;
	const struct remote_pack *p = remote_manifest_pack(&rs->manifest, pack_num);
	char name[32];

	*ret = 0;
	if (!p || !rs->packs)
		return NULL;
	struct remote_pack_cache *pack = &rs->packs[p - rs->manifest.packs];
	if (pack->fd < 0) {
		pack_name(pack_num, name);
		pack->fd = cairn_open_file_beneath(store->packs_dirfd, name, O_RDWR, 0);
		if (pack->fd < 0) {
			*ret = pack->fd;
			return NULL;
		}
	}
	if (pack->have_fd < 0) {
		cairn_format(name, sizeof(name), "%08" PRIx32 ".have", pack_num);
		pack->have_fd =
			cairn_open_file_beneath(store->packs_dirfd, name, O_RDWR | O_CREAT, 0600);
		if (pack->have_fd < 0) {
			*ret = pack->have_fd;
			return NULL;
		}
	}
	return pack;
}

static int ensure_or_refetch(const struct cairn_store *store, uint32_t pack_num, uint64_t offset,
			     uint64_t size, bool refetch, bool hold, char *msg, size_t msg_size)
{
	struct remote_state *rs = store->remote;
	int r;

	if (!rs)
		return 0;
	pthread_mutex_lock(&rs->lock);
	struct remote_pack_cache *pack = remote_pack_cache_get(store, pack_num, &r);
	if (pack && refetch)
		r = remote_pack_forget(pack, offset, size);
	if (pack && r == 0) {
		rs->error[0] = '\0';
		r = remote_pack_ensure(pack, offset, size, client_fetch, rs);
	}
	if (pack && r == 0) {
		/* held while the bound is checked: its caller reads it next */
		pack->readers++;
		remote_pack_touch(pack);
		remote_cache_fetched(store, 0);
		pack->readers -= !hold;
	}
	if (r < 0)
		cairn_format(msg, msg_size, "cannot be fetched: %s",
			     rs->error[0] ? rs->error : strerror(-r));
	pthread_mutex_unlock(&rs->lock);
	return r < 0 ? r : pack && refetch ? 1 : 0;
}

int store_remote_ensure(const struct cairn_store *store, uint32_t pack_num, uint64_t offset,
			uint64_t size, char *msg, size_t msg_size)
{
	return ensure_or_refetch(store, pack_num, offset, size, false, false, msg, msg_size);
}

int store_remote_ensure_hold(const struct cairn_store *store, uint32_t pack_num, uint64_t offset,
			     uint64_t size, char *msg, size_t msg_size)
{
	return ensure_or_refetch(store, pack_num, offset, size, false, true, msg, msg_size);
}

void store_remote_release(const struct cairn_store *store, uint32_t pack_num)
{
	struct remote_state *rs = store->remote;
	int r;

	if (!rs)
		return;
	pthread_mutex_lock(&rs->lock);
	struct remote_pack_cache *pack = remote_pack_cache_get(store, pack_num, &r);
	if (pack && pack->readers > 0)
		pack->readers--;
	pthread_mutex_unlock(&rs->lock);
}

int store_remote_refetch(const struct cairn_store *store, uint32_t pack_num, uint64_t offset,
			 uint64_t size, char *msg, size_t msg_size)
{
	return ensure_or_refetch(store, pack_num, offset, size, true, false, msg, msg_size);
}

void store_remote_describe(const struct cairn_store *store, uint32_t pack_num, char *buf,
			   size_t size)
{
	struct remote_state *rs = store->remote;
	const struct remote_pack *p = rs ? remote_manifest_pack(&rs->manifest, pack_num) : NULL;

	if (size)
		buf[0] = '\0';
	if (p)
		cairn_format(buf, size, " (fetched twice from %s/%s)", rs->display, p->key);
}

/* ---- snapshot files, fetched when first opened ---- */

static int fetch_snapshot(struct remote_state *rs, int snaps_fd, const struct remote_snapshot *s)
{
	_cleanup_free_ uint8_t *data = NULL;
	size_t size;
	char tmp[64];

	int r = remote_get_checked(rs, &s->object, &data, &size);
	if (r < 0)
		return r;
	_cleanup_close_ int fd =
		cairn_tmp_open(snaps_fd, "tmp-remote-", "", 0600, tmp, sizeof(tmp));
	if (fd < 0)
		return fd;
	r = cairn_write_all(fd, data, size);
	if (r == 0 && renameat(snaps_fd, tmp, snaps_fd, s->name) < 0)
		r = -errno;
	if (r < 0) {
		unlinkat(snaps_fd, tmp, 0);
		remote_set_error(rs, "%s/%s/%s: %s", rs->mirror, REMOTE_SNAPSHOTS, s->name,
				 strerror(-r));
	}
	return r;
}

int cairn_store_snapshot_fetch(const struct cairn_store *store, const char *name, char *msg,
			       size_t msg_size)
{
	struct remote_state *rs = store->remote;
	struct stat st;

	if (!rs)
		return 0;
	const struct remote_snapshot *s = remote_manifest_snapshot(&rs->manifest, name);
	_cleanup_close_ int snaps_fd = cairn_open_dir_beneath(store->dirfd, REMOTE_SNAPSHOTS);
	if (!s || snaps_fd < 0 || fstatat(snaps_fd, name, &st, AT_SYMLINK_NOFOLLOW) < 0 ||
	    !S_ISREG(st.st_mode) || st.st_size != 0 || s->object.size == 0)
		return 0; /* nothing to fetch: the open says what is wrong, if anything */
	pthread_mutex_lock(&rs->lock);
	rs->error[0] = '\0';
	int r = fetch_snapshot(rs, snaps_fd, s);
	if (r < 0)
		cairn_format(msg, msg_size, "%s", rs->error);
	pthread_mutex_unlock(&rs->lock);
	return r;
}
