/*
 * worker.c — an event loop with its listeners, and the life cycle of the
 * connections on it: accept, connection limits, graceful drain.
 */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>
#include <event2/listener.h>

#include "config.h"
#include "listener.h"
#include "log.h"
#include "mem.h"
#include "session.h"
#include "snapshot.h"
#include "upstream.h"
#include "worker.h"

/* Receive blocks: 16 KiB holds a typical request head and a good read of a
 * body; up to 1024 are kept for reuse. */
#define BLOCK_SIZE (16 * 1024)
#define MAX_FREE_BLOCKS 1024

static void set_accepting(struct worker *w, bool on)
{
	for (size_t i = 0; i < w->nlisteners; i++) {
		if (!w->listeners[i].lev)
			continue;
		if (on)
			evconnlistener_enable(w->listeners[i].lev);
		else
			evconnlistener_disable(w->listeners[i].lev);
	}
}

static void on_accept(struct evconnlistener *lev, evutil_socket_t fd, struct sockaddr *sa,
                      int salen, void *arg)
{
	struct listener_slot *ls = arg;
	struct worker *w = ls->w;
	(void)lev;

	if (w->draining) {
		close(fd);
		return;
	}
	session_accept(w, fd, sa, (socklen_t)salen, ls->cfg);
	if (w->nsessions >= w->cfg->limits.max_connections && !w->accept_paused) {
		log_warn("%u client connections (limits.max_connections): not accepting more "
		         "until one closes",
		         w->nsessions);
		w->accept_paused = true;
		set_accepting(w, false);
	}
}

static void on_accept_error(struct evconnlistener *lev, void *arg)
{
	(void)lev;
	(void)arg;
	log_warn("accept failed: %s", evutil_socket_error_to_string(EVUTIL_SOCKET_ERROR()));
}

void worker_session_closed(struct worker *w)
{
	if (w->accept_paused && !w->draining && w->nsessions < w->cfg->limits.max_connections) {
		w->accept_paused = false;
		set_accepting(w, true);
	}
	if (w->draining && w->nsessions == 0)
		event_base_loopexit(w->base, NULL);
}

struct worker *worker_new(const struct config *cfg)
{
	struct worker *w = xcalloc(1, sizeof(*w));
	struct event_config *ec = event_config_new();

	/* Each worker's loop is used by its own thread only. The changelist
	 * folds the event changes of one loop iteration into one epoll_ctl
	 * per descriptor, or none when they cancel out. */
	event_config_set_flag(ec, EVENT_BASE_FLAG_NOLOCK);
	event_config_set_flag(ec, EVENT_BASE_FLAG_EPOLL_USE_CHANGELIST);
	w->base = event_base_new_with_config(ec);
	event_config_free(ec);
	if (!w->base) {
		log_error("cannot create an event loop");
		free(w);
		return NULL;
	}
	w->cfg = cfg;
	buf_pool_init(&w->bufs, BLOCK_SIZE, MAX_FREE_BLOCKS);
	w->snap = snapshot_from_config(cfg, 1);
	w->servers = xcalloc(w->snap->nservers ? w->snap->nservers : 1, sizeof(*w->servers));

	w->nlisteners = cfg->nlisten;
	w->listeners = xcalloc(cfg->nlisten, sizeof(*w->listeners));
	for (size_t i = 0; i < cfg->nlisten; i++) {
		struct listener_slot *ls = &w->listeners[i];
		ls->w = w;
		ls->cfg = &cfg->listen[i];
		int fd = listener_open(&cfg->listen[i].addr, 4096, 0);
		if (fd < 0)
			goto fail;
		ls->lev = evconnlistener_new(w->base, on_accept, ls, LEV_OPT_CLOSE_ON_FREE, -1, fd);
		if (!ls->lev) {
			close(fd);
			log_error("listen %s: cannot watch the socket", cfg->listen[i].addr.text);
			goto fail;
		}
		evconnlistener_set_error_cb(ls->lev, on_accept_error);
	}
	return w;
fail:
	worker_free(w);
	return NULL;
}

static void close_listeners(struct worker *w)
{
	for (size_t i = 0; i < w->nlisteners; i++) {
		if (w->listeners[i].lev)
			evconnlistener_free(w->listeners[i].lev);
		w->listeners[i].lev = NULL;
	}
}

int worker_run(struct worker *w)
{
	return event_base_dispatch(w->base);
}

static void on_drain_timeout(evutil_socket_t fd, short what, void *arg)
{
	struct worker *w = arg;
	(void)fd;
	(void)what;
	log_warn("drain timeout: closing %u connections with requests still in flight",
	         w->nsessions);
	event_base_loopexit(w->base, NULL);
}

void worker_drain(struct worker *w)
{
	if (w->draining)
		return;
	w->draining = true;
	close_listeners(w);
	session_drain_all(w);
	upstream_close_idle(w);
	if (w->nsessions == 0) {
		event_base_loopexit(w->base, NULL);
		return;
	}
	log_info("draining: %u connections with requests in flight", w->nsessions);
	w->drain_timer = evtimer_new(w->base, on_drain_timeout, w);
	uint32_t ms = w->cfg->timeouts.drain_ms;
	struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
	evtimer_add(w->drain_timer, &tv);
}

void worker_stop(struct worker *w)
{
	event_base_loopbreak(w->base);
}

void worker_free(struct worker *w)
{
	if (!w)
		return;
	close_listeners(w);
	session_free_all(w);
	upstream_free_all(w);
	if (w->drain_timer)
		event_free(w->drain_timer);
	free(w->listeners);
	free(w->servers);
	route_rr_free(&w->rr);
	snapshot_free(w->snap);
	buf_pool_clear(&w->bufs);
	if (w->base)
		event_base_free(w->base);
	free(w);
}
