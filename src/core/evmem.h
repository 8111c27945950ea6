/*
 * evmem.h — free lists under libevent's allocations.
 *
 * libevent allocates an evbuffer chain for every reference added and for
 * every run of small data; on the hot path that would be several mallocs per
 * request. evmem_install() gives libevent an allocator that keeps freed
 * blocks in per-thread free lists by size class, so that in steady state a
 * request allocates nothing.
 */
#ifndef ZDM_EVMEM_H
#define ZDM_EVMEM_H

#include <stdint.h>

/* Must run before any other libevent call. */
void evmem_install(void);

/* Calls to the system allocator made on behalf of libevent so far by this
 * thread (for tests and benchmarks). */
/* Frees the calling thread's spare blocks: called by a thread that ends,
 * whose lists would otherwise be lost with it. */
void evmem_thread_release(void);

uint64_t evmem_system_allocs(void);

#endif
