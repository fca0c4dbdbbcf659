/* remote_open.c: opening a remote store (docs/FORMAT.md "Remote stores"):
 * the per-host mirror directory in the user's cache, checked as a trust
 * boundary like the mount's cache, and its sync to the remote's committed
 * state: GET cairn-head; when the mirror holds that manifest already, done
 * (one request); else GET the manifest, then the tables whose keys changed
 * (each checked against the size and XXH3 the manifest gives), make sparse
 * files for new packs, placeholders (empty files) for snapshots not yet
 * fetched, and last record the manifest in the mirror's `remote` file. The
 * store handle is then bound to the mirror and works as on a local store.
 */
#include "remote.h"

#include "crypto_dl.h"
#include "curl_dl.h"
#include "s3.h"
#include "store_internal.h"

#include <dirent.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>

void remote_set_error(struct remote_state *rs, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(rs->error, sizeof(rs->error), fmt, ap);
	va_end(ap);
}

void remote_state_free(struct remote_state *rs)
{
	if (!rs)
		return;
	remote_fetch_free(rs);
	for (size_t i = 0; rs->packs && i < rs->manifest.pack_count; i++) {
		if (rs->packs[i].fd >= 0)
			close(rs->packs[i].fd);
		if (rs->packs[i].have_fd >= 0)
			close(rs->packs[i].have_fd);
	}
	free(rs->packs);
	remote_manifest_release(&rs->manifest);
	s3_client_free(rs->client);
	s3_client_free(rs->refresh_client);
	if (rs->cfg) {
		s3_config_free(rs->cfg);
		free(rs->cfg);
	}
	pthread_mutex_destroy(&rs->lock);
	free(rs->mirror);
	free(rs);
}

static int state_new(const char *url, struct remote_state **ret, char *why, size_t why_size)
{
	struct remote_state *rs = calloc(1, sizeof(*rs));
	if (!rs)
		return -ENOMEM;
	pthread_mutex_init(&rs->lock, NULL);
	int r = remote_url_parse(url, &rs->url, why, why_size);
	if (r == 0) {
		cairn_format(rs->display, sizeof(rs->display), "s3://%s%s%s", rs->url.bucket,
			     rs->url.prefix[0] ? "/" : "", rs->url.prefix);
		rs->cfg = calloc(1, sizeof(*rs->cfg));
		r = rs->cfg ? 0 : -ENOMEM;
	}
	char load_why[400];
	if (r == 0 && (r = s3_config_load(rs->cfg, load_why, sizeof(load_why))) < 0) {
		cairn_format(why, why_size, "%s: %s", rs->display, load_why);
		free(rs->cfg);
		rs->cfg = NULL;
	}
	if (r == 0 && (r = s3_client_new(rs->cfg, rs->url.bucket, &rs->client)) < 0) {
		char dl_why[200] = "";
		if (r == -ENOSYS && curl_dl_load(dl_why, sizeof(dl_why)) == 0)
			crypto_dl_load(dl_why, sizeof(dl_why));
		cairn_format(why, why_size, "%s: %s", rs->display,
			     r == -ENOSYS ? dl_why : strerror(-r));
	}
	if (r < 0) {
		remote_state_free(rs);
		return r;
	}
	*ret = rs;
	return 0;
}

/* ---- the mirror directory ---- */

/* Whether the directory open on fd may hold the mirror: the user's own,
 * writable by no one else (whoever could write there could swap a table). */
static bool dir_trusted(int fd, char *why, size_t why_size)
{
	struct stat st;

	if (fstat(fd, &st) < 0)
		cairn_format(why, why_size, "cannot stat it: %s", strerror(errno));
	else if (st.st_uid != geteuid())
		cairn_format(why, why_size, "it is owned by uid %u, not uid %u",
			     (unsigned)st.st_uid, (unsigned)geteuid());
	else if (st.st_mode & 022)
		cairn_format(why, why_size, "its mode %04o lets other users write to it",
			     (unsigned)(st.st_mode & 07777));
	else
		return true;
	return false;
}

