#!/bin/bash
# test_onestep.sh: `cairn mount ARCHIVE` with no mount point, and `cairn
# mount --temp`, as a fuse-archive user types them.
#  - A mount point named after the archive without its suffixes is made
#    next to it ("v1.2.tar.gz" -> "v1.2"; "NAME (1)" where the name is taken,
#    by a file too), the mount equals bsdtar -x of the archive, stderr says
#    in one line what was done (added, or already there) and where, and the
#    directory is gone after each way of unmounting: cairn umount,
#    fusermount3 -u, umount(8), SIGTERM to the daemon.
#  - One argument keeps its old meaning for a directory (the whole store);
#    a snapshot's name mounts it on ./NAME.
#  - --name and --replace work as add's; a collision advises them.
#  - Hostile names: spaces and a newline in the archive's name, an archive
#    named ".tar.gz" (no stem: refused before anything is added).
#  - --temp: a throwaway store and blob cache under $TMPDIR, the default
#    store untouched, nothing left after cairn umount, fusermount3 -u,
#    umount or SIGTERM; a bad archive leaves nothing; what a killed daemon
#    left is removed by the next --temp run, and a live one's is kept.
#
# usage: test_onestep.sh CAIRN MTOOL COMPARE LIB
. "$4" onestep "$@"

need_tools fusermount3 flock

# Mount points here have spaces and newlines, which mountinfo escapes
# (\040, \012): lib.sh's is_mounted, unescaping.
is_mounted() {
	python3 - "$1" <<'PY'
import re, sys
unescape = lambda f: re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), f)
with open("/proc/self/mountinfo") as table:
    sys.exit(0 if any(unescape(l.split()[4]) == sys.argv[1] for l in table) else 1)
PY
}

# A mount point made by cairn is in no daemon's command line: each one-step
# run gets a tag in its environment, and tagged_pid finds its daemon by it.
TAG=0
tagged_pid() {
	local p
	for p in /proc/[0-9]*; do
		tr '\0' '\n' <"$p/environ" 2>/dev/null | grep -qx "CAIRN_ONESTEP_TAG=$1" || continue
		grep -q '^State:.*Z' "$p/status" 2>/dev/null && continue
		echo "${p#/proc/}"
		return 0
	done
	return 1
}
SRC=$WORK/src
A=$WORK/arch
mkdir -p "$A" "$WORK/tmp" "$WORK/cwd"
make_tree "$SRC"
random_file "$SRC/large.bin" 1200000 5
bsdtar --format pax --gzip -cf "$A/v1.2.tar.gz" -C "$SRC" .
mkdir -p "$WORK/x"
bsdtar -xf "$A/v1.2.tar.gz" -C "$WORK/x"
# --temp must not touch the default store or cache.
export XDG_DATA_HOME=$WORK/xdg-data XDG_CACHE_HOME=$WORK/xdg-cache TMPDIR=$WORK/tmp
unset CAIRN_STORE

# same TREE WHAT: the mounted TREE equals bsdtar -x of the archive (diff
# -r's report is line by line: not for a TREE whose path holds a newline).
same() {
	local out=$WORK/diff
	if ! python3 "$COMPARE" "$1" "$WORK/x" >"$out" 2>&1; then
		fail "$2: compare.py finds differences: $(head -5 "$out")"
	elif [ "$(printf '%s' "$1" | wc -l)" = 0 ] && diff -r --no-dereference "$1" "$WORK/x" 2>&1 |
		grep -v -E '^File .* is a ([a-z ]+) while file .* is a \1$' >"$out" && [ -s "$out" ]; then
		fail "$2: diff -r finds differences: $(head -5 "$out")"
	else
		pass
	fi
}

