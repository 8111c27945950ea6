/*
 * upstream.c — upstream connections: connect, reuse, response parsing.
 *
 * A connection belongs to one worker and one server. While it serves a
 * session it parses the response in its receive block and hands the session
 * offsets into that block (head, body runs), which the session forwards by
 * reference. Between requests it sits in its server's idle list with only
 * the read event armed, so a close by the server (or upstream_idle passing)
 * frees it at once instead of failing the next request.
 */
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/ssl.h>

#include "core/config.h"
#include "core/log.h"
#include "core/mem.h"
#include "net/tls.h"
#include "proxy/pipe.h"
#include "proxy/session.h"
#include "proxy/snapshot.h"
#include "proxy/stats.h"
#include "proxy/upstream.h"
#include "proxy/worker.h"

#define MAX_FREE_UPCONNS 1024

/* timeouts.upstream_response of the request being served, its route's
 * (tunnel_idle once it is a tunnel). */
static uint32_t response_ms(const struct upconn *u)
{
	if (u->s && u->s->x && u->s->x->resp_timeout_ms)
		return u->tunnel ? u->s->x->tunnel_idle_ms : u->s->x->resp_timeout_ms;
	return u->w->cfg->timeouts.upstream_response_ms;
}

static void on_read(evutil_socket_t fd, short what, void *arg);
static void on_write(evutil_socket_t fd, short what, void *arg);
static void upstream_handshake(struct upconn *u);

static struct timeval ms_tv(uint32_t ms)
{
	struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
	return tv;
}

static struct upconn *upconn_alloc(struct worker *w)
{
	struct upconn *u = w->free_upconns;
	if (u) {
		w->free_upconns = u->next;
		w->nfree_upconns--;
	} else {
		u = xcalloc(1, sizeof(*u));
		conn_setup(&u->c);
		u->out = conn_out_new();
	}
	u->w = w;
	u->next = u->prev = NULL;
	u->s = NULL;
	return u;
}

static void splice_end(struct upconn *u);

static void upconn_free(struct upconn *u)
{
	struct worker *w = u->w;
	splice_end(u);
	conn_close(&u->c);
	u->s = NULL;
	if (w->nfree_upconns < MAX_FREE_UPCONNS) {
		u->next = w->free_upconns;
		w->free_upconns = u;
		w->nfree_upconns++;
	} else {
		conn_destroy(&u->c);
		conn_out_free(u->out);
		free(u);
	}
}

static void idle_unlink(struct upconn *u)
{
	struct server_rt *rt = &u->w->servers[u->server_id];
	if (u->prev)
		u->prev->next = u->next;
	else
		rt->idle = u->next;
	if (u->next)
		u->next->prev = u->prev;
	u->next = u->prev = NULL;
	rt->nidle--;
}

static void reset_exchange(struct upconn *u, struct session *s)
{
	u->s = s;
	u->state = UC_ACTIVE;
	u->in_body = false;
	u->got_byte = false;
	u->dechunk = false;
	u->tunnel = false;
	u->req_sent = false;
	u->interim = 0;
	u->errnum = 0;
	u->resp.on_body = NULL;
}

