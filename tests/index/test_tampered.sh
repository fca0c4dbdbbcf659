#!/bin/bash
# test_tampered.sh: a snapshot file changed after its commit, every checksum
# left as it was (tamper.py): the chunk-list fields of two files of the same
# size swapped (in INODES), then the chunk ids of their runs (in CHUNKS),
# then their mode and uid fields. Nothing may serve the
# changed bytes: cat, extract and ls fail with one line naming the snapshot
# and the damaged section, a whole-store mount logs it and answers EIO for
# that snapshot (other snapshots still served), a mount of that snapshot
# alone refuses to start, and verify still reports the damage. The mount
# part needs root and /dev/fuse (skipped, said so, without them).
#
# usage: test_tampered.sh CAIRN TAMPER_PY
set -u
TEST_NAME=test_tampered
. "$(dirname "$0")/../lib.sh"
CAIRN=$(abs_path "$1")
TAMPER=$(abs_path "$2")
export LC_ALL=C.UTF-8

need_tools python3

WORK=$(mktemp -d "${TMPDIR:-/tmp}/cairn-tampered-XXXXXX")
MNT=$WORK/mnt
FG_PID=
cleanup() {
	if [ -n "$FG_PID" ]; then
		"$CAIRN" umount "$MNT" 2>/dev/null || fusermount3 -u "$MNT" 2>/dev/null
		wait "$FG_PID"
	fi
	if awk -v m="$MNT" '$5 == m { f = 1 } END { exit !f }' /proc/self/mountinfo; then
		echo "FAIL: $MNT is still mounted; leaving $WORK alone"
		return
	fi
	[ -n "${KEEP:-}" ] || rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 1' INT TERM
STORE=$WORK/store
SNAP=$STORE/snapshots/snap
cairn() {
	"$CAIRN" -s "$STORE" "$@"
}

# Two files of the same size, different bytes, modes and owners.
python3 - "$WORK/t.tar" <<'PY'
import io, sys, tarfile
with tarfile.open(sys.argv[1], "w", format=tarfile.PAX_FORMAT) as t:
    for name, byte, mode, uid in (("a.txt", b"A", 0o644, 1000), ("b.txt", b"B", 0o4755, 2000)):
        info = tarfile.TarInfo(name)
        info.size, info.mode, info.uid, info.gid = 5000, mode, uid, 100
        t.addfile(info, io.BytesIO(byte * 5000))
PY
cairn init >/dev/null || fail "init"
cairn add -q --name snap "$WORK/t.tar" || fail "add snap"
cairn add -q --name other "$WORK/t.tar" || fail "add other"
cp "$SNAP" "$WORK/good"

# refused CMD... : exits 1 with one line on stderr naming the snapshot and
# the section in $SECTION, and nothing on stdout.
refused() {
	cairn "$@" >"$WORK/out" 2>"$WORK/err"
	local status=$?
	if [ $status != 1 ]; then
		fail "$* ($CASE): exited $status, printed $(head -c 200 "$WORK/out" | tr -c '[:print:]' .)"
	elif [ -s "$WORK/out" ]; then
		fail "$* ($CASE): printed $(head -c 200 "$WORK/out" | tr -c '[:print:]' .)"
	elif [ "$(wc -l <"$WORK/err")" != 1 ] ||
		! grep -q "snapshot snap.*the $SECTION section is damaged" "$WORK/err"; then
		fail "$* ($CASE): unclear message: $(cat "$WORK/err")"
	else
		pass
	fi
}

mount_checks() {
	[ "$(id -u)" = 0 ] && [ -c /dev/fuse ] || {
		echo "note: not root or no /dev/fuse: the mount checks are skipped"
		return
	}
	mkdir -p "$MNT"
	cairn mount -f -o "cache=$WORK/cache" "$MNT" 2>"$WORK/mount.log" &
	FG_PID=$!
	for _ in $(seq 1 200); do
		awk -v m="$MNT" '$5 == m { f = 1 } END { exit !f }' /proc/self/mountinfo && break
		sleep 0.05
	done
	if cmp -s "$MNT/other/a.txt" <(printf 'A%.0s' $(seq 5000)); then
		pass
	else
		fail "mount ($CASE): the intact snapshot is not served"
	fi
	local err
	err=$(cat "$MNT/snap/a.txt" 2>&1 >/dev/null) && fail "mount ($CASE): cat succeeded"
	case $err in
	*"Input/output error"*) pass ;;
	*) fail "mount ($CASE): cat: $err" ;;
	esac
	err=$(stat -c '%a %u' "$MNT/snap/b.txt" 2>&1) && fail "mount ($CASE): stat gave $err"
	"$CAIRN" umount "$MNT" || fail "umount"
	wait "$FG_PID" || fail "the mount exited with status $?"
	FG_PID=
	grep -q "snapshot snap.*the $SECTION section is damaged" "$WORK/mount.log" && pass ||
		fail "mount ($CASE): not logged: $(cat "$WORK/mount.log")"
	# A mount of that snapshot alone does not start.
	if cairn mount -o "cache=$WORK/cache" snap "$MNT" 2>"$WORK/err"; then
		"$CAIRN" umount "$MNT"
		fail "mount snap ($CASE): started"
	else
		grep -q "snapshot snap.*the $SECTION section is damaged" "$WORK/err" && pass ||
			fail "mount snap ($CASE): unclear message: $(cat "$WORK/err")"
	fi
}

tampered_checks() {
	refused cat snap:a.txt
	refused cat snap:b.txt
	refused extract snap "$WORK/x-$CASE"
	[ -z "$(ls -A "$WORK/x-$CASE" 2>/dev/null)" ] && pass || fail "extract ($CASE) wrote files"
	refused ls snap
	refused ls -l snap:b.txt
	cairn verify snap >/dev/null 2>"$WORK/err" && fail "verify ($CASE) passed"
	grep -q "snapshot snap: the $SECTION section is damaged (checksum mismatch)" "$WORK/err" &&
		pass || fail "verify ($CASE): $(cat "$WORK/err")"
	mount_checks
	cp "$WORK/good" "$SNAP"
}

# The fixture is what it should be before any change.
[ "$(cairn cat snap:a.txt | head -c 3)" = AAA ] && pass || fail "cat a.txt before"

CASE=chunk-lists SECTION=inodes
python3 "$TAMPER" "$SNAP" swap-chunks a.txt b.txt || fail "tamper.py swap-chunks"
tampered_checks

CASE=runs SECTION=chunks
python3 "$TAMPER" "$SNAP" swap-runs a.txt b.txt || fail "tamper.py swap-runs"
tampered_checks

CASE=meta SECTION=inodes
python3 "$TAMPER" "$SNAP" swap-meta a.txt b.txt || fail "tamper.py swap-meta"
[ "$(python3 "$TAMPER" "$SNAP" fields b.txt | cut -d' ' -f1,2)" = "0o100644 1000" ] ||
	fail "tamper.py did not swap the fields"
tampered_checks

# Restored, all is served again.
[ "$(cairn cat snap:b.txt | head -c 3)" = BBB ] && pass || fail "cat b.txt after"
cairn verify -q && pass || fail "verify after the restore"
finish
