/* cli.h: what the subcommands of the cairn binary share: exit codes, store
 * resolution, option helpers and the one place that prints errors.
 */
#ifndef CAIRN_CLI_H
#define CAIRN_CLI_H

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "index.h"
#include "store.h"
#include "util.h"

enum {
	EXIT_OK = 0,
	EXIT_ERROR = 1, /* the command failed, or found damage */
	EXIT_USAGE = 2, /* bad command line */
};

/* Options every command takes, parsed before the command's own. */
struct cli {
	const char *store_path; /* -s/--store, else NULL */
	const char *command;
};

typedef int (*cli_command_fn)(struct cli *cli, int argc, char **argv);

int cmd_init(struct cli *cli, int argc, char **argv);
int cmd_verify(struct cli *cli, int argc, char **argv);
int cmd_add(struct cli *cli, int argc, char **argv);
int cmd_ls(struct cli *cli, int argc, char **argv);
int cmd_cat(struct cli *cli, int argc, char **argv);
int cmd_extract(struct cli *cli, int argc, char **argv);
int cmd_info(struct cli *cli, int argc, char **argv);
int cmd_rm(struct cli *cli, int argc, char **argv);
int cmd_gc(struct cli *cli, int argc, char **argv);
int cmd_copy(struct cli *cli, int argc, char **argv);
int cmd_mount(struct cli *cli, int argc, char **argv);
int cmd_umount(struct cli *cli, int argc, char **argv);
/* mount.cairn SOURCE DIR -o OPTS, as mount(8) runs it. */
int cmd_mount_helper(int argc, char **argv);

/* Prints "cairn: MESSAGE" to stderr. */
void cli_error(const char *fmt, ...) _printf_(1, 2);
/* Prints "cairn COMMAND: MESSAGE" and a hint to stderr; returns EXIT_USAGE. */
int cli_usage_error(const struct cli *cli, const char *fmt, ...) _printf_(2, 3);

/* The store directory: -s, else $CAIRN_STORE, else $XDG_DATA_HOME/cairn,
 * else ~/.local/share/cairn. A store given as a URL (SCHEME://...) is
 * refused: cairn serves local directories only. Returns a malloc'd path or
 * NULL (message printed). */
char *cli_store_path(const struct cli *cli);
/* Whether text looks like a URL: an RFC 3986 scheme, then "://". */
bool cli_is_url(const char *text);
/* Opens the store for reading; prints the error and returns NULL on failure. */
struct cairn_store *cli_open_store(const struct cli *cli);
/* The same, but a store that does not exist yet is created (saying so on
 * stderr), as `cairn add` does. */
struct cairn_store *cli_open_or_create_store(const struct cli *cli);
/* The same, but a store created is made with like's parameters and hash
 * key (`cairn copy` into a new store). */
struct cairn_store *cli_open_or_create_store_like(const struct cli *cli,
						  const struct cairn_store *like);

/* Sizes ("64K", "1MiB", "4096") are parsed by cairn_parse_size (util.h),
 * the same parser mount/ uses for -o cache_size and the like. */
/* Parses a decimal integer in [min, max]. Returns 0 or -EINVAL. */
int cli_parse_int(const char *text, long min, long max, long *ret);

/* Takes the store's writer lock: opens the writer (waiting for the lock,
 * and saying so, while another process holds it) with threads compression
 * threads (0: one per core), and removes snapshot temp files of writers
 * that died (lock.c). When ret_leftovers is not NULL, writes there what
 * was removed of writers that died, in the store and its snapshots.
 * Prints the error; returns 0 or -errno. */
int cli_writer_lock(struct cairn_store *store, unsigned threads, struct cairn_writer **ret,
		    struct cairn_leftovers *ret_leftovers);

/* ---- adding archives (add.c) ---- */

/* What cli_add did with an archive, for `cairn mount ARCHIVE`, which says
 * it in one line of its own. */
struct cli_add_result {
	bool added;       /* false: the snapshot held these archive bytes already */
	uint64_t entries; /* the new snapshot's entries (when added) */
};

/* What `cairn add` was asked for; `cairn mount ARCHIVE` asks for the
 * defaults, a name and maybe --replace. */
struct cli_add_options {
	const char *name;     /* the snapshot's name; NULL: from the archive's */
	bool replace;         /* replace a snapshot of that name */
	bool quiet;           /* no progress line and no summary */
	uint64_t max_entries; /* 0: the default */
	uint64_t max_ratio;   /* 0: the default; CAIRN_IMPORT_NO_RATIO: none */
	bool partial;         /* a damaged archive: keep what was read before */
	/* When set (one archive): filled in with what was done, and neither
	 * the summary nor the "unchanged" line is printed. */
	struct cli_add_result *result;
	/* how the input is read (add_input.c; add and mount take them) */
	unsigned strip_components;     /* tar's --strip-components */
	const char *charset;           /* --encoding: names' legacy charset */
	const char *password_files[8]; /* --password-file, read at the add */
	size_t password_file_count;
	/* archives inside archives: how many levels become directories */
	unsigned recursion_depth;
};

