/*
 * config.c — loads the YAML configuration (SPEC §3) into a struct config.
 *
 * libyaml builds the document tree; this file walks it with one keyword
 * table per kind of mapping (top level, listener, TLS, pool, server, health
 * check, circuit breaker, pin...). A row names a key, the handler that
 * validates and stores its value, where the value goes, its bounds and a
 * line of help. The walker rejects unknown and duplicate keys and reports
 * missing required ones, then runs the handlers in table order: the order of
 * a table is therefore the order of evaluation, which puts the global
 * sections before the pools that inherit them, and the pools before the
 * split and the pins that name them.
 *
 * An error never stops the walk. Each carries the position of the node at
 * fault; they are sorted into file order at the end, and a config with any
 * error is freed, never returned.
 */
#include <assert.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <netdb.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/un.h>
#include <unistd.h>

#include <yaml.h>

#include "core/config.h"
#include "core/mem.h"
#include "core/routetab.h"

#define ARRAY_SIZE(a)   (sizeof(a) / sizeof((a)[0]))
#define DURATION_MAX_MS (24u * 60 * 60 * 1000)
#define KW_MAX          24 /* at least as many rows as the largest table */
#define SHOW_MAX        64 /* longest value quoted back in a message */
#define SHOW_BUF        (SHOW_MAX + 8)

/* One error found while loading. */
struct load_err {
	size_t line, col; /* 1-based */
	size_t seq;       /* order of discovery: keeps the sort stable */
	char *msg;
};

/* The state of one load. */
struct loader {
	const char *name; /* the file, as messages name it */
	yaml_document_t doc;
	struct load_err *errv;
	size_t nerr, errcap;
	struct cfg_health health; /* the global health_check, inherited by pools */
	bool health_present;
	struct cfg_breaker breaker; /* the global circuit_breaker, likewise */
	struct cfg_route top;     /* the top-level split and pins */
	yaml_node_t *split_node, *pins_node; /* their keys, when given */
	yaml_node_t *rollout_key, *rollout_node; /* the top-level rollout's key and section */
	const struct config *cfg; /* under construction, for names of pools */
};

/*
 * One key of a mapping. PARSE validates VAL and stores it into OBJ (at OFF
 * for the generic handlers, within LO..HI for numbers); it reports its own
 * errors under PATH, the dotted name of the key.
 */
struct cfg_kw {
	const char *name;
	void (*parse)(struct loader *ld, const struct cfg_kw *kw, void *obj, const char *path,
	              yaml_node_t *key, yaml_node_t *val);
	size_t off;
	unsigned long long lo, hi;
	bool required;
	const char *help;
};

/* ---- errors ------------------------------------------------------------ */

static char *vformat(const char *fmt, va_list ap)
{
	va_list ap2;
	char *s;
	int n;

	va_copy(ap2, ap);
	n = vsnprintf(NULL, 0, fmt, ap2);
	va_end(ap2);
	if (n < 0)
		return xstrdup("(unprintable message)");
	s = xmalloc((size_t)n + 1);
	vsnprintf(s, (size_t)n + 1, fmt, ap);
	return s;
}

/* Records MSG (owned from now on) at MARK, libyaml's 0-based position. */
static void push_err(struct loader *ld, yaml_mark_t mark, char *msg)
{
	struct load_err *e;

	if (ld->nerr == ld->errcap) {
		ld->errcap = ld->errcap ? 2 * ld->errcap : 8;
		ld->errv = xrealloc(ld->errv, ld->errcap * sizeof(*ld->errv));
	}
	e = &ld->errv[ld->nerr];
	e->line = mark.line + 1;
	e->col = mark.column + 1;
	e->seq = ld->nerr++;
	e->msg = xasprintf("%s:%zu:%zu: %s", ld->name, e->line, e->col, msg);
	free(msg);
	/* One line each, whatever bytes of the file it quotes (a key in its
	 * path, a host name): control bytes are masked as describe() does. */
	for (char *q = e->msg; *q; q++)
		if ((unsigned char)*q < 0x20 || *q == 0x7f)
			*q = '?';
}

/* Reports an error at NODE about the key PATH ("" or NULL: no key). */
static void report(struct loader *ld, const yaml_node_t *node, const char *path, const char *fmt,
                   ...) __attribute__((format(printf, 4, 5)));

static void report(struct loader *ld, const yaml_node_t *node, const char *path, const char *fmt,
                   ...)
{
	va_list ap;
	char *body;

	va_start(ap, fmt);
	body = vformat(fmt, ap);
	va_end(ap);
	if (path && *path) {
		char *full = xasprintf("key '%s': %s", path, body);
		free(body);
		body = full;
	}
	push_err(ld, node->start_mark, body);
}

static int err_cmp(const void *a, const void *b)
{
	const struct load_err *x = a, *y = b;

	if (x->line != y->line)
		return x->line < y->line ? -1 : 1;
	if (x->col != y->col)
		return x->col < y->col ? -1 : 1;
	return x->seq < y->seq ? -1 : x->seq > y->seq;
}

static void errs_push(struct config_errors *errs, char *msg)
{
	errs->msgs = xrealloc(errs->msgs, (errs->n + 1) * sizeof(*errs->msgs));
	errs->msgs[errs->n++] = msg;
}

/* Hands the collected errors over to ERRS, in file order. */
static void flush_errors(struct loader *ld, struct config_errors *errs)
{
	if (ld->nerr)
		qsort(ld->errv, ld->nerr, sizeof(*ld->errv), err_cmp);
	for (size_t i = 0; i < ld->nerr; i++)
		errs_push(errs, ld->errv[i].msg);
	free(ld->errv);
	ld->errv = NULL;
}

void config_errors_free(struct config_errors *errs)
{
	if (!errs)
		return;
	for (size_t i = 0; i < errs->n; i++)
		free(errs->msgs[i]);
	free(errs->msgs);
	errs->msgs = NULL;
	errs->n = 0;
}

/* ---- document access --------------------------------------------------- */

static yaml_node_t *node_at(struct loader *ld, int index)
{
	return yaml_document_get_node(&ld->doc, index);
}

static size_t seq_len(const yaml_node_t *n)
{
	return (size_t)(n->data.sequence.items.top - n->data.sequence.items.start);
}

static yaml_node_t *seq_item(struct loader *ld, const yaml_node_t *n, size_t i)
{
	return node_at(ld, n->data.sequence.items.start[i]);
}

static size_t map_len(const yaml_node_t *n)
{
	return (size_t)(n->data.mapping.pairs.top - n->data.mapping.pairs.start);
}

static yaml_node_t *map_key(struct loader *ld, const yaml_node_t *n, size_t i)
{
	return node_at(ld, n->data.mapping.pairs.start[i].key);
}

static yaml_node_t *map_value(struct loader *ld, const yaml_node_t *n, size_t i)
{
	return node_at(ld, n->data.mapping.pairs.start[i].value);
}

static const char *text_of(const yaml_node_t *n)
{
	return n->type == YAML_SCALAR_NODE ? (const char *)n->data.scalar.value : NULL;
}

/* A plain empty, "~" or "null" scalar: YAML's way of writing nothing. */
static bool is_null(const yaml_node_t *n)
{
	const char *s = text_of(n);

	if (!s || n->data.scalar.style != YAML_PLAIN_SCALAR_STYLE)
		return false;
	return !*s || !strcmp(s, "~") || !strcmp(s, "null") || !strcmp(s, "Null") ||
	       !strcmp(s, "NULL");
}

/* The value of the first KEY of mapping MAP, or NULL. */
static yaml_node_t *map_get(struct loader *ld, const yaml_node_t *map, const char *key)
{
	if (map->type != YAML_MAPPING_NODE)
		return NULL;
	for (size_t i = 0; i < map_len(map); i++) {
		const char *k = text_of(map_key(ld, map, i));
		if (k && !strcmp(k, key))
			return map_value(ld, map, i);
	}
	return NULL;
}

/* The key before pair I of MAP written the same, or NULL. */
static yaml_node_t *earlier_key(struct loader *ld, const yaml_node_t *map, size_t i)
{
	const char *k = text_of(map_key(ld, map, i));

	for (size_t j = 0; k && j < i; j++) {
		yaml_node_t *prev = map_key(ld, map, j);
		const char *p = text_of(prev);
		if (p && !strcmp(p, k))
			return prev;
	}
	return NULL;
}

/* How NODE reads in a message: 'text' (shortened, control bytes masked), or
 * its kind. */
static const char *describe(const yaml_node_t *n, char *buf, size_t len)
{
	const char *s = text_of(n);
	size_t o = 0;

	if (n->type == YAML_MAPPING_NODE)
		return "a mapping";
	if (n->type == YAML_SEQUENCE_NODE)
		return "a list";
	if (!s || is_null(n))
		return "nothing";
	assert(len >= SHOW_BUF);
	buf[o++] = '\'';
	for (size_t i = 0; s[i] && i < SHOW_MAX; i++)
		buf[o++] = (unsigned char)s[i] < 0x20 || s[i] == 0x7f ? '?' : s[i];
	if (strlen(s) > SHOW_MAX) {
		memcpy(buf + o, "...", 3);
		o += 3;
	}
	buf[o++] = '\'';
	buf[o] = '\0';
	return buf;
}

static char *join(const char *path, const char *name)
{
	return *path ? xasprintf("%s.%s", path, name) : xstrdup(name);
}

/* ---- the walker -------------------------------------------------------- */

static void unknown_key(struct loader *ld, const yaml_node_t *key, const char *path,
                        const struct cfg_kw *kws, size_t nkws)
{
	char buf[SHOW_BUF];
	size_t len = 1;
	char *list;

	for (size_t i = 0; i < nkws; i++)
		len += strlen(kws[i].name) + 2;
	list = xmalloc(len);
	list[0] = '\0';
	for (size_t i = 0; i < nkws; i++) {
		if (i)
			strcat(list, ", ");
		strcat(list, kws[i].name);
	}
	if (*path)
		report(ld, key, NULL, "unknown key %s in %s; expected one of: %s",
		       describe(key, buf, sizeof(buf)), path, list);
	else
		report(ld, key, NULL, "unknown key %s at the top level; expected one of: %s",
		       describe(key, buf, sizeof(buf)), list);
	free(list);
}

/*
 * Checks MAP against the table KWS and runs the handler of every key present,
 * in table order, on OBJ. Returns false when MAP is not a mapping at all, so
 * that callers skip checks across keys that would only repeat the error.
 */
static bool walk(struct loader *ld, yaml_node_t *map, const char *path, const struct cfg_kw *kws,
                 size_t nkws, void *obj)
{
	yaml_node_t *keys[KW_MAX] = {0}, *vals[KW_MAX] = {0};
	char buf[SHOW_BUF];

	assert(nkws <= KW_MAX);
	if (map->type != YAML_MAPPING_NODE) {
		report(ld, map, path, "expected a mapping, got %s",
		       describe(map, buf, sizeof(buf)));
		return false;
	}
	for (size_t i = 0; i < map_len(map); i++) {
		yaml_node_t *k = map_key(ld, map, i), *first;
		const char *name = text_of(k);
		size_t j;

		if (!name) {
			report(ld, k, path, "a key must be a plain string, got %s",
			       describe(k, buf, sizeof(buf)));
			continue;
		}
		if ((first = earlier_key(ld, map, i))) {
			char *sub = join(path, name);
			report(ld, k, sub, "duplicate key (first at line %zu, column %zu)",
			       first->start_mark.line + 1, first->start_mark.column + 1);
			free(sub);
			continue;
		}
		for (j = 0; j < nkws && strcmp(kws[j].name, name); j++)
			;
		if (j == nkws) {
			unknown_key(ld, k, path, kws, nkws);
			continue;
		}
		keys[j] = k;
		vals[j] = map_value(ld, map, i);
	}
	for (size_t j = 0; j < nkws; j++) {
		if (vals[j]) {
			char *sub = join(path, kws[j].name);
			kws[j].parse(ld, &kws[j], obj, sub, keys[j], vals[j]);
			free(sub);
		} else if (kws[j].required) {
			report(ld, map, path, "missing required key '%s' (%s)", kws[j].name,
			       kws[j].help);
		}
	}
	return true;
}

#define WALK(ld, map, path, table, obj) walk((ld), (map), (path), (table), ARRAY_SIZE(table), (obj))

/* ---- scalar syntax ----------------------------------------------------- */

/* Decimal digits, saturating. -1: not a number; -2: negative or too big. */
static int parse_uint(const char *s, unsigned long long *out)
{
	bool neg = *s == '-', big = false;
	unsigned long long v = 0;

	if (neg)
		s++;
	if (*s < '0' || *s > '9')
		return -1;
	for (; *s; s++) {
		if (*s < '0' || *s > '9')
			return -1;
		if (v > (~0ull - 9) / 10)
			big = true;
		else
			v = v * 10 + (unsigned)(*s - '0');
	}
	*out = v;
	return neg || big ? -2 : 0;
}

/* "250ms", "2s", "5m", "1h". -1: malformed; -2: does not fit 64 bits. */
static int duration_ms(const char *s, uint64_t *ms)
{
	static const struct {
		const char *unit;
		uint64_t mult;
	} units[] = {{"ms", 1}, {"s", 1000}, {"m", 60 * 1000}, {"h", 60 * 60 * 1000}};
	uint64_t n = 0;
	bool big = false;

	if (*s < '0' || *s > '9')
		return -1;
	for (; *s >= '0' && *s <= '9'; s++) {
		if (n > (UINT64_MAX - 9) / 10)
			big = true;
		else
			n = n * 10 + (uint64_t)(*s - '0');
	}
	for (size_t i = 0; i < ARRAY_SIZE(units); i++) {
		if (strcmp(s, units[i].unit))
			continue;
		if (big || n > UINT64_MAX / units[i].mult)
			return -2;
		*ms = n * units[i].mult;
		return 0;
	}
	return -1;
}

