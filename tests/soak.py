#!/usr/bin/env python3
"""Soak test: the real zdmd under mixed load and faults for a while, then
checks that it is back where it started and that it accounted for
everything.

    ZDMD=build/src/zdmd ZDMCTL=build/src/zdmctl python3 tests/soak.py --duration 60

runs a short run (CI runs 45 s of it through tests/integration/test_soak.py,
in the plain build only). For hours, give the duration in seconds and keep
the output:

    ZDMD=build/src/zdmd ZDMCTL=build/src/zdmctl \\
        python3 tests/soak.py --duration 14400 --report-every 300 | tee soak.tap

(4 hours; every loop is bounded by the run's deadline and by socket
timeouts, so it ends on its own; memory and descriptors are reported every
--report-every seconds as "# soak: t=..." lines, which show a slow leak as a
trend long before the end check.) --seed makes the load and fault schedule
repeatable.

What runs: zdmd in front of four upstream servers (tests/upstream.py; pool
old: o1, o2; pool new: n1, n2) with health checks, circuit breakers, an
admin listener and upstream_idle 2s. Client threads, each a bounded loop:

  keepalive   GETs of bodies of 0..300 KiB (spliced from 64 KiB) on kept
              connections, bodies checked
  churn       one GET per new connection
  upload      POST /echo and /sink with Content-Length or chunked bodies of
              0..2 MiB, echoed bytes or their SHA-256 checked
  tunnel      Upgrade to /upgrade, bytes echoed through the tunnel
  slowread    a 256 KiB body read 2 KiB at a time through a 4 KiB receive
              buffer (about 3 s a response)
  slowsend    a request head and body sent in small pieces with pauses
  pipeline    five requests (GET, HEAD, chunked, POST) in one write

Faults, on a schedule: a set-weight (the new pool's percentage, or one
server's weight) every --weight-every seconds; a reload every
--reload-every seconds, SIGHUP and `zdmctl reload` in turn, with a config
that changes upstream_response; every --kill-every seconds one upstream
process is killed (SIGKILL) and started again on its port 2-4 s later, one
server at a time, in turn.

First a warm-up (--warmup seconds of the same load without faults, which
must see no error at all); then, idle, the baseline: RSS and descriptors.
After the run, once idle again (no client connection, upstream idle
connections closed after upstream_idle), the checks:

  * descriptors (pipes aside) exactly the baseline; splice pipes at most
    the pool zdmd keeps (64 free pipes);
  * RSS at most --rss-slack MiB (default 10) over the baseline. zdmd keeps
    what it allocated in its own free lists (up to 1024 blocks of 16 KiB,
    1024 sessions, exchanges and upstream connections, 4 MiB of libevent
    buffers per worker) instead of returning it: the warm-up, with the same
    load mix, fills them to about the load's peak concurrency, and the run
    may add a few blocks at a higher peak (several large uploads or slow
    readers at once, retries during a kill) and allocator fragmentation,
    well under 10 MiB. A leak grows with the number of requests: over hours
    even a few bytes a request pass the bound;
  * no client error that a fault does not explain: a 502, a response cut
    short, a tunnel closed, or a request whose sending failed with no answer
    left to read (zdmd answers 502 and closes at once when the upstream
    fails while the body is still coming) is explained only while an
    upstream was down (from its kill until 2 s after its restart) and, when
    the client knows the server (X-Upstream), only by that server's kill;
    anything else (a 503, a timeout, a wrong body, a connection closed
    between requests) fails;
  * every line of zdmd's log classified: start, stop and reload lines
    (exactly one per reload made), and lines naming a killed server (its
    connect and reset errors, health and circuit transitions) within its
    kill window (recoveries: any time after its kill); any other line
    fails;
  * the counters equal what clients saw: per status class, the sum of
    zdm_requests_total on /metrics equals the responses whose head the
    clients received (a 101 is 1xx; a response cut short is counted by its
    head), once idle; 5xx may exceed it by the answers lost as above. A
    request in flight across a reload counts as any other: nothing else
    is allowed (the responses of operations a reload fell within are shown
    when it fails).

Output is TAP (ok N - ..., a plan line at the end), figures as "# soak:"
comments.
"""

import argparse
import collections
import hashlib
import os
import random
import re
import signal
import socket
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "integration"))

import zdmtest  # noqa: E402
from zdmtest import (TAP, Upstream, Client, Closed, Raw, content, build_request,  # noqa: E402
                     chunked, zdmctl, rss, wait_for, find_server)
import faults  # noqa: E402
import obs  # noqa: E402

SERVERS = [("old", "o1"), ("old", "o2"), ("new", "n1"), ("new", "n2")]
KINDS = ("keepalive", "churn", "upload", "tunnel", "slowread", "slowsend", "pipeline")
UPGRADE = (b"GET /upgrade HTTP/1.1\r\nHost: soak.test\r\nConnection: Upgrade\r\n"
           b"Upgrade: websocket\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
           b"Sec-WebSocket-Version: 13\r\n\r\n")
