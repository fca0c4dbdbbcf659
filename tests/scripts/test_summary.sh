#!/bin/sh
# test_summary.sh: scripts/test's closing lines (scripts/test-summary) count
# every test run of every build, and follow the count with one line per
# skipped test that says why it was skipped (its "SKIP: ..." line, else its
# last line of output), so that no skip goes unexplained.
#
# usage: test_summary.sh SOURCE_ROOT
set -u
TEST_NAME=test_summary
. "$(dirname "$0")/../lib.sh"
ROOT=${1:?usage: test_summary.sh SOURCE_ROOT}
need_tools python3

WORK=$(mktemp -d "${TMPDIR:-/tmp}/cairn-summary-XXXXXX") || exit 1
trap 'rm -rf "$WORK"' EXIT
mkdir -p "$WORK/build-a/meson-logs" "$WORK/build-b/meson-logs"
cat >"$WORK/build-a/meson-logs/testlog.json" <<'JSON'
{"name": "cli", "result": "OK", "stdout": "ok\n"}
{"name": "versions", "result": "SKIP", "stdout": "SKIP: npm is not installed\n"}
{"name": "mount_dirs", "result": "SKIP", "stdout": "starting\nthere is no /dev/fuse\n"}
{"name": "store_cmds", "result": "FAIL", "stdout": "FAIL: x\n"}
JSON
cat >"$WORK/build-b/meson-logs/testlog.json" <<'JSON'
{"name": "cli", "result": "OK", "stdout": ""}
{"name": "versions", "result": "SKIP", "stdout": "note\nSKIP: npm is not installed\n"}
{"name": "silent", "result": "SKIP", "stdout": ""}
JSON

"$ROOT/scripts/test-summary" --check clang-format=pass "$WORK/build-a/meson-logs/testlog.json" \
	"$WORK/build-b/meson-logs/testlog.json" "$WORK/missing/meson-logs/testlog.json" \
	>"$WORK/out" 2>"$WORK/err"
check "test-summary exits 0" [ $? = 0 ]
cat >"$WORK/want" <<'OUT'
test: 3 passed, 2 failed, 4 skipped
skipped: versions: npm is not installed (build-a, build-b)
skipped: mount_dirs: there is no /dev/fuse (build-a)
skipped: silent: (it gave no reason) (build-b)
OUT
if diff -u "$WORK/want" "$WORK/out" >"$WORK/diff"; then
	pass
else
	fail "test-summary printed: $(cat "$WORK/diff")"
fi
grep -q missing "$WORK/err" && pass || fail "an unreadable testlog is not named: $(cat "$WORK/err")"

# scripts/test ends with it.
grep -q 'scripts/test-summary' "$ROOT/scripts/test" && pass || fail "scripts/test does not use scripts/test-summary"
# setup installs npm, so the version tests run on a fresh machine.
grep -Eq '^[[:space:]]+npm([[:space:]]|$)' "$ROOT/scripts/setup" && pass ||
	fail "scripts/setup does not install npm"
finish
