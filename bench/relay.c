/*
 * relay: the cheapest thing a user-space proxy can be, for the benchmark's
 * "floor" row.
 *
 *   relay LISTEN_PORT UPSTREAM_PORT [UPSTREAM_PORT2 WEIGHT1 WEIGHT2]
 *
 * Listens on 127.0.0.1:LISTEN_PORT; each accepted connection gets its own
 * connection to 127.0.0.1:UPSTREAM_PORT (or, with two upstreams, to one of
 * them in the ratio WEIGHT1:WEIGHT2, chosen per connection), and bytes are
 * copied both ways as they come: one recv(2) and one send(2) per readable
 * event, with epoll and TCP_NODELAY, as a proxy does. There is no HTTP: no
 * parsing, no header added, no routing per request, no timers.
 *
 * For keep-alive request/response traffic this makes exactly the socket
 * calls per request that an HTTP proxy cannot avoid (a read and a write on
 * each side, plus epoll), so its CPU time per request is what the kernel
 * charges for them on this machine; what a real proxy spends above it is
 * its own work. Not a proxy: nothing is checked, a peer that closes or
 * fails ends its pair, and a send that would block parks the rest of the
 * data until the socket is writable again.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#define BUF 16384

struct end {
	int fd;
	uint32_t events;    /* what epoll watches on fd */
	struct end *peer;
	size_t off, len;    /* bytes read from this end not yet sent to the peer */
	char buf[BUF];
};

static int ep;
static struct end closed; /* stands for an end closed earlier in a batch */

static int tcp_socket(void)
{
	int one = 1;
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd >= 0)
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	return fd;
}

static struct sockaddr_in loopback(int port)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	return a;
}

static void watch(struct end *e, int op, uint32_t events)
{
	struct epoll_event ev = { .events = events, .data.ptr = e };
	e->events = events;
	epoll_ctl(ep, op, e->fd, &ev);
}

/* Watches e for what it can do now: read while it holds nothing, write
 * while its peer holds data for it. Only a change costs an epoll_ctl, so
 * in the steady state (every send completes) there is none. */
static void rearm(struct end *e)
{
	uint32_t want = (e->len ? 0 : EPOLLIN) | (e->peer->len ? EPOLLOUT : 0);
	if (want != e->events)
		watch(e, EPOLL_CTL_MOD, want);
}

static void close_pair(struct end *e)
{
	struct end *p = e->peer;
	close(e->fd);
	close(p->fd);
	free(e);
	free(p);
}

/* Sends what e holds to its peer, until done or the peer's socket is full
 * (the rest stays parked in e); false on an error. */
static bool flush(struct end *e)
{
	while (e->len) {
		ssize_t n = send(e->peer->fd, e->buf + e->off, e->len, MSG_NOSIGNAL | MSG_DONTWAIT);
		if (n < 0 && errno == EAGAIN)
			return true;
		if (n <= 0)
			return false;
		e->off += (size_t)n;
		e->len -= (size_t)n;
	}
	e->off = 0;
	return true;
}

/* One epoll event on e; false when the pair is finished. */
static bool on_event(struct end *e, uint32_t events)
{
	/* Writable: what the peer parked goes to e. */
	if ((events & EPOLLOUT) && !flush(e->peer))
		return false;
	if (events & (EPOLLIN | EPOLLHUP | EPOLLERR)) {
		if (!e->len) {
			ssize_t n = recv(e->fd, e->buf, BUF, 0);
			if (n == 0 || (n < 0 && errno != EAGAIN))
				return false;
			if (n > 0) {
				e->len = (size_t)n;
				if (!flush(e))
					return false;
			}
		} else if (events & (EPOLLHUP | EPOLLERR)) {
			/* e is not read while it holds data, but a hangup or an
			 * error is reported anyway. */
			return false;
		}
	}
	rearm(e);
	rearm(e->peer);
	return true;
}

static void accept_one(int lfd, const struct sockaddr_in *up, const int *w, int nup)
{
	static unsigned long count;
	int cfd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
	if (cfd < 0)
		return;
	int one = 1;
	setsockopt(cfd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	/* Connection k goes to the second upstream when floor(k w2 / (w1 + w2))
	 * steps up: spread evenly, so any 10 consecutive connections are split
	 * 9:1 with weights 90 and 10. */
	int which = 0;
	if (nup == 2) {
		unsigned long sum = (unsigned long)w[0] + (unsigned long)w[1], k = count++;
		which = (k + 1) * (unsigned long)w[1] / sum > k * (unsigned long)w[1] / sum;
	}
	int ufd = tcp_socket();
	if (ufd < 0 || (connect(ufd, (const struct sockaddr *)&up[which], sizeof(up[which])) < 0 &&
	                errno != EINPROGRESS)) {
		close(cfd);
		if (ufd >= 0)
			close(ufd);
		return;
	}
	struct end *c = calloc(1, sizeof(*c)), *u = calloc(1, sizeof(*u));
	if (!c || !u) {
		free(c);
		free(u);
		close(cfd);
		close(ufd);
		return;
	}
	c->fd = cfd;
	u->fd = ufd;
	c->peer = u;
	u->peer = c;
	watch(c, EPOLL_CTL_ADD, EPOLLIN);
	/* A request read before the connect completes is parked in c until the
	 * upstream is writable, like any other data a full socket holds up. */
	watch(u, EPOLL_CTL_ADD, EPOLLIN);
}

int main(int argc, char **argv)
{
	if (argc != 3 && argc != 6) {
		fprintf(stderr, "usage: relay LISTEN_PORT UPSTREAM_PORT [UPSTREAM_PORT2 WEIGHT1 WEIGHT2]\n");
		return 2;
	}
	struct sockaddr_in up[2] = { loopback(atoi(argv[2])) };
	int w[2] = { 1, 0 }, nup = 1;
	if (argc == 6) {
		up[1] = loopback(atoi(argv[3]));
		w[0] = atoi(argv[4]);
		w[1] = atoi(argv[5]);
		nup = w[0] > 0 && w[1] > 0 ? 2 : 1;
	}
	signal(SIGPIPE, SIG_IGN);

	int one = 1;
	int lfd = tcp_socket();
	struct sockaddr_in la = loopback(atoi(argv[1]));
	setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(lfd, (struct sockaddr *)&la, sizeof(la)) < 0 || listen(lfd, 4096) < 0) {
		perror("relay: listen");
		return 1;
	}
	ep = epoll_create1(EPOLL_CLOEXEC);
	struct epoll_event lev = { .events = EPOLLIN, .data.ptr = NULL };
	epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &lev);

	struct epoll_event evs[256];
	for (;;) {
		int n = epoll_wait(ep, evs, 256, -1);
		if (n < 0 && errno != EINTR) {
			perror("relay: epoll_wait");
			return 1;
		}
		for (int i = 0; i < n; i++) {
			struct end *e = evs[i].data.ptr;
			if (!e) {
				accept_one(lfd, up, w, nup);
				continue;
			}
			if (e == &closed)
				continue;
			if (!on_event(e, evs[i].events)) {
				/* The other end may still be in this batch: mark it. */
				for (int j = i + 1; j < n; j++)
					if (evs[j].data.ptr == e->peer)
						evs[j].data.ptr = &closed;
				close_pair(e);
			}
		}
	}
}
