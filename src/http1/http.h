/*
 * http.h — HTTP/1.x message heads: parsing, framing decisions and header
 * rewriting.
 *
 * A head of the plain form — a common method with an origin-form target of
 * valid bytes, or a 2xx–5xx status, HTTP/1.0 or 1.1, CRLF line ends, no
 * obs-fold, token field names, a valid Host, a body delimited by
 * Content-Length or absent, no Transfer-Encoding or Upgrade — that arrives
 * whole is parsed
 * in one pass by the proxy itself, and its body counted down. Every other
 * message (a head split across reads, chunked, interim, close-delimited,
 * an upgrade, anything malformed) goes to llhttp, whose verdicts and error
 * messages stand for it.
 *
 * A message head is parsed in place, in the receive block it arrived in; the
 * head records offsets into that block, never copies. When the head is
 * complete the caller decides (http_req_check) whether its framing is safe to
 * forward, and builds the outgoing head as runs of the original bytes
 * (http_head_runs) plus the few lines that are added, which are the only
 * bytes of a head that are ever written anew.
 */
/*
 * The http1 wing (src/http1/): HTTP/1.x messages — parsing in place (one
 * pass for plain heads, llhttp for the rest), framing, the header rules and
 * the responses zdmd makes itself. No sockets: it includes only core.
 */
#ifndef ZDM_HTTP_H
#define ZDM_HTTP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <llhttp.h>

#define HTTP_MAX_HEADERS 100
/* Runs of a forwarded head: one more than the headers, and two for a
 * request line sent in origin-form (see http_head_runs). */
#define HTTP_MAX_RUNS (HTTP_MAX_HEADERS + 3)
/* Interim (1xx) responses relayed before the final one; one more makes the
 * response invalid (502). */
#define HTTP_MAX_INTERIM 10

/* Headers whose meaning the proxy acts on. */
enum http_hdr_kind {
	HK_OTHER = 0,
	HK_CONNECTION,
	HK_KEEP_ALIVE,
	HK_PROXY_CONNECTION,
	HK_TE,
	HK_UPGRADE,
	HK_TRANSFER_ENCODING,
	HK_CONTENT_LENGTH,
	HK_HOST,
	HK_EXPECT,
	HK_X_FORWARDED_FOR,
	HK_X_REAL_IP,
	HK_X_FORWARDED_PROTO,
};

struct http_hdr {
	uint32_t name;       /* offset of the name in the block */
	uint32_t value;      /* offset of the value (after optional whitespace) */
	uint32_t value_len;
	uint16_t name_len;
	uint8_t kind;        /* enum http_hdr_kind */
	uint8_t drop;        /* not forwarded */
};

/* Tokens seen in Connection headers. */
#define HTTP_CONN_CLOSE      0x1
#define HTTP_CONN_KEEP_ALIVE 0x2
#define HTTP_CONN_UPGRADE    0x4
#define HTTP_CONN_OTHER      0x8 /* names another header to drop */

struct http_head {
	uint32_t start;      /* first byte of the start line */
	uint32_t end;        /* one past the blank line that ends the head */
	uint32_t nhdrs;
	uint32_t conn_tokens;
	uint32_t url, url_len; /* request target */
	/* absolute-form: the length of its scheme and authority (else 0), the
	 * authority, and whether "/" goes in front of what follows it */
	uint32_t url_skip, authority, authority_len;
	bool empty_path;
	int nhost;
	struct http_hdr hdrs[HTTP_MAX_HEADERS];
};

struct cfg_pin;

enum http_step {
	HTTP_NEED_MORE,      /* all bytes consumed, the message goes on */
	HTTP_HEAD_DONE,      /* the head is complete; body bytes follow */
	HTTP_MSG_DONE,       /* the message is complete */
	HTTP_UPGRADE,        /* the message is complete, a tunnel follows */
	HTTP_ERROR,          /* malformed; see .error_status and .error_reason */
};

/* Where a chunked body's framing stands (see http_chunk_scan). */
struct http_chunk_scan {
	uint8_t state;
	uint8_t digits;
	uint8_t name_len;           /* of a trailer field name so far */
	char name[17];              /* its first bytes: the longest name looked for */
	uint64_t left;              /* chunk size, then data bytes still to come */
};

/* Checks the framing of chunked body bytes as they stream (RFC 9112 §7.1):
 * hex sizes, the grammar of chunk extensions, CRLF after sizes and after
 * data, trailer field lines, the final blank line. Returns 0 while
 * well-formed, -1 at the first malformed byte, -2 at the colon of a
 * trailer field that must not be there (framing, hop-by-hop, Host, or one
 * the proxy writes itself). */
int http_chunk_scan(struct http_chunk_scan *cs, const char *p, size_t n);

/* The framing of a message whose head had the plain form. */
struct http_plain {
	uint64_t content_length;    /* body bytes still to come */
	uint16_t status;            /* response */
	uint8_t method;             /* request, llhttp_method_t */
	uint8_t version;            /* 10 or 11 */
	bool has_length;            /* a Content-Length was given */
	bool no_body;               /* HEAD, 204 or 304: no body whatever it says */
	bool keep_alive;
};

