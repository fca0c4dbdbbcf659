#!/bin/bash
# test_kill.sh: kill -9 at random points of `cairn add` (a medium archive,
# 40 kills) and of `cairn gc` (a gc that rewrites packs, 20 kills), each on
# a fresh copy of the same store. After every kill `cairn verify` passes,
# the earlier snapshot extracts as before, and the killed add's snapshot is
# either absent or whole. A last add and gc on a killed store must finish
# (the next writer clears the leftovers). The delays are drawn from a seed
# that the test prints (CAIRN_KILL_SEED=N repeats a run).
#
# usage: test_kill.sh CAIRN FAULT_SO COMPARE_PY
. "$(dirname "$0")/lib.sh" kill "$@"

ADD_KILLS=${CAIRN_ADD_KILLS:-40}
GC_KILLS=${CAIRN_GC_KILLS:-20}
SEED=${CAIRN_KILL_SEED:-$(date +%s)}
RANDOM=$SEED
echo "seed $SEED"

cd "$WORK" || exit 1
# 4 MiB packs, so a medium add seals several on the way.
init_store() {
	"$CAIRN" init --pack-size 4M "$1" >/dev/null
}
make_tree src/a 1 2000000
make_tree src/big 2 6000000 src/a
for i in 3 4 5; do
	make_tree src/big/more-$i $i 2000000
done
make_tree src/x 6 3000000 src/a
for t in a big x; do
	make_tar $t.tar src/$t
	mkdir -p ref/$t
	bsdtar -xf $t.tar -C ref/$t
done

init_store base
"$CAIRN" -s base add -q a.tar || fail "adding a"
# gcbase: a's chunks sit in x's packs (x was added first), x is removed:
# gc moves a's chunks into new packs and deletes x's.
init_store gcbase
"$CAIRN" -s gcbase add -q x.tar a.tar && "$CAIRN" -s gcbase rm -q x || fail "making the gc store"

# duration COMMAND...: how long it takes, in milliseconds.
duration() {
	local start end
	start=$(date +%s%N)
	"$@" >/dev/null 2>&1
	end=$(date +%s%N)
	echo $(((end - start) / 1000000))
}

rm -rf run && cp -a base run
add_ms=$(duration "$CAIRN" -s run add -q big.tar)
rm -rf run && cp -a gcbase run
gc_ms=$(duration "$CAIRN" -s run gc -q)
echo "an add of big.tar takes $add_ms ms, gc $gc_ms ms"

# kill_at MS COMMAND...: runs the command, kill -9 after MS milliseconds.
# Returns 0 if the kill landed while it ran.
kill_at() {
	local ms=$1 pid
	shift
	"$@" >/dev/null 2>&1 &
	pid=$!
	sleep "$(printf '%d.%03d' $((ms / 1000)) $((ms % 1000)))"
	if kill -9 $pid 2>/dev/null; then
		wait $pid 2>/dev/null
		return 0
	fi
	wait $pid 2>/dev/null
	return 1
}

after_kill() {
	local what=$1 t
	store_sound run || fail "$what: verify fails"
	snapshot_matches run a ref/a || fail "$what: snapshot a no longer extracts as before"
	for t in $MAYBE_SNAPSHOTS; do
		if has_snapshot run $t; then
			committed=$((committed + 1))
			snapshot_matches run $t ref/$t || fail "$what: snapshot $t is there but not whole"
		fi
	done
	pass
}

# kills BASE COUNT DURATION_MS COMMAND...: COUNT runs on fresh copies of
# BASE, each killed after a random delay within the command's duration.
kills() {
	local base=$1 count=$2 ms=$3 i delay landed=0
	shift 3
	committed=0
	for i in $(seq 1 "$count"); do
		rm -rf run && cp -a "$base" run
		delay=$((RANDOM * (ms + 20) / 32768))
		kill_at $delay "$CAIRN" -s "$WORK/run" "$@" && landed=$((landed + 1))
		after_kill "$* killed after $delay ms (run $i)"
	done
	echo "$*: $count runs, $landed killed while running, $committed left a snapshot"
}

MAYBE_SNAPSHOTS="big"
kills base "$ADD_KILLS" "$add_ms" add -q big.tar
MAYBE_SNAPSHOTS=""
kills gcbase "$GC_KILLS" "$gc_ms" gc -q

# A killed store is a good store: the next add and gc finish.
rm -rf run && cp -a base run
kill_at $((add_ms / 2)) "$CAIRN" -s "$WORK/run" add -q big.tar
if "$CAIRN" -s run add -q --replace big.tar && "$CAIRN" -s run gc -q >/dev/null &&
	store_sound run && snapshot_matches run big ref/big full; then
	pass
else
	fail "add and gc after a killed add"
fi
leftovers=$(find run -name 'tmp-*' -o -name '*.tmp' | wc -l)
[ "$leftovers" = 0 ] && pass || fail "$leftovers temp files left after the next add and gc"
finish
