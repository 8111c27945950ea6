#!/usr/bin/env python3
"""Slow readers (SPEC §3 timeouts.client_write, §5): a client that accepts
no byte of its response for client_write is closed, and its upstream
connection with it; one that reads slowly but steadily is not. What
connections hold for readers slower than their upstreams is bounded: each
pauses its upstream past a high-water mark, and past the worker's budget
(64 MiB of receive blocks) any output left after a write pauses it, so
zdmd's memory does not grow with the number of slow readers times the
high-water mark."""

import os
import socket
import time

import obs
import zdmtest
from faults import metric, log_lines
from zdmtest import (TAP, Upstream, Zdmd, Raw, HOST, Client, HeadServer, Server, build_request,
                     content,
                     rss, tmpdir, wait_for)

tap = TAP(deadline=120)
a = Upstream("a")
z = Zdmd(tap, {"pools": {"old": [a]}, "split": {"old": 100},
               "timeouts": {"client_write": Raw("1s")}})


def slow_socket(rcvbuf=4096, port=None):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    s.settimeout(10)
    s.connect((HOST, port or z.port))
    return s


def upstream_conns(zz=None):
    """zdmd's connections to the upstream server."""
    n = 0
    for table in ("tcp", "tcp6"):
        with open("/proc/%d/net/%s" % ((zz or z).proc.pid, table)) as f:
            for row in f.read().splitlines()[1:]:
                col = row.split()
                if int(col[2].rsplit(":", 1)[1], 16) == a.port and col[3] == "01":
                    n += 1
    return n


with tap.section("a client that reads nothing is closed after client_write"):
    s = slow_socket()
    s.sendall(build_request("GET", "/size/50000000"))
    wait_for(lambda: z.client_sockets() == 1, timeout=5)
    t0 = time.monotonic()
    closed = wait_for(lambda: z.client_sockets() == 0, timeout=10)
    dt = time.monotonic() - t0
    tap.ok(closed, "zdmd closed the connection of a client that stopped reading")
    tap.ok(dt < 6, "within about client_write (1s) of its socket filling up: %.1fs" % dt)
    tap.ok(wait_for(lambda: upstream_conns() == 0, timeout=5),
           "and the upstream connection that fed it")
    s.close()

with tap.section("a slow but steady reader is not cut"):
    s = slow_socket()
    s.sendall(build_request("GET", "/size/50000000"))
    got = 0
    t0 = time.monotonic()
    alive = True
    while time.monotonic() - t0 < 3.5:
        time.sleep(0.4)
        try:
            chunk = s.recv(4096)
        except OSError:
            chunk = b""
        if not chunk:
            alive = False
            break
        got += len(chunk)
    tap.ok(alive and got > 0, "a reader taking 4 KiB every 0.4 s for 3.5 s keeps its "
           "connection (client_write is 1s): %d bytes read" % got)
    s.close()
    wait_for(lambda: z.client_sockets() == 0, timeout=5)

tap.ok(z.alive(), "zdmd is still running")
z.check_exit()

with tap.section("memory with many slow readers"):
    # client_write at its default (60s): the readers stay. Chunked
    # responses, which go through zdmd's memory (large Content-Length
    # bodies are spliced in the kernel).
    z2 = obs.start(tap, {"pools": {"old": [a]}, "split": {"old": 100},
                         "circuit_breaker": {"failures": 0}})
    N = 400
    base = rss(z2.proc.pid)
    socks = []
    for i in range(N):
        s = slow_socket(port=z2.port)
        s.sendall(build_request("GET", "/chunked/20000000"))
        socks.append(s)
    wait_for(lambda: z2.client_sockets() == N and upstream_conns(z2) == N, timeout=20)

    def settled():
        b1 = metric(z2.admin, "zdm_buffered_bytes")
        time.sleep(0.5)
        return abs(metric(z2.admin, "zdm_buffered_bytes") - b1) < (64 << 10)
    wait_for(settled, timeout=20, interval=0.1)
    held = metric(z2.admin, "zdm_buffered_bytes")
    grown = rss(z2.proc.pid) - base
    bound = (64 << 20) + N * (32 << 10)
    tap.ok(held <= bound, "%d readers that stopped reading large responses: zdmd holds %.1f "
           "MiB of buffers (bound %.0f MiB: the 64 MiB budget plus two 16 KiB blocks a "
           "connection; %d x 256 KiB of high water would be %.0f MiB)"
           % (N, held / 2**20, bound / 2**20, N, N * 0.25))
    if os.environ.get("ZDM_SANITIZERS") == "yes":
        tap.skip("and its memory grows by about as much", "the sanitizers' allocator")
    else:
        tap.ok(grown < bound + (16 << 20), "and its memory grows by about as much: %.1f MiB"
               % (grown / 2**20))
    for s in socks:
        s.close()
    tap.ok(wait_for(lambda: z2.client_sockets() == 0, timeout=10),
           "all of them closed when the clients went")
    tap.ok(wait_for(lambda: metric(z2.admin, "zdm_buffered_bytes") < (1 << 20), timeout=5),
           "and the buffers they held are given back")
    r = z2.client().request("GET", "/")
    tap.eq(r.status, 200, "zdmd serves as before")
    z2.check_exit()

