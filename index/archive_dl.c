/* archive_dl.c: libarchive, loaded when an import first needs it rather
 * than when cairn starts. Linked directly, libarchive brings libxml2, ICU
 * (some 30 MB of libicudata), libstdc++, nettle, acl, lzma and bz2 into
 * every cairn process: about 40 ms of a cold `cairn mount` of a snapshot,
 * which never reads an archive. So cairn is built against libarchive's
 * headers only, and this file defines the libarchive functions index/
 * calls: each forwards to the function of the same name in libarchive.so.13,
 * opened once (store/curl_dl.c does the same for libcurl). The import calls
 * archive_dl_load first, to fail with a clear message where libarchive is
 * missing; a forwarder called before that loads the library itself (a test
 * that links libarchive for its fixtures calls into these, and libarchive's
 * own internal calls to its exported functions may too).
 *
 * The table lists each function as X(return type, name, (parameters),
 * (arguments)), V(...) for those returning void; the compiler checks every
 * line against archive.h. Regenerate it from the names that
 *   grep -ohE "\barchive_[a-z_0-9]+\(" index/[a-z]*.c | sort -u
 * prints when index/ starts calling another one.
 */
#include <archive.h>
#include <archive_entry.h>

#include "archive_dl.h"

#include <dlfcn.h>
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>

#define ARCHIVE_DL_SONAME "libarchive.so.13"

#define ARCHIVE_DL_FUNCTIONS(X)                                                                    \
	X(int, archive_entry_acl_count, (struct archive_entry * a, int b), (a, b))                 \
	X(const char *, archive_entry_fflags_text, (struct archive_entry * a), (a))                \
	X(la_int64_t, archive_entry_gid, (struct archive_entry * a), (a))                          \
	X(const char *, archive_entry_gname, (struct archive_entry * a), (a))                      \
	X(const char *, archive_entry_hardlink, (struct archive_entry * a), (a))                   \
	X(int, archive_entry_is_data_encrypted, (struct archive_entry * a), (a))                   \
	X(__LA_MODE_T, archive_entry_mode, (struct archive_entry * a), (a))                        \
	X(time_t, archive_entry_mtime, (struct archive_entry * a), (a))                            \
	X(int, archive_entry_mtime_is_set, (struct archive_entry * a), (a))                        \
	X(long, archive_entry_mtime_nsec, (struct archive_entry * a), (a))                         \
	X(const char *, archive_entry_pathname, (struct archive_entry * a), (a))                   \
	X(const char *, archive_entry_pathname_utf8, (struct archive_entry * a), (a))              \
	X(dev_t, archive_entry_rdevmajor, (struct archive_entry * a), (a))                         \
	X(dev_t, archive_entry_rdevminor, (struct archive_entry * a), (a))                         \
	X(la_int64_t, archive_entry_size, (struct archive_entry * a), (a))                         \
	X(int, archive_entry_size_is_set, (struct archive_entry * a), (a))                         \
	X(int, archive_entry_sparse_count, (struct archive_entry * a), (a))                        \
	X(const char *, archive_entry_symlink, (struct archive_entry * a), (a))                    \
	X(const char *, archive_entry_symlink_utf8, (struct archive_entry * a), (a))               \
	X(la_int64_t, archive_entry_uid, (struct archive_entry * a), (a))                          \
	X(const char *, archive_entry_uname, (struct archive_entry * a), (a))                      \
	X(int, archive_entry_xattr_next,                                                           \
	  (struct archive_entry * a, const char **b, const void **c, size_t *d), (a, b, c, d))     \
	X(int, archive_entry_xattr_reset, (struct archive_entry * a), (a))                         \
	X(int, archive_errno, (struct archive * a), (a))                                           \
	X(const char *, archive_error_string, (struct archive * a), (a))                           \
	X(la_int64_t, archive_filter_bytes, (struct archive * a, int b), (a, b))                   \
	X(int, archive_filter_count, (struct archive * a), (a))                                    \
	X(const char *, archive_filter_name, (struct archive * a, int b), (a, b))                  \
	X(int, archive_format, (struct archive * a), (a))                                          \
	X(int, archive_read_add_passphrase, (struct archive * a, const char *b), (a, b))           \
	X(int, archive_read_data_block,                                                            \
	  (struct archive * a, const void **b, size_t *c, la_int64_t *d), (a, b, c, d))            \
	X(int, archive_read_free, (struct archive * a), (a))                                       \
	X(struct archive *, archive_read_new, (void), ())                                          \
	X(int, archive_read_next_header, (struct archive * a, struct archive_entry * *b), (a, b))  \
	X(int, archive_read_open1, (struct archive * a), (a))                                      \
	X(int, archive_read_set_callback_data, (struct archive * a, void *b), (a, b))              \
	X(int, archive_read_set_options, (struct archive * a, const char *b), (a, b))              \
	X(int, archive_read_set_passphrase_callback,                                               \
	  (struct archive * a, void *b, archive_passphrase_callback *c), (a, b, c))                \
	X(int, archive_read_set_read_callback, (struct archive * a, archive_read_callback * b),    \
	  (a, b))                                                                                  \
	X(int, archive_read_set_seek_callback, (struct archive * a, archive_seek_callback * b),    \
	  (a, b))                                                                                  \
	X(int, archive_read_set_skip_callback, (struct archive * a, archive_skip_callback * b),    \
	  (a, b))                                                                                  \
	X(int, archive_read_support_filter_bzip2, (struct archive * a), (a))                       \
	X(int, archive_read_support_filter_compress, (struct archive * a), (a))                    \
	X(int, archive_read_support_filter_gzip, (struct archive * a), (a))                        \
	X(int, archive_read_support_filter_lz4, (struct archive * a), (a))                         \
	X(int, archive_read_support_filter_lzip, (struct archive * a), (a))                        \
	X(int, archive_read_support_filter_lzma, (struct archive * a), (a))                        \
	X(int, archive_read_support_filter_rpm, (struct archive * a), (a))                         \
	X(int, archive_read_support_filter_xz, (struct archive * a), (a))                          \
	X(int, archive_read_support_filter_zstd, (struct archive * a), (a))                        \
	X(int, archive_read_support_format_7zip, (struct archive * a), (a))                        \
	X(int, archive_read_support_format_ar, (struct archive * a), (a))                          \
	X(int, archive_read_support_format_cab, (struct archive * a), (a))                         \
	X(int, archive_read_support_format_cpio, (struct archive * a), (a))                        \
	X(int, archive_read_support_format_empty, (struct archive * a), (a))                       \
	X(int, archive_read_support_format_gnutar, (struct archive * a), (a))                      \
	X(int, archive_read_support_format_iso9660, (struct archive * a), (a))                     \
	X(int, archive_read_support_format_lha, (struct archive * a), (a))                         \
	X(int, archive_read_support_format_rar, (struct archive * a), (a))                         \
	X(int, archive_read_support_format_rar5, (struct archive * a), (a))                        \
	X(int, archive_read_support_format_raw, (struct archive * a), (a))                         \
	X(int, archive_read_support_format_tar, (struct archive * a), (a))                         \
	X(int, archive_read_support_format_xar, (struct archive * a), (a))                         \
	X(int, archive_read_support_format_zip, (struct archive * a), (a))

