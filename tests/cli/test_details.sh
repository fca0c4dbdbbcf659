#!/bin/bash
# test_details.sh: the small things a new user meets, each checked against
# what it should be: the man page documents every option of every
# command's --help and every key of info --json; the add summary counts
# entries as ls and info do (directories that paths only imply included);
# the progress line uses the units of 1024 its sizes use; extract makes
# DEST's missing parents 0755 less the umask, as bsdtar -x makes the
# directories it needs, and gives DEST the mode, owner and mtime of the
# archive's "./" entry when it had one (and leaves it alone when not); a
# header with a negative (sparse) size gives an empty file, as bsdtar -x
# writes it, with a warning.
#
# usage: test_details.sh CAIRN SOURCE_ROOT
set -u
TEST_NAME=test_details
. "$(dirname "$0")/../lib.sh"
CAIRN=$(abs_path "${1:?usage: test_details.sh CAIRN SOURCE_ROOT}")
ROOT=$(abs_path "${2:?usage: test_details.sh CAIRN SOURCE_ROOT}")
MAN=$ROOT/docs/cairn.1
export LC_ALL=C.UTF-8
umask 022

need_tools bsdtar python3

WORK=$(mktemp -d "${TMPDIR:-/tmp}/cairn-details-XXXXXX") || exit 1
[ -n "${KEEP:-}" ] || trap 'rm -rf "$WORK"' EXIT
STORE=$WORK/store
cd "$WORK" || exit 1

# ---- the man page documents every option and every info --json key ----

for cmd in init add ls cat extract info verify rm gc mount; do
	for opt in $("$CAIRN" "$cmd" --help | grep -oE -- '--[a-z][a-z-]*' | sort -u); do
		man_form=$(printf '%s' "$opt" | sed 's/-/\\-/g')
		grep -qF -- "$man_form" "$MAN" && pass ||
			fail "docs/cairn.1 lacks '$cmd $opt' (as $man_form)"
	done
done

python3 - "$WORK/t.tar" <<'PY'
import io, sys, tarfile
with tarfile.open(sys.argv[1], "w", format=tarfile.PAX_FORMAT) as t:
    # Files only: their directories are implied by the paths.
    for name, data in (("a/b/one", b"1\n"), ("a/b/two", b"22\n"), ("a/c/three", b"333\n"),
                       ("top", b"4444\n"), ("a/b/one", b"again\n")):
        info = tarfile.TarInfo(name)
        info.size = len(data)
        t.addfile(info, io.BytesIO(data))
PY
"$CAIRN" -s "$STORE" add "$WORK/t.tar" >"$WORK/add.out" 2>"$WORK/add.err" ||
	fail "add t.tar: $(cat "$WORK/add.err")"
keys() {
	python3 -c '
import json, sys
def walk(v):
    if isinstance(v, dict):
        for k, x in v.items():
            print(k)
            walk(x)
walk(json.load(sys.stdin))'
}
for key in $({ "$CAIRN" -s "$STORE" info --json | keys && "$CAIRN" -s "$STORE" info --json t | keys; } | sort -u); do
	grep -qE "^\.BR? $key( |,|$)" "$MAN" && pass || fail "docs/cairn.1 lacks info --json's $key"
done

# ---- the add summary counts entries as ls and info do ----

# a, a/b, a/b/one, a/b/two, a/c, a/c/three, top: 7 entries, from 5 archive
# entries (a/b/one twice: the later one wins).
listed=$("$CAIRN" -s "$STORE" ls -R t | wc -l)
info=$("$CAIRN" -s "$STORE" info --json t |
	python3 -c 'import json, sys; j = json.load(sys.stdin); print(j["entries"], j["archive_entries"])')
[ "$listed $info" = "7 7 5" ] && pass || fail "ls -R and info count '$listed $info', expected '7 7 5'"
grep -q "^t: 7 entries (5 archive entries read), " "$WORK/add.out" && pass ||
	fail "the add summary does not count as ls and info: $(cat "$WORK/add.out")"

# ---- the progress line: units of 1024 throughout ----

# On a terminal (script(1) gives one), fed slowly through a fifo so that a
# progress line is due.
if command -v script >/dev/null; then
	python3 -c 'import os, sys; sys.stdout.buffer.write(os.urandom(3 << 20))' >"$WORK/r.bin"
	bsdtar -cf "$WORK/r.tar" -C "$WORK" r.bin
	mkfifo "$WORK/fifo"
	{
		head -c 1000000 "$WORK/r.tar"
		sleep 1
		tail -c +1000001 "$WORK/r.tar"
	} >"$WORK/fifo" &
	feeder=$!
	script -q -e -c "'$CAIRN' -s '$STORE' add --name slow '$WORK/fifo'" "$WORK/typescript" \
		>/dev/null 2>&1 </dev/null || fail "add through script(1) failed: $(tail -3 "$WORK/typescript")"
	wait "$feeder"
	grep -q "slow: .* read, [0-9.]* MiB/s" "$WORK/typescript" && pass ||
		fail "no progress line in MiB/s: $(tr '\r' '\n' <"$WORK/typescript" | head -5)"
	if grep -q "MB/s" "$WORK/typescript"; then fail "the progress line says MB/s"; fi
