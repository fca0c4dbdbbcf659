#!/bin/bash
# test_union.sh: several sources in one tree, and SOURCE:PATH.
#  - cairn mount A B C MOUNTPOINT (snapshots and an archive file) matches
#    the three extractions merged by the documented rule (merge.py below):
#    the later source wins where paths collide (file over file, directory
#    over file and file over directory, whole), directories present in
#    several are merged, their metadata the last one's; hard links and
#    file contents (through passthrough too) come from their own source;
#  - readdir lists each name once, "." and ".." first; a directory's nlink
#    is 2 + its subdirectories; inode numbers are the same after a remount
#    of the same list;
#  - -o nomerge: a directory per source named after its snapshot ("NAME
#    (2)" for a repeat), each matching its own extraction;
#  - SNAPSHOT:PATH and ARCHIVE:PATH serve that directory as the root (also
#    within a union); a PATH that is missing or not a directory is refused
#    (exit 1, one line naming it, nothing mounted); an archive path with a
#    ':' in it splits at the first ':' whose left part is a file.
#
# usage: test_union.sh CAIRN MTOOL COMPARE LIB
. "$4" union "$@"

mk() { mkdir -p "$(dirname "$1")" && printf '%s\n' "$2" >"$1"; }
A=$WORK/a B=$WORK/b C=$WORK/c
mk "$A/f" A-f
mk "$A/only-a" A
mk "$A/d/x" A-d-x
mk "$A/d/sub/y" A-d-sub-y
mk "$A/p" A-p-file
mk "$A/q/a1" A-q-a1
mk "$A/r/deep/r1" A-r
mk "$A/hl1" linked
ln "$A/hl1" "$A/d/hl2"
random_file "$A/d/big-a" 400000 3
ln -s d/x "$A/link"
chmod 700 "$A/d/sub"
mk "$B/f" B-f
mk "$B/d/z" B-d-z
mk "$B/q" B-q-file
mk "$B/only-b/file" B
random_file "$B/d/big-b" 500000 4
mk "$C/d/w" C-d-w
mk "$C/d/sub/v" C-d-sub-v
mk "$C/p/inner" C-p-dir
mk "$C/q/c1" C-q-c1
mk "$C/r" C-r-file
ln -s elsewhere "$C/link"
chmod 750 "$C/d"
touch -d '2020-01-02 03:04:05' "$A/d" "$B/d" "$C/d/sub"
touch -d '2011-01-02 03:04:05' "$C/d"
for s in a b c; do
	bsdtar --format pax -cf "$WORK/$s.tar" -C "$WORK/$s" .
done
add A "$WORK/a.tar" || fail "cairn add A"
add B "$WORK/b.tar" || fail "cairn add B"

# extract NAME ARCHIVE: bsdtar -x into $WORK/x/NAME
extract() {
	mkdir -p "$WORK/x/$1"
	bsdtar -xpf "$2" -C "$WORK/x/$1"
}
extract a "$WORK/a.tar"
extract b "$WORK/b.tar"
extract c "$WORK/c.tar"

# merge.py DST SRC...: the expected tree: each SRC merged into DST in turn.
# A directory over a directory merges (and takes the later one's metadata,
# set after its contents); anything else replaces what was there, whole.
cat >"$WORK/merge.py" <<'PY'
import os, shutil, sys

def copy_meta(src, st, dst):
    os.chown(dst, st.st_uid, st.st_gid)
    os.chmod(dst, st.st_mode & 0o7777)
    for n in os.listxattr(dst):
        os.removexattr(dst, n)
    for n in os.listxattr(src):
        os.setxattr(dst, n, os.getxattr(src, n))
    os.utime(dst, ns=(st.st_atime_ns, st.st_mtime_ns))

def isdir(p):
    return os.path.isdir(p) and not os.path.islink(p)

