/* remote_packs.c: a remote store's packs in the per-host mirror: sparse
 * files filled on demand. Beside each packs/N.pack, packs/N.have holds one
 * byte per REMOTE_BLOCK bytes of the pack, 1 once the block's bytes are in
 * the file; it is written after the data, a byte at a time, so mounts on one
 * host may share it. Before store/ preads a record of a remote pack it asks
 * for its range here: the blocks it lacks are fetched (remote_fetch.c: no
 * lock held across the GET; a block another thread is fetching is waited
 * for), and a reader that keeps going forward gets read-ahead queued in the
 * background, so a tree read costs a few GETs per pack while a small read
 * costs one. The bytes are checked by their readers (record checks, chunk
 * ids); one that fails has its blocks forgotten and fetched once more
 * (store_remote_refetch).
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
	if (msg_size)
		msg[0] = '\0';
	pthread_mutex_lock(&rs->lock);
	struct remote_pack_cache *pack = remote_pack_cache_get(store, pack_num, &r);
	if (!pack || size == 0 || offset >= pack->size) {
		/* a local pack, or a read that comes up short and says so */
		pthread_mutex_unlock(&rs->lock);
		if (r < 0)
			cairn_format(msg, msg_size, "cannot be fetched: %s", strerror(-r));
		return r < 0 ? r : pack && refetch ? 1 : 0;
	}
	uint64_t first = offset / REMOTE_BLOCK;
	uint64_t last = (min_u64(offset + size, pack->size) - 1) / REMOTE_BLOCK;
	if (refetch)
		r = remote_pack_forget(pack, first, last);
	int missing = r == 0 ? remote_pack_probe(pack, first, last) : r;
	if (missing < 0)
		r = missing;
	else if (!refetch) /* before the fetch, so that it runs alongside */
		remote_read_ahead(store, pack, first, last, missing == 1);
	if (r == 0)
		r = remote_fetch_blocks(store, pack_num, first, last, &pack, msg, msg_size);
	if (r == 0 && pack) {
		/* held while the bound is checked: its caller reads it next */
		pack->readers++;
		remote_pack_touch(pack);
		if (missing == 1 && remote_fetch_idle(rs))
			remote_cache_settle(store); /* its own GET was the last one */
		else
			remote_cache_fetched(store, 0);
		pack->readers -= !hold;
	}
	pthread_mutex_unlock(&rs->lock);
	if (r < 0 && (!msg_size || !msg[0]))
		cairn_format(msg, msg_size, "cannot be fetched: %s", strerror(-r));
	return r < 0 ? r : refetch ? 1 : 0;
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
	/* A check that found the cache over its bound with this pack held
	 * left it over; with nothing fetching, no later fetch would check
	 * again (the last read of a cat, a mount gone quiet). */
	if (pack && pack->readers == 0 && remote_fetch_idle(rs))
		remote_cache_settle(store);
	pthread_mutex_unlock(&rs->lock);
}

int store_remote_refetch(const struct cairn_store *store, uint32_t pack_num, uint64_t offset,
			 uint64_t size, char *msg, size_t msg_size)
{
	return ensure_or_refetch(store, pack_num, offset, size, true, false, msg, msg_size);
}

/* Under rs->lock: a mount's refresh may replace the manifest meanwhile. */
void store_remote_describe(const struct cairn_store *store, uint32_t pack_num, char *buf,
			   size_t size)
{
	struct remote_state *rs = store->remote;

	if (size)
		buf[0] = '\0';
	if (!rs)
		return;
	pthread_mutex_lock(&rs->lock);
	const struct remote_pack *p = remote_manifest_pack(&rs->manifest, pack_num);
	if (p)
		cairn_format(buf, size, " (fetched twice from %s/%s)", rs->display, p->key);
	pthread_mutex_unlock(&rs->lock);
}

/* ---- snapshot files, fetched when first opened ---- */

static int fetch_snapshot(struct remote_state *rs, int snaps_fd, const struct remote_snapshot *s)
{
	_cleanup_free_ uint8_t *data = NULL;
	size_t size;

	int r = remote_get_checked(rs, &s->object, &data, &size);
	if (r == 0 && (r = remote_install(snaps_fd, s->name, data, size)) < 0)
		remote_set_error(rs, "%s/%s/%s: %s", rs->mirror, REMOTE_SNAPSHOTS, s->name,
				 strerror(-r));
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
