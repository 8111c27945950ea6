#!/usr/bin/env python3
"""The control plane of routes (SPEC §4.0, §6, §7): `set-weight
[ROUTE:]POOL`, `promote [ROUTE:]POOL` and `rollback [ROUTE]` act on one
route's split (or, for rollback without a route, on every route), checked
by real traffic, by the answers, by `status` and by the state file; a
pool shared by several routes must be named with its route; a route with
a single pool in its split has nothing to give the rest to; weight
changes under load drop no request; the state file keeps each route's
split across restarts (and reads the format of before routes as the route
"default"); a reload merges routes by name; status and zdmctl show one
block per route with its last minute of traffic per pool; the request
counters carry a route label.

The routes, by Host:
  orders.test  route "orders": monolith 80, orders 20; a pin to payments
  pay.test     route "pay":    monolith 50, payments 50 (GET and POST)
  assets.test  route "assets": solo 100 (a single pool)
monolith is shared by two routes; orders, payments and solo each belong
to the split of one route only (payments is also a pin of "orders")."""

import json
import os
import re
import signal
import threading

import obs
from zdmtest import (TAP, Upstream, Zdmd, Server, Raw, Closed, wait_for, zdmctl, tmpdir)

tap = TAP(deadline=120)
m, o, p, s = Upstream("m"), Upstream("o"), Upstream("p"), Upstream("s")
SERVER_POOL = {"m": "monolith", "o": "orders", "p": "payments", "s": "solo"}

ORDERS = "orders.test"
PAY = "pay.test"
ASSETS = "assets.test"
PIN = [("x-pay", "1")]


def route_orders(split=None, **extra):
    r = {"name": "orders", "match": {"host": [ORDERS]},
         "split": split or {"monolith": 80, "orders": 20},
         "pins": [{"header": "x-pay", "value": "1", "pool": "payments"}]}
    r.update(extra)
    return r


def route_pay(split=None):
    return {"name": "pay",
            "match": {"host": [PAY, "*." + PAY], "path_prefix": "/", "methods": ["GET", "POST"]},
            "split": split or {"monolith": 50, "payments": 50},
            "timeouts": {"upstream_response": Raw("5s")}}


def route_assets():
    return {"name": "assets", "match": {"host": [ASSETS]}, "split": {"solo": 100}}


def spec_for(routes=None, state=None, **extra):
    sp = {"expose_pool_header": True,
          "pools": {"monolith": [m], "orders": [o], "payments": [p], "solo": [s]},
          "routes": routes if routes is not None else [route_orders(), route_pay(),
                                                       route_assets()],
          "circuit_breaker": {"failures": 0}}     # deliberate 5xx must not open a circuit
    if state:
        sp["state_file"] = state
    sp.update(extra)
    return sp


CONFIG_SPLITS = {"orders": {"monolith": 80, "orders": 20},
                 "pay": {"monolith": 50, "payments": 50},
                 "assets": {"solo": 100}}


# -- helpers -----------------------------------------------------------------------


def ctl(z, line):
    """One command on a new control connection. A zdmd that is gone, or a
    connection that fails, is an answer too, so that the checks after it
    fail one by one (and at once) instead of ending the file."""
    if not z.alive():
        return {"exception": "zdmd is not running (exit status %r)" % z.proc.poll()}
    try:
        return z.ctl(line)
    except Exception as e:
        return {"exception": repr(e)}


def status(z):
    return ctl(z, "status")


def splits(st):
    """{route: {pool: percent}} of a status answer."""
    return {r.get("name"): r.get("split") for r in (st or {}).get("routes", [])}


def answer_pools(ans):
    """{pool: percent} of a route's answer ("pools":[{"name","weight"}])."""
    return {x.get("name"): x.get("weight") for x in (ans or {}).get("pools", [])}


def close_to(got, want):
    return (isinstance(got, dict) and set(got) == set(want) and
            all(isinstance(got[k], (int, float)) and abs(got[k] - want[k]) < 1e-6 for k in want))


def splits_are(got, want):
    return isinstance(got, dict) and set(got) == set(want) and \
        all(close_to(got[r], want[r]) for r in want)


def is_route_answer(ans, route, want):
    """{"ok":true,"route":ROUTE,"pools":[{"name","weight"}...]} in the
    route's pool order, with the percentages WANT."""
    return (isinstance(ans, dict) and ans.get("ok") is True and ans.get("route") == route and
            [x.get("name") for x in ans.get("pools", [])] == list(want) and
            close_to(answer_pools(ans), want))


def refused(ans, *words):
    """ok false with a non-empty error that contains every one of WORDS."""
    err = (ans or {}).get("error")
    return (ans or {}).get("ok") is False and isinstance(err, str) and err.strip() != "" and \
        all(w in err for w in words)


def spread(z, host, n, headers=None, path="/", method="GET"):
    """N requests to HOST over one keep-alive connection: {server: count},
    anything but a 200 counted under "status NNN"."""
    out = {}
    try:
        with z.client(timeout=10) as c:
            for _ in range(n):
                r = c.request(method, path, headers, host=host)
                k = r.get("x-upstream") if r.status == 200 else "status %s" % r.status
                out[k] = out.get(k, 0) + 1
    except (OSError, Closed) as e:
        out["exception"] = repr(e)
    return out


def near(counts, want, tol):
    """COUNTS has exactly the servers of WANT, each within TOL of its count."""
    return set(counts) == set(want) and all(abs(counts[k] - want[k]) <= tol for k in want)


def read_bytes(path):
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError as e:
        return repr(e).encode()


def read_state(path):
    try:
        return json.loads(read_bytes(path).decode())
    except ValueError as e:
        return {"unreadable": repr(e)}


def state_splits(doc):
    """{route: {pool: weight}} of a state file (version 2)."""
    out = {}
    for name, r in (doc.get("routes") or {}).items():
        out[name] = {pool: v.get("weight") for pool, v in (r.get("split") or {}).items()}
    return out


def warned(z, *words):
    """Lines of zdmd's stderr at level warn that hold every one of WORDS."""
    return [ln for ln in z.stderr().splitlines()
            if "warn" in ln.lower() and all(w in ln for w in words)]


# -- 1. set-weight on one route ------------------------------------------------------

z = obs.start(tap, spec_for(state=os.path.join(tmpdir(), "state.json")))
state = z.spec["state_file"]

with tap.section("set-weight ROUTE:POOL"):
    tap.ok(splits_are(splits(status(z)), CONFIG_SPLITS),
           "at start every route has its config split", splits(status(z)))
    tap.ok(near(spread(z, ORDERS, 200), {"m": 160, "o": 40}, 2) and
           near(spread(z, PAY, 200), {"m": 100, "p": 100}, 2),
           "and traffic follows it: 200 to orders 160/40, 200 to pay 100/100 (±2)")

    ans = ctl(z, "set-weight orders:orders 30")
    tap.ok(is_route_answer(ans, "orders", {"monolith": 70, "orders": 30}),
           "set-weight orders:orders 30: {ok, route: orders, pools: [monolith 70, orders 30]}",
           ans)
    want = dict(CONFIG_SPLITS, orders={"monolith": 70, "orders": 30})
    tap.ok(splits_are(splits(status(z)), want),
           "status: orders is 70/30, pay and assets keep their config split", splits(status(z)))
    got_o, got_p = spread(z, ORDERS, 200), spread(z, PAY, 200)
    tap.ok(near(got_o, {"m": 140, "o": 60}, 2),
           "200 requests to orders: monolith 140, orders 60 (±2)", got_o)
    tap.ok(near(got_p, {"m": 100, "p": 100}, 2),
           "200 requests to pay: still monolith 100, payments 100 (±2)", got_p)
    tap.eq(state_splits(read_state(state)).get("orders"), {"monolith": 70, "orders": 30},
           "the state file has orders' new split")

    ans = ctl(z, "set-weight payments 25")
    tap.ok(is_route_answer(ans, "pay", {"monolith": 75, "payments": 25}),
           "set-weight payments 25 (payments splits only pay; orders merely pins it): "
           "route pay 75/25", ans)
    got_p = spread(z, PAY, 200)
    tap.ok(near(got_p, {"m": 150, "p": 50}, 2),
           "200 requests to pay: monolith 150, payments 50 (±2)", got_p)
    ans = ctl(z, "set-weight orders 12.5")
    tap.ok(is_route_answer(ans, "orders", {"monolith": 87.5, "orders": 12.5}),
           "set-weight orders 12.5 (the pool orders, in one route's split; the route of the "
           "same name): orders 87.5/12.5", ans)

    before = splits(status(z))
    before_file = read_bytes(state)
    ans = ctl(z, "set-weight monolith 10")
    tap.ok(refused(ans, "orders", "pay") and "assets" not in ans.get("error", ""),
           "set-weight monolith 10, monolith being in the splits of orders and pay: refused, "
           "the error names both routes (and no other)", ans)
    ans = ctl(z, "promote monolith")
    tap.ok(refused(ans, "orders", "pay"), "promote monolith: refused the same way", ans)

    ERRORS = [
        ("set-weight nope:orders 10", ("nope",), "an unknown route"),
        ("set-weight orders:nope 10", ("nope",), "an unknown pool of a known route"),
        ("set-weight nope 10", ("nope",), "an unknown pool"),
        ("set-weight pay:orders 10", ("orders", "pay"), "a pool not in that route"),
        ("set-weight orders:payments 10", ("payments", "orders"),
         "a pool only pinned by that route, not in its split"),
        ("set-weight orders:orders -1", ("-1",), "percent -1"),
        ("set-weight orders:orders 101", ("101",), "percent 101"),
        ("set-weight orders:orders 100.01", ("100.01",), "percent 100.01"),
        ("set-weight orders:orders abc", ("abc",), "percent abc"),
        ("set-weight orders:orders 50%", ("50%",), "percent 50% (a number is expected)"),
        ("set-weight orders:orders 12.345", ("12.345",), "percent with 3 decimals"),
        ("set-weight orders:orders 10 20", (), "an extra argument"),
        ("set-weight orders:orders", (), "a missing percent"),
        ("promote nope:orders", ("nope",), "promote of an unknown route"),
        ("promote pay:orders", ("orders", "pay"), "promote of a pool not in that route"),
        ("promote orders:orders now", (), "promote with an extra argument"),
        ("rollback nope", ("nope",), "rollback of an unknown route"),
        ("rollback orders pay", (), "rollback with two routes"),
    ]
    for line, words, desc in ERRORS:
        ans = ctl(z, line)
        tap.ok(refused(ans, *words), "%s: %s is refused with an error%s" % (
            line, desc, " naming %s" % ", ".join(repr(w) for w in words) if words else ""), ans)
    ans = ctl(z, "set-weight orders:nope 10")
    tap.ok(refused(ans, "'nope'", "'orders'") and "orders:nope" not in ans.get("error", ""),
           "set-weight orders:nope 10: the error names the pool nope and the route orders apart",
           ans)
    tap.ok(splits_are(splits(status(z)), before), "none of them changed a split",
           (before, splits(status(z))))
    tap.eq(read_bytes(state), before_file, "nor the state file")
    tap.ok(near(spread(z, ORDERS, 200), {"m": 175, "o": 25}, 2),
           "traffic to orders still follows 87.5/12.5 (175/25 of 200, ±2)")

    rc, out, err = zdmctl(["set-weight", "monolith", "10"], sock=z.sock_path)
    tap.ok(rc == 1 and "orders" in err and "pay" in err,
           "zdmctl set-weight monolith 10: exit 1, the routes named on stderr", (rc, out, err))
    rc, out, err = zdmctl(["set-weight", "orders:orders", "30"], sock=z.sock_path)
    tap.ok(rc == 0 and "orders" in out and re.search(r"\bmonolith\s+70(\.0+)?\s*%", out) and
           re.search(r"\borders\s+30(\.0+)?\s*%", out),
           "zdmctl set-weight orders:orders 30: exit 0, prints the route and its percentages",
           (rc, out, err))
    rc, out, err = zdmctl(["--json", "set-weight", "pay:payments", "40"], sock=z.sock_path)
    try:
        j = json.loads(out)
    except ValueError:
        j = None
    tap.ok(rc == 0 and is_route_answer(j, "pay", {"monolith": 60, "payments": 40}),
           "zdmctl --json set-weight pay:payments 40: exit 0, the JSON answer", (rc, out, err))
    rc, out, err = zdmctl(["set-weight", "orders:orders", "abc"], sock=z.sock_path)
    tap.ok(rc in (1, 2) and "abc" in err, "zdmctl set-weight orders:orders abc: refused, "
           "the value named on stderr", (rc, out, err))

