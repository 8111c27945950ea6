#!/usr/bin/env python3
"""Keep-alive on both sides (SPEC §4.5, §5): many requests on one client
connection, upstream connections reused from the idle pool (counted by the
upstream), HTTP/1.0 and "Connection: close" clients, idle timeouts."""

import time

from zdmtest import TAP, Upstream, Zdmd, Client, Closed, Raw, content, wait_for

tap = TAP()
a, b = Upstream("a"), Upstream("b")
z = Zdmd(tap, {"pools": {"old": [a], "new": [b]},
               "split": {"old": 100, "new": 0},
               "timeouts": {"client_idle": Raw("1s"), "upstream_idle": Raw("1500ms")}})

with tap.section("many requests on one client connection"):
    s0 = a.stats()
    with z.client() as c:
        good = 0
        for i in range(200):
            path = "/size/%d" % (i * 37)
            r = c.request("GET", path)
            good += r.status == 200 and r.body == content(i * 37)
        tap.eq(good, 200, "200 requests on one client connection all answered, bodies exact")
    s1 = a.stats()
    tap.eq(s1["requests"] - s0["requests"], 200, "the upstream saw exactly 200 requests")
    tap.within(s1["connections"] - s0["connections"], 0, 2,
               "the upstream saw at most 2 new connections for 200 requests (got %d)"
               % (s1["connections"] - s0["connections"]))

with tap.section("upstream reuse across client connections"):
    s0 = a.stats()
    ok = 0
    for i in range(30):
        with z.client() as c:
            r = c.request("GET", "/", [("Connection", "close")])
            ok += r.status == 200
            # zdmd finishes with this client before the next one comes.
            c.wait_closed(5)
    s1 = a.stats()
    tap.eq(ok, 30, "30 requests on 30 client connections answered")
    tap.within(s1["connections"] - s0["connections"], 0, 2,
               "the upstream saw at most 2 new connections for them (got %d)"
               % (s1["connections"] - s0["connections"]))

with tap.section("HTTP/1.0"):
    with z.client() as c:
        r = c.request("GET", "/", version="HTTP/1.0")
        tap.eq((r.status, r.body), (200, b"a\n"), "HTTP/1.0 request answered")
        tap.ok(c.wait_closed(5), "HTTP/1.0 without keep-alive: connection closed after the response")
    with z.client() as c:
        r = c.request("GET", "/chunked/5000", version="HTTP/1.0")
        tap.eq((r.status, r.body), (200, content(5000)),
               "HTTP/1.0 client gets a chunked upstream response whole")
        tap.ok("chunked" not in r.tokens("transfer-encoding"),
               "no chunked encoding is sent to an HTTP/1.0 client")
    with z.client() as c:
        r = c.request("GET", "/", version="HTTP/1.0", host=None)
        tap.eq(r.status, 200, "an HTTP/1.0 request without Host is fine")
    with z.client() as c:
        r1 = c.request("GET", "/", [("Connection", "keep-alive")], version="HTTP/1.0")
        try:
            r2 = c.request("GET", "/size/10", [("Connection", "keep-alive")], version="HTTP/1.0")
            good = r2.status == 200 and r2.body == content(10)
        except Closed:
            good = c.eof and "keep-alive" not in r1.tokens("connection")
        tap.ok(r1.status == 200 and good,
               "HTTP/1.0 with Connection: keep-alive: either kept alive and announced, or closed")

with tap.section("Connection: close"):
    with z.client() as c:
        c.send(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
               b"GET /size/10 HTTP/1.1\r\nHost: x\r\n\r\n")
        r = c.read_response()
        tap.eq(r.status, 200, "Connection: close request answered")
        tap.ok(c.wait_closed(5), "Connection: close from the client: closed after the response")
        tap.eq(bytes(c.buf), b"", "nothing is answered after the request that said close")
    with z.client() as c:
        r = c.request("GET", "/", [("Connection", "Keep-Alive, CLOSE")])
        tap.ok(r.status == 200 and c.wait_closed(5), "close token found case-insensitively in a list")

with tap.section("idle timeouts"):
    with z.client() as c:
        r = c.request("GET", "/")
        t0 = time.monotonic()
        closed = c.wait_closed(6)
        dt = time.monotonic() - t0
        tap.ok(closed and 0.7 <= dt <= 5, "an idle client connection is closed after client_idle (1s): %.2fs" % dt)
    with z.client() as c:
        r = c.request("GET", "/slow/1600")
        tap.eq(r.status, 200, "client_idle (1s) does not cut a client waiting for a slow upstream (1.6s)")
    # upstream_idle: the pooled connection to a goes away.
    opened = wait_for(lambda: a.stats()["open"] == 0, timeout=6)
    tap.ok(opened, "idle upstream connections are closed after upstream_idle (1.5s)",
           "open: %r" % a.stats()["open"])
    with z.client() as c:
        r = c.request("GET", "/")
        tap.eq(r.status, 200, "a request after the idle upstream connections closed is answered")

tap.ok(z.alive(), "zdmd is still running")
tap.done()
