#!/usr/bin/env python3
"""TLS to upstream pools (SPEC §3 pools.*.tls; issue 6).

A pool with `tls: {verify, ca, sni}` talks TLS to its servers: the
certificate is checked against `ca` (verify defaults to true) and the name
`sni`, which is also sent as SNI. A certificate that does not verify is a
failed connect (502, logged); `verify: false` accepts any certificate.
Connections to the servers stay pooled, and active health checks speak TLS
too.

The upstream here is an HTTPS server written with python's ssl module
(tlsutil.TLSUpstream) that counts the TCP connections it accepts and records
the SNI names it is sent; certificates are made now with openssl.
"""

import os
import re
import socket
import time

from zdmtest import (TAP, Zdmd, Raw, Client, Closed, wait_for, free_port, content, sha256)
from faults import section, need, wait_state, server_state, log_lines, wait_log, metric
from tlsutil import PKI, TLSUpstream, TLSClient

tap = TAP(deadline=58)
T_START = time.monotonic()
pki = PKI()
good = TLSUpstream(pki.a_pem, pki.a_key, name="good")     # a.test, signed by the CA
selfs = TLSUpstream(pki.self_pem, pki.self_key, name="self")   # a.test, self-signed

# Failures must show as 502 here, not as an open circuit.
NO_BREAKER = {"failures": 1000}


def start(srv, tls, admin=None, **more):
    spec = {"pools": {"old": {"servers": [{"address": srv.address, "name": srv.name}],
                              "tls": tls}},
            "circuit_breaker": NO_BREAKER,
            "timeouts": {"connect": Raw("1s"), "upstream_response": Raw("5s")}}
    if admin:
        spec["admin"] = "127.0.0.1:%d" % admin
    spec.update(more)
    return Zdmd(tap, spec)


def get(z, path="/", headers=None, body=None, method="GET", timeout=5.0):
    with Client(z.port, timeout=timeout) as c:
        return c.request(method, path, headers, body)


with section(tap, "verify on, CA and SNI"):
    s0 = first = good.snapshot()
    z = start(good, {"verify": True, "ca": pki.ca, "sni": "a.test"})
    r = get(z)
    need(tap, r.status == 200 and r.body == b"good\n",
         "pool tls {verify: true, ca: CA, sni: a.test}: 200 from the TLS upstream", repr(r))
    s1 = good.snapshot()
    tap.ok(s1["sni"][len(s0["sni"]):] and set(s1["sni"][len(s0["sni"]):]) == {"a.test"},
           "the upstream is sent SNI a.test", repr(s1["sni"][len(s0["sni"]):]))
    body = os.urandom(300000)
    r = get(z, "/echo", body=body, method="POST")
    tap.ok(r.status == 200 and r.body == body and r.get("x-body-sha256") == sha256(body),
           "a 300 kB request body and its echo cross upstream TLS byte-exact",
           "status %r len %d" % (r.status, len(r.body)))
    r = get(z, "/size/%d" % (1 << 20))
    tap.ok(r.status == 200 and r.body == content(1 << 20),
           "a 1 MiB response over upstream TLS, byte-exact", "status %r len %d" % (r.status, len(r.body)))

    # pooling: N requests, sequential, some on one client connection and
    # some on new ones; the upstream accepts at most 2 TCP connections.
    s0 = good.snapshot()
    statuses = []
    with Client(z.port, timeout=5) as c:
        for i in range(10):
            statuses.append(c.request("GET", "/").status)
    for i in range(10):
        statuses.append(get(z).status)
    s1 = good.snapshot()
    tap.eq(statuses, [200] * 20, "20 requests over upstream TLS, all answered")
    n_conn = s1["connections"] - first["connections"]
    n_hs = s1["handshakes"] - first["handshakes"]
    tap.ok(n_conn <= 2 and n_hs <= 2,
           "upstream TLS connections stay pooled: %d TCP connections, %d handshakes for all "
           "%d requests of this zdmd" % (n_conn, n_hs, len(s1["requests"]) - len(first["requests"])))
    tap.eq(len(s1["requests"]) - len(s0["requests"]), 20, "the upstream saw the 20 requests")
    z.check_exit()

with section(tap, "verify on, host name mismatch"):
    z = start(good, {"verify": True, "ca": pki.ca, "sni": "b.test"})
    s0 = good.snapshot()
    r = get(z)
    tap.eq(r.status, 502, "pool tls sni b.test to a server with an a.test certificate: 502")
    tap.ok(r.get("x-upstream") is None and good.snapshot()["requests"] == s0["requests"],
           "the request never reaches the upstream")
    lines = wait_log(z, r"TLS handshake failed")
    tap.ok(lines and re.search(r"good|%d" % good.port, lines[0]),
           "the failed handshake is logged, naming the server", "\n".join(lines) or z.stderr()[-800:])
    tap.ok(any(re.search(r"verif|certificate|hostname|host name", ln, re.I) for ln in lines),
           "... with the reason (certificate verification)", "\n".join(lines))
    tap.ok("b.test" in good.snapshot()["sni"][len(s0["sni"]):], "the SNI sent is the configured one")
    z.check_exit()

