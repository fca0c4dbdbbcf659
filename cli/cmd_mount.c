/* cmd_mount.c: `cairn mount` and the mount(8) helper (mount.cairn /
 * mount.fuse.cairn); `cairn umount` is in cmd_umount.c. mount runs in the
 * background by default and returns only once the mount is in place, or
 * with the reason it is not: the daemon reports over a pipe, and its later
 * log lines go to syslog.
 */
#include <fcntl.h>
#include <getopt.h>
#include <libgen.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <syslog.h>

#include "cli.h"
#include "index.h"
#include "mount.h"

static void mount_help(void)
{
	printf("Usage: cairn mount [-s STORE] [-o OPTIONS] [-f] [-d] [SNAPSHOT|ARCHIVE] MOUNTPOINT\n"
	       "\n"
	       "Serve the store read-only at MOUNTPOINT: one directory per snapshot, or with\n"
	       "SNAPSHOT just that snapshot. With ARCHIVE (a file that is not a snapshot's\n"
	       "name), add it to the store first (nothing to do when it is already there)\n"
	       "and mount its snapshot. Returns once the mount is ready; unmount with\n"
	       "'cairn umount', fusermount3 -u or umount.\n"
	       "\n"
	       "  -r          with ARCHIVE: add it as add -r does (archives inside it become\n"
	       "              directories, the file kept as NAME.orig)\n"
	       "  -f          stay in the foreground (log to stderr)\n"
	       "  -d          debug: foreground, with libfuse's request log\n"
	       "  -o OPTIONS  comma-separated:\n"
	       "      allow_other           let other users in (turns on default_permissions)\n"
	       "      default_permissions   the kernel checks modes and owners as recorded\n"
	       "      uid=N, gid=N, umask=M show every file with this owner / mask\n"
	       "      suid, dev             honour setuid bits / device nodes (off by default)\n"
	       "      caps                  show security.capability xattrs (hidden by default;\n"
	       "                            they take effect with suid too)\n"
	       "      cache=DIR             blob cache (default $XDG_CACHE_HOME/cairn)\n"
	       "      cache_size=SIZE       blob cache bound (default 4G)\n"
	       "      chunk_cache=SIZE      decompressed chunk cache (default 64M)\n"
	       "      passthrough_min=SIZE  smaller files are read through cairn (default 1M)\n"
	       "      background_min=SIZE   larger files are first served while their blob is\n"
	       "                            made in the background (default 16M)\n"
	       "      nopassthrough         read every file through cairn\n"
	       "      versions              NAME.versions/1..N-1: the earlier versions of entries\n"
	       "                            the archive held more than once (NAME is the last)\n"
	       "      threads=N             FUSE worker threads (default: one per core, 2-16)\n");
}

struct mount_cmd {
	struct cairn_mount_options o;
	bool foreground;
	const char *source; /* SNAPSHOT or ARCHIVE, or NULL */
	char store_path[PATH_MAX];
	char mountpoint[PATH_MAX];
	char snapshot[CAIRN_SNAPSHOT_NAME_MAX + 1];
	int ready_fd; /* the pipe to the waiting parent, or -1 */
	/* -r: archives inside ARCHIVE become directories */
	unsigned recursion_depth;
};

/* ---- logging ---- */

static void log_stderr(void *userdata, enum cairn_log_level level, const char *line)
{
	struct mount_cmd *cmd = userdata;

	if (level == CAIRN_LOG_DEBUG && !cmd->o.debug)
		return;
	fprintf(stderr, "cairn: %s\n", line);
}

static void log_syslog(void *userdata, enum cairn_log_level level, const char *line)
{
	static const int priority[] = {LOG_ERR, LOG_WARNING, LOG_INFO, LOG_DEBUG};
	struct mount_cmd *cmd = userdata;

	if (level == CAIRN_LOG_DEBUG && !cmd->o.debug)
		return;
	syslog(priority[level], "%s: %s", cmd->mountpoint, line);
}

/* ---- arguments ---- */

static int parse_args(struct cli *cli, int argc, char **argv, struct mount_cmd *cmd)
{
	static const struct option options[] = {
		CLI_COMMON_OPTIONS,
		{0},
	};
	char msg[300];
	int c, r;

	while ((c = getopt_long(argc, argv, CLI_COMMON_SHORT "o:fdr", options, NULL)) != -1) {
		switch (c) {
		case 'o':
			if (cairn_mount_options_parse(&cmd->o, optarg, msg, sizeof(msg)) < 0)
				return cli_usage_error(cli, "%s", msg);
			break;
		case 'r':
			cmd->recursion_depth = CAIRN_IMPORT_RECURSION_DEPTH;
			break;
		case 'd':
			cmd->o.debug = true;
			/* fall through */
		case 'f':
			cmd->foreground = true;
			break;
		default:
			if ((r = cli_common_option(cli, c, mount_help)) != 0)
				return r;
		}
	}
	if (argc - optind < 1 || argc - optind > 2)
		return cli_usage_error(cli, "expected [SNAPSHOT|ARCHIVE] MOUNTPOINT");
	cmd->source = argc - optind == 2 ? argv[optind] : NULL;
	if (!realpath(argv[argc - 1], cmd->mountpoint)) {
		cli_error("mount point %s: %s", argv[argc - 1], strerror(errno));
		return EXIT_ERROR;
	}
	return 0;
}

