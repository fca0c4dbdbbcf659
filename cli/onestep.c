/* onestep.c: what `cairn mount ARCHIVE` with no mount point, and `cairn
 * mount --temp`, make for themselves and take away again: a mount point
 * named after the archive, and a throwaway directory holding a store and a
 * blob cache. Both go when the mount's session ends, however it ends (the
 * daemon removes them, cmd_mount.c); a --temp directory whose daemon died
 * is found and removed by the next --temp run, by its lock.
 */
#include <dirent.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>

#include "cli.h"
#include "index.h"

/* ---- the mount point ---- */

/* "NAME (1)", "NAME (2)", ...: as many as a user would keep side by side. */
#define MOUNTPOINT_TRIES 1000

int cli_mountpoint_stem(const char *archive, char *buf, size_t size)
{
	char stem[NAME_MAX + 1], why[300];

	/* The same suffixes as the snapshot's default name: buf holds the
	 * stripped file name even where it is no allowed snapshot name. */
	int r = cairn_snapshot_default_name(archive, stem, sizeof(stem), why, sizeof(why));
	if (r == -ENAMETOOLONG || stem[0] == '\0' || stem[0] == '.') {
		/* ".tar.gz" has no stem; a hidden mount point would look like
		 * nothing was mounted. */
		fputs("cairn: ", stderr);
		cli_put_escaped(stderr, archive);
		fputs(": no name to give its mount point (the file name is all suffixes, or "
		      "starts with '.'); give a MOUNTPOINT\n",
		      stderr);
		return EXIT_ERROR;
	}
	snprintf(buf, size, "%s", stem);
	return EXIT_OK;
}

static int make_one(struct cli_made_dir *d, const char *name)
{
	struct stat st;

	if (mkdirat(d->parent_fd, name, 0777) < 0)
		return -errno;
	if (fstatat(d->parent_fd, name, &st, AT_SYMLINK_NOFOLLOW) < 0) {
		int r = -errno;
		unlinkat(d->parent_fd, name, AT_REMOVEDIR);
		return r;
	}
	snprintf(d->name, sizeof(d->name), "%s", name);
	d->dev = st.st_dev;
	d->ino = st.st_ino;
	return 0;
}

/* Makes stem, else "stem (1)", "stem (2)"...: a name taken by anything (a
 * file, a symlink, a directory) is passed over. */
static int make_free_name(struct cli_made_dir *d, const char *stem)
{
	char name[NAME_MAX + 1];
	int r = -EEXIST;

	for (int i = 0; i < MOUNTPOINT_TRIES && r == -EEXIST; i++) {
		int n = i ? snprintf(name, sizeof(name), "%s (%d)", stem, i)
			  : snprintf(name, sizeof(name), "%s", stem);
		if (n >= (int)sizeof(name))
			return -ENAMETOOLONG;
		r = make_one(d, name);
	}
	return r;
}

static void say_make_error(const char *dir, const char *stem, int r)
{
	fputs("cairn: cannot make a mount point ", stderr);
	cli_put_escaped(stderr, stem);
	fputs(" in ", stderr);
	cli_put_escaped(stderr, dir);
	fprintf(stderr, ": %s; give a MOUNTPOINT\n",
		r == -EEXIST ? "every name up to \"(999)\" is taken" : strerror(-r));
}

/* shown: the mount point as the user would type it, dir as given. */
static int made_paths(const struct cli_made_dir *d, const char *dir, char path[PATH_MAX],
		      char shown[PATH_MAX])
{
	char real[PATH_MAX];

	if (!realpath(dir, real))
		return -errno;
	bool root = strcmp(real, "/") == 0;
	if (snprintf(path, PATH_MAX, "%s%s%s", real, root ? "" : "/", d->name) >= PATH_MAX)
		return -ENAMETOOLONG;
	bool slash = dir[strlen(dir) - 1] == '/';
	snprintf(shown, PATH_MAX, "%s%s%s", dir, slash ? "" : "/", d->name);
	return 0;
}

int cli_mountpoint_make(const char *dir, const char *stem, struct cli_made_dir *ret,
			char path[PATH_MAX], char shown[PATH_MAX])
{
	struct cli_made_dir d = {.parent_fd = open(dir, O_PATH | O_DIRECTORY | O_CLOEXEC)};

	int r = d.parent_fd < 0 ? -errno : make_free_name(&d, stem);
	if (r == 0 && (r = made_paths(&d, dir, path, shown)) < 0)
		unlinkat(d.parent_fd, d.name, AT_REMOVEDIR);
	if (r < 0) {
		if (d.parent_fd >= 0)
			close(d.parent_fd);
		say_make_error(dir, stem, r);
		return EXIT_ERROR;
	}
	*ret = d;
	return EXIT_OK;
}

int cli_made_dir_remove(struct cli_made_dir *d)
{
	struct stat st;
	int r = 0;

	if (d->parent_fd < 0)
		return 0;
	/* Only the directory made: not what was put in its place since. */
	if (fstatat(d->parent_fd, d->name, &st, AT_SYMLINK_NOFOLLOW) < 0)
		r = -errno;
	else if (!S_ISDIR(st.st_mode) || st.st_dev != d->dev || st.st_ino != d->ino)
		r = -ESTALE;
	else if (unlinkat(d->parent_fd, d->name, AT_REMOVEDIR) < 0)
		r = -errno; /* not empty: someone's files are kept */
	close(d->parent_fd);
	d->parent_fd = -1;
	return r;
}

