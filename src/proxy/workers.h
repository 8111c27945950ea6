/*
 * workers.h — the event-loop threads and what crosses between them and the
 * control plane.
 *
 * Each worker runs its own event loop on its own thread with its own
 * SO_REUSEPORT listening sockets (the kernel spreads new connections over
 * them), free lists, upstream connections and stats shard. The control
 * plane (control socket, admin listener, health checks, breaker timers,
 * signals) runs on the main thread's loop and talks to the workers in three
 * ways only:
 *
 *   - routing snapshots: published into each worker's pending slot with an
 *     atomic exchange; a worker takes the newest one as a request begins
 *     (one atomic load when nothing changed), so the next request routed
 *     after a change uses it, with no lock on the hot path;
 *   - commands (a new config with its listening sockets, another access
 *     log, drain, stop): posted under a lock with an eventfd wake-up; a
 *     config change waits until every worker has taken it, so a reload is
 *     answered only once it is in force everywhere;
 *   - reports from the workers (breaker outcomes that can change a state,
 *     probes admitted; a probe's slot itself is taken without a lock, see
 *     stats_take_probe): handled at once on the worker's thread when the
 *     control plane's lock is free (so a circuit opened by a response is
 *     open for every worker before that response is sent), else queued and
 *     handled on the control loop. Successes are reported only while a
 *     server's breaker counts failures, so a healthy proxy sends none.
 */
#ifndef ZDM_WORKERS_H
#define ZDM_WORKERS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct accesslog;
struct event_base;
struct snapshot;
struct worker;
struct workers;

enum worker_event {
	WORKER_SUCCESS,    /* an exchange succeeded */
	WORKER_FAILURE,    /* an exchange failed (kind and what say how) */
	WORKER_ABANDONED,  /* a probe ended without an outcome */
	WORKER_ADMITTED,   /* a request took a probe slot of a half-open server */
};

/* Handles a report; snap is the snapshot the request was routed with.
 * With wait false (from a worker) it returns -1 at once when the control
 * plane is busy (the report is then queued and handled again, with wait
 * true, on the control loop); else 0. */
typedef int (*workers_report_fn)(void *arg, const struct snapshot *snap, uint32_t server,
                                 enum worker_event ev, int kind, const char *what, bool wait);

/* The number of workers the config asks for: workers, or one per core
 * this process may run on for "auto". */
unsigned workers_wanted(unsigned configured);

/* Opens snap's listeners for n workers and starts their threads, each
 * routing with snap (the caller keeps its reference). Reports go to
 * report(arg) on ctl, the control plane's loop, whose loop is ended when the
 * last worker has ended. NULL (logged) when a listener cannot be opened. */
struct workers *workers_start(struct event_base *ctl, struct snapshot *snap, unsigned n,
                              workers_report_fn report, void *arg);

size_t workers_count(const struct workers *ws);

/* Publishes snap (the caller keeps its reference). A snapshot of another
 * config brings its listeners: new addresses are opened first (-1, with
 * nothing changed, when one cannot be), then every worker takes the config
 * before this returns. */
int workers_publish(struct workers *ws, struct snapshot *snap);

/* Every worker writes its access log lines to al (NULL: none) from now on;
 * returns once they all do, so the previous log can be closed. */
void workers_set_accesslog(struct workers *ws, struct accesslog *al);

/* Graceful shutdown: each worker stops accepting and ends when its
 * requests are done (or timeouts.drain has passed). */
void workers_drain(struct workers *ws);
/* Ends every loop at once. */
void workers_stop(struct workers *ws);

/* Joins the threads (their loops must have ended) and frees them. */
void workers_free(struct workers *ws);

/* Sums over the workers. */
uint64_t workers_connections(const struct workers *ws);
uint64_t workers_tls_failures(const struct workers *ws);
uint64_t workers_spliced_bytes(const struct workers *ws);
/* Bytes of receive blocks the workers hold now (read, not yet written). */
uint64_t workers_buffered_bytes(const struct workers *ws);
/* Failures for lack of a resource of this process, of one kind
 * (enum local_error), summed over the workers. */
uint64_t workers_local_errors(const struct workers *ws, int kind);

/* From a worker thread: a report for the control plane, handled at once
 * or queued. kind: the enum cfg_fail_kind of a WORKER_FAILURE, else 0. */
void worker_report(struct worker *w, const struct snapshot *snap, uint32_t server,
                   enum worker_event ev, int kind, const char *what);

#endif
