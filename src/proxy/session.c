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
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

#include "core/config.h"
#include "core/log.h"
#include "core/mem.h"
#include "core/routetab.h"
#include "net/tls.h"
#include "proxy/accesslog.h"
#include "proxy/pipe.h"
#include "proxy/session.h"
#include "proxy/snapshot.h"
#include "proxy/upstream.h"
#include "proxy/worker.h"
#include "proxy/workers.h"

#define MAX_FREE_SESSIONS 1024
#define MAX_FREE_EXCHANGES 1024

static void on_client_read(evutil_socket_t fd, short what, void *arg);
static void on_client_write(evutil_socket_t fd, short what, void *arg);
static int process(struct session *s);
static int body_splice(struct session *s);
static void body_splice_end(struct session *s);

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
	s->x = NULL;
	s->prev = NULL;
	s->next = w->sessions;
	if (w->sessions)
		w->sessions->prev = s;
	w->sessions = s;
	STAT_ADD(w->nsessions, 1);
	return s;
}

/* A request begins (or a TLS handshake): the session takes an exchange
 * from its worker's pool, with the socket's write side. */
static void take_exchange(struct session *s)
{
	struct worker *w = s->w;
	struct exchange *x = w->free_exchanges;
	if (x) {
		w->free_exchanges = x->next;
		w->nfree_exchanges--;
		/* Also after a message that ended cleanly: llhttp keeps its own
		 * view of the connection (an HTTP/1.0 message it reads as not
		 * kept alive leaves it closed), and the next request must be
		 * read the same whether it arrives whole or in pieces. No cost
		 * when llhttp was not fed. */
		http_msg_reset(&x->req);
	} else {
		x = xcalloc(1, sizeof(*x));
		x->out = conn_out_new();
		http_msg_init(&x->req, HTTP_REQUEST, NULL);
	}
	x->req.owner = s;
	x->body_pipe = NULL;
	x->head_buf = NULL;
	x->body_in_pipe = 0;
	x->body_left = 0;
	x->snap = NULL;
	x->stat = NULL;
	x->up = NULL;
	x->t_start_us = 0;
	s->x = x;
	conn_attach_out(&s->c, &x->wev, x->out, on_client_write);
}

/* Lets go of the block a replayable head was held in (start_exchange). */
static void release_head(struct exchange *x)
{
	if (x->head_buf) {
		buf_unref(x->head_buf);
		x->head_buf = NULL;
	}
}

/* The session is idle (or closed) with nothing left to write: its
 * exchange goes back to the pool, its parser reset when next taken. */
static void give_exchange(struct session *s)
{
	struct worker *w = s->w;
	struct exchange *x = s->x;

	body_splice_end(s);
	conn_detach_out(&s->c);
	release_head(x);
	s->x = NULL;
	if (w->nfree_exchanges < MAX_FREE_EXCHANGES) {
		x->next = w->free_exchanges;
		w->free_exchanges = x;
		w->nfree_exchanges++;
	} else {
		conn_out_free(x->out);
		free(x);
	}
}

/* An idle plain-HTTP session with its output written needs no exchange. */
static void settle_idle(struct session *s)
{
	if (s->x && !s->tls && s->state == SS_IDLE && !conn_rx_len(&s->c) &&
	    !conn_out_len(&s->c))
		give_exchange(s);
}

/* The request is over: the snapshot it was routed with is let go. */
static void request_end(struct session *s)
{
	struct exchange *x = s->x;
	if (x->snap) {
		snapshot_release(x->snap);
		x->snap = NULL;
	}
	release_head(x);
}

/* Attaches connection u, serving server sv of the session's snapshot, and
 * counts the request for that server. */
static void attach(struct session *s, struct upconn *u, const struct snap_server *sv)
{
	struct exchange *x = s->x;
	struct worker *w = s->w;
	x->up = u;
	x->stat = &x->snap->stats->shard[w->id].srv[sv->id];
	STAT_ADD(x->stat->requests, 1);
	STAT_ADD(x->stat->inflight, 1);
	x->server_id = sv->id;
	x->outcome_told = false;
	x->probe = sv->probing;
}

/* A server whose circuit is half-open takes a request only while it has a
 * probe slot: the slot is taken here, before anything is sent, and the
 * control plane is told (it shows the server unavailable once they are all
 * taken). */
static bool admit(struct session *s, const struct snap_server *sv)
{
	struct exchange *x = s->x;
	x->probe = false;
	if (!sv->probing)
		return true;
	if (!stats_take_probe(x->snap->stats, sv->id))
		return false;
	x->probe = true; /* its end is told whatever it is: the slot is given back */
	worker_report(s->w, x->snap, sv->id, WORKER_ADMITTED, 0, NULL);
	return true;
}

/* Tells the server's circuit breaker how the exchange went (result 1
 * success, 0 a failure of kind, -1 none), x->route being the server's. Only
 * what can change its state crosses to the control plane: the end of a
 * probe, whatever it is (it decides, or gives its slot back); failures of a
 * kind the pool's circuit_breaker.count lists; successes while it counts
 * failures. A failure of another kind changes nothing and stays here. */
static bool worth_telling(const struct session *s, uint32_t server_id, int result,
                          enum cfg_fail_kind kind)
{
	const struct exchange *x = s->x;
	if (x->snap->cfg != s->w->cfg)
		return false; /* routed before a reload: its server layout is gone */
	if (x->probe)
		return true;
	if (result < 0)
		return false;
	if (result == 0)
		return cfg_breaker_counts(&x->snap->pools[x->route.pool].cfg->breaker, kind);
	return STAT_GET(x->snap->stats->streak[server_id]) != 0;
}

