#!/usr/bin/env python3
"""Out of descriptors (SPEC §5, limits.max_connections): zdmd raises
RLIMIT_NOFILE toward what max_connections needs, and warns with both
numbers when it cannot. Once the limit is reached anyway, accept(2) is not
retried in a loop (no core spun, no log flood): zdmd pauses accepting,
sheds a waiting connection with the descriptor it keeps in reserve, and
logs at most a line a second. A request whose upstream connection cannot
be made for lack of a descriptor is answered 503 with a reason of its own,
is counted in zdm_local_errors_total, and is no failure of the server: its
circuit stays closed and zdm_upstream_errors_total does not move.

The limit is lowered on the running zdmd (prlimit(2)), so that the test
does not depend on what the machine's limits are."""

import os
import resource
import socket
import time

from zdmtest import TAP, Upstream, Zdmd, Client, HOST, wait_for
from faults import section, need, metric, server_state, log_lines

tap = TAP(deadline=80)
a = Upstream("a")


def cpu_seconds(pid):
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def nofile(pid):
    with open("/proc/%d/limits" % pid) as f:
        for line in f:
            if line.startswith("Max open files"):
                return int(line.split()[3])
    return None


def open_fds(pid):
    """Every descriptor the process has open: RLIMIT_NOFILE counts them
    all (pipes and eventfds too)."""
    return len(os.listdir("/proc/%d/fd" % pid))


def settled_fds():
    """open_fds() once it holds still: a connection just closed by a
    client (the harness's probes of the admin port) may keep its
    descriptor in zdmd for a moment."""
    last = open_fds(pid)
    for _ in range(50):
        time.sleep(0.05)
        n = open_fds(pid)
        if n == last:
            return n
        last = n
    return last


def limit_fds(n):
    """Lowers zdmd's soft limit to N descriptors (the hard one stays, so
    that it can be raised again)."""
    hard = resource.prlimit(pid, resource.RLIMIT_NOFILE)[1]
    resource.prlimit(pid, resource.RLIMIT_NOFILE, (n, hard))


def connect_raw():
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.settimeout(5)
    s.connect((HOST, z.port))
    return s


def closed_by_peer(s, timeout):
    """True if the peer closed or reset S within TIMEOUT."""
    s.settimeout(timeout)
    try:
        return s.recv(1) == b""
    except ConnectionResetError:
        return True
    except socket.timeout:
        return False


from obs import start  # noqa: E402

z = start(tap, {"pools": {"old": [a]}, "split": {"old": 100},
                "circuit_breaker": {"failures": 2, "open_for": "30s"},
                "log_level": "info"})
pid = z.proc.pid

with section(tap, "the limit is raised at start"):
    need_fds = 2 * 10000 + 256
    lim = nofile(pid)
    warned = [ln for ln in log_lines(z, r"max_connections 10000 needs %d descriptors" % need_fds)]
    tap.ok(lim >= need_fds or (warned and ("allows %d" % lim) in warned[0]),
           "RLIMIT_NOFILE is at least 2 x max_connections + 256 (%d), or a warning names "
           "both numbers" % need_fds, "limit %s, warnings %r" % (lim, warned))

with section(tap, "no descriptor for the upstream connection: 503, not the server's fault"):
    base = settled_fds()
    # Room for three client connections and nothing else: the third one's
    # request finds no descriptor for its upstream connection.
    limit_fds(base + 3)
    idle = [Client(z.port) for _ in range(2)]
    c = Client(z.port)
    answers = []
    for i in range(5):
        r = c.request("GET", "/x%d" % i)
        answers.append((r.status, r.body))
    need(tap, all(st == 503 for st, _ in answers), "five requests answered 503",
         "answers: %r" % answers)
    tap.ok(all(b"local resources" in b for _, b in answers),
           "the 503 says the proxy is out of local resources", "%r" % answers[0][1])
    c.close()
    for cl in idle:
        cl.close()
    wait_for(lambda: z.client_sockets() == 0, timeout=5)
    limit_fds(base + 64)
    st = server_state(z, "old", "a") or {}
    tap.eq(st.get("circuit"), "closed", "five local failures leave the circuit closed "
           "(circuit_breaker.failures is 2)")
    tap.eq(st.get("failures"), 0, "and count no failure of the server")
    tap.eq(metric(z.admin, "zdm_local_errors_total", kind="descriptors"), 5,
           "zdm_local_errors_total{kind=\"descriptors\"} counts the five")
    errs = sum(metric(z.admin, "zdm_upstream_errors_total", pool="old", server="a", kind=k) or 0
               for k in ("connect", "timeout", "reset", "invalid"))
    tap.eq(errs, 0, "zdm_upstream_errors_total does not count them")
    tap.eq(Client(z.port).request("GET", "/").status, 200,
           "with descriptors back, the next request is served")
    tap.eq(len(log_lines(z, r"no connection to upstream old/a .* answered 503")) >= 1, True,
           "the error log says why")

