/* fuzz_store.c: libFuzzer target for the store's readers of untrusted bytes:
 * the config, the chunk table and a pack file. A small template store is made
 * once per process, always the same bytes (a fixed hash key, one compression
 * thread), and each input replaces one of its files in a scratch copy. The
 * first byte says which (its value mod 3: config, chunks, pack 1) and, with
 * bit 0x80, that the harness repairs the file's checksums first, so that
 * mutations reach the fields behind them. Then the store is used as readers
 * and writers use it: open, stats, lookups, every entry read through an
 * unpacker, verify, and a writer that stores chunks, commits and runs gc,
 * after each of which, failed or not, the store must open again (a writer
 * must never leave a table it cannot read). Any crash, sanitizer report or leak is a bug;
 * return codes do not matter.
 * The same function replays the corpus in the normal test suite (replay.c).
 */
#include "store_internal.h"

#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define READ_ENTRIES_MAX 512u
#define FIX_CHECKSUMS    0x80u

enum target { TARGET_CONFIG, TARGET_CHUNKS, TARGET_PACK };

struct blob {
	uint8_t *data;
	size_t size;
};

static struct harness {
	char base[256];    /* the process's temp directory */
	char scratch[300]; /* base/s: the store each input gets */
	struct blob config, chunks;
	struct blob packs[4];
	size_t pack_count;
	bool ready;
} h;

/* ---- files ---- */

static int write_file(const char *dir, const char *name, const void *data, size_t size)
{
	char path[512];

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0)
		return -errno;
	int r = cairn_write_all(fd, data, size);
	close(fd);
	return r;
}

static int read_file(const char *dir, const char *name, struct blob *ret)
{
	char path[512];
	struct stat st;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	_cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0 || fstat(fd, &st) < 0)
		return -errno;
	ret->size = (size_t)st.st_size;
	ret->data = malloc(ret->size + 1);
	if (!ret->data)
		return -ENOMEM;
	return cairn_pread_full(fd, ret->data, ret->size, 0) == (ssize_t)ret->size ? 0 : -EIO;
}

static int remove_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st, (void)flag, (void)ftw;
	return remove(path);
}

static void remove_tree(const char *path)
{
	nftw(path, remove_one, 16, FTW_DEPTH | FTW_PHYS);
}

static void harness_cleanup(void)
{
	if (h.base[0])
		remove_tree(h.base);
}

/* ---- the template store ---- */

static const struct cairn_store_params template_params = {
	.chunk_min = 256,
	.chunk_avg = 1024,
	.chunk_max = 4096,
	.zstd_level = 3,
	.pack_max = 1u << 20,
};

/* The config with a fixed key, so the template is the same in every run
 * and the corpus means the same thing. */
static int write_fixed_config(const char *dir)
{
	struct config_disk disk = {0};

	memcpy(disk.magic, CONFIG_MAGIC, 8);
	disk.version = CONFIG_VERSION;
	disk.size = sizeof(disk);
	disk.chunk_min = template_params.chunk_min;
	disk.chunk_avg = template_params.chunk_avg;
	disk.chunk_max = template_params.chunk_max;
	disk.zstd_level = template_params.zstd_level;
	disk.pack_max = template_params.pack_max;
	for (size_t i = 0; i < KEY_SIZE; i++)
		disk.hash_key[i] = (uint8_t)(i * 7 + 1);
	disk.checksum = store_checksum(&disk, offsetof(struct config_disk, checksum));
	return write_file(dir, "config", &disk, sizeof(disk));
}

static void fill(uint8_t *buf, size_t size, uint64_t seed, bool compressible)
{
	for (size_t i = 0; i < size; i++) {
		seed = seed * 6364136223846793005ull + 1442695040888963407ull;
		buf[i] = compressible ? (uint8_t)("cairn "[(seed >> 33) % 6])
				      : (uint8_t)(seed >> 33);
	}
}

/* Two commits: small chunks grouped into frames, big ones alone, raw and
 * zstd records, in two packs. */
