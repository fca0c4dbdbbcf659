/* files.c: the operations on open regular files: open (the read path is
 * the passthrough table's choice), read through the daemon, release, and
 * lseek's SEEK_DATA and SEEK_HOLE. Like every op, each answers exactly one
 * reply and leaves the work to a do_* helper returning -errno.
 */
#include "mount_fuse.h"

#include <string.h>

/* ---- open, read, release ---- */

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
	growing_put(atomic_load(&of->growing));
	free(of);
}

static void count_open(struct fs *fs, enum open_path path)
{
	atomic_fetch_add(path == OPEN_PASSTHROUGH ? &fs->stats.opens_passthrough
			 : path == OPEN_CACHED    ? &fs->stats.opens_cached
						  : &fs->stats.opens_direct,
			 1);
}

/* The blob of an open's file queued or being made, if any: a READ of a
 * large file comes only through a fallback open, whose blob's worker may
 * have written what it asks for (growing.c). Found at the open, or by a
 * later READ; borrowed from the open. */
static struct growing *open_growing(struct fs *fs, struct open_file *of)
{
	struct growing *g = atomic_load(&of->growing), *none = NULL;

	if (g || !fs->blobs || of->file.size < fs->o.passthrough_min || of->file.sparse)
		return g; /* none is made for a sparse file */
	g = blob_cache_growing(fs->blobs, &of->file.file_id);
	if (g && !atomic_compare_exchange_strong(&of->growing, &none, g)) {
		growing_put(g); /* another READ of the open found it first */
		g = none;
	}
	return g;
}

static int do_open(struct fs *fs, fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi,
		   struct open_file **ret)
{
	struct snap *snap;

	if ((fi->flags & O_ACCMODE) != O_RDONLY || (fi->flags & (O_TRUNC | O_CREAT)))
		return -EROFS;
	_cleanup_free_ struct open_file *of = calloc(1, sizeof(*of));
	if (!of)
		return -ENOMEM;
	int r = snap_table_index(fs->snaps, ino, -EISDIR, &snap, &of->idx, &of->ino);
	if (r < 0)
		return r;
	r = cairn_index_file(of->idx, of->ino, &of->file);
	if (r < 0)
		return snap_index_error(fs->snaps, of->idx, r);
	fi->noflush = 1;
	enum open_path path = passthrough_open(fs->pt, req, of, fi);
	count_open(fs, path);
	if (path != OPEN_PASSTHROUGH)
		open_growing(fs, of);
	*ret = TAKE_PTR(of);
	return 0;
}

void op_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct fs *fs = fuse_req_userdata(req);
	struct open_file *of = NULL;

	/* The kernel then opens files itself (keep_cache), without OPEN or
	 * RELEASE; READs come with no handle (op_read). */
	if (fs->no_open) {
		fuse_reply_err(req, ENOSYS);
		return;
	}
	int r = do_open(fs, req, ino, fi, &of);
	if (r < 0) {
		fuse_reply_err(req, -r);
		return;
	}
	fi->fh = (uint64_t)(uintptr_t)of;
	open_list_add(fs, of);
	if (fuse_reply_open(req, fi) != 0) {
		/* The open was interrupted: no release will come for it. */
		passthrough_release(fs->pt, req, of);
		open_file_free(fs, of);
	}
}

/* The file of a READ or LSEEK: its open's, or without one (no_open) found
 * by inode into *tmp, with the sequential hint of its slot. */
static int file_of(struct fs *fs, fuse_ino_t ino, const struct fuse_file_info *fi,
		   struct open_file *tmp, struct open_file **ret, _Atomic uint64_t **ret_next)
{
	struct snap *snap;

