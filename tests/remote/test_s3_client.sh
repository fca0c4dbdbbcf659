#!/usr/bin/env bash
# test_s3_client.sh: the store's S3 client (store/s3.h) through s3tool
# against a real Swift with s3api, then through faultproxy.py. Straight:
# put/get/head/delete of a key with odd characters, a 3-part multipart
# upload and parallel ranges read back byte-identical, a listing of more
# keys than one page. Through the proxy: 503 SlowDown bursts, resets before
# and in the middle of a response and truncated bodies are retried, each
# taking the requests counted (by the proxy and by the client); once the
# tries are spent, one line naming the call, the key and the status, and a
# non-zero exit; a 404 is not retried; a failed multipart upload is aborted
# and leaves no object. No message ever holds the secret or the access key.
#   test_s3_client.sh S3TOOL
set -u
TEST_NAME=remote_s3_client
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/lib.sh"

S3TOOL=$(abs_path "$1")
B=cairn-client
MiB=1048576

# make_bucket NAME: Swift may answer 503 ServiceUnavailable for a moment
# after swift.sh start returns (its container server not yet up), so the
# create is tried again; a 409 after a lost answer means it is there.
make_bucket() {
	local i code=
	for i in $(seq 1 40); do
		code=$(s3_curl -o /dev/null -w '%{http_code}' -X PUT "$S3_ENDPOINT/$1")
		case $code in 200 | 409) return 0 ;; esac
		sleep 0.25
	done
	echo "FAIL: cannot create the bucket $1 (HTTP $code)"
	exit 1
}

remote_start
make_bucket "$B"
# Short backoff: the retries are what is tested, not the waits.
export AWS_MAX_ATTEMPTS=6

# s3 ARGS...: s3tool -s on the bucket; stdout to $WORK/out, stderr to
# $WORK/err, the request count of its last line in $REQS.
s3() {
	local rc
	"$S3TOOL" -s "$@" >"$WORK/out" 2>"$WORK/err"
	rc=$?
	REQS=$(sed -n 's/^s3tool: \([0-9]*\) requests.*/\1/p' "$WORK/err")
	sed '/ requests, /d' "$WORK/err" >"$WORK/msg"
	cat "$WORK/msg" >>"$WORK/all-messages"
	return $rc
}
# The client's message (without the stats line).
msg() { cat "$WORK/msg"; }
# lacks FILE TEXT: FILE does not hold TEXT.
lacks() { ! grep -qF -- "$2" "$1"; }
# bytes FILE OFFSET LENGTH: that part of FILE.
bytes() { tail -c +$(($2 + 1)) "$1" | head -c "$3"; }

head -c 300000 /dev/urandom >"$WORK/small"
key='dir/a b+c&d=e~%.bin'
check "put a key with odd characters" s3 "$B" put "$key" "$WORK/small"
check "one request for it ($REQS)" [ "$REQS" = 1 ]
check "head gives its size" s3 "$B" head "$key"
check "head's size is 300000 ($(cat "$WORK/out"))" [ "$(cat "$WORK/out")" = 300000 ]
s3 "$B" get "$key"
check "get reads it back" cmp -s "$WORK/out" "$WORK/small"
s3 "$B" get "$key" 1000 5000
check "get of a range" cmp -s "$WORK/out" <(bytes "$WORK/small" 1000 5000)
s3 "$B" list dir/
check "list decodes the key: $(cat "$WORK/out")" \
	awk -v k="$key 300000 " 'index($0, k) == 1 { f = 1 } END { exit !f }' "$WORK/out"
s3 "$B" list 'dir/a b+c&d='
check "list with a prefix that needs encoding: $(msg)" [ "$(wc -l <"$WORK/out")" = 1 ]
s3 "$B" get "$key" 299990 20
rc=$?
check "a range past the end fails ($rc): $(msg)" [ "$rc" = 1 ] && grep -q 'bytes 299990-300009: 10 bytes where 20 were asked' "$WORK/msg"
s3 "$B" get dir/none
rc=$?
check "a missing key: exit $rc, one request ($REQS): $(msg)" [ "$rc" = 1 ] && [ "$REQS" = 1 ] &&
	[ "$(msg)" = "s3tool: GET s3://$B/dir/none: 404 NoSuchKey" ]
# A session token goes as a signed header (tempauth ignores it).
check "get with a session token: $(msg)" env AWS_SESSION_TOKEN=session-token-1234 \
	"$S3TOOL" "$B" get "$key" 0 10 >/dev/null 2>"$WORK/err-token"
check "no message holds the token" lacks "$WORK/err-token" session-token-1234
check "delete" s3 "$B" delete "$key"
s3 "$B" head "$key"
check "head after delete fails: $(msg)" grep -q '404' "$WORK/msg"
check "delete of a missing key succeeds" s3 "$B" delete "$key"

