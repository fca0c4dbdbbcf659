/* test_mount.c: the parts of mount/ that need no /dev/fuse, each on its own
 * with real snapshots made in a temp dir: the chunk cache's bound, LRU
 * eviction and references; inode numbers encoded and decoded across the
 * snapshots of a whole store (slots that survive another snapshot's
 * arrival) and of one snapshot; -o option parsing with size suffixes, and
 * bad options refused; the read path's fallback reads in odd sizes; and the
 * blob cache making, finding, checking and remaking blobs (a damaged or
 * shortened blob in the cache is detected and made again; a FIFO, a symlink
 * or another user's file under a blob's name is replaced without blocking or
 * following it; temp files no live mount holds are removed).
 */
#include "test_util.h"

#include <archive.h>
#include <archive_entry.h>
#include <pthread.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>

#include "mount_internal.h"

#define KiB 1024u

/* ---- fixtures ---- */

/* The log lines of the parts, kept for the tests to look at. */
static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;
static char log_text[8192];

static void log_keep(void *userdata, enum cairn_log_level level, const char *line)
{
	(void)userdata, (void)level;
	pthread_mutex_lock(&log_lock);
	size_t used = strlen(log_text);
	snprintf(log_text + used, sizeof(log_text) - used, "%s\n", line);
	pthread_mutex_unlock(&log_lock);
}

static const struct mount_log test_log = {.fn = log_keep};

static bool log_has(const char *text)
{
	pthread_mutex_lock(&log_lock);
	bool found = strstr(log_text, text) != NULL;
	pthread_mutex_unlock(&log_lock);
	return found;
}

struct fx_file {
	const char *path;
	const uint8_t *data; /* NULL: a directory */
	size_t size;
};

static void fx_write_tar(const char *path, const struct fx_file *files, size_t n)
{
	struct archive *a = archive_write_new();

	ck_assert_int_eq(archive_write_set_format_pax(a), ARCHIVE_OK);
	ck_assert_int_eq(archive_write_open_filename(a, path), ARCHIVE_OK);
	for (size_t i = 0; i < n; i++) {
		struct archive_entry *entry = archive_entry_new();
		archive_entry_set_pathname(entry, files[i].path);
		archive_entry_set_mtime(entry, 1700000000, 0);
		archive_entry_set_mode(entry, files[i].data ? S_IFREG | 0644 : S_IFDIR | 0755);
		archive_entry_set_size(entry, (la_int64_t)files[i].size);
		ck_assert_int_eq(archive_write_header(a, entry), ARCHIVE_OK);
		if (files[i].size)
			ck_assert_int_eq(archive_write_data(a, files[i].data, files[i].size),
					 (la_ssize_t)files[i].size);
		archive_entry_free(entry);
	}
	ck_assert_int_eq(archive_write_close(a), ARCHIVE_OK);
	archive_write_free(a);
}

static void fx_import(struct cairn_store *store, const struct fx_file *files, size_t n,
		      const char *name)
{
	char tar[PATH_MAX], file[64];
	struct cairn_writer *writer;
	struct cairn_import *imp;

	snprintf(file, sizeof(file), "%s.tar", name);
	fx_write_tar(test_path(tar, sizeof(tar), file), files, n);
	int fd = open(tar, O_RDONLY | O_CLOEXEC);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(cairn_writer_open(store, 0, 1, &writer), 0);
	ck_assert_int_eq(cairn_import_new(store, writer, NULL, &imp), 0);
	int r = cairn_import_archive(imp, fd, name);
	ck_assert_msg(r == 0, "import %s: %s", name, cairn_import_error(imp));
	r = cairn_import_commit(imp, name, 0);
	ck_assert_msg(r == 0, "commit %s: %s", name, cairn_import_error(imp));
	cairn_import_free(imp);
	cairn_writer_free(writer);
	close(fd);
}

/* A store of small chunks (so a few hundred KiB make many of them) with
 * snapshots "one", "two" and "three", each holding "big" (its own random
 * bytes), "dir" and "dir/text". */
#define BIG_SIZE  (300 * KiB + 123)
#define TEXT_SIZE (20 * KiB)

struct sample {
	struct cairn_store *store;
	uint8_t *big[3];
	uint8_t *text;
};

static const char *const sample_names[] = {"one", "two", "three"};

static void sample_make(struct sample *s)
{
	struct cairn_store_params params;
	char path[PATH_MAX];

	cairn_store_params_default(&params);
	params.chunk_min = 2 * KiB;
	params.chunk_avg = 8 * KiB;
	params.chunk_max = 32 * KiB;
	s->store = cairn_store_new();
	ck_assert_ptr_nonnull(s->store);
	ck_assert_int_eq(
		cairn_store_create(s->store, test_path(path, sizeof(path), "store"), &params), 0);
	s->text = test_alloc(TEXT_SIZE);
	test_fill_text(s->text, TEXT_SIZE, 9);
	for (size_t i = 0; i < 3; i++) {
		s->big[i] = test_random_data(BIG_SIZE, i + 1);
		const struct fx_file files[] = {
			{"big", s->big[i], BIG_SIZE},
			{"dir", NULL, 0},
			{"dir/text", s->text, TEXT_SIZE},
		};
		fx_import(s->store, files, ARRAY_SIZE(files), sample_names[i]);
	}
}

static void sample_free(struct sample *s)
{
	cairn_store_free(s->store);
	for (size_t i = 0; i < 3; i++)
		free(s->big[i]);
	free(s->text);
}