KILL_GRACE = 2.0        # client errors explained until this long after a restart
LOG_SKEW = 0.5          # the log's clock against ours, and write delays


def klass(status):
    return "%dxx" % (status // 100)


def now():
    return time.time()


# -- what the clients saw ----------------------------------------------------


class ClientError(Exception):
    """A failed operation: WHAT says how; UPSTREAM is the server that
    answered, when known (X-Upstream); STATUS the status when one came."""

    def __init__(self, what, upstream=None, status=None):
        super().__init__(what)
        self.what = what
        self.upstream = upstream
        self.status = status


class Record:
    """Counts of everything the clients did, and the errors (at most
    MAX_ERRORS kept; all counted)."""

    MAX_ERRORS = 10000

    def __init__(self):
        self.lock = threading.Lock()
        self.classes = collections.Counter()   # status class of every response head received
        self.ok = collections.Counter()        # kind -> operations that succeeded
        self.requests = collections.Counter()  # kind -> responses received
        self.bytes = collections.Counter()     # kind -> body bytes checked
        self.errors = []                       # (time, kind, ClientError)
        self.nerrors = collections.Counter()   # kind -> errors
        self.phase = "warmup"
        self.by_phase = collections.Counter()  # (phase, "ok"|"error")
        self.reload_times = []                 # [made, applied] of each reload (Faults appends)
        self.spanned = collections.Counter()   # responses of operations a reload fell within
        self.local = threading.local()

    def begin(self):
        self.local.classes = collections.Counter()
        self.local.t0 = now()

    def end(self):
        """The operation of this thread is over: its responses count in
        .spanned when a reload fell within it (shown when the counter
        check fails)."""
        t0, t1 = self.local.t0, now()
        if any(t0 < (b or t1) and a < t1 for a, b in self.reload_times[-50:]):
            with self.lock:
                self.spanned.update(self.local.classes)

    def head(self, kind, status):
        with self.lock:
            self.classes[klass(status)] += 1
            self.requests[kind] += 1
        self.local.classes[klass(status)] += 1

    def success(self, kind, nbytes=0):
        with self.lock:
            self.ok[kind] += 1
            self.bytes[kind] += nbytes
            self.by_phase[(self.phase, "ok")] += 1

    def error(self, kind, e):
        """E ended the operation begun at self.local.t0."""
        with self.lock:
            self.nerrors[kind] += 1
            self.by_phase[(self.phase, "error")] += 1
            if len(self.errors) < self.MAX_ERRORS:
                self.errors.append(((self.local.t0, now()), kind, e))


def read(c, rec, kind, method="GET"):
    """One response on client C, its head counted; failures as ClientError."""
    try:
        r = c.read_response(method)
    except Closed as e:
        if e.response is not None:
            rec.head(kind, e.response.status)
            raise ClientError("response cut short (%d bytes of body)" % (len(e.partial) - len(e.response.head)),
                              e.response.get("x-upstream"), e.response.status)
        raise ClientError("closed before a response head")
    except (socket.timeout, TimeoutError):
        raise ClientError("timeout")
    except OSError as e:
        raise ClientError("socket error: %s" % e)
    rec.head(kind, r.status)
    return r


def send(c, data, rec=None, kind=None, method="GET"):
    """Sends DATA; when that fails and REC is given, reads the answer that
    may have come meanwhile (zdmd answers 502 and closes when the upstream
    fails while the body is coming), so that it is counted and judged."""
    try:
        c.send(data)
        return
    except (socket.timeout, TimeoutError):
        raise ClientError("timeout while sending")
    except OSError as e:
        failure = e
    if rec is not None:
        try:
            c.sock.settimeout(2.0)
            r = read(c, rec, kind, method)
        except ClientError:
            r = None
        if r is not None:
            raise ClientError("answered %d while the request was being sent (then: %s)" % (r.status, failure),
                              r.get("x-upstream"), r.status)
    raise ClientError("send failed: %s; no answer could be read" % failure)


def expect(r, status, body=None, what=""):
    if r.status != status:
        raise ClientError("status %d%s (want %d)" % (r.status, what, status), r.get("x-upstream"), r.status)
    if body is not None and r.body != body:
        raise ClientError("wrong body%s: %d bytes, want %d" % (what, len(r.body), len(body)),
                          r.get("x-upstream"), r.status)


def closes(r):
    return "close" in r.tokens("connection")


class Load:
    """The client threads: each a loop until STOP, every operation bounded
    by socket timeouts."""

    def __init__(self, port, rec, seed, timeout=10.0):
        self.port = port
        self.rec = rec
        self.seed = seed
        self.timeout = timeout
        self.stop = threading.Event()
        self.threads = []

    def start(self, plan):
        self.stop.clear()
        self.threads = []
        n = 0
        for kind, count in plan:
            for i in range(count):
                n += 1
                rng = random.Random("%s-%s-%d-%d" % (self.seed, kind, i, n))
                t = threading.Thread(target=self._loop, args=(kind, rng), daemon=True,
                                     name="%s-%d" % (kind, i))
                t.start()
                self.threads.append(t)

    def finish(self, timeout=60.0):
        """Stops the loops; True when every thread ended within TIMEOUT."""
        self.stop.set()
        deadline = time.monotonic() + timeout
        for t in self.threads:
            t.join(max(0.1, deadline - time.monotonic()))
        return not any(t.is_alive() for t in self.threads)

    def _loop(self, kind, rng):
        op = getattr(self, "op_" + kind)
        state = {"c": None}
        while not self.stop.is_set():
            self.rec.begin()
            try:
                op(rng, state)
            except ClientError as e:
                self.rec.error(kind, e)
                self._drop(state)
                self.stop.wait(0.05)
            except Exception as e:   # a bug of this file: counted, never hidden
                self.rec.error(kind, ClientError("exception %s: %s" % (type(e).__name__, e)))
                self._drop(state)
                self.stop.wait(0.05)
            self.rec.end()
        self._drop(state)

    @staticmethod
    def _drop(state):
        if state.get("c") is not None:
            state["c"].close()
            state["c"] = None

    def _conn(self, state, rcvbuf=None):
        if state.get("c") is None:
            try:
                state["c"] = Client(self.port, timeout=self.timeout, rcvbuf=rcvbuf)
            except (socket.timeout, TimeoutError):
                raise ClientError("connect timed out")
            except OSError as e:
                raise ClientError("connect failed: %s" % e)
        return state["c"]

    def _after(self, state, r):
        if closes(r):
            self._drop(state)

    # -- the operations

    def op_keepalive(self, rng, state):
        c = self._conn(state)
        n = rng.choice([0, 1, 100, 4096, 20000, 65536, 100000, 300000])
        path = rng.choice(["/size/%d", "/chunked/%d"]) % n
        if rng.random() < 0.1:
            path, want, status = "/status/404", None, 404
        elif rng.random() < 0.05:
            path, want, status = "/", None, 200
        else:
            want, status = content(n), 200
        send(c, build_request("GET", path))
        r = read(c, self.rec, "keepalive")
        expect(r, status, want, " for GET %s" % path)
        self.rec.success("keepalive", len(r.body))
        self._after(state, r)
        self.stop.wait(0.002)

    def op_churn(self, rng, state):
        c = self._conn(state)
        path = rng.choice(["/", "/size/2000", "/size/70000"])
        hs = [("Connection", "close")] if rng.random() < 0.5 else None
        send(c, build_request("GET", path, hs))
        r = read(c, self.rec, "churn")
        expect(r, 200, None if path == "/" else content(int(path.rsplit("/", 1)[1])), " for GET %s" % path)
        self.rec.success("churn", len(r.body))
        self._drop(state)

    def op_upload(self, rng, state):
        c = self._conn(state)
        n = rng.choice([0, 1, 1000, 20000, 70000, 300000, 1 << 20, 2 << 20])
        body = rng.randbytes(n)
        digest = hashlib.sha256(body).hexdigest()
        path = "/sink" if n >= (1 << 20) else "/echo"
        if rng.random() < 0.5:
            req = build_request("POST", path, body=body)
            how = "Content-Length"
        else:
            req = build_request("POST", path, [("Transfer-Encoding", "chunked")]) + \
                chunked(body, sizes=(rng.choice([1, 7, 1000, 16384, 65536]), 4096, 100000))
            how = "chunked"
        send(c, req, self.rec, "upload", "POST")
        r = read(c, self.rec, "upload", "POST")
        expect(r, 200, body if path == "/echo" else None, " for POST %s (%s, %d bytes)" % (path, how, n))
        if r.get("x-body-sha256") != digest:
            raise ClientError("upstream received other bytes (%s, %d bytes)" % (how, n),
                              r.get("x-upstream"), r.status)
        self.rec.success("upload", n)
        self._after(state, r)

    def op_tunnel(self, rng, state):
        c = self._conn(state)
        send(c, UPGRADE)
        r = read(c, self.rec, "tunnel")
        up = r.get("x-upstream")
        if r.status != 101:
            raise ClientError("upgrade answered %d" % r.status, up, r.status)
        moved = 0
        for _ in range(rng.randint(2, 8)):
            data = rng.randbytes(rng.choice([1, 100, 5000, 65536]))
            send(c, data)
            try:
                while len(c.buf) < len(data):
                    c._fill()
            except Closed:
                raise ClientError("tunnel closed after %d bytes" % moved, up, 101)
            except (socket.timeout, TimeoutError):
                raise ClientError("tunnel echo timed out", up, 101)
            got = bytes(c.buf[:len(data)])
            del c.buf[:len(data)]
            if got != data:
                raise ClientError("tunnel echoed other bytes", up, 101)
            moved += len(data)
            if self.stop.wait(rng.random() * 0.3):
                break
        self.rec.success("tunnel", moved)
        self._drop(state)

    def op_slowread(self, rng, state):
        n = 256 * 1024
        c = self._conn(state, rcvbuf=4096)
        send(c, build_request("GET", "/size/%d" % n))
        try:
            head = c.read_head()
        except Closed:
            raise ClientError("closed before a response head")
        except (socket.timeout, TimeoutError):
            raise ClientError("timeout")
        status = int(head.split(b" ", 2)[1])
        self.rec.head("slowread", status)
        up = None
        m = re.search(rb"(?im)^x-upstream:\s*(\S+)", head)
        if m:
            up = m.group(1).decode()
        if status != 200:
            raise ClientError("status %d for a slow read" % status, up, status)
        body = bytearray(c.buf)
        c.buf.clear()
        while len(body) < n:
            try:
                d = c.sock.recv(2048)
            except (socket.timeout, TimeoutError):
                raise ClientError("slow read timed out at %d bytes" % len(body), up, status)
            except ConnectionResetError:
                d = b""
            if not d:
                raise ClientError("response cut short at %d of %d bytes" % (len(body), n), up, status)
            body += d
            time.sleep(0.02)
        if bytes(body[:n]) != content(n):
            raise ClientError("slow read: other bytes", up, status)
        self.rec.success("slowread", n)
        self._drop(state)

    def op_slowsend(self, rng, state):
        c = self._conn(state)
        n = rng.choice([0, 3000, 30000])
        body = rng.randbytes(n)
        if rng.random() < 0.5:
            req = build_request("POST", "/echo", body=body)
        else:
            req = build_request("POST", "/echo", [("Transfer-Encoding", "chunked")]) + chunked(body)
        end = req.index(b"\r\n\r\n") + 4
        pos = 0
        while pos < len(req):
            step = 10 if pos < end else 1000
            send(c, req[pos:pos + step], self.rec, "slowsend", "POST")
            pos += step
            time.sleep(0.03 if pos < end else 0.01)
        r = read(c, self.rec, "slowsend", "POST")
        expect(r, 200, body, " for a slowly sent POST /echo (%d bytes)" % n)
        self.rec.success("slowsend", n)
        self._after(state, r)

    def op_pipeline(self, rng, state):
        c = self._conn(state)
        reqs = []
        for _ in range(5):
            k = rng.randrange(4)
            n = rng.choice([0, 10, 5000, 70000])
            if k == 0:
                reqs.append(("GET", "/size/%d" % n, None, content(n)))
            elif k == 1:
                reqs.append(("HEAD", "/size/%d" % n, None, b""))
            elif k == 2:
                reqs.append(("GET", "/chunked/%d" % n, None, content(n)))
            else:
                b = rng.randbytes(n)
                reqs.append(("POST", "/echo", b, b))
        send(c, b"".join(build_request(m, p, body=b) for m, p, b, _ in reqs), self.rec, "pipeline",
             reqs[0][0])
        got = 0
        first = None
        for m, p, _, want in reqs:
            # Every response is read, after a wrong one too: zdmd counts
            # what it sent, and so must the client.
            r = read(c, self.rec, "pipeline", m)
            try:
                expect(r, 200, want, " for pipelined %s %s" % (m, p))
            except ClientError as e:
                first = first or e
            got += len(r.body)
            if closes(r):
                break
        if first:
            raise first
        self.rec.success("pipeline", got)
        self._drop(state)


# -- faults ------------------------------------------------------------------


class Spawner:
    """Starts upstream processes again from one thread that lives as long
    as the test: a child gets SIGKILL when the thread that started it ends
    (PR_SET_PDEATHSIG, see zdmtest), so the fault thread, which ends before
    the checks, must not start them itself."""

    def __init__(self):
        import queue
        self.q = queue.Queue()
        threading.Thread(target=self._run, daemon=True, name="spawner").start()

    def _run(self):
        while True:
            u, done, out = self.q.get()
            try:
                out.append(faults.restart(u))
            except Exception as e:
                out.append(e)
            done.set()

    def restart(self, u, timeout=20.0):
        done, out = threading.Event(), []
        self.q.put((u, done, out))
        if not done.wait(timeout):
            raise RuntimeError("restart of %s did not finish in %.0f s" % (u.name, timeout))
        if isinstance(out[0], Exception):
            raise out[0]
        return out[0]


SPAWNER = None


class Faults:
    """The fault schedule, in a thread of its own; every event is kept with
    its time."""

    def __init__(self, tap, z, ups, spec, args, rng, rec):
        self.tap = tap
        self.rec = rec
        self.z = z
        self.ups = ups          # name -> Upstream
        self.spec = spec
        self.args = args
        self.rng = rng
        self.stop = threading.Event()
        self.kills = []         # [name, t_kill, t_restarted or None]
        self.reloads = []       # (time, how, ok, answer)
        self.weights = []       # (time, args, ok, answer)
        self.problems = []
        self.thread = None
        self.variant = 0

    def start(self):
        self.thread = threading.Thread(target=self._run, daemon=True, name="faults")
        self.thread.start()

    def finish(self):
        self.stop.set()
        if self.thread:
            self.thread.join(30)
        # Whatever is still down comes back.
        for k in self.kills:
            if k[2] is None:
                self._restart(k)

    def _restart(self, k):
        try:
            SPAWNER.restart(self.ups[k[0]])
            k[2] = now()
        except Exception as e:
            self.problems.append("restart of %s failed: %s" % (k[0], e))

    def _run(self):
        a = self.args
        t0 = time.monotonic()
        next_w = t0 + a.weight_every
        next_r = t0 + a.reload_every
        next_k = t0 + min(a.kill_every, 4.0)
        down = None              # the kill in progress
        up_at = None
        order = [s for _, s in SERVERS]
        ki = 0
        end = t0 + a.duration
        while not self.stop.is_set():
            t = time.monotonic()
            if down is not None and t >= up_at:
                self._restart(down)
                down = None
            if t >= next_w:
                self._set_weight()
                next_w = t + a.weight_every
            if t >= next_r:
                self._reload()
                next_r = t + a.reload_every
            # A kill only when it can end (restart and recovery) in time.
            if down is None and t >= next_k and t + 8 < end:
                name = order[ki % len(order)]
                ki += 1
                down = [name, now(), None]
                faults.kill(self.ups[name])
                self.kills.append(down)
                up_at = t + self.rng.uniform(2.0, 4.0)
                next_k = t + a.kill_every
            self.stop.wait(0.05)
        if down is not None:
            self._restart(down)

    def _set_weight(self):
        if self.rng.random() < 0.5:
            args = ["set-weight", "new", str(self.rng.choice([0, 5, 10, 25, 50, 75, 90, 100]))]
        else:
            pool, srv = self.rng.choice(SERVERS)
            args = ["set-weight", "%s/%s" % (pool, srv), str(self.rng.randint(1, 5))]
        t = now()
        try:
            rc, out, err = zdmctl(args, sock=self.z.sock_path)
        except Exception as e:
            rc, out, err = None, "", str(e)
        self.weights.append((t, " ".join(args), rc == 0, (out + err).strip()))

    def _reload(self):
        # Each reload changes something: upstream_response 30s or 29s.
        self.variant ^= 1
        spec = dict(self.spec)
        spec["timeouts"] = dict(spec["timeouts"], upstream_response=Raw("%ds" % (30 - self.variant)))
        self.z.rewrite(spec)
        how = "SIGHUP" if len(self.reloads) % 2 == 0 else "zdmctl reload"
        span = [now(), None]    # the reload happened between these times
        self.rec.reload_times.append(span)
        if how == "SIGHUP":
            before = self.z.stderr().count("(SIGHUP)")
            self.z.signal(signal.SIGHUP)
            ok = bool(wait_for(lambda: self.z.stderr().count("(SIGHUP)") > before, timeout=5, interval=0.01))
            span[1] = now()
            self.reloads.append((span[0], how, ok, "" if ok else "no 'reloaded' line within 5 s"))
        else:
            try:
                rc, out, err = zdmctl(["reload"], sock=self.z.sock_path)
            except Exception as e:
                rc, out, err = None, "", str(e)
            span[1] = now()
            self.reloads.append((span[0], how, rc == 0, (out + err).strip()))



# -- explaining errors and log lines ------------------------------------------


def explain_client_error(span, kind, e, fl):
    """Why a fault explains error E of the operation that ran over SPAN
    (start, end), or None: while a server was down or just back, a 502, a
    response cut short or a tunnel closed (by the server that answered, when
    the client knows it), or a request whose sending failed with no answer
    to read (zdmd answered 502 and closed while the body was coming, and the
    client's next write met the reset)."""
    t0, t1 = span
    cut = e.what.startswith(("response cut short", "tunnel closed", "slow read timed out"))
    lost = e.what.startswith("send failed")
    if not (cut or lost or e.status == 502):
        return None
    for k in fl.kills:
        if e.upstream and k[0] != e.upstream:
            continue
        if t1 >= k[1] and t0 <= (k[2] or now()) + KILL_GRACE:
            return "%s was down" % k[0]
    return None


LOG_LINE = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d+Z) \[(\w+)\] (.*)$")
ALWAYS = [re.compile(p) for p in (
    r"^zdmd \S+: listening on ",
    r"^signal \d+: shutting down gracefully",
    r"^zdmd: stopped$",
    r"^draining: \d+ connections with requests in flight$",
)]
RELOAD = re.compile(r"^reloaded \S+ \((SIGHUP|control socket)\)")
# Lines that name one server: (pattern with a "srv" group, is a recovery).
SERVER_LINES = [
    (re.compile(r"^client \S+ [A-Z]+: upstream (?P<pool>\w+)/(?P<srv>\w+) \([^)]*\): "
                r"(connect refused|connect failed|connect timed out|connection closed or reset)( mid-response)?$"),
     False),
    (re.compile(r"^upstream (?P<srv>\w+) \([^)]*\): connect failed: "), False),
    (re.compile(r"^health: (?P<pool>\w+)/(?P<srv>\w+) down: "), False),
    (re.compile(r"^circuit: (?P<pool>\w+)/(?P<srv>\w+) open: "), False),
    (re.compile(r"^health: (?P<pool>\w+)/(?P<srv>\w+) up: "), True),
    (re.compile(r"^circuit: (?P<pool>\w+)/(?P<srv>\w+) (half-open|closed): "), True),
]


