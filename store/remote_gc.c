/* remote_gc.c: gc's mark and sweep on a remote store (docs/FORMAT.md
 * "Remote stores"). Other hosts may be reading the generation they opened,
 * so nothing is deleted when it stops being referenced: gc lists the bucket
 * (the only listing cairn makes) and records each object of the store that
 * the new manifest does not reference as `condemned KEY TIME`, TIME being
 * when a gc first found it so; only after the new manifest and pointer are
 * written does it delete the objects condemned at least the grace period
 * ago. A gc killed at any point thus leaves the store as it was or as the
 * new manifest says, and a delete that failed is tried again by the next
 * gc (the object is still listed and still unreferenced). A push that is
 * not a gc carries the list over as it is.
 */
#include "remote.h"

#include "s3.h"
#include "store_internal.h"

#include <dirent.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#define FULL_KEY_MAX (REMOTE_PREFIX_MAX + REMOTE_KEY_MAX + 2)
/* At most this many condemned lines per manifest (the rest wait for the
 * next gc): keeps a manifest well under its 64 MiB bound. */
#define GC_CONDEMN_MAX (1u << 18)

struct remote_gc {
	int64_t grace, now;
	uint64_t *sizes; /* per condemned entry of the new manifest: the listed size */
	struct cairn_remote_gc_stats stats;
};

/* ---- which keys are cairn's, which are referenced ---- */

/* Whether rel has the shape of a key cairn writes ('#': a lowercase hex
 * digit): only those are ever condemned, so that whatever else shares the
 * prefix (another store under PREFIX/sub, a user's files) is left alone. */
static bool shape_is(const char *rel, const char *pattern)
{
	for (; *pattern; rel++, pattern++) {
		if (*pattern == '#'
			    ? !((*rel >= '0' && *rel <= '9') || (*rel >= 'a' && *rel <= 'f'))
			    : *rel != *pattern)
			return false;
	}
	return *rel == '\0';
}

static bool cairn_key(const char *rel)
{
	static const char *const patterns[] = {
		"meta/################-################.manifest",
		"meta/################-################.chunks",
		"meta/################-################.sketches",
		"packs/########-################.pack",
		"snapshots/################-########",
	};

	for (size_t i = 0; i < ARRAY_SIZE(patterns); i++)
		if (shape_is(rel, patterns[i]))
			return true;
	return false;
}

struct refs {
	const char **keys; /* sorted */
	size_t count;
};

