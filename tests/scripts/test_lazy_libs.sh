#!/bin/bash
# test_lazy_libs.sh: the cairn binary does not load libcurl when it starts
# (store/curl_dl.c opens it when a remote store is first used): no NEEDED
# entry of the binary, nor of the libraries it needs, names libcurl, so a
# local mount or `cairn ls` never pays its thirty-odd libraries.
#
# usage: test_lazy_libs.sh CAIRN
set -u
CAIRN=${1:?usage: test_lazy_libs.sh CAIRN}
command -v readelf >/dev/null || { echo "readelf is missing (binutils)" >&2; exit 1; }
if readelf -d "$CAIRN" | grep NEEDED | grep -q libcurl; then
	echo "FAIL: $CAIRN is linked with libcurl: $(readelf -d "$CAIRN" | grep NEEDED | grep libcurl)"
	exit 1
fi
if ldd "$CAIRN" | grep -q libcurl; then
	echo "FAIL: a library $CAIRN needs loads libcurl: $(ldd "$CAIRN" | grep libcurl)"
	exit 1
fi
echo "lazy_libs: 1 passed, 0 failed"
