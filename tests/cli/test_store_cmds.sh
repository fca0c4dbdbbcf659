#!/bin/bash
# test_store_cmds.sh: the commands that look after a store as a user meets
# them: `info` (text and --json, for the store and for one snapshot),
# `verify` (the store and every snapshot, or named snapshots with their
# chunks read) finding damage in a snapshot file and in a pack, `rm` (all
# names checked before any is removed; frees nothing by itself) and `gc`
# (frees what rm left, a no-op when everything is live, refuses to run with
# a damaged snapshot or while the store is mounted and then leaves it as it
# was, waits for the writer lock), `extract` into a directory the user
# may not write naming the error of the call that failed (EACCES), and
# after a killed add: verify lists its leftovers as notes (exit 0), gc says
# how many it removed and what it freed.
# After every change the remaining snapshots must still extract exactly as
# `bsdtar -x` extracts their archives (compare.py).
#
# usage: test_store_cmds.sh CAIRN COMPARE_PY
set -u
TEST_NAME=test_store_cmds
. "$(dirname "$0")/../lib.sh"
CAIRN=${1:?usage: test_store_cmds.sh CAIRN COMPARE_PY}
COMPARE=${2:?usage: test_store_cmds.sh CAIRN COMPARE_PY}
export LC_ALL=C.UTF-8

need_tools bsdtar python3 flock

WORK=$(mktemp -d "${TMPDIR:-/tmp}/cairn-store-cmds-XXXXXX") || exit 1
[ -n "${KEEP:-}" ] || trap 'rm -rf "$WORK"' EXIT
STORE=$WORK/store
A=$WORK/archives
mkdir -p "$A"
checks=0

# run [-s DIR] ARGS...: cairn on $STORE (or DIR); stdout, stderr and the
# status in $WORK/out, $WORK/err and $status.
run() {
	local store=$STORE
	if [ "$1" = -s ]; then
		store=$2
		shift 2
	fi
	"$CAIRN" -s "$store" "$@" >"$WORK/out" 2>"$WORK/err"
	status=$?
	checks=$((checks + 1))
}

# expect STATUS [-s DIR] ARGS...
expect() {
	local want=$1
	shift
	run "$@"
	[ "$status" -eq "$want" ] ||
		fail "cairn $* exited $status, expected $want; stderr: $(cat "$WORK/err")"
}

out_has() {
	grep -q -- "$1" "$WORK/out" || fail "stdout lacks '$1': $(cat "$WORK/out")"
}

err_has() {
	grep -q -- "$1" "$WORK/err" || fail "stderr lacks '$1': $(cat "$WORK/err")"
}

# json EXPR: evaluates the Python expression EXPR with j bound to the JSON
# document on stdout (which must parse); a tuple prints space-separated.
json() {
	python3 -c '
import json, sys
j = json.load(open(sys.argv[1]))
v = eval(sys.argv[2])
print(" ".join(map(str, v)) if isinstance(v, tuple) else v)' "$WORK/out" "$1" 2>"$WORK/json.err" ||
		{
			fail "stdout is not the JSON expected ($1): $(cat "$WORK/json.err") $(head -c 300 "$WORK/out")"
			echo invalid
		}
}

# is VALUE EXPECTED WHAT
is() {
	[ "$1" = "$2" ] || fail "$3: got '$1', expected '$2'"
}

pack_bytes() {
	run ${1:+-s "$1"} info --json
	json 'j["pack_bytes"]'
}

# What a store holds: every file's name and bytes, but the lock files.
fingerprint() {
	store_fingerprint "${1:-$STORE}" readers
}

# extracts_as NAME ARCHIVE: `cairn extract NAME` equals `bsdtar -x ARCHIVE`.
extracts_as() {
	local out=$WORK/x-$1
	rm -rf "$out" && mkdir -p "$out/cairn" "$out/bsdtar"
	checks=$((checks + 1))
	if ! "$CAIRN" -s "$STORE" extract "$1" "$out/cairn" 2>"$out/err"; then
		fail "extract $1: $(cat "$out/err")"
	elif ! bsdtar -xpf "$2" -C "$out/bsdtar" 2>"$out/err"; then
		fail "bsdtar -x $2: $(cat "$out/err")"
	elif ! python3 "$COMPARE" --no-dir-mtime "$out/cairn" "$out/bsdtar" >"$out/diff"; then
		fail "$1: cairn extract and bsdtar -x differ: $(head -5 "$out/diff")"
	fi
	rm -rf "$out"
}

