"""A raw upstream for the request-smuggling tests, and the strict HTTP/1.1
reader it reads every forwarded byte with.

RawBackend listens on a free loopback port and records, per upstream
connection, every byte zdmd sends. It reads them with strict_request(): one
message at a time, exactly as RFC 9112 frames it and with nothing a lenient
reader would have to guess at (no obs-fold, no bare CR or LF, one framing
header, Transfer-Encoding exactly "chunked", Host exactly once in HTTP/1.1,
no hop-by-hop header, an origin-form target of RFC 3986 bytes). What it
cannot read that way is recorded as a violation and the connection closed.
Each request read is answered 200 with a body naming it (echo_body), or,
for a target registered with script(), with those bytes as they are.

settle() returns once every byte written to the backend so far has been
read and parsed, so that a test can count what reached it.
"""

import hashlib
import re
import selectors
import socket
import threading

HOST = "127.0.0.1"

TOKEN = rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+"
QUOTED = rb'"(?:[\t !#-\[\]-~\x80-\xff]|\\[\t -~\x80-\xff])*"'
CHUNK_EXT = rb"(?:[ \t]*;[ \t]*" + TOKEN + rb"(?:[ \t]*=[ \t]*(?:" + TOKEN + rb"|" + QUOTED + rb"))?)*"
CHUNK_LINE = re.compile(rb"([0-9A-Fa-f]{1,15})(" + CHUNK_EXT + rb")\Z")
FIELD_LINE = re.compile(rb"(" + TOKEN + rb"):[ \t]*((?:[^\x00-\x08\x0a-\x1f\x7f]*[^\x00-\x20\x7f])?)[ \t]*\Z")
REQUEST_LINE = re.compile(rb"([A-Z]+) ([^ ]+) HTTP/1\.([01])\Z")
PCHARS = rb"A-Za-z0-9\-._~!$&'()*+,;=:@/?"
ORIGIN_FORM = re.compile(rb"/(?:[" + PCHARS + rb"]|%[0-9A-Fa-f]{2})*\Z")
HOST_VALUE = re.compile(rb"(?:\[[0-9A-Fa-f:.]+\]|(?:[A-Za-z0-9\-._~!$&'()*+;=]|%[0-9A-Fa-f]{2})+)(?::[0-9]*)?\Z")
# fields that must not reach an upstream (hop-by-hop, RFC 9110 §7.6.1), and
# those that must not be in a trailer section
HOP_BY_HOP = {b"keep-alive", b"proxy-connection", b"te", b"upgrade"}
NOT_IN_TRAILERS = {b"content-length", b"transfer-encoding", b"host", b"connection", b"keep-alive",
                   b"proxy-connection", b"te", b"trailer", b"upgrade", b"expect",
                   b"x-forwarded-for", b"x-real-ip", b"x-forwarded-proto"}
MAX_HEAD = 128 * 1024


class Incomplete(Exception):
    """More bytes are needed for one whole message."""


class Violation(Exception):
    """The bytes are not exactly one unambiguous request."""


class Request:
    def __init__(self):
        self.method = self.target = self.version = None
        self.fields = []        # (lowercase name, value) in order
        self.body = b""
        self.chunked = False
        self.trailers = []
        self.raw = b""

    def get(self, name):
        vals = [v for n, v in self.fields if n == name]
        return vals[0] if len(vals) == 1 else None

    def count(self, name):
        return sum(1 for n, _ in self.fields if n == name)

    def __repr__(self):
        return "<%s %s %s host=%r body=%dB%s>" % (
            self.method.decode(), self.target.decode("latin-1"), self.version,
            self.get(b"host"), len(self.body), " chunked" if self.chunked else "")


def _lines(data, pos, end):
    """The CRLF-ended lines of data[pos:end] (end: the index of the blank
    line's CRLF); a bare CR or LF anywhere is a violation."""
    out = []
    while pos < end:
        i = data.find(b"\r\n", pos, end + 2)
        line = bytes(data[pos:i])
        if b"\r" in line or b"\n" in line:
            raise Violation("bare CR or LF in %r" % line)
        out.append(line)
        pos = i + 2
    return out


def _field(line, where):
    if line[:1] in (b" ", b"\t"):
        raise Violation("obs-fold or leading whitespace in the %s: %r" % (where, line))
    m = FIELD_LINE.match(line)
    if not m:
        raise Violation("malformed %s line %r" % (where, line))
    return m.group(1).lower(), m.group(2)


