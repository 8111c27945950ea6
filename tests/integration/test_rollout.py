#!/usr/bin/env python3
"""The progressive rollout (SPEC §8, with §6 and §7): a route's `rollout`
section and `zdmctl rollout start|pause|resume|next|abort|status`, against
the real zdmd in front of real upstreams, under real traffic.

  1. a healthy rollout goes through every step to promoted, the split
     following it, no client request failing (with its webhook events,
     log lines and metrics)
  2. a new pool answering 20% 5xx is rolled back within interval x failures
     + 1 s of its first failures (the time is printed as a diag line), and
     every request then goes to the baseline
  3. a latency regression against the baseline with action pause: paused,
     kept at its step, resumed
  4. no traffic: inconclusive, never a step, paused after max_inconclusive
  5. significance: 1% errors on both pools is no regression, 30% is
  6. abort: the pool back to 0% whatever the state; start again works
  7. the commands, their errors, zdmctl's exit codes and output, manual
     changes of the route, routes[].rollout in status
  8. restart with a state file and reloads: the rollout goes on at its
     step; a reload without the section or with another pool rolls back
  9. webhooks: one POST per transition with every field; one that never
     answers delays nothing and its failure is logged
 10. blue-green (steps [100] with a hold): promoted, or rolled back when
     the new pool fails during the hold
 11. zdm_rollout_state / _percent / _analyses_total at a step and after a
     rollback (in 1 and 2)

Traffic comes from Load: threads with one keep-alive http.client
connection each, paced and bounded in requests and time, recording every
answer (its times, status and the upstream that answered). The upstreams'
faults are set on their /__mode (all=500 with share=S fails a share S of
the requests, deterministically)."""

import http.client
import http.server
import json
import os
import re
import signal
import socket
import threading
import time

import obs
from faults import section, need, set_mode, normal, parse_utc
from zdmtest import (TAP, Upstream, Zdmd, Raw, Client, Closed, HOST, wait_for, zdmctl,
                     tmpdir, pool_weights)

tap = TAP(deadline=90)
T_FILE = time.monotonic()

OLD, NEW, NEW2 = Upstream("old"), Upstream("new"), Upstream("new2")
ALL_UP = (OLD, NEW, NEW2)

STATES = ("idle", "running", "paused", "promoted", "rolled_back")
EVENT_FIELDS = ("event", "route", "pool", "step", "percent", "reason", "at", "instance")
ANALYSIS_SIDE = ("requests", "error_rate", "p50_ms", "p95_ms", "p99_ms")
USAGE = "usage: rollout start|pause|resume|next|abort|status [ROUTE]"

INTERVAL = 0.5
FAILURES = 2
SPEED_LIMIT = INTERVAL * FAILURES + 1.0      # SPEC §8 "Speed"

ERROR_RATE_ROLLBACK = [{"metric": "error_rate", "max": "5%", "action": "rollback"}]


# -- configs -------------------------------------------------------------------------


def rollout_cfg(**kw):
    r = {"pool": "new", "steps": [10, 50, 100], "hold": Raw("1s"), "interval": Raw("500ms"),
         "window": Raw("10s"), "min_requests": 20, "failures": FAILURES}
    r.update(kw)
    return r


def base_spec(rollout=None, **extra):
    """The default route over old and new (old 100, new 0) with ROLLOUT.
    Circuit breakers are off: the 5xx the tests ask for must not take a
    server out (that is not what is tested here)."""
    sp = {"pools": {"old": [OLD], "new": [NEW]}, "split": {"old": 100, "new": 0},
          "circuit_breaker": {"failures": 0}}
    if rollout is not None:
        sp["rollout"] = rollout
    sp.update(extra)
    return sp


def reset_upstreams():
    for u in ALL_UP:
        normal(u)


# -- control ---------------------------------------------------------------------------


def ctl(z, line):
    """One command on a new control connection; a failure is an answer too
    (so that the checks after it fail one by one instead of ending all)."""
    if not z.alive():
        return {"exception": "zdmd is not running (exit status %r)" % z.proc.poll()}
    try:
        return z.ctl(line)
    except Exception as e:
        return {"exception": repr(e)}


def ro(z, route=None):
    """The rollout object of `rollout status [ROUTE]` ({} when refused)."""
    ans = ctl(z, "rollout status" + (" " + route if route else ""))
    r = ans.get("rollout") if isinstance(ans, dict) else None
    return r if isinstance(r, dict) else {}


def split_of(st, route="default"):
    for r in (st or {}).get("routes", []) or []:
        if r.get("name") == route:
            return r.get("split")
    return None


def route_entry(st, route):
    for r in (st or {}).get("routes", []) or []:
        if r.get("name") == route:
            return r
    return None


def split(z, route="default"):
    return split_of(ctl(z, "status"), route)


def close_to(got, want):
    return (isinstance(got, dict) and set(got) == set(want) and
            all(isinstance(got[k], (int, float)) and abs(got[k] - want[k]) < 1e-6
                for k in want))


def num_eq(a, b):
    return isinstance(a, (int, float)) and not isinstance(a, bool) and abs(a - b) < 1e-6


def refused(ans, *words):
    err = (ans or {}).get("error")
    return (ans or {}).get("ok") is False and isinstance(err, str) and err.strip() != "" and \
        all(w in err for w in words)


def is_rollout_answer(ans, route, **want):
    """{"ok":true,"route":ROUTE,"rollout":{...}} whose rollout has WANT."""
    r = (ans or {}).get("rollout")
    if not (isinstance(ans, dict) and ans.get("ok") is True and ans.get("route") == route and
            isinstance(r, dict)):
        return False
    for k, v in want.items():
        if isinstance(v, (int, float)) and not isinstance(v, bool):
            if not num_eq(r.get(k), v):
                return False
        elif r.get(k) != v:
            return False
    return True


def spread(z, n, host="test.local", path="/"):
    """N GETs on one keep-alive connection: {upstream: count}, anything but
    a 200 under "status NNN"."""
    out = {}
    try:
        with z.client(timeout=10) as c:
            for _ in range(n):
                r = c.request("GET", path, host=host)
                k = r.get("x-upstream") if r.status == 200 else "status %s" % r.status
                out[k] = out.get(k, 0) + 1
    except (OSError, Closed) as e:
        out["exception"] = repr(e)
    return out


def log_has(z, level, *words):
    """zdmd's stderr lines at LEVEL ("[warn]", "[info]") holding every WORD."""
    return [ln for ln in z.stderr().splitlines()
            if "[%s]" % level in ln and all(w in ln for w in words)]


def wait_ro(z, pred, timeout, route=None, interval=0.02):
    """Polls `rollout status` until PRED(rollout) holds: the rollout then,
    or the last one seen."""
    last = [{}]

    def cond():
        last[0] = ro(z, route)
        return pred(last[0])
    wait_for(cond, timeout=timeout, interval=interval)
    return last[0]


def poll_zero(z, pool="new", route="default", timeout=8.0, every=0.02):
    """Polls status every EVERY s until the route's split has POOL at 0%:
    the monotonic time at the end of the first poll that showed it, or
    None."""
    deadline = time.monotonic() + timeout
    with z.ctl_conn() as c:
        while time.monotonic() < deadline:
            st = c.cmd("status")
            t = time.monotonic()
            sp = split_of(st, route) or {}
            if num_eq(sp.get(pool), 0):
                return t
            time.sleep(every)
    return None


