/*
 * test_http.c — message heads (src/http1/http.c): parsing in place with llhttp,
 * the framing the proxy refuses to forward, hop-by-hop header rewriting as
 * runs of the original bytes, pins, the chunked framing scanner, response
 * heads and the self-made error responses.
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/config.h"
#include "http1/http.h"
#include "tap.h"

#define BUF_SIZE 16384

/* A request or response parsed in place in its own block. */
struct parsed {
	struct http_msg m;
	enum http_step st;
	size_t used; /* bytes consumed up to the step reported */
	size_t len;
	char buf[BUF_SIZE];
};

/* Copies len bytes of text into p->buf and feeds them step bytes at a time
 * (0: all at once) until the head is complete or the parser stops. */
static enum http_step parse_n(struct parsed *p, llhttp_type_t type, const char *text, size_t len,
                              size_t step)
{
	if (len > sizeof(p->buf)) {
		printf("Bail out! test message too large\n");
		exit(1);
	}
	memcpy(p->buf, text, len);
	p->len = len;
	p->used = 0;
	http_msg_init(&p->m, type, NULL);
	http_msg_begin(&p->m, p->buf, 0);
	p->st = HTTP_NEED_MORE;
	while (p->used < len) {
		size_t n = step && len - p->used > step ? step : len - p->used;
		size_t c = 0;

		p->st = http_msg_feed(&p->m, p->buf + p->used, n, &c);
		p->used += c;
		if (p->st != HTTP_NEED_MORE)
			break;
	}
	return p->st;
}

static enum http_step parse(struct parsed *p, llhttp_type_t type, const char *text)
{
	return parse_n(p, type, text, strlen(text), 0);
}

/* Feeds what follows the current step; returns the next step. */
static enum http_step feed_rest(struct parsed *p)
{
	size_t c = 0;

	p->st = http_msg_feed(&p->m, p->buf + p->used, p->len - p->used, &c);
	p->used += c;
	return p->st;
}

/* The status a request gets: the parser's error, or http_req_check's
 * verdict once the head is complete (0: forwarded), -1 if incomplete. */
static int req_status_n(struct parsed *p, const char *text, size_t len, uint64_t max_body)
{
	const char *reason = NULL;

	parse_n(p, HTTP_REQUEST, text, len, 0);
	if (p->st == HTTP_ERROR)
		return p->m.error_status ? p->m.error_status : 400;
	if (p->st != HTTP_HEAD_DONE)
		return -1;
	return http_req_check(&p->m, max_body, &reason);
}

static int req_status(const char *text, uint64_t max_body)
{
	static struct parsed p;
	return req_status_n(&p, text, strlen(text), max_body);
}

/* The forwarded head as http_head_runs describes it, NUL-terminated. */
static size_t forwarded(const struct parsed *p, char *out, size_t outlen)
{
	struct http_run runs[HTTP_MAX_RUNS];
	size_t n = http_head_runs(&p->m.head, runs), k = 0;

	for (size_t i = 0; i < n; i++) {
		if (k + runs[i].len >= outlen)
			break;
		memcpy(out + k, p->buf + runs[i].off, runs[i].len);
		k += runs[i].len;
	}
	out[k] = '\0';
	return n;
}

static const struct http_hdr *find_hdr(const struct parsed *p, const char *name)
{
	for (uint32_t i = 0; i < p->m.head.nhdrs; i++) {
		const struct http_hdr *hd = &p->m.head.hdrs[i];
		if (http_name_eq(p->buf + hd->name, hd->name_len, name))
			return hd;
	}
	return NULL;
}

/* 1 if the header is marked drop, 0 if kept, -1 if absent. */
static int is_dropped(const struct parsed *p, const char *name)
{
	const struct http_hdr *hd = find_hdr(p, name);
	return hd ? hd->drop : -1;
}

static void test_simple_head(void)
{
	static struct parsed p;
	static const char req[] = "GET /a?b=c HTTP/1.1\r\n"
	                          "Host: example.com\r\n"
	                          "User-Agent: t/1.0\r\n"
	                          "X-Spaces:   padded value  \r\n"
	                          "X-Empty:\r\n"
	                          "\r\n";
	char out[512];
	const char *reason = NULL;
	const struct http_hdr *hd;

	CHECK_EQ_INT(parse(&p, HTTP_REQUEST, req), HTTP_HEAD_DONE, "simple GET: head done");
	CHECK_EQ_INT(p.used, sizeof(req) - 1, "simple GET: the whole head consumed");
	CHECK(p.m.head.start == 0 && p.m.head.end == sizeof(req) - 1,
	      "simple GET: head spans start to one past the blank line");
	CHECK_EQ_INT(p.m.head.nhdrs, 4, "simple GET: four headers");
	CHECK_EQ_INT(http_req_check(&p.m, 0, &reason), 0, "simple GET: accepted");
	CHECK_EQ_INT(http_msg_method(&p.m), HTTP_GET, "simple GET: method");
	CHECK_EQ_INT(http_msg_version(&p.m), 11, "simple GET: version 1.1");
	hd = find_hdr(&p, "host");
	CHECK(hd && hd->kind == HK_HOST && hd->value_len == 11 &&
	              memcmp(p.buf + hd->value, "example.com", 11) == 0,
	      "simple GET: Host found case-insensitively, value in place");
	hd = find_hdr(&p, "X-Spaces");
	CHECK(hd && hd->value_len == 12 && memcmp(p.buf + hd->value, "padded value", 12) == 0,
	      "simple GET: value without leading or trailing whitespace");
	hd = find_hdr(&p, "X-Empty");
	CHECK(hd && hd->value_len == 0, "simple GET: empty value");
	CHECK_EQ_INT(forwarded(&p, out, sizeof(out)), 1,
	             "simple GET: nothing dropped is a single run");
	CHECK(strlen(out) == sizeof(req) - 3 && memcmp(out, req, sizeof(req) - 3) == 0,
	      "simple GET: the run is the head without its blank line");
	CHECK_EQ_INT(feed_rest(&p), HTTP_MSG_DONE, "simple GET: no body, message done");

	/* HTTP/1.0 needs no Host. */
	CHECK_EQ_INT(req_status("GET / HTTP/1.0\r\n\r\n", 0), 0, "HTTP/1.0 without Host accepted");
}

static void test_rewrite(void)
{
	static struct parsed p;
	static const char req[] = "POST /submit HTTP/1.1\r\n"
	                          "Host: example.com\r\n"
	                          "Connection: keep-alive, X-Hop, content-length, Host\r\n"
	                          "Keep-Alive: timeout=5\r\n"
	                          "Proxy-Connection: keep-alive\r\n"
	                          "TE: trailers\r\n"
	                          "Upgrade: websocket\r\n"
	                          "x-hop: 1\r\n"
	                          "X-Keep: 2\r\n"
	                          "X-Forwarded-For: 10.0.0.1\r\n"
	                          "X-Real-IP: 10.0.0.2\r\n"
	                          "X-Forwarded-Proto: https\r\n"
	                          "Content-Length: 3\r\n"
	                          "Accept: */*\r\n"
	                          "\r\n"
	                          "abc";
	static const char want[] = "POST /submit HTTP/1.1\r\n"
	                           "Host: example.com\r\n"
	                           "X-Keep: 2\r\n"
	                           "Content-Length: 3\r\n"
	                           "Accept: */*\r\n";
	char out[1024];
	const char *reason = NULL;
	size_t n;

	CHECK_EQ_INT(parse(&p, HTTP_REQUEST, req), HTTP_HEAD_DONE, "rewrite: head done");
	CHECK_EQ_INT(http_req_check(&p.m, 0, &reason), 0, "rewrite: accepted");
	CHECK(p.m.head.conn_tokens & HTTP_CONN_KEEP_ALIVE, "rewrite: keep-alive token seen");
	CHECK(p.m.head.conn_tokens & HTTP_CONN_OTHER, "rewrite: a header named in Connection");
	CHECK(is_dropped(&p, "Connection") == 1 && is_dropped(&p, "Keep-Alive") == 1 &&
	              is_dropped(&p, "Proxy-Connection") == 1 && is_dropped(&p, "TE") == 1,
	      "rewrite: Connection, Keep-Alive, Proxy-Connection and TE dropped");
	CHECK(is_dropped(&p, "Upgrade") == 1,
	      "rewrite: Upgrade without Connection: upgrade dropped");
	CHECK(is_dropped(&p, "X-Hop") == 1, "rewrite: a header named in Connection dropped");
	CHECK(is_dropped(&p, "Content-Length") == 0 && is_dropped(&p, "Host") == 0,
	      "rewrite: Content-Length and Host kept although named in Connection");
	CHECK(is_dropped(&p, "X-Forwarded-For") == 1 && is_dropped(&p, "X-Real-IP") == 1 &&
	              is_dropped(&p, "X-Forwarded-Proto") == 1,
	      "rewrite: X-Forwarded-For, X-Real-IP, X-Forwarded-Proto dropped");
	CHECK(is_dropped(&p, "X-Keep") == 0 && is_dropped(&p, "Accept") == 0,
	      "rewrite: end-to-end headers kept");
	n = forwarded(&p, out, sizeof(out));
	CHECK_EQ_STR(out, want, "rewrite: forwarded head byte for byte");
	CHECK_EQ_INT(n, 3, "rewrite: adjacent kept lines merged into three runs");
	CHECK_EQ_INT(http_msg_content_length(&p.m), 3, "rewrite: Content-Length 3");
	CHECK_EQ_INT(feed_rest(&p), HTTP_MSG_DONE, "rewrite: the body completes the message");
	CHECK_EQ_INT(p.used, sizeof(req) - 1, "rewrite: body consumed exactly");

	/* Transfer-Encoding named in Connection stays chunked; its lines are
	 * not among the runs: the session adds one Transfer-Encoding: chunked
	 * line for them, whatever way the client wrote it. */
	static const char te_req[] = "POST / HTTP/1.1\r\n"
	                             "Connection: Transfer-Encoding, HOST\r\n"
	                             "Host: a\r\n"
	                             "Transfer-Encoding: , CHUNKED\r\n"
	                             "X-A: b\r\n"
	                             "\r\n";
	CHECK_EQ_INT(parse(&p, HTTP_REQUEST, te_req), HTTP_HEAD_DONE, "te named: head done");
	CHECK_EQ_INT(http_req_check(&p.m, 0, &reason), 0, "te named: accepted");
	forwarded(&p, out, sizeof(out));
	CHECK_EQ_STR(out, "POST / HTTP/1.1\r\nHost: a\r\nX-A: b\r\n",
	             "te named: Host kept, Connection and Transfer-Encoding not in the runs");
	CHECK(http_msg_chunked(&p.m), "te named: chunked framing");

	/* Upgrade with Connection: upgrade is kept (the session re-adds the
	 * Connection line). */
	static const char up_req[] = "GET /ws HTTP/1.1\r\n"
	                             "Host: a\r\n"
	                             "Connection: Upgrade\r\n"
	                             "Upgrade: websocket\r\n"
	                             "\r\n";
	CHECK_EQ_INT(parse(&p, HTTP_REQUEST, up_req), HTTP_HEAD_DONE, "upgrade: head done");
	CHECK_EQ_INT(http_req_check(&p.m, 0, &reason), 0, "upgrade: accepted");
	CHECK(p.m.head.conn_tokens == HTTP_CONN_UPGRADE, "upgrade: only the upgrade token");
	n = forwarded(&p, out, sizeof(out));
	CHECK_EQ_STR(out, "GET /ws HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\n",
	             "upgrade: Upgrade kept, Connection dropped");
	CHECK_EQ_INT(n, 2, "upgrade: two runs around the dropped line");

	/* A Connection value llhttp does not read as an upgrade ("z Upgrade"
	 * is no token list): the request is not one, and its Upgrade header
	 * is not forwarded either. */
	static const char not_up[] = "GET /ws HTTP/1.1\r\nHost: a\r\nConnection: z Upgrade\r\n"
	                             "Upgrade: websocket\r\n\r\n";
	CHECK(parse(&p, HTTP_REQUEST, not_up) == HTTP_HEAD_DONE &&
	              http_req_check(&p.m, 0, &reason) == 0 && !http_msg_upgrade(&p.m),
	      "upgrade: Connection: z Upgrade is no upgrade");
	forwarded(&p, out, sizeof(out));
	CHECK_EQ_STR(out, "GET /ws HTTP/1.1\r\nHost: a\r\n",
	             "upgrade: Connection: z Upgrade, so Upgrade is dropped too");

	/* The first and the last header dropped. */
	static const char ends_req[] = "GET / HTTP/1.1\r\n"
	                               "X-Real-IP: 1.2.3.4\r\n"
	                               "Host: a\r\n"
	                               "X-Forwarded-For: 5.6.7.8\r\n"
	                               "\r\n";
	CHECK_EQ_INT(parse(&p, HTTP_REQUEST, ends_req), HTTP_HEAD_DONE, "ends: head done");
	CHECK_EQ_INT(http_req_check(&p.m, 0, &reason), 0, "ends: accepted");
	n = forwarded(&p, out, sizeof(out));
	CHECK_EQ_STR(out, "GET / HTTP/1.1\r\nHost: a\r\n",
	             "ends: first and last headers dropped cleanly");
	CHECK_EQ_INT(n, 2, "ends: start line and Host are two runs");

	/* Every header dropped: the start line alone. */
	CHECK_EQ_INT(parse(&p, HTTP_REQUEST,
	                   "GET / HTTP/1.0\r\nConnection: close\r\nTE: trailers\r\n\r\n"),
	             HTTP_HEAD_DONE, "all dropped: head done");
	CHECK_EQ_INT(http_req_check(&p.m, 0, &reason), 0, "all dropped: accepted");
	n = forwarded(&p, out, sizeof(out));
	CHECK(n == 1 && strcmp(out, "GET / HTTP/1.0\r\n") == 0, "all dropped: the start line only");
	CHECK(p.m.head.conn_tokens == HTTP_CONN_CLOSE && !http_msg_keep_alive(&p.m),
	      "all dropped: Connection: close seen");
}

