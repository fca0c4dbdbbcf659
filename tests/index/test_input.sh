#!/bin/bash
# test_input.sh: what is not an archive, or not a sound one, is refused with
# one line naming it, exit 1 and nothing committed, the same way at every
# size; what is one is read as bsdtar -x reads it. Random bytes and zeros,
# small and past 133 MB (where a seek to the end, libarchive looking for a
# zip's central directory, once tripped the ratio bound and the import fell
# through to the "empty" format), a 140 MB stored zip (the same seek in a
# real archive), honest empty archives, zip entries whose CRC or sizes lie,
# GNU ar and cpio members that carry no file type, and truncated cpio, 7z
# and tar.gz, whose messages must say what broke.
#
# usage: test_input.sh CAIRN COMPARE_PY
set -u
TEST_NAME=test_input
. "$(dirname "$0")/../lib.sh"
CAIRN=$1
COMPARE=$2
export LC_ALL=C.UTF-8

need_tools bsdtar python3 ar cmp

WORK=$(mktemp -d "${TMPDIR:-/tmp}/cairn-input-XXXXXX")
[ -n "${KEEP:-}" ] || trap 'rm -rf "$WORK"' EXIT
STORE=$WORK/store
A=$WORK/archives
mkdir -p "$A"
cairn() {
	"$CAIRN" -s "$STORE" "$@"
}
cairn init >/dev/null 2>&1 || fail "init"

# What a store holds: every file's name and bytes, but the lock.
fingerprint() {
	store_fingerprint "$STORE"
}

# refused ARCHIVE PATTERN: the add exits 1 with one line that names the
# archive, matches PATTERN and never says "(null)"; the store is as it was.
refused() {
	local archive=$1 pattern=$2 before after msg status name
	name=$(basename "$archive")
	before=$(fingerprint)
	msg=$(cairn add -q "$archive" 2>&1)
	status=$?
	after=$(fingerprint)
	if [ $status != 1 ]; then
		fail "$name: add exited $status: $msg"
	elif [ "$(printf '%s\n' "$msg" | wc -l)" != 1 ]; then
		fail "$name: not one line: $msg"
	elif ! printf '%s' "$msg" | grep -q -F "$name" ||
		! printf '%s' "$msg" | grep -q -E "$pattern"; then
		fail "$name: unclear message: $msg"
	elif printf '%s' "$msg" | grep -q -F '(null)'; then
		fail "$name: the message says (null): $msg"
	elif [ "$before" != "$after" ]; then
		fail "$name: the failed add changed the store"
	else
		pass
	fi
}

# like_bsdtar NAME ARCHIVE: added with no warning, extracted, the same as
# bsdtar -x of it.
like_bsdtar() {
	local name=$1 archive=$2 out=$WORK/out/$1
	mkdir -p "$out/cairn" "$out/bsdtar"
	if ! cairn add -q --name "$name" "$archive" 2>"$out/add.err" || [ -s "$out/add.err" ]; then
		fail "$name: add: $(cat "$out/add.err")"
		return
	fi
	cairn extract "$name" "$out/cairn" || fail "$name: extract"
	bsdtar -xf "$archive" -C "$out/bsdtar" || fail "$name: bsdtar -x"
	if [ -z "$(ls -A "$out/bsdtar")" ]; then
		fail "$name: bsdtar -x extracted nothing"
	elif python3 "$COMPARE" "$out/cairn" "$out/bsdtar"; then
		pass
	else
		fail "$name: cairn and bsdtar -x differ"
	fi
}

# ---- not an archive, at every size ----
BIG=140000000
head -c 5000 /dev/urandom >"$A/small.bin"
refused "$A/small.bin" 'small.bin: not an archive'
head -c $BIG /dev/urandom >"$A/random.bin"
refused "$A/random.bin" 'random.bin: not an archive'
rm -f "$A/random.bin"
head -c $BIG /dev/zero >"$A/zeros.bin"
refused "$A/zeros.bin" 'zeros.bin: not an archive'
[ -z "$(cairn ls)" ] && pass || fail "a refused input left a snapshot: $(cairn ls)"

# ---- a zip past 133 MB: libarchive seeks to its end to bid ----
(cd "$A" && bsdtar --format zip --options zip:compression=store -cf big.zip zeros.bin)
if cairn add -q --name big "$A/big.zip" && cairn cat big:zeros.bin | cmp -s - "$A/zeros.bin"; then
	pass