def parse_utc(text):
    return faults.parse_utc(text)


def classify_log(lines, fl):
    """(explained lines by reason, [unexplained lines], reload lines)"""
    explained = collections.Counter()
    bad = []
    reloads = []
    for ln in lines:
        m = LOG_LINE.match(ln)
        if not m:
            bad.append(ln)
            continue
        t = parse_utc(m.group(1))
        # A line a peer can cause is rate-limited: the count of the ones
        # left out follows it, and they have its cause.
        msg = re.sub(r" \(and \d+ more like it not logged\)$", "", m.group(3))
        if any(p.search(msg) for p in ALWAYS):
            explained["start/stop"] += 1
            continue
        if RELOAD.search(msg):
            reloads.append((t, msg))
            explained["reload"] += 1
            continue
        why = None
        for rx, recovery in SERVER_LINES:
            mm = rx.search(msg)
            if not mm:
                continue
            srv = mm.group("srv")
            for k in fl.kills:
                if k[0] != srv:
                    continue
                end = (k[2] or now()) + 10.0
                if k[1] - LOG_SKEW <= t and (recovery or t <= end):
                    why = "%s killed" % srv
                    break
            break
        if why:
            explained[why] += 1
        else:
            bad.append(ln)
    return explained, bad, reloads


# -- zdmd's resources ---------------------------------------------------------


