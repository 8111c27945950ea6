#!/usr/bin/env python3
"""The access log (SPEC §7, issue 5 items 4-6): one line per request in the
text or JSON format, every field matching what the client sent and got
(method, target with its query string, status, bytes sent, duration, pool,
server, pinned, a unique hex request id); zdmd's own 400/503 answers are
logged; "-" writes to stdout; SIGUSR1 reopens the file (logrotate); a path
that cannot be opened at start is refused with a clear error; a vanished
directory or a full disk is reported on stderr, counted in
zdm_access_log_dropped_total, and never stops the proxy. Lines reach the
file through a writer thread (about every 100 ms): every read waits for
them with a deadline. Also the error log's log_level."""

import json
import os
import re
import shutil
import signal
import subprocess
import time

from zdmtest import (TAP, Upstream, Client, build_config, build_request, free_port,
                     tmpdir, wait_for, ZDMD)
from faults import section, need, parse_utc, log_lines, wait_log
import obs

tap = TAP(deadline=58)
a, b = Upstream("a"), Upstream("b")
CANARY = [("canary", "true")]
BASE = {"expose_pool_header": True,
        "pools": {"old": [a], "new": [b]},
        "split": {"old": 50, "new": 50},
        "pins": [{"header": "canary", "value": "true", "pool": "new"}]}
RID = re.compile(r"^[0-9a-f]{16}$")


def spec(**kw):
    s = dict(BASE)
    s.update(kw)
    return s


# The requests every format is checked with: (method, target, headers, body).
REQUESTS = [
    ("GET", "/", None, None),
    ("GET", "/?a=1&b=two%20words", None, None),
    ("GET", "/size/2000?x=y", None, None),
    ("HEAD", "/size/100", None, None),
    ("POST", "/echo?k=v", [("Content-Type", "text/plain")], b"p" * 300),
    ("GET", "/status/404", None, None),
    ("GET", "/status/500?why=test", None, None),
    ("GET", "/status/302", None, None),
    ("GET", "/", CANARY, None),
    ("GET", "/size/10", CANARY, None),
    ("GET", "/slow/120", None, None),
    ("GET", "/chunked/3000", None, None),
    ("DELETE", "/thing/1", None, None),
    ("GET", "/odd%22quote?q=%22x%22", None, None),
]
# (a raw '"' or backslash in a target is refused with 400, and the line of
# that 400 still escapes them: "bytes beyond ASCII in the target" below)


def send_all(z):
    """Sends REQUESTS on one keep-alive connection, one after the other:
    [(method, target, pinned, response, seconds)]."""
    out = []
    with z.client() as c:
        for method, target, hs, body in REQUESTS:
            t0 = time.monotonic()
            r = c.request(method, target, hs, body)
            out.append((method, target, hs == CANARY, r, time.monotonic() - t0))
    return out


