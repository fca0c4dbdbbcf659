/* authenticate.c: the check that makes a snapshot's bytes usable. Opening a
 * snapshot checks every section's keyed checksum (docs/FORMAT.md,
 * "Checksums") over the whole mapping before any accessor reads a byte of
 * it, so a file changed after its commit (two chunk lists, modes or owners
 * swapped) is refused instead of served. One pass of the store's keyed XXH3
 * over the file costs about 1 ms for an 85k-entry snapshot with the file in
 * the page cache (docs/BENCHMARKS.md, "Snapshot open"), so it is done whole
 * at open rather than per section on first touch. This is the one place the
 * sums are compared: a later MAC over the sections replaces
 * index_section_intact and nothing else.
 */
#include "index_internal.h"

#include <sys/mman.h>

const char *index_section_name(uint32_t type)
{
	static const char *const names[SNAP_SECTION_COUNT + 1] = {
		"", "source", "inodes", "dirents", "strings", "chunks", "xattrs"};

	return type <= SNAP_SECTION_COUNT ? names[type] : "unknown";
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
	for (uint32_t i = 0; i < SNAP_SECTION_COUNT; i++)
		if (!index_section_intact(idx, i))
			return idx->sections[i].type;
	return 0;
}
