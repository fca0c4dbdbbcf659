/* sketch.c: resemblance sketches of chunks and the store's table of them
 * (STORE/sketches, docs/FORMAT.md). A sketch is a few super-features in the
 * style of N-transform/Finesse with Odess's content-defined sampling: a
 * gear hash rolls over the chunk, positions whose hash has its top bits
 * clear are sampled, each of SKETCH_FEATURES linear transforms of the
 * sampled hashes keeps its maximum, and groups of features hash into one
 * super-feature. Two chunks sharing a super-feature very likely share most
 * of their content, which is what a delta base needs. The table maps
 * super-features to chunk ids; it is only a hint, rewritten at commit.
 */
#include "delta_internal.h"

#include <fcntl.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>

#define SKETCH_FEATURES    12
#define SKETCH_SAMPLE_BITS 6 /* one position in 64 is sampled */
#define SKETCH_MIN_SAMPLES 8

static uint64_t mix64(uint64_t x)
{
	x ^= x >> 30;
	x *= 0xbf58476d1ce4e5b9ull;
	x ^= x >> 27;
	x *= 0x94d049bb133111ebull;
	return x ^ (x >> 31);
}

/* Each feature keeps the maximum of its transform of the sampled hashes. */
static void sample_add(uint64_t feature[SKETCH_FEATURES], const uint64_t mul[SKETCH_FEATURES + 1],
		       uint64_t hash)
{
	for (unsigned f = 0; f < SKETCH_FEATURES; f++) {
		uint64_t t = hash * mul[f] + mul[f + 1];
		feature[f] = t > feature[f] ? t : feature[f];
	}
}

bool sketch_compute(const uint64_t gear[256], const uint8_t *data, size_t size, struct sketch *ret)
{
	uint64_t feature[SKETCH_FEATURES] = {0};
	uint64_t mul[SKETCH_FEATURES + 1];
	const uint64_t sampled = 1ull << (64 - SKETCH_SAMPLE_BITS);
	uint64_t hash = 0;
	size_t samples = 0;

	if (size < SKETCH_MIN_CHUNK)
		return false;
	for (unsigned i = 0; i <= SKETCH_FEATURES; i++)
		mul[i] = mix64(0x736b65746368ull + i) | 1;
	/* The top bits of the gear hash depend on the last 64 bytes: a
	 * content-defined sample, so an insertion shifts samples but keeps
	 * them. The loop is the chunker's: one shift and add a byte. */
	for (size_t i = 0; i < size; i++) {
		hash = (hash << 1) + gear[data[i]];
		if (__builtin_expect(hash < sampled, 0)) {
			samples++;
			sample_add(feature, mul, hash);
		}
	}
	if (samples < SKETCH_MIN_SAMPLES)
		return false;
	for (unsigned s = 0; s < SKETCH_SUPER; s++) {
		uint64_t sf = 0x5346ull + s;
		for (unsigned f = 0; f < SKETCH_FEATURES / SKETCH_SUPER; f++)
			sf = mix64(sf ^ feature[s * (SKETCH_FEATURES / SKETCH_SUPER) + f]);
		ret->sf[s] = sf ? sf : 1;
	}
	return true;
}

/* ---- the table file ---- */

#define SKETCH_MAGIC   "CAIRNSK1"
#define SKETCH_VERSION 1u

struct sketch_header {
	char magic[8];
	uint32_t version;
	uint32_t reserved;
	uint64_t slot_count; /* a power of two */
	uint64_t check;      /* XXH3-64 of the 24 bytes before it */
};
_Static_assert(sizeof(struct sketch_header) == 32, "sketch header is 32 bytes");

struct sketch_slot {
	uint64_t sf; /* 0: empty */
	uint8_t chunk_id[CAIRN_ID_SIZE];
};
_Static_assert(sizeof(struct sketch_slot) == 24, "sketch slot is 24 bytes");

struct sketch_table {
	void *map;
	size_t map_size;
	const struct sketch_slot *slots;
	uint64_t slot_count; /* 0: empty */
};

