/* cmd_cat.c: `cairn cat`: writes files of snapshots to stdout, run by run
 * through the same reader the mount's fallback path uses, so every chunk is
 * checked against its id on the way (DESIGN.md invariants 2 and 5).
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

static int cat_runs(struct cli_object *obj, struct cairn_index_reader *reader,
		    const struct cairn_index_file *file)
{
	for (uint32_t i = 0; i < file->run_count; i++) {
		struct cairn_index_run run;
		const void *data;
		int r = cairn_index_reader_run(reader, obj->ino, i, &data, &run);
		if (r < 0) {
			cli_error("%s", cairn_index_reader_error(reader));
			return EXIT_ERROR;
		}
		r = data ? cairn_write_all(STDOUT_FILENO, data, (size_t)run.size)
			 : write_zeros(run.size);
		if (r < 0) {
			cli_error("writing to stdout: %s", strerror(-r));
			return EXIT_ERROR;
		}
	}
	return EXIT_OK;
}

static int cat_one(const struct cli *cli, const char *arg)
{
	struct cli_object obj;
	struct cairn_index_file file;
	struct cairn_unpacker *unpacker = NULL;
	struct cairn_index_reader *reader = NULL;
	int status = EXIT_ERROR;

	if (!strchr(arg, ':')) {
		cli_error("'%s' names no file: use SNAPSHOT:PATH", arg);
		return EXIT_USAGE;
	}
	if (cli_object_open(cli, arg, true, &obj) != EXIT_OK)
		return EXIT_ERROR;
	int r = cairn_index_file(obj.idx, obj.ino, &file);
	if (r == -EISDIR || r == -EINVAL)
		cli_error("%s:%s: not a regular file", obj.snapshot, obj.path);
	else if (r < 0)
		cli_object_error(&obj, r);
	else if (cairn_unpacker_new(obj.store, &unpacker) < 0 ||
		 cairn_index_reader_new(obj.idx, unpacker, &reader) < 0)
		cli_error("out of memory");
	else
		status = cat_runs(&obj, reader, &file);
	cairn_index_reader_free(reader);
	cairn_unpacker_free(unpacker);
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
