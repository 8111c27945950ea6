/*
 * evmem.c — a size-class allocator with per-thread free lists for libevent.
 *
 * Each block carries a 16-byte header with its class. Blocks up to 16 KiB
 * are recycled through the free list of the thread that frees them (each
 * worker allocates and frees its own evbuffer chains, so blocks stay with
 * their thread); larger ones go straight to malloc. A list keeps at most
 * MAX_FREE_BYTES per class, so a burst does not pin memory forever.
 */
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

#include "core/evmem.h"

#define NCLASSES 9                    /* 64 B .. 16 KiB */
#define MIN_SHIFT 6
#define BIG_CLASS 0xff
#define MAX_FREE_BYTES (4u << 20)

struct evmem_hdr {
	union {
		struct evmem_hdr *next;       /* while free */
		size_t size;                  /* BIG_CLASS: usable size */
	};
	uint8_t cls;
	uint8_t pad[7];
};

struct evmem_list {
	struct evmem_hdr *head;
	uint32_t n;
};

static _Thread_local struct evmem_list lists[NCLASSES];
static _Thread_local uint64_t system_allocs;

static int class_of(size_t n)
{
	size_t c = (size_t)1 << MIN_SHIFT;
	for (int i = 0; i < NCLASSES; i++, c <<= 1)
		if (n <= c)
			return i;
	return -1;
}

static size_t class_size(int cls)
{
	return (size_t)1 << (MIN_SHIFT + cls);
}

static void *evmem_malloc(size_t n)
{
	int cls = class_of(n);
	struct evmem_hdr *h;

	if (cls >= 0 && lists[cls].head) {
		h = lists[cls].head;
		lists[cls].head = h->next;
		lists[cls].n--;
	} else {
		size_t size = cls >= 0 ? class_size(cls) : n;
		h = malloc(sizeof(*h) + size);
		if (!h)
			return NULL;
		system_allocs++;
		if (cls < 0)
			h->size = n;
	}
	h->cls = cls >= 0 ? (uint8_t)cls : BIG_CLASS;
	return h + 1;
}

static void evmem_free(void *p)
{
	if (!p)
		return;
	struct evmem_hdr *h = (struct evmem_hdr *)p - 1;
	if (h->cls != BIG_CLASS && lists[h->cls].n * class_size(h->cls) < MAX_FREE_BYTES) {
		h->next = lists[h->cls].head;
		lists[h->cls].head = h;
		lists[h->cls].n++;
		return;
	}
	free(h);
}

static void *evmem_realloc(void *p, size_t n)
{
	if (!p)
		return evmem_malloc(n);
	struct evmem_hdr *h = (struct evmem_hdr *)p - 1;
	size_t have = h->cls == BIG_CLASS ? h->size : class_size(h->cls);
	if (n <= have)
		return p;
	void *q = evmem_malloc(n);
	if (!q)
		return NULL;
	memcpy(q, p, have);
	evmem_free(p);
	return q;
}

void evmem_install(void)
{
	/* Under AddressSanitizer libevent keeps the system allocator, so
	 * that every chain's use and release is checked. */
#ifndef __SANITIZE_ADDRESS__
	event_set_mem_functions(evmem_malloc, evmem_realloc, evmem_free);
#else
	(void)evmem_malloc;
	(void)evmem_realloc;
	(void)evmem_free;
#endif
}

void evmem_thread_release(void)
{
	for (int i = 0; i < NCLASSES; i++) {
		while (lists[i].head) {
			struct evmem_hdr *h = lists[i].head;
			lists[i].head = h->next;
			free(h);
		}
		lists[i].n = 0;
	}
}

uint64_t evmem_system_allocs(void)
{
	return system_allocs;
}
