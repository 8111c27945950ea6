#!/usr/bin/env python3
"""The live comparison of pools (issue 5 item 3): per pool, over a sliding
window of the last 60 s, requests/s, the share of 5xx and p50/p95/p99
latency, in the status JSON ("window" of each pool, on the control socket
and on the admin listener's /status) and in `zdmctl status`. A burst of
5xx from the new pool shows within seconds while old stays at 0; rps
follows the request rate; the percentiles follow a slow upstream to within
the 10% precision of the window's latency buckets."""

import json
import re
import time

from zdmtest import TAP, Upstream, wait_for, zdmctl
from faults import section, need, set_mode, normal
import obs

tap = TAP(deadline=58)
a, b = Upstream("a"), Upstream("b")
CANARY = [("canary", "true")]
WINDOW_KEYS = {"seconds", "requests", "rps", "errors_5xx", "error_rate", "p50_ms", "p95_ms", "p99_ms"}


def spec(**kw):
    s = {"expose_pool_header": True,
         "pools": {"old": [a], "new": [b]},
         "split": {"old": 50, "new": 50},
         "pins": [{"header": "canary", "value": "true", "pool": "new"}],
         "circuit_breaker": {"failures": 0}}     # 5xx must not take b out here
    s.update(kw)
    return s


def windows(z, via="ctl"):
    """{pool: window} from the control socket's status (or /status)."""
    if via == "ctl":
        st = z.ctl("status")
    else:
        st = json.loads(obs.admin_get(z, "/status").body)
    return {p["name"]: p.get("window") for p in st.get("pools", [])}


def burst(z, n, path="/", headers=None):
    """N requests over one keep-alive connection: {pool: [status]}."""
    out = {}
    with z.client(timeout=10) as c:
        for _ in range(n):
            r = c.request("GET", path, headers)
            out.setdefault(r.get("x-zdm-pool"), []).append(r.status)
    return out


with section(tap, "the window's shape"):
    z = obs.start(tap, spec())
    w = windows(z)
    need(tap, set(w) == {"old", "new"}, "status: a window for each pool", w)
    for p, win in w.items():
        tap.ok(isinstance(win, dict) and set(win) == WINDOW_KEYS,
               "%s: window has %s" % (p, ", ".join(sorted(WINDOW_KEYS))), win)
        tap.ok(all(isinstance(win.get(k), (int, float)) and not isinstance(win.get(k), bool)
                   and win.get(k) >= 0 for k in WINDOW_KEYS), "%s: every value a number >= 0" % p, win)
        tap.eq((win.get("requests"), win.get("errors_5xx"), win.get("error_rate"), win.get("p99_ms")),
               (0, 0, 0, 0), "%s: no traffic yet: 0 requests, 0 errors, rate 0, p99 0" % p)
    tap.ok(0 < w["old"].get("seconds", 0) <= 60, "seconds: the span covered, at most 60", w["old"])
    wa = windows(z, "admin")
    tap.eq({p: set(x) for p, x in wa.items()}, {p: WINDOW_KEYS for p in ("old", "new")},
           "/status on the admin listener has the same windows")

with section(tap, "a burst of 5xx from new shows within seconds; old stays at 0"):
    got = burst(z, 20)
    need(tap, got.get("old", []) == [200] * 10 and got.get("new", []) == [200] * 10,
         "20 requests split 10/10, all 200", got)
    w = windows(z)
    tap.eq((w["old"]["requests"], w["new"]["requests"]), (10, 10), "window requests 10 and 10")
    tap.eq((w["old"]["errors_5xx"], w["new"]["errors_5xx"]), (0, 0), "no 5xx yet")
    set_mode(b, all=500)
    t0 = time.monotonic()
    got = burst(z, 40)
    normal(b)
    need(tap, got.get("new") == [500] * 20 and got.get("old") == [200] * 20,
         "40 more: new answers 20 x 500, old 20 x 200", got)
    seen = wait_for(lambda: windows(z)["new"]["errors_5xx"] == 20, timeout=3, interval=0.05)
    dt = time.monotonic() - t0
    tap.ok(seen, "new's window shows the 20 errors (%.2fs after the burst began)" % dt)
    w = windows(z)
    tap.eq((w["new"]["requests"], w["new"]["errors_5xx"]), (30, 20), "new: 30 requests, 20 of them 5xx")
    tap.ok(abs(w["new"]["error_rate"] - 20 / 30) < 0.001, "new: error_rate %r = 20/30" % w["new"]["error_rate"])
    tap.eq((w["old"]["requests"], w["old"]["errors_5xx"], w["old"]["error_rate"]), (30, 0, 0),
           "old: 30 requests, 0 errors, error_rate 0")
    wa = windows(z, "admin")
    tap.eq({p: (x["requests"], x["errors_5xx"]) for p, x in wa.items()},
           {"old": (30, 0), "new": (30, 20)}, "/status on the admin listener says the same")
    rc, out, err = zdmctl(["--json", "status"], sock=z.sock_path)
    try:
        wj = {p["name"]: p["window"] for p in json.loads(out)["pools"]}
    except (ValueError, KeyError):
        wj = out
    tap.ok(rc == 0 and isinstance(wj, dict) and wj["new"]["errors_5xx"] == 20,
           "zdmctl --json status carries the windows", (rc, out, err))
    # 4xx are not errors of the window.
    with z.client() as c:
        st = [c.request("GET", "/status/404", CANARY).status for _ in range(5)]
    w = windows(z)
    tap.eq((st, w["new"]["requests"], w["new"]["errors_5xx"]), ([404] * 5, 35, 20),
           "five 404s count as requests, not as errors")

