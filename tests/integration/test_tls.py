#!/usr/bin/env python3
"""TLS termination on listeners (SPEC §3 listen tls; issue 6).

A listener with `tls` terminates TLS: `{cert, key}` (full chains), or
`certs: [...]` picked by SNI from the certificates' names (subjectAltName
DNS names, wildcards for one label; the first certificate is the default),
`min_version` (default 1.2), `ciphers`/`ciphersuites`, ALPN http/1.1, session
resumption, X-Forwarded-Proto: https. Bad input (plain HTTP, garbage, a
handshake that stalls) closes within timeouts.request_header, never affects
other clients and is counted in metrics. Certificates load when the config
is checked: a key that does not match, an unreadable file, a file that is
not PEM are errors with FILE:LINE:COL; on reload the new certificates serve
new connections, established ones go on, and a bad one keeps the old.

Certificates are made now with the openssl command (tlsutil.PKI). Clients:
curl --cacert, openssl s_client, python ssl.
"""

import os
import re
import signal
import socket
import time

from zdmtest import (TAP, Upstream, Zdmd, Raw, Client, Closed, wait_for, free_port, zdmctl,
                     run_zdmd, tmpdir, curl, content, sha256, build_config)
from faults import section, need, metric, wait_port, log_lines, wait_log
from tlsutil import (PKI, tls_listen, s_client, peer_cert, TLSClient, https_get, client_hello,
                     client_context)

REQUEST_HEADER = 1.0
tap = TAP(deadline=58)
T_START = time.monotonic()

pki = PKI()
live = tmpdir()                      # the files the config names; replaced on rotation
A_PEM, A_KEY = os.path.join(live, "a.pem"), os.path.join(live, "a.key")
pki.copy(pki.a_pem, A_PEM)
pki.copy(pki.a_key, A_KEY)

up = Upstream("u")
P1, P2, P3, ADMIN = free_port(), free_port(), free_port(), free_port()
spec = {
    "listen": [
        # default a.test (a, *.a.test), b.test (full chain through an intermediate)
        # and c.test (a CN, no subjectAltName)
        tls_listen(P1, {"certs": [{"cert": A_PEM, "key": A_KEY},
                                  {"cert": pki.b_pem, "key": pki.b_key},
                                  {"cert": pki.c_pem, "key": pki.c_key}],
                        "ciphers": "ECDHE-ECDSA-CHACHA20-POLY1305"}),
        # TLS 1.3 only, one suite; b.test is the default here
        tls_listen(P2, {"certs": [{"cert": pki.b_pem, "key": pki.b_key},
                                  {"cert": pki.a_pem, "key": pki.a_key}],
                        "min_version": "1.3",
                        "ciphersuites": "TLS_CHACHA20_POLY1305_SHA256"}),
        "127.0.0.1:%d" % P3,
    ],
    "admin": "127.0.0.1:%d" % ADMIN,
    "timeouts": {"request_header": Raw("1s"), "client_idle": Raw("10s")},
    "pools": {"old": [up]},
}
z = Zdmd(tap, spec)


def resolve(port, name="a.test"):
    return ["--cacert", pki.ca, "--resolve", "%s:%d:127.0.0.1" % (name, port),
            "https://%s:%d" % (name, port)]


def curl_ok(port=P1, name="a.test", path="/", extra=(), timeout=10):
    args = list(extra) + resolve(port, name)
    args[-1] += path
    return curl(args, timeout=timeout)


def handshake_failures():
    """The sum of the samples on /metrics that count TLS handshakes which
    failed (a name with "handshake", and "fail" or "error" in the name or
    the labels), or None when there is none."""
    c = Client(ADMIN, timeout=5)
    try:
        r = c.request("GET", "/metrics", [("Connection", "close")])
    finally:
        c.close()
    total, seen = 0.0, False
    for line in r.body.decode(errors="replace").splitlines():
        m = re.match(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})?\s+(\S+)$", line)
        if not m or "handshake" not in m.group(1) or \
                m.group(1).endswith(("_bucket", "_sum", "_count")):
            continue
        if re.search(r"fail|error|stall|timeout", m.group(1) + (m.group(2) or "")):
            total += float(m.group(3))
            seen = True
    return total if seen else None