def check_shape(r):
    """Problems of a STATUS object against SPEC §8's shape."""
    bad = []
    if not isinstance(r, dict):
        return ["not an object: %r" % (r,)]
    for k in ("state", "pool", "steps", "step", "percent", "step_started_at", "next_step_at",
              "hold_left_s", "reason", "analysis"):
        if k not in r:
            bad.append("no %r" % k)
    if r.get("state") not in STATES:
        bad.append("state %r" % r.get("state"))
    a = r.get("analysis")
    if a is not None:
        if not isinstance(a, dict):
            return bad + ["analysis %r" % (a,)]
        if parse_utc(a.get("at")) is None:
            bad.append("analysis.at %r is not RFC 3339 UTC" % a.get("at"))
        if a.get("verdict") not in ("pass", "fail", "inconclusive"):
            bad.append("verdict %r" % a.get("verdict"))
        for side in ("pool", "baseline"):
            s = a.get(side)
            if not isinstance(s, dict) or any(k not in s for k in ANALYSIS_SIDE):
                bad.append("analysis.%s %r lacks one of %s" % (side, s, ANALYSIS_SIDE))
        checks = a.get("checks")
        if not isinstance(checks, list) or not checks:
            bad.append("analysis.checks %r" % (checks,))
        else:
            for c in checks:
                if not isinstance(c, dict) or "metric" not in c or "value" not in c or \
                        ("max" not in c and "min" not in c) or \
                        c.get("result") not in ("pass", "fail", "inconclusive", "skipped"):
                    bad.append("check %r" % (c,))
    return bad


def find_check(r, metric):
    for c in ((r or {}).get("analysis") or {}).get("checks") or []:
        if isinstance(c, dict) and c.get("metric") == metric:
            return c
    return None


# -- traffic ----------------------------------------------------------------------------


class Load:
    """THREADS threads, each with one keep-alive http.client connection to
    zdmd doing GET PATH in a loop, RATE requests/s in all at most, until
    stop() or MAX_REQUESTS or MAX_TIME. Every answer is recorded as
    (t_sent, t_answered, status or "exc:Name", X-Upstream)."""

    def __init__(self, z, threads=1, rate=400, max_requests=40000, max_time=30.0,
                 path="/", host="test.local"):
        self.port = z.port
        self.threads = threads
        self.gap = threads / float(rate)
        self.max_requests = max_requests
        self.max_time = max_time
        self.path = path
        self.host = host
        self.recs = []
        self.lock = threading.Lock()
        self.stopping = threading.Event()
        self.ths = []

    def start(self):
        self.t_start = time.monotonic()
        for _ in range(self.threads):
            t = threading.Thread(target=self._run, daemon=True)
            t.start()
            self.ths.append(t)
        return self

    def _run(self):
        conn = None
        deadline = self.t_start + self.max_time
        while not self.stopping.is_set() and time.monotonic() < deadline:
            with self.lock:
                if len(self.recs) >= self.max_requests:
                    break
            t0 = time.monotonic()
            try:
                if conn is None:
                    conn = http.client.HTTPConnection(HOST, self.port, timeout=10)
                conn.request("GET", self.path, headers={"Host": self.host})
                resp = conn.getresponse()
                resp.read()
                rec = (t0, time.monotonic(), resp.status, resp.getheader("X-Upstream"))
                if resp.will_close:
                    conn.close()
                    conn = None
            except Exception as e:
                rec = (t0, time.monotonic(), "exc:" + type(e).__name__, None)
                if conn is not None:
                    conn.close()
                conn = None
            with self.lock:
                self.recs.append(rec)
            pause = t0 + self.gap - time.monotonic()
            if pause > 0:
                time.sleep(pause)
        if conn is not None:
            conn.close()

    def stop(self):
        self.stopping.set()
        for t in self.ths:
            t.join(15)
        return self

    def snapshot(self):
        with self.lock:
            return list(self.recs)

    def n(self, since=None):
        recs = self.snapshot()
        return len(recs) if since is None else sum(1 for r in recs if r[0] >= since)

    def bad(self):
        """Answers that are not 2xx (exceptions included)."""
        return [r for r in self.snapshot()
                if not (isinstance(r[2], int) and 200 <= r[2] < 300)]


def first_failure(recs, since, min_requests, upstream="new"):
    """The time of the first 5xx from UPSTREAM among the requests sent at
    or after SINCE, once MIN_REQUESTS of them had reached it (the request
    that completes MIN_REQUESTS included), or None."""
    mine = sorted((r for r in recs if r[0] >= since and r[3] == upstream), key=lambda r: r[1])
    for i, r in enumerate(mine):
        if i >= min_requests - 1 and isinstance(r[2], int) and r[2] >= 500:
            return r[1]
    return None


def tally(recs):
    out = {}
    for r in recs:
        k = (r[2], r[3])
        out[k] = out.get(k, 0) + 1
    return out


# -- webhook receivers ----------------------------------------------------------------------


class Hooks:
    """A real HTTP server (a thread) that answers 200 to every POST and
    records it: .events is [{"t", "method", "path", "doc"}] in arrival
    order."""

    def __init__(self):
        self.events = []
        self.lock = threading.Lock()
        rec = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _body(self):
                n = self.headers.get("Content-Length")
                if n is not None:
                    return self.rfile.read(int(n))
                if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
                    out = b""
                    while True:
                        size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                        if size == 0:
                            while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                                pass
                            return out
                        out += self.rfile.read(size)
                        self.rfile.readline()
                return b""

            def _record(self, method):
                body = self._body()
                try:
                    doc = json.loads(body.decode())
                except ValueError:
                    doc = {"unparsable": body.decode(errors="replace")}
                with rec.lock:
                    rec.events.append({"t": time.monotonic(), "method": method,
                                       "path": self.path, "doc": doc})
                self.send_response(200)
                self.send_header("Content-Length", "3")
                self.end_headers()
                self.wfile.write(b"ok\n")

            def do_POST(self):
                self._record("POST")

            def do_PUT(self):
                self._record("PUT")

            def log_message(self, *a):
                pass

        self.srv = http.server.ThreadingHTTPServer((HOST, 0), Handler)
        self.srv.daemon_threads = True
        self.url = "http://%s:%d/hooks/zdm" % (HOST, self.srv.server_address[1])
        threading.Thread(target=self.srv.serve_forever, kwargs={"poll_interval": 0.1},
                         daemon=True).start()

    def docs(self):
        with self.lock:
            return [e["doc"] for e in self.events]

    def wait(self, n, timeout):
        wait_for(lambda: len(self.docs()) >= n, timeout=timeout)
        return self.docs()


class HangingHook:
    """Accepts connections, reads what comes and never answers."""

    def __init__(self):
        self.lsock = socket.socket()
        self.lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.lsock.bind((HOST, 0))
        self.lsock.listen(16)
        self.url = "http://%s:%d/hooks/zdm" % self.lsock.getsockname()
        self.conns = []
        self.received = bytearray()
        self.lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                c, _ = self.lsock.accept()
            except OSError:
                return
            with self.lock:
                self.conns.append(c)
            threading.Thread(target=self._read, args=(c,), daemon=True).start()

    def _read(self, c):
        c.settimeout(60)
        try:
            while True:
                d = c.recv(65536)
                if not d:
                    return
                with self.lock:
                    self.received += d
        except OSError:
            return

    def accepted(self):
        with self.lock:
            return len(self.conns)


def event_problems(doc, event, step, percent, reason_words=None, reason_null=False):
    bad = []
    if not isinstance(doc, dict):
        return ["not an object: %r" % (doc,)]
    missing = [k for k in EVENT_FIELDS if k not in doc]
    if missing:
        bad.append("fields missing: %s" % missing)
    if doc.get("event") != event:
        bad.append("event %r, want %r" % (doc.get("event"), event))
    if doc.get("route") != "default" or doc.get("pool") != "new":
        bad.append("route/pool %r/%r" % (doc.get("route"), doc.get("pool")))
    if doc.get("step") != step:
        bad.append("step %r, want %r" % (doc.get("step"), step))
    if not num_eq(doc.get("percent"), percent):
        bad.append("percent %r, want %r" % (doc.get("percent"), percent))
    if parse_utc(doc.get("at")) is None:
        bad.append("at %r is not RFC 3339 UTC" % (doc.get("at"),))
    if not isinstance(doc.get("instance"), str) or not doc.get("instance"):
        bad.append("instance %r" % (doc.get("instance"),))
    reason = doc.get("reason")
    if reason_null and reason is not None:
        bad.append("reason %r, want null" % (reason,))
    if reason_words is not None and not (isinstance(reason, str) and
                                         all(w in reason for w in reason_words)):
        bad.append("reason %r lacks %s" % (reason, reason_words))
    if not reason_null and reason is not None and not isinstance(reason, str):
        bad.append("reason %r" % (reason,))
    return bad


