/* delta.c: reading delta records (docs/FORMAT.md, "Delta records"). A delta
 * chunk is a zstd frame made with another chunk, its base, as a prefix
 * dictionary; the record names the base by chunk id. Decoding reads the
 * base first, through the same frame reader (recursively, at most
 * DELTA_MAX_DEPTH levels, so a read decodes a bounded number of frames and
 * a damaged or cyclic chain ends in an error), and checks it against its id
 * before using it (invariant 2); the caller checks the result against the
 * delta's own id.
 */
#include "store_internal.h"

#include <stdio.h>
#include <string.h>
#include <zstd.h>

int delta_read_ref(const struct cairn_store *store, int fd, const struct table_entry *entry,
		   struct delta_ref *ret)
{
	uint64_t offset = entry->offset + record_head_size(1);
	char msg[400];

	int r = store_remote_ensure(store, entry->pack_num, offset, sizeof(*ret), msg, sizeof(msg));
	if (r < 0)
		return r;
	ssize_t n = cairn_pread_full(fd, ret, sizeof(*ret), offset);

	if (n < 0)
		return (int)n;
	return n == (ssize_t)sizeof(*ret) ? 0 : -EBADMSG;
}

static int level_buffers(struct frame_reader *reader, const struct cairn_store *store,
			 unsigned level)
{
	size_t payload_size =
		ZSTD_compressBound(store->params.chunk_max) + sizeof(struct delta_ref);

	if (!reader->delta[level].payload)
		reader->delta[level].payload = malloc(payload_size);
	if (!reader->delta[level].base)
		reader->delta[level].base = malloc(store->params.chunk_max);
	return reader->delta[level].payload && reader->delta[level].base ? 0 : -ENOMEM;
}

/* The base's table entry and a pack fd for it (*own: close it after). */
static const char *base_locate(struct frame_reader *reader, const struct cairn_store *store,
			       const struct cairn_id *id, const struct table_entry **ret,
			       int *ret_fd, bool *own)
{
	const struct table_entry *base = table_find(store_table(store), id);

	*own = false;
	if (base) {
		int fd = store_pack_fd((struct cairn_store *)store, base->pack_num);
		if (fd < 0)
			return "has a base chunk whose pack cannot be opened";
		*ret = base;
		*ret_fd = fd;
		return NULL;
	}
	if (reader->session_base &&
	    reader->session_base(reader->session_ctx, id, ret, ret_fd, own) == 0)
		return NULL;
	return "has a base chunk that is not in the store";
}

/* Reads the base into the level's buffer and checks it against its id. */
static const char *base_fetch(struct frame_reader *reader, const struct cairn_store *store,
			      const struct delta_ref *ref, unsigned level, const uint8_t **ret,
			      char *why, size_t why_size)
{
	const struct table_entry *base;
	struct cairn_id id, got;
	int fd;
	bool own;
	int64_t r = 0;
	char msg[400];

	memcpy(id.bytes, ref->base_id, CAIRN_ID_SIZE);
	const char *fail = base_locate(reader, store, &id, &base, &fd, &own);
	if (fail)
		return fail;
	if (base->size != ref->base_size) {
		if (own)
			close(fd);
		return "names a base of another size than the stored one";
	}
	reader->delta_level = level + 1;
	const uint8_t *bytes = frame_fetch(reader, store, fd, base, reader->delta[level].base,
					   store->params.chunk_max, msg, sizeof(msg), &r);
	reader->delta_level = level;
	if (own)
		close(fd);
	if (!bytes) {
		cairn_format(why, why_size, "has a base that cannot be read: %s", msg);
		return why;
	}
	store_chunk_id(store, bytes, base->size, base->variant, &got);
	if (memcmp(got.bytes, base->chunk_id, CAIRN_ID_SIZE) != 0) {
		char hex[CAIRN_ID_HEX + 1];
		cairn_id_to_hex(&id, hex);
		cairn_format(why, why_size, "has a damaged base (chunk %s does not match its id)",
			     hex);
		return why;
	}
	*ret = bytes;
	return NULL;
}

const char *delta_decode(struct frame_reader *reader, const struct cairn_store *store,
			 const struct table_entry *entry, const uint8_t *payload, void *out,
			 char *why, size_t why_size)
{
	unsigned level = reader->delta_level;
	struct delta_ref ref;
	const uint8_t *base;

	if (level >= DELTA_MAX_DEPTH)
		return "is a delta deeper than the chain bound (damaged or cyclic bases)";
	if (level_buffers(reader, store, level) < 0)
		return "cannot be decoded: out of memory";
	/* Reading the base reuses reader->record: keep the delta's payload. */
	uint8_t *copy = reader->delta[level].payload;
	memcpy(copy, payload, entry->stored_size);
	memcpy(&ref, copy, sizeof(ref));
	if (ref.depth < 1 || ref.depth > DELTA_MAX_DEPTH)
		return "has a damaged delta reference";
	const char *fail = base_fetch(reader, store, &ref, level, &base, why, why_size);
	if (fail)
		return fail;
	size_t r = ZSTD_DCtx_reset(reader->dctx, ZSTD_reset_session_only);
	if (!ZSTD_isError(r))
		r = ZSTD_DCtx_refPrefix(reader->dctx, base, ref.base_size);
	if (!ZSTD_isError(r))
		r = ZSTD_decompressDCtx(reader->dctx, out, entry->size, copy + sizeof(ref),
					entry->stored_size - sizeof(ref));
	return ZSTD_isError(r) || r != entry->size ? "does not decompress (delta)" : NULL;
}

