#!/usr/bin/env python3
"""Per-server circuit breakers (SPEC §3 circuit_breaker, §4.3, §6 status;
issue 4).

Fed by real traffic: with the default `count`, a 5xx response, a reset, an
invalid response and a failed connect are failures, any other response a
success; a response timeout (zdmd's 504) is neither unless `count` lists
`timeout`, and it does not end a streak of failures either.
`failures` consecutive failures open the circuit and an open server gets
no request; after `open_for` it is half-open and admits exactly
`half_open_probes` requests; a success closes it, a failure re-opens it.
`failures: 0` never opens. Counted on the upstreams themselves: what
reached them, not what zdmd says. No health_check section here, so only the
breaker takes servers out.
"""

import re
import socket
import threading
import time

from zdmtest import (TAP, Upstream, Zdmd, Raw, Server, Client, wait_for, free_port, zdmctl,
                     syn_blackhole)
from faults import (section, need, set_mode, normal, count, refuse, relisten,
                    server_state, wait_state, log_lines, wait_log, change_problems,
                    one, concurrent, tally, metric, wait_port)

tap = TAP(deadline=80)
a, b = Upstream("a"), Upstream("b")
a1, a2 = Upstream("a1"), Upstream("a2")


def start(breaker, extra=None, pools=None):
    spec = {"pools": pools or {"old": [a], "new": [b]},
            "split": {"old": 100, "new": 0},
            "circuit_breaker": breaker}
    spec.update(extra or {})
    for u in (a, b, a1, a2):
        normal(u)
    return Zdmd(tap, spec)


def circuit(z, pool="old", name="a"):
    return (server_state(z, pool, name) or {}).get("circuit")


def open_after_exactly(z, n, what, pool="old", name="a", upstream=None):
    """Sends requests one by one (each on a new connection) and checks the
    circuit after each: closed after N-1, open after N. Returns the
    answers."""
    got = []
    states = []
    for i in range(n):
        got.append(one(z))
        states.append(circuit(z, pool, name))
    tap.eq(states, ["closed"] * (n - 1) + ["open"],
           "%s: the circuit opens on exactly the %dth consecutive failure" % (what, n),
           "answers: %r" % (got,))
    return got


z = None
with section(tap, "5xx responses open the circuit (default count)"):
    z = start({"failures": 5, "open_for": Raw("30s"), "half_open_probes": 1})
    s = server_state(z, "old", "a") or {}
    tap.eq(s.get("circuit"), "closed", "a's circuit starts closed")
    tap.ok("circuit_change" in s and s["circuit_change"] is None,
           "circuit_change is null before any transition", "entry: %r" % (s,))
    n0 = count(a, "/")
    wall0 = time.time()
    set_mode(a, all=500)
    got = open_after_exactly(z, 5, "500 responses")
    tap.eq([(x[0], x[1]) for x in got], [(500, "a")] * 5,
           "the five 500s are passed to the client as they are")
    tap.eq(count(a, "/") - n0, 5, "exactly 5 requests reached a")
    more = [one(z) for _ in range(10)]
    tap.eq([(x[0], x[1]) for x in more], [(200, "b")] * 10,
           "with a open, the old pool has nothing available: all 10 to b")
    tap.eq(count(a, "/") - n0, 5, "no request reached the open server")
    s = server_state(z, "old", "a") or {}
    tap.eq(s.get("health"), "up", "health stays up: the circuit is separate")
    bad = change_problems(s.get("circuit_change"), "500", after=wall0, before=time.time())
    tap.ok(not bad, "status circuit_change: time and a reason naming the 500",
           "; ".join(bad) + "\nentry: %r" % (s,))
    rx = r"\[warn\] circuit: old/a open: 5 consecutive failures \(last: [^)]*500"
    tap.ok(wait_log(z, rx), "logged as [warn] circuit: old/a open: 5 consecutive failures (last: 500 ...)",
           "no line matches %r" % rx)
    z.stop()

