/*
 * http.c — HTTP/1.x heads parsed in place, the framing rules of the proxy
 * (what is rejected rather than forwarded) and the hop-by-hop header rules.
 *
 * A head of the plain form (see http.h) that arrives whole is read in one
 * pass here, and its Content-Length body counted down; every other message
 * goes to llhttp from its first byte.
 *
 * llhttp is strict about most of it: bare CR or LF after header values,
 * control bytes in names and values, duplicate or conflicting
 * Content-Length, both Content-Length and Transfer-Encoding, bad chunk sizes.
 * What it lets through and the proxy must not forward — obs-fold lines (also
 * after an empty value), a bare LF ending the start line or the head, empty
 * or non-token field names, bytes between chunk data and its CRLF, chunk
 * extensions and trailer lines off their grammar, framing and hop-by-hop
 * fields in trailers, a Transfer-Encoding other than chunked once and last
 * or in HTTP/1.0, request targets with bytes RFC 3986 leaves out, invalid
 * Host values, status codes outside 100-599 — is checked here, as strictly
 * as RFC 9110 and 9112 allow. The parser is paused at the end of every head
 * and every message so that the caller sees exactly where one ends and the
 * next begins.
 */
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/types.h>

#ifdef __SSE2__
#include <emmintrin.h>
#endif

#include "core/config.h"
#include "http1/http.h"

enum { PAUSE_NONE, PAUSE_HEAD, PAUSE_MSG };

#define TRAILER_FIELD "a framing, hop-by-hop or proxy field in the trailer section"

/* Byte classes: TCHAR, a header name character (RFC 9110 §5.6.2); TARGET, a
 * request-target character taken as it is (RFC 3986 unreserved, sub-delims,
 * ":@/?"; '%' only as the start of a percent-encoding, checked apart); and
 * HOST, a character of a host name (RFC 3986 reg-name: unreserved and
 * sub-delims, but not ',', which would make Host a list). */
enum { TCHAR = 1, TARGET = 2, HOST = 4 };
static const uint8_t byte_class[256] = {
	0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
	0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
	0, 7, 0, 1, 7, 1, 7, 7, 6, 6, 7, 7, 2, 7, 7, 2,
	7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 2, 6, 0, 6, 0, 2,
	2, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7,
	7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 0, 0, 0, 1, 7,
	1, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7,
	7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 0, 1, 0, 7, 0,
	/* 0x80-0xff: none */
};

static inline bool in_class(unsigned char c, unsigned cls)
{
	return (byte_class[c] & cls) != 0;
}

static bool is_tchar(unsigned char c)
{
	return in_class(c, TCHAR);
}

bool http_name_eq(const char *name, size_t len, const char *want)
{
	return strlen(want) == len && strncasecmp(name, want, len) == 0;
}

/* Whether the n (2 or more) bytes at s are `lower`, a lowercase name of
 * letters and '-', in any case: a word at a time, ORing in the case bit.
 * Exact where s holds no CR (names, and values, which end at one): only a
 * letter ORs into a lowercase letter, and only '-' or CR into '-'. Once
 * inlined with a literal, the literal's words are constants. */
static inline __attribute__((always_inline)) bool token_eq(const char *s, const char *lower,
                                                          size_t n)
{
	if (n >= 8) {
		uint64_t a, b;
		for (size_t i = 0;; i += 8) {
			if (i + 8 > n)
				i = n - 8; /* the last word overlaps the one before */
			memcpy(&a, s + i, 8);
			memcpy(&b, lower + i, 8);
			if ((a | 0x2020202020202020ull) != b)
				return false;
			if (i + 8 == n)
				return true;
		}
	}
	if (n >= 4) {
		uint32_t a, b, c, d;
		memcpy(&a, s, 4);
		memcpy(&b, lower, 4);
		memcpy(&c, s + n - 4, 4);
		memcpy(&d, lower + n - 4, 4);
		return (a | 0x20202020u) == b && (c | 0x20202020u) == d;
	}
	uint16_t a, b;
	memcpy(&a, s, 2);
	memcpy(&b, lower, 2);
	return (a | 0x2020u) == b && (n == 2 || (s[2] | 0x20) == lower[2]);
}

#define IS(lit) token_eq(name, lit, sizeof(lit) - 1)

/* The kind of a header name (a token): its length leaves at most two
 * candidates. */
static enum http_hdr_kind classify(const char *name, size_t len)
{
	switch (len) {
	case 2:
		return IS("te") ? HK_TE : HK_OTHER;
	case 4:
		return IS("host") ? HK_HOST : HK_OTHER;
	case 6:
		return IS("expect") ? HK_EXPECT : HK_OTHER;
	case 7:
		return IS("upgrade") ? HK_UPGRADE : HK_OTHER;
	case 9:
		return IS("x-real-ip") ? HK_X_REAL_IP : HK_OTHER;
	case 10:
		return IS("connection") ? HK_CONNECTION : IS("keep-alive") ? HK_KEEP_ALIVE : HK_OTHER;
	case 14:
		return IS("content-length") ? HK_CONTENT_LENGTH : HK_OTHER;
	case 15:
		return IS("x-forwarded-for") ? HK_X_FORWARDED_FOR : HK_OTHER;
	case 16:
		return IS("proxy-connection") ? HK_PROXY_CONNECTION : HK_OTHER;
	case 17:
		return IS("transfer-encoding")   ? HK_TRANSFER_ENCODING
		       : IS("x-forwarded-proto") ? HK_X_FORWARDED_PROTO
		                                 : HK_OTHER;
	default:
		return HK_OTHER;
	}
}

#undef IS

static struct http_msg *msg_of(llhttp_t *p)
{
	return p->data;
}

static int fail(struct http_msg *m, int status, const char *reason)
{
	m->error_status = status;
	m->error_reason = reason;
	return HPE_USER;
}

static int on_message_begin(llhttp_t *p)
{
	struct http_msg *m = msg_of(p);
	m->body_bytes = 0;
	return 0;
}

static int on_url(llhttp_t *p, const char *at, size_t len)
{
	struct http_msg *m = msg_of(p);
	uint32_t off = (uint32_t)(at - m->base);
	if (!m->head.url_len)
		m->head.url = off;
	m->head.url_len += (uint32_t)len;
	return 0;
}

static int on_header_field(llhttp_t *p, const char *at, size_t len)
{
	struct http_msg *m = msg_of(p);
	if (m->in_body)
		return 0; /* a trailer field (see on_header_field_complete) */
	struct http_head *h = &m->head;
	uint32_t off = (uint32_t)(at - m->base);

	/* A limit passed is reported once the name is complete: until then
	 * llhttp may still refuse the name where it ends (400), and which of
	 * the two is answered must not depend on where reads split it. */
	if (!m->in_field) {
		m->in_field = 1;
		m->value_done = 0;
		m->in_value = 0;
		if (h->nhdrs == HTTP_MAX_HEADERS) {
			m->over_limit = "too many header fields";
			return 0;
		}
		struct http_hdr *hd = &h->hdrs[h->nhdrs++];
		memset(hd, 0, sizeof(*hd));
		hd->name = off;
	}
	if (m->over_limit)
		return 0;
	struct http_hdr *hd = &h->hdrs[h->nhdrs - 1];
	if (hd->name + hd->name_len != off)
		return fail(m, 400, "header name split");
	if (hd->name_len + len > UINT16_MAX) {
		m->over_limit = "header name too long";
		return 0;
	}
	hd->name_len = (uint16_t)(hd->name_len + len);
	return 0;
}

static int on_header_field_complete(llhttp_t *p)
{
	struct http_msg *m = msg_of(p);
	/* Trailer fields are not recorded (the head is forwarded by then);
	 * http_chunk_scan checks their lines. */
	if (m->in_body)
		return 0;
	if (m->over_limit)
		return fail(m, 431, m->over_limit);
	if (!m->in_field || !m->head.hdrs[m->head.nhdrs - 1].name_len)
		return fail(m, 400, "empty header name");
	struct http_hdr *hd = &m->head.hdrs[m->head.nhdrs - 1];
	const char *name = m->base + hd->name;
	m->in_field = 0;
	/* llhttp takes whitespace before the colon into the name; a name is
	 * a token (the plain form reads only those). */
	for (uint32_t j = 0; j < hd->name_len; j++)
		if (!is_tchar((unsigned char)name[j]))
			return fail(m, 400, "invalid header name (whitespace before the colon?)");
	hd->kind = (uint8_t)classify(name, hd->name_len);
	hd->value = hd->name + hd->name_len; /* an empty value has no callback */
	return 0;
}

