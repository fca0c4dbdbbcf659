/* test_util.h: what the Check suites share: a fresh temp directory per test
 * (a checked fixture), deterministic pseudo-random data, and small file
 * helpers for damaging store files on purpose. Header-only: every helper is
 * static inline, so a suite links only what it uses.
 */
#ifndef CAIRN_TEST_UTIL_H
#define CAIRN_TEST_UTIL_H

#include <check.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* A TCase's temp directory, made and removed in the runner process by an
 * unchecked fixture, so it goes even when a test fails: a failed assertion
 * ends the test's (forked) process at once, skipping checked teardowns. */
static char test_base[PATH_MAX];
/* The current test's own fresh directory, inside test_base when there is
 * one, made by test_dir_setup in the test's process. */
static char test_dir[PATH_MAX];

/* ---- deterministic data ---- */

static inline uint64_t test_rand_next(uint64_t *state)
{
	uint64_t z = (*state += 0x9e3779b97f4a7c15ull);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

/* Incompressible bytes, a function of seed only. */
static inline void test_fill_random(void *buf, size_t size, uint64_t seed)
{
	uint8_t *p = buf;
	uint64_t state = seed;

	while (size >= 8) {
		uint64_t word = test_rand_next(&state);
		memcpy(p, &word, 8);
		p += 8;
		size -= 8;
	}
	if (size > 0) {
		uint64_t word = test_rand_next(&state);
		memcpy(p, &word, size);
	}
}

/* Compressible bytes (words from a small vocabulary), a function of seed. */
static inline void test_fill_text(void *buf, size_t size, uint64_t seed)
{
	static const char *const words[] = {"cairn ", "stone ", "chunk ", "pack ",
					    "table ", "store ", "hash ",  "\n"};
	uint8_t *p = buf;
	uint64_t state = seed;
	size_t done = 0;

	while (done < size) {
		const char *word = words[test_rand_next(&state) % 8];
		size_t len = strlen(word);
		if (len > size - done)
			len = size - done;
		memcpy(p + done, word, len);
		done += len;
	}
}

static inline void *test_alloc(size_t size)
{
	void *buf = malloc(size ? size : 1);

	ck_assert_ptr_nonnull(buf);
	return buf;
}

static inline uint8_t *test_random_data(size_t size, uint64_t seed)
{
	uint8_t *buf = test_alloc(size);

	test_fill_random(buf, size, seed);
	return buf;
}

/* ---- temp directories ---- */

static inline const char *test_tmp_root(void)
{
	const char *root = getenv("TMPDIR");

	return root && *root ? root : "/tmp";
}

static inline void test_dir_make(char *buf, size_t size)
{
	ck_assert_int_lt(snprintf(buf, size, "%s/cairn-test-XXXXXX", test_tmp_root()), (int)size);
	ck_assert_msg(mkdtemp(buf) != NULL, "mkdtemp %s: %s", buf, strerror(errno));
}

static inline int test_rm_one(const char *path, const struct stat *st, int type, struct FTW *ftw)
{
	(void)st;
	(void)ftw;
	if (type == FTW_DP)
		return rmdir(path) < 0 ? -1 : 0;
	return unlink(path) < 0 ? -1 : 0;
}

static inline void test_dir_remove(const char *path)
{
	if (path[0] != '\0')
		nftw(path, test_rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

/* Unchecked fixture: runs in the runner, where Check calls are no use. */
static inline void test_base_setup(void)
{
	snprintf(test_base, sizeof(test_base), "%s/cairn-test-XXXXXX", test_tmp_root());
	if (!mkdtemp(test_base)) {
		perror(test_base);
		abort();
	}
}

static inline void test_base_teardown(void)
{
	test_dir_remove(test_base);
	test_base[0] = '\0';
}

static inline void test_dir_setup(void)
{
	if (test_base[0] == '\0') {
		test_dir_make(test_dir, sizeof(test_dir));
		return;
	}
	ck_assert_int_lt(snprintf(test_dir, sizeof(test_dir), "%s/test-XXXXXX", test_base),
			 (int)sizeof(test_dir));
	ck_assert_msg(mkdtemp(test_dir) != NULL, "mkdtemp %s: %s", test_dir, strerror(errno));
}

static inline void test_dir_teardown(void)
{
	test_dir_remove(test_dir);
	test_dir[0] = '\0';
}

/* Gives every test of tc a fresh temp dir, removed even if the test fails. */
static inline void test_add_dir_fixtures(TCase *tc)
{
	tcase_add_unchecked_fixture(tc, test_base_setup, test_base_teardown);
	tcase_add_checked_fixture(tc, test_dir_setup, test_dir_teardown);
}

/* Writes "test_dir/name" into buf and returns buf. */
static inline char *test_path(char *buf, size_t size, const char *name)
{
	ck_assert_int_lt(snprintf(buf, size, "%s/%s", test_dir, name), (int)size);
	return buf;
}

/* ---- files ---- */

static inline bool test_exists(const char *path)
{
	return access(path, F_OK) == 0;
}

static inline uint64_t test_file_size(const char *path)
{
	struct stat st;

	ck_assert_msg(stat(path, &st) == 0, "stat %s: %s", path, strerror(errno));
	return (uint64_t)st.st_size;
}

/* Reads a whole file into a malloc'd buffer. */
static inline uint8_t *test_read_file(const char *path, size_t *ret_size)
{
	size_t size = (size_t)test_file_size(path);
	uint8_t *buf = test_alloc(size);
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	ck_assert_msg(fd >= 0, "open %s: %s", path, strerror(errno));
	ck_assert_int_eq(pread(fd, buf, size, 0), (ssize_t)size);
	close(fd);
	*ret_size = size;
	return buf;
}

/* Replaces the file's content with size bytes of data. */
static inline void test_write_file(const char *path, const void *data, size_t size)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);

	ck_assert_msg(fd >= 0, "open %s: %s", path, strerror(errno));
	ck_assert_int_eq(write(fd, data, size), (ssize_t)size);
	close(fd);
}

/* Flips the bits of one byte at offset, in place. */
static inline void test_flip_byte(const char *path, uint64_t offset)
{
	int fd = open(path, O_RDWR | O_CLOEXEC);
	uint8_t byte;

	ck_assert_msg(fd >= 0, "open %s: %s", path, strerror(errno));
	ck_assert_int_eq(pread(fd, &byte, 1, (off_t)offset), 1);
	byte ^= 0xff;
	ck_assert_int_eq(pwrite(fd, &byte, 1, (off_t)offset), 1);
	close(fd);
}

static inline void test_truncate(const char *path, uint64_t size)
{
	ck_assert_msg(truncate(path, (off_t)size) == 0, "truncate %s: %s", path, strerror(errno));
}

/* Counts the entries of dir (not "." or "..") for which match returns true;
 * match NULL counts all. */
static inline size_t test_dir_count(const char *path, bool (*match)(const char *name, void *ctx),
				    void *ctx)
{
	DIR *dir = opendir(path);
	struct dirent *de;
	size_t count = 0;

	ck_assert_msg(dir != NULL, "opendir %s: %s", path, strerror(errno));
	while ((de = readdir(dir))) {
		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		if (!match || match(de->d_name, ctx))
			count++;
	}
	closedir(dir);
	return count;
}

/* Whether name is a writer's temp file ("tmp-*" or "*.tmp"). */
static inline bool test_is_temp_name(const char *name, void *ctx)
{
	size_t len = strlen(name);

	(void)ctx;
	return strncmp(name, "tmp-", 4) == 0 || (len > 4 && strcmp(name + len - 4, ".tmp") == 0);
}

/* ---- the suites ---- */

/* One TCase per behaviour, each test in a fresh temp directory, run loops
 * times (tcase_add_loop_test's _i from 0) with a timeout in seconds. */
struct test_case {
	const char *name;
	const TTest *test;
	int loops;
	int timeout;
};

static inline Suite *test_suite_add(Suite *suite, const struct test_case *cases, size_t count)
{
	for (size_t i = 0; i < count; i++) {
		TCase *tc = tcase_create(cases[i].name);
		test_add_dir_fixtures(tc);
		tcase_set_timeout(tc, cases[i].timeout);
		tcase_add_loop_test(tc, cases[i].test, 0, cases[i].loops);
		suite_add_tcase(suite, tc);
	}
	return suite;
}

static inline int test_run(Suite *suite)
{
	SRunner *runner = srunner_create(suite);

	srunner_run_all(runner, CK_ENV);
	int failed = srunner_ntests_failed(runner);
	srunner_free(runner);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}

#endif