def check_entries(entries, sent, fmt, t_lo, t_hi):
    """ENTRIES: parsed lines (dicts with the text format's names) in order;
    SENT: from send_all."""
    tap.eq(len(entries), len(sent), "%s: one line per request (%d)" % (fmt, len(sent)))
    tap.eq([(e["method"], e["target"]) for e in entries], [(m, t) for m, t, _, _, _ in sent],
           "%s: method and target (with the query string) of every request, in order" % fmt)
    tap.eq([e["status"] for e in entries], [r.status for _, _, _, r, _ in sent],
           "%s: the status the client got" % fmt)
    tap.eq([(e["pool"], e["server"]) for e in entries],
           [(r.get("x-zdm-pool"), r.get("x-upstream")) for _, _, _, r, _ in sent],
           "%s: the pool and server that answered" % fmt)
    tap.eq([e["pinned"] for e in entries], [p for _, _, p, _, _ in sent],
           "%s: pinned yes for the canary requests only" % fmt)
    tap.eq({e["client"] for e in entries}, {"127.0.0.1"}, "%s: the client address" % fmt)
    # Bytes sent to the client: the head and the body as framed. Exact for
    # Content-Length and bodiless answers; chunked adds framing.
    bad = []
    for e, (m, t, _, r, _) in zip(entries, sent):
        head = len(r.head)
        if r.framing in ("length", "none"):
            if e["bytes"] != head + len(r.body):
                bad.append("%s %s: %r, sent %d (head %d + body %d)" %
                           (m, t, e["bytes"], head + len(r.body), head, len(r.body)))
        elif not (head + len(r.body) < e["bytes"] < head + len(r.body) + 200):
            bad.append("%s %s (chunked): %r for a %d-byte head and %d-byte body" %
                       (m, t, e["bytes"], head, len(r.body)))
    tap.eq(bad, [], "%s: bytes = the response's head + body as sent" % fmt)
    bad = []
    for e, (m, t, _, r, dt) in zip(entries, sent):
        if not (0 <= e["duration_s"] <= dt + 0.05):
            bad.append("%s %s: %r s, the client saw %.4f s" % (m, t, e["duration_s"], dt))
        if t.startswith("/slow/120") and e["duration_s"] < 0.12:
            bad.append("%s %s: %r s for a 120 ms upstream" % (m, t, e["duration_s"]))
    tap.eq(bad, [], "%s: durations within what the client measured (slow one >= 120 ms)" % fmt)
    rids = [e["rid"] for e in entries]
    tap.ok(all(isinstance(x, str) and RID.match(x) for x in rids) and len(set(rids)) == len(rids),
           "%s: request ids are 16 hex digits and unique" % fmt, rids)
    times = [parse_utc(e["time"]) for e in entries]
    tap.ok(all(x is not None and t_lo - 1 <= x <= t_hi + 1 for x in times),
           "%s: times are UTC (ISO 8601) within the run" % fmt, [e["time"] for e in entries][:3])
    tap.ok(all(times[i] <= times[i + 1] for i in range(len(times) - 1) if times[i] and times[i + 1]),
           "%s: times do not go backwards" % fmt)


def text_entries(lines):
    out = []
    for ln in lines:
        d = obs.parse_text_line(ln)
        if d is None:
            return None, ln
        d["pinned"] = d["pinned"] == "yes"
        out.append(d)
    return out, None


def json_entries(lines):
    out = []
    for ln in lines:
        try:
            d = json.loads(ln)
        except ValueError:
            return None, ln
        if set(d) != obs.JSON_KEYS:
            return None, "keys %s in %s" % (sorted(d), ln)
        types = {"time": str, "client": str, "method": str, "target": str, "status": int,
                 "bytes": int, "pool": str, "server": str, "pinned": bool, "request_id": str}
        for k, t in types.items():
            if type(d[k]) is not t:
                return None, "%s is %r in %s" % (k, type(d[k]).__name__, ln)
        if not isinstance(d["duration_ms"], (int, float)) or isinstance(d["duration_ms"], bool):
            return None, "duration_ms %r in %s" % (d["duration_ms"], ln)
        d["duration_s"] = d["duration_ms"] / 1000.0
        d["rid"] = d["request_id"]
        out.append(d)
    return out, None


def settle(path, n, timeout=3.0):
    """The lines of PATH once it has N, and 250 ms later (so that extra
    lines would show)."""
    obs.wait_lines(path, n, timeout)
    time.sleep(0.25)
    return obs.read_lines(path)


# -- text and JSON -----------------------------------------------------------------