static void tell_outcome(struct session *s, uint32_t server_id, int result,
                         enum cfg_fail_kind kind, const char *what)
{
	struct exchange *x = s->x;
	struct worker *w = s->w;
	if (!worth_telling(s, server_id, result, kind))
		return;
	worker_report(w, x->snap, server_id,
	              result > 0 ? WORKER_SUCCESS : result == 0 ? WORKER_FAILURE : WORKER_ABANDONED,
	              result == 0 ? (int)kind : 0, what);
}

static void outcome(struct session *s, int result, enum cfg_fail_kind kind, const char *what)
{
	struct exchange *x = s->x;
	if (!x->stat || x->outcome_told)
		return;
	x->outcome_told = true;
	tell_outcome(s, x->server_id, result, kind, what);
}

/* The request is answered (status, 0 if nothing was sent): counts it for
 * its route's pool and server (either may be -1; a pool is x->route's) and
 * writes its access log line. */
static void finish_request(struct session *s, int status, int pool, int server)
{
	struct exchange *x = s->x;
	struct worker *w = s->w;
	if (!x->snap || !x->t_start_us)
		return;
	uint64_t now = mono_us(), dur = now - x->t_start_us;
	struct stats_shard *sh = &x->snap->stats->shard[w->id];
	const struct snap_pool *p = pool >= 0 ? &x->snap->pools[pool] : NULL;
	int slot = p ? (int)snapshot_member(x->snap, x->route.route, x->route.member) : -1;
	if (p && server >= 0 && status)
		STAT_ADD(sh->rsrv[x->snap->member_srv[slot] + ((uint32_t)server - p->first_id)]
		                 .codes[stats_class(status)],
		         1);
	else if (p && status)
		STAT_ADD(sh->pool[slot].codes[stats_class(status)], 1);
	stats_record(sh, slot, x->route.route, status, dur, now / 1000000);
	x->t_start_us = 0;

	if (!w->alog)
		return;
	const char *sname = "-";
	if (p && server >= 0)
		sname = p->servers[server - (int)p->first_id].cfg->name;
	struct access_entry e = {
	        .client = s->ip,
	        .method = llhttp_method_name(x->method),
	        .target = x->target,
	        .target_len = x->target_len,
	        .status = status,
	        .bytes = x->resp_bytes,
	        .duration_us = dur,
	        .route = x->route.route >= 0 ? x->snap->routes[x->route.route].cfg->name : "-",
	        .pool = p ? p->cfg->name : "-",
	        .server = sname,
	        .pinned = x->route.pinned,
	        .id = (uint64_t)w->id << 48 | ++w->request_ids,
	};
	accesslog_write(w->alog, &e);
}

/* Lets go of the upstream connection (back to its idle list when
 * reusable); failed counts a failure for its server. */
static void detach(struct session *s, bool reusable, bool failed)
{
	struct exchange *x = s->x;
	struct upconn *u = x->up;
	x->up = NULL;
	outcome(s, -1, 0, NULL); /* ended with no outcome told: nothing to learn */
	if (x->stat) {
		STAT_ADD(x->stat->inflight, -1);
		if (failed)
			STAT_ADD(x->stat->failures, 1);
		x->stat = NULL;
	}
	if (u)
		upstream_release(u, reusable);
}

/* Closes the client connection, drops any upstream exchange, and recycles
 * the session. */
static void session_close(struct session *s)
{
	struct worker *w = s->w;
	struct exchange *x = s->x;

	if (x) {
		if (x->t_start_us &&
		    (s->state == SS_BODY || s->state == SS_WAIT || s->state == SS_TUNNEL))
			/* The client went away mid-request: logged with what was sent. */
			finish_request(s, x->resp_status, x->route.pool,
			               x->stat ? (int)x->server_id : -1);
		body_splice_end(s);
		detach(s, false, false);
		request_end(s);
	}
	conn_close(&s->c);
	if (x)
		give_exchange(s);
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
	conn_open(&s->c, &w->timeouts, fd, on_client_read, s);
	s->tls = tls != NULL;
	s->state = SS_IDLE;
	if (tls) {
		take_exchange(s);
		s->c.ssl = tls_accept(tls, fd);
		if (!s->c.ssl) {
			log_ratelimited(LOG_ERROR, "client: cannot start a TLS session");
			session_close(s);
			return;
		}
		s->state = SS_HANDSHAKE;
		s->x->head_deadline_ms = now_ms(w) + w->cfg->timeouts.request_header_ms;
	}
	s->close_after = false;
	s->host_gen = 0;

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
	int r = conn_flush(&s->c, cfg_of(s)->timeouts.client_write_ms);
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
	struct exchange *x = s->x;
	size_t len;
	const char *text = http_error_response(status, close || s->close_after || !x->keep_alive,
	                                       &len);

	conn_put_static(&s->c, text, len);
	x->resp_started = true;
	x->resp_bytes += len;
	x->resp_status = http_wire_status(status);
	finish_request(s, x->resp_status, pool, server);
	if (close || s->close_after || !x->keep_alive)
		return close_when_flushed(s);
	if (conn_flush(&s->c, cfg_of(s)->timeouts.client_write_ms) < 0) {
		session_close(s);
		return -1;
	}
	return 0;
}

/* Rejects a request the proxy will not forward: the answer, then close
 * (the rest of the connection's bytes cannot be trusted to be framed). */
static int reject(struct session *s, int status, const char *reason)
{
	struct exchange *x = s->x;
	log_debug("client %s: %d: %s", s->ip, status, reason ? reason : "");
	if (x->t_start_us) {
		x->resp_bytes = 0;
		x->method = http_msg_method(&x->req);
	}
	return respond(s, status, true, -1, -1);
}