static struct cairn_index *sample_open(struct sample *s, const char *name)
{
	struct cairn_index *idx = cairn_index_new();

	ck_assert_ptr_nonnull(idx);
	int r = cairn_index_open(idx, s->store, name);
	ck_assert_msg(r == 0, "open %s: %s", name, cairn_index_error(idx));
	return idx;
}

static uint64_t lookup(struct cairn_index *idx, const char *name)
{
	uint64_t ino;

	ck_assert_int_eq(cairn_index_lookup(idx, CAIRN_INDEX_ROOT, name, strlen(name), &ino), 0);
	return ino;
}

/* ---- the chunk cache ---- */

static struct cached_chunk *insert(struct chunk_cache *cache, uint32_t n, uint32_t size)
{
	struct cairn_id id = {{0}};
	uint8_t *data = malloc(size);

	ck_assert_ptr_nonnull(data);
	memcpy(id.bytes, &n, sizeof(n));
	memcpy(id.bytes + 4, &n, sizeof(n));
	memset(data, (int)(n & 0xff), size);
	struct cached_chunk *chunk = chunk_cache_insert(cache, &id, data, size);
	ck_assert_ptr_nonnull(chunk);
	return chunk;
}

static bool present(struct chunk_cache *cache, uint32_t n)
{
	struct cairn_id id = {{0}};

	memcpy(id.bytes, &n, sizeof(n));
	memcpy(id.bytes + 4, &n, sizeof(n));
	struct cached_chunk *chunk = chunk_cache_get(cache, &id);
	if (chunk)
		ck_assert_uint_eq(chunk->data[0], n & 0xff);
	chunk_cache_put(cache, chunk);
	return chunk != NULL;
}

START_TEST(test_chunk_cache_bound)
{
	const uint64_t bound = 64 * KiB;
	struct chunk_cache *cache;

	ck_assert_int_eq(chunk_cache_new(bound, &cache), 0);
	for (uint32_t n = 1; n <= 100; n++) {
		chunk_cache_put(cache, insert(cache, n, 4 * KiB));
		ck_assert_uint_le(chunk_cache_bytes(cache), bound);
	}
	/* The most recent are kept, as many as fit; the oldest are gone. */
	ck_assert(present(cache, 100));
	ck_assert(!present(cache, 1));
	uint32_t kept = 0;
	for (uint32_t n = 1; n <= 100; n++)
		kept += present(cache, n);
	ck_assert_uint_ge(kept, 10);
	ck_assert_uint_le(kept, 16);
	/* Inserting a chunk already there returns the cached one. */
	struct cached_chunk *again = insert(cache, 100, 4 * KiB);
	ck_assert_uint_eq(again->data[0], 100);
	chunk_cache_put(cache, again);
	chunk_cache_free(cache);
}
END_TEST

START_TEST(test_chunk_cache_lru)
{
	struct chunk_cache *cache;

	ck_assert_int_eq(chunk_cache_new(64 * KiB, &cache), 0);
	for (uint32_t n = 1; n <= 10; n++)
		chunk_cache_put(cache, insert(cache, n, 4 * KiB));
	for (uint32_t n = 1; n <= 10; n++)
		ck_assert(present(cache, n));
	/* A hit makes chunk 1 the most recent: 2, 3, ... go first. */
	ck_assert(present(cache, 1));
	for (uint32_t n = 11; n <= 20; n++)
		chunk_cache_put(cache, insert(cache, n, 4 * KiB));
	ck_assert(present(cache, 1));
	ck_assert(!present(cache, 2));
	ck_assert(present(cache, 20));
	chunk_cache_free(cache);
}
END_TEST

START_TEST(test_chunk_cache_held)
{
	struct chunk_cache *cache;

	ck_assert_int_eq(chunk_cache_new(16 * KiB, &cache), 0);
	/* A chunk a reader holds is not evicted under it, past the bound... */
	struct cached_chunk *held = insert(cache, 1, 8 * KiB);
	for (uint32_t n = 2; n <= 20; n++)
		chunk_cache_put(cache, insert(cache, n, 8 * KiB));
	ck_assert(present(cache, 1));
	for (size_t i = 0; i < held->size; i++)
		ck_assert_uint_eq(held->data[i], 1);
	/* ...and goes once it is given back and colder than the rest. */
	chunk_cache_put(cache, held);
	for (uint32_t n = 21; n <= 40; n++)
		chunk_cache_put(cache, insert(cache, n, 8 * KiB));
	ck_assert(!present(cache, 1));
	ck_assert_uint_le(chunk_cache_bytes(cache), 16 * KiB);
	chunk_cache_free(cache);
}
END_TEST

/* ---- inodes across snapshots ---- */

static void whole_store_options(struct cairn_mount_options *o)
{
	cairn_mount_options_default(o);
	o->store_path = "store";
	o->mountpoint = "mnt";
}

