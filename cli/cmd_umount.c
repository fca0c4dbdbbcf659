/* cmd_umount.c: `cairn umount`, which unmounts cairn mounts and nothing
 * else. The mount table (/proc/self/mountinfo) says what is mounted at the
 * directory: a filesystem of cairn's type is unmounted (as root with
 * umount2, else with fusermount3 -u); anything else is refused, since
 * root's umount2 would take a tmpfs down as readily, and a directory with
 * nothing mounted is said to be just that. The kernel detaches a FUSE mount
 * without waiting for its daemon, which still holds the store (its shared
 * lock on STORE/readers, a remote cache); umount waits for the daemon to
 * exit, so that a gc or rm right after it finds the store free.
 */
#include <getopt.h>
#include <libgen.h>
#include <limits.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "cli.h"

/* What every cairn mount is in the mount table: FUSE with subtype cairn
 * (mount/session.c). */
#define CAIRN_FSTYPE "fuse.cairn"
/* The mount root's counters, with the daemon's pid (mount/fs.c). */
#define STATS_XATTR "user.cairn.stats"
/* How long umount waits for a daemon to exit after the unmount: it only
 * closes its store and its cache files. */
#define DAEMON_EXIT_MS 30000

static void umount_help(void)
{
	printf("Usage: cairn umount MOUNTPOINT\n"
	       "\n"
	       "Unmount the cairn mount at MOUNTPOINT (one made by 'cairn mount' or by\n"
	       "mount -t fuse.cairn): as root with umount(2), else with fusermount3 -u.\n"
	       "Anything else mounted there is left alone (use umount(8) for it).\n"
	       "Returns once the mount's daemon has exited and let go of its store.\n");
}

static int umount_parse(struct cli *cli, int argc, char **argv)
{
	static const struct option options[] = {
		CLI_HELP_OPTION,
		{0},
	};
	int c, r;

	while ((c = getopt_long(argc, argv, "h", options, NULL)) != -1) {
		if ((r = cli_common_option(cli, c, umount_help)) != 0)
			return r;
	}
	if (argc - optind != 1)
		return cli_usage_error(cli, "expected MOUNTPOINT");
	return 0;
}

/* Undoes mountinfo's octal escapes (\040 for a space, \134 for a
 * backslash) in place. */
static void unescape(char *s)
{
	char *out = s;

	for (; *s; s++) {
		if (s[0] == '\\' && s[1] >= '0' && s[1] <= '3' && s[2] >= '0' && s[2] <= '7' &&
		    s[3] >= '0' && s[3] <= '7') {
			*out++ = (char)((s[1] - '0') << 6 | (s[2] - '0') << 3 | (s[3] - '0'));
			s += 3;
		} else {
			*out++ = *s;
		}
	}
	*out = '\0';
}

/* The type of one mountinfo line's filesystem when it is mounted at path,
 * else NULL. The line is "ID PARENT MAJ:MIN ROOT MOUNTPOINT OPTIONS
 * [OPTIONAL...] - TYPE SOURCE SUPER-OPTIONS"; it is cut up in place. */
static const char *line_type(char *line, const char *path)
{
	char *save = NULL;
	char *field = strtok_r(line, " \n", &save);

	for (int i = 1; field && i < 5; i++)
		field = strtok_r(NULL, " \n", &save);
	if (!field)
		return NULL;
	unescape(field);
	if (strcmp(field, path) != 0)
		return NULL;
	while ((field = strtok_r(NULL, " \n", &save)) && strcmp(field, "-") != 0)
		continue;
	return field ? strtok_r(NULL, " \n", &save) : NULL;
}

/* Writes the type of the topmost filesystem mounted at path (the last of
 * the mount table's lines for it: the one umount2 would take) into fstype.
 * Returns 0, -ENOENT when nothing is mounted there, or -errno. */
static int mounted_type(const char *path, char *fstype, size_t size)
{
	FILE *table = fopen("/proc/self/mountinfo", "re");
	_cleanup_free_ char *line = NULL;
	size_t cap = 0;
	int r = -ENOENT;

	if (!table)
		return -errno;
	while (getline(&line, &cap, table) > 0) {
		const char *type = line_type(line, path);
		if (type) {
			snprintf(fstype, size, "%s", type);
			r = 0;
		}
	}
	fclose(table);
	return r;
}

/* The mount point as the mount table writes it: absolute, symlinks
 * resolved. A mount whose daemon died cannot be looked up (ENOTCONN): its
 * parent is resolved instead and its name appended. Returns 0, or -errno
 * when neither works; *ret_lookup_error is what resolving arg itself gave
 * (0: it worked). */