# Multipart: 3 parts of 5 MiB, the last shorter, 3 in flight.
head -c $((10 * MiB + 12345)) /dev/urandom >"$WORK/big"
check "putfile in 3 parts: $(msg)" s3 -j 3 "$B" putfile big "$WORK/big" $((5 * MiB))
check "create, 3 parts, complete: 5 requests ($REQS)" [ "$REQS" = 5 ]
s3 "$B" get big
check "the multipart object reads back byte-identical" cmp -s "$WORK/out" "$WORK/big"
s3 "$B" head big
check "and has its size ($(cat "$WORK/out"))" [ "$(cat "$WORK/out")" = $((10 * MiB + 12345)) ]

# Ranges in parallel, in the order asked, across the parts' seams.
ranges=(0:1000 $((5 * MiB - 100)):200 4096:$MiB $((10 * MiB)):12345 7:1 $((3 * MiB)):$((2 * MiB)) 100:100 $((9 * MiB)):4096)
want() {
	local r
	for r in "${ranges[@]}"; do bytes "$WORK/big" "${r%%:*}" "${r##*:}"; done
}
want >"$WORK/want"
s3 -j 4 "$B" ranges big "${ranges[@]}"
check "8 ranges, 4 in flight, byte-identical" cmp -s "$WORK/out" "$WORK/want"
check "one request each ($REQS)" [ "$REQS" = 8 ]

# A listing of more keys than one page (pages of 10).
check "fill 25 keys" s3 "$B" fill page/k 25
s3 -P 10 "$B" list page/
check "list in pages of 10: 25 keys ($(wc -l <"$WORK/out"))" [ "$(wc -l <"$WORK/out")" = 25 ]
check "3 pages ($REQS)" [ "$REQS" = 3 ]
check "in order, first and last" [ "$(head -1 "$WORK/out" | cut -d' ' -f1)" = page/k00000 ] &&
	[ "$(tail -1 "$WORK/out" | cut -d' ' -f1)" = page/k00024 ]
s3 "$B" list nothing/
check "an empty listing" [ ! -s "$WORK/out" ]

# ---- through the fault proxy ----
proxy_start
# count_delta METHOD BEFORE: requests of METHOD since BEFORE.
delta() { echo $(($(proxy_count "$1") - $2)); }

# fault_get WHAT FAULT...: a GET of big through FAULT (3 faulty answers)
# succeeds byte-identical in 4 requests.
fault_get() {
	local what=$1 before
	shift
	proxy_set "$@" methods=GET count=3
	before=$(proxy_count GET)
	s3 "$B" get big
	check "$what: the GET succeeds: $(msg)" cmp -s "$WORK/out" "$WORK/big"
	check "$what: 4 requests by the client ($REQS)" [ "$REQS" = 4 ]
	check "$what: 4 GETs by the proxy ($(delta GET "$before"))" [ "$(delta GET "$before")" = 4 ]
}
fault_get "503 SlowDown x3" fault=error status=503
fault_get "500 InternalError x3" fault=error status=500
fault_get "reset before the answer x3" fault=reset_before
fault_get "reset in the body x3" fault=reset_mid
fault_get "truncated body x3" fault=truncate

# A body that stops coming: given up after the timeout (2 s), tried again.
proxy_set fault=stall stall_ms=20000 methods=GET count=1
t0=$(date +%s%N)
s3 -t 2 "$B" get big
ms=$((($(date +%s%N) - t0) / 1000000))
check "a stalled body: the GET succeeds: $(msg)" cmp -s "$WORK/out" "$WORK/big"
check "a stalled body: 2 requests ($REQS) in 2-10 s ($ms ms)" [ "$REQS" = 2 ] &&
	[ "$ms" -ge 2000 ] && [ "$ms" -lt 10000 ]

proxy_set fault=error status=503 methods=GET count=3
before=$(proxy_count GET)
s3 -j 4 "$B" ranges big "${ranges[@]}"
check "ranges through 3 SlowDowns: byte-identical: $(msg)" cmp -s "$WORK/out" "$WORK/want"
check "ranges: 11 requests ($REQS, proxy $(delta GET "$before"))" [ "$REQS" = 11 ] &&
	[ "$(delta GET "$before")" = 11 ]

proxy_set fault=truncate methods=GET count=4
s3 -j 4 "$B" ranges big "${ranges[@]}"
check "ranges through 4 truncations: byte-identical: $(msg)" cmp -s "$WORK/out" "$WORK/want"
check "ranges: 12 requests ($REQS)" [ "$REQS" = 12 ]

proxy_set fault=error status=503 methods=PUT count=2
before=$(proxy_count PUT)
check "put through 2 SlowDowns: $(msg)" s3 "$B" put small "$WORK/small"
check "put: 3 requests ($REQS, proxy $(delta PUT "$before"))" [ "$REQS" = 3 ] &&
	[ "$(delta PUT "$before")" = 3 ]
