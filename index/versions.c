/* versions.c: earlier versions of entries that appear more than once in an
 * archive (tar -r appends). The last one wins, as with tar -x; the ones it
 * replaced are kept: when the snapshot is written, each such NAME gets a
 * directory NAME.versions holding them as "1".."N-1" in archive order
 * (NAME itself is the N-th). These directories are ordinary directories of
 * the snapshot, numbered after every inode of the tree, and are linked into
 * their holder only by a range of DIRENTS that no directory lists (the
 * header's versions_start and versions_count, format version 2): a reader
 * sees them only when it asks (cairn_index_show_versions; the mount's -o
 * versions), and everything else about them (getattr, readdir, reads, the
 * verify) is the common code's.
 */
#include "index_internal.h"

#include <dirent.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#define VERSIONS_SUFFIX     ".versions"
#define VERSIONS_SUFFIX_LEN (sizeof(VERSIONS_SUFFIX) - 1)

/* ---- while adding ---- */

int tree_version_add(struct tree *tree, uint32_t node, uint32_t inode)
{
	if (tree->version_count == tree->version_cap) {
		size_t cap = tree->version_cap ? tree->version_cap * 2 : 64;
		struct tree_version *v = realloc(tree->versions, cap * sizeof(*v));
		if (!v)
			return -ENOMEM;
		tree->versions = v;
		tree->version_cap = cap;
	}
	tree->versions[tree->version_count] =
		(struct tree_version){node, inode, tree->version_count};
	tree->version_count++;
	return 0;
}

/* ---- when the snapshot is written ---- */

/* A node outside the name map: these names are never looked up while
 * adding. */
static int64_t append_node(struct tree *tree, uint32_t parent, const char *name, size_t len,
			   uint32_t inode)
{
	uint32_t name_off;

	if (tree->node_count >= UINT32_MAX - 1)
		return -E2BIG;
	int r = tree_intern_string(tree, name, len, &name_off);
	if (r < 0)
		return r;
	if (tree->node_count == tree->node_cap) {
		size_t cap = tree->node_cap * 2;
		struct tree_node *nodes = realloc(tree->nodes, cap * sizeof(*nodes));
		if (!nodes)
			return -ENOMEM;
		tree->nodes = nodes;
		tree->node_cap = cap;
	}
	tree->nodes[tree->node_count] = (struct tree_node){
		.parent = parent, .inode = inode, .name = name_off, .name_len = (uint16_t)len};
	return (int64_t)tree->node_count++;
}

static int compare_versions(const void *a, const void *b)
{
	const struct tree_version *x = a, *y = b;

	if (x->node != y->node)
		return x->node < y->node ? -1 : 1;
	return x->seq < y->seq ? -1 : x->seq > y->seq;
}

/* The NAME.versions directory of node (its earlier inodes given), or
 * nothing when that name is too long or already in the tree. */
static int materialize_one(struct tree *tree, uint32_t node, const struct tree_version *v,
			   size_t count)
{
	char name[256 + VERSIONS_SUFFIX_LEN];
	const struct tree_node *n = &tree->nodes[node];
	uint32_t holder = n->parent;
	size_t len = n->name_len + VERSIONS_SUFFIX_LEN;

	if (len > 255)
		return 0;
	cairn_format(name, sizeof(name), "%.*s%s", (int)n->name_len,
		     (const char *)tree->strings.data + n->name, VERSIONS_SUFFIX);
	if (tree_lookup(tree, holder, name, len) >= 0)
		return 0;
	struct tree_inode dir = {.mode = S_IFDIR | 0555,
				 .mtime_sec = tree->inodes[v[count - 1].inode].mtime_sec,
				 .mtime_nsec = tree->inodes[v[count - 1].inode].mtime_nsec};
	int64_t ino = tree_add_inode(tree, &dir);
	int64_t vnode =
		ino < 0 ? ino : append_node(tree, TREE_VDIR_PARENT, name, len, (uint32_t)ino);
	if (vnode < 0)
		return (int)vnode;
	for (size_t i = 0; i < count; i++) {
		char number[24];
		int nlen = snprintf(number, sizeof(number), "%zu", i + 1);
		int64_t at = append_node(tree, (uint32_t)vnode, number, (size_t)nlen, v[i].inode);
		if (at < 0)
			return (int)at;
	}
	tree->vdirs[tree->vdir_count++] = (struct tree_vdir){(uint32_t)vnode, holder};
	return 0;
}

int versions_materialize(struct tree *tree)
{
	size_t count = tree->version_count;

	if (count == 0)
		return 0;
	/* Grouped by node; a stable order within a node keeps the archive's. */
	qsort(tree->versions, count, sizeof(*tree->versions), compare_versions);
	tree->vdirs = calloc(count, sizeof(*tree->vdirs));
	if (!tree->vdirs)
		return -ENOMEM;
	for (size_t i = 0, end; i < count; i = end) {
		for (end = i + 1; end < count && tree->versions[end].node == tree->versions[i].node;
		     end++)
			;
		int r = materialize_one(tree, tree->versions[i].node, &tree->versions[i], end - i);
		if (r < 0)
			return r;
	}
	return 0;
}

