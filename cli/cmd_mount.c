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
	printf("Usage: cairn mount [-s STORE] [OPTIONS] [SNAPSHOT|ARCHIVE] MOUNTPOINT\n"
	       "       cairn mount [-s STORE] [OPTIONS] SNAPSHOT|ARCHIVE\n"
	       "       cairn mount --temp [OPTIONS] ARCHIVE [MOUNTPOINT]\n"
	       "       cairn mount [-s STORE] [OPTIONS] SOURCE[:PATH]... MOUNTPOINT\n"
	       "\n"
	       "Serve the store read-only at MOUNTPOINT: one directory per snapshot, or with\n"
	       "SNAPSHOT just that snapshot. With ARCHIVE (a file that is not a snapshot's\n"
	       "name), add it to the store first (nothing to do when it is already there)\n"
	       "and mount its snapshot, saying which on stderr. Returns once the mount is\n"
	       "ready; unmount with 'cairn umount', fusermount3 -u or umount.\n"
	       "\n"
	       "One argument X: a directory is the MOUNTPOINT of the whole store; else X is\n"
	       "a SNAPSHOT (if the store has one of that name) or an ARCHIVE, and a mount\n"
	       "point is made for it: next to the archive, named after it without its\n"
	       "suffixes (foo.tar.gz -> foo; 'foo (1)', 'foo (2)' where taken), or in the\n"
	       "current directory named after the snapshot. It is removed after the\n"
	       "unmount, however that happens, if it is still the empty directory made.\n"
	       "\n"
	       "Several SOURCEs (snapshots or archives) are merged into one tree: the later\n"
	       "one wins where paths collide, directories are merged (-o nomerge: one\n"
	       "directory per source). SOURCE:PATH serves that directory of it as its root.\n"
	       "\n"
	       "  -n, --name NAME  the archive's snapshot name (default: its file name\n"
	       "                   without suffixes); X is then always an ARCHIVE\n"
	       "      --replace    replace a snapshot of that name from other archive bytes\n"
	       "      --temp       add ARCHIVE to a throwaway store and blob cache in\n"
	       "                   $TMPDIR (else /var/tmp), removed at unmount, and by the\n"
	       "                   next --temp run if the daemon died; not with -s\n"
	       "  -r               with ARCHIVE: add it as add -r does (archives inside it\n"
	       "                   become directories, the file kept as NAME.orig)\n"
	       "  -f               stay in the foreground (log to stderr)\n"
	       "  -d               debug: foreground, with libfuse's request log\n"
	       "  -o OPTIONS       comma-separated:\n");
	printf("      allow_other           let other users in (turns on default_permissions)\n"
	       "      default_permissions   the kernel checks modes and owners as recorded\n"
	       "      uid=N, gid=N, umask=M show every file with this owner / mask\n"
	       "      dmask=M, fmask=M      mask directories / everything else (after umask)\n"
	       "      mapowners             owners by the recorded user and group names,\n"
	       "                            through the local passwd and group databases\n"
	       "      uidmap=FROM:TO[:N][/...], gidmap=...  show recorded ids FROM..FROM+N-1\n"
	       "                            as TO..TO+N-1 ('/' between ranges)\n"
	       "      suid, dev             honour setuid bits / device nodes (off by default)\n"
	       "      caps                  show security.capability xattrs (hidden by default;\n"
	       "                            they take effect with suid too)\n"
	       "      cache=DIR             blob cache (default $XDG_CACHE_HOME/cairn; with\n"
	       "                            --temp, in its directory)\n"
	       "      cache_size=SIZE       blob cache bound (default 4G)\n"
	       "      chunk_cache=SIZE      decompressed chunk cache (default 16M)\n"
	       "      remote_cache=SIZE     an s3:// store's pack bytes kept on this host\n"
	       "                            (default $CAIRN_REMOTE_CACHE_MAX, else 10%% of\n"
	       "                            the cache's filesystem)\n"
	       "      passthrough_min=SIZE  smaller files are read through cairn (default 1M)\n"
	       "      background_min=SIZE   larger files are first served while their blob is\n"
	       "                            made in the background (default 16M)\n"
	       "      nopassthrough         read every file through cairn\n"
	       "      versions              NAME.versions/1..N-1: the earlier versions of entries\n"
	       "                            the archive held more than once (NAME is the last)\n"
	       "      readdirplus=WHEN      listings carry attributes: always (default),\n"
	       "                            auto (where the kernel expects stats), never\n"
	       "      io_uring, noio_uring  requests over FUSE io_uring (as root this turns the\n"
	       "                            kernel's switch on) / over /dev/fuse (default:\n"
	       "                            io_uring where libfuse and the kernel allow it)\n"
	       "      nomerge               several sources: a directory for each\n"
	       "      threads=N             FUSE worker threads (default: one per core, 2-16)\n"
	       "      refresh=SECONDS       the whole store: look for snapshots added and\n"
	       "                            removed this often (0: never; default 60 on\n"
	       "                            s3://, one GET of cairn-head; 5 locally)\n"
	       "      encoding=CHARSET      as --encoding, when ARCHIVE is added\n"
	       "\n"
	       "When ARCHIVE is added, mount takes add's --strip-components N, --encoding\n"
	       "CHARSET and --password-file FILE (see cairn add --help).\n");
}

