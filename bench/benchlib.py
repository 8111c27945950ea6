#!/usr/bin/env python3
"""Helpers for bench/run.sh: parse wrk output, check the split, render the report.

Subcommands:
  parse-wrk FILE            print "requests rps p99_ms errors tls_conns tls_resumed" for one
                            wrk --latency output (the last two from wrk-tls-shim, else 0 0)
  split HOST PORT PATH N    send N keep-alive GETs, print "old=X new=Y other=Z" from X-Pool
  fetch HOST PORT PATH      print "status length" of one GET (body read in full)
  scrape HOST PORT PATH SEC GET PATH every SEC seconds until SIGTERM, then print
                            "scrapes N errors E bytes B"
  tls-info FILE             print "protocol, cipher, key exchange, ALPN, verify" from
                            `openssl s_client` output
  run-line RESULTS.tsv      print a progress line for the last run recorded
  report RESULTS.tsv META   print the markdown report
  strace-line FILE N        print syscalls per request from `strace -c` output over N requests
  perf-line FILE N          the same from `perf stat -x,` output on the syscall tracepoints
  malloc-counts FILE        print "malloc calloc realloc free memalign bytes" from a
                            malloc-count.c counter file
  allocs-line C0 C1 C2 C3 N CONNS CHURN
                            print allocations per request and per connection from four
                            malloc-counts readings (see alloc_figures)
  extra-report EXTRA.tsv SCALING.tsv IDLE.tsv META
                            print the markdown report of the extra mode

Only the Python standard library is used.
"""

import http.client
import re
import signal
import statistics
import sys
import time

UNIT_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0, "h": 3600000.0}


def parse_duration_ms(text):
    m = re.fullmatch(r"([0-9.]+)(us|ms|s|m|h)", text)
    if not m:
        raise ValueError("unrecognised wrk duration %r" % text)
    return float(m.group(1)) * UNIT_MS[m.group(2)]


def parse_wrk(path):
    """Return (requests, rps, p99_ms, errors) from one `wrk --latency` output."""
    with open(path, encoding="utf-8", errors="replace") as f:
        text = f.read()
    m = re.search(r"^\s*(\d+) requests in ", text, re.M)
    requests = int(m.group(1)) if m else 0
    m = re.search(r"^Requests/sec:\s*([0-9.]+)", text, re.M)
    rps = float(m.group(1)) if m else 0.0
    m = re.search(r"^\s*99(?:\.000)?%\s+([0-9.]+(?:us|ms|s|m|h))\s*$", text, re.M)
    p99 = parse_duration_ms(m.group(1)) if m else float("nan")
    errors = 0
    m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text)
    if m:
        errors += sum(int(g) for g in m.groups())
    m = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
    if m:
        errors += int(m.group(1))
    m = re.search(r"^tls-shim: connections (\d+) resumed (\d+)", text, re.M)
    tls_conns, tls_resumed = (int(m.group(1)), int(m.group(2))) if m else (0, 0)
    return requests, rps, p99, errors, tls_conns, tls_resumed


def cmd_parse_wrk(path):
    requests, rps, p99, errors, tls_conns, tls_resumed = parse_wrk(path)
    print("%d %.2f %.4f %d %d %d" % (requests, rps, p99, errors, tls_conns, tls_resumed))


class Stop(Exception):
    pass


def cmd_scrape(host, port, path, interval):
    """GET PATH every INTERVAL seconds, as a Prometheus server would, until SIGTERM."""
    def stop(signum, frame):
        raise Stop()
    signal.signal(signal.SIGTERM, stop)
    interval = float(interval)
    scrapes = errors = nbytes = 0
    try:
        next_at = time.monotonic()
        while True:
            try:
                conn = http.client.HTTPConnection(host, int(port), timeout=5)
                conn.request("GET", path)
                resp = conn.getresponse()
                body = resp.read()
                conn.close()
                scrapes += 1
                nbytes += len(body)
                if resp.status != 200:
                    errors += 1
            except (OSError, http.client.HTTPException):
                errors += 1
            next_at += interval
            time.sleep(max(0.0, next_at - time.monotonic()))
    except Stop:
        pass
    print("scrapes %d errors %d bytes %d" % (scrapes, errors, nbytes))


def cmd_tls_info(path):
    """What `openssl s_client` negotiated: protocol, cipher, key exchange, ALPN, verification."""
    with open(path, encoding="utf-8", errors="replace") as f:
        text = f.read()
    def find(pattern, default="?"):
        m = re.search(pattern, text, re.M)
        return m.group(1).strip() if m else default
    protocol = find(r"^\s*Protocol\s*:\s*(\S+)")
    cipher = find(r"^\s*Cipher\s*:\s*(\S+)")
    if protocol == "?" or cipher == "?":
        m = re.search(r"^New, (\S+), Cipher is (\S+)", text, re.M)
        if m:
            protocol, cipher = m.group(1), m.group(2)
    group = find(r"^(?:Server|Peer) Temp Key:\s*([^,\n]+)")
    sig = find(r"^Peer signature type:\s*(\S+)", "")
    alpn = find(r"^ALPN protocol:\s*(\S+)", "none")
    verify = find(r"^\s*Verify return code:\s*(.+)$")
    print("%s, %s, key exchange %s%s, ALPN %s, verify %s" % (
        protocol, cipher, group, (", signature " + sig) if sig else "", alpn, verify))


def cmd_split(host, port, path, n):
    counts = {"old": 0, "new": 0, "other": 0}
    conn = http.client.HTTPConnection(host, int(port), timeout=5)
    for _ in range(int(n)):
        conn.request("GET", path)
        resp = conn.getresponse()
        resp.read()
        pool = resp.getheader("X-Pool", "") if resp.status == 200 else ""
        counts[pool if pool in counts else "other"] += 1
    conn.close()
    print("old=%d new=%d other=%d" % (counts["old"], counts["new"], counts["other"]))


def cmd_fetch(host, port, path):
    conn = http.client.HTTPConnection(host, int(port), timeout=5)
    conn.request("GET", path)
    resp = conn.getresponse()
    body = resp.read()
    conn.close()
    print("%d %d" % (resp.status, len(body)))


# ---------------------------------------------------------------- report

SIZE_LABEL = {"tiny": "tiny (13 B)", "4k": "4 KiB", "1m": "1 MiB",
              "up1m": "1 MiB upload (POST of 1 MiB, 3-byte answer)",
              "close": "plain HTTP, tiny, Connection: close (a new TCP connection per request)",
              "tls-ka": "TLS, keep-alive, tiny",
              "tls-full": "TLS, Connection: close, full handshake per request",
              "tls-resume": "TLS, Connection: close, handshake per request resumed as wrk does by itself"}
SHORT_LABEL = {"tiny": "tiny", "4k": "4k", "1m": "1m", "up1m": "1m upload", "close": "close", "tls-ka": "TLS keep-alive",
               "tls-full": "TLS full handshake", "tls-resume": "TLS resumed handshake"}
PROXY_LABEL = {"zdmd": "zdmd", "zdmd+obs": "zdmd+obs (metrics + access log)", "haproxy": "HAProxy",
               "nginx": "NGINX", "relay": "floor: byte relay, no HTTP (bench/relay.c)",
               "direct": "no proxy (upstream direct)"}
FLOOR = "relay"   # not a proxy: the floor row (see floor_gaps)
HANDSHAKE = ("tls-full", "tls-resume")   # one TLS handshake per request


