/* cmd_ls.c: `cairn ls`: with no argument the store's snapshots, otherwise
 * the entries of a directory of a snapshot (or one entry), in name order,
 * short, long (-l), recursive (-R) or as JSON (--json). Everything comes
 * from the snapshot index; no chunk is read.
 */
#include <dirent.h>
#include <getopt.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"

struct ls {
	bool long_format, recursive, json;
	struct cli_object obj;
	bool first_json; /* no JSON object printed yet */
	bool escape;     /* stdout is a terminal: names escaped (cli_put_escaped) */
	int status;
};

static void ls_help(void)
{
	printf("Usage: cairn ls [-s STORE] [-l] [-R] [--json] [SNAPSHOT[:PATH]]\n"
	       "\n"
	       "With no argument, list the snapshots in the store. Otherwise list the\n"
	       "directory PATH of SNAPSHOT (default: its root), or the entry PATH.\n"
	       "\n"
	       "  -l, --long       mode, links, owner, size, time; snapshots: entries, size,\n"
	       "                   format, source and time added\n"
	       "  -R, --recursive  list subdirectories too, as paths below PATH\n"
	       "      --json       one JSON array of objects\n"
	       "\n"
	       "On a terminal, control bytes and bytes that are not UTF-8 in names are shown\n"
	       "as \\ooo (ESC: \\033).\n");
}

static int ls_parse(struct cli *cli, int argc, char **argv, struct ls *ls)
{
	static const struct option options[] = {
		CLI_COMMON_OPTIONS,
		{"long", no_argument, NULL, 'l'},
		{"recursive", no_argument, NULL, 'R'},
		{"json", no_argument, NULL, 'j'},
		{0},
	};
	int c, r;

	while ((c = getopt_long(argc, argv, CLI_COMMON_SHORT "lR", options, NULL)) != -1) {
		switch (c) {
		case 'l':
			ls->long_format = true;
			break;
		case 'R':
			ls->recursive = true;
			break;
		case 'j':
			ls->json = true;
			break;
		default:
			if ((r = cli_common_option(cli, c, ls_help)) != 0)
				return r;
		}
	}
	if (optind + 1 < argc)
		return cli_usage_error(cli, "too many arguments");
	return 0;
}

/* ---- formatting ---- */

/* s as it is shown: as is, or escaped into *buf (freed by the caller) when
 * stdout is a terminal; like GNU ls, a pipe gets the names' bytes. */
static const char *shown(const struct ls *ls, const char *s, char **buf)
{
	size_t size;

	if (!s || !ls->escape)
		return s;
	FILE *f = open_memstream(buf, &size);
	if (!f)
		return "?";
	cli_put_escaped(f, s);
	return fclose(f) == 0 ? *buf : "?";
}

static void json_begin(struct ls *ls)
{
	printf(ls->first_json ? "[\n  {" : ",\n  {");
	ls->first_json = false;
}

static void format_time(int64_t sec, char *buf, size_t size)
{
	time_t t = (time_t)sec;
	struct tm tm;

	if (!localtime_r(&t, &tm) || strftime(buf, size, "%Y-%m-%d %H:%M", &tm) == 0)
		snprintf(buf, size, "%lld", (long long)sec);
}

static void mode_string(uint32_t mode, char out[11])
{
	static const char types[] = "?pc?d?b?-?l?s???";
	static const char rwx[] = "rwxrwxrwx";

	out[0] = types[(mode >> 12) & 15];
	for (int i = 0; i < 9; i++)
		out[1 + i] = (mode & (0400u >> i)) ? rwx[i] : '-';
	if (mode & S_ISUID)
		out[3] = (mode & S_IXUSR) ? 's' : 'S';
	if (mode & S_ISGID)
		out[6] = (mode & S_IXGRP) ? 's' : 'S';
	if (mode & S_ISVTX)
		out[9] = (mode & S_IXOTH) ? 't' : 'T';
	out[10] = '\0';
}

