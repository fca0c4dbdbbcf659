/* cmd_add.c: `cairn add`: its options; the adding itself is add.c, which
 * `cairn mount ARCHIVE` shares.
 */
#include <getopt.h>
#include <stdio.h>

#include "cli.h"

static void add_help(void)
{
	printf("Usage: cairn add [-s STORE] [OPTIONS] ARCHIVE...\n"
	       "\n"
	       "Add each ARCHIVE ('-' reads stdin) to the store as a snapshot. Formats: tar\n"
	       "(ustar, gnu, pax) plain or compressed with gzip, bzip2, xz, lzma, zstd, lz4,\n"
	       "lzip or compress; zip; 7z; iso9660; cpio; ar (.deb); rar; cab, lha, xar.\n"
	       "The store is created if it does not exist.\n"
	       "\n"
	       "  -n, --name NAME        the snapshot's name (default: the archive's file name\n"
	       "                         without its suffixes; needed for stdin). Allowed:\n"
	       "                         1-200 bytes, no space, '/', ':' or '\\', not starting\n"
	       "                         with '.', '-' or \"tmp-\"\n"
	       "      --replace          replace an existing snapshot of that name\n"
	       "      --max-entries N    refuse archives with more entries (default 16M)\n"
	       "      --max-ratio N      refuse archives that unpack to more than N times the\n"
	       "                         bytes read, beyond 64 MiB: decompression bombs\n"
	       "                         (default 1000; 0: no bound)\n"
	       "      --partial          a damaged archive: keep the entries read before the\n"
	       "                         damage as a snapshot marked partial (a warning, exit\n"
	       "                         0); the entries before it may still hold damaged\n"
	       "                         bytes when only a checksum at the end caught it\n"
	       "      --strip-components N  drop the first N components of each entry's\n"
	       "                         path (and hard link target), as tar does; entries\n"
	       "                         with no more are left out\n"
	       "      --encoding CHARSET the charset of names the archive does not mark as\n"
	       "                         UTF-8 (CP932, CP437, ...): converted to UTF-8\n"
	       "      --password-file FILE  the password of encrypted zip entries (what\n"
	       "                         libarchive decrypts; not 7z or rar):\n"
	       "                         the file's first line (may be given more than once;\n"
	       "                         without one, a terminal is asked)\n"
	       "  -r, --recursive        archives inside the archive (a tar in a tar, a .deb's\n"
	       "                         data.tar.xz, a jar in a war, a .tar.gz in a zip)\n"
	       "                         become directories in place of the file, which is\n"
	       "                         kept as NAME.orig; 4 levels deep\n"
	       "      --recursion-depth N  as -r, N levels deep (0: none)\n"
	       "  -q, --quiet            no progress line and no summary\n"
	       "\n"
	       "Entries whose path contains '..' or passes through a symlink are skipped with\n"
	       "a warning, as bsdtar -x does; later duplicates replace earlier ones, which\n"
	       "are kept (cairn mount -o versions shows them).\n"
	       "A damaged archive fails: a gzip member's CRC32 or size, an lz4 frame's or\n"
	       "block's checksum, xz's, bzip2's, zstd's and lzip's checks that do not match,\n"
	       "and a damaged header that a reader would skip to the next good one.\n"
	       "A compressed file that holds no archive (foo.sql.gz, disk.img.xz) becomes\n"
	       "a snapshot of one file, named without the suffix, with the file's mtime.\n"
	       "A split archive is added by its first part, NAME.001 (NAME.zip.001, ...):\n"
	       "the parts that follow are read as one file, and the snapshot named NAME.\n"
	       "A multi-volume RAR archive is added by its first volume, NAME.part1.rar\n"
	       "(or NAME.rar with NAME.r00, NAME.r01, ...): the volumes are read as one\n"
	       "archive named NAME; a volume missing or damaged is an error naming it.\n"
	       "Exit status: 0 all added, 1 an archive failed (it committed nothing).\n");
}

enum { OPT_REPLACE = 256, OPT_MAX_ENTRIES, OPT_MAX_RATIO, OPT_PARTIAL, OPT_RECURSION_DEPTH };

/* A whole number; 0 turns the bound off. */
static int parse_ratio(const char *text, uint64_t *ret)
{
	long value;

	if (cli_parse_int(text, 0, 1000000000L, &value) < 0)
		return -EINVAL;
	*ret = value == 0 ? CAIRN_IMPORT_NO_RATIO : (uint64_t)value;
	return 0;
}

/* -r: the default depth, unless --recursion-depth said otherwise. */
static int parse_depth(struct cli *cli, const char *text, struct cli_add_options *add)
{
	long value;

	if (!text) {
		if (add->recursion_depth == 0)
			add->recursion_depth = CAIRN_IMPORT_RECURSION_DEPTH;
		return 0;
	}
	if (cli_parse_int(text, 0, 64, &value) < 0)
		return cli_usage_error(cli, "invalid --recursion-depth '%s' (0..64)", text);
	add->recursion_depth = (unsigned)value;
	return 0;
}

static int add_parse(struct cli *cli, int argc, char **argv, struct cli_add_options *add)
{
	static const struct option options[] = {
		CLI_COMMON_OPTIONS,
		{"name", required_argument, NULL, 'n'},
		{"replace", no_argument, NULL, OPT_REPLACE},
		{"max-entries", required_argument, NULL, OPT_MAX_ENTRIES},
		{"max-ratio", required_argument, NULL, OPT_MAX_RATIO},
		{"partial", no_argument, NULL, OPT_PARTIAL},
		{"recursive", no_argument, NULL, 'r'},
		{"recursion-depth", required_argument, NULL, OPT_RECURSION_DEPTH},
		{"quiet", no_argument, NULL, 'q'},
		CLI_ADD_INPUT_OPTIONS,
		{0},
	};
	int c, r;

	while ((c = getopt_long(argc, argv, CLI_COMMON_SHORT "n:qr", options, NULL)) != -1) {
		switch (c) {
		case 'n':
			add->name = optarg;
			break;
		case OPT_REPLACE:
			add->replace = true;
			break;
		case OPT_MAX_ENTRIES:
			if (cairn_parse_size(optarg, &add->max_entries) < 0 ||
			    add->max_entries == 0)
				return cli_usage_error(cli, "invalid --max-entries '%s'", optarg);
			break;
		case OPT_MAX_RATIO:
			if (parse_ratio(optarg, &add->max_ratio) < 0)
				return cli_usage_error(cli, "invalid --max-ratio '%s'", optarg);
			break;
		case OPT_PARTIAL:
			add->partial = true;
			break;
		case 'r':
		case OPT_RECURSION_DEPTH:
			if ((r = parse_depth(cli, c == 'r' ? NULL : optarg, add)) != 0)
				return r;
			break;
		case 'q':
			add->quiet = true;
			break;
		default:
			if ((r = cli_add_input_option(cli, c, optarg, add)) < 0)
				r = cli_common_option(cli, c, add_help);
			if (r != 0)
				return r;
		}
	}
	if (optind >= argc)
		return cli_usage_error(cli, "no archive given");
	if (add->name && optind + 1 < argc)
		return cli_usage_error(cli, "--name needs a single archive");
	return 0;
}

int cmd_add(struct cli *cli, int argc, char **argv)
{
	struct cli_add_options options = {0};

	int r = add_parse(cli, argc, argv, &options);
	if (r)
		return r < 0 ? EXIT_OK : r;
	return cli_add(cli, &options, (const char *const *)argv + optind, argc - optind);
}
