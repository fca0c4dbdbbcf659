/* delta_internal.h: what the writer shares with its delta parts: sketches
 * of chunk content (sketch.c), the store's sketch table (sketch.c), and the
 * per-chunk delta hook that finds a base for a new chunk and the worker
 * side that encodes against it (delta_write.c). Internal to store/.
 */
#ifndef CAIRN_BUILDING_STORE
#error "delta_internal.h is internal to store/; use store.h"
#endif
#ifndef CAIRN_STORE_DELTA_INTERNAL_H
#define CAIRN_STORE_DELTA_INTERNAL_H

#include "store_internal.h"

/* ---- sketches (sketch.c) ---- */

#define SKETCH_SUPER     6    /* super-features per chunk */
#define SKETCH_MIN_CHUNK 1024 /* smaller chunks get no sketch (and no base) */
#define SKETCH_NAME      "sketches"

struct sketch {
	uint64_t sf[SKETCH_SUPER]; /* never 0 */
};

/* Computes chunk's super-features with gear (the chunker's table). Returns
 * false when the chunk is too small or too uniform to sketch. */
bool sketch_compute(const uint64_t gear[256], const uint8_t *data, size_t size, struct sketch *ret);

/* STORE/sketches, super-feature -> chunk id: read with pread, an 8-bit
 * fingerprint per slot kept in memory (sketch.c says why). */
struct sketch_table;
/* Opens dirfd's sketch table and reads its fingerprints. A missing or malformed file is an empty
 * table (it is a hint: ids found are looked up in the chunk table and bases are checked by bytes).
 * Returns 0 or -ENOMEM. */
int sketch_table_load(int dirfd, struct sketch_table **ret);
void sketch_table_free(struct sketch_table *table);
/* The entry of chunks (the current chunk table) that table names for sf,
 * or NULL. */
const struct table_entry *sketch_table_find(const struct sketch_table *table,
					    const struct chunk_table *chunks, uint64_t sf);
/* The new (sf, id) pairs of a rewrite: next yields the next one into *sf
 * and *id (false at the end), rewind starts them over (a rewrite reads
 * them once for each part of the table it writes). */
struct sketch_source {
	bool (*next)(void *ctx, uint64_t *sf, const uint8_t **id);
	void (*rewind)(void *ctx);
	void *ctx;
};
/* Writes table plus count new pairs from source (new ones win) to a temp
 * file and renames it over STORE/sketches. The table is built and written
 * a part of about 1 MiB at a time, so neither table is ever in memory
 * whole. Returns 0 or -errno. */
int sketch_table_write(int dirfd, const struct sketch_table *table, size_t count,
		       const struct sketch_source *source);

/* ---- the writer's delta hook (delta_write.c) ---- */

struct cairn_writer;
struct group;
struct new_entry;
struct cut;
struct ZSTD_CCtx_s;

/* A group's delta work, made on first use and kept with the group: when
 * active, the group is one chunk that the worker encodes against base too
 * and keeps as a delta when clearly smaller (delta_compress). The base's
 * bytes follow the chunk's in the group's buffer when both fit, which they
 * mostly do; otherwise they are in own, mapped for that chunk alone (a
 * buffer of chunk_max kept with every group held 2 MB on linux 6.12). */
struct delta_job {
	bool active;
	uint32_t base_size;
	struct delta_ref ref;
	uint8_t *base; /* base_size bytes, in the group's data or own */
	uint8_t *own;  /* NULL, or own_size bytes mapped */
	size_t own_size;
};

/* Sets up w->delta: the store's sketch table, the session's sketches and
 * recent chunk bytes, and w->reader's way to the session's bases. Returns
 * 0 or -ENOMEM. */
int delta_writer_new(struct cairn_writer *w);
void delta_writer_free(struct cairn_writer *w);
/* The per-chunk hook, called once for each new chunk (entry, the session's
 * last, its bytes at data; prepared its cutter's work or NULL) before it is
 * grouped or submitted: sketches it (unless prepared did),
 * remembers it as a base for later chunks, and looks for a base for it
 * among the session's recent chunks and the store's sketch table. Returns
 * 1 when it attached a base to w->chunk_group (the chunk must then be
 * submitted as a group of its own), 0 when not, or -errno. */
int delta_consider(struct cairn_writer *w, struct new_entry *entry, const uint8_t *data,
		   const struct cut *prepared);
/* Worker side: compresses group (one chunk with an active job) both plain
 * and against its base into payload (cap bytes), keeping the delta when it
 * is under DELTA_KEEP_PERCENT of the plain frame, and unmaps the job's own
 * buffer. scratch is the worker's
 * (ZSTD_compressBound(chunk_max) bytes): a group's own would cost that much
 * for every group in flight. Returns the payload size and the codec. */
uint32_t delta_compress(struct cairn_writer *w, struct ZSTD_CCtx_s *cctx, const struct group *group,
			uint8_t *payload, size_t cap, uint8_t *scratch, uint8_t *ret_codec);
/* Before the table is written: raises the store's config when the session
 * holds a delta, and merges the session's sketches into STORE/sketches.
 * Returns 0 or -errno with a message on the writer. */
int delta_commit_prepare(struct cairn_writer *w);
/* After the table is in place: maps STORE/sketches anew. */
void delta_commit_done(struct cairn_writer *w);
/* Gives back the pages of the recent chunks' bytes (the files flushed):
 * those chunks stay bases, read back from their packs. */
void delta_trim(struct cairn_writer *w);
/* Unmaps a job's own buffer, if any. */
void delta_job_release(struct delta_job *job);
/* Forgets the session's sketches and cached bytes (commit or rollback). */
void delta_session_reset(struct cairn_writer *w);

#endif