def rollout_metrics(z):
    """(states {state: value}, percent, {verdict: value}, exposition)."""
    m = obs.scrape(z)
    states = {s: m.value("zdm_rollout_state", route="default", state=s) for s in STATES}
    pct = m.value("zdm_rollout_percent", route="default")
    verdicts = {v: m.value("zdm_rollout_analyses_total", route="default", verdict=v)
                for v in ("pass", "fail", "inconclusive")}
    return states, pct, verdicts, m


def one_hot(states, want):
    return states == {s: (1 if s == want else 0) for s in STATES}


# == 1, 9, 11. A healthy rollout ==============================================================

with section(tap, "1. a healthy rollout goes to promoted"):
    reset_upstreams()
    hooks = Hooks()
    z1 = obs.start(tap, base_spec(rollout_cfg(webhook=hooks.url)))
    r0 = ro(z1)
    tap.ok(r0.get("state") == "idle" and r0.get("step") == 0 and r0.get("pool") == "new" and
           r0.get("steps") == [10, 50, 100] and num_eq(r0.get("percent"), 0) and
           r0.get("analysis") is None and r0.get("step_started_at") is None and
           r0.get("next_step_at") is None and not check_shape(r0),
           "before start: state idle, step 0, percent 0, steps [10, 50, 100], no analysis",
           (r0, check_shape(r0)))
    states, pct, verdicts, m = rollout_metrics(z1)
    tap.eq(m.errors, [], "/metrics parses")
    tap.eq((m.types.get("zdm_rollout_state"), m.types.get("zdm_rollout_percent"),
            m.types.get("zdm_rollout_analyses_total")), ("gauge", "gauge", "counter"),
           "the three zdm_rollout_* families have their TYPE lines before any rollout")
    tap.ok(one_hot(states, "idle") and num_eq(pct, 0),
           "idle: zdm_rollout_state{state=idle} 1, the others 0; zdm_rollout_percent 0",
           (states, pct))

    load = Load(z1, rate=400).start()
    need(tap, wait_for(lambda: load.n() >= 40, timeout=5) and not load.bad(),
         "the load runs (all to old, all 200)", tally(load.snapshot()))
    t_start = time.monotonic()
    ans = ctl(z1, "rollout start")
    need(tap, is_rollout_answer(ans, "default", state="running", step=1, percent=10),
         "rollout start: {ok, route default, rollout: running, step 1, percent 10}", ans)
    st = ctl(z1, "status")
    tap.ok(close_to(split_of(st), {"old": 90, "new": 10}) and
           num_eq(pool_weights(st).get("new"), 10) and num_eq(pool_weights(st).get("old"), 90),
           "status: the split is old 90 / new 10, pools[].weight too",
           (split_of(st), pool_weights(st)))
    tap.ok(route_entry(st, "default") and isinstance(route_entry(st, "default").get("rollout"),
                                                     dict) and
           route_entry(st, "default")["rollout"].get("state") == "running",
           "status: routes[0].rollout is the rollout (running)", route_entry(st, "default"))
    states, pct, verdicts, m = rollout_metrics(z1)
    tap.ok(one_hot(states, "running") and num_eq(pct, 10),
           "step 1: zdm_rollout_state{state=running} 1 (the others 0), zdm_rollout_percent 10",
           (states, pct))

    polls = []              # (t before, t after, rollout, split, pool weights)
    metrics_step2 = None
    with z1.ctl_conn() as c:
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            ta = time.monotonic()
            r = c.cmd("rollout status").get("rollout") or {}
            s = c.cmd("status")
            tb = time.monotonic()
            polls.append((ta, tb, r, split_of(s), pool_weights(s)))
            if r.get("step") == 2 and r.get("state") == "running" and metrics_step2 is None:
                metrics_step2 = rollout_metrics(z1)
                metrics_step2 = metrics_step2 + (c.cmd("rollout status").get("rollout") or {},)
            if r.get("state") != "running":
                break
            time.sleep(0.05)
    t_end = polls[-1][1] if polls else time.monotonic()
    final = polls[-1][2] if polls else {}
    tap.diag("promoted %.2f s after the start" % (t_end - t_start))
    seq = []
    for _, _, r, _, _ in polls:
        k = (r.get("state"), r.get("step"), r.get("percent"))
        if not seq or seq[-1] != k:
            seq.append(k)
    tap.eq(seq, [("running", 1, 10), ("running", 2, 50), ("running", 3, 100),
                 ("promoted", 3, 100)],
           "seen along the way: running at steps 1 (10%), 2 (50%), 3 (100%), then promoted")
    shapes = [b for _, _, r, _, _ in polls for b in check_shape(r)]
    tap.eq(shapes[:5], [], "every status seen has the shape of SPEC §8")
    tap.ok(t_end - t_start >= 3 * 1.0 - 0.05,
           "promoted no sooner than the three holds of 1 s (%.2f s)" % (t_end - t_start))
    # The split follows the rollout: each poll's split is the percent of that
    # poll or of the next (a step may come between the two questions).
    mism = []
    for i, (_, _, r, sp, pw) in enumerate(polls):
        cands = [r.get("percent")] + ([polls[i + 1][2].get("percent")] if i + 1 < len(polls)
                                      else [])
        got = (sp or {}).get("new")
        if not any(num_eq(got, p) for p in cands if p is not None) or \
                not num_eq(pw.get("new"), got) or \
                not num_eq((sp or {}).get("old", -1) + (got or 0), 100):
            mism.append((r.get("step"), r.get("percent"), sp, pw))
    tap.eq(mism, [], "the route's split (and pools[].weight) follows the rollout's percent "
                     "at every poll")
    splits_seen = sorted({tuple(sorted((sp or {}).items())) for _, _, _, sp, _ in polls})
    tap.eq(splits_seen, sorted([(("new", 10), ("old", 90)), (("new", 50), ("old", 50)),
                                (("new", 100), ("old", 0))]),
           "splits seen: 90/10, 50/50, 0/100")
    running1 = [r for _, _, r, _, _ in polls if r.get("step") == 1 and r.get("state") == "running"]
    if running1:
        r = running1[0]
        a, b = parse_utc(r.get("step_started_at")), parse_utc(r.get("next_step_at"))
        hl = r.get("hold_left_s")
        tap.ok(a is not None and b is not None and 0 <= b - a <= 2.01 and
               isinstance(hl, (int, float)) and -0.01 <= hl <= 1.05,
               "at step 1: step_started_at and next_step_at are RFC 3339, about a hold (1 s) "
               "apart; hold_left_s within [0, 1]", r)
    analysed = [r for _, _, r, _, _ in polls if r.get("analysis")]
    tap.ok(analysed and all(not check_shape(r) for r in analysed) and
           {c.get("metric") for c in analysed[-1]["analysis"]["checks"]} ==
           {"error_rate", "error_rate_vs_baseline", "availability"} and
           "min" in (find_check(analysed[-1], "availability") or {}),
           "the analyses have pool, baseline and the default checks (error_rate, "
           "error_rate_vs_baseline, availability with a min)",
           analysed[-1] if analysed else polls[-3:])
    tap.ok(any((r.get("analysis") or {}).get("verdict") == "pass" for r in analysed),
           "passing analyses were seen", [(r.get("analysis") or {}).get("verdict")
                                          for r in analysed][:20])
    tap.ok(final.get("state") == "promoted" and num_eq(final.get("percent"), 100) and
           close_to(split(z1), {"old": 0, "new": 100}),
           "promoted: the pool stays at 100%", (final, split(z1)))

    # The share of the new pool at each step, from the answers themselves:
    # requests sent after the first poll showing the step and answered
    # before the last poll showing it.
    for step, pctg in ((1, 10), (2, 50), (3, 100)):
        ps = [(ta, tb) for ta, tb, r, _, _ in polls
              if r.get("step") == step and r.get("state") == "running"]
        if len(ps) < 2:
            tap.ok(False, "step %d seen twice at least" % step, ps)
            continue
        lo, hi = ps[0][1], ps[-1][0]
        inside = [r for r in load.snapshot() if r[0] >= lo and r[1] <= hi]
        nn = sum(1 for r in inside if r[3] == "new")
        tap.ok(len(inside) >= 20 and abs(nn - len(inside) * pctg / 100.0) <= 2 + len(inside) * 0.02,
               "step %d: %d of %d requests answered by new (%d%% wanted)" % (
                   step, nn, len(inside), pctg), tally(inside))
    t_prom = polls[-1][1]
    tap.ok(wait_for(lambda: load.n(since=t_prom) >= 150, timeout=5),
           "the load goes on after the promotion")
    load.stop()
    after = [r for r in load.snapshot() if r[0] >= t_prom]
    tap.ok(after and all(r[2] == 200 and r[3] == "new" for r in after),
           "after promotion every request (%d) is answered by new" % len(after), tally(after))
    recs = load.snapshot()
    tap.eq(load.bad(), [], "no client request failed during the whole rollout (%d requests, "
                           "non-2xx or exceptions: 0)" % len(recs))
    states, pct, verdicts, m = rollout_metrics(z1)
    tap.ok(one_hot(states, "promoted") and num_eq(pct, 100),
           "promoted: zdm_rollout_state{state=promoted} 1, percent 100", (states, pct))
    if metrics_step2:
        s2, p2, v2, m2, r2 = metrics_step2
        tap.ok(r2.get("step") == 2 and one_hot(s2, "running") and num_eq(p2, 50) and
               isinstance(v2.get("pass"), (int, float)) and v2["pass"] >= 1,
               "at step 2: state running 1 (others 0), zdm_rollout_percent 50, "
               "zdm_rollout_analyses_total{verdict=pass} %s >= 1" % v2.get("pass"),
               (s2, p2, v2, r2.get("step")))
    else:
        tap.ok(False, "metrics taken at step 2")
    tap.ok(isinstance(verdicts.get("pass"), (int, float)) and verdicts["pass"] >= 2 and
           (verdicts.get("fail") or 0) == 0,
           "analyses_total: at least 2 pass, 0 fail over the rollout", verdicts)

    # 9. the webhook: one POST per transition, in order, every field.
    docs = hooks.wait(4, timeout=5)
    tap.eq([d.get("event") for d in docs], ["started", "step", "step", "promoted"],
           "webhook: started, step, step, promoted, in that order")
    want = [("started", 1, 10), ("step", 2, 50), ("step", 3, 100), ("promoted", 3, 100)]
    probs = []
    for d, (ev, stp, p) in zip(docs, want):
        probs += event_problems(d, ev, stp, p, reason_null=(ev != "promoted"))
    tap.eq(probs, [], "webhook: each event has event, route, pool, step, percent, reason "
                      "(null for started and step), at (RFC 3339), instance", docs)
    with hooks.lock:
        meta = [(e["method"], e["path"]) for e in hooks.events]
    tap.ok(meta and all(x == ("POST", "/hooks/zdm") for x in meta),
           "webhook: each is a POST to the URL's path", meta)
    ats = [parse_utc(d.get("at")) for d in docs]
    tap.ok(None not in ats and ats == sorted(ats), "webhook: the times are in order", ats)

    # the log lines
    tap.eq((len(log_has(z1, "info", "rollout", "started")),
            len(log_has(z1, "info", "rollout", "promoted"))), (1, 1),
           "log: one info line with 'rollout' for started, one for promoted", z1.stderr()[-1500:])
    steps_lines = [ln for ln in log_has(z1, "info", "rollout", "step")
                   if not re.search(r"\b(started|promoted|paused|resumed|rolled_back|alert)\b", ln)]
    tap.eq(len(steps_lines), 2, "log: two info lines with 'rollout' for the two step events",
           steps_lines)
    tap.eq(log_has(z1, "warn", "rollout"), [], "log: no warn line about the rollout")
    z1.stop()

