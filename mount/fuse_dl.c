/* fuse_dl.c: libfuse, opened by the mount's daemon beside its first reads
 * of the store rather than by every cairn process before main. Linked
 * directly, libfuse (with liburing and libnuma, whose constructor reads
 * sysfs) was loaded by the `cairn mount` command itself, which never calls
 * it, and again on the daemon's path before its first read: 3.7 ms of a
 * cold mount here (docs/BENCHMARKS.md, "Mount start"). mount/ is built
 * against libfuse's headers only; this file defines the functions it
 * calls, each forwarding to the one of the same name in the library meson
 * found (CAIRN_FUSE_SONAME, first from the directory it was found in, as
 * the build's run path would, then wherever the dynamic linker looks).
 *
 * fuse_dl_start opens it on a thread of its own while the daemon opens the
 * snapshot and the blob cache; fuse_dl_wait, before the session starts,
 * waits for it and says why it failed (fuse_dl_join, where the setup
 * failed, only waits for a load already started). A forwarder called
 * first opens the library itself; one that finds none stops the process
 * with a message, as the dynamic linker would have at start.
 *
 * X(return type, name, (parameters), (arguments)), V(name, (parameters),
 * (arguments)) for those that return nothing: the compiler checks each
 * line against the headers. dlsym finds a name's default version, the one
 * a link against the same library would have bound (fuse_session_loop_mt
 * has three: FUSE_3.12's is the default).
 */
#include "mount_fuse.h"

#include "dl_need.h"

#include <dlfcn.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>

/* Since 3.17 fuse_session_new is an inline function of the header that
 * passes the header's version to fuse_session_new_versioned. */
#if FUSE_VERSION >= FUSE_MAKE_VERSION(3, 17)
#define FUSE_DL_SESSION_NEW(X, V)                                                                  \
	X(struct fuse_session *, fuse_session_new_versioned,                                       \
	  (struct fuse_args * a, const struct fuse_lowlevel_ops *b, size_t c,                      \
	   struct libfuse_version *d, void *e),                                                    \
	  (a, b, c, d, e))
#else
#define FUSE_DL_SESSION_NEW(X, V)                                                                  \
	X(struct fuse_session *, fuse_session_new,                                                 \
	  (struct fuse_args * a, const struct fuse_lowlevel_ops *b, size_t c, void *d),            \
	  (a, b, c, d))
#endif

/* A libfuse built without symbol versions names its 3.12 loop apart. */
#ifdef LIBFUSE_BUILT_WITH_VERSIONED_SYMBOLS
#define FUSE_DL_LOOP(X, V)                                                                         \
	X(int, fuse_session_loop_mt, (struct fuse_session * a, struct fuse_loop_config * b), (a, b))
#else
#define FUSE_DL_LOOP(X, V)                                                                         \
	X(int, fuse_session_loop_mt_312, (struct fuse_session * a, struct fuse_loop_config * b),   \
	  (a, b))
#endif

/* passthrough.c and transport.c, which meson builds from the same
 * versions on. */
#if FUSE_VERSION >= FUSE_MAKE_VERSION(3, 17)
#define FUSE_DL_PASSTHROUGH(X, V)                                                                  \
	X(int, fuse_passthrough_open, (fuse_req_t a, int b), (a, b))                               \
	X(int, fuse_passthrough_close, (fuse_req_t a, int b), (a, b))                              \
	X(bool, fuse_set_feature_flag, (struct fuse_conn_info * a, uint64_t b), (a, b))            \
	V(fuse_unset_feature_flag, (struct fuse_conn_info * a, uint64_t b), (a, b))
#else
#define FUSE_DL_PASSTHROUGH(X, V)
#endif
#if FUSE_VERSION >= FUSE_MAKE_VERSION(3, 18)
#define FUSE_DL_URING(X, V)                                                                        \
	X(bool, fuse_req_is_uring, (fuse_req_t a), (a))                                            \
	X(int, fuse_req_get_payload, (fuse_req_t a, char **b, size_t *c, void **d), (a, b, c, d))
#else
#define FUSE_DL_URING(X, V)
#endif

