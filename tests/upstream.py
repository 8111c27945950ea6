#!/usr/bin/env python3
"""A test upstream HTTP/1.1 server for zdm's integration tests.

Written on raw sockets (one thread per connection) so that it can misbehave
on purpose. Keep-alive is on unless the client asks otherwise. Every response
carries "X-Upstream: NAME". The behaviour is chosen by the request path:

  /                 "NAME\\n"
  /health           200
  /size/N           N bytes of deterministic content (Content-Length)
  /chunked/N        N bytes sent chunked, in several chunks of varying size
  /echo             the request body, exactly (CL or chunked request bodies),
                    with "X-Body-Sha256" of what was received
  /sink             reads the request body and answers "ok\n" with its
                    "X-Body-Sha256" and "X-Body-Length"
  /headers          JSON: {"request_line": "...", "headers": [[name, value], ...]}
                    exactly as received, in order
  /status/N         status N with a short body (none for 1xx/204/304)
  /reset            headers and part of the body, then RST (SO_LINGER 0)
  /reset-before     RST right after reading the request
  /hang             never answers; waits until the peer closes
  /noread           never reads the request body nor answers (for 30 s at most)
  /early-reject     answers 413 with "Connection: close" without reading the
                    request body, then reads and discards it for a while
  /slow/MS          waits MS milliseconds, then answers
  /invalid          answers bytes that are not HTTP, then closes
  /close[/N]        "Connection: close", no Content-Length: close-delimited body
  /idle-close/MS    a normal keep-alive answer, but the connection is closed
                    without notice if no other request comes within MS ms
  /hop              a response carrying hop-by-hop headers
  /early-hints      a "103 Early Hints" interim response, then 200
  /trailers         a chunked body followed by a trailer field
  /cl-te            a response with both Content-Length and chunked framing
  /dup-cl           a response with two differing Content-Lengths
  /overflow         "hello" with Content-Length 5, followed on the same
                    connection by bytes that look like another response
  /stall            headers and part of the body, then silence (until the
                    peer closes)
  /304-cl           304 carrying the Content-Length of the full resource, no body
  /http10           an HTTP/1.0 response without keep-alive; the connection
                    then stays open but nothing more is answered on it
  /close-linger     "Connection: close" with a Content-Length; the connection
                    then stays open but nothing more is answered on it
  /drip/N/MS        N bytes (Content-Length) sent 1000 at a time, MS ms apart
  /upgrade          with "Connection: upgrade" and "Upgrade: X": 101, then
                    every byte received is sent back until the peer closes;
                    otherwise 426
  /upgrade-push/N/MS  as /upgrade, then N bytes "." sent one each MS ms, and
                    what is received is read and dropped; then the
                    connection stays open until the peer closes
  /upgrade-sink     as /upgrade, then what is received is read and dropped,
                    nothing sent, until the peer closes
  /__stats          JSON {"connections", "open", "requests", "bad", "paths",
                    "bytes_in", "bytes_out", "faults", "mode", "listening"}:
                    "requests" counts every head received, "bad" those it
                    could not parse, "paths" the heads per path (/health
                    included), "faults" the requests per path answered by a
                    fault of /__mode, "mode" the faults in force
  /__mode           fault controls, see below
  /__heads          JSON {path: [request line, [[name, value], ...], time]}:
                    the last request head received per path (for checks of
                    what a health checker sends)
  /__times?path=P   JSON [t, ...]: the wall-clock times (time.time()) of the
                    last 256 requests received on path P

Fault controls (sent directly to this server, never through the proxy):
"POST /__mode" with a JSON object body, or "GET /__mode?k=v&k=v" with the
same keys as a query string, changes how every following request is answered,
on every connection, new or kept alive; the answer is the mode now in force.
  health=F          how /health is answered (F below); "default" (the
                    initial value) follows "all", "ok" answers 200 whatever
                    "all" says
  all=F             how every request is answered, except the /__ paths
  listen=off|on     off: close the listening socket (connections are then
                    refused) and end every open connection except the one
                    asking (drop=0 keeps them); on: listen again on the same
                    port. With for=MS, "off" turns back "on" by itself after
                    MS milliseconds.
  share=S           0 < S <= 1 (default 1): the fault of "all" applies to a
                    share S of the requests only, the others being answered
                    normally. The choice is deterministic, an accumulator:
                    every request adds S and is faulted when the sum reaches
                    1 (which takes 1 off), so that every run of consecutive
                    requests has its share S to within one request (0.2:
                    every 5th request, the 5th, 10th...). Setting share (or
                    all) starts the count again. /health takes part only
                    while it follows "all" (health=default).
  reset=1           back to normal: health=default, all=ok, share=1
F is one of: ok (normal), a status code such as 500 (answered with a short
body), hang (never answers; waits until the peer closes), reset (RST right
after reading the request), close (closes without an answer), invalid
(bytes that are not HTTP, then close), slow:MS (answers normally after MS
milliseconds).
SIGUSR1 is "listen=off", SIGUSR2 "listen=on".

"Expect: 100-continue" is honoured (100 Continue before the body is read).
HEAD gets the headers of the GET without a body.

Run as a script: python3 upstream.py --port P --name NAME
(port 0 picks a free one; the chosen port is printed as "LISTENING <port>").
Importable: content(n) gives the bytes /size/N and /chunked/N send.

/__stats counts every connection and request except those of connections
whose first request is /__stats itself (or another /__ path), so that tests
can read the counters and change the mode without disturbing them.
"""

