/* read.c: the accessors of an opened snapshot: getattr, lookup (a binary
 * search over a directory's sorted names), readdir by position, readlink,
 * xattrs, path resolution and the run lists of regular files. The file is
 * untrusted: each record is bounds-checked when it is touched, so hostile
 * bytes give -EBADMSG. A directory's entries must point at directories whose
 * parent is that directory and whose number is larger, which keeps every
 * walk finite.
 */
#include "index_internal.h"

#include <dirent.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>

bool index_mode_valid(uint32_t mode)
{
	switch (mode & S_IFMT) {
	case S_IFREG:
	case S_IFDIR:
	case S_IFLNK:
	case S_IFCHR:
	case S_IFBLK:
	case S_IFIFO:
	case S_IFSOCK:
		return (mode & ~(uint32_t)(S_IFMT | 07777)) == 0;
	default:
		return false;
	}
}

unsigned index_mode_to_dtype(uint32_t mode)
{
	return index_mode_valid(mode) ? (mode & S_IFMT) >> 12 : DT_UNKNOWN;
}

const struct snap_inode *index_inode(struct cairn_index *idx, uint64_t ino)
{
	if (ino == 0 || ino > idx->inode_count) {
		index_corrupt(idx, "inode %llu is out of range (1..%llu)", (unsigned long long)ino,
			      (unsigned long long)idx->inode_count);
		return NULL;
	}
	const struct snap_inode *inode = &idx->inodes[ino - 1];
	if (!index_touch(idx, inode, sizeof(*inode)))
		return NULL;
	if (!index_mode_valid(inode->mode) || inode->mtime_nsec >= 1000000000u) {
		index_corrupt(idx, "inode %llu has a bad mode or time", (unsigned long long)ino);
		return NULL;
	}
	return inode;
}

/* An inode the caller names: a number out of range is -ENOENT, not damage. */
static int caller_inode(struct cairn_index *idx, uint64_t ino, const struct snap_inode **ret)
{
	if (ino == 0 || ino > idx->inode_count)
		return -ENOENT;
	const struct snap_inode *inode = index_inode(idx, ino);
	if (!inode)
		return -EBADMSG;
	*ret = inode;
	return 0;
}

const char *index_string(const struct cairn_index *idx, uint64_t offset, uint64_t len)
{
	if (offset < POOL_RESERVED || offset >= idx->strings_size ||
	    len >= idx->strings_size - offset ||
	    !index_touch(idx, idx->strings + offset, len + 1) || idx->strings[offset + len] != '\0')
		return NULL;
	return (const char *)idx->strings + offset;
}

static int owner_names(struct cairn_index *idx, uint64_t ino, const struct snap_inode *inode,
		       const char **ret_user, const char **ret_group)
{
	if (inode->owner == 0) {
		*ret_user = *ret_group = NULL;
		return 0;
	}
	uint64_t off = inode->owner;
	const char *user = off < idx->strings_size ? (const char *)idx->strings + off : NULL;
	const char *end = user ? memchr(user, '\0', idx->strings_size - off) : NULL;
	const char *group = end ? end + 1 : NULL;
	size_t rest =
		group ? idx->strings_size - (size_t)((const uint8_t *)group - idx->strings) : 0;
	const char *group_end = rest ? memchr(group, '\0', rest) : NULL;
	if (off < POOL_RESERVED || !end || !group_end)
		return index_corrupt(idx, "inode %llu has bad owner names",
				     (unsigned long long)ino);
	/* The NULs were found in bytes not yet checked; the check covers
	 * exactly the names and their NULs before they are used. */
	if (!index_touch(idx, user, (uint64_t)(group_end - user) + 1))
		return -EBADMSG;
	*ret_user = *user ? user : NULL;
	*ret_group = *group ? group : NULL;
	return 0;
}

int cairn_index_getattr(struct cairn_index *idx, uint64_t ino, struct cairn_index_stat *ret)
{
	const struct snap_inode *inode = NULL;
	const char *user = NULL, *group = NULL;

	int r = caller_inode(idx, ino, &inode);
	if (r < 0)
		return r;
	r = owner_names(idx, ino, inode, &user, &group);
	if (r < 0)
		return r;
	uint32_t type = inode->mode & S_IFMT;
	bool dev = type == S_IFCHR || type == S_IFBLK;
	*ret = (struct cairn_index_stat){
		.ino = ino,
		.mode = inode->mode,
		.nlink = inode->nlink,
		.uid = inode->uid,
		.gid = inode->gid,
		.size = type == S_IFREG || type == S_IFLNK ? inode->size : 0,
		.rdev = dev ? makedev((unsigned)(inode->data >> 32), (unsigned)inode->data) : 0,
		.mtime_sec = inode->mtime_sec,
		.mtime_nsec = inode->mtime_nsec,
		.user = user,
		.group = group,
	};
	return 0;
}

