/* cmd_rm.c: `cairn rm`: removes snapshot files under the store's writer
 * lock, so no add, rm or gc runs meanwhile. All names are checked before
 * any is removed: a typo removes nothing. Removing a snapshot frees no
 * chunk by itself (other snapshots may share them); `cairn gc` does that.
 * Mounts that have the snapshot mapped keep reading it until gc.
 */
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>

#include "cli.h"

static void rm_help(void)
{
	printf("Usage: cairn rm [-s STORE] [-q] SNAPSHOT...\n"
	       "\n"
	       "Remove each SNAPSHOT from the store. Nothing is removed unless every\n"
	       "SNAPSHOT exists. The chunks they alone used stay in the store until\n"
	       "'cairn gc' drops them.\n"
	       "\n"
	       "  -q, --quiet  print only errors\n"
	       "\n"
	       "Exit status: 0 all removed, 1 a SNAPSHOT does not exist (nothing was\n"
	       "removed) or removing failed.\n");
}

static int rm_parse(struct cli *cli, int argc, char **argv, bool *quiet)
{
	int r = cli_parse_quiet(cli, argc, argv, rm_help, quiet);
	if (r == 0 && optind >= argc)
		return cli_usage_error(cli, "no snapshot given");
	return r;
}

/* Whether every name is a snapshot of the store; reports those that are not. */
static bool all_exist(struct cairn_store *store, char **names, int count)
{
	bool ok = true;

	for (int i = 0; i < count; i++) {
		int r = cairn_snapshot_exists(store, names[i]);
		if (r == 1)
			continue;
		if (r == 0)
			cli_error("snapshot %s: no such snapshot in %s", names[i],
				  cairn_store_path(store));
		else
			cli_error("snapshot %s: %s", names[i], strerror(-r));
		ok = false;
	}
	return ok;
}

/* Removes the names (duplicates once), each durably. */
static int remove_all(struct cairn_store *store, char **names, int count, bool quiet)
{
	char msg[CAIRN_SNAPSHOT_NAME_MAX + PATH_MAX + 64];
	int status = EXIT_OK;

	for (int i = 0; i < count; i++) {
		int r = cairn_snapshot_remove(store, names[i], msg, sizeof(msg));
		if (r == 0) {
			if (!quiet)
				printf("removed %s\n", names[i]);
		} else if (r != -ENOENT) {
			cli_error("%s", msg);
			status = EXIT_ERROR;
		}
	}
	return status;
}

int cmd_rm(struct cli *cli, int argc, char **argv)
{
	bool quiet = false;

	int r = rm_parse(cli, argc, argv, &quiet);
	if (r)
		return r < 0 ? EXIT_OK : r;
	_cleanup_(cairn_store_freep) struct cairn_store *store = cli_open_store(cli);
	if (!store)
		return EXIT_ERROR;
	/* Declared after the store: freed before it, as a writer must be. */
	_cleanup_(cairn_writer_freep) struct cairn_writer *writer = NULL;
	if (cli_writer_lock(store, 1, &writer, NULL) < 0 ||
	    !all_exist(store, argv + optind, argc - optind))
		return EXIT_ERROR;
	int status = remove_all(store, argv + optind, argc - optind, quiet);
	if (cairn_writer_publish(writer) < 0) {
		cli_error("%s", cairn_writer_error(writer));
		return EXIT_ERROR;
	}
	if (!quiet)
		printf("No space is freed yet: run 'cairn gc' to drop the chunks no "
		       "snapshot uses any more.\n");
	return status;
}
