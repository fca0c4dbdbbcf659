/* write.c: serialising the in-memory tree into a snapshot file (layout in
 * docs/FORMAT.md). Inode numbers are given breadth-first with each
 * directory's entries in name order, so a directory's children have
 * neighbouring records (readdirplus and `find` touch few pages) and every
 * subdirectory's number is larger than its parent's. Sections are streamed
 * through one buffer and checksummed as they go, each section whole and,
 * in a large snapshot, every 64 KiB page from SOURCE to the end (PAGES, so
 * readers check what they touch); PAGES (in room reserved after the
 * table), the section table and the header are written last.
 */
#include "index_internal.h"

#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#define OUT_BUF_SIZE (1u << 20)
/* Version 3: PAGES starts right after the section table, so an open reads
 * it with the header; SOURCE follows the room reserved for it. */
#define PAGES_OFFSET (sizeof(struct snap_header) + SNAP_SECTIONS_MAX * sizeof(struct snap_section))

struct out {
	int fd;
	uint8_t *buf;
	size_t len;
	uint64_t pos; /* file offset of buf[0] */
	struct cairn_file_hasher hasher;
	const struct cairn_store *store;
	struct snap_section *section; /* being written */
	/* PAGES: the sum of every SNAP_PAGE_SIZE bytes written while paging */
	bool paging;
	struct cairn_file_hasher page;
	uint64_t page_fill;
	uint64_t *page_sums;
	size_t page_count, page_cap;
};

static void page_sum_end(struct out *o)
{
	struct cairn_id id;
	uint64_t sum;

	cairn_file_hasher_final(&o->page, &id);
	memcpy(&sum, id.bytes, sizeof(sum));
	o->page_sums[o->page_count++] = sum;
	o->page_fill = 0;
}

/* Feeds bytes to the page sums; false when out of memory. */
static bool page_update(struct out *o, const uint8_t *p, size_t size)
{
	while (size > 0) {
		if (o->page_fill == 0) {
			if (o->page_count == o->page_cap) {
				size_t cap = o->page_cap ? 2 * o->page_cap : 64;
				uint64_t *sums = realloc(o->page_sums, cap * sizeof(*sums));
				if (!sums)
					return false;
				o->page_sums = sums;
				o->page_cap = cap;
			}
			cairn_file_hasher_init(&o->page, o->store);
		}
		size_t n =
			SNAP_PAGE_SIZE - o->page_fill < size ? SNAP_PAGE_SIZE - o->page_fill : size;
		cairn_file_hasher_update(&o->page, p, n);
		o->page_fill += n;
		p += n;
		size -= n;
		if (o->page_fill == SNAP_PAGE_SIZE)
			page_sum_end(o);
	}
	return true;
}

static int out_flush(struct out *o)
{
	int r = cairn_pwrite_all(o->fd, o->buf, o->len, o->pos);
	if (r < 0)
		return r;
	o->pos += o->len;
	o->len = 0;
	return 0;
}

static int out_write(struct out *o, const void *data, size_t size)
{
	const uint8_t *p = data;

	if (o->section) {
		cairn_file_hasher_update(&o->hasher, data, size);
		o->section->size += size;
	}
	if (o->paging && !page_update(o, p, size))
		return -ENOMEM;
	while (size > 0) {
		size_t n = OUT_BUF_SIZE - o->len < size ? OUT_BUF_SIZE - o->len : size;
		memcpy(o->buf + o->len, p, n);
		o->len += n;
		p += n;
		size -= n;
		if (o->len == OUT_BUF_SIZE) {
			int r = out_flush(o);
			if (r < 0)
				return r;
		}
	}
	return 0;
}

static int section_begin(struct out *o, struct snap_section *s, uint32_t type, uint32_t record)
{
	static const uint8_t zeros[8];
	uint64_t at = o->pos + o->len;

	int r = out_write(o, zeros, (8 - at % 8) % 8);
	if (r < 0)
		return r;
	*s = (struct snap_section){.type = type, .record_size = record, .offset = o->pos + o->len};
	cairn_file_hasher_init(&o->hasher, o->store);
	o->section = s;
	return 0;
}

static void section_end(struct out *o)
{
	struct cairn_id id;

	if (!o->section)
		return;
	cairn_file_hasher_final(&o->hasher, &id);
	memcpy(&o->section->checksum, id.bytes, sizeof(o->section->checksum));
	o->section = NULL;
}

/* ---- ordering ---- */

struct layout {
	uint32_t *sorted;      /* node indices but the root's, by (parent, name) */
	uint32_t *child_start; /* per node: first child's index in sorted */
	uint32_t *queue;       /* directory nodes, breadth first */
	size_t queue_len;
	uint32_t *order; /* inode number - 1 -> tree inode index */
	size_t inode_count;
	uint64_t file_count, file_bytes;
};