static int template_fill(struct cairn_store *store)
{
	struct cairn_writer *writer;
	static uint8_t buf[20000];
	struct cairn_id id;

	int r = cairn_writer_open(store, CAIRN_WRITER_NOWAIT, 1, &writer);
	for (unsigned round = 0; r == 0 && round < 2; round++) {
		for (unsigned i = 0; r == 0 && i < 6; i++) {
			size_t size = 300 + i * 500 + round * 77;
			fill(buf, size, i + 10 * round, i % 2 == 0);
			r = cairn_writer_put(writer, buf, size, &id);
		}
		if (r == 0)
			r = cairn_writer_file_begin(writer);
		fill(buf, sizeof(buf), 99 + round, round == 0);
		if (r == 0)
			r = cairn_writer_file_write(writer, buf, sizeof(buf));
		const struct cairn_chunk_ref *chunks;
		size_t count;
		uint64_t file_size;
		if (r == 0)
			r = cairn_writer_file_end(writer, &file_size, &chunks, &count);
		if (r == 0)
			r = cairn_writer_commit(writer);
	}
	cairn_writer_free(writer);
	return r;
}

static int template_load(const char *dir)
{
	char name[32];

	int r = read_file(dir, "config", &h.config);
	if (r == 0)
		r = read_file(dir, "chunks", &h.chunks);
	for (uint32_t num = 1; r == 0 && num <= ARRAY_SIZE(h.packs); num++) {
		pack_name(num, name);
		char packs[400];
		snprintf(packs, sizeof(packs), "%s/packs", dir);
		if (read_file(packs, name, &h.packs[num - 1]) < 0)
			break;
		h.pack_count = num;
	}
	return r;
}

static int template_make(void)
{
	char dir[300];

	const char *tmp = getenv("TMPDIR");
	snprintf(h.base, sizeof(h.base), "%s/cairn-fuzz-store-XXXXXX", tmp ? tmp : "/tmp");
	if (!mkdtemp(h.base))
		return -errno;
	atexit(harness_cleanup);
	snprintf(dir, sizeof(dir), "%s/template", h.base);
	snprintf(h.scratch, sizeof(h.scratch), "%s/s", h.base);
	struct cairn_store *store = cairn_store_new();
	int r = store ? cairn_store_create(store, dir, &template_params) : -ENOMEM;
	cairn_store_free(store);
	if (r == 0)
		r = write_fixed_config(dir);
	store = r == 0 ? cairn_store_new() : NULL;
	if (store)
		r = cairn_store_open(store, dir);
	if (r == 0 && store)
		r = template_fill(store);
	cairn_store_free(store);
	if (r == 0)
		r = template_load(dir);
	if (r < 0 || h.pack_count == 0) {
		fprintf(stderr, "fuzz_store: cannot make the template store in %s\n", dir);
		abort();
	}
	h.ready = true;
	return 0;
}

/* CAIRN_FUZZ_SEEDS=DIR writes the template's files as seed inputs. */
static void write_seeds(const char *dir)
{
	static const char *const names[] = {"seed-config", "seed-chunks", "seed-pack"};

	for (unsigned t = 0; t < 3; t++) {
		const struct blob *b = t == 0 ? &h.config : t == 1 ? &h.chunks : &h.packs[0];
		_cleanup_free_ uint8_t *seed = malloc(b->size + 1);
		if (!seed)
			return;
		seed[0] = (uint8_t)t;
		memcpy(seed + 1, b->data, b->size);
		write_file(dir, names[t], seed, b->size + 1);
	}
}

/* ---- checksum repair ---- */

static void fix_config(uint8_t *data, size_t size)
{
	if (size < sizeof(struct config_disk))
		return;
	uint64_t sum = store_checksum(data, offsetof(struct config_disk, checksum));
	memcpy(data + offsetof(struct config_disk, checksum), &sum, sizeof(sum));
}

/* The fanout from the entries' first bytes, when the sizes add up: lets
 * mutated entries through to the writer and gc (they still have to be in
 * order to pass the writer's check). */
