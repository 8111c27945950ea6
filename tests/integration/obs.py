"""Helpers for the observability tests (SPEC §7, issue 5): the admin
listener, a strict parser of the Prometheus text exposition format
(version 0.0.4), and access log parsers.

    z = start(tap, spec)                 zdmd with an admin listener; z.admin
    r = admin_get(z, "/metrics")         one request on a new connection
    m = scrape(z)                        an Exposition (raises on transport errors)
    m.errors                             every format problem found, line by line
    m.value("zdm_requests_total", pool="old", server="a", code="2xx")
    m.total("zdm_requests_total", code="5xx")   sum over matching samples
"""

import json
import math
import re
import time

import zdmtest
from zdmtest import Client, Zdmd, free_port, HOST

METRIC_NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*\Z")
LABEL_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*\Z")
TYPES = ("counter", "gauge", "histogram", "summary", "untyped")

# SPEC §7: every name and its type.
SPEC_METRICS = {
    "zdm_requests_total": "counter",
    "zdm_request_duration_seconds": "histogram",
    "zdm_pool_weight_percent": "gauge",
    "zdm_server_up": "gauge",
    "zdm_circuit_state": "gauge",
    "zdm_pinned_requests_total": "counter",
    "zdm_upstream_errors_total": "counter",
    "zdm_client_connections": "gauge",
    "zdm_config_reloads_total": "counter",
}

PROM_CONTENT_TYPE = re.compile(r"^text/plain;\s*version=0\.0\.4(;\s*charset=utf-8)?$", re.I)


# -- zdmd with an admin listener ------------------------------------------------


def start(tap, spec, admin_port=None):
    """A Zdmd whose config has admin: 127.0.0.1:PORT (a free port); the
    port is z.admin. Ready when both the proxy and the admin port accept."""
    for attempt in range(3):
        port = admin_port or free_port()
        s = dict(spec)
        s["admin"] = "%s:%d" % (HOST, port)
        try:
            z = Zdmd(tap, s)
        except RuntimeError:
            last = Zdmd.instances[-1]
            if attempt < 2 and admin_port is None and "in use" in last.stderr():
                continue
            raise
        z.admin = port
        if zdmtest.wait_for(lambda: _accepts(port), timeout=5):
            return z
        raise RuntimeError("the admin port %d does not accept" % port)
    raise RuntimeError("zdmd did not start")


def _accepts(port):
    import socket
    try:
        s = socket.create_connection((HOST, port), timeout=0.5)
        s.close()
        return True
    except OSError:
        return False


def admin_get(z_or_port, path, method="GET", headers=None, body=None, timeout=5.0):
    """One request on a new connection to the admin port (or PORT)."""
    port = z_or_port if isinstance(z_or_port, int) else z_or_port.admin
    hs = list(headers or []) + [("Connection", "close")]
    with Client(port, timeout=timeout) as c:
        return c.request(method, path, hs, body)


# -- the exposition format --------------------------------------------------------


class Sample:
    def __init__(self, name, labels, value, lineno):
        self.name = name
        self.labels = labels
        self.value = value
        self.lineno = lineno

    def __repr__(self):
        return "%s%r=%r" % (self.name, self.labels, self.value)


def _parse_value(text):
    if text in ("+Inf", "Inf"):
        return math.inf
    if text == "-Inf":
        return -math.inf
    if text == "NaN":
        return math.nan
    if not re.match(r"^[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$", text):
        raise ValueError("not a number: %r" % text)
    return float(text)


def _parse_labels(text, pos):
    """TEXT[pos] is just after '{'. Returns (labels, pos after '}')."""
    labels = {}
    order = []
    while True:
        if pos < len(text) and text[pos] == "}":
            return labels, order, pos + 1
        m = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*").match(text, pos)
        if not m:
            raise ValueError("bad label name at column %d" % (pos + 1))
        lname = m.group(0)
        if lname.startswith("__"):
            raise ValueError("reserved label name %r" % lname)
        pos = m.end()
        if text[pos:pos + 2] != '="':
            raise ValueError("label %r not followed by =\"" % lname)
        pos += 2
        val = []
        while True:
            if pos >= len(text):
                raise ValueError("unterminated value of label %r" % lname)
            ch = text[pos]
            if ch == "\\":
                nxt = text[pos + 1:pos + 2]
                if nxt == "\\":
                    val.append("\\")
                elif nxt == '"':
                    val.append('"')
                elif nxt == "n":
                    val.append("\n")
                else:
                    raise ValueError("bad escape \\%s in label %r" % (nxt, lname))
                pos += 2
            elif ch == '"':
                pos += 1
                break
            elif ch == "\n":
                raise ValueError("raw newline in label %r" % lname)
            else:
                val.append(ch)
                pos += 1
        if lname in labels:
            raise ValueError("label %r twice" % lname)
        labels[lname] = "".join(val)
        order.append(lname)
        if pos < len(text) and text[pos] == ",":
            pos += 1
            continue
        if pos < len(text) and text[pos] == "}":
            return labels, order, pos + 1
        raise ValueError("expected , or } at column %d" % (pos + 1))


