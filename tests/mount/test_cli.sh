#!/bin/bash
# test_cli.sh: `cairn mount` and `cairn umount` as a user meets them.
#  - Refusals: a missing mount point, a non-directory, a busy mount point,
#    a missing store, an unknown snapshot: exit 1 with one line on stderr,
#    nothing mounted and no daemon left; a bad option: exit 2.
#  - The one-step form `cairn mount ARCHIVE MOUNTPOINT` adds and mounts
#    (into a store it creates); the second time the add is a no-op.
#  - umount unmounts (by a relative path, through a symlink, after the
#    daemon died) and returns once the daemon has exited (a gc right after
#    it runs), says "not mounted" of what is not, and refuses what is
#    not a cairn mount (a tmpfs); the mount table shows SNAPSHOT@STORE as
#    the source; SIGTERM and SIGINT to the daemon unmount too.
#  - A name collision in the one-step form advises --replace or --name.
#  - A user who may not open /dev/fuse is told that.
#  - Writes fail with EROFS (touch, mkdir, rm, echo >, and every write
#    call: mtool.py erofs).
#  - Options: uid=/gid=/umask= in stat; setuid bits and device nodes
#    dropped or unusable unless -o suid / -o dev; allow_other lets other
#    users in, with default_permissions (a 0600 file of uid 1000 stays
#    unreadable to uid 1001); a relative cache= is relative to where
#    cairn mount ran.
#
# usage: test_cli.sh CAIRN MTOOL COMPARE LIB
. "$4" cli "$@"

SRC=$WORK/src
mkdir -p "$SRC/dir"
printf 'public\n' >"$SRC/public"
printf 'mine\n' >"$SRC/private"
chmod 600 "$SRC/private"
chown 1000:1000 "$SRC/private" "$SRC/public"
printf 'suid\n' >"$SRC/suid"
chmod 4755 "$SRC/suid"
printf 'sgid\n' >"$SRC/sgid"
chmod 2750 "$SRC/sgid"
mknod "$SRC/null" c 1 3
chmod 666 "$SRC/null"
random_file "$SRC/big" 300000 31
chmod 640 "$SRC/big"
bsdtar --format pax -cf "$WORK/tree.tar" -C "$SRC" .
add tree "$WORK/tree.tar" || fail "cairn add"
mnt=$WORK/mnt
mkdir -p "$mnt"

nothing_left() {
	! is_mounted "$1" && ! daemon_pid "$1" >/dev/null
}

# refused WHAT STATUS ARGS...: cairn ARGS fails with STATUS, one line on
# stderr, and leaves nothing mounted at $mnt.
refused() {
	local what=$1 want=$2
	shift 2
	"$CAIRN" "$@" >"$WORK/out" 2>"$WORK/err"
	local r=$?
	if [ $r != "$want" ]; then
		fail "$what: exit $r, expected $want; stderr: $(cat "$WORK/err")"
	elif [ "$want" = 1 ] && [ "$(wc -l <"$WORK/err")" != 1 ]; then
		fail "$what: not one line on stderr: $(cat "$WORK/err")"
	elif ! nothing_left "$mnt"; then
		fail "$what: something was left mounted at $mnt"
	else
		pass
	fi
}

# ---- refusals ----