static int on_header_value(llhttp_t *p, const char *at, size_t len)
{
	struct http_msg *m = msg_of(p);
	if (m->in_body)
		return 0; /* a trailer field (see on_header_field_complete) */
	struct http_hdr *hd = &m->head.hdrs[m->head.nhdrs - 1];
	uint32_t off = (uint32_t)(at - m->base);

	/* A value that resumes after its line ended is an obs-fold
	 * continuation line (RFC 9112 §5.2): rejected, never unfolded. */
	if (m->value_done)
		return fail(m, 400, "obsolete line folding");
	if (!m->in_value) {
		hd->value = off;
		hd->value_len = 0;
		m->in_value = 1;
	} else if (hd->value + hd->value_len != off) {
		return fail(m, 400, "obsolete line folding");
	}
	hd->value_len += (uint32_t)len;
	return 0;
}

/* Records the Connection tokens of a value: close, keep-alive, upgrade, and
 * whether it names other headers. */
static uint32_t connection_tokens(const char *v, size_t len)
{
	uint32_t t = 0;
	size_t i = 0;
	while (i < len) {
		while (i < len && (v[i] == ' ' || v[i] == '\t' || v[i] == ','))
			i++;
		size_t s = i;
		while (i < len && v[i] != ',' && v[i] != ' ' && v[i] != '\t')
			i++;
		if (i == s)
			continue;
		size_t n = i - s;
		if (n == 5 && token_eq(v + s, "close", 5))
			t |= HTTP_CONN_CLOSE;
		else if (n == 10 && token_eq(v + s, "keep-alive", 10))
			t |= HTTP_CONN_KEEP_ALIVE;
		else if (n == 7 && token_eq(v + s, "upgrade", 7))
			t |= HTTP_CONN_UPGRADE;
		else
			t |= HTTP_CONN_OTHER;
	}
	return t;
}

static const char *trim_ows(const char *p, const char *end, const char **last)
{
	while (p < end && (*p == ' ' || *p == '\t'))
		p++;
	while (end > p && (end[-1] == ' ' || end[-1] == '\t'))
		end--;
	*last = end;
	return p;
}

bool http_cookie_match(const char *v, size_t len, const char *name, const char *value)
{
	size_t name_len = strlen(name), value_len = strlen(value);
	const char *end = v + len;
	while (v < end) {
		const char *semi = memchr(v, ';', (size_t)(end - v));
		const char *pair_end = semi ? semi : end;
		const char *eq = memchr(v, '=', (size_t)(pair_end - v));
		if (eq) {
			const char *n_end, *val_end;
			const char *n = trim_ows(v, eq, &n_end);
			const char *val = trim_ows(eq + 1, pair_end, &val_end);
			if (val_end - val >= 2 && *val == '"' && val_end[-1] == '"') {
				val++;
				val_end--;
			}
			if ((size_t)(n_end - n) == name_len && !memcmp(n, name, name_len) &&
			    (size_t)(val_end - val) == value_len && !memcmp(val, value, value_len))
				return true;
		}
		v = semi ? semi + 1 : end;
	}
	return false;
}

static bool pin_holds(const struct cfg_pin *pin, const char *name, size_t name_len, const char *v,
                      size_t len)
{
	if (pin->cookie)
		return http_name_eq(name, name_len, "cookie") &&
		       http_cookie_match(v, len, pin->cookie, pin->value);
	return http_name_eq(name, name_len, pin->header) && strlen(pin->value) == len &&
	       memcmp(v, pin->value, len) == 0;
}

int http_pins_match(const struct http_msg *m, const struct cfg_pin *pins, size_t npins)
{
	const struct http_head *h = &m->head;
	const bool absolute = h->url_skip != 0;

	for (size_t i = 0; i < npins; i++) {
		for (uint32_t j = 0; j < h->nhdrs; j++) {
			const struct http_hdr *hd = &h->hdrs[j];
			/* RFC 9112 §3.2.2: the target's authority is the Host;
			 * the Host lines are not forwarded then. */
			if (absolute && hd->kind == HK_HOST)
				continue;
			if (pin_holds(&pins[i], m->base + hd->name, hd->name_len, m->base + hd->value,
			              hd->value_len))
				return (int)i;
		}
		if (absolute && pin_holds(&pins[i], "host", 4, m->base + h->authority, h->authority_len))
			return (int)i;
	}
	return -1;
}

bool http_req_host(const struct http_msg *m, const char **host, size_t *len)
{
	const struct http_head *h = &m->head;

	if (h->url_skip) {
		*host = m->base + h->authority;
		*len = h->authority_len;
		return true;
	}
	for (uint32_t j = 0; j < h->nhdrs; j++) {
		if (h->hdrs[j].kind == HK_HOST) {
			*host = m->base + h->hdrs[j].value;
			*len = h->hdrs[j].value_len;
			return true;
		}
	}
	return false;
}

void http_req_path(const struct http_msg *m, const char **path, size_t *len)
{
	const struct http_head *h = &m->head;

	if (h->empty_path) { /* http://host or http://host?q: the path is "/" */
		*path = "/";
		*len = 1;
		return;
	}
	*path = m->base + h->url + h->url_skip;
	*len = h->url_len - h->url_skip;
}

void http_req_method_name(const struct http_msg *m, const char **name, size_t *len)
{
	const char *p = m->base + m->head.start;
	const char *sp = memchr(p, ' ', m->head.url - m->head.start);
	*name = p;
	*len = sp ? (size_t)(sp - p) : 0;
}

/* A header line is complete: its value is trimmed of trailing whitespace
 * and what the proxy acts on is recorded. */
static void header_done(struct http_msg *m, struct http_hdr *hd)
{
	struct http_head *h = &m->head;
	const char *v = m->base + hd->value;

	uint32_t n = hd->value_len;
	while (n && (v[n - 1] == ' ' || v[n - 1] == '\t'))
		n--;
	hd->value_len = n;

	switch (hd->kind) {
	case HK_CONNECTION:
	case HK_PROXY_CONNECTION:
		h->conn_tokens |= connection_tokens(v, hd->value_len);
		break;
	case HK_HOST:
		h->nhost++;
		break;
	default:
		break;
	}
}

static int on_header_value_complete(llhttp_t *p)
{
	struct http_msg *m = msg_of(p);
	if (m->in_body)
		return 0; /* a trailer field (see on_header_field_complete) */

	m->in_value = 0;
	m->value_done = 1;
	/* llhttp hands over the value with trailing whitespace. */
	header_done(m, &m->head.hdrs[m->head.nhdrs - 1]);
	return 0;
}

static int on_headers_complete(llhttp_t *p)
{
	struct http_msg *m = msg_of(p);
	m->pause = PAUSE_HEAD;
	/* A response to HEAD, a 204, a 304 and an interim response end at
	 * their blank line whatever their framing headers say (RFC 9112
	 * §6.3); a 304 may carry the resource's Content-Length. */
	int st = p->status_code;
	if (m->skip_body ||
	    (p->type == HTTP_RESPONSE && (st == 204 || st == 304 || (st < 200 && st != 101))))
		p->flags |= F_SKIPBODY;
	return HPE_PAUSED;
}

static int on_body(llhttp_t *p, const char *at, size_t len)
{
	struct http_msg *m = msg_of(p);
	m->body_bytes += len;
	if (m->max_body && m->body_bytes > m->max_body)
		return fail(m, 413, "request body too large");
	if (m->on_body)
		m->on_body(m, at, len);
	return 0;
}

static int on_message_complete(llhttp_t *p)
{
	struct http_msg *m = msg_of(p);
	m->pause = PAUSE_MSG;
	return HPE_PAUSED;
}

static const llhttp_settings_t settings = {
	.on_message_begin = on_message_begin,
	.on_url = on_url,
	.on_header_field = on_header_field,
	.on_header_field_complete = on_header_field_complete,
	.on_header_value = on_header_value,
	.on_header_value_complete = on_header_value_complete,
	.on_headers_complete = on_headers_complete,
	.on_body = on_body,
	.on_message_complete = on_message_complete,
};

void http_msg_init(struct http_msg *m, llhttp_type_t type, void *owner)
{
	memset(m, 0, sizeof(*m));
	llhttp_init(&m->parser, type, &settings);
	m->parser.data = m;
	m->owner = owner;
}

