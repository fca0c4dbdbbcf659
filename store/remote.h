/* remote.h: what store/'s files share about remote stores (s3://BUCKET/PREFIX,
 * docs/FORMAT.md "Remote stores"): the url, the key names, the pointer
 * `cairn-head`, the manifest and the writer lease as text (parsed strictly:
 * an object store is a place others may write), and the per-host mirror
 * that the store handle works on: a local store directory whose packs are
 * sparse files filled by range GETs on demand.
 */
#ifndef CAIRN_BUILDING_STORE
#error "remote.h is internal to store/; use store.h"
#endif
#ifndef CAIRN_STORE_REMOTE_H
#define CAIRN_STORE_REMOTE_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "store.h"
#include "util.h"

#define REMOTE_SCHEME "s3://"
/* Longest key relative to the prefix ("snapshots/S-C", "packs/N-S.pack"). */
#define REMOTE_KEY_MAX    64
#define REMOTE_PREFIX_MAX 512
#define REMOTE_HOST_MAX   255
/* Bounds the parser holds hostile manifests to. */
#define REMOTE_MANIFEST_MAX  (64u << 20)
#define REMOTE_LINE_MAX      1024
#define REMOTE_PACKS_MAX     (1u << 22)
#define REMOTE_SNAPSHOTS_MAX (1u << 20)
#define REMOTE_CONDEMNED_MAX (1u << 22)
#define REMOTE_CONFIG_SIZE   128
/* The .have map's block: one byte per this many bytes of a pack. */
#define REMOTE_BLOCK 65536u
/* Neighbouring missing blocks are fetched in one GET up to this size. */
#define REMOTE_GET_MAX (8u << 20)

/* ---- urls and keys (remote_url.c) ---- */

struct remote_url {
	char bucket[64];
	char prefix[REMOTE_PREFIX_MAX + 1]; /* "" or "a/b": no leading, trailing or double '/' */
};
/* Parses s3://BUCKET[/PREFIX]. Returns 0, or -EINVAL with why. */
int remote_url_parse(const char *url, struct remote_url *ret, char *why, size_t why_size);
/* The full key of rel (PREFIX/rel, or rel without a prefix) into buf.
 * Returns buf. */
const char *remote_key(const struct remote_url *url, const char *rel, char *buf, size_t size);

/* Relative key names (docs/FORMAT.md "Remote stores"). */
#define REMOTE_HEAD_KEY "cairn-head"
#define REMOTE_LOCK_KEY "cairn-lock"
void remote_meta_key(char buf[REMOTE_KEY_MAX], uint64_t generation, uint64_t session,
		     const char *ext);
void remote_pack_key(char buf[REMOTE_KEY_MAX], uint32_t pack_num, uint64_t session);
void remote_snapshot_key(char buf[REMOTE_KEY_MAX], uint64_t session, uint32_t counter);

/* ---- the pointer and the manifest ---- */

struct remote_object {
	char key[REMOTE_KEY_MAX];
	uint64_t size;
	uint64_t checksum; /* XXH3-64 of the bytes */
};

struct remote_head {
	uint64_t generation;
	struct remote_object manifest;
};

struct remote_pack {
	uint32_t pack_num;
	char key[REMOTE_KEY_MAX];
	uint64_t size;
};

struct remote_snapshot {
	char *name; /* malloc'd */
	struct remote_object object;
};

struct remote_condemned {
	char key[REMOTE_KEY_MAX];
	int64_t time;
};

struct remote_manifest {
	uint64_t generation;
	uint64_t writer_session;
	char writer_host[REMOTE_HOST_MAX + 1];
	int64_t writer_time;
	uint8_t config[REMOTE_CONFIG_SIZE];
	struct remote_object chunks;
	bool has_sketches;
	struct remote_object sketches;
	struct remote_pack *packs; /* sorted by pack_num */
	size_t pack_count;
	struct remote_snapshot *snapshots; /* sorted by name */
	size_t snapshot_count;
	struct remote_condemned *condemned;
	size_t condemned_count;
};

/* Parses cairn-head's bytes. Returns 0, or -EBADMSG with why. */
int remote_head_parse(const char *text, size_t size, struct remote_head *ret, char *why,
		      size_t why_size);
/* Writes the pointer's line into buf. Returns its length, or -ENOBUFS. */
int remote_head_encode(const struct remote_head *head, char *buf, size_t size);

/* Parses a manifest: every line must be known and well-formed, in order,
 * within the bounds above, and end with a matching checksum. Returns 0,
 * -EBADMSG with why (naming the line), or -ENOMEM. */