with section(tap, "only consecutive failures count; 4xx is a success"):
    z = start({"failures": 5, "open_for": Raw("30s")})
    n0 = count(a, "/")
    set_mode(a, all=500)
    r1 = [one(z) for _ in range(4)]
    set_mode(a, all=404)
    r2 = [one(z)]
    set_mode(a, all=503)
    r3 = [one(z) for _ in range(4)]
    tap.eq([x[:2] for x in r1 + r2 + r3], [(500, "a")] * 4 + [(404, "a")] + [(503, "a")] * 4,
           "4 x 500, a 404, 4 x 503: all reached a")
    tap.eq(circuit(z), "closed", "8 failures, but never 5 in a row: still closed")
    r4 = one(z)
    tap.eq(r4[:2], (503, "a"), "a fifth consecutive 5xx reaches a")
    tap.eq(circuit(z), "open", "and opens the circuit")
    tap.eq(count(a, "/") - n0, 10, "10 requests reached a, no more")
    set_mode(a, all=404)
    z.stop()
    z = start({"failures": 3, "open_for": Raw("30s")})
    set_mode(a, all=404)
    r = [one(z) for _ in range(10)]
    tap.eq([x[:2] for x in r], [(404, "a")] * 10, "ten 404s pass through")
    tap.eq(circuit(z), "closed", "4xx answers never open the circuit")
    z.stop()

with section(tap, "resets before a response open the circuit"):
    z = start({"failures": 5, "open_for": Raw("30s")})
    n0 = count(a, "/")
    set_mode(a, all="reset")
    got = open_after_exactly(z, 5, "resets")
    tap.eq(count(a, "/") - n0, 5, "each of the 5 requests reached a once")
    tap.ok(all(x[0] in (200, 502) for x in got),
           "the client gets 502, or 200 from a retry (got %s)" % [x[:2] for x in got])
    more = [one(z) for _ in range(10)]
    tap.eq([x[:2] for x in more], [(200, "b")] * 10, "then all go to b")
    tap.eq(count(a, "/") - n0, 5, "no request reached the open server")
    rx = r"\[warn\] circuit: old/a open: 5 consecutive failures \(last: [^)]*reset"
    tap.ok(wait_log(z, rx), "logged with the last failure: a reset", "no line matches %r" % rx)
    z.stop()

with section(tap, "refused connects open the circuit"):
    z = start({"failures": 5, "open_for": Raw("30s")})
    refuse(a)
    got = open_after_exactly(z, 5, "refused connects")
    tap.eq([x[:2] for x in got], [(200, "b")] * 5,
           "each refused connect is retried: the client sees b's 200")
    rx = r"\[warn\] circuit: old/a open: 5 consecutive failures \(last: [^)]*refused"
    tap.ok(wait_log(z, rx), "logged with the last failure: connect refused", "no line matches %r" % rx)
    need(tap, relisten(a), "a listens again")
    n0 = count(a, "/")
    more = [one(z) for _ in range(5)]
    tap.eq([x[:2] for x in more], [(200, "b")] * 5, "a back, but its circuit is open: all to b")
    tap.eq(count(a, "/") - n0, 0, "no request reached a")
    z.stop()

ALL_KINDS = ["connect", "reset", "invalid", "5xx", "timeout"]
SHORT = {"timeouts": {"upstream_response": Raw("300ms")}}


def timeouts(z, n, what):
    """N requests to a hanging a, one by one: each must reach a and get
    zdmd's 504 (which has no X-Upstream)."""
    n0 = count(a, "/")
    got = [one(z) for _ in range(n)]
    tap.eq([x[0] for x in got], [504] * n, "%s: %d x 504" % (what, n))
    tap.eq(count(a, "/") - n0, n, "%s: all %d reached a" % (what, n))
    return got


