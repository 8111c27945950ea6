/*
 * test_buf.c — reference-counted receive blocks (src/core/buf.c): the free list,
 * blocks larger than the pool's size, and references held by evbuffers
 * until their bytes are written out (drained) or the evbuffer is freed.
 */
#include <stdio.h>
#include <string.h>
#include <sys/uio.h>

#include <event2/buffer.h>

#include "core/buf.h"
#include "tap.h"

#define BLOCK 4096

static void test_get_and_recycle(void)
{
	struct buf_pool bp;
	struct buf *b, *b2, *c;

	buf_pool_init(&bp, BLOCK, 4);
	b = buf_get(&bp, 100);
	CHECK(b && b->refs == 1 && b->size == BLOCK && b->pool == &bp,
	      "get: one reference, the pool's block size, owned by the pool");
	CHECK(bp.allocated == 1 && bp.nfree == 0 && !bp.free, "get: one block allocated");
	memset(b->data, 'x', b->size); /* the whole capacity is usable */

	buf_unref(b);
	CHECK(bp.nfree == 1 && bp.free == b,
	      "unref: the last reference returns it to the free list");

	b2 = buf_get(&bp, BLOCK);
	CHECK(b2 == b, "get: the free block is reused");
	CHECK(b2->refs == 1 && b2->next == NULL, "get: a reused block has one reference, no link");
	CHECK(bp.allocated == 1 && bp.nfree == 0 && !bp.free, "get: reuse allocates nothing");

	buf_ref(b2);
	CHECK_EQ_INT(b2->refs, 2, "ref: two holders");
	buf_unref(b2);
	CHECK(b2->refs == 1 && bp.nfree == 0, "unref: one holder left, not released");

	c = buf_get(&bp, 0);
	CHECK(c != b2 && c->size == BLOCK && bp.allocated == 2,
	      "get: a second block while the first is held");
	buf_unref(b2);
	buf_unref(c);
	CHECK(bp.nfree == 2 && bp.free == c && bp.free->next == b2,
	      "unref: released blocks stack on the free list");
	CHECK(buf_get(&bp, 1) == c && buf_get(&bp, 1) == b2 && bp.nfree == 0,
	      "get: the free list is last in, first out");
	buf_unref(c);
	buf_unref(b2);
	buf_pool_clear(&bp);
	CHECK(bp.nfree == 0 && !bp.free, "clear: the free list is emptied");
}

static void test_large(void)
{
	struct buf_pool bp;
	struct buf *small, *big;

	buf_pool_init(&bp, BLOCK, 4);
	small = buf_get(&bp, 10);
	buf_unref(small);
	CHECK_EQ_INT(bp.nfree, 1, "large: a free block is available");

	CHECK_EQ_INT(bp.held_bytes, 0, "held: nothing held once the block is back");
	big = buf_get(&bp, 3 * BLOCK + 1);
	CHECK(big != small && big->size == 3 * BLOCK + 1 && big->refs == 1,
	      "large: a bigger block is allocated to the size asked");
	small = buf_get(&bp, 10);
	buf_ref(small);
	CHECK_EQ_INT(bp.held_bytes, 4 * BLOCK + 1, "held: the capacity of every block taken");
	buf_unref(small);
	CHECK_EQ_INT(bp.held_bytes, 4 * BLOCK + 1, "held: a block is held while referenced");
	buf_unref(small);
	CHECK_EQ_INT(bp.held_bytes, 3 * BLOCK + 1, "held: and given back with its last reference");
	CHECK(bp.nfree == 1 && bp.allocated == 2, "large: the free list is not touched");
	memset(big->data, 'y', big->size);
	buf_unref(big);
	CHECK(bp.nfree == 1 && bp.free == small,
	      "large: released, it is freed rather than put on the free list");

	big = buf_get(&bp, BLOCK + 1);
	CHECK(big->size == BLOCK + 1 && bp.allocated == 3, "large: one byte over is large too");
	buf_unref(big);
	CHECK_EQ_INT(bp.nfree, 1, "large: still one block on the free list");
	buf_pool_clear(&bp);
}

static void test_max_free(void)
{
	struct buf_pool bp;
	struct buf *b[5];

	buf_pool_init(&bp, 512, 2);
	for (int i = 0; i < 5; i++)
		b[i] = buf_get(&bp, 512);
	CHECK_EQ_INT(bp.allocated, 5, "max_free: five blocks allocated");
	for (int i = 0; i < 5; i++)
		buf_unref(b[i]);
	CHECK(bp.nfree == 2 && bp.free == b[1] && bp.free->next == b[0],
	      "max_free: the free list keeps at most max_free blocks");
	for (int i = 0; i < 3; i++)
		b[i] = buf_get(&bp, 1);
	CHECK(bp.allocated == 6 && bp.nfree == 0, "max_free: the third get allocates again");
	for (int i = 0; i < 3; i++)
		buf_unref(b[i]);
	CHECK_EQ_INT(bp.nfree, 2, "max_free: still two on the free list");
	buf_pool_clear(&bp);

	buf_pool_init(&bp, 512, 0);
	b[0] = buf_get(&bp, 1);
	buf_unref(b[0]);
	CHECK(bp.nfree == 0 && !bp.free, "max_free 0: nothing is kept");
}

static int cleanups;