int remote_manifest_parse(const char *text, size_t size, struct remote_manifest *ret, char *why,
			  size_t why_size);
/* Encodes m (packs and snapshots sorted, as the parser wants) into a
 * malloc'd text. Returns 0 or -ENOMEM/-EINVAL. */
int remote_manifest_encode(const struct remote_manifest *m, char **ret_text, size_t *ret_size);
void remote_manifest_release(struct remote_manifest *m);
/* The manifest's entry for a pack or a snapshot name, or NULL. */
const struct remote_pack *remote_manifest_pack(const struct remote_manifest *m, uint32_t pack_num);
const struct remote_snapshot *remote_manifest_snapshot(const struct remote_manifest *m,
						       const char *name);

/* ---- the writer lease (`cairn-lock`) ---- */

struct remote_lease {
	uint64_t session;
	char host[REMOTE_HOST_MAX + 1];
	int64_t pid;
	int64_t start, expires; /* seconds since the epoch */
};
int remote_lease_parse(const char *text, size_t size, struct remote_lease *ret, char *why,
		       size_t why_size);
int remote_lease_encode(const struct remote_lease *lease, char *buf, size_t size);

/* ---- making sure pack bytes are present (remote_packs.c, remote_fetch.c) ---- */

struct remote_state;
struct remote_fetch;

/* What this process knows of a pack block (remote_pack_cache.blocks): not
 * known present (the .have map is asked again before a fetch: another
 * process on the host may have fetched it), present (its bytes are in the
 * pack file and the .have map says so), or being fetched by a thread of
 * this process (whoever needs it waits for that GET). */
enum { BLOCK_UNKNOWN = 0, BLOCK_PRESENT = 1, BLOCK_FETCHING = 2 };

/* A reader of one pack, for read-ahead (remote_fetch.c): the blocks it
 * read, and those read-ahead queued around them. */
struct remote_stream {
	uint64_t lo, hi;           /* read or queued: [lo, hi) */
	uint64_t read_lo, read_hi; /* read: [read_lo, read_hi) */
	uint64_t prev;             /* the first block of its last read: which way it goes */
	uint64_t window;           /* blocks queued at a time, doubling */
	unsigned misses;           /* fetches it had to make on its own */
	uint64_t used;             /* the stream clock when last matched; 0: free */
};
#define REMOTE_STREAMS 4

/* One mirror pack: the sparse pack file and its .have map, open read-write. */
struct remote_pack_cache {
	uint32_t pack_num;
	uint64_t size;
	int fd, have_fd;
	char key[REMOTE_KEY_MAX];
	unsigned readers;  /* between a held ensure and its release: never evicted */
	time_t touched;    /* when this handle last set the .have map's mtime */
	uint8_t *blocks;   /* BLOCK_* per block, or NULL until first needed */
	unsigned fetching; /* GETs of its blocks in flight: never evicted nor closed */
	uint64_t demand;   /* blocks readers asked for (read-ahead's measure of a pack) */
	unsigned misses;   /* of those, reads that had to fetch */
	bool whole_queued; /* the rest of the pack was queued once */
	struct remote_stream streams[REMOTE_STREAMS];
};

/* The store's cache entry of pack_num with its files open, or NULL (a
 * local pack) with *ret 0, or NULL with *ret -errno. rs->lock held. */
struct remote_pack_cache *remote_pack_cache_get(const struct cairn_store *store, uint32_t pack_num,
						int *ret);
/* The cache bound (remote_cache.c): notes that bytes more were fetched
 * into the mirror and, every few MiB, evicts least recently used pack
 * files neither held nor being fetched while the mirror's packs exceed the
 * bound. rs->lock held. */
void remote_cache_fetched(const struct cairn_store *store, uint64_t bytes);
/* The bound checked now when anything was fetched since the last check
 * (the background fetcher gone idle). rs->lock held. */
void remote_cache_settle(const struct cairn_store *store);
/* Marks pack used now (its .have map's mtime), at most once a second. */
void remote_pack_touch(struct remote_pack_cache *pack);

/* The fetching (remote_fetch.c). rs->lock is never held across a GET:
 * blocks being fetched are BLOCK_FETCHING, and whoever needs one waits on
 * a condition variable for it. */

/* Makes sure blocks [first, last] of pack are present: fetches the missing
 * ones (contiguous runs, each one GET, on a client of the store's pool,
 * without rs->lock), waits for those another thread fetches. pack may be
 * gone (a re-sync) after a wait: it is looked up again by number, so the
 * caller passes pack_num, and gets the entry back in *ret_pack. rs->lock
 * held (let go while waiting and fetching). Returns 0, or -errno with a
 * message in msg. */
