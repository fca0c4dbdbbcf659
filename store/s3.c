/* s3.c: the S3 client's handle and its single calls (GetObject, PutObject,
 * HeadObject, DeleteObject, ListObjectsV2), each a request of s3_req.c run
 * on the client's one easy handle, so its connection stays open from call
 * to call, with the retries the header promises.
 */
#include "s3_internal.h"

#include "crypto_dl.h"
#include "curl_dl.h"
#include "util.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

void s3_set_error(struct s3_client *c, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(c->error, sizeof(c->error), fmt, ap);
	va_end(ap);
}

static int config_copy(struct s3_config *dst, const struct s3_config *src)
{
	*dst = *src;
	dst->endpoint = strdup(src->endpoint ? src->endpoint : "");
	dst->region = strdup(src->region ? src->region : "us-east-1");
	dst->access_key = strdup(src->access_key ? src->access_key : "");
	dst->secret_key = strdup(src->secret_key ? src->secret_key : "");
	dst->session_token = src->session_token ? strdup(src->session_token) : NULL;
	if (!dst->endpoint || !dst->region || !dst->access_key || !dst->secret_key ||
	    (src->session_token && !dst->session_token))
		return -ENOMEM;
	if (dst->base_ms == 0)
		dst->base_ms = 1;
	if (dst->max_ms < dst->base_ms)
		dst->max_ms = dst->base_ms;
	return 0;
}

int s3_client_new(const struct s3_config *cfg, const char *bucket, struct s3_client **ret)
{
	struct s3_client *c;

	char why[256];

	/* libcurl and libcrypto are opened now, on first use (curl_dl.c,
	 * crypto_dl.c). */
	if (curl_dl_load(why, sizeof(why)) < 0 || crypto_dl_load(why, sizeof(why)) < 0)
		return -ENOSYS;
	c = calloc(1, sizeof(*c));
	if (!c)
		return -ENOMEM;
	int r = config_copy(&c->cfg, cfg);
	c->bucket = strdup(bucket);
	c->easy = curl_easy_init();
	if (r < 0 || !c->bucket || !c->easy ||
	    asprintf(&c->sigv4, "aws:amz:%s:s3", c->cfg.region) < 0) {
		c->sigv4 = NULL;
		s3_client_free(c);
		return -ENOMEM;
	}
	if (getrandom(&c->rng, sizeof(c->rng), GRND_NONBLOCK) != sizeof(c->rng))
		c->rng = (uint64_t)time(NULL) ^ ((uint64_t)getpid() << 32);
	c->rng |= 1;
	*ret = c;
	return 0;
}

void s3_client_free(struct s3_client *c)
{
	if (!c)
		return;
	for (size_t i = 0; i < S3_POOL_MAX; i++) {
		if (c->pool[i]) {
			if (c->multi)
				curl_multi_remove_handle(c->multi, c->pool[i]);
			curl_easy_cleanup(c->pool[i]);
		}
	}
	if (c->multi)
		curl_multi_cleanup(c->multi);
	if (c->easy)
		curl_easy_cleanup(c->easy);
	s3_config_free(&c->cfg);
	free(c->bucket);
	free(c->sigv4);
	free(c);
}

const char *s3_error(const struct s3_client *c)
{
	return c->error;
}

void s3_counters(const struct s3_client *c, uint64_t *requests, uint64_t *bytes_in)
{
	if (requests)
		*requests = c->requests;
	if (bytes_in)
		*bytes_in = c->bytes_in;
}

void s3_client_set_list_page(struct s3_client *c, unsigned max_keys)
{
	c->list_page = max_keys;
}

static void sleep_ms(unsigned ms)
{
	struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L};

	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

int s3_call(struct s3_client *c, struct s3_req *req)
{
	int r;

	req->tries = 0;
	for (;;) {
		r = s3_req_setup(c, c->easy, req);
		if (r < 0)
			break;
		CURLcode code = curl_easy_perform(c->easy);
		r = s3_req_judge(c, c->easy, req, code);
		if (r != -EAGAIN)
			break;
		if (req->tries > c->cfg.retries) {
			r = -EIO;
			break;
		}
		sleep_ms(s3_backoff_ms(c, req->tries));
	}
	if (r < 0)
		s3_req_fail(c, req);
	return r;
}

int s3_get(struct s3_client *c, const char *key, uint64_t offset, uint64_t size, struct s3_buf *out)
{
	struct s3_buf buf = {0};
	char detail[64] = "";

	if (size == 0) {
		s3_buf_free(out);
		return 0;
	}
	if (size != UINT64_MAX && offset + size < offset) {
		s3_set_error(c, "GET s3://%s/%s: a range past 2^64", c->bucket, key);
		return -EINVAL;
	}
	bool range = offset != 0 || size != UINT64_MAX;
	if (range && size == UINT64_MAX)
		snprintf(detail, sizeof(detail), " bytes %" PRIu64 "-", offset);
	else if (range)
		snprintf(detail, sizeof(detail), " bytes %" PRIu64 "-%" PRIu64, offset,
			 offset + size - 1);
	struct s3_req req = {.method = "GET",
			     .key = key,
			     .detail = detail,
			     .range = range,
			     .offset = offset,
			     .size = size,
			     .out = &buf};
	int r = s3_call(c, &req);
	s3_req_release(&req);
	if (r < 0) {
		s3_buf_free(&buf);
		return r;
	}
	s3_buf_free(out);
	*out = buf;
	return 0;
}