/* "512", "64k", "1m", "1g" (k = 1024, either case). -1: malformed; -2: too
 * big. */
static int size_bytes(const char *s, uint64_t *bytes)
{
	uint64_t n = 0, mult = 1;
	bool big = false;

	if (*s < '0' || *s > '9')
		return -1;
	for (; *s >= '0' && *s <= '9'; s++) {
		if (n > (UINT64_MAX - 9) / 10)
			big = true;
		else
			n = n * 10 + (uint64_t)(*s - '0');
	}
	if (*s) {
		if (s[1])
			return -1;
		switch (*s) {
		case 'k':
		case 'K':
			mult = 1ull << 10;
			break;
		case 'm':
		case 'M':
			mult = 1ull << 20;
			break;
		case 'g':
		case 'G':
			mult = 1ull << 30;
			break;
		default:
			return -1;
		}
	}
	if (big || n > UINT64_MAX / mult)
		return -2;
	*bytes = n * mult;
	return 0;
}

/* "90", "0.5", "33.33" → hundredths. -1: malformed; -2: more than two
 * decimals; -3: above 100. */
static int percent_hundredths(const char *s, uint32_t *out)
{
	uint64_t whole = 0, frac = 0;
	int ndec = 0;

	if (*s < '0' || *s > '9')
		return -1;
	for (; *s >= '0' && *s <= '9'; s++)
		if (whole <= 100)
			whole = whole * 10 + (uint64_t)(*s - '0');
	if (*s == '.') {
		s++;
		if (*s < '0' || *s > '9')
			return -1;
		for (; *s >= '0' && *s <= '9'; s++, ndec++)
			if (ndec < 2)
				frac = frac * 10 + (uint64_t)(*s - '0');
		if (*s)
			return -1;
		if (ndec > 2)
			return -2;
		if (ndec == 1)
			frac *= 10;
	}
	if (*s)
		return -1;
	if (whole * 100 + frac > 10000)
		return -3;
	*out = (uint32_t)(whole * 100 + frac);
	return 0;
}

int config_parse_duration(const char *s, uint32_t *ms)
{
	uint64_t v;

	if (!s || duration_ms(s, &v) || v > UINT32_MAX)
		return -1;
	*ms = (uint32_t)v;
	return 0;
}

int config_parse_size(const char *s, uint64_t *bytes)
{
	return s && !size_bytes(s, bytes) ? 0 : -1;
}

int config_parse_percent(const char *s, uint32_t *hundredths)
{
	return s && !percent_hundredths(s, hundredths) ? 0 : -1;
}

/* Writes MS back the way an operator would, with the largest exact unit. */
static const char *fmt_duration(uint32_t ms, char *buf, size_t len)
{
	if (ms && ms % (60 * 60 * 1000) == 0)
		snprintf(buf, len, "%uh", ms / (60 * 60 * 1000));
	else if (ms && ms % (60 * 1000) == 0)
		snprintf(buf, len, "%um", ms / (60 * 1000));
	else if (ms && ms % 1000 == 0)
		snprintf(buf, len, "%us", ms / 1000);
	else
		snprintf(buf, len, "%ums", ms);
	return buf;
}

static const char *fmt_size(unsigned long long n, char *buf, size_t len)
{
	if (n && n % (1ull << 30) == 0)
		snprintf(buf, len, "%llug", n >> 30);
	else if (n && n % (1ull << 20) == 0)
		snprintf(buf, len, "%llum", n >> 20);
	else if (n && n % (1ull << 10) == 0)
		snprintf(buf, len, "%lluk", n >> 10);
	else
		snprintf(buf, len, "%llu", n);
	return buf;
}

static const char *fmt_percent(uint64_t h, char *buf, size_t len)
{
	if (h % 100 == 0)
		snprintf(buf, len, "%llu", (unsigned long long)(h / 100));
	else if (h % 10 == 0)
		snprintf(buf, len, "%llu.%llu", (unsigned long long)(h / 100),
		         (unsigned long long)(h % 100 / 10));
	else
		snprintf(buf, len, "%llu.%02llu", (unsigned long long)(h / 100),
		         (unsigned long long)(h % 100));
	return buf;
}

/* Pool and server names: operators type them as POOL/SERVER. */
static bool valid_name(const char *s)
{
	if (!*s)
		return false;
	for (; *s; s++)
		if (!isalnum((unsigned char)*s) && !strchr("_.:-", *s))
			return false;
	return true;
}

/* An HTTP field name (RFC 9110 token). */
static bool valid_token(const char *s)
{
	if (!*s)
		return false;
	for (; *s; s++)
		if (!isalnum((unsigned char)*s) && !strchr("!#$%&'*+-.^_`|~", *s))
			return false;
	return true;
}

/* A cookie-value (RFC 6265 §4.1.1): cookie-octets, optionally between
 * double quotes; empty is allowed. */
static bool valid_cookie_value(const char *s)
{
	size_t n = strlen(s);
	if (n >= 2 && s[0] == '"' && s[n - 1] == '"') {
		s++;
		n -= 2;
	}
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c < 0x21 || c > 0x7e || c == '"' || c == ',' || c == ';' || c == '\\')
			return false;
	}
	return true;
}

static bool has_ctl(const char *s, bool allow_tab)
{
	for (; *s; s++)
		if (((unsigned char)*s < 0x20 && !(allow_tab && *s == '\t')) || *s == 0x7f)
			return true;
	return false;
}

/*
 * Resolves TEXT ("HOST:PORT", "[IPV6]:PORT" or "*:PORT" for every IPv4
 * address) into A. A host name is resolved once, here, and an IPv4 address
 * is preferred when it has both. On failure, writes the reason into WHY.
 */
static int addr_parse(const char *text, struct cfg_addr *a, char *why, size_t whylen)
{
	struct addrinfo hints = {0}, *res = NULL, *pick;
	const char *start = text, *port, *node;
	char host[256];
	unsigned long long pnum;
	bool bracket = text[0] == '[';
	size_t hlen;
	int rc;

	if (bracket) {
		const char *end = strchr(text, ']');
		if (!end || end[1] != ':') {
			snprintf(why, whylen, "expected [IPV6]:PORT such as [::1]:8080");
			return -1;
		}
		start = text + 1;
		hlen = (size_t)(end - start);
		port = end + 2;
	} else {
		const char *colon = strrchr(text, ':');
		if (!colon) {
			snprintf(why, whylen, "expected HOST:PORT such as 127.0.0.1:8080");
			return -1;
		}
		hlen = (size_t)(colon - text);
		port = colon + 1;
		if (memchr(text, ':', hlen)) {
			snprintf(why, whylen, "an IPv6 address goes in brackets, as in [::1]:8080");
			return -1;
		}
	}
	if (hlen == 0) {
		snprintf(why, whylen, "the host is missing (write *:PORT for every IPv4 address)");
		return -1;
	}
	if (hlen >= sizeof(host)) {
		snprintf(why, whylen, "the host name is too long");
		return -1;
	}
	memcpy(host, start, hlen);
	host[hlen] = '\0';
	if (strlen(port) > 5 || parse_uint(port, &pnum) || pnum < 1 || pnum > 65535) {
		snprintf(why, whylen, "the port must be a number between 1 and 65535");
		return -1;
	}

	node = host;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_NUMERICHOST | AI_NUMERICSERV;
	if (!strcmp(host, "*")) {
		node = NULL;
		hints.ai_family = AF_INET;
		hints.ai_flags |= AI_PASSIVE;
	} else if (bracket) {
		hints.ai_family = AF_INET6;
	}
	rc = getaddrinfo(node, port, &hints, &res);
	if (rc == EAI_NONAME && bracket) {
		snprintf(why, whylen, "'%s' is not an IPv6 address", host);
		return -1;
	}
	if (rc == EAI_NONAME) {
		hints.ai_flags = AI_NUMERICSERV;
		rc = getaddrinfo(node, port, &hints, &res);
	}
	if (rc) {
		snprintf(why, whylen, "cannot resolve '%s': %s", host,
		         rc == EAI_SYSTEM ? strerror(errno) : gai_strerror(rc));
		return -1;
	}
	for (pick = res; pick && pick->ai_family != AF_INET; pick = pick->ai_next)
		;
	if (!pick)
		pick = res;
	memset(&a->ss, 0, sizeof(a->ss));
	memcpy(&a->ss, pick->ai_addr, pick->ai_addrlen);
	a->len = pick->ai_addrlen;
	a->text = xstrdup(text);
	freeaddrinfo(res);
	return 0;
}

/* ---- typed values ------------------------------------------------------ */

/* The text of scalar VAL, or NULL after reporting that WHAT was expected. */
static const char *want_text(struct loader *ld, const char *path, yaml_node_t *val,
                             const char *what)
{
	char buf[SHOW_BUF];
	const char *s = text_of(val);

	if (!s || is_null(val)) {
		report(ld, val, path, "expected %s, got %s", what, describe(val, buf, sizeof(buf)));
		return NULL;
	}
	if (strlen(s) != val->data.scalar.length) {
		report(ld, val, path, "must not contain NUL bytes");
		return NULL;
	}
	return s;
}

static bool want_uint(struct loader *ld, const char *path, yaml_node_t *val, unsigned long long lo,
                      unsigned long long hi, unsigned long long *out)
{
	char buf[SHOW_BUF];
	const char *s = want_text(ld, path, val, "an integer");
	unsigned long long v;
	int rc;

	if (!s)
		return false;
	rc = parse_uint(s, &v);
	if (rc == -1) {
		report(ld, val, path, "expected an integer, got %s",
		       describe(val, buf, sizeof(buf)));
		return false;
	}
	if (rc || v < lo || v > hi) {
		report(ld, val, path, "must be between %llu and %llu, got %s", lo, hi,
		       describe(val, buf, sizeof(buf)));
		return false;
	}
	*out = v;
	return true;
}

/* YAML 1.1 booleans, in any case. */
static bool want_bool(struct loader *ld, const char *path, yaml_node_t *val, bool *out)
{
	static const char *const yes[] = {"true", "yes", "on"};
	static const char *const no[] = {"false", "no", "off"};
	char buf[SHOW_BUF];
	const char *s = want_text(ld, path, val, "true or false");

	if (!s)
		return false;
	for (size_t i = 0; i < ARRAY_SIZE(yes); i++) {
		if (!strcasecmp(s, yes[i]) || !strcasecmp(s, no[i])) {
			*out = !strcasecmp(s, yes[i]);
			return true;
		}
	}
	report(ld, val, path, "expected true or false, got %s", describe(val, buf, sizeof(buf)));
	return false;
}

/* A duration above 0 and at most 24h. */
static bool want_duration(struct loader *ld, const char *path, yaml_node_t *val, uint32_t *out)
{
	char buf[SHOW_BUF];
	const char *s = want_text(ld, path, val, "a duration such as 250ms, 2s or 5m");
	uint64_t ms;
	int rc;

	if (!s)
		return false;
	rc = duration_ms(s, &ms);
	if (rc == -1) {
		report(ld, val, path, "expected a duration such as 250ms, 2s or 5m, got %s",
		       describe(val, buf, sizeof(buf)));
		return false;
	}
	if (rc || ms == 0 || ms > DURATION_MAX_MS) {
		report(ld, val, path, "must be more than 0 and at most 24h, got %s",
		       describe(val, buf, sizeof(buf)));
		return false;
	}
	*out = (uint32_t)ms;
	return true;
}

static bool want_size(struct loader *ld, const char *path, yaml_node_t *val, unsigned long long lo,
                      unsigned long long hi, uint64_t *out)
{
	char buf[SHOW_BUF], b1[32], b2[32];
	const char *s = want_text(ld, path, val, "a size such as 512, 64k or 1m");
	uint64_t n;
	int rc;

	if (!s)
		return false;
	rc = size_bytes(s, &n);
	if (rc == -1) {
		report(ld, val, path, "expected a size such as 512, 64k or 1m, got %s",
		       describe(val, buf, sizeof(buf)));
		return false;
	}
	if (rc || n < lo || n > hi) {
		report(ld, val, path, "must be between %s and %s, got %s",
		       fmt_size(lo, b1, sizeof(b1)), fmt_size(hi, b2, sizeof(b2)),
		       describe(val, buf, sizeof(buf)));
		return false;
	}
	*out = n;
	return true;
}

/* A non-empty string without control bytes, stored in *OUT (replacing it). */
static bool want_string(struct loader *ld, const char *path, yaml_node_t *val, char **out)
{
	const char *s = want_text(ld, path, val, "a string");

	if (!s)
		return false;
	if (!*s) {
		report(ld, val, path, "must not be empty");
		return false;
	}
	if (has_ctl(s, false)) {
		report(ld, val, path, "must not contain control characters");
		return false;
	}
	free(*out);
	*out = xstrdup(s);
	return true;
}

/* A file zdmd will read: it must be readable now, not at the first use. */
static bool want_file(struct loader *ld, const char *path, yaml_node_t *val, char **out)
{
	char *file = NULL;

	if (!want_string(ld, path, val, &file))
		return false;
	if (access(file, R_OK) < 0) {
		report(ld, val, path, "cannot read '%s': %s", file, strerror(errno));
		free(file);
		return false;
	}
	free(*out);
	*out = file;
	return true;
}

static bool want_addr(struct loader *ld, const char *path, yaml_node_t *val, struct cfg_addr *a)
{
	const char *s = want_text(ld, path, val, "an address such as 127.0.0.1:8080");
	char why[512], buf[SHOW_BUF];

	if (!s)
		return false;
	if (addr_parse(s, a, why, sizeof(why)) < 0) {
		report(ld, val, path, "bad address %s: %s", describe(val, buf, sizeof(buf)), why);
		return false;
	}
	return true;
}

