/*
 * fuzz_chunks.c — the chunked framing scanner (http_chunk_scan). The input
 * is a chunked body. Fed whole, byte by byte or in random reads, the
 * scanner gives the same verdict; a malformed body fails at the same byte
 * and a well-formed one stops in the same state.
 *
 * The same bytes also follow a chunked request head through
 * http_msg_feed, read at once and in random reads: both end the message at
 * the same byte, and where llhttp ends it the scanner has taken every byte
 * and wants no more (the proxy forwards a chunked body as it is, so the two
 * must agree on where it ends).
 */
#include <stdlib.h>
#include <string.h>

#include "common.h"

static const char head[] = "POST /c HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n";

static bool same_state(const struct http_chunk_scan *a, const struct http_chunk_scan *b)
{
	return a->state == b->state && a->digits == b->digits && a->left == b->left &&
	       a->name_len == b->name_len && memcmp(a->name, b->name, sizeof(a->name)) == 0;
}

/* Whether the scanner is past the end of a body: it takes no byte at all. */
static bool ended(const struct http_chunk_scan *cs)
{
	static const char probes[] = "0\rX\n";
	for (size_t i = 0; i < sizeof(probes) - 1; i++) {
		struct http_chunk_scan c = *cs;
		if (http_chunk_scan(&c, probes + i, 1) == 0)
			return false;
	}
	return true;
}

/* Scans p[0, n) in the given reads: 0, or what the scanner returned (-1 or
 * -2) with the read that failed at [*from, *to). */
static int scan_reads(const char *p, size_t n, const struct fuzz_reads *r,
                      struct http_chunk_scan *cs, size_t *from, size_t *to)
{
	size_t at = 0, cut = 0;

	memset(cs, 0, sizeof(*cs));
	while (at < n) {
		size_t end = r->step ? (n - at > r->step ? at + r->step : n)
		             : cut < r->ncuts ? r->cuts[cut++] : n;
		int rc = http_chunk_scan(cs, p + at, end - at);
		if (rc < 0) {
			*from = at;
			*to = end;
			return rc;
		}
		at = end;
	}
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct http_chunk_scan whole, bytes, part;
	struct fuzz_reads one, random;
	struct fuzz_rng rng;
	size_t from = 0, to = 0, bad = 0;
	char *body = malloc(size ? size : 1);

	memcpy(body, data, size);
	fuzz_input(data, size);
	fuzz_rng_init(&rng, data, size, 0);

	memset(&whole, 0, sizeof(whole));
	int rw = http_chunk_scan(&whole, body, size);
	fuzz_reads_step(&one, 1);
	int rb = scan_reads(body, size, &one, &bytes, &bad, &to);
	FUZZ_ASSERT(rw == rb, "whole %d, byte by byte %d", rw, rb);
	if (rw == 0) {
		FUZZ_ASSERT(same_state(&whole, &bytes), "whole and byte by byte end in other states");
	} else {
		/* the first byte refused, and only it */
		memset(&part, 0, sizeof(part));
		FUZZ_ASSERT(http_chunk_scan(&part, body, bad) == 0, "a prefix of %zu bytes refused",
		            bad);
		FUZZ_ASSERT(http_chunk_scan(&part, body + bad, 1) < 0, "byte %zu accepted alone", bad);
	}
	for (int k = 0; k < 3; k++) {
		fuzz_reads_random(&random, &rng, size);
		int rr = scan_reads(body, size, &random, &part, &from, &to);
		FUZZ_ASSERT(rr == rw, "in random reads %d, whole %d", rr, rw);
		if (rr == 0)
			FUZZ_ASSERT(same_state(&part, &whole), "random reads end in another state");
		else
			FUZZ_ASSERT(from <= bad && bad < to, "the read [%zu, %zu) failed, byte %zu is bad",
			            from, to, bad);
	}

	/* After a head, through http_msg_feed. */
	size_t hl = sizeof(head) - 1, len = hl + size;
	char *msg = malloc(len);
	struct fuzz_stream a, b;
	struct fuzz_reads all;

	memcpy(msg, head, hl);
	memcpy(msg + hl, body, size);
	fuzz_reads_whole(&all);
	fuzz_reads_random(&random, &rng, len);
	fuzz_stream_init(&a, HTTP_REQUEST, msg, len, &all);
	fuzz_stream_init(&b, HTTP_REQUEST, msg, len, &random);
	/* (bad framing that comes in the head's read is refused with it) */
	enum http_step sa = fuzz_stream_head(&a), sb = fuzz_stream_head(&b);
	FUZZ_ASSERT((sa == HTTP_HEAD_DONE || (sa == HTTP_ERROR && rw < 0)) &&
	                    (sb == HTTP_HEAD_DONE || (sb == HTTP_ERROR && rw < 0)),
	            "the chunked head: step %d read at once, %d in reads", sa, sb);
	if (sa == HTTP_HEAD_DONE)
		sa = fuzz_stream_body(&a);
	if (sb == HTTP_HEAD_DONE)
		sb = fuzz_stream_body(&b);
	FUZZ_ASSERT(sa == sb, "body read at once: step %d, in reads: %d", sa, sb);
	if (sa == HTTP_ERROR)
		FUZZ_ASSERT(a.m.error_status == b.m.error_status, "refused %d at once, %d in reads",
		            a.m.error_status, b.m.error_status);
	if (sa == HTTP_MSG_DONE) {
		FUZZ_ASSERT(a.pos == b.pos, "the message ends at %zu read at once, at %zu in reads",
		            a.pos, b.pos);
		size_t n = a.pos - hl;
		memset(&part, 0, sizeof(part));
		FUZZ_ASSERT(http_chunk_scan(&part, body, n) == 0 && ended(&part),
		            "llhttp ends the body after %zu bytes, the scanner does not", n);
	} else if (sa == HTTP_NEED_MORE) {
		FUZZ_ASSERT(rw == 0 && !ended(&whole),
		            "the scanner %s the body llhttp wants more of",
		            rw ? "refuses" : "has ended");
	}
	free(msg);
	free(body);
	return 0;
}
