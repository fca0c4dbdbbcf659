#!/bin/bash
# test_limits.sh: archives at and past cairn's limits (made by mktar as
# streams, so none is stored on disk unless a test needs a file). Each must
# give a clear one-line error naming the archive and the entry (and commit
# nothing), or the right result; the peak memory of every add is measured
# (/usr/bin/time) and, in a build without sanitizers, bounded.
#  - 300,000 tiny entries (CAIRN_LIMITS_MANY=N for more: docs/FUZZING.md
#    records a 2,000,000 run): added, listed, read back, verified
#  - paths 10,000 and 1,025 components deep: refused; 1,024: added and
#    extracted
#  - a 64 KiB name, a 256-byte one: refused; 255 bytes: added; a 64 KiB
#    symlink target: skipped with a warning
#  - xattr values of 64 KiB + 1, 1 MiB, 64 MiB: refused; 64 KiB: added
#  - sizes that lie: a header saying 1 GiB, 1 TiB or 2^63 bytes over a few
#    KiB of data (a file, a pipe, gzip): refused; saying less than the data:
#    the rest reads as a damaged header, refused (with --partial: the
#    entries before it kept, the snapshot marked partial)
#  - a 1 TiB sparse file (pax sparse 1.0, and GNU tar's own when it is
#    there): added in a moment, extracted sparse, with the right bytes and
#    holes (SEEK_DATA/SEEK_HOLE)
#  - decompression bombs (zstd and xz of zeros, one big file and many):
#    refused by the default --max-ratio, added with --max-ratio 0 or a
#    large one
#
# usage: test_limits.sh CAIRN MKTAR
set -u
TEST_NAME=limits
. "$(dirname "$0")/../lib.sh"
export LC_ALL=C.UTF-8
CAIRN=$(abs_path "$1")
MKTAR=$(abs_path "$2")
MANY=${CAIRN_LIMITS_MANY:-300000}

need_tools python3 zstd xz gzip
WORK=$(mktemp -d "${TMPDIR:-/tmp}/cairn-limits-XXXXXX") || exit 1
[ -n "${KEEP:-}" ] || trap 'rm -rf "$WORK"' EXIT
cd "$WORK" || exit 1
STORE=$WORK/store
"$CAIRN" init "$STORE" >/dev/null || exit 1

cairn() {
	"$CAIRN" -s "$STORE" "$@"
}

# Memory bounds hold for the plain build; a sanitizer's shadow memory and
# quarantine make its numbers meaningless, so they are only reported.
TIME=/usr/bin/time
[ -x $TIME ] || TIME=
sanitized=
if ldd "$CAIRN" 2>/dev/null | grep -q libasan || nm -D "$CAIRN" 2>/dev/null | grep -q __asan_init; then
	sanitized=1
fi

# measure LIMIT_MIB WHAT COMMAND...: runs COMMAND (its stdin is ours), says
# how long it took and its peak memory, which must stay below LIMIT_MIB.
# Returns the command's status.
measure() {
	local limit=$1 what=$2 status start ms kib
	shift 2
	start=$(date +%s%N)
	if [ -n "$TIME" ]; then
		$TIME -o "$WORK/time" -f %M "$@"
	else
		"$@"
	fi
	status=$?
	ms=$((($(date +%s%N) - start) / 1000000))
	kib=$([ -n "$TIME" ] && tail -n 1 "$WORK/time" || echo 0)
	echo "note: $what: $ms ms, peak $((kib / 1024)) MiB"
	if [ -z "$sanitized" ] && [ -n "$TIME" ] && [ "$kib" -gt $((limit * 1024)) ]; then
		fail "$what: peak memory $((kib / 1024)) MiB, over $limit MiB"
	fi
	return $status
}

fingerprint() {
	store_fingerprint "$STORE" readers
}

