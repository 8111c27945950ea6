/*
 * upstream.h — connections to upstream servers: non-blocking connect, reuse
 * from a per-server idle list, reading and parsing responses.
 *
 * The upstream side does not know what a session does with a response: it
 * reports what happened through the session_* hooks declared in session.h
 * (head parsed, body bytes, message done, output drained, failure).
 */
#ifndef ZDM_UPSTREAM_H
#define ZDM_UPSTREAM_H

#include <stdbool.h>
#include <stdint.h>

struct worker;
struct upconn;
struct session;

struct snapshot;
struct snap_server;

/* A connection to server sv of pool `pool` of snapshot snap for session s:
 * an idle one if there is one (unless fresh), else a new connect (with TLS
 * when the pool has it). Returns NULL if no socket
 * could be made (the caller treats it as a connect failure). */
struct upconn *upstream_get(struct worker *w, const struct snapshot *snap, int pool,
                            const struct snap_server *sv, struct session *s, bool fresh);

/* Writes what the session queued on u->c.out (or waits for the connect). */
void upstream_flush(struct upconn *u);

/* The exchange is over: back to the idle list when reusable, else closed. */
void upstream_release(struct upconn *u, bool reusable);

/* Starts reading the response (after the request head is queued). */
void upstream_start(struct upconn *u, bool head_request);

/* The whole request is queued: the response is now due within
 * timeouts.upstream_response. */
void upstream_request_sent(struct upconn *u);

/* Resumes or pauses reading responses (flow control). */
void upstream_pause(struct upconn *u, bool paused);

/* Closes every idle connection (reload, shutdown, out of descriptors);
 * returns how many. */
size_t upstream_close_idle(struct worker *w);

void upstream_free_all(struct worker *w);

/* Moves spliced body bytes while the sockets allow (upstream.c); the
 * session calls it when its client can take more. */
void upstream_splice(struct upconn *u);

#endif
