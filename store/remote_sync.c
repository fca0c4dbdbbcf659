/* remote_sync.c: a remote store's mirror synced to the remote's committed
 * state (docs/FORMAT.md "Remote stores"): GET cairn-head (or take the one
 * this process read a moment ago); when the mirror holds that manifest
 * already, done (one request; a writer also fetches the sketches if a
 * reader left them out); else GET the manifest, then, at once, the chunk
 * table if its key changed (the sketches too, for a writer) and the
 * snapshot the caller will open (each checked against the size and XXH3
 * the manifest gives), make sparse files for new packs, placeholders
 * (empty files) for snapshots not yet fetched, and last record the
 * manifest in the mirror's `remote` file. Also a mount's refresh, and a
 * writer's adoption of what it committed.
 */
#include "remote.h"

#include "s3.h"
#include "store_internal.h"

#include <dirent.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>

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

/* The pointer a reader's sync in this process read last, and when: a
 * reader's open of the same store (endpoint and URL) within HEAD_FRESH_MS
 * takes it instead of asking again. That is the mount's daemon, forked
 * right after the command synced to resolve its snapshots: one round trip
 * less before the first stat. A commit or gc by this process forgets it. */
#define HEAD_FRESH_MS 1000
static pthread_mutex_t memo_lock = PTHREAD_MUTEX_INITIALIZER;
static struct {
	bool set;
	char endpoint[256], display[sizeof(((struct remote_state *)0)->display)];
	struct remote_head head;
	int64_t at_ms;
} memo;

static bool memo_same(const struct remote_state *rs)
{
	return memo.set && strcmp(memo.display, rs->display) == 0 &&
	       strcmp(memo.endpoint, rs->cfg->endpoint) == 0;
}

static void memo_keep(const struct remote_state *rs, const struct remote_head *head)
{
	if (strlen(rs->cfg->endpoint) >= sizeof(memo.endpoint))
		return;
	pthread_mutex_lock(&memo_lock);
	memo.set = true;
	snprintf(memo.endpoint, sizeof(memo.endpoint), "%s", rs->cfg->endpoint);
	snprintf(memo.display, sizeof(memo.display), "%s", rs->display);
	memo.head = *head;
	memo.at_ms = (int64_t)(cairn_now_ns() / 1000000u);
	pthread_mutex_unlock(&memo_lock);
}

static bool memo_recent(const struct remote_state *rs, struct remote_head *ret)
{
	pthread_mutex_lock(&memo_lock);
	bool fresh =
		memo_same(rs) && (int64_t)(cairn_now_ns() / 1000000u) - memo.at_ms < HEAD_FRESH_MS;
	if (fresh)
		*ret = memo.head;
	pthread_mutex_unlock(&memo_lock);
	return fresh;
}

void remote_head_forget(void)
{
	pthread_mutex_lock(&memo_lock);
	memo.set = false;
	pthread_mutex_unlock(&memo_lock);
}

/* The manifest the mirror holds (its `remote` file), if it parses. */
static bool mirror_manifest(int dirfd, struct remote_head *ret_head, struct remote_manifest *ret)
{
	_cleanup_free_ uint8_t *text = NULL;
	size_t size;
	char why[100];

	if (remote_read_whole(dirfd, REMOTE_FILE, REMOTE_MANIFEST_MAX, &text, &size) < 0 ||
	    remote_manifest_parse((const char *)text, size, ret, why, sizeof(why)) < 0)
		return false;
	ret_head->generation = ret->generation;
	ret_head->manifest.size = size;
	ret_head->manifest.checksum = store_checksum(text, size);
	return true;
}

/* One table of the manifest, fetched, checked and installed as name. */
static int sync_table(struct remote_state *rs, int dirfd, const char *name,
		      const struct remote_object *object)
{
	_cleanup_free_ uint8_t *data = NULL;
	size_t size;

	int r = remote_get_checked(rs, object, &data, &size);
	if (r == 0 && (r = remote_install(dirfd, name, data, size)) < 0)
		remote_set_error(rs, "%s/%s: %s", rs->mirror, name, strerror(-r));
	return r;
}

/* The objects fetched at once (one round trip), each checked against the
 * manifest: data[i] gets each one's bytes (malloc'd; NULL when empty).
 * Returns 0 or -errno with rs->error set; on failure nothing is kept. */