	if (fi->fh) {
		*ret = (struct open_file *)(uintptr_t)fi->fh;
		*ret_next = &(*ret)->next_offset;
		return 0;
	}
	memset(tmp, 0, sizeof(*tmp));
	int r = snap_table_index(fs->snaps, ino, -EISDIR, &snap, &tmp->idx, &tmp->ino);
	if (r < 0)
		return r;
	r = cairn_index_file(tmp->idx, tmp->ino, &tmp->file);
	if (r < 0)
		return snap_index_error(fs->snaps, tmp->idx, r);
	*ret = tmp;
	*ret_next = &fs->seq_hint[ino % (sizeof(fs->seq_hint) / sizeof(fs->seq_hint[0]))];
	return 0;
}

/* Reads through the daemon into the request's buffer in the ring (io_uring)
 * or this thread's reply buffer (/dev/fuse). */
static ssize_t do_read(struct fs *fs, fuse_req_t req, fuse_ino_t ino,
		       const struct fuse_file_info *fi, size_t size, off_t off, uint8_t **ret_buf)
{
	struct open_file tmp, *of;
	_Atomic uint64_t *next;

	int r = file_of(fs, ino, fi, &tmp, &of, &next);
	if (r < 0)
		return r;
	uint8_t *buf = transport_reply_buffer(req, size);
	if (!buf)
		buf = read_path_reply_buffer(fs->reads, size ? size : 1);
	if (!buf)
		return -ENOMEM;
	struct growing *g = of == &tmp ? NULL : open_growing(fs, of);
	ssize_t n = g ? growing_read(g, (uint64_t)off, buf, size) : -EAGAIN;
	if (n >= 0)
		atomic_fetch_add(&fs->stats.reads_growing, 1);
	else
		n = read_path_read(fs->reads, of->idx, of->ino, next, (uint64_t)off, buf, size);
	if (n < 0) {
		atomic_fetch_add(&fs->stats.read_errors, 1);
		return n == -EBADMSG ? -EIO : n;
	}
	*ret_buf = buf;
	return n;
}

void op_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, struct fuse_file_info *fi)
{
	struct fs *fs = fuse_req_userdata(req);
	uint8_t *buf;

	atomic_fetch_add(&fs->stats.reads, 1);
	ssize_t n = do_read(fs, req, ino, fi, size, off, &buf);
	if (n < 0)
		fuse_reply_err(req, (int)-n);
	else
		fuse_reply_buf(req, (const char *)buf, (size_t)n);
}

void op_release(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct fs *fs = fuse_req_userdata(req);
	struct open_file *of = (struct open_file *)(uintptr_t)fi->fh;

	(void)ino;
	passthrough_release(fs->pt, req, of);
	open_file_free(fs, of);
	fuse_reply_err(req, 0);
}

/* SEEK_DATA and SEEK_HOLE, from the file's runs; the kernel does the rest. */
static int64_t do_lseek(struct fs *fs, fuse_ino_t ino, const struct fuse_file_info *fi,
			uint64_t off, int whence)
{
	struct cairn_index_run run;
	struct open_file tmp, *of;
	_Atomic uint64_t *next;
	uint32_t i;

	if (whence != SEEK_DATA && whence != SEEK_HOLE)
		return -EINVAL;
	int r = file_of(fs, ino, fi, &tmp, &of, &next);
	if (r < 0)
		return r;
	if (off >= of->file.size)
		return -ENXIO;
	r = cairn_index_find_run(of->idx, of->ino, off, &i);
	for (; r == 0 && i < of->file.run_count; i++) {
		r = cairn_index_run(of->idx, of->ino, i, &run);
		if (r == 0 && run.hole == (whence == SEEK_HOLE))
			return (int64_t)(run.offset > off ? run.offset : off);
	}
	if (r < 0)
		return snap_index_error(fs->snaps, of->idx, r);
	return whence == SEEK_HOLE ? (int64_t)of->file.size : -ENXIO;
}

void op_lseek(fuse_req_t req, fuse_ino_t ino, off_t off, int whence, struct fuse_file_info *fi)
{
	int64_t r = do_lseek(fuse_req_userdata(req), ino, fi, (uint64_t)off, whence);
	if (r < 0)
		fuse_reply_err(req, (int)-r);
	else
		fuse_reply_lseek(req, (off_t)r);
}