# -- the basics ---------------------------------------------------------------------

with section(tap, "curl over TLS"):
    rc, out, err = curl_ok(extra=["-v"])
    need(tap, rc == 0 and out == b"u\n",
         "curl --cacert CA https://a.test:PORT/ answers through zdmd (200 from the upstream)",
         "rc %r out %r\n%s" % (rc, out, err[-1500:]))
    tap.ok(re.search(r"ALPN.*(accepted|server accepted to use).*http/1\.1", err),
           "curl: ALPN http/1.1 negotiated", err[-1500:])
    tap.ok(re.search(r"subject: CN=a\.test", err), "curl: the a.test certificate is served",
           err[-1500:])
    rc, out, err = curl_ok(name="b.test", extra=["-o", "/dev/null", "-w", "%{http_code}"])
    tap.ok(rc == 0 and out == b"200",
           "curl to b.test verifies against the root CA alone: the intermediate is sent "
           "(full chain)", "rc %r out %r %s" % (rc, out, err))

with section(tap, "X-Forwarded-Proto"):
    import json
    r = https_get(P1, "/headers", pki.ca)
    hs = json.loads(r.body)["headers"]
    xfp = [v for n, v in hs if n.lower() == "x-forwarded-proto"]
    tap.eq(xfp, ["https"], "X-Forwarded-Proto: https reaches the upstream over a TLS listener")
    tap.ok(any(n.lower() == "x-forwarded-for" for n, v in hs), "X-Forwarded-For is added too")
    with Client(P3) as c:
        r = c.request("GET", "/headers")
    xfp = [v for n, v in json.loads(r.body)["headers"] if n.lower() == "x-forwarded-proto"]
    tap.eq(xfp, ["http"], "the plain listener of the same zdmd still says http")

with section(tap, "SNI"):
    cases = [(P1, "a.test", "a.test"), (P1, "b.test", "b.test"), (P1, "B.Test", "b.test"),
             (P1, "x.a.test", "a.test"), (P1, "c.test", "c.test"), (P1, "x.c.test", "a.test"), (P1, "unknown.test", "a.test"), (P1, None, "a.test"),
             (P2, "unknown.test", "b.test"), (P2, None, "b.test"), (P2, "a.test", "a.test"),
             (P2, "x.a.test", "a.test"), (P2, "y.x.a.test", "b.test")]
    for port, name, want in cases:
        s = s_client(port, name, ca=pki.ca)
        tap.ok(s.cn == want and s.http_status == 200,
               "listener %d, SNI %s -> certificate CN=%s, request answered"
               % (1 if port == P1 else 2, name or "(none)", want), s.tail())
    s = s_client(P1, "b.test", ca=pki.ca)
    tap.eq(s.verify, 0, "s_client -servername b.test: the chain verifies (Verify return code 0)",
           s.tail())

with section(tap, "ALPN"):
    s = s_client(P1, "a.test", ca=pki.ca, extra=["-alpn", "http/1.1"])
    tap.eq(s.alpn, "http/1.1", "s_client -alpn http/1.1: http/1.1 selected", s.tail())
    s = s_client(P1, "a.test", ca=pki.ca, extra=["-alpn", "h2,http/1.1"])
    tap.eq(s.alpn, "http/1.1", "a client offering h2 and http/1.1 gets http/1.1", s.tail())
    s = s_client(P1, "a.test", ca=pki.ca, extra=["-alpn", "h2"])
    tap.ok(s.handshake and s.alpn is None and s.http_status == 200,
           "a client offering only h2: no ALPN selected (never h2), the handshake goes on",
           s.tail())

