#!/bin/bash
# test_formats.sh: for every archive format cairn reads, an archive made here
# (bsdtar, GNU tar, python3's zipfile, a hand-made RAR) from a tree with
# files, directories, symlinks, hard links, long and unicode names, empty and
# sparse files, xattrs, a fifo and devices (as root) is added to a fresh
# store, extracted with `cairn extract`, and compared with `bsdtar -x` of the
# same archive: contents, types, modes, mtimes, owners, link targets, device
# numbers, xattrs and hard-link groups (compare.py). Also `cairn cat`
# against `bsdtar -xO`, and the no-op of adding the same bytes again.
#
# usage: test_formats.sh CAIRN COMPARE_PY MKRAR_PY
set -u
TEST_NAME=test_formats
. "$(dirname "$0")/../lib.sh"
CAIRN=$1
COMPARE=$2
MKRAR=$3
export LC_ALL=C.UTF-8

need_tools bsdtar python3

WORK=$(mktemp -d "${TMPDIR:-/tmp}/cairn-formats-XXXXXX")
[ -n "${KEEP:-}" ] || trap 'rm -rf "$WORK"' EXIT
STORE=$WORK/store
# ---- the source tree ----

make_tree() {
	local t=$1
	mkdir -p "$t/sub/deeper" "$t/private" "$t/empty-dir"
	printf 'hello, cairn\n' >"$t/hello.txt"
	: >"$t/empty"
	python3 -c "import random,sys; r=random.Random(7); sys.stdout.buffer.write(bytes(r.getrandbits(8) for _ in range(700000)))" >"$t/big.bin"
	head -c 300000 /dev/zero | tr '\0' 'z' >"$t/sub/compressible.txt"
	printf 'linked\n' >"$t/hl1"
	ln "$t/hl1" "$t/sub/hl2"
	ln -s ../hello.txt "$t/sub/rel-link"
	ln -s /etc/passwd "$t/abs-link"
	ln -s nowhere "$t/dangling"
	printf 'unicode\n' >"$t/ünïcödé-名前.txt"
	long=$(printf 'L%.0s' $(seq 1 150))
	printf 'long\n' >"$t/sub/deeper/$long"
	mkdir -p "$t/sub/deeper/$long.d/$long.e"
	printf 'deep\n' >"$t/sub/deeper/$long.d/$long.e/file"
	printf 'suid\n' >"$t/suid"
	chmod 4755 "$t/suid"
	printf 'secret\n' >"$t/private/key"
	chmod 600 "$t/private/key"
	chmod 700 "$t/private"
	printf 'owned\n' >"$t/owned"
	# sparse: holes at the start, in the middle and at the end
	truncate -s 8M "$t/sparse"
	printf 'middle' | dd of="$t/sparse" bs=1 seek=3000000 conv=notrunc status=none
	printf 'late' | dd of="$t/sparse" bs=1 seek=6000000 conv=notrunc status=none
	mkfifo "$t/fifo"
	if [ "$(id -u)" = 0 ]; then
		chown 1234:5678 "$t/owned"
		mknod "$t/chardev" c 1 3
		mknod "$t/blockdev" b 7 0
	fi
	if setfattr -n user.colour -v blue "$t/hello.txt" 2>/dev/null; then
		setfattr -n user.binary -v 0x00ff00 "$t/hello.txt"
		setfattr -n user.dir -v yes "$t/sub"
	fi
	touch -h -d '2021-03-04 05:06:07.123456789' "$t/hello.txt" "$t/sub/rel-link" "$t/big.bin"
	touch -d '1999-12-31 23:59:59.5' "$t/sub/deeper" "$t/empty-dir"
}

# A tree of plain files only, for ar.
make_flat() {
	mkdir -p "$1"
	printf 'one\n' >"$1/one"
	printf 'two two\n' >"$1/two"
	head -c 100000 /dev/urandom >"$1/blob"
	touch -d '2020-01-01 00:00:00' "$1/one"
}

# ---- one archive ----

