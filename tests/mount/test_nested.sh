#!/bin/bash
# test_nested.sh: archives inside archives (`cairn add -r`, `cairn mount -r`).
# An outer tar holds a tar, a zip holding a .tar.gz, a war holding a jar, a
# .deb made with ar (its control.tar.gz and data.tar.xz), a gzip of plain
# text and a file that only starts like a zip. Its mount must equal
# `bsdtar -x` of the outer archive with each inner archive X replaced by
# `bsdtar -x` of X, the file kept as X.orig. Then the hostile cases: the
# depth bound (a tar nested eight deep, as an archive that holds itself
# would be), a damaged inner archive (an error naming outer and inner entry,
# nothing committed), '..' and absolute paths inside, and the ratio and
# entry bounds counted across levels.
#
# usage: test_nested.sh CAIRN MTOOL COMPARE LIB
. "$4" nested "$@"
need_tools ar zip xz zstd gzip

A=$WORK/a
mkdir -p "$A"
tree() {
	mkdir -p "$1/sub/deeper"
	printf '%s\n' "$2" >"$1/sub/deeper/note.txt"
	random_file "$1/data.bin" 300000 "$3"
	ln -s sub/deeper/note.txt "$1/link"
	touch -d '2020-01-02 03:04:05' "$1/sub/deeper/note.txt" "$1/sub"
}
tree "$A/t1" "in the tar" 1
tree "$A/t2" "in the tar.gz" 2
tree "$A/t3" "in the jar" 3
tree "$A/t4" "in the deb" 4
bsdtar -cf "$A/inner.tar" -C "$A/t1" .
bsdtar -czf "$A/inner2.tar.gz" -C "$A/t2" .
(cd "$A/t3" && zip -qry "$A/lib.jar" .)
mkdir -p "$A/z/deep" "$A/war/WEB-INF/lib" "$A/deb" "$A/ctl" "$A/out/pkgs"
cp "$A/inner2.tar.gz" "$A/z/deep/"
printf 'x\n' >"$A/z/x.txt"
(cd "$A/z" && zip -qr "$A/out/inner.zip" .)
cp "$A/lib.jar" "$A/war/WEB-INF/lib/"
printf '<web-app/>\n' >"$A/war/WEB-INF/web.xml"
(cd "$A/war" && zip -qr "$A/out/app.war" .)
printf 'Package: demo\n' >"$A/ctl/control"
bsdtar -czf "$A/deb/control.tar.gz" -C "$A/ctl" .
bsdtar -cJf "$A/deb/data.tar.xz" -C "$A/t4" .
printf '2.0\n' >"$A/deb/debian-binary"
(cd "$A/deb" && ar rc "$A/out/pkgs/demo.deb" debian-binary control.tar.gz data.tar.xz)
cp "$A/inner.tar" "$A/out/pkgs/"
printf 'select 1;\n' | gzip >"$A/out/dump.sql.gz"
printf 'PK\003\004 not really a zip' >"$A/out/fake.zip"
bsdtar -cf "$A/outer.tar" -C "$A/out" .

# The reference: bsdtar -x of the outer archive, then each inner archive X
# (outermost first) extracted into a directory X, the file moved to X.orig.
REF=$WORK/ref
mkdir -p "$REF"
bsdtar -xf "$A/outer.tar" -C "$REF"
for inner in pkgs/inner.tar inner.zip inner.zip/deep/inner2.tar.gz app.war \
	app.war/WEB-INF/lib/lib.jar pkgs/demo.deb pkgs/demo.deb/control.tar.gz \
	pkgs/demo.deb/data.tar.xz; do
	mv "$REF/$inner" "$REF/$inner.orig"
	mkdir "$REF/$inner"
	bsdtar -xf "$REF/$inner.orig" -C "$REF/$inner"
done

same() {
	local tree=$1 ref=$2 what=$3 out=$WORK/diff
	if ! python3 "$COMPARE" --no-dir-mtime "$tree" "$ref" >"$out" 2>&1; then
		fail "$what: compare.py finds differences:"
		head -20 "$out"
		return
	fi
	if ! diff -r --no-dereference "$tree" "$ref" >"$out" 2>&1; then
		fail "$what: diff -r finds differences:"
		head -20 "$out"
		return
	fi
	pass
}

# add -r, mounted; then mount -r ARCHIVE, which adds it itself.
if "$CAIRN" -s "$STORE" add -q -r --name outer "$A/outer.tar" 2>"$WORK/add.err"; then
	pass
	mount_at "$WORK/m1" outer && same "$WORK/m1" "$REF" "add -r, mounted"
	# The mount never rescans: the snapshot holds the directories.
	"$CAIRN" -s "$STORE" ls outer:pkgs/demo.deb/data.tar.xz/sub/deeper >"$WORK/ls" 2>&1 &&
		grep -qx 'note.txt' "$WORK/ls" || fail "ls into a nested archive: $(cat "$WORK/ls")"
else
	fail "add -r: $(cat "$WORK/add.err")"
fi
if mount_at "$WORK/m2" -r "$A/outer.tar" >/dev/null; then
	same "$WORK/m2" "$REF" "mount -r ARCHIVE"
else
	fail "mount -r ARCHIVE"
fi
# Without -r nothing changes: the outer archive as bsdtar -x has it.
mkdir -p "$WORK/plain"
bsdtar -xf "$A/outer.tar" -C "$WORK/plain"
"$CAIRN" -s "$STORE" add -q --name flat "$A/outer.tar" &&
	mount_at "$WORK/m3" flat && same "$WORK/m3" "$WORK/plain" "add without -r"