/* ---- generic handlers: store at kw->off within obj --------------------- */

static void *slot(void *obj, const struct cfg_kw *kw)
{
	return (char *)obj + kw->off;
}

static void kw_uint(struct loader *ld, const struct cfg_kw *kw, void *obj, const char *path,
                    yaml_node_t *key, yaml_node_t *val)
{
	unsigned long long v;

	if (want_uint(ld, path, val, kw->lo, kw->hi, &v))
		*(unsigned *)slot(obj, kw) = (unsigned)v;
}

static void kw_u32(struct loader *ld, const struct cfg_kw *kw, void *obj, const char *path,
                   yaml_node_t *key, yaml_node_t *val)
{
	unsigned long long v;

	if (want_uint(ld, path, val, kw->lo, kw->hi, &v))
		*(uint32_t *)slot(obj, kw) = (uint32_t)v;
}

static void kw_bool(struct loader *ld, const struct cfg_kw *kw, void *obj, const char *path,
                    yaml_node_t *key, yaml_node_t *val)
{
	want_bool(ld, path, val, (bool *)slot(obj, kw));
}

static void kw_duration(struct loader *ld, const struct cfg_kw *kw, void *obj, const char *path,
                        yaml_node_t *key, yaml_node_t *val)
{
	want_duration(ld, path, val, (uint32_t *)slot(obj, kw));
}

static void kw_size(struct loader *ld, const struct cfg_kw *kw, void *obj, const char *path,
                    yaml_node_t *key, yaml_node_t *val)
{
	want_size(ld, path, val, kw->lo, kw->hi, (uint64_t *)slot(obj, kw));
}

static void kw_string(struct loader *ld, const struct cfg_kw *kw, void *obj, const char *path,
                      yaml_node_t *key, yaml_node_t *val)
{
	want_string(ld, path, val, (char **)slot(obj, kw));
}

static void kw_file(struct loader *ld, const struct cfg_kw *kw, void *obj, const char *path,
                    yaml_node_t *key, yaml_node_t *val)
{
	want_file(ld, path, val, (char **)slot(obj, kw));
}

/* A host name, as sent in Host or SNI: no spaces. */
static void kw_host(struct loader *ld, const struct cfg_kw *kw, void *obj, const char *path,
                    yaml_node_t *key, yaml_node_t *val)
{
	char *s = NULL;

	if (!want_string(ld, path, val, &s))
		return;
	if (strpbrk(s, " \t")) {
		report(ld, val, path, "a host name must not contain spaces");
		free(s);
		return;
	}
	free(*(char **)slot(obj, kw));
	*(char **)slot(obj, kw) = s;
}

static void kw_addr(struct loader *ld, const struct cfg_kw *kw, void *obj, const char *path,
                    yaml_node_t *key, yaml_node_t *val)
{
	want_addr(ld, path, val, (struct cfg_addr *)slot(obj, kw));
}

/* ---- listeners --------------------------------------------------------- */

static const struct cfg_kw cert_kws[] = {
        /* name, handler, offset, lo, hi, required, help */
        {"cert", kw_file, offsetof(struct cfg_cert, cert), 0, 0, true,
         "PEM certificate chain file"},
        {"key", kw_file, offsetof(struct cfg_cert, key), 0, 0, true, "PEM private key file"},
};

/* Where NODE is, for errors found after loading (OpenSSL's, at reload). */
static char *where(struct loader *ld, const yaml_node_t *node, const char *path)
{
	return xasprintf("%s:%zu:%zu: key '%s'", ld->name, node->start_mark.line + 1,
	                 node->start_mark.column + 1, path);
}

/* A listener's tls mapping is gathered here, then checked as a whole. */
struct listen_tls_ctx {
	struct cfg_listen_tls tls;
	struct cfg_cert one; /* cert and key written directly in the mapping */
};

static void tls_certs(struct loader *ld, const struct cfg_kw *kw, void *obj, const char *path,
                      yaml_node_t *key, yaml_node_t *val)
{
	struct listen_tls_ctx *ctx = obj;
	char buf[SHOW_BUF];
	size_t n;

	if (val->type != YAML_SEQUENCE_NODE) {
		report(ld, val, path, "expected a list of {cert, key}, got %s",
		       describe(val, buf, sizeof(buf)));
		return;
	}
	n = seq_len(val);
	if (n == 0) {
		report(ld, val, path, "at least one certificate is required");
		return;
	}
	ctx->tls.certs = xcalloc(n, sizeof(*ctx->tls.certs));
	ctx->tls.ncerts = n;
	for (size_t i = 0; i < n; i++) {
		char *sub = xasprintf("%s[%zu]", path, i);
		WALK(ld, seq_item(ld, val, i), sub, cert_kws, &ctx->tls.certs[i]);
		ctx->tls.certs[i].where = where(ld, seq_item(ld, val, i), sub);
		free(sub);
	}
}

static void tls_min_version(struct loader *ld, const struct cfg_kw *kw, void *obj, const char *path,
                            yaml_node_t *key, yaml_node_t *val)
{
	struct listen_tls_ctx *ctx = obj;
	char buf[SHOW_BUF];
	const char *s = want_text(ld, path, val, "\"1.2\" or \"1.3\"");

	if (!s)
		return;
	if (!strcmp(s, "1.2"))
		ctx->tls.min_version = 0x0303;
	else if (!strcmp(s, "1.3"))
		ctx->tls.min_version = 0x0304;
	else
		report(ld, val, path, "expected \"1.2\" or \"1.3\", got %s",
		       describe(val, buf, sizeof(buf)));
}

static const struct cfg_kw listen_tls_kws[] = {
        {"cert", kw_file, offsetof(struct listen_tls_ctx, one.cert), 0, 0, false,
         "PEM certificate chain file"},
        {"key", kw_file, offsetof(struct listen_tls_ctx, one.key), 0, 0, false,
         "PEM private key file"},
        {"certs", tls_certs, 0, 0, 0, false, "several {cert, key}, picked by SNI"},
        {"min_version", tls_min_version, 0, 0, 0, false, "\"1.2\" or \"1.3\""},
        {"ciphers", kw_string, offsetof(struct listen_tls_ctx, tls.ciphers), 0, 0, false,
         "OpenSSL cipher list for TLS 1.2"},
        {"ciphersuites", kw_string, offsetof(struct listen_tls_ctx, tls.ciphersuites), 0, 0, false,
         "OpenSSL cipher suites for TLS 1.3"},
};

/* Either cert and key, or certs: the first certificate is the default. */
static void listen_tls(struct loader *ld, const struct cfg_kw *kw, void *obj, const char *path,
                       yaml_node_t *key, yaml_node_t *val)
{
	struct cfg_listen *l = obj;
	struct listen_tls_ctx ctx = {.tls.min_version = 0x0303};
	yaml_node_t *cert, *pkey, *certs;

	if (WALK(ld, val, path, listen_tls_kws, &ctx)) {
		cert = map_get(ld, val, "cert");
		pkey = map_get(ld, val, "key");
		certs = map_get(ld, val, "certs");
		if (certs && (cert || pkey))
			report(ld, certs, path, "give either cert and key, or certs, not both");
		else if (!certs && !cert && !pkey)
			report(ld, val, path, "missing 'cert' and 'key' (or 'certs')");
		else if (!certs && !pkey)
			report(ld, val, path, "missing 'key' next to 'cert'");
		else if (!certs && !cert)
			report(ld, val, path, "missing 'cert' next to 'key'");
	}
	if (ctx.one.cert && ctx.one.key && !ctx.tls.certs) {
		ctx.tls.certs = xcalloc(1, sizeof(*ctx.tls.certs));
		ctx.tls.certs[0] = ctx.one;
		ctx.tls.certs[0].where = where(ld, val, path);
		ctx.tls.ncerts = 1;
	} else {
		free(ctx.one.cert);
		free(ctx.one.key);
	}
	l->tls = xmalloc(sizeof(*l->tls));
	*l->tls = ctx.tls;
}

static const struct cfg_kw listen_kws[] = {
        {"address", kw_addr, offsetof(struct cfg_listen, addr), 0, 0, true,
         "HOST:PORT to accept clients on"},
        {"tls", listen_tls, 0, 0, 0, false, "TLS termination: {cert, key} or {certs: [...]}"},
};

static bool same_addr(const struct cfg_addr *a, const struct cfg_addr *b)
{
	return a->len && a->len == b->len && !memcmp(&a->ss, &b->ss, a->len);
}

static void top_listen(struct loader *ld, const struct cfg_kw *kw, void *obj, const char *path,
                       yaml_node_t *key, yaml_node_t *val)
{
	struct config *cfg = obj;
	char buf[SHOW_BUF];
	size_t n;

	if (val->type != YAML_SEQUENCE_NODE) {
		report(ld, val, path, "expected a list of listeners, got %s",
		       describe(val, buf, sizeof(buf)));
		return;
	}
	n = seq_len(val);
	if (n == 0) {
		report(ld, val, path, "at least one listener is required");
		return;
	}
	cfg->listen = xcalloc(n, sizeof(*cfg->listen));
	cfg->nlisten = n;
	for (size_t i = 0; i < n; i++) {
		yaml_node_t *item = seq_item(ld, val, i);
		char *sub = xasprintf("%s[%zu]", path, i);

		if (item->type == YAML_MAPPING_NODE)
			WALK(ld, item, sub, listen_kws, &cfg->listen[i]);
		else
			want_addr(ld, sub, item, &cfg->listen[i].addr);
		for (size_t j = 0; j < i; j++) {
			if (!same_addr(&cfg->listen[i].addr, &cfg->listen[j].addr))
				continue;
			report(ld, item, sub, "listens on the same address as %s[%zu]", path, j);
			break;
		}
		free(sub);
	}
}

/* ---- admin, control and the other scalars at the top ------------------- */

static void top_admin(struct loader *ld, const struct cfg_kw *kw, void *obj, const char *path,
                      yaml_node_t *key, yaml_node_t *val)
{
	struct config *cfg = obj;

	cfg->admin = xcalloc(1, sizeof(*cfg->admin));
	want_addr(ld, path, val, cfg->admin);
}

static void ctl_socket(struct loader *ld, const struct cfg_kw *kw, void *obj, const char *path,
                       yaml_node_t *key, yaml_node_t *val)
{
	struct config *cfg = obj;
	struct sockaddr_un un;
	char *s = NULL;

	if (!want_string(ld, path, val, &s))
		return;
	if (strlen(s) >= sizeof(un.sun_path)) {
		report(ld, val, path, "a Unix socket path must be shorter than %zu bytes",
		       sizeof(un.sun_path));
		free(s);
		return;
	}
	cfg->control_socket = s;
}

/* Octal, as chmod takes it: 0660 (a YAML number or a string), 660, 0o660. */
static void ctl_mode(struct loader *ld, const struct cfg_kw *kw, void *obj, const char *path,
                     yaml_node_t *key, yaml_node_t *val)
{
	struct config *cfg = obj;
	char buf[SHOW_BUF];
	const char *s = want_text(ld, path, val, "an octal mode such as 0660"), *p;
	unsigned long mode = 0;

	if (!s)
		return;
	p = !strncmp(s, "0o", 2) ? s + 2 : s;
	if (!*p || strspn(p, "01234567") != strlen(p)) {
		report(ld, val, path, "expected an octal mode such as 0660, got %s",
		       describe(val, buf, sizeof(buf)));
		return;
	}
	for (; *p && mode <= 0777; p++)
		mode = mode * 8 + (unsigned long)(*p - '0');
	if (mode > 0777) {
		report(ld, val, path, "must be between 0 and 0777, got %s",
		       describe(val, buf, sizeof(buf)));
		return;
	}
	cfg->control_mode = (mode_t)mode;
}

/* The group must exist now, so that `zdmd -t` catches a typo. */
static void ctl_group(struct loader *ld, const struct cfg_kw *kw, void *obj, const char *path,
                      yaml_node_t *key, yaml_node_t *val)
{
	struct config *cfg = obj;
	struct group grp, *found = NULL;
	size_t len = 4096;
	char *name = NULL, *buf = NULL;
	int rc;

	if (!want_string(ld, path, val, &name))
		return;
	for (;;) {
		buf = xrealloc(buf, len);
		rc = getgrnam_r(name, &grp, buf, len, &found);
		if (rc != ERANGE || len >= (1u << 20))
			break;
		len *= 2;
	}
	if (rc)
		report(ld, val, path, "cannot look up group '%s': %s", name, strerror(rc));
	else if (!found)
		report(ld, val, path, "no such group '%s'", name);
	if (!rc && found)
		cfg->control_group = name;
	else
		free(name);
	free(buf);
}

static const struct cfg_kw control_kws[] = {
        {"socket", ctl_socket, 0, 0, 0, true, "path of the Unix socket zdmctl talks to"},
        {"mode", ctl_mode, 0, 0, 0, false, "permissions of the socket, default 0600"},
        {"group", ctl_group, 0, 0, 0, false, "group owning the socket"},
};

static void top_control(struct loader *ld, const struct cfg_kw *kw, void *obj, const char *path,
                        yaml_node_t *key, yaml_node_t *val)
{
	WALK(ld, val, path, control_kws, obj);
}

