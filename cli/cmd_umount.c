/* cmd_umount.c: `cairn umount`, which unmounts cairn mounts and nothing
 * else. The mount table (/proc/self/mountinfo) says what is mounted at the
 * directory: a filesystem of cairn's type is unmounted (as root with
 * umount2, else with fusermount3 -u); anything else is refused, since
 * root's umount2 would take a tmpfs down as readily, and a directory with
 * nothing mounted is said to be just that.
 */
#include <getopt.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/wait.h>

#include "cli.h"

/* What every cairn mount is in the mount table: FUSE with subtype cairn
 * (mount/session.c). */
#define CAIRN_FSTYPE "fuse.cairn"

static void umount_help(void)
{
	printf("Usage: cairn umount MOUNTPOINT\n"
	       "\n"
	       "Unmount the cairn mount at MOUNTPOINT (one made by 'cairn mount' or by\n"
	       "mount -t fuse.cairn): as root with umount(2), else with fusermount3 -u.\n"
	       "Anything else mounted there is left alone (use umount(8) for it).\n");
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
	if (geteuid() != 0)
		return unmount_fusermount(path);
	/* path is resolved: a symlink put there since must not redirect us. */
	if (umount2(path, UMOUNT_NOFOLLOW) == 0)
		return EXIT_OK;
	cli_error("cannot unmount %s: %s", arg, strerror(errno));
	return EXIT_ERROR;
}
