/*
 * worker.h — one event loop thread: its listeners, sessions, upstream
 * connections, free lists and the routing snapshot it reads.
 */
#ifndef ZDM_WORKER_H
#define ZDM_WORKER_H

#include <stdbool.h>

#include "worker-t.h"

struct snapshot;

/* A worker routing with snap (it takes over the caller's reference), its
 * listeners bound. Returns NULL (errors logged) when a listener cannot be
 * opened. */
struct worker *worker_new(struct snapshot *snap);

/* Switches to snapshot next, taking over the caller's reference. A new
 * config brings its listeners (kept, opened or closed by address) and a new
 * server layout (idle upstream connections are closed; in-flight requests
 * finish with the snapshot they began with). Returns 0, or -1 with nothing
 * changed (and next released) when a new listener cannot be opened. */
int worker_apply(struct worker *w, struct snapshot *next);
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
