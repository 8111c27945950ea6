/*
 * worker.c — an event loop with its listeners, and the life cycle of the
 * connections on it: accept, connection limits, graceful drain.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <sys/socket.h>

#include <event2/event.h>
#include <event2/listener.h>

#include "core/config.h"
#include "core/log.h"
#include "core/mem.h"
#include "net/listener.h"
#include "net/tls.h"
#include "proxy/accesslog.h"
#include "proxy/pipe.h"
#include "proxy/session.h"
#include "proxy/snapshot.h"
#include "proxy/upstream.h"
#include "proxy/worker.h"

/* Receive blocks: 16 KiB holds a typical request head and a good read of a
 * body; up to 1024 are kept for reuse. */
#define BLOCK_SIZE (16 * 1024)
#define MAX_FREE_BLOCKS 1024

/* Out of descriptors, accept(2) is not tried again for this long (or
 * until one of this worker's connections closes). */
#define ACCEPT_BACKOFF_MS 1000
/* Idle client connections closed at most to make room for new ones: a
 * few at a time, so that the search for them is paid once per batch. */
#define RECLAIM_MAX 16

/* Listeners are on unless the worker drains, is at its connection limit,
 * or has just run out of descriptors. */
static void set_accepting(struct worker *w, bool on)
{
	on = on && !w->draining && !w->accept_paused && !w->accept_backoff;
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
	session_accept(w, fd, sa, (socklen_t)salen, ls->tls);
	if (w->nsessions >= w->max_sessions && !w->accept_paused) {
		log_ratelimited(LOG_WARN,
		                "%" PRIu64 " client connections on this worker (its share of "
		                "limits.max_connections): not accepting more until one closes",
		                w->nsessions);
		w->accept_paused = true;
		set_accepting(w, false);
	}
}

/* Connections refused for lack of descriptors, by every worker, and when
 * that was last logged: one line a second at most says how many. */
static uint64_t refused_unlogged, refused_logged_ms;

static uint64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void tell_refused(const struct listener_slot *ls, int err, uint64_t n)
{
	uint64_t now = now_ms();
	__atomic_add_fetch(&refused_unlogged, n, __ATOMIC_RELAXED);
	uint64_t last = __atomic_load_n(&refused_logged_ms, __ATOMIC_RELAXED);
	if (last && now - last < 1000)
		return;
	if (!__atomic_compare_exchange_n(&refused_logged_ms, &last, now, false, __ATOMIC_RELAXED,
	                                 __ATOMIC_RELAXED))
		return;
	n = __atomic_exchange_n(&refused_unlogged, 0, __ATOMIC_RELAXED);
	if (!n)
		return;
	if (last && now - last < 60000)
		log_warn("listen %s: out of descriptors (%s): %" PRIu64 " connection%s refused in "
		         "the last %.1f s; accepts resume within 1 s of a descriptor coming free",
		         ls->cfg->addr.text, strerror(err), n, n == 1 ? "" : "s",
		         (double)(now - last) / 1000.0);
	else
		log_warn("listen %s: out of descriptors (%s): %" PRIu64 " connection%s refused; "
		         "not accepting for up to 1 s (raise RLIMIT_NOFILE or lower "
		         "limits.max_connections)",
		         ls->cfg->addr.text, strerror(err), n, n == 1 ? "" : "s");
}

/* Out of descriptors, with the one held in reserve given up: the waiting
 * connection, if there is one (accept(2) fails with EMFILE on a full table
 * whether or not one waits). -1 when none does. */