with section(tap, "verify on, self-signed upstream"):
    z = start(selfs, {"verify": True, "ca": pki.ca, "sni": "a.test"})
    s0 = selfs.snapshot()
    r = get(z)
    tap.eq(r.status, 502, "verify on against a self-signed certificate: 502")
    tap.eq(selfs.snapshot()["requests"], s0["requests"], "the request never reaches the upstream")
    lines = wait_log(z, r"TLS handshake failed")
    tap.ok(lines and any(re.search(r"verif|certificate", ln, re.I) for ln in lines),
           "the failed handshake is logged with its reason", z.stderr()[-800:])
    z.check_exit()

with section(tap, "verify on, system store"):
    z = start(good, {"verify": True, "sni": "a.test"})
    r = get(z)
    tap.eq(r.status, 502, "verify on without ca: the test CA is not in the system store, 502")
    z.check_exit()

with section(tap, "defaults and names"):
    z = start(good, {"ca": pki.ca, "sni": "a.test"})
    r = get(z)
    tap.ok(r.status == 200 and r.body == b"good\n",
           "tls {ca, sni} without verify: verified (default true), 200", repr(r))
    z.check_exit()
    z = start(selfs, {"ca": pki.ca, "sni": "a.test"})
    tap.eq(get(z).status, 502, "tls {ca, sni} without verify against a self-signed server: 502")
    z.check_exit()
    z = start(good, {})
    tap.eq(get(z).status, 502, "tls: {} (verify on, system store) against the test CA: 502")
    z.check_exit()
    # without sni, the certificate must match the server's IP address
    s0 = good.snapshot()
    z = start(good, {"verify": True, "ca": pki.ca})
    tap.eq(get(z).status, 502, "verify on, no sni: an a.test certificate does not match "
           "127.0.0.1, 502")
    z.check_exit()
    ips = TLSUpstream(pki.ip_pem, pki.ip_key, name="ip")
    z = start(ips, {"verify": True, "ca": pki.ca})
    r = get(z)
    tap.ok(r.status == 200 and r.body == b"ip\n",
           "verify on, no sni: a certificate for IP 127.0.0.1 verifies, 200", repr(r))
    tap.eq(set(ips.snapshot()["sni"]), {None}, "no SNI is sent for an IP address")
    z.check_exit()
    ips.stop()

with section(tap, "verify off"):
    z = start(selfs, {"verify": False})
    s0 = selfs.snapshot()
    r = get(z)
    tap.ok(r.status == 200 and r.body == b"self\n",
           "verify: false against the self-signed certificate: 200", repr(r))
    rs = [get(z).status for _ in range(5)]
    tap.eq(rs, [200] * 5, "... again and again")
    tap.ok(selfs.snapshot()["connections"] - s0["connections"] <= 2,
           "... on pooled connections (%d)" % (selfs.snapshot()["connections"] - s0["connections"]))
    z.check_exit()

with section(tap, "a server that closes idle connections"):
    ic = TLSUpstream(pki.a_pem, pki.a_key, name="ic", idle=0.3)
    z = start(ic, {"ca": pki.ca, "sni": "a.test"})
    r1 = get(z).status
    time.sleep(0.8)                      # the server has closed the pooled connection
    r2 = get(z).status
    r3 = get(z).status
    tap.eq([r1, r2, r3], [200, 200, 200],
           "a pooled TLS connection the server closed is not used again: every request answered")
    tap.eq(ic.snapshot()["connections"], 2, "... on a new connection after the close")
    z.check_exit()
    ic.stop()

