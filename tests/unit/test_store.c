/* test_store.c: the chunk store through its public API (store.h), with a few
 * looks inside (store_internal.h) to find a chunk's record in a pack and to
 * force id collisions. Each behaviour is its own TCase in a fresh temp dir:
 * create/open, round trips, dedup, commit visibility, collisions, damaged
 * packs and metadata, pack sealing, locking, and kill -9 at random moments.
 */
#include "store_internal.h"
#include "test_util.h"

#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>

#define KiB 1024u
#define MiB (1024u * 1024u)

#define FEED_WHOLE SIZE_MAX
static const size_t feed_sizes[] = {1, 7, 4096, FEED_WHOLE};

/* ---- handles ---- */

static void store_freep(struct cairn_store **store)
{
	cairn_store_free(*store);
}
static void writer_freep(struct cairn_writer **writer)
{
	cairn_writer_free(*writer);
}
static void unpacker_freep(struct cairn_unpacker **unpacker)
{
	cairn_unpacker_free(*unpacker);
}
#define _cleanup_store_    _cleanup_(store_freep)
#define _cleanup_writer_   _cleanup_(writer_freep)
#define _cleanup_unpacker_ _cleanup_(unpacker_freep)

/* Small chunks, so a few hundred KiB make many of them. */
static void small_params(struct cairn_store_params *params)
{
	cairn_store_params_default(params);
	params->chunk_min = 2 * KiB;
	params->chunk_avg = 8 * KiB;
	params->chunk_max = 32 * KiB;
}

static const char *store_dir(void)
{
	static char path[PATH_MAX];

	return test_path(path, sizeof(path), "store");
}

/* "STORE/name" */
static char *store_file(char *buf, size_t size, const char *name)
{
	ck_assert_int_lt(snprintf(buf, size, "%s/%s", store_dir(), name), (int)size);
	return buf;
}

static struct cairn_store *store_create_with(const struct cairn_store_params *params)
{
	struct cairn_store *store = cairn_store_new();

	ck_assert_ptr_nonnull(store);
	int r = cairn_store_create(store, store_dir(), params);
	ck_assert_msg(r == 0, "create: %s (%s)", strerror(-r), cairn_store_error(store));
	return store;
}

static struct cairn_store *store_create_small(void)
{
	struct cairn_store_params params;

	small_params(&params);
	return store_create_with(&params);
}

/* A second, independent handle on the store. */
static struct cairn_store *store_reopen(cairn_id_fn id_fn)
{
	struct cairn_store *store = cairn_store_new();

	ck_assert_ptr_nonnull(store);
	int r = cairn_store_open(store, store_dir());
	ck_assert_msg(r == 0, "open: %s (%s)", strerror(-r), cairn_store_error(store));
	if (id_fn)
		cairn_store_testing_set_id_fn(store, id_fn);
	return store;
}

static struct cairn_writer *writer_new(struct cairn_store *store)
{
	struct cairn_writer *writer = NULL;

	int r = cairn_writer_open(store, CAIRN_WRITER_NOWAIT, 2, &writer);
	ck_assert_msg(r == 0, "writer: %s (%s)", strerror(-r), cairn_store_error(store));
	return writer;
}

static struct cairn_unpacker *unpacker_new(struct cairn_store *store)
{
	struct cairn_unpacker *unpacker = NULL;

	ck_assert_int_eq(cairn_unpacker_new(store, &unpacker), 0);
	return unpacker;
}

static void commit(struct cairn_writer *writer)
{
	int r = cairn_writer_commit(writer);

	ck_assert_msg(r == 0, "commit: %s (%s)", strerror(-r), cairn_writer_error(writer));
}

static void put(struct cairn_writer *writer, const void *data, size_t size, struct cairn_id *ret)
{
	int r = cairn_writer_put(writer, data, size, ret);

	ck_assert_msg(r == 0, "put: %s (%s)", strerror(-r), cairn_writer_error(writer));
}

/* ---- files ---- */

/* What cairn_writer_file_end gave, with the chunk list copied, and the file
 * id made from that list. */
struct file_result {
	struct cairn_id id;
	uint64_t size;
	struct cairn_chunk_ref *chunks;
	size_t count;
};

static void file_result_release(struct file_result *file)
{
	free(file->chunks);
	*file = (struct file_result){0};
}

static void write_file(struct cairn_writer *writer, const uint8_t *data, size_t size, size_t feed,
		       struct file_result *ret)
{
	const struct cairn_chunk_ref *chunks;

	ck_assert_int_eq(cairn_writer_file_begin(writer), 0);
	for (size_t pos = 0; pos < size;) {
		size_t piece = size - pos < feed ? size - pos : feed;
		int r = cairn_writer_file_write(writer, data + pos, piece);
		if (r < 0)
			ck_abort_msg("file_write: %s (%s)", strerror(-r),
				     cairn_writer_error(writer));
		pos += piece;
	}
	int r = cairn_writer_file_end(writer, &ret->size, &chunks, &ret->count);
	ck_assert_msg(r == 0, "file_end: %s (%s)", strerror(-r), cairn_writer_error(writer));
	/* The file id names the chunk list; the writer leaves it to its caller. */
	struct cairn_file_hasher hasher;
	uint64_t end = 0;
	cairn_file_id_init(&hasher, writer_store(writer));
	for (size_t i = 0; i < ret->count; i++) {
		end += chunks[i].size;
		cairn_file_id_add_run(&hasher, &chunks[i].id, end);
	}
	cairn_file_hasher_final(&hasher, &ret->id);
	ret->chunks = test_alloc(ret->count * sizeof(*chunks));
	if (ret->count > 0)
		memcpy(ret->chunks, chunks, ret->count * sizeof(*chunks));
}

/* Half incompressible, half compressible: both codecs get used. */
static uint8_t *mixed_data(size_t size, uint64_t seed)
{
	uint8_t *data = test_alloc(size);

	test_fill_random(data, size / 2, seed);
	test_fill_text(data + size / 2, size - size / 2, seed + 1);
	return data;
}

/* ---- reading back ---- */

static void assert_chunk(struct cairn_unpacker *unpacker, const struct cairn_id *id,
			 const uint8_t *expected, size_t size)
{
	static uint8_t buf[CAIRN_CHUNK_MAX_LIMIT];
	char hex[CAIRN_ID_HEX + 1];

	cairn_id_to_hex(id, hex);
	int64_t n = cairn_unpacker_get(unpacker, id, buf, sizeof(buf));
	ck_assert_msg(n == (int64_t)size, "chunk %s: got %lld, expected %zu bytes (%s)", hex,
		      (long long)n, size, cairn_unpacker_error(unpacker));
	ck_assert_msg(memcmp(buf, expected, size) == 0, "chunk %s: wrong bytes", hex);
}

/* Reads a file back chunk by chunk and compares it with data. */
static void assert_file(struct cairn_unpacker *unpacker, const struct file_result *file,
			const uint8_t *data, size_t size)
{
	uint64_t pos = 0;

	ck_assert_uint_eq(file->size, size);
	for (size_t i = 0; i < file->count; i++) {
		ck_assert_uint_le(pos + file->chunks[i].size, size);
		assert_chunk(unpacker, &file->chunks[i].id, data + pos, file->chunks[i].size);
		pos += file->chunks[i].size;
	}
	ck_assert_uint_eq(pos, size);
}

/* ---- verify ---- */

struct problems {
	int64_t count;
	char first[600];
};

static void collect_problem(void *userdata, const char *problem)
{
	struct problems *problems = userdata;

	if (problems->count++ == 0)
		snprintf(problems->first, sizeof(problems->first), "%s", problem);
}

static int64_t verify(struct cairn_store *store, struct problems *ret)
{
	struct problems problems = {0};
	int64_t n = cairn_store_verify(store, collect_problem, &problems);

	ck_assert_msg(n >= 0, "verify: %s (%s)", strerror((int)-n), cairn_store_error(store));
	ck_assert_int_eq(n, problems.count);
	if (ret)
		*ret = problems;
	return n;
}

static void assert_verify_clean(struct cairn_store *store)
{
	struct problems problems;

	ck_assert_msg(verify(store, &problems) == 0, "verify: %lld problems, first: %s",
		      (long long)problems.count, problems.first);
}

/* ---- looking inside ---- */

static bool is_pack_name(const char *name, void *ctx)
{
	uint32_t num;

	(void)ctx;
	return pack_parse_name(name, &num) == 0;
}

static size_t count_packs(void)
{
	char path[PATH_MAX];

	return test_dir_count(store_file(path, sizeof(path), "packs"), is_pack_name, NULL);
}

static size_t count_temp_files(void)
{
	char path[PATH_MAX];

	return test_dir_count(store_dir(), test_is_temp_name, NULL) +
	       test_dir_count(store_file(path, sizeof(path), "packs"), test_is_temp_name, NULL);
}

/* Where a chunk's record lies: [start, end) of its pack file. */
/* Puts count chunks of size bytes, cut from data in turn, and commits. */
static void put_chunks(struct cairn_store *store, const uint8_t *data, size_t count, size_t size,
		       struct cairn_id *ids)
{
	_cleanup_writer_ struct cairn_writer *writer = writer_new(store);
	for (size_t i = 0; i < count; i++)
		put(writer, data + i * size, size, &ids[i]);
	commit(writer);
}

struct record_range {
	char pack_path[PATH_MAX];
	uint64_t start, end;
};

static void find_record(struct cairn_store *store, const struct cairn_id *id,
			struct record_range *ret)
{
	const struct chunk_table *table = store_table(store);
	const struct table_entry *entry = table_find(table, id);
	char name[32], rel[64];

