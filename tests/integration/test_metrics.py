#!/usr/bin/env python3
"""Prometheus metrics on the admin listener (SPEC §7, issue 5 items 2, 6).

/metrics is read line by line with a strict parser of the text exposition
format (tests/integration/obs.py): HELP and TYPE before a family's samples,
valid metric and label names, escaped label values, grouped families, no
duplicate series, histograms with cumulative buckets ending at +Inf equal
to _count. Then the counters are compared with what the clients actually
got: per pool, server and status class, pinned, the histogram's count and
bucket placement, under keep-alive, pipelining, retries, upstream 5xx,
invalid responses, timeouts, zdmd's own 503s and 400s; the gauges follow
set-weight, health checks, the breaker, open connections and reloads.
"""

import collections
import math
import signal
import time

from zdmtest import (TAP, Upstream, Server, Client, Raw, dead_address,
                     build_request, wait_for)
from faults import section, need, set_mode, normal, server_state
import obs

tap = TAP(deadline=58)
a, b, a2 = Upstream("a"), Upstream("b"), Upstream("a2")
CANARY = [("canary", "true")]
PINS = [{"header": "canary", "value": "true", "pool": "new"}]
CLASSES = ("1xx", "2xx", "3xx", "4xx", "5xx")   # 1xx: the 101 of an upgrade (SPEC §7)


def req(port, path="/", headers=None):
    """One GET on a new connection, closed after: the response."""
    with Client(port, timeout=5) as c:
        return c.request("GET", path, headers)