int remote_fetch_blocks(const struct cairn_store *store, uint32_t pack_num, uint64_t first,
			uint64_t last, struct remote_pack_cache **ret_pack, char *msg,
			size_t msg_size);
/* Whether blocks [first, last] of pack hold one this process must fetch
 * (not present, not being fetched; the .have map asked): 1, 0, or -errno.
 * rs->lock held. */
int remote_pack_probe(struct remote_pack_cache *pack, uint64_t first, uint64_t last);
/* Marks blocks [first, last] of pack not present, in the .have map too
 * (those being fetched stay: their GET brings fresh bytes). rs->lock held. */
int remote_pack_forget(struct remote_pack_cache *pack, uint64_t first, uint64_t last);
/* A read of blocks [first, last] of pack (had: whether it had to fetch any
 * itself): feeds the pack's forward readers, and queues read-ahead in the
 * background for one that keeps going forward. rs->lock held. */
void remote_read_ahead(const struct cairn_store *store, struct remote_pack_cache *pack,
		       uint64_t first, uint64_t last, bool missed);
/* One background fetch: extents of blocks, each [first, last] of a pack,
 * fetched in order, up to REMOTE_FETCH_PARALLEL GETs in flight. */
struct remote_extent {
	uint32_t pack_num;
	uint64_t first, last;
};
/* Queues extents (taken over, malloc'd) for the store's background
 * fetcher, started on first use. rs->lock held. Returns 0 or -errno
 * (extents freed). */
int remote_fetch_queue(const struct cairn_store *store, struct remote_extent *extents,
		       size_t count);
/* Whether no GET of pack blocks is in flight nor queued. rs->lock held. */
bool remote_fetch_idle(const struct remote_state *rs);
/* Before rs->packs is closed (a re-sync): the queue dropped, and every
 * GET in flight waited for. rs->lock held (let go while waiting). */
void remote_fetch_drain(struct remote_state *rs);
/* At the handle's end: the background fetcher stopped (GETs in flight
 * abandoned) and joined, the client pool freed. rs->lock not held. */
void remote_fetch_free(struct remote_state *rs);

#define REMOTE_FETCH_PARALLEL 8

/* ---- a store handle's remote state (remote_open.c, remote_push.c) ---- */

struct cairn_store;
struct s3_client;
struct s3_config;

#define REMOTE_FILE      "remote"       /* the mirror's copy of the manifest it holds */
#define REMOTE_DIRTY     "remote-dirty" /* a writer changed the mirror; not pushed yet */
#define REMOTE_SNAPSHOTS "snapshots"

struct remote_state {
	struct remote_url url;
	char display[600]; /* s3://BUCKET[/PREFIX]: what messages name */
	char *mirror;      /* the mirror's path */
	struct s3_config *cfg;
	pthread_mutex_t lock; /* protects client, packs, error and fetch */
	struct s3_client *client;
	struct remote_head head;         /* the pointer the mirror was synced to */
	struct remote_manifest manifest; /* its manifest */
	struct remote_pack_cache *packs; /* [manifest.pack_count]; fds -1 until used */
	char error[512];
	uint64_t cache_max;         /* the mirror's bound; 0 until known */
	uint64_t cache_fetched;     /* bytes fetched since the last check */
	struct remote_fetch *fetch; /* clients, waits, the background fetcher; NULL until used */
	/* the writer's session (remote_push.c) */
	uint64_t session;
	bool leased;
	int64_t lease_start;
	struct lease_renewer *renewer;    /* the thread renewing the lease, or NULL */
	struct remote_uploader *uploader; /* the thread uploading sealed packs, or NULL */
	uint32_t snapshot_counter;
	struct remote_gc *gc; /* set while a gc pushes (remote_gc.c) */
	/* a mount's refreshes (remote_refresh): their own client, used
	 * without the lock; NULL until the first one */
	struct s3_client *refresh_client;
};

void remote_state_free(struct remote_state *rs);
/* Forgets the pointer this process read last (remote_open.c keeps it for a
 * reader's open a moment later): after this process wrote the pointer. */
void remote_head_forget(void);
/* A new remote state for url and its mirror directory, open on *ret_fd.
 * Returns 0, or -errno with why. */
int remote_prepare(const char *url, struct remote_state **ret, int *ret_fd, char *why,
		   size_t why_size);
/* Binds store to the mirror of the remote store at url, synced to the
 * remote's committed state; want (NULL: none) names a snapshot the caller
 * will open, fetched with the tables when the mirror lacks it. Returns 0,
 * -ENOENT (no store there), or -errno with a message on the store. */