# -- 3. promote and rollback ---------------------------------------------------------

with tap.section("promote and rollback"):
    ans = ctl(z, "promote orders:orders")
    tap.ok(is_route_answer(ans, "orders", {"monolith": 0, "orders": 100}),
           "promote orders:orders: {ok, route: orders, pools: [monolith 0, orders 100]}", ans)
    st = splits(status(z))
    tap.ok(splits_are(st, {"orders": {"monolith": 0, "orders": 100},
                           "pay": {"monolith": 60, "payments": 40},
                           "assets": {"solo": 100}}),
           "status: only orders changed", st)
    tap.eq(spread(z, ORDERS, 20), {"o": 20}, "20 requests to orders: all to the orders pool")
    ans = ctl(z, "promote payments")
    tap.ok(is_route_answer(ans, "pay", {"monolith": 0, "payments": 100}),
           "promote payments (in one route's split): route pay, 0/100", ans)
    tap.eq(spread(z, PAY, 20), {"p": 20}, "20 requests to pay: all to payments")

    ans = ctl(z, "rollback orders")
    tap.ok(is_route_answer(ans, "orders", {"monolith": 100, "orders": 0}),
           "rollback orders: route orders, all to its baseline monolith", ans)
    tap.ok(close_to(splits(status(z)).get("pay") or {}, {"monolith": 0, "payments": 100}),
           "pay is left as it was (0/100)", splits(status(z)))
    tap.eq(spread(z, ORDERS, 20), {"m": 20}, "20 requests to orders: all to monolith")
    tap.eq(spread(z, PAY, 20), {"p": 20}, "20 requests to pay: still all to payments")

    ctl(z, "set-weight orders:orders 40")
    ans = ctl(z, "rollback")
    baseline = {"orders": {"monolith": 100, "orders": 0},
                "pay": {"monolith": 100, "payments": 0},
                "assets": {"solo": 100}}
    got = {r.get("name"): answer_pools(r) for r in (ans or {}).get("routes", [])}
    tap.ok(ans.get("ok") is True and [r.get("name") for r in ans.get("routes", [])] ==
           ["orders", "pay", "assets"] and splits_are(got, baseline),
           "rollback (no route): ok, \"routes\" lists every route in config order with its "
           "pools, each at 100% to its baseline", ans)
    tap.ok(splits_are(splits(status(z)), baseline), "status: every route on its baseline",
           splits(status(z)))
    tap.ok(spread(z, ORDERS, 20) == {"m": 20} and spread(z, PAY, 20) == {"m": 20} and
           spread(z, ASSETS, 5) == {"s": 5},
           "traffic: orders and pay all to monolith, assets to solo")
    tap.ok(splits_are(state_splits(read_state(state)), baseline),
           "the state file says the same", read_state(state))

    rc, out, err = zdmctl(["promote", "pay:payments"], sock=z.sock_path)
    tap.ok(rc == 0 and close_to(splits(status(z)).get("pay") or {},
                                {"monolith": 0, "payments": 100}),
           "zdmctl promote pay:payments: exit 0, applied", (rc, out, err))
    rc, out, err = zdmctl(["rollback", "pay"], sock=z.sock_path)
    tap.ok(rc == 0 and close_to(splits(status(z)).get("pay") or {},
                                {"monolith": 100, "payments": 0}),
           "zdmctl rollback pay: exit 0, applied", (rc, out, err))
    rc, out, err = zdmctl(["rollback", "nope"], sock=z.sock_path)
    tap.ok(rc == 1 and "nope" in err, "zdmctl rollback nope: exit 1, named on stderr",
           (rc, out, err))

