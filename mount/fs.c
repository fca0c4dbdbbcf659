/* fs.c: the FUSE low-level operations. Every operation answers exactly one
 * reply; the work is done by do_* helpers that return -errno, and the op_*
 * functions only turn that into the reply. Metadata comes from the mapped
 * snapshot indexes (snaps.c), so nothing here allocates per inode and
 * forget has nothing to do. Contents come through the passthrough table,
 * which picks each open's read path (passthrough.c), and the read path
 * (read.c).
 */
#include "mount_fuse.h"

#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* Everything is immutable: the kernel may cache names and attributes for as
 * long as it likes. */
#define TIMEOUT 86400.0

#define STATS_XATTR "user.cairn.stats"
#define CAPS_XATTR  "security.capability"

/* One more request of a kind reached the daemon (user.cairn.stats). */
#define count_request(req, counter)                                                                \
	atomic_fetch_add(&((struct fs *)fuse_req_userdata(req))->stats.counter, 1)

_Static_assert(FUSE_ROOT_ID == CAIRN_INDEX_ROOT, "a snapshot's root is the mount's root");

/* ---- attributes ---- */

static void fill_stat(const struct fs *fs, const struct snap *snap,
		      const struct cairn_index_stat *in, struct stat *st)
{
	memset(st, 0, sizeof(*st));
	st->st_ino = snap_encode(snap, in->ino);
	st->st_mode = in->mode;
	if (!fs->o.suid)
		st->st_mode &= ~(mode_t)(S_ISUID | S_ISGID);
	idmap_apply(fs->ids, in, st);
	st->st_nlink = in->nlink;
	st->st_size = (off_t)in->size;
	st->st_rdev = (dev_t)in->rdev;
	st->st_blksize = 128 * 1024;
	st->st_blocks = (blkcnt_t)((in->size + 511) / 512);
	st->st_mtim.tv_sec = in->mtime_sec;
	st->st_mtim.tv_nsec = in->mtime_nsec;
	st->st_atim = st->st_mtim;
	st->st_ctim = st->st_mtim;
}

static void fill_root_stat(const struct fs *fs, struct stat *st)
{
	memset(st, 0, sizeof(*st));
	st->st_ino = FUSE_ROOT_ID;
	st->st_mode = S_IFDIR | 0555;
	st->st_nlink = 2 + (nlink_t)snap_table_view(fs->snaps)->count;
	st->st_uid = fs->o.uid >= 0 ? (uid_t)fs->o.uid : fs->owner_uid;
	st->st_gid = fs->o.gid >= 0 ? (gid_t)fs->o.gid : fs->owner_gid;
	st->st_blksize = 4096;
	st->st_mtim.tv_sec = atomic_load(&fs->root_mtime_sec);
	st->st_atim = st->st_ctim = st->st_mtim;
}

/* The attributes of inode ino of a snapshot. */
static int snap_getattr(struct fs *fs, struct snap *snap, uint64_t ino, struct stat *st)
{
	struct cairn_index *idx;
	struct cairn_index_stat in;

	int r = snap_index(fs->snaps, snap, &idx);
	if (r < 0)
		return r;
	r = cairn_index_getattr(idx, ino, &in);
	if (r < 0)
		return snap_index_error(fs->snaps, idx, r);
	fill_stat(fs, snap, &in, st);
	return 0;
}

int fs_snap_getattr(struct fs *fs, struct snap *snap, uint64_t ino, struct stat *st)
{
	return snap_getattr(fs, snap, ino, st);
}

static int do_getattr(struct fs *fs, fuse_ino_t ino, struct stat *st)
{
	struct snap *snap;
	uint64_t sino;

	int r = fs->merge ? union_getattr(fs, ino, st) : 0;
	if (r != 0)
		return r < 0 ? r : 0;
	r = snap_table_decode(fs->snaps, ino, &snap, &sino);
	if (r == SNAP_STORE_ROOT) {
		fill_root_stat(fs, st);
		return 0;
	}
	return r < 0 ? r : snap_getattr(fs, snap, sino, st);
}