for fmt in ("text", "json"):
    with section(tap, "%s format" % fmt):
        d = tmpdir()
        path = os.path.join(d, "access.log")
        kw = {"access_log": path}
        if fmt == "json":
            kw["access_log_format"] = "json"
        z = obs.start(tap, spec(**kw))
        t_lo = time.time()
        sent = send_all(z)
        t_hi = time.time()
        need(tap, all(r.status for _, _, _, r, _ in sent), "%s: every request answered" % fmt)
        lines = settle(path, len(sent))
        entries, bad = (text_entries if fmt == "text" else json_entries)(lines)
        need(tap, entries is not None, "%s: every line parses" % fmt, "bad line: %r" % (bad,))
        check_entries(entries, sent, fmt, t_lo, t_hi)

        # zdmd's own answers: a 400 for a malformed request, a 503 with no
        # available server.
        with Client(z.port) as c:
            c.send(b"GET /bad HTTP/1.1\r\nHost: x\r\nBad Header\r\n\r\n")
            r400 = c.read_response()
        need(tap, z.ctl("disable new/b").get("ok"), "%s: disable new/b" % fmt)
        with z.client() as c:
            r503 = c.request("GET", "/pinned?to=new", CANARY)
        z.ctl("enable new/b")
        tap.eq((r400.status, r503.status), (400, 503), "%s: a malformed request gets 400, a pin to "
               "an empty pool 503" % fmt)
        lines = settle(path, len(sent) + 2)
        more, bad = (text_entries if fmt == "text" else json_entries)(lines[len(sent):])
        need(tap, more is not None and len(more) == 2, "%s: two more lines, both parse" % fmt,
             lines[len(sent):])
        e400, e503 = more
        tap.eq((e400["status"], e400["method"], e400["client"]), (400, "GET", "127.0.0.1"),
               "%s: the 400 is logged with method and client" % fmt, e400)
        tap.eq((e503["status"], e503["target"], e503["pool"], e503["pinned"]),
               (503, "/pinned?to=new", "new", True),
               "%s: the 503 is logged with its target, the pinned pool and pinned yes" % fmt, e503)
        tap.eq((e400["bytes"], e503["bytes"]),
               (len(r400.head) + len(r400.body), len(r503.head) + len(r503.body)),
               "%s: bytes of zdmd's own 400 and 503 answers = what was sent" % fmt)
        rids = [e["rid"] for e in entries + more]
        tap.eq(len(set(rids)), len(rids), "%s: request ids stay unique" % fmt)
        z.stop()

with section(tap, "pipelined and concurrent requests: one line each"):
    d = tmpdir()
    path = os.path.join(d, "access.log")
    z = obs.start(tap, spec(access_log=path, access_log_format="json"))
    with z.client() as c:
        c.send(build_request("GET", "/?pipe=1") + build_request("GET", "/size/5?pipe=2") +
               build_request("GET", "/?pipe=3", CANARY))
        rs = [c.read_response() for _ in range(3)]
    tap.eq([r.status for r in rs], [200, 200, 200], "3 pipelined requests answered")
    import threading
    def worker(i):
        with z.client() as c:
            for j in range(5):
                c.request("GET", "/?conc=%d.%d" % (i, j))
    ths = [threading.Thread(target=worker, args=(i,), daemon=True) for i in range(10)]
    for t in ths:
        t.start()
    for t in ths:
        t.join(15)
    lines = settle(path, 53)
    entries, bad = json_entries(lines)
    need(tap, entries is not None, "every line parses", bad)
    tap.eq([e["target"] for e in entries[:3]], ["/?pipe=1", "/size/5?pipe=2", "/?pipe=3"],
           "the pipelined requests in order")
    tap.eq([e["pinned"] for e in entries[:3]], [False, False, True], "pinned only for the third")
    tap.eq(sorted(e["target"] for e in entries[3:]),
           sorted("/?conc=%d.%d" % (i, j) for i in range(10) for j in range(5)),
           "50 concurrent requests on 10 connections: exactly one line each")
    rids = [e["rid"] for e in entries]
    tap.eq(len(set(rids)), len(rids), "53 unique request ids")
    z.stop()

