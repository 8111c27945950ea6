/*
 * zdmctl.c — the operator's command line (SPEC §6).
 *
 * zdmctl checks a command against the command table (commands.def: the same
 * rows zdmd dispatches on), sends it to zdmd's control socket as one line,
 * reads the one line of JSON that answers it, and prints that as a table, or
 * as it is with --json. `help` is answered from the table alone, so it works
 * without a running zdmd.
 *
 * The answer is read with the small JSON reader below rather than libyaml:
 * JSON is YAML flow syntax only up to escapes (libyaml refuses the \uD83D
 * \uDE00 surrogate pairs JSON uses outside the BMP), and an answer must never
 * fail to print because of what an error message quotes.
 *
 * Exit status: 0 when zdmd answered ok, 1 when it refused (the error goes to
 * stderr), 2 when zdmd cannot be reached, does not answer within
 * CTL_TIMEOUT_MS, or the arguments are wrong.
 */
#include <errno.h>
#include <math.h>
#include <fcntl.h>
#include <getopt.h>
#include <langinfo.h>
#include <locale.h>
#include <poll.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "core/mem.h"

#ifndef ZDM_DEFAULT_SOCKET
#define ZDM_DEFAULT_SOCKET "/run/zdm/zdm.sock"
#endif
#ifndef ZDM_VERSION
#endif

#define ARRAY_SIZE(a)  (sizeof(a) / sizeof((a)[0]))
#define CTL_LINE_MAX   4096        /* a command line with its '\n' (SPEC §6) */
#define CTL_ANSWER_MAX (64u << 20) /* an answer longer than this is not zdmd's */
#define CTL_TIMEOUT_MS 5000        /* connect, send and answer, all together */
#define JV_DEPTH_MAX   64
#define HELP_WIDTH     78

/* Exit statuses (SPEC §6). */
enum {
	CTL_EXIT_OK = 0,      /* zdmd said ok */
	CTL_EXIT_REFUSED = 1, /* zdmd said no */
	CTL_EXIT_TROUBLE = 2, /* zdmd unreachable or silent, or the arguments are wrong */
};

/* ---- text from the network ------------------------------------------- */

/* S with control bytes masked: names and messages come from the network and
 * go to a terminal. */
static char *clean(const char *s)
{
	char *out = xstrdup(s);

	for (char *p = out; *p; p++)
		if ((unsigned char)*p < 0x20 || *p == 0x7f)
			*p = '?';
	return out;
}

static void put_clean(FILE *f, const char *s)
{
	char *c = clean(s);

	fputs(c, f);
	free(c);
}

/* ---- the command table ------------------------------------------------- */

struct jval;

struct ctl_command {
	const char *name;
	const char *args; /* placeholders; alternatives separated by " | " */
	const char *help;
};

static const struct ctl_command ctl_commands[] = {
#define ZDM_COMMAND(id, name, args, help) {name, args, help},
#include "control/commands.def"
#undef ZDM_COMMAND
};

/*
 * How an ok answer reads, per command. A printer returns false when the
 * answer has not the shape it knows; the answer is then printed as it is, as
 * is the answer to a command without a row here (one added to commands.def
 * later).
 */
static bool print_status(const struct jval *a);
static void print_pins(const struct jval *pins);
static void print_route(const struct jval *r);
static void print_pools_line(const struct jval *pools);
static bool print_weight(const struct jval *a);
static bool print_admin(const struct jval *a);
static bool print_reload(const struct jval *a);
static bool print_rollout(const struct jval *a);

static const struct ctl_printer {
	const char *name;
	bool (*print)(const struct jval *answer);
} ctl_printers[] = {
        {"status", print_status},   {"set-weight", print_weight}, {"promote", print_weight},
        {"rollback", print_weight}, {"drain", print_admin},       {"disable", print_admin},
        {"enable", print_admin},    {"reload", print_reload},     {"rollout", print_rollout},
};

static const struct ctl_command *command_find(const char *name)
{
	for (size_t i = 0; i < ARRAY_SIZE(ctl_commands); i++)
		if (!strcmp(ctl_commands[i].name, name))
			return &ctl_commands[i];
	return NULL;
}

static const struct ctl_printer *printer_find(const char *name)
{
	for (size_t i = 0; i < ARRAY_SIZE(ctl_printers); i++)
		if (!strcmp(ctl_printers[i].name, name))
			return &ctl_printers[i];
	return NULL;
}

/*
 * The alternatives of an args string, one at a time: *P walks the string,
 * ALT receives the next alternative (trimmed). Returns false at the end.
 * "" is one alternative without words.
 */
static bool next_alt(const char **p, char *alt, size_t len)
{
	const char *s = *p, *bar;
	size_t n;

	if (!s)
		return false;
	bar = strstr(s, " | ");
	n = bar ? (size_t)(bar - s) : strlen(s);
	while (n && s[0] == ' ')
		s++, n--;
	while (n && s[n - 1] == ' ')
		n--;
	if (n >= len)
		n = len - 1;
	memcpy(alt, s, n);
	alt[n] = '\0';
	*p = bar ? bar + 3 : NULL;
	return true;
}

/* Whether arg is one of the words of a choice such as "start|pause". */
static bool in_choice(const char *choice, const char *arg)
{
	size_t n = strlen(arg);

	for (const char *c = choice; c; c = strchr(c, '|'), c = c ? c + 1 : NULL)
		if (!strncmp(c, arg, n) && (c[n] == '|' || c[n] == '\0'))
			return true;
	return false;
}

/* The words of ALT (modified in place) into WORDS; returns their number. */
static size_t split_words(char *alt, char **words, size_t max)
{
	size_t n = 0;

	for (char *w = strtok(alt, " "); w && n < max; w = strtok(NULL, " "))
		words[n++] = w;
	return n;
}

static void usage_lines(FILE *f, const struct ctl_command *cmd)
{
	const char *p = cmd->args;
	char alt[256];
	bool first = true;

	while (next_alt(&p, alt, sizeof(alt))) {
		fprintf(f, "%s zdmctl [-s SOCKET] [--json] %s%s%s\n", first ? "usage:" : "      ",
		        cmd->name, *alt ? " " : "", alt);
		first = false;
	}
}

/*
 * Checks ARGS against CMD's alternatives: the number of words, and the shape
 * of the words zdmd would refuse anyway (a POOL/SERVER placeholder needs an
 * argument with a '/', any other placeholder one without, since names cannot
 * hold one). Returns true when one alternative fits; otherwise says why on
 * stderr. Arguments are sent joined by spaces, so none may hold a blank.
 */
