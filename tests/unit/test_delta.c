/* test_delta.c: delta chunks in the store. A chunk much like an earlier one
 * (in the same session or committed) is stored as a delta against it and
 * reads back exactly; chains stop at DELTA_MAX_DEPTH (a rebase); a
 * collision on a delta's id is still told apart by bytes; a damaged base is
 * an error naming the chunk, never wrong bytes; gc keeps bases that live
 * deltas need; a kill -9 while deltas are written or gc'd leaves a
 * store that verifies clean; the sketch table's streamed rewrite keeps
 * old and new pairs (new ones win) while dropping the old one's pages; and
 * the session's bases come from a ring of recent bytes, never stale ones;
 * the cutters compute each chunk's sketch, and sketch_compute matches the
 * sketch's definition written out.
 */
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>

#include "delta_internal.h"
#include "test_store_util.h"
#include "writer_internal.h"

#define VERSION_SIZE (20 * KiB)

/* Version v of a chunk: the same random bytes with a few edits, each
 * version a few more (so version v is closest to version v - 1). */
static void version_bytes(uint8_t *buf, unsigned v, uint64_t seed)
{
	test_fill_random(buf, VERSION_SIZE, seed);
	for (unsigned i = 1; i <= v; i++)
		memset(buf + 1000 + (i * 1531) % (VERSION_SIZE - 2000), (int)i, 12);
}

static const struct table_entry *entry_of(struct cairn_store *store, const struct cairn_id *id)
{
	const struct table_entry *entry = table_find(store_table(store), id);

	ck_assert_ptr_nonnull(entry);
	return entry;
}

static unsigned depth_of(struct cairn_store *store, const struct cairn_id *id)
{
	const struct table_entry *entry = entry_of(store, id);
	struct delta_ref ref;

	if (entry->codec != CODEC_DELTA)
		return 0;
	int fd = store_pack_fd(store, entry->pack_num);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(delta_read_ref(store, fd, entry, &ref), 0);
	return ref.depth;
}

/* _i: 0 the base is committed first, 1 it is in the same session. */
START_TEST(test_roundtrip)
{
	_cleanup_free_ uint8_t *a = test_alloc(VERSION_SIZE);
	_cleanup_free_ uint8_t *b = test_alloc(VERSION_SIZE);
	struct cairn_id id_a, id_b;

	version_bytes(a, 0, 1);
	version_bytes(b, 1, 1);
	_cleanup_(cairn_store_freep) struct cairn_store *store = store_create_small();
	{
		_cleanup_(cairn_writer_freep) struct cairn_writer *writer = writer_new(store);
		put(writer, a, VERSION_SIZE, &id_a);
		if (_i == 0)
			commit(writer);
		put(writer, b, VERSION_SIZE, &id_b);
		commit(writer);
	}
	_cleanup_(cairn_store_freep) struct cairn_store *reader = store_reopen(NULL);
	ck_assert_uint_eq(entry_of(reader, &id_a)->codec, CODEC_RAW);
	ck_assert_uint_eq(entry_of(reader, &id_b)->codec, CODEC_DELTA);
	ck_assert_uint_lt(entry_of(reader, &id_b)->stored_size, 200);
	ck_assert_uint_eq(reader->config_version, CONFIG_VERSION_DELTA);
	_cleanup_(cairn_unpacker_freep) struct cairn_unpacker *unpacker = unpacker_new(reader);
	assert_chunk(unpacker, &id_b, b, VERSION_SIZE);
	assert_chunk(unpacker, &id_a, a, VERSION_SIZE);
	assert_verify_clean(reader);
	struct cairn_store_delta_stats stats;
	ck_assert_int_eq(cairn_store_delta_stats(reader, &stats), 0);
	ck_assert_uint_eq(stats.chunks, 1);
	ck_assert_uint_eq(stats.chunk_bytes, VERSION_SIZE);
	ck_assert_uint_gt(stats.saved_bytes, VERSION_SIZE / 2);
}
END_TEST

/* A store without deltas keeps config version 1 (old readers read it). */
START_TEST(test_plain_store_stays_v1)
{
	_cleanup_free_ uint8_t *a = test_random_data(VERSION_SIZE, 2);
	_cleanup_free_ uint8_t *b = test_random_data(VERSION_SIZE, 3);
	struct cairn_id id;

	_cleanup_(cairn_store_freep) struct cairn_store *store = store_create_small();
	{
		_cleanup_(cairn_writer_freep) struct cairn_writer *writer = writer_new(store);
		put(writer, a, VERSION_SIZE, &id);
		put(writer, b, VERSION_SIZE, &id);
		commit(writer);
	}
	_cleanup_(cairn_store_freep) struct cairn_store *reader = store_reopen(NULL);
	ck_assert_uint_eq(reader->config_version, CONFIG_VERSION);
}
END_TEST

