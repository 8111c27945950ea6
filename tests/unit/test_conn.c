/*
 * test_conn.c — the write side of a connection (src/net/conn.c) on a real
 * loopback TCP socket whose peer reads late: outputs appended in pieces of
 * every kind (copied, static, by reference to a block, reserved then
 * committed, moved from another output), small ones (staged, sent as one
 * piece) and large ones (the first references held in the output, the
 * rest sent chain by chain), stopped or cut short by a
 * full socket at every turn and appended to while partly written, must
 * arrive byte for byte.
 */
#include <arpa/inet.h>
#include <stdbool.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/event.h>

#include "core/buf.h"
#include "net/conn.h"
#include "tap.h"

#define STREAM (4u << 20) /* bytes written in all */
#define GATHER CONN_STAGE

static uint32_t rng = 12345;

static uint32_t next(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 17;
	rng ^= rng << 5;
	return rng;
}

static void nonblocking(int fd)
{
	fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
}

/* A connected loopback pair with small buffers; *w is written, *r read. */
static int tcp_pair(int *w, int *r)
{
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t alen = sizeof(a);
	int small = 4096;
	int l = socket(AF_INET, SOCK_STREAM, 0);
	if (l < 0 || setsockopt(l, SOL_SOCKET, SO_RCVBUF, &small, sizeof(small)) < 0 ||
	    bind(l, (struct sockaddr *)&a, sizeof(a)) < 0 || listen(l, 1) < 0 ||
	    getsockname(l, (struct sockaddr *)&a, &alen) < 0)
		return -1;
	*w = socket(AF_INET, SOCK_STREAM, 0);
	if (*w < 0 || setsockopt(*w, SOL_SOCKET, SO_SNDBUF, &small, sizeof(small)) < 0 ||
	    connect(*w, (struct sockaddr *)&a, sizeof(a)) < 0)
		return -1;
	*r = accept(l, NULL, NULL);
	close(l);
	if (*r < 0)
		return -1;
	nonblocking(*w);
	nonblocking(*r);
	return 0;
}

struct reader {
	int fd;
	const unsigned char *want;
	size_t got;
	int mismatch;
};

/* Reads up to max bytes that are there and compares them with the stream. */
static void read_some(struct reader *rd, size_t max)
{
	unsigned char b[8192];
	while (max) {
		ssize_t n = recv(rd->fd, b, max < sizeof(b) ? max : sizeof(b), 0);
		if (n <= 0)
			return;
		if (memcmp(b, rd->want + rd->got, (size_t)n) != 0)
			rd->mismatch++;
		rd->got += (size_t)n;
		max -= (size_t)n;
	}
}

static void on_event(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	(void)arg;
}

/* Appends stream[at, at+n) to c's output in the way numbered kind. */
static void put_piece(struct conn *c, struct conn *side, struct buf_pool *bp,
                      const unsigned char *stream, size_t at, size_t n, unsigned kind)
{
	switch (kind) {
	case 0:
		conn_put(c, stream + at, n);
		break;
	case 1:
		conn_put_static(c, stream + at, n);
		break;
	case 2: {
		/* Referenced from a block, as received bytes are. */
		struct buf *b = buf_get(bp, n + 16);
		memcpy(b->data + 16, stream + at, n);
		conn_put_ref(c, b, 16, (uint32_t)n);
		buf_unref(b);
		break;
	}
	case 3: {
		char *p = conn_reserve(c, n);
		memcpy(p, stream + at, n);
		conn_commit(c, n);
		break;
	}
	default:
		/* Built in another output (half staged, half referenced),
		 * then moved. */
		conn_put(side, stream + at, n / 2);
		conn_put_static(side, stream + at + n / 2, n - n / 2);
		conn_out_move(c, side);
		break;
	}
}

