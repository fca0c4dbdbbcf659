/* chunker.c: content-defined chunking with a FastCDC-style gear hash and
 * normalised chunking. Cut points are a function of the bytes alone (the
 * state carries across calls), so the same content chunks the same way in
 * every archive and every version, which is what makes dedup work.
 *
 * The gear table and masks are part of the store format (docs/FORMAT.md):
 * changing them changes every cut point.
 */
#include "store_internal.h"

#include <string.h>

#define GEAR_SEED 0x636169726e676561ull /* "cairngea" */

static uint64_t splitmix64(uint64_t *state)
{
	uint64_t z = (*state += 0x9e3779b97f4a7c15ull);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

static unsigned log2_floor(uint32_t value)
{
	return 31u - (unsigned)__builtin_clz(value);
}

/* A mask of the top `bits` bits: a gear hash's high bits depend on the last
 * 64 bytes, its low bits on only the last few. */
static uint64_t top_mask(unsigned bits)
{
	return bits == 0 ? 0 : ~0ull << (64 - bits);
}

void cairn_chunker_init(struct cairn_chunker *chunker, const struct cairn_store_params *params)
{
	uint64_t state = GEAR_SEED;
	unsigned bits = log2_floor(params->chunk_avg);

	memset(chunker, 0, sizeof(*chunker));
	for (size_t i = 0; i < 256; i++)
		chunker->gear[i] = splitmix64(&state);
	/* Normalised chunking, level 2: four times harder to cut before the
	 * average, four times easier after it, which narrows the spread. */
	chunker->mask_small = top_mask(bits + 2);
	chunker->mask_large = top_mask(bits > 2 ? bits - 2 : 1);
	chunker->min = params->chunk_min;
	chunker->avg = params->chunk_avg;
	chunker->max = params->chunk_max;
}

void cairn_chunker_reset(struct cairn_chunker *chunker)
{
	chunker->len = 0;
	chunker->hash = 0;
}

static inline size_t min_size(size_t a, size_t b)
{
	return a < b ? a : b;
}

size_t cairn_chunker_scan(struct cairn_chunker *chunker, const uint8_t *data, size_t size,
			  int *ret_cut)
{
	const uint64_t *gear = chunker->gear;
	const uint64_t mask_small = chunker->mask_small, mask_large = chunker->mask_large;
	const uint32_t start = chunker->len;
	uint64_t hash = chunker->hash;
	size_t i = 0;

	/* No cut can fall below the minimum, so those bytes are not hashed. */
	if (start < chunker->min)
		i = min_size(size, chunker->min - start);

	size_t limit = start < chunker->avg ? min_size(size, chunker->avg - start) : 0;
	for (; i < limit; i++) {
		hash = (hash << 1) + gear[data[i]];
		if (!(hash & mask_small)) {
			i++;
			goto cut;
		}
	}
	limit = min_size(size, chunker->max - start);
	for (; i < limit; i++) {
		hash = (hash << 1) + gear[data[i]];
		if (!(hash & mask_large)) {
			i++;
			goto cut;
		}
	}
	if (start + i == chunker->max)
		goto cut;

	chunker->len = start + (uint32_t)i;
	chunker->hash = hash;
	*ret_cut = 0;
	return i;
cut:
	cairn_chunker_reset(chunker);
	*ret_cut = 1;
	return i;
}
