/* authenticate.c: the checks that make a snapshot's bytes usable. No byte
 * of a section is used before the keyed checksum covering it (docs/FORMAT.md,
 * "Checksums") has been compared, so a file changed after its commit (two
 * chunk lists, modes or owners swapped) is refused instead of served.
 * Version 3 snapshots carry a sum per 64 KiB page: opening checks only the
 * small PAGES section, and each page is checked the first time an accessor
 * touches it (index_touch), so a mount's first stat reads a few pages of a
 * large snapshot rather than all of it (docs/BENCHMARKS.md, "Mount start").
 * Versions 1 and 2 have section sums only and are checked whole at open.
 * This file is the one place sums are compared: a later MAC replaces
 * index_section_intact and index_page_intact and nothing else.
 */
#include "index_internal.h"

#include <inttypes.h>
#include <string.h>
#include <sys/mman.h>

const char *index_section_name(uint32_t type)
{
	static const char *const names[SNAP_SECTIONS_MAX + 1] = {
		"", "source", "inodes", "dirents", "strings", "chunks", "xattrs", "pages"};

	return type <= SNAP_SECTIONS_MAX ? names[type] : "unknown";
}

bool index_section_intact(const struct cairn_index *idx, uint32_t i)
{
	const struct snap_section *s = &idx->sections[i];

	return index_checksum(idx->store, idx->base + s->offset, s->size) == s->checksum;
}

/* Cold, the pass faults the file in page by page; asking for it all first
 * lets the kernel read it in large requests. A hint only. */
static void read_ahead(const struct cairn_index *idx)
{
	if (!idx->map)
		return;
	(void)madvise(idx->map, idx->map_size, MADV_WILLNEED);
}

uint32_t index_authenticate(const struct cairn_index *idx)
{
	read_ahead(idx);
	for (uint32_t i = 0; i < idx->section_count; i++)
		if (!index_section_intact(idx, i))
			return idx->sections[i].type;
	return 0;
}

/* ---- pages (version 3) ---- */

bool index_page_intact(const struct cairn_index *idx, uint64_t k)
{
	uint64_t start = idx->pages_start + k * SNAP_PAGE_SIZE;
	uint64_t end =
		idx->pages_end - start < SNAP_PAGE_SIZE ? idx->pages_end : start + SNAP_PAGE_SIZE;
	uint64_t sum;

	memcpy(&sum, idx->page_sums + k * 8, sizeof(sum));
	return index_checksum(idx->store, idx->base + start, end - start) == sum;
}

/* A page failed: the sections it overlaps are judged by their own sums,
 * so the message names the one damaged, as an open of a version 1 file
 * would; a page whose sections all match (damage in padding, or a PAGES
 * section made wrong) is named by number. */
static void page_failed(const struct cairn_index *idx, uint64_t k)
{
	/* The handle is never const where it was made: the message is its one
	 * mutable part, under its own lock. */
	struct cairn_index *mutable = (struct cairn_index *)idx;
	uint64_t at = idx->pages_start + k * SNAP_PAGE_SIZE;
	uint64_t end = idx->pages_end - at < SNAP_PAGE_SIZE ? idx->pages_end : at + SNAP_PAGE_SIZE;

	for (uint32_t i = 0; i < idx->section_count; i++) {
		const struct snap_section *s = &idx->sections[i];
		if (s->offset < end && s->offset + s->size > at && !index_section_intact(idx, i)) {
			index_corrupt(mutable, "the %s section is damaged (checksum mismatch)",
				      index_section_name(s->type));
			return;
		}
	}
	index_corrupt(mutable,
		      "page %" PRIu64 " (bytes %" PRIu64 "..%" PRIu64
		      ") does not match its checksum",
		      k, at, end - 1);
}

static bool check_page(const struct cairn_index *idx, uint64_t k)
{
	if (atomic_load_explicit(&idx->page_ok[k], memory_order_acquire))
		return true;
	if (!index_page_intact(idx, k)) {
		page_failed(idx, k);
		return false;
	}
	atomic_store_explicit(&idx->page_ok[k], 1, memory_order_release);
	return true;
}

bool index_touch(const struct cairn_index *idx, const void *p, uint64_t len)
{
	if (!idx->page_ok || len == 0)
		return true;
	uint64_t off = (uint64_t)((const uint8_t *)p - idx->base);
	if (off < idx->pages_start || off > idx->pages_end || len > idx->pages_end - off) {
		index_corrupt((struct cairn_index *)idx, "a record lies outside the checked pages");
		return false;
	}
	uint64_t first = (off - idx->pages_start) / SNAP_PAGE_SIZE;
	uint64_t last = (off + len - 1 - idx->pages_start) / SNAP_PAGE_SIZE;
	for (uint64_t k = first; k <= last; k++)
		if (!check_page(idx, k))
			return false;
	return true;
}

int index_touch_all(struct cairn_index *idx)
{
	if (!idx->page_ok)
		return 0;
	read_ahead(idx);
	for (uint64_t k = 0; k < idx->page_count; k++)
		if (!check_page(idx, k))
			return -EBADMSG;
	return 0;
}