with section(tap, "versions and ciphers"):
    s = s_client(P2, "a.test", ca=pki.ca, extra=["-tls1_2"])
    tap.ok(not s.handshake and s.http_status is None,
           "min_version 1.3: a TLS 1.2-only client is refused", s.tail())
    s = s_client(P2, "a.test", ca=pki.ca, extra=["-tls1_3"])
    tap.ok(s.handshake and s.protocol == "TLSv1.3" and s.http_status == 200,
           "min_version 1.3: a TLS 1.3 client is served", s.tail())
    tap.eq(s.cipher, "TLS_CHACHA20_POLY1305_SHA256", "ciphersuites is applied (TLS 1.3)",
           s.tail())
    s = s_client(P1, "a.test", ca=pki.ca, extra=["-tls1_2"])
    tap.ok(s.handshake and s.protocol == "TLSv1.2" and s.http_status == 200,
           "default min_version 1.2: a TLS 1.2 client is served", s.tail())
    tap.eq(s.cipher, "ECDHE-ECDSA-CHACHA20-POLY1305", "ciphers is applied (TLS 1.2)", s.tail())
    s = s_client(P1, "a.test", ca=pki.ca, extra=["-tls1_2", "-cipher", "ECDHE-ECDSA-AES128-GCM-SHA256"])
    tap.ok(not s.handshake, "a TLS 1.2 client with no cipher in the listener's list is refused",
           s.tail())

# -- HTTP over TLS ----------------------------------------------------------------------

with section(tap, "keep-alive over TLS"):
    u0 = up.stats()["connections"]
    with TLSClient(P1, pki.ca, "a.test") as c:
        got = []
        for i in range(6):
            if i % 2:
                r = c.request("POST", "/echo", body=b"x%d" % i, host="a.test")
                got.append((r.status, r.body))
            else:
                r = c.request("GET", "/", host="a.test")
                got.append((r.status, r.body))
        tap.eq(got, [(200, b"u\n"), (200, b"x1"), (200, b"u\n"), (200, b"x3"), (200, b"u\n"),
                     (200, b"x5")], "6 requests on one TLS connection, each answered")
        tap.ok(not c.eof, "the TLS connection stays open between requests")
        # three requests written at once (pipelined): three responses in order
        reqs = b"".join(b"GET /size/%d HTTP/1.1\r\nHost: a.test\r\n\r\n" % n
                        for n in (10, 70000, 5))
        c.send(reqs)
        sizes = [len(c.read_response().body) for _ in range(3)]
        tap.eq(sizes, [10, 70000, 5], "three pipelined requests over TLS: three responses in order")

with section(tap, "1 MiB both ways"):
    body = os.urandom(1 << 20)
    with TLSClient(P1, pki.ca, "a.test", timeout=15) as c:
        r = c.request("POST", "/echo", body=body, host="a.test")
        tap.ok(r.status == 200 and r.body == body and r.get("x-body-sha256") == sha256(body),
               "1 MiB request body and its echo cross TLS byte-exact",
               "status %r len %d sha %r" % (r.status, len(r.body), r.get("x-body-sha256")))
        r = c.request("GET", "/size/%d" % (1 << 20), host="a.test")
        tap.ok(r.status == 200 and r.body == content(1 << 20),
               "1 MiB response body over TLS byte-exact", "status %r len %d" % (r.status, len(r.body)))
        r = c.request("GET", "/chunked/300000", host="a.test")
        tap.ok(r.status == 200 and r.body == content(300000),
               "a chunked response over TLS byte-exact on the same connection")

with section(tap, "uploads over TLS, repeated"):
    # Request bodies are read from TLS while the upstream side drains:
    # each upload must finish, whatever way its last TLS record falls.
    stalled, t0 = [], time.monotonic()
    for i in range(40):
        body = os.urandom((1 << 20) + 977 * i)
        try:
            with TLSClient(P1, pki.ca, "a.test", timeout=3) as c:
                r = c.request("POST", "/echo", body=body, host="a.test")
                if r.status != 200 or r.get("x-body-sha256") != sha256(body):
                    stalled.append((i, r.status))
        except (Closed, OSError) as e:
            stalled.append((i, repr(e)))
        if len(stalled) >= 2 or time.monotonic() - t0 > 8:
            break
    tap.ok(not stalled, "40 uploads of ~1 MiB over TLS (new connection each): all answered "
           "(%d done in %.1fs)" % (i + 1, time.monotonic() - t0),
           "stalled or failed: %r (the upstream gets all but the last ~16 KiB; zdmd closes at "
           "timeouts.client_idle without an answer)" % stalled)

