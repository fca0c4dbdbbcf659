/* session.c: setting a mount up and tearing it down: options, the store and
 * its snapshots, the caches, what init negotiates with the kernel (and the
 * log line saying which read path is in use and why), the FUSE session and
 * its multi-threaded loop.
 */
#include "mount_internal.h"

#include <malloc.h>
#include <ctype.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

/* ---- options ---- */

void cairn_mount_options_default(struct cairn_mount_options *o)
{
	*o = (struct cairn_mount_options){
		.cache_size = 4ull << 30,
		.chunk_cache_size = 64u << 20,
		.passthrough_min = 1u << 20,
		.background_min = 16u << 20,
		.passthrough = true,
		.uid = -1,
		.gid = -1,
		.umask = -1,
	};
}

static int parse_size(const char *text, uint64_t *ret)
{
	char *end;

	errno = 0;
	unsigned long long value = strtoull(text, &end, 10);
	if (errno || end == text || *text == '-')
		return -EINVAL;
	unsigned shift = *end == 'k' || *end == 'K'   ? 10
			 : *end == 'm' || *end == 'M' ? 20
			 : *end == 'g' || *end == 'G' ? 30
			 : *end == 't' || *end == 'T' ? 40
						      : 0;
	end += shift != 0;
	if (*end != '\0' || value > (UINT64_MAX >> shift))
		return -EINVAL;
	*ret = (uint64_t)value << shift;
	return 0;
}

static int parse_id(const char *text, int64_t *ret)
{
	uint64_t value;

	if (parse_size(text, &value) < 0 || value > UINT32_MAX - 1 ||
	    !isdigit((int)text[strlen(text) - 1]))
		return -EINVAL;
	*ret = (int64_t)value;
	return 0;
}

/* Options mount(8) and fstab pass that mean nothing for a read-only FUSE
 * filesystem. */
static bool is_ignored_option(const char *opt)
{
	static const char *const ignored[] = {
		"ro",       "rw",         "defaults", "auto",   "noauto", "user",  "nouser",
		"users",    "exec",       "noexec",   "async",  "sync",   "atime", "noatime",
		"relatime", "nodiratime", "_netdev",  "nofail", "nosuid", "nodev"};

	for (size_t i = 0; i < ARRAY_SIZE(ignored); i++)
		if (strcmp(opt, ignored[i]) == 0)
			return true;
	return strncmp(opt, "x-", 2) == 0 || strncmp(opt, "comment=", 8) == 0;
}

static int apply_value_option(struct cairn_mount_options *o, const char *key, const char *value)
{
	uint64_t size;
	int64_t id;

	if (strcmp(key, "cache") == 0 && *value) {
		size_t len = strlen(value);
		if (len >= sizeof(o->cache_dir))
			return -EINVAL;
		memcpy(o->cache_dir, value, len + 1);
		return 0;
	}
	if (strcmp(key, "uid") == 0 || strcmp(key, "gid") == 0) {
		if (parse_id(value, &id) < 0)
			return -EINVAL;
		*(key[0] == 'u' ? &o->uid : &o->gid) = id;
		return 0;
	}
	if (strcmp(key, "umask") == 0) {
		char *end;
		long mask = strtol(value, &end, 8);
		if (*value == '\0' || *end != '\0' || mask < 0 || mask > 07777)
			return -EINVAL;
		o->umask = (int32_t)mask;
		return 0;
	}
	if (strcmp(key, "threads") == 0) {
		if (parse_size(value, &size) < 0 || size == 0 || size > 256)
			return -EINVAL;
		o->threads = (unsigned)size;
		return 0;
	}
	uint64_t *target = strcmp(key, "cache_size") == 0        ? &o->cache_size
			   : strcmp(key, "chunk_cache") == 0     ? &o->chunk_cache_size
			   : strcmp(key, "passthrough_min") == 0 ? &o->passthrough_min
			   : strcmp(key, "background_min") == 0  ? &o->background_min
								 : NULL;
	if (!target || parse_size(value, &size) < 0)
		return -EINVAL;
	*target = size;
	return 0;
}

