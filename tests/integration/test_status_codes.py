#!/usr/bin/env python3
"""The status codes zdmd makes itself (SPEC §5), each with a short text
body: 400 (then close, nothing forwarded), 413, 431, 502, 503. The 504 and
408 are in test_timeouts.py."""

import socket
import time

from zdmtest import (TAP, Upstream, Zdmd, Server, Raw, Closed, build_request,
                     chunked, content, dead_address, is_self_made)

tap = TAP()
a, b = Upstream("a"), Upstream("b")
z = Zdmd(tap, {"pools": {"old": [a], "dead": [Server(dead_address(), name="d")], "new": [b]},
               "split": {"old": 100, "dead": 0, "new": 0},
               "pins": [{"header": "x-pool", "value": "dead", "pool": "dead"}],
               "limits": {"max_body_bytes": Raw("1k"), "max_header_bytes": Raw("4k")},
               "circuit_breaker": {"failures": 0}})


def shape(r, code, what):
    bad = is_self_made(r, code) if r is not None else ["no response (closed or timed out)"]
    tap.ok(not bad, "%s: %d with a short text/plain body" % (what, code), "; ".join(bad))


def exchange(raw, method="GET", timeout=5, closes=False):
    """Sends RAW on a new connection; returns (response or None, closed
    after it). Waits for the close only when CLOSES says one is due."""
    with z.client(timeout=timeout) as c:
        c.send(raw)
        try:
            r = c.read_response(method)
        except Closed:
            return None, True
        except socket.timeout:
            return None, False
        return r, c.wait_closed(3) if closes else None


with tap.section("400"):
    for what, raw in [("garbage", b"HELLO THERE\r\n\r\n"),
                      ("bad version", b"GET / HTTP/1.x\r\nHost: x\r\n\r\n"),
                      ("bad protocol name", b"GET / HTPT/1.1\r\nHost: x\r\n\r\n"),
                      ("TLS handshake on the plain port",
                       b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + b"\x00" * 64),
                      ("space in the target", b"GET /a b HTTP/1.1\r\nHost: x\r\n\r\n"),
                      ("no colon in a header", b"GET / HTTP/1.1\r\nHost: x\r\nBadHeader\r\n\r\n"),
                      ("an HTTP/0.9 request", b"GET /\r\n\r\n"),
                      ("two spaces in the request line", b"GET  / HTTP/1.1\r\nHost: x\r\n\r\n")]:
        b0 = a.stats()["bytes_in"]
        r, closed = exchange(raw, closes=True)
        tap.eq(a.stats()["bytes_in"] - b0, 0, "%s: nothing forwarded" % what)
        if r is None:
            tap.ok(False, "400 for %s: got no response, only a close" % what)
            continue
        shape(r, 400, what)
        tap.ok(closed, "%s: connection closed after the 400" % what)

with tap.section("413"):
    with z.client() as c:
        r = c.request("POST", "/echo", body=b"x" * 1024)
        tap.eq((r.status, len(r.body)), (200, 1024), "a body of exactly max_body_bytes (1k) passes")
    s0 = a.stats()
    r, closed = exchange(build_request("POST", "/echo", body=b"x" * 2000))
    shape(r, 413, "Content-Length over max_body_bytes")
    r, closed = exchange(build_request("POST", "/echo", [("Content-Length", "10000000000")]))
    shape(r, 413, "a huge Content-Length, no body sent")
    tap.eq(a.stats()["paths"].get("/echo", 0) - s0["paths"].get("/echo", 0), 0,
           "a Content-Length over the limit is not forwarded")
    r, closed = exchange(build_request("POST", "/echo", [("Transfer-Encoding", "chunked")],
                                       chunked(b"y" * 3000)))
    shape(r, 413, "chunked body over max_body_bytes")
    with z.client() as c:
        r = c.request("POST", "/echo", [("Transfer-Encoding", "chunked")], chunked(b"z" * 1000))
        tap.eq((r.status, r.body), (200, b"z" * 1000), "a chunked body under the limit passes")

with tap.section("431"):
    big = [("X-Big-%d" % i, "v" * 100) for i in range(50)]
    r, closed = exchange(build_request("GET", "/", big))
    shape(r, 431, "header section over max_header_bytes (4k)")
    r, closed = exchange(build_request("GET", "/", [("X-One", "w" * 5000)]))
    shape(r, 431, "one header line over max_header_bytes")
    with z.client() as c:
        r = c.request("GET", "/", [("X-Med-%d" % i, "v" * 100) for i in range(20)])
        tap.eq(r.status, 200, "a 2.5k header section passes")

with tap.section("502"):
    for what, path, hdr in [("upstream refuses connections", "/", [("x-pool", "dead")]),
                            ("upstream answers garbage", "/invalid", []),
                            ("upstream resets before answering", "/reset-before", [])]:
        t0 = time.monotonic()
        r, closed = exchange(build_request("GET", path, hdr))
        if r is None:
            tap.ok(False, "502 when the %s: got only a close" % what)
            continue
        shape(r, 502, what)
        tap.ok(time.monotonic() - t0 < 4, "%s: answered promptly" % what)
    with z.client() as c:
        r = c.request("GET", "/")
        tap.eq(r.status, 200, "old still answers after the 502s")

with tap.section("pipelined after an upstream error"):
    with z.client() as c:
        c.send(build_request("GET", "/invalid") + build_request("GET", "/size/9"))
        r1 = c.read_response()
        try:
            r2 = c.read_response()
            second = (r2.status, r2.body)
        except Closed:
            second = "closed"
        tap.eq(r1.status, 502, "first: 502")
        tap.ok(second in ((200, content(9)), "closed"),
               "the next pipelined request is answered right or the connection closed (%r)"
               % (second,))

with tap.section("503"):
    z2 = Zdmd(tap, {"pools": {"old": [Upstream("a0", weight=0)], "new": [Upstream("b0", weight=0)]},
                    "split": {"old": 90, "new": 10}})
    with z2.client() as c:
        r = c.request("GET", "/")
        shape(r, 503, "no server available anywhere")
    z2.stop()

tap.ok(z.alive(), "zdmd is still running")
tap.done()
