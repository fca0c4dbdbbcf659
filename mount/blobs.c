/* blobs.c: the blob cache, CACHE/blobs/<file id>: whole-file copies that the
 * kernel reads through passthrough without asking the daemon. The file id
 * names the file's chunk list. A blob is written to a temp file, every chunk
 * checked against its id as it is written, and renamed into place; a blob
 * found in the cache is checked the same way, chunk by chunk, once per mount
 * before it is used, so a damaged or planted file is never served. The cache
 * is bounded: past its size, the least recently used blobs are deleted.
 * Deleting any of it at any time is safe: an open blob stays readable, and a
 * missing one is made again. The directory is ours alone (cachedir.c), and
 * eviction and cleanup remove only our own regular files in it, through its
 * fd. Nothing in the cache is trusted by its name:
 * opens never follow a symlink or wait (a FIFO there would hang the mount),
 * and what is not our own private regular file is removed and made again.
 * A temp file is flock'd by its maker while it is written; one nobody holds
 * is a dead mount's leftover, removed by the next scan (cachedir.c). While
 * a blob is made, the reads of its file read back what is written
 * (growing.c).
 */
#include "mount_internal.h"

#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>

#define JOBS 64
/* Blobs being made at once: the queued jobs plus the opens making one inline
 * (bounded by the session's worker threads; more wait for a slot). */
#define BUILDING_MAX (2 * JOBS)

struct blob_job {
	struct cairn_index *idx; /* borrowed: open while the mount lives */
	uint64_t ino;
	struct cairn_index_file file;
	struct growing *growing; /* for the reads meanwhile; NULL: none */
};

/* A blob whose bytes were checked in this mount: remembered by the file it
 * was (device, inode) and its state then (size, mtime, ctime, as fstat gave
 * them before the check), so a file swapped in under the same name, or one
 * changed in place since, is checked again. */
struct verified {
	struct cairn_id id;
	dev_t dev;
	ino_t ino;
	off_t size;
	struct timespec mtime, ctime;
};

struct blob_cache {
	struct read_path *rp;        /* borrowed: makes and checks blobs */
	const struct mount_log *log; /* borrowed */
	char *dir;                   /* CACHE/blobs */
	uint64_t bound;
	atomic_uint_fast64_t made; /* blobs made in this mount */

	int cachefd; /* CACHE, trusted (cachedir.c) */

	pthread_mutex_t lock; /* protects everything below */
	pthread_cond_t cond;
	int dirfd;                 /* CACHE/blobs, trusted */
	struct verified *verified; /* open addressing, zero id = empty */
	size_t verified_count, verified_cap;
	struct blob_job jobs[JOBS];
	size_t job_count;
	struct cairn_id building[BUILDING_MAX]; /* file ids queued or being made */
	size_t building_count;
	struct growing *current; /* the worker's job's, while it is on it */
	uint64_t bytes;          /* estimate of the cache's size */
	bool scanned, stopping;
	pthread_t worker;
	bool worker_started;
};

/* (Re)opens the blobs directory through CACHE's fd (cachedir.c), making it
 * if it was removed. Lock held. */
static int blob_dir_locked(struct blob_cache *cache, bool reopen)
{
	char why[300];

	if (cache->dirfd >= 0 && !reopen)
		return cache->dirfd;
	if (cache->dirfd >= 0)
		close(cache->dirfd);
	cache->dirfd = cache_dir_reopen(cache->dir, &cache->cachefd, why, sizeof(why));
	if (cache->dirfd < 0)
		mount_log(cache->log, CAIRN_LOG_WARNING, "blob cache %s: %s", cache->dir, why);
	return cache->dirfd;
}

/* ---- verified blobs ---- */

static bool id_is_zero(const struct cairn_id *id)
{
	static const struct cairn_id zero;

	return memcmp(id, &zero, sizeof(zero)) == 0;
}

static size_t id_slot(const struct cairn_id *id, size_t cap)
{
	uint64_t key;

	memcpy(&key, id->bytes + 8, sizeof(key));
	return (size_t)key & (cap - 1);
}

