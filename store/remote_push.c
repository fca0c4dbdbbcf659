/* remote_push.c: writing a remote store (docs/FORMAT.md "Remote stores"):
 * the push of what a writer committed into the mirror (new packs, tables,
 * snapshot files, the manifest, and last the pointer, after checking that
 * the lease is still its own and the pointer still the one it started
 * from; remote_lock.c), and the creation of a new remote store. Every key a session writes holds
 * its random session id, so nothing is ever written twice, and a writer killed at any point leaves
 * the remote as it was plus objects no manifest names.
 */
#include "remote.h"

#include "s3.h"
#include "store_internal.h"

#include <dirent.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#define PUT_PARALLEL 4
#define FULL_KEY_MAX (REMOTE_PREFIX_MAX + REMOTE_KEY_MAX + 2)

/* ---- the push ---- */

static int put_bytes(struct remote_state *rs, const char *rel, const void *data, size_t size)
{
	char key[FULL_KEY_MAX];

	int r = s3_put(rs->client, remote_key(&rs->url, rel, key, sizeof(key)), data, size);
	if (r < 0)
		remote_set_error(rs, "%s", s3_error(rs->client));
	return r;
}

static int read_mirror(int dirfd, const char *name, uint8_t **ret, size_t *ret_size)
{
	struct stat st;

	_cleanup_close_ int fd = cairn_open_file_beneath(dirfd, name, O_RDONLY, 0);
	if (fd < 0)
		return fd;
	if (fstat(fd, &st) < 0)
		return -errno;
	uint8_t *buf = malloc((size_t)st.st_size + 1);
	if (!buf)
		return -ENOMEM;
	ssize_t n = cairn_pread_full(fd, buf, (size_t)st.st_size, 0);
	if (n != st.st_size) {
		free(buf);
		return n < 0 ? (int)n : -EIO;
	}
	*ret = buf;
	*ret_size = (size_t)n;
	return 0;
}

/* The mirror's table file name as the manifest's object: the old one when
 * the bytes are the same, else uploaded under a new key. ret_present:
 * whether the mirror has the file. */
static int push_table(struct remote_state *rs, int dirfd, const char *name, const char *ext,
		      uint64_t generation, const struct remote_object *old,
		      struct remote_object *ret, bool *ret_present)
{
	_cleanup_free_ uint8_t *data = NULL;
	size_t size;

	int r = read_mirror(dirfd, name, &data, &size);
	*ret_present = r == 0;
	if (r == -ENOENT)
		return 0;
	if (r < 0) {
		remote_set_error(rs, "%s/%s: %s", rs->mirror, name, strerror(-r));
		return r;
	}
	uint64_t sum = store_checksum(data, size);
	if (old && old->key[0] && old->size == size && old->checksum == sum) {
		*ret = *old;
		return 0;
	}
	*ret = (struct remote_object){.size = size, .checksum = sum};
	remote_meta_key(ret->key, generation, rs->session, ext);
	return put_bytes(rs, ret->key, data, size);
}

/* Uploads packs/N.pack whole and marks it present in its .have map. */
static int push_pack(struct remote_state *rs, struct cairn_store *store, struct remote_pack *p)
{
	char name[32], key[FULL_KEY_MAX];

	pack_name(p->pack_num, name);
	_cleanup_close_ int fd = cairn_open_file_beneath(store->packs_dirfd, name, O_RDONLY, 0);
	if (fd < 0) {
		remote_set_error(rs, "%s/packs/%s: %s", rs->mirror, name, cairn_path_strerror(fd));
		return fd;
	}
	remote_pack_key(p->key, p->pack_num, rs->session);
	/* uploaded already while the writer compressed, else now */
	int r = remote_uploader_wait(rs, p->pack_num, p->size) == 1
			? 0
			: s3_put_file(rs->client, remote_key(&rs->url, p->key, key, sizeof(key)),
				      fd, p->size, 0, PUT_PARALLEL);
	if (r < 0) {
		remote_set_error(rs, "%s", s3_error(rs->client));
		return r;
	}
	uint64_t blocks = (p->size + REMOTE_BLOCK - 1) / REMOTE_BLOCK;
	_cleanup_free_ uint8_t *ones = malloc(blocks + 1);
	if (!ones)
		return -ENOMEM;
	memset(ones, 1, blocks);
	cairn_format(name, sizeof(name), "%08" PRIx32 ".have", p->pack_num);
	_cleanup_close_ int have =
		cairn_open_file_beneath(store->packs_dirfd, name, O_RDWR | O_CREAT | O_TRUNC, 0600);
	return have < 0 ? have : cairn_pwrite_all(have, ones, blocks, 0);
}

