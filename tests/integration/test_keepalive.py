#!/usr/bin/env python3
"""Keep-alive on both sides (SPEC §4.5, §5): many requests on one client
connection, upstream connections reused from the idle pool (counted by the
upstream), HTTP/1.0 and "Connection: close" clients, idle timeouts."""

import select
import time

from zdmtest import TAP, Upstream, Zdmd, Client, Closed, Raw, content, wait_for

tap = TAP()
a, b = Upstream("a"), Upstream("b")
z = Zdmd(tap, {"pools": {"old": [a], "new": [b]},
               "split": {"old": 100, "new": 0},
               "timeouts": {"client_idle": Raw("1s"), "upstream_idle": Raw("1500ms")}})

with tap.section("many requests on one client connection"):
    s0 = a.stats()
    with z.client() as c:
        good = 0
        for i in range(200):
            path = "/size/%d" % (i * 37)
            r = c.request("GET", path)
            good += r.status == 200 and r.body == content(i * 37)
        tap.eq(good, 200, "200 requests on one client connection all answered, bodies exact")
    s1 = a.stats()
    tap.eq(s1["requests"] - s0["requests"], 200, "the upstream saw exactly 200 requests")
    tap.within(s1["connections"] - s0["connections"], 0, 2,
               "the upstream saw at most 2 new connections for 200 requests (got %d)"
               % (s1["connections"] - s0["connections"]))

with tap.section("upstream reuse across client connections"):
    s0 = a.stats()
    ok = 0
    for i in range(30):
        with z.client() as c:
            r = c.request("GET", "/", [("Connection", "close")])
            ok += r.status == 200
            # zdmd finishes with this client before the next one comes.
            c.wait_closed(5)
    s1 = a.stats()
    tap.eq(ok, 30, "30 requests on 30 client connections answered")
    tap.within(s1["connections"] - s0["connections"], 0, 2,
               "the upstream saw at most 2 new connections for them (got %d)"
               % (s1["connections"] - s0["connections"]))

with tap.section("HTTP/1.0"):
    with z.client() as c:
        r = c.request("GET", "/", version="HTTP/1.0")
        tap.eq((r.status, r.body), (200, b"a\n"), "HTTP/1.0 request answered")
        tap.ok(c.wait_closed(5), "HTTP/1.0 without keep-alive: connection closed after the response")
    with z.client() as c:
        r = c.request("GET", "/chunked/5000", version="HTTP/1.0")
        tap.eq((r.status, r.body), (200, content(5000)),
               "HTTP/1.0 client gets a chunked upstream response whole")
        tap.ok("chunked" not in r.tokens("transfer-encoding"),
               "no chunked encoding is sent to an HTTP/1.0 client")
    with z.client() as c:
        r = c.request("GET", "/", version="HTTP/1.0", host=None)
        tap.eq(r.status, 200, "an HTTP/1.0 request without Host is fine")
    with z.client() as c:
        r1 = c.request("GET", "/", [("Connection", "keep-alive")], version="HTTP/1.0")
        try:
            r2 = c.request("GET", "/size/10", [("Connection", "keep-alive")], version="HTTP/1.0")
            good = r2.status == 200 and r2.body == content(10)
        except Closed:
            good = c.eof and "keep-alive" not in r1.tokens("connection")
        tap.ok(r1.status == 200 and good,
               "HTTP/1.0 with Connection: keep-alive: either kept alive and announced, or closed")

with tap.section("Connection: close"):
    with z.client() as c:
        c.send(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
               b"GET /size/10 HTTP/1.1\r\nHost: x\r\n\r\n")
        r = c.read_response()
        tap.eq(r.status, 200, "Connection: close request answered")
        tap.ok(c.wait_closed(5), "Connection: close from the client: closed after the response")
        tap.eq(bytes(c.buf), b"", "nothing is answered after the request that said close")
    with z.client() as c:
        r = c.request("GET", "/", [("Connection", "Keep-Alive, CLOSE")])
        tap.ok(r.status == 200 and c.wait_closed(5), "close token found case-insensitively in a list")
    # close wins wherever it is, however it is followed; each with a
    # pipelined request behind it that must not be answered.
    for version, value, what in (
            ("HTTP/1.0", "keep-alive, close", "HTTP/1.0 naming keep-alive and close"),
            ("HTTP/1.0", "keep-alive\r\nConnection: close", "HTTP/1.0, keep-alive then close headers"),
            ("HTTP/1.1", "close \t", "HTTP/1.1, close followed by a space and a tab")):
        with z.client() as c:
            c.send(("GET / %s\r\nHost: x\r\nConnection: %s\r\n\r\n"
                    "GET /size/10 HTTP/1.1\r\nHost: x\r\n\r\n" % (version, value)).encode())
            r = c.read_response()
            tap.ok(r.status == 200 and c.wait_closed(5) and bytes(c.buf) == b"",
                   "%s: answered, then closed, the next request not answered" % what)
    with z.client() as c:
        c.send(b"GET / HTTP/1.0\r\nConnection: keep-alive \t\r\n\r\n")
        r1 = c.read_response()
        r2 = c.request("GET", "/size/10", [("Connection", "keep-alive")], version="HTTP/1.0")
        tap.ok(r1.status == 200 and r2.status == 200 and r2.body == content(10),
               "HTTP/1.0, keep-alive followed by a space and a tab: kept alive")