with section(tap, "a server that never answers the handshake"):
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(16)                    # never accepts: the ClientHello gets no answer

    class Silent:
        address = "127.0.0.1:%d" % silent.getsockname()[1]
        name = "silent"
    z = start(Silent, {"ca": pki.ca, "sni": "a.test"}, timeouts={"connect": Raw("500ms"),
                                                               "upstream_response": Raw("5s")})
    t0 = time.monotonic()
    try:
        st = get(z, timeout=6).status
    except Exception as e:
        st = repr(e)
    dt = time.monotonic() - t0
    tap.ok(st in (502, 504) and dt < 0.5 * 2 + 1.0,
           "a stalled upstream handshake fails within timeouts.connect (x2 with the retry): "
           "%s after %.2fs" % (st, dt))
    z.check_exit()
    spec = {"pools": {"old": {"servers": [{"address": Silent.address, "name": "silent"},
                                          {"address": good.address, "name": "good"}],
                              "tls": {"ca": pki.ca, "sni": "a.test"}}},
            "circuit_breaker": NO_BREAKER,
            "timeouts": {"connect": Raw("500ms"), "upstream_response": Raw("5s")}}
    z = Zdmd(tap, spec)
    t0 = time.monotonic()
    res = [get(z, timeout=6) for _ in range(4)]
    dt = time.monotonic() - t0
    tap.eq([(r.status, r.body) for r in res], [(200, b"good\n")] * 4,
           "with another server in the pool, a stalled handshake is retried there")
    tap.ok(dt < 4 * 0.5 + 1.5, "each within about the connect timeout (%.2fs for 4)" % dt)
    z.check_exit()
    silent.close()

with section(tap, "TLS on both sides"):
    P = free_port()
    spec = {"listen": [{"address": "127.0.0.1:%d" % P,
                        "tls": {"cert": pki.b_pem, "key": pki.b_key}}],
            "pools": {"old": {"servers": [{"address": good.address, "name": "good"}],
                              "tls": {"ca": pki.ca, "sni": "a.test"}}}}
    z = Zdmd(tap, spec)
    body = os.urandom(1 << 20)
    with TLSClient(P, pki.ca, "b.test", timeout=15) as c:
        r = c.request("POST", "/echo", body=body, host="b.test")
        tap.ok(r.status == 200 and r.body == body,
               "1 MiB echoed byte-exact through a TLS listener and a TLS pool",
               "status %r len %d" % (r.status, len(r.body)))
        r = c.request("GET", "/headers", host="b.test")
        import json
        hs = dict((k.lower(), v) for k, v in json.loads(r.body)["headers"])
        tap.eq(hs.get("x-forwarded-proto"), "https", "X-Forwarded-Proto: https reaches the TLS upstream")
    z.check_exit()

with section(tap, "health checks over TLS"):
    port = free_port()
    hc = {"path": "/health", "interval": Raw("200ms"), "timeout": Raw("150ms"),
          "rise": 2, "fall": 2, "expect": "200-399"}

    class Addr:
        address = "127.0.0.1:%d" % port
        name = "h"
    z = start(Addr, {"verify": True, "ca": pki.ca, "sni": "a.test"}, health_check=hc)
    dt = wait_state(z, "old", "h", "health", "down", 5)
    need(tap, dt is not None, "nothing listens yet: the server is marked down",
         repr(server_state(z, "old", "h")))
    h = TLSUpstream(pki.a_pem, pki.a_key, name="h", port=port)
    dt = wait_state(z, "old", "h", "health", "up", 5)
    tap.ok(dt is not None, "the TLS server starts: health checks over TLS mark it up (%s)"
           % (None if dt is None else "%.2fs" % dt), repr(server_state(z, "old", "h")))
    snap = h.snapshot()
    tap.ok("/health" in snap["requests"] and snap["handshakes"] >= 2,
           "the checks arrived over TLS (%d handshakes, %d /health)"
           % (snap["handshakes"], snap["requests"].count("/health")))
    tap.ok(snap["sni"] and set(snap["sni"]) == {"a.test"}, "the checks send SNI a.test",
           repr(snap["sni"]))
    r = get(z)
    tap.ok(r.status == 200 and r.body == b"h\n", "requests go to it", repr(r))
    h.stop()
    dt = wait_state(z, "old", "h", "health", "down", 5)
    tap.ok(dt is not None, "the TLS server stops: marked down (%s)"
           % (None if dt is None else "%.2fs" % dt))
    z.check_exit()

with section(tap, "health checks: a certificate that does not verify"):
    z = start(selfs, {"verify": True, "ca": pki.ca, "sni": "a.test"}, health_check=hc)
    dt = wait_state(z, "old", "self", "health", "down", 5)
    need(tap, dt is not None, "a self-signed server with verify on is marked down by its checks")
    st = server_state(z, "old", "self") or {}
    reason = (st.get("health_change") or {}).get("reason") or ""
    lines = log_lines(z, r"health: old/self down")
    text = reason + "\n" + "\n".join(lines)
    tap.ok(re.search(r"TLS", text) and re.search(r"verif|certificate", text, re.I),
           "the reason names the TLS certificate failure",
           "status reason %r\nlog %r" % (reason, lines))
    tap.diag("reason: %r" % reason)
    tap.ok(all(ch.isprintable() for ch in reason) and all(ch.isprintable() for ln in lines for ch in ln),
           "the reason is clean text", "status reason %r\nlog %r" % (reason, lines))
    z.check_exit()

tap.diag("elapsed %.1fs" % (time.monotonic() - T_START))
tap.done()
