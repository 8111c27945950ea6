/*
 * conn.c — non-blocking socket I/O into receive blocks and out of a stage
 * block, references held in place and evbuffer chains.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <openssl/err.h>
#include <openssl/ssl.h>

#include "core/buf.h"
#include "net/conn.h"

/* Timeouts of one length share one queue in libevent ("common timeouts"):
 * re-arming one, which happens several times per request, appends to a
 * list instead of moving an entry in the timer heap. The few lengths a
 * config uses are cached per thread (each worker thread has one loop). */
#define TIMEOUT_CACHE 8

static __thread struct {
	struct event_base *base;
	uint32_t ms;
	struct timeval tv;
} timeout_cache[TIMEOUT_CACHE];
static __thread unsigned timeout_cached;

static struct timeval ms_tv(const struct conn *c, uint32_t ms)
{
	struct event_base *base = event_get_base(&c->rev);
	for (unsigned i = 0; i < timeout_cached; i++)
		if (timeout_cache[i].ms == ms && timeout_cache[i].base == base)
			return timeout_cache[i].tv;
	struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
	const struct timeval *common = event_base_init_common_timeout(base, &tv);
	if (!common)
		return tv;
	if (timeout_cached < TIMEOUT_CACHE) {
		timeout_cache[timeout_cached].base = base;
		timeout_cache[timeout_cached].ms = ms;
		timeout_cache[timeout_cached].tv = *common;
		timeout_cached++;
	}
	return *common;
}

/* Milliseconds on the clock of read deadlines: coarse (a few ms), which
 * is read without a system call and is plenty for timeouts. */
static uint64_t deadline_now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void on_deadline_timer(evutil_socket_t fd, short what, void *arg)
{
	struct conn_timeouts *t = arg;
	(void)fd;
	(void)what;
	timeq_run(&t->q, deadline_now());
}

static void wake_at(struct timeq *q, uint64_t at)
{
	struct conn_timeouts *t = (struct conn_timeouts *)((char *)q - offsetof(struct conn_timeouts, q));
	uint64_t now = deadline_now();
	/* At least 1 ms: the coarse clock can lag the loop's. */
	uint64_t ms = at > now ? at - now : 1;
	struct timeval tv = {(time_t)(ms / 1000), (suseconds_t)(ms % 1000) * 1000};
	event_add(&t->timer, &tv);
}

static void expire(struct timeq *q, struct timeq_entry *e)
{
	struct conn *c = (struct conn *)((char *)e - offsetof(struct conn, deadline));
	(void)q;
	event_active(&c->rev, EV_TIMEOUT, 0);
}

void conn_timeouts_init(struct conn_timeouts *t, struct event_base *base)
{
	timeq_init(&t->q, wake_at, expire);
	evtimer_assign(&t->timer, base, on_deadline_timer, t);
}

void conn_timeouts_free(struct conn_timeouts *t)
{
	if (event_initialized(&t->timer))
		event_del(&t->timer);
	timeq_free(&t->q);
}

void conn_setup(struct conn *c)
{
	memset(c, 0, sizeof(*c));
	c->fd = -1;
}

void conn_destroy(struct conn *c)
{
	conn_close(c);
	c->wev = NULL;
	c->out = NULL;
}

void conn_open(struct conn *c, struct conn_timeouts *t, int fd, event_callback_fn on_read,
               void *arg)
{
	c->fd = fd;
	c->ssl = NULL;
	c->ssl_read_blocked = false;
	c->rx = NULL;
	c->rx_start = c->rx_end = 0;
	c->reading = false;
	c->eof = false;
	c->read_timeout_ms = 0;
	c->timeouts = t;
	c->deadline = (struct timeq_entry){0};
	c->wev = NULL;
	c->out = NULL;
	event_assign(&c->rev, event_get_base(&t->timer), fd, EV_READ | EV_PERSIST, on_read, arg);
}

void conn_attach_out(struct conn *c, struct event *wev, struct conn_out *out,
                     event_callback_fn on_write)
{
	event_assign(wev, event_get_base(&c->rev), c->fd, EV_WRITE | EV_PERSIST, on_write,
	             event_get_callback_arg(&c->rev));
	c->wev = wev;
	c->out = out;
}

static void out_of_memory(const char *what)
{
	fprintf(stderr, "zdm: fatal: out of memory %s\n", what);
	abort();
}

