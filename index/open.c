/* open.c: mapping a snapshot file and the checks made when it is opened:
 * magic, version, header checksum over the section table, section bounds and
 * record sizes, the source record, every section's checksum (one pass over
 * the file, authenticate.c) or, in version 3, the PAGES section (pages are
 * checked on first touch), and the root inode. Nothing else proportional to
 * the number of entries is done here (invariant 4); the accessors in read.c
 * bound-check what they touch and check.c verifies the rest.
 */
#include "index_internal.h"

#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>

uint64_t index_checksum(const struct cairn_store *store, const void *data, size_t size)
{
	struct cairn_file_hasher hasher;
	struct cairn_id id;
	uint64_t sum;

	cairn_file_hasher_init(&hasher, store);
	cairn_file_hasher_update(&hasher, data, size);
	cairn_file_hasher_final(&hasher, &id);
	memcpy(&sum, id.bytes, sizeof(sum));
	return sum;
}

struct cairn_index *cairn_index_new(void)
{
	struct cairn_index *idx = calloc(1, sizeof(*idx));

	if (!idx)
		return NULL;
	pthread_mutex_init(&idx->error_lock, NULL);
	atomic_init(&idx->failed, false);
	return idx;
}

void cairn_index_free(struct cairn_index *idx)
{
	if (!idx)
		return;
	if (idx->map)
		munmap(idx->map, idx->map_size);
	pthread_mutex_destroy(&idx->error_lock);
	free((void *)idx->page_ok);
	free(idx->name);
	free(idx);
}

const char *cairn_index_error(const struct cairn_index *idx)
{
	return idx->error;
}

const char *cairn_index_name(const struct cairn_index *idx)
{
	return idx->name ? idx->name : "";
}

int index_corrupt(struct cairn_index *idx, const char *fmt, ...)
{
	char msg[400];
	va_list ap;

	if (atomic_load_explicit(&idx->failed, memory_order_acquire))
		return -EBADMSG;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	pthread_mutex_lock(&idx->error_lock);
	if (!atomic_load_explicit(&idx->failed, memory_order_relaxed)) {
		cairn_format(idx->error, sizeof(idx->error), "snapshot %s is damaged: %s",
			     cairn_index_name(idx), msg);
		atomic_store_explicit(&idx->failed, true, memory_order_release);
	}
	pthread_mutex_unlock(&idx->error_lock);
	return -EBADMSG;
}

/* Before the handle is shared: a plain message. */
static int open_fail(struct cairn_index *idx, int r, const char *fmt, ...) _printf_(3, 4);
static int open_fail(struct cairn_index *idx, int r, const char *fmt, ...)
{
	char msg[400];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	cairn_format(idx->error, sizeof(idx->error), "snapshot %s: %s", cairn_index_name(idx), msg);
	return r;
}

static int check_header(struct cairn_index *idx, const struct cairn_store *store, unsigned flags)
{
	const struct snap_header *h = (const struct snap_header *)idx->base;

	if (idx->size < sizeof(*h) || memcmp(h->magic, SNAP_MAGIC, 8) != 0)
		return open_fail(idx, -EBADMSG, "not a cairn snapshot (bad magic)");
	if (h->version < SNAP_VERSION || h->version > SNAP_VERSION_PAGES)
		return open_fail(idx, h->version > SNAP_VERSION_PAGES ? -EOPNOTSUPP : -EBADMSG,
				 "format version %u; this cairn reads versions %u to %u",
				 h->version, SNAP_VERSION, SNAP_VERSION_PAGES);
	idx->section_count =
		h->version >= SNAP_VERSION_PAGES ? SNAP_SECTIONS_MAX : SNAP_SECTION_COUNT;
	size_t table_size = idx->section_count * sizeof(struct snap_section);
	if (h->header_size != sizeof(*h) || h->section_count != idx->section_count ||
	    idx->size < sizeof(*h) + table_size)
		return open_fail(idx, -EBADMSG, "damaged header (sizes)");
	if (h->file_size != idx->size)
		return open_fail(idx, -EBADMSG, "file is %llu bytes, its header says %llu",
				 (unsigned long long)idx->size, (unsigned long long)h->file_size);
	if (!(flags & INDEX_OPEN_NO_CHECKSUMS)) {
		struct cairn_file_hasher hasher;
		struct cairn_id id;
		uint64_t sum;
		cairn_file_hasher_init(&hasher, store);
		cairn_file_hasher_update(&hasher, h, offsetof(struct snap_header, checksum));
		cairn_file_hasher_update(&hasher, h + 1, table_size);
		cairn_file_hasher_final(&hasher, &id);
		memcpy(&sum, id.bytes, sizeof(sum));
		if (sum != h->checksum)
			return open_fail(idx, -EBADMSG, "damaged header (checksum mismatch)");
	}
	idx->header = h;
	idx->sections = (const struct snap_section *)(h + 1);
	return 0;
}

