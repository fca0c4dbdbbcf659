#!/bin/bash
# test_chunklists.sh: the store writer's pipeline (store/writer_pipe.c: the
# reading thread copies, threads cut, hash and deduplicate) makes the same
# snapshots as the single thread before it: for a fixed synthetic tar
# (chunklists.py make), the digest of the snapshot's chunk lists (the cut
# points, their order, which chunks are equal; not the store's keyed ids) is
# the one main's binary gave before the change, with the default chunk sizes
# and with small ones (many more batch boundaries to resynchronise at), on
# one CPU and on all, and the same from a pipe. CAIRN_THREAD_CPU reports the
# split of CPU time by thread.
#
# usage: test_chunklists.sh CAIRN CHUNKLISTS_PY
set -u
TEST_NAME=test_chunklists
. "$(dirname "$0")/../lib.sh"
CAIRN=$(abs_path "$1")
CL=$(abs_path "$2")
export LC_ALL=C.UTF-8

need_tools python3

WORK=$(mktemp -d "${TMPDIR:-/tmp}/cairn-chunklists-XXXXXX")
[ -n "${KEEP:-}" ] || trap 'rm -rf "$WORK"' EXIT
python3 "$CL" make "$WORK/cl.tar" || fail "making the tar"

# Computed with main's binary (commit 8092c16) before the pipeline.
EXPECT_DEFAULT="062ba7a49c6b8d29dec44456caf07a08b143c55800c4b86ff79e0e9e96a22654 318 lists 746 runs 628 chunks"
EXPECT_SMALL="4a918e477737aad7228265ea6ff67844b3648352001d2ccd3449a1530e2299ca 318 lists 8247 runs 6310 chunks"

PIN=()
command -v taskset >/dev/null && PIN=(taskset -c 0)

# run NAME EXPECTED INIT_OPTIONS...
run() {
	local name=$1 expected=$2 store=$WORK/$1 got
	shift 2
	"$CAIRN" -s "$store" init "$@" >/dev/null || fail "$name: init"
	CAIRN_THREAD_CPU=1 "$CAIRN" -s "$store" add -q "$WORK/cl.tar" 2>"$WORK/err" ||
		fail "$name: add: $(cat "$WORK/err")"
	grep -q "^thread cpu: read [0-9.]* s, .* read share [0-9.]*$" "$WORK/err" ||
		fail "$name: no thread cpu line: $(cat "$WORK/err")"
	got=$(python3 "$CL" digest "$store/snapshots/cl")
	[ "$got" = "$expected" ] || fail "$name: chunk lists differ: $got, expected $expected"
	"${PIN[@]}" "$CAIRN" -s "$store" add -q -n one "$WORK/cl.tar" || fail "$name: add on one CPU"
	got=$(python3 "$CL" digest "$store/snapshots/one")
	[ "$got" = "$expected" ] || fail "$name: on one CPU: $got, expected $expected"
	"$CAIRN" -s "$store" add -q -n piped - <"$WORK/cl.tar" || fail "$name: add from a pipe"
	[ "$(python3 "$CL" chunks "$store/snapshots/piped")" = \
		"$(python3 "$CL" chunks "$store/snapshots/cl")" ] || fail "$name: from a pipe, differ"
	# Through the dedup path too: a fresh store, the snapshots read back.
	"$CAIRN" -s "$store" verify >/dev/null || fail "$name: verify"
	mkdir "$WORK/x-$name"
	"$CAIRN" -s "$store" extract piped "$WORK/x-$name" || fail "$name: extract"
	python3 - "$WORK/cl.tar" "$WORK/x-$name" <<'PY' || fail "$name: extracted bytes differ"
import sys, tarfile, os
with tarfile.open(sys.argv[1]) as t:
    for m in t.getmembers():
        if m.isfile() and t.extractfile(m).read() != open(os.path.join(sys.argv[2], m.name), 'rb').read():
            sys.exit(m.name)
PY
	pass
}

run default "$EXPECT_DEFAULT"
run small "$EXPECT_SMALL" --chunk-min 1K --chunk-avg 4K --chunk-max 16K

finish
