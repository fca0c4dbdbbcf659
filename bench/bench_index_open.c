/* bench_index_open.c: what checking a snapshot's sections at open costs.
 * Opens STORE's snapshot NAME and stats its root (what a mount does before
 * its first stat), RUNS times each way, round by round: checked (as every
 * reader opens it) and unchecked (CAIRN_INDEX_OPEN_UNCHECKED, the open as
 * it was before the check; the baseline), and, as a reference, a plain
 * read(2) of the whole file. Warm: the file in the page cache. Cold: the
 * file dropped from it before each run (posix_fadvise DONTNEED on the file
 * after a sync, or, with -d, echo 3 > /proc/sys/vm/drop_caches as root).
 *
 * Usage: bench_index_open [-n RUNS] [-d] STORE NAME
 * Prints "name: value | baseline NAME value | ratio R" lines (bench_util.h),
 * best of RUNS with the median alongside.
 */
#include "bench_util.h"
#include "index.h"

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define RUNS_MAX 100

enum way { WAY_CHECKED, WAY_UNCHECKED, WAY_READ, WAY_COUNT };
static const char *const way_names[WAY_COUNT] = {
	"checked open + first stat", "unchecked open + first stat", "read(2) of the file"};

struct bench {
	struct cairn_store *store;
	const char *name;
	char path[4096];
	bool drop_all;
	unsigned runs;
	double ms[2][WAY_COUNT][RUNS_MAX]; /* [cold][way][run] */
};

static int drop_cache(const struct bench *b)
{
	if (b->drop_all) {
		sync();
		int fd = open("/proc/sys/vm/drop_caches", O_WRONLY);
		if (fd < 0 || write(fd, "3\n", 2) != 2) {
			fprintf(stderr, "drop_caches: %s (needs root)\n", strerror(errno));
			if (fd >= 0)
				close(fd);
			return -1;
		}
		close(fd);
		return 0;
	}
	int fd = open(b->path, O_RDONLY);
	if (fd < 0)
		return -1;
	fdatasync(fd);
	int r = posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
	close(fd);
	return r == 0 ? 0 : -1;
}

static double run_open(const struct bench *b, unsigned flags)
{
	struct cairn_index_stat st;
	uint64_t t0 = bench_now_ns();
	struct cairn_index *idx = cairn_index_new();

	if (!idx || cairn_index_open_flags(idx, b->store, b->name, flags) < 0 ||
	    cairn_index_getattr(idx, CAIRN_INDEX_ROOT, &st) < 0) {
		fprintf(stderr, "%s: %s\n", b->name, idx ? cairn_index_error(idx) : "no memory");
		exit(1);
	}
	double ms = (double)(bench_now_ns() - t0) / 1e6;
	cairn_index_free(idx);
	return ms;
}

static double run_read(const struct bench *b)
{
	static char buf[1 << 20];
	uint64_t t0 = bench_now_ns();
	int fd = open(b->path, O_RDONLY);

	if (fd < 0) {
		perror(b->path);
		exit(1);
	}
	while (read(fd, buf, sizeof(buf)) > 0)
		;
	close(fd);
	return (double)(bench_now_ns() - t0) / 1e6;
}

static double run_way(const struct bench *b, int way)
{
	if (way == WAY_READ)
		return run_read(b);
	return run_open(b, way == WAY_CHECKED ? 0 : CAIRN_INDEX_OPEN_UNCHECKED);
}

static void report(struct bench *b, int cold, int way, int base)
{
	char name[160], base_name[160];
	double *v = b->ms[cold][way], *w = b->ms[cold][base];
	double best = v[0], base_best = w[0];

	for (unsigned i = 1; i < b->runs; i++) {
		best = v[i] < best ? v[i] : best;
		base_best = w[i] < base_best ? w[i] : base_best;
	}
	double med = bench_median(v, b->runs), base_med = bench_median(w, b->runs);
	snprintf(name, sizeof(name), "%s, %s", way_names[way], cold ? "cold" : "warm");
	snprintf(base_name, sizeof(base_name), "%s", way_names[base]);
	printf("%s: %.3f ms (median %.3f) | baseline %s %.3f ms (median %.3f) | ratio %.2f "
	       "(medians %.2f)\n",
	       name, best, med, base_name, base_best, base_med, best / base_best, med / base_med);
}

int main(int argc, char **argv)
{
	struct bench b = {.runs = 10};
	int opt;

	while ((opt = getopt(argc, argv, "n:d")) != -1) {
		if (opt == 'n')
			b.runs = (unsigned)atoi(optarg);
		else if (opt == 'd')
			b.drop_all = true;
		else
			goto usage;
	}
	if (argc - optind != 2 || b.runs < 1 || b.runs > RUNS_MAX)
		goto usage;
	b.name = argv[optind + 1];
	snprintf(b.path, sizeof(b.path), "%s/snapshots/%s", argv[optind], b.name);
	b.store = cairn_store_new();
	if (!b.store || cairn_store_open(b.store, argv[optind]) < 0) {
		fprintf(stderr, "%s: %s\n", argv[optind],
			b.store ? cairn_store_error(b.store) : "no memory");
		return 1;
	}
	for (unsigned i = 0; i < b.runs; i++)
		for (int cold = 0; cold < 2; cold++)
			for (int k = 0; k < WAY_COUNT; k++) {
				/* swap the order from round to round */
				int way = (int)((k + i) % WAY_COUNT);
				if (cold && drop_cache(&b) < 0)
					return 1;
				if (!cold)
					run_way(&b, way); /* warm it */
				b.ms[cold][way][i] = run_way(&b, way);
			}
	for (int cold = 0; cold < 2; cold++) {
		report(&b, cold, WAY_CHECKED, WAY_UNCHECKED);
		report(&b, cold, WAY_READ, WAY_UNCHECKED);
		report(&b, cold, WAY_CHECKED, WAY_READ);
	}
	cairn_store_free(b.store);
	return 0;
usage:
	fprintf(stderr, "usage: bench_index_open [-n RUNS] [-d] STORE NAME\n");
	return 2;
}
