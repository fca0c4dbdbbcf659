/* test_rekey.c: a snapshot rewritten for another store (index/rekey.c),
 * and copied through cairn_copy_snapshot (index/copy.c). Under another key
 * every keyed field is made again: the copy opens (all checksums) and
 * passes the full check in the other store, each file id is the one its
 * new runs give, every file reads the same bytes, and the copy does not
 * open under the old key; with the same key and an unchanged map it is the
 * very same bytes; a map that fails ends the rewrite with its error. The
 * copy API sends each chunk once, a second copy sends none, and a damaged
 * chunk in the source fails naming the file and commits nothing.
 */
#include "test_util.h"

#include <archive.h>
#include <archive_entry.h>

#include "index_internal.h"

/* ---- fixtures ---- */

struct fx_file {
	const char *path;
	const uint8_t *data; /* NULL: a directory */
	size_t size;
	const char *hardlink; /* a hard link to this path */
};

static void fx_add(struct archive *a, const struct fx_file *f)
{
	struct archive_entry *entry = archive_entry_new();

	archive_entry_set_pathname(entry, f->path);
	archive_entry_set_mtime(entry, 1700000000, 0);
	if (f->hardlink) {
		archive_entry_set_mode(entry, S_IFREG | 0644);
		archive_entry_set_hardlink(entry, f->hardlink);
	} else if (!f->data) {
		archive_entry_set_mode(entry, S_IFDIR | 0755);
	} else {
		archive_entry_set_mode(entry, S_IFREG | 0644);
		archive_entry_set_size(entry, (la_int64_t)f->size);
	}
	ck_assert_int_eq(archive_write_header(a, entry), ARCHIVE_OK);
	if (f->data && f->size && !f->hardlink)
		ck_assert_int_eq(archive_write_data(a, f->data, f->size), (la_ssize_t)f->size);
	archive_entry_free(entry);
}

static void fx_write_tar(const char *path, const struct fx_file *files, size_t n)
{
	struct archive *a = archive_write_new();

	ck_assert_int_eq(archive_write_set_format_pax(a), ARCHIVE_OK);
	ck_assert_int_eq(archive_write_open_filename(a, path), ARCHIVE_OK);
	for (size_t i = 0; i < n; i++)
		fx_add(a, &files[i]);
	ck_assert_int_eq(archive_write_close(a), ARCHIVE_OK);
	archive_write_free(a);
}