static int accept_with_reserve(struct worker *w, int lfd, struct sockaddr_storage *ss,
                               socklen_t *sslen)
{
	if (w->reserve_fd >= 0)
		close(w->reserve_fd);
	w->reserve_fd = -1;
	*sslen = sizeof(*ss);
	int fd = accept4(lfd, (struct sockaddr *)ss, sslen, SOCK_NONBLOCK | SOCK_CLOEXEC);
	if (fd < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
		fd = -2; /* one may wait, but no descriptor could be had for it */
	return fd;
}

static void on_accept_error(struct evconnlistener *lev, void *arg)
{
	struct listener_slot *ls = arg;
	struct worker *w = ls->w;
	int err = EVUTIL_SOCKET_ERROR();
	if (resource_error_kind(err) < 0) {
		log_ratelimited(LOG_WARN, "listen %s: accept failed: %s", ls->cfg->addr.text,
		                strerror(err));
		return;
	}
	struct sockaddr_storage ss;
	socklen_t sslen;
	int fd = accept_with_reserve(w, evconnlistener_get_fd(lev), &ss, &sslen);
	if (fd == -1) {
		w->reserve_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
		return; /* the table is full, but no one is waiting */
	}
	/* Someone waits. The descriptors whose loss costs no one a request are
	 * taken back first: idle connections to upstreams, then clients that
	 * wait for a request, the oldest first. The waiting connection gets
	 * the reserve's descriptor, which one of them gives back. */
	size_t ups = upstream_close_idle(w);
	size_t clients = session_close_idle(w, RECLAIM_MAX);
	w->reserve_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
	if (ups + clients) {
		static struct log_limit lim = {.burst = 1};
		log_limited(&lim, LOG_WARN,
		            "listen %s: out of descriptors (%s): closed %zu idle client and %zu idle "
		            "upstream connections to take new ones",
		            ls->cfg->addr.text, strerror(err), clients, ups);
		if (fd >= 0)
			on_accept(lev, fd, (struct sockaddr *)&ss, (int)sslen, ls);
		return; /* the listener is read again on the next turn of the loop */
	}
	/* Nothing to take back: the waiting client is told at once, by a
	 * close, rather than left to time out in the backlog, and accept(2)
	 * waits, instead of failing again as fast as the loop turns. */
	if (fd >= 0)
		close(fd);
	STAT_ADD(w->local_errors[LOCAL_ERR_ACCEPT], 1);
	w->accept_backoff = true;
	set_accepting(w, false);
	struct timeval tv = {ACCEPT_BACKOFF_MS / 1000, (ACCEPT_BACKOFF_MS % 1000) * 1000};
	evtimer_add(w->accept_timer, &tv);
	tell_refused(ls, err, 1);
}

static void on_accept_timer(evutil_socket_t fd, short what, void *arg)
{
	struct worker *w = arg;
	(void)fd;
	(void)what;
	if (w->reserve_fd < 0)
		w->reserve_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
	if (w->nlisteners)
		tell_refused(&w->listeners[0], EMFILE, 0);
	w->accept_backoff = false;
	set_accepting(w, true);
}

void worker_session_closed(struct worker *w)
{
	if (w->accept_backoff) {
		/* A descriptor came free. */
		evtimer_del(w->accept_timer);
		w->accept_backoff = false;
		set_accepting(w, true);
	}
	if (w->accept_paused && !w->draining && w->nsessions < w->max_sessions) {
		w->accept_paused = false;
		set_accepting(w, true);
	}
	if (w->draining && w->nsessions == 0)
		event_base_loopexit(w->base, NULL);
}

/* Sets up the listeners of snap's config in slots: fds[i] is a socket
 * opened for this worker by the control plane, or -1 for an address that
 * was already listened on, whose listener is moved out of old. */
static void open_listeners(struct worker *w, const struct snapshot *snap, const int *fds,
                           struct listener_slot *slots, struct listener_slot *old, size_t nold)
{
	const struct config *cfg = snap->cfg;
	for (size_t i = 0; i < cfg->nlisten; i++) {
		struct listener_slot *ls = &slots[i];
		const struct cfg_addr *addr = &cfg->listen[i].addr;
		ls->w = w;
		ls->cfg = &cfg->listen[i];
		ls->tls = snap->tls ? snap->tls->listen[i] : NULL;
		for (size_t j = 0; fds[i] < 0 && j < nold && !ls->lev; j++) {
			const struct cfg_addr *oa = &old[j].cfg->addr;
			if (old[j].lev && oa->len == addr->len && !memcmp(&oa->ss, &addr->ss, addr->len)) {
				ls->lev = old[j].lev;
				old[j].lev = NULL;
				ls->reused = true;
			}
		}
		if (ls->lev) {
			evconnlistener_set_cb(ls->lev, on_accept, ls);
			continue;
		}
		if (fds[i] < 0)
			continue; /* cannot happen: a kept address has a listener */
		ls->lev = evconnlistener_new(w->base, on_accept, ls, LEV_OPT_CLOSE_ON_FREE, -1, fds[i]);
		if (!ls->lev) {
			log_error("listen %s: cannot set up the listener", addr->text);
			close(fds[i]);
			continue;
		}
		evconnlistener_set_error_cb(ls->lev, on_accept_error);
		if (w->accept_paused || w->accept_backoff)
			evconnlistener_disable(ls->lev);
	}
}

static uint32_t share_of(uint32_t max, uint32_t n)
{
	return n > 1 ? (max + n - 1) / n : max;
}

struct worker *worker_new(struct workers *set, uint32_t id, uint32_t nworkers,
                          struct snapshot *snap, const int *fds)
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
	w->set = set;
	w->id = id;
	w->nworkers = nworkers;
	w->wake_fd = -1;
	w->reserve_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
	w->snap = snap;
	w->cfg = snap->cfg;
	w->max_sessions = share_of(w->cfg->limits.max_connections, nworkers);
	if (!w->base) {
		log_error("cannot create an event loop");
		goto fail;
	}
	conn_timeouts_init(&w->timeouts, w->base);
	w->accept_timer = evtimer_new(w->base, on_accept_timer, w);
	buf_pool_init(&w->bufs, BLOCK_SIZE, MAX_FREE_BLOCKS);
	w->servers = xcalloc(snap->nservers ? snap->nservers : 1, sizeof(*w->servers));
	w->nlisteners = w->cfg->nlisten;
	w->listeners = xcalloc(w->nlisteners, sizeof(*w->listeners));
	open_listeners(w, snap, fds, w->listeners, NULL, 0);
	return w;
fail:
	for (size_t i = 0; i < snap->cfg->nlisten; i++)
		if (fds[i] >= 0)
			close(fds[i]);
	worker_free(w);
	return NULL;
}