struct conn_out *conn_out_new(void)
{
	struct conn_out *o = malloc(sizeof(*o));
	if (!o || !(o->chains = evbuffer_new()))
		out_of_memory("allocating an output buffer");
	o->chained = false;
	o->resv = NULL;
	o->off = o->len = 0;
	o->ref_first = o->ref_end = 0;
	o->ref_bytes = 0;
	return o;
}

/* Gives back the references ref[ref_first, ref_end). */
static void refs_clear(struct conn_out *o)
{
	for (unsigned i = o->ref_first; i < o->ref_end; i++)
		if (o->ref[i].b)
			buf_unref(o->ref[i].b);
	o->ref_first = o->ref_end = 0;
	o->ref_bytes = 0;
}

void conn_out_free(struct conn_out *o)
{
	if (!o)
		return;
	/* What it still references is let go, as evbuffer_free() does for
	 * the chains. */
	refs_clear(o);
	evbuffer_free(o->chains);
	free(o);
}

static void out_clear(struct conn_out *o)
{
	o->off = o->len = 0;
	refs_clear(o);
	if (o->chained)
		evbuffer_drain(o->chains, evbuffer_get_length(o->chains));
	o->chained = false;
}

static size_t chained_len(struct conn_out *o)
{
	if (!o->chained)
		return 0;
	size_t n = evbuffer_get_length(o->chains);
	o->chained = n > 0;
	return n;
}

/* Whether len more bytes go to the stage: plain TCP (TLS writes records
 * from the chains), nothing after the stage yet, and room. */
static bool stages(const struct conn *c, size_t len)
{
	const struct conn_out *o = c->out;
	return !c->ssl && o->len + len <= CONN_STAGE && !o->ref_end && !o->chained;
}

/* Takes room for len bytes in the stage if they go there (stages()), or
 * returns NULL. Inlined, and the length counted before the bytes are
 * copied, so that a put that stages ends in a tail call of memcpy: this
 * runs for every piece of every output. */
static inline __attribute__((always_inline)) char *stage_room(struct conn *c, size_t len)
{
	struct conn_out *o = c->out;
	if (!stages(c, len))
		return NULL;
	char *p = o->stage + o->len;
	o->len += (uint32_t)len;
	return p;
}

/* Keeps a reference to len bytes at p (in block b, or static when b is
 * NULL) in the output itself if it goes there: plain TCP, nothing in the
 * chains, a free place. */
static bool hold_ref(struct conn *c, struct buf *b, const char *p, uint32_t len)
{
	struct conn_out *o = c->out;
	if (!len)
		return true;
	if (c->ssl || o->chained || o->ref_end == CONN_REFS)
		return false;
	if (b)
		buf_ref(b);
	o->ref[o->ref_end++] = (struct conn_ref){.b = b, .p = p, .len = len};
	o->ref_bytes += len;
	return true;
}

/* What does not stage: copied into the chains (put_copy), or held by
 * reference in the output or chained (put_ref). */
static __attribute__((noinline)) void put_copy(struct conn *c, const void *p, size_t len)
{
	c->out->chained = true;
	if (evbuffer_add(c->out->chains, p, len) < 0)
		out_of_memory("adding to an output");
}

/* Appends a chain referencing len bytes at p (in block b, or static when
 * b is NULL) to e. */
static void chain_ref(struct evbuffer *e, struct buf *b, const char *p, uint32_t len)
{
	if ((b ? buf_add_ref(e, b, (uint32_t)(p - b->data), len)
	       : evbuffer_add_reference(e, p, len, NULL, NULL)) < 0)
		out_of_memory("adding to an output");
}

static __attribute__((noinline)) void put_ref(struct conn *c, struct buf *b, const char *p,
                                              uint32_t len)
{
	if (hold_ref(c, b, p, len))
		return;
	c->out->chained = true;
	chain_ref(c->out->chains, b, p, len);
}

void conn_put(struct conn *c, const void *p, size_t len)
{
	char *d = stage_room(c, len);
	if (d)
		memcpy(d, p, len);
	else
		put_copy(c, p, len);
}

void conn_put_static(struct conn *c, const void *p, size_t len)
{
	char *d = stage_room(c, len);
	if (d)
		memcpy(d, p, len);
	else
		put_ref(c, NULL, p, (uint32_t)len);
}

void conn_put_ref(struct conn *c, struct buf *b, uint32_t off, uint32_t len)
{
	char *d = stage_room(c, len);
	if (d)
		memcpy(d, b->data + off, len);
	else
		put_ref(c, b, b->data + off, len);
}

