#!/bin/bash
# test_concurrent.sh: writers at the same time on one store. Two first adds
# that both create the store (only one may write its config and hash key),
# two adds on an existing store (one waits for the other's lock and says
# so), and an add racing a gc: every command succeeds, verify passes, and
# every snapshot is whole.
#
# usage: test_concurrent.sh CAIRN FAULT_SO COMPARE_PY
. "$(dirname "$0")/lib.sh" concurrent "$@"

cd "$WORK" || exit 1
make_tree src/a 1 300000
make_tree src/b 2 300000
make_tree src/c 3 8000000
make_tree src/d 4 8000000 src/c
for t in a b c d; do
	make_tar $t.tar src/$t
	mkdir -p ref/$t
	bsdtar -xf $t.tar -C ref/$t
done

# together STORE NAME:TAR NAME:TAR: two adds started at once; both must
# succeed. Their messages go to err-1 and err-2.
together() {
	local store=$1 i=0 pids=() spec status=0
	shift
	for spec in "$@"; do
		i=$((i + 1))
		"$CAIRN" -s "$store" add -q -n "${spec%%:*}" "${spec#*:}" 2>"err-$i" &
		pids+=($!)
	done
	for i in 1 2; do
		wait "${pids[$((i - 1))]}" || {
			echo "add ${!i} failed: $(cat "err-$i")"
			status=1
		}
	done
	return $status
}

whole() {
	local store=$1 t
	shift
	store_sound "$store" || return 1
	for t in "$@"; do
		snapshot_matches "$store" $t ref/$t || {
			echo "snapshot $t differs"
			return 1
		}
	done
}

# Two first adds: both create the store.
for round in $(seq 1 20); do
	rm -rf fresh
	if together "$WORK/fresh" a:a.tar b:b.tar && whole fresh a b; then
		pass
	else
		fail "two first adds at once, round $round"
	fi
done

# Two adds on a store: the second waits for the first's lock.
waited=0
for round in 1 2 3; do
	rm -rf store
	"$CAIRN" -s store add -q a.tar 2>/dev/null
	if together "$WORK/store" c:c.tar d:d.tar && whole store a c d; then
		pass
	else
		fail "two adds at once, round $round"
	fi
	cat err-1 err-2 | grep -q "waiting for another cairn process writing to it" &&
		waited=$((waited + 1))
	other=$(cat err-1 err-2 | grep -v "waiting for another cairn process writing to it")
	[ -z "$other" ] && pass || fail "unexpected messages: $other"
done
echo "the second add said it was waiting in $waited of 3 rounds"

# An add and a gc at once (gc has something to do: b is removed).
rm -rf store
"$CAIRN" -s store add -q a.tar b.tar 2>/dev/null && "$CAIRN" -s store rm -q b
"$CAIRN" -s store add -q c.tar 2>err-1 &
add_pid=$!
"$CAIRN" -s store gc -q 2>err-2
gc_status=$?
wait $add_pid
add_status=$?
if [ $add_status = 0 ] && [ $gc_status = 0 ] && whole store a c && ! has_snapshot store b; then
	pass
else
	fail "add and gc at once: add $add_status, gc $gc_status: $(cat err-1 err-2)"
fi
finish