static void fix_fanout(uint8_t *data, size_t size, const struct table_header *header)
{
	size_t fanout_at = sizeof(*header) + (size_t)header->pack_count * sizeof(struct table_pack);
	size_t entries_at = fanout_at + FANOUT_SIZE * sizeof(uint32_t);
	uint32_t fanout[FANOUT_SIZE] = {0};

	if (header->pack_count > size / sizeof(struct table_pack) ||
	    header->entry_count > size / sizeof(struct table_entry) ||
	    entries_at + header->entry_count * sizeof(struct table_entry) != size)
		return;
	for (uint64_t i = 0; i < header->entry_count; i++)
		fanout[data[entries_at + i * sizeof(struct table_entry)]]++;
	for (size_t i = 1; i < FANOUT_SIZE; i++)
		fanout[i] += fanout[i - 1];
	memcpy(data + fanout_at, fanout, sizeof(fanout));
}

static void fix_table(uint8_t *data, size_t size)
{
	struct table_header header;

	if (size < sizeof(header))
		return;
	memcpy(&header, data, sizeof(header));
	fix_fanout(data, size, &header);
	header.body_checksum = store_checksum(data + sizeof(header), size - sizeof(header));
	header.check = store_checksum(&header, offsetof(struct table_header, check));
	memcpy(data, &header, sizeof(header));
}

/* The header, every record's check along the chain of records, the footer. */
static void fix_pack(uint8_t *data, size_t size)
{
	struct pack_header header;
	struct pack_record record;
	struct pack_footer footer;
	size_t at = sizeof(header);

	if (size < sizeof(header) + sizeof(footer))
		return;
	memcpy(&header, data, sizeof(header));
	header.check = store_checksum(&header, offsetof(struct pack_header, check));
	memcpy(data, &header, sizeof(header));
	while (at + sizeof(record) <= size - sizeof(footer)) {
		memcpy(&record, data + at, sizeof(record));
		size_t head = record_head_size(record.members);
		if (record.magic != RECORD_MAGIC || at + head > size)
			break;
		struct store_checksum_stream sum;
		store_checksum_stream_init(&sum);
		store_checksum_stream_update(&sum, &record, offsetof(struct pack_record, check));
		store_checksum_stream_update(&sum, data + at + sizeof(record),
					     head - sizeof(record));
		record.check = store_checksum_stream_final(&sum);
		memcpy(data + at, &record, sizeof(record));
		at += head + record.stored_size;
	}
	size_t end = size - sizeof(footer);
	memcpy(&footer, data + end, sizeof(footer));
	footer.checksum = store_checksum(data, end);
	memcpy(data + end, &footer, sizeof(footer));
}

/* The template table with pack 1's size set to size, checksums redone. */
static int table_for_pack(size_t size, struct blob *ret)
{
	struct table_header header;

	ret->data = malloc(h.chunks.size);
	if (!ret->data)
		return -ENOMEM;
	ret->size = h.chunks.size;
	memcpy(ret->data, h.chunks.data, h.chunks.size);
	memcpy(&header, ret->data, sizeof(header));
	struct table_pack *packs = (struct table_pack *)(ret->data + sizeof(header));
	for (uint32_t i = 0; i < header.pack_count; i++)
		if (packs[i].pack_num == 1)
			packs[i].size = size;
	fix_table(ret->data, ret->size);
	return 0;
}

/* ---- one input ---- */

/* The scratch store: the template's files with one of them replaced. */
static int scratch_write(enum target target, bool fix, uint8_t *data, size_t size)
{
	char packs[400], name[32];
	struct blob table = {0};
	int r = 0;

	remove_tree(h.scratch);
	snprintf(packs, sizeof(packs), "%s/packs", h.scratch);
	if (mkdir(h.scratch, 0700) < 0 || mkdir(packs, 0700) < 0)
		return -errno;
	if (target == TARGET_CONFIG && fix)
		fix_config(data, size);
	else if (target == TARGET_CHUNKS && fix)
		fix_table(data, size);
	else if (target == TARGET_PACK && fix)
		fix_pack(data, size);
	if (target == TARGET_PACK && fix)
		r = table_for_pack(size, &table);
	if (r == 0)
		r = write_file(h.scratch, "config", target == TARGET_CONFIG ? data : h.config.data,
			       target == TARGET_CONFIG ? size : h.config.size);
	if (r == 0 && target == TARGET_CHUNKS)
		r = write_file(h.scratch, "chunks", data, size);
	else if (r == 0)
		r = write_file(h.scratch, "chunks", table.data ? table.data : h.chunks.data,
			       table.data ? table.size : h.chunks.size);
	for (size_t i = 0; r == 0 && i < h.pack_count; i++) {
		pack_name((uint32_t)i + 1, name);
		bool mine = target == TARGET_PACK && i == 0;
		r = write_file(packs, name, mine ? data : h.packs[i].data,
			       mine ? size : h.packs[i].size);
	}
	free(table.data);
	return r;
}