static void top_workers(struct loader *ld, const struct cfg_kw *kw, void *obj, const char *path,
                        yaml_node_t *key, yaml_node_t *val)
{
	struct config *cfg = obj;
	char buf[SHOW_BUF];
	const char *s = want_text(ld, path, val, "an integer or \"auto\"");
	unsigned long long n;
	int rc;

	if (!s)
		return;
	if (!strcmp(s, "auto")) {
		cfg->workers = 0;
		return;
	}
	rc = parse_uint(s, &n);
	if (rc == -1)
		report(ld, val, path, "expected an integer or \"auto\", got %s",
		       describe(val, buf, sizeof(buf)));
	else if (rc || n < 1 || n > 256)
		report(ld, val, path, "must be between 1 and 256 (or \"auto\"), got %s",
		       describe(val, buf, sizeof(buf)));
	else
		cfg->workers = (unsigned)n;
}

static void top_access_log(struct loader *ld, const struct cfg_kw *kw, void *obj, const char *path,
                           yaml_node_t *key, yaml_node_t *val)
{
	struct config *cfg = obj;

	if (want_string(ld, path, val, &cfg->access_log) && !strcmp(cfg->access_log, "off")) {
		free(cfg->access_log);
		cfg->access_log = NULL;
	}
}

/* A string that must be one of names[]; its index goes to *out. */
static void want_choice(struct loader *ld, const char *path, yaml_node_t *val,
                        const char *const *names, size_t n, int *out)
{
	char *v = NULL;
	if (!want_string(ld, path, val, &v))
		return;
	for (size_t i = 0; i < n; i++) {
		if (strcmp(v, names[i]) == 0) {
			*out = (int)i;
			free(v);
			return;
		}
	}
	char list[128] = "";
	for (size_t i = 0; i < n; i++)
		snprintf(list + strlen(list), sizeof(list) - strlen(list), "%s%s", i ? ", " : "",
		         names[i]);
	report(ld, val, path, "expected one of %s, got '%s'", list, v);
	free(v);
}

static void top_access_log_format(struct loader *ld, const struct cfg_kw *kw, void *obj,
                                  const char *path, yaml_node_t *key, yaml_node_t *val)
{
	static const char *const names[] = {"text", "json"};
	struct config *cfg = obj;
	int v = cfg->access_log_json;
	want_choice(ld, path, val, names, 2, &v);
	cfg->access_log_json = v == 1;
}

static void top_log_level(struct loader *ld, const struct cfg_kw *kw, void *obj, const char *path,
                          yaml_node_t *key, yaml_node_t *val)
{
	static const char *const names[] = {"error", "warn", "info", "debug"};
	struct config *cfg = obj;
	int v = cfg->log_level;
	want_choice(ld, path, val, names, 4, &v);
	cfg->log_level = v;
}

static const struct cfg_kw timeout_kws[] = {
        {"connect", kw_duration, offsetof(struct cfg_timeouts, connect_ms), 0, 0, false,
         "connecting to an upstream"},
        {"request_header", kw_duration, offsetof(struct cfg_timeouts, request_header_ms), 0, 0,
         false, "receiving a request's header section"},
        {"upstream_response", kw_duration, offsetof(struct cfg_timeouts, upstream_response_ms), 0,
         0, false, "waiting for an upstream's response"},
        {"client_idle", kw_duration, offsetof(struct cfg_timeouts, client_idle_ms), 0, 0, false,
         "an idle client connection"},
        {"upstream_idle", kw_duration, offsetof(struct cfg_timeouts, upstream_idle_ms), 0, 0, false,
         "an idle pooled upstream connection"},
        {"client_write", kw_duration, offsetof(struct cfg_timeouts, client_write_ms), 0, 0, false,
         "a client that accepts no byte of its response"},
        {"drain", kw_duration, offsetof(struct cfg_timeouts, drain_ms), 0, 0, false,
         "in-flight requests at shutdown"},
        {"tunnel_idle", kw_duration, offsetof(struct cfg_timeouts, tunnel_idle_ms), 0, 0, false,
         "an Upgrade tunnel with no byte either way"},
};

static void top_timeouts(struct loader *ld, const struct cfg_kw *kw, void *obj, const char *path,
                         yaml_node_t *key, yaml_node_t *val)
{
	WALK(ld, val, path, timeout_kws, &((struct config *)obj)->timeouts);
}

static const struct cfg_kw limit_kws[] = {
        {"max_connections", kw_u32, offsetof(struct cfg_limits, max_connections), 1, 1000000, false,
         "client connections at once"},
        {"max_header_bytes", kw_size, offsetof(struct cfg_limits, max_header_bytes), 1 << 10,
         1 << 20, false, "size of a request's header section"},
        {"max_body_bytes", kw_size, offsetof(struct cfg_limits, max_body_bytes), 0, UINT64_MAX,
         false, "size of a request body, 0 = unlimited"},
};

static void top_limits(struct loader *ld, const struct cfg_kw *kw, void *obj, const char *path,
                       yaml_node_t *key, yaml_node_t *val)
{
	WALK(ld, val, path, limit_kws, &((struct config *)obj)->limits);
}

/* ---- health checks and circuit breakers -------------------------------- */

static void hc_path(struct loader *ld, const struct cfg_kw *kw, void *obj, const char *path,
                    yaml_node_t *key, yaml_node_t *val)
{
	struct cfg_health *h = obj;
	char buf[SHOW_BUF];
	char *s = NULL;

	if (!want_string(ld, path, val, &s))
		return;
	if (s[0] != '/' || strpbrk(s, " \t")) {
		report(ld, val, path,
		       "expected a path starting with '/' and without spaces, got %s",
		       describe(val, buf, sizeof(buf)));
		free(s);
		return;
	}
	free(h->path);
	h->path = s;
}

/* Three digits at *P, advancing it; -1 if there are not exactly three. */
static int parse_status(const char **p)
{
	const char *s = *p;

	if (strspn(s, "0123456789") != 3)
		return -1;
	*p = s + 3;
	return (s[0] - '0') * 100 + (s[1] - '0') * 10 + (s[2] - '0');
}

/* "200" or "200-399", statuses 100..599. */
static void hc_expect(struct loader *ld, const struct cfg_kw *kw, void *obj, const char *path,
                      yaml_node_t *key, yaml_node_t *val)
{
	struct cfg_health *h = obj;
	char buf[SHOW_BUF];
	const char *s = want_text(ld, path, val, "a status such as 200 or a range such as 200-399");
	const char *p = s;
	int lo, hi;

	if (!s)
		return;
	lo = hi = parse_status(&p);
	if (lo >= 0 && *p == '-') {
		p++;
		hi = parse_status(&p);
	}
	if (lo < 100 || hi < 0 || *p || hi > 599 || lo > hi) {
		report(ld, val, path,
		       "expected a status such as 200 or a range such as 200-399 (within 100-599), "
		       "got %s",
		       describe(val, buf, sizeof(buf)));
		return;
	}
	h->expect_lo = lo;
	h->expect_hi = hi;
}

static const struct cfg_kw health_kws[] = {
        {"path", hc_path, 0, 0, 0, false, "path requested, default /health"},
        {"host", kw_host, offsetof(struct cfg_health, host), 0, 0, false,
         "Host header, default the server's address"},
        {"interval", kw_duration, offsetof(struct cfg_health, interval_ms), 0, 0, false,
         "time between two checks of a server"},
        {"timeout", kw_duration, offsetof(struct cfg_health, timeout_ms), 0, 0, false,
         "time a check may take, at most the interval"},
        {"rise", kw_uint, offsetof(struct cfg_health, rise), 1, 100, false,
         "consecutive passes to mark a server up"},
        {"fall", kw_uint, offsetof(struct cfg_health, fall), 1, 100, false,
         "consecutive failures to mark a server down"},
        {"expect", hc_expect, 0, 0, 0, false, "passing statuses, e.g. 200-399"},
        {"enabled", kw_bool, offsetof(struct cfg_health, enabled), 0, 0, false,
         "false turns the checks off"},
};

/* Absent, or a duration want_duration() accepted. */
static bool sound_duration(const yaml_node_t *n)
{
	uint64_t ms;

	if (!n)
		return true;
	return text_of(n) && !duration_ms(text_of(n), &ms) && ms && ms <= DURATION_MAX_MS;
}

/*
 * Applies the health_check mapping VAL over H, which holds the values
 * inherited from the global section (or the defaults). A section turns the
 * checks on unless it says `enabled: false`, or inherits an explicit
 * `enabled: false` from the global section (INHERITED: there is one).
 */
static void health_apply(struct loader *ld, const char *path, yaml_node_t *val,
                         struct cfg_health *h, bool inherited)
{
	yaml_node_t *iv, *to;
	char b1[32], b2[32];
	char *sub;

	if (!WALK(ld, val, path, health_kws, h))
		return;
	if (!inherited && !map_get(ld, val, "enabled"))
		h->enabled = true;
	iv = map_get(ld, val, "interval");
	to = map_get(ld, val, "timeout");
	if (!(iv || to) || !sound_duration(iv) || !sound_duration(to))
		return; /* nothing new to compare, or an error already said why */
	if (h->timeout_ms > h->interval_ms && !to) {
		/* A shorter interval under an inherited timeout: the check's
		 * timeout is bounded by the interval, as the operator meant. */
		h->timeout_ms = h->interval_ms;
		return;
	}
	if (h->timeout_ms > h->interval_ms) {
		sub = join(path, to ? "timeout" : "interval");
		report(ld, to ? to : iv, sub, "timeout (%s) must not exceed interval (%s)",
		       fmt_duration(h->timeout_ms, b1, sizeof(b1)),
		       fmt_duration(h->interval_ms, b2, sizeof(b2)));
		free(sub);
	}
}

static void top_health(struct loader *ld, const struct cfg_kw *kw, void *obj, const char *path,
                       yaml_node_t *key, yaml_node_t *val)
{
	health_apply(ld, path, val, &ld->health, false);
	ld->health_present = true;
}

const char *const cfg_fail_kind_names[CFG_FAIL_KINDS] = {
        [CFG_FAIL_CONNECT] = "connect", [CFG_FAIL_RESET] = "reset",
        [CFG_FAIL_INVALID] = "invalid", [CFG_FAIL_5XX] = "5xx",
        [CFG_FAIL_TIMEOUT] = "timeout",
};

/*
 * A list of failure kinds, each named once, into the bit mask at OFF. The
 * list replaces the inherited one as a whole (a pool's count is not added
 * to the global one). An empty list is allowed: nothing is a failure and
 * the circuit never opens.
 */
static void kw_fail_kinds(struct loader *ld, const struct cfg_kw *kw, void *obj, const char *path,
                          yaml_node_t *key, yaml_node_t *val)
{
	yaml_node_t *first[CFG_FAIL_KINDS] = {0};
	char buf[SHOW_BUF], list[64] = "";
	uint32_t mask = 0;
	size_t nerr = ld->nerr;

	for (size_t k = 0; k < CFG_FAIL_KINDS; k++)
		snprintf(list + strlen(list), sizeof(list) - strlen(list), "%s%s", k ? ", " : "",
		         cfg_fail_kind_names[k]);
	if (val->type != YAML_SEQUENCE_NODE) {
		report(ld, val, path, "expected a list of failure kinds (%s), got %s", list,
		       describe(val, buf, sizeof(buf)));
		return;
	}
	for (size_t i = 0; i < seq_len(val); i++) {
		yaml_node_t *item = seq_item(ld, val, i);
		const char *name = is_null(item) ? NULL : text_of(item);
		char *sub = xasprintf("%s[%zu]", path, i);
		size_t k = 0;

		if (name && strlen(name) == item->data.scalar.length)
			while (k < CFG_FAIL_KINDS && strcmp(name, cfg_fail_kind_names[k]))
				k++;
		else
			k = CFG_FAIL_KINDS;
		if (k == CFG_FAIL_KINDS) {
			report(ld, item, sub, "expected one of %s, got %s", list,
			       describe(item, buf, sizeof(buf)));
		} else if (first[k]) {
			report(ld, item, sub,
			       "'%s' is listed twice (first at line %zu, column %zu)",
			       cfg_fail_kind_names[k], first[k]->start_mark.line + 1,
			       first[k]->start_mark.column + 1);
		} else {
			first[k] = item;
			mask |= CFG_FAIL_BIT(k);
		}
		free(sub);
	}
	if (ld->nerr == nerr)
		*(uint32_t *)slot(obj, kw) = mask;
}

static const struct cfg_kw breaker_kws[] = {
        {"failures", kw_uint, offsetof(struct cfg_breaker, failures), 0, 1000, false,
         "consecutive failures that open the circuit, 0 = never"},
        {"count", kw_fail_kinds, offsetof(struct cfg_breaker, count), 0, 0, false,
         "what is a failure: connect, reset, invalid, 5xx, timeout"},
        {"open_for", kw_duration, offsetof(struct cfg_breaker, open_for_ms), 0, 0, false,
         "time open before half-open"},
        {"half_open_probes", kw_uint, offsetof(struct cfg_breaker, half_open_probes), 1, 1000,
         false, "requests admitted while half-open"},
};

static void top_breaker(struct loader *ld, const struct cfg_kw *kw, void *obj, const char *path,
                        yaml_node_t *key, yaml_node_t *val)
{
	WALK(ld, val, path, breaker_kws, &ld->breaker);
}

/* ---- pools ------------------------------------------------------------- */

static void server_name(struct loader *ld, const struct cfg_kw *kw, void *obj, const char *path,
                        yaml_node_t *key, yaml_node_t *val)
{
	struct cfg_server *s = obj;
	char buf[SHOW_BUF];
	char *name = NULL;

	if (!want_string(ld, path, val, &name))
		return;
	if (!valid_name(name)) {
		report(ld, val, path,
		       "a server name may hold only letters, digits, '_', '.', ':' and '-', got %s",
		       describe(val, buf, sizeof(buf)));
		free(name);
		return;
	}
	s->name = name;
}