/* CAIRN_REMOTE_CACHE, else $XDG_CACHE_HOME/cairn/remote, else
 * ~/.cache/cairn/remote; then the hash of endpoint, bucket and prefix. */
static int mirror_open(struct remote_state *rs, int *ret_fd)
{
	const char *env = getenv("CAIRN_REMOTE_CACHE"), *xdg = getenv("XDG_CACHE_HOME");
	const char *home = getenv("HOME");
	char root[PATH_MAX], ident[1200], hex[33], why[200];

	if (env && env[0])
		cairn_format(root, sizeof(root), "%s", env);
	else if (xdg && xdg[0] == '/')
		cairn_format(root, sizeof(root), "%s/cairn/remote", xdg);
	else
		cairn_format(root, sizeof(root), "%s/.cache/cairn/remote", home ? home : "/");
	int r = cairn_mkdir_p(root, 0700, false);
	if (r < 0) {
		remote_set_error(rs, "%s: cache directory %s: %s", rs->display, root, strerror(-r));
		return r;
	}
	int n = snprintf(ident, sizeof(ident), "%s\n%s\n%s", rs->cfg->endpoint, rs->url.bucket,
			 rs->url.prefix);
	store_hash128_hex(ident, (size_t)n, hex);
	if (asprintf(&rs->mirror, "%s/%s", root, hex) < 0) {
		rs->mirror = NULL;
		return -ENOMEM;
	}
	if (mkdir(rs->mirror, 0700) < 0 && errno != EEXIST) {
		r = -errno;
		remote_set_error(rs, "%s: cache directory %s: %s", rs->display, rs->mirror,
				 strerror(errno));
		return r;
	}
	int fd = open(rs->mirror, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0 || !dir_trusted(fd, why, sizeof(why))) {
		r = fd < 0 ? -errno : -EPERM;
		if (fd >= 0)
			close(fd);
		remote_set_error(rs, "%s: refusing cache directory %s: %s", rs->display, rs->mirror,
				 fd < 0 ? strerror(-r) : why);
		return r;
	}
	*ret_fd = fd;
	return 0;
}

/* Reads dirfd/name whole (at most max bytes). -ENOENT, -EFBIG or -errno. */
static int read_whole(int dirfd, const char *name, size_t max, uint8_t **ret, size_t *ret_size)
{
	struct stat st;

	_cleanup_close_ int fd = cairn_open_file_beneath(dirfd, name, O_RDONLY, 0);
	if (fd < 0)
		return fd;
	if (fstat(fd, &st) < 0)
		return -errno;
	if ((uint64_t)st.st_size > max)
		return -EFBIG;
	uint8_t *buf = malloc((size_t)st.st_size + 1);
	if (!buf)
		return -ENOMEM;
	ssize_t n = cairn_pread_full(fd, buf, (size_t)st.st_size, 0);
	if (n < 0) {
		free(buf);
		return (int)n;
	}
	*ret = buf;
	*ret_size = (size_t)n;
	return 0;
}

/* Replaces dirfd/name with data through a temp file. */
static int install(int dirfd, const char *name, const void *data, size_t size)
{
	char tmp[64];

	_cleanup_close_ int fd = cairn_tmp_open(dirfd, "tmp-remote-", "", 0600, tmp, sizeof(tmp));
	if (fd < 0)
		return fd;
	int r = cairn_write_all(fd, data, size);
	if (r == 0 && renameat(dirfd, tmp, dirfd, name) < 0)
		r = -errno;
	if (r < 0)
		unlinkat(dirfd, tmp, 0);
	return r;
}

