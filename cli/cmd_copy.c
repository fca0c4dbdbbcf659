/* cmd_copy.c: `cairn copy SRC DST [SNAPSHOT...]`: snapshots copied from one
 * store into another, sending only the chunks DST lacks (index/copy.c). DST
 * is created when missing, with SRC's parameters and hash key, so that
 * chunk ids and snapshot files are the same bytes in both. One writer
 * session on DST; each snapshot commits on its own after its chunks, so a
 * failed one leaves nothing and the next ones still land, as with add.
 */
#include <getopt.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "cli.h"

struct copy_options {
	const char *src, *dst;
	const char *name; /* -n: DST's name for the one SNAPSHOT */
	bool replace, quiet, json;
	char **snapshots; /* NULL: all of SRC's */
	size_t count;
};

static void copy_help(void)
{
	printf("Usage: cairn copy [OPTIONS] SRC DST [SNAPSHOT...]\n"
	       "\n"
	       "Copy snapshots of the store SRC into the store DST (all of SRC's when none\n"
	       "is named), sending only the chunks DST lacks. Every chunk read from SRC is\n"
	       "checked against its id. DST is created when it does not exist, with SRC's\n"
	       "chunking parameters and hash key, so its snapshot files are SRC's bytes;\n"
	       "into a store with another key, each chunk gets DST's id and the snapshot is\n"
	       "rewritten with them. Each snapshot is committed on its own after its\n"
	       "chunks: a failed one (a damaged chunk in SRC) leaves nothing in DST.\n"
	       "\n"
	       "  -n, --name NAME  the name in DST of the one SNAPSHOT (default: its name)\n"
	       "      --replace    replace a snapshot of that name in DST (one made from\n"
	       "                   the same archive bytes is left as it is: unchanged)\n"
	       "  -q, --quiet      no summary lines\n"
	       "      --json       one JSON object per snapshot, one a line\n"
	       "\n"
	       "Exit status: 0 all copied (or unchanged), 1 a snapshot failed.\n");
}

enum { OPT_REPLACE = 256, OPT_JSON };

static int copy_parse(struct cli *cli, int argc, char **argv, struct copy_options *o)
{
	static const struct option options[] = {
		CLI_HELP_OPTION,
		{"name", required_argument, NULL, 'n'},
		{"replace", no_argument, NULL, OPT_REPLACE},
		{"quiet", no_argument, NULL, 'q'},
		{"json", no_argument, NULL, OPT_JSON},
		{0},
	};
	int c, r;

	while ((c = getopt_long(argc, argv, "hn:q", options, NULL)) != -1) {
		switch (c) {
		case 'n':
			o->name = optarg;
			break;
		case OPT_REPLACE:
			o->replace = true;
			break;
		case 'q':
			o->quiet = true;
			break;
		case OPT_JSON:
			o->json = true;
			break;
		default:
			if ((r = cli_common_option(cli, c, copy_help)) != 0)
				return r;
		}
	}
	if (argc - optind < 2)
		return cli_usage_error(cli, "SRC and DST stores needed");
	o->src = argv[optind];
	o->dst = argv[optind + 1];
	o->snapshots = argc - optind > 2 ? argv + optind + 2 : NULL;
	o->count = (size_t)(argc - optind - 2);
	if (o->name && o->count != 1)
		return cli_usage_error(cli, "--name needs a single SNAPSHOT");
	return 0;
}

/* ---- output ---- */

static void print_json(const char *name, const char *dst_name, const char *status,
		       const struct cairn_copy_stats *s, double seconds)
{
	printf("{\"snapshot\": ");
	cli_json_string(name);
	printf(", \"name\": ");
	cli_json_string(dst_name);
	printf(", \"status\": \"%s\", \"chunks\": %llu, \"chunks_sent\": %llu, "
	       "\"chunks_present\": %llu, \"bytes\": %llu, \"bytes_sent\": %llu, "
	       "\"stored_bytes\": %llu, \"snapshot_size\": %llu, \"rekeyed\": %s, "
	       "\"seconds\": %.3f}\n",
	       status, (unsigned long long)s->chunks, (unsigned long long)s->chunks_sent,
	       (unsigned long long)s->chunks_present, (unsigned long long)s->bytes,
	       (unsigned long long)s->bytes_sent, (unsigned long long)s->stored_bytes,
	       (unsigned long long)s->snapshot_size, s->rekeyed ? "true" : "false", seconds);
}

