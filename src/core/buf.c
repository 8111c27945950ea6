/*
 * buf.c — reference-counted receive blocks and their free lists.
 *
 * Every block belongs to one worker's pool and is only touched by that
 * worker's thread (both the reader and the evbuffer that writes the
 * references out live on it), so the counts need no atomics. Only the bytes
 * held are read by another thread (the metrics): stored whole.
 */
#include <stdlib.h>

#include <event2/buffer.h>

#include "core/buf.h"
#include "core/mem.h"

static void held_add(struct buf_pool *bp, uint64_t n)
{
	__atomic_store_n(&bp->held_bytes, bp->held_bytes + n, __ATOMIC_RELAXED);
}

void buf_pool_init(struct buf_pool *bp, uint32_t block_size, uint32_t max_free)
{
	bp->free = NULL;
	bp->nfree = 0;
	bp->max_free = max_free;
	bp->block_size = block_size;
	bp->allocated = 0;
	bp->held_bytes = 0;
}

void buf_pool_clear(struct buf_pool *bp)
{
	bp->max_free = 0; /* blocks still referenced are freed by their last unref */
	while (bp->free) {
		struct buf *b = bp->free;
		bp->free = b->next;
		free(b);
	}
	bp->nfree = 0;
}

struct buf *buf_get(struct buf_pool *bp, size_t min_size)
{
	struct buf *b;

	if (min_size <= bp->block_size && bp->free) {
		b = bp->free;
		bp->free = b->next;
		bp->nfree--;
	} else {
		size_t size = min_size <= bp->block_size ? bp->block_size : min_size;
		b = xmalloc(sizeof(*b) + size);
		b->pool = bp;
		b->size = (uint32_t)size;
		bp->allocated++;
	}
	b->next = NULL;
	b->refs = 1;
	held_add(bp, b->size);
	return b;
}

void buf_ref(struct buf *b)
{
	b->refs++;
}

void buf_unref(struct buf *b)
{
	if (--b->refs)
		return;
	struct buf_pool *bp = b->pool;
	held_add(bp, -(uint64_t)b->size);
	if (b->size == bp->block_size && bp->nfree < bp->max_free) {
		b->next = bp->free;
		bp->free = b;
		bp->nfree++;
	} else {
		free(b);
	}
}

static void buf_ref_cleanup(const void *data, size_t len, void *arg)
{
	(void)data;
	(void)len;
	buf_unref(arg);
}

int buf_add_ref(struct evbuffer *out, struct buf *b, uint32_t off, uint32_t len)
{
	if (len == 0)
		return 0;
	buf_ref(b);
	if (evbuffer_add_reference(out, b->data + off, len, buf_ref_cleanup, b) < 0) {
		buf_unref(b);
		return -1;
	}
	return 0;
}
