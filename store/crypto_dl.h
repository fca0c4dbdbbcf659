/* crypto_dl.h: OpenSSL's libcrypto is opened on first use (crypto_dl.c
 * says why). Internal to store/. */
#ifndef CAIRN_CRYPTO_DL_H
#define CAIRN_CRYPTO_DL_H

#include <stddef.h>

/* Opens libcrypto.so.3, once per process; every later call returns the
 * first one's answer. Returns 0, or -ENOSYS with why saying what is
 * missing. Call it before EVP_Digest, EVP_sha256 or HMAC. */
int crypto_dl_load(char *why, size_t why_size);

#endif
