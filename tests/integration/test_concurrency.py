#!/usr/bin/env python3
"""Many clients at once on the one event loop: every response complete and
on its own connection, the split still exact overall, and no connection
left behind afterwards."""

import threading

from zdmtest import TAP, Upstream, Zdmd, Client, Raw, build_request, chunked, content, sha256, wait_for

tap = TAP()
a, b = Upstream("a"), Upstream("b")
z = Zdmd(tap, {"pools": {"old": [a], "new": [b]}, "split": {"old": 80, "new": 20},
               "expose_pool_header": True, "timeouts": {"upstream_idle": Raw("1s")}})
base_fds = z.fds()

CLIENTS, PER = 40, 25
results = []
lock = threading.Lock()


def worker(k):
    out = []
    try:
        with Client(z.port, timeout=10) as c:
            for i in range(PER):
                kind = (k + i) % 4
                if kind == 0:
                    n = (k * 7919 + i * 104729) % 200000
                    r = c.request("GET", "/size/%d" % n)
                    good = r.status == 200 and r.body == content(n)
                elif kind == 1:
                    body = (b"%d-%d:" % (k, i)) * 500
                    r = c.request("POST", "/echo", body=body)
                    good = r.status == 200 and r.body == body
                elif kind == 2:
                    body = (b"c%d-%d;" % (k, i)) * 300
                    r = c.request("POST", "/echo", [("Transfer-Encoding", "chunked")], chunked(body))
                    good = r.status == 200 and r.get("x-body-sha256") == sha256(body)
                else:
                    n = 1000 + k
                    r = c.request("GET", "/chunked/%d" % n)
                    good = r.status == 200 and r.body == content(n)
                out.append((good, r.get("x-upstream")))
    except Exception as e:
        out.append((False, repr(e)))
    with lock:
        results.extend(out)


threads = [threading.Thread(target=worker, args=(k,), daemon=True) for k in range(CLIENTS)]
for t in threads:
    t.start()
for t in threads:
    t.join(60)
bad = [r for r in results if not r[0]]
tap.eq(len(results), CLIENTS * PER, "%d clients x %d requests all came back" % (CLIENTS, PER))
tap.eq(len(bad), 0, "every response complete and correct for its own request", bad[:5])
nb = sum(1 for r in results if r[1] == "b")
tap.within(nb, 200 - 10, 200 + 10, "split 80/20 holds under concurrency (new: %d of 1000)" % nb)

with tap.section("pipelined bursts from many clients"):
    outs = []

    def burst(k):
        try:
            with Client(z.port, timeout=10) as c:
                c.send(b"".join(build_request("GET", "/size/%d" % (k * 10 + i)) for i in range(10)))
                ok = all(c.read_response().body == content(k * 10 + i) for i in range(10))
        except Exception as e:
            ok = repr(e)
        with lock:
            outs.append(ok)
    ts = [threading.Thread(target=burst, args=(k,), daemon=True) for k in range(30)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(30)
    tap.eq(outs.count(True), 30, "30 clients pipelining 10 requests each: all in order", outs)

with z.client() as c:
    tap.eq(c.request("GET", "/").status, 200, "zdmd still answers")
back = wait_for(lambda: z.fds() is not None and z.fds() <= base_fds, timeout=6)
tap.ok(back, "every client and upstream connection closed afterwards: zdmd's open files back "
       "to %d (now %s)" % (base_fds, z.fds()))
tap.ok(z.alive(), "zdmd is still running")
tap.done()
