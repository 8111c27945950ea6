#!/usr/bin/env python3
"""Header rewriting (SPEC §5): X-Forwarded-For appended, X-Real-IP and
X-Forwarded-Proto set, Host and the request target kept, hop-by-hop headers
removed both ways, end-to-end headers kept in order, X-Zdm-Pool on demand."""

import json

from zdmtest import TAP, Upstream, Zdmd

tap = TAP()
a, b = Upstream("a"), Upstream("b")
z = Zdmd(tap, {"expose_pool_header": True,
               "pools": {"old": [a], "new": [b]},
               "split": {"old": 100, "new": 0},
               "pins": [{"header": "canary", "value": "true", "pool": "new"}]})


def seen(headers, target="/headers", version="HTTP/1.1", host="test.local"):
    """What the upstream received: (request_line, [(name, value)])."""
    with z.client() as c:
        r = c.request("GET", target, headers, version=version, host=host)
    doc = json.loads(r.body)
    return doc["request_line"], [tuple(h) for h in doc["headers"]]


def values(hs, name):
    return [v for n, v in hs if n.lower() == name.lower()]


def names(hs):
    return [n.lower() for n, _ in hs]


with tap.section("forwarding headers"):
    line, hs = seen([])
    tap.eq(values(hs, "x-forwarded-for"), ["127.0.0.1"], "X-Forwarded-For: 127.0.0.1 is added")
    tap.eq(values(hs, "x-real-ip"), ["127.0.0.1"], "X-Real-IP: 127.0.0.1 is added")
    tap.eq(values(hs, "x-forwarded-proto"), ["http"], "X-Forwarded-Proto: http is added")
    tap.eq(values(hs, "host"), ["test.local"], "Host is kept")

    line, hs = seen([("X-Forwarded-For", "10.1.2.3")])
    tap.eq(values(hs, "x-forwarded-for"), ["10.1.2.3, 127.0.0.1"],
           "a client's X-Forwarded-For gets \", 127.0.0.1\" appended")
    line, hs = seen([("X-Forwarded-For", "10.1.2.3, 10.4.5.6")])
    tap.eq(values(hs, "x-forwarded-for"), ["10.1.2.3, 10.4.5.6, 127.0.0.1"],
           "appended to a list too")
    line, hs = seen([("X-Forwarded-For", "10.1.1.1"), ("X-A", "x"), ("X-Forwarded-For", "10.2.2.2")])
    xff = ", ".join(values(hs, "x-forwarded-for"))
    tap.eq(xff, "10.1.1.1, 10.2.2.2, 127.0.0.1",
           "two X-Forwarded-For lines: the client address comes last, after both")
    line, hs = seen([("X-Real-IP", "6.6.6.6")])
    tap.eq(values(hs, "x-real-ip"), ["127.0.0.1"], "a client's X-Real-IP is replaced")
    line, hs = seen([("x-real-ip", "6.6.6.6"), ("X-REAL-IP", "7.7.7.7")])
    tap.eq(values(hs, "x-real-ip"), ["127.0.0.1"], "every client X-Real-IP line is replaced, whatever its case")

    line, hs = seen([], host="example.test:8443")
    tap.eq(values(hs, "host"), ["example.test:8443"], "Host with a port is kept as sent")
    line, hs = seen([], target="/headers?q=1&r=%20x&s=/a/../b", host="h")
    tap.eq(line, "GET /headers?q=1&r=%20x&s=/a/../b HTTP/1.1", "the request target is forwarded exactly")
    line, hs = seen([], version="HTTP/1.0", host="h10")
    tap.eq(values(hs, "host"), ["h10"], "HTTP/1.0 request: Host kept")
    tap.eq(values(hs, "x-forwarded-for"), ["127.0.0.1"], "HTTP/1.0 request: X-Forwarded-For added")

with tap.section("absolute-form target"):
    with z.client() as c:
        r = c.request("GET", "http://test.local/headers?abs=1", host="test.local")
    tap.eq(r.status, 200, "a request in absolute form is accepted and forwarded")
    if r.status == 200:
        line = json.loads(r.body)["request_line"]
        tap.ok(line in ("GET /headers?abs=1 HTTP/1.1", "GET http://test.local/headers?abs=1 HTTP/1.1"),
               "with its path and query intact", line)

