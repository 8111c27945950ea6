#!/usr/bin/env python3
"""Kernel splicing of request bodies (zdmd(8) PERFORMANCE, "Kernel
splicing"): a plain-HTTP request body framed by Content-Length with 64 KiB
or more still to come after its head goes from the client socket to the
upstream socket with splice(2), counted in zdm_spliced_bytes_total.
Checked here: large uploads arrive byte-exact and are counted; small and
chunked ones are not spliced; keep-alive and a pipelined request right
after a spliced body; a client that sends slowly, stalls past client_idle
or leaves mid-body; an upstream that answers early without reading the
body; no descriptor or pipe left behind."""

import signal
import socket
import struct
import threading
import time

from zdmtest import (TAP, Upstream, Server, Zdmd, Client, Closed, Raw, build_request, content,
                     sha256, syn_blackhole, wait_for)
from faults import section
import obs

KiB = 1024
MiB = 1024 * 1024
SPLICE_MIN = 64 * KiB       # the documented threshold

tap = TAP(deadline=90)
a, b = Upstream("a"), Upstream("b")
z = obs.start(tap, {"pools": {"old": [a], "new": [b]},
                    "split": {"old": 100, "new": 0},
                    "timeouts": {"client_idle": Raw("1s"), "upstream_idle": Raw("1s")}})
BASE_FDS = z.fds()


def spliced():
    return obs.scrape(z).value("zdm_spliced_bytes_total")


def wait_spliced(lo, timeout=3.0):
    last = [None]

    def cond():
        last[0] = spliced()
        return last[0] is not None and last[0] >= lo
    wait_for(cond, timeout=timeout, interval=0.02)
    return last[0]


def sink_ok(r, data, what):
    got = (r.status, r.get("x-body-length"), r.get("x-body-sha256"))
    tap.eq(got, (200, str(len(data)), sha256(data)), what)


def settled(what):
    """No connection to the upstream left open and no descriptor left
    behind once the clients are gone and upstream_idle (1s) has passed."""
    ok = wait_for(lambda: a.stats()["open"] == 0, timeout=5)
    tap.ok(ok, "%s: every upstream connection closed" % what, "open: %r" % a.stats()["open"])
    ok = wait_for(lambda: z.fds() <= BASE_FDS, timeout=5)
    tap.ok(ok, "%s: zdmd's descriptors back to %d" % (what, BASE_FDS), "now %r" % z.fds())


with section(tap, "large uploads are spliced"):
    for n in (SPLICE_MIN + 128 * KiB, MiB, 10 * MiB):
        data = content(n)
        before = spliced()
        with Client(z.port, timeout=30) as c:
            r = c.request("PUT", "/sink", body=data)
        sink_ok(r, data, "PUT of %d bytes: the upstream got it byte-exact" % n)
        grown = wait_spliced(before + 1) - before
        # What came with the head went the usual way; the rest was spliced.
        tap.ok(0 < grown <= n and grown >= n - 256 * KiB,
               "PUT of %d bytes: %d of them spliced" % (n, grown))

with section(tap, "small and chunked uploads are not spliced"):
    before = spliced()
    data = content(SPLICE_MIN - 1)
    with Client(z.port) as c:
        sink_ok(c.request("POST", "/sink", body=data), data, "a body under 64 KiB passes")
    data = content(MiB)
    with Client(z.port, timeout=30) as c:
        c.send(build_request("POST", "/sink", [("Transfer-Encoding", "chunked")]) +
               b"%x\r\n" % len(data) + data + b"\r\n0\r\n\r\n")
        sink_ok(c.read_response(), data, "a chunked 1 MiB body passes")
    tap.eq(spliced(), before, "neither was spliced")

