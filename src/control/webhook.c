/*
 * webhook.c — the webhook client: POSTs of JSON events on the control
 * plane's loop, each on a connection of its own, none waiting for another.
 *
 * A POST is a small state machine:
 *
 *   resolving (a name only) ──▶ connecting ──▶ exchanging ──▶ ended
 *
 * and ends at the first of: a 2xx or other status read from the response
 * head, a failure to resolve or connect (each address of a name in turn),
 * the connection closing or failing before a status line, a response that
 * is not HTTP/1.x or whose head is over HEAD_MAX, the connect deadline
 * (resolving included) or the total one. Ending logs one line, counts the
 * outcome and frees everything of the POST; nothing is retried.
 *
 * The peer is not trusted: at most HEAD_MAX bytes of head are buffered,
 * the body is never read, and only the status line is interpreted.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/dns.h>
#include <event2/event.h>
#include <event2/util.h>

#include "control/webhook.h"
#include "core/log.h"
#include "core/mem.h"

/* What is read of a response at most: its status line and header fields,
 * with those of any interim (1xx) response before it. */
#define HEAD_MAX (16 * 1024)

enum post_state {
	POST_RESOLVING,   /* a name is being resolved (evdns) */
	POST_CONNECTING,  /* connecting to an address of HOST */
	POST_EXCHANGING,  /* connected: the request goes out, the response head comes in */
};

/* A name lookup's tie to its POST. A lookup of evdns always calls back,
 * even when cancelled (and then on a later turn of the loop), so a POST
 * that ends while resolving only unties itself; the lookup frees itself
 * when evdns calls it back. */
struct lookup {
	struct post *p;                    /* NULL: the POST has ended */
};

struct post {
	struct webhooks *w;
	struct post *prev, *next;          /* w->posts */
	enum post_state state;
	char *url, *what;                  /* for the log */
	char *host;                        /* HOST, without brackets */
	uint16_t port;
	char *req;                         /* the request: head and body */
	size_t reqlen;
	uint32_t connect_ms, total_ms;
	struct lookup *lk;                 /* while resolving */
	struct evutil_addrinfo *ai;        /* a name's addresses, once resolved */
	struct evutil_addrinfo *next_ai;   /* the next of them to try */
	struct sockaddr_storage ss;        /* an IP literal's address, until tried */
	socklen_t sslen;                   /* 0: none (left) */
	struct bufferevent *bev;           /* the connection, from connecting on */
	struct event *connect_timer;       /* connect_ms, when below total_ms */
	struct event *total_timer;         /* total_ms */
	size_t interim;                    /* bytes of 1xx heads read and dropped */
};

struct webhooks {
	struct event_base *base;
	struct evdns_base *dns;            /* created for the first name */
	struct post *posts;                /* in flight */
	size_t inflight;
	uint64_t delivered, failed;        /* __atomic: read from other threads */
};

/* The parts of a webhook URL (pointers into it). */
struct url {
	char host[256];                    /* HOST, without the brackets of IPv6 */
	const char *authority;             /* HOST[:PORT] as written: the Host header */
	size_t authority_len;
	const char *path;                  /* from its '/' or '?' to any '#'; may be empty */
	size_t path_len;
	uint16_t port;
	struct sockaddr_storage ss;        /* HOST's address when it is an IP literal */
	socklen_t sslen;                   /* 0: HOST is a name */
};

static bool is_digit(char c)
{
	return c >= '0' && c <= '9';
}

static bool is_name_char(char c)
{
	return is_digit(c) || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '-' ||
	       c == '.' || c == '_';
}

/* Splits url, http://HOST[:PORT][/PATH], into *u. Returns NULL, or what
 * is wrong with it. */
