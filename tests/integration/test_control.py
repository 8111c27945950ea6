#!/usr/bin/env python3
"""The control socket and zdmctl (SPEC §6): every command and its answer,
every error path (the connection stays usable, the proxy keeps serving),
many control clients at once, the "very next request" rule, two-decimal
percentages and the proportional share of the rest, server weights,
promote/rollback, and zdmctl's output and exit codes."""

import json
import os
import re
import socket
import threading
import time

from zdmtest import (TAP, Upstream, Zdmd, Closed, zdmctl, tmpdir,
                     pool_weights, find_server, rss)

tap = TAP(deadline=180)

SERVER_KEYS = {"name", "address", "weight", "health", "circuit", "admin",
               "inflight", "requests", "failures"}
COMMANDS = {"status", "set-weight", "promote", "rollback", "drain", "disable",
            "enable", "rollout", "reload", "help"}


def close_to(got, want, eps=0.005):
    """GOT ({pool: percent}) holds WANT to within EPS each, and no more."""
    if set(got) != set(want):
        return False
    return all(isinstance(got[k], (int, float)) and abs(got[k] - want[k]) <= eps
               for k in want)


def two_decimals(x):
    return isinstance(x, (int, float)) and abs(round(x * 100) - x * 100) < 1e-6


def pool_of(c, headers=None):
    r = c.request("GET", "/", headers)
    return r.get("x-zdm-pool") if r.status == 200 else r.status


def upstream_of(c, headers=None):
    r = c.request("GET", "/", headers)
    return r.get("x-upstream") if r.status == 200 else r.status


a, a2, b = Upstream("a"), Upstream("a2"), Upstream("b")
SPEC = {"expose_pool_header": True,
        "pools": {"old": [a, a2], "new": [b]},
        "split": {"old": 90, "new": 10},
        "pins": [{"header": "canary", "value": "true", "pool": "new"}]}
z = Zdmd(tap, SPEC)

# -- status ---------------------------------------------------------------------

with tap.section("status"):
    st = z.ctl("status")
    tap.eq(st.get("ok"), True, "status: ok")
    tap.eq(st.get("version"), "0.1.0", "status: version 0.1.0")
    tap.ok(isinstance(st.get("uptime_s"), int) and st["uptime_s"] >= 0,
           "status: uptime_s is a non-negative integer", st.get("uptime_s"))
    tap.eq([p.get("name") for p in st.get("pools", [])], ["old", "new"],
           "status: the pools in config order")
    tap.ok(close_to(pool_weights(st), {"old": 90, "new": 10}), "status: weights 90/10",
           pool_weights(st))
    servers = [s for p in st.get("pools", []) for s in p.get("servers", [])]
    tap.eq([s.get("name") for s in servers], ["a", "a2", "b"], "status: every server, in order")
    missing = [(s.get("name"), sorted(SERVER_KEYS - set(s))) for s in servers if SERVER_KEYS - set(s)]
    tap.eq(missing, [], "status: every server has %s" % ", ".join(sorted(SERVER_KEYS)))
    sa = find_server(st, "old", "a") or {}
    tap.eq((sa.get("address"), sa.get("weight"), sa.get("health"), sa.get("circuit"),
            sa.get("admin"), sa.get("inflight")),
           (a.address, 1, "up", "closed", "enabled", 0),
           "status: server a's address, weight, health, circuit, admin, inflight")
    tap.eq(st.get("pins"), [{"header": "canary", "value": "true", "pool": "new"}],
           "status: the pins")

    before = {n: (find_server(st, p, n) or {}).get("requests", 0)
              for p, n in (("old", "a"), ("old", "a2"), ("new", "b"))}
    seen = {"a": 0, "a2": 0, "b": 0}
    with z.client() as c:
        for _ in range(30):
            u = upstream_of(c)
            seen[u] = seen.get(u, 0) + 1
    st = z.ctl("status")
    after = {n: (find_server(st, p, n) or {}).get("requests", 0)
             for p, n in (("old", "a"), ("old", "a2"), ("new", "b"))}
    tap.eq({n: after[n] - before[n] for n in after}, seen,
           "status: requests per server grow by what each answered")
    tap.eq([s.get("failures") for p in st["pools"] for s in p["servers"]], [0, 0, 0],
           "status: no failures")

