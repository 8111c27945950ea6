/*
 * common.c — the helpers of common.h. What a head must hold is written here
 * from SPEC §5 and RFC 9110/9112 directly, not from src/http1/http.c, so
 * that the two are checked against each other.
 */
#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "common.h"

static const uint8_t *cur_data;
static size_t cur_size;

void fuzz_input(const uint8_t *data, size_t size)
{
	cur_data = data;
	cur_size = size;
}

void fuzz_print_escaped(const char *label, const char *s, size_t n)
{
	fprintf(stderr, "%s (%zu bytes): ", label, n);
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c >= 0x20 && c < 0x7f && c != '\\')
			fputc(c, stderr);
		else if (c == '\\')
			fputs("\\\\", stderr);
		else if (c == '\r')
			fputs("\\r", stderr);
		else if (c == '\n')
			fputs("\\n", stderr);
		else
			fprintf(stderr, "\\x%02x", c);
	}
	fputc('\n', stderr);
}

void fuzz_fail(const char *file, int line, const char *cond, const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "\n==fuzz== %s:%d: check failed: %s\n==fuzz== ", file, line, cond);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	if (cur_data)
		fuzz_print_escaped("==fuzz== input", (const char *)cur_data,
		                   cur_size < 4096 ? cur_size : 4096);
	fflush(stderr);
	abort();
}

/* ---- the generator ------------------------------------------------------ */

void fuzz_rng_init(struct fuzz_rng *r, const uint8_t *data, size_t n, uint64_t salt)
{
	uint64_t h = 0xcbf29ce484222325ull ^ salt; /* FNV-1a */
	for (size_t i = 0; i < n; i++)
		h = (h ^ data[i]) * 0x100000001b3ull;
	r->s = h ? h : 0x9e3779b97f4a7c15ull;
}

uint64_t fuzz_rng_next(struct fuzz_rng *r)
{
	r->s ^= r->s << 13;
	r->s ^= r->s >> 7;
	r->s ^= r->s << 17;
	return r->s;
}

size_t fuzz_rng_below(struct fuzz_rng *r, size_t n)
{
	return n ? (size_t)(fuzz_rng_next(r) % n) : 0;
}

/* ---- reads -------------------------------------------------------------- */

void fuzz_reads_whole(struct fuzz_reads *r)
{
	r->step = 0;
	r->ncuts = 0;
}

void fuzz_reads_step(struct fuzz_reads *r, size_t step)
{
	r->step = step;
	r->ncuts = 0;
}

void fuzz_reads_random(struct fuzz_reads *r, struct fuzz_rng *rng, size_t len)
{
	size_t at = 0;

	r->step = 0;
	r->ncuts = 0;
	while (r->ncuts < FUZZ_MAX_CUTS && at < len) {
		/* mostly short reads, sometimes one byte, sometimes long */
		size_t k = fuzz_rng_below(rng, 4) == 0 ? 1 : 1 + fuzz_rng_below(rng, 1 + len / 4);
		at += k;
		if (at >= len)
			break;
		r->cuts[r->ncuts++] = at;
	}
}

/* ---- streams ------------------------------------------------------------ */

void fuzz_stream_init(struct fuzz_stream *s, llhttp_type_t type, const char *buf, size_t len,
                      const struct fuzz_reads *reads)
{
	http_msg_init(&s->m, type, NULL);
	s->buf = buf;
	s->len = len;
	s->pos = s->avail = s->cut = 0;
	s->reads = reads;
}

/* The next read arrives: false at the end of the stream. */
static bool receive(struct fuzz_stream *s)
{
	const struct fuzz_reads *r = s->reads;

	if (s->avail == s->len)
		return false;
	if (r->step) {
		s->avail = s->len - s->avail > r->step ? s->avail + r->step : s->len;
		return true;
	}
	while (s->cut < r->ncuts && r->cuts[s->cut] <= s->avail)
		s->cut++;
	s->avail = s->cut < r->ncuts && r->cuts[s->cut] < s->len ? r->cuts[s->cut] : s->len;
	return true;
}

/* One call of http_msg_feed on what was received and not parsed yet. */
static enum http_step feed(struct fuzz_stream *s)
{
	size_t n = s->avail - s->pos, k = (size_t)-1;
	enum http_step st = http_msg_feed(&s->m, s->buf + s->pos, n, &k);