# flip FILE OFFSET: inverts the byte at OFFSET.
flip() {
	python3 - "$1" "$2" <<'PY'
import sys
with open(sys.argv[1], "r+b") as f:
    f.seek(int(sys.argv[2]))
    b = f.read(1)
    f.seek(int(sys.argv[2]))
    f.write(bytes([b[0] ^ 0xff]))
PY
}

# ---- three archives: v1, v2 (a changed copy of v1) and an unrelated one ----

rand() { # SIZE SEED
	python3 -c 'import random, sys; r = random.Random(int(sys.argv[2])); sys.stdout.buffer.write(r.randbytes(int(sys.argv[1])))' "$1" "$2"
}

make_trees() {
	local t=$WORK/t
	mkdir -p "$t/v1/sub" "$t/other"
	rand 2097152 1 >"$t/v1/big.bin"
	yes 'cairn keeps every distinct chunk once' | head -c 600000 >"$t/v1/text.txt"
	rand 300000 2 >"$t/v1/sub/hl1"
	ln "$t/v1/sub/hl1" "$t/v1/sub/hl2"
	ln -s big.bin "$t/v1/link"
	: >"$t/v1/empty"
	truncate -s 4M "$t/v1/sparse"
	printf 'middle' | dd of="$t/v1/sparse" bs=1 seek=2000000 conv=notrunc status=none
	cp -a "$t/v1" "$t/v2"
	printf 'a change in the middle' |
		dd of="$t/v2/big.bin" bs=1 seek=1000000 conv=notrunc status=none
	rm "$t/v2/text.txt"
	rand 1048576 3 >"$t/v2/new.bin"
	rand 1572864 4 >"$t/other/only.bin"
	for name in v1 v2 other; do
		bsdtar -cf "$A/$name.tar" -C "$t/$name" . || exit 1
	done
	rm -rf "$t"
}
make_trees

# ---- usage ----

expect 0 info --help
out_has "Usage: cairn info"
expect 0 rm --help
out_has "Usage: cairn rm"
expect 0 gc --help
out_has "Usage: cairn gc"
expect 0 verify --help
out_has "SNAPSHOT"
expect 2 info a b
expect 2 info --bogus
expect 2 rm
expect 2 gc extra
expect 2 verify --bogus
expect 1 info # no store yet
expect 1 gc
expect 1 rm v1

# ---- info of an empty store ----

expect 0 init "$STORE"
expect 0 info
out_has "snapshots       0"
expect 0 info --json
is "$(json 'j["snapshots"], j["chunks"], j["logical_bytes"], j["dedup_ratio"]')" \
	"0 0 0 1.0" "empty store info"
is "$(json 'j["chunk_min"], j["chunk_avg"], j["chunk_max"], j["zstd_level"]')" \
	"16384 65536 262144 3" "store parameters"
expect 0 gc
out_has "nothing to collect"

# ---- add three archives; info ----

expect 0 add -q "$A/v1.tar" "$A/v2.tar" "$A/other.tar"
expect 0 info
for label in store chunking compression snapshots chunks "logical bytes" "chunk bytes" \
	"stored bytes" "pack bytes" dedup overall; do
	out_has "^$label "
done
out_has "snapshots       3"
expect 0 ls --json
logical=$(json 'sum(s["bytes"] for s in j)')
expect 0 info --json
is "$(json 'j["snapshots"]')" 3 "snapshot count"
is "$(json 'j["logical_bytes"]')" "$logical" "logical bytes = the sum of ls --json bytes"
is "$(json 'j["store"]')" "$STORE" "store path"
is "$(json 'j["chunks"] > 0 and j["packs"] > 0 and j["pack_bytes"] > 0')" True "counts"
is "$(json 'abs(j["dedup_ratio"] - j["logical_bytes"] / j["chunk_bytes"]) < 1e-3')" True \
	"dedup ratio"
is "$(json 'abs(j["overall_ratio"] - j["logical_bytes"] / j["pack_bytes"]) < 1e-3')" True \
	"overall ratio"
# v2 repeats most of v1, so the store holds less than the sum of the files.
is "$(json 'j["chunk_bytes"] < j["logical_bytes"]')" True "dedup across versions"

