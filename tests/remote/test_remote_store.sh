#!/usr/bin/env bash
# test_remote_store.sh: a cairn store on S3 (s3://bucket/p) against a real
# Swift with s3api, through the counting proxy. Two archives added (a tar
# with big and small files, a zip); ls, cat, extract, info and verify agree
# with bsdtar -x; a second host (another cache directory) reading the same
# store fetches only what it needs (counted GETs: a cold open and the cat of
# a small file fetch no whole pack); a real FUSE mount of the remote store
# agrees with bsdtar -x; rm and gc; a second writer is refused while another
# works (its lease renewed as it goes) or a lease runs, and a stale lease is
# taken over; packs are uploaded while an add still reads its input; kill -9 of an add mid-upload leaves the remote as it was;
# damaged manifest, chunk table, pointer and pack bytes (PUT through the S3
# API) give an error naming the object, never wrong bytes.
set -u
TEST_NAME=remote_store
. "$(dirname "$0")/../lib.sh"
CAIRN=$(abs_path "$1")
COMPARE=$(abs_path "$2")
need_tools bsdtar python3 xxd

. "$(dirname "$0")/mount_prologue.sh"

S=s3://bucket/p
cd "$WORK" || exit 1
# mark, then gets/get_bytes/counted: GETs and their bytes since the mark.
mark() {
	GETS0=$(proxy_count GET)
	BYTES0=$(proxy_count GET_bytes)
}
gets() { echo $(($(proxy_count GET) - GETS0)); }
get_bytes() { echo $(($(proxy_count GET_bytes) - BYTES0)); }
counted() { echo "$(gets) GETs, $(get_bytes) bytes"; }
# expect_fail WHAT NEEDLE ARGS...: host ARGS fails, naming NEEDLE.
expect_fail() {
	local what=$1 needle=$2
	shift 2
	if host "$@" >"$WORK/out" 2>"$WORK/err"; then
		fail "$what: succeeded"
	elif ! grep -q -- "$needle" "$WORK/err"; then
		fail "$what: the error lacks '$needle': $(cat "$WORK/err")"
	else
		pass
	fi
}
key_of() { s3_curl "$S3_ENDPOINT/bucket?list-type=2&prefix=p%2F$1" | tr '<' '\n' | sed -n 's/^Key>//p'; }
get_object() { s3_curl -o "$2" "$S3_ENDPOINT/bucket/$1"; }
put_object() { s3_curl -T "$2" -o /dev/null "$S3_ENDPOINT/bucket/$1"; }
# flip FILE OFFSET: FILE with one bit of byte OFFSET flipped, as FILE.bad.
flip() {
	python3 -c 'import sys; d = bytearray(open(sys.argv[1], "rb").read())
d[int(sys.argv[2])] ^= 4
open(sys.argv[1] + ".bad", "wb").write(d)' "$1" "$2"
}

# ---- fixtures ----
mkdir -p src/dir/deep src2
head -c $((12 << 20)) /dev/urandom >src/big.bin
python3 -c 'import random; random.seed(3); print("\n".join(str(random.random()) for _ in range(40000)))' >src/dir/text.txt
for i in $(seq 1 40); do echo "small $i" >"src/dir/deep/s$i"; done
ln -s dir/text.txt src/link
printf 'zip member\n' >src2/z.txt
cp src/dir/text.txt src2/
bsdtar -cf a.tar -C src .
(cd src2 && bsdtar -a -cf ../b.zip .)
mkdir -p ref/a ref/b
(cd ref/a && bsdtar -xf ../../a.tar)
(cd ref/b && bsdtar -xf ../../b.zip)

remote_start
remote_bucket bucket >/dev/null || fail "bucket"
proxy_start

# ---- host 1 adds; everything reads back as bsdtar -x has it ----
check "add a.tar" host h1 add -q a.tar
check "add b.zip" host h1 add -q b.zip
[ "$(host h1 ls | tr '\n' ' ')" = "a b " ] || fail "ls: $(host h1 ls)"
for snap in a b; do
	rm -rf "out-$snap"
	host h1 extract "$snap" "out-$snap" || fail "extract $snap"
	check "extract $snap = bsdtar -x" python3 "$COMPARE" "out-$snap" "ref/$snap"
done
host h1 cat a:dir/text.txt | cmp -s - src/dir/text.txt || fail "cat on host 1"
host h1 info | grep -q "s3://bucket/p" || fail "info names the store: $(host h1 info)"
check "verify" host h1 verify -q

# ---- host 2, cold: the open fetches metadata, a small file a block ----
# the largest pack (big.bin's)
pack_size=0
for key in $(key_of packs%2F); do
	get_object "$key" one.pack
	[ "$(stat -c %s one.pack)" -gt "$pack_size" ] || continue
	pack=$key
	pack_size=$(stat -c %s one.pack)
	mv one.pack pack