static bool command_check(const struct ctl_command *cmd, char **args, size_t nargs)
{
	const char *p = cmd->args, *got = NULL;
	char alt[256], *words[16], want[256], *shown;
	size_t lo = SIZE_MAX, hi = 0;

	for (size_t i = 0; i < nargs; i++) {
		const unsigned char *s = (const unsigned char *)args[i];

		while (*s > ' ' && *s != 0x7f)
			s++;
		if (!*args[i]) {
			fprintf(stderr, "zdmctl: %s: argument %zu is empty\n", cmd->name, i + 1);
			goto fail;
		}
		if (*s) {
			shown = clean(args[i]);
			fprintf(stderr,
			        "zdmctl: %s: argument '%s' holds a blank or a control "
			        "character\n",
			        cmd->name, shown);
			free(shown);
			goto fail;
		}
	}
	while (next_alt(&p, alt, sizeof(alt))) {
		size_t n = split_words(alt, words, ARRAY_SIZE(words)), i, need = n;

		/* Trailing words in brackets ("[ROUTE]") may be left out. */
		while (need && words[need - 1][0] == '[' &&
		       words[need - 1][strlen(words[need - 1]) - 1] == ']')
			need--;
		lo = need < lo ? need : lo;
		hi = n > hi ? n : hi;
		if (nargs < need || nargs > n)
			continue;
		n = nargs;
		for (i = 0; i < n; i++)
			if (!strchr(words[i], '/') != !strchr(args[i], '/') ||
			    (strchr(words[i], '|') && words[i][0] != '[' &&
			     !in_choice(words[i], args[i])))
				break;
		if (i == n)
			return true;
		if (!got) {
			snprintf(want, sizeof(want), "%s", words[i]);
			got = args[i];
		}
	}
	if (got)
		fprintf(stderr, "zdmctl: %s: expected %s, got '%s'\n", cmd->name, want, got);
	else if (hi == 0)
		fprintf(stderr, "zdmctl: %s takes no arguments, got %zu\n", cmd->name, nargs);
	else if (lo == hi)
		fprintf(stderr, "zdmctl: %s takes %zu argument%s, got %zu\n", cmd->name, hi,
		        hi == 1 ? "" : "s", nargs);
	else
		fprintf(stderr, "zdmctl: %s takes %zu to %zu arguments, got %zu\n", cmd->name, lo,
		        hi, nargs);
fail:
	usage_lines(stderr, cmd);
	return false;
}

/* ---- a small JSON reader: jval, a value read back ------------------------ */

enum jval_type { JV_NULL, JV_FALSE, JV_TRUE, JV_NUMBER, JV_STRING, JV_ARRAY, JV_OBJECT };

/* A parsed JSON value. Strings are unescaped UTF-8; numbers keep the text
 * they were written as, so counters print exactly. */
struct jval {
	enum jval_type type;
	char *key;          /* the member's name within an object, else NULL */
	char *text;         /* a string's value, or a number as written */
	struct jval *items; /* the elements of an array, the members of an object */
	size_t nitems;
};

struct jval_reader {
	const char *start, *p, *end;
	int depth;
	const char *err; /* what was wrong, at p */
};

static void jval_free_items(struct jval *v)
{
	for (size_t i = 0; i < v->nitems; i++) {
		free(v->items[i].key);
		jval_free_items(&v->items[i]);
	}
	free(v->items);
	free(v->text);
}

static void jval_free(struct jval *v)
{
	if (!v)
		return;
	jval_free_items(v);
	free(v);
}

static void jval_skip_ws(struct jval_reader *r)
{
	while (r->p < r->end && (*r->p == ' ' || *r->p == '\t' || *r->p == '\n' || *r->p == '\r'))
		r->p++;
}

static bool jval_fail(struct jval_reader *r, const char *why)
{
	if (!r->err)
		r->err = why;
	return false;
}

static int hex4(const char *s)
{
	int v = 0;

	for (int i = 0; i < 4; i++) {
		char c = s[i];
		v <<= 4;
		if (c >= '0' && c <= '9')
			v |= c - '0';
		else if (c >= 'a' && c <= 'f')
			v |= c - 'a' + 10;
		else if (c >= 'A' && c <= 'F')
			v |= c - 'A' + 10;
		else
			return -1;
	}
	return v;
}

static size_t utf8_put(char *out, unsigned long cp)
{
	if (cp < 0x80) {
		out[0] = (char)cp;
		return 1;
	}
	if (cp < 0x800) {
		out[0] = (char)(0xc0 | (cp >> 6));
		out[1] = (char)(0x80 | (cp & 0x3f));
		return 2;
	}
	if (cp < 0x10000) {
		out[0] = (char)(0xe0 | (cp >> 12));
		out[1] = (char)(0x80 | ((cp >> 6) & 0x3f));
		out[2] = (char)(0x80 | (cp & 0x3f));
		return 3;
	}
	out[0] = (char)(0xf0 | (cp >> 18));
	out[1] = (char)(0x80 | ((cp >> 12) & 0x3f));
	out[2] = (char)(0x80 | ((cp >> 6) & 0x3f));
	out[3] = (char)(0x80 | (cp & 0x3f));
	return 4;
}

/*
 * A string at r->p (the opening quote), unescaped into a new buffer. The
 * result is never longer than the escaped text, so one allocation of that
 * size serves. \u0000 and lone surrogates become U+FFFD: a C string cannot
 * hold the one, UTF-8 cannot hold the other.
 */
static char *jval_string(struct jval_reader *r)
{
	static const char simple_from[] = "\"\\/bfnrt", simple_to[] = "\"\\/\b\f\n\r\t";
	const char *s = ++r->p, *q = s;
	char *out, *o;

	while (q < r->end && *q != '"')
		q += *q == '\\' && q + 1 < r->end ? 2 : 1;
	if (q >= r->end) {
		jval_fail(r, "unterminated string");
		return NULL;
	}
	o = out = xmalloc((size_t)(q - s) + 1);
	while (r->p < q) {
		unsigned char c = (unsigned char)*r->p;
		long cp;

		if (c < 0x20) {
			jval_fail(r, "control character in a string");
			goto fail;
		}
		if (c != '\\') {
			*o++ = (char)c;
			r->p++;
			continue;
		}
		r->p++;
		if (*r->p != 'u') {
			const char *e = strchr(simple_from, *r->p);

			if (!*r->p || !e) {
				jval_fail(r, "bad escape in a string");
				goto fail;
			}
			*o++ = simple_to[e - simple_from];
			r->p++;
			continue;
		}
		r->p++;
		if (q - r->p < 4 || (cp = hex4(r->p)) < 0) {
			jval_fail(r, "bad \\u escape");
			goto fail;
		}
		r->p += 4;
		if (cp >= 0xd800 && cp < 0xdc00 && q - r->p >= 6 && r->p[0] == '\\' &&
		    r->p[1] == 'u') {
			long lo = hex4(r->p + 2);
			if (lo >= 0xdc00 && lo < 0xe000) {
				cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
				r->p += 6;
			}
		}
		if (cp == 0 || (cp >= 0xd800 && cp < 0xe000))
			cp = 0xfffd;
		o += utf8_put(o, (unsigned long)cp);
	}
	*o = '\0';
	r->p = q + 1;
	return out;
fail:
	free(out);
	return NULL;
}

