/* fault.c: an LD_PRELOAD shim for the fault tests (test_faults.sh). It
 * counts the calls that change files on disk and makes the Nth of them fail
 * with a chosen errno, so that every write, fsync and rename of an add, rm
 * or gc can be made to fail in turn, as a full disk or a failing one would.
 *
 * Counted: write, pwrite and pwrite64 to regular files (the terminal and
 * pipes pass uncounted, so error messages still get out), fsync and
 * fdatasync, rename, renameat and renameat2, open, open64, openat, openat64
 * and creat when they may create a file (O_CREAT), ftruncate and
 * ftruncate64. Only the Nth call fails; the calls after it succeed again,
 * so cleanup code runs as it would after a real error.
 *
 * Environment:
 *   CAIRN_FAULT_NTH=N       fail the Nth counted call (from 1); unset or 0:
 *                           fail none (counting only)
 *   CAIRN_FAULT_ERRNO=NAME  ENOSPC (the default) or EIO
 *   CAIRN_FAULT_COUNT=FILE  at exit, write the number of counted calls there
 *   CAIRN_FAULT_LOG=FILE    append one line naming the call that failed
 */
/* open and open64 are defined apart here: no redirection of one to the
 * other (meson builds with _FILE_OFFSET_BITS=64). */
#undef _FILE_OFFSET_BITS
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* The shim's own state: set once by the constructor, then only counted. */
static atomic_ulong calls;
static unsigned long fail_nth;
static int fail_errno = ENOSPC;

/* The next definition of name (libc's, or a sanitizer's), looked up on the
 * first call; stored through a void * as POSIX's dlsym example does. */
#define REAL(name)                                                                                 \
	static __typeof__(name) *real_##name;                                                      \
	if (!real_##name)                                                                          \
	*(void **)&real_##name = dlsym(RTLD_NEXT, #name)

static ssize_t raw_write(int fd, const void *buf, size_t size)
{
	REAL(write);
	return real_write(fd, buf, size);
}

static void log_failure(const char *call, const char *what)
{
	const char *path = getenv("CAIRN_FAULT_LOG");
	char line[600];

	if (!path)
		return;
	REAL(open);
	int fd = real_open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
	if (fd < 0)
		return;
	int n = snprintf(line, sizeof(line), "call %lu: %s(%s) failed with %s\n", fail_nth, call,
			 what, strerrorname_np(fail_errno));
	if (n > 0)
		raw_write(fd, line, (size_t)n < sizeof(line) ? (size_t)n : sizeof(line) - 1);
	close(fd);
}

/* Counts a call; true when this one is to fail (errno is then set). */
static bool fault_here(const char *call, const char *what)
{
	unsigned long n = atomic_fetch_add(&calls, 1) + 1;

	if (fail_nth == 0 || n != fail_nth)
		return false;
	log_failure(call, what);
	errno = fail_errno;
	return true;
}

static bool fault_fd(const char *call, int fd)
{
	char what[32];

	snprintf(what, sizeof(what), "fd %d", fd);
	return fault_here(call, what);
}

static bool is_regular(int fd)
{
	struct stat st;

	return fstat(fd, &st) == 0 && S_ISREG(st.st_mode);
}

__attribute__((constructor)) static void fault_init(void)
{
	const char *nth = getenv("CAIRN_FAULT_NTH");
	const char *name = getenv("CAIRN_FAULT_ERRNO");

	fail_nth = nth ? strtoul(nth, NULL, 10) : 0;
	if (name && strcmp(name, "EIO") == 0)
		fail_errno = EIO;
}

__attribute__((destructor)) static void fault_fini(void)
{
	const char *path = getenv("CAIRN_FAULT_COUNT");
	char text[32];

	if (!path)
		return;
	REAL(open);
	int fd = real_open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0)
		return;
	int n = snprintf(text, sizeof(text), "%lu\n", atomic_load(&calls));
	raw_write(fd, text, (size_t)n);
	close(fd);
}

