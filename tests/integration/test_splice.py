#!/usr/bin/env python3
"""Kernel splicing of response bodies (zdmd(8) PERFORMANCE, "Kernel
splicing"): a plain-HTTP body framed by Content-Length with 64 KiB or more
still to come after its head goes from the upstream socket to the client
socket with splice(2), counted in zdm_spliced_bytes_total. Checked here:
large bodies arrive byte-exact and are counted; small, chunked, de-chunked
(HTTP/1.0 client) and TLS bodies are not spliced; HEAD, keep-alive after a
spliced body (upstream connection reused), pipelining, a slow reader
(memory stays small), a client that leaves mid-body (no descriptor leak,
the upstream connection is not reused), and an upstream that closes,
resets or stalls mid-body (the client's connection is closed, zdmd goes
on)."""

import socket
import threading
import time

from zdmtest import (TAP, Upstream, Server, Client, Closed, Raw, HOST, build_request,
                     content, free_port, rss, sha256, wait_for)
from faults import section, need
import obs

KiB = 1024
MiB = 1024 * 1024
SPLICE_MIN = 64 * KiB       # the documented threshold
WORKERS = 2

tap = TAP(deadline=90)
T0 = time.monotonic()
a, b = Upstream("a"), Upstream("b")

z = obs.start(tap, {"workers": WORKERS,
                    "pools": {"old": [a], "new": [b]},
                    "split": {"old": 100, "new": 0},
                    "timeouts": {"upstream_idle": Raw("2s")}})
BASE_FDS = z.fds()
BASE_PIPES = z.pipes()


def spliced(zz=None):
    return obs.scrape(zz or z).value("zdm_spliced_bytes_total")


def wait_spliced(lo, zz=None, timeout=3.0):
    """Polls the counter until it is at least LO; returns the last value
    (the worker adds a spliced chunk right after the system call that sent
    it, so the client may see the bytes a moment before the counter)."""
    last = [None]

    def cond():
        last[0] = spliced(zz)
        return last[0] is not None and last[0] >= lo
    wait_for(cond, timeout=timeout, interval=0.02)
    return last[0]


_direct = {}


def direct(path):
    """The sha256 of the body upstream a answers for PATH, asked directly."""
    if path not in _direct:
        c = Client(a.port, timeout=30)
        try:
            r = c.request("GET", path, [("Connection", "close")])
        finally:
            c.close()
        _direct[path] = sha256(r.body)
    return _direct[path]


def conns(u):
    return u.stats()["connections"]


# -- large bodies --------------------------------------------------------------------

with section(tap, "large bodies are spliced"):
    for n, name in ((1 * MiB, "1 MiB"), (10 * MiB, "10 MiB")):
        want = direct("/size/%d" % n)
        s0 = spliced()
        with z.client(timeout=30) as c:
            r = c.request("GET", "/size/%d" % n)
        tap.eq((r.status, r.framing, r.get("content-length")), (200, "length", str(n)),
               "%s: 200 with its Content-Length" % name)
        tap.eq(sha256(r.body), want, "%s: byte-exact (sha256 of the upstream's own answer)" % name)
        s1 = wait_spliced(s0 + n - SPLICE_MIN)
        tap.within(s1 - s0, n - SPLICE_MIN, n,
                   "%s: zdm_spliced_bytes_total grew by the body size less at most 64 KiB "
                   "(%d)" % (name, s1 - s0))

with section(tap, "small bodies are not spliced"):
    for n, name in ((4 * KiB, "4 KiB"), (60 * KiB, "60 KiB")):
        s0 = spliced()
        with z.client() as c:
            rs = [c.request("GET", "/size/%d" % n) for _ in range(3)]
        tap.ok(all(r.status == 200 and r.body == content(n) for r in rs),
               "%s: three responses byte-exact" % name)
        tap.eq(spliced(), s0, "%s: zdm_spliced_bytes_total unchanged" % name)

