/*
 * conn.h — one non-blocking TCP socket on an event loop: a receive block it
 * reads into, its read event embedded, and a write side (a write event and
 * an output evbuffer) that its owner lends it: an upstream connection for
 * as long as it is open, a client session only while it handles a request
 * (an idle keep-alive connection needs no write side). Nothing is
 * allocated per connection.
 *
 * Reading: conn_recv() appends to the receive block [rx_start, rx_end); the
 * owner consumes from rx_start. Bytes that are forwarded stay in the block,
 * referenced from the peer's output (see buf.h).
 * Writing: the owner appends with conn_put*() and calls conn_flush(), which
 * writes at once and only arms the write event when the socket is full.
 * What is appended while the output is small is staged: copied into one
 * block of the write side and written with one send(2), which costs less
 * than keeping a chain per piece (a forwarded head is several runs of the
 * received bytes plus the lines added to it). Larger pieces, and all that
 * follows them, are kept as references to the received blocks (see buf.h):
 * the first few in the output itself, more in evbuffer chains, and are
 * written with sendmsg(2).
 * Read timeouts: the read event itself has none (re-arming a libevent
 * timeout several times per request is costly); each conn has a deadline
 * in its loop's conn_timeouts, which moves forward with every read and
 * delivers EV_TIMEOUT to the read callback when it passes.
 */
/*
 * The net wing (src/net/): sockets and their bytes — a connection's reads,
 * writes and deadlines (conn), TLS (tls), listening sockets (listener). It
 * knows nothing of HTTP and includes only core.
 */
#ifndef ZDM_CONN_H
#define ZDM_CONN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <event2/event.h>
#include <event2/event_struct.h>

#include "core/timeq.h"

struct buf;
struct buf_pool;
struct evbuffer;
typedef struct ssl_st SSL;

/* The read deadlines of the conns of one event loop. */
struct conn_timeouts {
	struct timeq q;
	struct event timer; /* fires at the queue's earliest key */
};

void conn_timeouts_init(struct conn_timeouts *t, struct event_base *base);
/* Every conn of the loop must be closed first. */
void conn_timeouts_free(struct conn_timeouts *t);

struct conn {
	int fd;
	SSL *ssl;              /* TLS on this socket, NULL for plain TCP */
	bool ssl_read_blocked; /* the last SSL_read wants the socket writable */
	struct event rev;
	struct event *wev;     /* the write side, lent by the owner (or NULL) */
	struct conn_out *out;
	struct buf *rx;
	uint32_t rx_start, rx_end;
	bool reading;          /* rev is armed */
	bool eof;              /* the peer closed its side */
	uint32_t read_timeout_ms; /* of the deadline; each read renews it */
	struct conn_timeouts *timeouts;
	struct timeq_entry deadline; /* set while reading with a timeout */
};

/* Sets up the conn for fd (takes ownership), without a write side, on the
 * loop of t. The read callback gets arg. */
void conn_open(struct conn *c, struct conn_timeouts *t, int fd, event_callback_fn on_read,
               void *arg);

/* Lends the conn a write side: wev is assigned here (on_write gets the
 * read callback's arg) and out, empty, becomes .out. */
void conn_attach_out(struct conn *c, struct event *wev, struct conn_out *out,
                     event_callback_fn on_write);

/* Outputs of at most this many bytes in all are staged: copied into one
 * piece and written with one send(2) (measured: ~1 µs less CPU per small
 * request than sendmsg(2) with a piece per run, the kernel copying each on
 * its own). Larger outputs go by reference. */
#define CONN_STAGE 2048

/* References an output holds in place, after the stage and before the
 * chains: a forwarded body of a few KiB behind its staged head is sent
 * from the block it was received in without an evbuffer chain. */
#define CONN_REFS 4

/* A piece of the output by reference: len bytes at p, in block b (NULL:
 * static text), whose reference the output holds. */
struct conn_ref {
	struct buf *b;
	const char *p;
	uint32_t len;
};

