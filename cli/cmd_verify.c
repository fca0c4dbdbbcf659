/* cmd_verify.c: `cairn verify`: with no argument, re-reads the whole store
 * (every pack, chunk and the table) and checks every snapshot's index and
 * that the store holds every chunk it names; with SNAPSHOT arguments, checks
 * just those snapshots and reads every chunk they name once, through the
 * same checks every read makes. Each problem is one line naming the store
 * and the pack, snapshot, file or chunk. Exit 1 when anything is damaged;
 * leftovers of interrupted writers are listed as notes, not damage.
 */
#include <dirent.h>
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "cli.h"

/* Deeper directories are reported, not walked (the stack is finite). */
#define WALK_DEPTH_MAX 4096u

struct verify {
	bool quiet;
	struct cairn_store *store;
	const char *store_path;
	int64_t problems;
	/* reading the chunks of named snapshots */
	struct cairn_index *idx; /* the snapshot being walked */
	struct cairn_unpacker *unpacker;
	struct cairn_chunk_set *seen; /* chunks read already, by any snapshot */
	uint8_t *buf;                 /* chunk_max bytes */
	size_t buf_size;
	char *path; /* of the entry being walked, inside the snapshot */
	size_t path_len, path_cap;
	uint64_t chunk_bytes;
	uint64_t leftover_bytes;
};

static void verify_help(void)
{
	printf("Usage: cairn verify [-s STORE] [-q] [SNAPSHOT...]\n"
	       "\n"
	       "Without SNAPSHOT, re-read every pack of the store, decompress and re-hash\n"
	       "every chunk, check the chunk table, and check every snapshot's index and\n"
	       "that the store holds every chunk it names.\n"
	       "\n"
	       "With SNAPSHOTs, check just their indexes, and read, decompress and re-hash\n"
	       "every chunk they name (each once).\n"
	       "\n"
	       "Each problem is printed on a line of its own, naming the pack, snapshot,\n"
	       "file or chunk. Without SNAPSHOT, files that interrupted writers left (temp\n"
	       "files, packs no commit lists) are listed too, as notes: they are not\n"
	       "damage, and the next add, rm or gc removes them.\n"
	       "\n"
	       "  -q, --quiet  print only problems\n"
	       "\n"
	       "Exit status: 0 all sound (leftovers or not), 1 damage found or verify\n"
	       "failed.\n");
}

static int verify_parse(struct cli *cli, int argc, char **argv, struct verify *v)
{
	return cli_parse_quiet(cli, argc, argv, verify_help, &v->quiet);
}

static void report_problem(void *userdata, const char *problem)
{
	struct verify *v = userdata;

	v->problems++;
	fputs("cairn: ", stderr);
	cli_put_escaped(stderr, v->store_path);
	fputs(": ", stderr);
	cli_put_escaped(stderr, problem);
	fputc('\n', stderr);
}

static void report(struct verify *v, const char *fmt, ...) _printf_(2, 3);
static void report(struct verify *v, const char *fmt, ...)
{
	char msg[1024];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	report_problem(v, msg);
}

/* Prints the closing line of a part; returns the part's problem count. */
static int64_t summary(struct verify *v, int64_t before, const char *what)
{
	int64_t found = v->problems - before;

	if (found > 0)
		fprintf(stderr, "cairn: %s: %lld problem%s found\n", v->store_path,
			(long long)found, found == 1 ? "" : "s");
	else if (!v->quiet)
		printf("%s: %s, no problems\n", v->store_path, what);
	return found;
}

/* ---- the store ---- */

static int verify_store(struct verify *v)
{
	struct cairn_store_stats stats = {0};
	char what[128];

	cairn_store_stats(v->store, &stats);
	int64_t before = v->problems;
	int64_t r = cairn_store_verify(v->store, report_problem, v);
	if (r < 0) {
		cli_error("%s", cairn_store_error(v->store));
		return EXIT_ERROR;
	}
	snprintf(what, sizeof(what), "%llu chunks in %llu packs verified",
		 (unsigned long long)stats.chunk_count, (unsigned long long)stats.pack_count);
	return summary(v, before, what) ? EXIT_ERROR : EXIT_OK;
}

/* ---- leftovers of interrupted writers: notes, not damage ---- */

