#!/usr/bin/env python3
"""Runtime control under load (issue 3): wrk drives zdmd for 10 s while the
new pool's weight changes every 100 ms and five reloads happen. No request
may fail (no non-2xx answer, no socket error), and the observed split must
follow the weight schedule. Also measures the set-weight round trip.

The figures are printed as TAP comments starting with "# load:" and
"# latency:"."""

import bisect
import json
import os
import re
import shutil
import subprocess
import threading
import time

from zdmtest import (TAP, Upstream, Zdmd, Raw, build_config, tmpdir, zdmctl, url,
                     pool_weights)

tap = TAP(deadline=150)

WRK = shutil.which("wrk")
if not WRK:
    tap.skip("load test", "wrk not installed")
    tap.done()

DURATION = 10
WEIGHTS = list(range(0, 101, 10))        # the new pool's weight, cycled
STEP = 0.1                               # seconds between weight changes
RELOAD_AT = (1.5, 3.0, 4.5, 6.0, 7.5)    # seconds into the run

LUA = r"""
-- Counts answers per pool (X-Zdm-Pool) and status, and per 10 ms of
-- CLOCK_MONOTONIC (the clock of Python's time.monotonic) when LuaJIT's ffi
-- is there, so that the split can be compared with the weight of the moment.
local threads = {}
local have_ffi, ffi = pcall(require, "ffi")
local ts
if have_ffi then
  ffi.cdef[[
    typedef struct { long tv_sec; long tv_nsec; } zdm_timespec;
    int clock_gettime(int clk, zdm_timespec *tp);
  ]]
  ts = ffi.new("zdm_timespec")
end
local function bucket()
  if not have_ffi then return nil end
  ffi.C.clock_gettime(1, ts)
  return tonumber(ts.tv_sec) * 100 + math.floor(tonumber(ts.tv_nsec) / 1e7)
end
function setup(thread)
  table.insert(threads, thread)
end
function init(args)
  pools = {}
  statuses = {}
  btotal = {}
  bnew = {}
end
function response(status, headers, body)
  local p = "none"
  for k, v in pairs(headers) do
    if string.lower(k) == "x-zdm-pool" then p = v end
  end
  pools[p] = (pools[p] or 0) + 1
  local s = tostring(status)
  statuses[s] = (statuses[s] or 0) + 1
  local b = bucket()
  if b then
    btotal[b] = (btotal[b] or 0) + 1
    if p == "new" then bnew[b] = (bnew[b] or 0) + 1 end
  end
end
function done(summary, latency, requests)
  for _, t in ipairs(threads) do
    for k, v in pairs(t:get("pools")) do
      io.write(string.format("POOL %s %d\n", k, v))
    end
    for k, v in pairs(t:get("statuses")) do
      io.write(string.format("STATUS %s %d\n", k, v))
    end
    local bn = t:get("bnew")
    for k, v in pairs(t:get("btotal")) do
      io.write(string.format("BUCKET %d %d %d\n", k, v, bn[k] or 0))
    end
  end
end
"""


def pct(values, p):
    v = sorted(values)
    if not v:
        return float("nan")
    k = max(0, min(len(v) - 1, int(round(p / 100.0 * len(v) + 0.5)) - 1))
    return v[k]


def expected_share(schedule, t0, t1):
    """The time-weighted mean of the new pool's weight over [t0, t1], from
    SCHEDULE: (time the change was answered, weight) in time order."""
    total = 0.0
    for i, (t, w) in enumerate(schedule):
        start = max(t, t0)
        end = min(schedule[i + 1][0] if i + 1 < len(schedule) else t1, t1)
        if end > start:
            total += w * (end - start)
    return total / (t1 - t0)


def parse_wrk(out):
    res = {"requests": None, "non2xx": 0, "socket_errors": {}, "rps": None,
           "pools": {}, "statuses": {}, "latency": None, "buckets": {}}
    m = re.search(r"(\d+) requests in ([\d.]+)(\w+)", out)
    if m:
        res["requests"] = int(m.group(1))
    m = re.search(r"Non-2xx or 3xx responses:\s*(\d+)", out)
    if m:
        res["non2xx"] = int(m.group(1))
    m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    if m:
        res["socket_errors"] = dict(zip(("connect", "read", "write", "timeout"),
                                        map(int, m.groups())))
    m = re.search(r"Requests/sec:\s*([\d.]+)", out)
    if m:
        res["rps"] = float(m.group(1))
    m = re.search(r"Latency\s+(\S+)\s+(\S+)\s+(\S+)", out)
    if m:
        res["latency"] = m.groups()
    for k, v in re.findall(r"^POOL (\S+) (\d+)$", out, re.M):
        res["pools"][k] = res["pools"].get(k, 0) + int(v)
    for k, v in re.findall(r"^STATUS (\S+) (\d+)$", out, re.M):
        res["statuses"][k] = res["statuses"].get(k, 0) + int(v)
    for k, tot, new in re.findall(r"^BUCKET (\d+) (\d+) (\d+)$", out, re.M):
        t, n = res["buckets"].get(int(k), (0, 0))
        res["buckets"][int(k)] = (t + int(tot), n + int(new))
    return res


