#!/usr/bin/env bash
# test_remote_gc.sh: gc of an s3:// store while another host mounts it,
# against a real Swift with s3api, through the fault proxy. Two snapshots
# added (1 MiB packs), an add killed mid-upload (garbage), b mounted on
# host 2, then rm b and gc --grace 1h: b's objects, the killed add's and the
# old manifests are condemned, none deleted, and host 2's mount (opened on
# the old generation) still reads all of b. gc --grace 0 with the proxy
# failing one object's DELETE: the others are deleted, that one stays
# condemned (same TIME), the next gc deletes it; then the bucket holds
# exactly the pointer and what the current manifest references, the
# mirror no file of a dropped pack, and a fresh host reads a as bsdtar -x
# has it. kill -9 of a gc (early, and mid-sweep) leaves a store that
# verifies and reads.
set -u
TEST_NAME=remote_gc
. "$(dirname "$0")/../lib.sh"
CAIRN=$(abs_path "$1")
COMPARE=$(abs_path "$2")
need_tools bsdtar python3

. "$(dirname "$0")/mount_prologue.sh"

S=s3://bucket/p
cd "$WORK" || exit 1
# keys: the bucket's keys under p/ (relative), sorted.
keys() { s3_curl "$S3_ENDPOINT/bucket?list-type=2&prefix=p%2F" | tr '<' '\n' | sed -n 's/^Key>p\///p' | sort; }
get_object() { s3_curl -o "$2" "$S3_ENDPOINT/bucket/p/$1"; }
# manifest FILE: the current manifest into FILE.
manifest() {
	get_object cairn-head head.txt
	get_object "$(cut -d' ' -f4 head.txt)" "$1"
}
# referenced: the pointer and every key the current manifest names, sorted.
referenced() {
	manifest cur.manifest
	{
		echo cairn-head
		cut -d' ' -f4 head.txt
		sed -n 's/^\(chunks\|sketches\) \([^ ]*\) .*/\2/p; s/^pack [^ ]* \([^ ]*\) .*/\1/p
s/^snapshot [^ ]* \([^ ]*\) .*/\1/p' cur.manifest
	} | sort
}
drop_lease() { s3_curl -X DELETE "$S3_ENDPOINT/bucket/p/cairn-lock"; }

# ---- fixtures: a and b share nothing but a text file ----
mkdir -p src/a src/b src/c
head -c $((3 << 20)) /dev/urandom >src/a/a.bin
head -c $((3 << 20)) /dev/urandom >src/b/b.bin
head -c $((8 << 20)) /dev/urandom >src/c/c.bin
python3 -c 'import random; random.seed(5); print("\n".join(str(random.random()) for _ in range(20000)))' >src/a/t.txt
cp src/a/t.txt src/b/
for i in $(seq 1 20); do echo "b small $i" >"src/b/s$i"; done
for x in a b c; do bsdtar -cf $x.tar -C src/$x .; done
mkdir -p ref/a ref/b
bsdtar -xf a.tar -C ref/a
bsdtar -xf b.tar -C ref/b

remote_start
remote_bucket bucket >/dev/null || fail "bucket"
proxy_start

check "init with 1 MiB packs" host h1 init --pack-size 1M
check "add a.tar" host h1 add -q a.tar
check "add b.tar" host h1 add -q b.tar

# ---- an add killed mid-upload leaves garbage ----
before_kill=$(keys | grep -c '^packs/')
proxy_set latency_ms=150
CAIRN_REMOTE_CACHE=$WORK/cache-h1 "$CAIRN" -s "$S" add -q c.tar 2>kill.err &
WRITER_PID=$!
for _ in $(seq 1 300); do
	[ "$(keys | grep -c '^packs/')" -gt "$before_kill" ] && break
	sleep 0.05
done
kill -9 "$WRITER_PID"
wait "$WRITER_PID" 2>/dev/null
WRITER_PID=
sleep 1 # what the proxy still had in flight lands
proxy_set
drop_lease
keys >all0
referenced >ref0
comm -23 all0 ref0 | grep '^packs/' >garbage0
[ -s garbage0 ] || fail "the killed add left no pack behind"

# ---- host 2 mounts b: it reads the generation it opened ----
mkdir -p "$MNT"
MOUNTED=
if [ "$(id -u)" = 0 ] && [ -c /dev/fuse ]; then
	if host h2 mount -o "cache=$WORK/blobs" b "$MNT"; then
		MOUNTED=1
	else
		fail "mount of b on host 2"
	fi
else
	echo "no FUSE here: the mount across the gc is not checked"
fi