#define FUSE_DL_FUNCTIONS(X, V)                                                                    \
	FUSE_DL_SESSION_NEW(X, V)                                                                  \
	FUSE_DL_LOOP(X, V)                                                                         \
	FUSE_DL_PASSTHROUGH(X, V)                                                                  \
	FUSE_DL_URING(X, V)                                                                        \
	X(const char *, fuse_pkgversion, (void), ())                                               \
	V(fuse_opt_free_args, (struct fuse_args * a), (a))                                         \
	X(int, fuse_set_signal_handlers, (struct fuse_session * a), (a))                           \
	V(fuse_remove_signal_handlers, (struct fuse_session * a), (a))                             \
	X(int, fuse_session_mount, (struct fuse_session * a, const char *b), (a, b))               \
	V(fuse_session_unmount, (struct fuse_session * a), (a))                                    \
	V(fuse_session_destroy, (struct fuse_session * a), (a))                                    \
	X(struct fuse_loop_config *, fuse_loop_cfg_create, (void), ())                             \
	V(fuse_loop_cfg_destroy, (struct fuse_loop_config * a), (a))                               \
	V(fuse_loop_cfg_set_max_threads, (struct fuse_loop_config * a, unsigned int b), (a, b))    \
	V(fuse_loop_cfg_set_idle_threads, (struct fuse_loop_config * a, unsigned int b), (a, b))   \
	X(int, fuse_lowlevel_notify_inval_inode,                                                   \
	  (struct fuse_session * a, fuse_ino_t b, off_t c, off_t d), (a, b, c, d))                 \
	X(int, fuse_lowlevel_notify_inval_entry,                                                   \
	  (struct fuse_session * a, fuse_ino_t b, const char *c, size_t d), (a, b, c, d))          \
	X(void *, fuse_req_userdata, (fuse_req_t a), (a))                                          \
	X(int, fuse_reply_err, (fuse_req_t a, int b), (a, b))                                      \
	V(fuse_reply_none, (fuse_req_t a), (a))                                                    \
	X(int, fuse_reply_entry, (fuse_req_t a, const struct fuse_entry_param *b), (a, b))         \
	X(int, fuse_reply_attr, (fuse_req_t a, const struct stat *b, double c), (a, b, c))         \
	X(int, fuse_reply_readlink, (fuse_req_t a, const char *b), (a, b))                         \
	X(int, fuse_reply_open, (fuse_req_t a, const struct fuse_file_info *b), (a, b))            \
	X(int, fuse_reply_buf, (fuse_req_t a, const char *b, size_t c), (a, b, c))                 \
	X(int, fuse_reply_statfs, (fuse_req_t a, const struct statvfs *b), (a, b))                 \
	X(int, fuse_reply_xattr, (fuse_req_t a, size_t b), (a, b))                                 \
	X(int, fuse_reply_lseek, (fuse_req_t a, off_t b), (a, b))                                  \
	X(size_t, fuse_add_direntry,                                                               \
	  (fuse_req_t a, char *b, size_t c, const char *d, const struct stat *e, off_t f),         \
	  (a, b, c, d, e, f))                                                                      \
	X(size_t, fuse_add_direntry_plus,                                                          \
	  (fuse_req_t a, char *b, size_t c, const char *d, const struct fuse_entry_param *e,       \
	   off_t f),                                                                               \
	  (a, b, c, d, e, f))

#define FUSE_DL_POINTER(ret, name, params, args) static ret(*dl_##name) params;
#define FUSE_DL_POINTER_VOID(name, params, args) FUSE_DL_POINTER(void, name, params, args)
FUSE_DL_FUNCTIONS(FUSE_DL_POINTER, FUSE_DL_POINTER_VOID)

static pthread_once_t load_once = PTHREAD_ONCE_INIT;
static atomic_bool loaded;   /* every pointer is set */
static char load_error[400]; /* set once, by the load, when it fails */
static pthread_t load_thread;
static bool load_threaded; /* load_thread runs, or ran and was not joined */

static void *open_library(void)
{
	void *lib = NULL;

#ifdef CAIRN_FUSE_LIBDIR
	lib = dlopen(CAIRN_FUSE_LIBDIR "/" CAIRN_FUSE_SONAME, RTLD_NOW | RTLD_LOCAL);
#endif
	if (!lib)
		lib = dlopen(CAIRN_FUSE_SONAME, RTLD_NOW | RTLD_LOCAL);
	return lib;
}

#define FUSE_DL_RESOLVE(ret, name, params, args)                                                   \
	if (!(*(void **)&dl_##name = dlsym(lib, #name))) {                                         \
		snprintf(load_error, sizeof(load_error),                                           \
			 "mounts need libfuse %d.%d or newer, and " CAIRN_FUSE_SONAME " lacks %s", \
			 FUSE_MAJOR_VERSION, FUSE_MINOR_VERSION, #name);                           \
		return;                                                                            \
	}
#define FUSE_DL_RESOLVE_VOID(name, params, args) FUSE_DL_RESOLVE(void, name, params, args)

static void load(void)
{
	void *lib = open_library();

	if (!lib) {
		snprintf(load_error, sizeof(load_error), "mounts need libfuse (%s): %s",
			 CAIRN_FUSE_SONAME, dlerror());
		return;
	}
	FUSE_DL_FUNCTIONS(FUSE_DL_RESOLVE, FUSE_DL_RESOLVE_VOID)
	atomic_store_explicit(&loaded, true, memory_order_release);
}

static void *load_main(void *arg)
{
	(void)arg;
	pthread_once(&load_once, load);
	return NULL;
}

void fuse_dl_start(void)
{
	if (!load_threaded && pthread_create(&load_thread, NULL, load_main, NULL) == 0)
		load_threaded = true;
}

void fuse_dl_join(void)
{
	if (load_threaded) {
		pthread_join(load_thread, NULL);
		load_threaded = false;
	}
}

int fuse_dl_wait(char *msg, size_t msg_size)
{
	fuse_dl_join();
	pthread_once(&load_once, load);
	if (atomic_load_explicit(&loaded, memory_order_acquire))
		return 0;
	cairn_format(msg, msg_size, "%s", load_error);
	return -ELIBACC;
}

/* Before a forwarder's first call: load now, or stop. */
static void need(void)
{
	cairn_dl_need(&load_once, load, &loaded, load_error);
}

/* Hidden: were the program to export them (-rdynamic), the library's own
 * calls of these names would come back here. */
#define FUSE_DL_FORWARD(ret, name, params, args)                                                   \
	__attribute__((visibility("hidden"))) ret name params                                      \
	{                                                                                          \
		need();                                                                            \
		return dl_##name args;                                                             \
	}
#define FUSE_DL_FORWARD_VOID(name, params, args)                                                   \
	__attribute__((visibility("hidden"))) void name params                                     \
	{                                                                                          \
		need();                                                                            \
		dl_##name args;                                                                    \
	}
FUSE_DL_FUNCTIONS(FUSE_DL_FORWARD, FUSE_DL_FORWARD_VOID)