with section(tap, "bytes beyond ASCII in the target"):
    d = tmpdir()
    for fmt in ("json", "text"):
        path = os.path.join(d, "access." + fmt)
        z = obs.start(tap, spec(access_log=path, access_log_format=fmt))
        sent = []
        for t in (b"/caf\xc3\xa9?q=\xc3\xbc", b"/bin\xff\xfe?x=1", b'/q"uote\\slash'):
            with z.client() as c:
                c.send(b"GET " + t + b" HTTP/1.1\r\nHost: x\r\n\r\n")
                sent.append((t, c.read_response().status))
        accepted = [t for t, st in sent if st != 400]
        time.sleep(0.05)
        obs.wait_lines(path, len(sent))
        time.sleep(0.25)
        with open(path, "rb") as f:
            raw = [ln for ln in f.read().split(b"\n") if ln]
        tap.eq(len(raw), len(sent), "%s: one line per request" % fmt, raw)
        if fmt == "json":
            good = []
            for ln in raw:
                try:
                    good.append(json.loads(ln.decode("utf-8")))
                except (UnicodeDecodeError, ValueError) as e:
                    good.append("%s: %r" % (type(e).__name__, ln))
            tap.ok(all(isinstance(g, dict) for g in good),
                   "json: every line is valid UTF-8 JSON, whatever bytes the target had", good)
            tap.ok(any(isinstance(g, dict) and g["target"] == "/caf\u00e9?q=\u00fc" for g in good),
                   "json: a UTF-8 target is kept as its characters", good)
        else:
            parsed = [obs.TEXT_LINE.match(ln.decode("latin-1")) for ln in raw]
            tap.ok(all(parsed), "text: every line still splits into its fields", raw)
        z.stop()

# -- stdout ---------------------------------------------------------------------------

with section(tap, '"-" writes to stdout'):
    z = obs.start(tap, spec(access_log="-"))
    sent = send_all(z)
    lines = settle(z.stdout_path, len(sent))
    entries, bad = text_entries(lines)
    need(tap, entries is not None, "stdout: every line parses as an access log line", bad)
    tap.eq([(e["method"], e["target"], e["status"]) for e in entries],
           [(m, t, r.status) for m, t, _, r, _ in sent], "stdout: one line per request")
    tap.ok(not any(obs.parse_text_line(ln) for ln in z.stderr().splitlines()),
           "nothing of the access log on stderr")
    z.stop()

# -- off --------------------------------------------------------------------------------

with section(tap, '"off" (and the default) writes nothing'):
    z = obs.start(tap, spec(access_log="off"))
    send_all(z)
    time.sleep(0.3)
    tap.eq(obs.read_lines(z.stdout_path), [], "off: nothing on stdout")
    tap.ok(not any(obs.parse_text_line(ln) for ln in z.stderr().splitlines()), "off: nothing on stderr")
    tap.eq([f for f in os.listdir(z.dir) if "log" in f], [], "off: no file in zdmd's directory")
    z.stop()

# -- SIGUSR1 -------------------------------------------------------------------------------