START_TEST(test_inodes_whole_store)
{
	struct cairn_mount_options o;
	struct sample s;
	struct snap_table *table;
	char msg[256] = "";
	uint64_t slots[3];

	sample_make(&s);
	whole_store_options(&o);
	ck_assert_int_eq(snap_table_open(&o, s.store, &test_log, &table, msg, sizeof(msg)), 0);
	ck_assert(snap_table_whole_store(table));
	ck_assert_uint_eq(snap_table_count(table), 3);
	ck_assert_str_eq(snap_table_at(table, 0)->name, "one"); /* by name */
	ck_assert_str_eq(snap_table_at(table, 1)->name, "three");
	ck_assert_str_eq(snap_table_at(table, 2)->name, "two");
	ck_assert_ptr_null(snap_table_find(table, "four"));

	struct snap *snap, *got;
	uint64_t ino;
	ck_assert_int_eq(snap_table_decode(table, CAIRN_INDEX_ROOT, &got, &ino), SNAP_STORE_ROOT);
	const uint64_t inos[] = {CAIRN_INDEX_ROOT, 2, 3, 1000, (1ull << SLOT_SHIFT) - 1};
	for (size_t i = 0; i < 3; i++) {
		snap = snap_table_find(table, sample_names[i]);
		ck_assert_ptr_nonnull(snap);
		ck_assert_uint_ge(snap->slot, 1);
		ck_assert_uint_le(snap->slot, SLOT_MAX);
		slots[i] = snap->slot;
		for (size_t j = 0; j < i; j++)
			ck_assert_uint_ne(slots[j], slots[i]);
		for (size_t k = 0; k < ARRAY_SIZE(inos); k++) {
			uint64_t fuse_ino = snap_encode(snap, inos[k]);
			ck_assert_uint_eq(fuse_ino >> SLOT_SHIFT, snap->slot);
			ck_assert_int_eq(snap_table_decode(table, fuse_ino, &got, &ino), 0);
			ck_assert_ptr_eq(got, snap);
			ck_assert_uint_eq(ino, inos[k]);
		}
		/* The encoded root leads to the snapshot's own index. */
		struct cairn_index *idx;
		ck_assert_int_eq(snap_table_index(table, snap_encode(snap, CAIRN_INDEX_ROOT), -1,
						  &got, &idx, &ino),
				 0);
		ck_assert_str_eq(cairn_index_name(idx), sample_names[i]);
		ck_assert_uint_eq(ino, CAIRN_INDEX_ROOT);
	}
	ck_assert_int_eq(snap_table_index(table, CAIRN_INDEX_ROOT, 42, &got, NULL, &ino), 42);
	ck_assert_uint_gt(snap_table_inode_count(table), 3 * 3);
	/* A slot no snapshot has is no inode. */
	uint64_t unused = 1;
	while (unused == slots[0] || unused == slots[1] || unused == slots[2])
		unused++;
	ck_assert_int_eq(snap_table_decode(table, unused << SLOT_SHIFT | 5, &got, &ino), -ENOENT);
	snap_table_free(table);

	/* Another snapshot arrives: the others keep their slots, so their
	 * inode numbers survive the remount. */
	const struct fx_file four[] = {{"big", s.big[0], 1000}};
	fx_import(s.store, four, 1, "four");
	ck_assert_int_eq(snap_table_open(&o, s.store, &test_log, &table, msg, sizeof(msg)), 0);
	ck_assert_uint_eq(snap_table_count(table), 4);
	for (size_t i = 0; i < 3; i++)
		ck_assert_uint_eq(snap_table_find(table, sample_names[i])->slot, slots[i]);
	snap_table_free(table);
	sample_free(&s);
}
END_TEST

/* A whole-store table refreshed while its snapshots are in use: a new one
 * arrives with a slot of its own and the chunk table is mapped again; a
 * removed one leaves the name lookups but its inodes still decode and its
 * open index still serves; the name added again is another snapshot, in a
 * slot never given before. */
