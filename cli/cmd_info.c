/* cmd_info.c: `cairn info`: what a store holds and what it costs (its
 * parameters, counts, the logical, unique, compressed and on-disk bytes and
 * the ratios between them), or the same for one snapshot: its source
 * archive, its totals and the chunks that only it names, which is what
 * removing it (and a gc) would free. Text for people, --json for scripts.
 */
#include <getopt.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "cli.h"

struct info {
	bool json;
	const char *snapshot; /* NULL: the whole store */
	struct cairn_store *store;
	int status;
};

/* The store's totals. */
struct store_totals {
	struct cairn_store_stats stats;
	struct cairn_store_delta_stats deltas;
	uint64_t snapshots;
	uint64_t logical_bytes; /* all snapshots' file bytes */
};

/* One snapshot's totals. */
struct snap_totals {
	struct cairn_index_info info;
	uint64_t chunks;        /* distinct chunks it names */
	uint64_t chunks_alone;  /* of those, named by no other snapshot */
	uint64_t bytes_alone;   /* their uncompressed size */
	uint64_t stored_alone;  /* their share of the packs */
	uint64_t chunks_absent; /* named but not in the store */
	bool alone_known;       /* false: a snapshot would not read */
};

static void info_help(void)
{
	printf("Usage: cairn info [-s STORE] [--json] [SNAPSHOT]\n"
	       "\n"
	       "Without SNAPSHOT, show the store: its path and parameters, how many\n"
	       "snapshots, chunks and packs it holds, the logical bytes (all snapshots'\n"
	       "files), the unique chunk bytes, the stored (compressed) bytes, the pack\n"
	       "bytes on disk, and the dedup, compression and overall ratios.\n"
	       "\n"
	       "With SNAPSHOT, show its source archive, its entries, files and bytes, the\n"
	       "size of its index, when it was added, and the chunks no other snapshot\n"
	       "names: what 'cairn rm SNAPSHOT' and then 'cairn gc' would free.\n"
	       "\n"
	       "      --json  one JSON object\n");
}

static int info_parse(struct cli *cli, int argc, char **argv, struct info *info)
{
	static const struct option options[] = {
		CLI_COMMON_OPTIONS,
		{"json", no_argument, NULL, 'j'},
		{0},
	};
	int c, r;

	while ((c = getopt_long(argc, argv, CLI_COMMON_SHORT, options, NULL)) != -1) {
		switch (c) {
		case 'j':
			info->json = true;
			break;
		default:
			if ((r = cli_common_option(cli, c, info_help)) != 0)
				return r;
		}
	}
	if (optind + 1 < argc)
		return cli_usage_error(cli, "too many arguments");
	if (optind < argc)
		info->snapshot = argv[optind];
	return 0;
}

static void format_time(int64_t sec, char *buf, size_t size)
{
	time_t t = (time_t)sec;
	struct tm tm;

	if (!localtime_r(&t, &tm) || strftime(buf, size, "%Y-%m-%d %H:%M:%S %z", &tm) == 0)
		snprintf(buf, size, "%lld", (long long)sec);
}

static void line(const char *label, const char *fmt, ...) _printf_(2, 3);
static void line(const char *label, const char *fmt, ...)
{
	va_list ap;

	printf("%-16s", label);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	putchar('\n');
}

/* ---- the store ---- */

/* Adds each snapshot's file bytes; a snapshot that will not open is
 * reported and counted as nothing. */
static int sum_snapshots(struct info *info, struct store_totals *t)
{
	char **names;
	size_t count;

	int r = cairn_snapshot_list(info->store, &names, &count);
	if (r < 0) {
		cli_error("%s/snapshots: %s", cairn_store_path(info->store), strerror(-r));
		return r;
	}
	t->snapshots = count;
	for (size_t i = 0; i < count; i++) {
		struct cairn_index_info ii;
		_cleanup_(cairn_index_freep) struct cairn_index *idx = cairn_index_new();
		if (idx && cairn_index_open(idx, info->store, names[i]) == 0) {
			cairn_index_info(idx, &ii);
			t->logical_bytes += ii.file_bytes;
		} else {
			cli_error("%s", idx ? cairn_index_error(idx) : "out of memory");
			info->status = EXIT_ERROR;
		}
	}
	cairn_snapshot_names_free(names, count);
	return 0;
}

