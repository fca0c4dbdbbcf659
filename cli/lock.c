/* lock.c: taking the store's writer lock for the commands that change a
 * store (add, rm, gc): opening the writer is what takes the lock, so they
 * say so when another cairn process holds it, then wait for it, and clear
 * the snapshot temp files a writer that died left behind.
 */
#include <stdio.h>
#include <string.h>

#include "cli.h"

int cli_writer_lock(struct cairn_store *store, unsigned threads, struct cairn_writer **ret)
{
	_cleanup_(cairn_writer_freep) struct cairn_writer *writer = NULL;

	int r = cairn_writer_open(store, CAIRN_WRITER_NOWAIT, threads, &writer);
	if (r == -EWOULDBLOCK) {
		fprintf(stderr, "cairn: %s: waiting for another cairn process writing to it\n",
			cairn_store_path(store));
		r = cairn_writer_open(store, 0, threads, &writer);
	}
	if (r < 0) {
		cli_error("%s", cairn_store_error(store));
		return r;
	}
	r = cairn_snapshot_remove_leftovers(store);
	if (r < 0) {
		cli_error("%s/snapshots: removing temp files: %s", cairn_store_path(store),
			  strerror(-r));
		return r;
	}
	*ret = TAKE_PTR(writer);
	return 0;
}