/* Empties the head record for a head read from its start. */
static void head_clear(struct http_msg *m)
{
	m->head.nhdrs = 0;
	m->head.conn_tokens = 0;
	m->head.url = m->head.url_len = 0;
	m->head.url_skip = 0;
	m->head.nhost = 0;
}

void http_msg_begin(struct http_msg *m, const char *base, uint32_t start)
{
	m->base = base;
	m->head.start = start;
	m->head.end = start;
	head_clear(m);
	m->in_field = m->in_value = m->value_done = 0;
	m->over_limit = NULL;
	m->lead_cr = false;
	m->in_body = false;
	m->chunked_body = false;
	m->plain = false;
	m->llhttp_msg = false;
	m->error_status = 0;
	m->error_reason = NULL;
}

void http_msg_body_bypassed(struct http_msg *m)
{
	http_msg_reset(m);
	m->in_body = false;
	m->pause = PAUSE_NONE;
}

void http_msg_reset(struct http_msg *m)
{
	/* llhttp never fed (every message so far was plain) needs none. */
	if (m->llhttp_dirty)
		llhttp_reset(&m->parser);
	m->plain = false;
	m->llhttp_msg = m->llhttp_dirty = false;
}

void http_msg_rebase(struct http_msg *m, const char *base)
{
	m->base = base;
}

enum chunk_state {
	CS_SIZE,      /* hex digits of a chunk size */
	CS_EXT_BWS,   /* whitespace after a size or an extension, before ';' */
	CS_EXT_NAME0, /* after ';', before an extension name */
	CS_EXT_NAME,
	CS_EXT_NAME_BWS, /* whitespace after a name, before '=' or ';' */
	CS_EXT_VAL0,     /* after '=', before a value */
	CS_EXT_TOKEN,    /* a token value */
	CS_EXT_QUOTED,   /* a quoted-string value */
	CS_EXT_QPAIR,    /* after a backslash in it */
	CS_EXT_QEND,     /* after its closing quote */
	CS_SIZE_LF,
	CS_DATA,
	CS_DATA_CR,
	CS_DATA_LF,
	CS_TRAILER, /* at the start of a trailer line or the final CRLF */
	CS_TRAILER_NAME,
	CS_TRAILER_LINE, /* a trailer field's value */
	CS_TRAILER_LF,
	CS_END_LF,
	CS_DONE,
};

