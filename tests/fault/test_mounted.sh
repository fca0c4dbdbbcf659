#!/bin/bash
# test_mounted.sh: writers while a mount serves the store.
#  - add while mounted: a mount of one snapshot (reads through cairn, no
#    passthrough) and a mount of the whole store keep serving exactly what
#    they had, byte for byte, while an add runs, after it, and after an add
#    --replace of the very snapshot mounted (the mount keeps the old one).
#  - gc while mounted refuses, saying the store is mounted, and changes
#    nothing: every file of the store keeps its bytes. After the unmount gc
#    runs and the store verifies.
# Needs root and /dev/fuse (skips otherwise).
#
# usage: test_mounted.sh CAIRN FAULT_SO COMPARE_PY
. "$(dirname "$0")/lib.sh" mounted "$@"

[ "$(id -u)" = 0 ] || skip "mounting needs root here"
[ -c /dev/fuse ] && [ -r /dev/fuse ] && [ -w /dev/fuse ] || skip "there is no usable /dev/fuse"

# The daemons have no stderr once they are ready: sanitizer reports go to
# files, checked at the end.
SAN=$WORK/sanitizer
mkdir -p "$SAN"
export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1}:log_path=$SAN/asan"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1}:log_path=$SAN/ubsan"

MOUNTS=()
is_mounted() {
	awk -v m="$1" '$5 == m { found = 1 } END { exit !found }' /proc/self/mountinfo
}
mount_at() {
	local mnt=$1
	shift
	mkdir -p "$mnt"
	MOUNTS+=("$mnt")
	"$CAIRN" -s "$WORK/store" mount -o "cache=$WORK/cache" "$@" "$mnt" && is_mounted "$mnt"
}
unmount() {
	local i
	"$CAIRN" umount "$1" || return 1
	for i in $(seq 1 100); do
		is_mounted "$1" || return 0
		sleep 0.05
	done
	return 1
}
cleanup() {
	local mnt
	for mnt in "${MOUNTS[@]}"; do
		is_mounted "$mnt" && { "$CAIRN" umount "$mnt" 2>/dev/null || umount -l "$mnt"; }
	done
	sleep 0.2
	cleanup_work
}
trap cleanup EXIT

cd "$WORK" || exit 1
make_tree src/a 1 3000000
make_tree src/a2 2 3000000
make_tree src/b 3 2000000
make_tree src/c 4 12000000 src/b
for t in a a2 b c; do
	make_tar $t.tar src/$t
	mkdir -p ref/$t
	bsdtar -xf $t.tar -C ref/$t
done
"$CAIRN" -s store add -q a.tar b.tar || fail "adding a and b"

MNT1=$WORK/mnt-a
MNT2=$WORK/mnt-store
mount_at "$MNT1" -o nopassthrough a || fail "mounting snapshot a"
# refresh=0: the whole-store mount keeps the list it started with, so b
# (removed below) stays served while gc is refused (refresh has its own
# test, tests/mount/test_refresh.sh)
mount_at "$MNT2" -o refresh=0 || fail "mounting the store"

serving() {
	same_content "$MNT1" ref/a && same_content "$MNT2/a" ref/a && same_content "$MNT2/b" ref/b
}
serving && pass || fail "the mounts do not serve a and b"

# ---- add while mounted ----
"$CAIRN" -s store add -q c.tar 2>add.err &
add_pid=$!
reads=0
while kill -0 $add_pid 2>/dev/null; do
	serving || fail "a mount changed while the add ran"
	reads=$((reads + 1))
done
wait $add_pid && pass || fail "add while mounted: $(cat add.err)"
echo "the mounts were read $reads times while the add ran"
sync
echo 3 >/proc/sys/vm/drop_caches
serving && pass || fail "a mount changed after the add"
"$CAIRN" -s store add -q --replace -n a a2.tar 2>add.err && pass || fail "add --replace: $(cat add.err)"
echo 3 >/proc/sys/vm/drop_caches
serving && pass || fail "the mount of a changed after a was replaced"
snapshot_matches store a ref/a2 && snapshot_matches store c ref/c && pass ||
	fail "the snapshots added while mounted"

# ---- gc while mounted ----
"$CAIRN" -s store rm -q b || fail "rm b"
fingerprint() {
	store_fingerprint store readers
}
before=$(fingerprint)
msg=$("$CAIRN" -s store gc -q 2>&1)
status=$?
if [ $status != 0 ] && echo "$msg" | grep -q "mounted" && [ "$(echo "$msg" | wc -l)" = 1 ]; then
	pass
else
	fail "gc while mounted: exit $status: $msg"
fi
[ "$before" = "$(fingerprint)" ] && pass || fail "gc while mounted changed the store"
echo 3 >/proc/sys/vm/drop_caches
serving && pass || fail "a mount changed after the refused gc"

unmount "$MNT1" && unmount "$MNT2" && pass || fail "unmounting"
out=$("$CAIRN" -s store gc 2>&1) && pass || fail "gc after the unmount: $out"
echo "$out" | grep -q "chunks dropped" && pass || fail "gc after the unmount dropped nothing: $out"
store_sound store && snapshot_matches store a ref/a2 && snapshot_matches store c ref/c && pass ||
	fail "the store after gc"

sleep 0.3 # the daemons' leak checks at exit
for log in "$SAN"/*; do
	[ -e "$log" ] || continue
	fail "sanitizer report in $(basename "$log"):"
	head -40 "$log"
done
finish
