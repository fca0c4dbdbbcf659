/* pack_read.c: reading pack files, STORE/packs/NNNNNNNN.pack (a header,
 * then records: a checked record header with its member table and one zstd
 * or raw frame of whole chunks; then a footer with a checksum of everything
 * before it; docs/FORMAT.md). The frame reader here fetches, checks and
 * decodes one chunk's record for the unpacker (chunk_reader.c), the writer's
 * dedup confirmation, gc and verify; pack_write.c appends records. Pack file
 * names are here too: every part uses them.
 */
#include "store_internal.h"

#include <stdio.h>
#include <string.h>
#include <zstd.h>

void pack_name(uint32_t pack_num, char buf[32])
{
	snprintf(buf, 32, "%08x.pack", pack_num);
}

int pack_parse_name(const char *name, uint32_t *ret)
{
	uint32_t value = 0;

	if (strlen(name) != 13 || strcmp(name + 8, ".pack") != 0)
		return -EINVAL;
	for (size_t i = 0; i < 8; i++) {
		char c = name[i];
		uint32_t digit;
		if (c >= '0' && c <= '9')
			digit = (uint32_t)(c - '0');
		else if (c >= 'a' && c <= 'f')
			digit = (uint32_t)(c - 'a' + 10);
		else
			return -EINVAL;
		value = value << 4 | digit;
	}
	*ret = value;
	return 0;
}

size_t pack_scratch_size(const struct cairn_store_params *params)
{
	return record_head_size(RECORD_MAX_MEMBERS) + ZSTD_compressBound(params->chunk_max);
}

int frame_reader_init(struct frame_reader *reader, const struct cairn_store_params *params,
		      unsigned frames)
{
	*reader = (struct frame_reader){
		.dctx = ZSTD_createDCtx(),
		.record = malloc(pack_scratch_size(params)),
		.frame_count = frames < 1                         ? 1
			       : frames > FRAME_READER_MAX_FRAMES ? FRAME_READER_MAX_FRAMES
								  : frames,
	};
	bool ok = reader->dctx && reader->record;
	for (unsigned i = 0; ok && i < reader->frame_count; i++)
		ok = (reader->frames[i].data = malloc(params->chunk_max)) != NULL;
	if (!ok) {
		frame_reader_release(reader);
		return -ENOMEM;
	}
	return 0;
}

void frame_reader_release(struct frame_reader *reader)
{
	ZSTD_freeDCtx(reader->dctx);
	free(reader->record);
	for (unsigned i = 0; i < DELTA_MAX_DEPTH; i++) {
		free(reader->delta[i].payload);
		free(reader->delta[i].base);
	}
	for (unsigned i = 0; i < FRAME_READER_MAX_FRAMES; i++)
		free(reader->frames[i].data);
	*reader = (struct frame_reader){0};
}

void frame_reader_forget(struct frame_reader *reader)
{
	reader->record_valid = false;
	for (unsigned i = 0; i < reader->frame_count; i++)
		reader->frames[i].valid = false;
}

/* The slot holding entry's decompressed frame, or NULL. */
static struct frame_slot *frame_cached(struct frame_reader *reader, const struct table_entry *entry)
{
	for (unsigned i = 0; i < reader->frame_count; i++) {
		struct frame_slot *slot = &reader->frames[i];
		if (slot->valid && slot->pack == entry->pack_num && slot->offset == entry->offset)
			return slot;
	}
	return NULL;
}

/* An empty slot, or the least recently used one. */
static struct frame_slot *frame_victim(struct frame_reader *reader)
{
	struct frame_slot *victim = &reader->frames[0];

	for (unsigned i = 0; i < reader->frame_count; i++) {
		struct frame_slot *slot = &reader->frames[i];
		if (!slot->valid)
			return slot;
		if (slot->used < victim->used)
			victim = slot;
	}
	return victim;
}

static int64_t read_fail(const struct table_entry *entry, char *msg, size_t msg_size,
			 const char *why)
{
	char hex[CAIRN_ID_HEX + 1];
	char name[32];
	struct cairn_id id;

	memcpy(id.bytes, entry->chunk_id, CAIRN_ID_SIZE);
	cairn_id_to_hex(&id, hex);
	pack_name(entry->pack_num, name);
	cairn_format(msg, msg_size, "chunk %s in packs/%s at offset %llu: %s", hex, name,
		     (unsigned long long)entry->offset, why);
	return -EBADMSG;
}

