/* mktar.c: writes the extreme tar archives of test_limits.sh to stdout,
 * streaming, in constant memory: millions of tiny entries, paths thousands
 * of components deep, names of 64 KiB, huge xattrs, sizes that lie, and a
 * sparse file of a terabyte (pax sparse format 1.0). Python's tarfile
 * would take minutes for the big ones and cannot write lies or sparse
 * maps; bsdtar refuses most of them.
 *
 * usage: mktar many COUNT           COUNT files of a few bytes, 1000 a dir
 *        mktar deep DEPTH           one file DEPTH components deep
 *        mktar name LENGTH          one file named by LENGTH bytes
 *        mktar symlink LENGTH       a symlink whose target is LENGTH bytes
 *        mktar xattr SIZE [COUNT]   a file with COUNT xattrs of SIZE bytes
 *        mktar lie DECLARED ACTUAL  a file whose header says DECLARED bytes,
 *                                   followed by ACTUAL bytes and the end
 *        mktar sparse SIZE          a file of SIZE bytes with 4 KiB of data
 *                                   at its start, middle and end
 *        mktar zeros SIZE [COUNT [PREFIX]]  COUNT files of SIZE zero bytes
 *                                   named PREFIXzeros-N (bombs, once
 *                                   compressed; PREFIX ../ makes cairn skip
 *                                   them)
 */
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define BLOCK 512u

static void put(const void *data, size_t size)
{
	if (fwrite(data, 1, size, stdout) != size) {
		perror("mktar: write");
		exit(1);
	}
}

static void pad(uint64_t size)
{
	static const char zeros[BLOCK];

	if (size % BLOCK)
		put(zeros, BLOCK - size % BLOCK);
}

static void octal(char *field, size_t width, uint64_t value)
{
	snprintf(field, width, "%0*" PRIo64, (int)width - 1, value);
}

/* A ustar header; a size too big for 11 octal digits is written base-256. */
static void header(const char *name, char type, uint64_t size, const char *link)
{
	char h[BLOCK] = {0};
	unsigned sum = 0;

	snprintf(h, 100, "%s", name);
	octal(h + 100, 8, type == '5' ? 0755 : 0644);
	octal(h + 108, 8, 1000);
	octal(h + 116, 8, 1000);
	if (size < 077777777777ull) {
		octal(h + 124, 12, size);
	} else {
		h[124] = (char)0x80;
		for (int i = 0; i < 8; i++)
			h[135 - i] = (char)(size >> (8 * i));
	}
	octal(h + 136, 12, 1600000000);
	memset(h + 148, ' ', 8);
	h[156] = type;
	if (link)
		snprintf(h + 157, 100, "%s", link);
	memcpy(h + 257, "ustar", 6);
	memcpy(h + 263, "00", 2);
	for (size_t i = 0; i < BLOCK; i++)
		sum += (unsigned char)h[i];
	snprintf(h + 148, 8, "%06o", sum);
	put(h, BLOCK);
}

/* One pax record "LEN key=value\n", LEN counting itself. */
static uint64_t record_size(const char *key, uint64_t value_size)
{
	uint64_t body = strlen(key) + value_size + 3; /* ' ', '=', '\n' */
	uint64_t len = body + 1;

	while (len != body + (uint64_t)snprintf(NULL, 0, "%" PRIu64, len))
		len = body + (uint64_t)snprintf(NULL, 0, "%" PRIu64, len);
	return len;
}

static void record(const char *key, const void *value, uint64_t value_size)
{
	printf("%" PRIu64 " %s=", record_size(key, value_size), key);
	put(value, value_size);
	put("\n", 1);
}

/* A repeated byte as a pax value, without holding it in memory. */
static void record_fill(const char *key, char c, uint64_t value_size)
{
	char chunk[4096];

	memset(chunk, c, sizeof(chunk));
	printf("%" PRIu64 " %s=", record_size(key, value_size), key);
	for (uint64_t left = value_size; left > 0;) {
		size_t n = left < sizeof(chunk) ? (size_t)left : sizeof(chunk);
		put(chunk, n);
		left -= n;
	}
	put("\n", 1);
}

static void end(void)
{
	static const char zeros[2 * BLOCK];

	put(zeros, sizeof(zeros));
}

static void file(const char *name, const char *data, size_t size)
{
	header(name, '0', size, NULL);
	put(data, size);
	pad(size);
}

static void many(uint64_t count)
{
	char name[64], data[32];

	for (uint64_t i = 0; i < count; i++) {
		if (i % 1000 == 0) {
			snprintf(name, sizeof(name), "d%" PRIu64 "/", i / 1000);
			header(name, '5', 0, NULL);
		}
		/* 1000 distinct contents: most files dedup, some chunks are new. */
		int n = snprintf(data, sizeof(data), "tiny %" PRIu64 "\n", i % 1000);
		snprintf(name, sizeof(name), "d%" PRIu64 "/f%" PRIu64, i / 1000, i);
		file(name, data, (size_t)n);
	}
	end();
}

/* path: a/a/.../a/file, depth components in all, in a pax header. */
static void deep(uint64_t depth)
{
	uint64_t size = 2 * (depth - 1) + 4;

	header("PaxHeaders/deep", 'x', record_size("path", size), NULL);
	printf("%" PRIu64 " path=", record_size("path", size));
	for (uint64_t i = 1; i < depth; i++)
		put("a/", 2);
	put("file\n", 5);
	pad(record_size("path", size));
	file("deep-fallback-name", "deep\n", 5);
	end();
}