/* Appends the request head to the output of to: the runs of received
 * bytes that are kept, then the lines the proxy adds, then the blank line. */
static void forward_head(struct session *s, struct conn *to)
{
	struct exchange *x = s->x;
	struct http_run runs[HTTP_MAX_RUNS];
	const struct http_head *h = &x->req.head;
	struct buf *b = x->head_buf ? x->head_buf : s->c.rx;
	const char *base = b->data;
	size_t n = http_head_runs(h, runs);

	for (size_t i = 0; i < n; i++)
		conn_put_ref(to, b, runs[i].off, runs[i].len);

	/* The lines added, written in one piece: X-Forwarded-For (what the
	 * client sent, then the client), X-Real-IP, X-Forwarded-Proto, the
	 * Connection header a hop needs, the one Transfer-Encoding line that
	 * stands for the client's (which said chunked, in whatever way
	 * http_req_check accepts), and the blank line. */
	static const char xff[] = "X-Forwarded-For: ", xri[] = "\r\nX-Real-IP: ";
	const char *proto = s->tls ? "\r\nX-Forwarded-Proto: https\r\n"
	                           : "\r\nX-Forwarded-Proto: http\r\n";
	const char *conn = h->conn_tokens & HTTP_CONN_UPGRADE ? "Connection: upgrade\r\n"
	                   : x->version == 10                 ? "Connection: keep-alive\r\n"
	                                                      : "";
	static const char te[] = "Transfer-Encoding: chunked\r\n";
	size_t te_len = http_msg_chunked(&x->req) ? sizeof(te) - 1 : 0;
	size_t proto_len = strlen(proto), conn_len = strlen(conn);
	size_t len = sizeof(xff) - 1 + 2 * (size_t)s->ip_len + sizeof(xri) - 1 + proto_len +
	             conn_len + te_len + 2;
	/* An absolute-form target's authority is the Host (RFC 9112 §3.2.2),
	 * sent in place of the client's Host lines. */
	if (h->url_skip)
		len += 6 + h->authority_len + 2;
	for (uint32_t i = 0; i < h->nhdrs; i++)
		if (h->hdrs[i].kind == HK_X_FORWARDED_FOR && h->hdrs[i].value_len)
			len += h->hdrs[i].value_len + 2;

	char *p = conn_reserve(to, len);
#define PUT(src, n) (memcpy(p, (src), (n)), p += (n))
	PUT(xff, sizeof(xff) - 1);
	for (uint32_t i = 0; i < h->nhdrs; i++) {
		const struct http_hdr *hd = &h->hdrs[i];
		if (hd->kind != HK_X_FORWARDED_FOR || !hd->value_len)
			continue;
		PUT(base + hd->value, hd->value_len);
		PUT(", ", 2);
	}
	PUT(s->ip, s->ip_len);
	PUT(xri, sizeof(xri) - 1);
	PUT(s->ip, s->ip_len);
	PUT(proto, proto_len);
	PUT(conn, conn_len);
	PUT(te, te_len);
	if (h->url_skip) {
		PUT("Host: ", 6);
		PUT(base + h->authority, h->authority_len);
		PUT("\r\n", 2);
	}
	PUT("\r\n", 2);
#undef PUT
	conn_commit(to, len);
}

/* Attaches a connection to the chosen server, retrying once on another
 * server when no socket can be made for it. A socket this process cannot
 * make (no descriptor, buffer or local port) is no fault of the server: it
 * is answered HTTP_503_LOCAL at once, with no effect on the server's
 * circuit or counters. Returns 0 with s->x->up set, or the status to
 * answer. */
static int attach_upstream(struct session *s)
{
	struct exchange *x = s->x;
	struct worker *w = s->w;
	const struct snap_pool *p = &x->snap->pools[x->route.pool];

	const struct snap_server *sv = &p->servers[x->route.server];
	if (!admit(s, sv)) {
		/* Its probe slots went to requests of other workers. */
		struct route_choice next;
		if (route_retry(x->snap, &w->rr, &x->route, &next))
			return 503;
		x->route = next;
		p = &x->snap->pools[next.pool];
		sv = &p->servers[next.server];
		if (!admit(s, sv))
			return 503;
	}
	for (;;) {
		struct upconn *u = upstream_get(w, x->snap, x->route.pool, sv, s, false);
		if (u) {
			attach(s, u, sv);
			return 0;
		}
		int err = errno;
		int local = resource_error_kind(err);
		if (local >= 0) {
			if (sv->probing) /* the probe slot admit() took is free again */
				worker_report(w, x->snap, sv->id, WORKER_ABANDONED, 0, NULL);
			STAT_ADD(w->local_errors[local], 1);
			log_ratelimited(LOG_WARN,
			                "client %s %s: no connection to upstream %s/%s (%s) could be "
			                "made here: %s; answered 503",
			                s->ip, llhttp_method_name(x->method), p->cfg->name, sv->cfg->name,
			                sv->cfg->addr.text, strerror(err));
			return HTTP_503_LOCAL;
		}
		STAT_ADD(x->snap->stats->shard[w->id].srv[sv->id].failures, 1);
		tell_outcome(s, sv->id, 0, CFG_FAIL_CONNECT,
		             err == ECONNREFUSED ? "connect refused" : "connect failed");
		struct route_choice next;
		if (x->retried || route_retry(x->snap, &w->rr, &x->route, &next))
			return 502;
		x->retried = true;
		x->route = next;
		p = &x->snap->pools[next.pool];
		sv = &p->servers[next.server];
		if (!admit(s, sv))
			return 502;
	}
}

