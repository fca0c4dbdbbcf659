/* fs.c: the FUSE low-level operations. Every operation answers exactly one
 * reply; the work is done by helpers that return -errno, the op_* functions
 * only turn that into the reply. Metadata comes from the mapped snapshot
 * indexes, so nothing here allocates per inode and forget has nothing to do.
 * Opens pick the read path: small files through the chunk cache into the
 * page cache (keep_cache), larger ones through passthrough to a verified
 * blob, or, while their blob is being made, through the fallback path with
 * direct_io, which the kernel lets a later passthrough open coexist with.
 */
#include "mount_internal.h"

#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

/* Everything is immutable: the kernel may cache names and attributes for as
 * long as it likes. */
#define TIMEOUT 86400.0

#define STATS_XATTR "user.cairn.stats"

void fs_log(struct fs *fs, enum cairn_log_level level, const char *fmt, ...)
{
	char line[600];
	va_list ap;

	if (!fs->o.log)
		return;
	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	fs->o.log(fs->o.log_userdata, level, line);
}

/* ---- inodes and snapshots ---- */

static struct snap *snap_by_slot(struct fs *fs, uint64_t slot)
{
	for (size_t s = slot & (fs->slot_map_cap - 1);; s = (s + 1) & (fs->slot_map_cap - 1)) {
		uint32_t index = fs->slot_map[s];
		if (index == 0)
			return NULL;
		if (fs->snaps[index - 1].slot == slot)
			return &fs->snaps[index - 1];
	}
}

int fs_decode(struct fs *fs, fuse_ino_t ino, struct snap **ret_snap, uint64_t *ret_ino)
{
	if (!fs->whole_store) {
		*ret_snap = &fs->snaps[0];
		*ret_ino = ino;
		return 0;
	}
	if (ino == FUSE_ROOT_ID)
		return 1;
	struct snap *snap = snap_by_slot(fs, ino >> SLOT_SHIFT);
	if (!snap)
		return -ENOENT;
	*ret_snap = snap;
	*ret_ino = ino & ((1ull << SLOT_SHIFT) - 1);
	return 0;
}

fuse_ino_t fs_encode(const struct snap *snap, uint64_t ino)
{
	return snap->slot ? (fuse_ino_t)(snap->slot << SLOT_SHIFT | ino) : (fuse_ino_t)ino;
}

int fs_index(struct fs *fs, struct snap *snap, struct cairn_index **ret)
{
	struct cairn_index *idx = atomic_load_explicit(&snap->idx, memory_order_acquire);
	int r = 0;

	if (idx) {
		*ret = idx;
		return 0;
	}
	pthread_mutex_lock(&snap->open_lock);
	idx = atomic_load(&snap->idx);
	if (!idx) {
		idx = cairn_index_new();
		r = idx ? cairn_index_open(idx, fs->store, snap->name) : -ENOMEM;
		if (r == 0 && fs->whole_store) {
			struct cairn_index_info info;
			cairn_index_info(idx, &info);
			if (info.inode_count >= (1ull << SLOT_SHIFT))
				r = -EFBIG;
		}
		if (r < 0) {
			fs_log(fs, CAIRN_LOG_ERROR, "snapshot %s: %s", snap->name,
			       idx ? cairn_index_error(idx) : "out of memory");
			cairn_index_free(TAKE_PTR(idx));
		} else {
			cairn_index_prefetch(idx);
			atomic_store_explicit(&snap->idx, idx, memory_order_release);
		}
	}
	pthread_mutex_unlock(&snap->open_lock);
	if (r < 0)
		return r == -ENOMEM ? r : -EIO;
	*ret = idx;
	return 0;
}

static struct snap *snap_by_name(struct fs *fs, const char *name)
{
	size_t lo = 0, hi = fs->snap_count;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int c = strcmp(fs->snaps[mid].name, name);
		if (c == 0)
			return &fs->snaps[mid];
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return NULL;
}

/* Index errors that mean damage are EIO to the kernel (and logged). */
static int kernel_error(struct fs *fs, struct cairn_index *idx, int r)
{
	if (r == -EBADMSG) {
		fs_log(fs, CAIRN_LOG_ERROR, "%s", cairn_index_error(idx));
		return EIO;
	}
	return -r;
}

/* ---- attributes ---- */

