/* remote_open.c: opening a remote store (docs/FORMAT.md "Remote stores"):
 * the remote state, the per-host mirror directory in the user's cache,
 * checked as a trust boundary like the mount's cache, the mirror's file
 * helpers, and the sync (remote_sync.c) that binds it to the remote's
 * committed state. The store handle then works as on a local store.
 */
#include "remote.h"

#include "crypto_dl.h"
#include "curl_dl.h"
#include "s3.h"
#include "store_internal.h"

#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
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
int remote_read_whole(int dirfd, const char *name, size_t max, uint8_t **ret, size_t *ret_size)
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
int remote_install(int dirfd, const char *name, const void *data, size_t size)
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

/* Whether data is the object the manifest names: its size and checksum. */
int remote_object_check(struct remote_state *rs, const struct remote_object *object,
			const uint8_t *data, size_t size)
{
	uint64_t sum = store_checksum(data, size);

	if (size == object->size && sum == object->checksum)
		return 0;
	remote_set_error(rs,
			 "%s/%s is damaged (%zu bytes, checksum %016" PRIx64 "; expected %" PRIu64
			 " bytes, %016" PRIx64 ")",
			 rs->display, object->key, size, sum, object->size, object->checksum);
	return -EBADMSG;
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
	if ((r = remote_object_check(rs, object, buf.data, buf.size)) < 0) {
		s3_buf_free(&buf);
		return r;
	}
	*ret = buf.data;
	*ret_size = buf.size;
	return 0;
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

int remote_open(struct cairn_store *store, const char *url, const char *want)
{
	struct remote_state *rs;
	int fd;

	int r = remote_prepare(url, &rs, &fd, store->error, sizeof(store->error));
	if (r < 0)
		return r;
	store->remote = rs;
	store->dirfd = fd;
	r = remote_sync(rs, fd, false, want);
	if (r < 0) {
		store_set_error(store, "%s", rs->error);
		return r;
	}
	return store_bind(store, rs->display);
}
