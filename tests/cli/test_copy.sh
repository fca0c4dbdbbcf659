#!/bin/bash
# test_copy.sh: `cairn copy SRC DST [SNAPSHOT...]` as a user meets it.
# Into a new store: DST gets SRC's key and parameters, its snapshot files
# are SRC's bytes and its packs hold each chunk once. Into an existing
# store with another key and other chunk sizes: every file comes out as
# bsdtar -x gives it (cat, extract, a real mount where root allows), and
# verify finds nothing. A second copy sends no chunk; a copy of a subset
# copies just that; a source holding delta chunks copies whole; an
# existing name is refused without --replace; a chunk above DST's
# chunk_max and a flipped byte in a SRC pack fail with one line naming
# store, snapshot, file and chunk, DST left as it was; kill -9 in the
# middle of a large copy, into a store of another key and into one of the
# same key (records copied as they are), leaves DST as it was (verify:
# leftovers only), and the next copy lands.
#
# usage: test_copy.sh CAIRN COMPARE_PY
set -u
TEST_NAME=test_copy
. "$(dirname "$0")/../lib.sh"
CAIRN=$(abs_path "${1:?usage: test_copy.sh CAIRN COMPARE_PY}")
COMPARE=$(abs_path "${2:?usage: test_copy.sh CAIRN COMPARE_PY}")
export LC_ALL=C.UTF-8

need_tools bsdtar python3 cmp

WORK=$(mktemp -d "${TMPDIR:-/tmp}/cairn-copy-XXXXXX") || exit 1
MNT=$WORK/mnt
cleanup() {
	mountpoint -q "$MNT" 2>/dev/null && "$CAIRN" umount "$MNT"
	[ -n "${KEEP:-}" ] || rm -rf "$WORK"
}
trap cleanup EXIT
cd "$WORK" || exit 1

c() { "$CAIRN" "$@"; }
json() { # json STORE KEY: a field of `cairn info --json`
	c -s "$1" info --json | python3 -c "import json, sys; print(json.load(sys.stdin)['$2'])"
}

# ---- fixtures: a tree, a variant of it (delta chunks), one big file ----

python3 - <<'PY'
import os, random
r = random.Random(14)
def write(path, data):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(data)
base = bytes(r.getrandbits(8) for _ in range(3 << 20))
for tree, flip in (("t1", False), ("t2", True)):
    data = bytearray(base)
    if flip:  # similar bytes: the second version's chunks become deltas
        for off in range(1000, len(data), 40000):
            data[off] ^= 0xFF
    write(f"{tree}/data/big", bytes(data))
    for i in range(120):
        write(f"{tree}/src/f{i:03}.txt", (f"line {i} {tree if flip and i % 7 == 0 else ''}\n" * (i + 1)).encode())
    write(f"{tree}/empty", b"")
    os.symlink("data/big", f"{tree}/link")
    os.link(f"{tree}/data/big", f"{tree}/data/hardlink")
    with open(f"{tree}/sparse", "wb") as f:
        f.seek(5 << 20)
        f.write(b"end of a sparse file\n")
PY
bsdtar --format pax -cSf a.tar -C t1 . || fail "bsdtar -c a.tar"
bsdtar --format pax -cSf b.tar -C t2 . || fail "bsdtar -c b.tar"
mkdir ref-a ref-b
bsdtar -xpf a.tar -C ref-a && bsdtar -xpf b.tar -C ref-b || fail "bsdtar -x"

c -s SRC add -q a.tar b.tar || fail "add to SRC"
deltas=$(json SRC delta_chunks)
[ "$deltas" -gt 0 ] || fail "SRC holds no delta chunks ($deltas)"

# extracts NAME of STORE and compares with REF; cats the big file.
same_as_tar() {
	local store=$1 name=$2 ref=$3 x=$WORK/x-$1-$2
	rm -rf "$x" && mkdir "$x"
	c -s "$store" extract "$name" "$x" || return 1
	python3 "$COMPARE" "$x" "$ref" || return 1
	c -s "$store" cat "$name:data/big" | cmp -s - "$ref/data/big" || return 1
	c -s "$store" cat "$name:sparse" | cmp -s - "$ref/sparse"
}

# ---- a new store: same key, same files ----

c copy SRC NEW >out 2>err || fail "copy into a new store: $(cat err)"
grep -q "created a new store in NEW" err || fail "no word of the store made: $(cat err)"
grep -q "^a: .* sent" out && grep -q "^b: .* sent" out || fail "summary lines: $(cat out)"
for s in a b; do
	cmp -s "SRC/snapshots/$s" "NEW/snapshots/$s" || fail "NEW/snapshots/$s differs from SRC's"
