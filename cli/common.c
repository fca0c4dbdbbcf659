/* common.c: helpers shared by the subcommands: error output, store path
 * resolution and opening, number parsing and the options every
 * command takes. The only printing in cairn happens in cli/.
 */
#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "cli.h"

void cli_error(const char *fmt, ...)
{
	_cleanup_free_ char *msg = NULL;
	va_list ap;

	/* Messages name entries of archives: escaped, whatever stderr is. */
	va_start(ap, fmt);
	int r = vasprintf(&msg, fmt, ap);
	va_end(ap);
	fputs("cairn: ", stderr);
	if (r < 0) {
		msg = NULL;
		fputs("out of memory", stderr);
	} else {
		cli_put_escaped(stderr, msg);
	}
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

bool cli_is_url(const char *text)
{
	static const char scheme_chars[] = "abcdefghijklmnopqrstuvwxyz"
					   "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789+-.";
	size_t len = strspn(text, scheme_chars);

	/* RFC 3986: a scheme starts with a letter. */
	return len > 0 && isalpha((unsigned char)text[0]) && strncmp(text + len, "://", 3) == 0;
}

/* Refuses a store named by a URL: taken as a path, "s3://bucket/x" would
 * quietly become a local directory "s3:". */
static bool store_is_url(const char *path, const char *origin)
{
	if (!cli_is_url(path) || cairn_store_path_is_remote(path))
		return false;
	cli_error("store %s%s: cairn keeps stores in local directories or at s3:// urls; a URL "
		  "(%.*s://) cannot be used",
		  path, origin, (int)(strstr(path, "://") - path), path);
	return true;
}

char *cli_store_path(const struct cli *cli)
{
	const char *env = getenv("CAIRN_STORE");
	const char *given = cli->store_path ? cli->store_path : env && *env ? env : NULL;
	char *path;

	if (given) {
		if (store_is_url(given, cli->store_path ? "" : " (from $CAIRN_STORE)"))
			return NULL;
		path = strdup(given);
	} else if ((env = getenv("XDG_DATA_HOME")) && *env == '/') {
		path = join(env, "cairn");
	} else if ((env = getenv("HOME")) && *env) {
		path = join(env, ".local/share/cairn");
	} else {
		cli_error("no store given: use -s DIR or set CAIRN_STORE (HOME is not set)");
		return NULL;
	}
	if (!path)
		cli_error("out of memory");
	return path;
}

/* Another add may be creating the store at the same time: then this one
 * finds it made (-EEXIST) and opens it. */
static struct cairn_store *create_store(const char *path, const struct cairn_store *like)
{
	int r = cairn_store_path_is_remote(path) ? 0 : cairn_mkdir_p(path, 0700, true);
	if (r < 0) {
		cli_error("cannot create the parents of %s: %s", path, strerror(-r));
		return NULL;
	}
	_cleanup_(cairn_store_freep) struct cairn_store *store = cairn_store_new();
	if (!store) {
		cli_error("out of memory");
		return NULL;
	}
	r = like ? cairn_store_create_like(store, path, like)
		 : cairn_store_create(store, path, NULL);
	if (r == 0) {
		fprintf(stderr, "cairn: created a new store in %s\n", path);
		return TAKE_PTR(store);
	}
	if (r == -EEXIST) {
		_cleanup_(cairn_store_freep) struct cairn_store *made = cairn_store_new();
		if (made && cairn_store_open(made, path) == 0)
			return TAKE_PTR(made);
	}
	cli_error("%s", cairn_store_error(store));
	return NULL;
}

/* A store whose snapshots/ is a link or no directory is refused by every
 * command alike, before any starts (the store refused its own parts). */
static struct cairn_store *checked(struct cairn_store *store)
{
	char msg[PATH_MAX + 128];

	if (store && cairn_snapshot_dir_check(store, msg, sizeof(msg)) < 0) {
		cli_error("%s", msg);
		cairn_store_free(store);
		return NULL;
	}
	return store;
}

static struct cairn_store *open_store(const struct cli *cli, bool create,
				      const struct cairn_store *like)
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
	if (r == -ENOENT && create)
		return checked(create_store(path, like));
	if (r < 0) {
		cli_error("%s", cairn_store_error(store));
		return NULL;
	}
	return checked(TAKE_PTR(store));
}

struct cairn_store *cli_open_store(const struct cli *cli)
{
	return open_store(cli, false, NULL);
}

struct cairn_store *cli_open_or_create_store(const struct cli *cli)
{
	return open_store(cli, true, NULL);
}

struct cairn_store *cli_open_or_create_store_like(const struct cli *cli,
						  const struct cairn_store *like)
{
	return open_store(cli, true, like);
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
