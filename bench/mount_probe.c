/* mount_probe.c: the timed reads of bench/mount, one small program so that
 * every file system (native, cairn, squashfuse, archivemount) is read the
 * same way and timed without a process start per file. bench/mount compiles
 * it with the system compiler (it needs nothing but libc) and also uses it
 * to make the synthetic files (a large mixed file, files of given sizes).
 *
 *   seq FILE BUFSIZE                 read FILE start to end
 *   seqafter FILE BUFSIZE FLAG       open FILE, wait until FLAG exists, then read
 *                                    it start to end (only the read is timed)
 *   rand FILE BUFSIZE COUNT SEED     COUNT preads at random BUFSIZE-aligned offsets
 *   files LIST BUFSIZE [PREFIX]      open, read to the end and close each file of
 *                                    LIST (one path a line, PREFIX prepended)
 *   mkbig SRC OUT SIZE               OUT: SIZE bytes, 1 MiB blocks taken in turn
 *                                    from SRC (compressible) and from a PRNG
 *   mkfiles SRC DIR SIZE COUNT SEED  DIR/f00000...: COUNT files of SIZE bytes,
 *                                    each half SRC bytes, half PRNG bytes
 *
 * Timed modes print one line "key=value ...": ops, bytes, seconds, per-op
 * microseconds and MB/s (1 MB = 1e6 bytes). Exit status 1 on any error.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define BLOCK (1u << 20)

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static uint64_t next_random(uint64_t *state)
{
	/* splitmix64: reproducible, good enough to defeat compression */
	uint64_t z = (*state += 0x9e3779b97f4a7c15ull);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

static void fill_random(uint8_t *buf, size_t size, uint64_t *state)
{
	for (size_t i = 0; i < size; i += 8) {
		uint64_t v = next_random(state);
		memcpy(buf + i, &v, size - i < 8 ? size - i : 8);
	}
}

static void report(const char *what, uint64_t ops, uint64_t bytes, double secs)
{
	printf("%s ops=%llu bytes=%llu seconds=%.6f us_per_op=%.2f mb_per_s=%.1f\n", what,
	       (unsigned long long)ops, (unsigned long long)bytes, secs,
	       ops ? secs * 1e6 / (double)ops : 0.0, secs > 0 ? (double)bytes / secs / 1e6 : 0.0);
}

/* Reads fd to its end; returns the bytes read or -1. */
static int64_t drain(int fd, uint8_t *buf, size_t bufsize)
{
	int64_t total = 0;

	for (;;) {
		ssize_t n = read(fd, buf, bufsize);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -1;
		if (n == 0)
			return total;
		total += n;
	}
}

/* Reads path start to end. With flag, opens it, waits until flag exists,
 * and times the read alone; without, the open is timed too. */
static int cmd_seq(const char *path, size_t bufsize, const char *flag)
{
	uint8_t *buf = malloc(bufsize);
	double t0 = now_s();
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (!buf || fd < 0) {
		perror(path);
		return 1;
	}
	for (int i = 0; flag && access(flag, F_OK) != 0; i++) {
		if (i == 30000) {
			fprintf(stderr, "%s: not there after 300 s\n", flag);
			return 1;
		}
		usleep(10000);
	}
	if (flag)
		t0 = now_s();
	int64_t n = drain(fd, buf, bufsize);
	close(fd);
	double t1 = now_s();
	if (n < 0) {
		perror(path);
		return 1;
	}
	report(flag ? "seqafter" : "seq", 1, (uint64_t)n, t1 - t0);
	free(buf);
	return 0;
}

static int cmd_rand(const char *path, size_t bufsize, uint64_t count, uint64_t seed)
{
	uint8_t *buf = malloc(bufsize);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	struct stat st;
	if (!buf || fd < 0 || fstat(fd, &st) < 0 || (uint64_t)st.st_size < bufsize) {
		fprintf(stderr, "%s: cannot open, or smaller than %zu bytes\n", path, bufsize);
		return 1;
	}
	uint64_t slots = (uint64_t)st.st_size / bufsize, bytes = 0;
	double t0 = now_s();
	for (uint64_t i = 0; i < count; i++) {
		off_t off = (off_t)(next_random(&seed) % slots * bufsize);
		ssize_t n = pread(fd, buf, bufsize, off);
		if (n < 0) {
			perror(path);
			return 1;
		}
		bytes += (uint64_t)n;
	}
	report("rand", count, bytes, now_s() - t0);
	close(fd);
	free(buf);
	return 0;
}