static const struct cfg_kw server_kws[] = {
        {"address", kw_addr, offsetof(struct cfg_server, addr), 0, 0, true,
         "HOST:PORT of the upstream server"},
        {"name", server_name, 0, 0, 0, false, "name used by zdmctl, default the address"},
        {"weight", kw_uint, offsetof(struct cfg_server, weight), 0, 1000, false,
         "relative weight in the pool, 0..1000, default 1"},
};

/* Where server ITEM got its name, for messages about it: the name, else the
 * address it defaults to. *WHICH is the key holding it, NULL for an item
 * written as a bare address. */
static yaml_node_t *server_name_node(struct loader *ld, yaml_node_t *item, const char **which)
{
	yaml_node_t *n;

	*which = "name";
	if ((n = map_get(ld, item, "name")))
		return n;
	*which = "address";
	if ((n = map_get(ld, item, "address")))
		return n;
	*which = NULL;
	return item;
}

static void pool_servers(struct loader *ld, const struct cfg_kw *kw, void *obj, const char *path,
                         yaml_node_t *key, yaml_node_t *val)
{
	struct cfg_pool *pool = obj;
	char buf[SHOW_BUF];
	size_t n;

	if (val->type != YAML_SEQUENCE_NODE) {
		report(ld, val, path, "expected a list of servers, got %s",
		       describe(val, buf, sizeof(buf)));
		return;
	}
	n = seq_len(val);
	if (n == 0) {
		report(ld, val, path, "a pool needs at least one server");
		return;
	}
	pool->servers = xcalloc(n, sizeof(*pool->servers));
	pool->nservers = n;
	for (size_t i = 0; i < n; i++) {
		struct cfg_server *s = &pool->servers[i];
		yaml_node_t *item = seq_item(ld, val, i);
		char *sub = xasprintf("%s[%zu]", path, i);

		s->weight = 1;
		if (item->type == YAML_MAPPING_NODE)
			WALK(ld, item, sub, server_kws, s);
		else
			want_addr(ld, sub, item, &s->addr);
		if (!s->name && s->addr.text)
			s->name = xstrdup(s->addr.text);
		for (size_t j = 0; s->name && j < i; j++) {
			const char *f1, *f2;
			yaml_node_t *first, *dup;
			char *where;

			if (!pool->servers[j].name || strcmp(pool->servers[j].name, s->name))
				continue;
			first = server_name_node(ld, seq_item(ld, val, j), &f1);
			dup = server_name_node(ld, item, &f2);
			where = f2 ? join(sub, f2) : xstrdup(sub);
			report(ld, dup, where,
			       "duplicate server name '%s' in pool '%s' (first at line %zu, column "
			       "%zu)%s",
			       s->name, pool->name, first->start_mark.line + 1,
			       first->start_mark.column + 1,
			       f2 && !strcmp(f2, "name") ? "" : "; give one of them a name");
			free(where);
			break;
		}
		free(sub);
	}
}

static void pool_health(struct loader *ld, const struct cfg_kw *kw, void *obj, const char *path,
                        yaml_node_t *key, yaml_node_t *val)
{
	struct cfg_pool *pool = obj;

	health_apply(ld, path, val, &pool->health, ld->health_present);
}

static void pool_breaker(struct loader *ld, const struct cfg_kw *kw, void *obj, const char *path,
                         yaml_node_t *key, yaml_node_t *val)
{
	WALK(ld, val, path, breaker_kws, &((struct cfg_pool *)obj)->breaker);
}

static const struct cfg_kw upstream_tls_kws[] = {
        {"verify", kw_bool, offsetof(struct cfg_upstream_tls, verify), 0, 0, false,
         "check the servers' certificates, default true"},
        {"ca", kw_file, offsetof(struct cfg_upstream_tls, ca), 0, 0, false,
         "CA bundle, default the system store"},
        {"sni", kw_host, offsetof(struct cfg_upstream_tls, sni), 0, 0, false,
         "server name sent in the handshake"},
};

/* Present, even empty, means TLS to the pool's servers. */
static void pool_tls(struct loader *ld, const struct cfg_kw *kw, void *obj, const char *path,
                     yaml_node_t *key, yaml_node_t *val)
{
	struct cfg_pool *pool = obj;

	pool->tls.enabled = true;
	WALK(ld, val, path, upstream_tls_kws, &pool->tls);
	free(pool->tls.where);
	pool->tls.where = where(ld, val, path);
}

static const struct cfg_kw pool_kws[] = {
        {"servers", pool_servers, 0, 0, 0, true, "the pool's upstream servers"},
        {"health_check", pool_health, 0, 0, 0, false, "overrides the global health_check"},
        {"circuit_breaker", pool_breaker, 0, 0, 0, false, "overrides the global circuit_breaker"},
        {"tls", pool_tls, 0, 0, 0, false, "TLS to the servers: {verify, ca, sni}"},
};

static void health_copy(struct cfg_health *dst, const struct cfg_health *src)
{
	*dst = *src;
	dst->path = src->path ? xstrdup(src->path) : NULL;
	dst->host = src->host ? xstrdup(src->host) : NULL;
}

static void top_pools(struct loader *ld, const struct cfg_kw *kw, void *obj, const char *path,
                      yaml_node_t *key, yaml_node_t *val)
{
	struct config *cfg = obj;
	char buf[SHOW_BUF];
	size_t n;

	if (val->type != YAML_MAPPING_NODE) {
		report(ld, val, path, "expected a mapping of pool names to pools, got %s",
		       describe(val, buf, sizeof(buf)));
		return;
	}
	n = map_len(val);
	if (n == 0) {
		report(ld, val, path, "at least one pool is required");
		return;
	}
	cfg->pools = xcalloc(n, sizeof(*cfg->pools));
	cfg->npools = n;
	for (size_t i = 0; i < n; i++) {
		struct cfg_pool *pool = &cfg->pools[i];
		yaml_node_t *k = map_key(ld, val, i), *first;
		const char *name = text_of(k);
		char *sub;

		health_copy(&pool->health, &ld->health);
		pool->breaker = ld->breaker;
		pool->tls.verify = true;
		if (!name || is_null(k)) {
			report(ld, k, path, "a pool name must be a string, got %s",
			       describe(k, buf, sizeof(buf)));
			continue;
		}
		pool->name = xstrdup(name);
		sub = join(path, name);
		if ((first = earlier_key(ld, val, i)))
			report(ld, k, sub, "duplicate pool '%s' (first at line %zu, column %zu)",
			       name, first->start_mark.line + 1, first->start_mark.column + 1);
		else if (!valid_name(name))
			report(ld, k, sub,
			       "a pool name may hold only letters, digits, '_', '.', ':' and '-'");
		WALK(ld, map_value(ld, val, i), sub, pool_kws, pool);
		free(sub);
	}
}

/* ---- split and pins ---------------------------------------------------- */

static char *pool_list(const struct config *cfg)
{
	size_t len = 1;
	char *s;

	for (size_t i = 0; i < cfg->npools; i++)
		len += (cfg->pools[i].name ? strlen(cfg->pools[i].name) : 0) + 2;
	s = xmalloc(len);
	s[0] = '\0';
	for (size_t i = 0; i < cfg->npools; i++) {
		if (!cfg->pools[i].name || config_pool_index(cfg, cfg->pools[i].name) != (int)i)
			continue;
		if (s[0])
			strcat(s, ", ");
		strcat(s, cfg->pools[i].name);
	}
	return s;
}

/* The index of the pool NODE names, or -1 after reporting. Without any pool
 * (a broken pools section, already reported) nothing is reported. */
static int want_pool(struct loader *ld, const char *path, yaml_node_t *node)
{
	char buf[SHOW_BUF];
	const char *s = want_text(ld, path, node, "a pool name");
	char *list;
	int i;

	if (!s)
		return -1;
	i = config_pool_index(ld->cfg, s);
	if (i < 0 && ld->cfg->npools) {
		list = pool_list(ld->cfg);
		report(ld, node, path, "unknown pool %s; the pools are: %s",
		       describe(node, buf, sizeof(buf)), list);
		free(list);
	}
	return i;
}

/* Reads a split mapping VAL into route R's members, in the mapping's order
 * (the first is the route's baseline). */
static void parse_split(struct loader *ld, const char *path, yaml_node_t *key, yaml_node_t *val,
                        struct cfg_route *r)
{
	size_t nerr = ld->nerr, n;
	uint64_t sum = 0;
	char buf[SHOW_BUF];

	if (val->type != YAML_MAPPING_NODE) {
		report(ld, val, path, "expected a mapping of pool names to percentages, got %s",
		       describe(val, buf, sizeof(buf)));
		return;
	}
	n = map_len(val);
	if (n == 0) {
		report(ld, val, path, "a split names at least one pool");
		return;
	}
	r->pools = xcalloc(n, sizeof(*r->pools));
	r->split = xcalloc(n, sizeof(*r->split));
	for (size_t i = 0; i < n; i++) {
		yaml_node_t *k = map_key(ld, val, i), *v = map_value(ld, val, i), *first;
		const char *name = text_of(k);
		char *sub = join(path, name ? name : "?");
		const char *s;
		uint32_t h = 0;
		int pi, rc;

		if ((first = earlier_key(ld, val, i))) {
			report(ld, k, sub, "duplicate key (first at line %zu, column %zu)",
			       first->start_mark.line + 1, first->start_mark.column + 1);
			free(sub);
			continue;
		}
		pi = want_pool(ld, sub, k);
		s = want_text(ld, sub, v, "a percentage");
		rc = s ? percent_hundredths(s, &h) : 0;
		if (rc == -1)
			report(ld, v, sub, "expected a percentage such as 90 or 0.5, got %s",
			       describe(v, buf, sizeof(buf)));
		else if (rc == -2)
			report(ld, v, sub, "at most 2 decimals are allowed, got %s",
			       describe(v, buf, sizeof(buf)));
		else if (rc == -3)
			report(ld, v, sub, "must be between 0 and 100, got %s",
			       describe(v, buf, sizeof(buf)));
		else if (s && pi >= 0) {
			r->pools[r->nsplit] = (size_t)pi;
			r->split[r->nsplit++] = h;
		}
		sum += h;
		free(sub);
	}
	r->npools = r->nsplit;
	if (ld->nerr == nerr && ld->cfg->npools && sum != 10000)
		report(ld, key, path, "the percentages sum to %s, they must sum to 100",
		       fmt_percent(sum, buf, sizeof(buf)));
}

static void top_split(struct loader *ld, const struct cfg_kw *kw, void *obj, const char *path,
                      yaml_node_t *key, yaml_node_t *val)
{
	ld->split_node = key;
	parse_split(ld, path, key, val, &ld->top);
}

/* A copy of the text VAL when it is a token (an HTTP field or cookie name:
 * WHAT, as the error says it), else NULL with the error reported. */
static char *want_token(struct loader *ld, const char *path, yaml_node_t *val, const char *what)
{
	char buf[SHOW_BUF];
	const char *s = want_text(ld, path, val, what);

	if (!s)
		return NULL;
	if (!valid_token(s)) {
		report(ld, val, path, "expected %s, got %s", what, describe(val, buf, sizeof(buf)));
		return NULL;
	}
	return xstrdup(s);
}

static void pin_header(struct loader *ld, const struct cfg_kw *kw, void *obj, const char *path,
                       yaml_node_t *key, yaml_node_t *val)
{
	struct cfg_pin *pin = obj;
	pin->header = want_token(ld, path, val, "a header name");
}

/* Any header value, even empty, but one that can arrive: no control bytes,
 * no surrounding blanks (HTTP strips them). */
static void pin_value(struct loader *ld, const struct cfg_kw *kw, void *obj, const char *path,
                      yaml_node_t *key, yaml_node_t *val)
{
	struct cfg_pin *pin = obj;
	const char *s = want_text(ld, path, val, "a header value");
	size_t len;

	if (!s)
		return;
	len = strlen(s);
	if (has_ctl(s, true)) {
		report(ld, val, path, "must not contain control characters");
		return;
	}
	if (len && (strchr(" \t", s[0]) || strchr(" \t", s[len - 1]))) {
		report(ld, val, path, "must not start or end with blanks: HTTP strips them");
		return;
	}
	pin->value = xstrdup(s);
}

/* A cookie name is a token (RFC 6265 §4.1.1). */
static void pin_cookie(struct loader *ld, const struct cfg_kw *kw, void *obj, const char *path,
                       yaml_node_t *key, yaml_node_t *val)
{
	struct cfg_pin *pin = obj;
	pin->cookie = want_token(ld, path, val, "a cookie name (a token)");
}

static void pin_pool(struct loader *ld, const struct cfg_kw *kw, void *obj, const char *path,
                     yaml_node_t *key, yaml_node_t *val)
{
	struct cfg_pin *pin = obj;
	int i = want_pool(ld, path, val);

	if (i >= 0)
		pin->pool = (size_t)i;
}

static const struct cfg_kw pin_kws[] = {
        {"header", pin_header, 0, 0, 0, false, "request header to match, any case"},
        {"cookie", pin_cookie, 0, 0, 0, false, "cookie to match, among the request's cookies"},
        {"value", pin_value, 0, 0, 0, true, "value to match exactly"},
        {"pool", pin_pool, 0, 0, 0, true, "pool the matching requests go to"},
};

/* Reads a list of pins into *PINS. */
static void parse_pins(struct loader *ld, const char *path, yaml_node_t *val,
                       struct cfg_pin **pins, size_t *npins)
{
	char buf[SHOW_BUF];
	size_t n;

