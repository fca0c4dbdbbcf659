/* test_live.c: sets of chunk ids and the live set of a store's snapshots
 * (index/live.c): the set's add, contains, count and iteration, across
 * growth and with the all-zero id; a snapshot's set is exactly the chunks
 * its files' runs name, counted once however many files or links name
 * them; the store's set with and without one snapshot; every section of a
 * snapshot damaged in turn is refused, never read as a shorter list; and a
 * gc driven by the set keeps every remaining snapshot readable.
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

/* The chunks of a snapshot, counted the slow way: every run of every
 * inode, duplicates removed by a quadratic scan. */
static size_t slow_chunks(struct cairn_index *idx, struct cairn_id *out, size_t cap)
{
	struct cairn_index_info info;
	size_t n = 0;

	cairn_index_info(idx, &info);
	for (uint64_t ino = 1; ino <= info.inode_count; ino++) {
		struct cairn_index_file file;
		if (cairn_index_file(idx, ino, &file) < 0)
			continue;
		for (uint32_t i = 0; i < file.run_count; i++) {
			struct cairn_index_run run;
			ck_assert_int_eq(cairn_index_run(idx, ino, i, &run), 0);
			bool dup = false;
			for (size_t j = 0; j < n && !dup; j++)
				dup = cairn_id_compare(&out[j], &run.chunk_id) == 0;
			if (!dup) {
				ck_assert_uint_lt(n, cap);
				out[n++] = run.chunk_id;
			}
		}
	}
	return n;
}

static struct cairn_chunk_set *snapshot_set(struct cairn_store *store, const char *name)
{
	struct cairn_chunk_set *set;
	struct cairn_index *idx = fx_open(store, name);

	ck_assert_int_eq(cairn_chunk_set_new(&set), 0);
	int r = cairn_chunk_set_add_snapshot(set, idx);
	ck_assert_msg(r == 0, "%s: %s", name, cairn_index_error(idx));
	cairn_index_free(idx);
	return set;
}

/* ---- the set ---- */

START_TEST(test_set_basics)
{
	struct cairn_chunk_set *set;
	struct cairn_id one = {{1}}, two = {{2}}, zero = {{0}}, got;
	size_t pos = 0;

	ck_assert_int_eq(cairn_chunk_set_new(&set), 0);
	ck_assert_uint_eq(cairn_chunk_set_count(set), 0);
	ck_assert_int_eq(cairn_chunk_set_next(set, &pos, &got), 0);
	ck_assert(!cairn_chunk_set_contains(set, &one));
	ck_assert(!cairn_chunk_set_contains(set, &zero));
	ck_assert_int_eq(cairn_chunk_set_add(set, &one), 1);
	ck_assert_int_eq(cairn_chunk_set_add(set, &one), 0);
	ck_assert_int_eq(cairn_chunk_set_add(set, &zero), 1);
	ck_assert_int_eq(cairn_chunk_set_add(set, &zero), 0);
	ck_assert(cairn_chunk_set_contains(set, &one));
	ck_assert(cairn_chunk_set_contains(set, &zero));
	ck_assert(!cairn_chunk_set_contains(set, &two));
	ck_assert_uint_eq(cairn_chunk_set_count(set), 2);
	/* Iteration gives both, each once, then stays at the end. */
	unsigned seen_one = 0, seen_zero = 0, steps = 0;
	for (pos = 0; cairn_chunk_set_next(set, &pos, &got) == 1; steps++) {
		seen_one += cairn_id_compare(&got, &one) == 0;
		seen_zero += cairn_id_compare(&got, &zero) == 0;
	}
	ck_assert_uint_eq(steps, 2);
	ck_assert_uint_eq(seen_one, 1);
	ck_assert_uint_eq(seen_zero, 1);
	ck_assert_int_eq(cairn_chunk_set_next(set, &pos, &got), 0);
	cairn_chunk_set_free(set);
	cairn_chunk_set_free(NULL);
}
END_TEST

