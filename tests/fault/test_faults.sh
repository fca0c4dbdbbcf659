#!/bin/bash
# test_faults.sh: every write, fsync, rename, creating open and ftruncate
# of `cairn add` (to a store, and the first one, which creates it), `cairn
# rm` and `cairn gc` fails in turn, with ENOSPC and
# then EIO (fault.c, preloaded, counts the calls in a first run and fails
# the Nth in the later ones). Each failing run must exit non-zero with a
# one-line error that names the store and says what failed; afterwards
# `cairn verify` passes, every earlier snapshot extracts as before, and
# the snapshot being added is either absent or whole.
#
# usage: test_faults.sh CAIRN FAULT_SO COMPARE_PY
. "$(dirname "$0")/lib.sh" faults "$@"

[ -r "$SHIM" ] || skip "the fault shim $SHIM is not built"
# In a sanitizer build the shim comes before the ASan runtime.
export ASAN_OPTIONS="${ASAN_OPTIONS:-}:verify_asan_link_order=0"

# Small stores, so the number of calls (and runs) stays small: 64 KiB
# chunks on average, 1 MiB packs, so an add seals packs on the way.
init_store() {
	"$CAIRN" init --chunk-min 16K --chunk-avg 64K --chunk-max 256K --pack-size 1M "$1" >/dev/null
}

cd "$WORK" || exit 1
make_tree src/a 1 900000
make_tree src/b 2 300000
make_tree src/c 3 1300000 src/a # shares a's chunks: dedup hits to confirm
make_tree src/x 4 700000 src/a
make_tree src/y 5 400000
for t in a b c x y; do
	make_tar $t.tar src/$t
	mkdir -p ref/$t
	bsdtar -xf $t.tar -C ref/$t
done

# base: a and b, for the add (of c) and rm (of b) runs.
init_store base
"$CAIRN" -s base add -q a.tar b.tar || fail "adding a and b"
# gcbase: a, whose chunks also sit in x's packs, and x and y removed: gc
# rewrites x's packs (moving a's chunks) and deletes y's.
init_store gcbase
"$CAIRN" -s gcbase add -q x.tar a.tar y.tar && "$CAIRN" -s gcbase rm -q x y ||
	fail "making the gc store"
for t in a b; do
	snapshot_matches base $t ref/$t full && pass || fail "snapshot $t differs from bsdtar -x"
done

# A run's message: one line, "cairn: ", the store named, the errno told
# (after the note that a first add created the store).
check_message() {
	local err=$1 store=$2 errno=$3 what=$4 text
	text=$([ "$errno" = EIO ] && echo "Input/output error" || echo "No space left on device")
	sed -i '/^cairn: created a new store in /d' "$err"
	if [ "$(wc -l <"$err")" != 1 ] || ! grep -q "^cairn: " "$err" ||
		! grep -qF "$store" "$err" || ! grep -qF "$text" "$err"; then
		fail "$what: not one clear line naming the store and the error:"
		head -5 "$err"
		return 1
	fi
	sed "s|$store|STORE|g" "$err" >>"$WORK/messages"
}

# After a failed run: a sound store, the kept snapshots as they were, and
# each maybe-snapshot absent or whole.
check_store() {
	local store=$1 what=$2 t
	if [ -n "${NEW_STORE:-}" ] && [ ! -e "$store/config" ]; then
		"$CAIRN" -s "$store" add -q b.tar 2>/dev/null || fail "$what: the next add fails"
	fi
	store_sound "$store" || fail "$what: verify fails afterwards"
	for t in $KEEP_SNAPSHOTS; do
		snapshot_matches "$store" $t ref/$t || fail "$what: snapshot $t no longer extracts as before"
	done
	for t in $MAYBE_SNAPSHOTS; do
		if has_snapshot "$store" $t; then
			snapshot_matches "$store" $t ref/$t || fail "$what: snapshot $t is there but not whole"
		fi
	done
}

# fault_runs BASE NAME CAIRN_ARGS...: counts the calls of the command on a
# copy of BASE, then fails each one in turn with each errno.
fault_runs() {
	local base=$1 name=$2 count i errno status what
	shift 2
	rm -rf run
	cp -a "$base" run
	CAIRN_FAULT_COUNT=$WORK/count LD_PRELOAD=$SHIM "$CAIRN" -s "$WORK/run" "$@" >/dev/null 2>err ||
		fail "$name: the counting run failed: $(cat err)"
	count=$(cat count)
	echo "$name: $count calls to fail, each with ENOSPC and EIO"
	[ "$count" -gt 0 ] || fail "$name: no calls counted (is the shim loaded?)"
	for errno in ENOSPC EIO; do
		for i in $(seq 1 "$count"); do
			rm -rf run
			cp -a "$base" run
			CAIRN_FAULT_NTH=$i CAIRN_FAULT_ERRNO=$errno CAIRN_FAULT_LOG=$WORK/fault.log \
				LD_PRELOAD=$SHIM "$CAIRN" -s "$WORK/run" "$@" >/dev/null 2>err
			status=$?
			what="$name, call $i failing with $errno ($(tail -n 1 fault.log 2>/dev/null))"
			if [ $status = 0 ]; then
				fail "$what: exited 0"
			elif check_message err "$WORK/run" $errno "$what"; then
				pass
			fi
			check_store "$WORK/run" "$what"
		done
	done
}

KEEP_SNAPSHOTS="a b" MAYBE_SNAPSHOTS="c"
fault_runs base add add -q -n c c.tar
# The first add, which creates the store: a failed one leaves no store (a
# directory without a config, which the next add completes) or a sound one.
mkdir -p empty
NEW_STORE=1 KEEP_SNAPSHOTS="" MAYBE_SNAPSHOTS="b"
fault_runs empty "first add" add -q b.tar
NEW_STORE=
KEEP_SNAPSHOTS="a" MAYBE_SNAPSHOTS="b"
fault_runs base rm rm -q b
KEEP_SNAPSHOTS="a" MAYBE_SNAPSHOTS=""
fault_runs gcbase gc gc -q

echo "the messages seen (store path as STORE):"
sort "$WORK/messages" 2>/dev/null | sed -E 's/[0-9a-f]{16}/XXXX/g; s/[0-9a-f]{8}\.pack/NNNNNNNN.pack/g' |
	sort | uniq -c
finish