static const char *type_name(uint32_t mode)
{
	switch (mode & S_IFMT) {
	case S_IFREG:
		return "file";
	case S_IFDIR:
		return "dir";
	case S_IFLNK:
		return "symlink";
	case S_IFCHR:
		return "char";
	case S_IFBLK:
		return "block";
	case S_IFIFO:
		return "fifo";
	default:
		return "socket";
	}
}

/* ---- snapshots ---- */

static void print_snapshot(struct ls *ls, struct cairn_index *idx, const char *name)
{
	struct cairn_index_info info;
	char size[32], when[32];

	cairn_index_info(idx, &info);
	if (ls->json) {
		json_begin(ls);
		printf("\"name\": ");
		cli_json_string(name);
		printf(", \"entries\": %llu, \"files\": %llu, \"bytes\": %llu, \"format\": ",
		       (unsigned long long)info.dirent_count, (unsigned long long)info.file_count,
		       (unsigned long long)info.file_bytes);
		cli_json_string(info.source_format);
		printf(", \"source\": ");
		cli_json_string(info.source_name);
		printf(", \"source_size\": %llu, \"created\": %lld}",
		       (unsigned long long)info.source_size, (long long)info.created_sec);
		return;
	}
	_cleanup_free_ char *name_buf = NULL, *source_buf = NULL;
	cairn_format_bytes(info.file_bytes, size, sizeof(size));
	format_time(info.created_sec, when, sizeof(when));
	printf("%-30s %10llu entries %10s  %-12s %s  %s\n", shown(ls, name, &name_buf),
	       (unsigned long long)info.dirent_count, size, info.source_format, when,
	       shown(ls, info.source_name, &source_buf));
}

static int list_snapshots(const struct cli *cli, struct ls *ls)
{
	char **names;
	size_t count;

	_cleanup_(cairn_store_freep) struct cairn_store *store = cli_open_store(cli);
	if (!store)
		return EXIT_ERROR;
	int r = cairn_snapshot_list(store, &names, &count);
	if (r < 0) {
		cli_error("%s/snapshots: %s", cairn_store_path(store), strerror(-r));
		return EXIT_ERROR;
	}
	for (size_t i = 0; i < count; i++) {
		if (!ls->long_format && !ls->json) {
			_cleanup_free_ char *buf = NULL;
			printf("%s\n", shown(ls, names[i], &buf));
			continue;
		}
		_cleanup_(cairn_index_freep) struct cairn_index *idx = cairn_index_new();
		if (idx && cairn_index_open(idx, store, names[i]) == 0)
			print_snapshot(ls, idx, names[i]);
		else {
			cli_error("%s", idx ? cairn_index_error(idx) : "out of memory");
			ls->status = EXIT_ERROR;
		}
	}
	cairn_snapshot_names_free(names, count);
	return ls->status;
}

/* ---- entries ---- */

static void print_json_entry(struct ls *ls, const char *path, const struct cairn_index_stat *st,
			     const char *target)
{
	json_begin(ls);
	printf("\"path\": ");
	cli_json_string(path);
	printf(", \"type\": \"%s\", \"mode\": \"%04o\", \"size\": %llu, \"nlink\": %u, "
	       "\"uid\": %u, \"gid\": %u, \"user\": ",
	       type_name(st->mode), st->mode & 07777, (unsigned long long)st->size, st->nlink,
	       st->uid, st->gid);
	st->user ? cli_json_string(st->user) : (void)printf("null");
	printf(", \"group\": ");
	st->group ? cli_json_string(st->group) : (void)printf("null");
	printf(", \"mtime\": %lld, \"mtime_nsec\": %u, \"ino\": %llu", (long long)st->mtime_sec,
	       st->mtime_nsec, (unsigned long long)st->ino);
	if (target) {
		printf(", \"target\": ");
		cli_json_string(target);
	}
	if (S_ISCHR(st->mode) || S_ISBLK(st->mode))
		printf(", \"major\": %u, \"minor\": %u", major(st->rdev), minor(st->rdev));
	putchar('}');
}