START_TEST(test_set_many)
{
	enum { COUNT = 200000 };
	struct cairn_chunk_set *set, *copy;
	struct cairn_id *ids = test_alloc(COUNT * sizeof(*ids)), got;

	test_fill_random(ids, COUNT * sizeof(*ids), 42);
	ck_assert_int_eq(cairn_chunk_set_new(&set), 0);
	for (size_t i = 0; i < COUNT; i++)
		ck_assert_int_eq(cairn_chunk_set_add(set, &ids[i]), 1);
	for (size_t i = 0; i < COUNT; i += 7)
		ck_assert_int_eq(cairn_chunk_set_add(set, &ids[i]), 0);
	ck_assert_uint_eq(cairn_chunk_set_count(set), COUNT);
	for (size_t i = 0; i < COUNT; i++)
		ck_assert(cairn_chunk_set_contains(set, &ids[i]));
	/* Ids that differ from a member in one byte are not members. */
	for (size_t i = 0; i < COUNT; i += 101) {
		struct cairn_id other = ids[i];
		other.bytes[i % CAIRN_ID_SIZE] ^= 0x80;
		ck_assert(!cairn_chunk_set_contains(set, &other));
	}
	/* Iteration yields every member exactly once. */
	ck_assert_int_eq(cairn_chunk_set_new(&copy), 0);
	size_t pos = 0, steps = 0;
	while (cairn_chunk_set_next(set, &pos, &got) == 1) {
		ck_assert(cairn_chunk_set_contains(set, &got));
		ck_assert_int_eq(cairn_chunk_set_add(copy, &got), 1);
		steps++;
	}
	ck_assert_uint_eq(steps, COUNT);
	cairn_chunk_set_free(copy);
	cairn_chunk_set_free(set);
	free(ids);
}
END_TEST

/* ---- snapshots ---- */

START_TEST(test_snapshot_chunks)
{
	struct sample s;
	struct cairn_id slow[64], id;
	struct cairn_chunk_set *all, *except_one;
	char msg[300];

	sample_make(&s);
	const char *names[] = {"one", "two"};
	struct cairn_chunk_set *sets[2];
	for (size_t k = 0; k < 2; k++) {
		struct cairn_index *idx = fx_open(s.store, names[k]);
		size_t n = slow_chunks(idx, slow, ARRAY_SIZE(slow));
		cairn_index_free(idx);
		sets[k] = snapshot_set(s.store, names[k]);
		ck_assert_uint_eq(cairn_chunk_set_count(sets[k]), n);
		for (size_t i = 0; i < n; i++)
			ck_assert(cairn_chunk_set_contains(sets[k], &slow[i]));
	}
	/* The store's set is the union; without "one" it is "two"'s. */
	ck_assert_int_eq(cairn_snapshot_chunk_set(s.store, NULL, &all, msg, sizeof(msg)), 0);
	ck_assert_int_eq(cairn_snapshot_chunk_set(s.store, "one", &except_one, msg, sizeof(msg)),
			 0);
	ck_assert_uint_eq(cairn_chunk_set_count(except_one), cairn_chunk_set_count(sets[1]));
	uint64_t shared = 0;
	for (size_t pos = 0; cairn_chunk_set_next(sets[0], &pos, &id) == 1;)
		shared += cairn_chunk_set_contains(sets[1], &id);
	ck_assert_uint_gt(shared, 0); /* file "a" is in both */
	ck_assert_uint_lt(shared, cairn_chunk_set_count(sets[0]));
	ck_assert_uint_eq(cairn_chunk_set_count(all),
			  cairn_chunk_set_count(sets[0]) + cairn_chunk_set_count(sets[1]) - shared);
	/* Every chunk in the store is named by a snapshot, and the reverse. */
	struct cairn_store_stats stats;
	ck_assert_int_eq(cairn_store_stats(s.store, &stats), 0);
	ck_assert_uint_eq(stats.chunk_count, cairn_chunk_set_count(all));
	for (size_t pos = 0; cairn_chunk_set_next(all, &pos, &id) == 1;)
		ck_assert(cairn_store_has_chunk(s.store, &id, NULL));
	cairn_chunk_set_free(all);
	cairn_chunk_set_free(except_one);
	cairn_chunk_set_free(sets[0]);
	cairn_chunk_set_free(sets[1]);
	sample_free(&s);
}
END_TEST

/* Flips a bit of the byte at offset of snapshot name; twice restores it. */
static void flip(const struct sample *s, const char *name, uint64_t offset)
{
	char path[PATH_MAX];
	uint8_t byte;

	snprintf(path, sizeof(path), "%s/snapshots/%s", cairn_store_path(s->store), name);
	int fd = open(path, O_RDWR | O_CLOEXEC);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(pread(fd, &byte, 1, (off_t)offset), 1);
	byte ^= 0x10;
	ck_assert_int_eq(pwrite(fd, &byte, 1, (off_t)offset), 1);
	close(fd);
}

