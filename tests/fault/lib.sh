# shellcheck shell=bash
# lib.sh: what the fault tests share, sourced by each: the cairn binary, a
# temp directory removed on exit, pass/fail counting, deterministic file
# trees, and the checks that a store is sound and its snapshots intact.
#
# A test sources it as: . "$(dirname "$0")/lib.sh" NAME "$@", with CAIRN
# SHIM COMPARE as its arguments; it counts with pass/fail (tests/lib.sh, the
# shared harness, sourced here) and ends with finish.
set -u
export LC_ALL=C.UTF-8

TEST_NAME=$1
shift
. "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"
CAIRN=$(abs_path "$1")
SHIM=$(abs_path "$2")
COMPARE=$(abs_path "$3")

need_tools bsdtar python3 diff

WORK=$(mktemp -d "${TMPDIR:-/tmp}/cairn-$TEST_NAME-XXXXXX") || exit 1
cleanup_work() {
	[ -n "${KEEP:-}" ] || rm -rf "$WORK"
}
trap cleanup_work EXIT
trap 'exit 1' INT TERM

# make_tree DIR SEED RANDOM_BYTES [SHARED_DIR]: a few small files, one
# compressible and one incompressible larger file, a symlink, a hard link,
# an empty file and directory; with SHARED_DIR, a copy of its files too
# (chunks the new tree shares with an older one). The same for a seed.
make_tree() {
	python3 - "$@" <<'EOF'
import os, random, shutil, sys
top, seed, size = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
rnd = random.Random(seed)
os.makedirs(os.path.join(top, "dir", "sub"), exist_ok=True)
os.makedirs(os.path.join(top, "empty-dir"), exist_ok=True)
for i in range(12):
    with open(os.path.join(top, "dir", f"small-{seed}-{i}"), "wb") as f:
        f.write(f"small file {i} of tree {seed}\n".encode() * (i + 1))
with open(os.path.join(top, "dir", "sub", "random.bin"), "wb") as f:
    f.write(rnd.randbytes(size))
words = [b"cairn", b"pack", b"chunk", b"store", b"index", b"mount"]
with open(os.path.join(top, "text"), "wb") as f:
    f.write(b" ".join(rnd.choice(words) for _ in range(size // 12)))
open(os.path.join(top, "empty"), "wb").close()
os.symlink("dir/sub/random.bin", os.path.join(top, "link"))
os.link(os.path.join(top, "text"), os.path.join(top, "dir", "hard"))
for t in (top, os.path.join(top, "dir")):
    os.utime(t, (1600000000, 1600000000))
if len(sys.argv) > 4:
    shutil.copytree(sys.argv[4], os.path.join(top, "shared"), symlinks=True)
EOF
}

# make_tar TAR DIR: a pax tar of DIR's contents.
make_tar() {
	bsdtar --format pax -cf "$1" -C "$2" .
}

# same_tree A B: the same names, contents, modes, mtimes, links and xattrs.
same_tree() {
	python3 "$COMPARE" --no-dir-mtime "$1" "$2" >"$WORK/compare.out" 2>&1 ||
		{ head -5 "$WORK/compare.out"; return 1; }
}

# same_content A B: the same names, contents and symlink targets (faster
# than same_tree: one diff, no python).
same_content() {
	diff -r --no-dereference "$1" "$2" >/dev/null 2>&1
}

# snapshot_matches STORE NAME REF [full]: NAME extracts to what REF holds.
snapshot_matches() {
	local out=$WORK/extract-check
	rm -rf "$out"
	"$CAIRN" -s "$1" extract "$2" "$out" >/dev/null 2>&1 || return 1
	if [ "${4:-}" = full ]; then
		same_tree "$out" "$3"
	else
		same_content "$out" "$3"
	fi
}

has_snapshot() {
	[ -e "$1/snapshots/$2" ]
}

# store_sound STORE: cairn verify passes (temp files left behind are
# allowed: the next writer removes them).
store_sound() {
	"$CAIRN" -s "$1" verify -q >"$WORK/verify.out" 2>&1 || {
		head -5 "$WORK/verify.out"
		return 1
	}
}
