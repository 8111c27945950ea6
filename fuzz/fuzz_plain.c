/*
 * fuzz_plain.c — the one-pass parser of plain heads against llhttp.
 *
 * A head that arrives whole may be read by plain_head() in src/http1/http.c;
 * one that arrives in pieces is read by llhttp; a session may see the same
 * bytes either way (a read that ends inside a head, a block moved). So the
 * same stream of messages is parsed four times — received at once, a byte
 * at a time (llhttp alone), and in two sets of random reads — and every
 * step must agree: the verdict on each head and its reason, the record of
 * the head, the checks, the headers dropped and the runs forwarded, the
 * framing (version, method or status, keep-alive, Content-Length, chunked,
 * upgrade, close-delimited), the step and byte at which each body ends,
 * and where the next message begins (after a message that keeps the
 * connection alive, as the proxy reads no further otherwise). One
 * difference is allowed: chunk framing that is broken in the read of its
 * head is refused with the head; where the head came alone, the message
 * must then be refused later, by the check or in its body.
 *
 * The first byte of the input chooses: bit 0 a response stream (else
 * requests), bit 1 the request was HEAD (responses), bit 2 a small
 * limits.max_body_bytes (requests). The rest is the stream.
 */
#include <stdlib.h>
#include <string.h>

#include "common.h"

#define NSTREAMS 4

static const char *const names[NSTREAMS] = {"at once", "byte by byte", "random reads",
                                            "other random reads"};

static bool same_reason(const char *a, const char *b)
{
	return a == b || (a && b && strcmp(a, b) == 0);
}

/* What the proxy asks about a message once its head is read, or its body. */
static void same_framing(struct fuzz_stream *s, int k, bool request, const char *when)
{
	const struct http_msg *a = &s[0].m, *b = &s[k].m;

	FUZZ_ASSERT(http_msg_version(a) == http_msg_version(b), "%s: version %d %s, %d %s", when,
	            http_msg_version(a), names[0], http_msg_version(b), names[k]);
	FUZZ_ASSERT(http_msg_keep_alive(a) == http_msg_keep_alive(b), "%s: keep-alive %d %s, %d %s",
	            when, http_msg_keep_alive(a), names[0], http_msg_keep_alive(b), names[k]);
	FUZZ_ASSERT(http_msg_content_length(a) == http_msg_content_length(b),
	            "%s: Content-Length %llu %s, %llu %s", when,
	            (unsigned long long)http_msg_content_length(a), names[0],
	            (unsigned long long)http_msg_content_length(b), names[k]);
	FUZZ_ASSERT(http_msg_chunked(a) == http_msg_chunked(b), "%s: chunked %d %s, %d %s", when,
	            http_msg_chunked(a), names[0], http_msg_chunked(b), names[k]);
	FUZZ_ASSERT(http_msg_upgrade(a) == http_msg_upgrade(b), "%s: upgrade %d %s, %d %s", when,
	            http_msg_upgrade(a), names[0], http_msg_upgrade(b), names[k]);
	FUZZ_ASSERT(http_msg_needs_eof(a) == http_msg_needs_eof(b),
	            "%s: close-delimited %d %s, %d %s", when, http_msg_needs_eof(a), names[0],
	            http_msg_needs_eof(b), names[k]);
	if (request)
		FUZZ_ASSERT(http_msg_method(a) == http_msg_method(b), "%s: method %d %s, %d %s", when,
		            http_msg_method(a), names[0], http_msg_method(b), names[k]);
	else
		FUZZ_ASSERT(http_msg_status(a) == http_msg_status(b), "%s: status %d %s, %d %s", when,
		            http_msg_status(a), names[0], http_msg_status(b), names[k]);
}

/* Whether a head step is a refusal found past the end of the head (its
 * bytes all read, its end recorded): what came after it in the same read. */
static bool refused_past_head(const struct fuzz_stream *s, enum http_step st)
{
	return st == HTTP_ERROR && s->m.head.end > s->m.head.start && s->pos == s->m.head.end;
}

/* Whether a message whose head was read is refused by its check or in its
 * body. */
