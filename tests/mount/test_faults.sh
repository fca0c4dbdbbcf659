#!/bin/bash
# test_faults.sh: damage and disruption under a mount.
#  - A byte flipped in the middle of the pack, inside the raw chunks of a
#    file of unique random data: reads of that file fail with EIO (never
#    wrong bytes), on the -o nopassthrough path and on the passthrough path
#    (whose blob cannot be made); the daemon logs the damage; other files
#    still read, and the mount stays up (ls, stat).
#  - A blob others could write to is not trusted, even with the right bytes.
#  - A blob damaged in the cache between two mounts is not served: the
#    next mount re-checks it and makes it again.
#  - A FIFO planted under a blob's name: opens never block on it; the
#    file reads right (within a timeout) and the FIFO is replaced.
#  - The cache directory removed (rm -rf) under a running mount: files
#    still read, through a held fd and through new opens (blobs made again).
#  - Two mounts sharing one cache directory both read right, the second
#    using the blobs the first made.
#  - Unmount and remount: the same inode numbers (one snapshot, and the
#    whole store) and the same contents.
#
# usage: test_faults.sh CAIRN MTOOL COMPARE LIB
. "$4" faults "$@"

SRC=$WORK/src
mkdir -p "$SRC/dir"
random_file "$SRC/victim" $((4 << 20)) 21 "$SRC/dir/other" 500000 22 "$SRC/small" 3000 23
printf 'hello\n' >"$SRC/dir/hello"
head -c 300000 /dev/zero | tr '\0' 'y' >"$SRC/dir/compressible"
bsdtar --format pax -cf "$WORK/tree.tar" -C "$SRC" .
add tree "$WORK/tree.tar" || fail "cairn add"
mkdir -p "$WORK/second"
random_file "$WORK/second/b" $((1 << 20)) 24
bsdtar --format pax -cf "$WORK/second.tar" -C "$WORK/second" .
add second "$WORK/second.tar" || fail "cairn add second"

# ---- a damaged pack ----