/* The table is input too: its sizes must never let a read run past a buffer. */
static bool entry_plausible(const struct cairn_store *store, const struct table_entry *entry)
{
	uint32_t max = store->params.chunk_max;

	return entry->members >= 1 && entry->members <= RECORD_MAX_MEMBERS && entry->size > 0 &&
	       entry->frame_size <= max && entry->size <= entry->frame_size &&
	       entry->inner_offset <= entry->frame_size - entry->size &&
	       entry->stored_size <= ZSTD_compressBound(max) && entry->variant < ID_VARIANTS &&
	       (entry->codec == CODEC_ZSTD ||
		(entry->codec == CODEC_RAW && entry->stored_size == entry->frame_size) ||
		(entry->codec == CODEC_DELTA && entry->members == 1 &&
		 entry->frame_size == entry->size &&
		 entry->stored_size > sizeof(struct delta_ref) &&
		 entry->stored_size <= ZSTD_compressBound(max) + sizeof(struct delta_ref)));
}

/* Checks the record header and that entry is one of its members. */
static const char *record_check(const struct table_entry *entry, const uint8_t *record)
{
	const struct pack_record *header = (const struct pack_record *)record;
	const struct pack_member *members = (const struct pack_member *)(header + 1);
	struct store_checksum_stream sum;
	uint64_t offset = 0;
	bool found = false;

	store_checksum_stream_init(&sum);
	store_checksum_stream_update(&sum, header, offsetof(struct pack_record, check));
	store_checksum_stream_update(&sum, members, entry->members * sizeof(*members));
	if (header->magic != RECORD_MAGIC || header->check != store_checksum_stream_final(&sum))
		return "has a damaged record header";
	if (header->members != entry->members || header->codec != entry->codec ||
	    header->frame_size != entry->frame_size || header->stored_size != entry->stored_size)
		return "has a record that does not match the chunk table";
	for (unsigned i = 0; i < header->members; i++) {
		if (offset == entry->inner_offset && members[i].size == entry->size &&
		    members[i].variant == entry->variant &&
		    memcmp(members[i].chunk_id, entry->chunk_id, CAIRN_ID_SIZE) == 0)
			found = true;
		offset += members[i].size;
	}
	if (offset != header->frame_size)
		return "has a record whose member sizes do not add up";
	return found ? NULL : "is not in the record the chunk table names";
}

static const char *frame_decode(struct frame_reader *reader, const struct cairn_store *store,
				const struct table_entry *entry, void *out, char *why,
				size_t why_size)
{
	const uint8_t *payload = reader->record + record_head_size(entry->members);

	if (entry->codec == CODEC_DELTA)
		return delta_decode(reader, store, entry, payload, out, why, why_size);
	if (entry->codec == CODEC_RAW) {
		memcpy(out, payload, entry->frame_size);
		return NULL;
	}
	size_t n = ZSTD_decompressDCtx(reader->dctx, out, entry->frame_size, payload,
				       entry->stored_size);
	return ZSTD_isError(n) || n != entry->frame_size ? "does not decompress" : NULL;
}

/* Finds entry's chunk bytes: decoded into out (a lone chunk) or inside the
 * reader's frame. Returns a pointer to them, or NULL with *ret set. */
const uint8_t *frame_fetch(struct frame_reader *reader, const struct cairn_store *store, int fd,
			   const struct table_entry *entry, void *out, size_t out_size, char *msg,
			   size_t msg_size, int64_t *ret)
{
	const char *why;
	char sizes[96];
	char delta_why[400];

	/* Plausibility first: a size over chunk_max is damage, not a small
	 * buffer, and every way out must leave a message. */
	if (entry->size > store->params.chunk_max) {
		cairn_format(sizes, sizeof(sizes),
			     "has size %u in the chunk table, over chunk_max %u", entry->size,
			     store->params.chunk_max);
		*ret = read_fail(entry, msg, msg_size, sizes);
		return NULL;
	}
	if (!entry_plausible(store, entry)) {
		*ret = read_fail(entry, msg, msg_size, "has impossible sizes in the chunk table");
		return NULL;
	}
	if (entry->size > out_size) {
		read_fail(entry, msg, msg_size, "is larger than the buffer given for it");
		*ret = -ENOBUFS;
		return NULL;
	}
	struct frame_slot *slot = frame_cached(reader, entry);
	if (slot) {
		slot->used = ++reader->clock;
		return slot->data + entry->inner_offset;
	}
	size_t want = record_head_size(entry->members) + entry->stored_size;
	reader->record_valid = false;
	char fetch_why[400];
	int fetched = store_remote_ensure_hold(store, entry->pack_num, entry->offset, want,
					       fetch_why, sizeof(fetch_why));
	if (fetched < 0) {
		read_fail(entry, msg, msg_size, fetch_why);
		*ret = fetched;
		return NULL;
	}
	ssize_t n = cairn_pread_full(fd, reader->record, want, entry->offset);
	store_remote_release(store, entry->pack_num);
	if (n < 0) {
		read_fail(entry, msg, msg_size, strerror((int)-n));
		*ret = n;
		return NULL;
	}
	if ((size_t)n < want) {
		*ret = read_fail(entry, msg, msg_size, "is cut short (the pack is truncated)");
		return NULL;
	}
	if ((why = record_check(entry, reader->record))) {
		*ret = read_fail(entry, msg, msg_size, why);
		return NULL;
	}
	/* A lone chunk decompresses straight into the caller's buffer. */
	bool direct = entry->members == 1 && out_size >= entry->frame_size;
	if (!direct) {
		slot = frame_victim(reader);
		slot->valid = false;
	}
	/* A delta is a lone chunk (direct); decoding its base reuses the
	 * record buffer and the frame slots, never out. */
	if ((why = frame_decode(reader, store, entry, direct ? out : slot->data, delta_why,
				sizeof(delta_why)))) {
		*ret = read_fail(entry, msg, msg_size, why);
		return NULL;
	}
	reader->record_valid = entry->codec != CODEC_DELTA;
	reader->record_pack = entry->pack_num;
	reader->record_offset = entry->offset;
	if (direct)
		return out;
	*slot = (struct frame_slot){.data = slot->data,
				    .valid = true,
				    .pack = entry->pack_num,
				    .offset = entry->offset,
				    .used = ++reader->clock};
	return slot->data + entry->inner_offset;
}