# one_step WHAT DIR ARGS...: cairn ARGS (from DIR) must mount and say so in
# one line; sets MNT (from that line) and PID. Returns 1 otherwise.
one_step() {
	local what=$1 dir=$2
	shift 2
	MNT= PID=
	TAG=$((TAG + 1))
	(cd "$dir" && CAIRN_ONESTEP_TAG=$TAG "$CAIRN" "$@") >"$WORK/out" 2>"$WORK/err"
	local r=$?
	if [ $r != 0 ]; then
		fail "$what: exit $r: $(cat "$WORK/err")"
		return 1
	fi
	local line
	line=$(grep -v '^cairn: created a new store' "$WORK/err")
	case $line in
	*"; mounted at "*) MNT=${line##*; mounted at } ;;
	"cairn: mounted snapshot "*" at "*) MNT=${line##* at } ;;
	*)
		fail "$what: stderr says: $(cat "$WORK/err")"
		# Whatever it mounted goes with its daemon.
		PID=$(tagged_pid $TAG) && kill -TERM "$PID" && wait_gone "$PID"
		return 1
		;;
	esac
	[ "$(printf '%s\n' "$line" | wc -l)" = 1 ] || fail "$what: not one line: $line"
	case $MNT in /*) ;; *) MNT=$dir/$MNT ;; esac
	MOUNTS+=("$MNT")
	if ! is_mounted "$(realpath "$MNT")"; then
		fail "$what: $MNT is not mounted"
		return 1
	fi
	PID=$(tagged_pid $TAG)
	DAEMON[$MNT]=$PID
	LINE=$line
	return 0
}

# gone WHAT PATH PID: the daemon exits and the mount point it made goes.
gone() {
	wait_gone "$3" || fail "$1: the daemon (pid $3) did not exit"
	local i
	for i in $(seq 1 100); do
		[ -e "$2" ] || break
		sleep 0.05
	done
	[ ! -e "$2" ] && pass || fail "$1: $2 is still there"
	is_mounted "$2" && fail "$1: $2 is still mounted"
	DAEMON[$2]=
}

# temp_dirs: what --temp runs have in $TMPDIR.
temp_dirs() {
	ls -A "$TMPDIR"
}

# unmount_by HOW MNT PID: unmounts one way.
unmount_by() {
	case $1 in
	cairn) "$CAIRN" umount "$2" ;;
	fusermount3) fusermount3 -u "$2" ;;
	umount) umount "$2" ;;
	SIGTERM) kill -TERM "$3" ;;
	esac
}

# ---- a mount point named after the archive ----

export CAIRN_STORE=$STORE
if one_step "auto mount point" "$WORK/cwd" mount -o "cache=$CACHE,suid,dev" "$A/v1.2.tar.gz"; then
	[ "$MNT" = "$A/v1.2" ] || fail "auto mount point: made $MNT, not $A/v1.2"
	case $LINE in
	"cairn: added $A/v1.2.tar.gz as snapshot v1.2 ("*" entries); mounted at $A/v1.2") pass ;;
	*) fail "auto mount point: says '$LINE'" ;;
	esac
	same "$MNT" "auto mount point"
	[ "$("$CAIRN" ls)" = v1.2 ] || fail "auto mount point: the store has $("$CAIRN" ls)"
	# A second mount of the same archive: reused, and "v1.2 (1)".
	first=$MNT first_pid=$PID
	if one_step "second mount" "$A" mount -o "cache=$CACHE,suid,dev" v1.2.tar.gz; then
		[ "$LINE" = "cairn: v1.2.tar.gz is already snapshot v1.2; mounted at ./v1.2 (1)" ] &&
			pass || fail "second mount: says '$LINE'"
		same "$MNT" "second mount"
		"$CAIRN" umount "$MNT" || fail "second mount: cairn umount"
		gone "second mount" "$MNT" "$PID"
	fi
	"$CAIRN" umount "$first" || fail "auto mount point: cairn umount"
	gone "auto mount point" "$first" "$first_pid"
fi

# Each way of unmounting removes the mount point; a name taken by a file
# is passed over, and the file stays.
: >"$A/v1.2"
for how in cairn fusermount3 umount SIGTERM; do
	one_step "unmount by $how" "$WORK/cwd" mount -o "cache=$CACHE,suid,dev" "$A/v1.2.tar.gz" || continue
	[ "$MNT" = "$A/v1.2 (1)" ] || fail "unmount by $how: made $MNT, not '$A/v1.2 (1)'"
	cmp -s "$MNT/large.bin" "$SRC/large.bin" || fail "unmount by $how: large.bin differs"
	unmount_by "$how" "$MNT" "$PID" || fail "unmount by $how failed"
	gone "unmount by $how" "$MNT" "$PID"
	[ -f "$A/v1.2" ] || fail "unmount by $how: the file v1.2 went"
done
rm -f "$A/v1.2"

# ---- one argument: a directory, a snapshot ----

mkdir -p "$WORK/mnt"
if mount_at "$WORK/mnt"; then
	[ "$(ls "$WORK/mnt")" = v1.2 ] && pass || fail "one directory argument: lists $(ls "$WORK/mnt")"
	unmount "$WORK/mnt" || fail "one directory argument: unmount"
fi
if one_step "a snapshot's name" "$WORK/cwd" mount -o "cache=$CACHE,suid,dev" v1.2; then
	[ "$LINE" = "cairn: mounted snapshot v1.2 at ./v1.2" ] || fail "a snapshot's name: says '$LINE'"
	same "$MNT" "a snapshot's name"
	"$CAIRN" umount "$MNT" || fail "a snapshot's name: cairn umount"
	gone "a snapshot's name" "$MNT" "$PID"
fi
(cd "$WORK/cwd" && "$CAIRN" mount no-such-thing) 2>"$WORK/err"
[ $? = 1 ] && [ "$(wc -l <"$WORK/err")" = 1 ] && [ -z "$(ls -A "$WORK/cwd")" ] && pass ||
	fail "a name that is nothing: $(cat "$WORK/err"); cwd has $(ls -A "$WORK/cwd")"

# ---- --name and --replace ----

mkdir -p "$WORK/other"
printf 'other\n' >"$WORK/other/only"
bsdtar -czf "$A/other.tar.gz" -C "$WORK/other" .
"$CAIRN" mount -o "cache=$CACHE,suid,dev" --name v1.2 "$A/other.tar.gz" 2>"$WORK/err"
r=$?
if [ $r = 1 ] && [ "$(wc -l <"$WORK/err")" = 1 ] && grep -q -e "--replace" "$WORK/err" &&
	grep -q -e "--name" "$WORK/err" && [ ! -e "$A/other" ]; then
	pass
else
	fail "a name collision: exit $r: $(cat "$WORK/err")"
fi
if one_step "--replace" "$A" mount -o "cache=$CACHE,suid,dev" --name v1.2 --replace other.tar.gz; then
	case $LINE in
	"cairn: added other.tar.gz as snapshot v1.2 ("*" entries); mounted at ./other") pass ;;
	*) fail "--replace: says '$LINE'" ;;
	esac
	cmp -s "$MNT/only" "$WORK/other/only" || fail "--replace: the mount is not other.tar.gz"
	"$CAIRN" umount "$MNT" || fail "--replace: cairn umount"
	gone "--replace" "$MNT" "$PID"
fi

# ---- hostile names ----

odd="$A/my odd
name.tar.gz"
cp "$A/v1.2.tar.gz" "$odd"
# No snapshot name without --name: refused, nothing made or added.
before=$("$CAIRN" ls)
"$CAIRN" mount -o "cache=$CACHE,suid,dev" "$odd" 2>"$WORK/err"
r=$?
[ $r = 1 ] && [ "$(wc -l <"$WORK/err")" = 1 ] && grep -q "choose one with --name" "$WORK/err" &&
	[ ! -e "$A/my odd
name" ] && [ "$("$CAIRN" ls)" = "$before" ] && pass ||
	fail "a name with a space and a newline, no --name: exit $r: $(cat "$WORK/err")"
# With --name: the mount point keeps the name, escaped on the terminal.
want="$A/my odd
name"
if (cd "$A" && CAIRN_ONESTEP_TAG=odd "$CAIRN" mount -o "cache=$CACHE,suid,dev" --name odd "$odd") 2>"$WORK/err"; then
	MOUNTS+=("$want")
	pid=$(tagged_pid odd)
	grep -q 'mounted at .*/my odd\\012name$' "$WORK/err" || fail "odd name: says $(cat "$WORK/err")"
	[ -d "$want" ] && same "$want" "odd name"
	cmp -s "$want/large.bin" "$SRC/large.bin" || fail "odd name: large.bin differs"
	"$CAIRN" umount "$want" || fail "odd name: cairn umount"
	gone "odd name" "$want" "$pid"
