#!/usr/bin/env python3
"""Fault run (issue 4, deliverable 6): wrk drives GET traffic through zdmd
at a 50/50 split, two servers per pool, health checks every 200ms (fall 2,
rise 2). Phases of about 4s, one wrk run each:

  baseline    all up                                  errors asserted 0
  kill-one    new/n1's process is killed (SIGKILL)    errors reported
  kill-pool   new/n2 too: the whole new pool is gone  errors reported
  restart     n1 and n2 start again on their ports    errors reported
  recovered   once status shows them up again         errors asserted 0

Client-visible errors are wrk's non-2xx/3xx responses plus its socket
errors. The target for the kill phases is zero (failed connects of GETs are
retried on another server); they are reported, not asserted. Printed as
"# faultrun: phase X: N requests, M errors".
"""

import os
import re
import shutil
import subprocess
import time

from zdmtest import TAP, Upstream, Zdmd, Raw, tmpdir
from faults import section, need, kill, restart, wait_all, server_state

PHASE_S = 4
TALLY_LUA = r'''
local threads = {}
function setup(thread) table.insert(threads, thread) end
function init(args) counts = {} end
function response(status, headers, body)
  local up = headers["X-Upstream"] or headers["x-upstream"] or "-"
  local k = status .. ":" .. up
  counts[k] = (counts[k] or 0) + 1
end
function done(summary, latency, requests)
  local total = {}
  for _, t in ipairs(threads) do
    local c = t:get("counts")
    if c then
      for k, v in pairs(c) do total[k] = (total[k] or 0) + v end
    end
  end
  for k, v in pairs(total) do io.write(string.format("TALLY %s %d\n", k, v)) end
end
'''

tap = TAP(deadline=80)


class WrkRun:
    """One wrk run in the background."""

    def __init__(self, port, seconds, script):
        self.proc = subprocess.Popen(
            ["wrk", "-t2", "-c16", "-d%ds" % seconds, "--timeout", "2s", "-s", script,
             "http://127.0.0.1:%d/" % port],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)

    def result(self, timeout):
        out, _ = self.proc.communicate(timeout=timeout)
        out = out.decode(errors="replace")
        r = {"out": out, "requests": None, "non2xx": 0, "socket": 0, "tally": {}}
        m = re.search(r"(\d+) requests in", out)
        if m:
            r["requests"] = int(m.group(1))
        m = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
        if m:
            r["non2xx"] = int(m.group(1))
        m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
        if m:
            r["socket"] = sum(int(x) for x in m.groups())
            r["socket_detail"] = m.group(0)
        for k, v in re.findall(r"^TALLY (\S+) (\d+)$", out, re.M):
            r["tally"][k] = int(v)
        r["errors"] = r["non2xx"] + r["socket"]
        return r


def report(name, r):
    tap.diag("faultrun: phase %s: %s requests, %d errors" % (name, r["requests"], r["errors"]))
    detail = ", ".join("%s %d" % kv for kv in sorted(r["tally"].items()))
    tap.diag("faultrun:   %s; non-2xx %d; %s" % (detail or "no tally", r["non2xx"],
                                                   r.get("socket_detail", "no socket line")))


class AccessLog:
    """zdmd's access log (text format: TIME CLIENT "METHOD TARGET" STATUS
    BYTES SECONDS POOL SERVER ...), read phase by phase: what the proxy saw
    of the requests the client counted as errors."""

    LINE = re.compile(r'^(\S+) (\S+) "(.*)" (\d+) (\d+) ([\d.]+) (\S+) (\S+)')

    def __init__(self, path):
        self.path = path
        self.pos = 0

    def phase(self):
        """A summary of the lines written since the last call."""
        time.sleep(0.3)     # the log is flushed every 100ms
        try:
            with open(self.path, "rb") as f:
                f.seek(self.pos)
                data = f.read()
        except OSError:
            return "no access log"
        end = data.rfind(b"\n") + 1
        self.pos += end
        n, slow, odd = 0, [], {}
        for ln in data[:end].decode(errors="replace").splitlines():
            m = self.LINE.match(ln)
            if not m:
                continue
            n += 1
            status, secs, pool, server = int(m.group(4)), float(m.group(6)), m.group(7), m.group(8)
            if status != 200:
                k = "%d %s/%s" % (status, pool, server)
                odd[k] = odd.get(k, 0) + 1
            if secs >= 0.5:
                slow.append((secs, status, "%s/%s" % (pool, server), m.group(1)))
        slow.sort(reverse=True)
        return "access log: %d lines; not 200: %s; >= 0.5s: %d%s" % (
            n, odd or "none", len(slow),
            (" (slowest: %s)" % ", ".join("%.2fs %d %s at %s" % x for x in slow[:5])) if slow else "")