else
	fail "a 140 MB stored zip"
fi
rm -f "$A/zeros.bin" "$A/big.zip"

# ---- honest empty archives still add, as empty snapshots ----
bsdtar -cf "$A/empty.tar" -T /dev/null
: >"$A/empty.bin"
python3 -c 'import sys, zipfile; zipfile.ZipFile(sys.argv[1], "w").close()' "$A/empty.zip"
for empty in empty.tar empty.zip empty.bin; do
	if cairn add -q --name "${empty%.*}-${empty#*.}" "$A/$empty" &&
		[ -z "$(cairn ls "${empty%.*}-${empty#*.}")" ]; then
		pass
	else
		fail "$empty: an honest empty archive"
	fi
done

# ---- zip entries whose bytes are wrong ----
python3 - "$A" <<'EOF'
import os, sys, zipfile
out = sys.argv[1]
DATA = b"honest bytes\n" * 10  # 130 bytes

def make(name, method):
    path = os.path.join(out, name)
    with zipfile.ZipFile(path, "w", method) as z:
        z.writestr("member", DATA)
    data = bytearray(open(path, "rb").read())
    return path, data, data.find(b"PK\x03\x04"), data.find(b"PK\x01\x02")

def put32(data, at, value):
    data[at:at + 4] = value.to_bytes(4, "little")

# One bit of the CRC flipped, in both headers.
for name, method in (("crc-stored.zip", zipfile.ZIP_STORED),
                     ("crc-deflated.zip", zipfile.ZIP_DEFLATED)):
    path, data, local, central = make(name, method)
    data[local + 14] ^= 1
    data[central + 16] ^= 1
    open(path, "wb").write(data)
# Stored, both headers say 100 bytes: the entry is cut short.
path, data, local, central = make("size-short.zip", zipfile.ZIP_STORED)
for at in (local + 18, local + 22, central + 20, central + 24):
    put32(data, at, 100)
open(path, "wb").write(data)
# Stored, the central directory says 100 bytes, the local header 130.
path, data, local, central = make("size-central.zip", zipfile.ZIP_STORED)
for at in (central + 20, central + 24):
    put32(data, at, 100)
open(path, "wb").write(data)
EOF
refused "$A/crc-stored.zip" 'crc-stored.zip: member: .*CRC'
refused "$A/crc-deflated.zip" 'crc-deflated.zip: member: .*CRC'
refused "$A/size-short.zip" 'size-short.zip: member: .*(CRC|size)'
refused "$A/size-central.zip" 'size-central.zip: member: .*size'
msg=$(cairn add -q --name crc-stdin - <"$A/crc-stored.zip" 2>&1)
[ $? = 1 ] && echo "$msg" | grep -q 'stdin: member: .*CRC' && pass ||
	fail "a bad CRC on stdin: $msg"

# ---- members without a file type: GNU ar, cpio ----
FLAT=$WORK/flat
mkdir -p "$FLAT"
printf 'one\n' >"$FLAT/one"
printf 'two two\n' >"$FLAT/two"
head -c 100000 /dev/urandom >"$FLAT/blob"
# D: deterministic, as Debian's ar is by default: mode 644, no type bits.
(cd "$FLAT" && ar rcD "$A/gnu.a" one two blob)
like_bsdtar gnu-ar "$A/gnu.a"
[ "$(cairn ls gnu-ar | tr '\n' ' ')" = "blob one two " ] && pass ||
	fail "gnu-ar: $(cairn ls gnu-ar)"
python3 - "$A/untyped.cpio" <<'EOF'
import sys

def entry(name, mode, data, ino):
    name_b = name.encode() + b"\0"
    fields = [ino, mode, 0, 0, 1, 1600000000, len(data), 0, 0, 0, 0, len(name_b), 0]
    head = b"070701" + b"".join(b"%08X" % f for f in fields) + name_b
    head += b"\0" * (-len(head) % 4)
    return head + data + b"\0" * (-len(data) % 4)

out = entry("typed", 0o100600, b"a regular file\n", 1)
out += entry("untyped", 0o644, b"no file type bits\n", 2)
out += entry("dir", 0o040755, b"", 3)
out += entry("TRAILER!!!", 0, b"", 0)
open(sys.argv[1], "wb").write(out + b"\0" * (-len(out) % 512))
EOF
like_bsdtar untyped-cpio "$A/untyped.cpio"

# ---- truncated: the message says what broke ----
TREE=$WORK/tree
mkdir -p "$TREE"
head -c 50000 /dev/urandom >"$TREE/a"
printf 'hello\n' >"$TREE/b"
(cd "$TREE" && bsdtar --format newc -cf "$A/x.newc" a b &&
	bsdtar --format odc -cf "$A/x.odc" a b &&
	bsdtar --format 7zip -cf "$A/x.7z" a b &&
	bsdtar -czf "$A/x.tar.gz" a b)
for f in x.newc x.odc x.7z x.tar.gz; do
	size=$(stat -c %s "$A/$f")
	head -c $((size * 2 / 3)) "$A/$f" >"$A/cut-$f"
	refused "$A/cut-$f" '[Tt]runcat'
done
# Cut inside the gzip trailer: every byte of the tar is there.
size=$(stat -c %s "$A/x.tar.gz")
head -c $((size - 4)) "$A/x.tar.gz" >"$A/cut-trailer.tar.gz"
refused "$A/cut-trailer.tar.gz" '[Tt]runcat'

# ---- endless input: reading stops at the archive's end ----
# /dev/zero is a tar end marker followed by zeros that never end: refused
# after a bounded read, not read forever.
msg=$(timeout 20 "$CAIRN" -s "$STORE" add -q /dev/zero 2>&1)
status=$?
if [ $status != 1 ]; then
	fail "/dev/zero: add exited $status (124: it did not end): $msg"
elif [ "$(printf '%s\n' "$msg" | wc -l)" != 1 ] ||
	! printf '%s' "$msg" | grep -q -E '/dev/zero: not an archive'; then
	fail "/dev/zero: unclear message: $msg"
else
	pass
fi
# A tar followed by 3 GB of zeros through a pipe: the tar's entries are
# added, and what follows past a bound is left unread. The writer counts
# what the pipe took before cairn closed it.
mkdir -p "$WORK/trail/d"
seq 1 100000 >"$WORK/trail/d/numbers"
echo hello >"$WORK/trail/d/hello"
bsdtar -cf "$A/trail.tar" -C "$WORK/trail" d
msg=$(python3 -c '
import sys
out, written, zeros = sys.stdout.buffer, 0, bytes(1 << 20)
try:
    out.write(open(sys.argv[1], "rb").read())
    out.flush()
    for _ in range(3 << 10):
        out.write(zeros)
        out.flush()
        written += len(zeros)
except BrokenPipeError:
    pass
open(sys.argv[2], "w").write(str(written))
' "$A/trail.tar" "$WORK/written" 2>/dev/null |
	timeout 20 "$CAIRN" -s "$STORE" add -q --name trail - 2>&1)
status=$?
written=$(cat "$WORK/written" 2>/dev/null || echo unknown)
mkdir -p "$WORK/out/trail/cairn" "$WORK/out/trail/bsdtar"
if [ $status != 0 ]; then
	fail "tar + 3 GB of zeros: add exited $status (124: it read them all): $msg"
elif [ "$written" = unknown ] || [ "$written" -gt $((64 << 20)) ]; then
	fail "tar + 3 GB of zeros: $written bytes of zeros read after the tar"
elif ! printf '%s' "$msg" | grep -q "ignored what follows the archive's end"; then
	fail "tar + 3 GB of zeros: no warning that the rest was ignored: $msg"
elif ! cairn extract trail "$WORK/out/trail/cairn" ||
	! bsdtar -xf "$A/trail.tar" -C "$WORK/out/trail/bsdtar" ||
	! python3 "$COMPARE" "$WORK/out/trail/cairn" "$WORK/out/trail/bsdtar"; then
	fail "tar + 3 GB of zeros: cairn and bsdtar -x differ"
else
	pass
fi
# The same tar with only its padding through a pipe: all of it is read and
# the source id is the one the file gets.
cairn add -q --name trail-file "$A/trail.tar" || fail "trail.tar as a file"
cairn add -q --name trail-pipe - <"$A/trail.tar" || fail "trail.tar through a pipe"
id_of() {
	cairn info "$1" | grep 'archive id'
}
[ -n "$(id_of trail-file)" ] && [ "$(id_of trail-file)" = "$(id_of trail-pipe)" ] && pass ||
	fail "trail.tar: file and pipe ids differ: $(id_of trail-file) / $(id_of trail-pipe)"

cairn verify -q && pass || fail "verify at the end"
finish
