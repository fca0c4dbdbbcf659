#!/usr/bin/env bash
# test_remote_copy.sh: cairn copy between local and s3:// stores, against a
# real Swift with s3api. A local store's snapshots copied to a new remote
# store (which gets the local store's key: its snapshot files come out
# byte-identical), read back by a second host (its own cache) as bsdtar -x
# has them; a second copy sends nothing; the remote store copied back to a
# new local store and to an existing local store of another key; a local
# store copied into an existing remote store of another key; verify of each.
set -u
TEST_NAME=remote_copy
. "$(dirname "$0")/../lib.sh"
CAIRN=$(abs_path "$1")
COMPARE=$(abs_path "$2")
need_tools bsdtar python3

WORK=$(mktemp -d "${TMPDIR:-/tmp}/cairn-$TEST_NAME-XXXXXX") || exit 1
on_exit() { [ -n "${KEEP:-}" ] || rm -rf "$WORK"; }
trap on_exit EXIT
trap 'exit 1' INT TERM
. "$(dirname "$0")/lib.sh"

cd "$WORK" || exit 1
# on HOST ARGS...: cairn with HOST's own cache directory.
on() {
	local name=$1
	shift
	CAIRN_REMOTE_CACHE=$WORK/cache-$name "$CAIRN" "$@"
}

mkdir -p src/d
head -c $((6 << 20)) /dev/urandom >src/big.bin
for i in $(seq 1 30); do echo "small $i" >"src/d/s$i"; done
bsdtar -cf a.tar -C src .
printf 'more\n' >src/d/more.txt
bsdtar -cf b.tar -C src .
mkdir -p ref/a ref/b
bsdtar -xf a.tar -C ref/a
bsdtar -xf b.tar -C ref/b

remote_start
remote_bucket bucket >/dev/null || fail "bucket"

check "local store: add a and b" "$CAIRN" -s local add -q a.tar b.tar
check "copy local -> new remote" on h1 copy -q local s3://bucket/c
check "the remote lists both" sh -c '[ "$(CAIRN_REMOTE_CACHE=$1 "$2" -s s3://bucket/c ls | tr "\n" " ")" = "a b " ]' \
	sh "$WORK/cache-h2" "$CAIRN"
for snap in a b; do
	rm -rf "out-$snap"
	on h2 -s s3://bucket/c extract "$snap" "out-$snap" >/dev/null || fail "extract $snap from host 2"
	check "host 2: $snap = bsdtar -x" python3 "$COMPARE" "out-$snap" "ref/$snap"
done
check "the remote's snapshot file is the local one's" cmp -s local/snapshots/a "$WORK/cache-h2"/*/snapshots/a
check "verify the remote" on h2 -s s3://bucket/c verify -q
on h1 copy --json local s3://bucket/c >again.json 2>&1 || fail "a second copy: $(cat again.json)"
check "a second copy sends nothing" sh -c '! grep -q "\"chunks_sent\": [1-9]" "$1" && [ "$(grep -c "\"status\": \"unchanged\"" "$1")" = 2 ]' sh again.json

check "copy remote -> new local" on h3 copy -q s3://bucket/c back
check "the copy back verifies" "$CAIRN" -s back verify -q
rm -rf out-back
"$CAIRN" -s back extract b out-back >/dev/null || fail "extract from the copy back"
check "copy back: b = bsdtar -x" python3 "$COMPARE" out-back ref/b
check "init a local store of another key" "$CAIRN" init other
check "copy remote -> local of another key" on h3 copy -q s3://bucket/c other
check "other verifies" "$CAIRN" -s other verify -q
check "other: cat" sh -c '"$1" -s other cat a:big.bin | cmp -s - src/big.bin' sh "$CAIRN"

check "a remote store of its own key" sh -c 'CAIRN_REMOTE_CACHE=$1 "$2" -s s3://bucket/own add -q --name first "$3"' \
	sh "$WORK/cache-h1" "$CAIRN" "$WORK/a.tar"
check "copy local -> that remote (another key)" on h1 copy -q local s3://bucket/own
check "it verifies from a new host" on h4 -s s3://bucket/own verify -q
rm -rf out-own
on h4 -s s3://bucket/own extract b out-own >/dev/null || fail "extract from the other-key remote"
check "other-key remote: b = bsdtar -x" python3 "$COMPARE" out-own ref/b

finish