with section(tap, "chunked and de-chunked bodies are not spliced"):
    n = 4 * MiB
    s0 = spliced()
    with z.client(timeout=30) as c:
        r = c.request("GET", "/chunked/%d" % n)
    tap.eq((r.status, r.framing), (200, "chunked"), "a large chunked response stays chunked")
    tap.eq(sha256(r.body), sha256(content(n)), "4 MiB chunked: byte-exact")
    tap.eq(spliced(), s0, "4 MiB chunked: zdm_spliced_bytes_total unchanged")
    with z.client(timeout=30) as c:
        r = c.request("GET", "/chunked/%d" % n, version="HTTP/1.0")
        closed = c.wait_closed(5)
    tap.eq(r.status, 200, "HTTP/1.0 client, large chunked upstream response: 200")
    tap.ok(r.framing in ("length", "close") and "chunked" not in r.tokens("transfer-encoding"),
           "the HTTP/1.0 client gets it de-chunked (framing: %s)" % r.framing)
    tap.eq(sha256(r.body), sha256(content(n)), "de-chunked for HTTP/1.0: byte-exact")
    tap.eq(spliced(), s0, "de-chunked for HTTP/1.0: zdm_spliced_bytes_total unchanged")
    tap.ok(closed, "the HTTP/1.0 connection (no keep-alive asked) is closed after it")
    # A Content-Length body for an HTTP/1.0 client needs no change: spliced.
    with z.client(timeout=30) as c:
        r = c.request("GET", "/size/%d" % MiB, version="HTTP/1.0")
    tap.eq((r.status, sha256(r.body)), (200, direct("/size/%d" % MiB)),
           "HTTP/1.0 client, 1 MiB with Content-Length: byte-exact")
    s1 = wait_spliced(s0 + MiB - SPLICE_MIN)
    tap.within(s1 - s0, MiB - SPLICE_MIN, MiB, "and spliced (%d bytes)" % (s1 - s0))

with section(tap, "HEAD of a large resource"):
    s0 = spliced()
    with z.client() as c:
        r = c.request("HEAD", "/size/%d" % (10 * MiB))
        tap.eq((r.status, r.get("content-length"), r.body), (200, str(10 * MiB), b""),
               "HEAD /size/10MiB: 200, the Content-Length of the GET, no body")
        r2 = c.request("GET", "/size/100")
        tap.eq((r2.status, r2.body), (200, content(100)),
               "the connection is reusable: the next response is whole and exact")
        tap.ok(not c.buf, "no stray bytes on the connection", repr(bytes(c.buf[:80])))
    tap.eq(spliced(), s0, "HEAD: nothing spliced")

# -- keep-alive and pipelining -----------------------------------------------------------

with section(tap, "keep-alive after a spliced body"):
    seq = [("large", 2 * MiB), ("small", 1000), ("large", 3 * MiB), ("large", 1 * MiB),
           ("small", 5000)]
    for _, n in seq:
        direct("/size/%d" % n)
    with z.client(timeout=30) as c:
        r = c.request("GET", "/size/100")     # this connection's upstream connection
        need(tap, r.status == 200, "a first small request on the connection")
        c0 = conns(a)
        s0 = spliced()
        got = []
        for kind, n in seq:
            r = c.request("GET", "/size/%d" % n)
            got.append((kind, n, r.status, sha256(r.body) == direct("/size/%d" % n)))
        c1 = conns(a)
    tap.eq(got, [(k, n, 200, True) for k, n in seq],
           "large, small, large, large, small on one client connection: all byte-exact")
    big = sum(n for k, n in seq if k == "large")
    s1 = wait_spliced(s0 + big - 3 * SPLICE_MIN)
    tap.within(s1 - s0, big - 3 * SPLICE_MIN, big,
               "the three large ones were spliced (%d of %d bytes)" % (s1 - s0, big))
    tap.eq(c1 - c0, 0, "the upstream saw no new connection: its connection was reused "
                       "after each spliced body")