/* The dirent range of directory dir. */
static int dir_range(struct cairn_index *idx, uint64_t dir, const struct snap_inode **ret_inode)
{
	const struct snap_inode *inode = NULL;

	int r = caller_inode(idx, dir, &inode);
	if (r < 0)
		return r;
	if ((inode->mode & S_IFMT) != S_IFDIR)
		return -ENOTDIR;
	if (inode->data > idx->dirent_count || inode->count > idx->dirent_count - inode->data)
		return index_corrupt(idx, "directory %llu has entries outside the table",
				     (unsigned long long)dir);
	*ret_inode = inode;
	return 0;
}

static const char *dirent_name(struct cairn_index *idx, uint64_t dir, const struct snap_dirent *d)
{
	const char *name = d->name_len ? index_string(idx, d->name, d->name_len) : NULL;

	if (!name || memchr(name, '/', d->name_len) ||
	    (name[0] == '.' && (d->name_len == 1 || (d->name_len == 2 && name[1] == '.')))) {
		index_corrupt(idx, "directory %llu has an entry with a bad name",
			      (unsigned long long)dir);
		return NULL;
	}
	return name;
}

/* Checks the inode a dirent of dir points at; for directories that it is a
 * child of dir numbered above it. */
static int dirent_target(struct cairn_index *idx, uint64_t dir, const struct snap_dirent *d)
{
	const struct snap_inode *child = index_inode(idx, d->inode);

	if (!child)
		return -EBADMSG;
	if ((child->mode & S_IFMT) == S_IFDIR && (d->inode <= dir || child->parent != dir))
		return index_corrupt(idx, "directory %llu has a bad subdirectory %u",
				     (unsigned long long)dir, d->inode);
	if (d->type != index_mode_to_dtype(child->mode))
		return index_corrupt(idx, "directory %llu: entry type disagrees with inode %u",
				     (unsigned long long)dir, d->inode);
	return 0;
}

static int compare_name(const char *a, size_t a_len, const char *b, size_t b_len)
{
	int c = memcmp(a, b, a_len < b_len ? a_len : b_len);

	if (c != 0)
		return c;
	return a_len < b_len ? -1 : a_len > b_len;
}

int cairn_index_lookup(struct cairn_index *idx, uint64_t dir, const char *name, size_t len,
		       uint64_t *ret_ino)
{
	const struct snap_inode *inode = NULL;

	int r = dir_range(idx, dir, &inode);
	if (r < 0)
		return r;
	size_t lo = 0, hi = inode->count;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		const struct snap_dirent *d = &idx->dirents[inode->data + mid];
		if (!index_touch(idx, d, sizeof(*d)))
			return -EBADMSG;
		const char *entry = dirent_name(idx, dir, d);
		if (!entry)
			return -EBADMSG;
		int c = compare_name(name, len, entry, d->name_len);
		if (c == 0) {
			r = dirent_target(idx, dir, d);
			if (r < 0)
				return r;
			*ret_ino = d->inode;
			return 0;
		}
		if (c < 0)
			hi = mid;
		else
			lo = mid + 1;
	}
	return idx->show_versions ? versions_lookup(idx, dir, name, len, ret_ino) : -ENOENT;
}

int cairn_index_readdir(struct cairn_index *idx, uint64_t dir, uint64_t pos,
			struct cairn_index_dirent *ret)
{
	const struct snap_inode *inode = NULL;

	int r = dir_range(idx, dir, &inode);
	if (r < 0)
		return r;
	if (pos >= inode->count)
		return idx->show_versions ? versions_readdir(idx, dir, pos - inode->count, ret) : 0;
	const struct snap_dirent *d = &idx->dirents[inode->data + pos];
	if (!index_touch(idx, d, sizeof(*d)))
		return -EBADMSG;
	const char *name = dirent_name(idx, dir, d);
	if (!name)
		return -EBADMSG;
	r = dirent_target(idx, dir, d);
	if (r < 0)
		return r;
	*ret = (struct cairn_index_dirent){
		.ino = d->inode,
		.name = name,
		.name_len = d->name_len,
		.type = d->type,
	};
	return 1;
}

void cairn_index_show_versions(struct cairn_index *idx, bool show)
{
	idx->show_versions = show;
}

