#!/usr/bin/env bash
# test_remote_overlap.sh: reads of an s3:// store overlap their GETs, and
# overlap the GETs with the reading, counted through the proxy in front of
# a real Swift (it adds latency to every request and keeps the most GETs it
# held at once, GET_inflight_max, and how many it answered, GET_done):
#  - a cold `cairn cat` of a 64 MiB file writes its first byte before the
#    last of its GETs is answered (the whole-file prefetch runs in the
#    background while the file is read);
#  - in one mount, four readers of small files far apart in one pack have
#    their GETs in flight together (no store-wide lock across a GET);
#  - one reader going through a tree of small files in pack order gets
#    read-ahead: GETs in flight alongside its own, and far fewer GETs than
#    files;
#  - a cat killed (-9) in the middle of its background fetch leaves a
#    mirror from which the next cat and verify read the right bytes;
#  - a cold mount waits for three round trips before its first stat: the
#    tables and the snapshot are fetched together, and the daemon does
#    not ask for the pointer its command just read;
#  - a file read in order through the daemon (no passthrough) is fetched
#    whole in the background once the reader is past its first MiB.
set -u
TEST_NAME=remote_overlap
. "$(dirname "$0")/../lib.sh"
CAIRN=$(abs_path "$1")

. "$(dirname "$0")/mount_prologue.sh"

S=s3://bucket/o
cd "$WORK" || exit 1
mark() {
	GETS0=$(proxy_count GET)
	DONE0=$(proxy_count GET_done)
}
gets() { echo $(($(proxy_count GET) - GETS0)); }
can_mount() { [ "$(id -u)" = 0 ] && [ -c /dev/fuse ]; }

# a: a 64 MiB file; b: four 256 KiB files with 3 MiB between each and the
# next (in this order in the archive, so in the pack); t: 300 small files,
# archived in path order.
mkdir -p src/a src/b src/t
head -c $((64 << 20)) /dev/urandom >src/a/big.bin
for i in 1 2 3 4; do
	head -c $((256 << 10)) /dev/urandom >"src/b/s$i.bin"
	head -c $((3 << 20)) /dev/urandom >"src/b/s$i.pad"
done
python3 - src/t <<'EOF'
import os, random, sys
random.seed(7)
for i in range(300):
    d = os.path.join(sys.argv[1], "d%d" % (i // 50))
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "f%03d" % i), "wb") as f:
        f.write(os.urandom(random.randint(4096, 32768)))
EOF
bsdtar -cf a.tar -C src/a big.bin
bsdtar -cf b.tar -C src/b s1.bin s1.pad s2.bin s2.pad s3.bin s3.pad s4.bin s4.pad
(cd src/t && find . -type f | sort) >t.list
bsdtar -cf t.tar -C src/t -T t.list

remote_start
remote_bucket bucket >/dev/null || fail "bucket"
proxy_start
check "add a" host h1 add -q a.tar
check "add b" host h1 add -q b.tar
check "add t" host h1 add -q t.tar

# ---- cat: the first byte goes out before the last GET is answered ----
proxy_set latency_ms=100
mark
host h2 cat a:big.bin | {
	dd bs=1 count=1 status=none >first.byte
	proxy_count GET_done >done.at.first
	cat >rest.bytes
}
first=$(($(cat done.at.first) - DONE0))
all=$(($(proxy_count GET_done) - DONE0))
echo "cold cat: $(gets) GETs; $first of $all answered when its first byte went out"
if [ "$first" -lt "$all" ]; then
	pass
else
	fail "cat wrote nothing until all $all GETs were answered"
fi
cat first.byte rest.bytes | cmp -s - src/a/big.bin || fail "cat: wrong bytes"
rm -f first.byte rest.bytes

# ---- kill -9 in the middle of the background fetch ----
mark
host h3 cat a:big.bin >/dev/null &
pid=$!
for _ in $(seq 200); do
	[ $(($(proxy_count GET_done) - DONE0)) -ge 8 ] && break
	sleep 0.05
done
kill -9 "$pid" 2>/dev/null
wait "$pid" 2>/dev/null
echo "killed cat after $(gets) GETs"
proxy_set
check "after kill -9: cat" sh -c "CAIRN_REMOTE_CACHE=$WORK/cache-h3 '$CAIRN' -s $S cat a:big.bin | cmp -s - src/a/big.bin"
check "after kill -9: verify" host h3 verify -q

