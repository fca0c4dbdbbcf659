/* main.c: the cairn binary's entry point: global options, --help and
 * --version, and dispatch to the cmd_* subcommands.
 */
#include <getopt.h>
#include <locale.h>
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "config.h"
#include "mount.h"

struct command {
	const char *name;
	cli_command_fn run;
	const char *summary;
};

static const struct command commands[] = {
	{"init", cmd_init, "create an empty store"},
	{"add", cmd_add, "add archives to the store as snapshots"},
	{"ls", cmd_ls, "list snapshots, or the files of a snapshot"},
	{"cat", cmd_cat, "write a file of a snapshot to stdout"},
	{"extract", cmd_extract, "restore a snapshot, or part of one, into a directory"},
	{"info", cmd_info, "show what the store, or a snapshot, holds and costs"},
	{"verify", cmd_verify, "check the store and its snapshots, or some snapshots"},
	{"copy", cmd_copy, "copy snapshots to another store, sending only missing chunks"},
	{"rm", cmd_rm, "remove snapshots (gc then frees their space)"},
	{"gc", cmd_gc, "drop chunks no snapshot uses and repack"},
	{"mount", cmd_mount, "serve the store, or a snapshot, as a read-only filesystem"},
	{"umount", cmd_umount, "unmount what cairn mount mounted"},
};

static void print_help(FILE *out)
{
	fprintf(out, "Usage: cairn [-s STORE] COMMAND [OPTIONS] [ARGS]\n"
		     "\n"
		     "cairn keeps archives in a deduplicated, content-addressed store.\n"
		     "\n"
		     "Commands:\n");
	for (size_t i = 0; i < ARRAY_SIZE(commands); i++)
		fprintf(out, "  %-10s %s\n", commands[i].name, commands[i].summary);
	fprintf(out, "\n"
		     "Options:\n"
		     "  -s, --store DIR  the store: a directory or s3://BUCKET[/PREFIX] (default:\n"
		     "                   $CAIRN_STORE, else $XDG_DATA_HOME/cairn, else\n"
		     "                   ~/.local/share/cairn)\n"
		     "  -h, --help       show this help; 'cairn COMMAND --help' for a command\n"
		     "  -V, --version    show the version\n"
		     "\n"
		     "Exit status: 0 success, 1 failure or damage found, 2 bad usage.\n");
}

static int parse_global(struct cli *cli, int argc, char **argv)
{
	static const struct option options[] = {
		CLI_STORE_OPTION,
		{"help", no_argument, NULL, 'h'},
		{"version", no_argument, NULL, 'V'},
		{0},
	};
	int c;

	while ((c = getopt_long(argc, argv, "+s:hV", options, NULL)) != -1) {
		switch (c) {
		case 's':
			cli->store_path = optarg;
			break;
		case 'h':
			print_help(stdout);
			return EXIT_OK;
		case 'V': {
			char lib[400];
			(void)cairn_mount_library(lib, sizeof(lib));
			printf("cairn %s (passthrough reads %s; mounts: %s)\n", CAIRN_VERSION,
			       CAIRN_HAVE_PASSTHROUGH ? "built in" : "not built in", lib);
			return EXIT_OK;
		}
		default:
			fprintf(stderr, "Try 'cairn --help'.\n");
			return EXIT_USAGE;
		}
	}
	return -1;
}

int main(int argc, char **argv)
{
	struct cli cli = {0};

	/* Archive names are read and written in the user's charset, as bsdtar
	 * does, so that both agree on them. */
	setlocale(LC_CTYPE, "");

	/* Run by mount(8) as mount.cairn or mount.fuse.cairn. */
	const char *self = strrchr(argv[0], '/');
	self = self ? self + 1 : argv[0];
	if (strncmp(self, "mount.", 6) == 0)
		return cmd_mount_helper(argc, argv);

	/* getopt names the program by argv[0] in its messages ("cairn:
	 * unrecognized option '--x'"), and then the command's ("cairn add:"),
	 * so that a bad option is the usual two lines: that, and the hint. */
	static char name[] = "cairn";
	argv[0] = name;
	/* -1: go on to the command; otherwise the exit status. */
	int r = parse_global(&cli, argc, argv);
	if (r >= 0)
		return r;
	if (optind >= argc) {
		print_help(stderr);
		return EXIT_USAGE;
	}
	cli.command = argv[optind];
	char program[64];
	for (size_t i = 0; i < ARRAY_SIZE(commands); i++) {
		if (strcmp(commands[i].name, cli.command) == 0) {
			argc -= optind;
			argv += optind;
			snprintf(program, sizeof(program), "cairn %s", cli.command);
			argv[0] = program;
			optind = 0; /* a full reset for the command's getopt */
			return commands[i].run(&cli, argc, argv);
		}
	}
	cli_error("unknown command '%s'. Try 'cairn --help'.", cli.command);
	return EXIT_USAGE;
}
