#!/usr/bin/env python3
"""SIGHUP reloads the config (SPEC §2): a valid new file applies to the
requests that follow, without dropping a connection; an invalid one is
refused with FILE:LINE:COL on stderr and the old config keeps running."""

import re
import signal

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

tap.done()
