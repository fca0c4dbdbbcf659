/* s3_req.c: one S3 request over libcurl and the judgement of each try.
 * curl signs it (CURLOPT_AWS_SIGV4); what curl 7.88 leaves to us is here:
 * the x-amz-content-sha256 header it wants, the query string already in
 * canonical order and encoding (it signs the query as given), the session
 * token as a header, and the user name and secret set apart (a tempauth
 * access key holds a colon). The judgement sorts what may pass on another
 * try (dropped or short bodies, timeouts, 5xx, SlowDown) from what will
 * not, and keeps a reason without any header or body echoed back: an
 * engine's error body may quote the signed request.
 */
#include "s3_internal.h"

#include "util.h"

#include <errno.h>
#include <inttypes.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* The SHA-256 of no bytes: what GET, HEAD and DELETE sign as their body. */
static const char empty_sha256[] =
	"e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

char *s3_uri_encode(const char *src, bool keep_slash)
{
	static const char hex[] = "0123456789ABCDEF";
	size_t len = strlen(src);
	char *out = malloc(3 * len + 1), *p = out;

	if (!out)
		return NULL;
	for (const unsigned char *s = (const unsigned char *)src; *s; s++) {
		if ((*s >= 'A' && *s <= 'Z') || (*s >= 'a' && *s <= 'z') ||
		    (*s >= '0' && *s <= '9') || *s == '-' || *s == '_' || *s == '.' || *s == '~' ||
		    (keep_slash && *s == '/')) {
			*p++ = (char)*s;
		} else {
			*p++ = '%';
			*p++ = hex[*s >> 4];
			*p++ = hex[*s & 15];
		}
	}
	*p = '\0';
	return out;
}

int s3_buf_append(struct s3_buf *buf, const void *data, size_t size)
{
	if (size > buf->cap - buf->size) {
		size_t cap = buf->cap ? buf->cap : 4096;
		while (cap - buf->size < size)
			cap *= 2;
		uint8_t *grown = realloc(buf->data, cap);
		if (!grown)
			return -ENOMEM;
		buf->data = grown;
		buf->cap = cap;
	}
	if (size > 0)
		memcpy(buf->data + buf->size, data, size);
	buf->size += size;
	return 0;
}

void s3_buf_free(struct s3_buf *buf)
{
	if (!buf)
		return;
	free(buf->data);
	*buf = (struct s3_buf){0};
}

static int body_hashes(struct s3_req *req)
{
	uint8_t sha[32], md5[16];
	static const char hex[] = "0123456789abcdef";

	if (req->sha_hex[0])
		return 0;
	if (!EVP_Digest(req->body ? req->body : "", req->body_size, sha, NULL, EVP_sha256(),
			NULL) ||
	    !EVP_Digest(req->body ? req->body : "", req->body_size, md5, NULL, EVP_md5(), NULL))
		return -ENOMEM;
	for (size_t i = 0; i < sizeof(sha); i++) {
		req->sha_hex[2 * i] = hex[sha[i] >> 4];
		req->sha_hex[2 * i + 1] = hex[sha[i] & 15];
	}
	req->sha_hex[64] = '\0';
	EVP_EncodeBlock((unsigned char *)req->md5_b64, md5, sizeof(md5));
	return 0;
}

/* scheme://host/BUCKET/KEY?QUERY, or scheme://BUCKET.host/KEY?QUERY. */
static char *request_url(const struct s3_client *c, const struct s3_req *req)
{
	_cleanup_free_ char *key = s3_uri_encode(req->key ? req->key : "", true);
	const char *endpoint = c->cfg.endpoint, *host = strstr(endpoint, "://");
	const char *q = req->query ? "?" : "", *query = req->query ? req->query : "";
	char *url = NULL;
	int n;

	if (!key || !host)
		return NULL;
	host += 3;
	if (c->cfg.path_style)
		n = asprintf(&url, "%s/%s%s%s%s%s", endpoint, c->bucket, req->key ? "/" : "", key,
			     q, query);
	else
		n = asprintf(&url, "%.*s%s.%s/%s%s%s", (int)(host - endpoint), endpoint, c->bucket,
			     host, key, q, query);
	return n < 0 ? NULL : url;
}

static bool header_is(const char *line, size_t len, const char *name, const char **value,
		      size_t *value_len)
{
	size_t name_len = strlen(name);

	if (len <= name_len || strncasecmp(line, name, name_len) != 0 || line[name_len] != ':')
		return false;
	const char *v = line + name_len + 1, *end = line + len;
	while (v < end && (*v == ' ' || *v == '\t'))
		v++;
	while (end > v && (end[-1] == '\r' || end[-1] == '\n' || end[-1] == ' '))
		end--;
	*value = v;
	*value_len = (size_t)(end - v);
	return true;
}