# -- help ------------------------------------------------------------------------

with tap.section("help"):
    h = z.ctl("help")
    tap.eq(h.get("ok"), True, "help: ok")
    cmds = h.get("commands") or []
    tap.eq({c.get("name") for c in cmds}, COMMANDS, "help: lists every command")
    tap.ok(all(isinstance(c.get("args"), str) and isinstance(c.get("help"), str) and c["help"]
               for c in cmds), "help: each command has args and a help text", cmds)

# -- set-weight POOL PERCENT ----------------------------------------------------------

with tap.section("set-weight pool"):
    r = z.ctl("set-weight new 25")
    tap.eq(r.get("ok"), True, "set-weight new 25: ok")
    tap.eq([p.get("name") for p in r.get("pools", [])], ["old", "new"],
           "set-weight: the answer lists the pools in order")
    tap.ok(close_to(pool_weights(r), {"old": 75, "new": 25}), "set-weight new 25: 75/25",
           r)
    tap.ok(close_to(pool_weights(z.status()), {"old": 75, "new": 25}), "status agrees: 75/25")
    for line, want in (("set-weight old 60", {"old": 60, "new": 40}),
                       ("set-weight new 33.33", {"old": 66.67, "new": 33.33}),
                       ("set-weight new 0.5", {"old": 99.5, "new": 0.5}),
                       ("set-weight new 12.05", {"old": 87.95, "new": 12.05}),
                       ("set-weight new 100", {"old": 0, "new": 100}),
                       ("set-weight new 0", {"old": 100, "new": 0}),
                       ("set-weight new 25.0", {"old": 75, "new": 25}),
                       ("set-weight new 10.00", {"old": 90, "new": 10})):
        r = z.ctl(line)
        tap.ok(r.get("ok") is True and close_to(pool_weights(r), want),
               "%s: %s" % (line, "/".join("%g" % v for v in want.values())), r)

with tap.section("three pools: proportional share, two decimals"):
    z3 = Zdmd(tap, {"expose_pool_header": True,
                    "pools": {"p1": [a], "p2": [a2], "p3": [b]},
                    "split": {"p1": 50, "p2": 30, "p3": 20}})
    r = z3.ctl("set-weight p1 60")
    tap.ok(close_to(pool_weights(r), {"p1": 60, "p2": 24, "p3": 16}),
           "50/30/20, set-weight p1 60: the others share 40 as 24/16", r)
    r = z3.ctl("set-weight p3 50")
    tap.ok(close_to(pool_weights(r), {"p1": 35.71, "p2": 14.29, "p3": 50}, eps=0.011),
           "then set-weight p3 50: p1/p2 share 50 in proportion 60:24 (35.71/14.29)", r)
    w = pool_weights(r)
    tap.ok(all(two_decimals(v) for v in w.values()) and abs(sum(w.values()) - 100) < 1e-6,
           "percentages have at most 2 decimals and sum to exactly 100", w)
    r = z3.ctl("set-weight p1 100")
    tap.ok(close_to(pool_weights(r), {"p1": 100, "p2": 0, "p3": 0}),
           "set-weight p1 100: 100/0/0", r)
    r = z3.ctl("set-weight p1 40")
    tap.ok(close_to(pool_weights(r), {"p1": 40, "p2": 30, "p3": 30}),
           "from 100/0/0, set-weight p1 40: the others all at 0 share 60 equally", r)
    r = z3.ctl("set-weight p2 33.33")
    w = pool_weights(r)
    tap.ok(close_to(w, {"p1": 38.10, "p2": 33.33, "p3": 28.57}, eps=0.011),
           "set-weight p2 33.33: p1/p3 share 66.67 as 40:30", r)
    tap.ok(all(two_decimals(v) for v in w.values()) and abs(sum(w.values()) - 100) < 1e-6,
           "still 2 decimals at most, summing to 100", w)
    r = z3.ctl("set-weight p2 100")
    r = z3.ctl("set-weight p2 0")
    tap.ok(close_to(pool_weights(r), {"p1": 50, "p2": 0, "p3": 50}),
           "from 0/100/0, set-weight p2 0: 50/0/50", r)
    r = z3.ctl("set-weight p1 50")
    r = z3.ctl("set-weight p2 25")
    tap.ok(close_to(pool_weights(r), {"p1": 37.5, "p2": 25, "p3": 37.5}),
           "50/0/50, set-weight p2 25: 37.5/25/37.5", r)
    r = z3.ctl("rollback")
    tap.ok(close_to(pool_weights(r), {"p1": 100, "p2": 0, "p3": 0}),
           "three pools: rollback gives the first pool 100", r)
    r = z3.ctl("promote p3")
    tap.ok(close_to(pool_weights(r), {"p1": 0, "p2": 0, "p3": 100}), "promote p3: 0/0/100", r)
    r = z3.ctl("set-weight p1 50")
    tap.ok(close_to(pool_weights(r), {"p1": 50, "p2": 0, "p3": 50}),
           "from 0/0/100, set-weight p1 50: 50/0/50 (p2 at 0 keeps 0)", r)
    r = z3.ctl("set-weight p2 20")
    tap.ok(close_to(pool_weights(r), {"p1": 40, "p2": 20, "p3": 40}), "set-weight p2 20: 40/20/40", r)
    seen = {}
    with z3.client() as c:
        for _ in range(200):
            p = pool_of(c)
            seen[p] = seen.get(p, 0) + 1
    tap.ok(79 <= seen.get("p1", 0) <= 81 and 39 <= seen.get("p2", 0) <= 41 and
           79 <= seen.get("p3", 0) <= 81,
           "200 requests split 80/40/80 (± 1)", seen)
    z3.stop()

