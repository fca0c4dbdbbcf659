/* bench_util.c: the clock, test data, throw-away stores and output format
 * shared by the store benchmarks (see bench_util.h).
 */
#include "bench_util.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static uint64_t clock_ns(clockid_t clock)
{
	struct timespec ts;

	clock_gettime(clock, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

uint64_t bench_now_ns(void)
{
	return clock_ns(CLOCK_MONOTONIC);
}

uint64_t bench_thread_cpu_ns(void)
{
	return clock_ns(CLOCK_THREAD_CPUTIME_ID);
}

uint64_t bench_process_cpu_ns(void)
{
	return clock_ns(CLOCK_PROCESS_CPUTIME_ID);
}

static uint64_t rotl(uint64_t x, int k)
{
	return (x << k) | (x >> (64 - k));
}

void bench_fill_random(void *buf, size_t size, uint64_t seed)
{
	uint64_t s0 = seed ^ 0x9e3779b97f4a7c15ull, s1 = rotl(seed, 31) ^ 0xbf58476d1ce4e5b9ull;
	uint8_t *p = buf;

	while (size > 0) {
		/* xoroshiro128+ */
		uint64_t x = s0 + s1;
		s1 ^= s0;
		s0 = rotl(s0, 24) ^ s1 ^ (s1 << 16);
		s1 = rotl(s1, 37);
		size_t n = size < sizeof(x) ? size : sizeof(x);
		memcpy(p, &x, n);
		p += n;
		size -= n;
	}
}

static int read_all(int fd, uint8_t *buf, size_t size, size_t *ret_done)
{
	size_t done = 0;

	while (done < size) {
		ssize_t n = read(fd, buf + done, size - done);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n == 0)
			break;
		done += (size_t)n;
	}
	*ret_done = done;
	return 0;
}

int bench_read_file(const char *path, size_t max, uint8_t **ret_buf, size_t *ret_size)
{
	struct stat st;
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		return -errno;
	if (fstat(fd, &st) < 0) {
		int r = -errno;
		close(fd);
		return r;
	}
	size_t size = (size_t)st.st_size;
	if (max > 0 && size > max)
		size = max;
	uint8_t *buf = malloc(size ? size : 1);
	if (!buf) {
		close(fd);
		return -ENOMEM;
	}
	size_t done = 0;
	int r = read_all(fd, buf, size, &done);
	close(fd);
	if (r < 0) {
		free(buf);
		return r;
	}
	*ret_buf = buf;
	*ret_size = done;
	return 0;
}

int bench_store_create(struct bench_store *bs, const char *parent)
{
	if (!parent)
		parent = getenv("TMPDIR");
	if (!parent || !*parent)
		parent = "/tmp";
	int n = snprintf(bs->path, sizeof(bs->path), "%s/cairn-bench-XXXXXX", parent);
	if (n < 0 || (size_t)n >= sizeof(bs->path))
		return -ENAMETOOLONG;
	if (!mkdtemp(bs->path)) {
		int r = -errno;
		fprintf(stderr, "bench: mkdtemp %s: %s\n", bs->path, strerror(errno));
		return r;
	}
	bs->store = cairn_store_new();
	if (!bs->store)
		return -ENOMEM;
	int r = cairn_store_create(bs->store, bs->path, NULL);
	if (r < 0) {
		fprintf(stderr, "bench: creating a store: %s\n", cairn_store_error(bs->store));
		bench_store_release(bs, 0);
	}
	return r;
}

int bench_store_open(struct bench_store *bs, const char *path)
{
	int n = snprintf(bs->path, sizeof(bs->path), "%s", path);

	if (n < 0 || (size_t)n >= sizeof(bs->path))
		return -ENAMETOOLONG;
	bs->store = cairn_store_new();
	if (!bs->store)
		return -ENOMEM;
	int r = cairn_store_open(bs->store, path);
	if (r < 0) {
		fprintf(stderr, "bench: opening %s: %s\n", path, cairn_store_error(bs->store));
		cairn_store_free(bs->store);
		bs->store = NULL;
	}
	return r;
}

static int remove_one(const char *path, const struct stat *st, int type, struct FTW *ftw)
{
	(void)st;
	(void)type;
	(void)ftw;
	if (remove(path) < 0)
		fprintf(stderr, "bench: removing %s: %s\n", path, strerror(errno));
	return 0;
}

void bench_store_release(struct bench_store *bs, int keep)
{
	cairn_store_free(bs->store);
	bs->store = NULL;
	if (keep)
		fprintf(stderr, "bench: store kept at %s\n", bs->path);
	else if (bs->path[0])
		nftw(bs->path, remove_one, 16, FTW_DEPTH | FTW_PHYS);
	bs->path[0] = '\0';
}

void bench_report_rate(const char *name, double value, const char *base_name, double base_value,
		       const char *unit)
{
	printf("%s: %.2f %s | baseline %s %.2f %s | ratio %.2fx\n", name, value, unit, base_name,
	       base_value, unit, base_value > 0 ? value / base_value : 0.0);
	fflush(stdout);
}

static int compare_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

double bench_median(double *values, size_t n)
{
	if (n == 0)
		return 0;
	qsort(values, n, sizeof(*values), compare_double);
	return n % 2 ? values[n / 2] : (values[n / 2 - 1] + values[n / 2]) / 2;
}
