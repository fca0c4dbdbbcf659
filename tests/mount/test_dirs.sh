#!/bin/bash
# test_dirs.sh: readdir positions and sparse maps through a mount.
#  - dirseek (telldir/seekdir/rewinddir) on a directory of 2000 entries with
#    names of many lengths up to 250 bytes, so that reply buffers end at
#    every kind of boundary; cold, then from the kernel's readdir cache,
#    then after drop_caches; also on the root of a whole-store mount.
#  - SEEK_DATA/SEEK_HOLE on a sparse file (and a plain one, and an empty
#    one) agree with the sparse map the archive records, for archives from
#    bsdtar (pax), GNU tar --sparse (gnu and posix formats).
# Both read paths each time.
#
# usage: test_dirs.sh CAIRN MTOOL COMPARE LIB DIRSEEK
. "$4" dirs "$@"
DIRSEEK=$(abs_path "$5")

SRC=$WORK/src
A=$WORK/archives
mkdir -p "$SRC/big" "$A"
python3 - "$SRC/big" <<'EOF'
import os, sys
for i in range(2000):
    length, name, fill = 1 + (i * 7) % 250, f"{i}-", "ü" if i % 3 == 0 else "x"
    while len((name + fill).encode()) <= length:
        name += fill
    open(os.path.join(sys.argv[1], name), "w").close()
EOF
count=$(ls -A "$SRC/big" | wc -l)
[ "$count" = 2000 ] || fail "the fixture has $count entries, not 2000"
truncate -s 8M "$SRC/sparse"
printf 'middle' | dd of="$SRC/sparse" bs=1 seek=3000000 conv=notrunc status=none
printf 'late' | dd of="$SRC/sparse" bs=1 seek=6000000 conv=notrunc status=none
random_file "$SRC/plain" 300000 1
: >"$SRC/empty"
bsdtar --format pax -cf "$A/bsdtar-pax.tar" -C "$SRC" .
tar --format=gnu --sparse -cf "$A/gnu.tar" -C "$SRC" .
tar --format=posix --sparse -cf "$A/gnu-posix.tar" -C "$SRC" .
for archive in "$A"/*; do
	name=$(basename "$archive" .tar)
	add "$name" "$archive" || fail "$name: cairn add"
done

# The program itself, on the source tree.
check "dirseek on the source tree" "$DIRSEEK" "$SRC/big" 2000

for path in passthrough nopassthrough; do
	opts=
	[ $path = nopassthrough ] && opts=nopassthrough
	mnt=$WORK/mnt-$path
	if ! mount_at "$mnt" ${opts:+-o $opts} bsdtar-pax; then
		fail "cairn mount ($path)"
		continue
	fi
	check "$path: dirseek, cold" "$DIRSEEK" "$mnt/big" 2000
	check "$path: dirseek, cached" "$DIRSEEK" "$mnt/big" 2000
	drop_caches
	check "$path: dirseek, after drop_caches" "$DIRSEEK" "$mnt/big" 2000
	listed=$(cd "$mnt/big" && ls -A | sort | md5sum)
	want=$(cd "$SRC/big" && ls -A | sort | md5sum)
	[ "$listed" = "$want" ] || fail "$path: the names in big/ differ from the source"
	unmount "$mnt" || fail "$path: unmount"

	mnt=$WORK/mnt-store-$path
	if ! mount_at "$mnt" ${opts:+-o $opts}; then
		fail "cairn mount of the store ($path)"
		continue
	fi
	check "$path: dirseek on the store root" "$DIRSEEK" "$mnt" 3
	for archive in "$A"/*; do
		name=$(basename "$archive" .tar)
		for member in sparse plain empty; do
			check "$path: $name: lseek on $member" \
				python3 "$MTOOL" seek "$mnt/$name/$member" "$archive" "./$member"
		done
		cmp -s "$mnt/$name/sparse" "$SRC/sparse" || fail "$path: $name: sparse's bytes differ"
	done
	unmount "$mnt" || fail "$path: unmount of the store"
done

finish
