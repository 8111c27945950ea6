/*
 * admin.c — /healthz, /status and /metrics over HTTP (libevent's evhttp:
 * this is the control plane, not the hot path).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>

#include "control/runtime.h"
#include "control/status.h"
#include "core/config.h"
#include "core/log.h"
#include "core/mem.h"
#include "net/listener.h"
#include "obs/admin.h"
#include "obs/metrics.h"

struct admin {
	struct evhttp *http;
	struct runtime *rt;
	struct workers *ws;
	struct accesslog *al;
};

static void reply(struct evhttp_request *req, int code, const char *reason, const char *type,
                  struct evbuffer *body)
{
	struct evkeyvalq *h = evhttp_request_get_output_headers(req);
	evhttp_add_header(h, "Content-Type", type);
	evhttp_add_header(h, "Cache-Control", "no-store");
	if (evhttp_request_get_command(req) == EVHTTP_REQ_HEAD) {
		/* The head says what GET would send; no body follows. */
		char len[24];
		snprintf(len, sizeof(len), "%zu", evbuffer_get_length(body));
		evhttp_add_header(h, "Content-Length", len);
		evbuffer_drain(body, evbuffer_get_length(body));
	}
	evhttp_send_reply(req, code, reason, body);
}

static void on_request(struct evhttp_request *req, void *arg)
{
	struct admin *a = arg;
	struct evbuffer *body = evbuffer_new();
	const char *uri = evhttp_request_get_uri(req);
	enum evhttp_cmd_type cmd = evhttp_request_get_command(req);
	size_t plen = strcspn(uri, "?");

	if (cmd != EVHTTP_REQ_GET && cmd != EVHTTP_REQ_HEAD) {
		evbuffer_add_printf(body, "only GET and HEAD\n");
		evhttp_add_header(evhttp_request_get_output_headers(req), "Allow", "GET, HEAD");
		reply(req, 405, "Method Not Allowed", "text/plain", body);
	} else if (plen == 8 && !strncmp(uri, "/healthz", 8)) {
		evbuffer_add_printf(body, "ok\n");
		reply(req, 200, "OK", "text/plain", body);
	} else if (plen == 7 && !strncmp(uri, "/status", 7)) {
		runtime_lock(a->rt);
		status_write(body, a->rt);
		runtime_unlock(a->rt);
		evbuffer_add(body, "\n", 1);
		reply(req, 200, "OK", "application/json", body);
	} else if (plen == 8 && !strncmp(uri, "/metrics", 8)) {
		runtime_lock(a->rt);
		metrics_write(body, a->rt, a->ws, a->al);
		runtime_unlock(a->rt);
		reply(req, 200, "OK", "text/plain; version=0.0.4; charset=utf-8", body);
	} else {
		evbuffer_add_printf(body, "not found: try /healthz, /status or /metrics\n");
		reply(req, 404, "Not Found", "text/plain", body);
	}
	evbuffer_free(body);
}

struct admin *admin_open(struct event_base *base, const struct cfg_addr *addr,
                         struct runtime *rt, struct workers *ws)
{
	int fd = listener_open(addr, 128, 0);
	if (fd < 0)
		return NULL;
	struct admin *a = xcalloc(1, sizeof(*a));
	a->rt = rt;
	a->ws = ws;
	a->http = evhttp_new(base);
	if (!a->http || evhttp_accept_socket(a->http, fd) < 0) {
		log_error("admin %s: cannot serve HTTP on it", addr->text);
		if (a->http)
			evhttp_free(a->http);
		close(fd);
		free(a);
		return NULL;
	}
	evhttp_set_allowed_methods(a->http, EVHTTP_REQ_GET | EVHTTP_REQ_HEAD | EVHTTP_REQ_POST |
	                                            EVHTTP_REQ_PUT | EVHTTP_REQ_DELETE);
	evhttp_set_timeout(a->http, 10);
	evhttp_set_max_headers_size(a->http, 16384);
	evhttp_set_gencb(a->http, on_request, a);
	return a;
}

void admin_set_accesslog(struct admin *a, struct accesslog *al)
{
	if (a)
		a->al = al;
}

void admin_close(struct admin *a)
{
	if (!a)
		return;
	evhttp_free(a->http);
	free(a);
}