# check_archive NAME ARCHIVE [compare options...]
check_archive() {
	local name=$1 archive=$2
	shift 2
	local out=$WORK/out/$name
	mkdir -p "$out/cairn" "$out/bsdtar"
	if ! "$CAIRN" -s "$STORE" add -q --name "$name" "$archive" 2>"$out/add.err"; then
		fail "$name: cairn add: $(cat "$out/add.err")"
		return
	fi
	if ! "$CAIRN" -s "$STORE" extract "$name" "$out/cairn" 2>"$out/extract.err"; then
		fail "$name: cairn extract: $(cat "$out/extract.err")"
		return
	fi
	bsdtar -xf "$archive" -C "$out/bsdtar" 2>"$out/bsdtar.err"
	if ! python3 "$COMPARE" "$@" "$out/cairn" "$out/bsdtar" >"$out/diff"; then
		fail "$name: cairn extract and bsdtar -x differ:"
		head -20 "$out/diff"
		return
	fi
	# diff calls two fifos (or devices it cannot open) different;
	# compare.py has checked the special files.
	diff -r --no-dereference "$out/cairn" "$out/bsdtar" 2>&1 |
		grep -v -E '^File .* is a ([a-z ]+) while file .* is a \1$' >"$out/diff-r"
	if [ -s "$out/diff-r" ]; then
		fail "$name: diff -r finds differences:"
		head -20 "$out/diff-r"
		return
	fi
	pass
}

# check_cat NAME ARCHIVE MEMBER: cairn cat NAME:MEMBER equals bsdtar -xO.
check_cat() {
	local name=$1 archive=$2 member=$3
	if ! cmp -s <("$CAIRN" -s "$STORE" cat "$name:$member") <(bsdtar -xOf "$archive" "$member"); then
		fail "$name: cairn cat $member differs from bsdtar -xO"
		return
	fi
	pass
}

SRC=$WORK/src
FLAT=$WORK/flat
A=$WORK/archives
mkdir -p "$A"
make_tree "$SRC"
make_flat "$FLAT"

# ---- tar: formats and filters ----
bsdtar --format pax -cf "$A/pax.tar" -C "$SRC" .
bsdtar --format gnutar -cf "$A/gnutar.tar" -C "$SRC" .
bsdtar --format ustar -cf "$A/ustar.tar" -C "$SRC" . 2>/dev/null
check_archive pax "$A/pax.tar"
check_archive gnutar "$A/gnutar.tar"
check_archive ustar "$A/ustar.tar"
check_cat pax "$A/pax.tar" ./big.bin
check_cat pax "$A/pax.tar" ./sparse
for filter in gzip bzip2 xz zstd lz4 lzip lzma compress; do
	flag=--$filter
	[ $filter = compress ] && flag=-Z
	if bsdtar --format pax $flag -cf "$A/pax.$filter" -C "$SRC" . 2>/dev/null; then
		check_archive "tar-$filter" "$A/pax.$filter"
	else
		echo "note: bsdtar cannot write $filter here; not tested"
	fi
done
if command -v tar >/dev/null && tar --version 2>/dev/null | grep -q 'GNU tar'; then
	tar --format=gnu --sparse -cf "$A/gnu-sparse.tar" -C "$SRC" . 2>/dev/null
	tar --format=posix --sparse --xattrs -cf "$A/gnu-posix.tar" -C "$SRC" . 2>/dev/null
	check_archive gnu-sparse "$A/gnu-sparse.tar"
	check_archive gnu-posix "$A/gnu-posix.tar"
	check_cat gnu-sparse "$A/gnu-sparse.tar" ./sparse
fi

# ---- zip ----
bsdtar --format zip -cf "$A/deflate.zip" -C "$SRC" . 2>/dev/null
bsdtar --format zip --options zip:compression=store -cf "$A/stored.zip" -C "$SRC" . 2>/dev/null
bsdtar --format zip --options zip:zip64 -cf "$A/zip64.zip" -C "$SRC" . 2>/dev/null
check_archive zip-deflate "$A/deflate.zip"
check_archive zip-stored "$A/stored.zip"
check_archive zip-zip64 "$A/zip64.zip"
check_cat zip-deflate "$A/deflate.zip" big.bin
python3 - "$A" <<'EOF'
import sys, zipfile
a = sys.argv[1]
for name, method in (("py-deflate.zip", zipfile.ZIP_DEFLATED), ("py-stored.zip", zipfile.ZIP_STORED)):
    with zipfile.ZipFile(f"{a}/{name}", "w", method) as z:
        z.writestr(zipfile.ZipInfo("dir/", (2020, 1, 2, 3, 4, 6)), b"")
        info = zipfile.ZipInfo("dir/file.txt", (2020, 1, 2, 3, 4, 6))
        info.external_attr = 0o100640 << 16
        z.writestr(info, b"zipped text\n" * 1000)
        info = zipfile.ZipInfo("link", (2020, 1, 2, 3, 4, 6))
        info.external_attr = 0o120777 << 16
        z.writestr(info, b"dir/file.txt")
        info = zipfile.ZipInfo("implied/parent/file", (2021, 5, 6, 7, 8, 10))
        z.writestr(info, b"x")