# == 2, 11. 20% errors: rolled back in time =====================================================

with section(tap, "2. a new pool with 20% 5xx is rolled back in time"):
    reset_upstreams()
    set_mode(NEW, all=500, share=0.2)
    hooks2 = Hooks()
    z2 = obs.start(tap, base_spec(rollout_cfg(checks=ERROR_RATE_ROLLBACK, webhook=hooks2.url)))
    load = Load(z2, rate=400).start()
    need(tap, wait_for(lambda: load.n() >= 40, timeout=5) and not load.bad(),
         "the load runs (all to old)", tally(load.snapshot()))
    t_start = time.monotonic()
    ans = ctl(z2, "rollout start")
    need(tap, is_rollout_answer(ans, "default", state="running", step=1, percent=10),
         "rollout start: running at 10%", ans)
    t_zero = poll_zero(z2, timeout=8)
    need(tap, t_zero is not None, "the split shows new at 0%% (%.2f s after the start)" %
         ((t_zero or time.monotonic()) - t_start), (ro(z2), split(z2)))
    wait_for(lambda: load.n(since=t_zero) >= 150, timeout=5)
    load.stop()
    recs = load.snapshot()
    t_fail = first_failure(recs, t_start, 20)
    need(tap, t_fail is not None, "new answered 5xx after it had 20 requests", tally(recs))
    took = t_zero - t_fail
    tap.diag("rollback %.2f s after the first failures (limit %.2f s)" % (took, SPEED_LIMIT))
    tap.ok(0 <= took <= SPEED_LIMIT,
           "rolled back %.2f s after the first 5xx with min_requests met (at most interval x "
           "failures + 1 s = %.2f s)" % (took, SPEED_LIMIT))
    new_recs = [r for r in recs if r[3] == "new"]
    share = sum(1 for r in new_recs if r[2] == 500) / float(len(new_recs) or 1)
    tap.ok(0.15 <= share <= 0.25, "new answered %.0f%% of its %d requests with 500" % (
        share * 100, len(new_recs)))
    after = [r for r in recs if r[0] >= t_zero]
    tap.ok(len(after) >= 100 and all(r[2] == 200 and r[3] == "old" for r in after),
           "after the rollback every request (%d) goes to old and gets 200" % len(after),
           tally(after))
    others = [r for r in recs if not (isinstance(r[2], int) and 200 <= r[2] < 300) and
              not (r[2] == 500 and r[3] == "new")]
    tap.eq(others, [], "no other failure than new's own 500s")
    r = ro(z2)
    tap.ok(r.get("state") == "rolled_back" and num_eq(r.get("percent"), 0) and
           r.get("step") == 1 and not check_shape(r),
           "rollout status: rolled_back, step 1, percent 0", (r, check_shape(r)))
    reason = r.get("reason") or ""
    tap.ok(re.search(r"\berror_rate\b", reason) and re.search(r"\d+(\.\d+)?\s*%", reason) and
           re.search(r"\b5(\.0+)?\s*%", reason),
           "the reason names error_rate, its value and the max 5%%: %r" % reason)
    a = r.get("analysis") or {}
    c = find_check(r, "error_rate") or {}
    tap.ok(a.get("verdict") == "fail" and c.get("result") == "fail" and
           isinstance(c.get("value"), (int, float)) and 0.1 <= c["value"] <= 0.3 and
           num_eq(c.get("max"), 0.05),
           "the analysis: verdict fail, check error_rate failed with its value (~0.2) and "
           "max 0.05", a)
    pool = a.get("pool") or {}
    tap.ok(isinstance(pool.get("requests"), int) and pool["requests"] >= 20 and
           isinstance(pool.get("error_rate"), (int, float)) and 0.1 <= pool["error_rate"] <= 0.3 and
           isinstance((a.get("baseline") or {}).get("requests"), int) and
           a["baseline"]["requests"] > pool["requests"] and
           num_eq(a["baseline"].get("error_rate"), 0),
           "the analysis: the pool's requests (>= 20) and error rate, the baseline's (more "
           "requests, no error)", a)
    tap.ok(close_to(split(z2), {"old": 100, "new": 0}), "status: split old 100 / new 0",
           split(z2))
    states, pct, verdicts, m = rollout_metrics(z2)
    tap.ok(one_hot(states, "rolled_back") and num_eq(pct, 0) and
           (verdicts.get("fail") or 0) >= FAILURES and (verdicts.get("pass") or 0) == 0,
           "metrics after the rollback: state rolled_back 1 (others 0), percent 0, "
           "analyses fail >= 2, pass 0", (states, pct, verdicts))
    docs = hooks2.wait(2, timeout=5)
    tap.eq([d.get("event") for d in docs], ["started", "rolled_back"],
           "webhook: started, then rolled_back")
    if len(docs) >= 2:
        tap.eq(event_problems(docs[1], "rolled_back", 1, 10, reason_words=["error_rate"]), [],
               "webhook rolled_back: every field; step 1 and percent 10 (the step it happened "
               "at), the reason naming error_rate", docs[1])
        tap.eq(docs[1].get("reason"), reason, "webhook: the reason is status's")
    tap.eq(len(log_has(z2, "warn", "rollout", "rolled_back", "error_rate")), 1,
           "log: one warn line with 'rollout', 'rolled_back' and the reason",
           z2.stderr()[-1500:])
    z2.stop()

