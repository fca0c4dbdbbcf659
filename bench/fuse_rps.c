/* fuse_rps.c: the request loops of bench/fuse-rps, one small program so
 * that each kind of request is timed without a process start per request.
 * Each mode runs THREADS threads for SECONDS and prints one line
 * "ops=N seconds=S per_s=R". bench/fuse-rps compiles it with the system
 * compiler (it needs nothing but libc).
 *
 *   neg DIR SECONDS THREADS        stat of names that do not exist, each new
 *                                  (a LOOKUP each: no negative entry to hit)
 *   getattr DIR SECONDS THREADS    statx with AT_STATX_FORCE_SYNC of DIR/f*
 *                                  (a GETATTR each, whatever the cache says)
 *   orc DIR SECONDS THREADS        open, read to the end and close DIR/f*
 *                                  in turn (an OPEN and a RELEASE each; READs
 *                                  while the page cache is cold)
 * DIR holds FILES files named f00000, f00001, ... (the FILES environment
 * variable, default 2000).
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static const char *mode, *dir;
static double seconds;
static unsigned files = 2000;
static atomic_bool stop;
static atomic_ulong total;
static atomic_int errors;

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int one(unsigned long tid, unsigned long i)
{
	char path[4096], buf[65536];
	struct statx stx;

	if (strcmp(mode, "neg") == 0) {
		snprintf(path, sizeof(path), "%s/nx-%d-%lu-%lu", dir, getpid(), tid, i);
		struct stat st;
		return stat(path, &st) < 0 ? 0 : -1;
	}
	/* Threads start at different files, so that they do not queue on one inode. */
	snprintf(path, sizeof(path), "%s/f%05lu", dir, (i + tid * 997) % files);
	if (strcmp(mode, "getattr") == 0)
		return statx(AT_FDCWD, path, AT_STATX_FORCE_SYNC, STATX_BASIC_STATS, &stx);
	int fd = open(path, O_RDONLY);
	if (fd < 0)
		return -1;
	ssize_t n;
	while ((n = read(fd, buf, sizeof(buf))) > 0)
		;
	close(fd);
	return n < 0 ? -1 : 0;
}

static void *worker(void *arg)
{
	unsigned long tid = (unsigned long)arg, i = 0;

	while (!atomic_load_explicit(&stop, memory_order_relaxed)) {
		if (one(tid, i++) < 0)
			atomic_fetch_add(&errors, 1);
	}
	atomic_fetch_add(&total, i);
	return NULL;
}

int main(int argc, char **argv)
{
	if (argc != 5 ||
	    (strcmp(argv[1], "neg") && strcmp(argv[1], "getattr") && strcmp(argv[1], "orc"))) {
		fprintf(stderr, "usage: fuse_rps neg|getattr|orc DIR SECONDS THREADS\n");
		return 2;
	}
	mode = argv[1];
	dir = argv[2];
	seconds = atof(argv[3]);
	unsigned threads = (unsigned)atoi(argv[4]);
	if (getenv("FILES"))
		files = (unsigned)atoi(getenv("FILES"));
	if (threads < 1 || threads > 64 || files < 1 || seconds <= 0)
		return 2;
	pthread_t t[64];
	double start = now_s();
	for (unsigned long k = 0; k < threads; k++)
		pthread_create(&t[k], NULL, worker, (void *)k);
	struct timespec ts = {(time_t)seconds, (long)((seconds - (time_t)seconds) * 1e9)};
	nanosleep(&ts, NULL);
	atomic_store(&stop, true);
	for (unsigned k = 0; k < threads; k++)
		pthread_join(t[k], NULL);
	double took = now_s() - start;
	unsigned long ops = atomic_load(&total);
	printf("ops=%lu seconds=%.3f per_s=%.0f\n", ops, took, (double)ops / took);
	if (atomic_load(&errors)) {
		fprintf(stderr, "fuse_rps: %d requests failed\n", atomic_load(&errors));
		return 1;
	}
	return 0;
}
