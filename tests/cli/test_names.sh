#!/bin/sh
# test_names.sh: names from archives never reach a terminal raw. An archive
# whose entries carry ESC [ 5 m (blink), BEL, an OSC that retitles the
# terminal and a byte that is not UTF-8: `cairn ls` (short, -l, -R) on a
# terminal (a pty made by script(1)) shows none of those bytes, only their
# \ooo escapes, and keeps printable UTF-8; add's warning for a skipped entry,
# extract's and cat's errors and verify's problems escape them on stderr,
# whatever stderr is. A pipe gets ls's names as they are (like GNU ls).
#
# Usage: test_names.sh PATH-TO-CAIRN
set -u
TEST_NAME=test_names
. "$(dirname "$0")/../lib.sh"
need_tools python3 script

CAIRN=$(abs_path "${1:?usage: test_names.sh PATH-TO-CAIRN}")
tmp=$(mktemp -d "${TMPDIR:-/tmp}/cairn-names-XXXXXX") || exit 1
trap 'rm -rf "$tmp"' EXIT INT TERM
STORE=$tmp/store

python3 - "$tmp/evil.tar" <<'PY'
import io, sys, tarfile
def add(t, name, data=b"x\n", kind=tarfile.REGTYPE, link=""):
    i = tarfile.TarInfo(name)
    i.type, i.linkname, i.size = kind, link, len(data) if kind == tarfile.REGTYPE else 0
    i.uname = "u\x1b[5m"
    t.addfile(i, io.BytesIO(data) if kind == tarfile.REGTYPE else None)
with tarfile.open(sys.argv[1], "w", format=tarfile.GNU_FORMAT,
                  encoding="utf-8", errors="surrogateescape") as t:
    add(t, "dir", kind=tarfile.DIRTYPE)
    add(t, "dir/blink\x1b[5m\x07bad\udcffé")
    add(t, "dir/link", kind=tarfile.SYMTYPE, link="to\x1b[5m")
    add(t, "../up\x1b]0;pwned\x07")
PY

# has_raw FILE: FILE holds ESC, BEL or the lone 0xff byte.
has_raw() {
	LC_ALL=C grep -q "$(printf '[\033\007\377]')" "$1"
}

"$CAIRN" -s "$STORE" init >/dev/null 2>&1
"$CAIRN" -s "$STORE" add --name evil "$tmp/evil.tar" >"$tmp/add.out" 2>"$tmp/add.err"
grep -q 'up\\033]0;pwned\\007' "$tmp/add.err" && ! has_raw "$tmp/add.err" && pass ||
	fail "add's warning for ../up...: $(od -c "$tmp/add.err" | head -5)"

for opts in "" -l -R; do
	# script(1) runs ls on a pty: stdout is a terminal.
	script -qec "$CAIRN -s $STORE ls $opts evil:dir" /dev/null >"$tmp/ls.out" 2>&1
	grep -q 'blink\\033\[5m\\007bad\\377é' "$tmp/ls.out" && ! has_raw "$tmp/ls.out" && pass ||
		fail "ls $opts on a terminal: $(od -c "$tmp/ls.out" | head -8)"
done
script -qec "$CAIRN -s $STORE ls -l evil:dir" /dev/null >"$tmp/ls.out" 2>&1
grep -q 'u\\033\[5m .* -> to\\033\[5m' "$tmp/ls.out" && pass ||
	fail "ls -l: the owner and the link target are not escaped: $(cat -v "$tmp/ls.out")"
# Not a terminal: the names' bytes, as GNU ls gives them.
"$CAIRN" -s "$STORE" ls evil:dir >"$tmp/ls.out"
has_raw "$tmp/ls.out" && pass || fail "ls into a pipe escaped: $(cat -v "$tmp/ls.out")"

# Errors naming such an entry: cat of a symlink, extract onto a blocker.
name=$(printf 'dir/blink\033[5m\007bad\377\303\251')
"$CAIRN" -s "$STORE" cat "evil:dir/link" >/dev/null 2>"$tmp/cat.err"
grep -q 'to\\033\[5m\|link' "$tmp/cat.err" && ! has_raw "$tmp/cat.err" && pass ||
	fail "cat's error: $(cat -v "$tmp/cat.err")"
"$CAIRN" -s "$STORE" cat "evil:$name/x" >/dev/null 2>"$tmp/cat.err"
grep -q 'blink\\033' "$tmp/cat.err" && ! has_raw "$tmp/cat.err" && pass ||
	fail "cat's error: $(cat -v "$tmp/cat.err")"
mkdir -p "$tmp/dest/$name/sub" # a directory not empty blocks the file
"$CAIRN" -s "$STORE" extract evil "$tmp/dest" >/dev/null 2>"$tmp/ex.err"
grep -q 'blink\\033' "$tmp/ex.err" && ! has_raw "$tmp/ex.err" && pass ||
	fail "extract's error: $(cat -v "$tmp/ex.err")"

finish
