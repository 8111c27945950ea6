/*
 * json.h — writing JSON into evbuffers (control answers, status, the state
 * file). Only what zdm emits: strings, integers, percentages.
 */
#ifndef ZDM_JSON_H
#define ZDM_JSON_H

#include <stddef.h>
#include <stdint.h>

struct evbuffer;

/* A JSON string with everything that needs it escaped. */
void json_str(struct evbuffer *out, const char *s);
void json_strn(struct evbuffer *out, const char *s, size_t n);
/* A percentage held in hundredths: 9000 → 90, 3333 → 33.33, 50 → 0.5. */
void json_percent(struct evbuffer *out, uint32_t hundredths);
void json_u64(struct evbuffer *out, uint64_t v);
void json_i64(struct evbuffer *out, int64_t v);
/* Appends a literal (punctuation, keys written by hand). */
void json_raw(struct evbuffer *out, const char *s);

/* Formats a percentage as json_percent does, into buf (at least 8 bytes). */
const char *json_percent_text(char *buf, size_t len, uint32_t hundredths);

#endif
