/* s3_multi.c: requests in parallel over one curl multi handle and a small
 * pool of easy handles kept by the client (their connections stay open
 * from call to call): range GETs written straight into their destinations,
 * and multipart uploads read part by part from a file. Each request
 * retries on its own, after its own backoff, while the others go on; a
 * request waiting out its backoff holds no connection.
 */
#include "s3_internal.h"

#include "util.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define MiB (1024u * 1024u)

/* One request of a parallel run; req first, so a handle's private
 * pointer (the req) is also the job's. */
struct s3_job {
	struct s3_req req;
	int64_t not_before; /* ms of CLOCK_MONOTONIC */
	int result;
	bool running, done;
	char detail[48];
};

/* Called before each try (a part's bytes read) and after it (freed); the
 * second gets the try's judgement. */
struct job_ops {
	int (*begin)(void *userdata, struct s3_job *job);
	void (*end)(void *userdata, struct s3_job *job, int r);
	bool stop_on_failure;
};

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Clamps *parallel to 1..S3_POOL_MAX and makes that many handles ready.
 * Returns 0, or -ENOMEM with s3_error saying so. */
static int pool_ready(struct s3_client *c, unsigned *parallel)
{
	if (*parallel == 0)
		*parallel = 1;
	if (*parallel > S3_POOL_MAX)
		*parallel = S3_POOL_MAX;
	if (!c->multi) {
		c->multi = curl_multi_init();
		if (c->multi)
			curl_multi_setopt(c->multi, CURLMOPT_MAXCONNECTS, (long)S3_POOL_MAX);
	}
	bool ready = c->multi != NULL;
	for (unsigned i = 0; ready && i < *parallel; i++) {
		if (!c->pool[i])
			c->pool[i] = curl_easy_init();
		ready = c->pool[i] != NULL;
	}
	if (!ready) {
		s3_set_error(c, "s3://%s: out of memory for curl handles", c->bucket);
		return -ENOMEM;
	}
	return 0;
}

struct run {
	struct s3_client *c;
	struct s3_job *jobs;
	size_t count, done, running, first_undone;
	const struct job_ops *ops;
	void *userdata;
	CURL *idle[S3_POOL_MAX];
	size_t idle_count;
	int first_failure;
	bool stopped;
};

static void job_finish(struct run *run, struct s3_job *job, int r)
{
	job->done = true;
	job->result = r;
	run->done++;
	if (r < 0 && run->first_failure == 0) {
		run->first_failure = r;
		s3_req_fail(run->c, &job->req);
	}
	if (r < 0 && run->ops && run->ops->stop_on_failure)
		run->stopped = true;
}

static void job_start(struct run *run, struct s3_job *job)
{
	CURL *easy = run->idle[--run->idle_count];
	int r = run->ops && run->ops->begin ? run->ops->begin(run->userdata, job) : 0;

	if (r == 0)
		r = s3_req_setup(run->c, easy, &job->req);
	if (r == 0 && curl_multi_add_handle(run->c->multi, easy) != CURLM_OK) {
		snprintf(job->req.reason, sizeof(job->req.reason), "curl could not start it");
		r = -ENOMEM;
	}
	if (r < 0) {
		if (run->ops && run->ops->end)
			run->ops->end(run->userdata, job, r);
		run->idle[run->idle_count++] = easy;
		job_finish(run, job, r);
		return;
	}
	job->running = true;
	run->running++;
}

/* Starts what may start; returns the ms until a waiting job may (or 1000). */
static long start_jobs(struct run *run)
{
	int64_t now = now_ms(), wait = 1000;

	while (run->first_undone < run->count && run->jobs[run->first_undone].done)
		run->first_undone++;
	for (size_t i = run->first_undone; i < run->count && !run->stopped; i++) {
		struct s3_job *job = &run->jobs[i];
		if (job->done || job->running)
			continue;
		if (job->not_before > now) {
			if (job->not_before - now < wait)
				wait = job->not_before - now;
			continue;
		}
		if (run->idle_count == 0)
			break;
		job_start(run, job);
	}
	return (long)wait;
}

