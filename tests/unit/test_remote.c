/* test_remote.c: the text objects of a remote store (store/remote.h):
 * s3:// urls, the pointer, the manifest and the lease round-trip, and the
 * strict parsers refuse every malformed form (each malformation made with a
 * correct end checksum, so the line's own check is what refuses it; every
 * truncation and every flipped bit); the mirror's ensure of pack ranges
 * against a fake fetch; the mirror's bound.
 */
#include "test_store_util.h"

#include "remote.h"

#include <inttypes.h>

START_TEST(test_url)
{
	struct remote_url u;
	char why[256], key[600];

	ck_assert_int_eq(remote_url_parse("s3://bucket", &u, why, sizeof(why)), 0);
	ck_assert_str_eq(u.bucket, "bucket");
	ck_assert_str_eq(u.prefix, "");
	ck_assert_str_eq(remote_key(&u, "cairn-head", key, sizeof(key)), "cairn-head");
	ck_assert_int_eq(remote_url_parse("s3://my.bucket-1/a/B_c/d.e", &u, why, sizeof(why)), 0);
	ck_assert_str_eq(u.bucket, "my.bucket-1");
	ck_assert_str_eq(u.prefix, "a/B_c/d.e");
	ck_assert_str_eq(remote_key(&u, "cairn-head", key, sizeof(key)), "a/B_c/d.e/cairn-head");
	static const char *const bad[] = {
		"bucket",           "s3://",           "s3://ab",         "s3://Bucket",
		"s3://-bucket",     "s3://bucket-",    "s3://a..b",       "s3://b_ucket",
		"s3://bucket/",     "s3://bucket//p",  "s3://bucket/p/",  "s3://bucket/./p",
		"s3://bucket/p/..", "s3://bucket/p q", "s3://bucket/p:q", "s3://a.-b",
	};
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++)
		ck_assert_msg(remote_url_parse(bad[i], &u, why, sizeof(why)) == -EINVAL, "%s",
			      bad[i]);
}
END_TEST

START_TEST(test_head)
{
	struct remote_head head = {.generation = 7}, back;
	char buf[256], why[128];

	remote_meta_key(head.manifest.key, 7, 0x1234, "manifest");
	head.manifest.size = 999;
	head.manifest.checksum = 0xabcdef;
	int n = remote_head_encode(&head, buf, sizeof(buf));
	ck_assert_int_gt(n, 0);
	ck_assert_str_eq(buf, "cairn-head 1 0000000000000007 "
			      "meta/0000000000000007-0000000000001234.manifest 999 "
			      "0000000000abcdef\n");
	ck_assert_int_eq(remote_head_parse(buf, (size_t)n, &back, why, sizeof(why)), 0);
	ck_assert_int_eq(memcmp(&back, &head, sizeof(head)), 0);
	static const char *const bad[] = {
		"",
		"cairn-head 1 0000000000000007 meta/x.manifest 999 0000000000abcdef",
		"cairn-head 2 0000000000000007 meta/x.manifest 999 0000000000abcdef\n",
		"cairn-head 1 7 meta/x.manifest 999 0000000000abcdef\n",
		"cairn-head 1 0000000000000007 packs/x.manifest 999 0000000000abcdef\n",
		"cairn-head 1 0000000000000007 meta/../x 999 0000000000abcdef\n",
		"cairn-head 1 0000000000000007 meta/x.manifest 0999 0000000000abcdef\n",
		"cairn-head 1 0000000000000007 meta/x.manifest 999999999999 0000000000abcdef\n",
		"cairn-head 1 0000000000000007 meta/x.manifest 999 0000000000ABCDEF\n",
		"cairn-head 1 0000000000000007  meta/x.manifest 999 0000000000abcdef\n",
		"cairn-head 1 0000000000000007 meta/x.manifest 999 0000000000abcdef \n",
		"cairn-head 1 0000000000000007 meta/x.manifest 999 0000000000abcdef\r\n",
		"cairn-head 1 0000000000000007 meta/x.manifest 999 0000000000abcdef\n\n",
	};
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++)
		ck_assert_msg(remote_head_parse(bad[i], strlen(bad[i]), &back, why, sizeof(why)) ==
				      -EBADMSG,
			      "%s", bad[i]);
}
END_TEST

