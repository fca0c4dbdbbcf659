#!/bin/sh
# fetch-npm.sh: fetches npm package tarballs (real trees, in adjacent
# versions) for the tests, once: they are kept in a cache directory under
# the build directory, never in the repository. `npm pack` checks each
# tarball against the registry's integrity hash.
#
# usage: fetch-npm.sh DIR NAME@VERSION...
# Prints the tarballs' paths, one a line, in the order asked. Exits 77 (the
# tests' "skipped") when npm is missing or the registry cannot be reached,
# saying why, so a test never fails for network reasons; 1 on other errors
# (a version the registry does not have, say).
set -u
DIR=${1:?usage: fetch-npm.sh DIR NAME@VERSION...}
shift

if ! command -v npm >/dev/null 2>&1; then
	echo "SKIP: npm is not installed" >&2
	exit 77
fi
mkdir -p "$DIR" || exit 1

# The file `npm pack` writes for NAME@VERSION: @scope/name -> scope-name.
tarball_name() {
	printf '%s-%s.tgz\n' "$(printf '%s' "${1%@*}" | sed 's|^@||; s|/|-|')" "${1##*@}"
}

for spec in "$@"; do
	file=$DIR/$(tarball_name "$spec")
	if [ ! -s "$file" ]; then
		tmp=$(mktemp -d "$DIR/tmp-XXXXXX") || exit 1
		# A short timeout and one retry: an unreachable registry must
		# give a quick skip, not a hung test.
		if ! timeout 180 npm pack "$spec" --pack-destination "$tmp" \
			--cache "$DIR/npm-cache" --fetch-timeout=30000 --fetch-retries=1 \
			--loglevel=error >"$tmp/log" 2>&1; then
			status=77
			# No such package or version is the test's mistake, not the
			# network's.
			grep -Eq 'code (ETARGET|E404)' "$tmp/log" && status=1
			[ $status = 77 ] && printf 'SKIP: ' >&2
			# npm 10 says "npm error", Debian 12's npm 9 "npm ERR!".
			echo "npm pack $spec failed: $(grep -m 3 -E 'npm (error|ERR!)' "$tmp/log" | tr '\n' ' ')" >&2
			rm -rf "$tmp"
			exit $status
		fi
		if ! mv "$tmp/$(basename "$file")" "$file"; then
			echo "fetch-npm.sh: npm pack $spec made no $(basename "$file")" >&2
			rm -rf "$tmp"
			exit 1
		fi
		rm -rf "$tmp"
	fi
	echo "$file"
done
