/*
 * workers.c — starting the worker threads, handing them snapshots and
 * commands, and taking their reports (see workers.h).
 */
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <event2/event.h>

#include "core/config.h"
#include "core/evmem.h"
#include "core/log.h"
#include "core/mem.h"
#include "net/listener.h"
#include "proxy/accesslog.h"
#include "proxy/snapshot.h"
#include "proxy/stats.h"
#include "proxy/worker.h"
#include "proxy/workers.h"

#define LISTEN_BACKLOG 4096

struct report {
	struct snapshot *snap;        /* held */
	uint32_t server;
	enum worker_event ev;
	int kind;                     /* of a failure, enum cfg_fail_kind */
	char what[48];
};

struct workers {
	size_t n;
	struct worker **w;
	struct event_base *ctl;
	const struct config *cfg;     /* whose listeners the workers have */

	pthread_mutex_t lock;
	pthread_cond_t cond;          /* a command done, a worker ended */
	uint64_t seq;                 /* of the last command posted */
	size_t running;

	struct report *reports;       /* under lock */
	size_t nreports, cap;
	/* Reports queued and not yet handled (atomic): while there are any, a
	 * worker queues its next ones too, so that a worker's reports are
	 * handled in the order it made them (a probe's admission before its
	 * outcome). */
	size_t queued;
	struct event *report_ev;      /* on ctl */
	struct event *exit_ev;        /* on ctl */
	workers_report_fn report;
	void *report_arg;
};

unsigned workers_wanted(unsigned configured)
{
	if (configured)
		return configured;
	cpu_set_t set;
	if (sched_getaffinity(0, sizeof(set), &set) == 0 && CPU_COUNT(&set) > 0)
		return (unsigned)CPU_COUNT(&set);
	long n = sysconf(_SC_NPROCESSORS_ONLN);
	return n > 0 ? (unsigned)n : 1;
}

size_t workers_count(const struct workers *ws)
{
	return ws->n;
}

/* Whether addr is one of cfg's listeners. */
static bool listened(const struct config *cfg, const struct cfg_addr *addr)
{
	for (size_t i = 0; cfg && i < cfg->nlisten; i++) {
		const struct cfg_addr *a = &cfg->listen[i].addr;
		if (a->len == addr->len && !memcmp(&a->ss, &addr->ss, addr->len))
			return true;
	}
	return false;
}

/* Sockets for the listeners of next that old does not have: fds[l * n + i]
 * for listener l of worker i, -1 for the kept ones. NULL (logged, nothing
 * left open) when one cannot be opened. */
static int *open_fds(const struct config *old, const struct config *next, size_t n)
{
	int *fds = xcalloc(next->nlisten * n + 1, sizeof(*fds));
	for (size_t k = 0; k < next->nlisten * n; k++)
		fds[k] = -1;
	for (size_t l = 0; l < next->nlisten; l++) {
		const struct cfg_addr *addr = &next->listen[l].addr;
		if (listened(old, addr))
			continue;
		if (listener_open_set(addr, LISTEN_BACKLOG, &fds[l * n], n) < 0) {
			for (size_t k = 0; k < next->nlisten * n; k++)
				if (fds[k] >= 0)
					close(fds[k]);
			free(fds);
			return NULL;
		}
	}
	return fds;
}

/* The fds of worker i, one per listener. */
static int *fds_of(const int *fds, size_t nlisten, size_t n, size_t i)
{
	int *mine = xcalloc(nlisten + 1, sizeof(*mine));
	for (size_t l = 0; l < nlisten; l++)
		mine[l] = fds[l * n + i];
	return mine;
}

static void close_fds(int *fds, size_t count)
{
	for (size_t k = 0; fds && k < count; k++)
		if (fds[k] >= 0)
			close(fds[k]);
	free(fds);
}

/* The worker's side of a wake-up: the command posted, then the newest
 * snapshot. */