	ck_assert_ptr_nonnull(entry);
	pack_name(entry->pack_num, name);
	snprintf(rel, sizeof(rel), "packs/%s", name);
	store_file(ret->pack_path, sizeof(ret->pack_path), rel);
	ret->start = entry->offset;
	/* A record runs to the next record of its pack or to the footer. */
	ret->end = test_file_size(ret->pack_path) - sizeof(struct pack_footer);
	for (uint64_t i = 0; i < table->entry_count; i++) {
		const struct table_entry *other = &table->entries[i];
		if (other->pack_num == entry->pack_num && other->offset > ret->start &&
		    other->offset < ret->end)
			ret->end = other->offset;
	}
}

/* ================================================================== */
/* create and open                                                      */
/* ================================================================== */

START_TEST(test_create_layout)
{
	struct cairn_store_params params;
	struct cairn_store_stats stats;
	struct cairn_id id = {{1}};
	char path[PATH_MAX];
	struct stat st;

	small_params(&params);
	params.zstd_level = 7;
	params.pack_max = 3 * MiB;
	_cleanup_store_ struct cairn_store *store = store_create_with(&params);
	ck_assert_uint_eq(test_file_size(store_file(path, sizeof(path), "config")),
			  sizeof(struct config_disk));
	ck_assert(test_exists(store_file(path, sizeof(path), "chunks")));
	ck_assert_uint_eq(test_dir_count(store_file(path, sizeof(path), "packs"), NULL, NULL), 0);
	ck_assert_int_eq(stat(store_dir(), &st), 0);
	ck_assert_uint_eq(st.st_mode & 0777, 0700);
	ck_assert_int_eq(count_temp_files(), 0);
	ck_assert_int_eq(cairn_store_stats(store, &stats), 0);
	ck_assert_uint_eq(stats.chunk_count, 0);
	ck_assert_uint_eq(stats.pack_count, 0);
	ck_assert(!cairn_store_has_chunk(store, &id, NULL));
	ck_assert_int_ge(cairn_store_dirfd(store), 0);
	ck_assert_str_eq(cairn_store_path(store), store_dir());

	/* A fresh handle reads back the same parameters. */
	_cleanup_store_ struct cairn_store *again = store_reopen(NULL);
	ck_assert_mem_eq(cairn_store_params(again), &params, sizeof(params));
	assert_verify_clean(again);
}
END_TEST

START_TEST(test_create_defaults)
{
	struct cairn_store_params defaults;
	_cleanup_store_ struct cairn_store *store = store_create_with(NULL);

	cairn_store_params_default(&defaults);
	ck_assert_int_eq(cairn_store_params_check(&defaults, NULL, 0), 0);
	ck_assert_mem_eq(cairn_store_params(store), &defaults, sizeof(defaults));
}
END_TEST

START_TEST(test_create_existing)
{
	char path[PATH_MAX];

	cairn_store_free(store_create_small());
	_cleanup_store_ struct cairn_store *again = cairn_store_new();
	ck_assert_int_eq(cairn_store_create(again, store_dir(), NULL), -EEXIST);
	ck_assert_str_ne(cairn_store_error(again), "");

	/* A directory with anything in it is not made a store either. */
	char other[PATH_MAX];
	test_path(other, sizeof(other), "busy");
	ck_assert_int_eq(mkdir(other, 0700), 0);
	ck_assert_int_lt(snprintf(path, sizeof(path), "%s/file", other), (int)sizeof(path));
	test_write_file(path, "x", 1);
	_cleanup_store_ struct cairn_store *busy = cairn_store_new();
	ck_assert_int_eq(cairn_store_create(busy, other, NULL), -EEXIST);
	ck_assert_str_ne(cairn_store_error(busy), "");
	ck_assert_uint_eq(test_dir_count(other, NULL, NULL), 1);

	/* An existing empty directory is fine. */
	ck_assert_int_eq(unlink(path), 0);
	_cleanup_store_ struct cairn_store *empty = cairn_store_new();
	ck_assert_int_eq(cairn_store_create(empty, other, NULL), 0);
}
END_TEST

START_TEST(test_open_missing)
{
	char path[PATH_MAX];
	_cleanup_store_ struct cairn_store *store = cairn_store_new();

	ck_assert_int_eq(cairn_store_open(store, test_path(path, sizeof(path), "nowhere")),
			 -ENOENT);
	ck_assert_str_ne(cairn_store_error(store), "");

	/* An empty directory is not a store either. */
	_cleanup_store_ struct cairn_store *empty = cairn_store_new();
	ck_assert_int_eq(cairn_store_open(empty, test_dir), -ENOENT);
	ck_assert_ptr_nonnull(strstr(cairn_store_error(empty), "config"));
}
END_TEST

static void set_bad_param(struct cairn_store_params *params, int which)
{
	small_params(params);
	switch (which) {
	case 0:
		params->chunk_avg = 6000; /* not a power of two */
		break;
	case 1:
		params->chunk_min = 100; /* below the limit */
		break;
	case 2:
		params->chunk_max = 32u << 20; /* above the limit */
		break;
	case 3:
		params->chunk_min = params->chunk_avg; /* min < avg < max */
		break;
	case 4:
		params->chunk_max = params->chunk_avg;
		break;
	case 5:
		params->zstd_level = 0;
		break;
	case 6:
		params->zstd_level = 20;
		break;
	case 7:
		params->pack_max = 4096;
		break;
	default:
		params->pack_max = 8ull << 30;
		break;
	}
}
#define BAD_PARAM_CASES 9

START_TEST(test_create_bad_params)
{
	struct cairn_store_params params;
	char why[200] = "";

	set_bad_param(&params, _i);
	ck_assert_int_eq(cairn_store_params_check(&params, why, sizeof(why)), -EINVAL);
	ck_assert_str_ne(why, "");
	_cleanup_store_ struct cairn_store *store = cairn_store_new();
	ck_assert_int_eq(cairn_store_create(store, store_dir(), &params), -EINVAL);
	ck_assert_str_ne(cairn_store_error(store), "");
	ck_assert(!test_exists(store_dir()));
}
END_TEST

START_TEST(test_ids)
{
	struct cairn_id id, parsed;
	char hex[CAIRN_ID_HEX + 1];

	test_fill_random(id.bytes, sizeof(id.bytes), 9);
	cairn_id_to_hex(&id, hex);
	ck_assert_uint_eq(strlen(hex), CAIRN_ID_HEX);
	ck_assert_int_eq(cairn_id_from_hex(hex, &parsed), 0);
	ck_assert_int_eq(cairn_id_compare(&id, &parsed), 0);
	hex[3] = 'g';
	ck_assert_int_eq(cairn_id_from_hex(hex, &parsed), -EINVAL);
	ck_assert_int_eq(cairn_id_from_hex("0123", &parsed), -EINVAL);
	ck_assert_int_eq(cairn_id_compare(&id, &parsed), 0); /* untouched on failure */
	parsed.bytes[15] ^= 1;
	ck_assert_int_ne(cairn_id_compare(&id, &parsed), 0);
}
END_TEST

/* ================================================================== */
/* round trips                                                          */
/* ================================================================== */

/* The file id as docs/FORMAT.md spells it, built by hand: the file hasher
 * over a 16-byte domain, then per chunk its id (recomputed from the bytes
 * here) and the little-endian offset where it ends. */
static void file_id_of(struct cairn_store *store, const uint8_t *data, size_t size,
		       const struct cairn_chunk_ref *chunks, size_t count, struct cairn_id *ret)
{
	static const char domain[16] = "cairn-file-v2";
	struct cairn_file_hasher hasher;
	uint64_t end = 0;

	cairn_file_hasher_init(&hasher, store);
	cairn_file_hasher_update(&hasher, domain, sizeof(domain));
	for (size_t i = 0; i < count; i++) {
		uint8_t run[CAIRN_ID_SIZE + 8];
		struct cairn_id id;
		cairn_store_chunk_id(store, data + end, chunks[i].size, &id);
		end += chunks[i].size;
		memcpy(run, id.bytes, CAIRN_ID_SIZE);
		for (unsigned b = 0; b < 8; b++)
			run[CAIRN_ID_SIZE + b] = (uint8_t)(end >> (8 * b));
		cairn_file_hasher_update(&hasher, run, sizeof(run));
	}
	ck_assert_uint_eq(end, size);
	cairn_file_hasher_final(&hasher, ret);
}

START_TEST(test_round_trip)
{
	const size_t size = 1 * MiB + 333, feed = feed_sizes[_i];
	const size_t put_sizes[] = {1, 100, 5000, 8 * KiB, 32 * KiB};
	struct cairn_id put_ids[ARRAY_SIZE(put_sizes)], expected;
	struct file_result whole = {0}, fed = {0}, empty = {0};

	_cleanup_free_ uint8_t *data = mixed_data(size, 10);
	_cleanup_free_ uint8_t *puts = test_random_data(32 * KiB, 11);
	{
		_cleanup_store_ struct cairn_store *store = store_create_small();
		_cleanup_writer_ struct cairn_writer *writer = writer_new(store);
		write_file(writer, data, size, feed, &fed);
		write_file(writer, data, size, FEED_WHOLE, &whole);
		write_file(writer, data, 0, feed, &empty);
		for (size_t i = 0; i < ARRAY_SIZE(put_sizes); i++) {
			put(writer, puts, put_sizes[i], &put_ids[i]);
			cairn_store_chunk_id(store, puts, put_sizes[i], &expected);
			ck_assert_mem_eq(put_ids[i].bytes, expected.bytes, CAIRN_ID_SIZE);
		}
		commit(writer);

		/* Same bytes, same file id and chunks, however they were fed. */
		ck_assert_mem_eq(fed.id.bytes, whole.id.bytes, CAIRN_ID_SIZE);
		ck_assert_uint_eq(fed.count, whole.count);
		ck_assert_mem_eq(fed.chunks, whole.chunks, fed.count * sizeof(*fed.chunks));
		ck_assert_uint_gt(whole.count, 16);
		file_id_of(store, data, size, whole.chunks, whole.count, &expected);
		ck_assert_mem_eq(whole.id.bytes, expected.bytes, CAIRN_ID_SIZE);
		ck_assert_uint_eq(empty.size, 0);
		ck_assert_uint_eq(empty.count, 0);
		file_id_of(store, data, 0, NULL, 0, &expected);
		ck_assert_mem_eq(empty.id.bytes, expected.bytes, CAIRN_ID_SIZE);
		ck_assert_mem_ne(empty.id.bytes, whole.id.bytes, CAIRN_ID_SIZE);
	}

	/* A fresh handle reads everything back. */
	_cleanup_store_ struct cairn_store *store = store_reopen(NULL);
	_cleanup_unpacker_ struct cairn_unpacker *unpacker = unpacker_new(store);
	assert_file(unpacker, &fed, data, size);
	for (size_t i = 0; i < ARRAY_SIZE(put_sizes); i++) {
		uint32_t stored_size = 0;
		ck_assert(cairn_store_has_chunk(store, &put_ids[i], &stored_size));
		ck_assert_uint_eq(stored_size, put_sizes[i]);
		assert_chunk(unpacker, &put_ids[i], puts, put_sizes[i]);
	}
	assert_verify_clean(store);
	file_result_release(&whole);
	file_result_release(&fed);
	file_result_release(&empty);
}
END_TEST