with section(tap, "by default a response timeout (504) is not a failure: the circuit stays closed"):
    admin = free_port()
    z = start({"failures": 3, "open_for": Raw("30s")},
              extra=dict(SHORT, admin="127.0.0.1:%d" % admin))
    need(tap, wait_port(admin), "the admin listener accepts")
    set_mode(a, all="hang")
    timeouts(z, 4, "failures + 1 hanging requests")
    tap.eq(circuit(z), "closed", "failures: 3, yet after 4 timeouts the circuit is still closed")
    s = server_state(z, "old", "a") or {}
    tap.eq(s.get("failures"), 4, "status: failures counts the 4 timeouts all the same",
           "entry: %r" % (s,))
    tap.eq(metric(admin, "zdm_upstream_errors_total", pool="old", server="a", kind="timeout"),
           4.0, "zdm_upstream_errors_total{kind=timeout} counts them too")
    set_mode(a, all="ok")
    more = [one(z) for _ in range(3)]
    tap.eq([x[:2] for x in more], [(200, "a")] * 3, "a still takes the old pool's traffic")
    tap.eq(log_lines(z, r"circuit: "), [], "no circuit line in the log")
    # A timeout between counted failures neither counts nor hides them.
    set_mode(a, all=500)
    r1 = [one(z) for _ in range(2)]
    set_mode(a, all="hang")
    r2 = [one(z) for _ in range(2)]
    need(tap, circuit(z) == "closed", "2 x 500 then 2 timeouts: closed")
    set_mode(a, all=500)
    r3 = [one(z)]
    tap.eq([x[0] for x in r1 + r2 + r3], [500, 500, 504, 504, 500], "500, 500, 504, 504, 500")
    tap.eq(circuit(z), "open",
           "the third 500 opens the circuit: the timeouts between did not end the streak")
    rx = r"\[warn\] circuit: old/a open: 3 consecutive failures \(last: 500 response\)"
    tap.ok(wait_log(z, rx), "logged: 3 consecutive failures (last: 500 response)",
           "no line matches %r" % rx)
    normal(a)
    z.stop()

with section(tap, "count with timeout: response timeouts open the circuit; a pool overrides failures"):
    z = start({"failures": 5, "count": ALL_KINDS, "open_for": Raw("30s")},
              extra=SHORT,
              pools={"old": {"servers": [{"address": a.address, "name": "a"}],
                             "circuit_breaker": {"failures": 3}},
                     "new": [b]})
    n0 = count(a, "/")
    set_mode(a, all="hang")
    got = open_after_exactly(z, 3, "response timeouts (pool override failures: 3)")
    tap.eq([x[0] for x in got], [504] * 3, "the client gets zdmd's 504 each time")
    tap.eq(count(a, "/") - n0, 3, "3 requests reached a")
    more = [one(z) for _ in range(5)]
    tap.eq([x[:2] for x in more], [(200, "b")] * 5, "then all go to b")
    tap.ok(max(x[2] for x in more) < 0.25, "at once, without waiting on a (slowest %.0f ms)"
           % (max(x[2] for x in more) * 1000))
    tap.eq(count(a, "/") - n0, 3, "no request reached the open server")
    rx = r"\[warn\] circuit: old/a open: 3 consecutive failures \(last: [^)]*(timeout|timed out)"
    tap.ok(wait_log(z, rx), "logged: 3 consecutive failures (last: ... timeout)", "no line matches %r" % rx)
    normal(a)
    z.stop()

