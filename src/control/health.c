/*
 * health.c — active health checks.
 *
 * Each check is a small exchange on a fresh connection: connect, send
 * "GET path HTTP/1.1" with Host and Connection: close, read the status
 * line, close. Anything else — refused, reset, no status line within
 * timeout, a status outside expect — is a failure with a reason that the
 * transition log quotes.
 */
#include <errno.h>
#include <openssl/err.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <openssl/ssl.h>
#include <openssl/x509_vfy.h>

#include "control/health.h"
#include "core/config.h"
#include "core/log.h"
#include "core/mem.h"
#include "core/resource.h"
#include "net/tls.h"

struct health_target {
	struct health *h;
	uint32_t id;
	const struct cfg_pool *pool;
	const struct cfg_server *srv;
	const struct cfg_health *hc;
	SSL_CTX *tls;                 /* the pool's TLS context, or NULL */
	struct event *timer;          /* the next check */
	struct event *deadline;       /* the running check's timeout */
	struct bufferevent *bev;      /* the running check's connection */
	bool up;
	uint32_t passes, fails;       /* consecutive */
};

struct health {
	struct event_base *base;
	struct health_target *t;
	size_t n;
	health_fn *cb;
	void *arg;
};

static void schedule(struct health_target *t, uint32_t delay_ms)
{
	struct timeval tv = {delay_ms / 1000, (delay_ms % 1000) * 1000};
	evtimer_add(t->timer, &tv);
}


static void fmt_duration(char *buf, size_t len, uint32_t ms)
{
	if (ms % 1000 == 0)
		snprintf(buf, len, "%us", ms / 1000);
	else if (ms < 1000)
		snprintf(buf, len, "%ums", ms);
	else
		snprintf(buf, len, "%.1fs", ms / 1000.0);
}

/* The end of one check: counts it, reports a transition, plans the next. */
static void finish(struct health_target *t, bool ok, const char *why)
{
	if (t->bev) {
		bufferevent_free(t->bev);
		t->bev = NULL;
	}
	evtimer_del(t->deadline);

	char reason[256];
	if (ok) {
		t->fails = 0;
		t->passes++;
		if (!t->up && t->passes >= t->hc->rise) {
			t->up = true;
			snprintf(reason, sizeof(reason), "%u check%s passed", t->passes,
			         t->passes == 1 ? "" : "s");
			log_info("health: %s/%s up: %s", t->pool->name, t->srv->name, reason);
			t->h->cb(t->h->arg, t->id, true, reason);
		}
	} else {
		t->passes = 0;
		t->fails++;
		if (t->up && t->fails >= t->hc->fall) {
			t->up = false;
			snprintf(reason, sizeof(reason), "%u check%s failed, last: %s", t->fails,
			         t->fails == 1 ? "" : "s", why);
			log_warn("health: %s/%s down: %s", t->pool->name, t->srv->name, reason);
			t->h->cb(t->h->arg, t->id, false, reason);
		} else {
			log_debug("health: %s/%s check failed: %s", t->pool->name, t->srv->name, why);
		}
	}
}

static void on_read(struct bufferevent *bev, void *arg)
{
	struct health_target *t = arg;
	struct evbuffer *in = bufferevent_get_input(bev);
	size_t len = evbuffer_get_length(in);
	struct evbuffer_ptr eol = evbuffer_search_eol(in, NULL, NULL, EVBUFFER_EOL_CRLF);

	if (eol.pos < 0) {
		if (len > 1024)
			finish(t, false, "invalid response (no status line)");
		return;
	}
	char line[64] = "";
	evbuffer_copyout(in, line, eol.pos < (ssize_t)sizeof(line) - 1 ? (size_t)eol.pos
	                                                                : sizeof(line) - 1);
	int status = 0;
	char why[96];
	if (strncmp(line, "HTTP/1.", 7) != 0 || line[8] != ' ' || sscanf(line + 9, "%3d", &status) != 1 ||
	    status < 100 || status > 999) {
		finish(t, false, "invalid response");
		return;
	}
	if (status < t->hc->expect_lo || status > t->hc->expect_hi) {
		snprintf(why, sizeof(why), "status %d", status);
		finish(t, false, why);
		return;
	}
	finish(t, true, NULL);
}

static void on_event(struct bufferevent *bev, short what, void *arg)
{
	struct health_target *t = arg;
	char why[128];

	if (what & BEV_EVENT_CONNECTED)
		return;
	if ((what & BEV_EVENT_ERROR) && t->tls && bufferevent_get_openssl_error(bev)) {
		SSL *ssl = bufferevent_openssl_get_ssl(bev);
		long v = ssl ? SSL_get_verify_result(ssl) : X509_V_OK;
		unsigned long e = bufferevent_get_openssl_error(bev);
		while (bufferevent_get_openssl_error(bev))
			;
		char full[192];
		if (v != X509_V_OK)
			snprintf(full, sizeof(full), "TLS: certificate verify failed: %s",
			         X509_verify_cert_error_string(v));
		else
			snprintf(full, sizeof(full), "TLS: %s", ERR_reason_error_string(e) ?
			                                            ERR_reason_error_string(e) :
			                                            "handshake failed");
		finish(t, false, full);
		return;
	}
	if (what & BEV_EVENT_ERROR) {
		int err = EVUTIL_SOCKET_ERROR();
		snprintf(why, sizeof(why), "%s", err == ECONNREFUSED ? "connection refused"
		                                 : err == ECONNRESET ? "connection reset"
		                                                     : strerror(err));
		finish(t, false, why);
		return;
	}
	finish(t, false, "closed without a response");
}