static void collect(struct run *run)
{
	struct s3_client *c = run->c;
	CURLMsg *msg;
	int left;

	while ((msg = curl_multi_info_read(c->multi, &left))) {
		if (msg->msg != CURLMSG_DONE)
			continue;
		CURL *easy = msg->easy_handle;
		CURLcode code = msg->data.result;
		struct s3_job *job = NULL;
		curl_easy_getinfo(easy, CURLINFO_PRIVATE, (char **)&job);
		curl_multi_remove_handle(c->multi, easy);
		run->idle[run->idle_count++] = easy;
		job->running = false;
		run->running--;
		int r = s3_req_judge(c, easy, &job->req, code);
		if (run->ops && run->ops->end)
			run->ops->end(run->userdata, job, r);
		if (r == -EAGAIN && job->req.tries <= c->cfg.retries && !run->stopped) {
			job->not_before = now_ms() + s3_backoff_ms(c, job->req.tries);
			continue;
		}
		job_finish(run, job, r == -EAGAIN ? -EIO : r);
	}
}

/* Runs the jobs, up to parallel at once. Returns 0, or the first
 * failure's -errno with s3_error naming it. */
static int run_jobs(struct s3_client *c, struct s3_job *jobs, size_t count, unsigned parallel,
		    const struct job_ops *ops, void *userdata)
{
	struct run run = {.c = c, .jobs = jobs, .count = count, .ops = ops, .userdata = userdata};

	if (pool_ready(c, &parallel) < 0)
		return -ENOMEM;
	for (unsigned i = 0; i < parallel; i++)
		run.idle[run.idle_count++] = c->pool[i];
	while (run.done < count && !(run.stopped && run.running == 0)) {
		long wait = start_jobs(&run);
		int still = 0;
		if (run.running > 0) {
			curl_multi_perform(c->multi, &still);
			collect(&run);
			if (run.running > 0)
				curl_multi_poll(c->multi, NULL, 0, (int)wait, NULL);
		} else if (run.done < count && !run.stopped) {
			struct timespec ts = {.tv_sec = wait / 1000,
					      .tv_nsec = (wait % 1000) * 1000000L};
			nanosleep(&ts, NULL);
		}
	}
	for (size_t i = 0; i < count; i++)
		s3_req_release(&jobs[i].req);
	return run.first_failure;
}

/* A range GET's job; one no request could fetch is done at once. */
static void range_job(struct s3_job *job, const struct s3_range *range)
{
	snprintf(job->detail, sizeof(job->detail), " bytes %" PRIu64 "-%" PRIu64, range->offset,
		 range->offset + range->size - 1);
	job->req = (struct s3_req){.method = "GET",
				   .key = range->key,
				   .detail = job->detail,
				   .range = true,
				   .offset = range->offset,
				   .size = range->size,
				   .dest = range->dest,
				   .dest_size = range->size};
	job->not_before = 0;
	job->running = false;
	job->done = range->size == 0 || range->size > SIZE_MAX ||
		    range->offset + range->size < range->offset;
	job->result = range->size == 0 ? 0 : -EINVAL;
}

int s3_get_ranges(struct s3_client *c, struct s3_range *ranges, size_t count, unsigned parallel)
{
	_cleanup_free_ struct s3_job *jobs = calloc(count ? count : 1, sizeof(*jobs));

	if (!jobs) {
		s3_set_error(c, "s3://%s: out of memory for %zu ranges", c->bucket, count);
		return -ENOMEM;
	}
	for (size_t i = 0; i < count; i++)
		range_job(&jobs[i], &ranges[i]);
	int r = run_jobs(c, jobs, count, parallel, NULL, NULL);
	for (size_t i = 0; i < count; i++)
		ranges[i].result = jobs[i].result;
	for (size_t i = 0; i < count && r == 0; i++) {
		if (ranges[i].result < 0) {
			r = ranges[i].result;
			s3_set_error(c, "GET s3://%s/%s%s: a range past 2^64", c->bucket,
				     ranges[i].key, jobs[i].detail);
		}
	}
	return r;
}

/* ---- a stream of range GETs ---- */

