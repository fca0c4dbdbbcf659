#!/bin/bash
# test_passthrough.sh: passthrough is really in use, and the kernel's rules
# for it (docs/ARCHITECTURE.md, "Mount: the kernel's rules") hold. From the mount's user.cairn.stats:
#  - a 1 MiB file, re-read after its blob exists and drop_caches, sends no
#    READ to the daemon and counts a passthrough open; with -o nopassthrough
#    the same re-read reaches the daemon; files below passthrough_min are
#    cached opens (the threshold checked at one byte either side);
#  - identical files and hard links open at the same time read right, with
#    one blob for their content (one backing id, shared);
#  - a file at or above background_min with no blob yet opens direct_io and
#    reads right; while that open lives a new one is direct_io too, blob or
#    not (a mapped direct_io open and a passthrough open of one inode fail
#    in the kernel), and both read and map right; once they are closed, a
#    new open passes through;
#  - small (keep_cache) and large (passthrough or direct_io) opens mixed
#    concurrently, with blobs evicted and made again, never give EIO: a
#    keep_cache or direct_io open never meets a passthrough open of the
#    same inode in the kernel;
#  - a direct_io open (no blob yet) maps MAP_SHARED: init asks for the
#    kernel's direct-io-allow-mmap;
#  - 16 readers hold a cold 48 MiB file open, half mapped, across its
#    blob's making, open it again, then mix read and mmap: no error, the
#    right bytes, and the open after they close passes through.
#
# usage: test_passthrough.sh CAIRN MTOOL COMPARE LIB
. "$4" passthrough "$@"

SRC=$WORK/src
mkdir -p "$SRC/many"
random_file "$SRC/big" $((1 << 20)) 11
random_file "$SRC/small" 10000 12
random_file "$SRC/below" 65535 13
random_file "$SRC/at" 65536 14
random_file "$SRC/dup1" $((1 << 20)) 15
cp "$SRC/dup1" "$SRC/dup2"
random_file "$SRC/hl-a" $((3 << 19)) 16
ln "$SRC/hl-a" "$SRC/hl-b"
random_file "$SRC/cold" $((4 << 20)) 17
random_file "$SRC/cold-map" $((8 << 20)) 18
random_file "$SRC/cold-mix" $((48 << 20)) 19
many=()
for i in $(seq 1 40); do
	many+=("$SRC/many/small-$i" $((i * 3000)) $((100 + i)))
	many+=("$SRC/many/large-$i" $((200000 + i * 20000)) $((200 + i)))
done
random_file "${many[@]}"
cp "$SRC/many/large-7" "$SRC/many/large-7-copy"
ln "$SRC/many/large-9" "$SRC/many/large-9-link"
bsdtar --format pax -cf "$WORK/tree.tar" -C "$SRC" .
add tree "$WORK/tree.tar" || fail "cairn add"

# reread MNT FILE: reads FILE, drops the caches and reads it again; sets
# DELTA_READS and DELTA_PT to what the second read added to the counters.
reread() {
	local mnt=$1 file=$2 reads pt
	cmp -s "$mnt/$file" "$SRC/$file" || fail "$file: the first read differs"
	cmp -s "$mnt/$file" "$SRC/$file" || fail "$file: the second read differs"
	drop_caches
	reads=$(stat_of "$mnt" reads)
	pt=$(stat_of "$mnt" opens_passthrough)
	cmp -s "$mnt/$file" "$SRC/$file" || fail "$file: the read after drop_caches differs"
	DELTA_READS=$(($(stat_of "$mnt" reads) - reads))
	DELTA_PT=$(($(stat_of "$mnt" opens_passthrough) - pt))
}

# ---- passthrough in use, and the threshold ----