static void report_leftover(void *userdata, const char *path, uint64_t size)
{
	struct verify *v = userdata;
	char shown[32];

	v->leftover_bytes += size;
	printf("%s: note: %s (%s) is a leftover of an interrupted writer\n", v->store_path, path,
	       cairn_format_bytes(size, shown, sizeof(shown)));
}

static void verify_leftovers(struct verify *v)
{
	char size[32];

	if (v->quiet)
		return;
	int64_t found = cairn_snapshot_leftovers(v->store, report_leftover, v);
	if (found == -EBUSY)
		printf("%s: note: a writer is at work, its temp files were not looked at\n",
		       v->store_path);
	else if (found < 0)
		printf("%s: note: leftovers not looked for: %s\n", v->store_path,
		       cairn_store_error(v->store));
	else if (found > 0)
		printf("%s: %lld leftover file%s (%s) of interrupted writers, not damage: the "
		       "next add, rm or gc removes them\n",
		       v->store_path, (long long)found, found == 1 ? "" : "s",
		       cairn_format_bytes(v->leftover_bytes, size, sizeof(size)));
}

/* ---- snapshot indexes ---- */

/* Opens and checks one snapshot's index; leaves it open in v->idx, or
 * NULL when it would not open (a problem, reported). Returns -ENOMEM or 0. */
static int check_index(struct verify *v, const char *name)
{
	v->idx = cairn_index_new();
	if (!v->idx)
		return -ENOMEM;
	/* Unchecked: cairn_index_check reports each damaged section and then
	 * what the accessors find, where an open would stop at the first. */
	int r = cairn_index_open_flags(v->idx, v->store, name, CAIRN_INDEX_OPEN_UNCHECKED);
	if (r == 0) {
		int64_t found = cairn_index_check(v->idx, true, report_problem, v);
		if (found >= 0)
			return 0;
		r = (int)found;
		if (r == -ENOMEM)
			return r;
		report(v, "snapshot %s: cannot check it: %s", name, strerror(-r));
	} else if (r == -ENOMEM) {
		return r;
	} else {
		report_problem(v, cairn_index_error(v->idx));
	}
	cairn_index_free(v->idx);
	v->idx = NULL;
	return 0;
}

/* ---- reading the chunks of a snapshot ---- */

static int path_push(struct verify *v, const char *name, size_t len)
{
	size_t need = v->path_len + len + 2;

	if (need > v->path_cap) {
		size_t cap = need * 2;
		char *path = realloc(v->path, cap);
		if (!path)
			return -ENOMEM;
		v->path = path;
		v->path_cap = cap;
	}
	if (v->path_len)
		v->path[v->path_len++] = '/';
	memcpy(v->path + v->path_len, name, len);
	v->path_len += len;
	v->path[v->path_len] = '\0';
	return 0;
}

static void path_pop(struct verify *v, size_t len)
{
	v->path_len = len;
	if (v->path)
		v->path[len] = '\0';
}

static const char *path_shown(const struct verify *v)
{
	return v->path_len ? v->path : "/";
}

static void entry_problem(struct verify *v, int r)
{
	report(v, "snapshot %s: %s: %s", cairn_index_name(v->idx), path_shown(v),
	       r == -EBADMSG ? "its index record is damaged" : strerror(-r));
}

/* The unpacker's message names the chunk, its pack and offset. */
static void read_chunk(struct verify *v, const struct cairn_index_run *run)
{
	int64_t n = cairn_unpacker_get(v->unpacker, &run->chunk_id, v->buf, v->buf_size);
	if (n >= 0) {
		v->chunk_bytes += (uint64_t)n;
		return;
	}
	if (n == -ENOENT)
		return; /* the index check reported it */
	report(v, "snapshot %s: %s, bytes %llu-%llu: %s", cairn_index_name(v->idx), path_shown(v),
	       (unsigned long long)run->offset, (unsigned long long)(run->offset + run->size - 1),
	       cairn_unpacker_error(v->unpacker));
}

/* Reads each chunk of file ino that no earlier file named. */
static int read_file(struct verify *v, uint64_t ino)
{
	struct cairn_index_file file;
	struct cairn_index_run run;

	int r = cairn_index_file(v->idx, ino, &file);
	for (uint32_t i = 0; r == 0 && i < file.run_count; i++) {
		r = cairn_index_run(v->idx, ino, i, &run);
		if (r == 0 && !run.hole && (r = cairn_chunk_set_add(v->seen, &run.chunk_id)) == 1)
			read_chunk(v, &run);
		r = r > 0 ? 0 : r;
	}
	if (r < 0 && r != -ENOMEM)
		entry_problem(v, r);
	return r == -ENOMEM ? r : 0;
}