START_TEST(test_lease)
{
	struct remote_lease lease = {.session = 0xfeed, .pid = 4242, .start = 100, .expires = 700};
	struct remote_lease back;
	char buf[700], why[128];

	strcpy(lease.host, "host one");
	int n = remote_lease_encode(&lease, buf, sizeof(buf));
	ck_assert_int_gt(n, 0);
	ck_assert_int_eq(remote_lease_parse(buf, (size_t)n, &back, why, sizeof(why)), 0);
	ck_assert_int_eq(memcmp(&back, &lease, sizeof(lease)), 0);
	buf[n - 2] = 'x';
	ck_assert_int_eq(remote_lease_parse(buf, (size_t)n, &back, why, sizeof(why)), -EBADMSG);
}
END_TEST

/* A manifest with two packs, two snapshots and a condemned key. */
static char *sample_manifest(size_t *ret_size)
{
	struct remote_pack packs[2] = {{.pack_num = 1, .size = 1000},
				       {.pack_num = 0x1a, .size = 5}};
	struct remote_snapshot snaps[2] = {{.name = "a-b"}, {.name = "z.tar"}};
	struct remote_condemned cond = {.time = 1700000000};
	struct remote_manifest m = {
		.generation = 3,
		.writer_session = 0x55,
		.writer_time = 1700000001,
		.chunks = {.size = 64, .checksum = 1},
		.has_sketches = true,
		.sketches = {.size = 32, .checksum = 2},
		.packs = packs,
		.pack_count = 2,
		.snapshots = snaps,
		.snapshot_count = 2,
		.condemned = &cond,
		.condemned_count = 1,
	};
	char *text;

	strcpy(m.writer_host, "builder");
	memset(m.config, 0xc5, sizeof(m.config));
	remote_meta_key(m.chunks.key, 3, 0x55, "chunks");
	remote_meta_key(m.sketches.key, 3, 0x55, "sketches");
	remote_pack_key(packs[0].key, 1, 0x55);
	remote_pack_key(packs[1].key, 0x1a, 0x55);
	remote_snapshot_key(snaps[0].object.key, 0x55, 0);
	remote_snapshot_key(snaps[1].object.key, 0x55, 1);
	snaps[1].object.size = 12345;
	remote_pack_key(cond.key, 9, 0x44);
	ck_assert_int_eq(remote_manifest_encode(&m, &text, ret_size), 0);
	return text;
}

START_TEST(test_manifest_roundtrip)
{
	struct remote_manifest m;
	size_t size;
	char why[128];
	_cleanup_free_ char *text = sample_manifest(&size);

	ck_assert_int_eq(remote_manifest_parse(text, size, &m, why, sizeof(why)), 0);
	ck_assert_uint_eq(m.generation, 3);
	ck_assert_str_eq(m.writer_host, "builder");
	ck_assert_uint_eq(m.config[127], 0xc5);
	ck_assert(m.has_sketches);
	ck_assert_uint_eq(m.pack_count, 2);
	ck_assert_uint_eq(m.packs[1].pack_num, 0x1a);
	ck_assert_str_eq(m.packs[1].key, "packs/0000001a-0000000000000055.pack");
	ck_assert_uint_eq(m.snapshot_count, 2);
	ck_assert_str_eq(m.snapshots[0].name, "a-b");
	ck_assert_ptr_nonnull(remote_manifest_snapshot(&m, "z.tar"));
	ck_assert_ptr_null(remote_manifest_snapshot(&m, "y"));
	ck_assert_uint_eq(remote_manifest_snapshot(&m, "z.tar")->object.size, 12345);
	ck_assert_ptr_nonnull(remote_manifest_pack(&m, 1));
	ck_assert_ptr_null(remote_manifest_pack(&m, 2));
	ck_assert_uint_eq(m.condemned_count, 1);
	ck_assert_int_eq(m.condemned[0].time, 1700000000);
	/* encoding what was parsed gives the same bytes */
	char *again;
	size_t again_size;
	ck_assert_int_eq(remote_manifest_encode(&m, &again, &again_size), 0);
	ck_assert_uint_eq(again_size, size);
	ck_assert_int_eq(memcmp(again, text, size), 0);
	free(again);
	remote_manifest_release(&m);
}
END_TEST

