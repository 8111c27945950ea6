#!/usr/bin/env python3
"""Timeouts (SPEC §3 timeouts, §5): 504 when the upstream is silent past
upstream_response, 408 or a close when a request head does not arrive within
request_header; neither cuts a transfer that is making progress."""

import socket
import time

from zdmtest import TAP, Upstream, Zdmd, Raw, Closed, build_request, content, is_self_made

tap = TAP()
a, b = Upstream("a"), Upstream("b")
z = Zdmd(tap, {"pools": {"old": [a], "new": [b]}, "split": {"old": 100, "new": 0},
               "timeouts": {"upstream_response": Raw("500ms"), "request_header": Raw("1s")}})


def shape(r, code, what):
    bad = is_self_made(r, code) if r is not None else ["no response (closed or timed out)"]
    tap.ok(not bad, "%s: %d with a short text/plain body" % (what, code), "; ".join(bad))


with tap.section("504"):
    t0 = time.monotonic()
    with z.client(timeout=10) as c:
        c.send(build_request("GET", "/hang"))
        try:
            r = c.read_response()
        except (Closed, socket.timeout):
            r = None
    dt = time.monotonic() - t0
    if r is None:
        tap.ok(False, "504 when the upstream hangs: got only a close")
    else:
        shape(r, 504, "upstream silent past upstream_response")
    tap.ok(0.4 <= dt <= 4.0, "504 after about upstream_response (500ms): %.2fs" % dt)
    with z.client() as c:
        r = c.request("GET", "/slow/200")
        tap.eq(r.status, 200, "an upstream answering within upstream_response passes")
    with z.client() as c:
        r = c.request("GET", "/drip/8000/200")
        tap.eq((r.status, r.body), (200, content(8000)),
               "a body trickling in 200ms apart for 1.4s is not cut by upstream_response (500ms)")

with tap.section("408 on a slow request head"):
    with z.client(timeout=8) as c:
        c.send(b"GET / HTTP/1.1\r\nHost: x\r\n")
        t0 = time.monotonic()
        try:
            r = c.read_response()
        except Closed:
            r = None
        closed = c.wait_closed(3)
        dt = time.monotonic() - t0
        tap.ok(r is None or r.status == 408, "a partial head gets 408 or a close",
               "got %r" % (r,))
        if r is not None:
            shape(r, 408, "partial head")
        tap.ok(closed, "the connection is closed")
        tap.ok(0.8 <= dt <= 4.0, "after about request_header (1s): %.2fs" % dt)
    # A connection that never sends a byte.
    with z.client(timeout=8) as c:
        t0 = time.monotonic()
        closed = c.wait_closed(4.5)
        dt = time.monotonic() - t0
        tap.ok(closed and 0.8 <= dt <= 4.0,
               "a connection that sends nothing is closed after about request_header (%s, %.2fs)"
               % (closed, dt))
        tap.ok(not c.buf or c.buf.startswith(b"HTTP/1.1 408 "),
               "with a 408 or nothing", repr(bytes(c.buf[:60])))
    # A partial second head on a keep-alive connection.
    with z.client(timeout=8) as c:
        tap.eq(c.request("GET", "/").status, 200, "first request on a connection answered")
        c.send(b"GET / HTTP/1.1\r\nHost: x\r\n")
        t0 = time.monotonic()
        closed = c.wait_closed(4.5)
        dt = time.monotonic() - t0
        tap.ok(closed and 0.8 <= dt <= 4.0,
               "a partial second head is cut after about request_header (%s, %.2fs)" % (closed, dt))
    # A head dribbled byte by byte, slower than the timeout overall, is cut
    # too: the timeout covers the whole head, not each read.
    with z.client(timeout=8) as c:
        t0 = time.monotonic()
        head = b"GET / HTTP/1.1\r\nHost: x\r\n" + b"X-Slow: " + b"a" * 100
        cut = False
        for i in range(len(head)):
            try:
                c.send(head[i:i + 1])
            except OSError:
                cut = True
                break
            if c.wait_closed(0.05):
                cut = True
                break
        dt = time.monotonic() - t0
        tap.ok(cut and dt <= 4.0, "a head sent one byte every 50ms is cut after request_header (%.2fs)" % dt)

with tap.section("slow request body"):
    with z.client(timeout=8) as c:
        c.send(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 8\r\n\r\n")
        for i in range(8):
            c.send(b"%d" % i)
            c.wait_closed(0.2)
        r = c.read_response()
        tap.eq((r.status, r.body), (200, b"01234567"),
               "a body sent over 1.6s is not cut by request_header (1s), which covers the head")

tap.ok(z.alive(), "zdmd is still running")
tap.done()