static void print_store_json(struct info *info, const struct store_totals *t)
{
	const struct cairn_store_params *p = cairn_store_params(info->store);
	const struct cairn_store_stats *s = &t->stats;

	printf("{\"store\": ");
	cli_json_string(cairn_store_path(info->store));
	printf(", \"chunk_ids\": \"%s\"", p->id_hash == CAIRN_ID_SHA256 ? "hmac-sha256" : "xxh3");
	printf(", \"chunk_min\": %u, \"chunk_avg\": %u, \"chunk_max\": %u, \"zstd_level\": %d, "
	       "\"pack_max\": %llu, \"snapshots\": %llu, \"chunks\": %llu, \"packs\": %llu, "
	       "\"logical_bytes\": %llu, \"chunk_bytes\": %llu, \"stored_bytes\": %llu, "
	       "\"pack_bytes\": %llu, \"dedup_ratio\": ",
	       p->chunk_min, p->chunk_avg, p->chunk_max, p->zstd_level,
	       (unsigned long long)p->pack_max, (unsigned long long)t->snapshots,
	       (unsigned long long)s->chunk_count, (unsigned long long)s->pack_count,
	       (unsigned long long)t->logical_bytes, (unsigned long long)s->chunk_bytes,
	       (unsigned long long)s->stored_bytes, (unsigned long long)s->pack_bytes);
	cli_json_ratio(t->logical_bytes, s->chunk_bytes);
	printf(", \"compression_ratio\": ");
	cli_json_ratio(s->chunk_bytes, s->stored_bytes);
	printf(", \"overall_ratio\": ");
	cli_json_ratio(t->logical_bytes, s->pack_bytes);
	printf(", \"delta_chunks\": %llu, \"delta_chunk_bytes\": %llu, \"delta_stored_bytes\": "
	       "%llu, \"delta_saved_bytes\": %llu}\n",
	       (unsigned long long)t->deltas.chunks, (unsigned long long)t->deltas.chunk_bytes,
	       (unsigned long long)t->deltas.stored_bytes,
	       (unsigned long long)t->deltas.saved_bytes);
}

static void print_store_text(struct info *info, const struct store_totals *t)
{
	const struct cairn_store_params *p = cairn_store_params(info->store);
	const struct cairn_store_stats *s = &t->stats;
	char a[32], b[32], c[32];

	line("store", "%s", cairn_store_path(info->store));
	line("chunking", "%s min, %s avg, %s max", cairn_format_bytes(p->chunk_min, a, sizeof(a)),
	     cairn_format_bytes(p->chunk_avg, b, sizeof(b)),
	     cairn_format_bytes(p->chunk_max, c, sizeof(c)));
	line("compression", "zstd level %d, packs sealed at %s", p->zstd_level,
	     cairn_format_bytes(p->pack_max, a, sizeof(a)));
	line("chunk ids", "%s",
	     p->id_hash == CAIRN_ID_SHA256
		     ? "HMAC-SHA-256 (128 bits; resists crafted collisions)"
		     : "keyed XXH3-128 (detects damage, not crafted collisions)");
	line("snapshots", "%llu", (unsigned long long)t->snapshots);
	line("chunks", "%llu in %llu pack%s", (unsigned long long)s->chunk_count,
	     (unsigned long long)s->pack_count, s->pack_count == 1 ? "" : "s");
	line("logical bytes", "%-12s all snapshots' files",
	     cairn_format_bytes(t->logical_bytes, a, sizeof(a)));
	line("chunk bytes", "%-12s unique chunks, uncompressed",
	     cairn_format_bytes(s->chunk_bytes, a, sizeof(a)));
	line("stored bytes", "%-12s compressed", cairn_format_bytes(s->stored_bytes, a, sizeof(a)));
	line("pack bytes", "%-12s pack files on disk",
	     cairn_format_bytes(s->pack_bytes, a, sizeof(a)));
	line("dedup", "%-12s logical / chunk bytes",
	     cli_ratio(t->logical_bytes, s->chunk_bytes, a, sizeof(a)));
	line("compression", "%-12s chunk / stored bytes",
	     cli_ratio(s->chunk_bytes, s->stored_bytes, a, sizeof(a)));
	line("overall", "%-12s logical / pack bytes",
	     cli_ratio(t->logical_bytes, s->pack_bytes, a, sizeof(a)));
	line("deltas", "%llu chunks, %s stored as %s, saving %s",
	     (unsigned long long)t->deltas.chunks,
	     cairn_format_bytes(t->deltas.chunk_bytes, a, sizeof(a)),
	     cairn_format_bytes(t->deltas.stored_bytes, b, sizeof(b)),
	     cairn_format_bytes(t->deltas.saved_bytes, c, sizeof(c)));
}