def _crlf_line(data, pos, what):
    i = data.find(b"\r\n", pos)
    if i < 0:
        if len(data) - pos > 4096 or b"\n" in data[pos:]:
            raise Violation("no CRLF ending the %s" % what)
        raise Incomplete()
    line = bytes(data[pos:i])
    if b"\r" in line or b"\n" in line:
        raise Violation("bare CR or LF in the %s %r" % (what, line))
    return line, i + 2


def strict_request(data, pos=0):
    """Reads one request from data[pos:]: (Request, position after it).
    Raises Incomplete or Violation."""
    r = Request()
    start = pos
    end = data.find(b"\r\n\r\n", pos)
    if end < 0:
        if len(data) - pos > MAX_HEAD:
            raise Violation("no end of the header section")
        raise Incomplete()
    lines = _lines(data, pos, end)
    if not lines:
        raise Violation("an empty line where a request line belongs")
    m = REQUEST_LINE.match(lines[0])
    if not m:
        raise Violation("malformed request line %r" % lines[0])
    r.method, r.target, r.version = m.group(1), m.group(2), "1." + m.group(3).decode()
    if not (ORIGIN_FORM.match(r.target) or (r.target == b"*" and r.method == b"OPTIONS")):
        raise Violation("not an origin-form target of RFC 3986 bytes: %r" % r.target)
    for line in lines[1:]:
        r.fields.append(_field(line, "header"))
    names = [n for n, _ in r.fields]
    nhost = names.count(b"host")
    if nhost > 1 or (r.version == "1.1" and nhost != 1):
        raise Violation("%d Host fields in an HTTP/%s request" % (nhost, r.version))
    host = r.get(b"host")
    if host and not HOST_VALUE.match(host):
        raise Violation("invalid Host %r" % host)
    # zdmd writes Connection itself: keep-alive to HTTP/1.0 upstreams,
    # upgrade with an Upgrade it forwards
    conn = [v.lower() for n, v in r.fields if n == b"connection"]
    allowed = {b"upgrade", b"keep-alive"} if r.version == "1.0" else {b"upgrade"}
    if len(conn) > 1 or any(v not in allowed for v in conn):
        raise Violation("Connection %r forwarded" % conn)
    for n in HOP_BY_HOP:
        if n in names and not (n == b"upgrade" and conn == [b"upgrade"]):
            raise Violation("hop-by-hop field %r forwarded" % n)
    for n in (b"x-forwarded-for", b"x-real-ip", b"x-forwarded-proto"):
        if names.count(n) != 1:
            raise Violation("%d %s fields" % (names.count(n), n.decode()))
    ncl, nte = names.count(b"content-length"), names.count(b"transfer-encoding")
    if ncl > 1 or nte > 1 or (ncl and nte):
        raise Violation("ambiguous framing: %d Content-Length, %d Transfer-Encoding" % (ncl, nte))
    pos = end + 4
    if nte:
        if r.version == "1.0":
            raise Violation("Transfer-Encoding in HTTP/1.0")
        if r.get(b"transfer-encoding") != b"chunked":
            raise Violation("Transfer-Encoding %r, not exactly chunked" % r.get(b"transfer-encoding"))
        r.chunked = True
        body = bytearray()
        while True:
            line, pos = _crlf_line(data, pos, "chunk size line")
            m = CHUNK_LINE.match(line)
            if not m:
                raise Violation("malformed chunk size line %r" % line)
            size = int(m.group(1), 16)
            if size == 0:
                break
            if len(data) < pos + size + 2:
                raise Incomplete()
            body += data[pos:pos + size]
            if data[pos + size:pos + size + 2] != b"\r\n":
                raise Violation("chunk data not followed by CRLF")
            pos += size + 2
        while True:
            line, pos = _crlf_line(data, pos, "trailer line")
            if not line:
                break
            n, v = _field(line, "trailer")
            if n in NOT_IN_TRAILERS:
                raise Violation("%r in the trailer section" % n)
            r.trailers.append((n, v))
        r.body = bytes(body)
    elif ncl:
        v = r.get(b"content-length")
        if not re.match(rb"[0-9]{1,15}\Z", v):
            raise Violation("Content-Length %r" % v)
        n = int(v)
        if len(data) < pos + n:
            raise Incomplete()
        r.body = bytes(data[pos:pos + n])
        pos += n
    r.raw = bytes(data[start:pos])
    return r, pos


def echo_body(method, target, host, body):
    """What the backend answers a request with: it names the request."""
    return b"%s %s host=%s len=%d sha=%s" % (
        method, target, host if host is not None else b"-", len(body),
        hashlib.sha1(body).hexdigest()[:12].encode())


