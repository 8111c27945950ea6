/*
 * nreq: an HTTP/1.1 load client that sends a fixed number of requests, or
 * opens a fixed number of connections and holds them idle.
 *
 *   nreq [-c CONNS] [-n REQUESTS] [-t SECONDS] HOST PORT PATH
 *       Keep-alive GET PATH over CONNS connections (default 50) until
 *       REQUESTS responses (default 20000) have been received, one request in
 *       flight per connection; then close every connection. Prints
 *       "requests N errors E connections C seconds S rps R" and exits 0, or
 *       1 when the time limit (default 120 s) ends the run first.
 *
 *   nreq -H [-c CONNS] [-p INFLIGHT] [-t SECONDS] HOST PORT PATH
 *       Hold mode: open CONNS connections, at most INFLIGHT (default 50)
 *       opening or waiting for their response at a time; each sends one GET
 *       PATH, reads the response, and then stays open and idle. Prints
 *       "held N errors E seconds S" once all are idle, then waits until
 *       SIGTERM, SIGINT or the time limit, and prints "closed_by_server K"
 *       (connections the server closed while they were held) before closing
 *       them all.
 *
 * A response must carry Content-Length (every proxy measured here sends it);
 * one without it, a status other than 200, a closed or reset connection each
 * count as an error, and the connection is opened again. Only IPv4.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

enum state { ST_CLOSED, ST_CONNECTING, ST_SENDING, ST_HEADER, ST_BODY, ST_IDLE };

#define HDR_MAX 4096

struct conn {
	int fd;
	enum state st;
	size_t sent;        /* bytes of the request written so far */
	size_t hdr_len;     /* bytes of the header section collected so far */
	long long body_left;
	int status;
	int busy;           /* a request is assigned to it and not yet answered */
	char *hdr;          /* HDR_MAX bytes */
};

static struct sockaddr_in addr;
static char request[512];
static size_t request_len;
static int ep;
static volatile sig_atomic_t stop_flag;

static long long target = 20000;  /* responses wanted (request mode) */
static long long done, errors;
static int hold_mode;
static long inflight_max = 50;    /* hold mode: connections opening at once */
static long busy_count;           /* connections with a request not yet answered */
static long idle_count, closed_by_server;

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void on_signal(int sig)
{
	(void)sig;
	stop_flag = 1;
}

static void conn_close(struct conn *c)
{
	if (c->busy) {
		c->busy = 0;
		busy_count--;
	}
	if (c->st == ST_IDLE)
		idle_count--;
	if (c->fd >= 0) {
		epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
		close(c->fd);
	}
	c->fd = -1;
	c->st = ST_CLOSED;
}

static int watch(struct conn *c, int op, unsigned events)
{
	struct epoll_event ev = {.events = events, .data.ptr = c};
	return epoll_ctl(ep, op, c->fd, &ev);
}

/* Open a connection; the request is written once connect() completes. */
static int conn_open(struct conn *c)
{
	c->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (c->fd < 0) {
		perror("nreq: socket");
		return -1;
	}
	int one = 1;
	setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
	if (connect(c->fd, (struct sockaddr *)&addr, sizeof addr) < 0 && errno != EINPROGRESS) {
		close(c->fd);
		c->fd = -1;
		return -1;
	}
	c->st = ST_CONNECTING;
	c->sent = 0;
	c->busy = 1;
	busy_count++;
	if (watch(c, EPOLL_CTL_ADD, EPOLLOUT) < 0) {
		perror("nreq: epoll_ctl");
		conn_close(c);
		return -1;
	}
	return 0;
}

/* Start (or continue) writing the request. */
static void conn_send(struct conn *c)
{
	while (c->sent < request_len) {
		ssize_t n = write(c->fd, request + c->sent, request_len - c->sent);
		if (n < 0) {
			if (errno == EAGAIN || errno == EINTR) {
				if (c->st != ST_SENDING) {
					c->st = ST_SENDING;
					watch(c, EPOLL_CTL_MOD, EPOLLOUT);
				}
				return;
			}
			errors++;
			conn_close(c);
			return;
		}
		c->sent += (size_t)n;
	}
	if (c->st == ST_SENDING || c->st == ST_CONNECTING)
		watch(c, EPOLL_CTL_MOD, EPOLLIN);
	c->st = ST_HEADER;
	c->hdr_len = 0;
	c->status = 0;
	c->body_left = -1;
}

