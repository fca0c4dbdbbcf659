/* test_store_packs.c: packs and the chunk reader: reader errors, damaged
 * or missing or truncated packs (found by reads and by verify, and healed by
 * writing the chunk again), the neighbours a grouped frame hands out, and
 * packs sealed at the size bound. Looks inside (store_internal.h) to find a
 * chunk's record in its pack.
 */
#include "test_store_util.h"

/* ================================================================== */
/* the reader                                                         */
/* ================================================================== */

START_TEST(test_unpacker_errors)
{
	struct cairn_id id, missing = {{0}};
	uint8_t small[10];

	_cleanup_free_ uint8_t *data = test_random_data(5000, 13);
	_cleanup_(cairn_store_freep) struct cairn_store *store = store_create_small();
	{
		_cleanup_(cairn_writer_freep) struct cairn_writer *writer = writer_new(store);
		put(writer, data, 5000, &id);
		commit(writer);
	}
	_cleanup_(cairn_unpacker_freep) struct cairn_unpacker *unpacker = unpacker_new(store);
	ck_assert_int_eq(cairn_unpacker_get(unpacker, &id, small, sizeof(small)), -ENOBUFS);
	ck_assert_int_eq(cairn_unpacker_get(unpacker, &missing, small, sizeof(small)), -ENOENT);
	ck_assert_str_ne(cairn_unpacker_error(unpacker), "");
	assert_chunk(unpacker, &id, data, 5000);
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
	_cleanup_(cairn_writer_freep) struct cairn_writer *writer = writer_new(store);

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
	_cleanup_(cairn_store_freep) struct cairn_store *store = store_create_small();
	put_large_chunks(store, data, COUNT, text, ids);
	find_record(store, &ids[VICTIM], &range);
	ck_assert_uint_gt(range.end - range.start, 64);
	test_flip_byte(range.pack_path,
		       in_header ? range.start : range.start + (range.end - range.start) / 2);

	_cleanup_(cairn_store_freep) struct cairn_store *reader = store_reopen(NULL);
	_cleanup_(cairn_unpacker_freep) struct cairn_unpacker *unpacker = unpacker_new(reader);
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
	_cleanup_(cairn_store_freep) struct cairn_store *store = store_create_small();
	put_chunks(store, data, COUNT, 2 * KiB, ids);
	find_record(store, &ids[0], &victim);
	test_flip_byte(victim.pack_path, victim.start + (victim.end - victim.start) / 2);

	_cleanup_(cairn_store_freep) struct cairn_store *reader = store_reopen(NULL);
	_cleanup_(cairn_unpacker_freep) struct cairn_unpacker *unpacker = unpacker_new(reader);
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
	_cleanup_(cairn_store_freep) struct cairn_store *store = store_create_small();
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
		_cleanup_(cairn_unpacker_freep) struct cairn_unpacker *unpacker =
			unpacker_new(store);
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
	_cleanup_(cairn_store_freep) struct cairn_store *reader = store_reopen(lying_id_fn);
	_cleanup_(cairn_unpacker_freep) struct cairn_unpacker *unpacker = unpacker_new(reader);
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
	_cleanup_(cairn_store_freep) struct cairn_store *store = store_create_small();
	put_large_chunks(store, data, 2, false, ids);
	find_record(store, &ids[0], &range);
	test_flip_byte(range.pack_path, range.start + (range.end - range.start) / 2);
	{
		_cleanup_(cairn_writer_freep) struct cairn_writer *writer = writer_new(store);
		put(writer, data, 20 * KiB, &again);
		ck_assert_mem_eq(again.bytes, ids[0].bytes, CAIRN_ID_SIZE);
		commit(writer);
		cairn_writer_stats(writer, &stats);
		ck_assert_uint_eq(stats.chunks_new, 1);
	}
	_cleanup_(cairn_store_freep) struct cairn_store *reader = store_reopen(NULL);
	_cleanup_(cairn_unpacker_freep) struct cairn_unpacker *unpacker = unpacker_new(reader);
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
	_cleanup_(cairn_store_freep) struct cairn_store *store = store_create_small();
	put_large_chunks(store, data, 2, false, ids);
	find_record(store, &ids[0], &range);
	ck_assert_int_eq(unlink(range.pack_path), 0);

	_cleanup_(cairn_store_freep) struct cairn_store *reader = store_reopen(NULL);
	_cleanup_(cairn_unpacker_freep) struct cairn_unpacker *unpacker = unpacker_new(reader);
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
	_cleanup_(cairn_store_freep) struct cairn_store *store = store_create_small();
	put_large_chunks(store, data, 4, false, ids);
	find_record(store, &ids[2], &range);
	test_truncate(range.pack_path, range.start + 10);

	_cleanup_(cairn_store_freep) struct cairn_store *reader = store_reopen(NULL);
	_cleanup_(cairn_unpacker_freep) struct cairn_unpacker *unpacker = unpacker_new(reader);
	ck_assert_int_eq(cairn_unpacker_get(unpacker, &ids[2], buf, sizeof(buf)), -EBADMSG);
	assert_names_place(cairn_unpacker_error(unpacker), &range);
	ck_assert_int_ge(verify(reader, NULL), 1);
}
END_TEST

/* A chunk table entry whose size is over chunk_max, with the table's
 * checksums made good again so only the entry is wrong: verify reports it
 * as one line naming chunk, pack and offset, not whatever was on the stack. */