def _family_of(name, types):
    """The family a sample name belongs to, given the TYPEs seen so far."""
    if name in types:
        return name
    for suf in ("_bucket", "_sum", "_count"):
        if name.endswith(suf):
            base = name[:-len(suf)]
            if types.get(base) == "histogram":
                return base
    for suf in ("_sum", "_count"):
        if name.endswith(suf):
            base = name[:-len(suf)]
            if types.get(base) == "summary":
                return base
    return name


def _unescape_help(text):
    out = []
    i = 0
    while i < len(text):
        ch = text[i]
        if ch == "\\":
            nxt = text[i + 1:i + 2]
            if nxt == "\\":
                out.append("\\")
            elif nxt == "n":
                out.append("\n")
            else:
                raise ValueError("bad escape \\%s in HELP" % nxt)
            i += 2
        else:
            out.append(ch)
            i += 1
    return "".join(out)


class Exposition:
    """A strictly parsed /metrics body. .errors lists every problem (line
    numbers are 1-based); .types, .helps: per family; .samples in order."""

    def __init__(self, body):
        self.errors = []
        self.types = {}
        self.helps = {}
        self.samples = []
        self.text = body
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError as e:
            self.errors.append("not UTF-8: %s" % e)
            text = body.decode("utf-8", errors="replace")
        if text and not text.endswith("\n"):
            self.errors.append("the last line does not end with a newline")
        if "\r" in text:
            self.errors.append("carriage return in the exposition")
        done_families = set()      # families whose samples are over
        current = None             # family of the last sample
        seen_keys = set()
        for n, line in enumerate(text.split("\n")[:-1] if text.endswith("\n")
                                 else text.split("\n"), 1):
            err = lambda msg: self.errors.append("line %d: %s: %r" % (n, msg, line[:160]))
            if line == "":
                continue
            if line.startswith("#"):
                m = re.match(r"^# (HELP|TYPE) (\S+)(?: (.*))?$", line)
                if not m:
                    if re.match(r"^#\s*(HELP|TYPE)\b", line):
                        err("malformed HELP/TYPE line")
                    continue          # a plain comment
                kind, name, rest = m.group(1), m.group(2), m.group(3)
                if not METRIC_NAME.match(name):
                    err("invalid metric name %r" % name)
                if name in done_families or name == current:
                    err("%s for %s after its samples" % (kind, name))
                if kind == "HELP":
                    if name in self.helps:
                        err("second HELP for %s" % name)
                    try:
                        self.helps[name] = _unescape_help(rest or "")
                    except ValueError as e:
                        err(str(e))
                else:
                    if rest not in TYPES:
                        err("unknown type %r" % rest)
                    if name in self.types:
                        err("second TYPE for %s" % name)
                    self.types[name] = rest
                continue
            m = re.match(r"^([^\s{]+)", line)
            if not m:
                err("a sample line must start with a metric name")
                continue
            name = m.group(1)
            if not METRIC_NAME.match(name):
                err("invalid metric name %r" % name)
                continue
            pos = m.end()
            labels = {}
            if pos < len(line) and line[pos] == "{":
                try:
                    labels, order, pos = _parse_labels(line, pos + 1)
                except ValueError as e:
                    err(str(e))
                    continue
            rest = line[pos:]
            m2 = re.match(r"^ (\S+)(?: (-?\d+))?$", rest)
            if not m2:
                err("expected ' VALUE [TIMESTAMP]' after the name and labels")
                continue
            try:
                value = _parse_value(m2.group(1))
            except ValueError as e:
                err(str(e))
                continue
            fam = _family_of(name, self.types)
            if fam not in self.types:
                err("sample of %s before (or without) its TYPE line" % fam)
            if fam != current:
                if fam in done_families:
                    err("samples of %s are not grouped together" % fam)
                if current is not None:
                    done_families.add(current)
                current = fam
            key = (name, tuple(sorted(labels.items())))
            if key in seen_keys:
                err("duplicate sample")
            seen_keys.add(key)
            t = self.types.get(fam)
            if t == "counter" and not (value >= 0):
                err("negative or NaN counter")
            if t == "histogram":
                if name == fam + "_bucket" and "le" not in labels:
                    err("histogram bucket without le")
                if name == fam:
                    err("histogram sample without _bucket/_sum/_count suffix")
            self.samples.append(Sample(name, labels, value, n))
        for fam, t in self.types.items():
            if t == "histogram":
                self.errors += self._check_histogram(fam)

    def _check_histogram(self, fam):
        bad = []
        groups = {}
        for s in self.samples:
            if s.name not in (fam + "_bucket", fam + "_sum", fam + "_count"):
                continue
            base = tuple(sorted((k, v) for k, v in s.labels.items() if k != "le"))
            g = groups.setdefault(base, {"buckets": [], "sum": None, "count": None})
            if s.name.endswith("_bucket"):
                try:
                    le = _parse_value(s.labels.get("le", ""))
                except ValueError:
                    bad.append("%s%r: le %r is not a number" % (fam, base, s.labels.get("le")))
                    continue
                g["buckets"].append((le, s.value))
            elif s.name.endswith("_sum"):
                g["sum"] = s.value
            else:
                g["count"] = s.value
        for base, g in groups.items():
            b = g["buckets"]
            where = "%s{%s}" % (fam, ",".join("%s=%s" % kv for kv in base))
            if not b:
                bad.append("%s: no buckets" % where)
                continue
            les = [x[0] for x in b]
            if les != sorted(les) or len(set(les)) != len(les):
                bad.append("%s: le values not strictly increasing: %r" % (where, les))
            if les[-1] != math.inf:
                bad.append("%s: no +Inf bucket last" % where)
            vals = [x[1] for x in b]
            if any(vals[i] > vals[i + 1] for i in range(len(vals) - 1)):
                bad.append("%s: buckets not cumulative: %r" % (where, vals))
            if g["count"] is None or g["sum"] is None:
                bad.append("%s: _count or _sum missing" % where)
            elif vals[-1] != g["count"]:
                bad.append("%s: +Inf bucket %r != _count %r" % (where, vals[-1], g["count"]))
        return bad

    # -- queries

    def find(self, name, **labels):
        """Samples NAME whose labels include LABELS."""
        want = {k: str(v) for k, v in labels.items()}
        return [s for s in self.samples if s.name == name and
                all(s.labels.get(k) == v for k, v in want.items())]

    def value(self, name, **labels):
        """The value of the sample NAME with exactly LABELS, or None. A
        series of a route asked for without its route is the default
        route's (a config without routes)."""
        want = {k: str(v) for k, v in labels.items()}
        for s in self.samples:
            got = s.labels
            if "route" in got and "route" not in want and got["route"] == "default":
                got = {k: v for k, v in got.items() if k != "route"}
            if s.name == name and got == want:
                return s.value
        return None

    def total(self, name, **labels):
        return sum(s.value for s in self.find(name, **labels))

    def buckets(self, fam, **labels):
        """[(le, cumulative count)] of a histogram's series."""
        return [(_parse_value(s.labels["le"]), s.value)
                for s in self.find(fam + "_bucket", **labels) if "le" in s.labels]


