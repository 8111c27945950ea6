#!/usr/bin/env python3
"""Listeners and the connection limit (SPEC §3 listen, limits.max_connections):
every listen address serves; past max_connections new clients wait (or are
turned away) until a connection closes."""

import socket

from zdmtest import TAP, Upstream, Zdmd, Client, Closed, free_port, wait_for, HOST

def _try(z):
    try:
        with z.client(timeout=1) as c:
            return c.request("GET", "/").status == 200
    except (OSError, Closed):
        return False


tap = TAP()
a, b = Upstream("a"), Upstream("b")

with tap.section("two listen addresses"):
    p1, p2 = free_port(), free_port()
    z = Zdmd(tap, {"listen": ["%s:%d" % (HOST, p1), {"address": "%s:%d" % (HOST, p2)}],
                   "pools": {"old": [a], "new": [b]}, "split": {"old": 100, "new": 0}})
    for p in (p1, p2):
        with Client(p) as c:
            r = c.request("GET", "/")
        tap.eq((r.status, r.body), (200, b"a\n"), "listen address %d serves" % p)
    z.stop()

with tap.section("max_connections"):
    z = Zdmd(tap, {"pools": {"old": [a], "new": [b]}, "split": {"old": 100, "new": 0},
                   "limits": {"max_connections": 4}})
    held = []
    for i in range(4):
        c = z.client()
        held.append(c)
        tap.eq(c.request("GET", "/").status, 200, "client %d of 4 served" % (i + 1))
    extra = Client(z.port, timeout=0.7)
    extra.send(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    try:
        r = extra.read_response()
        early = r.status
    except Closed:
        early = "closed"
    except socket.timeout:
        early = None
    tap.ok(early != 200, "a fifth client is not served while 4 are open (%r)" % (early,))
    held.pop(0).close()
    if early is None:
        extra.sock.settimeout(3)
        try:
            r = extra.read_response()
            later = r.status
        except (Closed, socket.timeout) as e:
            later = repr(e)
        tap.eq(later, 200, "the waiting client is served once a connection closes")
    extra.close()
    ok = wait_for(lambda: _try(z), timeout=3)
    tap.ok(ok, "a new client is served once below the limit")
    tap.eq([c.request("GET", "/").status for c in held], [200] * 3, "the held clients still work")
    for c in held:
        c.close()
    z.stop()


tap.done()