with tap.section("hop-by-hop request headers"):
    sent = [("X-First", "1"),
            ("Connection", "keep-alive, X-Foo"),
            ("Keep-Alive", "timeout=5"),
            ("X-Foo", "must go"),
            ("User-Agent", "zdm-test/1"),
            ("Proxy-Connection", "keep-alive"),
            ("TE", "trailers"),
            ("Upgrade", "h2c"),
            ("X-Second", "two  spaces  inside"),
            ("Accept", "*/*"),
            ("X-Dup", "one"),
            ("Connection", "X-Bar"),
            ("X-Bar", "must go too"),
            ("X-Dup", "two"),
            ("X-Last", "last")]
    line, hs = seen(sent)
    n = names(hs)
    for h in ("keep-alive", "proxy-connection", "te", "upgrade", "x-foo", "x-bar"):
        tap.ok(h not in n, "%s is not forwarded" % h, "upstream got %r" % hs)
    conn = ",".join(values(hs, "connection")).lower()
    tap.ok("x-foo" not in conn and "x-bar" not in conn,
           "the client's Connection header is not forwarded", "Connection: %r" % conn)
    kept = [(k, v) for k, v in hs if k.lower() not in
            ("host", "x-forwarded-for", "x-real-ip", "x-forwarded-proto", "connection")]
    want = [("X-First", "1"), ("User-Agent", "zdm-test/1"), ("X-Second", "two  spaces  inside"),
            ("Accept", "*/*"), ("X-Dup", "one"), ("X-Dup", "two"), ("X-Last", "last")]
    tap.eq(kept, want, "end-to-end headers kept, in order, names and values exact, duplicates kept")

    line, hs = seen([("X-Empty", ""), ("X-After-Empty", "1")])
    tap.eq([h for h in hs if h[0].startswith("X-")][:2], [("X-Empty", ""), ("X-After-Empty", "1")],
           "a header with an empty value is kept")
    many = [("X-Many-%03d" % i, "v%d" % i) for i in range(90)]
    line, hs = seen(many)
    tap.eq([h for h in hs if h[0].startswith("X-Many-")], many, "90 headers forwarded intact, in order")
    line, hs = seen([("Connection", "close"), ("X-A", "1")])
    tap.ok("x-a" in names(hs), "Connection: close is not taken for a header name to remove")
    line, hs = seen([("Connection", "x-lower"), ("X-LOWER", "1"), ("X-Upper-Kept", "1")])
    tap.ok("x-lower" not in names(hs) and "x-upper-kept" in names(hs),
           "headers named by Connection are matched case-insensitively")

with tap.section("pool header"):
    with z.client() as c:
        r = c.request("GET", "/")
        tap.eq(r.get_all("x-zdm-pool"), ["old"], "expose_pool_header: X-Zdm-Pool: old")
        r = c.request("GET", "/", [("canary", "true")])
        tap.eq(r.get_all("x-zdm-pool"), ["new"], "expose_pool_header: X-Zdm-Pool: new for a pinned request")
        r = c.request("GET", "/status/404")
        tap.eq(r.get_all("x-zdm-pool"), ["old"], "X-Zdm-Pool on an upstream's error response too")

with tap.section("hop-by-hop response headers"):
    with z.client() as c:
        r = c.request("GET", "/hop")
        tap.eq(r.status, 200, "the /hop response arrives")
        for h in ("keep-alive", "x-up-hop", "proxy-connection"):
            tap.ok(not r.has(h), "response header %s is not forwarded" % h, repr(r.headers))
        tap.ok("x-up-hop" not in r.tokens("connection"),
               "the upstream's Connection header is not forwarded", repr(r.headers))
        tap.eq(r.get("x-end"), "kept", "end-to-end response headers are kept")
        tap.eq(r.get("x-upstream"), "a", "the upstream's own headers are kept")
        r2 = c.request("GET", "/")
        tap.eq(r2.status, 200, "the client connection is still usable")
z.stop()

with tap.section("no pool header by default"):
    z2 = Zdmd(tap, {"pools": {"old": [a], "new": [b]}, "split": {"old": 50, "new": 50}})
    with z2.client() as c:
        rs = [c.request("GET", "/") for _ in range(4)]
    tap.ok(all(not r.has("x-zdm-pool") for r in rs), "without expose_pool_header no X-Zdm-Pool",
           repr([r.headers for r in rs]))
    z2.stop()

tap.done()
