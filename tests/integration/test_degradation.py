#!/usr/bin/env python3
"""Graceful degradation (SPEC §4.1, §4.2, §4.4; issue 4): a pool with no
available server (health down or circuit open) gets none of the split and
its share goes to the others; it comes back when a server recovers; a pin
to such a pool answers 503; nothing available anywhere answers 503 at once.
A connect failure is retried once on another *available* server: never on
a down one, and the failures it causes open the circuit so that the pool
drops out of the split with no client-visible error. (test_retry.py covers
the retry itself; this file covers how it meets health and breakers.)
"""

import time

from zdmtest import TAP, Upstream, Zdmd, Raw, Client, is_self_made
from faults import (section, need, set_mode, normal, count, refuse, relisten,
                    server_state, wait_state, wait_all, burst, one, tally)

tap = TAP(deadline=80)
o1 = Upstream("o1")
n1, n2 = Upstream("n1"), Upstream("n2")

INTERVAL, TIMEOUT, RISE, FALL = 0.3, 0.2, 2, 2
HC = {"path": "/health", "interval": Raw("300ms"), "timeout": Raw("200ms"),
      "rise": RISE, "fall": FALL}
DOWN_WAIT = INTERVAL * FALL + TIMEOUT + 1.5
UP_WAIT = INTERVAL * RISE + TIMEOUT + 1.5
NEW = [("new", "n1"), ("new", "n2")]
PIN = [("canary", "true")]


def pools_of(seq):
    """{old: k, new: m} from answers by upstream name."""
    out = {"old": 0, "new": 0, "other": 0}
    for s, up in seq:
        if s != 200:
            out["other"] += 1
        elif up and up.startswith("o"):
            out["old"] += 1
        else:
            out["new"] += 1
    return out


z = None
with section(tap, "50/50; the new pool down: all to old; back when it recovers"):
    z = Zdmd(tap, {"pools": {"old": [o1], "new": [n1, n2]},
                   "split": {"old": 50, "new": 50},
                   "pins": [{"header": "canary", "value": "true", "pool": "new"}],
                   "health_check": HC,
                   "circuit_breaker": {"failures": 3, "open_for": Raw("30s")},
                   "timeouts": {"connect": Raw("2s")}})
    seq = burst(z, 100)
    p = pools_of(seq)
    tap.eq(p["other"], 0, "baseline: 100 requests, all 200")
    tap.within(p["new"], 49, 51, "baseline: 50/50 (new %d, old %d)" % (p["new"], p["old"]))

    c0 = (count(n1, "/"), count(n2, "/"))
    set_mode(n1, health=500)
    set_mode(n2, health=500)
    need(tap, wait_all(z, NEW, "health", "down", DOWN_WAIT), "both servers of new are marked down")
    seq = burst(z, 100)
    tap.eq(tally(seq, 0), {200: 100}, "new down: 100 requests, all 200")
    tap.eq(tally(seq), {"o1": 100}, "new down: all 100 went to old")
    tap.eq((count(n1, "/") - c0[0], count(n2, "/") - c0[1]), (0, 0),
           "no request reached new's servers (counted on them)")

    with Client(z.port) as c:
        r = c.request("GET", "/", PIN)
        bad = is_self_made(r, 503)
        tap.ok(not bad, "a pin to the down pool: zdmd's own 503", "; ".join(bad))
        r2 = c.request("GET", "/")
        tap.eq((r2.status, r2.get("x-upstream")), (200, "o1"),
               "an unpinned request on the same connection still goes to old")
    tap.eq((count(n1, "/") - c0[0], count(n2, "/") - c0[1]), (0, 0),
           "the pinned request reached no server of new")

    normal(n1)
    t0 = time.monotonic()
    need(tap, wait_state(z, "new", "n1", "health", "up", UP_WAIT) is not None, "n1 recovers")
    seq = burst(z, 100)
    p = pools_of(seq)
    tap.eq(p["other"], 0, "one server of new back: 100 requests, all 200")
    tap.within(p["new"], 48, 52, "50/50 again with one server in new (new %d)" % p["new"])
    tap.eq(tally(seq).get("n2", 0), 0, "n2, still down, gets nothing")
    r = one(z, headers=PIN)
    tap.eq(r[:2], (200, "n1"), "a pin to new works again")
    normal(n2)
    need(tap, wait_state(z, "new", "n2", "health", "up", UP_WAIT) is not None, "n2 recovers")
    seq = burst(z, 200)
    t = tally(seq)
    tap.eq(tally(seq, 0), {200: 200}, "all up: 200 requests, all 200")
    tap.ok(95 <= t.get("o1", 0) <= 105 and 45 <= t.get("n1", 0) <= 55 and 45 <= t.get("n2", 0) <= 55,
           "all up: old half, n1 and n2 a quarter each (%r)" % (t,))

