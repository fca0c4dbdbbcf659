#!/usr/bin/env bash
# test_swift.sh: the remote-store harness and the S3 facts cairn relies on,
# with curl only. Swift (swift.sh) starts and answers signed S3 calls: bucket,
# PUT/GET/HEAD/DELETE, a Range GET (206), ListObjectsV2 with a prefix and
# continuation, a two-part multipart upload; through faultproxy.py the
# signature still verifies, connections are kept alive, and each fault does
# what it says (latency, 503 SlowDown, reset, truncation, flipped bit, match
# and count) with the right counts in its stats; stop leaves no process and
# no mount. curl 7.88 signs the query as given: it goes sorted and encoded.
set -u
TEST_NAME=remote_swift
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/lib.sh"

B=cairn-test
sha() { sha256sum "$1" | cut -d' ' -f1; }
# code CURL-ARGS...: the HTTP status of a signed request (body to $WORK/body).
code() { s3_curl -o "$WORK/body" -w '%{http_code}' "$@"; }
# got STATUS FILE CURL-ARGS...: the request answers STATUS with FILE's bytes.
got() {
	local want=$1 file=$2
	shift 2
	[ "$(code "$@")" = "$want" ] && cmp -s "$WORK/body" "$file"
}
uri() { python3 -c 'import sys, urllib.parse; print(urllib.parse.quote(sys.argv[1], safe=""))' "$1"; }

t0=$(date +%s%N)
remote_start
echo "swift started in $((($(date +%s%N) - t0) / 1000000)) ms"
rss=0
for f in "$SWIFT_DIR"/run/*.pid; do
	rss=$((rss + $(ps -o rss= -g "$(cat "$f")" | awk '{ s += $1 } END { print s + 0 }')))
done
echo "swift holds $((rss / 1024)) MB"
check "the ListBuckets answers 200" [ "$(code "$AWS_ENDPOINT_URL/")" = 200 ]
remote_bucket "$B"
check "a second create of the bucket fails" [ "$(code -X PUT "$AWS_ENDPOINT_URL/$B")" = 409 ]

U=$AWS_ENDPOINT_URL/$B
head -c 1048576 /dev/urandom >"$WORK/obj"
check "PUT" [ "$(code -T "$WORK/obj" "$U/dir/obj")" = 200 ]
check "GET returns the bytes" got 200 "$WORK/obj" "$U/dir/obj"
tail -c +1001 "$WORK/obj" | head -c 1000 >"$WORK/range"
check "Range GET: 206 and those bytes" got 206 "$WORK/range" -H 'Range: bytes=1000-1999' "$U/dir/obj"
s3_curl -I "$U/dir/obj" >"$WORK/head"
check "HEAD" grep -qi '^HTTP/1.1 200' "$WORK/head"
check "HEAD gives the length" grep -qi '^content-length: 1048576' "$WORK/head"

# ListObjectsV2: 5 keys under list/, one beside, 2 a page.
for i in 1 2 3 4 5; do
	echo "$i" | s3_curl -T - -o /dev/null "$U/list/k$i"
done
echo x | s3_curl -T - -o /dev/null "$U/other"
keys=
token=
pages=0
while :; do
	q="list-type=2&max-keys=2&prefix=list%2F"
	[ -z "$token" ] || q="continuation-token=$(uri "$token")&$q"
	[ "$(code "$U?$q")" = 200 ] || {
		fail "ListObjectsV2 page $pages: $(cat "$WORK/body")"
		break
	}
	pages=$((pages + 1))
	keys="$keys$(grep -o '<Key>[^<]*</Key>' "$WORK/body" | sed 's/<[^>]*>//g' | tr '\n' ' ')"
	token=$(sed -n 's/.*<NextContinuationToken>\([^<]*\)<.*/\1/p' "$WORK/body")
	grep -q '<IsTruncated>true' "$WORK/body" || break
	[ "$pages" -lt 5 ] || break
done
check "ListObjectsV2 pages of 2 with a prefix: $keys" [ "$keys" = "list/k1 list/k2 list/k3 list/k4 list/k5 " ]
check "ListObjectsV2 took 3 pages ($pages)" [ "$pages" = 3 ]

check "DELETE" [ "$(code -X DELETE "$U/list/k5")" = 204 ]
check "GET after DELETE is 404" [ "$(code "$U/list/k5")" = 404 ]

# Multipart: 5 MiB + 1 byte (curl 7.88 signs a bare ?uploads wrongly).
head -c 5242880 /dev/urandom >"$WORK/p1"
head -c 1 /dev/urandom >"$WORK/p2"
cat "$WORK/p1" "$WORK/p2" >"$WORK/mp"
check "multipart initiate" [ "$(code -X POST "$U/mp?uploads=")" = 200 ]
id=$(sed -n 's/.*<UploadId>\([^<]*\)<.*/\1/p' "$WORK/body")
parts=
for n in 1 2; do
	etag=$(s3_curl -T "$WORK/p$n" -D - -o /dev/null "$U/mp?partNumber=$n&uploadId=$id" |
		sed -n 's/^[Ee][Tt]ag: *\([^\r]*\).*/\1/p')
	parts="$parts<Part><PartNumber>$n</PartNumber><ETag>$etag</ETag></Part>"