expect 0 info v1
for label in snapshot source "  format" "  size" "  modified" "  archive id" entries files \
	index created chunks "held alone"; do
	out_has "^$label "
done
out_has "v1.tar"
out_has "uncompressed"
expect 0 info --json v1
is "$(json 'j["snapshot"], j["source"]["name"], j["source"]["format"]')" "v1 v1.tar tar" \
	"v1 source"
is "$(json 'j["source"]["size"]')" "$(stat -c %s "$A/v1.tar")" "v1 source size"
is "$(json 'j["partial"]')" False "v1 is not partial"
is "$(json 'j["source"]["mtime"]')" "$(stat -c %Y "$A/v1.tar")" "v1 source mtime"
is "$(json 'len(j["source"]["archive_id"])')" 32 "archive id"
is "$(json 'j["files"]')" 5 "v1 files (a hard link counts once)"
is "$(json 'j["snapshot_size"]')" "$(stat -c %s "$STORE/snapshots/v1")" "snapshot size"
# v1 shares most of big.bin and sub/hl1 with v2; text.txt is its own.
is "$(json '0 < j["bytes_alone_uncompressed"] < j["bytes"]')" True "v1 holds some alone"
is "$(json '0 < j["chunks_alone"] < j["chunks"]')" True "v1 shares some chunks"
expect 0 info --json other
is "$(json 'j["chunks_alone"] == j["chunks"] and j["bytes_alone_uncompressed"] == j["bytes"]')" \
	True "an unrelated snapshot holds all its chunks alone"
expect 1 info nope
err_has nope

# ---- verify: all sound ----

expect 0 verify
out_has "chunks in .* packs verified, no problems"
out_has "3 snapshots checked, no problems"
expect 0 verify -q
[ ! -s "$WORK/out" ] || fail "verify -q printed '$(cat "$WORK/out")'"
expect 0 verify v1 v2
out_has "2 snapshots checked, .* chunks .* read and verified, no problems"
expect 1 verify nope
err_has nope

# ---- names that are not UTF-8 round-trip through ls --json and cat ----

# Each byte that is not UTF-8 is a \udcXX escape in JSON, which Python's
# json and os.fsencode turn back into the byte (docs/cairn.1, JSON).
python3 - "$A/names.tar" <<'PY'
import io, sys, tarfile
with tarfile.open(sys.argv[1], "w", format=tarfile.GNU_FORMAT, encoding="utf-8",
                  errors="surrogateescape") as t:
    for name, data in ((b"latin1-\xe9", b"one\n"), (b"dir-\xff/caf\xc3\xa9-\xc3", b"two\n"),
                       (b"ok-\xc3\xa9", b"three\n")):
        info = tarfile.TarInfo(name.decode("utf-8", "surrogateescape"))
        info.size = len(data)
        t.addfile(info, io.BytesIO(data))
PY
expect 0 -s "$WORK/names" add -q "$A/names.tar"
checks=$((checks + 1))
python3 - "$CAIRN" "$WORK/names" >"$WORK/names.out" 2>&1 <<'PY' || fail "$(cat "$WORK/names.out")"
import json, os, subprocess, sys
cairn, store = sys.argv[1], sys.argv[2]
def run(*args):
    r = subprocess.run([cairn, "-s", store, *args], capture_output=True)
    if r.returncode:
        sys.exit(f"cairn {args} exited {r.returncode}: {r.stderr!r}")
    return r.stdout
want = {b"latin1-\xe9": b"one\n", b"dir-\xff/caf\xc3\xa9-\xc3": b"two\n", b"ok-\xc3\xa9": b"three\n"}
raw = run("ls", "-R", "--json", "names")
listed = {os.fsencode(e["path"]) for e in json.loads(raw)}
if not set(want) <= listed:
    sys.exit(f"ls --json names: {sorted(listed)}, expected {sorted(want)}: {raw!r}")
if b"\\udce9" not in raw or b"\\u00e9" in raw:
    sys.exit(f"latin1 byte e9 not escaped as \\udce9: {raw!r}")
for path, data in want.items():
    got = run("cat", b"names:" + path)
    if got != data:
        sys.exit(f"cat names:{path!r} gave {got!r}, expected {data!r}")
PY