int cairn_index_readlink(struct cairn_index *idx, uint64_t ino, const char **ret_target,
			 size_t *ret_len)
{
	const struct snap_inode *inode = NULL;

	int r = caller_inode(idx, ino, &inode);
	if (r < 0)
		return r;
	if ((inode->mode & S_IFMT) != S_IFLNK)
		return -EINVAL;
	const char *target = index_string(idx, inode->data, inode->size);
	if (!target || inode->size == 0 || inode->size > CAIRN_SYMLINK_MAX)
		return index_corrupt(idx, "symlink %llu has a bad target", (unsigned long long)ino);
	*ret_target = target;
	*ret_len = inode->size;
	return 0;
}

/* ---- xattrs ---- */

int index_xattr_list(struct cairn_index *idx, uint64_t ino, const struct snap_inode *inode,
		     const struct snap_xattr_list **ret)
{
	uint64_t off = inode->xattrs;

	if (off == 0) {
		*ret = NULL;
		return 0;
	}
	if (off % 8 != 0 || off < POOL_RESERVED || off > idx->xattrs_size ||
	    idx->xattrs_size - off < sizeof(struct snap_xattr_list))
		return index_corrupt(idx, "inode %llu has a bad xattr list",
				     (unsigned long long)ino);
	const struct snap_xattr_list *list = (const struct snap_xattr_list *)(idx->xattrs + off);
	if (!index_touch(idx, list, sizeof(*list)))
		return -EBADMSG;
	if (list->size > idx->xattrs_size - off || list->size < sizeof(*list) ||
	    list->count > (list->size - sizeof(*list)) / sizeof(struct snap_xattr))
		return index_corrupt(idx, "inode %llu has a bad xattr list",
				     (unsigned long long)ino);
	if (!index_touch(idx, list, list->size))
		return -EBADMSG;
	*ret = list;
	return 0;
}

static int xattr_at(struct cairn_index *idx, uint64_t ino, const struct snap_xattr_list *list,
		    size_t pos, struct cairn_index_xattr *ret)
{
	const struct snap_xattr *x = (const struct snap_xattr *)(list + 1) + pos;
	const uint8_t *base = (const uint8_t *)list;
	uint32_t size = list->size;

	if (x->name_len == 0 || x->name >= size || x->name_len >= size - x->name ||
	    base[x->name + x->name_len] != '\0' || x->value > size ||
	    x->value_len > size - x->value || x->value_len > CAIRN_XATTR_VALUE_MAX)
		return index_corrupt(idx, "inode %llu has a bad xattr", (unsigned long long)ino);
	*ret = (struct cairn_index_xattr){
		.name = (const char *)base + x->name,
		.name_len = x->name_len,
		.value = base + x->value,
		.value_size = x->value_len,
	};
	return 0;
}

int cairn_index_xattr(struct cairn_index *idx, uint64_t ino, size_t pos,
		      struct cairn_index_xattr *ret)
{
	const struct snap_inode *inode = NULL;
	const struct snap_xattr_list *list = NULL;

	int r = caller_inode(idx, ino, &inode);
	if (r == 0)
		r = index_xattr_list(idx, ino, inode, &list);
	if (r < 0)
		return r;
	if (!list || pos >= list->count)
		return 0;
	r = xattr_at(idx, ino, list, pos, ret);
	return r < 0 ? r : 1;
}

int cairn_index_getxattr(struct cairn_index *idx, uint64_t ino, const char *name,
			 struct cairn_index_xattr *ret)
{
	struct cairn_index_xattr x;

	for (size_t pos = 0;; pos++) {
		int r = cairn_index_xattr(idx, ino, pos, &x);
		if (r <= 0)
			return r < 0 ? r : -ENODATA;
		if (strcmp(x.name, name) == 0) {
			*ret = x;
			return 0;
		}
	}
}

/* ---- regular files ---- */