/* ---- the --temp directory ---- */

#define TEMP_PREFIX "cairn-temp-"
#define TEMP_LOCK   "lock"
/* A directory with no lock file yet is being set up, unless it is older
 * than this: then its maker died before it took the lock. */
#define TEMP_SETUP_SEC 60

static const char *temp_parent(void)
{
	const char *dir = getenv("TMPDIR");

	return dir && dir[0] == '/' ? dir : "/var/tmp";
}

static int remove_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st, (void)flag, (void)ftw;
	remove(path);
	return 0;
}

static void remove_tree(const char *path)
{
	/* FTW_PHYS: a symlink inside is removed, never followed. */
	nftw(path, remove_one, 16, FTW_DEPTH | FTW_PHYS | FTW_MOUNT);
}

/* Whether the --temp directory name in parent is a leftover: ours, and its
 * lock free (the process that held it is gone). */
static bool is_leftover(int parent_fd, const char *name)
{
	struct stat st;
	char lock[NAME_MAX + sizeof(TEMP_LOCK) + 2];

	if (fstatat(parent_fd, name, &st, AT_SYMLINK_NOFOLLOW) < 0 || !S_ISDIR(st.st_mode) ||
	    st.st_uid != geteuid())
		return false;
	snprintf(lock, sizeof(lock), "%s/%s", name, TEMP_LOCK);
	int fd = openat(parent_fd, lock, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return errno == ENOENT && time(NULL) - st.st_mtime > TEMP_SETUP_SEC;
	bool unlocked = flock(fd, LOCK_EX | LOCK_NB) == 0;
	close(fd);
	return unlocked;
}

/* Removes what --temp runs whose daemon crashed (or that were killed while
 * adding) left in parent. Returns how many. */
static int reap_leftovers(const char *parent)
{
	char path[PATH_MAX];
	int count = 0;

	DIR *dir = opendir(parent);
	if (!dir)
		return 0;
	for (struct dirent *de; (de = readdir(dir));) {
		if (strncmp(de->d_name, TEMP_PREFIX, strlen(TEMP_PREFIX)) != 0 ||
		    !is_leftover(dirfd(dir), de->d_name))
			continue;
		if (snprintf(path, sizeof(path), "%s/%s", parent, de->d_name) >= (int)sizeof(path))
			continue;
		remove_tree(path);
		count++;
	}
	closedir(dir);
	return count;
}

/* The lock is taken under another name and renamed into place, so that no
 * reaper ever sees "lock" unlocked while its maker lives. */
static int take_lock(struct cli_temp *t)
{
	char fresh[PATH_MAX], lock[PATH_MAX];

	snprintf(fresh, sizeof(fresh), "%s/%s.new", t->path, TEMP_LOCK);
	snprintf(lock, sizeof(lock), "%s/%s", t->path, TEMP_LOCK);
	int fd = open(fresh, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd < 0)
		return -errno;
	if (flock(fd, LOCK_EX) < 0 || rename(fresh, lock) < 0) {
		int r = -errno;
		close(fd);
		return r;
	}
	t->lock_fd = fd;
	return 0;
}

int cli_temp_make(struct cli_temp *t)
{
	const char *parent = temp_parent();

	t->lock_fd = -1;
	reap_leftovers(parent);
	if (snprintf(t->path, sizeof(t->path), "%s/" TEMP_PREFIX "XXXXXX", parent) >=
	    (int)sizeof(t->path)) {
		cli_error("temp directory %s: name too long", parent);
		t->path[0] = '\0';
		return EXIT_ERROR;
	}
	if (!mkdtemp(t->path)) {
		cli_error("cannot make a temp directory in %s: %s", parent, strerror(errno));
		t->path[0] = '\0';
		return EXIT_ERROR;
	}
	int r = take_lock(t);
	if (r < 0) {
		cli_error("%s/%s: %s", t->path, TEMP_LOCK, strerror(-r));
		cli_temp_remove(t);
		return EXIT_ERROR;
	}
	return EXIT_OK;
}

void cli_temp_remove(struct cli_temp *t)
{
	if (!t->path[0])
		return;
	/* The lock goes with the tree, still held: no reaper races us. */
	remove_tree(t->path);
	if (t->lock_fd >= 0)
		close(t->lock_fd);
	t->lock_fd = -1;
	t->path[0] = '\0';
}

/* ---- SOURCE:PATH ---- */

/* Whether name is a snapshot of the store at store_path or a file (an
 * archive). */
static bool names_source(const char *store_path, const char *name)
{
	_cleanup_(cairn_store_freep) struct cairn_store *store = cairn_store_new();
	struct stat st;

	if (store && cairn_store_open(store, store_path) == 0 &&
	    cairn_snapshot_exists(store, name) == 1)
		return true;
	return stat(name, &st) == 0 && !S_ISDIR(st.st_mode);
}

const char *cli_source_split(const char *store_path, const char *arg, char *prefix, size_t size)
{
	const char *first = strchr(arg, ':');

	snprintf(prefix, size, "%s", arg);
	if (!first || names_source(store_path, arg))
		return NULL;
	for (const char *colon = first; colon; colon = strchr(colon + 1, ':')) {
		snprintf(prefix, size, "%.*s", (int)(colon - arg), arg);
		if (names_source(store_path, prefix))
			return colon;
	}
	snprintf(prefix, size, "%.*s", (int)(first - arg), arg);
	return first;
}