# ---- gc with everything live ----

before=$(fingerprint)
expect 0 gc
out_has "nothing to collect"
[ "$before" = "$(fingerprint)" ] || fail "gc changed a store where everything is live"

# ---- rm: unknown names remove nothing ----

expect 1 rm v1 nope
err_has nope
expect 1 rm ../config
expect 1 rm tmp-x
[ "$before" = "$(fingerprint)" ] || fail "a failed rm changed the store"
[ -f "$STORE/config" ] || fail "rm removed the config"

# ---- rm then gc frees space ----

bytes0=$(pack_bytes)
expect 0 rm other
out_has "removed other"
out_has "cairn gc"
[ ! -e "$STORE/snapshots/other" ] || fail "rm left snapshots/other"
is "$(pack_bytes)" "$bytes0" "rm by itself frees nothing"
: >"$STORE/snapshots/tmp-0123456789abcdef" # what a killed add leaves
expect 0 gc
out_has "chunks dropped"
out_has " -> "
[ ! -e "$STORE/snapshots/tmp-0123456789abcdef" ] || fail "gc left a snapshot temp file"
bytes1=$(pack_bytes)
[ "$bytes1" -lt "$((bytes0 - 1000000))" ] ||
	fail "gc after rm other freed too little: $bytes0 -> $bytes1 bytes"
expect 0 verify -q
extracts_as v1 "$A/v1.tar"
extracts_as v2 "$A/v2.tar"
expect 0 gc
out_has "nothing to collect"

# v1 shares most chunks with v2: removing it drops exactly the chunks info
# says it holds alone (too few to rewrite a pack for, here).
expect 0 info --json v1
alone=$(json 'j["bytes_alone_uncompressed"]')
[ "$alone" -gt 0 ] || fail "v1 holds nothing alone"
expect 0 info --json
chunk_bytes1=$(json 'j["chunk_bytes"]')
expect 0 rm -q v1
[ ! -s "$WORK/out" ] || fail "rm -q printed '$(cat "$WORK/out")'"
expect 0 gc
out_has "chunks dropped"
expect 0 info --json
is "$(json 'j["chunk_bytes"]')" "$((chunk_bytes1 - alone))" "chunk bytes after gc of v1's own"
[ "$(json 'j["pack_bytes"]')" -le "$bytes1" ] || fail "gc after rm v1 grew the packs"
expect 0 verify
extracts_as v2 "$A/v2.tar"
expect 0 info --json
is "$(json 'j["snapshots"]')" 1 "one snapshot left"

# ---- extract reports the call that failed ----

# DEST in a directory this user may not write: the mkdir's EACCES, not the
# ENOENT of the open after it. Root writes anywhere, so as root this runs
# as nobody (setpriv), on a copy of the store nobody may read.
noperm=$WORK/noperm
mkdir -p "$noperm"
chmod 555 "$noperm"
as_user=()
xstore=$STORE
if [ "$(id -u)" = 0 ] && command -v setpriv >/dev/null; then
	as_user=(setpriv --reuid=65534 --regid=65534 --clear-groups)
	xstore=$WORK/nobody-store
	cp -a "$STORE" "$xstore"
	chown -R 65534:65534 "$xstore"
	chmod 755 "$WORK"
