/* cmd_gc.c: `cairn gc`: frees the space of chunks no snapshot names. It
 * takes the writer (the lock) first and lists the snapshots after, so no
 * add or rm can change the set of live chunks under it; then it collects
 * the chunk ids of every snapshot and lets the store drop the others and
 * repack. A snapshot that is damaged or will not open stops gc before
 * anything is dropped: its chunks must never be taken for dead.
 */
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "cli.h"

static void gc_help(void)
{
	printf("Usage: cairn gc [-s STORE] [-q]\n"
	       "\n"
	       "Drop every chunk that no snapshot names, rewrite the pack files of which\n"
	       "more than a tenth is unused, delete the ones nothing uses, and remove what\n"
	       "interrupted writers left (temp files, packs no commit lists), saying how\n"
	       "many files and bytes that was. Stops without changing anything if a\n"
	       "snapshot is damaged or the store is mounted. Takes the store's lock: adds\n"
	       "wait for it.\n"
	       "\n"
	       "  -q, --quiet  print only errors\n"
	       "\n"
	       "Exit status: 0 done, 1 failed (the store is as it was before).\n");
}

static int gc_parse(struct cli *cli, int argc, char **argv, bool *quiet)
{
	int r = cli_parse_quiet(cli, argc, argv, gc_help, quiet);
	if (r == 0 && optind < argc)
		return cli_usage_error(cli, "unexpected argument '%s'", argv[optind]);
	return r;
}

static bool chunk_live(void *userdata, const struct cairn_id *id)
{
	return cairn_chunk_set_contains(userdata, id);
}

static void print_summary(const struct cairn_store *store, const struct cairn_gc_stats *s,
			  uint64_t live)
{
	char before[32], after[32], freed[32];

	if (s->chunks_dropped == 0 && s->packs_deleted == 0) {
		printf("%s: nothing to collect: all %llu chunks are in use\n",
		       cairn_store_path(store), (unsigned long long)live);
		return;
	}
	cairn_format_bytes(s->bytes_before, before, sizeof(before));
	cairn_format_bytes(s->bytes_after, after, sizeof(after));
	cairn_format_bytes(s->bytes_before > s->bytes_after ? s->bytes_before - s->bytes_after : 0,
			   freed, sizeof(freed));
	printf("%s: %llu chunks dropped, %llu kept (%llu moved); %llu packs rewritten, %llu "
	       "deleted; pack bytes %s -> %s (%s freed)\n",
	       cairn_store_path(store), (unsigned long long)s->chunks_dropped,
	       (unsigned long long)live, (unsigned long long)s->chunks_moved,
	       (unsigned long long)s->packs_rewritten, (unsigned long long)s->packs_deleted, before,
	       after, freed);
	if (s->chunks_dropped && s->packs_deleted == 0)
		printf("(the dropped chunks' space stays in their packs until a pack is more than a "
		       "tenth unused)\n");
}

/* Opening the writer removed them; an add or rm would have done so
 * silently, gc says what it freed. */
static void print_leftovers(const struct cairn_store *store, const struct cairn_leftovers *left)
{
	char size[32];

	if (left->files == 0)
		return;
	printf("%s: removed %llu leftover file%s of interrupted writers (%s freed)\n",
	       cairn_store_path(store), (unsigned long long)left->files,
	       left->files == 1 ? "" : "s", cairn_format_bytes(left->bytes, size, sizeof(size)));
}

/* Collects the live set and runs the store's gc; the writer is held. */
static int collect(struct cairn_store *store, struct cairn_writer *writer, bool quiet)
{
	_cleanup_(cairn_chunk_set_freep) struct cairn_chunk_set *live = NULL;
	struct cairn_store_stats stats;
	struct cairn_gc_stats gc;
	char msg[600];

	int r = cairn_snapshot_chunk_set(store, NULL, &live, msg, sizeof(msg));
	if (r < 0) {
		cli_error("%s", msg);
		cli_error("gc stopped before dropping anything: every snapshot must be readable "
			  "to know which chunks are in use ('cairn verify' checks them; 'cairn rm' "
			  "removes one)");
		return EXIT_ERROR;
	}
	r = cairn_writer_gc(writer, chunk_live, live, &gc);
	if (r < 0)
		cli_error("%s", cairn_writer_error(writer));
	else if (!quiet && cairn_store_stats(store, &stats) == 0)
		print_summary(store, &gc, stats.chunk_count);
	return r < 0 ? EXIT_ERROR : EXIT_OK;
}

int cmd_gc(struct cli *cli, int argc, char **argv)
{
	bool quiet = false;

	int r = gc_parse(cli, argc, argv, &quiet);
	if (r)
		return r < 0 ? EXIT_OK : r;
	_cleanup_(cairn_store_freep) struct cairn_store *store = cli_open_store(cli);
	if (!store)
		return EXIT_ERROR;
	/* Declared after the store: freed before it, as a writer must be. */
	_cleanup_(cairn_writer_freep) struct cairn_writer *writer = NULL;
	struct cairn_leftovers leftovers;
	if (cli_writer_lock(store, 0, &writer, &leftovers) < 0)
		return EXIT_ERROR;
	if (!quiet)
		print_leftovers(store, &leftovers);
	r = collect(store, writer, quiet);
	if (r == EXIT_OK && cairn_writer_publish(writer) < 0) {
		cli_error("%s", cairn_writer_error(writer));
		return EXIT_ERROR;
	}
	return r;
}
