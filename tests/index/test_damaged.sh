#!/bin/bash
# test_damaged.sh: damaged compressed streams and tar headers (mkdamaged.py)
# that libarchive's own filters let through: a flipped byte deflate still
# decodes, a gzip trailer's CRC32 or ISIZE, damage in a second gzip member,
# lz4 block and content checksums, a tar header libarchive would skip. Each
# must fail the add (exit 1, one line naming the archive and where it broke,
# nothing committed, verify clean), from a file and from a pipe; with
# --partial each makes a snapshot that info marks partial. The good ones
# (one and several gzip members, lz4 frames with and without block
# checksums) add and extract as bsdtar -x does.
#
# usage: test_damaged.sh CAIRN COMPARE_PY MKDAMAGED_PY
set -u
TEST_NAME=test_damaged
. "$(dirname "$0")/../lib.sh"
CAIRN=$(abs_path "$1")
COMPARE=$(abs_path "$2")
MKDAMAGED=$(abs_path "$3")
export LC_ALL=C.UTF-8

need_tools bsdtar python3 lz4

WORK=$(mktemp -d "${TMPDIR:-/tmp}/cairn-damaged-XXXXXX")
[ -n "${KEEP:-}" ] || trap 'rm -rf "$WORK"' EXIT
STORE=$WORK/store
D=$WORK/archives
mkdir -p "$D"
python3 "$MKDAMAGED" "$D" || fail "mkdamaged.py"
cairn() {
	"$CAIRN" -s "$STORE" "$@"
}
cairn init >/dev/null || fail "init"

# What a store holds: every file's name and bytes, but the lock.
fingerprint() {
	store_fingerprint "$STORE"
}

# refused ARCHIVE PATTERN [stdin]: the add fails with exit 1 and one line
# naming the archive that matches PATTERN; the store is as it was.
refused() {
	local archive=$1 pattern=$2 how=${3:-file} msg status before after
	before=$(fingerprint)
	if [ "$how" = stdin ]; then
		msg=$(cairn add -q --name bad - <"$D/$archive" 2>&1)
		status=$?
		archive=stdin
	else
		msg=$(cairn add -q --name bad "$D/$archive" 2>&1)
		status=$?
	fi
	after=$(fingerprint)
	if [ $status != 1 ]; then
		fail "$archive ($how): add exited $status: $msg"
	elif [ "$(printf '%s\n' "$msg" | wc -l)" != 1 ] || ! echo "$msg" | grep -q "$archive: " ||
		! echo "$msg" | grep -q -E "$pattern"; then
		fail "$archive ($how): not one clear line: $msg"
	elif [ "$before" != "$after" ] || cairn ls | grep -q '^bad'; then
		fail "$archive ($how): the failed add changed the store"
	elif ! cairn verify -q; then
		fail "$archive ($how): verify fails after the failed add"
	else
		pass
	fi
}

# partial ARCHIVE: --partial keeps a snapshot, with a warning, that info
# (text and JSON) marks partial.
partial() {
	local archive=$1 name=p-$(echo "$1" | tr . -) msg
	msg=$(cairn add -q --partial --name "$name" "$D/$archive" 2>&1)
	if [ $? != 0 ]; then
		fail "$archive --partial: add failed: $msg"
	elif ! echo "$msg" | grep -q "$archive: .*partial snapshot"; then
		fail "$archive --partial: no warning: $msg"
	elif ! cairn info "$name" | grep -q '^partial'; then
		fail "$archive --partial: info does not say partial: $(cairn info "$name")"
	elif ! cairn info --json "$name" | grep -q '"partial": true'; then
		fail "$archive --partial: info --json does not say partial"
	elif ! cairn verify -q; then
		fail "$archive --partial: verify fails"
	else
		pass
	fi
}

# good ARCHIVE: added, not partial, extracted as bsdtar -x does.
good() {
	local archive=$1 name=g-$(echo "$1" | tr . -) out=$WORK/out/$1
	mkdir -p "$out/cairn" "$out/bsdtar"
	if ! cairn add -q --name "$name" "$D/$archive" 2>"$out/err"; then
		fail "$archive: add: $(cat "$out/err")"
		return
	fi
	[ -s "$out/err" ] && fail "$archive: warnings: $(cat "$out/err")"
	cairn info --json "$name" | grep -q '"partial": false' || fail "$archive: marked partial"
	cairn extract "$name" "$out/cairn" || fail "$archive: extract"
	(cd "$out/bsdtar" && bsdtar -xf "$D/$archive")
	if python3 "$COMPARE" "$out/cairn" "$out/bsdtar"; then
		pass
	else
		fail "$archive: cairn and bsdtar -x differ"
	fi
}

# ---- good streams still add ----
for archive in good.tgz good-multi.tgz good.tgz.xz good.tar.lz4 good-bx.tar.lz4 good-multi.tar.lz4; do
	good $archive
done
cairn info g-good-tgz | grep -q 'format  *tar+gzip$' || fail "good.tgz: $(cairn info g-good-tgz)"
cairn info g-good-tgz-xz | grep -q 'format  *tar+gzip+xz$' || fail "good.tgz.xz: $(cairn info g-good-tgz-xz)"
cairn info g-good-tar-lz4 | grep -q 'format  *tar+lz4$' || fail "good.tar.lz4: $(cairn info g-good-tar-lz4)"

# ---- damage fails the add ----
refused flip-mid.tgz 'gzip: member 1: CRC32 mismatch'
refused crc.tgz 'after 5 entries.*: gzip: member 1: CRC32 mismatch'
refused crc.tgz 'gzip: member 1: CRC32 mismatch' stdin
refused crc.tgz.xz 'gzip: member 1: CRC32 mismatch'
refused isize.tgz 'gzip: member 1: size mismatch \(ISIZE\)'
refused multi-damaged.tgz 'gzip: member 2: CRC32 mismatch'
refused lz4-block.tar.lz4 'dir/a.bin: lz4: frame 1: block checksum mismatch'
refused lz4-content.tar.lz4 'lz4: frame 1: content checksum mismatch'
refused lz4-content.tar.lz4 'lz4: frame 1: content checksum mismatch' stdin
refused lz4-flip.tar.lz4 'lz4: frame 1: content checksum mismatch'
refused damaged-header.tar 'after 2 entries \(the last: dir/a.bin\): Damaged tar archive'

# ---- --partial keeps what came before, marked ----
for archive in flip-mid.tgz crc.tgz isize.tgz multi-damaged.tgz lz4-block.tar.lz4 \
	lz4-content.tar.lz4 lz4-flip.tar.lz4 damaged-header.tar; do
	partial $archive
done
# the damaged header: the two entries before it, nothing after it
if [ "$(cairn ls -R p-damaged-header-tar | tr '\n' ' ')" = "dir dir/a.bin " ]; then
	pass
else
	fail "damaged-header.tar --partial: $(cairn ls -R p-damaged-header-tar | tr '\n' ' ')"
fi

finish