static int hexval(unsigned char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	c |= 0x20;
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

/* Whether a field named so may not stand in a trailer section: the framing
 * fields, the hop-by-hop ones, Host, Expect and Trailer, and the fields the
 * proxy writes itself (RFC 9110 §6.5.1): a recipient that merged it into
 * the header section would read another message than the proxy did. */
static bool trailer_forbidden(const char *name, size_t len)
{
	return classify(name, len) != HK_OTHER || (len == 7 && token_eq(name, "trailer", 7));
}

int http_chunk_scan(struct http_chunk_scan *cs, const char *p, size_t n)
{
	const unsigned char *u = (const unsigned char *)p;
	size_t i = 0;

	while (i < n) {
		unsigned char c = u[i];
		bool ws = c == ' ' || c == '\t';
		switch (cs->state) {
		case CS_SIZE:
			if (hexval(c) >= 0) {
				if (++cs->digits > 15)
					return -1; /* sizes past 2^60 are not credible */
				cs->left = cs->left * 16 + (uint64_t)hexval(c);
			} else if (!cs->digits) {
				return -1;
			} else if (c == ';') {
				cs->state = CS_EXT_NAME0;
			} else if (ws) {
				cs->state = CS_EXT_BWS;
			} else if (c == '\r') {
				cs->state = CS_SIZE_LF;
			} else {
				return -1;
			}
			break;
		/* chunk-ext = *( BWS ";" BWS ext-name [ BWS "=" BWS ext-val ] ),
		 * ext-val = token / quoted-string (RFC 9112 §7.1.1) */
		case CS_EXT_BWS:
			if (c == ';')
				cs->state = CS_EXT_NAME0;
			else if (!ws)
				return -1;
			break;
		case CS_EXT_NAME0:
			if (is_tchar(c))
				cs->state = CS_EXT_NAME;
			else if (!ws)
				return -1;
			break;
		case CS_EXT_NAME:
		case CS_EXT_NAME_BWS:
			if (c == '=')
				cs->state = CS_EXT_VAL0;
			else if (c == ';')
				cs->state = CS_EXT_NAME0;
			else if (ws)
				cs->state = CS_EXT_NAME_BWS;
			else if (c == '\r' && cs->state == CS_EXT_NAME)
				cs->state = CS_SIZE_LF;
			else if (!is_tchar(c) || cs->state != CS_EXT_NAME)
				return -1;
			break;
		case CS_EXT_VAL0:
			if (c == '"')
				cs->state = CS_EXT_QUOTED;
			else if (is_tchar(c))
				cs->state = CS_EXT_TOKEN;
			else if (!ws)
				return -1;
			break;
		case CS_EXT_TOKEN:
		case CS_EXT_QEND:
			if (c == ';')
				cs->state = CS_EXT_NAME0;
			else if (ws)
				cs->state = CS_EXT_BWS;
			else if (c == '\r')
				cs->state = CS_SIZE_LF;
			else if (!is_tchar(c) || cs->state != CS_EXT_TOKEN)
				return -1;
			break;
		case CS_EXT_QUOTED:
			if (c == '"')
				cs->state = CS_EXT_QEND;
			else if (c == '\\')
				cs->state = CS_EXT_QPAIR;
			else if ((c < 0x20 && c != '\t') || c == 0x7f)
				return -1;
			break;
		case CS_EXT_QPAIR:
			if ((c < 0x20 && c != '\t') || c == 0x7f)
				return -1;
			cs->state = CS_EXT_QUOTED;
			break;
		case CS_SIZE_LF:
			if (c != '\n')
				return -1;
			cs->state = cs->left ? CS_DATA : CS_TRAILER;
			break;
		case CS_DATA: {
			size_t take = n - i < cs->left ? n - i : (size_t)cs->left;
			cs->left -= take;
			i += take;
			if (!cs->left)
				cs->state = CS_DATA_CR;
			continue;
		}
		case CS_DATA_CR:
			if (c != '\r')
				return -1;
			cs->state = CS_DATA_LF;
			break;
		case CS_DATA_LF:
			if (c != '\n')
				return -1;
			cs->state = CS_SIZE;
			cs->digits = 0;
			cs->left = 0;
			break;
		/* trailer-section = *( field-line CRLF ), a field line being
		 * field-name ":" OWS field-value OWS: no obs-fold, no empty
		 * name, no whitespace before the colon */
		case CS_TRAILER:
			if (c == '\r') {
				cs->state = CS_END_LF;
				break;
			}
			if (!is_tchar(c))
				return -1;
			cs->state = CS_TRAILER_NAME;
			cs->name_len = 0;
			/* fall through */
		case CS_TRAILER_NAME:
			if (c == ':') {
				if (cs->name_len <= sizeof(cs->name) &&
				    trailer_forbidden(cs->name, cs->name_len))
					return -2;
				cs->state = CS_TRAILER_LINE;
			} else if (!is_tchar(c)) {
				return -1;
			} else if (cs->name_len <= sizeof(cs->name)) {
				/* one past the buffer: longer than any name
				 * looked for */
				if (cs->name_len < sizeof(cs->name))
					cs->name[cs->name_len] = (char)c;
				cs->name_len++;
			}
			break;
		case CS_TRAILER_LINE:
			if (c == '\r')
				cs->state = CS_TRAILER_LF;
			else if ((c < 0x20 && c != '\t') || c == 0x7f)
				return -1;
			break;
		case CS_TRAILER_LF:
			if (c != '\n')
				return -1;
			cs->state = CS_TRAILER;
			break;
		case CS_END_LF:
			if (c != '\n')
				return -1;
			cs->state = CS_DONE;
			break;
		case CS_DONE:
			return -1;
		}
		i++;
	}
	return 0;
}

/* What is wrong with the lines of a head read by llhttp, or NULL. Every
 * line ends with CRLF: llhttp lets a bare LF end the start line or the
 * head. No line starts with whitespace: llhttp unfolds an obs-fold line
 * that follows an empty value into that value, and takes a space before
 * the first field line. Neither must be forwarded (RFC 9112 §2.2, §5.2). */
static const char *head_lines_bad(const char *p, size_t n)
{
	/* Every LF follows a CR and every CR precedes an LF: the LF positions
	 * are exactly the CR positions plus one; and no SP or HTAB is at an
	 * LF position plus one. Compared 16 bytes at a time as bit masks, the
	 * last CR and LF bits of a block carried into the next. */
	uint32_t carry = 0, lf_carry = 0; /* the byte before is a CR, an LF */
	size_t i = 0;
	if (n && (p[0] == '\r' || p[0] == '\n'))
		return "empty line or bare CR or LF before the start line";
#ifdef __SSE2__
	const __m128i cr16 = _mm_set1_epi8('\r'), lf16 = _mm_set1_epi8('\n'),
	              sp16 = _mm_set1_epi8(' '), ht16 = _mm_set1_epi8('\t');
	for (; i + 16 <= n; i += 16) {
		__m128i v = _mm_loadu_si128((const __m128i *)(const void *)(p + i));
		uint32_t cr = (uint32_t)_mm_movemask_epi8(_mm_cmpeq_epi8(v, cr16));
		uint32_t lf = (uint32_t)_mm_movemask_epi8(_mm_cmpeq_epi8(v, lf16));
		uint32_t ws = (uint32_t)_mm_movemask_epi8(
		        _mm_or_si128(_mm_cmpeq_epi8(v, sp16), _mm_cmpeq_epi8(v, ht16)));
		if (lf != (((cr << 1) | carry) & 0xffff))
			return "bare CR or LF in the header section";
		if (ws & ((lf << 1) | lf_carry))
			return "obsolete line folding";
		carry = cr >> 15;
		lf_carry = lf >> 15;
	}
#endif
	for (; i < n; i++) {
		if ((p[i] == '\n') != carry)
			return "bare CR or LF in the header section";
		if (lf_carry && (p[i] == ' ' || p[i] == '\t'))
			return "obsolete line folding";
		carry = p[i] == '\r';
		lf_carry = p[i] == '\n';
	}
	if (carry || n < 4 || p[n - 1] != '\n' || p[n - 3] != '\n')
		return "bare CR or LF in the header section";
	return NULL;
}

/*
 * The plain form, parsed in one pass. Whatever is not of this form makes
 * plain_head() give up (return 0) without a verdict, and llhttp reads the
 * message from its first byte instead, so that every refusal and its
 * reason come from one place. What it accepts, llhttp and the checks above
 * accept too, with the same record of the head (tests/unit/test_http.c
 * compares the two on many heads).
 */

/* The end of a header value or reason phrase starting at p: the CR of its
 * CRLF, or NULL if a control byte other than HTAB comes first or the line
 * is not complete before end. */
static const char *line_end(const char *p, const char *end)
{
#ifdef __SSE2__
	const __m128i c1f = _mm_set1_epi8(0x1f), del = _mm_set1_epi8(0x7f);
	while (end - p >= 16) {
		__m128i v = _mm_loadu_si128((const __m128i *)(const void *)p);
		/* bytes <= 0x1f (unsigned) or 0x7f */
		__m128i ctl = _mm_or_si128(_mm_cmpeq_epi8(_mm_min_epu8(v, c1f), v),
		                           _mm_cmpeq_epi8(v, del));
		unsigned mask = (unsigned)_mm_movemask_epi8(ctl);
		while (mask) {
			const char *q = p + __builtin_ctz(mask);
			if (*q != '\t')
				return *q == '\r' && q + 1 < end && q[1] == '\n' ? q : NULL;
			mask &= mask - 1;
		}
		p += 16;
	}
#endif
	for (; p < end; p++) {
		unsigned char c = (unsigned char)*p;
		if (c >= 0x20 && c != 0x7f)
			continue;
		if (c == '\t')
			continue;
		return c == '\r' && p + 1 < end && p[1] == '\n' ? p : NULL;
	}
	return NULL;
}

static const struct {
	char name[8];
	uint8_t len;
	uint8_t method;
} plain_methods[] = {
	{ "GET ", 4, HTTP_GET },         { "POST ", 5, HTTP_POST },   { "HEAD ", 5, HTTP_HEAD },
	{ "PUT ", 4, HTTP_PUT },         { "DELETE ", 7, HTTP_DELETE }, { "PATCH ", 6, HTTP_PATCH },
	{ "OPTIONS ", 8, HTTP_OPTIONS },
};

/* "HTTP/1.0" or "HTTP/1.1" at p: the minor version, or -1. */
static int plain_version(const char *p)
{
	if (memcmp(p, "HTTP/1.", 7) != 0 || (p[7] != '0' && p[7] != '1'))
		return -1;
	return p[7] - '0';
}

/* METHOD SP origin-form SP HTTP/1.x CRLF: the first header line, or NULL. */
static const char *plain_request_line(struct http_msg *m, const char *p, const char *end)
{
	size_t i = 0, n = sizeof(plain_methods) / sizeof(plain_methods[0]);
	while (i < n && ((size_t)(end - p) < plain_methods[i].len ||
	                 memcmp(p, plain_methods[i].name, plain_methods[i].len) != 0))
		i++;
	if (i == n)
		return NULL;
	m->pl.method = plain_methods[i].method;
	const char *t = p + plain_methods[i].len, *q = t;
	if (q == end || *q != '/')
		return NULL;
	while (q < end && in_class((unsigned char)*q, TARGET))
		q++;
	/* percent-encodings, looked at where the scan stops */
	while (end - q >= 3 && *q == '%' && hexval((unsigned char)q[1]) >= 0 &&
	       hexval((unsigned char)q[2]) >= 0) {
		q += 3;
		while (q < end && in_class((unsigned char)*q, TARGET))
			q++;
	}
	/* SP HTTP/1.x CRLF */
	if (end - q < 11 || q[0] != ' ' || q[9] != '\r' || q[10] != '\n')
		return NULL;
	int minor = plain_version(q + 1);
	if (minor < 0)
		return NULL;
	m->pl.version = (uint8_t)(10 + minor);
	m->head.url = (uint32_t)(t - m->base);
	m->head.url_len = (uint32_t)(q - t);
	return q + 11;
}

/* HTTP/1.x SP 3DIGIT SP reason CRLF, 2xx to 5xx: the first header line, or
 * NULL. */
static const char *plain_status_line(struct http_msg *m, const char *p, const char *end)
{
	if (end - p < 15 || p[8] != ' ' || p[12] != ' ')
		return NULL;
	int minor = plain_version(p);
	if (minor < 0 || p[9] < '2' || p[9] > '5' || p[10] < '0' || p[10] > '9' || p[11] < '0' ||
	    p[11] > '9')
		return NULL;
	m->pl.version = (uint8_t)(10 + minor);
	m->pl.status = (uint16_t)((p[9] - '0') * 100 + (p[10] - '0') * 10 + (p[11] - '0'));
	const char *q = line_end(p + 13, end);
	return q ? q + 2 : NULL;
}

/* A Content-Length value: 1 to 15 digits, else -1. */
static int64_t plain_length(const char *v, size_t len)
{
	if (!len || len > 15)
		return -1;
	int64_t n = 0;
	for (size_t i = 0; i < len; i++) {
		if (v[i] < '0' || v[i] > '9')
			return -1;
		n = n * 10 + (v[i] - '0');
	}
	return n;
}

/* A Connection value of the form token *("," *SP token): the form on which
 * connection_tokens() and llhttp surely read the same tokens. */
static bool plain_tokens(const char *v, size_t len)
{
	size_t i = 0;
	for (;;) {
		size_t s = i;
		while (i < len && in_class((unsigned char)v[i], TCHAR))
			i++;
		if (i == s)
			return false;
		if (i == len)
			return true;
		if (v[i++] != ',')
			return false;
		while (i < len && v[i] == ' ')
			i++;
	}
}

/* The end of the token at q: the first byte that is not a tchar, or end.
 * Sixteen bytes at a time while they are letters, digits and '-', what
 * header names are made of; any other byte is looked up. */
static const char *token_end(const char *q, const char *end)
{
#ifdef __SSE2__
	const __m128i case_bit = _mm_set1_epi8(0x20), a = _mm_set1_epi8('a'),
	              z = _mm_set1_epi8('z' - 'a'), zero = _mm_set1_epi8('0'),
	              nine = _mm_set1_epi8(9), dash = _mm_set1_epi8('-');
	while (end - q >= 16) {
		__m128i v = _mm_loadu_si128((const __m128i *)(const void *)q);
		__m128i l = _mm_sub_epi8(_mm_or_si128(v, case_bit), a);
		__m128i d = _mm_sub_epi8(v, zero);
		__m128i ok = _mm_or_si128(_mm_or_si128(_mm_cmpeq_epi8(_mm_min_epu8(l, z), l),
		                                       _mm_cmpeq_epi8(_mm_min_epu8(d, nine), d)),
		                          _mm_cmpeq_epi8(v, dash));
		unsigned other = ~(unsigned)_mm_movemask_epi8(ok) & 0xffffu;
		if (!other) {
			q += 16;
			continue;
		}
		q += __builtin_ctz(other);
		if (!in_class((unsigned char)*q, TCHAR))
			return q;
		q++;
	}
#endif
	while (q < end && in_class((unsigned char)*q, TCHAR))
		q++;
	return q;
}

/* Whether v[0, n) is a valid Host value, uri-host [ ":" port ] (RFC 9110
 * §7.2, RFC 3986 §3.2.2): a reg-name (without ',') or an IPv4 address, or
 * an IPv6 address in brackets; no userinfo, path or whitespace. Empty is
 * valid: the caller knows when it may be. */
static bool host_ok(const char *v, size_t n)
{
	size_t i = 0;
	if (!n)
		return true;
	if (v[0] == '[') {
		for (i = 1; i < n && v[i] != ']'; i++)
			if (hexval((unsigned char)v[i]) < 0 && v[i] != ':' && v[i] != '.')
				return false;
		if (i == n || i == 1)
			return false;
		i++;
	} else {
		for (; i < n && v[i] != ':'; i++) {
			unsigned char c = (unsigned char)v[i];
			if (in_class(c, HOST))
				continue;
			if (c != '%' || i + 2 >= n || hexval((unsigned char)v[i + 1]) < 0 ||
			    hexval((unsigned char)v[i + 2]) < 0)
				return false;
			i += 2;
		}
		if (i == 0)
			return false; /* a port without a host */
	}
	if (i < n && v[i++] != ':')
		return false;
	for (; i < n; i++)
		if (v[i] < '0' || v[i] > '9')
			return false;
	return true;
}

/* Whether the Host value v[0, n) of a plain head, which lies before end, is
 * valid, as host_ok() says. Sixteen bytes at a time: the letters, digits,
 * '-' and '.' of a name or an IPv4 address, then digits after a ':', are the
 * common form; any other value is left to host_ok(). */
static bool plain_host_ok(const char *v, size_t n, const char *end)
{
#ifdef __SSE2__
	if (n && n <= 16 && end - v >= 16) {
		const __m128i case_bit = _mm_set1_epi8(0x20), a = _mm_set1_epi8('a'),
		              z = _mm_set1_epi8('z' - 'a'), zero = _mm_set1_epi8('0'),
		              nine = _mm_set1_epi8(9), dash = _mm_set1_epi8('-'),
		              dot = _mm_set1_epi8('.');
		__m128i x = _mm_loadu_si128((const __m128i *)(const void *)v);
		__m128i l = _mm_sub_epi8(_mm_or_si128(x, case_bit), a);
		__m128i d = _mm_sub_epi8(x, zero);
		__m128i digit = _mm_cmpeq_epi8(_mm_min_epu8(d, nine), d);
		__m128i name =
		        _mm_or_si128(_mm_or_si128(_mm_cmpeq_epi8(_mm_min_epu8(l, z), l), digit),
		                     _mm_or_si128(_mm_cmpeq_epi8(x, dash), _mm_cmpeq_epi8(x, dot)));
		unsigned in = (1u << n) - 1;
		unsigned other = ~(unsigned)_mm_movemask_epi8(name) & in;
		unsigned digits = (unsigned)_mm_movemask_epi8(digit) & in;
		if (!other)
			return true;
		unsigned k = (unsigned)__builtin_ctz(other);
		/* a name, ':', and digits to the end */
		if (k && v[k] == ':' && (digits | 1u << k) >> k == in >> k)
			return true;
	}
#endif
	return host_ok(v, n);
}

/* Parses a head of the plain form that lies whole in p[0, n), which is at
 * m->base + m->head.start. Returns its length with the head recorded and
 * m->pl set, or 0 (the head record is then to be cleared). */
static size_t plain_head(struct http_msg *m, const char *p, size_t n)
{
	const char *end = p + n, *q;
	struct http_head *h = &m->head;
	struct http_plain *pl = &m->pl;
	bool request = m->parser.type == HTTP_REQUEST;

	pl->has_length = false;
	pl->content_length = 0;
	q = request ? plain_request_line(m, p, end) : plain_status_line(m, p, end);
	if (!q)
		return 0;
	for (;;) {
		if (end - q < 2)
			return 0;
		if (q[0] == '\r') {
			if (q[1] != '\n')
				return 0;
			q += 2;
			break;
		}
		const char *name = q;
		q = token_end(q, end);
		if (q == name || q == end || *q != ':' || q - name > UINT16_MAX ||
		    h->nhdrs == HTTP_MAX_HEADERS)
			return 0;
		size_t name_len = (size_t)(q - name);
		q++;
		while (q < end && (*q == ' ' || *q == '\t'))
			q++;
		const char *v = q;
		if (!(q = line_end(q, end)))
			return 0;
		struct http_hdr *hd = &h->hdrs[h->nhdrs++];
		hd->name = (uint32_t)(name - m->base);
		hd->name_len = (uint16_t)name_len;
		hd->kind = (uint8_t)classify(name, name_len);
		hd->drop = 0;
		/* as llhttp records it: an empty value sits at the next line */
		hd->value = (uint32_t)((q == v ? q + 2 : v) - m->base);
		hd->value_len = (uint32_t)(q - v);
		header_done(m, hd);
		q += 2;
		switch (hd->kind) {
		case HK_CONTENT_LENGTH: {
			/* digits alone, nothing after them */
			int64_t len = (size_t)(q - 2 - v) == hd->value_len
			                      ? plain_length(m->base + hd->value, hd->value_len)
			                      : -1;
			if (len < 0 || pl->has_length)
				return 0;
			pl->has_length = true;
			pl->content_length = (uint64_t)len;
			break;
		}
		case HK_CONNECTION:
		case HK_PROXY_CONNECTION:
			/* a tab in the whitespace after a token, which llhttp
			 * reads otherwise: llhttp's way */
			if (!plain_tokens(m->base + hd->value, hd->value_len) ||
			    memchr(v, '\t', (size_t)(q - 2 - v)))
				return 0;
			break;
		case HK_HOST:
			/* (an invalid one is refused from llhttp's record) */
			if (request && !plain_host_ok(m->base + hd->value, hd->value_len, end))
				return 0;
			break;
		case HK_TRANSFER_ENCODING:
		case HK_UPGRADE:
			return 0;
		default:
			break;
		}
	}
	if (h->conn_tokens & HTTP_CONN_UPGRADE)
		return 0;
	pl->no_body = !request && (m->skip_body || pl->status == 204 || pl->status == 304);
	if (!request && !pl->no_body && !pl->has_length)
		return 0; /* delimited by the close of the connection */
	/* close wins over keep-alive, as in http_msg_keep_alive() */
	pl->keep_alive = !(h->conn_tokens & HTTP_CONN_CLOSE) &&
	                 (pl->version == 11 || (h->conn_tokens & HTTP_CONN_KEEP_ALIVE));
	return (size_t)(q - p);
}

/* The body of a plain message: counted down, never parsed. */
static enum http_step plain_body(struct http_msg *m, const char *data, size_t len,
                                 size_t *consumed)
{
	struct http_plain *pl = &m->pl;
	size_t take = pl->no_body ? 0 : len < pl->content_length ? len : (size_t)pl->content_length;

	*consumed = take;
	if (take) {
		pl->content_length -= take;
		m->body_bytes += take;
		if (m->max_body && m->body_bytes > m->max_body) {
			m->error_status = 413;
			m->error_reason = "request body too large";
			return HTTP_ERROR;
		}
		if (m->on_body)
			m->on_body(m, data, take);
	}
	if (pl->content_length && !pl->no_body)
		return HTTP_NEED_MORE;
	m->in_body = false; /* m->plain stays: the framing is asked about after */
	return HTTP_MSG_DONE;
}

/* Checks the chunked body bytes that arrived with the head, up to the end of
 * the body, as http_chunk_scan does: a message that arrives whole with
 * broken framing is then refused before its head goes anywhere (what
 * follows the body is not looked at). A message without a body has none. */
static int chunks_ahead(const struct http_msg *m, const char *p, size_t n)
{
	if (!(m->parser.flags & F_CHUNKED) || (m->parser.flags & F_SKIPBODY) || !n)
		return 0;
	struct http_chunk_scan cs = m->chunks;
	int r = http_chunk_scan(&cs, p, n);
	return cs.state == CS_DONE ? 0 : r;
}

/* Empty lines before a request line are ignored (RFC 9112 §2.2): the head
 * starts after them. They count toward max_header_bytes (the caller counts
 * from where it began the head). A CR at the end of data may be the start of
 * one more, noted in lead_cr. Returns the bytes skipped, or -1 at a CR not
 * followed by an LF. */
static ssize_t skip_empty_lines(struct http_msg *m, const char *data, size_t len)
{
	size_t i = 0;
	if (m->lead_cr) {
		if (data[0] != '\n')
			return -1;
		m->lead_cr = false;
		i = 1;
	}
	while (len - i >= 2 && data[i] == '\r' && data[i + 1] == '\n')
		i += 2;
	if (len - i == 1 && data[i] == '\r') {
		m->lead_cr = true;
		i++;
	} else if (len - i >= 2 && data[i] == '\r') {
		return -1; /* as when the byte after the CR comes in the next read */
	}
	m->head.start += (uint32_t)i;
	return (ssize_t)i;
}

enum http_step http_msg_feed(struct http_msg *m, const char *data, size_t len, size_t *consumed)
{
	if (m->plain && m->in_body)
		return plain_body(m, data, len, consumed);
	if (!m->in_body && !m->llhttp_msg && data == m->base + m->head.start) {
		if (len && (data[0] == '\r' || m->lead_cr) && m->parser.type == HTTP_REQUEST) {
			ssize_t skip = skip_empty_lines(m, data, len);
			if (skip < 0) {
				*consumed = 0;
				m->error_status = 400;
				m->error_reason = "bare CR before the request line";
				return HTTP_ERROR;
			}
			if (skip) {
				enum http_step st =
				        (size_t)skip == len
				                ? HTTP_NEED_MORE
				                : http_msg_feed(m, data + skip, len - (size_t)skip,
				                                consumed);
				if ((size_t)skip == len)
					*consumed = 0;
				*consumed += (size_t)skip;
				return st;
			}
		}
		size_t n = plain_head(m, data, len);
		if (n) {
			*consumed = n;
			m->head.end = m->head.start + (uint32_t)n;
			m->plain = true;
			m->in_body = true;
			m->body_bytes = 0;
			return HTTP_HEAD_DONE;
		}
		head_clear(m);
	}
	m->plain = false;
	if (len)
		m->llhttp_msg = m->llhttp_dirty = true;
	if (llhttp_get_errno(&m->parser) == HPE_PAUSED)
		llhttp_resume(&m->parser);
	m->pause = PAUSE_NONE;

	llhttp_errno_t e = llhttp_execute(&m->parser, data, len);
	size_t k = e == HPE_OK ? len : (size_t)(llhttp_get_error_pos(&m->parser) - data);

	/* llhttp is lenient about the CRLF after chunk data; the bytes it
	 * took are checked again here before anyone forwards them. (Not by
	 * F_CHUNKED, which llhttp clears when a trailer field says
	 * Transfer-Encoding; and also when a callback stopped it, a 413, so
	 * that bad framing is a 400 whatever the reads.) */
	int r;
	if (m->in_body && m->chunked_body && k &&
	    (e == HPE_OK || e == HPE_PAUSED || e == HPE_USER) &&
	    (r = http_chunk_scan(&m->chunks, data, k)) < 0) {
		*consumed = k;
		m->error_status = 400;
		m->error_reason = r == -2 ? TRAILER_FIELD : "malformed chunked framing";
		return HTTP_ERROR;
	}
	switch (e) {
	case HPE_OK:
		*consumed = len;
		return HTTP_NEED_MORE;
	case HPE_PAUSED:
		*consumed = k;
		if (m->pause == PAUSE_HEAD) {
			m->head.end = (uint32_t)(data + *consumed - m->base);
			const char *bad = head_lines_bad(m->base + m->head.start,
			                                 m->head.end - m->head.start);
			if (bad) {
				m->error_status = 400;
				m->error_reason = bad;
				return HTTP_ERROR;
			}
			m->in_body = true;
			m->chunked_body = (m->parser.flags & F_CHUNKED) != 0;
			memset(&m->chunks, 0, sizeof(m->chunks));
			int ahead = chunks_ahead(m, data + k, len - k);
			if (ahead < 0) {
				m->error_status = 400;
				m->error_reason =
				        ahead == -2 ? TRAILER_FIELD : "malformed chunked framing";
				return HTTP_ERROR;
			}
			return HTTP_HEAD_DONE;
		}
		m->in_body = false;
		return HTTP_MSG_DONE;
	case HPE_PAUSED_UPGRADE:
		*consumed = (size_t)(llhttp_get_error_pos(&m->parser) - data);
		return HTTP_UPGRADE;
	default:
		*consumed = (size_t)(llhttp_get_error_pos(&m->parser) - data);
		if (!m->error_status) {
			m->error_status = 400; /* every parse error is the client's */
			m->error_reason = llhttp_get_error_reason(&m->parser);
		}
		return HTTP_ERROR;
	}
}

int http_msg_finish(struct http_msg *m)
{
	if (m->plain)
		return m->in_body ? -1 : 0;
	if (llhttp_get_errno(&m->parser) == HPE_PAUSED)
		llhttp_resume(&m->parser);
	llhttp_errno_t e = llhttp_finish(&m->parser);
	return e == HPE_OK || e == HPE_PAUSED ? 0 : -1;
}

bool http_msg_needs_eof(const struct http_msg *m)
{
	return !m->plain && llhttp_message_needs_eof(&m->parser);
}

bool http_msg_keep_alive(const struct http_msg *m)
{
	if (m->plain)
		return m->pl.keep_alive;
	/* As llhttp_should_keep_alive(), from the tokens read here, which
	 * llhttp reads otherwise in places (a tab after a token): a close
	 * token always ends the connection, also next to keep-alive in an
	 * HTTP/1.0 message. */
	uint32_t t = m->head.conn_tokens;
	bool v11 = m->parser.http_major > 0 && m->parser.http_minor > 0;
	if ((t & HTTP_CONN_CLOSE) || (!v11 && !(t & HTTP_CONN_KEEP_ALIVE)))
		return false;
	return !llhttp_message_needs_eof(&m->parser);
}

bool http_msg_chunked(const struct http_msg *m)
{
	return !m->plain && (m->parser.flags & F_CHUNKED) != 0;
}

bool http_msg_upgrade(const struct http_msg *m)
{
	return !m->plain && m->parser.upgrade != 0;
}

uint64_t http_msg_content_length(const struct http_msg *m)
{
	if (m->plain)
		return m->pl.content_length;
	return (m->parser.flags & F_CONTENT_LENGTH) ? m->parser.content_length : 0;
}

int http_msg_status(const struct http_msg *m)
{
	return m->plain ? m->pl.status : m->parser.status_code;
}

int http_msg_method(const struct http_msg *m)
{
	return m->plain ? m->pl.method : m->parser.method;
}

int http_msg_version(const struct http_msg *m)
{
	return m->plain ? m->pl.version : m->parser.http_major * 10 + m->parser.http_minor;
}

bool http_method_idempotent(int method)
{
	switch (method) {
	case HTTP_GET:
	case HTTP_HEAD:
	case HTTP_PUT:
	case HTTP_DELETE:
	case HTTP_OPTIONS:
	case HTTP_TRACE:
		return true;
	default:
		return false;
	}
}

/* Marks the headers named by Connection tokens, except the framing headers,
 * which a Connection header must never remove. */
static void drop_connection_listed(struct http_msg *m)
{
	struct http_head *h = &m->head;
	for (uint32_t i = 0; i < h->nhdrs; i++) {
		const struct http_hdr *c = &h->hdrs[i];
		if (c->kind != HK_CONNECTION && c->kind != HK_PROXY_CONNECTION)
			continue;
		const char *v = m->base + c->value;
		size_t k = 0;
		while (k < c->value_len) {
			while (k < c->value_len && (v[k] == ' ' || v[k] == '\t' || v[k] == ','))
				k++;
			size_t s = k;
			while (k < c->value_len && v[k] != ',' && v[k] != ' ' && v[k] != '\t')
				k++;
			for (uint32_t j = 0; j < h->nhdrs && k > s; j++) {
				struct http_hdr *hd = &h->hdrs[j];
				if (hd->kind == HK_OTHER && hd->name_len == k - s &&
				    strncasecmp(m->base + hd->name, v + s, k - s) == 0)
					hd->drop = 1;
			}
		}
	}
}

static size_t skip_ows(const char *v, size_t k, size_t n)
{
	while (k < n && (v[k] == ' ' || v[k] == '\t'))
		k++;
	return k;
}

/* The end of the quoted-string at v[k] (its opening DQUOTE), or 0. */
static size_t quoted_end(const char *v, size_t k, size_t n)
{
	for (k++; k < n; k++) {
		unsigned char c = (unsigned char)v[k];
		if (c == '"')
			return k + 1;
		if (c == '\\' && ++k == n)
			return 0;
		c = (unsigned char)v[k];
		if ((c < 0x20 && c != '\t') || c == 0x7f)
			return 0;
	}
	return 0;
}

/* The end of the transfer-parameters at v[k] (a ';'), or 0:
 * *( OWS ";" OWS token BWS "=" BWS ( token / quoted-string ) ). */
static size_t params_end(const char *v, size_t k, size_t n)
{
	while (k < n && v[k] == ';') {
		size_t s = k = skip_ows(v, k + 1, n);
		while (k < n && is_tchar((unsigned char)v[k]))
			k++;
		if (k == s)
			return 0;
		k = skip_ows(v, k, n);
		if (k == n || v[k] != '=')
			return 0;
		s = k = skip_ows(v, k + 1, n);
		if (k < n && v[k] == '"') {
			if (!(k = quoted_end(v, k, n)))
				return 0;
		} else {
			while (k < n && is_tchar((unsigned char)v[k]))
				k++;
			if (k == s)
				return 0;
		}
		k = skip_ows(v, k, n);
	}
	return k;
}

/* The answer to a message's Transfer-Encoding fields, read as one list in
 * their order: 0 when it is chunked alone (in any case, empty list elements
 * aside, RFC 9110 §5.6.1); 501 when chunked comes last after other codings,
 * which the proxy does not implement (RFC 9112 §6.1, §7); else 400: chunked
 * not last or more than once (RFC 9112 §6.1, §6.3), chunked with
 * parameters, no coding at all, or a value that is not a list of codings. */
static int te_verdict(const struct http_msg *m)
{
	const struct http_head *h = &m->head;
	bool chunked = false, other = false;

	for (uint32_t i = 0; i < h->nhdrs; i++) {
		const struct http_hdr *hd = &h->hdrs[i];
		if (hd->kind != HK_TRANSFER_ENCODING)
			continue;
		const char *v = m->base + hd->value;
		size_t n = hd->value_len, k = 0;
		for (;;) {
			while (k < n && (v[k] == ' ' || v[k] == '\t' || v[k] == ','))
				k++;
			if (k == n)
				break;
			size_t s = k;
			while (k < n && is_tchar((unsigned char)v[k]))
				k++;
			if (k == s || chunked)
				return 400; /* not a coding, or one after chunked */
			bool is_chunked = http_name_eq(v + s, k - s, "chunked");
			k = skip_ows(v, k, n);
			if (k < n && v[k] == ';' && (is_chunked || !(k = params_end(v, k, n))))
				return 400;
			if (k < n && v[k] != ',')
				return 400;
			chunked = is_chunked;
			other |= !is_chunked;
		}
	}
	return !chunked ? 400 : other ? 501 : 0;
}

/* Whether t[0, n) holds only what a path and a query may (RFC 3986 pchar,
 * "/" and "?"), with whole percent-encodings: no fragment, no space,
 * control, non-ASCII or other byte that RFC 3986 leaves out. */
static bool target_chars_ok(const char *t, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)t[i];
		if (in_class(c, TARGET))
			continue;
		if (c != '%' || i + 2 >= n || hexval((unsigned char)t[i + 1]) < 0 ||
		    hexval((unsigned char)t[i + 2]) < 0)
			return false;
		i += 2;
	}
	return true;
}

