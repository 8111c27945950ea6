"""Helpers for the health, breaker, degradation and fault-run tests.

Everything here talks to the test upstreams directly (their /__mode,
/__stats, /__heads and /__times paths, see tests/upstream.py) or to zdmd's
control socket through the harness (Zdmd.status()). Nothing here changes
zdmtest.py.

    set_mode(u, health=500)        /health answers 500 from now on
    set_mode(u, all="hang")        every request hangs
    refuse(u) / relisten(u)        close / reopen the listening socket
    kill(u) / restart(u)           SIGKILL the process / a new one, same port
    wait_state(z, "new", "c", "health", "down", timeout)  -> seconds or None
"""

import atexit
import contextlib
import datetime
import json
import os
import re
import select
import signal
import socket
import subprocess
import sys
import threading
import time
import traceback

import zdmtest
from zdmtest import Client, Closed, HOST, UPSTREAM_PY, find_server

# -- sections that stop at the first failed precondition -----------------------


class Abort(Exception):
    """Raised by need(): the failed check is already counted."""


def need(tap, cond, desc, diag=None):
    """A check the rest of the section depends on: on failure the section
    stops (without a second failure for the exception)."""
    if not tap.ok(cond, desc, diag):
        raise Abort(desc)
    return cond


@contextlib.contextmanager
def section(tap, name):
    """Like tap.section, but an Abort from need() ends the section quietly."""
    t0 = time.monotonic()
    try:
        yield
    except Abort:
        tap.diag("section '%s' stopped after a failed precondition" % name)
    except Exception:
        tap.ok(False, "%s: raised an exception" % name, traceback.format_exc())
    tap.diag("section '%s': %.1fs" % (name, time.monotonic() - t0))


# -- upstream fault controls -------------------------------------------------


def _direct(u, target, timeout=5.0):
    c = Client(u.port, timeout=timeout)
    try:
        return c.request("GET", target, [("Connection", "close")])
    finally:
        c.close()


def set_mode(u, **kw):
    """Sets faults on upstream U (keys of /__mode: health, all, listen, for,
    drop, reset); returns the mode in force."""
    q = "&".join("%s=%s" % (k, v) for k, v in kw.items())
    r = _direct(u, "/__mode?" + q)
    if r.status != 200:
        raise RuntimeError("upstream %s refused mode %s: %s %r" % (u.name, q, r.status, r.body))
    return json.loads(r.body)


def normal(u):
    """Back to normal answers."""
    return set_mode(u, reset=1)


def stats(u):
    return json.loads(_direct(u, "/__stats").body)


def count(u, path="/"):
    """Requests on PATH that reached U."""
    return stats(u)["paths"].get(path, 0)


def faults(u, path="/health"):
    """Requests on PATH that U answered with a fault."""
    return stats(u).get("faults", {}).get(path, 0)


def heads(u):
    return json.loads(_direct(u, "/__heads").body)


def times(u, path="/health"):
    """Wall-clock arrival times of the last requests on PATH."""
    return json.loads(_direct(u, "/__times?path=" + path).body)


def refuse(u):
    """U closes its listening socket (and its open connections): connects
    to it are refused until relisten(U)."""
    set_mode(u, listen="off")


def relisten(u, timeout=5.0):
    """U listens again on its port; returns once it accepts."""
    u.proc.send_signal(signal.SIGUSR2)
    return zdmtest.wait_for(lambda: _accepts(u.port), timeout=timeout)


def _accepts(port):
    try:
        s = socket.create_connection((HOST, port), timeout=0.5)
        s.close()
        return True
    except OSError:
        return False


_extra_procs = []


def _cleanup():
    for p in _extra_procs:
        if p.poll() is None:
            try:
                p.kill()
                p.wait(timeout=5)
            except Exception:
                pass


atexit.register(_cleanup)


def kill(u):
    """Stops U's process hard (SIGKILL), as a crash would."""
    if u.proc.poll() is None:
        u.proc.kill()
        u.proc.wait(timeout=5)