static const uint32_t record_sizes[SNAP_SECTIONS_MAX + 1] = {
	[SECTION_INODES] = sizeof(struct snap_inode),
	[SECTION_DIRENTS] = sizeof(struct snap_dirent),
	[SECTION_PAGES] = 8,
};

/* Version 3: PAGES lies between the section table and SOURCE (so an open
 * reads it with the header) and holds one sum per page of [SOURCE's
 * offset, end of file). */
static int check_pages_section(struct cairn_index *idx, uint64_t table_end)
{
	const struct snap_section *s = &idx->sections[SECTION_PAGES - 1];
	uint64_t start = idx->sections[0].offset;

	if (s->type != SECTION_PAGES || s->record_size != 8 || s->offset % 8 != 0 ||
	    s->offset < table_end || s->offset > start || s->size > start - s->offset)
		return open_fail(idx, -EBADMSG, "the pages section lies outside its place");
	uint64_t pages = (idx->size - start + SNAP_PAGE_SIZE - 1) / SNAP_PAGE_SIZE;
	if (s->size != pages * 8)
		return open_fail(idx, -EBADMSG, "the pages section does not cover the file");
	idx->pages_start = start;
	idx->pages_end = idx->size;
	idx->page_count = pages;
	idx->page_sums = idx->base + s->offset;
	return 0;
}

static int check_sections(struct cairn_index *idx)
{
	uint64_t table_end =
		sizeof(struct snap_header) + idx->section_count * sizeof(struct snap_section);
	uint64_t end = table_end;

	if (idx->section_count > SNAP_SECTION_COUNT) {
		const struct snap_section *p = &idx->sections[SECTION_PAGES - 1];
		if (p->offset < table_end || p->offset > idx->size ||
		    p->size > idx->size - p->offset)
			return open_fail(idx, -EBADMSG, "the pages section lies outside the file");
		end = p->offset + p->size;
	}
	for (uint32_t i = 0; i < SNAP_SECTION_COUNT; i++) {
		const struct snap_section *s = &idx->sections[i];
		uint32_t type = i + 1;
		if (s->type != type || s->record_size != record_sizes[type])
			return open_fail(idx, -EBADMSG, "section %u has type %u, record size %u", i,
					 s->type, s->record_size);
		if (s->offset % 8 != 0 || s->offset < end || s->offset > idx->size ||
		    s->size > idx->size - s->offset)
			return open_fail(idx, -EBADMSG, "section %u lies outside the file", i);
		if (s->record_size && s->size % s->record_size != 0)
			return open_fail(idx, -EBADMSG, "section %u is not whole records", i);
		end = s->offset + s->size;
	}
	return idx->section_count > SNAP_SECTION_COUNT ? check_pages_section(idx, table_end) : 0;
}

static void bind_sections(struct cairn_index *idx)
{
	const struct snap_section *s = idx->sections;

	idx->inodes = (const struct snap_inode *)(idx->base + s[SECTION_INODES - 1].offset);
	idx->inode_count = s[SECTION_INODES - 1].size / sizeof(struct snap_inode);
	idx->dirents = (const struct snap_dirent *)(idx->base + s[SECTION_DIRENTS - 1].offset);
	idx->dirent_count = s[SECTION_DIRENTS - 1].size / sizeof(struct snap_dirent);
	idx->strings = idx->base + s[SECTION_STRINGS - 1].offset;
	idx->strings_size = s[SECTION_STRINGS - 1].size;
	idx->chunks = idx->base + s[SECTION_CHUNKS - 1].offset;
	idx->chunks_size = s[SECTION_CHUNKS - 1].size;
	idx->xattrs = idx->base + s[SECTION_XATTRS - 1].offset;
	idx->xattrs_size = s[SECTION_XATTRS - 1].size;
}

static int check_source(struct cairn_index *idx, const struct cairn_store *store, unsigned flags)
{
	const struct snap_section *s = &idx->sections[SECTION_SOURCE - 1];
	const struct snap_source *src = (const struct snap_source *)(idx->base + s->offset);

	if (s->size < sizeof(*src) || s->size - sizeof(*src) <= src->name_len)
		return open_fail(idx, -EBADMSG, "damaged source record (size)");
	if (!(flags & INDEX_OPEN_NO_CHECKSUMS) &&
	    index_checksum(store, src, s->size) != s->checksum)
		return open_fail(idx, -EBADMSG, "damaged source record (checksum mismatch)");
	const char *name = (const char *)(src + 1);
	if (name[src->name_len] != '\0' || memchr(src->format, '\0', SNAP_FORMAT_SIZE) == NULL)
		return open_fail(idx, -EBADMSG, "damaged source record (strings)");
	idx->source = src;
	idx->source_name = name;
	return 0;
}