static struct verified *verified_find_locked(const struct blob_cache *cache,
					     const struct cairn_id *id)
{
	if (cache->verified_cap == 0)
		return NULL;
	for (size_t s = id_slot(id, cache->verified_cap);;
	     s = (s + 1) & (cache->verified_cap - 1)) {
		if (id_is_zero(&cache->verified[s].id))
			return NULL;
		if (cairn_id_compare(&cache->verified[s].id, id) == 0)
			return &cache->verified[s];
	}
}

static void verified_insert(struct verified *table, size_t cap, const struct verified *v)
{
	size_t s = id_slot(&v->id, cap);

	while (!id_is_zero(&table[s].id))
		s = (s + 1) & (cap - 1);
	table[s] = *v;
}

static bool timespec_eq(const struct timespec *a, const struct timespec *b)
{
	return a->tv_sec == b->tv_sec && a->tv_nsec == b->tv_nsec;
}

/* Whether st is the file, unchanged, that v remembers. */
static bool verified_same(const struct verified *v, const struct stat *st)
{
	return v->dev == st->st_dev && v->ino == st->st_ino && v->size == st->st_size &&
	       timespec_eq(&v->mtime, &st->st_mtim) && timespec_eq(&v->ctime, &st->st_ctim);
}

static void verified_add_locked(struct blob_cache *cache, const struct cairn_id *id,
				const struct stat *st)
{
	struct verified *known = verified_find_locked(cache, id);
	struct verified v = {.id = *id,
			     .dev = st->st_dev,
			     .ino = st->st_ino,
			     .size = st->st_size,
			     .mtime = st->st_mtim,
			     .ctime = st->st_ctim};

	if (known) {
		*known = v;
		return;
	}
	if ((cache->verified_count + 1) * 2 > cache->verified_cap) {
		size_t cap = cache->verified_cap ? cache->verified_cap * 2 : 1024;
		struct verified *table = calloc(cap, sizeof(*table));
		if (!table)
			return; /* only costs a re-hash later */
		for (size_t i = 0; i < cache->verified_cap; i++)
			if (!id_is_zero(&cache->verified[i].id))
				verified_insert(table, cap, &cache->verified[i]);
		free(cache->verified);
		cache->verified = table;
		cache->verified_cap = cap;
	}
	verified_insert(cache->verified, cache->verified_cap, &v);
	cache->verified_count++;
}

/* ---- checking and making blobs ---- */

/* Only our own files, writable by no one else, are handed to the kernel:
 * anyone who could write to a blob could change it after its check. */
static bool blob_trusted(const struct stat *st)
{
	return S_ISREG(st->st_mode) && st->st_uid == geteuid() && !(st->st_mode & 022);
}

/* Returns 0 when the blob open on fd was verified in this mount, -EAGAIN
 * when it is trusted but not yet checked, -EBADMSG when it must not be used. */
static int blob_known(struct blob_cache *cache, int fd, const struct cairn_index_file *file,
		      struct stat *st)
{
	if (fstat(fd, st) < 0 || !blob_trusted(st) || (uint64_t)st->st_size != file->size)
		return -EBADMSG;
	pthread_mutex_lock(&cache->lock);
	struct verified *v = verified_find_locked(cache, &file->file_id);
	bool known = v && verified_same(v, st);
	pthread_mutex_unlock(&cache->lock);
	return known ? 0 : -EAGAIN;
}

/* Marks a verified blob recently used (its mtime orders eviction). That
 * changes its mtime and ctime, so the remembered state moves with them, but
 * only if it still was the state checked (st). */
static void blob_touch(struct blob_cache *cache, int fd, const struct cairn_index_file *file,
		       const struct stat *st)
{
	struct stat now;

	if (futimens(fd, NULL) < 0 || fstat(fd, &now) < 0)
		return; /* a stale state only costs a re-hash later */
	pthread_mutex_lock(&cache->lock);
	struct verified *v = verified_find_locked(cache, &file->file_id);
	if (v && verified_same(v, st))
		verified_add_locked(cache, &file->file_id, &now);
	pthread_mutex_unlock(&cache->lock);
}