def fmt_num(x, digits):
    if x is None or x != x:
        return "–"
    return "%.*f" % (digits, x)


def fmt_rps(x):
    if x is None or x != x:
        return "–"
    return "{:,.0f}".format(x)


def fmt_p99(ms):
    if ms is None or ms != ms:
        return "–"
    if ms < 1.0:
        return "%.0f µs" % (ms * 1000.0)
    if ms < 100.0:
        return "%.2f ms" % ms
    return "%.0f ms" % ms


def ratio(a, b):
    if a is None or b is None or a != a or b != b or b == 0:
        return None
    return a / b


FIELDS = ("size proxy round requests rps p99_ms errors server_ticks upstream_ticks wrk_s clk_tck same_core "
          "c_busy c_irq c_steal c_total p_busy p_irq p_steal p_total peak_rss_kb "
          "tls_conns tls_resumed scrapes scrape_errors log_lines").split()
NOISE_LIMIT = 0.05   # other work above 5% of a core marks a run as disturbed


def derive(raw):
    """Figures of one run from the raw counters run.sh records.

    cpu:   the measured server's utime+stime per request (µs).
    other: share of a core used by anything but wrk, the upstream and the server
           under test (the larger of the two cores), from the busy, irq and softirq
           ticks of /proc/stat; steal: share taken by the hypervisor. Both tell how
           disturbed a run was. Without IRQ time accounting the kernel charges
           softirq work to the process it interrupts, so busy + irq + softirq of a
           core is what its processes are charged with.
    """
    r = {}
    for k in FIELDS:
        v = raw.get(k, "0")
        if k in ("size", "proxy"):
            r[k] = v
        elif k in ("rps", "p99_ms", "wrk_s"):
            r[k] = float(v)
        else:
            r[k] = int(v)
    r["p99"] = r.pop("p99_ms")
    tick_us = 1e6 / r["clk_tck"]
    n = r["requests"]
    direct = r["proxy"] == "direct"
    r["cpu"] = r["server_ticks"] * tick_us / n if n else float("nan")
    wrk_ticks = r["wrk_s"] * r["clk_tck"]
    proxy_ticks = 0 if direct else r["server_ticks"]
    c_all = r["c_busy"] + r["c_irq"]
    p_all = r["p_busy"] + r["p_irq"]
    if r["same_core"] == 2:
        # The server was free to run on either core: count both together.
        other = [(c_all + p_all - r["upstream_ticks"] - wrk_ticks - proxy_ticks)
                 / max((r["c_total"] + r["p_total"]) / 2.0, 1)]
    elif r["same_core"]:
        other = [(c_all - r["upstream_ticks"] - wrk_ticks - proxy_ticks) / max(r["c_total"], 1)]
    else:
        other = [(c_all - r["upstream_ticks"] - wrk_ticks) / max(r["c_total"], 1),
                 (p_all - proxy_ticks) / max(r["p_total"], 1)]
    r["other"] = max(0.0, max(other))
    # The client's core (wrk, the upstream nginx and the interrupts they take) per request:
    # while it is saturated, req/s is the inverse of this.
    r["client_cpu"] = c_all * tick_us / n if n and not r["same_core"] else float("nan")
    r["steal"] = (r["c_steal"] + r["p_steal"]) / max(r["c_total"] + r["p_total"], 1)
    r["disturbed"] = r["other"] > NOISE_LIMIT or r["steal"] > NOISE_LIMIT / 2
    return r


def load_results(path):
    rows = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            line = line.rstrip("\n")
            if not line or line.startswith("#"):
                continue
            rows.append(derive(dict(zip(FIELDS, line.split("\t")))))
    return rows


def cmd_run_line(path):
    """One progress line for the last run recorded in PATH."""
    r = load_results(path)[-1]
    line = "%-5s %-8s round %d: %9.0f req/s  p99 %8.3f ms  CPU %7.2f µs/req" % (
        r["size"], r["proxy"], r["round"], r["rps"], r["p99"], r["cpu"])
    line += "  errors %d" % r["errors"]
    details = run_details(r)
    if details:
        line += "  (%s)" % details
    if r["disturbed"]:
        line += "  [other load %.0f%% of a core, steal %.0f%%]" % (100 * r["other"], 100 * r["steal"])
    print(line)


def load_meta(path):
    meta = {"notes": [], "versions": [], "tls_info": []}
    with open(path, encoding="utf-8") as f:
        for line in f:
            line = line.rstrip("\n")
            if "=" not in line:
                continue
            key, value = line.split("=", 1)
            if key == "note":
                meta["notes"].append(value)
            elif key == "version":
                meta["versions"].append(value)
            elif key == "tls_info":
                meta["tls_info"].append(value)
            else:
                meta[key] = value
    return meta


def median_of(rows, key):
    vals = [r[key] for r in rows if r[key] == r[key]]
    return statistics.median(vals) if vals else float("nan")


def obs_cost(med, size):
    """(µs, %) CPU per request that metrics + access log add to zdmd at SIZE, from the medians."""
    plain, obs = med.get((size, "zdmd")), med.get((size, "zdmd+obs"))
    if not plain or not obs or plain["cpu"] != plain["cpu"] or obs["cpu"] != obs["cpu"] or not plain["cpu"]:
        return None
    d = obs["cpu"] - plain["cpu"]
    return d, 100.0 * d / plain["cpu"]


def floor_gaps(med, size, proxies):
    """[(proxy, µs)] CPU per request each proxy spends above the floor (relay) at SIZE, from
    the medians: what the proxy does besides the socket calls every proxy must make."""
    floor = med.get((size, FLOOR))
    if not floor or floor["cpu"] != floor["cpu"]:
        return []
    gaps = []
    for proxy in proxies:
        m = med.get((size, proxy))
        if proxy != FLOOR and m and m["cpu"] == m["cpu"]:
            gaps.append((proxy, m["cpu"] - floor["cpu"]))
    return gaps


def round_ratios(rows, size, proxies):
    """[(proxy, [CPU ÷ HAProxy's CPU in the same round, ...])] at SIZE: the spread
    of the ratio from one round to the next, which the ratio of medians hides."""
    ha = {r["round"]: r["cpu"] for r in rows if r["size"] == size and r["proxy"] == "haproxy"}
    if len(ha) < 2:
        return []
    out = []
    for p in proxies:
        if p == "haproxy":
            continue
        v = [r["cpu"] / ha[r["round"]] for r in sorted(rows, key=lambda r: r["round"])
             if r["size"] == size and r["proxy"] == p and ha.get(r["round"])]
        if v:
            out.append((p, v))
    return out


def fmt_gaps(gaps):
    return ", ".join("%s %+.1f µs/req" % (PROXY_LABEL.get(p, p), d) for p, d in gaps)


def run_details(r):
    """Per-run extras: TLS resumption as wrk saw it, scrapes and access-log lines of zdmd+obs."""
    parts = []
    if r["tls_conns"]:
        parts.append("%d TLS connections, %.1f%% resumed" % (r["tls_conns"], 100.0 * r["tls_resumed"] / r["tls_conns"]))
    if r["proxy"] == "zdmd+obs":
        parts.append("%d scrapes%s, access-log lines ÷ requests %s" % (
            r["scrapes"], (" (%d failed)" % r["scrape_errors"]) if r["scrape_errors"] else "",
            fmt_num(r["log_lines"] / r["requests"], 3) if r["requests"] else "–"))
    return "; ".join(parts)


