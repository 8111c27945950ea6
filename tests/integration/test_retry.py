#!/usr/bin/env python3
"""One retry on connect failure (SPEC §4.4): a refused connection is retried
on another server of the same pool; a request whose bytes reached an upstream
is not retried blindly; a pinned request stays in its pool."""

import socket
import struct
import threading
import time

from zdmtest import (TAP, Upstream, Zdmd, Server, Raw, Closed, build_request,
                     dead_address, wait_for, HOST, syn_blackhole)

tap = TAP()
live, other = Upstream("live"), Upstream("other")

with tap.section("connect refused: retried on the other server"):
    z = Zdmd(tap, {"pools": {"old": [Server(dead_address(), name="dead"), live],
                             "new": [other]},
                   "split": {"old": 100, "new": 0},
                   "circuit_breaker": {"failures": 0}})
    s0 = live.stats()
    codes, ups = [], []
    for i in range(20):
        with z.client() as c:
            r = c.request("GET", "/")
            codes.append(r.status)
            ups.append(r.get("x-upstream"))
    tap.eq(codes, [200] * 20, "20 requests on fresh connections all succeed")
    tap.eq(set(ups), {"live"}, "all answered by the live server of the same pool")
    tap.eq(live.stats()["requests"] - s0["requests"], 20, "the live server saw each request once")
    with z.client() as c:
        rs = [c.request("POST", "/echo", body=b"body %d" % i) for i in range(10)]
    tap.eq([(r.status, r.body) for r in rs], [(200, b"body %d" % i) for i in range(10)],
           "POSTs are retried after a refused connect too (nothing reached an upstream)")

    # A POST to /reset: the request reached the upstream, which answered part
    # of a response and reset. It must not be sent again.
    p0 = live.stats()["paths"].get("/reset", 0)
    with z.client() as c:
        c.send(build_request("POST", "/reset", body=b"pay once"))
        try:
            r = c.read_response()
            outcome = "status %d" % r.status
            good = r.status == 502
        except Closed as e:
            outcome = "closed after %d bytes" % len(e.partial)
            good = True
        except socket.timeout:
            outcome = "timeout"
            good = False
    tap.ok(good, "POST /reset: 502 or the connection closed (%s)" % outcome)
    tap.eq(live.stats()["paths"].get("/reset", 0) - p0, 1, "POST /reset reached the upstream once, not twice")

    p0 = live.stats()["paths"].get("/reset-before", 0)
    with z.client() as c:
        c.send(build_request("POST", "/reset-before", body=b"pay once"))
        try:
            r = c.read_response()
            status = r.status
        except (Closed, socket.timeout):
            status = None
    tap.ok(status in (502, None), "POST /reset-before: 502 (got %r)" % status)
    tap.eq(live.stats()["paths"].get("/reset-before", 0) - p0, 1,
           "a POST that reached the upstream is not retried even without a response byte")
    z.stop()

class Resetter:
    """A listener that resets every connection it accepts, counting them."""

    def __init__(self):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.bind((HOST, 0))
        self.sock.listen(16)
        self.sock.settimeout(0.1)
        self.address = "%s:%d" % self.sock.getsockname()
        self.accepted = 0
        self.stop = False
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def run(self):
        deadline = time.monotonic() + 60
        while not self.stop and time.monotonic() < deadline:
            try:
                c, _ = self.sock.accept()
            except (socket.timeout, TimeoutError):
                continue
            except OSError:
                return
            self.accepted += 1
            c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            c.close()

    def close(self):
        self.stop = True
        self.thread.join(2)
        self.sock.close()


with tap.section("retried once, not more"):
    rs = [Resetter() for _ in range(3)]
    z = Zdmd(tap, {"pools": {"old": [Server(r.address, name="r%d" % i) for i, r in enumerate(rs)],
                             "new": [other]},
                   "split": {"old": 100, "new": 0},
                   "circuit_breaker": {"failures": 0}})
    with z.client() as c:
        r = c.request("GET", "/")
    tap.eq(r.status, 502, "every server resets: 502")
    wait_for(lambda: sum(x.accepted for x in rs) >= 2, timeout=2)
    tap.eq(sum(x.accepted for x in rs), 2, "one attempt and one retry, on two different servers")
    tap.eq(sorted(x.accepted for x in rs), [0, 1, 1], "the retry went to another server")
    z.stop()
    for x in rs:
        x.close()

with tap.section("pinned requests stay in their pool"):
    z = Zdmd(tap, {"pools": {"old": [live], "new": [Server(dead_address(), name="dead")]},
                   "split": {"old": 100, "new": 0},
                   "pins": [{"header": "canary", "value": "true", "pool": "new"}],
                   "circuit_breaker": {"failures": 0}})
    with z.client() as c:
        r = c.request("GET", "/", [("canary", "true")])
    tap.ok(r.status in (502, 503) and r.get("x-upstream") != "live",
           "a pinned request whose pool refuses is not retried in old (got %s from %s)"
           % (r.status, r.get("x-upstream")))
    z.stop()

with tap.section("connect timeout: retried on the other server"):
    # A listener whose accept queue is full: the kernel drops further SYNs,
    # so a connect to it times out.
    hole = syn_blackhole()
    blackholed = hole is not None
    if not blackholed:
        tap.skip("connect timeout retry", "cannot make a listener that drops connections here")
    else:
        z = Zdmd(tap, {"pools": {"old": [Server(hole[0], name="bh"), live],
                                 "new": [other]},
                       "split": {"old": 100, "new": 0},
                       "timeouts": {"connect": Raw("300ms")},
                       "circuit_breaker": {"failures": 0}})
        t0 = time.monotonic()
        codes = []
        for i in range(4):
            with z.client() as c:
                r = c.request("GET", "/")
                codes.append((r.status, r.get("x-upstream")))
        dt = time.monotonic() - t0
        tap.eq(codes, [(200, "live")] * 4, "connect timeouts are retried on the live server")
        tap.ok(dt < 4, "each within about the connect timeout (4 requests: %.2fs)" % dt)
        z.stop()
    for k in (hole[1] if hole else []):
        k.close()

tap.done()
