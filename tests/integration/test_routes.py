#!/usr/bin/env python3
"""Routes through the real zdmd (SPEC §4.0-§4.4, §6, §7).

A request goes to the first route whose match holds (host exact or "*."
wildcard, case-insensitive, port and trailing dot ignored, the target's
authority over Host; segment-wise path prefix; methods), or gets zdmd's
404. Each route splits over its own pools, pins by its own pins, has its
own timeouts, and never spills into another route's pools. zdmd's own
404 and 503 leave a keep-alive connection correctly framed: the body of
the request they answer is never read as a request. Status, metrics and
the access log name each request's route. A config without routes has
the one route "default".

Which pool answered is told by the upstream (X-Upstream: its name; every
pool here has one upstream named as the pool) and by X-Zdm-Pool.
"""

import http.client
import json
import os
import signal
import time

from zdmtest import (TAP, Upstream, Zdmd, Closed, Raw, Server, build_request, chunked,
                     curl, url, is_self_made, tmpdir, zdmctl, find_server, wait_for)
from faults import section, need, count, wait_state, wait_all
import obs

tap = TAP(deadline=80)

NOT_FOUND = b"not found: no route matches the request\n"


def route(name, split, match=None, **extra):
    r = {"name": name}
    if match:
        r["match"] = match
    r["split"] = split
    r.update(extra)
    return r


def answered_by(r):
    """The upstream that answered R, or the status zdmd answered itself."""
    up = r.get("x-upstream")
    return up if up is not None else r.status


def own_answer(r, code, body=None):
    """Problems with R as zdmd's own answer CODE (with that body)."""
    bad = is_self_made(r, code)
    if body is not None and r.body != body:
        bad.append("body %r, want %r" % (r.body, body))
    return bad


# -- 1. the match table ------------------------------------------------------------

MATCH_POOLS = ["static", "orders", "shop", "apipost", "apiv2", "api", "v6"]
MATCH_ROUTES = [
    route("static", {"static": 100}, {"path_prefix": "/static"}),
    route("orders", {"orders": 100},
          {"host": ["shop.test", "*.shop.test"], "path_prefix": "/api/orders",
           "methods": ["GET", "POST"]}),
    route("shop", {"shop": 100}, {"host": "shop.test"}),
    route("api-post", {"apipost": 100}, {"host": "api.test", "methods": ["POST"]}),
    route("api-v2", {"apiv2": 100}, {"host": "api.test", "path_prefix": "/v2"}),
    route("api", {"api": 100}, {"host": "api.test"}),
    # Listed after "api-v2", which takes all of /v2: never chosen.
    route("api-v2-late", {"orders": 100}, {"host": "api.test", "path_prefix": "/v2/late"}),
    route("v6", {"v6": 100}, {"host": "[::1]"}),
]

# (method, target, Host field, the pool that must answer or 404 for zdmd's own)
MATCH_CASES = [
    ("GET", "/api/orders", "shop.test", "orders"),
    ("GET", "/api/orders/1", "shop.test", "orders"),
    ("GET", "/api/orders?x=1", "shop.test", "orders"),
    ("GET", "/api/orders/", "shop.test", "orders"),
    ("GET", "/api/ordersX", "shop.test", "shop"),
    ("GET", "/api/order", "shop.test", "shop"),
    ("GET", "/API/orders", "shop.test", "shop"),
    ("POST", "/api/orders", "shop.test", "orders"),
    ("DELETE", "/api/orders", "shop.test", "shop"),
    ("GET", "/api/orders", "www.shop.test", "orders"),
    ("GET", "/api/orders/7", "a.b.shop.test", "orders"),
    ("GET", "/", "www.shop.test", 404),
    ("GET", "/api/orders", "xshop.test", 404),
    ("GET", "/api/orders", "shop.test.other", 404),
    ("GET", "/api/orders", "SHOP.Test", "orders"),
    ("GET", "/api/orders", "Www.SHOP.test", "orders"),
    ("GET", "/api/orders", "shop.test:8080", "orders"),
    ("GET", "/api/orders", "shop.test.", "orders"),
    ("GET", "/api/orders", "www.shop.test.:81", "orders"),
    ("GET", "/", "api.test", "api"),
    ("GET", "/", "API.test", "api"),
    ("GET", "/", "api.test:8080", "api"),
    ("GET", "/", "api.test.", "api"),
    ("POST", "/", "api.test", "apipost"),
    ("POST", "/v2", "api.test", "apipost"),
    ("GET", "/v2", "api.test", "apiv2"),
    ("GET", "/v2/late", "api.test", "apiv2"),
    ("GET", "/v2x", "api.test", "api"),
    ("GET", "/", "[::1]:8080", "v6"),
    ("GET", "/", "[::1]", "v6"),
    ("GET", "/", "[::2]", 404),
    ("GET", "/static/app.js", "other.test", "static"),
    ("GET", "/static", "other.test", "static"),
    ("GET", "/static?v=2", "other.test", "static"),
    ("GET", "/staticX", "other.test", 404),
    ("GET", "/static/x", "shop.test", "static"),
    ("GET", "/", "other.test", 404),
    # absolute-form: the target's authority is the host, the Host field is not
    ("GET", "http://api.test/", "shop.test", "api"),
    ("GET", "http://shop.test/api/orders/7", "api.test", "orders"),
    ("GET", "http://SHOP.test:80/api/orders", "other.test", "orders"),
    ("GET", "http://other.test/api/orders", "shop.test", 404),
]

