#!/usr/bin/env python3
"""Worker threads (zdm.yaml(5) workers, zdmd(8) PERFORMANCE "Threads"):
`workers: N` runs N event-loop threads, each with its own SO_REUSEPORT
listening sockets and upstream connections, and the control plane on the
main thread. Checked with the real zdmd: the thread count (N, "auto");
connections spread over the workers; the split exact within one request per
worker overall; set-weight applying to the very next request on every
worker; a reload adding and removing a listener on every worker without a
failed request; a second process refused on a port that is taken; status
and metrics summing the workers' counters; a graceful shutdown with
requests in flight on several workers; the access log with several
workers."""

import json
import os
import signal
import socket
import subprocess
import threading
import time

from zdmtest import (TAP, Upstream, Zdmd, Client, Closed, HOST, build_config, free_port,
                     get, refused, run_zdmd, tmpdir, wait_for, zdmctl)
from faults import section, need
import obs

tap = TAP(deadline=90)
T0 = time.monotonic()
a, b = Upstream("a"), Upstream("b")
NCPU = len(os.sched_getaffinity(0))


def tasks(z):
    """zdmd's thread ids."""
    try:
        return sorted(int(t) for t in os.listdir("/proc/%d/task" % z.proc.pid))
    except OSError:
        return []


def switches(z):
    """{tid: context switches so far} of zdmd's threads other than the main
    one. A thread that waits for events and gets some is switched out and
    in again each time; an idle worker hardly ever is."""
    out = {}
    for tid in tasks(z):
        if tid == z.proc.pid:
            continue
        n = 0
        try:
            with open("/proc/%d/task/%d/status" % (z.proc.pid, tid)) as f:
                for ln in f:
                    if ln.startswith(("voluntary_ctxt_switches", "nonvoluntary_ctxt_switches")):
                        n += int(ln.split()[1])
        except OSError:
            continue
        out[tid] = n
    return out


def conns(u):
    """TCP connections upstream U has accepted so far."""
    return u.stats()["connections"]


def path_count(u, path):
    return u.stats()["paths"].get(path, 0)


def fresh(port, n, path="/", headers=None):
    """N GETs, each on a new connection, one after the other: [(status,
    X-Upstream)] (the status is the exception's repr when one failed)."""
    out = []
    for _ in range(n):
        try:
            r = get(port, path, headers)
            out.append((r.status, r.get("x-upstream")))
        except Exception as e:
            out.append((repr(e), None))
    return out


def serves(port, headers=None):
    try:
        return get(port, "/", headers, timeout=2).status == 200
    except (OSError, Closed):
        return False


# -- threads -----------------------------------------------------------------------

with section(tap, "threads"):
    z3 = obs.start(tap, {"workers": 3, "pools": {"old": [a], "new": [b]},
                         "split": {"old": 100, "new": 0}})
    tap.ok(wait_for(lambda: len(tasks(z3)) == 4, timeout=3),
           "workers: 3 (no access log): 4 threads, the main one and 3 workers (%d)"
           % len(tasks(z3)))
    z1 = Zdmd(tap, {"workers": 1, "pools": {"old": [a], "new": [b]}})
    tap.ok(wait_for(lambda: len(tasks(z1)) == 2, timeout=3),
           "workers: 1: 2 threads (%d)" % len(tasks(z1)))
    tap.eq(get(z1.port, "/").status, 200, "workers: 1 serves")
    za = Zdmd(tap, {"workers": "auto", "pools": {"old": [a], "new": [b]}})
    tap.ok(wait_for(lambda: len(tasks(za)) == NCPU + 1, timeout=3),
           "workers: auto: one worker per CPU this process may run on, plus the main "
           "thread: %d (%d)" % (NCPU + 1, len(tasks(za))))
    tap.eq(fresh(za.port, 10), [(200, "a")] * 10, "workers: auto serves")

# -- spread, split, a second process -------------------------------------------------------

probe = Upstream("probe")
PROBE = [("X-Probe", "1")]
z2 = Zdmd(tap, {"workers": 2, "pools": {"old": [a], "new": [b], "probe": [probe]},
                "split": {"old": 90, "new": 10},
                "pins": [{"header": "x-probe", "value": "1", "pool": "probe"}]})

