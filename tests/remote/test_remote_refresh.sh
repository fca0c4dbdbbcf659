#!/usr/bin/env bash
# test_remote_refresh.sh: whole-store mounts of an s3:// store see what a
# writer commits after they mounted, against a real Swift with s3api
# through the proxy. Two hosts (each its own cache directory and blob
# cache) mount the whole store with -o refresh=1; while idle, each refresh
# costs exactly one GET, of cairn-head (counted through the proxy: no other
# request, and the GETs' bytes are cairn-head's); a writer adds b and both
# mounts show it, equal to bsdtar -x; the writer removes a and it leaves
# both listings while a file opened from it before still reads its bytes;
# while refreshes fail (503 on cairn-head) the mounts keep what they show,
# and catch up once the engine answers again. Waits are polls with a bound, never fixed sleeps.
set -u
export LC_ALL=C.UTF-8
TEST_NAME=remote_refresh
. "$(dirname "$0")/../lib.sh"
CAIRN=$(abs_path "$1")
COMPARE=$(abs_path "$2")
need_tools bsdtar python3 getfattr
[ "$(id -u)" = 0 ] || skip "mounting needs root"
[ -c /dev/fuse ] || skip "there is no /dev/fuse"

. "$(dirname "$0")/mount_prologue.sh"

S=s3://bucket/p
HOSTS="h1 h2"
cd "$WORK" || exit 1
wait_for() { # wait_for SECONDS CMD...: polls CMD every 0.1 s until it succeeds
	local i n=$(($1 * 10))
	shift
	for i in $(seq 1 "$n"); do
		"$@" && return 0
		sleep 0.1
	done
	return 1
}
stat_of() { # stat_of MNT KEY: one counter of the mount's user.cairn.stats
	getfattr --only-values -n user.cairn.stats "$1" 2>/dev/null |
		tr ' ' '\n' | sed -n "s/^$2=//p"
}
listed() { # listed MNT "NAMES "
	[ "$(ls "$1" | tr '\n' ' ')" = "$2" ]
}
refreshes() { # the refreshes of every host's mount, summed
	local h n=0
	for h in $HOSTS; do n=$((n + $(stat_of "mnt-$h" refreshes))); done
	echo "$n"
}
counter_at_least() { # counter_at_least MNT KEY N
	[ "$(stat_of "$1" "$2")" -ge "$3" ]
}
each_refreshed() { # each_refreshed N: every mount has refreshed N times
	local h
	for h in $HOSTS; do
		[ "$(stat_of "mnt-$h" refreshes)" -ge "$1" ] || return 1
	done
}

# ---- fixtures ----
for s in a b; do
	mkdir -p "src-$s/d" "ref/$s"
	head -c $((3 << 20)) /dev/urandom >"src-$s/big.bin"
	for i in $(seq 1 20); do echo "small $s $i" >"src-$s/d/s$i"; done
	ln -s d/s1 "src-$s/link"
	bsdtar -cf "$s.tar" -C "src-$s" .
	bsdtar -xf "$s.tar" -C "ref/$s"
done

remote_start
remote_bucket bucket >/dev/null || fail "bucket"
proxy_start
check "add a" host w add -q a.tar
for h in $HOSTS; do
	mkdir -p "mnt-$h"
	MOUNTS+=("$WORK/mnt-$h")
	host "$h" mount -o "cache=$WORK/blobs-$h,refresh=1" "$WORK/mnt-$h" || fail "mount on $h"
	check "a on $h = bsdtar -x" python3 "$COMPARE" --no-dir-mtime "mnt-$h/a" ref/a
done

# ---- an idle refresh: one GET of cairn-head, nothing else ----
head_bytes=$(s3_curl "$S3_ENDPOINT/bucket/p/cairn-head" | wc -c)
[ "$head_bytes" -gt 0 ] || fail "cairn-head cannot be read"
r0=$(refreshes)
requests0=$(proxy_count requests)
gets0=$(proxy_count GET)
bytes0=$(proxy_count GET_bytes)
wait_for 60 each_refreshed $((r0 / 2 + 5)) || fail "the mounts did not refresh: $(refreshes)"
requests=$(($(proxy_count requests) - requests0))
gets=$(($(proxy_count GET) - gets0))
bytes=$(($(proxy_count GET_bytes) - bytes0))
refreshed=$(($(refreshes) - r0))
echo "idle: $refreshed refreshes, $requests requests, $gets GETs, $bytes bytes (cairn-head: $head_bytes)"
[ "$requests" = "$gets" ] || fail "idle refreshes sent $((requests - gets)) requests besides GETs"
[ "$bytes" = $((gets * head_bytes)) ] || fail "idle refreshes GOT $bytes bytes, not $gets x cairn-head"
if [ "$gets" -ge $((refreshed - 2)) ] && [ "$gets" -le $((refreshed + 2)) ]; then
	pass
else
	fail "$gets GETs for $refreshed refreshes"
fi

# ---- a writer adds b: both mounts show it ----
exec 3<mnt-h1/a/big.bin
check "add b" host w add -q b.tar
for h in $HOSTS; do
	if wait_for 60 test -d "mnt-$h/b"; then
		pass
	else
		fail "b never appeared on $h"
	fi
	check "b on $h = bsdtar -x" python3 "$COMPARE" --no-dir-mtime "mnt-$h/b" ref/b
	check "a on $h is still a" python3 "$COMPARE" --no-dir-mtime "mnt-$h/a" ref/a
done

# ---- the writer removes a: it leaves both listings, an open file reads on ----
check "rm a" host w rm -q a
for h in $HOSTS; do
	if wait_for 60 listed "mnt-$h" "b "; then
		pass
	else
		fail "a never left the listing on $h: $(ls "mnt-$h")"
	fi
done
check "a file of a opened before its rm still reads" cmp - ref/a/big.bin <&3
exec 3<&-
# ---- refreshes that fail (503 on cairn-head): the mounts keep what they
# show, and catch up once the engine answers again ----
proxy_set fault=error status=503 match=cairn-head
r1=$(stat_of mnt-h1 refreshes)
wait_for 120 counter_at_least mnt-h1 refreshes $((r1 + 2)) || fail "h1 stopped refreshing"
check "failing refreshes leave the listing" listed mnt-h1 "b "
check "b host h1 reads while refreshes fail" python3 "$COMPARE" --no-dir-mtime mnt-h1/b ref/b
# (the writer past the proxy: its faults are for the mounts)
AWS_ENDPOINT_URL=$S3_ENDPOINT check "add a again while refreshes fail" host w add -q a.tar
proxy_set
for h in $HOSTS; do
	if wait_for 60 listed "mnt-$h" "a b "; then
		pass
	else
		fail "$h did not catch up after the failures: $(ls "mnt-$h")"
	fi
done
check "the new a on h2 = bsdtar -x" python3 "$COMPARE" --no-dir-mtime mnt-h2/a ref/a
for h in $HOSTS; do
	[ "$(stat_of "mnt-$h" read_errors)" = 0 ] || fail "read errors on $h"
	"$CAIRN" umount "$WORK/mnt-$h" || fail "umount on $h"
done
finish
