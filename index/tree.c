/* tree.c: the in-memory tree that `cairn add` builds before it writes a
 * snapshot: path normalisation (invariant 6), nodes (names) and
 * inodes (hard links share one), a hash map from (directory, name) to node,
 * and tar -x's rules for duplicates and implied parents. Names, link
 * targets and owner names are interned in the future STRINGS pool, so the
 * per-entry cost is a 16-byte node, a 64-byte inode and its name once.
 */
#include "index_internal.h"

#include <string.h>
#include <sys/stat.h>

/* ---- growable buffers ---- */

int buf_reserve(struct buf *b, size_t more)
{
	if (more <= b->cap - b->size)
		return 0;
	if (more > SIZE_MAX / 2 - b->size)
		return -ENOMEM;
	size_t cap = b->cap ? b->cap : 4096;
	while (cap - b->size < more)
		cap *= 2;
	uint8_t *data = realloc(b->data, cap);
	if (!data)
		return -ENOMEM;
	b->data = data;
	b->cap = cap;
	return 0;
}

int buf_append(struct buf *b, const void *data, size_t size)
{
	int r = buf_reserve(b, size);
	if (r < 0)
		return r;
	if (size)
		memcpy(b->data + b->size, data, size);
	b->size += size;
	return 0;
}

int buf_align(struct buf *b, size_t align)
{
	static const uint8_t zeros[16];
	size_t pad = (align - b->size % align) % align;

	return buf_append(b, zeros, pad);
}

void buf_release(struct buf *b)
{
	free(b->data);
	*b = (struct buf){0};
}

/* ---- interning ---- */

uint64_t intern_hash(const void *data, size_t len)
{
	const uint8_t *p = data;
	uint64_t h = 0xcbf29ce484222325ull ^ len;

	for (size_t i = 0; i < len; i++)
		h = (h ^ p[i]) * 0x100000001b3ull;
	return h ^ (h >> 29);
}

void intern_release(struct intern *in)
{
	free(in->slots);
	*in = (struct intern){0};
}

int intern_find(const struct intern *in, const struct buf *pool, uint64_t hash, const void *data,
		size_t len, uint64_t *ret_offset)
{
	if (in->cap == 0 || len > UINT32_MAX)
		return 0;
	for (size_t i = (uint32_t)hash & (in->cap - 1);; i = (i + 1) & (in->cap - 1)) {
		const struct intern_slot *s = &in->slots[i];
		if (s->offset == UINT64_MAX)
			return 0;
		if (s->hash == (uint32_t)hash && s->len == len &&
		    memcmp(pool->data + s->offset, data, len) == 0) {
			*ret_offset = s->offset;
			return 1;
		}
	}
}

static void intern_insert(struct intern_slot *slots, size_t cap, const struct intern_slot *slot)
{
	size_t i = slot->hash & (cap - 1);

	while (slots[i].offset != UINT64_MAX)
		i = (i + 1) & (cap - 1);
	slots[i] = *slot;
}

int intern_add(struct intern *in, uint64_t hash, uint64_t offset, uint64_t len)
{
	if (len > UINT32_MAX)
		return 0; /* stored, only not shared */
	/* Up to 3/4 full (at 1/2, with 24-byte slots, linux 6.12's names and
	 * chunk lists took 12.6 MB; docs/BENCHMARKS.md, "Delta chunks"). */
	if ((in->count + 1) * 4 > in->cap * 3) {
		size_t cap = in->cap ? in->cap * 2 : 1024;
		struct intern_slot *slots = malloc(cap * sizeof(*slots));
		if (!slots)
			return -ENOMEM;
		for (size_t i = 0; i < cap; i++)
			slots[i].offset = UINT64_MAX;
		for (size_t i = 0; i < in->cap; i++)
			if (in->slots[i].offset != UINT64_MAX)
				intern_insert(slots, cap, &in->slots[i]);
		free(in->slots);
		in->slots = slots;
		in->cap = cap;
	}
	intern_insert(in->slots, in->cap,
		      &(struct intern_slot){(uint32_t)hash, (uint32_t)len, offset});
	in->count++;
	return 0;
}

int tree_intern_string(struct tree *tree, const void *data, size_t len, uint32_t *ret)
{
	uint64_t hash = intern_hash(data, len);
	uint64_t offset;

	/* Stored with their NUL, so len + 1 bytes compare. */
	if (intern_find(&tree->string_index, &tree->strings, hash, data, len, &offset) &&
	    tree->strings.data[offset + len] == '\0') {
		*ret = (uint32_t)offset;
		return 0;
	}
	offset = tree->strings.size;
	if (offset + len + 1 > UINT32_MAX)
		return -E2BIG;
	int r = buf_append(&tree->strings, data, len);
	if (r == 0)
		r = buf_append(&tree->strings, "", 1);
	if (r == 0)
		r = intern_add(&tree->string_index, hash, offset, len);
	if (r < 0)
		return r;
	*ret = (uint32_t)offset;
	return 0;
}

