/* test_store_path.c: opening inside a directory without following symbolic
 * links (store/path.h), the way every part of a store is reached. Each
 * open behaviour runs twice: through openat2 (cairn_openat_beneath on this
 * kernel) and through the walk older kernels get (path_open_walk). A link
 * anywhere on the path is refused and nothing is made through it; a FIFO
 * is refused without blocking; the wrong type gets its own error.
 */
#include "test_store_util.h"

#include <sys/stat.h>

/* test_dir/d holds: f (a file), sub/g (a file in a directory), link -> the
 * outside directory, dangling -> a name in it that does not exist, fifo,
 * and sub/up -> "..". Returns d's fd. */
static int make_tree(void)
{
	char path[PATH_MAX], out[PATH_MAX];

	test_path(out, sizeof(out), "out");
	ck_assert_int_eq(mkdir(out, 0700), 0);
	ck_assert_int_eq(mkdir(test_path(path, sizeof(path), "d"), 0700), 0);
	ck_assert_int_eq(mkdir(test_path(path, sizeof(path), "d/sub"), 0700), 0);
	test_write_file(test_path(path, sizeof(path), "d/f"), "f", 1);
	test_write_file(test_path(path, sizeof(path), "d/sub/g"), "g", 1);
	test_write_file(test_path(path, sizeof(path), "out/decoy"), "o", 1);
	ck_assert_int_eq(symlink(out, test_path(path, sizeof(path), "d/link")), 0);
	ck_assert_int_eq(symlink("../out/made", test_path(path, sizeof(path), "d/dangling")), 0);
	ck_assert_int_eq(symlink("..", test_path(path, sizeof(path), "d/sub/up")), 0);
	ck_assert_int_eq(mkfifo(test_path(path, sizeof(path), "d/fifo"), 0600), 0);
	int fd = open(test_path(path, sizeof(path), "d"), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	ck_assert_int_ge(fd, 0);
	return fd;
}

/* _i 0: the public way (openat2 here), 1: the walk without openat2. */
static int open_way(int way, int dirfd, const char *path, int flags, mode_t mode)
{
	return way == 0 ? cairn_openat_beneath(dirfd, path, flags, mode)
			: path_open_walk(dirfd, path, flags, mode);
}

static bool outside_has(const char *name)
{
	char path[PATH_MAX], rel[64];

	snprintf(rel, sizeof(rel), "out/%s", name);
	return test_exists(test_path(path, sizeof(path), rel));
}

START_TEST(test_open_plain)
{
	char byte = 0;
	_cleanup_close_ int dirfd = make_tree();

	_cleanup_close_ int fd = open_way(_i, dirfd, "sub/g", O_RDONLY, 0);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(read(fd, &byte, 1), 1);
	ck_assert_int_eq(byte, 'g');
	ck_assert(fcntl(fd, F_GETFD) & FD_CLOEXEC);
	_cleanup_close_ int made = open_way(_i, dirfd, "sub/new", O_RDWR | O_CREAT | O_EXCL, 0600);
	ck_assert_int_ge(made, 0);
	_cleanup_close_ int self = open_way(_i, dirfd, ".", O_RDONLY | O_DIRECTORY, 0);
	ck_assert_int_ge(self, 0);
}
END_TEST

START_TEST(test_open_links_refused)
{
	_cleanup_close_ int dirfd = make_tree();

	/* A link at the end, on the way, dangling (with O_CREAT), or to "..". */
	int fd = open_way(_i, dirfd, "link", O_RDONLY | O_DIRECTORY, 0);
	ck_assert_int_lt(fd, 0);
	fd = open_way(_i, dirfd, "link/decoy", O_RDONLY, 0);
	ck_assert_int_lt(fd, 0);
	fd = open_way(_i, dirfd, "link/made", O_RDWR | O_CREAT, 0600);
	ck_assert_int_lt(fd, 0);
	fd = open_way(_i, dirfd, "dangling", O_RDWR | O_CREAT, 0600);
	ck_assert_int_lt(fd, 0);
	fd = open_way(_i, dirfd, "sub/up/f", O_RDONLY, 0);
	ck_assert_int_lt(fd, 0);
	ck_assert(!outside_has("made"));
	/* Leaving dirfd is refused however it is spelled. */
	ck_assert_int_eq(open_way(_i, dirfd, "../out/decoy", O_RDONLY, 0), -EXDEV);
	ck_assert_int_eq(open_way(_i, dirfd, "sub/../../out/decoy", O_RDONLY, 0), -EXDEV);
	ck_assert_int_eq(open_way(_i, dirfd, "/etc/passwd", O_RDONLY, 0), -EXDEV);
}
END_TEST

/* The public helpers say which wrong thing they met. */
START_TEST(test_errors_classified)
{
	_cleanup_close_ int dirfd = make_tree();

	ck_assert_int_eq(cairn_openat_beneath(dirfd, "link", O_RDONLY | O_DIRECTORY, 0), -ELOOP);
	ck_assert_int_eq(cairn_openat_beneath(dirfd, "link/decoy", O_RDONLY, 0), -ELOOP);
	ck_assert_int_eq(cairn_open_dir_beneath(dirfd, "link"), -ELOOP);
	ck_assert_int_eq(cairn_open_dir_beneath(dirfd, "f"), -ENOTDIR);
	ck_assert_int_eq(cairn_open_dir_beneath(dirfd, "fifo"), -ENOTDIR);
	ck_assert_int_eq(cairn_open_dir_beneath(dirfd, "none"), -ENOENT);
	ck_assert_int_eq(cairn_open_file_beneath(dirfd, "link", O_RDONLY, 0), -ELOOP);
	ck_assert_int_eq(cairn_open_file_beneath(dirfd, "dangling", O_RDWR | O_CREAT, 0600),
			 -ELOOP);
	ck_assert_int_eq(cairn_open_file_beneath(dirfd, "sub", O_RDONLY, 0), -EISDIR);
	ck_assert_int_eq(cairn_open_file_beneath(dirfd, "sub", O_RDWR | O_CREAT, 0600), -EISDIR);
	ck_assert(!outside_has("made"));
	ck_assert_str_eq(cairn_path_strerror(-ELOOP),
			 "is a symbolic link; a store's parts must be real files and directories");
	ck_assert_str_eq(cairn_path_strerror(-ENOTDIR), "is not a directory");
	ck_assert_str_eq(cairn_path_strerror(-EBADFD), "is not a regular file");
	ck_assert_str_eq(cairn_path_strerror(-ENOENT), strerror(ENOENT));
}
END_TEST

/* A FIFO is refused at once, however it is opened (Check's timeout catches
 * a hang); a regular file comes back in blocking mode. */
START_TEST(test_fifo_never_blocks)
{
	static const int modes[] = {O_RDONLY, O_WRONLY, O_RDWR, O_RDWR | O_CREAT};
	_cleanup_close_ int dirfd = make_tree();

	for (size_t i = 0; i < ARRAY_SIZE(modes); i++)
		ck_assert_int_eq(cairn_open_file_beneath(dirfd, "fifo", modes[i], 0600), -EBADFD);
	_cleanup_close_ int fd = cairn_open_file_beneath(dirfd, "f", O_RDWR, 0);
	ck_assert_int_ge(fd, 0);
	ck_assert(!(fcntl(fd, F_GETFL) & O_NONBLOCK));
	_cleanup_close_ int made = cairn_open_file_beneath(dirfd, "lock", O_RDWR | O_CREAT, 0600);
	ck_assert_int_ge(made, 0);
}
END_TEST

START_TEST(test_check_beneath)
{
	_cleanup_close_ int dirfd = make_tree();

	ck_assert_int_eq(cairn_check_beneath(dirfd, "f", false), 0);
	ck_assert_int_eq(cairn_check_beneath(dirfd, "none", false), 0);
	ck_assert_int_eq(cairn_check_beneath(dirfd, "sub", true), 0);
	ck_assert_int_eq(cairn_check_beneath(dirfd, "link", true), -ELOOP);
	ck_assert_int_eq(cairn_check_beneath(dirfd, "dangling", false), -ELOOP);
	ck_assert_int_eq(cairn_check_beneath(dirfd, "fifo", false), -EBADFD);
	ck_assert_int_eq(cairn_check_beneath(dirfd, "sub", false), -EISDIR);
	ck_assert_int_eq(cairn_check_beneath(dirfd, "f", true), -ENOTDIR);
}
END_TEST

static Suite *store_path_suite(void)
{
	Suite *suite = suite_create("store_path");
	const struct test_case cases[] = {
		{"open_plain", test_open_plain, 2, 10},
		{"open_links_refused", test_open_links_refused, 2, 10},
		{"errors_classified", test_errors_classified, 1, 10},
		{"fifo_never_blocks", test_fifo_never_blocks, 1, 10},
		{"check_beneath", test_check_beneath, 1, 10},
	};

	return test_suite_add(suite, cases, ARRAY_SIZE(cases));
}

int main(void)
{
	return test_run(store_path_suite());
}