/* One direction of an HTTP connection: the parser and the head being read. */
struct http_msg {
	llhttp_t parser;
	bool plain;                 /* the current message's head had the plain form */
	bool llhttp_msg;            /* llhttp reads the current message */
	bool llhttp_dirty;          /* llhttp was fed since its last reset */
	struct http_plain pl;
	const char *base;           /* block the head's offsets refer to */
	uint64_t body_bytes;        /* body bytes seen in the current message */
	uint64_t max_body;          /* 0 = unlimited; exceeding it is a 413 */
	int error_status;           /* 400, 413, 431 or 502 with HTTP_ERROR */
	const char *error_reason;
	bool skip_body;             /* response side: the request was HEAD */
	uint8_t pause;              /* why the last execution paused */
	bool in_body;               /* past the head of the current message */
	bool chunked_body;          /* its body is chunked: chunks is run on it */
	bool lead_cr;               /* a CR before a request line, its LF to come */
	struct http_chunk_scan chunks;
	uint8_t in_field, in_value, value_done;
	const char *over_limit;     /* a 431 to give once the field name ends */
	struct http_head head;
	/* Body spans delivered by the parser (used when de-chunking). */
	void (*on_body)(struct http_msg *m, const char *at, size_t len);
	void *owner;
};

void http_msg_init(struct http_msg *m, llhttp_type_t type, void *owner);

/* Starts a new head at offset start of base. */
void http_msg_begin(struct http_msg *m, const char *base, uint32_t start);

/* The rest of the current message's body went around the parser (it was
 * spliced): the parser is set for the next message. */
void http_msg_body_bypassed(struct http_msg *m);

/* Forgets the current message: the next bytes fed begin a new one. */
void http_msg_reset(struct http_msg *m);

/* Changes the block the offsets refer to (the head was moved). */
void http_msg_rebase(struct http_msg *m, const char *base);

/* Parses data[0, len); *consumed is how much of it belongs to what the step
 * reports. After HTTP_HEAD_DONE or HTTP_MSG_DONE, call again with the rest. */
enum http_step http_msg_feed(struct http_msg *m, const char *data, size_t len, size_t *consumed);

/* The peer closed: 0 if that ends the message cleanly (close-delimited body). */
int http_msg_finish(struct http_msg *m);

/* Whether the current message's body is delimited by the close of the
 * connection (a response with neither Content-Length nor chunked). */
bool http_msg_needs_eof(const struct http_msg *m);
bool http_msg_keep_alive(const struct http_msg *m);
bool http_msg_chunked(const struct http_msg *m);
/* The message asks to switch protocols (Upgrade, or a 101 response). */
bool http_msg_upgrade(const struct http_msg *m);
/* The Content-Length of the current message, once its head is complete;
 * while its body is parsed, the body bytes still to come. 0 without one. */
uint64_t http_msg_content_length(const struct http_msg *m);

/* Request head checks once it is complete: returns 0, or the status to answer
 * (400, 413, 431) with *reason set. Marks hop-by-hop headers to drop. */
int http_req_check(struct http_msg *m, uint64_t max_body, const char **reason);

/* Response head checks once it is complete: returns 0, or 502 with *reason
 * set (a version other than HTTP/1.0 or 1.1, a status outside 100-599, a
 * control byte in the status line, Transfer-Encoding in HTTP/1.0 or other
 * than chunked alone). Marks hop-by-hop headers to drop, and the
 * Transfer-Encoding lines, which the caller replaces by one chunked line
 * when it relays the body chunked. */
int http_resp_check(struct http_msg *m, const char **reason);

/* A run of original head bytes that is forwarded unchanged. */
struct http_run {
	uint32_t off, len;
};

/* The runs of the head to forward, in order: the start line (in origin-form
 * when it came in absolute-form: without the scheme and authority, which
 * the caller sends as the Host line instead of the dropped ones) and every
 * header not marked drop, adjacent lines merged, without the final blank
 * line. Returns the number of runs (at most HTTP_MAX_RUNS). */
size_t http_head_runs(const struct http_head *h, struct http_run *runs);

/* True if the Cookie field value v[0, len) holds a cookie NAME (compared
 * exactly) whose value is VALUE (compared exactly, its double quotes
 * aside): RFC 6265 §4.2.1 pairs separated by ';', blanks around them
 * ignored. No allocation. */
bool http_cookie_match(const char *v, size_t len, const char *name, const char *value);

/* The index of the first of PINS that a complete request head matches (a
 * header pin by a header line's whole value, a cookie pin by one cookie of
 * any Cookie line, the authority of an absolute-form target standing for
 * Host), or -1. */
int http_pins_match(const struct http_msg *m, const struct cfg_pin *pins, size_t npins);

/* A complete request's Host as routing sees it: the authority of an
 * absolute-form target, else the Host line's value. False without one. */
bool http_req_host(const struct http_msg *m, const char **host, size_t *len);
/* Its target's path in origin-form, query included ("/" for an empty one). */
void http_req_path(const struct http_msg *m, const char **path, size_t *len);
/* Its method's name, as sent. */
void http_req_method_name(const struct http_msg *m, const char **name, size_t *len);

/* Case-insensitive comparison of a header name with a NUL-terminated name. */
bool http_name_eq(const char *name, size_t len, const char *want);

/* Formats the self-made responses; call once before any worker starts. */
void http_init(void);

/* The self-made response for status (400, 404, 408, 413, 431, 502, 503, 504),
 * complete with head and a short text body. close adds Connection: close.
 * HTTP_503_LOCAL is the 503 of a proxy out of a resource of its own (a
 * descriptor, a buffer, a local port): status 503 on the wire, another
 * text. */
#define HTTP_503_LOCAL 1503
static inline int http_wire_status(int status)
{
	return status == HTTP_503_LOCAL ? 503 : status;
}
const char *http_error_response(int status, bool close, size_t *len);

/* Status code of a response message (after HTTP_HEAD_DONE). */
int http_msg_status(const struct http_msg *m);
/* Method of a request (llhttp_method_t). */
int http_msg_method(const struct http_msg *m);
int http_msg_version(const struct http_msg *m); /* 10 or 11 */
bool http_method_idempotent(int method);

#endif