/* Checks the target of a request llhttp read (the plain form takes only
 * origin-form targets of valid bytes): origin-form, "*" for OPTIONS, or
 * absolute-form with an http or https scheme and a host, whose scheme and
 * authority are recorded to be left out when forwarding. Returns 0 or 400. */
static int target_check(struct http_msg *m, const char **reason)
{
	struct http_head *h = &m->head;
	const char *t = m->base + h->url;
	size_t n = h->url_len, k;

	if (n && t[0] == '/') {
		if (target_chars_ok(t, n))
			return 0;
		*reason = "invalid byte in the request target";
		return 400;
	}
	if (n == 1 && t[0] == '*') {
		if (http_msg_method(m) == HTTP_OPTIONS)
			return 0;
		*reason = "asterisk-form target with a method other than OPTIONS";
		return 400;
	}
	if (n > 7 && strncasecmp(t, "http://", 7) == 0)
		k = 7;
	else if (n > 8 && strncasecmp(t, "https://", 8) == 0)
		k = 8;
	else
		k = 0;
	size_t a = k;
	while (k && k < n && t[k] != '/' && t[k] != '?')
		k++;
	/* The authority is a Host value: no userinfo (RFC 9110 §4.2.4), not
	 * empty (§4.2.1). */
	if (!k || k == a || !host_ok(t + a, k - a) || !target_chars_ok(t + k, n - k)) {
		*reason = "malformed request target";
		return 400;
	}
	h->url_skip = (uint32_t)k;
	h->empty_path = k == n || t[k] == '?';
	h->authority = h->url + (uint32_t)a;
	h->authority_len = (uint32_t)(k - a);
	return 0;
}

