/* import_rar.c: the CRC32 of a RAR 4 archive's stored members, which
 * libarchive 3.6's RAR reader does not check (it checks those of the
 * members it unpacks). The input's bytes are walked block by block as
 * they pass, in order, into the import (the raw input: a file, a pipe, a
 * split archive's parts, an inner archive's spool; or the decoder's
 * output), so that nothing is read twice: a stored member that is whole
 * in this stream (not cut across volumes: the multi-volume pre-walk,
 * rar_volumes.c, checks those) and not encrypted gets the CRC32 of its
 * packed data compared with its header's FILE_CRC. The damage is found
 * once the member's data went past, and reported when libarchive has
 * handed out that entry's data, or at the latest before the snapshot is
 * committed. Anything the walk does not understand ends it quietly:
 * libarchive judges the blocks themselves. RAR 5 is another reader,
 * which checks stored data as it checks the rest.
 */
#include "import_internal.h"
#include "rar4.h"

#include <string.h>
#include <zlib.h>

static void walk_stop(struct import_rar *w)
{
	w->phase = WALK_OFF;
}

/* The next block header, after a block's data. */
static void walk_next_block(struct import_rar *w)
{
	w->phase = WALK_HEADER;
	w->have = 0;
	w->head_size = 0;
}

static void file_begin(struct import_rar *w, unsigned flags)
{
	bool before = flags & LHD_SPLIT_BEFORE, after = flags & LHD_SPLIT_AFTER;
	size_t name_at = FILE_FIXED + (flags & LHD_LARGE ? 8u : 0u);
	size_t name_len = rar_le16(w->head + FILE_NAME_SIZE_AT);
	size_t kept = w->have < sizeof(w->head) ? w->have : sizeof(w->head);

	/* libarchive makes one entry of a file cut across volumes. */
	if (!before)
		w->files++;
	w->check = !before && !after && !(flags & LHD_PASSWORD) &&
		   w->head[FILE_METHOD_AT] == METHOD_STORE;
	w->want = rar_le32(w->head + FILE_CRC_AT);
	w->crc = 0;
	if (name_at > kept)
		name_len = 0;
	else if (name_len > kept - name_at)
		name_len = kept - name_at;
	/* A Unicode name follows a NUL: the part before it names it here. */
	cairn_format(w->name, sizeof(w->name), "%.*s",
		     (int)strnlen((const char *)w->head + name_at, name_len),
		     (const char *)w->head + name_at);
}

static void data_done(struct import_rar *w)
{
	if (w->check && w->crc != w->want && w->bad == 0) {
		w->bad = w->files;
		cairn_format(w->bad_name, sizeof(w->bad_name), "%s", w->name);
	}
	w->check = false;
	walk_next_block(w);
}

/* A whole block header was seen (its first sizeof(head) bytes kept). */
static void block_done(struct import_rar *w)
{
	unsigned type = w->head[2], flags = rar_le16(w->head + 3);
	uint64_t data = rar_block_has_data(type, flags) ? rar_le32(w->head + 7) : 0;

	w->check = false;
	if (type == HEAD_MAIN && (flags & MHD_PASSWORD)) {
		walk_stop(w); /* encrypted headers */
		return;
	}
	if (type == HEAD_END) {
		/* Volumes read as one stream: the next one's marker. */
		w->phase = WALK_MARKER;
		w->have = 0;
		return;
	}
	if (type == HEAD_FILE) {
		if (w->head_size < FILE_FIXED + (flags & LHD_LARGE ? 8u : 0u)) {
			walk_stop(w);
			return;
		}
		if (flags & LHD_LARGE)
			data |= (uint64_t)rar_le32(w->head + FILE_HIGH_PACK_AT) << 32;
		file_begin(w, flags);
	}
	w->data_left = data;
	if (data == 0) {
		data_done(w);
		return;
	}
	w->phase = WALK_DATA;
}

/* The marker or a block header is complete so far. */
static void head_done(struct import_rar *w)
{
	if (w->phase == WALK_MARKER) {
		if (memcmp(w->head, RAR_MARKER, RAR_MARKER_SIZE) != 0)
			walk_stop(w); /* not RAR 4 (or not from its start) */
		else
			walk_next_block(w);
		return;
	}
	if (w->head_size == 0) {
		unsigned type = w->head[2], flags = rar_le16(w->head + 3);
		w->head_size = rar_le16(w->head + 5);
		if (w->head_size < RAR_BLOCK_FIXED + (rar_block_has_data(type, flags) ? 4 : 0)) {
			walk_stop(w);
			return;
		}
		if (w->head_size > w->have)
			return; /* the rest of the header follows */
	}
	block_done(w);
}

static size_t feed_head(struct import_rar *w, const uint8_t *p, size_t size)
{
	size_t need = w->phase == WALK_MARKER ? RAR_MARKER_SIZE
		      : w->head_size == 0     ? RAR_BLOCK_FIXED
					      : w->head_size;
	size_t n = need - w->have < size ? need - w->have : size;

	if (w->have < sizeof(w->head)) {
		size_t keep = sizeof(w->head) - w->have;
		memcpy(w->head + w->have, p, n < keep ? n : keep);
	}
	w->have += n;
	if (w->have == need)
		head_done(w);
	return n;
}

static size_t feed_data(struct import_rar *w, const uint8_t *p, size_t size)
{
	size_t n = w->data_left < size ? (size_t)w->data_left : size;

	if (w->check)
		w->crc = (uint32_t)crc32(w->crc, p, (uInt)n);
	w->data_left -= n;
	if (w->data_left == 0)
		data_done(w);
	return n;
}

void import_rar_feed(struct cairn_import *imp, const void *data, size_t size)
{
	struct import_rar *w = &imp->rar;
	const uint8_t *p = data;

	while (size > 0 && w->phase != WALK_OFF) {
		size_t n = w->phase == WALK_DATA ? feed_data(w, p, size) : feed_head(w, p, size);
		p += n;
		size -= n;
	}
}

void import_rar_entry(struct cairn_import *imp, struct archive *a)
{
	if (archive_format(a) == ARCHIVE_FORMAT_RAR)
		imp->rar.entries++;
}

/* "LABEL: ENTRY: CRC error (damaged data)", naming libarchive's entry when
 * it is the one being read, else the walk's name of it. */
static int rar_fail(struct cairn_import *imp)
{
	const char *path = imp->entry_path;

	if (imp->rar.bad != imp->rar.entries || !path)
		imp->entry_path = imp->rar.bad_name;
	int r = import_fail(imp, -EBADMSG, "CRC error (damaged data)");
	imp->entry_path = path;
	return r;
}

int import_rar_check(struct cairn_import *imp, struct archive *a)
{
	const struct import_rar *w = &imp->rar;

	if (w->bad == 0 || w->bad > w->entries || archive_format(a) != ARCHIVE_FORMAT_RAR)
		return 0;
	return rar_fail(imp);
}

int import_rar_finish(struct cairn_import *imp, struct archive *a)
{
	if (imp->rar.bad == 0 || archive_format(a) != ARCHIVE_FORMAT_RAR)
		return 0;
	return rar_fail(imp);
}
