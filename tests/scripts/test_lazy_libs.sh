#!/bin/bash
# test_lazy_libs.sh: the cairn binary does not load libcurl, libarchive,
# libcrypto, zlib, liblz4, libzstd or libfuse when it starts (store/curl_dl.c opens
# libcurl when a remote store is first used, index/archive_dl.c libarchive
# when an archive is first read, store/crypto_dl.c libcrypto when a store
# with sha256 ids is opened, index/codec_dl.c zlib and liblz4 when an
# import first decodes a gzip or lz4 layer or checks a RAR volume,
# store/zstd_dl.c libzstd when a chunk is first compressed or decoded,
# mount/fuse_dl.c libfuse in a mount's daemon): no NEEDED entry of the
# binary, nor of the libraries it needs, names them, so a local mount or
# `cairn ls` never pays their thirty-odd libraries. A mount's daemon maps
# no libzstd before its first read; the `cairn mount` command itself never
# loads libfuse, its daemon does; without libfuse a mount fails with one
# line and `cairn ls` still works.
#
# usage: test_lazy_libs.sh CAIRN
set -u
CAIRN=${1:?usage: test_lazy_libs.sh CAIRN}
command -v readelf >/dev/null || { echo "readelf is missing (binutils)" >&2; exit 1; }
passed=0 failed=0
for lib in libcurl libarchive libcrypto 'libz\.so' 'liblz4\.so' 'libzstd\.so' 'libfuse3\.so'; do
	if readelf -d "$CAIRN" | grep NEEDED | grep -q "$lib"; then
		echo "FAIL: $CAIRN is linked with $lib: $(readelf -d "$CAIRN" | grep NEEDED | grep "$lib")"
		failed=$((failed + 1))
	elif ldd "$CAIRN" | grep -q "$lib"; then
		echo "FAIL: a library $CAIRN needs loads $lib: $(ldd "$CAIRN" | grep "$lib")"
		failed=$((failed + 1))
	else
		passed=$((passed + 1))
	fi
done

# Without libarchive (bound over with /dev/null in a mount namespace of its
# own, root only): an add fails with one clear line, `cairn ls` still works.
lib=$(readlink -f "$(ldconfig -p | awk '/libarchive\.so\.13 .*x86-64/ { print $NF; exit }')" 2>/dev/null)
if [ "$(id -u)" = 0 ] && [ -f "$lib" ] && command -v unshare >/dev/null; then
	W=$(mktemp -d)
	trap 'rm -rf "$W"' EXIT
	echo hi >"$W/f"
	tar -cf "$W/a.tar" -C "$W" f
	"$CAIRN" -s "$W/store" init >/dev/null
	out=$(unshare -m sh -c 'mount --bind /dev/null "$1" && shift && "$@"' sh "$lib" \
		"$CAIRN" -s "$W/store" add "$W/a.tar" 2>&1)
	rc=$?
	if [ "$rc" != 0 ] && [ "$(printf '%s\n' "$out" | wc -l)" = 1 ] &&
		printf '%s' "$out" | grep -q "a.tar: reading archives needs libarchive (libarchive.so.13)" &&
		unshare -m sh -c 'mount --bind /dev/null "$1" && shift && "$@"' sh "$lib" \
			"$CAIRN" -s "$W/store" ls >/dev/null; then
		passed=$((passed + 1))
	else
		echo "FAIL: without libarchive: add exit $rc, said: $out"
		failed=$((failed + 1))
	fi
