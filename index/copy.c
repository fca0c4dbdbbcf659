/* copy.c: snapshots copied from one store into another (`cairn copy`),
 * sending only the chunks the destination lacks. Each chunk a snapshot
 * names is looked up once: with the same hash key in both stores its id is
 * its id there too, and a chunk the destination's table holds is not read
 * at all; otherwise its bytes are read from the source (checked against
 * their id, a delta decoded like any chunk) and put to the destination's
 * writer, which gives their id there, confirms a match by comparing bytes
 * and decides how to store them. The snapshot file is then rewritten under
 * the destination's key (rekey.c), checked as an open checks it, and
 * committed as an add commits (commit.c): temp file, the store's commit,
 * rename. A failure rolls the writer back: nothing of that snapshot lands.
 */
#include "index_internal.h"

#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

/* ---- the map of ids: source chunk id -> destination chunk id ---- */

struct id_pair {
	struct cairn_id src, dst;
	uint64_t serial; /* the last snapshot that named it; 0: an empty slot */
	bool sent;       /* sent by this copy, not yet counted */
};

struct id_map {
	struct id_pair *slots;
	size_t cap, count; /* cap: a power of two */
};

static size_t map_slot(const struct cairn_id *id, size_t cap)
{
	uint64_t a, b;

	memcpy(&a, id->bytes, 8);
	memcpy(&b, id->bytes + 8, 8);
	return (size_t)(((a ^ (b << 32 | b >> 32)) * 0x9e3779b97f4a7c15ull) >> 17) & (cap - 1);
}

static struct id_pair *map_probe(struct id_pair *slots, size_t cap, const struct cairn_id *id)
{
	size_t i = map_slot(id, cap);

	while (slots[i].serial && memcmp(&slots[i].src, id, sizeof(*id)) != 0)
		i = (i + 1) & (cap - 1);
	return &slots[i];
}

static int map_grow(struct id_map *m)
{
	size_t cap = m->cap ? m->cap * 2 : 4096;
	struct id_pair *slots = calloc(cap, sizeof(*slots));

	if (!slots)
		return -ENOMEM;
	for (size_t i = 0; i < m->cap; i++)
		if (m->slots[i].serial)
			*map_probe(slots, cap, &m->slots[i].src) = m->slots[i];
	free(m->slots);
	m->slots = slots;
	m->cap = cap;
	return 0;
}

static void map_clear(struct id_map *m)
{
	if (m->slots)
		memset(m->slots, 0, m->cap * sizeof(*m->slots));
	m->count = 0;
}

/* The most chunks one record holds (store/format.h's RECORD_MAX_MEMBERS). */
#define RECORD_CHUNKS_MAX 256

/* ---- the handle ---- */

/* The chunks decoded with the last one read: a small chunk's record holds
 * its neighbours in the archive, which the walk usually wants next. */
struct neighbours {
	struct cairn_chunk_ref refs[256];
	uint32_t offsets[256];
	size_t count, used, cap;
	uint8_t *data;
};

struct cairn_copy {
	struct cairn_store *src, *dst;
	struct cairn_writer *writer;
	struct cairn_unpacker *unpacker;
	bool same_key;
	/* same key: records copied whole when the snapshot wants all their
	 * chunks (want: the snapshot's chunks) */
	struct cairn_record_copier *copier;
	struct cairn_chunk_set *want;
	uint8_t *buf; /* one chunk of src */
	size_t buf_size;
	struct neighbours near;
	struct id_map map;
	uint64_t serial; /* of the snapshot being copied, from 1 */
	/* the snapshot being copied */
	struct cairn_index *idx;
	const char *name;
	struct cairn_copy_stats stats;
	char error[1024];
};

static int copy_fail(struct cairn_copy *c, int r, const char *fmt, ...) _printf_(3, 4);
static int copy_fail(struct cairn_copy *c, int r, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(c->error, sizeof(c->error), fmt, ap);
	va_end(ap);
	return r;
}

const char *cairn_copy_error(const struct cairn_copy *copy)
{
	return copy->error;
}

int cairn_copy_new(struct cairn_store *src, struct cairn_store *dst, struct cairn_writer *writer,
		   struct cairn_copy **ret)
{
	_cleanup_free_ struct cairn_copy *c = calloc(1, sizeof(*c));

