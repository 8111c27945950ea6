#!/usr/bin/env python3
"""Error-log lines that a peer can cause at will are rate-limited (SPEC §5,
issue 17): an upstream that answers every request with garbage, asked 400
times in a burst, makes a handful of lines a second, not 400, and the next
line written from the same place says how many were left out."""

import time

from zdmtest import TAP, Zdmd, Server, HeadServer, wait_for
from faults import log_lines

tap = TAP(deadline=60)


g = HeadServer(b"SPAM SPAM SPAM\r\n\r\n")  # no HTTP response at all
z = Zdmd(tap, {"pools": {"old": [Server(g.address, name="g")]}, "split": {"old": 100},
               "circuit_breaker": {"failures": 0}})

N = 400
t0 = time.monotonic()
codes = []
with z.client() as c:
    for _ in range(N):
        codes.append(c.request("GET", "/").status)
elapsed = time.monotonic() - t0
tap.eq(codes.count(502), N, "%d requests to an upstream that answers garbage: all 502" % N)
pattern = r"\[warn\] .*upstream (old/)?g \("
wait_for(lambda: log_lines(z, pattern), timeout=2)
lines = log_lines(z, pattern)
# Per place in the code, 5 a second; two places write here (the upstream's
# reading and the client's answer). Without the limit: two lines a request.
bound = 2 * 5 * (int(elapsed) + 2)
tap.ok(len(lines) <= bound, "%d log lines for them in %.1f s (bound %d)" % (len(lines), elapsed,
                                                                          bound))
time.sleep(1.1)  # a new second: the next line is written, and counts the rest
with z.client() as c:
    c.request("GET", "/")
more = log_lines(z, r"more like it not logged")
tap.ok(more, "the next line says how many were left out", "\n".join(lines[-3:]))
z.check_exit()
tap.done()
