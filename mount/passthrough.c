/* passthrough.c: FUSE passthrough reads (libfuse 3.17 and Linux 6.9+): the
 * table of backing ids registered with the kernel, the fallback opens that
 * keep their inode from passing through, and the read path each open
 * takes: small files through the chunk cache into the page cache
 * (keep_cache), larger ones through passthrough to a verified blob, or,
 * while their blob is being made, through the fallback path: direct_io
 * where the kernel lets a direct_io open be mapped, else the page cache.
 * The kernel refuses a passthrough open (EIO) of an inode that a fallback
 * open has in its caching mode (mapped, or not direct_io), and a mapping
 * (ENODEV) or a reply of a fallback open of an inode that passes through;
 * the daemon cannot see a mapping, so no inode passes through while any
 * fallback open of it lives. meson builds passthrough_none.c instead
 * against an older libfuse.
 */
#include "mount_fuse.h"

#include <string.h>

/* A passthrough backing id shared by every open file with the same file id,
 * released on the last close. */
struct backing {
	struct cairn_id file_id;
	int backing_id;
	unsigned opens;
	struct backing *next;
};

struct passthrough {
	const struct mount_log *log; /* borrowed */
	struct blob_cache *blobs;    /* borrowed; NULL: none */
	bool wanted;                 /* not -o nopassthrough */
	uint64_t passthrough_min, background_min;
	atomic_bool on;       /* decided at init, turned off on EPERM */
	bool ever;            /* it was on at init */
	bool map_direct;      /* the kernel maps direct_io opens */
	pthread_mutex_t lock; /* protects backings and fallback */
	struct backing *backings;
	struct open_file *fallback; /* no passthrough open for these inodes */
};

static struct backing *backing_find_locked(struct passthrough *pt, const struct cairn_id *file_id)
{
	for (struct backing *b = pt->backings; b; b = b->next)
		if (cairn_id_compare(&b->file_id, file_id) == 0)
			return b;
	return NULL;
}

static bool fallback_has_locked(struct passthrough *pt, const struct open_file *of)
{
	for (struct open_file *u = pt->fallback; u; u = u->fallback_next)
		if (u->idx == of->idx && u->ino == of->ino)
			return true;
	return false;
}

/* Drops a released fallback open: its inode may pass through again once
 * no other fallback open of it lives (the kernel left its caching mode
 * before it sent the RELEASE). */
static void fallback_remove(struct passthrough *pt, struct open_file *of)
{
	pthread_mutex_lock(&pt->lock);
	for (struct open_file **p = &pt->fallback; of->fallback && *p; p = &(*p)->fallback_next) {
		if (*p == of) {
			*p = of->fallback_next;
			break;
		}
	}
	of->fallback = false;
	pthread_mutex_unlock(&pt->lock);
}

/* The one place a backing id is released: the last open of this content
 * closes the id and drops the backing, whether the open ends in a RELEASE
 * or its reply failed. */
void passthrough_release(struct passthrough *pt, fuse_req_t req, struct open_file *of)
{
	fallback_remove(pt, of);
	if (!of->backing)
		return;
	pthread_mutex_lock(&pt->lock);
	struct backing *b = TAKE_PTR(of->backing);
	if (--b->opens == 0) {
		/* The last open of this content: only now may the id go. */
		fuse_passthrough_close(req, b->backing_id);
		for (struct backing **p = &pt->backings; *p; p = &(*p)->next) {
			if (*p == b) {
				*p = b->next;
				break;
			}
		}
		free(b);
	}
	pthread_mutex_unlock(&pt->lock);
}

/* Registers fd as the backing file of the open, or joins the backing id an
 * earlier open of the same content registered: the kernel wants one id per
 * inode, and inodes with the same content may share it. Otherwise (no fd,
 * or a fallback open of the inode lives) the open is to be a fallback
 * open, and is recorded as one in the same locked step, so that no
 * passthrough open of the inode is handed out until it is released. */
static int backing_attach(struct passthrough *pt, fuse_req_t req, struct open_file *of, int fd,
			  struct fuse_file_info *fi)
{
	struct backing *b = NULL;
	int r = 0;

