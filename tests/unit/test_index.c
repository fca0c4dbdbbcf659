/* test_index.c: the snapshot index: archives made here with libarchive's
 * writer are imported into a fresh store and read back through every
 * accessor (round trip), streamed in feeds of 1, 7, 4096 bytes and whole,
 * with a 1 TiB sparse file that must cost nothing; names and paths; the
 * commit rules; and hostile bytes: every header field, every truncation and
 * every byte of a real snapshot damaged in turn must give -EBADMSG (or a
 * sound answer), never a crash or a read out of bounds.
 */
#include "test_util.h"

#include <archive.h>
#include <archive_entry.h>
#include <locale.h>
#include <pthread.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <time.h>

#include "index_internal.h"
#include "store_internal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* ---- fixtures ---- */

struct fx_entry {
	const char *path;
	mode_t mode;
	const void *data;
	size_t size;
	const char *link; /* symlink target, or hard link target when hardlink */
	bool hardlink;
	const char *xattr; /* "name=value" */
	int64_t mtime;
	long nsec;
	dev_t rdev;
};

static void fx_add(struct archive *a, const struct fx_entry *e)
{
	struct archive_entry *entry = archive_entry_new();

	archive_entry_set_pathname(entry, e->path);
	archive_entry_set_mode(entry, e->mode);
	archive_entry_set_mtime(entry, e->mtime, e->nsec);
	archive_entry_set_uname(entry, "user");
	archive_entry_set_gname(entry, "group");
	archive_entry_set_uid(entry, 1000);
	archive_entry_set_gid(entry, 100);
	if (e->hardlink)
		archive_entry_set_hardlink(entry, e->link);
	else if (e->link)
		archive_entry_set_symlink(entry, e->link);
	if (e->xattr) {
		const char *eq = strchr(e->xattr, '=');
		char name[64];
		snprintf(name, sizeof(name), "%.*s", (int)(eq - e->xattr), e->xattr);
		archive_entry_xattr_add_entry(entry, name, eq + 1, strlen(eq + 1));
	}
	if (e->rdev)
		archive_entry_set_rdev(entry, e->rdev);
	if (S_ISREG(e->mode) && !e->hardlink) {
		archive_entry_set_size(entry, (la_int64_t)e->size);
	}
	int r = archive_write_header(a, entry);
	ck_assert_msg(r == ARCHIVE_OK, "%s: %s", e->path, archive_error_string(a));
	if (e->size) {
		ck_assert_int_eq(archive_write_data(a, e->data, e->size), (la_ssize_t)e->size);
	}
	archive_entry_free(entry);
}

static void fx_write_tar(const char *path, const struct fx_entry *entries, size_t n)
{
	struct archive *a = archive_write_new();

	ck_assert_int_eq(archive_write_set_format_pax(a), ARCHIVE_OK);
	ck_assert_int_eq(archive_write_open_filename(a, path), ARCHIVE_OK);
	for (size_t i = 0; i < n; i++)
		fx_add(a, &entries[i]);
	ck_assert_int_eq(archive_write_close(a), ARCHIVE_OK);
	archive_write_free(a);
}

static struct cairn_store *fx_store(void)
{
	char path[PATH_MAX];
	struct cairn_store *store = cairn_store_new();

	ck_assert_ptr_nonnull(store);
	ck_assert_int_eq(cairn_store_create(store, test_path(path, sizeof(path), "store"), NULL),
			 0);
	return store;
}

/* Imports fd as snapshot name; returns the import's result. */
static int fx_import_fd(struct cairn_store *store, int fd, const char *name, unsigned flags)
{
	struct cairn_writer *writer;
	struct cairn_import *imp;

	ck_assert_int_eq(cairn_writer_open(store, 0, 1, &writer), 0);
	ck_assert_int_eq(cairn_import_new(store, writer, NULL, &imp), 0);
	int r = cairn_import_archive(imp, fd, name);
	if (r == 0)
		r = cairn_import_commit(imp, name, flags);
	cairn_import_free(imp);
	cairn_writer_free(writer);
	return r;
}

static int fx_import(struct cairn_store *store, const char *archive, const char *name)
{
	int fd = open(archive, O_RDONLY | O_CLOEXEC);

	ck_assert_int_ge(fd, 0);
	int r = fx_import_fd(store, fd, name, 0);
	close(fd);
	return r;
}

static struct cairn_index *fx_open(struct cairn_store *store, const char *name)
{
	struct cairn_index *idx = cairn_index_new();

	ck_assert_ptr_nonnull(idx);
	int r = cairn_index_open(idx, store, name);
	ck_assert_msg(r == 0, "open %s: %s", name, cairn_index_error(idx));
	return idx;
}

static uint64_t fx_resolve(struct cairn_index *idx, const char *path)
{
	uint64_t ino;

	int r = cairn_index_resolve(idx, path, false, &ino);
	ck_assert_msg(r == 0, "resolve %s: %d", path, r);
	return ino;
}

/* Reads len bytes of ino at off through reader: its count or -errno. */
static int64_t fx_read(struct cairn_content_reader *reader, struct cairn_index *idx, uint64_t ino,
		       uint64_t off, void *buf, size_t len)
{
	int r = cairn_content_open(reader, idx, ino, NULL);

	return r < 0 ? r : cairn_content_read(reader, off, buf, len);
}

/* ---- round trip ---- */

static uint8_t *big_data;
#define BIG_SIZE (700u * 1024)

static const struct fx_entry *tree_entries(size_t *n)
{
	static struct fx_entry entries[] = {
		{.path = "zeta/", .mode = S_IFDIR | 0750, .mtime = 1000000000, .nsec = 5},
		{.path = "zeta/big",
		 .mode = S_IFREG | 0644,
		 .mtime = 1600000000,
		 .nsec = 123456789,
		 .xattr = "user.colour=blue"},
		{.path = "alpha",
		 .mode = S_IFREG | 0600,
		 .data = "tiny\n",
		 .size = 5,
		 .mtime = 1600000001},
		{.path = "empty", .mode = S_IFREG | 0644, .mtime = 1},
		{.path = "link", .mode = S_IFLNK | 0777, .link = "zeta/big", .mtime = 2},
		{.path = "zeta/hard",
		 .mode = S_IFREG | 0644,
		 .link = "zeta/big",
		 .hardlink = true,
		 .mtime = 3},
		{.path = "fifo", .mode = S_IFIFO | 0644, .mtime = 4},
		{.path = "null", .mode = S_IFCHR | 0666, .mtime = 5},
		{.path = "implied/deep/file", .mode = S_IFREG | 04755, .data = "x", .size = 1},
		{.path = "\xc3\xbc-unicode", .mode = S_IFREG | 0644, .data = "u", .size = 1},
	};
	if (!big_data)
		big_data = test_random_data(BIG_SIZE, 42);
	entries[1].data = big_data;
	entries[1].size = BIG_SIZE;
	entries[7].rdev = makedev(1, 3);
	*n = ARRAY_SIZE(entries);
	return entries;
}

static void check_tree_attrs(struct cairn_index *idx)
{
	struct cairn_index_stat st;
	struct cairn_index_xattr x;
	const char *target;
	size_t len;

	uint64_t big = fx_resolve(idx, "zeta/big");
	ck_assert_int_eq(fx_resolve(idx, "zeta/hard"), big);
	ck_assert_int_eq(cairn_index_getattr(idx, big, &st), 0);
	ck_assert_uint_eq(st.mode, S_IFREG | 0644);
	ck_assert_uint_eq(st.nlink, 2);
	ck_assert_uint_eq(st.size, BIG_SIZE);
	ck_assert_int_eq(st.mtime_sec, 1600000000);
	ck_assert_uint_eq(st.mtime_nsec, 123456789);
	ck_assert_uint_eq(st.uid, 1000);
	ck_assert_str_eq(st.user, "user");
	ck_assert_str_eq(st.group, "group");
	ck_assert_int_eq(cairn_index_getxattr(idx, big, "user.colour", &x), 0);
	ck_assert_int_eq(x.value_size, 4);
	ck_assert_int_eq(memcmp(x.value, "blue", 4), 0);
	ck_assert_int_eq(cairn_index_getxattr(idx, big, "user.none", &x), -ENODATA);
	ck_assert_int_eq(cairn_index_readlink(idx, fx_resolve(idx, "link"), &target, &len), 0);
	ck_assert_str_eq(target, "zeta/big");
	ck_assert_int_eq(cairn_index_getattr(idx, fx_resolve(idx, "null"), &st), 0);
	ck_assert_uint_eq(st.rdev, makedev(1, 3));
	ck_assert_int_eq(cairn_index_getattr(idx, fx_resolve(idx, "zeta"), &st), 0);
	ck_assert_uint_eq(st.mode, S_IFDIR | 0750);
	ck_assert_uint_eq(st.mtime_nsec, 5);
	ck_assert_int_eq(cairn_index_getattr(idx, fx_resolve(idx, "implied/deep/file"), &st), 0);
	ck_assert_uint_eq(st.mode, S_IFREG | 04755);
	ck_assert_int_eq(cairn_index_getattr(idx, CAIRN_INDEX_ROOT, &st), 0);
	ck_assert_uint_eq(st.nlink, 4); /* implied and zeta */
}