/* A number as JSON writes it: -?(0|[1-9][0-9]*)(.[0-9]+)?([eE][+-]?[0-9]+)? */
static bool jval_number(struct jval_reader *r, struct jval *v)
{
	const char *s = r->p, *p = s;

	if (p < r->end && *p == '-')
		p++;
	if (p < r->end && *p == '0')
		p++;
	else if (p < r->end && *p >= '1' && *p <= '9')
		while (p < r->end && *p >= '0' && *p <= '9')
			p++;
	else
		return jval_fail(r, "bad number");
	if (p < r->end && *p == '.') {
		if (++p >= r->end || *p < '0' || *p > '9')
			return jval_fail(r, "bad number");
		while (p < r->end && *p >= '0' && *p <= '9')
			p++;
	}
	if (p < r->end && (*p == 'e' || *p == 'E')) {
		p++;
		if (p < r->end && (*p == '+' || *p == '-'))
			p++;
		if (p >= r->end || *p < '0' || *p > '9')
			return jval_fail(r, "bad number");
		while (p < r->end && *p >= '0' && *p <= '9')
			p++;
	}
	v->type = JV_NUMBER;
	v->text = xstrndup(s, (size_t)(p - s));
	r->p = p;
	return true;
}

static bool jval_value(struct jval_reader *r, struct jval *v);

static void jval_push(struct jval *parent, size_t *cap, struct jval *item)
{
	if (parent->nitems == *cap) {
		*cap = *cap ? 2 * *cap : 4;
		parent->items = xrealloc(parent->items, *cap * sizeof(*parent->items));
	}
	parent->items[parent->nitems++] = *item;
}

/* An array or an object at r->p (its opening bracket). */
static bool jval_container(struct jval_reader *r, struct jval *v, bool object)
{
	char close = object ? '}' : ']';
	size_t cap = 0;

	v->type = object ? JV_OBJECT : JV_ARRAY;
	if (++r->depth > JV_DEPTH_MAX)
		return jval_fail(r, "nested too deep");
	r->p++;
	jval_skip_ws(r);
	if (r->p < r->end && *r->p == close) {
		r->p++;
		r->depth--;
		return true;
	}
	for (;;) {
		struct jval item = {0};

		jval_skip_ws(r);
		if (object) {
			if (r->p >= r->end || *r->p != '"')
				return jval_fail(r, "expected a member name");
			if (!(item.key = jval_string(r)))
				return false;
			jval_skip_ws(r);
			if (r->p >= r->end || *r->p != ':') {
				free(item.key);
				return jval_fail(r, "expected ':'");
			}
			r->p++;
		}
		if (!jval_value(r, &item)) {
			free(item.key);
			jval_free_items(&item);
			return false;
		}
		jval_push(v, &cap, &item);
		jval_skip_ws(r);
		if (r->p < r->end && *r->p == ',') {
			r->p++;
			continue;
		}
		if (r->p < r->end && *r->p == close) {
			r->p++;
			r->depth--;
			return true;
		}
		return jval_fail(r, object ? "expected ',' or '}'" : "expected ',' or ']'");
	}
}

static bool jval_literal(struct jval_reader *r, const char *word, struct jval *v,
                         enum jval_type type)
{
	size_t n = strlen(word);

	if ((size_t)(r->end - r->p) < n || memcmp(r->p, word, n))
		return jval_fail(r, "unexpected character");
	r->p += n;
	v->type = type;
	return true;
}

static bool jval_value(struct jval_reader *r, struct jval *v)
{
	jval_skip_ws(r);
	if (r->p >= r->end)
		return jval_fail(r, "unexpected end");
	switch (*r->p) {
	case '{':
		return jval_container(r, v, true);
	case '[':
		return jval_container(r, v, false);
	case '"':
		v->type = JV_STRING;
		return (v->text = jval_string(r)) != NULL;
	case 't':
		return jval_literal(r, "true", v, JV_TRUE);
	case 'f':
		return jval_literal(r, "false", v, JV_FALSE);
	case 'n':
		return jval_literal(r, "null", v, JV_NULL);
	default:
		return jval_number(r, v);
	}
}

/* Parses TEXT (LEN bytes) as one JSON value. Returns NULL and, in *ERR, a
 * reason with its offset when it is not. */
static struct jval *jval_parse(const char *text, size_t len, char **err)
{
	struct jval_reader r = {.start = text, .p = text, .end = text + len};
	struct jval *v = xcalloc(1, sizeof(*v));

	if (jval_value(&r, v)) {
		jval_skip_ws(&r);
		if (r.p == r.end)
			return v;
		jval_fail(&r, "more text after the value");
	}
	*err = xasprintf("%s at byte %zu", r.err ? r.err : "malformed", (size_t)(r.p - r.start));
	jval_free(v);
	return NULL;
}

/* The member KEY of object V, or NULL. */
static const struct jval *jval_get(const struct jval *v, const char *key)
{
	if (!v || v->type != JV_OBJECT)
		return NULL;
	for (size_t i = 0; i < v->nitems; i++)
		if (!strcmp(v->items[i].key, key))
			return &v->items[i];
	return NULL;
}

/* The string member KEY of V, or NULL. */
static const char *jval_str(const struct jval *v, const char *key)
{
	const struct jval *m = jval_get(v, key);

	return m && m->type == JV_STRING ? m->text : NULL;
}

/* The array member KEY of V, or NULL. */
static const struct jval *jval_array(const struct jval *v, const char *key)
{
	const struct jval *m = jval_get(v, key);

	return m && m->type == JV_ARRAY ? m : NULL;
}

/* ---- readable output --------------------------------------------------- */

/* A percentage with up to 2 decimals and no trailing zeros: 90, 12.5, 33.33. */
static char *fmt_percent(const struct jval *v)
{
	char buf[64];
	size_t n;

	if (!v || v->type != JV_NUMBER)
		return v && v->type == JV_STRING ? clean(v->text) : xstrdup("-");
	snprintf(buf, sizeof(buf), "%.2f", strtod(v->text, NULL));
	n = strlen(buf);
	while (n && buf[n - 1] == '0')
		buf[--n] = '\0';
	if (n && buf[n - 1] == '.')
		buf[--n] = '\0';
	if (!strcmp(buf, "-0"))
		strcpy(buf, "0");
	return xasprintf("%s%%", buf);
}

static char *cell_percent(const struct jval *obj, const char *key)
{
	return fmt_percent(jval_get(obj, key));
}

/* A member as a table cell: strings and numbers as they are, "-" when
 * absent. */
static char *cell_of(const struct jval *obj, const char *key)
{
	const struct jval *v = jval_get(obj, key);

	if (!v)
		return xstrdup("-");
	switch (v->type) {
	case JV_STRING:
		return clean(v->text);
	case JV_NUMBER:
		return xstrdup(v->text);
	case JV_TRUE:
		return xstrdup("true");
	case JV_FALSE:
		return xstrdup("false");
	default:
		return xstrdup("-");
	}
}

/* Display width of UTF-8 text: code points, not bytes. */
static size_t text_width(const char *s)
{
	size_t n = 0;

	for (; *s; s++)
		n += ((unsigned char)*s & 0xc0) != 0x80;
	return n;
}

/* Rows of cells, printed with every column as wide as its widest cell. */
struct table {
	size_t ncols;
	char **cells; /* row after row, ncols each; owned */
	size_t nrows, cap;
};

