#!/usr/bin/env python3
"""Reload through the control socket (`zdmctl reload`, SPEC §2, §6): servers
and pools added and removed, routing following at once, in-flight requests
to a removed server finishing, keep-alive clients kept, timeouts and
listeners changed; an invalid file is refused with FILE:LINE:COL errors and
the proxy keeps serving the old config."""

import json
import os
import re
import signal
import socket
import threading
import time

from zdmtest import (TAP, Upstream, Zdmd, Raw, HOST, zdmctl, free_port, wait_for,
                     build_config, tmpdir, pool_weights)

tap = TAP(deadline=150)
a, a2, b, c3 = Upstream("a"), Upstream("a2"), Upstream("b"), Upstream("c3")


def spec(pools, split, **extra):
    s = {"expose_pool_header": True, "pools": pools, "split": split}
    s.update(extra)
    return s


def reload(z, desc, want_ok=True):
    """zdmctl --json reload; checks exit status and answer; returns them."""
    t0 = time.monotonic()
    rc, out, err = zdmctl(["--json", "reload"], sock=z.sock_path)
    dt = time.monotonic() - t0
    try:
        ans = json.loads(out) if out.strip() else None
    except ValueError:
        ans = None
    if want_ok:
        tap.ok(rc == 0 and ans == {"ok": True, "reloaded": True},
               "%s: zdmctl reload exits 0, reloaded" % desc, (rc, out, err))
    return rc, ans, err, dt


def who(c, headers=None):
    r = c.request("GET", "/", headers)
    return r.get("x-upstream") if r.status == 200 else r.status


def counts(names):
    out = {}
    for n in names:
        out[n] = out.get(n, 0) + 1
    return out


def server_names(z):
    return [(p["name"], [s["name"] for s in p["servers"]]) for p in z.status()["pools"]]


z = Zdmd(tap, spec({"old": [a], "new": [b]}, {"old": 50, "new": 50}))
keep = z.client()              # used between reloads: must never be dropped
idle = z.client()              # opened now, used only at the end
kept = []


def use_keep(desc):
    r = keep.request("GET", "/")
    kept.append((desc, r.status, r.get("connection")))


use_keep("start")

with tap.section("add a server"):
    z.rewrite(spec({"old": [a, a2], "new": [b]}, {"old": 50, "new": 50}))
    reload(z, "old gets a2")
    tap.eq(server_names(z), [("old", ["a", "a2"]), ("new", ["b"])], "status lists a2")
    with z.client() as c:
        n = counts(who(c) for _ in range(40))
    tap.ok(9 <= n.get("a2", 0) <= 11 and 9 <= n.get("a", 0) <= 11 and 19 <= n.get("b", 0) <= 21,
           "40 requests: a2 takes its share right away (a 10, a2 10, b 20, ± 1)", n)
    use_keep("after adding a server")

with tap.section("remove a server"):
    z.rewrite(spec({"old": [a2], "new": [b]}, {"old": 50, "new": 50}))
    rc, out, err = zdmctl(["reload"], sock=z.sock_path)
    tap.eq(rc, 0, "zdmctl reload (table output): exit 0", err)
    tap.eq(server_names(z), [("old", ["a2"]), ("new", ["b"])], "status no longer lists a")
    n0 = a.stats()["requests"]
    with z.client() as c:
        n = counts(who(c) for _ in range(20))
    tap.eq(n, {"a2": 10, "b": 10}, "20 requests: a2 10, b 10")
    tap.eq(a.stats()["requests"] - n0, 0, "the removed server a gets nothing")
    use_keep("after removing a server")

with tap.section("add a pool"):
    z.rewrite(spec({"old": [a2], "new": [b], "extra": [c3]},
                   {"old": 40, "new": 30, "extra": 30}))
    reload(z, "pool extra added")
    st = z.status()
    tap.eq(pool_weights(st), {"old": 40, "new": 30, "extra": 30}, "status: 40/30/30")
    tap.eq([p["name"] for p in st["pools"]], ["old", "new", "extra"], "in config order")
    with z.client() as c:
        n = counts(who(c) for _ in range(100))
    tap.ok(29 <= n.get("c3", 0) <= 31 and 39 <= n.get("a2", 0) <= 41,
           "100 requests: extra 30, old 40 (± 1)", n)
    with z.client() as c:
        r = c.request("GET", "/")
    tap.ok(r.get("x-zdm-pool") in ("old", "new", "extra"), "X-Zdm-Pool names the new pool too")
    use_keep("after adding a pool")

with tap.section("remove a pool"):
    z.rewrite(spec({"old": [a2], "new": [b]}, {"old": 50, "new": 50}))
    reload(z, "pool extra removed")
    tap.eq(pool_weights(z.status()), {"old": 50, "new": 50}, "status: 50/50, no extra")
    n0 = c3.stats()["requests"]
    with z.client() as c:
        n = counts(who(c) for _ in range(20))
    tap.eq(n, {"a2": 10, "b": 10}, "20 requests: old and new only")
    tap.eq(c3.stats()["requests"] - n0, 0, "the removed pool's server gets nothing")
    use_keep("after removing a pool")