with section(tap, "match table"):
    ups = {p: Upstream(p) for p in MATCH_POOLS}
    z = Zdmd(tap, {"expose_pool_header": True,
                   "pools": {p: [ups[p]] for p in MATCH_POOLS},
                   "routes": MATCH_ROUTES})
    # One keep-alive connection for the whole table: the route is chosen
    # per request.
    c = z.client()
    for method, target, host, want in MATCH_CASES:
        what = "%s %s with Host %s" % (method, target, host)
        try:
            r = c.request(method, target, host=host)
        except Closed:
            tap.ok(False, "%s: answered on the kept-alive connection" % what)
            c.close()
            c = z.client()
            continue
        if want == 404:
            bad = own_answer(r, 404, NOT_FOUND)
            tap.ok(not bad, "%s: no route matches, zdmd's 404" % what, "; ".join(bad))
        else:
            tap.eq((answered_by(r), r.get("x-zdm-pool")), (want, want),
                   "%s: answered by pool %s" % (what, want))
    c.close()

    # HTTP/1.0 without a Host field: only a route without hosts can match.
    with z.client() as c:
        r = c.request("GET", "/static/x", version="HTTP/1.0", host=None)
        tap.eq(answered_by(r), "static", "HTTP/1.0 without Host: a route without hosts matches")
    with z.client() as c:
        r = c.request("GET", "/api/orders", version="HTTP/1.0", host=None)
        bad = own_answer(r, 404, NOT_FOUND)
        tap.ok(not bad, "HTTP/1.0 without Host: a route with hosts does not match (404)",
               "; ".join(bad))

    # Real clients.
    rc, out, err = curl(["-D", "-", "--connect-to", "::127.0.0.1:%d" % z.port,
                         "http://WWW.Shop.Test/api/orders/9"])
    tap.ok(rc == 0 and b"\r\nX-Upstream: orders\r\n" in out,
           "curl http://WWW.Shop.Test/api/orders/9: route orders",
           "rc %d %s %r" % (rc, err, out[:300]))
    rc, out, err = curl(["-D", "-", "--request-target", "http://api.test/v2/x", url(z.port, "/")])
    tap.ok(rc == 0 and b"\r\nX-Upstream: apiv2\r\n" in out,
           "curl with an absolute-form target http://api.test/v2/x: route api-v2",
           "rc %d %s %r" % (rc, err, out[:300]))
    hc = http.client.HTTPConnection("127.0.0.1", z.port, timeout=5)
    try:
        got = []
        for host, path in (("shop.test", "/api/orders"), ("nowhere.test", "/"),
                           ("api.test", "/"), ("shop.test", "/")):
            hc.request("GET", path, headers={"Host": host})
            resp = hc.getresponse()
            body = resp.read()
            got.append(resp.getheader("X-Upstream") or (resp.status, body))
        tap.eq(got, ["orders", (404, NOT_FOUND), "api", "shop"],
               "http.client, one connection: orders, zdmd's 404, api, shop")
    finally:
        hc.close()

    # A connection keeps the routes of its last Host: a long Host (not
    # kept), then the same connection across a reload that moves shop.test.
    keep = z.client()
    long_host = "x" * 80 + ".shop.test"
    got = [answered_by(keep.request("GET", p, host=h)) for p, h in
           (("/api/orders", long_host), ("/", long_host), ("/api/orders", long_host),
            ("/", "shop.test"), ("/api/orders", "shop.test"))]
    tap.eq(got, ["orders", 404, "orders", "shop", "orders"],
           "one connection, a Host of 90 bytes then shop.test, each twice: routed each time")
    spec = {"expose_pool_header": True, "pools": {p: [ups[p]] for p in MATCH_POOLS},
            "routes": [route("moved", {"api": 100}, {"host": "shop.test"})] + MATCH_ROUTES}
    z.rewrite(spec)
    z.signal(signal.SIGHUP)
    tap.ok(wait_for(lambda: answered_by(keep.request("GET", "/", host="shop.test")) == "api",
                    timeout=5),
           "after a reload that sends shop.test to route moved: the same connection follows it")
    tap.eq(answered_by(keep.request("GET", "/", host="api.test")), "api",
           "and another Host on it too")
    moved = []
    for pool, routes in (("shop", MATCH_ROUTES),
                         ("static", MATCH_ROUTES[:1] + [route("moved", {"static": 100},
                                                              {"host": "shop.test"})]),
                         ("v6", [route("moved", {"v6": 100}, {"host": "shop.test"})])):
        keep.request("GET", "/", host="shop.test")
        z.rewrite(dict(spec, routes=routes))
        z.signal(signal.SIGHUP)
        wait_for(lambda: answered_by(keep.request("GET", "/", host="shop.test")) == pool,
                 timeout=5)
        moved.append(answered_by(keep.request("GET", "/", host="shop.test")))
    tap.eq(moved, ["shop", "static", "v6"],
           "three more reloads, each sending shop.test elsewhere: the connection follows each")
    keep.close()
    z.stop()