static void test_framing(void)
{
	static struct parsed p;
	static char many[8192];
	size_t k;

	CHECK_EQ_INT(req_status("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n"
	                        "Transfer-Encoding: chunked\r\n\r\n",
	                        0),
	             400, "Content-Length with Transfer-Encoding rejected");
	CHECK_EQ_INT(req_status("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n"
	                        "Content-Length: 3\r\n\r\n",
	                        0),
	             400, "Transfer-Encoding with Content-Length rejected");
	CHECK_EQ_INT(req_status("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n"
	                        "Content-Length: 4\r\n\r\n",
	                        0),
	             400, "two different Content-Lengths rejected");
	CHECK_EQ_INT(req_status("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3, 4\r\n\r\n", 0),
	             400, "a Content-Length list rejected");
	CHECK_EQ_INT(req_status("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\n\r\n", 0),
	             400, "Transfer-Encoding: gzip rejected");
	CHECK_EQ_INT(req_status("POST / HTTP/1.1\r\nHost: a\r\n"
	                        "Transfer-Encoding: chunked, gzip\r\n\r\n",
	                        0),
	             400, "Transfer-Encoding: chunked, gzip rejected");
	CHECK_EQ_INT(req_status("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\n"
	                        "Transfer-Encoding: chunked\r\n\r\n",
	                        0),
	             501, "gzip then chunked over two headers: 501");
	CHECK_EQ_INT(req_status("POST / HTTP/1.1\r\nHost: a\r\n"
	                        "Transfer-Encoding: gzip, chunked\r\n\r\n",
	                        0),
	             501, "Transfer-Encoding: gzip, chunked: 501");
	CHECK_EQ_INT(req_status("GET / HTTP/1.1\r\nHost: a\r\nX-A: b\r\n c\r\n\r\n", 0), 400,
	             "obs-fold (space) rejected");
	CHECK_EQ_INT(req_status("GET / HTTP/1.1\r\nHost: a\r\nX-A: b\r\n\tc\r\n\r\n", 0), 400,
	             "obs-fold (tab) rejected");
	CHECK_EQ_INT(req_status("GET / HTTP/1.1\r\nHost: a\nX-A: b\r\n\r\n", 0), 400,
	             "bare LF after a header line rejected");
	CHECK_EQ_INT(req_status("GET / HTTP/1.1\r\nHost: a\r\nX-A: b\rc\r\n\r\n", 0), 400,
	             "bare CR in a value rejected");
	CHECK_EQ_INT(req_status("GET / HTTP/1.1\rHost: a\r\n\r\n", 0), 400,
	             "bare CR after the request line rejected");
	CHECK_EQ_INT(req_status("GET / HTTP/1.1\r\nHost: a\r\nX-\001A: b\r\n\r\n", 0), 400,
	             "control byte in a name rejected");
	CHECK_EQ_INT(req_status("GET / HTTP/1.1\r\nHost: a\r\nX-A: b\001c\r\n\r\n", 0), 400,
	             "control byte in a value rejected");
	CHECK_EQ_INT(req_status("GET / HTTP/1.1\r\nHost: a\r\nX-A: b\177c\r\n\r\n", 0), 400,
	             "DEL in a value rejected");
	CHECK_EQ_INT(req_status_n(&p, "GET / HTTP/1.1\r\nHost: a\r\nX-A: b\0c\r\n\r\n", 37, 0), 400,
	             "NUL in a value rejected");
	CHECK_EQ_INT(req_status("GET / HTTP/1.1\r\nHost: a\r\nX-A : b\r\n\r\n", 0), 400,
	             "whitespace before the colon rejected");
	CHECK_EQ_INT(req_status("GET / HTTP/1.1\r\nHost : a\r\n\r\n", 0), 400,
	             "whitespace before the colon of Host rejected");
	CHECK_EQ_INT(req_status("GET / HTTP/1.1\r\nX-A: b\r\n\r\n", 0), 400,
	             "HTTP/1.1 without Host rejected");
	CHECK_EQ_INT(req_status("GET / HTTP/1.1\r\nHost: a\r\nhost: a\r\n\r\n", 0), 400,
	             "two Hosts rejected");
	CHECK_EQ_INT(
	        req_status("CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n", 0),
	        400, "CONNECT rejected");
	CHECK_EQ_INT(req_status("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 101\r\n\r\n", 100),
	             413, "Content-Length over max_body -> 413");
	CHECK_EQ_INT(req_status("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 100\r\n\r\n", 100),
	             0, "Content-Length at max_body accepted");
	CHECK_EQ_INT(
	        req_status("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 99999999999\r\n\r\n", 0),
	        0, "max_body 0 is unlimited");

	/* A chunked body over max_body fails while it streams. */
	static const char big[] =
	        "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
	        "40\r\n0123456789012345678901234567890123456789012345678901234567890123\r\n"
	        "40\r\n0123456789012345678901234567890123456789012345678901234567890123\r\n"
	        "0\r\n\r\n";
	CHECK_EQ_INT(req_status_n(&p, big, sizeof(big) - 1, 100), 0,
	             "chunked over max_body: head ok");
	CHECK(feed_rest(&p) == HTTP_ERROR && p.m.error_status == 413,
	      "chunked body over max_body -> 413 while streaming");

	/* A malformed chunk is caught before it is forwarded: with the head
	 * when it arrives with it, else as it streams. */
	static const char badchunk[] =
	        "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
	        "5\r\nhelloXX0\r\n\r\n";
	CHECK_EQ_INT(req_status_n(&p, badchunk, sizeof(badchunk) - 1, 0), 400,
	             "bad chunk with the head: 400 before the head is reported");
	CHECK_EQ_INT(req_status_n(&p, badchunk, sizeof(badchunk) - 1 - 15, 0), 0,
	             "bad chunk: the head alone is ok");
	p.len += 15;
	CHECK(feed_rest(&p) == HTTP_ERROR && p.m.error_status == 400,
	      "missing CRLF after chunk data, after the head -> 400");
	static const char goodchunk_next[] =
	        "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
	        "5\r\nhello\r\n0\r\n\r\nnot a request";
	CHECK_EQ_INT(req_status_n(&p, goodchunk_next, sizeof(goodchunk_next) - 1, 0), 0,
	             "what follows a whole chunked body is not looked at with the head");

	/* 100 headers are allowed, 101 are 431 from the parser. */
	k = (size_t)snprintf(many, sizeof(many), "GET / HTTP/1.1\r\nHost: a\r\n");
	for (int i = 1; i < HTTP_MAX_HEADERS; i++)
		k += (size_t)snprintf(many + k, sizeof(many) - k, "X-H%d: %d\r\n", i, i);
	k += (size_t)snprintf(many + k, sizeof(many) - k, "\r\n");
	CHECK_EQ_INT(req_status(many, 0), 0, "100 headers accepted");
	k -= 2;
	k += (size_t)snprintf(many + k, sizeof(many) - k, "X-Last: 1\r\n\r\n");
	CHECK(parse(&p, HTTP_REQUEST, many) == HTTP_ERROR && p.m.error_status == 431,
	      "101 headers -> 431 from the parser");
	CHECK(parse_n(&p, HTTP_REQUEST, many, strlen(many), 1) == HTTP_ERROR &&
	              p.m.error_status == 431,
	      "101 headers fed byte by byte -> 431 too");
	/* The 101st name is not a token: 400, however the bytes arrive. */
	k -= 13;
	k += (size_t)snprintf(many + k, sizeof(many) - k, "X(Last: 1\r\n\r\n");
	CHECK(parse(&p, HTTP_REQUEST, many) == HTTP_ERROR && p.m.error_status == 400,
	      "101 headers, the last name invalid -> 400");
	CHECK(parse_n(&p, HTTP_REQUEST, many, strlen(many), 1) == HTTP_ERROR &&
	              p.m.error_status == 400,
	      "101 headers, the last name invalid, fed byte by byte -> 400 too");
}

static void print_escaped(const char *label, const char *s);

/* The answer a whole message gets: the parser's error, the head check's
 * verdict, or the error its body (fed after the head) ends with; 0 when it
 * is forwarded whole. A response's errors are all 502. Fed whole, or step
 * bytes at a time (1: llhttp alone). */
static int verdict_n(llhttp_type_t type, const char *text, size_t len, size_t step)
{
	static struct parsed p;
	const char *reason = NULL;
	int v;

	parse_n(&p, type, text, len, step);
	if (p.st == HTTP_ERROR)
		return type == HTTP_RESPONSE ? 502 : p.m.error_status ? p.m.error_status : 400;
	if (p.st != HTTP_HEAD_DONE)
		return -1;
	v = type == HTTP_REQUEST ? http_req_check(&p.m, 0, &reason) : http_resp_check(&p.m, &reason);
	if (v)
		return v;
	/* (fed at least once: a message without a body ends with no bytes) */
	do {
		size_t n = step && p.len - p.used > step ? step : p.len - p.used, c = 0;
		p.st = http_msg_feed(&p.m, p.buf + p.used, n, &c);
		p.used += c;
		if (p.st == HTTP_ERROR)
			return type == HTTP_RESPONSE ? 502 : p.m.error_status ? p.m.error_status : 400;
		if (p.st == HTTP_MSG_DONE)
			return 0;
	} while (p.used < p.len);
	return http_msg_needs_eof(&p.m) ? 0 : -1;
}

struct strict_case {
	llhttp_type_t type;
	int want;
	const char *text;
};

/* The classes a strict reading of RFC 9110 and 9112 refuses, read whole (the
 * plain form where it applies) and a byte at a time (llhttp): both give the
 * same answer. */