static int check_counts(struct cairn_index *idx)
{
	const struct snap_header *h = idx->header;

	if (h->inode_count != idx->inode_count || h->dirent_count != idx->dirent_count)
		return open_fail(idx, -EBADMSG, "header counts disagree with the sections");
	if (h->version >= SNAP_VERSION_VERSIONS) {
		if (h->versions_start > idx->dirent_count ||
		    h->versions_count > idx->dirent_count - h->versions_start)
			return open_fail(idx, -EBADMSG, "the versions links lie outside DIRENTS");
		idx->versions_start = h->versions_start;
		idx->versions_count = h->versions_count;
	}
	if (idx->inode_count == 0 || idx->inode_count > UINT32_MAX)
		return open_fail(idx, -EBADMSG, "bad inode count %llu",
				 (unsigned long long)idx->inode_count);
	if (idx->strings_size < POOL_RESERVED || idx->strings_size > UINT32_MAX ||
	    idx->xattrs_size < POOL_RESERVED || idx->xattrs_size > UINT32_MAX)
		return open_fail(idx, -EBADMSG, "bad string or xattr pool size");
	const struct snap_inode *root = &idx->inodes[CAIRN_INDEX_ROOT - 1];
	if (!index_touch(idx, root, sizeof(*root)))
		return -EBADMSG; /* the message says which page */
	if ((root->mode & S_IFMT) != S_IFDIR)
		return open_fail(idx, -EBADMSG, "the root is not a directory");
	return 0;
}

/* Before any accessor reads a byte of the sections (check_counts reads the
 * root inode): version 3 checks its PAGES section now and every other page
 * when it is first touched; earlier versions check every section whole
 * (authenticate.c). */
static int check_integrity(struct cairn_index *idx, unsigned flags)
{
	if (flags & (INDEX_OPEN_NO_CHECKSUMS | CAIRN_INDEX_OPEN_UNCHECKED))
		return 0;
	if (idx->section_count > SNAP_SECTION_COUNT) {
		if (!index_section_intact(idx, SECTION_PAGES - 1))
			return open_fail(idx, -EBADMSG,
					 "the pages section is damaged (checksum mismatch)");
		idx->page_ok = calloc(idx->page_count ? idx->page_count : 1, 1);
		return idx->page_ok ? 0 : -ENOMEM;
	}
	uint32_t type = index_authenticate(idx);
	if (type)
		return open_fail(idx, -EBADMSG, "the %s section is damaged (checksum mismatch)",
				 index_section_name(type));
	return 0;
}

int index_open_memory(struct cairn_index *idx, const struct cairn_store *store, const void *data,
		      size_t size, const char *label, unsigned flags)
{
	if (idx->base)
		return -EALREADY;
	if (!store && !(flags & INDEX_OPEN_NO_CHECKSUMS))
		return -EINVAL;
	if (!idx->name) {
		idx->name = strdup(label);
		if (!idx->name)
			return -ENOMEM;
	}
	idx->store = store;
	idx->base = data;
	idx->size = size;
	int r = check_header(idx, store, flags);
	if (r == 0)
		r = check_sections(idx);
	if (r == 0) {
		bind_sections(idx);
		r = check_source(idx, store, flags);
	}
	if (r == 0)
		r = check_integrity(idx, flags);
	if (r == 0)
		r = check_counts(idx);
	if (r < 0) {
		idx->base = NULL;
		idx->header = NULL;
		free((void *)idx->page_ok);
		idx->page_ok = NULL;
	}
	return r;
}

static int map_file(struct cairn_index *idx, int fd)
{
	struct stat st;

	if (fstat(fd, &st) < 0)
		return open_fail(idx, -errno, "%s", strerror(errno));
	if (!S_ISREG(st.st_mode))
		return open_fail(idx, -EBADMSG, "not a regular file");
	if (st.st_size < (off_t)sizeof(struct snap_header))
		return open_fail(idx, -EBADMSG, "truncated (%lld bytes)", (long long)st.st_size);
	void *map = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_SHARED, fd, 0);
	if (map == MAP_FAILED)
		return open_fail(idx, -errno, "mmap: %s", strerror(errno));
	idx->map = map;
	idx->map_size = (size_t)st.st_size;
	/* The open reads a few scattered pages (the header, the section
	 * table, the root's records). Faulted in with normal read-ahead, the
	 * first of them read up to read_ahead_kb around it: with the 8 MiB
	 * this machine's disk has, 8 MiB of an 11 MiB index on the path of a
	 * cold mount, before its first reply (docs/BENCHMARKS.md, "Mount
	 * start"). Normal read-ahead is back once the index is open. */
	(void)madvise(map, idx->map_size, MADV_RANDOM);
	return 0;
}