def scrape(z_or_port):
    r = admin_get(z_or_port, "/metrics")
    if r.status != 200:
        raise RuntimeError("/metrics answered %s: %r" % (r.status, r.body[:200]))
    m = Exposition(r.body)
    m.response = r
    return m


def wait_metric(z, name, value, timeout=5.0, **labels):
    """Polls /metrics until NAME{LABELS} == VALUE; returns the last value."""
    last = [None]

    def cond():
        try:
            last[0] = scrape(z).value(name, **labels)
        except Exception:
            last[0] = None
        return last[0] == value
    zdmtest.wait_for(cond, timeout=timeout, interval=0.05)
    return last[0]


# -- access log ---------------------------------------------------------------------

TEXT_LINE = re.compile(
    r'^(?P<time>\S+) (?P<client>\S+) "(?P<method>[A-Z]+) (?P<target>(?:[^"\\]|\\.)*)" '
    r'(?P<status>\d{3}|0|-) (?P<bytes>\d+) (?P<duration>\d+\.\d+) (?P<route>\S+) (?P<pool>\S+) '
    r'(?P<server>\S+) '
    r'pinned=(?P<pinned>yes|no) rid=(?P<rid>[0-9a-f]{16})$')

JSON_KEYS = {"time", "client", "method", "target", "status", "bytes", "duration_ms",
             "route", "pool", "server", "pinned", "request_id"}


def parse_text_line(line):
    """A dict of the fields of a text access log line (JSON-style escapes
    in the target undone), or None if it does not parse."""
    m = TEXT_LINE.match(line)
    if not m:
        return None
    d = m.groupdict()
    try:
        d["target"] = json.loads('"%s"' % d["target"])
    except ValueError:
        return None
    d["status"] = int(d["status"]) if d["status"].isdigit() else d["status"]
    d["bytes"] = int(d["bytes"])
    d["duration_s"] = float(d["duration"])
    return d


def read_lines(path):
    try:
        with open(path, "rb") as f:
            data = f.read().decode("utf-8", errors="replace")
    except OSError:
        return []
    return [ln for ln in data.split("\n") if ln]


def wait_lines(path, n, timeout=3.0, keep=None):
    """Polls PATH until it has at least N lines (for which KEEP is true);
    returns them."""
    def get():
        ls = read_lines(path)
        return [ln for ln in ls if keep(ln)] if keep else ls
    zdmtest.wait_for(lambda: len(get()) >= n, timeout=timeout, interval=0.02)
    return get()


def wire_size(r, body_wire=None):
    """Bytes of response R on the wire (head + body as framed)."""
    return len(r.head) + (len(r.body) if body_wire is None else body_wire)


def now():
    return time.time()
