/* hash.c: chunk ids, file ids and checksums. All ids are keyed by secrets
 * derived from the store's random key, so ids of one store say nothing about
 * another's content: file ids are XXH3-128, chunk ids XXH3-128 or, in a
 * store made for it, HMAC-SHA-256 truncated to 128 bits (OpenSSL), which
 * resists crafted collisions; checksums of metadata are plain XXH3-64.
 * xxhash is compiled inline here for speed; no other file includes it.
 */
#define XXH_INLINE_ALL
#include <xxhash.h>

#include "crypto_dl.h"
#include "store_internal.h"

#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdio.h>
#include <string.h>

_Static_assert(sizeof(XXH3_state_t) <= sizeof(struct cairn_file_hasher), "hasher state fits");
_Static_assert(_Alignof(XXH3_state_t) <= _Alignof(struct cairn_file_hasher), "hasher alignment");
_Static_assert(sizeof(XXH3_state_t) <= sizeof(struct store_checksum_stream), "stream fits");
_Static_assert(SECRET_SIZE >= XXH3_SECRET_SIZE_MIN, "secret size");

uint64_t store_checksum(const void *data, size_t size)
{
	return XXH3_64bits(data, size);
}

void store_hash128_hex(const void *data, size_t size, char out[33])
{
	XXH128_hash_t hash = XXH3_128bits(data, size);

	snprintf(out, 33, "%016llx%016llx", (unsigned long long)hash.high64,
		 (unsigned long long)hash.low64);
}

void store_checksum_stream_init(struct store_checksum_stream *stream)
{
	XXH3_state_t *state = (XXH3_state_t *)stream->opaque;

	XXH3_INITSTATE(state);
	XXH3_64bits_reset(state);
}

void store_checksum_stream_update(struct store_checksum_stream *stream, const void *data,
				  size_t size)
{
	XXH3_64bits_update((XXH3_state_t *)stream->opaque, data, size);
}

uint64_t store_checksum_stream_final(const struct store_checksum_stream *stream)
{
	return XXH3_64bits_digest((const XXH3_state_t *)stream->opaque);
}

static void derive_secret(const uint8_t key[KEY_SIZE], const char *domain, unsigned variant,
			  uint8_t out[SECRET_SIZE])
{
	uint8_t seed[KEY_SIZE + 16] = {0};

	memcpy(seed, key, KEY_SIZE);
	strncpy((char *)seed + KEY_SIZE, domain, 12);
	seed[KEY_SIZE + 15] = (uint8_t)variant;
	XXH3_generateSecret(out, SECRET_SIZE, seed, sizeof(seed));
}

/* CAIRN_ID_SHA256's key of a variant: SHA-256 of the store's key, the
 * domain "cairn-chunk-v1" and the variant byte. */
static void derive_mac_key(const uint8_t key[KEY_SIZE], unsigned variant, uint8_t out[32])
{
	static const char domain[14] = "cairn-chunk-v1";
	uint8_t seed[KEY_SIZE + sizeof(domain) + 1];
	unsigned int len = 32;

	memcpy(seed, key, KEY_SIZE);
	memcpy(seed + KEY_SIZE, domain, sizeof(domain));
	seed[sizeof(seed) - 1] = (uint8_t)variant;
	if (!EVP_Digest(seed, sizeof(seed), out, &len, EVP_sha256(), NULL))
		abort(); /* only when OpenSSL is broken: no id could be made */
}

int store_derive_secrets(struct cairn_store *store)
{
	for (unsigned v = 0; v < ID_VARIANTS; v++)
		derive_secret(store->hash_key, "chunk", v, store->chunk_secret[v]);
	derive_secret(store->hash_key, "file", 0, store->file_secret);
	/* Only these stores need OpenSSL, opened here (crypto_dl.c says why). */
	if (store->params.id_hash != CAIRN_ID_SHA256)
		return 0;
	char why[256];
	int r = crypto_dl_load(why, sizeof(why));
	if (r < 0) {
		store_set_error(store, "%s: %s", store->path, why);
		return r;
	}
	for (unsigned v = 0; v < ID_VARIANTS; v++)
		derive_mac_key(store->hash_key, v, store->chunk_mac_key[v]);
	return 0;
}

