/* import_nested.c: archives inside archives (`cairn add -r`). A regular
 * file whose first bytes look like an archive or a compressed stream is
 * spooled, as it streams into the store like any file, to an unlinked temp
 * file; after the entry is placed, a nested import (the same code, every
 * check included: the ratio bound, the entry limit, paths, a stream's
 * checksums) reads the spool into a tree of its own, which is grafted in
 * as a directory in place of the file, and the file is kept as NAME.orig.
 * What does not open as an archive (no format recognized, or its first
 * header already fails) stays a plain file; an archive that opens and is
 * damaged further on fails the add, naming the outer and the inner entry.
 * The depth is bounded, so an archive that holds itself ends, and the
 * ratio and entry bounds of each archive count what every archive nested
 * in it unpacked.
 */
#include "import_internal.h"

#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

/* What the kept file's name gets: the directory takes the name itself. */
#define NESTED_KEEP_SUFFIX ".orig"

/* ---- which files are spooled ---- */

static bool has_magic(const uint8_t *data, size_t size, size_t at, const char *magic, size_t len)
{
	return size >= at + len && memcmp(data + at, magic, len) == 0;
}

/* The archive formats and compressed streams an import reads, by their
 * first bytes; iso9660 (its magic is at 32 KiB) and raw lzma (none) are
 * left out. A false positive costs a spool and a failed open. */
static bool looks_like_archive(const uint8_t *d, size_t n)
{
	static const struct {
		size_t at;
		const char *magic;
		size_t len;
	} magics[] = {
		{257, "ustar", 5},
		{0, "PK\3\4", 4},
		{0, "7z\xbc\xaf\x27\x1c", 6},
		{0, "!<arch>\n", 8},
		{0, "070707", 6},
		{0, "070701", 6},
		{0, "070702", 6},
		{0, "Rar!\x1a\x07", 6},
		{0, "xar!", 4},
		{0, "MSCF", 4},
		{0, "\x1f\x8b", 2},
		{0, "BZh", 3},
		{0,
		 "\xfd"
		 "7zXZ\0",
		 6},
		{0, "\x28\xb5\x2f\xfd", 4},
		{0, "\x04\x22\x4d\x18", 4},
		{0, "LZIP", 4},
		{0, "\x1f\x9d", 2},
	};

	for (size_t i = 0; i < sizeof(magics) / sizeof(magics[0]); i++)
		if (has_magic(d, n, magics[i].at, magics[i].magic, magics[i].len))
			return true;
	return false;
}