START_TEST(test_damaged_refused)
{
	struct sample s;
	struct cairn_chunk_set *set = NULL;
	char msg[300];

	sample_make(&s);
	struct cairn_index *idx = fx_open(s.store, "one");
	struct snap_section sections[SNAP_SECTION_COUNT];
	memcpy(sections, idx->sections, sizeof(sections));
	cairn_index_free(idx);
	for (size_t i = 0; i <= SNAP_SECTION_COUNT; i++) {
		if (i < SNAP_SECTION_COUNT && sections[i].size == 0)
			continue;
		uint64_t offset =
			i < SNAP_SECTION_COUNT ? sections[i].offset + sections[i].size / 2 : 40;
		flip(&s, "one", offset);
		msg[0] = '\0';
		int r = cairn_snapshot_chunk_set(s.store, NULL, &set, msg, sizeof(msg));
		ck_assert_msg(r == -EBADMSG, "section %zu: %d", i, r);
		ck_assert_msg(strstr(msg, "snapshot one") != NULL, "section %zu: %s", i, msg);
		flip(&s, "one", offset); /* back as it was */
	}
	ck_assert_int_eq(cairn_snapshot_chunk_set(s.store, NULL, &set, msg, sizeof(msg)), 0);
	cairn_chunk_set_free(set);
	sample_free(&s);
}
END_TEST

static bool live_fn(void *userdata, const struct cairn_id *id)
{
	return cairn_chunk_set_contains(userdata, id);
}

static void no_problem(void *userdata, const char *problem)
{
	(void)userdata;
	ck_abort_msg("verify: %s", problem);
}

START_TEST(test_gc_keeps_live)
{
	struct sample s;
	struct cairn_chunk_set *live;
	struct cairn_writer *writer;
	struct cairn_gc_stats gc;
	struct cairn_store_stats stats;
	char msg[300];
	uint64_t ino;

	sample_make(&s);
	ck_assert_int_eq(unlinkat(cairn_store_dirfd(s.store), "snapshots/one", 0), 0);
	ck_assert_int_eq(cairn_writer_open(s.store, 0, 1, &writer), 0);
	ck_assert_int_eq(cairn_snapshot_chunk_set(s.store, NULL, &live, msg, sizeof(msg)), 0);
	ck_assert_int_eq(cairn_writer_gc(writer, live_fn, live, &gc), 0);
	ck_assert_uint_gt(gc.chunks_dropped, 0);
	ck_assert_uint_lt(gc.bytes_after, gc.bytes_before);
	cairn_writer_free(writer);
	ck_assert_int_eq(cairn_store_stats(s.store, &stats), 0);
	ck_assert_uint_eq(stats.chunk_count, cairn_chunk_set_count(live));
	ck_assert_int_eq(cairn_store_verify(s.store, no_problem, NULL), 0);
	/* "two" still reads back byte for byte. */
	struct cairn_index *idx = fx_open(s.store, "two");
	struct cairn_content_reader *reader;
	ck_assert_int_eq(cairn_content_reader_new(s.store, NULL, &reader), 0);
	const struct {
		const char *path;
		const uint8_t *data;
		size_t size;
	} files[] = {{"a", s.a, A_SIZE}, {"fresh", s.fresh, FRESH_SIZE}};
	uint8_t *buf = test_alloc(A_SIZE);
	for (size_t i = 0; i < ARRAY_SIZE(files); i++) {
		ck_assert_int_eq(cairn_index_resolve(idx, files[i].path, false, &ino), 0);
		ck_assert_int_eq(cairn_content_open(reader, idx, ino, NULL), 0);
		int64_t n = cairn_content_read(reader, 0, buf, A_SIZE);
		ck_assert_msg(n == (int64_t)files[i].size, "%s: %s", files[i].path,
			      cairn_content_error(reader));
		ck_assert_int_eq(memcmp(buf, files[i].data, files[i].size), 0);
	}
	free(buf);
	cairn_content_reader_free(reader);
	cairn_index_free(idx);
	cairn_chunk_set_free(live);
	sample_free(&s);
}
END_TEST

static Suite *live_suite(void)
{
	Suite *s = suite_create("live");
	const struct test_case cases[] = {
		{"set_basics", test_set_basics, 1, 60},
		{"set_many", test_set_many, 1, 60},
		{"snapshot_chunks", test_snapshot_chunks, 1, 60},
		{"damaged_refused", test_damaged_refused, 1, 60},
		{"gc_keeps_live", test_gc_keeps_live, 1, 60},
	};

	return test_suite_add(s, cases, ARRAY_SIZE(cases));
}

int main(void)
{
	return test_run(live_suite());
}