/* Eight versions in turn: no chain passes the bound, and the one that would
 * is stored whole (a rebase). _i: committed one by one, or one session. */
START_TEST(test_depth_bound)
{
	enum { VERSIONS = 8 };
	struct cairn_id ids[VERSIONS];
	_cleanup_free_ uint8_t *buf = test_alloc(VERSION_SIZE);
	unsigned at_bound = 0, rebased = 0;

	_cleanup_(cairn_store_freep) struct cairn_store *store = store_create_small();
	{
		_cleanup_(cairn_writer_freep) struct cairn_writer *writer = writer_new(store);
		for (unsigned v = 0; v < VERSIONS; v++) {
			version_bytes(buf, v, 5);
			put(writer, buf, VERSION_SIZE, &ids[v]);
			if (_i == 0)
				commit(writer);
		}
		commit(writer);
	}
	_cleanup_(cairn_store_freep) struct cairn_store *reader = store_reopen(NULL);
	_cleanup_(cairn_unpacker_freep) struct cairn_unpacker *unpacker = unpacker_new(reader);
	for (unsigned v = 0; v < VERSIONS; v++) {
		unsigned depth = depth_of(reader, &ids[v]);
		ck_assert_uint_le(depth, DELTA_MAX_DEPTH);
		at_bound += depth == DELTA_MAX_DEPTH;
		rebased += v > 0 && depth == 0;
		version_bytes(buf, v, 5);
		assert_chunk(unpacker, &ids[v], buf, VERSION_SIZE);
	}
	ck_assert_uint_ge(at_bound, 1);
	ck_assert_uint_ge(rebased, 1);
	assert_verify_clean(reader);
}
END_TEST

/* Variant 0 hashes only the first 8 bytes (all versions share them); other
 * variants hash everything. */
static void prefix_id_fn(const struct cairn_store *store, const void *data, size_t size,
			 unsigned variant, struct cairn_id *ret)
{
	struct store_checksum_stream sum;
	uint64_t words[2];
	uint8_t tag[2] = {(uint8_t)variant, 0};

	(void)store;
	for (int w = 0; w < 2; w++) {
		tag[1] = (uint8_t)w;
		store_checksum_stream_init(&sum);
		store_checksum_stream_update(&sum, tag, sizeof(tag));
		store_checksum_stream_update(&sum, data, variant == 0 && size > 8 ? 8 : size);
		words[w] = store_checksum_stream_final(&sum);
	}
	memcpy(ret->bytes, words, sizeof(words));
}

/* The versions collide on variant 0: each is stored under the next variant,
 * as a delta of the one before, and putting one again finds it by bytes
 * (decoding the delta). _i: committed one by one, or one session. */
START_TEST(test_collision)
{
	enum { VERSIONS = 3 };
	struct cairn_id ids[VERSIONS], again;
	_cleanup_free_ uint8_t *buf = test_alloc(VERSION_SIZE);
	struct cairn_writer_stats stats;

	_cleanup_(cairn_store_freep) struct cairn_store *store = store_create_small();
	cairn_store_testing_set_id_fn(store, prefix_id_fn);
	{
		_cleanup_(cairn_writer_freep) struct cairn_writer *writer = writer_new(store);
		for (unsigned v = 0; v < VERSIONS; v++) {
			version_bytes(buf, v, 9);
			put(writer, buf, VERSION_SIZE, &ids[v]);
			if (_i == 0)
				commit(writer);
		}
		for (unsigned v = VERSIONS; v-- > 0;) {
			version_bytes(buf, v, 9);
			put(writer, buf, VERSION_SIZE, &again);
			ck_assert_mem_eq(again.bytes, ids[v].bytes, CAIRN_ID_SIZE);
		}
		commit(writer);
		cairn_writer_stats(writer, &stats);
		ck_assert_uint_ge(stats.collisions, 2);
	}
	_cleanup_(cairn_store_freep) struct cairn_store *reader = store_reopen(prefix_id_fn);
	ck_assert_uint_eq(entry_of(reader, &ids[1])->codec, CODEC_DELTA);
	ck_assert_uint_eq(entry_of(reader, &ids[1])->variant, 1);
	_cleanup_(cairn_unpacker_freep) struct cairn_unpacker *unpacker = unpacker_new(reader);
	for (unsigned v = 0; v < VERSIONS; v++) {
		version_bytes(buf, v, 9);
		assert_chunk(unpacker, &ids[v], buf, VERSION_SIZE);
	}
	assert_verify_clean(reader);
}
END_TEST