/* The manifest's packs: the table's, new ones uploaded. */
static int push_packs(struct remote_state *rs, struct cairn_store *store, struct remote_manifest *m)
{
	const struct chunk_table *table = store_table(store);

	m->packs = calloc(table->pack_count + 1, sizeof(*m->packs));
	if (!m->packs)
		return -ENOMEM;
	for (uint32_t i = 0; i < table->pack_count; i++) {
		struct remote_pack *p = &m->packs[m->pack_count++];
		const struct remote_pack *old =
			remote_manifest_pack(&rs->manifest, table->packs[i].pack_num);
		p->pack_num = table->packs[i].pack_num;
		p->size = table->packs[i].size;
		if (old && old->size == p->size) {
			memcpy(p->key, old->key, sizeof(p->key));
			continue;
		}
		int r = push_pack(rs, store, p);
		if (r < 0)
			return r;
	}
	return 0;
}

static int compare_snapshots(const void *a, const void *b)
{
	return strcmp(((const struct remote_snapshot *)a)->name,
		      ((const struct remote_snapshot *)b)->name);
}

/* One snapshot file of the mirror into m: the old entry when it is the
 * placeholder or the same bytes, else uploaded under a new key. */
static int push_snapshot(struct remote_state *rs, int snaps_fd, const char *name,
			 struct remote_manifest *m)
{
	const struct remote_snapshot *old = remote_manifest_snapshot(&rs->manifest, name);
	_cleanup_free_ uint8_t *data = NULL;
	size_t size;

	int r = read_mirror(snaps_fd, name, &data, &size);
	if (r < 0) {
		remote_set_error(rs, "%s/%s/%s: %s", rs->mirror, REMOTE_SNAPSHOTS, name,
				 strerror(-r));
		return r;
	}
	if (size == 0 && !old)
		return 0; /* a placeholder of nothing: not a snapshot */
	struct remote_snapshot *s = &m->snapshots[m->snapshot_count];
	if (!(s->name = strdup(name)))
		return -ENOMEM;
	m->snapshot_count++;
	uint64_t sum = store_checksum(data, size);
	if (old && (size == 0 || (old->object.size == size && old->object.checksum == sum))) {
		s->object = old->object;
		return 0;
	}
	s->object = (struct remote_object){.size = size, .checksum = sum};
	remote_snapshot_key(s->object.key, rs->session, rs->snapshot_counter++);
	return put_bytes(rs, s->object.key, data, size);
}

static int push_snapshots(struct remote_state *rs, int dirfd, struct remote_manifest *m)
{
	size_t cap = 0;
	int r = 0;

	_cleanup_close_ int snaps_fd = cairn_open_dir_beneath(dirfd, REMOTE_SNAPSHOTS);
	if (snaps_fd == -ENOENT)
		return 0;
	if (snaps_fd < 0)
		return snaps_fd;
	DIR *dir = cairn_opendir_dup(snaps_fd);
	if (!dir)
		return -errno;
	for (struct dirent *de; r == 0 && (de = readdir(dir));) {
		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0 ||
		    strncmp(de->d_name, "tmp-", 4) == 0 || strlen(de->d_name) > 255)
			continue;
		if (m->snapshot_count == cap) {
			cap = cap ? cap * 2 : 16;
			void *grown = realloc(m->snapshots, cap * sizeof(*m->snapshots));
			if (!grown) {
				r = -ENOMEM;
				break;
			}
			m->snapshots = grown;
		}
		r = push_snapshot(rs, snaps_fd, de->d_name, m);
	}
	closedir(dir);
	if (r == 0 && m->snapshot_count > 1)
		qsort(m->snapshots, m->snapshot_count, sizeof(*m->snapshots), compare_snapshots);
	return r;
}

/* Everything but the pointer: tables, packs, snapshots, the manifest. */
static int push_objects(struct remote_state *rs, struct cairn_store *store,
			struct remote_manifest *m, char **ret_text, size_t *ret_size)
{
	_cleanup_free_ uint8_t *config = NULL;
	size_t config_size;
	bool present;