static void table_add(struct table *t, char **row)
{
	if (t->nrows == t->cap) {
		t->cap = t->cap ? 2 * t->cap : 16;
		t->cells = xrealloc(t->cells, t->cap * t->ncols * sizeof(*t->cells));
	}
	memcpy(t->cells + t->nrows++ * t->ncols, row, t->ncols * sizeof(*row));
}

static void table_print(struct table *t, FILE *f)
{
	size_t *w = xcalloc(t->ncols, sizeof(*w));

	for (size_t r = 0; r < t->nrows; r++)
		for (size_t c = 0; c < t->ncols; c++) {
			size_t n = text_width(t->cells[r * t->ncols + c]);
			if (n > w[c])
				w[c] = n;
		}
	for (size_t r = 0; r < t->nrows; r++) {
		for (size_t c = 0; c < t->ncols; c++) {
			const char *s = t->cells[r * t->ncols + c];
			fputs(s, f);
			if (c + 1 < t->ncols)
				fprintf(f, "%*s", (int)(w[c] - text_width(s) + 2), "");
		}
		fputc('\n', f);
	}
	free(w);
}

static void table_free(struct table *t)
{
	for (size_t i = 0; i < t->nrows * t->ncols; i++)
		free(t->cells[i]);
	free(t->cells);
}

static const char *arrow(void)
{
	return !strcmp(nl_langinfo(CODESET), "UTF-8") ? "\xe2\x86\x92" : "->";
}

static void print_uptime(const struct jval *v)
{
	unsigned long long s;

	if (!v || v->type != JV_NUMBER)
		return;
	s = strtoull(v->text, NULL, 10);
	if (s >= 86400)
		printf(", up %llud %lluh", s / 86400, s % 86400 / 3600);
	else if (s >= 3600)
		printf(", up %lluh %llum", s / 3600, s % 3600 / 60);
	else if (s >= 60)
		printf(", up %llum %llus", s / 60, s % 60);
	else
		printf(", up %llus", s);
}

/* The columns of the status table: a member of the pool or of the server,
 * and how it reads. */
static const struct status_column {
	const char *head;
	const char *key;
	bool of_pool;
	char *(*cell)(const struct jval *obj, const char *key);
} status_columns[] = {
        {"POOL", "name", true, cell_of},          {"WEIGHT", "weight", true, cell_percent},
        {"SERVER", "name", false, cell_of},       {"ADDRESS", "address", false, cell_of},
        {"WEIGHT", "weight", false, cell_of},     {"HEALTH", "health", false, cell_of},
        {"CIRCUIT", "circuit", false, cell_of},   {"ADMIN", "admin", false, cell_of},
        {"INFLIGHT", "inflight", false, cell_of}, {"REQUESTS", "requests", false, cell_of},
        {"FAILURES", "failures", false, cell_of},
};

/* The states of a server that take it out of rotation on their own, with
 * the member saying when and why the last change happened. */
static const struct server_trouble {
	const char *key;    /* the state */
	const char *fine;   /* its value when all is well */
	const char *label;  /* before the state in the note */
	const char *change; /* {"at":"...","reason":"..."} or null */
} server_troubles[] = {
        {"health", "up", "", "health_change"},
        {"circuit", "closed", "circuit ", "circuit_change"},
};

/*
 * Under the table, one line per server that is down or whose circuit is not
 * closed, with the reason zdmd gives:
 *   old/b: down since 2026-11-21T10:00:00.123Z: 3 checks failed, last: timeout after 1s
 */
static void print_troubles(const struct jval *pools)
{
	for (size_t i = 0; i < pools->nitems; i++) {
		const struct jval *p = &pools->items[i];
		const struct jval *servers = jval_array(p, "servers");
		const char *pool = jval_str(p, "name");

		for (size_t j = 0; servers && j < servers->nitems; j++) {
			const struct jval *sv = &servers->items[j];
			const char *server = jval_str(sv, "name");

			for (size_t k = 0; k < ARRAY_SIZE(server_troubles); k++) {
				const struct server_trouble *tr = &server_troubles[k];
				const char *state = jval_str(sv, tr->key);
				const struct jval *change = jval_get(sv, tr->change);
				const char *at = jval_str(change, "at");
				const char *reason = jval_str(change, "reason");

				if (!state || !strcmp(state, tr->fine))
					continue;
				put_clean(stdout, pool ? pool : "?");
				putchar('/');
				put_clean(stdout, server ? server : "?");
				printf(": %s", tr->label);
				put_clean(stdout, state);
				if (at) {
					fputs(" since ", stdout);
					put_clean(stdout, at);
				}
				if (reason) {
					fputs(": ", stdout);
					put_clean(stdout, reason);
				}
				putchar('\n');
			}
		}
	}
}

/* A number member of V as a double (NAN when absent). */
static double jval_double(const struct jval *v, const char *key)
{
	const struct jval *m = jval_get(v, key);
	return m && m->type == JV_NUMBER ? strtod(m->text, NULL) : NAN;
}

/* The last minute of each pool, side by side: how a rollout compares. */
static void print_windows(const struct jval *pools)
{
	static const char *const head[] = {"POOL", "REQ/S", "5XX", "P50", "P95", "P99"};
	struct table t = {.ncols = ARRAY_SIZE(head)};
	char *row[ARRAY_SIZE(head)];
	bool any = false;

	for (size_t c = 0; c < t.ncols; c++)
		row[c] = xstrdup(head[c]);
	table_add(&t, row);
	for (size_t i = 0; i < pools->nitems; i++) {
		const struct jval *p = &pools->items[i];
		const struct jval *w = jval_get(p, "window");
		const char *name = jval_str(p, "name");
		char buf[5][32];
		if (!w || w->type != JV_OBJECT)
			continue;
		any = true;
		snprintf(buf[0], sizeof(buf[0]), "%.1f", jval_double(w, "rps"));
		snprintf(buf[1], sizeof(buf[1]), "%.1f%%", 100 * jval_double(w, "error_rate"));
		snprintf(buf[2], sizeof(buf[2]), "%.1fms", jval_double(w, "p50_ms"));
		snprintf(buf[3], sizeof(buf[3]), "%.1fms", jval_double(w, "p95_ms"));
		snprintf(buf[4], sizeof(buf[4]), "%.1fms", jval_double(w, "p99_ms"));
		row[0] = clean(name ? name : "?");
		for (int k = 0; k < 5; k++)
			row[k + 1] = xstrdup(buf[k]);
		table_add(&t, row);
	}
	if (any) {
		double secs = jval_double(jval_get(&pools->items[0], "window"), "seconds");
		printf("last %.0fs:\n", secs == secs ? secs : 60.0);
		table_print(&t, stdout);
	}
	table_free(&t);
}