/* Damage to the base's record: reading the delta fails naming the delta's
 * chunk and pack, and verify reports it. */
START_TEST(test_damaged_base)
{
	_cleanup_free_ uint8_t *a = test_alloc(VERSION_SIZE);
	_cleanup_free_ uint8_t *b = test_alloc(VERSION_SIZE);
	_cleanup_free_ uint8_t *out = test_alloc(32 * KiB);
	struct cairn_id id_a, id_b;
	char path[PATH_MAX + 64], name[32], hex[CAIRN_ID_HEX + 1];

	version_bytes(a, 0, 11);
	version_bytes(b, 1, 11);
	_cleanup_(cairn_store_freep) struct cairn_store *store = store_create_small();
	{
		_cleanup_(cairn_writer_freep) struct cairn_writer *writer = writer_new(store);
		put(writer, a, VERSION_SIZE, &id_a);
		put(writer, b, VERSION_SIZE, &id_b);
		commit(writer);
	}
	const struct table_entry *base = entry_of(store, &id_a);
	pack_name(base->pack_num, name);
	snprintf(path, sizeof(path), "%s/packs/%s", store_dir(), name);
	int fd = open(path, O_RDWR | O_CLOEXEC);
	ck_assert_int_ge(fd, 0);
	uint8_t byte;
	off_t at = (off_t)(base->offset + record_head_size(1) + 5000);
	ck_assert_int_eq(pread(fd, &byte, 1, at), 1);
	byte ^= 0x40;
	ck_assert_int_eq(pwrite(fd, &byte, 1, at), 1);
	close(fd);

	_cleanup_(cairn_store_freep) struct cairn_store *reader = store_reopen(NULL);
	_cleanup_(cairn_unpacker_freep) struct cairn_unpacker *unpacker = unpacker_new(reader);
	ck_assert_int_eq(cairn_unpacker_get(unpacker, &id_b, out, 32 * KiB), -EBADMSG);
	cairn_id_to_hex(&id_b, hex);
	const char *error = cairn_unpacker_error(unpacker);
	ck_assert_msg(strstr(error, hex) && strstr(error, "base") && strstr(error, "packs/"),
		      "error: %s", error);
	struct problems problems;
	ck_assert_int_ge(verify(reader, &problems), 2);
}
END_TEST

static bool live_one(void *userdata, const struct cairn_id *id)
{
	return cairn_id_compare(userdata, id) == 0;
}

static bool live_none(void *userdata, const struct cairn_id *id)
{
	(void)userdata;
	(void)id;
	return false;
}

/* Only the delta is live: gc keeps its base, drops both once it is not. */
START_TEST(test_gc_keeps_base)
{
	_cleanup_free_ uint8_t *a = test_alloc(VERSION_SIZE);
	_cleanup_free_ uint8_t *b = test_alloc(VERSION_SIZE);
	struct cairn_id id_a, id_b;
	struct cairn_gc_stats stats;

	version_bytes(a, 0, 13);
	version_bytes(b, 1, 13);
	_cleanup_(cairn_store_freep) struct cairn_store *store = store_create_small();
	_cleanup_(cairn_writer_freep) struct cairn_writer *writer = writer_new(store);
	put(writer, a, VERSION_SIZE, &id_a);
	commit(writer);
	put(writer, b, VERSION_SIZE, &id_b);
	commit(writer);
	ck_assert_int_eq(cairn_writer_gc(writer, live_one, &id_b, &stats), 0);
	ck_assert_uint_eq(stats.chunks_dropped, 0);
	{
		_cleanup_(cairn_store_freep) struct cairn_store *reader = store_reopen(NULL);
		_cleanup_(cairn_unpacker_freep) struct cairn_unpacker *unpacker =
			unpacker_new(reader);
		assert_chunk(unpacker, &id_b, b, VERSION_SIZE);
		assert_verify_clean(reader);
	}
	ck_assert_int_eq(cairn_writer_gc(writer, live_none, NULL, &stats), 0);
	ck_assert_uint_eq(stats.chunks_dropped, 2);
	_cleanup_(cairn_store_freep) struct cairn_store *reader = store_reopen(NULL);
	ck_assert_uint_eq(store_table(reader)->entry_count, 0);
	assert_verify_clean(reader);
}
END_TEST

