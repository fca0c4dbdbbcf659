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
#include <sys/stat.h>
#include <unistd.h>

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
	uint64_t slot_count; /* 1..2^32 - 1 */
	uint64_t check;      /* XXH3-64 of the 24 bytes before it */
};
_Static_assert(sizeof(struct sketch_header) == 32, "sketch header is 32 bytes");

/* A slot names its chunk by the first 8 bytes of its id, looked up in the
 * chunk table: two thirds of the size of a whole id, and a wrong guess
 * (two ids alike in 64 bits) only costs a futile delta attempt. */
#define SKETCH_ID_PREFIX 8
struct sketch_slot {
	uint32_t tag; /* the super-feature's high half, never 0; 0: empty */
	uint8_t id_prefix[SKETCH_ID_PREFIX];
} __attribute__((packed));
_Static_assert(sizeof(struct sketch_slot) == 12, "sketch slot is 12 bytes");

/* The table is read with pread, not mapped: a lookup lands on a random
 * page, so a mapping soon had all of it resident (6.1 MB for linux 6.1's
 * table, counted in an add's peak memory). In memory, each slot keeps only
 * an 8-bit fingerprint of its tag (0: empty), enough to walk a probe
 * sequence; a slot whose fingerprint matches is read from the file to
 * compare the whole tag and take the id prefix (one probed slot in 255
 * matches by chance: a pread more, not a wrong answer; docs/BENCHMARKS.md,
 * "Delta chunks"). */
struct sketch_table {
	int fd; /* -1: empty */
	uint8_t *fingerprints;
	uint64_t slot_count; /* 0: empty */
};

static uint32_t sf_tag(uint64_t sf)
{
	uint32_t tag = (uint32_t)(sf >> 32);

	return tag ? tag : 1;
}

/* The low byte of a tag (its home comes from the high bits), never 0. */
static uint8_t tag_fingerprint(uint32_t tag)
{
	return (uint8_t)tag ? (uint8_t)tag : 1;
}

static uint64_t slot_offset(uint64_t i)
{
	return sizeof(struct sketch_header) + i * sizeof(struct sketch_slot);
}

/* Slots first.. of table, at most count, into buf; returns how many, or 0
 * on a read error. */
static size_t slots_read(const struct sketch_table *table, uint64_t first, size_t count,
			 struct sketch_slot *buf)
{
	if (count > table->slot_count - first)
		count = (size_t)(table->slot_count - first);
	ssize_t n = cairn_pread_full(table->fd, buf, count * sizeof(*buf), slot_offset(first));
	return n == (ssize_t)(count * sizeof(*buf)) ? count : 0;
}

#define SLOTS_PER_READ 4096

/* The home slot of a tag: scaled to the slot count, so that a table of any
 * size is rebuilt from the tags alone. */
static uint64_t tag_home(uint32_t tag, uint64_t slot_count)
{
	return (uint64_t)tag * slot_count >> 32;
}

static bool header_ok(const struct sketch_header *h, size_t size)
{
	return memcmp(h->magic, SKETCH_MAGIC, 8) == 0 && h->version == SKETCH_VERSION &&
	       h->check == store_checksum(h, offsetof(struct sketch_header, check)) &&
	       h->slot_count > 0 && h->slot_count <= UINT32_MAX &&
	       size == sizeof(*h) + h->slot_count * sizeof(struct sketch_slot);
}

/* Reads every slot's fingerprint; false on a read error. */
static bool fingerprints_load(struct sketch_table *table)
{
	_cleanup_free_ struct sketch_slot *buf = malloc(SLOTS_PER_READ * sizeof(*buf));

	if (!buf)
		return false;
	for (uint64_t i = 0; i < table->slot_count;) {
		size_t n = slots_read(table, i, SLOTS_PER_READ, buf);
		if (n == 0)
			return false;
		for (size_t k = 0; k < n; k++)
			table->fingerprints[i + k] = buf[k].tag ? tag_fingerprint(buf[k].tag) : 0;
		i += n;
	}
	return true;
}