/* Many small files: their chunks share frames; each reads back alone and in
 * any order. */
START_TEST(test_round_trip_small_files)
{
	enum { FILES = 300 };
	struct file_result files[FILES];
	_cleanup_free_ uint8_t *data = mixed_data(FILES * 3000, 12);

	{
		_cleanup_store_ struct cairn_store *store = store_create_small();
		_cleanup_writer_ struct cairn_writer *writer = writer_new(store);
		for (size_t i = 0; i < FILES; i++)
			write_file(writer, data + i * 3000, 100 + i * 9, 4096, &files[i]);
		commit(writer);
	}
	_cleanup_store_ struct cairn_store *store = store_reopen(NULL);
	_cleanup_unpacker_ struct cairn_unpacker *unpacker = unpacker_new(store);
	for (size_t k = 0; k < FILES; k++) {
		size_t i = (k * 7919) % FILES; /* not in write order */
		ck_assert_uint_eq(files[i].count, 1);
		assert_file(unpacker, &files[i], data + i * 3000, 100 + i * 9);
	}
	assert_verify_clean(store);
	for (size_t i = 0; i < FILES; i++)
		file_result_release(&files[i]);
}
END_TEST

START_TEST(test_unpacker_errors)
{
	struct cairn_id id, missing = {{0}};
	uint8_t small[10];

	_cleanup_free_ uint8_t *data = test_random_data(5000, 13);
	_cleanup_store_ struct cairn_store *store = store_create_small();
	{
		_cleanup_writer_ struct cairn_writer *writer = writer_new(store);
		put(writer, data, 5000, &id);
		commit(writer);
	}
	_cleanup_unpacker_ struct cairn_unpacker *unpacker = unpacker_new(store);
	ck_assert_int_eq(cairn_unpacker_get(unpacker, &id, small, sizeof(small)), -ENOBUFS);
	ck_assert_int_eq(cairn_unpacker_get(unpacker, &missing, small, sizeof(small)), -ENOENT);
	ck_assert_str_ne(cairn_unpacker_error(unpacker), "");
	assert_chunk(unpacker, &id, data, 5000);
}
END_TEST

START_TEST(test_writer_misuse)
{
	struct file_result file;
	struct cairn_id id;
	const struct cairn_chunk_ref *chunks;
	uint64_t size;
	size_t count;
	uint8_t byte = 1;

	_cleanup_store_ struct cairn_store *store = store_create_small();
	_cleanup_writer_ struct cairn_writer *writer = writer_new(store);
	_cleanup_free_ uint8_t *big = test_random_data(32 * KiB + 1, 14);
	ck_assert_int_eq(cairn_writer_put(writer, big, 0, &id), -EINVAL);
	ck_assert_int_eq(cairn_writer_put(writer, big, 32 * KiB + 1, &id), -EINVAL);
	ck_assert_int_eq(cairn_writer_file_write(writer, &byte, 1), -EINVAL);
	ck_assert_int_eq(cairn_writer_file_end(writer, &size, &chunks, &count), -EINVAL);
	ck_assert_int_eq(cairn_writer_file_begin(writer), 0);
	ck_assert_int_eq(cairn_writer_file_begin(writer), -EBUSY);
	ck_assert_int_eq(cairn_writer_commit(writer), -EBUSY);
	ck_assert_int_eq(cairn_writer_file_end(writer, &size, &chunks, &count), 0);
	/* The writer still works after all that. */
	write_file(writer, big, 32 * KiB + 1, 4096, &file);
	commit(writer);
	_cleanup_unpacker_ struct cairn_unpacker *unpacker = unpacker_new(store);
	assert_file(unpacker, &file, big, 32 * KiB + 1);
	file_result_release(&file);
}
END_TEST

/* ================================================================== */
/* dedup                                                                */
/* ================================================================== */

START_TEST(test_dedup_session)
{
	const size_t size = 512 * KiB;
	struct cairn_writer_stats first, second;
	struct file_result a, b;
	struct cairn_id id1, id2;

	_cleanup_free_ uint8_t *data = mixed_data(size, 15);
	_cleanup_store_ struct cairn_store *store = store_create_small();
	_cleanup_writer_ struct cairn_writer *writer = writer_new(store);
	write_file(writer, data, size, 4096, &a);
	put(writer, data, 3000, &id1);
	cairn_writer_stats(writer, &first);
	write_file(writer, data, size, 7, &b);
	put(writer, data, 3000, &id2);
	cairn_writer_stats(writer, &second);

	ck_assert_mem_eq(id1.bytes, id2.bytes, CAIRN_ID_SIZE);
	ck_assert_uint_eq(second.chunks_new, first.chunks_new);
	ck_assert_uint_eq(second.bytes_new, first.bytes_new);
	ck_assert_uint_eq(second.chunks_in, 2 * first.chunks_in);
	ck_assert_uint_eq(second.bytes_in, 2 * first.bytes_in);
	commit(writer);

	struct cairn_store_stats stats;
	ck_assert_int_eq(cairn_store_stats(store, &stats), 0);
	ck_assert_uint_eq(stats.chunk_count, first.chunks_new);
	ck_assert_uint_eq(stats.chunk_bytes, first.bytes_new);
	file_result_release(&a);
	file_result_release(&b);
}
END_TEST

START_TEST(test_dedup_commits)
{
	const size_t size = 512 * KiB;
	struct cairn_store_stats before, after;
	struct cairn_writer_stats wstats;
	struct file_result a, b, c;

	_cleanup_free_ uint8_t *data = mixed_data(size, 16);
	_cleanup_store_ struct cairn_store *store = store_create_small();
	{
		_cleanup_writer_ struct cairn_writer *writer = writer_new(store);
		write_file(writer, data, size, 4096, &a);
		commit(writer);
		ck_assert_int_eq(cairn_store_stats(store, &before), 0);
		write_file(writer, data, size, 4096, &b);
		commit(writer);
		cairn_writer_stats(writer, &wstats);
		ck_assert_uint_eq(wstats.chunks_new, before.chunk_count);
	}
	/* Another handle and writer, after the fact. */
	_cleanup_store_ struct cairn_store *other = store_reopen(NULL);
	{
		_cleanup_writer_ struct cairn_writer *writer = writer_new(other);
		write_file(writer, data, size, 1, &c);
		commit(writer);
		cairn_writer_stats(writer, &wstats);
		ck_assert_uint_eq(wstats.chunks_new, 0);
		ck_assert_uint_eq(wstats.bytes_stored, 0);
	}
	ck_assert_int_eq(cairn_store_stats(other, &after), 0);
	ck_assert_uint_eq(after.chunk_count, before.chunk_count);
	ck_assert_uint_eq(after.pack_count, before.pack_count);
	ck_assert_uint_eq(after.pack_bytes, before.pack_bytes);
	ck_assert_uint_eq(count_packs(), before.pack_count);
	ck_assert_mem_eq(c.id.bytes, a.id.bytes, CAIRN_ID_SIZE);
	file_result_release(&a);
	file_result_release(&b);
	file_result_release(&c);
}
END_TEST

/* ================================================================== */
/* commit visibility                                                    */
/* ================================================================== */

/* Small chunks stored in several grouped frames, put again in an order
 * that hops between the frames (as a new version of a tree does between
 * old and new files): every one is a confirmed hit, nothing is stored, and
 * the chunks read back right. The writer keeps a few frames decoded. */
START_TEST(test_dedup_across_frames)
{
	enum { COUNT = 96 };
	struct cairn_id ids[COUNT], again;
	struct cairn_writer_stats wstats;
	uint8_t buf[2 * KiB];

	_cleanup_free_ uint8_t *data = mixed_data(COUNT * 2 * KiB, 33);
	_cleanup_store_ struct cairn_store *store = store_create_small();
	put_chunks(store, data, COUNT, 2 * KiB, ids);
	struct record_range first, last;
	find_record(store, &ids[0], &first);
	find_record(store, &ids[COUNT - 1], &last);
	ck_assert_uint_ne(first.start, last.start); /* 96 x 2 KiB span several frames */
	{
		_cleanup_writer_ struct cairn_writer *writer = writer_new(store);
		for (size_t k = 0; k < COUNT; k++) {
			size_t i = (k * 37) % COUNT; /* hops across the frames */
			put(writer, data + i * 2 * KiB, 2 * KiB, &again);
			ck_assert_mem_eq(again.bytes, ids[i].bytes, CAIRN_ID_SIZE);
		}
		commit(writer);
		cairn_writer_stats(writer, &wstats);
		ck_assert_uint_eq(wstats.chunks_new, 0);
		ck_assert_uint_eq(wstats.collisions, 0);
	}
	_cleanup_unpacker_ struct cairn_unpacker *unpacker = unpacker_new(store);
	for (size_t i = 0; i < COUNT; i++) {
		ck_assert_int_eq(cairn_unpacker_get(unpacker, &ids[i], buf, sizeof(buf)), 2 * KiB);
		ck_assert_mem_eq(buf, data + i * 2 * KiB, 2 * KiB);
	}
	assert_verify_clean(store);
}
END_TEST