mnt=$WORK/mnt
if mount_at "$mnt" -o passthrough_min=64K tree; then
	[ "$(stat_of "$mnt" passthrough)" = 1 ] || fail "passthrough is off: $(stat_of "$mnt" passthrough)"
	reread "$mnt" big
	[ "$DELTA_READS" = 0 ] && pass ||
		fail "re-reading a passed-through file sent $DELTA_READS READs to the daemon"
	[ "$DELTA_PT" = 1 ] && pass || fail "re-reading big counted $DELTA_PT passthrough opens"
	made=$(stat_of "$mnt" blobs_made)
	[ "$made" = 1 ] && pass || fail "blobs_made=$made after reading one file three times"
	for file in small below at; do
		cached=$(stat_of "$mnt" opens_cached)
		pt=$(stat_of "$mnt" opens_passthrough)
		cmp -s "$mnt/$file" "$SRC/$file" || fail "$file differs"
		dc=$(($(stat_of "$mnt" opens_cached) - cached))
		dp=$(($(stat_of "$mnt" opens_passthrough) - pt))
		want="1 0"
		[ $file = at ] && want="0 1"
		[ "$dc $dp" = "$want" ] && pass ||
			fail "$file ($(stat -c %s "$SRC/$file") bytes): $dc cached, $dp passthrough opens; expected $want"
	done
	check "identical files and hard links open at once" \
		python3 "$MTOOL" same "$mnt" "$SRC" dup1 dup2 hl-a hl-b
	[ "$(stat_of "$mnt" read_errors)" = 0 ] || fail "read errors counted"
	unmount "$mnt" || fail "unmount"
else
	fail "cairn mount"
fi

mnt=$WORK/mnt-nopt
if mount_at "$mnt" -o nopassthrough tree; then
	[ "$(stat_of "$mnt" passthrough)" = 0 ] || fail "nopassthrough: the stats say passthrough=1"
	reread "$mnt" big
	[ "$DELTA_READS" -gt 0 ] && pass ||
		fail "nopassthrough: the re-read after drop_caches sent no READ to the daemon"
	[ "$DELTA_PT" = 0 ] || fail "nopassthrough: $DELTA_PT passthrough opens"
	[ "$(stat_of "$mnt" blobs_made)" = 0 ] || fail "nopassthrough: blobs were made"
	unmount "$mnt" || fail "nopassthrough: unmount"
else
	fail "cairn mount -o nopassthrough"
fi

# ---- the kernel's rules ----

mnt=$WORK/mnt-rules
if mount_at "$mnt" -o background_min=256K tree; then
	check "a file whose blob is not ready, kept open across the blob's making" \
		python3 "$MTOOL" transition "$mnt" "$SRC" cold
	check "a file whose blob is not ready maps MAP_SHARED (direct-io-allow-mmap)" \
		python3 "$MTOOL" mmap "$mnt" "$SRC" cold-map
	[ "$(stat_of "$mnt" read_errors)" = 0 ] || fail "read errors counted"
	unmount "$mnt" || fail "unmount"
else
	fail "cairn mount -o background_min=256K"
fi

# A passthrough open of an inode the kernel has in caching mode (a mapped
# direct_io open) fails EIO, so none is handed out while a fallback open
# of it lives.
mnt=$WORK/mnt-mapmix
if mount_at "$mnt" -o background_min=256K tree; then
	check "16 readers mixing read and mmap across a cold file's blob" \
		python3 "$MTOOL" mapmix "$mnt" "$SRC" cold-mix 16 2
	unmount "$mnt" || fail "unmount"
else
	fail "cairn mount -o background_min=256K (mapmix)"
fi

# A blob cache of 3 MiB: blobs are evicted and made again all the time, so
# files keep moving between direct_io and passthrough under the readers.
mnt=$WORK/mnt-mixed
if mount_at "$mnt" -o "cache=$WORK/cache-mixed,background_min=256K,cache_size=3M" tree; then
	check "small and large opens mixed concurrently, blobs coming and going" \
		python3 "$MTOOL" stress "$mnt/many" "$SRC/many" 6 8 8
	[ "$(stat_of "$mnt" read_errors)" = 0 ] || fail "read errors counted"
	unmount "$mnt" || fail "unmount"
else
	fail "cairn mount -o cache_size=3M"
fi

finish