with tap.section("in-flight request to a removed server"):
    z.rewrite(spec({"old": [a2], "new": [b]}, {"old": 100, "new": 0}))
    reload(z, "old 100%")
    out = []

    def slow():
        try:
            with z.client(timeout=15) as c:
                r = c.request("GET", "/slow/2500")
                out.append((r.status, r.body))
        except Exception as e:
            out.append(("error", repr(e)))

    p0 = a2.stats()["paths"].get("/slow/2500", 0)
    t = threading.Thread(target=slow, daemon=True)
    t.start()
    tap.ok(wait_for(lambda: a2.stats()["paths"].get("/slow/2500", 0) > p0, timeout=5),
           "a slow request is in flight on a2")
    z.rewrite(spec({"old": [a], "new": [b]}, {"old": 100, "new": 0}))
    rc, ans, err, dt = reload(z, "a2 removed while busy")
    tap.ok(dt < 2.0, "the reload answers without waiting for the request (%.2fs)" % dt)
    with z.client() as c:
        tap.eq([who(c) for _ in range(5)], ["a"] * 5, "new requests go to a")
    t.join(10)
    tap.eq(out, [(200, b"slow a2\n")], "the request in flight on the removed a2 completes")
    use_keep("after removing a busy server")

with tap.section("invalid reloads"):
    good = open(z.config_path).read()
    nlines = len(good.splitlines())
    def with_split(text, split_line):
        """TEXT with its split block replaced by SPLIT_LINE at the end."""
        out, skip = [], False
        for ln in text.splitlines():
            if ln.startswith("split:"):
                skip = True
                continue
            if skip and ln.startswith("  "):
                continue
            skip = False
            out.append(ln)
        return "\n".join(out + [split_line]) + "\n"

    bad_files = [
        ("an unknown key", good + "bogus_key: 1\n", nlines + 1),
        ("a split naming an unknown pool", with_split(good, "split: {old: 50, nwe: 50}"), None),
        ("a YAML syntax error", good + "pools: [unclosed\n", None),
        ("a split not summing to 100", with_split(good, "split: {old: 50, new: 20}"), None),
    ]
    for desc, text, line in bad_files:
        z.rewrite(text=text)
        rc, out, err = zdmctl(["reload"], sock=z.sock_path)
        pat = re.compile(re.escape(z.config_path) + r":\d+:\d+: \S")
        tap.ok(rc == 1 and pat.search(err), "%s: zdmctl reload exits 1 with FILE:LINE:COL "
                                            "on stderr" % desc, (rc, out, err))
        if line:
            tap.ok("%s:%d:" % (z.config_path, line) in err,
                   "%s: the error points at line %d" % (desc, line), err)
        ans = z.ctl("reload", timeout=15)
        errs = ans.get("errors") or []
        tap.ok(ans.get("ok") is False and str(ans.get("error", "")).startswith("reload failed")
               and errs and all(pat.match(e) for e in errs),
               "%s: the socket answers ok false, reload failed, errors FILE:LINE:COL" % desc, ans)
        tap.ok(z.alive(), "%s: zdmd keeps running" % desc)
        with z.client() as c:
            tap.eq([who(c) for _ in range(4)], ["a"] * 4, "%s: still routing by the old config" % desc)
        use_keep("after a refused reload (%s)" % desc)
    z.rewrite(text=good)
    reload(z, "the good file again")

with tap.section("timeouts change on reload"):
    z.rewrite(spec({"old": [a], "new": [b]}, {"old": 100, "new": 0},
                   timeouts={"upstream_response": Raw("500ms")}))
    reload(z, "upstream_response 500ms")
    with z.client(timeout=10) as c:
        r = c.request("GET", "/slow/1500")
    tap.eq(r.status, 504, "a 1.5s answer now times out: 504")
    z.rewrite(spec({"old": [a], "new": [b]}, {"old": 100, "new": 0}))
    reload(z, "default timeouts")
    with z.client(timeout=10) as c:
        r = c.request("GET", "/slow/1500")
    tap.eq(r.status, 200, "back to the default: 200")
    use_keep("after timeout changes")

with tap.section("keep-alive clients across reloads"):
    tap.eq([k for k in kept if k[1] != 200 or (k[2] or "").lower() == "close"], [],
           "the connection opened before all reloads answered 200 after each (%d times), "
           "never with Connection: close" % len(kept))
    r = idle.request("GET", "/")
    tap.eq(r.status, 200, "a keep-alive connection idle through all the reloads still works")
    keep.close()
    idle.close()