START_TEST(test_refresh_table)
{
	struct cairn_mount_options o;
	struct sample s;
	struct snap_table *table;
	struct snap_changes changes;
	struct cairn_store_stats before, after;
	struct cairn_index *idx;
	struct cairn_index_stat st;
	struct snap *got;
	uint64_t ino;
	char msg[256] = "", path[PATH_MAX];

	sample_make(&s);
	whole_store_options(&o);
	struct cairn_store *reader = cairn_store_new();
	ck_assert_int_eq(cairn_store_open(reader, test_path(path, sizeof(path), "store")), 0);
	ck_assert_int_eq(snap_table_open(&o, reader, &test_log, &table, msg, sizeof(msg)), 0);
	ck_assert(snap_table_refreshable(table));
	struct snap *two = snap_table_find(table, "two");
	ck_assert_int_eq(snap_index(table, two, &idx), 0);
	ck_assert_int_eq(snap_table_refresh(table, &changes, msg, sizeof(msg)), 0);
	ck_assert_uint_eq(changes.count, 0);

	ck_assert_int_eq(cairn_store_stats(reader, &before), 0);
	uint8_t *big = test_random_data(BIG_SIZE, 4);
	const struct fx_file four[] = {{"big", big, BIG_SIZE}};
	fx_import(s.store, four, 1, "four");
	ck_assert_int_eq(snap_table_refresh(table, &changes, msg, sizeof(msg)), 1);
	ck_assert_uint_eq(changes.count, 1);
	ck_assert_str_eq(changes.names[0], "four");
	snap_changes_release(&changes);
	ck_assert_int_eq(cairn_store_stats(reader, &after), 0);
	ck_assert_uint_gt(after.chunk_count, before.chunk_count);
	ck_assert_uint_eq(snap_table_count(table), 4);
	struct snap *added = snap_table_find(table, "four");
	ck_assert_ptr_nonnull(added);
	ck_assert_ptr_eq(snap_table_find(table, "two"), two);
	for (size_t i = 0; i < 3; i++)
		ck_assert_uint_ne(snap_table_find(table, sample_names[i])->slot, added->slot);
	ck_assert_int_eq(snap_table_decode(table, snap_encode(added, 2), &got, &ino), 0);
	ck_assert_ptr_eq(got, added);

	ck_assert_int_eq(cairn_snapshot_remove(s.store, "two", msg, sizeof(msg)), 0);
	ck_assert_int_eq(snap_table_refresh(table, &changes, msg, sizeof(msg)), 1);
	ck_assert_uint_eq(changes.count, 1);
	ck_assert_str_eq(changes.names[0], "two");
	snap_changes_release(&changes);
	ck_assert_ptr_null(snap_table_find(table, "two"));
	ck_assert_uint_eq(snap_table_view(table)->count, 3);
	ck_assert_int_eq(snap_table_decode(table, snap_encode(two, CAIRN_INDEX_ROOT), &got, &ino),
			 0);
	ck_assert_ptr_eq(got, two);
	ck_assert_int_eq(cairn_index_getattr(idx, CAIRN_INDEX_ROOT, &st), 0);

	const struct fx_file again[] = {{"big", s.big[0], BIG_SIZE}};
	fx_import(s.store, again, 1, "two");
	ck_assert_int_eq(snap_table_refresh(table, &changes, msg, sizeof(msg)), 1);
	snap_changes_release(&changes);
	struct snap *two_again = snap_table_find(table, "two");
	ck_assert_ptr_nonnull(two_again);
	ck_assert_ptr_ne(two_again, two);
	ck_assert_uint_ne(two_again->slot, two->slot);
	ck_assert_int_eq(snap_table_decode(table, snap_encode(two, 5), &got, &ino), 0);
	ck_assert_ptr_eq(got, two);
	snap_table_free(table);
	cairn_store_free(reader);
	free(big);
	sample_free(&s);
}
END_TEST

START_TEST(test_inodes_one_snapshot)
{
	struct cairn_mount_options o;
	struct sample s;
	struct snap_table *table;
	struct snap *got;
	uint64_t ino;
	char msg[256] = "";

	sample_make(&s);
	whole_store_options(&o);
	o.snapshot = "two";
	ck_assert_int_eq(snap_table_open(&o, s.store, &test_log, &table, msg, sizeof(msg)), 0);
	ck_assert(!snap_table_whole_store(table));
	ck_assert_uint_eq(snap_table_count(table), 1);
	/* FUSE inodes are the snapshot's own: the root is its root. */
	ck_assert_int_eq(snap_table_decode(table, CAIRN_INDEX_ROOT, &got, &ino), 0);
	ck_assert_str_eq(got->name, "two");
	ck_assert_uint_eq(ino, CAIRN_INDEX_ROOT);
	ck_assert_int_eq(snap_table_decode(table, 7, &got, &ino), 0);
	ck_assert_uint_eq(ino, 7);
	ck_assert_uint_eq(snap_encode(got, 7), 7);
	/* Opened at once: already counted. */
	ck_assert_uint_gt(snap_table_inode_count(table), 3);
	snap_table_free(table);

	/* A snapshot that is not there fails the mount, with a message. */
	o.snapshot = "nine";
	ck_assert_int_lt(snap_table_open(&o, s.store, &test_log, &table, msg, sizeof(msg)), 0);
	ck_assert(strstr(msg, "nine") != NULL);
	sample_free(&s);
}
END_TEST

/* ---- options ---- */

START_TEST(test_options_sizes)
{
	struct cairn_mount_options o;
	char msg[256] = "";

	cairn_mount_options_default(&o);
	ck_assert_uint_eq(o.cache_size, 4ull << 30);
	ck_assert_uint_eq(o.chunk_cache_size, 16u << 20); /* peak RSS: docs/BENCHMARKS.md */
	ck_assert(o.passthrough);
	ck_assert_int_eq(o.uid, -1);
	int r = cairn_mount_options_parse(
		&o,
		"cache_size=1MiB,chunk_cache=64K,passthrough_min=2m,"
		"background_min=1GB,uid=1000,gid=0,umask=027,threads=4,"
		"allow_other,suid,nopassthrough,ro,noatime,x-systemd.auto,"
		"x-systemd.requires=network.target,comment=systemd.automount,"
		"cache=/var/tmp/c",
		msg, sizeof(msg));
	ck_assert_msg(r == 0, "%s", msg);
	ck_assert_uint_eq(o.cache_size, 1u << 20);
	ck_assert_uint_eq(o.chunk_cache_size, 64u << 10);
	ck_assert_uint_eq(o.passthrough_min, 2u << 20);
	ck_assert_uint_eq(o.background_min, 1u << 30);
	ck_assert_int_eq(o.uid, 1000);
	ck_assert_int_eq(o.gid, 0);
	ck_assert_int_eq(o.umask, 027);
	ck_assert_uint_eq(o.threads, 4);
	ck_assert(o.allow_other && o.suid && !o.passthrough && !o.dev);
	/* suid alone does not show file capabilities: they have their own. */
	ck_assert(!o.caps);
	ck_assert_int_eq(cairn_mount_options_parse(&o, "caps", msg, sizeof(msg)), 0);
	ck_assert(o.caps);
	ck_assert_str_eq(o.cache_dir, "/var/tmp/c");
	/* The same suffixes as the cli's size options. */
	ck_assert_int_eq(cairn_mount_options_parse(&o, "cache_size=4096", msg, sizeof(msg)), 0);
	ck_assert_uint_eq(o.cache_size, 4096);
	ck_assert_int_eq(cairn_mount_options_parse(&o, "cache_size=3TB", msg, sizeof(msg)), 0);
	ck_assert_uint_eq(o.cache_size, 3ull << 40);
	ck_assert_int_eq(cairn_mount_options_parse(&o, "chunk_cache=5GiB", msg, sizeof(msg)), 0);
	ck_assert_uint_eq(o.chunk_cache_size, 5ull << 30);
}
END_TEST