def merge(dst, src):
    st = os.lstat(src)  # before the renames out of it change its mtime
    for name in sorted(os.listdir(src)):
        s, d = os.path.join(src, name), os.path.join(dst, name)
        if isdir(s) and isdir(d):
            merge(d, s)
            continue
        if isdir(d):
            shutil.rmtree(d)
        elif os.path.lexists(d):
            os.unlink(d)
        os.rename(s, d)  # rename keeps hard links within a source
    copy_meta(src, st, dst)

dst = sys.argv[1]
os.makedirs(dst)
for src in sys.argv[2:]:
    merge(dst, src)
PY

# expect NAME SRC[/PATH]...: $WORK/e/NAME, the merge of copies of the
# extractions (of their PATH: the whole extraction is copied, so that hard
# links to names outside PATH stay links, as in the mount)
expect() {
	local name=$1 s copies=() n
	shift
	for s in "$@"; do
		n=${#copies[@]}
		mkdir -p "$WORK/copy/$name"
		cp -a "$WORK/x/${s%%/*}" "$WORK/copy/$name/$n"
		[ "$s" = "${s#*/}" ] && copies+=("$WORK/copy/$name/$n") ||
			copies+=("$WORK/copy/$name/$n/${s#*/}")
	done
	python3 "$WORK/merge.py" "$WORK/e/$name" "${copies[@]}"
}

# same WHAT MNT REF: the mount matches the reference tree
same() {
	if python3 "$COMPARE" "$2" "$3" >"$WORK/cmp.out" 2>&1; then
		pass
	else
		fail "$1: the mount differs from the reference:"
		head -20 "$WORK/cmp.out"
	fi
}

# The listings: each name once, "." and ".." first, nlink 2 + subdirs.
check_dirs() {
	python3 - "$1" <<'PY' >"$WORK/dirs.out" 2>&1 && pass || { fail "listings of $1:"; head "$WORK/dirs.out"; }
import os, subprocess, sys
bad = 0
for root, dirs, files in os.walk(sys.argv[1]):
    names = dirs + files
    if len(names) != len(set(names)):
        print(f"{root}: a name listed twice: {sorted(names)}"); bad = 1
    ls = subprocess.run(["ls", "-af", root], capture_output=True, text=True).stdout.split("\n")
    if ls[:2] != [".", ".."]:
        print(f"{root}: ls -af starts {ls[:2]}"); bad = 1
    want = 2 + sum(1 for d in dirs if not os.path.islink(os.path.join(root, d)))
    got = os.lstat(root).st_nlink
    if got != want:
        print(f"{root}: nlink {got}, expected {want}"); bad = 1
sys.exit(bad)
PY
}

inodes() {
	(cd "$1" && find . -printf '%i %p\n' | sort -k2)
}

mnt=$WORK/mnt

# ---- A B C(archive) merged ----
expect abc a b c
if mount_at "$mnt" A B "$WORK/c.tar"; then
	same "A B c.tar" "$mnt" "$WORK/e/abc"
	check_dirs "$mnt"
	[ "$(stat -c %i "$mnt/hl1")" = "$(stat -c %i "$mnt/d/hl2")" ] && pass ||
		fail "hard links within A are not one inode"
	cmp -s "$mnt/d/big-a" "$WORK/x/a/d/big-a" && cmp -s "$mnt/d/big-b" "$WORK/x/b/d/big-b" &&
		pass || fail "big files read back wrong"
	if [ "$(stat_of "$mnt" passthrough)" = 1 ]; then
		[ "$(stat_of "$mnt" opens_passthrough)" -ge 1 ] && pass ||
			fail "no passthrough open for the big files: $(getfattr --only-values -n user.cairn.stats "$mnt")"
	fi
	inodes "$mnt" >"$WORK/inodes.1"
	[ "$(grep -c . "$WORK/inodes.1")" -gt 10 ] && pass || fail "find saw too little"
	[ "$(awk '{print $1}' "$WORK/inodes.1" | sort | uniq -d | wc -l)" = 1 ] && pass ||
		fail "inode numbers shared by other than the hard link: $(awk '{print $1}' "$WORK/inodes.1" | sort | uniq -d)"
	unmount "$mnt" || fail "unmount"
	if mount_at "$mnt" A B c; then
		inodes "$mnt" >"$WORK/inodes.2"
		cmp -s "$WORK/inodes.1" "$WORK/inodes.2" && pass ||
			fail "inode numbers changed across a remount: $(diff "$WORK/inodes.1" "$WORK/inodes.2" | head -5)"
		unmount "$mnt" || fail "unmount"
	else
		fail "remount A B c"
	fi
else
	fail "mount A B c.tar"
fi

# Order matters: c A is another tree.
expect ca c a
if mount_at "$mnt" c A; then
	same "c A" "$mnt" "$WORK/e/ca"
	check_dirs "$mnt"
	unmount "$mnt" || fail "unmount"
else
	fail "mount c A"
fi

# ---- nomerge ----
if mount_at "$mnt" -o nomerge A B A; then
	[ "$(ls "$mnt" | tr '\n' /)" = "A/A (2)/B/" ] && pass || fail "nomerge: $(ls "$mnt")"
	same "nomerge A" "$mnt/A" "$WORK/x/a"
	same "nomerge B" "$mnt/B" "$WORK/x/b"
	same "nomerge A (2)" "$mnt/A (2)" "$WORK/x/a"
	[ "$(stat -c %i "$mnt/A/f")" != "$(stat -c %i "$mnt/A (2)/f")" ] && pass ||
		fail "nomerge: two sources share an inode"
	inodes "$mnt" >"$WORK/inodes.3"
	unmount "$mnt" || fail "unmount"
	mount_at "$mnt" -o nomerge A B A && inodes "$mnt" | cmp -s - "$WORK/inodes.3" && pass ||
		fail "nomerge: inode numbers changed across a remount"
	unmount "$mnt" || fail "unmount"
else
	fail "mount -o nomerge"
fi

# ---- SNAPSHOT:PATH ----
if mount_at "$mnt" A:d; then
	same "A:d" "$mnt" "$WORK/x/a/d"
	[ "$(stat -c %i "$mnt")" = 1 ] && pass || fail "A:d: the root is not inode 1"
	check_dirs "$mnt"
	unmount "$mnt" || fail "unmount"
else
	fail "mount A:d"
fi
if mount_at "$mnt" A:/r/deep/; then
	same "A:/r/deep/" "$mnt" "$WORK/x/a/r/deep"
	unmount "$mnt" || fail "unmount"
else
	fail "mount A:/r/deep/"
fi
expect sub a/d c/p
if mount_at "$mnt" A:d "$WORK/c.tar:p"; then
	same "A:d c.tar:p" "$mnt" "$WORK/e/sub"
	unmount "$mnt" || fail "unmount"
else
	fail "mount A:d c.tar:p"
fi
# An archive path with ':' in it: split after the file.
mkdir -p "$WORK/odd:dir"
cp "$WORK/a.tar" "$WORK/odd:dir/a.tar"
if mount_at "$mnt" "$WORK/odd:dir/a.tar:d/sub"; then
	same "odd:dir/a.tar:d/sub" "$mnt" "$WORK/x/a/d/sub"
	unmount "$mnt" || fail "unmount"
else
	fail "mount odd:dir/a.tar:d/sub"
fi

# refused WHAT ARGS...: exit 1, one line naming the source, nothing mounted
refused() {
	local what=$1
	shift
	"$CAIRN" -s "$STORE" mount -o "cache=$CACHE" "$@" "$mnt" >"$WORK/out" 2>"$WORK/err"
	local r=$?
	if [ $r != 1 ] || [ "$(wc -l <"$WORK/err")" != 1 ] || ! grep -qF "$what" "$WORK/err"; then
		fail "$what: exit $r, stderr: $(cat "$WORK/err")"
	elif is_mounted "$mnt"; then
		fail "$what: mounted anyway"
		unmount "$mnt"
	else
		pass
	fi
}
refused "A:f: not a directory" A:f
refused "A:nope: no such directory" A:nope
refused "A:d/x: not a directory" B A:d/x
refused "nosuch" A nosuch

finish