static void fill_stat(const struct fs *fs, const struct snap *snap,
		      const struct cairn_index_stat *in, struct stat *st)
{
	memset(st, 0, sizeof(*st));
	st->st_ino = fs_encode(snap, in->ino);
	st->st_mode = in->mode;
	if (!fs->o.suid)
		st->st_mode &= ~(mode_t)(S_ISUID | S_ISGID);
	if (fs->o.umask >= 0)
		st->st_mode &= ~(mode_t)(fs->o.umask & 07777);
	st->st_nlink = in->nlink;
	st->st_uid = fs->o.uid >= 0 ? (uid_t)fs->o.uid : in->uid;
	st->st_gid = fs->o.gid >= 0 ? (gid_t)fs->o.gid : in->gid;
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
	st->st_nlink = 2 + (nlink_t)fs->snap_count;
	st->st_uid = fs->o.uid >= 0 ? (uid_t)fs->o.uid : fs->owner_uid;
	st->st_gid = fs->o.gid >= 0 ? (gid_t)fs->o.gid : fs->owner_gid;
	st->st_blksize = 4096;
	st->st_mtim.tv_sec = fs->start_sec;
	st->st_atim = st->st_ctim = st->st_mtim;
}

static int do_getattr(struct fs *fs, struct snap *snap, uint64_t ino, struct stat *st)
{
	struct cairn_index *idx;
	struct cairn_index_stat in;

	int r = fs_index(fs, snap, &idx);
	if (r < 0)
		return -r;
	r = cairn_index_getattr(idx, ino, &in);
	if (r < 0)
		return kernel_error(fs, idx, r);
	fill_stat(fs, snap, &in, st);
	return 0;
}

static void op_getattr(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct fs *fs = fuse_req_userdata(req);
	struct snap *snap;
	uint64_t sino;
	struct stat st;

	(void)fi;
	int r = fs_decode(fs, ino, &snap, &sino);
	if (r == 1)
		fill_root_stat(fs, &st);
	else if (r < 0)
		r = -r;
	else
		r = do_getattr(fs, snap, sino, &st);
	if (r > 1 || r < 0)
		fuse_reply_err(req, r);
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
	int r = fs_decode(fs, parent, &snap, &dir);
	if (r < 0)
		return -r;
	if (r == 1 && !(snap = snap_by_name(fs, name)))
		return ENOENT;
	if (r == 0) {
		if ((r = fs_index(fs, snap, &idx)) < 0)
			return -r;
		r = cairn_index_lookup(idx, dir, name, strlen(name), &child);
		if (r < 0)
			return kernel_error(fs, idx, r);
	}
	r = do_getattr(fs, snap, child, &e->attr);
	e->ino = e->attr.st_ino;
	return r;
}