START_TEST(test_invisible_before_commit)
{
	const size_t size = 256 * KiB;
	struct file_result file;
	uint8_t buf[32 * KiB];

	_cleanup_free_ uint8_t *data = mixed_data(size, 17);
	_cleanup_store_ struct cairn_store *store = store_create_small();
	_cleanup_writer_ struct cairn_writer *writer = writer_new(store);
	write_file(writer, data, size, 4096, &file);

	_cleanup_store_ struct cairn_store *early = store_reopen(NULL);
	_cleanup_unpacker_ struct cairn_unpacker *unpacker = unpacker_new(early);
	for (size_t i = 0; i < file.count; i++) {
		ck_assert(!cairn_store_has_chunk(store, &file.chunks[i].id, NULL));
		ck_assert(!cairn_store_has_chunk(early, &file.chunks[i].id, NULL));
		ck_assert_int_eq(cairn_unpacker_get(unpacker, &file.chunks[i].id, buf, sizeof(buf)),
				 -ENOENT);
	}
	assert_verify_clean(early);
	commit(writer);

	for (size_t i = 0; i < file.count; i++)
		ck_assert(cairn_store_has_chunk(store, &file.chunks[i].id, NULL));
	_cleanup_store_ struct cairn_store *late = store_reopen(NULL);
	_cleanup_unpacker_ struct cairn_unpacker *late_unpacker = unpacker_new(late);
	assert_file(late_unpacker, &file, data, size);
	file_result_release(&file);
}
END_TEST

/* The names and sizes in a directory, sorted, as one string. */
static char *dir_listing(const char *path)
{
	struct dirent **names;
	size_t len = 0, cap = 4096;
	char *out = test_alloc(cap);

	int n = scandir(path, &names, NULL, alphasort);
	ck_assert_int_ge(n, 0);
	out[0] = '\0';
	for (int i = 0; i < n; i++) {
		char full[PATH_MAX];
		struct stat st;
		snprintf(full, sizeof(full), "%s/%s", path, names[i]->d_name);
		ck_assert_int_eq(lstat(full, &st), 0);
		int w = snprintf(out + len, cap - len, "%s:%lld\n", names[i]->d_name,
				 S_ISDIR(st.st_mode) ? 0ll : (long long)st.st_size);
		ck_assert_int_lt(w, (int)(cap - len));
		len += (size_t)w;
		free(names[i]);
	}
	free(names);
	return out;
}

START_TEST(test_abandon_leaves_store_as_before)
{
	struct cairn_store_params params;
	struct file_result kept, dropped;
	char path[PATH_MAX];
	size_t size_before, size_after;

	small_params(&params);
	params.pack_max = 1 * MiB;
	_cleanup_free_ uint8_t *data = mixed_data(256 * KiB, 18);
	_cleanup_free_ uint8_t *more = test_random_data(3 * MiB, 19);
	_cleanup_store_ struct cairn_store *store = store_create_with(&params);
	{
		_cleanup_writer_ struct cairn_writer *writer = writer_new(store);
		write_file(writer, data, 256 * KiB, 4096, &kept);
		commit(writer);
	}
	_cleanup_free_ char *top_before = dir_listing(store_dir());
	_cleanup_free_ char *packs_before = dir_listing(store_file(path, sizeof(path), "packs"));
	_cleanup_free_ uint8_t *table_before =
		test_read_file(store_file(path, sizeof(path), "chunks"), &size_before);
	{
		/* Enough to seal packs of the size bound before the end. */
		_cleanup_writer_ struct cairn_writer *writer = writer_new(store);
		write_file(writer, more, 3 * MiB, 4096, &dropped);
		ck_assert_uint_gt(count_packs(), 1);
	}
	_cleanup_free_ char *top_after = dir_listing(store_dir());
	_cleanup_free_ char *packs_after = dir_listing(store_file(path, sizeof(path), "packs"));
	_cleanup_free_ uint8_t *table_after =
		test_read_file(store_file(path, sizeof(path), "chunks"), &size_after);
	ck_assert_str_eq(top_after, top_before);
	ck_assert_str_eq(packs_after, packs_before);
	ck_assert_uint_eq(size_after, size_before);
	ck_assert_mem_eq(table_after, table_before, size_before);
	ck_assert_int_eq(count_temp_files(), 0);

	_cleanup_store_ struct cairn_store *again = store_reopen(NULL);
	assert_verify_clean(again);
	for (size_t i = 0; i < dropped.count; i++)
		ck_assert(!cairn_store_has_chunk(again, &dropped.chunks[i].id, NULL));
	_cleanup_unpacker_ struct cairn_unpacker *unpacker = unpacker_new(again);
	assert_file(unpacker, &kept, data, 256 * KiB);
	file_result_release(&kept);
	file_result_release(&dropped);
}
END_TEST

/* ================================================================== */
/* collisions                                                           */
/* ================================================================== */

static void hash_words(const void *data, size_t size, unsigned variant, char tag, uint64_t *ret)
{
	struct store_checksum_stream sum;
	uint8_t prefix[2] = {(uint8_t)variant, (uint8_t)tag};

	store_checksum_stream_init(&sum);
	store_checksum_stream_update(&sum, prefix, sizeof(prefix));
	store_checksum_stream_update(&sum, data, size);
	*ret = store_checksum_stream_final(&sum);
}

/* Variant 0 hashes only the first 8 bytes, so chunks sharing them collide;
 * other variants hash everything, apart for each variant. */
static void prefix_id_fn(const struct cairn_store *store, const void *data, size_t size,
			 unsigned variant, struct cairn_id *ret)
{
	uint64_t words[2];

	(void)store;
	if (variant == 0) {
		hash_words(data, size < 8 ? size : 8, 0, 'p', &words[0]);
		words[1] = ~words[0];
	} else {
		hash_words(data, size, variant, 'a', &words[0]);
		hash_words(data, size, variant, 'b', &words[1]);
	}
	memcpy(ret->bytes, words, sizeof(words));
}

/* Every variant hashes only the first 8 bytes: no way out. */
static void stuck_id_fn(const struct cairn_store *store, const void *data, size_t size,
			unsigned variant, struct cairn_id *ret)
{
	prefix_id_fn(store, data, size, 0, ret);
}

enum { COLLIDE_GROUPED, COLLIDE_LARGE, COLLIDE_COMMITTED, COLLIDE_CASES };

START_TEST(test_collision)
{
	/* Small chunks meet in the open group, large ones in a pack. */
	const size_t size = _i == COLLIDE_GROUPED ? 1000 : 20 * KiB;
	struct cairn_id id_a, id_b, again;
	struct cairn_writer_stats stats;

	_cleanup_free_ uint8_t *a = test_random_data(size, 20);
	_cleanup_free_ uint8_t *b = test_random_data(size, 21);
	memcpy(b, a, 8);
	_cleanup_store_ struct cairn_store *store = store_create_small();
	cairn_store_testing_set_id_fn(store, prefix_id_fn);
	{
		_cleanup_writer_ struct cairn_writer *writer = writer_new(store);
		put(writer, a, size, &id_a);
		if (_i == COLLIDE_COMMITTED)
			commit(writer);
		put(writer, b, size, &id_b);
		ck_assert_mem_ne(id_a.bytes, id_b.bytes, CAIRN_ID_SIZE);
		/* Putting either again finds its own chunk. */
		put(writer, b, size, &again);
		ck_assert_mem_eq(again.bytes, id_b.bytes, CAIRN_ID_SIZE);
		put(writer, a, size, &again);
		ck_assert_mem_eq(again.bytes, id_a.bytes, CAIRN_ID_SIZE);
		commit(writer);
		cairn_writer_stats(writer, &stats);
		ck_assert_uint_ge(stats.collisions, 1);
		ck_assert_uint_eq(stats.chunks_new, 2);
	}
	_cleanup_store_ struct cairn_store *reader = store_reopen(prefix_id_fn);
	_cleanup_unpacker_ struct cairn_unpacker *unpacker = unpacker_new(reader);
	assert_chunk(unpacker, &id_a, a, size);
	assert_chunk(unpacker, &id_b, b, size);
	assert_verify_clean(reader);
}
END_TEST

START_TEST(test_collision_exhausted)
{
	struct cairn_id id_a, id_b;

	_cleanup_free_ uint8_t *a = test_random_data(3000, 22);
	_cleanup_free_ uint8_t *b = test_random_data(3000, 23);
	memcpy(b, a, 8);
	_cleanup_store_ struct cairn_store *store = store_create_small();
	cairn_store_testing_set_id_fn(store, stuck_id_fn);
	_cleanup_writer_ struct cairn_writer *writer = writer_new(store);
	put(writer, a, 3000, &id_a);
	memset(&id_b, 0xee, sizeof(id_b));
	/* Never a's id for b's bytes: an error instead. */
	ck_assert_int_eq(cairn_writer_put(writer, b, 3000, &id_b), -EBADMSG);
	ck_assert_str_ne(cairn_writer_error(writer), "");
	commit(writer);
	_cleanup_unpacker_ struct cairn_unpacker *unpacker = unpacker_new(store);
	assert_chunk(unpacker, &id_a, a, 3000);
	assert_verify_clean(store);
}
END_TEST

/* A file id names the chunk list: two files whose chunks collide on their
 * variant-0 ids are stored as distinct chunks, so their ids differ too, and
 * a chunk's bytes check against its own id only. */