static void test_strict(void)
{
#define RQ(want, text) {HTTP_REQUEST, want, text}
#define RS(want, text) {HTTP_RESPONSE, want, text}
#define POST_TE "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: "
#define CHUNKED_HEAD "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
#define RESP_TE "HTTP/1.1 200 OK\r\nTransfer-Encoding: "
	static const struct strict_case cases[] = {
	        /* obs-fold, also after an empty value */
	        RQ(400, POST_TE "\r\n chunked\r\n\r\n0\r\n\r\n"),
	        RQ(400, POST_TE "\r\n\tchunked\r\n\r\n0\r\n\r\n"),
	        RQ(400, "GET / HTTP/1.1\r\nHost: a\r\nX-A:\r\n b\r\n\r\n"),
	        RQ(400, "GET / HTTP/1.1\r\nHost: a\r\nX-A: \r\n b\r\n\r\n"),
	        RQ(400, "GET / HTTP/1.1\r\nHost:\r\n a\r\n\r\n"),
	        /* Transfer-Encoding in HTTP/1.0 */
	        RQ(400, "POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"),
	        RQ(400, "POST / HTTP/1.0\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"),
	        /* field names */
	        RQ(400, "GET / HTTP/1.1\r\nHost: a\r\n: x\r\n\r\n"),
	        RQ(400, "GET / HTTP/1.1\r\n: x\r\nHost: a\r\n\r\n"),
	        RQ(400, "GET / HTTP/1.1\r\nHost: a\r\nX[1]: x\r\n\r\n"),
	        /* transfer codings */
	        RQ(501, POST_TE "identity, chunked\r\n\r\n0\r\n\r\n"),
	        RQ(501, POST_TE "x, chunked\r\n\r\n0\r\n\r\n"),
	        RQ(501, POST_TE "gzip, chunked\r\n\r\n0\r\n\r\n"),
	        RQ(501, POST_TE "gzip\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"),
	        RQ(501, POST_TE "gzip;level=1, chunked\r\n\r\n0\r\n\r\n"),
	        RQ(400, POST_TE "gzip\r\n\r\n0\r\n\r\n"),
	        RQ(400, POST_TE "chunked, gzip\r\n\r\n0\r\n\r\n"),
	        RQ(400, POST_TE "chunked, chunked\r\n\r\n0\r\n\r\n"),
	        RQ(400, POST_TE "chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"),
	        RQ(400, POST_TE "gzip, chunked, chunked\r\n\r\n0\r\n\r\n"),
	        RQ(400, POST_TE "chunked;x=1\r\n\r\n0\r\n\r\n"),
	        RQ(400, POST_TE "\"chunked\"\r\n\r\n0\r\n\r\n"),
	        RQ(400, POST_TE "\r\n\r\n"),
	        RQ(400, POST_TE ",\r\n\r\n"),
	        RQ(400, POST_TE "xchunked\r\n\r\n0\r\n\r\n"),
	        RQ(400, POST_TE "chunked x\r\n\r\n0\r\n\r\n"),
	        RQ(0, POST_TE "chunked\r\n\r\n0\r\n\r\n"),
	        RQ(0, POST_TE "Chunked\r\n\r\n0\r\n\r\n"),
	        RQ(0, POST_TE "\tchunked \r\n\r\n0\r\n\r\n"),
	        RQ(0, POST_TE ", chunked\r\n\r\n0\r\n\r\n"),
	        /* trailers */
	        RQ(400, CHUNKED_HEAD "0\r\nContent-Length: 5\r\n\r\n"),
	        RQ(400, CHUNKED_HEAD "0\r\ntransfer-encoding: chunked\r\n\r\n"),
	        RQ(400, CHUNKED_HEAD "0\r\nHost: b\r\n\r\n"),
	        RQ(400, CHUNKED_HEAD "0\r\nConnection: close\r\n\r\n"),
	        RQ(400, CHUNKED_HEAD "0\r\nX-Forwarded-For: 10.1.1.1\r\n\r\n"),
	        RQ(400, CHUNKED_HEAD "0\r\nTrailer: x\r\n\r\n"),
	        RQ(400, CHUNKED_HEAD "0\r\nX-A: b\r\n c\r\n\r\n"),
	        RQ(400, CHUNKED_HEAD "0\r\n X-A: b\r\n\r\n"),
	        RQ(400, CHUNKED_HEAD "0\r\n: b\r\n\r\n"),
	        RQ(400, CHUNKED_HEAD "0\r\nX-A b\r\n\r\n"),
	        RQ(0, CHUNKED_HEAD "0\r\nX-Checksum: abc\r\nX-Transfer-Encoding: x\r\n\r\n"),
	        /* chunk lines */
	        RQ(400, CHUNKED_HEAD "0x5\r\nhello\r\n0\r\n\r\n"),
	        RQ(400, CHUNKED_HEAD " 5\r\nhello\r\n0\r\n\r\n"),
	        RQ(400, CHUNKED_HEAD "-5\r\nhello\r\n0\r\n\r\n"),
	        RQ(400, CHUNKED_HEAD "5;a\nb\r\nhello\r\n0\r\n\r\n"),
	        RQ(400, CHUNKED_HEAD "5;a\rb\r\nhello\r\n0\r\n\r\n"),
	        RQ(400, CHUNKED_HEAD "5;\r\nhello\r\n0\r\n\r\n"),
	        RQ(400, CHUNKED_HEAD "10000000000000005\r\nhello\r\n0\r\n\r\n"),
	        /* request targets */
	        RQ(400, "GET /a#b HTTP/1.1\r\nHost: a\r\n\r\n"),
	        RQ(400, "GET /a\"b HTTP/1.1\r\nHost: a\r\n\r\n"),
	        RQ(400, "GET /a<b HTTP/1.1\r\nHost: a\r\n\r\n"),
	        RQ(400, "GET /a>b HTTP/1.1\r\nHost: a\r\n\r\n"),
	        RQ(400, "GET /a\\b HTTP/1.1\r\nHost: a\r\n\r\n"),
	        RQ(400, "GET /a^b HTTP/1.1\r\nHost: a\r\n\r\n"),
	        RQ(400, "GET /a`b HTTP/1.1\r\nHost: a\r\n\r\n"),
	        RQ(400, "GET /a{b HTTP/1.1\r\nHost: a\r\n\r\n"),
	        RQ(400, "GET /a|b HTTP/1.1\r\nHost: a\r\n\r\n"),
	        RQ(400, "GET /a}b HTTP/1.1\r\nHost: a\r\n\r\n"),
	        RQ(400, "GET /a[b] HTTP/1.1\r\nHost: a\r\n\r\n"),
	        RQ(400, "GET /a\xc3\xa9 HTTP/1.1\r\nHost: a\r\n\r\n"),
	        RQ(400, "GET /a\x01 HTTP/1.1\r\nHost: a\r\n\r\n"),
	        RQ(400, "GET /a%zz HTTP/1.1\r\nHost: a\r\n\r\n"),
	        RQ(400, "GET /a%4 HTTP/1.1\r\nHost: a\r\n\r\n"),
	        RQ(400, "GET /a?%g0 HTTP/1.1\r\nHost: a\r\n\r\n"),
	        RQ(0, "GET /a%4a%4F?b=%20 HTTP/1.1\r\nHost: a\r\n\r\n"),
	        RQ(0, "GET /~'!$&()*+,;=:@-._?/? HTTP/1.1\r\nHost: a\r\n\r\n"),
	        RQ(400, "GET * HTTP/1.1\r\nHost: a\r\n\r\n"),
	        RQ(400, "POST * HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n"),
	        RQ(0, "OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n"),
	        RQ(400, "OPTIONS *x HTTP/1.1\r\nHost: a\r\n\r\n"),
	        RQ(400, "GET a/b HTTP/1.1\r\nHost: a\r\n\r\n"),
	        RQ(400, "GET ftp://a/b HTTP/1.1\r\nHost: a\r\n\r\n"),
	        RQ(400, "GET http://u@a/b HTTP/1.1\r\nHost: a\r\n\r\n"),
	        RQ(400, "GET http:///b HTTP/1.1\r\nHost: a\r\n\r\n"),
	        RQ(400, "GET http://a/b#c HTTP/1.1\r\nHost: a\r\n\r\n"),
	        RQ(400, "GET http:/a/b HTTP/1.1\r\nHost: a\r\n\r\n"),
	        RQ(0, "GET http://a.example/x HTTP/1.1\r\nHost: a.example\r\n\r\n"),
	        RQ(0, "GET HTTPS://a.example:8443?q HTTP/1.1\r\nHost: b\r\n\r\n"),
	        /* Host */
	        RQ(400, "GET / HTTP/1.1\r\nHost: a, b\r\n\r\n"),
	        RQ(400, "GET / HTTP/1.1\r\nHost: a,b\r\n\r\n"),
	        RQ(400, "GET / HTTP/1.1\r\nHost: a b\r\n\r\n"),
	        RQ(400, "GET / HTTP/1.1\r\nHost: u@a\r\n\r\n"),
	        RQ(400, "GET / HTTP/1.1\r\nHost: a/b\r\n\r\n"),
	        RQ(400, "GET / HTTP/1.1\r\nHost: a:8x\r\n\r\n"),
	        RQ(400, "GET / HTTP/1.1\r\nHost: :80\r\n\r\n"),
	        RQ(400, "GET / HTTP/1.1\r\nHost: [::1\r\n\r\n"),
	        RQ(400, "GET / HTTP/1.1\r\nHost: a\xc3\xa9\r\n\r\n"),
	        RQ(400, "GET / HTTP/1.1\r\nHost: a%zz\r\n\r\n"),
	        RQ(400, "GET / HTTP/1.0\r\nHost: a b\r\n\r\n"),
	        RQ(400, "GET http://a/ HTTP/1.1\r\nHost:\r\n\r\n"),
	        RQ(400, "GET http://a/ HTTP/1.1\r\n\r\n"),
	        RQ(400, "GET / HTTP/1.1\r\n\r\n"),
	        RQ(0, "GET / HTTP/1.1\r\nHost:\r\n\r\n"),
	        RQ(0, "GET / HTTP/1.1\r\nHost: [::1]:8080\r\n\r\n"),
	        RQ(0, "GET / HTTP/1.1\r\nHost: xn--bcher-kva.example.:80\r\n\r\n"),
	        RQ(0, "GET / HTTP/1.1\r\nHost: 127.0.0.1:\r\n\r\n"),
	        RQ(0, "GET http://a/ HTTP/1.0\r\n\r\n"),
	        /* empty lines before the request line */
	        RQ(0, "\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n"),
	        RQ(0, "\r\n\r\n\r\nPOST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\n\r\nx"),
	        RQ(400, "\nGET / HTTP/1.1\r\nHost: a\r\n\r\n"),
	        RQ(400, "\rGET / HTTP/1.1\r\nHost: a\r\n\r\n"),
	        RQ(400, "\r\n\rGET / HTTP/1.1\r\nHost: a\r\n\r\n"),
	        RQ(400, "\r\n GET / HTTP/1.1\r\nHost: a\r\n\r\n"),
	        /* responses: obs-fold, also after an empty value */
	        RS(502, "HTTP/1.1 200 OK\r\nX-A:\r\n b\r\nContent-Length: 0\r\n\r\n"),
	        RS(502, RESP_TE "\r\n chunked\r\n\r\n0\r\n\r\n"),
	        /* responses: Transfer-Encoding in HTTP/1.0 */
	        RS(502, "HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"),
	        /* responses: field names */
	        RS(502, "HTTP/1.1 200 OK\r\n: x\r\nContent-Length: 0\r\n\r\n"),
	        RS(502, "HTTP/1.1 200 OK\r\nX-A : b\r\nContent-Length: 0\r\n\r\n"),
	        RS(502, "HTTP/1.1 200 OK\r\nX\"A: b\r\nContent-Length: 0\r\n\r\n"),
	        /* responses: transfer codings */
	        RS(502, RESP_TE "gzip, chunked\r\n\r\n0\r\n\r\n"),
	        RS(502, RESP_TE "gzip\r\n\r\nabc"),
	        RS(502, RESP_TE "chunked, chunked\r\n\r\n0\r\n\r\n"),
	        RS(0, RESP_TE "chunked\r\n\r\n0\r\n\r\n"),
	        /* responses: trailers */
	        RS(502, RESP_TE "chunked\r\n\r\n0\r\nContent-Length: 1\r\n\r\n"),
	        /* responses: chunk lines */
	        RS(502, RESP_TE "chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n"),
	        RS(502, RESP_TE "chunked\r\n\r\n5\r\nhelloXX0\r\n\r\n"),
	        /* responses: an empty line before the status line */
	        RS(502, "\r\nHTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"),
	        /* status codes */
	        RS(502, "HTTP/1.1 099 X\r\nContent-Length: 0\r\n\r\n"),
	        RS(502, "HTTP/1.1 000 X\r\nContent-Length: 0\r\n\r\n"),
	        RS(502, "HTTP/1.1 600 X\r\nContent-Length: 0\r\n\r\n"),
	        RS(502, "HTTP/1.1 999 X\r\nContent-Length: 0\r\n\r\n"),
	        RS(502, "HTTP/1.1 1000 X\r\nContent-Length: 0\r\n\r\n"),
	        RS(0, "HTTP/1.1 599 X\r\nContent-Length: 0\r\n\r\n"),
	        /* versions llhttp reads, not HTTP/1.x */
	        RS(502, "HTTP/2.0 200 OK\r\nContent-Length: 0\r\n\r\n"),
	        RS(502, "HTTP/0.9 200 OK\r\nContent-Length: 0\r\n\r\n"),
	        RS(0, "HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n"),
	        /* the status code: three digits */
	        RS(502, "HTTP/1.1 0200 OK\r\nContent-Length: 0\r\n\r\n"),
	        RS(502, "HTTP/1.1 00200 OK\r\nContent-Length: 0\r\n\r\n"),
	        RS(0, "HTTP/1.1 200\r\nContent-Length: 0\r\n\r\n"),
	        /* the reason phrase: HTAB, SP, VCHAR, obs-text */
	        RS(502, "HTTP/1.1 200 O\001K\r\nContent-Length: 0\r\n\r\n"),
	        RS(502, "HTTP/1.1 200 \x7f\r\nContent-Length: 0\r\n\r\n"),
	        RS(502, "HTTP/1.1 404 Not\x1b[31m Found\r\nContent-Length: 0\r\n\r\n"),
	        RS(0, "HTTP/1.1 200 O\tK \x80\r\nContent-Length: 0\r\n\r\n"),
	        RS(0, "HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n"),
	        /* response framing */
	        RS(502, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nTransfer-Encoding: chunked\r\n\r\n"
	                "0\r\n\r\n"),
	        RS(502, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\nabc"),
	        RS(502, "HTTP/1.1 200 OK\r\nContent-Length: 2, 3\r\n\r\nabc"),
	        RS(502, "HTTP/1.1 200 OK\nContent-Length: 0\r\n\r\n"),
	};
#undef RQ
#undef RS
	int agree = 0, right = 0, n = (int)(sizeof(cases) / sizeof(cases[0]));

	for (int i = 0; i < n; i++) {
		const struct strict_case *c = &cases[i];
		size_t len = strlen(c->text);
		int whole = verdict_n(c->type, c->text, len, 0);
		int bytes = verdict_n(c->type, c->text, len, 1);
		agree += whole == bytes;
		right += whole == c->want && bytes == c->want;
		if (whole != c->want || bytes != c->want) {
			printf("# case %d: whole %d, byte at a time %d, want %d:\n", i, whole, bytes,
			       c->want);
			print_escaped(c->type == HTTP_REQUEST ? "request" : "response", c->text);
		}
	}
	CHECK_EQ_INT(agree, n, "strict: the same answer read whole and a byte at a time");
	CHECK_EQ_INT(right, n, "strict: every class gets its answer");

	/* A CR that no LF follows before a request line: the same reason
	 * whether the byte after it comes in the same read or the next. */
	static struct parsed whole, bytes;
	static const char *const lead[] = {"\rGET / HTTP/1.1\r\nHost: a\r\n\r\n",
	                                   "\r\n\rXGET / HTTP/1.1\r\nHost: a\r\n\r\n"};
	for (size_t i = 0; i < sizeof(lead) / sizeof(lead[0]); i++) {
		parse_n(&whole, HTTP_REQUEST, lead[i], strlen(lead[i]), 0);
		parse_n(&bytes, HTTP_REQUEST, lead[i], strlen(lead[i]), 1);
		CHECK(whole.st == HTTP_ERROR && bytes.st == HTTP_ERROR && whole.m.error_reason &&
		              bytes.m.error_reason &&
		              strcmp(whole.m.error_reason, bytes.m.error_reason) == 0,
		      "strict: a bare CR before the request line, the same reason in any reads");
	}
}

static void print_escaped(const char *label, const char *s)
{
	printf("#   %s \"", label);
	for (; *s; s++) {
		if (*s == '\r')
			printf("\\r");
		else if (*s == '\n')
			printf("\\n");
		else
			putchar(*s);
	}
	printf("\"\n");
}

/* Checks that a head whose blank line is a bare LF is rejected, and that,
 * were it accepted, its runs would still end at a line end: the session
 * appends its own header lines right after the last run. */
static void check_bare_lf_end(const char *text, const char *what, const char *runs_what)
{
	static struct parsed p;
	char out[256];
	size_t n;

	CHECK(req_status_n(&p, text, strlen(text), 0) != 0, what);
	if (p.st != HTTP_HEAD_DONE) {
		CHECK(1, runs_what);
		return;
	}
	forwarded(&p, out, sizeof(out));
	n = strlen(out);
	if (!CHECK(n >= 2 && out[n - 2] == '\r' && out[n - 1] == '\n', runs_what))
		print_escaped("forwarded", out);
}

/* Bare LF line ends other than after a header value: the parser lets them
 * through after the start line and as the blank line; the proxy must not
 * forward such a head. */
static void test_bare_lf(void)
{
	static struct parsed p;

	CHECK(req_status_n(&p, "GET / HTTP/1.1\nHost: a\r\n\r\n", 26, 0) != 0,
	      "bare LF after the request line rejected");
	check_bare_lf_end("GET / HTTP/1.1\r\nHost: a\r\n\n", "bare LF as the blank line rejected",
	                  "runs of a head ending in bare LF end with CRLF (after a header)");
	check_bare_lf_end("GET / HTTP/1.0\n\n",
	                  "bare LF after the request line and as the blank "
	                  "line rejected",
	                  "runs of a head ending in bare LF end with CRLF (request line only)");
	parse(&p, HTTP_RESPONSE, "HTTP/1.1 200 OK\nContent-Length: 2\r\n\r\nok");
	CHECK(p.st == HTTP_ERROR, "bare LF after the status line of a response rejected");
}

struct pin_case {
	const char *headers;
	int pin;
	const char *what;
};

/* Line ends are checked 16 bytes at a time: every CRLF, bare CR and bare
 * LF is tried at every offset of a block. */
static void test_line_ends(void)
{
	static struct parsed p;
	char text[256];
	int ok = 0, bare_cr = 0, bare_lf = 0, tries = 0;

	for (int pad = 0; pad < 40; pad++) {
		int n = snprintf(text, sizeof(text), "GET / HTTP/1.1\r\nHost: a\r\nX-Pad: %.*s\r\n\r\n",
		                 pad + 1, "pppppppppppppppppppppppppppppppppppppppppppppppp");
		tries++;
		ok += req_status_n(&p, text, (size_t)n, 0) == 0;
		/* A CR in the value, at each place it can be. */
		for (int at = 0; at <= pad; at++) {
			char bad[256];
			memcpy(bad, text, (size_t)n);
			bad[32 + at] = '\r';
			bare_cr += req_status_n(&p, bad, (size_t)n, 0) == 400;
		}
		/* The CRLF ending X-Pad as a bare LF (one byte shorter). */
		char lf[256];
		int k = snprintf(lf, sizeof(lf), "GET / HTTP/1.1\r\nHost: a\r\nX-Pad: %.*s\n\r\n",
		                 pad + 1, "pppppppppppppppppppppppppppppppppppppppppppppppp");
		bare_lf += req_status_n(&p, lf, (size_t)k, 0) == 400;
		/* The start line and the blank line, which llhttp lets end in
		 * a bare LF. */
		k = snprintf(lf, sizeof(lf), "GET /%.*s HTTP/1.1\nHost: a\r\n\r\n", pad,
		             "pppppppppppppppppppppppppppppppppppppppppppppppp");
		bare_lf += req_status_n(&p, lf, (size_t)k, 0) == 400;
		k = snprintf(lf, sizeof(lf), "GET / HTTP/1.1\r\nHost: a\r\nX-Pad: %.*s\r\n\n",
		             pad + 1, "pppppppppppppppppppppppppppppppppppppppppppppppp");
		bare_lf += req_status_n(&p, lf, (size_t)k, 0) == 400;
		k = snprintf(lf, sizeof(lf), "HTTP/1.1 200 %.*s\nContent-Length: 0\r\n\r\n", pad + 1,
		             "pppppppppppppppppppppppppppppppppppppppppppppppp");
		bare_lf += parse_n(&p, HTTP_RESPONSE, lf, (size_t)k, 0) == HTTP_ERROR;
	}
	CHECK_EQ_INT(ok, tries, "CRLF at every offset of a 16-byte block: accepted");
	CHECK_EQ_INT(bare_cr, 40 * 41 / 2, "a bare CR at every offset: 400");
	CHECK_EQ_INT(bare_lf, 4 * tries, "a bare LF ending a line at every offset: rejected");

	/* Header kinds: any case, and names of the same length that differ. */
	static const struct {
		const char *name;
		int kind;
	} names[] = {
	        {"TE", HK_TE}, {"Tf", HK_OTHER}, {"HOST", HK_HOST}, {"Hosts", HK_OTHER},
	        {"Expect", HK_EXPECT}, {"UpGrade", HK_UPGRADE}, {"X-Real-IP", HK_X_REAL_IP},
	        {"Connection", HK_CONNECTION}, {"Keep-Alive", HK_KEEP_ALIVE},
	        {"Keep-Alivf", HK_OTHER}, {"CONTENT-LENGTH", HK_CONTENT_LENGTH},
	        {"X-Forwarded-For", HK_X_FORWARDED_FOR}, {"Proxy-Connection", HK_PROXY_CONNECTION},
	        {"Transfer-Encoding", HK_TRANSFER_ENCODING}, {"x-forwarded-proto", HK_X_FORWARDED_PROTO},
	        {"X-Forwarded-Prota", HK_OTHER}, {"X", HK_OTHER},
	};
	int right = 0;
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		int n = snprintf(text, sizeof(text), "GET / HTTP/1.1\r\n%s: 1\r\n\r\n", names[i].name);
		parse_n(&p, HTTP_REQUEST, text, (size_t)n, 0);
		if (p.m.head.nhdrs == 1 && p.m.head.hdrs[0].kind == names[i].kind)
			right++;
		else
			printf("# %s: kind %d, want %d\n", names[i].name,
			       p.m.head.nhdrs ? p.m.head.hdrs[0].kind : -1, names[i].kind);
	}
	CHECK_EQ_INT(right, sizeof(names) / sizeof(names[0]), "header names classified in any case");

	/* Every known name with one byte replaced by each token character,
	 * the others in mixed case, read whole and a byte at a time: the
	 * known kind only when the byte is the same letter in either case. */
	static const struct {
		const char *name;
		int kind;
	} known[] = {
	        {"te", HK_TE}, {"host", HK_HOST}, {"expect", HK_EXPECT}, {"upgrade", HK_UPGRADE},
	        {"x-real-ip", HK_X_REAL_IP}, {"connection", HK_CONNECTION},
	        {"keep-alive", HK_KEEP_ALIVE}, {"content-length", HK_CONTENT_LENGTH},
	        {"x-forwarded-for", HK_X_FORWARDED_FOR}, {"proxy-connection", HK_PROXY_CONNECTION},
	        {"transfer-encoding", HK_TRANSFER_ENCODING},
	        {"x-forwarded-proto", HK_X_FORWARDED_PROTO},
	};
	static const char specials[] = "!#$%&'*+-.^_`|~";
	int tried = 0, classified = 0;
	for (size_t i = 0; i < sizeof(known) / sizeof(known[0]); i++) {
		size_t len = strlen(known[i].name);
		for (size_t at = 0; at < len; at++) {
			for (int c = 0x21; c < 0x7f; c++) {
				if (!isalnum(c) && !strchr(specials, c))
					continue;
				char name[32];
				for (size_t k = 0; k < len; k++)
					name[k] = (char)((k + (size_t)c) % 3 ? known[i].name[k]
					                                      : toupper(known[i].name[k]));
				name[at] = (char)c;
				name[len] = 0;
				int want = tolower(c) == known[i].name[at] ? known[i].kind : HK_OTHER;
				int n = snprintf(text, sizeof(text), "GET / HTTP/1.1\r\n%s: 1\r\n\r\n", name);
				for (size_t step = 0; step < 2; step++) {
					tried++;
					parse_n(&p, HTTP_REQUEST, text, (size_t)n, step);
					if (p.m.head.nhdrs == 1 && p.m.head.hdrs[0].kind == want &&
					    p.m.head.hdrs[0].name_len == len)
						classified++;
					else if (tried - classified < 5)
						printf("# %s (%s): kind %d, want %d\n", name,
						       step ? "llhttp" : "whole",
						       p.m.head.nhdrs ? p.m.head.hdrs[0].kind : -1, want);
				}
			}
		}
	}
	CHECK_EQ_INT(classified, tried, "known names with one byte changed to each token character");
}