/* Whether the store at path has a snapshot name: 1, else 0 (also when
 * there is no store there yet). */
static int snapshot_exists(const char *path, const char *name)
{
	_cleanup_(cairn_store_freep) struct cairn_store *store = cairn_store_new();

	if (!store || cairn_store_open(store, path) < 0)
		return 0;
	return cairn_snapshot_exists(store, name);
}

/* SNAPSHOT when the store has one by that name, else ARCHIVE when it is a
 * file: add it (a no-op when already there) and serve its snapshot. */
static int resolve_source(struct mount_cmd *cmd)
{
	char why[200];
	struct stat st;

	if (snapshot_exists(cmd->store_path, cmd->source) == 1 || stat(cmd->source, &st) < 0 ||
	    S_ISDIR(st.st_mode)) {
		snprintf(cmd->snapshot, sizeof(cmd->snapshot), "%s", cmd->source);
		return 0;
	}
	if (cairn_snapshot_default_name(cmd->source, cmd->snapshot, sizeof(cmd->snapshot), why,
					sizeof(why)) < 0) {
		cli_error("%s: %s", cmd->source, why);
		return EXIT_ERROR;
	}
	struct cli add_cli = {.store_path = cmd->store_path, .command = "add"};
	struct cli_add_options add = {.name = cmd->snapshot, .for_mount = true};
	add.recursion_depth = cmd->recursion_depth;
	return cli_add(&add_cli, &add, &cmd->source, 1);
}

/* ---- running ---- */

static void on_ready(void *userdata)
{
	struct mount_cmd *cmd = userdata;

	if (cmd->ready_fd < 0)
		return;
	if (write(cmd->ready_fd, "R", 1) < 0) {
		/* the parent is gone: nothing to tell */
	}
	close(cmd->ready_fd);
	cmd->ready_fd = -1;
	/* From now on the daemon speaks only to syslog. */
	int null = open("/dev/null", O_RDWR | O_CLOEXEC);
	if (null >= 0) {
		dup2(null, STDOUT_FILENO);
		dup2(null, STDERR_FILENO);
		close(null);
	}
	cmd->o.log = log_syslog;
}

static int run_mount(struct mount_cmd *cmd)
{
	char msg[600] = "";

	cmd->o.store_path = cmd->store_path;
	cmd->o.mountpoint = cmd->mountpoint;
	cmd->o.snapshot = cmd->snapshot[0] ? cmd->snapshot : NULL;
	cmd->o.log = log_stderr;
	cmd->o.log_userdata = cmd;
	int r = cairn_mount_run(&cmd->o, on_ready, cmd, msg, sizeof(msg));
	if (r < 0 && cmd->ready_fd >= 0) {
		char line[700];
		int n = snprintf(line, sizeof(line), "E%s", msg);
		if (write(cmd->ready_fd, line, (size_t)n) < 0) {
			/* the parent is gone */
		}
	} else if (r < 0) {
		cli_error("%s", msg);
	}
	return r < 0 ? EXIT_ERROR : EXIT_OK;
}

/* The parent waits for the daemon's word: ready, or why not. */
static int wait_ready(pid_t pid, int fd)
{
	char buf[700];
	ssize_t n, len = 0;

	while (len < (ssize_t)sizeof(buf) - 1 &&
	       (n = read(fd, buf + len, sizeof(buf) - 1 - (size_t)len)) != 0) {
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			break;
		len += n;
	}
	close(fd);
	buf[len] = '\0';
	if (len > 0 && buf[0] == 'R')
		return EXIT_OK;
	waitpid(pid, NULL, 0);
	cli_error("%s", len > 1 ? buf + 1 : "the mount process died before the mount was ready");
	return EXIT_ERROR;
}

static int daemonize(struct mount_cmd *cmd)
{
	int pipefd[2];

	if (pipe2(pipefd, O_CLOEXEC) < 0) {
		cli_error("pipe: %s", strerror(errno));
		return EXIT_ERROR;
	}
	fflush(NULL);
	pid_t pid = fork();
	if (pid < 0) {
		cli_error("fork: %s", strerror(errno));
		return EXIT_ERROR;
	}
	if (pid > 0) {
		close(pipefd[1]);
		return wait_ready(pid, pipefd[0]);
	}
	close(pipefd[0]);
	cmd->ready_fd = pipefd[1];
	setsid();
	if (chdir("/") < 0) {
		/* paths are absolute already */
	}
	int null = open("/dev/null", O_RDONLY | O_CLOEXEC);
	if (null >= 0) {
		dup2(null, STDIN_FILENO);
		close(null);
	}
	openlog("cairn", LOG_PID, LOG_DAEMON);
	/* exit, not _exit: stdio was flushed before the fork, and exit
	 * handlers (a sanitizer build's leak check) should run at unmount. */
	exit(run_mount(cmd));
}

