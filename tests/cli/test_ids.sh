#!/bin/bash
# test_ids.sh: a store made with `cairn init --ids sha256` names its chunks
# by HMAC-SHA-256 (truncated to 128 bits) under a key derived from its
# config's key, as docs/FORMAT.md specifies: the ids in its chunk table are
# recomputed here independently (python's hmac, hashlib), every read path
# gives back the archive's bytes, deltas and gc work on it, and a config
# that claims the wrong version for its id function is refused.
#
# usage: test_ids.sh CAIRN
set -u
TEST_NAME=test_ids
. "$(dirname "$0")/../lib.sh"
CAIRN=$(abs_path "${1:?usage: test_ids.sh CAIRN}")
export LC_ALL=C.UTF-8

need_tools bsdtar python3 cmp

WORK=$(mktemp -d "${TMPDIR:-/tmp}/cairn-ids-XXXXXX") || exit 1
trap 'rm -rf "$WORK"' EXIT
S=$WORK/store

mkdir -p "$WORK/src/d"
head -c 10000 /dev/urandom >"$WORK/src/small.bin"
printf 'hello, ids\n' >"$WORK/src/d/hello.txt"
head -c 3000000 /dev/urandom >"$WORK/src/big.bin"
cp "$WORK/src/big.bin" "$WORK/src/d/big-again.bin"
bsdtar -cf "$WORK/one.tar" -C "$WORK/src" .
# A second version: big.bin with a few bytes changed (a delta candidate).
printf 'XXXX' | dd of="$WORK/src/big.bin" bs=1 seek=1000000 conv=notrunc status=none
bsdtar -cf "$WORK/two.tar" -C "$WORK/src" .

check "init --ids sha256" "$CAIRN" init --ids sha256 "$S"
check "info names the function" sh -c '"$1" -s "$2" info | grep -q "chunk ids *HMAC-SHA-256"' sh "$CAIRN" "$S"
check "info --json names it" sh -c '"$1" -s "$2" info --json | grep -q "\"chunk_ids\": \"hmac-sha256\""' sh "$CAIRN" "$S"
check "add one" "$CAIRN" -s "$S" add -q "$WORK/one.tar"
check "add two" "$CAIRN" -s "$S" add -q "$WORK/two.tar"
check "the changed chunk of two is a delta" sh -c '"$1" -s "$2" info --json | grep -q "\"delta_chunks\": [1-9]"' sh "$CAIRN" "$S"

# The ids, recomputed: each small file is one chunk.
check "the chunk table holds HMAC-SHA-256 ids" python3 - "$S" "$WORK/src/small.bin" "$WORK/src/d/hello.txt" <<'PY'
import hashlib, hmac, struct, sys
store = sys.argv[1]
cfg = open(store + "/config", "rb").read()
version, = struct.unpack_from("<I", cfg, 8)
assert version == 3, version
assert cfg[72] == 1, cfg[72]
key = hashlib.sha256(cfg[40:72] + b"cairn-chunk-v1" + b"\0").digest()
table = open(store + "/chunks", "rb").read()
count, packs = struct.unpack_from("<QI", table, 16)
start = 64 + packs * 16 + 256 * 4
ids = {table[start + i * 48:start + i * 48 + 16] for i in range(count)}
for path in sys.argv[2:]:
    want = hmac.new(key, open(path, "rb").read(), hashlib.sha256).digest()[:16]
    assert want in ids, path
PY

mkdir -p "$WORK/ref" "$WORK/out"
bsdtar -xf "$WORK/two.tar" -C "$WORK/ref"
check "extract" "$CAIRN" -s "$S" extract two "$WORK/out"
check "extract: the same bytes" diff -r "$WORK/ref" "$WORK/out"
check "cat of a large file" sh -c '"$1" -s "$2" cat one:big.bin | cmp -s - "$3"' sh "$CAIRN" "$S" "$WORK/ref/d/big-again.bin"
check "verify" "$CAIRN" -s "$S" verify -q
check "rm one" "$CAIRN" -s "$S" rm -q one
check "gc" "$CAIRN" -s "$S" gc -q
check "verify after gc" "$CAIRN" -s "$S" verify -q
check "cat after gc" sh -c '"$1" -s "$2" cat two:big.bin | cmp -s - "$3"' sh "$CAIRN" "$S" "$WORK/ref/big.bin"