import argparse
import hashlib
import json
import random
import signal
import socket
import socketserver
import struct
import sys
import threading
import time
import urllib.parse

MAX_HEAD = 1 << 20
IDLE_TIMEOUT = 120.0      # an idle connection is dropped after this

_content_cache = {}
_content_lock = threading.Lock()


def content(n):
    """The deterministic, non-periodic body of /size/N and /chunked/N."""
    with _content_lock:
        b = _content_cache.get(n)
        if b is None:
            b = random.Random(n).randbytes(n)
            if n <= 64 << 20:
                _content_cache[n] = b
        return b


class PeerClosed(Exception):
    pass


class BadRequest(Exception):
    pass


class Stats:
    def __init__(self):
        self.lock = threading.Lock()
        self.connections = 0
        self.open = 0
        self.requests = 0
        self.bytes_in = 0
        self.bytes_out = 0
        self.bad = 0
        self.paths = {}
        self.faults = {}      # requests per path answered by a fault
        self.heads = {}       # the last head per path
        self.times = {}       # arrival times per path, the last TIMES_KEPT

    def snapshot(self):
        with self.lock:
            return {"connections": self.connections, "open": self.open,
                    "requests": self.requests, "bytes_in": self.bytes_in,
                    "bytes_out": self.bytes_out, "bad": self.bad,
                    "paths": dict(self.paths), "faults": dict(self.faults)}


TIMES_KEPT = 256
CONTROL_PATHS = ("/__stats", "/__mode", "/__heads", "/__times")


class Mode:
    """The faults in force (see /__mode), shared by every connection."""

    HEALTH_VALUES = ("default", "ok")

    def __init__(self):
        self.lock = threading.Lock()
        self.health = "default"
        self.all = "ok"
        self.share = 1.0      # of the requests that "all" faults
        self.acc = 0.0        # the accumulator of share

    @staticmethod
    def check(value, allowed_extra=()):
        """The normal form of fault VALUE; raises ValueError."""
        v = str(value).strip().lower()
        if v in ("ok", "normal", "hang", "reset", "close", "invalid") or v in allowed_extra:
            return "ok" if v == "normal" else v
        if v.isdigit() and 100 <= int(v) <= 999:
            return v
        if v.startswith("slow:") and v[5:].isdigit():
            return v
        raise ValueError("bad fault %r" % (value,))

    def fault_for(self, path):
        """The fault for a request on PATH: None when it is answered
        normally."""
        if path in CONTROL_PATHS:
            return None
        with self.lock:
            if path == "/health" and self.health != "default":
                f = self.health
            else:
                f = self.all
                if f != "ok" and self.share < 1.0:
                    self.acc += self.share
                    if self.acc < 1.0 - 1e-9:
                        return None
                    self.acc -= 1.0
        return None if f == "ok" else f

    @staticmethod
    def check_share(value):
        """The share as a float; raises ValueError unless 0 < S <= 1."""
        try:
            v = float(value)
        except (TypeError, ValueError):
            raise ValueError("bad share %r" % (value,))
        if not 0.0 < v <= 1.0:
            raise ValueError("share %r not in (0, 1]" % (value,))
        return v

    def doc(self):
        with self.lock:
            return {"health": self.health, "all": self.all, "share": self.share}