int remote_get_checked(struct remote_state *rs, const struct remote_object *object, uint8_t **ret,
		       size_t *ret_size)
{
	struct s3_buf buf = {0};
	char key[REMOTE_PREFIX_MAX + REMOTE_KEY_MAX + 2];

	remote_key(&rs->url, object->key, key, sizeof(key));
	int r = s3_get(rs->client, key, 0, UINT64_MAX, &buf);
	if (r < 0) {
		remote_set_error(rs, "%s", s3_error(rs->client));
		s3_buf_free(&buf);
		return r;
	}
	if (buf.size != object->size || store_checksum(buf.data, buf.size) != object->checksum) {
		remote_set_error(rs,
				 "%s/%s is damaged (%zu bytes, checksum %016" PRIx64
				 "; expected %" PRIu64 " bytes, %016" PRIx64 ")",
				 rs->display, object->key, buf.size,
				 store_checksum(buf.data, buf.size), object->size,
				 object->checksum);
		s3_buf_free(&buf);
		return -EBADMSG;
	}
	*ret = buf.data;
	*ret_size = buf.size;
	return 0;
}

/* ---- sync ---- */

/* GETs and parses cairn-head through client, a failure's message in err. */
static int head_get(const struct remote_state *rs, struct s3_client *client,
		    struct remote_head *ret, char *err, size_t err_size)
{
	struct s3_buf buf = {0};
	char key[REMOTE_PREFIX_MAX + REMOTE_KEY_MAX + 2], why[100];

	remote_key(&rs->url, REMOTE_HEAD_KEY, key, sizeof(key));
	int r = s3_get(client, key, 0, UINT64_MAX, &buf);
	if (r == -ENOENT)
		cairn_format(err, err_size, "%s: no cairn store there (no %s)", rs->display,
			     REMOTE_HEAD_KEY);
	else if (r < 0)
		cairn_format(err, err_size, "%s", s3_error(client));
	else if ((r = remote_head_parse((const char *)buf.data, buf.size, ret, why, sizeof(why))) <
		 0)
		cairn_format(err, err_size, "%s/%s is damaged: it %s", rs->display, REMOTE_HEAD_KEY,
			     why);
	s3_buf_free(&buf);
	return r;
}

int remote_get_head(struct remote_state *rs, struct remote_head *ret)
{
	return head_get(rs, rs->client, ret, rs->error, sizeof(rs->error));
}

/* The manifest the mirror holds (its `remote` file), if it parses. */
static bool mirror_manifest(int dirfd, struct remote_head *ret_head, struct remote_manifest *ret)
{
	_cleanup_free_ uint8_t *text = NULL;
	size_t size;
	char why[100];

	if (read_whole(dirfd, REMOTE_FILE, REMOTE_MANIFEST_MAX, &text, &size) < 0 ||
	    remote_manifest_parse((const char *)text, size, ret, why, sizeof(why)) < 0)
		return false;
	ret_head->generation = ret->generation;
	ret_head->manifest.size = size;
	ret_head->manifest.checksum = store_checksum(text, size);
	return true;
}

/* Installs object as the mirror's name unless old has it under the same
 * key already (and the mirror was not changed by a writer). */
static int sync_table(struct remote_state *rs, int dirfd, const char *name,
		      const struct remote_object *object, const struct remote_object *old)
{
	_cleanup_free_ uint8_t *data = NULL;
	size_t size;

	if (old && strcmp(old->key, object->key) == 0)
		return 0;
	int r = remote_get_checked(rs, object, &data, &size);
	if (r == 0 && (r = install(dirfd, name, data, size)) < 0)
		remote_set_error(rs, "%s/%s: %s", rs->mirror, name, strerror(-r));
	return r;
}

static int sync_config(struct remote_state *rs, int dirfd, const struct remote_manifest *m)
{
	_cleanup_free_ uint8_t *have = NULL;
	size_t size;

	if (read_whole(dirfd, "config", REMOTE_CONFIG_SIZE, &have, &size) == 0 &&
	    size == REMOTE_CONFIG_SIZE && memcmp(have, m->config, size) == 0)
		return 0;
	int r = install(dirfd, "config", m->config, REMOTE_CONFIG_SIZE);
	if (r < 0)
		remote_set_error(rs, "%s/config: %s", rs->mirror, strerror(-r));
	return r;
}

