/* refresh.c: a reading handle brought up to the store's committed state
 * while it lives, for a mount that shows snapshots added after it started:
 * on a remote store, the pointer checked and the mirror synced when it
 * moved (remote_open.c); on any store, the chunk table mapped again when
 * the one on disk is not the one mapped. The table is compared by its
 * 64-byte header, which holds the body's checksum: one small read. Old
 * tables stay mapped until the handle is freed: an unpacker on another
 * thread may be searching one.
 */
#include "remote.h"
#include "store_internal.h"

#include <fcntl.h>
#include <string.h>

/* Whether STORE/chunks is another table than the one mapped. */
static int table_changed(struct cairn_store *store)
{
	struct table_header disk;

	_cleanup_close_ int fd = cairn_open_file_beneath(store->dirfd, TABLE_NAME, O_RDONLY, 0);
	if (fd < 0)
		return fd;
	ssize_t n = cairn_pread_full(fd, &disk, sizeof(disk), 0);
	if (n < 0)
		return (int)n;
	return (size_t)n != sizeof(disk) ||
	       memcmp(&disk, store_table(store)->header, sizeof(disk)) != 0;
}

static int table_reload(struct cairn_store *store)
{
	struct chunk_table *table;
	char why[300];

	int r = table_load(store->dirfd, &table, why, sizeof(why));
	if (r < 0) {
		store_set_error(store, "%s: %s", store->path, why);
		return r;
	}
	struct chunk_table *old = atomic_exchange(&store->table, table);
	old->retired_next = store->retired;
	store->retired = old;
	return 0;
}

int cairn_store_refresh(struct cairn_store *store, pthread_rwlock_t *swap_lock)
{
	int synced = 0;

	if (store->dirfd < 0 || !store_table(store))
		return -EBADF;
	if (store->remote) {
		synced = remote_refresh(store->remote, store->dirfd, swap_lock);
		if (synced < 0) {
			/* rs->error is shared with the readers' fetches */
			pthread_mutex_lock(&store->remote->lock);
			store_set_error(store, "%s", store->remote->error);
			pthread_mutex_unlock(&store->remote->lock);
			return synced;
		}
		/* The mirror's table changes only with the remote's pointer
		 * (or under a writer of this host, whose push moves it). */
		if (!synced)
			return 0;
	}
	int r = table_changed(store);
	if (r < 0) {
		store_set_error(store, "%s/%s: %s", store->path, TABLE_NAME,
				cairn_path_strerror(r));
		return r;
	}
	bool changed = r > 0;
	if (changed && (r = table_reload(store)) < 0)
		return r;
	return changed || synced ? 1 : 0;
}