with section(tap, "pipelined large requests"):
    n1, n2 = 1 * MiB, 2 * MiB
    s0 = spliced()
    with z.client(timeout=30) as c:
        c.send(build_request("GET", "/size/%d" % n1) + build_request("GET", "/size/%d" % n2) +
               build_request("GET", "/size/10"))
        rs = [c.read_response() for _ in range(3)]
    tap.eq([(r.status, len(r.body)) for r in rs], [(200, n1), (200, n2), (200, 10)],
           "two large GETs and a small one in one write: three whole responses, in order")
    tap.ok(sha256(rs[0].body) == direct("/size/%d" % n1) and
           sha256(rs[1].body) == direct("/size/%d" % n2) and rs[2].body == content(10),
           "all three byte-exact")
    s1 = wait_spliced(s0 + n1 + n2 - 2 * SPLICE_MIN)
    tap.within(s1 - s0, n1 + n2 - 2 * SPLICE_MIN, n1 + n2, "both large ones spliced (%d)" % (s1 - s0))

# -- a slow reader ---------------------------------------------------------------------

with section(tap, "slow client"):
    n = 16 * MiB
    want = direct("/size/%d" % n)
    with z.client(timeout=30) as c:
        c.request("GET", "/size/%d" % MiB)    # warm up this connection's path
        base = rss(z.proc.pid)
        s0 = spliced()
        c.send(build_request("GET", "/size/%d" % n))
        got = bytearray()
        peak = base
        t_end = time.monotonic() + 1.5
        while time.monotonic() < t_end:
            d = c.sock.recv(64 * KiB)
            if not d:
                break
            got += d
            peak = max(peak, rss(z.proc.pid))
            time.sleep(0.02)
        slow_part = len(got)
        c.buf += got
        r = c.read_response()
        peak = max(peak, rss(z.proc.pid))
    tap.ok(slow_part < n // 2, "the client read slowly at first (%.1f MiB in 1.5 s)"
           % (slow_part / MiB))
    tap.eq((r.status, len(r.body), sha256(r.body)), (200, n, want),
           "16 MiB read slowly, then at once: complete and byte-exact")
    grown = peak - base
    tap.ok(grown < 8 * MiB, "zdmd's resident memory grew by %.2f MiB at most meanwhile (< 8 MiB)"
           % (grown / MiB))
    s1 = wait_spliced(s0 + n - SPLICE_MIN)
    tap.within(s1 - s0, n - SPLICE_MIN, n, "16 MiB: spliced (%d)" % (s1 - s0))

# -- a client that leaves mid-body ---------------------------------------------------------

with section(tap, "client vanishes mid-body"):
    n = 8 * MiB
    served, bad = 0, []
    for i in range(10):
        c = Client(z.port, timeout=10)
        c.send(build_request("GET", "/size/%d" % n))
        c.read_some(100 * KiB)
        if i % 2:
            c.reset()
        else:
            c.close()
        # Fresh connections, so that both workers take some: a wrongly reused
        # upstream connection would answer with the rest of the old body.
        for m in (100, MiB):
            try:
                with z.client(timeout=10) as o:
                    r = o.request("GET", "/size/%d" % m)
                if r.status == 200 and sha256(r.body) == sha256(content(m)):
                    served += 1
                else:
                    bad.append((i, m, r.status, len(r.body)))
            except Exception as e:
                bad.append((i, m, repr(e)))
    tap.eq(bad, [], "after each of 10 clients left mid-body (close or reset), "
                    "new requests are answered byte-exact (%d of 20)" % served)
    tap.ok(z.alive(), "zdmd is still running")
    with z.client() as c:
        rs = [c.request("GET", "/size/%d" % m) for m in (0, 10, 70 * KiB, 2 * MiB)]
    tap.ok(all(r.status == 200 and r.body == content(m)
               for r, m in zip(rs, (0, 10, 70 * KiB, 2 * MiB))),
           "a keep-alive connection then gets 0 B, 10 B, 70 KiB and 2 MiB byte-exact")
    tap.ok(wait_for(lambda: a.stats()["open"] <= WORKERS, timeout=8),
           "the abandoned upstream connections are closed (open: %d)" % a.stats()["open"])
    back = wait_for(lambda: z.fds() is not None and z.fds() <= BASE_FDS, timeout=10)
    tap.ok(back, "no descriptor leaked: zdmd's open files back to %d (now %s; pipes not "
                 "counted)" % (BASE_FDS, z.fds()))
    p = z.pipes()
    tap.ok(p is not None and p <= BASE_PIPES + 2 * 64 * WORKERS,
           "zdmd's pipe descriptors stay bounded: %s (at start %d, at most 2*64 more per "
           "worker)" % (p, BASE_PIPES))