# == 9. A webhook that never answers =========================================================

hang = None
z9 = None
with section(tap, "9. a webhook that never answers delays nothing"):
    reset_upstreams()
    set_mode(NEW, all=500, share=0.2)
    hang = HangingHook()
    z9 = Zdmd(tap, base_spec(rollout_cfg(checks=ERROR_RATE_ROLLBACK, webhook=hang.url)))
    load = Load(z9, rate=400).start()
    need(tap, wait_for(lambda: load.n() >= 40, timeout=5), "the load runs")
    t_start = time.monotonic()
    ans = ctl(z9, "rollout start")
    t_ans = time.monotonic()
    need(tap, is_rollout_answer(ans, "default", state="running", step=1, percent=10),
         "rollout start: running", ans)
    tap.ok(t_ans - t_start < 0.5, "the answer to rollout start came at once (%.3f s)" %
           (t_ans - t_start))
    t_zero = poll_zero(z9, timeout=8)
    need(tap, t_zero is not None, "rolled back", ro(z9))
    wait_for(lambda: load.n(since=t_zero) >= 50, timeout=5)
    load.stop()
    recs = load.snapshot()
    t_fail = first_failure(recs, t_start, 20)
    took = (t_zero - t_fail) if t_fail is not None else None
    tap.diag("rollback %s s after the first failures with a webhook that never answers "
             "(limit %.2f s)" % ("%.2f" % took if took is not None else "?", SPEED_LIMIT))
    tap.ok(took is not None and 0 <= took <= SPEED_LIMIT,
           "with the webhook hanging: rolled back within %.2f s of the first failures" %
           SPEED_LIMIT, took)
    tap.ok(wait_for(lambda: hang.accepted() >= 1, timeout=2),
           "zdmd did connect to the hanging webhook")
    tap.ok(ro(z9).get("state") == "rolled_back", "state rolled_back")
    # Its failure (after at most 5 s) is looked at in the last section.

# == 3. Latency regression with action pause ==================================================

with section(tap, "3. latency regression vs baseline: paused"):
    reset_upstreams()
    set_mode(NEW, all="slow:60")
    z3 = Zdmd(tap, base_spec(rollout_cfg(
        checks=[{"metric": "p95_vs_baseline", "max": 2, "action": "pause"}])))
    load = Load(z3, threads=3, rate=300).start()
    need(tap, wait_for(lambda: load.n() >= 40, timeout=5), "the load runs")
    t_start = time.monotonic()
    ans = ctl(z3, "rollout start")
    need(tap, is_rollout_answer(ans, "default", state="running", step=1), "rollout start", ans)
    r = wait_ro(z3, lambda r: r.get("state") != "running", timeout=8)
    tap.diag("paused %.2f s after the start" % (time.monotonic() - t_start))
    tap.ok(r.get("state") == "paused" and r.get("step") == 1 and num_eq(r.get("percent"), 10),
           "state paused at step 1, percent 10", r)
    tap.ok("p95_vs_baseline" in (r.get("reason") or ""),
           "the reason names p95_vs_baseline: %r" % r.get("reason"))
    c = find_check(r, "p95_vs_baseline") or {}
    tap.ok(c.get("result") == "fail" and isinstance(c.get("value"), (int, float)) and
           c["value"] > 2 and num_eq(c.get("max"), 2),
           "the analysis: p95_vs_baseline failed, value > max 2", r.get("analysis"))
    a = r.get("analysis") or {}
    p95p = (a.get("pool") or {}).get("p95_ms")
    p95b = (a.get("baseline") or {}).get("p95_ms")
    tap.ok(isinstance(p95p, (int, float)) and isinstance(p95b, (int, float)) and
           p95p >= 50 and p95b < p95p / 2.0,
           "the analysis: pool p95 >= 50 ms (slow:60), under half of it for the baseline",
           (a.get("pool"), a.get("baseline")))
    # It stays paused at its step (bounded watch over three intervals).
    seen = set()
    t_end = time.monotonic() + 1.5
    while time.monotonic() < t_end:
        x = ro(z3)
        seen.add((x.get("state"), x.get("step"), x.get("percent"),
                  tuple(sorted((split(z3) or {}).items()))))
        time.sleep(0.1)
    tap.eq(seen, {("paused", 1, 10, (("new", 10), ("old", 90)))},
           "it stays paused at step 1 with the split 90/10 (1.5 s watched)")
    normal(NEW)
    ans = ctl(z3, "rollout resume")
    tap.ok(is_rollout_answer(ans, "default", state="running", step=1, percent=10) and
           (ans["rollout"].get("reason") in (None, "")),
           "rollout resume: running again at step 1, 10%, no reason", ans)
    tap.ok(close_to(split(z3), {"old": 90, "new": 10}), "split 90/10", split(z3))
    load.stop()
    tap.eq([r for r in load.bad()], [], "no client request failed")
    z3.stop()

# == 4. Zero traffic =========================================================================

with section(tap, "4. no traffic: inconclusive, then paused"):
    reset_upstreams()
    z4 = Zdmd(tap, base_spec(rollout_cfg(hold=Raw("500ms"), max_inconclusive=Raw("2s"))))
    t_start = time.monotonic()
    ans = ctl(z4, "rollout start")
    need(tap, is_rollout_answer(ans, "default", state="running", step=1), "rollout start", ans)
    polls = []
    deadline = t_start + 6
    while time.monotonic() < deadline:
        x = ro(z4)
        polls.append((time.monotonic(), x))
        if x.get("state") != "running":
            break
        time.sleep(0.05)
    t_p, last = polls[-1]
    tap.diag("paused %.2f s after the start" % (t_p - t_start))
    running = [x for _, x in polls if x.get("state") == "running"]
    tap.ok(running and all(x.get("step") == 1 and num_eq(x.get("percent"), 10) for x in running),
           "while running it never left step 1 (%d polls over %.1f s, 4 holds)" % (
               len(running), t_p - t_start), {(x.get("step"), x.get("percent")) for x in running})
    verdicts = {(x.get("analysis") or {}).get("verdict") for x in running if x.get("analysis")}
    tap.eq(verdicts, {"inconclusive"}, "every analysis seen was inconclusive")
    tap.ok(last.get("state") == "paused" and last.get("step") == 1,
           "then paused at step 1", last)
    tap.ok(2.0 - 0.05 <= t_p - t_start <= 2.0 + INTERVAL + 1.0,
           "paused after max_inconclusive 2 s (%.2f s)" % (t_p - t_start))
    tap.ok(isinstance(last.get("reason"), str) and "inconclusive" in last["reason"],
           "with a reason saying it was inconclusive: %r" % last.get("reason"))
    a = last.get("analysis") or {}
    tap.ok(a.get("verdict") == "inconclusive" and (a.get("pool") or {}).get("requests") == 0,
           "the last analysis: inconclusive, 0 requests to the pool", a)
    z4.stop()

# == 5. Significance =========================================================================

