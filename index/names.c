/* names.c: STORE/snapshots/: which snapshot names are allowed, the default
 * name of an archive, listing, removing a snapshot, and removing the temp
 * files of writers that died. Names are checked here once so that no other layer has to think
 * about '/', "..", hidden files or the "tmp-" prefix that temp files use.
 */
#include "index_internal.h"

#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

static const char *name_problem(const char *name)
{
	size_t len = strlen(name);

	if (len == 0)
		return "it is empty";
	if (len > CAIRN_SNAPSHOT_NAME_MAX)
		return "it is longer than 200 bytes";
	if (name[0] == '.' || name[0] == '-')
		return "it starts with '.' or '-'";
	if (strncmp(name, SNAPSHOT_TMP_PREFIX, strlen(SNAPSHOT_TMP_PREFIX)) == 0)
		return "names starting with \"tmp-\" are reserved for temp files";
	for (const unsigned char *p = (const unsigned char *)name; *p; p++) {
		if (*p <= ' ' || *p == 0x7f)
			return "it contains a space or a control character";
		if (*p == '/' || *p == ':' || *p == '\\')
			return "it contains '/', ':' or '\\'";
	}
	return NULL;
}

int cairn_snapshot_name_check(const char *name, char *msg, size_t msg_size)
{
	const char *why = name_problem(name);

	if (!why)
		return 0;
	if (msg)
		cairn_format(msg, msg_size, "'%s' is not a valid snapshot name: %s", name, why);
	return -EINVAL;
}

static bool strip_suffix(char *name, const char *suffix)
{
	size_t len = strlen(name), slen = strlen(suffix);

	if (len <= slen || strcasecmp(name + len - slen, suffix) != 0)
		return false;
	name[len - slen] = '\0';
	return true;
}

/* The first volume of a multi-volume RAR archive is named as the whole:
 * NAME.part1.rar (part01, ...) as NAME.rar, as `cairn add` reads it
 * (cli/add_split.c). */
static void strip_rar_volume(char *name)
{
	size_t len = strlen(name);

	if (len < 4 || strcmp(name + len - 4, ".rar") != 0)
		return;
	name[len - 4] = '\0';
	char *part = strrchr(name, '.');
	if (part && part > name && strncmp(part, ".part", 5) == 0) {
		size_t digits = strspn(part + 5, "0123456789");
		if (digits >= 1 && digits <= 6 && !part[5 + digits] &&
		    strtoul(part + 5, NULL, 10) == 1)
			*part = '\0';
	}
	strcat(name, ".rar");
}

/* The first part of a split archive is named as the whole: NAME.zip.001
 * (3 to 6 digits, as cli/add_split.c finds parts) as NAME.zip. */
static void strip_split_part(char *name)
{
	char *dot = strrchr(name, '.');

	if (!dot || dot == name)
		return;
	size_t digits = strspn(dot + 1, "0123456789");
	if (digits >= 3 && digits <= 6 && !dot[1 + digits] && strtoul(dot + 1, NULL, 10) == 1)
		*dot = '\0';
}

int cairn_snapshot_default_name(const char *path, char *buf, size_t buf_size, char *msg,
				size_t msg_size)
{
	static const char *const compressions[] = {".gz",  ".bz2", ".xz",   ".zst", ".zstd",
						   ".lz4", ".lz",  ".lzma", ".Z",   ".uu"};
	static const char *const archives[] = {
		".tar", ".tgz", ".taz", ".tbz", ".tbz2", ".txz", ".tzst", ".tlz", ".tlz4",
		".zip", ".jar", ".7z",  ".iso", ".cpio", ".deb", ".a",    ".ar",  ".rar",
		".rpm", ".cab", ".xar", ".lha", ".lzh",  ".cbz", ".cbr",  ".cb7", ".whl"};
	const char *slash = strrchr(path, '/');
	const char *base = slash ? slash + 1 : path;

	if (strlen(base) >= buf_size)
		return -ENAMETOOLONG;
	strcpy(buf, base);
	strip_rar_volume(buf);
	strip_split_part(buf);
	for (size_t i = 0; i < ARRAY_SIZE(compressions); i++)
		if (strip_suffix(buf, compressions[i]))
			break;
	for (size_t i = 0; i < ARRAY_SIZE(archives); i++)
		if (strip_suffix(buf, archives[i]))
			break;
	return cairn_snapshot_name_check(buf, msg, msg_size);
}

int snapshots_dir_open(const struct cairn_store *store)
{
	return cairn_open_dir_beneath(cairn_store_dirfd(store), SNAPSHOTS_DIR);
}