static void op_getattr(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct stat st;

	(void)fi;
	count_request(req, getattrs);
	int r = do_getattr(fuse_req_userdata(req), ino, &st);
	if (r < 0)
		fuse_reply_err(req, -r);
	else
		fuse_reply_attr(req, &st, TIMEOUT);
}

/* ---- lookup ---- */

static int do_lookup(struct fs *fs, fuse_ino_t parent, const char *name, struct fuse_entry_param *e)
{
	struct snap *snap;
	struct cairn_index *idx;
	uint64_t dir, child = CAIRN_INDEX_ROOT;

	memset(e, 0, sizeof(*e));
	e->attr_timeout = e->entry_timeout = TIMEOUT;
	e->generation = 1;
	int r = fs->merge ? union_lookup(fs, parent, name, &e->attr) : 0;
	if (r != 0) {
		e->ino = e->attr.st_ino;
		return r < 0 ? r : 0;
	}
	r = snap_table_decode(fs->snaps, parent, &snap, &dir);
	if (r < 0)
		return r;
	if (r == SNAP_STORE_ROOT && !(snap = snap_table_find(fs->snaps, name)))
		return -ENOENT;
	if (r == SNAP_STORE_ROOT)
		child = snap->root;
	if (r == 0) {
		if ((r = snap_index(fs->snaps, snap, &idx)) < 0)
			return r;
		r = cairn_index_lookup(idx, dir, name, strlen(name), &child);
		if (r < 0)
			return snap_index_error(fs->snaps, idx, r);
	}
	r = snap_getattr(fs, snap, child, &e->attr);
	e->ino = e->attr.st_ino;
	return r;
}

static void op_lookup(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	struct fuse_entry_param e;

	count_request(req, lookups);
	int r = do_lookup(fuse_req_userdata(req), parent, name, &e);

	if (r == -ENOENT) {
		/* A negative entry with a timeout: the kernel caches the miss. */
		memset(&e, 0, sizeof(e));
		e.entry_timeout = TIMEOUT;
		fuse_reply_entry(req, &e);
	} else if (r < 0) {
		fuse_reply_err(req, -r);
	} else {
		fuse_reply_entry(req, &e);
	}
}

static void op_forget(fuse_req_t req, fuse_ino_t ino, uint64_t nlookup)
{
	(void)ino;
	(void)nlookup;
	fuse_reply_none(req);
}

static void op_forget_multi(fuse_req_t req, size_t count, struct fuse_forget_data *forgets)
{
	(void)count;
	(void)forgets;
	fuse_reply_none(req);
}

static int do_readlink(struct fs *fs, fuse_ino_t ino, const char **ret_target)
{
	struct snap *snap;
	struct cairn_index *idx;
	uint64_t sino;
	size_t len;

	int r = snap_table_index(fs->snaps, ino, -EINVAL, &snap, &idx, &sino);
	if (r < 0)
		return r;
	r = cairn_index_readlink(idx, sino, ret_target, &len);
	return r < 0 ? snap_index_error(fs->snaps, idx, r) : 0;
}

static void op_readlink(fuse_req_t req, fuse_ino_t ino)
{
	const char *target;

	count_request(req, readlinks);
	int r = do_readlink(fuse_req_userdata(req), ino, &target);
	if (r < 0)
		fuse_reply_err(req, -r);
	else
		fuse_reply_readlink(req, target);
}

/* ---- directories ---- */

static int do_opendir(struct fs *fs, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct stat st;

	int r = do_getattr(fs, ino, &st);
	if (r < 0)
		return r;
	if (!S_ISDIR(st.st_mode))
		return -ENOTDIR;
	fi->cache_readdir = 1;
	fi->keep_cache = 1;
	return 0;
}

static void op_opendir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct fs *fs = fuse_req_userdata(req);

	count_request(req, opendirs);
	/* The kernel then opens every directory itself, with the same
	 * cache_readdir and keep_cache, and sends no OPENDIR or RELEASEDIR. */
	if (fs->no_opendir) {
		fuse_reply_err(req, ENOSYS);
		return;
	}
	int r = do_opendir(fs, ino, fi);

	if (r < 0)
		fuse_reply_err(req, -r);
	else
		fuse_reply_open(req, fi);
}