class Conn:
    def __init__(self, sock, n):
        self.sock = sock
        self.n = n
        self.data = bytearray()
        self.pos = 0
        self.requests = []
        self.violations = []
        self.closed = False

    def leftover(self):
        return bytes(self.data[self.pos:])


class RawBackend:
    def __init__(self):
        self.lsock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.lsock.bind((HOST, 0))
        self.lsock.listen(128)
        self.lsock.setblocking(False)
        self.port = self.lsock.getsockname()[1]
        self.address = "%s:%d" % (HOST, self.port)
        self.conns = []
        self.scripts = {}
        self.lock = threading.Lock()
        self.waiters = []
        self.stopping = False
        self.wake_r, self.wake_w = socket.socketpair()
        self.wake_r.setblocking(False)
        self.sel = selectors.DefaultSelector()
        self.sel.register(self.lsock, selectors.EVENT_READ, "listen")
        self.sel.register(self.wake_r, selectors.EVENT_READ, "wake")
        self.thread = threading.Thread(target=self._loop, daemon=True)
        self.thread.start()

    def script(self, target, raw):
        """A request for TARGET is answered with RAW, then the connection is
        closed."""
        with self.lock:
            self.scripts[target] = raw

    def stop(self):
        self.stopping = True
        self.wake_w.send(b"x")
        self.thread.join(5)

    def settle(self, timeout=3.0):
        """Returns once the backend has read (and parsed) every byte written
        to it before this call."""
        ev = threading.Event()
        with self.lock:
            self.waiters.append(ev)
        self.wake_w.send(b"x")
        return ev.wait(timeout)

    def mark(self):
        """Where the record stands: pass it to since()."""
        with self.lock:
            return [(c, len(c.requests), len(c.violations), len(c.data)) for c in self.conns]

    def since(self, mark):
        """(requests, violations, leftovers) recorded after MARK: requests
        and violations in the order of their connections, and the unread
        bytes of every connection that got bytes since and holds some it
        could not read as a whole request."""
        with self.lock:
            reqs, viol, left = [], [], []
            before = {id(c): (nr, nv, nd) for c, nr, nv, nd in mark}
            for c in self.conns:
                nr, nv, nd = before.get(id(c), (0, 0, 0))
                reqs += c.requests[nr:]
                viol += ["conn %d: %s" % (c.n, v) for v in c.violations[nv:]]
                if len(c.data) > nd and c.leftover() and not c.violations[nv:]:
                    left.append("conn %d: %r" % (c.n, c.leftover()[:200]))
            return reqs, viol, left

    # -- the event loop ------------------------------------------------------

    def _loop(self):
        while not self.stopping:
            for key, _ in self.sel.select(0.05):
                if key.data == "listen":
                    self._accept()
                elif key.data == "wake":
                    try:
                        while self.wake_r.recv(4096):
                            pass
                    except BlockingIOError:
                        pass
                else:
                    self._read(key.data)
            with self.lock:
                waiters = self.waiters
            if waiters and not any(k.data != "wake" for k, _ in self.sel.select(0)):
                with self.lock:
                    self.waiters = []
                for ev in waiters:
                    ev.set()
        for key in list(self.sel.get_map().values()):
            key.fileobj.close()

    def _accept(self):
        while True:
            try:
                s, _ = self.lsock.accept()
            except BlockingIOError:
                return
            s.setblocking(False)
            with self.lock:
                c = Conn(s, len(self.conns))
                self.conns.append(c)
            self.sel.register(s, selectors.EVENT_READ, c)

    def _close(self, c):
        if not c.closed:
            c.closed = True
            self.sel.unregister(c.sock)
            c.sock.close()

    def _read(self, c):
        try:
            d = c.sock.recv(262144)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            d = b""
        if not d:
            self._close(c)
            return
        with self.lock:
            c.data += d
        while not c.closed:
            try:
                r, pos = strict_request(c.data, c.pos)
            except Incomplete:
                return
            except Violation as e:
                with self.lock:
                    c.violations.append(str(e))
                self._close(c)
                return
            with self.lock:
                c.requests.append(r)
                c.pos = pos
                raw = self.scripts.get(r.target)
            if raw is not None:
                self._send(c, raw)
                self._close(c)
                return
            body = echo_body(r.method, r.target, r.get(b"host"), r.body)
            self._send(c, b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: %d\r\n"
                          b"\r\n%s" % (len(body), body))

    def _send(self, c, data):
        c.sock.setblocking(True)
        try:
            c.sock.sendall(data)
        except OSError:
            pass
        c.sock.setblocking(False)