	FUZZ_ASSERT(k <= n, "feed of %zu bytes at %zu: %zu consumed", n, s->pos, k);
	FUZZ_ASSERT(st != HTTP_NEED_MORE || k == n,
	            "feed of %zu bytes at %zu: needs more after consuming only %zu", n, s->pos, k);
	if (st == HTTP_ERROR)
		FUZZ_ASSERT(s->m.error_status == 400 || s->m.error_status == 413 ||
		                    s->m.error_status == 431,
		            "an error with status %d", s->m.error_status);
	s->pos += k;
	return st;
}

enum http_step fuzz_stream_head(struct fuzz_stream *s)
{
	size_t start = s->pos;

	/* As the proxy does before each request and each response. */
	http_msg_reset(&s->m);
	http_msg_begin(&s->m, s->buf, (uint32_t)start);
	for (;;) {
		if (s->pos == s->avail && !receive(s))
			return HTTP_NEED_MORE;
		enum http_step st = feed(s);
		if (st == HTTP_NEED_MORE)
			continue;
		FUZZ_ASSERT(st == HTTP_HEAD_DONE || st == HTTP_ERROR, "a head ended with step %d", st);
		if (st == HTTP_HEAD_DONE) {
			/* after the empty lines before it, if any */
			size_t at = start;
			while (at < s->m.head.start && s->buf[at] == '\r' && s->buf[at + 1] == '\n')
				at += 2;
			FUZZ_ASSERT(s->m.head.start == at && s->m.head.end == s->pos,
			            "head recorded at [%u, %u), read at [%zu, %zu)", s->m.head.start,
			            s->m.head.end, start, s->pos);
		}
		return st;
	}
}

enum http_step fuzz_stream_body(struct fuzz_stream *s)
{
	for (;;) {
		enum http_step st = feed(s);
		if (st != HTTP_NEED_MORE) {
			FUZZ_ASSERT(st == HTTP_MSG_DONE || st == HTTP_UPGRADE || st == HTTP_ERROR,
			            "a body ended with step %d", st);
			return st;
		}
		if (!receive(s))
			return HTTP_NEED_MORE;
	}
}

/* ---- heads -------------------------------------------------------------- */

const char *fuzz_head_diff(const struct http_head *a, const struct http_head *b)
{
	if (a->start != b->start || a->end != b->end)
		return "start or end";
	if (a->nhdrs != b->nhdrs)
		return "number of headers";
	if (a->conn_tokens != b->conn_tokens)
		return "Connection tokens";
	if (a->url != b->url || a->url_len != b->url_len)
		return "target";
	/* (the rest of it is left as it was for other targets) */
	if (a->url_skip != b->url_skip ||
	    (a->url_skip && (a->authority != b->authority || a->authority_len != b->authority_len ||
	                     a->empty_path != b->empty_path)))
		return "absolute-form record";
	if (a->nhost != b->nhost)
		return "Host count";
	for (uint32_t i = 0; i < a->nhdrs; i++) {
		const struct http_hdr *x = &a->hdrs[i], *y = &b->hdrs[i];
		if (x->name != y->name || x->name_len != y->name_len)
			return "a header name";
		if (x->value != y->value || x->value_len != y->value_len)
			return "a header value";
		if (x->kind != y->kind)
			return "a header kind";
		if (x->drop != y->drop)
			return "a header drop mark";
	}
	return NULL;
}

bool fuzz_is_token(const char *name, size_t len)
{
	static const char extra[] = "!#$%&'*+-.^_`|~";

	if (!len)
		return false;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)name[i];
		bool alnum = (c >= '0' && c <= '9') || ((c | 0x20) >= 'a' && (c | 0x20) <= 'z');
		if (!alnum && !(c && strchr(extra, c)))
			return false;
	}
	return true;
}

static const struct {
	const char *name;
	enum http_hdr_kind kind;
} kinds[] = {
        {"connection", HK_CONNECTION},
        {"keep-alive", HK_KEEP_ALIVE},
        {"proxy-connection", HK_PROXY_CONNECTION},
        {"te", HK_TE},
        {"upgrade", HK_UPGRADE},
        {"transfer-encoding", HK_TRANSFER_ENCODING},
        {"content-length", HK_CONTENT_LENGTH},
        {"host", HK_HOST},
        {"expect", HK_EXPECT},
        {"x-forwarded-for", HK_X_FORWARDED_FOR},
        {"x-real-ip", HK_X_REAL_IP},
        {"x-forwarded-proto", HK_X_FORWARDED_PROTO},
};

