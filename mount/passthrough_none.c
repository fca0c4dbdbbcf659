/* passthrough_none.c: the passthrough table where libfuse is older than
 * 3.17 and has no passthrough (meson builds it instead of passthrough.c):
 * every open reads through the daemon and keeps what it read in the page
 * cache, and init negotiates through the older capability API.
 */
#include "mount_fuse.h"

struct passthrough {
	bool unused; /* nothing to keep */
};

int passthrough_new(const struct cairn_mount_options *o, struct blob_cache *blobs,
		    const struct mount_log *log, struct passthrough **ret)
{
	struct passthrough *pt = calloc(1, sizeof(*pt));

	(void)o, (void)blobs, (void)log;
	if (!pt)
		return -ENOMEM;
	*ret = pt;
	return 0;
}

void passthrough_free(struct passthrough *pt)
{
	free(pt);
}

const char *passthrough_init_conn(struct passthrough *pt, struct fuse_conn_info *conn)
{
	(void)pt;
	conn->want &= ~(unsigned)FUSE_CAP_WRITEBACK_CACHE;
	conn->want |= conn->capable & (FUSE_CAP_PARALLEL_DIROPS | FUSE_CAP_CACHE_SYMLINKS);
	return "cairn was built against libfuse older than 3.17";
}

bool conn_want(struct fuse_conn_info *conn, uint64_t flag)
{
	if (!(conn->capable & flag))
		return false;
	conn->want |= (unsigned)flag;
	return true;
}

void conn_unwant(struct fuse_conn_info *conn, uint64_t flag)
{
	conn->want &= ~(unsigned)flag;
}

bool passthrough_on(struct passthrough *pt)
{
	(void)pt;
	return false;
}

enum open_path passthrough_open(struct passthrough *pt, fuse_req_t req, struct open_file *of,
				struct fuse_file_info *fi)
{
	(void)pt, (void)req, (void)of;
	/* Nothing ever passes through: the page cache may keep what it read. */
	fi->keep_cache = 1;
	return OPEN_CACHED;
}

void passthrough_release(struct passthrough *pt, fuse_req_t req, struct open_file *of)
{
	(void)pt, (void)req, (void)of;
}