/* The daemon runs in /: a relative cache directory is taken from here. */
static int absolute_cache_dir(struct cairn_mount_options *o)
{
	char cwd[PATH_MAX], joined[sizeof(o->cache_dir)];

	if (!o->cache_dir[0] || o->cache_dir[0] == '/')
		return 0;
	if (!getcwd(cwd, sizeof(cwd)) ||
	    snprintf(joined, sizeof(joined), "%s/%s", cwd, o->cache_dir) >= (int)sizeof(joined)) {
		cli_error("cache=%s: cannot make it an absolute path", o->cache_dir);
		return EXIT_ERROR;
	}
	memcpy(o->cache_dir, joined, sizeof(joined));
	return 0;
}

static int mount_start(struct cli *cli, struct mount_cmd *cmd)
{
	_cleanup_free_ char *store = cli_store_path(cli);

	if (!store || absolute_cache_dir(&cmd->o) != 0)
		return EXIT_ERROR;
	if (!realpath(store, cmd->store_path)) {
		/* a store that does not exist yet: the one-step form creates it */
		snprintf(cmd->store_path, sizeof(cmd->store_path), "%s", store);
	}
	if (cmd->source) {
		int r = resolve_source(cmd);
		if (r != 0)
			return r;
		if (!realpath(store, cmd->store_path)) {
			cli_error("%s: %s", store, strerror(errno));
			return EXIT_ERROR;
		}
	}
	return cmd->foreground ? run_mount(cmd) : daemonize(cmd);
}

/* fsname: the source the mount table shows; NULL: SNAPSHOT@STORE. */
static int mount_main(struct cli *cli, int argc, char **argv, const char *fsname)
{
	struct mount_cmd cmd = {.ready_fd = -1};

	cairn_mount_options_default(&cmd.o);
	cmd.o.fsname = fsname;
	int r = parse_args(cli, argc, argv, &cmd);
	if (r)
		return r < 0 ? EXIT_OK : r;
	return mount_start(cli, &cmd);
}

int cmd_mount(struct cli *cli, int argc, char **argv)
{
	return mount_main(cli, argc, argv, NULL);
}

/* ---- the mount(8) helper ----
 *
 * mount -t fuse.cairn SOURCE DIR -o OPTS runs mount.fuse.cairn (or
 * mount.cairn for -t cairn) SOURCE DIR -o OPTS. SOURCE is SNAPSHOT@STORE for
 * one snapshot, or STORE (or @STORE) for the whole store. The mount table
 * shows SOURCE as given, as mount(8) expects: `mount -a` then skips an fstab
 * line that is mounted already, and `umount SOURCE` finds the mount. */

int cmd_mount_helper(int argc, char **argv)
{
	struct cli cli = {.command = "mount"};
	char *args[8];
	int n = 0;

	if (argc < 3) {
		fprintf(stderr, "Usage: %s SNAPSHOT@STORE|STORE MOUNTPOINT [-o OPTIONS]\n",
			basename(argv[0]));
		return EXIT_USAGE;
	}
	_cleanup_free_ char *source = strdup(argv[1]);
	if (!source)
		return EXIT_ERROR;
	char *at = strrchr(source, '@');
	/* A snapshot name has no '/': a SOURCE of SCHEME://... (user@host
	 * included) names a store, as does what follows the '@'. */
	if (cli_is_url(argv[1]) || (at && cli_is_url(at + 1))) {
		cli_error("store %s: cairn keeps stores in local directories; a URL cannot be used",
			  cli_is_url(argv[1]) ? argv[1] : at + 1);
		return EXIT_ERROR;
	}
	args[n++] = "cairn mount"; /* getopt's messages name it */
	if (at) {
		*at = '\0';
		cli.store_path = at + 1;
		if (*source)
			args[n++] = source;
	} else {
		cli.store_path = source;
	}
	args[n++] = argv[2];
	/* mount(8) passes -o OPTS and flags like -n, -v, -s: keep -o only. */
	for (int i = 3; i + 1 < argc; i++) {
		if (strcmp(argv[i], "-o") == 0 && n < 6) {
			args[n++] = "-o";
			args[n++] = argv[++i];
		}
	}
	args[n] = NULL;
	optind = 0;
	return mount_main(&cli, n, args, argv[1]);
}