	if (val->type != YAML_SEQUENCE_NODE) {
		report(ld, val, path, "expected a list of {header or cookie, value, pool}, got %s",
		       describe(val, buf, sizeof(buf)));
		return;
	}
	n = seq_len(val);
	*pins = n ? xcalloc(n, sizeof(**pins)) : NULL;
	*npins = n;
	for (size_t i = 0; i < n; i++) {
		char *sub = xasprintf("%s[%zu]", path, i);

		yaml_node_t *item = seq_item(ld, val, i);
		struct cfg_pin *pin = &(*pins)[i];
		if (WALK(ld, item, sub, pin_kws, pin)) {
			if (!map_get(ld, item, "header") == !map_get(ld, item, "cookie"))
				report(ld, item, sub, "a pin matches a header or a cookie: give "
				       "exactly one of 'header' and 'cookie'");
			else if (pin->cookie && pin->value && !valid_cookie_value(pin->value))
				report(ld, map_get(ld, item, "value"), sub,
				       "not a cookie value: no blanks, '\"' (but around it), ',', ';' "
				       "or '\\' (RFC 6265)");
		}
		free(sub);
	}
}

static void top_pins(struct loader *ld, const struct cfg_kw *kw, void *obj, const char *path,
                     yaml_node_t *key, yaml_node_t *val)
{
	ld->pins_node = key;
	parse_pins(ld, path, val, &ld->top.pins, &ld->top.npins);
}

/* ---- routes ------------------------------------------------------------ */

/* The pins' pools become members of route r when its split leaves them
 * out (pin-only members, at 0%). */
static void route_members(struct cfg_route *r)
{
	for (size_t i = 0; i < r->npins; i++) {
		struct cfg_pin *pin = &r->pins[i];
		int m = config_route_member(r, pin->pool);
		if (m < 0) {
			r->pools = xrealloc(r->pools, (r->npools + 1) * sizeof(*r->pools));
			r->split = xrealloc(r->split, (r->npools + 1) * sizeof(*r->split));
			r->pools[r->npools] = pin->pool;
			r->split[r->npools] = 0;
			m = (int)r->npools++;
		}
		pin->member = (size_t)m;
	}
}

/* One host condition: a host name or "*." and one, without a port. */
static char *want_route_host(struct loader *ld, const char *path, yaml_node_t *val)
{
	char buf[SHOW_BUF];
	const char *s = want_text(ld, path, val, "a host name such as shop.example.com or "
	                          "*.example.com");
	if (!s)
		return NULL;
	size_t n = strlen(s);
	const char *name = strncmp(s, "*.", 2) == 0 ? s + 2 : s;
	if (n && s[n - 1] == '.' && n > 1)
		n--; /* a trailing dot is ignored, as in requests */
	size_t nl = n - (size_t)(name - s);
	bool ok = nl > 0 && nl <= ROUTE_HOST_MAX && name[0] != '.';
	bool v6 = ok && name == s && name[0] == '[' && name[nl - 1] == ']';
	for (size_t i = v6; ok && i < nl - v6; i++) {
		unsigned char c = (unsigned char)name[i];
		if (v6 ? !(isxdigit(c) || c == ':' || c == '.') :
		         !(isalnum(c) || c == '-' || c == '.' || c == '_'))
			ok = false;
		else if (c == '.' && i + 1 < nl && name[i + 1] == '.')
			ok = false;
	}
	if (!ok) {
		if (strchr(s, ':') && !v6)
			report(ld, val, path, "a host without a port: the port of a request's Host "
			       "is ignored when matching, got %s", describe(val, buf, sizeof(buf)));
		else
			report(ld, val, path,
			       "expected a host name such as shop.example.com or *.example.com (a "
			       "'*.' wildcard only in front), got %s", describe(val, buf, sizeof(buf)));
		return NULL;
	}
	char *h = xmalloc(n + 1);
	for (size_t i = 0; i < n; i++)
		h[i] = (char)tolower((unsigned char)s[i]);
	h[n] = '\0';
	return h;
}

/* A string or a list of strings, each checked by WANT; the list in *OUT. */
static void want_str_list(struct loader *ld, const char *path, yaml_node_t *val,
                          char *(*want)(struct loader *, const char *, yaml_node_t *),
                          char ***out, size_t *n)
{
	if (val->type == YAML_SCALAR_NODE) {
		char *s = want(ld, path, val);
		if (s) {
			*out = xcalloc(1, sizeof(**out));
			(*out)[(*n)++] = s;
		}
		return;
	}
	if (val->type != YAML_SEQUENCE_NODE || !seq_len(val)) {
		char buf[SHOW_BUF];
		report(ld, val, path, "expected a string or a non-empty list of strings, got %s",
		       describe(val, buf, sizeof(buf)));
		return;
	}
	*out = xcalloc(seq_len(val), sizeof(**out));
	for (size_t i = 0; i < seq_len(val); i++) {
		char *sub = xasprintf("%s[%zu]", path, i);
		char *s = want(ld, sub, seq_item(ld, val, i));
		if (s)
			(*out)[(*n)++] = s;
		free(sub);
	}
}

static void match_host(struct loader *ld, const struct cfg_kw *kw, void *obj, const char *path,
                       yaml_node_t *key, yaml_node_t *val)
{
	struct cfg_route *r = obj;
	want_str_list(ld, path, val, want_route_host, &r->hosts, &r->nhosts);
}

static void match_path(struct loader *ld, const struct cfg_kw *kw, void *obj, const char *path,
                       yaml_node_t *key, yaml_node_t *val)
{
	struct cfg_route *r = obj;
	char buf[SHOW_BUF];
	const char *s = want_text(ld, path, val, "a path such as /api/orders");

	if (!s)
		return;
	bool ok = s[0] == '/';
	for (const char *p = s; ok && *p; p++)
		if ((unsigned char)*p <= 0x20 || *p == 0x7f || *p == '?' || *p == '#')
			ok = false;
	if (!ok) {
		report(ld, val, path, "expected a path that begins with '/', without blanks, "
		       "control bytes, '?' or '#', got %s", describe(val, buf, sizeof(buf)));
		return;
	}
	r->path_prefix = xstrdup(s);
	r->path_prefix_len = strlen(s);
}

static char *want_method(struct loader *ld, const char *path, yaml_node_t *val)
{
	char buf[SHOW_BUF];
	const char *s = want_text(ld, path, val, "a method such as GET");

	if (!s)
		return NULL;
	bool ok = valid_token(s);
	for (const char *p = s; ok && *p; p++)
		if (islower((unsigned char)*p))
			ok = false;
	if (!ok) {
		report(ld, val, path, "expected a method such as GET (methods are case-sensitive), "
		       "got %s", describe(val, buf, sizeof(buf)));
		return NULL;
	}
	return xstrdup(s);
}

static void match_methods(struct loader *ld, const struct cfg_kw *kw, void *obj, const char *path,
                          yaml_node_t *key, yaml_node_t *val)
{
	struct cfg_route *r = obj;
	want_str_list(ld, path, val, want_method, &r->methods, &r->nmethods);
}

static const struct cfg_kw match_kws[] = {
        {"host", match_host, 0, 0, 0, false, "host names, exact or \"*.\" wildcards"},
        {"path_prefix", match_path, 0, 0, 0, false, "the path and what is under it"},
        {"methods", match_methods, 0, 0, 0, false, "request methods"},
};

static void route_name(struct loader *ld, const struct cfg_kw *kw, void *obj, const char *path,
                       yaml_node_t *key, yaml_node_t *val)
{
	struct cfg_route *r = obj;
	const char *s = want_text(ld, path, val, "a route name");

	if (!s)
		return;
	if (!valid_name(s)) {
		report(ld, val, path,
		       "a route name may hold only letters, digits, '_', '.', ':' and '-'");
		return;
	}
	r->name = xstrdup(s);
}

static void route_match(struct loader *ld, const struct cfg_kw *kw, void *obj, const char *path,
                        yaml_node_t *key, yaml_node_t *val)
{
	WALK(ld, val, path, match_kws, obj);
}

static void route_split(struct loader *ld, const struct cfg_kw *kw, void *obj, const char *path,
                        yaml_node_t *key, yaml_node_t *val)
{
	parse_split(ld, path, key, val, obj);
}

static void route_pins(struct loader *ld, const struct cfg_kw *kw, void *obj, const char *path,
                       yaml_node_t *key, yaml_node_t *val)
{
	struct cfg_route *r = obj;
	parse_pins(ld, path, val, &r->pins, &r->npins);
}

static const struct cfg_kw route_timeout_kws[] = {
        {"upstream_response", kw_duration, offsetof(struct cfg_route, upstream_response_ms), 0, 0,
         false, "waiting for an upstream's response, on this route"},
        {"tunnel_idle", kw_duration, offsetof(struct cfg_route, tunnel_idle_ms), 0, 0, false,
         "a tunnel with no byte either way, on this route"},
};

static void route_timeouts(struct loader *ld, const struct cfg_kw *kw, void *obj, const char *path,
                           yaml_node_t *key, yaml_node_t *val)
{
	WALK(ld, val, path, route_timeout_kws, obj);
}

/* ---- rollout (SPEC §8) ------------------------------------------------ */

const char *const config_rollout_metrics[CFG_ROLLOUT_METRICS] = {
        "error_rate", "error_rate_vs_baseline", "availability", "p50", "p95", "p99",
        "p50_vs_baseline", "p95_vs_baseline", "p99_vs_baseline",
};
const char *const config_rollout_actions[3] = {"rollback", "pause", "alert"};

enum { RM_ERROR_RATE, RM_ERROR_RATE_VS, RM_AVAILABILITY, RM_P50, RM_P95, RM_P99 };

/* What the limit of metric m is: a share ("5%"), a latency (a duration)
 * or a ratio to the baseline (a number). */
static int metric_kind(unsigned m)
{
	return m == RM_ERROR_RATE || m == RM_AVAILABILITY ? 0 : m >= RM_P50 && m <= RM_P99 ? 1 : 2;
}

static const char *const metric_limit_help[3] = {
        "a percentage such as \"5%\"", "a duration such as 2s or 250ms",
        "a ratio to the baseline such as 2 or 1.5"};

/* The limit of a check of metric m into *out. */
static bool want_limit(struct loader *ld, const char *path, yaml_node_t *val, unsigned m,
                       double *out)
{
	char buf[SHOW_BUF];
	int kind = metric_kind(m);
	const char *s = want_text(ld, path, val, metric_limit_help[kind]);
	if (!s)
		return false;
	if (kind == 1) {
		uint32_t ms;
		if (!want_duration(ld, path, val, &ms))
			return false;
		*out = ms;
		return true;
	}
	if (kind == 0) {
		size_t n = strlen(s);
		char num[32];
		uint32_t h;
		if (n < 2 || n >= sizeof(num) || s[n - 1] != '%') {
			report(ld, val, path, "expected %s, got %s", metric_limit_help[0],
			       describe(val, buf, sizeof(buf)));
			return false;
		}
		memcpy(num, s, n - 1);
		num[n - 1] = '\0';
		if (percent_hundredths(num, &h) != 0) {
			report(ld, val, path, "expected a percentage from 0%% to 100%% with at most two "
			       "decimals, got %s", describe(val, buf, sizeof(buf)));
			return false;
		}
		*out = h / 10000.0;
		return true;
	}
	char *end;
	errno = 0;
	double v = strtod(s, &end);
	if (errno || end == s || *end || !(v > 0) || v > 1000) {
		report(ld, val, path, "expected %s (more than 0, at most 1000), got %s",
		       metric_limit_help[2], describe(val, buf, sizeof(buf)));
		return false;
	}
	*out = v;
	return true;
}

/* One check: {metric: M, max: L, action: A} (min: for availability). */
static void parse_check(struct loader *ld, const char *path, yaml_node_t *item,
                        struct cfg_rollout_check *c)
{
	char buf[SHOW_BUF];
	if (item->type != YAML_MAPPING_NODE) {
		report(ld, item, path, "expected a check {metric, max or min, action}, got %s",
		       describe(item, buf, sizeof(buf)));
		return;
	}
	yaml_node_t *metric = map_get(ld, item, "metric"), *limit_node = NULL;
	bool have_metric = false, have_limit = false;
	c->action = 0;
	for (size_t i = 0; i < map_len(item); i++) {
		yaml_node_t *k = map_key(ld, item, i), *v = map_value(ld, item, i);
		const char *name = text_of(k);
		char *sub = xasprintf("%s.%s", path, name ? name : "?");
		if (earlier_key(ld, item, i)) {
			report(ld, k, sub, "given twice");
		} else if (name && !strcmp(name, "metric")) {
			const char *m = want_text(ld, sub, v, "a metric name");
			for (unsigned j = 0; m && j < CFG_ROLLOUT_METRICS; j++)
				if (!strcmp(m, config_rollout_metrics[j])) {
					c->metric = j;
					have_metric = true;
				}
			if (m && !have_metric)
				report(ld, v, sub, "unknown metric %s; the metrics are: error_rate, "
				       "error_rate_vs_baseline, availability, p50, p95, p99, "
				       "p50_vs_baseline, p95_vs_baseline, p99_vs_baseline",
				       describe(v, buf, sizeof(buf)));
		} else if (name && (!strcmp(name, "max") || !strcmp(name, "min"))) {
			if (limit_node)
				report(ld, k, sub, "a check has one threshold: max or min");
			limit_node = k;
		} else if (name && !strcmp(name, "action")) {
			int a = 0;
			want_choice(ld, sub, v, config_rollout_actions, 3, &a);
			c->action = (unsigned)a;
		} else {
			report(ld, k, sub, "unknown key; a check has metric, max (or min) and action");
		}
		free(sub);
	}
	if (!metric) {
		report(ld, item, path, "a check needs its metric");
		return;
	}
	if (!have_metric)
		return;
	bool is_min = c->metric == RM_AVAILABILITY;
	const char *want = is_min ? "min" : "max";
	if (!limit_node) {
		report(ld, item, path, "check %s needs its threshold '%s'",
		       config_rollout_metrics[c->metric], want);
		return;
	}
	char *sub = xasprintf("%s.%s", path, text_of(limit_node));
	if (strcmp(text_of(limit_node), want) != 0)
		report(ld, limit_node, sub, "check %s has a '%s', not a '%s'",
		       config_rollout_metrics[c->metric], want, text_of(limit_node));
	else
		have_limit = want_limit(ld, sub, map_get(ld, item, want), c->metric, &c->limit);
	(void)have_limit;
	free(sub);
}