static void print_entry(struct ls *ls, const char *path, const struct cairn_index_stat *st,
			const char *target)
{
	char mode[11], when[32], user[16], group[16];
	_cleanup_free_ char *path_buf = NULL, *target_buf = NULL, *user_buf = NULL,
			    *group_buf = NULL;

	if (ls->json) {
		print_json_entry(ls, path, st, target);
		return;
	}
	path = shown(ls, path, &path_buf);
	target = shown(ls, target, &target_buf);
	if (!ls->long_format) {
		printf("%s\n", path);
		return;
	}
	mode_string(st->mode, mode);
	format_time(st->mtime_sec, when, sizeof(when));
	snprintf(user, sizeof(user), "%u", st->uid);
	snprintf(group, sizeof(group), "%u", st->gid);
	printf("%s %3u %-8s %-8s ", mode, st->nlink,
	       st->user ? shown(ls, st->user, &user_buf) : user,
	       st->group ? shown(ls, st->group, &group_buf) : group);
	if (S_ISCHR(st->mode) || S_ISBLK(st->mode))
		printf("%4u, %4u", major(st->rdev), minor(st->rdev));
	else
		printf("%10llu", (unsigned long long)st->size);
	printf(" %s %s%s%s\n", when, path, target ? " -> " : "", target ? target : "");
}

static int show(struct ls *ls, const char *path, uint64_t ino)
{
	struct cairn_index_stat st;
	const char *target = NULL;
	size_t len;

	int r = cairn_index_getattr(ls->obj.idx, ino, &st);
	if (r == 0 && S_ISLNK(st.mode))
		r = cairn_index_readlink(ls->obj.idx, ino, &target, &len);
	if (r < 0)
		return cli_object_error(&ls->obj, r);
	print_entry(ls, path, &st, target);
	return EXIT_OK;
}

static int list_dir(struct ls *ls, const char *prefix, uint64_t dir)
{
	struct cairn_index_dirent d;

	for (uint64_t pos = 0;; pos++) {
		int r = cairn_index_readdir(ls->obj.idx, dir, pos, &d);
		if (r == 0)
			return EXIT_OK;
		if (r < 0)
			return cli_object_error(&ls->obj, r);
		size_t size = strlen(prefix) + d.name_len + 2;
		_cleanup_free_ char *path = malloc(size);
		if (!path) {
			cli_error("out of memory");
			return EXIT_ERROR;
		}
		snprintf(path, size, "%s%s%s", prefix, *prefix ? "/" : "", d.name);
		if (show(ls, ls->recursive ? path : d.name, d.ino) != EXIT_OK)
			return EXIT_ERROR;
		if (ls->recursive && d.type == DT_DIR && list_dir(ls, path, d.ino) != EXIT_OK)
			return EXIT_ERROR;
	}
}

static int list_object(const struct cli *cli, struct ls *ls, const char *arg)
{
	struct cairn_index_stat st;

	if (cli_object_open(cli, arg, false, &ls->obj) != EXIT_OK)
		return EXIT_ERROR;
	int r = cairn_index_getattr(ls->obj.idx, ls->obj.ino, &st);
	int status = r < 0              ? cli_object_error(&ls->obj, r)
		     : S_ISDIR(st.mode) ? list_dir(ls, "", ls->obj.ino)
					: show(ls, ls->obj.path, ls->obj.ino);
	cli_object_release(&ls->obj);
	return status;
}

int cmd_ls(struct cli *cli, int argc, char **argv)
{
	struct ls ls = {.first_json = true, .escape = isatty(STDOUT_FILENO)};

	int r = ls_parse(cli, argc, argv, &ls);
	if (r)
		return r < 0 ? EXIT_OK : r;
	int status = optind < argc ? list_object(cli, &ls, argv[optind]) : list_snapshots(cli, &ls);
	if (ls.json)
		printf(ls.first_json ? "[]\n" : "\n]\n");
	return status;
}
