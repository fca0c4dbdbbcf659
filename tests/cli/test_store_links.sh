#!/bin/bash
# test_store_links.sh: a store whose parts are not what they should be (a
# symbolic link to a directory or file outside the store, a FIFO, a
# directory where a file belongs) is refused, and nothing outside it is
# touched (issue 13, item 5). For each of packs/, snapshots/, lock,
# readers, config and chunks made a symlink to an outside directory that
# holds decoys (a *.tmp, a tmp-* aged two hours, an unlisted *.pack, files
# named like what add, mount or gc would create), each of add, gc, mount
# (a real one when root and /dev/fuse allow it), verify and rm must exit
# non-zero naming STORE/PART, and the outside directory must be exactly as
# it was. A FIFO as any file part must not hang a command (timeout), and a
# directory where a file belongs is an error too. A store whose root is a
# symlink (the user names it) still works.
#
# usage: test_store_links.sh CAIRN
set -u
TEST_NAME=test_store_links
. "$(dirname "$0")/../lib.sh"
CAIRN=$(abs_path "${1:?usage: test_store_links.sh CAIRN}")
export LC_ALL=C.UTF-8

need_tools bsdtar timeout mkfifo

WORK=$(mktemp -d "${TMPDIR:-/tmp}/cairn-store-links-XXXXXX") || exit 1
MNT=$WORK/mnt
mkdir -p "$MNT"
# kill_strays: a command that hung (the bug this tests) may have left a
# mount daemon blocked behind the timeout; end every process of this test's
# (its command line names $WORK), by pid.
kill_strays() {
	local p
	for p in /proc/[0-9]*; do
		p=${p#/proc/}
		[ "$p" = $$ ] && continue
		{ tr '\0' '\n' <"/proc/$p/cmdline"; } 2>/dev/null | grep -qF -- "$WORK/" || continue
		kill -9 "$p" 2>/dev/null
	done
}
cleanup() {
	if awk -v m="$MNT" '$5 == m { f = 1 } END { exit !f }' /proc/self/mountinfo; then
		"$CAIRN" umount "$MNT" >/dev/null 2>&1 || umount -l "$MNT"
	fi
	kill_strays
	[ -n "${KEEP:-}" ] || rm -rf "$WORK"
}
trap cleanup EXIT

can_mount=0
if [ "$(id -u)" = 0 ] && [ -c /dev/fuse ] && [ -r /dev/fuse ] && [ -w /dev/fuse ]; then
	can_mount=1
else
	echo "note: not root or no /dev/fuse: mount is tried only as far as its refusal"
fi

mkdir -p "$WORK/src/d"
printf 'one\n' >"$WORK/src/one"
head -c 300000 /dev/urandom >"$WORK/src/d/big"
bsdtar -cf "$WORK/a.tar" -C "$WORK/src" .
printf 'two\n' >"$WORK/src/two"
bsdtar -cf "$WORK/b.tar" -C "$WORK/src" .

BASE=$WORK/base
"$CAIRN" -s "$BASE" add -q "$WORK/a.tar" || {
	fail "making the base store"
	finish
}

# What a directory holds, to the byte, with modes and mtimes.
fingerprint() {
	(cd "$1" && find . -printf '%p %y %m %s %T@\n' | sort &&
		find . -type f -print0 | sort -z | xargs -0 -r sha256sum)
}

# fresh_store: a copy of the base store in $S and an empty outside
# directory $OUT holding decoys (names add, gc and mount would remove or
# make), some aged past the one-hour leftover rule.
fresh_store() {
	rm -rf "$WORK/s" "$WORK/out" "$WORK/cache"
	S=$WORK/s
	OUT=$WORK/out
	cp -a "$BASE" "$S"
	mkdir -p "$OUT"
	printf 'decoy\n' >"$OUT/x.tmp"
	printf 'decoy\n' >"$OUT/tmp-0123456789abcdef"
	printf 'decoy\n' >"$OUT/tmp-snapshot"
	printf 'decoy\n' >"$OUT/7fffffff.pack"
	touch -d '2 hours ago' "$OUT/x.tmp" "$OUT/tmp-0123456789abcdef" "$OUT/tmp-snapshot" \
		"$OUT/7fffffff.pack"
}

# link_part PART: moves STORE/PART (if any) into $OUT and leaves a symlink
# to it: the store reads as before through it, and the decoys sit beside
# (or, for a directory, inside) what the link names.
link_part() {
	local part=$1
	case $part in
	packs | snapshots)
		mv "$S/$part" "$OUT/$part"
		cp -a "$OUT"/x.tmp "$OUT"/tmp-* "$OUT"/7fffffff.pack "$OUT/$part/"
		ln -s "$OUT/$part" "$S/$part"
		;;
	*)
		[ -e "$S/$part" ] && mv "$S/$part" "$OUT/$part"
		ln -s "$OUT/$part" "$S/$part"
		;;
	esac
}

