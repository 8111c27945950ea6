#!/usr/bin/env python3
"""A 10 MiB body both ways, byte-exact, through curl (SPEC §5: bodies are
streamed, never held whole)."""

import os
import select
import time

from zdmtest import (TAP, Upstream, Zdmd, content, curl, sha256, tmpdir, url,
                     rss, wait_for)

N = 10 * 1024 * 1024
tap = TAP()
a, b = Upstream("a"), Upstream("b")
z = Zdmd(tap, {"pools": {"old": [a], "new": [b]}, "split": {"old": 100, "new": 0}})
d = tmpdir()
src = os.path.join(d, "src")
data = content(N)
with open(src, "wb") as f:
    f.write(data)
want = sha256(data)

with tap.section("10 MiB response"):
    rc, out, err = curl(["-o", "-", "-w", "", url(z.port, "/size/%d" % N)], timeout=60)
    tap.eq(rc, 0, "curl GET /size/10MiB exits 0" + (": " + err.strip() if rc else ""))
    tap.eq(len(out), N, "10 MiB response: length exact")
    tap.eq(sha256(out), want, "10 MiB response: sha256 exact")

with tap.section("10 MiB request (Content-Length)"):
    hdr = os.path.join(d, "hdr1")
    rc, out, err = curl(["-T", src, "-D", hdr, url(z.port, "/echo")], timeout=60)
    h = open(hdr, "rb").read().decode(errors="replace").lower()
    tap.eq(rc, 0, "curl PUT 10 MiB exits 0" + (": " + err.strip() if rc else ""))
    tap.ok(("x-body-sha256: " + want) in h, "10 MiB PUT: the upstream received it byte-exact")
    tap.eq(sha256(out), want, "10 MiB PUT: echoed back byte-exact")

with tap.section("10 MiB request (chunked)"):
    hdr = os.path.join(d, "hdr2")
    rc, out, err = curl(["-H", "Transfer-Encoding: chunked", "--data-binary", "@" + src,
                         "-D", hdr, url(z.port, "/echo")], timeout=60)
    h = open(hdr, "rb").read().decode(errors="replace").lower()
    tap.eq(rc, 0, "curl chunked POST 10 MiB exits 0" + (": " + err.strip() if rc else ""))
    tap.ok(("x-body-sha256: " + want) in h, "10 MiB chunked POST: the upstream received it byte-exact")
    tap.eq(sha256(out), want, "10 MiB chunked POST: echoed back byte-exact")

with tap.section("10 MiB chunked response"):
    rc, out, err = curl([url(z.port, "/chunked/%d" % N)], timeout=60)
    tap.eq(sha256(out), want, "10 MiB chunked response: byte-exact")

# Back-pressure: when one side does not read, the transfer stalls and zdmd
# holds a bounded amount (its resident memory barely grows), instead of
# buffering the body whole. A fresh zdmd, so that no earlier transfer has
# grown its buffers.
BIG = 64 * 1024 * 1024
LIMIT = 24 * 1024 * 1024


with tap.section("slow client reader"):
    zb = Zdmd(tap, {"pools": {"old": [a], "new": [b]}, "split": {"old": 100, "new": 0}})
    a.stats()   # the upstream prepares the content before the clock runs
    c = zb.client(timeout=20, rcvbuf=65536)
    base_rss = rss(zb.proc.pid)
    base_out = a.stats()["bytes_out"]
    c.send(b"GET /size/%d HTTP/1.1\r\nHost: x\r\n\r\n" % BIG)
    hist = []

    def stalled():
        hist.append(a.stats()["bytes_out"] - base_out)
        return len(hist) > 4 and hist[-1] > 0 and hist[-1] == hist[-5]
    tap.ok(wait_for(stalled, timeout=15, interval=0.1),
           "the transfer stalls while the client does not read", hist[-5:])
    grown = rss(zb.proc.pid) - base_rss
    tap.ok(grown < LIMIT, "zdmd's memory grew by %.1f MiB for a stalled 64 MiB response "
           "(the upstream got %.1f MiB out)" % (grown / 1048576.0, hist[-1] / 1048576.0))
    r = c.read_response()
    tap.eq(sha256(r.body), sha256(content(BIG)), "then the client reads all 64 MiB byte-exact")
    c.close()

with tap.section("slow upstream reader"):
    base_rss = rss(zb.proc.pid)
    c = zb.client(timeout=20)
    c.send(b"POST /noread HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % BIG)
    c.sock.setblocking(False)
    block = b"u" * 65536
    sent, last_progress = 0, time.monotonic()
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline and sent < BIG:
        _, w, _ = select.select([], [c.sock], [], 0.1)
        if w:
            try:
                sent += c.sock.send(block)
                last_progress = time.monotonic()
                continue
            except BlockingIOError:
                pass
        if time.monotonic() - last_progress > 0.5:
            break
    grown = rss(zb.proc.pid) - base_rss
    tap.ok(sent < BIG, "an upstream that does not read stalls the upload (%.1f MiB of 64 sent)"
           % (sent / 1048576.0))
    tap.ok(grown < LIMIT, "zdmd's memory grew by %.1f MiB for it" % (grown / 1048576.0))
    c.close()
    with zb.client() as o:
        tap.eq(o.request("GET", "/").status, 200, "zdmd still answers others")
    # the stalled upload is still in flight: no graceful shutdown for it
    zb.kill()

tap.ok(z.alive(), "zdmd is still running")
tap.done()