START_TEST(test_options_readdirplus)
{
	struct cairn_mount_options o;
	char msg[256] = "";

	cairn_mount_options_default(&o);
	ck_assert_int_eq(o.readdirplus, CAIRN_RDPLUS_ALWAYS);
	ck_assert_int_eq(cairn_mount_options_parse(&o, "readdirplus=never", msg, sizeof(msg)), 0);
	ck_assert_int_eq(o.readdirplus, CAIRN_RDPLUS_NEVER);
	ck_assert_int_eq(cairn_mount_options_parse(&o, "readdirplus=auto", msg, sizeof(msg)), 0);
	ck_assert_int_eq(o.readdirplus, CAIRN_RDPLUS_AUTO);
	ck_assert_int_eq(cairn_mount_options_parse(&o, "readdirplus=always", msg, sizeof(msg)), 0);
	ck_assert_int_eq(o.readdirplus, CAIRN_RDPLUS_ALWAYS);
	ck_assert_int_eq(cairn_mount_options_parse(&o, "readdirplus=sometimes", msg, sizeof(msg)),
			 -EINVAL);
	ck_assert_ptr_nonnull(strstr(msg, "readdirplus=sometimes"));
}
END_TEST

/* -o io_uring / noio_uring, the last one winning, over the default that
 * CAIRN_FUSE_TRANSPORT gives. */
START_TEST(test_options_transport)
{
	struct cairn_mount_options o;
	char msg[256] = "";

	unsetenv("CAIRN_FUSE_TRANSPORT");
	cairn_mount_options_default(&o);
	ck_assert_int_eq(o.io_uring, CAIRN_MOUNT_URING_AUTO);
	ck_assert_int_eq(cairn_mount_options_parse(&o, "io_uring", msg, sizeof(msg)), 0);
	ck_assert_int_eq(o.io_uring, CAIRN_MOUNT_URING_ON);
	ck_assert_int_eq(cairn_mount_options_parse(&o, "io_uring,noio_uring", msg, sizeof(msg)), 0);
	ck_assert_int_eq(o.io_uring, CAIRN_MOUNT_URING_OFF);
	ck_assert_int_eq(cairn_mount_options_parse(&o, "io_uring=1", msg, sizeof(msg)), -EINVAL);
	setenv("CAIRN_FUSE_TRANSPORT", "dev_fuse", 1);
	cairn_mount_options_default(&o);
	ck_assert_int_eq(o.io_uring, CAIRN_MOUNT_URING_OFF);
	ck_assert_int_eq(cairn_mount_options_parse(&o, "io_uring", msg, sizeof(msg)), 0);
	ck_assert_int_eq(o.io_uring, CAIRN_MOUNT_URING_ON);
	setenv("CAIRN_FUSE_TRANSPORT", "io_uring", 1);
	cairn_mount_options_default(&o);
	ck_assert_int_eq(o.io_uring, CAIRN_MOUNT_URING_ON);
	setenv("CAIRN_FUSE_TRANSPORT", "fast", 1);
	cairn_mount_options_default(&o);
	ck_assert_int_eq(o.io_uring, CAIRN_MOUNT_URING_AUTO);
	unsetenv("CAIRN_FUSE_TRANSPORT");
}
END_TEST

START_TEST(test_options_owners)
{
	struct cairn_mount_options o;
	char msg[256] = "";

	cairn_mount_options_default(&o);
	ck_assert_int_eq(o.dmask, -1);
	ck_assert_int_eq(o.fmask, -1);
	int r = cairn_mount_options_parse(&o,
					  "uidmap=1000:0:1/2000:5,uidmap=7:8,gidmap=1:2:3,"
					  "dmask=027,fmask=0133,mapowners,nomerge",
					  msg, sizeof(msg));
	ck_assert_msg(r == 0, "%s", msg);
	ck_assert_uint_eq(o.uidmap_count, 3);
	ck_assert_uint_eq(o.uidmap[0].from, 1000);
	ck_assert_uint_eq(o.uidmap[0].to, 0);
	ck_assert_uint_eq(o.uidmap[0].count, 1);
	ck_assert_uint_eq(o.uidmap[1].from, 2000);
	ck_assert_uint_eq(o.uidmap[1].to, 5);
	ck_assert_uint_eq(o.uidmap[2].from, 7);
	ck_assert_uint_eq(o.gidmap_count, 1);
	ck_assert_uint_eq(o.gidmap[0].count, 3);
	ck_assert_int_eq(o.dmask, 027);
	ck_assert_int_eq(o.fmask, 0133);
	ck_assert(o.mapowners && o.nomerge);
}
END_TEST