static void long_name(uint64_t length)
{
	header("PaxHeaders/name", 'x', record_size("path", length), NULL);
	record_fill("path", 'n', length);
	pad(record_size("path", length));
	file("long-fallback-name", "long\n", 5);
	file("after", "after\n", 6);
	end();
}

static void long_symlink(uint64_t length)
{
	header("PaxHeaders/link", 'x', record_size("linkpath", length), NULL);
	record_fill("linkpath", 't', length);
	pad(record_size("linkpath", length));
	header("link", '2', 0, "fallback-target");
	file("after", "after\n", 6);
	end();
}

static void xattrs(uint64_t size, uint64_t count)
{
	char key[64];
	uint64_t total = 0;

	for (uint64_t i = 0; i < count; i++) {
		snprintf(key, sizeof(key), "SCHILY.xattr.user.big%" PRIu64, i);
		total += record_size(key, size);
	}
	header("PaxHeaders/x", 'x', total, NULL);
	for (uint64_t i = 0; i < count; i++) {
		snprintf(key, sizeof(key), "SCHILY.xattr.user.big%" PRIu64, i);
		record_fill(key, 'v', size);
	}
	pad(total);
	file("with-xattrs", "x\n", 2);
	end();
}

static void lie(uint64_t declared, uint64_t actual)
{
	char chunk[4096];

	file("before", "before\n", 7);
	header("liar", '0', declared, NULL);
	memset(chunk, 'L', sizeof(chunk));
	for (uint64_t left = actual; left > 0;) {
		size_t n = left < sizeof(chunk) ? (size_t)left : sizeof(chunk);
		put(chunk, n);
		left -= n;
	}
	pad(actual);
	end();
}

/* GNU sparse 1.0 in pax: the map ("3\n" then offset and size lines) heads
 * the entry's data, padded to a block; then the data of each region. */
static void sparse(uint64_t size)
{
	char map[256], data[4096], size_text[32];
	uint64_t offsets[3] = {0, size / 2, size - sizeof(data)};

	int n = snprintf(map, sizeof(map), "3\n");
	for (int i = 0; i < 3; i++)
		n += snprintf(map + n, sizeof(map) - (size_t)n, "%" PRIu64 "\n%zu\n", offsets[i],
			      sizeof(data));
	uint64_t map_size = ((uint64_t)n + BLOCK - 1) / BLOCK * BLOCK;
	int len = snprintf(size_text, sizeof(size_text), "%" PRIu64, size);
	uint64_t total = record_size("GNU.sparse.major", 1) + record_size("GNU.sparse.minor", 1) +
			 record_size("GNU.sparse.name", 6) +
			 record_size("GNU.sparse.realsize", (uint64_t)len);
	header("PaxHeaders/sparse", 'x', total, NULL);
	record("GNU.sparse.major", "1", 1);
	record("GNU.sparse.minor", "0", 1);
	record("GNU.sparse.name", "sparse", 6);
	record("GNU.sparse.realsize", size_text, (uint64_t)len);
	pad(total);
	header("GNUSparseFile.0/sparse", '0', map_size + 3 * sizeof(data), NULL);
	put(map, (size_t)n);
	pad((uint64_t)n);
	for (int i = 0; i < 3; i++) {
		memset(data, 'A' + i, sizeof(data));
		put(data, sizeof(data));
	}
	end();
}

static void zeros(uint64_t size, uint64_t count, const char *prefix)
{
	static const char chunk[1u << 16];
	char name[64];

	for (uint64_t i = 0; i < count; i++) {
		snprintf(name, sizeof(name), "%szeros-%" PRIu64, prefix, i);
		header(name, '0', size, NULL);
		for (uint64_t left = size; left > 0;) {
			size_t n = left < sizeof(chunk) ? (size_t)left : sizeof(chunk);
			put(chunk, n);
			left -= n;
		}
		pad(size);
	}
	end();
}

static uint64_t number(const char *text)
{
	char *rest;
	uint64_t value = strtoull(text, &rest, 10);

	if (*rest == 'K')
		value <<= 10;
	else if (*rest == 'M')
		value <<= 20;
	else if (*rest == 'G')
		value <<= 30;
	else if (*rest == 'T')
		value <<= 40;
	return value;
}

int main(int argc, char **argv)
{
	if (argc < 3) {
		fprintf(stderr,
			"usage: mktar many|deep|name|symlink|xattr|lie|sparse|zeros N [N]\n");
		return 2;
	}
	const char *what = argv[1];
	uint64_t n = number(argv[2]);
	uint64_t m = argc > 3 ? number(argv[3]) : 1;

	if (strcmp(what, "many") == 0)
		many(n);
	else if (strcmp(what, "deep") == 0 && n > 0)
		deep(n);
	else if (strcmp(what, "name") == 0)
		long_name(n);
	else if (strcmp(what, "symlink") == 0)
		long_symlink(n);
	else if (strcmp(what, "xattr") == 0)
		xattrs(n, m);
	else if (strcmp(what, "lie") == 0)
		lie(n, m);
	else if (strcmp(what, "sparse") == 0 && n >= 3 * 4096)
		sparse(n);
	else if (strcmp(what, "zeros") == 0)
		zeros(n, m, argc > 4 ? argv[4] : "");
	else
		return 2;
	return fflush(stdout) == 0 ? 0 : 1;
}