static bool refused_later(struct fuzz_stream *s, bool request, uint64_t max_body)
{
	const char *reason = NULL;
	int v = request ? http_req_check(&s->m, max_body, &reason) : http_resp_check(&s->m, &reason);
	return v != 0 || fuzz_stream_body(s) == HTTP_ERROR;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fuzz_stream s[NSTREAMS];
	struct fuzz_reads reads[NSTREAMS];
	struct fuzz_rng rng;

	if (size < 1)
		return 0;
	bool request = !(data[0] & 1), head_request = !request && (data[0] & 2);
	uint64_t max_body = request && (data[0] & 4) ? 8 : 0;
	size_t len = size - 1;
	char *buf = malloc(len ? len : 1);
	memcpy(buf, data + 1, len);
	fuzz_input(data, size);
	fuzz_rng_init(&rng, data, size, 0);

	fuzz_reads_whole(&reads[0]);
	fuzz_reads_step(&reads[1], 1);
	fuzz_reads_random(&reads[2], &rng, len);
	fuzz_reads_random(&reads[3], &rng, len);
	for (int k = 0; k < NSTREAMS; k++) {
		fuzz_stream_init(&s[k], request ? HTTP_REQUEST : HTTP_RESPONSE, buf, len, &reads[k]);
		s[k].m.skip_body = head_request;
	}

	for (int msg = 0; msg < 16; msg++) {
		enum http_step st[NSTREAMS];
		int verdict[NSTREAMS];
		const char *reason[NSTREAMS];

		/* the head */
		int early = 0, done = 0;
		for (int k = 0; k < NSTREAMS; k++) {
			st[k] = fuzz_stream_head(&s[k]);
			early += refused_past_head(&s[k], st[k]);
			done += st[k] == HTTP_HEAD_DONE;
		}
		/* A chunked body's framing that came in the read of its head is
		 * checked with it, and a fault is refused then: where the head came
		 * alone, the message must be refused later, by the check or in
		 * its body. */
		if (early && done && early + done == NSTREAMS) {
			int e = 0;
			while (st[e] != HTTP_ERROR)
				e++;
			for (int k = 0; k < NSTREAMS; k++)
				FUZZ_ASSERT(st[k] == HTTP_ERROR ||
				                    refused_later(&s[k], request, max_body),
				            "message %d: refused with its head (%d, %s) %s, forwarded %s",
				            msg, s[e].m.error_status, s[e].m.error_reason, names[e],
				            names[k]);
			break;
		}
		for (int k = 1; k < NSTREAMS; k++) {
			FUZZ_ASSERT(st[k] == st[0], "message %d: head step %d %s, %d %s", msg, st[0],
			            names[0], st[k], names[k]);
			if (st[0] == HTTP_ERROR) {
				FUZZ_ASSERT(s[k].m.error_status == s[0].m.error_status &&
				                    same_reason(s[k].m.error_reason, s[0].m.error_reason),
				            "message %d: refused with %d (%s) %s, %d (%s) %s", msg,
				            s[0].m.error_status, s[0].m.error_reason, names[0],
				            s[k].m.error_status, s[k].m.error_reason, names[k]);
			} else if (st[0] == HTTP_HEAD_DONE) {
				const char *d = fuzz_head_diff(&s[0].m.head, &s[k].m.head);
				FUZZ_ASSERT(!d, "message %d: the head's %s differs %s (plain %d) and %s "
				                "(plain %d)",
				            msg, d, names[0], s[0].m.plain, names[k], s[k].m.plain);
			}
		}
		if (st[0] != HTTP_HEAD_DONE)
			break;
		fuzz_check_head(&s[0].m, buf, len);

		/* the checks, what they mark to drop, what is forwarded */
		for (int k = 0; k < NSTREAMS; k++) {
			reason[k] = NULL;
			verdict[k] = request ? http_req_check(&s[k].m, max_body, &reason[k])
			                     : http_resp_check(&s[k].m, &reason[k]);
		}
		for (int k = 1; k < NSTREAMS; k++) {
			FUZZ_ASSERT(verdict[k] == verdict[0] && same_reason(reason[k], reason[0]),
			            "message %d: checked %d (%s) %s, %d (%s) %s", msg, verdict[0],
			            reason[0], names[0], verdict[k], reason[k], names[k]);
			const char *d = fuzz_head_diff(&s[0].m.head, &s[k].m.head);
			FUZZ_ASSERT(!d, "message %d: after the check, the head's %s differs %s and %s",
			            msg, d, names[0], names[k]);
			same_framing(s, k, request, "after the head");
		}
		if (verdict[0])
			break;
		fuzz_check_runs(&s[0].m, buf);
		/* the connection is closed after a message that does not keep it
		 * alive: what follows is never parsed */
		bool keep = http_msg_keep_alive(&s[0].m);

		/* the body, and where the message ends */
		for (int k = 0; k < NSTREAMS; k++)
			st[k] = fuzz_stream_body(&s[k]);
		for (int k = 1; k < NSTREAMS; k++) {
			FUZZ_ASSERT(st[k] == st[0], "message %d: body step %d %s, %d %s", msg, st[0],
			            names[0], st[k], names[k]);
			/* (which of two faults of a body a read shows first may
			 * differ: the status may not) */
			if (st[0] == HTTP_ERROR)
				FUZZ_ASSERT(s[k].m.error_status == s[0].m.error_status,
				            "message %d: body refused with %d (%s) %s, %d (%s) %s", msg,
				            s[0].m.error_status, s[0].m.error_reason, names[0],
				            s[k].m.error_status, s[k].m.error_reason, names[k]);
			else
				FUZZ_ASSERT(s[k].pos == s[0].pos,
				            "message %d: the body ends at %zu %s, at %zu %s", msg,
				            s[0].pos, names[0], s[k].pos, names[k]);
			if (st[0] != HTTP_ERROR)
				same_framing(s, k, request, "after the body");
		}
		if (st[0] == HTTP_NEED_MORE && http_msg_needs_eof(&s[0].m)) {
			int f0 = http_msg_finish(&s[0].m);
			for (int k = 1; k < NSTREAMS; k++)
				FUZZ_ASSERT(http_msg_finish(&s[k].m) == f0,
				            "message %d: the close ends it %s, not %s", msg, names[0],
				            names[k]);
		}
		if (st[0] != HTTP_MSG_DONE || !keep || http_msg_upgrade(&s[0].m) ||
		    (!request && http_msg_status(&s[0].m) == 101))
			break;
	}
	free(buf);
	return 0;
}