def cmd_report(results_path, meta_path):
    rows = load_results(results_path)
    meta = load_meta(meta_path)
    mode = meta.get("mode", "plain")
    sizes = [s for s in meta.get("sizes", "tiny 4k 1m").split() if any(r["size"] == s for r in rows)]
    proxies = meta.get("proxies", "").split()

    med = {}
    for size in sizes:
        for proxy in proxies + ["direct"]:
            sel = [r for r in rows if r["size"] == size and r["proxy"] == proxy]
            if not sel:
                continue
            conns = sum(r["tls_conns"] for r in sel)
            med[(size, proxy)] = {
                "rps": median_of(sel, "rps"), "p99": median_of(sel, "p99"),
                "cpu": median_of(sel, "cpu"), "client_cpu": median_of(sel, "client_cpu"),
                "errors": sum(r["errors"] for r in sel),
                "disturbed": sum(1 for r in sel if r["disturbed"]), "runs": len(sel),
                "resumed": (sum(r["tls_resumed"] for r in sel) / conns) if conns else None,
            }

    out = []
    w = out.append
    w("# zdm proxy benchmark" + {"tls": " — TLS termination", "obs": " — cost of metrics and access log"}.get(mode, ""))
    w("")
    w("Date: %s  " % meta.get("date", "?"))
    w("Host: %s, %s cores, Linux %s  " % (meta.get("cpu", "?"), meta.get("cores", "?"), meta.get("kernel", "?")))
    w("Command: `%s`  " % meta.get("command", "bench/run.sh"))
    w("Load: `wrk -t1 -c%s` (1 MiB: `-c%s`), %s s per run after a %s s warm-up, %s round(s) interleaved, "
      "medians shown. wrk and the upstream nginx on CPU %s, the proxy under test alone on CPU %s. "
      "CPU µs/req = the proxy's utime+stime (/proc/PID/stat) over the run ÷ requests wrk completed." % (
          meta.get("conns", "?"), meta.get("conns_1m", "?"), meta.get("duration", "?"),
          meta.get("warmup", "?"), meta.get("rounds", "?"), meta.get("client_cpu", "?"),
          meta.get("proxy_cpu", "?")))
    if "zdmd+obs" in proxies:
        w("zdmd+obs = zdmd with `admin:` on a loopback port, `access_log:` (text) to a file and `/metrics` "
          "scraped once per second during its runs; measured at %s." % meta.get("obs_sizes", "?"))
    if FLOOR in proxies:
        w("floor = `bench/relay.c`, not a proxy: an epoll byte relay with no HTTP at all (no parsing, no "
          "headers added, no routing per request); each client connection gets its own upstream connection, "
          "chosen 90/10 per connection, and each readable event costs one recv and one send. Measured like "
          "the proxies, in the same rounds, at %s." % meta.get("relay_sizes", "?"))
    if mode == "tls":
        w("TLS: every proxy terminates TLS on its own port with the same %s certificate for `bench.test`, "
          "signed by a CA made for the run; upstreams are plain HTTP as in the other modes. "
          "Connection: close runs make one TCP connection and one TLS handshake per request; "
          "*full* makes wrk drop its session after every connection (wrk-tls-shim.c), *resumed* lets wrk "
          "offer the session it kept, as it does by itself." % meta.get("tls_key", "?"))
    w("")

    if meta["tls_info"]:
        w("## TLS negotiated (openssl s_client)")
        w("")
        w("| proxy | negotiated |")
        w("|---|---|")
        for line in meta["tls_info"]:
            proxy, _, info = line.partition("|")
            w("| %s | %s |" % (PROXY_LABEL.get(proxy, proxy), info or "–"))
        w("")

    has_ha = "haproxy" in proxies
    for size in sizes:
        hs = size in HANDSHAKE
        rate, unit = ("handshakes/s", "CPU µs/handshake") if hs else ("req/s", "CPU µs/req")
        resumed = any(med.get((size, p), {}).get("resumed") is not None for p in proxies)
        w("## %s" % SIZE_LABEL.get(size, size))
        w("")
        w("| proxy | %s | p99 | %s | %s ÷ HAProxy | p99 ÷ HAProxy | CPU ÷ HAProxy | %s |" % (
            rate, unit, rate, "resumed" if resumed else "req/s ÷ no proxy"))
        w("|---|---:|---:|---:|---:|---:|---:|---:|")
        ha = med.get((size, "haproxy")) if has_ha else None
        direct = med.get((size, "direct"))
        for proxy in proxies:
            m = med.get((size, proxy))
            if not m:
                continue
            flag = " ⚠" if m["errors"] else ""
            if resumed:
                last = fmt_num(100.0 * m["resumed"], 1) + "%" if m["resumed"] is not None else "–"
            else:
                last = fmt_num(ratio(m["rps"], direct["rps"]) if direct else None, 2)
            w("| %s%s | %s | %s | %s | %s | %s | %s | %s |" % (
                PROXY_LABEL.get(proxy, proxy), flag, fmt_rps(m["rps"]), fmt_p99(m["p99"]),
                fmt_num(m["cpu"], 1),
                fmt_num(ratio(m["rps"], ha["rps"]) if ha else None, 2),
                fmt_num(ratio(m["p99"], ha["p99"]) if ha else None, 2),
                fmt_num(ratio(m["cpu"], ha["cpu"]) if ha else None, 2),
                last))
        if direct:
            w("| %s | %s | %s | %s (upstream) | | | | 1.00 |" % (
                PROXY_LABEL["direct"], fmt_rps(direct["rps"]), fmt_p99(direct["p99"]),
                fmt_num(direct["cpu"], 1)))
        w("")
        c = obs_cost(med, size)
        if c:
            w("metrics + access log cost: %+.2f µs/req (%+.1f%%)" % c)
            w("")
        gaps = floor_gaps(med, size, proxies)
        if gaps:
            w("above the floor: %s" % fmt_gaps(gaps))
            w("")
        paired = round_ratios(rows, size, proxies)
        if paired:
            w("CPU ÷ HAProxy round by round (a round measures every proxy back to back): %s" % "; ".join(
                "%s %s" % (PROXY_LABEL.get(p, p).split(":")[0], ", ".join("%.2f" % x for x in v))
                for p, v in paired))
            w("")
        client = [(p, med[(size, p)]["client_cpu"]) for p in proxies + ["direct"]
                  if (size, p) in med and med[(size, p)]["client_cpu"] == med[(size, p)]["client_cpu"]]
        if client and size not in HANDSHAKE:
            w("client core (wrk, upstream, their interrupts) per request: %s" % ", ".join(
                "%s %.1f µs" % ("no proxy" if p == "direct" else PROXY_LABEL.get(p, p).split(":")[0], v)
                for p, v in client))
            w("")

    w("## Summary")
    w("")
    head = "| proxy | " + " | ".join("%s CPU µs/%s" % (SHORT_LABEL.get(s, s), "handshake" if s in HANDSHAKE else "req")
                                    for s in sizes)
    direct_tiny = med.get(("tiny", "direct"))
    if direct_tiny:
        head += " | tiny req/s ÷ no proxy"
    w(head + " |")
    w("|---|" + "---:|" * (len(sizes) + (1 if direct_tiny else 0)))
    for proxy in proxies:
        cells = []
        for size in sizes:
            m = med.get((size, proxy))
            if not m:
                cells.append("–")
                continue
            ha = med.get((size, "haproxy"))
            r = ratio(m["cpu"], ha["cpu"]) if ha and proxy != "haproxy" else None
            cells.append(fmt_num(m["cpu"], 1) + (" (%.2f×)" % r if r is not None else ""))
        if direct_tiny:
            m = med.get(("tiny", proxy))
            cells.append(fmt_num(ratio(m["rps"], direct_tiny["rps"]) if m else None, 2))
        w("| %s | %s |" % (PROXY_LABEL.get(proxy, proxy), " | ".join(cells)))
    if has_ha:
        w("")
        w("(×) = ratio to HAProxy in the same run; below 1 means less CPU per request.")
    if any((size, FLOOR) in med for size in sizes):
        w("")
        w("The floor row is the CPU per request of a relay that makes only the socket calls every proxy must "
          "make (one read and one write per direction, epoll) and nothing else: what the kernel charges for "
          "them on this machine. The difference between a proxy's figure and the floor is that proxy's own "
          "work (HTTP parsing, headers, routing, buffering, timers).")
        gap_lines = [(size, floor_gaps(med, size, proxies)) for size in sizes]
        gap_lines = [(size, g) for size, g in gap_lines if g]
        if gap_lines:
            w("")
            for size, g in gap_lines:
                w("- %s, above the floor: %s" % (SIZE_LABEL.get(size, size), fmt_gaps(g)))
    costs = [(size, obs_cost(med, size)) for size in sizes]
    costs = [(size, c) for size, c in costs if c]
    if costs:
        w("")
        for size, c in costs:
            w("- %s: metrics + access log cost: %+.2f µs/req (%+.1f%%)" % (SIZE_LABEL.get(size, size), c[0], c[1]))
    if mode == "tls":
        lines = []
        for proxy in proxies:
            parts = []
            for tls, plain, what in (("tls-ka", "tiny", "TLS on a keep-alive request"),
                                     ("tls-full", "close", "a full handshake"),
                                     ("tls-resume", "close", "a resumed handshake")):
                a, b = med.get((tls, proxy)), med.get((plain, proxy))
                if a and b and a["cpu"] == a["cpu"] and b["cpu"] == b["cpu"]:
                    parts.append("%s %+.1f µs" % (what, a["cpu"] - b["cpu"]))
            if parts:
                lines.append("- %s: %s" % (PROXY_LABEL.get(proxy, proxy), ", ".join(parts)))
        if lines:
            w("")
            w("CPU that TLS adds per request, over the same request on plain HTTP (keep-alive: over `tiny`; "
              "handshakes: over `close`, which also opens a TCP connection per request):")
            w("")
            out.extend(lines)
    w("")

    notes = list(meta["notes"])
    for (size, proxy), v in sorted(med.items()):
        if v["errors"]:
            notes.append("⚠ %s / %s: %d socket errors or non-2xx responses over %d run(s) (see raw wrk output)."
                         % (PROXY_LABEL.get(proxy, proxy), size, v["errors"], v["runs"]))
    disturbed = [r for r in rows if r["disturbed"]]
    if disturbed:
        notes.append("%d of %d runs were disturbed by other work on the machine (more than %.0f%% of a core "
                     "used by other processes, or stolen by the hypervisor; marked * below, worst %.0f%%): "
                     "req/s and p99 of those runs are less reliable, CPU µs/req much less affected."
                     % (len(disturbed), len(rows), 100 * NOISE_LIMIT,
                        100 * max(max(r["other"], r["steal"]) for r in disturbed)))
    if notes:
        w("## Notes")
        w("")
        for n in notes:
            w("- %s" % n)
        w("")

    w("## Versions")
    w("")
    for v in meta["versions"]:
        w("- %s" % v)
    w("")

    w("<details><summary>Every run</summary>")
    w("")
    w("| size | proxy | round | requests | req/s | p99 | CPU µs/req | errors | peak RSS | other load | steal | details |")
    w("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|")
    for r in rows:
        w("| %s | %s | %d | %d | %s | %s | %s | %d | %.1f MiB | %.0f%%%s | %.0f%% | %s |" % (
            r["size"], PROXY_LABEL.get(r["proxy"], r["proxy"]), r["round"], r["requests"],
            fmt_rps(r["rps"]), fmt_p99(r["p99"]), fmt_num(r["cpu"], 2),
            r["errors"], r["peak_rss_kb"] / 1024.0, 100 * r["other"], " *" if r["disturbed"] else "",
            100 * r["steal"], run_details(r)))
    w("")
    w("</details>")
    print("\n".join(out))