static void print_summary(const struct copy_options *o, const char *name, const char *dst_name,
			  int r, const struct cairn_copy_stats *s, double seconds)
{
	char sent[32], present[32], stored[32];

	if (o->json) {
		print_json(name, dst_name, r == 1 ? "unchanged" : "copied", s, seconds);
	} else if (o->quiet) {
		return;
	} else if (r == 1) {
		printf("%s: unchanged (%s holds it from the same archive bytes), nothing to do\n",
		       dst_name, o->dst);
	} else {
		cairn_format_bytes(s->bytes_sent, sent, sizeof(sent));
		cairn_format_bytes(s->bytes - s->bytes_sent, present, sizeof(present));
		cairn_format_bytes(s->stored_bytes, stored, sizeof(stored));
		printf("%s: %llu chunks: %llu sent (%s), %llu already there (%s); %s new stored%s, "
		       "%.2f s\n",
		       dst_name, (unsigned long long)s->chunks, (unsigned long long)s->chunks_sent,
		       sent, (unsigned long long)s->chunks_present, present, stored,
		       s->rekeyed ? ", ids made for DST's key" : "", seconds);
	}
	fflush(stdout);
}

/* ---- the copy ---- */

static struct cairn_store *open_side(struct cli *cli, const char *path,
				     const struct cairn_store *like)
{
	struct cli side = *cli;

	side.store_path = path;
	return like ? cli_open_or_create_store_like(&side, like) : cli_open_store(&side);
}

/* Named snapshots must all be in SRC before DST is made or written. */
static int check_named(const struct copy_options *o, struct cairn_store *src)
{
	for (size_t i = 0; i < o->count; i++) {
		int r = cairn_snapshot_exists(src, o->snapshots[i]);
		if (r <= 0) {
			cli_error("%s: no snapshot named %s", o->src, o->snapshots[i]);
			return EXIT_ERROR;
		}
	}
	return EXIT_OK;
}

static bool same_store(const struct cairn_store *a, const struct cairn_store *b)
{
	struct stat sa, sb;

	return fstat(cairn_store_dirfd(a), &sa) == 0 && fstat(cairn_store_dirfd(b), &sb) == 0 &&
	       sa.st_dev == sb.st_dev && sa.st_ino == sb.st_ino;
}

static int copy_one(const struct copy_options *o, struct cairn_copy *copy, const char *name)
{
	const char *dst_name = o->name ? o->name : name;
	struct cairn_copy_stats stats = {0};
	uint64_t start = cairn_now_ns();

	int r = cairn_copy_snapshot(copy, name, dst_name, o->replace ? CAIRN_COPY_REPLACE : 0,
				    &stats);
	if (r < 0) {
		cli_error("%s", cairn_copy_error(copy));
		return EXIT_ERROR;
	}
	print_summary(o, name, dst_name, r, &stats, (double)(cairn_now_ns() - start) / 1e9);
	return EXIT_OK;
}

static int copy_all(const struct copy_options *o, struct cairn_store *src, struct cairn_store *dst,
		    char **names, size_t count)
{
	_cleanup_(cairn_writer_freep) struct cairn_writer *writer = NULL;
	_cleanup_(cairn_copy_freep) struct cairn_copy *copy = NULL;
	int status = EXIT_OK;

	if (cli_writer_lock(dst, 0, &writer, NULL) < 0)
		return EXIT_ERROR;
	if (cairn_copy_new(src, dst, writer, &copy) < 0) {
		cli_error("out of memory");
		return EXIT_ERROR;
	}
	for (size_t i = 0; i < count; i++)
		if (copy_one(o, copy, names[i]) != EXIT_OK)
			status = EXIT_ERROR;
	return status;
}

static int run_copy(struct cli *cli, const struct copy_options *o)
{
	char **listed = NULL;
	size_t listed_count = 0;

	_cleanup_(cairn_store_freep) struct cairn_store *src = open_side(cli, o->src, NULL);
	if (!src || check_named(o, src) != EXIT_OK)
		return EXIT_ERROR;
	int r = cairn_store_pin(src); /* no gc removes a pack under the copy */
	if (r == 0 && !o->snapshots)
		r = cairn_snapshot_list(src, &listed, &listed_count);
	if (r < 0) {
		cli_error("%s: %s", o->src, strerror(-r));
		return EXIT_ERROR;
	}
	_cleanup_(cairn_store_freep) struct cairn_store *dst = open_side(cli, o->dst, src);
	if (!dst) {
		cairn_snapshot_names_free(listed, listed_count);
		return EXIT_ERROR;
	}
	if (same_store(src, dst)) {
		cli_error("%s and %s are the same store", o->src, o->dst);
		r = EXIT_ERROR;
	} else {
		r = copy_all(o, src, dst, o->snapshots ? o->snapshots : listed,
			     o->snapshots ? o->count : listed_count);
	}
	cairn_snapshot_names_free(listed, listed_count);
	return r;
}

int cmd_copy(struct cli *cli, int argc, char **argv)
{
	struct copy_options options = {0};

	int r = copy_parse(cli, argc, argv, &options);
	if (r)
		return r < 0 ? EXIT_OK : r;
	return run_copy(cli, &options);
}
