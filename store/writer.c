/* writer.c: the writer handle (cairn_writer). Opening one takes the
 * store's write lock (STORE/lock, an exclusive flock: one writer per store),
 * reloads and checks the chunk table, removes leftovers of writers that
 * died, allocates the session's buffers and starts the worker pool. Free
 * abandons whatever was not committed. What a session does is in
 * writer_chunks.c, writer_commit.c, writer_pool.c and pack_write.c (see
 * writer_internal.h).
 */
#include "writer_internal.h"

#include "remote.h"

#include <dirent.h>
#include <sched.h>
#include <fcntl.h>
#include <malloc.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>

void writer_set_error(struct cairn_writer *w, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(w->error, sizeof(w->error), fmt, ap);
	va_end(ap);
}

const char *cairn_writer_error(const struct cairn_writer *writer)
{
	return writer->error;
}

/* ---- what gc reaches through ---- */

struct cairn_store *writer_store(const struct cairn_writer *w)
{
	return w->store;
}

bool writer_is_dirty(const struct cairn_writer *w)
{
	return w->entry_count > 0 || w->open_group || w->in_file ||
	       (w->batch && w->batch->piece_count > 0);
}

struct frame_reader *writer_reader(struct cairn_writer *w)
{
	return &w->reader;
}

uint8_t *writer_buffer(struct cairn_writer *w)
{
	return w->confirm_buf;
}

void cairn_writer_stats(const struct cairn_writer *writer, struct cairn_writer_stats *ret)
{
	struct cairn_writer *w = (struct cairn_writer *)writer;

	/* The sequencer updates stats while it holds a batch. */
	pthread_mutex_lock(&w->pipe_lock);
	*ret = w->seq_sequenced == w->seq_submitted ? w->stats : w->pub_stats;
	pthread_mutex_unlock(&w->pipe_lock);
	pthread_mutex_lock(&w->lock);
	ret->bytes_stored = w->bytes_stored;
	pthread_mutex_unlock(&w->lock);
}

/* ---- open and free ---- */

static int take_lock(struct cairn_writer *w, unsigned flags)
{
	struct cairn_store *store = w->store;

	w->lock_fd = cairn_open_file_beneath(store->dirfd, LOCK_NAME, O_RDWR | O_CREAT, 0600);
	if (w->lock_fd < 0) {
		int r = w->lock_fd;
		store_set_error(store, "%s/lock: %s", store->path, cairn_path_strerror(r));
		return r;
	}
	int op = LOCK_EX | ((flags & CAIRN_WRITER_NOWAIT) ? LOCK_NB : 0);
	while (flock(w->lock_fd, op) < 0) {
		if (errno == EINTR)
			continue;
		int r = -errno;
		if (r == -EWOULDBLOCK)
			store_set_error(store, "%s: another cairn process is writing to this store",
					store->path);
		else
			store_set_error(store, "%s/lock: %s", store->path, strerror(errno));
		return r;
	}
	return 0;
}

/* Under the lock, no other writer runs: temp files and packs that the
 * current table does not list are leftovers of a writer that died. */