static enum http_hdr_kind kind_of(const char *name, size_t len)
{
	for (size_t i = 0; i < sizeof(kinds) / sizeof(kinds[0]); i++)
		if (strlen(kinds[i].name) == len && strncasecmp(name, kinds[i].name, len) == 0)
			return kinds[i].kind;
	return HK_OTHER;
}

static bool is_blank(char c)
{
	return c == ' ' || c == '\t';
}

static bool is_hex(char c)
{
	return (c >= '0' && c <= '9') || ((c | 0x20) >= 'a' && (c | 0x20) <= 'f');
}

/* Calls fn for each word of a value: words are separated by commas and
 * blanks. */
static void each_word(const char *v, size_t len, void (*fn)(const char *w, size_t n, void *arg),
                      void *arg)
{
	size_t i = 0;
	while (i < len) {
		while (i < len && (is_blank(v[i]) || v[i] == ','))
			i++;
		size_t s = i;
		while (i < len && !is_blank(v[i]) && v[i] != ',')
			i++;
		if (i > s)
			fn(v + s, i - s, arg);
	}
}

static void add_token(const char *w, size_t n, void *arg)
{
	uint32_t *t = arg;
	if (n == 5 && strncasecmp(w, "close", 5) == 0)
		*t |= HTTP_CONN_CLOSE;
	else if (n == 10 && strncasecmp(w, "keep-alive", 10) == 0)
		*t |= HTTP_CONN_KEEP_ALIVE;
	else if (n == 7 && strncasecmp(w, "upgrade", 7) == 0)
		*t |= HTTP_CONN_UPGRADE;
	else
		*t |= HTTP_CONN_OTHER;
}

void fuzz_check_head(const struct http_msg *m, const char *buf, size_t len)
{
	const struct http_head *h = &m->head;
	uint32_t tokens = 0;
	int nhost = 0;
	size_t at;

	FUZZ_ASSERT(m->base == buf, "the head refers to another block");
	FUZZ_ASSERT(h->start < h->end && h->end <= len, "head at [%u, %u) of %zu bytes", h->start,
	            h->end, len);
	FUZZ_ASSERT(h->nhdrs <= HTTP_MAX_HEADERS, "%u headers", h->nhdrs);
	if (m->parser.type == HTTP_REQUEST)
		FUZZ_ASSERT(h->url >= h->start && h->url + h->url_len <= h->end,
		            "target at [%u, +%u) out of the head [%u, %u)", h->url, h->url_len, h->start,
		            h->end);
	at = h->start;
	for (uint32_t i = 0; i < h->nhdrs; i++) {
		const struct http_hdr *hd = &h->hdrs[i];
		FUZZ_ASSERT(hd->name >= at && (size_t)hd->name + hd->name_len <= h->end,
		            "header %u: name at [%u, +%u), after %zu in [%u, %u)", i, hd->name,
		            hd->name_len, at, h->start, h->end);
		at = (size_t)hd->name + hd->name_len;
		FUZZ_ASSERT((size_t)hd->value + hd->value_len <= h->end, "header %u: value at [%u, +%u)",
		            i, hd->value, hd->value_len);
		if (hd->value_len) {
			FUZZ_ASSERT(hd->value > at, "header %u: value at %u inside its name", i,
			            hd->value);
			at = (size_t)hd->value + hd->value_len;
			FUZZ_ASSERT(!is_blank(buf[at - 1]), "header %u: value ends with a blank", i);
		}
		FUZZ_ASSERT(hd->kind == kind_of(buf + hd->name, hd->name_len),
		            "header %u: kind %u for its name", i, hd->kind);
		if (hd->kind == HK_HOST)
			nhost++;
		if (hd->kind == HK_CONNECTION || hd->kind == HK_PROXY_CONNECTION)
			each_word(buf + hd->value, hd->value_len, add_token, &tokens);
	}
	FUZZ_ASSERT(h->nhost == nhost, "Host counted %d times, %d here", h->nhost, nhost);
	FUZZ_ASSERT(h->conn_tokens == tokens, "Connection tokens %#x, %#x here", h->conn_tokens,
	            tokens);
}

struct named {
	const char *buf;
	const struct http_hdr *hd;
	bool found;
};