	if (!c)
		return -ENOMEM;
	*c = (struct cairn_copy){.src = src, .dst = dst, .writer = writer};
	c->same_key = cairn_store_same_key(src, dst);
	c->buf_size = cairn_store_params(src)->chunk_max;
	c->near.cap = 2 * (size_t)c->buf_size;
	c->buf = malloc(c->buf_size);
	c->near.data = malloc(c->near.cap);
	int r = c->buf && c->near.data ? cairn_unpacker_new(src, &c->unpacker) : -ENOMEM;
	if (r == 0 && c->same_key)
		r = cairn_record_copier_new(src, writer, &c->copier);
	if (r < 0) {
		cairn_unpacker_free(c->unpacker);
		free(c->buf);
		free(c->near.data);
		return r;
	}
	*ret = TAKE_PTR(c);
	return 0;
}

void cairn_copy_free(struct cairn_copy *copy)
{
	if (!copy)
		return;
	cairn_unpacker_free(copy->unpacker);
	cairn_record_copier_free(copy->copier);
	cairn_chunk_set_free(copy->want);
	free(copy->buf);
	free(copy->near.data);
	free(copy->map.slots);
	free(copy);
}

/* ---- naming the file of a chunk, for messages ---- */

/* The directory holding dirent j, and so the name's parent, or 0. */
static uint64_t dir_of_dirent(struct cairn_index *idx, uint64_t j)
{
	for (uint64_t d = 1; d <= idx->inode_count; d++) {
		const struct snap_inode *in = &idx->inodes[d - 1];
		if ((in->mode & S_IFMT) == S_IFDIR && in->data <= j && j - in->data < in->count)
			return d;
	}
	return 0;
}

/* Prepends "/NAME" of ino to the path that starts at path + *tail;
 * returns the directory holding that name, or 0 when none is found. */
static uint64_t prepend_name(struct cairn_index *idx, uint64_t ino, char *path, size_t *tail)
{
	for (uint64_t j = 0; j < idx->dirent_count; j++) {
		const struct snap_dirent *de = &idx->dirents[j];
		if (de->inode != ino)
			continue;
		const char *name = index_string(idx, de->name, de->name_len);
		uint64_t dir = dir_of_dirent(idx, j);
		if (!dir) /* a link to a NAME.versions directory */
			continue;
		if (!name || *tail < (size_t)de->name_len + 1)
			return 0;
		*tail -= de->name_len;
		memcpy(path + *tail, name, de->name_len);
		path[--*tail] = '/';
		return dir;
	}
	return 0;
}

/* The path of ino in the snapshot ("inode N" when none is found: a damaged
 * snapshot); the error path only, so a scan is fine. Each step goes to a
 * lower-numbered directory (FORMAT.md, "INODES"), so it ends. */
static void file_path(struct cairn_index *idx, uint64_t ino, char *out, size_t size)
{
	char path[PATH_MAX];
	size_t tail = sizeof(path);

	for (uint64_t at = ino; at > CAIRN_INDEX_ROOT;) {
		uint64_t dir = prepend_name(idx, at, path, &tail);
		/* a hard link's other names may be in later directories */
		if (!dir || (at != ino && dir >= at)) {
			snprintf(out, size, "inode %llu", (unsigned long long)ino);
			return;
		}
		at = dir;
	}
	snprintf(out, size, "%.*s", (int)(sizeof(path) - tail - 1), path + tail + 1);
}

/* A chunk the record copier stored before the walk met it: counted as sent
 * when it is met. */
#define SERIAL_SENT UINT64_MAX

static struct id_pair *map_add(struct cairn_copy *c, const struct cairn_id *id,
			       const struct cairn_id *dst, bool sent)
{
	struct id_pair *pair = map_probe(c->map.slots, c->map.cap, id);

	if (!pair->serial) {
		*pair = (struct id_pair){
			.src = *id, .dst = *dst, .serial = SERIAL_SENT, .sent = sent};
		c->map.count++;
	}
	return pair;
}

/* cairn_chunk_copied_fn: a chunk of a record copied whole. */
static void on_copied(void *userdata, const struct cairn_id *id, uint32_t size)
{
	(void)size;
	map_add(userdata, id, id, true);
}

/* cairn_chunk_want_fn: a record is copied whole only when the snapshot
 * names all its chunks. */
static bool want(void *userdata, const struct cairn_id *id)
{
	const struct cairn_copy *c = userdata;

	return cairn_chunk_set_contains(c->want, id);
}

/* ---- one chunk ---- */

static int chunk_fail(struct cairn_copy *c, int r, uint64_t ino, const struct cairn_id *id,
		      const char *fmt, ...) _printf_(5, 6);