static void on_wake(evutil_socket_t fd, short what, void *arg)
{
	struct worker *w = arg;
	struct workers *ws = w->set;
	uint64_t v;
	(void)what;
	if (read(fd, &v, sizeof(v)) < 0 && errno != EAGAIN)
		log_warn("worker %u: wake-up read: %s", w->id, strerror(errno));

	pthread_mutex_lock(&ws->lock);
	struct worker_cmd c = w->cmd;
	memset(&w->cmd, 0, sizeof(w->cmd));
	pthread_mutex_unlock(&ws->lock);

	if (c.snap) {
		/* Snapshots published before the new config are stale. */
		snapshot_release(__atomic_exchange_n(&w->pending, NULL, __ATOMIC_ACQ_REL));
		if (w->draining) {
			for (size_t l = 0; l < c.snap->cfg->nlisten; l++)
				if (c.fds[l] >= 0) {
					close(c.fds[l]);
					c.fds[l] = -1;
				}
		}
		worker_apply(w, c.snap, c.fds);
		free(c.fds);
	}
	if (c.set_alog) {
		accesslog_writer_free(w->alog);
		w->alog = c.alog ? accesslog_writer_new(c.alog, w->base) : NULL;
	}
	if (c.drain)
		worker_drain(w);
	if (c.stop)
		worker_stop(w);
	if (c.seq) {
		pthread_mutex_lock(&ws->lock);
		w->done = c.seq;
		pthread_cond_broadcast(&ws->cond);
		pthread_mutex_unlock(&ws->lock);
	}
	worker_refresh(w);
}

static void wake(struct worker *w)
{
	uint64_t one = 1;
	if (write(w->wake_fd, &one, sizeof(one)) < 0 && errno != EAGAIN)
		log_warn("worker %u: wake-up: %s", w->id, strerror(errno));
}

/* Waits until every worker still running has carried out command seq.
 * Called with the lock held. */
static void wait_done(struct workers *ws, uint64_t seq)
{
	for (;;) {
		bool all = true;
		for (size_t i = 0; i < ws->n; i++)
			if (!ws->w[i]->exited && ws->w[i]->done < seq)
				all = false;
		if (all)
			return;
		pthread_cond_wait(&ws->cond, &ws->lock);
	}
}

static void *thread_main(void *arg)
{
	struct worker *w = arg;
	struct workers *ws = w->set;
	worker_run(w);
	/* Blocks this thread frees from now on (its worker is freed by the
	 * control thread) go to that thread's lists. */
	evmem_thread_release();
	pthread_mutex_lock(&ws->lock);
	w->exited = true;
	ws->running--;
	event_active(ws->exit_ev, EV_READ, 0);
	pthread_cond_broadcast(&ws->cond);
	pthread_mutex_unlock(&ws->lock);
	return NULL;
}

static void on_exit_ev(evutil_socket_t fd, short what, void *arg)
{
	struct workers *ws = arg;
	(void)fd;
	(void)what;
	pthread_mutex_lock(&ws->lock);
	size_t running = ws->running;
	pthread_mutex_unlock(&ws->lock);
	if (!running)
		event_base_loopexit(ws->ctl, NULL);
}

static void on_reports(evutil_socket_t fd, short what, void *arg)
{
	struct workers *ws = arg;
	(void)fd;
	(void)what;
	pthread_mutex_lock(&ws->lock);
	struct report *r = ws->reports;
	size_t n = ws->nreports;
	ws->reports = NULL;
	ws->nreports = ws->cap = 0;
	pthread_mutex_unlock(&ws->lock);
	for (size_t i = 0; i < n; i++) {
		ws->report(ws->report_arg, r[i].snap, r[i].server, r[i].ev, r[i].kind, r[i].what,
		           true);
		snapshot_release(r[i].snap);
		__atomic_sub_fetch(&ws->queued, 1, __ATOMIC_RELEASE);
	}
	free(r);
}