with section(tap, "a pool's count overrides the global one, either way"):
    # old counts timeouts (its own list), new does not (the global one).
    z = start({"failures": 2, "open_for": Raw("30s")}, extra=SHORT,
              pools={"old": {"servers": [{"address": a.address, "name": "a"}],
                             "circuit_breaker": {"count": ALL_KINDS}},
                     "new": [b]},)
    set_mode(a, all="hang")
    n0 = count(a, "/")
    got = open_after_exactly(z, 2, "timeouts, pool old with timeout in its count")
    tap.eq([x[0] for x in got], [504] * 2, "two 504s")
    tap.eq(count(a, "/") - n0, 2, "both reached a")
    z.stop()
    # the global list counts timeouts, old's own list only 5xx
    z = start({"failures": 2, "count": ALL_KINDS, "open_for": Raw("30s")}, extra=SHORT,
              pools={"old": {"servers": [{"address": a.address, "name": "a"}],
                             "circuit_breaker": {"count": ["5xx"]}},
                     "new": [b]})
    set_mode(a, all="hang")
    timeouts(z, 3, "pool old counting only 5xx")
    tap.eq(circuit(z), "closed", "old's count [5xx] leaves timeouts out: still closed")
    set_mode(a, all="reset")
    r = [one(z) for _ in range(3)]
    tap.eq(circuit(z), "closed", "nor are resets counted (%s)" % [x[:2] for x in r])
    set_mode(a, all=503)
    got = open_after_exactly(z, 2, "503s, pool old counting only 5xx")
    normal(a)
    z.stop()

with section(tap, "count: [] never opens"):
    z = start({"failures": 1, "count": [], "open_for": Raw("30s")}, extra=SHORT)
    set_mode(a, all=500)
    r = [one(z) for _ in range(3)]
    set_mode(a, all="hang")
    r += [one(z) for _ in range(2)]
    tap.eq([x[0] for x in r], [500] * 3 + [504] * 2, "3 x 500, 2 x 504")
    tap.eq(circuit(z), "closed", "failures: 1 with an empty count: still closed")
    normal(a)
    z.stop()

with section(tap, "a half-open probe that times out (not counted) frees its slot"):
    z = start({"failures": 2, "open_for": Raw("1s"), "half_open_probes": 1}, extra=SHORT)
    set_mode(a, all=500)
    one(z)
    one(z)
    need(tap, circuit(z) == "open", "2 x 500 open the circuit")
    need(tap, wait_state(z, "old", "a", "circuit", "half_open", 2.5) is not None, "half-open")
    set_mode(a, all="hang")
    n0 = count(a, "/")
    r = one(z)
    tap.eq((r[0], count(a, "/") - n0), (504, 1), "the probe reaches a and times out (504)")
    tap.eq(circuit(z), "half_open", "an uncounted probe outcome neither closes nor re-opens it")
    r = one(z)
    tap.eq((r[0], count(a, "/") - n0), (504, 2),
           "its slot is free again: the next request is a probe too, and reaches a")
    set_mode(a, all="ok")
    r = one(z)
    tap.eq(r[:2], (200, "a"), "a third probe succeeds")
    tap.eq(circuit(z), "closed", "and closes the circuit")
    z.stop()

with section(tap, "an open server is skipped within its pool"):
    z = start({"failures": 3, "open_for": Raw("30s")}, pools={"old": [a1, a2], "new": [b]})
    n1, n2 = count(a1, "/"), count(a2, "/")
    set_mode(a1, all=500)
    got = [one(z) for _ in range(20)]
    tap.eq(count(a1, "/") - n1, 3, "a1 got exactly 3 requests, then its circuit opened")
    tap.eq(count(a2, "/") - n2, 17, "a2 got the other 17")
    tap.eq(tally(got), {"a1": 3, "a2": 17}, "answers: 3 from a1, 17 from a2, none from b")
    tap.eq(circuit(z, "old", "a1"), "open", "status: a1 open")
    tap.eq(circuit(z, "old", "a2"), "closed", "status: a2 closed")
    normal(a1)
    z.stop()