with section(tap, "accept(2) out of descriptors: no spin, no flood"):
    base = settled_fds()
    limit_fds(base + 4)
    # Four connections take the descriptors left, each in the middle of a
    # request head, so that none is idle and may be closed to make room.
    held = []
    for _ in range(4):
        held.append(connect_raw())
        held[-1].sendall(b"GET / HTTP/1.1\r\nHost: x\r\n")
    need(tap, wait_for(lambda: z.client_sockets() == 4, timeout=5),
         "four connections take the descriptors left", "client sockets: %r" % z.client_sockets())
    lines0 = len(log_lines(z, r"out of descriptors"))
    cpu0 = cpu_seconds(pid)
    t0 = time.monotonic()
    waiting = []  # in the listen backlog, and not idle once accepted
    for _ in range(30):
        waiting.append(connect_raw())
        waiting[-1].sendall(b"GET / HTTP/1.1\r\n")
    shed = sum(closed_by_peer(s, 0.1) for s in waiting[:5])
    time.sleep(max(0, 3.0 - (time.monotonic() - t0)))  # a fixed window to measure CPU and log in
    cpu = cpu_seconds(pid) - cpu0
    elapsed = time.monotonic() - t0
    lines = len(log_lines(z, r"out of descriptors")) - lines0
    tap.ok(cpu < 0.5, "zdmd spends %.2f s of CPU in %.1f s with connections it cannot accept "
           "waiting" % (cpu, elapsed))
    tap.ok(1 <= lines <= elapsed + 2, "%d log lines about it in %.1f s: at most one a second"
           % (lines, elapsed), "\n".join(log_lines(z, r"out of descriptors")[-5:]))
    tap.ok(shed >= 1, "a waiting connection is shed (closed at once) rather than left to time "
           "out")
    for s in held:
        s.close()
    for s in waiting:
        s.close()
    wait_for(lambda: z.client_sockets() == 0, timeout=5)
    r = None
    deadline = time.monotonic() + 3
    while time.monotonic() < deadline:
        try:
            r = Client(z.port, timeout=2).request("GET", "/")
            break
        except OSError:
            time.sleep(0.05)
    tap.eq(r.status if r else None, 200, "descriptors free again: a new client is served "
           "within a second or so")
    limit_fds(base + 64)
    n = metric(z.admin, "zdm_local_errors_total", kind="accept") or 0
    tap.ok(n >= 1, "zdm_local_errors_total{kind=\"accept\"} counts refused connections (%d)" % n)

with section(tap, "idle connections make room for new ones, the oldest first"):
    base = settled_fds()
    idle = [connect_raw() for _ in range(24)]   # waiting for a first request
    need(tap, wait_for(lambda: z.client_sockets() == 24, timeout=5),
         "24 idle connections")
    limit_fds(settled_fds())  # and not one descriptor more
    busy = connect_raw()
    busy.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    busy.settimeout(5)
    head = b""
    try:
        while b"\r\n\r\n" not in head:
            chunk = busy.recv(4096)
            if not chunk:
                break
            head += chunk
    except OSError:
        pass
    tap.ok(head.startswith(b"HTTP/1.1 200"), "a new client is served at once",
           "%r" % head[:80])
    gone = [closed_by_peer(s, 0.5) for s in idle]
    tap.ok(gone[0] and not gone[-1], "idle connections were closed to make room, the oldest "
           "first (closed: %r)" % gone)
    tap.ok(len(log_lines(z, r"closed \d+ idle client and \d+ idle upstream connections")) >= 1,
           "the error log says so")
    busy.close()
    for s in idle:
        s.close()
    wait_for(lambda: z.client_sockets() == 0, timeout=5)
    limit_fds(base + 64)

z.check_exit()

with section(tap, "a limit that cannot be met: one warning with both numbers"):
    z2 = Zdmd(tap, {"pools": {"old": [a]}, "split": {"old": 100},
                    "limits": {"max_connections": 1000000}})
    lim = nofile(z2.proc.pid)
    need_fds = 2 * 1000000 + 256
    warned = log_lines(z2, r"max_connections 1000000 needs %d descriptors" % need_fds)
    tap.ok(len(warned) == 1 and ("allows %d" % lim) in warned[0],
           "the warning names what is needed (%d) and the limit in force (%d)" % (need_fds, lim),
           "%r" % warned)
    tap.eq(Client(z2.port).request("GET", "/").status, 200, "and zdmd serves all the same")
    z2.check_exit()

tap.done()
