#!/usr/bin/env python3
"""Upstreams that fail mid-response (SPEC §5): a reset while the body is
streaming closes the client connection (the response is visibly incomplete,
nothing hangs); a close-delimited response is delivered whole; an upstream
that drops idle keep-alive connections does not fail later requests."""

import os
import select
import socket
import time

from zdmtest import (TAP, Upstream, Zdmd, Closed, Raw, content, curl, is_self_made, sha256,
                     url, wait_for)

tap = TAP()
a, b = Upstream("a"), Upstream("b")
z = Zdmd(tap, {"pools": {"old": [a], "new": [b]}, "split": {"old": 100, "new": 0},
               "timeouts": {"upstream_response": Raw("1s")},
               "circuit_breaker": {"failures": 0}})

with tap.section("reset mid-response"):
    for i in range(3):
        t0 = time.monotonic()
        with z.client(timeout=8) as c:
            c.send(b"GET /reset HTTP/1.1\r\nHost: x\r\n\r\n")
            try:
                r = c.read_response()
                outcome = ("complete", r.status, len(r.body))
            except Closed as e:
                outcome = ("closed", len(e.partial))
            except socket.timeout:
                outcome = ("timeout",)
            closed = c.wait_closed(3)
        dt = time.monotonic() - t0
        good = (outcome[0] == "closed" or (outcome[0] == "complete" and outcome[1] == 502)) and closed
        tap.ok(good, "upstream reset mid-body: the client sees the response cut and the connection "
               "closed, or a 502 (try %d: %s)" % (i + 1, outcome))
        tap.ok(dt < 5, "without hanging (%.2fs)" % dt)
        with z.client() as c:
            r = c.request("GET", "/")
        tap.eq((r.status, r.body), (200, b"a\n"), "the next request on a new connection works")
    rc, out, err = curl([url(z.port, "/reset")], timeout=15)
    tap.ok(rc != 0, "curl reports the cut response as an error (rc %d: %s)" % (rc, err.strip()))

with tap.section("close-delimited response"):
    n = 300000
    with z.client() as c:
        r = c.request("GET", "/close/%d" % n)
        tap.eq((r.status, sha256(r.body)), (200, sha256(content(n))),
               "a close-delimited upstream response reaches the client whole")
        if r.framing != "close":
            r2 = c.request("GET", "/size/5")
            tap.eq(r2.body, content(5), "re-framed for a keep-alive client, which stays usable")
        else:
            tap.ok(True, "delivered close-delimited")
    rc, out, err = curl([url(z.port, "/close/%d" % n)])
    tap.ok(rc == 0 and out == content(n), "curl gets the close-delimited response whole", err)
    with z.client() as c:
        r = c.request("GET", "/close/%d" % n, version="HTTP/1.0")
        tap.eq(sha256(r.body), sha256(content(n)), "and so does an HTTP/1.0 client")
    with z.client() as c:
        t0 = time.monotonic()
        r = c.request("HEAD", "/close/100")
        tap.ok(r.status == 200 and time.monotonic() - t0 < 3,
               "HEAD of a close-delimited resource: 200 without waiting for a body")
    with z.client() as c:
        r = c.request("GET", "/size/3")
        tap.eq(r.body, content(3), "the next request works")

with tap.section("upstream drops idle connections"):
    for i in range(3):
        with z.client() as c:
            r = c.request("GET", "/idle-close/50")
        tap.eq(r.status, 200, "request %d to a server that drops idle connections after 50ms" % (i + 1))
        wait_for(lambda: a.stats()["open"] == 0, timeout=3)
        with z.client() as c:
            r = c.request("GET", "/")
        tap.eq(r.status, 200, "the request after the upstream dropped the pooled connection succeeds")
    with z.client() as c:
        r = c.request("GET", "/idle-close/50")
    wait_for(lambda: a.stats()["open"] == 0, timeout=3)
    with z.client() as c:
        r = c.request("POST", "/echo", body=b"not idempotent")
    tap.eq((r.status, r.body), (200, b"not idempotent"),
           "a POST after the upstream dropped the pooled connection succeeds (the closed "
           "connection is noticed, not written to)")