char *conn_reserve(struct conn *c, size_t len)
{
	struct conn_out *o = c->out;
	if (stages(c, len)) {
		o->resv = NULL;
		return o->stage + o->len;
	}
	struct evbuffer_iovec v;
	if (evbuffer_reserve_space(o->chains, (ev_ssize_t)len, &v, 1) < 1 || v.iov_len < len)
		out_of_memory("adding to an output");
	o->chained = true;
	o->resv = v.iov_base;
	return o->resv;
}

void conn_commit(struct conn *c, size_t len)
{
	struct conn_out *o = c->out;
	if (!o->resv) {
		o->len += (uint32_t)len;
		return;
	}
	struct evbuffer_iovec v = {.iov_base = o->resv, .iov_len = len};
	o->resv = NULL;
	if (evbuffer_commit_space(o->chains, &v, 1) < 0)
		out_of_memory("adding to an output");
}

void conn_out_move(struct conn *to, struct conn *from)
{
	struct conn_out *f = from->out;
	if (f->len > f->off)
		conn_put(to, f->stage + f->off, f->len - f->off);
	f->off = f->len = 0;
	for (unsigned i = f->ref_first; i < f->ref_end; i++) {
		const struct conn_ref *r = &f->ref[i];
		if (r->b)
			conn_put_ref(to, r->b, (uint32_t)(r->p - r->b->data), r->len);
		else
			conn_put_static(to, r->p, r->len);
	}
	refs_clear(f);
	if (chained_len(f)) {
		to->out->chained = true;
		if (evbuffer_add_buffer(to->out->chains, f->chains) < 0)
			out_of_memory("moving an output");
		f->chained = false;
	}
}

/* n bytes written past the stage: from the references, then the chains. */
static __attribute__((noinline)) void consume_tail(struct conn_out *o, size_t n)
{
	while (n && o->ref_first < o->ref_end) {
		struct conn_ref *r = &o->ref[o->ref_first];
		if (n < r->len) {
			r->p += n;
			r->len -= (uint32_t)n;
			o->ref_bytes -= (uint32_t)n;
			return;
		}
		n -= r->len;
		o->ref_bytes -= r->len;
		if (r->b)
			buf_unref(r->b);
		o->ref_first++;
	}
	if (o->ref_first == o->ref_end)
		o->ref_first = o->ref_end = 0;
	if (n) {
		evbuffer_drain(o->chains, n);
		chained_len(o);
	}
}

/* The first n bytes of the output were written. */
static void out_consume(struct conn_out *o, size_t n)
{
	size_t staged = o->len - o->off;
	if (n < staged) {
		o->off += (uint32_t)n;
		return;
	}
	o->off = o->len = 0;
	if (n > staged)
		consume_tail(o, n - staged);
}

void conn_detach_out(struct conn *c)
{
	if (c->wev)
		event_del(c->wev);
	c->wev = NULL;
	c->out = NULL;
}

void conn_close(struct conn *c)
{
	if (c->fd < 0)
		return;
	event_del(&c->rev);
	timeq_remove(&c->timeouts->q, &c->deadline);
	if (c->wev)
		event_del(c->wev);
	if (c->ssl) {
		/* One close_notify, without waiting for the peer's. */
		SSL_shutdown(c->ssl);
		SSL_free(c->ssl);
		c->ssl = NULL;
		ERR_clear_error();
	}
	close(c->fd);
	c->fd = -1;
	c->reading = false;
	if (c->rx) {
		buf_unref(c->rx);
		c->rx = NULL;
	}
	c->rx_start = c->rx_end = 0;
	if (c->out)
		out_clear(c->out);
}

void conn_rx_settle(struct conn *c)
{
	if (!c->rx || c->rx_start != c->rx_end)
		return;
	if (c->rx->refs == 1) {
		/* Nobody else holds it: rewind, or give it back when the
		 * connection has nothing pending. */
		buf_unref(c->rx);
		c->rx = NULL;
	} else if (c->rx_end == c->rx->size) {
		buf_unref(c->rx);
		c->rx = NULL;
	}
	if (!c->rx)
		c->rx_start = c->rx_end = 0;
}

static ssize_t tls_recv(struct conn *c)
{
	int room = (int)(c->rx->size - c->rx_end);
	int n = SSL_read(c->ssl, c->rx->data + c->rx_end, room);
	if (n > 0) {
		c->rx_end += (uint32_t)n;
		return n;
	}
	switch (SSL_get_error(c->ssl, n)) {
	case SSL_ERROR_WANT_READ:
		return -2;
	case SSL_ERROR_WANT_WRITE:
		/* A TLS message must go out first: retried when writable. */
		if (!c->wev)
			return -1; /* TLS owners keep their write side */
		c->ssl_read_blocked = true;
		event_add(c->wev, NULL);
		return -2;
	case SSL_ERROR_ZERO_RETURN:
		c->eof = true;
		return 0;
	default:
		ERR_clear_error();
		return -1;
	}
}