refused "a missing mount point" 1 -s "$STORE" mount -o "cache=$CACHE" tree "$WORK/missing"
[ ! -e "$WORK/missing" ] || fail "the missing mount point was made"
: >"$WORK/file"
refused "a mount point that is a file" 1 -s "$STORE" mount -o "cache=$CACHE" tree "$WORK/file"
refused "a missing store" 1 -s "$WORK/no-store" mount -o "cache=$CACHE" tree "$mnt"
[ ! -e "$WORK/no-store" ] || fail "mounting from a missing store made it"
refused "an unknown snapshot" 1 -s "$STORE" mount -o "cache=$CACHE" no-such-snapshot "$mnt"
refused "an unknown option" 2 -s "$STORE" mount -o "cache=$CACHE,bogus" tree "$mnt"
refused "a bad uid" 2 -s "$STORE" mount -o "uid=-1" tree "$mnt"
if mount_at "$mnt" tree; then
	pid=${DAEMON[$mnt]}
	"$CAIRN" -s "$STORE" mount -o "cache=$CACHE" tree "$mnt" 2>"$WORK/err"
	r=$?
	if [ $r = 1 ] && [ "$(wc -l <"$WORK/err")" = 1 ] && grep -q busy "$WORK/err"; then
		pass
	else
		fail "a busy mount point: exit $r: $(cat "$WORK/err")"
	fi
	[ "$(grep -c " $mnt " /proc/self/mounts)" = 1 ] || fail "a second mount stacked on $mnt"
	[ "$(daemon_pid "$mnt")" = "$pid" ] || fail "a second daemon is serving $mnt"
	cat "$mnt/public" >/dev/null || fail "the first mount broke"
	unmount "$mnt" && pass || fail "cairn umount"
	nothing_left "$mnt" || fail "after cairn umount, $mnt is still served"
else
	fail "cairn mount"
fi
refused "umount of what is not mounted" 1 umount "$mnt"
grep -q "cannot unmount $mnt: not mounted" "$WORK/err" || fail "umount of what is not mounted: $(cat "$WORK/err")"
refused "umount of a missing directory" 1 umount "$WORK/missing"
grep -q "No such file or directory" "$WORK/err" || fail "umount of a missing directory: $(cat "$WORK/err")"

# ---- umount: cairn mounts only ----

# A tmpfs is refused and stays mounted (root's umount2 would take it).
mkdir -p "$WORK/tmpfs"
if mount -t tmpfs cairn-test "$WORK/tmpfs"; then
	"$CAIRN" umount "$WORK/tmpfs" >"$WORK/out" 2>"$WORK/err"
	r=$?
	if [ $r = 1 ] && is_mounted "$WORK/tmpfs" && [ "$(wc -l <"$WORK/err")" = 1 ] &&
		grep -q "not a cairn mount (tmpfs is mounted there" "$WORK/err"; then
		pass
	else
		fail "cairn umount of a tmpfs: exit $r, $(is_mounted "$WORK/tmpfs" || echo unmounted): $(cat "$WORK/err")"
	fi
	umount "$WORK/tmpfs" || umount -l "$WORK/tmpfs"
else
	fail "cannot mount a tmpfs to test with"
fi
# The mount table names the source SNAPSHOT@STORE (or STORE), type
# fuse.cairn; umount takes the mount point by a relative path or a
# symlink, and a mount whose daemon died (ENOTCONN) too.
source_type() {
	awk -v m="$1" '$5 == m { for (i = 7; $i != "-"; i++); print $(i + 2), $(i + 1) }' /proc/self/mountinfo
}
if mount_at "$mnt" tree; then
	[ "$(source_type "$mnt")" = "tree@$(realpath "$STORE") fuse.cairn" ] && pass ||
		fail "the mount table says $(source_type "$mnt")"
	# umount returns once the daemon is gone (not only the mount): a gc
	# right after it must not find the store in use.
	(cd "$WORK" && "$CAIRN" umount mnt) && ! is_mounted "$mnt" && gone_now "${DAEMON[$mnt]}" &&
		pass || fail "cairn umount by a relative path (or it returned before the daemon exited)"
	"$CAIRN" -s "$STORE" gc -q 2>"$WORK/err" && pass || fail "gc right after umount: $(cat "$WORK/err")"
fi
if mount_at "$mnt"; then
	[ "$(source_type "$mnt")" = "$(realpath "$STORE") fuse.cairn" ] && pass ||
		fail "the mount table says $(source_type "$mnt") for the whole store"
	ln -sfn mnt "$WORK/mnt-link"
	"$CAIRN" umount "$WORK/mnt-link" && ! is_mounted "$mnt" && wait_gone "${DAEMON[$mnt]}" &&
		pass || fail "cairn umount through a symlink"
fi
if mount_at "$mnt" tree; then
	kill -KILL "${DAEMON[$mnt]}"
	wait_gone "${DAEMON[$mnt]}"
	"$CAIRN" umount "$mnt" 2>"$WORK/err" && ! is_mounted "$mnt" && pass ||
		fail "cairn umount of a mount whose daemon died: $(cat "$WORK/err")"