int remote_open(struct cairn_store *store, const char *url, const char *want);
/* Creates the remote store at url (params: NULL for the defaults; key: the
 * hash key, NULL for a new random one) and binds store to its mirror.
 * -EEXIST when there is one already. */
int remote_create(struct cairn_store *store, const char *url,
		  const struct cairn_store_params *params, const uint8_t *key);
/* Syncs the mirror to the remote's committed state: its pointer, manifest,
 * tables, pack files and snapshot names (remote_sync.c). writer: the caller
 * holds the mirror's writer lock, and whatever a writer left in the mirror
 * unpushed goes; without it, what another local writer is doing stays.
 * want (NULL: none): a snapshot fetched with the tables unless the mirror
 * holds it. Returns 0 or -errno with a message in rs->error. */
int remote_sync(struct remote_state *rs, int dirfd, bool writer, const char *want);
/* The mirror's file helpers (remote_open.c): name's bytes (at most max),
 * malloc'd; name replaced atomically (a temp file renamed over it); data
 * checked against the object the manifest names (size and checksum, the
 * error set on rs when not). Each returns 0 or -errno. */
int remote_read_whole(int dirfd, const char *name, size_t max, uint8_t **ret, size_t *ret_size);
int remote_install(int dirfd, const char *name, const void *data, size_t size);
int remote_object_check(struct remote_state *rs, const struct remote_object *object,
			const uint8_t *data, size_t size);
/* A reader's refresh (cairn_store_refresh): GETs cairn-head and syncs as
 * remote_sync does only when it names another manifest than rs->head,
 * holding swap_lock (if any) exclusively while rs->manifest is replaced.
 * Returns 1 when synced to a new one, 0 when unchanged, or -errno with a
 * message in rs->error. */
int remote_refresh(struct remote_state *rs, int dirfd, pthread_rwlock_t *swap_lock);
/* A remote object's whole bytes, checked against their size and checksum.
 * Returns 0, -ENOENT, -EBADMSG ("s3://B/P/KEY is damaged") or -errno. */
int remote_get_checked(struct remote_state *rs, const struct remote_object *object, uint8_t **ret,
		       size_t *ret_size);
/* GETs and parses cairn-head. 0, -ENOENT (no store) or -errno, with a
 * message in rs->error. */
int remote_get_head(struct remote_state *rs, struct remote_head *ret);
/* rs->error = "s3://B/P/KEY: why" */
void remote_set_error(struct remote_state *rs, const char *fmt, ...) _printf_(2, 3);

/* Makes m (taken over) with head the mirror's state after a push. */
int remote_adopt(struct remote_state *rs, int dirfd, const struct remote_head *head,
		 struct remote_manifest *m, const char *text, size_t size);

/* The lease (remote_lock.c): takes it for a new random session, or
 * -EBUSY with a message naming the holder while another writer's runs. */
int remote_lease_take(struct remote_state *rs);
/* Still this session's lease, and cairn-head still the one the mirror was
 * synced to (absent when creating). 0, or -EBUSY/-EEXIST/-errno. */
int remote_still_ours(struct remote_state *rs, bool creating);

/* Packs uploaded as they are sealed (remote_upload.c): a thread started
 * for a writer session (packs_fd: the store's packs/), stopped at its end;
 * wait returns 1 once pack_num of that size is uploaded under its final
 * key, 0 when it was never queued, or the upload's -errno. */
int remote_uploader_start(struct remote_state *rs, int packs_fd);
void remote_uploader_stop(struct remote_state *rs);
int remote_uploader_wait(struct remote_state *rs, uint32_t pack_num, uint64_t size);

/* The writer's side (remote_push.c): the lease taken when the writer opens,
 * the push after a local commit, the lease given back when it is freed. */
int remote_writer_begin(struct cairn_store *store);
int remote_push(struct cairn_store *store);
void remote_writer_end(struct cairn_store *store);

/* gc's mark and sweep (remote_gc.c). condemn fills m's condemned list
 * before it is encoded: while a gc pushes, every object of the store the
 * bucket listing gives that m does not reference (keeping the time of
 * those condemned before); else the old list without what m references.
 * sweep, after the pointer is written, deletes what was condemned for the
 * grace period and the mirror's files of packs no longer listed. */
int remote_gc_condemn(struct remote_state *rs, struct remote_manifest *m);
void remote_gc_sweep(struct remote_state *rs, int dirfd);
int remote_push_gc(struct cairn_store *store, int64_t grace, struct cairn_remote_gc_stats *ret);

#endif