static int apply_option(struct cairn_mount_options *o, char *opt)
{
	char *eq = strchr(opt, '=');

	if (eq) {
		*eq = '\0';
		return apply_value_option(o, opt, eq + 1);
	}
	bool *flag = strcmp(opt, "allow_other") == 0           ? &o->allow_other
		     : strcmp(opt, "default_permissions") == 0 ? &o->default_permissions
		     : strcmp(opt, "suid") == 0                ? &o->suid
		     : strcmp(opt, "dev") == 0                 ? &o->dev
		     : strcmp(opt, "debug") == 0               ? &o->debug
							       : NULL;
	if (flag) {
		*flag = true;
		return 0;
	}
	if (strcmp(opt, "nopassthrough") == 0) {
		o->passthrough = false;
		return 0;
	}
	return is_ignored_option(opt) ? 0 : -EINVAL;
}

int cairn_mount_options_parse(struct cairn_mount_options *o, const char *opts, char *msg,
			      size_t msg_size)
{
	_cleanup_free_ char *copy = strdup(opts);

	if (!copy)
		return -ENOMEM;
	for (char *save = NULL, *opt = strtok_r(copy, ",", &save); opt;
	     opt = strtok_r(NULL, ",", &save)) {
		char shown[200];
		snprintf(shown, sizeof(shown), "%s", opt);
		if (apply_option(o, opt) < 0) {
			cairn_format(msg, msg_size, "unknown or invalid mount option '%s'", shown);
			return -EINVAL;
		}
	}
	return 0;
}

/* ---- what init negotiates ---- */

void fs_init_conn(struct fs *fs, struct fuse_conn_info *conn)
{
	const char *why = NULL;

#if CAIRN_HAVE_PASSTHROUGH
	if (!fs->o.passthrough)
		why = "-o nopassthrough";
	else if (!fs->blobs)
		why = "there is no usable blob cache";
	else if (!(conn->capable_ext & FUSE_CAP_PASSTHROUGH))
		why = "the kernel does not offer it (it needs Linux 6.9+ built with FUSE passthrough)";
	if (!why && fuse_set_feature_flag(conn, FUSE_CAP_PASSTHROUGH)) {
		/* Blobs may live on a stacked filesystem (overlayfs in containers). */
		conn->max_backing_stack_depth = FUSE_BACKING_STACKED_OVER;
		atomic_store(&fs->passthrough, true);
		fs->passthrough_ever = true;
	}
	fuse_unset_feature_flag(conn, FUSE_CAP_WRITEBACK_CACHE);
	fuse_set_feature_flag(conn, FUSE_CAP_PARALLEL_DIROPS);
	fuse_set_feature_flag(conn, FUSE_CAP_READDIRPLUS);
	fuse_unset_feature_flag(conn, FUSE_CAP_READDIRPLUS_AUTO);
	fuse_set_feature_flag(conn, FUSE_CAP_CACHE_SYMLINKS);
#else
	why = "cairn was built against libfuse older than 3.17";
	conn->want &= ~(unsigned)(FUSE_CAP_WRITEBACK_CACHE | FUSE_CAP_READDIRPLUS_AUTO);
	conn->want |= conn->capable &
		      (FUSE_CAP_PARALLEL_DIROPS | FUSE_CAP_READDIRPLUS | FUSE_CAP_CACHE_SYMLINKS);
#endif
	if (atomic_load(&fs->passthrough))
		fs_log(fs, CAIRN_LOG_INFO,
		       "passthrough reads on: files of %llu bytes and more are read by the kernel "
		       "from verified blobs in %s",
		       (unsigned long long)fs->o.passthrough_min, fs->o.cache_dir);
	else
		fs_log(fs, CAIRN_LOG_INFO, "passthrough reads off (%s): reads come through cairn",
		       why ? why : "the kernel refused it");
}

/* ---- setting up ---- */

static uint64_t name_hash(const char *name)
{
	uint64_t hash = 0xcbf29ce484222325ull;

	for (const unsigned char *p = (const unsigned char *)name; *p; p++)
		hash = (hash ^ *p) * 0x100000001b3ull;
	return hash;
}

/* Slots from a hash of the name, so a snapshot keeps its inode numbers when
 * others are added or removed (unless two names share a slot). */