START_TEST(test_options_refresh)
{
	struct cairn_mount_options o;
	char msg[256] = "";

	cairn_mount_options_default(&o);
	ck_assert_int_eq(o.refresh, -1); /* the store's default */
	ck_assert_int_eq(cairn_mount_options_parse(&o, "refresh=0", msg, sizeof(msg)), 0);
	ck_assert_int_eq(o.refresh, 0);
	ck_assert_int_eq(cairn_mount_options_parse(&o, "ro,refresh=86400", msg, sizeof(msg)), 0);
	ck_assert_int_eq(o.refresh, 86400);
}
END_TEST

START_TEST(test_options_bad)
{
	static const char *const bad[] = {
		"cache_size=1X",   "cache_size=-1",   "cache_size=",
		"cache_size=1.5M", "cache_size=1MB2", "cache_size=99999999999T",
		"uid=1K",          "uid=4294967295",  "gid=-1",
		"umask=8",         "umask=",          "threads=0",
		"threads=257",     "bogus",           "cache_dir=/x",
		"passthrough",     "uidmap=1000",     "uidmap=1:2:0",
		"gidmap=",         "uidmap=a:1",      "uidmap=4294967294:0:2",
		"dmask=8",         "fmask=",          "refresh=",
		"refresh=-1",      "refresh=1m",      "refresh=86401",
	};
	struct cairn_mount_options o, before;
	char msg[256];

	cairn_mount_options_default(&o);
	before = o;
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		char opts[128];
		msg[0] = '\0';
		snprintf(opts, sizeof(opts), "ro,%s,allow_other", bad[i]);
		ck_assert_msg(cairn_mount_options_parse(&o, opts, msg, sizeof(msg)) == -EINVAL,
			      "%s accepted", bad[i]);
		ck_assert_msg(strstr(msg, bad[i]) != NULL, "%s: message '%s'", bad[i], msg);
		ck_assert(!o.allow_other); /* stops at the bad option */
	}
	ck_assert_uint_eq(o.cache_size, before.cache_size);
	ck_assert_int_eq(o.uid, before.uid);
}
END_TEST

/* ---- the read path ---- */

START_TEST(test_read_path)
{
	static const size_t feeds[] = {1, 7, 4096, 40000, BIG_SIZE};
	struct sample s;
	struct read_path *rp;

	sample_make(&s);
	struct cairn_index *idx = sample_open(&s, "two");
	uint64_t ino = lookup(idx, "big");
	uint8_t *buf = test_alloc(BIG_SIZE + 100);
	ck_assert_int_eq(read_path_new(s.store, 256 * KiB, &test_log, &rp), 0);
	ck_assert_int_eq(read_path_readahead_start(rp), 0);
	for (size_t f = 0; f < ARRAY_SIZE(feeds); f++) {
		_Atomic uint64_t next = 0;
		size_t done = 0;
		while (done < BIG_SIZE) {
			ssize_t n = read_path_read(rp, idx, ino, &next, done, buf + done, feeds[f]);
			ck_assert_int_gt(n, 0);
			done += (size_t)n;
			ck_assert_uint_eq(atomic_load(&next), done);
		}
		ck_assert_uint_eq(done, BIG_SIZE);
		ck_assert(memcmp(buf, s.big[1], BIG_SIZE) == 0);
		ck_assert_int_eq(read_path_read(rp, idx, ino, &next, BIG_SIZE, buf, 10), 0);
	}
	/* Reads past the end come short; another file of the same thread. */
	_Atomic uint64_t next = 0;
	ck_assert_int_eq(read_path_read(rp, idx, ino, &next, BIG_SIZE - 5, buf, 100), 5);
	uint64_t text = 0;
	ck_assert_int_eq(cairn_index_lookup(idx, lookup(idx, "dir"), "text", strlen("text"), &text),
			 0);
	ck_assert_int_eq(read_path_read(rp, idx, text, &next, 0, buf, TEXT_SIZE + 100), TEXT_SIZE);
	ck_assert(memcmp(buf, s.text, TEXT_SIZE) == 0);
	ck_assert_uint_le(chunk_cache_bytes(read_path_chunks(rp)), 256 * KiB);
	read_path_readahead_stop(rp);
	read_path_free(rp);
	free(buf);
	cairn_index_free(idx);
	sample_free(&s);
}
END_TEST

/* ---- the blob cache ---- */

struct blob_fixture {
	struct sample s;
	struct cairn_index *idx;
	uint64_t ino;
	struct cairn_index_file file;
	struct read_path *rp;
	char cache_dir[PATH_MAX];
	char blob[PATH_MAX]; /* the file's blob in the cache */
};

static void blob_fixture_make(struct blob_fixture *b)
{
	char hex[CAIRN_ID_HEX + 1];

	sample_make(&b->s);
	b->idx = sample_open(&b->s, "one");
	b->ino = lookup(b->idx, "big");
	ck_assert_int_eq(cairn_index_file(b->idx, b->ino, &b->file), 0);
	ck_assert_uint_gt(b->file.run_count, 4);
	ck_assert_int_eq(read_path_new(b->s.store, 1u << 20, &test_log, &b->rp), 0);
	test_path(b->cache_dir, sizeof(b->cache_dir), "cache");
	cairn_id_to_hex(&b->file.file_id, hex);
	ck_assert_int_lt(snprintf(b->blob, sizeof(b->blob), "%s/blobs/%s", b->cache_dir, hex),
			 (int)sizeof(b->blob));
}

