#!/usr/bin/env bash
# test_remote_fetch.sh: a whole file read from an s3:// store is fetched in
# few, large, parallel range GETs (cairn_store_prefetch), counted through
# the proxy in front of a real Swift: a cold `cairn cat` of a 64 MiB random
# file on a second host takes at most ceil(64/4) GETs and a few more (the
# pointer, the manifest, the tables, the snapshot index), and fetches at
# most 1.05x its bytes; a cold extract and a cold FUSE mount (the blob
# made for passthrough) of it on further hosts the same; all byte-identical.
# A host reading 48 MiB under a 20 MiB cache bound (CAIRN_REMOTE_CACHE_MAX,
# the mount's -o remote_cache) keeps its mirror's packs under it.
set -u
TEST_NAME=remote_fetch
. "$(dirname "$0")/../lib.sh"
CAIRN=$(abs_path "$1")

. "$(dirname "$0")/mount_prologue.sh"

S=s3://bucket/f
cd "$WORK" || exit 1
mark() {
	GETS0=$(proxy_count GET)
	BYTES0=$(proxy_count GET_bytes)
	T0=$(date +%s.%N)
}
gets() { echo $(($(proxy_count GET) - GETS0)); }
get_bytes() { echo $(($(proxy_count GET_bytes) - BYTES0)); }
counted() {
	echo "$(gets) GETs, $(get_bytes) bytes, $(echo "$(date +%s.%N) - $T0" | bc) s"
}
MIB=64
SIZE=$((MIB << 20))
# the data in ceil(MIB/4) GETs (the first two smaller), a few more where a
# GET ends at a pack, and
# the metadata: pointer, manifest, tables, snapshot index
MAX_GETS=$(((MIB + 3) / 4 + 10))
MAX_BYTES=$((SIZE * 105 / 100))
# expect_cheap WHAT: the GETs since the mark within the bounds.
expect_cheap() {
	echo "$1: $(counted) (at most $MAX_GETS GETs, $MAX_BYTES bytes)"
	if [ "$(gets)" -gt "$MAX_GETS" ] || [ "$(get_bytes)" -gt "$MAX_BYTES" ]; then
		fail "$1 took $(gets) GETs, $(get_bytes) bytes"
	else
		pass
	fi
}

mkdir -p src
head -c "$SIZE" /dev/urandom >src/big.bin
echo small >src/small.txt
bsdtar -cf a.tar -C src .

remote_start
remote_bucket bucket >/dev/null || fail "bucket"
proxy_start
check "add" host h1 add -q a.tar

mark
host h2 cat a:big.bin >cat.out || fail "cold cat on host 2"
expect_cheap "cold cat of a $MIB MiB file"
check "cat = the file" cmp -s cat.out src/big.bin
rm -f cat.out
mark
host h2 cat a:big.bin | cmp -s - src/big.bin || fail "warm cat"
[ "$(gets)" -le 1 ] || fail "warm cat fetched: $(counted)"

mark
host h3 extract a out || fail "cold extract on host 3"
expect_cheap "cold extract"
check "extract = the file" cmp -s out/big.bin src/big.bin
rm -rf out

mkdir -p "$MNT"
if [ "$(id -u)" = 0 ] && [ -c /dev/fuse ]; then
	mark
	if CAIRN_REMOTE_CACHE=$WORK/cache-h4 "$CAIRN" mount -s "$S" -o "cache=$WORK/blobs" a "$MNT"; then
		echo "cold mount: $(counted)"
		mark
		check "mount: the file" cmp -s "$MNT/big.bin" src/big.bin
		expect_cheap "cold read through the mount"
		"$CAIRN" umount "$MNT" || fail "umount"
	else
		fail "mount of $S"
	fi
else
	echo "no FUSE here: mount not checked"
fi
# ---- the cache bound: a host reading more than it keeps under it ----
C=s3://bucket/c
BOUND=$((20 << 20))
chost() {
	local name=$1
	shift
	CAIRN_REMOTE_CACHE=$WORK/cache-$name CAIRN_REMOTE_CACHE_MAX=$BOUND "$CAIRN" -s "$C" "$@"
}
mkdir -p src3
for i in 1 2 3 4; do head -c $((12 << 20)) /dev/urandom >"src3/f$i.bin"; done
bsdtar -cf c.tar -C src3 .
check "init (4 MiB packs)" chost c1 init --pack-size 4M
check "add 48 MiB" chost c1 add -q c.tar
# pack_bytes: what the mirror's pack files hold on disk (what the bound
# counts: not the .have maps nor the directory)
pack_bytes() { du -c -B1 "$WORK"/cache-$1/*/packs/*.pack | tail -1 | cut -f1; }
# under_bound HOST: the bound holds once the host's fetches have settled
# (a mount's read-ahead may still be filling a pack when a read returns,
# and its fetcher checks the bound when it goes idle): 5 s at most.
under_bound() {
	local i
	for i in $(seq 1 50); do
		[ "$(pack_bytes "$1")" -le "$BOUND" ] && return 0
		sleep 0.1
	done
	return 1
}
for i in 1 2 3 4 1 2; do
	chost c2 cat "c:f$i.bin" | cmp -s - "src3/f$i.bin" || fail "bounded cache: cat f$i.bin"
	under_bound c2 || fail "the cache holds $(pack_bytes c2) bytes after f$i.bin, over $BOUND"
done
echo "bounded cache: $(pack_bytes c2) bytes in packs (bound $BOUND)"
check "verify with a bounded cache" chost c2 verify -q
# the same through a mount, bounded by its option
if [ "$(id -u)" = 0 ] && [ -c /dev/fuse ]; then
	if CAIRN_REMOTE_CACHE=$WORK/cache-c3 "$CAIRN" mount -s "$C" \
		-o "cache=$WORK/blobs3,remote_cache=$BOUND" c "$MNT"; then
		for i in 1 2 3 4; do
			cmp -s "$MNT/f$i.bin" "src3/f$i.bin" || fail "bounded mount: f$i.bin"
			under_bound c3 || fail "the mount's cache holds $(pack_bytes c3) bytes after f$i.bin"
			n=$(pack_bytes c3)
		done
		echo "bounded mount: $n bytes in packs"
		"$CAIRN" umount "$MNT" || fail "umount"
	else
		fail "mount of $C"
	fi
fi
finish
