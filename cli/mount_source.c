/* mount_source.c: what each SOURCE of `cairn mount` is and what the run
 * makes for itself: a snapshot, or an archive added first (with add's input
 * options); SOURCE:PATH and several sources; the mount point made next to
 * an archive and removed at unmount; the --temp store; and the line mount
 * says about all of it.
 */
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "mount_cmd.h"

/* Whether the store at path has a snapshot name: 1, else 0 (also when
 * there is no store there yet). */
static int snapshot_exists(const char *path, const char *name)
{
	_cleanup_(cairn_store_freep) struct cairn_store *store = cairn_store_new();

	/* The daemon opens the snapshot right after: on a remote store its
	 * file comes with the tables. */
	if (!store || cairn_store_open_for(store, path, name) < 0)
		return 0;
	return cairn_snapshot_exists(store, name);
}

/* The archive's snapshot name: --name, else its file name without
 * suffixes; a --temp store's one snapshot is named by nobody, so any
 * file name will do there. */
static int archive_snapshot_name(struct mount_cmd *cmd)
{
	char why[300] = "";

	if (cmd->name) {
		snprintf(cmd->snapshot, sizeof(cmd->snapshot), "%s", cmd->name);
		return 0;
	}
	if (cairn_snapshot_default_name(cmd->source, cmd->snapshot, sizeof(cmd->snapshot), why,
					sizeof(why)) == 0)
		return 0;
	if (cmd->temp) {
		snprintf(cmd->snapshot, sizeof(cmd->snapshot), "archive");
		return 0;
	}
	fputs("cairn: ", stderr);
	cli_put_escaped(stderr, cmd->source);
	fputs(": ", stderr);
	cli_put_escaped(stderr, why[0] ? why : "name too long");
	fputs("; choose one with --name\n", stderr);
	return EXIT_ERROR;
}

static int add_archive(struct mount_cmd *cmd)
{
	int r = archive_snapshot_name(cmd);
	if (r)
		return r;
	struct cli add_cli = {.store_path = cmd->store_path, .command = "mount"};
	cmd->add.name = cmd->snapshot;
	cmd->add.replace = cmd->replace;
	cmd->add.result = &cmd->added;
	cmd->archive = true;
	return cli_add(&add_cli, &cmd->add, &cmd->source, 1);
}

/* Whether the source is a SNAPSHOT (the store has one by that name) or
 * an ARCHIVE (a file); with --name, --replace or --temp it must be an
 * ARCHIVE. Two operands keep their old reading: what is neither is taken
 * as a snapshot name, which the mount then reports missing. */
static int classify_source(struct mount_cmd *cmd)
{
	bool want_archive = cmd->name || cmd->replace || cmd->temp;
	struct stat st;

	if (!want_archive && snapshot_exists(cmd->store_path, cmd->source) == 1)
		return 0;
	int r = stat(cmd->source, &st) < 0 ? -errno : S_ISDIR(st.st_mode) ? -EISDIR : 0;
	if (r == 0 || (!want_archive && cmd->target)) {
		cmd->archive = r == 0;
		return 0;
	}
	fputs("cairn: ", stderr);
	cli_put_escaped(stderr, cmd->source);
	if (want_archive)
		fprintf(stderr, ": not an archive: %s\n", strerror(-r));
	else
		fprintf(stderr, ": no such directory, snapshot (in %s) or archive\n",
			cmd->store_path);
	return EXIT_ERROR;
}

/* An ARCHIVE is added (a no-op when already there) and its snapshot
 * served. */
static int resolve_source(struct mount_cmd *cmd)
{
	if (cmd->archive)
		return add_archive(cmd);
	snprintf(cmd->snapshot, sizeof(cmd->snapshot), "%s", cmd->source);
	return 0;
}

/* ---- several sources, and SOURCE:PATH ---- */

/* "A+B+C@STORE": what the mount table shows for several sources. */
static void sources_fsname(struct mount_cmd *cmd)
{
	size_t len = 0;

	for (size_t i = 0; i < cmd->source_count; i++)
		len += (size_t)snprintf(cmd->fsname + len, sizeof(cmd->fsname) - len, "%s%s",
					i ? "+" : "", cmd->source_names[i]);
	snprintf(cmd->fsname + len, sizeof(cmd->fsname) - len, "@%s", cmd->store_path);
	if (!cmd->o.fsname)
		cmd->o.fsname = cmd->fsname;
}

/* Source i becomes the one the single-source functions above work on. */
static void source_select(struct mount_cmd *cmd, size_t i)
{
	cmd->source = cmd->source_prefixes[i];
	cmd->archive = cmd->source_archive[i];
}

/* Splits each SOURCE[:PATH] and tells snapshots from archives: cheap, and
 * done before anything is added. Leaves the first source selected. */
int mount_classify_sources(struct mount_cmd *cmd)
{
	for (size_t i = 0; i < cmd->source_arg_count; i++) {
		const char *colon = cli_source_split(cmd->store_path, cmd->source_args[i],
						     cmd->source_prefixes[i], PATH_MAX);
		cmd->sources[i].path = colon ? colon + 1 : NULL;
		cmd->source = cmd->source_prefixes[i];
		int r = classify_source(cmd);
		if (r != 0)
			return r;
		cmd->source_archive[i] = cmd->archive;
	}
	source_select(cmd, 0);
	return 0;
}

