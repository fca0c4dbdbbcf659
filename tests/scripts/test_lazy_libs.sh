#!/bin/bash
# test_lazy_libs.sh: the cairn binary does not load libcurl, libarchive,
# libcrypto, zlib or liblz4 when it starts (store/curl_dl.c opens libcurl
# when a remote store is first used, index/archive_dl.c libarchive when an
# archive is first read, store/crypto_dl.c libcrypto when a store with
# sha256 ids is opened, index/codec_dl.c zlib and liblz4 when an import
# first decodes a gzip or lz4 layer or checks a RAR volume): no NEEDED
# entry of the binary, nor of the libraries it needs, names them, so a
# local mount or `cairn ls` never pays their thirty-odd libraries.
#
# usage: test_lazy_libs.sh CAIRN
set -u
CAIRN=${1:?usage: test_lazy_libs.sh CAIRN}
command -v readelf >/dev/null || { echo "readelf is missing (binutils)" >&2; exit 1; }
passed=0 failed=0
for lib in libcurl libarchive libcrypto 'libz\.so' 'liblz4\.so'; do
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
echo "lazy_libs: $passed passed, $failed failed"
[ "$failed" = 0 ]