done
cmp -s SRC/config NEW/config || fail "NEW's config is not SRC's (key, parameters)"
[ "$(json NEW chunks)" = "$(json SRC chunks)" ] || fail "chunk counts differ"
[ "$(json NEW chunk_bytes)" = "$(json SRC chunk_bytes)" ] || fail "NEW holds a chunk twice"
[ "$(json NEW delta_chunks)" -gt 0 ] || fail "no delta copied as a delta"
c -s NEW verify -q || fail "verify NEW"
check "NEW:a as bsdtar -x" same_as_tar NEW a ref-a
check "NEW:b as bsdtar -x" same_as_tar NEW b ref-b

# Again: unchanged. Under another name: no chunk sent.
c copy SRC NEW >out || fail "second copy"
[ "$(grep -c unchanged out)" = 2 ] || fail "second copy: $(cat out)"
c copy -n b2 SRC NEW b >out || fail "copy as b2"
grep -q "^b2: [0-9]* chunks: 0 sent" out || fail "copy as b2 sent chunks: $(cat out)"
cmp -s SRC/snapshots/b NEW/snapshots/b2 || fail "NEW/snapshots/b2 differs from SRC's b"

# ---- an existing store, another key, other chunk sizes ----

c init --chunk-min 4K --chunk-avg 8K --chunk-max 1M OTHER >/dev/null || fail "init OTHER"
c -s OTHER add -q a.tar || fail "add a.tar to OTHER" # cut its own way
c copy --json SRC OTHER b >out 2>err || fail "copy into OTHER: $(cat err)"
python3 - out <<'PY' || fail "copy --json: $(cat out)"
import json, sys
o = json.loads(open(sys.argv[1]).read())
assert o["snapshot"] == "b" and o["status"] == "copied" and o["rekeyed"], o
assert o["chunks_sent"] > 0 and o["chunks_sent"] + o["chunks_present"] == o["chunks"], o
PY
cmp -s SRC/snapshots/b OTHER/snapshots/b && fail "OTHER/snapshots/b not rewritten"
c -s OTHER verify -q || fail "verify OTHER"
check "OTHER:b as bsdtar -x" same_as_tar OTHER b ref-b
# a is there from its own add: same archive bytes, but another key's id.
c copy SRC OTHER a >out 2>err && fail "a copied over OTHER's own a without --replace"
grep -q "already exists in OTHER" err || fail "refusal: $(cat err)"
c copy --replace -n a SRC OTHER a >out || fail "copy --replace a"
check "OTHER:a (replaced) as bsdtar -x" same_as_tar OTHER a ref-a
c copy SRC OTHER b >out || fail "copy b again"
grep -q "^b: unchanged" out || fail "copy b again: $(cat out)"
c copy -n b3 SRC OTHER b >out || fail "copy b as b3"
grep -q "^b3: [0-9]* chunks: 0 sent" out || fail "copy as b3 sent chunks: $(cat out)"
c -s OTHER verify -q || fail "verify OTHER after the copies"

if [ "$(id -u)" = 0 ] && [ -c /dev/fuse ]; then
	mkdir -p "$MNT"
	if c -s OTHER mount -o "cache=$WORK/cache" b "$MNT" 2>err; then
		diff -r "$MNT" ref-b >/dev/null || fail "the mount of OTHER:b differs from bsdtar -x"
		c umount "$MNT" || fail "umount"
		pass
	else
		fail "mount OTHER:b: $(cat err)"
	fi
else
	echo "note: no mount (needs root and /dev/fuse)"
fi

# ---- a subset; refusals ----

c copy -q SRC SUB b || fail "copy of a subset"
[ "$(ls SUB/snapshots)" = b ] || fail "SUB holds $(ls SUB/snapshots)"
[ "$(json SUB chunks)" -lt "$(json SRC chunks)" ] || fail "SUB got every chunk"
c copy SRC SUB nosuch 2>err && fail "a missing snapshot copied"
grep -q "no snapshot named nosuch" err || fail "missing snapshot: $(cat err)"
c copy SRC NOPE nosuch 2>/dev/null
[ -e NOPE ] && fail "a failed copy created NOPE"
c copy SRC SRC 2>err && fail "a copy onto itself"
grep -q "the same store" err || fail "copy onto itself: $(cat err)"

c init --chunk-min 4K --chunk-avg 16K --chunk-max 64K SMALL >/dev/null || fail "init SMALL"
before=$(store_fingerprint SMALL)
c copy SRC SMALL a 2>err && fail "chunks above SMALL's chunk_max copied"
[ "$(wc -l <err)" = 1 ] && grep -q "snapshot a: .*: chunk [0-9a-f]*: .*chunk_max of SMALL" err ||
	fail "chunk_max: $(cat err)"
[ "$(store_fingerprint SMALL)" = "$before" ] || fail "SMALL changed"

# ---- a damaged SRC: one line, DST as it was ----

