/* curl_dl.h: libcurl is opened on first use (curl_dl.c says why). Internal
 * to store/. */
#ifndef CAIRN_CURL_DL_H
#define CAIRN_CURL_DL_H

#include <stddef.h>

/* Opens libcurl.so.4 and initialises it, once per process; every later
 * call returns the first one's answer. Returns 0, or -ENOSYS with why
 * saying what is missing. Call it before any curl_* function. */
int curl_dl_load(char *why, size_t why_size);

#endif