# -- 2. framing after zdmd's own 404 and 503 ---------------------------------------

# A request hidden in a body: if zdmd ever reads a body as a request, app
# sees /smuggled.
SMUGGLED = b"GET /smuggled HTTP/1.1\r\nHost: app.test\r\n\r\n"
NEXT = build_request("GET", "/", host="app.test")


def head(host, framing, extra=()):
    """A POST head for HOST with FRAMING (an int: Content-Length; "chunked")."""
    hs = [("Host", host)] + list(extra)
    hs.append(("Transfer-Encoding", "chunked") if framing == "chunked"
              else ("Content-Length", str(framing)))
    return build_request("POST", "/upload", hs, host=None)


def after_own_answer(z, app, what, code, first, later=b"", pipelined=False, keep=False):
    """Sends FIRST (a request zdmd answers CODE itself), reads that answer,
    sends LATER (the rest of its body), then, unless the answer said it
    closes, the next request NEXT (with PIPELINED, NEXT went right after
    FIRST). The connection must then either end with nothing more, or give
    NEXT its own answer and nothing else; the body never reaches an
    upstream. KEEP: the connection must stay open."""
    n0 = count(app, "/smuggled")
    c = z.client(timeout=8)
    try:
        c.send(first + (NEXT if pipelined else b""))
        try:
            r = c.read_response()
        except Closed as e:
            tap.ok(False, "%s: zdmd's %d" % (what, code), "closed; got %r" % e.partial[:200])
            return
        bad = own_answer(r, code)
        tap.ok(not bad, "%s: zdmd's %d" % (what, code), "; ".join(bad))
        closing = "close" in r.tokens("connection")
        verdict = None
        try:
            if later:
                c.send(later)
            if closing:
                if not c.wait_closed(6):
                    verdict = "not closed within 6 s of an answer with Connection: close"
                elif c.buf:
                    verdict = "bytes after the answer: %r" % bytes(c.buf[:200])
                else:
                    verdict = "closed"
            else:
                if not pipelined:
                    c.send(NEXT)
                r2 = c.read_response()
                if (r2.status, answered_by(r2), r2.body) != (200, "app", b"app\n"):
                    verdict = "the next answer is %r %r" % (r2, r2.body[:100])
                elif c.buf:
                    verdict = "bytes after the next answer: %r" % bytes(c.buf[:200])
                else:
                    verdict = "next answered"
        except Closed as e:
            verdict = "closed" if not e.partial else "closed after %r" % e.partial[:200]
        except OSError as e:
            verdict = "closed" if not c.buf else "%s after %r" % (e, bytes(c.buf[:200]))
        if keep:
            tap.eq(verdict, "next answered",
                   "%s: the connection stays open and answers the next request" % what)
        else:
            tap.ok(verdict in ("closed", "next answered"),
                   "%s: then the connection ends, or answers the next request and nothing else"
                   % what, verdict)
    finally:
        c.close()
    if SMUGGLED in first + later:
        tap.eq(count(app, "/smuggled") - n0, 0,
               "%s: the body never reached an upstream as a request" % what)


