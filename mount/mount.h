/* mount.h: the facade of cairn's read-only FUSE filesystem. It serves one
 * snapshot, or a whole store (one directory per snapshot under the root),
 * through libfuse's low-level API. Metadata comes straight from the mapped
 * snapshot indexes; file contents pass through to verified blob-cache files
 * where the kernel allows it, and come through a bounded chunk cache
 * otherwise. Only this layer includes fuse_lowlevel.h.
 */
#ifndef CAIRN_MOUNT_H
#define CAIRN_MOUNT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum cairn_log_level {
	CAIRN_LOG_ERROR,
	CAIRN_LOG_WARNING,
	CAIRN_LOG_INFO,
	CAIRN_LOG_DEBUG,
};

/* Where the mount's log lines go (the cli prints them or sends them to
 * syslog). Called from any thread. */
typedef void (*cairn_mount_log_fn)(void *userdata, enum cairn_log_level level, const char *line);

/* -o uidmap=FROM:TO[:COUNT]/...: ids FROM..FROM+COUNT-1 as recorded are
 * shown as TO..TO+COUNT-1 (COUNT defaults to 1). */
struct cairn_mount_id_range {
	uint32_t from, to, count;
};
#define CAIRN_MOUNT_ID_RANGES_MAX 16

/* One of several snapshots a mount serves (cairn mount A B C MOUNTPOINT),
 * or one directory of a snapshot (SNAPSHOT:PATH). */
struct cairn_mount_source {
	const char *snapshot;
	const char *path; /* the directory served as its root; NULL or "": the root */
};

/* The channel requests come over (docs/cairn.1, "Transport"). */
enum cairn_mount_uring {
	CAIRN_MOUNT_URING_AUTO, /* io_uring where libfuse and the kernel allow it */
	CAIRN_MOUNT_URING_ON,   /* -o io_uring: also turn the kernel's switch on (root) */
	CAIRN_MOUNT_URING_OFF,  /* -o noio_uring: /dev/fuse */
};

struct cairn_mount_options {
	const char *store_path; /* the store (required) */
	const char *snapshot;   /* serve this snapshot; NULL: the whole store */
	const char *mountpoint; /* required */
	/* When source_count > 0, these instead of snapshot: their trees merged
	 * into one (later sources win where paths collide, directories are
	 * merged), or with nomerge one directory per source. Borrowed: they
	 * must outlive cairn_mount_run. */
	const struct cairn_mount_source *sources;
	size_t source_count;
	bool nomerge;
	/* The source the mount table shows (mountinfo's source field): what
	 * mount(8) and fstab named, so that `mount -a` sees the line mounted
	 * and `umount SOURCE` finds it. NULL: SNAPSHOT@STORE, or STORE for
	 * the whole store. The type is always fuse.cairn. */
	const char *fsname;
	char cache_dir[4096];      /* the blob cache; "": $XDG_CACHE_HOME/cairn */
	uint64_t cache_size;       /* blob cache bound in bytes */
	uint64_t chunk_cache_size; /* decompressed chunk cache bound in bytes */
	uint64_t remote_cache_max; /* a remote store's mirror bound; 0: its default */
	/* Files of at least this size pass through to a blob; smaller ones are
	 * read through the chunk cache and kept in the page cache. */
	uint64_t passthrough_min;
	/* A file of at least this size whose blob is not in the cache yet is
	 * served by the fallback path while a worker extracts it; a smaller one
	 * is extracted during its open. */
	uint64_t background_min;
	bool passthrough; /* false: -o nopassthrough */
	bool allow_other;
	bool default_permissions;
	bool suid; /* keep setuid/setgid bits (and mount without nosuid) */
	bool dev;  /* allow device nodes (mount without nodev) */
	/* Show the archive's security.capability xattrs: without it they are
	 * hidden, so that -o suid alone never grants file capabilities. */
	bool caps;
	/* -o versions: NAME.versions directories show the earlier versions of
	 * entries an archive held more than once (cairn_index_show_versions) */
	bool versions;
	int64_t uid, gid; /* -1: as recorded */
	int32_t umask;    /* -1: none */
	int32_t dmask;    /* on directories, after umask; -1: none */
	int32_t fmask;    /* on everything else, after umask; -1: none */
	/* Owners: with mapowners, a recorded user or group name known to the
	 * local passwd or group database gives its local id; otherwise the
	 * recorded id goes through the ranges (the first that holds it); uid=
	 * and gid= override both. */
	bool mapowners;
	struct cairn_mount_id_range uidmap[CAIRN_MOUNT_ID_RANGES_MAX];
	struct cairn_mount_id_range gidmap[CAIRN_MOUNT_ID_RANGES_MAX];
	unsigned uidmap_count, gidmap_count;
	unsigned threads; /* FUSE worker threads; 0: default */
	/* -o refresh=SECONDS: how often a whole-store mount looks for
	 * snapshots added or removed (0: never); -1: the default, 60 on an
	 * s3:// store, 5 on a local one. A list of snapshots is not refreshed. */
	int64_t refresh;
	/* READDIRPLUS (names with attributes) for every listing, where the
	 * kernel's heuristic wants it, or never: -o readdirplus=always|auto|never */
	enum { CAIRN_RDPLUS_ALWAYS, CAIRN_RDPLUS_AUTO, CAIRN_RDPLUS_NEVER } readdirplus;
	enum cairn_mount_uring io_uring;
	bool debug; /* libfuse debug output */
	cairn_mount_log_fn log;
	void *log_userdata;
};

/* Fills o with the defaults: 4 GiB blob cache, 64 MiB chunk cache,
 * passthrough on, the thresholds documented in docs/BENCHMARKS.md. */
void cairn_mount_options_default(struct cairn_mount_options *o);

/* Applies one comma-separated -o string ("allow_other,uid=1000,cache=/x").
 * Returns 0, or -EINVAL with the offending option in msg. */
int cairn_mount_options_parse(struct cairn_mount_options *o, const char *opts, char *msg,
			      size_t msg_size);

/* Opens the store (and the snapshot), mounts, calls ready(ready_userdata)
 * once the mount is in place (the cli then lets its parent return), serves
 * until unmounted or SIGINT/SIGTERM/SIGHUP, and unmounts. Returns 0, or
 * -errno with a one-line message in msg (before ready: nothing is mounted). */
int cairn_mount_run(const struct cairn_mount_options *o, void (*ready)(void *userdata),
		    void *ready_userdata, char *msg, size_t msg_size);

/* The libfuse mounts use, in a few words for --version ("libfuse 3.18.3,
 * with FUSE over io_uring"), or why it cannot be opened. Opens the library
 * (mounts open it only in their daemon). Returns 0, or -ELIBACC. */
int cairn_mount_library(char *buf, size_t size);

#endif