# ---------------------------------------------------------------- extra mode

READ_CALLS = {"read", "readv", "recvfrom", "recvmsg", "recvmmsg", "pread64", "preadv"}
WRITE_CALLS = {"write", "writev", "sendto", "sendmsg", "sendmmsg", "pwrite64", "pwritev"}
EPOLL_WAIT_CALLS = {"epoll_wait", "epoll_pwait", "epoll_pwait2"}
SYSCALL_GROUPS = (("read/recv*", READ_CALLS), ("write/writev/send*", WRITE_CALLS),
                  ("epoll_wait", EPOLL_WAIT_CALLS), ("epoll_ctl", {"epoll_ctl"}))
STRACE_ROW = re.compile(r"^\s*[\d.]+\s+[\d.]+\s+(?:\d+\s+)?(\d+)\s+(?:(\d+)\s+)?([a-z_0-9]+)\s*$")


def parse_strace(path):
    """{syscall: (calls, errors)} from the summary table of `strace -c`."""
    calls = {}
    with open(path, encoding="utf-8", errors="replace") as f:
        for line in f:
            m = STRACE_ROW.match(line)
            if not m or m.group(3) == "total":
                continue
            name = m.group(3)
            c, e = calls.get(name, (0, 0))
            calls[name] = (c + int(m.group(1)), e + int(m.group(2) or 0))
    return calls


def strace_groups(calls):
    """(total, errors, {group: calls}, [(name, calls) of the others, most first])."""
    total = sum(c for c, _ in calls.values())
    errors = sum(e for _, e in calls.values())
    groups = {}
    grouped = set()
    for label, names in SYSCALL_GROUPS:
        groups[label] = sum(calls[n][0] for n in names if n in calls)
        grouped |= names
    others = sorted(((n, c) for n, (c, _) in calls.items() if n not in grouped), key=lambda x: -x[1])
    groups["others"] = sum(c for _, c in others)
    return total, errors, groups, others


def parse_perf(path):
    """{syscall: (calls, 0)} from `perf stat -x,` output on the raw_syscalls:sys_enter and
    syscalls:sys_enter_NAME tracepoints; the key "total" holds raw_syscalls:sys_enter."""
    calls = {}
    with open(path, encoding="utf-8", errors="replace") as f:
        for line in f:
            fields = line.rstrip("\n").split(",")
            if len(fields) < 3 or not fields[0].strip().isdigit():
                continue
            event = fields[2]
            if event == "raw_syscalls:sys_enter":
                calls["total"] = (int(fields[0]), 0)
            elif event.startswith("syscalls:sys_enter_"):
                calls[event[len("syscalls:sys_enter_"):]] = (int(fields[0]), 0)
    return calls


def perf_groups(calls):
    """(total, {group: calls}) from parse_perf; "others" = total minus the groups."""
    total = calls.get("total", (0, 0))[0]
    groups = {}
    for label, names in SYSCALL_GROUPS:
        groups[label] = sum(calls[n][0] for n in names if n in calls)
    groups["others"] = total - sum(groups.values())
    return total, groups


