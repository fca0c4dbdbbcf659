#!/bin/bash
# test_index_reads.sh: a cold mount reads the few pages of the snapshot's
# index that opening it needs (the header, the section table, the root's
# records), not the kernel's read-ahead window around the first of them.
# The store is on a filesystem of the test's own (ext4 on a loop device)
# whose read-ahead is 8 MiB, as on a disk that reads 8 MiB around a page
# faulted in; the index of 20,000 files is 2.5 MiB. When the mount command
# returns, before anything reads the tree, at most 256 KiB of the index are
# in the page cache (with read-ahead on the first page the whole file was:
# 2.5 MiB on the mount's path before its first reply); then the tree and
# its files read right.
#
# usage: test_index_reads.sh CAIRN MTOOL COMPARE LIB
. "$4" index_reads "$@"
need_tools losetup mkfs.ext4 fincore

LOOP_DIR=$(mktemp -d "${TMPDIR:-/tmp}/cairn-index-reads-XXXXXX") || exit 1
LOOP_DEV=
loop_down() {
	mountpoint -q "$LOOP_DIR/fs" && umount "$LOOP_DIR/fs"
	[ -z "$LOOP_DEV" ] || losetup -d "$LOOP_DEV"
	rm -rf "$LOOP_DIR"
}
# the FUSE mounts first (lib.sh's cleanup), then the filesystem under them
trap 'cleanup; loop_down' EXIT

truncate -s 64M "$LOOP_DIR/fs.img"
mkfs.ext4 -q -F "$LOOP_DIR/fs.img" || fail "mkfs.ext4"
LOOP_DEV=$(losetup -f --show "$LOOP_DIR/fs.img" 2>"$WORK/losetup.err") ||
	skip "no loop device here: $(cat "$WORK/losetup.err")"
echo 8192 >"/sys/block/${LOOP_DEV#/dev/}/queue/read_ahead_kb" || fail "setting read_ahead_kb"
mkdir -p "$LOOP_DIR/fs"
mount "$LOOP_DEV" "$LOOP_DIR/fs" || fail "mounting the loop device"
STORE=$LOOP_DIR/fs/store

python3 - "$WORK/many.tar" <<'EOF'
import io, sys, tarfile
with tarfile.open(sys.argv[1], "w", format=tarfile.GNU_FORMAT) as t:
    for d in range(100):
        for f in range(200):
            data = f"{d}-{f}\n".encode() * 3
            info = tarfile.TarInfo(f"dir{d:03d}/f{f:05d}.txt")
            info.size = len(data)
            t.addfile(info, io.BytesIO(data))
EOF
"$CAIRN" -s "$STORE" add -q --name many "$WORK/many.tar" 2>/dev/null || fail "cairn add"
index=$STORE/snapshots/many
size=$(stat -c %s "$index")
[ "$size" -gt $((2 * 1024 * 1024)) ] || fail "the index is $size bytes, expected over 2 MiB"

# resident FILE: bytes of FILE in the page cache
resident() {
	fincore --bytes --noheadings --output RES "$1" | tr -d " "
}
# The index out of the page cache (this file only; the rest of the machine
# keeps its cache).
python3 -c 'import os, sys
fd = os.open(sys.argv[1], os.O_RDONLY)
os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)' "$index"
[ "$(resident "$index")" = 0 ] || fail "the index is still cached: $(resident "$index") bytes"

mnt=$WORK/mnt
mount_at "$mnt" many || fail "mount: $(cat "$WORK/mount.err")"
cached=$(resident "$index")
echo "index: $size bytes, $cached in the page cache after the mount"
[ "$cached" -le $((256 * 1024)) ] && pass ||
	fail "the mount read $cached bytes of the $size-byte index (expected <= 256 KiB)"

check "the tree's entries" test "$(find "$mnt" | wc -l)" = 20101
check "a file" test "$(cat "$mnt/dir042/f00117.txt")" = "$(printf '42-117\n42-117\n42-117')"
check "unmount" unmount "$mnt"
finish