# ---- hostile ----

# Eight levels deep: -r expands four, the fifth stays a file, with a warning.
printf 'bottom\n' >"$A/level0"
prev=level0
for i in 1 2 3 4 5 6 7 8; do
	bsdtar -cf "$A/level$i.tar" -C "$A" "$prev"
	prev=level$i.tar
done
"$CAIRN" -s "$STORE" add -q -r --name deep "$A/level8.tar" 2>"$WORK/deep.err" ||
	fail "add -r of a deep nest: $(cat "$WORK/deep.err")"
four=level7.tar/level6.tar/level5.tar/level4.tar
"$CAIRN" -s "$STORE" ls deep:$four >"$WORK/ls" 2>&1 && grep -qx 'level3.tar' "$WORK/ls" &&
	"$CAIRN" -s "$STORE" ls deep:$four/level3.tar >/dev/null 2>&1 &&
	! "$CAIRN" -s "$STORE" ls deep:$four/level3.tar.orig >/dev/null 2>&1 &&
	check "the depth bound's warning" grep -q 'nested more than 4 levels' "$WORK/deep.err" ||
	fail "depth 4: $(cat "$WORK/ls")"
[ "$("$CAIRN" -s "$STORE" cat deep:$four/level3.tar | cmp - "$A/level3.tar" && echo same)" = same ] ||
	fail "the archive below the depth bound is not the file"
"$CAIRN" -s "$STORE" add -q --recursion-depth 1 --name shallow "$A/level8.tar" 2>/dev/null
"$CAIRN" -s "$STORE" ls shallow:level7.tar >"$WORK/ls" 2>&1 && grep -qx 'level6.tar' "$WORK/ls" &&
	"$CAIRN" -s "$STORE" cat shallow:level7.tar/level6.tar | cmp -s - "$A/level6.tar" ||
	fail "--recursion-depth 1: $(cat "$WORK/ls")"

# A damaged inner archive (its gzip cut short after the first header) fails
# the add -r, naming both entries; without -r it is a file like any other.
mkdir -p "$A/dmg"
random_file "$A/big" 2000000 9
bsdtar -czf "$A/bigi.tar.gz" -C "$A" big
head -c 1000000 "$A/bigi.tar.gz" >"$A/dmg/cut.tar.gz"
bsdtar -cf "$A/damaged.tar" -C "$A/dmg" .
if "$CAIRN" -s "$STORE" add -q -r --name damaged "$A/damaged.tar" 2>"$WORK/dmg.err"; then
	fail "add -r of a damaged inner archive succeeded"
else
	check "the damage names the outer archive and both entries" \
		grep -q 'damaged.tar: ./cut.tar.gz: big' "$WORK/dmg.err"
	check "nothing committed" test -z "$("$CAIRN" -s "$STORE" ls 2>/dev/null | grep -x damaged)"
fi
check "without -r the damaged inner archive is a file" \
	"$CAIRN" -s "$STORE" add -q --name damaged "$A/damaged.tar"

# Paths inside stay inside: '..' is skipped, '/abs' lands under the directory.
python3 - "$A/paths.tar" <<'EOF'
import io, sys, tarfile
with tarfile.open(sys.argv[1], "w") as t:
    for name in ("../escape", "/abs/file", "ok"):
        info = tarfile.TarInfo(name)
        info.size = 3
        t.addfile(info, io.BytesIO(b"hi\n"))
EOF
bsdtar -cf "$A/paths-outer.tar" -C "$A" paths.tar
"$CAIRN" -s "$STORE" add -q -r --name paths "$A/paths-outer.tar" 2>"$WORK/paths.err" ||
	fail "add -r of '..' and absolute paths: $(cat "$WORK/paths.err")"
"$CAIRN" -s "$STORE" ls -R paths >"$WORK/ls" 2>&1
check "paths inside a nested archive are normalised" \
	test "$(tr '\n' ' ' <"$WORK/ls")" = "paths.tar paths.tar/abs paths.tar/abs/file paths.tar/ok paths.tar.orig "
check "'..' inside a nested archive is skipped with a warning" \
	grep -q "paths-outer.tar: paths.tar: ../escape: skipped" "$WORK/paths.err"

# The bounds count every level: two inner archives of 40 MB of zeros each
# pass on their own (64 MiB of slack) but not together.
head -c 40000000 /dev/zero >"$A/zeros"
mkdir -p "$A/bomb"
bsdtar --zstd -cf "$A/bomb/one.tar.zst" -C "$A" zeros
bsdtar --zstd -cf "$A/bomb/two.tar.zst" -C "$A" zeros
bsdtar -cf "$A/bomb.tar" -C "$A/bomb" .
if "$CAIRN" -s "$STORE" add -q -r --name bomb "$A/bomb.tar" 2>"$WORK/bomb.err"; then
	fail "add -r of nested archives past the ratio bound succeeded"
else
	check "the nested ratio bound names the outer archive" \
		grep -q 'bomb.tar and the archives nested in it unpack to more than' "$WORK/bomb.err"
fi
if "$CAIRN" -s "$STORE" add -q -r --max-entries 5 --name many "$A/outer.tar" 2>"$WORK/many.err"; then
	fail "add -r past --max-entries succeeded"
else
	check "the entry bound counts nested entries" \
		grep -q 'more than 5 entries' "$WORK/many.err"
fi

finish
