#!/usr/bin/env bash
# test_remote_hosts.sh: one s3:// store, many hosts, against a real Swift
# with s3api through the proxy. Three hosts (each its own cache directory,
# blob cache and mount point) mount snapshot a with real FUSE mounts and
# read it while a writer adds b; a fresh mount on each host then sees b and
# reads it; gc (a fifth cache) runs while the mounts read a and b; an add
# killed with -9 mid-upload while the mounts read leaves the store as it
# was (verify, ls), and the next add after its lease is removed works. Every
# read is compared with bsdtar -x (compare.py). The checks hold whether gc
# deletes unreferenced objects at once or after a grace period: they never
# look at which objects are there.
set -u
export LC_ALL=C.UTF-8
TEST_NAME=remote_hosts
. "$(dirname "$0")/../lib.sh"
CAIRN=$(abs_path "$1")
COMPARE=$(abs_path "$2")
need_tools bsdtar python3
[ "$(id -u)" = 0 ] || skip "mounting with passthrough needs root"
[ -c /dev/fuse ] || skip "there is no /dev/fuse"

. "$(dirname "$0")/mount_prologue.sh"

S=s3://bucket/p
HOSTS="h1 h2 h3"
cd "$WORK" || exit 1
# mount_on HOST SNAPSHOT: a real mount at $WORK/mnt-HOST-SNAPSHOT.
mount_on() {
	local m=$WORK/mnt-$1-$2
	mkdir -p "$m"
	MOUNTS+=("$m")
	host "$1" mount -o "cache=$WORK/blobs-$1" "$2" "$m" || fail "mount of $2 on $1"
}
umount_all() {
	local m
	for m in "${MOUNTS[@]}"; do
		mountpoint -q "$m" || continue
		"$CAIRN" umount "$m" || fail "umount $m"
	done
}
# readers SNAPSHOT...: on every host, compare each SNAPSHOT's mount with
# bsdtar -x over and over until the file stop exists (at least once);
# differences go to bad.
readers() {
	local h s
	rm -f stop
	for h in $HOSTS; do
		(
			while :; do
				for s in "$@"; do
					python3 "$COMPARE" --no-dir-mtime "mnt-$h-$s" "ref/$s" >>bad 2>&1 ||
						echo "$h $s differs" >>bad
				done
				[ -e stop ] && break
			done
		) &
		READERS+=($!)
	done
}
stop_readers() {
	local p
	touch stop
	for p in "${READERS[@]}"; do
		wait "$p"
	done
	READERS=()
	if [ -s bad ]; then
		fail "$1: $(head -5 bad)"
		: >bad
	else
		pass
	fi
}

# ---- fixtures: a, b (read by the mounts), x (dropped, for gc), c (killed) ----
tree() { # tree DIR SEED BIG_MIB
	mkdir -p "$1/d/deep"
	head -c $(($3 << 20)) /dev/urandom >"$1/big.bin"
	python3 -c 'import random, sys; random.seed(int(sys.argv[1]))
print("\n".join(str(random.random()) for _ in range(30000)))' "$2" >"$1/d/text.txt"
	for i in $(seq 1 60); do echo "small $2 $i" >"$1/d/deep/s$i"; done
	ln -s d/text.txt "$1/link"
}
for s in a b x c; do
	case $s in a) n=6 ;; b) n=8 ;; x) n=2 ;; c) n=40 ;; esac
	tree "src-$s" "${#s}$n" "$n"
	bsdtar -cf "$s.tar" -C "src-$s" .
	mkdir -p "ref/$s"
	bsdtar -xf "$s.tar" -C "ref/$s"
done
: >bad

remote_start
remote_bucket bucket >/dev/null || fail "bucket"
proxy_start

check "add a" host w add -q a.tar
check "add x" host w add -q x.tar
for h in $HOSTS; do mount_on "$h" a; done

# ---- a writer adds b while three hosts read a (cold caches) ----
readers a
host w add -q b.tar 2>add-b.err || fail "add b while mounts read: $(cat add-b.err)"
stop_readers "three mounts of a while b was added"
for h in $HOSTS; do
	[ "$(host "$h" ls | tr '\n' ' ')" = "a b x " ] || fail "ls on $h after the add: $(host "$h" ls)"
	mount_on "$h" b
done
readers a b
stop_readers "fresh mounts of b, and a, on every host"

# ---- gc (a fifth cache) while the mounts read a and b ----
check "rm x" host w rm -q x
readers a b
CAIRN_REMOTE_CACHE=$WORK/cache-gc "$CAIRN" -s "$S" gc -q 2>gc.err || fail "gc while mounts read: $(cat gc.err)"
stop_readers "mounts of a and b while gc ran"
check "verify after gc (a new host)" host v1 verify -q
[ "$(host v1 ls | tr '\n' ' ')" = "a b " ] || fail "ls after gc: $(host v1 ls)"

# ---- kill -9 of an add mid-upload while the mounts read ----
proxy_set latency_ms=100 match=packs
readers a b
host w add -q c.tar 2>kill.err &
WRITER_PID=$!
posts=$(proxy_count POST)
puts=$(proxy_count PUT)
for _ in $(seq 1 600); do # a pack's upload began
	[ "$(proxy_count POST)" -gt "$posts" ] || [ "$(proxy_count PUT)" -gt $((puts + 1)) ] && break
	sleep 0.05
done
[ "$(proxy_count POST)" -gt "$posts" ] || [ "$(proxy_count PUT)" -gt $((puts + 1)) ] ||
	fail "kill -9: the add never began uploading"
sleep 0.3
kill -9 "$WRITER_PID"
wait "$WRITER_PID" 2>/dev/null
WRITER_PID=
stop_readers "mounts of a and b while an add was killed"
proxy_set
[ "$(host v2 ls | tr '\n' ' ')" = "a b " ] || fail "ls after kill -9: $(host v2 ls)"
check "verify after kill -9 (a new host)" host v2 verify -q
s3_curl -X DELETE "$S3_ENDPOINT/bucket/p/cairn-lock"
check "add c after the killed writer's lease is removed" host w add -q c.tar
rm -rf out-c
host h1 extract c out-c || fail "extract c on h1"
check "c = bsdtar -x" python3 "$COMPARE" out-c ref/c
readers a b
stop_readers "the mounts after the add of c"

umount_all
finish
