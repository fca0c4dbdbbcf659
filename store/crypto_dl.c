/* crypto_dl.c: OpenSSL's libcrypto, loaded when a store whose chunk ids are
 * HMAC-SHA-256 (`cairn init --ids sha256`) is opened rather than when cairn
 * starts. Linked, its 4.7 MB were mapped and relocated, and its start-up
 * read openssl.cnf, in every cairn process: about 3 ms of a cold mount of
 * an XXH3 store, which never calls it. So cairn is built against its
 * headers only, and this file defines the functions store/hash.c and the
 * S3 client (store/s3_req.c: SHA-256 and MD5 of bodies sent) call, each forwarding to
 * libcrypto.so.3 (store/curl_dl.c does the same for libcurl). Nothing may call them before
 * crypto_dl_load has succeeded.
 */
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "crypto_dl.h"

#include <dlfcn.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>

#define CRYPTO_DL_SONAME "libcrypto.so.3"

/* The functions, as X(return type, name, parameters). */
#define CRYPTO_DL_FUNCTIONS(X)                                                                     \
	X(int, EVP_Digest,                                                                         \
	  (const void *, size_t, unsigned char *, unsigned int *, const EVP_MD *, ENGINE *))       \
	X(const EVP_MD *, EVP_sha256, (void))                                                      \
	X(const EVP_MD *, EVP_md5, (void))                                                         \
	X(int, EVP_EncodeBlock, (unsigned char *, const unsigned char *, int))                     \
	X(unsigned char *, HMAC,                                                                   \
	  (const EVP_MD *, const void *, int, const unsigned char *, size_t, unsigned char *,      \
	   unsigned int *))

#define CRYPTO_DL_POINTER(ret, name, params) static ret(*dl_##name) params;
CRYPTO_DL_FUNCTIONS(CRYPTO_DL_POINTER)

static pthread_once_t load_once = PTHREAD_ONCE_INIT;
static char load_error[256]; /* set once, by load, when it fails */

static void load(void)
{
	void *lib = dlopen(CRYPTO_DL_SONAME, RTLD_NOW | RTLD_LOCAL);

	if (!lib) {
		snprintf(load_error, sizeof(load_error),
			 "sha256 chunk ids and remote stores need OpenSSL (" CRYPTO_DL_SONAME
			 "): %s",
			 dlerror());
		return;
	}
#define CRYPTO_DL_RESOLVE(ret, name, params)                                                       \
	if (!(*(void **)&dl_##name = dlsym(lib, #name))) {                                         \
		snprintf(load_error, sizeof(load_error),                                           \
			 CRYPTO_DL_SONAME " lacks %s (OpenSSL 3 is needed)", #name);               \
		return;                                                                            \
	}
	CRYPTO_DL_FUNCTIONS(CRYPTO_DL_RESOLVE)
}

int crypto_dl_load(char *why, size_t why_size)
{
	pthread_once(&load_once, load);
	if (load_error[0]) {
		snprintf(why, why_size, "%s", load_error);
		return -ENOSYS;
	}
	return 0;
}

/* ---- the forwarders ---- */

int EVP_Digest(const void *data, size_t count, unsigned char *md, unsigned int *size,
	       const EVP_MD *type, ENGINE *impl)
{
	return dl_EVP_Digest(data, count, md, size, type, impl);
}

const EVP_MD *EVP_sha256(void)
{
	return dl_EVP_sha256();
}

const EVP_MD *EVP_md5(void)
{
	return dl_EVP_md5();
}

int EVP_EncodeBlock(unsigned char *out, const unsigned char *in, int size)
{
	return dl_EVP_EncodeBlock(out, in, size);
}

unsigned char *HMAC(const EVP_MD *evp_md, const void *key, int key_len, const unsigned char *data,
		    size_t data_len, unsigned char *md, unsigned int *md_len)
{
	return dl_HMAC(evp_md, key, key_len, data, data_len, md, md_len);
}
