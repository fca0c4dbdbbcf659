# lib.sh: what the mount tests share, sourced by each of them: the skip
# checks (root and /dev/fuse), a temp directory with a store and a private
# blob cache, mounting with every mount point remembered and unmounted on
# exit (also on failure), the daemons' exit after unmount, the sanitizer
# reports they leave (ASan/UBSan write to files here, since a daemon has no
# stderr), the mount's counters, and the fixture tree.
#
# A test sources it as: . "$LIB" NAME "$@", with CAIRN MTOOL COMPARE [...]
# as its arguments; then it calls pass/fail/check (tests/lib.sh, the shared
# harness, sourced here) and ends with finish.
set -u
export LC_ALL=C.UTF-8

TEST_NAME=$1
shift
. "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"
CAIRN=$(abs_path "$1")
MTOOL=$(abs_path "$2")
COMPARE=$(abs_path "$3")

[ "$(id -u)" = 0 ] || skip "mounting with passthrough needs root (CAP_SYS_ADMIN)"
[ -c /dev/fuse ] || skip "there is no /dev/fuse"
[ -r /dev/fuse ] && [ -w /dev/fuse ] || skip "/dev/fuse is not usable here"
need_tools bsdtar tar python3 getfattr setfattr

# The transport every mount of the test uses, whichever way it is made
# (CAIRN_FUSE_TRANSPORT is the default of -o io_uring / noio_uring): meson
# runs each mount test over /dev/fuse, and again as NAME_uring with
# CAIRN_TEST_TRANSPORT=io_uring where libfuse has it. mount_at checks that
# the mount really is served that way. The io_uring run turns the kernel's
# machine-wide switch on (each mount would, as root, with -o io_uring).
URING_SWITCH=/sys/module/fuse/parameters/enable_uring
TRANSPORT=${CAIRN_TEST_TRANSPORT:-dev_fuse}
case $TRANSPORT in
io_uring)
	# (the libfuse the mounts open, as --version names it)
	"$CAIRN" --version | grep -q 'with FUSE over io_uring' ||
		skip "this build's libfuse has no io_uring"
	[ -e "$URING_SWITCH" ] || skip "this kernel has no FUSE over io_uring"
	[ "$(cat "$URING_SWITCH")" = Y ] || echo 1 >"$URING_SWITCH" ||
		skip "cannot turn FUSE over io_uring on ($URING_SWITCH)"
	;;
dev_fuse) ;;
*)
	echo "CAIRN_TEST_TRANSPORT=$TRANSPORT: expected io_uring or dev_fuse" >&2
	exit 1
	;;
esac
export CAIRN_FUSE_TRANSPORT=$TRANSPORT

WORK=$(mktemp -d "${TMPDIR:-/tmp}/cairn-mount-$TEST_NAME-XXXXXX") || exit 1
STORE=$WORK/store
CACHE=$WORK/cache
SAN=$WORK/sanitizer
mkdir -p "$SAN"
cd "$WORK" || exit 1
# Daemons log to nowhere once they are ready: sanitizer reports go to files.
export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1}:log_path=$SAN/asan"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1}:log_path=$SAN/ubsan"

MOUNTS=()
declare -A DAEMON

is_mounted() {
	awk -v m="$1" '$5 == m { found = 1 } END { exit !found }' /proc/self/mountinfo
}

