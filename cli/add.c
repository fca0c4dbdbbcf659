/* add.c: adding archives to a store, for `cairn add` and for `cairn mount
 * ARCHIVE`, which adds its archive before mounting it: each archive becomes
 * one snapshot, committed on its own, so a failed archive commits nothing
 * (the writer rolls back what it put) and the others still land. Creates
 * the store when it does not exist yet. Adding the same archive bytes again
 * under the same name is a no-op that says so.
 */
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "cli.h"

struct add {
	const struct cli_add_options *o;
	bool progress; /* a progress line: stderr is a terminal, not quiet */
	struct cairn_store *store;
	struct cairn_writer *writer;
	const char *current; /* snapshot name being added */
	struct cli_passwords passwords;
	struct cli_split split; /* the archive's parts, when it is split */
	uint64_t start_ns, shown_ns;
	bool line_shown;
};

/* ---- output ---- */

static void clear_line(struct add *add)
{
	if (add->line_shown)
		fputs("\r\033[K", stderr);
	add->line_shown = false;
}

static void on_warn(void *userdata, const char *warning)
{
	struct add *add = userdata;

	clear_line(add);
	fputs("cairn: warning: ", stderr);
	cli_put_escaped(stderr, warning);
	fputc('\n', stderr);
}

static void format_eta(char *buf, size_t size, double seconds)
{
	if (seconds < 0 || seconds > 360000)
		snprintf(buf, size, "?");
	else
		snprintf(buf, size, "%d:%02d:%02d", (int)seconds / 3600, (int)seconds / 60 % 60,
			 (int)seconds % 60);
}

/* Sizes are shown in units of 1024 (cairn_format_bytes), so rates are too. */
#define MIB 1048576.0

static void on_progress(void *userdata, const struct cairn_import_progress *p)
{
	struct add *add = userdata;
	uint64_t now = cairn_now_ns();
	char done[32], total[32], eta[32];

	if (now - add->shown_ns < 200000000ull)
		return;
	add->shown_ns = now;
	double seconds = (double)(now - add->start_ns) / 1e9;
	double rate = seconds > 0 ? (double)p->archive_bytes / seconds : 0;
	double dedup = p->content_bytes
			       ? 100.0 * (1.0 - (double)p->new_bytes / (double)p->content_bytes)
			       : 0;
	cairn_format_bytes(p->archive_bytes, done, sizeof(done));
	clear_line(add);
	if (p->archive_size) {
		cairn_format_bytes(p->archive_size, total, sizeof(total));
		format_eta(eta, sizeof(eta),
			   rate > 0 ? (double)(p->archive_size - p->archive_bytes) / rate : -1);
		fprintf(stderr, "%s: %s of %s, %.1f MiB/s, dedup %.0f%%, ETA %s", add->current,
			done, total, rate / MIB, dedup, eta);
	} else {
		fprintf(stderr, "%s: %s read, %.1f MiB/s, dedup %.0f%%", add->current, done,
			rate / MIB, dedup);
	}
	add->line_shown = true;
}

static void print_summary(struct add *add, const struct cairn_import_stats *s)
{
	char in[32], stored[32], skipped[64] = "", dedup[32], compression[32];
	double seconds = (double)(cairn_now_ns() - add->start_ns) / 1e9;

	if (add->o->result) {
		*add->o->result =
			(struct cli_add_result){.added = true, .entries = s->snapshot_entries};
		return;
	}
	if (add->o->quiet)
		return;
	cairn_format_bytes(s->content_bytes, in, sizeof(in));
	cairn_format_bytes(s->stored_bytes, stored, sizeof(stored));
	if (s->skipped)
		snprintf(skipped, sizeof(skipped), ", %llu skipped",
			 (unsigned long long)s->skipped);
	/* The entries as ls and info count them, with what the archive held. */
	printf("%s: %s%llu entries (%llu archive entries read%s), %s in, %s new stored, dedup %s, "
	       "compression %s, %.2f s\n",
	       add->current, s->partial ? "PARTIAL (the archive is damaged), " : "",
	       (unsigned long long)s->snapshot_entries, (unsigned long long)s->entries, skipped, in,
	       stored, cli_ratio(s->content_bytes, s->new_bytes, dedup, sizeof(dedup)),
	       cli_ratio(s->new_bytes, s->stored_bytes, compression, sizeof(compression)), seconds);
	fflush(stdout);
}