static void check_tree_dirs(struct cairn_index *idx)
{
	static const char *const names[] = {"alpha", "empty", "fifo", "implied",
					    "link",  "null",  "zeta", "\xc3\xbc-unicode"};
	struct cairn_index_dirent d;
	uint64_t ino;

	for (size_t i = 0; i < ARRAY_SIZE(names); i++) {
		ck_assert_int_eq(cairn_index_readdir(idx, CAIRN_INDEX_ROOT, i, &d), 1);
		ck_assert_str_eq(d.name, names[i]);
		ck_assert_int_eq(
			cairn_index_lookup(idx, CAIRN_INDEX_ROOT, names[i], strlen(names[i]), &ino),
			0);
		ck_assert_uint_eq(ino, d.ino);
	}
	ck_assert_int_eq(cairn_index_readdir(idx, CAIRN_INDEX_ROOT, ARRAY_SIZE(names), &d), 0);
	ck_assert_int_eq(cairn_index_lookup(idx, CAIRN_INDEX_ROOT, "alph", 4, &ino), -ENOENT);
	ck_assert_int_eq(cairn_index_lookup(idx, fx_resolve(idx, "alpha"), "x", 1, &ino), -ENOTDIR);
	ck_assert_int_eq(cairn_index_resolve(idx, "zeta/../link", true, &ino), 0);
	ck_assert_uint_eq(ino, fx_resolve(idx, "zeta/big"));
	ck_assert_int_eq(cairn_index_resolve(idx, "../../alpha", false, &ino), 0);
	ck_assert_uint_eq(ino, fx_resolve(idx, "alpha"));
	ck_assert_int_eq(cairn_index_resolve(idx, "alpha/x", false, &ino), -ENOTDIR);
}

static void check_tree_content(struct cairn_store *store, struct cairn_index *idx)
{
	static const size_t lens[] = {1, 7, 4096, 65536, 300000, BIG_SIZE};
	struct cairn_content_reader *reader;
	uint8_t *buf = test_alloc(BIG_SIZE);
	uint64_t big = fx_resolve(idx, "zeta/big");

	ck_assert_int_eq(cairn_content_reader_new(store, NULL, &reader), 0);
	for (size_t i = 0; i < ARRAY_SIZE(lens); i++) {
		for (uint64_t off = 0; off < BIG_SIZE; off += lens[i] * 3 + 12345) {
			int64_t n = fx_read(reader, idx, big, off, buf, lens[i]);
			size_t want = lens[i] < BIG_SIZE - off ? lens[i] : BIG_SIZE - off;
			ck_assert_int_eq(n, (int64_t)want);
			ck_assert_int_eq(memcmp(buf, big_data + off, want), 0);
		}
	}
	ck_assert_int_eq(fx_read(reader, idx, big, BIG_SIZE, buf, 10), 0);
	ck_assert_int_eq(fx_read(reader, idx, fx_resolve(idx, "empty"), 0, buf, 10), 0);
	ck_assert_int_eq(fx_read(reader, idx, fx_resolve(idx, "zeta"), 0, buf, 10), -EISDIR);
	cairn_content_reader_free(reader);
	free(buf);
}

static void fail_report(void *userdata, const char *problem)
{
	(void)userdata;
	ck_abort_msg("check: %s", problem);
}

START_TEST(test_roundtrip)
{
	char archive[PATH_MAX];
	struct cairn_index_info info;
	size_t n;
	const struct fx_entry *entries = tree_entries(&n);
	struct cairn_store *store = fx_store();

	fx_write_tar(test_path(archive, sizeof(archive), "tree.tar"), entries, n);
	ck_assert_int_eq(fx_import(store, archive, "tree"), 0);
	struct cairn_index *idx = fx_open(store, "tree");
	cairn_index_info(idx, &info);
	ck_assert_uint_eq(info.entry_count, n);
	ck_assert_str_eq(info.source_name, "tree");
	ck_assert_str_eq(info.source_format, "tar");
	ck_assert_uint_eq(info.source_size, test_file_size(archive));
	ck_assert_uint_eq(info.file_bytes, BIG_SIZE + 5 + 2);
	check_tree_attrs(idx);
	check_tree_dirs(idx);
	check_tree_content(store, idx);
	ck_assert_int_eq(cairn_index_check(idx, true, fail_report, NULL), 0);
	cairn_index_free(idx);
	cairn_store_free(store);
}
END_TEST

/* ---- sparse files ---- */

/* libarchive's writer wants a sparse file's whole logical stream, holes
 * too, which for 1 TiB is out of reach; so this writes the pax sparse 1.0
 * layout (as bsdtar and GNU tar make it) by hand: a pax header naming the
 * real size, a map block, and the data of two 4 KiB segments at 0 and at
 * size - 4096. */
static void tar_header(uint8_t h[512], const char *name, uint64_t size, char type)
{
	unsigned sum = 0;

	memset(h, 0, 512);
	snprintf((char *)h, 100, "%s", name);
	memcpy(h + 100, "0000644", 8);
	memcpy(h + 108, "0000000", 8);
	memcpy(h + 116, "0000000", 8);
	snprintf((char *)h + 124, 12, "%011llo", (unsigned long long)size);
	snprintf((char *)h + 136, 12, "%011o", 1600000000u);
	h[156] = (uint8_t)type;
	memcpy(h + 257, "ustar", 6);
	memcpy(h + 263, "00", 2);
	memset(h + 148, ' ', 8);
	for (int i = 0; i < 512; i++)
		sum += h[i];
	snprintf((char *)h + 148, 8, "%06o", sum);
}

static void pax_record(char *out, size_t size, const char *key, const char *value)
{
	size_t len = strlen(key) + strlen(value) + 3;
	size_t digits = len + 1 >= 100 ? 3 : 2;

	snprintf(out + strlen(out), size - strlen(out), "%zu %s=%s\n", len + digits, key, value);
}

static void fx_write_sparse_tar(const char *path, uint64_t real_size, const uint8_t data[8192])
{
	uint8_t h[512], block[512] = {0};
	char pax[512] = "", real[32];
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);

	ck_assert_int_ge(fd, 0);
	snprintf(real, sizeof(real), "%llu", (unsigned long long)real_size);
	pax_record(pax, sizeof(pax), "GNU.sparse.major", "1");
	pax_record(pax, sizeof(pax), "GNU.sparse.minor", "0");
	pax_record(pax, sizeof(pax), "GNU.sparse.name", "huge");
	pax_record(pax, sizeof(pax), "GNU.sparse.realsize", real);
	tar_header(h, "PaxHeader/huge", strlen(pax), 'x');
	ck_assert_int_eq(write(fd, h, 512), 512);
	memcpy(block, pax, strlen(pax));
	ck_assert_int_eq(write(fd, block, 512), 512);
	tar_header(h, "GNUSparseFile.0/huge", 512 + 8192, '0');
	ck_assert_int_eq(write(fd, h, 512), 512);
	memset(block, 0, sizeof(block));
	snprintf((char *)block, sizeof(block), "2\n0\n4096\n%llu\n4096\n",
		 (unsigned long long)(real_size - 4096));
	ck_assert_int_eq(write(fd, block, 512), 512);
	ck_assert_int_eq(write(fd, data, 8192), 8192);
	memset(block, 0, sizeof(block));
	for (int i = 0; i < 2; i++)
		ck_assert_int_eq(write(fd, block, 512), 512);
	close(fd);
}