with section(tap, "a slow reader and a vanishing client"):
    n = 8 << 20
    with TLSClient(P1, pki.ca, "a.test", timeout=10) as c:
        c.send(b"GET /size/%d HTTP/1.1\r\nHost: a.test\r\n\r\n" % n)
        got = bytearray()
        head = None
        t0 = time.monotonic()
        while time.monotonic() - t0 < 15:
            data = c.sock.recv(32768)
            if not data:
                break
            got += data
            if head is None and b"\r\n\r\n" in got:
                i = got.index(b"\r\n\r\n") + 4
                head, got = bytes(got[:i]), got[i:]
            if head is not None and len(got) >= n:
                break
            time.sleep(0.002)
        tap.ok(head and head.startswith(b"HTTP/1.1 200") and bytes(got) == content(n),
               "8 MiB to a client reading slowly over TLS: byte-exact (%.1fs)"
               % (time.monotonic() - t0), "head %r, %d bytes" % (head, len(got)))
        r = c.request("GET", "/", host="a.test")
        tap.eq(r.status, 200, "the connection goes on after it")
    c = TLSClient(P1, pki.ca, "a.test", timeout=5)
    c.send(b"GET /size/%d HTTP/1.1\r\nHost: a.test\r\n\r\n" % n)
    c.sock.recv(65536)
    c.reset()                           # RST, no close_notify
    rc, out, err = curl_ok()
    tap.ok(rc == 0 and out == b"u\n", "a TLS client that resets mid-response harms no one", err)

with section(tap, "concurrent handshakes"):
    import concurrent.futures

    def one(i):
        name = ("a.test", "b.test", "x.a.test")[i % 3]
        try:
            with TLSClient(P1, pki.ca, name, timeout=10) as c:
                r = c.request("GET", "/", host=name)
                return r.status, c.cert_cn()
        except Exception as e:
            return repr(e), None
    with concurrent.futures.ThreadPoolExecutor(40) as ex:
        res = list(ex.map(one, range(60)))
    want = [(200, ("a.test", "b.test", "a.test")[i % 3]) for i in range(60)]
    tap.eq(res, want, "60 TLS clients, 40 at a time: each served with its certificate")

with section(tap, "session resumption"):
    d = tmpdir()
    for proto, name in (("-tls1_3", "a.test"), ("-tls1_2", "a.test"), ("-tls1_3", "b.test")):
        sess = os.path.join(d, "sess%s%s" % (proto, name))
        s1 = s_client(P1, name, ca=pki.ca, extra=[proto, "-sess_out", sess])
        s2 = s_client(P1, name, ca=pki.ca, extra=[proto, "-sess_in", sess])
        tap.ok(s1.handshake and not s1.reused and s2.reused and s2.http_status == 200,
               "%s, SNI %s: a session saved with -sess_out is resumed with -sess_in (Reused)"
               % (proto[1:], name), "first: %r\nsecond: %r\n%s" % (s1, s2, s2.tail()))

# -- bad input ----------------------------------------------------------------------------

f0 = handshake_failures()
conns0 = metric(ADMIN, "zdm_client_connections")
fds0 = z.fds()
N_BAD = 0


def closes(c, bound):
    """Seconds until the peer closes C, or None if not within BOUND."""
    t0 = time.monotonic()
    return time.monotonic() - t0 if c.wait_closed(bound) else None