with section(tap, "5. 1% errors on both pools is no regression, 30% is"):
    reset_upstreams()
    set_mode(NEW, all=500, share=0.01)
    set_mode(OLD, all=500, share=0.01)
    vs = [{"metric": "error_rate_vs_baseline", "max": 2, "action": "rollback"}]
    z5 = obs.start(tap, base_spec(rollout_cfg(steps=[50, 100], hold=Raw("1m"), checks=vs)))
    load = Load(z5, rate=400).start()
    need(tap, wait_for(lambda: load.n() >= 40, timeout=5), "the load runs")
    t_start = time.monotonic()
    ans = ctl(z5, "rollout start")
    need(tap, is_rollout_answer(ans, "default", state="running", step=1, percent=50),
         "rollout start: running at 50%", ans)
    seen = set()
    t_end = t_start + 3.6
    while time.monotonic() < t_end:
        x = ro(z5)
        seen.add((x.get("state"), x.get("step")))
        time.sleep(0.1)
    r = ro(z5)
    states, pct, verdicts, m = rollout_metrics(z5)
    errs = tally([x for x in load.snapshot() if x[0] >= t_start and x[2] == 500])
    tap.diag("500s since the start: %s; analyses %s" % (errs, verdicts))
    tap.eq(seen, {("running", 1)}, "over 3.6 s (7 analyses) it stays running at step 1")
    tap.ok((verdicts.get("fail") or 0) == 0 and (verdicts.get("pass") or 0) >= 4,
           "no analysis failed, 4 or more passed", verdicts)
    c = find_check(r, "error_rate_vs_baseline") or {}
    a = r.get("analysis") or {}
    tap.ok(c.get("result") == "pass" and (a.get("pool") or {}).get("requests", 0) >= 200 and
           ((a.get("pool") or {}).get("error_rate") or 0) > 0 and
           ((a.get("baseline") or {}).get("error_rate") or 0) > 0,
           "the last analysis: both pools have errors, error_rate_vs_baseline passes", a)
    ans = ctl(z5, "rollout abort")
    tap.ok(is_rollout_answer(ans, "default", state="rolled_back"), "aborted", ans)

    set_mode(NEW, all=500, share=0.3)
    t_start = time.monotonic()
    ans = ctl(z5, "rollout start")
    tap.ok(is_rollout_answer(ans, "default", state="running", step=1, percent=50),
           "started again, new now at 30% errors", ans)
    r = wait_ro(z5, lambda r: r.get("state") != "running", timeout=5)
    tap.diag("rolled back %.2f s after the start" % (time.monotonic() - t_start))
    tap.ok(r.get("state") == "rolled_back" and "error_rate_vs_baseline" in (r.get("reason") or ""),
           "with 30%% errors against 1%%: rolled back, the reason naming "
           "error_rate_vs_baseline: %r" % r.get("reason"), r)
    tap.ok(close_to(split(z5), {"old": 100, "new": 0}), "split old 100", split(z5))
    load.stop()
    z5.stop()
    reset_upstreams()

# == 6. abort =================================================================================

with section(tap, "6. abort returns the pool to 0%"):
    reset_upstreams()
    z6 = Zdmd(tap, base_spec(rollout_cfg(hold=Raw("1m"))))

    def aborted(ans, desc):
        tap.ok(is_rollout_answer(ans, "default", state="rolled_back", reason="aborted by operator")
               and num_eq(ans["rollout"].get("percent"), 0),
               "%s: rollout abort: rolled_back, reason \"aborted by operator\", percent 0" % desc,
               ans)
        tap.ok(close_to(split(z6), {"old": 100, "new": 0}), "%s: split old 100 / new 0" % desc,
               split(z6))
        tap.eq(spread(z6, 20), {"old": 20}, "%s: 20 requests all to old" % desc)

    ans = ctl(z6, "rollout start")
    tap.ok(is_rollout_answer(ans, "default", state="running", step=1, percent=10), "start", ans)
    tap.ok(set(spread(z6, 20)) == {"old", "new"}, "new takes traffic")
    aborted(ctl(z6, "rollout abort"), "running at step 1")
    r = ro(z6)
    tap.ok(r.get("state") == "rolled_back" and r.get("reason") == "aborted by operator",
           "rollout status says the same", r)
    tap.ok(refused(ctl(z6, "rollout abort")), "abort again (rolled back): refused")

    ans = ctl(z6, "rollout start")
    tap.ok(is_rollout_answer(ans, "default", state="running", step=1, percent=10,
                             reason=None),
           "start after a rollback works: running at step 1, no reason", ans)
    ans = ctl(z6, "rollout next")
    tap.ok(is_rollout_answer(ans, "default", state="running", step=2, percent=50),
           "rollout next: step 2, 50%", ans)
    tap.ok(close_to(split(z6), {"old": 50, "new": 50}), "split 50/50", split(z6))
    aborted(ctl(z6, "rollout abort"), "running at step 2")

    ctl(z6, "rollout start")
    ans = ctl(z6, "rollout pause")
    tap.ok(is_rollout_answer(ans, "default", state="paused", step=1, percent=10),
           "rollout pause: paused at step 1", ans)
    aborted(ctl(z6, "rollout abort"), "paused")
    ans = ctl(z6, "rollout start")
    tap.ok(is_rollout_answer(ans, "default", state="running", step=1, percent=10),
           "and start once more works", ans)
    ctl(z6, "rollout abort")
    z6.stop()

# == 7. Commands ==============================================================================