def restart(u, timeout=10.0):
    """A new upstream process with U's name on U's port; U follows it."""
    kill(u)
    deadline = time.monotonic() + timeout
    while True:
        proc = subprocess.Popen(
            [sys.executable, UPSTREAM_PY, "--port", str(u.port), "--name", u.name],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL,
            preexec_fn=_die_with_parent)
        _extra_procs.append(proc)
        buf = b""
        while time.monotonic() < deadline and b"\n" not in buf:
            r, _, _ = select.select([proc.stdout], [], [], 0.1)
            if r:
                chunk = os.read(proc.stdout.fileno(), 256)
                if not chunk:
                    break
                buf += chunk
        if buf.startswith(b"LISTENING "):
            u.proc = proc
            return True
        proc.kill()
        proc.wait(timeout=5)
        if time.monotonic() >= deadline:
            raise RuntimeError("upstream %s did not restart on port %d" % (u.name, u.port))
        time.sleep(0.1)   # the port may still be held for a moment


def _die_with_parent():
    try:
        import ctypes
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)
    except Exception:
        pass


# -- zdmd state ----------------------------------------------------------------


def server_state(z, pool, server):
    """The server's entry in zdmd's status, or None."""
    try:
        return find_server(z.status(), pool, server)
    except Exception:
        return None


def wait_state(z, pool, server, key, value, timeout, t0=None):
    """Polls status until POOL/SERVER's KEY equals VALUE; returns the
    seconds since T0 (default: now) when it was seen, or None."""
    if t0 is None:
        t0 = time.monotonic()
    deadline = time.monotonic() + timeout
    while True:
        s = server_state(z, pool, server)
        if s is not None and s.get(key) == value:
            return time.monotonic() - t0
        if time.monotonic() >= deadline:
            return None
        time.sleep(0.02)


def wait_all(z, servers, key, value, timeout):
    """SERVERS: [(pool, server)]. True once each has KEY == VALUE."""
    def cond():
        try:
            st = z.status()
        except Exception:
            return False
        return all((find_server(st, p, s) or {}).get(key) == value for p, s in servers)
    return zdmtest.wait_for(cond, timeout=timeout, interval=0.02)


def log_lines(z, pattern):
    """zdmd's stderr lines matching the regular expression PATTERN."""
    rx = re.compile(pattern)
    return [ln for ln in z.stderr().splitlines() if rx.search(ln)]


def wait_log(z, pattern, timeout=2.0, at_least=1):
    zdmtest.wait_for(lambda: len(log_lines(z, pattern)) >= at_least, timeout=timeout)
    return log_lines(z, pattern)


_UTC = re.compile(r"^(\d{4})-(\d\d)-(\d\d)[T ](\d\d):(\d\d):(\d\d)(?:\.(\d+))?(?:Z|\+00:?00| UTC)$")


def parse_utc(text):
    """Epoch seconds of a UTC time such as 2025-01-02T03:04:05.678Z, or
    None if TEXT is not one."""
    if not isinstance(text, str):
        return None
    m = _UTC.match(text)
    if not m:
        return None
    y, mo, d, h, mi, s = (int(x) for x in m.groups()[:6])
    frac = float("0." + m.group(7)) if m.group(7) else 0.0
    dt = datetime.datetime(y, mo, d, h, mi, s, tzinfo=datetime.timezone.utc)
    return dt.timestamp() + frac