	pthread_mutex_lock(&pt->lock);
	bool blocked = fallback_has_locked(pt, of);
	if (!blocked)
		b = backing_find_locked(pt, &of->file.file_id);
	if (!b && !blocked && fd >= 0) {
		int id = fuse_passthrough_open(req, fd);
		if (id > 0 && (b = calloc(1, sizeof(*b)))) {
			*b = (struct backing){.file_id = of->file.file_id, .backing_id = id};
			b->next = pt->backings;
			pt->backings = b;
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
		of->fallback = true;
		of->fallback_next = pt->fallback;
		pt->fallback = of;
	}
	pthread_mutex_unlock(&pt->lock);
	return r;
}

static void passthrough_failed(struct passthrough *pt, int r)
{
	if (r != -EPERM && r != -EOPNOTSUPP && r != -EINVAL)
		return;
	if (atomic_exchange(&pt->on, false))
		mount_log(pt->log, CAIRN_LOG_WARNING,
			  "passthrough reads off: the kernel refused a backing file (%s); "
			  "all reads now come through the daemon",
			  strerror(-r));
}

/* Returns 0 with the open set up to pass through, or -errno to fall back
 * (the open then is a fallback open). */
static int open_blob(struct passthrough *pt, fuse_req_t req, struct open_file *of,
		     struct fuse_file_info *fi)
{
	pthread_mutex_lock(&pt->lock);
	bool attached = backing_find_locked(pt, &of->file.file_id) != NULL;
	pthread_mutex_unlock(&pt->lock);
	if (attached)
		return backing_attach(pt, req, of, -1, fi);
	bool inline_work = of->file.size < pt->background_min;
	int fd = blob_cache_open(pt->blobs, of->idx, of->ino, &of->file, inline_work);
	int r = backing_attach(pt, req, of, fd, fi);
	if (fd >= 0)
		close(fd);
	if (r < 0 && fd >= 0)
		passthrough_failed(pt, r);
	return r;
}

/* A fallback open reads through the daemon: direct_io where the kernel
 * maps such opens, else through the page cache (which it always maps). */
static enum open_path fallback_open(struct passthrough *pt, struct fuse_file_info *fi)
{
	if (!pt->map_direct)
		return OPEN_CACHED;
	fi->direct_io = 1;
	return OPEN_DIRECT;
}

enum open_path passthrough_open(struct passthrough *pt, fuse_req_t req, struct open_file *of,
				struct fuse_file_info *fi)
{
	bool big = of->file.size >= pt->passthrough_min && !of->file.sparse;

	if (big && atomic_load(&pt->on)) {
		if (open_blob(pt, req, of, fi) == 0)
			return OPEN_PASSTHROUGH;
		return fallback_open(pt, fi);
	}
	if (big && pt->ever) {
		/* Passthrough was turned off, but an open of this inode may still
		 * pass through: join its backing id, else a fallback open. */
		if (backing_attach(pt, req, of, -1, fi) == 0)
			return OPEN_PASSTHROUGH;
		return fallback_open(pt, fi);
	}
	/* Never passed through: the page cache may keep what it read. */
	fi->keep_cache = 1;
	return OPEN_CACHED;
}

bool passthrough_on(struct passthrough *pt)
{
	return atomic_load(&pt->on);
}

const char *passthrough_init_conn(struct passthrough *pt, struct fuse_conn_info *conn)
{
	const char *why = NULL;

	if (!pt->wanted)
		why = "-o nopassthrough";
	else if (!pt->blobs)
		why = "there is no usable blob cache";
	else if (!(conn->capable_ext & FUSE_CAP_PASSTHROUGH))
		why = "the kernel does not offer it (it needs Linux 6.9+ built with FUSE passthrough)";
	/* Without it the kernel fails a direct_io open's mmap(MAP_SHARED)
	 * with ENODEV, so fallback opens then go through the page cache.
	 * Every kernel with passthrough (6.9) has it (6.6). */
	if (!why)
		pt->map_direct = fuse_set_feature_flag(conn, FUSE_CAP_DIRECT_IO_ALLOW_MMAP);
	if (!why && !pt->map_direct)
		mount_log(pt->log, CAIRN_LOG_INFO,
			  "the kernel does not map direct_io opens: files whose blob is being "
			  "made are read through the page cache meanwhile");
	if (!why && fuse_set_feature_flag(conn, FUSE_CAP_PASSTHROUGH)) {
		/* Blobs may live on a stacked filesystem (overlayfs in containers). */
		conn->max_backing_stack_depth = FUSE_BACKING_STACKED_OVER;
		atomic_store(&pt->on, true);
		pt->ever = true;
	}
	fuse_unset_feature_flag(conn, FUSE_CAP_WRITEBACK_CACHE);
	fuse_set_feature_flag(conn, FUSE_CAP_PARALLEL_DIROPS);
	fuse_set_feature_flag(conn, FUSE_CAP_CACHE_SYMLINKS);
	return why;
}

bool conn_want(struct fuse_conn_info *conn, uint64_t flag)
{
	return fuse_set_feature_flag(conn, flag);
}

void conn_unwant(struct fuse_conn_info *conn, uint64_t flag)
{
	fuse_unset_feature_flag(conn, flag);
}

int passthrough_new(const struct cairn_mount_options *o, struct blob_cache *blobs,
		    const struct mount_log *log, struct passthrough **ret)
{
	struct passthrough *pt = calloc(1, sizeof(*pt));

	if (!pt)
		return -ENOMEM;
	pt->log = log;
	pt->blobs = blobs;
	pt->wanted = o->passthrough;
	pt->passthrough_min = o->passthrough_min;
	pt->background_min = o->background_min;
	pthread_mutex_init(&pt->lock, NULL);
	*ret = pt;
	return 0;
}

void passthrough_free(struct passthrough *pt)
{
	if (!pt)
		return;
	while (pt->backings) {
		struct backing *next = pt->backings->next;
		free(pt->backings);
		pt->backings = next;
	}
	pthread_mutex_destroy(&pt->lock);
	free(pt);
}