static void test_pins(void)
{
	static const char yaml[] = "listen: [\"127.0.0.1:8080\"]\n"
	                           "pools:\n"
	                           "  old: {servers: [\"127.0.0.1:9001\"]}\n"
	                           "  new: {servers: [\"127.0.0.1:9101\"]}\n"
	                           "pins:\n"
	                           "  - {header: X-Canary, value: \"yes\", pool: new}\n"
	                           "  - {header: cookie, value: \"beta=1\", pool: old}\n";
	static const struct pin_case cases[] = {
	        {"X-Canary: yes\r\n", 0, "pin: exact header and value"},
	        {"x-CANARY: yes\r\n", 0, "pin: header name case-insensitive"},
	        {"X-Canary: Yes\r\n", -1, "pin: value is case-sensitive"},
	        {"X-Canary: yes2\r\n", -1, "pin: value must match entirely"},
	        {"X-Canary: ye\r\n", -1, "pin: a prefix of the value does not match"},
	        {"X-Canary:   yes  \r\n", 0,
	         "pin: surrounding whitespace is not part of the value"},
	        {"X-Canaryy: yes\r\n", -1, "pin: header name must match entirely"},
	        {"Cookie: beta=1\r\n", 1, "pin: second pin"},
	        {"Cookie: beta=1\r\nX-Canary: yes\r\n", 0,
	         "pin: the first pin in config order wins (header later)"},
	        {"X-Canary: yes\r\nCookie: beta=1\r\n", 0,
	         "pin: the first pin in config order wins (header first)"},
	        {"X-Canary: no\r\nCookie: beta=1\r\nX-Canary: yes\r\n", 0,
	         "pin: any header line may match"},
	        {"Accept: */*\r\n", -1, "pin: no pin header, no pin"},
	};
	struct config_errors errs;
	struct config *cfg;
	static struct parsed p;
	char req[256];

	memset(&errs, 0, sizeof(errs));
	cfg = config_parse("pins.yaml", yaml, sizeof(yaml) - 1, &errs);
	config_errors_free(&errs);
	if (!CHECK(cfg && cfg->routes[0].npins == 2, "pins: config loads")) {
		config_free(cfg);
		return;
	}
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		int len = snprintf(req, sizeof(req), "GET / HTTP/1.1\r\nHost: a\r\n%s\r\n",
		                   cases[i].headers);
		memcpy(p.buf, req, (size_t)len);
		p.len = (size_t)len;
		p.used = 0;
		http_msg_init(&p.m, HTTP_REQUEST, NULL);
		http_msg_begin(&p.m, p.buf, 0);
		if (feed_rest(&p) != HTTP_HEAD_DONE) {
			CHECK(0, cases[i].what);
			continue;
		}
		CHECK_EQ_INT(http_pins_match(&p.m, cfg->routes[0].pins, cfg->routes[0].npins),
		             cases[i].pin, cases[i].what);
	}
	config_free(cfg);
}