struct upconn *upstream_get(struct worker *w, const struct snapshot *snap, int pool,
                            const struct snap_server *sv, struct session *s, bool fresh)
{
	/* Idle connections are kept for the worker's current layout only; a
	 * request routed with an older snapshot (a reload came in between)
	 * gets a new connection. */
	bool current = snap->cfg == w->cfg;
	struct server_rt *rt = &w->servers[sv->id];

	while (current && !fresh && rt->idle) {
		struct upconn *u = rt->idle;
		idle_unlink(u);
		if (u->c.eof) {
			upconn_free(u);
			continue;
		}
		/* The read event stays armed (no epoll change); only its
		 * deadline is changed by upstream_start(). */
		u->reused = true;
		reset_exchange(u, s);
		return u;
	}

	/* A socket that cannot be made, or a connect that fails at once, gives
	 * NULL with errno telling why: the caller tells a failure of the
	 * server from one of this process (resource_error_kind). */
	const struct cfg_server *sc = sv->cfg;
	int fd = socket(sc->addr.ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		int err = errno;
		if (resource_error_kind(err) < 0)
			log_ratelimited(LOG_ERROR, "upstream %s (%s): cannot create a socket: %s",
			                sc->name, sc->addr.text, strerror(err));
		errno = err;
		return NULL;
	}
	int one = 1;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if (connect(fd, (const struct sockaddr *)&sc->addr.ss, sc->addr.len) < 0 &&
	    errno != EINPROGRESS) {
		int err = errno;
		if (resource_error_kind(err) < 0)
			log_ratelimited(LOG_WARN, "upstream %s (%s): connect failed: %s", sc->name,
			                sc->addr.text, strerror(err));
		close(fd);
		errno = err;
		return NULL;
	}

	struct upconn *u = upconn_alloc(w);
	conn_open(&u->c, &w->timeouts, fd, on_read, u);
	conn_attach_out(&u->c, &u->wev, u->out, on_write);
	http_msg_init(&u->resp, HTTP_RESPONSE, u);
	u->srv = sc;
	u->server_id = sv->id;
	u->layout = snap->cfg;
	u->tls = snap->tls ? snap->tls->pool[pool] : NULL;
	u->sni = snap->pools[pool].cfg->tls.sni;
	u->reused = false;
	reset_exchange(u, s);
	u->state = UC_CONNECTING;
	struct timeval tv = ms_tv(w->cfg->timeouts.connect_ms);
	event_add(u->c.wev, &tv);
	return u;
}

void upstream_start(struct upconn *u, bool head_request)
{
	/* Reset for every response, as the session does for requests:
	 * llhttp's own view of the connection must not carry over (an
	 * HTTP/1.0 response it reads as not kept alive, a spliced body it
	 * never saw). */
	http_msg_reset(&u->resp);
	u->resp.skip_body = head_request;
	u->parse_pos = u->c.rx_start;
	if (u->c.rx)
		http_msg_begin(&u->resp, u->c.rx->data, u->c.rx_start);
	else
		http_msg_begin(&u->resp, NULL, 0);
	/* While the request body is still streaming, the upstream owes no
	 * response yet: a timeout then is ignored (on_read), and the full
	 * timeouts.upstream_response runs from upstream_request_sent(). The
	 * event stays armed throughout, so re-arming it never needs an epoll
	 * change. */
	if (u->state == UC_ACTIVE)
		conn_want_read(&u->c, true, response_ms(u));
}

void upstream_request_sent(struct upconn *u)
{
	u->req_sent = true;
	if (u->state == UC_ACTIVE)
		conn_want_read(&u->c, true, response_ms(u));
}

void upstream_flush(struct upconn *u)
{
	if (u->state != UC_ACTIVE)
		return;
	/* A failed write shows up as an error on the read side, which is
	 * armed while the connection is active. */
	conn_flush(&u->c, response_ms(u));
}

void upstream_pause(struct upconn *u, bool paused)
{
	if (u->state != UC_ACTIVE)
		return;
	conn_want_read(&u->c, !paused, response_ms(u));
}

void upstream_release(struct upconn *u, bool reusable)
{
	struct worker *w = u->w;

	u->s = NULL;
	if (!reusable || u->state != UC_ACTIVE || u->c.eof || u->tunnel ||
	    u->c.rx_end != u->c.rx_start || conn_out_len(&u->c) || w->draining ||
	    u->layout != w->cfg) {
		upconn_free(u);
		return;
	}
	conn_rx_settle(&u->c);
	u->state = UC_IDLE;
	struct server_rt *rt = &w->servers[u->server_id];
	u->prev = NULL;
	u->next = rt->idle;
	if (rt->idle)
		rt->idle->prev = u;
	rt->idle = u;
	rt->nidle++;
	/* Watch the idle connection: data or a close from the server, or the
	 * idle timeout, ends it. */
	conn_want_read(&u->c, true, w->cfg->timeouts.upstream_idle_ms);
}

static int fail(struct upconn *u, enum up_error err)
{
	struct session *s = u->s;
	if (!s) {
		upconn_free(u);
		return -1;
	}
	return session_on_upstream_error(s, u, err);
}

/*
 * Splicing a response body (see pipe.h): from the upstream socket through
 * a pipe to the client socket. The pipe holds at most its capacity; reading
 * the upstream pauses while it is full, and writing to the client waits
 * until the client's earlier output (the head) is flushed.
 */