/* Hands the finished jobs of the stream's slots to ops->done. */
static size_t stream_reap(struct s3_job *jobs, struct s3_range *ranges, bool *used,
			  unsigned parallel, const struct s3_stream_ops *ops, void *userdata,
			  int override)
{
	size_t reaped = 0;

	for (unsigned i = 0; i < parallel; i++) {
		if (!used[i] || (!jobs[i].done && !override))
			continue;
		ranges[i].result = jobs[i].done ? jobs[i].result : override;
		s3_req_release(&jobs[i].req);
		jobs[i].done = true;
		used[i] = false;
		reaped++;
		ops->done(userdata, i, &ranges[i]);
	}
	return reaped;
}

int s3_get_stream(struct s3_client *c, unsigned parallel, const struct s3_stream_ops *ops,
		  void *userdata)
{
	struct s3_job jobs[S3_POOL_MAX];
	struct s3_range ranges[S3_POOL_MAX];
	bool used[S3_POOL_MAX] = {false};
	size_t in_use = 0;
	struct run run = {.c = c, .jobs = jobs};

	if (pool_ready(c, &parallel) < 0)
		return -ENOMEM;
	memset(jobs, 0, sizeof(jobs));
	run.count = parallel;
	for (unsigned i = 0; i < parallel; i++) {
		jobs[i].done = true; /* a free slot */
		run.idle[run.idle_count++] = c->pool[i];
	}
	for (;;) {
		bool drained = false;
		for (unsigned i = 0; i < parallel && !drained && !run.stopped; i++) {
			if (used[i])
				continue;
			int n = ops->next(userdata, i, &ranges[i]);
			if (n < 0)
				run.stopped = true;
			else if (n == 0)
				drained = true;
			else {
				range_job(&jobs[i], &ranges[i]);
				used[i] = true;
				in_use++;
			}
		}
		if (!run.stopped && ops->stopped && ops->stopped(userdata))
			run.stopped = true;
		if (run.stopped || in_use == 0)
			break;
		run.first_undone = 0;
		long wait = start_jobs(&run);
		int still = 0;
		if (run.running > 0) {
			curl_multi_perform(c->multi, &still);
			collect(&run);
		}
		in_use -= stream_reap(jobs, ranges, used, parallel, ops, userdata, 0);
		/* A free slot may get work from another thread: look again soon. */
		if (in_use < parallel && wait > 5)
			wait = 5;
		if (run.running > 0)
			curl_multi_poll(c->multi, NULL, 0, (int)wait, NULL);
		else if (in_use > 0) {
			struct timespec ts = {.tv_sec = wait / 1000,
					      .tv_nsec = (wait % 1000) * 1000000L};
			nanosleep(&ts, NULL);
		}
	}
	/* Stopped: what still runs is abandoned. */
	for (unsigned i = 0; i < parallel; i++)
		curl_multi_remove_handle(c->multi, c->pool[i]);
	stream_reap(jobs, ranges, used, parallel, ops, userdata, -ECANCELED);
	return run.stopped ? -ECANCELED : 0;
}

/* ---- multipart uploads ---- */

struct upload {
	struct s3_client *c;
	const char *key;
	char *upload_id, *enc_upload_id; /* as sent, and as put in a query */
	int fd;
	uint64_t size;
	size_t part_size, parts;
	char **etags;
	char **queries;
};

static int part_begin(void *userdata, struct s3_job *job)
{
	struct upload *up = userdata;
	size_t number = (size_t)strtoul(job->detail + 6, NULL, 10); /* " part N" */
	uint64_t offset = (uint64_t)(number - 1) * up->part_size;
	size_t len =
		offset + up->part_size > up->size ? (size_t)(up->size - offset) : up->part_size;
	void *body = malloc(len ? len : 1);

	if (!body) {
		snprintf(job->req.reason, sizeof(job->req.reason), "out of memory for a part");
		return -ENOMEM;
	}
	ssize_t got = cairn_pread_full(up->fd, body, len, offset);
	if (got != (ssize_t)len) {
		free(body);
		snprintf(job->req.reason, sizeof(job->req.reason), "reading the file: %s",
			 got < 0 ? strerror((int)-got) : "it is shorter than said");
		return got < 0 ? (int)got : -EIO;
	}
	job->req.body = body;
	job->req.body_size = len;
	return 0;
}

