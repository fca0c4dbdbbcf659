/* test_chunker.c: the content-defined chunker on its own: cut points depend
 * on the bytes alone (never on how they were fed), chunks respect min and
 * max, the mean lands near the average, and an insertion near the start
 * moves only the first cut points. These are what make dedup work.
 */
#include "store_internal.h"
#include "test_util.h"

#define MiB (1024u * 1024u)

/* Feed sizes: STYLE.md's 1, 7, 4096 and whole, plus pseudo-random pieces. */
#define FEED_WHOLE   SIZE_MAX
#define FEED_VARYING (SIZE_MAX - 1)
static const size_t feed_sizes[] = {1, 7, 4096, FEED_WHOLE, FEED_VARYING};

/* The end offsets of a stream's chunks; the last one is the stream's end. */
struct cuts {
	size_t *ends;
	size_t count, cap;
};

static void cuts_release(struct cuts *cuts)
{
	free(cuts->ends);
	*cuts = (struct cuts){0};
}

static void cuts_add(struct cuts *cuts, size_t end)
{
	if (cuts->count == cuts->cap) {
		cuts->cap = cuts->cap ? cuts->cap * 2 : 256;
		cuts->ends = realloc(cuts->ends, cuts->cap * sizeof(*cuts->ends));
		ck_assert_ptr_nonnull(cuts->ends);
	}
	cuts->ends[cuts->count++] = end;
}

static void default_params(struct cairn_store_params *params)
{
	cairn_store_params_default(params);
}

static void small_params(struct cairn_store_params *params)
{
	cairn_store_params_default(params);
	params->chunk_min = 2u << 10;
	params->chunk_avg = 8u << 10;
	params->chunk_max = 32u << 10;
}

static size_t next_piece(size_t feed, size_t left, uint64_t *state)
{
	size_t piece = feed;

	if (feed == FEED_VARYING)
		piece = 1 + (size_t)(test_rand_next(state) % 100000);
	return piece < left ? piece : left;
}

/* Chunks data as the writer does, feeding it in pieces of feed bytes. */
static void chunk_stream(const struct cairn_store_params *params, const uint8_t *data, size_t size,
			 size_t feed, struct cuts *ret)
{
	struct cairn_chunker chunker;
	uint64_t state = 42;
	size_t pos = 0, chunk_len = 0;

	ck_assert_int_eq(cairn_store_params_check(params, NULL, 0), 0);
	cairn_chunker_init(&chunker, params);
	cairn_chunker_reset(&chunker);
	while (pos < size) {
		size_t piece = next_piece(feed, size - pos, &state);
		while (piece > 0) {
			int cut;
			size_t n = cairn_chunker_scan(&chunker, data + pos, piece, &cut);
			/* Not ck_assert: each of those costs a syscall (a mark point). */
			if (n > piece || (n == 0 && !cut))
				ck_abort_msg("scan returned %zu of %zu at %zu", n, piece, pos);
			pos += n;
			piece -= n;
			chunk_len += n;
			if (cut) {
				cuts_add(ret, pos);
				chunk_len = 0;
			}
		}
	}
	if (chunk_len > 0)
		cuts_add(ret, pos);
}

static void assert_cuts_equal(const struct cuts *a, const struct cuts *b, const char *what)
{
	ck_assert_msg(a->count == b->count, "%s: %zu chunks, expected %zu", what, a->count,
		      b->count);
	for (size_t i = 0; i < a->count; i++) {
		if (a->ends[i] != b->ends[i])
			ck_abort_msg("%s: cut %zu at %zu, expected %zu", what, i, a->ends[i],
				     b->ends[i]);
	}
}

/* ---- determinism over feed sizes ---- */

START_TEST(test_feed_sizes_same_cuts)
{
	const size_t size = 8 * MiB;
	struct cairn_store_params params;
	struct cuts whole = {0}, fed = {0};
	char what[64];

	default_params(&params);
	_cleanup_free_ uint8_t *data = test_random_data(size, 1);
	chunk_stream(&params, data, size, FEED_WHOLE, &whole);
	chunk_stream(&params, data, size, feed_sizes[_i], &fed);
	ck_assert_uint_gt(whole.count, 32); /* enough cuts to mean something */
	snprintf(what, sizeof(what), "feed size %zu", feed_sizes[_i]);
	assert_cuts_equal(&fed, &whole, what);
	cuts_release(&whole);
	cuts_release(&fed);
}
END_TEST

