#!/usr/bin/env python3
"""The admin listener (SPEC §7, issue 5 item 1): GET /healthz, /status and
/metrics on the `admin:` address; anything else 404; methods other than GET
and HEAD refused with 405; HEAD answered without a body; the admin port
never serves proxied traffic, and the proxy port never answers the admin
paths itself."""

import json
import socket

from zdmtest import (TAP, Upstream, Client, Closed, HOST, free_port, run_zdmd,
                     build_config, tmpdir, wait_for)
from faults import section, need, count
import obs

tap = TAP(deadline=50)
a, b = Upstream("a"), Upstream("b")
SPEC = {"pools": {"old": [a], "new": [b]},
        "split": {"old": 80, "new": 20},
        "pins": [{"header": "canary", "value": "true", "pool": "new"}]}

z = obs.start(tap, SPEC)

with section(tap, "/healthz"):
    r = obs.admin_get(z, "/healthz")
    tap.eq(r.status, 200, "GET /healthz: 200")
    tap.ok(r.body.strip() != b"" and len(r.body) < 200, "GET /healthz: a short body", r.body)
    tap.ok(not r.has("x-upstream"), "GET /healthz: answered by zdmd, not an upstream")
    r = obs.admin_get(z, "/healthz?verbose=1")
    tap.eq(r.status, 200, "GET /healthz?verbose=1: the query string is ignored")

with section(tap, "/status"):
    r = obs.admin_get(z, "/status")
    tap.eq(r.status, 200, "GET /status: 200")
    tap.ok((r.get("content-type") or "").lower().startswith("application/json"),
           "GET /status: Content-Type application/json", r.get("content-type"))
    try:
        doc = json.loads(r.body)
    except ValueError:
        doc = None
    need(tap, isinstance(doc, dict), "GET /status: the body is one JSON object", r.body[:300])
    ctl = z.ctl("status")
    tap.eq(doc.get("ok"), True, "/status: ok true")
    tap.eq(doc.get("version"), ctl.get("version"), "/status: the same version as the control socket")

    def shape(st):
        return [(p.get("name"), p.get("weight"),
                 [(s.get("name"), s.get("address"), s.get("weight"), s.get("health"),
                   s.get("circuit"), s.get("admin")) for s in p.get("servers", [])])
                for p in st.get("pools", [])]
    tap.eq(shape(doc), shape(ctl), "/status: the same pools, weights and servers as the control socket's status")
    tap.eq(doc.get("pins"), ctl.get("pins"), "/status: the same pins")
    tap.eq(set(doc), set(ctl), "/status: the same top-level keys as the control socket's status")
    p0 = (doc.get("pools") or [{}])[0]
    s0 = (p0.get("servers") or [{}])[0]
    tap.eq(set(s0), set(ctl["pools"][0]["servers"][0]), "/status: server entries have the same keys")
    # A change made on the control socket shows on /status right away.
    ans = z.ctl("set-weight new 35")
    tap.eq(ans.get("ok"), True, "set-weight new 35 on the control socket")
    doc = json.loads(obs.admin_get(z, "/status").body)
    tap.eq({p["name"]: p["weight"] for p in doc.get("pools", [])}, {"old": 65, "new": 35},
           "/status follows set-weight at once: old 65, new 35")
    # Traffic shows in the per-server counters, the same on both.
    for _ in range(5):
        with z.client() as c:
            c.request("GET", "/", [("canary", "true")])
    doc = json.loads(obs.admin_get(z, "/status").body)
    ctl = z.ctl("status")
    tap.eq([s.get("requests") for p in doc["pools"] for s in p["servers"]],
           [s.get("requests") for p in ctl["pools"] for s in p["servers"]],
           "/status request counters equal the control socket's")
    z.ctl("set-weight new 20")

with section(tap, "/metrics"):
    r = obs.admin_get(z, "/metrics")
    tap.eq(r.status, 200, "GET /metrics: 200")
    ct = r.get("content-type") or ""
    tap.ok(obs.PROM_CONTENT_TYPE.match(ct),
           "GET /metrics: Content-Type text/plain; version=0.0.4 (Prometheus text format)", ct)
    m = obs.Exposition(r.body)
    tap.eq(m.errors, [], "GET /metrics: the body parses as the exposition format")
    tap.ok(m.find("zdm_requests_total"), "GET /metrics: has zdm_requests_total samples")
    r2 = obs.admin_get(z, "/metrics?name[]=zdm_server_up")
    tap.eq(r2.status, 200, "GET /metrics?name[]=...: 200 (query ignored)")

