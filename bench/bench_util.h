/* bench_util.h: what the store benchmarks share: a clock, test data, a
 * throw-away store, and one output format. Every figure is printed next to a
 * baseline measured in the same run, as "name: value | baseline NAME value |
 * ratio R", so a reader never compares numbers from different machines or
 * days. Benchmarks are programs, not tests: nothing here asserts a timing.
 */
#ifndef CAIRN_BENCH_UTIL_H
#define CAIRN_BENCH_UTIL_H

#include "store.h"

#include <stddef.h>
#include <stdint.h>

/* Decimal units, as throughput is usually quoted: 1 GB/s = 1e9 bytes/s. */
#define BENCH_MB 1000000.0
#define BENCH_GB 1000000000.0

/* A monotonic clock in nanoseconds. */
uint64_t bench_now_ns(void);
/* CPU time of the calling thread / of the whole process, in nanoseconds. */
uint64_t bench_thread_cpu_ns(void);
uint64_t bench_process_cpu_ns(void);

/* Fills buf with reproducible pseudo-random bytes (xoshiro-like, seeded). */
void bench_fill_random(void *buf, size_t size, uint64_t seed);

/* Reads at most max bytes (0: all) of path into a new buffer, every page
 * touched. Returns 0 and the buffer (caller frees) or -errno. */
int bench_read_file(const char *path, size_t max, uint8_t **ret_buf, size_t *ret_size);

/* A store in a fresh temp directory under parent (NULL: $TMPDIR or /tmp),
 * created with the default parameters. */
struct bench_store {
	char path[4096];
	struct cairn_store *store;
};
/* Returns 0 or -errno, with a message on stderr. */
int bench_store_create(struct bench_store *bs, const char *parent);
/* Binds bs to the existing store at path (it is never deleted). */
int bench_store_open(struct bench_store *bs, const char *path);
/* Frees the handle and, unless keep, deletes the directory tree. */
void bench_store_release(struct bench_store *bs, int keep);

/* Prints "name: value unit | baseline BASE base_value unit | ratio R" with
 * R = value / base_value (throughputs: higher is better). */
void bench_report_rate(const char *name, double value, const char *base_name, double base_value,
		       const char *unit);

/* The median of n values (sorts them in place). */
double bench_median(double *values, size_t n);

#endif