bool conn_tls_pending(const struct conn *c)
{
	return c->ssl && SSL_has_pending(c->ssl);
}

enum conn_hs conn_handshake(struct conn *c)
{
	int r = SSL_do_handshake(c->ssl);
	if (r == 1)
		return CONN_HS_DONE;
	switch (SSL_get_error(c->ssl, r)) {
	case SSL_ERROR_WANT_READ:
		return CONN_HS_WANT_READ;
	case SSL_ERROR_WANT_WRITE:
		return CONN_HS_WANT_WRITE;
	default:
		return CONN_HS_FAILED;
	}
}

/* Writes .out through TLS: the chains are handed to SSL_write one by one
 * (small ones gathered first, so that records are not tiny). */
static int tls_flush(struct conn *c, uint32_t timeout_ms)
{
	struct conn_out *o = c->out;
	struct evbuffer *chains = o->chains;
	if (o->len > o->off || o->ref_end) {
		/* Staged or held before the socket had TLS (an upstream
		 * connection still connecting): those bytes go first. */
		struct evbuffer *front = evbuffer_new();
		if (!front || evbuffer_add(front, o->stage + o->off, o->len - o->off) < 0)
			out_of_memory("adding to an output");
		for (unsigned i = o->ref_first; i < o->ref_end; i++)
			chain_ref(front, o->ref[i].b, o->ref[i].p, o->ref[i].len);
		refs_clear(o);
		o->off = o->len = 0;
		if (evbuffer_prepend_buffer(chains, front) < 0)
			out_of_memory("adding to an output");
		evbuffer_free(front);
		o->chained = true;
	}
	while (evbuffer_get_length(chains)) {
		struct evbuffer_iovec v;
		evbuffer_peek(chains, -1, NULL, &v, 1);
		if (v.iov_len < 4096 && evbuffer_get_length(chains) > v.iov_len) {
			size_t want = evbuffer_get_length(chains);
			v.iov_base = evbuffer_pullup(chains, (ssize_t)(want < 16384 ? want : 16384));
			v.iov_len = want < 16384 ? want : 16384;
		}
		int n = SSL_write(c->ssl, v.iov_base, (int)v.iov_len);
		if (n > 0) {
			evbuffer_drain(chains, (size_t)n);
			continue;
		}
		switch (SSL_get_error(c->ssl, n)) {
		case SSL_ERROR_WANT_WRITE: {
			struct timeval tv = ms_tv(c, timeout_ms);
			event_add(c->wev, timeout_ms ? &tv : NULL);
			return 1;
		}
		case SSL_ERROR_WANT_READ:
			return 1; /* the read side, armed, brings the rest */
		default:
			ERR_clear_error();
			return -1;
		}
	}
	if (event_pending(c->wev, EV_WRITE, NULL) && !c->ssl_read_blocked)
		event_del(c->wev);
	return 0;
}

/* Bytes came: the read timeout starts again. Later than before, so the
 * queue needs no change (see timeq.h). */
static void renew_deadline(struct conn *c)
{
	if (c->deadline.due)
		c->deadline.due = deadline_now() + c->read_timeout_ms;
}

ssize_t conn_recv(struct conn *c, struct buf_pool *bp, size_t max_block)
{
	if (c->rx && c->rx_start == c->rx_end && c->rx->refs == 1)
		c->rx_start = c->rx_end = 0; /* reuse in place */

	if (!c->rx) {
		c->rx = buf_get(bp, bp->block_size);
		c->rx_start = c->rx_end = 0;
	} else if (c->rx_end == c->rx->size) {
		/* Full. Move the unconsumed tail (an incomplete head, or a
		 * pipelined request) to the front of a fresh block, larger if
		 * it must be; forwarded bytes stay referenced in the old one. */
		uint32_t pending = c->rx_end - c->rx_start;
		size_t want = (size_t)pending + bp->block_size / 2;
		if (pending >= max_block)
			return -3;
		if (want < bp->block_size)
			want = bp->block_size;
		if (want > max_block)
			want = max_block;
		if (pending == 0 || c->rx_start > 0 || want > c->rx->size) {
			struct buf *nb = buf_get(bp, want);
			memcpy(nb->data, c->rx->data + c->rx_start, pending);
			buf_unref(c->rx);
			c->rx = nb;
			c->rx_start = 0;
			c->rx_end = pending;
		}
	}

	if (c->ssl) {
		ssize_t n = tls_recv(c);
		if (n > 0)
			renew_deadline(c);
		return n;
	}
	ssize_t n = recv(c->fd, c->rx->data + c->rx_end, c->rx->size - c->rx_end, 0);
	if (n > 0) {
		c->rx_end += (uint32_t)n;
		renew_deadline(c);
		return n;
	}
	if (n == 0) {
		c->eof = true;
		return 0;
	}
	if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
		return -2;
	return -1;
}

