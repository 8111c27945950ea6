#!/usr/bin/env python3
"""Helpers of bench/slowread.sh: one slow-read attack on one proxy, measured,
and the markdown report of every proxy's run.

Subcommands:
  measure --pid PID --port PORT --path PATH --bytes N --probes N --over SECONDS
          --timeout SECONDS --settle SECONDS --out FILE.json -- ATTACK-COMMAND...
      Starts ATTACK-COMMAND (slowhttptest, its stdout to --attack-log) and,
      while it runs, a normal client: --probes GETs of PATH evenly spread over
      --over seconds, each on a new connection with a deadline of --timeout
      seconds for the whole response (N bytes expected); and a sampler that
      reads VmRSS and the number of open descriptors of PID and its child
      processes every half second. When the attack command has exited, waits
      --settle seconds and samples once more. Writes everything to FILE.json.
  report META RESULT.json...
      The markdown report (stdout) of the runs, one column per proxy.

Only the Python standard library is used.
"""

import json
import os
import re
import socket
import subprocess
import sys
import threading
import time

HOST = "127.0.0.1"
PROXY_LABEL = {"zdmd": "zdmd", "haproxy": "HAProxy", "nginx": "NGINX"}


# ---------------------------------------------------------------- sampling

def children(pid):
    """PIDs whose parent is PID (NGINX's workers)."""
    out = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % name) as f:
                stat = f.read()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        if int(fields[1]) == pid:
            out.append(int(name))
    return out


def status_kb(pid, key):
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def nfds(pid):
    try:
        return len(os.listdir("/proc/%d/fd" % pid))
    except OSError:
        return 0


def alive(pid):
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def tcp_mem_pages():
    """Pages of memory the kernel holds for TCP sockets, all of them (the
    "mem" of /proc/net/sockstat), against which net.ipv4.tcp_mem counts."""
    try:
        with open("/proc/net/sockstat") as f:
            for line in f:
                if line.startswith("TCP:"):
                    v = line.split()
                    return int(v[v.index("mem") + 1])
    except (OSError, ValueError, IndexError):
        pass
    return 0


def sample(pid):
    """(RSS kB, VmHWM kB, descriptors, processes) summed over PID and its
    children."""
    pids = [pid] + children(pid) if alive(pid) else []
    return (sum(status_kb(p, "VmRSS") for p in pids),
            sum(status_kb(p, "VmHWM") for p in pids),
            sum(nfds(p) for p in pids), len(pids))


# ---------------------------------------------------------------- the normal client

def probe(port, path, nbytes, timeout):
    """One GET on a new connection, the whole response within TIMEOUT
    seconds: (kind, detail, seconds). kind is ok, timeout, refused, reset,
    closed (the connection ended before the whole response), short (a 200
    of the wrong length), error, or the status code of any other answer."""
    t0 = time.monotonic()
    deadline = t0 + timeout
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    got = 0

    def left():
        return max(0.001, deadline - time.monotonic())

    try:
        s.settimeout(left())
        try:
            s.connect((HOST, port))
        except (socket.timeout, TimeoutError):
            return "timeout", "connect", time.monotonic() - t0
        except ConnectionRefusedError:
            return "refused", "connect", time.monotonic() - t0
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        s.sendall(("GET %s HTTP/1.1\r\nHost: bench.test\r\nUser-Agent: slowread-probe\r\n"
                   "Accept: */*\r\n\r\n" % path).encode())
        buf = bytearray()
        head = None
        length = None
        while True:
            s.settimeout(left())
            try:
                data = s.recv(262144)
            except (socket.timeout, TimeoutError):
                what = "no response head" if head is None else "body %d of %s bytes" % (
                    len(buf), length)
                return "timeout", what, time.monotonic() - t0
            except ConnectionResetError:
                what = "before the head" if head is None else "body %d of %s bytes" % (len(buf), length)
                return "reset", what, time.monotonic() - t0
            if not data:
                what = "before the head" if head is None else "body %d of %s bytes" % (len(buf), length)
                return "closed", what, time.monotonic() - t0
            got += len(data)
            buf += data
            if head is None:
                i = buf.find(b"\r\n\r\n")
                if i < 0:
                    continue
                head = bytes(buf[:i]).decode("latin-1")
                del buf[:i + 4]
                m = re.match(r"HTTP/1\.[01] (\d{3})", head)
                if not m:
                    return "error", "not an HTTP response: %r" % head[:40], time.monotonic() - t0
                code = int(m.group(1))
                if code != 200:
                    return str(code), head.split("\r\n", 1)[0], time.monotonic() - t0
                m = re.search(r"(?im)^content-length:\s*(\d+)\s*$", head)
                length = int(m.group(1)) if m else None
            if length is not None and len(buf) >= length:
                if length != nbytes:
                    return "short", "Content-Length %d, want %d" % (length, nbytes), time.monotonic() - t0
                return "ok", "", time.monotonic() - t0
    except OSError as e:
        return "error", str(e), time.monotonic() - t0
    finally:
        s.close()