START_TEST(test_entry_over_chunk_max)
{
	struct cairn_id ids[2];
	struct record_range range;
	struct problems problems;
	char path[PATH_MAX], hex[CAIRN_ID_HEX + 1];
	size_t size;

	_cleanup_free_ uint8_t *data = test_alloc(2 * 20 * KiB);
	{
		_cleanup_(cairn_store_freep) struct cairn_store *store = store_create_small();
		put_large_chunks(store, data, 2, false, ids);
		find_record(store, &ids[1], &range);
	}
	store_file(path, sizeof(path), TABLE_NAME);
	_cleanup_free_ uint8_t *file = test_read_file(path, &size);
	struct table_header *header = (struct table_header *)file;
	size_t entries = sizeof(*header) + header->pack_count * sizeof(struct table_pack) +
			 FANOUT_SIZE * sizeof(uint32_t);
	struct table_entry *entry = (struct table_entry *)(file + entries);
	if (memcmp(entry->chunk_id, ids[1].bytes, CAIRN_ID_SIZE) != 0)
		entry++;
	ck_assert_mem_eq(entry->chunk_id, ids[1].bytes, CAIRN_ID_SIZE);
	_cleanup_(cairn_store_freep) struct cairn_store *probe = store_reopen(NULL);
	entry->size = probe->params.chunk_max + 1;
	header->body_checksum = store_checksum(file + sizeof(*header), size - sizeof(*header));
	header->check = store_checksum(header, offsetof(struct table_header, check));
	test_write_file(path, file, size);

	_cleanup_(cairn_store_freep) struct cairn_store *reader = store_reopen(NULL);
	ck_assert_int_eq(verify(reader, &problems), 1);
	assert_names_place(problems.first, &range);
	cairn_id_to_hex(&ids[1], hex);
	ck_assert_msg(strstr(problems.first, hex), "'%s' does not name the chunk", problems.first);
	ck_assert_msg(strstr(problems.first, "over chunk_max"), "'%s' says not what is wrong",
		      problems.first);
}
END_TEST

/* The footer's record count lies outside the pack checksum: verify walks
 * the records and reports a count that disagrees. */
START_TEST(test_footer_record_count)
{
	struct cairn_id ids[3];
	struct record_range range;
	struct problems problems;
	struct pack_footer footer;

	_cleanup_free_ uint8_t *data = test_alloc(3 * 20 * KiB);
	{
		_cleanup_(cairn_store_freep) struct cairn_store *store = store_create_small();
		put_large_chunks(store, data, 3, false, ids);
		find_record(store, &ids[0], &range);
	}
	uint64_t at = test_file_size(range.pack_path) - sizeof(footer);
	size_t size;
	_cleanup_free_ uint8_t *file = test_read_file(range.pack_path, &size);
	memcpy(&footer, file + at, sizeof(footer));
	ck_assert_uint_eq(footer.record_count, 3);
	footer.record_count = 4;
	memcpy(file + at, &footer, sizeof(footer));
	test_write_file(range.pack_path, file, size);

	_cleanup_(cairn_store_freep) struct cairn_store *reader = store_reopen(NULL);
	ck_assert_int_eq(verify(reader, &problems), 1);
	ck_assert_msg(strstr(problems.first, strrchr(range.pack_path, '/') + 1) &&
			      strstr(problems.first, "footer counts 4 records, the pack holds 3"),
		      "verify said '%s'", problems.first);
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
		_cleanup_(cairn_store_freep) struct cairn_store *store = store_create_with(&params);
		_cleanup_(cairn_writer_freep) struct cairn_writer *writer = writer_new(store);
		write_file(writer, data, size, 65536, &file);
		commit(writer);
	}
	_cleanup_(cairn_store_freep) struct cairn_store *store = store_reopen(NULL);
	ck_assert_int_eq(cairn_store_stats(store, &stats), 0);
	ck_assert_uint_ge(stats.pack_count, 5);
	ck_assert_uint_eq(count_packs(), stats.pack_count);
	store_file(path, sizeof(path), "packs");
	ck_assert_uint_eq(test_dir_count(path, pack_within, &params), stats.pack_count);
	_cleanup_(cairn_unpacker_freep) struct cairn_unpacker *unpacker = unpacker_new(store);
	assert_file(unpacker, &file, data, size);
	assert_verify_clean(store);
	file_result_release(&file);
}
END_TEST

static Suite *store_packs_suite(void)
{
	Suite *suite = suite_create("store_packs");
	const struct test_case cases[] = {
		{"unpacker_errors", test_unpacker_errors, 1, 10},
		{"damaged_payload", test_damaged_payload, 2, 10},
		{"damaged_record_header", test_damaged_record_header, 2, 10},
		{"damaged_group", test_damaged_group, 1, 10},
		{"neighbours", test_neighbours, 1, 10},
		{"damaged_chunk_restored", test_damaged_chunk_restored, 1, 10},
		{"missing_pack", test_missing_pack, 1, 10},
		{"truncated_pack", test_truncated_pack, 1, 10},
		{"entry_over_chunk_max", test_entry_over_chunk_max, 1, 10},
		{"footer_record_count", test_footer_record_count, 1, 10},
		{"packs_seal", test_packs_seal, 1, 30},
	};

	return test_suite_add(suite, cases, ARRAY_SIZE(cases));
}

int main(void)
{
	return test_run(store_packs_suite());
}