with tap.section("invalid response framing"):
    for path, what in (("/cl-te", "both Content-Length and Transfer-Encoding"),
                       ("/dup-cl", "two differing Content-Lengths")):
        with z.client() as c:
            c.send(b"GET %s HTTP/1.1\r\nHost: x\r\n\r\n" % path.encode())
            try:
                r = c.read_response()
            except (Closed, socket.timeout):
                r = None
        tap.ok(r is not None and not is_self_made(r, 502),
               "an upstream response with %s: 502" % what, repr(r))

with tap.section("upstream sends more than its Content-Length"):
    with z.client() as c:
        r1 = c.request("GET", "/overflow")
        try:
            r2 = c.request("GET", "/")
            got = (r2.status, r2.get("x-upstream"), r2.body)
        except (Closed, socket.timeout) as e:
            got = repr(e)
    tap.eq(r1.body, b"hello", "the response is cut at its Content-Length")
    tap.eq(got, (200, "a", b"a\n"),
           "the bytes after it are never taken for the next response (connection not reused)")

with tap.section("upstream connections that must not be reused"):
    for path, body, what in (("/http10", b"http10", "an HTTP/1.0 response without keep-alive"),
                             ("/close-linger", b"linger", "a response with Connection: close")):
        with z.client() as c:
            r = c.request("GET", path)
            tap.eq((r.status, r.body), (200, body), "%s is delivered" % what)
        t0 = time.monotonic()
        with z.client(timeout=5) as c:
            try:
                r = c.request("GET", "/")
                got = (r.status, r.body)
            except (Closed, socket.timeout) as e:
                got = repr(e)
        tap.ok(got == (200, b"a\n") and time.monotonic() - t0 < 0.9,
               "after %s, its upstream connection is not reused (next request: %r in %.2fs)"
               % (what, got, time.monotonic() - t0))

with tap.section("upstream answers before the request body is sent"):
    with z.client(timeout=10) as c:
        total = 4 * 1024 * 1024
        c.send(b"POST /early-reject HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % total)
        c.sock.setblocking(False)
        sent, got, deadline = 0, bytearray(), time.monotonic() + 8
        block = b"e" * 65536
        while time.monotonic() < deadline and b"\r\n\r\n" not in got:
            r_, w_, _ = select.select([c.sock], [c.sock] if sent < total else [], [], 0.2)
            if r_:
                try:
                    d = c.sock.recv(65536)
                except (BlockingIOError, ConnectionResetError):
                    d = b""
                if not d:
                    break
                got += d
            elif w_:
                try:
                    sent += c.sock.send(block[:total - sent])
                except (BlockingIOError, ConnectionResetError, BrokenPipeError):
                    pass
        line = bytes(got).split(b"\r\n", 1)[0]
        tap.ok(line.startswith(b"HTTP/1.1 413") and b"x-upstream: a" in bytes(got).lower(),
               "the upstream's early 413 reaches the client while it is still sending "
               "(%r after %.1f of 4 MiB)" % (line, sent / 1048576.0))
    with z.client() as c:
        tap.eq(c.request("GET", "/").status, 200, "zdmd serves the next client")

with tap.section("upstream stalls mid-body"):
    t0 = time.monotonic()
    with z.client(timeout=10) as c:
        c.send(b"GET /stall HTTP/1.1\r\nHost: x\r\n\r\n")
        try:
            r = c.read_response()
            outcome = ("complete", r.status, len(r.body))
        except Closed as e:
            outcome = ("closed", len(e.partial))
        except socket.timeout:
            outcome = ("timeout",)
    dt = time.monotonic() - t0
    tap.ok(outcome[0] == "closed" and dt < 5,
           "an upstream silent mid-body: the client connection is closed after about "
           "upstream_response (1s), not left hanging (%s after %.2fs)" % (outcome, dt))
    tap.ok(wait_for(lambda: a.stats()["paths"].get("/stall") and a.stats()["open"] <= 1, timeout=5),
           "and the upstream connection is closed too")

tap.ok(z.alive(), "zdmd is still running")
tap.done()