def cmd_measure(args):
    opts = {}
    i = 0
    while i < len(args) and args[i] != "--":
        opts[args[i].lstrip("-")] = args[i + 1]
        i += 2
    attack = args[i + 1:]
    pid = int(opts["pid"])
    port = int(opts["port"])
    path = opts["path"]
    nbytes = int(opts["bytes"])
    nprobes = int(opts["probes"])
    over = float(opts["over"])
    timeout = float(opts["timeout"])
    settle = float(opts.get("settle", 5))

    before = sample(pid)
    tcp_before = tcp_mem_pages()
    samples = []
    probes = [None] * nprobes
    stop = threading.Event()

    def sampler():
        while not stop.is_set():
            rss, hwm, fds, nproc = sample(pid)
            samples.append((round(time.monotonic() - t0, 2), rss, fds, nproc, hwm, tcp_mem_pages()))
            stop.wait(0.5)

    def run_probe(k, at):
        delay = at - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        kind, detail, secs = probe(port, path, nbytes, timeout)
        probes[k] = {"at": round(at - t0, 2), "kind": kind, "detail": detail,
                     "seconds": round(secs, 3)}

    log = open(opts["attack-log"], "wb")
    t0 = time.monotonic()
    proc = subprocess.Popen(attack, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    th_s = threading.Thread(target=sampler, daemon=True)
    th_s.start()
    # Evenly spread over the attack: the first at its start, the last one
    # interval before its end.
    step = over / nprobes
    ths = []
    for k in range(nprobes):
        t = threading.Thread(target=run_probe, args=(k, t0 + k * step), daemon=True)
        t.start()
        ths.append(t)
    try:
        rc = proc.wait(timeout=over + 120)
    except subprocess.TimeoutExpired:
        proc.kill()
        rc = proc.wait()
    attack_s = time.monotonic() - t0
    for t in ths:
        t.join(timeout + 5)
    stop.set()
    th_s.join(5)
    log.close()
    time.sleep(settle)
    after = sample(pid)
    out = {
        "before": {"rss_kb": before[0], "fds": before[2], "procs": before[3]},
        "after": {"rss_kb": after[0], "fds": after[2], "procs": after[3], "settle_s": settle},
        # VmHWM, read with every sample: a peak between two samples.
        "hwm_kb": max([s[4] for s in samples] + [before[1], after[1]]),
        "peak_rss_kb": max([s[1] for s in samples] + [before[0]]),
        "peak_fds": max([s[2] for s in samples] + [before[2]]),
        "tcp_mem_before": tcp_before,
        "peak_tcp_mem": max([s[5] for s in samples] + [tcp_before]),
        "alive": alive(pid),
        "attack_rc": rc,
        "attack_s": round(attack_s, 1),
        "probes": probes,
        "samples": samples,
    }
    with open(opts["out"], "w") as f:
        json.dump(out, f)
    return 0


# ---------------------------------------------------------------- slowhttptest output

ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


def parse_slowhttptest(path):
    """The status reports slowhttptest prints every 5 s, its exit status and
    the per-second CSV (written with -g -o PREFIX next to PATH)."""
    try:
        text = ANSI.sub("", open(path, encoding="utf-8", errors="replace").read())
    except OSError:
        return None
    reports = []
    for m in re.finditer(r"status on (\d+)th second:(.*?)service available:\s*(\w+)", text, re.S):
        r = {"second": int(m.group(1)), "available": m.group(3)}
        for k in ("initializing", "pending", "connected", "error", "closed"):
            mm = re.search(r"%s:\s*(\d+)" % k, m.group(2))
            r[k] = int(mm.group(1)) if mm else None
        reports.append(r)
    ended = re.search(r"Test ended on (\d+)th second", text)
    status = re.search(r"Exit status:\s*(.+)", text)
    csv_rows = []
    csv_path = re.sub(r"\.log$", "", path) + ".csv"
    try:
        with open(csv_path) as f:
            lines = f.read().split()
        for ln in lines[1:]:
            v = ln.split(",")
            if len(v) == 5 and all(x.strip().isdigit() for x in v):
                csv_rows.append([int(x) for x in v])
    except OSError:
        pass
    fatal = [ln.strip() for ln in text.splitlines() if re.search(r"(?i)fatal|error:|cannot|unable", ln)
             and not re.match(r"\s*error:\s*\d+\s*$", ln)]
    return {"reports": reports, "ended": int(ended.group(1)) if ended else None,
            "status": status.group(1).strip() if status else None, "csv": csv_rows,
            "problems": fatal[:3]}


# ---------------------------------------------------------------- report

def fmt_kb(kb):
    if kb >= 1024 * 10:
        return "{:,.0f} MiB".format(kb / 1024)
    if kb >= 1024:
        return "{:,.1f} MiB".format(kb / 1024)
    return "{:,} KiB".format(kb)


def load_meta(path):
    meta = {"note": [], "version": [], "proxy_note": {}}
    with open(path) as f:
        for line in f:
            k, _, v = line.rstrip("\n").partition("=")
            if k in ("note", "version"):
                meta[k].append(v)
            elif k == "proxy_note":
                p, _, text = v.partition("|")
                meta["proxy_note"].setdefault(p, []).append(text)
            else:
                meta[k] = v
    return meta


def tcp_mem_mib(meta, i):
    try:
        pages = int(meta["tcp_mem"].split()[i])
        return "{:,.0f} MiB".format(pages * int(meta.get("page_size", 4096)) / 1048576.0)
    except (KeyError, ValueError, IndexError):
        return "?"


def tcp_wmem_max(meta):
    try:
        return "{:,.0f} MiB".format(int(meta["tcp_wmem"].split()[2]) / 1048576.0)
    except (KeyError, ValueError, IndexError):
        return "net.ipv4.tcp_wmem's maximum"


def failures(probes):
    kinds = {}
    for p in probes:
        if p and p["kind"] != "ok":
            kinds[p["kind"]] = kinds.get(p["kind"], 0) + 1
    return kinds


def cmd_report(meta_path, paths):
    meta = load_meta(meta_path)
    runs = []
    for path in paths:
        name = os.path.basename(path).rsplit(".", 1)[0]
        with open(path) as f:
            r = json.load(f)
        r["name"] = name
        r["sht"] = parse_slowhttptest(os.path.join(os.path.dirname(path), "slowhttptest-%s.log" % name))
        runs.append(r)
    n = int(meta.get("probes", 70))
    out = []
    w = out.append
    w("# Slow-read attack: zdmd, HAProxy and NGINX")
    w("")
    w("%s; `%s`." % (meta.get("date", "?"), meta.get("command", "bench/slowread.sh")))
    w("")
    w("Each proxy, started alone in front of the same upstream nginx, gets `%s` "
      "(slow read: %s connections opened at %s/s, each asking for `%s` (%s bytes) %s times in a "
      "row on one keep-alive connection, advertising a receive window of %s to %s bytes and "
      "reading %s bytes every %s s, for %s s). Meanwhile a normal client makes %d GETs of the same "
      "URL at an even pace over the attack, each on a new connection with %s s for the whole "
      "response." % (
          meta.get("attack", "?"), meta.get("conns"), meta.get("rate"), meta.get("path"),
          "{:,}".format(int(meta.get("bytes", 0))), meta.get("pipeline"), meta.get("win_min"),
          meta.get("win_max"), meta.get("read_bytes"), meta.get("read_every"), meta.get("length"),
          n, meta.get("probe_timeout")))
    w("")
    cols = [r["name"] for r in runs]
    w("| | " + " | ".join(PROXY_LABEL.get(c, c) for c in cols) + " |")
    w("|---|" + "---:|" * len(cols))

    def row(label, f):
        cells = []
        for r in runs:
            try:
                cells.append(f(r))
            except Exception:
                cells.append("?")
        w("| %s | %s |" % (label, " | ".join(cells)))

    def ok_cell(r):
        ok = sum(1 for p in r["probes"] if p and p["kind"] == "ok")
        return "**%d / %d**" % (ok, n)

    def fail_cell(r):
        k = failures(r["probes"])
        return ", ".join("%s %d" % (kk, vv) for kk, vv in sorted(k.items(), key=lambda x: -x[1])) or "none"

    def first_fail(r):
        t = [p["at"] for p in r["probes"] if p and p["kind"] != "ok"]
        return "%.0f s" % min(t) if t else "-"

    def ok_latency(r):
        s = sorted(p["seconds"] for p in r["probes"] if p and p["kind"] == "ok")
        if not s:
            return "-"
        return "%.0f ms / %.0f ms" % (s[len(s) // 2] * 1000, s[-1] * 1000)

    row("normal requests served OK", ok_cell)
    row("failures by kind", fail_cell)
    row("first failure, s into the attack", first_fail)
    row("OK requests: median / slowest", ok_latency)
    row("RSS before → peak (VmHWM)", lambda r: "%s → **%s**" % (fmt_kb(r["before"]["rss_kb"]),
                                                                 fmt_kb(max(r["hwm_kb"], r["peak_rss_kb"]))))
    row("descriptors before → peak", lambda r: "%d → **%s**" % (r["before"]["fds"], "{:,}".format(r["peak_fds"])))
    row("%s s after the attack: RSS, descriptors" % runs[0]["after"]["settle_s"] if runs else "after",
        lambda r: ("%s, %d" % (fmt_kb(r["after"]["rss_kb"]), r["after"]["fds"])) if r["alive"]
        else "**exited**")

    page_mib = int(meta.get("page_size", 4096)) / 1048576.0
    row("kernel TCP memory before → peak (all sockets)", lambda r: "%.0f → **%.0f MiB**" % (
        r["tcp_mem_before"] * page_mib, r["peak_tcp_mem"] * page_mib))

    def sht(r, f):
        s = r["sht"]
        if not s or not s["reports"]:
            return "no output"
        return f(s)

    row("slowhttptest: peak connected", lambda r: sht(r, lambda s: "{:,}".format(
        max([x["connected"] or 0 for x in s["reports"]] + [c[3] for c in s["csv"]]))))
    row("slowhttptest at the end: closed / pending / connected / error", lambda r: sht(r, lambda s: "%s / %s / %s / %s" % tuple(
        "{:,}".format(s["reports"][-1][k]) if s["reports"][-1][k] is not None else "?"
        for k in ("closed", "pending", "connected", "error"))))
    row("slowhttptest: service available", lambda r: sht(r, lambda s: "YES in %d of %d reports (last: %s)" % (
        sum(1 for x in s["reports"] if x["available"] == "YES"), len(s["reports"]),
        s["reports"][-1]["available"])))
    row("slowhttptest: exit status", lambda r: sht(r, lambda s: "%s, at %s s" % (s["status"], s["ended"])))
    row("proxy still running after", lambda r: "yes" if r["alive"] else "**no**")
    w("")
    w("*Normal requests*: a GET answered 200 with the whole %s-byte body within %s s is OK; "
      "`timeout` = no connection, or not the whole response, within %s s; `reset` = the connection "
      "was reset, `closed` = closed before the whole response; `503` and other codes are the "
      "proxy's answers. *RSS* is the sum of VmRSS over the proxy's processes (NGINX: master and "
      "worker), sampled every 0.5 s, or the sum of their VmHWM when higher; *descriptors* are "
      "the entries of /proc/PID/fd summed the same way (sockets, pipes, files). *slowhttptest* "
      "prints its status every 5 s; *service available* is its own probe (a request that must be "
      "answered within %s s). *Kernel TCP memory* is what /proc/net/sockstat counts for every "
      "TCP socket of the machine (mostly the responses queued to the attacking connections); the "
      "kernel is under memory pressure above %s and refuses more above %s (net.ipv4.tcp_mem)." % ("{:,}".format(int(meta.get("bytes", 0))), meta.get("probe_timeout"),
                                  meta.get("probe_timeout"), meta.get("probe_timeout"),
                                  tcp_mem_mib(meta, 1), tcp_mem_mib(meta, 2)))
    w("")
    for r in runs:
        notes = meta["proxy_note"].get(r["name"], [])
        if notes:
            w("* %s: %s" % (PROXY_LABEL.get(r["name"], r["name"]), " ".join(notes)))
    for note in meta["note"]:
        w("* %s" % note)
    w("")
    w("<details><summary>Every normal request, and the proxies' memory and descriptors over time</summary>")
    w("")
    for r in runs:
        w("**%s** (s into the attack: result, seconds):" % PROXY_LABEL.get(r["name"], r["name"]))
        w("")
        w("```")
        line = []
        for p in r["probes"]:
            if not p:
                continue
            line.append("%5.1f %-7s %5.2f%s" % (p["at"], p["kind"], p["seconds"],
                                                (" (%s)" % p["detail"]) if p["detail"] else ""))
        w("\n".join(line))
        w("```")
        w("")
        w("```")
        w("t(s)  RSS(MiB)  descriptors")
        step = max(1, len(r["samples"]) // 20)
        for s in r["samples"][::step]:
            w("%5.1f %8.1f %12d" % (s[0], s[1] / 1024.0, s[2]))
        w("```")
        w("")
    w("</details>")
    w("")
    if meta.get("netns") == "1":
        w("Everything runs in a network namespace of its own, on its loopback (127.0.0.1) with MTU %s, "
          "the size of an Ethernet path: with the 64 KiB MTU of the host's loopback the kernel "
          "grows each connection's send buffer to %s and takes whole responses off the proxy, so "
          "that the attack tests the kernel's memory instead of the proxy (`NETNS=0` measures it "
          "that way)." % (meta.get("lo_mtu", "?"), tcp_wmem_max(meta)))
    else:
        w("Measured on the host's loopback (MTU %s): the kernel grows each connection's send buffer "
          "up to %s, so most of every response may wait in the kernel rather than in the proxy." % (
              meta.get("lo_mtu", "?"), tcp_wmem_max(meta)))
    w("")
    w("Machine: %s, %s cores, kernel %s; open-file limit %s. The proxy runs on CPU %s; "
      "slowhttptest, the normal client and the upstream on CPU %s." % (
          meta.get("cpu", "?"), meta.get("cores", "?"), meta.get("kernel", "?"),
          meta.get("nofile", "?"), meta.get("proxy_cpu", "?"), meta.get("client_cpu", "?")))
    w("")
    for v in meta["version"]:
        w("* " + v)
    print("\n".join(out))
    return 0


def main(argv):
    if len(argv) < 2:
        print(__doc__, file=sys.stderr)
        return 2
    if argv[1] == "measure":
        return cmd_measure(argv[2:])
    if argv[1] == "report":
        return cmd_report(argv[2], argv[3:])
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
