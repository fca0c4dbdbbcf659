#!/usr/bin/env bash
# swift.sh: a real one-node OpenStack Swift (Debian's 2.30 packages) with the
# s3api middleware and tempauth, on loopback, in a directory of its own, for
# the remote-store tests and benchmarks. `start DIR` makes DIR (rings: 1
# replica, 1 device; account, container, object servers, proxy and memcached
# on free loopback ports below the ephemeral range, chosen under a lock held
# until they listen, so that Swifts may run side by side; storage on a tmpfs
# mounted at DIR/srv when root, else in DIR/srv if its file system takes
# user xattrs; logs in DIR/log;
# pids in DIR/run), waits until the proxy answers a signed S3 ListBuckets and
# prints the AWS_* assignments to eval (also kept in DIR/env). On failure it
# prints the logs' tails, stops what it started and exits 1. `stop DIR` kills
# every process it started, unmounts DIR/srv and removes DIR. `bucket DIR
# NAME` creates a bucket through S3. `curl DIR ARGS...` runs curl signed with
# DIR's credentials (a colon in the access key cannot go through --user).
# Swift reads /etc/swift/swift.conf whatever swift_dir says: one is written
# (random hash path prefix) only if there is none. Environment:
# CAIRN_SWIFT_STORAGE=tmpfs|dir (default tmpfs as root), CAIRN_SWIFT_TMPFS_SIZE
# (default 50%), CAIRN_SWIFT_WORKERS (proxy and object server, default 0:
# no fork).
set -Eeuo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
PY=/usr/bin/python3 # Debian's python3-swift lives there, not in a pyenv
MARK=.cairn-swift   # what tells stop that DIR is one of ours
ACCOUNT='test'
USER_NAME=tester
SECRET=testing
REGION=us-east-1

die() {
	printf 'swift.sh: %s\n' "$*" >&2
	exit 1
}

# signed_curl DIR ARGS...: curl with DIR's S3 credentials (SigV4). curl's
# --user splits at the first colon and tempauth's access key holds one, so
# the credentials go in a netrc file; curl 7.88 wants x-amz-content-sha256.
signed_curl() {
	local dir=$1
	shift
	curl -sS --netrc-file "$dir/etc/netrc" --aws-sigv4 "aws:amz:$REGION:s3" \
		-H 'x-amz-content-sha256: UNSIGNED-PAYLOAD' "$@"
}

endpoint() {
	sed -n 's/^AWS_ENDPOINT_URL=//p' "$1/env"
}

is_mounted() {
	awk -v m="$1" '$5 == m { found = 1 } END { exit !found }' /proc/self/mountinfo
}

# Whether pid $1 is still one of ours: alive, not a zombie, and its command
# line names DIR $2 (every process started here has DIR in its arguments).
ours() {
	[[ -r /proc/$1/cmdline ]] || return 1
	grep -q '^State:.*Z' "/proc/$1/status" 2>/dev/null && return 1
	{ tr '\0' '\n' <"/proc/$1/cmdline"; } 2>/dev/null | grep -qF -- "$2"
}