/* Parse a complete header section: status and Content-Length. */
static int parse_header(struct conn *c, size_t end)
{
	c->hdr[end] = '\0';
	if (sscanf(c->hdr, "HTTP/1.%*d %d", &c->status) != 1)
		return -1;
	c->body_left = -1;
	char *line = strstr(c->hdr, "\r\n");
	while (line && line + 2 < c->hdr + end) {
		line += 2;
		if (strncasecmp(line, "content-length:", 15) == 0)
			c->body_left = strtoll(line + 15, NULL, 10);
		line = strstr(line, "\r\n");
	}
	return c->body_left < 0 ? -1 : 0;
}

/* One response has been read whole. */
static void response_done(struct conn *c)
{
	if (c->status != 200)
		errors++;
	c->busy = 0;
	busy_count--;
	if (hold_mode) {
		c->st = ST_IDLE;
		idle_count++;
		return;
	}
	done++;
	if (done + busy_count < target) {
		c->busy = 1;
		busy_count++;
		c->sent = 0;
		c->st = ST_HEADER; /* conn_send moves it on */
		conn_send(c);
	} else {
		conn_close(c);
	}
}

static char rbuf[65536];

static void conn_read(struct conn *c)
{
	for (;;) {
		ssize_t n = read(c->fd, rbuf, sizeof rbuf);
		if (n < 0) {
			if (errno == EAGAIN || errno == EINTR)
				return;
			n = 0; /* reset: handled as a close */
		}
		if (n == 0) {
			if (c->st == ST_IDLE)
				closed_by_server++;
			else
				errors++;
			conn_close(c);
			return;
		}
		size_t off = 0;
		while (off < (size_t)n) {
			if (c->st == ST_HEADER) {
				/* Collect bytes until the blank line ending the header section. */
				size_t take = (size_t)n - off;
				if (take > HDR_MAX - 1 - c->hdr_len)
					take = HDR_MAX - 1 - c->hdr_len;
				memcpy(c->hdr + c->hdr_len, rbuf + off, take);
				size_t scan_from = c->hdr_len >= 3 ? c->hdr_len - 3 : 0;
				c->hdr_len += take;
				c->hdr[c->hdr_len] = '\0';
				char *eoh = memmem(c->hdr + scan_from, c->hdr_len - scan_from, "\r\n\r\n", 4);
				if (!eoh) {
					if (c->hdr_len >= HDR_MAX - 1) {
						errors++;
						conn_close(c);
						return;
					}
					off += take;
					continue;
				}
				size_t hdr_end = (size_t)(eoh - c->hdr) + 4;
				/* Bytes after the header section belong to the body. */
				off += take - (c->hdr_len - hdr_end);
				if (parse_header(c, hdr_end) < 0) {
					errors++;
					conn_close(c);
					return;
				}
				c->st = ST_BODY;
			}
			if (c->st == ST_BODY) {
				long long avail = (long long)((size_t)n - off);
				long long take = avail < c->body_left ? avail : c->body_left;
				c->body_left -= take;
				off += (size_t)take;
				if (c->body_left == 0) {
					response_done(c);
					if (c->st == ST_CLOSED)
						return;
				}
				if (off < (size_t)n && c->st != ST_HEADER) {
					/* Bytes nobody asked for (or arriving on an idle connection). */
					errors++;
					conn_close(c);
					return;
				}
			} else if (c->st == ST_IDLE) {
				errors++;
				conn_close(c);
				return;
			}
		}
	}
}

static void usage(void)
{
	fprintf(stderr, "usage: nreq [-c CONNS] [-n REQUESTS] [-t SECONDS] HOST PORT PATH\n"
	                "       nreq -H [-c CONNS] [-p INFLIGHT] [-t SECONDS] HOST PORT PATH\n");
	exit(2);
}

