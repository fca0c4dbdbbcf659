#!/bin/bash
# test_linux_data.sh: bench/linux-data.sh's choice of a linux source
# version, with a stub downloader and no network: the versions a suite
# lists (apt-cache madison's output) are tried newest first, within the
# upstream series asked for; one whose files are not served (a 404, as for
# a superseded version the index still lists) is cleaned up after and the
# next one is fetched; when none can be, it says so.
#
# usage: test_linux_data.sh SOURCE_ROOT
set -u
TEST_NAME=test_linux_data
. "$(dirname "$0")/../lib.sh"
ROOT=${1:?usage: test_linux_data.sh SOURCE_ROOT}
# shellcheck source=bench/linux-data.sh
. "$ROOT/bench/linux-data.sh"

WORK=$(mktemp -d "${TMPDIR:-/tmp}/cairn-linux-data-XXXXXX") || exit 1
trap 'rm -rf "$WORK"' EXIT

# What `apt-cache madison linux` prints: trixie's two 6.12 versions out of
# order, bookworm's 6.1, and binary packages, which are not sources.
madison() {
	cat <<'OUT'
     linux | 6.12.38-1 | http://deb.debian.org/debian trixie/main Sources
     linux | 6.1.140-1 | http://deb.debian.org/debian bookworm/main Sources
     linux | 6.12.41-1 | http://deb.debian.org/debian trixie/main Sources
     linux | 6.12.43-1 | http://deb.debian.org/debian trixie/main amd64 Packages
     linux | 6.1.129-1 | http://deb.debian.org/debian bookworm-security/main Sources
OUT
}

versions=$(madison | madison_versions trixie | tr '\n' ' ')
[ "$versions" = "6.12.41-1 6.12.38-1 " ] && pass || fail "trixie lists '$versions'"
versions=$(madison | madison_versions bookworm | tr '\n' ' ')
[ "$versions" = "6.1.140-1 " ] && pass || fail "bookworm lists '$versions'"

# A stub downloader: every version leaves a partial file; those named in
# $MISSING are not served (as apt-get source fails on a 404).
MISSING=
stub_fetch() { # DIR VERSION
	echo "$2" >>"$WORK/tried"
	: >"$1/linux_$2.dsc"
	case " $MISSING " in *" $2 "*) return 100 ;; esac
	printf 'tar' >"$1/linux_${2%-*}.orig.tar.xz"
}

# The newest is not served: the next one is fetched.
MISSING=6.12.41-1
: >"$WORK/tried"
# shellcheck disable=SC2046
got=$(fetch_first "$WORK" 6.12 stub_fetch $(madison | madison_versions trixie) 2>"$WORK/err")
[ $? = 0 ] && pass || fail "fetch_first failed: $(cat "$WORK/err")"
[ "$got" = 6.12.38-1 ] && pass || fail "fetched '$got', expected 6.12.38-1"
[ "$(tr '\n' ' ' <"$WORK/tried")" = "6.12.41-1 6.12.38-1 " ] && pass ||
	fail "tried $(cat "$WORK/tried")"
[ ! -e "$WORK/linux_6.12.41-1.dsc" ] && pass || fail "the failed version's files were left"
[ -s "$WORK/linux_6.12.38.orig.tar.xz" ] && pass || fail "no tarball of 6.12.38"
grep -q "6.12.41-1 could not be fetched" "$WORK/err" && pass || fail "the fallback was not said"

# Another series' versions are never tried.
: >"$WORK/tried"
rm -f "$WORK"/linux_*
got=$(fetch_first "$WORK" 6.1 stub_fetch 6.12.41-1 6.1.140-1 2>/dev/null)
[ "$got" = 6.1.140-1 ] && [ "$(cat "$WORK/tried")" = 6.1.140-1 ] && pass ||
	fail "6.1 fetched '$got' after trying $(cat "$WORK/tried")"

# None served: a failure, nothing left behind.
MISSING="6.12.41-1 6.12.38-1"
rm -f "$WORK"/linux_*
if fetch_first "$WORK" 6.12 stub_fetch 6.12.41-1 6.12.38-1 >/dev/null 2>&1; then
	fail "fetch_first succeeded with nothing served"
else
	pass
fi
[ -z "$(ls "$WORK" | grep '^linux_')" ] && pass || fail "files left: $(ls "$WORK")"

# fetch_linux uses it: a run with apt stubbed out dies with its message
# when nothing is served, and fetches the next version otherwise.
has_deb_src() { return 0; }
source_versions() { madison | madison_versions "$1"; }
apt_fetch_source() { stub_fetch "$@"; }
MISSING=6.12.41-1
rm -f "$WORK"/linux_*
(set -euo pipefail && fetch_linux "$WORK" trixie 6.12) 2>"$WORK/err" && pass ||
	fail "fetch_linux failed: $(cat "$WORK/err")"
[ -s "$WORK/linux_6.12.38.orig.tar.xz" ] && pass || fail "fetch_linux fetched no 6.12.38"
MISSING="6.12.41-1 6.12.38-1"
rm -f "$WORK"/linux_*
if (set -euo pipefail && fetch_linux "$WORK" trixie 6.12) 2>"$WORK/err"; then
	fail "fetch_linux succeeded with nothing served"
else
	grep -q "no version of linux/trixie" "$WORK/err" && pass || fail "fetch_linux said: $(cat "$WORK/err")"
fi
finish