/* Walks directory dir (depth deep) and reads its files. Returns -ENOMEM or 0. */
static int walk_dir(struct verify *v, uint64_t dir, unsigned depth)
{
	struct cairn_index_dirent d;

	if (depth > WALK_DEPTH_MAX) {
		report(v, "snapshot %s: %s: more than %u directories deep, not read",
		       cairn_index_name(v->idx), path_shown(v), WALK_DEPTH_MAX);
		return 0;
	}
	for (uint64_t pos = 0;; pos++) {
		int r = cairn_index_readdir(v->idx, dir, pos, &d);
		if (r <= 0) {
			if (r < 0)
				entry_problem(v, r);
			return 0;
		}
		size_t len = v->path_len;
		r = path_push(v, d.name, d.name_len);
		if (r == 0 && d.type == DT_REG)
			r = read_file(v, d.ino);
		else if (r == 0 && d.type == DT_DIR)
			r = walk_dir(v, d.ino, depth + 1);
		path_pop(v, len);
		if (r < 0)
			return r;
	}
}

static int readers_start(struct verify *v)
{
	v->buf_size = cairn_store_params(v->store)->chunk_max;
	v->buf = malloc(v->buf_size);
	if (!v->buf || cairn_unpacker_new(v->store, &v->unpacker) < 0 ||
	    cairn_chunk_set_new(&v->seen) < 0)
		return -ENOMEM;
	return 0;
}

static int verify_named(struct verify *v, char **names, int count)
{
	char what[256], size[32];
	int64_t before = v->problems;

	int r = readers_start(v);
	for (int i = 0; r == 0 && i < count; i++) {
		r = check_index(v, names[i]);
		if (r == 0 && v->idx)
			r = walk_dir(v, CAIRN_INDEX_ROOT, 0);
		cairn_index_free(v->idx);
		v->idx = NULL;
	}
	if (r < 0) {
		cli_error("out of memory");
		return EXIT_ERROR;
	}
	cairn_format_bytes(v->chunk_bytes, size, sizeof(size));
	snprintf(what, sizeof(what), "%d snapshot%s checked, %llu chunks (%s) read and verified",
		 count, count == 1 ? "" : "s", (unsigned long long)cairn_chunk_set_count(v->seen),
		 size);
	return summary(v, before, what) ? EXIT_ERROR : EXIT_OK;
}

/* ---- every snapshot's index ---- */

static int verify_indexes(struct verify *v)
{
	char **names;
	size_t count;
	char what[64];
	int64_t before = v->problems;

	int r = cairn_snapshot_list(v->store, &names, &count);
	if (r < 0) {
		cli_error("%s/snapshots: %s", v->store_path, strerror(-r));
		return EXIT_ERROR;
	}
	for (size_t i = 0; r == 0 && i < count; i++) {
		r = check_index(v, names[i]);
		cairn_index_free(v->idx);
		v->idx = NULL;
	}
	cairn_snapshot_names_free(names, count);
	if (r < 0) {
		cli_error("out of memory");
		return EXIT_ERROR;
	}
	snprintf(what, sizeof(what), "%zu snapshot%s checked", count, count == 1 ? "" : "s");
	return summary(v, before, what) ? EXIT_ERROR : EXIT_OK;
}

static void verify_release(struct verify *v)
{
	cairn_chunk_set_free(v->seen);
	cairn_unpacker_free(v->unpacker);
	cairn_store_free(v->store);
	free(v->buf);
	free(v->path);
}

int cmd_verify(struct cli *cli, int argc, char **argv)
{
	struct verify v = {0};
	int status;

	int r = verify_parse(cli, argc, argv, &v);
	if (r)
		return r < 0 ? EXIT_OK : r;
	v.store = cli_open_store(cli);
	if (!v.store)
		return EXIT_ERROR;
	v.store_path = cairn_store_path(v.store);
	if (optind < argc) {
		status = verify_named(&v, argv + optind, argc - optind);
	} else {
		status = verify_store(&v);
		if (verify_indexes(&v) != EXIT_OK)
			status = EXIT_ERROR;
		verify_leftovers(&v);
	}
	verify_release(&v);
	return status;
}