# refused NAME PATTERN LIMIT_MIB MKTAR_ARGS... [-- ADD_ARGS...]: the add of
# mktar's output from a pipe fails (exit 1) with one line matching PATTERN
# that names stdin, and the store is as it was.
refused() {
	local name=$1 pattern=$2 limit=$3 args=() before msg status
	shift 3
	while [ $# -gt 0 ] && [ "$1" != -- ]; do
		args+=("$1")
		shift
	done
	[ $# -gt 0 ] && shift
	before=$(fingerprint)
	"$MKTAR" "${args[@]}" | measure "$limit" "$name" "$CAIRN" -s "$STORE" add -q -n "$name" "$@" - 2>err
	status=${PIPESTATUS[1]}
	msg=$(cat err)
	if [ "$status" != 1 ]; then
		fail "$name: add exited $status: $msg"
	elif [ "$(wc -l <err)" != 1 ] || ! grep -q "^cairn: stdin: " err || ! grep -qE "$pattern" err; then
		fail "$name: unclear message: $(head -c 600 err)"
	elif [ "$(wc -c <err)" -gt 1000 ]; then
		fail "$name: a message of $(wc -c <err) bytes"
	elif [ "$before" != "$(fingerprint)" ]; then
		fail "$name: the failed add changed the store"
	else
		pass
	fi
}

# added NAME LIMIT_MIB MKTAR_ARGS... [-- ADD_ARGS...]: the add succeeds.
added() {
	local name=$1 limit=$2 args=()
	shift 2
	while [ $# -gt 0 ] && [ "$1" != -- ]; do
		args+=("$1")
		shift
	done
	[ $# -gt 0 ] && shift
	"$MKTAR" "${args[@]}" | measure "$limit" "$name" "$CAIRN" -s "$STORE" add -q -n "$name" "$@" - 2>err
	if [ "${PIPESTATUS[1]}" = 0 ]; then
		pass
	else
		fail "$name: add failed: $(head -c 600 err)"
		return 1
	fi
}

# ---- millions of tiny entries ----
if added many 512 many "$MANY"; then
	dirs=$(((MANY + 999) / 1000))
	count=$(cairn ls -R many | wc -l)
	[ "$count" = $((MANY + dirs)) ] && pass || fail "many: $count names listed, not $((MANY + dirs))"
	last=$((MANY - 1))
	[ "$(cairn cat many:d$((last / 1000))/f$last)" = "tiny $((last % 1000))" ] && pass ||
		fail "many: the last file reads wrong"
	measure 512 "verify of $MANY entries" "$CAIRN" -s "$STORE" verify -q many && pass ||
		fail "many: verify"
fi

# ---- deep paths ----
refused deep10000 'deeper than 1024 components' 64 deep 10000
refused deep1025 'deeper than 1024 components' 64 deep 1025
if added deep1024 64 deep 1024; then
	mkdir deep-out
	if cairn extract deep1024 deep-out &&
		[ "$(cat "deep-out/$(printf 'a/%.0s' $(seq 1 1023))file")" = deep ]; then
		pass
	else
		fail "deep1024: extract"
	fi
fi

# ---- long names ----
refused name65536 'longer than 255 bytes' 64 name 65536
refused name256 'longer than 255 bytes' 64 name 256
added name255 64 name 255 && [ "$(cairn ls name255 | awk '{ print length($0) }' | sort -n | tail -n 1)" = 255 ] &&
	pass || fail "name255: the name is not kept"
"$MKTAR" symlink 65536 | cairn add -n symlink65536 - 2>err >/dev/null
if [ $? = 0 ] && grep -q "stdin: link: skipped: its symlink target is empty or longer than 4095" err &&
	[ "$(cairn ls symlink65536)" = after ]; then
	pass
else
	fail "symlink65536: $(head -c 600 err)"
fi
added symlink4095 64 symlink 4095 && [ "$(cairn ls -l symlink4095 | grep -c ' link -> t')" = 1 ] &&
	pass || fail "symlink4095"

# ---- huge xattrs ----
added xattr65536 64 xattr 65536
added xattr-many 64 xattr 65000 15
refused xattr65537 'with-xattrs: xattr user.big0 is larger than 65536 bytes' 64 xattr 65537
refused xattr1M 'header too large' 64 xattr 1M
refused xattr64M 'header too large' 64 xattr 64M
refused xattr-list 'header too large' 64 xattr 65536 20

# ---- sizes that lie ----
refused lie1G 'liar: Truncated tar archive' 64 lie 1G 3000
refused lie1T 'liar: Truncated tar archive' 64 lie 1T 0
refused lie-huge 'size overflow|[Ii]nvalid|Truncated' 64 lie 9223372036854775807 3000
"$MKTAR" lie 1G 3000 >lie.tar
msg=$(cairn add -q lie.tar 2>&1)
[ $? = 1 ] && echo "$msg" | grep -q "lie.tar: liar: Truncated tar archive" && pass ||
	fail "lie.tar as a file: $msg"
"$MKTAR" lie 1G 3000 | gzip -1 >lie.tar.gz
msg=$(cairn add -q lie.tar.gz 2>&1)
[ $? = 1 ] && echo "$msg" | grep -q "lie.tar.gz: liar: Truncated tar archive" && pass ||
	fail "lie.tar.gz: $msg"
# A size that says less than the data: the rest reads as a damaged header,
# which fails the add; --partial keeps the entries before it.
"$MKTAR" lie 10 3000 | cairn add -n lie-short - 2>err >/dev/null
if [ $? = 1 ] && grep -q "stdin: after .*liar): Damaged tar archive" err &&
	[ "$(wc -l <err)" = 1 ]; then
	pass
else
	fail "lie-short: $(head -c 600 err)"
fi
"$MKTAR" lie 10 3000 | cairn add --partial -n lie-short - 2>err >/dev/null
if [ $? = 0 ] && grep -q "Damaged tar archive; kept the entries read before" err &&
	[ "$(cairn cat lie-short:liar)" = LLLLLLLLLL ]; then
	pass
else
	fail "lie-short --partial: $(head -c 600 err)"
fi

# ---- a 1 TiB sparse file ----
check_sparse() {
	python3 - "$1" <<'EOF'
import os, sys
fd = os.open(sys.argv[1], os.O_RDONLY)
T = 1 << 40
assert os.fstat(fd).st_size == T, "size"
assert os.fstat(fd).st_blocks * 512 < (64 << 20), "not sparse"
for off, want in ((0, b"A"), (4095, b"A"), (4096, b"\0"), (T // 2 - 1, b"\0"), (T // 2, b"B"),
                  (T // 2 + 4096, b"\0"), (T - 4097, b"\0"), (T - 4096, b"C"), (T - 1, b"C")):
    os.lseek(fd, off, os.SEEK_SET)
    got = os.read(fd, 1)
    assert got == want, f"byte {off}: {got!r}, not {want!r}"
assert os.lseek(fd, 0, os.SEEK_HOLE) == 4096, "the first hole"
assert os.lseek(fd, 4096, os.SEEK_DATA) == T // 2, "the second data"
EOF
}
if added sparse 64 sparse 1T; then
	cairn ls -l sparse | grep -q ' 1099511627776 ' && pass || fail "sparse: size"
	mkdir sparse-out
	if measure 64 "extract of the sparse file" "$CAIRN" -s "$STORE" extract sparse sparse-out &&
		check_sparse sparse-out/sparse; then
		pass
	else
		fail "sparse: the extracted file"
	fi
	rm -rf sparse-out
fi
if tar --version 2>/dev/null | grep -q GNU; then
	mkdir gnu-src
	printf A | dd of=gnu-src/f bs=1 seek=$(((1 << 39) + 100)) conv=notrunc 2>/dev/null
	truncate -s 1T gnu-src/f
	if tar --sparse -cf gnu.tar -C gnu-src f 2>/dev/null; then
		measure 64 "add of GNU tar's 1 TiB sparse file" "$CAIRN" -s "$STORE" add -q -n gnu-sparse gnu.tar &&
			[ "$(cairn ls -l gnu-sparse | grep -c ' 1099511627776 ')" = 1 ] && pass ||
			fail "gnu-sparse"
	fi
	rm -rf gnu-src gnu.tar
fi

# ---- decompression bombs ----
"$MKTAR" zeros 300M | zstd -q -3 >bomb.tar.zst
"$MKTAR" zeros 100M | xz -T2 >bomb.tar.xz
"$MKTAR" zeros 1M 500 | zstd -q -3 >bombs.tar.zst
# Skipped ('..'): libarchive unpacks its data while looking for the next header.
"$MKTAR" zeros 300M 1 ../ | zstd -q -3 >bomb-skipped.tar.zst
for bomb in bomb.tar.zst bomb.tar.xz bombs.tar.zst bomb-skipped.tar.zst; do
	before=$(fingerprint)
	measure 128 "the default ratio bound on $bomb" "$CAIRN" -s "$STORE" add -q "$bomb" 2>err
	status=$?
	# One line, after the warning that ../zeros-0 is skipped.
	if [ $status = 1 ] && [ "$(grep -vc '^cairn: warning: ' err)" = 1 ] &&
		tail -n 1 err | grep -qE "^cairn: $bomb: (\.\./)?zeros-[0-9]+: it unpacks to more than 1000 times its size .*decompression bomb" &&
		[ "$before" = "$(fingerprint)" ]; then
		pass
	else
		fail "$bomb: exit $status: $(cat err)"
	fi
done
measure 128 "bomb.tar.zst with --max-ratio 0" "$CAIRN" -s "$STORE" add -q --max-ratio 0 -n bomb0 bomb.tar.zst &&
	[ "$(cairn ls -l bomb0 | grep -c ' 314572800 ')" = 1 ] && pass || fail "--max-ratio 0"
measure 128 "bombs.tar.zst with --max-ratio 100000" "$CAIRN" -s "$STORE" add -q --max-ratio 100000 -n bombs bombs.tar.zst &&
	[ "$(cairn ls bombs | wc -l)" = 500 ] && pass || fail "--max-ratio 100000"
msg=$(cairn add -q --max-ratio -5 bomb.tar.zst 2>&1)
[ $? = 2 ] && echo "$msg" | grep -q "invalid --max-ratio" && pass || fail "--max-ratio -5: $msg"

cairn verify -q && pass || fail "verify at the end"
finish
