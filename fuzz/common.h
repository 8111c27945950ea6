/*
 * common.h — what the fuzz drivers share: a failure that shows the input
 * and stops the run, a generator seeded by the input (so that a crash
 * input reproduces), a stream that feeds HTTP messages to http_msg_feed()
 * the way the sessions and upstream connections do, in whatever reads it
 * is told, and the properties every head the proxy accepts must have.
 */
#ifndef ZDM_FUZZ_COMMON_H
#define ZDM_FUZZ_COMMON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "http1/http.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

/* Remembers the input being run, for fuzz_fail. */
void fuzz_input(const uint8_t *data, size_t size);

/* Prints what broke and the input, then aborts: libFuzzer reports it as a
 * crash and keeps the input. */
void fuzz_fail(const char *file, int line, const char *cond, const char *fmt, ...)
        __attribute__((noreturn, format(printf, 4, 5)));

#define FUZZ_ASSERT(cond, ...)                                                                     \
	do {                                                                                       \
		if (!(cond))                                                                       \
			fuzz_fail(__FILE__, __LINE__, #cond, __VA_ARGS__);                         \
	} while (0)

/* A small generator (xorshift) seeded from the input's bytes. */
struct fuzz_rng {
	uint64_t s;
};
void fuzz_rng_init(struct fuzz_rng *r, const uint8_t *data, size_t n, uint64_t salt);
uint64_t fuzz_rng_next(struct fuzz_rng *r);
size_t fuzz_rng_below(struct fuzz_rng *r, size_t n); /* 0..n-1; 0 when n is 0 */

/* How the bytes of a stream arrive: all at once, in reads of `step` bytes,
 * or in reads ending at cuts[] (increasing), then the rest. */
#define FUZZ_MAX_CUTS 48
struct fuzz_reads {
	size_t step;
	size_t ncuts;
	size_t cuts[FUZZ_MAX_CUTS];
};
void fuzz_reads_whole(struct fuzz_reads *r);
void fuzz_reads_step(struct fuzz_reads *r, size_t step);
/* A few reads of random lengths, some of them one byte. */
void fuzz_reads_random(struct fuzz_reads *r, struct fuzz_rng *rng, size_t len);

/* One direction of a connection: messages one after the other in
 * buf[0, len), a single receive block, received as reads says. */
struct fuzz_stream {
	struct http_msg m;
	const char *buf;
	size_t len;
	size_t pos;   /* parsed up to here */
	size_t avail; /* received up to here */
	size_t cut;   /* next entry of reads->cuts */
	const struct fuzz_reads *reads;
};

void fuzz_stream_init(struct fuzz_stream *s, llhttp_type_t type, const char *buf, size_t len,
                      const struct fuzz_reads *reads);
/* Begins a message at s->pos and reads its head as a session does (never
 * fed an empty read): HTTP_HEAD_DONE with s->pos at its end, HTTP_ERROR,
 * or HTTP_NEED_MORE when the stream ends first. Checks the contract of
 * http_msg_feed on the way. */
enum http_step fuzz_stream_head(struct fuzz_stream *s);
/* Reads the body of the message whose head was read, starting with the
 * rest of the current read (maybe empty, as the proxy does right after a
 * head): HTTP_MSG_DONE or HTTP_UPGRADE with s->pos at its end, HTTP_ERROR,
 * or HTTP_NEED_MORE when the stream ends first. */
enum http_step fuzz_stream_body(struct fuzz_stream *s);

/* The first difference between two records of the same head, or NULL. */
const char *fuzz_head_diff(const struct http_head *a, const struct http_head *b);

/* Checks the record of a complete head (HTTP_HEAD_DONE) of buf[0, len):
 * offsets in order and within the head, kinds, Host count and Connection
 * tokens as recomputed here from the bytes. */
void fuzz_check_head(const struct http_msg *m, const char *buf, size_t len);

/* Checks a head the proxy accepted (its check returned 0) against the
 * rules of SPEC §5 and RFC 9110/9112: CRLF line ends, a request target of
 * RFC 3986 bytes in one of the forms served, a valid Host, token names, no
 * control bytes, Transfer-Encoding chunked alone, unambiguous framing, and
 * exactly the hop-by-hop headers marked to drop. */
void fuzz_check_accepted(const struct http_msg *m, const char *buf);

/* Checks that the runs of http_head_runs() over buf are, put together, the
 * start line (an absolute-form target in origin-form) and every header line
 * not marked drop, in order, without the final CRLF; each run within the
 * head, none empty. */
void fuzz_check_runs(const struct http_msg *m, const char *buf);

/* How an accepted request's target goes out, in origin-form, as worked out
 * here from the bytes: *skip bytes of it left out (an absolute-form
 * scheme and authority, which go out as the Host; else 0), and *slash when
 * a "/" goes in front of what is left (an absolute-form target without a
 * path). */
void fuzz_origin_form(const struct http_msg *m, const char *buf, size_t *skip, bool *slash);

/* Whether name[0, len) is a header name: one or more tchar. */
bool fuzz_is_token(const char *name, size_t len);

/* Whether s[0, n) is one JSON value (RFC 8259, strings valid UTF-8),
 * nothing after it; *why says where it is not. */
bool fuzz_json_valid(const char *s, size_t n, const char **why);

/* Prints label and s[0, n) on stderr, bytes other than printable ASCII as
 * \xNN. */
void fuzz_print_escaped(const char *label, const char *s, size_t n);

#endif
