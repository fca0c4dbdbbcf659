/* remote_lock.c: the writer's lease on a remote store, `cairn-lock`
 * (docs/FORMAT.md "Remote stores"). Engines without conditional writes
 * (Swift 2.30 answers If-None-Match with 501) give no atomic test-and-set,
 * so a writer GETs the lease, and when there is none or it has expired, PUTs
 * its own, waits a settle time (2 s, and at least 4 times the PUT's round
 * trip) and GETs it back: of two writers that start together, both see the
 * one that PUT last, as long as no PUT takes longer than the settle time.
 * Before its pointer is written, a writer checks the lease is still its own
 * and the pointer still the one it started from.
 */
#include "remote.h"

#include "s3.h"
#include "store_internal.h"

#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#define LEASE_SECONDS 600
#define SETTLE_MS     2000
#define FULL_KEY_MAX  (REMOTE_PREFIX_MAX + REMOTE_KEY_MAX + 2)

/* ---- the lease ---- */

/* How long a lease runs: 10 minutes; CAIRN_REMOTE_LEASE_SECONDS (3 and
 * up) for the tests of its renewal. */
static int64_t lease_seconds(void)
{
	const char *env = getenv("CAIRN_REMOTE_LEASE_SECONDS");
	long v = env ? strtol(env, NULL, 10) : 0;

	return v >= 3 ? v : LEASE_SECONDS;
}

/* GET and parse through client c: 0, -ENOENT, -EBADMSG, -errno. */
static int lease_fetch(struct s3_client *c, const struct remote_url *url, struct remote_lease *ret,
		       char *why, size_t why_size)
{
	struct s3_buf buf = {0};
	char key[FULL_KEY_MAX];

	int r = s3_get(c, remote_key(url, REMOTE_LOCK_KEY, key, sizeof(key)), 0, UINT64_MAX, &buf);
	if (r == 0)
		r = remote_lease_parse((const char *)buf.data, buf.size, ret, why, why_size);
	s3_buf_free(&buf);
	return r;
}

/* PUT this session's lease through client c, running from now on. */
static int lease_store(struct s3_client *c, const struct remote_url *url, uint64_t session,
		       int64_t start)
{
	struct remote_lease lease = {.session = session, .pid = getpid(), .start = start};
	char key[FULL_KEY_MAX], text[700];

	gethostname(lease.host, sizeof(lease.host) - 1);
	lease.expires = time(NULL) + lease_seconds();
	int n = remote_lease_encode(&lease, text, sizeof(text));
	if (n < 0)
		return n;
	return s3_put(c, remote_key(url, REMOTE_LOCK_KEY, key, sizeof(key)), text, (size_t)n);
}

static int lease_get(struct remote_state *rs, struct remote_lease *ret)
{
	char why[100];

	int r = lease_fetch(rs->client, &rs->url, ret, why, sizeof(why));
	if (r == -EBADMSG)
		remote_set_error(rs, "%s/%s is damaged: it %s; delete it if no cairn writes there",
				 rs->display, REMOTE_LOCK_KEY, why);
	else if (r < 0 && r != -ENOENT)
		remote_set_error(rs, "%s", s3_error(rs->client));
	return r;
}

static int lease_put(struct remote_state *rs)
{
	rs->lease_start = time(NULL);
	int r = lease_store(rs->client, &rs->url, rs->session, rs->lease_start);
	if (r < 0)
		remote_set_error(rs, "%s", s3_error(rs->client));
	return r;
}

/* ---- renewal: a thread with a client of its own ---- */

struct lease_renewer {
	pthread_t thread;
	pthread_mutex_t lock; /* protects stop */
	pthread_cond_t cond;
	bool stop;
	struct s3_client *client;
	const struct remote_state *rs; /* url, session, lease_start: fixed while it runs */
};

/* Every 3/10 of the lease's time: PUT it again while it is still this
 * session's (one taken over after it expired stays the other writer's). */