with section(tap, "zdmctl status (readable) shows the window per pool"):
    rc, out, err = zdmctl(["status"], sock=z.sock_path)
    tap.eq(rc, 0, "zdmctl status exits 0 with the window fields present", err)
    tap.ok("old" in out and "new" in out and "b" in out, "it lists the pools and servers", out)
    low = out.lower()
    tap.ok(("rps" in low or "req/s" in low or "requests/s" in low) and "5xx" in low and "p99" in low,
           "it shows requests/s, the share of 5xx and p99 (issue 5: 'zdmctl status ... show per pool')",
           out)
    # new's error share (20 of 35 = 57%) appears on the readable output.
    ls = out.splitlines()
    first_new = next((i for i, ln in enumerate(ls) if re.match(r"^\s*new\b", ln)), None)
    share = re.compile(r"(?<![\d.:])(57(\.\d+)?\s*%|0\.57\d*)(?![\d:])")
    tap.ok(first_new is not None and any(share.search(ln) for ln in ls[first_new:]),
           "new's 5xx share (20 of 35: 57%) is shown with new", out)
    z.stop()

with section(tap, "rps follows the request rate"):
    t_start = time.monotonic()
    z = obs.start(tap, spec(split={"old": 100, "new": 0}))
    sent = 0
    rate = 40.0
    t1 = time.monotonic()
    with z.client() as c:
        while time.monotonic() - t1 < 3.0:
            due = t1 + sent / rate
            if time.monotonic() < due:
                time.sleep(due - time.monotonic())
            c.request("GET", "/")
            sent += 1
    w = windows(z)["old"]
    elapsed = time.monotonic() - t_start
    actual = sent / elapsed
    tap.eq(w["requests"], sent, "window requests = the %d sent" % sent)
    tap.ok(0.75 * actual <= w["rps"] <= 1.25 * actual,
           "rps %.2f matches the rate since zdmd started (%d in %.2fs: %.2f/s, sent at %.0f/s for 3 s)"
           % (w["rps"], sent, elapsed, actual, rate))
    tap.ok(abs(w["seconds"] - elapsed) <= 1.5, "seconds %r: the uptime so far (%.2f), not yet 60"
           % (w["seconds"], elapsed))
    tap.eq(windows(z)["new"]["rps"], 0, "new (0%, no traffic): rps 0")
    z.stop()

with section(tap, "percentiles follow a slow upstream"):
    z = obs.start(tap, spec(split={"old": 100, "new": 0}))
    slow_dt = []
    with z.client(timeout=10) as c:
        for i in range(100):
            path = "/slow/200" if i in (30, 70) else "/"
            t0 = time.monotonic()
            r = c.request("GET", path, CANARY)
            if path != "/":
                slow_dt.append(time.monotonic() - t0)
            need(tap, r.status == 200 and r.get("x-zdm-pool") == "new", "pinned request %d answered by new" % i)
    w = windows(z)["new"]
    hi = max(slow_dt) * 1000 * 1.1 + 1
    tap.ok(200 <= w["p99_ms"] <= hi,
           "2 slow of 100: p99 %.3f ms in [200, %.1f] (the slow answers, within 10%%)" % (w["p99_ms"], hi))
    tap.ok(w["p95_ms"] < 100, "p95 %.3f ms: a fast answer" % w["p95_ms"])
    tap.ok(w["p50_ms"] < 50, "p50 %.3f ms: a fast answer" % w["p50_ms"])
    tap.ok(w["p50_ms"] <= w["p95_ms"] <= w["p99_ms"], "p50 <= p95 <= p99")
    with z.client(timeout=10) as c:
        for _ in range(8):
            t0 = time.monotonic()
            c.request("GET", "/slow/200")
            slow_dt.append(time.monotonic() - t0)
    wo = windows(z)["old"]
    hi = max(slow_dt) * 1000 * 1.1 + 1
    tap.ok(200 <= wo["p50_ms"] <= hi and 200 <= wo["p99_ms"] <= hi,
           "old, all 8 slow: p50 %.3f and p99 %.3f ms in [200, %.1f]" % (wo["p50_ms"], wo["p99_ms"], hi))
    w2 = windows(z)["new"]
    tap.eq((w2["requests"], w2["p99_ms"]), (w["requests"], w["p99_ms"]),
           "new's window is not changed by old's traffic")
    tap.ok(obs.scrape(z).errors == [], "/metrics still well-formed")
    z.stop()

tap.done()