with section(tap, "connections spread over the workers"):
    # Each worker keeps its own upstream connections: 60 requests, one
    # after the other, each on a new client connection, reach the upstream
    # on one connection per worker that took any of them.
    need(tap, wait_for(lambda: len(tasks(z2)) == 3, timeout=3), "workers: 2: 3 threads")
    p0 = conns(probe)
    s0 = switches(z2)
    got = fresh(z2.port, 60, headers=PROBE)
    s1 = switches(z2)
    tap.eq(got, [(200, "probe")] * 60, "60 requests on 60 new connections: all answered")
    used = conns(probe) - p0
    tap.within(used, 2, 60, "both workers took connections: the upstream saw %d connections "
                            "(one per worker that served)" % used)
    tap.eq(used, 2, "each worker reused its own upstream connection for all its requests")
    busy = sorted(s1[t] - s0.get(t, 0) for t in s1)
    tap.ok(len(busy) == 2 and busy[0] >= 10,
           "both worker threads woke up to serve: at least 10 context switches each (%s)"
           % busy)

with section(tap, "split per worker"):
    # Each worker splits its own requests smoothly and keeps its count of
    # new within one request of its exact share (10% of the requests it
    # took); with 2 workers the total is then within 2 of 10% of 1000.
    b0 = path_count(b, "/")
    got = fresh(z2.port, 1000)
    tap.eq(sum(1 for s, _ in got if s == 200), 1000, "90/10, 1000 requests on new connections: "
                                                     "all answered")
    nb = sum(1 for _, u in got if u == "b")
    tap.within(nb, 98, 102, "new got 100 ± 2 (one request per worker): %d" % nb)
    tap.eq(path_count(b, "/") - b0, nb, "upstream b counted the same %d" % nb)

with section(tap, "a second process on the same port"):
    d = tmpdir()
    cfg = os.path.join(d, "zdm.yaml")
    with open(cfg, "w") as f:
        f.write(build_config(z2.port, {"workers": 2, "pools": {"old": [a], "new": [b]}}, d))
    try:
        rc, out, err = run_zdmd(["-c", cfg], timeout=8)
    except subprocess.TimeoutExpired:
        rc, out, err = "still running after 8s", "", ""
    tap.ok(isinstance(rc, int) and rc != 0,
           "a second zdmd (workers: 2) on the port of a running one does not start (exit %r)"
           % (rc,), err[-1500:])
    tap.ok("another process listens there" in err and "127.0.0.1:%d" % z2.port in err,
           "it says that another process listens on that address", err[-1500:])
    tap.eq(fresh(z2.port, 20, headers=PROBE), [(200, "probe")] * 20,
           "the first one keeps serving every new connection")
    tap.ok(z2.alive(), "the first one is still running")
    # A foreign socket that allows sharing (SO_REUSEPORT) is no excuse either.
    other = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    other.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    other.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    other.bind((HOST, 0))
    other.listen(8)
    oport = other.getsockname()[1]
    d = tmpdir()
    cfg = os.path.join(d, "zdm.yaml")
    with open(cfg, "w") as f:
        f.write(build_config(oport, {"workers": 2, "pools": {"old": [a], "new": [b]}}, d))
    try:
        rc, out, err = run_zdmd(["-c", cfg], timeout=8)
    except subprocess.TimeoutExpired:
        rc, out, err = "still running after 8s", "", ""
    tap.ok(isinstance(rc, int) and rc != 0 and "another process listens there" in err,
           "nor on a port another program listens on with SO_REUSEPORT (exit %r)" % (rc,),
           err[-1500:])
    other.close()

# -- set-weight on every worker ------------------------------------------------------------

with section(tap, "set-weight, 4 workers"):
    z4 = Zdmd(tap, {"workers": 4, "expose_pool_header": True,
                    "pools": {"old": [a], "new": [b]}, "split": {"old": 100, "new": 0}})
    a0 = conns(a)
    keeps = []
    for _ in range(8):
        c = z4.client()
        keeps.append(c)
        c.request("GET", "/")       # one after the other: one upstream connection per worker
    spread = conns(a) - a0
    tap.within(spread, 2, 4, "8 kept-alive connections are served by %d of the 4 workers" % spread)

    def pools():
        out = []
        for c in keeps:
            try:
                r = c.request("GET", "/")
                out.append(r.get("x-zdm-pool") if r.status == 200 else r.status)
            except Exception as e:
                out.append(repr(e))
        return out

    bad = []
    for i in range(4):
        for pct, target in ((100, "new"), (0, "old")):
            rc, out, err = zdmctl(["set-weight", "new", str(pct)], sock=z4.sock_path)
            got = pools()
            if rc != 0 or got != [target] * 8:
                bad.append((i, pct, rc, err.strip(), got))
    tap.eq(bad, [], "zdmctl set-weight new 100, then 0, 4 times: after each, the very next "
                    "request on every connection goes to that pool")
    for c in keeps:
        c.close()

