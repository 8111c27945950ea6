#!/usr/bin/env python3
"""zdmd's command line and config errors (SPEC §2, §3): -t reports every
error as FILE:LINE:COL and exits 1, a good file prints "configuration OK",
-V names the libraries, and a bad config stops zdmd at start."""

import os
import re
import socket
import subprocess

from zdmtest import TAP, ZDMD, run_zdmd, tmpdir, free_port

tap = TAP()
d = tmpdir()


def write(name, text):
    p = os.path.join(d, name)
    with open(p, "w") as f:
        f.write(text)
    return p


def error_lines(out, path):
    """(line, col) of every FILE:LINE:COL: line printed for PATH."""
    pat = re.compile(r"^" + re.escape(path) + r":(\d+):(\d+): \S")
    return [(int(m.group(1)), int(m.group(2))) for m in map(pat.match, out.splitlines()) if m]


port = free_port()

# line numbers matter below: keep the layout
BAD1 = """\
listen:
  - "127.0.0.1:%d"
bogus_key: 1
pools:
  old:
    servers:
      - {address: "127.0.0.1:9001"}
  old:
    servers:
      - {address: "127.0.0.1:9002"}
split: {old: 100}
""" % port

with tap.section("unknown key and duplicate pool"):
    p = write("bad1.yaml", BAD1)
    rc, out, err = run_zdmd(["-t", "-c", p])
    both = out + err
    tap.eq(rc, 1, "zdmd -t on a bad file exits 1")
    locs = error_lines(both, p)
    tap.ok((3, 1) in locs, "unknown key reported at %s:3:1" % os.path.basename(p), both)
    tap.ok(any(l == 8 for l, _ in locs), "duplicate pool reported at line 8", both)
    tap.ok((8, 3) in locs, "duplicate pool reported at %s:8:3" % os.path.basename(p), both)
    tap.ok(re.search(r"bogus_key", both), "the unknown key is named")
    tap.ok(re.search(r"\bold\b", " ".join(l for l in both.splitlines() if ":8:" in l)),
           "the duplicate pool is named")
    tap.ok("configuration OK" not in both, "no \"configuration OK\" for a bad file")

BAD2 = """\
listen:
  - "127.0.0.1:%d"
workers: lots
timeouts: {connect: 5 parsecs}
limits:
  max_header_bytes: -3
pools:
  old:
    servers:
      - {address: "127.0.0.1:9001", weight: 5000}
  new:
    servers:
      - {address: "127.0.0.1:9002", name: x}
      - {address: "127.0.0.1:9003", name: x}
split: {old: 50, new: 40}
pins:
  - {header: canary, value: "true", pool: nwe}
""" % port

with tap.section("several errors in one run"):
    p = write("bad2.yaml", BAD2)
    rc, out, err = run_zdmd(["-t", "-c", p])
    both = out + err
    tap.eq(rc, 1, "exit status 1")
    lines = {l for l, _ in error_lines(both, p)}
    for ln, what in [(3, "wrong type (workers: lots)"),
                     (4, "bad duration"),
                     (6, "out-of-range size"),
                     (10, "server weight over 1000"),
                     (14, "duplicate server name"),
                     (15, "split not summing to 100"),
                     (17, "pin naming an unknown pool")]:
        tap.ok(ln in lines, "%s reported at line %d" % (what, ln), both if ln == 3 else None)
    tap.ok(re.search(r"nwe", both), "the unknown pool is named")

with tap.section("unknown pool in the split, YAML syntax error"):
    p = write("bad3.yaml", 'listen: ["127.0.0.1:%d"]\npools:\n  old:\n    servers:\n'
              '      - {address: "127.0.0.1:9001"}\nsplit: {old: 100, nwe: 0}\n' % port)
    rc, out, err = run_zdmd(["-t", "-c", p])
    tap.ok(rc == 1 and 6 in {l for l, _ in error_lines(out + err, p)},
           "a split naming an unknown pool: error at line 6", out + err)
    p = write("bad4.yaml", 'listen: ["127.0.0.1:%d"\npools: {\n' % port)
    rc, out, err = run_zdmd(["-t", "-c", p])
    tap.ok(rc == 1 and error_lines(out + err, p), "a YAML syntax error: FILE:LINE:COL and exit 1",
           out + err)
    rc, out, err = run_zdmd(["-t", "-c", os.path.join(d, "missing.yaml")])
    tap.ok(rc != 0 and "missing.yaml" in out + err, "a missing file: non-zero and the path named",
           out + err)