/* A new sparse pack file of the pack's size, and an empty .have beside it. */
static int make_sparse_pack(int packs_fd, const struct remote_pack *pack)
{
	char name[32], have[40], tmp[64];

	pack_name(pack->pack_num, name);
	cairn_format(have, sizeof(have), "%08" PRIx32 ".have", pack->pack_num);
	if (unlinkat(packs_fd, have, 0) < 0 && errno != ENOENT)
		return -errno;
	_cleanup_close_ int fd =
		cairn_tmp_open(packs_fd, "tmp-remote-", "", 0600, tmp, sizeof(tmp));
	if (fd < 0)
		return fd;
	int r = ftruncate(fd, (off_t)pack->size) < 0 ? -errno : 0;
	if (r == 0 && renameat(packs_fd, tmp, packs_fd, name) < 0)
		r = -errno;
	if (r < 0)
		unlinkat(packs_fd, tmp, 0);
	return r;
}

/* Whether name in packs/ is a pack or .have of no pack in m (to remove). */
static bool pack_unlisted(const char *name, const struct remote_manifest *m)
{
	uint32_t num;
	char copy[32];

	if (strlen(name) != 13 ||
	    (strcmp(name + 8, ".pack") != 0 && strcmp(name + 8, ".have") != 0))
		return false;
	cairn_format(copy, sizeof(copy), "%.8s.pack", name);
	return pack_parse_name(copy, &num) == 0 && !remote_manifest_pack(m, num);
}

/* Whether another writer of this host holds the mirror's writer lock: its
 * local commits, not pushed yet, must not be swept away by a reader. */
static bool writer_active(int dirfd)
{
	_cleanup_close_ int fd = cairn_open_file_beneath(dirfd, LOCK_NAME, O_RDONLY, 0);

	if (fd < 0)
		return false;
	if (flock(fd, LOCK_SH | LOCK_NB) < 0)
		return errno == EWOULDBLOCK;
	flock(fd, LOCK_UN);
	return false;
}

static int sync_packs(int dirfd, const struct remote_manifest *m, const struct remote_manifest *old,
		      bool sweep)
{
	if (mkdirat(dirfd, "packs", 0700) < 0 && errno != EEXIST)
		return -errno;
	_cleanup_close_ int packs_fd = cairn_open_dir_beneath(dirfd, "packs");
	if (packs_fd < 0)
		return packs_fd;
	for (size_t i = 0; i < m->pack_count; i++) {
		const struct remote_pack *was =
			old ? remote_manifest_pack(old, m->packs[i].pack_num) : NULL;
		char name[32];
		pack_name(m->packs[i].pack_num, name);
		if (was && strcmp(was->key, m->packs[i].key) == 0 &&
		    faccessat(packs_fd, name, F_OK, AT_SYMLINK_NOFOLLOW) == 0)
			continue;
		int r = make_sparse_pack(packs_fd, &m->packs[i]);
		if (r < 0)
			return r;
	}
	DIR *dir = cairn_opendir_dup(packs_fd);
	if (!dir)
		return -errno;
	for (struct dirent *de; sweep && (de = readdir(dir));)
		if (pack_unlisted(de->d_name, m))
			unlinkat(packs_fd, de->d_name, 0);
	closedir(dir);
	return 0;
}

/* A snapshot file of the mirror matches the manifest's object: it is the
 * placeholder (not fetched yet) or holds the object's bytes. */
