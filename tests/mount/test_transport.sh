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
# wants the suite's transport); stderr in $WORK/err.
mount_with() {
	MOUNTS+=("$mnt")
	mkdir -p "$mnt"
	"$CAIRN" -s "$STORE" mount -o "cache=$CACHE,passthrough_min=128K,$1" tree "$mnt" \
		2>"$WORK/err" || return 1
	DAEMON[$mnt]=$(daemon_pid "$mnt")
}

# ---- forced off ----

if mount_with noio_uring; then
	[ "$(stat_of "$mnt" transport)" = dev_fuse ] ||
		fail "-o noio_uring: served over $(stat_of "$mnt" transport)"
	grep -q 'transport: /dev/fuse (-o noio_uring)' "$WORK/err" ||
		fail "-o noio_uring: no log line: $(cat "$WORK/err")"
	check "-o noio_uring: the tree" python3 "$COMPARE" --no-owner "$mnt" "$SRC"
	unmount "$mnt" || fail "-o noio_uring: unmount"
else
	fail "-o noio_uring: mount failed: $(cat "$WORK/err")"
fi

# ---- forced on, where it can be ----

if ! ldd "$CAIRN" | grep -q 'liburing\.so' || [ ! -e "$URING_SWITCH" ]; then
	echo "# no io_uring in this libfuse or kernel: the forced-on case is not run"
elif mount_with io_uring; then
	[ "$(stat_of "$mnt" transport)" = io_uring ] ||
		fail "-o io_uring: served over $(stat_of "$mnt" transport): $(cat "$WORK/err")"
	check "-o io_uring: the tree" python3 "$COMPARE" --no-owner "$mnt" "$SRC"
	[ "$(stat_of "$mnt" opens_passthrough)" -gt 0 ] ||
		fail "-o io_uring: big did not pass through: $(getfattr --only-values -n user.cairn.stats "$mnt")"
	unmount "$mnt" || fail "-o io_uring: unmount"
else
	fail "-o io_uring: mount failed: $(cat "$WORK/err")"
fi

# ---- io_uring that cannot start ----

# fallback FAKE OPTS: in a private mount namespace where the kernel's
# switch reads as FAKE, mounts with OPTS, reads a file, prints the stats
# and unmounts; the mount's stderr goes to $WORK/err.
fallback() {
	unshare -m --propagation private bash -c '
		cairn=$1 store=$2 cache=$3 mnt=$4 fake=$5 opts=$6 err=$7
		trap "\"$cairn\" umount \"$mnt\" 2>/dev/null || umount -l \"$mnt\" 2>/dev/null" EXIT
		if [ -e /sys/module/fuse/parameters/enable_uring ]; then
			mount --bind "$fake" /sys/module/fuse/parameters/enable_uring &&
				mount -o remount,bind,ro /sys/module/fuse/parameters/enable_uring ||
				exit 3
		fi
		"$cairn" -s "$store" mount -o "cache=$cache$opts" tree "$mnt" 2>"$err" || exit 4
		cat "$mnt/dir/hello" >/dev/null || exit 5
		getfattr --only-values -n user.cairn.stats "$mnt"
		"$cairn" umount "$mnt" || exit 6
		trap - EXIT
	' fallback "$CAIRN" "$STORE" "$CACHE" "$mnt" "$1" "$2" "$WORK/err"
}

printf 'N\n' >"$WORK/switch-off"
unset CAIRN_FUSE_TRANSPORT # the default: io_uring where it can be
for fake in "$WORK/switch-off" /dev/null; do
	for opts in ,io_uring ""; do
		what="switch ${fake##*/}, -o ${opts#,}"
		out=$(fallback "$fake" "$opts")
		r=$?
		if [ $r != 0 ]; then
			fail "$what: exit $r (3: bind mount, 4: mount, 5: read, 6: unmount): $(cat "$WORK/err")"
			continue
		fi
		[[ $out == *transport=dev_fuse* ]] || fail "$what: not served over /dev/fuse: $out"
		if ldd "$CAIRN" | grep -q 'liburing\.so'; then
			case $fake in
			*switch-off) want="FUSE over io_uring is off" ;;
			*) want="this kernel has no FUSE over io_uring" ;;
			esac
		else
			want="has no io_uring"
		fi
		grep -q "transport: /dev/fuse (.*$want" "$WORK/err" ||
			fail "$what: no fallback log line ($want): $(cat "$WORK/err")"
		pass
	done
done
finish
