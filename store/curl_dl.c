/* curl_dl.c: libcurl, loaded when a remote store is first used rather than
 * when cairn starts. Linked directly, libcurl brings some thirty shared
 * libraries (TLS, HTTP/2, LDAP, SSH, Kerberos, IDN, ...) into every cairn
 * process, about 25 ms of a cold start that a local mount or a plain `cairn
 * ls` never uses. So cairn is built against libcurl's headers only, and
 * this file defines the libcurl functions store/ calls: each forwards to the
 * function of the same name in libcurl.so.4, opened once by curl_dl_load.
 * Nothing may call them before curl_dl_load has succeeded.
 */
#define CURL_DISABLE_TYPECHECK /* the macros would rename the definitions below */
#include <curl/curl.h>

#include "curl_dl.h"

#include <dlfcn.h>
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>

#define CURL_DL_SONAME "libcurl.so.4"

/* The functions, as X(return type, name, parameters). */
#define CURL_DL_FUNCTIONS(X)                                                                       \
	X(CURLcode, curl_global_init, (long))                                                      \
	X(CURL *, curl_easy_init, (void))                                                          \
	X(CURLcode, curl_easy_setopt, (CURL *, CURLoption, ...))                                   \
	X(CURLcode, curl_easy_perform, (CURL *))                                                   \
	X(void, curl_easy_cleanup, (CURL *))                                                       \
	X(CURLcode, curl_easy_getinfo, (CURL *, CURLINFO, ...))                                    \
	X(void, curl_easy_reset, (CURL *))                                                         \
	X(const char *, curl_easy_strerror, (CURLcode))                                            \
	X(char *, curl_easy_escape, (CURL *, const char *, int))                                   \
	X(void, curl_free, (void *))                                                               \
	X(struct curl_slist *, curl_slist_append, (struct curl_slist *, const char *))             \
	X(void, curl_slist_free_all, (struct curl_slist *))                                        \
	X(CURLM *, curl_multi_init, (void))                                                        \
	X(CURLMcode, curl_multi_add_handle, (CURLM *, CURL *))                                     \
	X(CURLMcode, curl_multi_remove_handle, (CURLM *, CURL *))                                  \
	X(CURLMcode, curl_multi_perform, (CURLM *, int *))                                         \
	X(CURLMcode, curl_multi_poll, (CURLM *, struct curl_waitfd *, unsigned int, int, int *))   \
	X(CURLMcode, curl_multi_wait, (CURLM *, struct curl_waitfd *, unsigned int, int, int *))   \
	X(CURLMsg *, curl_multi_info_read, (CURLM *, int *))                                       \
	X(CURLMcode, curl_multi_cleanup, (CURLM *))                                                \
	X(const char *, curl_multi_strerror, (CURLMcode))                                          \
	X(CURLMcode, curl_multi_setopt, (CURLM *, CURLMoption, ...))                               \
	X(curl_version_info_data *, curl_version_info, (CURLversion))

#define CURL_DL_POINTER(ret, name, params) static ret(*dl_##name) params;
CURL_DL_FUNCTIONS(CURL_DL_POINTER)

static pthread_once_t load_once = PTHREAD_ONCE_INIT;
static char load_error[256]; /* set once, by load, when it fails */