/* Absolute-form (RFC 9112 §3.2.2): forwarded in origin-form, the Host
 * lines left out (the session sends the authority as Host), and pins see
 * the authority as the Host. */
static void test_absolute_form(void)
{
	static const char yaml[] = "listen: [\"127.0.0.1:8080\"]\n"
	                           "pools:\n"
	                           "  old: {servers: [\"127.0.0.1:9001\"]}\n"
	                           "  new: {servers: [\"127.0.0.1:9101\"]}\n"
	                           "pins:\n"
	                           "  - {header: host, value: \"a.example\", pool: new}\n";
	static const struct {
		const char *req, *runs, *authority;
		int pin;
	} cases[] = {
	        {"GET http://a.example/x?y HTTP/1.1\r\nHost: b.example\r\nX-A: 1\r\n\r\n",
	         "GET /x?y HTTP/1.1\r\nX-A: 1\r\n", "a.example", 0},
	        {"GET HTTP://a.example:81?q HTTP/1.1\r\nX-A: 1\r\nHost: a.example:81\r\n\r\n",
	         "GET /?q HTTP/1.1\r\nX-A: 1\r\n", "a.example:81", -1},
	        {"GET https://a.example HTTP/1.0\r\n\r\n", "GET / HTTP/1.0\r\n", "a.example", 0},
	        {"GET http://b.example/ HTTP/1.1\r\nHost: a.example\r\n\r\n", "GET / HTTP/1.1\r\n",
	         "b.example", -1},
	        {"GET /x HTTP/1.1\r\nHost: a.example\r\n\r\n", "GET /x HTTP/1.1\r\nHost: a.example\r\n",
	         NULL, 0},
	};
	struct config_errors errs;
	static struct parsed p;
	char out[256];

	memset(&errs, 0, sizeof(errs));
	struct config *cfg = config_parse("pins.yaml", yaml, sizeof(yaml) - 1, &errs);
	config_errors_free(&errs);
	if (!CHECK(cfg && cfg->routes[0].npins == 1, "absolute-form: config loads")) {
		config_free(cfg);
		return;
	}
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		for (size_t step = 0; step < 2; step++) {
			const char *reason = NULL;
			char what[128];
			size_t len = strlen(cases[i].req);
			memcpy(p.buf, cases[i].req, len);
			p.len = len;
			p.used = 0;
			http_msg_init(&p.m, HTTP_REQUEST, NULL);
			http_msg_begin(&p.m, p.buf, 0);
			while (p.used < p.len) {
				size_t c = 0, n = step && p.len - p.used > 1 ? 1 : p.len - p.used;
				p.st = http_msg_feed(&p.m, p.buf + p.used, n, &c);
				p.used += c;
				if (p.st != HTTP_NEED_MORE)
					break;
			}
			int ok = p.st == HTTP_HEAD_DONE && http_req_check(&p.m, 0, &reason) == 0;
			if (ok)
				forwarded(&p, out, sizeof(out));
			int pin = http_pins_match(&p.m, cfg->routes[0].pins, cfg->routes[0].npins);
			ok = ok && strcmp(out, cases[i].runs) == 0 && pin == cases[i].pin;
			if (cases[i].authority)
				ok = ok && p.m.head.url_skip &&
				     p.m.head.authority_len == strlen(cases[i].authority) &&
				     memcmp(p.buf + p.m.head.authority, cases[i].authority,
				            p.m.head.authority_len) == 0;
			else
				ok = ok && !p.m.head.url_skip;
			snprintf(what, sizeof(what), "absolute-form %zu (%s): origin-form, Host, pin", i,
			         step ? "a byte at a time" : "whole");
			if (!CHECK(ok, what)) {
				print_escaped("forwarded", out);
				printf("#   pin %d, reason %s\n", pin, reason ? reason : "-");
			}
		}
	}
	config_free(cfg);
}

/* Whether two parses of the same bytes produced the same head. */
static int same_head(const struct parsed *a, const struct parsed *b)
{
	const struct http_head *x = &a->m.head, *y = &b->m.head;

	if (a->st != b->st || a->used != b->used || x->start != y->start || x->end != y->end ||
	    x->nhdrs != y->nhdrs || x->conn_tokens != y->conn_tokens ||
	    x->nhost != y->nhost)
		return 0;
	for (uint32_t i = 0; i < x->nhdrs; i++) {
		const struct http_hdr *h = &x->hdrs[i], *k = &y->hdrs[i];
		if (h->name != k->name || h->name_len != k->name_len || h->value != k->value ||
		    h->value_len != k->value_len || h->kind != k->kind || h->drop != k->drop)
			return 0;
	}
	return 1;
}

static void test_incremental(void)
{
	static const char *const reqs[] = {
	        "GET /a HTTP/1.1\r\nHost: example.com\r\nX-Canary: yes\r\n\r\n",
	        "POST /submit HTTP/1.1\r\nHost: example.com\r\n"
	        "Connection: keep-alive, X-Hop\r\nX-Hop: 1\r\nX-Pad:    v  \r\n"
	        "X-Forwarded-For: 10.0.0.1\r\nContent-Length: 3\r\nX-Empty:\r\n\r\nabc",
	        "GET / HTTP/1.0\r\n\r\n",
	        "GET / HTTP/1.1\r\nHost: a\r\nX-A: b\r\n c\r\n\r\n",
	        "GET / HTTP/1.1\r\nHost: a\r\nX-A : b\r\n\r\n",
	};
	static const struct cfg_pin pin = {.header = "x-canary", .value = "yes", .pool = 1};
	static struct parsed whole, part;
	char a[1024], b[1024];

	for (size_t r = 0; r < sizeof(reqs) / sizeof(reqs[0]); r++) {
		size_t len = strlen(reqs[r]);
		const char *ra = NULL, *rb = NULL;
		int bad = 0, ca, cb;

		parse_n(&whole, HTTP_REQUEST, reqs[r], len, 0);
		ca = whole.st == HTTP_HEAD_DONE ? http_req_check(&whole.m, 0, &ra) : -1;
		if (whole.st == HTTP_HEAD_DONE)
			forwarded(&whole, a, sizeof(a));
		/* 1 byte per call, then every two-part split. */
		for (size_t step = 1; step <= len; step++) {
			size_t c = 0;

			if (step == 1) {
				parse_n(&part, HTTP_REQUEST, reqs[r], len, 1);
			} else {
				size_t cut = step - 1;
				memcpy(part.buf, reqs[r], len);
				part.len = len;
				http_msg_init(&part.m, HTTP_REQUEST, NULL);
				http_msg_begin(&part.m, part.buf, 0);
				part.st = http_msg_feed(&part.m, part.buf, cut, &c);
				part.used = c;
				if (part.st == HTTP_NEED_MORE)
					feed_rest(&part);
			}
			cb = part.st == HTTP_HEAD_DONE ? http_req_check(&part.m, 0, &rb) : -1;
			if (part.st == HTTP_ERROR && whole.st == HTTP_ERROR) {
				bad += part.m.error_status != whole.m.error_status;
				continue;
			}
			if (ca != cb || !same_head(&whole, &part)) {
				bad++;
				continue;
			}
			if (part.st == HTTP_HEAD_DONE) {
				forwarded(&part, b, sizeof(b));
				bad += strcmp(a, b) != 0;
			}
		}
		char what[96];
		snprintf(what, sizeof(what),
		         "incremental: request %zu parses the same at any split", r);
		CHECK_EQ_INT(bad, 0, what);
	}

	/* A pin still matches when its header arrives one byte per call. */
	memcpy(part.buf, reqs[0], strlen(reqs[0]));
	part.len = strlen(reqs[0]);
	part.used = 0;
	http_msg_init(&part.m, HTTP_REQUEST, NULL);
	http_msg_begin(&part.m, part.buf, 0);
	while (part.used < part.len) {
		size_t c = 0;
		part.st = http_msg_feed(&part.m, part.buf + part.used, 1, &c);
		part.used += c;
		if (part.st != HTTP_NEED_MORE)
			break;
	}
	CHECK(part.st == HTTP_HEAD_DONE && http_pins_match(&part.m, &pin, 1) == 0,
	      "incremental: a pin matches when fed byte by byte");

	/* A chunked body fed byte by byte ends where the message does. */
	static const char chunked[] =
	        "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
	        "5;x=y\r\nhello\r\n3\r\nabc\r\n0\r\nX-T: 1\r\n\r\n"
	        "GET /next HTTP/1.1\r\nHost: a\r\n\r\n";
	size_t body_end = sizeof(chunked) - 1 - strlen("GET /next HTTP/1.1\r\nHost: a\r\n\r\n");
	parse_n(&part, HTTP_REQUEST, chunked, sizeof(chunked) - 1, 1);
	int ok = part.st == HTTP_HEAD_DONE, steps = 0;
	while (ok && part.st != HTTP_MSG_DONE && part.used < part.len && steps++ < 1000) {
		size_t c = 0;
		part.st = http_msg_feed(&part.m, part.buf + part.used, 1, &c);
		part.used += c;
		ok = part.st == HTTP_NEED_MORE || part.st == HTTP_MSG_DONE;
	}
	CHECK(ok && part.st == HTTP_MSG_DONE && part.used == body_end,
	      "incremental: chunked body with trailer ends exactly at the message end");
	http_msg_begin(&part.m, part.buf, (uint32_t)part.used);
	CHECK_EQ_INT(feed_rest(&part), HTTP_HEAD_DONE,
	             "incremental: the pipelined request follows");
	CHECK(part.m.head.start == body_end && part.used == part.len,
	      "incremental: the second head's offsets are in the same block");

	/* Bad framing that llhttp lets by and a body over the limit in one
	 * read after the head: the framing's 400, as when the bytes come one
	 * at a time. */
	static const char bad_big[] = "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
	                              "40\r\x02xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx";
	size_t bad_head = sizeof(bad_big) - 1 - 68;
	const char *why = NULL;
	for (size_t step = 0; step < 3; step++) {
		parse_n(&part, HTTP_REQUEST, bad_big, bad_head, 0);
		ok = part.st == HTTP_HEAD_DONE && http_req_check(&part.m, 8, &why) == 0;
		memcpy(part.buf + bad_head, bad_big + bad_head, sizeof(bad_big) - 1 - bad_head);
		part.len = sizeof(bad_big) - 1;
		while (ok && part.used < part.len) {
			size_t n = step && part.len - part.used > step ? step : part.len - part.used, c = 0;
			part.st = http_msg_feed(&part.m, part.buf + part.used, n, &c);
			part.used += c;
			if (part.st != HTTP_NEED_MORE)
				break;
		}
		CHECK(ok && part.st == HTTP_ERROR && part.m.error_status == 400,
		      step ? "chunked: bad framing, then a body over max_body_bytes, in small reads: 400"
		           : "chunked: bad framing and a body over max_body_bytes in one read: 400");
	}

	/* Bad framing after chunk data, in a read after the head's that also
	 * holds a trailer Transfer-Encoding, which makes llhttp clear
	 * F_CHUNKED: refused in that read all the same, never forwarded. */
	static const struct {
		llhttp_type_t type;
		const char *text;
	} bad_tails[] = {
	        {HTTP_REQUEST, "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
	                       "2\r\nab\x01\n0\r\nTransfer-Encoding: x\r\n"},
	        {HTTP_RESPONSE, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
	                        "2\r\nab\x01\n0\r\nTransfer-Encoding: x\r\n\r\n"},
	        {HTTP_RESPONSE, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
	                        "2\r\nabXY0\r\nTransfer-Encoding: x\r\n"},
	};
	for (size_t i = 0; i < sizeof(bad_tails) / sizeof(bad_tails[0]); i++) {
		const char *t = bad_tails[i].text;
		size_t head_len = (size_t)(strstr(t, "\r\n\r\n") + 4 - t);
		parse_n(&part, bad_tails[i].type, t, head_len, 0);
		ok = part.st == HTTP_HEAD_DONE;
		memcpy(part.buf + head_len, t + head_len, strlen(t) - head_len);
		part.len = strlen(t);
		CHECK(ok && feed_rest(&part) == HTTP_ERROR && part.m.error_status == 400,
		      "incremental: bad chunk framing before a trailer Transfer-Encoding is refused");
	}
}