REASONS = {100: "Continue", 103: "Early Hints", 200: "OK", 201: "Created",
           204: "No Content", 301: "Moved Permanently", 304: "Not Modified",
           400: "Bad Request", 404: "Not Found", 500: "Internal Server Error",
           502: "Bad Gateway", 503: "Service Unavailable"}


class Conn:
    """Buffered reading from one client socket."""

    def __init__(self, sock, stats):
        self.sock = sock
        self.buf = bytearray()
        self.stats = stats
        self.counted = True   # bytes count toward the stats
        self.nbytes = 0       # bytes counted so far on this connection

    def _fill(self):
        data = self.sock.recv(65536)
        if not data:
            raise PeerClosed()
        if self.counted:
            self.nbytes += len(data)
            with self.stats.lock:
                self.stats.bytes_in += len(data)
        self.buf += data

    def read_head(self):
        """Returns the head (without the blank line), accepting CRLF or LF."""
        while True:
            i = self.buf.find(b"\r\n\r\n")
            j = self.buf.find(b"\n\n")
            cands = [(i, 4), (j, 2)]
            cands = [c for c in cands if c[0] >= 0]
            if cands:
                pos, ln = min(cands)
                head = bytes(self.buf[:pos])
                del self.buf[:pos + ln]
                return head
            if len(self.buf) > MAX_HEAD:
                raise BadRequest("head too large")
            self._fill()

    def read_exact(self, n):
        while len(self.buf) < n:
            self._fill()
        out = bytes(self.buf[:n])
        del self.buf[:n]
        return out

    def read_line(self):
        while True:
            i = self.buf.find(b"\n")
            if i >= 0:
                line = bytes(self.buf[:i + 1])
                del self.buf[:i + 1]
                return line.rstrip(b"\r\n")
            if len(self.buf) > MAX_HEAD:
                raise BadRequest("line too long")
            self._fill()

    def read_chunked(self):
        out = bytearray()
        while True:
            line = self.read_line()
            size_txt = line.split(b";", 1)[0].strip()
            try:
                size = int(size_txt, 16)
            except ValueError:
                raise BadRequest("bad chunk size %r" % size_txt)
            if size == 0:
                # trailers up to the blank line
                while self.read_line() != b"":
                    pass
                return bytes(out)
            out += self.read_exact(size)
            if self.read_exact(2) != b"\r\n":
                raise BadRequest("chunk not followed by CRLF")


class Request:
    def __init__(self, head):
        lines = head.replace(b"\r\n", b"\n").split(b"\n")
        self.request_line = lines[0].decode("latin-1")
        parts = self.request_line.split(" ")
        if len(parts) != 3:
            raise BadRequest("bad request line")
        self.method, self.target, self.version = parts
        self.headers = []
        for ln in lines[1:]:
            name, sep, value = ln.partition(b":")
            if not sep:
                raise BadRequest("bad header line")
            self.headers.append((name.decode("latin-1"),
                                 value.strip(b" \t").decode("latin-1")))
        path = self.target
        if "://" in path:
            # absolute-form: the path starts after the authority
            rest = path.split("://", 1)[1]
            path = "/" + rest.split("/", 1)[1] if "/" in rest else "/"
        self.path = path.split("?", 1)[0]
        self.body = b""

    def get(self, name):
        name = name.lower()
        for n, v in self.headers:
            if n.lower() == name:
                return v
        return None

    def get_all(self, name):
        name = name.lower()
        return [v for n, v in self.headers if n.lower() == name]

    def tokens(self, name):
        out = []
        for v in self.get_all(name):
            out += [t.strip().lower() for t in v.split(",") if t.strip()]
        return out

    def wants_close(self):
        conn = self.tokens("connection")
        if self.version == "HTTP/1.0":
            return "keep-alive" not in conn
        return "close" in conn