BIG = 8000000
BODY = content(BIG)


with tap.section("splice pipes leave the descriptors to connections"):
    # Large Content-Length bodies are spliced through a pipe: two more
    # descriptors a connection, held while the reader is slower than the
    # kernel's socket buffer can absorb (an 8 MB body). Under a limit of 300
    # with 80 slow readers, pipes would take the process out of
    # descriptors; zdmd makes a pipe only while its connections leave room,
    # else the body goes through its memory.
    # zdmd is started with both limits at 300 (it raises a lower soft
    # limit to the hard one by itself).
    wrapper = os.path.join(tmpdir(), "zdmd-300")
    with open(wrapper, "w") as f:
        f.write("#!/bin/sh\nexec prlimit --nofile=300:300 %s \"$@\"\n" % zdmtest.ZDMD)
    os.chmod(wrapper, 0o755)
    real, zdmtest.ZDMD = zdmtest.ZDMD, wrapper
    try:
        # Answers at once, a thread a connection, so that each of many
        # responses is under way as soon as it is asked for.
        big = HeadServer(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % BIG + BODY,
                         keep=True, sndbuf=1 << 16)
        z3 = obs.start(tap, {"pools": {"old": [Server(big.address, name="big")]},
                             "split": {"old": 100},
                             "circuit_breaker": {"failures": 0}})
    finally:
        zdmtest.ZDMD = real
    tap.ok(len(log_lines(z3, r"needs \d+ descriptors, but RLIMIT_NOFILE allows 300")) == 1,
           "zdmd warns that 300 descriptors are too few for max_connections")
    N = 80
    socks = []
    for i in range(N):
        s = slow_socket(port=z3.port)
        s.sendall(build_request("GET", "/big"))
        socks.append(s)
    wait_for(lambda: z3.client_sockets() == N, timeout=20)

    def fds_settled():
        f1 = len(os.listdir("/proc/%d/fd" % z3.proc.pid))
        time.sleep(1.0)
        return len(os.listdir("/proc/%d/fd" % z3.proc.pid)) == f1
    wait_for(fds_settled, timeout=30, interval=0.1)  # every response under way
    fds = len(os.listdir("/proc/%d/fd" % z3.proc.pid))
    tap.ok(fds < 300 - 32, "%d slow readers of 8 MB bodies: zdmd holds %d descriptors, %d of "
           "them pipes, under its limit of 300" % (N, fds, z3.pipes()))
    r = Client(z3.port).request("GET", "/")
    tap.eq((r.status, r.body == BODY), (200, True),
           "a normal client is served all the same")
    whole = 0
    for s in socks[:5]:
        s.settimeout(10)
        data = b""
        while True:
            chunk = s.recv(1 << 16)
            if not chunk:
                break
            data += chunk
            if len(data) >= len(BODY) and b"\r\n\r\n" in data and \
                    len(data.split(b"\r\n\r\n", 1)[1]) >= len(BODY):
                break
        whole += data.split(b"\r\n\r\n", 1)[-1] == BODY
    tap.eq(whole, 5, "slow readers that read on get their whole bodies")
    for s in socks:
        s.close()
    z3.check_exit()

tap.done()
