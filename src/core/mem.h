/*
 * mem.h — allocation that cannot fail.
 *
 * A proxy that runs out of memory cannot serve anyway; rather than thread an
 * error path through every allocation, these abort with a message (as Redis's
 * zmalloc does). Per-request objects do not come from here in steady state:
 * they come from the free lists of their modules.
 */
/*
 * The core wing (src/core/): allocation, the error log, reference-counted
 * receive blocks, timer heaps, JSON, this process's resources and the config
 * (its loader and the plain structs every other wing reads). It includes
 * nothing of the other wings.
 */
#ifndef ZDM_MEM_H
#define ZDM_MEM_H

#include <stddef.h>

void *xmalloc(size_t n);
void *xcalloc(size_t nmemb, size_t size);
void *xrealloc(void *p, size_t n);
char *xstrdup(const char *s);
char *xstrndup(const char *s, size_t n);
/* printf into a new string */
char *xasprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif
