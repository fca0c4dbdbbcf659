/* store.c: the store handle: creating a store, opening one (config and
 * chunk table), the shared cache of pack file descriptors, and sums over the
 * table. Reading chunks is chunk_reader.c, writing is writer.c (see
 * writer_internal.h for its parts).
 */
#include "store_internal.h"

#include "remote.h"

#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <sys/random.h>
#include <sys/stat.h>

#define CONFIG_NAME "config"
#define PACKS_DIR   "packs"

void store_set_error(struct cairn_store *store, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(store->error, sizeof(store->error), fmt, ap);
	va_end(ap);
}

void cairn_store_params_default(struct cairn_store_params *p)
{
	*p = (struct cairn_store_params){
		.chunk_min = 16u << 10,
		.chunk_avg = 64u << 10,
		.chunk_max = 256u << 10,
		.zstd_level = 3,
		.pack_max = 64u << 20,
	};
}

int cairn_store_params_check(const struct cairn_store_params *p, char *msg, size_t msg_size)
{
	const char *why = NULL;

	if (p->chunk_avg == 0 || (p->chunk_avg & (p->chunk_avg - 1)) != 0)
		why = "the average chunk size must be a power of two";
	else if (p->chunk_min < CAIRN_CHUNK_MIN_LIMIT || p->chunk_max > CAIRN_CHUNK_MAX_LIMIT)
		why = "chunk sizes must lie between 256 bytes and 16 MiB";
	else if (!(p->chunk_min < p->chunk_avg && p->chunk_avg < p->chunk_max))
		why = "chunk sizes must satisfy min < avg < max";
	else if (p->zstd_level < 1 || p->zstd_level > 19)
		why = "the zstd level must lie between 1 and 19";
	else if (p->pack_max < (1u << 20) || p->pack_max > (4ull << 30))
		why = "the pack size bound must lie between 1 MiB and 4 GiB";
	else if (p->id_hash != CAIRN_ID_XXH3 && p->id_hash != CAIRN_ID_SHA256)
		why = "unknown chunk id function";
	if (why && msg)
		cairn_format(msg, msg_size, "%s", why);
	return why ? -EINVAL : 0;
}

struct cairn_store *cairn_store_new(void)
{
	struct cairn_store *store = calloc(1, sizeof(*store));

	if (!store)
		return NULL;
	store->dirfd = -1;
	store->packs_dirfd = -1;
	store->pin_fd = -1;
	pthread_mutex_init(&store->fd_lock, NULL);
	return store;
}

void cairn_store_free(struct cairn_store *store)
{
	if (!store)
		return;
	/* its background fetcher uses the store's fds: stopped first */
	remote_fetch_free(store->remote);
	/* Nothing fetches now and the handle reads no more: a check that left
	 * the host's cache over its bound (a pack it had to spare was held or
	 * filling then) is made once more, or a cat could exit over it. */
	if (store->remote) {
		pthread_mutex_lock(&store->remote->lock);
		remote_cache_settle(store);
		pthread_mutex_unlock(&store->remote->lock);
	}
	for (size_t i = 0; i < store->fd_count; i++)
		close(store->fds[i].fd);
	free(store->fds);
	table_free(atomic_load(&store->table));
	while (store->retired) {
		struct chunk_table *next = store->retired->retired_next;
		table_free(store->retired);
		store->retired = next;
	}
	if (store->pin_fd >= 0)
		close(store->pin_fd);
	if (store->packs_dirfd >= 0)
		close(store->packs_dirfd);
	if (store->dirfd >= 0)
		close(store->dirfd);
	pthread_mutex_destroy(&store->fd_lock);
	remote_state_free(store->remote);
	free(store->path);
	free(store);
}

const char *cairn_store_error(const struct cairn_store *store)
{
	return store->error;
}

int cairn_store_dirfd(const struct cairn_store *store)
{
	return store->dirfd >= 0 ? store->dirfd : -EBADF;
}

const char *cairn_store_path(const struct cairn_store *store)
{
	return store->path ? store->path : "";
}

const struct cairn_store_params *cairn_store_params(const struct cairn_store *store)
{
	return &store->params;
}

void cairn_store_testing_set_id_fn(struct cairn_store *store, cairn_id_fn fn)
{
	store->id_fn = fn;
}

/* ---- config ---- */