with section(tap, "7. commands, errors, zdmctl, manual changes"):
    reset_upstreams()
    web_ro = rollout_cfg(hold=Raw("1m"), min_requests=10, failures=100,
                         checks=[{"metric": "error_rate", "max": "5%", "action": "pause"}])
    routes = [{"name": "web", "match": {"host": ["web.test"]}, "split": {"old": 100, "new": 0},
               "rollout": web_ro},
              {"name": "api", "match": {"host": ["api.test"]}, "split": {"old": 100}}]
    z7 = Zdmd(tap, {"pools": {"old": [OLD], "new": [NEW]}, "routes": routes,
                    "circuit_breaker": {"failures": 0}})
    sock = z7.sock_path

    for line, want in (("rollout", USAGE), ("rollout bogus", USAGE),
                       ("rollout start web extra", USAGE),
                       ("rollout status nope", "unknown route 'nope'"),
                       ("rollout start nope", "unknown route 'nope'"),
                       ("rollout status api", "route 'api' has no rollout section"),
                       ("rollout start api", "route 'api' has no rollout section")):
        ans = ctl(z7, line)
        tap.eq(ans, {"ok": False, "error": want}, "%s: refused with %r" % (line, want))

    ans = ctl(z7, "rollout status")
    tap.ok(is_rollout_answer(ans, "web", state="idle", step=0, pool="new",
                             steps=[10, 50, 100], analysis=None),
           "rollout status (no ROUTE, only web has a section): route web, idle, step 0", ans)
    tap.eq(ctl(z7, "rollout status web"), ans, "rollout status web: the same")
    st = ctl(z7, "status")
    tap.ok((route_entry(st, "web") or {}).get("rollout", {}) and
           route_entry(st, "web")["rollout"].get("state") == "idle" and
           "rollout" in (route_entry(st, "api") or {}) and
           route_entry(st, "api")["rollout"] is None,
           "status: routes[web].rollout is the rollout (idle), routes[api].rollout is null",
           [(r.get("name"), r.get("rollout", "absent")) for r in st.get("routes", [])])
    for line in ("rollout pause", "rollout resume", "rollout next", "rollout abort"):
        tap.ok(refused(ctl(z7, line)), "%s while idle: refused" % line)

    tap.ok(ctl(z7, "disable new/new").get("ok") is True, "(disable new/new)")
    ans = ctl(z7, "rollout start")
    tap.ok(refused(ans) and ro(z7).get("state") == "idle" and
           close_to(split(z7, "web"), {"old": 100, "new": 0}),
           "rollout start while new has no available server: refused, still idle", ans)
    tap.ok(ctl(z7, "enable new/new").get("ok") is True, "(enable new/new)")

    ans = ctl(z7, "rollout start")
    tap.ok(is_rollout_answer(ans, "web", state="running", step=1, percent=10),
           "rollout start: web running at step 1, 10%", ans)
    tap.ok(close_to(split(z7, "web"), {"old": 90, "new": 10}) and
           close_to(split(z7, "api"), {"old": 100}),
           "web's split is 90/10, api's untouched", (split(z7, "web"), split(z7, "api")))
    tap.ok(refused(ctl(z7, "rollout start")), "rollout start while running: refused")
    tap.ok(refused(ctl(z7, "rollout resume")), "rollout resume while running: refused")

    rc, out, err = zdmctl(["--json", "rollout", "next"], sock=sock)
    try:
        j = json.loads(out)
    except ValueError:
        j = None
    tap.ok(rc == 0 and is_rollout_answer(j, "web", state="running", step=2, percent=50),
           "zdmctl --json rollout next: exit 0, step 2 at 50% (a step skipped)", (rc, out, err))
    tap.ok(close_to(split(z7, "web"), {"old": 50, "new": 50}), "split 50/50", split(z7, "web"))
    rc, out, err = zdmctl(["rollout", "status"], sock=sock)
    tap.ok(rc == 0 and "running" in out and all(re.search(r"(?<![\d.])%d(?![\d])" % p, out)
                                                for p in (10, 50, 100)),
           "zdmctl rollout status (readable): exit 0, shows the state and every step", out)
    rc, out, err = zdmctl(["rollout", "start", "api"], sock=sock)
    tap.ok(rc == 1 and "route 'api' has no rollout section" in err,
           "zdmctl rollout start api: exit 1, the error on stderr", (rc, out, err))
    rc, out, err = zdmctl(["rollout", "bogus"], sock=sock)
    tap.ok(rc in (1, 2) and "usage" in err, "zdmctl rollout bogus: refused with the usage",
           (rc, out, err))
    rc, out, err = zdmctl(["rollout", "status"], sock=os.path.join(tmpdir(), "none.sock"))
    tap.ok(rc == 2, "zdmctl rollout status on a socket nobody listens on: exit 2", (rc, out, err))

    # A failing analysis: next is refused.
    set_mode(NEW, all=500)
    tap.ok(spread(z7, 60, host="web.test").get("status 500", 0) >= 25,
           "(60 requests to web: new's half answers 500)")
    r = wait_ro(z7, lambda r: (r.get("analysis") or {}).get("verdict") == "fail", timeout=3)
    tap.ok((r.get("analysis") or {}).get("verdict") == "fail" and r.get("state") == "running",
           "an analysis failed (action pause after 100: still running)", r)
    ans = ctl(z7, "rollout next")
    tap.ok(refused(ans, "the last analysis failed") and ro(z7).get("step") == 2,
           "rollout next after a failing analysis: refused (\"the last analysis failed...\"), "
           "still step 2", ans)
    normal(NEW)

    # Manual changes pause it; the manual value stays until resume.
    ans = ctl(z7, "set-weight web:new 30")
    tap.ok(ans.get("ok") is True, "set-weight web:new 30: ok", ans)
    r = ro(z7)
    tap.ok(r.get("state") == "paused" and num_eq(r.get("percent"), 30) and r.get("step") == 2,
           "the rollout is paused (step 2, percent 30)", r)
    seen = set()
    t_end = time.monotonic() + 0.8          # watched over more than an interval
    while time.monotonic() < t_end:
        seen.add((ro(z7).get("state"), tuple(sorted((split(z7, "web") or {}).items()))))
        time.sleep(0.05)
    tap.eq(seen, {("paused", (("new", 30), ("old", 70)))},
           "the manual 70/30 stays, the rollout paused (0.8 s watched)")
    ans = ctl(z7, "rollout resume")
    tap.ok(is_rollout_answer(ans, "web", state="running", step=2, percent=50),
           "rollout resume: running, back at step 2's 50%", ans)
    tap.ok(close_to(split(z7, "web"), {"old": 50, "new": 50}), "split 50/50 again",
           split(z7, "web"))
    ans = ctl(z7, "promote web:new")
    r = ro(z7)
    tap.ok(ans.get("ok") is True and r.get("state") == "paused" and
           close_to(split(z7, "web"), {"old": 0, "new": 100}),
           "promote web:new: the rollout paused, the split 0/100 stays", (ans, r))
    tap.ok(refused(ctl(z7, "rollout pause")), "rollout pause while paused: refused")
    ans = ctl(z7, "rollout resume")
    tap.ok(is_rollout_answer(ans, "web", state="running", step=2, percent=50) and
           close_to(split(z7, "web"), {"old": 50, "new": 50}),
           "rollout resume: step 2, 50/50", ans)
    ans = ctl(z7, "rollout pause")
    tap.ok(is_rollout_answer(ans, "web", state="paused", step=2, percent=50),
           "rollout pause: paused at step 2, 50%", ans)
    tap.ok(close_to(split(z7, "web"), {"old": 50, "new": 50}), "the split stays 50/50",
           split(z7, "web"))
    tap.ok(is_rollout_answer(ctl(z7, "rollout resume"), "web", state="running"),
           "rollout resume: running")
    ans = ctl(z7, "rollback web")
    r = ro(z7)
    tap.ok(ans.get("ok") is True and r.get("state") == "rolled_back" and
           num_eq(r.get("percent"), 0) and close_to(split(z7, "web"), {"old": 100, "new": 0}),
           "rollback web: the rollout ends rolled_back, web all to old", (ans, r))
    tap.ok(isinstance(r.get("reason"), str) and r["reason"], "with a reason: %r" %
           r.get("reason"))
    for line in ("rollout pause", "rollout resume", "rollout abort"):
        tap.ok(refused(ctl(z7, line)), "%s after the rollback: refused" % line)
    rc, out, err = zdmctl(["rollout", "pause"], sock=sock)
    tap.ok(rc == 1 and err.strip(), "zdmctl rollout pause then: exit 1, the error on stderr",
           (rc, out, err))
    # a rollback of every route ends it too
    ctl(z7, "rollout start")
    ans = ctl(z7, "rollback")
    tap.ok(ans.get("ok") is True and ro(z7).get("state") == "rolled_back",
           "rollback (every route) ends a running rollout rolled_back", (ans, ro(z7)))
    z7.stop()

    # Several routes with a rollout, and none.
    routes2 = [dict(routes[0]),
               {"name": "shop", "match": {"host": ["shop.test"]}, "split": {"old": 100, "new": 0},
                "rollout": rollout_cfg()}]
    z7b = Zdmd(tap, {"pools": {"old": [OLD], "new": [NEW]}, "routes": routes2})
    ans = ctl(z7b, "rollout status")
    tap.ok(refused(ans, "web", "shop"), "two routes with a rollout, no ROUTE: refused, the "
                                         "error names both", ans)
    tap.ok(is_rollout_answer(ctl(z7b, "rollout start shop"), "shop", state="running"),
           "rollout start shop: ok")
    tap.ok(ro(z7b, "web").get("state") == "idle", "web's rollout is still idle")
    z7b.stop()
    z7c = Zdmd(tap, base_spec())
    ans = ctl(z7c, "rollout status")
    tap.eq(ans, {"ok": False, "error": "no route has a rollout section"},
           "no route with a rollout section: \"no route has a rollout section\"")
    st = ctl(z7c, "status")
    tap.ok("rollout" in (route_entry(st, "default") or {}) and
           route_entry(st, "default")["rollout"] is None,
           "status: routes[default].rollout is null", route_entry(st, "default"))
    rc, out, err = zdmctl(["rollout", "start"], sock=z7c.sock_path)
    tap.ok(rc == 1 and "no route has a rollout section" in err,
           "zdmctl rollout start: exit 1, the error on stderr", (rc, out, err))
    z7c.stop()

# == 8. Restart and reload ====================================================================

