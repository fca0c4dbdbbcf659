/* rar_volumes.c: checks of a multi-volume RAR 4 archive (x.part1.rar, ...
 * or x.rar, x.r00, ...) that libarchive 3.6 does not make when it reads
 * the volumes one after the other: it checks no CRC of stored data, and it
 * takes a volume that is missing at the end, or one out of place, for the
 * end of the archive. So before the import, the blocks of every volume are
 * walked (RAR 4 technote: HEAD_SIZE, and PACK_SIZE after a file header):
 * a file cut across volumes must continue in the next one under the same
 * name, each part but the last must match its CRC (of the part's packed
 * data), the last part of a stored file the CRC of the whole file, and the
 * last volume must not announce a next one. Encrypted headers or data are
 * not looked into (libarchive decrypts and checks those as it can).
 */
#include "index_internal.h"
#include "rar4.h"

#include <string.h>
#include <sys/stat.h>
#include <zlib.h>

int cairn_rar_is_volume(int fd)
{
	uint8_t head[14];

	if (cairn_pread_full(fd, head, sizeof(head), 0) != (ssize_t)sizeof(head))
		return 0;
	return memcmp(head, RAR_MARKER, 7) == 0 && head[9] == HEAD_MAIN &&
	       (rar_le16(head + 10) & MHD_VOLUME);
}

/* The walk across the volumes: the file cut at the end of the last one. */
struct rar_walk {
	char name[256]; /* the file continued in the next volume; "" when none */
	uint32_t crc;   /* the CRC32 of its data so far (stored files) */
	char *msg;
	size_t msg_size;
};

/* The CRC32 of size bytes at offset. */
static int crc_of(int fd, uint64_t offset, uint64_t size, uint32_t *crc)
{
	uint8_t buf[65536];

	while (size > 0) {
		size_t want = size < sizeof(buf) ? (size_t)size : sizeof(buf);
		ssize_t n = cairn_pread_full(fd, buf, want, offset);
		if (n < 0)
			return (int)n;
		if ((size_t)n != want)
			return -EBADMSG;
		*crc = (uint32_t)crc32(*crc, buf, (uInt)want);
		offset += want;
		size -= want;
	}
	return 0;
}

static int walk_fail(struct rar_walk *w, const char *name, const char *why)
{
	cairn_format(w->msg, w->msg_size, "%s%s%s", name, *name ? ": " : "", why);
	return -EBADMSG;
}

/* The last volume announces a next one: -ENOENT, msg naming the file that
 * continues there, if any. */
static int walk_missing(struct rar_walk *w, const char *name)
{
	cairn_format(w->msg, w->msg_size, "%s", name);
	return -ENOENT;
}

/* One file header (h, its size bytes) and its data at offset. */
static int walk_file(struct rar_walk *w, int fd, const uint8_t *h, size_t size, uint64_t offset,
		     uint64_t pack)
{
	unsigned flags = rar_le16(h + 3);
	size_t fixed = FILE_FIXED + (flags & LHD_LARGE ? 8 : 0);
	size_t name_len = rar_le16(h + 26);
	char name[256];

	if (size < fixed + name_len)
		return walk_fail(w, "", "a file header too short for its name (damaged)");
	/* A Unicode name follows a NUL: the part before it is enough here. */
	cairn_format(name, sizeof(name), "%.*s", (int)strnlen((const char *)h + fixed, name_len),
		     (const char *)h + fixed);
	bool before = flags & LHD_SPLIT_BEFORE, after = flags & LHD_SPLIT_AFTER;
	if (before && strcmp(name, w->name) != 0)
		return walk_fail(w, name,
				 "continues a file the volume before does not end with "
				 "(a volume missing or out of order?)");
	if (!before && w->name[0])
		return walk_fail(w, w->name,
				 "not continued in the next volume "
				 "(a volume missing or out of order?)");
	if (!before)
		w->crc = 0;
	cairn_format(w->name, sizeof(w->name), "%s", after ? name : "");
	if (flags & LHD_PASSWORD)
		return 0;
	bool stored = h[25] == METHOD_STORE;
	uint32_t part_crc = 0, whole_crc = w->crc;
	if (after || stored) {
		int r = crc_of(fd, offset, pack, &part_crc);
		if (r == -EBADMSG)
			return walk_fail(w, name, "truncated");
		if (r < 0)
			return r;
		whole_crc = (uint32_t)crc32_combine(w->crc, part_crc, (z_off_t)pack);
	}
	uint32_t want = rar_le32(h + 16);
	if ((after && part_crc != want) || (!after && stored && whole_crc != want))
		return walk_fail(w, name, "CRC error (a damaged volume)");
	w->crc = whole_crc;
	return 0;
}

/* The blocks of one volume (fd, size bytes). */
static int walk_volume(struct rar_walk *w, int fd, uint64_t size, bool last)
{
	uint8_t h[65536];
	uint64_t at = 7;

	if (cairn_pread_full(fd, h, 14, 0) != 14 || memcmp(h, RAR_MARKER, 7) != 0 ||
	    h[9] != HEAD_MAIN || !(rar_le16(h + 10) & MHD_VOLUME))
		return walk_fail(w, "", "not a RAR volume");
	if (rar_le16(h + 10) & MHD_PASSWORD)
		return 1; /* encrypted headers: nothing to walk */
	while (at + 7 <= size) {
		if (cairn_pread_full(fd, h, 7, at) != 7)
			return walk_fail(w, "", "truncated");
		unsigned type = h[2], flags = rar_le16(h + 3), head_size = rar_le16(h + 5);
		bool has_data = rar_block_has_data(type, flags);
		if (head_size < 7 + (has_data ? 4 : 0) || at + head_size > size)
			return walk_fail(w, "", "a damaged block header");
		if (cairn_pread_full(fd, h, head_size, at) != (ssize_t)head_size)
			return walk_fail(w, "", "truncated");
		uint64_t data = has_data ? rar_le32(h + 7) : 0;
		if (type == HEAD_FILE && (flags & LHD_LARGE) && head_size >= FILE_FIXED + 8)
			data |= (uint64_t)rar_le32(h + 32) << 32;
		if (type == HEAD_FILE) {
			if (head_size < FILE_FIXED)
				return walk_fail(w, "", "a damaged file header");
			int r = walk_file(w, fd, h, head_size, at + head_size, data);
			if (r < 0)
				return r;
		}
		if (type == HEAD_END) {
			if (last && (flags & EARC_NEXT_VOLUME))
				return walk_missing(w, w->name);
			break;
		}
		at += head_size + data;
	}
	if (last && w->name[0])
		return walk_missing(w, w->name);
	return 0;
}

int cairn_rar_volumes_check(const int *fds, size_t count, size_t *ret_volume, char *msg,
			    size_t msg_size)
{
	struct rar_walk w = {.msg = msg, .msg_size = msg_size};
	struct stat st;

	for (size_t i = 0; i < count; i++) {
		*ret_volume = i;
		if (fstat(fds[i], &st) < 0)
			return -errno;
		int r = walk_volume(&w, fds[i], (uint64_t)st.st_size, i + 1 == count);
		if (r != 0)
			return r < 0 ? r : 0;
	}
	return 0;
}