/* ---- gc and info ---- */

static bool dropped_get(const uint64_t *bits, uint64_t i)
{
	return bits[i / 64] >> (i % 64) & 1;
}

/* One pass over the live deltas; returns how many bases it revived. */
static int64_t keep_pass(struct cairn_store *store, const struct chunk_table *table,
			 uint64_t *dropped, void (*revive)(void *, uint64_t), void *ctx)
{
	int64_t revived = 0;

	for (uint64_t i = 0; i < table->entry_count; i++) {
		const struct table_entry *entry = &table->entries[i];
		struct delta_ref ref;
		struct cairn_id id;
		if (entry->codec != CODEC_DELTA || dropped_get(dropped, i))
			continue;
		int fd = store_pack_fd(store, entry->pack_num);
		if (fd < 0)
			return fd;
		int r = delta_read_ref(store, fd, entry, &ref);
		if (r < 0)
			return r;
		memcpy(id.bytes, ref.base_id, CAIRN_ID_SIZE);
		const struct table_entry *base = table_find(table, &id);
		/* A missing base is damage verify reports; gc keeps the delta. */
		uint64_t b = base ? (uint64_t)(base - table->entries) : 0;
		if (base && dropped_get(dropped, b)) {
			dropped[b / 64] &= ~(1ull << (b % 64));
			revive(ctx, b);
			revived++;
		}
	}
	return revived;
}

int delta_keep_bases(struct cairn_store *store, const struct chunk_table *table, uint64_t *dropped,
		     void (*revive)(void *, uint64_t), void *ctx)
{
	/* A revived base may be a delta itself: chains are at most
	 * DELTA_MAX_DEPTH long, so that many passes reach every base. */
	for (unsigned pass = 0; pass <= DELTA_MAX_DEPTH; pass++) {
		int64_t r = keep_pass(store, table, dropped, revive, ctx);
		if (r <= 0)
			return (int)r;
	}
	return 0;
}

/* What a delta kept without measuring its plain frame would have taken:
 * its size at the compression ratio of the store's whole chunks. */
static uint64_t plain_estimate(const struct chunk_table *table, uint32_t size)
{
	uint64_t whole = 0, stored = 0;

	for (uint64_t i = 0; i < table->entry_count; i++) {
		if (table->entries[i].codec == CODEC_DELTA)
			continue;
		whole += table->entries[i].size;
		stored += entry_stored_share(&table->entries[i]);
	}
	return whole ? (uint64_t)size * stored / whole : size;
}

int cairn_store_delta_stats(struct cairn_store *store, struct cairn_store_delta_stats *ret)
{
	const struct chunk_table *table = store_table(store);
	struct cairn_store_delta_stats stats = {0};
	uint64_t unmeasured = 0, unmeasured_stored = 0;

	if (!table)
		return -EBADF;
	for (uint64_t i = 0; i < table->entry_count; i++) {
		const struct table_entry *entry = &table->entries[i];
		struct delta_ref ref;
		if (entry->codec != CODEC_DELTA)
			continue;
		int fd = store_pack_fd(store, entry->pack_num);
		int r = fd < 0 ? fd : delta_read_ref(store, fd, entry, &ref);
		if (r < 0)
			return r;
		stats.chunks++;
		stats.chunk_bytes += entry->size;
		stats.stored_bytes += entry->stored_size;
		if (ref.plain_size == 0) {
			unmeasured += entry->size;
			unmeasured_stored += entry->stored_size;
		} else if (ref.plain_size > entry->stored_size) {
			stats.saved_bytes += ref.plain_size - entry->stored_size;
		}
	}
	if (unmeasured > 0) {
		uint64_t plain = plain_estimate(table, 1u << 20) * unmeasured >> 20;
		if (plain > unmeasured_stored)
			stats.saved_bytes += plain - unmeasured_stored;
	}
	*ret = stats;
	return 0;
}

int cairn_store_chunk_base(struct cairn_store *store, const struct cairn_id *id,
			   struct cairn_id *ret_base)
{
	const struct chunk_table *table = store_table(store);
	const struct table_entry *entry = table ? table_find(table, id) : NULL;
	struct delta_ref ref;

	if (!entry)
		return -ENOENT;
	if (entry->codec != CODEC_DELTA)
		return 0;
	int fd = store_pack_fd(store, entry->pack_num);
	int r = fd < 0 ? fd : delta_read_ref(store, fd, entry, &ref);
	if (r < 0)
		return r;
	memcpy(ret_base->bytes, ref.base_id, CAIRN_ID_SIZE);
	return 1;
}
