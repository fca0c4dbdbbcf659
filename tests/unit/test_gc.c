/* test_gc.c: garbage collection of the chunk store: dead chunks leave the
 * table, wasteful packs are rewritten with their live chunks intact, every
 * live chunk still reads back, and a gc killed at any moment leaves the store
 * either as before or as after, never damaged.
 */
#include <signal.h>
#include <sys/wait.h>
#include <time.h>

#include "store_internal.h"
#include "test_util.h"

#define SET_CHUNKS 24

/* A set of chunks put together: ids and seeds to re-create their bytes. */
struct chunk_set {
	struct cairn_id ids[SET_CHUNKS];
	uint32_t sizes[SET_CHUNKS];
	uint64_t seed;
};

static void chunk_bytes(uint8_t *buf, uint32_t size, uint64_t seed, bool text)
{
	if (text)
		test_fill_text(buf, size, seed);
	else
		test_fill_random(buf, size, seed);
}

/* Small text chunks share group frames; large random ones stand alone. */
static void put_set(struct cairn_writer *writer, struct chunk_set *set, uint64_t seed)
{
	uint8_t *buf = test_alloc(256u << 10);

	set->seed = seed;
	for (int i = 0; i < SET_CHUNKS; i++) {
		bool text = i % 2 == 0;
		uint32_t size = text ? 3000 + 100 * (uint32_t)i : (100u << 10) + (uint32_t)i;
		chunk_bytes(buf, size, seed + (uint64_t)i, text);
		set->sizes[i] = size;
		ck_assert_int_eq(cairn_writer_put(writer, buf, size, &set->ids[i]), 0);
	}
	free(buf);
}

static void check_set_reads(struct cairn_store *store, const struct chunk_set *set)
{
	struct cairn_unpacker *unpacker;
	uint8_t *want = test_alloc(256u << 10), *got = test_alloc(256u << 10);

	ck_assert_int_eq(cairn_unpacker_new(store, &unpacker), 0);
	for (int i = 0; i < SET_CHUNKS; i++) {
		chunk_bytes(want, set->sizes[i], set->seed + (uint64_t)i, i % 2 == 0);
		int64_t n = cairn_unpacker_get(unpacker, &set->ids[i], got, 256u << 10);
		ck_assert_msg(n == set->sizes[i], "chunk %d: %lld (%s)", i, (long long)n,
			      cairn_unpacker_error(unpacker));
		ck_assert(memcmp(want, got, set->sizes[i]) == 0);
	}
	cairn_unpacker_free(unpacker);
	free(want);
	free(got);
}

static bool set_has(const struct chunk_set *set, const struct cairn_id *id)
{
	for (int i = 0; i < SET_CHUNKS; i++)
		if (cairn_id_compare(&set->ids[i], id) == 0)
			return true;
	return false;
}

struct live_sets {
	const struct chunk_set *sets[4];
	int count;
};

static bool is_live(void *userdata, const struct cairn_id *id)
{
	const struct live_sets *live = userdata;

	for (int i = 0; i < live->count; i++)
		if (set_has(live->sets[i], id))
			return true;
	return false;
}

static struct cairn_store *make_store(const char *path)
{
	struct cairn_store_params params;
	struct cairn_store *store = cairn_store_new();

	cairn_store_params_default(&params);
	params.pack_max = 1u << 20;
	ck_assert_int_eq(cairn_store_create(store, path, &params), 0);
	return store;
}

static struct cairn_store *reopen(struct cairn_store *store, const char *path)
{
	cairn_store_free(store);
	store = cairn_store_new();
	ck_assert_int_eq(cairn_store_open(store, path), 0);
	return store;
}

static void assert_verifies(struct cairn_store *store)
{
	ck_assert_int_eq(cairn_store_verify(store, NULL, NULL), 0);
}

