/*
 * session.c — client connections: the request side of the relay.
 *
 * A session reads requests into its receive block and parses them in place.
 * When a head is complete it is checked (framing, limits), routed (pin,
 * split, server) and forwarded to an upstream connection as runs of the
 * bytes received plus the few header lines the proxy adds; body bytes follow
 * by reference as they arrive. Responses come back through the session_on_*
 * hooks and go to the client the same way. One request is in flight per
 * client connection: pipelined requests wait in the block until the
 * response before them is complete.
 *
 * Every function that may close the session returns -1 when it did; the
 * caller must then return without touching it.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <openssl/err.h>
#include <openssl/ssl.h>

#include "accesslog.h"
#include "config.h"
#include "log.h"
#include "mem.h"
#include "session.h"
#include "snapshot.h"
#include "tls.h"
#include "upstream.h"
#include "worker.h"
#include "workers.h"

#define MAX_FREE_SESSIONS 1024

static void on_client_read(evutil_socket_t fd, short what, void *arg);
static void on_client_write(evutil_socket_t fd, short what, void *arg);
static int process(struct session *s);

static const struct config *cfg_of(const struct session *s)
{
	return s->w->cfg;
}

static uint64_t mono_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000 + (uint64_t)ts.tv_nsec / 1000;
}

static uint64_t now_ms(struct worker *w)
{
	struct timeval tv;
	event_base_gettimeofday_cached(w->base, &tv);
	return (uint64_t)tv.tv_sec * 1000 + (uint64_t)tv.tv_usec / 1000;
}

static struct session *session_alloc(struct worker *w)
{
	struct session *s = w->free_sessions;
	if (s) {
		w->free_sessions = s->next;
		w->nfree_sessions--;
	} else {
		s = xcalloc(1, sizeof(*s));
		conn_setup(&s->c);
	}
	s->w = w;
	s->up = NULL;
	s->stat = NULL;
	s->snap = NULL;
	s->prev = NULL;
	s->next = w->sessions;
	if (w->sessions)
		w->sessions->prev = s;
	w->sessions = s;
	STAT_ADD(w->nsessions, 1);
	return s;
}

/* The request is over: the snapshot it was routed with is let go. */
static void request_end(struct session *s)
{
	if (s->snap) {
		snapshot_release(s->snap);
		s->snap = NULL;
	}
}

/* Attaches connection u, serving server sv of the session's snapshot, and
 * counts the request for that server. */
static void attach(struct session *s, struct upconn *u, const struct snap_server *sv)
{
	struct worker *w = s->w;
	s->up = u;
	s->stat = &s->snap->stats->shard[w->id].srv[sv->id];
	STAT_ADD(s->stat->requests, 1);
	STAT_ADD(s->stat->inflight, 1);
	s->server_id = sv->id;
	s->outcome_told = false;
	s->probe = sv->probing;
}

/* A server whose circuit is half-open takes a request only while it has a
 * probe slot: the slot is taken here, before anything is sent. */
static bool admit(struct session *s, const struct snap_server *sv)
{
	return !sv->probing || worker_report(s->w, s->snap, sv->id, WORKER_ADMITTED, NULL) > 0;
}

/* Tells the server's circuit breaker how the exchange went. Only what can
 * change its state crosses to the control plane: failures, outcomes of
 * probes, and successes while it counts failures. */
static bool worth_telling(const struct session *s, uint32_t server_id, int result)
{
	if (s->snap->cfg != s->w->cfg)
		return false; /* routed before a reload: its server layout is gone */
	if (result < 0 && !s->probe)
		return false;
	if (result > 0 && !s->probe && !STAT_GET(s->snap->stats->streak[server_id]))
		return false;
	return true;
}

static void tell_outcome(struct session *s, uint32_t server_id, int result, const char *what)
{
	struct worker *w = s->w;
	if (!worth_telling(s, server_id, result))
		return;
	worker_report(w, s->snap, server_id,
	              result > 0 ? WORKER_SUCCESS : result == 0 ? WORKER_FAILURE : WORKER_ABANDONED,
	              what);
}

static void outcome(struct session *s, int result, const char *what)
{
	if (!s->stat || s->outcome_told)
		return;
	s->outcome_told = true;
	tell_outcome(s, s->server_id, result, what);
}

/* The request is answered (status, 0 if nothing was sent): counts it for
 * its pool and server (either may be -1) and writes its access log line. */