with section(tap, "framing after zdmd's own answers"):
    app = Upstream("app")
    z = Zdmd(tap, {"pools": {"app": [app], "empty": [Server(app.address, name="w0", weight=0)]},
                   "routes": [route("app", {"app": 100}, {"host": "app.test"}),
                              route("empty", {"empty": 100}, {"host": "empty.test"})]})
    with z.client() as c:
        need(tap, c.request("GET", "/", host="app.test").body == b"app\n", "route app answers")
    big = b"x" * 200000 + SMUGGLED
    fake_end = b"0\r\n\r\n" + SMUGGLED     # chunk data that looks like the last chunk
    for code, host in ((404, "nowhere.test"), (503, "empty.test")):
        tag = "%d on %s" % (code, host)
        after_own_answer(z, app, "%s, no body" % tag, code,
                         build_request("GET", "/", host=host), keep=True)
        after_own_answer(z, app, "%s, Content-Length body" % tag, code,
                         head(host, len(SMUGGLED)) + SMUGGLED)
        after_own_answer(z, app, "%s, Content-Length body, next request pipelined" % tag, code,
                         head(host, len(SMUGGLED)) + SMUGGLED, pipelined=True)
        after_own_answer(z, app, "%s, Content-Length body of 200 kB" % tag, code,
                         head(host, len(big)) + big)
        after_own_answer(z, app, "%s, Content-Length body sent after the answer" % tag, code,
                         head(host, len(SMUGGLED)), later=SMUGGLED)
        after_own_answer(z, app, "%s, Expect: 100-continue, body sent after the answer" % tag,
                         code, head(host, len(SMUGGLED), [("Expect", "100-continue")]),
                         later=SMUGGLED)
        after_own_answer(z, app, "%s, chunked body" % tag, code,
                         head(host, "chunked") + chunked(SMUGGLED))
        after_own_answer(z, app, "%s, chunked body, next request pipelined" % tag, code,
                         head(host, "chunked") + chunked(fake_end), pipelined=True)
        after_own_answer(z, app, "%s, chunked body sent after the answer" % tag, code,
                         head(host, "chunked") + b"5\r\nhello\r\n",
                         later=chunked(fake_end, sizes=(len(fake_end),)))
    z.stop()


# -- 3. each route's own split; 8. status, metrics and access log ------------------

SPLITS = {"ra": {"old": 70, "new": 30},
          "rb": {"old": 10, "new": 90},
          "rc": {"new": 50, "old": 25, "third": 25}}
HOSTS = {"ra": "a.test", "rb": "b.test", "rc": "c.test"}
SERVER_OF = {"old": "o", "new": "n", "third": "t"}
PER_ROUTE = 1000


def worst_window(pools, pool, percent, width=100, slack=1):
    """The first window of WIDTH consecutive answers whose count of POOL is
    off PERCENT by more than SLACK: (start, count), or None."""
    want = percent * width / 100.0
    for i in range(len(pools) - width + 1):
        k = pools[i:i + width].count(pool)
        if abs(k - want) > slack:
            return i, k
    return None


