/* remote_upload.c: a remote store's packs uploaded as they are sealed, while
 * the writer goes on compressing: one thread per writer session with a
 * client of its own, taking sealed packs in the order they were sealed (so
 * that when a rolled-back pack's number is sealed again, the later upload
 * lands last), each under its final key (packs/N-S.pack). The push then
 * waits for the packs its table lists; one whose upload failed, or was
 * never queued, it uploads itself. Nothing here is visible to readers
 * before the pointer names a manifest that lists the pack.
 */
#include "remote.h"

#include "s3.h"
#include "store_internal.h"

#include <fcntl.h>
#include <string.h>

#define UPLOAD_PARALLEL 4
#define FULL_KEY_MAX    (REMOTE_PREFIX_MAX + REMOTE_KEY_MAX + 2)

enum { JOB_QUEUED = 0, JOB_RUNNING = 1, JOB_DONE = 2 }; /* else -errno: failed */

struct upload_job {
	uint32_t pack_num;
	uint64_t size;
	int state;
};

struct remote_uploader {
	pthread_t thread;
	pthread_mutex_t lock; /* protects jobs, count, cap, stop */
	pthread_cond_t cond;  /* a job queued or finished, or stop */
	bool stop;
	struct upload_job *jobs;
	size_t count, cap;
	struct s3_client *client;
	int packs_fd;
	const struct remote_state *rs; /* url and session: fixed while it runs */
};

static int upload_one(struct remote_uploader *up, uint32_t pack_num, uint64_t size)
{
	char name[32], rel[REMOTE_KEY_MAX], key[FULL_KEY_MAX];

	pack_name(pack_num, name);
	_cleanup_close_ int fd = cairn_open_file_beneath(up->packs_fd, name, O_RDONLY, 0);
	if (fd < 0)
		return fd;
	remote_pack_key(rel, pack_num, up->rs->session);
	return s3_put_file(up->client, remote_key(&up->rs->url, rel, key, sizeof(key)), fd, size, 0,
			   UPLOAD_PARALLEL);
}

static void *upload_main(void *arg)
{
	struct remote_uploader *up = arg;
	size_t next = 0;

	pthread_mutex_lock(&up->lock);
	for (;;) {
		if (next == up->count) {
			if (up->stop)
				break;
			pthread_cond_wait(&up->cond, &up->lock);
			continue;
		}
		size_t i = next++;
		if (up->stop) { /* the writer is gone: nobody waits for the rest */
			up->jobs[i].state = -ECANCELED;
			continue;
		}
		up->jobs[i].state = JOB_RUNNING;
		uint32_t pack_num = up->jobs[i].pack_num;
		uint64_t size = up->jobs[i].size;
		pthread_mutex_unlock(&up->lock);
		int r = upload_one(up, pack_num, size);
		pthread_mutex_lock(&up->lock);
		up->jobs[i].state = r < 0 ? r : JOB_DONE;
		pthread_cond_broadcast(&up->cond);
	}
	pthread_mutex_unlock(&up->lock);
	return NULL;
}

int remote_uploader_start(struct remote_state *rs, int packs_fd)
{
	struct remote_uploader *up = calloc(1, sizeof(*up));

	if (!up)
		return -ENOMEM;
	up->rs = rs;
	up->packs_fd = fcntl(packs_fd, F_DUPFD_CLOEXEC, 0);
	pthread_mutex_init(&up->lock, NULL);
	pthread_cond_init(&up->cond, NULL);
	int r = up->packs_fd < 0 ? -errno : s3_client_new(rs->cfg, rs->url.bucket, &up->client);
	if (r == 0)
		r = -pthread_create(&up->thread, NULL, upload_main, up);
	if (r < 0) {
		s3_client_free(up->client);
		if (up->packs_fd >= 0)
			close(up->packs_fd);
		pthread_cond_destroy(&up->cond);
		pthread_mutex_destroy(&up->lock);
		free(up);
		return r;
	}
	rs->uploader = up;
	return 0;
}

void remote_uploader_stop(struct remote_state *rs)
{
	struct remote_uploader *up = rs->uploader;

	if (!up)
		return;
	pthread_mutex_lock(&up->lock);
	up->stop = true;
	pthread_cond_broadcast(&up->cond);
	pthread_mutex_unlock(&up->lock);
	pthread_join(up->thread, NULL);
	s3_client_free(up->client);
	close(up->packs_fd);
	pthread_cond_destroy(&up->cond);
	pthread_mutex_destroy(&up->lock);
	free(up->jobs);
	free(up);
	rs->uploader = NULL;
}

void store_remote_pack_sealed(const struct cairn_store *store, uint32_t pack_num, uint64_t size)
{
	struct remote_uploader *up = store->remote ? store->remote->uploader : NULL;

	if (!up)
		return;
	pthread_mutex_lock(&up->lock);
	if (up->count == up->cap) {
		size_t cap = up->cap ? up->cap * 2 : 16;
		struct upload_job *jobs = realloc(up->jobs, cap * sizeof(*jobs));
		if (!jobs) { /* the push uploads it itself */
			pthread_mutex_unlock(&up->lock);
			return;
		}
		up->jobs = jobs;
		up->cap = cap;
	}
	up->jobs[up->count++] = (struct upload_job){.pack_num = pack_num, .size = size};
	pthread_cond_broadcast(&up->cond);
	pthread_mutex_unlock(&up->lock);
}

int remote_uploader_wait(struct remote_state *rs, uint32_t pack_num, uint64_t size)
{
	struct remote_uploader *up = rs->uploader;
	int r = 0;

	if (!up)
		return 0;
	pthread_mutex_lock(&up->lock);
	/* the last one sealed under that number is the pack the table lists */
	size_t i = up->count;
	while (i > 0 && up->jobs[i - 1].pack_num != pack_num)
		i--;
	if (i > 0 && up->jobs[i - 1].size == size) {
		while (up->jobs[i - 1].state == JOB_QUEUED || up->jobs[i - 1].state == JOB_RUNNING)
			pthread_cond_wait(&up->cond, &up->lock);
		r = up->jobs[i - 1].state == JOB_DONE ? 1 : up->jobs[i - 1].state;
	}
	pthread_mutex_unlock(&up->lock);
	return r;
}