static void finish_request(struct session *s, int status, int pool, int server)
{
	struct worker *w = s->w;
	if (!s->snap || !s->t_start_us)
		return;
	uint64_t now = mono_us(), dur = now - s->t_start_us;
	struct stats_shard *sh = &s->snap->stats->shard[w->id];
	if (server >= 0 && status)
		STAT_ADD(sh->srv[server].codes[stats_class(status)], 1);
	else if (pool >= 0 && status)
		STAT_ADD(sh->pool[pool].codes[stats_class(status)], 1);
	stats_record(sh, pool, status, dur, now / 1000000);
	s->t_start_us = 0;

	if (!w->alog)
		return;
	const struct snap_pool *p = pool >= 0 ? &s->snap->pools[pool] : NULL;
	const char *sname = "-";
	if (p && server >= 0)
		sname = p->servers[server - (int)p->first_id].cfg->name;
	struct access_entry e = {
	        .client = s->ip,
	        .method = llhttp_method_name(s->method),
	        .target = s->target,
	        .target_len = s->target_len,
	        .status = status,
	        .bytes = s->resp_bytes,
	        .duration_us = dur,
	        .pool = p ? p->cfg->name : "-",
	        .server = sname,
	        .pinned = s->route.pinned,
	        .id = (uint64_t)w->id << 48 | ++w->request_ids,
	};
	accesslog_write(w->alog, &e);
}

/* Lets go of the upstream connection (back to its idle list when
 * reusable); failed counts a failure for its server. */
static void detach(struct session *s, bool reusable, bool failed)
{
	struct upconn *u = s->up;
	s->up = NULL;
	outcome(s, -1, NULL); /* ended with no outcome told: nothing to learn */
	if (s->stat) {
		STAT_ADD(s->stat->inflight, -1);
		if (failed)
			STAT_ADD(s->stat->failures, 1);
		s->stat = NULL;
	}
	if (u)
		upstream_release(u, reusable);
}

/* Closes the client connection, drops any upstream exchange, and recycles
 * the session. */
static void session_close(struct session *s)
{
	struct worker *w = s->w;

	if (s->t_start_us && (s->state == SS_BODY || s->state == SS_WAIT || s->state == SS_TUNNEL))
		/* The client went away mid-request: logged with what was sent. */
		finish_request(s, s->resp_status, s->route.pool, s->stat ? (int)s->server_id : -1);
	detach(s, false, false);
	request_end(s);
	conn_close(&s->c);
	if (s->prev)
		s->prev->next = s->next;
	else
		w->sessions = s->next;
	if (s->next)
		s->next->prev = s->prev;
	STAT_ADD(w->nsessions, -1);
	worker_session_closed(w);

	if (w->nfree_sessions < MAX_FREE_SESSIONS) {
		s->next = w->free_sessions;
		w->free_sessions = s;
		w->nfree_sessions++;
	} else {
		conn_destroy(&s->c);
		free(s);
	}
}

void session_accept(struct worker *w, int fd, const struct sockaddr *sa, socklen_t salen,
                    struct ssl_ctx_st *tls)
{
	struct session *s = session_alloc(w);
	int one = 1;

	(void)salen;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	conn_open(&s->c, w->base, fd, on_client_read, on_client_write, s);
	http_msg_init(&s->req, HTTP_REQUEST, s);
	s->snap = NULL;
	s->tls = tls != NULL;
	s->state = SS_IDLE;
	if (tls) {
		s->c.ssl = tls_accept(tls, fd);
		if (!s->c.ssl) {
			log_error("client: cannot start a TLS session");
			session_close(s);
			return;
		}
		s->state = SS_HANDSHAKE;
		s->head_deadline_ms = now_ms(w) + w->cfg->timeouts.request_header_ms;
	}
	s->close_after = false;

	if (sa->sa_family == AF_INET6) {
		const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)sa;
		if (IN6_IS_ADDR_V4MAPPED(&sin6->sin6_addr))
			inet_ntop(AF_INET, &sin6->sin6_addr.s6_addr[12], s->ip, sizeof(s->ip));
		else
			inet_ntop(AF_INET6, &sin6->sin6_addr, s->ip, sizeof(s->ip));
	} else {
		inet_ntop(AF_INET, &((const struct sockaddr_in *)sa)->sin_addr, s->ip, sizeof(s->ip));
	}
	s->ip_len = (uint8_t)strlen(s->ip);
	/* The first request is due within request_header, like any request
	 * once begun; between requests a keep-alive client has client_idle. */
	conn_want_read(&s->c, true, w->cfg->timeouts.request_header_ms);
}

