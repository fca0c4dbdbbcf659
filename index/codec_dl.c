/* codec_dl.c: zlib and liblz4, opened when an import first needs them
 * rather than when cairn starts. Only the import uses them (a gzip or lz4
 * layer under the archive, the CRCs of RAR volumes), yet linked directly
 * they are loaded by every cairn process: about 1 ms of a cold `cairn
 * mount` (archive_dl.c does the same for libarchive, for more). index/ is
 * built against their headers only; this file defines the few functions it
 * calls, each forwarding to the one of the same name in the library, opened
 * once. The layers call codec_dl_load first, to fail with a clear message
 * where a library is missing; a forwarder called before that loads the
 * library itself, and stops the process with a message if it cannot.
 *
 * X(library, return type, name, (parameters), (arguments)); the compiler
 * checks every line against zlib.h and lz4frame.h.
 */
#include <lz4frame.h>
#include <zlib.h>

#include "codec_dl.h"
#include "dl_need.h"

#include <dlfcn.h>
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>

#define CODEC_DL_FUNCTIONS(X)                                                                      \
	X(ZLIB, int, inflateInit2_, (z_streamp a, int b, const char *c, int d), (a, b, c, d))      \
	X(ZLIB, int, inflate, (z_streamp a, int b), (a, b))                                        \
	X(ZLIB, int, inflateReset, (z_streamp a), (a))                                             \
	X(ZLIB, int, inflateEnd, (z_streamp a), (a))                                               \
	X(ZLIB, uLong, crc32, (uLong a, const Bytef *b, uInt c), (a, b, c))                        \
	X(ZLIB, uLong, crc32_combine, (uLong a, uLong b, z_off_t c), (a, b, c))                    \
	X(LZ4, unsigned, LZ4F_isError, (LZ4F_errorCode_t a), (a))                                  \
	X(LZ4, const char *, LZ4F_getErrorName, (LZ4F_errorCode_t a), (a))                         \
	X(LZ4, LZ4F_errorCode_t, LZ4F_createDecompressionContext, (LZ4F_dctx * *a, unsigned b),    \
	  (a, b))                                                                                  \
	X(LZ4, LZ4F_errorCode_t, LZ4F_freeDecompressionContext, (LZ4F_dctx * a), (a))              \
	X(LZ4, size_t, LZ4F_decompress,                                                            \
	  (LZ4F_dctx * a, void *b, size_t *c, const void *d, size_t *e,                            \
	   const LZ4F_decompressOptions_t *f),                                                     \
	  (a, b, c, d, e, f))

enum { ZLIB, LZ4, LIBS };

static const char *const sonames[LIBS] = {"libz.so.1", "liblz4.so.1"};
static const char *const purposes[LIBS] = {"gzip layers and RAR checksums", "lz4 layers"};

#define CODEC_DL_POINTER(lib, ret, name, params, args) static ret(*dl_##name) params;
CODEC_DL_FUNCTIONS(CODEC_DL_POINTER)

static pthread_once_t load_once[LIBS] = {PTHREAD_ONCE_INIT, PTHREAD_ONCE_INIT};
static atomic_bool loaded[LIBS];   /* every pointer of the library is set */
static char load_error[LIBS][256]; /* set once, by its load, when it fails */

#define CODEC_DL_RESOLVE(lib, ret, name, params, args)                                             \
	if (which == lib && !(*(void **)&dl_##name = dlsym(handle, #name))) {                      \
		snprintf(load_error[lib], sizeof(load_error[lib]), "%s lacks %s", sonames[lib],    \
			 #name);                                                                   \
		return;                                                                            \
	}

static void load(int which)
{
	void *handle = dlopen(sonames[which], RTLD_NOW | RTLD_LOCAL);

	if (!handle) {
		snprintf(load_error[which], sizeof(load_error[which]), "%s need %s: %s",
			 purposes[which], sonames[which], dlerror());
		return;
	}
	CODEC_DL_FUNCTIONS(CODEC_DL_RESOLVE)
	atomic_store_explicit(&loaded[which], true, memory_order_release);
}

static void load_zlib(void)
{
	load(ZLIB);
}

static void load_lz4(void)
{
	load(LZ4);
}

static void (*const loaders[LIBS])(void) = {load_zlib, load_lz4};

static int load_lib(int which, char *why, size_t why_size)
{
	pthread_once(&load_once[which], loaders[which]);
	if (load_error[which][0]) {
		snprintf(why, why_size, "%s", load_error[which]);
		return -ENOSYS;
	}
	return 0;
}

int codec_dl_zlib(char *why, size_t why_size)
{
	return load_lib(ZLIB, why, why_size);
}

int codec_dl_lz4(char *why, size_t why_size)
{
	return load_lib(LZ4, why, why_size);
}

/* A forwarder called before its library was loaded: load now, or stop. */
static void need(int which)
{
	cairn_dl_need(&load_once[which], loaders[which], &loaded[which], load_error[which]);
}

/* ---- the forwarders ---- */

#define CODEC_DL_FORWARD(lib, ret, name, params, args)                                             \
	ret name params                                                                            \
	{                                                                                          \
		need(lib);                                                                         \
		return dl_##name args;                                                             \
	}
CODEC_DL_FUNCTIONS(CODEC_DL_FORWARD)