/* ---- kill -9 ---- */

#define KILL_ROUNDS_MAX 4096

/* Round r puts version r of a chunk and commits: every round after the
 * first writes a delta. */
static _Noreturn void add_child(uint32_t first, int report_fd)
{
	struct cairn_store *store = cairn_store_new();
	struct cairn_writer *writer;
	uint8_t *buf = malloc(VERSION_SIZE);
	struct cairn_id id;

	if (!store || !buf || cairn_store_open(store, store_dir()) < 0 ||
	    cairn_writer_open(store, 0, 2, &writer) < 0)
		_exit(1);
	for (uint32_t round = first; round < KILL_ROUNDS_MAX; round++) {
		version_bytes(buf, round, 17);
		if (cairn_writer_put(writer, buf, VERSION_SIZE, &id) < 0 ||
		    cairn_writer_commit(writer) < 0)
			_exit(2);
		if (write(report_fd, &round, sizeof(round)) != sizeof(round))
			_exit(3);
	}
	_exit(4);
}

/* gc with only the newest half of rounds live: bases of older rounds stay,
 * packs are rewritten. */
struct gc_live {
	struct cairn_store *store;
	uint32_t from, to;
};

static bool live_rounds(void *userdata, const struct cairn_id *id)
{
	const struct gc_live *live = userdata;
	uint8_t buf[VERSION_SIZE];
	struct cairn_id got;

	for (uint32_t r = live->from; r < live->to; r++) {
		version_bytes(buf, r, 17);
		cairn_store_chunk_id(live->store, buf, VERSION_SIZE, &got);
		if (cairn_id_compare(&got, id) == 0)
			return true;
	}
	return false;
}

static _Noreturn void gc_child(uint32_t rounds)
{
	struct cairn_store *store = cairn_store_new();
	struct cairn_writer *writer;
	struct cairn_gc_stats stats;

	if (!store || cairn_store_open(store, store_dir()) < 0 ||
	    cairn_writer_open(store, 0, 2, &writer) < 0)
		_exit(1);
	struct gc_live live = {.store = store, .from = rounds / 2, .to = rounds};
	_exit(cairn_writer_gc(writer, live_rounds, &live, &stats) < 0 ? 2 : 0);
}

/* Forks the child, waits for wait reports, kills it after delay_us more;
 * returns the next round not reported. */
static uint32_t run_and_kill(bool gc, uint32_t first, uint32_t wait, unsigned delay_us)
{
	pid_t parent = getpid();
	int fds[2], status;
	uint32_t round, next = first;

	ck_assert_int_eq(pipe2(fds, O_CLOEXEC), 0);
	pid_t pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		if (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0 || getppid() != parent)
			_exit(9);
		close(fds[0]);
		if (gc)
			gc_child(first);
		add_child(first, fds[1]);
	}
	close(fds[1]);
	/* Waiting for reports is not timing: it lets the kill land later. */
	while (next < first + wait && read(fds[0], &round, sizeof(round)) == sizeof(round))
		ck_assert_uint_eq(round, next++);
	usleep(delay_us);
	kill(pid, SIGKILL);
	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	while (read(fds[0], &round, sizeof(round)) == sizeof(round))
		ck_assert_uint_eq(round, next++);
	close(fds[0]);
	ck_assert_msg(WIFSIGNALED(status) || (gc && WIFEXITED(status) && !WEXITSTATUS(status)),
		      "the child failed by itself (status %d)", status);
	return next;
}

static void assert_rounds(uint32_t from, uint32_t to)
{
	_cleanup_(cairn_store_freep) struct cairn_store *store = store_reopen(NULL);
	assert_verify_clean(store);
	_cleanup_(cairn_unpacker_freep) struct cairn_unpacker *unpacker = unpacker_new(store);
	_cleanup_free_ uint8_t *buf = test_alloc(VERSION_SIZE);
	struct cairn_id id;

	for (uint32_t r = from; r < to; r++) {
		version_bytes(buf, r, 17);
		cairn_store_chunk_id(store, buf, VERSION_SIZE, &id);
		assert_chunk(unpacker, &id, buf, VERSION_SIZE);
	}
}

START_TEST(test_kill_add)
{
	uint64_t rng = 23;
	uint32_t next = 0;
	struct cairn_store_params params;

	small_params(&params);
	params.pack_max = 1 * MiB;
	cairn_store_free(store_create_with(&params));
	for (int k = 0; k < 30; k++) {
		next = run_and_kill(false, next, k % 2, (unsigned)(test_rand_next(&rng) % 20000));
		assert_rounds(0, next);
	}
	ck_assert_uint_gt(next, 0);
}
END_TEST