/* The head is complete: note what the request is and check it. Returns 0,
 * or -1 when the request was refused (and the session closed or closing). */
static int check_request(struct session *s)
{
	struct exchange *x = s->x;
	struct worker *w = s->w;
	const char *reason = NULL;

	x->method = http_msg_method(&x->req);
	x->version = http_msg_version(&x->req);
	x->keep_alive = http_msg_keep_alive(&x->req) && !w->draining;
	x->req_done = x->resp_started = x->retried = x->stale_retried = false;
	x->replayable = http_method_idempotent(x->method) && !http_msg_chunked(&x->req) &&
	                http_msg_content_length(&x->req) == 0;

	if (w->alog) {
		/* The target outlives its receive block only in the log line. */
		const struct http_head *h = &x->req.head;
		size_t n = h->url_len < sizeof(x->target) ? h->url_len : sizeof(x->target);
		memcpy(x->target, s->c.rx->data + h->url, n);
		x->target_len = (uint16_t)n;
	}
	int status = http_req_check(&x->req, w->cfg->limits.max_body_bytes, &reason);
	if (status)
		return reject(s, status, reason);
	return 0;
}

/* Routes the checked request and forwards its head. body_pending tells
 * that bytes of the request body are still to come from the client.
 * Returns 0 with s->x->up set, 0 without s->x->up when the proxy answered
 * itself, or -1. */
static int start_exchange(struct session *s, bool body_pending)
{
	struct exchange *x = s->x;
	struct worker *w = s->w;
	const struct config *cfg = x->snap->cfg;

	int route = routetab_always(cfg->table);
	if (route < 0) {
		const char *host = NULL, *path, *method;
		size_t hostlen = 0, pathlen, methodlen;
		http_req_host(&x->req, &host, &hostlen);
		http_req_path(&x->req, &path, &pathlen);
		http_req_method_name(&x->req, &method, &methodlen);
		/* Generations are never reused, unlike a freed table's address. */
		if (s->host_gen != x->snap->gen || hostlen != s->host_len ||
		    (hostlen && memcmp(host, s->host, hostlen) != 0)) {
			s->host_cands = routetab_host(cfg->table, host, hostlen);
			s->host_gen = hostlen <= SESSION_HOST_CACHE ? x->snap->gen : 0;
			s->host_len = (uint8_t)hostlen;
			if (s->host_gen && hostlen)
				memcpy(s->host, host, hostlen);
		}
		route = routetab_match_in(cfg->table, s->host_cands, path, pathlen, method, methodlen);
	}
	/* A self-made answer leaves the rest of the body unread; it would be
	 * taken for the next request, so the connection ends with it. */
	if (route < 0)
		return respond(s, 404, body_pending, -1, -1);

	const struct cfg_route *r = &cfg->routes[route];
	x->resp_timeout_ms = r->upstream_response_ms;
	x->tunnel_idle_ms = r->tunnel_idle_ms;
	int pin = r->npins ? http_pins_match(&x->req, r->pins, r->npins) : -1;
	int pin_member = pin >= 0 ? (int)r->pins[pin].member : -1;
	int status = route_pick(x->snap, &w->rr, route, pin_member, &x->route);
	if (pin >= 0)
		STAT_ADD(x->snap->stats->shard[w->id]
		                 .pool[snapshot_member(x->snap, route, pin_member)]
		                 .pinned,
		         1);
	if (!status)
		status = attach_upstream(s);
	if (status) {
		bool pool_chosen = pin >= 0 || status == 502 || status == HTTP_503_LOCAL;
		return respond(s, status, body_pending, pool_chosen ? x->route.pool : -1, -1);
	}
	if (x->replayable) {
		/* The head may be sent again if the upstream fails before
		 * answering (switch_upstream): its block is held, so that
		 * bytes read meanwhile (a pipelined request) neither rewind
		 * it nor move the head to another block. */
		x->head_buf = s->c.rx;
		buf_ref(x->head_buf);
	}
	forward_head(s, &x->up->c);
	upstream_start(x->up, x->method == HTTP_HEAD);
	return 0;
}

/* The response is complete and the upstream let go: next request. */
static int end_exchange(struct session *s)
{
	struct exchange *x = s->x;
	request_end(s);
	if (s->close_after || !x->keep_alive || s->w->draining)
		return close_when_flushed(s);
	s->state = SS_IDLE;
	s->c.rx_start = x->parse_pos;
	return process(s);
}

/* Queues request body bytes [off, off+len) of the block for the upstream. */
static void forward_body(struct session *s, uint32_t off, uint32_t len)
{
	struct exchange *x = s->x;
	if (len && x->up)
		conn_put_ref(&x->up->c, s->c.rx, off, len);
}

/* Whether the rest of the request body should be spliced (see pipe.h):
 * plain HTTP both ways, a Content-Length with at least SPLICE_MIN bytes
 * still to come, and nothing of it left unparsed in the block. */
static bool body_splice_wanted(const struct session *s)
{
	const struct exchange *x = s->x;
	const struct upconn *u = x->up;
	return !s->c.ssl && !u->tls && !u->c.ssl && !http_msg_chunked(&x->req) &&
	       !http_msg_upgrade(&x->req) && http_msg_content_length(&x->req) >= SPLICE_MIN &&
	       conn_rx_len(&s->c) == 0 && !s->w->draining;
}