with section(tap, "8. restart with a state file, reloads"):
    reset_upstreams()
    state_file = os.path.join(tmpdir(), "state.json")

    def spec8(rollout):
        sp = {"pools": {"old": [OLD], "new": [NEW], "new2": [NEW2]},
              "split": {"old": 100, "new": 0, "new2": 0}, "state_file": state_file,
              "circuit_breaker": {"failures": 0}}
        if rollout is not None:
            sp["rollout"] = rollout
        return sp

    z8 = Zdmd(tap, spec8(rollout_cfg(hold=Raw("1m"))))
    tap.ok(is_rollout_answer(ctl(z8, "rollout start"), "default", state="running", step=1),
           "started")
    ans = ctl(z8, "rollout next")
    need(tap, is_rollout_answer(ans, "default", state="running", step=2, percent=50),
         "rollout next: step 2, 50%", ans)
    r = wait_ro(z8, lambda r: (r.get("hold_left_s") or 60) <= 59.2, timeout=3)
    hold_before = r.get("hold_left_s")
    z8.stop()
    tap.eq(z8.proc.returncode, 0, "SIGTERM: zdmd exits 0")
    z8.start()
    r = ro(z8)
    tap.ok(r.get("state") == "running" and r.get("step") == 2 and num_eq(r.get("percent"), 50),
           "after a restart: running at step 2, 50%", r)
    tap.ok(close_to(split(z8), {"old": 50, "new": 50, "new2": 0}), "the split is step 2's",
           split(z8))
    tap.ok(isinstance(r.get("hold_left_s"), (int, float)) and
           isinstance(hold_before, (int, float)) and r["hold_left_s"] > hold_before,
           "the hold started again (%s s left, %s before the restart)" % (
               r.get("hold_left_s"), hold_before))
    got = spread(z8, 100)
    tap.ok(set(got) == {"old", "new"} and abs(got.get("new", 0) - 50) <= 1,
           "100 requests: 50/50 (+-1)", got)

    z8.rewrite(spec8(rollout_cfg(hold=Raw("2m"))))
    rc, out, err = zdmctl(["reload"], sock=z8.sock_path)
    r = ro(z8)
    tap.ok(rc == 0 and r.get("state") == "running" and r.get("step") == 2 and
           num_eq(r.get("percent"), 50) and (r.get("hold_left_s") or 0) > 60,
           "zdmctl reload with the holds changed (1m -> 2m), same pool: running at step 2, "
           "50%%, the new hold starting (%s s left)" % r.get("hold_left_s"), (rc, err, r))

    z8.rewrite(spec8(rollout_cfg(steps=[100], hold=Raw("2m"))))
    z8.signal(signal.SIGHUP)
    r = wait_ro(z8, lambda r: r.get("steps") == [100], timeout=5)
    tap.ok(r.get("state") == "running" and r.get("step") == 1 and num_eq(r.get("percent"), 100),
           "SIGHUP with steps [100] (fewer steps): running at its last step, 100%", r)
    tap.ok(close_to(split(z8), {"old": 0, "new": 100, "new2": 0}), "split 0/100",
           split(z8))

    z8.rewrite(spec8(rollout_cfg(pool="new2", hold=Raw("2m"))))
    ans = ctl(z8, "reload")
    r = ro(z8)
    tap.ok(ans.get("ok") is True and r.get("state") == "idle" and r.get("pool") == "new2",
           "reload with the pool changed to new2: new's rollout ended, new2's not started "
           "(idle)", (ans, r))
    tap.ok(close_to(split(z8), {"old": 100, "new": 0, "new2": 0}),
           "new back to 0% (old 100)", split(z8))
    tap.ok(log_has(z8, "warn", "rollout", "rolled_back", "reload"),
           "log: a warn line, rollout rolled_back, mentioning the reload")

    ans = ctl(z8, "rollout start")
    tap.ok(is_rollout_answer(ans, "default", state="running", pool="new2", percent=10) and
           close_to(split(z8), {"old": 90, "new": 0, "new2": 10}),
           "rollout start of new2: 10%", (ans, split(z8)))
    n_warn = len(log_has(z8, "warn", "rollout", "rolled_back"))
    z8.rewrite(spec8(None))
    z8.signal(signal.SIGHUP)
    tap.ok(wait_for(lambda: ctl(z8, "rollout status").get("error") ==
                    "no route has a rollout section", timeout=5),
           "SIGHUP without the section: the route has none any more")
    tap.ok(close_to(split(z8), {"old": 100, "new": 0, "new2": 0}),
           "the rollout was rolled back: new2 at 0%", split(z8))
    lines = log_has(z8, "warn", "rollout", "rolled_back")
    tap.ok(len(lines) == n_warn + 1 and "reload" in lines[-1],
           "log: a warn line, rollout rolled_back, mentioning the reload", lines[-2:])
    st = ctl(z8, "status")
    tap.ok((route_entry(st, "default") or {}).get("rollout", "absent") is None,
           "status: routes[default].rollout is null", route_entry(st, "default"))
    z8.stop()

# == 10. Blue-green ===========================================================================

with section(tap, "10. blue-green: steps [100] with a hold of 2 s"):
    reset_upstreams()
    z10 = Zdmd(tap, base_spec(rollout_cfg(steps=[100], hold=Raw("2s"))))
    load = Load(z10, rate=400).start()
    need(tap, wait_for(lambda: load.n() >= 40, timeout=5), "the load runs")
    t_start = time.monotonic()
    ans = ctl(z10, "rollout start")
    need(tap, is_rollout_answer(ans, "default", state="running", step=1, percent=100),
         "rollout start: running, new at 100% at once", ans)
    tap.ok(close_to(split(z10), {"old": 0, "new": 100}), "split 0/100", split(z10))
    r = wait_ro(z10, lambda r: r.get("state") != "running", timeout=6)
    t_prom = time.monotonic()
    tap.ok(r.get("state") == "promoted" and num_eq(r.get("percent"), 100),
           "healthy: promoted after the hold", r)
    tap.ok(2.0 - 0.05 <= t_prom - t_start <= 2.0 + INTERVAL + 1.0,
           "after 2 s, not before (%.2f s)" % (t_prom - t_start))
    after = [x for x in load.snapshot() if x[0] >= t_start + 0.05]
    tap.ok(after and all(x[3] == "new" and x[2] == 200 for x in after),
           "every request since the start went to new and got 200", tally(after))

    # Again, new failing during the hold.
    ctl(z10, "rollback")
    tap.ok(close_to(split(z10), {"old": 100, "new": 0}), "(rollback: old 100 again)")
    t_start = time.monotonic()
    ans = ctl(z10, "rollout start")
    tap.ok(is_rollout_answer(ans, "default", state="running", step=1, percent=100),
           "started again", ans)
    r = wait_ro(z10, lambda r: (r.get("analysis") or {}).get("verdict") == "pass", timeout=3)
    tap.ok((r.get("analysis") or {}).get("verdict") == "pass", "an analysis passed", r)
    set_mode(NEW, all=500)
    t_zero = poll_zero(z10, timeout=5)
    r = ro(z10)
    recs = load.snapshot()
    t_fail = first_failure(recs, t_start, 20)
    took = (t_zero - t_fail) if (t_zero and t_fail) else None
    tap.diag("blue-green rollback %s s after the first failures (limit %.2f s)" % (
        "%.2f" % took if took is not None else "?", SPEED_LIMIT))
    tap.ok(r.get("state") == "rolled_back" and "error_rate" in (r.get("reason") or ""),
           "new failing during the hold: rolled back (not promoted), the reason naming "
           "error_rate", r)
    tap.ok(took is not None and 0 <= took <= SPEED_LIMIT,
           "within %.2f s of the first failures" % SPEED_LIMIT, took)
    if t_zero:
        wait_for(lambda: load.n(since=t_zero) >= 50, timeout=5)
    load.stop()
    after = [x for x in load.snapshot() if t_zero and x[0] >= t_zero]
    tap.ok(after and all(x[3] == "old" and x[2] == 200 for x in after),
           "then every request goes to old and gets 200", tally(after))
    z10.stop()

# == 9, end. The hanging webhook's failure is logged ==========================================

with section(tap, "9. the hanging webhook's failure is logged"):
    if z9 is None:
        tap.ok(False, "the hanging webhook's zdmd ran")
    else:
        def hook_failed():
            return [ln for ln in z9.stderr().splitlines()
                    if "webhook" in ln and ("[warn]" in ln or "[error]" in ln)]
        lines = wait_for(hook_failed, timeout=8)
        tap.ok(lines, "zdmd logs the webhook's failure (warn or error, 'webhook')", lines)
        tap.ok(z9.alive() and ctl(z9, "status").get("ok") is True, "and answers status")
        z9.stop()

tap.diag("the file ran for %.1f s" % (time.monotonic() - T_FILE))
tap.done()