static void test_late_reader(void)
{
	struct event_base *base = event_base_new();
	struct conn_timeouts t;
	struct conn c, side;
	struct event wev, side_wev;
	struct buf_pool bp;
	int w = -1, r = -1, sw = -1, sr = -1;

	if (!CHECK(base && tcp_pair(&w, &r) == 0 && tcp_pair(&sw, &sr) == 0,
	           "loopback pairs with small buffers"))
		return;
	buf_pool_init(&bp, 4096, 4);
	conn_timeouts_init(&t, base);
	conn_setup(&c);
	conn_open(&c, &t, w, on_event, NULL);
	conn_attach_out(&c, &wev, conn_out_new(), on_event);
	conn_setup(&side);
	conn_open(&side, &t, sw, on_event, NULL);
	conn_attach_out(&side, &side_wev, conn_out_new(), on_event);

	unsigned char *stream = malloc(STREAM);
	for (size_t i = 0; i < STREAM; i++)
		stream[i] = (unsigned char)next();
	struct reader rd = {.fd = r, .want = stream};

	size_t at = 0, outputs = 0, small = 0, blocked_small = 0, cut_large = 0, errors = 0;
	size_t appended_while_blocked = 0, staged_then_chained = 0, staged_then_held = 0;
	size_t held_then_chained = 0;
	int res = 0;
	while (at < STREAM) {
		/* One output: 2 to 6 pieces; every third one larger than GATHER. */
		size_t pieces = 2 + next() % 5, len = 0;
		size_t cap = outputs % 3 == 2 ? 6000 : GATHER / pieces;
		size_t pending = conn_out_len(&c);
		if (pending)
			appended_while_blocked++;
		for (size_t k = 0; k < pieces && at + len < STREAM; k++) {
			size_t n = 1 + next() % cap;
			if (at + len + n > STREAM)
				n = STREAM - at - len;
			put_piece(&c, &side, &bp, stream, at + len, n, next() % 5);
			len += n;
		}
		if (c.out->len > c.out->off && evbuffer_get_length(c.out->chains))
			staged_then_chained++;
		if (c.out->len > c.out->off && c.out->ref_end > c.out->ref_first)
			staged_then_held++;
		if (c.out->ref_end == CONN_REFS && evbuffer_get_length(c.out->chains))
			held_then_chained++;
		outputs++;
		if (len <= GATHER && !pending)
			small++;
		res = conn_flush(&c, 0);
		size_t left = conn_out_len(&c);
		if (res == 1 && len <= GATHER && !pending)
			blocked_small++;
		if (res == 1 && len > GATHER && left < len + pending)
			cut_large++;
		/* One time in four the next output is appended to what is
		 * left; otherwise the peer reads until all is written. */
		bool append_next = next() % 4 == 0;
		while (res == 1 && !append_next) {
			read_some(&rd, 1 + next() % 3000); /* the peer reads a little */
			res = conn_flush(&c, 0);
		}
		if (res < 0)
			errors++;
		at += len;
		if (next() % 4 == 0)
			read_some(&rd, 1 + next() % 3000);
	}
	while (res == 1) {
		read_some(&rd, 1 + next() % 3000);
		res = conn_flush(&c, 0);
	}
	if (res < 0)
		errors++;
	while (rd.got < STREAM) {
		size_t before = rd.got;
		read_some(&rd, STREAM);
		if (rd.got == before) {
			fd_set fds;
			struct timeval tv = {5, 0};
			FD_ZERO(&fds);
			FD_SET(r, &fds);
			if (select(r + 1, &fds, NULL, NULL, &tv) <= 0)
				break;
		}
	}

	/* Whether an output of the stream held all its references and chained
	 * more depends on how full the kernel let the socket get, which the
	 * load of the machine changes: if none did, one is made so here, on
	 * the side connection, and written out. */
	for (int k = 0; k <= CONN_REFS && !held_then_chained; k++) {
		put_piece(&side, &side, &bp, stream, 0, CONN_STAGE + 1000, 2);
		if (side.out->ref_end == CONN_REFS && evbuffer_get_length(side.out->chains))
			held_then_chained++;
	}
	for (int tries = 0; conn_out_len(&side) && tries < 10000; tries++) {
		char sink[65536];
		conn_flush(&side, 0);
		while (recv(sr, sink, sizeof(sink), MSG_DONTWAIT) > 0)
			;
	}

	CHECK_EQ_INT(errors, 0, "no write failed");
	CHECK_EQ_INT(rd.got, STREAM, "every byte arrived");
	CHECK_EQ_INT(rd.mismatch, 0, "in order, unchanged");
	CHECK(small > outputs / 4 && small < outputs, "small outputs and large ones were written");
	if (!CHECK(blocked_small > 0, "small staged outputs found the socket full"))
		printf("#   %zu of %zu\n", blocked_small, small);
	CHECK(cut_large > 0, "large outputs were cut short by a full socket");
	CHECK(appended_while_blocked > 0, "outputs were appended to partly written ones");
	CHECK(staged_then_chained > 0, "outputs were staged and chained at once");
	CHECK(staged_then_held > 0, "outputs were staged and held by reference at once");
	CHECK(held_then_chained > 0, "outputs held all the references they can and chained more");
	CHECK_EQ_INT(conn_out_len(&side), 0, "a moved output leaves its source empty");

	conn_close(&c);
	conn_out_free(c.out);
	conn_detach_out(&c);
	conn_close(&side);
	conn_out_free(side.out);
	conn_detach_out(&side);
	conn_timeouts_free(&t);
	buf_pool_clear(&bp);
	close(r);
	close(sr);
	free(stream);
	event_base_free(base);
}

/* An output freed with references held in it lets go of their blocks. */
static void test_free_lets_go(void)
{
	struct event_base *base = event_base_new();
	struct conn_timeouts t;
	struct conn c;
	struct event wev;
	struct buf_pool bp;
	int w = -1, r = -1;

	if (!CHECK(base && tcp_pair(&w, &r) == 0, "a loopback pair"))
		return;
	buf_pool_init(&bp, 4096, 4);
	conn_timeouts_init(&t, base);
	conn_setup(&c);
	conn_open(&c, &t, w, on_event, NULL);
	conn_attach_out(&c, &wev, conn_out_new(), on_event);
	struct buf *b = buf_get(&bp, 4096);
	conn_put_ref(&c, b, 0, 3000); /* too large to stage: held */
	CHECK_EQ_INT(b->refs, 2, "a reference held in the output holds the block");
	conn_out_free(c.out);
	CHECK_EQ_INT(b->refs, 1, "freeing the output lets go of it");
	c.out = NULL;
	conn_detach_out(&c);
	conn_close(&c);
	buf_unref(b);
	conn_timeouts_free(&t);
	buf_pool_clear(&bp);
	close(r);
	event_base_free(base);
}

int main(void)
{
	test_late_reader();
	test_free_lets_go();
	return tap_done();
}