static void mac_id(const uint8_t key[32], const void *data, size_t size, struct cairn_id *ret)
{
	uint8_t mac[32];
	unsigned int len = sizeof(mac);

	if (!HMAC(EVP_sha256(), key, 32, data, size, mac, &len))
		abort(); /* only when OpenSSL is broken: no id could be made */
	memcpy(ret->bytes, mac, CAIRN_ID_SIZE);
}

static void id_from_hash(XXH128_hash_t hash, struct cairn_id *ret)
{
	XXH128_canonical_t canonical;

	XXH128_canonicalFromHash(&canonical, hash);
	memcpy(ret->bytes, canonical.digest, CAIRN_ID_SIZE);
}

void store_chunk_id(const struct cairn_store *store, const void *data, size_t size,
		    unsigned variant, struct cairn_id *ret)
{
	if (store->id_fn) {
		store->id_fn(store, data, size, variant, ret);
		return;
	}
	if (store->params.id_hash == CAIRN_ID_SHA256) {
		mac_id(store->chunk_mac_key[variant], data, size, ret);
		return;
	}
	id_from_hash(XXH3_128bits_withSecret(data, size, store->chunk_secret[variant], SECRET_SIZE),
		     ret);
}

void cairn_store_chunk_id(const struct cairn_store *store, const void *data, size_t size,
			  struct cairn_id *ret)
{
	store_chunk_id(store, data, size, 0, ret);
}

void cairn_file_hasher_init(struct cairn_file_hasher *hasher, const struct cairn_store *store)
{
	XXH3_state_t *state = (XXH3_state_t *)hasher->opaque;

	XXH3_INITSTATE(state);
	XXH3_128bits_reset_withSecret(state, store->file_secret, SECRET_SIZE);
}

void cairn_file_hasher_update(struct cairn_file_hasher *hasher, const void *data, size_t size)
{
	XXH3_128bits_update((XXH3_state_t *)hasher->opaque, data, size);
}

void cairn_file_hasher_final(const struct cairn_file_hasher *hasher, struct cairn_id *ret)
{
	id_from_hash(XXH3_128bits_digest((const XXH3_state_t *)hasher->opaque), ret);
}

void cairn_file_id_init(struct cairn_file_hasher *hasher, const struct cairn_store *store)
{
	static const char domain[16] = "cairn-file-v2";

	cairn_file_hasher_init(hasher, store);
	cairn_file_hasher_update(hasher, domain, sizeof(domain));
}

void cairn_file_id_add_run(struct cairn_file_hasher *hasher, const struct cairn_id *chunk_id,
			   uint64_t end)
{
	uint8_t run[CAIRN_ID_SIZE + 8];

	memcpy(run, chunk_id->bytes, CAIRN_ID_SIZE);
	for (unsigned i = 0; i < 8; i++)
		run[CAIRN_ID_SIZE + i] = (uint8_t)(end >> (8 * i));
	cairn_file_hasher_update(hasher, run, sizeof(run));
}

void cairn_id_to_hex(const struct cairn_id *id, char out[CAIRN_ID_HEX + 1])
{
	static const char digits[] = "0123456789abcdef";

	for (size_t i = 0; i < CAIRN_ID_SIZE; i++) {
		out[2 * i] = digits[id->bytes[i] >> 4];
		out[2 * i + 1] = digits[id->bytes[i] & 15];
	}
	out[CAIRN_ID_HEX] = '\0';
}

static int hex_value(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

int cairn_id_from_hex(const char *hex, struct cairn_id *ret)
{
	struct cairn_id id;

	if (strlen(hex) != CAIRN_ID_HEX)
		return -EINVAL;
	for (size_t i = 0; i < CAIRN_ID_SIZE; i++) {
		int hi = hex_value(hex[2 * i]), lo = hex_value(hex[2 * i + 1]);
		if (hi < 0 || lo < 0)
			return -EINVAL;
		id.bytes[i] = (uint8_t)(hi << 4 | lo);
	}
	*ret = id;
	return 0;
}

int cairn_id_compare(const struct cairn_id *a, const struct cairn_id *b)
{
	return memcmp(a->bytes, b->bytes, CAIRN_ID_SIZE);
}