static int fetch_batch(struct remote_state *rs, const struct remote_object *const *objects,
		       size_t count, uint8_t **data)
{
	char keys[3][REMOTE_PREFIX_MAX + REMOTE_KEY_MAX + 2];
	struct s3_range ranges[3];
	size_t n = 0;
	int r = 0;

	if (count > 3)
		return -EINVAL;
	for (size_t i = 0; i < count; i++) {
		data[i] = NULL;
		if (objects[i]->size == 0)
			continue; /* nothing to fetch; checked as empty below */
		if (!(data[i] = malloc(objects[i]->size))) {
			r = -ENOMEM;
			break;
		}
		remote_key(&rs->url, objects[i]->key, keys[n], sizeof(keys[n]));
		ranges[n] = (struct s3_range){
			.key = keys[n], .offset = 0, .size = objects[i]->size, .dest = data[i]};
		n++;
	}
	if (r == 0 && n > 0 && (r = s3_get_ranges(rs->client, ranges, n, (unsigned)n)) < 0)
		remote_set_error(rs, "%s", s3_error(rs->client));
	for (size_t i = 0; i < count && r == 0; i++)
		r = remote_object_check(rs, objects[i], data[i], objects[i]->size);
	if (r == 0)
		return 0;
	for (size_t i = 0; i < count; i++) {
		free(data[i]);
		data[i] = NULL;
	}
	return r;
}

