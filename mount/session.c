/* session.c: setting a mount up and tearing it down: the store, then each
 * part of the stack bottom up (the snapshot table, the read path, the blob
 * cache, the passthrough table) and freed top down, the FUSE session and
 * its multi-threaded loop.
 */
#include "mount_fuse.h"

#include <malloc.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

/* ---- setting up ---- */

/* The blob cache, opened beside the snapshot table: on a cold start each
 * waits for the disk (CACHE's directories; the snapshot's first page), so
 * the two waits overlap. */
static void *blobs_open_main(void *arg)
{
	struct fs *fs = arg;

	/* Without one (it logs why), nothing passes through. */
	blob_cache_new(fs->o.cache_dir, fs->o.cache_size, fs->reads, &fs->log, &fs->blobs);
	return NULL;
}

static int fs_parts(struct fs *fs, char *msg, size_t msg_size)
{
	int r = snap_table_open(&fs->o, fs->store, &fs->log, &fs->snaps, msg, msg_size);
	if (r < 0)
		return r;
	r = idmap_new(&fs->o, &fs->ids);
	if (r < 0)
		return r;
	if (snap_table_merged(fs->snaps) && (r = union_new(fs, &fs->merge)) < 0) {
		cairn_format(msg, msg_size, "cannot merge the sources: %s", strerror(-r));
		return r;
	}
	return 0;
}

static int fs_setup(struct fs *fs, char *msg, size_t msg_size)
{
	struct stat st;
	pthread_t blobs_thread;

	fs->store = cairn_store_new();
	if (!fs->store)
		return -ENOMEM;
	int r = cairn_store_open(fs->store, fs->o.store_path);
	if (r < 0) {
		cairn_format(msg, msg_size, "%s", cairn_store_error(fs->store));
		return r;
	}
	if (fs->o.remote_cache_max)
		cairn_store_set_cache_max(fs->store, fs->o.remote_cache_max);
	r = cairn_snapshot_dir_check(fs->store, msg, msg_size);
	if (r < 0)
		return r;
	/* While mounted, gc must not delete the packs this mount reads. */
	r = cairn_store_pin(fs->store);
	if (r < 0) {
		cairn_format(msg, msg_size, "%s", cairn_store_error(fs->store));
		return r;
	}
	if (fstat(cairn_store_dirfd(fs->store), &st) == 0) {
		fs->owner_uid = st.st_uid;
		fs->owner_gid = st.st_gid;
	}
	atomic_store(&fs->root_mtime_sec, (int64_t)time(NULL));
	r = read_path_new(fs->store, fs->o.chunk_cache_size, &fs->log, &fs->reads);
	if (r < 0)
		return r;
	bool threaded =
		fs->o.passthrough && pthread_create(&blobs_thread, NULL, blobs_open_main, fs) == 0;
	if (fs->o.passthrough && !threaded)
		blobs_open_main(fs);
	/* libfuse is read from disk while the snapshot and the blob cache
	 * are. Not before the blob cache's thread starts: dlopen holds the
	 * dynamic linker's lock, which pthread_create takes too (it waited
	 * 6 ms for the library). */
	fuse_dl_start();
	r = fs_parts(fs, msg, msg_size);
	if (threaded)
		pthread_join(blobs_thread, NULL);
	if (r < 0)
		return r;
	return passthrough_new(&fs->o, fs->blobs, &fs->log, &fs->pt);
}

/* Top down: nothing below is freed while a part above may still use it. */
static void fs_free(struct fs *fs)
{
	while (fs->open_files) {
		struct open_file *next = fs->open_files->open_next;
		growing_put(atomic_load(&fs->open_files->growing));
		free(fs->open_files);
		fs->open_files = next;
	}
	passthrough_free(fs->pt);
	blob_cache_free(fs->blobs);
	read_path_free(fs->reads);
	union_free(fs->merge);
	idmap_free(fs->ids);
	snap_table_free(fs->snaps);
	cairn_store_free(fs->store);
	pthread_mutex_destroy(&fs->open_lock);
	free(fs);
}

/* ---- the mount point and the FUSE session ---- */

/* A missing /dev/fuse is a missing module; one this user may not open is
 * a matter of permissions, and says so. */
static int check_dev_fuse(char *msg, size_t msg_size)
{
	if (access("/dev/fuse", R_OK | W_OK) == 0)
		return 0;
	int r = -errno;
	if (r == -ENOENT || r == -ENODEV)
		cairn_format(msg, msg_size, "/dev/fuse: %s (is the fuse module loaded?)",
			     strerror(-r));
	else if (r == -EACCES || r == -EPERM)
		cairn_format(msg, msg_size,
			     "/dev/fuse: %s: this user may not use FUSE here (mount as root, or "
			     "ask for read and write access to /dev/fuse)",
			     strerror(-r));
	else
		cairn_format(msg, msg_size, "/dev/fuse: %s", strerror(-r));
	return r;
}