# stop_dir DIR: every process group started under DIR gets SIGTERM, then
# SIGKILL after 5 s; DIR/srv is unmounted; DIR is removed.
stop_dir() {
	local dir=$1 f pid i alive
	local -a pids=()
	[[ -e $dir/$MARK ]] || die "$dir was not made by swift.sh start; not touching it"
	for f in "$dir"/run/*.pid; do
		[[ -f $f ]] || continue
		pid=$(<"$f")
		[[ $pid =~ ^[0-9]+$ ]] && pids+=("$pid")
	done
	for pid in "${pids[@]}"; do
		# Each server is the leader of its own session: the group is it
		# and its workers.
		ours "$pid" "$dir" && kill -TERM -- "-$pid" "$pid" 2>/dev/null || true
	done
	for i in $(seq 1 100); do
		alive=0
		for pid in "${pids[@]}"; do
			ours "$pid" "$dir" && alive=1
			pgrep -g "$pid" >/dev/null 2>&1 && alive=1
		done
		[[ $alive = 0 ]] && break
		[[ $i = 100 ]] && for pid in "${pids[@]}"; do
			kill -KILL -- "-$pid" "$pid" 2>/dev/null || true
		done
		sleep 0.05
	done
	if is_mounted "$dir/srv"; then
		umount "$dir/srv" 2>/dev/null || umount -l "$dir/srv" ||
			die "cannot unmount $dir/srv"
	fi
	rm -rf -- "$dir"
}

# storage DIR: DIR/srv/d1, the one device, on a file system with user
# xattrs (Swift keeps object metadata in them).
storage() {
	local dir=$1 mode=${CAIRN_SWIFT_STORAGE:-}
	mkdir -p "$dir/srv"
	if [[ -z $mode ]]; then
		mode=dir
		[[ $(id -u) = 0 ]] && mode=tmpfs
	fi
	case $mode in
	tmpfs)
		mount -t tmpfs -o "size=${CAIRN_SWIFT_TMPFS_SIZE:-50%},mode=0755" \
			cairn-swift "$dir/srv" || die "cannot mount a tmpfs at $dir/srv"
		;;
	dir) ;;
	*) die "CAIRN_SWIFT_STORAGE=$mode: expected tmpfs or dir" ;;
	esac
	mkdir -p "$dir/srv/d1"
	touch "$dir/srv/d1/.xattr"
	setfattr -n user.cairn -v 1 "$dir/srv/d1/.xattr" 2>/dev/null ||
		die "$dir/srv ($mode) takes no user xattrs, which Swift needs"
	rm -f "$dir/srv/d1/.xattr"
}

# swift_conf: Swift reads the hash path prefix and suffix from
# /etc/swift/swift.conf, always; one is written only when there is none.
swift_conf() {
	[[ -e /etc/swift/swift.conf ]] && return 0
	mkdir -p /etc/swift
	printf '[swift-hash]\nswift_hash_path_prefix = %s\nswift_hash_path_suffix = %s\n\n[storage-policy:0]\nname = Policy-0\ndefault = yes\n' \
		"$(od -An -N8 -tx1 /dev/urandom | tr -d ' \n')" \
		"$(od -An -N8 -tx1 /dev/urandom | tr -d ' \n')" >/etc/swift/swift.conf.cairn.$$
	mv -n /etc/swift/swift.conf.cairn.$$ /etc/swift/swift.conf
	rm -f /etc/swift/swift.conf.cairn.$$
}

# write_confs DIR APORT CPORT OPORT PPORT MPORT
write_confs() {
	local dir=$1 aport=$2 cport=$3 oport=$4 pport=$5 mport=$6 user workers
	user=$(id -un)
	workers=${CAIRN_SWIFT_WORKERS:-0}
	# Logs: each server runs with -v, which adds a handler writing to its
	# stderr (a file in DIR/log); its syslog handler is sent to a UDP port
	# on loopback nobody reads (there is no way to turn it off).
	local common="[DEFAULT]
bind_ip = 127.0.0.1
user = $user
swift_dir = $dir/etc
devices = $dir/srv
mount_check = false
log_udp_host = 127.0.0.1
log_udp_port = 9
log_level = INFO
"
	local s port
	for s in account container object; do
		case $s in
		account) port=$aport ;;
		container) port=$cport ;;
		object) port=$oport ;;
		esac
		{
			printf '%s' "$common"
			printf 'bind_port = %s\nworkers = %s\n\n' "$port" \
				"$([[ $s = object ]] && echo "$workers" || echo 0)"
			printf '[pipeline:main]\npipeline = %s-server\n\n' "$s"
			printf '[app:%s-server]\nuse = egg:swift#%s\n' "$s" "$s"
			# Writes of the harness are its own: no fsync needed for speed
			# on a tmpfs anyway.
		} >"$dir/etc/$s-server.conf"
	done
	cat >"$dir/etc/proxy-server.conf" <<EOF
${common}bind_port = $pport
workers = $workers

[pipeline:main]
pipeline = catch_errors gatekeeper healthcheck proxy-logging cache listing_formats s3api tempauth copy slo dlo versioned_writes proxy-logging proxy-server

[app:proxy-server]
use = egg:swift#proxy
account_autocreate = true

[filter:catch_errors]
use = egg:swift#catch_errors

[filter:gatekeeper]
use = egg:swift#gatekeeper

[filter:healthcheck]
use = egg:swift#healthcheck

[filter:proxy-logging]
use = egg:swift#proxy_logging

[filter:cache]
use = egg:swift#memcache
memcache_servers = 127.0.0.1:$mport

[filter:listing_formats]
use = egg:swift#listing_formats

[filter:s3api]
use = egg:swift#s3api
location = $REGION

[filter:tempauth]
use = egg:swift#tempauth
user_${ACCOUNT}_${USER_NAME} = $SECRET .admin

[filter:copy]
use = egg:swift#copy

[filter:slo]
use = egg:swift#slo

[filter:versioned_writes]
use = egg:swift#versioned_writes

[filter:dlo]
use = egg:swift#dlo
EOF
	printf 'machine 127.0.0.1\nlogin %s:%s\npassword %s\n' "$ACCOUNT" "$USER_NAME" "$SECRET" >"$dir/etc/netrc"
	chmod 600 "$dir/etc/netrc"
}

# spawn DIR NAME CMD...: CMD in a session of its own (so that stop can kill
# it with its workers), output to DIR/log/NAME.log, pid to DIR/run/NAME.pid.
spawn() {
	local dir=$1 name=$2
	shift 2
	# Not a process group leader (no job control here), so setsid execs
	# in place and $! is the server's pid.
	setsid "$@" </dev/null >"$dir/log/$name.log" 2>&1 9>&- &
	echo $! >"$dir/run/$name.pid"
}

# listening PORT...: whether each loopback PORT accepts a connection.
listening() {
	local port
	for port in "$@"; do
		(exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null || return 1
	done
}

# fail_start DIR MESSAGE: the logs' tails to stderr, everything stopped.
fail_start() {
	local dir=$1 f
	shift
	printf 'swift.sh: start failed: %s\n' "$*" >&2
	for f in "$dir"/log/*.log; do
		[[ -s $f ]] || continue
		printf -- '--- %s (last 15 lines)\n' "${f##*/}" >&2
		tail -n 15 -- "$f" >&2
	done
	stop_dir "$dir"
	exit 1
}

