/*
 * worker.h — one event loop thread: its listeners, sessions, upstream
 * connections, free lists and the routing snapshot it reads.
 */
#ifndef ZDM_WORKER_H
#define ZDM_WORKER_H

#include <stdbool.h>

#include "worker-t.h"

struct config;

/* A worker for cfg with its listeners bound. Returns NULL (errors logged)
 * when a listener cannot be opened. */
struct worker *worker_new(const struct config *cfg);
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