START_TEST(test_file_id_collision)
{
	const size_t size = 1000;
	struct file_result fa = {0}, fb = {0}, again = {0};
	struct cairn_id none;

	_cleanup_free_ uint8_t *a = test_random_data(size, 24);
	_cleanup_free_ uint8_t *b = test_random_data(size, 25);
	memcpy(b, a, 8);
	_cleanup_store_ struct cairn_store *store = store_create_small();
	cairn_store_testing_set_id_fn(store, prefix_id_fn);
	{
		_cleanup_writer_ struct cairn_writer *writer = writer_new(store);
		write_file(writer, a, size, FEED_WHOLE, &fa);
		write_file(writer, b, size, FEED_WHOLE, &fb);
		write_file(writer, a, size, 7, &again);
		commit(writer);
	}
	ck_assert_uint_eq(fa.count, 1);
	ck_assert_uint_eq(fb.count, 1);
	ck_assert_mem_ne(fa.chunks[0].id.bytes, fb.chunks[0].id.bytes, CAIRN_ID_SIZE);
	ck_assert_mem_ne(fa.id.bytes, fb.id.bytes, CAIRN_ID_SIZE);
	ck_assert_mem_eq(fa.id.bytes, again.id.bytes, CAIRN_ID_SIZE);

	ck_assert_int_eq(cairn_store_chunk_verify(store, &fa.chunks[0].id, a, size), 0);
	ck_assert_int_eq(cairn_store_chunk_verify(store, &fb.chunks[0].id, b, size), 0);
	ck_assert_int_eq(cairn_store_chunk_verify(store, &fb.chunks[0].id, a, size), -EBADMSG);
	ck_assert_int_eq(cairn_store_chunk_verify(store, &fa.chunks[0].id, a, size - 1), -EBADMSG);
	memset(&none, 0x5a, sizeof(none));
	ck_assert_int_eq(cairn_store_chunk_verify(store, &none, a, size), -ENOENT);
	file_result_release(&fa);
	file_result_release(&fb);
	file_result_release(&again);
}
END_TEST

/* ================================================================== */
/* damaged packs                                                        */
/* ================================================================== */

/* Puts `count` large chunks (each its own frame: 20 KiB >= chunk_avg),
 * random or text, and commits. */
static void put_large_chunks(struct cairn_store *store, uint8_t *data, size_t count, bool text,
			     struct cairn_id *ids)
{
	_cleanup_writer_ struct cairn_writer *writer = writer_new(store);

	for (size_t i = 0; i < count; i++) {
		if (text)
			test_fill_text(data + i * 20 * KiB, 20 * KiB, 100 + i);
		else
			test_fill_random(data + i * 20 * KiB, 20 * KiB, 100 + i);
		put(writer, data + i * 20 * KiB, 20 * KiB, &ids[i]);
	}
	commit(writer);
}

static void assert_names_place(const char *msg, const struct record_range *range)
{
	char offset[48];
	const char *name = strrchr(range->pack_path, '/') + 1;

	snprintf(offset, sizeof(offset), "offset %llu", (unsigned long long)range->start);
	ck_assert_msg(strstr(msg, name) != NULL, "'%s' does not name the pack %s", msg, name);
	ck_assert_msg(strstr(msg, offset) != NULL, "'%s' does not name %s", msg, offset);
}

/* Damages one record; that chunk is -EBADMSG with a message naming pack and
 * offset, every other chunk still reads, and verify finds it. */
static void check_damage(bool text, bool in_header)
{
	enum { COUNT = 6, VICTIM = 3 };
	struct cairn_id ids[COUNT];
	struct record_range range;
	struct problems problems;
	static uint8_t buf[64 * KiB];

	_cleanup_free_ uint8_t *data = test_alloc(COUNT * 20 * KiB);
	_cleanup_store_ struct cairn_store *store = store_create_small();
	put_large_chunks(store, data, COUNT, text, ids);
	find_record(store, &ids[VICTIM], &range);
	ck_assert_uint_gt(range.end - range.start, 64);
	test_flip_byte(range.pack_path,
		       in_header ? range.start : range.start + (range.end - range.start) / 2);

	_cleanup_store_ struct cairn_store *reader = store_reopen(NULL);
	_cleanup_unpacker_ struct cairn_unpacker *unpacker = unpacker_new(reader);
	ck_assert_int_eq(cairn_unpacker_get(unpacker, &ids[VICTIM], buf, sizeof(buf)), -EBADMSG);
	assert_names_place(cairn_unpacker_error(unpacker), &range);
	for (size_t i = 0; i < COUNT; i++)
		if (i != VICTIM)
			assert_chunk(unpacker, &ids[i], data + i * 20 * KiB, 20 * KiB);
	/* Asked again (a cached frame must not hide the damage). */
	ck_assert_int_eq(cairn_unpacker_get(unpacker, &ids[VICTIM], buf, sizeof(buf)), -EBADMSG);
	ck_assert_int_ge(verify(reader, &problems), 1);
	ck_assert_ptr_nonnull(strstr(problems.first, strrchr(range.pack_path, '/') + 1));
}

START_TEST(test_damaged_payload)
{
	check_damage(_i == 1, false); /* 0: stored raw, 1: zstd */
}
END_TEST

START_TEST(test_damaged_record_header)
{
	check_damage(_i == 1, true);
}
END_TEST

/* Small chunks share a frame: damage to it fails the members whose bytes it
 * changed (each member is checked against its own id) and no others. */
START_TEST(test_damaged_group)
{
	enum { COUNT = 40 };
	struct cairn_id ids[COUNT];
	struct record_range victim, other;
	uint8_t buf[2 * KiB];

	_cleanup_free_ uint8_t *data = mixed_data(COUNT * 2 * KiB, 24);
	_cleanup_store_ struct cairn_store *store = store_create_small();
	put_chunks(store, data, COUNT, 2 * KiB, ids);
	find_record(store, &ids[0], &victim);
	test_flip_byte(victim.pack_path, victim.start + (victim.end - victim.start) / 2);

	_cleanup_store_ struct cairn_store *reader = store_reopen(NULL);
	_cleanup_unpacker_ struct cairn_unpacker *unpacker = unpacker_new(reader);
	size_t damaged = 0;
	for (size_t i = 0; i < COUNT; i++) {
		find_record(reader, &ids[i], &other);
		bool shared = other.start == victim.start &&
			      strcmp(other.pack_path, victim.pack_path) == 0;
		int64_t n = cairn_unpacker_get(unpacker, &ids[i], buf, sizeof(buf));
		if (shared && n == -EBADMSG) {
			damaged++;
			continue;
		}
		ck_assert_msg(n == 2 * KiB, "chunk %zu: %lld (%s)", i, (long long)n,
			      cairn_unpacker_error(unpacker));
		ck_assert_mem_eq(buf, data + i * 2 * KiB, 2 * KiB);
	}
	ck_assert_uint_ge(damaged, 1);
	ck_assert_uint_lt(damaged, COUNT); /* 40 x 2 KiB do not fit one 32 KiB frame */
	ck_assert_int_ge(verify(reader, NULL), damaged);
}
END_TEST

/* An id function that is the store's own, except for one chunk's bytes. */
static const uint8_t *lying_bytes;

static void lying_id_fn(const struct cairn_store *store, const void *data, size_t size,
			unsigned variant, struct cairn_id *ret)
{
	cairn_store_testing_set_id_fn((struct cairn_store *)store, NULL);
	store_chunk_id(store, data, size, variant, ret);
	cairn_store_testing_set_id_fn((struct cairn_store *)store, lying_id_fn);
	if (lying_bytes && size == KiB && memcmp(data, lying_bytes, KiB) == 0)
		ret->bytes[0] ^= 1;
}

struct neighbours {
	const struct cairn_id *ids;
	const uint8_t *data;
	size_t count;
	bool seen[64];
	size_t calls;
};

static void on_neighbour(void *userdata, const struct cairn_id *id, const void *bytes,
			 uint32_t size)
{
	struct neighbours *n = userdata;
	size_t i = 0;

	while (i < n->count && memcmp(&n->ids[i], id, sizeof(*id)) != 0)
		i++;
	ck_assert_msg(i < n->count, "a neighbour that was never put");
	ck_assert_uint_eq(size, 1 * KiB);
	ck_assert_mem_eq(bytes, n->data + i * KiB, KiB);
	ck_assert(!n->seen[i]);
	n->seen[i] = true;
	n->calls++;
}

/* cairn_unpacker_get_neighbours hands out the other members of a chunk's
 * record, with their bytes checked: the one asked for is not among them,
 * and neither is a member whose bytes no longer match its id. */
START_TEST(test_neighbours)
{
	enum { COUNT = 20 };
	struct cairn_id ids[COUNT];
	uint8_t buf[KiB];

	_cleanup_free_ uint8_t *data = mixed_data(COUNT * KiB, 31);
	_cleanup_store_ struct cairn_store *store = store_create_small();
	put_chunks(store, data, COUNT, KiB, ids);
	struct record_range first, other;
	find_record(store, &ids[0], &first);
	size_t together = 0;
	for (size_t i = 0; i < COUNT; i++) {
		find_record(store, &ids[i], &other);
		together += other.start == first.start;
	}
	ck_assert_uint_gt(together, 2); /* 20 x 1 KiB share frames of 32 KiB */

	{
		_cleanup_unpacker_ struct cairn_unpacker *unpacker = unpacker_new(store);
		struct neighbours n = {.ids = ids, .data = data, .count = COUNT};
		int64_t r = cairn_unpacker_get_neighbours(unpacker, &ids[0], buf, sizeof(buf),
							  on_neighbour, &n);
		ck_assert_int_eq(r, KiB);
		ck_assert_mem_eq(buf, data, KiB);
		ck_assert(!n.seen[0]);
		ck_assert_uint_eq(n.calls, together - 1);
		/* A lone get hands out nothing more. */
		ck_assert_int_eq(cairn_unpacker_get(unpacker, &ids[1], buf, sizeof(buf)), KiB);
	}
	/* Read back with an id function under which one member's bytes no
	 * longer match its id: it is left out, the others not. */
	size_t victim = 1;
	while (victim < COUNT) {
		find_record(store, &ids[victim], &other);
		if (other.start == first.start)
			break;
		victim++;
	}
	ck_assert_uint_lt(victim, COUNT);
	lying_bytes = data + victim * KiB;
	_cleanup_store_ struct cairn_store *reader = store_reopen(lying_id_fn);
	_cleanup_unpacker_ struct cairn_unpacker *unpacker = unpacker_new(reader);
	struct neighbours n = {.ids = ids, .data = data, .count = COUNT};
	ck_assert_int_eq(cairn_unpacker_get_neighbours(unpacker, &ids[0], buf, sizeof(buf),
						       on_neighbour, &n),
			 KiB);
	ck_assert(!n.seen[victim]);
	ck_assert_uint_eq(n.calls, together - 2);
	lying_bytes = NULL;
}
END_TEST