OPEN_FOR = 1.0
with section(tap, "half-open admits exactly half_open_probes; a success closes"):
    z = start({"failures": 2, "open_for": Raw("1s"), "half_open_probes": 2})
    n0 = count(a, "/")
    set_mode(a, all=500)
    one(z)
    one(z)
    t_open = time.monotonic()
    need(tap, circuit(z) == "open", "2 failures open the circuit")
    set_mode(a, all="slow:1500")     # the probes will take 1.5s and succeed
    time.sleep(OPEN_FOR / 2)        # the state in the middle of open_for
    tap.eq(circuit(z), "open", "still open half-way through open_for")
    dt = wait_state(z, "old", "a", "circuit", "half_open", OPEN_FOR + 1.5, t0=t_open)
    tap.ok(dt is not None and OPEN_FOR - 0.1 <= dt <= OPEN_FOR + 0.5,
           "half_open after open_for (%s after opening, open_for %.1fs)"
           % ("%.2fs" % dt if dt is not None else "never", OPEN_FOR))
    wait_for(lambda: time.monotonic() - t_open > OPEN_FOR + 0.1, timeout=OPEN_FOR + 1)
    n1 = count(a, "/")
    res = concurrent(z, 10)
    reached = count(a, "/") - n1
    tap.eq(reached, 2, "10 concurrent requests while half-open: exactly 2 reached a",
           "answers: %r" % (res,))
    t = tally(res)
    tap.eq((t.get("a", 0), t.get("b", 0)), (2, 8), "2 answered by a (the probes), 8 by b")
    tap.ok(all(x[0] == 200 for x in res), "all 10 answered 200 (%s)" % [x[0] for x in res])
    fast = [x[2] for x in res if x[1] == "b"]
    tap.ok(fast and max(fast) < 1.0, "the others were not held back behind the probes (slowest %s)"
           % ("%.2fs" % max(fast) if fast else "-"))
    tap.eq(circuit(z), "closed", "a successful probe closes the circuit")
    s = server_state(z, "old", "a") or {}
    bad = change_problems(s.get("circuit_change"), None)
    tap.ok(not bad, "status circuit_change tells the close", "; ".join(bad) + "\nentry: %r" % (s,))
    tap.ok(log_lines(z, r"\[info\] circuit: old/a half-open"), "logged: [info] circuit: old/a half-open ...")
    tap.ok(log_lines(z, r"\[info\] circuit: old/a closed"), "logged: [info] circuit: old/a closed ...")
    normal(a)
    n2 = count(a, "/")
    got = [one(z) for _ in range(10)]
    tap.eq([x[:2] for x in got], [(200, "a")] * 10, "closed again: the old pool's traffic goes to a")
    tap.eq(count(a, "/") - n2, 10, "and reaches it")
    z.stop()

with section(tap, "two workers and a busy control plane: still exactly half_open_probes"):
    # The probe slots are taken without the control plane's lock, so the
    # limit holds while /metrics (read under that lock) is fetched
    # without pause by two clients.
    admin = free_port()
    z = start({"failures": 2, "open_for": Raw("1s"), "half_open_probes": 1},
              extra={"workers": 2, "admin": "127.0.0.1:%d" % admin})
    need(tap, wait_port(admin), "the admin listener accepts")
    stop_hammer = threading.Event()

    def hammer():
        with Client(admin, timeout=5) as c:
            while not stop_hammer.is_set():
                c.request("GET", "/metrics")

    hammers = [threading.Thread(target=hammer, daemon=True) for _ in range(2)]
    for t in hammers:
        t.start()
    reached = []
    for cycle in range(4):
        set_mode(a, all=500)
        one(z)
        one(z)
        need(tap, circuit(z) == "open", "cycle %d: 2 failures open the circuit" % cycle)
        set_mode(a, all="slow:400")
        need(tap, wait_state(z, "old", "a", "circuit", "half_open", OPEN_FOR + 1.5) is not None,
             "cycle %d: half-open" % cycle)
        n1 = count(a, "/")
        res = concurrent(z, 20)
        reached.append(count(a, "/") - n1)
        need(tap, wait_state(z, "old", "a", "circuit", "closed", 3) is not None,
             "cycle %d: the probe closes the circuit" % cycle)
    stop_hammer.set()
    for t in hammers:
        t.join(5)
    tap.eq(reached, [1] * 4, "20 concurrent requests while half-open, 4 times: 1 reached a each time")
    z.stop()