/* Stops splicing the request body; the pipe is kept only if empty. */
static void body_splice_end(struct session *s)
{
	struct exchange *x = s->x;
	if (!x->body_pipe)
		return;
	splice_pipe_put(s->w, x->body_pipe, x->body_in_pipe == 0);
	x->body_pipe = NULL;
	x->body_in_pipe = 0;
	x->body_left = 0;
}

/* Moves request body bytes from the client socket through the pipe to the
 * upstream socket while both allow; the upstream gets them only once its
 * earlier output (the head, the first body bytes) is written. Called when
 * the client is readable or the upstream drained. Returns -1 when the
 * session was closed. */
static int body_splice(struct session *s)
{
	struct exchange *x = s->x;
	struct upconn *u = x->up;
	const struct config *cfg = cfg_of(s);
	struct splice_pipe *p = x->body_pipe;
	bool client_dry = false, upstream_blocked = false;

	for (;;) {
		bool moved = false;
		if (x->body_in_pipe && !upstream_blocked) {
			if (u->state != UC_ACTIVE || conn_out_len(&u->c)) {
				upstream_blocked = true; /* resumed when it drained */
			} else {
				ssize_t n = splice_pipe_drain(p, u->c.fd, &x->body_in_pipe);
				if (n > 0) {
					STAT_ADD(s->w->spliced_bytes, (uint64_t)n);
					moved = true;
				} else if (n < 0 && errno == EAGAIN) {
					upstream_blocked = true;
					conn_wait_writable(&u->c, x->resp_timeout_ms);
				} else {
					/* The upstream stopped taking the body: its
					 * read side, armed, tells how it ended (an early
					 * response, or a reset). */
					log_debug("client %s: upstream closed while taking the request body",
					          s->ip);
					body_splice_end(s);
					conn_want_read(&s->c, false, 0);
					return 0;
				}
			}
		}
		if (x->body_left && x->body_in_pipe < p->size && !client_dry) {
			ssize_t n = splice_pipe_fill(p, s->c.fd, &x->body_in_pipe, &x->body_left);
			if (n > 0) {
				moved = true;
			} else if (n < 0 && errno == EAGAIN) {
				client_dry = true;
			} else {
				/* The client closed or reset mid-body. */
				session_close(s);
				return -1;
			}
		}
		if (!x->body_left && !x->body_in_pipe) {
			/* The whole body went out: the request is complete, as
			 * in body_step(). */
			body_splice_end(s);
			http_msg_body_bypassed(&x->req);
			x->req_done = true;
			s->state = SS_WAIT;
			conn_want_read(&s->c, true, cfg->timeouts.client_idle_ms);
			upstream_request_sent(u);
			return 0;
		}
		if (!moved)
			break;
	}
	/* Read the client while the pipe has room. */
	conn_want_read(&s->c, x->body_left && x->body_in_pipe < p->size,
	               cfg->timeouts.client_idle_ms);
	return 0;
}

/* Forwards the request body bytes [at, at+k) that the parser reported with
 * step, and waits for more or for the response. */
static int body_step(struct session *s, enum http_step step, uint32_t at, size_t k)
{
	struct exchange *x = s->x;
	const struct config *cfg = s->w->cfg;
	struct conn *c = &s->c;

	x->parse_pos = at + (uint32_t)k;
	c->rx_start = x->parse_pos;
	forward_body(s, at, (uint32_t)k);
	upstream_flush(x->up);
	if (step == HTTP_NEED_MORE && body_splice_wanted(s)) {
		x->body_pipe = splice_pipe_get(s->w);
		if (x->body_pipe) {
			x->body_left = http_msg_content_length(&x->req);
			return body_splice(s);
		}
	}
	if (step == HTTP_NEED_MORE) {
		if (conn_out_len(&x->up->c) > relay_high_water(s->w))
			conn_want_read(c, false, 0); /* resumed when drained */
		else
			conn_want_read(c, true, cfg->timeouts.client_idle_ms);
		return 0;
	}
	/* The request is complete: the response is awaited. The client
	 * stays watched so that its close is seen; pipelined bytes wait in
	 * the block. Its timeout is ignored while waiting (the upstream's
	 * runs); the event stays armed, so that it never needs an epoll
	 * change. */
	x->req_done = true;
	s->state = SS_WAIT;
	upstream_request_sent(x->up);
	return 0;
}