static int config_read(struct cairn_store *store)
{
	struct config_disk disk;
	char why[160];

	_cleanup_close_ int fd = cairn_open_file_beneath(store->dirfd, CONFIG_NAME, O_RDONLY, 0);
	if (fd < 0) {
		if (fd == -ENOENT)
			store_set_error(store, "%s is not a cairn store (it has no config)",
					store->path);
		else
			store_set_error(store, "%s/config: %s", store->path,
					cairn_path_strerror(fd));
		return fd;
	}
	uint8_t buf[sizeof(disk) + 1];
	ssize_t n = cairn_pread_full(fd, buf, sizeof(buf), 0);
	if (n < 0) {
		store_set_error(store, "%s/config: %s", store->path, strerror((int)-n));
		return (int)n;
	}
	memcpy(&disk, buf, sizeof(disk));
	if (n != (ssize_t)sizeof(disk) || memcmp(disk.magic, CONFIG_MAGIC, 8) != 0 ||
	    disk.size != sizeof(disk)) {
		store_set_error(store, "%s/config is damaged (not a %zu-byte cairn config)",
				store->path, sizeof(disk));
		return -EBADMSG;
	}
	if (disk.checksum != store_checksum(&disk, offsetof(struct config_disk, checksum))) {
		store_set_error(store, "%s/config is damaged (checksum mismatch)", store->path);
		return -EBADMSG;
	}
	if (disk.version < CONFIG_VERSION || disk.version > CONFIG_VERSION_IDS) {
		store_set_error(store,
				"%s/config: store format version %u; this cairn reads versions %u "
				"to %u",
				store->path, disk.version, CONFIG_VERSION, CONFIG_VERSION_IDS);
		return disk.version > CONFIG_VERSION_IDS ? -EOPNOTSUPP : -EBADMSG;
	}
	/* Below version 3 the byte was reserved, and zero. */
	if ((disk.version < CONFIG_VERSION_IDS) != (disk.id_hash == CAIRN_ID_XXH3)) {
		store_set_error(store, "%s/config is damaged (chunk id function %u at version %u)",
				store->path, disk.id_hash, disk.version);
		return -EBADMSG;
	}
	store->config_version = disk.version;
	store->params = (struct cairn_store_params){
		.chunk_min = disk.chunk_min,
		.chunk_avg = disk.chunk_avg,
		.chunk_max = disk.chunk_max,
		.zstd_level = disk.zstd_level,
		.pack_max = disk.pack_max,
		.id_hash = disk.id_hash,
	};
	if (cairn_store_params_check(&store->params, why, sizeof(why)) < 0) {
		store_set_error(store, "%s/config is damaged: %s", store->path, why);
		return -EBADMSG;
	}
	memcpy(store->hash_key, disk.hash_key, KEY_SIZE);
	return store_derive_secrets(store);
}

static int config_write(int dirfd, const struct cairn_store_params *params,
			const uint8_t key[KEY_SIZE], uint32_t version)
{
	struct config_disk disk = {0};
	char tmp_name[64];

	memcpy(disk.magic, CONFIG_MAGIC, 8);
	disk.version = version;
	disk.size = sizeof(disk);
	disk.chunk_min = params->chunk_min;
	disk.chunk_avg = params->chunk_avg;
	disk.chunk_max = params->chunk_max;
	disk.zstd_level = params->zstd_level;
	disk.pack_max = params->pack_max;
	memcpy(disk.hash_key, key, KEY_SIZE);
	disk.id_hash = params->id_hash;
	disk.checksum = store_checksum(&disk, offsetof(struct config_disk, checksum));

	_cleanup_close_ int fd =
		cairn_tmp_open(dirfd, "tmp-config-", "", 0600, tmp_name, sizeof(tmp_name));
	if (fd < 0)
		return fd;
	int r = cairn_write_all(fd, &disk, sizeof(disk));
	if (r == 0)
		r = cairn_commit_file(dirfd, fd, tmp_name, CONFIG_NAME, NULL);
	if (r < 0)
		unlinkat(dirfd, tmp_name, 0);
	return r;
}

int store_config_raise(struct cairn_store *store)
{
	if (store->config_version >= CONFIG_VERSION_DELTA)
		return 0;
	int r = config_write(store->dirfd, &store->params, store->hash_key, CONFIG_VERSION_DELTA);
	if (r < 0)
		store_set_error(store, "%s/config: raising it to version %u: %s", store->path,
				CONFIG_VERSION_DELTA, strerror(-r));
	else
		store->config_version = CONFIG_VERSION_DELTA;
	return r;
}