/* A reset forgets a partial chunk: the next stream chunks as if fresh. */
START_TEST(test_reset_forgets_partial_chunk)
{
	const size_t size = 2 * MiB;
	struct cairn_store_params params;
	struct cairn_chunker chunker;
	struct cuts fresh = {0}, after = {0};
	int cut;

	default_params(&params);
	_cleanup_free_ uint8_t *data = test_random_data(size, 2);
	chunk_stream(&params, data, size, FEED_WHOLE, &fresh);

	cairn_chunker_init(&chunker, &params);
	cairn_chunker_scan(&chunker, data + 1000, 20000, &cut);
	ck_assert_int_eq(cut, 0); /* 20000 bytes: still below the first cut */
	cairn_chunker_reset(&chunker);
	size_t pos = 0;
	while (pos < size) {
		pos += cairn_chunker_scan(&chunker, data + pos, size - pos, &cut);
		if (cut || pos == size)
			cuts_add(&after, pos);
	}
	assert_cuts_equal(&after, &fresh, "after reset");
	cuts_release(&fresh);
	cuts_release(&after);
}
END_TEST

/* ---- min and max ---- */

static void assert_bounds(const struct cairn_store_params *params, const struct cuts *cuts,
			  size_t size)
{
	size_t start = 0;

	ck_assert_uint_gt(cuts->count, 0);
	ck_assert_uint_eq(cuts->ends[cuts->count - 1], size);
	for (size_t i = 0; i < cuts->count; i++) {
		size_t len = cuts->ends[i] - start;
		bool last = i + 1 == cuts->count;
		ck_assert_msg(len <= params->chunk_max, "chunk %zu: %zu bytes > max", i, len);
		ck_assert_msg(last || len > params->chunk_min, "chunk %zu: %zu bytes <= min", i,
			      len);
		ck_assert_msg(len > 0, "chunk %zu is empty", i);
		start = cuts->ends[i];
	}
}

static void (*const param_sets[])(struct cairn_store_params *) = {default_params, small_params};

START_TEST(test_min_max_random)
{
	const size_t size = 16 * MiB + 12345;
	struct cairn_store_params params;
	struct cuts cuts = {0};

	param_sets[_i](&params);
	_cleanup_free_ uint8_t *data = test_random_data(size, 3);
	chunk_stream(&params, data, size, 4096, &cuts);
	assert_bounds(&params, &cuts, size);
	cuts_release(&cuts);
}
END_TEST

/* With no content cut possible, every chunk but the last is exactly max. */
START_TEST(test_zeros_cut_at_max)
{
	const size_t size = 4 * MiB + 777;
	struct cairn_store_params params;
	struct cuts cuts = {0};

	param_sets[_i](&params);
	_cleanup_free_ uint8_t *data = calloc(1, size);
	ck_assert_ptr_nonnull(data);
	chunk_stream(&params, data, size, 4096, &cuts);
	assert_bounds(&params, &cuts, size);
	for (size_t i = 0; i + 1 < cuts.count; i++)
		ck_assert_uint_eq(cuts.ends[i], (i + 1) * params.chunk_max);
	ck_assert_uint_eq(cuts.count, (size + params.chunk_max - 1) / params.chunk_max);
	cuts_release(&cuts);
}
END_TEST

/* A stream no longer than min is one chunk (small files stay whole). */
START_TEST(test_small_stream_one_chunk)
{
	struct cairn_store_params params;

	param_sets[_i](&params);
	const size_t sizes[] = {1, 100, params.chunk_min / 2, params.chunk_min};
	_cleanup_free_ uint8_t *data = test_random_data(params.chunk_min, 4);
	for (size_t k = 0; k < ARRAY_SIZE(sizes); k++) {
		size_t size = sizes[k];
		struct cuts cuts = {0};
		chunk_stream(&params, data, size, 7, &cuts);
		ck_assert_uint_eq(cuts.count, 1);
		ck_assert_uint_eq(cuts.ends[0], size);
		cuts_release(&cuts);
	}
}
END_TEST

/* ---- distribution ---- */

