/* live.c: sets of chunk ids, and the set of chunks a store's snapshots keep
 * alive. gc drops every chunk outside the set of all snapshots, `info`
 * counts the chunks no other snapshot names, `verify` reads each chunk of
 * some snapshots once. The set is an open-addressing hash table of bare
 * 16-byte ids (linear probing, at most three quarters full), so its memory
 * is bounded by the number of distinct chunks, not of files or runs. A
 * snapshot's sections are checked against their checksums before its chunk
 * lists are trusted: a flipped bit must never make a live chunk look dead.
 */
#include "index_internal.h"

#include <string.h>

#define SET_MIN_CAP 1024u

struct cairn_chunk_set {
	struct cairn_id *slots; /* the all-zero id marks an empty slot */
	size_t cap;             /* a power of two */
	uint64_t count;         /* ids in slots, plus the zero id when held */
	bool has_zero;          /* the all-zero id, which cannot sit in a slot */
};

static const struct cairn_id zero_id;

static bool id_is_zero(const struct cairn_id *id)
{
	return memcmp(id, &zero_id, sizeof(*id)) == 0;
}

/* Ids are keyed hashes, already uniform; mixing both halves still spreads
 * ids that were made alike on purpose. */
static size_t slot_of(const struct cairn_id *id, size_t cap)
{
	uint64_t a, b;

	memcpy(&a, id->bytes, 8);
	memcpy(&b, id->bytes + 8, 8);
	uint64_t h = (a ^ (b << 32 | b >> 32)) * 0x9e3779b97f4a7c15ull;
	return (size_t)(h >> 17) & (cap - 1);
}

/* The slot holding id, or the empty slot where it would go. */
static size_t probe(const struct cairn_id *slots, size_t cap, const struct cairn_id *id)
{
	size_t i = slot_of(id, cap);

	while (!id_is_zero(&slots[i]) && memcmp(&slots[i], id, sizeof(*id)) != 0)
		i = (i + 1) & (cap - 1);
	return i;
}

int cairn_chunk_set_new(struct cairn_chunk_set **ret)
{
	struct cairn_chunk_set *set = calloc(1, sizeof(*set));

	if (!set)
		return -ENOMEM;
	set->slots = calloc(SET_MIN_CAP, sizeof(*set->slots));
	if (!set->slots) {
		free(set);
		return -ENOMEM;
	}
	set->cap = SET_MIN_CAP;
	*ret = set;
	return 0;
}

void cairn_chunk_set_free(struct cairn_chunk_set *set)
{
	if (!set)
		return;
	free(set->slots);
	free(set);
}

static int set_grow(struct cairn_chunk_set *set)
{
	size_t cap = set->cap * 2;

	if (cap > SIZE_MAX / sizeof(*set->slots))
		return -ENOMEM;
	struct cairn_id *slots = calloc(cap, sizeof(*slots));
	if (!slots)
		return -ENOMEM;
	for (size_t i = 0; i < set->cap; i++)
		if (!id_is_zero(&set->slots[i]))
			slots[probe(slots, cap, &set->slots[i])] = set->slots[i];
	free(set->slots);
	set->slots = slots;
	set->cap = cap;
	return 0;
}

int cairn_chunk_set_add(struct cairn_chunk_set *set, const struct cairn_id *id)
{
	if (id_is_zero(id)) {
		if (set->has_zero)
			return 0;
		set->has_zero = true;
		set->count++;
		return 1;
	}
	size_t i = probe(set->slots, set->cap, id);
	if (!id_is_zero(&set->slots[i]))
		return 0;
	if ((set->count + 1) * 4 > (uint64_t)set->cap * 3) {
		int r = set_grow(set);
		if (r < 0)
			return r;
		i = probe(set->slots, set->cap, id);
	}
	set->slots[i] = *id;
	set->count++;
	return 1;
}

bool cairn_chunk_set_contains(const struct cairn_chunk_set *set, const struct cairn_id *id)
{
	if (id_is_zero(id))
		return set->has_zero;
	return !id_is_zero(&set->slots[probe(set->slots, set->cap, id)]);
}

