/* leftovers.c: what writers that died leave behind (invariant 1): temp
 * files and sealed packs that no committed chunk table lists. A writer
 * removes them when it opens (it holds the lock: nothing else is writing),
 * verify lists them; the one rule that tells a leftover lives here, so
 * both agree on it.
 */
#include "store_internal.h"

#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>

bool store_is_leftover(const char *name, enum leftover_dir where, const struct chunk_table *table)
{
	size_t len = strlen(name);
	uint32_t num;

	if (strncmp(name, "tmp-", 4) == 0)
		return true;
	if (where == LEFTOVER_OTHER)
		return false; /* "x.tmp" may be a name the layer above allows */
	if (len > 4 && strcmp(name + len - 4, ".tmp") == 0)
		return true;
	return where == LEFTOVER_PACKS && pack_parse_name(name, &num) == 0 &&
	       !table_find_pack(table, num);
}

struct lister {
	const struct chunk_table *table;
	cairn_leftover_fn fn;
	void *userdata;
	int64_t found;
};

/* Reports the leftovers in dirfd/sub ("" for the store's directory). A
 * missing subdirectory has none. */
static int list_in(struct lister *l, int dirfd, const char *sub, enum leftover_dir where)
{
	char path[512];
	struct stat st;

	int fd = cairn_open_dir_beneath(dirfd, *sub ? sub : ".");
	if (fd < 0)
		return fd == -ENOENT ? 0 : fd;
	DIR *dir = fdopendir(fd);
	if (!dir) {
		close(fd);
		return -errno;
	}
	for (struct dirent *de; (de = readdir(dir));) {
		if (!store_is_leftover(de->d_name, where, l->table) ||
		    fstatat(fd, de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0 || !S_ISREG(st.st_mode))
			continue;
		snprintf(path, sizeof(path), "%s%s%s", sub, *sub ? "/" : "", de->d_name);
		l->found++;
		if (l->fn)
			l->fn(l->userdata, path, (uint64_t)st.st_size);
	}
	closedir(dir);
	return 0;
}

/* Takes a shared lock on STORE/lock without waiting: while it is held, no
 * writer is at work. *ret_fd is the locked fd, or -1 when the store never
 * had a writer (no lock file). Returns 0, -EBUSY (a writer holds it) or
 * another -errno. */
static int lock_shared(struct cairn_store *store, int *ret_fd)
{
	int fd = cairn_open_file_beneath(store->dirfd, LOCK_NAME, O_RDONLY, 0);

	*ret_fd = -1;
	if (fd < 0)
		return fd == -ENOENT ? 0 : fd;
	while (flock(fd, LOCK_SH | LOCK_NB) < 0) {
		if (errno == EINTR)
			continue;
		int r = errno == EWOULDBLOCK ? -EBUSY : -errno;
		close(fd);
		return r;
	}
	*ret_fd = fd;
	return 0;
}

/* Sets the store's error, naming the directory, when one cannot be listed. */
static int list_all(struct cairn_store *store, struct lister *l, const char *const *dirs)
{
	const char *sub = "";
	int r = list_in(l, store->dirfd, sub, LEFTOVER_TOP);
	if (r == 0)
		r = list_in(l, store->dirfd, sub = "packs", LEFTOVER_PACKS);
	for (size_t i = 0; r == 0 && dirs && dirs[i]; i++)
		r = list_in(l, store->dirfd, sub = dirs[i], LEFTOVER_OTHER);
	if (r < 0)
		store_set_error(store, "%s%s%s: looking for leftovers: %s", store->path,
				*sub ? "/" : "", sub, cairn_path_strerror(r));
	return r;
}

int64_t cairn_store_leftovers(struct cairn_store *store, const char *const *dirs,
			      cairn_leftover_fn fn, void *userdata)
{
	struct chunk_table *table = NULL;
	struct lister l = {.fn = fn, .userdata = userdata};
	char msg[400] = "cannot read the chunk table";

	_cleanup_close_ int lock = -1;
	int r = lock_shared(store, &lock);
	if (r < 0) {
		if (r == -EBUSY)
			store_set_error(store, "%s: a writer is at work", store->path);
		else
			store_set_error(store, "%s/%s: %s", store->path, LOCK_NAME,
					cairn_path_strerror(r));
		return r;
	}
	/* A writer may have committed since the handle mapped its table:
	 * only the table now in place says which packs are strays. */
	r = table_load(store->dirfd, &table, msg, sizeof(msg));
	if (r < 0) {
		store_set_error(store, "%s: %s", store->path, msg);
		return r;
	}
	l.table = table;
	r = list_all(store, &l, dirs);
	table_free(table);
	return r < 0 ? r : l.found;
}
