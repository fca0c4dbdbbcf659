/* test_store_open.c: a store's metadata through store.h: creating a store
 * (its layout, defaults, refusing bad parameters or an existing store),
 * opening one, and opening one whose config or chunk table is damaged in
 * each way docs/FORMAT.md's checks catch.
 */
#include "test_store_util.h"

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
	_cleanup_(cairn_store_freep) struct cairn_store *store = store_create_with(&params);
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
	_cleanup_(cairn_store_freep) struct cairn_store *again = store_reopen(NULL);
	ck_assert_mem_eq(cairn_store_params(again), &params, sizeof(params));
	assert_verify_clean(again);
}
END_TEST

START_TEST(test_create_defaults)
{
	struct cairn_store_params defaults;
	_cleanup_(cairn_store_freep) struct cairn_store *store = store_create_with(NULL);

	cairn_store_params_default(&defaults);
	ck_assert_int_eq(cairn_store_params_check(&defaults, NULL, 0), 0);
	ck_assert_mem_eq(cairn_store_params(store), &defaults, sizeof(defaults));
}
END_TEST

START_TEST(test_create_existing)
{
	char path[PATH_MAX];

	cairn_store_free(store_create_small());
	_cleanup_(cairn_store_freep) struct cairn_store *again = cairn_store_new();
	ck_assert_int_eq(cairn_store_create(again, store_dir(), NULL), -EEXIST);
	ck_assert_str_ne(cairn_store_error(again), "");

	/* A directory with anything in it is not made a store either. */
	char other[PATH_MAX];
	test_path(other, sizeof(other), "busy");
	ck_assert_int_eq(mkdir(other, 0700), 0);
	ck_assert_int_lt(snprintf(path, sizeof(path), "%s/file", other), (int)sizeof(path));
	test_write_file(path, "x", 1);
	_cleanup_(cairn_store_freep) struct cairn_store *busy = cairn_store_new();
	ck_assert_int_eq(cairn_store_create(busy, other, NULL), -EEXIST);
	ck_assert_str_ne(cairn_store_error(busy), "");
	ck_assert_uint_eq(test_dir_count(other, NULL, NULL), 1);

	/* An existing empty directory is fine. */
	ck_assert_int_eq(unlink(path), 0);
	_cleanup_(cairn_store_freep) struct cairn_store *empty = cairn_store_new();
	ck_assert_int_eq(cairn_store_create(empty, other, NULL), 0);
}
END_TEST

START_TEST(test_open_missing)
{
	char path[PATH_MAX];
	_cleanup_(cairn_store_freep) struct cairn_store *store = cairn_store_new();

	ck_assert_int_eq(cairn_store_open(store, test_path(path, sizeof(path), "nowhere")),
			 -ENOENT);
	ck_assert_str_ne(cairn_store_error(store), "");

	/* An empty directory is not a store either. */
	_cleanup_(cairn_store_freep) struct cairn_store *empty = cairn_store_new();
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
	_cleanup_(cairn_store_freep) struct cairn_store *store = cairn_store_new();
	ck_assert_int_eq(cairn_store_create(store, store_dir(), &params), -EINVAL);
	ck_assert_str_ne(cairn_store_error(store), "");
	ck_assert(!test_exists(store_dir()));
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
		disk.version = CONFIG_VERSION_IDS + 1;
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
	_cleanup_(cairn_store_freep) struct cairn_store *store = cairn_store_new();
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
		_cleanup_(cairn_store_freep) struct cairn_store *store = store_create_small();
		_cleanup_(cairn_writer_freep) struct cairn_writer *writer = writer_new(store);
		write_file(writer, data, 128 * KiB, 4096, &file);
		commit(writer);
	}
	int expected = damage_table(store_file(path, sizeof(path), "chunks"), _i);
	_cleanup_(cairn_store_freep) struct cairn_store *store = cairn_store_new();
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
		_cleanup_(cairn_store_freep) struct cairn_store *store = store_create_small();
		_cleanup_(cairn_writer_freep) struct cairn_writer *writer = writer_new(store);
		write_file(writer, data, 128 * KiB, 4096, &file);
		commit(writer);
	}
	/* The last byte of the last entry: inside its fields, not its id. */
	uint64_t size = test_file_size(store_file(path, sizeof(path), "chunks"));
	test_flip_byte(path,
		       size - sizeof(struct table_entry) + offsetof(struct table_entry, size));
	_cleanup_(cairn_store_freep) struct cairn_store *store = store_reopen(NULL);
	struct problems problems;
	ck_assert_int_ge(verify(store, &problems), 1);
	ck_assert_ptr_nonnull(strstr(problems.first, "chunk table"));
	_cleanup_(cairn_unpacker_freep) struct cairn_unpacker *unpacker = unpacker_new(store);
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

static Suite *store_open_suite(void)
{
	Suite *suite = suite_create("store_open");
	const struct test_case cases[] = {
		{"create_layout", test_create_layout, 1, 10},
		{"create_defaults", test_create_defaults, 1, 10},
		{"create_existing", test_create_existing, 1, 10},
		{"open_missing", test_open_missing, 1, 10},
		{"create_bad_params", test_create_bad_params, BAD_PARAM_CASES, 10},
		{"damaged_config", test_damaged_config, CONFIG_CASES, 10},
		{"damaged_table", test_damaged_table, TABLE_CASES, 10},
		{"damaged_table_body", test_damaged_table_body, 1, 10},
	};

	return test_suite_add(suite, cases, ARRAY_SIZE(cases));
}

int main(void)
{
	return test_run(store_open_suite());
}