static int info_store(struct info *info)
{
	struct store_totals t = {0};

	int r = cairn_store_stats(info->store, &t.stats);
	if (r == 0)
		r = cairn_store_delta_stats(info->store, &t.deltas);
	if (r < 0) {
		cli_error("%s: %s", cairn_store_path(info->store), strerror(-r));
		return EXIT_ERROR;
	}
	if (sum_snapshots(info, &t) < 0)
		return EXIT_ERROR;
	if (info->json)
		print_store_json(info, &t);
	else
		print_store_text(info, &t);
	return info->status;
}

/* ---- one snapshot ---- */

/* Adds to others the bases its delta chunks need (down each chain): gc
 * keeps them, so they are not the snapshot's alone. */
static int add_bases(struct info *info, struct cairn_chunk_set *others)
{
	_cleanup_(cairn_chunk_set_freep) struct cairn_chunk_set *bases = NULL;
	struct cairn_id id, base;
	size_t pos = 0;

	int r = cairn_chunk_set_new(&bases);
	while (r == 0 && cairn_chunk_set_next(others, &pos, &id) == 1) {
		/* A chain is at most a few deep; the bound only stops a loop. */
		for (int depth = 0; depth < 16 && r == 0; depth++) {
			if (cairn_store_chunk_base(info->store, &id, &base) != 1)
				break;
			r = cairn_chunk_set_add(bases, &base) < 0 ? -ENOMEM : 0;
			id = base;
		}
	}
	pos = 0;
	while (r == 0 && cairn_chunk_set_next(bases, &pos, &id) == 1)
		r = cairn_chunk_set_add(others, &id) < 0 ? -ENOMEM : 0;
	return r;
}

/* Counts the chunks of mine (the snapshot's own set) that others lacks. */
static void count_alone(struct info *info, const struct cairn_chunk_set *mine,
			const struct cairn_chunk_set *others, struct snap_totals *t)
{
	struct cairn_id id;
	size_t pos = 0;

	t->chunks = cairn_chunk_set_count(mine);
	while (cairn_chunk_set_next(mine, &pos, &id) == 1) {
		struct cairn_chunk_info chunk;
		if (cairn_store_chunk_info(info->store, &id, &chunk) < 0)
			t->chunks_absent++;
		else if (!cairn_chunk_set_contains(others, &id)) {
			t->chunks_alone++;
			t->bytes_alone += chunk.size;
			t->stored_alone += chunk.stored_bytes;
		}
	}
}

static int chunks_alone(struct info *info, struct cairn_index *idx, struct snap_totals *t)
{
	_cleanup_(cairn_chunk_set_freep) struct cairn_chunk_set *mine = NULL;
	_cleanup_(cairn_chunk_set_freep) struct cairn_chunk_set *others = NULL;
	char msg[600] = "";

	int r = cairn_chunk_set_new(&mine);
	if (r == 0 && (r = cairn_chunk_set_add_snapshot(mine, idx)) < 0 && r != -ENOMEM)
		cairn_format(msg, sizeof(msg), "%s", cairn_index_error(idx));
	if (r == 0)
		r = cairn_snapshot_chunk_set(info->store, info->snapshot, &others, msg,
					     sizeof(msg));
	if (r == 0 && (r = add_bases(info, others)) < 0)
		cairn_format(msg, sizeof(msg), "%s", strerror(-r));
	if (r == 0) {
		count_alone(info, mine, others, t);
		t->alone_known = true;
	} else {
		cli_error("%s", r == -ENOMEM && !msg[0] ? "out of memory" : msg);
	}
	return r;
}

