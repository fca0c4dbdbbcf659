/* zstd_dl.c: libzstd, opened when a chunk is first compressed or decoded
 * rather than when cairn starts. Linked directly, the library was loaded
 * by every cairn process before main: 1.6 ms of a cold start here, on the
 * path of a cold `cairn mount`, whose daemon decodes nothing before the
 * first READ. store/ is built against zstd.h only; this file defines the
 * few functions it calls, each forwarding to the one of the same name in
 * libzstd.so.1, opened once (as index/codec_dl.c does for zlib and liblz4).
 * The library is cairn's own codec, a dependency of its package: one that
 * cannot be opened stops the process with a message, as the dynamic linker
 * would have stopped it at start.
 *
 * X(return type, name, (parameters), (arguments)); the compiler checks
 * every line against zstd.h.
 */
#include <zstd.h>

#include "dl_need.h"

#include <dlfcn.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>

#define ZSTD_DL_FUNCTIONS(X)                                                                       \
	X(size_t, ZSTD_compressBound, (size_t a), (a))                                             \
	X(unsigned, ZSTD_isError, (size_t a), (a))                                                 \
	X(ZSTD_CCtx *, ZSTD_createCCtx, (void), ())                                                \
	X(size_t, ZSTD_freeCCtx, (ZSTD_CCtx * a), (a))                                             \
	X(ZSTD_DCtx *, ZSTD_createDCtx, (void), ())                                                \
	X(size_t, ZSTD_freeDCtx, (ZSTD_DCtx * a), (a))                                             \
	X(size_t, ZSTD_compressCCtx,                                                               \
	  (ZSTD_CCtx * a, void *b, size_t c, const void *d, size_t e, int f), (a, b, c, d, e, f))  \
	X(size_t, ZSTD_compress2, (ZSTD_CCtx * a, void *b, size_t c, const void *d, size_t e),     \
	  (a, b, c, d, e))                                                                         \
	X(size_t, ZSTD_decompressDCtx,                                                             \
	  (ZSTD_DCtx * a, void *b, size_t c, const void *d, size_t e), (a, b, c, d, e))            \
	X(size_t, ZSTD_CCtx_reset, (ZSTD_CCtx * a, ZSTD_ResetDirective b), (a, b))                 \
	X(size_t, ZSTD_DCtx_reset, (ZSTD_DCtx * a, ZSTD_ResetDirective b), (a, b))                 \
	X(size_t, ZSTD_CCtx_setParameter, (ZSTD_CCtx * a, ZSTD_cParameter b, int c), (a, b, c))    \
	X(size_t, ZSTD_CCtx_refPrefix, (ZSTD_CCtx * a, const void *b, size_t c), (a, b, c))        \
	X(size_t, ZSTD_DCtx_refPrefix, (ZSTD_DCtx * a, const void *b, size_t c), (a, b, c))

#define SONAME "libzstd.so.1"

#define ZSTD_DL_POINTER(ret, name, params, args) static ret(*dl_##name) params;
ZSTD_DL_FUNCTIONS(ZSTD_DL_POINTER)

static pthread_once_t load_once = PTHREAD_ONCE_INIT;
static atomic_bool loaded;   /* every pointer is set */
static char load_error[256]; /* set once, by the load, when it fails */

#define ZSTD_DL_RESOLVE(ret, name, params, args)                                                   \
	if (!(*(void **)&dl_##name = dlsym(handle, #name))) {                                      \
		snprintf(load_error, sizeof(load_error), "%s lacks %s", SONAME, #name);            \
		return;                                                                            \
	}

static void load(void)
{
	void *handle = dlopen(SONAME, RTLD_NOW | RTLD_LOCAL);

	if (!handle) {
		snprintf(load_error, sizeof(load_error), "compression needs %s: %s", SONAME,
			 dlerror());
		return;
	}
	ZSTD_DL_FUNCTIONS(ZSTD_DL_RESOLVE)
	atomic_store_explicit(&loaded, true, memory_order_release);
}

/* Before a forwarder's first call: load now, or stop. */
static void need(void)
{
	cairn_dl_need(&load_once, load, &loaded, load_error);
}

#define ZSTD_DL_FORWARD(ret, name, params, args)                                                   \
	ret name params                                                                            \
	{                                                                                          \
		need();                                                                            \
		return dl_##name args;                                                             \
	}
ZSTD_DL_FUNCTIONS(ZSTD_DL_FORWARD)