else
	echo "note: no script(1): the progress line is not checked"
fi

# ---- extract: DEST's missing parents ----

"$CAIRN" -s "$STORE" extract t "$WORK/new/deeper/dest" 2>"$WORK/err" || fail "extract: $(cat "$WORK/err")"
modes=$(stat -c %a "$WORK/new" "$WORK/new/deeper" "$WORK/new/deeper/dest" | tr '\n' ' ')
[ "$modes" = "755 755 755 " ] && pass || fail "DEST and its parents have modes $modes, expected 755"

# ---- extract: the archive's "./" entry gives DEST its metadata ----

mkdir -p "$WORK/src/sub"
echo hi >"$WORK/src/sub/f"
chmod 0750 "$WORK/src"
touch -d '2001-02-03 04:05:06' "$WORK/src"
bsdtar -cf "$WORK/root.tar" -C "$WORK/src" .
"$CAIRN" -s "$STORE" add -q "$WORK/root.tar" || fail "add root.tar"
mkdir "$WORK/by-bsdtar" "$WORK/by-cairn"
bsdtar -xf "$WORK/root.tar" -C "$WORK/by-bsdtar"
"$CAIRN" -s "$STORE" extract root "$WORK/by-cairn" 2>"$WORK/err" || fail "extract root: $(cat "$WORK/err")"
want=$(stat -c %a "$WORK/by-bsdtar")
[ "$want" = 750 ] || echo "note: bsdtar -x gave DEST mode $want"
got=$(stat -c %a "$WORK/by-cairn")
[ "$got" = "$want" ] && pass || fail "extract gave DEST mode $got, bsdtar -x $want"
[ "$(stat -c %Y "$WORK/by-cairn")" = "$(date -d '2001-02-03 04:05:06' +%s)" ] && pass ||
	fail "extract did not give DEST the mtime of ./ ($(stat -c %y "$WORK/by-cairn"))"
# Extracting a subtree, or an archive without "./", leaves DEST alone.
mkdir -m 0711 "$WORK/sub-only" "$WORK/no-root"
"$CAIRN" -s "$STORE" extract root:sub "$WORK/sub-only" 2>/dev/null || fail "extract root:sub"
"$CAIRN" -s "$STORE" extract t "$WORK/no-root" 2>/dev/null || fail "extract t"
modes=$(stat -c %a "$WORK/sub-only" "$WORK/no-root" | tr '\n' ' ')
[ "$modes" = "711 711 " ] && pass || fail "extract changed DEST without a ./ entry: $modes"

# ---- a negative sparse size: an empty file, as bsdtar -x writes it ----

python3 - "$WORK/neg.tar" <<'PY'
import io, sys, tarfile
with tarfile.open(sys.argv[1], "w", format=tarfile.PAX_FORMAT) as t:
    data = b"0123456789"
    info = tarfile.TarInfo("f")
    info.size = len(data)
    info.pax_headers = {"GNU.sparse.size": "-10", "GNU.sparse.map": "0,10"}
    t.addfile(info, io.BytesIO(data))
    info = tarfile.TarInfo("after")
    info.size = 3
    t.addfile(info, io.BytesIO(b"ok\n"))
PY
mkdir "$WORK/neg-bsdtar" "$WORK/neg-cairn"
bsdtar -xf "$WORK/neg.tar" -C "$WORK/neg-bsdtar" 2>/dev/null
"$CAIRN" -s "$STORE" add "$WORK/neg.tar" >/dev/null 2>"$WORK/err" || fail "add neg.tar: $(cat "$WORK/err")"
grep -q "neg.tar: f: .*negative" "$WORK/err" && pass || fail "no warning for the negative size: $(cat "$WORK/err")"
"$CAIRN" -s "$STORE" extract neg "$WORK/neg-cairn" || fail "extract neg"
sizes=$(stat -c %s "$WORK/neg-bsdtar/f" "$WORK/neg-cairn/f" "$WORK/neg-cairn/after" | tr '\n' ' ')
[ "$sizes" = "0 0 3 " ] && pass || fail "f is $sizes bytes (bsdtar, cairn, then after), expected '0 0 3'"

finish