def cmd_perf_line(path, n):
    n = int(n)
    total, groups = perf_groups(parse_perf(path))
    if not n:
        print("no requests completed")
        return
    print("%.2f syscalls/req (%s)" % (total / n, ", ".join("%s %.2f" % (k, v / n) for k, v in groups.items())))


def cmd_strace_line(path, n):
    n = int(n)
    total, errors, groups, _ = strace_groups(parse_strace(path))
    if not n:
        print("no requests completed")
        return
    print("%.2f syscalls/req (%s), %.2f failed/req" % (
        total / n, ", ".join("%s %.2f" % (k, v / n) for k, v in groups.items()), errors / n))


MALLOC_FIELDS = ("malloc", "calloc", "realloc", "free", "memalign", "bytes")


def cmd_malloc_counts(path):
    import struct
    with open(path, "rb") as f:
        data = f.read(8 * 7)
    if len(data) < 56 or data[:8] != b"MALLOCNT":
        raise ValueError("%s is not a malloc-count counter file" % path)
    print(" ".join(str(v) for v in struct.unpack("<6Q", data[8:56])))


def alloc_figures(c0, c1, c2, c3, n, conns, churn):
    """Allocator calls per request and per client connection from four readings: before
    and after two keep-alive runs of N requests on CONNS connections each (c0, c1, c2), and
    after CHURN connections that made one request each (c3). A keep-alive run costs
    N r + CONNS c and the churn CHURN (r + c), r per request and c per connection, so
    r = (d_run - CONNS d_churn / CHURN) / (N - CONNS), c = d_churn / CHURN - r.
    Returns (r averaged over the two runs, c, (r of run 1, r of run 2)) as dicts per counter."""
    c = [[int(x) for x in r.split()] for r in (c0, c1, c2, c3)]
    deltas = []
    for a, b in zip(c, c[1:]):
        d = dict(zip(MALLOC_FIELDS, (y - x for x, y in zip(a, b))))
        d["allocs"] = d["malloc"] + d["calloc"] + d["realloc"] + d["memalign"]
        deltas.append(d)
    d1, d2, dc = deltas
    runs = tuple({k: (d[k] - conns * dc[k] / churn) / (n - conns) for k in d} for d in (d1, d2))
    per_req = {k: (runs[0][k] + runs[1][k]) / 2 for k in d1}
    per_conn = {k: dc[k] / churn - per_req[k] for k in d1}
    return per_req, per_conn, runs


def cmd_allocs_line(c0, c1, c2, c3, n, conns, churn):
    per_req, per_conn, runs = alloc_figures(c0, c1, c2, c3, int(n), int(conns), int(churn))
    print("%.3f allocations/req (runs: %.3f, %.3f; malloc %.3f calloc %.3f realloc %.3f memalign %.3f), "
          "%.3f free/req, %.0f bytes/req; %.1f allocations per connection" % (
              per_req["allocs"], runs[0]["allocs"], runs[1]["allocs"], per_req["malloc"], per_req["calloc"],
              per_req["realloc"], per_req["memalign"], per_req["free"], per_req["bytes"], per_conn["allocs"]))


def load_extra(path):
    """{(test, proxy): [(key, {k: v})]} from extra.tsv; values stay strings."""
    data = {}
    with open(path, encoding="utf-8") as f:
        for line in f:
            line = line.rstrip("\n")
            if not line or line.startswith("#"):
                continue
            parts = line.split("\t")
            if len(parts) != 4:
                continue
            test, proxy, key, value = parts
            kv = {}
            for item in value.split():
                k, sep, v = item.partition("=")
                if sep:
                    kv[k] = v
            data.setdefault((test, proxy), []).append((key, kv, value))
    return data


fmt_int = fmt_rps  # a count with thousands separators


def fmt_bytes(x):
    if x is None or x != x:
        return "–"
    return "{:,.0f} B".format(x)


def ratio_cell(a, b, digits=2):
    return fmt_num(ratio(a, b), digits)


def task_shares(before, after):
    """CPU shares (%) of the threads/processes of a server between two task_ticks
    readings ("tid:ticks,tid:ticks,..."), largest first; tasks under 1% left out."""
    def parse(s):
        out = {}
        for item in s.split(","):
            tid, sep, ticks = item.partition(":")
            if sep and ticks.isdigit():
                out[tid] = int(ticks)
        return out
    b, a = parse(before), parse(after)
    deltas = {t: a[t] - b.get(t, 0) for t in a}
    total = sum(d for d in deltas.values() if d > 0)
    return deltas, total