# cairn copy: a new store keeps the function (and the key); a store with
# XXH3 ids gets the snapshot under its own ids.
check "copy to a new store" "$CAIRN" copy -q "$S" "$WORK/copy"
check "the copy's ids are HMAC-SHA-256" sh -c '"$1" -s "$2" info | grep -q "chunk ids *HMAC-SHA-256"' sh "$CAIRN" "$WORK/copy"
check "the copy's config is the same" cmp -s "$S/config" "$WORK/copy/config"
check "init an xxh3 store" "$CAIRN" init "$WORK/plain"
check "copy to the xxh3 store" "$CAIRN" copy -q "$S" "$WORK/plain"
check "verify the xxh3 store" "$CAIRN" -s "$WORK/plain" verify -q
check "cat from the xxh3 store" sh -c '"$1" -s "$2" cat two:big.bin | cmp -s - "$3"' sh "$CAIRN" "$WORK/plain" "$WORK/ref/big.bin"
check "and back into a fresh sha256 store" sh -c '"$1" init --ids sha256 "$2/back" >/dev/null && "$1" copy -q "$2/plain" "$2/back" && "$1" -s "$2/back" verify -q && "$1" -s "$2/back" cat two:big.bin | cmp -s - "$3"' sh "$CAIRN" "$WORK" "$WORK/ref/big.bin"

# A config that lies about its version: rewritten with a valid checksum
# (XXH3-64 through libxxhash), so only the rule catches it.
set_config() { # STORE VERSION ID_HASH
	python3 - "$@" <<'PY'
import ctypes, ctypes.util, struct, sys
lib = ctypes.CDLL(ctypes.util.find_library("xxhash") or "libxxhash.so.0")
lib.XXH3_64bits.restype = ctypes.c_uint64
lib.XXH3_64bits.argtypes = [ctypes.c_char_p, ctypes.c_size_t]
path = sys.argv[1] + "/config"
cfg = bytearray(open(path, "rb").read())
struct.pack_into("<I", cfg, 8, int(sys.argv[2]))
cfg[72] = int(sys.argv[3])
struct.pack_into("<Q", cfg, 120, lib.XXH3_64bits(bytes(cfg[:120]), 120))
open(path, "wb").write(cfg)
PY
}
cp "$S/config" "$WORK/config.good"
set_config "$S" 2 1
check "version 2 with HMAC ids: damaged" sh -c '! "$1" -s "$2" ls 2>"$3" && grep -q "config is damaged (chunk id function 1 at version 2)" "$3"' sh "$CAIRN" "$S" "$WORK/err"
set_config "$S" 3 0
check "version 3 with XXH3 ids: damaged" sh -c '! "$1" -s "$2" ls 2>"$3" && grep -q "config is damaged" "$3"' sh "$CAIRN" "$S" "$WORK/err"
set_config "$S" 3 7
check "an unknown id function: damaged" sh -c '! "$1" -s "$2" ls 2>"$3" && grep -q "config is damaged" "$3"' sh "$CAIRN" "$S" "$WORK/err"
set_config "$S" 4 1
check "version 4: unsupported" sh -c '! "$1" -s "$2" ls 2>"$3" && grep -q "store format version 4; this cairn reads versions 1 to 3" "$3"' sh "$CAIRN" "$S" "$WORK/err"
cp "$WORK/config.good" "$S/config"
check "the good config again" "$CAIRN" -s "$S" ls
check "init --ids md5: a usage error" sh -c '"$1" init --ids md5 "$2/x" 2>/dev/null; [ $? = 2 ]' sh "$CAIRN" "$WORK"

finish