uint64_t cairn_chunk_set_count(const struct cairn_chunk_set *set)
{
	return set->count;
}

int cairn_chunk_set_next(const struct cairn_chunk_set *set, size_t *pos, struct cairn_id *ret)
{
	/* Positions 0..cap-1 are the slots; cap is the zero id. */
	for (size_t i = *pos; i < set->cap; i++) {
		if (!id_is_zero(&set->slots[i])) {
			*ret = set->slots[i];
			*pos = i + 1;
			return 1;
		}
	}
	if (*pos <= set->cap && set->has_zero) {
		*ret = zero_id;
		*pos = set->cap + 1;
		return 1;
	}
	*pos = set->cap + 1;
	return 0;
}

/* ---- the chunks of snapshots ---- */

static int check_sums(struct cairn_index *idx)
{
	if (!idx->store)
		return 0; /* tests and fuzzing only */
	for (uint32_t i = 0; i < idx->section_count; i++) {
		const struct snap_section *s = &idx->sections[i];
		if (index_checksum(idx->store, idx->base + s->offset, s->size) != s->checksum)
			return index_corrupt(idx, "the %s section does not match its checksum",
					     index_section_name(s->type));
	}
	return 0;
}

static int add_file(struct cairn_chunk_set *set, struct cairn_index *idx, uint64_t ino)
{
	struct cairn_index_file file;
	struct cairn_index_run run;

	int r = cairn_index_file(idx, ino, &file);
	if (r == -EISDIR || r == -EINVAL)
		return 0; /* not a regular file */
	if (r < 0)
		return r;
	for (uint32_t i = 0; i < file.run_count; i++) {
		r = cairn_index_run(idx, ino, i, &run);
		if (r == 0 && !run.hole)
			r = cairn_chunk_set_add(set, &run.chunk_id);
		if (r < 0)
			return r;
	}
	return 0;
}

int cairn_chunk_set_add_snapshot(struct cairn_chunk_set *set, struct cairn_index *idx)
{
	if (!idx->header)
		return -EBADF;
	int r = check_sums(idx);
	/* Every inode, not every name: hard links share one inode. */
	for (uint64_t ino = 1; r == 0 && ino <= idx->inode_count; ino++)
		r = add_file(set, idx, ino);
	return r;
}

static int add_named(struct cairn_chunk_set *set, const struct cairn_store *store, const char *name,
		     char *msg, size_t msg_size)
{
	struct cairn_index *idx = cairn_index_new();

	if (!idx)
		return -ENOMEM;
	int r = cairn_index_open(idx, store, name);
	if (r == -ENOENT)
		r = 0; /* removed since it was listed: it keeps nothing alive */
	else if (r == 0)
		r = cairn_chunk_set_add_snapshot(set, idx);
	if (r < 0 && r != -ENOMEM)
		cairn_format(msg, msg_size, "%s", cairn_index_error(idx));
	cairn_index_free(idx);
	return r;
}

int cairn_snapshot_chunk_set(const struct cairn_store *store, const char *except,
			     struct cairn_chunk_set **ret, char *msg, size_t msg_size)
{
	struct cairn_chunk_set *set = NULL;
	char **names = NULL;
	size_t count = 0;

	int r = cairn_snapshot_list(store, &names, &count);
	if (r < 0)
		cairn_format(msg, msg_size, "%s/snapshots: %s", cairn_store_path(store),
			     strerror(-r));
	else
		r = cairn_chunk_set_new(&set);
	for (size_t i = 0; r == 0 && i < count; i++)
		if (!except || strcmp(names[i], except) != 0)
			r = add_named(set, store, names[i], msg, msg_size);
	cairn_snapshot_names_free(names, count);
	if (r == -ENOMEM)
		cairn_format(msg, msg_size, "out of memory");
	if (r < 0) {
		cairn_chunk_set_free(set);
		return r;
	}
	*ret = set;
	return 0;
}
