#!/bin/bash
# test_versions.sh: entries that appear more than once in an archive (tar
# -r appends). A tar is made by `tar -rf` appends of three versions of a
# file, of a file that becomes a directory and of a directory that becomes
# a file, each version saved as it was. Without -o versions the mount
# equals `bsdtar -x` (the last one wins); with it, NAME.versions/K holds
# the K-th earlier version, in archive order, and NAME the last. A snapshot
# with no duplicates stays format version 1 (what older cairns read); one
# with earlier versions is version 2, which they refuse as unsupported.
#
# usage: test_versions.sh CAIRN MTOOL COMPARE LIB
. "$4" versions "$@"

SRC=$WORK/src
SAVED=$WORK/saved
mkdir -p "$SRC" "$SAVED"
cd "$SRC" || exit 1
T=$WORK/appended.tar
# save NAME K: what version K of NAME holds, for the comparison.
save() {
	cp -a "$1" "$SAVED/$1.$2"
}
for k in 1 2 3; do
	printf 'version %s of the file\n' "$k" >file.txt
	chmod 64$k file.txt
	touch -d "2020-0$k-01 00:00:0$k" file.txt
	save file.txt "$k"
	if [ "$k" = 1 ]; then
		tar -cf "$T" file.txt
	else
		tar -rf "$T" file.txt
	fi
done
random_file big.bin 300000 7
tar -rf "$T" big.bin
# A file, then a directory of that name; a directory, then a file.
printf 'was a file\n' >flip
touch -d '2019-01-01' flip
save flip 1
tar -rf "$T" flip
rm flip
mkdir flip
printf 'inside\n' >flip/inner
tar -rf "$T" flip
mkdir flop
chmod 705 flop
touch -d '2018-01-01' flop
save flop 1
tar -rf "$T" flop
rmdir flop
printf 'now a file\n' >flop
tar -rf "$T" flop
# A hard link replaced: the earlier version is still the other name's file.
printf 'linked\n' >hl.a
ln hl.a hl.b
tar -rf "$T" hl.a hl.b
rm hl.b
printf 'unlinked\n' >hl.b
tar -rf "$T" hl.b
cd "$WORK" || exit 1
tar -tvf "$T" >/dev/null || fail "tar cannot list the appended archive"

REF=$WORK/ref
mkdir -p "$REF"
bsdtar -xf "$T" -C "$REF"

"$CAIRN" -s "$STORE" add -q --name app "$T" || fail "add"
bsdtar -cf "$WORK/once.tar" -C "$SAVED" file.txt.1
"$CAIRN" -s "$STORE" add -q --name once "$WORK/once.tar" || fail "add once"
format_version() {
	od -An -tu4 -j8 -N4 "$STORE/snapshots/$1" | tr -d ' '
}
check "a snapshot without duplicates stays version 1" test "$(format_version once)" = 1
check "a snapshot with earlier versions is version 2" test "$(format_version app)" = 2
check "verify accepts it" "$CAIRN" -s "$STORE" verify -q app
# ls and the plain mount show the tree as bsdtar -x leaves it.
check "ls shows no versions" test "$("$CAIRN" -s "$STORE" ls app | tr '\n' ' ')" = \
	"big.bin file.txt flip flop hl.a hl.b "

"$CAIRN" -s "$STORE" cat app:file.txt.versions/1 | cmp -s - "$SAVED/file.txt.1" &&
	pass || fail "cat reaches an earlier version by path"

if mount_at "$WORK/plain" app; then
	python3 "$COMPARE" "$WORK/plain" "$REF" >"$WORK/diff" 2>&1 && diff -r "$WORK/plain" "$REF" >>"$WORK/diff" 2>&1 &&
		pass || { fail "the mount without -o versions differs from bsdtar -x:"; head "$WORK/diff"; }
	[ -e "$WORK/plain/file.txt.versions" ] && fail "file.txt.versions without -o versions"
	check "the link count of a file whose other name was replaced" \
		test "$(stat -c %h "$WORK/plain/hl.a")" = "$(stat -c %h "$REF/hl.a")"
	unmount "$WORK/plain" || fail "unmount"
fi

# version K's file, mounted, against what was saved: content, mode, mtime.
same_file() {
	local got=$1 want=$2
	if ! cmp -s "$got" "$want"; then
		fail "$got: other bytes than $want"
	elif [ "$(stat -c '%f %Y' "$got")" != "$(stat -c '%f %Y' "$want")" ]; then
		fail "$got: $(stat -c '%A %y' "$got"), not $(stat -c '%A %y' "$want")"
	else
		pass
	fi
}

for how in passthrough nopassthrough; do
	M=$WORK/m-$how
	opts=versions
	[ $how = nopassthrough ] && opts=$opts,nopassthrough
	mount_at "$M" -o "$opts" app || {
		fail "mount -o $opts"
		continue
	}
	check "$how: the listing" test "$(ls "$M" | tr '\n' ' ')" = \
		"big.bin file.txt file.txt.versions flip flip.versions flop flop.versions hl.a hl.b hl.b.versions "
	check "$how: file.txt.versions holds 1 and 2" test "$(ls "$M/file.txt.versions" | tr '\n' ' ')" = "1 2 "
	same_file "$M/file.txt.versions/1" "$SAVED/file.txt.1"
	same_file "$M/file.txt.versions/2" "$SAVED/file.txt.2"
	same_file "$M/file.txt" "$SAVED/file.txt.3"
	same_file "$M/flip.versions/1" "$SAVED/flip.1"
	check "$how: flip is the directory" test -f "$M/flip/inner"
	check "$how: flop.versions/1 is the empty directory" test -d "$M/flop.versions/1"
	check "$how: its mode" test "$(stat -c %a "$M/flop.versions/1")" = 705
	check "$how: flop is the file" test "$(cat "$M/flop")" = "now a file"
	check "$how: hl.b.versions/1 is hl.a's file" test "$(stat -c %i "$M/hl.b.versions/1")" = "$(stat -c %i "$M/hl.a")"
	check "$how: hl.a's link count is the tree's" test "$(stat -c %h "$M/hl.a")" = 1
	check "$how: big.bin appeared once, so it has no versions" test ! -e "$M/big.bin.versions"
	# The tree itself still equals bsdtar -x; the versions are extra.
	python3 "$COMPARE" "$M" "$REF" 2>&1 | grep -v '\.versions' >"$WORK/diff"
	[ -s "$WORK/diff" ] && { fail "$how: beyond the versions, the mount differs:"; head "$WORK/diff"; }
	[ "$(stat_of "$M" read_errors)" = 0 ] || fail "$how: read errors"
	unmount "$M" || fail "unmount $how"
done

# A whole-store mount shows them too.
if mount_at "$WORK/store" -o versions; then
	same_file "$WORK/store/app/file.txt.versions/2" "$SAVED/file.txt.2"
	unmount "$WORK/store" || fail "unmount the store"
fi

finish