static int compare_nodes(const void *a, const void *b, void *userdata)
{
	const struct tree *tree = userdata;
	const struct tree_node *x = &tree->nodes[*(const uint32_t *)a];
	const struct tree_node *y = &tree->nodes[*(const uint32_t *)b];

	if (x->parent != y->parent)
		return x->parent < y->parent ? -1 : 1;
	int c = memcmp(tree->strings.data + x->name, tree->strings.data + y->name,
		       x->name_len < y->name_len ? x->name_len : y->name_len);
	if (c != 0)
		return c;
	return x->name_len < y->name_len ? -1 : x->name_len > y->name_len;
}

static int layout_sort(struct tree *tree, struct layout *l)
{
	size_t n = tree->node_count;

	l->sorted = malloc(n * sizeof(*l->sorted));
	l->child_start = malloc((n + 1) * sizeof(*l->child_start));
	l->queue = malloc(n * sizeof(*l->queue));
	l->order = malloc(n * sizeof(*l->order));
	if (!l->sorted || !l->child_start || !l->queue || !l->order)
		return -ENOMEM;
	for (size_t i = 1; i < n; i++)
		l->sorted[i - 1] = (uint32_t)i;
	qsort_r(l->sorted, n - 1, sizeof(*l->sorted), compare_nodes, tree);
	/* child_start[p] .. child_start[p + 1]: the children of node p. */
	size_t k = 0;
	for (size_t p = 0; p <= n; p++) {
		while (k < n - 1 && tree->nodes[l->sorted[k]].parent < p)
			k++;
		l->child_start[p] = (uint32_t)k;
	}
	return 0;
}

static void number_inode(struct tree *tree, struct layout *l, struct tree_inode *inode,
			 uint32_t index)
{
	inode->number = (uint32_t)++l->inode_count;
	inode->nlink = 0;
	l->order[inode->number - 1] = index;
	if (S_ISREG(inode->mode)) {
		l->file_count++;
		l->file_bytes += inode->size;
	}
}

/* Breadth first from the queue's entry qi on: numbers, link counts,
 * parents, dirent ranges. Returns the dirent index it reached. */
static uint64_t layout_walk(struct tree *tree, struct layout *l, size_t qi, uint64_t dirent_index,
			    uint32_t shared_below)
{
	for (; qi < l->queue_len; qi++) {
		uint32_t q = l->queue[qi];
		struct tree_inode *dir = &tree->inodes[tree->nodes[q].inode];
		uint32_t subdirs = 0;
		dir->data = dirent_index;
		dir->children = l->child_start[q + 1] - l->child_start[q];
		dirent_index += dir->children;
		for (uint32_t k = l->child_start[q]; k < l->child_start[q + 1]; k++) {
			uint32_t c = l->sorted[k];
			struct tree_inode *child = &tree->inodes[tree->nodes[c].inode];
			if (child->number == 0)
				number_inode(tree, l, child, tree->nodes[c].inode);
			/* An earlier version that another name of the tree
			 * still has: its link count stays the tree's. */
			if (child->number >= shared_below)
				child->nlink++;
			if (S_ISDIR(child->mode)) {
				child->parent = dir->number;
				l->queue[l->queue_len++] = c;
				subdirs++;
			}
		}
		dir->nlink = 2 + subdirs;
	}
	return dirent_index;
}

/* The tree from the root, then the NAME.versions directories (versions.c),
 * numbered after it in the order of their links. */
static void layout_number(struct tree *tree, struct layout *l)
{
	for (size_t i = 0; i < tree->inode_count; i++)
		tree->inodes[i].number = 0;
	struct tree_inode *root = &tree->inodes[tree->nodes[0].inode];
	number_inode(tree, l, root, tree->nodes[0].inode);
	root->parent = root->number;
	l->queue[l->queue_len++] = 0;
	uint64_t visible = layout_walk(tree, l, 0, 0, 0);
	size_t qi = l->queue_len;
	uint32_t first = (uint32_t)l->inode_count + 1;
	versions_sort(tree);
	for (size_t i = 0; i < tree->vdir_count; i++) {
		const struct tree_vdir *v = &tree->vdirs[i];
		struct tree_inode *dir = &tree->inodes[tree->nodes[v->node].inode];
		number_inode(tree, l, dir, tree->nodes[v->node].inode);
		dir->parent = tree->inodes[tree->nodes[v->holder].inode].number;
		l->queue[l->queue_len++] = v->node;
	}
	tree->hidden_dirents =
		layout_walk(tree, l, qi, visible, first) - visible + tree->vdir_count;
}

