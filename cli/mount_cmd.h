/* mount_cmd.h: the state of one `cairn mount` run, shared by cmd_mount.c
 * (arguments, the daemon, the helper) and mount_source.c (what each
 * SOURCE is: a snapshot or an archive to add, the mount point to make, the
 * --temp store). Private to cli/.
 */
#ifndef CAIRN_CLI_MOUNT_CMD_H
#define CAIRN_CLI_MOUNT_CMD_H

#include <limits.h>

#include "cli.h"
#include "index.h"
#include "mount.h"

#define MOUNT_SOURCES_MAX 32

struct mount_cmd {
	struct cairn_mount_options o;
	bool foreground;
	bool helper;        /* mount.cairn: its one argument is the mount point */
	const char *source; /* SNAPSHOT or ARCHIVE, or NULL */
	const char *target; /* MOUNTPOINT as given; NULL: make one */
	const char *name;   /* --name */
	bool replace;       /* --replace */
	bool temp;          /* --temp */
	bool archive;       /* source is an archive, added */
	struct cli_add_result added;
	struct cli_made_dir made; /* the mount point made; parent_fd -1: none */
	struct cli_temp tmp;      /* --temp's directory; path "": none */
	char shown[PATH_MAX];     /* the mount point made, as the user writes it */
	char store_path[PATH_MAX];
	char mountpoint[PATH_MAX];
	char snapshot[CAIRN_SNAPSHOT_NAME_MAX + 1];
	int ready_fd; /* the pipe to the waiting parent, or -1 */
	/* SOURCE[:PATH]... (see "several sources" below) */
	char **source_args;
	size_t source_arg_count;
	struct cairn_mount_source sources[MOUNT_SOURCES_MAX];
	char source_names[MOUNT_SOURCES_MAX][CAIRN_SNAPSHOT_NAME_MAX + 1];
	size_t source_count; /* 0: the one snapshot in snapshot, as before */
	char source_prefixes[MOUNT_SOURCES_MAX][PATH_MAX]; /* each without :PATH */
	bool source_archive[MOUNT_SOURCES_MAX];
	char fsname[MOUNT_SOURCES_MAX * (CAIRN_SNAPSHOT_NAME_MAX + 1) + PATH_MAX];
	struct cli_add_options add; /* how ARCHIVE is read when it is added */
	char charset[80];           /* -o encoding= */
};

/* Splits each SOURCE[:PATH] and tells snapshots from archives: cheap, and
 * done before anything is added. Prints the error; returns 0 or an exit
 * status. */
int mount_classify_sources(struct mount_cmd *cmd);
/* Adds each archive (a no-op when already there) and names each source's
 * snapshot. Prints the error; returns 0 or an exit status. */
int mount_resolve_sources(struct mount_cmd *cmd);
/* Where the mount point is made (dir) and its name (stem), checked before
 * anything is added. Prints the error; returns 0 or an exit status. */
int mount_plan_mountpoint(const struct mount_cmd *cmd, char *dir, size_t dir_size, char *stem,
			  size_t stem_size);
/* A --temp run's store and blob cache. Returns 0 or an exit status. */
int mount_make_temp_store(struct mount_cmd *cmd);
/* Removes the mount point made and the --temp directory, if any. */
void mount_remove_made(struct mount_cmd *cmd);
/* The one line mount says of what it added, found or made. */
void mount_say_done(const struct mount_cmd *cmd);

#endif