cp -a SRC BAD
python3 - BAD/packs <<'PY'
import os, sys
d = sys.argv[1]
big = max(os.listdir(d), key=lambda n: os.path.getsize(os.path.join(d, n)))
p = os.path.join(d, big)
with open(p, "r+b") as f:
    f.seek(os.path.getsize(p) // 3)
    b = f.read(1)
    f.seek(-1, 1)
    f.write(bytes([b[0] ^ 0x55]))
PY
c init TARGET >/dev/null || fail "init TARGET"
c -s TARGET add -q b.tar || fail "add to TARGET"
before=$(store_fingerprint TARGET)
c copy BAD TARGET a >out 2>err && fail "a damaged SRC copied"
[ "$(wc -l <err)" = 1 ] || fail "damage: not one line: $(cat err)"
grep -q "^cairn: BAD: snapshot a: [^:]*: chunk [0-9a-f]\{32\}: " err || fail "damage: $(cat err)"
[ "$(store_fingerprint TARGET)" = "$before" ] || fail "TARGET changed by a failed copy"
c -s TARGET verify -q || fail "verify TARGET after the failed copy"

# ---- kill -9 in the middle of a large copy ----

head -c $((96 << 20)) /dev/urandom >large.bin
bsdtar -cf large.tar large.bin && rm large.bin
c -s SRC add -q large.tar || fail "add large.tar"
# kill_mid_copy FROM TO: copies FROM's snapshot large into TO (which has
# small packs) and kills the copy after it sealed ten more packs; then TO
# must verify with leftovers only, its committed state as before, and the
# next copy must land whole.
kill_mid_copy() {
	local from=$1 to=$2 before packs killed=0 status
	committed() { (cd "$to" && sha256sum config chunks snapshots/* 2>/dev/null); }
	before=$(committed)
	packs=$(($(ls "$to/packs" | wc -l) + 10))
	for _ in 1 2 3; do
		"$CAIRN" copy -q "$from" "$to" large &
		pid=$!
		for _ in $(seq 2000); do
			[ "$(ls "$to/packs" | wc -l)" -ge $packs ] && break
			sleep 0.005
		done
		kill -9 "$pid"
		wait "$pid"
		status=$?
		[ ! -e "$to/snapshots/large" ] && [ $status = 137 ] && killed=1 && break
		c -s "$to" rm large # it ended before the kill: again
	done
	[ $killed = 1 ] || fail "$to: the copy always ended before the kill"
	c -s "$to" verify >out 2>&1 || fail "$to: verify after kill -9: $(cat out)"
	grep -q "leftover files .* of interrupted writers" out || fail "$to: no leftovers: $(cat out)"
	[ "$(committed)" = "$before" ] || fail "the killed copy changed $to's committed state"
	c copy -q "$from" "$to" large || fail "$to: copy after the kill"
	c -s "$to" verify -q || fail "$to: verify after the copy that followed the kill"
	c -s "$to" cat large:large.bin | cmp -s - <(bsdtar -xOf large.tar large.bin) ||
		fail "$to: large.bin differs after the copy"
}

# ---- a snapshot of many pages (format version 3, PAGES) into another key ----
python3 - <<'PY'
import os
os.makedirs("many", exist_ok=True)
for i in range(3000):
    with open(f"many/f{i:04}", "w") as f:
        f.write(f"file {i}\n")
PY
bsdtar -cf many.tar -C many . && mkdir ref-many && bsdtar -xf many.tar -C ref-many ||
	fail "make many.tar"
snap_version() { od -An -tu4 -j8 -N4 "$1" | tr -d ' '; }
c -s SRC add -q many.tar || fail "add many.tar"
[ "$(snap_version SRC/snapshots/many)" = 3 ] || fail "many is not version 3"
c copy SRC OTHER many >out 2>err || fail "copy many into OTHER: $(cat err)"
[ "$(snap_version OTHER/snapshots/many)" = 3 ] || fail "OTHER's many is not version 3"
cmp -s SRC/snapshots/many OTHER/snapshots/many && fail "OTHER/snapshots/many not rewritten"
c -s OTHER verify -q || fail "verify OTHER with many"
rm -rf x-many && mkdir x-many && c -s OTHER extract many x-many &&
	python3 "$COMPARE" x-many ref-many && pass || fail "OTHER:many as bsdtar -x"

# Another key (every chunk read and stored again) and small packs.
c init --pack-size 1M KILL >/dev/null && c -s KILL add -q b.tar || fail "make KILL"
kill_mid_copy SRC KILL
# The same key (records copied as they are): a source with small packs,
# whose first copy makes the destination alike.
c init --pack-size 1M SRC1M >/dev/null && c -s SRC1M add -q b.tar large.tar || fail "SRC1M"
c copy -q SRC1M LIKE b || fail "copy into LIKE"
cmp -s SRC1M/config LIKE/config || fail "LIKE is not made like SRC1M"
kill_mid_copy SRC1M LIKE

finish