static void names_it(const char *w, size_t n, void *arg)
{
	struct named *x = arg;
	if (n == x->hd->name_len && strncasecmp(w, x->buf + x->hd->name, n) == 0)
		x->found = true;
}

/* Whether a Connection header names hd. */
static bool listed(const struct http_head *h, const char *buf, const struct http_hdr *hd)
{
	struct named x = {buf, hd, false};
	for (uint32_t i = 0; i < h->nhdrs; i++)
		if (h->hdrs[i].kind == HK_CONNECTION || h->hdrs[i].kind == HK_PROXY_CONNECTION)
			each_word(buf + h->hdrs[i].value, h->hdrs[i].value_len, names_it, &x);
	return x.found;
}

static bool digits(const char *s, size_t n)
{
	if (!n)
		return false;
	for (size_t i = 0; i < n; i++)
		if (s[i] < '0' || s[i] > '9')
			return false;
	return true;
}

/* RFC 3986: unreserved and sub-delims. */
static bool uri_plain(unsigned char c)
{
	return (c >= '0' && c <= '9') || ((c | 0x20) >= 'a' && (c | 0x20) <= 'z') ||
	       (c && strchr("-._~!$&'()*+,;=", c));
}

/* Whether s[0, n) is path and query bytes (RFC 3986 pchar, "/" and "?"),
 * percent-encodings whole. */
static bool path_query_ok(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		if (uri_plain(c) || c == ':' || c == '@' || c == '/' || c == '?')
			continue;
		if (c != '%' || i + 2 >= n || !is_hex(s[i + 1]) || !is_hex(s[i + 2]))
			return false;
		i += 2;
	}
	return true;
}

/* Whether v[0, n) is uri-host [":" port] (RFC 9110 §7.2): a reg-name or
 * IPv4 address of unreserved, sub-delims other than "," and
 * percent-encodings, or an IP literal in brackets; digits after a colon.
 * Empty is valid (RFC 9112 §3.2: a target without an authority); the
 * caller knows when it is not. */
static bool host_value_ok(const char *v, size_t n)
{
	size_t i = 0;
	if (!n)
		return true;
	if (v[0] == '[') {
		for (i = 1; i < n && v[i] != ']'; i++)
			if (!is_hex(v[i]) && v[i] != ':' && v[i] != '.')
				return false;
		if (i == n || i == 1)
			return false;
		i++;
	} else {
		for (; i < n && v[i] != ':'; i++) {
			unsigned char c = (unsigned char)v[i];
			if (uri_plain(c) && c != ',')
				continue;
			if (c != '%' || i + 2 >= n || !is_hex(v[i + 1]) || !is_hex(v[i + 2]))
				return false;
			i += 2;
		}
		if (i == 0)
			return false;
	}
	if (i < n && v[i++] != ':')
		return false;
	return i == n || digits(v + i, n - i);
}

void fuzz_origin_form(const struct http_msg *m, const char *buf, size_t *skip, bool *slash)
{
	const char *t = buf + m->head.url;
	size_t n = m->head.url_len, k = 0;

	*skip = 0;
	*slash = false;
	if (n && (t[0] == '/' || t[0] == '*'))
		return;
	if (n > 7 && strncasecmp(t, "http://", 7) == 0)
		k = 7;
	else if (n > 8 && strncasecmp(t, "https://", 8) == 0)
		k = 8;
	while (k && k < n && t[k] != '/' && t[k] != '?')
		k++;
	*skip = k;
	*slash = k == n || t[k] == '?';
}

/* Adds the codings of a Transfer-Encoding value to the list: *n of them,
 * whether the last one seen is chunked, whether any is not a bare token. */
struct codings {
	size_t n;
	bool last_chunked, odd;
};

static void add_coding(const char *w, size_t n, void *arg)
{
	struct codings *c = arg;
	c->n++;
	c->last_chunked = n == 7 && strncasecmp(w, "chunked", 7) == 0;
	if (!fuzz_is_token(w, n))
		c->odd = true;
}

/* Whether the message's Transfer-Encoding lines, read as one list, are
 * chunked alone (empty elements aside, RFC 9110 §5.6.1); *present says
 * whether it has one at all. Elements are split at commas only: "gzip
 * chunked" is one element, not two codings. */