static void op_lookup(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	struct fuse_entry_param e;
	int r = do_lookup(fuse_req_userdata(req), parent, name, &e);

	if (r == ENOENT) {
		/* A negative entry with a timeout: the kernel caches the miss. */
		memset(&e, 0, sizeof(e));
		e.entry_timeout = TIMEOUT;
		fuse_reply_entry(req, &e);
	} else if (r) {
		fuse_reply_err(req, r);
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

static void op_readlink(fuse_req_t req, fuse_ino_t ino)
{
	struct fs *fs = fuse_req_userdata(req);
	struct snap *snap;
	struct cairn_index *idx;
	uint64_t sino;
	const char *target;
	size_t len;

	int r = fs_decode(fs, ino, &snap, &sino);
	if (r == 1)
		r = -EINVAL;
	if (r == 0)
		r = fs_index(fs, snap, &idx);
	if (r == 0)
		r = cairn_index_readlink(idx, sino, &target, &len);
	if (r == -EBADMSG)
		r = -kernel_error(fs, idx, r);
	if (r < 0)
		fuse_reply_err(req, -r);
	else
		fuse_reply_readlink(req, target);
}

/* ---- directories ---- */

static void op_opendir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct fs *fs = fuse_req_userdata(req);
	struct snap *snap;
	uint64_t sino;
	struct stat st;

	int r = fs_decode(fs, ino, &snap, &sino);
	if (r == 0)
		r = -do_getattr(fs, snap, sino, &st);
	if (r == 0 && !S_ISDIR(st.st_mode))
		r = -ENOTDIR;
	if (r < 0) {
		fuse_reply_err(req, -r);
		return;
	}
	fi->cache_readdir = 1;
	fi->keep_cache = 1;
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

static int readdir_root(struct fs *fs, struct dir_out *out, off_t off)
{
	struct stat st;

	for (off_t pos = off; pos < (off_t)fs->snap_count + 2; pos++) {
		const char *name = pos == 0 ? "." : pos == 1 ? ".." : fs->snaps[pos - 2].name;
		if (pos < 2)
			fill_root_stat(fs, &st);
		else if (do_getattr(fs, &fs->snaps[pos - 2], CAIRN_INDEX_ROOT, &st) != 0)
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

	int r = fs_index(fs, snap, &idx);
	if (r < 0)
		return -r;
	for (off_t pos = off;; pos++) {
		const char *name = pos == 0 ? "." : "..";
		uint64_t ino = dir;
		if (pos >= 2) {
			r = cairn_index_readdir(idx, dir, (uint64_t)pos - 2, &d);
			if (r == 0)
				break;
			if (r < 0)
				return kernel_error(fs, idx, r);
			name = d.name;
			ino = d.ino;
		}
		r = do_getattr(fs, snap, ino, &st);
		if (r)
			return r;
		if (!dir_add(out, name, &st, pos + 1))
			break;
	}
	return 0;
}

static void do_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, bool plus)
{
	struct fs *fs = fuse_req_userdata(req);
	struct snap *snap;
	uint64_t sino;
	struct dir_out out = {.req = req, .size = size, .plus = plus};

	_cleanup_free_ char *buf = out.buf = malloc(size ? size : 1);
	if (!buf) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	int r = fs_decode(fs, ino, &snap, &sino);
	if (r == 1)
		r = readdir_root(fs, &out, off);
	else if (r == 0)
		r = readdir_snap(fs, snap, sino, &out, off);
	else
		r = -r;
	if (r)
		fuse_reply_err(req, r);
	else
		fuse_reply_buf(req, buf, out.used);
}

static void op_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		       struct fuse_file_info *fi)
{
	(void)fi;
	do_readdir(req, ino, size, off, false);
}

static void op_readdirplus(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
			   struct fuse_file_info *fi)
{
	(void)fi;
	do_readdir(req, ino, size, off, true);
}

static void op_releasedir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	(void)ino;
	(void)fi;
	fuse_reply_err(req, 0);
}

/* ---- open, read, release ---- */

#if CAIRN_HAVE_PASSTHROUGH
static struct backing *backing_find_locked(struct fs *fs, const struct cairn_id *file_id)
{
	for (struct backing *b = fs->backings; b; b = b->next)
		if (cairn_id_compare(&b->file_id, file_id) == 0)
			return b;
	return NULL;
}

static bool unsettled_has_locked(struct fs *fs, const struct open_file *of)
{
	for (struct open_file *u = fs->unsettled; u; u = u->unsettled_next)
		if (u->snap == of->snap && u->ino == of->ino)
			return true;
	return false;
}

/* Once the kernel surely has the direct_io open (it reads through it, or
 * releases it), the inode may pass through again. */
static void open_settle(struct fs *fs, struct open_file *of)
{
	if (!atomic_load(&of->unsettled))
		return;
	pthread_mutex_lock(&fs->backing_lock);
	for (struct open_file **p = &fs->unsettled; *p; p = &(*p)->unsettled_next) {
		if (*p == of) {
			*p = of->unsettled_next;
			break;
		}
	}
	atomic_store(&of->unsettled, false);
	pthread_mutex_unlock(&fs->backing_lock);
}

/* Registers fd as the backing file of the open, or joins the backing id an
 * earlier open of the same content registered: the kernel wants one id per
 * inode, and inodes with the same content may share it. Otherwise (no fd,
 * or a direct_io open of the inode not yet settled) the open is to be
 * direct_io, and is recorded as unsettled in the same locked step, so that
 * no passthrough open of the inode can overtake it in the kernel. */
static int backing_attach(struct fs *fs, fuse_req_t req, struct open_file *of, int fd,
			  struct fuse_file_info *fi)
{
	struct backing *b = NULL;
	int r = 0;