static const char *parse_url(const char *url, struct url *u)
{
	memset(u, 0, sizeof(*u));
	if (strncmp(url, "http://", 7) != 0)
		return "not http://";
	for (const char *c = url; *c; c++)
		if ((unsigned char)*c <= ' ' || *c == 0x7f)
			return "a space or a control character in it";
	const char *a = url + 7;
	size_t alen = strcspn(a, "/?#");
	const char *aend = a + alen, *h = a, *hend, *colon;
	if (memchr(a, '@', alen))
		return "user info is not supported";
	if (*a == '[') {
		h = a + 1;
		hend = memchr(h, ']', (size_t)(aend - h));
		if (!hend)
			return "no ']' after an IPv6 address";
		colon = hend + 1 < aend ? hend + 1 : NULL;
		if (colon && *colon != ':')
			return "junk after the IPv6 address";
	} else {
		colon = memchr(a, ':', alen);
		hend = colon ? colon : aend;
	}
	size_t hlen = (size_t)(hend - h);
	if (!hlen)
		return "no host";
	if (hlen >= sizeof(u->host))
		return "the host is too long";
	memcpy(u->host, h, hlen);
	u->host[hlen] = '\0';

	u->port = 80;
	if (colon) {
		unsigned long port = 0;
		const char *d = colon + 1;
		if (d == aend || aend - d > 5)
			return "a bad port";
		for (; d < aend; d++) {
			if (!is_digit(*d))
				return "a bad port";
			port = port * 10 + (unsigned long)(*d - '0');
		}
		if (port == 0 || port > 65535)
			return "a bad port";
		u->port = (uint16_t)port;
	}

	if (*a == '[') {
		struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&u->ss;
		if (evutil_inet_pton(AF_INET6, u->host, &sin6->sin6_addr) != 1)
			return "not an IPv6 address between '[' and ']'";
		sin6->sin6_family = AF_INET6;
		sin6->sin6_port = htons(u->port);
		u->sslen = sizeof(*sin6);
	} else {
		struct sockaddr_in *sin = (struct sockaddr_in *)&u->ss;
		if (evutil_inet_pton(AF_INET, u->host, &sin->sin_addr) == 1) {
			sin->sin_family = AF_INET;
			sin->sin_port = htons(u->port);
			u->sslen = sizeof(*sin);
		} else {
			for (const char *c = u->host; *c; c++)
				if (!is_name_char(*c))
					return "not a host name";
		}
	}
	u->authority = a;
	u->authority_len = alen;
	u->path = aend;
	u->path_len = strcspn(aend, "#");
	return NULL;
}

/* What the response head at the start of buf (len bytes) says: -1 when
 * it is not an HTTP/1.x response, 0 when its status line is not all in,
 * 1 when it is (*status) but the head is not, 2 when the whole head is in
 * (*head: its length, its blank line included). */
static int parse_head(const char *buf, size_t len, int *status, size_t *head)
{
	static const char proto[] = "HTTP/1.";
	if (memcmp(buf, proto, len < 7 ? len : 7) != 0)
		return -1;
	const char *lf = memchr(buf, '\n', len);
	if (!lf)
		return 0;
	size_t ll = (size_t)(lf - buf);
	if (ll && buf[ll - 1] == '\r')
		ll--;
	if (ll < 12 || !is_digit(buf[7]) || buf[8] != ' ' || !is_digit(buf[9]) ||
	    !is_digit(buf[10]) || !is_digit(buf[11]) || (ll > 12 && buf[12] != ' ') ||
	    buf[9] == '0')
		return -1;
	*status = (buf[9] - '0') * 100 + (buf[10] - '0') * 10 + (buf[11] - '0');
	/* The head ends with an empty line, "\r\n" or "\n". */
	const char *end = buf + len;
	for (const char *nl = lf; nl; nl = memchr(nl + 1, '\n', (size_t)(end - nl - 1))) {
		const char *next = nl + 1;
		if (next < end && *next == '\n') {
			*head = (size_t)(next + 1 - buf);
			return 2;
		}
		if (next + 1 < end && next[0] == '\r' && next[1] == '\n') {
			*head = (size_t)(next + 2 - buf);
			return 2;
		}
		if (next >= end)
			break;
	}
	return 1;
}