else
	fail "odd name with --name: $(cat "$WORK/err")"
fi
# ".tar.gz": no stem, so no mount point; refused before the add.
cp "$A/v1.2.tar.gz" "$A/.tar.gz"
"$CAIRN" mount -o "cache=$CACHE,suid,dev" --name dot "$A/.tar.gz" 2>"$WORK/err"
r=$?
[ $r = 1 ] && [ "$(wc -l <"$WORK/err")" = 1 ] && grep -q "give a MOUNTPOINT" "$WORK/err" &&
	! "$CAIRN" ls | grep -qx dot && [ ! -e "$A/.tar" ] && pass ||
	fail "an archive named .tar.gz: exit $r: $(cat "$WORK/err"); store: $("$CAIRN" ls)"
# ... and with a MOUNTPOINT it mounts.
if mount_at "$WORK/mnt" -o suid,dev --name dot "$A/.tar.gz"; then
	same "$WORK/mnt" ".tar.gz with a MOUNTPOINT"
	unmount "$WORK/mnt" || fail ".tar.gz: unmount"
else
	fail ".tar.gz with a MOUNTPOINT"
fi

# ---- --temp ----

unset CAIRN_STORE
for how in cairn fusermount3 umount SIGTERM; do
	one_step "--temp, unmount by $how" "$WORK/cwd" mount --temp -o suid,dev "$A/v1.2.tar.gz" || continue
	case $LINE in
	"cairn: added $A/v1.2.tar.gz to a temporary store ("*" entries; removed at unmount); mounted at $A/v1.2") pass ;;
	*) fail "--temp: says '$LINE'" ;;
	esac
	same "$MNT" "--temp ($how)"
	[ "$(temp_dirs | wc -l)" = 1 ] || fail "--temp ($how): \$TMPDIR holds $(temp_dirs)"
	if [ "$(stat_of "$MNT" passthrough)" = 1 ] && [ -z "$(ls "$TMPDIR"/*/cache/blobs 2>/dev/null)" ]; then
		fail "--temp ($how): no blob in its cache"
	fi
	unmount_by "$how" "$MNT" "$PID" || fail "--temp: unmount by $how failed"
	gone "--temp, unmount by $how" "$MNT" "$PID"
	[ -z "$(temp_dirs)" ] && pass || fail "--temp, unmount by $how: left $(temp_dirs)"
