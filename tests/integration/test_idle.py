#!/usr/bin/env python3
"""Idle keep-alive client connections hold no request state: a request's
parser, header index and output are taken from the worker's pool as it
begins and given back once the connection is idle with nothing left to
write. These checks make the pooled state pass between connections in
every way it can (cleanly, after a head abandoned midway, after a
malformed request, while a response is still being written) and look for
anything of one request in another."""

import json
import signal
import socket
import time

from zdmtest import TAP, Upstream, Zdmd, Client, content, find_server, wait_for

tap = TAP()
a, b = Upstream("a"), Upstream("b")
z = Zdmd(tap, {"pools": {"old": [a], "new": [b]},
               "split": {"old": 100, "new": 0},
               "workers": 1})

PROXY_ADDED = ["X-Forwarded-For", "X-Real-IP", "X-Forwarded-Proto"]


def exact(r, target, tag):
    """True if R is the /headers answer for exactly this request line and
    these headers (plus the proxy's own), as the upstream saw them."""
    if r.status != 200:
        return False
    doc = json.loads(r.body)
    names = [n for n, _ in doc["headers"]]
    values = dict((n.lower(), v) for n, v in doc["headers"])
    return (doc["request_line"] == "GET %s HTTP/1.1" % target and
            names == ["Host", "X-Tag"] + PROXY_ADDED and
            values["x-tag"] == tag and values["host"] == "test.local")


def headers_ok(c, target, tag):
    """Sends a /headers request tagged TAG; True if it arrived exactly."""
    return exact(c.request("GET", target, [("X-Tag", tag)]), target, tag)


N = 200
clients = []
with tap.section("many idle keep-alive connections"):
    good = 0
    for i in range(N):
        c = Client(z.port)
        clients.append(c)
        good += headers_ok(c, "/headers?first=%d" % i, "first-%d" % i)
    tap.eq(good, N, "%d connections each answered one request exactly" % N)
    # Every connection is now idle; each asks again, in reverse order, so
    # that each request gets state another connection gave back.
    good = 0
    for i in reversed(range(N)):
        good += headers_ok(clients[i], "/headers?second=%d" % i, "second-%d" % i)
    tap.eq(good, N, "a second request on each idle connection: exact request line and "
           "headers, nothing of another connection's request")

with tap.section("state given back in the middle of a request"):
    # Heads abandoned midway (closed, or reset) and malformed requests:
    # their state goes back to the pool mid-message.
    for i in range(20):
        c = Client(z.port)
        c.send(b"GET /half HTTP/1.1\r\nHost: x\r\nX-Half-%d: abc" % i)
        if i % 2:
            c.reset()
        else:
            c.close()
    bad = 0
    for i in range(20):
        with Client(z.port) as c:
            c.send(b"GET / HTTP/1.1\r\nHost: x\r\nBad Header: %d\r\n\r\n" % i)
            r = c.read_response()
            bad += r.status == 400 and c.wait_closed(5)
    tap.eq(bad, 20, "malformed requests answered 400 and closed")
    good = 0
    for i in range(N):
        good += headers_ok(clients[i], "/headers?third=%d" % i, "third-%d" % i)
    tap.eq(good, N, "the idle connections' next requests are parsed from a clean state")

def server_a():
    return find_server(z.status(), "old", "a") or {}


def complete_at_proxy(requests_before):
    st = server_a()
    return st.get("requests", 0) > requests_before and st.get("inflight") == 0


def unread_response(c):
    """Asks for a chunked response (not spliced) that the client does not
    read until it is complete at the proxy: a little larger than what the
    kernel's socket buffers take (the send buffer grows to tcp_wmem's
    maximum on loopback), so that the rest, less than the proxy's high
    water mark, waits in the proxy's output while the connection is idle.
    Returns the size asked for, or None if the response never completed."""
    try:
        with open("/proc/sys/net/ipv4/tcp_wmem") as f:
            wmem_max = int(f.read().split()[2])
    except (OSError, ValueError, IndexError):
        wmem_max = 4194304
    size = wmem_max + 160 * 1024
    c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
    before = server_a().get("requests", 0)
    c.send(b"GET /chunked/%d HTTP/1.1\r\nHost: x\r\n\r\n" % size)
    if wait_for(lambda: complete_at_proxy(before), timeout=5):
        return size
    # The kernel took less than that: read in small pieces until it is.
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if complete_at_proxy(before):
            return size
        c.buf += c.sock.recv(16384)
    return None


with tap.section("a response still being written when its exchange ends"):
    # The upstream's side ends while the proxy still holds bytes for the
    # client, which it writes as the client reads, the connection idle.
    c = Client(z.port, timeout=10)
    size = unread_response(c)
    tap.ok(size, "the response is complete at the proxy before the client reads it")
    r = c.read_response()
    tap.eq((r.status, bool(size) and r.body == content(size)), (200, True),
           "a %s-byte chunked response read late is exact" % size)
    tap.ok(headers_ok(c, "/headers?after", "after"), "the next request on that connection is exact")
    # A pipelined request waiting behind a slowly read response.
    c.send(b"GET /chunked/%d HTTP/1.1\r\nHost: x\r\n\r\n"
           b"GET /headers HTTP/1.1\r\nHost: test.local\r\nX-Tag: piped\r\n\r\n" % size)
    r1 = c.read_response()
    r2 = c.read_response()
    tap.ok(r1.status == 200 and r1.body == content(size) and exact(r2, "/headers", "piped"),
           "a pipelined request behind a slowly read response: both exact")
    c.close()

with tap.section("closing idle connections"):
    # The connection closed just above may still be held for a moment;
    # count from when only the idle ones are. Upstream connections may
    # close meanwhile, so the total may fall further, never stay higher.
    tap.ok(wait_for(lambda: z.client_sockets() == N, timeout=10),
           "zdmd holds exactly the %d idle client connections" % N)
    held_fds = z.fds()
    for c in clients[:N // 2]:
        c.close()
    for c in clients[N // 2:]:
        c.reset()
    tap.ok(wait_for(lambda: z.client_sockets() == 0 and z.fds() <= held_fds - N, timeout=10),
           "each closed idle connection's descriptor is released (%d open, %d with them)"
           % (z.fds(), held_fds))
    with Client(z.port) as c:
        tap.ok(headers_ok(c, "/headers", "end"), "a new connection is answered after them")

tap.ok(z.alive(), "zdmd is still running")

with tap.section("graceful shutdown while an idle connection's response is being written"):
    c = Client(z.port, timeout=10)
    size = unread_response(c)
    tap.ok(size, "the response is complete at the proxy before the client reads it")
    z.signal(signal.SIGTERM)
    r = c.read_response()
    tap.eq((r.status, bool(size) and r.body == content(size)), (200, True),
           "SIGTERM: the response still being written reaches the client whole")
    tap.ok(c.wait_closed(10), "then the connection is closed")
    tap.eq(z.wait_exit(10), 0, "zdmd exits 0")
    c.close()

tap.done()