	pthread_mutex_lock(&fs->backing_lock);
	bool blocked = unsettled_has_locked(fs, of);
	if (!blocked)
		b = backing_find_locked(fs, &of->file.file_id);
	if (!b && !blocked && fd >= 0) {
		int id = fuse_passthrough_open(req, fd);
		if (id > 0 && (b = calloc(1, sizeof(*b)))) {
			*b = (struct backing){.file_id = of->file.file_id, .backing_id = id};
			b->next = fs->backings;
			fs->backings = b;
		} else if (id > 0) {
			fuse_passthrough_close(req, id);
			r = -ENOMEM;
		} else {
			r = errno ? -errno : -EIO;
		}
	}
	if (b) {
		b->opens++;
		of->backing = b;
		fi->backing_id = b->backing_id;
	} else {
		r = r ? r : -ENOENT;
		atomic_store(&of->unsettled, true);
		of->unsettled_next = fs->unsettled;
		fs->unsettled = of;
	}
	pthread_mutex_unlock(&fs->backing_lock);
	return r;
}

static void passthrough_failed(struct fs *fs, int r)
{
	if (r != -EPERM && r != -EOPNOTSUPP && r != -EINVAL)
		return;
	if (atomic_exchange(&fs->passthrough, false))
		fs_log(fs, CAIRN_LOG_WARNING,
		       "passthrough reads off: the kernel refused a backing file (%s); "
		       "all reads now come through the daemon",
		       strerror(-r));
}

/* Returns 0 with the open set up to pass through, or -errno to fall back
 * to direct_io (the open then is unsettled). */
static int open_passthrough(struct fs *fs, fuse_req_t req, struct open_file *of,
			    struct fuse_file_info *fi)
{
	pthread_mutex_lock(&fs->backing_lock);
	bool attached = backing_find_locked(fs, &of->file.file_id) != NULL;
	pthread_mutex_unlock(&fs->backing_lock);
	if (attached)
		return backing_attach(fs, req, of, -1, fi);
	bool inline_work = of->file.size < fs->o.background_min;
	int fd = blob_cache_open(fs->blobs, of->snap, of->ino, &of->file, inline_work);
	int r = backing_attach(fs, req, of, fd, fi);
	if (fd >= 0)
		close(fd);
	if (r < 0 && fd >= 0)
		passthrough_failed(fs, r);
	return r;
}
#else
static void open_settle(struct fs *fs, struct open_file *of)
{
	(void)fs;
	(void)of;
}
#endif

static void open_list_add(struct fs *fs, struct open_file *of)
{
	pthread_mutex_lock(&fs->open_lock);
	of->open_next = fs->open_files;
	if (of->open_next)
		of->open_next->open_prev = of;
	fs->open_files = of;
	pthread_mutex_unlock(&fs->open_lock);
}

static void open_file_free(struct fs *fs, struct open_file *of)
{
	pthread_mutex_lock(&fs->open_lock);
	if (of->open_prev)
		of->open_prev->open_next = of->open_next;
	else
		fs->open_files = of->open_next;
	if (of->open_next)
		of->open_next->open_prev = of->open_prev;
	pthread_mutex_unlock(&fs->open_lock);
	free(of);
}

static int do_open(struct fs *fs, fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi,
		   struct open_file **ret)
{
	struct cairn_index *idx;
	struct open_file *of;

	if ((fi->flags & O_ACCMODE) != O_RDONLY || (fi->flags & (O_TRUNC | O_CREAT)))
		return EROFS;
	of = calloc(1, sizeof(*of));
	if (!of)
		return ENOMEM;
	int r = fs_decode(fs, ino, &of->snap, &of->ino);
	r = r == 1 ? -EISDIR : r;
	if (r == 0)
		r = fs_index(fs, of->snap, &idx);
	if (r == 0)
		r = cairn_index_file(idx, of->ino, &of->file);
	if (r < 0) {
		free(of);
		return r == -EBADMSG ? kernel_error(fs, idx, r) : -r;
	}
	fi->noflush = 1;
	bool big = of->file.size >= fs->o.passthrough_min && !of->file.sparse;
	if (big && atomic_load(&fs->passthrough)) {
#if CAIRN_HAVE_PASSTHROUGH
		if (open_passthrough(fs, req, of, fi) == 0) {
			atomic_fetch_add(&fs->stats.opens_passthrough, 1);
			*ret = of;
			return 0;
		}
#endif
		fi->direct_io = 1;
	} else if (big && fs->passthrough_ever) {
		/* Passthrough was turned off, but an open of this inode may still
		 * pass through: join its backing id, else direct_io (a cached
		 * open must not meet a passthrough one). */
#if CAIRN_HAVE_PASSTHROUGH
		if (backing_attach(fs, req, of, -1, fi) == 0) {
			atomic_fetch_add(&fs->stats.opens_passthrough, 1);
			*ret = of;
			return 0;
		}
#endif
		fi->direct_io = 1;
	} else {
		/* Never passed through: the page cache may keep what it read. */
		fi->keep_cache = 1;
	}
	(void)req;
	atomic_fetch_add(fi->keep_cache ? &fs->stats.opens_cached : &fs->stats.opens_direct, 1);
	*ret = of;
	return 0;
}

