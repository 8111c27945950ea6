/*
 * test_conn.c — the write side of a connection (src/conn.c) on a real
 * loopback TCP socket whose peer reads late: outputs in many chains, small
 * ones (sent as one gathered piece) and large ones (sent chain by chain),
 * stopped or cut short by a full socket at every turn, must arrive byte
 * for byte.
 */
#include <arpa/inet.h>
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

#include "conn.h"
#include "tap.h"

#define STREAM (4u << 20) /* bytes written in all */
#define GATHER CONN_GATHER_MAX

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

static void test_late_reader(void)
{
	struct event_base *base = event_base_new();
	struct conn_timeouts t;
	struct conn c;
	struct event wev;
	int w = -1, r = -1;

	if (!CHECK(base && tcp_pair(&w, &r) == 0, "a loopback pair with small buffers"))
		return;
	conn_timeouts_init(&t, base);
	conn_setup(&c);
	conn_open(&c, &t, w, on_event, NULL);
	conn_attach_out(&c, &wev, conn_out_new(), on_event);

	unsigned char *stream = malloc(STREAM);
	for (size_t i = 0; i < STREAM; i++)
		stream[i] = (unsigned char)next();
	struct reader rd = {.fd = r, .want = stream};

	size_t at = 0, outputs = 0, small = 0, blocked_small = 0, cut_large = 0, errors = 0;
	while (at < STREAM) {
		/* One output: 2 to 6 chains; every third one larger than GATHER. */
		size_t chains = 2 + next() % 5, len = 0;
		size_t cap = outputs % 3 == 2 ? 6000 : GATHER / chains;
		for (size_t k = 0; k < chains && at + len < STREAM; k++) {
			size_t n = 1 + next() % cap;
			if (at + len + n > STREAM)
				n = STREAM - at - len;
			if (k % 2)
				evbuffer_add_reference(c.out, stream + at + len, n, NULL, NULL);
			else
				evbuffer_add(c.out, stream + at + len, n);
			len += n;
		}
		outputs++;
		if (len <= GATHER)
			small++;
		int res = conn_flush(&c, 0);
		size_t left = conn_out_len(&c);
		if (res == 1 && len <= GATHER)
			blocked_small++;
		if (res == 1 && len > GATHER && left < len)
			cut_large++;
		while (res == 1) {
			read_some(&rd, 1 + next() % 3000); /* the peer reads a little */
			res = conn_flush(&c, 0);
		}
		if (res < 0)
			errors++;
		at += len;
		if (next() % 4 == 0)
			read_some(&rd, 1 + next() % 3000);
	}
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

	CHECK_EQ_INT(errors, 0, "no write failed");
	CHECK_EQ_INT(rd.got, STREAM, "every byte arrived");
	CHECK_EQ_INT(rd.mismatch, 0, "in order, unchanged");
	CHECK(small > outputs / 2 && small < outputs, "small outputs and large ones were written");
	if (!CHECK(blocked_small > 0, "small gathered outputs found the socket full"))
		printf("#   %zu of %zu\n", blocked_small, small);
	CHECK(cut_large > 0, "large outputs were cut short by a full socket");

	conn_close(&c);
	evbuffer_free(c.out);
	conn_detach_out(&c);
	conn_timeouts_free(&t);
	close(r);
	free(stream);
	event_base_free(base);
}

int main(void)
{
	test_late_reader();
	return tap_done();
}