/* Scans s whole, then split in two at every byte, then byte by byte;
 * returns how many of these disagree with want (0 valid, -1 invalid). */
static int chunk_scan_all(const char *s, size_t len, int want)
{
	struct http_chunk_scan cs;
	int bad = 0;

	memset(&cs, 0, sizeof(cs));
	bad += http_chunk_scan(&cs, s, len) != want;
	for (size_t cut = 0; cut <= len; cut++) {
		int r;

		memset(&cs, 0, sizeof(cs));
		r = http_chunk_scan(&cs, s, cut);
		if (r == 0)
			r = http_chunk_scan(&cs, s + cut, len - cut);
		bad += r != want;
	}
	memset(&cs, 0, sizeof(cs));
	int r = 0;
	for (size_t i = 0; i < len && r == 0; i++)
		r = http_chunk_scan(&cs, s + i, 1);
	bad += r != want;
	return bad;
}

static void test_chunk_scan(void)
{
	static const struct {
		const char *body;
		int want;
		const char *what;
	} cases[] = {
	        {"0\r\n\r\n", 0, "chunks: empty body"},
	        {"5\r\nhello\r\n0\r\n\r\n", 0, "chunks: one chunk"},
	        {"A\r\n0123456789\r\na\r\n0123456789\r\n0\r\n\r\n", 0, "chunks: hex in both cases"},
	        {"5;name=value;flag\r\nhello\r\n0;last\r\n\r\n", 0, "chunks: extensions"},
	        {"5 ;ext\r\nhello\r\n0\r\n\r\n", 0, "chunks: whitespace before an extension"},
	        {"5\r\nhello\r\n0\r\nX-Trailer: 1\r\nX-Other: two\r\n\r\n", 0, "chunks: trailers"},
	        {"005\r\nhello\r\n000\r\n\r\n", 0, "chunks: leading zeros"},
	        {"5\r\nhe\r\nl\r\n0\r\n\r\n", 0, "chunks: CR LF inside the data is data"},
	        {"fffffffffffffff\r\n", 0, "chunks: 15 hex digits are accepted"},
	        {"g\r\n", -1, "chunks: bad hex digit"},
	        {"5x\r\nhello\r\n0\r\n\r\n", -1, "chunks: garbage after the size"},
	        {"\r\n", -1, "chunks: empty size"},
	        {";ext\r\n", -1, "chunks: extension without size"},
	        {"-1\r\n", -1, "chunks: negative size"},
	        {"5\r\nhelloXX0\r\n\r\n", -1, "chunks: missing CRLF after data"},
	        {"5\r\nhello\rX0\r\n\r\n", -1, "chunks: CR without LF after data"},
	        {"5\r\nhello\r\n\r\n", -1, "chunks: missing size after data"},
	        {"ffffffffffffffff\r\n", -1, "chunks: 16 hex digits (size overflow)"},
	        {"10000000000000000\r\nx", -1, "chunks: 17 hex digits (size overflow)"},
	        {"5\nhello\r\n0\r\n\r\n", -1, "chunks: bare LF after the size"},
	        {"5\r\nhello\n0\r\n\r\n", -1, "chunks: bare LF after the data"},
	        {"0\r\n\n", -1, "chunks: bare LF as the final line"},
	        {"0\r\nX-T: 1\n\r\n", -1, "chunks: bare LF after a trailer"},
	        {"5;a\001b\r\nhello\r\n0\r\n\r\n", -1, "chunks: control byte in an extension"},
	        {"0\r\nX-T: \001\r\n\r\n", -1, "chunks: control byte in a trailer"},
	        {"0\r\n\r\nx", -1, "chunks: bytes after the last chunk"},
	        {"5;a=b\r\nhello\r\n0;c=\"d\"\r\n\r\n", 0, "chunks: extension values"},
	        {"5;a=\"b;c\\\"d, \x80\"\r\nhello\r\n0\r\n\r\n", 0,
	         "chunks: a quoted value with ';', a quoted pair and obs-text"},
	        {"5 ; a = b ;c\t;d\r\nhello\r\n0\r\n\r\n", 0, "chunks: BWS around ';' and '='"},
	        {"5;\r\n", -1, "chunks: ';' without an extension name"},
	        {"5;=b\r\n", -1, "chunks: an extension value without a name"},
	        {"5;a=\r\n", -1, "chunks: '=' without a value"},
	        {"5;a b\r\n", -1, "chunks: two names without ';'"},
	        {"5 \r\n", -1, "chunks: whitespace before the CRLF of a size"},
	        {"5;a=b \r\n", -1, "chunks: whitespace before the CRLF of an extension"},
	        {"5;a=\"b\r\n", -1, "chunks: an unterminated quoted value"},
	        {"5;a=\"b\"c\r\n", -1, "chunks: bytes after a quoted value"},
	        {"5;a=b\"c\"\r\n", -1, "chunks: a quote in a token value"},
	        {"5;a\nb\r\n", -1, "chunks: bare LF in an extension"},
	        {"5;a\rb\r\n", -1, "chunks: bare CR in an extension"},
	        {"5;a=\"\001\"\r\n", -1, "chunks: a control byte in a quoted value"},
	        {"5;a@b\r\n", -1, "chunks: a name that is not a token"},
	        {"0x5\r\n", -1, "chunks: a 0x prefix"},
	        {" 5\r\n", -1, "chunks: whitespace before a size"},
	        {"+5\r\n", -1, "chunks: a sign before a size"},
	        {"0\r\nX:\r\nX-Transfer-Encoding: y\r\nContent-Lengths: 1\r\n"
	         "A-Trailer-Name-Longer-Than-Any-Known: 1\r\n\r\n", 0,
	         "chunks: trailers with names near the framing ones"},
	        {"0\r\nContent-Length: 5\r\n\r\n", -2, "chunks: Content-Length in a trailer"},
	        {"0\r\nTRANSFER-ENCODING:chunked\r\n\r\n", -2,
	         "chunks: Transfer-Encoding in a trailer"},
	        {"0\r\nhost: b\r\n\r\n", -2, "chunks: Host in a trailer"},
	        {"0\r\nX: 1\r\nConnection: close\r\n\r\n", -2, "chunks: Connection in a trailer"},
	        {"0\r\nTrailer: x\r\n\r\n", -2, "chunks: Trailer in a trailer"},
	        {"0\r\nTE: trailers\r\n\r\n", -2, "chunks: TE in a trailer"},
	        {"0\r\nX-Forwarded-For: 1.2.3.4\r\n\r\n", -2, "chunks: X-Forwarded-For in a trailer"},
	        {"0\r\n X: y\r\n\r\n", -1, "chunks: a trailer line starting with a space"},
	        {"0\r\nX: y\r\n\tz\r\n\r\n", -1, "chunks: obs-fold in a trailer"},
	        {"0\r\n: y\r\n\r\n", -1, "chunks: an empty trailer name"},
	        {"0\r\nX y\r\n\r\n", -1, "chunks: a trailer line without a colon"},
	        {"0\r\nX : y\r\n\r\n", -1, "chunks: whitespace before a trailer colon"},
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		CHECK_EQ_INT(chunk_scan_all(cases[i].body, strlen(cases[i].body), cases[i].want), 0,
		             cases[i].what);
}

static void test_responses(void)
{
	static struct parsed p;
	char out[256];
	const char *reason = NULL;

	/* HEAD: the head says 5 bytes, none follow. */
	static const char head_resp[] = "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n";
	static const char next_resp[] = "HTTP/1.1 204 No Content\r\n\r\n";
	memcpy(p.buf, head_resp, sizeof(head_resp) - 1);
	memcpy(p.buf + sizeof(head_resp) - 1, next_resp, sizeof(next_resp));
	p.len = sizeof(head_resp) + sizeof(next_resp) - 2;
	p.used = 0;
	http_msg_init(&p.m, HTTP_RESPONSE, NULL);
	p.m.skip_body = true;
	http_msg_begin(&p.m, p.buf, 0);
	CHECK_EQ_INT(feed_rest(&p), HTTP_HEAD_DONE, "HEAD response: head done");
	CHECK_EQ_INT(http_msg_content_length(&p.m), 5, "HEAD response: Content-Length 5");
	CHECK(feed_rest(&p) == HTTP_MSG_DONE && p.used == sizeof(head_resp) - 1,
	      "HEAD response: complete without a body");
	p.m.skip_body = false;
	http_msg_begin(&p.m, p.buf, (uint32_t)p.used);
	CHECK(feed_rest(&p) == HTTP_HEAD_DONE && http_msg_status(&p.m) == 204,
	      "HEAD response: the next response parses after it");

	/* 204 and 304 end at the blank line whatever their framing headers
	 * say (RFC 9112 §6.3); a 304 may carry the Content-Length or the
	 * Transfer-Encoding of the representation (RFC 9110 §8.6, 9112 §6.1). */
	static const char *const nobody[] = {
	        "HTTP/1.1 204 No Content\r\n\r\n",
	        "HTTP/1.1 304 Not Modified\r\nETag: \"x\"\r\n\r\n",
	        "HTTP/1.1 204 No Content\r\nContent-Length: 10\r\n\r\n",
	        "HTTP/1.1 304 Not Modified\r\nContent-Length: 10\r\n\r\n",
	        "HTTP/1.1 304 Not Modified\r\nTransfer-Encoding: chunked\r\n\r\n",
	};
	static const char *const nobody_what[] = {
	        "204: no body, the next response follows",
	        "304: no body, the next response follows",
	        "204 with Content-Length: no body, the next response follows",
	        "304 with Content-Length: no body, the next response follows",
	        "304 with Transfer-Encoding: chunked: no body, the next response follows",
	};
	for (size_t i = 0; i < sizeof(nobody) / sizeof(nobody[0]); i++) {
		char text[256];
		size_t hl = strlen(nobody[i]);
		int ok;

		snprintf(text, sizeof(text), "%sHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
		         nobody[i]);
		ok = parse(&p, HTTP_RESPONSE, text) == HTTP_HEAD_DONE && p.used == hl;
		ok = ok && !http_msg_needs_eof(&p.m);
		ok = ok && feed_rest(&p) == HTTP_MSG_DONE && p.used == hl;
		if (ok) {
			http_msg_begin(&p.m, p.buf, (uint32_t)p.used);
			ok = feed_rest(&p) == HTTP_HEAD_DONE && http_msg_status(&p.m) == 200;
		}
		if (!CHECK(ok, nobody_what[i]))
			printf("#   step %d after %zu bytes (head is %zu)%s%s\n", p.st, p.used, hl,
			       p.m.error_reason ? ": " : "",
			       p.m.error_reason ? p.m.error_reason : "");
	}

	/* 100 Continue, then the final response: two heads. */
	static const char cont[] = "HTTP/1.1 100 Continue\r\n\r\n"
	                           "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
	parse(&p, HTTP_RESPONSE, cont);
	CHECK(p.st == HTTP_HEAD_DONE && http_msg_status(&p.m) == 100 && p.used == 25,
	      "100 Continue: first head");
	CHECK(feed_rest(&p) == HTTP_MSG_DONE && p.used == 25, "100 Continue: no body");
	http_msg_begin(&p.m, p.buf, (uint32_t)p.used);
	CHECK(feed_rest(&p) == HTTP_HEAD_DONE && http_msg_status(&p.m) == 200 &&
	              p.m.head.start == 25 && p.m.head.end == 63,
	      "100 Continue: then the 200 head");
	CHECK(feed_rest(&p) == HTTP_MSG_DONE && p.used == sizeof(cont) - 1,
	      "100 Continue: the 200's body ends the message");

	/* Neither Content-Length nor chunked: the close ends the body. */
	parse(&p, HTTP_RESPONSE, "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nsome body");
	CHECK_EQ_INT(p.st, HTTP_HEAD_DONE, "close-delimited: head done");
	CHECK(http_msg_needs_eof(&p.m) && !http_msg_keep_alive(&p.m),
	      "close-delimited: needs EOF, no keep-alive");
	CHECK(feed_rest(&p) == HTTP_NEED_MORE && p.used == p.len,
	      "close-delimited: body bytes do not end it");
	CHECK_EQ_INT(http_msg_finish(&p.m), 0, "close-delimited: EOF ends it cleanly");

	parse(&p, HTTP_RESPONSE, "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort");
	CHECK(!http_msg_needs_eof(&p.m) && feed_rest(&p) == HTTP_NEED_MORE,
	      "truncated: Content-Length body incomplete");
	CHECK(http_msg_finish(&p.m) != 0, "truncated: EOF before the body ends is an error");

	/* Response hop-by-hop headers. */
	parse(&p, HTTP_RESPONSE,
	      "HTTP/1.1 200 OK\r\nConnection: keep-alive, X-Internal\r\nKeep-Alive: timeout=5\r\n"
	      "X-Internal: 1\r\nUpgrade: h2c\r\nContent-Length: 0\r\nX-Keep: 1\r\n\r\n");
	CHECK_EQ_INT(http_resp_check(&p.m, &reason), 0, "response check: accepted");
	forwarded(&p, out, sizeof(out));
	CHECK_EQ_STR(out, "HTTP/1.1 200 OK\r\nContent-Length: 0\r\nX-Keep: 1\r\n",
	             "response check: hop-by-hop and Connection-named headers dropped");
	parse(&p, HTTP_RESPONSE,
	      "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: "
	      "websocket\r\n\r\n");
	CHECK_EQ_INT(http_resp_check(&p.m, &reason), 0, "101: accepted");
	forwarded(&p, out, sizeof(out));
	CHECK_EQ_STR(out, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n",
	             "101: Upgrade kept");
	CHECK(feed_rest(&p) == HTTP_MSG_DONE && feed_rest(&p) == HTTP_UPGRADE &&
	              http_msg_upgrade(&p.m) && p.used == p.len,
	      "101: the message ends, then a tunnel follows");
}

static void test_error_responses(void)
{
	static const int statuses[] = {400, 408, 413, 431, 501, 502, 503, 504};
	static struct parsed p;

	http_init();
	for (size_t i = 0; i < sizeof(statuses) / sizeof(statuses[0]); i++) {
		for (int close = 0; close < 2; close++) {
			size_t len = 0;
			const char *r = http_error_response(statuses[i], close, &len);
			char what[96];
			int ok;

			ok = r && len > 0 && len == strlen(r);
			ok = ok && parse_n(&p, HTTP_RESPONSE, r, len, 0) == HTTP_HEAD_DONE;
			ok = ok && http_msg_status(&p.m) == statuses[i];
			ok = ok && http_msg_content_length(&p.m) == len - p.m.head.end;
			ok = ok && p.m.head.end < len;
			ok = ok && feed_rest(&p) == HTTP_MSG_DONE && p.used == len;
			ok = ok && http_msg_keep_alive(&p.m) == !close;
			snprintf(what, sizeof(what),
			         "error response %d%s: parses, Content-Length matches the body",
			         statuses[i], close ? " (close)" : "");
			CHECK(ok, what);
		}
	}
	size_t l1 = 0, l2 = 0;
	const char *r1 = http_error_response(500, false, &l1);
	const char *r2 = http_error_response(502, false, &l2);
	CHECK(r1 == r2 && l1 == l2, "error response: an unknown status is answered as 502");
}

/* Parses len bytes of text in p as one message whole (where the plain form
 * applies) or split into single bytes (llhttp alone), then feeds the rest
 * of the block as body. Returns the step the head ended with. */
static enum http_step parse_msg(struct parsed *p, llhttp_type_t type, const char *text, size_t len,
                                size_t step, bool skip_body)
{
	memcpy(p->buf, text, len);
	p->len = len;
	p->used = 0;
	http_msg_init(&p->m, type, NULL);
	p->m.skip_body = skip_body;
	http_msg_begin(&p->m, p->buf, 0);
	p->st = HTTP_NEED_MORE;
	while (p->used < len) {
		size_t n = step && len - p->used > step ? step : len - p->used, c = 0;
		p->st = http_msg_feed(&p->m, p->buf + p->used, n, &c);
		p->used += c;
		if (p->st != HTTP_NEED_MORE)
			break;
	}
	return p->st;
}

static uint64_t rng_state = 0x9e3779b97f4a7c15ULL;

static uint32_t rnd(uint32_t n)
{
	rng_state ^= rng_state << 13;
	rng_state ^= rng_state >> 7;
	rng_state ^= rng_state << 17;
	return (uint32_t)(rng_state % n);
}

/* A head built from random parts, some of them malformed, then a few of its
 * bytes replaced or inserted from a set of delimiters, controls and
 * high bytes. */
static size_t random_message(char *out, size_t cap, bool request)
{
	static const char *const starts_req[] = {
	        "GET / HTTP/1.1", "GET /a/b?c=d&e=%20 HTTP/1.1", "POST /p HTTP/1.1", "HEAD / HTTP/1.0",
	        "PUT /x HTTP/1.1", "DELETE /y HTTP/1.0", "PATCH /z HTTP/1.1", "OPTIONS /o HTTP/1.1",
	        "OPTIONS * HTTP/1.1", "CONNECT a:443 HTTP/1.1", "GET http://h/p HTTP/1.1",
	        "GET / HTTP/2.0", "GET  / HTTP/1.1", "GET / HTTP/1.1 ", "get / HTTP/1.1",
	        "GET /~'!$&()*+,;=:@-._ HTTP/1.1", "PROPFIND / HTTP/1.1", "GET / http/1.1",
	        "GET /a%2Fb?c=%7e%41 HTTP/1.1", "GET /%4 HTTP/1.1", "GET /%zz HTTP/1.1",
	        "GET /a#f HTTP/1.1", "GET * HTTP/1.1", "GET http://u@h/ HTTP/1.1",
	        "GET HTTP://h:8080?q HTTP/1.0", "\r\nGET / HTTP/1.1", "\r\n\r\nPOST /p HTTP/1.1",
	        "\r\rGET / HTTP/1.1", "\nGET / HTTP/1.1",
	};
	static const char *const starts_resp[] = {
	        "HTTP/1.1 200 OK", "HTTP/1.0 200 OK", "HTTP/1.1 204 No Content", "HTTP/1.1 304 Not Modified",
	        "HTTP/1.1 404 Not Found", "HTTP/1.1 502 ", "HTTP/1.1 200", "HTTP/1.1 100 Continue",
	        "HTTP/1.1 101 Switching Protocols", "HTTP/1.1 999 X", "HTTP/1.1 600 X", "HTTP/2 200 OK",
	        "HTTP/1.1 200 \tOK", "HTTP/1.1 20 OK", "HTTP/1.1 2000 OK", "HTTP/1.1 099 X",
	        "\r\nHTTP/1.1 200 OK", "HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked",
	};
	static const char *const lines[] = {
	        "Host: example.com", "Host: a", "host:b", "Content-Length: 5", "Content-Length: 0",
	        "content-length:  5 ", "Content-Length: 05", "Content-Length: 5, 5", "Content-Length: -1",
	        "Content-Length: 99999999999999999999", "Content-Length: 1234567890123456",
	        "Transfer-Encoding: chunked", "Transfer-Encoding: gzip", "Connection: close",
	        "Connection: keep-alive", "Connection: Keep-Alive, X-Hop", "Connection: close x",
	        "Connection: upgrade", "Connection: ,close,", "Connection:  close  ,  keep-alive ",
	        "Proxy-Connection: close", "Keep-Alive: 5", "Upgrade: h2c", "TE: trailers",
	        "X-Hop: 1", "X-Forwarded-For: 10.0.0.1", "X-Real-IP: 1.2.3.4", "Expect: 100-continue",
	        "X-Empty:", "X-Space:   ", "X-Tab:\tv\t", "Canary: true", "canary:  true ",
	        "X-Canary: yes", "X-Obs: \x80\xff", "X-A : b", " X-Fold: c", "\tX-Fold: d",
	        "X-Long: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\tb", "Cookie: a=b; c=d",
	        "Accept: */*", "User-Agent: zdm-test/1.0 (x; y)", "X-Q: \"quoted\" {x} |y| \\z",
	        "X-A-Header-Name-Longer-Than-Thirty-Two-Bytes: v", "x_u.s~t!#$%&'*+^`|: v",
	        "CONTENT-LENGTH: 3", "cOnNeCtIoN: Close", "TRANSFER-ENCODING: chunked",
	        "Content-Type: text/plain", "Accept-Encoding: gzip, br", "X-0123456789abcdef: 1",
	        "X-0123456789abcde_: 1", "X-0123456789abcdef-0123456789abcdef_x: 1",
	        "Host: a b", "Host: a,b", "Host: [::1]:80", "Host: u@h", "Host:", "Host: h:8x",
	        "Host: h:", "Host: %41", "Host: %4", "Transfer-Encoding: identity, chunked",
	        "Transfer-Encoding:", ": empty-name",
	};
	static const char alphabet[] = " \t\r\n:,;0123456789aAzZ/?#%\"{}|\\^`<>@[]\x00\x01\x7f\x80\xff-_.~";
	const char *const *starts = request ? starts_req : starts_resp;
	size_t nstarts = request ? sizeof(starts_req) / sizeof(*starts_req)
	                         : sizeof(starts_resp) / sizeof(*starts_resp);
	size_t n = 0;

	n += (size_t)snprintf(out + n, cap - n, "%s\r\n", starts[rnd((uint32_t)nstarts)]);
	for (uint32_t i = 0, k = rnd(7); i < k; i++)
		n += (size_t)snprintf(out + n, cap - n, "%s\r\n",
		                      lines[rnd(sizeof(lines) / sizeof(*lines))]);
	if (!request && rnd(2))
		n += (size_t)snprintf(out + n, cap - n, "Content-Length: %u\r\n", rnd(8));
	n += (size_t)snprintf(out + n, cap - n, "\r\n");
	for (uint32_t i = 0, k = rnd(3); i < k && n + 1 < cap; i++) {
		size_t at = rnd((uint32_t)n);
		char c = alphabet[rnd(sizeof(alphabet) - 1)];
		if (rnd(2)) {
			out[at] = c;
		} else {
			memmove(out + at + 1, out + at, n - at);
			out[at] = c;
			n++;
		}
	}
	/* a body, and maybe the start of a next message */
	size_t body = rnd(12);
	memset(out + n, 'b', body);
	return n + body;
}

/* The plain form and llhttp agree on every head the plain form takes:
 * same record, same checks, same framing, same end of message. */
static void test_plain_agrees(void)
{
	static struct parsed whole, part;
	char text[2048], a[2048], b[2048];
	int disagree[2] = {0, 0}, plain[2] = {0, 0};
	const int rounds = 200000;

	for (int r = 0; r < 2 * rounds; r++) {
		bool request = r < rounds, skip = !request && rnd(4) == 0;
		llhttp_type_t type = request ? HTTP_REQUEST : HTTP_RESPONSE;
		size_t len = random_message(text, sizeof(text) - 16, request);
		int bad = 0;

		parse_msg(&whole, type, text, len, 0, skip);
		if (whole.st != HTTP_HEAD_DONE || !whole.m.plain)
			continue;
		plain[!request]++;
		parse_msg(&part, type, text, len, 1, skip);
		bad |= part.m.plain || !same_head(&whole, &part);
		bad |= http_msg_version(&whole.m) != http_msg_version(&part.m);
		bad |= http_msg_keep_alive(&whole.m) != http_msg_keep_alive(&part.m);
		bad |= http_msg_content_length(&whole.m) != http_msg_content_length(&part.m);
		bad |= http_msg_chunked(&whole.m) != http_msg_chunked(&part.m);
		bad |= http_msg_upgrade(&whole.m) != http_msg_upgrade(&part.m);
		bad |= http_msg_needs_eof(&whole.m) != http_msg_needs_eof(&part.m);
		if (request) {
			const char *ra = NULL, *rb = NULL;
			bad |= http_msg_method(&whole.m) != http_msg_method(&part.m);
			bad |= http_req_check(&whole.m, 0, &ra) != http_req_check(&part.m, 0, &rb);
			bad |= (ra == NULL) != (rb == NULL) || (ra && strcmp(ra, rb) != 0);
		} else {
			const char *ra = NULL, *rb = NULL;
			bad |= http_msg_status(&whole.m) != http_msg_status(&part.m);
			bad |= http_resp_check(&whole.m, &ra) != http_resp_check(&part.m, &rb);
		}
		forwarded(&whole, a, sizeof(a));
		forwarded(&part, b, sizeof(b));
		bad |= strcmp(a, b) != 0;
		/* the body: where the message ends */
		bad |= feed_rest(&whole) != feed_rest(&part) || whole.used != part.used;
		bad |= http_msg_keep_alive(&whole.m) != http_msg_keep_alive(&part.m);
		if (bad && disagree[!request]++ < 5) {
			printf("# plain and llhttp differ on: ");
			for (size_t i = 0; i < len; i++)
				printf(text[i] >= 0x20 && text[i] < 0x7f ? "%c" : "\\x%02x",
				       (unsigned char)text[i]);
			printf("\n");
		}
	}
	printf("# plain form taken by %d of %d requests, %d of %d responses\n", plain[0], rounds,
	       plain[1], rounds);
	CHECK_EQ_INT(disagree[0], 0, "plain form: requests recorded as llhttp records them");
	CHECK_EQ_INT(disagree[1], 0, "plain form: responses recorded as llhttp records them");
	CHECK(plain[0] > rounds / 20, "plain form: taken by many of the random requests");
	CHECK(plain[1] > rounds / 20, "plain form: taken by many of the random responses");

	/* What clients and servers commonly send takes it. */
	static const char *const common_req[] = {
	        "GET /tiny HTTP/1.1\r\nHost: 127.0.0.1:18090\r\n\r\n",
	        "GET /a?b=c HTTP/1.1\r\nHost: localhost\r\nUser-Agent: curl/7.88.1\r\n"
	        "Accept: */*\r\ncanary: true\r\n\r\n",
	        "POST /form HTTP/1.1\r\nHost: h\r\nContent-Type: application/json\r\n"
	        "Content-Length: 2\r\nConnection: keep-alive\r\n\r\n{}",
	        "GET / HTTP/1.0\r\nConnection: close\r\n\r\n",
	};
	static const char *const common_resp[] = {
	        "HTTP/1.1 200 OK\r\nServer: nginx/1.22.1\r\nDate: Sun, 22 Nov 2026 04:30:00 GMT\r\n"
	        "Content-Type: application/octet-stream\r\nContent-Length: 2\r\n"
	        "Last-Modified: Sat, 21 Nov 2026 10:00:00 GMT\r\nConnection: keep-alive\r\n"
	        "ETag: \"6a3f-2\"\r\nAccept-Ranges: bytes\r\n\r\nok",
	        "HTTP/1.0 200 OK\r\nServer: BaseHTTP/0.6 Python/3.11.2\r\nContent-Length: 0\r\n\r\n",
	        "HTTP/1.1 304 Not Modified\r\nETag: \"x\"\r\n\r\n",
	};
	for (size_t i = 0; i < sizeof(common_req) / sizeof(*common_req); i++) {
		parse(&whole, HTTP_REQUEST, common_req[i]);
		CHECK(whole.st == HTTP_HEAD_DONE && whole.m.plain, "plain form: a common request");
	}
	for (size_t i = 0; i < sizeof(common_resp) / sizeof(*common_resp); i++) {
		parse(&whole, HTTP_RESPONSE, common_resp[i]);
		CHECK(whole.st == HTTP_HEAD_DONE && whole.m.plain, "plain form: a common response");
	}
}

/* Messages of both kinds follow one another on one connection: llhttp is
 * left between two messages by a plain one, and picks up after it. */
/* Keep-alive as the Connection tokens say, read whole (the plain form where
 * it applies) and a byte at a time (llhttp): close always wins. */
static void test_keep_alive(void)
{
	static const struct {
		const char *head;
		bool keep;
	} cases[] = {
	        {"GET / HTTP/1.1\r\nHost: a\r\n\r\n", true},
	        {"GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n", false},
	        {"GET / HTTP/1.1\r\nHost: a\r\nConnection: CLOSE\r\n\r\n", false},
	        {"GET / HTTP/1.1\r\nHost: a\r\nConnection: close \t\r\n\r\n", false},
	        {"GET / HTTP/1.1\r\nHost: a\r\nConnection: keep-alive, close\r\n\r\n", false},
	        {"GET / HTTP/1.0\r\n\r\n", false},
	        {"GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n", true},
	        {"GET / HTTP/1.0\r\nConnection: keep-alive \t\r\n\r\n", true},
	        {"GET / HTTP/1.0\r\nConnection: keep-alive\r\nConnection: close\r\n\r\n", false},
	        {"GET / HTTP/1.0\r\nConnection: close, keep-alive\r\n\r\n", false},
	};
	static struct parsed p;
	int right = 0, tried = 0;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		for (size_t step = 0; step < 2; step++) {
			tried++;
			if (parse_n(&p, HTTP_REQUEST, cases[i].head, strlen(cases[i].head), step) ==
			            HTTP_HEAD_DONE &&
			    http_msg_keep_alive(&p.m) == cases[i].keep)
				right++;
			else
				printf("# case %zu (%s): keep-alive %d, want %d\n", i,
				       step ? "llhttp" : "whole", http_msg_keep_alive(&p.m),
				       cases[i].keep);
		}
	}
	CHECK_EQ_INT(right, tried, "keep-alive from the Connection tokens; close wins");
}

