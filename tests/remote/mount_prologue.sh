# mount_prologue.sh: the start the remote tests that mount at $MNT and run
# cairn as several hosts share. Sourced after ../lib.sh, with TEST_NAME and
# CAIRN set, in place of sourcing lib.sh: makes $WORK (removed at exit unless
# KEEP) and $MNT's path in it; at exit, after lib.sh's own cleanup has stopped
# Swift and the proxy, unmounts $MNT and kills $WRITER_PID when set; starts
# them (lib.sh); and defines host.
WORK=$(mktemp -d "${TMPDIR:-/tmp}/cairn-$TEST_NAME-XXXXXX") || exit 1
MNT=$WORK/mnt
on_exit() {
	if mountpoint -q "$MNT" 2>/dev/null; then
		"$CAIRN" umount "$MNT" 2>/dev/null || umount -l "$MNT"
	fi
	[ -n "${WRITER_PID:-}" ] && kill -9 "$WRITER_PID" 2>/dev/null
	[ -n "${KEEP:-}" ] || rm -rf "$WORK"
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