int sketch_table_load(int dirfd, struct sketch_table **ret)
{
	struct sketch_table *table = calloc(1, sizeof(*table));
	struct sketch_header h;
	struct stat st;

	if (!table)
		return -ENOMEM;
	table->fd = -1;
	*ret = table;
	_cleanup_close_ int fd = cairn_open_file_beneath(dirfd, SKETCH_NAME, O_RDONLY, 0);
	if (fd < 0 || fstat(fd, &st) < 0 || (size_t)st.st_size < sizeof(h) ||
	    cairn_pread_full(fd, &h, sizeof(h), 0) != (ssize_t)sizeof(h) ||
	    !header_ok(&h, (size_t)st.st_size))
		return 0;
	table->fingerprints = malloc(h.slot_count * sizeof(*table->fingerprints));
	if (!table->fingerprints)
		return -ENOMEM;
	table->fd = TAKE_FD(fd);
	table->slot_count = h.slot_count;
	if (!fingerprints_load(table)) {
		close(TAKE_FD(table->fd));
		free(TAKE_PTR(table->fingerprints));
		table->fd = -1;
		table->slot_count = 0;
	}
	return 0;
}

void sketch_table_free(struct sketch_table *table)
{
	if (!table)
		return;
	if (table->fd >= 0)
		close(table->fd);
	free(table->fingerprints);
	free(table);
}