static void on_deadline(evutil_socket_t fd, short what, void *arg)
{
	struct health_target *t = arg;
	char d[32], why[64];
	(void)fd;
	(void)what;
	fmt_duration(d, sizeof(d), t->hc->timeout_ms);
	snprintf(why, sizeof(why), "timeout after %s", d);
	finish(t, false, why);
}

static void on_timer(evutil_socket_t fd, short what, void *arg)
{
	struct health_target *t = arg;
	const struct cfg_health *hc = t->hc;
	(void)fd;
	(void)what;

	/* Checks start every interval, whatever the previous one took (its
	 * timeout is at most the interval); the random first delay keeps
	 * the servers' checks apart. */
	schedule(t, hc->interval_ms);
	if (t->bev)
		finish(t, false, "no answer before the next check");
	if (t->tls) {
		SSL *ssl = SSL_new(t->tls);
		if (ssl)
			tls_client_names(ssl, t->pool->tls.sni, &t->srv->addr);
		t->bev = ssl ? bufferevent_openssl_socket_new(t->h->base, -1, ssl,
		                                             BUFFEREVENT_SSL_CONNECTING,
		                                             BEV_OPT_CLOSE_ON_FREE)
		             : NULL;
	} else {
		t->bev = bufferevent_socket_new(t->h->base, -1, BEV_OPT_CLOSE_ON_FREE);
	}
	if (!t->bev) {
		finish(t, false, "cannot create a socket");
		return;
	}
	bufferevent_setcb(t->bev, on_read, NULL, on_event, t);
	bufferevent_enable(t->bev, EV_READ | EV_WRITE);
	evbuffer_add_printf(bufferevent_get_output(t->bev),
	                    "GET %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: zdm-health-check\r\n"
	                    "Connection: close\r\n\r\n",
	                    hc->path, hc->host ? hc->host : t->srv->addr.text);
	struct timeval tv = {hc->timeout_ms / 1000, (hc->timeout_ms % 1000) * 1000};
	evtimer_add(t->deadline, &tv);
	if (bufferevent_socket_connect(t->bev, (const struct sockaddr *)&t->srv->addr.ss,
	                               (int)t->srv->addr.len) < 0) {
		int err = EVUTIL_SOCKET_ERROR();
		if (resource_error_kind(err) >= 0) {
			/* No descriptor, buffer or port here: no verdict on the
			 * server, which keeps its state until a check can run. */
			log_ratelimited(LOG_WARN, "health: %s/%s: no check could be made: %s",
			                t->pool->name, t->srv->name, strerror(err));
			bufferevent_free(t->bev);
			t->bev = NULL;
			evtimer_del(t->deadline);
			return;
		}
		char why[128];
		snprintf(why, sizeof(why), "%s", strerror(err));
		finish(t, false, why);
	}
}

struct health *health_start(struct event_base *base, const struct config *cfg,
                            const struct tls_set *tls, const bool *up, health_fn *cb, void *arg)
{
	size_t n = 0, id = 0;
	for (size_t i = 0; i < cfg->npools; i++)
		if (cfg->pools[i].health.enabled)
			n += cfg->pools[i].nservers;
	if (!n)
		return NULL;

	struct health *h = xcalloc(1, sizeof(*h));
	h->base = base;
	h->cb = cb;
	h->arg = arg;
	h->t = xcalloc(n, sizeof(*h->t));
	for (size_t i = 0; i < cfg->npools; i++) {
		const struct cfg_pool *p = &cfg->pools[i];
		for (size_t j = 0; j < p->nservers; j++, id++) {
			if (!p->health.enabled)
				continue;
			struct health_target *t = &h->t[h->n++];
			t->h = h;
			t->id = (uint32_t)id;
			t->pool = p;
			t->srv = &p->servers[j];
			t->hc = &p->health;
			t->tls = tls ? tls->pool[i] : NULL;
			t->up = up[id];
			t->timer = evtimer_new(base, on_timer, t);
			t->deadline = evtimer_new(base, on_deadline, t);
			/* The first checks are spread over one interval. */
			schedule(t, p->health.interval_ms ? (uint32_t)random() % p->health.interval_ms : 0);
		}
	}
	return h;
}

void health_stop(struct health *h)
{
	if (!h)
		return;
	for (size_t i = 0; i < h->n; i++) {
		struct health_target *t = &h->t[i];
		if (t->bev)
			bufferevent_free(t->bev);
		event_free(t->timer);
		event_free(t->deadline);
	}
	free(h->t);
	free(h);
}