static void ignore_problem(void *userdata, const char *problem)
{
	(void)userdata, (void)problem;
}

static void exercise_read(struct cairn_store *store)
{
	const struct chunk_table *table = store_table(store);
	struct cairn_store_stats stats;
	struct cairn_unpacker *unpacker;
	struct cairn_id id;

	cairn_store_stats(store, &stats);
	if (cairn_unpacker_new(store, &unpacker) < 0)
		return;
	_cleanup_free_ uint8_t *buf = malloc(store->params.chunk_max);
	for (uint64_t i = 0; buf && i < table->entry_count && i < READ_ENTRIES_MAX; i++) {
		memcpy(id.bytes, table->entries[i].chunk_id, CAIRN_ID_SIZE);
		cairn_store_has_chunk(store, &id, NULL);
		cairn_unpacker_get(unpacker, &id, buf, store->params.chunk_max);
	}
	memset(id.bytes, 0xab, sizeof(id.bytes));
	if (buf)
		cairn_unpacker_get(unpacker, &id, buf, store->params.chunk_max);
	cairn_unpacker_free(unpacker);
	if (table->entry_count <= READ_ENTRIES_MAX)
		cairn_store_verify(store, ignore_problem, NULL);
}

static bool live_half(void *userdata, const struct cairn_id *id)
{
	(void)userdata;
	return id->bytes[CAIRN_ID_SIZE - 1] & 1;
}

/* A writer must never leave a store it cannot open again: whatever table
 * it read, the one it committed (or failed to) must load. */
static void check_reopens(const char *after)
{
	struct cairn_store *again = cairn_store_new();

	if (again && cairn_store_open(again, h.scratch) < 0) {
		fprintf(stderr, "fuzz_store: after %s the store does not open: %s\n", after,
			cairn_store_error(again));
		abort();
	}
	cairn_store_free(again);
}

/* New chunks (one the same as a template chunk: a dedup hit to confirm
 * against the stored bytes), a commit, then gc dropping about half. */
static void exercise_write(struct cairn_store *store)
{
	uint8_t buf[3000];
	struct cairn_writer *writer;
	struct cairn_gc_stats gc;
	struct cairn_id id;

	if (cairn_writer_open(store, CAIRN_WRITER_NOWAIT, 1, &writer) < 0)
		return;
	fill(buf, 300, 0, true); /* the template's first chunk */
	int r = cairn_writer_put(writer, buf, 300, &id);
	fill(buf, sizeof(buf), 12345, false);
	if (r == 0 && store->params.chunk_max >= sizeof(buf))
		r = cairn_writer_put(writer, buf, sizeof(buf), &id);
	if (r == 0) {
		r = cairn_writer_commit(writer);
		check_reopens("a commit");
	}
	if (r == 0) {
		cairn_writer_gc(writer, live_half, NULL, &gc);
		check_reopens("gc");
	}
	cairn_writer_free(writer);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (!h.ready) {
		template_make();
		const char *seeds = getenv("CAIRN_FUZZ_SEEDS");
		if (seeds)
			write_seeds(seeds);
	}
	if (size < 1)
		return 0;
	enum target target = (enum target)((data[0] & ~FIX_CHECKSUMS) % 3);
	bool fix = data[0] & FIX_CHECKSUMS;
	_cleanup_free_ uint8_t *copy = malloc(size);
	if (!copy)
		return 0;
	memcpy(copy, data + 1, size - 1);
	if (scratch_write(target, fix, copy, size - 1) < 0)
		return 0;
	struct cairn_store *store = cairn_store_new();
	if (store && cairn_store_open(store, h.scratch) == 0) {
		exercise_read(store);
		exercise_write(store);
	}
	cairn_store_free(store);
	return 0;
}