static int check_mountpoint(const char *path, char *msg, size_t msg_size)
{
	struct stat st, parent;
	_cleanup_free_ char *up = NULL;

	int r = check_dev_fuse(msg, msg_size);
	if (r < 0)
		return r;
	if (stat(path, &st) < 0) {
		r = -errno;
		cairn_format(msg, msg_size, "mount point %s: %s", path, strerror(errno));
		return r;
	}
	if (!S_ISDIR(st.st_mode)) {
		cairn_format(msg, msg_size, "mount point %s is not a directory", path);
		return -ENOTDIR;
	}
	if (asprintf(&up, "%s/..", path) < 0)
		return -ENOMEM;
	if (stat(up, &parent) == 0 && parent.st_dev != st.st_dev) {
		cairn_format(msg, msg_size, "mount point %s is busy: something is mounted there",
			     path);
		return -EBUSY;
	}
	return 0;
}

/* Appends text to buf with fuse_opt's separators (commas) and escapes
 * (backslashes) escaped. buf has room for twice text's length. */
static void append_escaped(char *buf, const char *text)
{
	size_t len = strlen(buf);

	for (; *text; text++) {
		if (*text == ',' || *text == '\\')
			buf[len++] = '\\';
		buf[len++] = *text;
	}
	buf[len] = '\0';
}

/* The mount table's source: -o fsname, else SNAPSHOT@STORE or STORE.
 * Returns it malloc'd, or NULL. */
static char *session_source(const struct fs *fs)
{
	char *source = NULL;

	if (fs->o.fsname)
		return strdup(fs->o.fsname);
	if (!fs->o.snapshot)
		return strdup(fs->o.store_path);
	if (asprintf(&source, "%s@%s", fs->o.snapshot, fs->o.store_path) < 0)
		return NULL; /* source is undefined */
	return source;
}

/* The -o string for libfuse: the type fuse.cairn, the source as the
 * options say, and the mount flags (direct_mount.c makes the same mount).
 * Returns it malloc'd, or NULL. */
static char *session_options(const struct fs *fs)
{
	_cleanup_free_ char *source = session_source(fs);

	if (!source)
		return NULL;
	char *opts = malloc(2 * strlen(source) + 200);
	if (!opts)
		return NULL;
	strcpy(opts, "ro,subtype=cairn,fsname=");
	append_escaped(opts, source);
	if (fs->o.allow_other)
		strcat(opts, ",allow_other");
	/* Other users see modes and owners enforced, as recorded. */
	if (fs->o.default_permissions || fs->o.allow_other)
		strcat(opts, ",default_permissions");
	/* libfuse mounts nosuid,nodev unless told otherwise. */
	strcat(opts, fs->o.suid ? ",suid" : ",nosuid");
	strcat(opts, fs->o.dev ? ",dev" : ",nodev");
	return opts;
}

/* fs.c's init, after the transport's part of the negotiation. */
static void session_init(void *userdata, struct fuse_conn_info *conn)
{
	transport_init_conn(userdata, conn);
	cairn_fs_ops.init(userdata, conn);
}

static struct fuse_session *session_new(struct fs *fs)
{
	_cleanup_free_ char *opts = session_options(fs);
	char *argv[6] = {"cairn", "-o", opts, NULL};
	int argc = 3;

	if (!opts)
		return NULL;
	if (fs->o.debug)
		argv[argc++] = "-d";
	if (transport_prepare(fs))
		argv[argc++] = "-oio_uring";
	struct fuse_args args = FUSE_ARGS_INIT(argc, argv);
	/* libfuse copies the table. */
	struct fuse_lowlevel_ops ops = cairn_fs_ops;
	ops.init = session_init;
	struct fuse_session *se = fuse_session_new(&args, &ops, sizeof(ops), fs);
	fuse_opt_free_args(&args);
	return se;
}

static int serve(struct fs *fs, struct fuse_session *se)
{
	struct fuse_loop_config *config = fuse_loop_cfg_create();

	if (!config)
		return -ENOMEM;
	/* One thread per core by default: with more, on 2 cores, a whole-tree
	 * read took 1.1-1.4x as long (docs/BENCHMARKS.md, "Mount"). */
	unsigned threads = fs->o.threads;
	if (threads == 0) {
		long n = sysconf(_SC_NPROCESSORS_ONLN);
		threads = n < 2 ? 2 : n > 16 ? 16 : (unsigned)n;
	}
	fuse_loop_cfg_set_max_threads(config, threads);
	fuse_loop_cfg_set_idle_threads(config, threads < 4 ? threads : 4);
	int r = fuse_session_loop_mt(se, config);
	fuse_loop_cfg_destroy(config);
	return r < 0 ? r : 0;
}