# The pid of the daemon serving mount point $1 (its command line names it).
daemon_pid() {
	local p
	for p in /proc/[0-9]*; do
		p=${p#/proc/}
		[ "$p" = $$ ] && continue
		{ tr '\0' '\n' <"/proc/$p/cmdline"; } 2>/dev/null | grep -qxF -- "$1" || continue
		grep -q '^State:.*Z' "/proc/$p/status" 2>/dev/null && continue
		echo "$p"
		return 0
	done
	return 1
}

# mount_at MNT ARGS...: cairn -s STORE mount -o cache=CACHE ARGS... MNT (the
# daemon form: it returns once the mount is ready). The mount point is
# remembered for unmounting. Returns cairn's status; stderr in $WORK/mount.err.
mount_at() {
	local mnt=$1
	shift
	mkdir -p "$mnt"
	MOUNTS+=("$mnt")
	# The tests' files are sized around a 128K threshold (the default is
	# 1M, chosen by bench/mount); a later -o passthrough_min= overrides it.
	"$CAIRN" -s "$STORE" mount -o "cache=$CACHE,passthrough_min=128K" "$@" "$mnt" 2>"$WORK/mount.err"
	local r=$?
	if [ $r = 0 ]; then
		is_mounted "$mnt" || {
			echo "cairn mount returned 0 but $mnt is not mounted"
			return 1
		}
		DAEMON[$mnt]=$(daemon_pid "$mnt")
		local served
		served=$(stat_of "$mnt" transport)
		[ "$served" = "$TRANSPORT" ] || {
			echo "$mnt is served over '$served', not $TRANSPORT"
			return 1
		}
	fi
	[ -s "$WORK/mount.err" ] && cat "$WORK/mount.err"
	return $r
}

# wait_mounted MNT PID: for a foreground (-f) daemon started in the background.
wait_mounted() {
	local i
	DAEMON[$1]=$2
	MOUNTS+=("$1")
	for i in $(seq 1 200); do
		is_mounted "$1" && return 0
		kill -0 "$2" 2>/dev/null || return 1
		sleep 0.05
	done
	return 1
}

# gone_now PID: the process has exited (gone, or a zombie) already.
gone_now() {
	[ -n "$1" ] && { [ ! -d "/proc/$1" ] || grep -q '^State:.*Z' "/proc/$1/status" 2>/dev/null; }
}

# wait_gone PID: until the process has exited (a sanitizer build checks for
# leaks at exit, which takes a moment).
wait_gone() {
	local i
	[ -n "$1" ] || return 0
	for i in $(seq 1 400); do
		[ -d "/proc/$1" ] || return 0
		grep -q '^State:.*Z' "/proc/$1/status" 2>/dev/null && return 0
		sleep 0.05
	done
	return 1
}

# unmount MNT: cairn umount, then the daemon must exit. Fails otherwise.
unmount() {
	local mnt=$1 pid=${DAEMON[$1]:-}
	if ! "$CAIRN" umount "$mnt"; then
		echo "cairn umount $mnt failed"
		return 1
	fi
	if is_mounted "$mnt"; then
		echo "$mnt is still mounted after cairn umount"
		return 1
	fi
	if ! wait_gone "$pid"; then
		echo "the daemon of $mnt (pid $pid) did not exit after the unmount"
		return 1
	fi
	# A foreground daemon is our child: reap it and check its status.
	if [ -n "$pid" ] && [ "${FG_PID:-}" = "$pid" ]; then
		wait "$pid" || {
			echo "the daemon of $mnt exited with status $?"
			return 1
		}
		FG_PID=
	fi
	DAEMON[$mnt]=
	return 0
}

# Last resort on the way out: whatever is still mounted goes, one way or
# another, before the temp directory is removed.
force_unmount() {
	local mnt=$1 pid=${DAEMON[$1]:-}
	is_mounted "$mnt" || return 0
	"$CAIRN" umount "$mnt" 2>/dev/null || fusermount3 -u "$mnt" 2>/dev/null ||
		umount -l "$mnt" 2>/dev/null
	wait_gone "$pid"
}

cleanup() {
	local mnt
	for mnt in "${MOUNTS[@]}"; do
		force_unmount "$mnt"
	done
	for mnt in "${MOUNTS[@]}"; do
		if is_mounted "$mnt"; then
			echo "FAIL: $mnt is still mounted; leaving $WORK alone"
			return
		fi
	done
	[ -n "${KEEP:-}" ] || rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 1' INT TERM

# Sanitizer reports from any cairn process of this test (the daemons'
# leak checks at unmount included).
check_sanitizer_logs() {
	local log
	for log in "$SAN"/*; do
		[ -e "$log" ] || continue
		fail "sanitizer report in $(basename "$log"):"
		head -60 "$log"
	done
}

# Before finish prints the tally and exits with it: unmounts what is left
# (each must unmount cleanly) and checks the sanitizer logs.
finish_hook() {
	local mnt
	for mnt in "${MOUNTS[@]}"; do
		if is_mounted "$mnt"; then
			unmount "$mnt" || fail "unmounting $mnt"
		fi
	done
	check_sanitizer_logs
}

# stat_of MNT KEY: one counter of the mount's user.cairn.stats.
stat_of() {
	getfattr --only-values -n user.cairn.stats "$1" 2>/dev/null |
		tr ' ' '\n' | sed -n "s/^$2=//p"
}

drop_caches() {
	sync
	echo 3 >/proc/sys/vm/drop_caches
}

# random_file PATH SIZE SEED [PATH SIZE SEED...]: incompressible bytes, the
# same for a seed.
random_file() {
	python3 "$MTOOL" random "$@"
}

# make_tree DIR: files, directories, symlinks, hard links, long and unicode
# names, empty files, a sparse file, xattrs, a setuid file, a fifo and (as
# root) devices and other owners: what test_formats.sh archives.
make_tree() {
	local t=$1 long
	mkdir -p "$t/sub/deeper" "$t/private" "$t/empty-dir"
	printf 'hello, cairn\n' >"$t/hello.txt"
	: >"$t/empty"
	random_file "$t/big.bin" 700000 7
	head -c 300000 /dev/zero | tr '\0' 'z' >"$t/sub/compressible.txt"
	printf 'linked\n' >"$t/hl1"
	ln "$t/hl1" "$t/sub/hl2"
	random_file "$t/big-hl1" 200000 8
	ln "$t/big-hl1" "$t/sub/big-hl2"
	ln -s ../hello.txt "$t/sub/rel-link"
	ln -s /etc/passwd "$t/abs-link"
	ln -s nowhere "$t/dangling"
	printf 'unicode\n' >"$t/ünïcödé-名前.txt"
	long=$(printf 'L%.0s' $(seq 1 150))
	printf 'long\n' >"$t/sub/deeper/$long"
	mkdir -p "$t/sub/deeper/$long.d/$long.e"
	printf 'deep\n' >"$t/sub/deeper/$long.d/$long.e/file"
	printf 'suid\n' >"$t/suid"
	chmod 4755 "$t/suid"
	printf 'secret\n' >"$t/private/key"
	chmod 600 "$t/private/key"
	chmod 700 "$t/private"
	printf 'owned\n' >"$t/owned"
	chown 1234:5678 "$t/owned"
	# sparse: holes at the start, in the middle and at the end
	truncate -s 8M "$t/sparse"
	printf 'middle' | dd of="$t/sparse" bs=1 seek=3000000 conv=notrunc status=none
	printf 'late' | dd of="$t/sparse" bs=1 seek=6000000 conv=notrunc status=none
	mkfifo "$t/fifo"
	mknod "$t/chardev" c 1 3
	mknod "$t/blockdev" b 7 0
	if setfattr -n user.colour -v blue "$t/hello.txt" 2>/dev/null; then
		setfattr -n user.binary -v 0x00ff00 "$t/hello.txt"
		setfattr -n user.dir -v yes "$t/sub"
		setfattr -n user.big -v "$(printf 'x%.0s' $(seq 1 2000))" "$t/big.bin"
	fi
	touch -h -d '2021-03-04 05:06:07.123456789' "$t/hello.txt" "$t/sub/rel-link" "$t/big.bin"
	touch -d '1999-12-31 23:59:59.5' "$t/sub/deeper" "$t/empty-dir"
}

# add NAME ARCHIVE: a snapshot in the test's store.
add() {
	"$CAIRN" -s "$STORE" add -q --name "$1" "$2"
}