done
mark
host h2 ls >ls.out || fail "ls on host 2"
echo "cold open (ls): $(counted)"
[ "$(gets)" -le 5 ] || fail "cold open: $(counted), expected at most 5"
mark
host h2 cat a:dir/deep/s7 >s7 || fail "cat small on host 2"
echo "cold cat of a small file: $(counted) (pack $pack_size bytes)"
check "small file" cmp -s s7 src/dir/deep/s7
[ "$(get_bytes)" -lt $((pack_size / 4)) ] ||
	fail "a small file fetched $(counted) of a $pack_size-byte pack"
mark
host h2 cat a:big.bin >big.out || fail "cat big on host 2"
echo "cold cat of a 12 MiB file: $(counted)"
check "big file" cmp -s big.out src/big.bin
[ "$(gets)" -le 16 ] || fail "a 12 MiB file took $(counted)"
mark
host h2 cat a:big.bin | cmp -s - src/big.bin || fail "warm cat"
[ "$(gets)" -le 1 ] || fail "warm cat fetched: $(counted)"
check "verify on host 2" host h2 verify -q

# ---- only a writer fetches the sketch table ----
# A reader never reads the sketches (a writer finds its delta bases with
# them): host 2's reads left them on the remote; its first add fetches
# them, so the table it pushes still holds every snapshot's, not only the
# new archive's.
sketches_size() {
	s3_curl "$S3_ENDPOINT/bucket/p/$(s3_curl "$S3_ENDPOINT/bucket/p/cairn-head" | cut -d' ' -f4)" |
		awk '$1 == "sketches" { print $3 }'
}
sk0=$(sketches_size)
[ -n "$sk0" ] || fail "the manifest names no sketches"
[ -z "$(find "$WORK/cache-h2" -name sketches)" ] || fail "a reader's mirror holds the sketches"
mkdir -p src3
printf 'one more file\n' >src3/more.txt
bsdtar -cf c.tar -C src3 .
check "add c.tar on host 2" host h2 add -q c.tar
sk1=$(sketches_size)
echo "sketches: $sk0 bytes before host 2's add, $sk1 after"
if [ -n "$sk1" ] && [ "$sk1" -ge "$sk0" ]; then
	pass
else
	fail "host 2's add pushed a sketch table of ${sk1:-no} bytes (was $sk0)"
fi
[ -n "$(find "$WORK/cache-h2" -name sketches)" ] || fail "a writer's mirror lacks the sketches"
check "rm c on host 2" host h2 rm c

# ---- a bit flipped on the way: the chunk is fetched again, right bytes ----
proxy_set fault=flip methods=GET match=packs count=1
host flip cat a:big.bin >flip.out || fail "cat through one flipped bit"
check "a flipped pack byte is fetched again" cmp -s flip.out src/big.bin
[ "$(proxy_count faults)" -ge 1 ] || fail "the proxy flipped no bit"
proxy_set

# ---- a real mount of the remote store on host 3 ----
mkdir -p "$MNT"
if [ "$(id -u)" = 0 ] && [ -c /dev/fuse ]; then
	if CAIRN_REMOTE_CACHE=$WORK/cache-h3 "$CAIRN" mount -s "$S" -o "cache=$WORK/blobs" a "$MNT"; then
		check "mount = bsdtar -x" python3 "$COMPARE" --no-dir-mtime "$MNT" ref/a
		"$CAIRN" umount "$MNT" || fail "umount"
	else
		fail "mount of $S"
	fi
else
	echo "no FUSE here: mount not checked"
fi

# ---- rm and gc, seen by another host ----
check "rm b" host h1 rm -q b
[ "$(host h2 ls | tr '\n' ' ')" = "a " ] || fail "ls after rm on host 2: $(host h2 ls)"
check "gc" host h1 gc -q
check "verify after gc on a new host" host gc verify -q
host gc cat a:dir/text.txt | cmp -s - src/dir/text.txt || fail "cat after gc"

# ---- the lease ----
lease() {
	printf 'cairn-lock 1 00000000000000aa %s 4242 %s %s\n' "$(printf otherhost | xxd -p)" \
		"$1" "$2" >lock.txt
	put_object p/cairn-lock lock.txt
}
now=$(date +%s)
lease "$now" $((now + 600))
expect_fail "add while another host holds the lease" "being written by otherhost (pid 4242)" \
	h1 add -q b.zip
lease $((now - 700)) $((now - 100))
check "a stale lease is taken over" host h1 add -q b.zip
[ "$(host h2 ls | tr '\n' ' ')" = "a b " ] || fail "ls after the add: $(host h2 ls)"

# ---- packs are uploaded as they are sealed, while the add still reads ----
Q=s3://bucket/q
check "init with 1 MiB packs" env CAIRN_REMOTE_CACHE="$WORK/cache-q" "$CAIRN" -s "$Q" init --pack-size 1M
mkfifo fifo
CAIRN_REMOTE_CACHE=$WORK/cache-q "$CAIRN" -s "$Q" add -q --name up - <fifo 2>up.err &
WRITER_PID=$!
exec 7>fifo
for _ in $(seq 1 100); do # the lease taken: what it PUTs next is a pack
	s3_curl "$S3_ENDPOINT/bucket/q/cairn-lock" | grep -q '^cairn-lock ' && break
	sleep 0.1
