/* cmd_extract.c: `cairn extract`: restores a snapshot (or a subtree of one)
 * into a directory as `bsdtar -x` would: data, hard links, symlinks,
 * devices and fifos, then owner (as root), mode, xattrs and mtime, with
 * directories finished after their contents. Everything is created with
 * *at() calls relative to directory fds opened with O_NOFOLLOW, one
 * component at a time, and names come from the index (no '/', no ".."), so
 * nothing is ever written outside DEST, whatever the snapshot holds.
 */
#include <fcntl.h>
#include <getopt.h>
#include <grp.h>
#include <pwd.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/xattr.h>

#include "cli.h"

struct link_slot {
	uint64_t ino; /* 0: empty */
	char *path;   /* first extracted name, relative to DEST */
};

struct extract {
	struct cli_object obj;
	struct cairn_content_reader *reader;
	int dest_fd;
	bool root;
	mode_t umask;
	unsigned errors;
	struct link_slot *links; /* inodes with several names */
	size_t link_count, link_cap;
};

static void extract_help(void)
{
	printf("Usage: cairn extract [-s STORE] SNAPSHOT[:PATH] DEST\n"
	       "\n"
	       "Restore SNAPSHOT, or its directory PATH, into the directory DEST (created if\n"
	       "missing), as bsdtar -x would: contents, hard links, symlinks, devices and\n"
	       "fifos, modes, mtimes and xattrs; owners too when run as root. A PATH that is\n"
	       "not a directory is written as DEST/NAME. Existing files are replaced; nothing\n"
	       "is written outside DEST and no symlink is followed. Missing parents of DEST\n"
	       "are made 0755 (less the umask); the archive's entry for its top directory\n"
	       "(\"./\"), if it had one, gives DEST its mode, owner and mtime.\n");
}

static void entry_error(struct extract *x, const char *path, const char *fmt, ...) _printf_(3, 4);
static void entry_error(struct extract *x, const char *path, const char *fmt, ...)
{
	_cleanup_free_ char *msg = NULL;
	va_list ap;

	va_start(ap, fmt);
	int r = vasprintf(&msg, fmt, ap);
	va_end(ap);
	if (r < 0)
		msg = NULL;
	fputs("cairn: extract: ", stderr);
	cli_put_escaped(stderr, path);
	fputs(": ", stderr);
	cli_put_escaped(stderr, r < 0 ? "out of memory" : msg);
	fputc('\n', stderr);
	x->errors++;
}

/* ---- hard links ---- */

static struct link_slot *link_find(struct extract *x, uint64_t ino)
{
	if (x->link_cap == 0)
		return NULL;
	size_t mask = x->link_cap - 1;
	for (size_t i = (ino * 0x9e3779b97f4a7c15ull) & mask;; i = (i + 1) & mask)
		if (x->links[i].ino == ino || x->links[i].ino == 0)
			return &x->links[i];
}

static int link_remember(struct extract *x, uint64_t ino, const char *path)
{
	if ((x->link_count + 1) * 2 > x->link_cap) {
		struct link_slot *old = x->links;
		size_t old_cap = x->link_cap;
		x->link_cap = old_cap ? old_cap * 2 : 64;
		x->links = calloc(x->link_cap, sizeof(*x->links));
		if (!x->links)
			return -ENOMEM;
		for (size_t i = 0; i < old_cap; i++)
			if (old[i].ino)
				*link_find(x, old[i].ino) = old[i];
		free(old);
	}
	struct link_slot *slot = link_find(x, ino);
	slot->path = strdup(path);
	if (!slot->path)
		return -ENOMEM;
	slot->ino = ino;
	x->link_count++;
	return 0;
}

/* Opens the directory part of path (relative to DEST) one component at a
 * time, never through a symlink; *ret_name is its last component. */