with tap.section("listeners added and removed"):
    p1, p2 = free_port(), free_port()
    base = {"pools": {"old": [a], "new": [b]}, "split": {"old": 100, "new": 0}}
    zl = Zdmd(tap, dict(base, listen=["%s:%d" % (HOST, p1)]))

    def serves(port):
        try:
            with socket.create_connection((HOST, port), timeout=2) as s:
                s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                return s.recv(100).startswith(b"HTTP/1.1 200")
        except OSError:
            return False

    tap.ok(serves(p1) and not serves(p2), "one listener")
    zl.rewrite(dict(base, listen=["%s:%d" % (HOST, p1), "%s:%d" % (HOST, p2)]))
    reload(zl, "a second listener")
    tap.ok(wait_for(lambda: serves(p2), timeout=3) and serves(p1), "both listeners serve")
    zl.rewrite(dict(base, listen=["%s:%d" % (HOST, p2)]))
    reload(zl, "the first listener removed")
    tap.ok(wait_for(lambda: not serves(p1), timeout=3), "the removed listener no longer serves")
    tap.ok(serves(p2), "the other one does")
    zl.stop()

with tap.section("reloads racing with control commands"):
    st_path = os.path.join(tmpdir(), "state.json")
    variants = [
        spec({"old": [a, a2], "new": [b]}, {"old": 90, "new": 10}, state_file=st_path),
        spec({"old": [a], "new": [b, c3]}, {"old": 80, "new": 20}, state_file=st_path),
        spec({"old": [a, a2], "new": [b], "extra": [c3]}, {"old": 70, "new": 20, "extra": 10},
             state_file=st_path),
    ]
    zr = Zdmd(tap, variants[0])
    texts = [build_config(zr.port, v, zr.dir) for v in variants]
    stop = threading.Event()
    problems, done = [], {"ctl": 0, "reload": 0, "hup": 0, "http": 0}
    CMDS = ["set-weight new %d", "set-weight old/a %d", "drain old/a2", "enable old/a2",
            "status", "set-weight extra 5", "promote new", "rollback"]

    def setter(k):
        try:
            with zr.ctl_conn(timeout=10) as c:
                i = 0
                while not stop.is_set():
                    i += 1
                    cmd = CMDS[(i + k) % len(CMDS)]
                    if "%d" in cmd:
                        cmd = cmd % (i % 101 if "new" in cmd else i % 7)
                    r = c.cmd(cmd)
                    done["ctl"] += 1
                    # a2 and extra come and go with the reloads
                    if not r.get("ok") and "unknown" not in str(r.get("error")):
                        problems.append((cmd, r))
        except Exception as e:
            problems.append(("setter", repr(e)))

    def reloader():
        try:
            i = 0
            while not stop.is_set():
                i += 1
                with open(zr.config_path + ".new", "w") as f:
                    f.write(texts[i % len(texts)])
                os.rename(zr.config_path + ".new", zr.config_path)
                r = zr.ctl("reload", timeout=10)
                done["reload"] += 1
                if r != {"ok": True, "reloaded": True}:
                    problems.append(("reload", r))
                if i % 3 == 0:
                    zr.signal(signal.SIGHUP)
                    done["hup"] += 1
                time.sleep(0.02)
        except Exception as e:
            problems.append(("reloader", repr(e)))

    def http():
        try:
            with zr.client() as c:
                while not stop.is_set():
                    r = c.request("GET", "/")
                    done["http"] += 1
                    if r.status != 200:
                        problems.append(("http", r.status, r.body[:100]))
        except Exception as e:
            problems.append(("http", repr(e)))

    ts = ([threading.Thread(target=setter, args=(k,), daemon=True) for k in range(8)] +
          [threading.Thread(target=reloader, daemon=True)] +
          [threading.Thread(target=http, daemon=True) for _ in range(4)])
    for t in ts:
        t.start()
    time.sleep(5)
    stop.set()
    for t in ts:
        t.join(15)
    tap.ok(not any(t.is_alive() for t in ts), "8 control clients, reloads by socket and SIGHUP, "
           "4 HTTP clients for 5 s: all finished (%s)" % done)
    tap.eq(problems[:5], [], "no unexpected answer, every reload applied, every request 200 "
                             "(%d problems)" % len(problems))
    w = pool_weights(zr.status())
    tap.ok(zr.alive() and abs(sum(w.values()) - 100) < 1e-6,
           "zdmd runs and its percentages sum to 100", w)
    try:
        with open(st_path) as f:
            saved = json.load(f)
    except (OSError, ValueError) as e:
        saved = repr(e)
    tap.ok(isinstance(saved, dict), "the state file is valid JSON", saved)
    zr.stop()
    tap.eq(zr.proc.returncode, 0, "SIGTERM afterwards: exit 0")

tap.ok(z.alive(), "zdmd is running")
tap.done()