/* Closes once the output is written; stops reading meanwhile. */
static int close_when_flushed(struct session *s)
{
	detach(s, false, false);
	int r = conn_flush(&s->c, cfg_of(s)->timeouts.client_idle_ms);
	if (r != 1) {
		session_close(s);
		return -1;
	}
	s->state = SS_CLOSING;
	conn_want_read(&s->c, false, 0);
	return 0;
}

/* Answers with a self-made response, counted and logged for pool and
 * server (either may be -1). The connection is closed after it if close is
 * set; otherwise the session goes on with the next request. */
static int respond(struct session *s, int status, bool close, int pool, int server)
{
	size_t len;
	const char *text = http_error_response(status, close || s->close_after || !s->keep_alive,
	                                       &len);

	evbuffer_add_reference(s->c.out, text, len, NULL, NULL);
	s->resp_started = true;
	s->resp_bytes += len;
	s->resp_status = status;
	finish_request(s, status, pool, server);
	if (close || s->close_after || !s->keep_alive)
		return close_when_flushed(s);
	if (conn_flush(&s->c, cfg_of(s)->timeouts.client_idle_ms) < 0) {
		session_close(s);
		return -1;
	}
	return 0;
}

/* Rejects a request the proxy will not forward: the answer, then close
 * (the rest of the connection's bytes cannot be trusted to be framed). */
static int reject(struct session *s, int status, const char *reason)
{
	log_debug("client %s: %d: %s", s->ip, status, reason ? reason : "");
	if (s->t_start_us) {
		s->resp_bytes = 0;
		s->method = http_msg_method(&s->req);
	}
	return respond(s, status, true, -1, -1);
}

/* Appends the request head to out: the runs of received bytes that are
 * kept, then the lines the proxy adds, then the blank line. */
static void forward_head(struct session *s, struct evbuffer *out)
{
	struct http_run runs[HTTP_MAX_HEADERS + 1];
	const struct http_head *h = &s->req.head;
	const char *base = s->c.rx->data;
	size_t n = http_head_runs(h, runs);

	for (size_t i = 0; i < n; i++)
		buf_add_ref(out, s->c.rx, runs[i].off, runs[i].len);

	/* X-Forwarded-For: what the client sent, then the client. */
	evbuffer_add(out, "X-Forwarded-For: ", 17);
	for (uint32_t i = 0; i < h->nhdrs; i++) {
		const struct http_hdr *hd = &h->hdrs[i];
		if (hd->kind != HK_X_FORWARDED_FOR || !hd->value_len)
			continue;
		evbuffer_add(out, base + hd->value, hd->value_len);
		evbuffer_add(out, ", ", 2);
	}
	evbuffer_add(out, s->ip, s->ip_len);
	evbuffer_add(out, "\r\nX-Real-IP: ", 13);
	evbuffer_add(out, s->ip, s->ip_len);
	if (s->tls)
		evbuffer_add(out, "\r\nX-Forwarded-Proto: https\r\n", 28);
	else
		evbuffer_add(out, "\r\nX-Forwarded-Proto: http\r\n", 27);
	if (h->conn_tokens & HTTP_CONN_UPGRADE)
		evbuffer_add(out, "Connection: upgrade\r\n", 21);
	else if (s->version == 10)
		evbuffer_add(out, "Connection: keep-alive\r\n", 24);
	evbuffer_add(out, "\r\n", 2);
}

/* Attaches a connection to the chosen server, retrying once on another
 * server when no socket can be made at all. Returns 0 with s->up set, or
 * the status to answer. */
static int attach_upstream(struct session *s)
{
	struct worker *w = s->w;
	const struct snap_pool *p = &s->snap->pools[s->route.pool];

	const struct snap_server *sv = &p->servers[s->route.server];
	if (!admit(s, sv)) {
		/* Its probe slots went to requests of other workers. */
		struct route_choice next;
		if (route_retry(s->snap, &w->rr, &s->route, &next))
			return 503;
		s->route = next;
		p = &s->snap->pools[next.pool];
		sv = &p->servers[next.server];
		if (!admit(s, sv))
			return 503;
	}
	struct upconn *u = upstream_get(w, s->snap, s->route.pool, sv, s, false);
	if (u) {
		attach(s, u, sv);
		return 0;
	}
	STAT_ADD(s->snap->stats->shard[w->id].srv[sv->id].failures, 1);
	tell_outcome(s, sv->id, 0, errno == ECONNREFUSED ? "connect refused" : "connect failed");
	struct route_choice next;
	if (s->retried || route_retry(s->snap, &w->rr, &s->route, &next))
		return 502;
	s->retried = true;
	s->route = next;
	p = &s->snap->pools[next.pool];
	sv = &p->servers[next.server];
	if (!admit(s, sv))
		return 502;
	u = upstream_get(w, s->snap, next.pool, sv, s, false);
	if (!u) {
		STAT_ADD(s->snap->stats->shard[w->id].srv[sv->id].failures, 1);
		tell_outcome(s, sv->id, 0, errno == ECONNREFUSED ? "connect refused" : "connect failed");
		return 502;
	}
	attach(s, u, sv);
	return 0;
}

