/* check.c: the full verification of a snapshot (`cairn verify` calls it):
 * every section's checksum, every record through the same bounds-checked
 * accessors the mount uses, the order of every directory's names, the tree's
 * shape and link counts, the header's totals and, optionally, that the store
 * holds every chunk. Opening checks only what is O(1); this is O(size).
 */
#include "index_internal.h"

#include <dirent.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#define REPORTS_MAX 100

struct check {
	struct cairn_index *idx;
	bool check_chunks;
	cairn_index_report_fn report;
	void *userdata;
	int64_t problems;
	uint32_t *refs;          /* per inode: dirents naming it */
	uint64_t versions_first; /* the first versions directory's inode */
	uint64_t file_count, file_bytes;
};

static void problem(struct check *c, const char *fmt, ...) _printf_(2, 3);
static void problem(struct check *c, const char *fmt, ...)
{
	char msg[600];
	va_list ap;

	if (++c->problems > REPORTS_MAX)
		return;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (c->problems == REPORTS_MAX)
		cairn_format(msg + strlen(msg), sizeof(msg) - strlen(msg),
			     " (further problems are counted, not shown)");
	c->report(c->userdata, msg);
}

static void check_checksums(struct check *c)
{
	const struct cairn_index *idx = c->idx;

	if (!idx->store)
		return;
	for (uint32_t i = 0; i < idx->section_count; i++)
		if (!index_section_intact(idx, i))
			problem(c, "snapshot %s: the %s section is damaged (checksum mismatch)",
				cairn_index_name(idx), index_section_name(idx->sections[i].type));
	for (uint64_t k = 0; k < idx->page_count; k++)
		if (!index_page_intact(idx, k))
			problem(c, "snapshot %s: page %llu does not match its checksum",
				cairn_index_name(idx), (unsigned long long)k);
}

static void check_chunks(struct check *c, uint64_t ino, const struct cairn_index_file *file)
{
	struct cairn_index_run run;

	for (uint32_t i = 0; i < file->run_count; i++) {
		uint32_t size;
		if (cairn_index_run(c->idx, ino, i, &run) < 0) {
			problem(c, "snapshot %s: file %llu: run %u is damaged",
				cairn_index_name(c->idx), (unsigned long long)ino, i);
			return;
		}
		if (run.hole || !c->check_chunks)
			continue;
		if (!cairn_store_has_chunk(c->idx->store, &run.chunk_id, &size) ||
		    size != run.size) {
			char hex[CAIRN_ID_HEX + 1];
			cairn_id_to_hex(&run.chunk_id, hex);
			problem(c, "snapshot %s: file %llu names chunk %s, which the store %s",
				cairn_index_name(c->idx), (unsigned long long)ino, hex,
				cairn_store_has_chunk(c->idx->store, &run.chunk_id, NULL)
					? "holds with another size"
					: "does not hold");
		}
	}
}

static void check_file(struct check *c, uint64_t ino)
{
	struct cairn_index_file file;

	if (cairn_index_file(c->idx, ino, &file) < 0) {
		problem(c, "snapshot %s: file %llu has a damaged chunk list",
			cairn_index_name(c->idx), (unsigned long long)ino);
		return;
	}
	c->file_count++;
	c->file_bytes += file.size;
	check_chunks(c, ino, &file);
}