static void layout_release(struct layout *l)
{
	free(l->sorted);
	free(l->child_start);
	free(l->queue);
	free(l->order);
}

/* ---- sections ---- */

static int write_source(struct out *o, const struct write_totals *t)
{
	struct snap_source src = *t->source;
	size_t name_len = strlen(t->source_name);

	src.name_len = (uint32_t)name_len;
	int r = out_write(o, &src, sizeof(src));
	if (r == 0)
		r = out_write(o, t->source_name, name_len + 1);
	return r;
}

static int write_inodes(struct out *o, const struct tree *tree, const struct layout *l)
{
	const struct tree_inode *root = &tree->inodes[tree->nodes[0].inode];

	for (size_t i = 0; i < l->inode_count; i++) {
		const struct tree_inode *t = &tree->inodes[l->order[i]];
		struct snap_inode d = {
			.mode = t->mode,
			.nlink = t->nlink,
			.uid = t->uid,
			.gid = t->gid,
			.mtime_sec = t->mtime_sec,
			.mtime_nsec = t->mtime_nsec,
			.parent = S_ISDIR(t->mode) ? t->parent : 0,
			.size = t->size,
			.data = t->data,
			.count = S_ISDIR(t->mode) ? t->children : 0,
			.owner = t->owner,
			.xattrs = t->xattrs,
			.flags = t == root && tree->root_listed ? SNAP_INODE_LISTED : 0,
		};
		int r = out_write(o, &d, sizeof(d));
		if (r < 0)
			return r;
	}
	return 0;
}

static int write_dirents(struct out *o, const struct tree *tree, const struct layout *l)
{
	for (size_t qi = 0; qi < l->queue_len; qi++) {
		uint32_t q = l->queue[qi];
		for (uint32_t k = l->child_start[q]; k < l->child_start[q + 1]; k++) {
			const struct tree_node *node = &tree->nodes[l->sorted[k]];
			const struct tree_inode *inode = &tree->inodes[node->inode];
			struct snap_dirent d = {
				.inode = inode->number,
				.name = node->name,
				.name_len = node->name_len,
				.type = (uint8_t)index_mode_to_dtype(inode->mode),
			};
			int r = out_write(o, &d, sizeof(d));
			if (r < 0)
				return r;
		}
	}
	return 0;
}

/* The dirents of every directory; the versions' links follow them. */
static uint64_t dirent_total(const struct layout *l)
{
	uint64_t total = 0;

	for (size_t qi = 0; qi < l->queue_len; qi++)
		total += l->child_start[l->queue[qi] + 1] - l->child_start[l->queue[qi]];
	return total;
}

static int write_version_links(struct out *o, const struct tree *tree)
{
	for (size_t i = 0; i < tree->vdir_count; i++) {
		struct snap_dirent d;
		versions_link(tree, i, &d);
		int r = out_write(o, &d, sizeof(d));
		if (r < 0)
			return r;
	}
	return 0;
}

static int write_sections(struct out *o, struct tree *tree, const struct layout *l,
			  const struct write_totals *t, struct snap_section *s)
{
	int r = section_begin(o, &s[0], SECTION_SOURCE, 0);
	if (r == 0)
		r = write_source(o, t);
	section_end(o);
	if (r == 0)
		r = section_begin(o, &s[1], SECTION_INODES, sizeof(struct snap_inode));
	if (r == 0)
		r = write_inodes(o, tree, l);
	section_end(o);
	if (r == 0)
		r = section_begin(o, &s[2], SECTION_DIRENTS, sizeof(struct snap_dirent));
	if (r == 0)
		r = write_dirents(o, tree, l);
	if (r == 0)
		r = write_version_links(o, tree);
	section_end(o);
	const struct buf *pools[3] = {&tree->strings, &tree->chunks, &tree->xattrs};
	for (int i = 0; r == 0 && i < 3; i++) {
		r = section_begin(o, &s[3 + i], SECTION_STRINGS + (uint32_t)i, 0);
		if (r == 0)
			r = out_write(o, pools[i]->data, pools[i]->size);
		section_end(o);
	}
	return r;
}

/* PAGES, in the room left for it before SOURCE: the last page's sum,
 * then the sums and their section's checksum (the section table and header
 * come after). */
static int write_pages(struct out *o, struct snap_section *s, uint64_t room)
{
	struct cairn_file_hasher hasher;
	struct cairn_id id;

	if (o->page_fill > 0)
		page_sum_end(o);
	o->paging = false;
	if (o->page_count * 8 > room)
		return -EOVERFLOW; /* sections_bound is wrong */
	*s = (struct snap_section){.type = SECTION_PAGES,
				   .record_size = 8,
				   .offset = PAGES_OFFSET,
				   .size = o->page_count * 8};
	cairn_file_hasher_init(&hasher, o->store);
	cairn_file_hasher_update(&hasher, o->page_sums, s->size);
	cairn_file_hasher_final(&hasher, &id);
	memcpy(&s->checksum, id.bytes, sizeof(s->checksum));
	return cairn_pwrite_all(o->fd, o->page_sums, s->size, PAGES_OFFSET);
}