static void load(void)
{
	void *lib = dlopen(CURL_DL_SONAME, RTLD_NOW | RTLD_LOCAL);

	if (!lib) {
		snprintf(load_error, sizeof(load_error),
			 "remote stores need libcurl (" CURL_DL_SONAME "): %s", dlerror());
		return;
	}
#define CURL_DL_RESOLVE(ret, name, params)                                                         \
	if (!(*(void **)&dl_##name = dlsym(lib, #name))) {                                         \
		snprintf(load_error, sizeof(load_error),                                           \
			 CURL_DL_SONAME " lacks %s (libcurl 7.66 or newer is needed)", #name);     \
		return;                                                                            \
	}
	CURL_DL_FUNCTIONS(CURL_DL_RESOLVE)
	/* Once per process, before any thread makes a handle. */
	if (dl_curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
		snprintf(load_error, sizeof(load_error), "libcurl failed to initialise");
		return;
	}
}

int curl_dl_load(char *why, size_t why_size)
{
	pthread_once(&load_once, load);
	if (load_error[0]) {
		snprintf(why, why_size, "%s", load_error);
		return -ENOSYS;
	}
	return 0;
}

/* ---- the forwarders ---- */

CURLcode curl_global_init(long flags)
{
	return dl_curl_global_init(flags);
}

CURL *curl_easy_init(void)
{
	return dl_curl_easy_init();
}

/* An option's argument is a long, an off_t or a pointer (data, string,
 * list or callback), as its number's range says (curl.h's CURLOPTTYPE_*). */
CURLcode curl_easy_setopt(CURL *curl, CURLoption option, ...)
{
	va_list args;
	CURLcode r;

	va_start(args, option);
	if (option >= CURLOPTTYPE_OFF_T && option < CURLOPTTYPE_BLOB)
		r = dl_curl_easy_setopt(curl, option, va_arg(args, curl_off_t));
	else if (option >= CURLOPTTYPE_OBJECTPOINT)
		r = dl_curl_easy_setopt(curl, option, va_arg(args, void *));
	else
		r = dl_curl_easy_setopt(curl, option, va_arg(args, long));
	va_end(args);
	return r;
}

CURLcode curl_easy_perform(CURL *curl)
{
	return dl_curl_easy_perform(curl);
}

void curl_easy_cleanup(CURL *curl)
{
	dl_curl_easy_cleanup(curl);
}

/* Every CURLINFO's argument is a pointer to where the answer goes. */
CURLcode curl_easy_getinfo(CURL *curl, CURLINFO info, ...)
{
	va_list args;

	va_start(args, info);
	void *where = va_arg(args, void *);
	va_end(args);
	return dl_curl_easy_getinfo(curl, info, where);
}

void curl_easy_reset(CURL *curl)
{
	dl_curl_easy_reset(curl);
}

const char *curl_easy_strerror(CURLcode code)
{
	return dl_curl_easy_strerror(code);
}

char *curl_easy_escape(CURL *curl, const char *string, int length)
{
	return dl_curl_easy_escape(curl, string, length);
}

void curl_free(void *p)
{
	dl_curl_free(p);
}

struct curl_slist *curl_slist_append(struct curl_slist *list, const char *string)
{
	return dl_curl_slist_append(list, string);
}

void curl_slist_free_all(struct curl_slist *list)
{
	dl_curl_slist_free_all(list);
}

CURLM *curl_multi_init(void)
{
	return dl_curl_multi_init();
}

CURLMcode curl_multi_add_handle(CURLM *multi, CURL *curl)
{
	return dl_curl_multi_add_handle(multi, curl);
}

CURLMcode curl_multi_remove_handle(CURLM *multi, CURL *curl)
{
	return dl_curl_multi_remove_handle(multi, curl);
}

CURLMcode curl_multi_perform(CURLM *multi, int *running)
{
	return dl_curl_multi_perform(multi, running);
}

CURLMcode curl_multi_poll(CURLM *multi, struct curl_waitfd *extra, unsigned int extra_count,
			  int timeout_ms, int *ret)
{
	return dl_curl_multi_poll(multi, extra, extra_count, timeout_ms, ret);
}

CURLMcode curl_multi_wait(CURLM *multi, struct curl_waitfd *extra, unsigned int extra_count,
			  int timeout_ms, int *ret)
{
	return dl_curl_multi_wait(multi, extra, extra_count, timeout_ms, ret);
}

CURLMsg *curl_multi_info_read(CURLM *multi, int *queued)
{
	return dl_curl_multi_info_read(multi, queued);
}

CURLMcode curl_multi_cleanup(CURLM *multi)
{
	return dl_curl_multi_cleanup(multi);
}

const char *curl_multi_strerror(CURLMcode code)
{
	return dl_curl_multi_strerror(code);
}

CURLMcode curl_multi_setopt(CURLM *multi, CURLMoption option, ...)
{
	va_list args;
	CURLMcode r;

	va_start(args, option);
	if (option >= CURLOPTTYPE_OFF_T && option < CURLOPTTYPE_BLOB)
		r = dl_curl_multi_setopt(multi, option, va_arg(args, curl_off_t));
	else if (option >= CURLOPTTYPE_OBJECTPOINT)
		r = dl_curl_multi_setopt(multi, option, va_arg(args, void *));
	else
		r = dl_curl_multi_setopt(multi, option, va_arg(args, long));
	va_end(args);
	return r;
}

curl_version_info_data *curl_version_info(CURLversion age)
{
	return dl_curl_version_info(age);
}
