/* archive_dl.h: libarchive is opened on first use (archive_dl.c says why).
 * Internal to index/. */
#ifndef CAIRN_ARCHIVE_DL_H
#define CAIRN_ARCHIVE_DL_H

#include <stddef.h>

/* Opens libarchive.so.13, once per process; every later call returns the
 * first one's answer. Returns 0, or -ENOSYS with why saying what is
 * missing. The import calls it before its first archive_* call. */
int archive_dl_load(char *why, size_t why_size);

#endif
