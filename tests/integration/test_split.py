#!/usr/bin/env python3
"""Weighted split between pools and smooth weighted round robin inside a
pool (SPEC §4.2, §4.3), counted by the upstream that answered."""

from zdmtest import TAP, Upstream, Zdmd, Client


def run(z, n, conns=4, path="/", headers=None):
    """N GETs over CONNS keep-alive connections, one after the other;
    returns the answering upstream per request (None when one failed)."""
    seq = []
    per = n // conns
    for _ in range(conns):
        c = z.client()
        try:
            for _ in range(per):
                r = c.request("GET", path, headers)
                seq.append((r.status, r.get("x-upstream"), r.get("x-zdm-pool")))
        finally:
            c.close()
    return seq


def windows_ok(names, target, want, width=100, slack=1):
    """Every WIDTH consecutive requests hold WANT ± SLACK of TARGET."""
    worst = None
    for i in range(0, len(names) - width + 1):
        k = sum(1 for x in names[i:i + width] if x == target)
        if abs(k - want) > slack:
            worst = (i, k)
            break
    return worst


tap = TAP()

# 90/10 over 1000 requests, counted both by upstream and by X-Zdm-Pool.
with tap.section("split 90/10"):
    a, b = Upstream("a"), Upstream("b")
    z = Zdmd(tap, {"expose_pool_header": True,
                   "pools": {"old": [a], "new": [b]},
                   "split": {"old": 90, "new": 10}})
    seq = run(z, 1000, conns=4)
    tap.eq(sum(1 for s in seq if s[0] == 200), 1000, "90/10: all 1000 requests answered 200")
    ups = [s[1] for s in seq]
    na, nb = ups.count("a"), ups.count("b")
    tap.within(nb, 90, 110, "90/10: new got 10%% ± 1%% of 1000 (got %d)" % nb)
    tap.within(na, 890, 910, "90/10: old got 90%% ± 1%% of 1000 (got %d)" % na)
    pools = [s[2] for s in seq]
    tap.eq(pools.count("new"), nb, "90/10: X-Zdm-Pool: new on exactly the responses of b")
    tap.ok(all((u, p) in (("a", "old"), ("b", "new")) for _, u, p in seq),
           "90/10: X-Zdm-Pool matches the answering upstream on every response")
    bad = windows_ok(ups, "b", 10)
    tap.ok(bad is None, "90/10: every window of 100 consecutive requests has 10 ± 1 for new",
           "window at %s" % (bad,))
    z.stop()

with tap.section("split 50/50"):
    z = Zdmd(tap, {"pools": {"old": [a], "new": [b]}, "split": {"old": 50, "new": 50}})
    ups = [s[1] for s in run(z, 200, conns=2)]
    tap.within(ups.count("b"), 99, 101, "50/50: 200 requests split 100/100 ± 1 (new %d)" % ups.count("b"))
    bad = windows_ok(ups, "b", 50)
    tap.ok(bad is None, "50/50: every window of 100 holds 50 ± 1", "window at %s" % (bad,))
    z.stop()

with tap.section("split 100/0"):
    z = Zdmd(tap, {"pools": {"old": [a], "new": [b]}, "split": {"old": 100, "new": 0}})
    ups = [s[1] for s in run(z, 100, conns=2)]
    tap.eq(ups.count("a"), 100, "100/0: all 100 requests to old")
    z.stop()
    z = Zdmd(tap, {"pools": {"old": [a], "new": [b]}, "split": {"old": 0, "new": 100}})
    ups = [s[1] for s in run(z, 100, conns=2)]
    tap.eq(ups.count("b"), 100, "0/100: all 100 requests to new")
    z.stop()

with tap.section("fractional split"):
    z = Zdmd(tap, {"pools": {"old": [a], "new": [b]}, "split": {"old": 99.5, "new": 0.5}})
    ups = [s[1] for s in run(z, 400, conns=2)]
    tap.within(ups.count("b"), 1, 3, "99.5/0.5: 400 requests give new 2 ± 1 (got %d)" % ups.count("b"))
    z.stop()

with tap.section("three pools, fractional"):
    c3 = Upstream("c3")
    z = Zdmd(tap, {"pools": {"old": [a], "new": [b], "third": [c3]},
                   "split": {"old": 33.33, "new": 33.33, "third": 33.34}})
    ups = [s[1] for s in run(z, 300, conns=3)]
    counts = tuple(ups.count(x) for x in ("a", "b", "c3"))
    tap.ok(all(99 <= k <= 101 for k in counts), "33.33/33.33/33.34 over 300 requests: 100 ± 1 each %r"
           % (counts,))
    z.stop()

# Smooth weighted round robin inside a pool: weights 3:1.
with tap.section("weighted round robin 3:1"):
    a1, a2 = Upstream("a1", weight=3), Upstream("a2", weight=1)
    z = Zdmd(tap, {"pools": {"old": [a1, a2], "new": [b]}, "split": {"old": 100, "new": 0}})
    ups = [s[1] for s in run(z, 400, conns=4)]
    tap.eq((ups.count("a1"), ups.count("a2")), (300, 100), "3:1: 400 requests give 300/100")
    bad = windows_ok(ups, "a2", 25)
    tap.ok(bad is None, "3:1: every window of 100 holds 25 ± 1 for the weight-1 server",
           "window at %s" % (bad,))
    bad = windows_ok(ups, "a2", 1, width=4, slack=0)
    tap.ok(bad is None, "3:1: smooth, exactly one weight-1 pick in every 4 consecutive",
           "window at %s: %s" % (bad, ups[bad[0]:bad[0] + 4] if bad else ""))
    z.stop()

# A pool without an available server: its share goes to the others.
with tap.section("redistribution"):
    z = Zdmd(tap, {"pools": {"old": [Upstream("o0", weight=0)], "new": [b]},
                   "split": {"old": 90, "new": 10}})
    seq = run(z, 100, conns=1)
    tap.eq([s[:2] for s in seq], [(200, "b")] * 100,
           "old has no available server: 90/10 becomes all to new")
    z.stop()
    c1, c2 = Upstream("c1"), Upstream("c2")
    z = Zdmd(tap, {"pools": {"old": [a], "new": [Upstream("n0", weight=0)], "third": [c1]},
                   "split": {"old": 60, "new": 20, "third": 20}})
    ups = [s[1] for s in run(z, 400, conns=2)]
    tap.within(ups.count("c1"), 95, 105,
               "60/20/20 with new unavailable: third gets 25%% (got %d of 400)" % ups.count("c1"))
    z.stop()
    z = Zdmd(tap, {"pools": {"old": [a], "new": [Upstream("n1", weight=0)], "third": [c2]},
                   "split": {"old": 0, "new": 100, "third": 0}})
    ups = [s[1] for s in run(z, 50, conns=1)]
    tap.eq(set(ups), {"a"}, "0/100/0 with new unavailable: the baseline pool takes it all")
    z.stop()

# A server with weight 0 gets nothing.
with tap.section("weight 0"):
    z = Zdmd(tap, {"pools": {"old": [Upstream("w1", weight=1), Upstream("w0", weight=0)],
                             "new": [b]},
                   "split": {"old": 100, "new": 0}})
    ups = [s[1] for s in run(z, 50, conns=1)]
    tap.eq(ups.count("w1"), 50, "a server with weight 0 gets no requests")
    z.stop()

tap.done()
