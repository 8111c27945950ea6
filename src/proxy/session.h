/*
 * session.h — a client connection: reads requests, routes each one, relays
 * it to an upstream connection and relays the response back.
 */
#ifndef ZDM_SESSION_H
#define ZDM_SESSION_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "proxy/worker-t.h"

struct worker;
struct session;
struct upconn;

struct ssl_ctx_st;

/* Takes a freshly accepted client socket; tls is the listener's TLS
 * context (NULL for plain HTTP). */
void session_accept(struct worker *w, int fd, const struct sockaddr *sa, socklen_t salen,
                    struct ssl_ctx_st *tls);

/* Graceful shutdown: idle sessions close now, the others after their
 * current response. */
void session_drain_all(struct worker *w);
void session_free_all(struct worker *w);
/* Out of descriptors, a worker takes back those of its client connections
 * that wait for a request with nothing of one received, the oldest first
 * (HTTP lets a server close an idle connection at any time; nginx reuses
 * its "reusable" connections the same way). Closes at most max; returns how
 * many. */
size_t session_close_idle(struct worker *w, size_t max);

/* Hooks the upstream side calls on the session it serves. Each returns 0
 * when u is still attached and may go on, or -1 when the session let go of
 * u (released, closed or re-attached elsewhere): the caller must not touch
 * u after -1. */
int session_on_response_head(struct session *s, struct upconn *u);
/* A read timeout of c, one side of s's tunnel: the tunnel ends when no
 * byte has moved either way for its route's tunnel_idle; otherwise c
 * waits for the rest of it. Returns -1 when s was closed. */
int session_on_tunnel_timeout(struct session *s, struct conn *c);
int session_on_response_body(struct session *s, struct upconn *u, uint32_t off, uint32_t len);
int session_on_response_done(struct session *s, struct upconn *u);
int session_on_upstream_error(struct session *s, struct upconn *u, enum up_error err);
int session_on_upstream_drained(struct session *s, struct upconn *u);
/* Writing to the client failed while the upstream fed it directly (a
 * spliced body): the session ends. Returns -1. */
int session_on_client_gone(struct session *s);

#endif