static int mount_point_path(const char *arg, char path[PATH_MAX], int *ret_lookup_error)
{
	char parent[PATH_MAX];

	*ret_lookup_error = 0;
	if (realpath(arg, path))
		return 0;
	int r = -errno;
	_cleanup_free_ char *dir = strdup(arg);
	_cleanup_free_ char *base = strdup(arg);
	if (!dir || !base)
		return -ENOMEM;
	const char *name = basename(base);
	if (!realpath(dirname(dir), parent) || strcmp(name, "/") == 0 || strcmp(name, ".") == 0 ||
	    strcmp(name, "..") == 0)
		return r;
	bool root = strcmp(parent, "/") == 0;
	if (snprintf(path, PATH_MAX, "%s%s%s", parent, root ? "" : "/", name) >= PATH_MAX)
		return -ENAMETOOLONG;
	*ret_lookup_error = -r;
	return 0;
}

static int unmount_fusermount(const char *path)
{
	fflush(NULL);
	pid_t pid = fork();
	if (pid == 0) {
		execlp("fusermount3", "fusermount3", "-u", "--", path, (char *)NULL);
		fprintf(stderr, "cairn: fusermount3: %s\n", strerror(errno));
		_exit(EXIT_ERROR);
	}
	int status = 0;
	if (pid < 0 || waitpid(pid, &status, 0) < 0) {
		cli_error("cannot run fusermount3: %s", strerror(errno));
		return EXIT_ERROR;
	}
	return WIFEXITED(status) && WEXITSTATUS(status) == 0 ? EXIT_OK : EXIT_ERROR;
}

/* Says why arg cannot be unmounted, if it cannot; EXIT_OK when a cairn
 * mount is at path. */
static int check_cairn_mount(const char *arg, const char *path, int lookup_error)
{
	char type[256];

	int r = mounted_type(path, type, sizeof(type));
	if (r == -ENOENT) {
		cli_error("cannot unmount %s: %s", arg,
			  lookup_error ? strerror(lookup_error) : "not mounted");
		return EXIT_ERROR;
	}
	if (r < 0) {
		cli_error("cannot unmount %s: /proc/self/mountinfo: %s", arg, strerror(-r));
		return EXIT_ERROR;
	}
	if (strcmp(type, CAIRN_FSTYPE) != 0) {
		cli_error(
			"cannot unmount %s: not a cairn mount (%s is mounted there; use umount(8) "
			"for it)",
			arg, type);
		return EXIT_ERROR;
	}
	return EXIT_OK;
}

/* The daemon serving path as a pidfd (its pid from the stats xattr), or
 * -1 when it cannot be known: a daemon that died, or one older than the
 * pid in its stats. */
static int daemon_pidfd(const char *path)
{
	char text[512];

	ssize_t n = getxattr(path, STATS_XATTR, text, sizeof(text) - 1);
	if (n <= 0)
		return -1;
	text[n] = '\0';
	const char *field = strstr(text, " pid=");
	if (!field)
		return -1;
	char *end;
	long pid = strtol(field + 5, &end, 10);
	if (pid <= 1 || (*end != '\n' && *end != ' ' && *end != '\0'))
		return -1;
	return (int)syscall(SYS_pidfd_open, (pid_t)pid, 0);
}

/* Waits for the daemon of an unmounted mount to exit; says so when it is
 * still running after DAEMON_EXIT_MS (the unmount itself is done). */
static void daemon_wait(const char *arg, int pidfd)
{
	if (pidfd < 0)
		return;
	struct pollfd p = {.fd = pidfd, .events = POLLIN};
	int r;
	while ((r = poll(&p, 1, DAEMON_EXIT_MS)) < 0 && errno == EINTR)
		;
	if (r == 0)
		fprintf(stderr,
			"cairn: %s is unmounted, but its daemon is still running after %d s\n", arg,
			DAEMON_EXIT_MS / 1000);
	close(pidfd);
}

int cmd_umount(struct cli *cli, int argc, char **argv)
{
	char path[PATH_MAX];
	int lookup_error;

	int r = umount_parse(cli, argc, argv);
	if (r)
		return r < 0 ? EXIT_OK : r;
	const char *arg = argv[optind];
	r = mount_point_path(arg, path, &lookup_error);
	if (r < 0) {
		cli_error("cannot unmount %s: %s", arg, strerror(-r));
		return EXIT_ERROR;
	}
	if ((r = check_cairn_mount(arg, path, lookup_error)) != EXIT_OK)
		return r;
	int pidfd = lookup_error ? -1 : daemon_pidfd(path);
	if (geteuid() != 0)
		r = unmount_fusermount(path);
	else if (umount2(path, UMOUNT_NOFOLLOW) == 0) /* path is resolved: no symlink */
		r = EXIT_OK;
	else {
		cli_error("cannot unmount %s: %s", arg, strerror(errno));
		r = EXIT_ERROR;
	}
	if (r == EXIT_OK)
		daemon_wait(arg, pidfd);
	else if (pidfd >= 0)
		close(pidfd);
	return r;
}