/* ---- one archive ---- */

static int open_archive(const char *path, struct stat *st)
{
	int fd = strcmp(path, "-") == 0 ? STDIN_FILENO : open(path, O_RDONLY | O_CLOEXEC);

	if (fd < 0) {
		cli_error("%s: %s", path, strerror(errno));
		return -1;
	}
	if (fstat(fd, st) < 0 || S_ISDIR(st->st_mode)) {
		cli_error("%s: %s", path,
			  S_ISDIR(st->st_mode) ? "is a directory" : strerror(errno));
		if (fd != STDIN_FILENO)
			close(fd);
		return -1;
	}
	return fd;
}

enum existing { EXISTING_NONE, EXISTING_SAME, EXISTING_OTHER, EXISTING_UNKNOWN };

/* Whether the archive in fd has the bytes info's snapshot was made from;
 * only known before reading it for a regular file. */
static int compare_source(struct add *add, int fd, const struct stat *st,
			  const struct cairn_index_info *info)
{
	struct cairn_id id;

	if (!S_ISREG(st->st_mode))
		return EXISTING_UNKNOWN;
	if (info->source_size != (uint64_t)st->st_size)
		return EXISTING_OTHER;
	int r = add->split.count
			? cairn_archive_id_parts(add->store, add->split.fds, add->split.count, &id)
			: cairn_archive_id(add->store, fd, &id);
	if (r < 0)
		return EXISTING_UNKNOWN;
	return cairn_id_compare(&id, &info->source_id) == 0 ? EXISTING_SAME : EXISTING_OTHER;
}

/* Whether snapshot name exists, and if so whether it holds fd's bytes. */
static int check_existing(struct add *add, const char *name, int fd, const struct stat *st)
{
	struct cairn_index_info info;

	int r = cairn_snapshot_exists(add->store, name);
	if (r <= 0)
		return r < 0 ? r : EXISTING_NONE;
	_cleanup_(cairn_index_freep) struct cairn_index *idx = cairn_index_new();
	if (!idx)
		return -ENOMEM;
	if (cairn_index_open(idx, add->store, name) < 0)
		return EXISTING_OTHER; /* a damaged snapshot: only --replace helps */
	cairn_index_info(idx, &info);
	return compare_source(add, fd, st, &info);
}

static int report_existing(struct add *add, const char *name, int existing)
{
	if (existing == EXISTING_SAME) {
		if (add->o->result)
			*add->o->result = (struct cli_add_result){.added = false};
		else if (!add->o->quiet)
			printf("%s: unchanged (the snapshot holds these same archive bytes), "
			       "nothing to do\n",
			       name);
		return EXIT_OK;
	}
	/* add and mount both take --replace and --name. */
	cli_error("a snapshot named %s already exists in %s, from other archive bytes; use "
		  "--replace to replace it or --name to choose another name",
		  name, cairn_store_path(add->store));
	return EXIT_ERROR;
}

/* The passphrases to try, the k-th rotation of those given (and the one
 * typed at the prompt, once there is one). */
static size_t passphrase_order(const struct add *add, size_t k, const char **order)
{
	const char *all[ARRAY_SIZE(add->passwords.lines) + 1];
	size_t n = 0;

	for (size_t i = 0; i < add->passwords.count; i++)
		all[n++] = add->passwords.lines[i];
	if (add->passwords.typed[0])
		all[n++] = add->passwords.typed;
	for (size_t i = 0; i < n; i++)
		order[i] = all[(i + k) % n];
	return n;
}