static bool print_status(const struct jval *a)
{
	const struct jval *pools = jval_array(a, "pools"), *pins = jval_array(a, "pins");
	struct table t = {.ncols = ARRAY_SIZE(status_columns)};
	char *row[ARRAY_SIZE(status_columns)];
	const char *version = jval_str(a, "version");

	if (!pools)
		return false;
	fputs("zdmd", stdout);
	if (version) {
		putchar(' ');
		put_clean(stdout, version);
	}
	print_uptime(jval_get(a, "uptime_s"));
	putchar('\n');

	for (size_t c = 0; c < t.ncols; c++)
		row[c] = xstrdup(status_columns[c].head);
	table_add(&t, row);
	for (size_t i = 0; i < pools->nitems; i++) {
		const struct jval *p = &pools->items[i];
		const struct jval *servers = jval_array(p, "servers");
		size_t n = servers ? servers->nitems : 0;

		/* Every row names its pool, so that grep finds a pool's servers;
		 * a pool without servers still gets its row. */
		for (size_t j = 0; j < n || (j == 0 && n == 0); j++) {
			for (size_t c = 0; c < t.ncols; c++) {
				const struct status_column *col = &status_columns[c];
				const struct jval *obj = col->of_pool ? p
				                         : n          ? &servers->items[j]
				                                      : NULL;

				row[c] = col->cell(obj, col->key);
			}
			table_add(&t, row);
		}
	}
	table_print(&t, stdout);
	table_free(&t);
	const struct jval *routes = jval_array(a, "routes");
	bool many = routes && (routes->nitems > 1 ||
	                       (routes->nitems == 1 &&
	                        strcmp(jval_str(&routes->items[0], "name") ?: "", "default") != 0));
	if (many) {
		print_troubles(pools);
		for (size_t i = 0; i < routes->nitems; i++)
			print_route(&routes->items[i]);
		return true;
	}
	print_windows(pools);
	print_troubles(pools);
	print_pins(pins);
	return true;
}

/* "pins: canary: true -> new", one line each ("pins: none"). */
static void print_pins(const struct jval *pins)
{
	if (!pins)
		return;
	if (!pins->nitems)
		puts("pins: none");
	for (size_t i = 0; i < pins->nitems; i++) {
		const struct jval *p = &pins->items[i];
		const char *header = jval_str(p, "header"), *value = jval_str(p, "value");
		const char *cookie = jval_str(p, "cookie");
		const char *pool = jval_str(p, "pool");

		fputs(i ? "      " : "pins: ", stdout);
		if (cookie) {
			fputs("cookie ", stdout);
			put_clean(stdout, cookie);
		} else {
			put_clean(stdout, header ? header : "?");
		}
		fputs(": ", stdout);
		if (value && *value)
			put_clean(stdout, value);
		else
			fputs("\"\"", stdout);
		printf(" %s ", arrow());
		put_clean(stdout, pool ? pool : "?");
		putchar('\n');
	}
}

/* A string array member as "a, b". */
static void put_list(const struct jval *v)
{
	for (size_t i = 0; v && i < v->nitems; i++) {
		if (i)
			fputs(", ", stdout);
		put_clean(stdout, v->items[i].type == JV_STRING ? v->items[i].text : "?");
	}
}

/* One route's block: what it matches, its split, its last minute, pins. */
static void print_route(const struct jval *r)
{
	const char *name = jval_str(r, "name");
	const struct jval *match = jval_get(r, "match"), *pools = jval_array(r, "pools");
	const struct jval *hosts = match ? jval_array(match, "host") : NULL;
	const struct jval *methods = match ? jval_array(match, "methods") : NULL;
	const char *prefix = match ? jval_str(match, "path_prefix") : NULL;

	fputs("\nroute ", stdout);
	put_clean(stdout, name ? name : "?");
	fputs(":", stdout);
	if (hosts) {
		fputs(" host ", stdout);
		put_list(hosts);
	}
	if (prefix) {
		fputs(" path ", stdout);
		put_clean(stdout, prefix);
	}
	if (methods) {
		fputs(" methods ", stdout);
		put_list(methods);
	}
	if (!hosts && !prefix && !methods)
		fputs(" every request", stdout);
	putchar('\n');
	if (pools) {
		fputs("split: ", stdout);
		print_pools_line(pools);
		print_windows(pools);
	}
	print_pins(jval_array(r, "pins"));
}

/* "old 75%  new 25%" */
static void print_pools_line(const struct jval *pools)
{
	for (size_t i = 0; i < pools->nitems; i++) {
		const struct jval *p = &pools->items[i];
		const char *name = jval_str(p, "name");
		char *pct = fmt_percent(jval_get(p, "weight"));

		if (i)
			fputs("  ", stdout);
		put_clean(stdout, name ? name : "?");
		printf(" %s", pct);
		free(pct);
	}
	putchar('\n');
}

/* "old/a: " */
static void print_server_prefix(const struct jval *a)
{
	const char *pool = jval_str(a, "pool"), *server = jval_str(a, "server");

	put_clean(stdout, pool ? pool : "?");
	putchar('/');
	put_clean(stdout, server ? server : "?");
	fputs(": ", stdout);
}

/* "orders: monolith 75%  orders 25%" for each route of ROUTES. */
static void print_routes_lines(const struct jval *routes)
{
	for (size_t i = 0; i < routes->nitems; i++) {
		const struct jval *r = &routes->items[i];
		const struct jval *pools = jval_array(r, "pools");
		const char *name = jval_str(r, "name");

		put_clean(stdout, name ? name : "?");
		fputs(": ", stdout);
		if (pools)
			print_pools_line(pools);
		else
			putchar('\n');
	}
}

static bool print_weight(const struct jval *a)
{
	const struct jval *pools = jval_array(a, "pools");
	const struct jval *routes = jval_array(a, "routes");
	const struct jval *w = jval_get(a, "weight");
	const char *route = jval_str(a, "route");

	if (routes && routes->nitems > 1) {
		print_routes_lines(routes);
		return true;
	}
	if (pools) {
		if (route && strcmp(route, "default") != 0) {
			put_clean(stdout, route);
			fputs(": ", stdout);
		}
		print_pools_line(pools);
		return true;
	}
	if (!jval_str(a, "server") || !w || w->type != JV_NUMBER)
		return false;
	print_server_prefix(a);
	printf("weight %s\n", w->text);
	return true;
}

static bool print_admin(const struct jval *a)
{
	const char *admin = jval_str(a, "admin");

	if (!admin || !jval_str(a, "server"))
		return false;
	print_server_prefix(a);
	put_clean(stdout, admin);
	putchar('\n');
	return true;
}

static bool print_reload(const struct jval *a)
{
	const struct jval *r = jval_get(a, "reloaded");

	if (!r)
		return false;
	puts(r->type == JV_TRUE ? "reloaded" : "not reloaded");
	return true;
}

/* "12 ms", "1.5 s" for a latency in ms; "-" when absent. */
static char *fmt_ms(const struct jval *v)
{
	if (!v || v->type != JV_NUMBER)
		return xstrdup("-");
	double ms = strtod(v->text, NULL);
	if (ms >= 1000)
		return xasprintf("%.2f s", ms / 1000);
	return xasprintf("%.*f ms", ms < 10 ? 2 : ms < 100 ? 1 : 0, ms);
}

