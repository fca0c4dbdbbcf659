/* transport.c: which channel carries the mount's requests, FUSE over
 * io_uring (libfuse 3.18 built with liburing, the kernel's machine-wide
 * enable_uring switch on; one ring per core, no read(2)/write(2) per
 * request) or /dev/fuse. It is settled in two steps: before the session
 * starts, whether to ask libfuse for io_uring at all (the library, the
 * kernel, -o io_uring / noio_uring), and at INIT, whether the kernel
 * offers it on this connection. Whatever stands in the way, the mount
 * falls back to /dev/fuse with a log line and never fails. transport_none.c
 * stands in before libfuse 3.18.
 */
#include "mount_fuse.h"

#include <dlfcn.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#define URING_SWITCH "/sys/module/fuse/parameters/enable_uring"
#define URING_SYSCTL "/proc/sys/kernel/io_uring_disabled"

/* libfuse 3.18 compiles io_uring in only when its build found liburing,
 * and then links it: it is loaded with libfuse, or io_uring is not there
 * (libfuse would accept -o io_uring and log a failure at INIT). */
bool transport_library_has_uring(void)
{
	void *lib = dlopen("liburing.so.2", RTLD_LAZY | RTLD_NOLOAD);

	if (!lib)
		return false;
	dlclose(lib);
	return true;
}

/* The first byte of a small /sys or /proc file, or -errno. */
static int read_flag(const char *path)
{
	char c;
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		return -errno;
	ssize_t n = read(fd, &c, 1);
	int r = n == 1 ? (unsigned char)c : n < 0 ? -errno : -EIO;
	close(fd);
	return r;
}

static int switch_on(void)
{
	int fd = open(URING_SWITCH, O_WRONLY | O_CLOEXEC);

	if (fd < 0)
		return -errno;
	int r = write(fd, "1", 1) == 1 ? 0 : -errno;
	close(fd);
	return r;
}

/* Why the kernel will not carry this mount over io_uring, or NULL. With
 * -o io_uring, root turns the machine-wide switch on (and says so). */
static const char *kernel_refuses(struct fs *fs, bool forced)
{
	int sysctl = read_flag(URING_SYSCTL);

	/* 2: io_uring off for everyone; 1: for all but root. */
	if (sysctl == '2' || (sysctl == '1' && geteuid() != 0))
		return "io_uring is disabled by the sysctl kernel.io_uring_disabled";
	int on = read_flag(URING_SWITCH);
	if (on == 'Y')
		return NULL;
	if (on != 'N')
		return "this kernel has no FUSE over io_uring (no " URING_SWITCH ")";
	if (!forced)
		return "the kernel's FUSE over io_uring is off: as root, `echo 1 > " URING_SWITCH
		       "` turns it on for the whole machine, or mount with -o io_uring";
	int r = switch_on();
	if (r < 0)
		return r == -EACCES || r == -EPERM
			       ? "the kernel's FUSE over io_uring is off, and only root may turn it "
				 "on (" URING_SWITCH ")"
			       : "the kernel's FUSE over io_uring is off and could not be turned on";
	mount_log(&fs->log, CAIRN_LOG_INFO,
		  "-o io_uring: turned the kernel's FUSE over io_uring on (machine-wide: %s=Y)",
		  URING_SWITCH);
	return NULL;
}

bool transport_prepare(struct fs *fs)
{
	bool forced = fs->o.io_uring == CAIRN_MOUNT_URING_ON;
	const char *why;

	if (fs->o.io_uring == CAIRN_MOUNT_URING_OFF)
		why = "-o noio_uring";
	else if (!transport_library_has_uring())
		why = "this libfuse was built without io_uring; scripts/setup builds one with it";
	else
		why = kernel_refuses(fs, forced);
	/* Said at INIT, with the rest of what the connection settled. */
	fs->transport_why = why;
	return !why;
}

void transport_init_conn(struct fs *fs, struct fuse_conn_info *conn)
{
	enum cairn_log_level level =
		fs->o.io_uring == CAIRN_MOUNT_URING_ON ? CAIRN_LOG_WARNING : CAIRN_LOG_INFO;

	if (fs->transport_why) {
		mount_log(&fs->log, level, "transport: /dev/fuse (%s)", fs->transport_why);
		return;
	}
	if (conn->capable_ext & FUSE_CAP_OVER_IO_URING) {
		fuse_set_feature_flag(conn, FUSE_CAP_OVER_IO_URING);
		mount_log(&fs->log, CAIRN_LOG_INFO,
			  "transport: io_uring (one ring per core; libfuse says so if a ring "
			  "fails to start, and /dev/fuse serves instead)");
		return;
	}
	mount_log(&fs->log, level,
		  "transport: /dev/fuse (the kernel did not offer io_uring on this connection)");
}

const char *transport_of(fuse_req_t req)
{
	return fuse_req_is_uring(req) ? "io_uring" : "dev_fuse";
}

void *transport_reply_buffer(fuse_req_t req, size_t size)
{
	char *payload;
	size_t payload_size;

	if (!fuse_req_is_uring(req) ||
	    fuse_req_get_payload(req, &payload, &payload_size, NULL) != 0 || payload_size < size)
		return NULL;
	return payload;
}
