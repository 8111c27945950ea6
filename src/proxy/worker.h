/*
 * worker.h — one event loop thread: its listeners, sessions, upstream
 * connections, free lists and the routing snapshot it reads.
 */
#ifndef ZDM_WORKER_H
#define ZDM_WORKER_H

#include <stdbool.h>

#include "proxy/worker-t.h"

struct snapshot;

/* Worker id of nworkers in set, routing with snap (it takes over the
 * caller's reference), listening on fds (one per listener of snap's
 * config, taken over). NULL (logged) when its loop cannot be made. */
struct worker *worker_new(struct workers *set, uint32_t id, uint32_t nworkers,
                          struct snapshot *snap, const int *fds);

/* Switches to snapshot next, taking over the caller's reference. A new
 * config brings its listeners: fds[i] is a new socket for listener i or -1
 * for an address listened on before (kept); listeners of addresses gone are
 * closed; a new server layout closes idle upstream connections (in-flight
 * requests finish with the snapshot they began with). Worker thread only. */
void worker_apply(struct worker *w, struct snapshot *next, const int *fds);

/* Takes the snapshot the control plane published, if any (worker thread). */
void worker_take_pending(struct worker *w);
static inline void worker_refresh(struct worker *w)
{
	if (__atomic_load_n(&w->pending, __ATOMIC_ACQUIRE))
		worker_take_pending(w);
}

void worker_free(struct worker *w);

/* Runs the event loop until the worker has drained or is stopped. */
int worker_run(struct worker *w);

/* Stops accepting, lets in-flight requests finish within timeouts.drain,
 * then ends the loop. */
void worker_drain(struct worker *w);
void worker_stop(struct worker *w);

/* Called by a session as it closes (connection limits, drain progress). */
void worker_session_closed(struct worker *w);

#endif