/* Checks a blob found in the cache, chunk by chunk, against the file. */
static int blob_check(struct blob_cache *cache, struct cairn_index *idx, uint64_t ino, int fd,
		      const struct cairn_index_file *file, const struct stat *st)
{
	struct cairn_content_reader *reader = read_path_reader(cache->rp);
	if (!reader)
		return -ENOMEM;
	int r = cairn_content_open(reader, idx, ino, NULL);
	if (r == 0)
		r = cairn_content_check_fd(reader, fd);
	if (r < 0)
		return r;
	pthread_mutex_lock(&cache->lock);
	verified_add_locked(cache, &file->file_id, st);
	pthread_mutex_unlock(&cache->lock);
	return 0;
}

/* Locks a new temp file for as long as it is open: the proof, to every
 * mount's scan, that a live mount is writing it (an unlocked temp file is a
 * dead mount's leftover). A scan may have locked and removed it between its
 * creation and this lock; then the caller makes another. */
static int tmp_hold(int fd)
{
	struct stat st;

	if (flock(fd, LOCK_EX | LOCK_NB) < 0 || fstat(fd, &st) < 0 || st.st_nlink == 0)
		return -EAGAIN;
	return 0;
}

static int blob_create_tmp(struct blob_cache *cache, char *name, size_t name_size, int *ret_dirfd)
{
	int r = -ENOENT;

	/* A second try after the directory was removed, or a few when a scan
	 * took the new temp file before its lock. */
	for (int attempt = 0, reopen = 0; attempt < 8 && reopen < 2; attempt++) {
		pthread_mutex_lock(&cache->lock);
		int dirfd = blob_dir_locked(cache, reopen > 0);
		int fd = dirfd < 0 ? dirfd : dup(dirfd);
		if (dirfd >= 0 && fd < 0)
			fd = -errno;
		pthread_mutex_unlock(&cache->lock);
		if (fd < 0)
			return fd;
		int tmp = cairn_tmp_open(fd, "tmp-", "", 0600, name, name_size);
		r = tmp < 0 ? tmp : tmp_hold(tmp);
		if (r == 0) {
			*ret_dirfd = fd;
			return tmp;
		}
		if (tmp >= 0)
			close(tmp);
		close(fd);
		if (r == -ENOENT)
			reopen++;
		else if (r != -EAGAIN)
			return r;
	}
	return r;
}

static void blob_evict_maybe(struct blob_cache *cache, uint64_t added);

/* Makes the blob of file ino of idx under name. g, unless NULL, follows
 * the writing, for the reads of the file meanwhile (growing.c). */
static int blob_make(struct blob_cache *cache, struct cairn_index *idx, uint64_t ino,
		     const struct cairn_index_file *file, const char *name, struct growing *g)
{
	char tmp_name[64];
	_cleanup_close_ int dirfd = -1;

	_cleanup_close_ int fd = blob_create_tmp(cache, tmp_name, sizeof(tmp_name), &dirfd);
	if (fd < 0)
		return fd;
	struct cairn_content_reader *reader = read_path_reader(cache->rp);
	int r = reader ? cairn_content_open(reader, idx, ino, NULL) : -ENOMEM;
	/* Reads of the file meanwhile read what is written; without g (or a
	 * descriptor for it) they take the chunk path. */
	if (g && (r < 0 || growing_attach(g, fd) < 0))
		g = NULL;
	if (r == 0)
		r = cairn_content_copy_to_fd(reader, fd, g ? growing_advance : NULL, g);
	if (r == -EBADMSG) {
		mount_log(
			cache->log, CAIRN_LOG_ERROR,
			"snapshot %s: inode %llu: a chunk does not match its id as the blob is made",
			cairn_index_name(idx), (unsigned long long)ino);
		r = -EIO;
	}
	/* Read-only before it gets its name: a blob is never written again. */
	if (r == 0 && fchmod(fd, 0400) < 0)
		r = -errno;
	if (r == 0 && renameat(dirfd, tmp_name, dirfd, name) < 0)
		r = -errno;
	if (r < 0) {
		unlinkat(dirfd, tmp_name, 0);
		return r;
	}
	/* Its state after the rename (which changes its ctime). */
	struct stat st;
	if (fstat(fd, &st) == 0) {
		pthread_mutex_lock(&cache->lock);
		verified_add_locked(cache, &file->file_id, &st);
		pthread_mutex_unlock(&cache->lock);
	}
	atomic_fetch_add(&cache->made, 1);
	blob_evict_maybe(cache, file->size);
	return 0;
}

