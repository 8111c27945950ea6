#!/usr/bin/env python3
"""Ambiguous or malformed framing (SPEC §5) is answered 400, the connection
is closed, and nothing reaches the upstream (not one byte arrives there)."""

import socket

from zdmtest import TAP, Upstream, Zdmd, Closed, is_self_made, wait_for

tap = TAP()
a, b = Upstream("a"), Upstream("b")
z = Zdmd(tap, {"pools": {"old": [a], "new": [b]}, "split": {"old": 100, "new": 0}})

H = b"Host: x\r\n"
CASES = [
    ("Content-Length and Transfer-Encoding",
     b"POST /echo HTTP/1.1\r\n" + H + b"Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n"
     b"0\r\n\r\n"),
    ("Transfer-Encoding and Content-Length",
     b"POST /echo HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n"
     b"0\r\n\r\n"),
    ("two differing Content-Lengths",
     b"POST /echo HTTP/1.1\r\n" + H + b"Content-Length: 5\r\nContent-Length: 6\r\n\r\nhello!"),
    ("differing Content-Lengths in one list",
     b"POST /echo HTTP/1.1\r\n" + H + b"Content-Length: 5, 6\r\n\r\nhello!"),
    ("a negative Content-Length",
     b"POST /echo HTTP/1.1\r\n" + H + b"Content-Length: -1\r\n\r\n"),
    ("a Content-Length that is not a number",
     b"POST /echo HTTP/1.1\r\n" + H + b"Content-Length: 5x\r\n\r\nhello"),
    ("Content-Length: +5",
     b"POST /echo HTTP/1.1\r\n" + H + b"Content-Length: +5\r\n\r\nhello"),
    ("Transfer-Encoding: gzip",
     b"POST /echo HTTP/1.1\r\n" + H + b"Transfer-Encoding: gzip\r\n\r\nabc"),
    ("Transfer-Encoding: chunked, gzip",
     b"POST /echo HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked, gzip\r\n\r\n0\r\n\r\n"),
    ("Transfer-Encoding: chunked then a second Transfer-Encoding: gzip line",
     b"POST /echo HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked\r\nTransfer-Encoding: gzip\r\n\r\n"
     b"0\r\n\r\n"),
    ("Transfer-Encoding: xchunked",
     b"POST /echo HTTP/1.1\r\n" + H + b"Transfer-Encoding: xchunked\r\n\r\n0\r\n\r\n"),
    ("obs-fold (a line starting with a space)",
     b"GET /headers HTTP/1.1\r\n" + H + b"X-A: one\r\n two\r\n\r\n"),
    ("obs-fold (a line starting with a tab)",
     b"GET /headers HTTP/1.1\r\n" + H + b"X-A: one\r\n\ttwo\r\n\r\n"),
    ("bare LF line endings",
     b"GET / HTTP/1.1\nHost: x\n\n"),
    ("a bare LF ending one header line",
     b"GET / HTTP/1.1\r\nHost: x\nX-A: b\r\n\r\n"),
    ("a bare CR inside a header value",
     b"GET / HTTP/1.1\r\n" + H + b"X-A: a\rb\r\n\r\n"),
    ("a bare CR ending the request line",
     b"GET / HTTP/1.1\rHost: x\r\n\r\n"),
    ("a control byte in a header name",
     b"GET / HTTP/1.1\r\n" + H + b"X-\x01A: b\r\n\r\n"),
    ("a control byte in a header value",
     b"GET / HTTP/1.1\r\n" + H + b"X-A: a\x01b\r\n\r\n"),
    ("a NUL in a header value",
     b"GET / HTTP/1.1\r\n" + H + b"X-A: a\x00b\r\n\r\n"),
    ("whitespace between a header name and the colon",
     b"GET / HTTP/1.1\r\n" + H + b"X-A : b\r\n\r\n"),
    ("a header name that is not a token",
     b"GET / HTTP/1.1\r\n" + H + b"X(A): b\r\n\r\n"),
    ("a control byte in the target",
     b"GET /a\x7fb HTTP/1.1\r\n" + H + b"\r\n"),
    ("whitespace before the first header",
     b"GET / HTTP/1.1\r\n Host: x\r\n\r\n"),
    ("no Host in an HTTP/1.1 request",
     b"GET / HTTP/1.1\r\nX-A: b\r\n\r\n"),
    ("two Host headers",
     b"GET / HTTP/1.1\r\nHost: a.example\r\nHost: b.example\r\n\r\n"),
    ("a bad chunk size",
     b"POST /echo HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n"),
    ("a chunk size that overflows",
     b"POST /echo HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked\r\n\r\n"
     b"ffffffffffffffffffff\r\nhello\r\n0\r\n\r\n"),
    ("a chunk without its CRLF",
     b"POST /echo HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked\r\n\r\n5\r\nhelloXX0\r\n\r\n"),
]


def stats_requests():
    return a.stats()["requests"]


def stats_bytes():
    return a.stats()["bytes_in"]


with tap.section("control"):
    s0 = stats_requests()
    with z.client() as c:
        r = c.request("GET", "/")
    tap.eq((r.status, stats_requests() - s0), (200, 1),
           "a well-formed request is forwarded and counted by the upstream")

for what, raw in CASES:
    with tap.section(what):
        s0 = stats_bytes()
        with z.client() as c:
            c.send(raw)
            try:
                r = c.read_response()
            except (Closed, socket.timeout):
                r = None
            closed = c.wait_closed(3)
        if r is None:
            tap.ok(False, "%s: 400 (got a close without a response)" % what)
        else:
            bad = is_self_made(r, 400)
            tap.ok(not bad, "%s: 400" % what, "; ".join(bad))
        tap.ok(closed, "%s: connection closed" % what)
        n = stats_bytes() - s0
        tap.eq(n, 0, "%s: never forwarded (bytes that reached the upstream)" % what)

with tap.section("a bad chunk after good ones, sent in two writes"):
    # The head and a first chunk are fine; the second chunk size is bad. The
    # client must not get a 200 and the connection must not be reused.
    e0 = a.stats()["paths"].get("/echo", 0)
    with z.client() as c:
        c.send(b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n")
        # give zdmd the time to forward the head and the first chunk
        wait_for(lambda: a.stats()["paths"].get("/echo", 0) > e0, timeout=1)
        c.send(b"zz\r\nworld\r\n0\r\n\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n")
        try:
            r = c.read_response()
        except (Closed, socket.timeout):
            r = None
        tap.ok(r is None or r.status in (400, 502), "no success for a request with a bad chunk",
               repr(r))
        tap.ok(c.wait_closed(3), "and the connection is closed (the smuggled GET is never answered)")

with tap.section("after all that"):
    with z.client() as c:
        r = c.request("GET", "/")
    tap.eq(r.status, 200, "zdmd still answers well-formed requests")
tap.ok(z.alive(), "zdmd is still running")
tap.done()
