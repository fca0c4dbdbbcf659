/* union.c: several sources in one tree (cairn mount A B C MOUNTPOINT). The
 * merge is done a directory at a time, when the kernel first looks the
 * directory up (the root at mount start): its sources' listings are read
 * from their indexes, sorted by name and source, and kept; each name's
 * entry then comes from the last source that has it. Only directories that
 * more than one source has are merged: anything else is served by its own
 * snapshot as in a mount of that snapshot alone, contents (and blobs)
 * included, so a mount of a big union starts as fast as one of a snapshot.
 */
#include "mount_fuse.h"

#include <dirent.h>
#include <string.h>
#include <sys/stat.h>

struct union_entry {
	const char *name; /* owned by the snapshot's index */
	size_t name_len;
	struct snap *snap;
	uint64_t ino;  /* in snap */
	unsigned rank; /* 0: the last source's, which wins */
	unsigned type; /* DT_* */
};

struct union_dir {
	uint64_t ino;                /* the FUSE inode */
	struct union_entry *entries; /* every source's, by name, then rank */
	size_t entry_count;
	size_t *names; /* the first entry of each distinct name */
	size_t name_count;
	uint32_t nlink;         /* 2 + the subdirectories shown */
	struct union_dir *next; /* the hash chain */
};

struct union_layer {
	struct snap *snap;
	uint64_t dir; /* in snap */
};

struct union_table {
	pthread_mutex_t lock; /* protects buckets, cap and count */
	struct union_dir **buckets;
	size_t cap, count;
};

/* ---- building a merged directory ---- */

static int name_cmp(const struct union_entry *a, const struct union_entry *b)
{
	size_t len = a->name_len < b->name_len ? a->name_len : b->name_len;
	int c = memcmp(a->name, b->name, len);

	if (c || a->name_len == b->name_len)
		return c;
	return a->name_len < b->name_len ? -1 : 1;
}

static int entry_cmp(const void *a_, const void *b_)
{
	const struct union_entry *a = a_, *b = b_;
	int c = name_cmp(a, b);

	return c ? c : a->rank < b->rank ? -1 : a->rank > b->rank;
}

static int push_entry(struct union_dir *d, size_t *cap, const struct union_entry *e)
{
	if (d->entry_count == *cap) {
		size_t n = *cap ? *cap * 2 : 64;
		struct union_entry *grown = reallocarray(d->entries, n, sizeof(*grown));
		if (!grown)
			return -ENOMEM;
		d->entries = grown;
		*cap = n;
	}
	d->entries[d->entry_count++] = *e;
	return 0;
}

/* Every entry of each layer's directory, into d->entries. */
static int collect(struct fs *fs, struct union_dir *d, const struct union_layer *layers,
		   size_t count)
{
	struct cairn_index_dirent de;
	struct cairn_index *idx;
	size_t cap = 0;

	for (size_t rank = 0; rank < count; rank++) {
		int r = snap_index(fs->snaps, layers[rank].snap, &idx);
		if (r < 0)
			return r;
		for (uint64_t pos = 0;; pos++) {
			r = cairn_index_readdir(idx, layers[rank].dir, pos, &de);
			if (r < 0)
				return snap_index_error(fs->snaps, idx, r);
			if (r == 0)
				break;
			struct union_entry e = {de.name, de.name_len,    layers[rank].snap,
						de.ino,  (unsigned)rank, de.type};
			if ((r = push_entry(d, &cap, &e)) < 0)
				return r;
		}
	}
	return 0;
}

static void union_dir_free(struct union_dir *d)
{
	if (!d)
		return;
	free(d->entries);
	free(d->names);
	free(d);
}

static int union_dir_build(struct fs *fs, uint64_t ino, const struct union_layer *layers,
			   size_t count, struct union_dir **ret)
{
	struct union_dir *d = calloc(1, sizeof(*d));

	if (!d)
		return -ENOMEM;
	d->ino = ino;
	int r = collect(fs, d, layers, count);
	if (r == 0 && d->entry_count)
		qsort(d->entries, d->entry_count, sizeof(*d->entries), entry_cmp);
	if (r == 0 && !(d->names = calloc(d->entry_count + 1, sizeof(*d->names))))
		r = -ENOMEM;
	if (r < 0) {
		union_dir_free(d);
		return r;
	}
	d->nlink = 2;
	for (size_t i = 0; i < d->entry_count; i++) {
		if (i > 0 && name_cmp(&d->entries[i - 1], &d->entries[i]) == 0)
			continue;
		d->names[d->name_count++] = i;
		d->nlink += d->entries[i].type == DT_DIR;
	}
	*ret = d;
	return 0;
}

/* ---- the table of merged directories ---- */

static struct union_dir *find_locked(struct union_table *table, uint64_t ino)
{
	struct union_dir *d = table->buckets[ino & (table->cap - 1)];

	while (d && d->ino != ino)
		d = d->next;
	return d;
}

static void insert_locked(struct union_table *table, struct union_dir *d)
{
	if (table->count >= table->cap) {
		size_t cap = table->cap * 4;
		struct union_dir **buckets = calloc(cap, sizeof(*buckets));
		if (buckets) {
			for (size_t b = 0; b < table->cap; b++) {
				for (struct union_dir *e = table->buckets[b], *next; e; e = next) {
					next = e->next;
					e->next = buckets[e->ino & (cap - 1)];
					buckets[e->ino & (cap - 1)] = e;
				}
			}
			free(table->buckets);
			table->buckets = buckets;
			table->cap = cap;
		}
		/* out of memory: longer chains, still correct */
	}
	d->next = table->buckets[d->ino & (table->cap - 1)];
	table->buckets[d->ino & (table->cap - 1)] = d;
	table->count++;
}