# -- the very next request ---------------------------------------------------------

with tap.section("very next request"):
    bad = []
    with z.client() as keep, z.ctl_conn() as c:
        for i in range(20):
            target = "new" if i % 2 == 0 else "old"
            r = c.cmd("set-weight new %d" % (100 if target == "new" else 0))
            got = pool_of(keep)
            with z.client() as fresh:
                got2 = pool_of(fresh)
            if not r.get("ok") or got != target or got2 != target:
                bad.append((i, target, r.get("ok"), got, got2))
    tap.eq(bad, [], "set-weight new 100/0, 20 times: the very next request goes to that "
                    "pool, on a kept-alive and on a new connection")

with tap.section("very next request, 4 workers"):
    z4 = Zdmd(tap, {"expose_pool_header": True, "workers": 4,
                    "pools": {"old": [a], "new": [b]}, "split": {"old": 100, "new": 0}})
    keeps = [z4.client() for _ in range(8)]
    for k in keeps:
        pool_of(k)
    bad = []
    with z4.ctl_conn() as c:
        for i in range(20):
            target = "new" if i % 2 == 0 else "old"
            c.cmd("set-weight new %d" % (100 if target == "new" else 0))
            got = [pool_of(k) for k in keeps]
            if got != [target] * len(keeps):
                bad.append((i, target, got))
    tap.eq(bad, [], "workers: 4, 8 kept-alive connections: every one's next request "
                    "follows the change")
    for k in keeps:
        k.close()
    z4.stop()

with tap.section("pins win over the split"):
    z.ctl("set-weight new 0")
    with z.client() as c:
        got = [pool_of(c, [("Canary", "true")]) for _ in range(5)]
        plain = [pool_of(c) for _ in range(5)]
    tap.eq(got, ["new"] * 5, "at new 0%, a pinned request still goes to new")
    tap.eq(plain, ["old"] * 5, "and an unpinned one to old")
    z.ctl("set-weight new 10")

# -- set-weight POOL/SERVER WEIGHT -----------------------------------------------------

with tap.section("set-weight server"):
    z.ctl("set-weight new 0")
    r = z.ctl("set-weight old/a 5")
    tap.eq(r, {"ok": True, "pool": "old", "server": "a", "weight": 5},
           "set-weight old/a 5: the answer")
    tap.eq((find_server(z.status(), "old", "a") or {}).get("weight"), 5, "status: a's weight 5")
    z.ctl("set-weight old/a 3")
    seen = {}
    with z.client() as c:
        for _ in range(40):
            u = upstream_of(c)
            seen[u] = seen.get(u, 0) + 1
    tap.ok(29 <= seen.get("a", 0) <= 31 and 9 <= seen.get("a2", 0) <= 11,
           "weights a 3, a2 1: 40 requests split 30/10 (± 1)", seen)
    r = z.ctl("set-weight old/a 0")
    tap.eq(r, {"ok": True, "pool": "old", "server": "a", "weight": 0}, "set-weight old/a 0")
    with z.client() as c:
        got = [upstream_of(c) for _ in range(20)]
    tap.eq(got, ["a2"] * 20, "weight 0: a takes no new requests")
    r = z.ctl("set-weight old/a 1000")
    tap.eq(r.get("weight"), 1000, "weight 1000 is accepted")
    r = z.ctl("set-weight old/a 1")
    with z.client() as c:
        got = [upstream_of(c) for _ in range(20)]
    tap.eq((got.count("a"), got.count("a2")), (10, 10), "weight back to 1: a and a2 alternate")
    z.ctl("set-weight new 10")