# -- 4. weight changes under load ----------------------------------------------------

with tap.section("weight changes under load"):
    changes = ["set-weight orders:orders 10", "set-weight pay:payments 90",
               "promote orders:orders", "set-weight payments 5", "rollback orders",
               "set-weight orders 50", "promote pay:payments", "rollback",
               "set-weight orders:orders 75", "set-weight pay:payments 33.33"]
    PER = 30                       # requests per client between two changes
    N = PER * (len(changes) + 1)
    results = {ORDERS: [], PAY: []}
    allowed = {ORDERS: {"m", "o"}, PAY: {"m", "p"}}
    applied = [0]                  # changes answered so far
    progress = threading.Condition()

    # The clients and the changes go in lockstep: a client does not start
    # its requests of phase k+1 before change k is answered, and change k
    # is made only once both clients are half-way through phase k, so
    # that every change lands among requests on both routes.
    def load(host):
        try:
            with z.client(timeout=10) as c:
                for i in range(N):
                    with progress:
                        progress.wait_for(lambda: applied[0] >= min(i // PER, len(changes)),
                                          timeout=10)
                    r = c.request("GET", "/", host=host)
                    results[host].append((r.status, r.get("x-upstream"), applied[0]))
        except Exception as e:
            results[host].append(("exception", repr(e), applied[0]))

    threads = [threading.Thread(target=load, args=(h,), daemon=True) for h in (ORDERS, PAY)]
    for t in threads:
        t.start()
    answers = []
    with z.ctl_conn(timeout=10) as c:
        for k, line in enumerate(changes):
            goal = k * PER + PER // 2
            wait_for(lambda: all(len(v) >= goal for v in results.values()) or
                     not all(t.is_alive() for t in threads), timeout=10)
            answers.append((line, c.cmd(line).get("ok")))
            with progress:
                applied[0] += 1
                progress.notify_all()
    for t in threads:
        t.join(30)
    tap.ok(not any(t.is_alive() for t in threads), "two clients of %d requests each finished" % N)
    tap.eq([a for a in answers if a[1] is not True], [],
           "%d weight changes made meanwhile were all applied" % len(changes))
    phases = {h: sorted(set(r[2] for r in results[h])) for h in results}
    tap.ok(all(v == list(range(len(changes) + 1)) for v in phases.values()),
           "each client had requests between every two changes", phases)
    for host in (ORDERS, PAY):
        bad = [r for r in results[host] if r[0] != 200 or r[1] not in allowed[host]]
        tap.ok(len(results[host]) == N and not bad,
               "%s: %d of %d answered 200 by a server of the route's pools (%d bad)" % (
                   host, len(results[host]) - len(bad), N, len(bad)), bad[:5])
        tap.eq({r[1] for r in results[host] if r[0] == 200}, allowed[host],
               "%s: both of its pools served some of them (the changes took effect)" % host)
    tap.ok(near(spread(z, ORDERS, 100), {"m": 25, "o": 75}, 1) and
           near(spread(z, PAY, 100), {"m": 67, "p": 33}, 1),
           "afterwards traffic follows the last changes (orders 25/75, pay 66.67/33.33)")

# -- 7. status and zdmctl status -----------------------------------------------------

with tap.section("status"):
    ctl(z, "set-weight orders:orders 30")
    ctl(z, "set-weight pay:payments 40")
    st = status(z)
    routes = {r.get("name"): r for r in st.get("routes", [])}
    tap.eq([r.get("name") for r in st.get("routes", [])], ["orders", "pay", "assets"],
           "status: \"routes\" lists the routes in config order")
    pay = routes.get("pay", {})
    tap.eq(pay.get("match"), {"host": [PAY, "*." + PAY], "path_prefix": "/",
                              "methods": ["GET", "POST"]},
           "pay: match has its host list, path_prefix and methods")
    tap.eq(routes.get("orders", {}).get("match"), {"host": [ORDERS]}, "orders: match has its host")
    tap.ok(close_to(pay.get("split"), {"monolith": 60, "payments": 40}) and
           close_to(routes.get("orders", {}).get("split"), {"monolith": 70, "orders": 30}),
           "split: each route's current percentages", {k: v.get("split") for k, v in routes.items()})
    tap.eq([list(r.get("split", {})) for r in st.get("routes", [])],
           [["monolith", "orders"], ["monolith", "payments"], ["solo"]],
           "split: the pools in config order, the baseline first")
    tap.ok(all(r.get("split_by") == "request" for r in routes.values()),
           "split_by: request for each route", [r.get("split_by") for r in routes.values()])
    tap.eq(routes.get("orders", {}).get("pins"),
           [{"header": "x-pay", "value": "1", "pool": "payments"}],
           "orders: its pin to payments")
    tap.eq(pay.get("pins"), [], "pay: no pins")
    t_pay = pay.get("timeouts")
    tap.ok(isinstance(t_pay, dict) and any("upstream_response" in k and v in (5000, 5, "5s")
                                           for k, v in t_pay.items()),
           "pay: timeouts shows its upstream_response of 5s", t_pay)
    tap.ok(all(isinstance(r.get("pools"), list) and r["pools"] and
               all({"name", "weight", "window"} <= set(x) for x in r["pools"])
               for r in routes.values()),
           "each route has pools [{name, weight, window}]",
           [r.get("pools") for r in routes.values()])
    tap.ok(all(close_to({x["name"]: x["weight"] for x in r.get("pools", [])
                         if x.get("name") in r.get("split", {})}, r.get("split", {}))
               for r in routes.values()),
           "the pools' weights are the route's split")
    a_st = obs.admin_get(z, "/status")
    try:
        a_st = json.loads(a_st.body)
    except ValueError:
        a_st = {}
    strip = lambda doc: [{k: v for k, v in r.items() if k != "pools"} for r in doc.get("routes", [])]
    tap.eq(strip(a_st), strip(st), "the admin listener's /status has the same routes")

    rc, out, err = zdmctl(["status"], sock=z.sock_path)
    tap.eq(rc, 0, "zdmctl status: exit 0", err)
    blocks = {}
    for blk in re.split(r"\n(?=route )", "\n" + out):
        mm = re.match(r"route (\S+?):?\s", blk)
        if mm:
            blocks[mm.group(1)] = blk
    tap.eq(sorted(blocks), ["assets", "orders", "pay"],
           "zdmctl status: one block per route, each starting with 'route NAME'", out)
    pct = lambda name, v: r"\b%s\s+%s(\.0+)?\s*%%" % (name, v)
    tap.ok(re.search(pct("monolith", 70), blocks.get("orders", "")) and
           re.search(pct("orders", 30), blocks.get("orders", "")),
           "the orders block: monolith 70%, orders 30%", blocks.get("orders"))
    tap.ok(re.search(pct("monolith", 60), blocks.get("pay", "")) and
           re.search(pct("payments", 40), blocks.get("pay", "")) and
           PAY in blocks.get("pay", ""),
           "the pay block: its host, monolith 60%, payments 40%", blocks.get("pay"))
    tap.ok(re.search(pct("solo", 100), blocks.get("assets", "")) and
           "monolith" not in blocks.get("assets", ""),
           "the assets block: solo 100% and no other pool", blocks.get("assets"))
    rc, out, err = zdmctl(["--json", "status"], sock=z.sock_path)
    try:
        j = json.loads(out)
    except ValueError:
        j = {}
    tap.eq(strip(j), strip(status(z)), "zdmctl --json status: the same routes as the socket")

# -- 5. the state file across restarts ------------------------------------------------

with tap.section("state file across a restart"):
    ctl(z, "set-weight orders:orders 35")
    ctl(z, "set-weight pay:payments 10")
    doc = read_state(state)
    tap.eq(doc.get("version"), 2, "the state file is version 2")
    tap.ok(splits_are(state_splits(doc), {"orders": {"monolith": 65, "orders": 35},
                                          "pay": {"monolith": 90, "payments": 10},
                                          "assets": {"solo": 100}}),
           "routes.NAME.split.POOL.weight holds each route's split", doc)
    before = splits(status(z))
    z.stop()
    tap.eq(z.proc.returncode, 0, "zdmd stopped: exit 0")
    z.start()
    tap.ok(splits_are(splits(status(z)), before),
           "after a restart every route has its runtime split back", (before, splits(status(z))))
    tap.ok(near(spread(z, ORDERS, 100), {"m": 65, "o": 35}, 1) and
           near(spread(z, PAY, 100), {"m": 90, "p": 10}, 1),
           "and traffic follows them (orders 65/35, pay 90/10, ±1 of 100)")
    z.kill()
    z.spec = spec_for(routes=[route_orders(), route_pay({"monolith": 70, "payments": 30}),
                              route_assets()], state=state, admin=z.spec["admin"])
    z.start()
    tap.ok(splits_are(splits(status(z)), {"orders": {"monolith": 65, "orders": 35},
                                          "pay": {"monolith": 70, "payments": 30},
                                          "assets": {"solo": 100}}),
           "killed, then restarted with pay's split edited: pay takes the file's 70/30, "
           "orders keeps its runtime 65/35", splits(status(z)))


def fresh_state(content):
    path = os.path.join(tmpdir(), "state.json")
    with open(path, "wb") as f:
        f.write(content)
    return path


with tap.section("state files of other shapes"):
    # The format written before routes existed: the weights in the pools.
    v1 = {"version": 1, "pools": {
        "old": {"weight": 75, "config_weight": 90,
                "servers": {"a": {"weight": 3, "config_weight": 1, "admin": "enabled"}}},
        "new": {"weight": 25, "config_weight": 10,
                "servers": {"b": {"weight": 1, "config_weight": 1, "admin": "draining"}}}}}
    path = fresh_state(json.dumps(v1).encode())
    zv = Zdmd(tap, {"pools": {"old": [Server(m.address, "a")],
                              "new": [Server(p.address, "b")]},
                    "split": {"old": 90, "new": 10}, "state_file": path})
    st = status(zv)
    tap.ok(splits_are(splits(st), {"default": {"old": 75, "new": 25}}),
           "a version 1 state file: its percentages are those of the route default", st)
    servers = {(x["name"], sv["name"]): (sv["weight"], sv["admin"])
               for x in st.get("pools", []) for sv in x.get("servers", [])}
    tap.eq(servers, {("old", "a"): (3, "enabled"), ("new", "b"): (1, "draining")},
           "and its server weights and admin states are restored")
    tap.eq(warned(zv, path), [], "without a warning")
    ctl(zv, "set-weight new 30")
    doc = read_state(path)
    tap.ok(doc.get("version") == 2 and
           state_splits(doc) == {"default": {"old": 70, "new": 30}},
           "the next change writes it as version 2 with the route default", doc)
    zv.stop()

    # Not JSON at all: ignored with a warning, the config's values.
    path = fresh_state(b"{\"version\": 2, \"routes\": {\x00\xff not json\n")
    zc = Zdmd(tap, spec_for(state=path))
    tap.ok(zc.alive() and warned(zc, path),
           "a corrupt state file: zdmd starts and warns, naming the file", zc.stderr())
    tap.ok(splits_are(splits(status(zc)), CONFIG_SPLITS), "every route on its config split",
           splits(status(zc)))
    tap.ok(set(spread(zc, ORDERS, 5)) <= {"m", "o"} and set(spread(zc, PAY, 5)) <= {"m", "p"},
           "and it serves every route")
    ctl(zc, "set-weight orders:orders 50")
    tap.eq(state_splits(read_state(path)).get("orders"), {"monolith": 50, "orders": 50},
           "the next change replaces it with a valid one")
    zc.stop()

    def v2(routes):
        return json.dumps({"version": 2, "routes": {
            name: {"split": {pool: {"weight": w, "config_weight": CONFIG_SPLITS[name][pool]}
                             for pool, w in sp.items()}}
            for name, sp in routes.items()}, "pools": {}}).encode()

    # One route's split not summing to 100: nothing of the file applies.
    path = fresh_state(v2({"orders": {"monolith": 40, "orders": 30},
                           "pay": {"monolith": 10, "payments": 90}}))
    zc = Zdmd(tap, spec_for(state=path))
    tap.ok(zc.alive() and warned(zc, path) and
           splits_are(splits(status(zc)), CONFIG_SPLITS),
           "a route whose split sums to 70: a warning, and no route takes anything from the "
           "file (not half-applied)", (splits(status(zc)), zc.stderr()[-500:]))
    zc.stop()

    # A route the config no longer has: the others are restored.
    doc = json.loads(v2({"orders": {"monolith": 40, "orders": 60},
                         "pay": {"monolith": 10, "payments": 90}}))
    doc["routes"]["gone"] = {"split": {"monolith": {"weight": 100, "config_weight": 100}}}
    path = fresh_state(json.dumps(doc).encode())
    zc = Zdmd(tap, spec_for(state=path))
    tap.ok(splits_are(splits(status(zc)), {"orders": {"monolith": 40, "orders": 60},
                                           "pay": {"monolith": 10, "payments": 90},
                                           "assets": {"solo": 100}}),
           "a state file with a route the config lacks: the other routes' splits are "
           "restored", splits(status(zc)))
    tap.ok(warned(zc, "gone"), "and a warning names the route left out", zc.stderr()[-800:])
    zc.stop()

# -- 2. a route with a single pool -----------------------------------------------------

with tap.section("a route with a single pool in its split"):
    path = os.path.join(tmpdir(), "state.json")
    zs = Zdmd(tap, spec_for(state=path))
    for line in ("set-weight assets:solo 50", "set-weight solo 0", "set-weight assets:solo 99.99"):
        ans = ctl(zs, line)
        tap.ok(refused(ans), "%s: refused (no other pool of assets takes the rest)" % line, ans)
        tap.ok(close_to(splits(status(zs)).get("assets") or {}, {"solo": 100}),
               "%s: assets stays solo 100" % line, splits(status(zs)))
    ans = ctl(zs, "set-weight assets:solo 100")
    tap.ok(close_to(splits(status(zs)).get("assets") or {}, {"solo": 100}) and
           (is_route_answer(ans, "assets", {"solo": 100}) or refused(ans)),
           "set-weight assets:solo 100: accepted as it is or refused, solo stays 100", ans)
    ans = ctl(zs, "promote assets:solo")
    tap.ok(is_route_answer(ans, "assets", {"solo": 100}), "promote assets:solo: ok, solo 100", ans)
    ans = ctl(zs, "rollback assets")
    tap.ok(is_route_answer(ans, "assets", {"solo": 100}), "rollback assets: ok, solo 100", ans)
    tap.ok(state_splits(read_state(path)).get("assets") == {"solo": 100},
           "the state file has assets at solo 100", read_state(path))
    tap.ok(zs.alive() and status(zs).get("ok") is True, "zdmd is alive and answers status")
    tap.ok(spread(zs, ASSETS, 20) == {"s": 20} and
           set(spread(zs, ORDERS, 20)) <= {"m", "o"},
           "and serves: assets all to solo, orders to its pools")
    ans = ctl(zs, "set-weight orders:orders 30")
    tap.ok(is_route_answer(ans, "orders", {"monolith": 70, "orders": 30}),
           "other routes still take changes", ans)
    tap.ok(zs.alive(), "zdmd is still running after all of that", zs.stderr()[-800:])
    zs.stop()
    tap.eq(zs.proc.returncode, 0, "and it stops cleanly (exit 0)")

# -- 7, 8. per-route windows and metrics ------------------------------------------------

with tap.section("windows and metrics per route"):
    zm = obs.start(tap, spec_for())
    observed = {}       # (route, pool) -> 2xx seen, from the responses' X-Upstream

    def send(host, route, n, headers=None, path="/"):
        with zm.client(timeout=10) as c:
            for _ in range(n):
                r = c.request("GET", path, headers, host=host)
                k = (route, SERVER_POOL.get(r.get("x-upstream")), r.status // 100)
                observed[k] = observed.get(k, 0) + 1

    send(ORDERS, "orders", 30)
    send(PAY, "pay", 20)
    send(ORDERS, "orders", 5, PIN)
    send(PAY, "pay", 4, path="/status/503")
    tap.ok(observed.get(("orders", "payments", 2)) == 5,
           "5 pinned requests to orders went to payments", observed)

    def windows(st):
        return {(r["name"], x["name"]): x.get("window") or {}
                for r in st.get("routes", []) for x in r.get("pools", [])}

    def want_counts(cls=None):
        out = {}
        for (route, pool, c), n in observed.items():
            if cls is None or c == cls:
                out[(route, pool)] = out.get((route, pool), 0) + n
        return out

    want = want_counts()
    want5 = want_counts(5)
    full = {k: want.get(k, 0) for k in [("orders", "monolith"), ("orders", "orders"),
                                        ("orders", "payments"), ("pay", "monolith"),
                                        ("pay", "payments"), ("assets", "solo")]}
    got = {}

    def windows_match():
        got.clear()
        got.update({k: w.get("requests") for k, w in windows(status(zm)).items()})
        return got == full
    wait_for(windows_match, timeout=5)
    tap.eq(got, full, "status: each route's window counts that route's requests per pool "
                      "(orders 35 with 5 pinned, pay 24, assets 0)")
    w = windows(status(zm))
    tap.eq({k: v.get("errors_5xx") for k, v in w.items() if v.get("errors_5xx")}, want5,
           "the 503s are in pay's windows only, in the pools that answered them")
    pools_top = {x["name"]: (x.get("window") or {}).get("requests")
                 for x in status(zm).get("pools", [])}
    tap.eq(pools_top.get("monolith"), full[("orders", "monolith")] + full[("pay", "monolith")],
           "the top-level window of the shared pool monolith sums both routes")

    mx = obs.scrape(zm)
    tap.eq(mx.errors, [], "/metrics parses")
    got_m, want_m = {}, {}
    for (route, pool, c), n in observed.items():
        server = {v: k for k, v in SERVER_POOL.items()}[pool]
        want_m[(route, pool, server, "%dxx" % c)] = n
    for smp in mx.find("zdm_requests_total"):
        lb = smp.labels
        if smp.value and lb.get("route"):
            got_m[(lb.get("route"), lb.get("pool"), lb.get("server"), lb.get("code"))] = smp.value
    tap.eq(got_m, want_m, "zdm_requests_total{route,pool,server,code}: exactly the requests "
                          "sent, per route and pool")
    tap.eq(mx.value("zdm_pinned_requests_total", route="orders", pool="payments"), 5,
           "zdm_pinned_requests_total{route=orders,pool=payments} = 5")
    hist = {(smp.labels.get("route"), smp.labels.get("pool")): smp.value
            for smp in mx.find("zdm_request_duration_seconds_count") if smp.value}
    tap.eq(hist, {k: v for k, v in want.items()},
           "zdm_request_duration_seconds_count per route and pool = the requests sent")
    ctl(zm, "set-weight pay:payments 15")
    mx = obs.scrape(zm)
    gauges = {(smp.labels.get("route"), smp.labels.get("pool")): smp.value
              for smp in mx.find("zdm_pool_weight_percent")}
    gauges.pop(("orders", "payments"), None)     # a pin's pool, in no split of that route
    tap.eq(gauges,
           {("orders", "monolith"): 80, ("orders", "orders"): 20, ("pay", "monolith"): 85,
            ("pay", "payments"): 15, ("assets", "solo"): 100},
           "zdm_pool_weight_percent{route,pool}: each route's split, pay's just changed")
    zm.stop()

# -- 6. reload ------------------------------------------------------------------------

with tap.section("reload merges routes by name"):
    path = os.path.join(tmpdir(), "state.json")
    zr = Zdmd(tap, spec_for(state=path))
    ctl(zr, "set-weight orders:orders 35")
    ctl(zr, "set-weight pay:payments 10")

    slow = []

    def slow_request():
        try:
            with zr.client(timeout=15) as c:
                r = c.request("GET", "/slow/1500", host=ASSETS)
                slow.append((r.status, r.body))
        except Exception as e:
            slow.append(("exception", repr(e)))

    n0 = s.stats()["paths"].get("/slow/1500", 0)
    t = threading.Thread(target=slow_request, daemon=True)
    t.start()
    tap.ok(wait_for(lambda: s.stats()["paths"].get("/slow/1500", 0) > n0, timeout=5),
           "a slow request on route assets is in flight")

    # orders: the same split (its timeouts changed); pay: a new split;
    # assets: removed; search: added.
    route_search = {"name": "search", "match": {"host": ["search.test"]},
                    "split": {"monolith": 30, "solo": 70}}
    c2 = [route_orders(timeouts={"upstream_response": Raw("10s")}),
          route_pay({"monolith": 60, "payments": 40}), route_search]
    zr.rewrite(spec_for(routes=c2, state=path))
    rc, out, err = zdmctl(["--json", "reload"], sock=zr.sock_path)
    try:
        ans = json.loads(out)
    except ValueError:
        ans = None
    tap.ok(rc == 0 and ans == {"ok": True, "reloaded": True},
           "zdmctl --json reload: exit 0, reloaded", (rc, out, err))
    after = {"orders": {"monolith": 65, "orders": 35}, "pay": {"monolith": 60, "payments": 40},
             "search": {"monolith": 30, "solo": 70}}
    st = status(zr)
    tap.eq([r.get("name") for r in st.get("routes", [])], ["orders", "pay", "search"],
           "status: assets is gone, search is there")
    tap.ok(splits_are(splits(st), after),
           "orders keeps its runtime 65/35 (its split unchanged in the file), pay takes the "
           "file's new 60/40, search its config 30/70", splits(st))
    tap.ok(near(spread(zr, ORDERS, 100), {"m": 65, "o": 35}, 1), "traffic to orders: 65/35 (±1)")
    tap.ok(near(spread(zr, "search.test", 100), {"m": 30, "s": 70}, 1),
           "traffic to search: 30/70 (±1)")
    tap.eq(spread(zr, ASSETS, 3), {"status 404": 3},
           "requests for the removed route assets: 404 (no route matches)")
    t.join(10)
    tap.eq(slow, [(200, b"slow s\n")],
           "the request in flight on the removed route completed with 200")
    tap.ok(splits_are(state_splits(read_state(path)), after),
           "the state file has the three routes of the new config", read_state(path))

    # A config with an error: refused, the running config kept.
    good = open(zr.config_path).read()
    bad = good.replace("solo: 70", "solo: 60")
    tap.ok(bad != good, "(a broken config: search's split sums to 90)")
    zr.rewrite(text=bad)
    rc, out, err = zdmctl(["reload"], sock=zr.sock_path)
    tap.ok(rc == 1 and re.search(re.escape(zr.config_path) + r":\d+:\d+: ", err),
           "zdmctl reload of it: exit 1 with FILE:LINE:COL on stderr", (rc, out, err))
    tap.ok(splits_are(splits(status(zr)), after), "every route kept its split",
           splits(status(zr)))
    tap.ok(near(spread(zr, "search.test", 100), {"m": 30, "s": 70}, 1) and
           spread(zr, ASSETS, 1) == {"status 404": 1},
           "and the old config still serves (search 30/70, assets still gone)")
    zr.rewrite(text=bad.replace("name: \"pay\"", "name: \"orders\""))
    ans = ctl(zr, "reload")
    tap.ok(refused(ans) and [r.get("name") for r in status(zr).get("routes", [])] ==
           ["orders", "pay", "search"],
           "a config with two routes named orders: refused, the routes unchanged", ans)

    # SIGHUP: a route added; the runtime changes of the others stay.
    ctl(zr, "set-weight pay:payments 45")
    route_beta = {"name": "beta", "match": {"host": ["beta.test"]}, "split": {"payments": 100}}
    zr.rewrite(spec_for(routes=c2 + [route_beta], state=path))
    zr.signal(signal.SIGHUP)
    tap.ok(wait_for(lambda: "beta" in splits(status(zr)), timeout=5),
           "SIGHUP: the route beta appears")
    tap.ok(splits_are(splits(status(zr)), dict(after, pay={"monolith": 55, "payments": 45},
                                                beta={"payments": 100})),
           "orders keeps 65/35 and pay its runtime 55/45 across it, beta has its config split",
           splits(status(zr)))
    tap.eq(spread(zr, "beta.test", 5), {"p": 5}, "traffic to beta goes to payments")
    zr.stop()
    tap.eq(zr.proc.returncode, 0, "zdmd stops cleanly after the reloads")

tap.ok(z.alive() and status(z).get("ok") is True, "the first zdmd is still running")
tap.done()
