/* commit.c: making an imported snapshot durable and visible. The order is
 * what keeps invariant 1: the snapshot is written to
 * snapshots/tmp-*, the store writer commits (every chunk the snapshot names
 * is durable and in the chunk table), and only then is the snapshot fsynced
 * and renamed into place. A crash at any point leaves at most a temp file,
 * which the next add removes.
 */
#include "import_internal.h"

#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

static int open_snapshots_dir(struct cairn_import *imp, int *ret)
{
	int dirfd = cairn_store_dirfd(imp->store);

	if (mkdirat(dirfd, SNAPSHOTS_DIR, 0700) < 0 && errno != EEXIST)
		return import_fail(imp, -errno, "%s/%s: %s", cairn_store_path(imp->store),
				   SNAPSHOTS_DIR, strerror(errno));
	int fd = snapshots_dir_open(imp->store);
	if (fd < 0)
		return import_fail(imp, fd, "%s/%s: %s", cairn_store_path(imp->store),
				   SNAPSHOTS_DIR, cairn_path_strerror(fd));
	*ret = fd;
	return 0;
}

static int write_tmp(struct cairn_import *imp, int dirfd, char *tmp_name, size_t tmp_size,
		     int *ret_fd)
{
	char msg[300];
	struct write_totals totals = {
		.entry_count = imp->entries,
		.skipped = imp->skipped,
		.partial = imp->partial,
		.source = &imp->source,
		.source_name = imp->source_name,
	};

	int fd = cairn_tmp_open(dirfd, SNAPSHOT_TMP_PREFIX, "", 0600, tmp_name, tmp_size);
	if (fd < 0)
		return import_fail(imp, fd, "creating a temp file in %s/%s: %s",
				   cairn_store_path(imp->store), SNAPSHOTS_DIR, strerror(-fd));
	int r = tree_write(&imp->tree, imp->store, fd, &totals, msg, sizeof(msg));
	if (r < 0) {
		close(fd);
		unlinkat(dirfd, tmp_name, 0);
		return import_fail(imp, r, "%s/%s/%s: %s", cairn_store_path(imp->store),
				   SNAPSHOTS_DIR, tmp_name, msg);
	}
	*ret_fd = fd;
	return 0;
}

static int check_name(struct cairn_import *imp, int dirfd, const char *name, unsigned flags)
{
	char why[300];

	if (cairn_snapshot_name_check(name, why, sizeof(why)) < 0)
		return import_fail(imp, -EINVAL, "%s", why);
	if (flags & CAIRN_IMPORT_REPLACE)
		return 0;
	if (faccessat(dirfd, name, F_OK, AT_SYMLINK_NOFOLLOW) == 0)
		return import_fail(imp, -EEXIST, "a snapshot named %s already exists in %s", name,
				   cairn_store_path(imp->store));
	if (errno != ENOENT)
		return import_fail(imp, -errno, "%s: %s", name, strerror(errno));
	return 0;
}

int cairn_import_commit(struct cairn_import *imp, const char *name, unsigned flags)
{
	_cleanup_close_ int dirfd = -1;
	_cleanup_close_ int fd = -1;
	char tmp_name[64];
	struct stat st;
	bool renamed = false;

	if (!imp->imported || imp->committed)
		return -EINVAL;
	imp->entry_path = NULL;
	int r = open_snapshots_dir(imp, &dirfd);
	if (r == 0)
		r = check_name(imp, dirfd, name, flags);
	if (r == 0)
		r = write_tmp(imp, dirfd, tmp_name, sizeof(tmp_name), &fd);
	if (r < 0)
		return r;
	r = cairn_writer_commit(imp->writer);
	if (r < 0)
		import_fail(imp, r, "committing the store: %s", cairn_writer_error(imp->writer));
	else if ((r = cairn_commit_file(dirfd, fd, tmp_name, name, &renamed)) < 0)
		import_fail(imp, r,
			    renamed ? "snapshot %s is in place, but the fsync of %s/%s failed: %s"
				    : "committing snapshot %s as %s/%s: %s",
			    name, cairn_store_path(imp->store), SNAPSHOTS_DIR, strerror(-r));
	if (r < 0) {
		unlinkat(dirfd, tmp_name, 0);
		return r;
	}
	if (fstat(fd, &st) == 0)
		imp->snapshot_size = (uint64_t)st.st_size;
	struct snap_header header;
	if (cairn_pread_full(fd, &header, sizeof(header), 0) == sizeof(header))
		imp->snapshot_entries = header.dirent_count - imp->tree.hidden_dirents;
	imp->committed = true;
	return 0;
}
