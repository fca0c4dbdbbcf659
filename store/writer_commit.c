/* writer_commit.c: ending a session. Commit hands the last open group to
 * the pool, waits for the workers, seals the open pack, fsyncs the packs
 * directory and renames a chunk table merged from the old one and the
 * session's new entries into place (table.c): that rename is the moment the
 * session becomes visible (invariant 1). Rollback and free remove
 * the packs of a session that was not committed.
 */
#include "writer_internal.h"

#include <stdio.h>
#include <string.h>

/* ---- commit ---- */

static int compare_entry_ptr(const void *a, const void *b)
{
	const struct table_entry *const *x = a, *const *y = b;

	return memcmp((*x)->chunk_id, (*y)->chunk_id, CAIRN_ID_SIZE);
}

static int seal_open_pack(struct cairn_writer *w)
{
	int r = 0;

	pthread_mutex_lock(&w->lock);
	if (w->pack_fd >= 0 && w->pack_records > 0)
		r = pack_seal(w);
	else
		pack_discard(w);
	if (r < 0) {
		w->failure = r;
		check_failure_locked(w);
	}
	pthread_mutex_unlock(&w->lock);
	return r;
}

/* *ret_renamed: the new table is in place, even if the call failed after
 * the rename (see table_write_merged); the handle then maps it too. */
static int write_table(struct cairn_writer *w, const uint64_t *old_dropped,
		       const bool *old_pack_dropped, bool *ret_renamed)
{
	char msg[400], load_msg[400];
	struct chunk_table *table;

	_cleanup_free_ const struct table_entry **sorted =
		malloc((w->entry_count ? w->entry_count : 1) * sizeof(*sorted));
	if (!sorted)
		return -ENOMEM;
	for (size_t i = 0; i < w->entry_count; i++)
		sorted[i] = &entry_at(w, i)->e;
	qsort(sorted, w->entry_count, sizeof(*sorted), compare_entry_ptr);
	struct table_build build = {
		.new_entries = sorted,
		.new_count = w->entry_count,
		.new_packs = w->sealed,
		.new_pack_count = w->sealed_count,
		.next_pack_num = w->next_pack_num,
		.old_dropped = old_dropped,
		.old_pack_dropped = old_pack_dropped,
	};
	int r = table_write_merged(w->store->dirfd, store_table(w->store), &build, msg, sizeof(msg),
				   ret_renamed);
	if (*ret_renamed) {
		int load = table_load(w->store->dirfd, &table, load_msg, sizeof(load_msg));
		if (load == 0)
			store_swap_table(w->store, table);
		else if (r == 0)
			cairn_format(msg, sizeof(msg), "%s", load_msg);
		r = r < 0 ? r : load;
	}
	if (r < 0)
		writer_set_error(w, "%s: %s", w->store->path, msg);
	return r;
}

static void session_reset(struct cairn_writer *w)
{
	w->entry_count = 0;
	if (w->map)
		memset(w->map, 0, w->map_cap * sizeof(*w->map));
	w->sealed_count = 0;
	delta_session_reset(w);
}

int cairn_writer_commit(struct cairn_writer *w)
{
	return writer_commit_with(w, NULL, NULL);
}

int writer_commit_with(struct cairn_writer *w, const uint64_t *old_dropped,
		       const bool *old_pack_dropped)
{
	if (w->in_file)
		return -EBUSY;
	int r = pipe_drain(w);
	if (r == 0 && w->open_group)
		r = submit_group(w, TAKE_PTR(w->open_group));
	if (r == 0)
		r = wait_idle(w);
	if (r == 0)
		r = seal_open_pack(w);
	if (r == 0 && w->sealed_count > 0) {
		r = cairn_fsync_dir(w->store->packs_dirfd, ".");
		if (r < 0)
			writer_set_error(w, "%s/packs: fsync: %s", w->store->path, strerror(-r));
	}
	bool renamed = false;
	if (r == 0) {
		/* Every batch and group is idle now: their pages go back to
		 * the kernel before the commit builds its tables in memory. */
		pipe_trim(w);
		groups_trim(w);
		r = delta_commit_prepare(w);
	}
	if (r == 0)
		r = write_table(w, old_dropped, old_pack_dropped, &renamed);
	if (r == 0)
		delta_commit_done(w);
	/* Once the new table is in place, the session's packs are the store's:
	 * a failure after that must not make free or rollback delete them. */
	if (renamed)
		session_reset(w);
	if (r < 0) {
		pthread_mutex_lock(&w->lock);
		if (w->failure == 0)
			w->failure = r;
		cairn_format(w->failure_msg, sizeof(w->failure_msg), "%s", w->error);
		pthread_mutex_unlock(&w->lock);
		return r;
	}
	session_reset(w);
	return 0;
}

int cairn_writer_rollback(struct cairn_writer *w)
{
	/* In-flight groups finish (or fail) first: they write into the packs
	 * that are about to go; the sequencer feeds them. */
	pipe_reset(w);
	wait_idle(w);
	pthread_mutex_lock(&w->lock);
	if (w->open_group) {
		w->free_groups[w->free_count++] = TAKE_PTR(w->open_group);
	}
	w->failure = 0;
	w->failure_msg[0] = '\0';
	pthread_mutex_unlock(&w->lock);
	writer_abandon(w);
	session_reset(w);
	frame_reader_forget(&w->reader);
	return 0;
}

/* Removes the packs of an uncommitted session. */
void writer_abandon(struct cairn_writer *w)
{
	char name[32];

	pack_discard(w);
	for (size_t i = 0; i < w->sealed_count; i++) {
		store_forget_pack_fd(w->store, w->sealed[i].pack_num);
		pack_name(w->sealed[i].pack_num, name);
		unlinkat(w->store->packs_dirfd, name, 0);
	}
	w->sealed_count = 0;
}