# -- a reload adds and removes a listener on every worker -----------------------------------

with section(tap, "reload: listeners"):
    c3 = Upstream("c3")
    p1, p2 = free_port(), free_port()

    def rspec(ports):
        return {"workers": 2, "listen": ["%s:%d" % (HOST, p) for p in ports],
                "pools": {"old": [a], "new": [b], "probe": [c3]},
                "split": {"old": 50, "new": 50},
                "pins": [{"header": "x-probe", "value": "1", "pool": "probe"}]}

    zr = Zdmd(tap, rspec([p1]))
    need(tap, refused(p2), "the second address is not listened on at first")
    stop = threading.Event()
    results = []

    def loop_fresh():
        while not stop.is_set():
            try:
                r = get(p1, "/", timeout=5)
                results.append(r.status)
            except Exception as e:
                results.append(repr(e))
            time.sleep(0.005)

    def loop_keep():
        c = None
        try:
            c = Client(p1, timeout=5)
            while not stop.is_set():
                r = c.request("GET", "/")
                results.append(r.status)
                time.sleep(0.005)
        except Exception as e:
            results.append("kept-alive: " + repr(e))
        finally:
            if c:
                c.close()

    loops = [threading.Thread(target=f, daemon=True) for f in (loop_fresh, loop_fresh, loop_keep)]
    for t in loops:
        t.start()

    def reload(ports, n):
        zr.rewrite(rspec(ports))
        rc, out, err = zdmctl(["--json", "reload"], sock=zr.sock_path)
        try:
            ans = json.loads(out)
        except ValueError:
            ans = None
        tap.ok(rc == 0 and ans == {"ok": True, "reloaded": True},
               "reload %d (listen %s): zdmctl reload exits 0, reloaded"
               % (n, "both addresses" if len(ports) == 2 else "the first only"), (rc, out, err))

    reload([p1, p2], 1)
    q0 = conns(c3)
    got = fresh(p2, 40, headers=PROBE)
    tap.eq(got, [(200, "c3")] * 40, "the added address serves at once (40 new connections)")
    tap.eq(conns(c3) - q0, 2, "on both workers (the upstream saw one connection per worker)")
    kept = Client(p2, timeout=5)
    tap.eq(kept.request("GET", "/").status, 200, "a keep-alive client on the added address")

    reload([p1], 2)
    tap.ok(wait_for(lambda: refused(p2), timeout=3), "the removed address refuses connections")
    tap.ok(all(refused(p2) for _ in range(20)), "on every worker: 20 connects, all refused")
    try:
        st = kept.request("GET", "/").status
    except Exception as e:
        st = repr(e)
    tap.eq(st, 200, "the keep-alive client that came through it keeps its connection")
    kept.close()

    for n, ports in ((3, [p1, p2]), (4, [p1]), (5, [p1, p2])):
        reload(ports, n)
        if len(ports) == 2:
            tap.ok(wait_for(lambda: serves(p2), timeout=3) and
                   all(s == 200 for s, _ in fresh(p2, 10)),
                   "reload %d: the address serves again (10 new connections)" % n)
        else:
            tap.ok(wait_for(lambda: refused(p2), timeout=3) and
                   all(refused(p2) for _ in range(10)),
                   "reload %d: the address refuses again (10 connects)" % n)
    wait_for(lambda: len(results) >= 50, timeout=5)
    stop.set()
    for t in loops:
        t.join(10)
    bad = [r for r in results if r != 200]
    tap.ok(len(results) > 20 and not bad,
           "no request failed on the address kept through 5 reloads (%d requests, new "
           "connections and a kept-alive one)" % len(results), bad[:5])
    tap.ok(zr.alive(), "zdmd is still running")

# -- status and metrics sum the workers ------------------------------------------------------