with section(tap, "open circuits take the new pool out too"):
    need(tap, z is not None and z.alive(), "zdmd runs")
    set_mode(n1, all=500, health="ok")
    set_mode(n2, all=500, health="ok")
    c0 = (count(n1, "/"), count(n2, "/"))
    seq = burst(z, 40, conns=1)
    tap.eq((count(n1, "/") - c0[0], count(n2, "/") - c0[1]), (3, 3),
           "3 failures each reached n1 and n2, then their circuits opened")
    st = [(server_state(z, p, s) or {}) for p, s in NEW]
    tap.eq([(s.get("health"), s.get("circuit")) for s in st], [("up", "open")] * 2,
           "status: n1, n2 health up, circuit open")
    bad = [x for x in seq if x[0] != 200]
    tap.eq(len(bad), 6, "the client saw exactly the 6 failures that opened them (as 500s)")
    seq = burst(z, 100)
    tap.eq(tally(seq), {"o1": 100}, "then 100 more requests, all to old")
    r = one(z, headers=PIN)
    tap.eq(r[0], 503, "a pin to the pool whose circuits are open: 503")
    normal(n1)
    normal(n2)
    z.stop()

with section(tap, "three pools: a down pool's share goes to the others in proportion"):
    t1 = Upstream("t1")
    z = Zdmd(tap, {"pools": {"old": [o1], "new": [n1], "third": [t1]},
                   "split": {"old": 60, "new": 20, "third": 20},
                   "health_check": HC})
    set_mode(n1, health=500)
    need(tap, wait_state(z, "new", "n1", "health", "down", DOWN_WAIT) is not None, "new/n1 is down")
    seq = burst(z, 400)
    t = tally(seq)
    tap.eq(tally(seq, 0), {200: 400}, "60/20/20 with new down: 400 requests, all 200")
    tap.ok(t.get("n1", 0) == 0 and 95 <= t.get("t1", 0) <= 105,
           "third gets 20/80 = 25%% of 400, old 75%% (%r)" % (t,))
    z.stop()
    z = Zdmd(tap, {"pools": {"old": [o1], "new": [n1], "third": [t1]},
                   "split": {"old": 0, "new": 100, "third": 0},
                   "health_check": HC})
    need(tap, wait_state(z, "new", "n1", "health", "down", DOWN_WAIT) is not None, "new/n1 is down")
    seq = burst(z, 20)
    tap.eq(tally(seq), {"o1": 20}, "0/100/0 with new down: the baseline pool (old) takes it all")
    set_mode(o1, health=500)
    need(tap, wait_state(z, "old", "o1", "health", "down", DOWN_WAIT) is not None, "old/o1 is down too")
    seq = burst(z, 20)
    tap.eq(tally(seq), {"t1": 20}, "0/100/0 with new and old down: third takes it all")
    normal(o1)
    normal(n1)
    z.stop()