a, b = Upstream("a"), Upstream("b")
state = os.path.join(tmpdir(), "state.json")
SPEC = {"expose_pool_header": True, "workers": 2, "state_file": state,
        "pools": {"old": [a], "new": [b]}, "split": {"old": 100, "new": 0}}
z = Zdmd(tap, SPEC)
# Two valid files that differ only in a harmless timeout.
text_a = build_config(z.port, dict(SPEC, timeouts={"connect": Raw("2s")}), z.dir)
text_b = build_config(z.port, dict(SPEC, timeouts={"connect": Raw("3s")}), z.dir)

with tap.section("wrk with weight changes and reloads"):
    wd = tmpdir()
    lua = os.path.join(wd, "count.lua")
    with open(lua, "w") as f:
        f.write(LUA)
    with z.client() as c:          # warm up
        for _ in range(20):
            c.request("GET", "/")
    sa0, sb0 = a.stats()["requests"], b.stats()["requests"]

    schedule = []                  # (answered at, new weight)
    rtts = []
    bad_answers = []
    stop = threading.Event()
    ctl = z.ctl_conn(timeout=10)
    r = ctl.cmd("set-weight new 0")
    schedule.append((time.monotonic(), 0))

    def changer():
        i = 1
        nxt = time.monotonic() + STEP
        while not stop.is_set():
            delay = nxt - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            w = WEIGHTS[i % len(WEIGHTS)]
            t0 = time.perf_counter()
            try:
                ans = ctl.cmd("set-weight new %d" % w)
            except Exception as e:
                bad_answers.append(repr(e))
                return
            rtts.append(time.perf_counter() - t0)
            schedule.append((time.monotonic(), w))
            if not ans.get("ok") or abs(pool_weights(ans).get("new", -1) - w) > 1e-9:
                bad_answers.append(ans)
            i += 1
            nxt += STEP

    reloads = []

    def reloader(t_start):
        for k, at in enumerate(RELOAD_AT):
            delay = t_start + at - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            z.rewrite(text=text_b if k % 2 == 0 else text_a)
            t0 = time.perf_counter()
            rc, out, err = zdmctl(["--json", "reload"], sock=z.sock_path)
            reloads.append((rc, out.strip(), err.strip(), time.perf_counter() - t0))

    env = {k: v for k, v in os.environ.items()
           if k.lower() not in ("http_proxy", "https_proxy", "all_proxy", "no_proxy")}
    ct = threading.Thread(target=changer, daemon=True)
    ct.start()
    t_start = time.monotonic()
    wrk = subprocess.Popen([WRK, "-t1", "-c20", "-d%ds" % DURATION, "--latency",
                            "-s", lua, url(z.port, "/")],
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                           stdin=subprocess.DEVNULL, env=env)
    rt = threading.Thread(target=reloader, args=(t_start,), daemon=True)
    rt.start()
    try:
        wout, _ = wrk.communicate(timeout=DURATION + 30)
    except subprocess.TimeoutExpired:
        wrk.kill()
        wout, _ = wrk.communicate()
    t_end = min(time.monotonic(), t_start + DURATION + 0.2)
    stop.set()
    ct.join(5)
    rt.join(30)
    ctl.close()
    wout = wout.decode(errors="replace")
    res = parse_wrk(wout)
    sa1, sb1 = a.stats()["requests"], b.stats()["requests"]

    tap.eq(wrk.returncode, 0, "wrk ran (exit 0)", wout)
    n = res["requests"] or 0
    tap.ok(n > 1000, "wrk completed %d requests in %ds" % (n, DURATION), wout)
    tap.eq(res["non2xx"], 0, "no non-2xx answer (wrk)", wout)
    tap.eq({k: v for k, v in res["statuses"].items() if k != "200"}, {},
           "every answer was 200 (counted by the Lua script)", res["statuses"])
    tap.eq(res["socket_errors"], {}, "no socket error (connect, read, write, timeout)", wout)
    tap.eq(len(reloads), len(RELOAD_AT), "%d reloads happened" % len(RELOAD_AT))
    def parsed(o):
        try:
            return json.loads(o)
        except ValueError:
            return o
    tap.eq([(rc, parsed(o)) for rc, o, _, _ in reloads],
           [(0, {"ok": True, "reloaded": True})] * len(reloads),
           "every reload: zdmctl exit 0, reloaded", reloads)
    tap.eq(bad_answers[:3], [], "every set-weight answered ok with the weight set")
    tap.ok(len(rtts) >= DURATION / STEP * 0.8, "%d weight changes during the run" % len(rtts))

    lua_total = sum(res["pools"].values())
    counted_new = res["pools"].get("new", 0)
    up_old, up_new = sa1 - sa0, sb1 - sb0
    tap.ok(abs(lua_total - n) <= 5, "the Lua counts cover wrk's requests (%d vs %d)" % (lua_total, n))
    tap.ok(lua_total <= up_old + up_new <= lua_total + 40,
           "the upstreams saw what wrk counted (%d vs %d)" % (up_old + up_new, lua_total))
    exp = expected_share(schedule, t_start, t_end)
    obs = 100.0 * counted_new / lua_total if lua_total else -1
    obs_up = 100.0 * up_new / (up_old + up_new) if up_old + up_new else -1
    tap.within(obs, exp - 10, exp + 10,
               "share of new (X-Zdm-Pool) %.1f%% follows the schedule's %.1f%% (± 10 points)"
               % (obs, exp))
    tap.within(obs_up, exp - 10, exp + 10,
               "share of new (counted by the upstreams) %.1f%% follows it too" % obs_up)
    # Finer: each 10 ms of answers against the weight in force then.
    if res["buckets"]:
        times = [t for t, _ in schedule]

        def weight_at(t):
            i = bisect.bisect_right(times, t) - 1
            return schedule[max(i, 0)][1]

        predicted, total_b, levels = 0.0, 0, {}
        for k, (tot, new) in res["buckets"].items():
            mid = k / 100.0 + 0.005
            w = weight_at(mid)
            predicted += tot * w / 100.0
            total_b += tot
            j = bisect.bisect_left(times, mid)
            near = min([abs(mid - times[x]) for x in (j - 1, j) if 0 <= x < len(times)] or [1])
            if near > 0.025:            # well away from a change
                lt, ln = levels.get(w, (0, 0))
                levels[w] = (lt + tot, ln + new)
        pred_share = 100.0 * predicted / total_b
        tap.within(obs, pred_share - 3, pred_share + 3,
                   "share of new %.1f%% matches the weights in force at each answer, "
                   "weighted by the request rate: %.1f%% (± 3 points)" % (obs, pred_share))
        off = {w: round(100.0 * n / t, 1) for w, (t, n) in sorted(levels.items())
               if t >= 200 and abs(100.0 * n / t - w) > 5}
        tap.eq(off, {}, "at every weight 0, 10, ... 100, the answers between changes went to "
                        "new in that proportion (± 5 points)",
               {w: (t, n) for w, (t, n) in sorted(levels.items())})
        tap.diag("load: split per weight level (weight: share of new observed): " +
                 ", ".join("%d: %.1f%%" % (w, 100.0 * n / t)
                           for w, (t, n) in sorted(levels.items()) if t))
    else:
        tap.skip("split per 10 ms", "the wrk Lua script has no ffi clock")
    tap.ok(z.alive() and z.status().get("ok"), "zdmd is running and answers status")
    try:
        with open(state) as f:
            json.load(f)
        good_state = True
    except (OSError, ValueError):
        good_state = False
    tap.ok(good_state, "the state file is valid JSON after the run")

    tap.diag("load: wrk -t1 -c20 -d%ds, workers 2, state_file on: %d requests served, "
             "%.0f req/s, %d non-2xx, socket errors %s"
             % (DURATION, n, res["rps"] or 0, res["non2xx"],
                res["socket_errors"] or "none"))
    if res["latency"]:
        tap.diag("load: request latency avg %s stdev %s max %s" % res["latency"])
    tap.diag("load: %d set-weight changes every %dms, round trip under load p50 %.3f ms, "
             "p99 %.3f ms, max %.3f ms"
             % (len(rtts), STEP * 1000, pct(rtts, 50) * 1000, pct(rtts, 99) * 1000,
                max(rtts or [0]) * 1000))
    tap.diag("load: %d reloads (zdmctl reload round trip max %.1f ms, all ok: %s)"
             % (len(reloads), max([r[3] for r in reloads] or [0]) * 1000,
                all(r[0] == 0 for r in reloads)))
    tap.diag("load: split new observed %.1f%% (X-Zdm-Pool) / %.1f%% (upstreams), "
             "expected %.1f%% from the schedule" % (obs, obs_up, exp))


