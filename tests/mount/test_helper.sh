#!/bin/bash
# test_helper.sh: cairn as mount(8)'s helper. Through symlinks named
# mount.fuse.cairn and mount.cairn to the built binary, run the way mount(8)
# runs a helper (SOURCE MOUNTPOINT -o OPTIONS): SNAPSHOT@STORE mounts one
# snapshot, STORE (and @STORE) the whole store, with mount(8)'s own options
# (ro, rw, noatime, comment=, x-*...) ignored and cairn's applied; the mount
# table shows the source as given. In a private mount namespace with this
# build as /sbin/mount.fuse.cairn: an fstab line mounted by `mount -a`, a
# second `mount -a` that skips it, `umount SOURCE`. If cairn is installed as
# /sbin/mount.fuse.cairn, also `mount -t fuse.cairn`.
#
# usage: test_helper.sh CAIRN MTOOL COMPARE LIB
. "$4" helper "$@"

SRC=$WORK/src
mkdir -p "$SRC/dir" "$WORK/bin"
printf 'hello\n' >"$SRC/dir/hello"
random_file "$SRC/big" 400000 41
bsdtar --format pax -cf "$WORK/tree.tar" -C "$SRC" .
add tree "$WORK/tree.tar" || fail "cairn add"
add other "$WORK/tree.tar" || fail "cairn add other"
ln -s "$CAIRN" "$WORK/bin/mount.fuse.cairn"
ln -s "$CAIRN" "$WORK/bin/mount.cairn"
mnt=$WORK/mnt
mkdir -p "$mnt"

# helper NAME SOURCE OPTIONS: runs the helper as mount(8) would.
helper() {
	MOUNTS+=("$mnt")
	"$WORK/bin/$1" "$2" "$mnt" -o "$3" 2>"$WORK/err"
	local r=$?
	DAEMON[$mnt]=$(daemon_pid "$mnt")
	[ $r = 0 ] || echo "$1 $2: exit $r: $(cat "$WORK/err")"
	return $r
}

if helper mount.fuse.cairn "tree@$STORE" "ro,allow_other,cache=$CACHE,noatime,nodev,nosuid"; then
	check "mount.fuse.cairn tree@STORE: the tree" python3 "$COMPARE" --no-owner "$mnt" "$SRC"
	grep " $mnt " /proc/self/mounts | grep -q allow_other || fail "allow_other was not applied"
	grep -q "^tree@$STORE $mnt fuse.cairn ro," /proc/self/mounts ||
		fail "the mount table says: $(grep " $mnt " /proc/self/mounts)"
	[ "$(stat_of "$mnt" passthrough)" = 1 ] || fail "mount.fuse.cairn: passthrough is off"
	unmount "$mnt" || fail "unmount"
else
	fail "mount.fuse.cairn tree@STORE"
fi

for source in "$STORE" "@$STORE"; do
	if helper mount.cairn "$source" "rw,cache=$CACHE,nopassthrough"; then
		[ "$(ls "$mnt" | tr '\n' ' ')" = "other tree " ] && pass ||
			fail "mount.cairn $source: the root lists $(ls "$mnt")"
		check "mount.cairn $source: the tree" python3 "$COMPARE" --no-owner "$mnt/tree" "$SRC"
		[ "$(stat_of "$mnt" passthrough)" = 0 ] || fail "mount.cairn: -o nopassthrough was lost"
		unmount "$mnt" || fail "unmount"
	else
		fail "mount.cairn $source"
	fi
done

# fstab's comment= and x-name=value options are accepted and ignored.
if helper mount.fuse.cairn "tree@$STORE" "ro,cache=$CACHE,comment=x-gvfs-show,x-systemd.requires=a.service,x-cairn"; then
	pass
	unmount "$mnt" || fail "unmount"
else
	fail "mount.fuse.cairn with comment= and x-*= options"
fi

"$WORK/bin/mount.fuse.cairn" "no-such@$STORE" "$mnt" -o ro 2>"$WORK/err"
r=$?
[ $r = 1 ] && [ "$(wc -l <"$WORK/err")" = 1 ] && ! is_mounted "$mnt" && pass ||
	fail "an unknown snapshot through the helper: exit $r: $(cat "$WORK/err")"

# mount(8) and fstab: in a private mount namespace whose /sbin holds this
# build's helper, `mount -a -T FSTAB` mounts the line, a second one skips
# it as mounted (the mount table shows the source as the line gives it),
# and `umount SOURCE` unmounts it.
fstab_check() {
	local sbin
	sbin=$(readlink -f /sbin)
	mkdir -p "$WORK/sbin"
	ln -sf "$CAIRN" "$WORK/sbin/mount.fuse.cairn"
	printf '%s %s fuse.cairn cache=%s,nofail,comment=cairn-test 0 0\n' "tree@$STORE" "$mnt" "$CACHE" \
		>"$WORK/fstab"
	unshare -m --propagation private bash -c '
		sbin=$1 work=$2 mnt=$3 source=$4
		fails=0
		no() { echo "FAIL: $*"; fails=$((fails + 1)); }
		mounts() { awk -v m="$mnt" "\$5 == m" /proc/self/mountinfo | wc -l; }
		mount --bind "$work/sbin" "$sbin" || exit 99
		trap "umount -l \"\$mnt\" 2>/dev/null" EXIT
		mount -a -T "$work/fstab" || no "mount -a: exit $?"
		[ "$(mounts)" = 1 ] || no "after mount -a, $(mounts) mounts at $mnt"
		grep -q "^$source $mnt fuse.cairn " /proc/self/mounts ||
			no "the mount table says: $(grep " $mnt " /proc/self/mounts)"
		[ "$(cat "$mnt/dir/hello" 2>&1)" = hello ] || no "the fstab mount does not serve the tree"
		mount -a -T "$work/fstab" 2>"$work/err" || no "a second mount -a: exit $?: $(cat "$work/err")"
		[ "$(mounts)" = 1 ] || no "after a second mount -a, $(mounts) mounts at $mnt"
		umount "$source" || no "umount SOURCE: exit $?"
		[ "$(mounts)" = 0 ] || no "after umount SOURCE, $(mounts) mounts at $mnt"
		exit $fails' fstab "$sbin" "$WORK" "$mnt" "tree@$STORE"
}
if ! unshare -m --propagation private true 2>/dev/null; then
	echo "note: no private mount namespace (unshare -m) here; mount -a with an fstab not tested"
else
	out=$(fstab_check 2>&1)
	case $? in
	0) pass ;;
	99) echo "note: no private mount namespace here; mount -a with an fstab not tested: $out" ;;
	*) fail "fstab: $out" ;;
	esac
	# The daemon ended with its mount.
	pid=$(daemon_pid "$mnt") && ! wait_gone "$pid" && fail "the fstab mount's daemon $pid is still running"
fi

if [ -x /sbin/mount.fuse.cairn ]; then
	if mount -t fuse.cairn -o "cache=$CACHE" "tree@$STORE" "$mnt"; then
		MOUNTS+=("$mnt")
		DAEMON[$mnt]=$(daemon_pid "$mnt")
		check "mount -t fuse.cairn: the tree" python3 "$COMPARE" --no-owner "$mnt" "$SRC"
		umount "$mnt" || fail "umount $mnt"
		wait_gone "${DAEMON[$mnt]}" || fail "the daemon did not exit after umount"
	else
		fail "mount -t fuse.cairn tree@STORE"
	fi
else
	echo "note: /sbin/mount.fuse.cairn is not installed; mount -t fuse.cairn not tested"
fi

finish