fi
# SIGTERM with files open (they get no RELEASE: a sanitizer build checks
# the daemon frees them anyway), SIGINT with none.
for sig in TERM INT; do
	if mount_at "$mnt" tree; then
		if [ $sig = TERM ]; then
			exec 8<"$mnt/public" 9<"$mnt/big"
			head -c 10 <&9 >/dev/null
		fi
		kill -$sig "${DAEMON[$mnt]}"
		wait_gone "${DAEMON[$mnt]}" && ! is_mounted "$mnt" && pass ||
			fail "SIG$sig did not unmount $mnt cleanly"
		exec 8<&- 9<&-
	fi
done

# ---- the one-step form ----

cp "$WORK/tree.tar" "$WORK/one-step.tar"
ONE=$WORK/one-store
if "$CAIRN" -s "$ONE" mount -o "cache=$CACHE" "$WORK/one-step.tar" "$mnt" >"$WORK/out" 2>&1; then
	MOUNTS+=("$mnt")
	DAEMON[$mnt]=$(daemon_pid "$mnt")
	cmp -s "$mnt/big" "$SRC/big" && pass || fail "one-step: big differs"
	[ "$("$CAIRN" -s "$ONE" ls)" = one-step ] || fail "one-step: the store has: $("$CAIRN" -s "$ONE" ls)"
	unmount "$mnt" || fail "one-step: unmount"
	snaps=$(ls "$ONE/snapshots" | wc -l)
	if "$CAIRN" -s "$ONE" mount -o "cache=$CACHE" "$WORK/one-step.tar" "$mnt" >"$WORK/out" 2>&1; then
		DAEMON[$mnt]=$(daemon_pid "$mnt")
		grep -q "one-step.tar is already snapshot one-step; mounted at $mnt" "$WORK/out" ||
			fail "one-step again: not said to be there already: $(cat "$WORK/out")"
		[ "$(ls "$ONE/snapshots" | wc -l)" = "$snaps" ] || fail "one-step again: a new snapshot"
		cmp -s "$mnt/big" "$SRC/big" && pass || fail "one-step again: big differs"
		unmount "$mnt" || fail "one-step again: unmount"
	else
		fail "one-step again: $(cat "$WORK/out")"
	fi
else
	fail "one-step: $(cat "$WORK/out")"
fi
# A snapshot of the archive's name that holds other bytes: refused, with
# advice mount can follow (--replace or --name, which it takes as add does).
mkdir -p "$WORK/elsewhere-one"
cp "$WORK/tree.tar" "$WORK/elsewhere-one/one-step.tar"
printf 'more' >>"$WORK/elsewhere-one/one-step.tar"
refused "a name collision" 1 -s "$ONE" mount -o "cache=$CACHE" "$WORK/elsewhere-one/one-step.tar" "$mnt"
if ! grep -q -e "--replace" "$WORK/err" || ! grep -q -e "--name" "$WORK/err"; then
	fail "a name collision advises: $(cat "$WORK/err")"
fi

# ---- writes ----

if mount_at "$mnt" tree; then
	for cmd in "touch $mnt/new" "mkdir $mnt/newdir" "rm -f $mnt/public" "rmdir $mnt/dir" \
		"mv $mnt/public $mnt/moved" "ln -s x $mnt/link" "chmod 777 $mnt/public"; do
		err=$($cmd 2>&1)
		case $err in
		*"Read-only file system"*) pass ;;
		*) fail "'$cmd' did not fail with EROFS: $err" ;;
		esac
	done
	err=$( (echo hi >"$mnt/public") 2>&1)
	case $err in
	*"Read-only file system"*) pass ;;
	*) fail "echo > a file did not fail with EROFS: $err" ;;
	esac
	check "write calls fail with EROFS" python3 "$MTOOL" erofs "$mnt" "$mnt/big" "$mnt/dir"
	[ "$(stat -f -c %T "$mnt")" = fuseblk ] || [ "$(stat -f -c %T "$mnt")" = fuse ] ||
		fail "statfs: $(stat -f "$mnt" 2>&1)"
	cmp -s "$mnt/public" "$SRC/public" || fail "after the writes, public differs"
	unmount "$mnt" || fail "unmount"