/* A share (0..1) as a percentage with 2 decimals. */
static char *fmt_share(const struct jval *v)
{
	if (!v || v->type != JV_NUMBER)
		return xstrdup("-");
	return xasprintf("%.2f%%", strtod(v->text, NULL) * 100);
}

/* A check's value or threshold, in its metric's unit. */
static char *fmt_metric(const char *metric, const struct jval *v)
{
	if (!v || v->type != JV_NUMBER)
		return xstrdup("-");
	if (!strcmp(metric, "error_rate") || !strcmp(metric, "availability"))
		return fmt_share(v);
	if (strstr(metric, "_vs_baseline"))
		return xasprintf("%.2fx", strtod(v->text, NULL));
	return fmt_ms(v);
}

/* "12s", "4m 10s" */
static void put_duration(double s)
{
	unsigned long long n = (unsigned long long)(s + 0.5);
	if (n >= 3600)
		printf("%lluh %llum", n / 3600, n % 3600 / 60);
	else if (n >= 60)
		printf("%llum %llus", n / 60, n % 60);
	else
		printf("%llus", n);
}

/* The rollout of a route: state and step, the steps with the current one
 * marked, the hold left, the reason, and the last analysis as tables. */
static bool print_rollout(const struct jval *a)
{
	const struct jval *ro = jval_get(a, "rollout");
	const char *route = jval_str(a, "route");
	const char *state = ro ? jval_str(ro, "state") : NULL;
	const struct jval *steps = ro ? jval_array(ro, "steps") : NULL;
	const struct jval *step = ro ? jval_get(ro, "step") : NULL;
	if (!state || !steps || !step || step->type != JV_NUMBER)
		return false;
	unsigned long cur = strtoul(step->text, NULL, 10);
	const char *pool = jval_str(ro, "pool");
	char *pct = cell_percent(ro, "percent");

	fputs("route ", stdout);
	put_clean(stdout, route ? route : "?");
	fputs(": rollout of pool ", stdout);
	put_clean(stdout, pool ? pool : "?");
	fputs(": ", stdout);
	put_clean(stdout, state);
	if (cur)
		printf(", step %lu of %zu", cur, steps->nitems);
	printf(" (%s at %s)\n", pool ? pool : "?", pct);
	free(pct);

	fputs("steps:", stdout);
	for (size_t i = 0; i < steps->nitems; i++) {
		char *sp = fmt_percent(&steps->items[i]);
		bool here = cur == i + 1 && (!strcmp(state, "running") || !strcmp(state, "paused"));
		printf(here ? "  [%s]" : "  %s", sp);
		free(sp);
	}
	putchar('\n');
	const struct jval *left = jval_get(ro, "hold_left_s");
	const char *next = jval_str(ro, "next_step_at");
	if (left && left->type == JV_NUMBER && next) {
		fputs("hold left: ", stdout);
		put_duration(strtod(left->text, NULL));
		fputs(" (next step at ", stdout);
		put_clean(stdout, next);
		fputs(")\n", stdout);
	} else if (!strcmp(state, "paused")) {
		puts("hold left: none while paused (zdmctl rollout resume)");
	}
	const char *reason = jval_str(ro, "reason");
	if (reason) {
		fputs("reason: ", stdout);
		put_clean(stdout, reason);
		putchar('\n');
	}

	const struct jval *an = jval_get(ro, "analysis");
	const char *verdict = an ? jval_str(an, "verdict") : NULL;
	if (!verdict) {
		puts("last analysis: none yet");
		return true;
	}
	const char *at = jval_str(an, "at");
	fputs("last analysis: ", stdout);
	put_clean(stdout, verdict);
	if (at) {
		fputs(" at ", stdout);
		put_clean(stdout, at);
	}
	putchar('\n');

	struct table t = {.ncols = 6};
	char *head[] = {xstrdup(""), xstrdup("requests"), xstrdup("errors"), xstrdup("p50"),
	                xstrdup("p95"), xstrdup("p99")};
	table_add(&t, head);
	static const char *const sides[2] = {"pool", "baseline"};
	for (size_t i = 0; i < 2; i++) {
		const struct jval *v = jval_get(an, sides[i]);
		char *row[] = {xasprintf("%s", i ? "baseline" : pool ? pool : "pool"),
		               cell_of(v, "requests"), fmt_share(jval_get(v, "error_rate")),
		               fmt_ms(jval_get(v, "p50_ms")), fmt_ms(jval_get(v, "p95_ms")),
		               fmt_ms(jval_get(v, "p99_ms"))};
		table_add(&t, row);
	}
	table_print(&t, stdout);
	table_free(&t);

	const struct jval *checks = jval_array(an, "checks");
	struct table c = {.ncols = 5};
	char *chead[] = {xstrdup("check"), xstrdup("value"), xstrdup("threshold"),
	                 xstrdup("action"), xstrdup("result")};
	table_add(&c, chead);
	for (size_t i = 0; checks && i < checks->nitems; i++) {
		const struct jval *k = &checks->items[i];
		const char *metric = jval_str(k, "metric");
		const struct jval *lim = jval_get(k, "max");
		const char *rel = "max";
		if (!lim) {
			lim = jval_get(k, "min");
			rel = "min";
		}
		char *limit = fmt_metric(metric ? metric : "", lim);
		char *row[] = {cell_of(k, "metric"), fmt_metric(metric ? metric : "",
		                                                jval_get(k, "value")),
		               xasprintf("%s %s", rel, limit), cell_of(k, "action"),
		               cell_of(k, "result")};
		free(limit);
		table_add(&c, row);
	}
	table_print(&c, stdout);
	table_free(&c);
	return true;
}

/* ---- help -------------------------------------------------------------- */

/* TEXT word-wrapped to HELP_WIDTH columns, every line indented by INDENT. */
static void print_wrapped(FILE *f, const char *text, size_t indent)
{
	size_t room = HELP_WIDTH - indent;
	const char *p = text;

	while (*p) {
		size_t n = strlen(p);

		if (n > room) {
			n = room;
			while (n && p[n] != ' ')
				n--;
			if (!n)
				n = strcspn(p, " ");
		}
		fprintf(f, "%*s%.*s\n", (int)indent, "", (int)n, p);
		p += n;
		while (*p == ' ')
			p++;
	}
}

static void help(FILE *f)
{
	fprintf(f,
	        "usage: zdmctl [-s SOCKET] [--json] COMMAND [ARGS...]\n"
	        "\n"
	        "Sends COMMAND to zdmd's control socket and prints the answer.\n"
	        "\n"
	        "options:\n"
	        "  -s, --socket SOCKET  the control socket; default: $ZDM_SOCKET, else\n"
	        "                       %s\n"
	        "  -j, --json           print zdmd's answer as it is, one line of JSON\n"
	        "  -h, --help           this help, as is zdmctl help\n"
	        "  -V, --version        print the version\n"
	        "\n"
	        "commands:\n",
	        ZDM_DEFAULT_SOCKET);
	for (size_t i = 0; i < ARRAY_SIZE(ctl_commands); i++) {
		const struct ctl_command *c = &ctl_commands[i];

		fprintf(f, "  %s%s%s\n", c->name, *c->args ? " " : "", c->args);
		print_wrapped(f, c->help, 6);
	}
	fprintf(f, "\n"
	           "exit status: 0 zdmd said ok, 1 zdmd refused (the reason is on stderr),\n"
	           "2 zdmd could not be reached or did not answer, or the arguments are wrong.\n");
}

