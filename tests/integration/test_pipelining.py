#!/usr/bin/env python3
"""Pipelining (SPEC §5): requests sent in one write are answered in order,
with and without bodies, even when an earlier one is slow."""

import threading

from zdmtest import TAP, Upstream, Zdmd, build_request, chunked, content

tap = TAP()
a, b = Upstream("a"), Upstream("b")
z = Zdmd(tap, {"pools": {"old": [a], "new": [b]}, "split": {"old": 100, "new": 0}})

with tap.section("three GETs in one write"):
    with z.client() as c:
        c.send(build_request("GET", "/size/10") + build_request("GET", "/") +
               build_request("GET", "/size/20000"))
        rs = [c.read_response() for _ in range(3)]
        tap.eq([r.status for r in rs], [200, 200, 200], "three responses")
        tap.eq([r.body for r in rs], [content(10), b"a\n", content(20000)],
               "in order, bodies correct")

with tap.section("pipelined requests with bodies"):
    with z.client() as c:
        b1, b2, b3 = b"first body", content(70000), b"third"
        c.send(build_request("POST", "/echo", body=b1) +
               build_request("POST", "/echo", [("Transfer-Encoding", "chunked")], chunked(b2)) +
               build_request("GET", "/size/5") +
               build_request("PUT", "/echo", body=b3))
        rs = [c.read_response() for _ in range(4)]
        tap.eq([r.body for r in rs], [b1, b2, content(5), b3],
               "CL body, chunked body, GET, CL body: answered in order, bodies intact")

with tap.section("a slow request first"):
    with z.client() as c:
        c.send(build_request("GET", "/slow/300") + build_request("GET", "/size/3") +
               build_request("HEAD", "/size/100") + build_request("GET", "/status/204") +
               build_request("GET", "/chunked/1000"))
        rs = [c.read_response(m) for m in ("GET", "GET", "HEAD", "GET", "GET")]
        tap.eq([(r.status, r.body) for r in rs],
               [(200, b"slow a\n"), (200, content(3)), (200, b""), (204, b""), (200, content(1000))],
               "a slow first request still comes first; HEAD and 204 keep the order")

with tap.section("many pipelined"):
    with z.client() as c:
        n = 50
        c.send(b"".join(build_request("GET", "/size/%d" % i) for i in range(n)))
        rs = [c.read_response() for _ in range(n)]
        tap.ok(all(r.status == 200 and r.body == content(i) for i, r in enumerate(rs)),
               "50 pipelined requests in one write: all in order")

with tap.section("mixed sizes across the gathering limit"):
    # Responses of 0 to 2,400 bytes, each a head and a body: those of 2 KiB
    # or less in all leave in one gathered piece, the others chain by chain.
    n = 3000
    sizes = [(i * 37) % 2400 for i in range(n)]
    with z.client(timeout=20) as c:
        sender = threading.Thread(target=c.send, args=(b"".join(
            build_request("GET", "/size/%d" % s) for s in sizes),))
        sender.start()
        rs = [c.read_response() for _ in range(n)]
        sender.join()
        bad = [i for i, r in enumerate(rs) if r.status != 200 or r.body != content(sizes[i])]
        tap.eq(bad, [], "%d pipelined responses: all whole and in order" % n)

with tap.section("mid-size bodies, held by reference and chained"):
    # Bodies of 2 KiB to 64 KiB (spliced above that) go out by reference:
    # the first pieces held in the write side, more in chains (chunked
    # bodies come in many pieces). The client offers a small window, so
    # outputs are cut short by a full socket in the middle of a piece.
    n = 300
    paths = ["/%s/%d" % ("chunked" if i % 3 == 0 else "size", 2000 + (i * 7919) % 63000)
             for i in range(n)]
    with z.client(timeout=30, rcvbuf=4096) as c:
        sender = threading.Thread(target=c.send, args=(b"".join(
            build_request("GET", p) for p in paths),))
        sender.start()
        rs = [c.read_response() for _ in range(n)]
        sender.join()
        bad = [p for p, r in zip(paths, rs)
               if r.status != 200 or r.body != content(int(p.rsplit("/", 1)[1]))]
        tap.eq(bad, [], "%d pipelined responses of 2 KiB to 64 KiB: all whole and in order" % n)

with tap.section("pipelined, last one closes"):
    with z.client() as c:
        c.send(build_request("GET", "/size/4") +
               build_request("GET", "/", [("Connection", "close")]))
        r1, r2 = c.read_response(), c.read_response()
        tap.eq((r1.body, r2.body), (content(4), b"a\n"), "both answered")
        tap.ok(c.wait_closed(5), "then the connection is closed")

tap.ok(z.alive(), "zdmd is still running")
tap.done()