with section(tap, "keep-alive and pipelining after a spliced body"):
    data = content(3 * MiB + 17)
    with Client(z.port, timeout=30) as c:
        sink_ok(c.request("PUT", "/sink", body=data), data, "first upload on the connection")
        sink_ok(c.request("PUT", "/sink", body=data), data, "second upload on the same connection")
        r = c.request("GET", "/size/100")
        tap.eq((r.status, r.body), (200, content(100)), "then a GET on the same connection")
    # The next request right behind the body, in the same write: splicing
    # takes exactly Content-Length bytes and leaves the rest to the parser.
    with Client(z.port, timeout=30) as c:
        c.send(build_request("PUT", "/sink", body=data) + build_request("GET", "/size/33") +
               build_request("PUT", "/sink", body=data[:200 * KiB]))
        sink_ok(c.read_response(), data, "pipelined: the upload")
        r = c.read_response()
        tap.eq((r.status, r.body), (200, content(33)), "pipelined: the GET behind it")
        sink_ok(c.read_response(), data[:200 * KiB], "pipelined: another upload behind it")

with section(tap, "a client that sends slowly"):
    data = content(2 * MiB)
    t0 = time.monotonic()
    with Client(z.port, timeout=30) as c:
        c.send(build_request("PUT", "/sink", [("Content-Length", str(len(data)))]))
        for i in range(0, len(data), 256 * KiB):
            c.send(data[i:i + 256 * KiB])
            time.sleep(0.2)  # the pacing is the input: 1.6 s in all, client_idle 1s
        r = c.read_response()
    sink_ok(r, data, "8 pieces 200ms apart (1.6s > client_idle 1s): not cut, byte-exact")
    tap.ok(time.monotonic() - t0 >= 1.5, "the upload took %.1fs" % (time.monotonic() - t0))

with section(tap, "a client that stalls or leaves mid-body"):
    with Client(z.port, timeout=10) as c:
        c.send(build_request("PUT", "/sink", [("Content-Length", str(5 * MiB))]) +
               content(300 * KiB))
        t0 = time.monotonic()
        closed = c.wait_closed(6)
        dt = time.monotonic() - t0
    tap.ok(closed and 0.7 <= dt <= 4, "stalled mid-body: closed after about client_idle (%.2fs)" % dt)
    for how in ("close", "reset"):
        for _ in range(5):
            c = Client(z.port, timeout=10)
            c.send(build_request("PUT", "/sink", [("Content-Length", str(5 * MiB))]) +
                   content(400 * KiB))
            time.sleep(0.05)  # let part of it through the pipe first
            c.reset() if how == "reset" else c.close()
    settled("after 11 uploads cut mid-body")
    data = content(MiB)
    with Client(z.port, timeout=30) as c:
        sink_ok(c.request("PUT", "/sink", body=data), data, "an upload afterwards passes")

with section(tap, "an upstream that answers before reading the body"):
    for _ in range(3):
        with Client(z.port, timeout=10) as c:
            c.send(build_request("PUT", "/early-reject", [("Content-Length", str(8 * MiB))]))
            sent = 0
            try:
                chunk = content(256 * KiB)
                while sent < 8 * MiB:
                    c.sock.settimeout(2)
                    c.send(chunk)
                    sent += len(chunk)
            except (OSError, socket.timeout):
                pass
            try:
                r = c.read_response()
            except Closed:
                r = None
            tap.eq(r.status if r else None, 413, "the early 413 reaches the client")
            tap.ok(c.wait_closed(5), "and the connection is closed (the body is not read on)")
    settled("after three early answers")

with section(tap, "a server that does not accept: the upload moves on"):
    # The first server of the pool drops SYNs: while zdmd waits for its
    # connect (300ms), the client's body fills the pipe; after the timeout
    # the request goes to the other server, and so does what the pipe holds.
    hole = syn_blackhole()
    if hole is None:
        tap.skip("upload retried after a connect timeout",
                 "cannot make a listener that drops connections here")
    else:
        z2 = Zdmd(tap, {"pools": {"old": [Server(hole[0], name="bh"), a], "new": [b]},
                        "split": {"old": 100, "new": 0},
                        "timeouts": {"connect": Raw("300ms")},
                        "circuit_breaker": {"failures": 0}})
        data = content(3 * MiB + 5)
        got = []
        for i in range(4):
            with Client(z2.port, timeout=30) as c:
                r = c.request("PUT", "/sink", body=data)
                got.append((r.status, r.get("x-upstream"), r.get("x-body-sha256")))
        tap.eq(got, [(200, "a", sha256(data))] * 4,
               "4 uploads of 3 MiB, each byte-exact at the server that accepted")
        tap.ok(z2.alive(), "that zdmd is still running")