START_TEST(test_kill_gc)
{
	uint64_t rng = 29;
	struct cairn_store_params params;
	char cmd[PATH_MAX + 16];

	small_params(&params);
	params.pack_max = 1 * MiB;
	for (int k = 0; k < 12; k++) {
		snprintf(cmd, sizeof(cmd), "rm -rf '%s'", store_dir());
		ck_assert_int_eq(system(cmd), 0);
		cairn_store_free(store_create_with(&params));
		uint32_t rounds = 0;
		rounds = run_and_kill(false, 0, 40, 0);
		run_and_kill(true, rounds, 0, (unsigned)(test_rand_next(&rng) % 30000));
		assert_rounds(rounds / 2, rounds);
	}
}
END_TEST

/* ---- the sketch table's rewrite ---- */

enum { SK_OLD = 120000, SK_NEW = 40000, SK_REPLACED = 15000 };

/* Pair i: a distinct tag (an odd multiplier is a bijection mod 2^32). */
static uint64_t sk_sf(size_t i)
{
	return (uint64_t)((uint32_t)(i + 1) * 2654435761u) << 32;
}

struct sk_pairs {
	const struct cairn_id *ids;
	size_t first, end, at;
	uint64_t (*sf)(size_t i); /* NULL: sk_sf */
};

static bool sk_next(void *ctx, uint64_t *sf, const uint8_t **id)
{
	struct sk_pairs *p = ctx;

	if (p->at == p->end)
		return false;
	*sf = (p->sf ? p->sf : sk_sf)(p->first + p->at);
	*id = p->ids[p->at++].bytes;
	return true;
}

static void sk_rewind(void *ctx)
{
	((struct sk_pairs *)ctx)->at = 0;
}

static int sk_id_compare(const void *a, const void *b)
{
	return memcmp(a, b, CAIRN_ID_SIZE);
}

/* A chunk table holding ids (sorted into entries), for prefix lookups. */
static void sk_chunks(struct chunk_table *chunks, struct table_entry *entries, uint32_t *fanout,
		      const struct cairn_id *ids, size_t count)
{
	memset(entries, 0, count * sizeof(*entries));
	for (size_t i = 0; i < count; i++)
		memcpy(entries[i].chunk_id, ids[i].bytes, CAIRN_ID_SIZE);
	qsort(entries, count, sizeof(*entries), sk_id_compare);
	memset(fanout, 0, 256 * sizeof(*fanout));
	for (size_t i = 0; i < count; i++)
		fanout[entries[i].chunk_id[0]]++;
	for (unsigned b = 1; b < 256; b++)
		fanout[b] += fanout[b - 1];
	*chunks = (struct chunk_table){.fanout = fanout, .entries = entries, .entry_count = count};
}

static void sk_assert_sf(const struct sketch_table *table, const struct chunk_table *chunks,
			 uint64_t sf, const struct cairn_id *want)
{
	const struct table_entry *e = sketch_table_find(table, chunks, sf);

	ck_assert_ptr_nonnull(e);
	ck_assert_mem_eq(e->chunk_id, want->bytes, CAIRN_ID_SIZE);
}

static void sk_assert_id(const struct sketch_table *table, const struct chunk_table *chunks,
			 size_t i, const struct cairn_id *want)
{
	const struct table_entry *e = sketch_table_find(table, chunks, sk_sf(i));

	ck_assert_ptr_nonnull(e);
	ck_assert_mem_eq(e->chunk_id, want->bytes, CAIRN_ID_SIZE);
}

/* Whether /proc/self/maps has a mapping of a file under dir. */
static bool mapped_under(const char *dir)
{
	FILE *maps = fopen("/proc/self/maps", "r");
	char line[4096];
	bool found = false;

	ck_assert_ptr_nonnull(maps);
	while (!found && fgets(line, sizeof(line), maps))
		found = strstr(line, dir) != NULL;
	fclose(maps);
	return found;
}

/* A rewrite streams the new pairs (new ones win over the old table's) and
 * reads the old table in blocks: the old table still reads the same
 * afterwards (its fd holds the file, now replaced), and the new file holds
 * both. The old table spans several blocks. Neither is mapped: a lookup
 * lands on a random page, and a mapping's pages, soon all resident, counted
 * in an add's peak memory (6.1 MB of linux 6.1's table). */