static void put_json_string(FILE *f, const char *s)
{
	putc('"', f);
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;
		if (c == '"' || c == '\\')
			fprintf(f, "\\%c", c);
		else if (c < 0x20)
			fprintf(f, "\\u%04x", c);
		else
			putc(c, f);
	}
	putc('"', f);
}

/* The answer zdmd gives to `help`, built from the same table. */
static void help_json(FILE *f)
{
	fputs("{\"ok\":true,\"commands\":[", f);
	for (size_t i = 0; i < ARRAY_SIZE(ctl_commands); i++) {
		const struct ctl_command *c = &ctl_commands[i];

		fputs(i ? ",{\"name\":" : "{\"name\":", f);
		put_json_string(f, c->name);
		fputs(",\"args\":", f);
		put_json_string(f, c->args);
		fputs(",\"help\":", f);
		put_json_string(f, c->help);
		fputc('}', f);
	}
	fputs("]}\n", f);
}

/* ---- the control socket ------------------------------------------------ */

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Where the socket path came from, for messages. */
struct target {
	const char *path;
	const char *source; /* how it was chosen, completing "this path ..." */
};

static void hint_unreachable(const struct target *t, int err)
{
	if (err == EACCES || err == EPERM)
		fprintf(stderr,
		        "zdmctl: the socket's mode (control.mode, default 0600) and group "
		        "(control.group) say who may use it: run zdmctl as zdmd's user or as a "
		        "member of that group\n");
	else
		fprintf(stderr,
		        "zdmctl: zdmd may not be running, or its control.socket is elsewhere: "
		        "this path %s\n",
		        t->source);
}

/* A socket connected to T within the deadline, or -1 after saying why. */
static int ctl_connect(const struct target *t, int64_t deadline)
{
	struct sockaddr_un sun = {.sun_family = AF_UNIX};
	int64_t left = deadline - now_ms();
	struct timeval tv = {.tv_sec = left / 1000, .tv_usec = (left % 1000) * 1000};
	int fd, err;

	if (strlen(t->path) >= sizeof(sun.sun_path)) {
		fprintf(stderr, "zdmctl: socket path %s is too long (at most %zu bytes)\n", t->path,
		        sizeof(sun.sun_path) - 1);
		return -1;
	}
	memcpy(sun.sun_path, t->path, strlen(t->path) + 1);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		fprintf(stderr, "zdmctl: cannot create a socket: %s\n", strerror(errno));
		return -1;
	}
	/* A Unix stream connect waits for room in a full backlog up to the send
	 * timeout. */
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	while (connect(fd, (struct sockaddr *)&sun, sizeof(sun)) < 0) {
		if (errno == EINTR)
			continue;
		err = errno;
		if (err == EAGAIN || err == EINPROGRESS)
			fprintf(stderr,
			        "zdmctl: zdmd at %s did not accept the connection within %ds (its "
			        "queue is full: is it stuck?)\n",
			        t->path, CTL_TIMEOUT_MS / 1000);
		else
			fprintf(stderr, "zdmctl: cannot connect to zdmd at %s: %s\n", t->path,
			        strerror(err));
		if (err != EAGAIN && err != EINPROGRESS)
			hint_unreachable(t, err);
		close(fd);
		return -1;
	}
	fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
	return fd;
}

/* Waits for EVENTS on FD until the deadline; false on a timeout. */
static bool wait_for(int fd, short events, int64_t deadline)
{
	for (;;) {
		struct pollfd pfd = {.fd = fd, .events = events};
		int64_t left = deadline - now_ms();
		int n;

		if (left <= 0)
			return false;
		n = poll(&pfd, 1, (int)left);
		if (n > 0)
			return true;
		if (n == 0)
			return false;
		if (errno != EINTR)
			return true; /* let the read or write report it */
	}
}

static bool ctl_send(int fd, const struct target *t, const char *line, size_t len, int64_t deadline)
{
	size_t off = 0;

	while (off < len) {
		ssize_t n = send(fd, line + off, len - off, MSG_NOSIGNAL);

		if (n >= 0) {
			off += (size_t)n;
			continue;
		}
		if (errno == EINTR)
			continue;
		if (errno == EAGAIN && wait_for(fd, POLLOUT, deadline))
			continue;
		if (errno == EAGAIN)
			fprintf(stderr, "zdmctl: zdmd at %s did not take the command within %ds\n",
			        t->path, CTL_TIMEOUT_MS / 1000);
		else if (errno == EPIPE || errno == ECONNRESET)
			fprintf(stderr,
			        "zdmctl: zdmd at %s closed the connection before reading the "
			        "command\n",
			        t->path);
		else
			fprintf(stderr, "zdmctl: cannot send the command to zdmd at %s: %s\n",
			        t->path, strerror(errno));
		return false;
	}
	return true;
}

/* The answer line (without its '\n'), or NULL after saying why. */
static char *ctl_receive(int fd, const struct target *t, size_t *lenp, int64_t deadline)
{
	size_t cap = 4096, len = 0;
	char *buf = xmalloc(cap);

	for (;;) {
		ssize_t n;
		char *nl;

		if (len == cap) {
			if (cap >= CTL_ANSWER_MAX) {
				fprintf(stderr, "zdmctl: the answer from %s exceeds %u MiB\n",
				        t->path, CTL_ANSWER_MAX >> 20);
				break;
			}
			buf = xrealloc(buf, cap *= 2);
		}
		n = recv(fd, buf + len, cap - len, 0);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN) {
			if (wait_for(fd, POLLIN, deadline))
				continue;
			fprintf(stderr, "zdmctl: no answer from zdmd at %s within %ds\n", t->path,
			        CTL_TIMEOUT_MS / 1000);
			break;
		}
		if (n < 0) {
			fprintf(stderr, "zdmctl: cannot read the answer from zdmd at %s: %s\n",
			        t->path, strerror(errno));
			break;
		}
		if (n == 0) {
			fprintf(stderr, "zdmctl: zdmd at %s closed the connection without %s\n",
			        t->path, len ? "finishing its answer" : "answering");
			break;
		}
		nl = memchr(buf + len, '\n', (size_t)n);
		len += (size_t)n;
		if (nl) {
			len = (size_t)(nl - buf);
			if (len && buf[len - 1] == '\r')
				len--;
			buf[len] = '\0';
			*lenp = len;
			return buf;
		}
	}
	free(buf);
	return NULL;
}

/*
 * Sends LINE (its '\n' included) and returns the answer, or NULL after
 * saying why. One deadline covers connecting, sending and the answer.
 */
static char *ctl_exchange(const struct target *t, const char *line, size_t len, size_t *anslen)
{
	int64_t deadline = now_ms() + CTL_TIMEOUT_MS;
	char *answer = NULL;
	int fd = ctl_connect(t, deadline);

	if (fd < 0)
		return NULL;
	if (ctl_send(fd, t, line, len, deadline))
		answer = ctl_receive(fd, t, anslen, deadline);
	close(fd);
	return answer;
}

