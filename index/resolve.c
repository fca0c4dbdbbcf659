/* resolve.c: walking a path inside a snapshot, as `cairn cat` and `cairn ls`
 * name things (SNAPSHOT:PATH). Symlinks resolve inside the snapshot: an
 * absolute target starts again at the snapshot's root and ".." never climbs
 * above it, so a path can never name anything outside the snapshot.
 */
#include "index_internal.h"

#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#define SYMLINK_HOPS_MAX 40

struct walk {
	struct cairn_index *idx;
	uint64_t cur; /* the directory reached so far */
	unsigned hops;
	char *rest; /* owned: what is left to walk */
};

static int walk_parent(struct walk *w)
{
	const struct snap_inode *inode = index_inode(w->idx, w->cur);

	if (!inode)
		return -EBADMSG;
	uint64_t parent = w->cur == CAIRN_INDEX_ROOT ? CAIRN_INDEX_ROOT : inode->parent;
	const struct snap_inode *up = index_inode(w->idx, parent);
	if (!up)
		return -EBADMSG;
	if ((up->mode & S_IFMT) != S_IFDIR || parent >= w->cur + (w->cur == CAIRN_INDEX_ROOT))
		return index_corrupt(w->idx, "directory %llu has a bad parent",
				     (unsigned long long)w->cur);
	w->cur = parent;
	return 0;
}

/* Replaces the walk's rest with target + "/" + after. */
static int walk_symlink(struct walk *w, uint64_t link, const char *after)
{
	const char *target;
	size_t target_len;

	if (++w->hops > SYMLINK_HOPS_MAX)
		return -ELOOP;
	int r = cairn_index_readlink(w->idx, link, &target, &target_len);
	if (r < 0)
		return r;
	size_t size = target_len + strlen(after) + 2;
	char *rest = malloc(size);
	if (!rest)
		return -ENOMEM;
	snprintf(rest, size, "%s/%s", target, after);
	free(w->rest);
	w->rest = rest;
	if (target[0] == '/')
		w->cur = CAIRN_INDEX_ROOT;
	return 0;
}

/* Walks one component off the front of w->rest. Returns 1 when the path is
 * used up (w->cur is the result), 0 to go on, or -errno. */
static int walk_step(struct walk *w, bool follow)
{
	char *p = w->rest + strspn(w->rest, "/");
	if (*p == '\0')
		return 1;
	size_t len = strcspn(p, "/");
	char *after = p + len + strspn(p + len, "/");
	bool last = *after == '\0';
	uint64_t ino;
	struct cairn_index_stat st;

	if (len == 1 && p[0] == '.') {
		memmove(w->rest, after, strlen(after) + 1);
		return 0;
	}
	if (len == 2 && p[0] == '.' && p[1] == '.') {
		memmove(w->rest, after, strlen(after) + 1);
		return walk_parent(w);
	}
	int r = cairn_index_lookup(w->idx, w->cur, p, len, &ino);
	if (r == 0)
		r = cairn_index_getattr(w->idx, ino, &st);
	if (r < 0)
		return r;
	if (S_ISLNK(st.mode) && (!last || follow))
		return walk_symlink(w, ino, after);
	if (!S_ISDIR(st.mode) && !last)
		return -ENOTDIR;
	w->cur = ino;
	memmove(w->rest, after, strlen(after) + 1);
	return last;
}

int cairn_index_resolve(struct cairn_index *idx, const char *path, bool follow, uint64_t *ret_ino)
{
	struct walk w = {.idx = idx, .cur = CAIRN_INDEX_ROOT, .rest = strdup(path)};
	int r;

	if (!w.rest)
		return -ENOMEM;
	while ((r = walk_step(&w, follow)) == 0)
		;
	free(w.rest);
	if (r < 0)
		return r;
	*ret_ino = w.cur;
	return 0;
}
