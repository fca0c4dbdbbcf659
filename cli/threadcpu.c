/* threadcpu.c: with CAIRN_THREAD_CPU set, `cairn add` ends by saying on
 * stderr how its CPU time split between its threads, by role, from
 * /proc/self/task/<tid>/{comm,stat} (the threads name themselves): the
 * calling thread that parses the archive and copies file data ("cairn"),
 * the input's read-ahead or decoding thread ("io": cairn-io, cairn-decode,
 * joined at each archive's end, so counted as the rest of
 * getrusage(RUSAGE_SELF)), the cutters, the sequencer, the compression
 * workers and any other thread.
 * bench/add-scaling reads the line; it shows whether the reading thread
 * bounds how far an add scales with cores.
 */
#include <stdio.h>

#include "cli.h"

#include <dirent.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

enum { ROLE_READ, ROLE_IO, ROLE_CUT, ROLE_SEQ, ROLE_ZSTD, ROLE_OTHER, ROLE_COUNT };

static int role_of(const char *comm)
{
	static const char *const names[] = {"cairn", "cairn-io", "cairn-cut", "cairn-seq",
					    "cairn-zstd"};

	if (strcmp(comm, "cairn-decode") == 0)
		return ROLE_IO;
	for (int i = 0; i < ROLE_OTHER; i++)
		if (strcmp(comm, names[i]) == 0)
			return i;
	return ROLE_OTHER;
}

/* Adds a task's utime + stime, in clock ticks, to its role. */
static void add_task(const char *tid, double *ticks)
{
	char path[300], comm[32] = "", line[1024];
	FILE *f;

	snprintf(path, sizeof(path), "/proc/self/task/%s/comm", tid);
	if ((f = fopen(path, "re"))) {
		if (fgets(comm, sizeof(comm), f))
			comm[strcspn(comm, "\n")] = '\0';
		fclose(f);
	}
	snprintf(path, sizeof(path), "/proc/self/task/%s/stat", tid);
	if (!(f = fopen(path, "re")))
		return;
	size_t n = fread(line, 1, sizeof(line) - 1, f);
	fclose(f);
	line[n] = '\0';
	const char *p = strrchr(line, ')'); /* comm may hold spaces */
	unsigned long long utime, stime;
	/* After ")": state and fields 4..13, then utime (14) and stime (15). */
	if (p && sscanf(p + 1, " %*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &utime,
			&stime) == 2)
		ticks[role_of(comm)] += (double)(utime + stime);
}

void cli_thread_cpu_report(void)
{
	double ticks[ROLE_COUNT] = {0}, sec[ROLE_COUNT], seen = 0;
	struct rusage self;
	DIR *dir;

	if (!getenv("CAIRN_THREAD_CPU") || !(dir = opendir("/proc/self/task")))
		return;
	for (struct dirent *de; (de = readdir(dir));)
		if (de->d_name[0] != '.')
			add_task(de->d_name, ticks);
	closedir(dir);
	double hz = (double)sysconf(_SC_CLK_TCK);
	for (int i = 0; i < ROLE_COUNT; i++) {
		sec[i] = ticks[i] / hz;
		seen += sec[i];
	}
	getrusage(RUSAGE_SELF, &self);
	double total = (double)self.ru_utime.tv_sec + self.ru_utime.tv_usec / 1e6 +
		       (double)self.ru_stime.tv_sec + self.ru_stime.tv_usec / 1e6;
	if (total > seen)
		sec[ROLE_IO] += total - seen; /* ended: each archive's read-ahead or decoder */
	else
		total = seen;
	fprintf(stderr,
		"thread cpu: read %.2f s, io %.2f s, cut %.2f s, sequence %.2f s, compress %.2f s, "
		"other %.2f s, total %.2f s, read share %.3f\n",
		sec[ROLE_READ], sec[ROLE_IO], sec[ROLE_CUT], sec[ROLE_SEQ], sec[ROLE_ZSTD],
		sec[ROLE_OTHER], total, total > 0 ? sec[ROLE_READ] / total : 0.0);
}