start() {
	local dir=$1 ports aport cport oport pport mport i name code url
	[[ ! -e $dir ]] || [[ -d $dir && -z $(ls -A -- "$dir") ]] ||
		die "$dir exists and is not empty"
	command -v swift-proxy-server >/dev/null && command -v memcached >/dev/null ||
		die "Swift or memcached is not installed (scripts/setup installs them)"
	mkdir -p "$dir"
	dir=$(cd "$dir" && pwd)
	touch "$dir/$MARK"
	mkdir -p "$dir/etc" "$dir/log" "$dir/run"
	# From here on a failure stops what is there.
	trap 'fail_start "$dir" "line $LINENO"' ERR
	trap 'fail_start "$dir" "interrupted"' INT TERM
	(storage "$dir") || fail_start "$dir" "no storage"
	swift_conf
	# Ports are chosen free and bound by the servers seconds later: one
	# start at a time on this machine, from the choice until they listen
	# (the lock is dropped when this script exits, or below).
	exec 9>>"${TMPDIR:-/tmp}/cairn-swift-start.lock"
	flock 9
	ports=$("$PY" "$HERE/swift_helper.py" ports 5)
	read -r aport cport oport pport mport <<<"$ports"
	"$PY" "$HERE/swift_helper.py" rings "$dir/etc" d1 "$aport" "$cport" "$oport"
	write_confs "$dir" "$aport" "$cport" "$oport" "$pport" "$mport"
	url=http://127.0.0.1:$pport
	printf 'AWS_ENDPOINT_URL=%s\nAWS_ACCESS_KEY_ID=%s:%s\nAWS_SECRET_ACCESS_KEY=%s\nAWS_REGION=%s\n' \
		"$url" "$ACCOUNT" "$USER_NAME" "$SECRET" "$REGION" >"$dir/env"

	local -a as_user=()
	[[ $(id -u) != 0 ]] || as_user=(-u root) # memcached refuses root without it
	spawn "$dir" memcached memcached -l 127.0.0.1 -p "$mport" -U 0 -t 1 -m 64 \
		"${as_user[@]}" -P "$dir/run/memcached.pidfile"
	for name in account container object proxy; do
		spawn "$dir" "$name" "swift-$name-server" "$dir/etc/$name-server.conf" -v
	done
	trap - ERR

	# Ready when every server accepts connections (the proxy's first
	# requests must not find the container server still starting) and a
	# signed ListBuckets succeeds (tempauth, s3api and the account server
	# answer); 60 s is far beyond the usual 3 to 5 s.
	for i in $(seq 1 600); do
		for name in memcached account container object proxy; do
			ours "$(<"$dir/run/$name.pid")" "$dir" ||
				fail_start "$dir" "$name exited"
		done
		code=
		if listening "$aport" "$cport" "$oport" "$mport"; then
			code=$(signed_curl "$dir" -o /dev/null -w '%{http_code}' "$url/" 2>/dev/null) || true
		fi
		[[ $code = 200 ]] && break
		[[ $i = 600 ]] && fail_start "$dir" "the proxy did not answer S3 in 60 s (last status ${code:-none})"
		sleep 0.1
	done
	exec 9>&-
	cat "$dir/env"
}

bucket() {
	local dir=$1 name=$2 out code
	[[ -f $dir/env ]] || die "$dir is not a started swift.sh directory"
	out=$(signed_curl "$dir" -X PUT -w '\n%{http_code}' "$(endpoint "$dir")/$name") ||
		die "PUT bucket $name: curl failed"
	code=${out##*$'\n'}
	[[ $code = 200 ]] || die "PUT bucket $name: HTTP $code: ${out%$'\n'*}"
}

case ${1:-} in
start)
	[[ $# = 2 ]] || die "usage: swift.sh start DIR"
	start "$2"
	;;
stop)
	[[ $# = 2 ]] || die "usage: swift.sh stop DIR"
	[[ -e $2 ]] || exit 0
	stop_dir "$(cd "$2" && pwd)"
	;;
bucket)
	[[ $# = 3 ]] || die "usage: swift.sh bucket DIR NAME"
	bucket "$2" "$3"
	;;
curl)
	[[ $# -ge 2 ]] || die "usage: swift.sh curl DIR CURL-ARGS..."
	dir=$2
	shift 2
	signed_curl "$dir" "$@"
	;;
*)
	die "usage: swift.sh start DIR | stop DIR | bucket DIR NAME | curl DIR CURL-ARGS..."
	;;
esac
