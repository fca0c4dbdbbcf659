/* writer_internal.h: what the writer's files share. Adding chunks to a
 * store: the calling thread cuts, hashes and deduplicates; a pool of threads
 * compresses new chunks and appends them to the open pack. New chunks
 * smaller than chunk_avg are gathered into groups of up to chunk_max bytes
 * that compress as one frame (small files gain most of the ratio they would
 * lose alone). A dedup hit is only trusted after comparing bytes with the
 * stored chunk (invariant 3): distinct bytes under one id are
 * re-hashed with the next id variant and stored apart. Nothing is visible to
 * readers until commit renames a merged chunk table into place.
 *
 * The files, each calling only those listed after it (and writer_set_error):
 *   writer.c         the handle: open (the store's lock, leftovers), free, stats
 *   writer_commit.c  commit, rollback, abandoning an uncommitted session
 *   writer_chunks.c  the session's new chunks: dedup, grouping, files
 *   writer_pool.c    the compression worker pool and its groups
 *   pack_write.c     appending records to the open pack, sealing it
 */
#ifndef CAIRN_BUILDING_STORE
#error "writer_internal.h is internal to store/; use store.h"
#endif
#ifndef CAIRN_STORE_WRITER_INTERNAL_H
#define CAIRN_STORE_WRITER_INTERNAL_H

#include "store_internal.h"
#include "delta_internal.h"

#define BLOCK_SHIFT 12
#define BLOCK_SIZE  (1u << BLOCK_SHIFT)

enum entry_state {
	ENTRY_PENDING = 0,
	ENTRY_STORED = 1,
	ENTRY_FAILED = 2,
};

struct new_entry {
	struct table_entry e; /* location written by a worker before state */
	atomic_int state;
	bool in_open_group;  /* main thread only: bytes still in w->open_group */
	uint8_t delta_depth; /* main thread only: its chain depth if stored as a delta */
};

/* Chunk bytes on their way to a pack: one frame's worth. */
struct group {
	uint8_t *data; /* chunk_max bytes */
	uint32_t size;
	unsigned count;
	struct new_entry *members[RECORD_MAX_MEMBERS];
	struct delta_job *delta; /* delta_write.c; NULL until first used */
};

struct cairn_writer {
	struct cairn_store *store;
	int lock_fd;
	unsigned thread_count, threads_started;
	pthread_t *threads;

	pthread_mutex_t lock;     /* protects the fields down to "main thread only" */
	pthread_cond_t work_cond; /* a group was queued, or stopping */
	pthread_cond_t done_cond; /* a group was stored, or a queue slot freed */
	struct group **queue;
	size_t queue_cap, queue_head, queue_len;
	size_t in_flight; /* groups queued or being compressed */
	bool stopping;
	int failure; /* first worker error, sticky */
	char failure_msg[512];
	struct group **free_groups;
	size_t free_count, group_count, group_limit;
	int pack_fd; /* the open pack, -1 if none */
	uint32_t pack_num;
	uint64_t pack_size, pack_records;
	char pack_tmp[32];
	struct store_checksum_stream pack_checksum;
	struct table_pack *sealed; /* packs sealed since the last commit */
	size_t sealed_count, sealed_cap;
	uint32_t next_pack_num;
	uint64_t bytes_stored;

	/* main thread only */
	struct new_entry **blocks;
	size_t block_count, entry_count;
	uint32_t *map; /* open addressing: entry index + 1, 0 = empty */
	size_t map_cap;
	struct cairn_chunker chunker;
	struct group *chunk_group; /* data holds the chunk being cut */
	struct group *open_group;  /* small new chunks gathered so far, or NULL */
	bool in_file;
	uint64_t file_size;
	struct cairn_chunk_ref *refs;
	size_t ref_count, ref_cap;
	struct frame_reader reader; /* for confirming dedup hits */
	uint8_t *confirm_buf;
	struct cairn_writer_stats stats;
	struct delta_writer *delta; /* delta_write.c: sketches, recent chunks */
	char error[512];
};

static inline struct new_entry *entry_at(const struct cairn_writer *w, size_t index)
{
	return &w->blocks[index >> BLOCK_SHIFT][index & (BLOCK_SIZE - 1)];
}

/* ---- the open pack (pack_write.c; callers hold w->lock) ---- */

/* Appends group's frame as one record, stored_size payload bytes at record
 * after room for the record header and member table (both filled here),
 * sealing the open pack first when the record would take it past pack_max
 * and starting one when none is open; fills in the members' locations.
 * Returns 0 or -errno with a message in w->failure_msg. */
int pack_append(struct cairn_writer *w, struct group *group, uint8_t *record, uint32_t stored_size,
		uint8_t codec);
/* Footer, fsync, rename to its final name; adds it to w->sealed. On failure
 * the pack is discarded. */
int pack_seal(struct cairn_writer *w);
/* Closes and removes the open pack, if any. */
void pack_discard(struct cairn_writer *w);

/* ---- the worker pool (writer_pool.c) ---- */

/* Starts w->thread_count workers. Returns 0 or -errno with a message on
 * the store handle. */
int writer_start_threads(struct cairn_writer *w);
/* Lets the workers finish the queue, then joins them. */
void writer_stop_threads(struct cairn_writer *w);
/* Returns the sticky worker failure, copying its message (w->lock held). */
int check_failure_locked(struct cairn_writer *w);
/* Hands a filled group to the workers; the writer no longer owns it. */
int submit_group(struct cairn_writer *w, struct group *group);
/* Waits until no group is queued or being compressed; returns the sticky
 * failure. */
int wait_idle(struct cairn_writer *w);
/* Returns an empty group, or NULL when out of memory. */
struct group *group_get(struct cairn_writer *w);
void group_free(struct group *group);

/* ---- the session's new chunks (writer_chunks.c), for delta_write.c ---- */

/* The session's entry with id, or NULL. */
struct new_entry *writer_find_new(struct cairn_writer *w, const struct cairn_id *id);
/* Waits until entry (submitted) is stored and returns a fd of its pack:
 * *ret_own says the caller closes it. Returns the fd or -errno. */
int writer_new_entry_fd(struct cairn_writer *w, struct new_entry *entry, bool *ret_own);

/* ---- commit and rollback (writer_commit.c) ---- */

/* Removes the packs of an uncommitted session. */
void writer_abandon(struct cairn_writer *w);

#endif