#include "mount_cmd.h"

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

enum { OPT_REPLACE = 256, OPT_TEMP };

/* Whether a lone argument is the mount point of the whole store, as it
 * has always been for a directory; else it is a SNAPSHOT or an ARCHIVE to
 * mount on a mount point made for it. */
static bool lone_arg_is_mountpoint(const struct mount_cmd *cmd, const char *arg)
{
	struct stat st;

	if (cmd->helper)
		return true;
	if (cmd->name || cmd->replace || cmd->temp)
		return false;
	return stat(arg, &st) == 0 && S_ISDIR(st.st_mode);
}

static int parse_operands(struct cli *cli, int argc, char **argv, struct mount_cmd *cmd)
{
	int n = argc - optind;

	if (n < 1 || n > MOUNT_SOURCES_MAX + 1)
		return cli_usage_error(
			cli, "expected [SOURCE[:PATH]...] [MOUNTPOINT] (at most %d sources)",
			MOUNT_SOURCES_MAX);
	cmd->source_args = argv + optind;
	if (n >= 2) {
		cmd->source_arg_count = (size_t)n - 1;
		cmd->target = argv[argc - 1];
	} else if (lone_arg_is_mountpoint(cmd, argv[optind])) {
		cmd->target = argv[optind];
	} else {
		cmd->source_arg_count = 1;
	}
	if (cmd->source_arg_count > 1 && (cmd->name || cmd->replace))
		return cli_usage_error(cli, "--name and --replace go with one ARCHIVE");
	if (cmd->temp && cli->store_path)
		return cli_usage_error(cli, "--temp uses a store of its own; -s cannot go with it");
	return 0;
}

static int parse_args(struct cli *cli, int argc, char **argv, struct mount_cmd *cmd)
{
	static const struct option options[] = {
		CLI_COMMON_OPTIONS,
		{"name", required_argument, NULL, 'n'},
		{"replace", no_argument, NULL, OPT_REPLACE},
		{"temp", no_argument, NULL, OPT_TEMP},
		CLI_ADD_INPUT_OPTIONS,
		{0},
	};
	char msg[300];
	int c, r;

	while ((c = getopt_long(argc, argv, CLI_COMMON_SHORT "o:fdn:r", options, NULL)) != -1) {
		switch (c) {
		case 'o':
			cli_take_encoding_option(optarg, cmd->charset, sizeof(cmd->charset));
			if (cmd->charset[0])
				cmd->add.charset = cmd->charset;
			if (cairn_mount_options_parse(&cmd->o, optarg, msg, sizeof(msg)) < 0)
				return cli_usage_error(cli, "%s", msg);
			break;
		case 'r':
			cmd->add.recursion_depth = CAIRN_IMPORT_RECURSION_DEPTH;
			break;
		case 'd':
			cmd->o.debug = true;
			/* fall through */
		case 'f':
			cmd->foreground = true;
			break;
		case 'n':
			cmd->name = optarg;
			break;
		case OPT_REPLACE:
			cmd->replace = true;
			break;
		case OPT_TEMP:
			cmd->temp = true;
			break;
		default:
			if ((r = cli_add_input_option(cli, c, optarg, &cmd->add)) < 0)
				r = cli_common_option(cli, c, mount_help);
			if (r != 0)
				return r;
		}
	}
	return parse_operands(cli, argc, argv, cmd);
}