static bool header_ok(const struct sketch_header *h, size_t size)
{
	return memcmp(h->magic, SKETCH_MAGIC, 8) == 0 && h->version == SKETCH_VERSION &&
	       h->check == store_checksum(h, offsetof(struct sketch_header, check)) &&
	       h->slot_count > 0 && (h->slot_count & (h->slot_count - 1)) == 0 &&
	       h->slot_count <= (SIZE_MAX - sizeof(*h)) / sizeof(struct sketch_slot) &&
	       size == sizeof(*h) + h->slot_count * sizeof(struct sketch_slot);
}

int sketch_table_load(int dirfd, struct sketch_table **ret)
{
	struct sketch_table *table = calloc(1, sizeof(*table));
	struct stat st;

	if (!table)
		return -ENOMEM;
	*ret = table;
	_cleanup_close_ int fd = cairn_open_file_beneath(dirfd, SKETCH_NAME, O_RDONLY, 0);
	if (fd < 0 || fstat(fd, &st) < 0 || (size_t)st.st_size < sizeof(struct sketch_header))
		return 0;
	void *map = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_SHARED, fd, 0);
	if (map == MAP_FAILED)
		return 0;
	const struct sketch_header *h = map;
	if (!header_ok(h, (size_t)st.st_size)) {
		munmap(map, (size_t)st.st_size);
		return 0;
	}
	table->map = map;
	table->map_size = (size_t)st.st_size;
	table->slots = (const struct sketch_slot *)(h + 1);
	table->slot_count = h->slot_count;
	return 0;
}

void sketch_table_free(struct sketch_table *table)
{
	if (!table)
		return;
	if (table->map)
		munmap(table->map, table->map_size);
	free(table);
}

bool sketch_table_find(const struct sketch_table *table, uint64_t sf, struct cairn_id *ret)
{
	if (!table || table->slot_count == 0)
		return false;
	uint64_t mask = table->slot_count - 1;
	for (uint64_t i = sf & mask, n = 0; n < table->slot_count; i = (i + 1) & mask, n++) {
		if (table->slots[i].sf == 0)
			return false;
		if (table->slots[i].sf == sf) {
			memcpy(ret->bytes, table->slots[i].chunk_id, CAIRN_ID_SIZE);
			return true;
		}
	}
	return false;
}

static void slot_put(struct sketch_slot *slots, uint64_t mask, uint64_t sf, const uint8_t *id)
{
	uint64_t i = sf & mask;

	while (slots[i].sf != 0 && slots[i].sf != sf)
		i = (i + 1) & mask;
	slots[i].sf = sf;
	memcpy(slots[i].chunk_id, id, CAIRN_ID_SIZE);
}

int sketch_table_write(int dirfd, const struct sketch_table *table, const uint64_t *sfs,
		       const struct cairn_id *ids, size_t count)
{
	uint64_t used = count, slots = 1024;
	char tmp_name[64];

	for (uint64_t i = 0; table && i < table->slot_count; i++)
		used += table->slots[i].sf != 0;
	/* Linear probing stays short up to three quarters full. */
	while (slots * 3 < used * 4)
		slots *= 2;
	size_t size = sizeof(struct sketch_header) + slots * sizeof(struct sketch_slot);
	_cleanup_free_ uint8_t *buf = calloc(1, size);
	if (!buf)
		return -ENOMEM;
	struct sketch_header *h = (struct sketch_header *)buf;
	struct sketch_slot *out = (struct sketch_slot *)(h + 1);
	memcpy(h->magic, SKETCH_MAGIC, 8);
	h->version = SKETCH_VERSION;
	h->slot_count = slots;
	h->check = store_checksum(h, offsetof(struct sketch_header, check));
	for (uint64_t i = 0; table && i < table->slot_count; i++)
		if (table->slots[i].sf != 0)
			slot_put(out, slots - 1, table->slots[i].sf, table->slots[i].chunk_id);
	for (size_t i = 0; i < count; i++)
		slot_put(out, slots - 1, sfs[i], ids[i].bytes);
	_cleanup_close_ int fd =
		cairn_tmp_open(dirfd, "tmp-sketches-", "", 0600, tmp_name, sizeof(tmp_name));
	if (fd < 0)
		return fd;
	int r = cairn_write_all(fd, buf, size);
	if (r == 0)
		r = cairn_commit_file(dirfd, fd, tmp_name, SKETCH_NAME, NULL);
	if (r < 0)
		unlinkat(dirfd, tmp_name, 0);
	return r;
}