static void check_dir(struct check *c, uint64_t ino, const struct snap_inode *inode)
{
	struct cairn_index_dirent prev = {0}, d;
	uint32_t subdirs = 0;

	for (uint64_t pos = 0;; pos++) {
		int r = cairn_index_readdir(c->idx, ino, pos, &d);
		if (r == 0)
			break;
		if (r < 0) {
			problem(c, "snapshot %s: directory %llu: entry %llu is damaged",
				cairn_index_name(c->idx), (unsigned long long)ino,
				(unsigned long long)pos);
			return;
		}
		size_t min = prev.name_len < d.name_len ? prev.name_len : d.name_len;
		int order = pos > 0 ? memcmp(prev.name, d.name, min) : -1;
		if (pos > 0 && (order > 0 || (order == 0 && prev.name_len >= d.name_len)))
			problem(c, "snapshot %s: directory %llu: its names are not in order",
				cairn_index_name(c->idx), (unsigned long long)ino);
		/* A versions directory's name for an inode of the tree is
		 * not one of its links (versions.c). */
		if (ino < c->versions_first || d.ino >= c->versions_first)
			c->refs[d.ino - 1]++;
		subdirs += d.type == DT_DIR;
		prev = d;
	}
	if (inode->nlink != 2 + subdirs)
		problem(c, "snapshot %s: directory %llu has link count %u, not %u",
			cairn_index_name(c->idx), (unsigned long long)ino, inode->nlink,
			2 + subdirs);
}

static void check_inode(struct check *c, uint64_t ino)
{
	struct cairn_index_stat st;
	struct cairn_index_xattr x;
	const char *target;
	size_t len;

	if (cairn_index_getattr(c->idx, ino, &st) < 0) {
		problem(c, "snapshot %s: inode %llu is damaged", cairn_index_name(c->idx),
			(unsigned long long)ino);
		return;
	}
	for (size_t pos = 0;; pos++) {
		int r = cairn_index_xattr(c->idx, ino, pos, &x);
		if (r < 0)
			problem(c, "snapshot %s: inode %llu has damaged xattrs",
				cairn_index_name(c->idx), (unsigned long long)ino);
		if (r <= 0)
			break;
	}
	if (S_ISREG(st.mode))
		check_file(c, ino);
	else if (S_ISDIR(st.mode))
		check_dir(c, ino, &c->idx->inodes[ino - 1]);
	else if (S_ISLNK(st.mode) && cairn_index_readlink(c->idx, ino, &target, &len) < 0)
		problem(c, "snapshot %s: symlink %llu has a damaged target",
			cairn_index_name(c->idx), (unsigned long long)ino);
}

static void check_links(struct check *c)
{
	const struct cairn_index *idx = c->idx;

	for (uint64_t ino = 1; ino <= idx->inode_count; ino++) {
		const struct snap_inode *inode = &idx->inodes[ino - 1];
		uint32_t refs = c->refs[ino - 1] + (ino == CAIRN_INDEX_ROOT);
		if (refs == 0)
			problem(c, "snapshot %s: inode %llu is in no directory",
				cairn_index_name(idx), (unsigned long long)ino);
		else if ((inode->mode & S_IFMT) == S_IFDIR ? refs != 1 : refs != inode->nlink)
			problem(c,
				"snapshot %s: inode %llu is named %u times, its link count is %u",
				cairn_index_name(idx), (unsigned long long)ino, refs, inode->nlink);
	}
}

int64_t cairn_index_check(struct cairn_index *idx, bool check_chunks_too,
			  cairn_index_report_fn report, void *userdata)
{
	struct check c = {
		.idx = idx,
		.check_chunks = check_chunks_too && idx->store,
		.report = report,
		.userdata = userdata,
	};

	if (!idx->header)
		return -EBADF;
	c.versions_first = versions_first_inode(idx);
	c.refs = calloc(idx->inode_count, sizeof(*c.refs));
	if (!c.refs)
		return -ENOMEM;
	check_checksums(&c);
	for (uint64_t ino = 1; ino <= idx->inode_count; ino++)
		check_inode(&c, ino);
	if (versions_check_links(idx, c.refs) < 0)
		problem(&c, "%s", cairn_index_error(idx));
	check_links(&c);
	if (c.file_count != idx->header->file_count || c.file_bytes != idx->header->file_bytes)
		problem(&c, "snapshot %s: the header's totals disagree with its files",
			cairn_index_name(idx));
	free(c.refs);
	return c.problems;
}
