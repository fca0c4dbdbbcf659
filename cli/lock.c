/* lock.c: taking the store's writer lock for the commands that change a
 * store (add, rm, gc): opening the writer is what takes the lock, so they
 * say so when another cairn process holds it, then wait for it, and clear
 * the snapshot temp files a writer that died left behind (the store's own
 * leftovers the writer clears as it opens); gc reports them all.
 */
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "path.h"

int cli_writer_lock(struct cairn_store *store, unsigned threads, struct cairn_writer **ret,
		    struct cairn_leftovers *ret_leftovers)
{
	struct cairn_writer_stats stats;

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
	cairn_writer_stats(writer, &stats);
	r = cairn_snapshot_remove_leftovers(store, &stats.leftovers);
	if (r < 0) {
		cli_error("%s/snapshots: removing temp files: %s", cairn_store_path(store),
			  cairn_path_strerror(r));
		return r;
	}
	if (ret_leftovers)
		*ret_leftovers = stats.leftovers;
	*ret = TAKE_PTR(writer);
	return 0;
}