static void op_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct fs *fs = fuse_req_userdata(req);
	struct open_file *of;

	int r = do_open(fs, req, ino, fi, &of);
	if (r) {
		fuse_reply_err(req, r);
		return;
	}
	fi->fh = (uint64_t)(uintptr_t)of;
	open_list_add(fs, of);
	if (fuse_reply_open(req, fi) != 0) {
		/* The open was interrupted: no release will come for it. */
		open_settle(fs, of);
#if CAIRN_HAVE_PASSTHROUGH
		if (of->backing) {
			pthread_mutex_lock(&fs->backing_lock);
			of->backing->opens--;
			pthread_mutex_unlock(&fs->backing_lock);
		}
#endif
		open_file_free(fs, of);
	}
}

static void op_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		    struct fuse_file_info *fi)
{
	struct fs *fs = fuse_req_userdata(req);
	struct open_file *of = (struct open_file *)(uintptr_t)fi->fh;

	(void)ino;
	atomic_fetch_add(&fs->stats.reads, 1);
	open_settle(fs, of);
	uint8_t *buf = fs_reply_buffer(fs, size ? size : 1);
	if (!buf) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	ssize_t n = fs_read_fallback(fs, of, (uint64_t)off, buf, size);
	if (n < 0) {
		atomic_fetch_add(&fs->stats.read_errors, 1);
		fuse_reply_err(req, n == -EBADMSG ? EIO : (int)-n);
	} else {
		fuse_reply_buf(req, (const char *)buf, (size_t)n);
	}
}

static void op_release(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct fs *fs = fuse_req_userdata(req);
	struct open_file *of = (struct open_file *)(uintptr_t)fi->fh;

	(void)ino;
	open_settle(fs, of);
#if CAIRN_HAVE_PASSTHROUGH
	if (of->backing) {
		pthread_mutex_lock(&fs->backing_lock);
		struct backing *b = of->backing;
		if (--b->opens == 0) {
			/* The last open of this content: only now may the id go. */
			fuse_passthrough_close(req, b->backing_id);
			for (struct backing **p = &fs->backings; *p; p = &(*p)->next) {
				if (*p == b) {
					*p = b->next;
					break;
				}
			}
			free(b);
		}
		pthread_mutex_unlock(&fs->backing_lock);
	}
#endif
	open_file_free(fs, of);
	fuse_reply_err(req, 0);
}

/* SEEK_DATA and SEEK_HOLE, from the file's runs; the kernel does the rest. */
static int64_t do_lseek(struct fs *fs, struct open_file *of, uint64_t off, int whence)
{
	struct cairn_index *idx;
	struct cairn_index_run run;
	uint32_t i;

	if (whence != SEEK_DATA && whence != SEEK_HOLE)
		return -EINVAL;
	if (off >= of->file.size)
		return -ENXIO;
	int r = fs_index(fs, of->snap, &idx);
	if (r == 0)
		r = cairn_index_find_run(idx, of->ino, off, &i);
	for (; r == 0 && i < of->file.run_count; i++) {
		r = cairn_index_run(idx, of->ino, i, &run);
		if (r == 0 && run.hole == (whence == SEEK_HOLE))
			return (int64_t)(run.offset > off ? run.offset : off);
	}
	if (r < 0)
		return r == -EBADMSG ? -kernel_error(fs, idx, r) : r;
	return whence == SEEK_HOLE ? (int64_t)of->file.size : -ENXIO;
}