/* ---- running ---- */

static void on_ready(void *userdata)
{
	struct mount_cmd *cmd = userdata;

	if (cmd->ready_fd < 0) {
		mount_say_done(cmd); /* in the foreground: no parent to say it */
		return;
	}
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
	cmd->o.sources = cmd->sources;
	cmd->o.source_count = cmd->source_count;
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
	mount_remove_made(cmd);
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
		mount_remove_made(cmd);
		return EXIT_ERROR;
	}
	fflush(NULL);
	pid_t pid = fork();
	if (pid < 0) {
		cli_error("fork: %s", strerror(errno));
		mount_remove_made(cmd);
		return EXIT_ERROR;
	}
	if (pid > 0) {
		/* What was made is the daemon's now: it removes it at the end. */
		close(pipefd[1]);
		int r = wait_ready(pid, pipefd[0]);
		if (r == EXIT_OK)
			mount_say_done(cmd);
		return r;
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

/* The store named by -s, $CAIRN_STORE or the default, resolved where it
 * exists (the one-step form creates a missing one). */
static int resolve_store(struct cli *cli, struct mount_cmd *cmd)
{
	_cleanup_free_ char *store = cli_store_path(cli);

	if (!store)
		return EXIT_ERROR;
	if (!realpath(store, cmd->store_path))
		snprintf(cmd->store_path, sizeof(cmd->store_path), "%s", store);
	return 0;
}

/* Cheap checks first (the mount point, the source, the name of a mount
 * point to make), then the add, then the mount point is made. */
static int mount_prepare(struct cli *cli, struct mount_cmd *cmd)
{
	char dir[PATH_MAX], stem[256], store[PATH_MAX];
	int r;

	if (absolute_cache_dir(&cmd->o) != 0 || (!cmd->temp && resolve_store(cli, cmd) != 0))
		return EXIT_ERROR;
	if (cmd->target && !realpath(cmd->target, cmd->mountpoint)) {
		cli_error("mount point %s: %s", cmd->target, strerror(errno));
		return EXIT_ERROR;
	}
	if (cmd->source_arg_count && (r = mount_classify_sources(cmd)) != 0)
		return r;
	if (!cmd->target &&
	    (r = mount_plan_mountpoint(cmd, dir, sizeof(dir), stem, sizeof(stem))) != 0)
		return r;
	if (cmd->temp && (r = mount_make_temp_store(cmd)) != 0)
		return r;
	if (cmd->source_arg_count && (r = mount_resolve_sources(cmd)) != 0)
		return r;
	if (cmd->source && !cairn_store_path_is_remote(cmd->store_path)) {
		if (!realpath(cmd->store_path, store)) {
			cli_error("%s: %s", cmd->store_path, strerror(errno));
			return EXIT_ERROR;
		}
		memcpy(cmd->store_path, store, sizeof(store));
	}
	if (!cmd->target)
		return cli_mountpoint_make(dir, stem, &cmd->made, cmd->mountpoint, cmd->shown);
	return 0;
}

static int mount_start(struct cli *cli, struct mount_cmd *cmd)
{
	int r = mount_prepare(cli, cmd);
	if (r) {
		mount_remove_made(cmd);
		return r;
	}
	return cmd->foreground ? run_mount(cmd) : daemonize(cmd);
}

/* fsname: the source the mount table shows; NULL: SNAPSHOT@STORE. */
static int mount_main(struct cli *cli, int argc, char **argv, const char *fsname)
{
	struct mount_cmd cmd = {
		.ready_fd = -1, .helper = fsname, .made.parent_fd = -1, .tmp.lock_fd = -1};

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
	if ((cli_is_url(argv[1]) && !cairn_store_path_is_remote(argv[1])) ||
	    (at && cli_is_url(at + 1) && !cairn_store_path_is_remote(at + 1))) {
		cli_error("store %s: cairn keeps stores in local directories or at s3:// urls; "
			  "another URL cannot be used",
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