# -- promote / rollback -----------------------------------------------------------------

with tap.section("promote and rollback"):
    r = z.ctl("promote new")
    tap.ok(r.get("ok") is True and close_to(pool_weights(r), {"old": 0, "new": 100}),
           "promote new: 0/100", r)
    with z.client() as c:
        tap.eq([pool_of(c) for _ in range(10)], ["new"] * 10, "after promote: all to new")
    r = z.ctl("rollback")
    tap.ok(r.get("ok") is True and close_to(pool_weights(r), {"old": 100, "new": 0}),
           "rollback: 100/0", r)
    with z.client() as c:
        tap.eq([pool_of(c) for _ in range(10)], ["old"] * 10, "after rollback: all to old")
    r = z.ctl("promote old")
    tap.ok(close_to(pool_weights(r), {"old": 100, "new": 0}), "promote old: 100/0", r)
    z.ctl("set-weight new 10")

# -- drain / disable / enable answers ----------------------------------------------------

with tap.section("drain, disable, enable answers"):
    for cmd, state in (("drain", "draining"), ("enable", "enabled"),
                       ("disable", "disabled"), ("enable", "enabled")):
        r = z.ctl("%s old/a2" % cmd)
        tap.eq(r, {"ok": True, "pool": "old", "server": "a2", "admin": state},
               "%s old/a2: the answer" % cmd)
        tap.eq((find_server(z.status(), "old", "a2") or {}).get("admin"), state,
               "%s old/a2: status says %s" % (cmd, state))
    r = z.ctl("enable old/a2")
    tap.eq(r.get("admin"), "enabled", "enable on an enabled server is fine")

# -- reload -----------------------------------------------------------------------------

with tap.section("reload answers"):
    r = z.ctl("reload", timeout=15)
    tap.eq(r, {"ok": True, "reloaded": True}, "reload with the same file: reloaded")
    good = open(z.config_path).read()
    nlines = len(good.splitlines())
    z.rewrite(text=good + "bogus_key: 1\n")
    r = z.ctl("reload", timeout=15)
    tap.eq(r.get("ok"), False, "reload of an invalid file: ok false")
    tap.ok(str(r.get("error", "")).startswith("reload failed"),
           "the error says reload failed", r)
    errs = r.get("errors") or []
    pat = re.compile("^" + re.escape(z.config_path) + r":\d+:\d+: \S")
    tap.ok(errs and all(isinstance(e, str) and pat.match(e) for e in errs),
           "errors are FILE:LINE:COL: messages", errs)
    tap.ok(any(e.startswith("%s:%d:1:" % (z.config_path, nlines + 1)) for e in errs),
           "one points at the bad key (line %d, column 1)" % (nlines + 1), errs)
    with z.client() as c:
        tap.eq(c.request("GET", "/").status, 200, "the proxy keeps serving")
    z.rewrite(text=good)
    tap.eq(z.ctl("reload", timeout=15), {"ok": True, "reloaded": True},
           "reload of the good file again: reloaded")
    tap.ok(close_to(pool_weights(z.status()), {"old": 90, "new": 10}),
           "weights unchanged by these reloads", pool_weights(z.status()))

# -- errors -----------------------------------------------------------------------------