/* ---- binding ---- */

/* The lock and the readers' file are made when first needed; where one is
 * there already, it must be a regular file (never a link: its users would
 * make or lock a file elsewhere). Checked at open, so that every command
 * refuses such a store alike; their opens refuse it again, without a race. */
static int check_lock_files(struct cairn_store *store)
{
	static const char *const names[] = {LOCK_NAME, READERS_NAME};

	for (size_t i = 0; i < ARRAY_SIZE(names); i++) {
		int r = cairn_check_beneath(store->dirfd, names[i], false);
		if (r < 0) {
			store_set_error(store, "%s/%s: %s", store->path, names[i],
					cairn_path_strerror(r));
			return r;
		}
	}
	return 0;
}

int store_bind(struct cairn_store *store, const char *path)
{
	char why[300];
	struct chunk_table *table;

	free(store->path);
	store->path = strdup(path);
	if (!store->path)
		return -ENOMEM;
	if (store->dirfd < 0)
		store->dirfd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (store->dirfd < 0) {
		int r = -errno;
		store_set_error(store, "%s: %s", path,
				r == -ENOENT ? "no cairn store there" : strerror(-r));
		return r;
	}
	int r = config_read(store);
	if (r < 0)
		return r;
	r = cairn_open_dir_beneath(store->dirfd, PACKS_DIR);
	if (r < 0) {
		store_set_error(store, "%s/packs: %s", path, cairn_path_strerror(r));
		return r == -ENOENT ? -EBADMSG : r;
	}
	store->packs_dirfd = r;
	r = table_load(store->dirfd, &table, why, sizeof(why));
	if (r < 0) {
		store_set_error(store, "%s: %s", path, why);
		return r;
	}
	r = check_lock_files(store);
	if (r < 0) {
		table_free(table);
		return r;
	}
	atomic_store(&store->table, table);
	return 0;
}

int cairn_store_open_for(struct cairn_store *store, const char *path, const char *snapshot)
{
	if (store->dirfd >= 0)
		return -EALREADY;
	if (cairn_store_path_is_remote(path))
		return remote_open(store, path, snapshot);
	return store_bind(store, path);
}

int cairn_store_open(struct cairn_store *store, const char *path)
{
	return cairn_store_open_for(store, path, NULL);
}

/* Returns 1 if the directory (fd, taken over) holds nothing but what
 * ignore(dirfd, name) accepts, 0 if it holds more, or -errno. */
static int dir_is_empty_fd(int fd, bool (*ignore)(int, const char *))
{
	DIR *dir = fdopendir(fd);
	if (!dir) {
		close(fd);
		return -errno;
	}
	int empty = 1;
	struct dirent *de;
	while ((de = readdir(dir))) {
		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		if (!ignore || !ignore(dirfd(dir), de->d_name)) {
			empty = 0;
			break;
		}
	}
	closedir(dir);
	return empty;
}

/* What a create that was interrupted leaves: it may be created again. */
static bool is_create_leftover(int dirfd, const char *name)
{
	if (strcmp(name, TABLE_NAME) == 0 || strncmp(name, "tmp-", 4) == 0)
		return true;
	if (strcmp(name, PACKS_DIR) != 0)
		return false;
	int fd = cairn_open_dir_beneath(dirfd, name);
	return fd >= 0 && dir_is_empty_fd(fd, NULL) == 1;
}