/* The request line is exactly METHOD SP TARGET SP VERSION: llhttp lets
 * extra spaces through. */
static bool request_line_ok(const char *p, size_t n)
{
	const char *eol = memchr(p, '\r', n);
	int spaces = 0;
	if (!eol || eol == p)
		return false;
	for (const char *q = p; q < eol; q++) {
		if (*q != ' ')
			continue;
		if (q == p || q[-1] == ' ' || q + 1 == eol)
			return false;
		spaces++;
	}
	return spaces == 2;
}

int http_req_check(struct http_msg *m, uint64_t max_body, const char **reason)
{
	struct http_head *h = &m->head;
	const llhttp_t *p = &m->parser;
	int version = http_msg_version(m);
	uint64_t length = http_msg_content_length(m);
	/* (a plain head has neither Transfer-Encoding nor CONNECT; llhttp
	 * does not flag an empty Transfer-Encoding, the records here do) */
	bool te = !m->plain && (p->flags & F_TRANSFER_ENCODING);

	if (http_msg_method(m) == HTTP_CONNECT) {
		*reason = "CONNECT is not supported";
		return 400;
	}
	if (version / 10 != 1) {
		*reason = "only HTTP/1.0 and HTTP/1.1 are served";
		return 400;
	}
	/* (the plain form's request line is of that form, with a valid
	 * origin-form target) */
	if (!m->plain) {
		if (!request_line_ok(m->base + h->start, h->end - h->start)) {
			*reason = "malformed request line";
			return 400;
		}
		int st = target_check(m, reason);
		if (st)
			return st;
	}
	if (h->nhost > 1) {
		*reason = "several Host headers";
		return 400;
	}
	if (h->nhost == 0 && version == 11) {
		*reason = "HTTP/1.1 request without Host";
		return 400;
	}
	for (uint32_t i = 0; i < h->nhdrs; i++) {
		struct http_hdr *hd = &h->hdrs[i];
		switch (hd->kind) {
		case HK_TRANSFER_ENCODING: /* forwarded as one chunked line */
			te = true;
			hd->drop = 1;
			break;
		case HK_CONNECTION:
		case HK_KEEP_ALIVE:
		case HK_PROXY_CONNECTION:
		case HK_TE:
		case HK_X_REAL_IP:
		case HK_X_FORWARDED_PROTO:
		case HK_X_FORWARDED_FOR: /* rebuilt with the client appended */
			hd->drop = 1;
			break;
		case HK_UPGRADE:
			/* kept for an upgrade as llhttp reads it (a plain head has
			 * none), whose framing the proxy follows */
			hd->drop = !http_msg_upgrade(m);
			break;
		case HK_HOST:
			/* RFC 9112 §3.2: an invalid Host is a 400; empty only
			 * when the target has no authority of its own. (The
			 * plain form has only valid ones, and origin-form.) */
			if ((!m->plain && !host_ok(m->base + hd->value, hd->value_len)) ||
			    (!hd->value_len && h->url_skip)) {
				*reason = "invalid Host";
				return 400;
			}
			hd->drop = h->url_skip != 0; /* replaced by the authority */
			break;
		default:
			break;
		}
	}
	/* RFC 9112 §6.1: an HTTP/1.0 message with Transfer-Encoding has
	 * faulty framing; §6.3: a request whose final coding is not chunked
	 * has no reliable length (llhttp would fail it after the head: it is
	 * refused now, before anything is forwarded). */
	if (te && version == 10) {
		*reason = "Transfer-Encoding in an HTTP/1.0 request";
		return 400;
	}
	int tev = te ? te_verdict(m) : 0;
	if (tev == 0 && te && !http_msg_chunked(m))
		tev = 400;
	if (tev) {
		*reason = tev == 501 ? "transfer coding not implemented"
		                     : "Transfer-Encoding must be chunked, once and last";
		return tev;
	}
	if (max_body && length > max_body) {
		*reason = "request body too large";
		return 413;
	}
	if (h->conn_tokens & HTTP_CONN_OTHER)
		drop_connection_listed(m);
	m->max_body = max_body;
	return 0;
}