/* Whether the mirror holds snapshot s of m as it is (not a placeholder). */
static bool snapshot_held(int dirfd, const struct remote_snapshot *s,
			  const struct remote_manifest *was)
{
	const struct remote_snapshot *old = was ? remote_manifest_snapshot(was, s->name) : NULL;
	struct stat st;

	if (!old || strcmp(old->object.key, s->object.key) != 0)
		return false;
	_cleanup_close_ int snaps_fd = cairn_open_dir_beneath(dirfd, REMOTE_SNAPSHOTS);
	return snaps_fd >= 0 && fstatat(snaps_fd, s->name, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
	       S_ISREG(st.st_mode) && st.st_size > 0;
}

/* Whether the mirror's sketches file is m's: its key is the one the
 * mirror's manifest (was) names, and it is there. A reader's sync removes
 * the file when the key moves instead of fetching it (only a writer reads
 * it, to find delta bases), so a file there is always its manifest's. */
static bool sketches_held(int dirfd, const struct remote_manifest *m,
			  const struct remote_manifest *was)
{
	return was && was->has_sketches && strcmp(was->sketches.key, m->sketches.key) == 0 &&
	       faccessat(dirfd, "sketches", F_OK, AT_SYMLINK_NOFOLLOW) == 0;
}

/* The chunk table unless its key is the one the mirror holds (was), the
 * sketches likewise for a writer (a reader does without them), and the
 * snapshot the caller will open (want, NULL: none) unless the mirror holds
 * it: all fetched at once, one round trip for the three, each checked
 * against the manifest. The tables are installed here; the snapshot's
 * bytes are handed back (*ret_snapshot, its entry in m) to be installed
 * once the snapshot directory is synced. */
static int sync_tables(struct remote_state *rs, int dirfd, const struct remote_manifest *m,
		       const struct remote_manifest *was, bool writer, const char *want,
		       const struct remote_snapshot **ret_snapshot, uint8_t **ret_data)
{
	const struct remote_object *objects[3];
	const char *names[3];
	uint8_t *data[3];
	size_t n = 0;

	*ret_snapshot = NULL;
	*ret_data = NULL;
	if (!was || strcmp(was->chunks.key, m->chunks.key) != 0) {
		objects[n] = &m->chunks;
		names[n++] = TABLE_NAME;
	}
	if (writer && m->has_sketches && !sketches_held(dirfd, m, was)) {
		objects[n] = &m->sketches;
		names[n++] = "sketches";
	}
	size_t tables = n;
	const struct remote_snapshot *s = want ? remote_manifest_snapshot(m, want) : NULL;
	if (s && s->object.size > 0 && !snapshot_held(dirfd, s, was))
		objects[n++] = &s->object;
	else
		s = NULL;
	int r = n ? fetch_batch(rs, objects, n, data) : 0;
	if (r < 0)
		return r;
	for (size_t i = 0; i < tables && r == 0; i++)
		if ((r = remote_install(dirfd, names[i], data[i] ? data[i] : (const uint8_t *)"",
					objects[i]->size)) < 0)
			remote_set_error(rs, "%s/%s: %s", rs->mirror, names[i], strerror(-r));
	for (size_t i = 0; i < tables; i++)
		free(data[i]);
	if (r == 0 && s) {
		*ret_snapshot = s;
		*ret_data = data[tables];
	} else if (s) {
		free(data[tables]);
	}
	return r;
}

static int sync_config(struct remote_state *rs, int dirfd, const struct remote_manifest *m)
{
	_cleanup_free_ uint8_t *have = NULL;
	size_t size;

	if (remote_read_whole(dirfd, "config", REMOTE_CONFIG_SIZE, &have, &size) == 0 &&
	    size == REMOTE_CONFIG_SIZE && memcmp(have, m->config, size) == 0)
		return 0;
	int r = remote_install(dirfd, "config", m->config, REMOTE_CONFIG_SIZE);
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
	return remote_read_whole(snaps_fd, name, object->size, &data, &size) == 0 &&
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
		int r = remote_install(snaps_fd, s->name, "", 0);
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

/* The bytes of snapshot s, fetched and checked with the tables, in place of
 * its placeholder. */
static int install_snapshot(struct remote_state *rs, int dirfd, const struct remote_snapshot *s,
			    const uint8_t *data)
{
	_cleanup_close_ int snaps_fd = cairn_open_dir_beneath(dirfd, REMOTE_SNAPSHOTS);
	int r = snaps_fd < 0 ? snaps_fd : remote_install(snaps_fd, s->name, data, s->object.size);

	if (r < 0)
		remote_set_error(rs, "%s/%s/%s: %s", rs->mirror, REMOTE_SNAPSHOTS, s->name,
				 strerror(-r));
	return r;
}

static int install_manifest(struct remote_state *rs, int dirfd, const uint8_t *text, size_t size)
{
	int r = remote_install(dirfd, REMOTE_FILE, text, size);
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
		       const struct remote_head *known, const char *want,
		       pthread_rwlock_t *swap_lock)
{
	const struct remote_snapshot *fetched = NULL;
	_cleanup_free_ uint8_t *fetched_data = NULL;
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
	else if (!writer && memo_recent(rs, &head))
		; /* read a moment ago by this process */
	else if ((r = remote_get_head(rs, &head)) < 0)
		goto out;
	else if (!writer)
		memo_keep(rs, &head);
	if (have_old && !full && old_head.manifest.size == head.manifest.size &&
	    old_head.manifest.checksum == head.manifest.checksum) {
		m = old;
		old = (struct remote_manifest){0};
		/* A reader's sync may have left the sketches out: a writer
		 * needs them. */
		if (writer && m.has_sketches &&
		    faccessat(dirfd, "sketches", F_OK, AT_SYMLINK_NOFOLLOW) < 0 &&
		    (r = sync_table(rs, dirfd, "sketches", &m.sketches)) < 0)
			goto out;
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
	/* A reader leaves out sketches it does not hold already (see
	 * sketches_held): decided before the tables are replaced. */
	bool drop_sketches = !m.has_sketches || (!writer && !sketches_held(dirfd, &m, was));
	if (r == 0)
		r = sync_tables(rs, dirfd, &m, was, writer, want, &fetched, &fetched_data);
	if (r == 0 && drop_sketches && unlinkat(dirfd, "sketches", 0) < 0 && errno != ENOENT)
		r = -errno;
	if (r == 0)
		r = sync_packs(dirfd, &m, have_old ? &old : NULL, sweep);
	if (r == 0)
		r = sync_snapshots(dirfd, &m, have_old ? &old : NULL, full, sweep);
	if (r == 0 && fetched)
		r = install_snapshot(rs, dirfd, fetched, fetched_data);
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
		     const struct remote_head *known, const char *want, pthread_rwlock_t *swap_lock)
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
	int r = sync_locked(rs, dirfd, writer, known, want, swap_lock);
	int p = packs_prepare(rs, old, old_count);
	pthread_mutex_unlock(&rs->lock);
	flock(dirfd, LOCK_UN);
	return r < 0 ? r : p;
}

int remote_sync(struct remote_state *rs, int dirfd, bool writer, const char *want)
{
	return sync_with(rs, dirfd, writer, NULL, want, NULL);
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
	r = sync_with(rs, dirfd, false, &head, NULL, swap_lock);
	return r < 0 ? r : 1;
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