static int write_header(struct out *o, const struct tree *tree, const struct layout *l,
			const struct write_totals *t, const struct snap_section *s, bool paged)
{
	uint32_t version = tree->vdir_count ? SNAP_VERSION_VERSIONS : SNAP_VERSION;
	struct snap_header h = {
		.version = paged ? SNAP_VERSION_PAGES : version,
		.header_size = sizeof(h),
		.section_count = paged ? SNAP_SECTIONS_MAX : SNAP_SECTION_COUNT,
		.flags = t->partial ? SNAP_FLAG_PARTIAL : 0,
		.file_size = o->pos,
		.inode_count = l->inode_count,
		.dirent_count = dirent_total(l) + tree->vdir_count,
		.versions_start = tree->vdir_count ? dirent_total(l) : 0,
		.versions_count = tree->vdir_count,
		.entry_count = t->entry_count,
		.file_count = l->file_count,
		.file_bytes = l->file_bytes,
		.created_sec = (int64_t)time(NULL),
		.skipped = t->skipped,
	};
	size_t table_size = h.section_count * sizeof(*s);
	struct cairn_file_hasher hasher;
	struct cairn_id id;

	memcpy(h.magic, SNAP_MAGIC, 8);
	cairn_file_hasher_init(&hasher, o->store);
	cairn_file_hasher_update(&hasher, &h, offsetof(struct snap_header, checksum));
	cairn_file_hasher_update(&hasher, s, table_size);
	cairn_file_hasher_final(&hasher, &id);
	memcpy(&h.checksum, id.bytes, sizeof(h.checksum));
	int r = cairn_pwrite_all(o->fd, s, table_size, sizeof(h));
	if (r == 0)
		r = cairn_pwrite_all(o->fd, &h, sizeof(h), 0);
	return r;
}

/* At least the bytes of the sections, padding included. */
static uint64_t sections_bound(const struct tree *tree, const struct layout *l,
			       const struct write_totals *t)
{
	return sizeof(struct snap_source) + strlen(t->source_name) + 1 +
	       l->inode_count * sizeof(struct snap_inode) +
	       (dirent_total(l) + tree->vdir_count) * sizeof(struct snap_dirent) +
	       tree->strings.size + tree->chunks.size + tree->xattrs.size + SNAP_SECTION_COUNT * 7;
}

int tree_write(struct tree *tree, const struct cairn_store *store, int fd,
	       const struct write_totals *totals, char *msg, size_t msg_size)
{
	struct snap_section sections[SNAP_SECTIONS_MAX];
	struct layout l = {0};
	struct out o = {.fd = fd, .store = store};
	static const uint8_t
		zeros[sizeof(struct snap_header) + SNAP_SECTIONS_MAX * sizeof(struct snap_section)];

	o.buf = malloc(OUT_BUF_SIZE);
	int r = o.buf ? versions_materialize(tree) : -ENOMEM;
	if (r == 0)
		r = layout_sort(tree, &l);
	bool paged = false;
	uint64_t room = 0; /* for PAGES' sums, between the table and SOURCE */
	if (r == 0) {
		layout_number(tree, &l);
		uint64_t bound = sections_bound(tree, &l, totals);
		paged = bound > SNAP_PAGES_MIN;
		room = paged ? (bound + SNAP_PAGE_SIZE - 1) / SNAP_PAGE_SIZE * 8 : 0;
		uint32_t count = paged ? SNAP_SECTIONS_MAX : SNAP_SECTION_COUNT;
		r = out_write(&o, zeros, sizeof(struct snap_header) + count * sizeof(*sections));
		for (uint64_t left = room; r == 0 && left > 0; left -= 8)
			r = out_write(&o, zeros, 8);
		o.paging = paged;
	}
	if (r == 0)
		r = write_sections(&o, tree, &l, totals, sections);
	if (r == 0)
		r = out_flush(&o);
	if (r == 0 && paged)
		r = write_pages(&o, &sections[SECTION_PAGES - 1], room);
	if (r == 0)
		r = write_header(&o, tree, &l, totals, sections, paged);
	if (r < 0)
		cairn_format(msg, msg_size, "writing the snapshot: %s", strerror(-r));
	layout_release(&l);
	free(o.page_sums);
	free(o.buf);
	return r;
}
