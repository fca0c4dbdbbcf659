/* cachedir.c: the blob cache's directories, CACHE and CACHE/blobs, as a
 * trust boundary. CACHE is the user's word and may be reached through a
 * symlink; nothing under it is: blobs is opened with O_NOFOLLOW relative to
 * CACHE's fd, and everything in it relative to blobs' fd. Both must be the
 * mount's user's and writable by no one else (a sticky world-writable
 * directory, like /tmp, included): whoever else could write there could
 * swap blobs for a symlink, or plant files for eviction to delete. Each is
 * checked by fstat on the fd that is then used, never by its path again. A
 * refused CACHE gives way, with a warning naming it and why, to the user's
 * own default cache directory, checked the same way; when that is refused
 * too, there is no blob cache (and no passthrough). The size bound's scan
 * and eviction are here too: they remove only our own regular files in
 * blobs, through its fd.
 */
#include "mount_internal.h"

#include <dirent.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

/* Whether the directory open on fd may hold blobs; if not, why in why. */
static bool dir_trusted(int fd, char *why, size_t why_size)
{
	struct stat st;

	if (fstat(fd, &st) < 0)
		snprintf(why, why_size, "cannot stat it: %s", strerror(errno));
	else if (!S_ISDIR(st.st_mode))
		snprintf(why, why_size, "it is not a directory");
	else if (st.st_uid != geteuid())
		snprintf(why, why_size, "it is owned by uid %u, not the mount's uid %u",
			 (unsigned)st.st_uid, (unsigned)geteuid());
	else if (st.st_mode & 022)
		snprintf(why, why_size, "its mode %04o lets users other than uid %u write to it",
			 (unsigned)(st.st_mode & 07777), (unsigned)geteuid());
	else
		return true;
	return false;
}

int cache_dir_blobs(int cachefd, char *why, size_t why_size)
{
	const int flags = O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC;

	int fd = openat(cachefd, "blobs", flags);
	if (fd < 0 && errno == ENOENT) {
		if (mkdirat(cachefd, "blobs", 0700) < 0 && errno != EEXIST) {
			snprintf(why, why_size, "cannot make blobs in it: %s", strerror(errno));
			return -errno;
		}
		fd = openat(cachefd, "blobs", flags);
	}
	if (fd < 0) {
		int r = -errno;
		if (r != -ELOOP && r != -ENOTDIR) {
			snprintf(why, why_size, "cannot open its blobs: %s", strerror(-r));
			return r;
		}
		snprintf(why, why_size, "its blobs is a symlink or not a directory");
		return -EPERM;
	}
	char sub[200];
	if (!dir_trusted(fd, sub, sizeof(sub))) {
		snprintf(why, why_size, "its blobs: %s", sub);
		close(fd);
		return -EPERM;
	}
	return fd;
}

/* Opens dir (made 0700 if missing) and dir/blobs, both trusted. */
static int cache_dir_try(const char *dir, int *ret_cachefd, int *ret_blobsfd, char *why,
			 size_t why_size)
{
	int r = cairn_mkdir_p(dir, 0700, false);
	if (r < 0) {
		snprintf(why, why_size, "cannot make it: %s", strerror(-r));
		return r;
	}
	_cleanup_close_ int cachefd = open(dir, O_RDONLY | O_DIRECTORY | O_NONBLOCK | O_CLOEXEC);
	if (cachefd < 0) {
		snprintf(why, why_size, "cannot open it: %s", strerror(errno));
		return -errno;
	}
	if (!dir_trusted(cachefd, why, why_size))
		return -EPERM;
	int blobsfd = cache_dir_blobs(cachefd, why, why_size);
	if (blobsfd < 0)
		return blobsfd;
	*ret_cachefd = TAKE_FD(cachefd);
	*ret_blobsfd = blobsfd;
	return 0;
}

int cache_dir_reopen(const char *blobs_path, int *cachefd, char *why, size_t why_size)
{
	int blobsfd = cache_dir_blobs(*cachefd, why, why_size);
	if (blobsfd != -ENOENT)
		return blobsfd;
	/* CACHE itself was removed: make it again where the user said. */
	_cleanup_free_ char *dir = strdup(blobs_path);
	if (!dir)
		return -ENOMEM;
	char *slash = strrchr(dir, '/');
	if (slash)
		*slash = '\0';
	int fd;
	int r = cache_dir_try(dir, &fd, &blobsfd, why, why_size);
	if (r < 0)
		return r;
	close(*cachefd);
	*cachefd = fd;
	return blobsfd;
}

static char *blobs_path(const char *dir)
{
	size_t len = strlen(dir) + sizeof("/blobs");
	char *path = malloc(len);

	if (path)
		snprintf(path, len, "%s/blobs", dir);
	return path;
}