done
printf '<CompleteMultipartUpload>%s</CompleteMultipartUpload>' "$parts" >"$WORK/complete"
check "multipart complete" [ "$(code -X POST --data-binary @"$WORK/complete" "$U/mp?uploadId=$id")" = 200 ]
check "multipart complete says so" grep -q CompleteMultipartUploadResult "$WORK/body"
check "multipart object reads back" got 200 "$WORK/mp" "$U/mp"

# Through the proxy.
proxy_start
U=$AWS_ENDPOINT_URL/$B
check "the proxy forwards a signed PUT" [ "$(code -T "$WORK/obj" "$U/viaproxy")" = 200 ]
check "the proxy returns a GET unchanged" got 200 "$WORK/obj" "$U/viaproxy"
check "the proxy keeps a Range GET" got 206 "$WORK/range" -H 'Range: bytes=1000-1999' "$U/viaproxy"
conns=$(s3_curl -o /dev/null -o /dev/null -w '%{num_connects} ' "$U/viaproxy" "$U/dir/obj")
check "the proxy keeps the connection alive ($conns)" [ "$conns" = "1 0 " ]
check "a 5 MiB PUT through the proxy (Expect: 100-continue)" [ "$(code -T "$WORK/p1" "$U/big")" = 200 ]
check "the 5 MiB PUT stored the bytes" got 200 "$WORK/p1" "$S3_ENDPOINT/$B/big"

proxy_set latency_ms=300
t=$(s3_curl -o /dev/null -w '%{time_total}' "$U/dir/obj")
check "latency 300 ms applied ($t s)" awk -v t="$t" 'BEGIN { exit !(t >= 0.3) }'
proxy_set fault=error status=503 methods=GET count=1
check "503" [ "$(code "$U/dir/obj")" = 503 ]
check "503 says SlowDown" grep -q '<Code>SlowDown</Code>' "$WORK/body"
check "count=1: the next GET passes" [ "$(code "$U/dir/obj")" = 200 ]
proxy_set fault=error status=500 methods=PUT
check "methods=PUT spares a GET" [ "$(code "$U/dir/obj")" = 200 ]
check "methods=PUT fails a PUT with 500" [ "$(code -T "$WORK/p2" "$U/x")" = 500 ]
proxy_set fault=error match=/other skip=1
check "match: other keys pass" [ "$(code "$U/dir/obj")" = 200 ]
check "skip=1: the first match passes" [ "$(code "$U/other")" = 200 ]
check "skip=1: the second match fails" [ "$(code "$U/other")" = 503 ]
proxy_set fault=truncate methods=GET
s3_curl -o "$WORK/body" "$U/dir/obj" 2>/dev/null
rc=$?
check "truncated body: curl says so (exit $rc)" [ "$rc" = 18 ]
check "truncated body: half came ($(stat -c %s "$WORK/body"))" [ "$(stat -c %s "$WORK/body")" = 524288 ]
proxy_set fault=reset_mid methods=GET
s3_curl -o /dev/null "$U/dir/obj" 2>/dev/null
rc=$?
check "reset mid-body: curl fails (exit $rc)" [ "$rc" = 56 ] || [ "$rc" = 18 ]
proxy_set fault=reset_before
s3_curl -o /dev/null "$U/dir/obj" 2>/dev/null
rc=$?
check "reset before the response: curl fails (exit $rc)" [ "$rc" = 56 ] || [ "$rc" = 52 ]
proxy_set fault=flip methods=GET bits=1
check "flipped bit: 200" [ "$(code "$U/dir/obj")" = 200 ]
check "flipped bit: same size" [ "$(stat -c %s "$WORK/body")" = 1048576 ]
check "flipped bit: sha256 differs" [ "$(sha "$WORK/body")" != "$(sha "$WORK/obj")" ]
check "flipped bit: one byte differs" [ "$(cmp -l "$WORK/body" "$WORK/obj" | wc -l)" = 1 ]
proxy_set fault=stall stall_ms=3000 methods=GET
s3_curl -o /dev/null --max-time 1.5 "$U/dir/obj" 2>/dev/null
rc=$?
check "stall: the GET times out (exit $rc)" [ "$rc" = 28 ]
proxy_set
check "no faults: the bytes again" got 200 "$WORK/obj" "$U/dir/obj"

# GETs through the proxy: 2 + 2 (keep-alive) + 1 latency + 2 (503) + 1
# methods + 3 match/skip + truncate, reset_mid, reset_before, flip, stall,
# last.
check "GETs counted ($(proxy_count GET))" [ "$(proxy_count GET)" = 17 ]
check "PUTs counted ($(proxy_count PUT))" [ "$(proxy_count PUT)" = 3 ]
check "faults counted ($(proxy_count faults))" [ "$(proxy_count faults)" = 8 ]
check "PUT bytes counted ($(proxy_count PUT_bytes))" [ "$(proxy_count PUT_bytes)" = 6291457 ]

# Stop: nothing of it is left.
pids="$(cat "$SWIFT_DIR"/run/*.pid) $PROXY_PID"
dir=$SWIFT_DIR
remote_stop
left=
for p in $pids; do
	if kill -0 "$p" 2>/dev/null; then left="$left $p"; fi
	if pgrep -g "$p" >/dev/null; then left="$left g$p"; fi
done
check "stop leaves no process ($pids:$left)" [ -z "$left" ]
check "stop leaves no mount" [ -z "$(awk -v d="$dir" 'index($5, d) == 1' /proc/self/mountinfo)" ]
check "stop removes the directory" [ ! -e "$dir" ]
finish