fi

# ---- uid, gid, umask, suid, dev ----

mode_owner() {
	stat -c '%a %u %g' "$1"
}
if mount_at "$mnt" -o uid=4321,gid=8765,umask=027 tree; then
	[ "$(mode_owner "$mnt/public")" = "640 4321 8765" ] && pass ||
		fail "uid/gid/umask: public is $(mode_owner "$mnt/public")"
	[ "$(mode_owner "$mnt/dir")" = "750 4321 8765" ] && pass ||
		fail "uid/gid/umask: dir is $(mode_owner "$mnt/dir")"
	[ "$(stat -c '%u %g' "$mnt")" = "4321 8765" ] || fail "uid/gid: the root is $(stat -c '%u %g' "$mnt")"
	unmount "$mnt" || fail "unmount"
fi
if mount_at "$mnt" tree; then
	[ "$(mode_owner "$mnt/public")" = "644 1000 1000" ] && pass ||
		fail "as recorded: public is $(mode_owner "$mnt/public")"
	[ "$(stat -c %a "$mnt/suid") $(stat -c %a "$mnt/sgid")" = "755 750" ] && pass ||
		fail "without -o suid: suid/sgid are $(stat -c %a "$mnt/suid") $(stat -c %a "$mnt/sgid")"
	grep " $mnt " /proc/self/mounts | grep -q nosuid || fail "without -o suid: not nosuid"
	grep " $mnt " /proc/self/mounts | grep -q nodev || fail "without -o dev: not nodev"
	err=$(head -c 1 "$mnt/null" 2>&1)
	case $err in
	*"Permission denied"*) pass ;;
	*) fail "without -o dev, a device node opened: '$err'" ;;
	esac
	unmount "$mnt" || fail "unmount"
fi
if mount_at "$mnt" -o suid,dev tree; then
	[ "$(stat -c %a "$mnt/suid") $(stat -c %a "$mnt/sgid")" = "4755 2750" ] && pass ||
		fail "with -o suid: suid/sgid are $(stat -c %a "$mnt/suid") $(stat -c %a "$mnt/sgid")"
	grep " $mnt " /proc/self/mounts | grep -q -E 'nosuid|nodev' && fail "-o suid,dev: $(grep " $mnt " /proc/self/mounts)"
	head -c 1 "$mnt/null" >/dev/null 2>&1 && pass || fail "with -o dev, the device node does not open"
	[ "$(stat -c %t,%T "$mnt/null")" = "1,3" ] || fail "the device number is $(stat -c %t,%T "$mnt/null")"
	unmount "$mnt" || fail "unmount"
fi

# ---- other users ----