/* Whether the import that failed (or kept a partial snapshot) is run again
 * with the passphrases in another order: an encrypted entry's data did not
 * decode, which a wrong passphrase that passed zip's one-byte check does,
 * another order is left to try, and the input can be read again from its
 * start. */
static bool retry_passphrases(struct add *add, const struct cairn_import *imp, int r,
			      size_t attempt, size_t count, const char *path)
{
	struct cairn_import_stats stats;

	if (!cairn_import_encrypted_data_failed(imp) || attempt + 1 >= count ||
	    strcmp(path, "-") == 0)
		return false;
	if (r == 0) {
		cairn_import_stats(imp, &stats);
		if (!stats.partial)
			return false;
	}
	if (cairn_writer_rollback(add->writer) < 0)
		return false;
	char line[1200];
	snprintf(line, sizeof(line),
		 "%s; reading the archive again with the passphrases in another order "
		 "(zip's traditional encryption lets 1 wrong passphrase in 256 pass its check)",
		 r < 0 ? cairn_import_error(imp) : "dropped the partial snapshot");
	on_warn(add, line);
	return true;
}

static int import_and_commit(struct add *add, struct cairn_import *imp, int existing)
{
	struct cairn_import_stats stats;
	struct cairn_id id;
	struct cairn_index_info info = {0};

	if (existing == EXISTING_UNKNOWN) {
		/* A stream: only now is its id known. */
		_cleanup_(cairn_index_freep) struct cairn_index *idx = cairn_index_new();
		if (idx && cairn_index_open(idx, add->store, add->current) == 0)
			cairn_index_info(idx, &info);
		cairn_import_source_id(imp, &id);
		bool same = idx && info.source_name && cairn_id_compare(&id, &info.source_id) == 0;
		if (same || !add->o->replace)
			return report_existing(add, add->current,
					       same ? EXISTING_SAME : EXISTING_OTHER);
	}
	int r = cairn_import_commit(imp, add->current, add->o->replace ? CAIRN_IMPORT_REPLACE : 0);
	if (r < 0) {
		cli_error("%s", cairn_import_error(imp));
		return EXIT_ERROR;
	}
	if (cairn_writer_publish(add->writer) < 0) {
		cli_error("%s", cairn_writer_error(add->writer));
		return EXIT_ERROR;
	}
	cairn_import_stats(imp, &stats);
	print_summary(add, &stats);
	return EXIT_OK;
}

static int add_import(struct add *add, int fd, const char *path, int existing)
{
	const char *order[ARRAY_SIZE(add->passwords.lines) + 1];
	struct cairn_import_options options = {.max_entries = add->o->max_entries,
					       .max_ratio = add->o->max_ratio,
					       .partial = add->o->partial,
					       .strip_components = add->o->strip_components,
					       .charset = add->o->charset,
					       .passphrases = order,
					       .recursion_depth = add->o->recursion_depth};

	for (size_t attempt = 0;; attempt++) {
		_cleanup_(cairn_import_freep) struct cairn_import *imp = NULL;

		options.passphrase_count = passphrase_order(add, attempt, order);
		if (cairn_import_new(add->store, add->writer, &options, &imp) < 0) {
			cli_error("out of memory");
			return EXIT_ERROR;
		}
		cairn_import_set_warn(imp, on_warn, add);
		cairn_import_set_passphrase(imp, cli_passwords_prompt, &add->passwords);
		if (add->split.count &&
		    cairn_import_set_parts(imp, add->split.fds, add->split.count) < 0) {
			cli_error("%s", cairn_import_error(imp));
			return EXIT_ERROR;
		}
		if (add->progress)
			cairn_import_set_progress(imp, on_progress, add);
		add->start_ns = add->shown_ns = cairn_now_ns();
		int r = cairn_import_archive(imp, fd, strcmp(path, "-") == 0 ? "stdin" : path);
		clear_line(add);
		/* The prompt's answer, if one was typed, is in the next order. */
		size_t count = passphrase_order(add, attempt, order);
		if (retry_passphrases(add, imp, r, attempt, count, path))
			continue;
		if (r < 0) {
			bool stream = count > 1 && strcmp(path, "-") == 0 &&
				      cairn_import_encrypted_data_failed(imp);
			cli_error(
				"%s%s", cairn_import_error(imp),
				stream ? " (read from a file, not stdin, the archive could be read "
					 "again with the passphrases in another order)"
				       : "");
			return EXIT_ERROR;
		}
		return import_and_commit(add, imp, existing);
	}
}