START_TEST(test_sketch_rewrite)
{
	_cleanup_free_ struct cairn_id *ids = test_alloc((SK_OLD + SK_NEW) * sizeof(*ids));
	_cleanup_free_ struct table_entry *entries =
		test_alloc((SK_OLD + SK_NEW) * sizeof(*entries));
	uint32_t fanout[256];
	struct chunk_table chunks;
	struct sketch_table *old = NULL, *merged = NULL;
	char dir[] = "/tmp/cairn-sketch-XXXXXX";
	char cmd[64];

	test_fill_random(ids, (SK_OLD + SK_NEW) * sizeof(*ids), 7);
	ck_assert_ptr_nonnull(mkdtemp(dir));
	int dirfd = open(dir, O_RDONLY | O_DIRECTORY);
	ck_assert_int_ge(dirfd, 0);
	sk_chunks(&chunks, entries, fanout, ids, SK_OLD + SK_NEW);

	struct sk_pairs first = {.ids = ids, .first = 0, .end = SK_OLD};
	ck_assert_int_eq(sketch_table_write(dirfd, NULL, SK_OLD,
					    &(struct sketch_source){sk_next, sk_rewind, &first}),
			 0);
	ck_assert_int_eq(sketch_table_load(dirfd, &old), 0);
	/* The new pairs: SK_REPLACED of the old tags, then new ones. */
	size_t from = SK_OLD - SK_REPLACED;
	struct sk_pairs second = {.ids = ids + SK_OLD, .first = from, .end = SK_NEW};
	ck_assert_int_eq(sketch_table_write(dirfd, old, SK_NEW,
					    &(struct sketch_source){sk_next, sk_rewind, &second}),
			 0);
	ck_assert_int_eq(sketch_table_load(dirfd, &merged), 0);

	for (size_t i = 0; i < SK_OLD; i++)
		sk_assert_id(old, &chunks, i, &ids[i]);
	for (size_t i = 0; i < from; i++)
		sk_assert_id(merged, &chunks, i, &ids[i]);
	for (size_t i = 0; i < SK_NEW; i++)
		sk_assert_id(merged, &chunks, from + i, &ids[SK_OLD + i]);
	ck_assert(!mapped_under(dir));
	sketch_table_free(old);
	sketch_table_free(merged);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	ck_assert_int_eq(system(cmd), 0);
	close(dirfd);
}
END_TEST

/* Pairs SK_WRAP first ones have tags whose home is the last slot. */
enum { SK_WRAP = 150, SK_WRAP_ALL = 200 };

static uint64_t sk_wrap_sf(size_t i)
{
	return i < SK_WRAP ? (uint64_t)(0xffffff00u + (uint32_t)i) << 32 : sk_sf(i);
}

/* A rewrite builds the table a part at a time; pairs whose probing runs
 * past the last slot wrap to the first free slots, placed once the file is
 * written. Every pair is found, in that table and in one rewritten from it
 * (which reads the wrapped slots back as old ones). */
START_TEST(test_sketch_wrap)
{
	struct cairn_id ids[SK_WRAP_ALL];
	struct table_entry entries[SK_WRAP_ALL];
	uint32_t fanout[256];
	struct chunk_table chunks;
	struct sketch_table *first = NULL, *second = NULL;
	char dir[] = "/tmp/cairn-sketch-XXXXXX";
	char cmd[64];

	test_fill_random(ids, sizeof(ids), 11);
	ck_assert_ptr_nonnull(mkdtemp(dir));
	int dirfd = open(dir, O_RDONLY | O_DIRECTORY);
	ck_assert_int_ge(dirfd, 0);
	sk_chunks(&chunks, entries, fanout, ids, SK_WRAP_ALL);

	/* All but the last ten, then those ten into the rewrite. */
	struct sk_pairs pairs = {.ids = ids, .end = SK_WRAP_ALL - 10, .sf = sk_wrap_sf};
	ck_assert_int_eq(sketch_table_write(dirfd, NULL, pairs.end,
					    &(struct sketch_source){sk_next, sk_rewind, &pairs}),
			 0);
	ck_assert_int_eq(sketch_table_load(dirfd, &first), 0);
	struct sk_pairs rest = {.ids = ids + SK_WRAP_ALL - 10,
				.first = SK_WRAP_ALL - 10,
				.end = 10,
				.sf = sk_wrap_sf};
	ck_assert_int_eq(sketch_table_write(dirfd, first, 10,
					    &(struct sketch_source){sk_next, sk_rewind, &rest}),
			 0);
	ck_assert_int_eq(sketch_table_load(dirfd, &second), 0);
	for (size_t i = 0; i < SK_WRAP_ALL - 10; i++)
		sk_assert_sf(first, &chunks, sk_wrap_sf(i), &ids[i]);
	for (size_t i = 0; i < SK_WRAP_ALL; i++)
		sk_assert_sf(second, &chunks, sk_wrap_sf(i), &ids[i]);
	sketch_table_free(first);
	sketch_table_free(second);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	ck_assert_int_eq(system(cmd), 0);
	close(dirfd);
}
END_TEST