/* ---- paths ---- */

int path_split(const char *path, struct path_parts *parts)
{
	parts->count = 0;
	free(parts->copy);
	parts->copy = strdup(path);
	if (!parts->copy)
		return -ENOMEM;
	char *save = NULL;
	for (char *c = strtok_r(parts->copy, "/", &save); c; c = strtok_r(NULL, "/", &save)) {
		size_t len = strlen(c);
		if (len == 1 && c[0] == '.')
			continue;
		if (len == 2 && c[0] == '.' && c[1] == '.')
			return PATH_DOTDOT;
		if (len > 255)
			return PATH_NAME_TOO_LONG;
		if (parts->count == PATH_DEPTH_MAX)
			return PATH_TOO_DEEP;
		parts->name[parts->count] = c;
		parts->len[parts->count] = (uint16_t)len;
		parts->count++;
	}
	return PATH_OK;
}

void path_parts_release(struct path_parts *parts)
{
	free(parts->copy);
	parts->copy = NULL;
	parts->count = 0;
}

/* ---- nodes and inodes ---- */

static uint64_t node_hash(uint32_t parent, const void *name, size_t len)
{
	return intern_hash(name, len) ^ ((uint64_t)parent * 0x9e3779b97f4a7c15ull);
}

static bool node_matches(const struct tree *tree, const struct tree_node *node, uint32_t parent,
			 const char *name, size_t len)
{
	return node->parent == parent && node->name_len == len &&
	       memcmp(tree->strings.data + node->name, name, len) == 0;
}

int64_t tree_lookup(const struct tree *tree, uint32_t parent, const char *name, size_t len)
{
	size_t mask = tree->map_cap - 1;

	for (size_t i = node_hash(parent, name, len) & mask; tree->map[i]; i = (i + 1) & mask) {
		uint32_t n = tree->map[i] - 1;
		if (node_matches(tree, &tree->nodes[n], parent, name, len))
			return n;
	}
	return -1;
}

static void map_insert(uint32_t *map, size_t cap, const struct tree *tree, uint32_t n)
{
	const struct tree_node *node = &tree->nodes[n];
	size_t i = node_hash(node->parent, tree->strings.data + node->name, node->name_len);

	for (i &= cap - 1; map[i]; i = (i + 1) & (cap - 1))
		;
	map[i] = n + 1;
}

static int map_grow(struct tree *tree)
{
	/* Up to 3/4 full: at 1/2, linux 6.12's 85k names took 1 MB, not 0.5. */
	if ((tree->node_count + 1) * 4 <= tree->map_cap * 3)
		return 0;
	size_t cap = tree->map_cap * 2;
	uint32_t *map = calloc(cap, sizeof(*map));
	if (!map)
		return -ENOMEM;
	for (size_t n = 1; n < tree->node_count; n++)
		map_insert(map, cap, tree, (uint32_t)n);
	free(tree->map);
	tree->map = map;
	tree->map_cap = cap;
	return 0;
}

static int grow(void **array, size_t *cap, size_t count, size_t size)
{
	if (count < *cap)
		return 0;
	size_t new_cap = *cap ? *cap * 2 : 1024;
	void *p = realloc(*array, new_cap * size);
	if (!p)
		return -ENOMEM;
	*array = p;
	*cap = new_cap;
	return 0;
}

int64_t tree_add_inode(struct tree *tree, const struct tree_inode *proto)
{
	if (tree->inode_count >= UINT32_MAX - 1)
		return -E2BIG;
	int r = grow((void **)&tree->inodes, &tree->inode_cap, tree->inode_count,
		     sizeof(*tree->inodes));
	if (r < 0)
		return r;
	tree->inodes[tree->inode_count] = *proto;
	return (int64_t)tree->inode_count++;
}

static int64_t add_node(struct tree *tree, uint32_t parent, const char *name, size_t len,
			uint32_t inode)
{
	uint32_t name_off;

	if (tree->node_count >= UINT32_MAX - 1)
		return -E2BIG;
	int r = tree_intern_string(tree, name, len, &name_off);
	if (r == 0)
		r = grow((void **)&tree->nodes, &tree->node_cap, tree->node_count,
			 sizeof(*tree->nodes));
	if (r == 0)
		r = map_grow(tree);
	if (r < 0)
		return r;
	uint32_t n = (uint32_t)tree->node_count++;
	tree->nodes[n] = (struct tree_node){
		.parent = parent, .inode = inode, .name = name_off, .name_len = (uint16_t)len};
	map_insert(tree->map, tree->map_cap, tree, n);
	tree->inodes[tree->nodes[parent].inode].children++;
	return n;
}

int64_t tree_add_node(struct tree *tree, uint32_t parent, const char *name, size_t len,
		      uint32_t inode)
{
	return add_node(tree, parent, name, len, inode);
}