static void blob_fixture_free(struct blob_fixture *b)
{
	read_path_free(b->rp);
	cairn_index_free(b->idx);
	sample_free(&b->s);
}

/* A new blob cache, as a new mount starts with: nothing verified yet. */
static struct blob_cache *blob_cache(struct blob_fixture *b)
{
	struct blob_cache *cache;

	ck_assert_int_eq(blob_cache_new(b->cache_dir, 1ull << 30, b->rp, &test_log, &cache), 0);
	return cache;
}

/* Opens the blob (inline) and checks it holds the file's bytes. */
static void blob_open_check(struct blob_fixture *b, struct blob_cache *cache)
{
	size_t size;

	int fd = blob_cache_open(cache, b->idx, b->ino, &b->file, true);
	ck_assert_msg(fd >= 0, "blob_cache_open: %s", strerror(-fd));
	close(fd);
	uint8_t *bytes = test_read_file(b->blob, &size);
	ck_assert_uint_eq(size, BIG_SIZE);
	ck_assert(memcmp(bytes, b->s.big[0], BIG_SIZE) == 0);
	free(bytes);
}

START_TEST(test_blob_make_and_find)
{
	struct blob_fixture b;

	blob_fixture_make(&b);
	struct blob_cache *cache = blob_cache(&b);
	blob_open_check(&b, cache);
	ck_assert_uint_eq(blob_cache_made(cache), 1);
	blob_open_check(&b, cache); /* verified in this mount: used as is */
	ck_assert_uint_eq(blob_cache_made(cache), 1);
	blob_cache_free(cache);
	/* A later mount finds it, checks it and uses it. */
	cache = blob_cache(&b);
	blob_open_check(&b, cache);
	ck_assert_uint_eq(blob_cache_made(cache), 0);
	ck_assert(!log_has("not a verified copy"));
	blob_cache_free(cache);
	blob_fixture_free(&b);
}
END_TEST

START_TEST(test_blob_damaged_remade)
{
	struct blob_fixture b;

	blob_fixture_make(&b);
	struct blob_cache *cache = blob_cache(&b);
	blob_open_check(&b, cache);
	blob_cache_free(cache);
	/* One byte changed in the middle of a chunk: the check finds it and the
	 * blob is made again. */
	test_flip_byte(b.blob, BIG_SIZE / 2);
	cache = blob_cache(&b);
	blob_open_check(&b, cache);
	ck_assert_uint_eq(blob_cache_made(cache), 1);
	ck_assert(log_has("is not a verified copy of its file; making it again"));
	blob_cache_free(cache);
	/* Shortened: refused on its size, made again. */
	test_truncate(b.blob, BIG_SIZE - 1);
	cache = blob_cache(&b);
	blob_open_check(&b, cache);
	ck_assert_uint_eq(blob_cache_made(cache), 1);
	blob_cache_free(cache);
	/* Writable by others: never trusted, made again. */
	ck_assert_int_eq(chmod(b.blob, 0666), 0);
	cache = blob_cache(&b);
	blob_open_check(&b, cache);
	ck_assert_uint_eq(blob_cache_made(cache), 1);
	blob_cache_free(cache);
	blob_fixture_free(&b);
}
END_TEST

/* A verified blob changed in place (same inode) while the mount runs is
 * checked again on its next open, and made again. */
START_TEST(test_blob_changed_in_place)
{
	struct blob_fixture b;
	struct stat st;

	blob_fixture_make(&b);
	struct blob_cache *cache = blob_cache(&b);
	blob_open_check(&b, cache);
	ck_assert_uint_eq(blob_cache_made(cache), 1);
	ck_assert_int_eq(stat(b.blob, &st), 0);
	ck_assert_uint_eq(st.st_mode & 07777, 0400); /* written read-only */
	ino_t ino = st.st_ino;

	/* Past the kernel's coarse timestamp tick, as a later write would be. */
	usleep(50 * 1000);
	ck_assert_int_eq(chmod(b.blob, 0600), 0);
	test_flip_byte(b.blob, BIG_SIZE / 2); /* pwrite: same inode, same size */
	ck_assert_int_eq(stat(b.blob, &st), 0);
	ck_assert_uint_eq(st.st_ino, ino);
	blob_open_check(&b, cache); /* checked again, found damaged, remade */
	ck_assert_uint_eq(blob_cache_made(cache), 2);
	blob_cache_free(cache);
	blob_fixture_free(&b);
}
END_TEST

START_TEST(test_blob_background)
{
	struct blob_fixture b;

	blob_fixture_make(&b);
	struct blob_cache *cache = blob_cache(&b);
	/* Without inline work a missing blob is left to the worker. */
	ck_assert_int_eq(blob_cache_open(cache, b.idx, b.ino, &b.file, false), -EAGAIN);
	for (int i = 0; i < 1000 && blob_cache_made(cache) == 0; i++)
		nanosleep(&(struct timespec){.tv_nsec = 10 * 1000 * 1000}, NULL);
	ck_assert_uint_eq(blob_cache_made(cache), 1);
	int fd = blob_cache_open(cache, b.idx, b.ino, &b.file, false);
	ck_assert_int_ge(fd, 0);
	close(fd);
	blob_open_check(&b, cache);
	ck_assert_uint_eq(blob_cache_made(cache), 1);
	blob_cache_free(cache);
	/* A later mount does not use an unchecked blob without inline work. */
	test_flip_byte(b.blob, 10);
	cache = blob_cache(&b);
	ck_assert_int_eq(blob_cache_open(cache, b.idx, b.ino, &b.file, false), -EAGAIN);
	blob_cache_free(cache);
	blob_fixture_free(&b);
}
END_TEST