static void splice_end(struct upconn *u)
{
	if (u->pipe)
		splice_pipe_put(u->w, u->pipe, u->in_pipe == 0);
	u->pipe = NULL;
	u->in_pipe = 0;
	u->splice_left = 0;
	u->splicing = false;
}

/* Whether the rest of the current response body should be spliced. */
static bool splice_wanted(const struct upconn *u)
{
	const struct session *s = u->s;
	return s && u->in_body && !u->dechunk && !u->tunnel && !u->c.ssl && !s->c.ssl &&
	       !http_msg_chunked(&u->resp) && http_msg_content_length(&u->resp) >= SPLICE_MIN &&
	       s->state != SS_CLOSING;
}

static int splice_start(struct upconn *u)
{
	u->pipe = splice_pipe_get(u->w);
	if (!u->pipe)
		return 0; /* no pipe: the body goes through user space */
	u->splicing = true;
	u->splice_left = http_msg_content_length(&u->resp);
	u->in_pipe = 0;
	upstream_splice(u);
	return -1;
}

void upstream_splice(struct upconn *u)
{
	struct session *s = u->s;
	const struct config *cfg = u->w->cfg;
	bool client_blocked = false, upstream_dry = false;

	for (;;) {
		bool moved = false;
		if (u->in_pipe && !client_blocked) {
			/* The client gets its earlier output first. */
			int r = conn_out_len(&s->c) ? conn_flush(&s->c, cfg->timeouts.client_write_ms) : 0;
			if (r < 0) {
				session_on_client_gone(s);
				return;
			}
			if (r > 0) {
				client_blocked = true; /* its write event is armed */
			} else {
				ssize_t n = splice_pipe_drain(u->pipe, s->c.fd, &u->in_pipe);
				if (n > 0) {
					s->x->resp_bytes += (uint64_t)n;
					STAT_ADD(u->w->spliced_bytes, (uint64_t)n);
					moved = true;
				} else if (n < 0 && errno == EAGAIN) {
					client_blocked = true;
					conn_wait_writable(&s->c, cfg->timeouts.client_write_ms);
				} else {
					log_debug("client %s: %s while sending a response body", s->ip,
					          n < 0 ? strerror(errno) : "closed");
					session_on_client_gone(s);
					return;
				}
			}
		}
		if (u->splice_left && u->in_pipe < u->pipe->size && !upstream_dry) {
			ssize_t n = splice_pipe_fill(u->pipe, u->c.fd, &u->in_pipe, &u->splice_left);
			if (n > 0) {
				moved = true;
			} else if (n < 0 && errno == EAGAIN) {
				upstream_dry = true;
			} else {
				/* Closed or reset before the body was complete. */
				if (n == 0)
					u->c.eof = true;
				fail(u, UP_ERR_RESET);
				return;
			}
		}
		if (!u->splice_left && !u->in_pipe) {
			/* The whole body went out: the message is complete. */
			splice_end(u);
			/* The parser stopped inside the body: upstream_start
			 * resets it for the next response. */
			session_on_response_done(s, u);
			return;
		}
		if (!moved)
			break;
	}
	/* Read the upstream while the pipe has room. */
	conn_want_read(&u->c, u->splice_left && u->in_pipe < u->pipe->size,
	               response_ms(u));
}

/* Parses what the receive block holds beyond parse_pos and reports it.
 * Returns -1 once u must not be touched any more. */