with section(tap, "status and metrics, 3 workers"):
    K = 300
    got = fresh(z3.port, K)
    tap.eq(got, [(200, "a")] * K, "%d requests on new connections: all answered" % K)

    def status_requests():
        rc, out, err = zdmctl(["--json", "status"], sock=z3.sock_path)
        st = json.loads(out)
        return {s["name"]: s["requests"] for p in st["pools"] for s in p["servers"]}
    wait_for(lambda: status_requests().get("a") == K, timeout=3)
    tap.eq(status_requests(), {"a": K, "b": 0},
           "zdmctl --json status: server a's requests sum to exactly %d over the workers" % K)
    r = obs.admin_get(z3, "/status")
    doc = json.loads(r.body)
    tap.eq({s["name"]: s["requests"] for p in doc["pools"] for s in p["servers"]}, {"a": K, "b": 0},
           "the admin listener's /status says the same")
    m = obs.scrape(z3)
    tap.eq(m.errors, [], "/metrics parses")
    tap.eq(m.total("zdm_requests_total"), K, "zdm_requests_total sums to exactly %d" % K)
    tap.eq(m.value("zdm_requests_total", pool="old", server="a", code="2xx"), K,
           "zdm_requests_total{old,a,2xx} = %d" % K)
    tap.eq(m.value("zdm_request_duration_seconds_count", pool="old"), K,
           "zdm_request_duration_seconds_count{old} = %d" % K)

# -- graceful shutdown with requests in flight on the workers --------------------------------

with section(tap, "graceful shutdown, 3 workers"):
    N = 9
    idle = z3.client()
    idle.request("GET", "/")
    outs = [[] for _ in range(N)]

    def slow(out):
        try:
            with z3.client(timeout=15) as c:
                r = c.request("GET", "/slow/1500")
                out.append((r.status, r.body))
        except Exception as e:
            out.append(("error", repr(e)))

    q0 = path_count(a, "/slow/1500")
    ts = [threading.Thread(target=slow, args=(o,), daemon=True) for o in outs]
    for t in ts:
        t.start()
    need(tap, wait_for(lambda: path_count(a, "/slow/1500") - q0 == N, timeout=5),
         "%d slow requests on %d new connections reached the upstream" % (N, N))
    t0 = time.monotonic()
    z3.signal(signal.SIGTERM)
    tap.ok(wait_for(lambda: refused(z3.port), timeout=2) and
           all(refused(z3.port) for _ in range(10)),
           "SIGTERM: new connections are refused on every worker (10 connects)")
    for t in ts:
        t.join(15)
    tap.eq([o[0] if o else None for o in outs], [(200, b"slow a\n")] * N,
           "every request in flight completes with 200")
    rc = z3.wait_exit(10)
    tap.eq(rc, 0, "then zdmd exits 0 (%.1fs after SIGTERM)" % (time.monotonic() - t0))
    tap.ok(idle.wait_closed(1), "the idle keep-alive client was closed")
    idle.close()

# -- the access log with several workers ---------------------------------------------------------

with section(tap, "access log, 2 workers"):
    log = os.path.join(tmpdir(), "access.log")
    zl = Zdmd(tap, {"workers": 2, "access_log": log, "pools": {"old": [a], "new": [b]},
                    "split": {"old": 50, "new": 50}})
    tap.ok(wait_for(lambda: len(tasks(zl)) == 4, timeout=3),
           "workers: 2 with an access log: 4 threads, one of them the log writer (%d)"
           % len(tasks(zl)))
    K = 200
    got = fresh(zl.port, K // 2) + fresh(zl.port, K // 2, path="/size/100")
    tap.eq(sum(1 for s, _ in got if s == 200), K, "%d requests on new connections answered" % K)
    lines = obs.wait_lines(log, K, timeout=5)
    time.sleep(0.3)       # the writer runs every 100 ms: nothing more must come
    lines = obs.read_lines(log)
    tap.eq(len(lines), K, "exactly %d lines" % K)
    parsed = [obs.parse_text_line(ln) for ln in lines]
    tap.ok(all(parsed), "every line parses", [ln for ln, p in zip(lines, parsed) if not p][:3])
    rids = [p["rid"] for p in parsed if p]
    tap.eq(len(set(rids)), K, "the request ids are unique")
    tap.eq(sorted(p["target"] for p in parsed if p), sorted(["/"] * (K // 2) + ["/size/100"] * (K // 2)),
           "one line per request sent")

tap.diag("run time %.1fs" % (time.monotonic() - T0))
tap.done()