static void rollout_checks(struct loader *ld, const struct cfg_kw *kw, void *obj,
                           const char *path, yaml_node_t *key, yaml_node_t *val)
{
	struct cfg_rollout *ro = obj;
	char buf[SHOW_BUF];
	size_t n = val->type == YAML_SEQUENCE_NODE ? seq_len(val) : 0;
	if (!n || n > CFG_ROLLOUT_MAX_CHECKS) {
		report(ld, val, path, "expected a list of 1 to %d checks {metric, max, action}, got %s",
		       CFG_ROLLOUT_MAX_CHECKS, describe(val, buf, sizeof(buf)));
		return;
	}
	free(ro->checks);
	ro->checks = xcalloc(n, sizeof(*ro->checks));
	ro->nchecks = n;
	for (size_t i = 0; i < n; i++) {
		char *sub = xasprintf("%s[%zu]", path, i);
		parse_check(ld, sub, seq_item(ld, val, i), &ro->checks[i]);
		free(sub);
	}
}

static void rollout_pool(struct loader *ld, const struct cfg_kw *kw, void *obj, const char *path,
                         yaml_node_t *key, yaml_node_t *val)
{
	((struct cfg_rollout *)obj)->pool = want_pool(ld, path, val);
}

/* steps: percentages, or {percent, hold}, increasing to 100. */
static void rollout_steps(struct loader *ld, const struct cfg_kw *kw, void *obj,
                          const char *path, yaml_node_t *key, yaml_node_t *val)
{
	struct cfg_rollout *ro = obj;
	char buf[SHOW_BUF];
	size_t n = val->type == YAML_SEQUENCE_NODE ? seq_len(val) : 0;
	if (!n || n > 100) {
		report(ld, val, path, "expected a list of 1 to 100 steps such as [5, 25, 100], got %s",
		       describe(val, buf, sizeof(buf)));
		return;
	}
	ro->steps = xcalloc(n, sizeof(*ro->steps));
	ro->nsteps = n;
	for (size_t i = 0; i < n; i++) {
		yaml_node_t *item = seq_item(ld, val, i), *pct = item;
		char *sub = xasprintf("%s[%zu]", path, i);
		struct cfg_rollout_step *st = &ro->steps[i];
		st->hold_ms = 0; /* the rollout's hold, filled in at the end */
		if (item->type == YAML_MAPPING_NODE) {
			pct = map_get(ld, item, "percent");
			for (size_t j = 0; j < map_len(item); j++) {
				const char *k = text_of(map_key(ld, item, j));
				if (!k || (strcmp(k, "percent") && strcmp(k, "hold")))
					report(ld, map_key(ld, item, j), sub,
					       "unknown key; a step has percent and hold");
			}
			yaml_node_t *hold = map_get(ld, item, "hold");
			if (hold) {
				char *hs = xasprintf("%s.hold", sub);
				want_duration(ld, hs, hold, &st->hold_ms);
				free(hs);
			}
			if (!pct) {
				report(ld, item, sub, "a step needs its percent");
				free(sub);
				continue;
			}
		}
		const char *s = want_text(ld, sub, pct, "a percentage such as 5 or 12.5");
		uint32_t h = 0;
		if (s && (percent_hundredths(s, &h) != 0 || h == 0)) {
			report(ld, pct, sub, "expected a percentage above 0 and at most 100 with at most "
			       "two decimals, got %s", describe(pct, buf, sizeof(buf)));
		} else if (s && i && h <= ro->steps[i - 1].percent) {
			report(ld, pct, sub, "the steps must increase: %s after %s",
			       fmt_percent(h, buf, sizeof(buf)),
			       fmt_percent(ro->steps[i - 1].percent, (char[32]){0}, 32));
		}
		st->percent = h;
		if (s && i == n - 1 && h != 10000)
			report(ld, pct, sub, "the last step must be 100, got %s",
			       fmt_percent(h, buf, sizeof(buf)));
		free(sub);
	}
}

static void rollout_window(struct loader *ld, const struct cfg_kw *kw, void *obj,
                           const char *path, yaml_node_t *key, yaml_node_t *val)
{
	char buf[SHOW_BUF];
	uint32_t ms;
	if (!want_duration(ld, path, val, &ms))
		return;
	if (ms < 10000 || ms > 600000) {
		report(ld, val, path, "must be between 10s and 10m, got %s",
		       describe(val, buf, sizeof(buf)));
		return;
	}
	((struct cfg_rollout *)obj)->window_ms = ms;
}

static void rollout_webhook(struct loader *ld, const struct cfg_kw *kw, void *obj,
                            const char *path, yaml_node_t *key, yaml_node_t *val)
{
	struct cfg_rollout *ro = obj;
	char buf[SHOW_BUF];
	const char *s = want_text(ld, path, val, "an http:// URL");
	if (!s)
		return;
	if (strncmp(s, "http://", 7) != 0 || !s[7] || strpbrk(s, " \t\r\n")) {
		report(ld, val, path, "expected an http:// URL such as "
		       "\"http://127.0.0.1:9000/hooks/zdm\", got %s", describe(val, buf, sizeof(buf)));
		return;
	}
	free(ro->webhook);
	ro->webhook = xstrdup(s);
}

static void rollout_min_requests(struct loader *ld, const struct cfg_kw *kw, void *obj,
                                 const char *path, yaml_node_t *key, yaml_node_t *val)
{
	unsigned long long v;
	if (want_uint(ld, path, val, kw->lo, kw->hi, &v))
		((struct cfg_rollout *)obj)->min_requests = v;
}

static const struct cfg_kw rollout_kws[] = {
        {"pool", rollout_pool, 0, 0, 0, true, "the pool rolled out (not the route's baseline)"},
        {"steps", rollout_steps, 0, 0, 0, true, "its percentage at each step, up to 100"},
        {"hold", kw_duration, offsetof(struct cfg_rollout, hold_ms), 0, 0, false,
         "time at a step with no failing analysis before the next"},
        {"interval", kw_duration, offsetof(struct cfg_rollout, interval_ms), 0, 0, false,
         "one analysis every interval"},
        {"window", rollout_window, 0, 0, 0, false, "the requests each analysis reads (10s..10m)"},
        {"min_requests", rollout_min_requests, 0, 1, 1000000000, false,
         "requests to the pool in the window needed to judge it"},
        {"failures", kw_u32, offsetof(struct cfg_rollout, failures), 1, 100, false,
         "consecutive failing analyses of a check before its action"},
        {"max_inconclusive", kw_duration, offsetof(struct cfg_rollout, max_inconclusive_ms), 0, 0,
         false, "a step inconclusive this long pauses"},
        {"checks", rollout_checks, 0, 0, 0, false, "what each analysis judges"},
        {"webhook", rollout_webhook, 0, 0, 0, false, "where each event is POSTed"},
};

static struct cfg_rollout *rollout_new(void)
{
	struct cfg_rollout *ro = xcalloc(1, sizeof(*ro));
	ro->pool = -1;
	ro->hold_ms = 5 * 60000;
	ro->interval_ms = 10000;
	ro->window_ms = 60000;
	ro->min_requests = 100;
	ro->failures = 2;
	ro->max_inconclusive_ms = 10 * 60000;
	return ro;
}

static void rollout_free(struct cfg_rollout *ro)
{
	if (!ro)
		return;
	free(ro->steps);
	free(ro->checks);
	free(ro->webhook);
	free(ro);
}

/* A rollout section into *out (replacing any). */
static void parse_rollout(struct loader *ld, const char *path, yaml_node_t *val,
                          struct cfg_rollout **out)
{
	struct cfg_rollout *ro = rollout_new();
	WALK(ld, val, path, rollout_kws, ro);
	if (ro->interval_ms < 100) {
		yaml_node_t *at = map_get(ld, val, "interval");
		char key[256];
		snprintf(key, sizeof(key), "%s.interval", path);
		report(ld, at ? at : val, key, "an analysis every %ums is too often: "
		       "expected 100ms or more", ro->interval_ms);
		ro->interval_ms = 100;
	}
	if (!ro->checks) {
		static const struct cfg_rollout_check defaults[] = {
		        {RM_ERROR_RATE, 0, 0.05}, {RM_ERROR_RATE_VS, 0, 2}, {RM_AVAILABILITY, 0, 0.95}};
		ro->checks = xcalloc(3, sizeof(*ro->checks));
		memcpy(ro->checks, defaults, sizeof(defaults));
		ro->nchecks = 3;
	}
	for (size_t i = 0; i < ro->nsteps; i++)
		if (!ro->steps[i].hold_ms)
			ro->steps[i].hold_ms = ro->hold_ms;
	rollout_free(*out);
	*out = ro;
}

/* Once the route's members are known: its rollout's pool is a member of
 * the split other than the baseline. NODE: the rollout section. */
static void finish_rollout(struct loader *ld, struct cfg_route *r, yaml_node_t *node)
{
	struct cfg_rollout *ro = r->rollout;
	if (!ro || ro->pool < 0)
		return;
	yaml_node_t *at = map_get(ld, node, "pool");
	int m = config_route_member(r, (size_t)ro->pool);
	const char *pname = ld->cfg->pools[ro->pool].name;
	if (m < 0 || (size_t)m >= r->nsplit)
		report(ld, at ? at : node, "rollout.pool", "pool '%s' is not in the split of route "
		       "'%s'", pname, r->name ? r->name : "?");
	else if (m == 0)
		report(ld, at ? at : node, "rollout.pool", "pool '%s' is the baseline of route '%s' "
		       "(the first of its split): a rollout moves traffic away from it, to another "
		       "pool", pname, r->name ? r->name : "?");
	else
		ro->member = (size_t)m;
}

static void route_rollout(struct loader *ld, const struct cfg_kw *kw, void *obj,
                          const char *path, yaml_node_t *key, yaml_node_t *val)
{
	parse_rollout(ld, path, val, &((struct cfg_route *)obj)->rollout);
}

static const struct cfg_kw route_kws[] = {
        {"name", route_name, 0, 0, 0, true, "the route's name, unique"},
        {"match", route_match, 0, 0, 0, false, "host, path_prefix and methods it takes"},
        {"split", route_split, 0, 0, 0, true, "percent of the route's traffic per pool"},
        {"pins", route_pins, 0, 0, 0, false, "header or cookie matches sending to a pool"},
        {"timeouts", route_timeouts, 0, 0, 0, false, "upstream_response and tunnel_idle"},
        {"rollout", route_rollout, 0, 0, 0, false, "moving the route to one pool step by step"},
};

/* A warning at NODE: the config loads, the daemon logs it. */
static void warn_at(struct loader *ld, const yaml_node_t *node, const char *fmt, ...)
        __attribute__((format(printf, 3, 4)));
static void warn_at(struct loader *ld, const yaml_node_t *node, const char *fmt, ...)
{
	struct config *cfg = (struct config *)ld->cfg;
	va_list ap;

	va_start(ap, fmt);
	char *body = vformat(fmt, ap);
	va_end(ap);
	cfg->warnings = xrealloc(cfg->warnings, (cfg->nwarnings + 1) * sizeof(*cfg->warnings));
	cfg->warnings[cfg->nwarnings++] =
	        xasprintf("%s:%zu:%zu: warning: %s", ld->name, node->start_mark.line + 1,
	                  node->start_mark.column + 1, body);
	free(body);
}

static void top_rollout(struct loader *ld, const struct cfg_kw *kw, void *obj, const char *path,
                        yaml_node_t *key, yaml_node_t *val)
{
	ld->rollout_key = key;
	ld->rollout_node = val;
	parse_rollout(ld, path, val, &ld->top.rollout);
}

static void top_routes(struct loader *ld, const struct cfg_kw *kw, void *obj, const char *path,
                       yaml_node_t *key, yaml_node_t *val)
{
	struct config *cfg = obj;
	char buf[SHOW_BUF];
	size_t n, catch_all = SIZE_MAX;

	cfg->routes_given = true;
	if (val->type != YAML_SEQUENCE_NODE || !seq_len(val)) {
		report(ld, val, path, "expected a non-empty list of routes {name, match, split}, "
		       "got %s", describe(val, buf, sizeof(buf)));
		return;
	}
	n = seq_len(val);
	cfg->routes = xcalloc(n, sizeof(*cfg->routes));
	cfg->nroutes = n;
	for (size_t i = 0; i < n; i++) {
		struct cfg_route *r = &cfg->routes[i];
		yaml_node_t *item = seq_item(ld, val, i);
		char *sub = xasprintf("%s[%zu]", path, i);

		r->upstream_response_ms = cfg->timeouts.upstream_response_ms;
		r->tunnel_idle_ms = cfg->timeouts.tunnel_idle_ms;
		r->where = xasprintf("%s:%zu:%zu", ld->name, item->start_mark.line + 1,
		                     item->start_mark.column + 1);
		if (!WALK(ld, item, sub, route_kws, r)) {
			free(sub);
			continue;
		}
		for (size_t j = 0; r->name && j < i; j++) {
			if (cfg->routes[j].name && !strcmp(cfg->routes[j].name, r->name)) {
				report(ld, map_get(ld, item, "name"), sub,
				       "duplicate route name '%s' (first at %s)", r->name,
				       cfg->routes[j].where);
				break;
			}
		}
		if (catch_all != SIZE_MAX)
			warn_at(ld, item, "route '%s' can never match: route '%s' before it (at %s) "
			        "takes every request", r->name ? r->name : "?",
			        cfg->routes[catch_all].name ? cfg->routes[catch_all].name : "?",
			        cfg->routes[catch_all].where);
		else if (!r->nhosts && !r->path_prefix && !r->methods)
			catch_all = i;
		route_members(r);
		finish_rollout(ld, r, map_get(ld, item, "rollout"));
		free(sub);
	}
}