static bool snapshot_current(int snaps_fd, const char *name, const struct remote_object *object,
			     bool check_bytes)
{
	_cleanup_free_ uint8_t *data = NULL;
	size_t size;
	struct stat st;

	if (fstatat(snaps_fd, name, &st, AT_SYMLINK_NOFOLLOW) < 0 || !S_ISREG(st.st_mode))
		return false;
	if (st.st_size == 0 || !check_bytes)
		return true;
	return read_whole(snaps_fd, name, object->size, &data, &size) == 0 &&
	       size == object->size && store_checksum(data, size) == object->checksum;
}

static int sync_snapshots(int dirfd, const struct remote_manifest *m,
			  const struct remote_manifest *old, bool full, bool sweep)
{
	if (mkdirat(dirfd, REMOTE_SNAPSHOTS, 0700) < 0 && errno != EEXIST)
		return -errno;
	_cleanup_close_ int snaps_fd = cairn_open_dir_beneath(dirfd, REMOTE_SNAPSHOTS);
	if (snaps_fd < 0)
		return snaps_fd;
	for (size_t i = 0; i < m->snapshot_count; i++) {
		const struct remote_snapshot *s = &m->snapshots[i];
		const struct remote_snapshot *was =
			old ? remote_manifest_snapshot(old, s->name) : NULL;
		if (was && strcmp(was->object.key, s->object.key) == 0 &&
		    snapshot_current(snaps_fd, s->name, &s->object, full))
			continue;
		int r = install(snaps_fd, s->name, "", 0);
		if (r < 0)
			return r;
	}
	DIR *dir = cairn_opendir_dup(snaps_fd);
	if (!dir)
		return -errno;
	for (struct dirent *de; sweep && (de = readdir(dir));)
		if (strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0 &&
		    strncmp(de->d_name, "tmp-", 4) != 0 && !remote_manifest_snapshot(m, de->d_name))
			unlinkat(snaps_fd, de->d_name, 0);
	closedir(dir);
	return 0;
}

static int install_manifest(struct remote_state *rs, int dirfd, const uint8_t *text, size_t size)
{
	int r = install(dirfd, REMOTE_FILE, text, size);
	if (r < 0) {
		remote_set_error(rs, "%s/%s: %s", rs->mirror, REMOTE_FILE, strerror(-r));
		return r;
	}
	if (unlinkat(dirfd, REMOTE_DIRTY, 0) < 0 && errno != ENOENT)
		return -errno;
	return 0;
}

/* The sync proper, under the mirror's lock. writer: the caller holds the
 * writer lock. known: the pointer when the caller has just fetched it (a
 * refresh), else NULL: it is fetched here. swap_lock (a refresh's, or
 * NULL): held exclusively while rs->manifest is replaced. */