def measure(zz, n=1000):
    rtts = []
    with zz.ctl_conn(timeout=10) as c:
        for i in range(n):
            t0 = time.perf_counter()
            ans = c.cmd("set-weight new %d" % (i % 101))
            rtts.append(time.perf_counter() - t0)
            if not ans.get("ok"):
                return None
    return rtts


with tap.section("set-weight round trip"):
    rtts = measure(z)
    tap.ok(rtts is not None, "1000 set-weight commands on one connection (state_file on)")
    if rtts:
        tap.diag("latency: set-weight round trip, 1000 commands on one connection, "
                 "state_file on (written and fsynced per change): p50 %.3f ms, p99 %.3f ms, "
                 "max %.3f ms" % (pct(rtts, 50) * 1000, pct(rtts, 99) * 1000, max(rtts) * 1000))
    z2 = Zdmd(tap, {"workers": 2, "pools": {"old": [a], "new": [b]},
                    "split": {"old": 100, "new": 0}})
    rtts = measure(z2)
    tap.ok(rtts is not None, "1000 set-weight commands on one connection (no state_file)")
    if rtts:
        tap.diag("latency: set-weight round trip, 1000 commands on one connection, "
                 "no state_file: p50 %.3f ms, p99 %.3f ms, max %.3f ms"
                 % (pct(rtts, 50) * 1000, pct(rtts, 99) * 1000, max(rtts) * 1000))
    z2.stop()

tap.done()
