#!/usr/bin/env python3
"""Chunked bodies both ways, and responses without a body (HEAD, 204, 304,
1xx) that must not desynchronise the connection (SPEC §5)."""

import os

from zdmtest import (TAP, Upstream, Zdmd, chunked, content, curl, sha256,
                     tmpdir, url)

tap = TAP()
a, b = Upstream("a"), Upstream("b")
z = Zdmd(tap, {"pools": {"old": [a], "new": [b]}, "split": {"old": 100, "new": 0}})

with tap.section("chunked request body"):
    data = content(300000)
    with z.client() as c:
        r = c.request("POST", "/echo", [("Transfer-Encoding", "chunked")],
                      chunked(data, sizes=(1, 2, 3, 1000, 65536, 7)))
        tap.eq(r.status, 200, "chunked request answered")
        tap.eq(r.get("x-body-sha256"), sha256(data), "the upstream received the chunked body intact")
        tap.ok(r.body == data, "and echoed it back intact")
        # chunk extensions and trailers are legal
        body = b"5;name=value\r\nhello\r\n6;x\r\n world\r\n0\r\nX-Trailer: t\r\n\r\n"
        r = c.request("POST", "/echo", [("Transfer-Encoding", "chunked")], body)
        tap.eq((r.status, r.body), (200, b"hello world"),
               "chunk extensions and a trailer are accepted; body intact")
        r = c.request("POST", "/echo", [("Transfer-Encoding", "Chunked")], chunked(b"mixed case"))
        tap.eq((r.status, r.body), (200, b"mixed case"), "Transfer-Encoding: Chunked (any case) is chunked")
        r = c.request("POST", "/echo", [("Transfer-Encoding", "chunked")], b"0\r\n\r\n")
        tap.eq((r.status, r.body), (200, b""), "an empty chunked body")
        r = c.request("GET", "/size/77")
        tap.eq(r.body, content(77), "the connection is in sync after chunked requests")
    # the body arriving slowly, chunk by chunk, in separate writes
    with z.client() as c:
        c.send(b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n")
        parts = [b"3\r\nabc\r\n", b"4\r", b"\ndefg", b"\r\n", b"0\r\n", b"\r\n"]
        for p in parts:
            c.send(p)
        r = c.read_response()
        tap.eq(r.body, b"abcdefg", "a chunked body split at awkward places arrives intact")

with tap.section("chunked request via curl"):
    d = tmpdir()
    path = os.path.join(d, "body")
    data = content(1000003)
    with open(path, "wb") as f:
        f.write(data)
    rc, out, err = curl(["-H", "Transfer-Encoding: chunked", "--data-binary", "@" + path,
                         "-D", os.path.join(d, "hdr"), url(z.port, "/echo")])
    hdr = open(os.path.join(d, "hdr"), "rb").read().decode(errors="replace").lower()
    tap.ok(rc == 0 and out == data, "curl chunked upload of 1 MB echoed intact", err)
    tap.ok(("x-body-sha256: " + sha256(data)) in hdr, "the upstream's digest matches")

with tap.section("chunked response"):
    n = 500000
    rc, out, err = curl([url(z.port, "/chunked/%d" % n)])
    tap.ok(rc == 0 and out == content(n), "curl gets a chunked response intact", err)
    with z.client() as c:
        r = c.request("GET", "/chunked/%d" % n)
        tap.eq((r.status, sha256(r.body)), (200, sha256(content(n))),
               "raw socket gets a chunked response intact")
        tap.ok(r.framing in ("chunked", "length"), "it is framed (chunked or length), not close-delimited",
               r.framing)
        r = c.request("GET", "/trailers")
        tap.eq((r.status, r.body), (200, b"trail ers!"), "a chunked response with a trailer: body intact")
        tap.diag("trailers received: %r" % (r.trailers,))
        r = c.request("GET", "/chunked/0")
        tap.eq((r.status, r.body), (200, b""), "an empty chunked response")
        r = c.request("GET", "/size/33")
        tap.eq(r.body, content(33), "the connection is in sync after chunked responses")

with tap.section("responses without a body"):
    with z.client() as c:
        r = c.request("HEAD", "/size/1000")
        tap.eq((r.status, r.get("content-length")), (200, "1000"),
               "HEAD: 200 with the upstream's Content-Length")
        r = c.request("HEAD", "/chunked/1000")
        tap.eq(r.status, 200, "HEAD of a chunked resource: 200")
        r = c.request("GET", "/status/204")
        tap.eq(r.status, 204, "204 forwarded")
        r = c.request("GET", "/status/304")
        tap.eq(r.status, 304, "304 forwarded")
        r = c.request("GET", "/304-cl", [("If-None-Match", '"v1"')])
        tap.eq((r.status, r.get("content-length")), (304, "1000"),
               "a 304 carrying Content-Length: 1000 is forwarded without a body")
        r = c.request("GET", "/early-hints")
        tap.eq((r.status, r.body), (200, b"hinted a\n"), "a 103 interim response, then the final 200")
        r = c.request("GET", "/size/12")
        tap.eq((r.status, r.body), (200, content(12)),
               "after HEAD, 204, 304 and 1xx the connection is in sync (no stray body bytes)")
        tap.ok(not c.wait_closed(0.3) and not c.buf, "and no stray bytes follow",
               repr(bytes(c.buf[:100])))
    rc, out, err = curl(["-I", url(z.port, "/size/1000")])
    tap.ok(rc == 0 and b"content-length: 1000" in out.lower(), "curl -I works", err)

tap.ok(z.alive(), "zdmd is still running")
tap.done()
