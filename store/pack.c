/* pack.c: pack files, STORE/packs/NNNNNNNN.pack: a header, then records (a
 * checked 40-byte header and the chunk's zstd frame or raw bytes), then a
 * footer with a checksum of everything before it. This file encodes and
 * decodes records; the writer appends them and verify walks them.
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

void pack_header_init(struct pack_header *header, uint32_t pack_num)
{
	memset(header, 0, sizeof(*header));
	memcpy(header->magic, PACK_MAGIC, 8);
	header->version = PACK_VERSION;
	header->pack_num = pack_num;
	header->check = store_checksum(header, offsetof(struct pack_header, check));
}

void pack_record_init(struct pack_record *record, const struct cairn_id *id, uint32_t size,
		      uint32_t stored_size, uint8_t codec, uint8_t variant)
{
	memset(record, 0, sizeof(*record));
	memcpy(record->chunk_id, id->bytes, CAIRN_ID_SIZE);
	record->magic = RECORD_MAGIC;
	record->size = size;
	record->stored_size = stored_size;
	record->codec = codec;
	record->variant = variant;
	record->check = store_checksum(record, offsetof(struct pack_record, check));
}

static int record_check(const struct pack_record *record, const struct table_entry *entry)
{
	if (record->magic != RECORD_MAGIC ||
	    record->check != store_checksum(record, offsetof(struct pack_record, check)))
		return -EBADMSG;
	if (memcmp(record->chunk_id, entry->chunk_id, CAIRN_ID_SIZE) != 0 ||
	    record->size != entry->size || record->stored_size != entry->stored_size ||
	    record->codec != entry->codec || record->variant != entry->variant)
		return -EBADMSG;
	return 0;
}

static void entry_where(const struct table_entry *entry, char *buf, size_t size)
{
	char hex[CAIRN_ID_HEX + 1];
	char name[32];
	struct cairn_id id;

	memcpy(id.bytes, entry->chunk_id, CAIRN_ID_SIZE);
	cairn_id_to_hex(&id, hex);
	pack_name(entry->pack_num, name);
	snprintf(buf, size, "chunk %s in packs/%s at offset %llu", hex, name,
		 (unsigned long long)entry->offset);
}

static int64_t decode_fail(const struct table_entry *entry, char *msg, size_t msg_size,
			   const char *why)
{
	char where[128];

	entry_where(entry, where, sizeof(where));
	cairn_format(msg, msg_size, "%s: %s", where, why);
	return -EBADMSG;
}

int64_t pack_record_decode(const struct cairn_store *store, ZSTD_DCtx *dctx,
			   const struct table_entry *entry, const uint8_t *record, size_t size,
			   void *out, size_t out_size, char *msg, size_t msg_size)
{
	const struct pack_record *header = (const struct pack_record *)record;
	const uint8_t *payload = record + sizeof(*header);
	struct cairn_id id;

	if (entry->size > out_size)
		return -ENOBUFS;
	if (entry->variant >= ID_VARIANTS)
		return decode_fail(entry, msg, msg_size, "has an invalid id variant");
	if (size < sizeof(*header) + entry->stored_size)
		return decode_fail(entry, msg, msg_size, "is cut short (pack truncated)");
	if (record_check(header, entry) < 0)
		return decode_fail(entry, msg, msg_size, "has a damaged record header");
	if (entry->codec == CODEC_RAW) {
		if (entry->stored_size != entry->size)
			return decode_fail(entry, msg, msg_size, "has a raw size mismatch");
		memcpy(out, payload, entry->size);
	} else if (entry->codec == CODEC_ZSTD) {
		size_t n = ZSTD_decompressDCtx(dctx, out, entry->size, payload, entry->stored_size);
		if (ZSTD_isError(n) || n != entry->size)
			return decode_fail(entry, msg, msg_size, "does not decompress");
	} else {
		return decode_fail(entry, msg, msg_size, "has an unknown codec");
	}
	store_chunk_id(store, out, entry->size, entry->variant, &id);
	if (memcmp(id.bytes, entry->chunk_id, CAIRN_ID_SIZE) != 0)
		return decode_fail(entry, msg, msg_size, "does not match its id");
	return entry->size;
}

size_t pack_scratch_size(const struct cairn_store_params *params)
{
	return sizeof(struct pack_record) + ZSTD_compressBound(params->chunk_max);
}

int64_t pack_read_entry(const struct cairn_store *store, ZSTD_DCtx *dctx, int fd,
			const struct table_entry *entry, uint8_t *scratch, void *out,
			size_t out_size, char *msg, size_t msg_size)
{
	size_t want = sizeof(struct pack_record) + entry->stored_size;

	/* The table is input too: never let it size a read past scratch. */
	if (entry->size > store->params.chunk_max || want > pack_scratch_size(&store->params))
		return decode_fail(entry, msg, msg_size, "has impossible sizes in the chunk table");
	ssize_t n = cairn_pread_full(fd, scratch, want, entry->offset);

	if (n < 0) {
		char where[128];
		entry_where(entry, where, sizeof(where));
		cairn_format(msg, msg_size, "%s: %s", where, strerror((int)-n));
		return n;
	}
	return pack_record_decode(store, dctx, entry, scratch, (size_t)n, out, out_size, msg,
				  msg_size);
}