/* The output of a write side: bytes staged, stage[off, len), then
 * references, ref[ref_first, ref_end), then chains. A piece goes to the
 * first of the three that can take it without coming before what is
 * already in a later one: once the chains hold something, all that
 * follows goes to them too. */
struct conn_out {
	struct evbuffer *chains;
	bool chained;        /* the chains may hold bytes (false: they do not) */
	char *resv;          /* a reservation in chains (NULL: in the stage) */
	uint32_t off, len;
	uint8_t ref_first, ref_end;
	uint32_t ref_bytes;  /* held by ref[ref_first, ref_end) */
	struct conn_ref ref[CONN_REFS];
	char stage[CONN_STAGE];
};

/* A new output for a write side; aborts, as the x-allocators do, when
 * memory is exhausted. */
struct conn_out *conn_out_new(void);
void conn_out_free(struct conn_out *o);

/* Takes the write side back; nothing may be left to write. */
void conn_detach_out(struct conn *c);

/* Closes the socket, drops the receive block and empties .out (releasing
 * the references it held). The write side stays lent. */
void conn_close(struct conn *c);

/* Makes a pooled conn closed and empty; conn_destroy closes it if open. */
void conn_setup(struct conn *c);
void conn_destroy(struct conn *c);

/* Reads once into the receive block, getting or growing one as needed so
 * that the unconsumed bytes plus room fit in max_block. Returns bytes read,
 * 0 at EOF, -1 on error (errno), -2 when nothing is available (EAGAIN), or
 * -3 when the unconsumed bytes already fill max_block. */
ssize_t conn_recv(struct conn *c, struct buf_pool *bp, size_t max_block);

/* Drops the receive block if nothing unconsumed is left in it, or rewinds
 * it when nobody else references it. Called between messages so an idle
 * connection holds no block. */
void conn_rx_settle(struct conn *c);

static inline uint32_t conn_rx_len(const struct conn *c)
{
	return c->rx_end - c->rx_start;
}

/* Appending to the output of a conn with a write side. Each aborts when
 * memory is exhausted. conn_put copies p; conn_put_static keeps a
 * reference to p, which must outlive the output (static text);
 * conn_put_ref appends bytes [off, off+len) of block b, by reference when
 * they are not staged. */
void conn_put(struct conn *c, const void *p, size_t len);
void conn_put_static(struct conn *c, const void *p, size_t len);
void conn_put_ref(struct conn *c, struct buf *b, uint32_t off, uint32_t len);

/* Room for len bytes at the end of the output, to be written and then
 * committed with conn_commit(c, len) before anything else is appended. */
char *conn_reserve(struct conn *c, size_t len);
void conn_commit(struct conn *c, size_t len);

/* Moves everything from's output holds to the end of to's. */
void conn_out_move(struct conn *to, struct conn *from);

/* Writes what .out holds. Returns 0 when all is written, 1 when some is
 * left (the write event is armed with timeout_ms), -1 on error. A conn
 * without a write side has nothing to write. */
int conn_flush(struct conn *c, uint32_t timeout_ms);

/* Arms the write event (timeout_ms 0: none) for bytes written to the socket
 * other than from .out (splice). Returns 1. */
int conn_wait_writable(struct conn *c, uint32_t timeout_ms);

/* Arms or disarms the read event; timeout_ms 0 means none. A timeout is
 * renewed by each read that brings bytes, and when it passes the read
 * callback gets EV_TIMEOUT (once: arming again starts a new one). */
void conn_want_read(struct conn *c, bool on, uint32_t timeout_ms);

size_t conn_out_len(const struct conn *c);

/* TLS handshake progress (conn_handshake). */
enum conn_hs {
	CONN_HS_DONE,
	CONN_HS_WANT_READ,
	CONN_HS_WANT_WRITE,
	CONN_HS_FAILED,
};

/* Drives the TLS handshake of c->ssl. */
enum conn_hs conn_handshake(struct conn *c);

/* Whether TLS holds decrypted bytes that no socket event will announce. */
bool conn_tls_pending(const struct conn *c);

#endif
