#!/usr/bin/env python3
"""Clients that vanish mid-body or mid-response (issue item 4: never leak a
connection or a buffer): zdmd keeps serving others, and the upstream
connections opened for the abandoned requests go away."""

import socket
import time

from zdmtest import TAP, Upstream, Zdmd, Client, Raw, content, wait_for

MiB = 1024 * 1024
tap = TAP()
a, b = Upstream("a"), Upstream("b")
z = Zdmd(tap, {"pools": {"old": [a], "new": [b]}, "split": {"old": 100, "new": 0},
               "timeouts": {"upstream_idle": Raw("1s")},
               "circuit_breaker": {"failures": 0}})
base_fds = z.fds()

with tap.section("vanish mid request body"):
    chunk = b"v" * MiB
    served, failures = 0, []
    for i in range(20):
        c = Client(z.port, timeout=5)
        c.send(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % (10 * MiB))
        try:
            c.sock.sendall(chunk)
        except OSError:
            pass
        if i % 2:
            c.reset()
        else:
            c.close()
        try:
            with z.client() as o:
                r = o.request("GET", "/size/100")
            if r.status == 200 and r.body == content(100):
                served += 1
            else:
                failures.append((i, r.status))
        except Exception as e:
            failures.append((i, repr(e)))
    tap.eq(served, 20, "another client is served after each of 20 vanished uploads", failures)
    tap.ok(z.alive(), "zdmd is still running")
    settled = wait_for(lambda: a.stats()["open"] <= 2, timeout=8)
    tap.ok(settled, "the upstream connections of the abandoned uploads are closed (open: %d)"
           % a.stats()["open"])

with tap.section("vanish mid response body"):
    served = 0
    for i in range(10):
        c = Client(z.port, timeout=5)
        c.send(b"GET /size/%d HTTP/1.1\r\nHost: x\r\n\r\n" % (20 * MiB))
        c.read_some(256 * 1024)
        if i % 2:
            c.reset()
        else:
            c.close()
        with z.client() as o:
            r = o.request("GET", "/")
            served += r.status == 200
    tap.eq(served, 10, "another client is served after each of 10 clients that left mid-download")
    settled = wait_for(lambda: a.stats()["open"] <= 2, timeout=8)
    tap.ok(settled, "the upstream connections of the abandoned downloads are closed (open: %d)"
           % a.stats()["open"])

with tap.section("vanish while waiting for the upstream"):
    for i in range(10):
        c = Client(z.port, timeout=5)
        c.send(b"GET /slow/300 HTTP/1.1\r\nHost: x\r\n\r\n")
        c.close()
    with z.client() as o:
        r = o.request("GET", "/")
    tap.eq(r.status, 200, "served after 10 clients left while their upstream was slow")
    settled = wait_for(lambda: a.stats()["open"] <= 2, timeout=8)
    tap.ok(settled, "their upstream connections are not left behind (open: %d)" % a.stats()["open"])

with tap.section("half-sent heads"):
    for i in range(20):
        c = Client(z.port, timeout=5)
        c.send(b"GET / HTTP/1.1\r\nHost: x\r\nX-Partial: ")
        c.reset() if i % 2 else c.close()
    with z.client() as o:
        r = o.request("GET", "/")
    tap.eq(r.status, 200, "served after 20 clients left mid-head")

with tap.section("still healthy"):
    with z.client() as o:
        rs = [o.request("GET", "/size/%d" % n) for n in (0, 1, 1000, 100000)]
    tap.ok(all(r.status == 200 and r.body == content(n) for r, n in zip(rs, (0, 1, 1000, 100000))),
           "zdmd still answers correctly on a keep-alive connection")
    tap.ok(z.alive(), "zdmd is still running")
    back = wait_for(lambda: z.fds() is not None and z.fds() <= base_fds, timeout=6)
    tap.ok(back, "no connection leaked: zdmd's open files back to %d (now %s)"
           % (base_fds, z.fds()))
tap.done()