# as USER CMD...: runs CMD as uid/gid USER, no groups.
as() {
	local id=$1
	shift
	setpriv --reuid="$id" --regid="$id" --clear-groups "$@"
}
if command -v setpriv >/dev/null; then
	chmod 755 "$WORK"
	if mount_at "$mnt" tree; then
		as 1001 cat "$mnt/public" >/dev/null 2>&1 &&
			fail "without allow_other, uid 1001 reads the mount" || pass
		unmount "$mnt" || fail "unmount"
	fi
	if mount_at "$mnt" -o allow_other tree; then
		grep " $mnt " /proc/self/mounts | grep -q default_permissions ||
			fail "allow_other without default_permissions: $(grep " $mnt " /proc/self/mounts)"
		as 1001 cat "$mnt/public" >/dev/null && pass || fail "allow_other: uid 1001 cannot read public"
		as 1001 cat "$mnt/private" >/dev/null 2>&1 &&
			fail "allow_other: uid 1001 reads a 0600 file of uid 1000" || pass
		as 1000 cat "$mnt/private" >/dev/null && pass || fail "allow_other: uid 1000 cannot read its own file"
		as 1001 cat "$mnt/big" >/dev/null 2>&1 && fail "allow_other: uid 1001 reads a 0640 file" || pass
		unmount "$mnt" || fail "unmount"
	fi
	# A user who may not open /dev/fuse is told so, not asked about the
	# module. Where /dev/fuse is open to all, a private mount namespace
	# hides it behind a root-only file.
	cp -a "$STORE" "$WORK/nobody-store"
	mkdir -p "$WORK/nobody-mnt"
	chown -R 65534:65534 "$WORK/nobody-store" "$WORK/nobody-mnt"
	MOUNTS+=("$WORK/nobody-mnt")
	: >"$WORK/no-fuse"
	chmod 600 "$WORK/no-fuse"
	nobody_mount=(setpriv --reuid=65534 --regid=65534 --clear-groups env HOME="$WORK/nobody-mnt"
		"$CAIRN" -s "$WORK/nobody-store" mount -o nopassthrough tree "$WORK/nobody-mnt")
	if as 65534 test -r /dev/fuse -a -w /dev/fuse; then
		unshare -m --propagation private sh -c 'mount --bind "$0" /dev/fuse && exec "$@"' \
			"$WORK/no-fuse" "${nobody_mount[@]}" 2>"$WORK/err"
	else
		"${nobody_mount[@]}" 2>"$WORK/err"
	fi
	r=$?
	if [ $r = 1 ] && [ "$(wc -l <"$WORK/err")" = 1 ] && grep -q "/dev/fuse: Permission denied" "$WORK/err" &&
		! grep -q module "$WORK/err"; then
		pass
	else
		fail "a user without /dev/fuse: exit $r: $(cat "$WORK/err")"
	fi
	chmod 700 "$WORK"
else
	echo "note: no setpriv; allow_other not tested"
fi

# ---- a relative cache directory ----

mkdir -p "$WORK/elsewhere"
if (cd "$WORK/elsewhere" && "$CAIRN" -s "$STORE" mount -o cache=rel-cache,passthrough_min=128K tree "$mnt"); then
	MOUNTS+=("$mnt")
	DAEMON[$mnt]=$(daemon_pid "$mnt")
	cmp -s "$mnt/big" "$SRC/big" || fail "cache=rel-cache: big differs"
	[ -n "$(ls "$WORK/elsewhere/rel-cache/blobs" 2>/dev/null)" ] && pass ||
		fail "cache=rel-cache: no blob in the directory cairn mount ran in"
	unmount "$mnt" || fail "unmount"
	[ ! -e /rel-cache ] || {
		fail "cache=rel-cache made /rel-cache"
		rm -rf /rel-cache
	}
else
	fail "cairn mount -o cache=rel-cache"
fi

# File capabilities (the security.capability xattr) act on exec like a
# setuid bit: -o suid alone keeps them hidden, -o caps shows them.
if command -v setcap >/dev/null; then
	mkdir -p "$WORK/capsrc"
	printf '#!/bin/sh\n' >"$WORK/capsrc/tool"
	chmod 755 "$WORK/capsrc/tool"
	if setcap cap_net_raw+ep "$WORK/capsrc/tool" 2>/dev/null; then
		bsdtar --xattrs --format pax -cf "$WORK/caps.tar" -C "$WORK/capsrc" .
		add caps "$WORK/caps.tar" || fail "cairn add caps.tar"
		for opts in suid suid,caps caps; do
			mount_at "$WORK/mcaps" -o "$opts" caps || {
				fail "mount -o $opts"
				continue
			}
			shown=no
			getfattr -n security.capability "$WORK/mcaps/tool" >/dev/null 2>&1 && shown=yes
			listed=no
			getfattr -d -m - "$WORK/mcaps/tool" 2>/dev/null | grep -q '^security.capability=' && listed=yes
			case $opts in *caps*) want=yes ;; *) want=no ;; esac
			[ "$shown/$listed" = "$want/$want" ] && pass ||
				fail "-o $opts: security.capability get=$shown list=$listed, want $want"
			unmount "$WORK/mcaps" || fail "unmount -o $opts"
		done
	else
		echo "setcap failed here: the capability check is left out"
	fi
else
	echo "setcap is not installed: the capability check is left out"
fi

finish
