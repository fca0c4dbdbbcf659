/* dl_need.h: the load-once-or-stop step of the libraries cairn opens on
 * first use and forwards calls to (store/zstd_dl.c, index/codec_dl.c,
 * mount/fuse_dl.c): a forwarder has no way to return an error through the
 * library's own signature, so a library that cannot be opened stops the
 * process with the load's message, as the dynamic linker would have at
 * start. Any layer may include it.
 */
#ifndef CAIRN_DL_NEED_H
#define CAIRN_DL_NEED_H

#include <pthread.h>
#include <stdatomic.h>

/* Returns at once when *loaded; else runs load once (pthread_once on
 * *once) and returns if it set *loaded, or prints "cairn: ERROR" (the
 * message the load left there) and aborts. */
void cairn_dl_need(pthread_once_t *once, void (*load)(void), const atomic_bool *loaded,
		   const char *error);

#endif