def idle_fds(z, samples=10, pause=0.1):
    """The least number of descriptors (pipes aside) over SAMPLES readings:
    a health check's connection comes and goes."""
    vals = []
    for _ in range(samples):
        v = z.fds()
        if v is not None:
            vals.append(v)
        time.sleep(pause)
    return min(vals) if vals else None


def wait_idle(z, admin, timeout):
    """Until zdmd holds no client connection (by /metrics and by its
    sockets); True if it did within TIMEOUT."""
    def idle():
        try:
            m = obs.scrape(admin)
        except Exception:
            return False
        return m.value("zdm_client_connections") == 0 and z.client_sockets() == 0
    return wait_for(idle, timeout=timeout, interval=0.1)


def hms(t):
    return time.strftime("%H:%M:%S", time.gmtime(t)) + ".%03d" % (t % 1 * 1000)


def mib(b):
    return b / 1048576.0


# -- main ----------------------------------------------------------------------


def main(argv=None):
    ap = argparse.ArgumentParser(description="zdmd soak test (TAP output)")
    ap.add_argument("--duration", type=float, default=float(os.environ.get("ZDM_SOAK_SECONDS", 60)),
                    help="seconds of load with faults (default 60, or $ZDM_SOAK_SECONDS)")
    ap.add_argument("--warmup", type=float, default=8.0, help="seconds of load before the baseline")
    ap.add_argument("--weight-every", type=float, default=2.0)
    ap.add_argument("--reload-every", type=float, default=6.0)
    ap.add_argument("--kill-every", type=float, default=10.0)
    ap.add_argument("--rss-slack", type=float, default=10.0, help="MiB over the baseline allowed at the end")
    ap.add_argument("--report-every", type=float, default=15.0, help="seconds between progress lines")
    ap.add_argument("--seed", default=None)
    args = ap.parse_args(argv)
    seed = args.seed if args.seed is not None else str(random.randrange(1 << 30))

    tap = TAP(deadline=int(args.warmup + args.duration + 300))
    global SPAWNER
    SPAWNER = Spawner()
    tap.diag("soak: seed %s, duration %.0f s, warm-up %.0f s" % (seed, args.duration, args.warmup))
    ups = {name: Upstream(name) for _, name in SERVERS}
    spec = {"pools": {"old": [ups["o1"], ups["o2"]], "new": [ups["n1"], ups["n2"]]},
            "split": {"old": 70, "new": 30},
            # Not tighter: under this load the Python servers stall for a
            # few hundred ms at times, and a check answered late would mark
            # a server down that no fault touched.
            "health_check": {"path": "/health", "interval": Raw("1s"), "timeout": Raw("800ms"),
                             "rise": 2, "fall": 2},
            "circuit_breaker": {"failures": 3, "open_for": Raw("1s")},
            "timeouts": {"connect": Raw("1s"), "upstream_idle": Raw("2s"),
                         "upstream_response": Raw("30s")},
            # Within what any machine's descriptor limit allows, so that
            # every warning in the log is one the faults explain.
            "limits": {"max_connections": 2000},
            "log_level": "info"}
    z = obs.start(tap, spec)
    spec["admin"] = "%s:%d" % (zdmtest.HOST, z.admin)
    admin = z.admin
    rec = Record()
    load = Load(z.port, rec, seed)
    plan = [("keepalive", 3), ("churn", 2), ("upload", 2), ("tunnel", 1), ("slowread", 1),
            ("slowsend", 1), ("pipeline", 1)]
    rss_log = []

    def progress(t0, phase):
        r = rss(z.proc.pid)
        f = z.fds()
        rss_log.append((time.monotonic() - t0, r, f))
        with rec.lock:
            nreq = sum(rec.requests.values())
            nerr = sum(rec.nerrors.values())
        tap.diag("soak: t=%5.0fs %s: RSS %.1f MiB, %s descriptors, %s pipes; %d responses, %d errors"
                 % (time.monotonic() - t0, phase, mib(r), f, z.pipes(), nreq, nerr))

    # 1. warm-up: the same load, no faults, no error allowed.
    t0 = time.monotonic()
    load.start(plan)
    while time.monotonic() - t0 < args.warmup:
        time.sleep(min(1.0, args.warmup))
    ended = load.finish()
    tap.ok(ended, "warm-up: every client thread ended")
    progress(t0, "warm-up done")
    warm_err = list(rec.errors)
    tap.eq(len(warm_err), 0, "warm-up: %d operations, no client error" % rec.by_phase[("warmup", "ok")],
           "\n".join("%s %s: %s (upstream %s)" % (hms(t[1]), k, e.what, e.upstream)
                     for t, k, e in warm_err[:20]))
    tap.ok(all(rec.ok[k] > 0 for k in KINDS), "warm-up: every kind of load succeeded at least once",
           dict(rec.ok))

    # 2. the baseline, idle.
    tap.ok(wait_idle(z, admin, 15), "idle after the warm-up: no client connection")
    time.sleep(2.5)     # upstream idle connections closed (upstream_idle 2s)
    base_fds = idle_fds(z)
    base_pipes = z.pipes()
    base_rss = rss(z.proc.pid)
    tap.diag("soak: baseline: RSS %.1f MiB, %s descriptors (pipes aside), %s pipe descriptors"
             % (mib(base_rss), base_fds, base_pipes))

    # 3. the run: load and faults.
    rec.phase = "run"
    fl = Faults(tap, z, ups, spec, args, random.Random(seed + "-faults"), rec)
    t1 = time.monotonic()
    load.start(plan)
    fl.start()
    next_report = t1 + args.report_every
    while time.monotonic() - t1 < args.duration:
        time.sleep(0.2)
        if time.monotonic() >= next_report:
            progress(t1, "run")
            next_report += args.report_every
        if not z.alive():
            break
    fl.finish()
    ended = load.finish()
    run_s = time.monotonic() - t1
    tap.ok(z.alive(), "zdmd is still running after %.0f s of load and faults" % run_s)
    tap.ok(ended, "every client thread ended")
    tap.ok(not fl.problems, "every killed upstream started again", "\n".join(fl.problems))
    tap.ok(faults.wait_all(z, SERVERS, "health", "up", 10), "every server is up again")
    wait_for(lambda: all((find_server(z.status(), p, s) or {}).get("circuit") == "closed"
                         for p, s in SERVERS), timeout=5)

    # Faults made.
    nkill = len(fl.kills)
    tap.ok(nkill >= 1 and fl.weights and len(fl.reloads) >= 2,
           "faults made: %d kills, %d set-weights, %d reloads" % (nkill, len(fl.weights), len(fl.reloads)))
    bad_w = [w for w in fl.weights if not w[2]]
    tap.eq(bad_w, [], "every set-weight was accepted")
    bad_r = [r for r in fl.reloads if not r[2]]
    tap.eq(bad_r, [], "every reload was applied (zdmctl's answer, or the log line after SIGHUP)")

    # What ran.
    for k in KINDS:
        tap.diag("soak: %-9s %7d ok, %6d responses, %5d errors, %8.1f MiB of bodies checked"
                 % (k, rec.ok[k], rec.requests[k], rec.nerrors[k], mib(rec.bytes[k])))
    tap.ok(all(rec.ok[k] > 0 for k in KINDS), "every kind of load succeeded during the run", dict(rec.ok))

    # 4. client errors: each explained by a fault, or a failure.
    explained = collections.Counter()
    unexplained = []
    for t, kind, e in rec.errors:
        why = explain_client_error(t, kind, e, fl)
        if why:
            explained["%s: %s" % (kind, e.what.split(" (")[0].split(" at ")[0])] += 1
        else:
            unexplained.append((t, kind, e))
    lost_answers = sum(1 for _, _, e in rec.errors if e.what.startswith("send failed"))
    lost = sum(rec.nerrors.values()) - len(rec.errors)
    for what, n in sorted(explained.items()):
        tap.diag("soak: explained client error: %dx %s" % (n, what))
    tap.eq(len(unexplained) + lost, 0,
           "no client error that the faults do not explain (%d errors, %d explained by kills)"
           % (sum(rec.nerrors.values()), sum(explained.values())),
           "\n".join("%s..%s %s: %s (upstream %s, status %s)" % (
               hms(t[0]), hms(t[1]), k, e.what, e.upstream, e.status) for t, k, e in unexplained[:30]) +
           "\nkills: " + ", ".join("%s %s..%s" % (k[0], hms(k[1]), hms(k[2] or 0)) for k in fl.kills) +
           "\nreloads: " + ", ".join("%s %s" % (hms(r[0]), r[1]) for r in fl.reloads[:30]))

    # 5. idle again: counters, descriptors, memory.
    tap.ok(wait_idle(z, admin, 20), "idle after the run: no client connection")
    m = obs.scrape(admin)
    tap.eq(m.errors, [], "/metrics is well-formed")
    got = collections.Counter()
    for smp in m.find("zdm_requests_total"):
        got[smp.labels["code"]] += int(smp.value)
    want = collections.Counter(rec.classes)
    classes = sorted(set(got) | set(want))
    desc = "zdm_requests_total per class equals the responses the clients received (%d)" % sum(want.values())
    counted = {c: got[c] for c in classes}
    seen = {c: want[c] for c in classes}
    short = {c: want[c] - got[c] for c in classes}
    # Answers zdmd sent that the clients could not read (their request was
    # still being sent and met the reset after zdmd's 502): at most one per
    # such error, all 5xx.
    lost = {c: 0 for c in classes}
    lost["5xx"] = lost_answers
    if counted == seen:
        tap.ok(True, desc)
    elif all(-lost[c] <= short[c] <= 0 for c in classes):
        tap.ok(True, desc + ", but for %d 5xx answers reset before the client read them"
               % -sum(short.values()))
    else:
        tap.eq(counted, seen, desc, "in flight across a reload: %r; answers lost to a reset: at most %d"
               % ({c: rec.spanned[c] for c in classes}, lost_answers))

    deadline = time.monotonic() + 15
    end_fds = idle_fds(z)
    while end_fds != base_fds and time.monotonic() < deadline:
        time.sleep(0.5)
        end_fds = idle_fds(z)
    end_pipes = z.pipes()
    end_rss = rss(z.proc.pid)
    peak = max((r for _, r, _ in rss_log), default=end_rss)
    tap.diag("soak: end: RSS %.1f MiB (baseline %.1f, +%.1f MiB; highest seen during the run %.1f), "
             "%s descriptors (baseline %s), %s pipe descriptors (baseline %s)"
             % (mib(end_rss), mib(base_rss), mib(end_rss - base_rss), mib(peak), end_fds, base_fds,
                end_pipes, base_pipes))
    tap.eq(end_fds, base_fds, "descriptors back to the baseline once idle (pipes aside)",
           "open: %r" % sorted(zdmtest.Zdmd._fd_targets(z)))
    tap.ok(end_pipes is not None and end_pipes <= 2 * 64,
           "splice pipes within zdmd's pool of free pipes (%s descriptors, at most 128)" % end_pipes)
    tap.ok(end_rss - base_rss <= args.rss_slack * 1048576,
           "RSS within %.0f MiB of the baseline (+%.1f MiB)" % (args.rss_slack, mib(end_rss - base_rss)))

    # 6. the log: every line explained.
    lines = z.stderr().splitlines()
    why, bad, reload_lines = classify_log(lines, fl)
    for what, n in sorted(why.items()):
        tap.diag("soak: log: %dx %s" % (n, what))
    tap.eq(bad, [], "every line of zdmd's log is explained (%d lines)" % len(lines))
    tap.eq(len(reload_lines), len(fl.reloads),
           "one 'reloaded' line per reload (%d SIGHUP, %d zdmctl)" % (
               sum(1 for r in fl.reloads if r[1] == "SIGHUP"), sum(1 for r in fl.reloads if r[1] != "SIGHUP")))
    tap.diag("soak: summary: %.0f s, %d responses (%s), %d errors (%d explained), %d kills, %d reloads, "
             "%d set-weights; RSS %.1f -> %.1f MiB, descriptors %s -> %s"
             % (run_s, sum(rec.classes.values()),
                ", ".join("%s %d" % kv for kv in sorted(rec.classes.items())),
                sum(rec.nerrors.values()), sum(explained.values()), nkill, len(fl.reloads),
                len(fl.weights), mib(base_rss), mib(end_rss), base_fds, end_fds))
    tap.done()


if __name__ == "__main__":
    main()