const struct union_dir *union_find(struct union_table *table, uint64_t ino)
{
	pthread_mutex_lock(&table->lock);
	const struct union_dir *d = find_locked(table, ino);
	pthread_mutex_unlock(&table->lock);
	return d;
}

/* The merged directory of inode ino with these layers: found, or built
 * (outside the lock: another thread may build it too, and one copy
 * stays). */
static int union_get(struct fs *fs, uint64_t ino, const struct union_layer *layers, size_t count,
		     const struct union_dir **ret)
{
	struct union_table *table = fs->merge;
	struct union_dir *built;

	if ((*ret = union_find(table, ino)))
		return 0;
	int r = union_dir_build(fs, ino, layers, count, &built);
	if (r < 0)
		return r;
	pthread_mutex_lock(&table->lock);
	struct union_dir *d = find_locked(table, ino);
	if (!d) {
		insert_locked(table, built);
		d = TAKE_PTR(built);
	}
	pthread_mutex_unlock(&table->lock);
	union_dir_free(built);
	*ret = d;
	return 0;
}

int union_new(struct fs *fs, struct union_table **ret)
{
	struct union_table *table = calloc(1, sizeof(*table));
	size_t count = snap_table_count(fs->snaps);
	const struct union_dir *root;

	if (!table)
		return -ENOMEM;
	pthread_mutex_init(&table->lock, NULL);
	table->cap = 64;
	table->buckets = calloc(table->cap, sizeof(*table->buckets));
	_cleanup_free_ struct union_layer *layers = calloc(count, sizeof(*layers));
	if (!table->buckets || !layers) {
		union_free(table);
		return -ENOMEM;
	}
	for (size_t i = 0; i < count; i++) {
		struct snap *snap = snap_table_at(fs->snaps, count - 1 - i);
		layers[i] = (struct union_layer){snap, snap->root};
	}
	fs->merge = table;
	int r = union_get(fs, FUSE_ROOT_ID, layers, count, &root);
	fs->merge = NULL;
	if (r < 0) {
		union_free(table);
		return r;
	}
	*ret = table;
	return 0;
}

void union_free(struct union_table *table)
{
	if (!table)
		return;
	for (size_t b = 0; b < table->cap && table->buckets; b++) {
		for (struct union_dir *d = table->buckets[b], *next; d; d = next) {
			next = d->next;
			union_dir_free(d);
		}
	}
	free(table->buckets);
	pthread_mutex_destroy(&table->lock);
	free(table);
}

/* ---- the ops' side ---- */

/* The attributes of the entry named by d->names[i]: the winning source's,
 * and when that is a directory that earlier sources have too (down to one
 * that has something else there), the merged directory's link count. */
static int child_attr(struct fs *fs, const struct union_dir *d, size_t i, struct stat *st)
{
	size_t first = d->names[i];
	size_t end = i + 1 < d->name_count ? d->names[i + 1] : d->entry_count;
	const struct union_entry *top = &d->entries[first];
	size_t dirs = 0;
	const struct union_dir *child;

	while (first + dirs < end && d->entries[first + dirs].type == DT_DIR)
		dirs++;
	int r = fs_snap_getattr(fs, top->snap, top->ino, st);
	if (r < 0 || dirs < 2)
		return r;
	_cleanup_free_ struct union_layer *layers = calloc(dirs, sizeof(*layers));
	if (!layers)
		return -ENOMEM;
	for (size_t l = 0; l < dirs; l++)
		layers[l] =
			(struct union_layer){d->entries[first + l].snap, d->entries[first + l].ino};
	r = union_get(fs, (uint64_t)st->st_ino, layers, dirs, &child);
	if (r == 0)
		st->st_nlink = child->nlink;
	return r;
}

int union_getattr(struct fs *fs, uint64_t ino, struct stat *st)
{
	const struct union_dir *d = union_find(fs->merge, ino);
	struct snap *snap;
	uint64_t sino;

	if (!d)
		return 0;
	int r = snap_table_decode(fs->snaps, ino, &snap, &sino);
	if (r == 0)
		r = fs_snap_getattr(fs, snap, sino, st);
	if (r < 0)
		return r;
	st->st_nlink = d->nlink;
	return 1;
}

int union_lookup(struct fs *fs, uint64_t parent, const char *name, struct stat *st)
{
	const struct union_dir *d = union_find(fs->merge, parent);
	struct union_entry key = {.name = name, .name_len = strlen(name)};
	size_t lo = 0, hi;

	if (!d)
		return 0;
	for (hi = d->name_count; lo < hi;) {
		size_t mid = lo + (hi - lo) / 2;
		int c = name_cmp(&key, &d->entries[d->names[mid]]);
		if (c == 0) {
			int r = child_attr(fs, d, mid, st);
			return r < 0 ? r : 1;
		}
		if (c < 0)
			hi = mid;
		else
			lo = mid + 1;
	}
	return -ENOENT;
}

int union_readdir(struct fs *fs, const struct union_dir *dir, size_t pos, const char **ret_name,
		  struct stat *st)
{
	if (pos >= dir->name_count)
		return 0;
	int r = child_attr(fs, dir, pos, st);
	if (r < 0)
		return r;
	*ret_name = dir->entries[dir->names[pos]].name;
	return 1;
}
