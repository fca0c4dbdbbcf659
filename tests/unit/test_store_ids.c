/* test_store_ids.c: chunk and file ids: hex round trips, and what happens
 * when distinct bytes collide on an id (forced through the id function test
 * seam of store_internal.h): the next id variant keeps them apart, the file
 * ids of their chunk lists differ, and running out of variants is an error.
 */
#include "test_store_util.h"

/* ================================================================== */
/* ids                                                                */
/* ================================================================== */

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
	_cleanup_(cairn_store_freep) struct cairn_store *store = store_create_small();
	cairn_store_testing_set_id_fn(store, prefix_id_fn);
	{
		_cleanup_(cairn_writer_freep) struct cairn_writer *writer = writer_new(store);
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
	_cleanup_(cairn_store_freep) struct cairn_store *reader = store_reopen(prefix_id_fn);
	_cleanup_(cairn_unpacker_freep) struct cairn_unpacker *unpacker = unpacker_new(reader);
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
	_cleanup_(cairn_store_freep) struct cairn_store *store = store_create_small();
	cairn_store_testing_set_id_fn(store, stuck_id_fn);
	_cleanup_(cairn_writer_freep) struct cairn_writer *writer = writer_new(store);
	put(writer, a, 3000, &id_a);
	memset(&id_b, 0xee, sizeof(id_b));
	/* Never a's id for b's bytes: an error instead. */
	ck_assert_int_eq(cairn_writer_put(writer, b, 3000, &id_b), -EBADMSG);
	ck_assert_str_ne(cairn_writer_error(writer), "");
	commit(writer);
	_cleanup_(cairn_unpacker_freep) struct cairn_unpacker *unpacker = unpacker_new(store);
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
	_cleanup_(cairn_store_freep) struct cairn_store *store = store_create_small();
	cairn_store_testing_set_id_fn(store, prefix_id_fn);
	{
		_cleanup_(cairn_writer_freep) struct cairn_writer *writer = writer_new(store);
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

static Suite *store_ids_suite(void)
{
	Suite *suite = suite_create("store_ids");
	const struct test_case cases[] = {
		{"ids", test_ids, 1, 10},
		{"collision", test_collision, COLLIDE_CASES, 10},
		{"collision_exhausted", test_collision_exhausted, 1, 10},
		{"file_id_collision", test_file_id_collision, 1, 10},
	};

	return test_suite_add(suite, cases, ARRAY_SIZE(cases));
}

int main(void)
{
	return test_run(store_ids_suite());
}
