/* test_store_commit.c: what a writer's session leaves: nothing visible
 * before commit, the store as before after an abandoned one, one writer at a
 * time (the lock), leftovers of dead writers removed, and kill -9 at random
 * moments losing nothing committed.
 */
#include "test_store_util.h"

#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>

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
	_cleanup_(cairn_store_freep) struct cairn_store *store = store_create_small();
	put_chunks(store, data, COUNT, 2 * KiB, ids);
	struct record_range first, last;
	find_record(store, &ids[0], &first);
	find_record(store, &ids[COUNT - 1], &last);
	ck_assert_uint_ne(first.start, last.start); /* 96 x 2 KiB span several frames */
	{
		_cleanup_(cairn_writer_freep) struct cairn_writer *writer = writer_new(store);
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
	_cleanup_(cairn_unpacker_freep) struct cairn_unpacker *unpacker = unpacker_new(store);
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
	_cleanup_(cairn_store_freep) struct cairn_store *store = store_create_small();
	_cleanup_(cairn_writer_freep) struct cairn_writer *writer = writer_new(store);
	write_file(writer, data, size, 4096, &file);

	_cleanup_(cairn_store_freep) struct cairn_store *early = store_reopen(NULL);
	_cleanup_(cairn_unpacker_freep) struct cairn_unpacker *unpacker = unpacker_new(early);
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
	_cleanup_(cairn_store_freep) struct cairn_store *late = store_reopen(NULL);
	_cleanup_(cairn_unpacker_freep) struct cairn_unpacker *late_unpacker = unpacker_new(late);
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
	_cleanup_(cairn_store_freep) struct cairn_store *store = store_create_with(&params);
	{
		_cleanup_(cairn_writer_freep) struct cairn_writer *writer = writer_new(store);
		write_file(writer, data, 256 * KiB, 4096, &kept);
		commit(writer);
	}
	_cleanup_free_ char *top_before = dir_listing(store_dir());
	_cleanup_free_ char *packs_before = dir_listing(store_file(path, sizeof(path), "packs"));
	_cleanup_free_ uint8_t *table_before =
		test_read_file(store_file(path, sizeof(path), "chunks"), &size_before);
	{
		/* Enough to seal packs of the size bound before the end. */
		_cleanup_(cairn_writer_freep) struct cairn_writer *writer = writer_new(store);
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

	_cleanup_(cairn_store_freep) struct cairn_store *again = store_reopen(NULL);
	assert_verify_clean(again);
	for (size_t i = 0; i < dropped.count; i++)
		ck_assert(!cairn_store_has_chunk(again, &dropped.chunks[i].id, NULL));
	_cleanup_(cairn_unpacker_freep) struct cairn_unpacker *unpacker = unpacker_new(again);
	assert_file(unpacker, &kept, data, 256 * KiB);
	file_result_release(&kept);
	file_result_release(&dropped);
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
	_cleanup_(cairn_store_freep) struct cairn_store *store = store_create_small();
	{
		_cleanup_(cairn_writer_freep) struct cairn_writer *writer = writer_new(store);
		put(writer, data, 10 * KiB, &id);
		commit(writer);
	}
	_cleanup_(cairn_store_freep) struct cairn_store *reader = NULL;
	{
		_cleanup_(cairn_writer_freep) struct cairn_writer *writer = writer_new(store);
		put(writer, data + 1, 5 * KiB, &other);
		/* Readers never wait for the writer: opening, reading, verifying. */
		reader = store_reopen(NULL);
		ck_assert_int_eq(cairn_writer_open(reader, CAIRN_WRITER_NOWAIT, 1, &second),
				 -EWOULDBLOCK);
		ck_assert_ptr_eq(second, (struct cairn_writer *)&sentinel);
		ck_assert_str_ne(cairn_store_error(reader), "");
		_cleanup_(cairn_unpacker_freep) struct cairn_unpacker *unpacker =
			unpacker_new(reader);
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

static void count_leftover(void *userdata, const char *path, uint64_t size)
{
	uint64_t *total = userdata;

	ck_assert_msg(strncmp(path, "tmp-", 4) == 0 || strncmp(path, "packs/", 6) == 0 ||
			      strncmp(path, "above/tmp-", 10) == 0,
		      "%s listed as a leftover", path);
	*total += size;
}

/* A writer removes what dead writers left: temp files and packs no table
 * lists; other files are not its business. It counts them (gc reports
 * them); verify lists them first, but never while a writer is at work. */
START_TEST(test_leftovers_removed)
{
	static const char *const junk[] = {"tmp-chunks-0123456789abcdef", "tmp-config-x",
					   "packs/00000005.pack.tmp", "packs/0000abcd.pack"};
	static const char *const above[] = {"above", NULL};
	struct file_result file;
	struct cairn_writer_stats stats;
	char path[PATH_MAX];
	uint64_t listed = 0;

	_cleanup_free_ uint8_t *data = mixed_data(128 * KiB, 31);
	_cleanup_(cairn_store_freep) struct cairn_store *store = store_create_small();
	for (size_t i = 0; i < ARRAY_SIZE(junk); i++)
		test_write_file(store_file(path, sizeof(path), junk[i]), "junk", 4);
	test_write_file(store_file(path, sizeof(path), "keep-me"), "mine", 4);
	ck_assert_int_eq(mkdir(store_file(path, sizeof(path), "above"), 0700), 0);
	test_write_file(store_file(path, sizeof(path), "above/tmp-1"), "12345", 5);
	test_write_file(store_file(path, sizeof(path), "above/kept.tmp"), "12345", 5);
	ck_assert_int_eq(cairn_store_leftovers(store, NULL, count_leftover, &listed), 4);
	ck_assert_uint_eq(listed, 16);
	ck_assert_int_eq(cairn_store_leftovers(store, above, count_leftover, &listed), 5);
	{
		_cleanup_(cairn_writer_freep) struct cairn_writer *writer = writer_new(store);
		for (size_t i = 0; i < ARRAY_SIZE(junk); i++)
			ck_assert_msg(!test_exists(store_file(path, sizeof(path), junk[i])),
				      "%s is still there", junk[i]);
		cairn_writer_stats(writer, &stats);
		ck_assert_uint_eq(stats.leftovers.files, ARRAY_SIZE(junk));
		ck_assert_uint_eq(stats.leftovers.bytes, 4 * ARRAY_SIZE(junk));
		/* A writer at work: its files are not leftovers. */
		ck_assert_int_eq(cairn_store_leftovers(store, NULL, count_leftover, &listed),
				 -EBUSY);
		write_file(writer, data, 128 * KiB, 4096, &file);
		commit(writer);
	}
	ck_assert_int_eq(cairn_store_leftovers(store, NULL, count_leftover, &listed), 0);
	ck_assert(test_exists(store_file(path, sizeof(path), "keep-me")));
	ck_assert_uint_ge(count_packs(), 1);
	ck_assert_int_eq(count_temp_files(), 0);
	_cleanup_(cairn_store_freep) struct cairn_store *reader = store_reopen(NULL);
	_cleanup_(cairn_unpacker_freep) struct cairn_unpacker *unpacker = unpacker_new(reader);
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
	_cleanup_(cairn_store_freep) struct cairn_store *store = store_reopen(NULL);
	assert_verify_clean(store);
	_cleanup_(cairn_unpacker_freep) struct cairn_unpacker *unpacker = unpacker_new(store);
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
		_cleanup_(cairn_store_freep) struct cairn_store *store = store_reopen(NULL);
		_cleanup_(cairn_writer_freep) struct cairn_writer *writer = NULL;
		/* Blocking open: the dead writer's lock went with it. */
		ck_assert_int_eq(cairn_writer_open(store, 0, 2, &writer), 0);
		write_file(writer, data, 3 * MiB, 4096, &file);
		commit(writer);
	}
	_cleanup_(cairn_store_freep) struct cairn_store *store = store_reopen(NULL);
	assert_verify_clean(store);
	assert_no_leftovers(store);
	_cleanup_(cairn_unpacker_freep) struct cairn_unpacker *unpacker = unpacker_new(store);
	assert_file(unpacker, &file, data, 3 * MiB);
	for (uint32_t round = 0; round < run.ret_next; round++)
		assert_round(store, unpacker, round, buf);
	file_result_release(&file);
}
END_TEST

static Suite *store_commit_suite(void)
{
	Suite *suite = suite_create("store_commit");
	const struct test_case cases[] = {
		{"dedup_across_frames", test_dedup_across_frames, 1, 30},
		{"invisible_before_commit", test_invisible_before_commit, 1, 30},
		{"abandon", test_abandon_leaves_store_as_before, 1, 30},
		{"lock", test_lock, 1, 10},
		{"leftovers", test_leftovers_removed, 1, 10},
		{"kill", test_kill, 1, 100},
		{"kill_then_write", test_kill_then_write, 1, 30},
	};

	return test_suite_add(suite, cases, ARRAY_SIZE(cases));
}

int main(void)
{
	return test_run(store_commit_suite());
}