static size_t on_header(char *line, size_t size, size_t nmemb, void *userdata)
{
	struct s3_req *req = userdata;
	size_t len = size * nmemb, value_len;
	const char *value;

	if (len > 5 && strncmp(line, "HTTP/", 5) == 0) {
		/* A new response (after a 100 Continue): forget the last one's. */
		const char *sp = memchr(line, ' ', len);
		req->status = sp ? strtol(sp + 1, NULL, 10) : 0;
		req->announced_known = false;
		req->etag[0] = '\0';
	} else if (header_is(line, len, "Content-Length", &value, &value_len)) {
		req->announced = strtoull(value, NULL, 10);
		req->announced_known = true;
	} else if (header_is(line, len, "ETag", &value, &value_len) &&
		   value_len < sizeof(req->etag)) {
		memcpy(req->etag, value, value_len);
		req->etag[value_len] = '\0';
	}
	return len;
}

static size_t on_body(char *data, size_t size, size_t nmemb, void *userdata)
{
	struct s3_req *req = userdata;
	size_t len = size * nmemb;

	if (req->status / 100 != 2) {
		/* An error body: only its <Code> is wanted, so keep its start. */
		size_t room = req->errbody.size < 16384 ? 16384 - req->errbody.size : 0;
		if (s3_buf_append(&req->errbody, data, len < room ? len : room) < 0)
			return 0;
		return len;
	}
	if (req->dest) {
		if (len > req->dest_size - req->received) {
			req->overflow = true;
			return 0;
		}
		memcpy(req->dest + req->received, data, len);
	} else {
		struct s3_buf *out = req->out ? req->out : &req->errbody;
		if (out->size == 0 && req->announced_known && req->announced > out->cap &&
		    req->announced < SIZE_MAX) {
			uint8_t *grown = realloc(out->data, req->announced);
			if (!grown)
				return 0;
			out->data = grown;
			out->cap = req->announced;
		}
		if (s3_buf_append(out, data, len) < 0)
			return 0;
	}
	req->received += len;
	return len;
}

static size_t on_read(char *buf, size_t size, size_t nmemb, void *userdata)
{
	struct s3_req *req = userdata;
	size_t len = size * nmemb, left = req->body_size - req->sent;

	if (len > left)
		len = left;
	memcpy(buf, (const uint8_t *)req->body + req->sent, len);
	req->sent += len;
	return len;
}

/* curl rewinds a body it must send again (a kept-alive connection the
 * engine had closed). */
static int on_seek(void *userdata, curl_off_t offset, int origin)
{
	struct s3_req *req = userdata;

	if (origin != SEEK_SET || offset < 0 || (uint64_t)offset > req->body_size)
		return CURL_SEEKFUNC_FAIL;
	req->sent = (size_t)offset;
	return CURL_SEEKFUNC_OK;
}

static int add_header(struct s3_req *req, const char *fmt, const char *value)
{
	char line[1024];
	struct curl_slist *list;

	if (snprintf(line, sizeof(line), fmt, value) >= (int)sizeof(line))
		return -E2BIG;
	list = curl_slist_append(req->headers, line);
	if (!list)
		return -ENOMEM;
	req->headers = list;
	return 0;
}

static int request_headers(struct s3_client *c, struct s3_req *req)
{
	char range[64];
	int r;

	r = add_header(req, "x-amz-content-sha256: %s", req->body ? req->sha_hex : empty_sha256);
	if (r == 0 && req->body)
		r = add_header(req, "Content-MD5: %s", req->md5_b64);
	if (r == 0 && req->body)
		r = add_header(req, "Content-Type: %s", "application/octet-stream");
	if (r == 0 && req->range) {
		if (req->size == UINT64_MAX)
			snprintf(range, sizeof(range), "bytes=%" PRIu64 "-", req->offset);
		else
			snprintf(range, sizeof(range), "bytes=%" PRIu64 "-%" PRIu64, req->offset,
				 req->offset + req->size - 1);
		r = add_header(req, "Range: %s", range);
	}
	if (r == 0 && c->cfg.session_token)
		r = add_header(req, "X-Amz-Security-Token: %s", c->cfg.session_token);
	/* Not "Expect:" to save the 100-continue round trip: curl 7.88 signs
	 * the empty header it then does not send. */
	return r;
}

