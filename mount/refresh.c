/* refresh.c: a whole-store mount that sees snapshots added and removed
 * after it started. A thread wakes every -o refresh=SECONDS (default: 60
 * on an s3:// store, where each wake-up is one GET of cairn-head; 5 on a
 * local one, where it is a stat of STORE/snapshots and a 64-byte read of
 * the chunk table's header), asks the snapshot table to refresh
 * (snaps.c), and when the root changed tells the kernel, which otherwise
 * keeps the root's entries, attributes and listing for a day: the root
 * inode's attributes and pages (its listing) are invalidated, and each
 * added or removed name's entry (a removed one's dentry, an added one's
 * cached miss). It runs with no lock held: the kernel may wait on a
 * request in the root while it invalidates, and the FUSE threads answer
 * that one meanwhile.
 */
#include "mount_fuse.h"

#include <string.h>
#include <time.h>

struct refresher {
	struct fs *fs;
	struct fuse_session *se;
	unsigned interval; /* seconds */
	pthread_t thread;
	pthread_mutex_t lock;
	pthread_cond_t wake;  /* CLOCK_MONOTONIC */
	bool stop;            /* under lock */
	char last_error[300]; /* the failure logged last: each is logged once */
};

unsigned refresh_interval(const struct fs *fs)
{
	if (!snap_table_refreshable(fs->snaps))
		return 0;
	if (fs->o.refresh >= 0)
		return (unsigned)fs->o.refresh;
	return cairn_store_is_remote(fs->store) ? REFRESH_REMOTE_DEFAULT : REFRESH_LOCAL_DEFAULT;
}

static void tell_kernel(struct refresher *rf, const struct snap_changes *changes)
{
	int r = fuse_lowlevel_notify_inval_inode(rf->se, FUSE_ROOT_ID, 0, 0);
	for (size_t i = 0; i < changes->count; i++) {
		int e = fuse_lowlevel_notify_inval_entry(rf->se, FUSE_ROOT_ID, changes->names[i],
							 strlen(changes->names[i]));
		/* -ENOENT: the kernel had nothing cached under that name. */
		if (r == 0 && e < 0 && e != -ENOENT)
			r = e;
	}
	if (r < 0 && r != -ENOENT)
		mount_log(&rf->fs->log, CAIRN_LOG_WARNING,
			  "refresh: the kernel's cache of the mount's root could not be "
			  "invalidated: %s",
			  strerror(-r));
}

static void refresh_once(struct refresher *rf)
{
	struct fs *fs = rf->fs;
	struct snap_changes changes;
	char msg[300] = "";

	int r = snap_table_refresh(fs->snaps, &changes, msg, sizeof(msg));
	atomic_fetch_add(&fs->stats.refreshes, 1);
	if (r < 0) {
		/* The mount keeps what it shows; the next wake-up tries again. */
		if (strcmp(msg, rf->last_error) != 0)
			mount_log(&fs->log, CAIRN_LOG_WARNING,
				  "refresh: %s (still showing the snapshots seen before)",
				  msg[0] ? msg : strerror(-r));
		cairn_format(rf->last_error, sizeof(rf->last_error), "%s", msg);
		return;
	}
	if (rf->last_error[0])
		mount_log(&fs->log, CAIRN_LOG_INFO, "refresh: the store can be read again");
	rf->last_error[0] = '\0';
	if (r == 0)
		return;
	atomic_store(&fs->root_mtime_sec, (int64_t)time(NULL));
	atomic_fetch_add(&fs->stats.refresh_changes, 1);
	tell_kernel(rf, &changes);
	snap_changes_release(&changes);
}

static void *refresh_thread(void *arg)
{
	struct refresher *rf = arg;
	struct timespec due;

	clock_gettime(CLOCK_MONOTONIC, &due);
	pthread_mutex_lock(&rf->lock);
	for (;;) {
		due.tv_sec += rf->interval;
		while (!rf->stop && pthread_cond_timedwait(&rf->wake, &rf->lock, &due) != ETIMEDOUT)
			;
		if (rf->stop)
			break;
		pthread_mutex_unlock(&rf->lock);
		refresh_once(rf);
		clock_gettime(CLOCK_MONOTONIC, &due);
		pthread_mutex_lock(&rf->lock);
	}
	pthread_mutex_unlock(&rf->lock);
	return NULL;
}

int refresher_start(struct fs *fs, struct fuse_session *se, struct refresher **ret)
{
	unsigned interval = refresh_interval(fs);
	pthread_condattr_t attr;

	*ret = NULL;
	if (interval == 0)
		return 0;
	struct refresher *rf = calloc(1, sizeof(*rf));
	if (!rf)
		return -ENOMEM;
	rf->fs = fs;
	rf->se = se;
	rf->interval = interval;
	pthread_mutex_init(&rf->lock, NULL);
	pthread_condattr_init(&attr);
	pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
	pthread_cond_init(&rf->wake, &attr);
	pthread_condattr_destroy(&attr);
	int r = -pthread_create(&rf->thread, NULL, refresh_thread, rf);
	if (r < 0) {
		pthread_cond_destroy(&rf->wake);
		pthread_mutex_destroy(&rf->lock);
		free(rf);
		return r;
	}
	*ret = rf;
	return 0;
}

void refresher_stop(struct refresher *rf)
{
	if (!rf)
		return;
	pthread_mutex_lock(&rf->lock);
	rf->stop = true;
	pthread_cond_signal(&rf->wake);
	pthread_mutex_unlock(&rf->lock);
	pthread_join(rf->thread, NULL);
	pthread_cond_destroy(&rf->wake);
	pthread_mutex_destroy(&rf->lock);
	free(rf);
}