fi
# A mounted daemon has no libzstd mapped until its first read decodes a
# chunk (root and FUSE only).
if [ "$(id -u)" = 0 ] && [ -c /dev/fuse ] && command -v getfattr >/dev/null; then
	W2=$(mktemp -d)
	printf 'zstd\n%.0s' $(seq 1 200) >"$W2/f"
	tar -cf "$W2/a.tar" -C "$W2" f
	mkdir -p "$W2/mnt"
	if "$CAIRN" -s "$W2/store" add -q "$W2/a.tar" &&
		"$CAIRN" -s "$W2/store" mount -o "cache=$W2/cache" a "$W2/mnt"; then
		pid=$(getfattr --only-values -n user.cairn.stats "$W2/mnt" 2>/dev/null | tr ' ' '\n' | sed -n 's/^pid=//p')
		before=$(grep -c 'libzstd\.so' "/proc/$pid/maps")
		cmp -s "$W2/mnt/f" "$W2/f" && read_ok=1 || read_ok=
		after=$(grep -c 'libzstd\.so' "/proc/$pid/maps")
		fuse_lib=$(grep -o '/[^ ]*/libfuse3\.so[^ ]*' "/proc/$pid/maps" | head -1)
		"$CAIRN" umount "$W2/mnt"
		if [ "$before" = 0 ] && [ "$after" -gt 0 ] && [ -n "$read_ok" ]; then
			passed=$((passed + 1))
		else
			echo "FAIL: the daemon's libzstd mappings: $before after the mount, $after after a read (read ok: ${read_ok:-no})"
			failed=$((failed + 1))
		fi
		# The command's own process (the first pid in the loader's log)
		# loads no libfuse; the daemon's does.
		LD_DEBUG=files "$CAIRN" -s "$W2/store" mount -o "cache=$W2/cache" a "$W2/mnt" 2>"$W2/ld.log"
		rc=$?
		"$CAIRN" umount "$W2/mnt" 2>/dev/null
		parent=$(sed -n 's/^ *\([0-9][0-9]*\):.*/\1/p' "$W2/ld.log" | head -1)
		parent_fuse=$(grep -c "^ *$parent:.*file=.*libfuse3" "$W2/ld.log")
		daemon_fuse=$(grep -v "^ *$parent:" "$W2/ld.log" | grep -c 'libfuse3\.so')
		if [ "$rc" = 0 ] && [ -n "$parent" ] && [ "$parent_fuse" = 0 ] && [ "$daemon_fuse" -gt 0 ]; then
			passed=$((passed + 1))
		else
			echo "FAIL: libfuse loaded by the command (pid $parent): $parent_fuse lines, by its daemon: $daemon_fuse (mount exit $rc)"
			failed=$((failed + 1))
		fi
		# Without libfuse (bound over with /dev/null in a mount namespace of
		# its own): the mount fails with one line naming it, nothing is
		# mounted; --version says why, ls works.
		if [ -f "$fuse_lib" ] && command -v unshare >/dev/null; then
			out=$(unshare -m sh -c 'mount --bind /dev/null "$1" && shift && "$@"' sh "$fuse_lib" \
				"$CAIRN" -s "$W2/store" mount -o "cache=$W2/cache" a "$W2/mnt" 2>&1)
			rc=$?
			version=$(unshare -m sh -c 'mount --bind /dev/null "$1" && shift && "$@"' sh "$fuse_lib" \
				"$CAIRN" --version 2>&1)
			if [ "$rc" = 1 ] && [ "$(printf '%s\n' "$out" | wc -l)" = 1 ] &&
				printf '%s' "$out" | grep -q "^cairn: mounts need libfuse (libfuse3\.so\.[0-9]*): " &&
				! mountpoint -q "$W2/mnt" &&
				printf '%s' "$version" | grep -q "mounts: mounts need libfuse" &&
				unshare -m sh -c 'mount --bind /dev/null "$1" && shift && "$@"' sh "$fuse_lib" \
					"$CAIRN" -s "$W2/store" ls a >/dev/null; then
				passed=$((passed + 1))
			else
				echo "FAIL: without libfuse ($fuse_lib): mount exit $rc, said: $out; --version: $version"
				failed=$((failed + 1))
			fi
		else
			echo "FAIL: the daemon mapped no libfuse file: '$fuse_lib'"
			failed=$((failed + 1))
		fi
	else
		echo "FAIL: add or mount of a one-file tar"
		failed=$((failed + 1))
	fi
	rm -rf "$W2"
fi
echo "lazy_libs: $passed passed, $failed failed"
[ "$failed" = 0 ]
