/* fuzz_snapshot.c: libFuzzer target for the snapshot reader, the parser of
 * untrusted bytes that every mount runs. The input is opened as a snapshot
 * (checksums off, so mutations reach the records instead of stopping at the
 * header) and then everything is walked: every inode's attributes, xattrs,
 * symlink target, chunk runs and a run lookup at a few offsets, every
 * directory by readdir and lookup, some path resolutions, and the full
 * check. Any crash, sanitizer report or out-of-bounds read is a bug; return
 * codes do not matter. The same function replays the corpus in the normal
 * test suite (replay.c).
 */
#include "index_internal.h"

#include <string.h>
#include <sys/stat.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define WALK_INODES_MAX 4096u

static void walk_file(struct cairn_index *idx, uint64_t ino)
{
	struct cairn_index_file file;
	struct cairn_index_run run;
	uint32_t i;

	if (cairn_index_file(idx, ino, &file) < 0)
		return;
	for (i = 0; i < file.run_count && i < 64; i++)
		cairn_index_run(idx, ino, i, &run);
	uint64_t offsets[] = {
		0,         file.size / 3, file.size / 2, file.size ? file.size - 1 : 0,
		file.size, UINT64_MAX};
	for (size_t k = 0; k < sizeof(offsets) / sizeof(offsets[0]); k++)
		cairn_index_find_run(idx, ino, offsets[k], &i);
}

static void walk_dir(struct cairn_index *idx, uint64_t ino)
{
	struct cairn_index_dirent d;
	uint64_t found;

	for (uint64_t pos = 0; pos < 256; pos++) {
		if (cairn_index_readdir(idx, ino, pos, &d) <= 0)
			break;
		cairn_index_lookup(idx, ino, d.name, d.name_len, &found);
	}
	cairn_index_lookup(idx, ino, "zzz", 3, &found);
	cairn_index_lookup(idx, ino, "", 0, &found);
}

static void walk_inode(struct cairn_index *idx, uint64_t ino)
{
	struct cairn_index_stat st;
	struct cairn_index_xattr x;
	const char *target;
	size_t len;

	if (cairn_index_getattr(idx, ino, &st) < 0)
		return;
	for (size_t pos = 0; pos < 64; pos++)
		if (cairn_index_xattr(idx, ino, pos, &x) <= 0)
			break;
	cairn_index_getxattr(idx, ino, "user.x", &x);
	if (S_ISREG(st.mode))
		walk_file(idx, ino);
	else if (S_ISDIR(st.mode))
		walk_dir(idx, ino);
	else if (S_ISLNK(st.mode))
		cairn_index_readlink(idx, ino, &target, &len);
}

static void count_problem(void *userdata, const char *problem)
{
	(void)problem;
	(*(int *)userdata)++;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct cairn_index_info info;
	uint64_t ino;
	int problems = 0;

	/* A copy with the alignment a mapping has. */
	uint64_t *copy = malloc((size / 8 + 1) * 8);
	struct cairn_index *idx = cairn_index_new();
	if (!copy || !idx)
		goto out;
	memcpy(copy, data, size);
	if (index_open_memory(idx, NULL, copy, size, "fuzz", INDEX_OPEN_NO_CHECKSUMS) < 0)
		goto out;
	cairn_index_show_versions(idx, true); /* NAME.versions too */
	cairn_index_info(idx, &info);
	uint64_t count = info.inode_count < WALK_INODES_MAX ? info.inode_count : WALK_INODES_MAX;
	for (ino = 0; ino <= count + 1; ino++)
		walk_inode(idx, ino);
	cairn_index_resolve(idx, "a/b/../c", true, &ino);
	cairn_index_resolve(idx, "/x/./y", false, &ino);
	if (info.inode_count <= WALK_INODES_MAX)
		cairn_index_check(idx, false, count_problem, &problems);
out:
	cairn_index_free(idx);
	free(copy);
	return 0;
}
