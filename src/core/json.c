/*
 * json.c — JSON output.
 */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include <event2/buffer.h>

#include "core/json.h"

/* The length of the valid UTF-8 sequence at p (at most n bytes), or 0. */
static size_t utf8_len(const unsigned char *p, size_t n)
{
	size_t k;
	uint32_t cp;
	if (p[0] < 0xc2 || p[0] > 0xf4)
		return 0;
	k = p[0] < 0xe0 ? 2 : p[0] < 0xf0 ? 3 : 4;
	if (k > n)
		return 0;
	cp = p[0] & (0x7f >> k);
	for (size_t j = 1; j < k; j++) {
		if ((p[j] & 0xc0) != 0x80)
			return 0;
		cp = (cp << 6) | (p[j] & 0x3f);
	}
	if ((k == 3 && cp < 0x800) || (k == 4 && (cp < 0x10000 || cp > 0x10ffff)) ||
	    (cp >= 0xd800 && cp <= 0xdfff))
		return 0;
	return k;
}

void json_strn(struct evbuffer *out, const char *s, size_t n)
{
	static const char hex[] = "0123456789abcdef";
	size_t run = 0;

	evbuffer_add(out, "\"", 1);
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c >= 0x80) {
			/* Valid UTF-8 goes as it is; a byte that is not (a
			 * client's target can hold anything) is written as
			 * \u00XX, so the document stays valid JSON. */
			size_t k = utf8_len((const unsigned char *)s + i, n - i);
			if (k) {
				i += k - 1;
				continue;
			}
		} else if (c >= 0x20 && c != '"' && c != '\\' && c != 0x7f) {
			continue;
		}
		evbuffer_add(out, s + run, i - run);
		run = i + 1;
		switch (c) {
		case '"':
			evbuffer_add(out, "\\\"", 2);
			break;
		case '\\':
			evbuffer_add(out, "\\\\", 2);
			break;
		case '\n':
			evbuffer_add(out, "\\n", 2);
			break;
		case '\t':
			evbuffer_add(out, "\\t", 2);
			break;
		default: {
			char u[6] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 15]};
			evbuffer_add(out, u, 6);
		}
		}
	}
	evbuffer_add(out, s + run, n - run);
	evbuffer_add(out, "\"", 1);
}

void json_str(struct evbuffer *out, const char *s)
{
	json_strn(out, s, strlen(s));
}

const char *json_percent_text(char *buf, size_t len, uint32_t hundredths)
{
	uint32_t whole = hundredths / 100, frac = hundredths % 100;
	if (frac == 0)
		snprintf(buf, len, "%" PRIu32, whole);
	else if (frac % 10 == 0)
		snprintf(buf, len, "%" PRIu32 ".%" PRIu32, whole, frac / 10);
	else
		snprintf(buf, len, "%" PRIu32 ".%02" PRIu32, whole, frac);
	return buf;
}

void json_percent(struct evbuffer *out, uint32_t hundredths)
{
	char buf[16];
	json_raw(out, json_percent_text(buf, sizeof(buf), hundredths));
}

void json_u64(struct evbuffer *out, uint64_t v)
{
	char buf[24];
	int n = snprintf(buf, sizeof(buf), "%" PRIu64, v);
	evbuffer_add(out, buf, (size_t)n);
}

void json_i64(struct evbuffer *out, int64_t v)
{
	char buf[24];
	int n = snprintf(buf, sizeof(buf), "%" PRId64, v);
	evbuffer_add(out, buf, (size_t)n);
}

void json_raw(struct evbuffer *out, const char *s)
{
	evbuffer_add(out, s, strlen(s));
}