with section(tap, "per-route split, status, metrics, access log"):
    o, n, t = Upstream("o"), Upstream("n"), Upstream("t")
    log = os.path.join(tmpdir(), "access.log")
    z = obs.start(tap, {"expose_pool_header": True, "access_log": log,
                        "access_log_format": "json",
                        "pools": {"old": [o], "new": [n], "third": [t],
                                  "empty": [Server(o.address, name="w0", weight=0)]},
                        "routes": [route(r, SPLITS[r], {"host": HOSTS[r]}) for r in SPLITS] +
                                  [route("rd", {"empty": 100}, {"host": "d.test"})]})
    # The routes' requests interleaved on the same connections: each
    # route keeps its own sequence.
    seq = {r: [] for r in SPLITS}
    for _ in range(4):
        with z.client() as c:
            for _ in range(PER_ROUTE // 4):
                for r in SPLITS:
                    resp = c.request("GET", "/", host=HOSTS[r])
                    seq[r].append((resp.status, resp.get("x-zdm-pool"), answered_by(resp)))
    for r, split in SPLITS.items():
        pools = [p for _, p, _ in seq[r]]
        tap.eq(sum(1 for s, _, _ in seq[r] if s == 200), PER_ROUTE,
               "route %s: all %d requests answered 200" % (r, PER_ROUTE))
        tap.ok(all(SERVER_OF.get(p) == u for _, p, u in seq[r]),
               "route %s: X-Zdm-Pool names the pool of the answering server" % r)
        for pool, pct in split.items():
            want = PER_ROUTE * pct // 100
            tap.within(pools.count(pool), want - PER_ROUTE // 100, want + PER_ROUTE // 100,
                       "route %s: pool %s gets %d%% +- 1%% of %d (got %d)"
                       % (r, pool, pct, PER_ROUTE, pools.count(pool)))
            bad = worst_window(pools, pool, pct)
            tap.ok(bad is None, "route %s: every 100 consecutive requests give %s %d +- 1"
                   % (r, pool, pct), "window at %s" % (bad,))
        tap.eq(set(pools) - set(split), set(), "route %s: no pool outside its split" % r)
    got = {r: {p: sum(1 for _, q, _ in seq[r] if q == p) for p in SPLITS[r]} for r in SPLITS}

    # zdmd's own answers: two 404s (no route) and two 503s (route rd, whose
    # only server takes no requests).
    own = []
    with z.client() as c:
        for host in ("nowhere.test", "d.test", "nowhere.test", "d.test"):
            own.append(c.request("GET", "/x", host=host).status)
    tap.eq(own, [404, 503, 404, 503], "no route: 404; route rd without an available server: 503")

    st = z.status()
    tap.eq([x.get("name") for x in st.get("routes", [])], ["ra", "rb", "rc", "rd"],
           "status: the routes in config order")
    for x in st.get("routes", []):
        if x.get("name") not in SPLITS:
            continue
        r = x["name"]
        tap.eq(x.get("match"), {"host": [HOSTS[r]]}, "status: route %s's match" % r)
        tap.eq(x.get("split"), SPLITS[r], "status: route %s's split" % r)
        win = {p["name"]: p.get("window", {}).get("requests") for p in x.get("pools", [])}
        tap.eq(win, got[r], "status: route %s's requests per pool" % r)
    rc, out, err = zdmctl(["--json", "status"], sock=z.sock_path)
    try:
        names = [x["name"] for x in json.loads(out)["routes"]]
    except (ValueError, KeyError, TypeError):
        names = None
    tap.eq((rc, names), (0, ["ra", "rb", "rc", "rd"]), "zdmctl --json status: the routes",
           "stderr: %s" % err)
    rc, out, err = zdmctl(["status"], sock=z.sock_path)
    tap.ok(rc == 0 and all(r in out for r in ("ra", "rb", "rc", "rd")),
           "zdmctl status: the table names every route", out + err)
    r = obs.admin_get(z, "/status")
    try:
        names = [x["name"] for x in json.loads(r.body)["routes"]]
    except (ValueError, KeyError, TypeError):
        names = None
    tap.eq(names, ["ra", "rb", "rc", "rd"], "admin /status: the routes")

    m = obs.scrape(z)
    tap.eq(m.errors, [], "metrics: a valid exposition")
    for r in SPLITS:
        counted = {p: m.value("zdm_requests_total", route=r, pool=p, server=SERVER_OF[p],
                              code="2xx") for p in SPLITS[r]}
        tap.eq(counted, got[r], "metrics: zdm_requests_total{route=%s} per pool" % r)
        weights = {p: m.value("zdm_pool_weight_percent", route=r, pool=p) for p in SPLITS[r]}
        tap.eq(weights, {p: float(v) for p, v in SPLITS[r].items()},
               "metrics: zdm_pool_weight_percent{route=%s}" % r)
    tap.eq(m.find("zdm_requests_total", route="rb", pool="third"), [],
           "metrics: no series for a pool outside the route")
    tap.eq(m.value("zdm_requests_total", route="", pool="", server="", code="4xx"), 2.0,
           "metrics: the two 404s under route \"\"")
    tap.eq(m.total("zdm_requests_total", route="rd", code="5xx"), 2.0,
           "metrics: the two 503s under route rd")

    total = len(SPLITS) * PER_ROUTE + len(own)
    lines = obs.wait_lines(log, total, timeout=5)
    entries = []
    for ln in lines:
        try:
            entries.append(json.loads(ln))
        except ValueError:
            entries.append({"unparsed": ln})
    tap.eq(len(entries), total, "access log: one line per request")
    per = {}
    for e in entries:
        k = (e.get("route"), e.get("pool"))
        per[k] = per.get(k, 0) + 1
    for r in SPLITS:
        tap.eq({p: per.get((r, p), 0) for p in SPLITS[r]}, got[r],
               "access log: route %s and its pool on each of its lines" % r)
    unrouted = [e.get("route") for e in entries if e.get("status") == 404]
    tap.ok(len(unrouted) == 2 and all(x in ("", "-", None) for x in unrouted),
           "access log: the 404s have no route", "routes: %r" % (unrouted,))
    tap.eq([e.get("route") for e in entries if e.get("status") == 503], ["rd", "rd"],
           "access log: the 503s name route rd")
    z.stop()


# -- 4. a route's pools down never spill into another route ------------------------

HC = {"path": "/health", "interval": Raw("150ms"), "timeout": Raw("100ms"), "rise": 1, "fall": 1}

with section(tap, "no spill into another route's pools"):
    x1, x2, y1 = Upstream("x1"), Upstream("x2"), Upstream("y1")
    z = Zdmd(tap, {"expose_pool_header": True, "health_check": HC,
                   "pools": {"x1": [x1], "x2": [x2], "y1": [y1]},
                   "routes": [route("x", {"x1": 50, "x2": 50}, {"host": "x.test"}),
                              route("y", {"y1": 100}, {"host": "y.test"})]})
    need(tap, wait_all(z, [("x1", "x1"), ("x2", "x2"), ("y1", "y1")], "health", "up", 5),
         "every server is up")

    def ask(host, k):
        out = []
        with z.client() as c:
            for _ in range(k):
                try:
                    r = c.request("GET", "/", host=host)
                except Closed:
                    out.append("closed")
                    c.close()
                    c = z.client()
                    continue
                out.append(answered_by(r))
        return out

    got = ask("x.test", 20)
    tap.eq((got.count("x1"), got.count("x2")), (10, 10), "route x: 50/50 over x1 and x2")
    tap.eq(ask("y.test", 10), ["y1"] * 10, "route y: all to y1")
    x1.stop()
    got = ask("x.test", 20)
    tap.eq(set(got), {"x2"}, "x1 killed: route x is answered by x2, inside the route",
           "answers: %r" % got)
    need(tap, wait_state(z, "x1", "x1", "health", "down", 5) is not None, "x1 is marked down")
    got = ask("x.test", 20)
    tap.eq(set(got), {"x2"}, "x1 down: all of route x to x2")
    x2.stop()
    got = ask("x.test", 20)
    tap.ok("y1" not in got and set(got) <= {502, 503},
           "x1 and x2 killed: route x gets 502 or 503, never y1", "answers: %r" % got)
    need(tap, wait_state(z, "x2", "x2", "health", "down", 5) is not None, "x2 is marked down")
    with z.client() as c:
        rs = [c.request("GET", "/", host="x.test") for _ in range(10)]
    bad = [own_answer(r, 503) for r in rs]
    tap.ok(not any(bad), "no server of route x up: zdmd's 503 on each request", repr(bad))
    got = ask("y.test", 20)
    tap.eq(got, ["y1"] * 20, "route y is unaffected")
    st = z.status()
    tap.eq((find_server(st, "y1", "y1") or {}).get("requests"), 30,
           "y1 served only route y's 30 requests")
    z.stop()


# -- 5. pins: cookies, and each route's own pins -----------------------------------

# (Cookie field lines, the pool that must answer)
COOKIE_CASES = [
    (["a=1; beta=yes; c=3"], "pnew"),
    (["beta=yes"], "pnew"),
    (["a=1", "beta=yes; c=3"], "pnew"),
    (["a=1; c=3", "beta=yes"], "pnew"),
    (["a=1;beta=yes"], "pnew"),
    (["a=1;  beta=yes  ; c=3"], "pnew"),
    (["a=1;\tbeta=yes"], "pnew"),
    (['beta="yes"'], "pnew"),
    (["x=beta=yes; beta=yes"], "pnew"),
    (["a=1; beta=no; c=3"], "pold"),
    (["xbeta=yes"], "pold"),
    (["a=1; xbeta=yes; c=3"], "pold"),
    (["betax=yes"], "pold"),
    (["Beta=yes"], "pold"),
    (["beta=yess"], "pold"),
    (["beta=ye"], "pold"),
    (["beta="], "pold"),
    (["a=beta=yes"], "pold"),
    (["a=1; beta"], "pold"),
    ([], "pold"),
]

with section(tap, "pins per route"):
    upo, upn = Upstream("pold"), Upstream("pnew")
    z = Zdmd(tap, {"expose_pool_header": True,
                   "pools": {"pold": [upo], "pnew": [upn]},
                   "routes": [
                       route("p", {"pold": 100}, {"host": "p.test"},
                             pins=[{"cookie": "beta", "value": "yes", "pool": "pnew"},
                                   {"header": "canary", "value": "true", "pool": "pnew"}]),
                       # pnew is a member of q too (at 0%): a pin of p that
                       # held here would reach it.
                       route("q", {"pold": 100, "pnew": 0}, {"host": "q.test"},
                             pins=[{"header": "x-q", "value": "1", "pool": "pnew"}])]})
    with z.client() as c:
        for lines, want in COOKIE_CASES:
            r = c.request("GET", "/", [("Cookie", v) for v in lines], host="p.test")
            tap.eq(answered_by(r), want, "cookie pin beta=yes, Cookie lines %r: %s" % (lines, want))
        r = c.request("GET", "/", [("X-Cookie", "beta=yes")], host="p.test")
        tap.eq(answered_by(r), "pold", "cookie pin: a field other than Cookie does not count")
        cases = [
            ("p.test", [("canary", "true")], "pnew", "route p's header pin holds on route p"),
            ("q.test", [("canary", "true")], "pold", "route p's header pin does not hold on q"),
            ("q.test", [("Cookie", "beta=yes")], "pold", "route p's cookie pin does not hold on q"),
            ("q.test", [("x-q", "1")], "pnew", "route q's own pin holds on q"),
            ("p.test", [("x-q", "1")], "pold", "route q's pin does not hold on p"),
        ]
        for host, hs, want, what in cases:
            tap.eq(answered_by(c.request("GET", "/", hs, host=host)), want, what)
    z.stop()


# -- 6. per-route timeouts ---------------------------------------------------------

UPGRADE = [("Connection", "Upgrade"), ("Upgrade", "websocket")]


def timed(c, target, host):
    t0 = time.monotonic()
    r = c.request("GET", target, host=host)
    return r, time.monotonic() - t0


def echoes(c, data):
    """True if DATA comes back through the tunnel on C."""
    c.send(data)
    try:
        while len(c.buf) < len(data):
            c._fill()
    except (Closed, OSError):
        return False
    got = bytes(c.buf[:len(data)])
    del c.buf[:len(data)]
    return got == data


def tunnel(z, host):
    c = z.client(timeout=5)
    r = c.request("GET", "/upgrade", UPGRADE, host=host)
    if r.status != 101:
        raise AssertionError("no tunnel on %s: %r" % (host, r))
    return c


with section(tap, "per-route timeouts"):
    us = Upstream("slow")
    z = Zdmd(tap, {"timeouts": {"upstream_response": Raw("1s")},
                   "pools": {"slow": [us]},
                   "routes": [
                       route("brisk", {"slow": 100}, {"host": "brisk.test"},
                             timeouts={"upstream_response": Raw("250ms")}),
                       route("patient", {"slow": 100}, {"host": "patient.test"},
                             timeouts={"upstream_response": Raw("3s")}),
                       route("tshort", {"slow": 100}, {"host": "tshort.test"},
                             timeouts={"tunnel_idle": Raw("400ms")}),
                       route("plain", {"slow": 100}, {"host": "plain.test"})]})
    with z.client(timeout=8) as c:
        r, dt = timed(c, "/slow/600", "brisk.test")
        bad = own_answer(r, 504)
        tap.ok(not bad and 0.2 <= dt < 0.6,
               "route brisk (250ms): a 600 ms answer is zdmd's 504 after %.2fs" % dt,
               "; ".join(bad))
    with z.client(timeout=8) as c:
        r, dt = timed(c, "/slow/600", "plain.test")
        tap.eq((r.status, r.body), (200, b"slow slow\n"),
               "route plain (the global 1s): the 600 ms answer comes through")
        r, dt = timed(c, "/slow/1500", "plain.test")
        bad = own_answer(r, 504)
        tap.ok(not bad and 0.9 <= dt <= 1.4,
               "route plain (1s): a 1.5 s answer is zdmd's 504 after %.2fs" % dt, "; ".join(bad))
    with z.client(timeout=8) as c:
        r, dt = timed(c, "/slow/1500", "patient.test")
        tap.eq((r.status, r.body), (200, b"slow slow\n"),
               "route patient (3s): the 1.5 s answer comes through (%.2fs)" % dt)

    short, long_ = tunnel(z, "tshort.test"), tunnel(z, "plain.test")
    try:
        tap.ok(echoes(short, b"ping") and echoes(long_, b"ping"), "two tunnels echo")
        t0 = time.monotonic()
        closed = short.wait_closed(3)
        dt = time.monotonic() - t0
        tap.ok(closed and 0.3 <= dt <= 1.5,
               "route tshort: its tunnel idle for tunnel_idle (400ms) is closed (%s, %.2fs)"
               % (closed, dt))
        # Idle for longer than upstream_response and tshort's tunnel_idle.
        tap.ok(not long_.wait_closed(1.2) and echoes(long_, b"still"),
               "route plain (tunnel_idle 1h): its tunnel idle as long is kept")
    finally:
        short.close()
        long_.close()
    busy = tunnel(z, "tshort.test")
    try:
        alive = all(echoes(busy, b"tick") and not busy.wait_closed(0.2) for _ in range(6))
        tap.ok(alive, "route tshort: a tunnel with a byte every 200 ms outlives tunnel_idle")
        tap.ok(busy.wait_closed(3), "and is closed once it goes idle")
    finally:
        busy.close()
    # One way only: tshort's tunnel_idle (400 ms) counts bytes moving either way.
    push = z.client(timeout=5)
    try:
        r = push.request("GET", "/upgrade-push/6/200", UPGRADE, host="tshort.test")
        got = b""
        t0 = time.monotonic()
        try:
            while len(got) < 6 and time.monotonic() - t0 < 4:
                push._fill()
                got += bytes(push.buf)
                del push.buf[:]
        except (Closed, OSError):
            pass
        tap.ok(r.status == 101 and got == b"......",
               "route tshort: a tunnel where only the upstream sends, a byte every 200 ms, "
               "outlives tunnel_idle (%s, %r after %.2fs)" % (r.status, got, time.monotonic() - t0))
        tap.ok(push.wait_closed(3), "and is closed once it goes idle")
    finally:
        push.close()
    sink = z.client(timeout=5)
    try:
        r = sink.request("GET", "/upgrade-sink", UPGRADE, host="tshort.test")
        sent = 0
        for _ in range(6):
            if sink.wait_closed(0.2):
                break
            sink.send(b".")
            sent += 1
        tap.ok(r.status == 101 and sent == 6 and not sink.wait_closed(0.2),
               "route tshort: a tunnel where only the client sends, a byte every 200 ms, "
               "outlives tunnel_idle (%d sent)" % sent)
        tap.ok(sink.wait_closed(3), "and is closed once it goes idle")
    finally:
        sink.close()
    z.stop()


# -- 7. response timeouts and the circuit breaker ----------------------------------

with section(tap, "response timeouts and the breaker"):
    lp = Upstream("lp")
    base = {"pools": {"lp": [lp]},
            "routes": [route("longpoll", {"lp": 100}, {"host": "lp.test"},
                             timeouts={"upstream_response": Raw("200ms")}),
                       route("other", {"lp": 100}, {"host": "other.test"})]}

    def circuit(z):
        return (find_server(z.status(), "lp", "lp") or {}).get("circuit")

    def hang(z, k):
        out = []
        for _ in range(k):
            with z.client() as c:
                out.append(c.request("GET", "/hang", host="lp.test").status)
        return out

    z = Zdmd(tap, dict(base, circuit_breaker={"failures": 3, "open_for": Raw("30s")}))
    tap.eq(hang(z, 5), [504] * 5, "default count: 5 long polls get zdmd's 504")
    tap.eq(circuit(z), "closed", "default count: 5 timeouts (failures: 3) leave the circuit closed")
    with z.client() as c:
        tap.eq(answered_by(c.request("GET", "/", host="lp.test")), "lp",
               "and the server still takes requests")
    z.stop()

    z = Zdmd(tap, dict(base, circuit_breaker={
        "failures": 3, "open_for": Raw("30s"),
        "count": ["connect", "reset", "invalid", "5xx", "timeout"]}))
    tap.eq(hang(z, 3), [504] * 3, "count with timeout: 3 long polls get zdmd's 504")
    tap.eq(circuit(z), "open", "count with timeout: 3 timeouts open the circuit")
    n0 = count(lp, "/")
    with z.client() as c:
        rs = [c.request("GET", "/", host=h) for h in ("lp.test", "other.test")]
    bad = [own_answer(r, 503) for r in rs]
    tap.ok(not any(bad) and count(lp, "/") == n0,
           "then the open server gets nothing, on either route that uses it: 503", repr(bad))
    z.stop()


# -- 9. a config without routes ----------------------------------------------------

with section(tap, "a config without routes"):
    o, n = Upstream("old1"), Upstream("new1")
    log = os.path.join(tmpdir(), "access.log")
    z = obs.start(tap, {"expose_pool_header": True, "access_log": log,
                        "access_log_format": "json",
                        "pools": {"old": [o], "new": [n]},
                        "split": {"old": 100, "new": 0},
                        "pins": [{"header": "canary", "value": "true", "pool": "new"}]})
    got = []
    with z.client() as c:
        for host, hs in (("anything.test", []), ("other.test:81", []),
                         ("anything.test", [("canary", "true")])):
            got.append(answered_by(c.request("GET", "/", hs, host=host)))
    with z.client() as c:
        got.append(answered_by(c.request("GET", "/", version="HTTP/1.0", host=None)))
    tap.eq(got, ["old1", "old1", "new1", "old1"],
           "every request is routed: any Host, no Host, the top-level pin")
    st = z.status()
    routes = st.get("routes") or [{}]
    tap.eq([x.get("name") for x in routes], ["default"], "status: the one route 'default'")
    tap.eq((routes[0].get("split"), st.get("pins")),
           ({"old": 100, "new": 0}, [{"header": "canary", "value": "true", "pool": "new"}]),
           "status: the default route's split, and the top-level pins")
    tap.eq({p.get("name"): p.get("weight") for p in st.get("pools", [])}, {"old": 100, "new": 0},
           "status: pools[].weight as before")
    m = obs.scrape(z)
    tap.eq([m.value("zdm_requests_total", route="default", pool=p, server=u, code="2xx")
            for p, u in (("old", "old1"), ("new", "new1"))], [3.0, 1.0],
           "metrics: zdm_requests_total{route=\"default\"} per pool")
    tap.eq(m.value("zdm_pinned_requests_total", route="default", pool="new"), 1.0,
           "metrics: zdm_pinned_requests_total{route=\"default\"}")
    lines = obs.wait_lines(log, 4, timeout=5)
    routes_logged = []
    for ln in lines:
        try:
            routes_logged.append(json.loads(ln).get("route"))
        except ValueError:
            routes_logged.append(ln)
    tap.eq(routes_logged, ["default"] * 4, "access log: route default on every line")
    z.stop()

tap.done()