with section(tap, "plain HTTP to the TLS port"):
    t0 = time.monotonic()
    with Client(P1, timeout=5) as c:
        c.send(b"GET / HTTP/1.1\r\nHost: a.test\r\n\r\n")
        closed = c.wait_closed(3)
        dt = time.monotonic() - t0
        N_BAD += 1
        tap.ok(closed and dt < REQUEST_HEADER,
               "a plain HTTP request to the TLS port: closed at once (%.2fs)" % dt)
        tap.ok(b"HTTP/1.1 200" not in bytes(c.buf) and b"u\n" not in bytes(c.buf),
               "it is never forwarded to the upstream", bytes(c.buf)[:200])
    rc, out, err = curl_ok()
    tap.ok(rc == 0 and out == b"u\n", "zdmd still serves TLS clients after it", err)

with section(tap, "garbage"):
    for label, junk in (("random bytes", os.urandom(600)),
                        ("a TLS record header with a bad version",
                         b"\x16\x09\x09\x00\x10" + os.urandom(16))):
        t0 = time.monotonic()
        with Client(P1, timeout=5) as c:
            try:
                c.send(junk)
            except OSError:
                pass
            closed = c.wait_closed(3)
            dt = time.monotonic() - t0
        N_BAD += 1
        tap.ok(closed and dt < REQUEST_HEADER, "%s: closed at once (%.2fs)" % (label, dt))

def peer_closed(c):
    """Whether the peer of the plain Client C has closed (no wait)."""
    import select
    while select.select([c.sock], [], [], 0)[0]:
        try:
            data = c.sock.recv(65536)
        except OSError:
            data = b""
        if not data:
            return True
        c.buf += data
    return False