static void part_end(void *userdata, struct s3_job *job, int r)
{
	struct upload *up = userdata;
	size_t number = (size_t)strtoul(job->detail + 6, NULL, 10);

	free((void *)job->req.body);
	job->req.body = NULL;
	if (r == 0 && job->req.etag[0] && !up->etags[number - 1])
		up->etags[number - 1] = strdup(job->req.etag);
}

/* CreateMultipartUpload: "POST KEY?uploads=" (curl 7.88 signs a bare
 * "?uploads" as if it were "?uploads=" but sends it without, so the
 * engine's signature differs). */
static int upload_create(struct upload *up)
{
	struct s3_buf answer = {0};
	struct s3_req req = {.method = "POST",
			     .key = up->key,
			     .query = "uploads=",
			     .body = "",
			     .detail = " (CreateMultipartUpload)",
			     .out = &answer};
	int r = s3_call(up->c, &req);
	size_t len;

	s3_req_release(&req);
	if (r == 0) {
		const char *pos = (const char *)answer.data, *end = pos + answer.size;
		const char *text = s3_xml_find(&pos, end, "UploadId", &len);
		up->upload_id = text && len > 0 ? s3_xml_text(text, len) : NULL;
		up->enc_upload_id = up->upload_id ? s3_uri_encode(up->upload_id, false) : NULL;
		if (!up->enc_upload_id) {
			s3_set_error(
				up->c,
				"POST s3://%s/%s (CreateMultipartUpload): no UploadId in the answer",
				up->c->bucket, up->key);
			r = -EIO;
		}
	}
	s3_buf_free(&answer);
	return r;
}

static int upload_parts(struct upload *up, unsigned parallel)
{
	_cleanup_free_ struct s3_job *jobs = calloc(up->parts, sizeof(*jobs));
	const struct job_ops ops = {.begin = part_begin, .end = part_end, .stop_on_failure = true};

	up->etags = calloc(up->parts, sizeof(*up->etags));
	up->queries = calloc(up->parts, sizeof(*up->queries));
	if (!jobs || !up->etags || !up->queries)
		return -ENOMEM;
	for (size_t i = 0; i < up->parts; i++) {
		struct s3_job *job = &jobs[i];
		if (asprintf(&up->queries[i], "partNumber=%zu&uploadId=%s", i + 1,
			     up->enc_upload_id) < 0) {
			up->queries[i] = NULL;
			return -ENOMEM;
		}
		snprintf(job->detail, sizeof(job->detail), " part %zu", i + 1);
		job->req = (struct s3_req){.method = "PUT",
					   .key = up->key,
					   .query = up->queries[i],
					   .detail = job->detail};
	}
	int r = run_jobs(up->c, jobs, up->parts, parallel, &ops, up);
	for (size_t i = 0; i < up->parts && r == 0; i++) {
		if (!up->etags[i]) {
			s3_set_error(up->c, "PUT s3://%s/%s part %zu: no ETag in the answer",
				     up->c->bucket, up->key, i + 1);
			r = -EIO;
		}
	}
	return r;
}

/* A retried CompleteMultipartUpload that finds no upload: the try before
 * may have completed it and lost only the answer. The object of the size
 * sent says so. */
static int upload_completed_before(struct upload *up)
{
	char saved[sizeof(up->c->error)];
	uint64_t size = 0;

	memcpy(saved, up->c->error, sizeof(saved));
	if (s3_head(up->c, up->key, &size) == 0 && size == up->size) {
		up->c->error[0] = '\0';
		return 0;
	}
	memcpy(up->c->error, saved, sizeof(saved));
	return -ENOENT;
}