def cmd_extra_report(extra_path, scaling_path, idle_path, meta_path):
    data = load_extra(extra_path)
    meta = load_meta_extra(meta_path)
    proxies = meta.get("x_proxies", "").split()
    tests = meta.get("extra_tests", "").split()
    seconds = dict(line.split() for line in meta["x_seconds"] if len(line.split()) == 2)
    env = meta.get("x_env", "").strip()
    versions = ", ".join(meta["xversions"])
    has_ha = "haproxy" in proxies

    out = []
    w = out.append

    def reproduce(test):
        w("")
        w("Command: `%sEXTRA_TESTS=%s bench/run.sh extra` (%s s in this run; `bench/run.sh extra` runs every "
          "test, `bench/run.sh all` the plain mode and every test).  " % (
              (env + " ") if env else "", test, seconds.get(test, "?")))
        w("Versions: %s." % versions)
        w("")

    if meta.get("mode") != "all":
        w("# zdm proxy benchmark — syscalls, instructions, allocations, idle memory, workers")
        w("")
        w("Date: %s  " % meta.get("date", "?"))
        w("Host: %s, %s cores, Linux %s  " % (meta.get("cpu", "?"), meta.get("cores", "?"), meta.get("kernel", "?")))
        w("Command: `%s`" % meta.get("command", "bench/run.sh extra"))
    else:
        w("# Syscalls, instructions, allocations, idle memory, workers")
    w("")
    w("Every proxy as in the plain mode (one worker, 90/10 split, keep-alive to the upstreams, "
      "the same forwarding headers); the load client is `bench/nreq.c` (keep-alive `GET`, one request in "
      "flight per connection, a fixed number of requests) or wrk, on CPU %s with the upstream nginx; the "
      "proxy on CPU %s except in the workers test. Figures in parentheses or ÷ HAProxy columns are ratios "
      "to HAProxy." % (meta.get("client_cpu", "?"), meta.get("proxy_cpu", "?")))
    w("")

    label = lambda p: PROXY_LABEL.get(p, p)

    # ---- syscalls
    if "syscalls" in tests:
        n_req = meta.get("nreq", "?")
        w("## Syscalls per request (strace)")
        w("")
        w("`strace -c -f -p PID...` attached to the running proxy (every process and thread: NGINX master and "
          "worker) while `nreq -c%s -n%s` sends %s keep-alive `GET /tiny` on %s connections, after a warm-up. "
          "The 50 connection set-ups (accept, socket options, close) are included, one per %s requests. "
          "strace slows the proxy down, so each `epoll_wait` returns more events than without it: "
          "`epoll_wait` per request is lower than in an untraced run (see the perf table below); reads and "
          "writes per request are not affected." % (
              meta.get("nreq_conns", "?"), n_req, n_req, meta.get("nreq_conns", "?"),
              fmt_int(int(n_req) / int(meta.get("nreq_conns", "1"))) if n_req.isdigit() else "?"))
        w("")
        rows = {}
        for p in proxies:
            runs = [kv for key, kv, _ in data.get(("syscalls", p), []) if key == "run"]
            if not runs:
                continue
            kv = runs[-1]
            n = int(kv.get("requests", "0"))
            try:
                calls = parse_strace(kv["file"])
            except (OSError, KeyError):
                continue
            if not n or not calls:
                continue
            rows[p] = (n, strace_groups(calls))
        groups = [g for g, _ in SYSCALL_GROUPS] + ["others"]
        w("| proxy | syscalls/req | " + " | ".join(groups) + " | failed calls/req (EAGAIN…) | syscalls ÷ HAProxy |")
        w("|---|---:|" + "---:|" * (len(groups) + 2))
        ha = rows.get("haproxy")
        for p in proxies:
            if p not in rows:
                continue
            n, (total, errors, g, others) = rows[p]
            ha_total = ha[1][0] / ha[0] if ha else None
            w("| %s | %.2f | %s | %.2f | %s |" % (
                label(p), total / n, " | ".join("%.2f" % (g[k] / n) for k in groups), errors / n,
                ratio_cell(total / n, ha_total)))
        w("")
        for p in proxies:
            if p not in rows:
                continue
            n, (total, errors, g, others) = rows[p]
            top = ", ".join("%s %.3f" % (name, c / n) for name, c in others[:6] if c / n >= 0.001)
            w("- %s, others per request: %s" % (label(p), top or "none"))
        prow = {}
        for p in proxies:
            for key, kv, _ in data.get(("syscalls", p), []):
                if key != "perf":
                    continue
                try:
                    n = int(kv.get("requests", "0"))
                    calls = parse_perf(kv["file"])
                except (OSError, KeyError, ValueError):
                    continue
                if n and "total" in calls:
                    prow[p] = (n, perf_groups(calls))
        if prow:
            w("")
            w("The same run once more without strace, counted by `perf stat -e raw_syscalls:sys_enter,"
              "syscalls:sys_enter_NAME... -p PID...` (kernel tracepoints, no slow-down of the proxy): the "
              "figures of a proxy at full speed.")
            w("")
            w("| proxy | syscalls/req | " + " | ".join(groups) + " | syscalls ÷ HAProxy |")
            w("|---|---:|" + "---:|" * (len(groups) + 1))
            ha = prow.get("haproxy")
            for p in proxies:
                if p not in prow:
                    continue
                n, (total, g) = prow[p]
                w("| %s | %.2f | %s | %s |" % (
                    label(p), total / n, " | ".join("%.2f" % (g[k] / n) for k in groups),
                    ratio_cell(total / n, ha[1][0] / ha[0] if ha else None)))
        reproduce("syscalls")

    # ---- instructions
    if "instructions" in tests:
        sizes = meta.get("cg_sizes", "tiny 4k").split()
        cg_n = meta.get("cg_requests", "?")
        w("## Instructions per request (callgrind)")
        w("")
        w("`valgrind --tool=callgrind --collect-atstart=yes --cache-sim=no --branch-sim=no` runs the proxy in "
          "the foreground (zdmd `-c`, HAProxy `-db`, NGINX `master_process off; daemon off;`) on CPU %s; "
          "`nreq -c%s` sends N = %s requests in one run and 2N in another. Instructions per request = "
          "(Ir of the 2N run − Ir of the N run) ÷ N: start-up, the %s connection set-ups and exit cancel out "
          "(the totals of both runs are below the table). Counts user-space instructions only (the proxy "
          "and its libraries), not the kernel's work in system calls." % (
              meta.get("proxy_cpu", "?"), meta.get("nreq_conns", "?"), cg_n, meta.get("nreq_conns", "?")))
        w("")
        per = {}
        totals = {}
        for p in proxies:
            for size in sizes:
                runs = sorted(((int(kv["requests"]), int(kv["ir"])) for key, kv, _ in data.get(("instructions", p), [])
                               if key == size and "ir" in kv), key=lambda x: x[0])
                totals[(p, size)] = runs
                if len(runs) >= 2 and runs[-1][0] > runs[0][0]:
                    (n1, i1), (n2, i2) = runs[0], runs[-1]
                    per[(p, size)] = (i2 - i1) / (n2 - n1)
        head = "| proxy |"
        for size in sizes:
            head += " %s Ir/req | %s ÷ HAProxy |" % (SHORT_LABEL.get(size, size), SHORT_LABEL.get(size, size))
        w(head)
        w("|---|" + "---:|" * (2 * len(sizes)))
        for p in proxies:
            if not any((p, s) in per for s in sizes):
                continue
            cells = []
            for size in sizes:
                v = per.get((p, size))
                cells.append(fmt_int(v))
                cells.append(ratio_cell(v, per.get(("haproxy", size))) if has_ha else "–")
            w("| %s | %s |" % (label(p), " | ".join(cells)))
        w("")
        for p in proxies:
            parts = ["%s: %s" % (SHORT_LABEL.get(size, size),
                                 ", ".join("%s instructions for %s requests" % (fmt_int(ir), fmt_int(n))
                                           for n, ir in totals.get((p, size), [])))
                     for size in sizes if totals.get((p, size))]
            if parts:
                w("- %s, totals (start-up and exit included): %s" % (label(p), "; ".join(parts)))
        # Route matching: zdmd with N routes, the request matching the last.
        rows = []
        for n_routes in meta.get("cg_routes", "1 50").split():
            key = "tiny-routes%s" % n_routes
            runs = sorted(((int(kv["requests"]), int(kv["ir"])) for k, kv, _ in data.get(("instructions", "zdmd"), [])
                           if k == key and "ir" in kv), key=lambda x: x[0])
            if len(runs) >= 2 and runs[-1][0] > runs[0][0]:
                (n1, i1), (n2, i2) = runs[0], runs[-1]
                rows.append((n_routes, (i2 - i1) / (n2 - n1)))
        if rows:
            base = per.get(("zdmd", "tiny"))
            w("")
            w("Route matching (zdmd, tiny responses): N routes on the request's host, each under its own "
              "path, the request matching the last one, so that it is checked against all N.")
            w("")
            w("| routes | tiny Ir/req | over no `routes:` |")
            w("|---:|---:|---:|")
            if base:
                w("| none (the default route) | %s | – |" % fmt_int(base))
            for n_routes, v in rows:
                w("| %s | %s | %s |" % (n_routes, fmt_int(v), ("%+d" % round(v - base)) if base else "–"))
        # A rollout running: its analyses are the control plane's, once a
        # second; the hot path only counts, as it always does.
        runs = sorted(((int(kv["requests"]), int(kv["ir"])) for k, kv, _ in data.get(("instructions", "zdmd"), [])
                       if k == "tiny-rollout" and "ir" in kv), key=lambda x: x[0])
        if len(runs) >= 2 and runs[-1][0] > runs[0][0]:
            (n1, i1), (n2, i2) = runs[0], runs[-1]
            v = (i2 - i1) / (n2 - n1)
            base = per.get(("zdmd", "tiny"))
            w("")
            w("A rollout running (zdmd, tiny responses): the same split with a `rollout` section, started "
              "before the requests and analysed every second, the analyses included in the totals.")
            w("")
            w("| rollout | tiny Ir/req | over none |")
            w("|---|---:|---:|")
            if base:
                w("| none | %s | – |" % fmt_int(base))
            w("| running, 1 analysis/s | %s | %s |" % (fmt_int(v), ("%+d" % round(v - base)) if base else "–"))
        reproduce("instructions")

    # ---- allocations
    if "allocs" in tests:
        w("## Allocations per request (malloc-count.c)")
        w("")
        w("The proxy runs with `bench/malloc-count.c` in `LD_PRELOAD`, which counts the calls to the C "
          "library's allocator (all processes: NGINX's worker adds to its master's counters). After a warm-up "
          "of %s requests the counters are read around two keep-alive runs of N = %s requests (`nreq -c%s`, "
          "`GET /tiny`) and around a churn of %s connections that make one request each (`nreq -c%s -n%s`, "
          "%s times). Per request r and per connection c (open and close) solve run = N r + %s c and "
          "churn = %s (r + c); r is the mean of the two runs (both given). *allocations* = malloc + calloc + "
          "realloc + posix_memalign/memalign/aligned_alloc. HAProxy and NGINX have pool allocators of their "
          "own on top of malloc, zdmd keeps free lists; what is counted here is only what reaches the C "
          "library." % (meta.get("nreq", "?"), meta.get("nreq", "?"), meta.get("nreq_conns", "?"),
                        fmt_int(int(meta.get("churn", "0"))), meta.get("nreq_conns", "?"), meta.get("nreq_conns", "?"),
                        int(meta.get("churn", "0")) // max(int(meta.get("nreq_conns", "50")), 1),
                        meta.get("nreq_conns", "?"), fmt_int(int(meta.get("churn", "0")))))
        w("")
        figs = {}
        for p in proxies:
            entries = {key: (kv, value) for key, kv, value in data.get(("allocs", p), [])}
            if not all(k in entries for k in ("run", "c0", "c1", "c2", "c3")):
                continue
            kv = entries["run"][0]
            figs[p] = alloc_figures(entries["c0"][1], entries["c1"][1], entries["c2"][1], entries["c3"][1],
                                    int(kv["requests"]), int(kv["conns"]), int(kv["churn"]))
        w("| proxy | allocations/req | run 1, run 2 | malloc | calloc | realloc | memalign | free/req | "
          "bytes allocated/req | allocations per connection | allocations/req ÷ HAProxy |")
        w("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
        ha = figs.get("haproxy")
        for p in proxies:
            if p not in figs:
                continue
            r, c, runs = figs[p]
            w("| %s | %.2f | %.2f, %.2f | %.2f | %.2f | %.2f | %.2f | %.2f | %s | %.1f | %s |" % (
                label(p), r["allocs"], runs[0]["allocs"], runs[1]["allocs"], r["malloc"], r["calloc"],
                r["realloc"], r["memalign"], r["free"], fmt_int(r["bytes"]), c["allocs"],
                ratio_cell(r["allocs"], ha[0]["allocs"]) if ha and ha[0]["allocs"] >= 0.005 else "–"))
        if ha and ha[0]["allocs"] < 0.005:
            w("")
            w("HAProxy makes no allocation per request in the steady state, so no ratio to it is given.")
        reproduce("allocs")

    # ---- idle connections
    if "idle" in tests:
        counts = [int(x) for x in meta.get("idle_conns", "").split()]
        w("## Memory per idle connection")
        w("")
        w("A fresh instance of each proxy (limits raised: zdmd `limits: {max_connections: %s}`, HAProxy "
          "`maxconn %s`, NGINX `worker_connections %s`) gets a warm-up of 1,000 requests on 50 connections; "
          "then `nreq -H` opens N connections (50 at a time), each sends one `GET /tiny`, reads the response "
          "and stays open and idle. Bytes per connection = (RSS after − RSS before) ÷ N, RSS from "
          "`/proc/PID/smaps_rollup` summed over the proxy's processes. The kernel's socket buffers are not in "
          "RSS. With 10 connections the figure is mostly page granularity and memory the warm-up left free; "
          "the larger counts give the cost per connection. Then `wrk -t1 -c%s -d%ss /tiny` runs (after a "
          "warm-up, as in plain mode) while the N connections stay open." % (meta.get("x_maxconn", "?"), meta.get("x_maxconn", "?"),
                                     meta.get("x_nginx_conns", "?"), meta.get("conns", "?"),
                                     meta.get("extra_duration", "?")))
        w("")
        idle = {}
        idle_rows = load_results(idle_path) if idle_path else []
        idle_runs = {r["proxy"]: r for r in idle_rows}
        for p in proxies:
            for key, kv, _ in data.get(("idle", p), []):
                try:
                    n = int(key)
                    rss0, rss1, held = int(kv["rss0"]), int(kv["rss1"]), int(kv["held"])
                except (KeyError, ValueError):
                    continue
                run = idle_runs.get("x-idle-%s-%d" % (p, n))
                idle[(p, n)] = {
                    "per_conn": (rss1 - rss0) * 1024.0 / n if held == n else float("nan"),
                    "rss0": rss0, "rss1": rss1, "held": held, "closed": int(kv.get("closed", "0")),
                    "rps": run["rps"] if run else float("nan"), "p99": run["p99"] if run else float("nan"),
                    "cpu": run["cpu"] if run else float("nan"), "errors": run["errors"] if run else 0,
                    "disturbed": run["disturbed"] if run else False,
                }
        w("| proxy | RSS before (after warm-up) | " + " | ".join("%s conns: B/conn" % fmt_int(n) for n in counts)
          + " | %s conns ÷ HAProxy | RSS with %s conns |" % (fmt_int(counts[-1]), fmt_int(counts[-1])))
        w("|---|---:|" + "---:|" * len(counts) + "---:|---:|")
        for p in proxies:
            if not any((p, n) in idle for n in counts):
                continue
            first = next(idle[(p, n)] for n in counts if (p, n) in idle)
            last = idle.get((p, counts[-1]))
            ha_last = idle.get(("haproxy", counts[-1]))
            w("| %s | %.1f MiB | %s | %s | %s |" % (
                label(p), first["rss0"] / 1024.0,
                " | ".join(fmt_bytes(idle[(p, n)]["per_conn"]) if (p, n) in idle else "–" for n in counts),
                ratio_cell(last["per_conn"], ha_last["per_conn"]) if last and ha_last else "–",
                ("%.1f MiB" % (last["rss1"] / 1024.0)) if last else "–"))
        w("")
        w("With the N connections held open, `wrk -t1 -c%s /tiny`:" % meta.get("conns", "?"))
        w("")
        w("| proxy | " + " | ".join("%s held: req/s" % fmt_int(n) for n in counts) + " | "
          + " | ".join("%s held: CPU µs/req" % fmt_int(n) for n in counts)
          + " | req/s ÷ HAProxy, %s held |" % fmt_int(counts[-1]))
        w("|---|" + "---:|" * (2 * len(counts) + 1))
        for p in proxies:
            if not any((p, n) in idle for n in counts):
                continue
            cells = [fmt_rps(idle[(p, n)]["rps"]) + (" ⚠" if idle[(p, n)]["errors"] else "")
                     + (" *" if idle[(p, n)]["disturbed"] else "") if (p, n) in idle else "–" for n in counts]
            cells += [fmt_num(idle[(p, n)]["cpu"], 1) if (p, n) in idle else "–" for n in counts]
            last, ha_last = idle.get((p, counts[-1])), idle.get(("haproxy", counts[-1]))
            cells.append(ratio_cell(last["rps"], ha_last["rps"]) if last and ha_last else "–")
            w("| %s | %s |" % (label(p), " | ".join(cells)))
        problems = [(p, n, v) for (p, n), v in sorted(idle.items()) if v["held"] != n or v["closed"]]
        disturbed = [r for r in idle_rows if r["disturbed"]]
        if problems or disturbed:
            w("")
        if disturbed:
            w("- \\* = a run disturbed by other work on the machine (more than %.0f%% of a core used by other "
              "processes; worst %.0f%%): its req/s is less reliable, CPU µs/req much less affected." % (
                  100 * NOISE_LIMIT, 100 * max(max(r["other"], r["steal"]) for r in disturbed)))
        if problems:
            for p, n, v in problems:
                w("- %s, %d connections: %d held open, %d closed by the proxy during the wrk run." % (
                    label(p), n, v["held"], v["closed"]))
        reproduce("idle")

    # ---- workers
    if "scaling" in tests:
        rows = load_results(scaling_path) if scaling_path else []
        med = {}
        for r in rows:
            med.setdefault(r["proxy"], []).append(r)
        shares = {}
        for (test, name), entries in data.items():
            if test != "scaling":
                continue
            tot = {}
            for _, kv, _ in entries:
                deltas, _ = task_shares(kv.get("before", ""), kv.get("after", ""))
                for t, d in deltas.items():
                    tot[t] = tot.get(t, 0) + d
            total = sum(d for d in tot.values() if d > 0)
            shares[name] = sorted((100.0 * d / total for d in tot.values() if total and d > 0 and 100.0 * d / total >= 1),
                                  reverse=True)
        w("## 1 and 2 workers")
        w("")
        w("zdmd `workers: 1|2`, HAProxy `nbthread 1|2`, NGINX `worker_processes 1|2`; the proxy is not pinned "
          "(`taskset -c 0-%d`), wrk (`-t1 -c%s`, %s s after a %s s warm-up, %s round(s) interleaved, medians) "
          "and the upstream nginx stay on CPU %s. **This machine has %s cores**: a second worker shares a core "
          "with the client and the upstream, so req/s cannot double; the figures show whether a second worker "
          "is used at all and what it costs. CPU split = the share of the proxy's CPU time taken by each of its "
          "threads (zdmd, HAProxy) or processes (NGINX master and workers), over all rounds; one figure means one "
          "thread or process did all the work." % (
              int(meta.get("cores", "2")) - 1, meta.get("conns", "?"), meta.get("extra_duration", "?"),
              meta.get("warmup", "?"), meta.get("scale_rounds", "?"), meta.get("client_cpu", "?"),
              meta.get("cores", "?")))
        w("")
        w("| proxy | 1 worker req/s | 2 workers req/s | 2 ÷ 1 | 1 worker CPU µs/req | 2 workers CPU µs/req | "
          "1 worker p99 | 2 workers p99 | CPU split, 2 workers | req/s ÷ HAProxy, 2 workers | "
          "CPU ÷ HAProxy, 2 workers |")
        w("|---|---:|---:|---:|---:|---:|---:|---:|---|---:|---:|")
        figs = {}
        for name, sel in med.items():
            figs[name] = {"rps": median_of(sel, "rps"), "cpu": median_of(sel, "cpu"), "p99": median_of(sel, "p99"),
                          "errors": sum(r["errors"] for r in sel), "disturbed": sum(1 for r in sel if r["disturbed"])}
        for p in proxies:
            one, two = figs.get("x-%s-w1" % p), figs.get("x-%s-w2" % p)
            if not one and not two:
                continue
            ha2 = figs.get("x-haproxy-w2")
            split = shares.get("x-%s-w2" % p, [])
            g = lambda f, k: f[k] if f else None
            w("| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |" % (
                label(p), fmt_rps(g(one, "rps")), fmt_rps(g(two, "rps")), ratio_cell(g(two, "rps"), g(one, "rps")),
                fmt_num(g(one, "cpu"), 1), fmt_num(g(two, "cpu"), 1), fmt_p99(g(one, "p99")), fmt_p99(g(two, "p99")),
                " / ".join("%.0f%%" % x for x in split) or "–",
                ratio_cell(g(two, "rps"), g(ha2, "rps")), ratio_cell(g(two, "cpu"), g(ha2, "cpu"))))
        one_thread = [p for p in proxies if len(shares.get("x-%s-w2" % p, [])) == 1]
        disturbed = [r for r in rows if r["disturbed"]]
        errs = [name for name, f in figs.items() if f["errors"]]
        if one_thread or disturbed or errs:
            w("")
        for p in one_thread:
            w("- %s with 2 workers: one thread or process did all the work (the second worker is not used "
              "in this build)." % label(p))
        if disturbed:
            w("- %d of %d runs were disturbed by other work on the machine (more than %.0f%% of a core)." % (
                len(disturbed), len(rows), 100 * NOISE_LIMIT))
        for name in errs:
            w("- ⚠ %s: socket errors or non-2xx responses (see raw wrk output)." % name)
        reproduce("scaling")

    if meta["xnotes"]:
        w("## Notes on these tests")
        w("")
        for n in meta["xnotes"]:
            w("- %s" % n)
        w("")
    w("Raw data of the extra tests (strace summaries, callgrind outputs, nreq and wrk outputs, configs) "
      "are in `bench/results/raw/` after the run.")
    print("\n".join(out))


def load_meta_extra(path):
    meta = load_meta(path)
    meta["xversions"], meta["x_seconds"], meta["xnotes"] = [], [], []
    with open(path, encoding="utf-8") as f:
        for line in f:
            key, sep, value = line.rstrip("\n").partition("=")
            if not sep:
                continue
            if key == "xversion":
                meta["xversions"].append(value)
            elif key == "x_seconds":
                meta["x_seconds"].append(value)
            elif key == "xnote":
                meta["xnotes"].append(value)
    return meta


def main(argv):
    if len(argv) < 2:
        sys.stderr.write(__doc__)
        return 2
    cmd, args = argv[1], argv[2:]
    try:
        if cmd == "parse-wrk" and len(args) == 1:
            cmd_parse_wrk(*args)
        elif cmd == "split" and len(args) == 4:
            cmd_split(*args)
        elif cmd == "fetch" and len(args) == 3:
            cmd_fetch(*args)
        elif cmd == "scrape" and len(args) == 4:
            cmd_scrape(*args)
        elif cmd == "tls-info" and len(args) == 1:
            cmd_tls_info(*args)
        elif cmd == "run-line" and len(args) == 1:
            cmd_run_line(*args)
        elif cmd == "report" and len(args) == 2:
            cmd_report(*args)
        elif cmd == "strace-line" and len(args) == 2:
            cmd_strace_line(*args)
        elif cmd == "perf-line" and len(args) == 2:
            cmd_perf_line(*args)
        elif cmd == "malloc-counts" and len(args) == 1:
            cmd_malloc_counts(*args)
        elif cmd == "allocs-line" and len(args) == 7:
            cmd_allocs_line(*args)
        elif cmd == "extra-report" and len(args) == 4:
            cmd_extra_report(*args)
        else:
            sys.stderr.write(__doc__)
            return 2
    except (OSError, http.client.HTTPException, ValueError) as e:
        sys.stderr.write("benchlib %s: %s\n" % (cmd, e))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
