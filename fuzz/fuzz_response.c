/*
 * fuzz_response.c — response heads as an upstream connection reads them.
 * The first byte of the input says what was asked (bit 0: the request was
 * HEAD, so no response has a body); the rest is what the upstream sends,
 * received at once and parsed message by message: interim responses, then
 * the final one, its body, and what follows on a kept-alive connection.
 *
 * Whatever the verdict: no crash, no undefined behaviour, and
 * http_msg_feed keeps its contract. Every complete head has a sound record;
 * every one relayed (http_resp_check gives 0) has the form SPEC §5 allows,
 * the same for responses as for requests, and the runs relayed are exactly
 * the kept lines. A body delimited by the close ends cleanly at the close.
 */
#include <stdlib.h>
#include <string.h>

#include "common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fuzz_reads reads;
	struct fuzz_stream s;

	if (size < 1)
		return 0;
	bool head_request = data[0] & 1;
	size--;
	char *buf = malloc(size ? size : 1);
	memcpy(buf, data + 1, size);
	fuzz_input(data, size + 1);

	fuzz_reads_whole(&reads);
	fuzz_stream_init(&s, HTTP_RESPONSE, buf, size, &reads);
	s.m.skip_body = head_request;
	for (int i = 0; i < 16; i++) {
		const char *reason = NULL;

		if (fuzz_stream_head(&s) != HTTP_HEAD_DONE)
			break;
		fuzz_check_head(&s.m, buf, size);
		int status = http_resp_check(&s.m, &reason);
		FUZZ_ASSERT(status == 0 || status == 502, "http_resp_check gave %d", status);
		if (status)
			break; /* 502 to the client, the connection closed */
		fuzz_check_accepted(&s.m, buf);
		fuzz_check_runs(&s.m, buf);
		/* as the proxy reads it after the head (a Transfer-Encoding in
		 * the trailers changes what llhttp says later) */
		bool eof = http_msg_needs_eof(&s.m), keep = http_msg_keep_alive(&s.m);
		enum http_step st = fuzz_stream_body(&s);
		if (st == HTTP_NEED_MORE && eof) {
			FUZZ_ASSERT(http_msg_finish(&s.m) == 0,
			            "a body delimited by the close does not end there");
			break;
		}
		if (st != HTTP_MSG_DONE || (!keep && http_msg_status(&s.m) >= 200) ||
		    http_msg_status(&s.m) == 101)
			break;
	}
	free(buf);
	return 0;
}
