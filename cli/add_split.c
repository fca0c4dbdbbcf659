/* add_split.c: split archives for `cairn add` (and `cairn mount ARCHIVE`):
 * NAME.001 names the first of the parts NAME.002, NAME.003, ... (the same
 * width of digits, consecutive), which 7-Zip, HJSplit and split(1) cut
 * byte by byte from one file; the import reads them as that file. The
 * snapshot and the messages are named after NAME. A multi-volume RAR
 * archive (NAME.part1.rar, NAME.part2.rar, ...; or NAME.rar, NAME.r00,
 * NAME.r01, ... when NAME.rar's header says it is a volume) is read the
 * same way, as NAME.rar: libarchive's RAR reader takes the volumes one
 * after the other in one stream, skipping each volume's headers and
 * continuing a file cut across them. What it does not check of RAR 4
 * volumes, cairn_rar_volumes_check does first. A missing part in the
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

enum { SPLIT_DIGITS, SPLIT_RAR_PART, SPLIT_RAR_OLD };

/* The name of part n (from 1). */
static void part_name(const struct cli_split *split, unsigned long n, char *out, size_t size)
{
	if (split->naming == SPLIT_RAR_PART)
		snprintf(out, size, "%s.part%0*lu.rar", split->prefix, split->width, n);
	else if (split->naming == SPLIT_RAR_OLD && n == 1)
		snprintf(out, size, "%s.rar", split->prefix);
	else if (split->naming == SPLIT_RAR_OLD) /* .r00 to .r99, then .s00 */
		snprintf(out, size, "%s.%c%02lu", split->prefix, (int)('r' + (n - 2) / 100),
			 (n - 2) % 100);
	else
		snprintf(out, size, "%s.%0*lu", split->prefix, split->width, n);
}

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

/* The number of the part a file named rest after the prefix's last
 * component would be, or 0. */
static unsigned long part_number(const struct cli_split *split, const char *rest)
{
	unsigned long value;
	size_t digits;

	switch (split->naming) {
	case SPLIT_RAR_PART:
		digits = strncmp(rest, ".part", 5) == 0 ? strspn(rest + 5, "0123456789") : 0;
		if (digits != (size_t)split->width || strcmp(rest + 5 + digits, ".rar") != 0)
			return 0;
		return strtoul(rest + 5, NULL, 10);
	case SPLIT_RAR_OLD:
		if (rest[0] != '.' || rest[1] < 'r' || rest[1] > 'z' ||
		    strspn(rest + 2, "0123456789") != 2 || rest[4])
			return 0;
		return (unsigned long)(rest[1] - 'r') * 100 + strtoul(rest + 2, NULL, 10) + 2;
	default:
		return part_suffix(rest, &value) == (size_t)split->width && rest[0] == '.' &&
				       !strchr(rest + 1, '.')
			       ? value
			       : 0;
	}
}

/* After the parts 1..count: a part beyond count that exists means part
 * count + 1 is missing. Returns the first such number, or 0. */
