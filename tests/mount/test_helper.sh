#!/bin/bash
# test_helper.sh: cairn as mount(8)'s helper. Through symlinks named
# mount.fuse.cairn and mount.cairn to the built binary, run the way mount(8)
# runs a helper (SOURCE MOUNTPOINT -o OPTIONS): SNAPSHOT@STORE mounts one
# snapshot, STORE (and @STORE) the whole store, with mount(8)'s own options
# (ro, rw, noatime...) ignored and cairn's applied. If cairn is installed as
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
	grep -q "^cairn:tree $mnt fuse.cairn ro," /proc/self/mounts ||
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

"$WORK/bin/mount.fuse.cairn" "no-such@$STORE" "$mnt" -o ro 2>"$WORK/err"
r=$?
[ $r = 1 ] && [ "$(wc -l <"$WORK/err")" = 1 ] && ! is_mounted "$mnt" && pass ||
	fail "an unknown snapshot through the helper: exit $r: $(cat "$WORK/err")"

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