static int store_prepare_dir(struct cairn_store *store, const char *path)
{
	if (mkdir(path, 0700) < 0 && errno != EEXIST) {
		int r = -errno;
		store_set_error(store, "cannot create store %s: %s", path, strerror(errno));
		return r;
	}
	store->dirfd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (store->dirfd < 0) {
		int r = -errno;
		store_set_error(store, "%s: %s", path, strerror(errno));
		return r;
	}
	/* Two creators at once (two first adds) must not both write a config:
	 * the second would replace the hash key the first already uses. The
	 * lock on the directory lasts until cairn_store_create returns. */
	while (flock(store->dirfd, LOCK_EX) < 0) {
		if (errno != EINTR) {
			int r = -errno;
			store_set_error(store, "%s: locking it: %s", path, strerror(errno));
			return r;
		}
	}
	if (faccessat(store->dirfd, CONFIG_NAME, F_OK, AT_SYMLINK_NOFOLLOW) == 0) {
		store_set_error(store, "%s is already a cairn store", path);
		return -EEXIST;
	}
	int fd = openat(store->dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	int empty = fd < 0 ? -errno : dir_is_empty_fd(fd, is_create_leftover);
	if (empty < 0) {
		store_set_error(store, "%s: %s", path, strerror(-empty));
		return empty;
	}
	if (!empty) {
		store_set_error(store, "cannot create store %s: the directory is not empty", path);
		return -EEXIST;
	}
	return 0;
}

/* key NULL: a fresh random key. */
static int store_create_locked(struct cairn_store *store, const char *path,
			       const struct cairn_store_params *params, const uint8_t *like_key)
{
	struct cairn_store_params defaults;
	uint8_t key[KEY_SIZE];
	char why[256];

	if (store->dirfd >= 0)
		return -EALREADY;
	if (!params) {
		cairn_store_params_default(&defaults);
		params = &defaults;
	}
	if (cairn_store_params_check(params, why, sizeof(why)) < 0) {
		store_set_error(store, "bad store parameters: %s", why);
		return -EINVAL;
	}
	int r = store_prepare_dir(store, path);
	if (r < 0)
		return r;
	if (like_key)
		memcpy(key, like_key, KEY_SIZE);
	else if (getrandom(key, sizeof(key), 0) != sizeof(key)) {
		r = -errno;
		store_set_error(store, "cannot make a hash key: %s", strerror(errno));
		return r;
	}
	if (mkdirat(store->dirfd, PACKS_DIR, 0700) < 0 && errno != EEXIST) {
		r = -errno;
		store_set_error(store, "%s/packs: %s", path, strerror(errno));
		return r;
	}
	r = table_write_empty(store->dirfd, why, sizeof(why));
	if (r < 0) {
		store_set_error(store, "%s: %s", path, why);
		return r;
	}
	/* The config goes last: a store without one is not a store yet. */
	r = config_write(store->dirfd, params, key,
			 params->id_hash == CAIRN_ID_XXH3 ? CONFIG_VERSION : CONFIG_VERSION_IDS);
	if (r < 0) {
		store_set_error(store, "%s/config: %s", path, strerror(-r));
		return r;
	}
	return store_bind(store, path);
}

bool cairn_store_path_is_remote(const char *path)
{
	return strncmp(path, REMOTE_SCHEME, strlen(REMOTE_SCHEME)) == 0;
}

int store_create_keyed(struct cairn_store *store, const char *path,
		       const struct cairn_store_params *params, const uint8_t *key)
{
	if (cairn_store_path_is_remote(path))
		return store->dirfd >= 0 ? -EALREADY : remote_create(store, path, params, key);
	int r = store_create_locked(store, path, params, key);

	if (store->dirfd >= 0)
		flock(store->dirfd, LOCK_UN);
	return r;
}

int cairn_store_create(struct cairn_store *store, const char *path,
		       const struct cairn_store_params *params)
{
	return store_create_keyed(store, path, params, NULL);
}

int cairn_store_create_like(struct cairn_store *store, const char *path,
			    const struct cairn_store *like)
{
	return store_create_keyed(store, path, &like->params, like->hash_key);
}

bool cairn_store_same_key(const struct cairn_store *a, const struct cairn_store *b)
{
	return a->id_fn == b->id_fn && a->params.id_hash == b->params.id_hash &&
	       memcmp(a->hash_key, b->hash_key, KEY_SIZE) == 0;
}

/* ---- tables and pack fds ---- */

void store_swap_table(struct cairn_store *store, struct chunk_table *table)
{
	struct chunk_table *old = atomic_exchange(&store->table, table);

	if (old && atomic_load(&store->unpackers) == 0) {
		table_free(old);
	} else if (old) {
		old->retired_next = store->retired;
		store->retired = old;
	}
}

static size_t fd_slot(const struct cairn_store *store, uint32_t pack_num)
{
	size_t lo = 0, hi = store->fd_count;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (store->fds[mid].pack_num < pack_num)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

static int fd_insert(struct cairn_store *store, size_t slot, uint32_t pack_num)
{
	char name[32];

	if (store->fd_count == store->fd_cap) {
		size_t cap = store->fd_cap ? store->fd_cap * 2 : 16;
		struct pack_fd *fds = realloc(store->fds, cap * sizeof(*fds));
		if (!fds)
			return -ENOMEM;
		store->fds = fds;
		store->fd_cap = cap;
	}
	pack_name(pack_num, name);
	int fd = cairn_open_file_beneath(store->packs_dirfd, name, O_RDONLY, 0);
	if (fd < 0)
		return fd;
	memmove(&store->fds[slot + 1], &store->fds[slot],
		(store->fd_count - slot) * sizeof(store->fds[0]));
	store->fds[slot] = (struct pack_fd){.pack_num = pack_num, .fd = fd};
	store->fd_count++;
	return fd;
}

int store_pack_fd(struct cairn_store *store, uint32_t pack_num)
{
	int fd;

	pthread_mutex_lock(&store->fd_lock);
	size_t slot = fd_slot(store, pack_num);
	if (slot < store->fd_count && store->fds[slot].pack_num == pack_num)
		fd = store->fds[slot].fd;
	else
		fd = fd_insert(store, slot, pack_num);
	pthread_mutex_unlock(&store->fd_lock);
	return fd;
}

void store_forget_pack_fd(struct cairn_store *store, uint32_t pack_num)
{
	pthread_mutex_lock(&store->fd_lock);
	size_t slot = fd_slot(store, pack_num);
	if (slot < store->fd_count && store->fds[slot].pack_num == pack_num) {
		close(store->fds[slot].fd);
		memmove(&store->fds[slot], &store->fds[slot + 1],
			(store->fd_count - slot - 1) * sizeof(store->fds[0]));
		store->fd_count--;
	}
	pthread_mutex_unlock(&store->fd_lock);
}

int cairn_store_pin(struct cairn_store *store)
{
	if (store->pin_fd >= 0)
		return 0;
	int fd = cairn_open_file_beneath(store->dirfd, READERS_NAME, O_RDWR | O_CREAT, 0600);
	if (fd == -EROFS || fd == -EACCES || fd == -EPERM)
		return 0;
	if (fd < 0) {
		store_set_error(store, "%s/%s: %s", store->path, READERS_NAME,
				cairn_path_strerror(fd));
		return fd;
	}
	while (flock(fd, LOCK_SH) < 0) {
		if (errno != EINTR) {
			int r = -errno;
			store_set_error(store, "%s/%s: %s", store->path, READERS_NAME,
					strerror(errno));
			close(fd);
			return r;
		}
	}
	store->pin_fd = fd;
	return 0;
}

/* ---- queries ---- */

int cairn_store_stats(const struct cairn_store *store, struct cairn_store_stats *ret)
{
	const struct chunk_table *table = store_table(store);
	struct cairn_store_stats stats = {0};

	if (!table)
		return -EBADF;
	stats.chunk_count = table->entry_count;
	stats.pack_count = table->pack_count;
	for (uint64_t i = 0; i < table->entry_count; i++) {
		stats.chunk_bytes += table->entries[i].size;
		stats.stored_bytes += entry_stored_share(&table->entries[i]);
	}
	for (uint32_t i = 0; i < table->pack_count; i++)
		stats.pack_bytes += table->packs[i].size;
	*ret = stats;
	return 0;
}

int cairn_store_chunk_info(const struct cairn_store *store, const struct cairn_id *id,
			   struct cairn_chunk_info *ret)
{
	const struct chunk_table *table = store_table(store);
	const struct table_entry *entry = table ? table_find(table, id) : NULL;

	if (!entry)
		return -ENOENT;
	*ret = (struct cairn_chunk_info){
		.size = entry->size,
		.stored_bytes = entry_stored_share(entry),
		.pack_num = entry->pack_num,
		.record_offset = entry->offset,
		.shared_frame = entry->members > 1,
	};
	return 0;
}

int cairn_store_chunk_verify(const struct cairn_store *store, const struct cairn_id *id,
			     const void *data, size_t size)
{
	const struct chunk_table *table = store_table(store);
	const struct table_entry *entry = table ? table_find(table, id) : NULL;
	struct cairn_id got;

	if (!entry)
		return -ENOENT;
	if (entry->size != size)
		return -EBADMSG;
	store_chunk_id(store, data, size, entry->variant, &got);
	return cairn_id_compare(&got, id) == 0 ? 0 : -EBADMSG;
}

bool cairn_store_has_chunk(const struct cairn_store *store, const struct cairn_id *id,
			   uint32_t *ret_size)
{
	const struct chunk_table *table = store_table(store);
	const struct table_entry *entry = table ? table_find(table, id) : NULL;

	if (entry && ret_size)
		*ret_size = entry->size;
	return entry != NULL;
}