/* ---- the options add and mount share (add_input.c) ---- */

enum {
	CLI_OPT_STRIP_COMPONENTS = 0x1000,
	CLI_OPT_ENCODING,
	CLI_OPT_PASSWORD_FILE,
};
#define CLI_ADD_INPUT_OPTIONS                                                                      \
	{"strip-components", required_argument, NULL, CLI_OPT_STRIP_COMPONENTS},                   \
		{"encoding", required_argument, NULL, CLI_OPT_ENCODING},                           \
	{                                                                                          \
		"password-file", required_argument, NULL, CLI_OPT_PASSWORD_FILE                    \
	}
/* Handles getopt_long's value c when it is one of CLI_ADD_INPUT_OPTIONS:
 * returns 0 (taken), -1 (not one of them), or EXIT_USAGE (message
 * printed). */
int cli_add_input_option(struct cli *cli, int c, const char *arg, struct cli_add_options *add);
/* The passphrases of an add: each --password-file's first line, and a
 * prompt on the terminal when none opens an entry. */
struct cli_passwords {
	char *lines[8];
	size_t count;
	bool prompt;     /* stdin or stderr is a terminal */
	char typed[512]; /* what the prompt read */
};
/* Reads each --password-file; prints the error and returns EXIT_ERROR when
 * one cannot be read. */
int cli_passwords_load(struct cli_passwords *pw, const struct cli_add_options *add);
/* Wipes and frees what load read. */
void cli_passwords_release(struct cli_passwords *pw);
/* For cairn_import_set_passphrase (userdata: the cli_passwords): asks on
 * /dev/tty with echo off. NULL when there is no terminal or nothing was
 * typed. */
const char *cli_passwords_prompt(void *userdata, const char *archive, const char *entry);
/* Takes mount's -o encoding=CHARSET out of opts (a comma-separated list,
 * edited in place), copying the last one's CHARSET to charset. */
void cli_take_encoding_option(char *opts, char *charset, size_t size);
/* A split archive's parts (add_split.c). */
struct cli_split {
	char base[4096];   /* names the archive: NAME for NAME.001, NAME.rar for RAR volumes */
	char prefix[4096]; /* the parts' names without what numbers them */
	int naming;        /* NAME.001, NAME.part1.rar or NAME.rar, NAME.r00 (add_split.c) */
	int width;         /* of the parts' numbers */
	int fds[512];
	size_t count;
	uint64_t size; /* of all the parts */
};
/* Whether path is the first part of a split archive (NAME.001, 3 to 6
 * digits) or of a multi-volume RAR archive (NAME.part1.rar, part01, ...;
 * NAME.rar whose archive header says it is a volume, then NAME.r00,
 * NAME.r01, ...): 1 with every part opened (up to the first that does not
 * exist), 0 when it is not one, -1 when a part cannot be opened, is not a
 * regular file, or is missing while a later one exists, or RAR 4 volumes
 * fail cairn_rar_volumes_check (the error printed, nothing left open). */
int cli_split_open(const char *path, struct cli_split *split);
/* Closes the parts. */
void cli_split_close(struct cli_split *split);
/* --encoding: makes sure the names libarchive converts land in UTF-8 (the
 * locale's charset; C.UTF-8 when the locale's is not UTF-8). */
void cli_charset_locale(void);

/* Adds each archive ("-": stdin) to the store as a snapshot committed on its
 * own, creating the store when it does not exist. A failed archive commits
 * nothing (the writer rolls it back) and the next ones are still added.
 * Prints progress (on a terminal), summaries and errors; returns EXIT_OK
 * when every archive was added (or already there), else EXIT_ERROR. */
int cli_add(const struct cli *cli, const struct cli_add_options *options,
	    const char *const *archives, int count);
/* With CAIRN_THREAD_CPU set, says on stderr how the process's CPU time split
 * between its threads by role (threadcpu.c). */
void cli_thread_cpu_report(void);

/* ---- one-step mounts (onestep.c) ---- */

/* A directory that `cairn mount` made for itself. */
struct cli_made_dir {
	int parent_fd; /* O_PATH of the directory it is in; -1: none made */
	char name[256];
	dev_t dev; /* what it was when made: only that is removed */
	ino_t ino;
};

/* The name of the mount point made for archive: its file name without
 * archive and compression suffixes, as the snapshot's default name strips
 * them ("v1.2.tar.xz" -> "v1.2"). Prints the error and returns EXIT_ERROR
 * when nothing is left or it starts with '.' (".tar.gz"); else EXIT_OK. */
int cli_mountpoint_stem(const char *archive, char *buf, size_t size);
/* Makes the directory stem in dir, or "stem (1)", "stem (2)"... where the
 * name is taken (by anything). Writes its absolute path to path and the
 * path as the user would write it (dir as given, then the name) to shown.
 * Prints the error; returns EXIT_OK or EXIT_ERROR. */