START_TEST(test_sparse_terabyte)
{
	const uint64_t size = 1ull << 40;
	char archive[PATH_MAX];
	uint8_t *data = test_random_data(8192, 9), buf[100];
	struct cairn_store *store = fx_store();
	struct cairn_index_file file;
	struct cairn_index_run run;
	struct cairn_content_reader *reader;
	uint32_t i;

	fx_write_sparse_tar(test_path(archive, sizeof(archive), "sparse.tar"), size, data);
	ck_assert_uint_lt(test_file_size(archive), 1 << 20);
	uint64_t start = cairn_now_ns();
	ck_assert_int_eq(fx_import(store, archive, "sparse"), 0);
	ck_assert_uint_lt(cairn_now_ns() - start, 5000000000ull); /* not 1 TiB of hashing */
	struct cairn_index *idx = fx_open(store, "sparse");
	uint64_t ino = fx_resolve(idx, "huge");
	ck_assert_int_eq(cairn_index_file(idx, ino, &file), 0);
	ck_assert_uint_eq(file.size, size);
	ck_assert(file.sparse);
	ck_assert_int_eq(cairn_index_find_run(idx, ino, size / 2, &i), 0);
	ck_assert_int_eq(cairn_index_run(idx, ino, i, &run), 0);
	ck_assert(run.hole);
	ck_assert_uint_eq(run.offset, 4096);
	ck_assert_uint_eq(run.size, size - 8192);
	ck_assert_int_eq(cairn_content_reader_new(store, NULL, &reader), 0);
	ck_assert_int_eq(fx_read(reader, idx, ino, 4000, buf, sizeof(buf)), sizeof(buf));
	ck_assert_int_eq(memcmp(buf, data + 4000, 96), 0);
	for (int k = 96; k < 100; k++)
		ck_assert_int_eq(buf[k], 0);
	ck_assert_int_eq(fx_read(reader, idx, ino, size - 50, buf, sizeof(buf)), 50);
	ck_assert_int_eq(memcmp(buf, data + 8192 - 50, 50), 0);
	ck_assert_int_eq(cairn_index_check(idx, true, fail_report, NULL), 0);
	cairn_content_reader_free(reader);
	cairn_index_free(idx);
	cairn_store_free(store);
	free(data);
}
END_TEST

/* ---- file ids name chunk lists ---- */

/* Variant 0 hashes only the first 8 bytes (so chunks sharing them collide);
 * the other variants hash everything. */
static void prefix_id_fn(const struct cairn_store *store, const void *data, size_t size,
			 unsigned variant, struct cairn_id *ret)
{
	struct store_checksum_stream sum;
	uint64_t words[2];

	(void)store;
	for (unsigned half = 0; half < 2; half++) {
		uint8_t tag[2] = {(uint8_t)variant, (uint8_t)half};
		store_checksum_stream_init(&sum);
		store_checksum_stream_update(&sum, tag, sizeof(tag));
		store_checksum_stream_update(&sum, data, variant == 0 && size > 8 ? 8 : size);
		words[half] = store_checksum_stream_final(&sum);
	}
	memcpy(ret->bytes, words, sizeof(words));
}

/* Two files whose chunks collide under the id function get distinct chunks,
 * so distinct file ids (a blob or passthrough backing shared by file id can
 * never serve one for the other); a copy of a file shares its id. */
START_TEST(test_file_ids_collide_apart)
{
	char archive[PATH_MAX];
	uint8_t *a = test_random_data(3000, 31), *b = test_random_data(3000, 32), buf[3000];
	struct cairn_index_file fa, fb, fc;
	struct cairn_content_reader *reader;

	memcpy(b, a, 8);
	const struct fx_entry entries[] = {
		{.path = "a", .mode = S_IFREG | 0644, .data = a, .size = 3000},
		{.path = "b", .mode = S_IFREG | 0644, .data = b, .size = 3000},
		{.path = "c", .mode = S_IFREG | 0644, .data = a, .size = 3000},
	};
	struct cairn_store *store = fx_store();
	cairn_store_testing_set_id_fn(store, prefix_id_fn);
	fx_write_tar(test_path(archive, sizeof(archive), "collide.tar"), entries, 3);
	ck_assert_int_eq(fx_import(store, archive, "collide"), 0);
	struct cairn_index *idx = fx_open(store, "collide");
	uint64_t ino_a = fx_resolve(idx, "a"), ino_b = fx_resolve(idx, "b");
	ck_assert_int_eq(cairn_index_file(idx, ino_a, &fa), 0);
	ck_assert_int_eq(cairn_index_file(idx, ino_b, &fb), 0);
	ck_assert_int_eq(cairn_index_file(idx, fx_resolve(idx, "c"), &fc), 0);
	ck_assert_mem_ne(fa.file_id.bytes, fb.file_id.bytes, CAIRN_ID_SIZE);
	ck_assert_mem_eq(fa.file_id.bytes, fc.file_id.bytes, CAIRN_ID_SIZE);
	ck_assert_int_eq(cairn_content_reader_new(store, NULL, &reader), 0);
	ck_assert_int_eq(fx_read(reader, idx, ino_a, 0, buf, sizeof(buf)), 3000);
	ck_assert_int_eq(memcmp(buf, a, 3000), 0);
	ck_assert_int_eq(fx_read(reader, idx, ino_b, 0, buf, sizeof(buf)), 3000);
	ck_assert_int_eq(memcmp(buf, b, 3000), 0);
	cairn_content_reader_free(reader);
	cairn_index_free(idx);
	cairn_store_free(store);
	free(a);
	free(b);
}
END_TEST

/* ---- streaming in feeds of any size ---- */

struct feeder {
	int fd;
	const uint8_t *data;
	size_t size, feed;
};

static void *feed_main(void *userdata)
{
	struct feeder *f = userdata;

	for (size_t done = 0; done < f->size;) {
		size_t n = f->size - done < f->feed ? f->size - done : f->feed;
		ssize_t w = write(f->fd, f->data + done, n);
		if (w <= 0)
			break;
		done += (size_t)w;
	}
	close(f->fd);
	return NULL;
}

static const size_t feeds[] = {1, 7, 4096, SIZE_MAX};

START_TEST(test_feed_sizes)
{
	static const struct fx_entry entries[] = {
		{.path = "dir/", .mode = S_IFDIR | 0755},
		{.path = "dir/a", .mode = S_IFREG | 0644, .data = "hello, feeds\n", .size = 13},
		{.path = "b", .mode = S_IFLNK | 0777, .link = "dir/a"},
	};
	char archive[PATH_MAX], name[32];
	struct cairn_index_info info;
	struct cairn_id id;
	int fds[2];
	size_t size;
	pthread_t thread;
	struct cairn_store *store = fx_store();

	fx_write_tar(test_path(archive, sizeof(archive), "feed.tar"), entries, ARRAY_SIZE(entries));
	uint8_t *data = test_read_file(archive, &size);
	int fd = open(archive, O_RDONLY | O_CLOEXEC);
	ck_assert_int_eq(cairn_archive_id(store, fd, &id), 0);
	close(fd);
	ck_assert_int_eq(pipe(fds), 0);
	struct feeder f = {.fd = fds[1], .data = data, .size = size, .feed = feeds[_i]};
	ck_assert_int_eq(pthread_create(&thread, NULL, feed_main, &f), 0);
	snprintf(name, sizeof(name), "feed-%d", _i);
	ck_assert_int_eq(fx_import_fd(store, fds[0], name, 0), 0);
	pthread_join(thread, NULL);
	close(fds[0]);
	struct cairn_index *idx = fx_open(store, name);
	cairn_index_info(idx, &info);
	ck_assert_int_eq(cairn_id_compare(&info.source_id, &id), 0);
	ck_assert_uint_eq(info.source_size, size);
	ck_assert_int_eq(info.source_mtime_sec, 0);
	uint64_t ino;
	ck_assert_int_eq(cairn_index_resolve(idx, "b", true, &ino), 0);
	ck_assert_uint_eq(ino, fx_resolve(idx, "dir/a"));
	cairn_index_free(idx);
	cairn_store_free(store);
	free(data);
}
END_TEST

/* ---- the content reader ---- */

/* A chunk source that decodes every chunk afresh into a buffer of its own,
 * counting what it lends, and can lie: it checks that the reader gives back
 * every chunk and holds at most one. */
enum counting_mode { COUNT_HONEST, COUNT_SHORT, COUNT_FLIP, COUNT_MISSING };

struct counting_source {
	struct cairn_unpacker *unpacker;
	uint32_t chunk_max;
	enum counting_mode mode;
	unsigned gets, releases, lent, lent_max;
};

static int counting_get(void *userdata, const struct cairn_id *id, uint64_t size,
			struct cairn_chunk *ret, char *msg, size_t msg_size)
{
	struct counting_source *src = userdata;

	src->gets++;
	if (src->mode == COUNT_MISSING) {
		snprintf(msg, msg_size, "no such chunk here");
		return -ENOENT;
	}
	uint8_t *buf = test_alloc(src->chunk_max);
	int64_t n = cairn_unpacker_get(src->unpacker, id, buf, src->chunk_max);
	ck_assert_msg(n >= 0, "%s", cairn_unpacker_error(src->unpacker));
	ck_assert_uint_eq((uint64_t)n, size);
	if (src->mode == COUNT_SHORT)
		n--;
	if (src->mode == COUNT_FLIP)
		buf[0] ^= 1;
	if (++src->lent > src->lent_max)
		src->lent_max = src->lent;
	*ret = (struct cairn_chunk){.data = buf, .size = (uint64_t)n, .ref = buf};
	return 0;
}