static void test_plain_pipeline(void)
{
	static struct parsed p;
	static const char text[] =
	        "POST /a HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n"
	        "GET /b HTTP/1.1\r\nHost: h\r\n\r\n"
	        "\r\n\r\nPOST /c HTTP/1.1\r\nHost: h\r\nContent-Length: 2\r\n\r\nxy"
	        "POST /d HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"
	        "\r\nGET /e HTTP/1.1\r\nHost: h\r\n\r\n";
	static const char *const urls[] = { "/a", "/b", "/c", "/d", "/e" };
	static const bool plain[] = { false, true, true, false, true };
	size_t len = strlen(text);

	memcpy(p.buf, text, len);
	p.len = len;
	p.used = 0;
	http_msg_init(&p.m, HTTP_REQUEST, NULL);
	for (size_t i = 0; i < 5; i++) {
		char what[80];
		size_t c = 0;
		http_msg_begin(&p.m, p.buf, (uint32_t)p.used);
		enum http_step st = http_msg_feed(&p.m, p.buf + p.used, len - p.used, &c);
		p.used += c;
		bool ok = st == HTTP_HEAD_DONE && p.m.plain == plain[i] &&
		          p.buf[p.m.head.start] != '\r' && p.m.head.url_len == strlen(urls[i]) &&
		          memcmp(p.buf + p.m.head.url, urls[i], p.m.head.url_len) == 0;
		st = http_msg_feed(&p.m, p.buf + p.used, len - p.used, &c);
		p.used += c;
		ok = ok && st == HTTP_MSG_DONE;
		snprintf(what, sizeof(what), "pipeline: request %s parsed (%s)", urls[i],
		         plain[i] ? "plain" : "llhttp");
		CHECK(ok, what);
	}
	CHECK_EQ_INT((int)p.used, (int)len, "pipeline: every byte belongs to a request");

	/* After an upgrade (llhttp stops for good), a reset parser reads
	 * llhttp messages again. */
	static const char up[] = "GET /u HTTP/1.1\r\nHost: h\r\nConnection: upgrade\r\nUpgrade: ws\r\n\r\n",
	                  next[] = "POST /n HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n";
	enum http_step st;
	size_t c = 0, at = 0;
	memcpy(p.buf, up, sizeof(up) - 1);
	http_msg_begin(&p.m, p.buf, 0);
	do {
		st = http_msg_feed(&p.m, p.buf + at, sizeof(up) - 1 - at, &c);
		at += c;
	} while (st == HTTP_HEAD_DONE || st == HTTP_MSG_DONE);
	CHECK(st == HTTP_UPGRADE && at == sizeof(up) - 1, "pipeline: an upgrade ends the parsing");
	http_msg_reset(&p.m);
	memcpy(p.buf, next, sizeof(next) - 1);
	http_msg_begin(&p.m, p.buf, 0);
	st = http_msg_feed(&p.m, p.buf, sizeof(next) - 1, &c);
	size_t c2 = 0;
	if (st == HTTP_HEAD_DONE)
		st = http_msg_feed(&p.m, p.buf + c, sizeof(next) - 1 - c, &c2);
	CHECK(st == HTTP_MSG_DONE && c + c2 == sizeof(next) - 1,
	      "pipeline: after a reset, a chunked request parses");
}


