/* writer_internal.h: what the writer's files share. Adding files to a
 * store is a pipeline (writer_pipe.c): the calling thread only copies file
 * bytes into large batches; cutter threads cut them and hash each chunk; a
 * sequencer thread takes the batches in order, deduplicates and groups the
 * chunks and hands the file chunk lists back; a pool of threads compresses
 * new chunks and appends them to the open pack. New chunks
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
 *   writer_pipe.c    files: batches, the cutters, the sequencer, file results
 *   writer_chunks.c  the session's new chunks: dedup, grouping
 *   writer_copy.c    records copied as they are from a store of the same key
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
	bool in_open_group;  /* sequencer only: bytes still in w->open_group */
	uint8_t delta_depth; /* sequencer only: its chain depth if stored as a delta */
};

/* Chunk bytes on their way to a pack: one frame's worth. */
struct group {
	uint8_t *data; /* chunk_max bytes */
	uint32_t size;
	unsigned count;
	struct new_entry *members[RECORD_MAX_MEMBERS];
	struct delta_job *delta; /* delta_write.c; NULL until first used */
};

/* ---- the file pipeline's batches (writer_pipe.c) ---- */

/* A chunk end found by a cutter, and the chunk's prepared id (variant 0)
 * and sketch (sketched: it has one; false for a chunk too small or too
 * uniform to sketch). */
struct cut {
	uint32_t end; /* batch offset just past the chunk */
	bool prepared, sketched;
	struct cairn_id id;
	struct sketch sketch;
};

enum {
	PIECE_BEGIN = 1, /* the file starts here: the cutter's cuts are the real ones */
	PIECE_END = 2,   /* the file ends here */
	PIECE_SYNC = 4,  /* its result goes to cairn_writer_file_end, not the callback */
};

/* One file's bytes within a batch. A piece that continues a file is cut as
 * if a chunk began at its start; the sequencer resynchronises (see
 * writer_pipe.c). */
struct piece {
	uint32_t start, len;
	uint32_t flags;
	uint32_t first_cut, cut_count;
	uint32_t tail_len; /* the cutter's chunker state at the piece's end */
	uint64_t tail_hash;
	uint64_t cookie;
};

struct batch {
	uint8_t *data;
	uint32_t used;
	struct piece *pieces;
	uint32_t piece_count;
	struct cut *cuts;
	bool cut_done; /* pipe_lock */
};

/* A finished file, waiting for the calling thread to collect it. */
struct file_done {
	uint64_t cookie, size;
	size_t first_ref, ref_count;
	bool sync;
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

	/* the file pipeline (writer_pipe.c); pipe_lock protects down to
	 * "calling thread only" */
	pthread_mutex_t pipe_lock;
	pthread_cond_t pipe_cond; /* any change below: broadcast */
	uint32_t batch_size, piece_cap, cut_cap;
	unsigned batch_total, batch_free_count, cutters_started;
	bool sequencer_started, pipe_stopping;
	struct batch *batch_all;   /* batch_total batches */
	struct batch **batch_free; /* free ones */
	struct batch **batch_ring; /* submitted ones, at seq % batch_total */
	uint64_t seq_submitted, seq_cut_next, seq_sequenced;
	int pipe_error; /* the sequencer's first failure, message in error */
	struct file_done *done;
	size_t done_count, done_cap;
	struct cairn_chunk_ref *done_refs;
	size_t done_ref_count, done_ref_cap;
	struct cairn_writer_stats pub_stats; /* stats as of the last batch sequenced */
	pthread_t *cutters;
	pthread_t sequencer;

	/* calling thread only */
	struct batch *batch; /* being filled, or NULL */
	cairn_writer_file_fn file_fn;
	void *file_data;
	bool in_file;
	uint64_t file_size;
	struct cairn_chunk_ref *refs; /* the last synchronous file's chunks */
	size_t ref_count, ref_cap;
	struct file_done *taken_done; /* collected results, swapped with done */
	size_t taken_done_cap;
	struct cairn_chunk_ref *taken_refs;
	size_t taken_ref_cap;

	/* the sequencer (or the calling thread while no file is in the
	 * pipeline: put, gc, commit, rollback) */
	struct new_entry **blocks;
	size_t block_count, entry_count;
	uint32_t *map; /* open addressing: entry index + 1, 0 = empty */
	size_t map_cap;
	struct cairn_chunker chunker; /* the real cut state of the file in sequence */
	/* sequencer: the group the next large new chunk goes out in, which
	 * delta_consider may give a base (a delta is a group of its own) */
	struct group *chunk_group;
	uint8_t *carry; /* chunk_max: the chunk that spans batches */
	uint32_t carry_len;
	uint64_t seq_file_size;
	struct cairn_chunk_ref *seq_refs; /* the file in sequence's chunks */
	size_t seq_ref_count, seq_ref_cap;
	struct group *open_group;   /* small new chunks gathered so far, or NULL */
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
/* Drops the pages of the free groups' buffers (at commit, all are free). */
void groups_trim(struct cairn_writer *w);
void group_free(struct group *group);

/* ---- the session's new chunks (writer_chunks.c), for delta_write.c ---- */

/* The session's entry with id, or NULL. */
struct new_entry *writer_find_new(struct cairn_writer *w, const struct cairn_id *id);
/* A new entry of the session for id (pending, located by whoever appends
 * its record: writer_copy.c), or NULL when out of memory. */
struct new_entry *writer_entry_add(struct cairn_writer *w, const struct cairn_id *id,
				   unsigned variant, uint32_t size);
/* Waits until entry (submitted) is stored and returns a fd of its pack:
 * *ret_own says the caller closes it. Returns the fd or -errno. */
int writer_new_entry_fd(struct cairn_writer *w, struct new_entry *entry, bool *ret_own);

/* ---- one chunk (writer_chunks.c) ---- */

/* The per-chunk work done off the sequencer, on a cutter thread (or on the
 * sequencer for the few chunks that span batches): the chunk's id (variant
 * 0) and its sketch (delta_consider's, should the chunk be new). */
void chunk_prepare(struct cairn_writer *w, const uint8_t *data, uint32_t size, struct cut *cut);
/* Deduplicates and stores one chunk (sequencer): prepared is its
 * chunk_prepare result or NULL. Writes its id to *ret. */
int store_chunk(struct cairn_writer *w, const uint8_t *data, uint32_t size,
		const struct cut *prepared, struct cairn_id *ret);

/* ---- the file pipeline (writer_pipe.c) ---- */

/* Allocates the batches and starts the cutters and the sequencer. Returns 0
 * or -errno with a message on the store handle. */
int pipe_start(struct cairn_writer *w);
/* Stops and joins them, dropping whatever is queued; frees the batches. */
void pipe_stop(struct cairn_writer *w);
/* Submits the batch being filled and waits until the sequencer has taken
 * every batch; returns its sticky failure. Callers then own the
 * sequencer's state. */
int pipe_drain(struct cairn_writer *w);
/* Forgets an unfinished file, the sequencer's failure and uncollected results. */
void pipe_reset(struct cairn_writer *w);
/* Drops the pages of the idle batches' data (after pipe_drain, all are). */
void pipe_trim(struct cairn_writer *w);

/* ---- commit and rollback (writer_commit.c) ---- */

/* Removes the packs of an uncommitted session. */
void writer_abandon(struct cairn_writer *w);

#endif
