/* dirseek.c: readdir with telldir/seekdir on a directory, for the mount
 * tests. It reads the directory once, keeping each entry's name and the
 * position telldir gave just before it, then seeks back to positions
 * forwards and backwards (and from a second stream, after rewinddir) and
 * checks the same entries come back in the same order. A readdir offset
 * that is not an entry position, or a reply that skips or repeats entries
 * at a buffer boundary, shows up here.
 *
 * usage: dirseek DIR COUNT   (COUNT: the entries besides . and ..)
 * exit 0 when all agree, 1 with a line per problem.
 */
#include <dirent.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct listing {
	char **names;
	long *positions; /* telldir() before the entry was read */
	size_t count;
};

static int failures;

__attribute__((format(printf, 1, 2))) static void fail(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	fprintf(stderr, "dirseek: ");
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
	failures++;
}

static int read_all(DIR *dir, struct listing *out)
{
	size_t cap = 0;

	*out = (struct listing){0};
	for (;;) {
		long position = telldir(dir);
		errno = 0;
		struct dirent *de = readdir(dir);
		if (!de)
			return errno ? -errno : 0;
		if (out->count == cap) {
			cap = cap ? cap * 2 : 256;
			char **names = realloc(out->names, cap * sizeof(*names));
			long *positions = realloc(out->positions, cap * sizeof(*positions));
			if (names)
				out->names = names;
			if (positions)
				out->positions = positions;
			if (!names || !positions)
				return -ENOMEM;
		}
		out->names[out->count] = strdup(de->d_name);
		if (!out->names[out->count])
			return -ENOMEM;
		out->positions[out->count++] = position;
	}
}

static void listing_release(struct listing *l)
{
	for (size_t i = 0; i < l->count; i++)
		free(l->names[i]);
	free(l->names);
	free(l->positions);
}

/* Seeks to entry `at` and checks the next `len` entries (and the end). */
static void check_from(DIR *dir, const struct listing *l, size_t at, size_t len)
{
	seekdir(dir, l->positions[at]);
	for (size_t i = at; i < at + len && i <= l->count; i++) {
		errno = 0;
		struct dirent *de = readdir(dir);
		if (i == l->count) {
			if (de)
				fail("after seeking to entry %zu: '%s' past the end", at,
				     de->d_name);
			return;
		}
		if (!de) {
			fail("after seeking to entry %zu: the stream ended early at entry %zu (%s)",
			     at, i, strerror(errno));
			return;
		}
		if (strcmp(de->d_name, l->names[i]) != 0) {
			fail("after seeking to entry %zu: entry %zu is '%s', not '%s'", at, i,
			     de->d_name, l->names[i]);
			return;
		}
	}
}

static int compare_names(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Every name once, . and .. included, and COUNT others. */
static void check_names(const struct listing *l, long count)
{
	char **sorted = malloc((l->count ? l->count : 1) * sizeof(*sorted));
	int dots = 0;

	if (!sorted) {
		fail("out of memory");
		return;
	}
	memcpy(sorted, l->names, l->count * sizeof(*sorted));
	qsort(sorted, l->count, sizeof(*sorted), compare_names);
	for (size_t i = 0; i < l->count; i++) {
		if (strcmp(sorted[i], ".") == 0 || strcmp(sorted[i], "..") == 0)
			dots++;
		if (i > 0 && strcmp(sorted[i], sorted[i - 1]) == 0)
			fail("'%s' comes twice", sorted[i]);
	}
	if (dots != 2)
		fail("%d of . and .. seen", dots);
	if ((long)l->count != count + 2)
		fail("%zu entries, expected %ld", l->count, count + 2);
	free(sorted);
}

int main(int argc, char **argv)
{
	struct listing first, again;

	if (argc != 3) {
		fprintf(stderr, "usage: dirseek DIR COUNT\n");
		return 2;
	}
	DIR *dir = opendir(argv[1]);
	DIR *other = opendir(argv[1]);
	if (!dir || !other) {
		perror(argv[1]);
		return 1;
	}
	if (read_all(dir, &first) < 0) {
		perror("readdir");
		return 1;
	}
	check_names(&first, atol(argv[2]));
	size_t n = first.count;
	/* Forwards, then backwards, then from the end back to the start. */
	size_t starts[] = {0,     1,     2,     3, n / 7, n / 3, n / 2, n - n / 3, n - 2,
			   n - 1, n / 2, n / 7, 2, 0,     n - 1, 0,     n / 2 + 1};
	for (size_t i = 0; i < sizeof(starts) / sizeof(starts[0]); i++)
		if (starts[i] < n)
			check_from(dir, &first, starts[i], 300);
	for (size_t at = 0; at < n; at += 97)
		check_from(other, &first, at, 5);
	/* A rewound stream lists the same entries at the same positions. */
	rewinddir(other);
	if (read_all(other, &again) < 0) {
		perror("readdir after rewinddir");
		return 1;
	}
	if (again.count != first.count)
		fail("after rewinddir: %zu entries, not %zu", again.count, first.count);
	for (size_t i = 0; i < again.count && i < first.count; i++) {
		if (strcmp(again.names[i], first.names[i]) != 0 ||
		    again.positions[i] != first.positions[i]) {
			fail("after rewinddir: entry %zu is '%s' at %ld, not '%s' at %ld", i,
			     again.names[i], again.positions[i], first.names[i],
			     first.positions[i]);
			break;
		}
	}
	check_from(other, &first, n / 2, 10);
	listing_release(&first);
	listing_release(&again);
	closedir(dir);
	closedir(other);
	return failures ? 1 : 0;
}