static void count_cleanup(const void *data, size_t len, void *arg)
{
	(void)data;
	(void)len;
	(void)arg;
	cleanups++;
}

static void test_evbuffer_refs(void)
{
	struct buf_pool bp;
	struct evbuffer *out = evbuffer_new();
	struct evbuffer_iovec v[4];
	struct buf *b;
	char tmp[16];
	int n;

	buf_pool_init(&bp, BLOCK, 4);
	b = buf_get(&bp, 0);
	memcpy(b->data, "GET / HTTP/1.1\r\nHost: a\r\n\r\n", 27);

	CHECK_EQ_INT(buf_add_ref(out, b, 0, 16), 0, "add_ref: the start line is added");
	CHECK_EQ_INT(b->refs, 2, "add_ref: the evbuffer holds a reference");
	CHECK_EQ_INT(buf_add_ref(out, b, 16, 9), 0, "add_ref: the Host line is added");
	CHECK_EQ_INT(b->refs, 3, "add_ref: one reference per span");
	CHECK_EQ_INT(buf_add_ref(out, b, 25, 0), 0, "add_ref: an empty span succeeds");
	CHECK_EQ_INT(b->refs, 3, "add_ref: an empty span takes no reference");
	CHECK_EQ_INT(evbuffer_get_length(out), 25, "add_ref: 25 bytes queued");

	n = evbuffer_peek(out, -1, NULL, v, 4);
	CHECK(n == 2 && v[0].iov_base == b->data && v[0].iov_len == 16 &&
	              v[1].iov_base == b->data + 16 && v[1].iov_len == 9,
	      "add_ref: the evbuffer points into the block, nothing copied");

	buf_unref(b); /* the reader is done with the block */
	CHECK(b->refs == 2 && bp.nfree == 0, "add_ref: the block lives while referenced");

	evbuffer_drain(out, 10);
	CHECK(b->refs == 2 && bp.nfree == 0, "drain: a partly written span keeps its reference");
	evbuffer_remove(out, tmp, 6);
	CHECK(b->refs == 1 && bp.nfree == 0, "drain: the first span written releases it");
	CHECK(memcmp(tmp, "/1.1\r\n", 6) == 0, "drain: the bytes are the block's");
	evbuffer_drain(out, 9);
	CHECK(evbuffer_get_length(out) == 0 && bp.nfree == 1 && bp.free == b,
	      "drain: the last span written returns the block to the free list");

	/* Freeing the evbuffer releases what it still holds. */
	struct buf *recycled = bp.free;
	b = buf_get(&bp, 0);
	CHECK(b == recycled && bp.allocated == 1, "evbuffer_free: the recycled block is reused");
	buf_add_ref(out, b, 0, 100);
	buf_add_ref(out, b, 200, 100);
	buf_unref(b);
	CHECK(b->refs == 2 && bp.nfree == 0, "evbuffer_free: two references outstanding");
	evbuffer_free(out);
	CHECK(bp.nfree == 1 && bp.free == b, "evbuffer_free: the block returns to the free list");

	/* A large block referenced by an evbuffer is freed, not recycled. */
	out = evbuffer_new();
	b = buf_get(&bp, 2 * BLOCK);
	memset(b->data, 'z', b->size);
	buf_add_ref(out, b, BLOCK, BLOCK);
	buf_unref(b);
	CHECK_EQ_INT(b->refs, 1, "large ref: held by the evbuffer only");
	evbuffer_drain(out, BLOCK);
	CHECK_EQ_INT(bp.nfree, 1, "large ref: freed when written, the free list unchanged");

	/* The block moves with the bytes between evbuffers. */
	struct evbuffer *other = evbuffer_new();
	cleanups = 0;
	b = buf_get(&bp, 0);
	memcpy(b->data, "hello", 5);
	buf_add_ref(out, b, 0, 5);
	evbuffer_add_reference(out, "x", 1, count_cleanup, NULL);
	buf_unref(b);
	evbuffer_add_buffer(other, out);
	CHECK(b->refs == 1 && evbuffer_get_length(other) == 6,
	      "moved: the reference follows the bytes to the other evbuffer");
	evbuffer_free(out);
	CHECK(b->refs == 1 && bp.nfree == 0, "moved: freeing the first evbuffer releases nothing");
	evbuffer_free(other);
	CHECK(bp.nfree == 1 && cleanups == 1, "moved: freeing the second releases the block");

	buf_pool_clear(&bp);
}

/* buf.h: "blocks still referenced are freed by their last unref" after the
 * pool is cleared (a worker clears its pool while closing connections whose
 * evbuffers may still hold references). */
static void test_clear_while_referenced(void)
{
	struct buf_pool bp;
	struct evbuffer *out = evbuffer_new();
	struct buf *b;

	buf_pool_init(&bp, BLOCK, 4);
	b = buf_get(&bp, 0);
	buf_add_ref(out, b, 0, 10);
	buf_unref(b);
	buf_pool_clear(&bp);
	evbuffer_free(out);
	CHECK(bp.nfree == 0 && !bp.free,
	      "clear: a block referenced at clear time is freed by its last unref");
	buf_pool_clear(&bp); /* whatever came back, release it */
}

int main(void)
{
	test_get_and_recycle();
	test_large();
	test_max_free();
	test_evbuffer_refs();
	test_clear_while_referenced();
	return tap_done();
}
