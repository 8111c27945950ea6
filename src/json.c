/*
 * json.c — JSON output.
 */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include <event2/buffer.h>

#include "json.h"

void json_strn(struct evbuffer *out, const char *s, size_t n)
{
	static const char hex[] = "0123456789abcdef";
	size_t run = 0;

	evbuffer_add(out, "\"", 1);
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c >= 0x20 && c != '"' && c != '\\' && c != 0x7f)
			continue;
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
