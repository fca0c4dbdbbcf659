#!/bin/bash
# test_formats.sh: archives of a representative set of formats (tar pax and
# GNU sparse, tar with gzip/xz/zstd, zip, 7z, cpio, iso9660) made here from a
# tree with files, directories, symlinks, hard links, long and unicode names,
# empty and sparse files, xattrs and devices are added to a store and
# mounted, one snapshot at a time and as a whole store, through both read
# paths (passthrough, and -o nopassthrough). Each mounted tree must equal
# `bsdtar -x` of its archive: diff -r, plus compare.py (modes, sizes, mtimes,
# owners, link targets, xattrs, hard-link groups) and link counts.
#
# usage: test_formats.sh CAIRN MTOOL COMPARE LIB
. "$4" formats "$@"

SRC=$WORK/src
A=$WORK/archives
mkdir -p "$A"
make_tree "$SRC"

bsdtar --format pax -cf "$A/pax.tar" -C "$SRC" .
bsdtar --format pax --gzip -cf "$A/pax.tar.gz" -C "$SRC" .
bsdtar --format pax --xz -cf "$A/pax.tar.xz" -C "$SRC" .
bsdtar --format pax --zstd -cf "$A/pax.tar.zst" -C "$SRC" .
tar --format=gnu --sparse -cf "$A/gnu-sparse.tar" -C "$SRC" . 2>/dev/null
bsdtar --format zip -cf "$A/deflate.zip" -C "$SRC" . 2>/dev/null
bsdtar --format 7zip -cf "$A/lzma2.7z" -C "$SRC" . 2>/dev/null
bsdtar --format newc -cf "$A/newc.cpio" -C "$SRC" . 2>/dev/null
bsdtar --format iso9660 -cf "$A/image.iso" -C "$SRC" . 2>/dev/null
NAMES=()
for archive in "$A"/*; do
	name=$(basename "$archive")
	name=${name//./-}
	if ! add "$name" "$archive"; then
		fail "$name: cairn add"
		continue
	fi
	mkdir -p "$WORK/x/$name"
	bsdtar -xf "$archive" -C "$WORK/x/$name" 2>/dev/null
	NAMES+=("$name")
done

# same TREE REF WHAT: the mounted TREE equals the extracted REF.
same() {
	local tree=$1 ref=$2 what=$3 out=$WORK/diff
	if ! python3 "$COMPARE" "$tree" "$ref" >"$out" 2>&1; then
		fail "$what: compare.py finds differences:"
		head -20 "$out"
		return
	fi
	if ! python3 "$MTOOL" nlink "$tree" "$ref" >"$out"; then
		fail "$what: link counts differ:"
		head -20 "$out"
		return
	fi
	# diff calls two fifos (or devices) different; compare.py checked them.
	diff -r --no-dereference "$tree" "$ref" 2>&1 |
		grep -v -E '^File .* is a ([a-z ]+) while file .* is a \1$' >"$out"
	if [ -s "$out" ]; then
		fail "$what: diff -r finds differences:"
		head -20 "$out"
		return
	fi
	pass
}

# Each snapshot on its own, both read paths. suid and dev: the modes and
# devices as recorded (dropping them is test_cli.sh's business).
for name in "${NAMES[@]}"; do
	for path in passthrough nopassthrough; do
		mnt=$WORK/mnt-$name-$path
		opts=suid,dev
		[ $path = nopassthrough ] && opts=$opts,nopassthrough
		if ! mount_at "$mnt" -o "$opts" "$name"; then
			fail "$name ($path): cairn mount"
			continue
		fi
		same "$mnt" "$WORK/x/$name" "$name ($path)"
		want=1
		[ $path = nopassthrough ] && want=0
		[ "$(stat_of "$mnt" passthrough)" = $want ] ||
			fail "$name ($path): the stats say passthrough=$(stat_of "$mnt" passthrough)"
		[ "$(stat_of "$mnt" read_errors)" = 0 ] || fail "$name ($path): read errors"
		unmount "$mnt" || fail "$name ($path): unmount"
	done
done

# The whole store: one directory per snapshot, each the same tree.
for path in passthrough nopassthrough; do
	mnt=$WORK/mnt-store-$path
	opts=suid,dev
	[ $path = nopassthrough ] && opts=$opts,nopassthrough
	if ! mount_at "$mnt" -o "$opts"; then
		fail "whole store ($path): cairn mount"
		continue
	fi
	listed=$(ls -A "$mnt" | sort)
	want=$("$CAIRN" -s "$STORE" ls | sort)
	[ "$listed" = "$want" ] || fail "whole store ($path): lists '$listed', not '$want'"
	for name in "${NAMES[@]}"; do
		same "$mnt/$name" "$WORK/x/$name" "whole store ($path): $name"
	done
	# Hard links stay one inode inside a snapshot, and differ across them.
	a=$(stat -c %i "$mnt/pax-tar/hl1")
	b=$(stat -c %i "$mnt/pax-tar/sub/hl2")
	c=$(stat -c %i "$mnt/pax-tar-gz/hl1")
	[ "$a" = "$b" ] && [ "$a" != "$c" ] || fail "whole store: inode numbers $a $b $c"
	unmount "$mnt" || fail "whole store ($path): unmount"
done

finish
