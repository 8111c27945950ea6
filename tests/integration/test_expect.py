#!/usr/bin/env python3
"""Expect: 100-continue (SPEC §5): the client gets "100 Continue", sends the
body, then gets the final response; a body over the limit is refused without
a 100."""

import socket
import time

from zdmtest import TAP, Upstream, Zdmd, Raw, Closed, build_request, chunked, is_self_made

tap = TAP()
a, b = Upstream("a"), Upstream("b")
z = Zdmd(tap, {"pools": {"old": [a], "new": [b]}, "split": {"old": 100, "new": 0},
               "limits": {"max_body_bytes": Raw("1m")}})


def read_interim(c):
    """The head of the next response (expected to be the 100)."""
    head = c.read_head()
    return head


with tap.section("100-continue with Content-Length"):
    body = b"the body after the 100"
    with z.client() as c:
        c.send(build_request("POST", "/echo", [("Expect", "100-continue"),
                                               ("Content-Length", str(len(body)))]))
        t0 = time.monotonic()
        head = read_interim(c)
        dt = time.monotonic() - t0
        tap.ok(head.startswith(b"HTTP/1.1 100 "), "the client gets 100 Continue before sending the body",
               repr(head))
        tap.ok(dt < 1.0, "promptly (%.2fs; clients give up waiting after 1s)" % dt)
        c.send(body)
        r = c.read_response("POST")
        tap.eq((r.status, r.body), (200, body), "then the final response, body echoed")
        r = c.request("GET", "/size/0")
        tap.eq(r.status, 200, "the connection is usable afterwards")

with tap.section("100-continue with a chunked body"):
    body = b"x" * 70000
    with z.client() as c:
        c.send(build_request("PUT", "/echo", [("Expect", "100-continue"),
                                              ("Transfer-Encoding", "chunked")]))
        head = read_interim(c)
        tap.ok(head.startswith(b"HTTP/1.1 100 "), "chunked: 100 Continue first", repr(head))
        c.send(chunked(body))
        r = c.read_response()
        tap.eq((r.status, r.body == body), (200, True), "chunked: final response, body intact")

with tap.section("100-continue, only one 100"):
    with z.client() as c:
        c.send(build_request("POST", "/echo", [("Expect", "100-continue"), ("Content-Length", "3")]))
        head = read_interim(c)
        c.send(b"abc")
        r = c.read_response()
        tap.eq((r.status, r.body, len(r.interim)), (200, b"abc", 0),
               "exactly one 100 Continue reaches the client")

with tap.section("Expect with the body over max_body_bytes"):
    with z.client() as c:
        c.send(build_request("POST", "/echo", [("Expect", "100-continue"),
                                               ("Content-Length", str(2 * 1024 * 1024))]))
        try:
            r = c.read_response()
        except (Closed, socket.timeout):
            r = None
        tap.ok(r is not None and r.status == 413 and not r.interim,
               "a body over max_body_bytes gets 413 without a 100 Continue",
               repr(r and (r.status, r.interim)))
        if r is not None:
            bad = is_self_made(r, 413)
            tap.ok(not bad, "the 413 is zdmd's own text/plain answer", "; ".join(bad))

with tap.section("a client that sends the body without waiting"):
    with z.client() as c:
        c.send(build_request("POST", "/echo", [("Expect", "100-continue")], b"eager"))
        r = c.read_response()
        tap.eq((r.status, r.body), (200, b"eager"), "the body sent at once is handled too")
        r = c.request("GET", "/size/1")
        tap.eq(r.status, 200, "and the connection stays in sync")

with tap.section("Expect on a request without a body"):
    with z.client() as c:
        r = c.request("GET", "/", [("Expect", "100-continue")])
        tap.eq(r.status, 200, "GET with Expect and no body is answered")

tap.ok(z.alive(), "zdmd is still running")
tap.done()
