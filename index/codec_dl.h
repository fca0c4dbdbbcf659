/* codec_dl.h: zlib and liblz4 are opened on first use (codec_dl.c says
 * why). Internal to index/. */
#ifndef CAIRN_CODEC_DL_H
#define CAIRN_CODEC_DL_H

#include <stddef.h>

/* Open libz.so.1, liblz4.so.1, once per process each; every later call
 * returns the first one's answer. Return 0, or -ENOSYS with why saying
 * what is missing. A layer calls its library's before its first call. */
int codec_dl_zlib(char *why, size_t why_size);
int codec_dl_lz4(char *why, size_t why_size);

#endif