void worker_report(struct worker *w, const struct snapshot *snap, uint32_t server,
                   enum worker_event ev, int kind, const char *what)
{
	struct workers *ws = w->set;
	if (!ws)
		return;
	if (!__atomic_load_n(&ws->queued, __ATOMIC_ACQUIRE) &&
	    ws->report(ws->report_arg, snap, server, ev, kind, what, false) >= 0)
		return;
	struct report r = {.snap = snapshot_hold((struct snapshot *)snap),
	                   .server = server,
	                   .ev = ev,
	                   .kind = kind};
	snprintf(r.what, sizeof(r.what), "%s", what ? what : "");
	pthread_mutex_lock(&ws->lock);
	if (ws->nreports == ws->cap) {
		ws->cap = ws->cap ? ws->cap * 2 : 16;
		ws->reports = xrealloc(ws->reports, ws->cap * sizeof(*ws->reports));
	}
	ws->reports[ws->nreports++] = r;
	__atomic_add_fetch(&ws->queued, 1, __ATOMIC_RELEASE);
	bool first = ws->nreports == 1;
	pthread_mutex_unlock(&ws->lock);
	if (first)
		event_active(ws->report_ev, EV_READ, 0);
}

struct workers *workers_start(struct event_base *ctl, struct snapshot *snap, unsigned n,
                              workers_report_fn report, void *arg)
{
	const struct config *cfg = snap->cfg;
	int *fds = open_fds(NULL, cfg, n);
	if (!fds)
		return NULL;

	struct workers *ws = xcalloc(1, sizeof(*ws));
	ws->n = n;
	ws->ctl = ctl;
	ws->cfg = cfg;
	ws->report = report;
	ws->report_arg = arg;
	ws->w = xcalloc(n, sizeof(*ws->w));
	pthread_mutex_init(&ws->lock, NULL);
	pthread_cond_init(&ws->cond, NULL);
	ws->report_ev = event_new(ctl, -1, 0, on_reports, ws);
	ws->exit_ev = event_new(ctl, -1, 0, on_exit_ev, ws);

	for (unsigned i = 0; i < n; i++) {
		int *mine = fds_of(fds, cfg->nlisten, n, i);
		struct worker *w = worker_new(ws, i, n, snapshot_hold(snap), mine);
		free(mine);
		for (size_t l = 0; l < cfg->nlisten; l++)
			fds[l * n + i] = -1; /* taken over (closed on failure) */
		if (!w)
			goto fail;
		ws->w[i] = w;
		w->wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
		if (w->wake_fd < 0) {
			log_error("eventfd: %s", strerror(errno));
			goto fail;
		}
		w->wake_ev = event_new(w->base, w->wake_fd, EV_READ | EV_PERSIST, on_wake, w);
		event_add(w->wake_ev, NULL);
	}
	free(fds);

	/* The workers take no signal: they are the control loop's. */
	sigset_t all, old;
	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, &old);
	for (unsigned i = 0; i < n; i++) {
		int err = pthread_create(&ws->w[i]->thread, NULL, thread_main, ws->w[i]);
		if (err) {
			log_error("cannot start worker thread %u: %s", i, strerror(err));
			/* Those started are stopped and joined. */
			for (unsigned j = i; j < n; j++)
				ws->w[j]->exited = true;
			pthread_sigmask(SIG_SETMASK, &old, NULL);
			ws->running = i;
			workers_stop(ws);
			workers_free(ws);
			return NULL;
		}
		ws->running++;
	}
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	return ws;
fail:
	close_fds(fds, cfg->nlisten * n);
	for (unsigned i = 0; i < n; i++) {
		worker_free(ws->w[i]);
		ws->w[i] = NULL;
	}
	ws->n = 0;
	workers_free(ws);
	return NULL;
}

int workers_publish(struct workers *ws, struct snapshot *snap)
{
	if (snap->cfg == ws->cfg) {
		for (size_t i = 0; i < ws->n; i++) {
			struct worker *w = ws->w[i];
			struct snapshot *old =
			        __atomic_exchange_n(&w->pending, snapshot_hold(snap), __ATOMIC_ACQ_REL);
			snapshot_release(old); /* never taken: superseded */
			wake(w);
		}
		return 0;
	}

	const struct config *cfg = snap->cfg;
	int *fds = open_fds(ws->cfg, cfg, ws->n);
	if (!fds)
		return -1;
	pthread_mutex_lock(&ws->lock);
	uint64_t seq = ++ws->seq;
	for (size_t i = 0; i < ws->n; i++) {
		struct worker *w = ws->w[i];
		int *mine = fds_of(fds, cfg->nlisten, ws->n, i);
		if (w->exited) {
			close_fds(mine, cfg->nlisten);
			continue;
		}
		w->cmd.snap = snapshot_hold(snap);
		w->cmd.fds = mine;
		w->cmd.seq = seq;
		wake(w);
	}
	wait_done(ws, seq);
	pthread_mutex_unlock(&ws->lock);
	free(fds);
	ws->cfg = cfg;
	return 0;
}

