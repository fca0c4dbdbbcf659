#!/bin/bash
# test_delta.sh: delta chunks on a real version series. typescript 5.6.3
# then 5.7.3 (npm tarballs fetched once by tests/data/fetch-npm.sh) go into
# one store; the second is mostly deltas against the first and against
# itself. Every read path gives bsdtar -x's bytes through those deltas:
# cairn cat, cairn extract, the mount's fallback read (-o nopassthrough)
# and its blobs (passthrough). gc after removing the first snapshot keeps
# the bases the second needs. A damaged pack of the first version gives
# errors naming chunk and pack (EIO in the mount), never wrong bytes.
#
# usage: test_delta.sh CAIRN MTOOL COMPARE LIB DIRSEEK FETCH_NPM CACHE_DIR
. "$4" delta "$@"
FETCH=$6
NPM_CACHE=$7

tarballs=$(sh "$FETCH" "$NPM_CACHE" typescript@5.6.3 typescript@5.7.3)
status=$?
[ $status -eq 0 ] || exit $status
T1=$(echo "$tarballs" | sed -n 1p)
T2=$(echo "$tarballs" | sed -n 2p)

c() { "$CAIRN" -s "$STORE" "$@"; }
json() {
	c info --json | python3 -c "import json, sys; print(json.load(sys.stdin)['$1'])"
}

c add "$T1" >/dev/null || fail "cairn add $T1"
before=$(json pack_bytes)
c add "$T2" >/dev/null || fail "cairn add $T2"
second=$(($(json pack_bytes) - before))
deltas=$(json delta_chunks)
echo "typescript 5.7.3 after 5.6.3: $second pack bytes, $deltas delta chunks in the store"
[ "$deltas" -gt 100 ] || fail "only $deltas delta chunks"
[ "$second" -lt 1000000 ] || fail "the second version cost $second bytes"
c verify -q || fail "verify"

REF=$WORK/ref
mkdir -p "$REF"
bsdtar -xpf "$T2" -C "$REF" || fail "bsdtar -x $T2"
S2=typescript-5.7.3

check_all() {
	local what=$1 x=$WORK/x-$1 mnt
	rm -rf "$x"
	mkdir -p "$x"
	c extract "$S2" "$x" || fail "$what: cairn extract"
	python3 "$COMPARE" --no-dir-mtime "$x" "$REF" || fail "$what: extract differs from bsdtar -x"
	c cat "$S2:package/lib/typescript.js" | cmp -s - "$REF/package/lib/typescript.js" ||
		fail "$what: cairn cat differs"
	mnt=$WORK/mnt-$what-fallback
	mount_at "$mnt" -o nopassthrough "$S2" || fail "$what: mount -o nopassthrough"
	diff -r "$mnt" "$REF" >/dev/null || fail "$what: the fallback read differs"
	unmount "$mnt" || fail "$what: unmount"
	mnt=$WORK/mnt-$what-blob
	mount_at "$mnt" "$S2" || fail "$what: mount"
	diff -r "$mnt" "$REF" >/dev/null || fail "$what: the blob read differs"
	[ "$(stat_of "$mnt" opens_passthrough)" -gt 0 ] || fail "$what: no passthrough open"
	unmount "$mnt" || fail "$what: unmount"
	pass
}
check_all deltas

# gc after the first version goes: its chunks that are bases stay.
c rm typescript-5.6.3 || fail "cairn rm"
c gc >/dev/null || fail "cairn gc"
c verify -q || fail "verify after gc"
rm -rf "$CACHE"
check_all after-gc

# Damage every record of the first version's pack: whatever needs it fails
# loudly; what reads, reads right.
pack=$(ls "$STORE/packs" | head -1)
size=$(stat -c %s "$STORE/packs/$pack")
python3 - "$STORE/packs/$pack" "$size" <<'PY'
import sys
path, size = sys.argv[1], int(sys.argv[2])
with open(path, "r+b") as f:
    for off in range(4096, size - 4096, 8192):
        f.seek(off)
        b = f.read(16)
        f.seek(off)
        f.write(bytes(x ^ 0x5a for x in b))
PY
rm -rf "$CACHE" "$WORK/x-damaged"
mkdir -p "$WORK/x-damaged"
if c extract "$S2" "$WORK/x-damaged" 2>"$WORK/extract.err"; then
	fail "extract through damaged bases succeeded"
fi
grep -q 'chunk [0-9a-f]* in packs/' "$WORK/extract.err" || fail "no chunk and pack named: $(head -3 "$WORK/extract.err")"
grep -q 'base' "$WORK/extract.err" || fail "no damaged base named: $(head -3 "$WORK/extract.err")"
mnt=$WORK/mnt-damaged
mount_at "$mnt" -o nopassthrough "$S2" || fail "mount of the damaged store"
bad=0
while IFS= read -r -d '' f; do
	rel=${f#"$mnt"/}
	if cat "$f" >"$WORK/one" 2>"$WORK/one.err"; then
		cmp -s "$WORK/one" "$REF/$rel" || fail "$rel: wrong bytes from a damaged store"
	else
		grep -q 'Input/output error' "$WORK/one.err" || fail "$rel: $(cat "$WORK/one.err")"
		bad=$((bad + 1))
	fi
done < <(find "$mnt" -type f -print0)
[ $bad -gt 0 ] || fail "no file failed to read from the damaged store"
unmount "$mnt" || fail "unmount"
finish
