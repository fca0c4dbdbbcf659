/* cmd_init.c: `cairn init`: creates an empty store with chosen chunking and
 * compression parameters (fixed for the store's life).
 */
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "cli.h"

static void init_help(void)
{
	printf("Usage: cairn init [-s STORE] [OPTIONS] [DIR]\n"
	       "\n"
	       "Create an empty store in DIR (default: the store given by -s, $CAIRN_STORE\n"
	       "or $XDG_DATA_HOME/cairn). The directory may exist but must be empty.\n"
	       "\n"
	       "Options (fixed for the life of the store):\n"
	       "  --chunk-min SIZE  smallest chunk (default 16K)\n"
	       "  --chunk-avg SIZE  average chunk, a power of two (default 64K)\n"
	       "  --chunk-max SIZE  largest chunk (default 256K)\n"
	       "  --level N         zstd level, 1-19 (default 3)\n"
	       "  --pack-size SIZE  seal pack files at this size (default 64M)\n"
	       "  --ids FUNCTION    how chunks are named: xxh3 (default; fast, detects\n"
	       "                    damage) or sha256 (HMAC-SHA-256: resists chunks\n"
	       "                    crafted to collide, for a store others can write)\n");
}

enum {
	OPT_CHUNK_MIN = 256,
	OPT_CHUNK_AVG,
	OPT_CHUNK_MAX,
	OPT_LEVEL,
	OPT_PACK_SIZE,
	OPT_IDS,
};

static int parse_size_option(const struct cli *cli, const char *name, uint64_t limit, uint64_t *ret)
{
	if (cairn_parse_size(optarg, ret) < 0 || *ret > limit)
		return cli_usage_error(cli, "invalid %s '%s'", name, optarg);
	return 0;
}

static int init_parse(struct cli *cli, int argc, char **argv, struct cairn_store_params *params)
{
	static const struct option options[] = {
		CLI_COMMON_OPTIONS,
		{"chunk-min", required_argument, NULL, OPT_CHUNK_MIN},
		{"chunk-avg", required_argument, NULL, OPT_CHUNK_AVG},
		{"chunk-max", required_argument, NULL, OPT_CHUNK_MAX},
		{"level", required_argument, NULL, OPT_LEVEL},
		{"pack-size", required_argument, NULL, OPT_PACK_SIZE},
		{"ids", required_argument, NULL, OPT_IDS},
		{0},
	};
	uint64_t size;
	long level;
	int c, r = 0;

	while (r == 0 && (c = getopt_long(argc, argv, CLI_COMMON_SHORT, options, NULL)) != -1) {
		switch (c) {
		case OPT_CHUNK_MIN:
			r = parse_size_option(cli, "--chunk-min", UINT32_MAX, &size);
			params->chunk_min = (uint32_t)size;
			break;
		case OPT_CHUNK_AVG:
			r = parse_size_option(cli, "--chunk-avg", UINT32_MAX, &size);
			params->chunk_avg = (uint32_t)size;
			break;
		case OPT_CHUNK_MAX:
			r = parse_size_option(cli, "--chunk-max", UINT32_MAX, &size);
			params->chunk_max = (uint32_t)size;
			break;
		case OPT_LEVEL:
			if (cli_parse_int(optarg, 1, 19, &level) < 0)
				return cli_usage_error(cli, "invalid --level '%s' (1-19)", optarg);
			params->zstd_level = (int32_t)level;
			break;
		case OPT_PACK_SIZE:
			r = parse_size_option(cli, "--pack-size", UINT64_MAX, &params->pack_max);
			break;
		case OPT_IDS:
			if (strcmp(optarg, "xxh3") == 0)
				params->id_hash = CAIRN_ID_XXH3;
			else if (strcmp(optarg, "sha256") == 0)
				params->id_hash = CAIRN_ID_SHA256;
			else
				return cli_usage_error(cli, "invalid --ids '%s' (xxh3 or sha256)",
						       optarg);
			break;
		default:
			r = cli_common_option(cli, c, init_help);
		}
	}
	if (r)
		return r;
	if (optind + 1 < argc)
		return cli_usage_error(cli, "too many arguments");
	if (optind < argc)
		cli->store_path = argv[optind];
	return 0;
}

int cmd_init(struct cli *cli, int argc, char **argv)
{
	struct cairn_store_params params;
	char why[200];

	cairn_store_params_default(&params);
	int r = init_parse(cli, argc, argv, &params);
	if (r)
		return r < 0 ? EXIT_OK : r;
	if (cairn_store_params_check(&params, why, sizeof(why)) < 0)
		return cli_usage_error(cli, "%s", why);
	_cleanup_free_ char *path = cli_store_path(cli);
	if (!path)
		return EXIT_ERROR;
	r = cairn_store_path_is_remote(path) ? 0 : cairn_mkdir_p(path, 0700, true);
	if (r < 0) {
		cli_error("cannot create the parents of %s: %s", path, strerror(-r));
		return EXIT_ERROR;
	}
	_cleanup_(cairn_store_freep) struct cairn_store *store = cairn_store_new();
	if (!store) {
		cli_error("out of memory");
		return EXIT_ERROR;
	}
	r = cairn_store_create(store, path, &params);
	if (r < 0) {
		cli_error("%s", cairn_store_error(store));
		return EXIT_ERROR;
	}
	printf("Created an empty cairn store in %s\n", path);
	return EXIT_OK;
}