static int assign_slots(struct fs *fs)
{
	size_t cap = 16;

	while (cap < fs->snap_count * 2)
		cap *= 2;
	fs->slot_map = calloc(cap, sizeof(*fs->slot_map));
	if (!fs->slot_map)
		return -ENOMEM;
	fs->slot_map_cap = cap;
	for (size_t i = 0; i < fs->snap_count; i++) {
		uint64_t slot = name_hash(fs->snaps[i].name) % SLOT_MAX + 1;
		for (;;) {
			size_t s = slot & (cap - 1);
			while (fs->slot_map[s] && fs->snaps[fs->slot_map[s] - 1].slot != slot)
				s = (s + 1) & (cap - 1);
			if (!fs->slot_map[s]) {
				fs->slot_map[s] = (uint32_t)(i + 1);
				break;
			}
			slot = slot % SLOT_MAX + 1;
		}
		fs->snaps[i].slot = slot;
	}
	return 0;
}

static int snaps_init(struct fs *fs, char **names, size_t count)
{
	fs->snaps = calloc(count ? count : 1, sizeof(*fs->snaps));
	if (!fs->snaps)
		return -ENOMEM;
	for (size_t i = 0; i < count; i++) {
		fs->snaps[i].name = TAKE_PTR(names[i]);
		pthread_mutex_init(&fs->snaps[i].open_lock, NULL);
	}
	fs->snap_count = count;
	return fs->whole_store ? assign_slots(fs) : 0;
}

static int open_snapshots(struct fs *fs, char *msg, size_t msg_size)
{
	char **names = NULL;
	size_t count = 0;
	struct cairn_index *idx;

	fs->whole_store = !fs->o.snapshot;
	int r = fs->whole_store ? cairn_snapshot_list(fs->store, &names, &count) : 0;
	if (r == 0 && !fs->whole_store) {
		names = calloc(1, sizeof(*names));
		names[0] = names ? strdup(fs->o.snapshot) : NULL;
		count = 1;
		r = names && names[0] ? 0 : -ENOMEM;
	}
	if (r == 0)
		r = snaps_init(fs, names, count);
	cairn_snapshot_names_free(names, count);
	if (r < 0) {
		cairn_format(msg, msg_size, "%s: cannot list snapshots: %s", fs->o.store_path,
			     strerror(-r));
		return r;
	}
	if (fs->whole_store)
		return 0;
	/* One snapshot: open it now, so a bad name fails the mount. */
	idx = cairn_index_new();
	r = idx ? cairn_index_open(idx, fs->store, fs->o.snapshot) : -ENOMEM;
	if (r < 0) {
		cairn_format(msg, msg_size, "%s", idx ? cairn_index_error(idx) : "out of memory");
		cairn_index_free(idx);
		return r;
	}
	atomic_store(&fs->snaps[0].idx, idx);
	return 0;
}

static void default_cache_dir(char *buf, size_t size)
{
	const char *base = getenv("XDG_CACHE_HOME");
	const char *home = getenv("HOME");

	if (base && *base == '/')
		snprintf(buf, size, "%s/cairn", base);
	else if (home && *home)
		snprintf(buf, size, "%s/.cache/cairn", home);
	else
		snprintf(buf, size, "/var/cache/cairn");
}

static int fs_setup(struct fs *fs, char *msg, size_t msg_size)
{
	struct stat st;

	fs->store = cairn_store_new();
	if (!fs->store)
		return -ENOMEM;
	int r = cairn_store_open(fs->store, fs->o.store_path);
	if (r < 0) {
		cairn_format(msg, msg_size, "%s", cairn_store_error(fs->store));
		return r;
	}
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
	fs->start_sec = time(NULL);
	r = open_snapshots(fs, msg, msg_size);
	if (r < 0)
		return r;
	r = chunk_cache_new(fs->o.chunk_cache_size, &fs->chunks);
	if (r < 0)
		return r;
	if (fs->o.passthrough) {
		r = blob_cache_new(fs, fs->o.cache_dir, fs->o.cache_size, &fs->blobs);
		if (r < 0)
			fs_log(fs, CAIRN_LOG_WARNING, "blob cache %s: %s", fs->o.cache_dir,
			       strerror(-r));
	}
	return fs_read_init(fs);
}