def klass(status):
    return "%dxx" % (status // 100)


def delta(m1, m0, name, **labels):
    return m1.total(name, **labels) - m0.total(name, **labels)


def series(m, name):
    """{tuple(sorted labels): value} of every sample NAME."""
    return {tuple(sorted(s.labels.items())): s.value for s in m.find(name)}


def check_consistent(m, pools, what):
    """Per pool: the requests counted by status class equal the histogram's
    count (every answered request of a pool is in both)."""
    got = {p: (m.total("zdm_requests_total", pool=p),
               m.value("zdm_request_duration_seconds_count", pool=p)) for p in pools}
    tap.ok(all(x == y for x, y in got.values()),
           "%s: per pool, sum of zdm_requests_total == zdm_request_duration_seconds_count" % what,
           "pool: (requests_total, histogram count) = %r" % got)


class Sent:
    """What the clients got: counts per (pool, server, class), per pool."""

    def __init__(self):
        self.by = collections.Counter()
        self.pool = collections.Counter()
        self.pinned = collections.Counter()
        self.durations = collections.defaultdict(list)

    def add(self, r, pinned=False, dt=None):
        pool = r.get("x-zdm-pool")
        srv = r.get("x-upstream")
        self.by[(pool, srv, klass(r.status))] += 1
        self.pool[pool] += 1
        if pinned:
            self.pinned[pool] += 1
        if dt is not None:
            self.durations[pool].append(dt)


# -- 1. the format and every name of SPEC §7 -------------------------------------

SPEC1 = {"expose_pool_header": True,
         "pools": {"old": [a], "new": [b]},
         "split": {"old": 70, "new": 30},
         "pins": PINS,
         "timeouts": {"upstream_response": Raw("400ms")},
         "circuit_breaker": {"failures": 0}}     # never opens here
z = obs.start(tap, SPEC1)

with section(tap, "the exposition format and SPEC §7's names"):
    with z.client() as c:
        c.request("GET", "/")
    m = obs.scrape(z)
    tap.eq(m.errors, [], "/metrics passes the strict line-by-line format check")
    for name, typ in sorted(obs.SPEC_METRICS.items()):
        tap.eq(m.types.get(name), typ, "# TYPE %s %s" % (name, typ))
        tap.ok(m.helps.get(name), "# HELP %s with a text" % name)
        sample_names = {name} if typ != "histogram" else \
            {name + "_bucket", name + "_sum", name + "_count"}
        tap.ok(all(m.find(n) for n in sample_names), "%s has samples" % name)
    lab = lambda n: {tuple(sorted(s.labels)) for s in m.find(n)}
    tap.eq(lab("zdm_requests_total"), {("code", "pool", "route", "server")},
           "zdm_requests_total labels: route, pool, server, code")
    tap.eq({s.labels["route"] for s in m.find("zdm_requests_total")}, {"default"},
           "without routes: every series is of the route 'default'")
    tap.ok({s.labels["code"] for s in m.find("zdm_requests_total")} <= set(CLASSES),
           "zdm_requests_total code is one of 1xx|2xx|3xx|4xx|5xx",
           sorted({s.labels["code"] for s in m.find("zdm_requests_total")}))
    tap.eq({(s.labels["pool"], s.labels["server"], s.labels["code"])
            for s in m.find("zdm_requests_total") if s.labels["server"]},
           {(p, sv, c) for p, sv in (("old", "a"), ("new", "b")) for c in CLASSES},
           "zdm_requests_total: every pool/server with every code class, from the start")
    tap.eq(lab("zdm_request_duration_seconds_bucket"), {("le", "pool", "route")},
           "zdm_request_duration_seconds_bucket labels: route, pool, le")
    tap.eq({s.labels["pool"] for s in m.find("zdm_request_duration_seconds_count")},
           {"old", "new"}, "a latency histogram per pool")
    les = [x[0] for x in m.buckets("zdm_request_duration_seconds", pool="old")]
    tap.ok(les and les[0] <= 0.001 and 10 in les and les[-1] == math.inf,
           "histogram buckets from 1 ms to 10 s, then +Inf", les)
    tap.eq(lab("zdm_pool_weight_percent"), {("pool", "route")},
           "zdm_pool_weight_percent labels: route, pool")
    for n in ("zdm_server_up", "zdm_circuit_state"):
        tap.eq(lab(n), {("pool", "server")}, "%s labels: pool, server" % n)
        tap.eq({(s.labels["pool"], s.labels["server"]) for s in m.find(n)},
               {("old", "a"), ("new", "b")}, "%s: one series per server" % n)
    tap.eq(sorted(s.value for s in m.find("zdm_server_up")), [1, 1], "zdm_server_up 1 for both")
    tap.eq(sorted(s.value for s in m.find("zdm_circuit_state")), [0, 0],
           "zdm_circuit_state 0 (closed) for both")
    tap.eq(lab("zdm_pinned_requests_total"), {("pool", "route")},
           "zdm_pinned_requests_total labels: route, pool")
    tap.eq(lab("zdm_upstream_errors_total"), {("kind", "pool", "server")},
           "zdm_upstream_errors_total labels: pool, server, kind")
    tap.eq({s.labels["kind"] for s in m.find("zdm_upstream_errors_total")},
           {"connect", "timeout", "reset", "invalid"},
           "zdm_upstream_errors_total kind: connect|timeout|reset|invalid")
    tap.eq(lab("zdm_client_connections"), {()}, "zdm_client_connections has no labels")
    tap.eq({s.labels.get("result") for s in m.find("zdm_config_reloads_total")}, {"ok", "error"},
           "zdm_config_reloads_total{result=ok|error}, both from the start")
    tap.eq(m.total("zdm_config_reloads_total"), 0, "no reload yet")
    tap.eq(m.value("zdm_pool_weight_percent", pool="old"), 70, "zdm_pool_weight_percent old 70")
    tap.eq(m.value("zdm_pool_weight_percent", pool="new"), 30, "zdm_pool_weight_percent new 30")
    tap.ok(m.response.get("content-type", ) and
           obs.PROM_CONTENT_TYPE.match(m.response.get("content-type")),
           "Content-Type of the text format", m.response.get("content-type"))

# -- 2. counters equal what was sent --------------------------------------------------

with section(tap, "counters equal what was sent (keep-alive, pipelining, pins, classes)"):
    m0 = obs.scrape(z)
    sent = Sent()
    # Keep-alive: 3 connections, 20 requests each, mixed paths and classes.
    paths = ["/", "/status/404", "/", "/status/301", "/size/1000", "/status/204",
             "/", "/status/410", "/", "/chunked/5000"]
    for k in range(3):
        with z.client() as c:
            for i in range(20):
                p = paths[(i + k) % len(paths)]
                t0 = time.monotonic()
                r = c.request("GET", p)
                sent.add(r, dt=time.monotonic() - t0)
    # HEAD and POST with a body.
    with z.client() as c:
        for i in range(4):
            sent.add(c.request("HEAD", "/size/100"))
            sent.add(c.request("POST", "/echo", body=b"x" * 300))
    # Pinned: K requests with canary: true, over keep-alive.
    K = 9
    with z.client() as c:
        for i in range(K):
            sent.add(c.request("GET", "/" if i % 3 else "/status/404", CANARY), pinned=True)
    # Pipelining: 3 requests in one write, 4 times (one with the pin).
    for k in range(4):
        with z.client() as c:
            hs = CANARY if k == 0 else None
            c.send(build_request("GET", "/") + build_request("GET", "/status/500", hs) +
                   build_request("GET", "/size/10"))
            for j in range(3):
                r = c.read_response()
                sent.add(r, pinned=(k == 0 and j == 1))
    total = sum(sent.pool.values())
    tap.ok(None not in sent.pool, "every response carried X-Zdm-Pool", dict(sent.pool))
    m1 = obs.scrape(z)
    tap.eq(m1.errors, [], "/metrics still well-formed after traffic")
    got = {}
    for (p, sv, c) in set(sent.by) | {(p, sv, c) for p, sv in (("old", "a"), ("new", "b")) for c in CLASSES}:
        got[(p, sv, c)] = delta(m1, m0, "zdm_requests_total", pool=p, server=sv, code=c)
    want = {key: sent.by.get(key, 0) for key in got}
    tap.eq(got, want, "zdm_requests_total{pool,server,code} grew by exactly what the clients got "
           "(%d requests: old %d, new %d)" % (total, sent.pool["old"], sent.pool["new"]))
    tap.eq(delta(m1, m0, "zdm_requests_total"), total, "zdm_requests_total grew by %d in all" % total)
    tap.eq({p: delta(m1, m0, "zdm_pinned_requests_total", pool=p) for p in ("old", "new")},
           {"old": 0, "new": sent.pinned["new"]},
           "zdm_pinned_requests_total: new grew by the %d pinned requests, old by 0" % sent.pinned["new"])
    for p in ("old", "new"):
        tap.eq(delta(m1, m0, "zdm_request_duration_seconds_count", pool=p), sent.pool[p],
               "histogram _count{pool=%s} grew by its %d requests" % (p, sent.pool[p]))
        b0 = dict(m0.buckets("zdm_request_duration_seconds", pool=p))
        b1 = dict(m1.buckets("zdm_request_duration_seconds", pool=p))
        tap.eq(b1.get(math.inf, 0) - b0.get(math.inf, 0), sent.pool[p],
               "histogram +Inf bucket{pool=%s} grew by %d" % (p, sent.pool[p]))
        ds = delta(m1, m0, "zdm_request_duration_seconds_sum", pool=p)
        # Each duration is within what the client measured around it (plus
        # slack); the whole run bounds the sum from above.
        tap.ok(0 < ds < 5.0, "histogram _sum{pool=%s} grew by a plausible %.4fs" % (p, ds))
    check_consistent(m1, ("old", "new"), "after the mixed traffic")

with section(tap, "counters under concurrency"):
    import threading
    m0 = obs.scrape(z)
    sent = Sent()
    lock = threading.Lock()

    def worker(i):
        with Client(z.port, timeout=10) as c:
            for j in range(6):
                hs = CANARY if (i + j) % 4 == 0 else None
                r = c.request("GET", "/" if j % 3 else "/status/404", hs)
                with lock:
                    sent.add(r, pinned=bool(hs))
    ths = [threading.Thread(target=worker, args=(i,), daemon=True) for i in range(25)]
    for t in ths:
        t.start()
    for t in ths:
        t.join(20)
    m1 = obs.scrape(z)
    tap.eq(sum(sent.pool.values()), 150, "150 requests on 25 concurrent connections answered")
    got = {k: delta(m1, m0, "zdm_requests_total", pool=k[0], server=k[1], code=k[2]) for k in sent.by}
    tap.eq(got, dict(sent.by), "zdm_requests_total grew by exactly what the clients got")
    tap.eq(delta(m1, m0, "zdm_pinned_requests_total", pool="new"), sent.pinned["new"],
           "zdm_pinned_requests_total{new} grew by the %d pinned" % sent.pinned["new"])
    tap.eq({p: delta(m1, m0, "zdm_request_duration_seconds_count", pool=p) for p in ("old", "new")},
           {p: sent.pool[p] for p in ("old", "new")}, "histogram counts per pool")

with section(tap, "a 101 is counted as 1xx once its tunnel ends"):
    m0 = obs.scrape(z)
    with z.client() as c:
        c.send(b"GET /upgrade HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"
               b"canary: true\r\n\r\n")
        r = c.read_response()
        need(tap, r.status == 101, "a pinned upgrade answered 101", r)
        c.send(b"ping")
        while len(c.buf) < 4:
            c._fill()
    tap.ok(wait_for(lambda: obs.scrape(z).value("zdm_client_connections") == 0, timeout=5),
           "the tunnel is closed")
    m1 = obs.scrape(z)
    tap.eq({c: delta(m1, m0, "zdm_requests_total", pool="new", server="b", code=c) for c in CLASSES},
           {c: int(c == "1xx") for c in CLASSES},
           "zdm_requests_total{new,b}: code=1xx grew by 1, the others by 0")

with section(tap, "histogram buckets place slow requests"):
    m0 = obs.scrape(z)
    t0 = time.monotonic()
    with z.client(timeout=5) as c:
        got = [c.request("GET", "/slow/150", CANARY).status for _ in range(3)]
        fast = [c.request("GET", "/", CANARY).status for _ in range(5)]
    wall = time.monotonic() - t0
    need(tap, got == [200] * 3 and fast == [200] * 5, "3 slow and 5 fast pinned requests answered 200")
    m1 = obs.scrape(z)
    b0 = dict(m0.buckets("zdm_request_duration_seconds", pool="new"))
    b1 = dict(m1.buckets("zdm_request_duration_seconds", pool="new"))
    d = {le: b1[le] - b0.get(le, 0) for le in b1}
    tap.eq(d.get(0.1), 5, "le=0.1 grew by the 5 fast requests only", d)
    tap.eq(d.get(0.25), 8, "le=0.25 grew by all 8 (the slow ones took ~150 ms)", d)
    ds = delta(m1, m0, "zdm_request_duration_seconds_sum", pool="new")
    tap.ok(0.45 <= ds <= wall + 0.05, "_sum grew by %.3fs: at least 3 x 150 ms, at most the %.3fs it all took"
           % (ds, wall))

# -- 3. errors ---------------------------------------------------------------------------

with section(tap, "5xx from the upstream, invalid responses, timeouts"):
    m0 = obs.scrape(z)
    set_mode(b, all=500)
    st = []
    with z.client() as c:
        for _ in range(6):
            st.append(c.request("GET", "/", CANARY).status)
    normal(b)
    need(tap, st == [500] * 6, "6 pinned requests get b's 500", st)
    m1 = obs.scrape(z)
    tap.eq(delta(m1, m0, "zdm_requests_total", pool="new", server="b", code="5xx"), 6,
           "zdm_requests_total{new,b,5xx} grew by 6")
    tap.eq(delta(m1, m0, "zdm_requests_total", code="2xx"), 0, "no 2xx counted for them")
    tap.eq(delta(m1, m0, "zdm_upstream_errors_total"), 0,
           "a 5xx answer is not an upstream error (no zdm_upstream_errors_total)")
    tap.eq(delta(m1, m0, "zdm_request_duration_seconds_count", pool="new"), 6,
           "histogram count{new} grew by 6")

    m0 = m1
    set_mode(b, all="invalid")
    st = [req(z.port, "/", CANARY).status for _ in range(3)]
    normal(b)
    tap.eq(st, [502] * 3, "3 pinned requests to an upstream answering garbage: 502")
    m1 = obs.scrape(z)
    tap.eq(m1.value("zdm_upstream_errors_total", pool="new", server="b", kind="invalid") -
           m0.value("zdm_upstream_errors_total", pool="new", server="b", kind="invalid"), 3,
           "zdm_upstream_errors_total{new,b,invalid} grew by 3")
    tap.eq(delta(m1, m0, "zdm_requests_total", pool="new", code="5xx"), 3,
           "the three 502s counted as 5xx for pool new")
    tap.eq(delta(m1, m0, "zdm_requests_total"), 3, "and nothing else")

    m0 = m1
    set_mode(b, all="hang")
    res = []
    for _ in range(2):
        with Client(z.port, timeout=5) as c:
            r = c.request("GET", "/", CANARY)
            res.append(r.status)
    normal(b)
    m1 = obs.scrape(z)
    tap.eq(res, [504, 504], "2 pinned requests to a hanging upstream: 504 after upstream_response")
    tap.ok(m1.value("zdm_upstream_errors_total", pool="new", server="b", kind="timeout") -
           m0.value("zdm_upstream_errors_total", pool="new", server="b", kind="timeout") >= 2,
           "zdm_upstream_errors_total{new,b,timeout} grew by at least 2 (once per attempt)")
    tap.eq(delta(m1, m0, "zdm_requests_total", code="5xx"), res.count(504),
           "the 504s counted as 5xx (once per request)")
    tap.eq(delta(m1, m0, "zdm_requests_total"), len(res), "one count per request")
    check_consistent(m1, ("old", "new"), "after upstream errors")

    m0 = m1
    set_mode(b, all="reset")
    res = [req(z.port, "/", CANARY).status for _ in range(3)]
    normal(b)
    m1 = obs.scrape(z)
    tap.ok(m1.value("zdm_upstream_errors_total", pool="new", server="b", kind="reset") -
           m0.value("zdm_upstream_errors_total", pool="new", server="b", kind="reset") >= 3,
           "b resets before answering: zdm_upstream_errors_total{new,b,reset} grew by at least 3")
    tap.eq(delta(m1, m0, "zdm_requests_total"), 3, "one count per request (answers %r)" % res)
    tap.eq(delta(m1, m0, "zdm_requests_total", code="5xx"), sum(1 for x in res if x >= 500),
           "the 5xx answers among them counted as 5xx")
    check_consistent(m1, ("old", "new"), "after resets")

with section(tap, "503 and 400 made by zdmd"):
    m0 = obs.scrape(z)
    need(tap, z.ctl("disable new/b").get("ok"), "disable new/b")
    st = [req(z.port, "/", CANARY).status for _ in range(4)]
    tap.eq(st, [503] * 4, "pinned to new with no available server: 503")
    m1 = obs.scrape(z)
    tap.eq(delta(m1, m0, "zdm_requests_total", code="5xx"), 4,
           "the four 503s are counted as 5xx")
    tap.eq(delta(m1, m0, "zdm_requests_total", pool="new", code="5xx"), 4,
           "under pool new (the pool the pin chose)")
    tap.eq(delta(m1, m0, "zdm_pinned_requests_total", pool="new"), 4,
           "and as pinned requests of new (routed by the pin, answered 503)")
    need(tap, z.ctl("disable old/a").get("ok"), "disable old/a too")
    st = [req(z.port).status for _ in range(3)]
    tap.eq(st, [503] * 3, "no server anywhere: 503")
    m2 = obs.scrape(z)
    tap.eq(delta(m2, m1, "zdm_requests_total", code="5xx"), 3, "those three 503s are counted as 5xx")
    tap.eq(m2.errors, [], "/metrics well-formed with self-made answers (server=\"\")")
    z.ctl("enable new/b")
    z.ctl("enable old/a")
    with Client(z.port) as c:
        c.send(b"GET / HTTP/1.1\r\nHost: x\r\nBad Header\r\n\r\n")
        r = c.read_response()
    tap.eq(r.status, 400, "a malformed request gets 400")
    m3 = obs.scrape(z)
    tap.eq(delta(m3, m2, "zdm_requests_total", code="4xx"), 1, "the 400 is counted as 4xx")
    tap.eq(delta(m3, m2, "zdm_requests_total"), 1, "and only it")
    check_consistent(m3, ("old", "new"), "after self-made answers")

with section(tap, "zdm_pool_weight_percent follows set-weight"):
    for cmd, want in (("set-weight new 25", {"old": 75, "new": 25}),
                      ("set-weight new 12.5", {"old": 87.5, "new": 12.5}),
                      ("promote new", {"old": 0, "new": 100}),
                      ("rollback", {"old": 100, "new": 0})):
        ans = z.ctl(cmd)
        m = obs.scrape(z)
        tap.eq({p: m.value("zdm_pool_weight_percent", pool=p) for p in ("old", "new")}, want,
               "after %s: %r" % (cmd, want), ans)

with section(tap, "zdm_client_connections counts open client connections"):
    z.ctl("set-weight new 30")
    need(tap, obs.wait_metric(z, "zdm_client_connections", 0) == 0, "0 before")
    conns = [Client(z.port) for _ in range(3)]
    for c in conns:
        c.request("GET", "/")
    tap.eq(obs.wait_metric(z, "zdm_client_connections", 3), 3,
           "3 keep-alive connections after a request each: 3")
    idle = Client(z.port)
    tap.eq(obs.wait_metric(z, "zdm_client_connections", 4), 4,
           "plus one connected but silent: 4")
    slow = Client(z.port)
    slow.send(b"GET / HTTP/1.1\r\nHost: x\r\n")      # the head not finished yet
    tap.eq(obs.wait_metric(z, "zdm_client_connections", 5), 5,
           "plus one in the middle of a request head: 5")
    for c in conns:
        c.close()
    idle.close()
    tap.eq(obs.wait_metric(z, "zdm_client_connections", 1), 1, "after 4 closes: 1")
    slow.send(b"\r\n")
    tap.eq(slow.read_response().status, 200, "the unfinished request completes")
    slow.close()
    tap.eq(obs.wait_metric(z, "zdm_client_connections", 0), 0, "all closed: 0")
z.stop()

# -- 4. retries ------------------------------------------------------------------------------

with section(tap, "a retry after a refused connect is counted once"):
    normal(a2)
    x = Server(dead_address(), name="x")
    zr = obs.start(tap, {"expose_pool_header": True,
                          "pools": {"old": [x, Server(a2.address, name="a2")], "new": [b]},
                          "split": {"old": 100, "new": 0},
                          "circuit_breaker": {"failures": 0}})
    m0 = obs.scrape(zr)
    N = 12
    res = []
    with zr.client() as c:
        for _ in range(N):
            r = c.request("GET", "/")
            res.append((r.status, r.get("x-upstream")))
    need(tap, res == [(200, "a2")] * N, "all %d requests answered by a2 (x refuses)" % N, res)
    m1 = obs.scrape(zr)
    tap.eq(m1.errors, [], "/metrics well-formed")
    tap.eq(delta(m1, m0, "zdm_requests_total", pool="old", server="a2", code="2xx"), N,
           "zdm_requests_total{old,a2,2xx} grew by %d: each request once" % N)
    tap.eq(delta(m1, m0, "zdm_requests_total"), N, "zdm_requests_total grew by %d in all" % N)
    tap.eq(delta(m1, m0, "zdm_requests_total", server="x"), 0, "nothing counted as answered by x")
    tap.eq(delta(m1, m0, "zdm_request_duration_seconds_count", pool="old"), N,
           "histogram count{old} grew by %d" % N)
    ce = delta(m1, m0, "zdm_upstream_errors_total", pool="old", server="x", kind="connect")
    tap.ok(N // 2 - 1 <= ce <= N, "zdm_upstream_errors_total{old,x,connect} grew by %r "
           "(round robin tried x for about half of the %d)" % (ce, N))
    tap.eq(delta(m1, m0, "zdm_upstream_errors_total", server="a2"), 0, "no error counted for a2")
    tap.eq(delta(m1, m0, "zdm_upstream_errors_total", server="x") - ce, 0,
           "x's errors are all of kind connect")
    zr.stop()

# -- 5. health, breaker, reloads ------------------------------------------------------------

with section(tap, "zdm_server_up and zdm_circuit_state follow health checks and the breaker"):
    for u in (a, b):
        normal(u)
    spec2 = {"pools": {"old": [a], "new": [b]},
             "split": {"old": 100, "new": 0},
             "pins": PINS,
             "health_check": {"path": "/health", "interval": Raw("200ms"), "timeout": Raw("150ms"),
                              "rise": 1, "fall": 1},
             "circuit_breaker": {"failures": 2, "open_for": Raw("1s"), "half_open_probes": 1}}
    z2 = obs.start(tap, spec2)
    tap.eq(obs.wait_metric(z2, "zdm_server_up", 1, pool="new", server="b"), 1,
           "zdm_server_up{new,b} 1 with passing checks")
    set_mode(b, health=500)
    tap.eq(obs.wait_metric(z2, "zdm_server_up", 0, timeout=3, pool="new", server="b"), 0,
           "zdm_server_up{new,b} 0 once /health fails")
    tap.eq((server_state(z2, "new", "b") or {}).get("health"), "down", "status agrees: down")
    tap.eq(obs.scrape(z2).value("zdm_server_up", pool="old", server="a"), 1, "a stays 1")
    normal(b)
    tap.eq(obs.wait_metric(z2, "zdm_server_up", 1, timeout=3, pool="new", server="b"), 1,
           "zdm_server_up{new,b} back to 1 once /health passes")

    set_mode(b, all=500, health="ok")
    st = [req(z2.port, "/", CANARY).status for _ in range(2)]
    tap.eq(st, [500, 500], "two pinned requests get b's 500")
    tap.eq(obs.scrape(z2).value("zdm_circuit_state", pool="new", server="b"), 1,
           "zdm_circuit_state{new,b} 1 (open) after 2 failures")
    tap.eq((server_state(z2, "new", "b") or {}).get("circuit"), "open", "status agrees: open")
    half = wait_for(lambda: (server_state(z2, "new", "b") or {}).get("circuit") == "half_open",
                    timeout=3)
    tap.ok(half, "status: half_open after open_for")
    tap.eq(obs.scrape(z2).value("zdm_circuit_state", pool="new", server="b"), 2,
           "zdm_circuit_state{new,b} 2 (half-open)")
    normal(b)
    r = req(z2.port, "/", CANARY)
    tap.eq(r.status, 200, "the probe succeeds")
    tap.eq(obs.wait_metric(z2, "zdm_circuit_state", 0, timeout=2, pool="new", server="b"), 0,
           "zdm_circuit_state{new,b} back to 0 (closed)")

with section(tap, "zdm_config_reloads_total{result}"):
    m0 = obs.scrape(z2)
    before = series(m0, "zdm_requests_total")
    ans = z2.ctl("reload", timeout=10)
    tap.eq(ans.get("ok"), True, "a reload of the same file succeeds", ans)
    m1 = obs.scrape(z2)
    tap.eq((m1.value("zdm_config_reloads_total", result="ok"),
            m1.value("zdm_config_reloads_total", result="error")), (1, 0),
           "after a good reload: ok 1, error 0")
    tap.eq(series(m1, "zdm_requests_total"), before,
           "zdm_requests_total carried over the reload unchanged")
    good = open(z2.config_path).read()
    z2.rewrite(text=good.replace("split:", "split: [oops\nsplitx:"))
    ans = z2.ctl("reload", timeout=10)
    tap.eq(ans.get("ok"), False, "a reload of a broken file is refused", ans)
    m2 = obs.scrape(z2)
    tap.eq((m2.value("zdm_config_reloads_total", result="ok"),
            m2.value("zdm_config_reloads_total", result="error")), (1, 1),
           "after a bad reload: ok 1, error 1")
    z2.signal(signal.SIGHUP)
    tap.eq(obs.wait_metric(z2, "zdm_config_reloads_total", 2, result="error"), 2,
           "SIGHUP with the broken file: error 2")
    z2.rewrite(text=good)
    z2.signal(signal.SIGHUP)
    tap.eq(obs.wait_metric(z2, "zdm_config_reloads_total", 2, result="ok"), 2,
           "SIGHUP with the good file: ok 2")
    # A reload that adds a server: the others keep their counters (carried
    # over by name), the new one starts at 0.
    normal(a2)
    before = {k: v for k, v in series(obs.scrape(z2), "zdm_requests_total").items()}
    z2.rewrite(dict(z2.spec, pools={"old": [a, a2], "new": [b]}))
    ans = z2.ctl("reload", timeout=10)
    tap.eq(ans.get("ok"), True, "reload adding server a2 to old", ans)
    m4 = obs.scrape(z2)
    after = series(m4, "zdm_requests_total")
    tap.eq({k: after.get(k) for k in before}, before,
           "every series of before the reload has its value after it")
    tap.eq(sorted((dict(k)["code"], v) for k, v in after.items() if dict(k)["server"] == "a2"),
           [(c, 0) for c in CLASSES], "the added server's series start at 0")
    tap.eq(m4.value("zdm_server_up", pool="old", server="a2") is not None, True,
           "zdm_server_up has the added server")
    tap.eq(m4.value("zdm_config_reloads_total", result="ok"), 3, "ok 3")
    m3 = obs.scrape(z2)
    tap.eq(m3.errors, [], "/metrics well-formed after reloads")
    check_consistent(m3, ("old", "new"), "after reloads")

tap.done()