done
[ ! -e "$XDG_DATA_HOME" ] && [ ! -e "$XDG_CACHE_HOME" ] && pass ||
	fail "--temp touched the default store or cache: $(ls -d "$XDG_DATA_HOME" "$XDG_CACHE_HOME" 2>&1)"

# A bad archive: nothing left behind.
random_file "$A/bad.tar.gz" 5000 9
"$CAIRN" mount --temp "$A/bad.tar.gz" 2>"$WORK/err"
r=$?
[ $r = 1 ] && [ -z "$(temp_dirs)" ] && [ ! -e "$A/bad" ] && pass ||
	fail "--temp with a bad archive: exit $r, left $(temp_dirs) $(ls -d "$A/bad" 2>/dev/null): $(cat "$WORK/err")"
# A truncated archive: the add fails part way.
head -c 300000 "$A/v1.2.tar.gz" >"$A/cut.tar.gz"
"$CAIRN" mount --temp "$A/cut.tar.gz" "$WORK/mnt" 2>"$WORK/err"
r=$?
[ $r = 1 ] && [ -z "$(temp_dirs)" ] && ! is_mounted "$WORK/mnt" && pass ||
	fail "--temp with a truncated archive: exit $r, left $(temp_dirs): $(cat "$WORK/err")"
"$CAIRN" mount --temp -s "$STORE" "$A/v1.2.tar.gz" "$WORK/mnt" 2>/dev/null
[ $? = 2 ] && [ -z "$(temp_dirs)" ] && pass || fail "--temp with -s is not a usage error"

# A daemon killed: its directory stays until the next --temp run, which
# removes it, and keeps one whose lock is held (a live mount's).
if one_step "--temp, killed" "$WORK/cwd" mount --temp -o suid,dev "$A/v1.2.tar.gz" "$WORK/mnt"; then
	kill -KILL "$PID"
	wait_gone "$PID"
	umount -l "$WORK/mnt"
	left=$(temp_dirs)
	[ -n "$left" ] || fail "--temp, killed: nothing was left to reap (the test is void)"
	mkdir -p "$TMPDIR/cairn-temp-live"
	: >"$TMPDIR/cairn-temp-live/lock"
	# Its output away from the test's: meson waits for every holder of
	# the test's stdout, and the sleep outlives a killed flock.
	flock "$TMPDIR/cairn-temp-live/lock" sleep 60 </dev/null >/dev/null 2>&1 &
	holder=$!
	sleep 0.2
	if one_step "--temp after a kill" "$WORK/cwd" mount --temp -o suid,dev "$A/v1.2.tar.gz" "$WORK/mnt"; then
		[ ! -e "$TMPDIR/$left" ] && pass || fail "--temp after a kill: $left is still there"
		[ -e "$TMPDIR/cairn-temp-live" ] && pass || fail "--temp removed a live run's directory"
		"$CAIRN" umount "$WORK/mnt" || fail "--temp after a kill: cairn umount"
		wait_gone "$PID"
	fi
	pkill -P "$holder" sleep
	kill "$holder" 2>/dev/null
	wait "$holder" 2>/dev/null
	rm -rf "$TMPDIR/cairn-temp-live"
	[ -z "$(temp_dirs)" ] && pass || fail "--temp after a kill: left $(temp_dirs)"
fi

finish