# -- upstream failures mid-body --------------------------------------------------------------

FULL = 1 * MiB
PART = 200 * KiB


class BreakingUpstream:
    """An upstream on raw sockets whose responses promise Content-Length:
    FULL and send PART bytes of it; then, for GET /fin, it closes (FIN),
    for GET /stall it stays silent until the peer closes."""

    def __init__(self):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((HOST, 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.address = "%s:%d" % (HOST, self.port)
        self.lock = threading.Lock()
        self.paths = []
        self.closed_by_peer = 0
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                s, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(s,), daemon=True).start()

    def _serve(self, s):
        s.settimeout(30)
        buf = b""
        try:
            while b"\r\n\r\n" not in buf:
                d = s.recv(65536)
                if not d:
                    return
                buf += d
            path = buf.split(b" ", 2)[1].decode("latin-1")
            with self.lock:
                self.paths.append(path)
            s.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\n"
                      b"Content-Length: %d\r\n\r\n" % FULL + content(FULL)[:PART])
            if path == "/stall":
                while s.recv(65536):
                    pass
                with self.lock:
                    self.closed_by_peer += 1
        except OSError:
            pass
        finally:
            s.close()


def logged(zz, skip, address, *words):
    """Whether a line of ZZ's stderr after the first SKIP names ADDRESS and
    one of WORDS."""
    return any(address in ln and any(w in ln for w in words)
               for ln in zz.stderr().splitlines()[skip:])


def truncated(zz, headers, path, desc, t_max):
    """GET PATH through ZZ; checks that the client gets the head and a part
    of the body, then a close, within T_MAX seconds."""
    t0 = time.monotonic()
    c = Client(zz.port, timeout=15)
    got, how = None, None
    try:
        c.send(build_request("GET", path, headers))
        r = c.read_response()
        got, how = r, "whole"
    except Closed as e:
        got, how = e, "closed"
    except socket.timeout:
        how = "timeout"
    finally:
        c.close()
    dt = time.monotonic() - t0
    tap.eq(how, "closed", "%s: the client's connection is closed before the whole body" % desc)
    if how == "closed":
        resp = got.response
        body = got.partial[len(resp.head):] if resp is not None else b""
        tap.ok(resp is not None and resp.status == 200,
               "%s: after the head (200) went out" % desc)
        want = FULL if "fin" in path or "stall" in path else 100000
        src = content(want)
        tap.ok(len(body) < want and body == src[:len(body)],
               "%s: the client got an exact prefix of the body (%d of %d bytes)"
               % (desc, len(body), want))
    tap.ok(dt <= t_max, "%s: within %.1fs (%.2fs)" % (desc, t_max, dt))
    return dt


