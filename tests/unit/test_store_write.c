/* test_store_write.c: the writer through store.h: files and single chunks
 * round trip, however they are fed; misuse is refused without harming the
 * session; identical chunks are stored once, within a session, across
 * commits and across grouped frames.
 */
#include "test_store_util.h"

static const size_t feed_sizes[] = {1, 7, 4096, FEED_WHOLE};

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
		_cleanup_(cairn_store_freep) struct cairn_store *store = store_create_small();
		_cleanup_(cairn_writer_freep) struct cairn_writer *writer = writer_new(store);
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
	_cleanup_(cairn_store_freep) struct cairn_store *store = store_reopen(NULL);
	_cleanup_(cairn_unpacker_freep) struct cairn_unpacker *unpacker = unpacker_new(store);
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
		_cleanup_(cairn_store_freep) struct cairn_store *store = store_create_small();
		_cleanup_(cairn_writer_freep) struct cairn_writer *writer = writer_new(store);
		for (size_t i = 0; i < FILES; i++)
			write_file(writer, data + i * 3000, 100 + i * 9, 4096, &files[i]);
		commit(writer);
	}
	_cleanup_(cairn_store_freep) struct cairn_store *store = store_reopen(NULL);
	_cleanup_(cairn_unpacker_freep) struct cairn_unpacker *unpacker = unpacker_new(store);
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

START_TEST(test_writer_misuse)
{
	struct file_result file;
	struct cairn_id id;
	const struct cairn_chunk_ref *chunks;
	uint64_t size;
	size_t count;
	uint8_t byte = 1;

	_cleanup_(cairn_store_freep) struct cairn_store *store = store_create_small();
	_cleanup_(cairn_writer_freep) struct cairn_writer *writer = writer_new(store);
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
	_cleanup_(cairn_unpacker_freep) struct cairn_unpacker *unpacker = unpacker_new(store);
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
	_cleanup_(cairn_store_freep) struct cairn_store *store = store_create_small();
	_cleanup_(cairn_writer_freep) struct cairn_writer *writer = writer_new(store);
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
	_cleanup_(cairn_store_freep) struct cairn_store *store = store_create_small();
	{
		_cleanup_(cairn_writer_freep) struct cairn_writer *writer = writer_new(store);
		write_file(writer, data, size, 4096, &a);
		commit(writer);
		ck_assert_int_eq(cairn_store_stats(store, &before), 0);
		write_file(writer, data, size, 4096, &b);
		commit(writer);
		cairn_writer_stats(writer, &wstats);
		ck_assert_uint_eq(wstats.chunks_new, before.chunk_count);
	}
	/* Another handle and writer, after the fact. */
	_cleanup_(cairn_store_freep) struct cairn_store *other = store_reopen(NULL);
	{
		_cleanup_(cairn_writer_freep) struct cairn_writer *writer = writer_new(other);
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

static Suite *store_write_suite(void)
{
	Suite *suite = suite_create("store_write");
	const struct test_case cases[] = {
		{"round_trip", test_round_trip, (int)ARRAY_SIZE(feed_sizes), 30},
		{"round_trip_small_files", test_round_trip_small_files, 1, 30},
		{"writer_misuse", test_writer_misuse, 1, 10},
		{"dedup_session", test_dedup_session, 1, 30},
		{"dedup_commits", test_dedup_commits, 1, 30},
	};

	return test_suite_add(suite, cases, ARRAY_SIZE(cases));
}

int main(void)
{
	return test_run(store_write_suite());
}