with section(tap, "SIGUSR1 reopens the file (logrotate)"):
    d = tmpdir()
    path = os.path.join(d, "access.log")
    z = obs.start(tap, spec(access_log=path))
    with z.client() as c:
        for i in range(5):
            c.request("GET", "/before/%d" % i)
    need(tap, len(obs.wait_lines(path, 5)) == 5, "5 lines before the rotation")
    os.rename(path, path + ".1")
    with z.client() as c:
        for i in range(3):
            c.request("GET", "/between/%d" % i)
    z.signal(signal.SIGUSR1)
    tap.ok(wait_for(lambda: os.path.exists(path), timeout=3),
           "after SIGUSR1 the file is created again at the path")
    with z.client() as c:
        for i in range(4):
            c.request("GET", "/after/%d" % i)
    new = [obs.parse_text_line(ln) for ln in obs.wait_lines(path, 4)]
    time.sleep(0.25)
    new = [obs.parse_text_line(ln) for ln in obs.read_lines(path)]
    old = [obs.parse_text_line(ln) for ln in obs.read_lines(path + ".1")]
    tap.ok(all(new) and all(old), "both files parse")
    new_t = [e["target"] for e in new if e]
    old_t = [e["target"] for e in old if e]
    tap.eq([t for t in new_t if t.startswith("/after/")], ["/after/%d" % i for i in range(4)],
           "requests after the reopen are in the new file")
    tap.eq([t for t in old_t if t.startswith("/before/")], ["/before/%d" % i for i in range(5)],
           "requests before the rename are in the rotated file")
    tap.eq(sorted(t for t in old_t + new_t if t.startswith("/between/")),
           ["/between/%d" % i for i in range(3)],
           "requests between rename and SIGUSR1: each in one of the two files, none lost")
    tap.eq([t for t in old_t if t.startswith("/after/")], [], "nothing after the reopen in the old file")
    # Rotated again, twice in a row.
    os.rename(path, path + ".2")
    z.signal(signal.SIGUSR1)
    z.signal(signal.SIGUSR1)
    tap.ok(wait_for(lambda: os.path.exists(path), timeout=3), "a second rotation works too")
    with z.client() as c:
        c.request("GET", "/third")
    tap.eq([obs.parse_text_line(ln)["target"] for ln in obs.wait_lines(path, 1)], ["/third"],
           "the next line goes to the third file")
    tap.ok(z.alive(), "zdmd still runs")
    z.stop()

with section(tap, "reload changes the access log path and format"):
    d = tmpdir()
    p1, p2 = os.path.join(d, "one.log"), os.path.join(d, "two.log")
    z = obs.start(tap, spec(access_log=p1))
    with z.client() as c:
        c.request("GET", "/first")
    need(tap, len(obs.wait_lines(p1, 1)) == 1, "a line in the first file")
    z.rewrite(spec(access_log=p2, access_log_format="json"))
    ans = z.ctl("reload", timeout=10)
    tap.eq(ans.get("ok"), True, "reload with another path and json", ans)
    with z.client() as c:
        c.request("GET", "/second")
    lines = obs.wait_lines(p2, 1)
    tap.ok(len(lines) == 1 and json.loads(lines[0]).get("target") == "/second",
           "after the reload, JSON lines go to the new path", lines)
    tap.eq([obs.parse_text_line(ln)["target"] for ln in obs.read_lines(p1)], ["/first"],
           "the first file keeps its line and gets no more")
    z.stop()

# -- failures -------------------------------------------------------------------------------


def run_with(spec_, timeout=5):
    """Starts zdmd with SPEC_ and waits TIMEOUT for it to exit: (status or
    None if it kept running, stderr)."""
    d = tmpdir()
    cfgp = os.path.join(d, "zdm.yaml")
    with open(cfgp, "w") as f:
        f.write(build_config(free_port(), spec_, d))
    p = subprocess.Popen([ZDMD, "-c", cfgp], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                         stdin=subprocess.DEVNULL)
    try:
        _, err = p.communicate(timeout=timeout)
        return p.returncode, err.decode(errors="replace")
    except subprocess.TimeoutExpired:
        p.kill()
        _, err = p.communicate(timeout=5)
        return None, err.decode(errors="replace")


with section(tap, "a path that cannot be opened at start: zdmd refuses to start"):
    d = tmpdir()
    for bad, why in ((os.path.join(d, "no", "such", "dir", "access.log"), "no such file"),
                     (d, "is a directory")):
        rc, err = run_with(spec(access_log=bad))
        tap.ok(rc is not None and rc != 0, "access_log %s (%s): zdmd exits non-zero" % (bad, why), rc)
        tap.ok(bad in err and why in err.lower(), "stderr names the path and the reason (%s)" % why, err)

