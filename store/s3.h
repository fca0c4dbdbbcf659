/* s3.h: a client of the common core of the S3 API over libcurl, signed
 * with AWS SigV4 (curl's CURLOPT_AWS_SIGV4). The calls it makes, and the
 * only ones cairn needs from an engine: GetObject (with Range), PutObject,
 * HeadObject, DeleteObject, ListObjectsV2, CreateMultipartUpload,
 * UploadPart, CompleteMultipartUpload, AbortMultipartUpload. No
 * conditional writes, no bucket calls, no aws-chunked bodies, so AWS S3,
 * Ceph RGW, MinIO and Swift's s3api all serve it.
 *
 * Every call retries what may pass on a second try (timeouts, refused or
 * dropped connections, a body shorter or longer than announced, 500, 502,
 * 503, 504, SlowDown, RequestTimeout, InternalError) with exponential
 * backoff and full jitter, a bounded number of times, then fails with
 * -EIO and a message. Bodies sent carry their SHA-256 (signed) and
 * Content-MD5, so the engine refuses one damaged on the way; bodies
 * received are checked against their announced length only: what they
 * hold is checked by the caller (chunk ids, checksums), which asks again
 * on a mismatch.
 *
 * Internal to store/ (CAIRN_BUILDING_STORE). A client is used by one
 * thread at a time; make one per thread (they share only the config). No
 * message ever holds a credential, nor a signature.
 */
#ifndef CAIRN_S3_H
#define CAIRN_S3_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Where and as whom: filled by s3_config_load by the AWS conventions. */
struct s3_config {
	char *endpoint; /* scheme://host[:port], no trailing '/' */
	char *region;
	char *access_key, *secret_key, *session_token; /* session_token may be NULL */
	bool path_style; /* https://endpoint/BUCKET/KEY, not https://BUCKET.endpoint/KEY */
	/* Retries after the first try (default 5); backoff from base_ms
	 * (default 100) doubling up to max_ms (default 5000), full jitter. */
	unsigned retries, base_ms, max_ms;
	unsigned timeout_s; /* a request that moves no byte for this long fails (default 30) */
};

/* Endpoint: AWS_ENDPOINT_URL_S3, AWS_ENDPOINT_URL, the profile's
 * endpoint_url, else https://s3.REGION.amazonaws.com. Region: AWS_REGION,
 * AWS_DEFAULT_REGION, the profile's region, else us-east-1. Credentials:
 * AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY and AWS_SESSION_TOKEN, else the
 * profile's in the credentials file (AWS_SHARED_CREDENTIALS_FILE, else
 * ~/.aws/credentials, section [PROFILE]) or the config file
 * (AWS_CONFIG_FILE, else ~/.aws/config, section [profile PROFILE] or
 * [default]); PROFILE is AWS_PROFILE, else default. Path-style addressing
 * when an endpoint is given, unless the profile's s3 addressing_style is
 * virtual; virtual-hosted for AWS. Returns 0, or -errno with a message in
 * why (e.g. "no S3 credentials: set AWS_ACCESS_KEY_ID and
 * AWS_SECRET_ACCESS_KEY, or AWS_PROFILE"). */
int s3_config_load(struct s3_config *cfg, char *why, size_t why_size);
/* Wipes the secrets and frees the strings. */
void s3_config_free(struct s3_config *cfg);

struct s3_client;

/* A client for bucket under cfg (copied). Returns 0, -ENOMEM, or -ENOSYS
 * when libcurl cannot be opened (curl_dl_load's why says what is
 * missing). */
int s3_client_new(const struct s3_config *cfg, const char *bucket, struct s3_client **ret);
void s3_client_free(struct s3_client *c);
/* The last failure: the call, the key, and why (HTTP status and the S3
 * error code, or curl's reason), e.g. "GET s3://b/p/packs/00000001.pack
 * bytes 0-65535: 503 SlowDown (after 6 tries)". */
const char *s3_error(const struct s3_client *c);
/* How many requests were sent (tries included), and bytes received: for
 * stats and benchmarks. */
void s3_counters(const struct s3_client *c, uint64_t *requests, uint64_t *bytes_in);
/* Asks for ListObjectsV2 pages of at most max_keys keys (0: the engine's
 * default, 1000 on most): for tests that need several pages. */
void s3_client_set_list_page(struct s3_client *c, unsigned max_keys);

/* A growable buffer a GET fills. */
struct s3_buf {
	uint8_t *data;
	size_t size, cap;
};
void s3_buf_free(struct s3_buf *buf);

/* GetObject: key's bytes [offset, offset + size); size UINT64_MAX reads to
 * the end. A range that reaches past the end is an error (-EIO), as is a
 * body of another length than asked. Returns 0, -ENOENT (no such key), or
 * -EIO/-EACCES/-ENOMEM with s3_error. out is replaced. */
int s3_get(struct s3_client *c, const char *key, uint64_t offset, uint64_t size,
	   struct s3_buf *out);

/* Several range GETs at once, up to parallel in flight (curl multi, one
 * connection each, kept alive). Each range's bytes land in its dest (size
 * bytes); each gets its own result (0 or -errno) after its own retries.
 * Returns 0 when all succeeded, else the first failure's -errno (s3_error
 * names it). */
struct s3_range {
	const char *key;
	uint64_t offset, size;
	void *dest;
	int result;
};
int s3_get_ranges(struct s3_client *c, struct s3_range *ranges, size_t count, unsigned parallel);

/* Range GETs as a stream, up to parallel in flight, with no barrier: each
 * time a slot (0 .. parallel - 1) is free, next fills *range for it (its
 * dest the caller's, for that slot) and returns 1, or 0 when it has none
 * now (asked again a few ms later while others run), or -1 to stop (GETs
 * in flight abandoned). done gets each range back with its result (after
 * its own retries; -ECANCELED when abandoned). Returns when next has none
 * and none is in flight: 0, or -ECANCELED when stopped; -ENOMEM. stopped
 * (optional, called from the stream's thread between polls) returning
 * true stops it at once, even while every slot is busy. */
struct s3_stream_ops {
	int (*next)(void *userdata, unsigned slot, struct s3_range *range);
	void (*done)(void *userdata, unsigned slot, const struct s3_range *range);
	bool (*stopped)(void *userdata);
};
int s3_get_stream(struct s3_client *c, unsigned parallel, const struct s3_stream_ops *ops,
		  void *userdata);

/* PutObject of size bytes. Returns 0 or -errno. */
int s3_put(struct s3_client *c, const char *key, const void *data, size_t size);
/* An object from fd's bytes [0, size): one PutObject up to part_size
 * (0: 16 MiB), else a multipart upload of part_size parts (>= 5 MiB; the
 * last may be smaller), up to parallel parts in flight, aborted on
 * failure. Returns 0 or -errno. */
int s3_put_file(struct s3_client *c, const char *key, int fd, uint64_t size, size_t part_size,
		unsigned parallel);
/* HeadObject: 0 with *size set, -ENOENT, or -errno. */
int s3_head(struct s3_client *c, const char *key, uint64_t *size);
/* DeleteObject: 0, also when there was no such key. */
int s3_delete(struct s3_client *c, const char *key);
/* ListObjectsV2 of the keys that start with prefix, page by page; fn is
 * called once per key (mtime: LastModified, seconds since the epoch); a
 * non-zero return stops the listing and is returned. */
typedef int (*s3_list_fn)(void *userdata, const char *key, uint64_t size, int64_t mtime);
int s3_list(struct s3_client *c, const char *prefix, s3_list_fn fn, void *userdata);

#endif
