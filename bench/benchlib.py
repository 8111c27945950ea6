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
              "close": "plain HTTP, tiny, Connection: close (a new TCP connection per request)",
              "tls-ka": "TLS, keep-alive, tiny",
              "tls-full": "TLS, Connection: close, full handshake per request",
              "tls-resume": "TLS, Connection: close, handshake per request resumed as wrk does by itself"}
SHORT_LABEL = {"tiny": "tiny", "4k": "4k", "1m": "1m", "close": "close", "tls-ka": "TLS keep-alive",
               "tls-full": "TLS full handshake", "tls-resume": "TLS resumed handshake"}
PROXY_LABEL = {"zdmd": "zdmd", "zdmd+obs": "zdmd+obs (metrics + access log)", "haproxy": "HAProxy",
               "nginx": "NGINX", "direct": "no proxy (upstream direct)"}
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
    if r["same_core"]:
        other = [(c_all - r["upstream_ticks"] - wrk_ticks - proxy_ticks) / max(r["c_total"], 1)]
    else:
        other = [(c_all - r["upstream_ticks"] - wrk_ticks) / max(r["c_total"], 1),
                 (p_all - proxy_ticks) / max(r["p_total"], 1)]
    r["other"] = max(0.0, max(other))
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
                "cpu": median_of(sel, "cpu"),
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
        else:
            sys.stderr.write(__doc__)
            return 2
    except (OSError, http.client.HTTPException, ValueError) as e:
        sys.stderr.write("benchlib %s: %s\n" % (cmd, e))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