/* The session's chunks of the last 8 MiB of new chunks are bases: one put
 * 200 KB before comes from the writer's ring of recent chunks (512 KiB
 * here), one put 6 MB before (its bytes gone from the ring) is read back
 * from its pack, and the chunk like it is a delta of it; one put 10 MB
 * before is out of reach (the window wrapped over it, its slot still naming
 * it) and the chunk is stored whole. All read back exactly. _i: 0 the ring,
 * 1 the pack, 2 out of reach. */
START_TEST(test_cache_ring)
{
	static const unsigned filler_counts[] = {10, 300, 500};
	const unsigned fillers = filler_counts[_i]; /* 20 KiB each */
	_cleanup_free_ uint8_t *a = test_alloc(VERSION_SIZE);
	_cleanup_free_ uint8_t *b = test_alloc(VERSION_SIZE);
	_cleanup_free_ uint8_t *filler = test_alloc(VERSION_SIZE);
	struct cairn_id id_a, id_b, id;

	version_bytes(a, 0, 7);
	version_bytes(b, 1, 7);
	_cleanup_(cairn_store_freep) struct cairn_store *store = store_create_small();
	{
		_cleanup_(cairn_writer_freep) struct cairn_writer *writer = writer_new(store);
		put(writer, a, VERSION_SIZE, &id_a);
		for (unsigned i = 0; i < fillers; i++) {
			test_fill_random(filler, VERSION_SIZE, 1000 + i);
			put(writer, filler, VERSION_SIZE, &id);
		}
		put(writer, b, VERSION_SIZE, &id_b);
		commit(writer);
	}
	_cleanup_(cairn_store_freep) struct cairn_store *reader = store_reopen(NULL);
	if (_i < 2)
		ck_assert_uint_eq(depth_of(reader, &id_b), 1);
	else
		ck_assert_uint_ne(entry_of(reader, &id_b)->codec, CODEC_DELTA);
	_cleanup_(cairn_unpacker_freep) struct cairn_unpacker *unpacker = unpacker_new(reader);
	assert_chunk(unpacker, &id_b, b, VERSION_SIZE);
	assert_chunk(unpacker, &id_a, a, VERSION_SIZE);
	assert_verify_clean(reader);
}
END_TEST

/* The cutters sketch each chunk (chunk_prepare), off the sequencer: the
 * same sketch as sketch_compute, and none for a chunk too small or too
 * uniform to have one. */
START_TEST(test_prepared_sketch)
{
	_cleanup_free_ uint8_t *a = test_alloc(VERSION_SIZE);
	_cleanup_free_ uint8_t *zeros = test_alloc(VERSION_SIZE);
	struct sketch sketch;
	struct cut cut;

	version_bytes(a, 0, 11);
	memset(zeros, 0, VERSION_SIZE);
	_cleanup_(cairn_store_freep) struct cairn_store *store = store_create_small();
	_cleanup_(cairn_writer_freep) struct cairn_writer *writer = writer_new(store);
	memset(&cut, 0xff, sizeof(cut));
	chunk_prepare(writer, a, VERSION_SIZE, &cut);
	ck_assert(cut.prepared);
	ck_assert(cut.sketched);
	ck_assert(sketch_compute(writer->chunker.gear, a, VERSION_SIZE, &sketch));
	ck_assert_mem_eq(&cut.sketch, &sketch, sizeof(sketch));
	chunk_prepare(writer, a, SKETCH_MIN_CHUNK - 1, &cut);
	ck_assert(!cut.sketched);
	chunk_prepare(writer, zeros, VERSION_SIZE, &cut);
	ck_assert(!cut.sketched);
}
END_TEST

/* The sketch's definition, written out plainly (docs/FORMAT.md, the sketch
 * table): sketch_compute must match it for every size and content, since
 * the sketch tables of existing stores hold sketches made this way and a
 * faster sketch_compute that drifted would find no base in them. */