fi
if [ "$(id -u)" = 0 ] && [ ${#as_user[@]} = 0 ]; then
	echo "note: root without setpriv; extract into an unwritable directory not tested"
else
	for dest in "$noperm/dest" "$noperm/deeper/dest"; do
		"${as_user[@]}" "$CAIRN" -s "$xstore" extract v2 "$dest" >"$WORK/out" 2>"$WORK/err"
		status=$?
		checks=$((checks + 1))
		if [ $status != 1 ] || [ "$(wc -l <"$WORK/err")" != 1 ] ||
			! grep -q "^cairn: cannot create .*$noperm.*: Permission denied$" "$WORK/err"; then
			fail "extract into $dest: exit $status: $(cat "$WORK/err")"
		fi
		[ ! -e "$dest" ] || fail "extract made $dest"
	done
fi
chmod 700 "$WORK"
expect 1 extract v2 ""
err_has "cannot create"

# ---- damage in a snapshot file ----

expect 0 add -q "$A/v1.tar"
expect 0 rm -q v2
good=$WORK/good
cp -a "$STORE" "$good"
size=$(stat -c %s "$STORE/snapshots/v1")
flip "$STORE/snapshots/v1" $((size / 2))
expect 1 verify
out_has "chunks in .* packs verified, no problems" # the store part is sound
err_has "snapshot v1"
expect 1 verify v1
err_has "snapshot v1"
before=$(fingerprint)
expect 1 gc
err_has "snapshot v1"
err_has "gc stopped"
[ "$before" = "$(fingerprint)" ] || fail "gc with a damaged snapshot changed the store"
flip "$STORE/snapshots/v1" $((size / 2)) # repaired: nothing was lost
expect 0 verify
extracts_as v1 "$A/v1.tar"
expect 0 gc # now v2's chunks go
out_has "chunks dropped"
expect 0 verify -q

# ---- damage in a pack ----

rm -rf "$STORE" && mv "$good" "$STORE"
expect 0 verify -q
for pack in "$STORE"/packs/*.pack; do
	flip "$pack" $(($(stat -c %s "$pack") / 2))
done
expect 1 verify
err_has "packs/"
expect 1 verify v1
err_has "snapshot v1: "
err_has "bytes "
# cat names the file by its path, not by an inode number.
expect 1 cat v1:big.bin
err_has "^cairn: v1:big.bin: offset [0-9]*: "
if grep -q inode "$WORK/err"; then fail "cat names an inode: $(cat "$WORK/err")"; fi

# ---- a killed add: verify notes its leftovers, gc says what it removed ----

rm -rf "$STORE"
expect 0 add -q "$A/v1.tar"
rand 4194304 5 >"$WORK/fresh.bin"
bsdtar -cf "$A/fresh.tar" -C "$WORK" fresh.bin
mkfifo "$WORK/fifo"
"$CAIRN" -s "$STORE" add -q --name killed "$WORK/fifo" >/dev/null 2>&1 &
adder=$!
exec 3>"$WORK/fifo"
head -c 3500000 "$A/fresh.tar" >&3 # then the add waits for the rest
for _ in $(seq 100); do
	[ -n "$(find "$STORE/packs" -name '*.tmp' -size +0)" ] && break
	sleep 0.1
done
kill -9 "$adder"
wait "$adder" 2>/dev/null
exec 3>&-
leftovers=$(cd "$STORE" && find . -name 'tmp-*' -o -name '*.tmp' | wc -l)
[ "$leftovers" -gt 0 ] || fail "the killed add left no temp file to test with"
expect 0 verify # leftovers are not damage
out_has "note: packs/[0-9a-f]*\.pack\.tmp (.*) is a leftover of an interrupted writer"
out_has "$leftovers leftover files\? (.*) of interrupted writers, not damage"
is "$(grep -c 'is a leftover' "$WORK/out")" "$leftovers" "verify lists each leftover"
expect 0 verify -q
[ ! -s "$WORK/out" ] || fail "verify -q printed '$(cat "$WORK/out")'"
expect 0 gc
out_has "removed $leftovers leftover files\? of interrupted writers ([0-9.]* [KM]iB freed)"
out_has "nothing to collect"
is "$(cd "$STORE" && find . -name 'tmp-*' -o -name '*.tmp' | wc -l)" 0 "leftovers after gc"
expect 0 verify
if grep -q leftover "$WORK/out"; then fail "verify still lists leftovers: $(cat "$WORK/out")"; fi
expect 0 gc
if grep -q leftover "$WORK/out"; then fail "a second gc reports leftovers again"; fi
extracts_as v1 "$A/v1.tar"

# ---- the lock: gc waits for another writer ----

rm -rf "$STORE"
expect 0 add -q "$A/v1.tar"
flock "$STORE/lock" sleep 1 &
locker=$!
sleep 0.2
expect 0 gc
err_has "waiting for another cairn process"
wait "$locker"

# ---- a mount pins the store: gc refuses and changes nothing ----

expect 0 rm -q v1 # its chunks are garbage now
before=$(fingerprint)
flock -s "$STORE/readers" sleep 1 & # what a mount holds
reader=$!
sleep 0.2
expect 1 gc
err_has "mounted"
[ "$before" = "$(fingerprint)" ] || fail "gc changed a mounted store"
wait "$reader"
expect 0 gc
out_has "chunks dropped"

finish "$checks runs"
