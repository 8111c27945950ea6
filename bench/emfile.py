#!/usr/bin/env python3
"""What zdmd does out of descriptors: started under `ulimit -n 1024` with
the default limits.max_connections (10000), it is sent more idle client
connections than its descriptors allow, then a normal client asks for a
page once a second. Reports, for a window of SECONDS: error-log lines a
second, zdmd's CPU, and what the normal client got.

    ZDMD=build/src/zdmd python3 bench/emfile.py [--idle 1100] [--seconds 10]

Loopback only; every loop is bounded in count and time."""

import argparse
import os
import resource
import socket
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests"))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests",
                                "integration"))
import zdmtest  # noqa: E402

HOST = "127.0.0.1"


def cpu_seconds(pid):
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def normal_request(port, timeout=2.0):
    try:
        c = zdmtest.Client(port, timeout=timeout)
        try:
            return str(c.request("GET", "/").status)
        finally:
            c.close()
    except socket.timeout:
        return "timeout"
    except ConnectionResetError:
        return "reset"
    except zdmtest.Closed:
        return "closed"
    except OSError as e:
        return type(e).__name__


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--idle", type=int, default=1100)
    ap.add_argument("--seconds", type=float, default=10)
    ap.add_argument("--nofile", type=int, default=1024)
    args = ap.parse_args()
    zdmd = os.environ.get("ZDMD", "build/src/zdmd")

    up = zdmtest.Upstream("a")
    work = tempfile.mkdtemp(prefix="zdm-emfile-")
    port = zdmtest.free_port()
    cfg = os.path.join(work, "zdm.yaml")
    with open(cfg, "w") as f:
        f.write(zdmtest.build_config(port, {"pools": {"old": [up]}, "split": {"old": 100}}, work))
    err_path = os.path.join(work, "stderr")
    lim = (args.nofile, args.nofile)
    proc = subprocess.Popen([zdmd, "-c", cfg], stderr=open(err_path, "wb"),
                            stdout=subprocess.DEVNULL, stdin=subprocess.DEVNULL,
                            preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_NOFILE, lim))
    try:
        zdmtest.wait_for(lambda: not zdmtest.refused(port), timeout=10)
        before = normal_request(port)
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, args.idle + 1024), hard))
        idle = []
        for _ in range(args.idle):
            s = socket.socket()
            s.settimeout(2)
            try:
                s.connect((HOST, port))
            except OSError:
                s.close()
                break
            idle.append(s)
        size0 = os.path.getsize(err_path)
        cpu0 = cpu_seconds(proc.pid)
        t0 = time.monotonic()
        got = []
        while time.monotonic() - t0 < args.seconds:
            t = time.monotonic()
            got.append(normal_request(port))
            time.sleep(max(0, 1.0 - (time.monotonic() - t)))
        elapsed = time.monotonic() - t0
        cpu = cpu_seconds(proc.pid) - cpu0
        with open(err_path, "rb") as f:
            f.seek(size0)
            tail = f.read()
        lines = tail.count(b"\n")
        for s in idle:
            s.close()
        time.sleep(1.5)
        after = normal_request(port)
        print("binary:              %s" % zdmd)
        print("RLIMIT_NOFILE:       %d (max_connections 10000)" % args.nofile)
        print("idle connections:    %d opened" % len(idle))
        print("window:              %.1f s" % elapsed)
        print("log lines / s:       %.1f (%.0f bytes / s)" % (lines / elapsed, len(tail) / elapsed))
        print("zdmd CPU:            %.0f%% of a core" % (100 * cpu / elapsed))
        print("normal client:       before %s; during %s; after the idle ones left %s"
              % (before, ", ".join(got), after))
        sample = tail.decode(errors="replace").splitlines()[:3]
        for ln in sample:
            print("  log: %s" % ln[:160])
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
        up.stop()


if __name__ == "__main__":
    main()