static uint64_t ref_mix64(uint64_t x)
{
	x ^= x >> 30;
	x *= 0xbf58476d1ce4e5b9ull;
	x ^= x >> 27;
	x *= 0x94d049bb133111ebull;
	return x ^ (x >> 31);
}

static bool ref_sketch(const uint64_t gear[256], const uint8_t *data, size_t size,
		       struct sketch *ret)
{
	uint64_t feature[12] = {0}, mul[13], hash = 0;
	size_t samples = 0;

	if (size < SKETCH_MIN_CHUNK)
		return false;
	for (unsigned i = 0; i <= 12; i++)
		mul[i] = ref_mix64(0x736b65746368ull + i) | 1;
	for (size_t i = 0; i < size; i++) {
		hash = (hash << 1) + gear[data[i]];
		if (hash >= 1ull << 58)
			continue;
		samples++;
		for (unsigned f = 0; f < 12; f++) {
			uint64_t t = hash * mul[f] + mul[f + 1];
			feature[f] = t > feature[f] ? t : feature[f];
		}
	}
	if (samples < 8)
		return false;
	for (unsigned s = 0; s < SKETCH_SUPER; s++) {
		uint64_t sf = 0x5346ull + s;
		for (unsigned f = 0; f < 12 / SKETCH_SUPER; f++)
			sf = ref_mix64(sf ^ feature[s * (12 / SKETCH_SUPER) + f]);
		ret->sf[s] = sf ? sf : 1;
	}
	return true;
}

START_TEST(test_sketch_definition)
{
	const size_t max = 300 * KiB;
	_cleanup_free_ uint8_t *buf = test_alloc(max);
	_cleanup_(cairn_store_freep) struct cairn_store *store = store_create_small();
	_cleanup_(cairn_writer_freep) struct cairn_writer *writer = writer_new(store);
	const uint64_t *gear = writer->chunker.gear;
	const size_t sizes[] = {SKETCH_MIN_CHUNK - 1, SKETCH_MIN_CHUNK,
				SKETCH_MIN_CHUNK + 1, SKETCH_MIN_CHUNK + 2,
				SKETCH_MIN_CHUNK + 3, 4099,
				20 * KiB + 7,         64 * KiB,
				256 * KiB - 1,        max};
	unsigned sketched = 0, unsketched = 0;

	/* Random bytes, text (few distinct bytes: long stretches without a
	 * sample), and text whose every 64th byte differs, at 64 offsets. */
	for (unsigned kind = 0; kind < 3; kind++) {
		test_fill_random(buf, max, 40 + kind);
		for (size_t i = 0; kind > 0 && i < max; i++)
			buf[i] = kind == 2 && i % 64 == 0 ? buf[i]
							  : (uint8_t) "the cat sat "[buf[i] % 12];
		for (size_t n = 0; n < ARRAY_SIZE(sizes); n++) {
			for (size_t offset = 0; offset < 64; offset++) {
				struct sketch got = {{0}}, want = {{0}};
				bool ok =
					sketch_compute(gear, buf + offset, sizes[n] - offset, &got);
				ck_assert_int_eq(ok, ref_sketch(gear, buf + offset,
								sizes[n] - offset, &want));
				ck_assert_mem_eq(&got, &want, sizeof(got));
				ok ? sketched++ : unsketched++;
			}
		}
	}
	ck_assert_uint_gt(sketched, 20);
	ck_assert_uint_gt(unsketched, 2);
}
END_TEST

static Suite *delta_suite(void)
{
	Suite *suite = suite_create("delta");
	const struct test_case cases[] = {
		{"roundtrip", test_roundtrip, 2, 10},
		{"plain_store_stays_v1", test_plain_store_stays_v1, 1, 10},
		{"depth_bound", test_depth_bound, 2, 10},
		{"collision", test_collision, 2, 10},
		{"damaged_base", test_damaged_base, 1, 10},
		{"gc_keeps_base", test_gc_keeps_base, 1, 10},
		{"kill_add", test_kill_add, 1, 120},
		{"kill_gc", test_kill_gc, 1, 120},
		{"sketch_rewrite", test_sketch_rewrite, 1, 30},
		{"sketch_wrap", test_sketch_wrap, 1, 10},
		{"cache_ring", test_cache_ring, 3, 30},
		{"prepared_sketch", test_prepared_sketch, 1, 10},
		{"sketch_definition", test_sketch_definition, 1, 10},
	};

	return test_suite_add(suite, cases, ARRAY_SIZE(cases));
}

int main(void)
{
	return test_run(delta_suite());
}