# ---- rm b, gc --grace 1h: condemned, nothing deleted ----
check "rm b" host h1 rm -q b
b_snap=$(grep "^snapshot $(printf b | xxd -p) " cur.manifest | cut -d' ' -f3)
keys >all1
host h1 gc --grace 1h >gc1.out 2>gc1.err || fail "gc --grace 1h: $(cat gc1.err)"
cat gc1.out
grep -q "objects condemned" gc1.out || fail "gc --grace 1h says nothing of condemned objects"
grep -q " 0 objects deleted" gc1.out || fail "gc --grace 1h deleted objects"
keys >all2
[ -z "$(comm -23 all1 all2)" ] || fail "gc --grace 1h deleted: $(comm -23 all1 all2 | tr '\n' ' ')"
manifest gc1.manifest
referenced >ref2
# every object of the store not referenced is condemned
comm -23 all2 ref2 >unref2
sed -n 's/^condemned \([^ ]*\) .*/\1/p' gc1.manifest | sort >cond2
[ -s unref2 ] && cmp -s unref2 cond2 ||
	fail "condemned after gc --grace 1h: $(tr '\n' ' ' <cond2); unreferenced: $(tr '\n' ' ' <unref2)"
grep -q "^condemned $b_snap " gc1.manifest || fail "b's snapshot file $b_snap not condemned"
for k in $(cat garbage0); do
	grep -q "^condemned $k " gc1.manifest || fail "the killed add's $k not condemned"
done
grep -q "$(cut -d' ' -f4 head.txt)" cond2 && fail "the current manifest is condemned"
if [ -n "$MOUNTED" ]; then
	check "host 2's mount still reads all of b after the gc" \
		python3 "$COMPARE" --no-dir-mtime "$MNT" ref/b
	"$CAIRN" umount "$MNT" || fail "umount"
fi

# ---- gc --grace 0, one DELETE failing: it stays condemned, same TIME ----
t1=$(sed -n "s|^condemned $b_snap ||p" gc1.manifest)
proxy_set fault=error status=503 methods=DELETE "match=$b_snap"
host h1 gc --grace 0 >gc2.out 2>gc2.err || fail "gc --grace 0 with a failing DELETE: $(cat gc2.err)"
cat gc2.out gc2.err
proxy_set
grep -q "could not be deleted" gc2.err || fail "gc says nothing of the failed delete"
keys >all3
referenced >ref3
[ "$(comm -23 all3 ref3)" = "$b_snap" ] ||
	fail "after gc --grace 0 with $b_snap's DELETE failing, unreferenced: $(comm -23 all3 ref3 | tr '\n' ' ')"
[ "$(sed -n "s|^condemned $b_snap ||p" cur.manifest)" = "$t1" ] ||
	fail "$b_snap's condemned time changed: $t1 -> $(grep "$b_snap" cur.manifest)"
host h1 gc --grace 0 >gc3.out 2>gc3.err || fail "the next gc: $(cat gc3.err)"
cat gc3.out
keys >all4
grep -qx "$b_snap" all4 && fail "the next gc did not delete $b_snap"
referenced >ref4
cmp -s all4 ref4 || fail "the bucket holds more than the pointer and what the manifest names: $(comm -23 all4 ref4 | tr '\n' ' ')"
for f in "$WORK"/cache-h1/*/packs/*.pack "$WORK"/cache-h1/*/packs/*.have; do
	[ -e "$f" ] || continue
	n=$(basename "$f" | cut -c1-8)
	grep -q "^pack $n " cur.manifest || fail "the mirror kept $(basename "$f") of a dropped pack"
done
rm -rf out
check "extract a on a fresh host" host h3 extract a out
check "a = bsdtar -x" python3 "$COMPARE" out ref/a
check "verify on a fresh host" host h3 verify -q

# ---- kill -9 of a gc, early and mid-sweep ----
# kill_gc WHEN: WHEN early: 3 s into it; sweep: once it has deleted one.
kill_gc() {
	check "add b again" host h1 add -q b.tar
	check "rm b again" host h1 rm -q b
	local deletes
	deletes=$(proxy_count DELETE)
	proxy_set latency_ms=200
	CAIRN_REMOTE_CACHE=$WORK/cache-h1 "$CAIRN" -s "$S" gc -q --grace 0 &
	WRITER_PID=$!
	if [ "$1" = early ]; then
		sleep 3
	else
		for _ in $(seq 1 600); do
			[ "$(proxy_count DELETE)" -gt "$deletes" ] && break
			sleep 0.05
		done
		[ "$(proxy_count DELETE)" -gt "$deletes" ] || fail "gc never deleted"
	fi
	kill -9 "$WRITER_PID"
	wait "$WRITER_PID" 2>/dev/null
	WRITER_PID=
	sleep 1
	proxy_set
	drop_lease
	check "verify after gc killed ($1)" host "k$1" verify -q
	rm -rf out
	host "k$1" extract a out || fail "extract after gc killed ($1)"
	check "a after gc killed ($1)" python3 "$COMPARE" out ref/a
}
kill_gc early
kill_gc sweep
check "gc after the killed ones" host h1 gc -q --grace 0
keys >all5
referenced >ref5
cmp -s all5 ref5 || fail "after the killed gcs and one more: $(comm -23 all5 ref5 | tr '\n' ' ')"
check "verify at the end" host fresh verify -q

finish