with section(tap, "stalled handshakes"):
    hello = client_hello("a.test")
    need(tap, len(hello) > 100 and hello[0] == 0x16, "a ClientHello was made in memory")
    stallers = []
    for label, data in (("TCP connect, nothing sent", b""),
                        ("half a ClientHello", hello[:len(hello) // 2]),
                        ("a whole ClientHello, then silence", hello),
                        ("a TLS record header only", hello[:5])):
        c = Client(P1, timeout=5)
        if data:
            c.send(data)
        stallers.append((label, c, time.monotonic()))
    # another client meanwhile, served at once
    t0 = time.monotonic()
    rc, out, err = curl_ok()
    dt = time.monotonic() - t0
    tap.ok(rc == 0 and out == b"u\n" and dt < 0.8,
           "while 4 handshakes stall, another client is served (%.2fs)" % dt, err)
    # and one that sends its ClientHello a byte at a time, 4 per second
    drip = Client(P1, timeout=5)
    drip_t0 = time.monotonic()
    drip.send(hello[:1])
    sent, next_drip = 1, drip_t0 + 0.25
    closed_at = {}
    watch = [(label, c, t0) for label, c, t0 in stallers] + [("drip", drip, drip_t0)]
    deadline = time.monotonic() + REQUEST_HEADER + 2.5
    while len(closed_at) < len(watch) and time.monotonic() < deadline:
        if "drip" not in closed_at and time.monotonic() >= next_drip and sent < len(hello):
            try:
                drip.send(hello[sent:sent + 1])
                sent += 1
            except OSError:
                closed_at["drip"] = time.monotonic() - drip_t0
            next_drip += 0.25
        for label, c, t0 in watch:
            if label not in closed_at and peer_closed(c):
                closed_at[label] = time.monotonic() - t0
        time.sleep(0.01)
    for label, c, t0 in stallers:
        N_BAD += 1
        dt = closed_at.get(label)
        tap.ok(dt is not None and REQUEST_HEADER - 0.2 <= dt <= REQUEST_HEADER + 1.0,
               "%s: closed after timeouts.request_header (%s, want ~%.1fs)"
               % (label, "never" if dt is None else "%.2fs" % dt, REQUEST_HEADER))
        c.close()
    N_BAD += 1
    dt = closed_at.get("drip")
    tap.ok(dt is not None and dt <= REQUEST_HEADER + 1.0,
           "a ClientHello dripped a byte every 250ms is closed within timeouts.request_header "
           "of the connect (%s, %d of %d bytes sent)"
           % ("still open after %.2fs" % (time.monotonic() - drip_t0) if dt is None
              else "closed after %.2fs" % dt, sent, len(hello)))
    drip.close()
    rc, out, err = curl_ok()
    tap.ok(rc == 0 and out == b"u\n", "zdmd serves TLS clients after the stalls", err)

with section(tap, "bad input is counted and leaves nothing behind"):
    wait_for(lambda: (handshake_failures() or 0) >= (f0 or 0) + N_BAD - 1, timeout=1)
    f1 = handshake_failures()
    tap.ok(f0 is not None and f1 is not None and f1 - f0 >= N_BAD - 1,
           "failed and stalled TLS handshakes are counted in /metrics (%s -> %s after %d)"
           % (f0, f1, N_BAD),
           "no sample named like *handshake* with fail/error on /metrics" if f1 is None else None)
    ok = wait_for(lambda: metric(ADMIN, "zdm_client_connections") == conns0, timeout=3)
    tap.ok(ok, "zdm_client_connections is back to %s" % conns0,
           "now %s" % metric(ADMIN, "zdm_client_connections"))
    ok = wait_for(lambda: z.fds() <= fds0, timeout=3)
    tap.ok(ok, "zdmd's open descriptors are back to %d (now %s)" % (fds0, z.fds()))

# -- config errors ----------------------------------------------------------------------------


def check_config(label, tls, want, port=None):
    d = tmpdir()
    path = os.path.join(d, "zdm.yaml")
    cspec = {"listen": [tls_listen(port or free_port(), tls)], "pools": {"old": [up]}}
    text = build_config(free_port(), cspec, d)
    with open(path, "w") as f:
        f.write(text)
    rc, out, err = run_zdmd(["-t", "-c", path])
    lines = [ln for ln in err.splitlines() if ln.strip()]
    pos = [re.match(r"^%s:(\d+):(\d+): (.*)$" % re.escape(path), ln) for ln in lines]
    good = bool(lines) and all(pos) and rc == 1
    tap.ok(good and any(re.search(want, m.group(3)) for m in pos if m),
           "%s: zdmd -t exits 1 with FILE:LINE:COL: ...%s" % (label, want),
           "rc %r\nstdout %r\nstderr %s\nconfig:\n%s" % (rc, out, err, text))
    if good:
        tlines = text.splitlines()
        ln = int(pos[0].group(1))
        tap.ok(1 <= ln <= len(tlines) and re.search(r"tls|cert|key|min_version|cipher", tlines[ln - 1]),
               "%s: the position points into the listener's tls settings (line %d: %r)"
               % (label, ln, tlines[ln - 1] if 1 <= ln <= len(tlines) else None))
    return err


with section(tap, "config errors"):
    d = tmpdir()
    rc, out, err = run_zdmd(["-t", "-c", z.config_path])
    tap.ok(rc == 0 and "configuration OK" in out, "the running config checks OK", err)
    # The wording is OpenSSL's ("key values mismatch") or zdmd's ("does
    # not match certificate"): either names the key file.
    check_config("a key that does not match", {"cert": pki.a_pem, "key": pki.other_key},
                 r"other\.key.*(does not match|mismatch)")
    check_config("a key of another certificate in certs[1]",
                 {"certs": [{"cert": pki.a_pem, "key": pki.a_key},
                            {"cert": pki.b_pem, "key": pki.a_key}]},
                 r"certs\[1\].*(does not match|mismatch)")
    check_config("an unreadable certificate file",
                 {"cert": os.path.join(d, "missing.pem"), "key": pki.a_key}, r"missing\.pem")
    check_config("a certificate file that is not PEM", {"cert": pki.junk, "key": pki.a_key},
                 r"junk\.pem")
    check_config("a key file that is not PEM", {"cert": pki.a_pem, "key": pki.junk},
                 r"junk\.pem")
    check_config("min_version 1.1", {"cert": pki.a_pem, "key": pki.a_key, "min_version": "1.1"},
                 r"1\.1|min_version")
    check_config("a cipher list with nothing usable",
                 {"cert": pki.a_pem, "key": pki.a_key, "ciphers": "NO-SUCH-CIPHER"}, r"cipher")
    check_config("cert without key", {"cert": pki.a_pem}, r"key")

# -- rotation by reload --------------------------------------------------------------------------

with section(tap, "certificate rotation"):
    cn, serial = peer_cert(P1, "a.test")
    need(tap, (cn, serial) == ("a.test", 0x1001), "before: a.test, serial 0x1001 is served",
         "got %r %r" % (cn, serial))
    k = TLSClient(P1, pki.ca, "a.test", timeout=5)
    r = k.request("GET", "/", host="a.test")
    need(tap, r.status == 200, "a keep-alive TLS connection is open")
    pki.copy(pki.a2_pem, A_PEM)
    pki.copy(pki.a2_key, A_KEY)
    rc, out, err = zdmctl(["reload"], sock=z.sock_path)
    tap.eq(rc, 0, "zdmctl reload with the new certificate files: applied", out + err)
    cn, serial = peer_cert(P1, "a.test")
    tap.eq((cn, serial), ("rot.a.test", 0x2002), "new connections get the new certificate")
    rc, out, err = curl_ok()
    tap.ok(rc == 0 and out == b"u\n", "curl verifies the new certificate", err)
    tap.eq(peer_cert(P1, "b.test")[0], "b.test", "SNI still picks b.test after the reload")
    got = [k.request("GET", "/", host="a.test").status for _ in range(3)]
    tap.eq(got, [200, 200, 200], "the connection established before the reload keeps working")
    tap.eq(k.cert_cn(), "a.test", "... on its old certificate")

    # back to the first one with SIGHUP
    pki.copy(pki.a_pem, A_PEM)
    pki.copy(pki.a_key, A_KEY)
    z.signal(signal.SIGHUP)
    ok = wait_for(lambda: peer_cert(P1, "a.test")[1] == 0x1001, timeout=5, interval=0.1)
    tap.ok(ok, "SIGHUP: new connections get the replaced certificate again")

    # a broken key: refused, the running certificate stays
    pki.copy(pki.a2_pem, A_PEM)
    pki.copy(pki.other_key, A_KEY)
    rc, out, err = zdmctl(["reload"], sock=z.sock_path)
    tap.ok(rc == 1 and re.search(r"%s:\d+:\d+: .*a\.key.*(does not match|mismatch)"
                                 % re.escape(z.config_path), out + err),
           "reload with a key that does not match: refused with FILE:LINE:COL (zdmctl exit 1)",
           "rc %r out %r err %r" % (rc, out, err))
    tap.ok(wait_log(z, r"\[error\] .*a\.key.*(does not match|mismatch)"),
           "the error is logged with its position")
    tap.eq(peer_cert(P1, "a.test"), ("a.test", 0x1001), "the running certificate is still served")
    pki.copy(pki.junk, A_KEY)
    rc, out, err = zdmctl(["reload"], sock=z.sock_path)
    tap.ok(rc == 1 and re.search(r"%s:\d+:\d+: .*a\.key" % re.escape(z.config_path), err),
           "reload with a key file that is not PEM: refused, naming the key",
           "rc %r %r" % (rc, err))
    os.unlink(A_PEM)
    rc, out, err = zdmctl(["reload"], sock=z.sock_path)
    tap.ok(rc == 1 and re.search(r"a\.pem", out + err),
           "reload with the certificate file gone: refused, naming the file",
           "rc %r out %r err %r" % (rc, out, err))
    rc, out, err = curl_ok()
    tap.ok(rc == 0 and out == b"u\n", "clients are still served with the running config", err)
    got = [k.request("GET", "/", host="a.test").status for _ in range(2)]
    tap.eq(got, [200, 200], "the old keep-alive connection still works after the failed reloads")
    k.close()
    n_err = metric(ADMIN, "zdm_config_reloads_total", result="error")
    tap.ok(n_err is not None and n_err >= 3, "zdm_config_reloads_total{result=error} counts them (%s)"
           % n_err)

tap.diag("elapsed %.1fs" % (time.monotonic() - T_START))
tap.done()