static void *renew_main(void *arg)
{
	struct lease_renewer *lr = arg;
	const struct remote_state *rs = lr->rs;
	int64_t every = lease_seconds() * 3 / 10 > 1 ? lease_seconds() * 3 / 10 : 1;
	struct remote_lease lease;
	char why[100];

	pthread_mutex_lock(&lr->lock);
	while (!lr->stop) {
		struct timespec until;
		clock_gettime(CLOCK_REALTIME, &until);
		until.tv_sec += every;
		while (!lr->stop && pthread_cond_timedwait(&lr->cond, &lr->lock, &until) == 0)
			;
		if (lr->stop)
			break;
		pthread_mutex_unlock(&lr->lock);
		if (lease_fetch(lr->client, &rs->url, &lease, why, sizeof(why)) == 0 &&
		    lease.session == rs->session)
			lease_store(lr->client, &rs->url, rs->session, rs->lease_start);
		pthread_mutex_lock(&lr->lock);
	}
	pthread_mutex_unlock(&lr->lock);
	return NULL;
}

static void renew_stop(struct remote_state *rs)
{
	struct lease_renewer *lr = rs->renewer;

	if (!lr)
		return;
	pthread_mutex_lock(&lr->lock);
	lr->stop = true;
	pthread_cond_signal(&lr->cond);
	pthread_mutex_unlock(&lr->lock);
	pthread_join(lr->thread, NULL);
	pthread_cond_destroy(&lr->cond);
	pthread_mutex_destroy(&lr->lock);
	s3_client_free(lr->client);
	free(lr);
	rs->renewer = NULL;
}

static int renew_start(struct remote_state *rs)
{
	struct lease_renewer *lr = calloc(1, sizeof(*lr));

	if (!lr)
		return -ENOMEM;
	lr->rs = rs;
	pthread_mutex_init(&lr->lock, NULL);
	pthread_cond_init(&lr->cond, NULL);
	int r = s3_client_new(rs->cfg, rs->url.bucket, &lr->client);
	if (r == 0)
		r = -pthread_create(&lr->thread, NULL, renew_main, lr);
	if (r < 0) {
		s3_client_free(lr->client);
		pthread_cond_destroy(&lr->cond);
		pthread_mutex_destroy(&lr->lock);
		free(lr);
		remote_set_error(rs, "%s: starting the lease's renewal: %s", rs->display,
				 strerror(-r));
		return r;
	}
	rs->renewer = lr;
	return 0;
}

static void format_time(int64_t t, char *buf, size_t size)
{
	struct tm tm;
	time_t tt = (time_t)t;

	if (!gmtime_r(&tt, &tm) || strftime(buf, size, "%Y-%m-%d %H:%M:%S UTC", &tm) == 0)
		cairn_format(buf, size, "%" PRId64, t);
}

static int lease_busy(struct remote_state *rs, const struct remote_lease *other)
{
	char since[40], until[40];

	format_time(other->start, since, sizeof(since));
	format_time(other->expires, until, sizeof(until));
	remote_set_error(rs,
			 "%s is being written by %s (pid %" PRId64 ") since %s; its lease runs "
			 "until %s",
			 rs->display, other->host, other->pid, since, until);
	return -EBUSY;
}

/* Takes the lease, or -EBUSY when another writer holds one that has not
 * expired (a lease past its expiry is taken over). */
