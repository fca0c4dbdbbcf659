/* util.c: whole-buffer I/O, temp files and durable replacement shared by every
 * layer. Kept apart so each caller gets EINTR, short writes and fsync ordering
 * right the same way.
 */
#include "util.h"

#include <ctype.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

int cairn_write_all(int fd, const void *buf, size_t size)
{
	const uint8_t *p = buf;

	while (size > 0) {
		ssize_t n = write(fd, p, size);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (n == 0)
			return -EIO;
		p += n;
		size -= (size_t)n;
	}
	return 0;
}

int cairn_pwrite_all(int fd, const void *buf, size_t size, uint64_t offset)
{
	const uint8_t *p = buf;

	while (size > 0) {
		ssize_t n = pwrite(fd, p, size, (off_t)offset);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (n == 0)
			return -EIO;
		p += n;
		size -= (size_t)n;
		offset += (uint64_t)n;
	}
	return 0;
}

ssize_t cairn_pread_full(int fd, void *buf, size_t size, uint64_t offset)
{
	uint8_t *p = buf;
	size_t done = 0;

	while (done < size) {
		ssize_t n = pread(fd, p + done, size - done, (off_t)(offset + done));
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (n == 0)
			break;
		done += (size_t)n;
	}
	return (ssize_t)done;
}

int cairn_mkdir_p(const char *path, mode_t mode, bool parents_only)
{
	_cleanup_free_ char *copy = strdup(path);
	if (!copy)
		return -ENOMEM;
	/* From the second byte: a leading '/' is the root, not a parent (and
	 * "" has no second byte). */
	for (char *p = copy + (copy[0] != '\0'); *p; p++) {
		if (*p != '/')
			continue;
		char *rest = p + strspn(p, "/");
		if (*rest == '\0')
			break; /* trailing slashes: the rest is path itself */
		*p = '\0';
		if (mkdir(copy, mode) < 0 && errno != EEXIST)
			return -errno;
		*p = '/';
	}
	if (!parents_only && mkdir(copy, mode) < 0 && errno != EEXIST)
		return -errno;
	return 0;
}

DIR *cairn_opendir_dup(int dirfd)
{
	int fd = dirfd < 0 ? (errno = EBADF, -1) : fcntl(dirfd, F_DUPFD_CLOEXEC, 0);
	if (fd < 0)
		return NULL;
	DIR *dir = fdopendir(fd);
	if (!dir) {
		int e = errno;
		close(fd);
		errno = e;
		return NULL;
	}
	rewinddir(dir);
	return dir;
}

int cairn_fsync_dir(int dirfd, const char *path)
{
	_cleanup_close_ int fd = openat(dirfd, path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	if (fsync(fd) < 0)
		return -errno;
	return 0;
}

int cairn_tmp_name(char *buf, size_t buf_size, const char *prefix, const char *suffix)
{
	uint64_t rnd = 0;

	/* getrandom without flags only blocks before the pool is seeded; the
	 * fallback keeps names unique enough for O_EXCL to settle the rest. */
	if (getrandom(&rnd, sizeof(rnd), GRND_NONBLOCK) != sizeof(rnd))
		rnd = cairn_now_ns() ^ ((uint64_t)getpid() << 32);
	int n = snprintf(buf, buf_size, "%s%016llx%s", prefix, (unsigned long long)rnd, suffix);
	if (n < 0 || (size_t)n >= buf_size)
		return -ENAMETOOLONG;
	return 0;
}

int cairn_tmp_open(int dirfd, const char *prefix, const char *suffix, mode_t mode, char *name_buf,
		   size_t name_size)
{
	for (int attempt = 0; attempt < 16; attempt++) {
		int r = cairn_tmp_name(name_buf, name_size, prefix, suffix);
		if (r < 0)
			return r;
		int fd = openat(dirfd, name_buf, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, mode);
		if (fd >= 0)
			return fd;
		if (errno != EEXIST)
			return -errno;
	}
	return -EEXIST;
}

int cairn_commit_file(int dirfd, int tmp_fd, const char *tmp_name, const char *name,
		      bool *ret_renamed)
{
	if (ret_renamed)
		*ret_renamed = false;
	if (fsync(tmp_fd) < 0)
		return -errno;
	if (renameat(dirfd, tmp_name, dirfd, name) < 0)
		return -errno;
	if (ret_renamed)
		*ret_renamed = true;
	return cairn_fsync_dir(dirfd, ".");
}

void cairn_format(char *buf, size_t size, const char *fmt, ...)
{
	va_list ap;

	if (size == 0)
		return;
	va_start(ap, fmt);
	vsnprintf(buf, size, fmt, ap);
	va_end(ap);
}

const char *cairn_format_bytes(uint64_t size, char *buf, size_t buf_size)
{
	static const char *const units[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"};
	double value = (double)size;
	size_t unit = 0;

	while (value >= 1024.0 && unit + 1 < ARRAY_SIZE(units)) {
		value /= 1024.0;
		unit++;
	}
	if (unit == 0)
		snprintf(buf, buf_size, "%llu B", (unsigned long long)size);
	else
		snprintf(buf, buf_size, "%.1f %s", value, units[unit]);
	return buf;
}

uint64_t cairn_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* The power-of-two shift a size suffix letter stands for, or -1. */
static int size_shift(char letter)
{
	switch (letter) {
	case 'k':
	case 'K':
		return 10;
	case 'm':
	case 'M':
		return 20;
	case 'g':
	case 'G':
		return 30;
	case 't':
	case 'T':
		return 40;
	default:
		return -1;
	}
}

int cairn_parse_size(const char *text, uint64_t *ret)
{
	char *end;

	if (!isdigit((unsigned char)*text))
		return -EINVAL; /* no sign, no space, no empty string */
	errno = 0;
	unsigned long long value = strtoull(text, &end, 10);
	if (errno)
		return -EINVAL;
	int shift = 0;
	if (*end) {
		shift = size_shift(*end++);
		if (shift < 0 || (*end && strcmp(end, "B") != 0 && strcmp(end, "iB") != 0))
			return -EINVAL;
	}
	if (value > (UINT64_MAX >> shift))
		return -EINVAL;
	*ret = (uint64_t)value << shift;
	return 0;
}

void cairn_drop_pages(void *buf, size_t size)
{
	uintptr_t page = (uintptr_t)sysconf(_SC_PAGESIZE);
	uintptr_t start = ((uintptr_t)buf + page - 1) & ~(page - 1);
	uintptr_t end = ((uintptr_t)buf + size) & ~(page - 1);

	if (buf && end > start)
		madvise((void *)start, end - start, MADV_DONTNEED);
}