static void counting_release(void *userdata, const struct cairn_chunk *chunk)
{
	struct counting_source *src = userdata;

	ck_assert_uint_gt(src->lent, 0);
	src->lent--;
	src->releases++;
	ck_assert_ptr_eq(chunk->data, chunk->ref);
	free(chunk->ref);
}

static const struct cairn_chunk_source_ops counting_ops = {
	.get = counting_get,
	.release = counting_release,
};

static struct cairn_content_reader *
counting_reader(struct cairn_store *store, struct counting_source *src, enum counting_mode mode)
{
	struct cairn_content_reader *reader;

	*src = (struct counting_source){
		.chunk_max = cairn_store_params(store)->chunk_max,
		.mode = mode,
	};
	ck_assert_int_eq(cairn_unpacker_new(store, &src->unpacker), 0);
	const struct cairn_chunk_source source = {.ops = &counting_ops, .userdata = src};
	ck_assert_int_eq(cairn_content_reader_new(store, &source, &reader), 0);
	return reader;
}

static void counting_done(struct cairn_content_reader *reader, struct counting_source *src)
{
	cairn_content_reader_free(reader);
	ck_assert_uint_eq(src->lent, 0);
	ck_assert_uint_eq(src->gets, src->releases + (src->mode == COUNT_MISSING ? src->gets : 0));
	ck_assert_uint_le(src->lent_max, 1);
	cairn_unpacker_free(src->unpacker);
}

#define HOLES_SIZE (1u << 20)

/* Snapshot "content" (big: BIG_SIZE random bytes in several chunks, small,
 * empty, dir/) and snapshot "holes" (4 KiB of data8k at each end of a
 * HOLES_SIZE file, a hole between). */
static struct cairn_store *content_fixture(const uint8_t *data8k)
{
	char archive[PATH_MAX];
	struct cairn_store *store = fx_store();

	if (!big_data)
		big_data = test_random_data(BIG_SIZE, 42);
	const struct fx_entry entries[] = {
		{.path = "big", .mode = S_IFREG | 0644, .data = big_data, .size = BIG_SIZE},
		{.path = "small", .mode = S_IFREG | 0644, .data = "small\n", .size = 6},
		{.path = "empty", .mode = S_IFREG | 0644},
		{.path = "dir/", .mode = S_IFDIR | 0755},
	};
	fx_write_tar(test_path(archive, sizeof(archive), "content.tar"), entries,
		     ARRAY_SIZE(entries));
	ck_assert_int_eq(fx_import(store, archive, "content"), 0);
	fx_write_sparse_tar(test_path(archive, sizeof(archive), "holes.tar"), HOLES_SIZE, data8k);
	ck_assert_int_eq(fx_import(store, archive, "holes"), 0);
	return store;
}

/* The number of runs that [offset, offset + len) of ino touches. */
static unsigned runs_touched(struct cairn_index *idx, uint64_t ino, uint64_t offset, size_t len)
{
	uint32_t first, last;

	ck_assert_int_eq(cairn_index_find_run(idx, ino, offset, &first), 0);
	ck_assert_int_eq(cairn_index_find_run(idx, ino, offset + len - 1, &last), 0);
	return last - first + 1;
}

/* Reads big in feeds of feeds[_i] bytes, through the default source and
 * through one that counts: every chunk a read touches is got once and given
 * back before the read returns. */
START_TEST(test_content_feeds)
{
	uint8_t data8k[8192] = {0};
	struct cairn_store *store = content_fixture(data8k);
	struct cairn_index *idx = fx_open(store, "content");
	uint64_t big = fx_resolve(idx, "big");
	size_t feed = feeds[_i] < BIG_SIZE ? feeds[_i] : BIG_SIZE;
	uint8_t *buf = test_alloc(BIG_SIZE);
	struct cairn_content_reader *reader;
	struct cairn_index_file file;
	struct counting_source src;

	ck_assert_int_eq(cairn_content_reader_new(store, NULL, &reader), 0);
	ck_assert_int_eq(cairn_content_open(reader, idx, big, &file), 0);
	ck_assert_uint_eq(file.size, BIG_SIZE);
	ck_assert_uint_gt(file.run_count, 3);
	for (uint64_t off = 0; off < BIG_SIZE; off += feed) {
		size_t want = feed < BIG_SIZE - off ? feed : BIG_SIZE - off;
		ck_assert_int_eq(cairn_content_read(reader, off, buf + off, feed), (int64_t)want);
	}
	ck_assert_int_eq(memcmp(buf, big_data, BIG_SIZE), 0);
	cairn_content_reader_free(reader);
	if (feed == 1)
		feed = 4093; /* decoding afresh each byte would take minutes */
	reader = counting_reader(store, &src, COUNT_HONEST);
	ck_assert_int_eq(cairn_content_open(reader, idx, big, NULL), 0);
	memset(buf, 0, BIG_SIZE);
	unsigned want_gets = 0;
	for (uint64_t off = 0; off < BIG_SIZE; off += feed) {
		size_t want = feed < BIG_SIZE - off ? feed : BIG_SIZE - off;
		ck_assert_int_eq(cairn_content_read(reader, off, buf + off, feed), (int64_t)want);
		ck_assert_uint_eq(src.lent, 0);
		want_gets += runs_touched(idx, big, off, want);
	}
	ck_assert_int_eq(memcmp(buf, big_data, BIG_SIZE), 0);
	ck_assert_uint_eq(src.gets, want_gets);
	counting_done(reader, &src);
	free(buf);
	cairn_index_free(idx);
	cairn_store_free(store);
}
END_TEST

/* Walking the runs: contiguous, numbered, each chunk got once; seek and
 * peek; the end of the file; what an unbound reader or a wrong file says. */
START_TEST(test_content_runs)
{
	uint8_t data8k[8192] = {0}, buf[16];
	struct cairn_store *store = content_fixture(data8k);
	struct cairn_index *idx = fx_open(store, "content");
	uint64_t big = fx_resolve(idx, "big");
	struct cairn_content_run cr;
	struct cairn_index_run run;
	struct cairn_index_file file;
	struct counting_source src;
	uint64_t end = 0;
	int r;

	struct cairn_content_reader *reader = counting_reader(store, &src, COUNT_HONEST);
	ck_assert_int_eq(cairn_content_next(reader, &cr), -EINVAL);
	ck_assert_int_eq(cairn_content_read(reader, 0, buf, 1), -EINVAL);
	ck_assert_int_eq(cairn_content_open(reader, idx, fx_resolve(idx, "dir"), NULL), -EISDIR);
	ck_assert_int_eq(cairn_content_open(reader, idx, 999, NULL), -ENOENT);
	ck_assert_int_eq(cairn_content_open(reader, idx, big, &file), 0);
	ck_assert_int_eq(cairn_content_peek(reader, 1, &run), -ERANGE);
	while ((r = cairn_content_next(reader, &cr)) == 1) {
		ck_assert_uint_eq(cr.number, src.gets - 1);
		ck_assert_uint_eq(cr.run.offset, end);
		ck_assert_ptr_nonnull(cr.data);
		ck_assert_int_eq(memcmp(cr.data, big_data + end, cr.run.size), 0);
		ck_assert_uint_eq(src.lent, 1);
		end += cr.run.size;
		if (cr.number + 1 < file.run_count) {
			ck_assert_int_eq(cairn_content_peek(reader, 1, &run), 0);
			ck_assert_uint_eq(run.offset, end);
		} else {
			ck_assert_int_eq(cairn_content_peek(reader, 1, &run), -ERANGE);
		}
		ck_assert_int_eq(cairn_content_peek(reader, 0, &run), -ERANGE);
	}
	ck_assert_int_eq(r, 0);
	ck_assert_uint_eq(end, BIG_SIZE);
	ck_assert_uint_eq(src.gets, file.run_count);
	/* A seek finds the run holding an offset; a read leaves the reader
	 * after the run of its last byte. */
	ck_assert_int_eq(cairn_content_seek(reader, BIG_SIZE / 2), 0);
	ck_assert_int_eq(cairn_content_next(reader, &cr), 1);
	ck_assert_uint_le(cr.run.offset, BIG_SIZE / 2);
	ck_assert_uint_gt(cr.run.offset + cr.run.size, BIG_SIZE / 2);
	ck_assert_int_eq(cairn_content_read(reader, cr.run.offset, buf, 1), 1);
	ck_assert_int_eq(cairn_content_peek(reader, 1, &run), 0);
	ck_assert_uint_eq(run.offset, cr.run.offset + cr.run.size);
	ck_assert_int_eq(cairn_content_peek(reader, 2, &run), 0);
	ck_assert_uint_gt(run.offset, cr.run.offset + cr.run.size);
	ck_assert_int_eq(cairn_content_seek(reader, BIG_SIZE), 0);
	ck_assert_int_eq(cairn_content_next(reader, &cr), 0);
	ck_assert_int_eq(cairn_content_peek(reader, 1, &run), -ERANGE);
	/* The end of the file: short reads, then none. */
	ck_assert_int_eq(cairn_content_read(reader, BIG_SIZE - 3, buf, sizeof(buf)), 3);
	ck_assert_int_eq(memcmp(buf, big_data + BIG_SIZE - 3, 3), 0);
	ck_assert_int_eq(cairn_content_read(reader, BIG_SIZE, buf, sizeof(buf)), 0);
	ck_assert_int_eq(cairn_content_read(reader, BIG_SIZE + 100, buf, sizeof(buf)), 0);
	ck_assert_int_eq(cairn_content_open(reader, idx, fx_resolve(idx, "empty"), &file), 0);
	ck_assert_uint_eq(file.run_count, 0);
	ck_assert_int_eq(cairn_content_next(reader, &cr), 0);
	ck_assert_int_eq(cairn_content_read(reader, 0, buf, sizeof(buf)), 0);
	ck_assert_int_eq(cairn_content_open(reader, idx, fx_resolve(idx, "small"), NULL), 0);
	ck_assert_int_eq(cairn_content_read(reader, 2, buf, sizeof(buf)), 4);
	ck_assert_int_eq(memcmp(buf, "all\n", 4), 0);
	counting_done(reader, &src);
	cairn_index_free(idx);
	cairn_store_free(store);
}
END_TEST