/* ---- writes ---- */

ssize_t write(int fd, const void *buf, size_t size)
{
	REAL(write);
	if (is_regular(fd) && fault_fd("write", fd))
		return -1;
	return real_write(fd, buf, size);
}

ssize_t pwrite(int fd, const void *buf, size_t size, off_t offset)
{
	REAL(pwrite);
	if (is_regular(fd) && fault_fd("pwrite", fd))
		return -1;
	return real_pwrite(fd, buf, size, offset);
}

ssize_t pwrite64(int fd, const void *buf, size_t size, off64_t offset)
{
	REAL(pwrite64);
	if (is_regular(fd) && fault_fd("pwrite", fd))
		return -1;
	return real_pwrite64(fd, buf, size, offset);
}

int ftruncate(int fd, off_t size)
{
	REAL(ftruncate);
	if (fault_fd("ftruncate", fd))
		return -1;
	return real_ftruncate(fd, size);
}

int ftruncate64(int fd, off64_t size)
{
	REAL(ftruncate64);
	if (fault_fd("ftruncate", fd))
		return -1;
	return real_ftruncate64(fd, size);
}

/* ---- syncs ---- */

int fsync(int fd)
{
	REAL(fsync);
	if (fault_fd("fsync", fd))
		return -1;
	return real_fsync(fd);
}

int fdatasync(int fd)
{
	REAL(fdatasync);
	if (fault_fd("fdatasync", fd))
		return -1;
	return real_fdatasync(fd);
}

/* ---- renames ---- */

int rename(const char *from, const char *to)
{
	REAL(rename);
	if (fault_here("rename", to))
		return -1;
	return real_rename(from, to);
}

int renameat(int from_dir, const char *from, int to_dir, const char *to)
{
	REAL(renameat);
	if (fault_here("renameat", to))
		return -1;
	return real_renameat(from_dir, from, to_dir, to);
}

int renameat2(int from_dir, const char *from, int to_dir, const char *to, unsigned flags)
{
	REAL(renameat2);
	if (fault_here("renameat2", to))
		return -1;
	return real_renameat2(from_dir, from, to_dir, to, flags);
}

/* ---- creating opens ---- */

static mode_t open_mode(int flags, va_list ap)
{
	return (flags & O_CREAT) || (flags & O_TMPFILE) == O_TMPFILE ? va_arg(ap, mode_t) : 0;
}

int open(const char *path, int flags, ...)
{
	va_list ap;

	va_start(ap, flags);
	mode_t mode = open_mode(flags, ap);
	va_end(ap);
	REAL(open);
	if ((flags & O_CREAT) && fault_here("open", path))
		return -1;
	return real_open(path, flags, mode);
}

int open64(const char *path, int flags, ...)
{
	va_list ap;

	va_start(ap, flags);
	mode_t mode = open_mode(flags, ap);
	va_end(ap);
	REAL(open64);
	if ((flags & O_CREAT) && fault_here("open", path))
		return -1;
	return real_open64(path, flags, mode);
}

int openat(int dirfd, const char *path, int flags, ...)
{
	va_list ap;

	va_start(ap, flags);
	mode_t mode = open_mode(flags, ap);
	va_end(ap);
	REAL(openat);
	if ((flags & O_CREAT) && fault_here("openat", path))
		return -1;
	return real_openat(dirfd, path, flags, mode);
}

int openat64(int dirfd, const char *path, int flags, ...)
{
	va_list ap;

	va_start(ap, flags);
	mode_t mode = open_mode(flags, ap);
	va_end(ap);
	REAL(openat64);
	if ((flags & O_CREAT) && fault_here("openat", path))
		return -1;
	return real_openat64(dirfd, path, flags, mode);
}

int creat(const char *path, mode_t mode)
{
	REAL(creat);
	if (fault_here("creat", path))
		return -1;
	return real_creat(path, mode);
}