int cairn_snapshot_dir_check(const struct cairn_store *store, char *msg, size_t msg_size)
{
	int r = cairn_check_beneath(cairn_store_dirfd(store), SNAPSHOTS_DIR, true);

	if (r < 0)
		cairn_format(msg, msg_size, "%s/%s: %s", cairn_store_path(store), SNAPSHOTS_DIR,
			     cairn_path_strerror(r));
	return r;
}

int cairn_snapshot_exists(const struct cairn_store *store, const char *name)
{
	if (name_problem(name))
		return 0;
	_cleanup_close_ int dirfd = snapshots_dir_open(store);
	if (dirfd < 0)
		return dirfd == -ENOENT ? 0 : dirfd;
	if (faccessat(dirfd, name, F_OK, AT_SYMLINK_NOFOLLOW) == 0)
		return 1;
	return errno == ENOENT ? 0 : -errno;
}

/* STORE/snapshots as a DIR, or NULL with errno set. */
static DIR *open_snapshots(const struct cairn_store *store)
{
	int fd = snapshots_dir_open(store);
	if (fd < 0) {
		errno = -fd;
		return NULL;
	}
	DIR *dir = fdopendir(fd);
	if (!dir) {
		int saved = errno;
		close(fd);
		errno = saved;
	}
	return dir;
}

static int compare_names(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

void cairn_snapshot_names_free(char **names, size_t count)
{
	for (size_t i = 0; names && i < count; i++)
		free(names[i]);
	free(names);
}

static int names_add(char ***names, size_t *count, size_t *cap, const char *name)
{
	if (*count == *cap) {
		size_t new_cap = *cap ? *cap * 2 : 16;
		char **grown = realloc(*names, new_cap * sizeof(*grown));
		if (!grown)
			return -ENOMEM;
		*names = grown;
		*cap = new_cap;
	}
	(*names)[*count] = strdup(name);
	if (!(*names)[*count])
		return -ENOMEM;
	(*count)++;
	return 0;
}

int cairn_snapshot_list(const struct cairn_store *store, char ***ret_names, size_t *ret_count)
{
	char **names = NULL;
	size_t count = 0, cap = 0;
	int r = 0;

	DIR *dir = open_snapshots(store);
	if (!dir && errno != ENOENT)
		return -errno;
	for (struct dirent *de; dir && r == 0 && (de = readdir(dir));)
		if (!name_problem(de->d_name))
			r = names_add(&names, &count, &cap, de->d_name);
	if (dir)
		closedir(dir);
	if (r < 0) {
		cairn_snapshot_names_free(names, count);
		return r;
	}
	if (count > 1) /* names is NULL when there are none: qsort(NULL, 0) is undefined */
		qsort(names, count, sizeof(*names), compare_names);
	*ret_names = names;
	*ret_count = count;
	return 0;
}

int cairn_snapshot_remove(const struct cairn_store *store, const char *name, char *msg,
			  size_t msg_size)
{
	if (name_problem(name)) {
		cairn_format(msg, msg_size, "%s: not a snapshot name", name);
		return -EINVAL;
	}
	_cleanup_close_ int dirfd = snapshots_dir_open(store);
	if (dirfd < 0) {
		cairn_format(msg, msg_size, "%s/%s: %s", cairn_store_path(store), SNAPSHOTS_DIR,
			     cairn_path_strerror(dirfd));
		return dirfd;
	}
	if (unlinkat(dirfd, name, 0) < 0) {
		int r = -errno;
		cairn_format(msg, msg_size, "%s/%s/%s: %s", cairn_store_path(store), SNAPSHOTS_DIR,
			     name, strerror(-r));
		return r;
	}
	int r = fsync(dirfd) < 0 ? -errno : 0;
	if (r < 0) {
		cairn_format(msg, msg_size, "%s/%s: fsync: %s", cairn_store_path(store),
			     SNAPSHOTS_DIR, strerror(-r));
		return r;
	}
	return 0;
}

int cairn_snapshot_remove_leftovers(const struct cairn_store *store, struct cairn_leftovers *ret)
{
	DIR *dir = open_snapshots(store);
	struct stat st;

	if (!dir)
		return errno == ENOENT ? 0 : -errno;
	for (struct dirent *de; (de = readdir(dir));) {
		if (strncmp(de->d_name, SNAPSHOT_TMP_PREFIX, strlen(SNAPSHOT_TMP_PREFIX)) != 0 ||
		    fstatat(dirfd(dir), de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0 ||
		    unlinkat(dirfd(dir), de->d_name, 0) < 0 || !ret)
			continue;
		ret->files++;
		ret->bytes += (uint64_t)st.st_size;
	}
	closedir(dir);
	return 0;
}

int64_t cairn_snapshot_leftovers(struct cairn_store *store, cairn_leftover_fn fn, void *userdata)
{
	static const char *const dirs[] = {SNAPSHOTS_DIR, NULL};

	return cairn_store_leftovers(store, dirs, fn, userdata);
}
