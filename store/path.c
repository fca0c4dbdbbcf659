/* path.c: opening what lies inside a directory without following symbolic
 * links (path.h). A store may be writable by others; a link planted where
 * packs/ or the lock belongs must not send cleanup, a create or a read
 * elsewhere. The kernel's openat2 does it in one call; older kernels (and
 * sandboxes that filter openat2) get one O_NOFOLLOW openat per name. On
 * failure the path is looked at again, without opening anything, to say
 * which kind of wrong thing sits there: a link, a FIFO, a directory.
 */
#include "store_internal.h"

#include "path.h"

#include <fcntl.h>
#include <limits.h>
#include <linux/openat2.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>

enum want { WANT_ANY, WANT_DIR, WANT_FILE };

static int openat2_beneath(int dirfd, const char *path, int flags, mode_t mode)
{
#ifdef SYS_openat2
	/* openat2 refuses a mode without O_CREAT or O_TMPFILE. */
	struct open_how how = {
		.flags = (uint64_t)(flags | O_NOFOLLOW | O_CLOEXEC),
		.mode = (flags & (O_CREAT | O_TMPFILE)) ? mode : 0,
		.resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS,
	};
	long fd = syscall(SYS_openat2, dirfd, path, &how, sizeof(how));
	return fd < 0 ? -errno : (int)fd;
#else
	return -ENOSYS;
#endif
}

int path_open_walk(int dirfd, const char *path, int flags, mode_t mode)
{
	if (path[0] == '/')
		return -EXDEV;
	_cleanup_free_ char *copy = strdup(path);
	if (!copy)
		return -ENOMEM;
	_cleanup_close_ int owned = -1;
	int at = dirfd;
	char *name = copy;
	for (char *slash; (slash = strchr(name, '/')); name = slash + 1) {
		*slash = '\0';
		if (strcmp(name, "..") == 0)
			return -EXDEV;
		if (*name == '\0' || strcmp(name, ".") == 0)
			continue;
		/* O_DIRECTORY|O_NOFOLLOW: a link here fails (ENOTDIR). */
		int next = openat(at, name, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (next < 0)
			return -errno;
		if (owned >= 0)
			close(owned);
		at = owned = next;
	}
	if (strcmp(name, "..") == 0)
		return -EXDEV;
	int fd = openat(at, *name ? name : ".", flags | O_NOFOLLOW | O_CLOEXEC, mode);
	return fd < 0 ? -errno : fd;
}

/* What sits at path: -ELOOP if a name on the way is a link, -ENOTDIR if
 * one on the way is no directory, the type error for what is at the end
 * (per want), 0 if all is as wanted, or r when it cannot tell. */
static int classify(int dirfd, const char *path, int r, enum want want)
{
	char buf[PATH_MAX];
	struct stat st;

	if (strlen(path) >= sizeof(buf))
		return r;
	strcpy(buf, path);
	for (char *p = buf;; p++) {
		if (*p != '/' && *p != '\0')
			continue;
		bool last = *p == '\0' || p[strspn(p, "/")] == '\0';
		char saved = *p;
		*p = '\0';
		int got = fstatat(dirfd, buf, &st, AT_SYMLINK_NOFOLLOW);
		*p = saved;
		if (got < 0)
			return r;
		if (S_ISLNK(st.st_mode))
			return -ELOOP;
		if (!last && !S_ISDIR(st.st_mode))
			return -ENOTDIR;
		if (last && want == WANT_DIR && !S_ISDIR(st.st_mode))
			return -ENOTDIR;
		if (last && want == WANT_FILE && !S_ISREG(st.st_mode))
			return S_ISDIR(st.st_mode) ? -EISDIR : -EBADFD;
		if (last)
			return r;
	}
}

static int open_beneath(int dirfd, const char *path, int flags, mode_t mode, enum want want)
{
	int fd = openat2_beneath(dirfd, path, flags, mode);

	/* No openat2 (ENOSYS), one that does not know these bits (EINVAL), or
	 * a sandbox that filters it (EPERM): the walk redoes it, and a real
	 * EINVAL or EPERM comes back from the walk the same. */
	if (fd == -ENOSYS || fd == -EINVAL || fd == -EPERM)
		fd = path_open_walk(dirfd, path, flags, mode);
	if (fd == -ELOOP || fd == -ENOTDIR || fd == -EISDIR || fd == -ENXIO)
		fd = classify(dirfd, path, fd, want);
	return fd;
}

int cairn_openat_beneath(int dirfd, const char *path, int flags, mode_t mode)
{
	return open_beneath(dirfd, path, flags, mode, WANT_ANY);
}

int cairn_open_dir_beneath(int dirfd, const char *path)
{
	return open_beneath(dirfd, path, O_RDONLY | O_DIRECTORY, 0, WANT_DIR);
}

int cairn_open_file_beneath(int dirfd, const char *path, int flags, mode_t mode)
{
	struct stat st;

	/* O_NONBLOCK: opening a FIFO must not wait for a writer. */
	_cleanup_close_ int fd = open_beneath(dirfd, path, flags | O_NONBLOCK, mode, WANT_FILE);
	if (fd < 0)
		return fd;
	if (fstat(fd, &st) < 0)
		return -errno;
	if (!S_ISREG(st.st_mode))
		return S_ISDIR(st.st_mode) ? -EISDIR : -EBADFD;
	/* A regular file ignores O_NONBLOCK today; clear it so that no
	 * filesystem that honours it turns a read into EAGAIN. */
	if (!(flags & O_NONBLOCK) && fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK) < 0)
		return -errno;
	return TAKE_FD(fd);
}

int cairn_check_beneath(int dirfd, const char *path, bool want_dir)
{
	return classify(dirfd, path, 0, want_dir ? WANT_DIR : WANT_FILE);
}

const char *cairn_path_strerror(int r)
{
	switch (r) {
	case -ELOOP:
		return "is a symbolic link; a store's parts must be real files and directories";
	case -ENOTDIR:
		return "is not a directory";
	case -EISDIR:
	case -EBADFD:
		return "is not a regular file";
	default:
		return strerror(-r);
	}
}