static void post_free(struct post *p)
{
	struct webhooks *w = p->w;
	if (p->lk)
		p->lk->p = NULL;
	if (p->bev)
		bufferevent_free(p->bev);
	event_free(p->connect_timer);
	event_free(p->total_timer);
	if (p->ai)
		evutil_freeaddrinfo(p->ai);
	if (p->prev)
		p->prev->next = p->next;
	else
		w->posts = p->next;
	if (p->next)
		p->next->prev = p->prev;
	__atomic_fetch_sub(&w->inflight, 1, __ATOMIC_RELAXED);
	free(p->url);
	free(p->what);
	free(p->host);
	free(p->req);
	free(p);
}

static void succeed(struct post *p, int status)
{
	__atomic_fetch_add(&p->w->delivered, 1, __ATOMIC_RELAXED);
	log_debug("webhook: %s: POST %s: %d", p->what, p->url, status);
	post_free(p);
}

static void fail(struct post *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void fail(struct post *p, const char *fmt, ...)
{
	char why[256];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(why, sizeof(why), fmt, ap);
	va_end(ap);
	__atomic_fetch_add(&p->w->failed, 1, __ATOMIC_RELAXED);
	log_ratelimited(LOG_WARN, "webhook: %s: POST %s: %s", p->what, p->url, why);
	post_free(p);
}

static void on_read(struct bufferevent *bev, void *arg);
static void on_event(struct bufferevent *bev, short what, void *arg);

/* Starts connecting to sa. Returns 0, or the errno of a failure known at
 * once (then nothing is left of the attempt). The connect(2) is ours, not
 * bufferevent_socket_connect()'s, so that such an errno is exact. */
static int connect_to(struct post *p, const struct sockaddr *sa, socklen_t len)
{
	evutil_socket_t fd = socket(sa->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return errno;
	if (connect(fd, sa, len) < 0 && errno != EINPROGRESS) {
		int err = errno;
		close(fd);
		return err;
	}
	p->bev = bufferevent_socket_new(p->w->base, fd, BEV_OPT_CLOSE_ON_FREE);
	if (!p->bev) {
		close(fd);
		return ENOMEM;
	}
	p->state = POST_CONNECTING;
	bufferevent_setcb(p->bev, on_read, NULL, on_event, p);
	/* Read stops at HEAD_MAX buffered: on_read() then gives up. */
	bufferevent_setwatermark(p->bev, EV_READ, 0, HEAD_MAX);
	evbuffer_add(bufferevent_get_output(p->bev), p->req, p->reqlen);
	/* No address: the socket is connecting already; BEV_EVENT_CONNECTED
	 * or BEV_EVENT_ERROR tells how it ended. Reading is enabled once
	 * connected, so that the error of a refused connection is read by
	 * the connect check (SO_ERROR), not lost to a read. */
	if (bufferevent_socket_connect(p->bev, NULL, 0) < 0) {
		bufferevent_free(p->bev);
		p->bev = NULL;
		return EIO;
	}
	return 0;
}

/* Connects to the next address to try; when none is left, the POST fails
 * with err (the errno of the last attempt, 0 when there was none). */
static void connect_next(struct post *p, int err)
{
	if (p->sslen) {
		socklen_t len = p->sslen;
		p->sslen = 0;
		if ((err = connect_to(p, (const struct sockaddr *)&p->ss, len)) == 0)
			return;
	}
	while (p->next_ai) {
		struct evutil_addrinfo *ai = p->next_ai;
		p->next_ai = ai->ai_next;
		if (ai->ai_family != AF_INET && ai->ai_family != AF_INET6)
			continue;
		if ((err = connect_to(p, ai->ai_addr, (socklen_t)ai->ai_addrlen)) == 0)
			return;
	}
	if (err)
		fail(p, "cannot connect: %s", strerror(err));
	else
		fail(p, "cannot connect: no address for %s", p->host);
}

/* Judges what the response has sent so far; eof: it will send no more
 * (err: the errno of a connection that failed rather than closed). */
static void judge(struct post *p, bool eof, int err)
{
	struct evbuffer *in = bufferevent_get_input(p->bev);
	for (;;) {
		size_t len = evbuffer_get_length(in), head = 0;
		int status = 0;
		int r = len ? parse_head((const char *)evbuffer_pullup(in, -1), len, &status, &head)
		            : 0;
		if (r < 0) {
			fail(p, "an invalid response (not HTTP/1.x)");
			return;
		}
		if (r == 2 && status < 200 && status != 101) {
			/* An interim response: the final one follows. */
			evbuffer_drain(in, head);
			p->interim += head;
			continue;
		}
		if (r == 2 || (r == 1 && eof)) {
			if (status >= 200 && status <= 299)
				succeed(p, status);
			else
				fail(p, "answered %d", status);
			return;
		}
		if (eof) {
			if (err)
				fail(p, "the connection closed before a response (%s)",
				     strerror(err));
			else
				fail(p, "the connection closed before a response");
			return;
		}
		if (p->interim + len >= HEAD_MAX)
			fail(p, "a response head over %u bytes", HEAD_MAX);
		return;
	}
}

static void on_read(struct bufferevent *bev, void *arg)
{
	(void)bev;
	judge(arg, false, 0);
}

static void on_event(struct bufferevent *bev, short what, void *arg)
{
	struct post *p = arg;
	int err = EVUTIL_SOCKET_ERROR();

	if (what & BEV_EVENT_CONNECTED) {
		p->state = POST_EXCHANGING;
		evtimer_del(p->connect_timer);
		bufferevent_enable(bev, EV_READ);
		return;
	}
	if (p->state == POST_CONNECTING) {
		bufferevent_free(p->bev);
		p->bev = NULL;
		connect_next(p, err ? err : EIO);
		return;
	}
	judge(p, true, (what & BEV_EVENT_ERROR) ? err : 0);
}

static void on_connect_deadline(evutil_socket_t fd, short what, void *arg)
{
	struct post *p = arg;
	(void)fd;
	(void)what;
	if (p->state == POST_RESOLVING)
		fail(p, "%s not resolved within %ums", p->host, p->connect_ms);
	else
		fail(p, "not connected within %ums", p->connect_ms);
}

static void on_total_deadline(evutil_socket_t fd, short what, void *arg)
{
	struct post *p = arg;
	(void)fd;
	(void)what;
	if (p->state == POST_RESOLVING)
		fail(p, "%s not resolved within %ums", p->host, p->total_ms);
	else if (p->state == POST_CONNECTING)
		fail(p, "not connected within %ums", p->total_ms);
	else
		fail(p, "no answer within %ums", p->total_ms);
}

static void on_resolved(int err, struct evutil_addrinfo *ai, void *arg)
{
	struct lookup *lk = arg;
	struct post *p = lk->p;

	free(lk);
	if (!p) {
		if (ai)
			evutil_freeaddrinfo(ai);
		return;
	}
	p->lk = NULL;
	if (err) {
		if (ai)
			evutil_freeaddrinfo(ai);
		fail(p, "cannot resolve %s: %s", p->host, evutil_gai_strerror(err));
		return;
	}
	p->ai = p->next_ai = ai;
	connect_next(p, 0);
}

static void arm(struct event *ev, uint32_t ms)
{
	struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
	evtimer_add(ev, &tv);
}

struct webhooks *webhooks_new(struct event_base *base)
{
	struct webhooks *w = xcalloc(1, sizeof(*w));
	w->base = base;
	return w;
}

void webhooks_free(struct webhooks *w)
{
	if (!w)
		return;
	while (w->posts)
		post_free(w->posts);
	/* Lookups still running were untied from their POSTs above: evdns
	 * calls them back with an error on a later turn of the loop, and
	 * they free themselves. Failing them (1) rather than dropping them
	 * is what frees evdns's own state of each. */
	if (w->dns)
		evdns_base_free(w->dns, 1);
	free(w);
}

static void refuse(struct webhooks *w, const char *what, const char *url, const char *fmt, ...)
        __attribute__((format(printf, 4, 5)));
static void refuse(struct webhooks *w, const char *what, const char *url, const char *fmt, ...)
{
	char why[256];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(why, sizeof(why), fmt, ap);
	va_end(ap);
	__atomic_fetch_add(&w->failed, 1, __ATOMIC_RELAXED);
	log_ratelimited(LOG_WARN, "webhook: %s: POST %s: not sent: %s", what, url, why);
}

int webhooks_post(struct webhooks *w, const char *url, const char *body, size_t len,
                  uint32_t connect_ms, uint32_t total_ms, const char *what)
{
	struct url u;
	const char *bad = NULL;

	if (!what)
		what = "event";
	if (!url || (bad = parse_url(url, &u))) {
		refuse(w, what, url ? url : "(none)", "not an http://HOST[:PORT][/PATH] URL: %s",
		       url ? bad : "none");
		return -1;
	}
	if (w->inflight >= WEBHOOKS_MAX_INFLIGHT) {
		refuse(w, what, url, "%d POSTs in flight already", WEBHOOKS_MAX_INFLIGHT);
		return -1;
	}

	struct post *p = xcalloc(1, sizeof(*p));
	p->w = w;
	p->next = w->posts;
	if (w->posts)
		w->posts->prev = p;
	w->posts = p;
	__atomic_fetch_add(&w->inflight, 1, __ATOMIC_RELAXED);
	p->url = xstrdup(url);
	p->what = xstrdup(what);
	p->host = xstrdup(u.host);
	p->port = u.port;
	p->connect_ms = connect_ms;
	p->total_ms = total_ms;

	char *head = xasprintf("POST %s%.*s HTTP/1.1\r\nHost: %.*s\r\n"
	                       "Content-Type: application/json\r\nContent-Length: %zu\r\n"
	                       "Connection: close\r\nUser-Agent: zdm\r\n\r\n",
	                       u.path_len && u.path[0] == '/' ? "" : "/", (int)u.path_len, u.path,
	                       (int)u.authority_len, u.authority, len);
	size_t hlen = strlen(head);
	p->req = xrealloc(head, hlen + len + 1);
	if (len)
		memcpy(p->req + hlen, body, len);
	p->reqlen = hlen + len;

	p->connect_timer = evtimer_new(w->base, on_connect_deadline, p);
	p->total_timer = evtimer_new(w->base, on_total_deadline, p);
	if (connect_ms && connect_ms < total_ms)
		arm(p->connect_timer, connect_ms);
	arm(p->total_timer, total_ms);

	/* From here on the POST may end (and p be freed) before a call
	 * returns: nothing of p is touched after the last one. */
	if (u.sslen) {
		p->ss = u.ss;
		p->sslen = u.sslen;
		connect_next(p, 0);
		return 0;
	}
	if (!w->dns)
		w->dns = evdns_base_new(w->base, EVDNS_BASE_INITIALIZE_NAMESERVERS |
		                                         EVDNS_BASE_DISABLE_WHEN_INACTIVE);
	if (!w->dns) {
		fail(p, "cannot resolve %s: no resolver (see /etc/resolv.conf)", p->host);
		return 0;
	}
	struct evutil_addrinfo hints = {
	        .ai_family = AF_UNSPEC,
	        .ai_socktype = SOCK_STREAM,
	        .ai_protocol = IPPROTO_TCP,
	};
	char port[8];
	snprintf(port, sizeof(port), "%u", (unsigned)u.port);
	p->state = POST_RESOLVING;
	p->lk = xcalloc(1, sizeof(*p->lk));
	p->lk->p = p;
	/* A name of /etc/hosts is answered at once, from inside the call. */
	evdns_getaddrinfo(w->dns, p->host, port, &hints, on_resolved, p->lk);
	return 0;
}

uint64_t webhooks_delivered(const struct webhooks *w)
{
	return __atomic_load_n(&w->delivered, __ATOMIC_RELAXED);
}

uint64_t webhooks_failed(const struct webhooks *w)
{
	return __atomic_load_n(&w->failed, __ATOMIC_RELAXED);
}

size_t webhooks_inflight(const struct webhooks *w)
{
	return __atomic_load_n(&w->inflight, __ATOMIC_RELAXED);
}