int cairn_index_open(struct cairn_index *idx, const struct cairn_store *store, const char *name)
{
	return cairn_index_open_flags(idx, store, name, 0);
}

int cairn_index_open_flags(struct cairn_index *idx, const struct cairn_store *store,
			   const char *name, unsigned flags)
{
	char why[200];

	if (idx->base || idx->map)
		return -EALREADY;
	free(idx->name);
	idx->name = strdup(name);
	if (!idx->name)
		return -ENOMEM;
	if (cairn_snapshot_name_check(name, why, sizeof(why)) < 0)
		return open_fail(idx, -ENOENT, "%s", why);
	char fetch_why[600];
	int r = cairn_store_snapshot_fetch(store, name, fetch_why, sizeof(fetch_why));
	if (r < 0)
		return open_fail(idx, r, "%s", fetch_why);
	_cleanup_close_ int dirfd = snapshots_dir_open(store);
	if (dirfd < 0 && dirfd != -ENOENT)
		return open_fail(idx, dirfd, "%s/%s: %s", cairn_store_path(store), SNAPSHOTS_DIR,
				 cairn_path_strerror(dirfd));
	_cleanup_close_ int fd =
		dirfd < 0 ? dirfd : cairn_open_file_beneath(dirfd, name, O_RDONLY, 0);
	if (fd < 0) {
		if (fd == -ENOENT)
			return open_fail(idx, -ENOENT, "no such snapshot in %s",
					 cairn_store_path(store));
		return open_fail(idx, fd, "%s/%s/%s: %s", cairn_store_path(store), SNAPSHOTS_DIR,
				 name, cairn_path_strerror(fd));
	}
	r = map_file(idx, fd);
	if (r < 0)
		return r;
	r = index_open_memory(idx, store, idx->map, idx->map_size, name,
			      flags & CAIRN_INDEX_OPEN_UNCHECKED);
	(void)madvise(idx->map, idx->map_size, MADV_NORMAL);
	if (r < 0) {
		munmap(idx->map, idx->map_size);
		idx->map = NULL;
	}
	return r;
}

/* The tree's dirents: the versions' directories list theirs after every
 * directory of the tree, and their links follow. */
static uint64_t visible_dirents(const struct cairn_index *idx)
{
	if (idx->versions_count == 0)
		return idx->dirent_count;
	const struct snap_dirent *link = &idx->dirents[idx->versions_start];
	if (!index_touch(idx, link, sizeof(*link)))
		return idx->dirent_count;
	uint32_t first = link->inode;
	if (first == 0 || first > idx->inode_count ||
	    !index_touch(idx, &idx->inodes[first - 1], sizeof(struct snap_inode)) ||
	    idx->inodes[first - 1].data > idx->versions_start)
		return idx->dirent_count;
	return idx->inodes[first - 1].data;
}

void cairn_index_info(const struct cairn_index *idx, struct cairn_index_info *ret)
{
	const struct snap_header *h = idx->header;
	const struct snap_source *src = idx->source;
	struct cairn_index_info info = {
		.inode_count = h->inode_count,
		.dirent_count = visible_dirents(idx),
		.entry_count = h->entry_count,
		.skipped = h->skipped,
		.partial = (h->flags & SNAP_FLAG_PARTIAL) != 0,
		.file_count = h->file_count,
		.file_bytes = h->file_bytes,
		.created_sec = h->created_sec,
		.file_size = idx->size,
		.source_name = idx->source_name,
		.source_format = src->format,
		.source_size = src->size,
		.source_mtime_sec = src->mtime_sec,
		.source_mtime_nsec = src->mtime_nsec,
		.root_listed = (idx->inodes[0].flags & SNAP_INODE_LISTED) != 0,
	};

	memcpy(info.source_id.bytes, src->archive_id, CAIRN_ID_SIZE);
	*ret = info;
}

static void prefetch_range(const struct cairn_index *idx, const void *start, uint64_t size)
{
	if (!start || size == 0)
		return;
	uintptr_t page = (uintptr_t)sysconf(_SC_PAGESIZE);
	uintptr_t from = (uintptr_t)start & ~(page - 1);
	uintptr_t to = (uintptr_t)start + size;
	uintptr_t map_end = (uintptr_t)idx->map + idx->map_size;
	if (to > map_end)
		to = map_end;
	if (from < to)
		(void)madvise((void *)from, to - from, MADV_WILLNEED);
}

void cairn_index_prefetch(const struct cairn_index *idx)
{
	if (!idx->map || !idx->header)
		return;
	prefetch_range(idx, idx->inodes, idx->inode_count * sizeof(*idx->inodes));
	prefetch_range(idx, idx->dirents, idx->dirent_count * sizeof(*idx->dirents));
	prefetch_range(idx, idx->strings, idx->strings_size);
	prefetch_range(idx, idx->xattrs, idx->xattrs_size);
}
