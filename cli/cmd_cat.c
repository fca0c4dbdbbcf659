/* cmd_cat.c: `cairn cat`: writes files of snapshots to stdout, run by run
 * through the same reader the mount's fallback path uses, so every chunk is
 * checked against its id on the way (invariants 2 and 5, docs/ARCHITECTURE.md).
 */
#include <getopt.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "cli.h"

static void cat_help(void)
{
	printf("Usage: cairn cat [-s STORE] SNAPSHOT:PATH...\n"
	       "\n"
	       "Write the regular file PATH of SNAPSHOT to stdout. Symlinks are followed\n"
	       "inside the snapshot.\n");
}

static int write_zeros(uint64_t size)
{
	static const uint8_t zeros[65536];

	while (size > 0) {
		size_t n = size < sizeof(zeros) ? (size_t)size : sizeof(zeros);
		int r = cairn_write_all(STDOUT_FILENO, zeros, n);
		if (r < 0)
			return r;
		size -= n;
	}
	return 0;
}

/* Writes obj's file run by run; the reader is freed before obj's store. */
static int cat_runs(struct cli_object *obj)
{
	_cleanup_(cairn_content_reader_freep) struct cairn_content_reader *reader = NULL;
	struct cairn_content_run cr;

	int r = cairn_content_reader_new(obj->store, NULL, &reader);
	if (r < 0) {
		cli_error("out of memory");
		return EXIT_ERROR;
	}
	r = cairn_content_open(reader, obj->idx, obj->ino, NULL);
	if (r == -EISDIR || r == -EINVAL) {
		cli_error("%s:%s: not a regular file", obj->snapshot, obj->path);
		return EXIT_ERROR;
	}
	if (r < 0)
		return cli_object_error(obj, r);
	/* A remote store's: the file's pack bytes in a few parallel GETs; what
	 * it misses the reads fetch, and report. */
	(void)cairn_content_prefetch(reader);
	while ((r = cairn_content_next(reader, &cr)) > 0) {
		r = cr.data ? cairn_write_all(STDOUT_FILENO, cr.data, (size_t)cr.run.size)
			    : write_zeros(cr.run.size);
		if (r < 0) {
			cli_error("writing to stdout: %s", strerror(-r));
			return EXIT_ERROR;
		}
	}
	if (r < 0) {
		cli_error("%s:%s: %s", obj->snapshot, obj->path, cairn_content_error(reader));
		return EXIT_ERROR;
	}
	return EXIT_OK;
}

static int cat_one(const struct cli *cli, const char *arg)
{
	struct cli_object obj;

	if (!strchr(arg, ':')) {
		cli_error("'%s' names no file: use SNAPSHOT:PATH", arg);
		return EXIT_USAGE;
	}
	if (cli_object_open(cli, arg, true, &obj) != EXIT_OK)
		return EXIT_ERROR;
	int status = cat_runs(&obj);
	cli_object_release(&obj);
	return status;
}

int cmd_cat(struct cli *cli, int argc, char **argv)
{
	static const struct option options[] = {
		CLI_COMMON_OPTIONS,
		{0},
	};
	int c, r, status = EXIT_OK;

	while ((c = getopt_long(argc, argv, CLI_COMMON_SHORT, options, NULL)) != -1) {
		if ((r = cli_common_option(cli, c, cat_help)) != 0)
			return r < 0 ? EXIT_OK : r;
	}
	if (optind >= argc)
		return cli_usage_error(cli, "no file given");
	for (int i = optind; i < argc; i++) {
		r = cat_one(cli, argv[i]);
		if (r != EXIT_OK)
			status = r;
	}
	return status;
}