with section(tap, "upstream fails mid-body"):
    brk = BreakingUpstream()
    zf = obs.start(tap, {"workers": WORKERS,
                         "pools": {"old": [a], "new": [b],
                                   "broken": [Server(brk.address, "brk")]},
                         "split": {"old": 100, "new": 0},
                         "pins": [{"header": "x-to", "value": "broken", "pool": "broken"}],
                         "timeouts": {"upstream_response": Raw("1s")},
                         "circuit_breaker": {"failures": 0}})
    TO_BROKEN = [("X-To", "broken")]
    n_err = len(zf.stderr().splitlines())
    s0 = spliced(zf)
    truncated(zf, TO_BROKEN, "/fin", "upstream closes after 200 KiB of 1 MiB", 5.0)
    tap.ok(wait_spliced(s0 + 1, zf) > s0,
           "the part that came was spliced (%d bytes)" % (spliced(zf) - s0))
    tap.ok(wait_for(lambda: logged(zf, n_err, brk.address, "closed", "reset"), timeout=3),
           "zdmd logs the failure, naming the upstream",
           "\n".join(zf.stderr().splitlines()[n_err:])[-2000:])

    truncated(zf, None, "/reset", "upstream resets after 1000 of 100000 bytes", 5.0)

    n_err = len(zf.stderr().splitlines())
    dt = truncated(zf, TO_BROKEN, "/stall", "upstream silent after 200 KiB of 1 MiB "
                   "(timeouts.upstream_response 1s)", 6.0)
    tap.ok(dt >= 0.8, "not before the timeout (%.2fs)" % dt)
    tap.ok(wait_for(lambda: brk.closed_by_peer >= 1, timeout=3),
           "zdmd closed its connection to the stalled upstream")
    tap.ok(wait_for(lambda: logged(zf, n_err, brk.address, "timed out"), timeout=3),
           "zdmd logs the timeout, naming the upstream",
           "\n".join(zf.stderr().splitlines()[n_err:])[-2000:])

    tap.ok(zf.alive(), "zdmd is still running")
    with zf.client(timeout=30) as c:
        rs = [c.request("GET", "/size/%d" % m) for m in (10, 2 * MiB, 10)]
    tap.ok(all(r.status == 200 and r.body == content(m) for r, m in zip(rs, (10, 2 * MiB, 10))),
           "and answers others byte-exact (10 B, 2 MiB, 10 B on one connection)")
    m = obs.scrape(zf)
    tap.eq((m.value("zdm_upstream_errors_total", pool="broken", server="brk", kind="reset"),
            m.value("zdm_upstream_errors_total", pool="broken", server="brk", kind="timeout")),
           (1.0, 1.0), "the broken upstream's failures are counted: 1 reset, 1 timeout")

# -- TLS ---------------------------------------------------------------------------------

with section(tap, "TLS is not spliced"):
    from tlsutil import PKI, TLSClient, TLSUpstream, tls_listen
    pki = PKI()
    tup = TLSUpstream(pki.a_pem, pki.a_key, name="tlsup")
    plain, tport = free_port(), free_port()
    zt = obs.start(tap, {"workers": WORKERS,
                         "listen": ["%s:%d" % (HOST, plain),
                                    tls_listen(tport, {"cert": pki.a_pem, "key": pki.a_key})],
                         "pools": {"old": [a], "new": [b],
                                   "secure": {"servers": [{"address": tup.address,
                                                           "name": "tlsup"}],
                                              "tls": {"ca": pki.ca, "sni": "a.test"}}},
                         "split": {"old": 100, "new": 0},
                         "pins": [{"header": "x-to", "value": "secure", "pool": "secure"}]})
    n = 4 * MiB
    s0 = spliced(zt)
    with TLSClient(tport, pki.ca, "a.test", timeout=30) as c:
        r = c.request("GET", "/size/%d" % n, host="a.test")
        r2 = c.request("GET", "/size/100", host="a.test")
    tap.eq((r.status, len(r.body), sha256(r.body)), (200, n, sha256(content(n))),
           "4 MiB through a TLS listener: byte-exact")
    tap.eq((r2.status, r2.body), (200, content(100)), "and the connection goes on")
    tap.eq(spliced(zt), s0, "TLS listener: nothing spliced")
    with Client(plain, timeout=30) as c:
        r = c.request("GET", "/size/%d" % n, [("X-To", "secure")])
    tap.eq((r.status, r.get("x-upstream"), sha256(r.body)), (200, "tlsup", sha256(content(n))),
           "4 MiB from a TLS upstream to a plain client: byte-exact")
    tap.eq(spliced(zt), s0, "TLS upstream: nothing spliced")
    with Client(plain, timeout=30) as c:
        r = c.request("GET", "/size/%d" % n)
    tap.eq((r.status, sha256(r.body)), (200, sha256(content(n))),
           "while plain to plain on the same zdmd ...")
    s1 = wait_spliced(s0 + n - SPLICE_MIN, zt)
    tap.within(s1 - s0, n - SPLICE_MIN, n, "... is spliced (%d)" % (s1 - s0))

tap.ok(z.alive(), "zdmd is still running")
tap.diag("run time %.1fs" % (time.monotonic() - T0))
tap.done()
