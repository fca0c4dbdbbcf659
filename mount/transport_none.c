/* transport_none.c: the transport where libfuse is older than 3.18 and
 * has no FUSE over io_uring (meson builds it instead of transport.c):
 * requests always come over /dev/fuse, and the mount says so once.
 */
#include "mount_fuse.h"

bool transport_prepare(struct fs *fs)
{
	(void)fs;
	return false;
}

void transport_init_conn(struct fs *fs, struct fuse_conn_info *conn)
{
	(void)conn;
	if (fs->o.io_uring == CAIRN_MOUNT_URING_OFF)
		mount_log(&fs->log, CAIRN_LOG_INFO, "transport: /dev/fuse (-o noio_uring)");
	else
		mount_log(&fs->log,
			  fs->o.io_uring == CAIRN_MOUNT_URING_ON ? CAIRN_LOG_WARNING
								 : CAIRN_LOG_INFO,
			  "transport: /dev/fuse (libfuse %s has no io_uring; it needs 3.18, which "
			  "scripts/setup builds)",
			  fuse_pkgversion());
}

bool transport_library_has_uring(void)
{
	return false;
}

const char *transport_of(fuse_req_t req)
{
	(void)req;
	return "dev_fuse";
}

void *transport_reply_buffer(fuse_req_t req, size_t size)
{
	(void)req;
	(void)size;
	return NULL;
}