# run_cmd NAME: runs one command on $S, under a timeout; status in $status,
# stderr in $WORK/err. A mount that comes up is unmounted at once.
run_cmd() {
	local cache=$WORK/cache
	case $1 in
	add) timeout 10 "$CAIRN" -s "$S" add -q "$WORK/b.tar" 2>"$WORK/err" >/dev/null ;;
	gc) timeout 10 "$CAIRN" -s "$S" gc 2>"$WORK/err" >/dev/null ;;
	verify) timeout 10 "$CAIRN" -s "$S" verify -q 2>"$WORK/err" >/dev/null ;;
	rm) timeout 10 "$CAIRN" -s "$S" rm a 2>"$WORK/err" >/dev/null ;;
	ls) timeout 10 "$CAIRN" -s "$S" ls 2>"$WORK/err" >/dev/null ;;
	cat) timeout 10 "$CAIRN" -s "$S" cat a:one 2>"$WORK/err" >/dev/null ;;
	mount)
		if [ $can_mount = 0 ]; then
			status=1
			echo "mount not tried: $S" >"$WORK/err"
			return
		fi
		timeout 10 "$CAIRN" -s "$S" mount -o "cache=$cache" "$MNT" 2>"$WORK/err" >/dev/null
		status=$?
		if awk -v m="$MNT" '$5 == m { f = 1 } END { exit !f }' /proc/self/mountinfo; then
			# Read something, so that a mount that came up does its work.
			cat "$MNT"/a/one "$MNT"/a/d/big >/dev/null 2>&1
			"$CAIRN" umount "$MNT" >/dev/null 2>&1 || umount -l "$MNT"
			status=0
		fi
		return
		;;
	esac
	status=$?
}

# expect_refused PART WHAT CMD: CMD on $S exits non-zero (not by the
# timeout) with a message naming the store, PART and WHAT, and $OUT is as
# it was.
expect_refused() {
	local part=$1 what=$2 cmd=$3 before after
	before=$(fingerprint "$OUT")
	run_cmd "$cmd"
	after=$(fingerprint "$OUT")
	local err
	err=$(head -c 300 "$WORK/err")
	if [ "$status" = 124 ]; then
		kill_strays
		fail "$part ($what): $cmd hung"
	elif [ "$status" = 0 ]; then
		fail "$part ($what): $cmd succeeded"
	elif ! grep -qF "$S" "$WORK/err" || ! grep -qF "$part:" "$WORK/err" ||
		! grep -qF "$what" "$WORK/err"; then
		fail "$part ($what): $cmd: unclear message: $err"
	else
		pass
	fi
	if [ "$before" != "$after" ]; then
		fail "$part ($what): $cmd changed the directory outside the store:"
		diff <(echo "$before") <(echo "$after") | head -5
	fi
}

LINK="is a symbolic link"
for part in packs snapshots lock readers config chunks; do
	for cmd in add gc mount verify rm; do
		fresh_store
		link_part $part
		expect_refused $part "$LINK" $cmd
	done
done

# A symlink whose target does not exist: nothing may be made through it.
for part in lock readers; do
	for cmd in add gc mount verify rm; do
		fresh_store
		rm -f "$S/$part"
		ln -s "$OUT/made-$part" "$S/$part"
		expect_refused $part "$LINK" $cmd
		[ -e "$OUT/made-$part" ] && fail "$part: $cmd made $OUT/made-$part"
	done
done

# A FIFO where a file belongs must not hang anything, and a directory where
# a file belongs is refused.
for part in lock readers config chunks; do
	for cmd in add gc mount verify rm; do
		fresh_store
		rm -f "$S/$part"
		mkfifo "$S/$part"
		expect_refused $part "is not a regular file" $cmd
		fresh_store
		rm -f "$S/$part"
		mkdir "$S/$part"
		expect_refused $part "is not a regular file" $cmd
	done
done
# A FIFO named like a pack the table lists, read by verify and cat.
fresh_store
pack=$(cd "$S/packs" && ls ./*.pack | head -1)
pack=${pack#./}
rm "$S/packs/$pack"
mkfifo "$S/packs/$pack"
for cmd in verify cat; do
	expect_refused "packs/$pack" "is not a regular file" $cmd
done

# packs/ and snapshots/ as a plain file.
for part in packs snapshots; do
	fresh_store
	rm -rf "${S:?}/$part"
	printf 'x\n' >"$S/$part"
	expect_refused $part "is not a directory" add
done

# A store reached through a symlink (the root, named by the user) works.
fresh_store
ln -s "$S" "$WORK/via-link"
check "a store through a symlinked root: add" \
	"$CAIRN" -s "$WORK/via-link" add -q "$WORK/b.tar"
check "a store through a symlinked root: verify" "$CAIRN" -s "$WORK/via-link" verify -q
check "a store through a symlinked root: rm" "$CAIRN" -s "$WORK/via-link" rm b
check "a store through a symlinked root: gc" "$CAIRN" -s "$WORK/via-link" gc -q

finish