/* Putting a damaged chunk's bytes again stores a sound copy in its place. */
START_TEST(test_damaged_chunk_restored)
{
	struct cairn_id ids[2], again;
	struct record_range range;
	struct cairn_writer_stats stats;

	_cleanup_free_ uint8_t *data = test_alloc(2 * 20 * KiB);
	_cleanup_store_ struct cairn_store *store = store_create_small();
	put_large_chunks(store, data, 2, false, ids);
	find_record(store, &ids[0], &range);
	test_flip_byte(range.pack_path, range.start + (range.end - range.start) / 2);
	{
		_cleanup_writer_ struct cairn_writer *writer = writer_new(store);
		put(writer, data, 20 * KiB, &again);
		ck_assert_mem_eq(again.bytes, ids[0].bytes, CAIRN_ID_SIZE);
		commit(writer);
		cairn_writer_stats(writer, &stats);
		ck_assert_uint_eq(stats.chunks_new, 1);
	}
	_cleanup_store_ struct cairn_store *reader = store_reopen(NULL);
	_cleanup_unpacker_ struct cairn_unpacker *unpacker = unpacker_new(reader);
	assert_chunk(unpacker, &ids[0], data, 20 * KiB);
	assert_chunk(unpacker, &ids[1], data + 20 * KiB, 20 * KiB);
}
END_TEST

START_TEST(test_missing_pack)
{
	struct cairn_id ids[2];
	struct record_range range;
	uint8_t buf[32 * KiB];

	_cleanup_free_ uint8_t *data = test_alloc(2 * 20 * KiB);
	_cleanup_store_ struct cairn_store *store = store_create_small();
	put_large_chunks(store, data, 2, false, ids);
	find_record(store, &ids[0], &range);
	ck_assert_int_eq(unlink(range.pack_path), 0);

	_cleanup_store_ struct cairn_store *reader = store_reopen(NULL);
	_cleanup_unpacker_ struct cairn_unpacker *unpacker = unpacker_new(reader);
	ck_assert_int_eq(cairn_unpacker_get(unpacker, &ids[0], buf, sizeof(buf)), -EBADMSG);
	ck_assert_ptr_nonnull(
		strstr(cairn_unpacker_error(unpacker), strrchr(range.pack_path, '/') + 1));
	ck_assert_int_ge(verify(reader, NULL), 1);
}
END_TEST

START_TEST(test_truncated_pack)
{
	struct cairn_id ids[4];
	struct record_range range;
	uint8_t buf[32 * KiB];

	_cleanup_free_ uint8_t *data = test_alloc(4 * 20 * KiB);
	_cleanup_store_ struct cairn_store *store = store_create_small();
	put_large_chunks(store, data, 4, false, ids);
	find_record(store, &ids[2], &range);
	test_truncate(range.pack_path, range.start + 10);

	_cleanup_store_ struct cairn_store *reader = store_reopen(NULL);
	_cleanup_unpacker_ struct cairn_unpacker *unpacker = unpacker_new(reader);
	ck_assert_int_eq(cairn_unpacker_get(unpacker, &ids[2], buf, sizeof(buf)), -EBADMSG);
	assert_names_place(cairn_unpacker_error(unpacker), &range);
	ck_assert_int_ge(verify(reader, NULL), 1);
}
END_TEST

/* ================================================================== */
/* damaged metadata                                                     */
/* ================================================================== */

enum config_damage {
	CONFIG_TRUNCATED,
	CONFIG_EMPTY,
	CONFIG_LONGER,
	CONFIG_GARBAGE,
	CONFIG_CHECKSUM,
	CONFIG_FUTURE,
	CONFIG_PAST,
	CONFIG_BAD_PARAMS,
	CONFIG_CASES,
};

static void config_rewrite(const char *path, const struct config_disk *disk)
{
	struct config_disk copy = *disk;

	copy.checksum = store_checksum(&copy, offsetof(struct config_disk, checksum));
	test_write_file(path, &copy, sizeof(copy));
}

/* Returns the error open should give. */
static int damage_config(const char *path, enum config_damage damage)
{
	struct config_disk disk;
	uint8_t garbage[200];
	size_t size;

	_cleanup_free_ uint8_t *bytes = test_read_file(path, &size);
	ck_assert_uint_eq(size, sizeof(disk));
	memcpy(&disk, bytes, sizeof(disk));
	test_fill_random(garbage, sizeof(garbage), 25);
	switch (damage) {
	case CONFIG_TRUNCATED:
		test_truncate(path, 64);
		return -EBADMSG;
	case CONFIG_EMPTY:
		test_truncate(path, 0);
		return -EBADMSG;
	case CONFIG_LONGER:
		memcpy(garbage, &disk, sizeof(disk));
		test_write_file(path, garbage, sizeof(disk) + 1);
		return -EBADMSG;
	case CONFIG_GARBAGE:
		test_write_file(path, garbage, sizeof(disk));
		return -EBADMSG;
	case CONFIG_CHECKSUM:
		test_flip_byte(path, offsetof(struct config_disk, hash_key) + 5);
		return -EBADMSG;
	case CONFIG_FUTURE:
		disk.version = CONFIG_VERSION + 1;
		config_rewrite(path, &disk);
		return -EOPNOTSUPP;
	case CONFIG_PAST:
		disk.version = 0;
		config_rewrite(path, &disk);
		return -EBADMSG;
	default:
		disk.chunk_avg = 3000;
		config_rewrite(path, &disk);
		return -EBADMSG;
	}
}

START_TEST(test_damaged_config)
{
	char path[PATH_MAX];

	cairn_store_free(store_create_small());
	int expected = damage_config(store_file(path, sizeof(path), "config"), _i);
	_cleanup_store_ struct cairn_store *store = cairn_store_new();
	int r = cairn_store_open(store, store_dir());
	ck_assert_msg(r == expected, "open: %s, expected %s", strerror(-r), strerror(-expected));
	ck_assert_msg(strstr(cairn_store_error(store), "config") != NULL, "unclear error: '%s'",
		      cairn_store_error(store));
}
END_TEST

enum table_damage {
	TABLE_MISSING,
	TABLE_EMPTY,
	TABLE_TRUNCATED_HEADER,
	TABLE_TRUNCATED_BODY,
	TABLE_LONGER,
	TABLE_GARBAGE,
	TABLE_HEADER_CHECK,
	TABLE_FUTURE,
	TABLE_BAD_FANOUT,
	TABLE_CASES,
};

/* Returns the error open should give. */
static int damage_table(const char *path, enum table_damage damage)
{
	struct table_header header;
	size_t size;

	_cleanup_free_ uint8_t *bytes = test_read_file(path, &size);
	ck_assert_uint_gt(size, sizeof(header) + FANOUT_SIZE * 4);
	memcpy(&header, bytes, sizeof(header));
	switch (damage) {
	case TABLE_MISSING:
		ck_assert_int_eq(unlink(path), 0);
		break;
	case TABLE_EMPTY:
		test_truncate(path, 0);
		break;
	case TABLE_TRUNCATED_HEADER:
		test_truncate(path, sizeof(header) / 2);
		break;
	case TABLE_TRUNCATED_BODY:
		test_truncate(path, size - 1);
		break;
	case TABLE_LONGER:
		test_truncate(path, size + sizeof(struct table_entry));
		break;
	case TABLE_GARBAGE:
		test_fill_random(bytes, size, 26);
		test_write_file(path, bytes, size);
		break;
	case TABLE_HEADER_CHECK:
		test_flip_byte(path, offsetof(struct table_header, entry_count));
		break;
	case TABLE_FUTURE:
		header.version = TABLE_VERSION + 1;
		header.check = store_checksum(&header, offsetof(struct table_header, check));
		memcpy(bytes, &header, sizeof(header));
		test_write_file(path, bytes, size);
		return -EOPNOTSUPP;
	default: {
		/* The first fanout slot claims more entries than there are. */
		uint64_t fanout = sizeof(header) + header.pack_count * sizeof(struct table_pack);
		uint32_t huge = UINT32_MAX;
		memcpy(bytes + fanout, &huge, sizeof(huge));
		test_write_file(path, bytes, size);
		break;
	}
	}
	return -EBADMSG;
}

START_TEST(test_damaged_table)
{
	struct file_result file;
	char path[PATH_MAX];

	_cleanup_free_ uint8_t *data = mixed_data(128 * KiB, 27);
	{
		_cleanup_store_ struct cairn_store *store = store_create_small();
		_cleanup_writer_ struct cairn_writer *writer = writer_new(store);
		write_file(writer, data, 128 * KiB, 4096, &file);
		commit(writer);
	}
	int expected = damage_table(store_file(path, sizeof(path), "chunks"), _i);
	_cleanup_store_ struct cairn_store *store = cairn_store_new();
	int r = cairn_store_open(store, store_dir());
	ck_assert_msg(r == expected, "open: %s, expected %s", strerror(-r), strerror(-expected));
	ck_assert_msg(strstr(cairn_store_error(store), "chunk table") != NULL,
		      "unclear error: '%s'", cairn_store_error(store));
	file_result_release(&file);
}
END_TEST