static int count_packs(const char *store_path)
{
	int count = 0;
	int dirfd = open(store_path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);

	ck_assert_int_ge(dirfd, 0);
	int packs = openat(dirfd, "packs", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	close(dirfd);
	ck_assert_int_ge(packs, 0);
	DIR *dir = fdopendir(packs);
	ck_assert_ptr_nonnull(dir);
	for (struct dirent *de; (de = readdir(dir));)
		count += de->d_name[0] != '.';
	closedir(dir);
	return count;
}

/* Three sets, each committed apart (so in packs of their own); set b dies. */
static struct cairn_store *three_sets(const char *path, struct chunk_set sets[3])
{
	struct cairn_store *store = make_store(path);
	struct cairn_writer *writer;

	for (int i = 0; i < 3; i++) {
		ck_assert_int_eq(cairn_writer_open(store, 0, 2, &writer), 0);
		put_set(writer, &sets[i], 1000 * (uint64_t)(i + 1));
		ck_assert_int_eq(cairn_writer_commit(writer), 0);
		cairn_writer_free(writer);
	}
	return store;
}

START_TEST(test_gc_drops_dead_packs)
{
	char path[PATH_MAX + 64];
	struct chunk_set sets[3];
	struct cairn_writer *writer;
	struct cairn_gc_stats stats;
	struct cairn_store_stats before, after;

	snprintf(path, sizeof(path), "%s/store", test_dir);
	struct cairn_store *store = three_sets(path, sets);
	ck_assert_int_eq(cairn_store_stats(store, &before), 0);
	struct live_sets live = {.sets = {&sets[0], &sets[2]}, .count = 2};
	ck_assert_int_eq(cairn_writer_open(store, 0, 2, &writer), 0);
	ck_assert_int_eq(cairn_writer_gc(writer, is_live, &live, &stats), 0);
	cairn_writer_free(writer);

	ck_assert_uint_eq(stats.chunks_dropped, SET_CHUNKS);
	ck_assert_uint_ge(stats.packs_deleted, 1);
	ck_assert_uint_lt(stats.bytes_after, stats.bytes_before);
	store = reopen(store, path);
	ck_assert_int_eq(cairn_store_stats(store, &after), 0);
	ck_assert_uint_eq(after.chunk_count, before.chunk_count - SET_CHUNKS);
	ck_assert_int_eq(count_packs(path), (int)after.pack_count);
	for (int i = 0; i < SET_CHUNKS; i++)
		ck_assert(!cairn_store_has_chunk(store, &sets[1].ids[i], NULL));
	check_set_reads(store, &sets[0]);
	check_set_reads(store, &sets[2]);
	assert_verifies(store);
	cairn_store_free(store);
}
END_TEST

START_TEST(test_gc_rewrites_mixed_packs)
{
	char path[PATH_MAX + 64];
	struct chunk_set a, b;
	struct cairn_writer *writer;
	struct cairn_gc_stats stats;

	snprintf(path, sizeof(path), "%s/store", test_dir);
	struct cairn_store *store = make_store(path);
	ck_assert_int_eq(cairn_writer_open(store, 0, 2, &writer), 0);
	put_set(writer, &a, 7);
	put_set(writer, &b, 9000);
	ck_assert_int_eq(cairn_writer_commit(writer), 0);
	struct live_sets live = {.sets = {&a}, .count = 1};
	ck_assert_int_eq(cairn_writer_gc(writer, is_live, &live, &stats), 0);
	cairn_writer_free(writer);

	ck_assert_uint_eq(stats.chunks_dropped, SET_CHUNKS);
	ck_assert_uint_gt(stats.chunks_moved, 0);
	ck_assert_uint_gt(stats.packs_rewritten, 0);
	store = reopen(store, path);
	check_set_reads(store, &a);
	for (int i = 0; i < SET_CHUNKS; i++)
		ck_assert(!cairn_store_has_chunk(store, &b.ids[i], NULL));
	assert_verifies(store);
	cairn_store_free(store);
}
END_TEST

START_TEST(test_gc_all_live_keeps_everything)
{
	char path[PATH_MAX + 64];
	struct chunk_set sets[3];
	struct cairn_writer *writer;
	struct cairn_gc_stats stats;

	snprintf(path, sizeof(path), "%s/store", test_dir);
	struct cairn_store *store = three_sets(path, sets);
	struct live_sets live = {.sets = {&sets[0], &sets[1], &sets[2]}, .count = 3};
	ck_assert_int_eq(cairn_writer_open(store, 0, 2, &writer), 0);
	ck_assert_int_eq(cairn_writer_gc(writer, is_live, &live, &stats), 0);
	cairn_writer_free(writer);
	ck_assert_uint_eq(stats.chunks_dropped, 0);
	ck_assert_uint_eq(stats.packs_deleted, 0);
	ck_assert_uint_eq(stats.bytes_after, stats.bytes_before);
	store = reopen(store, path);
	for (int i = 0; i < 3; i++)
		check_set_reads(store, &sets[i]);
	cairn_store_free(store);
}
END_TEST

START_TEST(test_gc_refuses_uncommitted_work)
{
	char path[PATH_MAX + 64];
	struct chunk_set a;
	struct cairn_writer *writer;
	struct cairn_gc_stats stats;
	struct live_sets live = {.sets = {&a}, .count = 1};

	snprintf(path, sizeof(path), "%s/store", test_dir);
	struct cairn_store *store = make_store(path);
	ck_assert_int_eq(cairn_writer_open(store, 0, 2, &writer), 0);
	put_set(writer, &a, 5);
	ck_assert_int_eq(cairn_writer_gc(writer, is_live, &live, &stats), -EBUSY);
	cairn_writer_free(writer);
	cairn_store_free(store);
}
END_TEST

/* A pinned store (a mount) is never collected under its reader. */
START_TEST(test_gc_refuses_pinned_store)
{
	char path[PATH_MAX + 64];
	struct chunk_set sets[3];
	struct cairn_writer *writer;
	struct cairn_gc_stats stats;
	struct live_sets live = {.sets = {&sets[0]}, .count = 1};

	snprintf(path, sizeof(path), "%s/store", test_dir);
	struct cairn_store *store = three_sets(path, sets);
	struct cairn_store *mounted = cairn_store_new();
	ck_assert_int_eq(cairn_store_open(mounted, path), 0);
	ck_assert_int_eq(cairn_store_pin(mounted), 0);
	ck_assert_int_eq(cairn_writer_open(store, 0, 2, &writer), 0);
	ck_assert_int_eq(cairn_writer_gc(writer, is_live, &live, &stats), -EBUSY);
	ck_assert_ptr_nonnull(strstr(cairn_writer_error(writer), "mounted"));
	check_set_reads(mounted, &sets[1]);
	cairn_store_free(mounted);
	ck_assert_int_eq(cairn_writer_gc(writer, is_live, &live, &stats), 0);
	ck_assert_uint_eq(stats.chunks_dropped, 2 * SET_CHUNKS);
	cairn_writer_free(writer);
	cairn_store_free(store);
}
END_TEST

/* Not gc, but the other way a writer sheds work: rollback forgets what was
 * put since the last commit, deletes its packs, and keeps the lock. */
START_TEST(test_rollback_forgets_session)
{
	char path[PATH_MAX + 64];
	struct chunk_set a, b, c;
	struct cairn_writer *writer, *other;
	struct cairn_store_stats before, after;

	snprintf(path, sizeof(path), "%s/store", test_dir);
	struct cairn_store *store = make_store(path);
	ck_assert_int_eq(cairn_writer_open(store, 0, 2, &writer), 0);
	put_set(writer, &a, 11);
	ck_assert_int_eq(cairn_writer_commit(writer), 0);
	ck_assert_int_eq(cairn_store_stats(store, &before), 0);
	put_set(writer, &b, 22);
	ck_assert_int_eq(cairn_writer_rollback(writer), 0);

	struct cairn_store *second = cairn_store_new();
	ck_assert_int_eq(cairn_store_open(second, path), 0);
	ck_assert_int_eq(cairn_writer_open(second, CAIRN_WRITER_NOWAIT, 1, &other), -EWOULDBLOCK);
	cairn_store_free(second);

	ck_assert_int_eq(count_packs(path), (int)before.pack_count);
	put_set(writer, &c, 33);
	ck_assert_int_eq(cairn_writer_commit(writer), 0);
	cairn_writer_free(writer);
	store = reopen(store, path);
	ck_assert_int_eq(cairn_store_stats(store, &after), 0);
	ck_assert_uint_eq(after.chunk_count, before.chunk_count + SET_CHUNKS);
	for (int i = 0; i < SET_CHUNKS; i++)
		ck_assert(!cairn_store_has_chunk(store, &b.ids[i], NULL));
	check_set_reads(store, &a);
	check_set_reads(store, &c);
	ck_assert_int_eq(count_packs(path), (int)after.pack_count);
	assert_verifies(store);
	cairn_store_free(store);
}
END_TEST

static void gc_child(const char *path, const struct chunk_set *keep)
{
	struct cairn_store *store = cairn_store_new();
	struct cairn_writer *writer;
	struct cairn_gc_stats stats;
	struct live_sets live = {.sets = {keep}, .count = 1};

	if (cairn_store_open(store, path) < 0 || cairn_writer_open(store, 0, 2, &writer) < 0)
		_exit(2);
	_exit(cairn_writer_gc(writer, is_live, &live, &stats) < 0 ? 3 : 0);
}

/* kill -9 at random moments of a gc: the store verifies and the live set
 * reads back every time, whether the gc got to its commit or not. */
START_TEST(test_gc_killed_anywhere)
{
	char path[PATH_MAX + 64];
	struct chunk_set sets[3];
	uint64_t rng = (uint64_t)time(NULL);

	for (int round = 0; round < 20; round++) {
		snprintf(path, sizeof(path), "%s/store%d", test_dir, round);
		struct cairn_store *store = three_sets(path, sets);
		cairn_store_free(store);
		pid_t pid = fork();
		ck_assert_int_ge(pid, 0);
		if (pid == 0)
			gc_child(path, &sets[0]);
		struct timespec delay = {.tv_nsec = (long)(test_rand_next(&rng) % 12000000)};
		nanosleep(&delay, NULL);
		kill(pid, SIGKILL);
		waitpid(pid, NULL, 0);

		store = cairn_store_new();
		ck_assert_int_eq(cairn_store_open(store, path), 0);
		assert_verifies(store);
		check_set_reads(store, &sets[0]);
		cairn_store_free(store);
	}
}
END_TEST

static Suite *gc_suite(void)
{
	Suite *suite = suite_create("gc");
	struct {
		const char *name;
		const TTest *test;
	} cases[] = {
		{"drops dead packs", test_gc_drops_dead_packs},
		{"rewrites mixed packs", test_gc_rewrites_mixed_packs},
		{"all live keeps everything", test_gc_all_live_keeps_everything},
		{"refuses uncommitted work", test_gc_refuses_uncommitted_work},
		{"killed anywhere", test_gc_killed_anywhere},
		{"rollback forgets the session", test_rollback_forgets_session},
		{"refuses a pinned store", test_gc_refuses_pinned_store},
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		TCase *tc = tcase_create(cases[i].name);
		tcase_add_checked_fixture(tc, test_dir_setup, test_dir_teardown);
		tcase_set_timeout(tc, 60);
		tcase_add_test(tc, cases[i].test);
		suite_add_tcase(suite, tc);
	}
	return suite;
}

int main(void)
{
	SRunner *runner = srunner_create(gc_suite());

	srunner_run_all(runner, CK_NORMAL);
	int failed = srunner_ntests_failed(runner);
	srunner_free(runner);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