int cli_mountpoint_make(const char *dir, const char *stem, struct cli_made_dir *ret,
			char path[PATH_MAX], char shown[PATH_MAX]);
/* Removes the directory made, only while it is still that same directory
 * and empty, and closes d's fd. Returns 0, or -errno (-ESTALE: something
 * else is there now); prints nothing. */
int cli_made_dir_remove(struct cli_made_dir *d);

/* A --temp run's directory: $TMPDIR (else /var/tmp)/cairn-temp-XXXXXX,
 * holding the throwaway store and blob cache, and a file "lock" that the
 * process serving the mount holds a flock on for its life. */
struct cli_temp {
	char path[PATH_MAX - 64]; /* "": none; room left for what is in it */
	int lock_fd;
};
/* First removes every cairn-temp-* of this user whose lock is free (its
 * process died), then makes a fresh one and locks it. Prints the error;
 * returns EXIT_OK or EXIT_ERROR. */
int cli_temp_make(struct cli_temp *t);
/* Removes the directory and everything in it, and drops the lock. */
void cli_temp_remove(struct cli_temp *t);

/* Where a mount's SOURCE[:PATH] splits: nowhere when the whole argument
 * names a snapshot of the store or a file (an archive named a:b.tar is
 * that archive), else at the first ':' whose left part names one
 * (a:b.tar:dir), else at the first ':' (snapshot names have none).
 * Returns the ':' or NULL; prefix gets the left part. */
const char *cli_source_split(const char *store_path, const char *arg, char *prefix, size_t size);

/* ---- JSON and ratios (json.c) ---- */

/* Writes s to stdout as a JSON string. Each byte that is not part of
 * well-formed UTF-8 becomes the lone surrogate \udcXX (XX: the byte, 80 to
 * ff), as Python's surrogateescape decodes it: os.fsencode() of the decoded
 * string gives back the bytes (docs/cairn.1, "JSON"). */
void cli_json_string(const char *s);
/* Writes s to f so that no byte of it can drive a terminal: control bytes,
 * C1 controls and bytes that are not well-formed UTF-8 become \ooo (octal,
 * as C writes them: ESC is \033), a backslash \\; printable ASCII and
 * well-formed UTF-8 are kept. For names from archives and snapshots, and
 * every message that may hold one (docs/cairn.1, "NAMES ON A TERMINAL"). */
void cli_put_escaped(FILE *f, const char *s);
/* Writes a / b to stdout as a JSON number: 1 when both are 0, null when
 * only b is (infinite). */
void cli_json_ratio(uint64_t a, uint64_t b);
/* Formats a / b as "3.20x" into buf; returns buf. A ratio of nothing is
 * "1.00x" (an empty archive) and of something to nothing "inf" (all of it
 * deduplicated). */
const char *cli_ratio(uint64_t a, uint64_t b, char *buf, size_t size);

/* A SNAPSHOT[:PATH] argument, opened (object.c). */
struct cli_object {
	struct cairn_store *store;
	struct cairn_index *idx;
	char *snapshot;   /* the name */
	const char *path; /* inside the snapshot; "" for its root */
	uint64_t ino;     /* what path names */
};
/* Opens the store and the snapshot and resolves the path (following
 * symlinks when follow). Prints the error; returns EXIT_OK or EXIT_ERROR. */
int cli_object_open(const struct cli *cli, const char *arg, bool follow, struct cli_object *ret);
void cli_object_release(struct cli_object *obj);
/* Prints the error r (from an index call on obj); returns EXIT_ERROR. */
int cli_object_error(const struct cli_object *obj, int r);

/* ---- options every command takes ----
 *
 * Each command's getopt_long loop starts its option table with
 * CLI_COMMON_OPTIONS and its short options with CLI_COMMON_SHORT, handles
 * its own options, and hands every other value to cli_common_option from
 * its default: case. */

#define CLI_STORE_OPTION                                                                           \
	{                                                                                          \
		"store", required_argument, NULL, 's'                                              \
	}
#define CLI_HELP_OPTION                                                                            \
	{                                                                                          \
		"help", no_argument, NULL, 'h'                                                     \
	}
#define CLI_COMMON_OPTIONS CLI_STORE_OPTION, CLI_HELP_OPTION
#define CLI_COMMON_SHORT   "s:h"

/* Handles the getopt_long value c that is not one of the command's own
 * options: -s sets cli->store_path and returns 0; -h calls help and returns
 * -1 (the command then exits 0); anything else is a bad option, which
 * getopt has reported ("cairn COMMAND: unrecognized option ..."): prints
 * the "Try 'cairn COMMAND --help'." hint and returns EXIT_USAGE. */
int cli_common_option(struct cli *cli, int c, void (*help)(void));

/* Parses the options of a command that takes only -s, -h and -q: calls help
 * and returns -1 for -h, returns EXIT_USAGE (message printed) for a bad
 * option, else 0 with optind at the first argument. */
int cli_parse_quiet(struct cli *cli, int argc, char **argv, void (*help)(void), bool *quiet);

#endif