static int chunk_fail(struct cairn_copy *c, int r, uint64_t ino, const struct cairn_id *id,
		      const char *fmt, ...)
{
	char path[PATH_MAX], hex[CAIRN_ID_HEX + 1], why[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(why, sizeof(why), fmt, ap);
	va_end(ap);
	file_path(c->idx, ino, path, sizeof(path));
	cairn_id_to_hex(id, hex);
	return copy_fail(c, r, "%s: snapshot %s: %s: chunk %s: %s", cairn_store_path(c->src),
			 c->name, path, hex, why);
}

static void keep_neighbour(void *userdata, const struct cairn_id *id, const void *data,
			   uint32_t size)
{
	struct neighbours *n = userdata;

	if (n->count == ARRAY_SIZE(n->refs) || n->cap - n->used < size)
		return;
	n->refs[n->count] = (struct cairn_chunk_ref){.id = *id, .size = size};
	n->offsets[n->count++] = (uint32_t)n->used;
	memcpy(n->data + n->used, data, size);
	n->used += size;
}

/* The bytes of chunk id from src into c->buf, checked against id: from the
 * neighbours of the last record read when it was one of them. Returns the
 * size or -errno (message on the unpacker). */
static int64_t read_chunk(struct cairn_copy *c, const struct cairn_id *id)
{
	struct neighbours *n = &c->near;

	for (size_t i = 0; i < n->count; i++) {
		if (cairn_id_compare(&n->refs[i].id, id) == 0) {
			memcpy(c->buf, n->data + n->offsets[i], n->refs[i].size);
			return n->refs[i].size;
		}
	}
	n->count = n->used = 0;
	return cairn_unpacker_get_neighbours(c->unpacker, id, c->buf, c->buf_size, keep_neighbour,
					     n);
}

/* Puts the chunk's bytes to dst; returns 1 when dst lacked them, 0 when it
 * held them already, or -errno. */
static int send_chunk(struct cairn_copy *c, uint64_t ino, const struct cairn_id *id, uint64_t size,
		      struct cairn_id *ret)
{
	struct cairn_writer_stats before, after;

	int64_t n = read_chunk(c, id);
	if (n < 0)
		return chunk_fail(c, (int)n, ino, id, "%s", cairn_unpacker_error(c->unpacker));
	if ((uint64_t)n != size)
		return chunk_fail(c, -EBADMSG, ino, id,
				  "the snapshot's run is %llu bytes, the chunk %lld",
				  (unsigned long long)size, (long long)n);
	cairn_writer_stats(c->writer, &before);
	int r = cairn_writer_put(c->writer, c->buf, (size_t)n, ret);
	if (r < 0)
		return chunk_fail(c, r, ino, id, "storing it in %s: %s", cairn_store_path(c->dst),
				  cairn_writer_error(c->writer));
	cairn_writer_stats(c->writer, &after);
	return after.chunks_new > before.chunks_new;
}

/* Where the chunk is in dst, sending it when dst lacks it. */
static int transfer(struct cairn_copy *c, uint64_t ino, const struct cairn_id *id, uint64_t size,
		    struct cairn_id *ret)
{
	uint32_t dst_max = cairn_store_params(c->dst)->chunk_max;

	if (size > dst_max)
		return chunk_fail(c, -EFBIG, ino, id,
				  "%llu bytes, more than the chunk_max of %s (%u bytes); copy "
				  "into a store with a larger one",
				  (unsigned long long)size, cairn_store_path(c->dst), dst_max);
	if (size > c->buf_size)
		return chunk_fail(c, -EBADMSG, ino, id, "%llu bytes, more than %s's chunk_max",
				  (unsigned long long)size, cairn_store_path(c->src));
	/* Same key: the same id names the same bytes in dst, whose table
	 * holds only chunks it checked when they were stored. */
	if (c->same_key && cairn_store_has_chunk(c->dst, id, NULL)) {
		*ret = *id;
		return 0;
	}
	if (c->copier) {
		int r = cairn_record_copier_copy(c->copier, id, want, on_copied, c);
		if (r < 0)
			return chunk_fail(c, r, ino, id, "%s",
					  cairn_record_copier_error(c->copier));
		if (r > 0) {
			*ret = *id;
			return 1;
		}
	}
	return send_chunk(c, ino, id, size, ret);
}

/* index_id_map_fn: each chunk is looked up or sent once per copy, and
 * counted once per snapshot. */
static int map_chunk(void *userdata, uint64_t ino, const struct cairn_id *id, uint64_t size,
		     struct cairn_id *ret)
{
	struct cairn_copy *c = userdata;
	struct id_map *m = &c->map;

	/* room for a whole record's chunks, which on_copied may add */
	while ((m->count + RECORD_CHUNKS_MAX + 1) * 4 > m->cap * 3)
		if (map_grow(m) < 0)
			return copy_fail(c, -ENOMEM, "out of memory");
	struct id_pair *pair = map_probe(m->slots, m->cap, id);
	if (pair->serial == c->serial) {
		*ret = pair->dst;
		return 0;
	}
	if (!pair->serial) {
		struct cairn_id dst;
		int r = transfer(c, ino, id, size, &dst);
		if (r < 0)
			return r;
		pair = map_add(c, id, &dst, r == 1);
	}
	c->stats.chunks++;
	c->stats.bytes += size;
	c->stats.chunks_sent += pair->sent;
	c->stats.chunks_present += !pair->sent;
	c->stats.bytes_sent += pair->sent ? size : 0;
	pair->sent = false; /* for later snapshots: there already */
	pair->serial = c->serial;
	*ret = pair->dst;
	return 0;
}

/* ---- one snapshot ---- */

static int open_snapshots_dir(struct cairn_copy *c, int *ret)
{
	if (mkdirat(cairn_store_dirfd(c->dst), SNAPSHOTS_DIR, 0700) < 0 && errno != EEXIST)
		return copy_fail(c, -errno, "%s/%s: %s", cairn_store_path(c->dst), SNAPSHOTS_DIR,
				 strerror(errno));
	int fd = snapshots_dir_open(c->dst);
	if (fd < 0)
		return copy_fail(c, fd, "%s/%s: %s", cairn_store_path(c->dst), SNAPSHOTS_DIR,
				 cairn_path_strerror(fd));
	*ret = fd;
	return 0;
}

/* What dst's snapshot new_name is: 0 none (or one to replace), 1 one of
 * the same archive bytes (by the source record's size and archive id,
 * which a copy keeps), or -EEXIST. */
static int check_existing(struct cairn_copy *c, const char *new_name, unsigned flags)
{
	int r = cairn_snapshot_exists(c->dst, new_name);
	if (r <= 0)
		return r < 0 ? copy_fail(c, r, "%s/%s/%s: %s", cairn_store_path(c->dst),
					 SNAPSHOTS_DIR, new_name, strerror(-r))
			     : 0;
	_cleanup_(cairn_index_freep) struct cairn_index *old = cairn_index_new();
	if (!old)
		return copy_fail(c, -ENOMEM, "out of memory");
	const struct snap_source *s = c->idx->source;
	if (cairn_index_open(old, c->dst, new_name) == 0 && old->source->size == s->size &&
	    memcmp(old->source->archive_id, s->archive_id, CAIRN_ID_SIZE) == 0)
		return 1;
	if (flags & CAIRN_COPY_REPLACE)
		return 0;
	return copy_fail(c, -EEXIST, "a snapshot named %s already exists in %s", new_name,
			 cairn_store_path(c->dst));
}

/* The copy is opened as any reader opens it, under dst's key, before it
 * may land. */
static int check_copy(struct cairn_copy *c, const uint8_t *data, size_t size)
{
	_cleanup_(cairn_index_freep) struct cairn_index *idx = cairn_index_new();

	if (!idx)
		return copy_fail(c, -ENOMEM, "out of memory");
	int r = index_open_memory(idx, c->dst, data, size, c->name, 0);
	if (r < 0)
		return copy_fail(c, r, "%s: snapshot %s: its copy does not open: %s",
				 cairn_store_path(c->dst), c->name, cairn_index_error(idx));
	return 0;
}

static int write_tmp(struct cairn_copy *c, int dirfd, const uint8_t *data, size_t size,
		     char *tmp_name, size_t tmp_size, int *ret_fd)
{
	int fd = cairn_tmp_open(dirfd, SNAPSHOT_TMP_PREFIX, "", 0600, tmp_name, tmp_size);
	if (fd < 0)
		return copy_fail(c, fd, "creating a temp file in %s/%s: %s",
				 cairn_store_path(c->dst), SNAPSHOTS_DIR, strerror(-fd));
	int r = cairn_write_all(fd, data, size);
	if (r < 0) {
		close(fd);
		unlinkat(dirfd, tmp_name, 0);
		return copy_fail(c, r, "%s/%s/%s: %s", cairn_store_path(c->dst), SNAPSHOTS_DIR,
				 tmp_name, strerror(-r));
	}
	*ret_fd = fd;
	return 0;
}

/* Invariant 1, as commit.c keeps it: the chunks first, then the snapshot. */
static int commit(struct cairn_copy *c, int dirfd, int fd, const char *tmp_name,
		  const char *new_name)
{
	bool renamed = false;

	int r = cairn_writer_commit(c->writer);
	if (r < 0)
		return copy_fail(c, r, "%s: committing the store: %s", cairn_store_path(c->dst),
				 cairn_writer_error(c->writer));
	r = cairn_commit_file(dirfd, fd, tmp_name, new_name, &renamed);
	if (r < 0)
		return copy_fail(c, r,
				 renamed ? "snapshot %s is in place, but the fsync of %s/%s "
					   "failed: %s"
					 : "committing snapshot %s as %s/%s: %s",
				 new_name, cairn_store_path(c->dst), SNAPSHOTS_DIR, strerror(-r));
	/* A remote DST: what was committed into its mirror goes out now. */
	r = cairn_writer_publish(c->writer);
	if (r < 0)
		return copy_fail(c, r, "%s", cairn_writer_error(c->writer));
	return 0;
}

/* The rewrite (which sends the chunks), its check, the commit. */
static int copy_open_index(struct cairn_copy *c, int dirfd, const char *new_name)
{
	_cleanup_free_ uint8_t *data = NULL;
	_cleanup_close_ int fd = -1;
	char tmp_name[64];
	size_t size;

	c->error[0] = '\0';
	int r = index_rekey(c->idx, c->dst, map_chunk, c, &data, &size);
	if (r < 0 && !c->error[0])
		copy_fail(c, r, "%s: snapshot %s: %s", cairn_store_path(c->src), c->name,
			  *cairn_index_error(c->idx) ? cairn_index_error(c->idx) : strerror(-r));
	if (r == 0)
		r = check_copy(c, data, size);
	if (r == 0)
		r = write_tmp(c, dirfd, data, size, tmp_name, sizeof(tmp_name), &fd);
	if (r < 0)
		return r;
	r = commit(c, dirfd, fd, tmp_name, new_name);
	if (r < 0)
		unlinkat(dirfd, tmp_name, 0);
	else
		c->stats.snapshot_size = size;
	return r;
}

static int copy_index(struct cairn_copy *c, const char *new_name, unsigned flags)
{
	_cleanup_close_ int dirfd = -1;
	struct cairn_writer_stats before, after;

	int r = open_snapshots_dir(c, &dirfd);
	if (r == 0)
		r = check_existing(c, new_name, flags);
	if (r != 0)
		return r;
	cairn_writer_stats(c->writer, &before);
	r = copy_open_index(c, dirfd, new_name);
	if (r < 0) {
		/* What was sent is dropped: forget where it went. */
		cairn_writer_rollback(c->writer);
		map_clear(&c->map);
		return r;
	}
	cairn_writer_stats(c->writer, &after);
	c->stats.stored_bytes = after.bytes_stored - before.bytes_stored;
	return 0;
}

int cairn_copy_snapshot(struct cairn_copy *copy, const char *name, const char *new_name,
			unsigned flags, struct cairn_copy_stats *ret)
{
	char why[300];

	_cleanup_(cairn_index_freep) struct cairn_index *idx = cairn_index_new();
	if (!idx)
		return copy_fail(copy, -ENOMEM, "out of memory");
	if (cairn_snapshot_name_check(new_name, why, sizeof(why)) < 0)
		return copy_fail(copy, -EINVAL, "%s", why);
	int r = cairn_index_open(idx, copy->src, name);
	if (r == 0)
		r = index_touch_all(idx); /* the whole file is read: check it all now */
	if (r < 0)
		return copy_fail(copy, r, "%s: snapshot %s: %s", cairn_store_path(copy->src), name,
				 cairn_index_error(idx));
	if (copy->copier) {
		cairn_chunk_set_free(TAKE_PTR(copy->want));
		r = cairn_chunk_set_new(&copy->want);
		if (r == 0)
			r = cairn_chunk_set_add_snapshot(copy->want, idx);
		if (r < 0)
			return copy_fail(
				copy, r, "%s: snapshot %s: %s", cairn_store_path(copy->src), name,
				*cairn_index_error(idx) ? cairn_index_error(idx) : strerror(-r));
	}
	copy->idx = idx;
	copy->name = name;
	copy->serial++;
	copy->stats = (struct cairn_copy_stats){.rekeyed = !copy->same_key};
	r = copy_index(copy, new_name, flags);
	copy->idx = NULL;
	if (r >= 0 && ret)
		*ret = copy->stats;
	return r;
}