struct dir_out {
	fuse_req_t req;
	char *buf;
	size_t size, used;
	bool plus;
};

/* Adds one entry; returns false once the buffer is full. */
static bool dir_add(struct dir_out *out, const char *name, const struct stat *st, off_t next)
{
	size_t room = out->size - out->used;
	size_t n;

	if (out->plus) {
		struct fuse_entry_param e = {.ino = st->st_ino,
					     .generation = 1,
					     .attr = *st,
					     .attr_timeout = TIMEOUT,
					     .entry_timeout = TIMEOUT};
		/* "." and ".." carry no lookup: the kernel counts none for them. */
		if (strcmp(name, ".") == 0 || strcmp(name, "..") == 0)
			e.ino = 0;
		n = fuse_add_direntry_plus(out->req, out->buf + out->used, room, name, &e, next);
	} else {
		n = fuse_add_direntry(out->req, out->buf + out->used, room, name, st, next);
	}
	if (n > room)
		return false;
	out->used += n;
	return true;
}

/* The snapshots shown now: a refresh may publish another view meanwhile;
 * this listing goes on with the one it took. */
static int readdir_root(struct fs *fs, struct dir_out *out, off_t off)
{
	const struct snap_view *view = snap_table_view(fs->snaps);
	off_t count = (off_t)view->count;
	struct stat st;

	for (off_t pos = off; pos < count + 2; pos++) {
		struct snap *snap = pos < 2 ? NULL : view->snaps[pos - 2];
		const char *name = pos == 0 ? "." : pos == 1 ? ".." : snap->name;
		if (pos < 2)
			fill_root_stat(fs, &st);
		else if (snap_getattr(fs, snap, snap->root, &st) < 0)
			continue; /* a damaged snapshot is logged and left out */
		if (!dir_add(out, name, &st, pos + 1))
			break;
	}
	return 0;
}

static int readdir_snap(struct fs *fs, struct snap *snap, uint64_t dir, struct dir_out *out,
			off_t off)
{
	struct cairn_index *idx;
	struct cairn_index_dirent d;
	struct stat st;

	int r = snap_index(fs->snaps, snap, &idx);
	if (r < 0)
		return r;
	for (off_t pos = off;; pos++) {
		const char *name = pos == 0 ? "." : "..";
		uint64_t ino = dir;
		if (pos >= 2) {
			r = cairn_index_readdir(idx, dir, (uint64_t)pos - 2, &d);
			if (r == 0)
				break;
			if (r < 0)
				return snap_index_error(fs->snaps, idx, r);
			name = d.name;
			ino = d.ino;
		}
		r = snap_getattr(fs, snap, ino, &st);
		if (r < 0)
			return r;
		if (!dir_add(out, name, &st, pos + 1))
			break;
	}
	return 0;
}

/* A directory merged from several sources (union.c): "." and "..", then
 * each name once. */
static int readdir_union(struct fs *fs, const struct union_dir *dir, fuse_ino_t ino,
			 struct dir_out *out, off_t off)
{
	const char *name;
	struct stat st;
	int r;

	for (off_t pos = off;; pos++) {
		if (pos < 2) {
			name = pos == 0 ? "." : "..";
			r = do_getattr(fs, ino, &st);
		} else if ((r = union_readdir(fs, dir, (size_t)pos - 2, &name, &st)) == 0) {
			break;
		}
		if (r < 0)
			return r;
		if (!dir_add(out, name, &st, pos + 1))
			break;
	}
	return 0;
}

static int do_readdir(struct fs *fs, fuse_ino_t ino, off_t off, struct dir_out *out)
{
	const struct union_dir *dir = fs->merge ? union_find(fs->merge, ino) : NULL;
	struct snap *snap;
	uint64_t sino;

	if (dir)
		return readdir_union(fs, dir, ino, out, off);
	int r = snap_table_decode(fs->snaps, ino, &snap, &sino);
	if (r == SNAP_STORE_ROOT)
		return readdir_root(fs, out, off);
	return r < 0 ? r : readdir_snap(fs, snap, sino, out, off);
}