def _int_arg(path, prefix, default=0):
    try:
        return int(path[len(prefix):])
    except ValueError:
        return default


class Handler(socketserver.BaseRequestHandler):
    def setup(self):
        self.stats = self.server.stats
        self.name = self.server.upstream_name
        with self.stats.lock:
            self.stats.connections += 1
            self.stats.open += 1
        self.is_stats_conn = False
        self.sock = self.request
        self.sock.settimeout(IDLE_TIMEOUT)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.conn = Conn(self.sock, self.stats)
        with self.server.conns_lock:
            self.server.conns.add(self)

    def finish(self):
        with self.server.conns_lock:
            self.server.conns.discard(self)
        if not self.is_stats_conn:
            with self.stats.lock:
                self.stats.open -= 1

    # -- response helpers ----------------------------------------------------

    def send(self, data):
        """Sends in slices so that bytes_out follows a blocked transfer."""
        view = memoryview(data)
        for i in range(0, len(view), 65536):
            self.sock.sendall(view[i:i + 65536])
            if not self.is_stats_conn:
                with self.stats.lock:
                    self.stats.bytes_out += len(view[i:i + 65536])

    def respond(self, req, status, body=b"", headers=(), close=False,
                ctype="text/plain", omit_body=False):
        reason = REASONS.get(status, "Status")
        lines = ["HTTP/1.1 %d %s" % (status, reason),
                 "X-Upstream: %s" % self.name]
        if ctype and status not in (204, 304):
            lines.append("Content-Type: %s" % ctype)
        lines += ["%s: %s" % h for h in headers]
        no_body = req.method == "HEAD" or status in (204, 304) or omit_body
        if status not in (204, 304):
            lines.append("Content-Length: %d" % len(body))
        if close:
            lines.append("Connection: close")
        elif req.version == "HTTP/1.0":
            lines.append("Connection: keep-alive")
        out = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
        if not no_body:
            out += body
        self.send(out)

    def rst(self):
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                             struct.pack("ii", 1, 0))
        self.sock.close()

    # -- the connection loop -------------------------------------------------

    def handle(self):
        first = True
        try:
            while True:
                try:
                    head = self.conn.read_head()
                except (PeerClosed, OSError):
                    return
                try:
                    req = Request(head)
                except BadRequest:
                    if not self.is_stats_conn:
                        with self.stats.lock:
                            self.stats.requests += 1
                            self.stats.bad += 1
                    self.send(b"HTTP/1.1 400 Bad Request\r\nX-Upstream: " +
                              self.name.encode() +
                              b"\r\nContent-Length: 12\r\nConnection: close"
                              b"\r\n\r\nbad request\n")
                    return
                if first and req.path in CONTROL_PATHS:
                    self.is_stats_conn = True
                    self.conn.counted = False
                    with self.stats.lock:
                        self.stats.connections -= 1
                        self.stats.open -= 1
                        self.stats.bytes_in -= self.conn.nbytes
                first = False
                if not self.is_stats_conn:
                    with self.stats.lock:
                        self.stats.requests += 1
                        self.stats.paths[req.path] = \
                            self.stats.paths.get(req.path, 0) + 1
                        if req.path not in CONTROL_PATHS:
                            self.stats.heads[req.path] = [
                                req.request_line,
                                [[n, v] for n, v in req.headers], time.time()]
                            t = self.stats.times.setdefault(req.path, [])
                            t.append(time.time())
                            if len(t) > TIMES_KEPT:
                                del t[:len(t) - TIMES_KEPT]
                if req.path == "/noread":
                    time.sleep(30)
                    return
                if req.path == "/early-reject":
                    self.respond(req, 413, b"too large for me\n", close=True)
                    self.drain(5.0)
                    return
                try:
                    self.read_body(req)
                except BadRequest:
                    self.send(b"HTTP/1.1 400 Bad Request\r\nX-Upstream: " +
                              self.name.encode() + b"\r\nContent-Length: 0"
                              b"\r\nConnection: close\r\n\r\n")
                    return
                fault = self.server.mode.fault_for(req.path)
                if fault is not None:
                    with self.stats.lock:
                        self.stats.faults[req.path] = \
                            self.stats.faults.get(req.path, 0) + 1
                    keep = self.answer_fault(req, fault)
                else:
                    keep = self.dispatch(req)
                if not keep or req.wants_close():
                    return
        except (PeerClosed, OSError):
            return

    def read_body(self, req):
        te = req.tokens("transfer-encoding")
        cl = req.get("content-length")
        has_body = bool(te) or (cl is not None and cl.strip() != "0")
        if has_body and "100-continue" in req.tokens("expect"):
            self.send(b"HTTP/1.1 100 Continue\r\n\r\n")
        if te:
            if te[-1] != "chunked":
                raise BadRequest("unsupported transfer-encoding")
            req.body = self.conn.read_chunked()
        elif cl is not None:
            try:
                n = int(cl.strip())
            except ValueError:
                raise BadRequest("bad content-length")
            req.body = self.conn.read_exact(n)

    def dispatch(self, req):
        """Answers REQ; returns False when the connection must end."""
        p = req.path
        name = self.name.encode()
        if p == "/":
            self.respond(req, 200, name + b"\n")
        elif p == "/health":
            self.respond(req, 200, b"ok\n")
        elif p.startswith("/size/"):
            n = _int_arg(p, "/size/")
            self.respond(req, 200, content(n), ctype="application/octet-stream")
        elif p.startswith("/chunked/"):
            self.send_chunked(req, content(_int_arg(p, "/chunked/")))
        elif p == "/echo":
            digest = hashlib.sha256(req.body).hexdigest()
            self.respond(req, 200, req.body, headers=[("X-Body-Sha256", digest)],
                         ctype="application/octet-stream")
        elif p == "/sink":
            digest = hashlib.sha256(req.body).hexdigest()
            self.respond(req, 200, b"ok\n", headers=[("X-Body-Sha256", digest),
                                                    ("X-Body-Length", str(len(req.body)))])
        elif p == "/headers":
            doc = {"request_line": req.request_line,
                   "headers": [[n, v] for n, v in req.headers]}
            self.respond(req, 200, json.dumps(doc).encode() + b"\n",
                         ctype="application/json")
        elif p.startswith("/status/"):
            code = _int_arg(p, "/status/", 500)
            if 100 <= code < 200:
                self.send(b"HTTP/1.1 %d Interim\r\n\r\n" % code)
                self.respond(req, 200, b"after interim\n")
            else:
                self.respond(req, code, b"status %d\n" % code)
        elif p == "/reset":
            self.send(b"HTTP/1.1 200 OK\r\nX-Upstream: " + name +
                      b"\r\nContent-Length: 100000\r\n\r\n" + content(100000)[:1000])
            # Let those bytes leave before the reset discards them.
            time.sleep(0.05)
            self.rst()
            return False
        elif p == "/reset-before":
            self.rst()
            return False
        elif p == "/hang":
            self.hang()
            return False
        elif p.startswith("/slow/"):
            time.sleep(_int_arg(p, "/slow/") / 1000.0)
            self.respond(req, 200, b"slow " + name + b"\n")
        elif p == "/invalid":
            self.send(b"THIS IS NOT HTTP AT ALL\r\n\x00\x01\x02\r\n\r\n")
            return False
        elif p == "/close" or p.startswith("/close/"):
            n = _int_arg(p, "/close/", 1000) if p != "/close" else 1000
            self.send(b"HTTP/1.1 200 OK\r\nX-Upstream: " + name +
                      b"\r\nContent-Type: application/octet-stream"
                      b"\r\nConnection: close\r\n\r\n" +
                      (b"" if req.method == "HEAD" else content(n)))
            return False
        elif p.startswith("/idle-close/"):
            self.respond(req, 200, name + b"\n")
            if req.wants_close():
                return False
            self.sock.settimeout(_int_arg(p, "/idle-close/", 100) / 1000.0)
            try:
                while not self.conn.buf:
                    self.conn._fill()
            except (socket.timeout, TimeoutError):
                return False   # closed without notice
            self.sock.settimeout(IDLE_TIMEOUT)
        elif p == "/hop":
            self.respond(req, 200, b"hop\n", headers=[
                ("Connection", "X-Up-Hop, keep-alive"),
                ("Keep-Alive", "timeout=5"),
                ("X-Up-Hop", "1"),
                ("Proxy-Connection", "keep-alive"),
                ("X-End", "kept")])
        elif p == "/early-hints":
            self.send(b"HTTP/1.1 103 Early Hints\r\nLink: </a.css>; rel=preload"
                      b"\r\n\r\n")
            self.respond(req, 200, b"hinted " + name + b"\n")
        elif p == "/trailers":
            self.send(b"HTTP/1.1 200 OK\r\nX-Upstream: " + name +
                      b"\r\nTransfer-Encoding: chunked\r\nTrailer: X-Checksum\r\n\r\n"
                      b"6\r\ntrail \r\n4\r\ners!\r\n0\r\nX-Checksum: 1234\r\n\r\n")
        elif p == "/cl-te":
            self.send(b"HTTP/1.1 200 OK\r\nX-Upstream: " + name +
                      b"\r\nContent-Length: 100\r\nTransfer-Encoding: chunked\r\n\r\n"
                      b"5\r\nhello\r\n0\r\n\r\n")
        elif p == "/dup-cl":
            self.send(b"HTTP/1.1 200 OK\r\nX-Upstream: " + name +
                      b"\r\nContent-Length: 5\r\nContent-Length: 25\r\n\r\n"
                      b"hello" + b"x" * 20)
        elif p == "/overflow":
            self.send(b"HTTP/1.1 200 OK\r\nX-Upstream: " + name +
                      b"\r\nContent-Length: 5\r\n\r\nhello"
                      b"HTTP/1.1 200 OK\r\nX-Upstream: smuggled\r\n"
                      b"Content-Length: 9\r\n\r\nsmuggled\n")
        elif p == "/stall":
            self.send(b"HTTP/1.1 200 OK\r\nX-Upstream: " + name +
                      b"\r\nContent-Length: 100000\r\n\r\n" + content(100000)[:1000])
            self.hang()
            return False
        elif p == "/304-cl":
            self.send(b"HTTP/1.1 304 Not Modified\r\nX-Upstream: " + name +
                      b"\r\nETag: \"v1\"\r\nContent-Length: 1000\r\n\r\n")
        elif p == "/http10":
            self.send(b"HTTP/1.0 200 OK\r\nX-Upstream: " + name +
                      b"\r\nContent-Length: 6\r\n\r\nhttp10")
            self.hang()
            return False
        elif p == "/close-linger":
            self.send(b"HTTP/1.1 200 OK\r\nX-Upstream: " + name +
                      b"\r\nConnection: close\r\nContent-Length: 6\r\n\r\nlinger")
            self.hang()
            return False
        elif p.startswith("/drip/"):
            try:
                n, ms = [int(x) for x in p[len("/drip/"):].split("/")]
            except ValueError:
                n, ms = 10000, 100
            data = content(n)
            self.send(b"HTTP/1.1 200 OK\r\nX-Upstream: " + name +
                      b"\r\nContent-Length: %d\r\n\r\n" % n)
            for i in range(0, n, 1000):
                if i:
                    time.sleep(ms / 1000.0)
                self.send(data[i:i + 1000])
        elif p == "/upgrade" or p == "/upgrade-sink" or p.startswith("/upgrade-push/"):
            proto = req.get("upgrade")
            if not proto or "upgrade" not in req.tokens("connection"):
                self.respond(req, 426, b"upgrade required\n")
                return True
            self.send(b"HTTP/1.1 101 Switching Protocols\r\nX-Upstream: " + name +
                      b"\r\nConnection: Upgrade\r\nUpgrade: " + proto.encode("latin-1") +
                      b"\r\n\r\n")
            if p != "/upgrade":
                self.conn.buf.clear()
                if p.startswith("/upgrade-push/"):
                    n, ms = (int(v) for v in p.split("/")[2:4])
                    self.sock.settimeout(ms / 1000.0)
                    for _ in range(n):
                        try:
                            if not self.sock.recv(65536):
                                return False
                        except socket.timeout:
                            pass
                        self.send(b".")
                    self.sock.settimeout(None)
                while self.sock.recv(65536):
                    pass
                return False
            if self.conn.buf:
                self.send(bytes(self.conn.buf))
                self.conn.buf.clear()
            while True:
                data = self.sock.recv(65536)
                if not data:
                    return False
                self.send(data)
        elif p == "/__stats":
            snap = self.stats.snapshot()
            snap["mode"] = self.server.mode.doc()
            snap["listening"] = self.server.listening
            self.respond(req, 200, json.dumps(snap).encode(),
                         ctype="application/json")
        elif p == "/__mode":
            return self.control_mode(req)
        elif p == "/__heads":
            with self.stats.lock:
                doc = dict(self.stats.heads)
            self.respond(req, 200, json.dumps(doc).encode(),
                         ctype="application/json")
        elif p == "/__times":
            q = urllib.parse.parse_qs(req.target.partition("?")[2])
            path = (q.get("path") or ["/"])[0]
            with self.stats.lock:
                doc = list(self.stats.times.get(path, []))
            self.respond(req, 200, json.dumps(doc).encode(),
                         ctype="application/json")
        else:
            self.respond(req, 404, b"not found\n")
        return True

    def answer_fault(self, req, fault):
        """Answers REQ as FAULT says; returns False when the connection
        must end."""
        if fault == "hang":
            self.hang()
            return False
        if fault == "reset":
            self.rst()
            return False
        if fault == "close":
            return False
        if fault == "invalid":
            self.send(b"THIS IS NOT HTTP AT ALL\r\n\x00\x01\x02\r\n\r\n")
            return False
        if fault.startswith("slow:"):
            time.sleep(int(fault[5:]) / 1000.0)
            return self.dispatch(req)
        code = int(fault)
        self.respond(req, code, b"fault %d %s\n" % (code, self.name.encode()))
        return True

    def control_mode(self, req):
        """/__mode: changes the faults; answers the mode in force."""
        params = {}
        query = req.target.partition("?")[2]
        for k, v in urllib.parse.parse_qsl(query, keep_blank_values=True):
            params[k] = v
        if req.body:
            try:
                doc = json.loads(req.body.decode())
                if not isinstance(doc, dict):
                    raise ValueError("not an object")
            except ValueError as e:
                self.respond(req, 400, b"bad JSON: %s\n" % str(e).encode())
                return True
            params.update(doc)
        mode = self.server.mode
        try:
            unknown = set(params) - {"health", "all", "listen", "for", "drop", "reset",
                                     "share"}
            if unknown:
                raise ValueError("unknown keys %s" % sorted(unknown))
            health = all_ = None
            if "health" in params:
                health = Mode.check(params["health"], Mode.HEALTH_VALUES)
            if "all" in params:
                all_ = Mode.check(params["all"])
            share = Mode.check_share(params["share"]) if "share" in params else None
            listen = params.get("listen")
            if listen is not None:
                listen = {"off": False, "0": False, "false": False,
                          "on": True, "1": True, "true": True}[str(listen).lower()]
            for_ms = int(params["for"]) if "for" in params else None
            drop = str(params.get("drop", "1")).lower() not in ("0", "false", "no")
        except (ValueError, KeyError) as e:
            self.respond(req, 400, b"bad mode: %s\n" % str(e).encode())
            return True
        with mode.lock:
            if str(params.get("reset", "")).lower() in ("1", "true", "yes"):
                mode.health, mode.all = "default", "ok"
                mode.share, mode.acc = 1.0, 0.0
            if health is not None:
                mode.health = health
            if all_ is not None:
                mode.all = all_
                mode.acc = 0.0
            if share is not None:
                mode.share, mode.acc = share, 0.0
        if listen is False:
            self.server.stop_listening(drop=drop, keep=self)
            if for_ms is not None:
                t = threading.Timer(for_ms / 1000.0, self.server.start_listening)
                t.daemon = True
                t.start()
        elif listen is True:
            self.server.start_listening()
        doc = mode.doc()
        doc["listening"] = self.server.listening
        self.respond(req, 200, json.dumps(doc).encode() + b"\n",
                     ctype="application/json")
        return True

    def send_chunked(self, req, data):
        head = ("HTTP/1.1 200 OK\r\nX-Upstream: %s\r\n"
                "Content-Type: application/octet-stream\r\n"
                "Transfer-Encoding: chunked\r\n" % self.name)
        if req.version == "HTTP/1.0":
            # 1.0 clients cannot take chunked: close-delimited instead.
            self.send((head.replace("Transfer-Encoding: chunked\r\n", "") +
                       "Connection: close\r\n\r\n").encode() + data)
            raise PeerClosed()
        out = bytearray(head.encode() + b"\r\n")
        if req.method != "HEAD":
            sizes = [1, 10, 100, 1000, 4096, 16384, 65536]
            pos, k = 0, 0
            while pos < len(data):
                n = min(sizes[k % len(sizes)], len(data) - pos)
                out += b"%x\r\n" % n + data[pos:pos + n] + b"\r\n"
                pos += n
                k += 1
                if len(out) > 256 * 1024:
                    self.send(bytes(out))
                    out = bytearray()
            out += b"0\r\n\r\n"
        self.send(bytes(out))

    def drain(self, seconds):
        """Reads and discards for at most SECONDS or until the peer closes,
        so that closing does not reset what was just sent."""
        try:
            self.sock.shutdown(socket.SHUT_WR)
        except OSError:
            return
        deadline = time.monotonic() + seconds
        self.sock.settimeout(0.5)
        while time.monotonic() < deadline:
            try:
                if not self.sock.recv(65536):
                    return
            except (socket.timeout, TimeoutError):
                continue
            except OSError:
                return

    def hang(self):
        """Waits until the peer closes (bounded by IDLE_TIMEOUT)."""
        deadline = time.monotonic() + IDLE_TIMEOUT
        self.sock.settimeout(1.0)
        while time.monotonic() < deadline:
            try:
                if not self.sock.recv(65536):
                    return
            except (socket.timeout, TimeoutError):
                continue
            except OSError:
                return


class Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128

    def __init__(self, host, port, name):
        super().__init__((host, port), Handler)
        self.upstream_name = name
        self.stats = Stats()
        self.mode = Mode()
        self.conns = set()
        self.conns_lock = threading.Lock()
        self.listen_lock = threading.Lock()
        self.listening = True
        self.serving = threading.Event()   # set while it should listen
        self.serving.set()

    def handle_error(self, request, client_address):
        pass   # a peer that went away is part of the tests

    def stop_listening(self, drop=True, keep=None):
        """Closes the listening socket, so that connections are refused;
        with DROP, ends every open connection but KEEP (a Handler)."""
        with self.listen_lock:
            if self.listening:
                self.serving.clear()
                self.shutdown()          # the accept loop returns
                self.socket.close()
                self.listening = False
        if drop:
            with self.conns_lock:
                others = [h for h in self.conns if h is not keep]
            for h in others:
                try:
                    h.sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def start_listening(self):
        """Listens again on the same address."""
        with self.listen_lock:
            if self.listening:
                return
            deadline = time.monotonic() + 5
            while True:
                self.socket = socket.socket(self.address_family, self.socket_type)
                try:
                    self.server_bind()
                    self.server_activate()
                    break
                except OSError:
                    self.socket.close()
                    if time.monotonic() >= deadline:
                        raise
                    time.sleep(0.05)
            self.listening = True
            self.serving.set()

    def run(self):
        """The accept loop, paused while not listening."""
        while True:
            if not self.serving.wait(0.2):
                continue
            try:
                self.serve_forever(poll_interval=0.05)
            except (OSError, ValueError):
                time.sleep(0.01)   # the socket was closed under the loop


def serve(host, port, name, ready=None):
    srv = Server(host, port, name)
    if ready is not None:
        ready(srv)

    def on_signal(signum, frame):
        if signum == signal.SIGUSR1:
            target = srv.stop_listening
        else:
            target = srv.start_listening
        threading.Thread(target=target, daemon=True).start()

    signal.signal(signal.SIGUSR1, on_signal)
    signal.signal(signal.SIGUSR2, on_signal)
    srv.run()


def main():
    ap = argparse.ArgumentParser(description="zdm test upstream server")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--name", default="upstream")
    ap.add_argument("--host", default="127.0.0.1")
    args = ap.parse_args()

    def ready(srv):
        print("LISTENING %d" % srv.server_address[1], flush=True)

    try:
        serve(args.host, args.port, args.name, ready)
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