/* What mount says of each archive of several, as it adds it. */
static void say_added(const struct mount_cmd *cmd)
{
	fputs(cmd->added.added ? "cairn: added " : "cairn: ", stderr);
	cli_put_escaped(stderr, cmd->source);
	fputs(cmd->added.added ? " as snapshot " : " is already snapshot ", stderr);
	cli_put_escaped(stderr, cmd->snapshot);
	if (cmd->added.added)
		fprintf(stderr, " (%llu entries)", (unsigned long long)cmd->added.entries);
	fputc('\n', stderr);
}

/* Adds each archive (a no-op when already there) and names each source's
 * snapshot. One source without a PATH is served as before (snapshot);
 * otherwise the list goes to the mount as sources. */
int mount_resolve_sources(struct mount_cmd *cmd)
{
	bool many = cmd->source_arg_count > 1, any_path = false;

	for (size_t i = 0; i < cmd->source_arg_count; i++) {
		source_select(cmd, i);
		int r = resolve_source(cmd);
		if (r != 0)
			return r;
		if (many && cmd->archive)
			say_added(cmd);
		memcpy(cmd->source_names[i], cmd->snapshot, sizeof(cmd->snapshot));
		cmd->sources[i].snapshot = cmd->source_names[i];
		any_path |= cmd->sources[i].path != NULL;
	}
	source_select(cmd, 0);
	memcpy(cmd->snapshot, cmd->source_names[0], sizeof(cmd->snapshot));
	if (many)
		cmd->archive = false; /* each was said above */
	if (many || any_path || cmd->o.nomerge) {
		cmd->source_count = cmd->source_arg_count;
		if (many)
			sources_fsname(cmd);
	}
	return 0;
}

/* ---- the mount point made and the --temp store ---- */

/* Where the mount point is made and what it is called: next to an
 * archive, as fuse-archive does, or in the current directory for a
 * snapshot. Checked before adding anything. */
int mount_plan_mountpoint(const struct mount_cmd *cmd, char *dir, size_t dir_size, char *stem,
			  size_t stem_size)
{
	if (!cmd->archive) {
		snprintf(dir, dir_size, ".");
		snprintf(stem, stem_size, "%s", cmd->source);
		return EXIT_OK;
	}
	const char *slash = strrchr(cmd->source, '/');
	if (!slash)
		snprintf(dir, dir_size, ".");
	else if (slash == cmd->source)
		snprintf(dir, dir_size, "/");
	else
		snprintf(dir, dir_size, "%.*s", (int)(slash - cmd->source), cmd->source);
	/* Before the add, which cannot be taken back for want of a place. */
	if (access(dir, W_OK | X_OK) < 0) {
		fputs("cairn: cannot make a mount point in ", stderr);
		cli_put_escaped(stderr, dir);
		fprintf(stderr, ": %s; give a MOUNTPOINT\n", strerror(errno));
		return EXIT_ERROR;
	}
	return cli_mountpoint_stem(cmd->source, stem, stem_size);
}

/* A --temp run's store: made quietly in its own directory, where its blob
 * cache goes too unless -o cache= names one. */
int mount_make_temp_store(struct mount_cmd *cmd)
{
	int r = cli_temp_make(&cmd->tmp);
	if (r)
		return r;
	snprintf(cmd->store_path, sizeof(cmd->store_path), "%s/store", cmd->tmp.path);
	_cleanup_(cairn_store_freep) struct cairn_store *store = cairn_store_new();
	if (!store || cairn_store_create(store, cmd->store_path, NULL) < 0) {
		cli_error("%s", store ? cairn_store_error(store) : "out of memory");
		return EXIT_ERROR;
	}
	if (!cmd->o.cache_dir[0])
		snprintf(cmd->o.cache_dir, sizeof(cmd->o.cache_dir), "%s/cache", cmd->tmp.path);
	return EXIT_OK;
}

/* After the session, or when it never started: the mount point made and
 * the --temp directory go. Only the daemon (or the foreground process)
 * calls this once it has been handed the mount. */
void mount_remove_made(struct mount_cmd *cmd)
{
	if (cmd->made.parent_fd >= 0) {
		int r = cli_made_dir_remove(&cmd->made);
		if (r < 0 && cmd->o.log) {
			char line[PATH_MAX + 100];
			snprintf(line, sizeof(line), "left the mount point %s in place: %s",
				 cmd->mountpoint,
				 r == -ESTALE ? "something else is there now" : strerror(-r));
			cmd->o.log(cmd, CAIRN_LOG_WARNING, line);
		}
	}
	cli_temp_remove(&cmd->tmp);
}

/* The one line mount says of an archive it added or found, or of a mount
 * point it made. */
void mount_say_done(const struct mount_cmd *cmd)
{
	bool made = cmd->made.parent_fd >= 0;

	if (!cmd->archive && !made)
		return;
	fputs("cairn: ", stderr);
	if (cmd->archive) {
		if (cmd->added.added)
			fputs("added ", stderr);
		cli_put_escaped(stderr, cmd->source);
		if (cmd->temp)
			fprintf(stderr, " to a temporary store (%llu entries; removed at unmount)",
				(unsigned long long)cmd->added.entries);
		else if (cmd->added.added)
			fputs(" as snapshot ", stderr);
		else
			fputs(" is already snapshot ", stderr);
		if (!cmd->temp) {
			cli_put_escaped(stderr, cmd->snapshot);
			if (cmd->added.added)
				fprintf(stderr, " (%llu entries)",
					(unsigned long long)cmd->added.entries);
		}
		fputs("; mounted at ", stderr);
	} else {
		fputs("mounted snapshot ", stderr);
		cli_put_escaped(stderr, cmd->snapshot);
		fputs(" at ", stderr);
	}
	cli_put_escaped(stderr, made ? cmd->shown : cmd->target);
	fputc('\n', stderr);
}