ERRORS = [
    # (line, a word the error must name, or None)
    (b"", None),
    (b"   ", None),
    (b"frobnicate", "frobnicate"),
    (b"status now", None),
    (b"help me please", None),
    (b"set-weight", None),
    (b"set-weight new", None),
    (b"set-weight new 50 60", None),
    (b"set-weight nwe 50", "nwe"),
    (b"set-weight new abc", "abc"),
    (b"set-weight new 101", "101"),
    (b"set-weight new 100.01", None),
    (b"set-weight new -1", "-1"),
    (b"set-weight new 33.333", "33.333"),
    (b"set-weight new 1e1", None),
    (b"set-weight new nan", None),
    (b"set-weight new inf", None),
    (b"set-weight new 0x10", None),
    (b"set-weight new 5O", None),
    (b"set-weight old/a 1001", "1001"),
    (b"set-weight old/a -1", None),
    (b"set-weight old/a 1.5", None),
    (b"set-weight old/a abc", "abc"),
    (b"set-weight old/zz 5", "zz"),
    (b"set-weight nwe/a 5", "nwe"),
    (b"set-weight old/ 5", None),
    (b"set-weight /a 5", None),
    (b"set-weight old/a/b 5", None),
    (b"promote", None),
    (b"promote nwe", "nwe"),
    (b"promote new extra", None),
    (b"rollback now", None),
    (b"drain", None),
    (b"drain old", None),
    (b"drain old/zz", "zz"),
    (b"drain nwe/a", "nwe"),
    (b"drain old/a extra", None),
    (b"disable", None),
    (b"disable old/zz", "zz"),
    (b"disable nwe/a", "nwe"),
    (b"enable", None),
    (b"enable old/zz", "zz"),
    (b"enable nwe/a", "nwe"),
    (b"reload now", None),
    (b"set-weight \xff\xfe 50", None),
    (b"status \xc3\x28", None),
    (b"drain old/\xe9", None),
    (b"status\x00", None),
    (b"set-weight new " + b"1" * 5000, None),
    (b"status " + b"x" * 70000, None),
]

with tap.section("error answers"):
    st0 = z.status()
    with z.ctl_conn(timeout=10) as c:
        for line, word in ERRORS:
            show = line if len(line) < 60 else line[:40] + b"...(%d bytes)" % len(line)
            try:
                raw = c.raw(line)
            except (Closed, OSError) as e:
                tap.ok(False, "%r: an answer" % show, repr(e))
                c = z.ctl_conn(timeout=10)
                continue
            try:
                ans = json.loads(raw.decode("utf-8"))
            except ValueError as e:
                tap.ok(False, "%r: the answer is one line of JSON (UTF-8)" % show,
                       "%r: %s" % (raw[:300], e))
                continue
            err = ans.get("error")
            good = ans.get("ok") is False and isinstance(err, str) and err.strip()
            if good and word is not None:
                good = word in err
            tap.ok(good, "%r: ok false with an error%s" % (
                show, " naming %r" % word if word else ""), ans)
            try:
                after = c.cmd("status")
            except (Closed, OSError, ValueError) as e:
                after = {"exception": repr(e)}
            if not after.get("ok"):
                tap.ok(False, "%r: the connection answers the next command" % show, after)
                c = z.ctl_conn(timeout=10)
    tap.ok(True, "every error left its connection usable (failures above otherwise)")
    st1 = z.status()
    tap.eq(pool_weights(st1), pool_weights(st0), "the errors changed no weight")
    tap.eq([(s["name"], s["weight"], s["admin"]) for p in st1["pools"] for s in p["servers"]],
           [(s["name"], s["weight"], s["admin"]) for p in st0["pools"] for s in p["servers"]],
           "nor any server weight or admin state")
    with z.client() as c:
        tap.eq(c.request("GET", "/").status, 200, "the proxy kept serving")