static void request_method(CURL *easy, struct s3_req *req)
{
	if (strcmp(req->method, "HEAD") == 0) {
		curl_easy_setopt(easy, CURLOPT_NOBODY, 1L);
	} else if (strcmp(req->method, "PUT") == 0) {
		curl_easy_setopt(easy, CURLOPT_UPLOAD, 1L);
		curl_easy_setopt(easy, CURLOPT_READFUNCTION, on_read);
		curl_easy_setopt(easy, CURLOPT_READDATA, req);
		curl_easy_setopt(easy, CURLOPT_SEEKFUNCTION, on_seek);
		curl_easy_setopt(easy, CURLOPT_SEEKDATA, req);
		curl_easy_setopt(easy, CURLOPT_INFILESIZE_LARGE, (curl_off_t)req->body_size);
	} else if (strcmp(req->method, "POST") == 0) {
		curl_easy_setopt(easy, CURLOPT_POST, 1L);
		curl_easy_setopt(easy, CURLOPT_POSTFIELDS, req->body ? req->body : "");
		curl_easy_setopt(easy, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)req->body_size);
	} else if (strcmp(req->method, "GET") != 0) {
		curl_easy_setopt(easy, CURLOPT_CUSTOMREQUEST, req->method);
	}
}

int s3_req_setup(struct s3_client *c, CURL *easy, struct s3_req *req)
{
	int r;

	req->sent = 0;
	req->status = 0;
	req->announced_known = req->overflow = false;
	req->announced = req->received = 0;
	req->etag[0] = req->curl_error[0] = req->reason[0] = '\0';
	req->errbody.size = 0;
	if (req->out)
		req->out->size = 0;
	curl_slist_free_all(req->headers);
	req->headers = NULL;
	if (req->body && !req->body_size)
		req->body = "";
	r = body_hashes(req);
	if (r == 0)
		r = request_headers(c, req);
	_cleanup_free_ char *url = r == 0 ? request_url(c, req) : NULL;
	if (!url) {
		snprintf(req->reason, sizeof(req->reason), "%s",
			 r == -E2BIG ? "a header too long" : "out of memory");
		return r < 0 ? r : -ENOMEM;
	}

	/* reset keeps the connection, DNS and TLS session caches. */
	curl_easy_reset(easy);
	curl_easy_setopt(easy, CURLOPT_URL, url);
	curl_easy_setopt(easy, CURLOPT_PATH_AS_IS, 1L);
	curl_easy_setopt(easy, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(easy, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(easy, CURLOPT_AWS_SIGV4, c->sigv4);
	curl_easy_setopt(easy, CURLOPT_USERNAME, c->cfg.access_key);
	curl_easy_setopt(easy, CURLOPT_PASSWORD, c->cfg.secret_key);
	curl_easy_setopt(easy, CURLOPT_HTTPHEADER, req->headers);
	curl_easy_setopt(easy, CURLOPT_CONNECTTIMEOUT, 10L);
	curl_easy_setopt(easy, CURLOPT_LOW_SPEED_LIMIT, 1L);
	curl_easy_setopt(easy, CURLOPT_LOW_SPEED_TIME,
			 (long)(c->cfg.timeout_s ? c->cfg.timeout_s : 30));
	curl_easy_setopt(easy, CURLOPT_TCP_KEEPALIVE, 1L);
	curl_easy_setopt(easy, CURLOPT_ERRORBUFFER, req->curl_error);
	curl_easy_setopt(easy, CURLOPT_HEADERFUNCTION, on_header);
	curl_easy_setopt(easy, CURLOPT_HEADERDATA, req);
	curl_easy_setopt(easy, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(easy, CURLOPT_WRITEDATA, req);
	curl_easy_setopt(easy, CURLOPT_PRIVATE, req);
	request_method(easy, req);
	return 0;
}

static bool curl_retryable(CURLcode code)
{
	switch (code) {
	case CURLE_PARTIAL_FILE:
	case CURLE_RECV_ERROR:
	case CURLE_SEND_ERROR:
	case CURLE_GOT_NOTHING:
	case CURLE_OPERATION_TIMEDOUT:
	case CURLE_COULDNT_CONNECT:
	case CURLE_SEND_FAIL_REWIND:
	case CURLE_HTTP2:
	case CURLE_HTTP2_STREAM:
		return true;
	default:
		return false;
	}
}

static const char *status_phrase(long status)
{
	switch (status) {
	case 400:
		return "Bad Request";
	case 403:
		return "Forbidden";
	case 404:
		return "Not Found";
	case 405:
		return "Method Not Allowed";
	case 408:
		return "Request Timeout";
	case 409:
		return "Conflict";
	case 411:
		return "Length Required";
	case 412:
		return "Precondition Failed";
	case 416:
		return "Range Not Satisfiable";
	case 429:
		return "Too Many Requests";
	case 500:
		return "Internal Server Error";
	case 501:
		return "Not Implemented";
	case 502:
		return "Bad Gateway";
	case 503:
		return "Service Unavailable";
	case 504:
		return "Gateway Timeout";
	default:
		return "HTTP error";
	}
}

static bool code_retryable(const char *code)
{
	return strcmp(code, "SlowDown") == 0 || strcmp(code, "RequestTimeout") == 0 ||
	       strcmp(code, "InternalError") == 0 || strcmp(code, "ServiceUnavailable") == 0;
}

static int judge_error(struct s3_req *req, long status, const void *body, size_t size)
{
	char code[64];

	s3_xml_error_code(body, size, code, sizeof(code));
	snprintf(req->reason, sizeof(req->reason), "%ld %s", status,
		 code[0] ? code : status_phrase(status));
	if (status == 408 || status == 429 || status == 500 || status == 502 || status == 503 ||
	    status == 504 || code_retryable(code))
		return -EAGAIN;
	if (status == 404)
		return -ENOENT;
	if (status == 403)
		return -EACCES;
	return -EIO;
}

/* A 2xx: the body must be as long as announced and as asked. */
static int judge_body(struct s3_req *req)
{
	bool head = strcmp(req->method, "HEAD") == 0;

	if (!head && req->announced_known && req->received != req->announced) {
		snprintf(req->reason, sizeof(req->reason),
			 "a body of %" PRIu64 " bytes where %" PRIu64 " were announced",
			 req->received, req->announced);
		return -EAGAIN;
	}
	if (req->range && req->status == 200 && req->offset != 0) {
		snprintf(req->reason, sizeof(req->reason), "the engine ignored the Range header");
		return -EIO;
	}
	uint64_t want = req->dest ? req->dest_size : req->range ? req->size : UINT64_MAX;
	if (!head && want != UINT64_MAX && req->received != want) {
		snprintf(req->reason, sizeof(req->reason),
			 "%" PRIu64 " bytes where %" PRIu64 " were asked (past the end?)",
			 req->received, want);
		return -EIO;
	}
	return 0;
}

int s3_req_judge(struct s3_client *c, CURL *easy, struct s3_req *req, CURLcode code)
{
	curl_off_t down = 0;
	long status = 0;

	curl_slist_free_all(req->headers);
	req->headers = NULL;
	req->tries++;
	c->requests++;
	if (curl_easy_getinfo(easy, CURLINFO_SIZE_DOWNLOAD_T, &down) == CURLE_OK && down > 0)
		c->bytes_in += (uint64_t)down;
	if (code == CURLE_WRITE_ERROR && req->overflow) {
		snprintf(req->reason, sizeof(req->reason), "a body longer than asked");
		return -EAGAIN;
	}
	if (code == CURLE_WRITE_ERROR) {
		snprintf(req->reason, sizeof(req->reason), "out of memory");
		return -ENOMEM;
	}
	if (code != CURLE_OK) {
		snprintf(req->reason, sizeof(req->reason), "%.*s", (int)sizeof(req->reason) - 1,
			 req->curl_error[0] ? req->curl_error : curl_easy_strerror(code));
		return curl_retryable(code) ? -EAGAIN : -EIO;
	}
	curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &status);
	req->status = status;
	if (status / 100 != 2)
		return judge_error(req, status, req->errbody.data, req->errbody.size);
	/* CompleteMultipartUpload may fail inside a 200. */
	if (strcmp(req->method, "POST") == 0 && req->out && req->out->size > 0 &&
	    memmem(req->out->data, req->out->size, "<Error>", 7))
		return judge_error(req, 500, req->out->data, req->out->size);
	return judge_body(req);
}

void s3_req_release(struct s3_req *req)
{
	curl_slist_free_all(req->headers);
	req->headers = NULL;
	s3_buf_free(&req->errbody);
}

unsigned s3_backoff_ms(struct s3_client *c, unsigned tries)
{
	uint64_t cap = c->cfg.base_ms;

	for (unsigned i = 1; i < tries && cap < c->cfg.max_ms; i++)
		cap *= 2;
	if (cap > c->cfg.max_ms)
		cap = c->cfg.max_ms;
	/* xorshift64*: jitter needs no more. */
	c->rng ^= c->rng >> 12;
	c->rng ^= c->rng << 25;
	c->rng ^= c->rng >> 27;
	uint64_t x = c->rng * 0x2545F4914F6CDD1DULL;
	return (unsigned)(x % (cap + 1));
}

void s3_req_fail(struct s3_client *c, const struct s3_req *req)
{
	char tries[32] = "";

	if (req->tries > 1)
		snprintf(tries, sizeof(tries), " (after %u tries)", req->tries);
	s3_set_error(c, "%s s3://%s/%s%s: %s%s", req->method, c->bucket, req->key ? req->key : "",
		     req->detail ? req->detail : "", req->reason, tries);
}
