/* dl_need.c: see dl_need.h. */
#include "dl_need.h"

#include <stdio.h>
#include <stdlib.h>

void cairn_dl_need(pthread_once_t *once, void (*load)(void), const atomic_bool *loaded,
		   const char *error)
{
	if (atomic_load_explicit(loaded, memory_order_acquire))
		return;
	pthread_once(once, load);
	if (!atomic_load_explicit(loaded, memory_order_acquire)) {
		fprintf(stderr, "cairn: %s\n", error);
		abort();
	}
}