/* text with the first `from` replaced by `to` and the end line made right
 * again, so that only the malformed line can be what is refused. */
static char *mutate(const char *text, const char *from, const char *to, size_t *ret_size)
{
	const char *at = strstr(text, from);
	ck_assert_msg(at != NULL, "%s", from);
	size_t head = (size_t)(at - text);
	size_t len = strlen(text) - strlen(from) + strlen(to) + 64;
	char *out = test_alloc(len);
	snprintf(out, len, "%.*s%s%s", (int)head, text, to, at + strlen(from));
	char *end = strstr(out, "end ");
	while (end && end != out && end[-1] != '\n')
		end = strstr(end + 1, "end ");
	if (end && strlen(end) == 4 + 16 + 1) {
		uint64_t sum = store_checksum(out, (size_t)(end - out));
		snprintf(end, 4 + 16 + 2, "end %016" PRIx64 "\n", sum);
	}
	*ret_size = strlen(out);
	return out;
}

START_TEST(test_manifest_malformed)
{
	struct remote_manifest m;
	size_t size, bad_size;
	char why[128];
	_cleanup_free_ char *text = sample_manifest(&size);
	static const char *const cases[][2] = {
		{"cairn-manifest 1", "cairn-manifest 2"},
		{"generation ", "generation 0"},
		{"generation 0000000000000003", "generation 3"},
		{"writer 0000000000000055 ", "writer 55 "},
		{"writer 0000000000000055 6275696c646572", "writer 0000000000000055 62750069"},
		{"config c5c5", "config c5"},
		{"config c5c5", "config C5C5"},
		{"chunks meta/", "chunks packs/"},
		{"chunks meta/", "chunks meta/../"},
		{"chunks meta/", "chunks meta/A"},
		{" 64 ", " 064 "},
		{" 64 ", " 99999999999999999999 "},
		{" 64 ", "  64 "},
		{"sketches", "sketch"},
		{"pack 00000001 packs/00000001", "pack 00000001 packs/00000002"},
		{"pack 00000001", "pack 1"},
		{"pack 0000001a", "pack 00000001"},
		{" 1000\n", " 1000 \n"},
		{" 1000\n", " 1000\r\n"},
		{"snapshot 612d62", "snapshot 612f62"},
		{"snapshot 612d62", "snapshot 610062"},
		{"snapshot 612d62", "snapshot 7a2e746172"},
		{"snapshot 612d62", "snapshot "},
		{"snapshot 612d62", "snapshot 612062"},
		{"snapshot 612d62", "snapshot 613a62"},
		{"snapshot 612d62", "snapshot 2e61"},
		{"snapshot 612d62", "snapshot 2d61"},
		{"snapshot 612d62", "snapshot 746d702d61"},
		{"snapshot 612d62", "snapshot 61095c"},
		{"condemned packs/", "condemned config/"},
		{"condemned ", "snapshot 7a7a 00 1 0000000000000000\ncondemned "},
		{"pack 00000001", "sketches meta/x 1 0000000000000000\npack 00000001"},
		{"pack 00000001", "bogus line\npack 00000001"},
		{"pack 00000001", "\npack 00000001"},
		{"end ", "end  "},
	};

	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		_cleanup_free_ char *bad = mutate(text, cases[i][0], cases[i][1], &bad_size);
		ck_assert_msg(remote_manifest_parse(bad, bad_size, &m, why, sizeof(why)) ==
				      -EBADMSG,
			      "accepted: %s -> %s", cases[i][0], cases[i][1]);
		ck_assert_msg(strstr(why, "damaged") || strstr(why, "not a"), "%s", why);
	}
	/* after the end line, nothing */
	_cleanup_free_ char *longer = test_alloc(size + 2);
	memcpy(longer, text, size);
	memcpy(longer + size, "x\n", 2);
	ck_assert_int_eq(remote_manifest_parse(longer, size + 2, &m, why, sizeof(why)), -EBADMSG);
	/* every cut and every flipped bit */
	for (size_t cut = 0; cut < size; cut++)
		ck_assert_msg(remote_manifest_parse(text, cut, &m, why, sizeof(why)) == -EBADMSG,
			      "cut at %zu accepted", cut);
	for (size_t pos = 0; pos < size; pos++) {
		for (unsigned bit = 0; bit < 8; bit++) {
			text[pos] ^= (char)(1u << bit);
			int r = remote_manifest_parse(text, size, &m, why, sizeof(why));
			text[pos] ^= (char)(1u << bit);
			ck_assert_msg(r == -EBADMSG, "bit %u of byte %zu accepted", bit, pos);
		}
	}
}
END_TEST