static int compare_str(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* Every key m references, and manifest_key (the manifest itself). */
static int refs_build(struct refs *refs, const struct remote_manifest *m, const char *manifest_key)
{
	refs->keys = malloc((m->pack_count + m->snapshot_count + 3) * sizeof(*refs->keys));
	if (!refs->keys)
		return -ENOMEM;
	refs->count = 0;
	refs->keys[refs->count++] = manifest_key;
	refs->keys[refs->count++] = m->chunks.key;
	if (m->has_sketches)
		refs->keys[refs->count++] = m->sketches.key;
	for (size_t i = 0; i < m->pack_count; i++)
		refs->keys[refs->count++] = m->packs[i].key;
	for (size_t i = 0; i < m->snapshot_count; i++)
		refs->keys[refs->count++] = m->snapshots[i].object.key;
	if (refs->count > 1)
		qsort(refs->keys, refs->count, sizeof(*refs->keys), compare_str);
	return 0;
}

static bool refs_have(const struct refs *refs, const char *key)
{
	return refs->count > 0 &&
	       bsearch(&key, refs->keys, refs->count, sizeof(*refs->keys), compare_str) != NULL;
}

/* ---- a push that is not a gc: the list carried over ---- */

static int carry(struct remote_state *rs, struct remote_manifest *m, const char *manifest_key)
{
	const struct remote_manifest *old = &rs->manifest;
	struct refs refs;

	if (old->condemned_count == 0)
		return 0;
	int r = refs_build(&refs, m, manifest_key);
	if (r < 0)
		return r;
	m->condemned = malloc(old->condemned_count * sizeof(*m->condemned));
	if (!m->condemned) {
		free(refs.keys);
		return -ENOMEM;
	}
	/* A key referenced again must never be deleted: off the list. */
	for (size_t i = 0; i < old->condemned_count; i++)
		if (!refs_have(&refs, old->condemned[i].key))
			m->condemned[m->condemned_count++] = old->condemned[i];
	free(refs.keys);
	return 0;
}

/* ---- mark: the listing against the new manifest ---- */

struct mark {
	struct remote_state *rs;
	struct remote_gc *gc;
	struct remote_manifest *m;
	struct refs refs;
	struct remote_condemned *old; /* the old list, sorted by key */
	const char *prefix;           /* "PREFIX/" or "" */
	size_t prefix_len;
	size_t cap;
};

static int compare_condemned(const void *a, const void *b)
{
	return strcmp(((const struct remote_condemned *)a)->key,
		      ((const struct remote_condemned *)b)->key);
}

static int condemn(struct mark *mk, const char *rel, uint64_t size)
{
	struct remote_manifest *m = mk->m;
	struct remote_condemned c = {.time = mk->gc->now}, *was;

	if (m->condemned_count == GC_CONDEMN_MAX)
		return 0;
	if (m->condemned_count == mk->cap) {
		size_t cap = mk->cap ? mk->cap * 2 : 64;
		void *grown = realloc(m->condemned, cap * sizeof(*m->condemned));
		if (!grown)
			return -ENOMEM;
		m->condemned = grown;
		grown = realloc(mk->gc->sizes, cap * sizeof(*mk->gc->sizes));
		if (!grown)
			return -ENOMEM;
		mk->gc->sizes = grown;
		mk->cap = cap;
	}
	cairn_format(c.key, sizeof(c.key), "%s", rel);
	was = bsearch(&c, mk->old, mk->rs->manifest.condemned_count, sizeof(*mk->old),
		      compare_condemned);
	if (was && was->time < c.time)
		c.time = was->time; /* condemned before: since then */
	else if (!was)
		mk->gc->stats.newly_condemned++;
	mk->gc->sizes[m->condemned_count] = size;
	m->condemned[m->condemned_count++] = c;
	mk->gc->stats.condemned++;
	mk->gc->stats.condemned_bytes += size;
	return 0;
}

static int mark_one(void *userdata, const char *key, uint64_t size, int64_t mtime)
{
	struct mark *mk = userdata;

	(void)mtime;
	if (strncmp(key, mk->prefix, mk->prefix_len) != 0 || !cairn_key(key + mk->prefix_len))
		return 0; /* cairn-head, cairn-lock, and anything not cairn's */
	const char *rel = key + mk->prefix_len;
	mk->gc->stats.listed++;
	return refs_have(&mk->refs, rel) ? 0 : condemn(mk, rel, size);
}

static int mark(struct remote_state *rs, struct remote_manifest *m, const char *manifest_key)
{
	struct mark mk = {.rs = rs, .gc = rs->gc, .m = m};
	char prefix[FULL_KEY_MAX];
	size_t n = rs->manifest.condemned_count;

	remote_key(&rs->url, "", prefix, sizeof(prefix));
	mk.prefix = prefix;
	mk.prefix_len = strlen(prefix);
	int r = refs_build(&mk.refs, m, manifest_key);
	if (r < 0)
		return r;
	mk.old = malloc((n + 1) * sizeof(*mk.old));
	if (!mk.old) {
		free(mk.refs.keys);
		return -ENOMEM;
	}
	if (n > 0) { /* a manifest without condemned keys has no array */
		memcpy(mk.old, rs->manifest.condemned, n * sizeof(*mk.old));
		qsort(mk.old, n, sizeof(*mk.old), compare_condemned);
	}
	r = s3_list(rs->client, prefix, mark_one, &mk);
	if (r < 0 && r != -ENOMEM)
		remote_set_error(rs, "listing the store's objects: %s", s3_error(rs->client));
	free(mk.old);
	free(mk.refs.keys);
	return r;
}

int remote_gc_condemn(struct remote_state *rs, struct remote_manifest *m)
{
	char manifest_key[REMOTE_KEY_MAX];

	/* the key push() gives the new manifest */
	remote_meta_key(manifest_key, m->generation, rs->session, "manifest");
	return rs->gc ? mark(rs, m, manifest_key) : carry(rs, m, manifest_key);
}

/* ---- sweep: after the pointer is written ---- */

static void delete_failed(struct remote_gc *gc, const char *fmt, ...) _printf_(2, 3);
static void delete_failed(struct remote_gc *gc, const char *fmt, ...)
{
	va_list ap;

	if (gc->stats.delete_failed++ == 0) {
		va_start(ap, fmt);
		vsnprintf(gc->stats.delete_error, sizeof(gc->stats.delete_error), fmt, ap);
		va_end(ap);
	}
}

/* The mirror's files of packs the manifest no longer lists: the local gc
 * removed the pack files it dropped, not their .have maps. */
static void sweep_mirror(struct remote_state *rs, int dirfd)
{
	_cleanup_close_ int packs_fd = cairn_open_dir_beneath(dirfd, "packs");
	DIR *dir = cairn_opendir_dup(packs_fd);
	char copy[32];
	uint32_t num;

	if (!dir)
		return;
	for (struct dirent *de; (de = readdir(dir));) {
		const char *name = de->d_name;
		if (strlen(name) != 13 ||
		    (strcmp(name + 8, ".pack") != 0 && strcmp(name + 8, ".have") != 0))
			continue;
		cairn_format(copy, sizeof(copy), "%.8s.pack", name);
		if (pack_parse_name(copy, &num) == 0 && !remote_manifest_pack(&rs->manifest, num))
			unlinkat(packs_fd, name, 0);
	}
	closedir(dir);
}

void remote_gc_sweep(struct remote_state *rs, int dirfd)
{
	struct remote_gc *gc = rs->gc;
	const struct remote_manifest *m = &rs->manifest;
	char key[FULL_KEY_MAX];
	struct refs refs;

	sweep_mirror(rs, dirfd);
	if (refs_build(&refs, m, rs->head.manifest.key) < 0) {
		delete_failed(gc, "out of memory");
		return;
	}
	for (size_t i = 0; i < m->condemned_count; i++) {
		const struct remote_condemned *c = &m->condemned[i];
		if (gc->now - c->time < gc->grace)
			continue;
		if (refs_have(&refs, c->key)) { /* mark never condemns one: never delete it */
			delete_failed(gc, "%s/%s: condemned but referenced; not deleted",
				      rs->display, c->key);
			continue;
		}
		if (s3_delete(rs->client, remote_key(&rs->url, c->key, key, sizeof(key))) < 0) {
			delete_failed(gc, "%s", s3_error(rs->client));
			continue;
		}
		gc->stats.deleted++;
		gc->stats.deleted_bytes += gc->sizes[i];
	}
	free(refs.keys);
}

int remote_push_gc(struct cairn_store *store, int64_t grace, struct cairn_remote_gc_stats *ret)
{
	struct remote_state *rs = store->remote;
	struct remote_gc gc = {.grace = grace < 0 ? 0 : grace, .now = time(NULL)};

	rs->gc = &gc;
	int r = remote_push(store);
	rs->gc = NULL;
	free(gc.sizes);
	*ret = gc.stats;
	return r;
}