static void op_lseek(fuse_req_t req, fuse_ino_t ino, off_t off, int whence,
		     struct fuse_file_info *fi)
{
	struct open_file *of = (struct open_file *)(uintptr_t)fi->fh;

	(void)ino;
	int64_t r = do_lseek(fuse_req_userdata(req), of, (uint64_t)off, whence);
	if (r < 0)
		fuse_reply_err(req, (int)-r);
	else
		fuse_reply_lseek(req, (off_t)r);
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
	for (size_t i = 0; i < fs->snap_count; i++) {
		struct cairn_index *idx = atomic_load(&fs->snaps[i].idx);
		struct cairn_index_info info;
		if (idx) {
			cairn_index_info(idx, &info);
			st.f_files += (fsfilcnt_t)info.inode_count;
		}
	}
	st.f_namemax = 255;
	fuse_reply_statfs(req, &st);
}

static int stats_text(struct fs *fs, char *buf, size_t size)
{
	const struct fs_stats *s = &fs->stats;

	return snprintf(buf, size,
			"passthrough=%d reads=%llu opens_passthrough=%llu opens_cached=%llu "
			"opens_direct=%llu blobs_made=%llu read_errors=%llu\n",
			(int)atomic_load(&fs->passthrough),
			(unsigned long long)atomic_load(&s->reads),
			(unsigned long long)atomic_load(&s->opens_passthrough),
			(unsigned long long)atomic_load(&s->opens_cached),
			(unsigned long long)atomic_load(&s->opens_direct),
			(unsigned long long)atomic_load(&s->blobs_made),
			(unsigned long long)atomic_load(&s->read_errors));
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

static void op_getxattr(fuse_req_t req, fuse_ino_t ino, const char *name, size_t size)
{
	struct fs *fs = fuse_req_userdata(req);
	struct snap *snap;
	struct cairn_index *idx;
	struct cairn_index_xattr x;
	uint64_t sino;
	char text[400];

	/* The mount's counters, on its root only, for tests and the curious. */
	if (ino == FUSE_ROOT_ID && strcmp(name, STATS_XATTR) == 0) {
		int n = stats_text(fs, text, sizeof(text));
		reply_xattr_value(req, text, (size_t)n, size);
		return;
	}
	int r = fs_decode(fs, ino, &snap, &sino);
	r = r == 1 ? -ENODATA : r;
	if (r == 0)
		r = fs_index(fs, snap, &idx);
	if (r == 0)
		r = cairn_index_getxattr(idx, sino, name, &x);
	if (r < 0)
		fuse_reply_err(req, r == -EBADMSG ? kernel_error(fs, idx, r) : -r);
	else
		reply_xattr_value(req, x.value, x.value_size, size);
}

static int list_xattrs(struct fs *fs, struct cairn_index *idx, uint64_t ino, char *buf, size_t size,
		       size_t *ret_len)
{
	struct cairn_index_xattr x;
	size_t len = 0;

	for (size_t pos = 0;; pos++) {
		int r = cairn_index_xattr(idx, ino, pos, &x);
		if (r == 0)
			break;
		if (r < 0)
			return kernel_error(fs, idx, r);
		if (buf && len + x.name_len + 1 <= size)
			memcpy(buf + len, x.name, x.name_len + 1);
		len += x.name_len + 1;
	}
	*ret_len = len;
	return 0;
}

static void op_listxattr(fuse_req_t req, fuse_ino_t ino, size_t size)
{
	struct fs *fs = fuse_req_userdata(req);
	struct snap *snap;
	struct cairn_index *idx;
	uint64_t sino;
	size_t len = 0;

	_cleanup_free_ char *buf = size ? malloc(size) : NULL;
	int r = fs_decode(fs, ino, &snap, &sino);
	if (r == 1) {
		reply_xattr_value(req, "", 0, size);
		return;
	}
	r = r < 0 ? -r : -fs_index(fs, snap, &idx);
	if (r == 0 && size && !buf)
		r = ENOMEM;
	if (r == 0)
		r = list_xattrs(fs, idx, sino, buf, size, &len);
	if (r)
		fuse_reply_err(req, r);
	else
		reply_xattr_value(req, buf, len, size);
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

static void op_init(void *userdata, struct fuse_conn_info *conn)
{
	fs_init_conn(userdata, conn);
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