with tap.section("framing of command lines"):
    with z.ctl_conn() as c:
        c.send("status\nhelp\nset-weight new 20\n")
        answers = [json.loads(c.read_line()) for _ in range(3)]
        tap.ok(answers[0].get("version") == "0.1.0" and "commands" in answers[1] and
               close_to(pool_weights(answers[2]), {"old": 80, "new": 20}),
               "three commands in one write: three answers, in order",
               answers)
        c.send("set-wei")
        time.sleep(0.2)
        c.send("ght new 1")
        time.sleep(0.2)
        c.send("0\n")
        r = json.loads(c.read_line())
        tap.ok(close_to(pool_weights(r), {"old": 90, "new": 10}),
               "a command split over three writes: one answer", r)
        c.send("x" * 3000)
        time.sleep(0.1)
        c.send("y" * 3000 + "\nstatus\n")
        r1 = json.loads(c.read_line())
        r2 = json.loads(c.read_line())
        tap.ok(r1.get("ok") is False and r2.get("ok") is True,
               "a 6000-byte line over two writes: an error, then the next command works",
               (r1, r2))
    with z.ctl_conn(timeout=10) as c:
        c.send("".join("set-weight new %d\n" % (i % 101) for i in range(1000)))
        got = []
        for i in range(1000):
            r = json.loads(c.read_line())
            got.append(pool_weights(r).get("new"))
        tap.eq([i for i in range(1000) if got[i] != i % 101], [],
               "1000 set-weight lines in one write: 1000 answers, each for its own line, in order")
        c.cmd("set-weight new 10")
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(5)
    s.connect(z.sock_path)
    s.sendall(b"set-weight new 5")    # no newline, then gone
    s.close()
    time.sleep(0.2)
    st = z.status()
    tap.ok(st.get("ok") and close_to(pool_weights(st), {"old": 90, "new": 10}),
           "a client gone mid-line: nothing applied, zdmd answers the next one",
           pool_weights(st))
    idle = [z.ctl_conn() for _ in range(50)]
    t0 = time.monotonic()
    st = z.status()
    tap.ok(st.get("ok") and time.monotonic() - t0 < 1.0,
           "with 50 idle control connections open, a new one is answered at once")
    tap.ok(all(c.cmd("help").get("ok") for c in idle[::7]), "and the idle ones still answer")
    for c in idle:
        c.close()