static int sync_locked(struct remote_state *rs, int dirfd, bool writer,
		       const struct remote_head *known, pthread_rwlock_t *swap_lock)
{
	struct remote_head head, old_head = {0};
	struct remote_manifest m = {0}, old = {0};
	_cleanup_free_ uint8_t *text = NULL;
	size_t size;
	char why[100];

	bool have_old = mirror_manifest(dirfd, &old_head, &old);
	bool sweep = writer || !writer_active(dirfd);
	bool full = sweep && faccessat(dirfd, REMOTE_DIRTY, F_OK, AT_SYMLINK_NOFOLLOW) == 0;
	int r = 0;
	if (known)
		head = *known;
	else if ((r = remote_get_head(rs, &head)) < 0)
		goto out;
	if (have_old && !full && old_head.manifest.size == head.manifest.size &&
	    old_head.manifest.checksum == head.manifest.checksum) {
		m = old;
		old = (struct remote_manifest){0};
		goto done;
	}
	r = remote_get_checked(rs, &head.manifest, &text, &size);
	if (r < 0)
		goto out;
	if ((r = remote_manifest_parse((const char *)text, size, &m, why, sizeof(why))) < 0) {
		remote_set_error(rs, "%s/%s %s", rs->display, head.manifest.key, why);
		goto out;
	}
	const struct remote_manifest *was = have_old && !full ? &old : NULL;
	r = sync_config(rs, dirfd, &m);
	if (r == 0)
		r = sync_table(rs, dirfd, TABLE_NAME, &m.chunks, was ? &was->chunks : NULL);
	if (r == 0 && m.has_sketches)
		r = sync_table(rs, dirfd, "sketches", &m.sketches,
			       was && was->has_sketches ? &was->sketches : NULL);
	else if (r == 0 && unlinkat(dirfd, "sketches", 0) < 0 && errno != ENOENT)
		r = -errno;
	if (r == 0)
		r = sync_packs(dirfd, &m, have_old ? &old : NULL, sweep);
	if (r == 0)
		r = sync_snapshots(dirfd, &m, have_old ? &old : NULL, full, sweep);
	if (r == 0)
		r = install_manifest(rs, dirfd, text, size);
	if (r < 0 && !rs->error[0])
		remote_set_error(rs, "%s: syncing its mirror %s: %s", rs->display, rs->mirror,
				 strerror(-r));
	if (r < 0)
		goto out;
done:
	if (swap_lock)
		pthread_rwlock_wrlock(swap_lock);
	remote_manifest_release(&rs->manifest);
	rs->manifest = m;
	m = (struct remote_manifest){0};
	rs->head = head;
	if (swap_lock)
		pthread_rwlock_unlock(swap_lock);
out:
	remote_manifest_release(&m);
	remote_manifest_release(&old);
	return r;
}

static void packs_close(struct remote_pack_cache *packs, size_t count)
{
	for (size_t i = 0; packs && i < count; i++) {
		if (packs[i].fd >= 0)
			close(packs[i].fd);
		if (packs[i].have_fd >= 0)
			close(packs[i].have_fd);
	}
	free(packs);
}

/* The cache entry of old for p (same number and key), or NULL. */
static struct remote_pack_cache *pack_was(struct remote_pack_cache *old, size_t old_count,
					  const struct remote_pack *p)
{
	for (size_t lo = 0, hi = old_count; lo < hi;) {
		size_t mid = lo + (hi - lo) / 2;
		if (old[mid].pack_num == p->pack_num)
			return strcmp(old[mid].key, p->key) == 0 && old[mid].size == p->size
				       ? &old[mid]
				       : NULL;
		if (old[mid].pack_num < p->pack_num)
			lo = mid + 1;
		else
			hi = mid;
	}
	return NULL;
}

/* rs->packs for rs->manifest. A pack old (the entries before a sync, sorted
 * by number, taken over) had under the same key keeps its entry: its open
 * files, and the holds of readers between a fetch and its pread (a mount
 * refreshing while it reads). */
static int packs_prepare(struct remote_state *rs, struct remote_pack_cache *old, size_t old_count)
{
	rs->packs = calloc(rs->manifest.pack_count + 1, sizeof(*rs->packs));
	for (size_t i = 0; rs->packs && i < rs->manifest.pack_count; i++) {
		const struct remote_pack *p = &rs->manifest.packs[i];
		struct remote_pack_cache *was = pack_was(old, old_count, p);
		if (was) {
			rs->packs[i] = *was;
			was->fd = was->have_fd = -1;
			continue;
		}
		rs->packs[i] = (struct remote_pack_cache){
			.pack_num = p->pack_num, .size = p->size, .fd = -1, .have_fd = -1};
		memcpy(rs->packs[i].key, p->key, sizeof(p->key));
	}
	packs_close(old, old_count);
	return rs->packs ? 0 : -ENOMEM;
}