int http_resp_check(struct http_msg *m, const char **reason)
{
	struct http_head *h = &m->head;
	int status = http_msg_status(m);
	bool upgrade = status == 101, te = false;
	int version = http_msg_version(m);

	/* llhttp also reads HTTP/0.9 and HTTP/2.0 status lines (a plain head
	 * is 1.0 or 1.1) */
	if (version != 10 && version != 11) {
		*reason = "not an HTTP/1.0 or HTTP/1.1 response";
		return 502;
	}
	if (status < 100 || status > 599) {
		*reason = "status code outside 100-599";
		return 502;
	}
	/* HTTP-version SP status-code SP, status-code = 3DIGIT (RFC 9112 §4):
	 * llhttp reads more digits ("0200" as 200); the plain form takes
	 * three. (The SP before an empty reason phrase may be left out.) */
	const char *q = m->base + h->start, *end = m->base + h->end;
	if (!m->plain &&
	    (end - q < 13 || q[8] != ' ' || q[9] < '0' || q[9] > '9' || q[10] < '0' || q[10] > '9' ||
	     q[11] < '0' || q[11] > '9' || (q[12] != ' ' && q[12] != '\r'))) {
		*reason = "malformed status line";
		return 502;
	}
	/* reason-phrase = *( HTAB / SP / VCHAR / obs-text ) (RFC 9112 §4):
	 * llhttp takes control bytes in it, the plain form does not */
	for (; !m->plain && q < end && *q != '\r'; q++) {
		if (((unsigned char)*q < 0x20 && *q != '\t') || *q == 0x7f) {
			*reason = "control byte in the status line";
			return 502;
		}
	}
	for (uint32_t i = 0; i < h->nhdrs; i++) {
		struct http_hdr *hd = &h->hdrs[i];
		switch (hd->kind) {
		case HK_TRANSFER_ENCODING:
			te = true;
			hd->drop = 1;
			break;
		case HK_CONNECTION:
		case HK_KEEP_ALIVE:
		case HK_PROXY_CONNECTION:
		case HK_TE:
			hd->drop = 1;
			break;
		case HK_UPGRADE:
			hd->drop = !upgrade;
			break;
		default:
			break;
		}
	}
	/* As for requests (RFC 9112 §6.1): Transfer-Encoding in HTTP/1.0 is
	 * faulty framing; a coding other than chunked was not asked for (the
	 * proxy sends no TE), and one not ending in chunked would leave the
	 * body to the close. */
	if (te && (version == 10 || te_verdict(m) || !http_msg_chunked(m))) {
		*reason = "Transfer-Encoding other than chunked alone";
		return 502;
	}
	if (h->conn_tokens & HTTP_CONN_OTHER)
		drop_connection_listed(m);
	return 0;
}