int index_chunk_list(struct cairn_index *idx, uint64_t ino, const struct snap_inode *inode,
		     const struct snap_chunk_list **ret)
{
	uint64_t off = inode->data;

	if ((inode->mode & S_IFMT) != S_IFREG)
		return (inode->mode & S_IFMT) == S_IFDIR ? -EISDIR : -EINVAL;
	if (off % 8 != 0 || off > idx->chunks_size ||
	    idx->chunks_size - off < sizeof(struct snap_chunk_list))
		return index_corrupt(idx, "file %llu has a bad chunk list",
				     (unsigned long long)ino);
	const struct snap_chunk_list *list = (const struct snap_chunk_list *)(idx->chunks + off);
	if (!index_touch(idx, list, sizeof(*list)))
		return -EBADMSG;
	if (list->run_count > (idx->chunks_size - off - sizeof(*list)) / sizeof(struct snap_run) ||
	    list->size != inode->size || (list->run_count == 0) != (list->size == 0))
		return index_corrupt(idx, "file %llu has a bad chunk list",
				     (unsigned long long)ino);
	const struct snap_run *runs = (const struct snap_run *)(list + 1);
	if (!index_touch(idx, runs, (uint64_t)list->run_count * sizeof(*runs)))
		return -EBADMSG;
	if (list->run_count && runs[list->run_count - 1].end != list->size)
		return index_corrupt(idx, "file %llu: its runs do not end at its size",
				     (unsigned long long)ino);
	*ret = list;
	return 0;
}

static int file_list(struct cairn_index *idx, uint64_t ino, const struct snap_chunk_list **ret)
{
	const struct snap_inode *inode = NULL;

	int r = caller_inode(idx, ino, &inode);
	if (r < 0)
		return r;
	return index_chunk_list(idx, ino, inode, ret);
}

int cairn_index_file(struct cairn_index *idx, uint64_t ino, struct cairn_index_file *ret)
{
	const struct snap_chunk_list *list = NULL;

	int r = file_list(idx, ino, &list);
	if (r < 0)
		return r;
	*ret = (struct cairn_index_file){
		.size = list->size,
		.run_count = list->run_count,
		.sparse = (list->flags & CHUNK_LIST_SPARSE) != 0,
	};
	memcpy(ret->file_id.bytes, list->file_id, CAIRN_ID_SIZE);
	return 0;
}

static bool id_is_zero(const uint8_t id[CAIRN_ID_SIZE])
{
	static const uint8_t zero[CAIRN_ID_SIZE];

	return memcmp(id, zero, CAIRN_ID_SIZE) == 0;
}

static int run_of_list(struct cairn_index *idx, uint64_t ino, const struct snap_chunk_list *list,
		       uint32_t i, struct cairn_index_run *ret)
{
	const struct snap_run *runs = (const struct snap_run *)(list + 1);

	if (i >= list->run_count)
		return -ERANGE;
	uint64_t start = i ? runs[i - 1].end : 0;
	if (runs[i].end <= start || runs[i].end > list->size)
		return index_corrupt(idx, "file %llu: run %u is out of order",
				     (unsigned long long)ino, i);
	bool hole = id_is_zero(runs[i].chunk_id);
	if (hole && !(list->flags & CHUNK_LIST_SPARSE))
		return index_corrupt(idx, "file %llu: a hole in a file not marked sparse",
				     (unsigned long long)ino);
	if (!hole && runs[i].end - start > CAIRN_CHUNK_MAX_LIMIT)
		return index_corrupt(idx, "file %llu: run %u is larger than any chunk",
				     (unsigned long long)ino, i);
	*ret = (struct cairn_index_run){.offset = start, .size = runs[i].end - start, .hole = hole};
	memcpy(ret->chunk_id.bytes, runs[i].chunk_id, CAIRN_ID_SIZE);
	return 0;
}

int cairn_index_run(struct cairn_index *idx, uint64_t ino, uint32_t i, struct cairn_index_run *ret)
{
	const struct snap_chunk_list *list = NULL;

	int r = file_list(idx, ino, &list);
	if (r < 0)
		return r;
	return run_of_list(idx, ino, list, i, ret);
}

int cairn_index_find_run(struct cairn_index *idx, uint64_t ino, uint64_t offset, uint32_t *ret_run)
{
	const struct snap_chunk_list *list = NULL;
	struct cairn_index_run run = {0};

	int r = file_list(idx, ino, &list);
	if (r < 0)
		return r;
	if (offset >= list->size)
		return -ERANGE;
	const struct snap_run *runs = (const struct snap_run *)(list + 1);
	/* The first run whose end lies past offset. */
	uint32_t lo = 0, hi = list->run_count;
	while (lo < hi) {
		uint32_t mid = lo + (hi - lo) / 2;
		if (runs[mid].end <= offset)
			lo = mid + 1;
		else
			hi = mid;
	}
	r = run_of_list(idx, ino, list, lo, &run);
	if (r == -ERANGE || (r == 0 && (offset < run.offset || offset >= run.offset + run.size)))
		return index_corrupt(idx, "file %llu: its runs are out of order",
				     (unsigned long long)ino);
	if (r < 0)
		return r;
	*ret_run = lo;
	return 0;
}