if ! can_mount; then
	echo "no FUSE here: mounts not checked"
	finish
fi
mkdir -p "$MNT"

# ---- a cold mount: pointer, manifest, then the rest at once ----
# The chunk table and the snapshot come in one round trip (a reader does
# without the sketches), and the daemon takes the pointer its command read
# a moment ago: before the first stat, 4 GETs (cairn-head, the manifest,
# the chunk table, the snapshot), the last two in flight together.
proxy_set latency_ms=100
mark
if host h6 mount -o "cache=$WORK/blobs6" b "$MNT" && stat "$MNT/s1.bin" >/dev/null; then
	max=$(proxy_count GET_inflight_max)
	n=$(gets)
	echo "cold mount to first stat: $n GETs, at most $max in flight at once"
	if [ "$n" -le 4 ]; then pass; else fail "a cold mount took $n GETs before its first stat"; fi
	if [ "$max" -ge 2 ]; then pass; else fail "a cold mount's GETs ran one at a time"; fi
	cmp -s "$MNT/s2.bin" src/b/s2.bin || fail "cold mount: wrong bytes"
	"$CAIRN" umount "$MNT" || fail "umount"
else
	fail "cold mount of b"
fi
proxy_set

# ---- a large file read through the daemon: the rest prefetched ----
# Without passthrough every READ reaches cairn; once a reader is past the
# first MiB in order, the rest of the file is fetched in the background as
# for a cat (large GETs, several in flight), not only read-ahead windows
# around the reader: after a read of its first 2 MiB, the whole 64 MiB
# comes.
if host h7 mount -o nopassthrough a "$MNT"; then
	mark
	B0=$(proxy_count GET_bytes)
	head -c $((2 << 20)) "$MNT/big.bin" | cmp -s - <(head -c $((2 << 20)) src/a/big.bin) ||
		fail "nopassthrough: wrong first 2 MiB"
	for _ in $(seq 100); do
		[ $(($(proxy_count GET_bytes) - B0)) -ge $((64 << 20)) ] && break
		sleep 0.1
	done
	got=$(($(proxy_count GET_bytes) - B0))
	echo "nopassthrough, the first 2 MiB read: $(gets) GETs, $got bytes fetched"
	if [ "$got" -ge $((64 << 20)) ]; then pass; else fail "only $got bytes fetched"; fi
	cmp -s "$MNT/big.bin" src/a/big.bin || fail "nopassthrough read of big.bin: wrong bytes"
	"$CAIRN" umount "$MNT" || fail "umount"
else
	fail "mount a"
fi

# ---- parallel readers in one mount ----
if host h4 mount -o "cache=$WORK/blobs4" b "$MNT"; then
	proxy_set latency_ms=300
	mark
	pids=
	for i in 1 2 3 4; do
		cmp -s "$MNT/s$i.bin" "src/b/s$i.bin" || echo "s$i.bin differs" >>parallel.err &
		pids="$pids $!"
	done
	wait $pids # not a bare wait: the proxy is a child too
	max=$(proxy_count GET_inflight_max)
	echo "4 parallel readers: $(gets) GETs, at most $max in flight at once"
	[ ! -s parallel.err ] || fail "parallel readers: $(cat parallel.err)"
	if [ "$max" -ge 2 ]; then pass; else fail "the readers' GETs ran one at a time"; fi
	proxy_set
	"$CAIRN" umount "$MNT" || fail "umount"
else
	fail "mount b"
fi

# ---- one reader through a tree: read-ahead ----
if host h5 mount -o "cache=$WORK/blobs5" t "$MNT"; then
	proxy_set latency_ms=50
	mark
	(cd "$MNT" && find . -type f -print0 | sort -z | xargs -0 cat) >tree.out
	max=$(proxy_count GET_inflight_max)
	n=$(gets)
	echo "tree of 300 files in path order: $n GETs, at most $max in flight at once"
	(cd src/t && find . -type f -print0 | sort -z | xargs -0 cat) | cmp -s - tree.out ||
		fail "tree: wrong bytes"
	if [ "$max" -ge 2 ]; then pass; else fail "no GET ran alongside the reader's"; fi
	if [ "$n" -le 30 ]; then pass; else fail "the tree took $n GETs for 300 files"; fi
	proxy_set
	"$CAIRN" umount "$MNT" || fail "umount"
else
	fail "mount t"
fi
finish