static bool te_chunked_alone(const struct http_head *h, const char *buf, bool *present)
{
	struct codings c = {0};

	*present = false;
	for (uint32_t i = 0; i < h->nhdrs; i++) {
		const struct http_hdr *hd = &h->hdrs[i];
		if (hd->kind != HK_TRANSFER_ENCODING)
			continue;
		*present = true;
		const char *v = buf + hd->value;
		size_t at = 0;
		while (at <= hd->value_len) {
			const char *comma = memchr(v + at, ',', hd->value_len - at);
			size_t e = comma ? (size_t)(comma - v) : hd->value_len, s = at, f = e;
			while (s < f && is_blank(v[s]))
				s++;
			while (f > s && is_blank(v[f - 1]))
				f--;
			if (f > s)
				add_coding(v + s, f - s, &c);
			at = e + 1;
		}
	}
	return *present && c.n == 1 && c.last_chunked && !c.odd;
}

void fuzz_check_accepted(const struct http_msg *m, const char *buf)
{
	const struct http_head *h = &m->head;
	bool request = m->parser.type == HTTP_REQUEST;
	int version = http_msg_version(m);
	const char *p = buf + h->start, *end = buf + h->end;
	size_t skip = 0;
	bool slash = false;

	FUZZ_ASSERT(version == 10 || version == 11, "version %d accepted", version);
	/* every line ends with CRLF, the last one is empty; none begins with
	 * a blank */
	for (const char *q = p; q < end; q++) {
		FUZZ_ASSERT(*q != '\r' || (q + 1 < end && q[1] == '\n'), "a bare CR at %zu accepted",
		            (size_t)(q - buf));
		FUZZ_ASSERT(*q != '\n' || (q > p && q[-1] == '\r'), "a bare LF at %zu accepted",
		            (size_t)(q - buf));
		FUZZ_ASSERT(!(q == p || q[-1] == '\n') || !is_blank(*q),
		            "a line beginning with a blank at %zu accepted", (size_t)(q - buf));
	}
	FUZZ_ASSERT(end - p >= 4 && memcmp(end - 4, "\r\n\r\n", 4) == 0,
	            "the head does not end with an empty line");

	/* the start line */
	if (request) {
		const char *t = buf + h->url, *te = t + h->url_len;
		int method = http_msg_method(m);
		FUZZ_ASSERT(method != HTTP_CONNECT, "CONNECT accepted");
		FUZZ_ASSERT(t > p + 1 && fuzz_is_token(p, (size_t)(t - 1 - p)) && t[-1] == ' ',
		            "request line: the method");
		FUZZ_ASSERT(h->url_len > 0, "request line: an empty target");
		fuzz_origin_form(m, buf, &skip, &slash);
		if (t[0] == '*') {
			FUZZ_ASSERT(h->url_len == 1 && method == HTTP_OPTIONS,
			            "request line: an asterisk-form target, not OPTIONS *");
		} else if (t[0] != '/') {
			/* absolute-form: http or https, an authority that is a
			 * Host value, then path and query */
			size_t a = tolower((unsigned char)t[4]) == 's' ? 8 : 7;
			FUZZ_ASSERT(skip > a && (strncasecmp(t, "http://", 7) == 0 ||
			                         strncasecmp(t, "https://", 8) == 0),
			            "request line: a target that is no origin-form and no http(s) URI");
			FUZZ_ASSERT(host_value_ok(t + a, skip - a),
			            "request line: the target's authority is no Host value");
		}
		FUZZ_ASSERT(path_query_ok(t + skip, h->url_len - skip) || (t[0] == '*'),
		            "request line: a byte RFC 3986 leaves out in the target");
		FUZZ_ASSERT(end - te >= 11 && te[0] == ' ' && memcmp(te + 1, "HTTP/1.", 7) == 0 &&
		                    te[8] == '0' + version % 10 && te[9] == '\r',
		            "request line: the version");
		p = te + 11;
	} else {
		int status = http_msg_status(m);
		FUZZ_ASSERT(status >= 100 && status <= 599, "status %d accepted", status);
		FUZZ_ASSERT(memcmp(p, "HTTP/1.", 7) == 0 && p[7] == '0' + version % 10 && p[8] == ' ',
		            "status line: the version");
		/* (the SP before an empty reason phrase may be left out: llhttp
		 * and most clients take that, and it is relayed as it is) */
		FUZZ_ASSERT(p[9] >= '0' && p[9] <= '9' && p[10] >= '0' && p[10] <= '9' &&
		                    p[11] >= '0' && p[11] <= '9' && (p[12] == ' ' || p[12] == '\r') &&
		                    (p[9] - '0') * 100 + (p[10] - '0') * 10 + (p[11] - '0') == status,
		            "status line: the status code");
		p = (const char *)memchr(p, '\r', (size_t)(end - p)) + 2;
		for (const char *q = buf + h->start + 12; q < p - 2; q++)
			FUZZ_ASSERT((unsigned char)*q >= ' ' ? *q != 0x7f : *q == '\t',
			            "status line: control byte %#x in the reason", (unsigned char)*q);
	}

	/* each field line: name ":" OWS value OWS CRLF, the whole head */
	int ncl = 0;
	const struct http_hdr *cl = NULL;
	for (uint32_t i = 0; i < h->nhdrs; i++) {
		const struct http_hdr *hd = &h->hdrs[i];
		const char *name = buf + hd->name, *v = buf + hd->value;
		FUZZ_ASSERT(name == p, "header %u starts at %u, its line at %zu", i, hd->name,
		            (size_t)(p - buf));
		FUZZ_ASSERT(fuzz_is_token(name, hd->name_len), "header %u: its name is not a token", i);
		p = name + hd->name_len;
		FUZZ_ASSERT(*p == ':', "header %u: no colon after the name", i);
		p++;
		while (is_blank(*p))
			p++;
		if (hd->value_len) {
			FUZZ_ASSERT(p == v, "header %u: the value does not start after the blanks", i);
			for (uint32_t j = 0; j < hd->value_len; j++)
				FUZZ_ASSERT((unsigned char)v[j] >= ' ' ? v[j] != 0x7f : v[j] == '\t',
				            "header %u: control byte %#x in the value", i,
				            (unsigned char)v[j]);
			p = v + hd->value_len;
		}
		while (is_blank(*p))
			p++;
		FUZZ_ASSERT(p[0] == '\r' && p[1] == '\n', "header %u: the line goes on after the value",
		            i);
		p += 2;

		if (hd->kind == HK_CONTENT_LENGTH) {
			FUZZ_ASSERT(digits(v, hd->value_len), "Content-Length is not digits");
			FUZZ_ASSERT(!cl || (cl->value_len == hd->value_len &&
			                    memcmp(buf + cl->value, v, hd->value_len) == 0),
			            "differing Content-Lengths accepted");
			cl = hd;
			ncl++;
		}
		if (hd->kind == HK_HOST && request)
			FUZZ_ASSERT(host_value_ok(v, hd->value_len) && (hd->value_len || !skip),
			            "an invalid Host accepted");

		bool drop;
		switch (hd->kind) {
		case HK_CONNECTION:
		case HK_KEEP_ALIVE:
		case HK_PROXY_CONNECTION:
		case HK_TE:
		case HK_TRANSFER_ENCODING: /* one chunked line stands for them */
			drop = true;
			break;
		case HK_X_REAL_IP:
		case HK_X_FORWARDED_PROTO:
		case HK_X_FORWARDED_FOR:
			drop = request;
			break;
		case HK_HOST: /* the authority of an absolute-form target stands for it */
			drop = request && skip;
			break;
		case HK_UPGRADE:
			drop = request ? !http_msg_upgrade(m) : http_msg_status(m) != 101;
			break;
		case HK_OTHER:
			drop = listed(h, buf, hd);
			break;
		default:
			drop = false;
		}
		FUZZ_ASSERT(hd->drop == drop, "header %u (%.*s) %s", i, (int)hd->name_len, name,
		            drop ? "kept" : "dropped");
	}
	FUZZ_ASSERT(p == end - 2, "the head goes on after its last header");

	/* framing (RFC 9112 §6) */
	bool te = false, chunked_alone = te_chunked_alone(h, buf, &te);
	FUZZ_ASSERT(!te || chunked_alone, "a Transfer-Encoding other than chunked alone accepted");
	FUZZ_ASSERT(!te || !cl, "both Transfer-Encoding and Content-Length accepted");
	FUZZ_ASSERT(!te || version == 11, "Transfer-Encoding in an HTTP/1.0 message accepted");
	if (request)
		FUZZ_ASSERT(version == 10 ? h->nhost <= 1 : h->nhost == 1, "%d Host headers in HTTP/1.%d",
		            h->nhost, version % 10);
	FUZZ_ASSERT(http_msg_chunked(m) == te, "chunked %d, Transfer-Encoding %d",
	            http_msg_chunked(m), te);
	if (cl && cl->value_len < 16) {
		uint64_t n = 0;
		for (uint32_t j = 0; j < cl->value_len; j++)
			n = n * 10 + (uint64_t)(buf[cl->value + j] - '0');
		FUZZ_ASSERT(http_msg_content_length(m) == n, "Content-Length %llu, %llu read",
		            (unsigned long long)n, (unsigned long long)http_msg_content_length(m));
	}
	(void)ncl;
}

