# shellcheck shell=sh
# lib.sh: the harness every shell test shares, so that each counts, skips
# and ends the same way: pass/fail/check tally the checks, skip and
# need_tools end with exit 77 (meson's "skipped") and say why, finish prints
# the tally and fails the test when any check failed, abs_path anchors the
# paths meson passes relative to the build directory. POSIX sh: the cli
# tests run under /bin/sh. The per-area libs (mount/lib.sh, fault/lib.sh)
# source it and add their own helpers.
#
# A test sources it before it changes directory, through its own path
# (meson runs each script by its path, from the build directory):
#   TEST_NAME=NAME
#   . "$(dirname "$0")/../lib.sh"

: "${TEST_NAME:=$(basename "$0" .sh)}"
START_DIR=$(pwd)
passed=0
failed=0

# pass: one more check passed.
pass() {
	passed=$((passed + 1))
}

# fail MESSAGE...: one more check failed; says which.
fail() {
	echo "FAIL: $*"
	failed=$((failed + 1))
}

# check DESCRIPTION COMMAND...: passes when the command succeeds, else fails
# with DESCRIPTION.
check() {
	check_what_=$1
	shift
	if "$@"; then
		pass
	else
		fail "$check_what_"
	fi
}

# skip REASON...: the test cannot run here: exit 77, saying why.
skip() {
	echo "SKIP: $*"
	exit 77
}

# need_tools TOOL...: skips unless every TOOL is on the PATH.
need_tools() {
	for need_tool_ in "$@"; do
		command -v "$need_tool_" >/dev/null || skip "$need_tool_ is not installed"
	done
}

# abs_path PATH: PATH made absolute against the directory the test started
# in, wherever it is now.
abs_path() {
	case $1 in
	/*) echo "$1" ;;
	*) echo "$START_DIR/$1" ;; # meson may pass paths relative to the build dir
	esac
}

# store_fingerprint DIR [NAME...]: every file under DIR with a hash of its
# bytes, but the lock and the NAMEs (readers, say): what a refused command
# must leave as it was.
store_fingerprint() {
	(
		cd "$1" || exit 1
		shift
		skip="! -name lock"
		for name in "$@"; do
			skip="$skip ! -name $name"
		done
		# shellcheck disable=SC2086
		find . -type f $skip -print0 | sort -z | xargs -0 sha256sum
	)
}

# finish_hook: what an area's lib does before the tally (unmounting, say);
# it redefines this.
finish_hook() {
	:
}

# finish [COUNTED]: runs finish_hook, prints "NAME: COUNTED, F failed"
# (COUNTED defaults to "P passed") and exits 0 when no check failed, else 1.
finish() {
	finish_hook
	echo "$TEST_NAME: ${1:-$passed passed}, $failed failed"
	[ "$failed" = 0 ] && exit 0
	exit 1
}
