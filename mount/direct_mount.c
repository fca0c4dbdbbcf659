/* direct_mount.c: the mount itself, made by cairn when it runs as root.
 * libfuse makes the same mount(2) call, but then, where util-linux keeps a
 * table of its own (/run/mount/utab exists), it forks `/bin/mount -f` to
 * record the mount there and waits for it: about 35 ms of a cold mount
 * before the first request (docs/BENCHMARKS.md, "Mount start"). That table
 * holds only options the kernel does not keep, and cairn's mounts have
 * none, so cairn makes the call itself (type fuse.cairn, the source, ro,
 * nosuid and nodev unless asked otherwise, allow_other and
 * default_permissions, the /dev/fuse fd, rootmode and the owner, as libfuse
 * passes them) and hands libfuse the connection as /dev/fd/N, its
 * documented way to serve a mount made by someone else. libfuse leaves
 * such a mount alone at exit, so the unmount is cairn's too: lazy, as
 * libfuse's is. Where mount(2) is refused (not root, a kernel without
 * subtypes) libfuse mounts as before, with fusermount3 when not root.
 */
#include "mount_fuse.h"

#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

int direct_mount(const struct cairn_mount_options *o, const char *source, int *ret_fd)
{
	struct stat st;
	char data[256];

	*ret_fd = -1;
	if (geteuid() != 0)
		return -EPERM;
	if (stat(o->mountpoint, &st) < 0)
		return -errno;
	int fd = open("/dev/fuse", O_RDWR | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	snprintf(data, sizeof(data), "%s%sfd=%d,rootmode=%o,user_id=%u,group_id=%u",
		 o->allow_other ? "allow_other," : "",
		 o->default_permissions || o->allow_other ? "default_permissions," : "", fd,
		 (unsigned)(st.st_mode & S_IFMT), (unsigned)getuid(), (unsigned)getgid());
	unsigned long flags = MS_RDONLY | (o->suid ? 0 : MS_NOSUID) | (o->dev ? 0 : MS_NODEV);
	if (mount(source, o->mountpoint, "fuse.cairn", flags, data) < 0) {
		int r = -errno;
		close(fd);
		return r;
	}
	*ret_fd = fd;
	return 0;
}

void direct_unmount(const char *mountpoint, int fd)
{
	struct pollfd pfd = {.fd = fd};

	/* POLLERR: unmounted already (`cairn umount`, `umount -l`), or the
	 * connection was aborted; then there is nothing left to take down. */
	if (poll(&pfd, 1, 0) == 1 && (pfd.revents & POLLERR))
		return;
	(void)umount2(mountpoint, MNT_DETACH | UMOUNT_NOFOLLOW);
}