static void pins_free(struct cfg_pin *pins, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		free(pins[i].header);
		free(pins[i].cookie);
		free(pins[i].value);
	}
	free(pins);
}

static void route_free(struct cfg_route *r)
{
	free(r->name);
	free(r->where);
	for (size_t i = 0; i < r->nhosts; i++)
		free(r->hosts[i]);
	free(r->hosts);
	free(r->path_prefix);
	for (size_t i = 0; i < r->nmethods; i++)
		free(r->methods[i]);
	free(r->methods);
	free(r->pools);
	free(r->split);
	pins_free(r->pins, r->npins);
	rollout_free(r->rollout);
}

/* Without routes:, the route "default" of the top-level split and pins,
 * over every pool in file order (a pool the split leaves out at 0%);
 * with it, no top-level split or pins. Then the routes are compiled. */
static void finish_routes(struct loader *ld, struct config *cfg)
{
	struct cfg_route *top = &ld->top;

	if (cfg->routes_given) {
		yaml_node_t *k = ld->split_node ? ld->split_node
		                 : ld->pins_node ? ld->pins_node : ld->rollout_key;
		if (k)
			report(ld, k, text_of(k), "with 'routes', each route has its own split, "
			       "pins and rollout: move the top-level '%s' into the routes", text_of(k));
		free(top->pools);
		free(top->split);
		pins_free(top->pins, top->npins);
		rollout_free(top->rollout);
	} else if (cfg->npools) {
		struct cfg_route *r = xcalloc(1, sizeof(*r));
		r->name = xstrdup("default");
		r->where = xstrdup(ld->name);
		r->pools = xcalloc(cfg->npools, sizeof(*r->pools));
		r->split = xcalloc(cfg->npools, sizeof(*r->split));
		r->npools = r->nsplit = cfg->npools;
		for (size_t i = 0; i < cfg->npools; i++)
			r->pools[i] = i;
		if (!ld->split_node)
			r->split[0] = 10000;
		for (size_t i = 0; i < top->nsplit; i++)
			r->split[top->pools[i]] = top->split[i];
		free(top->pools);
		free(top->split);
		r->pins = top->pins;
		r->npins = top->npins;
		r->upstream_response_ms = cfg->timeouts.upstream_response_ms;
		r->tunnel_idle_ms = cfg->timeouts.tunnel_idle_ms;
		route_members(r);
		r->rollout = top->rollout;
		finish_rollout(ld, r, ld->rollout_node);
		cfg->routes = r;
		cfg->nroutes = 1;
	} else {
		free(top->pools);
		free(top->split);
		pins_free(top->pins, top->npins);
		rollout_free(top->rollout);
	}
	*top = (struct cfg_route){0};
	for (size_t i = 0; i < cfg->nroutes; i++) {
		cfg->routes[i].first = cfg->nmembers;
		cfg->nmembers += cfg->routes[i].npools;
	}
	if (cfg->nroutes)
		cfg->table = routetab_build(cfg->routes, cfg->nroutes);
}

/* ---- the top level ----------------------------------------------------- */

/* In the order of evaluation: global sections before the pools that inherit
 * them, pools before the split and the pins that name them. */
static const struct cfg_kw top_kws[] = {
        {"listen", top_listen, 0, 0, 0, true, "addresses to accept clients on"},
        {"admin", top_admin, 0, 0, 0, false, "address of the read-only admin HTTP listener"},
        {"control", top_control, 0, 0, 0, false, "the control socket zdmctl talks to"},
        {"state_file", kw_string, offsetof(struct config, state_file), 0, 0, false,
         "file keeping runtime changes across restarts"},
        {"workers", top_workers, 0, 0, 0, false, "event-loop threads, or \"auto\""},
        {"access_log", top_access_log, 0, 0, 0, false, "\"off\", \"-\" (stdout) or a file path"},
        {"access_log_format", top_access_log_format, 0, 0, 0, false, "\"text\" or \"json\""},
        {"log_level", top_log_level, 0, 0, 0, false, "error, warn, info or debug"},
        {"expose_pool_header", kw_bool, offsetof(struct config, expose_pool_header), 0, 0, false,
         "add X-Zdm-Pool to responses"},
        {"timeouts", top_timeouts, 0, 0, 0, false, "connect, request_header, ... durations"},
        {"limits", top_limits, 0, 0, 0, false, "max_connections, max_header_bytes, max_body_bytes"},
        {"health_check", top_health, 0, 0, 0, false, "active health checks for every pool"},
        {"circuit_breaker", top_breaker, 0, 0, 0, false, "per-server circuit breaker settings"},
        {"pools", top_pools, 0, 0, 0, true, "the upstream pools, the first one is the baseline"},
        {"split", top_split, 0, 0, 0, false, "percent of traffic per pool"},
        {"pins", top_pins, 0, 0, 0, false, "header or cookie matches that send requests to a pool"},
        {"rollout", top_rollout, 0, 0, 0, false, "moving the default route to one pool by steps"},
        {"routes", top_routes, 0, 0, 0, false, "host and path routes, each with its own split"},
};

static void config_defaults(struct config *cfg)
{
	cfg->control_mode = 0600;
	cfg->log_level = 2; /* info */
	cfg->workers = 1;
	cfg->timeouts = (struct cfg_timeouts){
	        .connect_ms = 2000,
	        .request_header_ms = 10000,
	        .upstream_response_ms = 30000,
	        .client_idle_ms = 60000,
	        .upstream_idle_ms = 60000,
	        .client_write_ms = 60000,
	        .drain_ms = 30000,
	        .tunnel_idle_ms = 3600000,
	};
	cfg->limits = (struct cfg_limits){
	        .max_connections = 10000,
	        .max_header_bytes = 64 << 10,
	        .max_body_bytes = 0,
	};
}

static void syntax_error(struct loader *ld, const yaml_parser_t *parser)
{
	yaml_mark_t mark = parser->error == YAML_READER_ERROR ? parser->mark : parser->problem_mark;

	if (parser->error == YAML_MEMORY_ERROR)
		push_err(ld, mark, xstrdup("YAML parser out of memory"));
	else
		push_err(ld, mark,
		         xasprintf("YAML syntax error: %s%s%s",
		                   parser->problem ? parser->problem : "malformed document",
		                   parser->context ? " " : "",
		                   parser->context ? parser->context : ""));
}

/* Builds the config from the document's ROOT; NULL if anything was wrong. */
static struct config *load_root(struct loader *ld, const char *name, yaml_node_t *root)
{
	struct config *cfg = xcalloc(1, sizeof(*cfg));
	cfg->refs = 1;

	cfg->path = xstrdup(name);
	config_defaults(cfg);
	ld->cfg = cfg;
	ld->health = (struct cfg_health){
	        .path = xstrdup("/health"),
	        .interval_ms = 2000,
	        .timeout_ms = 1000,
	        .rise = 2,
	        .fall = 3,
	        .expect_lo = 200,
	        .expect_hi = 399,
	};
	ld->breaker = (struct cfg_breaker){
	        .failures = 5,
	        .count = CFG_FAIL_DEFAULT,
	        .open_for_ms = 30000,
	        .half_open_probes = 1,
	};

	if (is_null(root))
		push_err(ld, (yaml_mark_t){0},
		         xstrdup("empty configuration: expected a mapping with at least 'listen' "
		                 "and 'pools'"));
	else
		WALK(ld, root, "", top_kws, cfg);
	finish_routes(ld, cfg);

	free(ld->health.path);
	free(ld->health.host);
	if (ld->nerr) {
		config_free(cfg);
		return NULL;
	}
	return cfg;
}

struct config *config_parse(const char *name, const char *yaml, size_t len,
                            struct config_errors *errs)
{
	struct loader ld = {.name = name};
	struct config *cfg = NULL;
	yaml_document_t extra;
	yaml_parser_t parser;
	yaml_node_t *root, *next;

	if (!yaml_parser_initialize(&parser)) {
		errs_push(errs, xasprintf("%s: cannot initialise the YAML parser", name));
		return NULL;
	}
	yaml_parser_set_input_string(&parser, (const unsigned char *)yaml, len);
	if (!yaml_parser_load(&parser, &ld.doc)) {
		syntax_error(&ld, &parser);
		goto out_parser;
	}
	root = yaml_document_get_root_node(&ld.doc);
	if (!root) {
		push_err(&ld, (yaml_mark_t){0},
		         xstrdup("empty configuration: expected a mapping with at least 'listen' "
		                 "and 'pools'"));
		goto out_doc;
	}
	/* A second document would be silently ignored: refuse it. */
	if (!yaml_parser_load(&parser, &extra)) {
		syntax_error(&ld, &parser);
		goto out_doc;
	}
	if ((next = yaml_document_get_root_node(&extra)))
		push_err(&ld, next->start_mark,
		         xstrdup("a configuration file holds one YAML document, this is a second"));
	yaml_document_delete(&extra);
	if (ld.nerr)
		goto out_doc;

	cfg = load_root(&ld, name, root);
out_doc:
	yaml_document_delete(&ld.doc);
out_parser:
	yaml_parser_delete(&parser);
	flush_errors(&ld, errs);
	return cfg;
}

/* Reads all of FD into *BUF. Returns 0, or -1 with errno set. */
static int read_all(int fd, char **buf, size_t *len)
{
	size_t cap = 4096, n = 0;
	char *p = xmalloc(cap);
	ssize_t r;

	for (;;) {
		if (n == cap)
			p = xrealloc(p, cap *= 2);
		r = read(fd, p + n, cap - n);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			int e = errno;
			free(p);
			errno = e;
			return -1;
		}
		if (r == 0)
			break;
		n += (size_t)r;
	}
	*buf = p;
	*len = n;
	return 0;
}

struct config *config_load(const char *path, struct config_errors *errs)
{
	struct config *cfg = NULL;
	char *buf;
	size_t len;
	int fd, err = 0;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		err = errno;
		goto out;
	}
	if (read_all(fd, &buf, &len) < 0) {
		err = errno;
		goto out_close;
	}
	cfg = config_parse(path, buf, len, errs);
	free(buf);
out_close:
	close(fd);
out:
	if (err)
		errs_push(errs, xasprintf("%s: cannot read: %s", path, strerror(err)));
	return cfg;
}

int config_route_index(const struct config *cfg, const char *name, size_t len)
{
	for (size_t i = 0; i < cfg->nroutes; i++) {
		const char *n = cfg->routes[i].name;
		if (n && strlen(n) == len && memcmp(n, name, len) == 0)
			return (int)i;
	}
	return -1;
}

int config_route_member(const struct cfg_route *r, size_t pool)
{
	for (size_t i = 0; i < r->npools; i++)
		if (r->pools[i] == pool)
			return (int)i;
	return -1;
}

int config_pool_index(const struct config *cfg, const char *name)
{
	for (size_t i = 0; i < cfg->npools; i++)
		if (cfg->pools[i].name && !strcmp(cfg->pools[i].name, name))
			return (int)i;
	return -1;
}

static void addr_free(struct cfg_addr *a)
{
	free(a->text);
}

void config_free(struct config *cfg)
{
	if (!cfg)
		return;
	for (size_t i = 0; i < cfg->nlisten; i++) {
		struct cfg_listen_tls *t = cfg->listen[i].tls;

		addr_free(&cfg->listen[i].addr);
		if (!t)
			continue;
		for (size_t j = 0; j < t->ncerts; j++) {
			free(t->certs[j].cert);
			free(t->certs[j].key);
			free(t->certs[j].where);
		}
		free(t->certs);
		free(t->ciphers);
		free(t->ciphersuites);
		free(t);
	}
	free(cfg->listen);
	if (cfg->admin)
		addr_free(cfg->admin);
	free(cfg->admin);
	free(cfg->control_socket);
	free(cfg->control_group);
	free(cfg->state_file);
	free(cfg->access_log);
	for (size_t i = 0; i < cfg->npools; i++) {
		struct cfg_pool *p = &cfg->pools[i];

		for (size_t j = 0; j < p->nservers; j++) {
			free(p->servers[j].name);
			addr_free(&p->servers[j].addr);
		}
		free(p->servers);
		free(p->name);
		free(p->health.path);
		free(p->health.host);
		free(p->tls.ca);
		free(p->tls.sni);
		free(p->tls.where);
	}
	free(cfg->pools);
	for (size_t i = 0; i < cfg->nroutes; i++)
		route_free(&cfg->routes[i]);
	free(cfg->routes);
	routetab_free(cfg->table);
	for (size_t i = 0; i < cfg->nwarnings; i++)
		free(cfg->warnings[i]);
	free(cfg->warnings);
	free(cfg->path);
	free(cfg);
}

struct config *config_hold(struct config *cfg)
{
	__atomic_add_fetch(&cfg->refs, 1, __ATOMIC_RELAXED);
	return cfg;
}

void config_release(struct config *cfg)
{
	if (cfg && __atomic_sub_fetch(&cfg->refs, 1, __ATOMIC_ACQ_REL) == 0)
		config_free(cfg);
}