/* Cookie pins: one cookie among many, in any of a request's Cookie lines. */
static void test_cookie_match(void)
{
	static const struct {
		const char *v, *name, *value;
		bool want;
	} cases[] = {
	        {"beta=1", "beta", "1", true},
	        {"a=x; beta=1; c=y", "beta", "1", true},
	        {"a=x;beta=1;c=y", "beta", "1", true},
	        {"a=x ;  beta = 1 ; c=y", "beta", "1", true},
	        {"beta=\"1\"", "beta", "1", true},
	        {"beta=10", "beta", "1", false},
	        {"beta=", "beta", "1", false},
	        {"beta=", "beta", "", true},
	        {"xbeta=1", "beta", "1", false},
	        {"betax=1", "beta", "1", false},
	        {"Beta=1", "beta", "1", false},
	        {"a=beta=1", "beta", "1", false},
	        {"beta", "beta", "1", false},
	        {"a=1; beta=2; beta=1", "beta", "1", true},
	        {"", "beta", "1", false},
	        {";;; beta=1 ;;", "beta", "1", true},
	        {"a=\"x;beta=1\"", "beta", "1", false}, /* beta's value is 1" */
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		bool got = http_cookie_match(cases[i].v, strlen(cases[i].v), cases[i].name,
		                             cases[i].value);
		char what[160];
		snprintf(what, sizeof(what), "cookie %s=%s in \"%s\": %s", cases[i].name,
		         cases[i].value, cases[i].v, cases[i].want ? "found" : "not found");
		CHECK(got == cases[i].want, what);
	}
}

int main(void)
{
	test_cookie_match();
	test_simple_head();
	test_rewrite();
	test_framing();
	test_bare_lf();
	test_line_ends();
	test_pins();
	test_incremental();
	test_chunk_scan();
	test_responses();
	test_error_responses();
	test_plain_agrees();
	test_plain_pipeline();
	test_keep_alive();
	test_strict();
	test_absolute_form();
	return tap_done();
}