int tree_init(struct tree *tree, int64_t implied_mtime)
{
	static const uint8_t reserved[POOL_RESERVED];
	struct tree_inode root = {.mode = S_IFDIR | 0755, .mtime_sec = implied_mtime};

	*tree = (struct tree){.implied_mtime = implied_mtime};
	tree->map_cap = 1024;
	tree->map = calloc(tree->map_cap, sizeof(*tree->map));
	if (!tree->map)
		return -ENOMEM;
	int r = buf_append(&tree->strings, reserved, sizeof(reserved));
	if (r == 0)
		r = buf_append(&tree->xattrs, reserved, sizeof(reserved));
	if (r == 0)
		r = buf_append(&tree->chunks, reserved, 0);
	int64_t ino = r == 0 ? tree_add_inode(tree, &root) : r;
	if (ino < 0)
		return (int)ino;
	r = grow((void **)&tree->nodes, &tree->node_cap, 0, sizeof(*tree->nodes));
	if (r < 0)
		return r;
	tree->nodes[0] = (struct tree_node){.parent = 0, .inode = 0};
	tree->node_count = 1;
	return 0;
}

void tree_release(struct tree *tree)
{
	free(tree->nodes);
	free(tree->inodes);
	free(tree->map);
	free(tree->versions);
	free(tree->vdirs);
	buf_release(&tree->strings);
	buf_release(&tree->chunks);
	buf_release(&tree->xattrs);
	intern_release(&tree->string_index);
	intern_release(&tree->chunk_index);
	intern_release(&tree->xattr_index);
	*tree = (struct tree){0};
}

static uint32_t node_type(const struct tree *tree, uint32_t n)
{
	return tree->inodes[tree->nodes[n].inode].mode & S_IFMT;
}

/* A directory implied by a path, like the ones tar -x creates (0755). */
static int64_t implied_dir(struct tree *tree)
{
	struct tree_inode dir = {.mode = S_IFDIR | 0755, .mtime_sec = tree->implied_mtime};

	return tree_add_inode(tree, &dir);
}

int tree_place_parent(struct tree *tree, const struct path_parts *parts, uint32_t *ret_parent)
{
	uint32_t cur = 0;

	for (size_t i = 0; i + 1 < parts->count; i++) {
		int64_t n = tree_lookup(tree, cur, parts->name[i], parts->len[i]);
		if (n >= 0 && node_type(tree, (uint32_t)n) == S_IFLNK)
			return PLACE_THROUGH_SYMLINK;
		if (n >= 0 && node_type(tree, (uint32_t)n) != S_IFDIR)
			return PLACE_NOT_DIR;
		if (n < 0) {
			int64_t dir = implied_dir(tree);
			if (dir < 0)
				return (int)dir;
			n = add_node(tree, cur, parts->name[i], parts->len[i], (uint32_t)dir);
			if (n < 0)
				return (int)n;
		}
		cur = (uint32_t)n;
	}
	*ret_parent = cur;
	return PLACE_OK;
}

int tree_check_replace(const struct tree *tree, uint32_t parent, const char *name, size_t len,
		       uint32_t mode)
{
	int64_t n = tree_lookup(tree, parent, name, len);

	if (n < 0 || S_ISDIR(mode))
		return PLACE_OK;
	const struct tree_inode *old = &tree->inodes[tree->nodes[n].inode];
	if (S_ISDIR(old->mode) && old->children > 0)
		return PLACE_NONEMPTY_DIR;
	return PLACE_OK;
}

int64_t tree_put(struct tree *tree, uint32_t parent, const char *name, size_t len, uint32_t inode)
{
	int64_t n = tree_lookup(tree, parent, name, len);

	if (n < 0) {
		n = add_node(tree, parent, name, len, inode);
		return n < 0 ? n : inode;
	}
	struct tree_inode *old = &tree->inodes[tree->nodes[n].inode];
	const struct tree_inode *new = &tree->inodes[inode];
	if (S_ISDIR(old->mode) && S_ISDIR(new->mode)) {
		uint32_t children = old->children;
		*old = *new;
		old->children = children;
		return tree->nodes[n].inode;
	}
	if (tree->nodes[n].inode != inode) {
		int r = tree_version_add(tree, (uint32_t)n, tree->nodes[n].inode);
		if (r < 0)
			return r;
	}
	tree->nodes[n].inode = inode;
	return inode;
}

int64_t tree_find(const struct tree *tree, const struct path_parts *parts)
{
	int64_t n = 0;

	for (size_t i = 0; i < parts->count; i++) {
		if (node_type(tree, (uint32_t)n) != S_IFDIR)
			return -1;
		n = tree_lookup(tree, (uint32_t)n, parts->name[i], parts->len[i]);
		if (n < 0)
			return -1;
	}
	return n;
}
