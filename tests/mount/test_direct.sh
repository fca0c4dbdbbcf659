#!/bin/bash
# test_direct.sh: as root, cairn makes the mount itself (mount/direct_mount.c)
# and runs no helper: where util-linux keeps its own table
# (/run/mount/utab exists), libfuse would fork `/bin/mount -f` to record
# each mount there and `/bin/umount` to take it down, some 35 ms of a cold
# start. In a private mount namespace with a utab (a tmpfs on /run/mount)
# and /bin/mount and /bin/umount bound over by wrappers that log each run
# and go on to the real ones: a mount, its mount table entry (source,
# type, options, as libfuse makes it), allow_other and suid, a daemon
# stopped by SIGTERM taking its mount down, and the mount taken down by
# `cairn umount`, `fusermount3 -u` and umount(8); only the last two run a
# helper (their own).
#
# usage: test_direct.sh CAIRN MTOOL COMPARE LIB
if [ "$(id -u)" = 0 ] && [ -z "${CAIRN_TEST_DIRECT_NS:-}" ] && command -v unshare >/dev/null; then
	CAIRN_TEST_DIRECT_NS=1 exec unshare -m "$0" "$@"
fi
. "$4" direct "$@"
[ -n "${CAIRN_TEST_DIRECT_NS:-}" ] || skip "needs unshare(1) for a private mount namespace"
need_tools fusermount3

# The namespace: private, with a utab and logging mount(8) and umount(8).
mount --make-rprivate / || skip "cannot make the mount namespace private"
LOG=$WORK/helpers.log
: >"$LOG"
mkdir -p /run/mount && mount -t tmpfs cairn-test /run/mount && : >/run/mount/utab ||
	skip "cannot put a utab on a tmpfs at /run/mount"
for tool in mount umount; do
	real=$(readlink -f "/bin/$tool")
	cp "$real" "$WORK/real-$tool"
	printf '#!/bin/sh\necho "%s $*" >>%s\nexec %s "$@"\n' "$tool" "$LOG" "$WORK/real-$tool" \
		>"$WORK/log-$tool"
	chmod 755 "$WORK/log-$tool"
	mount --bind "$WORK/log-$tool" "$real" || skip "cannot bind over $real"
done
: >"$LOG"

# helpers_ran WHAT: fails the test if a helper ran since the last call.
helpers_ran() {
	if [ -s "$LOG" ]; then
		fail "$1 ran a helper: $(tr '\n' ';' <"$LOG")"
	else
		pass
	fi
	: >"$LOG"
}

mkdir -p "$WORK/src/dir"
printf 'hello\n' >"$WORK/src/dir/hello"
bsdtar --format pax -cf "$WORK/tree.tar" -C "$WORK/src" .
add tree "$WORK/tree.tar" || fail "cairn add"
mnt=$WORK/mnt

# a plain mount: the entry libfuse would make, the tree, no helper
if mount_at "$mnt" tree; then
	helpers_ran "cairn mount"
	grep -q "^tree@$STORE $mnt fuse.cairn ro,nosuid,nodev,.* 0 0$" /proc/self/mounts &&
		grep " $mnt " /proc/self/mounts | grep -q "user_id=0,group_id=0" && pass ||
		fail "the mount table says: $(grep " $mnt " /proc/self/mounts)"
	[ "$(cat "$mnt/dir/hello")" = hello ] && pass || fail "reading through the mount"
	unmount "$mnt" && pass || fail "cairn umount"
	helpers_ran "cairn umount"
else
	fail "cairn mount"
fi

# allow_other and suid: the flags and options as libfuse would pass them
if mount_at "$mnt" -o allow_other,suid tree; then
	line=$(grep " $mnt " /proc/self/mounts)
	case $line in
	*nosuid*) fail "-o suid: the mount is nosuid: $line" ;;
	*allow_other*default_permissions* | *default_permissions*allow_other*) pass ;;
	*) fail "-o allow_other: the mount table says: $line" ;;
	esac
	helpers_ran "cairn mount -o allow_other,suid"
	# (fusermount3 itself runs `umount --fake` for the utab)
	fusermount3 -u "$mnt" && ! is_mounted "$mnt" && pass || fail "fusermount3 -u"
	wait_gone "${DAEMON[$mnt]}" || fail "the daemon did not exit after fusermount3 -u"
	: >"$LOG"
else
	fail "cairn mount -o allow_other,suid"
fi

# SIGTERM: the daemon takes its own mount down (libfuse would run umount)
if mount_at "$mnt" tree; then
	: >"$LOG"
	kill -TERM "${DAEMON[$mnt]}"
	wait_gone "${DAEMON[$mnt]}" || fail "the daemon did not exit on SIGTERM"
	is_mounted "$mnt" && fail "the daemon left its mount behind on SIGTERM" || pass
	helpers_ran "a daemon stopped by SIGTERM"
else
	fail "cairn mount (for SIGTERM)"
fi

# umount(8), as users do
if mount_at "$mnt" tree; then
	umount "$mnt" && ! is_mounted "$mnt" && pass || fail "umount(8)"
	wait_gone "${DAEMON[$mnt]}" || fail "the daemon did not exit after umount(8)"
else
	fail "cairn mount (for umount)"
fi

finish