proxy_set fault=reset_before methods=PUT count=2
check "multipart through 2 resets of parts: $(msg)" s3 -j 3 "$B" putfile big2 "$WORK/big" $((5 * MiB))
check "multipart: 7 requests ($REQS)" [ "$REQS" = 7 ]
proxy_set
s3 "$B" get big2
check "and reads back byte-identical" cmp -s "$WORK/out" "$WORK/big"

# The answer to CompleteMultipartUpload lost after the engine completed it.
proxy_set fault=reset_mid methods=POST match=uploadId= count=1
check "multipart whose completion's answer is lost: $(msg)" s3 -j 3 "$B" putfile big4 "$WORK/big" $((5 * MiB))
check "its completion was sent again ($REQS requests)" [ "$REQS" -ge 6 ]
proxy_set
s3 "$B" get big4
check "and reads back byte-identical" cmp -s "$WORK/out" "$WORK/big"

proxy_set fault=error status=503 methods=GET count=2
check "list through 2 SlowDowns: $(msg)" s3 -P 10 "$B" list page/
check "list: 25 keys in 5 requests ($REQS)" [ "$(wc -l <"$WORK/out")" = 25 ] && [ "$REQS" = 5 ]

# Retries spent: 6 tries, then one line naming the call, key and status.
proxy_set fault=error status=503 methods=GET
before=$(proxy_count GET)
s3 "$B" get big 0 4096
rc=$?
check "always SlowDown: exit 1 ($rc)" [ "$rc" = 1 ]
check "always SlowDown: 6 tries ($REQS, proxy $(delta GET "$before"))" [ "$REQS" = 6 ] &&
	[ "$(delta GET "$before")" = 6 ]
check "always SlowDown: the message: $(msg)" \
	[ "$(msg)" = "s3tool: GET s3://$B/big bytes 0-4095: 503 SlowDown (after 6 tries)" ]
proxy_set fault=truncate methods=GET
AWS_MAX_ATTEMPTS=3 s3 "$B" get big
rc=$?
check "always truncated: exit 1 ($rc), 3 tries ($REQS)" [ "$rc" = 1 ] && [ "$REQS" = 3 ]
check "always truncated: one line naming the key: $(msg)" [ "$(msg | wc -l)" = 1 ] &&
	grep -q "^s3tool: GET s3://$B/big: .*(after 3 tries)$" "$WORK/msg"
proxy_set fault=reset_before methods=GET
AWS_MAX_ATTEMPTS=2 s3 -j 4 "$B" ranges big "${ranges[@]}"
rc=$?
check "ranges always reset: exit 1 ($rc), 2 tries of each ($REQS)" [ "$rc" = 1 ] && [ "$REQS" = 16 ]
check "ranges always reset: the message names a range: $(msg)" \
	grep -q "^s3tool: GET s3://$B/big bytes [0-9]*-[0-9]*: .*(after 2 tries)$" "$WORK/msg"
proxy_set fault=error status=500 methods=PUT
before=$(proxy_count DELETE)
AWS_MAX_ATTEMPTS=2 s3 -j 3 "$B" putfile big3 "$WORK/big" $((5 * MiB))
rc=$?
check "multipart with every part failing: exit 1 ($rc)" [ "$rc" = 1 ]
check "multipart: the message names a part: $(msg)" \
	grep -q "^s3tool: PUT s3://$B/big3 part [123]: 500 InternalError (after 2 tries)$" "$WORK/msg"
check "multipart: aborted ($(delta DELETE "$before") DELETE)" [ "$(delta DELETE "$before")" = 1 ]
proxy_set
s3 "$B" head big3
check "multipart: no object left: $(msg)" grep -q 404 "$WORK/msg"
proxy_set
AWS_SECRET_ACCESS_KEY=not-the-secret-1234 s3 "$B" get big
rc=$?
check "a wrong secret: exit 1 ($rc), not retried ($REQS)" [ "$rc" = 1 ] && [ "$REQS" = 1 ]
check "a wrong secret: 403: $(msg)" [ "$(msg)" = "s3tool: GET s3://$B/big: 403 SignatureDoesNotMatch" ]
check "a wrong secret: not shown" lacks "$WORK/all-messages" not-the-secret

# No credential in any message.
check "no message holds the secret" lacks "$WORK/all-messages" "$AWS_SECRET_ACCESS_KEY"
check "no message holds the access key" lacks "$WORK/all-messages" "$AWS_ACCESS_KEY_ID"
check "no message holds a signature" lacks "$WORK/all-messages" AWS4-HMAC
check "no message holds a credential scope" lacks "$WORK/all-messages" Credential=
check "messages were seen ($(wc -l <"$WORK/all-messages"))" [ "$(wc -l <"$WORK/all-messages")" -ge 8 ]
finish