/* The block map of a mirror pack: what the .have map says is present,
 * what a forgotten range makes missing again (the fetching itself runs
 * against a real engine: tests/remote). */
START_TEST(test_pack_probe)
{
	const uint64_t size = 40 * REMOTE_BLOCK + 100; /* a short last block */
	const uint8_t ones[3] = {1, 1, 1};
	uint8_t have[41];
	char path[PATH_MAX];
	struct remote_pack_cache pack = {.pack_num = 1, .size = size};

	pack.have_fd =
		open(test_path(path, sizeof(path), "p.have"), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	ck_assert_int_ge(pack.have_fd, 0);
	/* nothing there yet: every block to fetch */
	ck_assert_int_eq(remote_pack_probe(&pack, 0, 0), 1);
	/* another process fetched blocks 0-2: the map is asked again */
	ck_assert_int_eq(cairn_pwrite_all(pack.have_fd, ones, sizeof(ones), 0), 0);
	ck_assert_int_eq(remote_pack_probe(&pack, 0, 2), 0);
	ck_assert_int_eq(remote_pack_probe(&pack, 0, 3), 1);
	ck_assert_int_eq(pack.blocks[1], BLOCK_PRESENT);
	/* a block being fetched by another thread is not this reader's to fetch */
	pack.blocks[3] = BLOCK_FETCHING;
	ck_assert_int_eq(remote_pack_probe(&pack, 0, 3), 0);
	/* forgotten: missing again, here and in the map; the one in flight stays */
	ck_assert_int_eq(remote_pack_forget(&pack, 1, 3), 0);
	ck_assert_int_eq(pack.blocks[1], BLOCK_UNKNOWN);
	ck_assert_int_eq(pack.blocks[3], BLOCK_FETCHING);
	ck_assert_int_eq(cairn_pread_full(pack.have_fd, have, sizeof(have), 0), 4);
	ck_assert_int_eq(have[0], 1);
	ck_assert_int_eq(have[1], 0);
	ck_assert_int_eq(remote_pack_probe(&pack, 0, 1), 1);
	/* past the last block: clamped to it */
	ck_assert_int_eq(remote_pack_forget(&pack, 39, 1000), 0);
	ck_assert_int_eq(remote_pack_probe(&pack, 40, 1000), 1);
	free(pack.blocks);
	close(pack.have_fd);
}
END_TEST

/* A mirror pack file's bytes on disk (what the bound counts), 0 if none. */
static uint64_t pack_disk(int dirfd, uint32_t num)
{
	char name[32];
	struct stat st;

	snprintf(name, sizeof(name), "%08" PRIx32 ".pack", num);
	return fstatat(dirfd, name, &st, 0) == 0 ? (uint64_t)st.st_blocks * 512 : 0;
}

/* The mirror's bound (remote_cache.c): over it, whole packs go least
 * recently used first, never one a reader holds nor one a GET fills, and
 * down to a low water mark under the bound: a check that stopped just
 * under it would see the packs over it once the filesystem has added its
 * own blocks to them (ext4's extent blocks at writeback), with no fetch
 * left to check again. */
START_TEST(test_cache_bound)
{
	enum { PACKS = 7 };
	const uint64_t pack_size = MiB, max = 5 * MiB;
	struct remote_pack listed[PACKS];
	struct remote_pack_cache cache[PACKS];
	struct remote_state rs = {.cache_max = max};
	struct cairn_store store = {.remote = &rs};
	char path[PATH_MAX], name[32];
	uint8_t *data = malloc(pack_size);

	ck_assert_ptr_nonnull(data);
	memset(data, 0xa5, pack_size);
	test_path(path, sizeof(path), "packs");
	ck_assert_int_eq(mkdir(path, 0700), 0);
	store.packs_dirfd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	ck_assert_int_ge(store.packs_dirfd, 0);
	for (uint32_t i = 0; i < PACKS; i++) {
		uint32_t num = i + 1;
		snprintf(name, sizeof(name), "%08" PRIx32 ".pack", num);
		int fd = openat(store.packs_dirfd, name, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
		ck_assert_int_ge(fd, 0);
		ck_assert_int_eq(cairn_pwrite_all(fd, data, pack_size, 0), 0);
		close(fd);
		/* last used in pack order: pack 1 the least recently */
		snprintf(name, sizeof(name), "%08" PRIx32 ".have", num);
		fd = openat(store.packs_dirfd, name, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
		ck_assert_int_ge(fd, 0);
		ck_assert_int_eq(cairn_pwrite_all(fd, "\1", 1, 0), 0);
		struct timespec used[2] = {{.tv_sec = 1000000 + i}, {.tv_sec = 1000000 + i}};
		ck_assert_int_eq(futimens(fd, used), 0);
		close(fd);
		listed[i] = (struct remote_pack){.pack_num = num, .size = pack_size};
		cache[i] = (struct remote_pack_cache){
			.pack_num = num, .size = pack_size, .fd = -1, .have_fd = -1};
	}
	free(data);
	rs.manifest.packs = listed;
	rs.manifest.pack_count = PACKS;
	rs.packs = cache;
	cache[1].readers = 1;  /* pack 2 held between a fetch and its pread */
	cache[2].fetching = 1; /* pack 3 being filled by a GET */

	/* under the bound: nothing goes */
	rs.cache_max = 8 * MiB;
	remote_cache_fetched(&store, 8 * MiB);
	for (uint32_t num = 1; num <= PACKS; num++)
		ck_assert_uint_eq(pack_disk(store.packs_dirfd, num), pack_size);

	/* 7 MiB over 5: packs 1, 4 and 5 go (2 and 3 are in use), which
	 * leaves room under the bound, not the bound to the byte */
	rs.cache_max = max;
	remote_cache_fetched(&store, max);
	uint64_t total = 0;
	for (uint32_t num = 1; num <= PACKS; num++)
		total += pack_disk(store.packs_dirfd, num);
	ck_assert_uint_le(total, max - max / 64);
	ck_assert_uint_eq(pack_disk(store.packs_dirfd, 1), 0);
	ck_assert_uint_eq(pack_disk(store.packs_dirfd, 2), pack_size);
	ck_assert_uint_eq(pack_disk(store.packs_dirfd, 3), pack_size);
	ck_assert_uint_eq(pack_disk(store.packs_dirfd, 4), 0);
	ck_assert_uint_eq(pack_disk(store.packs_dirfd, 6), pack_size);
	ck_assert_uint_eq(pack_disk(store.packs_dirfd, 7), pack_size);
	/* an evicted pack's map is cleared and its file keeps its size */
	struct stat st;
	ck_assert_int_eq(fstatat(store.packs_dirfd, "00000001.have", &st, 0), 0);
	ck_assert_int_eq(st.st_size, 0);
	ck_assert_int_eq(fstatat(store.packs_dirfd, "00000001.pack", &st, 0), 0);
	ck_assert_int_eq(st.st_size, (off_t)pack_size);
	close(store.packs_dirfd);
}
END_TEST

static Suite *remote_suite(void)
{
	Suite *suite = suite_create("remote");
	const struct test_case cases[] = {
		{"url", test_url, 1, 10},
		{"head", test_head, 1, 10},
		{"lease", test_lease, 1, 10},
		{"manifest_roundtrip", test_manifest_roundtrip, 1, 10},
		{"manifest_malformed", test_manifest_malformed, 1, 30},
		{"pack_probe", test_pack_probe, 1, 10},
		{"cache_bound", test_cache_bound, 1, 10},
	};

	return test_suite_add(suite, cases, ARRAY_SIZE(cases));
}

int main(void)
{
	return test_run(remote_suite());
}