static void fx_import(struct cairn_store *store, const char *archive, const char *name)
{
	struct cairn_writer *writer;
	struct cairn_import *imp;
	int fd = open(archive, O_RDONLY | O_CLOEXEC);

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

static struct cairn_index *fx_open(struct cairn_store *store, const char *name)
{
	struct cairn_index *idx = cairn_index_new();

	ck_assert_ptr_nonnull(idx);
	int r = cairn_index_open(idx, store, name);
	ck_assert_msg(r == 0, "open %s: %s", name, cairn_index_error(idx));
	return idx;
}

/* Two snapshots: "one" (a file, an identical copy, a hard link, an empty
 * file, a directory with a compressible file) and "two" (the same first
 * file and a new one), so they share chunks and each holds some alone. */
struct sample {
	struct cairn_store *store;
	uint8_t *a, *text, *fresh;
};

#define A_SIZE     (300 * 1024)
#define TEXT_SIZE  (100 * 1024)
#define FRESH_SIZE (200 * 1024)

static void sample_make(struct sample *s)
{
	char path[PATH_MAX], tar[PATH_MAX];

	s->a = test_random_data(A_SIZE, 1);
	s->fresh = test_random_data(FRESH_SIZE, 3);
	s->text = test_alloc(TEXT_SIZE);
	test_fill_text(s->text, TEXT_SIZE, 2);
	const struct fx_file one[] = {
		{"a", s->a, A_SIZE, NULL}, {"b", s->a, A_SIZE, NULL},
		{"c", NULL, 0, "a"},       {"empty", (const uint8_t *)"", 0, NULL},
		{"dir", NULL, 0, NULL},    {"dir/text", s->text, TEXT_SIZE, NULL},
	};
	const struct fx_file two[] = {
		{"a", s->a, A_SIZE, NULL},
		{"fresh", s->fresh, FRESH_SIZE, NULL},
	};
	s->store = cairn_store_new();
	ck_assert_ptr_nonnull(s->store);
	ck_assert_int_eq(cairn_store_create(s->store, test_path(path, sizeof(path), "store"), NULL),
			 0);
	fx_write_tar(test_path(tar, sizeof(tar), "one.tar"), one, ARRAY_SIZE(one));
	fx_import(s->store, tar, "one");
	fx_write_tar(test_path(tar, sizeof(tar), "two.tar"), two, ARRAY_SIZE(two));
	fx_import(s->store, tar, "two");
}

static void sample_free(struct sample *s)
{
	cairn_store_free(s->store);
	free(s->a);
	free(s->text);
	free(s->fresh);
}

/* ---- the map: chunks sent through a writer on the other store ---- */

struct sender {
	struct cairn_unpacker *unpacker;
	struct cairn_writer *writer;
	uint8_t *buf;
	size_t cap;
	int calls;
	int fail_at; /* 0: never */
};

static int send_map(void *userdata, uint64_t ino, const struct cairn_id *src, uint64_t size,
		    struct cairn_id *ret)
{
	struct sender *s = userdata;

	(void)ino;
	if (++s->calls == s->fail_at)
		return -EIO;
	int64_t n = cairn_unpacker_get(s->unpacker, src, s->buf, s->cap);
	ck_assert_int_eq(n, (int64_t)size);
	return cairn_writer_put(s->writer, s->buf, (size_t)n, ret);
}

static int same_map(void *userdata, uint64_t ino, const struct cairn_id *src, uint64_t size,
		    struct cairn_id *ret)
{
	(void)userdata;
	(void)ino;
	(void)size;
	*ret = *src;
	return 0;
}

static struct cairn_store *other_store(const char *name)
{
	char path[PATH_MAX];
	struct cairn_store_params p;
	struct cairn_store *store = cairn_store_new();

	cairn_store_params_default(&p);
	p.chunk_min = 4096; /* other chunking too: cut points stay the source's */
	p.chunk_avg = 8192;
	p.chunk_max = 1 << 20;
	ck_assert_ptr_nonnull(store);
	ck_assert_int_eq(cairn_store_create(store, test_path(path, sizeof(path), name), &p), 0);
	return store;
}

static void no_problem(void *userdata, const char *problem)
{
	(void)userdata;
	ck_abort_msg("check: %s", problem);
}

/* Every regular file of a and b (the same tree) reads the same bytes, and
 * b's file ids are those its runs give under b's store. */
static void same_files(struct cairn_index *a, struct cairn_store *sa, struct cairn_index *b,
		       struct cairn_store *sb)
{
	struct cairn_content_reader *ra, *rb;
	struct cairn_index_info info;
	static uint8_t x[1 << 20], y[1 << 20];

	ck_assert_int_eq(cairn_content_reader_new(sa, NULL, &ra), 0);
	ck_assert_int_eq(cairn_content_reader_new(sb, NULL, &rb), 0);
	cairn_index_info(a, &info);
	for (uint64_t ino = 1; ino <= info.inode_count; ino++) {
		struct cairn_index_file fa, fb;
		if (cairn_index_file(a, ino, &fa) < 0)
			continue;
		ck_assert_int_eq(cairn_content_open(ra, a, ino, &fa), 0);
		ck_assert_int_eq(cairn_content_open(rb, b, ino, &fb), 0);
		ck_assert_uint_eq(fa.size, fb.size);
		int64_t na = cairn_content_read(ra, 0, x, sizeof(x));
		int64_t nb = cairn_content_read(rb, 0, y, sizeof(y));
		ck_assert_int_eq(na, (int64_t)fa.size);
		ck_assert_int_eq(nb, na);
		ck_assert_int_eq(memcmp(x, y, (size_t)na), 0);
		struct cairn_file_hasher hasher;
		struct cairn_index_run run;
		struct cairn_id id;
		cairn_file_id_init(&hasher, sb);
		for (uint32_t i = 0; cairn_index_run(b, ino, i, &run) == 0; i++)
			cairn_file_id_add_run(&hasher, &run.chunk_id, run.offset + run.size);
		cairn_file_hasher_final(&hasher, &id);
		ck_assert_int_eq(cairn_id_compare(&id, &fb.file_id), 0);
	}
	cairn_content_reader_free(ra);
	cairn_content_reader_free(rb);
}

START_TEST(test_other_key)
{
	struct sample s;
	struct sender snd = {.cap = 1 << 20};
	uint8_t *data;
	size_t size;

	sample_make(&s);
	struct cairn_store *dst = other_store("other");
	struct cairn_index *src = fx_open(s.store, "one");
	snd.buf = test_alloc(snd.cap);
	ck_assert_int_eq(cairn_unpacker_new(s.store, &snd.unpacker), 0);
	ck_assert_int_eq(cairn_writer_open(dst, 0, 1, &snd.writer), 0);
	int r = index_rekey(src, dst, send_map, &snd, &data, &size);
	ck_assert_msg(r == 0, "rekey: %s", cairn_index_error(src));
	ck_assert_int_eq(cairn_writer_commit(snd.writer), 0);
	ck_assert_uint_eq(size, src->size);
	ck_assert(memcmp(data, src->base, size) != 0);

	/* Opens in dst, every checksum checked; passes the full check. */
	struct cairn_index *copy = cairn_index_new();
	ck_assert_int_eq(index_open_memory(copy, dst, data, size, "one", 0), 0);
	ck_assert_int_eq(cairn_index_check(copy, true, no_problem, NULL), 0);
	same_files(src, s.store, copy, dst);
	/* The source record, names and modes are the source's. */
	ck_assert_int_eq(memcmp(copy->source, src->source, sizeof(*src->source)), 0);
	ck_assert_int_eq(memcmp(copy->inodes, src->inodes, src->inode_count * 64), 0);
	/* Under the old key, the copy's sums do not hold. */
	struct cairn_index *wrong = cairn_index_new();
	ck_assert_int_eq(index_open_memory(wrong, s.store, data, size, "one", 0), -EBADMSG);

	cairn_index_free(wrong);
	cairn_index_free(copy);
	free(data);
	cairn_writer_free(snd.writer);
	cairn_unpacker_free(snd.unpacker);
	free(snd.buf);
	cairn_index_free(src);
	cairn_store_free(dst);
	sample_free(&s);
}
END_TEST

START_TEST(test_same_key)
{
	struct sample s;
	char path[PATH_MAX];
	uint8_t *data;
	size_t size;

	sample_make(&s);
	struct cairn_store *like = cairn_store_new();
	ck_assert_int_eq(
		cairn_store_create_like(like, test_path(path, sizeof(path), "like"), s.store), 0);
	ck_assert(cairn_store_same_key(like, s.store));
	ck_assert_int_eq(memcmp(cairn_store_params(like), cairn_store_params(s.store),
				sizeof(struct cairn_store_params)),
			 0);
	for (int k = 0; k < 2; k++) {
		struct cairn_index *src = fx_open(s.store, k ? "two" : "one");
		ck_assert_int_eq(index_rekey(src, like, same_map, NULL, &data, &size), 0);
		ck_assert_uint_eq(size, src->size);
		ck_assert_int_eq(memcmp(data, src->base, size), 0);
		free(data);
		cairn_index_free(src);
	}
	struct cairn_store *other = other_store("other");
	ck_assert(!cairn_store_same_key(other, s.store));
	cairn_store_free(other);
	cairn_store_free(like);
	sample_free(&s);
}
END_TEST

START_TEST(test_map_fails)
{
	struct sample s;
	struct sender snd = {.cap = 1 << 20, .fail_at = 2};
	uint8_t *data = NULL;
	size_t size = 0;

	sample_make(&s);
	struct cairn_store *dst = other_store("other");
	struct cairn_index *src = fx_open(s.store, "one");
	snd.buf = test_alloc(snd.cap);
	ck_assert_int_eq(cairn_unpacker_new(s.store, &snd.unpacker), 0);
	ck_assert_int_eq(cairn_writer_open(dst, 0, 1, &snd.writer), 0);
	ck_assert_int_eq(index_rekey(src, dst, send_map, &snd, &data, &size), -EIO);
	ck_assert_ptr_null(data);
	cairn_writer_free(snd.writer);
	cairn_unpacker_free(snd.unpacker);
	free(snd.buf);
	cairn_index_free(src);
	cairn_store_free(dst);
	sample_free(&s);
}
END_TEST

/* ---- the copy API ---- */

static int copy_one(struct cairn_store *src, struct cairn_store *dst, const char *name,
		    struct cairn_copy_stats *stats, char *msg, size_t msg_size)
{
	struct cairn_writer *writer;
	struct cairn_copy *copy;

	ck_assert_int_eq(cairn_writer_open(dst, 0, 1, &writer), 0);
	ck_assert_int_eq(cairn_copy_new(src, dst, writer, &copy), 0);
	int r = cairn_copy_snapshot(copy, name, name, 0, stats);
	snprintf(msg, msg_size, "%s", cairn_copy_error(copy));
	cairn_copy_free(copy);
	cairn_writer_free(writer);
	return r;
}

START_TEST(test_copy_api)
{
	struct sample s;
	struct cairn_copy_stats st;
	char msg[1024];

	sample_make(&s);
	struct cairn_store *dst = other_store("other");
	int r = copy_one(s.store, dst, "one", &st, msg, sizeof(msg));
	ck_assert_msg(r == 0, "copy: %s", msg);
	ck_assert(st.rekeyed);
	ck_assert_uint_gt(st.chunks, 0);
	ck_assert_uint_eq(st.chunks_sent, st.chunks);
	ck_assert_uint_eq(st.chunks_present, 0);
	/* two shares the file "a" with one: only its new chunks go. */
	r = copy_one(s.store, dst, "two", &st, msg, sizeof(msg));
	ck_assert_msg(r == 0, "copy: %s", msg);
	ck_assert_uint_gt(st.chunks_present, 0);
	ck_assert_uint_gt(st.chunks_sent, 0);
	ck_assert_uint_eq(st.chunks_sent + st.chunks_present, st.chunks);
	/* Again: the same archive bytes are there, nothing is done. */
	ck_assert_int_eq(copy_one(s.store, dst, "two", &st, msg, sizeof(msg)), 1);
	struct cairn_index *a = fx_open(s.store, "two");
	struct cairn_index *b = fx_open(dst, "two");
	ck_assert_int_eq(cairn_index_check(b, true, no_problem, NULL), 0);
	same_files(a, s.store, b, dst);
	cairn_index_free(a);
	cairn_index_free(b);
	cairn_store_free(dst);
	sample_free(&s);
}
END_TEST

static struct cairn_store *like_store(struct cairn_store *src, const char *name)
{
	char path[PATH_MAX];
	struct cairn_store *store = cairn_store_new();

	ck_assert_ptr_nonnull(store);
	ck_assert_int_eq(cairn_store_create_like(store, test_path(path, sizeof(path), name), src),
			 0);
	return store;
}

static void no_damage(void *userdata, const char *problem)
{
	(void)userdata;
	ck_abort_msg("verify: %s", problem);
}

/* Same key: records are copied as they are stored; the snapshot files are
 * the source's bytes and the store verifies. */
START_TEST(test_copy_same_key)
{
	struct sample s;
	struct cairn_copy_stats st;
	struct cairn_store_stats a, b;
	char msg[1024], pa[PATH_MAX], pb[PATH_MAX];

	sample_make(&s);
	struct cairn_store *dst = like_store(s.store, "like");
	const char *names[] = {"one", "two"};
	for (size_t k = 0; k < 2; k++) {
		int r = copy_one(s.store, dst, names[k], &st, msg, sizeof(msg));
		ck_assert_msg(r == 0, "copy: %s", msg);
		ck_assert(!st.rekeyed);
		ck_assert_uint_eq(st.chunks_sent + st.chunks_present, st.chunks);
		if (k == 0)
			ck_assert_uint_eq(st.chunks_sent, st.chunks);
		snprintf(pa, sizeof(pa), "%s/snapshots/%s", cairn_store_path(s.store), names[k]);
		snprintf(pb, sizeof(pb), "%s/snapshots/%s", cairn_store_path(dst), names[k]);
		size_t na, nb;
		uint8_t *da = test_read_file(pa, &na), *db = test_read_file(pb, &nb);
		ck_assert_uint_eq(na, nb);
		ck_assert_int_eq(memcmp(da, db, na), 0);
		free(da);
		free(db);
	}
	ck_assert_int_eq(cairn_store_verify(dst, no_damage, NULL), 0);
	ck_assert_int_eq(cairn_store_stats(s.store, &a), 0);
	ck_assert_int_eq(cairn_store_stats(dst, &b), 0);
	ck_assert_uint_eq(a.chunk_count, b.chunk_count);
	ck_assert_uint_eq(a.chunk_bytes, b.chunk_bytes);
	cairn_store_free(dst);
	sample_free(&s);
}
END_TEST

/* A damaged pack in the source: the copy fails naming the snapshot, the
 * file and the chunk, and dst gets no snapshot and no chunk. _i: 0 into a
 * store of another key (chunks read and put), 1 of the same key (records
 * copied as they are). */
START_TEST(test_copy_damaged)
{
	struct sample s;
	struct cairn_copy_stats st;
	struct cairn_store_stats before, after;
	char msg[1024], path[PATH_MAX];

	sample_make(&s);
	struct cairn_store *dst = _i ? like_store(s.store, "like") : other_store("other");
	snprintf(path, sizeof(path), "%s/packs/00000001.pack", cairn_store_path(s.store));
	test_flip_byte(path, test_file_size(path) / 2);
	ck_assert_int_eq(cairn_store_stats(dst, &before), 0);
	int r = copy_one(s.store, dst, "one", &st, msg, sizeof(msg));
	ck_assert_int_eq(r, -EBADMSG);
	ck_assert_msg(strstr(msg, "snapshot one: ") && strstr(msg, ": chunk "), "%s", msg);
	ck_assert_int_eq(cairn_snapshot_exists(dst, "one"), 0);
	ck_assert_int_eq(cairn_store_stats(dst, &after), 0);
	ck_assert_uint_eq(after.chunk_count, before.chunk_count);
	cairn_store_free(dst);
	sample_free(&s);
}
END_TEST

static Suite *rekey_suite(void)
{
	Suite *s = suite_create("rekey");
	const struct test_case cases[] = {
		{"other_key", test_other_key, 1, 60},
		{"same_key", test_same_key, 1, 60},
		{"map_fails", test_map_fails, 1, 60},
		{"copy_api", test_copy_api, 1, 60},
		{"copy_same_key", test_copy_same_key, 1, 60},
		{"copy_damaged", test_copy_damaged, 2, 60},
	};

	return test_suite_add(s, cases, ARRAY_SIZE(cases));
}

int main(void)
{
	return test_run(rekey_suite());
}