#define ARCHIVE_DL_VOID_FUNCTIONS(V)                                                               \
	V(archive_entry_copy_hardlink, (struct archive_entry * a, const char *b), (a, b))          \
	V(archive_entry_copy_pathname, (struct archive_entry * a, const char *b), (a, b))          \
	V(archive_entry_set_filetype, (struct archive_entry * a, unsigned int b), (a, b))          \
	V(archive_entry_set_perm, (struct archive_entry * a, __LA_MODE_T b), (a, b))               \
	V(archive_entry_unset_mtime, (struct archive_entry * a), (a))

#define ARCHIVE_DL_POINTER(ret, name, params, args) static ret(*dl_##name) params;
#define ARCHIVE_DL_VOID_POINTER(name, params, args) static void(*dl_##name) params;
ARCHIVE_DL_FUNCTIONS(ARCHIVE_DL_POINTER)
ARCHIVE_DL_VOID_FUNCTIONS(ARCHIVE_DL_VOID_POINTER)
static void (*dl_archive_set_error)(struct archive *, int, const char *, ...);

static pthread_once_t load_once = PTHREAD_ONCE_INIT;
static atomic_bool loaded;   /* every pointer above is set */
static char load_error[256]; /* set once, by load, when it fails */

#define ARCHIVE_DL_RESOLVE(name)                                                                   \
	if (!(*(void **)&dl_##name = dlsym(lib, #name))) {                                         \
		snprintf(load_error, sizeof(load_error),                                           \
			 ARCHIVE_DL_SONAME " lacks %s (libarchive 3.6 or newer is needed)",        \
			 #name);                                                                   \
		return;                                                                            \
	}
#define ARCHIVE_DL_RESOLVE_X(ret, name, params, args) ARCHIVE_DL_RESOLVE(name)
#define ARCHIVE_DL_RESOLVE_V(name, params, args)      ARCHIVE_DL_RESOLVE(name)

static void load(void)
{
	void *lib = dlopen(ARCHIVE_DL_SONAME, RTLD_NOW | RTLD_LOCAL);

	if (!lib) {
		snprintf(load_error, sizeof(load_error),
			 "reading archives needs libarchive (" ARCHIVE_DL_SONAME "): %s",
			 dlerror());
		return;
	}
	ARCHIVE_DL_FUNCTIONS(ARCHIVE_DL_RESOLVE_X)
	ARCHIVE_DL_VOID_FUNCTIONS(ARCHIVE_DL_RESOLVE_V)
	ARCHIVE_DL_RESOLVE(archive_set_error)
	atomic_store_explicit(&loaded, true, memory_order_release);
}

int archive_dl_load(char *why, size_t why_size)
{
	pthread_once(&load_once, load);
	if (load_error[0]) {
		snprintf(why, why_size, "%s", load_error);
		return -ENOSYS;
	}
	return 0;
}

/* A forwarder called before archive_dl_load: load now, or stop (there is
 * no error to return through libarchive's own signatures). */
static void need(void)
{
	if (atomic_load_explicit(&loaded, memory_order_acquire))
		return;
	pthread_once(&load_once, load);
	if (load_error[0]) {
		fprintf(stderr, "cairn: %s\n", load_error);
		abort();
	}
}

/* ---- the forwarders ---- */

#define ARCHIVE_DL_FORWARD(ret, name, params, args)                                                \
	ret name params                                                                            \
	{                                                                                          \
		need();                                                                            \
		return dl_##name args;                                                             \
	}
#define ARCHIVE_DL_VOID_FORWARD(name, params, args)                                                \
	void name params                                                                           \
	{                                                                                          \
		need();                                                                            \
		dl_##name args;                                                                    \
	}
ARCHIVE_DL_FUNCTIONS(ARCHIVE_DL_FORWARD)
ARCHIVE_DL_VOID_FUNCTIONS(ARCHIVE_DL_VOID_FORWARD)

/* The one variadic function: formatted here, handed over as "%s". */
void archive_set_error(struct archive *a, int error, const char *fmt, ...)
{
	char message[1024];
	va_list args;

	need();
	va_start(args, fmt);
	vsnprintf(message, sizeof(message), fmt, args);
	va_end(args);
	dl_archive_set_error(a, error, "%s", message);
}
