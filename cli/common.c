/* common.c: helpers shared by the subcommands: error output, store path
 * resolution and opening, number parsing and the options every
 * command takes. The only printing in cairn happens in cli/.
 */
#include <errno.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "cli.h"

void cli_error(const char *fmt, ...)
{
	va_list ap;

	fputs("cairn: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

int cli_usage_error(const struct cli *cli, const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "cairn %s: ", cli->command);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, "\nTry 'cairn %s --help'.\n", cli->command);
	return EXIT_USAGE;
}

static char *join(const char *a, const char *b)
{
	size_t len = strlen(a) + strlen(b) + 2;
	char *path = malloc(len);

	if (path)
		snprintf(path, len, "%s/%s", a, b);
	return path;
}

char *cli_store_path(const struct cli *cli)
{
	const char *env;
	char *path = NULL;

	if (cli->store_path)
		path = strdup(cli->store_path);
	else if ((env = getenv("CAIRN_STORE")) && *env)
		path = strdup(env);
	else if ((env = getenv("XDG_DATA_HOME")) && *env == '/')
		path = join(env, "cairn");
	else if ((env = getenv("HOME")) && *env)
		path = join(env, ".local/share/cairn");
	else {
		cli_error("no store given: use -s DIR or set CAIRN_STORE (HOME is not set)");
		return NULL;
	}
	if (!path)
		cli_error("out of memory");
	return path;
}

struct cairn_store *cli_open_store(const struct cli *cli)
{
	_cleanup_free_ char *path = cli_store_path(cli);
	if (!path)
		return NULL;
	_cleanup_(cairn_store_freep) struct cairn_store *store = cairn_store_new();
	if (!store) {
		cli_error("out of memory");
		return NULL;
	}
	int r = cairn_store_open(store, path);
	if (r < 0) {
		cli_error("%s", cairn_store_error(store));
		return NULL;
	}
	return TAKE_PTR(store);
}

int cli_parse_int(const char *text, long min, long max, long *ret)
{
	char *end;

	errno = 0;
	long value = strtol(text, &end, 10);
	if (errno || end == text || *end != '\0' || value < min || value > max)
		return -EINVAL;
	*ret = value;
	return 0;
}

int cli_common_option(struct cli *cli, int c, void (*help)(void))
{
	switch (c) {
	case 's':
		cli->store_path = optarg;
		return 0;
	case 'h':
		help();
		return -1;
	default:
		/* getopt said what is wrong, as "cairn COMMAND: ..." (main.c
		 * names the program so); the hint completes the usual two lines. */
		fprintf(stderr, "Try 'cairn %s --help'.\n", cli->command);
		return EXIT_USAGE;
	}
}

int cli_parse_quiet(struct cli *cli, int argc, char **argv, void (*help)(void), bool *quiet)
{
	static const struct option options[] = {
		CLI_COMMON_OPTIONS,
		{"quiet", no_argument, NULL, 'q'},
		{0},
	};
	int c, r;

	while ((c = getopt_long(argc, argv, CLI_COMMON_SHORT "q", options, NULL)) != -1) {
		switch (c) {
		case 'q':
			*quiet = true;
			break;
		default:
			if ((r = cli_common_option(cli, c, help)) != 0)
				return r;
		}
	}
	return 0;
}