void fuzz_check_runs(const struct http_msg *m, const char *buf)
{
	const struct http_head *h = &m->head;
	struct http_run runs[HTTP_MAX_RUNS];
	size_t n = http_head_runs(h, runs), got_len = 0, want_len = 0;
	uint32_t body = h->end - 2;
	char *got = malloc(h->end - h->start + 1), *want = malloc(h->end - h->start + 1);

	FUZZ_ASSERT(n <= HTTP_MAX_RUNS, "%zu runs", n);
	for (size_t i = 0; i < n; i++) {
		FUZZ_ASSERT(runs[i].len > 0 && runs[i].off >= h->start &&
		                    runs[i].off + runs[i].len <= body,
		            "run %zu at [%u, +%u) out of the head [%u, %u)", i, runs[i].off,
		            runs[i].len, h->start, body);
		memcpy(got + got_len, buf + runs[i].off, runs[i].len);
		got_len += runs[i].len;
	}

	/* the start line, an absolute-form target in origin-form */
	uint32_t line_end = h->nhdrs ? h->hdrs[0].name : body;
	size_t skip = 0;
	bool slash = false;
	if (m->parser.type == HTTP_REQUEST)
		fuzz_origin_form(m, buf, &skip, &slash);
	if (skip) {
		memcpy(want, buf + h->start, h->url - h->start);
		want_len = h->url - h->start;
		if (slash)
			want[want_len++] = '/';
		memcpy(want + want_len, buf + h->url + skip, line_end - h->url - skip);
		want_len += line_end - h->url - skip;
	} else {
		memcpy(want, buf + h->start, line_end - h->start);
		want_len = line_end - h->start;
	}
	/* then each kept header line */
	for (uint32_t i = 0; i < h->nhdrs; i++) {
		uint32_t from = h->hdrs[i].name, to = i + 1 < h->nhdrs ? h->hdrs[i + 1].name : body;
		if (h->hdrs[i].drop)
			continue;
		memcpy(want + want_len, buf + from, to - from);
		want_len += to - from;
	}
	if (got_len != want_len || memcmp(got, want, got_len) != 0) {
		fuzz_print_escaped("==fuzz== forwarded", got, got_len);
		fuzz_print_escaped("==fuzz== expected", want, want_len);
		FUZZ_ASSERT(0, "the runs are not the start line and the kept header lines");
	}
	free(got);
	free(want);
}

