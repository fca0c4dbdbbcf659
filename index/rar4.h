/* rar4.h: what index/ reads of RAR 4's block layout (RAR 4 technote),
 * shared by the pre-walk of multi-volume sets (rar_volumes.c) and the
 * streaming check of stored members in an import (import_rar.c): a 7-byte
 * marker, then blocks of HEAD_CRC(2) HEAD_TYPE(1) HEAD_FLAGS(2)
 * HEAD_SIZE(2), with ADD_SIZE(4) of data after the header when the block
 * has data; a file header's PACK_SIZE is that ADD_SIZE.
 */
#ifndef CAIRN_RAR4_H
#define CAIRN_RAR4_H

#include <stdbool.h>
#include <stdint.h>

#define RAR_MARKER       "Rar!\x1a\x07\x00"
#define RAR_MARKER_SIZE  7
#define RAR_BLOCK_FIXED  7 /* HEAD_CRC, HEAD_TYPE, HEAD_FLAGS, HEAD_SIZE */
#define HEAD_MAIN        0x73
#define HEAD_FILE        0x74
#define HEAD_NEWSUB      0x7a
#define HEAD_END         0x7b
#define LONG_BLOCK       0x8000
#define MHD_VOLUME       0x0001
#define MHD_PASSWORD     0x0080
#define LHD_SPLIT_BEFORE 0x0001
#define LHD_SPLIT_AFTER  0x0002
#define LHD_PASSWORD     0x0004
#define LHD_LARGE        0x0100
#define EARC_NEXT_VOLUME 0x0001
#define METHOD_STORE     0x30
#define FILE_FIXED       32 /* a file header's size without the name */
/* In a file header: FILE_CRC, METHOD, NAME_SIZE, HIGH_PACK_SIZE. */
#define FILE_CRC_AT       16
#define FILE_METHOD_AT    25
#define FILE_NAME_SIZE_AT 26
#define FILE_HIGH_PACK_AT 32

static inline uint16_t rar_le16(const uint8_t *p)
{
	return (uint16_t)(p[0] | p[1] << 8);
}

static inline uint32_t rar_le32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* Whether a block of this type and these flags has data after its header. */
static inline bool rar_block_has_data(unsigned type, unsigned flags)
{
	return (flags & LONG_BLOCK) || type == HEAD_FILE || type == HEAD_NEWSUB;
}

#endif