/* The chunk table's entry whose id starts with prefix, or NULL. */
static const struct table_entry *find_prefix(const struct chunk_table *chunks,
					     const uint8_t prefix[SKETCH_ID_PREFIX])
{
	uint64_t lo = prefix[0] ? chunks->fanout[prefix[0] - 1] : 0;
	uint64_t hi = chunks->fanout[prefix[0]];

	while (lo < hi) {
		uint64_t mid = lo + (hi - lo) / 2;
		int c = memcmp(chunks->entries[mid].chunk_id, prefix, SKETCH_ID_PREFIX);
		if (c == 0)
			return &chunks->entries[mid];
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return NULL;
}

const struct table_entry *sketch_table_find(const struct sketch_table *table,
					    const struct chunk_table *chunks, uint64_t sf)
{
	if (!table || table->slot_count == 0 || !chunks || chunks->entry_count == 0)
		return NULL;
	uint32_t tag = sf_tag(sf);
	uint8_t fingerprint = tag_fingerprint(tag);
	for (uint64_t i = tag_home(tag, table->slot_count), n = 0; n < table->slot_count; n++) {
		uint8_t f = table->fingerprints[i];
		struct sketch_slot slot;
		if (f == 0)
			return NULL;
		if (f == fingerprint && slots_read(table, i, 1, &slot) == 1 && slot.tag == tag)
			return find_prefix(chunks, slot.id_prefix);
		i = i + 1 == table->slot_count ? 0 : i + 1;
	}
	return NULL;
}

/* ---- the rewrite ---- */

/* The new table is built a part at a time: the pairs whose home falls in
 * the part's slots [lo, hi) are placed in a window over them (plus the
 * slots past hi that probing reaches, carried over as the start of the next
 * window), and the part is written out. So a rewrite holds about 1 MiB of
 * slots, not the whole new table (10.7 MB after linux 6.1 and 6.12, which
 * was the commit's, and then the add's, peak memory). A probe that runs
 * past the last slot wraps: those pairs take the first empty slots of the
 * file once it is written. Where a tag sits depends on the order pairs are
 * placed, what a lookup finds does not: a tag is in the table once. */
#define WINDOW_SLOTS ((1u << 20) / sizeof(struct sketch_slot))

struct window {
	struct sketch_slot *slots; /* table slots lo.. */
	uint64_t lo;
	size_t cap;
};

/* Places tag at its home or the first free slot after it, the window
 * growing as probing needs; a tag already there takes the new id. */
static int window_put(struct window *w, uint64_t home, uint32_t tag, const uint8_t *id_prefix)
{
	size_t i = (size_t)(home - w->lo);

	while (i >= w->cap || (w->slots[i].tag != 0 && w->slots[i].tag != tag)) {
		if (i < w->cap) {
			i++;
			continue;
		}
		struct sketch_slot *grown = realloc(w->slots, 2 * w->cap * sizeof(*grown));
		if (!grown)
			return -ENOMEM;
		memset(grown + w->cap, 0, w->cap * sizeof(*grown));
		w->slots = grown;
		w->cap *= 2;
	}
	w->slots[i].tag = tag;
	memcpy(w->slots[i].id_prefix, id_prefix, SKETCH_ID_PREFIX);
	return 0;
}

/* The old table's pairs whose home in the new table (of slots) is in
 * [lo, hi), read in blocks. */
static int window_fill_old(struct window *w, const struct sketch_table *table, uint64_t slots,
			   uint64_t hi, struct sketch_slot *buf)
{
	for (uint64_t i = 0; table && i < table->slot_count;) {
		size_t n = slots_read(table, i, SLOTS_PER_READ, buf);
		if (n == 0)
			return -EIO;
		for (size_t k = 0; k < n; k++) {
			uint64_t home = tag_home(buf[k].tag, slots);
			if (buf[k].tag == 0 || home < w->lo || home >= hi)
				continue;
			int r = window_put(w, home, buf[k].tag, buf[k].id_prefix);
			if (r < 0)
				return r;
		}
		i += n;
	}
	return 0;
}

/* The new pairs whose home is in [lo, hi), after the old ones: they win. */
static int window_fill_new(struct window *w, const struct sketch_source *source, uint64_t slots,
			   uint64_t hi)
{
	uint64_t sf;
	const uint8_t *id;

	source->rewind(source->ctx);
	while (source->next(source->ctx, &sf, &id)) {
		uint64_t home = tag_home(sf_tag(sf), slots);
		if (home < w->lo || home >= hi)
			continue;
		int r = window_put(w, home, sf_tag(sf), id);
		if (r < 0)
			return r;
	}
	return 0;
}

/* The pairs that wrapped past the last slot, into the first free slots of
 * the written file. */
static int place_wrapped(int fd, const struct sketch_slot *wrapped, size_t count)
{
	uint64_t at = 0;

	for (size_t i = 0; i < count; i++) {
		for (;; at++) {
			struct sketch_slot slot;
			if (cairn_pread_full(fd, &slot, sizeof(slot), slot_offset(at)) !=
			    (ssize_t)sizeof(slot))
				return -EIO;
			if (slot.tag == 0)
				break;
		}
		int r = cairn_pwrite_all(fd, &wrapped[i], sizeof(wrapped[i]), slot_offset(at++));
		if (r < 0)
			return r;
	}
	return 0;
}

/* Writes the slots part by part after the header. */
static int write_parts(int fd, const struct sketch_table *table, uint64_t slots,
		       const struct sketch_source *source)
{
	_cleanup_free_ struct sketch_slot *buf = malloc(SLOTS_PER_READ * sizeof(*buf));
	struct window w = {.cap = WINDOW_SLOTS};
	int r = 0;

	w.slots = calloc(w.cap, sizeof(*w.slots));
	if (!buf || !w.slots) {
		free(w.slots);
		return -ENOMEM;
	}
	while (r == 0 && w.lo < slots) {
		uint64_t hi = w.lo + WINDOW_SLOTS < slots ? w.lo + WINDOW_SLOTS : slots;
		r = window_fill_old(&w, table, slots, hi, buf);
		if (r == 0)
			r = window_fill_new(&w, source, slots, hi);
		if (r == 0)
			r = cairn_write_all(fd, w.slots, (hi - w.lo) * sizeof(*w.slots));
		/* What probing pushed past hi starts the next window. */
		size_t part = (size_t)(hi - w.lo);
		memmove(w.slots, w.slots + part, (w.cap - part) * sizeof(*w.slots));
		memset(w.slots + (w.cap - part), 0, part * sizeof(*w.slots));
		w.lo = hi;
	}
	size_t wrapped = 0;
	while (r == 0 && wrapped < w.cap && w.slots[wrapped].tag != 0)
		wrapped++;
	if (r == 0 && wrapped > 0)
		r = place_wrapped(fd, w.slots, wrapped);
	free(w.slots);
	return r;
}

int sketch_table_write(int dirfd, const struct sketch_table *table, size_t count,
		       const struct sketch_source *source)
{
	uint64_t used = count;
	struct sketch_header h = {.version = SKETCH_VERSION};
	char tmp_name[64];

	for (uint64_t i = 0; table && i < table->slot_count; i++)
		used += table->fingerprints[i] != 0;
	/* Linear probing stays short up to three quarters full. */
	uint64_t slots = used * 4 / 3 + 64;
	if (slots > UINT32_MAX)
		return -EFBIG;
	memcpy(h.magic, SKETCH_MAGIC, 8);
	h.slot_count = slots;
	h.check = store_checksum(&h, offsetof(struct sketch_header, check));
	_cleanup_close_ int fd =
		cairn_tmp_open(dirfd, "tmp-sketches-", "", 0600, tmp_name, sizeof(tmp_name));
	if (fd < 0)
		return fd;
	int r = cairn_write_all(fd, &h, sizeof(h));
	if (r == 0)
		r = write_parts(fd, table && table->slot_count > 0 ? table : NULL, slots, source);
	if (r == 0)
		r = cairn_commit_file(dirfd, fd, tmp_name, SKETCH_NAME, NULL);
	if (r < 0)
		unlinkat(dirfd, tmp_name, 0);
	return r;
}
