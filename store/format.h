/* format.h: the on-disk structs of the store (config, pack files, the chunk
 * table), each pinned to docs/FORMAT.md with _Static_assert, and the few
 * inline helpers that only read their fields. Kept apart from
 * store_internal.h's in-memory internals so that the byte layout is read and
 * changed in one place. Little-endian: meson refuses big-endian hosts.
 */
#ifndef CAIRN_BUILDING_STORE
#error "format.h is internal to store/; use store.h"
#endif
#ifndef CAIRN_STORE_FORMAT_H
#define CAIRN_STORE_FORMAT_H

#include "store.h"

#include <stddef.h>
#include <stdint.h>

#define CONFIG_MAGIC   "CAIRNCFG"
#define CONFIG_VERSION 1u
/* Version 2: the store may hold delta records (CODEC_DELTA). A writer
 * raises a version 1 store to 2 before it commits its first delta, so a
 * cairn that reads only version 1 refuses the store as unsupported instead
 * of misreading a delta. Readers take both. */
#define CONFIG_VERSION_DELTA 2u
/* Version 3: the chunk ids are made by the function config.id_hash names
 * (CAIRN_ID_SHA256: HMAC-SHA-256); the store may hold delta records too. A
 * store is made at version 3 when its ids are not XXH3-128, so a cairn that
 * knows only XXH3 ids refuses it as unsupported instead of finding every
 * chunk damaged. */
#define CONFIG_VERSION_IDS 3u
#define KEY_SIZE           32

struct config_disk {
	char magic[8];
	uint32_t version;
	uint32_t size;
	uint32_t chunk_min;
	uint32_t chunk_avg;
	uint32_t chunk_max;
	int32_t zstd_level;
	uint64_t pack_max;
	uint8_t hash_key[KEY_SIZE];
	uint8_t id_hash; /* enum cairn_id_hash; 0 below version 3 */
	uint8_t reserved[47];
	uint64_t checksum; /* XXH3-64 of the 120 bytes before it */
};
_Static_assert(sizeof(struct config_disk) == 128, "config is 128 bytes");
_Static_assert(offsetof(struct config_disk, hash_key) == 40, "config layout");
_Static_assert(offsetof(struct config_disk, id_hash) == 72, "config layout");
_Static_assert(offsetof(struct config_disk, checksum) == 120, "config layout");

#define PACK_MAGIC        "CAIRNPK1"
#define PACK_FOOTER_MAGIC "CAIRNPKE"
#define PACK_VERSION      1u
#define RECORD_MAGIC      0x31434b43u /* "CKC1" */

enum chunk_codec {
	CODEC_RAW = 0,
	CODEC_ZSTD = 1,
	CODEC_DELTA = 2, /* one member; payload: struct delta_ref, then a zstd frame */
};

/* A delta record's payload starts with this reference to its base: the
 * zstd frame after it was made with the base chunk's bytes as a prefix
 * dictionary (ZSTD_CCtx_refPrefix). depth is 1 + the base's depth (0 for a
 * whole chunk) and at most DELTA_MAX_DEPTH, so a read decodes at most
 * DELTA_MAX_DEPTH + 1 frames. */
#define DELTA_MAX_DEPTH 4
struct delta_ref {
	uint8_t base_id[CAIRN_ID_SIZE];
	uint32_t base_size;
	uint8_t depth;
	uint8_t reserved[3];
	uint32_t plain_size; /* payload bytes the chunk took as a plain frame (info's "saved") */
	uint32_t reserved2;
};
_Static_assert(sizeof(struct delta_ref) == 32, "delta reference is 32 bytes");

struct pack_header {
	char magic[8];
	uint32_t version;
	uint32_t pack_num;
	uint8_t reserved[8];
	uint64_t check; /* XXH3-64 of the 24 bytes before it */
};
_Static_assert(sizeof(struct pack_header) == 32, "pack header is 32 bytes");

/* A record is one compressed frame holding one or more whole chunks: chunks
 * smaller than chunk_avg are grouped, up to chunk_max bytes a frame, so small
 * files compress together while a random read still decompresses at most
 * chunk_max bytes. */
#define RECORD_MAX_MEMBERS 256

struct pack_record {
	uint32_t magic;
	uint16_t members; /* chunks in the frame, 1..RECORD_MAX_MEMBERS */
	uint8_t codec;
	uint8_t reserved0;
	uint32_t frame_size;  /* uncompressed bytes of the frame */
	uint32_t stored_size; /* payload bytes after the member table */
	uint8_t reserved[8];
	uint64_t check; /* XXH3-64 of the 24 bytes before it and the member table */
};
_Static_assert(sizeof(struct pack_record) == 32, "record header is 32 bytes");
_Static_assert(offsetof(struct pack_record, check) == 24, "record layout");

struct pack_member {
	uint8_t chunk_id[CAIRN_ID_SIZE];
	uint32_t size;
	uint8_t variant;
	uint8_t reserved[3];
};
_Static_assert(sizeof(struct pack_member) == 24, "member is 24 bytes");

static inline size_t record_head_size(unsigned members)
{
	return sizeof(struct pack_record) + (size_t)members * sizeof(struct pack_member);
}

struct pack_footer {
	char magic[8];
	uint64_t record_count;
	uint64_t data_end; /* offset of this footer */
	uint64_t checksum; /* XXH3-64 of bytes [0, data_end) */
};
_Static_assert(sizeof(struct pack_footer) == 32, "pack footer is 32 bytes");

#define TABLE_MAGIC   "CAIRNCT1"
#define TABLE_VERSION 1u
#define TABLE_NAME    "chunks"

struct table_header {
	char magic[8];
	uint32_t version;
	uint32_t header_size;
	uint64_t entry_count;
	uint32_t pack_count;
	uint32_t next_pack_num;
	uint64_t body_checksum; /* XXH3-64 of everything after the header */
	uint8_t reserved[16];
	uint64_t check; /* XXH3-64 of the 56 bytes before it */
};
_Static_assert(sizeof(struct table_header) == 64, "table header is 64 bytes");

struct table_pack {
	uint32_t pack_num;
	uint32_t reserved;
	uint64_t size; /* bytes, footer included */
};
_Static_assert(sizeof(struct table_pack) == 16, "table pack entry is 16 bytes");

struct table_entry {
	uint8_t chunk_id[CAIRN_ID_SIZE];
	uint32_t pack_num;
	uint32_t size;
	uint64_t offset;       /* of the record header in the pack */
	uint32_t stored_size;  /* the record's payload bytes */
	uint32_t frame_size;   /* the record's uncompressed frame bytes */
	uint32_t inner_offset; /* of this chunk in the frame */
	uint16_t members;      /* the record's member count */
	uint8_t codec;
	uint8_t variant;
};
_Static_assert(sizeof(struct table_entry) == 48, "table entry is 48 bytes");
_Static_assert(offsetof(struct table_entry, offset) == 24, "table entry layout");
_Static_assert(offsetof(struct table_entry, members) == 44, "table entry layout");

#define FANOUT_SIZE 256

/* A chunk's share of its record's payload: a grouped frame's compressed
 * bytes split among its members by size. */
static inline uint64_t entry_stored_share(const struct table_entry *entry)
{
	return entry->frame_size ? (uint64_t)entry->stored_size * entry->size / entry->frame_size
				 : entry->stored_size;
}

#endif
