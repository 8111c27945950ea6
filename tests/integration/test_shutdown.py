#!/usr/bin/env python3
"""Graceful shutdown (SPEC §2): SIGTERM/SIGINT stop accepting, let in-flight
requests finish for at most timeouts.drain, then exit 0; a second signal
exits at once."""

import signal
import threading
import time

from zdmtest import TAP, Upstream, Zdmd, Raw, Closed, HOST, refused, wait_for

tap = TAP()
a, b = Upstream("a"), Upstream("b")


def spec(drain):
    return {"pools": {"old": [a], "new": [b]}, "split": {"old": 100, "new": 0},
            "timeouts": {"drain": Raw(drain)}}


def background_request(z, path, out):
    def run():
        try:
            with z.client(timeout=10) as c:
                r = c.request("GET", path)
                out.append((r.status, r.body))
        except Exception as e:
            out.append(("error", repr(e)))
    t = threading.Thread(target=run, daemon=True)
    t.start()
    return t


with tap.section("idle SIGTERM"):
    z = Zdmd(tap, spec("2s"))
    with z.client() as c:
        tap.eq(c.request("GET", "/").status, 200, "zdmd answers")
    t0 = time.monotonic()
    z.signal(signal.SIGTERM)
    rc = z.wait_exit(5)
    tap.eq(rc, 0, "SIGTERM while idle: exit status 0")
    tap.ok(time.monotonic() - t0 < 2.5, "within the drain timeout (%.2fs)" % (time.monotonic() - t0))

with tap.section("idle SIGINT"):
    z = Zdmd(tap, spec("2s"))
    z.signal(signal.SIGINT)
    tap.eq(z.wait_exit(5), 0, "SIGINT while idle: exit status 0")

with tap.section("in-flight request finishes"):
    z = Zdmd(tap, spec("5s"))
    # An idle keep-alive client must not hold the shutdown up.
    idle = z.client()
    idle.request("GET", "/")
    p0 = a.stats()["paths"].get("/slow/1000", 0)
    out = []
    t = background_request(z, "/slow/1000", out)
    tap.ok(wait_for(lambda: a.stats()["paths"].get("/slow/1000", 0) > p0, timeout=5),
           "the slow request reached the upstream")
    t0 = time.monotonic()
    z.signal(signal.SIGTERM)
    tap.ok(wait_for(lambda: refused(z.port), timeout=2), "new connections are refused during the drain")
    t.join(10)
    tap.eq(out, [(200, b"slow a\n")], "the in-flight request completes with 200")
    rc = z.wait_exit(6)
    dt = time.monotonic() - t0
    tap.eq(rc, 0, "then zdmd exits 0")
    tap.ok(dt < 4.0, "soon after the last request finished, not at the drain deadline (%.2fs)" % dt)
    tap.ok(idle.wait_closed(1), "the idle keep-alive client was closed")
    idle.close()

with tap.section("drain timeout"):
    z = Zdmd(tap, spec("1s"))
    out = []
    p0 = a.stats()["paths"].get("/hang", 0)
    t = background_request(z, "/hang", out)
    wait_for(lambda: a.stats()["paths"].get("/hang", 0) > p0, timeout=5)
    t0 = time.monotonic()
    z.signal(signal.SIGTERM)
    rc = z.wait_exit(6)
    dt = time.monotonic() - t0
    tap.eq(rc, 0, "a request that never finishes: exit 0 at the drain timeout")
    tap.ok(0.8 <= dt <= 3.5, "after about timeouts.drain (1s): %.2fs" % dt)
    t.join(10)

with tap.section("second signal"):
    z = Zdmd(tap, spec("30s"))
    out = []
    p0 = a.stats()["paths"].get("/hang", 0)
    t = background_request(z, "/hang", out)
    wait_for(lambda: a.stats()["paths"].get("/hang", 0) > p0, timeout=5)
    z.signal(signal.SIGTERM)
    tap.eq(z.wait_exit(0.5), None, "with a request in flight and drain 30s, zdmd waits")
    t0 = time.monotonic()
    z.signal(signal.SIGTERM)
    rc = z.wait_exit(5)
    tap.ok(rc is not None and time.monotonic() - t0 < 2,
           "a second SIGTERM exits at once (status %r, %.2fs)" % (rc, time.monotonic() - t0))
    t.join(10)

tap.done()