int cache_dir_open(const char *dir, const struct mount_log *log, int *ret_cachefd, int *ret_blobsfd,
		   char **ret_path)
{
	char why[300], fallback[PATH_MAX];

	int r = cache_dir_try(dir, ret_cachefd, ret_blobsfd, why, sizeof(why));
	if (r == 0 || r != -EPERM)
		goto done;
	mount_default_cache_dir(fallback, sizeof(fallback));
	if (strcmp(fallback, dir) == 0) {
		mount_log(log, CAIRN_LOG_WARNING,
			  "cache %s refused: %s; no blob cache, so no passthrough", dir, why);
		return r;
	}
	mount_log(log, CAIRN_LOG_WARNING, "cache %s refused: %s; using %s instead", dir, why,
		  fallback);
	dir = fallback;
	r = cache_dir_try(dir, ret_cachefd, ret_blobsfd, why, sizeof(why));
	if (r == -EPERM) {
		mount_log(log, CAIRN_LOG_WARNING,
			  "cache %s refused too: %s; no blob cache, so no passthrough", dir, why);
		return r;
	}
done:
	if (r < 0) {
		mount_log(log, CAIRN_LOG_WARNING, "blob cache %s: %s; no passthrough", dir, why);
		return r;
	}
	*ret_path = blobs_path(dir);
	if (!*ret_path) {
		close(*ret_cachefd);
		close(*ret_blobsfd);
		return -ENOMEM;
	}
	return 0;
}

/* ---- the size bound ---- */

struct blob_entry {
	char name[CAIRN_ID_HEX + 1];
	int64_t mtime;
	uint64_t size;
};

static int compare_mtime(const void *a, const void *b)
{
	const struct blob_entry *x = a, *y = b;

	return x->mtime < y->mtime ? -1 : x->mtime > y->mtime;
}

/* Removes a temp file no live mount holds: one that takes our lock (its
 * maker holds it while it writes, so a dead mount's leftover is removed at
 * once, and a live mount's never). */
static void tmp_reap(int dirfd, const char *name, const struct stat *st)
{
	struct stat now;

	int fd = openat(dirfd, name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
	if (fd < 0)
		return;
	if (flock(fd, LOCK_EX | LOCK_NB) == 0 && fstat(fd, &now) == 0 && now.st_ino == st->st_ino &&
	    now.st_dev == st->st_dev)
		unlinkat(dirfd, name, 0);
	close(fd);
}

/* Lists the blobs (removing temp files no live mount holds) and returns
 * their total size. */
static uint64_t blob_scan(int dirfd, struct blob_entry **ret, size_t *ret_count)
{
	struct blob_entry *list = NULL;
	size_t count = 0, cap = 0;
	uint64_t total = 0;
	struct stat st;

	/* Not dup(): a dup shares the directory offset, which the previous scan
	 * left at the end. */
	int fd = openat(dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	DIR *dir = fd < 0 ? NULL : fdopendir(fd);
	if (!dir) {
		if (fd >= 0)
			close(fd);
		*ret = NULL;
		*ret_count = 0;
		return 0;
	}
	for (struct dirent *de; (de = readdir(dir));) {
		/* Only our own regular files are ever removed. */
		if (de->d_name[0] == '.' ||
		    fstatat(dirfd, de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0 ||
		    !S_ISREG(st.st_mode) || st.st_uid != geteuid())
			continue;
		if (strncmp(de->d_name, "tmp-", 4) == 0) {
			tmp_reap(dirfd, de->d_name, &st);
			continue;
		}
		if (strlen(de->d_name) != CAIRN_ID_HEX)
			continue;
		if (count == cap) {
			cap = cap ? cap * 2 : 256;
			struct blob_entry *bigger = realloc(list, cap * sizeof(*list));
			if (!bigger)
				break;
			list = bigger;
		}
		memcpy(list[count].name, de->d_name, CAIRN_ID_HEX + 1);
		list[count].mtime = st.st_mtime;
		list[count].size = (uint64_t)st.st_blocks * 512;
		total += list[count].size;
		count++;
	}
	closedir(dir);
	*ret = list;
	*ret_count = count;
	return total;
}

uint64_t cache_dir_evict(int dirfd, uint64_t bound)
{
	struct blob_entry *list;
	size_t count;
	uint64_t total = blob_scan(dirfd, &list, &count);

	if (total > bound) {
		qsort(list, count, sizeof(*list), compare_mtime);
		for (size_t i = 0; i < count && total > bound / 10 * 9; i++) {
			if (unlinkat(dirfd, list[i].name, 0) == 0)
				total -= list[i].size;
		}
	}
	free(list);
	return total;
}