/* label names the archive (a split one's base name), path is the file to
 * open (its first part). */
static int add_source(struct add *add, const char *label, const char *path)
{
	char name[CAIRN_SNAPSHOT_NAME_MAX + 1], why[300];
	struct stat st;

	if (add->o->name) {
		if (cairn_snapshot_name_check(add->o->name, why, sizeof(why)) < 0) {
			cli_error("%s", why);
			return EXIT_ERROR;
		}
		snprintf(name, sizeof(name), "%s", add->o->name);
	} else if (strcmp(path, "-") == 0) {
		cli_error("reading an archive from stdin needs --name");
		return EXIT_ERROR;
	} else if (cairn_snapshot_default_name(label, name, sizeof(name), why, sizeof(why)) < 0) {
		cli_error("%s: %s; choose one with --name", label, why[0] ? why : "name too long");
		return EXIT_ERROR;
	}
	add->current = name;
	int fd = open_archive(path, &st);
	if (fd < 0)
		return EXIT_ERROR;
	if (add->split.count)
		st.st_size = (off_t)add->split.size;
	int existing = check_existing(add, name, fd, &st);
	int status;
	if (existing < 0) {
		cli_error("%s: %s", name, strerror(-existing));
		status = EXIT_ERROR;
	} else if (existing == EXISTING_SAME || (existing == EXISTING_OTHER && !add->o->replace)) {
		status = report_existing(add, name, existing);
	} else {
		status = add_import(add, fd, label, existing);
	}
	if (fd != STDIN_FILENO)
		close(fd);
	return status;
}

/* A split archive (NAME.001) is added as NAME, from all its parts. */
static int add_one(struct add *add, const char *path)
{
	int split = cli_split_open(path, &add->split);

	if (split < 0)
		return EXIT_ERROR;
	int status = add_source(add, split ? add->split.base : path, path);
	cli_split_close(&add->split);
	return status;
}

int cli_add(const struct cli *cli, const struct cli_add_options *options,
	    const char *const *archives, int count)
{
	struct add add = {.o = options, .progress = isatty(STDERR_FILENO) && !options->quiet};
	int status = EXIT_OK;

	_cleanup_(cairn_store_freep) struct cairn_store *store = cli_open_or_create_store(cli);
	if (!store)
		return EXIT_ERROR;
	/* Declared after the store: freed before it, as a writer must be. */
	_cleanup_(cairn_writer_freep) struct cairn_writer *writer = NULL;
	if (cli_writer_lock(store, 0, &writer, NULL) < 0)
		return EXIT_ERROR;
	add.store = store;
	add.writer = writer;
	if (options->charset)
		cli_charset_locale();
	if (cli_passwords_load(&add.passwords, options) != EXIT_OK)
		return EXIT_ERROR;
	for (int i = 0; i < count; i++) {
		if (add_one(&add, archives[i]) == EXIT_OK)
			continue;
		status = EXIT_ERROR;
		/* Drop whatever the failed archive left uncommitted; the lock
		 * stays, for the next archive. */
		int r = cairn_writer_rollback(writer);
		if (r < 0) {
			cli_error("%s: dropping what %s left: %s", cairn_store_path(store),
				  archives[i], strerror(-r));
			break;
		}
	}
	cli_passwords_release(&add.passwords);
	cli_thread_cpu_report(); /* CAIRN_THREAD_CPU: before the writer's threads end */
	return status;
}