with section(tap, "the directory vanishes: reported, zdmd keeps serving"):
    d = tmpdir()
    sub = os.path.join(d, "logs")
    os.mkdir(sub)
    path = os.path.join(sub, "access.log")
    z = obs.start(tap, spec(access_log=path))
    with z.client() as c:
        c.request("GET", "/one")
    need(tap, len(obs.wait_lines(path, 1)) == 1, "a line is written")
    shutil.rmtree(sub)
    z.signal(signal.SIGUSR1)          # logrotate's postrotate, with the directory gone
    got = wait_log(z, r"\[error\].*access log.*%s" % re.escape(path), timeout=3)
    tap.ok(got, "an [error] line on stderr names the access log path", z.stderr()[-500:])
    tap.ok(got and re.search(r"No such file or directory", got[-1]), "and says why", got)
    st = []
    for i in range(20):
        with z.client() as c:
            st.append(c.request("GET", "/?during=%d" % i).status)
    tap.eq(st, [200] * 20, "zdmd keeps serving")
    tap.eq(obs.admin_get(z, "/healthz").status, 200, "/healthz still 200")
    os.mkdir(sub)
    z.signal(signal.SIGUSR1)
    tap.ok(wait_for(lambda: os.path.exists(path), timeout=3),
           "with the directory back, SIGUSR1 opens the file again")
    with z.client() as c:
        c.request("GET", "/back")
    lines = obs.wait_lines(path, 1, keep=lambda ln: "/back" in ln)
    tap.eq(len(lines), 1, "and lines are written there again")
    tap.ok(z.alive(), "zdmd still runs")
    z.stop()

with section(tap, "a full disk (/dev/full): reported, lines dropped and counted"):
    z = obs.start(tap, spec(access_log="/dev/full"))
    m0 = obs.scrape(z).value("zdm_access_log_dropped_total")
    tap.eq(m0, 0, "zdm_access_log_dropped_total 0 at the start")
    st = []
    with z.client() as c:
        for i in range(25):
            st.append(c.request("GET", "/?full=%d" % i).status)
    tap.eq(st, [200] * 25, "25 requests answered while the log cannot be written")
    got = wait_log(z, r"\[error\].*access log.*/dev/full", timeout=3)
    tap.ok(got and re.search(r"No space left on device", got[0]),
           "an [error] line names /dev/full and says 'No space left on device'", got)
    tap.eq(obs.wait_metric(z, "zdm_access_log_dropped_total", 25, timeout=3), 25,
           "zdm_access_log_dropped_total counts the 25 dropped lines")
    with z.client() as c:
        for i in range(10):
            c.request("GET", "/more/%d" % i)
    tap.eq(obs.wait_metric(z, "zdm_access_log_dropped_total", 35, timeout=3), 35,
           "and keeps counting (35)")
    n_err = len(log_lines(z, r"access log.*cannot write"))
    tap.ok(1 <= n_err <= 2, "the write error is reported, not once per line (%d lines)" % n_err)
    tap.ok(z.alive(), "zdmd still runs")
    z.stop()

# -- the error log's level ------------------------------------------------------------------------

with section(tap, "log_level"):
    for level, want_info, want_warn in (("error", False, False), ("warn", False, True),
                                        ("info", True, True), ("debug", True, True)):
        z = obs.start(tap, {"pools": {"old": [a, "127.0.0.1:%d" % free_port()]},
                            "split": {"old": 100}, "log_level": level})
        with z.client() as c:
            for _ in range(4):
                c.request("GET", "/")       # one of the two servers refuses: a [warn]
        z.stop()
        err = z.stderr()
        lv = set(re.findall(r"^\S+ \[(\w+)\] ", err, re.M))
        tap.eq(("info" in lv, "warn" in lv), (want_info, want_warn),
               "log_level %s: [info] %s, [warn] %s" % (level, "shown" if want_info else "hidden",
                                                    "shown" if want_warn else "hidden"), err[-600:])
        tap.ok(all(re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z \[(error|warn|info|debug)\] \S",
                            ln) for ln in err.splitlines()),
               "log_level %s: every stderr line is TIME [level] message" % level, err[-600:])

tap.done()