with section(tap, "nothing available anywhere: 503 at once"):
    z = Zdmd(tap, {"pools": {"old": [o1], "new": [n1, n2]},
                   "split": {"old": 50, "new": 50},
                   "health_check": HC,
                   "timeouts": {"connect": Raw("2s")}})
    for u in (o1, n1, n2):
        set_mode(u, health=500)
    need(tap, wait_all(z, [("old", "o1")] + NEW, "health", "down", DOWN_WAIT),
         "every server is marked down")
    c0 = [count(u, "/") for u in (o1, n1, n2)]
    res = [one(z) for _ in range(10)]
    tap.eq([x[0] for x in res], [503] * 10, "10 requests: all 503")
    worst = max(x[2] for x in res)
    tap.ok(worst < 0.2, "each at once, well under the 2s connect timeout (slowest %.0f ms)"
           % (worst * 1000))
    with Client(z.port) as c:
        r = c.request("GET", "/")
        bad = is_self_made(r, 503)
        tap.ok(not bad, "the 503 is zdmd's own short answer", "; ".join(bad))
    tap.eq([count(u, "/") - k for u, k in zip((o1, n1, n2), c0)], [0, 0, 0],
           "no request reached any server")
    normal(o1)
    need(tap, wait_state(z, "old", "o1", "health", "up", UP_WAIT) is not None, "o1 recovers")
    seq = burst(z, 20)
    tap.eq(tally(seq), {"o1": 20}, "old back (new still down): all 20 to old")
    for u in (n1, n2):
        normal(u)
    z.stop()

with section(tap, "the retry of a failed connect skips a down server"):
    # new: n1 resets every request (a connect failure: reset before any
    # response byte) but passes its checks; n2 is down. The retry must not
    # go to n2: with no other available server in new it goes by the split,
    # to old.
    z = Zdmd(tap, {"pools": {"old": [o1], "new": [n1, n2]},
                   "split": {"old": 0, "new": 100},
                   "pins": [{"header": "canary", "value": "true", "pool": "new"}],
                   "health_check": HC,
                   "circuit_breaker": {"failures": 0}})
    set_mode(n2, health=500)
    need(tap, wait_state(z, "new", "n2", "health", "down", DOWN_WAIT) is not None, "n2 is down")
    set_mode(n1, all="reset", health="ok")
    c0 = (count(n1, "/"), count(n2, "/"), count(o1, "/"))
    res = [one(z) for _ in range(10)]
    tap.eq([x[:2] for x in res], [(200, "o1")] * 10,
           "10 GETs: n1 resets, the retry is answered by old")
    d = (count(n1, "/") - c0[0], count(n2, "/") - c0[1], count(o1, "/") - c0[2])
    tap.eq(d, (10, 0, 10), "n1 saw each once, the down n2 none, old each once")
    # Pinned: the retry stays in new, where nothing else is available.
    c0 = (count(n1, "/"), count(n2, "/"), count(o1, "/"))
    r = one(z, headers=PIN)
    tap.ok(r[0] in (502, 503), "a pinned GET whose only available server resets: 502/503 (got %r)"
           % (r[0],))
    d = (count(n1, "/") - c0[0], count(n2, "/") - c0[1], count(o1, "/") - c0[2])
    tap.eq(d, (1, 0, 0), "the pinned GET reached n1 once, and neither the down n2 nor old")
    normal(n1)
    normal(n2)
    z.stop()

with section(tap, "refused connects: retried, then the circuit takes the pool out"):
    z = Zdmd(tap, {"pools": {"old": [o1], "new": [n1]},
                   "split": {"old": 50, "new": 50},
                   "circuit_breaker": {"failures": 3, "open_for": Raw("30s")}})
    refuse(n1)
    res = [one(z) for _ in range(40)]
    tap.eq([x[:2] for x in res], [(200, "o1")] * 40,
           "n1 refuses: 40 requests, all 200 from old (retried, then routed there)")
    s = server_state(z, "new", "n1") or {}
    tap.eq(s.get("circuit"), "open", "n1's circuit is open")
    tap.ok(max(x[2] for x in res) < 0.2, "no request waited (slowest %.0f ms)"
           % (max(x[2] for x in res) * 1000))
    need(tap, relisten(n1), "n1 listens again")
    z.stop()

tap.done()