/* The body checksum is not read at open (that would cost O(entries));
 * verify finds the damage and reads never return wrong bytes. */
START_TEST(test_damaged_table_body)
{
	struct file_result file;
	char path[PATH_MAX];
	static uint8_t buf[32 * KiB];

	_cleanup_free_ uint8_t *data = mixed_data(128 * KiB, 28);
	{
		_cleanup_store_ struct cairn_store *store = store_create_small();
		_cleanup_writer_ struct cairn_writer *writer = writer_new(store);
		write_file(writer, data, 128 * KiB, 4096, &file);
		commit(writer);
	}
	/* The last byte of the last entry: inside its fields, not its id. */
	uint64_t size = test_file_size(store_file(path, sizeof(path), "chunks"));
	test_flip_byte(path,
		       size - sizeof(struct table_entry) + offsetof(struct table_entry, size));
	_cleanup_store_ struct cairn_store *store = store_reopen(NULL);
	struct problems problems;
	ck_assert_int_ge(verify(store, &problems), 1);
	ck_assert_ptr_nonnull(strstr(problems.first, "chunk table"));
	_cleanup_unpacker_ struct cairn_unpacker *unpacker = unpacker_new(store);
	uint64_t pos = 0;
	for (size_t i = 0; i < file.count; i++) {
		int64_t n = cairn_unpacker_get(unpacker, &file.chunks[i].id, buf, sizeof(buf));
		if (n >= 0) {
			ck_assert_int_eq(n, file.chunks[i].size);
			ck_assert_mem_eq(buf, data + pos, (size_t)n);
		}
		pos += file.chunks[i].size;
	}
	file_result_release(&file);
}
END_TEST

/* ================================================================== */
/* packs seal at the size bound                                         */
/* ================================================================== */

static bool pack_within(const char *name, void *ctx)
{
	char path[PATH_MAX], rel[NAME_MAX + 8];
	const struct cairn_store_params *params = ctx;

	if (!is_pack_name(name, NULL))
		return false;
	snprintf(rel, sizeof(rel), "packs/%s", name);
	return test_file_size(store_file(path, sizeof(path), rel)) <= params->pack_max;
}

START_TEST(test_packs_seal)
{
	const size_t size = 5 * MiB;
	struct cairn_store_params params;
	struct cairn_store_stats stats;
	struct file_result file;
	char path[PATH_MAX];

	small_params(&params);
	params.pack_max = 1 * MiB;
	_cleanup_free_ uint8_t *data = test_random_data(size, 29);
	{
		_cleanup_store_ struct cairn_store *store = store_create_with(&params);
		_cleanup_writer_ struct cairn_writer *writer = writer_new(store);
		write_file(writer, data, size, 65536, &file);
		commit(writer);
	}
	_cleanup_store_ struct cairn_store *store = store_reopen(NULL);
	ck_assert_int_eq(cairn_store_stats(store, &stats), 0);
	ck_assert_uint_ge(stats.pack_count, 5);
	ck_assert_uint_eq(count_packs(), stats.pack_count);
	store_file(path, sizeof(path), "packs");
	ck_assert_uint_eq(test_dir_count(path, pack_within, &params), stats.pack_count);
	_cleanup_unpacker_ struct cairn_unpacker *unpacker = unpacker_new(store);
	assert_file(unpacker, &file, data, size);
	assert_verify_clean(store);
	file_result_release(&file);
}
END_TEST

/* ================================================================== */
/* locking                                                              */
/* ================================================================== */

START_TEST(test_lock)
{
	static char sentinel;
	struct cairn_writer *second = (struct cairn_writer *)&sentinel; /* stays on failure */
	struct cairn_id id, other;

	_cleanup_free_ uint8_t *data = test_random_data(10 * KiB, 30);
	_cleanup_store_ struct cairn_store *store = store_create_small();
	{
		_cleanup_writer_ struct cairn_writer *writer = writer_new(store);
		put(writer, data, 10 * KiB, &id);
		commit(writer);
	}
	_cleanup_store_ struct cairn_store *reader = NULL;
	{
		_cleanup_writer_ struct cairn_writer *writer = writer_new(store);
		put(writer, data + 1, 5 * KiB, &other);
		/* Readers never wait for the writer: opening, reading, verifying. */
		reader = store_reopen(NULL);
		ck_assert_int_eq(cairn_writer_open(reader, CAIRN_WRITER_NOWAIT, 1, &second),
				 -EWOULDBLOCK);
		ck_assert_ptr_eq(second, (struct cairn_writer *)&sentinel);
		ck_assert_str_ne(cairn_store_error(reader), "");
		_cleanup_unpacker_ struct cairn_unpacker *unpacker = unpacker_new(reader);
		assert_chunk(unpacker, &id, data, 10 * KiB);
		assert_verify_clean(reader);
		commit(writer);
		/* Still locked after a commit: the writer lives on. */
		ck_assert_int_eq(cairn_writer_open(reader, CAIRN_WRITER_NOWAIT, 1, &second),
				 -EWOULDBLOCK);
	}
	/* Freed: the lock is free again, and the new writer sees the commit. */
	ck_assert_int_eq(cairn_writer_open(reader, CAIRN_WRITER_NOWAIT, 1, &second), 0);
	ck_assert(cairn_store_has_chunk(reader, &other, NULL));
	cairn_writer_free(second);
}
END_TEST

/* A writer removes what dead writers left: temp files and packs no table
 * lists; other files are not its business. */
START_TEST(test_leftovers_removed)
{
	static const char *const junk[] = {"tmp-chunks-0123456789abcdef", "tmp-config-x",
					   "packs/00000005.pack.tmp", "packs/0000abcd.pack"};
	struct file_result file;
	char path[PATH_MAX];

	_cleanup_free_ uint8_t *data = mixed_data(128 * KiB, 31);
	_cleanup_store_ struct cairn_store *store = store_create_small();
	for (size_t i = 0; i < ARRAY_SIZE(junk); i++)
		test_write_file(store_file(path, sizeof(path), junk[i]), "junk", 4);
	test_write_file(store_file(path, sizeof(path), "keep-me"), "mine", 4);
	{
		_cleanup_writer_ struct cairn_writer *writer = writer_new(store);
		for (size_t i = 0; i < ARRAY_SIZE(junk); i++)
			ck_assert_msg(!test_exists(store_file(path, sizeof(path), junk[i])),
				      "%s is still there", junk[i]);
		write_file(writer, data, 128 * KiB, 4096, &file);
		commit(writer);
	}
	ck_assert(test_exists(store_file(path, sizeof(path), "keep-me")));
	ck_assert_uint_ge(count_packs(), 1);
	ck_assert_int_eq(count_temp_files(), 0);
	_cleanup_store_ struct cairn_store *reader = store_reopen(NULL);
	_cleanup_unpacker_ struct cairn_unpacker *unpacker = unpacker_new(reader);
	assert_file(unpacker, &file, data, 128 * KiB);
	assert_verify_clean(reader);
	file_result_release(&file);
}
END_TEST

/* ================================================================== */
/* kill -9                                                              */
/* ================================================================== */

/* The kill test's store: small chunks and packs, so each round of writing
 * is quick and crosses chunk, frame and pack boundaries. */
static void kill_params(struct cairn_store_params *params)
{
	cairn_store_params_default(params);
	params->chunk_min = 1 * KiB;
	params->chunk_avg = 4 * KiB;
	params->chunk_max = 16 * KiB;
	params->zstd_level = 1;
	params->pack_max = 1 * MiB;
}

#define ROUND_FILE_MAX (1280 * KiB)

/* Round r writes one file and puts one small chunk. The file starts with
 * 8 KiB shared with the rounds next to it (dedup across commits); the rest is
 * compressible text, except that every eighth round writes more random bytes
 * than a pack holds, so a pack seals in the middle of the round. */
static size_t round_file(uint32_t round, uint8_t *buf)
{
	size_t size = 24 * KiB + (round % 5) * 8 * KiB;

	test_fill_random(buf, 8 * KiB, 1000 + round / 3);
	if (round % 8 == 5) {
		test_fill_random(buf + 8 * KiB, ROUND_FILE_MAX - 8 * KiB, 4000 + round);
		return ROUND_FILE_MAX;
	}
	test_fill_text(buf + 8 * KiB, size - 8 * KiB, 2000 + round);
	return size;
}

static size_t round_chunk(uint32_t round, uint8_t *buf)
{
	size_t size = 500 + (round * 397) % (4 * KiB);

	test_fill_random(buf, size, 3000 + round);
	return size;
}

/* One round of writing; returns 0 or a nonzero stage for the exit code. */
static int child_round(struct cairn_writer *writer, uint32_t round, uint8_t *buf)
{
	const struct cairn_chunk_ref *chunks;
	struct cairn_id id;
	uint64_t size;
	size_t count, feed = round % 2 ? 4096 : 1000;

	size_t file_size = round_file(round, buf);
	if (cairn_writer_file_begin(writer) < 0)
		return 3;
	for (size_t pos = 0; pos < file_size; pos += feed)
		if (cairn_writer_file_write(writer, buf + pos,
					    file_size - pos < feed ? file_size - pos : feed) < 0)
			return 4;
	if (cairn_writer_file_end(writer, &size, &chunks, &count) < 0)
		return 5;
	size_t chunk_size = round_chunk(round, buf);
	if (cairn_writer_put(writer, buf, chunk_size, &id) < 0)
		return 6;
	return cairn_writer_commit(writer) < 0 ? 7 : 0;
}

