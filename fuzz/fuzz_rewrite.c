/*
 * fuzz_rewrite.c — header rewriting: what zdm forwards for an accepted
 * request must be read by the upstream as the same message.
 *
 * The forwarded head is built as src/proxy/session.c's forward_head()
 * builds it: the runs of http_head_runs() (the received bytes that are
 * kept, an absolute-form target in origin-form), then the lines zdm adds —
 * X-Forwarded-For (the client's values, then the client), X-Real-IP,
 * X-Forwarded-Proto, the Connection header a hop needs, one
 * Transfer-Encoding: chunked line for a chunked body, the Host an
 * absolute-form target names — and the blank line; the body follows as
 * received. Parsed again, it must be accepted, end exactly where the
 * forwarded head ends, and have the same method and version, the target in
 * origin-form, the kept headers in order with the same names and values
 * followed by the added ones, the same framing, and a body that ends at the
 * same byte (or is refused the same way).
 *
 * The first byte of the input chooses: bit 0 a TLS listener (https), bit 1
 * the head read a byte at a time (llhttp) rather than at once, bits 2-3 the
 * client address. The rest is what the client sends.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"

struct line {
	const char *name, *value;
	size_t name_len, value_len;
};

#define MAX_LINES (HTTP_MAX_HEADERS + 8)

static size_t put(char *out, size_t at, const char *s, size_t n)
{
	memcpy(out + at, s, n);
	return at + n;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char *const ips[] = {"192.0.2.7", "127.0.0.1", "2001:db8::1", "10.1.2.3"};
	struct fuzz_reads reads, whole; /* (whole: the forwarded head, then the rest) */
	struct fuzz_stream a, b;
	struct http_run runs[HTTP_MAX_RUNS];
	struct line want[MAX_LINES];
	size_t nwant = 0;
	const char *reason = NULL;

	if (size < 1)
		return 0;
	bool tls = data[0] & 1;
	const char *ip = ips[(data[0] >> 2) & 3];
	size_t len = size - 1;
	char *buf = malloc(len ? len : 1);
	memcpy(buf, data + 1, len);
	fuzz_input(data, size);

	if (data[0] & 2)
		fuzz_reads_step(&reads, 1);
	else
		fuzz_reads_whole(&reads);
	fuzz_stream_init(&a, HTTP_REQUEST, buf, len, &reads);
	if (fuzz_stream_head(&a) != HTTP_HEAD_DONE || http_req_check(&a.m, 0, &reason) != 0)
		goto out;
	const struct http_head *h = &a.m.head;
	int version = http_msg_version(&a.m);

	/* The forwarded bytes, as forward_head() makes them. */
	size_t n = http_head_runs(h, runs), xff_len = 0;
	for (uint32_t i = 0; i < h->nhdrs; i++)
		if (h->hdrs[i].kind == HK_X_FORWARDED_FOR && h->hdrs[i].value_len)
			xff_len += h->hdrs[i].value_len + 2;
	const char *proto = tls ? "https" : "http";
	/* (forward_head() asks the Connection tokens, not llhttp) */
	const char *conn = h->conn_tokens & HTTP_CONN_UPGRADE ? "upgrade"
	                   : version == 10                     ? "keep-alive"
	                                                       : NULL;
	bool chunked = http_msg_chunked(&a.m);
	size_t skip;
	bool slash;
	fuzz_origin_form(&a.m, buf, &skip, &slash);
	size_t cap = (h->end - h->start) + xff_len + 256 + (skip ? skip + 8 : 0) + (len - h->end);
	char *fwd = malloc(cap);
	size_t k = 0;
	for (size_t i = 0; i < n; i++)
		k = put(fwd, k, buf + runs[i].off, runs[i].len);
	k = put(fwd, k, "X-Forwarded-For: ", 17);
	size_t xff_at = k;
	for (uint32_t i = 0; i < h->nhdrs; i++) {
		const struct http_hdr *hd = &h->hdrs[i];
		if (hd->kind != HK_X_FORWARDED_FOR || !hd->value_len)
			continue;
		k = put(fwd, k, buf + hd->value, hd->value_len);
		k = put(fwd, k, ", ", 2);
	}
	k = put(fwd, k, ip, strlen(ip));
	size_t xff_end = k;
	k = put(fwd, k, "\r\nX-Real-IP: ", 13);
	k = put(fwd, k, ip, strlen(ip));
	k = put(fwd, k, "\r\nX-Forwarded-Proto: ", 21);
	k = put(fwd, k, proto, strlen(proto));
	k = put(fwd, k, "\r\n", 2);
	if (conn) {
		k = put(fwd, k, "Connection: ", 12);
		k = put(fwd, k, conn, strlen(conn));
		k = put(fwd, k, "\r\n", 2);
	}
	if (chunked)
		k = put(fwd, k, "Transfer-Encoding: chunked\r\n", 28);
	/* the authority: the part of the target between "//" and the path */
	const char *authority = NULL;
	size_t authority_len = 0;
	if (skip) {
		authority = (const char *)memchr(buf + h->url, '/', skip) + 2;
		authority_len = (size_t)(buf + h->url + skip - authority);
		k = put(fwd, k, "Host: ", 6);
		k = put(fwd, k, authority, authority_len);
		k = put(fwd, k, "\r\n", 2);
	}
	k = put(fwd, k, "\r\n", 2);
	size_t head_len = k;
	k = put(fwd, k, buf + h->end, len - h->end); /* the body, as received */

	/* What the upstream must read. */
	for (uint32_t i = 0; i < h->nhdrs; i++) {
		const struct http_hdr *hd = &h->hdrs[i];
		if (!hd->drop)
			want[nwant++] = (struct line){buf + hd->name, buf + hd->value, hd->name_len,
			                              hd->value_len};
	}
	want[nwant++] = (struct line){"X-Forwarded-For", fwd + xff_at, 15, xff_end - xff_at};
	want[nwant++] = (struct line){"X-Real-IP", ip, 9, strlen(ip)};
	want[nwant++] = (struct line){"X-Forwarded-Proto", proto, 17, strlen(proto)};
	if (conn)
		want[nwant++] = (struct line){"Connection", conn, 10, strlen(conn)};
	if (chunked)
		want[nwant++] = (struct line){"Transfer-Encoding", "chunked", 17, 7};
	if (skip)
		want[nwant++] = (struct line){"Host", authority, 4, authority_len};

	/* Read again, as the upstream gets it; with more lines than this
	 * parser records (HTTP_MAX_HEADERS, the proxy's own limit, not the
	 * upstream's), it cannot be. */
	if (nwant > HTTP_MAX_HEADERS)
		goto out_fwd;
	/* (the head alone first, as the first read of an upstream may be: the
	 * body's framing is then read with the body) */
	fuzz_reads_whole(&whole);
	whole.cuts[whole.ncuts++] = head_len;
	fuzz_stream_init(&b, HTTP_REQUEST, fwd, k, &whole);
	enum http_step st = fuzz_stream_head(&b);
	FUZZ_ASSERT(st == HTTP_HEAD_DONE, "the forwarded head does not parse: step %d, %d (%s)", st,
	            b.m.error_status, b.m.error_reason ? b.m.error_reason : "");
	FUZZ_ASSERT(b.m.head.start == 0 && b.m.head.end == head_len,
	            "the forwarded head of %zu bytes parses as [%u, %u)", head_len, b.m.head.start,
	            b.m.head.end);
	int check = http_req_check(&b.m, 0, &reason);
	FUZZ_ASSERT(check == 0, "the forwarded head is refused: %d (%s)", check, reason);
	fuzz_check_accepted(&b.m, fwd);

	const struct http_head *g = &b.m.head;
	FUZZ_ASSERT(http_msg_method(&a.m) == http_msg_method(&b.m), "method %d forwarded as %d",
	            http_msg_method(&a.m), http_msg_method(&b.m));
	FUZZ_ASSERT(version == http_msg_version(&b.m), "version %d forwarded as %d", version,
	            http_msg_version(&b.m));
	/* the target in origin-form */
	size_t tlen = h->url_len - skip;
	FUZZ_ASSERT(g->url_len == slash + tlen && (!slash || fwd[g->url] == '/') &&
	                    memcmp(buf + h->url + skip, fwd + g->url + slash, tlen) == 0,
	            "the target %.*s went out as %.*s", (int)h->url_len, buf + h->url,
	            (int)g->url_len, fwd + g->url);
	FUZZ_ASSERT(g->nhdrs == nwant, "%u header lines forwarded, %zu expected", g->nhdrs, nwant);
	for (uint32_t i = 0; i < g->nhdrs; i++) {
		const struct http_hdr *hd = &g->hdrs[i];
		const struct line *w = &want[i];
		FUZZ_ASSERT(hd->name_len == w->name_len &&
		                    memcmp(fwd + hd->name, w->name, w->name_len) == 0,
		            "forwarded header %u is %.*s, expected %.*s", i, (int)hd->name_len,
		            fwd + hd->name, (int)w->name_len, w->name);
		FUZZ_ASSERT(hd->value_len == w->value_len &&
		                    memcmp(fwd + hd->value, w->value, w->value_len) == 0,
		            "forwarded header %u (%.*s) has value %.*s, expected %.*s", i,
		            (int)hd->name_len, fwd + hd->name, (int)hd->value_len, fwd + hd->value,
		            (int)w->value_len, w->value);
	}
	FUZZ_ASSERT(http_msg_content_length(&a.m) == http_msg_content_length(&b.m) &&
	                    http_msg_chunked(&a.m) == http_msg_chunked(&b.m) &&
	                    http_msg_upgrade(&a.m) == http_msg_upgrade(&b.m),
	            "the framing changed: length %llu chunked %d upgrade %d, forwarded %llu %d %d",
	            (unsigned long long)http_msg_content_length(&a.m), http_msg_chunked(&a.m),
	            http_msg_upgrade(&a.m), (unsigned long long)http_msg_content_length(&b.m),
	            http_msg_chunked(&b.m), http_msg_upgrade(&b.m));

	/* The body ends at the same byte, or is refused alike. */
	enum http_step sa = fuzz_stream_body(&a), sb = fuzz_stream_body(&b);
	FUZZ_ASSERT(sa == sb, "body step %d, forwarded %d", sa, sb);
	if (sa == HTTP_ERROR)
		FUZZ_ASSERT(a.m.error_status == b.m.error_status, "body refused %d, forwarded %d",
		            a.m.error_status, b.m.error_status);
	else
		FUZZ_ASSERT(a.pos - h->end == b.pos - head_len,
		            "the body ends after %zu bytes, forwarded after %zu", a.pos - h->end,
		            b.pos - head_len);
out_fwd:
	free(fwd);
out:
	free(buf);
	return 0;
}
