/*
 * pipe.h — the pipes that body bytes pass through from one socket to
 * another with splice(2), pooled per worker.
 *
 * A plain-HTTP body with a Content-Length, at least SPLICE_MIN bytes of
 * which are still to come once its head and first bytes went out the usual
 * way, moves through a pipe: the bytes stay in the kernel and our code never
 * touches them. Responses are spliced from the upstream socket to the
 * client's (upstream.c), request bodies from the client socket to the
 * upstream's (session.c).
 */
#ifndef ZDM_PIPE_H
#define ZDM_PIPE_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#define SPLICE_MIN (64 * 1024)

struct worker;
struct splice_pipe;

/* An empty pipe, or NULL when the system gives none (the body then goes
 * through user space). */
struct splice_pipe *splice_pipe_get(struct worker *w);

/* Gives the pipe back: kept for reuse when empty, else closed. */
void splice_pipe_put(struct worker *w, struct splice_pipe *p, bool empty);

/* Moves from socket fd into p as much as p has room for, at most *left
 * bytes; returns what splice(2) returned, and counts what moved in
 * *in_pipe and *left. */
ssize_t splice_pipe_fill(struct splice_pipe *p, int fd, uint32_t *in_pipe, uint64_t *left);

/* Moves what p holds (*in_pipe bytes) to socket fd; returns what splice(2)
 * returned, and counts what moved in *in_pipe. */
ssize_t splice_pipe_drain(struct splice_pipe *p, int fd, uint32_t *in_pipe);

/* Closes the worker's spare pipes. */
void splice_pipe_free_all(struct worker *w);

#endif