/* Holes read as zeros without a chunk; a file with holes is not copied
 * whole. */
START_TEST(test_content_holes)
{
	uint8_t *data8k = test_random_data(8192, 77), buf[300];
	struct cairn_store *store = content_fixture(data8k);
	struct cairn_index *idx = fx_open(store, "holes");
	uint64_t ino = fx_resolve(idx, "huge");
	struct cairn_content_run cr;
	struct counting_source src;
	char path[PATH_MAX];

	struct cairn_content_reader *reader = counting_reader(store, &src, COUNT_HONEST);
	ck_assert_int_eq(cairn_content_open(reader, idx, ino, NULL), 0);
	ck_assert_int_eq(cairn_content_read(reader, 4000, buf, sizeof(buf)), sizeof(buf));
	ck_assert_int_eq(memcmp(buf, data8k + 4000, 96), 0);
	for (size_t k = 96; k < sizeof(buf); k++)
		ck_assert_uint_eq(buf[k], 0);
	ck_assert_int_eq(cairn_content_read(reader, HOLES_SIZE - 4096 - 100, buf, 200), 200);
	for (size_t k = 0; k < 100; k++)
		ck_assert_uint_eq(buf[k], 0);
	ck_assert_int_eq(memcmp(buf + 100, data8k + 4096, 100), 0);
	ck_assert_int_eq(cairn_content_read(reader, HOLES_SIZE / 2, buf, sizeof(buf)), sizeof(buf));
	for (size_t k = 0; k < sizeof(buf); k++)
		ck_assert_uint_eq(buf[k], 0);
	unsigned gets = src.gets;
	ck_assert_int_eq(cairn_content_seek(reader, HOLES_SIZE / 2), 0);
	ck_assert_int_eq(cairn_content_next(reader, &cr), 1);
	ck_assert(cr.run.hole);
	ck_assert_ptr_null(cr.data);
	ck_assert_uint_eq(src.gets, gets);
	int fd = open(test_path(path, sizeof(path), "copy"), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(cairn_content_copy_to_fd(reader, fd, NULL, NULL), -EOPNOTSUPP);
	ck_assert_ptr_nonnull(strstr(cairn_content_error(reader), "sparse"));
	ck_assert_int_eq(cairn_content_check_fd(reader, fd), -EBADMSG);
	close(fd);
	counting_done(reader, &src);
	cairn_index_free(idx);
	cairn_store_free(store);
	free(data8k);
}
END_TEST

/* A source that lies about a size or has no chunk fails the read with
 * -EBADMSG and a message naming the place; one that lies about bytes is
 * caught by the whole-file copy, which checks every chunk against its id. */
START_TEST(test_content_bad_sources)
{
	static const enum counting_mode modes[] = {COUNT_SHORT, COUNT_MISSING, COUNT_FLIP};
	uint8_t data8k[8192] = {0}, buf[100];
	struct cairn_store *store = content_fixture(data8k);
	struct cairn_index *idx = fx_open(store, "content");
	uint64_t big = fx_resolve(idx, "big");
	struct counting_source src;
	char path[PATH_MAX];

	for (size_t m = 0; m < ARRAY_SIZE(modes); m++) {
		struct cairn_content_reader *reader = counting_reader(store, &src, modes[m]);
		ck_assert_int_eq(cairn_content_open(reader, idx, big, NULL), 0);
		int64_t n = cairn_content_read(reader, 10, buf, sizeof(buf));
		const char *error = cairn_content_error(reader);
		if (modes[m] == COUNT_FLIP) {
			ck_assert_int_eq(n, sizeof(buf)); /* a source is trusted to verify */
		} else {
			ck_assert_int_eq(n, -EBADMSG);
			/* The caller names the file (it knows the path). */
			ck_assert_ptr_null(strstr(error, "inode"));
			ck_assert_ptr_nonnull(strstr(error, "offset 0: "));
			ck_assert_ptr_nonnull(strstr(error, modes[m] == COUNT_SHORT
								    ? "size disagrees"
								    : "no such chunk here"));
		}
		int fd = open(test_path(path, sizeof(path), "copy"),
			      O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
		ck_assert_int_ge(fd, 0);
		ck_assert_int_eq(cairn_content_copy_to_fd(reader, fd, NULL, NULL), -EBADMSG);
		if (modes[m] == COUNT_FLIP)
			ck_assert_ptr_nonnull(
				strstr(cairn_content_error(reader), "does not match its id"));
		close(fd);
		counting_done(reader, &src);
	}
	cairn_index_free(idx);
	cairn_store_free(store);
}
END_TEST

/* The copy's progress: what was written so far, growing, after each run. */
struct copy_progress {
	int fd;
	uint64_t last;
	unsigned calls;
};

static void copy_progress(void *userdata, uint64_t done)
{
	struct copy_progress *p = userdata;
	struct stat st;

	ck_assert_uint_gt(done, p->last);
	ck_assert_int_eq(fstat(p->fd, &st), 0);
	ck_assert_uint_eq((uint64_t)st.st_size, done); /* written before it is said */
	p->last = done;
	p->calls++;
}

/* The blob path: a whole-file copy, then a check of a copy found later,
 * which must catch a flipped byte and a short file. */
START_TEST(test_content_copy_check)
{
	uint8_t data8k[8192] = {0};
	struct cairn_store *store = content_fixture(data8k), *other = cairn_store_new();
	struct cairn_index *idx = fx_open(store, "content");
	struct cairn_content_reader *reader, *stranger;
	char path[PATH_MAX], other_path[PATH_MAX];
	size_t size;

	ck_assert_int_eq(cairn_content_reader_new(store, NULL, &reader), 0);
	ck_assert_int_eq(cairn_content_open(reader, idx, fx_resolve(idx, "big"), NULL), 0);
	int fd = open(test_path(path, sizeof(path), "blob"), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	ck_assert_int_ge(fd, 0);
	struct copy_progress progress = {.fd = fd};
	ck_assert_int_eq(cairn_content_copy_to_fd(reader, fd, copy_progress, &progress), 0);
	ck_assert_uint_eq(progress.last, BIG_SIZE);
	ck_assert_uint_gt(progress.calls, 1);
	close(fd);
	uint8_t *copy = test_read_file(path, &size);
	ck_assert_uint_eq(size, BIG_SIZE);
	ck_assert_int_eq(memcmp(copy, big_data, BIG_SIZE), 0);
	free(copy);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	ck_assert_int_eq(cairn_content_check_fd(reader, fd), 0);
	close(fd);
	test_flip_byte(path, BIG_SIZE - 1);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	ck_assert_int_eq(cairn_content_check_fd(reader, fd), -EBADMSG);
	close(fd);
	test_truncate(path, BIG_SIZE - 10);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	ck_assert_int_eq(cairn_content_check_fd(reader, fd), -EBADMSG);
	ck_assert_ptr_nonnull(strstr(cairn_content_error(reader), "shorter"));
	close(fd);
	/* A snapshot of one store is not read through another's reader. */
	ck_assert_ptr_nonnull(other);
	ck_assert_int_eq(
		cairn_store_create(other, test_path(other_path, sizeof(other_path), "other"), NULL),
		0);
	ck_assert_int_eq(cairn_content_reader_new(other, NULL, &stranger), 0);
	ck_assert_int_eq(cairn_content_open(stranger, idx, fx_resolve(idx, "big"), NULL), -EXDEV);
	ck_assert_int_eq(cairn_content_check_fd(stranger, 0), -EINVAL);
	cairn_content_reader_free(stranger);
	cairn_content_reader_free(reader);
	cairn_index_free(idx);
	cairn_store_free(other);
	cairn_store_free(store);
}
END_TEST

/* ---- names, paths, commit ---- */

START_TEST(test_names)
{
	static const char *const good[] = {"a", "typescript-5.7.3", "x_y+z@1", "\xc3\xa9t\xc3\xa9"};
	static const char *const bad[] = {"",    ".",   "..",    ".hidden", "-x",   "a/b",
					  "a:b", "a b", "tmp-1", "a\\b",    "tab\t"};
	char buf[256], msg[256];

	for (size_t i = 0; i < ARRAY_SIZE(good); i++)
		ck_assert_int_eq(cairn_snapshot_name_check(good[i], msg, sizeof(msg)), 0);
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++)
		ck_assert_int_eq(cairn_snapshot_name_check(bad[i], msg, sizeof(msg)), -EINVAL);
	memset(buf, 'n', 201);
	buf[201] = '\0';
	ck_assert_int_eq(cairn_snapshot_name_check(buf, msg, sizeof(msg)), -EINVAL);
	ck_assert_int_eq(cairn_snapshot_default_name("x/typescript-5.7.3.tgz", buf, sizeof(buf),
						     msg, sizeof(msg)),
			 0);
	ck_assert_str_eq(buf, "typescript-5.7.3");
	cairn_snapshot_default_name("linux-6.1.tar.xz", buf, sizeof(buf), msg, sizeof(msg));
	ck_assert_str_eq(buf, "linux-6.1");
	cairn_snapshot_default_name("pkg_1.0_amd64.deb", buf, sizeof(buf), msg, sizeof(msg));
	ck_assert_str_eq(buf, "pkg_1.0_amd64");
	cairn_snapshot_default_name("data.zip", buf, sizeof(buf), msg, sizeof(msg));
	ck_assert_str_eq(buf, "data");
	/* The first volume of a RAR archive names the whole; a later one does
	 * not, nor a name that is only ".part1.rar". */
	cairn_snapshot_default_name("d/film.part01.rar", buf, sizeof(buf), msg, sizeof(msg));
	ck_assert_str_eq(buf, "film");
	cairn_snapshot_default_name("film.part1.rar", buf, sizeof(buf), msg, sizeof(msg));
	ck_assert_str_eq(buf, "film");
	cairn_snapshot_default_name("film.part2.rar", buf, sizeof(buf), msg, sizeof(msg));
	ck_assert_str_eq(buf, "film.part2");
	cairn_snapshot_default_name(".part1.rar", buf, sizeof(buf), msg, sizeof(msg));
	ck_assert_str_eq(buf, ".part1");
	/* So does the first part of a split archive, not a later one. */
	cairn_snapshot_default_name("d/big.7z.001", buf, sizeof(buf), msg, sizeof(msg));
	ck_assert_str_eq(buf, "big");
	cairn_snapshot_default_name("parts.tar.gz.0001", buf, sizeof(buf), msg, sizeof(msg));
	ck_assert_str_eq(buf, "parts");
	cairn_snapshot_default_name("parts.zip.002", buf, sizeof(buf), msg, sizeof(msg));
	ck_assert_str_eq(buf, "parts.zip.002");
	ck_assert_int_eq(cairn_snapshot_default_name(".tar", buf, sizeof(buf), msg, sizeof(msg)),
			 -EINVAL);
}
END_TEST

/* The stem that `cairn mount ARCHIVE` names its mount point after: every
 * suffix stripped once, a dot inside the name kept, and buf written even
 * when the stem is no allowed snapshot name. */
START_TEST(test_default_name_stem)
{
	static const struct {
		const char *path, *stem;
		int r;
	} cases[] = {
		{"v1.2.tar.xz", "v1.2", 0},
		{"dir/x.tgz", "x", 0},
		{"a.zip", "a", 0},
		{"foo.tar.gz", "foo", 0},
		{"my file.zip", "my file", -EINVAL},
		{".tar.gz", ".tar", -EINVAL},
		{"noext", "noext", 0},
	};
	char buf[256], msg[256];

	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		buf[0] = '\0';
		ck_assert_int_eq(cairn_snapshot_default_name(cases[i].path, buf, sizeof(buf), msg,
							     sizeof(msg)),
				 cases[i].r);
		ck_assert_str_eq(buf, cases[i].stem);
	}
}
END_TEST

/* cairn_snapshot_remove: a snapshot goes, durably; names that are not
 * snapshots are refused without touching anything. */
START_TEST(test_snapshot_remove)
{
	static const struct fx_entry entries[] = {
		{.path = "a", .mode = S_IFREG | 0644, .data = "a\n", .size = 2},
	};
	char archive[PATH_MAX], msg[512];
	char **names;
	size_t count;
	struct cairn_store *store = fx_store();

	fx_write_tar(test_path(archive, sizeof(archive), "rm.tar"), entries, 1);
	ck_assert_int_eq(fx_import(store, archive, "one"), 0);
	ck_assert_int_eq(fx_import(store, archive, "two"), 0);
	ck_assert_int_eq(cairn_snapshot_remove(store, "one", msg, sizeof(msg)), 0);
	ck_assert_int_eq(cairn_snapshot_exists(store, "one"), 0);
	ck_assert_int_eq(cairn_snapshot_remove(store, "one", msg, sizeof(msg)), -ENOENT);
	ck_assert_ptr_nonnull(strstr(msg, "/snapshots/one: "));
	ck_assert_int_eq(cairn_snapshot_remove(store, "../config", msg, sizeof(msg)), -EINVAL);
	ck_assert_int_eq(cairn_snapshot_remove(store, "tmp-x", msg, sizeof(msg)), -EINVAL);
	ck_assert(test_exists(test_path(archive, sizeof(archive), "store/config")));
	ck_assert_int_eq(cairn_snapshot_list(store, &names, &count), 0);
	ck_assert_uint_eq(count, 1);
	ck_assert_str_eq(names[0], "two");
	cairn_snapshot_names_free(names, count);
	cairn_store_free(store);
}
END_TEST

START_TEST(test_paths)
{
	struct path_parts p = {0};

	ck_assert_int_eq(path_split("./a//b/./c/", &p), PATH_OK);
	ck_assert_int_eq(p.count, 3);
	ck_assert_int_eq(memcmp(p.name[2], "c", 1), 0);
	ck_assert_int_eq(path_split("/abs/x", &p), PATH_OK);
	ck_assert_int_eq(p.count, 2);
	ck_assert_int_eq(path_split("./", &p), PATH_OK);
	ck_assert_int_eq(p.count, 0);
	ck_assert_int_eq(path_split("a/../b", &p), PATH_DOTDOT);
	ck_assert_int_eq(path_split("..", &p), PATH_DOTDOT);
	ck_assert_int_eq(path_split("a/...", &p), PATH_OK);
	char *deep = test_alloc(2 * (PATH_DEPTH_MAX + 1) + 1);
	for (size_t i = 0; i <= PATH_DEPTH_MAX; i++)
		memcpy(deep + 2 * i, "d/", 2);
	deep[2 * (PATH_DEPTH_MAX + 1)] = '\0';
	ck_assert_int_eq(path_split(deep, &p), PATH_TOO_DEEP);
	memset(deep, 'n', 256);
	deep[256] = '\0';
	ck_assert_int_eq(path_split(deep, &p), PATH_NAME_TOO_LONG);
	free(deep);
	path_parts_release(&p);
}
END_TEST

START_TEST(test_commit_rules)
{
	static const struct fx_entry e = {
		.path = "f", .mode = S_IFREG | 0644, .data = "1", .size = 1};
	char archive[PATH_MAX], path[PATH_MAX];
	char **names;
	size_t count;
	struct cairn_store *store = fx_store();

	fx_write_tar(test_path(archive, sizeof(archive), "one.tar"), &e, 1);
	ck_assert_int_eq(fx_import(store, archive, "one"), 0);
	ck_assert_int_eq(fx_import(store, archive, "one"), -EEXIST);
	int fd = open(archive, O_RDONLY | O_CLOEXEC);
	ck_assert_int_eq(fx_import_fd(store, fd, "one", CAIRN_IMPORT_REPLACE), 0);
	close(fd);
	ck_assert_int_eq(fx_import(store, archive, "b-two"), 0);
	ck_assert_int_eq(cairn_snapshot_exists(store, "one"), 1);
	ck_assert_int_eq(cairn_snapshot_exists(store, "none"), 0);
	test_write_file(test_path(path, sizeof(path), "store/snapshots/tmp-leftover"), "x", 1);
	ck_assert_int_eq(cairn_snapshot_list(store, &names, &count), 0);
	ck_assert_int_eq(count, 2);
	ck_assert_str_eq(names[0], "b-two");
	ck_assert_str_eq(names[1], "one");
	cairn_snapshot_names_free(names, count);
	struct cairn_leftovers leftovers = {0};
	ck_assert_int_eq(cairn_snapshot_leftovers(store, NULL, NULL), 1);
	ck_assert_int_eq(cairn_snapshot_remove_leftovers(store, &leftovers), 0);
	ck_assert_int_eq(leftovers.files, 1);
	ck_assert_int_eq(leftovers.bytes, 1);
	ck_assert_int_eq(cairn_snapshot_leftovers(store, NULL, NULL), 0);
	ck_assert(!test_exists(path));
	struct cairn_index *idx = cairn_index_new();
	ck_assert_int_eq(cairn_index_open(idx, store, "missing"), -ENOENT);
	ck_assert_int_eq(cairn_index_open(idx, store, "../config"), -ENOENT);
	cairn_index_free(idx);
	cairn_store_free(store);
}
END_TEST

/* ---- hostile bytes ---- */

/* A real snapshot's bytes, and a store to check their checksums. */
struct sample {
	struct cairn_store *store;
	uint8_t *data;
	size_t size;
};

/* The tree, then later versions of two entries (a file over a file, a file
 * over an empty directory): a snapshot of format version 2, with
 * NAME.versions directories for the hostile tests to damage. */
static void sample_make(struct sample *s)
{
	char archive[PATH_MAX], path[PATH_MAX];
	size_t n;
	const struct fx_entry *tree = tree_entries(&n);
	struct fx_entry entries[32];
	static const struct fx_entry later[] = {
		{.path = "alpha", .mode = S_IFREG | 0644, .data = "two\n", .size = 4, .mtime = 7},
		{.path = "flip/", .mode = S_IFDIR | 0755, .mtime = 8},
		{.path = "flip", .mode = S_IFREG | 0644, .data = "f", .size = 1, .mtime = 9},
	};

	ck_assert_uint_le(n + ARRAY_SIZE(later), ARRAY_SIZE(entries));
	memcpy(entries, tree, n * sizeof(*tree));
	memcpy(entries + n, later, sizeof(later));
	n += ARRAY_SIZE(later);
	s->store = fx_store();
	fx_write_tar(test_path(archive, sizeof(archive), "tree.tar"), entries, n);
	ck_assert_int_eq(fx_import(s->store, archive, "tree"), 0);
	s->data = test_read_file(test_path(path, sizeof(path), "store/snapshots/tree"), &s->size);
}

static void sample_free(struct sample *s)
{
	cairn_store_free(s->store);
	free(s->data);
}

/* Opens a copy of bytes (8-aligned, like a mapping) and closes it again. */
static int open_bytes(const struct sample *s, const uint8_t *data, size_t size, unsigned flags)
{
	struct cairn_index *idx = cairn_index_new();
	uint64_t *copy = test_alloc((size / 8 + 1) * 8);

	memcpy(copy, data, size);
	int r = index_open_memory(idx, s->store, copy, size, "hostile", flags);
	cairn_index_free(idx);
	free(copy);
	return r;
}

START_TEST(test_hostile_header)
{
	struct sample s;

	sample_make(&s);
	uint8_t *bad = test_alloc(s.size);
	struct snap_header *h = (struct snap_header *)bad;
	struct snap_section *sec = (struct snap_section *)(h + 1);
	ck_assert_int_eq(open_bytes(&s, s.data, s.size, 0), 0);
	/* Any change to the header or section table breaks its checksum. */
	for (size_t i = 0; i < sizeof(*h) + SNAP_SECTIONS_MAX * sizeof(*sec); i++) {
		memcpy(bad, s.data, s.size);
		bad[i] ^= 0x01;
		int r = open_bytes(&s, bad, s.size, 0);
		ck_assert_msg(r == -EBADMSG || r == -EOPNOTSUPP, "byte %zu: %d", i, r);
	}
	/* Each check on its own, checksums off. */
	ck_assert_uint_eq(((const struct snap_header *)s.data)->version, SNAP_VERSION_VERSIONS);
	memcpy(bad, s.data, s.size);
	h->version = SNAP_VERSION_PAGES + 1;
	ck_assert_int_eq(open_bytes(&s, bad, s.size, INDEX_OPEN_NO_CHECKSUMS), -EOPNOTSUPP);
	memcpy(bad, s.data, s.size);
	h->versions_count = h->dirent_count;
	ck_assert_int_eq(open_bytes(&s, bad, s.size, INDEX_OPEN_NO_CHECKSUMS), -EBADMSG);
	memcpy(bad, s.data, s.size);
	h->file_size++;
	ck_assert_int_eq(open_bytes(&s, bad, s.size, INDEX_OPEN_NO_CHECKSUMS), -EBADMSG);
	memcpy(bad, s.data, s.size);
	sec[SECTION_INODES - 1].size += 64;
	ck_assert_int_eq(open_bytes(&s, bad, s.size, INDEX_OPEN_NO_CHECKSUMS), -EBADMSG);
	memcpy(bad, s.data, s.size);
	sec[SECTION_XATTRS - 1].offset = UINT64_MAX - 7;
	ck_assert_int_eq(open_bytes(&s, bad, s.size, INDEX_OPEN_NO_CHECKSUMS), -EBADMSG);
	memcpy(bad, s.data, s.size);
	sec[SECTION_DIRENTS - 1].record_size = 16;
	ck_assert_int_eq(open_bytes(&s, bad, s.size, INDEX_OPEN_NO_CHECKSUMS), -EBADMSG);
	memcpy(bad, s.data, s.size);
	memcpy(h->magic, "CAIRNXX1", 8);
	ck_assert_int_eq(open_bytes(&s, bad, s.size, INDEX_OPEN_NO_CHECKSUMS), -EBADMSG);
	/* Every truncation. */
	for (size_t len = 0; len < s.size; len++)
		ck_assert_int_lt(open_bytes(&s, s.data, len, 0), 0);
	free(bad);
	sample_free(&s);
}
END_TEST

START_TEST(test_hostile_every_byte)
{
	static const uint8_t flips[] = {0x01, 0x80, 0xff};
	struct sample s;

	sample_make(&s);
	uint8_t *bad = test_alloc(s.size);
	for (size_t i = 0; i < s.size; i++) {
		for (size_t k = 0; k < ARRAY_SIZE(flips); k++) {
			memcpy(bad, s.data, s.size);
			bad[i] ^= flips[k];
			LLVMFuzzerTestOneInput(bad, s.size);
		}
	}
	/* Large values in every aligned 32-bit field. */
	for (size_t i = 0; i + 4 <= s.size; i += 4) {
		static const uint32_t values[] = {0, 1, 0x7fffffff, 0xffffffff};
		for (size_t k = 0; k < ARRAY_SIZE(values); k++) {
			memcpy(bad, s.data, s.size);
			memcpy(bad + i, &values[k], 4);
			LLVMFuzzerTestOneInput(bad, s.size);
		}
	}
	free(bad);
	sample_free(&s);
}
END_TEST

static void count_report(void *userdata, const char *problem)
{
	(void)problem;
	(*(int *)userdata)++;
}

START_TEST(test_check_finds_damage)
{
	struct sample s;
	struct cairn_index *idx = cairn_index_new();
	int problems = 0;

	sample_make(&s);
	uint8_t *copy = test_alloc(s.size);
	memcpy(copy, s.data, s.size);
	const struct snap_section *sec =
		(const struct snap_section *)(s.data + sizeof(struct snap_header));
	/* A byte of the string pool: opening refuses it; verify opens it
	 * unchecked and reports it. */
	copy[sec[SECTION_STRINGS - 1].offset + POOL_RESERVED + 1] ^= 0x20;
	ck_assert_int_eq(index_open_memory(idx, s.store, copy, s.size, "damaged", 0), -EBADMSG);
	cairn_index_free(idx);
	idx = cairn_index_new();
	ck_assert_int_eq(index_open_memory(idx, s.store, copy, s.size, "damaged",
					   CAIRN_INDEX_OPEN_UNCHECKED),
			 0);
	ck_assert_int_gt(cairn_index_check(idx, true, count_report, &problems), 0);
	ck_assert_int_gt(problems, 0);
	cairn_index_free(idx);
	free(copy);
	sample_free(&s);
}
END_TEST

/* Any byte of any section changed after the commit (checksums left as
 * they were) is refused at open, with a message naming the section: no
 * accessor ever sees it. */
START_TEST(test_open_checks_sections)
{
	struct sample s;

	sample_make(&s);
	uint8_t *copy = test_alloc(s.size);
	const struct snap_section *sec =
		(const struct snap_section *)(s.data + sizeof(struct snap_header));
	for (uint32_t i = 0; i < ((const struct snap_header *)s.data)->section_count; i++) {
		char want[64];
		if (sec[i].size == 0)
			continue;
		memcpy(copy, s.data, s.size);
		copy[sec[i].offset + sec[i].size - 1] ^= 0x01; /* a pool's first bytes are 0 */
		struct cairn_index *idx = cairn_index_new();
		ck_assert_int_eq(index_open_memory(idx, s.store, copy, s.size, "tampered", 0),
				 -EBADMSG);
		/* SOURCE is checked first, on its own (open.c) */
		snprintf(want, sizeof(want),
			 sec[i].type == SECTION_SOURCE ? "damaged source record"
						       : "the %s section is damaged",
			 index_section_name(sec[i].type));
		ck_assert_msg(strstr(cairn_index_error(idx), want), "section %u: %s", i,
			      cairn_index_error(idx));
		cairn_index_free(idx);
	}
	struct cairn_index *idx = cairn_index_new();
	ck_assert_int_eq(index_open_memory(idx, s.store, s.data, s.size, "good", 0), 0);
	cairn_index_free(idx);
	free(copy);
	sample_free(&s);
}
END_TEST

START_TEST(test_directory_cycle)
{
	struct sample s;
	struct cairn_index *idx = cairn_index_new();
	struct cairn_index_dirent d;

	sample_make(&s);
	uint8_t *copy = test_alloc(s.size);
	memcpy(copy, s.data, s.size);
	ck_assert_int_eq(
		index_open_memory(idx, NULL, s.data, s.size, "good", INDEX_OPEN_NO_CHECKSUMS), 0);
	uint64_t zeta = fx_resolve(idx, "zeta");
	const struct snap_inode *inode = &idx->inodes[zeta - 1];
	/* Point zeta's first entry at the root: a loop. */
	size_t at = (size_t)((const uint8_t *)&idx->dirents[inode->data] - s.data);
	cairn_index_free(idx);
	struct snap_dirent *bad = (struct snap_dirent *)(copy + at);
	bad->inode = CAIRN_INDEX_ROOT;
	bad->type = DT_DIR;
	idx = cairn_index_new();
	ck_assert_int_eq(
		index_open_memory(idx, NULL, copy, s.size, "loop", INDEX_OPEN_NO_CHECKSUMS), 0);
	ck_assert_int_eq(cairn_index_readdir(idx, zeta, 0, &d), -EBADMSG);
	ck_assert_ptr_nonnull(strstr(cairn_index_error(idx), "damaged"));
	cairn_index_free(idx);
	free(copy);
	sample_free(&s);
}
END_TEST

static void ignore_report(void *userdata, const char *problem)
{
	(void)userdata;
	(void)problem;
}

/* Version 3: a snapshot of many pages opens without its pages being read;
 * a page changed after the commit fails the first accessor that touches
 * it, and every later one, with the damaged section named, while records
 * on other pages serve; index_touch_all and verify's check find it too. */
START_TEST(test_pages_checked_on_touch)
{
	enum { FILES = 3000 };
	char archive[PATH_MAX], path[PATH_MAX];
	struct fx_entry *entries = test_alloc(FILES * sizeof(*entries));
	char(*names)[16] = test_alloc(FILES * sizeof(*names));
	struct cairn_index_stat st;
	size_t size;

	for (int i = 0; i < FILES; i++) {
		snprintf(names[i], sizeof(names[i]), "f%04d", i);
		entries[i] = (struct fx_entry){.path = names[i],
					       .mode = S_IFREG | 0644,
					       .data = names[i],
					       .size = 5,
					       .mtime = i};
	}
	struct cairn_store *store = fx_store();
	fx_write_tar(test_path(archive, sizeof(archive), "many.tar"), entries, FILES);
	ck_assert_int_eq(fx_import(store, archive, "many"), 0);
	uint8_t *good =
		test_read_file(test_path(path, sizeof(path), "store/snapshots/many"), &size);
	const struct snap_header *h = (const struct snap_header *)good;
	const struct snap_section *sec = (const struct snap_section *)(h + 1);
	ck_assert_uint_eq(h->version, SNAP_VERSION_PAGES);
	ck_assert_uint_eq(h->section_count, SNAP_SECTIONS_MAX);
	ck_assert_uint_eq(sec[SECTION_PAGES - 1].type, SECTION_PAGES);
	ck_assert_uint_ge(sec[SECTION_PAGES - 1].size / 8, 3);

	/* f1500's inode record lies in page 1: the root's inode and f0000's
	 * are in page 0, the dirents and names after the inodes */
	struct cairn_index *idx = cairn_index_new();
	ck_assert_int_eq(index_open_memory(idx, store, good, size, "many", 0), 0);
	uint64_t hit, ino;
	ck_assert_int_eq(cairn_index_lookup(idx, CAIRN_INDEX_ROOT, "f1500", 5, &hit), 0);
	uint64_t at = sec[SECTION_INODES - 1].offset + (hit - 1) * sizeof(struct snap_inode);
	ck_assert_uint_eq((at - idx->pages_start) / SNAP_PAGE_SIZE, 1);
	ck_assert_int_eq(index_touch_all(idx), 0);
	cairn_index_free(idx);

	uint64_t *bad = test_alloc(size + 8);
	memcpy(bad, good, size);
	((uint8_t *)bad)[at + offsetof(struct snap_inode, mtime_sec)] ^= 0x01;
	idx = cairn_index_new();
	ck_assert_int_eq(index_open_memory(idx, store, bad, size, "many", 0), 0);
	ck_assert_int_eq(cairn_index_getattr(idx, CAIRN_INDEX_ROOT, &st), 0);
	ck_assert_msg(cairn_index_lookup(idx, CAIRN_INDEX_ROOT, "f0000", 5, &ino) == 0, "%s",
		      cairn_index_error(idx));
	ck_assert_int_eq(cairn_index_getattr(idx, ino, &st), 0);
	ck_assert_int_eq(cairn_index_lookup(idx, CAIRN_INDEX_ROOT, "f1500", 5, &ino), -EBADMSG);
	ck_assert_int_eq(cairn_index_getattr(idx, hit, &st), -EBADMSG);
	ck_assert_ptr_nonnull(strstr(cairn_index_error(idx),
				     "the inodes section is damaged (checksum mismatch)"));
	ck_assert_int_eq(index_touch_all(idx), -EBADMSG);
	cairn_index_free(idx);

	idx = cairn_index_new();
	ck_assert_int_eq(
		index_open_memory(idx, store, bad, size, "many", CAIRN_INDEX_OPEN_UNCHECKED), 0);
	ck_assert_int_ge(cairn_index_check(idx, false, ignore_report, NULL), 2); /* section, page */
	cairn_index_free(idx);
	free(bad);
	free(good);
	free(names);
	free(entries);
	cairn_store_free(store);
}
END_TEST

static Suite *index_suite(void)
{
	Suite *s = suite_create("index");
	struct {
		const char *name;
		const TTest *test;
		int loop;
	} cases[] = {
		{"roundtrip", test_roundtrip, 0},
		{"sparse", test_sparse_terabyte, 0},
		{"file_ids", test_file_ids_collide_apart, 0},
		{"feeds", test_feed_sizes, (int)ARRAY_SIZE(feeds)},
		{"content_feeds", test_content_feeds, (int)ARRAY_SIZE(feeds)},
		{"content_runs", test_content_runs, 0},
		{"content_holes", test_content_holes, 0},
		{"content_bad_sources", test_content_bad_sources, 0},
		{"content_copy_check", test_content_copy_check, 0},
		{"names", test_names, 0},
		{"default_name_stem", test_default_name_stem, 0},
		{"remove", test_snapshot_remove, 0},
		{"paths", test_paths, 0},
		{"commit", test_commit_rules, 0},
		{"hostile_header", test_hostile_header, 0},
		{"hostile_bytes", test_hostile_every_byte, 0},
		{"check", test_check_finds_damage, 0},
		{"open_checks", test_open_checks_sections, 0},
		{"pages", test_pages_checked_on_touch, 0},
		{"cycle", test_directory_cycle, 0},
	};

	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		TCase *tc = tcase_create(cases[i].name);
		tcase_add_checked_fixture(tc, test_dir_setup, test_dir_teardown);
		tcase_set_timeout(tc, 120);
		if (cases[i].loop)
			tcase_add_loop_test(tc, cases[i].test, 0, cases[i].loop);
		else
			tcase_add_test(tc, cases[i].test);
		suite_add_tcase(s, tc);
	}
	return s;
}

int main(void)
{
	setlocale(LC_CTYPE, "C.UTF-8");
	SRunner *runner = srunner_create(index_suite());

	srunner_run_all(runner, CK_NORMAL);
	int failed = srunner_ntests_failed(runner);
	srunner_free(runner);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