with zipfile.ZipFile(f"{a}/py-zip64.zip", "w", zipfile.ZIP_DEFLATED) as z:
    with z.open(zipfile.ZipInfo("forced64.bin", (2020, 1, 2, 3, 4, 6)), "w", force_zip64=True) as f:
        f.write(b"\x01\x02" * 50000)
EOF
# Implied parents get the time of extraction from bsdtar.
check_archive py-deflate "$A/py-deflate.zip" --no-dir-mtime
check_archive py-stored "$A/py-stored.zip" --no-dir-mtime
check_archive py-zip64 "$A/py-zip64.zip"

# ---- 7z, iso9660, cpio, xar, ar, deb, rar ----
for method in lzma1 lzma2 ppmd deflate bzip2 copy; do
	bsdtar --format 7zip --options 7zip:compression=$method -cf "$A/$method.7z" -C "$SRC" . 2>/dev/null
	check_archive "7z-$method" "$A/$method.7z"
done
check_cat 7z-lzma2 "$A/lzma2.7z" big.bin
bsdtar --format iso9660 -cf "$A/image.iso" -C "$SRC" . 2>/dev/null
check_archive iso9660 "$A/image.iso"
bsdtar --format iso9660 --options iso9660:!rockridge -cf "$A/plain.iso" -C "$FLAT" . 2>/dev/null
check_archive iso9660-plain "$A/plain.iso"
for fmt in newc odc; do
	bsdtar --format $fmt -cf "$A/$fmt.cpio" -C "$SRC" . 2>/dev/null
	check_archive "cpio-$fmt" "$A/$fmt.cpio"
done
bsdtar --format newc --gzip -cf "$A/newc.cpio.gz" -C "$SRC" . 2>/dev/null
check_archive cpio-gz "$A/newc.cpio.gz"
if bsdtar --format xar -cf "$A/x.xar" -C "$SRC" . 2>/dev/null; then
	check_archive xar "$A/x.xar"
fi
(cd "$FLAT" && bsdtar --format ar -cf "$A/flat.a" one two blob)
check_archive ar "$A/flat.a"
DEB=$WORK/deb
mkdir -p "$DEB"
printf '2.0\n' >"$DEB/debian-binary"
printf 'Package: cairn-test\n' >"$DEB/control"
bsdtar --format ustar --gzip -cf "$DEB/control.tar.gz" -C "$DEB" ./control
bsdtar --format gnutar --xz -cf "$DEB/data.tar.xz" -C "$SRC" ./hello.txt ./sub
(cd "$DEB" && bsdtar --format ar -cf "$A/package.deb" debian-binary control.tar.gz data.tar.xz)
check_archive deb "$A/package.deb"
check_cat deb "$A/package.deb" data.tar.xz
python3 "$MKRAR" "$A/stored.rar"
check_archive rar "$A/stored.rar"
check_cat rar "$A/stored.rar" dir/file.txt

# ---- the store: same bytes again is a no-op; names; verify ----
out=$("$CAIRN" -s "$STORE" add --name pax "$A/pax.tar" 2>&1)
if [ $? = 0 ] && echo "$out" | grep -q unchanged; then
	pass
else
	fail "adding the same archive again: $out"
fi
out=$("$CAIRN" -s "$STORE" add --name pax "$A/gnutar.tar" 2>&1)
if [ $? = 1 ] && echo "$out" | grep -q 'already exists'; then
	pass
else
	fail "adding other bytes under an existing name: $out"
fi
if "$CAIRN" -s "$STORE" add -q --name pax --replace "$A/gnutar.tar" &&
	"$CAIRN" -s "$STORE" ls pax >/dev/null; then
	pass
else
	fail "--replace"
fi
cp "$A/pax.gzip" "$WORK/typescript-5.7.3.tgz"
if "$CAIRN" -s "$STORE" add -q "$WORK/typescript-5.7.3.tgz" &&
	"$CAIRN" -s "$STORE" ls | grep -qx typescript-5.7.3; then
	pass
else
	fail "the default name of typescript-5.7.3.tgz"
fi
if cat "$A/pax.xz" | "$CAIRN" -s "$STORE" add -q --name from-stdin - &&
	cmp -s <("$CAIRN" -s "$STORE" ls -lR from-stdin) <("$CAIRN" -s "$STORE" ls -lR tar-xz); then
	pass
else
	fail "adding from stdin"
fi
if "$CAIRN" -s "$STORE" verify -q; then
	pass
else
	fail "cairn verify after the adds"
fi

finish