/* remote_sync, with the pointer when the caller fetched it already. */
static int sync_with(struct remote_state *rs, int dirfd, bool writer,
		     const struct remote_head *known, pthread_rwlock_t *swap_lock)
{
	while (flock(dirfd, LOCK_EX) < 0)
		if (errno != EINTR)
			return -errno;
	pthread_mutex_lock(&rs->lock);
	/* No GET in flight into an entry about to be moved or closed: readers
	 * look their pack up again after a wait (remote_fetch.c), and the
	 * lock is held from here until the new entries are in place. */
	remote_fetch_drain(rs);
	struct remote_pack_cache *old = TAKE_PTR(rs->packs);
	size_t old_count = rs->manifest.pack_count;
	rs->error[0] = '\0';
	int r = sync_locked(rs, dirfd, writer, known, swap_lock);
	int p = packs_prepare(rs, old, old_count);
	pthread_mutex_unlock(&rs->lock);
	flock(dirfd, LOCK_UN);
	return r < 0 ? r : p;
}

int remote_sync(struct remote_state *rs, int dirfd, bool writer)
{
	return sync_with(rs, dirfd, writer, NULL, NULL);
}

/* A mount's refresh: one GET of the pointer, and a sync only when it names
 * another manifest than the one this handle holds. The GET goes through a
 * client of its own, without rs->lock: readers keep fetching while it waits
 * out an engine's retries. */
int remote_refresh(struct remote_state *rs, int dirfd, pthread_rwlock_t *swap_lock)
{
	struct remote_head head;
	char err[sizeof(rs->error)] = "";

	int r = rs->refresh_client ? 0
				   : s3_client_new(rs->cfg, rs->url.bucket, &rs->refresh_client);
	if (r < 0)
		cairn_format(err, sizeof(err), "%s: %s", rs->display, strerror(-r));
	else
		r = head_get(rs, rs->refresh_client, &head, err, sizeof(err));
	pthread_mutex_lock(&rs->lock);
	if (r < 0)
		cairn_format(rs->error, sizeof(rs->error), "%s", err);
	bool same = r == 0 && head.generation == rs->head.generation &&
		    head.manifest.size == rs->head.manifest.size &&
		    head.manifest.checksum == rs->head.manifest.checksum &&
		    strcmp(head.manifest.key, rs->head.manifest.key) == 0;
	pthread_mutex_unlock(&rs->lock);
	if (r < 0 || same)
		return r;
	r = sync_with(rs, dirfd, false, &head, swap_lock);
	return r < 0 ? r : 1;
}

int remote_prepare(const char *url, struct remote_state **ret, int *ret_fd, char *why,
		   size_t why_size)
{
	struct remote_state *rs = NULL;

	int r = state_new(url, &rs, why, why_size);
	if (r < 0)
		return r;
	r = mirror_open(rs, ret_fd);
	if (r < 0) {
		cairn_format(why, why_size, "%s", rs->error);
		remote_state_free(rs);
		return r;
	}
	*ret = rs;
	return 0;
}

int remote_open(struct cairn_store *store, const char *url)
{
	struct remote_state *rs;
	int fd;

	int r = remote_prepare(url, &rs, &fd, store->error, sizeof(store->error));
	if (r < 0)
		return r;
	store->remote = rs;
	store->dirfd = fd;
	r = remote_sync(rs, fd, false);
	if (r < 0) {
		store_set_error(store, "%s", rs->error);
		return r;
	}
	return store_bind(store, rs->display);
}

int remote_adopt(struct remote_state *rs, int dirfd, const struct remote_head *head,
		 struct remote_manifest *m, const char *text, size_t size)
{
	pthread_mutex_lock(&rs->lock);
	remote_fetch_drain(rs); /* as in sync_with */
	struct remote_pack_cache *old = TAKE_PTR(rs->packs);
	size_t old_count = rs->manifest.pack_count;
	remote_manifest_release(&rs->manifest);
	rs->manifest = *m;
	*m = (struct remote_manifest){0};
	rs->head = *head;
	int r = install_manifest(rs, dirfd, (const uint8_t *)text, size);
	int p = packs_prepare(rs, old, old_count);
	pthread_mutex_unlock(&rs->lock);
	return r < 0 ? r : p;
}