int remote_lease_take(struct remote_state *rs)
{
	struct remote_lease other;

	if (getrandom(&rs->session, sizeof(rs->session), 0) != sizeof(rs->session))
		return -errno;
	int r = lease_get(rs, &other);
	if (r == 0 && other.expires > time(NULL))
		return lease_busy(rs, &other);
	if (r < 0 && r != -ENOENT)
		return r;
	uint64_t start = cairn_now_ns();
	r = lease_put(rs);
	if (r < 0)
		return r;
	uint64_t settle_ms = (cairn_now_ns() - start) / 1000000 * 4;
	if (settle_ms < SETTLE_MS)
		settle_ms = SETTLE_MS;
	nanosleep(&(struct timespec){.tv_sec = (time_t)(settle_ms / 1000),
				     .tv_nsec = (long)(settle_ms % 1000) * 1000000},
		  NULL);
	r = lease_get(rs, &other);
	if (r == 0 && other.session != rs->session)
		return lease_busy(rs, &other);
	if (r == -ENOENT)
		remote_set_error(rs, "%s: its %s vanished while it was being taken", rs->display,
				 REMOTE_LOCK_KEY);
	if (r < 0)
		return r == -ENOENT ? -EBUSY : r;
	rs->leased = true;
	return renew_start(rs);
}

/* Still this session's lease, and the pointer still the one it began from
 * (absent for a store being created). */
int remote_still_ours(struct remote_state *rs, bool creating)
{
	struct remote_lease lease;
	struct remote_head head;

	int r = lease_get(rs, &lease);
	if (r == 0 && lease.session != rs->session)
		r = lease_busy(rs, &lease);
	else if (r == -ENOENT)
		remote_set_error(rs, "%s: its %s is gone: another writer may be at work",
				 rs->display, REMOTE_LOCK_KEY);
	if (r < 0)
		return r == -ENOENT ? -EBUSY : r;
	r = remote_get_head(rs, &head);
	if (creating && r == 0) {
		remote_set_error(rs, "%s was created by another writer meanwhile", rs->display);
		return -EEXIST;
	}
	if (creating)
		return r == -ENOENT ? 0 : r;
	if (r == 0 && (head.generation != rs->head.generation ||
		       strcmp(head.manifest.key, rs->head.manifest.key) != 0)) {
		remote_set_error(rs,
				 "%s changed while this writer worked (generation %" PRIu64
				 " is now %" PRIu64 ")",
				 rs->display, rs->head.generation, head.generation);
		return -EBUSY;
	}
	return r;
}

void remote_writer_end(struct cairn_store *store)
{
	struct remote_state *rs = store->remote;
	char key[FULL_KEY_MAX];

	if (!rs || !rs->leased)
		return;
	remote_uploader_stop(rs);
	renew_stop(rs);
	struct remote_lease lease;
	if (lease_get(rs, &lease) == 0 && lease.session == rs->session)
		s3_delete(rs->client, remote_key(&rs->url, REMOTE_LOCK_KEY, key, sizeof(key)));
	rs->leased = false;
}

int remote_writer_begin(struct cairn_store *store)
{
	struct remote_state *rs = store->remote;
	char why[300];
	struct chunk_table *table;

	rs->error[0] = '\0';
	int r = remote_lease_take(rs);
	/* Another writer may have committed since the handle was opened, and
	 * a writer before may have left unpushed commits in the mirror. */
	if (r == 0)
		r = remote_sync(rs, store->dirfd, true, NULL);
	if (r == 0 && (r = table_load(store->dirfd, &table, why, sizeof(why))) < 0)
		remote_set_error(rs, "%s: %s", rs->display, why);
	if (r == 0) {
		/* the sync may have replaced pack files: drop their fds */
		pthread_mutex_lock(&store->fd_lock);
		for (size_t i = 0; i < store->fd_count; i++)
			close(store->fds[i].fd);
		store->fd_count = 0;
		pthread_mutex_unlock(&store->fd_lock);
		store_swap_table(store, table);
		/* without it, the push uploads every pack itself */
		remote_uploader_start(rs, store->packs_dirfd);
		int fd = openat(store->dirfd, REMOTE_DIRTY, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
		r = fd < 0 ? -errno : 0;
		if (fd >= 0)
			close(fd);
	}
	if (r < 0) {
		store_set_error(store, "%s", rs->error[0] ? rs->error : strerror(-r));
		remote_writer_end(store);
	}
	return r;
}