def share_new(r):
    ok = {k: v for k, v in r["tally"].items() if k.startswith("2")}
    total = sum(ok.values())
    new = sum(v for k, v in ok.items() if k.split(":", 1)[1].startswith("n"))
    return (new / total) if total else None


if not shutil.which("wrk"):
    tap.skip("fault run", "wrk is not installed")
    tap.done()

script = os.path.join(tmpdir(), "tally.lua")
with open(script, "w") as f:
    f.write(TALLY_LUA)

alog = AccessLog(os.path.join(tmpdir(), "access.log"))
o1, o2 = Upstream("o1"), Upstream("o2")
n1, n2 = Upstream("n1"), Upstream("n2")
ALL = [("old", "o1"), ("old", "o2"), ("new", "n1"), ("new", "n2")]

with section(tap, "fault run"):
    z = Zdmd(tap, {"pools": {"old": [o1, o2], "new": [n1, n2]},
                   "split": {"old": 50, "new": 50},
                   "health_check": {"path": "/health", "interval": Raw("200ms"),
                                    "timeout": Raw("200ms"), "rise": 2, "fall": 2},
                   "circuit_breaker": {"failures": 5, "open_for": Raw("1s"),
                                       "half_open_probes": 1},
                   "timeouts": {"connect": Raw("1s")},
                   "access_log": alog.path})
    results = {}

    def phase(name, action=None, at=0.5):
        tap.diag("faultrun: phase %s starts at %s" % (
            name, time.strftime("%H:%M:%S", time.gmtime()) + ".%03d" % (time.time() % 1 * 1000)))
        w = WrkRun(z.port, PHASE_S, script)
        if action:
            time.sleep(at)
            action()
        r = w.result(PHASE_S + 15)
        results[name] = r
        report(name, r)
        tap.diag("faultrun:   " + alog.phase())
        need(tap, r["requests"], "phase %s: wrk ran" % name, r["out"])
        return r

    r = phase("baseline")
    tap.eq(r["errors"], 0, "baseline: no client-visible error", r["out"])
    s = share_new(r)
    tap.ok(s is not None and 0.45 <= s <= 0.55, "baseline: about half to new (%s)"
           % ("%.1f%%" % (s * 100) if s is not None else "-"))

    r = phase("kill-one", lambda: kill(n1))
    tap.ok(True, "kill-one: reported (%d errors; target 0)" % r["errors"])
    tap.eq((server_state(z, "new", "n1") or {}).get("health"), "down", "n1 is down after kill-one")

    r = phase("kill-pool", lambda: kill(n2))
    tap.ok(True, "kill-pool: reported (%d errors; target 0)" % r["errors"])
    s = share_new(r)
    tap.diag("faultrun:   share of new during kill-pool: %s"
             % ("%.1f%%" % (s * 100) if s is not None else "-"))
    tap.ok(wait_all(z, [("new", "n1"), ("new", "n2")], "health", "down", 1),
           "n1 and n2 are down after kill-pool")

    def bring_back():
        restart(n1)
        restart(n2)

    r = phase("restart", bring_back)
    tap.ok(True, "restart: reported (%d errors; target 0)" % r["errors"])

    need(tap, wait_all(z, ALL, "health", "up", 5), "all four servers are up again")
    up = wait_all(z, ALL, "circuit", "closed", 5)
    if not up:
        tap.diag("circuits not all closed: %r" % [(p, s, (server_state(z, p, s) or {}).get("circuit"))
                                                  for p, s in ALL])
    r = phase("recovered")
    tap.eq(r["errors"], 0, "recovered: no client-visible error", r["out"])
    s = share_new(r)
    tap.ok(s is not None and 0.45 <= s <= 0.55, "recovered: about half to new again (%s)"
           % ("%.1f%%" % (s * 100) if s is not None else "-"))
    tap.diag("faultrun: zdmd's transitions and errors (the first 40):")
    lines = [ln for ln in z.stderr().splitlines()
             if re.search(r"\] (health|circuit): |\[error\]", ln)]
    for ln in lines[:40]:
        tap.diag("faultrun:   " + ln)
    tap.diag("faultrun: summary: " + ", ".join(
        "%s %s/%d" % (k, results[k]["requests"], results[k]["errors"]) for k in results))
    z.stop()

tap.done()