static void reply_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, bool plus)
{
	struct dir_out out = {.req = req, .size = size, .plus = plus};

	count_request(req, readdirs);
	_cleanup_free_ char *buf = out.buf = malloc(size ? size : 1);
	int r = buf ? do_readdir(fuse_req_userdata(req), ino, off, &out) : -ENOMEM;
	if (r < 0)
		fuse_reply_err(req, -r);
	else
		fuse_reply_buf(req, buf, out.used);
}

static void op_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		       struct fuse_file_info *fi)
{
	(void)fi;
	reply_readdir(req, ino, size, off, false);
}

static void op_readdirplus(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
			   struct fuse_file_info *fi)
{
	(void)fi;
	reply_readdir(req, ino, size, off, true);
}

static void op_releasedir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	(void)ino;
	(void)fi;
	fuse_reply_err(req, 0);
}

/* ---- statfs and xattrs ---- */

static void op_statfs(fuse_req_t req, fuse_ino_t ino)
{
	struct fs *fs = fuse_req_userdata(req);
	struct cairn_store_stats stats = {0};
	struct statvfs st = {0};

	(void)ino;
	cairn_store_stats(fs->store, &stats);
	st.f_bsize = 4096;
	st.f_frsize = 4096;
	st.f_blocks = (fsblkcnt_t)((stats.pack_bytes + 4095) / 4096);
	st.f_files = (fsfilcnt_t)snap_table_inode_count(fs->snaps);
	st.f_namemax = 255;
	fuse_reply_statfs(req, &st);
}

/* transport: the channel this very request came over (transport.c). */
static int stats_text(struct fs *fs, fuse_req_t req, char *buf, size_t size)
{
	const struct fs_stats *s = &fs->stats;

	return snprintf(buf, size,
			"passthrough=%d reads=%llu opens_passthrough=%llu opens_cached=%llu "
			"opens_direct=%llu blobs_made=%llu read_errors=%llu reads_growing=%llu "
			"neighbours=%llu transport=%s\n",
			(int)passthrough_on(fs->pt), (unsigned long long)atomic_load(&s->reads),
			(unsigned long long)atomic_load(&s->opens_passthrough),
			(unsigned long long)atomic_load(&s->opens_cached),
			(unsigned long long)atomic_load(&s->opens_direct),
			(unsigned long long)blob_cache_made(fs->blobs),
			(unsigned long long)atomic_load(&s->read_errors),
			(unsigned long long)atomic_load(&s->reads_growing),
			(unsigned long long)read_path_neighbours(fs->reads), transport_of(req));
}

/* The request counters, appended to the stats line (replacing its "\n"),
 * and the daemon's pid, which `cairn umount` waits on. */
static int requests_text(struct fs *fs, char *buf, size_t size)
{
	const struct fs_stats *s = &fs->stats;

	return snprintf(buf, size,
			" lookups=%llu getattrs=%llu readlinks=%llu opendirs=%llu readdirs=%llu"
			" refreshes=%llu refresh_changes=%llu pid=%ld\n",
			(unsigned long long)atomic_load(&s->lookups),
			(unsigned long long)atomic_load(&s->getattrs),
			(unsigned long long)atomic_load(&s->readlinks),
			(unsigned long long)atomic_load(&s->opendirs),
			(unsigned long long)atomic_load(&s->readdirs),
			(unsigned long long)atomic_load(&s->refreshes),
			(unsigned long long)atomic_load(&s->refresh_changes), (long)getpid());
}

static void reply_xattr_value(fuse_req_t req, const void *value, size_t len, size_t size)
{
	if (size == 0)
		fuse_reply_xattr(req, len);
	else if (len > size)
		fuse_reply_err(req, ERANGE);
	else
		fuse_reply_buf(req, value, len);
}

/* File capabilities grant privileges on exec like a setuid bit, and the
 * kernel reads them through getxattr: an archive's are shown only with
 * -o caps, whatever -o suid says. */
static bool xattr_hidden(const struct fs *fs, const char *name)
{
	return !fs->o.caps && strcmp(name, CAPS_XATTR) == 0;
}

