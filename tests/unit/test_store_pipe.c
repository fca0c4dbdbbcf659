/* test_store_pipe.c: files through the writer's pipeline (writer_pipe.c).
 * The cut points are those of one sequential pass of the chunker over each
 * file, whatever the data (random, text, zeros that never resynchronise),
 * the feed sizes, the files around it and a batch handed on early; results
 * handed back later come in order and equal the waiting calls' results;
 * no chunk id is computed on the thread that writes the files; and a commit
 * gives the idle batches' and groups' pages back to the kernel.
 */
#include "test_store_util.h"
#include "writer_internal.h"

#include <pthread.h>
#include <stdatomic.h>
#include <sys/mman.h>
#include <unistd.h>

/* The chunk sizes one sequential pass of the chunker gives. */
static size_t expected_cuts(const struct cairn_store *store, const uint8_t *data, size_t size,
			    uint32_t *sizes, size_t cap)
{
	struct cairn_chunker chunker;
	size_t count = 0, pos = 0, start = 0;

	cairn_chunker_init(&chunker, cairn_store_params(store));
	while (pos < size) {
		int cut;
		pos += cairn_chunker_scan(&chunker, data + pos, size - pos, &cut);
		if (cut || pos == size) {
			ck_assert_uint_lt(count, cap);
			sizes[count++] = (uint32_t)(pos - start);
			start = pos;
		}
	}
	return count;
}

enum { DATA_RANDOM, DATA_TEXT, DATA_ZEROS, DATA_MIXED, DATA_KINDS };

static uint8_t *make_data(int kind, size_t size, uint64_t seed)
{
	uint8_t *data = test_alloc(size);

	switch (kind) {
	case DATA_RANDOM:
		test_fill_random(data, size, seed);
		break;
	case DATA_TEXT:
		test_fill_text(data, size, seed);
		break;
	case DATA_ZEROS:
		memset(data, 0, size);
		break;
	default:
		test_fill_random(data, size, seed);
		memset(data + size / 3, 0, size / 3); /* a run that never resynchronises */
		break;
	}
	return data;
}

struct collected {
	uint64_t next_cookie;
	size_t files;
	struct file_result results[8];
};

static int collect_fn(void *userdata, uint64_t cookie, uint64_t size,
		      const struct cairn_chunk_ref *chunks, size_t count)
{
	struct collected *c = userdata;

	ck_assert_uint_eq(cookie, c->next_cookie); /* in order */
	c->next_cookie++;
	ck_assert_uint_lt(c->files, ARRAY_SIZE(c->results));
	struct file_result *r = &c->results[c->files++];
	r->size = size;
	r->count = count;
	r->chunks = test_alloc((count ? count : 1) * sizeof(*chunks));
	memcpy(r->chunks, chunks, count * sizeof(*chunks));
	return 0;
}

/* Files of every kind, larger than a batch (1 MiB) and tiny, sent without
 * waiting (one batch handed on early, mid-file), then the same files
 * waiting for each: same chunks, cut as one pass cuts them. */
START_TEST(test_pipe_cuts)
{
	static const size_t sizes[] = {9 * MiB + 123, 0, 5000, 11 * MiB, 70000};
	const size_t feeds[] = {FEED_WHOLE, 4096, 1000 * 1000};
	const size_t feed = feeds[_i % ARRAY_SIZE(feeds)];
	const int kind = _i % DATA_KINDS;
	_cleanup_(cairn_store_freep) struct cairn_store *store = store_create_small();
	_cleanup_(cairn_writer_freep) struct cairn_writer *writer = writer_new(store);
	struct collected got = {0};
	uint8_t *data[ARRAY_SIZE(sizes)];

	cairn_writer_set_file_fn(writer, collect_fn, &got);
	for (size_t f = 0; f < ARRAY_SIZE(sizes); f++) {
		data[f] = make_data(f == 0 ? kind : DATA_MIXED, sizes[f], 40 + f);
		ck_assert_int_eq(cairn_writer_file_begin(writer), 0);
		for (size_t pos = 0; pos < sizes[f];) {
			size_t n = sizes[f] - pos < feed ? sizes[f] - pos : feed;
			ck_assert_int_eq(cairn_writer_file_write(writer, data[f] + pos, n), 0);
			pos += n;
			if (f == 3 && pos >= 6 * MiB && pos - n < 6 * MiB)
				cairn_writer_files_kick(writer); /* a stalled input */
		}
		ck_assert_int_eq(cairn_writer_file_end_async(writer, f), 0);
	}
	ck_assert_int_eq(cairn_writer_files_flush(writer), 0);
	ck_assert_uint_eq(got.files, ARRAY_SIZE(sizes));

	uint32_t *want = test_alloc(8192 * sizeof(*want));
	for (size_t f = 0; f < ARRAY_SIZE(sizes); f++) {
		struct file_result sync = {0};
		write_file(writer, data[f], sizes[f], feed, &sync);
		const struct file_result *async = &got.results[f];
		size_t count = sizes[f] ? expected_cuts(store, data[f], sizes[f], want, 8192) : 0;
		ck_assert_uint_eq(async->size, sizes[f]);
		ck_assert_uint_eq(async->count, count);
		ck_assert_uint_eq(sync.count, count);
		for (size_t i = 0; i < count; i++) {
			ck_assert_uint_eq(async->chunks[i].size, want[i]);
			ck_assert_mem_eq(async->chunks[i].id.bytes, sync.chunks[i].id.bytes,
					 CAIRN_ID_SIZE);
		}
		file_result_release(&sync);
		file_result_release(&got.results[f]);
		free(data[f]);
	}
	free(want);
	commit(writer);
	assert_verify_clean(store);
}
END_TEST