static int compare_vdirs(const void *a, const void *b, void *userdata)
{
	const struct tree *tree = userdata;
	const struct tree_vdir *x = a, *y = b;
	uint32_t hx = tree->inodes[tree->nodes[x->holder].inode].number;
	uint32_t hy = tree->inodes[tree->nodes[y->holder].inode].number;

	if (hx != hy)
		return hx < hy ? -1 : 1;
	const struct tree_node *nx = &tree->nodes[x->node], *ny = &tree->nodes[y->node];
	int c = memcmp(tree->strings.data + nx->name, tree->strings.data + ny->name,
		       nx->name_len < ny->name_len ? nx->name_len : ny->name_len);
	if (c != 0)
		return c;
	return nx->name_len < ny->name_len ? -1 : nx->name_len > ny->name_len;
}

void versions_sort(struct tree *tree)
{
	if (tree->vdir_count > 0)
		qsort_r(tree->vdirs, tree->vdir_count, sizeof(*tree->vdirs), compare_vdirs, tree);
}

void versions_link(const struct tree *tree, size_t i, struct snap_dirent *ret)
{
	const struct tree_node *node = &tree->nodes[tree->vdirs[i].node];

	*ret = (struct snap_dirent){
		.inode = tree->inodes[node->inode].number,
		.name = node->name,
		.name_len = node->name_len,
		.type = DT_DIR,
	};
}

/* ---- reading ---- */

/* Link i, checked: a directory numbered above its parent (the holder, in
 * *ret_parent), with a name that a directory may hold. */
static int link_at(struct cairn_index *idx, uint64_t i, const struct snap_dirent **ret,
		   uint32_t *ret_parent)
{
	const struct snap_dirent *d = &idx->dirents[idx->versions_start + i];
	if (!index_touch(idx, d, sizeof(*d)))
		return -EBADMSG;
	const struct snap_inode *v = index_inode(idx, d->inode);

	if (!v)
		return -EBADMSG;
	const char *name =
		d->name_len > VERSIONS_SUFFIX_LEN ? index_string(idx, d->name, d->name_len) : NULL;
	if ((v->mode & S_IFMT) != S_IFDIR || d->type != DT_DIR || d->inode <= v->parent || !name ||
	    memchr(name, '/', d->name_len))
		return index_corrupt(idx, "the versions link %llu is damaged",
				     (unsigned long long)i);
	*ret = d;
	*ret_parent = v->parent;
	return 0;
}

/* The first link whose holder is at least dir (or, with after, above it). */
static int64_t link_bound(struct cairn_index *idx, uint64_t dir, bool after)
{
	uint64_t lo = 0, hi = idx->versions_count;

	while (lo < hi) {
		uint64_t mid = lo + (hi - lo) / 2;
		const struct snap_dirent *d;
		uint32_t parent;
		int r = link_at(idx, mid, &d, &parent);
		if (r < 0)
			return r;
		if (parent < dir || (after && parent == dir))
			lo = mid + 1;
		else
			hi = mid;
	}
	return (int64_t)lo;
}

int versions_readdir(struct cairn_index *idx, uint64_t dir, uint64_t i,
		     struct cairn_index_dirent *ret)
{
	const struct snap_dirent *d;
	uint32_t parent;

	int64_t first = link_bound(idx, dir, false);
	if (first < 0)
		return (int)first;
	if ((uint64_t)first + i >= idx->versions_count)
		return 0;
	int r = link_at(idx, (uint64_t)first + i, &d, &parent);
	if (r < 0 || parent != dir)
		return r < 0 ? r : 0;
	*ret = (struct cairn_index_dirent){
		.ino = d->inode,
		.name = (const char *)idx->strings + d->name,
		.name_len = d->name_len,
		.type = DT_DIR,
	};
	return 1;
}

int versions_lookup(struct cairn_index *idx, uint64_t dir, const char *name, size_t len,
		    uint64_t *ret_ino)
{
	if (len <= VERSIONS_SUFFIX_LEN ||
	    memcmp(name + len - VERSIONS_SUFFIX_LEN, VERSIONS_SUFFIX, VERSIONS_SUFFIX_LEN) != 0)
		return -ENOENT;
	int64_t first = link_bound(idx, dir, false);
	int64_t end = first < 0 ? first : link_bound(idx, dir, true);
	if (end < 0)
		return (int)end;
	for (uint64_t lo = (uint64_t)first, hi = (uint64_t)end; lo < hi;) {
		uint64_t mid = lo + (hi - lo) / 2;
		const struct snap_dirent *d;
		uint32_t parent;
		int r = link_at(idx, mid, &d, &parent);
		if (r < 0)
			return r;
		const char *entry = (const char *)idx->strings + d->name;
		int c = memcmp(name, entry, len < d->name_len ? len : d->name_len);
		if (c == 0)
			c = len < d->name_len ? -1 : len > d->name_len;
		if (c == 0) {
			*ret_ino = d->inode;
			return 0;
		}
		if (c < 0)
			hi = mid;
		else
			lo = mid + 1;
	}
	return -ENOENT;
}

uint64_t versions_first_inode(const struct cairn_index *idx)
{
	const struct snap_dirent *d = &idx->dirents[idx->versions_start];

	if (!idx->versions_count || !index_touch(idx, d, sizeof(*d)))
		return UINT64_MAX;
	return d->inode;
}

int versions_check_links(struct cairn_index *idx, uint32_t *refs)
{
	uint32_t prev = 0;

	for (uint64_t i = 0; i < idx->versions_count; i++) {
		const struct snap_dirent *d;
		uint32_t parent;
		int r = link_at(idx, i, &d, &parent);
		if (r < 0)
			return r;
		if (d->inode <= prev)
			return index_corrupt(idx, "the versions links are not in order");
		prev = d->inode;
		refs[d->inode - 1]++;
	}
	return 0;
}
