# mount_prologue.sh: the start the remote tests that mount and run cairn as
# several hosts share. Sourced after ../lib.sh, with TEST_NAME and CAIRN set,
# in place of sourcing lib.sh: makes $WORK (removed at exit unless KEEP, or
# a mount is left in it) and $MNT's path in it; starts Swift and the proxy
# (lib.sh); and defines host. At exit, after lib.sh's own cleanup has
# stopped them, closes descriptor 3 (a file a test holds open in a mount),
# kills $WRITER_PID and the pids in READERS, and unmounts $MNT and every
# path in MOUNTS.
WORK=$(mktemp -d "${TMPDIR:-/tmp}/cairn-$TEST_NAME-XXXXXX") || exit 1
MNT=$WORK/mnt
MOUNTS=()
READERS=()
WRITER_PID=
on_exit() {
	local m p left=
	exec 3<&- 2>/dev/null
	for p in "${READERS[@]}" $WRITER_PID; do
		kill -9 "$p" 2>/dev/null
	done
	for m in "$MNT" "${MOUNTS[@]}"; do
		mountpoint -q "$m" 2>/dev/null || continue
		"$CAIRN" umount "$m" 2>/dev/null || fusermount3 -u "$m" 2>/dev/null || umount -l "$m"
		mountpoint -q "$m" 2>/dev/null && left=1
	done
	if [ -n "$left" ]; then
		echo "FAIL: a mount is left under $WORK; leaving it alone"
	elif [ -z "${KEEP:-}" ]; then
		rm -rf "$WORK"
	fi
}
trap on_exit EXIT
trap 'exit 1' INT TERM
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

# host NAME ARGS...: cairn on host NAME (its own cache directory) against
# the store $S.
host() {
	local name=$1
	shift
	CAIRN_REMOTE_CACHE=$WORK/cache-$name "$CAIRN" -s "$S" "$@"
}