static int cmd_files(const char *list, size_t bufsize, const char *prefix)
{
	FILE *f = fopen(list, "re");
	uint8_t *buf = malloc(bufsize);
	char *line = NULL, path[8192];
	size_t cap = 0;
	uint64_t ops = 0, bytes = 0, failed = 0;
	double busy = 0;

	if (!f || !buf) {
		perror(list);
		return 1;
	}
	for (ssize_t len; (len = getline(&line, &cap, f)) > 0;) {
		if (line[len - 1] == '\n')
			line[len - 1] = '\0';
		snprintf(path, sizeof(path), "%s%s", prefix, line);
		double t0 = now_s();
		int fd = open(path, O_RDONLY | O_CLOEXEC);
		int64_t n = fd < 0 ? -1 : drain(fd, buf, bufsize);
		if (fd >= 0)
			close(fd);
		busy += now_s() - t0;
		if (n < 0) {
			if (failed++ < 5)
				fprintf(stderr, "%s: %s\n", path, strerror(errno));
			continue;
		}
		ops++;
		bytes += (uint64_t)n;
	}
	report("files", ops, bytes, busy);
	free(line);
	free(buf);
	fclose(f);
	return failed ? 1 : 0;
}

static int write_all(int fd, const uint8_t *buf, size_t size)
{
	while (size > 0) {
		ssize_t n = write(fd, buf, size);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -1;
		buf += n;
		size -= (size_t)n;
	}
	return 0;
}

/* Fills buf from src at off (wrapping at its end). */
static int read_src(int src, off_t src_size, off_t off, uint8_t *buf, size_t size)
{
	for (size_t done = 0; done < size;) {
		off %= src_size;
		ssize_t n = pread(src, buf + done, size - done, off);
		if (n <= 0)
			return -1;
		done += (size_t)n;
		off += n;
	}
	return 0;
}

static int cmd_mkbig(const char *src_path, const char *out, uint64_t size)
{
	uint8_t *buf = malloc(BLOCK);
	int src = open(src_path, O_RDONLY | O_CLOEXEC);
	int fd = open(out, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	struct stat st;
	uint64_t state = 1;

	if (!buf || src < 0 || fd < 0 || fstat(src, &st) < 0 || st.st_size == 0) {
		perror("mkbig");
		return 1;
	}
	for (uint64_t done = 0, i = 0; done < size; i++) {
		size_t n = size - done < BLOCK ? (size_t)(size - done) : BLOCK;
		if (i % 2 == 0 && read_src(src, st.st_size, (off_t)(done / 2), buf, n) < 0) {
			perror(src_path);
			return 1;
		}
		if (i % 2 == 1)
			fill_random(buf, n, &state);
		if (write_all(fd, buf, n) < 0) {
			perror(out);
			return 1;
		}
		done += n;
	}
	return close(fd) < 0 ? 1 : 0;
}

static int cmd_mkfiles(const char *src_path, const char *dir, size_t size, uint64_t count,
		       uint64_t seed)
{
	uint8_t *buf = malloc(size ? size : 1);
	int src = open(src_path, O_RDONLY | O_CLOEXEC);
	struct stat st;
	char path[8192];

	if (!buf || src < 0 || fstat(src, &st) < 0 || st.st_size == 0 ||
	    (mkdir(dir, 0755) < 0 && errno != EEXIST)) {
		perror("mkfiles");
		return 1;
	}
	for (uint64_t i = 0; i < count; i++) {
		off_t off = (off_t)(next_random(&seed) % (uint64_t)st.st_size);
		if (read_src(src, st.st_size, off, buf, size / 2) < 0) {
			perror(src_path);
			return 1;
		}
		fill_random(buf + size / 2, size - size / 2, &seed);
		snprintf(path, sizeof(path), "%s/f%05llu", dir, (unsigned long long)i);
		int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
		if (fd < 0 || write_all(fd, buf, size) < 0 || close(fd) < 0) {
			perror(path);
			return 1;
		}
	}
	return 0;
}

static uint64_t number(const char *text)
{
	char *end;
	uint64_t v = strtoull(text, &end, 10);

	switch (*end) {
	case 'K':
		return v << 10;
	case 'M':
		return v << 20;
	case 'G':
		return v << 30;
	default:
		return v;
	}
}

int main(int argc, char **argv)
{
	const char *mode = argc > 1 ? argv[1] : "";

	if (strcmp(mode, "seq") == 0 && argc == 4)
		return cmd_seq(argv[2], number(argv[3]), NULL);
	if (strcmp(mode, "seqafter") == 0 && argc == 5)
		return cmd_seq(argv[2], number(argv[3]), argv[4]);
	if (strcmp(mode, "rand") == 0 && argc == 6)
		return cmd_rand(argv[2], number(argv[3]), number(argv[4]), number(argv[5]));
	if (strcmp(mode, "files") == 0 && (argc == 4 || argc == 5))
		return cmd_files(argv[2], number(argv[3]), argc == 5 ? argv[4] : "");
	if (strcmp(mode, "mkbig") == 0 && argc == 5)
		return cmd_mkbig(argv[2], argv[3], number(argv[4]));
	if (strcmp(mode, "mkfiles") == 0 && argc == 7)
		return cmd_mkfiles(argv[2], argv[3], number(argv[4]), number(argv[5]),
				   number(argv[6]));
	fprintf(stderr, "usage: see the head of bench/mount_probe.c\n");
	return 2;
}