void workers_set_accesslog(struct workers *ws, struct accesslog *al)
{
	pthread_mutex_lock(&ws->lock);
	uint64_t seq = ++ws->seq;
	for (size_t i = 0; i < ws->n; i++) {
		struct worker *w = ws->w[i];
		if (w->exited)
			continue;
		w->cmd.set_alog = true;
		w->cmd.alog = al;
		w->cmd.seq = seq;
		wake(w);
	}
	wait_done(ws, seq);
	pthread_mutex_unlock(&ws->lock);
}

static void post_flag(struct workers *ws, bool drain)
{
	pthread_mutex_lock(&ws->lock);
	for (size_t i = 0; i < ws->n; i++) {
		struct worker *w = ws->w[i];
		if (w->exited)
			continue;
		if (drain)
			w->cmd.drain = true;
		else
			w->cmd.stop = true;
		wake(w);
	}
	pthread_mutex_unlock(&ws->lock);
}

void workers_drain(struct workers *ws)
{
	post_flag(ws, true);
}

void workers_stop(struct workers *ws)
{
	post_flag(ws, false);
}

void workers_free(struct workers *ws)
{
	if (!ws)
		return;
	pthread_mutex_lock(&ws->lock);
	while (ws->running)
		pthread_cond_wait(&ws->cond, &ws->lock);
	pthread_mutex_unlock(&ws->lock);
	for (size_t i = 0; i < ws->n; i++) {
		struct worker *w = ws->w[i];
		if (!w)
			continue;
		if (w->thread)
			pthread_join(w->thread, NULL);
		struct worker_cmd *c = &w->cmd;
		if (c->snap) {
			close_fds(c->fds, c->snap->cfg->nlisten);
			snapshot_release(c->snap);
		}
		worker_free(w);
	}
	/* Reports not handled yet let go of their snapshots. */
	for (size_t i = 0; i < ws->nreports; i++)
		snapshot_release(ws->reports[i].snap);
	free(ws->reports);
	if (ws->report_ev)
		event_free(ws->report_ev);
	if (ws->exit_ev)
		event_free(ws->exit_ev);
	pthread_mutex_destroy(&ws->lock);
	pthread_cond_destroy(&ws->cond);
	free(ws->w);
	free(ws);
}

uint64_t workers_connections(const struct workers *ws)
{
	uint64_t n = 0;
	for (size_t i = 0; i < ws->n; i++)
		n += STAT_GET(ws->w[i]->nsessions);
	return n;
}

uint64_t workers_tls_failures(const struct workers *ws)
{
	uint64_t n = 0;
	for (size_t i = 0; i < ws->n; i++)
		n += STAT_GET(ws->w[i]->tls_handshake_failures);
	return n;
}

uint64_t workers_local_errors(const struct workers *ws, int kind)
{
	uint64_t n = 0;
	for (size_t i = 0; i < ws->n; i++)
		n += STAT_GET(ws->w[i]->local_errors[kind]);
	return n;
}

uint64_t workers_buffered_bytes(const struct workers *ws)
{
	uint64_t n = 0;
	for (size_t i = 0; i < ws->n; i++)
		n += STAT_GET(ws->w[i]->bufs.held_bytes);
	return n;
}

uint64_t workers_spliced_bytes(const struct workers *ws)
{
	uint64_t n = 0;
	for (size_t i = 0; i < ws->n; i++)
		n += STAT_GET(ws->w[i]->spliced_bytes);
	return n;
}