static int open_parent(struct extract *x, char *path, const char **ret_name)
{
	char *slash = strrchr(path, '/');
	int fd = fcntl(x->dest_fd, F_DUPFD_CLOEXEC, 3);

	*ret_name = slash ? slash + 1 : path;
	if (!slash || fd < 0)
		return fd;
	*slash = '\0';
	char *save = NULL;
	for (char *c = strtok_r(path, "/", &save); c && fd >= 0; c = strtok_r(NULL, "/", &save)) {
		int next = openat(fd, c, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		close(fd);
		fd = next;
	}
	return fd;
}

/* ---- making room and metadata ---- */

/* Removes what is at name unless it is a directory and want_dir. Returns 1
 * when a directory was kept, 0 when name is free, or -errno. */
static int make_room(int dirfd, const char *name, bool want_dir)
{
	struct stat st;

	if (fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
		return errno == ENOENT ? 0 : -errno;
	if (S_ISDIR(st.st_mode) && want_dir)
		return 1;
	if (unlinkat(dirfd, name, S_ISDIR(st.st_mode) ? AT_REMOVEDIR : 0) < 0)
		return -errno;
	return 0;
}

static uid_t owner_uid(const struct cairn_index_stat *st)
{
	struct passwd pw, *found = NULL;
	char buf[4096];

	if (st->user && getpwnam_r(st->user, &pw, buf, sizeof(buf), &found) == 0 && found)
		return found->pw_uid;
	return st->uid;
}

static gid_t owner_gid(const struct cairn_index_stat *st)
{
	struct group gr, *found = NULL;
	char buf[4096];

	if (st->group && getgrnam_r(st->group, &gr, buf, sizeof(buf), &found) == 0 && found)
		return found->gr_gid;
	return st->gid;
}

/* Where metadata goes: an open fd, or (dirfd, name) for what cannot be
 * opened safely (symlinks, devices, fifos). */
struct node {
	int fd;
	int dirfd;
	const char *name;
	const char *path; /* for messages */
	uint64_t ino;
};

static int node_xattr(const struct node *n, const struct cairn_index_xattr *xa)
{
	char proc[64 + 256];

	if (n->fd >= 0)
		return fsetxattr(n->fd, xa->name, xa->value, xa->value_size, 0);
	snprintf(proc, sizeof(proc), "/proc/self/fd/%d/%s", n->dirfd, n->name);
	return lsetxattr(proc, xa->name, xa->value, xa->value_size, 0);
}

static void apply_xattrs(struct extract *x, const struct node *n)
{
	struct cairn_index_xattr xa;

	for (size_t pos = 0;; pos++) {
		int r = cairn_index_xattr(x->obj.idx, n->ino, pos, &xa);
		if (r < 0)
			entry_error(x, n->path, "%s", cairn_index_error(x->obj.idx));
		if (r <= 0)
			return;
		if (node_xattr(n, &xa) < 0)
			entry_error(x, n->path, "setting xattr %s: %s", xa.name, strerror(errno));
	}
}

static void apply_metadata(struct extract *x, const struct node *n,
			   const struct cairn_index_stat *st)
{
	bool link = S_ISLNK(st->mode);
	mode_t mode = st->mode & 07777;
	struct timespec times[2] = {{.tv_nsec = UTIME_OMIT},
				    {.tv_sec = (time_t)st->mtime_sec, .tv_nsec = st->mtime_nsec}};
	int r;

	if (x->root) {
		uid_t uid = owner_uid(st);
		gid_t gid = owner_gid(st);
		r = n->fd >= 0 ? fchown(n->fd, uid, gid)
			       : fchownat(n->dirfd, n->name, uid, gid, AT_SYMLINK_NOFOLLOW);
		if (r < 0)
			entry_error(x, n->path, "chown: %s", strerror(errno));
	} else {
		mode &= ~x->umask & 01777;
	}
	if (!link) {
		r = n->fd >= 0 ? fchmod(n->fd, mode) : fchmodat(n->dirfd, n->name, mode, 0);
		if (r < 0)
			entry_error(x, n->path, "chmod: %s", strerror(errno));
	}
	apply_xattrs(x, n);
	r = n->fd >= 0 ? futimens(n->fd, times)
		       : utimensat(n->dirfd, n->name, times, AT_SYMLINK_NOFOLLOW);
	if (r < 0)
		entry_error(x, n->path, "setting times: %s", strerror(errno));
}

/* ---- entries ---- */

static int write_content(struct extract *x, int fd, uint64_t ino, const char *path)
{
	struct cairn_index_file file;
	struct cairn_content_run cr;

	int r = cairn_content_open(x->reader, x->obj.idx, ino, &file);
	if (r >= 0) /* best effort, as in cat */
		(void)cairn_content_prefetch(x->reader);
	while (r >= 0 && (r = cairn_content_next(x->reader, &cr)) > 0) {
		if (cr.data &&
		    (r = cairn_pwrite_all(fd, cr.data, (size_t)cr.run.size, cr.run.offset)) < 0) {
			entry_error(x, path, "writing: %s", strerror(-r));
			return r;
		}
	}
	if (r < 0) {
		entry_error(x, path, "%s", cairn_content_error(x->reader));
		return r;
	}
	if (ftruncate(fd, (off_t)file.size) < 0) {
		entry_error(x, path, "truncating: %s", strerror(errno));
		return -errno;
	}
	return 0;
}

static void extract_file(struct extract *x, struct node *n, const struct cairn_index_stat *st)
{
	int r = make_room(n->dirfd, n->name, false);
	if (r < 0) {
		entry_error(x, n->path, "cannot replace what is there: %s", strerror(-r));
		return;
	}
	n->fd = openat(n->dirfd, n->name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
		       0600);
	if (n->fd < 0) {
		entry_error(x, n->path, "%s", strerror(errno));
		return;
	}
	if (write_content(x, n->fd, n->ino, n->path) == 0)
		apply_metadata(x, n, st);
	close(n->fd);
	n->fd = -1;
}

static int make_special(struct extract *x, const struct node *n, const struct cairn_index_stat *st)
{
	const char *target;
	size_t len;

	if (S_ISLNK(st->mode)) {
		int r = cairn_index_readlink(x->obj.idx, n->ino, &target, &len);
		if (r < 0)
			return r;
		return symlinkat(target, n->dirfd, n->name) < 0 ? -errno : 0;
	}
	if (S_ISSOCK(st->mode))
		return -EOPNOTSUPP;
	mode_t type = st->mode & S_IFMT;
	return mknodat(n->dirfd, n->name, type | 0600, (dev_t)st->rdev) < 0 ? -errno : 0;
}

static void extract_special(struct extract *x, struct node *n, const struct cairn_index_stat *st)
{
	int r = make_room(n->dirfd, n->name, false);
	if (r == 0)
		r = make_special(x, n, st);
	if (r == -EBADMSG)
		entry_error(x, n->path, "%s", cairn_index_error(x->obj.idx));
	else if (r == -EOPNOTSUPP)
		entry_error(x, n->path, "sockets cannot be restored");
	else if (r < 0)
		entry_error(x, n->path, "%s", strerror(-r));
	else
		apply_metadata(x, n, st);
}

static bool extract_link(struct extract *x, struct node *n)
{
	struct link_slot *slot = link_find(x, n->ino);
	const char *name;

	if (!slot || slot->ino == 0) {
		if (link_remember(x, n->ino, n->path) < 0)
			entry_error(x, n->path, "out of memory");
		return false;
	}
	_cleanup_free_ char *first = strdup(slot->path);
	if (!first) {
		entry_error(x, n->path, "out of memory");
		return true;
	}
	_cleanup_close_ int fd = open_parent(x, first, &name);
	int r = fd < 0 ? -errno : make_room(n->dirfd, n->name, false);
	if (r == 0 && linkat(fd, name, n->dirfd, n->name, 0) < 0)
		r = -errno;
	if (r < 0)
		entry_error(x, n->path, "hard link to %s: %s", slot->path, strerror(-r));
	return true;
}

static void extract_children(struct extract *x, int dirfd, const char *prefix, uint64_t dir);

static void extract_dir(struct extract *x, struct node *n, const struct cairn_index_stat *st)
{
	int r = make_room(n->dirfd, n->name, true);
	if (r == 0 && mkdirat(n->dirfd, n->name, 0700) < 0)
		r = -errno;
	if (r >= 0) {
		n->fd = openat(n->dirfd, n->name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		r = n->fd < 0 ? -errno : 0;
	}
	if (r < 0) {
		entry_error(x, n->path, "%s", strerror(-r));
		return;
	}
	extract_children(x, n->fd, n->path, n->ino);
	apply_metadata(x, n, st);
	close(n->fd);
	n->fd = -1;
}

static void extract_entry(struct extract *x, int dirfd, const char *name, const char *path,
			  uint64_t ino)
{
	struct cairn_index_stat st;
	struct node n = {.fd = -1, .dirfd = dirfd, .name = name, .path = path, .ino = ino};

	int r = cairn_index_getattr(x->obj.idx, ino, &st);
	if (r < 0) {
		entry_error(x, path, "%s", cairn_index_error(x->obj.idx));
		return;
	}
	if (!S_ISDIR(st.mode) && st.nlink > 1 && extract_link(x, &n))
		return;
	if (S_ISDIR(st.mode))
		extract_dir(x, &n, &st);
	else if (S_ISREG(st.mode))
		extract_file(x, &n, &st);
	else
		extract_special(x, &n, &st);
}

static void extract_children(struct extract *x, int dirfd, const char *prefix, uint64_t dir)
{
	struct cairn_index_dirent d;

	for (uint64_t pos = 0;; pos++) {
		int r = cairn_index_readdir(x->obj.idx, dir, pos, &d);
		if (r < 0)
			entry_error(x, *prefix ? prefix : ".", "%s", cairn_index_error(x->obj.idx));
		if (r <= 0)
			return;
		size_t size = strlen(prefix) + d.name_len + 2;
		char *path = malloc(size);
		if (!path) {
			entry_error(x, prefix, "out of memory");
			return;
		}
		snprintf(path, size, "%s%s%s", prefix, *prefix ? "/" : "", d.name);
		extract_entry(x, dirfd, d.name, path, d.ino);
		free(path);
	}
}

/* ---- the command ---- */

/* Makes DEST (and its parents) unless it is there, and opens it. The first
 * call that failed is the one reported: a mkdir refused for want of
 * permission leaves an open that fails with ENOENT, which would hide why. */
static int open_dest(const char *dest)
{
	int r = mkdir(dest, 0755) < 0 ? -errno : 0;
	if (r == -ENOENT) {
		r = cairn_mkdir_p(dest, 0755, true);
		if (r < 0) {
			cli_error("cannot create the parents of %s: %s", dest, strerror(-r));
			return r;
		}
		r = mkdir(dest, 0755) < 0 ? -errno : 0;
	}
	if (r < 0 && r != -EEXIST) {
		cli_error("cannot create %s: %s", dest, strerror(-r));
		return r;
	}
	int fd = open(dest, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		cli_error("%s: %s", dest, strerror(errno));
	return fd;
}

static void raise_fd_limit(void)
{
	struct rlimit limit;

	/* One fd per directory level is open while extracting. */
	if (getrlimit(RLIMIT_NOFILE, &limit) == 0 && limit.rlim_cur < limit.rlim_max) {
		limit.rlim_cur = limit.rlim_max;
		setrlimit(RLIMIT_NOFILE, &limit);
	}
}

/* The archive's own entry for its root ("./"), when it had one, is DEST's,
 * as bsdtar -x applies its mode to the directory it extracts into; set
 * last, like every directory's, so the mtime stays. */
static void apply_root(struct extract *x, const struct cairn_index_stat *st)
{
	struct cairn_index_info info;
	struct node n = {
		.fd = x->dest_fd, .dirfd = -1, .name = ".", .path = ".", .ino = x->obj.ino};

	cairn_index_info(x->obj.idx, &info);
	if (x->obj.ino == CAIRN_INDEX_ROOT && info.root_listed)
		apply_metadata(x, &n, st);
}

static int extract_run(struct extract *x)
{
	struct cairn_index_stat st;

	int r = cairn_index_getattr(x->obj.idx, x->obj.ino, &st);
	if (r < 0)
		return cli_object_error(&x->obj, r);
	if (S_ISDIR(st.mode)) {
		extract_children(x, x->dest_fd, "", x->obj.ino);
		apply_root(x, &st);
	} else {
		const char *slash = strrchr(x->obj.path, '/');
		const char *name = slash ? slash + 1 : x->obj.path;
		extract_entry(x, x->dest_fd, name, name, x->obj.ino);
	}
	return x->errors ? EXIT_ERROR : EXIT_OK;
}

static int extract_parse(struct cli *cli, int argc, char **argv)
{
	static const struct option options[] = {
		CLI_COMMON_OPTIONS,
		{0},
	};
	int c, r;

	while ((c = getopt_long(argc, argv, CLI_COMMON_SHORT, options, NULL)) != -1) {
		if ((r = cli_common_option(cli, c, extract_help)) != 0)
			return r;
	}
	if (argc - optind != 2)
		return cli_usage_error(cli, "expected SNAPSHOT[:PATH] and DEST");
	return 0;
}

int cmd_extract(struct cli *cli, int argc, char **argv)
{
	struct extract x = {.dest_fd = -1, .root = geteuid() == 0};
	int status = EXIT_ERROR;

	int r = extract_parse(cli, argc, argv);
	if (r)
		return r < 0 ? EXIT_OK : r;
	x.umask = umask(0);
	umask(x.umask);
	raise_fd_limit();
	if (cli_object_open(cli, argv[optind], false, &x.obj) != EXIT_OK)
		return EXIT_ERROR;
	if (cairn_content_reader_new(x.obj.store, NULL, &x.reader) < 0)
		cli_error("out of memory");
	else if ((x.dest_fd = open_dest(argv[optind + 1])) >= 0)
		status = extract_run(&x);
	if (x.dest_fd >= 0)
		close(x.dest_fd);
	for (size_t i = 0; i < x.link_cap; i++)
		free(x.links[i].path);
	free(x.links);
	cairn_content_reader_free(x.reader);
	cli_object_release(&x.obj);
	return status;
}
