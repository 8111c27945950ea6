#!/usr/bin/env python3
"""A request sent again after its upstream reset before answering goes out
exactly as it came, even when the client pipelined its next request while
the first was on the wire: the second request's bytes, read while the first
is awaited, must not take the place of the first one's head."""

import json
import socket
import struct
import threading

from zdmtest import TAP, Upstream, Zdmd, Client, Server, build_request, wait_for, HOST

tap = TAP()
live, other = Upstream("live"), Upstream("other")


class Resetter:
    """A server that reads one request head per connection and, when told,
    resets that connection without answering."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind((HOST, 0))
        self.sock.listen(16)
        self.address = "%s:%d" % self.sock.getsockname()
        self.heads = []
        self.got = threading.Event()
        self.go = threading.Event()
        threading.Thread(target=self._run, daemon=True).start()

    def _run(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            conn.settimeout(10)
            data = b""
            try:
                while b"\r\n\r\n" not in data:
                    chunk = conn.recv(4096)
                    if not chunk:
                        break
                    data += chunk
            except OSError:
                pass
            self.heads.append(data)
            self.got.set()
            self.go.wait(10)
            conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            conn.close()


def unread_by_zdmd(z, client_port):
    """Bytes of the client's connection that zdmd has not read yet (its
    socket's receive queue), or None if the socket is not found."""
    with open("/proc/%d/net/tcp" % z.proc.pid) as f:
        for row in f.read().splitlines()[1:]:
            col = row.split()
            local = int(col[1].rsplit(":", 1)[1], 16)
            remote = int(col[2].rsplit(":", 1)[1], 16)
            if local == z.port and remote == client_port:
                return int(col[4].split(":")[1], 16)
    return None


def answered(r, target, tag):
    """True if R is live's /headers answer to exactly this request."""
    if r.status != 200 or r.get("x-upstream") != "live":
        return False
    doc = json.loads(r.body)
    values = dict((n.lower(), v) for n, v in doc["headers"])
    return (doc["request_line"] == "GET %s HTTP/1.1" % target and
            values.get("x-tag") == tag and values.get("host") == "test.local")


rst = Resetter()
z = Zdmd(tap, {"pools": {"old": [Server(rst.address, name="rst"), live], "new": [other]},
               "split": {"old": 100, "new": 0},
               "circuit_breaker": {"failures": 0}})

with tap.section("reset before any response byte, a pipelined request read meanwhile"):
    first = "/headers?first-request-with-a-long-target-" + "a" * 40
    second = "/headers?b"
    c = None
    # The pool takes turns: the request that reaches the resetting server
    # is the one this is about; others are answered by live.
    for attempt in range(6):
        c = Client(z.port, timeout=10)
        rst.got.clear()
        c.send(build_request("GET", first, [("X-Tag", "one")]))
        if wait_for(rst.got.is_set, timeout=2):
            break
        r = c.read_response()
        c.close()
        c = None
    tap.ok(c is not None, "a request reached the server that resets")
    if c is not None:
        # The next request, shorter, sent while the first is awaited.
        c.send(build_request("GET", second, [("X-Tag", "two")]))
        port = c.sock.getsockname()[1]
        tap.ok(wait_for(lambda: unread_by_zdmd(z, port) == 0, timeout=5),
               "zdmd has read the pipelined request")
        rst.go.set()
        r1 = c.read_response()
        r2 = c.read_response()
        tap.ok(answered(r1, first, "one"),
               "the first request, sent again to another server, arrived exactly",
               "got %r" % (r1.body[:200],))
        tap.ok(answered(r2, second, "two"), "then the pipelined request was answered")
        tap.eq(rst.heads[-1].split(b"\r\n")[0], ("GET %s HTTP/1.1" % first).encode(),
               "the resetting server had the first request")
        c.close()

tap.ok(z.alive(), "zdmd is still running")
tap.done()