with section(tap, "HEAD"):
    for path in ("/healthz", "/status", "/metrics"):
        with Client(z.admin, timeout=5) as c:
            c.send("HEAD %s HTTP/1.1\r\nHost: x\r\n\r\n" % path)
            r = c.read_response("HEAD")
            tap.eq(r.status, 200, "HEAD %s: 200" % path)
            g = obs.admin_get(z, path)
            tap.eq((r.get("content-type") or "").split(";")[0],
                   (g.get("content-type") or "").split(";")[0],
                   "HEAD %s: the Content-Type of the GET" % path)
            # No body follows the head: the next request on the same
            # connection is answered as the next response.
            # HEAD is answered with the head alone: the bytes that follow it
            # on the connection are the next response's status line.
            c.send("GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            wait_for(lambda: c.wait_closed(0.05), timeout=3)
            after = bytes(c.buf)
            tap.ok(after.startswith(b"HTTP/1.1 200 "),
                   "HEAD %s: no body is sent (the next response follows the head)" % path,
                   "bytes after the HEAD response's head: %r" % after[:200])

with section(tap, "other paths: 404"):
    for path in ("/", "/metric", "/metrics/x", "/healthz/", "/STATUS", "/size/10",
                 "/admin", "/status.json", "//metrics"):
        r = obs.admin_get(z, path)
        tap.eq(r.status, 404, "GET %s on the admin port: 404" % path)
        tap.ok(not r.has("x-upstream"), "GET %s on the admin port: not proxied" % path)

with section(tap, "methods other than GET and HEAD: 405"):
    for method, body in (("POST", b"x=1"), ("PUT", b"{}"), ("DELETE", None),
                         ("PATCH", b"{}"), ("OPTIONS", None)):
        for path in ("/metrics", "/status", "/nope"):
            try:
                r = obs.admin_get(z, path, method=method, body=body)
                st = r.status
                allow = r.get("allow")
            except (Closed, OSError) as e:
                st, allow = repr(e), None
            if method in ("PATCH", "OPTIONS"):
                # SPEC is silent beyond "read-only": refused either way.
                tap.ok(st in (405, 501), "%s %s on the admin port: refused (405 or 501, got %r)"
                       % (method, path, st))
                continue
            tap.eq(st, 405, "%s %s on the admin port: 405" % (method, path))
            if st == 405:
                tap.ok(allow and set(t.strip().upper() for t in allow.split(",")) == {"GET", "HEAD"},
                       "%s %s: Allow: GET, HEAD" % (method, path), allow)
    tap.eq(obs.admin_get(z, "/healthz").status, 200, "the admin listener still serves after them")

with section(tap, "keep-alive on the admin port"):
    with Client(z.admin, timeout=5) as c:
        got = []
        for path in ("/healthz", "/metrics", "/status", "/nope", "/healthz"):
            got.append(c.request("GET", path).status)
    tap.eq(got, [200, 200, 200, 404, 200], "five requests on one admin connection")

with section(tap, "the admin port and the proxy port are separate"):
    need(tap, z.admin != z.port, "the admin port is not the proxy port")
    n0 = count(a, "/") + count(b, "/")
    r = obs.admin_get(z, "/")
    tap.eq(r.status, 404, "GET / on the admin port: 404")
    r = obs.admin_get(z, "/", headers=[("canary", "true")])
    tap.eq(r.status, 404, "GET / with the canary pin on the admin port: 404")
    tap.eq(count(a, "/") + count(b, "/") - n0, 0, "nothing sent to the admin port reached an upstream")
    m0 = count(a, "/metrics") + count(b, "/metrics")
    got = []
    for path in ("/metrics", "/healthz", "/status"):
        with z.client() as c:
            r = c.request("GET", path)
        got.append((path, r.status, r.get("x-upstream")))
        tap.ok(r.get("x-upstream") in ("a", "b"),
               "GET %s on the proxy port is proxied to an upstream (X-Upstream %r)" %
               (path, r.get("x-upstream")))
        tap.ok(b"zdm_requests_total" not in r.body and b'"pools"' not in r.body,
               "GET %s on the proxy port: not zdmd's own answer" % path)
    tap.eq(count(a, "/metrics") + count(b, "/metrics") - m0, 1,
           "/metrics on the proxy port reached an upstream once")

with section(tap, "the admin listener binds where the config says"):
    # /proc/net/tcp: the listening socket of the admin port is on 127.0.0.1
    # (0100007F), not on a wildcard address.
    rows = []
    for fn in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(fn) as f:
                for ln in f.readlines()[1:]:
                    parts = ln.split()
                    local, st = parts[1], parts[3]
                    if st == "0A" and int(local.rsplit(":", 1)[1], 16) == z.admin:
                        rows.append(local.rsplit(":", 1)[0])
        except OSError:
            pass
    tap.eq(rows, ["0100007F"], "the admin port listens on 127.0.0.1 only", rows)

with section(tap, "admin port already taken: zdmd refuses to start"):
    holder = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    holder.bind((HOST, 0))
    holder.listen(1)
    taken = holder.getsockname()[1]
    d = tmpdir()
    cfg = build_config(free_port(), dict(SPEC, admin="%s:%d" % (HOST, taken)), d)
    path = d + "/zdm.yaml"
    with open(path, "w") as f:
        f.write(cfg)
    try:
        rc, out, err = run_zdmd(["-c", path], timeout=10)
    except Exception as e:
        rc, out, err = "still running after 10 s (%s)" % type(e).__name__, "", ""
    holder.close()
    tap.ok(rc not in (0, None) and isinstance(rc, int), "zdmd exits non-zero when the admin port is taken", rc)
    tap.ok(str(taken) in err and ("in use" in err.lower() or "admin" in err.lower()),
           "stderr names the admin address and the reason", err)

with section(tap, "the proxy keeps serving"):
    r = obs.admin_get(z, "/healthz")
    with z.client() as c:
        r2 = c.request("GET", "/")
    tap.eq((r.status, r2.status), (200, 200), "admin and proxy both still answer")

tap.done()