with section(tap, "a failed probe re-opens the circuit"):
    z = start({"failures": 2, "open_for": Raw("1s"), "half_open_probes": 1})
    set_mode(a, all=500)
    one(z)
    one(z)
    need(tap, circuit(z) == "open", "2 failures open the circuit")
    dt = wait_state(z, "old", "a", "circuit", "half_open", OPEN_FOR + 1.5)
    need(tap, dt is not None, "half_open after open_for")
    n0 = count(a, "/")
    wall0 = time.time()
    r = one(z)
    tap.eq(r[:2], (500, "a"), "the probe reaches a and fails (500)")
    t_reopen = time.monotonic()
    tap.eq(circuit(z), "open", "a failed probe re-opens the circuit")
    s = server_state(z, "old", "a") or {}
    bad = change_problems(s.get("circuit_change"), None, after=wall0, before=time.time())
    tap.ok(not bad, "status circuit_change tells the re-open", "; ".join(bad) + "\nentry: %r" % (s,))
    more = [one(z) for _ in range(5)]
    tap.eq([x[:2] for x in more], [(200, "b")] * 5, "re-opened: the next 5 go to b")
    tap.eq(count(a, "/") - n0, 1, "only the probe reached a")
    tap.ok(len(log_lines(z, r"\[warn\] circuit: old/a open")) >= 2,
           "the re-open is logged as [warn] circuit: old/a open ...")
    set_mode(a, all="ok")
    dt = wait_state(z, "old", "a", "circuit", "half_open", OPEN_FOR + 1.5, t0=t_reopen)
    tap.ok(dt is not None and dt >= OPEN_FOR - 0.1,
           "half-open again a full open_for after the re-open (%s)"
           % ("%.2fs" % dt if dt is not None else "never"))
    r = one(z)
    tap.eq(r[:2], (200, "a"), "the next probe succeeds")
    tap.eq(circuit(z), "closed", "and closes the circuit")
    z.stop()

with section(tap, "visible: /metrics and zdmctl follow the circuit"):
    admin = free_port()
    z = start({"failures": 2, "open_for": Raw("1s"), "half_open_probes": 1},
              extra={"admin": "127.0.0.1:%d" % admin})
    need(tap, wait_port(admin), "the admin listener accepts")
    st = lambda: metric(admin, "zdm_circuit_state", pool="old", server="a")
    tap.eq(st(), 0.0, "zdm_circuit_state{pool=old,server=a} 0 while closed")
    set_mode(a, all=500)
    one(z)
    one(z)
    need(tap, circuit(z) == "open", "2 failures open the circuit")
    tap.eq(st(), 1.0, "zdm_circuit_state 1 while open")
    tap.eq(metric(admin, "zdm_server_up", pool="old", server="a"), 1.0,
           "zdm_server_up stays 1: the circuit is not the health")
    rc, out, err = zdmctl(["status"], sock=z.sock_path)
    row = [ln for ln in out.splitlines() if re.search(r"\ba\b", ln) and a.address in ln]
    tap.ok(rc == 0 and row and re.search(r"\bopen\b", row[0]), "zdmctl status: a's row says open",
           out + err)
    tap.ok(re.search(r"old/a: circuit open since \S+: .*2 consecutive failures", out),
           "zdmctl status: a line says when and why old/a's circuit opened", out)
    normal(a)
    need(tap, wait_state(z, "old", "a", "circuit", "half_open", 2.5) is not None, "half-open after 1s")
    tap.eq(st(), 2.0, "zdm_circuit_state 2 while half-open")
    one(z)
    tap.eq(circuit(z), "closed", "the probe closes it")
    tap.eq(st(), 0.0, "zdm_circuit_state 0 once closed")
    out = zdmctl(["status"], sock=z.sock_path)[1]
    tap.ok(not re.search(r"old/a: circuit", out), "zdmctl status: no trouble line once closed", out)
    z.stop()