def reset_after(nbytes):
    """A server that reads the head and NBYTES of the body, then resets."""
    ls = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    ls.bind(("127.0.0.1", 0))
    ls.listen(8)

    def serve():
        while True:
            try:
                s, _ = ls.accept()
            except OSError:
                return
            got = 0
            try:
                buf = b""
                while b"\r\n\r\n" not in buf:
                    buf += s.recv(65536)
                got = len(buf) - buf.index(b"\r\n\r\n") - 4
                while got < nbytes:
                    d = s.recv(65536)
                    if not d:
                        break
                    got += len(d)
                s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            except OSError:
                pass
            s.close()
    threading.Thread(target=serve, daemon=True).start()
    return "127.0.0.1:%d" % ls.getsockname()[1]


with section(tap, "an upstream that stops reading or resets mid-body"):
    rst = reset_after(512 * KiB)
    z3 = obs.start(tap, {"pools": {"old": [a], "new": [Server(rst, name="rst")]},
                         "split": {"old": 100, "new": 0},
                         "pins": [{"header": "x-to", "value": "rst", "pool": "new"}],
                         "timeouts": {"upstream_response": Raw("500ms"),
                                      "upstream_idle": Raw("1s")}})
    base3 = z3.fds()

    def upload(path, size, headers=()):
        """Sends a PUT of SIZE bytes as far as zdmd takes it; the status
        zdmd answers (None: closed without one) and the seconds it took."""
        t0 = time.monotonic()
        with Client(z3.port, timeout=10) as c:
            c.send(build_request("PUT", path, [("Content-Length", str(size))] + list(headers)))
            chunk, sent = content(256 * KiB), 0
            c.sock.settimeout(3)
            try:
                while sent < size:
                    c.sock.sendall(chunk[:min(len(chunk), size - sent)])
                    sent += len(chunk)
            except OSError:
                pass  # zdmd stopped reading: the answer tells why
            c.sock.settimeout(10)
            try:
                r = c.read_response()
            except (Closed, OSError):
                r = None
            return (r.status if r else None), time.monotonic() - t0

    status, dt = upload("/noread", 8 * MiB)
    tap.eq(status, 504, "an upstream that never reads the body: 504 after upstream_response "
                        "(%.1fs)" % dt)
    status, dt = upload("/sink", 4 * MiB, [("X-To", "rst")])
    tap.eq(status, 502, "an upstream that resets after 512 KiB of a 4 MiB body: 502")
    data = content(2 * MiB)
    with Client(z3.port, timeout=30) as c:
        sink_ok(c.request("PUT", "/sink", body=data), data, "an upload afterwards passes")
    ok = wait_for(lambda: z3.fds() <= base3, timeout=5)
    tap.ok(ok, "that zdmd's descriptors back to %d" % base3, "now %r" % z3.fds())

with section(tap, "a graceful shutdown mid-upload"):
    # SIGTERM while a body is being spliced: the upload goes on to its
    # answer, then zdmd exits 0.
    z4 = obs.start(tap, {"pools": {"old": [a], "new": [b]}, "split": {"old": 100, "new": 0},
                         "timeouts": {"drain": Raw("10s")}})
    data = content(4 * MiB)
    before = obs.scrape(z4).value("zdm_spliced_bytes_total")
    with Client(z4.port, timeout=30) as c:
        c.send(build_request("PUT", "/sink", [("Content-Length", str(len(data)))]) +
               data[:MiB])
        # Wait until zdmd is splicing this body before the signal.
        wait_for(lambda: (obs.scrape(z4).value("zdm_spliced_bytes_total") or 0) > before,
                 timeout=5, interval=0.02)
        z4.signal(signal.SIGTERM)
        c.send(data[MiB:])
        r = c.read_response()
        sink_ok(r, data, "the upload under way when SIGTERM came is answered, byte-exact")
    tap.eq(z4.wait_exit(15), 0, "then zdmd exits 0")

tap.ok(z.alive(), "zdmd is still running")
tap.done()
