/* s3_internal.h: what the S3 client's files share (s3.c: one request and
 * its retries, the single calls; s3_multi.c: requests in parallel over curl
 * multi, range GETs and multipart uploads; s3_xml.c: the tiny XML reader
 * for the engine's answers). A request (struct s3_req) is set up on an easy
 * handle, performed by whoever drives it, then judged: done, try again, or
 * failed, so the single and the parallel paths retry alike.
 */
#ifndef CAIRN_S3_INTERNAL_H
#define CAIRN_S3_INTERNAL_H

#ifndef CAIRN_BUILDING_STORE
#error "s3_internal.h is internal to store/"
#endif

#include "s3.h"

#include <curl/curl.h>

/* The most easy handles the parallel calls keep (parallel is capped to it). */
#define S3_POOL_MAX 32

struct s3_client {
	struct s3_config cfg; /* owned copies of the strings */
	char *bucket;
	char *sigv4;  /* "aws:amz:REGION:s3" */
	CURL *easy;   /* the single calls', kept for its connection */
	CURLM *multi; /* the parallel calls', with its connection cache */
	CURL *pool[S3_POOL_MAX];
	unsigned list_page; /* max-keys of a ListObjectsV2 page; 0: the engine's */
	uint64_t rng;
	uint64_t requests, bytes_in;
	char error[512];
};

/* One request, and what one try of it got back. */
struct s3_req {
	const char *method;    /* GET PUT POST DELETE HEAD */
	const char *key;       /* NULL: the bucket (ListObjectsV2) */
	const char *query;     /* canonical: sorted, values encoded; or NULL */
	const char *detail;    /* for messages: " bytes 0-9", " part 3"; or NULL */
	uint64_t offset, size; /* Range when range is set; size UINT64_MAX: to the end */
	bool range;
	const void *body; /* PUT/POST body, or NULL */
	size_t body_size;
	/* Where a 2xx body goes: dest (exactly dest_size bytes expected),
	 * else out (grown as needed). */
	uint8_t *dest;
	size_t dest_size;
	struct s3_buf *out;

	char sha_hex[65], md5_b64[32]; /* the body's, made once */

	/* per try */
	struct curl_slist *headers;
	size_t sent;
	long status;
	bool announced_known, overflow;
	uint64_t announced, received;
	char etag[128];
	struct s3_buf errbody;
	char curl_error[CURL_ERROR_SIZE];
	char reason[192]; /* why the try failed, for the message */
	unsigned tries;
};

/* Sets req up on easy for one more try. Returns 0 or -errno (-ENOMEM). */
int s3_req_setup(struct s3_client *c, CURL *easy, struct s3_req *req);
/* Judges a finished try: 0 done, -EAGAIN worth another try, else -errno
 * (-ENOENT, -EACCES, -EIO). req->reason says why. Frees the try's headers. */
int s3_req_judge(struct s3_client *c, CURL *easy, struct s3_req *req, CURLcode code);
/* Releases what a request holds between tries. */
void s3_req_release(struct s3_req *req);
/* Milliseconds to wait before try number tries + 1: full jitter. */
unsigned s3_backoff_ms(struct s3_client *c, unsigned tries);
/* Sets c->error from req: "GET s3://b/key bytes 0-9: 503 SlowDown (after 6 tries)". */
void s3_req_fail(struct s3_client *c, const struct s3_req *req);
/* Runs req with its retries on the client's easy handle. 0 or -errno with
 * s3_error set. */
int s3_call(struct s3_client *c, struct s3_req *req);
void s3_set_error(struct s3_client *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* s3_buf helpers: append (0 or -ENOMEM). */
int s3_buf_append(struct s3_buf *buf, const void *data, size_t size);

/* Percent-encodes src per SigV4 (unreserved kept, and '/' when keep_slash)
 * into a new string, or NULL. */
char *s3_uri_encode(const char *src, bool keep_slash);

/* ---- s3_xml.c: just enough XML for S3's answers ---- */

/* Finds the first <tag>...</tag> in [*pos, end); returns its text's start
 * and sets *len, and moves *pos past the closing tag; NULL when none. */
const char *s3_xml_find(const char **pos, const char *end, const char *tag, size_t *len);
/* A new string of text with the XML entities decoded, or NULL (-ENOMEM or
 * a bad entity). */
char *s3_xml_text(const char *text, size_t len);
/* <Code> of an <Error> body into code (empty when none). */
void s3_xml_error_code(const void *body, size_t size, char *code, size_t code_size);
/* ISO 8601 "2024-01-02T03:04:05.000Z" to seconds since the epoch; -1 if bad. */
int64_t s3_xml_time(const char *text, size_t len);

#endif