/* Opens what is under a blob's name without following a symlink or waiting:
 * a FIFO planted there would block a plain open forever. What is not a
 * regular file is then refused by blob_known. */
static int blob_open_name(struct blob_cache *cache, const char *name)
{
	pthread_mutex_lock(&cache->lock);
	int dirfd = blob_dir_locked(cache, false);
	int fd = dirfd < 0 ? dirfd
			   : openat(dirfd, name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
	if (fd == -1)
		fd = -errno;
	pthread_mutex_unlock(&cache->lock);
	if (fd >= 0)
		fcntl(fd, F_SETFL, 0); /* plain reads from here on */
	return fd;
}

/* Removes what is under a blob's name when it cannot be a blob: the file
 * seen (still there, by device and inode), or, with none seen, anything but
 * a regular file or directory (a symlink, FIFO or socket, never followed). */
static void blob_discard(struct blob_cache *cache, const char *name, const struct stat *seen)
{
	struct stat st;

	pthread_mutex_lock(&cache->lock);
	int dirfd = blob_dir_locked(cache, false);
	bool remove = dirfd >= 0 && fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
		      (seen ? st.st_dev == seen->st_dev && st.st_ino == seen->st_ino
			    : !S_ISREG(st.st_mode) && !S_ISDIR(st.st_mode));
	if (remove)
		unlinkat(dirfd, name, 0); /* removes a symlink itself */
	pthread_mutex_unlock(&cache->lock);
	if (remove)
		mount_log(cache->log, CAIRN_LOG_WARNING,
			  "%s/%s is not a verified copy of its file; making it again", cache->dir,
			  name);
}

static bool building_has_locked(const struct blob_cache *cache, const struct cairn_id *id);
static void building_remove_locked(struct blob_cache *cache, const struct cairn_id *id);

/* Waits while another thread makes this blob; then registers this thread as
 * its maker. Returns false when the other thread made it meanwhile. */
static bool building_claim(struct blob_cache *cache, const struct cairn_id *id)
{
	bool waited = false;

	pthread_mutex_lock(&cache->lock);
	for (;;) {
		if (building_has_locked(cache, id))
			waited = true;
		else if (waited || cache->building_count < BUILDING_MAX)
			break;
		pthread_cond_wait(&cache->cond, &cache->lock);
	}
	if (!waited)
		cache->building[cache->building_count++] = *id;
	pthread_mutex_unlock(&cache->lock);
	return !waited;
}

static void building_release(struct blob_cache *cache, const struct cairn_id *id)
{
	pthread_mutex_lock(&cache->lock);
	building_remove_locked(cache, id);
	pthread_cond_broadcast(&cache->cond);
	pthread_mutex_unlock(&cache->lock);
}

/* The blob's fd once verified, hashing a found blob or making a missing or
 * bad one here. claimed: this thread already holds the file id in building
 * (the background worker). */
static int blob_open_now(struct blob_cache *cache, struct cairn_index *idx, uint64_t ino,
			 const struct cairn_index_file *file, const char *name, bool claimed,
			 struct growing *g)
{
	struct stat st = {0};

	for (int attempt = 0; attempt < 2; attempt++) {
		int fd = blob_open_name(cache, name);
		int r = fd < 0 ? fd : blob_known(cache, fd, file, &st);
		if (r == -EAGAIN)
			r = blob_check(cache, idx, ino, fd, file, &st);
		if (r == 0) {
			blob_touch(cache, fd, file, &st);
			return fd;
		}
		if (fd >= 0)
			close(fd);
		if (fd >= 0 || fd != -ENOENT)
			blob_discard(cache, name, fd >= 0 ? &st : NULL);
		if (attempt > 0)
			return r;
		/* Missing or bad: make it, unless another thread is doing so. */
		if (!claimed && !building_claim(cache, &file->file_id))
			continue;
		r = blob_make(cache, idx, ino, file, name, g);
		if (!claimed)
			building_release(cache, &file->file_id);
		if (r < 0)
			return r;
	}
	return -EIO;
}

int blob_cache_open(struct blob_cache *cache, struct cairn_index *idx, uint64_t ino,
		    const struct cairn_index_file *file, bool inline_work)
{
	char name[CAIRN_ID_HEX + 1];
	struct stat st = {0};

	cairn_id_to_hex(&file->file_id, name);
	if (inline_work)
		return blob_open_now(cache, idx, ino, file, name, false, NULL);
	/* A large file: never hash or copy it inside an open. */
	int fd = blob_open_name(cache, name);
	int r = fd < 0 ? fd : blob_known(cache, fd, file, &st);
	if (r == 0)
		return fd;
	if (fd >= 0)
		close(fd);
	if (r != -ENOENT && r != -EAGAIN)
		blob_discard(cache, name, fd >= 0 ? &st : NULL);
	blob_cache_schedule(cache, idx, ino, file);
	return -EAGAIN;
}

/* ---- the size bound ---- */

static void blob_evict_maybe(struct blob_cache *cache, uint64_t added)
{
	pthread_mutex_lock(&cache->lock);
	cache->bytes += added;
	bool over = cache->scanned && cache->bytes > cache->bound;
	int dirfd = over ? dup(cache->dirfd) : -1;
	if (over)
		cache->scanned = false; /* one eviction at a time */
	pthread_mutex_unlock(&cache->lock);
	if (dirfd < 0)
		return;
	uint64_t total = cache_dir_evict(dirfd, cache->bound);
	close(dirfd);
	pthread_mutex_lock(&cache->lock);
	cache->bytes = total;
	cache->scanned = true;
	pthread_mutex_unlock(&cache->lock);
}

/* ---- the background worker ---- */

static bool building_has_locked(const struct blob_cache *cache, const struct cairn_id *id)
{
	for (size_t i = 0; i < cache->building_count; i++)
		if (cairn_id_compare(&cache->building[i], id) == 0)
			return true;
	return false;
}

static void building_remove_locked(struct blob_cache *cache, const struct cairn_id *id)
{
	for (size_t i = 0; i < cache->building_count; i++) {
		if (cairn_id_compare(&cache->building[i], id) == 0) {
			cache->building[i] = cache->building[--cache->building_count];
			return;
		}
	}
}

void blob_cache_schedule(struct blob_cache *cache, struct cairn_index *idx, uint64_t ino,
			 const struct cairn_index_file *file)
{
	pthread_mutex_lock(&cache->lock);
	if (cache->job_count < JOBS && cache->building_count < BUILDING_MAX &&
	    !building_has_locked(cache, &file->file_id)) {
		struct growing *g = NULL;
		growing_new(&file->file_id, file->size, &g); /* NULL: none */
		cache->jobs[cache->job_count++] = (struct blob_job){idx, ino, *file, g};
		cache->building[cache->building_count++] = file->file_id;
		pthread_cond_broadcast(&cache->cond);
	}
	pthread_mutex_unlock(&cache->lock);
}

struct growing *blob_cache_growing(struct blob_cache *cache, const struct cairn_id *file_id)
{
	struct growing *found = NULL;

	pthread_mutex_lock(&cache->lock);
	if (cache->current && cairn_id_compare(growing_file_id(cache->current), file_id) == 0)
		found = cache->current;
	for (size_t i = 0; i < cache->job_count && !found; i++)
		if (cache->jobs[i].growing &&
		    cairn_id_compare(&cache->jobs[i].file.file_id, file_id) == 0)
			found = cache->jobs[i].growing;
	if (found)
		growing_ref(found);
	pthread_mutex_unlock(&cache->lock);
	return found;
}

static void blob_worker_scan(struct blob_cache *cache)
{
	pthread_mutex_lock(&cache->lock);
	int dirfd = blob_dir_locked(cache, false);
	dirfd = dirfd < 0 ? -1 : dup(dirfd);
	pthread_mutex_unlock(&cache->lock);
	uint64_t total = dirfd < 0 ? 0 : cache_dir_evict(dirfd, cache->bound);
	if (dirfd >= 0)
		close(dirfd);
	pthread_mutex_lock(&cache->lock);
	cache->bytes += total;
	cache->scanned = true;
	pthread_mutex_unlock(&cache->lock);
}

/* Scans the cache once (off the mount's start), then makes blobs. */
static void *blob_worker(void *arg)
{
	struct blob_cache *cache = arg;

	blob_worker_scan(cache);
	pthread_mutex_lock(&cache->lock);
	while (!cache->stopping) {
		if (cache->job_count == 0) {
			pthread_cond_wait(&cache->cond, &cache->lock);
			continue;
		}
		struct blob_job job = cache->jobs[0];
		memmove(cache->jobs, cache->jobs + 1, --cache->job_count * sizeof(job));
		pthread_mutex_unlock(&cache->lock);
		char name[CAIRN_ID_HEX + 1];
		cairn_id_to_hex(&job.file.file_id, name);
		pthread_mutex_lock(&cache->lock);
		cache->current = job.growing;
		pthread_mutex_unlock(&cache->lock);
		int fd = blob_open_now(cache, job.idx, job.ino, &job.file, name, true, job.growing);
		/* A blob found and checked serves the reads as a made one would. */
		if (fd >= 0 && job.growing && growing_attach(job.growing, fd) == 0)
			growing_advance(job.growing, job.file.size);
		if (job.growing)
			growing_end(job.growing, fd >= 0);
		if (fd >= 0)
			close(fd);
		else
			mount_log(cache->log, CAIRN_LOG_WARNING,
				  "snapshot %s: inode %llu: cannot make its blob: %s",
				  cairn_index_name(job.idx), (unsigned long long)job.ino,
				  strerror(-fd));
		pthread_mutex_lock(&cache->lock);
		building_remove_locked(cache, &job.file.file_id);
		cache->current = NULL;
		pthread_cond_broadcast(&cache->cond);
		pthread_mutex_unlock(&cache->lock);
		growing_put(job.growing);
		pthread_mutex_lock(&cache->lock);
	}
	pthread_mutex_unlock(&cache->lock);
	return NULL;
}

int blob_cache_new(const char *dir, uint64_t bound, struct read_path *rp,
		   const struct mount_log *log, struct blob_cache **ret)
{
	struct blob_cache *cache = calloc(1, sizeof(*cache));

	if (!cache)
		return -ENOMEM;
	cache->rp = rp;
	cache->log = log;
	cache->bound = bound;
	cache->dirfd = cache->cachefd = -1;
	pthread_mutex_init(&cache->lock, NULL);
	pthread_cond_init(&cache->cond, NULL);
	/* Logs its own failures (and a refused directory). */
	int r = cache_dir_open(dir, log, &cache->cachefd, &cache->dirfd, &cache->dir);
	if (r == 0 && (r = -pthread_create(&cache->worker, NULL, blob_worker, cache)) < 0)
		mount_log(log, CAIRN_LOG_WARNING, "blob cache: no worker: %s", strerror(-r));
	if (r < 0) {
		blob_cache_free(cache);
		return r;
	}
	cache->worker_started = true;
	*ret = cache;
	return 0;
}

uint64_t blob_cache_made(struct blob_cache *cache)
{
	return cache ? atomic_load(&cache->made) : 0;
}

void blob_cache_free(struct blob_cache *cache)
{
	if (!cache)
		return;
	pthread_mutex_lock(&cache->lock);
	cache->stopping = true;
	pthread_cond_broadcast(&cache->cond);
	pthread_mutex_unlock(&cache->lock);
	if (cache->worker_started)
		pthread_join(cache->worker, NULL);
	for (size_t i = 0; i < cache->job_count; i++)
		growing_put(cache->jobs[i].growing);
	if (cache->dirfd >= 0)
		close(cache->dirfd);
	if (cache->cachefd >= 0)
		close(cache->cachefd);
	pthread_cond_destroy(&cache->cond);
	pthread_mutex_destroy(&cache->lock);
	free(cache->verified);
	free(cache->dir);
	free(cache);
}