/* The head is complete: note what the request is and check it. Returns 0,
 * or -1 when the request was refused (and the session closed or closing). */
static int check_request(struct session *s)
{
	struct worker *w = s->w;
	const char *reason = NULL;

	s->method = http_msg_method(&s->req);
	s->version = http_msg_version(&s->req);
	s->keep_alive = http_msg_keep_alive(&s->req) && !w->draining;
	s->req_done = s->resp_started = s->retried = s->stale_retried = false;
	s->replayable = http_method_idempotent(s->method) && !http_msg_chunked(&s->req) &&
	                http_msg_content_length(&s->req) == 0;

	if (w->alog) {
		/* The target outlives its receive block only in the log line. */
		const struct http_head *h = &s->req.head;
		size_t n = h->url_len < sizeof(s->target) ? h->url_len : sizeof(s->target);
		memcpy(s->target, s->c.rx->data + h->url, n);
		s->target_len = (uint16_t)n;
	}
	int status = http_req_check(&s->req, w->cfg->limits.max_body_bytes, &reason);
	if (status)
		return reject(s, status, reason);
	return 0;
}

/* Routes the checked request and forwards its head. Returns 0 with s->up
 * set, 0 without s->up when the proxy answered itself, or -1. */
static int start_exchange(struct session *s)
{
	struct worker *w = s->w;
	const struct config *cfg = s->snap->cfg;

	int pin = s->req.head.pin >= 0 ? (int)cfg->pins[s->req.head.pin].pool : -1;
	int status = route_pick(s->snap, &w->rr, pin, &s->route);
	if (pin >= 0)
		STAT_ADD(s->snap->stats->shard[w->id].pool[pin].pinned, 1);
	if (!status)
		status = attach_upstream(s);
	if (status) {
		/* Unread body bytes would be taken for the next request: a
		 * request with a body ends the connection. */
		bool has_body = http_msg_chunked(&s->req) || http_msg_content_length(&s->req);
		int pool = pin >= 0 ? pin : status == 502 ? s->route.pool : -1;
		return respond(s, status, has_body, pool, -1);
	}
	forward_head(s, s->up->c.out);
	upstream_start(s->up, s->method == HTTP_HEAD);
	return 0;
}

/* The response is complete and the upstream let go: next request. */
static int end_exchange(struct session *s)
{
	request_end(s);
	if (s->close_after || !s->keep_alive || s->w->draining)
		return close_when_flushed(s);
	s->state = SS_IDLE;
	s->c.rx_start = s->parse_pos;
	return process(s);
}

/* Queues request body bytes [off, off+len) of the block for the upstream. */
static void forward_body(struct session *s, uint32_t off, uint32_t len)
{
	if (len && s->up)
		buf_add_ref(s->up->c.out, s->c.rx, off, len);
}

/* Forwards the request body bytes [at, at+k) that the parser reported with
 * step, and waits for more or for the response. */
static int body_step(struct session *s, enum http_step step, uint32_t at, size_t k)
{
	const struct config *cfg = s->w->cfg;
	struct conn *c = &s->c;

	s->parse_pos = at + (uint32_t)k;
	c->rx_start = s->parse_pos;
	forward_body(s, at, (uint32_t)k);
	upstream_flush(s->up);
	if (step == HTTP_NEED_MORE) {
		if (conn_out_len(&s->up->c) > RELAY_HIGH_WATER)
			conn_want_read(c, false, 0); /* resumed when drained */
		else
			conn_want_read(c, true, cfg->timeouts.client_idle_ms);
		return 0;
	}
	/* The request is complete: the response is awaited. The client
	 * stays watched so that its close is seen; pipelined bytes wait in
	 * the block. Its timeout is ignored while waiting (the upstream's
	 * runs), but kept so that the event never needs an epoll change. */
	s->req_done = true;
	s->state = SS_WAIT;
	upstream_request_sent(s->up);
	return 0;
}