/* The child: writes and commits rounds until killed, reporting each round
 * once its commit returned. Never returns; uses no Check calls. */
static _Noreturn void kill_child(const char *path, uint32_t first_round, int report_fd)
{
	struct cairn_store *store = cairn_store_new();
	struct cairn_writer *writer;
	uint8_t *buf = malloc(ROUND_FILE_MAX);

	if (!store || !buf || cairn_store_open(store, path) < 0)
		_exit(1);
	if (cairn_writer_open(store, 0, 2, &writer) < 0)
		_exit(2);
	for (uint32_t round = first_round;; round++) {
		int stage = child_round(writer, round, buf);
		if (stage)
			_exit(stage);
		if (write(report_fd, &round, sizeof(round)) != sizeof(round))
			_exit(8);
	}
}

/* Checks every chunk of a committed round: the file cut as the writer cuts
 * it, and the put chunk. */
static void assert_round(struct cairn_store *store, struct cairn_unpacker *unpacker, uint32_t round,
			 uint8_t *buf)
{
	struct cairn_chunker chunker;
	struct cairn_id id;
	size_t size = round_file(round, buf), start = 0;

	cairn_chunker_init(&chunker, cairn_store_params(store));
	while (start < size) {
		int cut;
		size_t len = 0;
		do
			len += cairn_chunker_scan(&chunker, buf + start + len, size - start - len,
						  &cut);
		while (!cut && start + len < size);
		cairn_store_chunk_id(store, buf + start, len, &id);
		assert_chunk(unpacker, &id, buf + start, len);
		start += len;
	}
	size = round_chunk(round, buf);
	cairn_store_chunk_id(store, buf, size, &id);
	assert_chunk(unpacker, &id, buf, size);
}

/* Every pack in packs/ is one the table lists, and nothing is temporary. */
static void assert_no_leftovers(struct cairn_store *store)
{
	char path[PATH_MAX];
	struct dirent *de;
	uint32_t num;

	ck_assert_int_eq(count_temp_files(), 0);
	DIR *dir = opendir(store_file(path, sizeof(path), "packs"));
	ck_assert_ptr_nonnull(dir);
	while ((de = readdir(dir))) {
		if (de->d_name[0] == '.')
			continue;
		ck_assert_msg(pack_parse_name(de->d_name, &num) == 0, "stray file packs/%s",
			      de->d_name);
		ck_assert_msg(table_find_pack(store_table(store), num) != NULL,
			      "packs/%s is not in the chunk table", de->d_name);
	}
	closedir(dir);
	ck_assert_uint_eq(count_packs(), store_table(store)->pack_count);
}

/* After a kill: the store opens, verifies clean, holds every reported
 * round, and a writer's open cleans up after the dead one. */
static void check_after_kill(uint32_t round_count, uint8_t *buf)
{
	_cleanup_store_ struct cairn_store *store = store_reopen(NULL);
	assert_verify_clean(store);
	_cleanup_unpacker_ struct cairn_unpacker *unpacker = unpacker_new(store);
	for (uint32_t round = 0; round < round_count; round++)
		assert_round(store, unpacker, round, buf);
	cairn_writer_free(writer_new(store));
	assert_no_leftovers(store);
}

struct kill_run {
	uint32_t first_round; /* the child starts here */
	uint32_t wait_rounds; /* reports to wait for before the delay */
	unsigned delay_us;
	uint32_t ret_next; /* first round not reported */
};

/* Runs one child and kills it; reads the rounds it reported. */
static void kill_one(struct kill_run *run)
{
	const char *path = store_dir();
	pid_t parent = getpid();
	int fds[2], status;
	uint32_t round, next = run->first_round;
	bool in_order = true;

	ck_assert_int_eq(pipe2(fds, O_CLOEXEC), 0);
	pid_t pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		/* Never outlive a test that failed before its kill. */
		if (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0 || getppid() != parent)
			_exit(9);
		close(fds[0]);
		kill_child(path, run->first_round, fds[1]);
	}
	close(fds[1]);
	/* Waiting for reports is not timing: it lets the kill land later. No
	 * assertion may fail before the kill. */
	while (next < run->first_round + run->wait_rounds &&
	       read(fds[0], &round, sizeof(round)) == sizeof(round))
		in_order &= round == next++;
	usleep(run->delay_us);
	kill(pid, SIGKILL);
	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	while (read(fds[0], &round, sizeof(round)) == sizeof(round))
		in_order &= round == next++;
	close(fds[0]);
	ck_assert_msg(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL,
		      "the writer failed by itself (exit status %d)",
		      WIFEXITED(status) ? WEXITSTATUS(status) : -1);
	ck_assert_msg(in_order, "the writer reported rounds out of order");
	run->ret_next = next;
}

START_TEST(test_kill)
{
	enum { KILLS = 50 };
	struct cairn_store_params params;
	uint64_t rng = 77;
	uint32_t next = 0;

	kill_params(&params);
	cairn_store_free(store_create_with(&params));
	_cleanup_free_ uint8_t *buf = test_alloc(ROUND_FILE_MAX);
	for (int k = 0; k < KILLS; k++) {
		/* Half the kills land at once (opening, cleaning up, the first
		 * round), half after a round or two, mid-write or mid-commit. */
		struct kill_run run = {
			.first_round = next,
			.wait_rounds = k % 2 ? (uint32_t)(test_rand_next(&rng) % 3) : 0,
			.delay_us = (unsigned)(test_rand_next(&rng) % (k % 2 ? 8000 : 3000)),
		};
		kill_one(&run);
		next = run.ret_next;
		check_after_kill(next, buf);
	}
	ck_assert_uint_gt(next, 0);
}
END_TEST

START_TEST(test_kill_then_write)
{
	struct cairn_store_params params;
	struct file_result file;
	struct kill_run run = {.wait_rounds = 2, .delay_us = 1500};

	kill_params(&params);
	cairn_store_free(store_create_with(&params));
	_cleanup_free_ uint8_t *buf = test_alloc(ROUND_FILE_MAX);
	_cleanup_free_ uint8_t *data = mixed_data(3 * MiB, 32);
	kill_one(&run);
	{
		_cleanup_store_ struct cairn_store *store = store_reopen(NULL);
		_cleanup_writer_ struct cairn_writer *writer = NULL;
		/* Blocking open: the dead writer's lock went with it. */
		ck_assert_int_eq(cairn_writer_open(store, 0, 2, &writer), 0);
		write_file(writer, data, 3 * MiB, 4096, &file);
		commit(writer);
	}
	_cleanup_store_ struct cairn_store *store = store_reopen(NULL);
	assert_verify_clean(store);
	assert_no_leftovers(store);
	_cleanup_unpacker_ struct cairn_unpacker *unpacker = unpacker_new(store);
	assert_file(unpacker, &file, data, 3 * MiB);
	for (uint32_t round = 0; round < run.ret_next; round++)
		assert_round(store, unpacker, round, buf);
	file_result_release(&file);
}
END_TEST

/* ================================================================== */

struct test_case {
	const char *name;
	const TTest *test;
	int loops;
	int timeout;
};

static Suite *store_suite(void)
{
	Suite *suite = suite_create("store");
	const struct test_case cases[] = {
		{"create_layout", test_create_layout, 1, 10},
		{"create_defaults", test_create_defaults, 1, 10},
		{"create_existing", test_create_existing, 1, 10},
		{"open_missing", test_open_missing, 1, 10},
		{"create_bad_params", test_create_bad_params, BAD_PARAM_CASES, 10},
		{"ids", test_ids, 1, 10},
		{"round_trip", test_round_trip, (int)ARRAY_SIZE(feed_sizes), 30},
		{"round_trip_small_files", test_round_trip_small_files, 1, 30},
		{"unpacker_errors", test_unpacker_errors, 1, 10},
		{"writer_misuse", test_writer_misuse, 1, 10},
		{"dedup_session", test_dedup_session, 1, 30},
		{"dedup_commits", test_dedup_commits, 1, 30},
		{"dedup_across_frames", test_dedup_across_frames, 1, 30},
		{"invisible_before_commit", test_invisible_before_commit, 1, 30},
		{"abandon", test_abandon_leaves_store_as_before, 1, 30},
		{"collision", test_collision, COLLIDE_CASES, 10},
		{"collision_exhausted", test_collision_exhausted, 1, 10},
		{"file_id_collision", test_file_id_collision, 1, 10},
		{"damaged_payload", test_damaged_payload, 2, 10},
		{"damaged_record_header", test_damaged_record_header, 2, 10},
		{"damaged_group", test_damaged_group, 1, 10},
		{"neighbours", test_neighbours, 1, 10},
		{"damaged_chunk_restored", test_damaged_chunk_restored, 1, 10},
		{"missing_pack", test_missing_pack, 1, 10},
		{"truncated_pack", test_truncated_pack, 1, 10},
		{"damaged_config", test_damaged_config, CONFIG_CASES, 10},
		{"damaged_table", test_damaged_table, TABLE_CASES, 10},
		{"damaged_table_body", test_damaged_table_body, 1, 10},
		{"packs_seal", test_packs_seal, 1, 30},
		{"lock", test_lock, 1, 10},
		{"leftovers", test_leftovers_removed, 1, 10},
		{"kill", test_kill, 1, 100},
		{"kill_then_write", test_kill_then_write, 1, 30},
	};

	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		TCase *tc = tcase_create(cases[i].name);
		test_add_dir_fixtures(tc);
		tcase_set_timeout(tc, cases[i].timeout);
		tcase_add_loop_test(tc, cases[i].test, 0, cases[i].loops);
		suite_add_tcase(suite, tc);
	}
	return suite;
}

int main(void)
{
	SRunner *runner = srunner_create(store_suite());

	srunner_run_all(runner, CK_ENV);
	int failed = srunner_ntests_failed(runner);
	srunner_free(runner);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