static int parse_response(struct upconn *u)
{
	struct conn *c = &u->c;

	u->got_byte = true;
	if (u->tunnel) {
		uint32_t off = c->rx_start, len = c->rx_end - c->rx_start;
		c->rx_start = c->rx_end;
		u->parse_pos = c->rx_end;
		return session_on_response_body(u->s, u, off, len);
	}
	/* After a pause (end of a head) the parser is fed again even with no
	 * bytes: a message without a body completes without any. */
	bool again = false;
	while (u->parse_pos < c->rx_end || again) {
		size_t k;
		again = false;
		uint32_t at = u->parse_pos;
		enum http_step step =
		        http_msg_feed(&u->resp, c->rx->data + at, c->rx_end - at, &k);

		if (step == HTTP_ERROR) {
			log_ratelimited(LOG_WARN, "upstream %s (%s): response invalid: %s",
			                u->srv->name, u->srv->addr.text,
			                u->resp.error_reason ? u->resp.error_reason : "parse error");
			return fail(u, UP_ERR_INVALID);
		}
		u->parse_pos = at + (uint32_t)k;
		if (!u->in_body) {
			if (step == HTTP_NEED_MORE)
				return 0; /* head incomplete: it stays in the block */
			if (step != HTTP_HEAD_DONE)
				return fail(u, UP_ERR_INVALID);
			int status = http_msg_status(&u->resp);
			if (status < 200 && status != 101 && ++u->interim > HTTP_MAX_INTERIM) {
				/* Interim responses without end would hold the
				 * client: one past the bound is not relayed. */
				log_ratelimited(LOG_WARN, "upstream %s (%s): more than %d interim "
				                "responses", u->srv->name, u->srv->addr.text,
				                HTTP_MAX_INTERIM);
				return fail(u, UP_ERR_INVALID);
			}
			u->in_body = true;
			c->rx_start = u->parse_pos;
			if (session_on_response_head(u->s, u) < 0)
				return -1;
			again = true;
			continue;
		}
		/* Raw bytes go out as they came (chunk framing included); when
		 * de-chunking, the parser's body callback queued the spans and
		 * a zero-length call flushes them. */
		if ((k || u->dechunk) &&
		    session_on_response_body(u->s, u, u->dechunk ? 0 : at,
		                             u->dechunk ? 0 : (uint32_t)k) < 0)
			return -1;
		c->rx_start = u->parse_pos;
		if (step == HTTP_NEED_MORE)
			return splice_wanted(u) ? splice_start(u) : 0;
		/* The message is complete. */
		int status = http_msg_status(&u->resp);
		if (status == 101 || step == HTTP_UPGRADE) {
			u->tunnel = true;
			if (c->rx_end > c->rx_start)
				return parse_response(u);
			return 0;
		}
		if (status < 200) {
			/* An interim response: the final one follows. */
			u->in_body = false;
			http_msg_begin(&u->resp, c->rx->data, u->parse_pos);
			continue;
		}
		return session_on_response_done(u->s, u);
	}
	return 0;
}

static void on_read(evutil_socket_t fd, short what, void *arg)
{
	struct upconn *u = arg;
	struct worker *w = u->w;
	(void)fd;

	if (u->state == UC_HANDSHAKE) {
		if (what & EV_TIMEOUT)
			fail(u, UP_ERR_CONNECT);
		else
			upstream_handshake(u);
		return;
	}
	if (u->state == UC_IDLE) {
		/* Anything on an idle connection ends it. */
		idle_unlink(u);
		upconn_free(u);
		return;
	}
	if (what & EV_TIMEOUT) {
		if (u->tunnel) {
			session_on_tunnel_timeout(u->s, &u->c);
			return;
		}
		if (!u->req_sent)
			return; /* the request is still streaming in */
		fail(u, UP_ERR_TIMEOUT);
		return;
	}
	if (u->splicing) {
		upstream_splice(u);
		return;
	}

	struct buf *before = u->c.rx;
	uint32_t before_start = u->c.rx_start;
	size_t max_block = w->cfg->limits.max_header_bytes + w->bufs.block_size;
	ssize_t n = conn_recv(&u->c, &w->bufs, max_block);
	if (u->c.rx && (u->c.rx != before || before_start != u->c.rx_start)) {
		/* The block was replaced or rewound (even by a read that then
		 * found nothing): parse the pending bytes again from their new
		 * place. Only an incomplete head is ever pending; body bytes are
		 * forwarded as soon as they are parsed. */
		u->parse_pos = u->c.rx_start;
		if (!u->in_body) {
			http_msg_reset(&u->resp);
			http_msg_begin(&u->resp, u->c.rx->data, u->c.rx_start);
		}
	}
	if (n == -2)
		return;
	if (n == -3) {
		log_ratelimited(LOG_WARN, "upstream response head over %zu bytes", max_block);
		fail(u, UP_ERR_INVALID);
		return;
	}
	if (n < 0) {
		fail(u, UP_ERR_RESET);
		return;
	}
	if (n == 0) {
		if (u->tunnel) {
			fail(u, UP_ERR_RESET);
			return;
		}
		if (u->in_body && http_msg_needs_eof(&u->resp) && http_msg_finish(&u->resp) == 0) {
			session_on_response_done(u->s, u);
			return;
		}
		fail(u, UP_ERR_RESET);
		return;
	}
	u->resp.base = u->c.rx->data;
	if (conn_tls_pending(&u->c))
		event_active(&u->c.rev, EV_READ, 0); /* more decrypted bytes wait */
	parse_response(u);
}