static int process(struct session *s)
{
	struct worker *w = s->w;
	const struct config *cfg = w->cfg;
	struct conn *c = &s->c;

	for (;;) {
		size_t k;
		uint32_t at;
		enum http_step step;

		switch (s->state) {
		case SS_IDLE:
			if (conn_rx_len(c) == 0) {
				if (w->draining) {
					session_close(s);
					return -1;
				}
				conn_rx_settle(c);
				conn_want_read(c, true, cfg->timeouts.client_idle_ms);
				return 0;
			}
			s->state = SS_HEAD;
			s->parse_pos = c->rx_start;
			/* The request is routed with the snapshot current as it
			 * begins, whatever changes while it is handled. */
			worker_refresh(w);
			s->snap = snapshot_hold(w->snap);
			s->t_start_us = mono_us();
			s->resp_bytes = 0;
			s->resp_status = 0;
			s->target_len = 0;
			s->route.pinned = false;
			s->req.pins = s->snap->cfg->pins;
			s->req.npins = s->snap->cfg->npins;
			http_msg_begin(&s->req, c->rx->data, c->rx_start);
			s->head_deadline_ms = now_ms(w) + cfg->timeouts.request_header_ms;
			conn_want_read(c, true, cfg->timeouts.request_header_ms);
			/* fall through */
		case SS_HEAD:
			step = http_msg_feed(&s->req, c->rx->data + s->parse_pos,
			                     c->rx_end - s->parse_pos, &k);
			if (step == HTTP_ERROR)
				return reject(s, s->req.error_status, s->req.error_reason);
			s->parse_pos += (uint32_t)k;
			if (s->parse_pos - c->rx_start > cfg->limits.max_header_bytes)
				return reject(s, 431, "header section too large");
			if (step == HTTP_NEED_MORE) {
				uint64_t now = now_ms(w);
				uint64_t left = s->head_deadline_ms > now ? s->head_deadline_ms - now : 1;
				conn_want_read(c, true, (uint32_t)left);
				return 0;
			}
			if (check_request(s) < 0)
				return -1;
			/* The body bytes already here are parsed (and their framing
			 * checked) before anything is forwarded, so a request that
			 * arrives whole and malformed never reaches an upstream. */
			at = s->parse_pos;
			step = http_msg_feed(&s->req, c->rx->data + at, c->rx_end - at, &k);
			if (step == HTTP_ERROR)
				return reject(s, s->req.error_status, s->req.error_reason);
			if (start_exchange(s) < 0)
				return -1;
			if (!s->up) {
				/* Answered by the proxy itself. */
				if (s->state == SS_CLOSING)
					return 0;
				llhttp_reset(&s->req.parser);
				request_end(s);
				c->rx_start = s->parse_pos;
				s->state = SS_IDLE;
				continue;
			}
			s->state = SS_BODY;
			return body_step(s, step, at, k);
		case SS_BODY:
			at = s->parse_pos;
			step = http_msg_feed(&s->req, c->rx->data + at, c->rx_end - at, &k);
			if (step == HTTP_ERROR) {
				int status = s->req.error_status ? s->req.error_status : 400;
				/* The upstream saw part of the request:
				 * closing the connection discards it. */
				detach(s, false, false);
				if (s->resp_started)
					return close_when_flushed(s);
				return reject(s, status, s->req.error_reason);
			}
			return body_step(s, step, at, k);
		case SS_TUNNEL:
			if (conn_rx_len(c) && s->up) {
				buf_add_ref(s->up->c.out, c->rx, c->rx_start, conn_rx_len(c));
				c->rx_start = c->rx_end;
				s->parse_pos = c->rx_end;
				upstream_flush(s->up);
			}
			return 0;
		case SS_HANDSHAKE:
		case SS_WAIT:
		case SS_CLOSING:
			return 0;
		}
	}
}

/* Drives the TLS handshake; once done the session reads requests. Returns
 * -1 when the session was closed. */
static int handshake(struct session *s)
{
	struct conn *c = &s->c;
	switch (conn_handshake(c)) {
	case CONN_HS_DONE:
		event_del(&c->wev);
		s->state = SS_IDLE;
		conn_want_read(c, true, s->w->cfg->timeouts.request_header_ms);
		/* The first request may already sit in the TLS buffers. */
		event_active(&c->rev, EV_READ, 0);
		return 0;
	case CONN_HS_WANT_READ: {
		/* The whole handshake has request_header: a client that
		 * drips bytes does not get more time by each of them. */
		uint64_t now = now_ms(s->w);
		event_del(&c->wev);
		if (now >= s->head_deadline_ms) {
			STAT_ADD(s->w->tls_handshake_failures, 1);
			session_close(s);
			return -1;
		}
		conn_want_read(c, true, (uint32_t)(s->head_deadline_ms - now));
		return 0;
	}
	case CONN_HS_WANT_WRITE:
		event_add(&c->wev, NULL);
		return 0;
	default:
		STAT_ADD(s->w->tls_handshake_failures, 1);
		log_debug("client %s: TLS handshake failed", s->ip);
		ERR_clear_error();
		session_close(s);
		return -1;
	}
}

