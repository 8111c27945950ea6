/*
 * buf.h — reference-counted receive blocks.
 *
 * Bytes read from a socket land in a block. The parts that must be
 * forwarded are staged when the output is small (copied once, into the
 * piece that one send(2) writes: see conn.h) and otherwise referenced from
 * the peer's output (held in its write side, or in its evbuffer with
 * buf_add_ref), each reference holding the block, and the block goes back
 * to its pool's free list when the last reference has been written out. Blocks of the pool's size are recycled; a larger one
 * (a header section bigger than a block) is allocated for the occasion.
 */
#ifndef ZDM_BUF_H
#define ZDM_BUF_H

#include <stddef.h>
#include <stdint.h>

struct evbuffer;

struct buf {
	struct buf_pool *pool;  /* owner of the free list it returns to */
	struct buf *next;       /* free-list link */
	uint32_t refs;          /* holders: the reader, plus one per evbuffer reference */
	uint32_t size;          /* capacity of data[] */
	char data[];
};

struct buf_pool {
	struct buf *free;       /* recycled blocks of .block_size */
	uint32_t nfree;
	uint32_t max_free;      /* beyond this, released blocks are freed */
	uint32_t block_size;
	uint64_t allocated;     /* blocks malloc'd over the pool's life (for tests) */
	uint64_t held_bytes;    /* capacity of the blocks taken and not given back
	                         * (read by other threads with a relaxed atomic load) */
};

void buf_pool_init(struct buf_pool *bp, uint32_t block_size, uint32_t max_free);
/* Frees the free list; blocks still referenced are freed by their last unref. */
void buf_pool_clear(struct buf_pool *bp);

/* A block with at least min_size bytes, holding one reference. */
struct buf *buf_get(struct buf_pool *bp, size_t min_size);
void buf_ref(struct buf *b);
void buf_unref(struct buf *b);

/* Appends data[off, off+len) of block b to out without copying it; the
 * reference keeps b alive until out has released those bytes. */
int buf_add_ref(struct evbuffer *out, struct buf *b, uint32_t off, uint32_t len);

#endif