static int remove_leftovers_in(struct cairn_writer *w, int dirfd, enum leftover_dir where)
{
	const struct chunk_table *table = store_table(w->store);
	struct stat st;
	uint32_t num;
	int fd = openat(dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	DIR *dir = fdopendir(fd);
	if (!dir) {
		close(fd);
		return -errno;
	}
	for (struct dirent *de; (de = readdir(dir));) {
		if (store_is_leftover(de->d_name, where, table) &&
		    fstatat(dirfd, de->d_name, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
		    S_ISREG(st.st_mode) && unlinkat(dirfd, de->d_name, 0) == 0) {
			w->stats.leftovers.files++;
			w->stats.leftovers.bytes += (uint64_t)st.st_size;
		}
		if (where == LEFTOVER_PACKS && pack_parse_name(de->d_name, &num) == 0 &&
		    num >= w->next_pack_num)
			w->next_pack_num = num == UINT32_MAX ? num : num + 1; /* never wrap */
	}
	closedir(dir);
	return 0;
}

static int writer_refresh(struct cairn_writer *w)
{
	struct cairn_store *store = w->store;
	struct chunk_table *table;
	char msg[400];

	/* Another writer may have committed since the handle was opened. */
	int r = table_load(store->dirfd, &table, msg, sizeof(msg));
	if (r < 0) {
		store_set_error(store, "%s: %s", store->path, msg);
		return r;
	}
	/* A commit rewrites the whole table with a fresh checksum: check the old
	 * one first, so damage is reported rather than sealed in. */
	r = table_check_body(table, msg, sizeof(msg));
	if (r < 0) {
		store_set_error(store, "%s: %s; run cairn verify", store->path, msg);
		table_free(table);
		return r;
	}
	store_swap_table(store, table);
	w->next_pack_num = table->next_pack_num;
	r = remove_leftovers_in(w, store->dirfd, LEFTOVER_TOP);
	if (r == 0)
		r = remove_leftovers_in(w, store->packs_dirfd, LEFTOVER_PACKS);
	if (r < 0)
		store_set_error(store, "%s: removing leftovers: %s", store->path, strerror(-r));
	return r;
}

#ifdef __GLIBC__
static void set_mmap_threshold(void)
{
	mallopt(M_MMAP_THRESHOLD, 1 << 20);
}
#endif

/* glibc raises its mmap threshold to the largest block it has freed (up to
 * 32 MiB), after which the large buffers of an add (the index's growing
 * arrays, the maps, the batches) come from the heap and the threads'
 * arenas, where each doubling leaves a hole behind. A fixed threshold keeps
 * them mappings that grow in place and go back whole: 3.5 MB less peak
 * memory adding linux 6.12 after 6.1 (docs/BENCHMARKS.md, "Delta chunks").
 * Process-wide, set once by the first writer. */
static void limit_mmap_threshold(void)
{
#ifdef __GLIBC__
	static pthread_once_t once = PTHREAD_ONCE_INIT;
	pthread_once(&once, set_mmap_threshold);
#endif
}

static int writer_alloc(struct cairn_writer *w, unsigned threads)
{
	const struct cairn_store_params *params = &w->store->params;

	if (threads == 0) {
		/* The CPUs this process may run on (taskset), not all online. */
		cpu_set_t set;
		long n = sched_getaffinity(0, sizeof(set), &set) == 0
				 ? CPU_COUNT(&set)
				 : sysconf(_SC_NPROCESSORS_ONLN);
		threads = n > 0 ? (unsigned)n : 1;
	}
	w->thread_count = threads > 64 ? 64 : threads;
	limit_mmap_threshold();
	/* One group queued per worker and one more: compression is the
	 * slowest stage, so the sequencer mostly waits on a full queue, and a
	 * deeper one only held more groups (2 * threads + 2 cost linux 6.12
	 * 0.8 MB more peak memory on 2 cores: a group is chunk_max of data
	 * and as much of delta base). */
	w->queue_cap = (size_t)w->thread_count + 1;
	/* Every group is queued, with a worker, free, or the writer's chunk or
	 * open group: this bounds the writer's memory. */
	w->group_limit = w->queue_cap + w->thread_count + 3;
	w->queue = calloc(w->queue_cap, sizeof(*w->queue));
	w->free_groups = calloc(w->group_limit, sizeof(*w->free_groups));
	w->threads = calloc(w->thread_count, sizeof(*w->threads));
	w->confirm_buf = malloc(params->chunk_max);
	if (!w->queue || !w->free_groups || !w->threads || !w->confirm_buf ||
	    frame_reader_init(&w->reader, params, FRAME_READER_MAX_FRAMES) < 0)
		return -ENOMEM;
	w->chunk_group = group_get(w);
	if (!w->chunk_group)
		return -ENOMEM;
	return delta_writer_new(w);
}

int cairn_writer_open(struct cairn_store *store, unsigned flags, unsigned threads,
		      struct cairn_writer **ret)
{
	struct cairn_writer *w = calloc(1, sizeof(*w));

	if (!w)
		return -ENOMEM;
	w->store = store;
	w->lock_fd = -1;
	w->pack_fd = -1;
	pthread_mutex_init(&w->lock, NULL);
	pthread_cond_init(&w->work_cond, NULL);
	pthread_cond_init(&w->done_cond, NULL);
	pthread_mutex_init(&w->pipe_lock, NULL);
	pthread_cond_init(&w->pipe_cond, NULL);
	int r = take_lock(w, flags);
	if (r == 0 && store->remote)
		r = remote_writer_begin(store);
	if (r == 0)
		r = writer_refresh(w);
	if (r == 0) {
		r = writer_alloc(w, threads);
		if (r < 0)
			store_set_error(store, "out of memory");
	}
	if (r == 0)
		r = writer_start_threads(w);
	if (r == 0)
		r = pipe_start(w);
	if (r < 0) {
		cairn_writer_free(w);
		return r;
	}
	*ret = w;
	return 0;
}

void cairn_writer_free(struct cairn_writer *w)
{
	if (!w)
		return;
	pipe_stop(w); /* the sequencer hands groups to the workers */
	writer_stop_threads(w);
	if (w->store->packs_dirfd >= 0)
		writer_abandon(w);
	for (size_t i = 0; i < w->free_count; i++)
		group_free(w->free_groups[i]);
	group_free(w->open_group);
	group_free(w->chunk_group);
	for (size_t i = 0; i < w->block_count; i++)
		free(w->blocks[i]);
	free(w->blocks);
	free(w->map);
	free(w->free_groups);
	free(w->queue);
	free(w->threads);
	free(w->sealed);
	free(w->refs);
	free(w->confirm_buf);
	delta_writer_free(w);
	frame_reader_release(&w->reader);
	pthread_cond_destroy(&w->work_cond);
	pthread_cond_destroy(&w->done_cond);
	pthread_mutex_destroy(&w->lock);
	pthread_cond_destroy(&w->pipe_cond);
	pthread_mutex_destroy(&w->pipe_lock);
	if (w->lock_fd >= 0 && w->store->remote)
		remote_writer_end(w->store);
	if (w->lock_fd >= 0)
		close(w->lock_fd);
	free(w);
}

int cairn_writer_publish(struct cairn_writer *w)
{
	if (!w->store->remote)
		return 0;
	int r = remote_push(w->store);
	if (r < 0)
		writer_set_error(w, "%s", cairn_store_error(w->store));
	return r;
}

int cairn_writer_publish_gc(struct cairn_writer *w, int64_t grace_seconds,
			    struct cairn_remote_gc_stats *ret)
{
	memset(ret, 0, sizeof(*ret));
	if (!w->store->remote)
		return 0;
	int r = remote_push_gc(w->store, grace_seconds, ret);
	if (r < 0)
		writer_set_error(w, "%s", cairn_store_error(w->store));
	return r;
}