START_TEST(test_mean_near_avg)
{
	const size_t size = 64 * MiB;
	struct cairn_store_params params;
	struct cuts cuts = {0};

	param_sets[_i](&params);
	_cleanup_free_ uint8_t *data = test_random_data(size, 5 + (uint64_t)_i);
	chunk_stream(&params, data, size, FEED_WHOLE, &cuts);
	/* The last chunk is cut by the stream's end, not by content. */
	double mean = (double)cuts.ends[cuts.count - 2] / (double)(cuts.count - 1);
	double avg = params.chunk_avg;
	ck_assert_msg(mean >= 0.75 * avg && mean <= 1.25 * avg,
		      "mean chunk %.0f bytes, average %.0f (min %u, max %u)", mean, avg,
		      params.chunk_min, params.chunk_max);
	cuts_release(&cuts);
}
END_TEST

/* ---- boundary shift ---- */

static bool has_cut_from_end(const struct cuts *cuts, size_t size, size_t from_end)
{
	size_t lo = 0, hi = cuts->count;

	/* ends ascend, so size - end descends: binary search on it. */
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		size_t value = size - cuts->ends[mid];
		if (value == from_end)
			return true;
		if (value > from_end)
			lo = mid + 1;
		else
			hi = mid;
	}
	return false;
}

struct edit {
	size_t offset;
	size_t inserted;
};

static const struct edit edits[] = {{0, 1}, {100, 3}, {5000, 16}, {20000, 7}, {70000, 1}};

START_TEST(test_insert_shifts_few_cuts)
{
	const size_t size = 8 * MiB;
	const struct edit *edit = &edits[_i];
	struct cairn_store_params params;
	struct cuts before = {0}, after = {0};

	default_params(&params);
	_cleanup_free_ uint8_t *data = test_random_data(size, 6);
	_cleanup_free_ uint8_t *edited = test_alloc(size + edit->inserted);
	memcpy(edited, data, edit->offset);
	test_fill_random(edited + edit->offset, edit->inserted, 7);
	memcpy(edited + edit->offset + edit->inserted, data + edit->offset, size - edit->offset);
	chunk_stream(&params, data, size, FEED_WHOLE, &before);
	chunk_stream(&params, edited, size + edit->inserted, FEED_WHOLE, &after);

	/* Cuts before the edit stay; of those after it, only the chunk holding
	 * the edit and the one after may move. */
	size_t lost = 0, first_moved = SIZE_MAX;
	for (size_t i = 0; i < before.count; i++) {
		bool kept = before.ends[i] <= edit->offset
				    ? after.ends[i] == before.ends[i]
				    : has_cut_from_end(&after, size + edit->inserted,
						       size - before.ends[i]);
		if (!kept) {
			lost++;
			if (first_moved == SIZE_MAX)
				first_moved = i;
		}
	}
	ck_assert_uint_gt(before.count, 64);
	ck_assert_msg(lost <= 2, "%zu of %zu cut points moved", lost, before.count);
	ck_assert_msg(lost == 0 || before.ends[first_moved] > edit->offset,
		      "cut %zu before the edit moved", first_moved);
	ck_assert_uint_le(after.count, before.count + 2);
	cuts_release(&before);
	cuts_release(&after);
}
END_TEST

static Suite *chunker_suite(void)
{
	Suite *suite = suite_create("chunker");
	struct {
		const char *name;
		const TTest *test;
		int loops;
	} cases[] = {
		{"feed_sizes", test_feed_sizes_same_cuts, (int)ARRAY_SIZE(feed_sizes)},
		{"reset", test_reset_forgets_partial_chunk, 1},
		{"min_max", test_min_max_random, (int)ARRAY_SIZE(param_sets)},
		{"zeros", test_zeros_cut_at_max, (int)ARRAY_SIZE(param_sets)},
		{"small_stream", test_small_stream_one_chunk, (int)ARRAY_SIZE(param_sets)},
		{"distribution", test_mean_near_avg, (int)ARRAY_SIZE(param_sets)},
		{"boundary_shift", test_insert_shifts_few_cuts, (int)ARRAY_SIZE(edits)},
	};

	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		TCase *tc = tcase_create(cases[i].name);
		test_add_dir_fixtures(tc);
		tcase_set_timeout(tc, 60);
		tcase_add_loop_test(tc, cases[i].test, 0, cases[i].loops);
		suite_add_tcase(suite, tc);
	}
	return suite;
}

int main(void)
{
	SRunner *runner = srunner_create(chunker_suite());

	srunner_run_all(runner, CK_ENV);
	int failed = srunner_ntests_failed(runner);
	srunner_free(runner);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
