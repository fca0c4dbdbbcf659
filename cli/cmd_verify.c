/* cmd_verify.c: `cairn verify`: re-reads the whole store and reports every
 * damaged chunk, pack or table by name. Exit 1 when anything is damaged.
 */
#include <getopt.h>
#include <stdio.h>

#include "cli.h"

static void verify_help(void)
{
	printf("Usage: cairn verify [-s STORE] [-q]\n"
	       "\n"
	       "Re-read every pack of the store, decompress and re-hash every chunk, and\n"
	       "check the chunk table. Each problem is printed on a line of its own.\n"
	       "\n"
	       "  -q, --quiet  print only problems\n"
	       "\n"
	       "Exit status: 0 the store is sound, 1 damage found or verify failed.\n");
}

struct report_state {
	const char *store_path;
	int64_t count;
};

static void report_problem(void *userdata, const char *problem)
{
	struct report_state *state = userdata;

	state->count++;
	fprintf(stderr, "cairn: %s: %s\n", state->store_path, problem);
}

int cmd_verify(struct cli *cli, int argc, char **argv)
{
	static const struct option options[] = {
		CLI_STORE_OPTION,
		{"help", no_argument, NULL, 'h'},
		{"quiet", no_argument, NULL, 'q'},
		{0},
	};
	bool quiet = false;
	int c;

	while ((c = getopt_long(argc, argv, "s:hq", options, NULL)) != -1) {
		switch (c) {
		case 's':
			cli->store_path = optarg;
			break;
		case 'h':
			verify_help();
			return EXIT_OK;
		case 'q':
			quiet = true;
			break;
		default:
			return cli_usage_error(cli, "bad option");
		}
	}
	if (optind < argc)
		return cli_usage_error(cli, "unexpected argument '%s'", argv[optind]);

	struct cairn_store *store = cli_open_store(cli);
	if (!store)
		return EXIT_ERROR;
	struct report_state state = {.store_path = cairn_store_path(store)};
	struct cairn_store_stats stats = {0};
	cairn_store_stats(store, &stats);
	int64_t problems = cairn_store_verify(store, report_problem, &state);
	if (problems < 0)
		cli_error("%s", cairn_store_error(store));
	else if (problems > 0)
		fprintf(stderr, "cairn: %s: %lld problem%s found\n", state.store_path,
			(long long)problems, problems == 1 ? "" : "s");
	else if (!quiet)
		printf("%s: %llu chunks in %llu packs verified, no problems\n", state.store_path,
		       (unsigned long long)stats.chunk_count, (unsigned long long)stats.pack_count);
	cairn_store_free(store);
	return problems == 0 ? EXIT_OK : EXIT_ERROR;
}
