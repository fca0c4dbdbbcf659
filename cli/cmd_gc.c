/* cmd_gc.c: `cairn gc`: frees the space of chunks no snapshot names. It
 * takes the writer (the lock) first and lists the snapshots after, so no
 * add or rm can change the set of live chunks under it; then it collects
 * the chunk ids of every snapshot and lets the store drop the others and
 * repack. A snapshot that is damaged or will not open stops gc before
 * anything is dropped: its chunks must never be taken for dead.
 */
#include <errno.h>
#include <getopt.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "cli.h"

static void gc_help(void)
{
	printf("Usage: cairn gc [-s STORE] [-q] [--grace DURATION]\n"
	       "\n"
	       "Drop every chunk that no snapshot names, rewrite the pack files of which\n"
	       "more than a tenth is unused, delete the ones nothing uses, and remove what\n"
	       "interrupted writers left (temp files, packs no commit lists), saying how\n"
	       "many files and bytes that was. Stops without changing anything if a\n"
	       "snapshot is damaged or the store is mounted. Takes the store's lock: adds\n"
	       "wait for it.\n"
	       "\n"
	       "On a remote store (s3://BUCKET/PREFIX) other hosts may be reading what gc\n"
	       "drops: every object the store no longer references is condemned first and\n"
	       "deleted by a gc once it has been condemned for the grace period.\n"
	       "\n"
	       "  --grace DURATION  remote stores: how long an object stays condemned before\n"
	       "                    it is deleted: N[s|m|h|d] (default 1h). It must be\n"
	       "                    longer than any mount's refresh interval (-o refresh,\n"
	       "                    60 s by default) and than the life of a mount that\n"
	       "                    does not refresh (of named snapshots); 0 deletes at\n"
	       "                    once, unsafe while other hosts mount the store\n"
	       "  -q, --quiet       print only errors\n"
	       "\n"
	       "Exit status: 0 done, 1 failed (the store is as it was before).\n");
}

/* N[s|m|h|d] into seconds; -1 when it is not one. */
static int64_t parse_duration(const char *text)
{
	static const struct {
		char unit;
		int64_t seconds;
	} units[] = {{'s', 1}, {'m', 60}, {'h', 3600}, {'d', 86400}};
	char *end;

	if (text[0] < '0' || text[0] > '9')
		return -1;
	errno = 0;
	unsigned long long n = strtoull(text, &end, 10);
	int64_t unit = end[0] == '\0' ? 1 : 0;
	for (size_t i = 0; unit == 0 && end[1] == '\0' && i < sizeof(units) / sizeof(units[0]); i++)
		if (end[0] == units[i].unit)
			unit = units[i].seconds;
	if (errno || unit == 0 || n > (unsigned long long)(INT64_MAX / 86400))
		return -1;
	return (int64_t)n * unit;
}

static int gc_parse(struct cli *cli, int argc, char **argv, bool *quiet, int64_t *grace)
{
	static const struct option options[] = {
		CLI_COMMON_OPTIONS,
		{"quiet", no_argument, NULL, 'q'},
		{"grace", required_argument, NULL, 'g'},
		{0},
	};
	int c, r;

	while ((c = getopt_long(argc, argv, CLI_COMMON_SHORT "q", options, NULL)) != -1) {
		switch (c) {
		case 'q':
			*quiet = true;
			break;
		case 'g':
			if ((*grace = parse_duration(optarg)) < 0)
				return cli_usage_error(
					cli,
					"--grace: '%s' is not a duration (N, Ns, Nm, "
					"Nh or Nd)",
					optarg);
			break;
		default:
			if ((r = cli_common_option(cli, c, gc_help)) != 0)
				return r;
		}
	}
	if (optind < argc)
		return cli_usage_error(cli, "unexpected argument '%s'", argv[optind]);
	return 0;
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

static const char *format_duration(int64_t s, char *buf, size_t size)
{
	if (s > 0 && s % 86400 == 0)
		snprintf(buf, size, "%lldd", (long long)(s / 86400));
	else if (s > 0 && s % 3600 == 0)
		snprintf(buf, size, "%lldh", (long long)(s / 3600));
	else if (s > 0 && s % 60 == 0)
		snprintf(buf, size, "%lldm", (long long)(s / 60));
	else
		snprintf(buf, size, "%llds", (long long)s);
	return buf;
}

static const char *plural(uint64_t n)
{
	return n == 1 ? "" : "s";
}

/* What the remote gc did with the store's objects. */
static void print_remote(const struct cairn_store *store, const struct cairn_remote_gc_stats *s,
			 int64_t grace, bool quiet)
{
	char condemned[32], deleted[32], g[32];

	if (s->delete_failed)
		cli_error("%s: %llu condemned object%s could not be deleted (%s); %s condemned "
			  "and the next gc deletes %s",
			  cairn_store_path(store), (unsigned long long)s->delete_failed,
			  plural(s->delete_failed), s->delete_error,
			  s->delete_failed == 1 ? "it stays" : "they stay",
			  s->delete_failed == 1 ? "it" : "them");
	if (quiet)
		return;
	printf("%s: %llu object%s condemned (%s, %llu newly), %llu object%s deleted (%s) after "
	       "the grace period of %s; %llu object%s listed\n",
	       cairn_store_path(store), (unsigned long long)s->condemned, plural(s->condemned),
	       cairn_format_bytes(s->condemned_bytes, condemned, sizeof(condemned)),
	       (unsigned long long)s->newly_condemned, (unsigned long long)s->deleted,
	       plural(s->deleted), cairn_format_bytes(s->deleted_bytes, deleted, sizeof(deleted)),
	       format_duration(grace, g, sizeof(g)), (unsigned long long)s->listed,
	       plural(s->listed));
}

int cmd_gc(struct cli *cli, int argc, char **argv)
{
	bool quiet = false;
	int64_t grace = 3600;
	struct cairn_remote_gc_stats remote;

	int r = gc_parse(cli, argc, argv, &quiet, &grace);
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
	if (r == EXIT_OK && cairn_writer_publish_gc(writer, grace, &remote) < 0) {
		cli_error("%s", cairn_writer_error(writer));
		return EXIT_ERROR;
	}
	if (r == EXIT_OK && cairn_store_path_is_remote(cairn_store_path(store)))
		print_remote(store, &remote, grace, quiet);
	return r;
}