static void on_client_read(evutil_socket_t fd, short what, void *arg)
{
	struct session *s = arg;
	struct worker *w = s->w;
	struct conn *c = &s->c;
	(void)fd;

	if (s->state == SS_HANDSHAKE) {
		if (what & EV_TIMEOUT) {
			STAT_ADD(s->w->tls_handshake_failures, 1);
			session_close(s); /* a client that stalls its handshake */
		} else {
			handshake(s);
		}
		return;
	}
	if (what & EV_TIMEOUT) {
		if (s->state == SS_WAIT)
			return; /* timeouts.upstream_response applies */
		if (s->state == SS_HEAD) {
			log_debug("client %s: request head not complete in time", s->ip);
			reject(s, 408, "request header timeout");
		} else {
			session_close(s);
		}
		return;
	}
	if (s->state == SS_CLOSING) {
		conn_want_read(c, false, 0);
		return;
	}

	struct buf *before = c->rx;
	uint32_t before_start = c->rx_start;
	size_t max_block = w->cfg->limits.max_header_bytes + 1;
	if (max_block < w->bufs.block_size)
		max_block = w->bufs.block_size;
	ssize_t n = conn_recv(c, &w->bufs, max_block);
	if (c->rx && (c->rx != before || c->rx_start != before_start)) {
		/* The block was replaced or rewound (even by a read that then
		 * found nothing): only unparsed or head bytes were pending;
		 * parse them from their new place. */
		s->parse_pos = c->rx_start;
		if (s->state == SS_HEAD) {
			llhttp_reset(&s->req.parser);
			http_msg_begin(&s->req, c->rx->data, c->rx_start);
		}
	}
	if (c->rx)
		s->req.base = c->rx->data;
	if (n == -2)
		return;
	if (conn_tls_pending(c))
		event_active(&c->rev, EV_READ, 0); /* TLS holds more than the block took */
	if (s->state == SS_WAIT) {
		/* Bytes while a response is awaited: a pipelined request,
		 * parsed after the response; or the client's end. */
		if (n == 0) {
			s->close_after = true; /* half-closed: answer, then close */
			conn_want_read(c, false, 0);
			return;
		}
		if (n < 0 && n != -3) {
			session_close(s);
			return;
		}
		if (n == -3 || c->rx_end == c->rx->size)
			conn_want_read(c, false, 0); /* the block is full: wait */
		return;
	}
	if (n == -3) {
		reject(s, 431, "header section too large");
		return;
	}
	if (n <= 0) {
		/* The client closed or reset: whatever was in flight for it
		 * has no one to go to. */
		session_close(s);
		return;
	}
	process(s);
}

static void on_client_write(evutil_socket_t fd, short what, void *arg)
{
	struct session *s = arg;
	(void)fd;

	if (s->state == SS_HANDSHAKE) {
		handshake(s);
		return;
	}
	if (s->c.ssl_read_blocked) {
		/* The read that wanted the socket writable goes on. */
		s->c.ssl_read_blocked = false;
		event_active(&s->c.rev, EV_READ, 0);
	}

	if (what & EV_TIMEOUT) {
		log_debug("client %s: not reading its response, closing", s->ip);
		session_close(s);
		return;
	}
	int r = conn_flush(&s->c, cfg_of(s)->timeouts.client_idle_ms);
	if (r < 0 || (r == 0 && s->state == SS_CLOSING)) {
		session_close(s);
		return;
	}
	if (s->up && s->up->splicing) {
		if (r == 0)
			upstream_splice(s->up);
		return;
	}
	if (s->up && conn_out_len(&s->c) < RELAY_LOW_WATER)
		upstream_pause(s->up, false);
}

/* Body bytes of a de-chunked response, from the parser's callback: queued
 * here, written by the zero-length session_on_response_body() that follows. */
static void dechunk_body(struct http_msg *m, const char *at, size_t len)
{
	struct upconn *u = m->owner;
	if (u->s)
		u->s->resp_bytes += len;
	if (u->s)
		buf_add_ref(u->s->c.out, u->c.rx, (uint32_t)(at - u->c.rx->data), (uint32_t)len);
}