/* Chains handed to the kernel per call (after the staged bytes and the
 * references held in place). */
#define SEND_IOV 16

int conn_wait_writable(struct conn *c, uint32_t timeout_ms)
{
	struct timeval tv = ms_tv(c, timeout_ms);
	event_add(c->wev, timeout_ms ? &tv : NULL);
	return 1;
}

/* One send(2) or sendmsg(2) of the staged bytes and the first chains:
 * socket calls, which are cheaper than writev(2) on a socket (no file
 * layer), and MSG_NOSIGNAL instead of relying on SIGPIPE being ignored.
 * Sets *offered to the bytes handed over. */
static ssize_t send_out(struct conn *c, size_t *offered)
{
	struct conn_out *o = c->out;
	size_t staged = o->len - o->off;
	bool chained = chained_len(o) > 0;
	if (!o->ref_end && !chained) {
		*offered = staged;
		return send(c->fd, o->stage + o->off, staged, MSG_NOSIGNAL | MSG_DONTWAIT);
	}
	struct iovec iov[1 + CONN_REFS + SEND_IOV];
	int nv = 0;
	*offered = staged + o->ref_bytes;
	if (staged) {
		iov[nv].iov_base = o->stage + o->off;
		iov[nv++].iov_len = staged;
	}
	for (unsigned i = o->ref_first; i < o->ref_end; i++) {
		iov[nv].iov_base = (void *)o->ref[i].p;
		iov[nv++].iov_len = o->ref[i].len;
	}
	if (chained) {
		struct evbuffer_iovec v[SEND_IOV];
		int nc = evbuffer_peek(o->chains, -1, NULL, v, SEND_IOV);
		if (nc > SEND_IOV)
			nc = SEND_IOV;
		for (int i = 0; i < nc; i++) {
			iov[nv].iov_base = v[i].iov_base;
			iov[nv++].iov_len = v[i].iov_len;
			*offered += v[i].iov_len;
		}
	}
	if (nv == 1)
		return send(c->fd, iov[0].iov_base, iov[0].iov_len, MSG_NOSIGNAL | MSG_DONTWAIT);
	struct msghdr mh = {.msg_iov = iov, .msg_iovlen = (size_t)nv};
	return sendmsg(c->fd, &mh, MSG_NOSIGNAL | MSG_DONTWAIT);
}

int conn_flush(struct conn *c, uint32_t timeout_ms)
{
	if (!c->out)
		return 0;
	if (c->ssl)
		return tls_flush(c, timeout_ms);
	while (conn_out_len(c)) {
		size_t offered;
		ssize_t n = send_out(c, &offered);
		if (n < 0) {
			if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
				return conn_wait_writable(c, timeout_ms);
			return -1;
		}
		if (n == 0)
			return -1;
		out_consume(c->out, (size_t)n);
		if ((size_t)n < offered)
			return conn_wait_writable(c, timeout_ms); /* the socket is full */
	}
	if (event_pending(c->wev, EV_WRITE, NULL))
		event_del(c->wev);
	return 0;
}

void conn_want_read(struct conn *c, bool on, uint32_t timeout_ms)
{
	if (on) {
		if (!c->reading) {
			event_add(&c->rev, NULL);
			/* Bytes OpenSSL already decrypted raise no socket
			 * event: reading that resumes must look at them now. */
			if (conn_tls_pending(c))
				event_active(&c->rev, EV_READ, 0);
		}
		c->read_timeout_ms = timeout_ms;
		timeq_set(&c->timeouts->q, &c->deadline, timeout_ms ? deadline_now() + timeout_ms : 0);
	} else if (c->reading) {
		event_del(&c->rev);
		timeq_set(&c->timeouts->q, &c->deadline, 0);
	}
	c->reading = on;
}

size_t conn_out_len(const struct conn *c)
{
	const struct conn_out *o = c->out;
	if (!o)
		return 0;
	return o->len - o->off + o->ref_bytes + (o->chained ? evbuffer_get_length(o->chains) : 0);
}
