# shellcheck shell=bash
# lib.sh: what the remote-store tests share: a real Swift with s3api on
# loopback (swift.sh) and the fault-injecting proxy (faultproxy.py) in front
# of it, both in the test's WORK directory and both stopped when the test
# exits, however it exits. A bash test sources it last, after tests/lib.sh
# (and mount/lib.sh or fault/lib.sh when it uses them, which make WORK; else
# a WORK is made here):
#   . "$(dirname "$0")/../remote/lib.sh"
#   remote_start                  Swift in $WORK/swift; exports AWS_ENDPOINT_URL,
#                                 AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY,
#                                 AWS_REGION (unsets AWS_SESSION_TOKEN and
#                                 AWS_PROFILE); S3_ENDPOINT stays the engine's URL
#   remote_bucket NAME            creates a bucket (on the engine, never faulted)
#   s3_curl CURL-ARGS...          curl signed with the AWS_* credentials (SigV4)
#   proxy_start                   faultproxy.py in front: AWS_ENDPOINT_URL points
#                                 at it; sets PROXY_CONTROL, PROXY_STATS, PROXY_PID
#   proxy_set [KEY=VALUE...]      replaces the proxy's faults (none: no faults);
#                                 skip/count restart at each call
#   proxy_count METHOD            requests of METHOD the proxy has seen (also any
#                                 other stats key: faults, GET_bytes, PUT_bytes)
#   proxy_stop, remote_stop       stop them before the end (remote_stop: both)
# With KEEP=1 Swift's logs stay in $WORK/swift-log. The cleanup runs before the EXIT trap set by the libs sourced earlier (which
# remove WORK), so Swift's tmpfs is unmounted first.

REMOTE_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REMOTE_PY=/usr/bin/python3
[ -x "$REMOTE_PY" ] || REMOTE_PY=python3
need_tools curl memcached swift-proxy-server swift-object-server setfattr

if [ -z "${WORK:-}" ]; then
	WORK=$(mktemp -d "${TMPDIR:-/tmp}/cairn-$TEST_NAME-XXXXXX") || exit 1
	trap '[ -n "${KEEP:-}" ] || rm -rf "$WORK"' EXIT
	trap 'exit 1' INT TERM
fi
SWIFT_DIR=
PROXY_PID=
PROXY_SET=0

# The EXIT trap set before: run after ours, with the exit status it saw.
_remote_prev_exit=$(trap -p EXIT)
_remote_prev_exit=${_remote_prev_exit#trap -- }
_remote_prev_exit=${_remote_prev_exit% EXIT}
eval "_remote_prev_exit=${_remote_prev_exit:-''}"
_remote_exit() {
	local rc=$?
	remote_stop
	(exit "$rc")
	eval "$_remote_prev_exit"
}
trap _remote_exit EXIT

remote_start() {
	local env
	SWIFT_DIR=$WORK/swift
	env=$("$REMOTE_DIR/swift.sh" start "$SWIFT_DIR") || {
		SWIFT_DIR=
		echo "FAIL: Swift did not start"
		exit 1
	}
	eval "$env"
	export AWS_ENDPOINT_URL AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY AWS_REGION
	unset AWS_SESSION_TOKEN AWS_PROFILE
	S3_ENDPOINT=$AWS_ENDPOINT_URL
	# curl's --user splits at the first colon; the access key holds one.
	printf 'machine 127.0.0.1\nlogin %s\npassword %s\n' \
		"$AWS_ACCESS_KEY_ID" "$AWS_SECRET_ACCESS_KEY" >"$WORK/netrc"
}

remote_bucket() {
	"$REMOTE_DIR/swift.sh" bucket "$SWIFT_DIR" "$1"
}

# s3_curl CURL-ARGS...: curl 7.88's --aws-sigv4 wants x-amz-content-sha256.
s3_curl() {
	curl -sS --netrc-file "$WORK/netrc" --aws-sigv4 "aws:amz:$AWS_REGION:s3" \
		-H 'x-amz-content-sha256: UNSIGNED-PAYLOAD' "$@"
}

proxy_start() {
	local dir=$WORK/proxy i
	mkdir -p "$dir"
	PROXY_CONTROL=$dir/control
	PROXY_STATS=$dir/stats
	: >"$PROXY_CONTROL"
	"$REMOTE_PY" "$REMOTE_DIR/faultproxy.py" --listen-port-file "$dir/port" \
		--upstream "$S3_ENDPOINT" --control "$PROXY_CONTROL" --stats "$PROXY_STATS" \
		</dev/null 2>"$dir/log" &
	PROXY_PID=$!
	for i in $(seq 1 100); do
		[ -s "$dir/port" ] && break
		if ! kill -0 "$PROXY_PID" 2>/dev/null || [ "$i" = 100 ]; then
			cat "$dir/log"
			echo "FAIL: faultproxy.py did not start"
			exit 1
		fi
		sleep 0.05
	done
	AWS_ENDPOINT_URL=http://127.0.0.1:$(cat "$dir/port")
	export AWS_ENDPOINT_URL
}

proxy_set() {
	PROXY_SET=$((PROXY_SET + 1))
	# A new first line each time: the proxy restarts skip and count when
	# the file's content changes.
	printf '# set %d\n' "$PROXY_SET" >"$PROXY_CONTROL.tmp"
	[ $# = 0 ] || printf '%s\n' "$@" >>"$PROXY_CONTROL.tmp"
	mv "$PROXY_CONTROL.tmp" "$PROXY_CONTROL"
}

proxy_count() {
	local n
	n=$(sed -n "s/^$1=//p" "$PROXY_STATS" 2>/dev/null)
	echo "${n:-0}"
}

proxy_stop() {
	[ -n "$PROXY_PID" ] || return 0
	kill "$PROXY_PID" 2>/dev/null
	wait "$PROXY_PID" 2>/dev/null
	PROXY_PID=
	[ -z "${S3_ENDPOINT:-}" ] || AWS_ENDPOINT_URL=$S3_ENDPOINT
}

remote_stop() {
	proxy_stop
	[ -n "$SWIFT_DIR" ] || return 0
	[ -z "${KEEP:-}" ] || cp -r "$SWIFT_DIR/log" "$WORK/swift-log" 2>/dev/null
	"$REMOTE_DIR/swift.sh" stop "$SWIFT_DIR" || echo "FAIL: swift.sh stop $SWIFT_DIR"
	SWIFT_DIR=
}