/* ---- where the per-chunk work runs ---- */

static pthread_t writing_thread;
static atomic_size_t ids_on_writer, ids_elsewhere;

static void thread_id_fn(const struct cairn_store *store, const void *data, size_t size,
			 unsigned variant, struct cairn_id *ret)
{
	struct store_checksum_stream sum;
	uint64_t words[2];

	(void)store;
	for (int i = 0; i < 2; i++) {
		uint8_t prefix[2] = {(uint8_t)variant, (uint8_t)i};
		store_checksum_stream_init(&sum);
		store_checksum_stream_update(&sum, prefix, sizeof(prefix));
		store_checksum_stream_update(&sum, data, size);
		words[i] = store_checksum_stream_final(&sum);
	}
	memcpy(ret->bytes, words, sizeof(words));
	if (pthread_equal(pthread_self(), writing_thread))
		atomic_fetch_add(&ids_on_writer, 1);
	else
		atomic_fetch_add(&ids_elsewhere, 1);
}

/* The thread that writes a file only copies its bytes: every chunk id is
 * computed elsewhere, even when it waits for the file's chunks. */
START_TEST(test_pipe_off_writing_thread)
{
	const size_t size = 10 * MiB;
	_cleanup_free_ uint8_t *data = mixed_data(size, 77);
	_cleanup_(cairn_store_freep) struct cairn_store *store = store_create_small();
	cairn_store_testing_set_id_fn(store, thread_id_fn);
	_cleanup_(cairn_writer_freep) struct cairn_writer *writer = writer_new(store);
	struct file_result file = {0};

	writing_thread = pthread_self();
	atomic_store(&ids_on_writer, 0);
	atomic_store(&ids_elsewhere, 0);
	write_file(writer, data, size, 64 * KiB, &file);
	ck_assert_uint_gt(file.count, 100);
	ck_assert_uint_ge(atomic_load(&ids_elsewhere), file.count);
	ck_assert_uint_eq(atomic_load(&ids_on_writer), 0);
	file_result_release(&file);
	commit(writer);
}
END_TEST

/* Resident pages among the whole pages inside buf (mincore). */
static size_t resident_pages(const void *buf, size_t size)
{
	uintptr_t page = (uintptr_t)sysconf(_SC_PAGESIZE);
	uintptr_t start = ((uintptr_t)buf + page - 1) & ~(page - 1);
	uintptr_t end = ((uintptr_t)buf + size) & ~(page - 1);
	size_t pages = (end - start) / page, count = 0;
	_cleanup_free_ unsigned char *vec = test_alloc(pages ? pages : 1);

	ck_assert_int_eq(mincore((void *)start, end - start, vec), 0);
	for (size_t i = 0; i < pages; i++)
		count += vec[i] & 1;
	return count;
}

/* After a commit every batch and group is idle, and their pages are given
 * back before the commit builds its tables (its peak memory). */
START_TEST(test_commit_drops_idle_pages)
{
	const size_t size = 12 * MiB;
	_cleanup_free_ uint8_t *data = mixed_data(size, 78);
	_cleanup_(cairn_store_freep) struct cairn_store *store = store_create_small();
	_cleanup_(cairn_writer_freep) struct cairn_writer *writer = writer_new(store);
	struct file_result file = {0};

	write_file(writer, data, size, 64 * KiB, &file);
	file_result_release(&file);
	commit(writer);
	ck_assert_uint_gt(writer->group_count, 0);
	for (unsigned i = 0; i < writer->batch_total; i++)
		ck_assert_uint_eq(resident_pages(writer->batch_all[i].data, writer->batch_size), 0);
	for (size_t i = 0; i < writer->free_count; i++)
		ck_assert_uint_eq(
			resident_pages(writer->free_groups[i]->data, store->params.chunk_max), 0);
}
END_TEST

/* At the end of an archive's files (cairn_writer_files_flush) every batch
 * is idle and its pages are given back: the snapshot is written next,
 * before the commit, and was the add's peak memory. */
START_TEST(test_flush_drops_idle_pages)
{
	const size_t size = 12 * MiB;
	_cleanup_free_ uint8_t *data = mixed_data(size, 79);
	_cleanup_(cairn_store_freep) struct cairn_store *store = store_create_small();
	_cleanup_(cairn_writer_freep) struct cairn_writer *writer = writer_new(store);
	struct file_result file = {0};

	write_file(writer, data, size, 64 * KiB, &file);
	file_result_release(&file);
	ck_assert_int_eq(cairn_writer_files_flush(writer), 0);
	for (unsigned i = 0; i < writer->batch_total; i++)
		ck_assert_uint_eq(resident_pages(writer->batch_all[i].data, writer->batch_size), 0);
	commit(writer);
}
END_TEST

static Suite *store_pipe_suite(void)
{
	Suite *suite = suite_create("store_pipe");
	const struct test_case cases[] = {
		{"pipe_cuts", test_pipe_cuts, DATA_KINDS * 3, 60},
		{"pipe_off_writing_thread", test_pipe_off_writing_thread, 1, 30},
		{"commit_drops_idle_pages", test_commit_drops_idle_pages, 1, 30},
		{"flush_drops_idle_pages", test_flush_drops_idle_pages, 1, 30},
	};

	return test_suite_add(suite, cases, ARRAY_SIZE(cases));
}

int main(void)
{
	return test_run(store_pipe_suite());
}
