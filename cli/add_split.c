/* add_split.c: split archives for `cairn add` (and `cairn mount ARCHIVE`):
 * NAME.001 names the first of the parts NAME.002, NAME.003, ... (the same
 * width of digits, consecutive), which 7-Zip, HJSplit and split(1) cut
 * byte by byte from one file; the import reads them as that file. The
 * snapshot and the messages are named after NAME. A missing part in the
 * middle is an error naming it; every part must be a regular file (opened
 * without blocking, so that a FIFO or a device among them cannot hang the
 * add).
 */
#include <dirent.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "cli.h"

/* The digits after the last '.' of path: their count, and their value; 0
 * when path does not end so. */
static size_t part_suffix(const char *path, unsigned long *ret_value)
{
	const char *dot = strrchr(path, '.');

	if (!dot || strchr(dot, '/'))
		return 0;
	size_t width = strlen(dot + 1);
	if (width < 3 || width > 6 || strspn(dot + 1, "0123456789") != width)
		return 0;
	*ret_value = strtoul(dot + 1, NULL, 10);
	return width;
}

static int open_part(const char *path, uint64_t *size)
{
	struct stat st;
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);

	if (fd < 0)
		return -errno;
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		close(fd);
		return -EINVAL;
	}
	*size += (uint64_t)st.st_size;
	/* Regular files ignore O_NONBLOCK; cleared all the same. */
	fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK);
	return fd;
}

/* After the parts 1..count: a part beyond count that exists means part
 * count + 1 is missing. Returns the first such number, or 0. */
static unsigned long part_beyond(const char *base, size_t width, unsigned long count)
{
	char dir[PATH_MAX];
	const char *slash = strrchr(base, '/');
	const char *name = slash ? slash + 1 : base;
	size_t name_len = strlen(name);
	unsigned long found = 0;

	snprintf(dir, sizeof(dir), "%.*s", slash ? (int)(slash - base) + 1 : 1, slash ? base : ".");
	DIR *d = opendir(dir);
	if (!d)
		return 0;
	for (struct dirent *e; (e = readdir(d));) {
		unsigned long value;
		if (strncmp(e->d_name, name, name_len) != 0 || e->d_name[name_len] != '.' ||
		    part_suffix(e->d_name + name_len, &value) != width)
			continue;
		if (value > count + 1 && (found == 0 || value < found))
			found = value;
	}
	closedir(d);
	return found;
}

static int split_fail(struct cli_split *split, const char *fmt, const char *part, const char *why)
{
	cli_error(fmt, part, why);
	cli_split_close(split);
	return -1;
}

int cli_split_open(const char *path, struct cli_split *split)
{
	unsigned long first;
	size_t width = part_suffix(path, &first);
	char part[PATH_MAX + 16];

	*split = (struct cli_split){0};
	if (width == 0 || first != 1)
		return 0;
	snprintf(split->base, sizeof(split->base), "%.*s", (int)(strlen(path) - width - 1), path);
	for (unsigned long n = 1;; n++) {
		snprintf(part, sizeof(part), "%s.%0*lu", split->base, (int)width, n);
		int fd = open_part(part, &split->size);
		if (fd == -ENOENT && n > 1)
			break;
		if (fd == -EINVAL)
			return split_fail(
				split, "%s: %s", part,
				"not a regular file (each part of a split archive must be)");
		if (fd < 0)
			return split_fail(split, "%s: %s", part, strerror(-fd));
		if (split->count == ARRAY_SIZE(split->fds)) {
			close(fd);
			return split_fail(split, "%s: %s", part, "too many parts (at most 512)");
		}
		split->fds[split->count++] = fd;
	}
	unsigned long beyond = part_beyond(split->base, width, split->count);
	if (beyond) {
		char why[80];
		snprintf(why, sizeof(why), "missing, though part %lu exists", beyond);
		return split_fail(split, "%s: %s", part, why);
	}
	return 1;
}

void cli_split_close(struct cli_split *split)
{
	for (size_t i = 0; i < split->count; i++)
		close(split->fds[i]);
	split->count = 0;
}