/* As root the mount is made here (direct_mount.c), libfuse serving it as
 * /dev/fd/N; else, or where that is refused, by libfuse. Returns 0 with
 * *direct_fd the fd of a mount made here (-1: libfuse's), or -1. */
static int session_mount(struct fs *fs, struct fuse_session *se, int *direct_fd)
{
	_cleanup_free_ char *source = session_source(fs);
	char path[40];

	*direct_fd = -1;
	if (!source || direct_mount(&fs->o, source, direct_fd) < 0)
		return fuse_session_mount(se, fs->o.mountpoint);
	snprintf(path, sizeof(path), "/dev/fd/%d", *direct_fd);
	if (fuse_session_mount(se, path) == 0)
		return 0;
	direct_unmount(fs->o.mountpoint, *direct_fd);
	close(*direct_fd);
	*direct_fd = -1;
	return -1;
}

static int run_session(struct fs *fs, void (*ready)(void *), void *ready_userdata, char *msg,
		       size_t msg_size)
{
	int r = check_mountpoint(fs->o.mountpoint, msg, msg_size);
	if (r < 0)
		return r;
	struct fuse_session *se = session_new(fs);
	if (!se) {
		cairn_format(msg, msg_size, "cannot start a FUSE session");
		return -EIO;
	}
	r = fuse_set_signal_handlers(se) == 0 ? 0 : -EIO;
	int direct_fd = -1;
	if (r == 0 && session_mount(fs, se, &direct_fd) != 0) {
		cairn_format(msg, msg_size, "cannot mount on %s (see the message above)",
			     fs->o.mountpoint);
		r = -EIO;
	}
	if (r == 0) {
		struct refresher *rf = NULL;
		r = read_path_readahead_start(fs->reads);
		if (r == 0 && (r = refresher_start(fs, se, &rf)) < 0) {
			cairn_format(msg, msg_size, "cannot start the refresh thread: %s",
				     strerror(-r));
			read_path_readahead_stop(fs->reads);
		}
		if (r == 0) {
			ready(ready_userdata);
			r = serve(fs, se);
			refresher_stop(rf);
			read_path_readahead_stop(fs->reads);
		}
		if (direct_fd >= 0)
			direct_unmount(fs->o.mountpoint, direct_fd);
		else
			fuse_session_unmount(se);
	}
	fuse_remove_signal_handlers(se);
	fuse_session_destroy(se);
	return r;
}

int cairn_mount_library(char *buf, size_t size)
{
	int r = fuse_dl_wait(buf, size);
	if (r < 0)
		return r;
	cairn_format(buf, size, "libfuse %s, %s", fuse_pkgversion(),
		     transport_library_has_uring() ? "with FUSE over io_uring"
						   : "without FUSE over io_uring");
	return 0;
}

int cairn_mount_run(const struct cairn_mount_options *o, void (*ready)(void *userdata),
		    void *ready_userdata, char *msg, size_t msg_size)
{
	/* glibc raises its mmap threshold each time a large block is freed, so
	 * where chunk-sized blocks come from drifts with the workload. Fix it
	 * above chunk_max: chunks come from the arenas (no mmap, page faults
	 * and munmap per chunk on the read path), and the chunk cache trims the
	 * arenas as it evicts (chunks.c), which keeps a tree read near the
	 * cache's bound (it left 340 MiB resident with a 64 MiB cache before). */
	mallopt(M_MMAP_THRESHOLD, 1024 * 1024);

	struct fs *fs = calloc(1, sizeof(*fs));

	if (!fs)
		return -ENOMEM;
	fs->o = *o;
	fs->log = (struct mount_log){o->log, o->log_userdata};
	pthread_mutex_init(&fs->open_lock, NULL);
	if (!fs->o.cache_dir[0])
		mount_default_cache_dir(fs->o.cache_dir, sizeof(fs->o.cache_dir));
	int r = fs_setup(fs, msg, msg_size);
	if (r == 0)
		r = fuse_dl_wait(msg, msg_size);
	else
		fuse_dl_join();
	if (r == 0)
		r = run_session(fs, ready, ready_userdata, msg, msg_size);
	else if (!msg[0])
		cairn_format(msg, msg_size, "cannot set up the mount: %s", strerror(-r));
	fs_free(fs);
	return r;
}