int main(int argc, char **argv)
{
	long conns = 50;
	double limit = 120;
	int opt;
	while ((opt = getopt(argc, argv, "c:n:t:p:H")) != -1) {
		switch (opt) {
		case 'c': conns = atol(optarg); break;
		case 'n': target = atoll(optarg); break;
		case 't': limit = atof(optarg); break;
		case 'p': inflight_max = atol(optarg); break;
		case 'H': hold_mode = 1; break;
		default: usage();
		}
	}
	if (argc - optind != 3 || conns <= 0 || target <= 0 || inflight_max <= 0 || limit <= 0)
		usage();
	const char *host = argv[optind], *path = argv[optind + 2];
	int port = atoi(argv[optind + 1]);
	memset(&addr, 0, sizeof addr);
	addr.sin_family = AF_INET;
	addr.sin_port = htons((unsigned short)port);
	if (inet_pton(AF_INET, host, &addr.sin_addr) != 1)
		usage();
	int len = snprintf(request, sizeof request, "GET %s HTTP/1.1\r\nHost: %s:%d\r\nUser-Agent: nreq\r\n\r\n",
	                   path, host, port);
	if (len < 0 || (size_t)len >= sizeof request)
		usage();
	request_len = (size_t)len;

	/* Room for every connection, plus a few descriptors. */
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < (rlim_t)conns + 64) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
		getrlimit(RLIMIT_NOFILE, &rl);
		if (rl.rlim_cur < (rlim_t)conns + 16) {
			fprintf(stderr, "nreq: %ld connections need more open files than the limit (%llu); raise ulimit -n\n",
			        conns, (unsigned long long)rl.rlim_cur);
			return 2;
		}
	}

	signal(SIGPIPE, SIG_IGN);
	struct sigaction sa = {.sa_handler = on_signal};
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);

	ep = epoll_create1(EPOLL_CLOEXEC);
	if (ep < 0) {
		perror("nreq: epoll_create1");
		return 2;
	}
	struct conn *cs = calloc((size_t)conns, sizeof *cs);
	if (!cs) {
		perror("nreq: calloc");
		return 2;
	}
	for (long i = 0; i < conns; i++) {
		cs[i].fd = -1;
		cs[i].hdr = malloc(HDR_MAX);
		if (!cs[i].hdr) {
			perror("nreq: malloc");
			return 2;
		}
	}

	double t0 = now(), deadline = t0 + limit;
	long next = 0;   /* hold mode: the next connection to open */
	int held_printed = 0, failed = 0;
	struct epoll_event evs[256];

	for (;;) {
		if (stop_flag)
			break;
		double t = now();
		if (t >= deadline) {
			failed = 1;
			break;
		}
		if (hold_mode) {
			/* Open connections, at most inflight_max waiting at once. */
			while (next < conns && busy_count < inflight_max) {
				if (conn_open(&cs[next]) < 0 && ++errors > conns)
					break;
				next++;
			}
			/* Open again those that failed before they became idle. */
			for (long i = 0; i < next && !held_printed && busy_count < inflight_max; i++) {
				if (cs[i].st == ST_CLOSED && conn_open(&cs[i]) < 0)
					errors++;
			}
			if (errors > conns) {
				fprintf(stderr, "nreq: giving up after %lld errors\n", errors);
				failed = 1;
				break;
			}
			if (!held_printed && next == conns && idle_count == conns) {
				printf("held %ld errors %lld seconds %.3f\n", idle_count, errors, now() - t0);
				fflush(stdout);
				held_printed = 1;
			}
		} else {
			if (done >= target)
				break;
			/* Closed connections take requests that are left. */
			for (long i = 0; i < conns && done + busy_count < target; i++) {
				if (cs[i].st == ST_CLOSED && conn_open(&cs[i]) < 0) {
					errors++;
					break;
				}
			}
			if (errors > target) {
				fprintf(stderr, "nreq: giving up after %lld errors\n", errors);
				failed = 1;
				break;
			}
		}
		int ms = (int)((deadline - t) * 1000) + 1;
		if (ms > 200)
			ms = 200;
		int n = epoll_wait(ep, evs, 256, ms);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			perror("nreq: epoll_wait");
			return 2;
		}
		for (int i = 0; i < n; i++) {
			struct conn *c = evs[i].data.ptr;
			switch (c->st) {
			case ST_CLOSED:
				break;
			case ST_CONNECTING: {
				int err = 0;
				socklen_t el = sizeof err;
				getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &el);
				if (err) {
					errors++;
					conn_close(c);
				} else {
					conn_send(c);
				}
				break;
			}
			case ST_SENDING:
				conn_send(c);
				break;
			default:
				conn_read(c);
			}
		}
	}
	double secs = now() - t0;
	if (hold_mode) {
		if (!held_printed)
			printf("held %lld errors %lld seconds %.3f (incomplete: %ld of %ld opened)\n",
			       (long long)idle_count, errors, secs, next, conns);
		printf("closed_by_server %ld\n", closed_by_server);
	} else {
		printf("requests %lld errors %lld connections %ld seconds %.3f rps %.0f\n", done, errors, conns, secs,
		       secs > 0 ? done / secs : 0.0);
	}
	for (long i = 0; i < conns; i++)
		conn_close(&cs[i]);
	return failed || (!hold_mode && done < target) ? 1 : 0;
}
