/*
 * worker-t.h — the structures that the hot-path modules (worker, listener,
 * session, upstream) share. Everything here belongs to one worker thread:
 * its event loop, its free lists, its connections.
 */
/*
 * The proxy wing (src/proxy/): the hot path — workers and their loops,
 * sessions (the client side), routing over the snapshot, upstream
 * connections, splice pipes, the counters the workers keep and the access log
 * they write. It builds on core, net and http1, and reads what the control
 * plane publishes (snapshots) without including it.
 */
#ifndef ZDM_WORKER_T_H
#define ZDM_WORKER_T_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

#include <netinet/in.h>

#include "core/buf.h"
#include "core/resource.h"
#include "http1/http.h"
#include "net/conn.h"
#include "proxy/route.h"

struct config;
struct snapshot;
struct evconnlistener;

/* Output above this many bytes pauses the side that produces it. */
#define RELAY_HIGH_WATER (256 * 1024)
#define RELAY_LOW_WATER (64 * 1024)
/* Past this many bytes of receive blocks held by one worker (bytes read
 * and not yet written: slow readers), any output left after a write pauses
 * the side that produces it, so that a connection holds about one block
 * and the total stays near this bound whatever the number of connections. */
#define RELAY_BUDGET (64u << 20)

/* Why an upstream exchange failed (SPEC §7 error kinds). */
enum up_error {
	UP_ERR_CONNECT,   /* refused, unreachable, or the connect timed out */
	UP_ERR_TIMEOUT,   /* no response in time */
	UP_ERR_RESET,     /* closed or reset before the response was complete */
	UP_ERR_INVALID,   /* not a valid HTTP response */
};

enum upconn_state {
	UC_CONNECTING,    /* non-blocking connect in progress */
	UC_HANDSHAKE,     /* TLS handshake with the server */
	UC_ACTIVE,        /* serving a session's request */
	UC_IDLE,          /* in its server's idle list, waiting for reuse */
};

/* One connection to an upstream server. */
struct upconn {
	struct worker *w;
	struct conn c;
	struct event wev;             /* c's write event */
	struct conn_out *out;         /* c's output, kept while pooled */
	struct http_msg resp;
	struct session *s;            /* the session it serves (UC_ACTIVE) */
	enum upconn_state state;
	const struct cfg_server *srv; /* its server, in config layout */
	const struct config *layout;  /* the config whose servers it belongs to */
	uint32_t server_id;           /* index of srv in the worker's servers[] */
	uint32_t parse_pos;
	bool in_body;                 /* the response head has been handled */
	bool reused;                  /* served a request before this one */
	bool got_byte;                /* some response byte arrived */
	bool dechunk;                 /* body bytes from the parser, not raw */
	bool tunnel;                  /* after a 101: raw bytes both ways */
	bool req_sent;                /* the whole request is queued */
	bool splicing;                /* the body moves in the kernel (upstream.c) */
	uint8_t interim;              /* 1xx responses to the current request */
	uint32_t in_pipe;             /* body bytes in the pipe, not yet sent */
	uint64_t splice_left;         /* body bytes still to take from the socket */
	struct splice_pipe *pipe;     /* while splicing */
	int errnum;                   /* why the connect failed */
	struct ssl_ctx_st *tls;       /* TLS to the server (borrowed until the handshake) */
	const char *sni;
	struct upconn *next, *prev;   /* idle list or free list */
};

/* A pipe that body bytes pass through between two sockets (splice(2)). */
struct splice_pipe {
	int fd[2];
	uint32_t size;                /* its capacity */
	struct splice_pipe *next;     /* free list */
};

/* Per worker, per server of the current snapshot. */
struct server_rt {
	struct upconn *idle;          /* most recently used first */
	uint32_t nidle;
};

enum session_state {
	SS_HANDSHAKE,   /* TLS handshake with the client */
	SS_IDLE,        /* keep-alive: no request begun */
	SS_HEAD,        /* reading a request head */
	SS_BODY,        /* request forwarded; its body may still be streaming */
	SS_WAIT,        /* request complete; waiting for the response to end */
	SS_TUNNEL,      /* upgraded: raw bytes both ways */
	SS_CLOSING,     /* flushing a last response, then closing */
};

/* What a client connection needs only while it handles a request, or
 * while a response is still being written: the request's parser and head
 * index, its routing, its counters, the socket's write event and output.
 * A session takes one from its worker's pool as a request begins and gives
 * it back once it is idle with nothing left to write, so that an idle
 * keep-alive connection holds only a struct session (TLS sessions keep
 * theirs: OpenSSL may need the write side at any time). */
