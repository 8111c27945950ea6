/*
 * fuzz_request.c — request heads as a client connection reads them: the
 * input is the bytes a client sends, received at once, parsed message by
 * message (http_msg_feed), checked (http_req_check) and, when accepted,
 * their bodies read to the next request.
 *
 * Whatever the verdict: no crash, no undefined behaviour, and
 * http_msg_feed keeps its contract. For every complete head the record
 * holds offsets in order and within the head; for every accepted one the
 * head is of the form SPEC §5 allows (fuzz_check_accepted) and the runs
 * to forward are exactly the kept lines.
 */
#include <stdlib.h>
#include <string.h>

#include "common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fuzz_reads reads;
	struct fuzz_stream s;
	struct fuzz_rng rng;
	/* a block of exactly the input: a read past it is caught */
	char *buf = malloc(size ? size : 1);

	memcpy(buf, data, size);
	fuzz_input(data, size);
	fuzz_rng_init(&rng, data, size, 0);
	uint64_t max_body = fuzz_rng_below(&rng, 4) == 0 ? 1 + fuzz_rng_below(&rng, 64) : 0;

	fuzz_reads_whole(&reads);
	fuzz_stream_init(&s, HTTP_REQUEST, buf, size, &reads);
	for (int i = 0; i < 16; i++) {
		const char *reason = NULL;

		if (fuzz_stream_head(&s) != HTTP_HEAD_DONE)
			break;
		fuzz_check_head(&s.m, buf, size);
		int status = http_req_check(&s.m, max_body, &reason);
		FUZZ_ASSERT(status == 0 || status == 400 || status == 413 || status == 431 ||
		                    status == 501,
		            "http_req_check gave %d", status);
		FUZZ_ASSERT(!status == !reason, "status %d with reason %s", status,
		            reason ? reason : "(none)");
		if (status)
			break; /* the session answers and closes */
		fuzz_check_accepted(&s.m, buf);
		fuzz_check_runs(&s.m, buf);
		bool keep = http_msg_keep_alive(&s.m); /* else closed after it */
		enum http_step st = fuzz_stream_body(&s);
		if (st == HTTP_ERROR)
			FUZZ_ASSERT(s.m.error_status != 413 || max_body,
			            "413 without a body limit");
		if (st != HTTP_MSG_DONE || !keep || http_msg_upgrade(&s.m))
			break;
	}
	free(buf);
	return 0;
}
