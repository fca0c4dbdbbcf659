#!/bin/sh
# test_cli.sh: the cairn binary's contract as a user meets it: --help and
# --version, init and verify, the exit codes (0 ok, 1 error or damage, 2 bad
# usage) and where the store is found (-s DIR, else $CAIRN_STORE, else
# $XDG_DATA_HOME/cairn, else $HOME/.local/share/cairn).
#
# Usage: test_cli.sh PATH-TO-CAIRN   (meson passes the built binary)
set -u
TEST_NAME=test_cli
. "$(dirname "$0")/../lib.sh"

CAIRN=${1:?usage: test_cli.sh PATH-TO-CAIRN}
case $CAIRN in
*/*) CAIRN=$(abs_path "$CAIRN") ;; # a bare name is looked up in $PATH
esac
tmp=$(mktemp -d "${TMPDIR:-/tmp}/cairn-cli-XXXXXX") || exit 1
trap 'rm -rf "$tmp"' EXIT INT TERM
checks=0
# Relative paths (and a stray relative $XDG_DATA_HOME) land in the temp dir.
mkdir "$tmp/cwd" && cd "$tmp/cwd" || exit 1

# run [VAR=VALUE...] -- ARGS...: cairn with a clean environment (no
# CAIRN_STORE or XDG_DATA_HOME, HOME in the temp dir) plus the assignments;
# stdout and stderr go to $tmp/out and $tmp/err, the status to $status.
run() {
	vars=
	while [ "$1" != -- ]; do
		vars="$vars $1"
		shift
	done
	shift
	# shellcheck disable=SC2086 # the assignments are split on purpose
	env -u CAIRN_STORE -u XDG_DATA_HOME HOME="$tmp/home" $vars "$CAIRN" "$@" \
		>"$tmp/out" 2>"$tmp/err"
	status=$?
	checks=$((checks + 1))
}

# expect STATUS [VAR=VALUE...] -- ARGS...
expect() {
	want=$1
	shift
	run "$@"
	[ "$status" -eq "$want" ] ||
		fail "cairn $* exited $status, expected $want; stderr: $(cat "$tmp/err")"
}

out_has() {
	grep -q -- "$1" "$tmp/out" || fail "stdout lacks '$1': $(cat "$tmp/out")"
}

err_has() {
	grep -q -- "$1" "$tmp/err" || fail "stderr lacks '$1': $(cat "$tmp/err")"
}

err_nonempty() {
	[ -s "$tmp/err" ] || fail "no error message on stderr"
}

is_store() {
	[ -f "$1/config" ] || fail "no store at $1"
}

not_store() {
	[ ! -e "$1/config" ] || fail "unexpected store at $1"
}

# ---- help and version ----

for flag in --help -h; do
	expect 0 -- "$flag"
	out_has "Usage: cairn"
	out_has init
	out_has verify
done
for flag in --version -V; do
	expect 0 -- "$flag"
	grep -Eq '^cairn [0-9]+\.[0-9]+\.[0-9]+' "$tmp/out" ||
		fail "cairn $flag printed '$(cat "$tmp/out")'"
	# the libfuse mounts open, and whether it has FUSE over io_uring
	grep -Eq 'mounts: libfuse 3\.[0-9]+\.[0-9]+, with(out)? FUSE over io_uring\)$' "$tmp/out" ||
		fail "cairn $flag does not name the libfuse: '$(cat "$tmp/out")'"
done
expect 0 -- init --help
out_has "Usage: cairn init"
expect 0 -- verify --help
out_has "Usage: cairn verify"

# two_lines: stderr is the usual two lines of a bad option: what is
# wrong, and the hint.
two_lines() {
	[ "$(wc -l <"$tmp/err")" = 2 ] || fail "not two lines on stderr: $(cat "$tmp/err")"
}

# Every command takes -h/--help (exit 0) and refuses an unknown option
# (exit 2, naming itself, in two lines).
for cmd in init add ls cat extract info verify rm gc mount umount; do
	expect 0 -- "$cmd" -h
	out_has "Usage: cairn $cmd"
	expect 0 -- "$cmd" --help
	out_has "Usage: cairn $cmd"
	expect 2 -- "$cmd" --no-such-option
	err_has "^cairn $cmd: unrecognized option '--no-such-option'"
	err_has "^Try 'cairn $cmd --help'.$"
	two_lines
	expect 2 -- "$cmd" -Z
	err_has "^cairn $cmd: invalid option -- 'Z'"
	two_lines
done
expect 2 -- add --name
err_has "^cairn add: option '--name' requires an argument"
two_lines
expect 2 -- --no-such-option
err_has "^cairn: unrecognized option '--no-such-option'"
err_has "^Try 'cairn --help'.$"
two_lines

# ---- usage errors: 2 ----

expect 2 --
err_has Usage
expect 2 -- no-such-command
err_nonempty
expect 2 -- --no-such-option
expect 2 -- init --no-such-option "$tmp/u1"
expect 2 -- init "$tmp/u2" "$tmp/u3"
expect 2 -- init --level 0 "$tmp/u4"
expect 2 -- init --level 20 "$tmp/u4"
expect 2 -- init --chunk-avg 3000 "$tmp/u4"
expect 2 -- init --chunk-min 1G "$tmp/u4"
expect 2 -- init --pack-size lots "$tmp/u4"
expect 2 -- init --pack-size -1M "$tmp/u4"
expect 2 -- add --max-entries 0 "$tmp/u4.tar"
expect 2 -- add --max-entries 5X "$tmp/u4.tar"
expect 1 -- verify -s "$tmp/u4" no-such-snapshot # no store there: an error, not usage
expect 2 -- verify --no-such-option
for dir in u1 u2 u3 u4; do
	[ ! -e "$tmp/$dir" ] || fail "a usage error created $tmp/$dir"
done

# ---- init and verify ----

expect 0 -- init "$tmp/s1"
is_store "$tmp/s1"
out_has "$tmp/s1"
[ "$(stat -c %a "$tmp/s1")" = 700 ] || fail "store directory is not private (0700)"
expect 1 -- init "$tmp/s1"
err_has already
expect 0 -- verify -s "$tmp/s1"
out_has "no problems"
expect 0 -- verify -q -s "$tmp/s1"
[ ! -s "$tmp/out" ] || fail "verify -q printed '$(cat "$tmp/out")'"
expect 0 -- -s "$tmp/s1" verify
expect 0 -- init --chunk-min 4K --chunk-avg 16K --chunk-max 64K --level 5 --pack-size 8M \
	"$tmp/s2"
is_store "$tmp/s2"
# Sizes take the suffixes -o cache_size takes (one parser).
expect 0 -- init --chunk-min 4KiB --chunk-avg 16k --chunk-max 64KB --pack-size 1GiB "$tmp/s2b"
is_store "$tmp/s2b"
expect 0 -- verify -s "$tmp/s2"

# Missing parents are made; a non-empty directory is refused.
expect 0 -- init "$tmp/deep/er/s3"
is_store "$tmp/deep/er/s3"
mkdir "$tmp/busy" && echo hello >"$tmp/busy/file"
expect 1 -- init "$tmp/busy"
err_nonempty
not_store "$tmp/busy"
# What an interrupted init leaves (no config yet) may be made a store again.
mkdir -p "$tmp/half/packs" && echo x >"$tmp/half/chunks" && echo x >"$tmp/half/tmp-config-1"
expect 0 -- init "$tmp/half"
is_store "$tmp/half"
expect 0 -- verify -s "$tmp/half"

# ---- errors: 1 ----

expect 1 -- verify -s "$tmp/nowhere"
err_nonempty
mkdir "$tmp/empty"
expect 1 -- verify -s "$tmp/empty"
err_has config
expect 0 -- init "$tmp/broken-config"
printf 'garbage' | dd of="$tmp/broken-config/config" bs=1 seek=50 conv=notrunc 2>/dev/null
expect 1 -- verify -s "$tmp/broken-config"
err_has config
expect 0 -- init "$tmp/broken-table"
truncate -s 20 "$tmp/broken-table/chunks"
expect 1 -- verify -s "$tmp/broken-table"
err_has "chunk table"

# ---- where the store is ----

# -s beats $CAIRN_STORE, which beats $XDG_DATA_HOME, which beats $HOME.
expect 0 CAIRN_STORE="$tmp/r-env" XDG_DATA_HOME="$tmp/r-xdg" -- -s "$tmp/r-flag" init
is_store "$tmp/r-flag"
not_store "$tmp/r-env"
not_store "$tmp/r-xdg/cairn"
expect 0 CAIRN_STORE="$tmp/r-env" XDG_DATA_HOME="$tmp/r-xdg" -- init -s "$tmp/r-flag2"
is_store "$tmp/r-flag2"
expect 0 CAIRN_STORE="$tmp/r-env" XDG_DATA_HOME="$tmp/r-xdg" -- init
is_store "$tmp/r-env"
not_store "$tmp/r-xdg/cairn"
expect 0 XDG_DATA_HOME="$tmp/r-xdg" -- init
is_store "$tmp/r-xdg/cairn"
not_store "$tmp/home/.local/share/cairn"
expect 0 -- init
is_store "$tmp/home/.local/share/cairn"
# An empty $CAIRN_STORE is unset; a relative $XDG_DATA_HOME is ignored, as
# the XDG base directory spec says.
expect 0 CAIRN_STORE= XDG_DATA_HOME="$tmp/r-xdg2" -- init
is_store "$tmp/r-xdg2/cairn"
expect 1 XDG_DATA_HOME=relative -- init
err_has already # it went for $HOME's store, made above
[ ! -e relative ] || fail "a relative XDG_DATA_HOME was used"

# verify looks in the same places, and only in the first one that applies.
expect 0 CAIRN_STORE="$tmp/r-env" XDG_DATA_HOME="$tmp/nowhere" -- verify -q
expect 1 CAIRN_STORE="$tmp/nowhere" XDG_DATA_HOME="$tmp/r-xdg" -- verify -q
expect 0 XDG_DATA_HOME="$tmp/r-xdg" -- verify -q
expect 1 XDG_DATA_HOME="$tmp/nowhere" -- verify -q
expect 0 -- verify -q
expect 1 CAIRN_STORE="$tmp/r-env" -- -s "$tmp/nowhere" verify -q
expect 1 CAIRN_STORE="$tmp/r-env" -- verify -q -s "$tmp/nowhere"

# A store named by a URL other than s3:// is an error (1), from -s,
# $CAIRN_STORE or the mount(8) helper's source; never a local directory
# named "https:".
for url in https://example.com/store file:///tmp/x; do
	expect 1 -- -s "$url" init
	err_has "cannot be used"
	expect 1 -- add -s "$url" "$tmp/none.tar"
	err_has "$url: cairn keeps stores in local directories"
	expect 1 CAIRN_STORE="$url" -- add "$tmp/none.tar"
	err_has "(from \$CAIRN_STORE)"
	expect 1 CAIRN_STORE="$url" -- verify
	err_has URL
	expect 1 CAIRN_STORE="$url" -- ls
	err_has URL
	expect 1 -- mount -s "$url" snap "$tmp/cwd" # no such snapshot: never mounts
	err_has URL
done
mkdir -p "$tmp/bin"
ln -s "$(command -v "$CAIRN")" "$tmp/bin/mount.fuse.cairn"
for source in https://h/x "snap@https://h/x" "https://user@h/x"; do
	# A mount point that is not there: nothing is mounted, whatever happens.
	"$tmp/bin/mount.fuse.cairn" "$source" "$tmp/no-mnt" -o ro >"$tmp/out" 2>"$tmp/err"
	status=$?
	checks=$((checks + 1))
	[ "$status" = 1 ] && grep -q URL "$tmp/err" ||
		fail "mount.fuse.cairn $source: exit $status: $(cat "$tmp/err")"
done
# An s3:// store is a remote store: without credentials, a clear error
# (tests/remote has the rest), and never a local directory named "s3:".
for cmd in init ls; do
	expect 1 AWS_ACCESS_KEY_ID= AWS_SECRET_ACCESS_KEY= AWS_PROFILE= \
		AWS_SHARED_CREDENTIALS_FILE="$tmp/none" AWS_CONFIG_FILE="$tmp/none" -- \
		-s s3://bucket/x $cmd
	err_has "S3 credentials"
done
expect 1 -- -s s3://Bad_Bucket/x ls
err_has "not a bucket name"
[ -z "$(find "$tmp" -name '*:*')" ] || fail "a URL store made $(find "$tmp" -name '*:*')"
# Paths that only look a little like URLs are paths.
expect 0 -- -s "$tmp/s3:dir" init
is_store "$tmp/s3:dir"
expect 0 -- -s ./s3://rel init
is_store "$tmp/cwd/s3:/rel"

# No -s, no variables, no HOME: an error, not a guess.
env -u CAIRN_STORE -u XDG_DATA_HOME -u HOME "$CAIRN" verify >"$tmp/out" 2>"$tmp/err"
status=$?
checks=$((checks + 1))
[ "$status" -eq 1 ] || fail "verify without HOME exited $status, expected 1"
err_nonempty

finish "$checks runs"