	m->generation = rs->manifest.generation + 1;
	m->writer_session = rs->session;
	gethostname(m->writer_host, sizeof(m->writer_host) - 1);
	m->writer_time = time(NULL);
	int r = read_mirror(store->dirfd, "config", &config, &config_size);
	if (r == 0 && config_size != REMOTE_CONFIG_SIZE)
		r = -EBADMSG;
	if (r < 0) {
		remote_set_error(rs, "%s/config: %s", rs->mirror, strerror(-r));
		return r;
	}
	memcpy(m->config, config, REMOTE_CONFIG_SIZE);
	r = push_packs(rs, store, m);
	if (r == 0)
		r = push_table(rs, store->dirfd, TABLE_NAME, "chunks", m->generation,
			       &rs->manifest.chunks, &m->chunks, &present);
	if (r == 0 && !present)
		r = -ENOENT;
	if (r == 0)
		r = push_table(rs, store->dirfd, "sketches", "sketches", m->generation,
			       rs->manifest.has_sketches ? &rs->manifest.sketches : NULL,
			       &m->sketches, &m->has_sketches);
	if (r == 0)
		r = push_snapshots(rs, store->dirfd, m);
	if (r == 0)
		r = remote_gc_condemn(rs, m);
	if (r == 0)
		r = remote_manifest_encode(m, ret_text, ret_size);
	return r;
}

static int push(struct cairn_store *store, bool creating)
{
	struct remote_state *rs = store->remote;
	struct remote_manifest m = {0};
	struct remote_head head = {0};
	_cleanup_free_ char *text = NULL;
	size_t size;
	char line[300];

	if (!rs->leased)
		return -ENOLCK;
	rs->error[0] = '\0';
	int r = push_objects(rs, store, &m, &text, &size);
	if (r == 0) {
		head.generation = m.generation;
		head.manifest.size = size;
		head.manifest.checksum = store_checksum(text, size);
		remote_meta_key(head.manifest.key, m.generation, rs->session, "manifest");
		r = put_bytes(rs, head.manifest.key, text, size);
	}
	if (r == 0)
		r = remote_still_ours(rs, creating);
	if (r == 0 && (r = remote_head_encode(&head, line, sizeof(line))) > 0) {
		remote_head_forget(); /* whether or not the PUT lands */
		r = put_bytes(rs, REMOTE_HEAD_KEY, line, (size_t)r);
	}
	if (r == 0)
		r = remote_adopt(rs, store->dirfd, &head, &m, text, size);
	/* deletes only once nothing committed references what they delete */
	if (r == 0 && rs->gc)
		remote_gc_sweep(rs, store->dirfd);
	remote_manifest_release(&m);
	if (r < 0)
		store_set_error(store, "%s: nothing committed there: %s", rs->display,
				rs->error[0] ? rs->error : strerror(-r));
	return r;
}

int remote_push(struct cairn_store *store)
{
	return push(store, false);
}

/* ---- creating ---- */

/* Removes everything in the directory open on dirfd (an old mirror). */
static int empty_dir(int dirfd)
{
	DIR *dir = cairn_opendir_dup(dirfd);
	int r = 0;

	if (!dir)
		return -errno;
	for (struct dirent *de; r == 0 && (de = readdir(dir));) {
		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		if (unlinkat(dirfd, de->d_name, 0) == 0 || errno == ENOENT)
			continue;
		int sub =
			openat(dirfd, de->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		r = sub < 0 ? -errno : empty_dir(sub);
		if (sub >= 0)
			close(sub);
		if (r == 0 && unlinkat(dirfd, de->d_name, AT_REMOVEDIR) < 0)
			r = -errno;
	}
	closedir(dir);
	return r;
}

int remote_create(struct cairn_store *store, const char *url,
		  const struct cairn_store_params *params, const uint8_t *key)
{
	struct remote_state *rs;
	struct remote_head head;
	int fd;

	int r = remote_prepare(url, &rs, &fd, store->error, sizeof(store->error));
	if (r < 0)
		return r;
	store->remote = rs;
	store->dirfd = fd;
	r = remote_get_head(rs, &head);
	if (r == 0) {
		remote_set_error(rs, "%s is already a cairn store", rs->display);
		r = -EEXIST;
	} else if (r == -ENOENT) {
		rs->error[0] = '\0';
		r = remote_lease_take(rs);
	}
	if (r == 0 && (r = empty_dir(fd)) < 0)
		remote_set_error(rs, "%s: emptying the old mirror %s: %s", rs->display, rs->mirror,
				 strerror(-r));
	if (r == 0) {
		struct cairn_store *local = cairn_store_new();
		r = local ? store_create_keyed(local, rs->mirror, params, key) : -ENOMEM;
		if (r < 0 && local)
			remote_set_error(rs, "%s", cairn_store_error(local));
		cairn_store_free(local);
	}
	if (r == 0 && (r = store_bind(store, rs->display)) < 0)
		remote_set_error(rs, "%s", store->error);
	if (r == 0)
		r = push(store, true);
	else
		store_set_error(store, "%s", rs->error);
	remote_writer_end(store);
	return r;
}
