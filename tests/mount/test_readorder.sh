#!/bin/bash
# test_readorder.sh: a record of small files is decoded whole, and its other
# chunks (the files archived beside the one read) are cached with it only
# when the reads go through the archive in order. 6,000 files of 4 KiB, in
# records of about 60: read in archive order, nearly every file after each
# record's first two comes from the cache (user.cairn.stats neighbours= counts
# the chunks cached that way); read 4 MB of packs apart, in a fresh
# mount, no neighbour is cached (each would be copied, checked and cached
# for nothing), and then in order again (backwards) they are. Every file
# reads right each way.
#
# usage: test_readorder.sh CAIRN MTOOL COMPARE LIB
. "$4" readorder "$@"
need_tools taskset

SRC=$WORK/src
N=6000
mkdir -p "$SRC"
python3 - "$SRC" "$N" <<'EOF'
import random, sys
src, n = sys.argv[1], int(sys.argv[2])
rng = random.Random(7)
for i in range(n):
    with open(f"{src}/f{i:04d}", "wb") as f:
        f.write(rng.randbytes(4096))
EOF
# archive order is name order (a directory's listing order is not)
(cd "$SRC" && ls) >"$WORK/order"
bsdtar -cf "$WORK/small.tar" -C "$SRC" -T "$WORK/order"
# one CPU (the first this test may use), so one compression thread: the
# records are in the pack in archive order (with more, each thread appends
# its record as it is done, a few records out of place per thread)
cpu=$(python3 -c 'import os; print(min(os.sched_getaffinity(0)))')
taskset -c "$cpu" "$CAIRN" -s "$STORE" add -q --name small "$WORK/small.tar" || fail "cairn add"
mnt=$WORK/mnt

# read_files FIRST STEP COUNT: cat of f(FIRST), f(FIRST+STEP), ... through
# the mount, each compared with its source.
read_files() {
	local i=$1 k bad=0
	for ((k = 0; k < $3; k++, i += $2)); do
		cmp -s "$mnt/f$(printf %04d "$i")" "$SRC/f$(printf %04d "$i")" || bad=1
	done
	return $bad
}

mount_at "$mnt" small || fail "mount"
check "files read in archive order" read_files 0 1 600
n=$(stat_of "$mnt" neighbours)
reads=$(stat_of "$mnt" reads)
echo "in order: $reads READs, $n neighbours cached"
# 600 files in about 10 records: all but two of each record's files
[ "$n" -ge 500 ] && pass || fail "in archive order, $n neighbours cached (expected >= 500)"
check "unmount" unmount "$mnt"

mount_at "$mnt" small || fail "mount"
# 1,000 files of 4 KiB apart: 4 MB of packs between two reads
check "files read 4 MB apart" read_files 0 1000 6
n=$(stat_of "$mnt" neighbours)
echo "far apart: $(stat_of "$mnt" reads) READs, $n neighbours cached"
[ "$n" = 0 ] && pass || fail "reads far apart cached $n neighbours"
# and in order again in the same mount, backwards: neighbours come back
check "files read in archive order, backwards" read_files 1399 -1 200
n=$(stat_of "$mnt" neighbours)
[ "$n" -ge 150 ] && pass || fail "in order after far reads, $n neighbours cached (expected >= 150)"
check "unmount" unmount "$mnt"
finish
