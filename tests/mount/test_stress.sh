#!/bin/bash
# test_stress.sh: many threads reading random ranges of many files (tiny to
# several MiB, duplicates, hard links, a sparse file) while other threads
# open and close files, every byte checked against the extracted tree. Two
# mounts at once: one passing through, with a blob cache bound far below
# the tree (blobs are evicted while open) and a low background_min (files
# move from direct_io to passthrough under the readers); one with
# -o nopassthrough and a chunk cache of 2 MiB (chunks evicted while in use).
# The page cache is dropped every half second, so reads keep reaching the
# daemons.
# Afterwards each mount still equals the tree (compare.py).
#
# usage: test_stress.sh CAIRN MTOOL COMPARE LIB
. "$4" stress "$@"

SRC=$WORK/src
mkdir -p "$SRC/a/b" "$SRC/c"
files=()
for i in $(seq 1 150); do
	case $((i % 5)) in
	0) size=$((i * 7)) ;;                    # tiny
	1) size=$((4096 * i % 120000 + 1)) ;;      # below passthrough_min
	2) size=$((131072 + i * 1000)) ;;         # just above it
	3) size=$((300000 + i * 5000)) ;;         # above background_min
	4) size=$(((1 + i % 4) << 20)) ;;         # a few MiB
	esac
	dir=$SRC
	[ $((i % 3)) = 1 ] && dir=$SRC/a/b
	[ $((i % 3)) = 2 ] && dir=$SRC/c
	files+=("$dir/f$i" "$size" "$i")
done
random_file "${files[@]}"
head -c 2000000 /dev/zero | tr '\0' 'q' >"$SRC/compressible"
cp "$SRC/a/b/f4" "$SRC/a/f4-copy"
cp "$SRC/f9" "$SRC/c/f9-copy"
ln "$SRC/c/f14" "$SRC/a/b/f14-link"
ln "$SRC/c/f2" "$SRC/c/f2-link"
truncate -s 5M "$SRC/sparse"
printf 'data' | dd of="$SRC/sparse" bs=1 seek=2000000 conv=notrunc status=none
: >"$SRC/empty"
bsdtar --format pax -cf "$WORK/tree.tar" -C "$SRC" .
add tree "$WORK/tree.tar" || fail "cairn add"

pt=$WORK/mnt-pt
nopt=$WORK/mnt-nopt
mount_at "$pt" -o background_min=256K,cache_size=8M tree || fail "cairn mount (passthrough)"
mount_at "$nopt" -o nopassthrough,chunk_cache=2M tree || fail "cairn mount -o nopassthrough"
if is_mounted "$pt" && is_mounted "$nopt"; then
	# The page cache dropped now and then: reads reach the daemons again.
	(while sleep 0.5; do echo 3 >/proc/sys/vm/drop_caches; done) &
	dropper=$!
	python3 "$MTOOL" stress "$pt" "$SRC" 12 8 4 >"$WORK/stress-pt" 2>&1 &
	job=$!
	python3 "$MTOOL" stress "$nopt" "$SRC" 12 8 4 >"$WORK/stress-nopt" 2>&1
	r=$?
	wait $job
	rp=$?
	kill $dropper
	wait $dropper 2>/dev/null
	[ $rp = 0 ] && pass || fail "stress, passthrough: $(head -20 "$WORK/stress-pt")"
	[ $r = 0 ] && pass || fail "stress, nopassthrough: $(head -20 "$WORK/stress-nopt")"
	cat "$WORK/stress-pt" "$WORK/stress-nopt"
	for mnt in "$pt" "$nopt"; do
		check "$mnt equals the tree after the stress" python3 "$COMPARE" "$mnt" "$SRC"
		[ "$(stat_of "$mnt" read_errors)" = 0 ] || fail "$mnt: read errors counted"
	done
	blobs=$(du -s --block-size=1M "$WORK/cache/blobs" | cut -f1)
	[ "$blobs" -le 24 ] || fail "the blob cache holds ${blobs} MiB with cache_size=8M"
fi

finish