static int do_getxattr(struct fs *fs, fuse_ino_t ino, const char *name,
		       struct cairn_index_xattr *ret)
{
	struct snap *snap;
	struct cairn_index *idx;
	uint64_t sino;

	if (xattr_hidden(fs, name))
		return -ENODATA;
	int r = snap_table_index(fs->snaps, ino, -ENODATA, &snap, &idx, &sino);
	if (r < 0)
		return r;
	r = cairn_index_getxattr(idx, sino, name, ret);
	return r < 0 ? snap_index_error(fs->snaps, idx, r) : 0;
}

static void op_getxattr(fuse_req_t req, fuse_ino_t ino, const char *name, size_t size)
{
	struct fs *fs = fuse_req_userdata(req);
	struct cairn_index_xattr x;
	char text[400];

	/* The mount's counters, on its root only, for tests and the curious. */
	if (ino == FUSE_ROOT_ID && strcmp(name, STATS_XATTR) == 0) {
		int n = stats_text(fs, req, text, sizeof(text));
		n += requests_text(fs, text + n - 1, sizeof(text) - (size_t)n + 1) - 1;
		reply_xattr_value(req, text, (size_t)n, size);
		return;
	}
	int r = do_getxattr(fs, ino, name, &x);
	if (r < 0)
		fuse_reply_err(req, -r);
	else
		reply_xattr_value(req, x.value, x.value_size, size);
}

/* The names of ino's xattrs into buf (when it has room) and their length;
 * the store's root has none. */
static int do_listxattr(struct fs *fs, fuse_ino_t ino, char *buf, size_t size, size_t *ret_len)
{
	struct snap *snap;
	struct cairn_index *idx;
	struct cairn_index_xattr x;
	uint64_t sino;
	size_t len = 0;

	int r = snap_table_index(fs->snaps, ino, SNAP_STORE_ROOT, &snap, &idx, &sino);
	if (r == SNAP_STORE_ROOT) {
		*ret_len = 0;
		return 0;
	}
	if (r < 0)
		return r;
	if (size && !buf)
		return -ENOMEM;
	for (size_t pos = 0;; pos++) {
		r = cairn_index_xattr(idx, sino, pos, &x);
		if (r == 0)
			break;
		if (r < 0)
			return snap_index_error(fs->snaps, idx, r);
		if (xattr_hidden(fs, x.name))
			continue;
		if (buf && len + x.name_len + 1 <= size)
			memcpy(buf + len, x.name, x.name_len + 1);
		len += x.name_len + 1;
	}
	*ret_len = len;
	return 0;
}

static void op_listxattr(fuse_req_t req, fuse_ino_t ino, size_t size)
{
	size_t len = 0;

	_cleanup_free_ char *buf = size ? malloc(size) : NULL;
	int r = do_listxattr(fuse_req_userdata(req), ino, buf, size, &len);
	if (r < 0)
		fuse_reply_err(req, -r);
	else
		reply_xattr_value(req, buf ? buf : "", len, size);
}

/* ---- everything that would change the tree ---- */

static void op_erofs(fuse_req_t req)
{
	fuse_reply_err(req, EROFS);
}

static void op_setattr(fuse_req_t req, fuse_ino_t ino, struct stat *attr, int to_set,
		       struct fuse_file_info *fi)
{
	(void)ino, (void)attr, (void)to_set, (void)fi;
	op_erofs(req);
}

static void op_mknod(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode, dev_t rdev)
{
	(void)parent, (void)name, (void)mode, (void)rdev;
	op_erofs(req);
}

static void op_mkdir(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode)
{
	(void)parent, (void)name, (void)mode;
	op_erofs(req);
}

static void op_unlink(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	(void)parent, (void)name;
	op_erofs(req);
}

static void op_symlink(fuse_req_t req, const char *link, fuse_ino_t parent, const char *name)
{
	(void)link, (void)parent, (void)name;
	op_erofs(req);
}

static void op_rename(fuse_req_t req, fuse_ino_t parent, const char *name, fuse_ino_t newparent,
		      const char *newname, unsigned int flags)
{
	(void)parent, (void)name, (void)newparent, (void)newname, (void)flags;
	op_erofs(req);
}