with tap.section("a client that never reads its answers"):
    r0 = rss(z.proc.pid) // 1024 or None
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect(z.sock_path)
    s.setblocking(False)
    data = b"status\n" * 10000
    sent, t0 = 0, time.monotonic()
    while time.monotonic() - t0 < 3 and sent < 1 << 20:
        try:
            sent += s.send(data)
        except BlockingIOError:
            time.sleep(0.01)
    r1 = rss(z.proc.pid) // 1024 or None
    grown = (r1 - r0) // 1024 if r0 is not None and r1 is not None else None
    tap.ok(grown is not None and grown < 32,
           "a client sending 'status' lines (%d KB) without reading the answers: zdmd's "
           "memory stays bounded (grew %s MB, limit 32 MB)" % (sent // 1024, grown),
           "zdmd should stop reading from a control client whose answers pile up unread")
    t0 = time.monotonic()
    st = z.status()
    tap.ok(st.get("ok") and time.monotonic() - t0 < 1.0,
           "meanwhile another control client is answered at once (%.3fs)" % (time.monotonic() - t0))
    with z.client() as c:
        tap.eq(c.request("GET", "/").status, 200, "and the proxy serves")
    s.close()
    time.sleep(0.2)
    tap.ok(z.alive() and z.status().get("ok"), "after that client left, zdmd still answers")

# -- many clients at once -------------------------------------------------------------------

with tap.section("20 concurrent control clients"):
    problems = []
    http_bad = []
    stop = threading.Event()

    def control_client(k):
        try:
            with z.ctl_conn(timeout=10) as c:
                for i in range(20):
                    kind = (k + i) % 4
                    if kind == 0:
                        r = c.cmd("status")
                        if not (r.get("ok") and r.get("version") and "pools" in r):
                            problems.append((k, i, "status", r))
                    elif kind == 1:
                        pct = (k * 20 + i) % 101
                        r = c.cmd("set-weight new %d" % pct)
                        w = pool_weights(r)
                        if not (r.get("ok") and "version" not in r and
                                abs(sum(w.values()) - 100) < 1e-6 and
                                abs(w.get("new", -1) - pct) < 1e-6):
                            problems.append((k, i, "set-weight new %d" % pct, r))
                    elif kind == 2:
                        wt = 1 + (k + i) % 5
                        r = c.cmd("set-weight old/a2 %d" % wt)
                        if r != {"ok": True, "pool": "old", "server": "a2", "weight": wt}:
                            problems.append((k, i, "set-weight old/a2", r))
                    else:
                        r = c.cmd("help")
                        if not (r.get("ok") and r.get("commands")):
                            problems.append((k, i, "help", r))
        except Exception as e:
            problems.append((k, "exception", repr(e)))

    def http_client():
        try:
            with z.client() as c:
                while not stop.is_set():
                    r = c.request("GET", "/")
                    if r.status != 200:
                        http_bad.append(r.status)
        except Exception as e:
            http_bad.append(repr(e))

    ht = [threading.Thread(target=http_client, daemon=True) for _ in range(2)]
    for t in ht:
        t.start()
    threads = [threading.Thread(target=control_client, args=(k,), daemon=True)
               for k in range(20)]
    t0 = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    dt = time.monotonic() - t0
    stop.set()
    for t in ht:
        t.join(10)
    tap.ok(not any(t.is_alive() for t in threads), "20 clients x 20 commands finished (%.2fs)" % dt)
    tap.eq(problems[:5], [], "every answer was the right one for its command (%d problems)"
           % len(problems))
    tap.eq(http_bad[:5], [], "HTTP requests meanwhile all answered 200")
    st = z.status()
    w = pool_weights(st)
    tap.ok(st.get("ok") and abs(sum(w.values()) - 100) < 1e-6,
           "afterwards status answers and the weights sum to 100", w)
    z.ctl("set-weight new 10")
    z.ctl("set-weight old/a2 1")

# -- zdmctl -----------------------------------------------------------------------------

with tap.section("zdmctl"):
    sock = z.sock_path
    nowhere = os.path.join(tmpdir(), "nobody.sock")

    rc, out, err = zdmctl(["help"], sock=nowhere)
    tap.eq(rc, 0, "zdmctl help without zdmd: exit 0", err)
    tap.ok(all(c in out for c in COMMANDS), "zdmctl help lists every command", out)
    rc, out, err = zdmctl(["help"])
    tap.eq(rc, 0, "zdmctl help with no socket given at all: exit 0", err)
    rc, out, err = zdmctl(["--version"])
    tap.ok(rc == 0 and "0.1.0" in out, "zdmctl --version: exit 0, 0.1.0", (rc, out, err))

    rc, out, err = zdmctl(["--json", "status"], sock=sock)
    tap.eq(rc, 0, "zdmctl --json status: exit 0", err)
    try:
        j = json.loads(out)
    except ValueError:
        j = {}
    tap.ok(j.get("ok") is True and [p["name"] for p in j.get("pools", [])] == ["old", "new"],
           "zdmctl --json status prints the status JSON", out)

    z.ctl("set-weight new 25")
    z.ctl("drain old/a2")
    rc, out, err = zdmctl(["status"], sock=sock)
    tap.eq(rc, 0, "zdmctl status: exit 0", err)
    tap.ok(not out.lstrip().startswith("{"), "zdmctl status without --json: not JSON", out)
    words = set(re.findall(r"[\w.:%/-]+", out))
    tap.ok({"old", "new", "a", "a2", "b"} <= words,
           "the table names the pools and servers", out)
    tap.ok(re.search(r"\b75(\.0+)?\b", out) and re.search(r"\b25(\.0+)?\b", out),
           "the table shows the percentages 75 and 25", out)
    tap.ok("draining" in out and "enabled" in out, "the table shows admin states", out)
    tap.ok("up" in words and "closed" in words, "the table shows health and circuit", out)
    z.ctl("enable old/a2")

    rc, out, err = zdmctl(["--json", "-s", sock, "status"])
    tap.ok(rc == 0 and out.lstrip().startswith("{"), "zdmctl --json -s SOCK status (options "
           "in the other order) works too", (rc, out[:200], err))
    rc, out, err = zdmctl(["--json", "status"], env={"ZDM_SOCKET": sock})
    tap.eq(rc, 0, "zdmctl finds the socket in $ZDM_SOCKET", err)
    rc, out, err = zdmctl(["--json", "status"], sock=sock, env={"ZDM_SOCKET": nowhere})
    tap.eq(rc, 0, "-s wins over $ZDM_SOCKET", err)

    for args, check, desc in (
            (["set-weight", "new", "30"],
             lambda: close_to(pool_weights(z.status()), {"old": 70, "new": 30}), "70/30"),
            (["set-weight", "old/a", "4"],
             lambda: (find_server(z.status(), "old", "a") or {}).get("weight") == 4, "a weight 4"),
            (["drain", "old/a"],
             lambda: (find_server(z.status(), "old", "a") or {}).get("admin") == "draining",
             "a draining"),
            (["disable", "old/a"],
             lambda: (find_server(z.status(), "old", "a") or {}).get("admin") == "disabled",
             "a disabled"),
            (["enable", "old/a"],
             lambda: (find_server(z.status(), "old", "a") or {}).get("admin") == "enabled",
             "a enabled"),
            (["promote", "new"],
             lambda: close_to(pool_weights(z.status()), {"old": 0, "new": 100}), "0/100"),
            (["rollback"],
             lambda: close_to(pool_weights(z.status()), {"old": 100, "new": 0}), "100/0"),
            (["reload"], lambda: True, "reloaded")):
        rc, out, err = zdmctl(args, sock=sock)
        tap.ok(rc == 0 and check(), "zdmctl %s: exit 0, %s" % (" ".join(args), desc),
               (rc, out, err))
    rc, out, err = zdmctl(["--json", "set-weight", "new", "10"], sock=sock)
    try:
        j = json.loads(out)
    except ValueError:
        j = {}
    tap.ok(rc == 0 and close_to(pool_weights(j), {"old": 90, "new": 10}),
           "zdmctl --json set-weight new 10: exit 0 and the JSON answer", (rc, out, err))
    z.ctl("set-weight old/a 1")

    rc, out, err = zdmctl(["set-weight", "nwe", "25"], sock=sock)
    tap.ok(rc == 1 and "nwe" in err, "zdmctl set-weight nwe 25: exit 1, the error on stderr",
           (rc, out, err))
    rc, out, err = zdmctl(["set-weight", "new", "101"], sock=sock)
    tap.ok(rc == 1 and err.strip(), "zdmctl set-weight new 101: exit 1 with a message",
           (rc, out, err))
    rc, out, err = zdmctl(["drain", "old/zz"], sock=sock)
    tap.ok(rc == 1 and "zz" in err, "zdmctl drain old/zz: exit 1", (rc, out, err))
    rc, out, err = zdmctl(["frobnicate"], sock=sock)
    tap.ok(rc in (1, 2) and err.strip(), "zdmctl frobnicate: exit 1 or 2 with a message",
           (rc, out, err))
    rc, out, err = zdmctl(["set-weight"], sock=sock)
    tap.ok(rc in (1, 2) and err.strip(), "zdmctl set-weight with no arguments: exit 1 or 2",
           (rc, out, err))

    rc, out, err = zdmctl(["status"], sock=nowhere)
    tap.ok(rc == 2 and err.strip(), "zdmctl with no zdmd at the socket: exit 2, a message",
           (rc, out, err))
    regular = os.path.join(tmpdir(), "plain-file")
    open(regular, "w").write("not a socket\n")
    rc, out, err = zdmctl(["status"], sock=regular)
    tap.ok(rc == 2 and err.strip(), "zdmctl -s on a regular file: exit 2", (rc, out, err))
    stale = os.path.join(tmpdir(), "stale.sock")
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.bind(stale)
    s.close()
    rc, out, err = zdmctl(["status"], sock=stale)
    tap.ok(rc == 2 and err.strip(), "zdmctl -s on a socket nobody listens on: exit 2",
           (rc, out, err))
    rc, out, err = zdmctl([], sock=sock)
    tap.ok(rc == 2 and err.strip(), "zdmctl without a command: exit 2", (rc, out, err))
    rc, out, err = zdmctl(["--no-such-option", "status"], sock=sock)
    tap.ok(rc == 2 and err.strip(), "zdmctl with an unknown option: exit 2", (rc, out, err))
    rc, out, err = zdmctl(["-s"])
    tap.ok(rc == 2, "zdmctl -s without a path: exit 2", (rc, out, err))

    before = pool_weights(z.status())
    rc, out, err = zdmctl(["set-weight", "new", "25\npromote new"], sock=sock)
    after = pool_weights(z.status())
    tap.ok(rc != 0 and after == before,
           "zdmctl with a newline inside an argument: refused, no command smuggled",
           (rc, out, err, before, after))

with tap.section("still serving"):
    tap.ok(z.alive(), "zdmd is running")
    with z.client() as c:
        tap.eq(c.request("GET", "/").status, 200, "and answers")
    tap.ok(z.status().get("uptime_s", -1) >= 1, "uptime_s counts the seconds")

tap.done()
