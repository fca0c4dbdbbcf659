#!/bin/bash
# test_transport.sh: the channel the mount's requests come over.
#  - -o noio_uring: /dev/fuse (user.cairn.stats says transport=dev_fuse),
#    whatever the kernel allows; the log says so.
#  - -o io_uring where libfuse and the kernel have it: transport=io_uring,
#    and the files read right over it (passthrough included).
#  - Where io_uring cannot start, the mount falls back to /dev/fuse with a
#    log line and never fails: in a private mount namespace the kernel's
#    switch is made to read as off (a read-only file saying N, which root
#    cannot turn on) and as missing (/dev/null), with -o io_uring and
#    without.
#
# usage: test_transport.sh CAIRN MTOOL COMPARE LIB
. "$4" transport "$@"
need_tools unshare

SRC=$WORK/src
mkdir -p "$SRC/dir"
printf 'hello\n' >"$SRC/dir/hello"
random_file "$SRC/big" 400000 61
bsdtar --format pax -cf "$WORK/tree.tar" -C "$SRC" .
add tree "$WORK/tree.tar" || fail "cairn add"
mnt=$WORK/mnt

# mount_with OPTS: mounts tree on $mnt with -o OPTS (not mount_at, which
# wants the suite's transport).
mount_with() {
	MOUNTS+=("$mnt")
	mkdir -p "$mnt"
	"$CAIRN" -s "$STORE" mount -o "cache=$CACHE,passthrough_min=128K,$1" tree "$mnt" \
		2>"$WORK/err" || return 1
	DAEMON[$mnt]=$(daemon_pid "$mnt")
}

# in_ns FAKE OPTS: in a private mount namespace where the kernel's switch
# reads as the file FAKE (none: as it is), mounts tree in the foreground
# with -o OPTS (its log on stderr, in $WORK/err), reads a file, prints the
# stats and unmounts. Exit 3: bind mount, 4: mount, 5: read, 6: unmount.
in_ns() {
	unshare -m --propagation private bash -c '
		cairn=$1 store=$2 cache=$3 mnt=$4 fake=$5 opts=$6 err=$7
		sw=/sys/module/fuse/parameters/enable_uring
		trap "\"$cairn\" umount \"$mnt\" 2>/dev/null || umount -l \"$mnt\" 2>/dev/null" EXIT
		if [ -n "$fake" ] && [ -e $sw ]; then
			mount --bind "$fake" $sw && mount -o remount,bind,ro $sw || exit 3
		fi
		"$cairn" -s "$store" mount -f -o "cache=$cache$opts" tree "$mnt" 2>"$err" &
		pid=$!
		for i in $(seq 1 200); do
			mountpoint -q "$mnt" && break
			kill -0 $pid 2>/dev/null || exit 4
			sleep 0.05
		done
		cat "$mnt/dir/hello" >/dev/null || exit 5
		getfattr --only-values -n user.cairn.stats "$mnt"
		"$cairn" umount "$mnt" || exit 6
		trap - EXIT
		wait $pid || exit 6
	' in_ns "$CAIRN" "$STORE" "$CACHE" "$mnt" "$1" "$2" "$WORK/err"
}

# served FAKE OPTS WANT LOG: the mount of in_ns is served over WANT and
# logs LOG (a grep pattern).
served() {
	local what="switch ${1:-as it is} -o ${2#,}" out r
	out=$(in_ns "$1" "$2")
	r=$?
	if [ $r != 0 ]; then
		fail "$what: exit $r: $(cat "$WORK/err")"
	elif [[ $out != *transport=$3* ]]; then
		fail "$what: not served over $3: $out; $(cat "$WORK/err")"
	elif ! grep -q "$4" "$WORK/err"; then
		fail "$what: no log line '$4': $(cat "$WORK/err")"
	else
		pass
	fi
}

mkdir -p "$mnt"
unset CAIRN_FUSE_TRANSPORT # the default: io_uring where it can be

# ---- forced off ----

served "" ,noio_uring dev_fuse 'transport: /dev/fuse (-o noio_uring)'

# ---- forced on, where it can be ----

if ! "$CAIRN" --version | grep -q 'with FUSE over io_uring' || [ ! -e "$URING_SWITCH" ]; then
	echo "# no io_uring in this libfuse or kernel: the forced-on case is not run"
else
	served "" ,io_uring io_uring 'transport: io_uring'
	if mount_with io_uring; then
		check "-o io_uring: the tree" python3 "$COMPARE" --no-owner "$mnt" "$SRC"
		[ "$(stat_of "$mnt" opens_passthrough)" -gt 0 ] ||
			fail "-o io_uring: big did not pass through: $(getfattr --only-values -n user.cairn.stats "$mnt")"
		unmount "$mnt" || fail "-o io_uring: unmount"
	else
		fail "-o io_uring: mount failed: $(cat "$WORK/err")"
	fi
fi

# ---- io_uring that cannot start: /dev/fuse, a log line, never a failure ----

printf 'N\n' >"$WORK/switch-off"
for fake in "$WORK/switch-off" /dev/null; do
	if ! "$CAIRN" --version | grep -q 'with FUSE over io_uring'; then
		want="has no io_uring"
	elif [ "$fake" = /dev/null ]; then
		want="this kernel has no FUSE over io_uring"
	else
		want="FUSE over io_uring is off"
	fi
	served "$fake" ,io_uring dev_fuse "transport: /dev/fuse (.*$want"
	served "$fake" "" dev_fuse "transport: /dev/fuse (.*$want"
done

finish