int session_on_response_head(struct session *s, struct upconn *u)
{
	const struct config *cfg = cfg_of(s);
	struct http_msg *m = &u->resp;
	int status = http_msg_status(m);
	const char *reason = NULL;
	struct evbuffer *out = s->c.out;

	http_resp_check(m, &reason);
	bool interim = status < 200 && status != 101;
	if (interim && s->version == 10)
		return 0; /* no interim responses to HTTP/1.0 clients */
	if (status == 101 && !http_msg_upgrade(&s->req)) {
		log_warn("upstream answered 101 to a request that did not ask to upgrade");
		return session_on_upstream_error(s, u, UP_ERR_INVALID);
	}

	if (!interim && s->stat && !s->outcome_told) {
		int result = status < 500 ? 1 : 0;
		if (worth_telling(s, s->server_id, result)) {
			char what[32];
			snprintf(what, sizeof(what), "%d response", status);
			outcome(s, result, what);
		}
		s->outcome_told = true;
	}
	bool keep = !interim && s->keep_alive && !s->close_after && !s->w->draining;
	if (!interim && status != 101) {
		if (http_msg_upgrade(&s->req))
			keep = false; /* the request parser is past an upgrade */
		if (http_msg_needs_eof(m))
			keep = false; /* the body ends when the upstream closes */
		if (s->version == 10 && http_msg_chunked(m)) {
			/* HTTP/1.0 has no chunked coding: send the bare body and
			 * end it by closing. */
			for (uint32_t i = 0; i < m->head.nhdrs; i++)
				if (m->head.hdrs[i].kind == HK_TRANSFER_ENCODING)
					m->head.hdrs[i].drop = 1;
			u->dechunk = true;
			u->resp.on_body = dechunk_body;
			keep = false;
		}
		if (!keep)
			s->close_after = true;
	}

	struct http_run runs[HTTP_MAX_HEADERS + 1];
	size_t n = http_head_runs(&m->head, runs);
	size_t before = evbuffer_get_length(out);
	for (size_t i = 0; i < n; i++)
		buf_add_ref(out, u->c.rx, runs[i].off, runs[i].len);
	if (!interim) {
		s->resp_status = status;
		if (cfg->expose_pool_header) {
			const char *name = s->snap->pools[s->route.pool].cfg->name;
			evbuffer_add(out, "X-Zdm-Pool: ", 12);
			evbuffer_add(out, name, strlen(name));
			evbuffer_add(out, "\r\n", 2);
		}
		if (status == 101)
			evbuffer_add(out, "Connection: upgrade\r\n", 21);
		else if (!keep)
			evbuffer_add(out, "Connection: close\r\n", 19);
		else if (s->version == 10)
			evbuffer_add(out, "Connection: keep-alive\r\n", 24);
		s->resp_started = true;
	}
	evbuffer_add(out, "\r\n", 2);
	s->resp_bytes += evbuffer_get_length(out) - before;

	if (status == 101) {
		/* A tunnel idle for timeouts.client_idle either way ends. */
		s->state = SS_TUNNEL;
		conn_want_read(&s->c, true, cfg->timeouts.client_idle_ms);
		conn_want_read(&u->c, true, cfg->timeouts.client_idle_ms);
		if (process(s) < 0)
			return -1;
	}
	/* Written with the first body bytes, or when the message ends: one
	 * write for a small response. */
	if ((interim || status == 101) && conn_flush(&s->c, cfg->timeouts.client_idle_ms) < 0) {
		session_close(s);
		return -1;
	}
	return 0;
}

int session_on_response_body(struct session *s, struct upconn *u, uint32_t off, uint32_t len)
{
	s->resp_bytes += len;
	if (len)
		buf_add_ref(s->c.out, u->c.rx, off, len);
	if (conn_flush(&s->c, cfg_of(s)->timeouts.client_idle_ms) < 0) {
		session_close(s);
		return -1;
	}
	if (conn_out_len(&s->c) > RELAY_HIGH_WATER)
		upstream_pause(u, true); /* resumed by on_client_write */
	return 0;
}

int session_on_response_done(struct session *s, struct upconn *u)
{
	bool reusable = s->req_done && http_msg_keep_alive(&u->resp);

	finish_request(s, s->resp_status, s->route.pool, (int)s->server_id);
	detach(s, reusable, false);
	if (!s->req_done)
		s->close_after = true; /* the rest of the request body is unread */
	if (conn_flush(&s->c, cfg_of(s)->timeouts.client_idle_ms) < 0) {
		session_close(s);
		return -1;
	}
	end_exchange(s);
	return -1;
}

int session_on_client_gone(struct session *s)
{
	session_close(s);
	return -1;
}