void worker_apply(struct worker *w, struct snapshot *next, const int *fds)
{
	if (next->cfg != w->cfg) {
		const struct config *cfg = next->cfg;
		struct listener_slot *slots = xcalloc(cfg->nlisten, sizeof(*slots));
		open_listeners(w, next, fds, slots, w->listeners, w->nlisteners);
		for (size_t i = 0; i < w->nlisteners; i++)
			if (w->listeners[i].lev)
				evconnlistener_free(w->listeners[i].lev);
		free(w->listeners);
		w->listeners = slots;
		w->nlisteners = cfg->nlisten;

		/* A new server layout: the idle connections of the old one
		 * go; busy ones are closed when their request ends. */
		upstream_close_idle(w);
		free(w->servers);
		w->servers = xcalloc(next->nservers ? next->nservers : 1, sizeof(*w->servers));
		w->cfg = cfg;
		w->max_sessions = share_of(cfg->limits.max_connections, w->nworkers);
		if (w->accept_paused && !w->draining && w->nsessions < w->max_sessions) {
			w->accept_paused = false;
			set_accepting(w, true);
		}
	}
	struct snapshot *old = w->snap;
	w->snap = next;
	snapshot_release(old);
}

void worker_take_pending(struct worker *w)
{
	struct snapshot *next = __atomic_exchange_n(&w->pending, NULL, __ATOMIC_ACQ_REL);
	if (!next)
		return;
	if (next->cfg != w->cfg) {
		/* Published before a config change this worker has already
		 * taken: stale. */
		snapshot_release(next);
		return;
	}
	struct snapshot *old = w->snap;
	w->snap = next;
	snapshot_release(old);
}

static void close_listeners(struct worker *w)
{
	if (!w->listeners)
		return;
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
	log_warn("drain timeout: closing %" PRIu64 " connections with requests still in flight",
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
	log_info("draining: %" PRIu64 " connections with requests in flight", w->nsessions);
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
	if (w->base) {
		session_free_all(w);
		upstream_free_all(w);
		splice_pipe_free_all(w);
		conn_timeouts_free(&w->timeouts);
	}
	if (w->drain_timer)
		event_free(w->drain_timer);
	if (w->accept_timer)
		event_free(w->accept_timer);
	if (w->reserve_fd >= 0)
		close(w->reserve_fd);
	accesslog_writer_free(w->alog);
	if (w->wake_ev)
		event_free(w->wake_ev);
	if (w->wake_fd >= 0)
		close(w->wake_fd);
	snapshot_release(__atomic_exchange_n(&w->pending, NULL, __ATOMIC_ACQ_REL));
	free(w->listeners);
	free(w->servers);
	route_rr_free(&w->rr);
	snapshot_release(w->snap);
	buf_pool_clear(&w->bufs);
	if (w->base)
		event_base_free(w->base);
	free(w);
}
