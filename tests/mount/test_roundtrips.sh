#!/bin/bash
# test_roundtrips.sh: what the kernel may cache it asks for once. A tree of
# directories, small files, symlinks and missing names is walked (stat of
# every entry, readlink, ls, cat, lookups of missing names) twice; the
# second pass must send cairn no LOOKUP, GETATTR, READLINK, OPENDIR,
# READDIR or READ (the counters of user.cairn.stats), and where nothing can
# pass through (-o nopassthrough) no OPEN either (passthrough needs each
# open, and the kernel's no_open is for the whole mount). On a snapshot
# mount with passthrough and with -o nopassthrough, on a whole-store mount
# and on a union of two snapshots. A file read without an open still reads
# right, its holes too (SEEK_DATA). -o readdirplus=always|never is what
# the kernel gets (lookups after a listing).
#
# usage: test_roundtrips.sh CAIRN MTOOL COMPARE LIB
. "$4" roundtrips "$@"

SRC=$WORK/src
mkdir -p "$SRC/d1/d2/d3" "$SRC/e" "$WORK/b/other"
for i in $(seq 1 20); do
	printf 'file %s\n' "$i" >"$SRC/d1/f$i"
	printf 'deeper %s\n' "$i" >"$SRC/d1/d2/g$i"
done
printf 'deepest\n' >"$SRC/d1/d2/d3/h"
truncate -s 8M "$SRC/sparse"
printf 'data' | dd of="$SRC/sparse" bs=1 seek=$((3 << 20)) conv=notrunc status=none
ln -s ../d1/f1 "$SRC/e/link"
ln -s nowhere "$SRC/e/dangling"
printf 'other\n' >"$WORK/b/other/x"
bsdtar --format pax --read-sparse -cf "$WORK/a.tar" -C "$SRC" .
bsdtar -cf "$WORK/b.tar" -C "$WORK/b" .
add A "$WORK/a.tar" || fail "cairn add A"
add B "$WORK/b.tar" || fail "cairn add B"

COUNTERS="lookups getattrs readlinks opendirs readdirs reads"
OPENS="opens_cached opens_passthrough opens_direct"

counters() { # counters MNT [opens]: "name=value ..." of the request counters
	local k out=""
	for k in $COUNTERS ${2:+$OPENS}; do out+="$k=$(stat_of "$1" "$k") "; done
	printf '%s' "$out"
}

# walk ROOT: every kind of request the tree can cause
walk() {
	find "$1" -printf '%s %m %T@ %l\n' >/dev/null
	ls -laR "$1" >/dev/null
	readlink "$1/e/link" "$1/e/dangling" >/dev/null
	cat "$1"/d1/f* "$1"/d1/d2/g* "$1/d1/d2/d3/h" "$1/e/link" >/dev/null
	local m
	for m in missing d1/missing d1/d2/nothing.txt; do
		! stat "$1/$m" >/dev/null 2>&1 || fail "$1/$m exists"
	done
}

# twice LABEL MNT ROOT [opens]: walks ROOT twice; the second walk asks
# nothing (with "opens", opens neither). Up to three tries: anyone's
# drop_caches on this machine empties the kernel's caches too.
twice() {
	local label=$1 mnt=$2 root=$3 before after
	for _ in 1 2 3; do
		walk "$root"
		before=$(counters "$mnt" "${4:-}")
		walk "$root"
		after=$(counters "$mnt" "${4:-}")
		[ "$before" != "$after" ] || break
	done
	[ "$before" = "$after" ] && pass ||
		fail "$label: the second walk reached cairn: before: $before; after: $after"
	# nothing came free: the first walk did reach cairn, and was counted
	local n=${before#lookups=}
	n=${n%% *}
	[ -n "$n" ] && [ "$n" -gt 0 ] || fail "$label: no lookups counted: $before"
}

for opts in "" nopassthrough; do
	mnt=$WORK/mnt${opts:+-$opts}
	if mount_at "$mnt" ${opts:+-o $opts} A; then
		twice "snapshot${opts:+ -o $opts}" "$mnt" "$mnt" ${opts:+opens}
		# read again from cairn, not the page cache: with no open
		drop_caches
		cmp -s "$mnt/d1/f7" "$SRC/d1/f7" || fail "${opts:-passthrough}: d1/f7 reads wrong"
		cmp -s "$mnt/sparse" "$SRC/sparse" || fail "${opts:-passthrough}: sparse reads wrong"
		check "${opts:-passthrough}: SEEK_DATA of sparse" python3 -c '
import os, sys
fd = os.open(sys.argv[1], os.O_RDONLY)
sys.exit(os.lseek(fd, 0, os.SEEK_DATA) != 3 << 20)' "$mnt/sparse"
		unmount "$mnt" || fail "unmount"
	else
		fail "cairn mount ${opts:+-o $opts}"
	fi
done

# readdirplus: listings with attributes (the default) leave the stats of
# ls -l nothing to look up; names only (never) cost a lookup per entry.
for mode in always never; do
	mnt=$WORK/mnt-rdplus
	if mount_at "$mnt" -o readdirplus=$mode A; then
		before=$(stat_of "$mnt" lookups)
		ls -l "$mnt/d1/d2" >/dev/null
		n=$(($(stat_of "$mnt" lookups) - before))
		case $mode in
		always) [ "$n" -le 2 ] && pass || fail "readdirplus=always: ls -l sent $n lookups" ;;
		never) [ "$n" -ge 21 ] && pass || fail "readdirplus=never: ls -l sent only $n lookups" ;;
		esac
		unmount "$mnt" || fail "unmount"
	else
		fail "cairn mount -o readdirplus=$mode"
	fi
done

mnt=$WORK/mnt-store
if mount_at "$mnt"; then
	twice "whole store" "$mnt" "$mnt/A"
	unmount "$mnt" || fail "unmount"
else
	fail "cairn mount of the whole store"
fi

mnt=$WORK/mnt-union
if mount_at "$mnt" A B; then
	twice "union of A and B" "$mnt" "$mnt"
	[ -f "$mnt/other/x" ] && [ -f "$mnt/d1/f1" ] || fail "the union lacks a file of A or B"
	unmount "$mnt" || fail "unmount"
else
	fail "cairn mount of a union"
fi

finish