static unsigned long part_beyond(const struct cli_split *split)
{
	char dir[PATH_MAX];
	const char *slash = strrchr(split->prefix, '/');
	const char *name = slash ? slash + 1 : split->prefix;
	size_t name_len = strlen(name);
	unsigned long found = 0;

	snprintf(dir, sizeof(dir), "%.*s", slash ? (int)(slash - split->prefix) + 1 : 1,
		 slash ? split->prefix : ".");
	DIR *d = opendir(dir);
	if (!d)
		return 0;
	for (struct dirent *e; (e = readdir(d));) {
		if (strncmp(e->d_name, name, name_len) != 0)
			continue;
		unsigned long value = part_number(split, e->d_name + name_len);
		if (value > split->count + 1 && (found == 0 || value < found))
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

/* NAME.part1.rar (any width of digits): the prefix NAME and the width. */
static bool rar_part_first(const char *path, struct cli_split *split)
{
	size_t len = strlen(path);

	if (len < 4 || strcmp(path + len - 4, ".rar") != 0)
		return false;
	size_t digits = 0;
	while (digits < len - 4 && path[len - 5 - digits] >= '0' && path[len - 5 - digits] <= '9')
		digits++;
	size_t dot = len - 4 - digits - 5; /* where ".part" would start */
	if (digits == 0 || digits > 6 || len - 4 - digits < 6 ||
	    strncmp(path + dot, ".part", 5) != 0 || strtoul(path + dot + 5, NULL, 10) != 1)
		return false;
	snprintf(split->prefix, sizeof(split->prefix), "%.*s", (int)dot, path);
	split->width = (int)digits;
	return true;
}

/* NAME.rar whose RAR 4 archive header says it is a volume. */
static bool rar_old_first(const char *path, struct cli_split *split)
{
	size_t len = strlen(path);

	if (len < 5 || strcmp(path + len - 4, ".rar") != 0)
		return false;
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
	if (fd < 0)
		return false;
	struct stat st;
	bool volume = fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && cairn_rar_is_volume(fd);
	close(fd);
	if (volume)
		snprintf(split->prefix, sizeof(split->prefix), "%.*s", (int)(len - 4), path);
	return volume;
}

/* Which naming path starts, if any: 1, else 0. */
static int split_naming(const char *path, struct cli_split *split)
{
	unsigned long first;
	size_t width = part_suffix(path, &first);

	if (width > 0 && first == 1) {
		split->naming = SPLIT_DIGITS;
		split->width = (int)width;
		snprintf(split->prefix, sizeof(split->prefix), "%.*s",
			 (int)(strlen(path) - width - 1), path);
		snprintf(split->base, sizeof(split->base), "%s", split->prefix);
		return 1;
	}
	if (rar_part_first(path, split))
		split->naming = SPLIT_RAR_PART;
	else if (rar_old_first(path, split))
		split->naming = SPLIT_RAR_OLD;
	else
		return 0;
	snprintf(split->base, sizeof(split->base), "%.*s.rar", (int)sizeof(split->base) - 5,
		 split->prefix);
	return 1;
}

/* RAR 4 volumes: what libarchive does not check (cairn_rar_volumes_check). */
static int check_rar(struct cli_split *split)
{
	char part[PATH_MAX + 16], why[400];
	size_t volume = 0;

	if (split->naming == SPLIT_DIGITS || !cairn_rar_is_volume(split->fds[0]))
		return 0;
	int r = cairn_rar_volumes_check(split->fds, split->count, &volume, why, sizeof(why));
	if (r == 0)
		return 0;
	if (r == -ENOENT) {
		char missing[600];
		snprintf(missing, sizeof(missing), "missing (%s%s)", why,
			 why[0] ? " continues in it" : "the volume before says one follows");
		part_name(split, split->count + 1, part, sizeof(part));
		return split_fail(split, "%s: %s", part, missing);
	}
	part_name(split, volume + 1, part, sizeof(part));
	return split_fail(split, "%s: %s", part, r == -EBADMSG ? why : strerror(-r));
}

int cli_split_open(const char *path, struct cli_split *split)
{
	char part[PATH_MAX + 16];

	*split = (struct cli_split){0};
	if (!split_naming(path, split))
		return 0;
	for (unsigned long n = 1;; n++) {
		part_name(split, n, part, sizeof(part));
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
	unsigned long beyond = part_beyond(split);
	if (beyond) {
		char why[80];
		snprintf(why, sizeof(why), "missing, though part %lu exists", beyond);
		return split_fail(split, "%s: %s", part, why);
	}
	if (check_rar(split) < 0)
		return -1;
	return 1;
}

void cli_split_close(struct cli_split *split)
{
	for (size_t i = 0; i < split->count; i++)
		close(split->fds[i]);
	split->count = 0;
}