/* ---- JSON --------------------------------------------------------------- */

struct json {
	const unsigned char *p, *end;
	const char *why;
};

static bool json_fail(struct json *j, const char *why)
{
	if (!j->why)
		j->why = why;
	return false;
}

static void json_ws(struct json *j)
{
	while (j->p < j->end && (*j->p == ' ' || *j->p == '\t' || *j->p == '\n' || *j->p == '\r'))
		j->p++;
}

static bool json_lit(struct json *j, const char *lit)
{
	size_t n = strlen(lit);
	if ((size_t)(j->end - j->p) < n || memcmp(j->p, lit, n) != 0)
		return json_fail(j, "a bad literal");
	j->p += n;
	return true;
}

static bool json_string(struct json *j)
{
	j->p++; /* the quote */
	while (j->p < j->end) {
		unsigned char c = *j->p;
		if (c == '"') {
			j->p++;
			return true;
		}
		if (c < 0x20)
			return json_fail(j, "a control byte in a string");
		if (c == '\\') {
			if (j->end - j->p < 2)
				return json_fail(j, "a string ends in an escape");
			unsigned char e = j->p[1];
			if (e == 'u') {
				if (j->end - j->p < 6)
					return json_fail(j, "a short \\u escape");
				for (int i = 2; i < 6; i++) {
					unsigned char h = j->p[i] | 0x20;
					if (!((h >= '0' && h <= '9') || (h >= 'a' && h <= 'f')))
						return json_fail(j, "a bad \\u escape");
				}
				j->p += 6;
				continue;
			}
			if (!strchr("\"\\/bfnrt", e) || !e)
				return json_fail(j, "a bad escape");
			j->p += 2;
			continue;
		}
		if (c < 0x80) {
			j->p++;
			continue;
		}
		/* UTF-8: the shortest form, no surrogates, at most U+10FFFF */
		size_t k = c >= 0xc2 && c <= 0xdf ? 2 : c >= 0xe0 && c <= 0xef ? 3
		           : c >= 0xf0 && c <= 0xf4                         ? 4
		                                                            : 0;
		if (!k || (size_t)(j->end - j->p) < k)
			return json_fail(j, "invalid UTF-8 in a string");
		uint32_t cp = c & (0x7f >> k);
		for (size_t i = 1; i < k; i++) {
			if ((j->p[i] & 0xc0) != 0x80)
				return json_fail(j, "invalid UTF-8 in a string");
			cp = (cp << 6) | (j->p[i] & 0x3f);
		}
		if ((k == 3 && cp < 0x800) || (k == 4 && (cp < 0x10000 || cp > 0x10ffff)) ||
		    (cp >= 0xd800 && cp <= 0xdfff))
			return json_fail(j, "invalid UTF-8 in a string");
		j->p += k;
	}
	return json_fail(j, "an unterminated string");
}

