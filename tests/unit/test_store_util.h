/* test_store_util.h: what the store's Check suites (test_store_*.c) share:
 * making, reopening and writing to a store in the test's temp directory,
 * reading chunks and files back, verify, and a few looks inside
 * (store_internal.h) at packs and records. Header-only like test_util.h
 * (whose per-file temp directory these helpers use): every helper is static
 * inline, so a suite compiles only what it uses.
 */
#ifndef CAIRN_TEST_STORE_UTIL_H
#define CAIRN_TEST_STORE_UTIL_H

#include "store_internal.h"
#include "test_util.h"

#define KiB 1024u
#define MiB (1024u * 1024u)

#define FEED_WHOLE SIZE_MAX

/* Small chunks, so a few hundred KiB make many of them. */
static inline void small_params(struct cairn_store_params *params)
{
	cairn_store_params_default(params);
	params->chunk_min = 2 * KiB;
	params->chunk_avg = 8 * KiB;
	params->chunk_max = 32 * KiB;
}

static inline const char *store_dir(void)
{
	static char path[PATH_MAX];

	return test_path(path, sizeof(path), "store");
}

/* "STORE/name" */
static inline char *store_file(char *buf, size_t size, const char *name)
{
	ck_assert_int_lt(snprintf(buf, size, "%s/%s", store_dir(), name), (int)size);
	return buf;
}

static inline struct cairn_store *store_create_with(const struct cairn_store_params *params)
{
	struct cairn_store *store = cairn_store_new();

	ck_assert_ptr_nonnull(store);
	int r = cairn_store_create(store, store_dir(), params);
	ck_assert_msg(r == 0, "create: %s (%s)", strerror(-r), cairn_store_error(store));
	return store;
}

static inline struct cairn_store *store_create_small(void)
{
	struct cairn_store_params params;

	small_params(&params);
	return store_create_with(&params);
}

/* A second, independent handle on the store. */
static inline struct cairn_store *store_reopen(cairn_id_fn id_fn)
{
	struct cairn_store *store = cairn_store_new();

	ck_assert_ptr_nonnull(store);
	int r = cairn_store_open(store, store_dir());
	ck_assert_msg(r == 0, "open: %s (%s)", strerror(-r), cairn_store_error(store));
	if (id_fn)
		cairn_store_testing_set_id_fn(store, id_fn);
	return store;
}

static inline struct cairn_writer *writer_new(struct cairn_store *store)
{
	struct cairn_writer *writer = NULL;

	int r = cairn_writer_open(store, CAIRN_WRITER_NOWAIT, 2, &writer);
	ck_assert_msg(r == 0, "writer: %s (%s)", strerror(-r), cairn_store_error(store));
	return writer;
}

static inline struct cairn_unpacker *unpacker_new(struct cairn_store *store)
{
	struct cairn_unpacker *unpacker = NULL;

	ck_assert_int_eq(cairn_unpacker_new(store, &unpacker), 0);
	return unpacker;
}

static inline void commit(struct cairn_writer *writer)
{
	int r = cairn_writer_commit(writer);

	ck_assert_msg(r == 0, "commit: %s (%s)", strerror(-r), cairn_writer_error(writer));
}

static inline void put(struct cairn_writer *writer, const void *data, size_t size,
		       struct cairn_id *ret)
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

static inline void file_result_release(struct file_result *file)
{
	free(file->chunks);
	*file = (struct file_result){0};
}

static inline void write_file(struct cairn_writer *writer, const uint8_t *data, size_t size,
			      size_t feed, struct file_result *ret)
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
static inline uint8_t *mixed_data(size_t size, uint64_t seed)
{
	uint8_t *data = test_alloc(size);

	test_fill_random(data, size / 2, seed);
	test_fill_text(data + size / 2, size - size / 2, seed + 1);
	return data;
}

/* ---- reading back ---- */

static inline void assert_chunk(struct cairn_unpacker *unpacker, const struct cairn_id *id,
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
static inline void assert_file(struct cairn_unpacker *unpacker, const struct file_result *file,
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

static inline void collect_problem(void *userdata, const char *problem)
{
	struct problems *problems = userdata;

	if (problems->count++ == 0)
		snprintf(problems->first, sizeof(problems->first), "%s", problem);
}

static inline int64_t verify(struct cairn_store *store, struct problems *ret)
{
	struct problems problems = {0};
	int64_t n = cairn_store_verify(store, collect_problem, &problems);

	ck_assert_msg(n >= 0, "verify: %s (%s)", strerror((int)-n), cairn_store_error(store));
	ck_assert_int_eq(n, problems.count);
	if (ret)
		*ret = problems;
	return n;
}

static inline void assert_verify_clean(struct cairn_store *store)
{
	struct problems problems;

	ck_assert_msg(verify(store, &problems) == 0, "verify: %lld problems, first: %s",
		      (long long)problems.count, problems.first);
}

/* ---- looking inside ---- */

static inline bool is_pack_name(const char *name, void *ctx)
{
	uint32_t num;

	(void)ctx;
	return pack_parse_name(name, &num) == 0;
}

static inline size_t count_packs(void)
{
	char path[PATH_MAX];

	return test_dir_count(store_file(path, sizeof(path), "packs"), is_pack_name, NULL);
}

static inline size_t count_temp_files(void)
{
	char path[PATH_MAX];

	return test_dir_count(store_dir(), test_is_temp_name, NULL) +
	       test_dir_count(store_file(path, sizeof(path), "packs"), test_is_temp_name, NULL);
}

/* Puts count chunks of size bytes, cut from data in turn, and commits. */
static inline void put_chunks(struct cairn_store *store, const uint8_t *data, size_t count,
			      size_t size, struct cairn_id *ids)
{
	_cleanup_(cairn_writer_freep) struct cairn_writer *writer = writer_new(store);
	for (size_t i = 0; i < count; i++)
		put(writer, data + i * size, size, &ids[i]);
	commit(writer);
}

/* Where a chunk's record lies: [start, end) of its pack file. */
struct record_range {
	char pack_path[PATH_MAX];
	uint64_t start, end;
};

static inline void find_record(struct cairn_store *store, const struct cairn_id *id,
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

#endif
