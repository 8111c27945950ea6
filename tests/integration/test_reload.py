#!/usr/bin/env python3
"""SIGHUP reloads the config (SPEC §2): a valid new file applies to the
requests that follow, without dropping a connection; an invalid one is
refused with FILE:LINE:COL on stderr and the old config keeps running."""

import re
import signal

import obs
from zdmtest import TAP, Upstream, Zdmd, wait_for

tap = TAP()
a, b = Upstream("a"), Upstream("b")
spec = {"pools": {"old": [a], "new": [b]}, "split": {"old": 100, "new": 0}}
z = Zdmd(tap, spec)


def who(c):
    r = c.request("GET", "/")
    return r.get("x-upstream") if r.status == 200 else r.status


with tap.section("valid reload"):
    keep = z.client()
    tap.eq(who(keep), "a", "before: old")
    z.rewrite({"pools": {"old": [a], "new": [b]}, "split": {"old": 0, "new": 100}})
    z.signal(signal.SIGHUP)
    switched = wait_for(lambda: who(keep) == "b", timeout=5, interval=0.05)
    tap.ok(switched, "after SIGHUP with split 0/100 requests go to new")
    tap.eq([who(keep) for _ in range(10)], ["b"] * 10,
           "on the connection opened before the reload, too")
    with z.client() as c:
        tap.eq(who(c), "b", "and on a new connection")
    tap.ok(z.alive(), "zdmd kept running")

with tap.section("invalid reload"):
    running = who(keep)
    z.rewrite(text=open(z.config_path).read() + "bogus_key: 1\n")
    lines_before = len(z.stderr().splitlines())
    nlines = len(open(z.config_path).read().splitlines())
    z.signal(signal.SIGHUP)
    pat = re.compile(re.escape(z.config_path) + r":%d:1:" % nlines)
    logged = wait_for(lambda: pat.search("\n".join(z.stderr().splitlines()[lines_before:])),
                      timeout=5)
    tap.ok(logged, "the error is logged as FILE:LINE:COL (line %d)" % nlines,
           "\n".join(z.stderr().splitlines()[lines_before:]))
    tap.ok(z.alive(), "zdmd keeps running")
    tap.eq([who(keep) for _ in range(5)], [running] * 5, "with the config it had")
    keep.close()

with tap.section("a request in flight across reloads is counted"):
    zm = obs.start(tap, spec)
    admin = "127.0.0.1:%d" % zm.admin

    def server_status(pool, name):
        for p in zm.status().get("pools", []):
            for sv in p.get("servers", []) if p.get("name") == pool else []:
                if sv.get("name") == name:
                    return sv
        return {}

    def answered():
        return obs.scrape(zm).value("zdm_requests_total", route="default", pool="old",
                                    server="a", code="2xx") or 0

    before = answered()
    slow = zm.client(timeout=10)
    slow.send(b"GET /slow/1500 HTTP/1.1\r\nHost: x\r\n\r\n")
    tap.ok(wait_for(lambda: server_status("old", "a").get("inflight") == 1, timeout=3),
           "a slow request is in flight on a", server_status("old", "a"))
    c = Upstream("c")
    # Two reloads, each with another layout (a pool more, then its server
    # renamed), while the request runs.
    for extra in ("c", "c2"):
        c.name = extra
        zm.rewrite({"admin": admin, "pools": {"old": [a], "new": [b], "extra": [c]},
                    "split": {"old": 100, "new": 0, "extra": 0}})
        zm.signal(signal.SIGHUP)
        tap.ok(wait_for(lambda: server_status("extra", extra).get("name") == extra, timeout=5),
               "reloaded with a server %s in pool extra" % extra)
    tap.eq(server_status("old", "a").get("inflight"), 1,
           "a's request begun under the first layout is still seen in flight")
    r = slow.read_response()
    tap.eq(r.status, 200, "then it is answered")
    tap.ok(wait_for(lambda: answered() == before + 1, timeout=3),
           "zdm_requests_total counts it on a (%s before)" % before, answered())
    tap.eq(server_status("old", "a").get("inflight"), 0, "and a's inflight is 0")
    with zm.client() as c2:
        tap.eq(who(c2), "a", "a request after it")
    tap.ok(wait_for(lambda: answered() == before + 2, timeout=3),
           "is counted after it: nothing lost or counted twice", answered())
    slow.close()
    zm.stop()
    c.stop()

tap.done()