static int spool_open(void)
{
	const char *dir = getenv("TMPDIR");

	if (!dir || !*dir)
		dir = "/tmp";
	int fd = open(dir, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
	if (fd >= 0 || (errno != EOPNOTSUPP && errno != EISDIR))
		return fd < 0 ? -errno : fd;
	char path[4096];
	cairn_format(path, sizeof(path), "%s/cairn-nested-XXXXXX", dir);
	fd = mkostemp(path, O_CLOEXEC);
	if (fd < 0)
		return -errno;
	unlink(path);
	return fd;
}

void import_nested_entry(struct cairn_import *imp)
{
	if (imp->spool_fd >= 0)
		close(imp->spool_fd);
	imp->spool_fd = -1;
}

static int spool_start(struct cairn_import *imp, const void *data, size_t size)
{
	if (!looks_like_archive(data, size))
		return 0;
	if (imp->nest_depth == 0) {
		import_warn(imp,
			    "kept as a file: an archive nested more than %u levels deep "
			    "(cairn add --recursion-depth)",
			    imp->nest_max);
		return 0;
	}
	int fd = spool_open();
	if (fd < 0)
		return import_fail(imp, fd, "a temp file for a nested archive: %s", strerror(-fd));
	imp->spool_fd = fd;
	return 1;
}

int import_nested_block(struct cairn_import *imp, const void *data, size_t size, int64_t offset)
{
	if (imp->nest_max == 0 || size == 0)
		return 0;
	if (offset == 0 && imp->spool_fd < 0) {
		int r = spool_start(imp, data, size);
		if (r <= 0)
			return r;
	}
	if (imp->spool_fd < 0)
		return 0;
	int r = cairn_pwrite_all(imp->spool_fd, data, size, (uint64_t)offset);
	if (r < 0)
		return import_fail(imp, r, "spooling a nested archive: %s", strerror(-r));
	return 0;
}

/* ---- the bounds, across levels ---- */

int import_count_entry(struct cairn_import *imp)
{
	uint64_t total = ++imp->entries;

	if (total > imp->max_entries)
		return import_fail(imp, -E2BIG, "more than %llu entries",
				   (unsigned long long)imp->max_entries);
	for (const struct cairn_import *o = imp->outer; o; o = o->outer) {
		total += o->entries;
		if (total > o->max_entries)
			return import_fail(imp, -E2BIG,
					   "more than %llu entries in %s with the archives "
					   "nested in it",
					   (unsigned long long)o->max_entries, o->label);
	}
	return 0;
}

/* Each level's bound counts what it and every level below it unpacked;
 * the archive being read is one of them once nested ones have finished. */
int import_nested_check_ratio(struct cairn_import *imp)
{
	uint64_t below = 0;

	for (const struct cairn_import *o = imp; o; o = o->outer) {
		uint64_t unpacked = below + o->unpacked + o->nested_unpacked;
		uint64_t bound = o->raw_read > (UINT64_MAX - o->ratio_slack) / o->max_ratio
					 ? UINT64_MAX
					 : o->raw_read * o->max_ratio + o->ratio_slack;
		if (o->max_ratio != CAIRN_IMPORT_NO_RATIO && unpacked > bound)
			return import_fail(
				imp, -E2BIG,
				"%s and the archives nested in it unpack to more than %llu times "
				"its size (%llu bytes from the first %llu): refused as a "
				"decompression bomb",
				o->label, (unsigned long long)o->max_ratio,
				(unsigned long long)unpacked, (unsigned long long)o->raw_read);
		below = unpacked;
	}
	return 0;
}

/* ---- grafting the nested tree ---- */

struct graft {
	struct cairn_import *imp;
	const struct tree *from;
	uint32_t *inode_map; /* the nested tree's inode -> ours + 1; 0: not yet */
	uint32_t *node_map;  /* the nested tree's node -> ours */
	uint16_t *depth;     /* of each of our new nodes, in path components */
};

static int copy_string(struct graft *g, uint32_t offset, size_t len, uint32_t *ret)
{
	if (offset == 0) {
		*ret = 0;
		return 0;
	}
	return tree_intern_string(&g->imp->tree, g->from->strings.data + offset, len, ret);
}

static int copy_owner(struct graft *g, uint32_t offset, uint32_t *ret)
{
	const char *user = (const char *)g->from->strings.data + offset;
	size_t len = offset ? strlen(user) + 1 + strlen(user + strlen(user) + 1) : 0;

	return copy_string(g, offset, len, ret);
}

/* A pool entry (an xattr list, aligned; a chunk list) stored once. */
static int copy_pooled(struct buf *pool, struct intern *index, const void *data, size_t size,
		       bool align, uint64_t *ret)
{
	uint64_t hash = intern_hash(data, size), offset;

	if (intern_find(index, pool, hash, data, size, &offset)) {
		*ret = offset;
		return 0;
	}
	int r = align ? buf_align(pool, 8) : 0;
	offset = pool->size;
	if (r == 0 && offset + size > UINT32_MAX)
		return -E2BIG;
	if (r == 0)
		r = buf_append(pool, data, size);
	if (r == 0)
		r = intern_add(index, hash, offset, size);
	if (r == 0)
		*ret = offset;
	return r;
}

static int copy_xattrs(struct graft *g, uint32_t offset, uint32_t *ret)
{
	struct tree *tree = &g->imp->tree;
	const struct snap_xattr_list *list;
	uint64_t at;

	*ret = 0;
	if (offset == 0)
		return 0;
	list = (const struct snap_xattr_list *)(g->from->xattrs.data + offset);
	int r = copy_pooled(&tree->xattrs, &tree->xattr_index, list, list->size, true, &at);
	if (r == 0)
		*ret = (uint32_t)at;
	return r;
}

static int copy_chunks(struct graft *g, uint64_t offset, uint64_t *ret)
{
	struct tree *tree = &g->imp->tree;
	const struct snap_chunk_list *head =
		(const struct snap_chunk_list *)(g->from->chunks.data + offset);
	size_t size = sizeof(*head) + head->run_count * sizeof(struct snap_run);

	return copy_pooled(&tree->chunks, &tree->chunk_index, head, size, false, ret);
}

/* The inode's metadata with its strings, xattrs and chunk list in our
 * pools. */
static int copy_inode(struct graft *g, const struct tree_inode *in, struct tree_inode *out)
{
	uint32_t target;

	*out = *in;
	out->children = 0;
	out->number = out->parent = 0;
	int r = copy_owner(g, in->owner, &out->owner);
	if (r == 0)
		r = copy_xattrs(g, in->xattrs, &out->xattrs);
	if (r == 0 && S_ISREG(in->mode))
		r = copy_chunks(g, in->data, &out->data);
	if (r == 0 && S_ISLNK(in->mode)) {
		r = copy_string(g, (uint32_t)in->data, in->size, &target);
		out->data = target;
	}
	if (S_ISDIR(in->mode))
		out->data = 0;
	return r;
}

static int64_t graft_inode(struct graft *g, uint32_t inode)
{
	struct tree_inode copy;

	if (g->inode_map[inode])
		return g->inode_map[inode] - 1; /* a hard link */
	int r = copy_inode(g, &g->from->inodes[inode], &copy);
	if (r < 0)
		return r;
	int64_t ino = tree_add_inode(&g->imp->tree, &copy);
	if (ino >= 0)
		g->inode_map[inode] = (uint32_t)ino + 1;
	return ino;
}

/* Nodes are numbered as they were added, so a node's parent comes first. */
static int graft_nodes(struct graft *g)
{
	struct tree *tree = &g->imp->tree;

	for (size_t n = 1; n < g->from->node_count; n++) {
		const struct tree_node *node = &g->from->nodes[n];
		uint16_t depth = g->depth[node->parent] + 1;
		if (depth > PATH_DEPTH_MAX)
			return import_fail(g->imp, -E2BIG,
					   "with its nested archive, a path is deeper than %u "
					   "components",
					   PATH_DEPTH_MAX);
		int64_t ino = graft_inode(g, node->inode);
		int64_t at =
			ino < 0 ? ino
				: tree_add_node(tree, g->node_map[node->parent],
						(const char *)g->from->strings.data + node->name,
						node->name_len, (uint32_t)ino);
		if (at < 0)
			return at == -E2BIG ? import_fail(g->imp, -E2BIG, "too many names")
					    : (int)at;
		g->node_map[n] = (uint32_t)at;
		g->depth[n] = depth;
	}
	return 0;
}

static uint16_t node_depth(const struct tree *tree, uint32_t node)
{
	uint16_t depth = 0;

	for (; node != 0; node = tree->nodes[node].parent)
		depth++;
	return depth;
}

/* The directory in the file's place: the nested archive's own "./" entry,
 * or else the file's owner and mtime, mode 0755. */
static int dir_inode(struct graft *g, const struct tree_inode *file, int64_t *ret)
{
	const struct tree_inode *root = &g->from->inodes[g->from->nodes[0].inode];
	struct tree_inode dir = {.mode = S_IFDIR | 0755,
				 .uid = file->uid,
				 .gid = file->gid,
				 .owner = file->owner,
				 .mtime_sec = file->mtime_sec,
				 .mtime_nsec = file->mtime_nsec};

	if (g->from->root_listed) {
		int r = copy_inode(g, root, &dir);
		if (r < 0)
			return r;
	}
	*ret = tree_add_inode(&g->imp->tree, &dir);
	return *ret < 0 ? (int)*ret : 0;
}

/* NAME.orig names the file, unless that name is taken or too long. */
static int keep_file(struct cairn_import *imp, uint32_t parent, const char *name, size_t len,
		     uint32_t file)
{
	char kept[256 + sizeof(NESTED_KEEP_SUFFIX)];
	size_t kept_len = len + strlen(NESTED_KEEP_SUFFIX);

	cairn_format(kept, sizeof(kept), "%.*s%s", (int)len, name, NESTED_KEEP_SUFFIX);
	if (kept_len > 255 || tree_lookup(&imp->tree, parent, kept, kept_len) >= 0) {
		import_warn(imp, "the archive file itself is not kept: %s",
			    kept_len > 255
				    ? "its name is too long for the suffix " NESTED_KEEP_SUFFIX
				    : "a file named " NESTED_KEEP_SUFFIX " is in the way");
		return 0;
	}
	int64_t n = tree_add_node(&imp->tree, parent, kept, kept_len, file);
	return n < 0 ? (int)n : 0;
}

static int graft(struct cairn_import *imp, uint32_t parent, const struct cairn_import *nested)
{
	const struct path_parts *p = &imp->parts;
	const char *name = p->name[p->count - 1];
	size_t len = p->len[p->count - 1];
	int64_t node = tree_lookup(&imp->tree, parent, name, len);
	const struct tree *from = &nested->tree;
	_cleanup_free_ uint32_t *inode_map = calloc(from->inode_count, sizeof(*inode_map));
	_cleanup_free_ uint32_t *node_map = calloc(from->node_count, sizeof(*node_map));
	_cleanup_free_ uint16_t *depth = calloc(from->node_count, sizeof(*depth));
	struct graft g = {imp, from, inode_map, node_map, depth};
	int64_t dir = -1;

	if (!inode_map || !node_map || !depth)
		return -ENOMEM;
	if (node < 0)
		return -ENOENT; /* just placed: cannot happen */
	uint32_t file = imp->tree.nodes[node].inode;
	int r = keep_file(imp, parent, name, len, file);
	if (r == 0)
		r = dir_inode(&g, &imp->tree.inodes[file], &dir);
	if (r < 0)
		return r;
	/* Not tree_put: the directory takes the place, it is not a later
	 * version of the file. */
	imp->tree.nodes[node].inode = (uint32_t)dir;
	node_map[0] = (uint32_t)node;
	depth[0] = node_depth(&imp->tree, (uint32_t)node);
	return graft_nodes(&g);
}

/* ---- the nested import ---- */

static int nested_new(struct cairn_import *imp, struct cairn_import **ret)
{
	struct cairn_import_options options = {
		.max_entries = imp->max_entries,
		.max_ratio = imp->max_ratio,
		.ratio_slack = imp->ratio_slack,
		.recursion_depth = imp->nest_depth - 1,
		/* an encrypted zip inside, names in the same legacy charset */
		.charset = imp->charset,
		.passphrases = imp->passphrases,
		.passphrase_count = imp->passphrase_count,
	};
	struct cairn_import *nested;

	int r = cairn_import_new(imp->store, imp->writer, &options, &nested);
	if (r < 0)
		return r;
	nested->outer = imp;
	nested->nest_max = imp->nest_max;
	cairn_import_set_warn(nested, imp->warn_fn, imp->warn_data);
	*ret = nested;
	return 0;
}

/* Directories only implied by the nested archive's paths get the file's
 * mtime: the import gives them its input's. */
static void spool_set_mtime(int fd, const struct tree_inode *file)
{
	struct timespec times[2] = {
		{.tv_nsec = UTIME_OMIT},
		{.tv_sec = file->mtime_sec, .tv_nsec = file->mtime_nsec},
	};

	(void)futimens(fd, times);
}

int import_nested_expand(struct cairn_import *imp, uint32_t parent)
{
	_cleanup_close_ int fd = TAKE_FD(imp->spool_fd);
	_cleanup_(cairn_import_freep) struct cairn_import *nested = NULL;
	_cleanup_free_ char *label = NULL;
	const struct path_parts *p = &imp->parts;
	int64_t node = tree_lookup(&imp->tree, parent, p->name[p->count - 1], p->len[p->count - 1]);

	if (node >= 0)
		spool_set_mtime(fd, &imp->tree.inodes[imp->tree.nodes[node].inode]);
	if (asprintf(&label, "%s: %s", imp->label, imp->entry_path) < 0)
		return -ENOMEM;
	/* The writer hands finished files back to one import at a time: the
	 * outer's so far first, then the nested one's, then the outer's again. */
	int r = import_content_flush(imp);
	if (r < 0)
		return r;
	r = nested_new(imp, &nested);
	if (r < 0)
		return r;
	r = cairn_import_archive(nested, fd, label);
	import_content_start(imp);
	/* Not an archive after all (no format, or its first header fails):
	 * it nested nothing, and stays a plain file. */
	if (r == -EBADMSG && nested->entries == 0)
		return 0;
	if (r < 0) {
		cairn_format(imp->error, sizeof(imp->error), "%s", nested->error);
		return r;
	}
	imp->entries += nested->entries;
	imp->skipped += nested->skipped;
	imp->nested_unpacked += nested->unpacked + nested->nested_unpacked;
	r = graft(imp, parent, nested);
	return r == -E2BIG && !imp->error[0] ? import_fail(imp, r, "too many names") : r;
}