with tap.section("idle timeouts"):
    with z.client() as c:
        r = c.request("GET", "/")
        t0 = time.monotonic()
        closed = c.wait_closed(6)
        dt = time.monotonic() - t0
        tap.ok(closed and 0.7 <= dt <= 5, "an idle client connection is closed after client_idle (1s): %.2fs" % dt)
    with z.client() as c:
        r = c.request("GET", "/slow/1600")
        tap.eq(r.status, 200, "client_idle (1s) does not cut a client waiting for a slow upstream (1.6s)")
    # upstream_idle: the pooled connection to a goes away.
    opened = wait_for(lambda: a.stats()["open"] == 0, timeout=6)
    tap.ok(opened, "idle upstream connections are closed after upstream_idle (1.5s)",
           "open: %r" % a.stats()["open"])
    with z.client() as c:
        r = c.request("GET", "/")
        tap.eq(r.status, 200, "a request after the idle upstream connections closed is answered")

with tap.section("idle timeouts of many connections, in every order"):
    # 40 connections ask once each, 15ms apart, so that their deadlines
    # differ; then every other one keeps asking every 250ms for 2.2s while
    # the rest stay quiet. Each must be closed about client_idle after its
    # own last response: the quiet ones while the busy ones go on, the busy
    # ones once they stop; and no busy one is closed while busy.
    conns = [z.client(timeout=5) for _ in range(40)]
    busy = set(range(0, 40, 2))
    last, closed_at, answered, asked = {}, {}, 0, 0
    for i, c in enumerate(conns):
        r = c.request("GET", "/")
        last[i] = time.monotonic()
        time.sleep(0.015)  # the stagger is the input, not a wait
    t_stop = time.monotonic() + 2.2
    busy_closed = []
    while len(closed_at) < len(conns) and time.monotonic() < t_stop + 5:
        now = time.monotonic()
        if now < t_stop:
            for i in busy:
                if i not in closed_at and now - last[i] >= 0.25:
                    asked += 1
                    try:
                        answered += conns[i].request("GET", "/").status == 200
                        last[i] = time.monotonic()
                    except (Closed, OSError):
                        busy_closed.append(i)
                        closed_at[i] = time.monotonic()
        open_socks = {conns[i].sock: i for i in range(len(conns)) if i not in closed_at}
        ready, _, _ = select.select(list(open_socks), [], [], 0.02)
        for s in ready:
            i = open_socks[s]
            try:
                data = s.recv(4096)
            except OSError:
                data = b""
            if not data:
                closed_at[i] = time.monotonic()
    for c in conns:
        c.close()
    quiet_dt = sorted(closed_at[i] - last[i] for i in closed_at if i not in busy)
    busy_dt = sorted(closed_at[i] - last[i] for i in closed_at if i in busy)
    tap.ok(len(closed_at) == 40, "all 40 connections were closed (%d)" % len(closed_at))
    busy_closed += [i for i in busy if closed_at.get(i, t_stop) < t_stop]
    tap.ok(not busy_closed and asked > 0 and answered == asked,
           "no busy connection was closed while asking every 250ms: %d/%d answered"
           % (answered, asked), "closed while busy: %r" % sorted(set(busy_closed)))
    tap.ok(len(quiet_dt) == 20 and 0.7 <= quiet_dt[0] and quiet_dt[-1] <= 3.0,
           "each quiet connection closed about client_idle (1s) after its last response "
           "(%.2f..%.2fs)" % (quiet_dt[0], quiet_dt[-1]) if quiet_dt else "no quiet one closed")
    tap.ok(len(busy_dt) == 20 and 0.7 <= busy_dt[0] and busy_dt[-1] <= 3.0,
           "each busy connection closed about client_idle after it stopped "
           "(%.2f..%.2fs)" % (busy_dt[0], busy_dt[-1]) if busy_dt else "no busy one closed")

with tap.section("HTTP/1.0 keep-alive, a head read whole or in pieces"):
    # A tab after keep-alive: llhttp (which reads a head that comes in
    # pieces) sees no keep-alive token there and took the connection as
    # closing, so a next request read in pieces was never answered.
    for value in (b"keep-alive", b"keep-alive\t", b"x keep-alive"):
        head = b"GET / HTTP/1.0\r\nHost: a\r\nConnection: " + value + b"\r\n\r\n"
        got = []
        with z.client(timeout=3) as c:
            for split in (0, 5, 20, 0):
                if split:
                    c.send(head[:split])
                    time.sleep(0.05)  # the rest in another read
                    c.send(head[split:])
                else:
                    c.send(head)
                try:
                    r = c.read_response()
                    got.append((r.status, (r.get("connection") or "").lower()))
                except (Closed, OSError) as e:
                    got.append(repr(e))
                    break
        tap.eq(got, [(200, "keep-alive")] * 4,
               "Connection: %r, four requests on one connection, whole and in pieces: each "
               "answered and kept alive" % value.decode())

tap.ok(z.alive(), "zdmd is still running")
tap.done()