static int process(struct session *s)
{
	struct worker *w = s->w;
	const struct config *cfg = w->cfg;
	struct conn *c = &s->c;

	for (;;) {
		struct exchange *x = s->x; /* NULL while idle */
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
				settle_idle(s);
				conn_want_read(c, true, cfg->timeouts.client_idle_ms);
				return 0;
			}
			if (!x) {
				take_exchange(s);
				x = s->x;
			}
			s->state = SS_HEAD;
			x->parse_pos = c->rx_start;
			/* The request is routed with the snapshot current as it
			 * begins, whatever changes while it is handled. */
			worker_refresh(w);
			x->snap = snapshot_hold(w->snap);
			x->t_start_us = mono_us();
			x->resp_bytes = 0;
			x->resp_status = 0;
			x->target_len = 0;
			x->route.pinned = false;
			x->route.route = -1;
			x->resp_timeout_ms = 0;
			http_msg_begin(&x->req, c->rx->data, c->rx_start);
			x->head_deadline_ms = now_ms(w) + cfg->timeouts.request_header_ms;
			conn_want_read(c, true, cfg->timeouts.request_header_ms);
			/* fall through */
		case SS_HEAD:
			step = http_msg_feed(&x->req, c->rx->data + x->parse_pos,
			                     c->rx_end - x->parse_pos, &k);
			if (step == HTTP_ERROR)
				return reject(s, x->req.error_status, x->req.error_reason);
			x->parse_pos += (uint32_t)k;
			if (x->parse_pos - c->rx_start > cfg->limits.max_header_bytes)
				return reject(s, 431, "header section too large");
			if (step == HTTP_NEED_MORE) {
				uint64_t now = now_ms(w);
				uint64_t left = x->head_deadline_ms > now ? x->head_deadline_ms - now : 1;
				conn_want_read(c, true, (uint32_t)left);
				return 0;
			}
			if (check_request(s) < 0)
				return -1;
			/* The body bytes already here are parsed (and their framing
			 * checked) before anything is forwarded, so a request that
			 * arrives whole and malformed never reaches an upstream. */
			at = x->parse_pos;
			step = http_msg_feed(&x->req, c->rx->data + at, c->rx_end - at, &k);
			if (step == HTTP_ERROR)
				return reject(s, x->req.error_status, x->req.error_reason);
			if (start_exchange(s, step != HTTP_MSG_DONE) < 0)
				return -1;
			if (!x->up) {
				/* Answered by the proxy itself, the connection kept
				 * only when the whole body was here: it is skipped. */
				if (s->state == SS_CLOSING)
					return 0;
				x->parse_pos = at + (uint32_t)k;
				http_msg_reset(&x->req);
				request_end(s);
				c->rx_start = x->parse_pos;
				s->state = SS_IDLE;
				continue;
			}
			s->state = SS_BODY;
			return body_step(s, step, at, k);
		case SS_BODY:
			at = x->parse_pos;
			step = http_msg_feed(&x->req, c->rx->data + at, c->rx_end - at, &k);
			if (step == HTTP_ERROR) {
				int status = x->req.error_status ? x->req.error_status : 400;
				/* The upstream saw part of the request:
				 * closing the connection discards it. */
				detach(s, false, false);
				if (x->resp_started)
					return close_when_flushed(s);
				return reject(s, status, x->req.error_reason);
			}
			return body_step(s, step, at, k);
		case SS_TUNNEL:
			if (conn_rx_len(c) && x->up) {
				x->tunnel_seen_ms = now_ms(w);
				conn_put_ref(&x->up->c, c->rx, c->rx_start, conn_rx_len(c));
				c->rx_start = c->rx_end;
				x->parse_pos = c->rx_end;
				upstream_flush(x->up);
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
		event_del(c->wev);
		s->state = SS_IDLE;
		conn_want_read(c, true, s->w->cfg->timeouts.request_header_ms);
		/* The first request may already sit in the TLS buffers. */
		event_active(&c->rev, EV_READ, 0);
		return 0;
	case CONN_HS_WANT_READ: {
		/* The whole handshake has request_header: a client that
		 * drips bytes does not get more time by each of them. */
		uint64_t now = now_ms(s->w);
		event_del(c->wev);
		if (now >= s->x->head_deadline_ms) {
			STAT_ADD(s->w->tls_handshake_failures, 1);
			session_close(s);
			return -1;
		}
		conn_want_read(c, true, (uint32_t)(s->x->head_deadline_ms - now));
		return 0;
	}
	case CONN_HS_WANT_WRITE:
		event_add(c->wev, NULL);
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
		if (s->state == SS_TUNNEL) {
			session_on_tunnel_timeout(s, c);
			return;
		}
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
	if (s->x && s->x->body_pipe) {
		body_splice(s);
		return;
	}

	struct buf *before = c->rx;
	uint32_t before_start = c->rx_start;
	size_t max_block = w->cfg->limits.max_header_bytes + 1;
	if (max_block < w->bufs.block_size)
		max_block = w->bufs.block_size;
	ssize_t n = conn_recv(c, &w->bufs, max_block);
	if (!s->x) {
		/* Idle: the first bytes of a request, or the client's end. */
		if (n == -2)
			return;
		if (n <= 0) {
			session_close(s);
			return;
		}
		take_exchange(s);
	}
	if (c->rx && (c->rx != before || c->rx_start != before_start)) {
		/* The block was replaced or rewound (even by a read that then
		 * found nothing): only unparsed or head bytes were pending;
		 * parse them from their new place. */
		s->x->parse_pos = c->rx_start;
		if (s->state == SS_HEAD) {
			http_msg_reset(&s->x->req);
			http_msg_begin(&s->x->req, c->rx->data, c->rx_start);
		}
	}
	if (c->rx)
		s->x->req.base = c->rx->data;
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
	int r = conn_flush(&s->c, cfg_of(s)->timeouts.client_write_ms);
	if (r < 0 || (r == 0 && s->state == SS_CLOSING)) {
		session_close(s);
		return;
	}
	if (s->state == SS_IDLE) {
		settle_idle(s);
		return;
	}
	if (s->x->up && s->x->up->splicing) {
		if (r == 0)
			upstream_splice(s->x->up);
		return;
	}
	if (s->x->up && conn_out_len(&s->c) < RELAY_LOW_WATER)
		upstream_pause(s->x->up, false);
}

/* Body bytes of a de-chunked response, from the parser's callback: queued
 * here, written by the zero-length session_on_response_body() that follows. */
static void dechunk_body(struct http_msg *m, const char *at, size_t len)
{
	struct upconn *u = m->owner;
	if (u->s)
		u->s->x->resp_bytes += len;
	if (u->s)
		conn_put_ref(&u->s->c, u->c.rx, (uint32_t)(at - u->c.rx->data), (uint32_t)len);
}

int session_on_response_head(struct session *s, struct upconn *u)
{
	struct exchange *x = s->x;
	const struct config *cfg = cfg_of(s);
	struct http_msg *m = &u->resp;
	int status = http_msg_status(m);
	const char *reason = NULL;

	if (http_resp_check(m, &reason)) {
		log_ratelimited(LOG_WARN, "client %s: upstream %s (%s): response not relayed: %s",
		                s->ip, u->srv->name, u->srv->addr.text, reason);
		return session_on_upstream_error(s, u, UP_ERR_INVALID);
	}
	bool interim = status < 200 && status != 101;
	if (interim && x->version == 10)
		return 0; /* no interim responses to HTTP/1.0 clients */
	if (status == 101 && !http_msg_upgrade(&x->req)) {
		log_ratelimited(LOG_WARN,
		                "upstream answered 101 to a request that did not ask to upgrade");
		return session_on_upstream_error(s, u, UP_ERR_INVALID);
	}

	if (!interim && x->stat && !x->outcome_told) {
		int result = status < 500 ? 1 : 0;
		if (worth_telling(s, x->server_id, result, CFG_FAIL_5XX)) {
			char what[32];
			snprintf(what, sizeof(what), "%d response", status);
			outcome(s, result, CFG_FAIL_5XX, what);
		}
		x->outcome_told = true;
	}
	bool keep = !interim && x->keep_alive && !s->close_after && !s->w->draining;
	if (!interim && status != 101) {
		if (http_msg_upgrade(&x->req))
			keep = false; /* the request parser is past an upgrade */
		if (http_msg_needs_eof(m))
			keep = false; /* the body ends when the upstream closes */
		if (x->version == 10 && http_msg_chunked(m)) {
			/* HTTP/1.0 has no chunked coding: send the bare body and
			 * end it by closing (without the Transfer-Encoding
			 * lines, which http_resp_check marked). */
			u->dechunk = true;
			u->resp.on_body = dechunk_body;
			keep = false;
		}
		if (!keep)
			s->close_after = true;
	}

	struct http_run runs[HTTP_MAX_RUNS];
	size_t n = http_head_runs(&m->head, runs);
	size_t before = conn_out_len(&s->c);
	for (size_t i = 0; i < n; i++)
		conn_put_ref(&s->c, u->c.rx, runs[i].off, runs[i].len);
	if (!interim) {
		x->resp_status = status;
		if (cfg->expose_pool_header) {
			const char *name = x->snap->pools[x->route.pool].cfg->name;
			conn_put(&s->c, "X-Zdm-Pool: ", 12);
			conn_put(&s->c, name, strlen(name));
			conn_put(&s->c, "\r\n", 2);
		}
		/* The one Transfer-Encoding line for those of the upstream,
		 * which said chunked (http_resp_check). */
		if (http_msg_chunked(m) && !u->dechunk && status != 101)
			conn_put(&s->c, "Transfer-Encoding: chunked\r\n", 28);
		if (status == 101)
			conn_put(&s->c, "Connection: upgrade\r\n", 21);
		else if (!keep)
			conn_put(&s->c, "Connection: close\r\n", 19);
		else if (x->version == 10)
			conn_put(&s->c, "Connection: keep-alive\r\n", 24);
		x->resp_started = true;
	}
	conn_put(&s->c, "\r\n", 2);
	x->resp_bytes += conn_out_len(&s->c) - before;

	if (status == 101) {
		/* A tunnel idle for its route's timeouts.tunnel_idle either
		 * way ends. */
		s->state = SS_TUNNEL;
		x->tunnel_seen_ms = now_ms(s->w);
		conn_want_read(&s->c, true, x->tunnel_idle_ms);
		conn_want_read(&u->c, true, x->tunnel_idle_ms);
		if (process(s) < 0)
			return -1;
	}
	/* Written with the first body bytes, or when the message ends: one
	 * write for a small response. */
	if ((interim || status == 101) && conn_flush(&s->c, cfg->timeouts.client_write_ms) < 0) {
		session_close(s);
		return -1;
	}
	return 0;
}

int session_on_tunnel_timeout(struct session *s, struct conn *c)
{
	struct exchange *x = s->x;
	uint64_t idle = now_ms(s->w) - x->tunnel_seen_ms;
	if (idle < x->tunnel_idle_ms) {
		conn_want_read(c, true, (uint32_t)(x->tunnel_idle_ms - idle));
		return 0;
	}
	log_debug("client %s: tunnel idle for %u ms: closed", s->ip, x->tunnel_idle_ms);
	session_close(s);
	return -1;
}

int session_on_response_body(struct session *s, struct upconn *u, uint32_t off, uint32_t len)
{
	struct exchange *x = s->x;
	if (u->tunnel)
		x->tunnel_seen_ms = now_ms(s->w);
	x->resp_bytes += len;
	if (len)
		conn_put_ref(&s->c, u->c.rx, off, len);
	if (conn_flush(&s->c, cfg_of(s)->timeouts.client_write_ms) < 0) {
		session_close(s);
		return -1;
	}
	if (conn_out_len(&s->c) > relay_high_water(s->w))
		upstream_pause(u, true); /* resumed by on_client_write */
	return 0;
}

int session_on_response_done(struct session *s, struct upconn *u)
{
	struct exchange *x = s->x;
	bool reusable = x->req_done && http_msg_keep_alive(&u->resp);

	finish_request(s, x->resp_status, x->route.pool, (int)x->server_id);
	detach(s, reusable, false);
	if (!x->req_done) {
		s->close_after = true; /* the rest of the request body is unread */
		body_splice_end(s);
	}
	if (conn_flush(&s->c, cfg_of(s)->timeouts.client_write_ms) < 0) {
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
	if (s->x->body_pipe)
		return body_splice(s);
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

/* What each error is to a circuit breaker (circuit_breaker.count). */
static const enum cfg_fail_kind error_kinds[] = {
	[UP_ERR_CONNECT] = CFG_FAIL_CONNECT,
	[UP_ERR_TIMEOUT] = CFG_FAIL_TIMEOUT,
	[UP_ERR_RESET] = CFG_FAIL_RESET,
	[UP_ERR_INVALID] = CFG_FAIL_INVALID,
};

/* Moves the exchange to another connection after a failure that happened
 * before any response byte. The request bytes not yet written move along
 * (references and chains transferred, staged bytes copied); a replayed
 * request gets its head again. */
static int switch_upstream(struct session *s, struct upconn *u, struct upconn *nu,
                           const struct snap_server *sv, bool replay)
{
	struct exchange *x = s->x;
	if (replay)
		forward_head(s, &nu->c);
	else
		conn_out_move(&nu->c, &u->c);
	detach(s, false, true);
	attach(s, nu, sv);
	upstream_start(nu, x->method == HTTP_HEAD);
	if (x->req_done)
		upstream_request_sent(nu);
	upstream_flush(nu);
	/* A spliced body goes on to the new connection, with what the pipe
	 * holds: at once if it is already connected and took the rest. */
	if (x->body_pipe)
		body_splice(s);
	return -1;
}

int session_on_upstream_error(struct session *s, struct upconn *u, enum up_error err)
{
	struct exchange *x = s->x;
	struct worker *w = s->w;
	const struct snap_pool *p = &x->snap->pools[x->route.pool];
	const struct cfg_server *sc = u->srv;

	const char *what = err != UP_ERR_CONNECT        ? error_names[err]
	                   : u->errnum == ECONNREFUSED ? "connect refused"
	                   : u->errnum == ETIMEDOUT    ? "connect timed out"
	                                               : "connect failed";
	log_ratelimited(LOG_WARN, "client %s %s: upstream %s/%s (%s): %s%s", s->ip,
	                llhttp_method_name(x->method), p->cfg->name, sc->name, sc->addr.text, what,
	                x->resp_started ? " mid-response" : "");
	outcome(s, 0, error_kinds[err], what);
	if (x->stat)
		STAT_ADD(x->stat->errors[err], 1);

	if (s->state == SS_TUNNEL || x->resp_started) {
		finish_request(s, x->resp_status, x->route.pool, (int)x->server_id);
		detach(s, false, s->state != SS_TUNNEL);
		session_close(s);
		return -1;
	}

	/* A request that can be sent again: idempotent, no body, its head
	 * still in the block, and no response byte came back. */
	bool replay = err == UP_ERR_RESET && !u->got_byte && x->replayable && x->req_done;

	if (replay && u->reused && !x->stale_retried) {
		/* A reused connection the server had closed as the request
		 * went out (the keep-alive race): sent again on a new
		 * connection to the same server; not counted as the retry. */
		x->stale_retried = true;
		const struct snap_server *sv = &p->servers[x->route.server];
		struct upconn *nu = upstream_get(w, x->snap, x->route.pool, sv, s, true);
		if (nu)
			return switch_upstream(s, u, nu, sv, true);
	} else if ((err == UP_ERR_CONNECT || replay) && !x->retried) {
		/* Refused, or reset before any response byte: once more on
		 * another server. After a connect failure nothing was
		 * written and the queued bytes move along. */
		struct route_choice next;
		x->retried = true;
		if (route_retry(x->snap, &w->rr, &x->route, &next) == 0) {
			const struct snap_server *sv = &x->snap->pools[next.pool].servers[next.server];
			struct upconn *nu =
			        admit(s, sv) ? upstream_get(w, x->snap, next.pool, sv, s, false) : NULL;
			if (nu) {
				x->route = next;
				return switch_upstream(s, u, nu, sv, replay);
			}
		}
	}

	int status = err == UP_ERR_TIMEOUT ? 504 : 502;
	int server = (int)x->server_id;
	body_splice_end(s);
	detach(s, false, true);
	if (respond(s, status, !x->req_done, x->route.pool, server) < 0)
		return -1;
	if (s->state == SS_CLOSING)
		return -1;
	if (x->req_done)
		end_exchange(s);
	return -1;
}

void session_drain_all(struct worker *w)
{
	struct session *s = w->sessions;
	while (s) {
		struct session *next = s->next;
		if (s->state == SS_IDLE && conn_rx_len(&s->c) == 0 && conn_out_len(&s->c)) {
			/* Its last response is still being written. */
			s->state = SS_CLOSING;
			conn_want_read(&s->c, false, 0);
		} else if (s->state == SS_IDLE && conn_rx_len(&s->c) == 0) {
			session_close(s);
		} else {
			s->close_after = true;
		}
		s = next;
	}
}

size_t session_close_idle(struct worker *w, size_t max)
{
	struct session *s = w->sessions;
	while (s && s->next)
		s = s->next; /* the oldest: sessions are linked at the head */
	size_t n = 0;
	while (s && n < max) {
		struct session *prev = s->prev;
		int unread = 0;
		if (s->state == SS_IDLE && conn_rx_len(&s->c) == 0 && conn_out_len(&s->c) == 0 &&
		    ioctl(s->c.fd, FIONREAD, &unread) == 0 && unread == 0) {
			session_close(s);
			n++;
		}
		s = prev;
	}
	return n;
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
	while (w->free_exchanges) {
		struct exchange *x = w->free_exchanges;
		w->free_exchanges = x->next;
		conn_out_free(x->out);
		free(x);
	}
	w->nfree_exchanges = 0;
}