static bool json_number(struct json *j)
{
	const unsigned char *s = j->p;
	if (j->p < j->end && *j->p == '-')
		j->p++;
	if (j->p < j->end && *j->p == '0')
		j->p++;
	else if (j->p < j->end && *j->p >= '1' && *j->p <= '9')
		while (j->p < j->end && *j->p >= '0' && *j->p <= '9')
			j->p++;
	else
		return json_fail(j, "a bad number");
	if (j->p < j->end && *j->p == '.') {
		j->p++;
		if (j->p == j->end || *j->p < '0' || *j->p > '9')
			return json_fail(j, "a bad fraction");
		while (j->p < j->end && *j->p >= '0' && *j->p <= '9')
			j->p++;
	}
	if (j->p < j->end && (*j->p | 0x20) == 'e') {
		j->p++;
		if (j->p < j->end && (*j->p == '+' || *j->p == '-'))
			j->p++;
		if (j->p == j->end || *j->p < '0' || *j->p > '9')
			return json_fail(j, "a bad exponent");
		while (j->p < j->end && *j->p >= '0' && *j->p <= '9')
			j->p++;
	}
	return j->p > s;
}

static bool json_value(struct json *j, int depth)
{
	if (depth > 64)
		return json_fail(j, "nested too deep");
	json_ws(j);
	if (j->p == j->end)
		return json_fail(j, "a value is missing");
	switch (*j->p) {
	case '{':
	case '[': {
		unsigned char close = *j->p == '{' ? '}' : ']';
		bool object = close == '}';
		j->p++;
		json_ws(j);
		if (j->p < j->end && *j->p == close) {
			j->p++;
			return true;
		}
		for (;;) {
			if (object) {
				json_ws(j);
				if (j->p == j->end || *j->p != '"' || !json_string(j))
					return json_fail(j, "an object key is not a string");
				json_ws(j);
				if (j->p == j->end || *j->p != ':')
					return json_fail(j, "no colon after a key");
				j->p++;
			}
			if (!json_value(j, depth + 1))
				return false;
			json_ws(j);
			if (j->p < j->end && *j->p == ',') {
				j->p++;
				continue;
			}
			if (j->p < j->end && *j->p == close) {
				j->p++;
				return true;
			}
			return json_fail(j, "no comma or end after a member");
		}
	}
	case '"':
		return json_string(j);
	case 't':
		return json_lit(j, "true");
	case 'f':
		return json_lit(j, "false");
	case 'n':
		return json_lit(j, "null");
	default:
		return json_number(j);
	}
}

bool fuzz_json_valid(const char *s, size_t n, const char **why)
{
	struct json j = {(const unsigned char *)s, (const unsigned char *)s + n, NULL};
	bool ok = json_value(&j, 0);
	json_ws(&j);
	if (ok && j.p != j.end)
		ok = json_fail(&j, "bytes after the value");
	*why = j.why;
	return ok;
}