size_t http_head_runs(const struct http_head *h, struct http_run *runs)
{
	size_t n = 0;
	uint32_t body_start = h->end - 2; /* the final CRLF is not part of a run */
	uint32_t run_start = h->start;

	if (h->url_skip) {
		/* Absolute-form goes out in origin-form: the method and its
		 * space, then the target from its path on. An empty path is
		 * "/" (RFC 9112 §3.2.1), taken from the "//" before the
		 * authority. */
		runs[n].off = h->start;
		runs[n++].len = h->url - h->start;
		run_start = h->url + h->url_skip;
		if (h->empty_path) {
			runs[n].off = h->authority - 1;
			runs[n++].len = 1;
		}
	}

	for (uint32_t i = 0; i < h->nhdrs; i++) {
		if (!h->hdrs[i].drop)
			continue;
		/* A header line runs from its name to the next line's name. */
		uint32_t line_end = i + 1 < h->nhdrs ? h->hdrs[i + 1].name : body_start;
		if (h->hdrs[i].name > run_start) {
			runs[n].off = run_start;
			runs[n].len = h->hdrs[i].name - run_start;
			n++;
		}
		run_start = line_end;
	}
	if (body_start > run_start) {
		runs[n].off = run_start;
		runs[n].len = body_start - run_start;
		n++;
	}
	return n;
}

static const struct {
	int status;
	const char *reason;
	const char *body;
} errors[] = {
	{400, "Bad Request", "bad request\n"},
	{404, "Not Found", "not found: no route matches the request\n"},
	{408, "Request Timeout", "request timeout\n"},
	{413, "Content Too Large", "request body too large\n"},
	{431, "Request Header Fields Too Large", "request header fields too large\n"},
	{501, "Not Implemented", "not implemented: unknown transfer coding\n"},
	{502, "Bad Gateway", "bad gateway: the upstream failed\n"},
	{503, "Service Unavailable", "service unavailable: no upstream server available\n"},
	{504, "Gateway Timeout", "gateway timeout: the upstream did not answer in time\n"},
	{HTTP_503_LOCAL, "Service Unavailable",
	 "service unavailable: the proxy is out of local resources\n"},
};

#define NERRORS (sizeof(errors) / sizeof(errors[0]))
static char canned_keep[NERRORS][256], canned_close[NERRORS][256];
static size_t canned_keep_len[NERRORS], canned_close_len[NERRORS];

/* The canned responses are formatted once, at start, and then served by
 * reference from these read-only arrays. */
void http_init(void)
{
	for (size_t i = 0; i < NERRORS; i++) {
		size_t bl = strlen(errors[i].body);
		int k = snprintf(canned_keep[i], sizeof(canned_keep[i]),
		                 "HTTP/1.1 %d %s\r\nContent-Type: text/plain\r\n"
		                 "Content-Length: %zu\r\n\r\n%s",
		                 http_wire_status(errors[i].status), errors[i].reason, bl,
		                 errors[i].body);
		int c = snprintf(canned_close[i], sizeof(canned_close[i]),
		                 "HTTP/1.1 %d %s\r\nContent-Type: text/plain\r\n"
		                 "Connection: close\r\nContent-Length: %zu\r\n\r\n%s",
		                 http_wire_status(errors[i].status), errors[i].reason, bl,
		                 errors[i].body);
		canned_keep_len[i] = (size_t)k;
		canned_close_len[i] = (size_t)c;
	}
}

const char *http_error_response(int status, bool close, size_t *len)
{
	size_t i = 0, bad_gateway = 0;
	for (; i < NERRORS && errors[i].status != status; i++)
		if (errors[i].status == 502)
			bad_gateway = i;
	if (i == NERRORS)
		i = bad_gateway; /* 502 for anything unexpected */
	*len = close ? canned_close_len[i] : canned_keep_len[i];
	return close ? canned_close[i] : canned_keep[i];
}