int s3_put(struct s3_client *c, const char *key, const void *data, size_t size)
{
	struct s3_req req = {
		.method = "PUT", .key = key, .body = data ? data : "", .body_size = size};
	int r = s3_call(c, &req);

	s3_req_release(&req);
	return r;
}

int s3_head(struct s3_client *c, const char *key, uint64_t *size)
{
	struct s3_req req = {.method = "HEAD", .key = key};
	int r = s3_call(c, &req);

	s3_req_release(&req);
	if (r < 0)
		return r;
	if (!req.announced_known) {
		s3_set_error(c, "HEAD s3://%s/%s: no Content-Length in the answer", c->bucket, key);
		return -EIO;
	}
	*size = req.announced;
	return 0;
}

int s3_delete(struct s3_client *c, const char *key)
{
	struct s3_req req = {.method = "DELETE", .key = key};
	int r = s3_call(c, &req);

	s3_req_release(&req);
	if (r == -ENOENT) {
		c->error[0] = '\0';
		return 0;
	}
	return r;
}

/* "[continuation-token=T&]list-type=2[&max-keys=N]&prefix=P": curl 7.88
 * signs the query as it is given, so it is given in SigV4's order. */
static char *list_query(const struct s3_client *c, const char *prefix, const char *token)
{
	_cleanup_free_ char *enc_prefix = s3_uri_encode(prefix, false);
	_cleanup_free_ char *enc_token = token ? s3_uri_encode(token, false) : NULL;
	char max_keys[32] = "", *query = NULL;

	if (!enc_prefix || (token && !enc_token))
		return NULL;
	if (c->list_page)
		snprintf(max_keys, sizeof(max_keys), "&max-keys=%u", c->list_page);
	if (asprintf(&query, "%s%s%slist-type=2%s&prefix=%s", token ? "continuation-token=" : "",
		     token ? enc_token : "", token ? "&" : "", max_keys, enc_prefix) < 0)
		return NULL;
	return query;
}

/* Calls fn for each <Contents> of a page. */
static int list_page(struct s3_client *c, const struct s3_buf *page, const char *prefix,
		     s3_list_fn fn, void *userdata)
{
	const char *pos = (const char *)page->data, *end = pos + page->size, *item;
	size_t item_len, len;

	while ((item = s3_xml_find(&pos, end, "Contents", &item_len))) {
		const char *in = item, *in_end = item + item_len, *text;
		text = s3_xml_find(&in, in_end, "Key", &len);
		_cleanup_free_ char *key = text ? s3_xml_text(text, len) : NULL;
		in = item;
		const char *size_text = s3_xml_find(&in, in_end, "Size", &len);
		uint64_t size = size_text ? strtoull(size_text, NULL, 10) : 0;
		in = item;
		text = s3_xml_find(&in, in_end, "LastModified", &len);
		int64_t mtime = text ? s3_xml_time(text, len) : -1;
		if (!key || !size_text) {
			s3_set_error(
				c, "GET s3://%s/%s (ListObjectsV2): an entry without a key or size",
				c->bucket, prefix);
			return -EIO;
		}
		int r = fn(userdata, key, size, mtime);
		if (r != 0)
			return r;
	}
	return 0;
}

/* The next page's token, or NULL at the end (r set on error). */
static char *list_next(struct s3_client *c, const struct s3_buf *page, const char *prefix, int *r)
{
	const char *pos = (const char *)page->data, *end = pos + page->size, *text;
	size_t len;

	*r = 0;
	text = s3_xml_find(&pos, end, "IsTruncated", &len);
	if (!text || len != 4 || memcmp(text, "true", 4) != 0)
		return NULL;
	pos = (const char *)page->data;
	text = s3_xml_find(&pos, end, "NextContinuationToken", &len);
	char *token = text && len > 0 ? s3_xml_text(text, len) : NULL;
	if (!token) {
		s3_set_error(c, "GET s3://%s/%s (ListObjectsV2): a truncated page without a token",
			     c->bucket, prefix);
		*r = -EIO;
	}
	return token;
}

int s3_list(struct s3_client *c, const char *prefix, s3_list_fn fn, void *userdata)
{
	_cleanup_free_ char *token = NULL, *detail = NULL;
	struct s3_buf page = {0};
	int r = 0;

	if (asprintf(&detail, "%s (ListObjectsV2)", prefix) < 0)
		return -ENOMEM;
	do {
		_cleanup_free_ char *query = list_query(c, prefix, token);
		if (!query) {
			r = -ENOMEM;
			break;
		}
		struct s3_req req = {
			.method = "GET", .query = query, .detail = detail, .out = &page};
		r = s3_call(c, &req);
		s3_req_release(&req);
		if (r == 0)
			r = list_page(c, &page, prefix, fn, userdata);
		free(token);
		token = r == 0 ? list_next(c, &page, prefix, &r) : NULL;
	} while (r == 0 && token);
	s3_buf_free(&page);
	return r;
}