done
puts=$(proxy_count PUT)
head -c $((8 << 20)) a.tar >&7
for _ in $(seq 1 200); do
	[ "$(proxy_count PUT)" -gt "$puts" ] && break
	sleep 0.1
done
[ "$(proxy_count PUT)" -gt "$puts" ] || fail "no pack was uploaded while the add read its input"
tail -c +$(((8 << 20) + 1)) a.tar >&7
exec 7>&-
wait "$WRITER_PID" || fail "add from a pipe: $(cat up.err)"
WRITER_PID=
CAIRN_REMOTE_CACHE=$WORK/cache-q2 "$CAIRN" -s "$Q" cat up:big.bin | cmp -s - src/big.bin ||
	fail "big.bin of the add from a pipe"
check "verify the store of 1 MiB packs" env CAIRN_REMOTE_CACHE="$WORK/cache-q2" "$CAIRN" -s "$Q" verify -q

# ---- a writer renews its lease while it works ----
head -c $((20 << 20)) /dev/urandom >d.bin
bsdtar -cf d.tar d.bin
proxy_set latency_ms=400
CAIRN_REMOTE_LEASE_SECONDS=4 CAIRN_REMOTE_CACHE=$WORK/cache-h1 "$CAIRN" -s "$S" add -q d.tar &
WRITER_PID=$!
expires() { s3_curl "$S3_ENDPOINT/bucket/p/cairn-lock" | sed -n 's/^cairn-lock 1 .* \([0-9]*\)$/\1/p'; }
for _ in $(seq 1 100); do
	first=$(expires)
	[ -n "$first" ] && break
	sleep 0.1
done
printf 'e\n' >e.txt
bsdtar -cf e.tar e.txt
expect_fail "a second writer while the first works" "being written by $(hostname) (pid $WRITER_PID)" \
	h2 add -q e.tar
# until it moves on, or the lease is gone (its writer done)
later=$first
while [ -n "$later" ] && [ "$later" = "$first" ]; do
	sleep 0.3
	later=$(expires)
done
wait "$WRITER_PID" || fail "add d.tar"
WRITER_PID=
proxy_set
[ -n "$first" ] && [ -n "$later" ] && [ "$later" -gt "$first" ] ||
	fail "the lease was not renewed: expires '$first', then '$later'"
[ -z "$(expires)" ] || fail "the lease outlived its writer"
host h2 cat d:d.bin | cmp -s - d.bin || fail "d.bin on host 2"

# ---- kill -9 mid-upload: the remote stays as it was ----
before=$(host h2 ls | tr '\n' ' ')
head -c $((40 << 20)) /dev/urandom >c.bin
bsdtar -cf c.tar c.bin
proxy_set latency_ms=150
CAIRN_REMOTE_CACHE=$WORK/cache-h1 "$CAIRN" -s "$S" add -q c.tar 2>kill.err &
WRITER_PID=$!
posts=$(proxy_count POST)
for _ in $(seq 1 600); do
	[ "$(proxy_count POST)" -gt "$posts" ] && break # the pack's multipart upload began
	sleep 0.05
done
[ "$(proxy_count POST)" -gt "$posts" ] || fail "kill -9: the add's multipart upload never began"
sleep 0.3
kill -9 "$WRITER_PID"
wait "$WRITER_PID" 2>/dev/null
WRITER_PID=
proxy_set
[ "$(host fresh ls | tr '\n' ' ')" = "$before" ] || fail "after kill -9: $(host fresh ls)"
check "verify after kill -9" host fresh verify -q
expect_fail "the killed writer's lease holds" "being written by" h1 add -q c.tar
s3_curl -X DELETE "$S3_ENDPOINT/bucket/p/cairn-lock"
check "add after the lease is gone" host h1 add -q c.tar
host h2 cat c:c.bin | cmp -s - c.bin || fail "c.bin on host 2"

# ---- damage PUT through the S3 API: errors naming the object ----
get_object p/cairn-head head.txt
manifest=$(cut -d' ' -f4 head.txt)
get_object "p/$manifest" manifest
flip manifest 40
put_object "p/$manifest" manifest.bad
expect_fail "damaged manifest" "$manifest is damaged" d1 ls
put_object "p/$manifest" manifest
chunks=$(sed -n 's/^chunks \([^ ]*\) .*/\1/p' manifest)
get_object "p/$chunks" chunks
flip chunks 100
put_object "p/$chunks" chunks.bad
expect_fail "damaged chunk table" "$chunks is damaged" d2 ls
put_object "p/$chunks" chunks
echo garbage >garbage
put_object p/cairn-head garbage
expect_fail "damaged pointer" "cairn-head is damaged" d3 ls
put_object p/cairn-head head.txt
flip pack $((pack_size / 2))
put_object "$pack" pack.bad
expect_fail "damaged pack" "fetched twice from s3://bucket/$pack" d4 cat a:big.bin
expect_fail "verify of a damaged pack" "does not match" d4 verify
put_object "$pack" pack
host d5 cat a:big.bin | cmp -s - src/big.bin || fail "repaired pack"
grep -rq "$AWS_SECRET_ACCESS_KEY" "$WORK"/err "$WORK"/kill.err && fail "a secret in a message"

finish