static void fs_free(struct fs *fs)
{
	blob_cache_free(fs->blobs);
	chunk_cache_free(fs->chunks);
	for (size_t i = 0; i < fs->snap_count; i++) {
		cairn_index_free(atomic_load(&fs->snaps[i].idx));
		pthread_mutex_destroy(&fs->snaps[i].open_lock);
		free(fs->snaps[i].name);
	}
	free(fs->snaps);
	free(fs->slot_map);
	while (fs->open_files) {
		struct open_file *next = fs->open_files->open_next;
		free(fs->open_files);
		fs->open_files = next;
	}
	while (fs->backings) {
		struct backing *next = fs->backings->next;
		free(fs->backings);
		fs->backings = next;
	}
	cairn_store_free(fs->store);
	pthread_mutex_destroy(&fs->backing_lock);
	pthread_mutex_destroy(&fs->open_lock);
	pthread_mutex_destroy(&fs->readahead_lock);
	pthread_cond_destroy(&fs->readahead_cond);
	free(fs);
}

/* ---- the mount point and the FUSE session ---- */

static int check_mountpoint(const char *path, char *msg, size_t msg_size)
{
	struct stat st, parent;
	_cleanup_free_ char *up = NULL;

	if (access("/dev/fuse", R_OK | W_OK) < 0) {
		cairn_format(msg, msg_size, "/dev/fuse: %s (is the fuse module loaded?)",
			     strerror(errno));
		return -ENODEV;
	}
	if (stat(path, &st) < 0) {
		int r = -errno;
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

/* fsname=cairn:NAME, with the commas and backslashes of NAME escaped. */
static void append_escaped(char *buf, size_t size, const char *text)
{
	size_t len = strlen(buf);

	for (; *text && len + 3 < size; text++) {
		if (*text == ',' || *text == '\\')
			buf[len++] = '\\';
		buf[len++] = *text;
	}
	buf[len] = '\0';
}

static struct fuse_session *session_new(struct fs *fs)
{
	char opts[1024] = "ro,subtype=cairn,fsname=cairn:";
	char *argv[4] = {"cairn", "-o", opts, NULL};
	int argc = 3;

	append_escaped(opts, sizeof(opts), fs->o.snapshot ? fs->o.snapshot : fs->o.store_path);
	if (fs->o.allow_other)
		strcat(opts, ",allow_other");
	/* Other users see modes and owners enforced, as recorded. */
	if (fs->o.default_permissions || fs->o.allow_other)
		strcat(opts, ",default_permissions");
	/* libfuse mounts nosuid,nodev unless told otherwise. */
	strcat(opts, fs->o.suid ? ",suid" : ",nosuid");
	strcat(opts, fs->o.dev ? ",dev" : ",nodev");
	if (fs->o.debug)
		argv[argc++] = "-d";
	struct fuse_args args = FUSE_ARGS_INIT(argc, argv);
	struct fuse_session *se = fuse_session_new(&args, &cairn_fs_ops, sizeof(cairn_fs_ops), fs);
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
	fs->se = se;
	r = fuse_set_signal_handlers(se) == 0 ? 0 : -EIO;
	if (r == 0 && fuse_session_mount(se, fs->o.mountpoint) != 0) {
		cairn_format(msg, msg_size, "cannot mount on %s (see the message above)",
			     fs->o.mountpoint);
		r = -EIO;
	}
	if (r == 0) {
		r = -pthread_create(&fs->readahead_thread, NULL, fs_readahead_main, fs);
		if (r == 0) {
			ready(ready_userdata);
			r = serve(fs, se);
			pthread_mutex_lock(&fs->readahead_lock);
			fs->stopping = true;
			pthread_cond_broadcast(&fs->readahead_cond);
			pthread_mutex_unlock(&fs->readahead_lock);
			pthread_join(fs->readahead_thread, NULL);
		}
		fuse_session_unmount(se);
	}
	fuse_remove_signal_handlers(se);
	fuse_session_destroy(se);
	return r;
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
	pthread_mutex_init(&fs->backing_lock, NULL);
	pthread_mutex_init(&fs->open_lock, NULL);
	pthread_mutex_init(&fs->readahead_lock, NULL);
	pthread_cond_init(&fs->readahead_cond, NULL);
	if (!fs->o.cache_dir[0])
		default_cache_dir(fs->o.cache_dir, sizeof(fs->o.cache_dir));
	int r = fs_setup(fs, msg, msg_size);
	if (r == 0)
		r = run_session(fs, ready, ready_userdata, msg, msg_size);
	else if (!msg[0])
		cairn_format(msg, msg_size, "cannot set up the mount: %s", strerror(-r));
	fs_free(fs);
	return r;
}