/* Replaces the blob with what make_planted puts there, then checks a new
 * mount remakes it, promptly (alarm: an open that blocks fails the test). */
static void blob_planted_remade(struct blob_fixture *b, const char *what)
{
	struct stat st;

	struct blob_cache *cache = blob_cache(b);
	alarm(10);
	blob_open_check(b, cache);
	alarm(0);
	ck_assert_msg(blob_cache_made(cache) == 1, "%s: not made again", what);
	ck_assert(lstat(b->blob, &st) == 0 && S_ISREG(st.st_mode) && st.st_uid == geteuid());
	blob_cache_free(cache);
}

START_TEST(test_blob_planted)
{
	struct blob_fixture b;
	char target[PATH_MAX];

	blob_fixture_make(&b);
	struct blob_cache *cache = blob_cache(&b);
	blob_open_check(&b, cache);
	blob_cache_free(cache);
	/* A FIFO: an open of it would wait for a writer forever. */
	ck_assert_int_eq(unlink(b.blob), 0);
	ck_assert_int_eq(mkfifo(b.blob, 0600), 0);
	blob_planted_remade(&b, "a FIFO");
	ck_assert(log_has("making it again"));
	/* A symlink to a file elsewhere: never followed, the target untouched. */
	test_path(target, sizeof(target), "elsewhere");
	test_write_file(target, "precious", 8);
	ck_assert_int_eq(unlink(b.blob), 0);
	ck_assert_int_eq(symlink(target, b.blob), 0);
	blob_planted_remade(&b, "a symlink");
	size_t size;
	uint8_t *bytes = test_read_file(target, &size);
	ck_assert(size == 8 && memcmp(bytes, "precious", 8) == 0);
	free(bytes);
	/* Writable by everyone, or another user's: remade. */
	ck_assert_int_eq(chmod(b.blob, 0666), 0);
	blob_planted_remade(&b, "mode 0666");
	if (geteuid() == 0) {
		ck_assert_int_eq(chown(b.blob, 65534, 65534), 0);
		blob_planted_remade(&b, "owned by 65534");
	}
	blob_fixture_free(&b);
}
END_TEST

/* A temp file nobody holds a lock on is a dead mount's leftover, whatever its
 * age; one a live mount holds (flock) is never touched. */
START_TEST(test_blob_tmp_leftovers)
{
	struct blob_fixture b;
	char dead[PATH_MAX], live[PATH_MAX];

	blob_fixture_make(&b);
	blob_cache_free(blob_cache(&b)); /* makes CACHE/blobs */
	ck_assert_int_lt(snprintf(dead, sizeof(dead), "%s/blobs/tmp-00000000000000aa", b.cache_dir),
			 (int)sizeof(dead));
	ck_assert_int_lt(snprintf(live, sizeof(live), "%s/blobs/tmp-00000000000000bb", b.cache_dir),
			 (int)sizeof(live));
	test_write_file(dead, "half", 4);
	test_write_file(live, "half", 4);
	int fd = open(live, O_RDWR | O_CLOEXEC);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(flock(fd, LOCK_EX | LOCK_NB), 0);
	/* The cache's start scans (and evicts) before its worker stops. */
	blob_cache_free(blob_cache(&b));
	ck_assert_msg(access(dead, F_OK) != 0, "an unlocked temp file was left");
	ck_assert_msg(access(live, F_OK) == 0, "a locked temp file was removed");
	close(fd);
	blob_cache_free(blob_cache(&b));
	ck_assert_msg(access(live, F_OK) != 0, "a temp file, its lock gone, was left");
	blob_fixture_free(&b);
}
END_TEST

static Suite *mount_suite(void)
{
	Suite *s = suite_create("mount");
	const struct test_case cases[] = {
		{"chunk_cache_bound", test_chunk_cache_bound, 1, 60},
		{"chunk_cache_lru", test_chunk_cache_lru, 1, 60},
		{"chunk_cache_held", test_chunk_cache_held, 1, 60},
		{"inodes_whole_store", test_inodes_whole_store, 1, 60},
		{"inodes_one_snapshot", test_inodes_one_snapshot, 1, 60},
		{"refresh_table", test_refresh_table, 1, 60},
		{"options_sizes", test_options_sizes, 1, 60},
		{"options_bad", test_options_bad, 1, 60},
		{"options_refresh", test_options_refresh, 1, 60},
		{"options_transport", test_options_transport, 1, 60},
		{"options_owners", test_options_owners, 1, 60},
		{"options_readdirplus", test_options_readdirplus, 1, 60},
		{"read_path", test_read_path, 1, 60},
		{"blob_make_and_find", test_blob_make_and_find, 1, 60},
		{"blob_damaged_remade", test_blob_damaged_remade, 1, 60},
		{"blob_changed_in_place", test_blob_changed_in_place, 1, 60},
		{"blob_background", test_blob_background, 1, 60},
		{"blob_planted", test_blob_planted, 1, 60},
		{"blob_tmp_leftovers", test_blob_tmp_leftovers, 1, 60},
	};

	return test_suite_add(s, cases, ARRAY_SIZE(cases));
}

int main(void)
{
	return test_run(mount_suite());
}
