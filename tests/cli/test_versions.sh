#!/bin/bash
# test_versions.sh: the promise that a second version of a tree costs only
# what changed (the "second version" targets in docs/BENCHMARKS.md), on a
# real tree: two adjacent versions of a large npm package
# (fetched once into the build directory by tests/data/fetch-npm.sh). Adding
# the second version to a store that holds the first must cost (in pack
# bytes on disk) well under what the same archive costs in an empty store.
# Both stores must verify, and the second version must extract from the
# shared store exactly as `bsdtar -x` extracts it. Skips (77) when npm or
# the registry is unavailable.
#
# usage: test_versions.sh CAIRN FETCH_NPM CACHE_DIR COMPARE_PY
set -u
TEST_NAME=test_versions
. "$(dirname "$0")/../lib.sh"
CAIRN=$1
FETCH=$2
CACHE=$3
COMPARE=$4
export LC_ALL=C.UTF-8
# Adjacent patch releases: mostly the same bytes, as a next version is.
V1=typescript@5.7.2
V2=typescript@5.7.3
# The second add may cost at most this share of its cost alone, in percent.
LIMIT=60

need_tools bsdtar python3
tarballs=$(sh "$FETCH" "$CACHE" "$V1" "$V2")
status=$?
[ $status -eq 0 ] || exit $status
T1=$(echo "$tarballs" | sed -n 1p)
T2=$(echo "$tarballs" | sed -n 2p)

WORK=$(mktemp -d "${TMPDIR:-/tmp}/cairn-versions-XXXXXX") || exit 1
[ -n "${KEEP:-}" ] || trap 'rm -rf "$WORK"' EXIT
cairn() {
	if "$CAIRN" "$@"; then
		pass
	else
		fail "cairn $* exited $?"
	fi
}

pack_bytes() {
	"$CAIRN" -s "$1" info --json |
		python3 -c 'import json, sys; print(json.load(sys.stdin)["pack_bytes"])'
}

cairn -s "$WORK/shared" add "$T1"
before=$(pack_bytes "$WORK/shared")
cairn -s "$WORK/shared" add "$T2"
after=$(pack_bytes "$WORK/shared")
cairn -s "$WORK/alone" add "$T2"
alone=$(pack_bytes "$WORK/alone")

second=$((after - before))
echo "$V2 after $V1: $second pack bytes; in an empty store: $alone" \
	"($((100 * second / alone))%, limit $LIMIT%)"
[ "$alone" -gt 1000000 ] || fail "$V2 costs only $alone bytes alone: not a real tree?"
[ $((100 * second)) -lt $((LIMIT * alone)) ] ||
	fail "the second version cost $second bytes, not under $LIMIT% of $alone"

cairn -s "$WORK/shared" verify -q
cairn -s "$WORK/alone" verify -q
mkdir -p "$WORK/x/cairn" "$WORK/x/bsdtar"
name=$(basename "$T2" .tgz)
cairn -s "$WORK/shared" extract "$name" "$WORK/x/cairn"
bsdtar -xpf "$T2" -C "$WORK/x/bsdtar" || fail "bsdtar -x $T2"
python3 "$COMPARE" --no-dir-mtime "$WORK/x/cairn" "$WORK/x/bsdtar" ||
	fail "cairn extract and bsdtar -x of $T2 differ"

finish