with tap.section("valid config"):
    good = """\
listen:
  - "127.0.0.1:%d"
workers: 1
expose_pool_header: true
timeouts: {connect: 250ms, request_header: 2s, upstream_response: 5m, drain: 1s}
limits: {max_connections: 100, max_header_bytes: 64k, max_body_bytes: 1m}
pools:
  old:
    servers:
      - {address: "127.0.0.1:9001", name: a, weight: 1}
      - {address: "127.0.0.1:9002", name: b, weight: 3}
  new:
    servers:
      - {address: "127.0.0.1:9101"}
split: {old: 99.5, new: 0.5}
pins:
  - {header: canary, value: "true", pool: new}
health_check: {path: /health, interval: 2s, timeout: 1s, rise: 2, fall: 3, expect: "200-399"}
circuit_breaker: {failures: 5, open_for: 30s, half_open_probes: 1}
""" % port
    p = write("good.yaml", good)
    rc, out, err = run_zdmd(["-t", "-c", p])
    tap.eq(rc, 0, "zdmd -t on a valid file exits 0")
    tap.ok("configuration OK" in out + err, "and prints \"configuration OK\"", out + err)

with tap.section("relative path and bad options"):
    write("rel.yaml", BAD1)
    p = subprocess.run([ZDMD, "-t", "-c", "rel.yaml"], cwd=d, stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, timeout=10)
    both = (p.stdout + p.stderr).decode(errors="replace")
    tap.ok(p.returncode == 1 and error_lines(both, "rel.yaml"),
           "errors name the file as given on the command line (rel.yaml:3:1:)", both)
    rc, out, err = run_zdmd(["--no-such-option"])
    tap.ok(rc not in (0, None) and err.strip(), "an unknown option: non-zero exit and a message (%r)" % rc)

with tap.section("-V"):
    rc, out, err = run_zdmd(["-V"])
    both = (out + err).lower()
    tap.eq(rc, 0, "zdmd -V exits 0")
    for lib in ("libevent", "openssl", "llhttp", "libyaml"):
        tap.ok(re.search(re.escape(lib) + r"[^\n]*\d+\.\d+", both),
               "-V names %s with a version" % lib, out + err)

with tap.section("starting with a bad config"):
    p = write("bad1b.yaml", BAD1)
    rc, out, err = run_zdmd(["-c", p], timeout=10)
    tap.ok(rc != 0, "zdmd -c bad.yaml exits non-zero (%r)" % rc)
    tap.ok((3, 1) in error_lines(err, p), "with the error as FILE:LINE:COL on stderr", err)
    s = socket.socket()
    tap.ok(s.connect_ex(("127.0.0.1", port)) != 0, "and nothing listens on its port")
    s.close()

with tap.section("listen address in use"):
    holder = socket.socket()
    holder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    holder.bind(("127.0.0.1", 0))
    holder.listen(1)
    hport = holder.getsockname()[1]
    p = write("inuse.yaml", 'listen: ["127.0.0.1:%d"]\npools:\n  old:\n    servers:\n'
              '      - {address: "127.0.0.1:9001"}\nsplit: {old: 100}\n' % hport)
    rc, out, err = run_zdmd(["-c", p], timeout=10)
    tap.ok(rc != 0 and ("127.0.0.1:%d" % hport) in err,
           "a listen address in use: non-zero exit, the address named on stderr", err)
    holder.close()

with tap.section("the shipped configurations"):
    conf = os.path.join(os.environ.get("ZDM_TESTDIR") or os.path.dirname(os.path.abspath(__file__))
                        + "/..", "..", "conf")
    names = sorted(n for n in os.listdir(conf) if n.endswith(".yaml"))
    tap.ok("zdm.yaml" in names and "strangler.yaml" in names, "conf/ holds them", names)
    for n in names:
        rc, out, err = run_zdmd(["-t", "-c", os.path.join(conf, n)])
        tap.ok(rc == 0 and "configuration OK" in out + err, "zdmd -t conf/%s: OK" % n, out + err)

tap.done()