static void print_snapshot_json(struct info *info, const struct snap_totals *t)
{
	const struct cairn_index_info *i = &t->info;
	char hex[CAIRN_ID_HEX + 1];

	cairn_id_to_hex(&i->source_id, hex);
	printf("{\"snapshot\": ");
	cli_json_string(info->snapshot);
	printf(", \"source\": {\"name\": ");
	cli_json_string(i->source_name);
	printf(", \"format\": ");
	cli_json_string(i->source_format);
	printf(", \"size\": %llu, \"mtime\": %lld, \"mtime_nsec\": %u, \"archive_id\": \"%s\"}",
	       (unsigned long long)i->source_size, (long long)i->source_mtime_sec,
	       i->source_mtime_nsec, hex);
	printf(", \"partial\": %s", i->partial ? "true" : "false");
	printf(", \"entries\": %llu, \"archive_entries\": %llu, \"skipped\": %llu, "
	       "\"inodes\": %llu, \"files\": %llu, \"bytes\": %llu, \"snapshot_size\": %llu, "
	       "\"created\": %lld",
	       (unsigned long long)i->dirent_count, (unsigned long long)i->entry_count,
	       (unsigned long long)i->skipped, (unsigned long long)i->inode_count,
	       (unsigned long long)i->file_count, (unsigned long long)i->file_bytes,
	       (unsigned long long)i->file_size, (long long)i->created_sec);
	if (t->alone_known)
		printf(", \"chunks\": %llu, \"chunks_alone\": %llu, "
		       "\"bytes_alone_uncompressed\": %llu, \"bytes_alone_stored\": %llu, "
		       "\"chunks_absent\": %llu}\n",
		       (unsigned long long)t->chunks, (unsigned long long)t->chunks_alone,
		       (unsigned long long)t->bytes_alone, (unsigned long long)t->stored_alone,
		       (unsigned long long)t->chunks_absent);
	else
		printf(", \"chunks\": null, \"chunks_alone\": null, "
		       "\"bytes_alone_uncompressed\": null, \"bytes_alone_stored\": null, "
		       "\"chunks_absent\": null}\n");
}

static void print_snapshot_text(struct info *info, const struct snap_totals *t)
{
	const struct cairn_index_info *i = &t->info;
	char a[32], when[64], hex[CAIRN_ID_HEX + 1];

	cairn_id_to_hex(&i->source_id, hex);
	line("snapshot", "%s", info->snapshot);
	line("source", "%s", i->source_name);
	line("  format", "%s", i->source_format);
	line("  size", "%s (%llu bytes)", cairn_format_bytes(i->source_size, a, sizeof(a)),
	     (unsigned long long)i->source_size);
	if (i->source_mtime_sec)
		format_time(i->source_mtime_sec, when, sizeof(when));
	line("  modified", "%s", i->source_mtime_sec ? when : "unknown (read from a pipe)");
	line("  archive id", "%s", hex);
	if (i->partial)
		line("partial", "yes: the archive was damaged; only the entries read before the "
				"damage (cairn add --partial)");
	line("entries", "%llu (%llu archive entries read, %llu skipped)",
	     (unsigned long long)i->dirent_count, (unsigned long long)i->entry_count,
	     (unsigned long long)i->skipped);
	line("files", "%llu, %s", (unsigned long long)i->file_count,
	     cairn_format_bytes(i->file_bytes, a, sizeof(a)));
	line("index", "%s (the snapshot file)", cairn_format_bytes(i->file_size, a, sizeof(a)));
	format_time(i->created_sec, when, sizeof(when));
	line("created", "%s", when);
	if (!t->alone_known) {
		line("held alone", "unknown: a snapshot would not read (see the error)");
		return;
	}
	line("chunks", "%llu distinct", (unsigned long long)t->chunks);
	char b[32];
	line("held alone", "%llu chunks, %s uncompressed, %s stored (no other snapshot names them)",
	     (unsigned long long)t->chunks_alone, cairn_format_bytes(t->bytes_alone, a, sizeof(a)),
	     cairn_format_bytes(t->stored_alone, b, sizeof(b)));
	if (t->chunks_absent)
		line("absent", "%llu chunks the store does not hold: run 'cairn verify %s'",
		     (unsigned long long)t->chunks_absent, info->snapshot);
}

static int info_snapshot(struct info *info)
{
	struct snap_totals t = {0};
	_cleanup_(cairn_index_freep) struct cairn_index *idx = cairn_index_new();

	if (!idx) {
		cli_error("out of memory");
		return EXIT_ERROR;
	}
	int r = cairn_index_open(idx, info->store, info->snapshot);
	if (r < 0) {
		cli_error("%s", cairn_index_error(idx));
		return EXIT_ERROR;
	}
	cairn_index_info(idx, &t.info);
	/* Without the chunks that only it holds, the rest is still worth showing. */
	r = chunks_alone(info, idx, &t);
	if (r != -ENOMEM && info->json)
		print_snapshot_json(info, &t);
	else if (r != -ENOMEM)
		print_snapshot_text(info, &t);
	return r < 0 ? EXIT_ERROR : EXIT_OK;
}

int cmd_info(struct cli *cli, int argc, char **argv)
{
	struct info info = {0};

	int r = info_parse(cli, argc, argv, &info);
	if (r)
		return r < 0 ? EXIT_OK : r;
	_cleanup_(cairn_store_freep) struct cairn_store *store = cli_open_store(cli);
	if (!store)
		return EXIT_ERROR;
	info.store = store;
	return info.snapshot ? info_snapshot(&info) : info_store(&info);
}