/* ---- main -------------------------------------------------------------- */

/* Prints the answer and returns the exit status it means. */
static int show_answer(const struct ctl_command *cmd, const struct target *t, const char *line,
                       size_t len, bool raw)
{
	const struct jval *ok, *errors;
	struct jval *a;
	char *err = NULL;
	int rc;

	if (raw)
		printf("%s\n", line);
	a = jval_parse(line, len, &err);
	ok = jval_get(a, "ok");
	if (!a || !ok || (ok->type != JV_TRUE && ok->type != JV_FALSE)) {
		fprintf(stderr, "zdmctl: unexpected answer from zdmd at %s: %s\n", t->path,
		        err ? err : "no \"ok\" member");
		if (!raw) {
			fputs("zdmctl: it reads: ", stderr);
			put_clean(stderr, line);
			fputc('\n', stderr);
		}
		free(err);
		jval_free(a);
		return CTL_EXIT_TROUBLE;
	}
	if (ok->type == JV_TRUE) {
		if (!raw) {
			const struct ctl_printer *pr = printer_find(cmd->name);

			if (!pr || !pr->print(a))
				puts(line);
		}
		rc = CTL_EXIT_OK;
	} else {
		const char *msg = jval_str(a, "error");

		fputs("zdmctl: ", stderr);
		put_clean(stderr, msg ? msg : "zdmd refused the command without saying why");
		fputc('\n', stderr);
		errors = jval_array(a, "errors");
		for (size_t i = 0; errors && i < errors->nitems; i++) {
			if (errors->items[i].type != JV_STRING)
				continue;
			put_clean(stderr, errors->items[i].text);
			fputc('\n', stderr);
		}
		rc = CTL_EXIT_REFUSED;
	}
	jval_free(a);
	return rc;
}

/* Whether ARG, found after the command, spells one of zdmctl's options: a
 * hint for `zdmctl status --json`. Only a hint, given when the arguments are
 * wrong anyway, since a pool may be named "-j". */
static bool misplaced_option(const struct option *longopts, const char *arg)
{
	if (arg[0] != '-')
		return false;
	if (arg[1] && strchr("sjhV", arg[1]) && !arg[2])
		return true;
	for (const struct option *o = longopts; arg[1] == '-' && o->name; o++)
		if (!strcmp(arg + 2, o->name))
			return true;
	return false;
}

/* The command words joined by single spaces, '\n' at the end. */
static char *join_line(char **words, size_t n, size_t *lenp)
{
	size_t len = 0;
	char *line, *p;

	for (size_t i = 0; i < n; i++)
		len += strlen(words[i]) + 1;
	p = line = xmalloc(len + 1);
	for (size_t i = 0; i < n; i++) {
		size_t w = strlen(words[i]);
		memcpy(p, words[i], w);
		p += w;
		*p++ = i + 1 < n ? ' ' : '\n';
	}
	*p = '\0';
	*lenp = len;
	return line;
}

int main(int argc, char **argv)
{
	static const struct option longopts[] = {
	        {"socket", required_argument, NULL, 's'},
	        {"json", no_argument, NULL, 'j'},
	        {"help", no_argument, NULL, 'h'},
	        {"version", no_argument, NULL, 'V'},
	        {NULL, 0, NULL, 0},
	};
	struct target t = {.path = NULL};
	const struct ctl_command *cmd;
	bool raw = false;
	char *line, *answer;
	size_t len, anslen = 0;
	int opt, rc;

	setlocale(LC_CTYPE, "");
	opterr = 0;
	/* "+": options end at the command, whose arguments may start with '-'. */
	while ((opt = getopt_long(argc, argv, "+s:jhV", longopts, NULL)) != -1) {
		switch (opt) {
		case 's':
			t.path = optarg;
			t.source = "came from -s";
			break;
		case 'j':
			raw = true;
			break;
		case 'h':
			help(stdout);
			return CTL_EXIT_OK;
		case 'V':
			printf("zdmctl %s\n", ZDM_VERSION);
			return CTL_EXIT_OK;
		default:
			if (optopt == 's')
				fprintf(stderr, "zdmctl: -s needs a socket path\n");
			else if (optopt)
				fprintf(stderr, "zdmctl: unknown option '-%c'\n", optopt);
			else
				fprintf(stderr, "zdmctl: unknown option '%s'\n", argv[optind - 1]);
			fprintf(stderr, "usage: zdmctl [-s SOCKET] [--json] COMMAND [ARGS...]; "
			                "zdmctl help lists the commands\n");
			return CTL_EXIT_TROUBLE;
		}
	}
	if (optind == argc) {
		fprintf(stderr, "usage: zdmctl [-s SOCKET] [--json] COMMAND [ARGS...]; "
		                "zdmctl help lists the commands\n");
		return CTL_EXIT_TROUBLE;
	}
	cmd = command_find(argv[optind]);
	if (!cmd) {
		fputs("zdmctl: unknown command '", stderr);
		put_clean(stderr, argv[optind]);
		fputs("'; zdmctl help lists the commands\n", stderr);
		return CTL_EXIT_TROUBLE;
	}
	if (!command_check(cmd, argv + optind + 1, (size_t)(argc - optind - 1))) {
		for (int i = optind + 1; i < argc; i++) {
			if (misplaced_option(longopts, argv[i])) {
				fprintf(stderr,
				        "zdmctl: options go before the command: zdmctl %s %s\n",
				        argv[i], argv[optind]);
				break;
			}
		}
		return CTL_EXIT_TROUBLE;
	}
	if (!strcmp(cmd->name, "help")) {
		if (raw)
			help_json(stdout);
		else
			help(stdout);
		return CTL_EXIT_OK;
	}

	if (!t.path) {
		const char *env = getenv("ZDM_SOCKET");

		t.path = env && *env ? env : ZDM_DEFAULT_SOCKET;
		t.source = env && *env
		                   ? "came from $ZDM_SOCKET"
		                   : "is the default; give another with -s SOCKET or $ZDM_SOCKET";
	}
	if (!*t.path) {
		fprintf(stderr, "zdmctl: -s needs a socket path\n");
		return CTL_EXIT_TROUBLE;
	}
	line = join_line(argv + optind, (size_t)(argc - optind), &len);
	if (len > CTL_LINE_MAX) {
		fprintf(stderr, "zdmctl: the command is %zu bytes long; zdmd takes at most %d\n",
		        len, CTL_LINE_MAX);
		free(line);
		return CTL_EXIT_TROUBLE;
	}
	answer = ctl_exchange(&t, line, len, &anslen);
	free(line);
	if (!answer)
		return CTL_EXIT_TROUBLE;
	rc = show_answer(cmd, &t, answer, anslen, raw);
	free(answer);
	if (fflush(stdout) != 0 || ferror(stdout)) {
		fprintf(stderr, "zdmctl: cannot write the output: %s\n", strerror(errno));
		return CTL_EXIT_TROUBLE;
	}
	return rc;
}