static void op_link(fuse_req_t req, fuse_ino_t ino, fuse_ino_t newparent, const char *newname)
{
	(void)ino, (void)newparent, (void)newname;
	op_erofs(req);
}

static void op_write(fuse_req_t req, fuse_ino_t ino, const char *buf, size_t size, off_t off,
		     struct fuse_file_info *fi)
{
	(void)ino, (void)buf, (void)size, (void)off, (void)fi;
	op_erofs(req);
}

static void op_create(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode,
		      struct fuse_file_info *fi)
{
	(void)parent, (void)name, (void)mode, (void)fi;
	op_erofs(req);
}

static void op_setxattr(fuse_req_t req, fuse_ino_t ino, const char *name, const char *value,
			size_t size, int flags)
{
	(void)ino, (void)name, (void)value, (void)size, (void)flags;
	op_erofs(req);
}

static void op_removexattr(fuse_req_t req, fuse_ino_t ino, const char *name)
{
	(void)ino, (void)name;
	op_erofs(req);
}

/* The requests whose answer never changes, turned off at the first one:
 * OPENDIR, and OPEN where no open can pass through (passthrough needs its
 * OPEN, and the kernel's no_open is for every file of the connection). */
static void fs_init_round_trips(struct fs *fs, struct fuse_conn_info *conn)
{
	fs->no_opendir = conn_want(conn, FUSE_CAP_NO_OPENDIR_SUPPORT);
	fs->no_open = !passthrough_on(fs->pt) && conn_want(conn, FUSE_CAP_NO_OPEN_SUPPORT);
	/* Attributes with the names (always, the default) spare the stats
	 * that follow a listing their LOOKUPs; names only (never) spare a
	 * names-only walk the attributes. The kernel's heuristic (auto) was
	 * slower than either on the linux tree (BENCHMARKS.md, issue 9). */
	conn_unwant(conn, FUSE_CAP_READDIRPLUS);
	conn_unwant(conn, FUSE_CAP_READDIRPLUS_AUTO);
	if (fs->o.readdirplus != CAIRN_RDPLUS_NEVER && conn_want(conn, FUSE_CAP_READDIRPLUS) &&
	    fs->o.readdirplus == CAIRN_RDPLUS_AUTO)
		conn_want(conn, FUSE_CAP_READDIRPLUS_AUTO);
}

/* What init negotiates with the kernel, and the log line saying which read
 * path is in use and why. */
static void op_init(void *userdata, struct fuse_conn_info *conn)
{
	struct fs *fs = userdata;
	const char *why = passthrough_init_conn(fs->pt, conn);

	if (passthrough_on(fs->pt))
		mount_log(&fs->log, CAIRN_LOG_INFO,
			  "passthrough reads on: files of %llu bytes and more are read by the "
			  "kernel from verified blobs in %s (files whose blob is still being "
			  "made are read through cairn meanwhile)",
			  (unsigned long long)fs->o.passthrough_min, fs->o.cache_dir);
	else
		mount_log(&fs->log, CAIRN_LOG_INFO,
			  "passthrough reads off (%s): reads come through cairn",
			  why ? why : "the kernel refused it");
	fs_init_round_trips(fs, conn);
}

const struct fuse_lowlevel_ops cairn_fs_ops = {
	.init = op_init,
	.lookup = op_lookup,
	.forget = op_forget,
	.forget_multi = op_forget_multi,
	.getattr = op_getattr,
	.readlink = op_readlink,
	.opendir = op_opendir,
	.readdir = op_readdir,
	.readdirplus = op_readdirplus,
	.releasedir = op_releasedir,
	.open = op_open,
	.read = op_read,
	.release = op_release,
	.lseek = op_lseek,
	.statfs = op_statfs,
	.getxattr = op_getxattr,
	.listxattr = op_listxattr,
	.setattr = op_setattr,
	.mknod = op_mknod,
	.mkdir = op_mkdir,
	.unlink = op_unlink,
	.rmdir = op_unlink,
	.symlink = op_symlink,
	.rename = op_rename,
	.link = op_link,
	.write = op_write,
	.create = op_create,
	.setxattr = op_setxattr,
	.removexattr = op_removexattr,
};
