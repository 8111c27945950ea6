#!/usr/bin/env python3
"""Upgrade (SPEC §5): a request with "Connection: Upgrade" is tunnelled to
the chosen upstream; after the 101 the bytes flow both ways untouched."""

from zdmtest import TAP, Upstream, Zdmd, Closed, content, wait_for

tap = TAP()
a, b = Upstream("a"), Upstream("b")
z = Zdmd(tap, {"pools": {"old": [a], "new": [b]}, "split": {"old": 100, "new": 0},
               "pins": [{"header": "canary", "value": "true", "pool": "new"}]})

UPGRADE = (b"GET /upgrade HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"
           b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n")


def read_exact(c, n):
    while len(c.buf) < n:
        c._fill()
    out = bytes(c.buf[:n])
    del c.buf[:n]
    return out


with tap.section("websocket-style upgrade"):
    with z.client() as c:
        c.send(UPGRADE + b"\r\n")
        r = c.read_response()
        tap.eq(r.status, 101, "the upstream's 101 reaches the client")
        tap.eq((r.get("upgrade") or "").lower(), "websocket", "with its Upgrade header")
        tap.ok("upgrade" in r.tokens("connection"), "and Connection: Upgrade", repr(r.headers))
        tap.eq(r.get("x-upstream"), "a", "from the upstream the split chose")
        c.send(b"hello through the tunnel")
        tap.eq(read_exact(c, 24), b"hello through the tunnel", "bytes flow both ways after the 101")
        data = content(300000)
        c.send(data)
        tap.ok(read_exact(c, len(data)) == data, "300 kB echoed byte-exact through the tunnel")
        c.send(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        tap.eq(read_exact(c, 27), b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
               "HTTP-looking bytes in the tunnel are not parsed as requests")

with tap.section("pinned upgrade"):
    with z.client() as c:
        c.send(UPGRADE + b"canary: true\r\n\r\n")
        r = c.read_response()
        tap.eq((r.status, r.get("x-upstream")), (101, "b"), "a pinned upgrade goes to new")

with tap.section("tunnel close"):
    with z.client() as c:
        c.send(UPGRADE + b"\r\n")
        r = c.read_response()
        s0 = a.stats()["open"]
    # the client went away: the upstream side of the tunnel is closed too
    tap.ok(wait_for(lambda: a.stats()["open"] < s0, timeout=5),
           "closing the client side closes the upstream side")

with tap.section("not an upgrade"):
    with z.client() as c:
        r = c.request("GET", "/upgrade", [("Upgrade", "websocket")])
        tap.eq(r.status, 426, "Upgrade without Connection: upgrade is not an upgrade (426 from upstream)")
        r = c.request("GET", "/size/10")
        tap.eq(r.body, content(10), "and the connection goes on as plain HTTP")

with tap.section("upgrade declined by the upstream"):
    with z.client() as c:
        r = c.request("GET", "/status/403", [("Connection", "Upgrade"), ("Upgrade", "websocket")])
        tap.eq(r.status, 403, "an upgrade request answered with a plain 403")
        try:
            r = c.request("GET", "/size/10")
            got = r.body == content(10)
        except Closed:
            got = "closed"
        tap.ok(got in (True, "closed"),
               "no tunnel is made: the connection goes on as HTTP or is closed (%r)" % (got,))

tap.ok(z.alive(), "zdmd is still running")
tap.done()