/* CompleteMultipartUpload, with the parts' ETags in order. */
static int upload_complete(struct upload *up)
{
	struct s3_buf xml = {0}, answer = {0};
	_cleanup_free_ char *query = NULL;
	char line[256];
	int r = 0;

	if (asprintf(&query, "uploadId=%s", up->enc_upload_id) < 0)
		return -ENOMEM;
	r = s3_buf_append(&xml, "<CompleteMultipartUpload>", 25);
	for (size_t i = 0; i < up->parts && r == 0; i++) {
		int n = snprintf(line, sizeof(line),
				 "<Part><PartNumber>%zu</PartNumber><ETag>%s</ETag></Part>", i + 1,
				 up->etags[i]);
		r = n < (int)sizeof(line) ? s3_buf_append(&xml, line, (size_t)n) : -E2BIG;
	}
	if (r == 0)
		r = s3_buf_append(&xml, "</CompleteMultipartUpload>", 26);
	if (r == 0) {
		struct s3_req req = {.method = "POST",
				     .key = up->key,
				     .query = query,
				     .body = xml.data,
				     .body_size = xml.size,
				     .detail = " (CompleteMultipartUpload)",
				     .out = &answer};
		r = s3_call(up->c, &req);
		s3_req_release(&req);
		if (r == -ENOENT && req.tries > 1)
			r = upload_completed_before(up);
	}
	s3_buf_free(&xml);
	s3_buf_free(&answer);
	return r;
}

/* AbortMultipartUpload, keeping the message of what failed before. */
static void upload_abort(struct upload *up)
{
	char saved[sizeof(up->c->error)];
	_cleanup_free_ char *query = NULL;

	memcpy(saved, up->c->error, sizeof(saved));
	if (asprintf(&query, "uploadId=%s", up->enc_upload_id) >= 0) {
		struct s3_req req = {.method = "DELETE",
				     .key = up->key,
				     .query = query,
				     .detail = " (AbortMultipartUpload)"};
		s3_call(up->c, &req);
		s3_req_release(&req);
	}
	memcpy(up->c->error, saved, sizeof(saved));
}

static void upload_release(struct upload *up)
{
	for (size_t i = 0; i < up->parts; i++) {
		if (up->etags)
			free(up->etags[i]);
		if (up->queries)
			free(up->queries[i]);
	}
	free(up->etags);
	free(up->queries);
	free(up->upload_id);
	free(up->enc_upload_id);
}

static int put_small(struct s3_client *c, const char *key, int fd, uint64_t size)
{
	_cleanup_free_ void *data = malloc(size ? size : 1);

	if (!data) {
		s3_set_error(c, "PUT s3://%s/%s: out of memory", c->bucket, key);
		return -ENOMEM;
	}
	ssize_t got = cairn_pread_full(fd, data, size, 0);
	if (got != (ssize_t)size) {
		s3_set_error(c, "PUT s3://%s/%s: reading the file: %s", c->bucket, key,
			     got < 0 ? strerror((int)-got) : "it is shorter than said");
		return got < 0 ? (int)got : -EIO;
	}
	return s3_put(c, key, data, size);
}

int s3_put_file(struct s3_client *c, const char *key, int fd, uint64_t size, size_t part_size,
		unsigned parallel)
{
	struct upload up = {.c = c, .key = key, .fd = fd, .size = size};
	int r;

	c->error[0] = '\0';
	if (part_size == 0)
		part_size = 16 * MiB;
	if (size <= part_size)
		return put_small(c, key, fd, size);
	if (part_size < 5 * MiB || (size + part_size - 1) / part_size > 10000) {
		s3_set_error(
			c,
			"PUT s3://%s/%s: parts of %zu bytes: want at least 5 MiB, at most 10000 parts",
			c->bucket, key, part_size);
		return -EINVAL;
	}
	up.part_size = part_size;
	up.parts = (size_t)((size + part_size - 1) / part_size);
	r = upload_create(&up);
	if (r < 0)
		return r;
	r = upload_parts(&up, parallel);
	if (r == -ENOMEM && !c->error[0])
		s3_set_error(c, "PUT s3://%s/%s: out of memory", c->bucket, key);
	if (r == 0)
		r = upload_complete(&up);
	if (r < 0)
		upload_abort(&up);
	upload_release(&up);
	return r;
}