cp -a "$STORE" "$WORK/store-intact"
pack=$(ls -S "$STORE"/packs/* | head -1)
size=$(stat -c %s "$pack")
python3 - "$pack" $((size / 2)) <<'EOF'
import sys
with open(sys.argv[1], "r+b") as f:
    f.seek(int(sys.argv[2]))
    byte = f.read(1)
    f.seek(int(sys.argv[2]))
    f.write(bytes([byte[0] ^ 0x40]))
EOF

# still_up MNT WHAT: the mount answers, and the undamaged files read right.
still_up() {
	ls "$1" >/dev/null && stat "$1/victim" >/dev/null && ls "$1/dir" >/dev/null ||
		fail "$2: ls or stat failed after the damage"
	for f in dir/other small dir/hello dir/compressible; do
		cmp -s "$1/$f" "$SRC/$f" || fail "$2: $f, undamaged, does not read right"
	done
	is_mounted "$1" || fail "$2: the mount went away"
}

mnt=$WORK/mnt-damaged
mkdir -p "$mnt"
"$CAIRN" -s "$STORE" mount -f -o "cache=$CACHE-damaged,nopassthrough" tree "$mnt" 2>"$WORK/daemon.err" &
FG_PID=$!
if wait_mounted "$mnt" $FG_PID; then
	err=$(cat "$mnt/victim" 2>&1 >/dev/null)
	case $err in
	*"Input/output error"*) pass ;;
	*) fail "nopassthrough: reading the damaged file: '$err', expected EIO" ;;
	esac
	check "nopassthrough: damaged blocks fail with EIO, the others read right" \
		python3 "$MTOOL" damaged "$mnt/victim" "$SRC/victim"
	[ "$(stat_of "$mnt" read_errors)" -gt 0 ] || fail "nopassthrough: no read errors counted"
	still_up "$mnt" nopassthrough
	unmount "$mnt" || fail "nopassthrough: unmount"
	grep -q -i -E 'chunk|pack' "$WORK/daemon.err" && pass ||
		fail "nopassthrough: the daemon logged nothing about the damage: $(cat "$WORK/daemon.err")"
else
	fail "cairn mount -f of the damaged store: $(cat "$WORK/daemon.err")"
fi

mnt=$WORK/mnt-damaged-pt
CACHE_DAMAGED=$WORK/cache-damaged-pt
if mount_at "$mnt" -o "cache=$CACHE_DAMAGED" tree; then
	err=$(cat "$mnt/victim" 2>&1 >/dev/null)
	case $err in
	*"Input/output error"*) pass ;;
	*) fail "passthrough: reading the damaged file: '$err', expected EIO" ;;
	esac
	check "passthrough: damaged blocks fail with EIO, the others read right" \
		python3 "$MTOOL" damaged "$mnt/victim" "$SRC/victim"
	[ "$(stat_of "$mnt" opens_passthrough)" = 0 ] ||
		fail "passthrough: the damaged file passed through: $(getfattr --only-values -n user.cairn.stats "$mnt")"
	still_up "$mnt" passthrough
	victim_blob=$(find "$CACHE_DAMAGED" -type f -size +4000k | head -1)
	[ -z "$victim_blob" ] || fail "passthrough: a blob of the damaged file is in the cache"
	unmount "$mnt" || fail "passthrough: unmount"
else
	fail "cairn mount of the damaged store"
fi
rm -rf "$STORE"
mv "$WORK/store-intact" "$STORE"

# ---- a damaged blob ----

mnt=$WORK/mnt
if mount_at "$mnt" tree; then
	cmp -s "$mnt/victim" "$SRC/victim" || fail "victim differs"
	unmount "$mnt" || fail "unmount"
fi
blob=$(find "$CACHE/blobs" -type f -size +4000k | head -1)
if [ -n "$blob" ]; then
	printf 'X' | dd of="$blob" bs=1 seek=1000000 conv=notrunc status=none
	if mount_at "$mnt" tree; then
		cmp -s "$mnt/victim" "$SRC/victim" && pass ||
			fail "a damaged blob in the cache was served"
		[ "$(stat_of "$mnt" blobs_made)" = 1 ] || fail "the damaged blob was not made again"
		unmount "$mnt" || fail "unmount"
	fi
else
	fail "no blob of victim in the cache: $(ls -lR "$CACHE")"
fi

# ---- a blob others could write is not trusted, even with the right bytes ----

blob=$(find "$CACHE/blobs" -type f -size +4000k | head -1)
if [ -n "$blob" ]; then
	chmod 0664 "$blob"
	if mount_at "$mnt" tree; then
		cmp -s "$mnt/victim" "$SRC/victim" && pass || fail "victim differs"
		[ "$(stat_of "$mnt" blobs_made)" = 1 ] || fail "a group-writable blob was used"
		[ "$(stat -c %a "$blob")" = 400 ] || fail "the blob was not made again read-only"
		unmount "$mnt" || fail "unmount"
	fi
fi

# ---- a FIFO planted under a blob's name: the mount never waits on it ----

blob=$(find "$CACHE/blobs" -type f -size +4000k | head -1)
if [ -n "$blob" ]; then
	rm -f "$blob" && mkfifo -m 0600 "$blob"
	if mount_at "$mnt" tree; then
		timeout 20 cat "$mnt/victim" >"$WORK/victim-read" ||
			fail "a FIFO as the blob: reading victim failed or hung"
		cmp -s "$WORK/victim-read" "$SRC/victim" && pass ||
			fail "a FIFO as the blob: victim reads wrong"
		timeout 20 cat "$mnt/small" | cmp -s - "$SRC/small" ||
			fail "a FIFO as the blob: small reads wrong or hung"
		unmount "$mnt" || fail "unmount"
	fi
	[ ! -p "$blob" ] || fail "a FIFO as the blob: still in the cache"
fi

# ---- the cache removed under a mount ----

if mount_at "$mnt" tree; then
	cmp -s "$mnt/victim" "$SRC/victim" || fail "victim differs"
	exec 7<"$mnt/victim"
	rm -rf "$CACHE"
	drop_caches
	cmp -s /dev/fd/7 "$SRC/victim" && pass || fail "the cache removed: a held fd reads wrong"
	exec 7<&-
	made=$(stat_of "$mnt" blobs_made)
	for f in victim dir/other; do
		cmp -s "$mnt/$f" "$SRC/$f" && pass || fail "the cache removed: $f reads wrong"
	done
	[ "$(stat_of "$mnt" blobs_made)" -gt "$made" ] || fail "the cache removed: no blob made again"
	[ -n "$(ls "$CACHE/blobs" 2>/dev/null)" ] || fail "the cache removed: it was not made again"
	[ "$(stat_of "$mnt" read_errors)" = 0 ] || fail "the cache removed: read errors"
	unmount "$mnt" || fail "unmount"
fi

# ---- two mounts, one cache ----

rm -rf "$CACHE"
m1=$WORK/mnt-1
m2=$WORK/mnt-2
if mount_at "$m1" tree && mount_at "$m2" tree; then
	check "the first of two mounts sharing a cache" python3 "$COMPARE" "$m1" "$SRC"
	check "the second of two mounts sharing a cache" python3 "$COMPARE" "$m2" "$SRC"
	[ "$(stat_of "$m2" blobs_made)" = 0 ] ||
		fail "the second mount made its own blobs: $(stat_of "$m2" blobs_made)"
	[ "$(stat_of "$m2" opens_passthrough)" -gt 0 ] || fail "the second mount did not pass through"
	python3 "$MTOOL" stress "$m1" "$SRC" 3 4 2 >"$WORK/stress-1" &
	job=$!
	check "two mounts sharing a cache, read at once" python3 "$MTOOL" stress "$m2" "$SRC" 3 4 2
	wait $job && pass || fail "two mounts sharing a cache: $(cat "$WORK/stress-1")"
	unmount "$m1" || fail "unmount $m1"
	unmount "$m2" || fail "unmount $m2"
else
	fail "two mounts sharing a cache: $(cat "$WORK/mount.err")"
fi

# ---- remount ----

# inodes MNT TREE: every inode number, and the contents of TREE's files.
inodes() {
	(cd "$1" && find . -printf '%i %p\n' | sort -k2)
	(cd "$2" && find . -type f -exec md5sum {} + | sort -k2)
}
for form in snapshot store; do
	arg=tree tree=$mnt
	[ $form = store ] && arg='' tree=$mnt/tree
	mount_at "$mnt" $arg || fail "$form: mount"
	before=$(inodes "$mnt" "$tree")
	unmount "$mnt" || fail "$form: unmount"
	mount_at "$mnt" -o nopassthrough $arg || fail "$form: mount again"
	after=$(inodes "$mnt" "$tree")
	unmount "$mnt" || fail "$form: unmount again"
	if [ "$before" = "$after" ] && [ -n "$before" ]; then
		pass
	else
		fail "$form: inode numbers or contents changed across a remount:"
		diff <(echo "$before") <(echo "$after") | head -10
	fi
done

finish