int session_on_upstream_drained(struct session *s, struct upconn *u)
{
	(void)u;
	if (s->state == SS_BODY && !s->c.reading)
		conn_want_read(&s->c, true, cfg_of(s)->timeouts.client_idle_ms);
	return 0;
}

static const char *const error_names[] = {
	[UP_ERR_CONNECT] = "connect failed",
	[UP_ERR_TIMEOUT] = "timed out",
	[UP_ERR_RESET] = "connection closed or reset",
	[UP_ERR_INVALID] = "invalid response",
};

/* Moves the exchange to another connection after a failure that happened
 * before any response byte. The request bytes not yet written move along
 * (chain transfer, no copy); a replayed request gets its head again. */
static int switch_upstream(struct session *s, struct upconn *u, struct upconn *nu,
                           const struct snap_server *sv, bool replay)
{
	if (replay)
		forward_head(s, nu->c.out);
	else
		evbuffer_add_buffer(nu->c.out, u->c.out);
	detach(s, false, true);
	attach(s, nu, sv);
	upstream_start(nu, s->method == HTTP_HEAD);
	if (s->req_done)
		upstream_request_sent(nu);
	upstream_flush(nu);
	return -1;
}

int session_on_upstream_error(struct session *s, struct upconn *u, enum up_error err)
{
	struct worker *w = s->w;
	const struct snap_pool *p = &s->snap->pools[s->route.pool];
	const struct cfg_server *sc = u->srv;

	const char *what = err != UP_ERR_CONNECT        ? error_names[err]
	                   : u->errnum == ECONNREFUSED ? "connect refused"
	                   : u->errnum == ETIMEDOUT    ? "connect timed out"
	                                               : "connect failed";
	log_warn("client %s %s: upstream %s/%s (%s): %s%s", s->ip,
	         llhttp_method_name(s->method), p->cfg->name, sc->name, sc->addr.text, what,
	         s->resp_started ? " mid-response" : "");
	outcome(s, 0, what);
	if (s->stat)
		STAT_ADD(s->stat->errors[err], 1);

	if (s->state == SS_TUNNEL || s->resp_started) {
		finish_request(s, s->resp_status, s->route.pool, (int)s->server_id);
		detach(s, false, s->state != SS_TUNNEL);
		session_close(s);
		return -1;
	}

	/* A request that can be sent again: idempotent, no body, its head
	 * still in the block, and no response byte came back. */
	bool replay = err == UP_ERR_RESET && !u->got_byte && s->replayable && s->req_done;

	if (replay && u->reused && !s->stale_retried) {
		/* A reused connection the server had closed as the request
		 * went out (the keep-alive race): sent again on a new
		 * connection to the same server; not counted as the retry. */
		s->stale_retried = true;
		const struct snap_server *sv = &p->servers[s->route.server];
		struct upconn *nu = upstream_get(w, s->snap, s->route.pool, sv, s, true);
		if (nu)
			return switch_upstream(s, u, nu, sv, true);
	} else if ((err == UP_ERR_CONNECT || replay) && !s->retried) {
		/* Refused, or reset before any response byte: once more on
		 * another server. After a connect failure nothing was
		 * written and the queued bytes move along. */
		struct route_choice next;
		s->retried = true;
		if (route_retry(s->snap, &w->rr, &s->route, &next) == 0) {
			const struct snap_server *sv = &s->snap->pools[next.pool].servers[next.server];
			struct upconn *nu =
			        admit(s, sv) ? upstream_get(w, s->snap, next.pool, sv, s, false) : NULL;
			if (nu) {
				s->route = next;
				return switch_upstream(s, u, nu, sv, replay);
			}
		}
	}

	int status = err == UP_ERR_TIMEOUT ? 504 : 502;
	int server = (int)s->server_id;
	detach(s, false, true);
	if (respond(s, status, !s->req_done, s->route.pool, server) < 0)
		return -1;
	if (s->state == SS_CLOSING)
		return -1;
	if (s->req_done)
		end_exchange(s);
	return -1;
}

void session_drain_all(struct worker *w)
{
	struct session *s = w->sessions;
	while (s) {
		struct session *next = s->next;
		if (s->state == SS_IDLE && conn_rx_len(&s->c) == 0)
			session_close(s);
		else
			s->close_after = true;
		s = next;
	}
}

void session_free_all(struct worker *w)
{
	while (w->sessions)
		session_close(w->sessions);
	while (w->free_sessions) {
		struct session *s = w->free_sessions;
		w->free_sessions = s->next;
		conn_destroy(&s->c);
		free(s);
	}
	w->nfree_sessions = 0;
}