with section(tap, "a probe whose client goes away does not keep the slot"):
    z = start({"failures": 2, "open_for": Raw("1s"), "half_open_probes": 1},
              extra={"timeouts": {"upstream_response": Raw("2s")}})
    set_mode(a, all=500)
    one(z)
    one(z)
    need(tap, circuit(z) == "open", "2 failures open the circuit")
    set_mode(a, all="slow:800")
    need(tap, wait_state(z, "old", "a", "circuit", "half_open", 2.5) is not None, "half-open")
    n0 = count(a, "/")
    c = Client(z.port)
    c.send(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")
    wait_for(lambda: count(a, "/") > n0, timeout=2)
    need(tap, count(a, "/") - n0 == 1, "the probe reached a")
    c.reset()          # the client of the probe vanishes
    # Whatever zdmd makes of the abandoned probe, the server must not stay
    # half-open with its only slot taken: within open_for + the probe's
    # time, a new request reaches a again and closes the circuit.
    set_mode(a, all="ok")
    deadline = time.monotonic() + 4
    got = None
    while time.monotonic() < deadline:
        r = one(z)
        if r[1] == "a":
            got = r
            break
        time.sleep(0.1)
    tap.ok(got is not None, "a later request reaches a again (%s)" % (got,),
           "circuit: %s" % circuit(z))
    tap.ok(wait_state(z, "old", "a", "circuit", "closed", 1) is not None,
           "and the circuit closes (now %s)" % circuit(z))
    z.stop()

with section(tap, "connect timeouts open the circuit"):
    # A listener whose accept queue is full: further SYNs are dropped, so a
    # connect to it times out (see test_retry.py).
    hole = syn_blackhole()
    blackholed = hole is not None
    if not blackholed:
        tap.skip("connect timeouts open the circuit", "cannot make a listener that drops SYNs here")
    else:
        z = start({"failures": 3, "open_for": Raw("30s")},
                  extra={"timeouts": {"connect": Raw("200ms")}},
                  pools={"old": [Server(hole[0], name="bh")], "new": [b]})
        got = open_after_exactly(z, 3, "connect timeouts", name="bh")
        tap.eq([x[:2] for x in got], [(200, "b")] * 3, "each timed-out connect is retried on b")
        more = [one(z) for _ in range(5)]
        tap.ok(all(x[:2] == (200, "b") for x in more) and max(x[2] for x in more) < 0.15,
               "then no request waits for the connect timeout (slowest %.0f ms)"
               % (max(x[2] for x in more) * 1000))
        rx = r"\[warn\] circuit: old/bh open: 3 consecutive failures \(last: [^)]*(timeout|timed out)"
        tap.ok(wait_log(z, rx), "logged with the last failure: a connect timeout", "no line matches %r" % rx)
        z.stop()
    for k in (hole[1] if hole else []):
        k.close()

with section(tap, "failures: 0 never opens"):
    z = start({"failures": 0})
    n0 = count(a, "/")
    set_mode(a, all=500)
    got = [one(z) for _ in range(20)]
    tap.eq([x[:2] for x in got], [(500, "a")] * 20, "20 x 500, all from a")
    tap.eq(count(a, "/") - n0, 20, "all 20 reached a")
    s = server_state(z, "old", "a") or {}
    tap.eq(s.get("circuit"), "closed", "the circuit stays closed")
    tap.eq(s.get("circuit_change", "missing"), None, "circuit_change stays null")
    tap.eq(log_lines(z, r"circuit: "), [], "no circuit line in the log")
    normal(a)
    z.stop()

tap.done()