/* The TLS handshake with the server, within timeouts.connect; then the
 * queued request goes out. */
static void upstream_handshake(struct upconn *u)
{
	struct worker *w = u->w;
	struct timeval tv = {w->cfg->timeouts.connect_ms / 1000,
	                     (w->cfg->timeouts.connect_ms % 1000) * 1000};
	char e[256];

	switch (conn_handshake(&u->c)) {
	case CONN_HS_DONE:
		u->state = UC_ACTIVE;
		event_del(u->c.wev);
		conn_want_read(&u->c, true, response_ms(u));
		if (conn_flush(&u->c, response_ms(u)) == 0 && u->s)
			session_on_upstream_drained(u->s, u);
		return;
	case CONN_HS_WANT_READ:
		event_del(u->c.wev);
		conn_want_read(&u->c, true, w->cfg->timeouts.connect_ms);
		return;
	case CONN_HS_WANT_WRITE:
		event_add(u->c.wev, &tv);
		return;
	default:
		log_ratelimited(LOG_WARN, "upstream %s (%s): TLS handshake failed: %s",
		                u->srv->name, u->srv->addr.text, tls_error_text(e, sizeof(e)));
		u->errnum = EPROTO;
		fail(u, UP_ERR_CONNECT);
		return;
	}
}

static void on_write(evutil_socket_t fd, short what, void *arg)
{
	struct upconn *u = arg;

	if (u->c.ssl_read_blocked) {
		u->c.ssl_read_blocked = false;
		event_active(&u->c.rev, EV_READ, 0);
	}

	if (u->state == UC_CONNECTING) {
		int err = 0;
		socklen_t len = sizeof(err);
		if (what & EV_TIMEOUT)
			err = ETIMEDOUT;
		else if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
			err = errno;
		if (err) {
			/* The session logs it, with the client and the request. */
			u->errnum = err;
			log_debug("upstream %s (%s): connect failed: %s", u->srv->name,
			          u->srv->addr.text, strerror(err));
			fail(u, UP_ERR_CONNECT);
			return;
		}
		if (u->tls) {
			u->c.ssl = tls_connect(u->tls, u->c.fd, u->sni, &u->srv->addr);
			if (!u->c.ssl) {
				fail(u, UP_ERR_CONNECT);
				return;
			}
			u->state = UC_HANDSHAKE;
			upstream_handshake(u);
			return;
		}
		u->state = UC_ACTIVE;
		event_del(u->c.wev);
		conn_want_read(&u->c, true, response_ms(u));
		/* fall through to write what was queued meanwhile */
	} else if (u->state == UC_HANDSHAKE) {
		if (what & EV_TIMEOUT)
			fail(u, UP_ERR_CONNECT);
		else
			upstream_handshake(u);
		return;
	} else if (what & EV_TIMEOUT) {
		fail(u, UP_ERR_TIMEOUT);
		return;
	}
	int r = conn_flush(&u->c, response_ms(u));
	if (r < 0) {
		fail(u, UP_ERR_RESET);
		return;
	}
	if (r == 0 && u->s)
		session_on_upstream_drained(u->s, u);
}

size_t upstream_close_idle(struct worker *w)
{
	size_t n = 0;
	if (!w->snap)
		return 0;
	for (size_t i = 0; i < w->snap->nservers; i++) {
		while (w->servers[i].idle) {
			struct upconn *u = w->servers[i].idle;
			idle_unlink(u);
			upconn_free(u);
			n++;
		}
	}
	return n;
}

void upstream_free_all(struct worker *w)
{
	upstream_close_idle(w);
	while (w->free_upconns) {
		struct upconn *u = w->free_upconns;
		w->free_upconns = u->next;
		conn_destroy(&u->c);
		conn_out_free(u->out);
		free(u);
	}
	w->nfree_upconns = 0;
}
