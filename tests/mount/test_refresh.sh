#!/bin/bash
# test_refresh.sh: a mount of the whole store sees the snapshots added and
# removed while it is mounted (-o refresh=1). A snapshot added after the
# mount appears in the root (even after a lookup of its name had missed:
# the kernel's cached miss is invalidated) and equals bsdtar -x; one
# removed leaves the listing and lookups while its files opened before
# still read their bytes (a large one passed through, a small one through
# cairn's read path); a name removed and added again shows the new
# snapshot. A mount with refresh=0 and a mount of one snapshot never
# refresh; a mount without the option refreshes on the default interval.
# Waits are polls with a bound, never fixed sleeps.
#
# usage: test_refresh.sh CAIRN MTOOL COMPARE LIB
. "$4" refresh "$@"

# wait_for SECONDS CMD...: polls CMD every 0.1 s until it succeeds.
wait_for() {
	local i n=$(($1 * 10))
	shift
	for i in $(seq 1 "$n"); do
		"$@" && return 0
		sleep 0.1
	done
	return 1
}
listing() {
	ls "$1" | tr '\n' ' '
}
listed() { # listed MNT "NAMES "
	[ "$(listing "$1")" = "$2" ]
}
same() { # same DIR REF
	python3 "$COMPARE" --no-dir-mtime "$1" "$2"
}
counter_at_least() { # counter_at_least MNT KEY N
	[ "$(stat_of "$1" "$2")" -ge "$3" ]
}

# ---- fixtures: a, b, c (c is added as a again) ----
seed=10
for s in a b c; do
	seed=$((seed + 1))
	mkdir -p "src-$s/d" "ref-$s"
	random_file "src-$s/big.bin" 700000 "$seed"
	printf 'small file of %s\n' "$s" >"src-$s/small.txt"
	for i in 1 2 3; do printf '%s %s\n' "$s" "$i" >"src-$s/d/f$i"; done
	ln -s small.txt "src-$s/link"
	bsdtar -cf "$s.tar" -C "src-$s" .
	bsdtar -xf "$s.tar" -C "ref-$s"
done
cmp -s src-a/big.bin src-b/big.bin && fail "the fixtures' big files should differ"

add a a.tar || fail "add a"
check "mount the store with -o refresh=1" mount_at "$WORK/mnt" -o refresh=1
check "mount the store with -o refresh=0" mount_at "$WORK/never" -o refresh=0
check "mount the store with the default refresh" mount_at "$WORK/default"
check "mount snapshot a alone" mount_at "$WORK/single" -o refresh=1 a
[ "$(listing mnt)" = "a " ] || fail "listing at start: $(listing mnt)"

# ---- an add while mounted ----
[ -e mnt/b ] && fail "b is there before it is added"
add b b.tar || fail "add b"
if wait_for 30 test -d mnt/b; then
	pass
else
	fail "b never appeared in the mount"
fi
check "b as mounted = bsdtar -x" same mnt/b ref-b
check "a is still a" same mnt/a ref-a
check "the root lists a and b" listed mnt "a b "
[ "$(stat -c %h mnt)" = 4 ] || fail "root's link count $(stat -c %h mnt), expected 4"
counter_at_least mnt refresh_changes 1 || fail "refresh_changes: $(stat_of mnt refresh_changes)"

# ---- rm while a file of the snapshot is open ----
exec 3<mnt/a/big.bin 4<mnt/a/small.txt
"$CAIRN" -s "$STORE" rm -q a || fail "rm a"
if wait_for 30 listed mnt "b "; then
	pass
else
	fail "a never left the listing: $(listing mnt)"
fi
[ -e mnt/a ] && fail "a can still be looked up after its removal"
check "a big file opened before the rm still reads" cmp - ref-a/big.bin <&3
check "a small file opened before the rm still reads" cmp - ref-a/small.txt <&4
exec 3<&- 4<&-
check "b is unchanged" same mnt/b ref-b

# ---- the same name again, another snapshot ----
add a c.tar || fail "add c as a"
if wait_for 30 test -d mnt/a; then
	pass
else
	fail "a (again) never appeared"
fi
check "the new a = bsdtar -x of c" same mnt/a ref-c
[ "$(stat_of mnt read_errors)" = 0 ] || fail "read errors: $(stat_of mnt read_errors)"

# ---- who does not refresh, and the default ----
wait_for 30 counter_at_least mnt refreshes 3 || fail "mnt refreshed $(stat_of mnt refreshes) times"
[ "$(stat_of never refreshes)" = 0 ] || fail "refresh=0 refreshed: $(stat_of never refreshes)"
check "refresh=0 shows what it started with" listed never "a "
[ "$(stat_of single refreshes)" = 0 ] || fail "a mount of one snapshot refreshed"
check "a mount of one snapshot serves the a it opened" same single ref-a
if wait_for 30 listed default "a b "; then
	pass
else
	fail "the default refresh never showed b: $(listing default)"
fi
check "the default refresh's b = bsdtar -x" same default/b ref-b
finish