def change_problems(change, keyword=None, after=None, before=None):
    """Problems with a "health_change"/"circuit_change" object: it must be
    {"at": UTC time, "reason": text}; the time within [AFTER - 1, BEFORE + 1]
    (epoch seconds) and the reason holding KEYWORD (a regex, ignoring case)."""
    if not isinstance(change, dict):
        return ["not an object: %r" % (change,)]
    bad = []
    at = parse_utc(change.get("at"))
    if at is None:
        bad.append("'at' is not a UTC time: %r" % (change.get("at"),))
    else:
        if after is not None and at < after - 1:
            bad.append("'at' %s is before the change was caused" % change.get("at"))
        if before is not None and at > before + 1:
            bad.append("'at' %s is in the future" % change.get("at"))
    reason = change.get("reason")
    if not isinstance(reason, str) or not reason:
        bad.append("no reason: %r" % (reason,))
    elif keyword and not re.search(keyword, reason, re.I):
        bad.append("reason %r does not match %r" % (reason, keyword))
    return bad


# -- traffic -------------------------------------------------------------------


def one(z, path="/", headers=None, timeout=5.0):
    """One GET on a new connection: (status, X-Upstream, seconds), with a
    status of "closed" or "timeout" when no response came."""
    t0 = time.monotonic()
    try:
        with Client(z.port, timeout=timeout) as c:
            r = c.request("GET", path, headers)
            return r.status, r.get("x-upstream"), time.monotonic() - t0
    except Closed:
        return "closed", None, time.monotonic() - t0
    except (TimeoutError, OSError) as e:
        return ("timeout" if "timed out" in str(e) else "error"), None, time.monotonic() - t0


def burst(z, n, conns=2, path="/", headers=None):
    """N GETs over CONNS keep-alive connections, one after the other:
    [(status, X-Upstream)] ("closed" when a connection ended early; the
    next request then opens a new one)."""
    out = []
    per = [n // conns + (1 if i < n % conns else 0) for i in range(conns)]
    for k in per:
        c = None
        for _ in range(k):
            try:
                if c is None:
                    c = Client(z.port, timeout=5)
                r = c.request("GET", path, headers)
                out.append((r.status, r.get("x-upstream")))
                if (r.get("connection") or "").lower() == "close":
                    c.close()
                    c = None
            except (Closed, OSError):
                out.append(("closed", None))
                if c:
                    c.close()
                c = None
        if c:
            c.close()
    return out


def concurrent(z, n, path="/", headers=None, timeout=10.0):
    """N GETs at once, each on its own connection, released together:
    [(status, X-Upstream, seconds)]."""
    res = [None] * n
    conns = []
    for _ in range(n):
        conns.append(Client(z.port, timeout=timeout))
    req = zdmtest.build_request("GET", path, headers)
    barrier = threading.Barrier(n)

    def run(i):
        c = conns[i]
        try:
            barrier.wait(5)
            t0 = time.monotonic()
            c.send(req)
            r = c.read_response()
            res[i] = (r.status, r.get("x-upstream"), time.monotonic() - t0)
        except Exception as e:
            res[i] = (type(e).__name__, None, None)
        finally:
            c.close()

    ths = [threading.Thread(target=run, args=(i,), daemon=True) for i in range(n)]
    for t in ths:
        t.start()
    for t in ths:
        t.join(timeout + 5)
    return res


def tally(seq, idx=1):
    out = {}
    for s in seq:
        out[s[idx]] = out.get(s[idx], 0) + 1
    return out


# -- admin HTTP -----------------------------------------------------------------


def wait_port(port, timeout=5.0):
    """True once something accepts on PORT (e.g. zdmd's admin listener,
    which the harness does not wait for)."""
    return zdmtest.wait_for(lambda: _accepts(port), timeout=timeout)


def metric(port, name, **labels):
    """The value of the sample NAME{LABELS} on the admin listener's
    /metrics (labels in any order), or None."""
    c = Client(port, timeout=5)
    try:
        r = c.request("GET", "/metrics", [("Connection", "close")])
    finally:
        c.close()
    for line in r.body.decode(errors="replace").splitlines():
        m = re.match(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)$", line)
        if not m or m.group(1) != name:
            continue
        got = dict(re.findall(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"', m.group(2) or ""))
        if got == {k: str(v) for k, v in labels.items()}:
            return float(m.group(3))
    return None