static int64_t frame_reader_get_once(struct frame_reader *reader, const struct cairn_store *store,
				     int fd, const struct table_entry *entry, void *out,
				     size_t out_size, char *msg, size_t msg_size)
{
	struct cairn_id id;
	int64_t r = 0;
	const uint8_t *bytes =
		frame_fetch(reader, store, fd, entry, out, out_size, msg, msg_size, &r);

	if (!bytes)
		return r;
	if (bytes != out)
		memcpy(out, bytes, entry->size);
	store_chunk_id(store, out, entry->size, entry->variant, &id);
	if (memcmp(id.bytes, entry->chunk_id, CAIRN_ID_SIZE) != 0)
		return read_fail(entry, msg, msg_size, "does not match its id");
	return entry->size;
}

int64_t frame_reader_get(struct frame_reader *reader, const struct cairn_store *store, int fd,
			 const struct table_entry *entry, void *out, size_t out_size, char *msg,
			 size_t msg_size)
{
	int64_t r = frame_reader_get_once(reader, store, fd, entry, out, out_size, msg, msg_size);
	char why[400];

	/* Bytes of a remote pack may have been damaged on their way (or in
	 * the host's cache): fetched once more before they count as damage. */
	if (r != -EBADMSG ||
	    store_remote_refetch(store, entry->pack_num, entry->offset,
				 record_head_size(entry->members) + entry->stored_size, why,
				 sizeof(why)) != 1)
		return r;
	frame_reader_forget(reader);
	r = frame_reader_get_once(reader, store, fd, entry, out, out_size, msg, msg_size);
	if (r == -EBADMSG) {
		size_t len = strlen(msg);
		store_remote_describe(store, entry->pack_num, msg + len, msg_size - len);
	}
	return r;
}

int frame_reader_confirm(struct frame_reader *reader, const struct cairn_store *store, int fd,
			 const struct table_entry *entry, const void *data, void *scratch,
			 size_t scratch_size, char *msg, size_t msg_size)
{
	struct cairn_id id;
	int64_t r = 0;
	const uint8_t *bytes =
		frame_fetch(reader, store, fd, entry, scratch, scratch_size, msg, msg_size, &r);

	if (!bytes)
		return (int)r;
	/* data was just hashed to this id: equal bytes have it too. */
	if (memcmp(bytes, data, entry->size) == 0)
		return 1;
	store_chunk_id(store, bytes, entry->size, entry->variant, &id);
	if (memcmp(id.bytes, entry->chunk_id, CAIRN_ID_SIZE) != 0)
		return (int)read_fail(entry, msg, msg_size, "does not match its id");
	return 0;
}

void frame_reader_each_member(struct frame_reader *reader, const struct cairn_store *store,
			      const struct table_entry *entry, cairn_chunk_fn fn, void *userdata)
{
	/* Only right after its record was read: a frame found in the cache
	 * handed out its neighbours when it was decoded. */
	struct frame_slot *slot = frame_cached(reader, entry);
	if (!slot || !reader->record_valid || reader->record_pack != entry->pack_num ||
	    reader->record_offset != entry->offset)
		return;
	const struct pack_record *header = (const struct pack_record *)reader->record;
	const struct pack_member *members = (const struct pack_member *)(header + 1);
	uint64_t offset = 0;

	/* frame_fetch checked the member table against the header's check
	 * and its sizes against frame_size. */
	for (unsigned i = 0; i < header->members; offset += members[i].size, i++) {
		if (offset == entry->inner_offset)
			continue;
		const uint8_t *bytes = slot->data + offset;
		struct cairn_id id;
		store_chunk_id(store, bytes, members[i].size, members[i].variant, &id);
		if (memcmp(id.bytes, members[i].chunk_id, CAIRN_ID_SIZE) == 0)
			fn(userdata, &id, bytes, members[i].size);
	}
}
