#!/bin/bash
# test_cachedir.sh: a cache directory another user could write is a trust
# boundary (docs/SECURITY.md, "The blob cache"). As root:
#  - CACHE owned by another user, CACHE mode 1777 (the /tmp pattern), and a
#    pre-made CACHE/blobs owned by another user and mode 0777 are refused:
#    the mount says so (naming the directory and why), writes nothing
#    there, and passes through from a private cache instead (the user's
#    default, $XDG_CACHE_HOME/cairn here), serving the right bytes;
#  - CACHE/blobs a symlink to a root-only directory holding a 32-hex-named
#    file and a tmp-* file an hour old: nothing there is written or
#    deleted;
#  - in a cache of our own, eviction and the leftover cleanup leave alone
#    files another user owns (a tmp-* file two hours old, a blob-named
#    file past the size bound).
#
# usage: test_cachedir.sh CAIRN MTOOL COMPARE LIB
. "$4" cachedir "$@"

SRC=$WORK/src
mkdir -p "$SRC"
random_file "$SRC/big" $((1 << 20)) 31 "$SRC/small" 5000 32
bsdtar --format pax -cf "$WORK/tree.tar" -C "$SRC" .
add tree "$WORK/tree.tar" || fail "cairn add"
export XDG_CACHE_HOME=$WORK/xdg
HEX=0123456789abcdef0123456789abcdef

# listing DIR: every entry under DIR with its owner, size and mtime.
listing() {
	(cd "$1" && find . -mindepth 1 -printf '%p %u %s %T@\n' | sort)
}

# served CACHE WHY DESCRIPTION: a mount with -o cache=CACHE warns that CACHE
# is refused because WHY, reads the right bytes, and passes the large file
# through from the private cache.
served() {
	local mnt=$WORK/mnt-$RANDOM
	if ! mount_at "$mnt" -o "cache=$1" tree; then
		fail "$3: the mount failed"
		return
	fi
	grep -qF "cache $1 refused: $2; using $XDG_CACHE_HOME/cairn instead" "$WORK/mount.err" ||
		fail "$3: no warning that $1 is refused ($2): $(cat "$WORK/mount.err")"
	check "$3: the bytes" python3 "$COMPARE" "$mnt" "$SRC"
	[ "$(stat_of "$mnt" opens_passthrough)" -gt 0 ] ||
		fail "$3: the large file did not pass through from the private cache"
	ls "$XDG_CACHE_HOME"/cairn/blobs/ | grep -qx '[0-9a-f]\{32\}' ||
		fail "$3: no blob in the private cache"
	unmount "$mnt" || fail "$3: unmount"
}

# ---- refused directories ----

c=$WORK/c-other
mkdir -m 0755 "$c" && chown 65534 "$c"
served "$c" "it is owned by uid 65534, not the mount's uid 0" "CACHE owned by another user"
[ -z "$(ls -A "$c")" ] || fail "the mount wrote into a CACHE another user owns: $(ls -A "$c")"

c=$WORK/c-sticky
mkdir "$c" && chmod 1777 "$c"
served "$c" "its mode 1777 lets users other than uid 0 write to it" "CACHE mode 1777"
[ -z "$(ls -A "$c")" ] || fail "the mount wrote into a mode 1777 CACHE: $(ls -A "$c")"

c=$WORK/c-blobs
mkdir -m 0700 "$c" "$c/blobs" && chown 65534 "$c/blobs" && chmod 0777 "$c/blobs"
served "$c" "its blobs: it is owned by uid 65534, not the mount's uid 0" \
	"CACHE/blobs owned by another user, mode 0777"
[ -z "$(ls -A "$c/blobs")" ] || fail "the mount wrote into a foreign blobs: $(ls -A "$c/blobs")"

# ---- CACHE/blobs a symlink to a root-only directory ----

secret=$WORK/root-only
mkdir -m 0700 "$secret"
random_file "$secret/$HEX" $((2 << 20)) 33
printf 'left over\n' >"$secret/tmp-00000000000000cc"
touch -d '-2 hours' "$secret/$HEX" "$secret/tmp-00000000000000cc"
before=$(listing "$secret")
for mode in 0700 0777; do
	why="its blobs is a symlink or not a directory"
	[ $mode = 0777 ] && why="its mode 0777 lets users other than uid 0 write to it"
	c=$WORK/c-link-$mode
	mkdir -m "$mode" "$c" && ln -s "$secret" "$c/blobs"
	mnt=$WORK/mnt-link-$mode
	if mount_at "$mnt" -o "cache=$c,cache_size=1M" tree; then
		check "a symlinked blobs (CACHE $mode): the bytes" python3 "$COMPARE" "$mnt" "$SRC"
		[ "$(stat_of "$mnt" opens_passthrough)" -gt 0 ] ||
			fail "a symlinked blobs (CACHE $mode): nothing passed through"
		unmount "$mnt" || fail "unmount $mnt"
	else
		fail "a symlinked blobs (CACHE $mode): the mount failed"
	fi
	grep -qF "cache $c refused: $why" "$WORK/mount.err" ||
		fail "a symlinked blobs (CACHE $mode): no warning: $(cat "$WORK/mount.err")"
	[ "$(listing "$secret")" = "$before" ] ||
		fail "a symlinked blobs (CACHE $mode): the target changed: $(listing "$secret")"
done

# ---- our own cache: eviction and cleanup touch only our own files ----

c=$WORK/c-own
mkdir -m 0700 "$c" "$c/blobs"
random_file "$c/blobs/$HEX" $((2 << 20)) 34
printf 'left over\n' >"$c/blobs/tmp-00000000000000dd"
chown 65534 "$c/blobs/$HEX" "$c/blobs/tmp-00000000000000dd"
touch -d '-2 hours' "$c/blobs/$HEX" "$c/blobs/tmp-00000000000000dd"
before=$(listing "$c/blobs")
mnt=$WORK/mnt-own
if mount_at "$mnt" -o "cache=$c,cache_size=1M" tree; then
	check "our own cache: the bytes" python3 "$COMPARE" "$mnt" "$SRC"
	[ "$(stat_of "$mnt" opens_passthrough)" -gt 0 ] || fail "our own cache: no passthrough"
	unmount "$mnt" || fail "unmount $mnt"
else
	fail "our own cache: the mount failed"
fi
for f in "$HEX" tmp-00000000000000dd; do
	[ -e "$c/blobs/$f" ] || fail "our own cache: another user's $f was deleted"
done
grep -q refused "$WORK/mount.err" && fail "our own cache was refused: $(cat "$WORK/mount.err")"

finish