struct exchange {
	struct event wev;             /* the client socket's write event */
	struct conn_out *out;         /* the client's output */
	struct http_msg req;
	struct snapshot *snap;        /* held while a request is handled */
	struct srv_stats *stat;       /* counters of the server serving it */
	struct upconn *up;
	uint32_t server_id;           /* that server */
	struct route_choice route;    /* route -1: none (yet) */
	uint32_t resp_timeout_ms;     /* its route's timeouts.upstream_response */
	uint32_t tunnel_idle_ms;      /* and tunnel_idle */
	uint64_t tunnel_seen_ms;      /* when bytes last moved in its tunnel */
	uint32_t parse_pos;           /* next byte of the block to parse */
	int resp_status;              /* the final status sent for this request */
	uint64_t resp_bytes;          /* response bytes queued for the client */
	uint64_t t_start_us;          /* when the request began (monotonic) */
	uint64_t head_deadline_ms;    /* request_header timeout */
	int method;
	int version;                  /* 10 or 11 */
	bool outcome_told;            /* its outcome went to the breaker */
	bool probe;                   /* its server's circuit was half-open */
	bool keep_alive;              /* the client wants the connection kept */
	bool req_done;
	bool resp_started;            /* some response byte went to the client */
	bool retried;
	bool stale_retried;
	bool replayable;              /* head still in the block, no body */
	struct buf *head_buf;         /* the block of a replayable head, held (see
	                               * start_exchange) until the request ends */
	struct splice_pipe *body_pipe; /* while the request body is spliced */
	uint32_t body_in_pipe;        /* its bytes in the pipe, not yet sent */
	uint64_t body_left;           /* its bytes still to take from the client */
	uint16_t target_len;          /* a copy of the target, for the access log */
	char target[256];
	struct exchange *next;        /* free list */
};

/* One client connection. */
/* The longest Host value a connection remembers its routes for. */
#define SESSION_HOST_CACHE 64

struct rt_cands;

struct session {
	struct worker *w;
	struct conn c;
	struct exchange *x;           /* NULL while idle (plain HTTP) */
	enum session_state state;
	bool close_after;             /* close once the current response is out */
	bool tls;
	uint8_t ip_len;
	char ip[INET6_ADDRSTRLEN];
	/* The candidate routes of the last Host value seen on this
	 * connection, under the snapshot generation host_gen (0: none):
	 * the requests that follow with the same Host skip its lookup. */
	uint64_t host_gen;
	const struct rt_cands *host_cands;
	uint8_t host_len;
	char host[SESSION_HOST_CACHE];
	struct session *next, *prev;  /* active list or free list */
};

struct listener_slot {
	struct worker *w;
	struct evconnlistener *lev;
	const struct cfg_listen *cfg;
	struct ssl_ctx_st *tls;       /* TLS termination, NULL for plain HTTP */
	bool reused;                  /* taken over from the previous config */
};

/* The output at which the side feeding a connection pauses: high water
 * while the worker's blocks are within the budget, nothing past it. */
#define relay_high_water(w) ((w)->bufs.held_bytes > RELAY_BUDGET ? 0 : RELAY_HIGH_WATER)

struct alog_writer;
struct workers;
struct event;

/* A command from the control plane, taken by the worker under its set's
 * lock and acknowledged when done. */
struct worker_cmd {
	uint64_t seq;                 /* 0: none */
	struct snapshot *snap;        /* a new config's first snapshot (held) */
	int *fds;                     /* its listeners: [nlisten], -1 = kept */
	bool set_alog;
	struct accesslog *alog;       /* the access log to write to, NULL: none */
	bool drain, stop;
};

struct worker {
	struct event_base *base;
	struct conn_timeouts timeouts; /* read deadlines of its conns */
	uint32_t id;                  /* index in its set: its stats shard */
	uint32_t nworkers;            /* in its set */
	struct workers *set;
	pthread_t thread;
	/* Cross-thread: what the control plane hands over. */
	struct snapshot *pending;     /* atomic: the next snapshot, or NULL */
	struct worker_cmd cmd;        /* under set->lock */
	uint64_t done;                /* under set->lock: last command carried out */
	bool exited;                  /* under set->lock: the loop has ended */
	int wake_fd;                  /* eventfd: a snapshot or a command waits */
	struct event *wake_ev;

	struct alog_writer *alog;     /* NULL when access_log is off */
	uint64_t request_ids;
	const struct config *cfg;     /* snap->cfg */
	struct snapshot *snap;        /* held; replaced by worker_apply() */
	struct route_rr rr;
	struct buf_pool bufs;
	struct server_rt *servers;    /* [snap->nservers] */
	struct listener_slot *listeners;
	size_t nlisteners;
	struct session *sessions;     /* active */
	struct session *free_sessions;
	struct exchange *free_exchanges;
	struct upconn *free_upconns;
	uint32_t max_sessions;        /* this worker's share of limits.max_connections */
	uint64_t nsessions;           /* read by the control plane (STAT_GET) */
	uint32_t nfree_sessions, nfree_upconns, nfree_exchanges;
	struct splice_pipe *free_pipes;
	uint32_t nfree_pipes;
	uint32_t npipes;              /* splice pipes open, free ones included */
	bool draining;
	bool accept_paused;           /* at limits.max_connections */
	bool accept_backoff;          /* out of descriptors: not accepting for a while */
	int reserve_fd;               /* given up to accept and shed one connection */
	struct event *accept_timer;   /* ends accept_backoff */
	uint64_t local_errors[LOCAL_ERR_KINDS]; /* read by the control plane (STAT_GET) */
	uint64_t tls_handshake_failures; /* read by the control plane (STAT_GET) */
	uint64_t spliced_bytes;       /* read by the control plane (STAT_GET) */
	struct event *drain_timer;
};

#endif
