"""The harness of zdm's integration tests.

Each test_*.py starts the real zdmd (from $ZDMD) in front of real upstream
servers (tests/upstream.py, one process each) on 127.0.0.1, talks to it with
real clients (raw sockets, curl), and prints TAP. Everything started here is
killed when the test exits, whatever happens.

    tap = TAP()
    a, b = Upstream("a"), Upstream("b")
    z = Zdmd(tap, {"pools": {"old": [a], "new": [b]}, "split": {"old": 90, "new": 10}})
    r = Client(z.port).request("GET", "/")
    tap.eq(r.status, 200, "answered")
    tap.done()

Every wait is bounded: sockets have timeouts and polling loops have deadlines.
"""

import atexit
import contextlib
import hashlib
import json
import os
import select
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import traceback

TESTDIR = os.environ.get("ZDM_TESTDIR") or os.path.dirname(
    os.path.dirname(os.path.abspath(__file__)))
ZDMD = os.environ.get("ZDMD") or os.path.join(TESTDIR, "..", "src", "zdmd")
ZDMCTL = os.environ.get("ZDMCTL") or os.path.join(TESTDIR, "..", "src", "zdmctl")
UPSTREAM_PY = os.path.join(TESTDIR, "upstream.py")
HOST = "127.0.0.1"

sys.path.insert(0, TESTDIR)
import upstream as _upstream  # noqa: E402

content = _upstream.content


def sha256(data):
    return hashlib.sha256(data).hexdigest()


# -- process bookkeeping -----------------------------------------------------

_procs = []
_tmpdirs = []


def _cleanup():
    for p in _procs:
        if p.poll() is None:
            try:
                p.kill()
            except OSError:
                pass
    for p in _procs:
        try:
            p.wait(timeout=5)
        except Exception:
            pass
    for d in _tmpdirs:
        shutil.rmtree(d, ignore_errors=True)


atexit.register(_cleanup)


def _on_signal(signum, frame):
    print("Bail out! killed by signal %d" % signum, flush=True)
    sys.exit(1)


def _on_alarm(signum, frame):
    print("Bail out! the test ran past its deadline", flush=True)
    for z in Zdmd.instances:
        z.show_stderr(force=True)
    sys.exit(1)


signal.signal(signal.SIGTERM, _on_signal)
signal.signal(signal.SIGALRM, _on_alarm)


def _die_with_parent():
    """In a child before exec: get SIGKILL when the test process dies, so
    that nothing outlives a test killed hard."""
    try:
        import ctypes
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)   # PR_SET_PDEATHSIG
    except Exception:
        pass


def tmpdir():
    d = tempfile.mkdtemp(prefix="zdmtest-")
    _tmpdirs.append(d)
    return d


def free_port():
    """A port nothing listens on right now."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind((HOST, 0))
    port = s.getsockname()[1]
    s.close()
    return port


def rss(pid):
    """Resident memory of process PID in bytes (VmRSS), 0 if unknown."""
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


def refused(port, timeout=1.0):
    """True if a connect to the loopback PORT fails."""
    s = socket.socket()
    s.settimeout(timeout)
    try:
        return s.connect_ex((HOST, port)) != 0
    finally:
        s.close()


def wait_for(cond, timeout=5.0, interval=0.01):
    """Polls COND until it returns a true value or TIMEOUT passes; returns
    the last value."""
    deadline = time.monotonic() + timeout
    while True:
        v = cond()
        if v or time.monotonic() >= deadline:
            return v
        time.sleep(interval)
        interval = min(interval * 1.5, 0.1)


# -- TAP ---------------------------------------------------------------------

class TAP:
    """TAP output. A failed check prints the new lines of every zdmd's
    stderr as comments."""

    def __init__(self, deadline=90):
        self.n = 0
        self.failed = 0
        signal.alarm(deadline)

    def diag(self, msg):
        for line in str(msg).splitlines() or [""]:
            print("# " + line)
        sys.stdout.flush()

    def ok(self, cond, desc, diag=None):
        self.n += 1
        cond = bool(cond)
        print("%sok %d - %s" % ("" if cond else "not ", self.n, desc), flush=True)
        if not cond:
            self.failed += 1
            if diag is not None:
                self.diag(diag)
            for z in Zdmd.instances:
                z.show_stderr()
        return cond

    def eq(self, got, want, desc, diag=None):
        if got == want:
            return self.ok(True, desc)
        msg = "got:  %r\nwant: %r" % (_short(got), _short(want))
        if diag is not None:
            msg += "\n" + str(diag)
        return self.ok(False, desc, msg)

    def within(self, got, lo, hi, desc):
        good = got is not None and lo <= got <= hi
        return self.ok(good, desc, None if good else
                       "got %r, want within [%r, %r]" % (got, lo, hi))

    def skip(self, desc, reason):
        self.n += 1
        print("ok %d - %s # SKIP %s" % (self.n, desc, reason), flush=True)

    @contextlib.contextmanager
    def section(self, name):
        """Runs a block; an exception in it is one failed test point and the
        file goes on with the next section."""
        try:
            yield
        except Exception:
            self.ok(False, "%s: raised an exception" % name,
                    traceback.format_exc())

    def done(self):
        # Every zdmd this file started ends with a graceful stop: it must
        # exit 0, and (in sanitizer builds) without any report.
        for z in Zdmd.instances:
            z.check_exit()
        print("1..%d" % self.n, flush=True)
        if self.failed:
            self.diag("%d of %d checks failed" % (self.failed, self.n))
        signal.alarm(0)
        _cleanup()
        sys.exit(1 if self.failed else 0)


def _short(v):
    if isinstance(v, (bytes, str)) and len(v) > 300:
        return v[:300] + (b"..." if isinstance(v, bytes) else "...")
    return v


# -- upstream servers --------------------------------------------------------

class Upstream:
    """One tests/upstream.py process. Its address goes into zdmd configs."""

    def __init__(self, name, weight=None):
        self.name = name
        self.weight = weight
        self.errf = tempfile.TemporaryFile()
        self.proc = subprocess.Popen(
            [sys.executable, UPSTREAM_PY, "--port", "0", "--name", name],
            stdout=subprocess.PIPE, stderr=self.errf, stdin=subprocess.DEVNULL,
            preexec_fn=_die_with_parent)
        _procs.append(self.proc)
        self.port = None
        deadline = time.monotonic() + 10
        buf = b""
        while time.monotonic() < deadline and b"\n" not in buf:
            r, _, _ = select.select([self.proc.stdout], [], [], 0.1)
            if r:
                chunk = os.read(self.proc.stdout.fileno(), 256)
                if not chunk:
                    break
                buf += chunk
        line = buf.decode(errors="replace").strip()
        if not line.startswith("LISTENING "):
            self.errf.seek(0)
            raise RuntimeError("upstream %s did not start: %r %s" % (
                name, line, self.errf.read().decode(errors="replace")))
        self.port = int(line.split()[1])
        self.address = "%s:%d" % (HOST, self.port)

    def stats(self):
        """The server's counters, asked directly (not through zdmd)."""
        c = Client(self.port, timeout=5)
        try:
            r = c.request("GET", "/__stats", headers=[("Connection", "close")])
            return json.loads(r.body)
        finally:
            c.close()

    def stop(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=5)


class HeadServer:
    """A raw upstream, a thread a connection: it reads each request head
    (requests without a body) and answers it with the bytes ANSWER, as they
    are; with keep=False it closes after the first answer. For tests that
    need answers no real server would give, or all at once."""

    def __init__(self, answer, keep=False, sndbuf=None, backlog=512):
        self.answer = answer
        self.keep = keep
        self.sndbuf = sndbuf
        self.lsock = socket.socket()
        self.lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.lsock.bind((HOST, 0))
        self.lsock.listen(backlog)
        self.address = "%s:%d" % (HOST, self.lsock.getsockname()[1])
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                c, _ = self.lsock.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(c,), daemon=True).start()

    def _serve(self, c):
        if self.sndbuf:
            c.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, self.sndbuf)
        try:
            buf = b""
            while True:
                while b"\r\n\r\n" not in buf:
                    chunk = c.recv(4096)
                    if not chunk:
                        return
                    buf += chunk
                buf = buf.split(b"\r\n\r\n", 1)[1]
                c.sendall(self.answer)
                if not self.keep:
                    return
        except OSError:
            pass
        finally:
            c.close()


class Server:
    """A pool member for a config: an Upstream, or any address."""

    def __init__(self, address, name=None, weight=None):
        self.address = address
        self.name = name
        self.weight = weight


def dead_address():
    """An address that refuses connections."""
    return "%s:%d" % (HOST, free_port())


# -- YAML --------------------------------------------------------------------

class Raw(str):
    """A scalar written to the YAML file as is (e.g. 64k, 500ms)."""


def _scalar(v):
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float, Raw)):
        return str(v)
    if v is None:
        return "null"
    return json.dumps(str(v))


def yaml_dump(obj, indent=0):
    pad = "  " * indent
    out = []
    if isinstance(obj, dict):
        for k, v in obj.items():
            if isinstance(v, (dict, list)) and v:
                out.append("%s%s:" % (pad, k))
                out.append(yaml_dump(v, indent + 1))
            elif isinstance(v, (dict, list)):
                out.append("%s%s: %s" % (pad, k, "{}" if isinstance(v, dict) else "[]"))
            else:
                out.append("%s%s: %s" % (pad, k, _scalar(v)))
    elif isinstance(obj, list):
        for v in obj:
            if isinstance(v, dict) and v:
                inner = yaml_dump(v, indent + 1).split("\n")
                out.append("%s- %s" % (pad, inner[0].strip()))
                out += inner[1:]
            elif isinstance(v, list):
                out.append("%s-" % pad)
                out.append(yaml_dump(v, indent + 1))
            else:
                out.append("%s- %s" % (pad, _scalar(v)))
    else:
        out.append(pad + _scalar(obj))
    return "\n".join(out)


def _server_entry(s):
    if isinstance(s, str):
        return {"address": s}
    e = {"address": s.address}
    if s.name:
        e["name"] = s.name
    if s.weight is not None:
        e["weight"] = s.weight
    return e


def build_config(port, spec, workdir):
    """SPEC is a dict in the shape of the YAML file, except that a pool may
    be given as a list of Upstream/Server objects. listen, workers and the
    control socket are filled in."""
    cfg = {"listen": ["%s:%d" % (HOST, port)],
           "workers": 1,
           "control": {"socket": os.path.join(workdir, "zdm.sock")}}
    for k, v in spec.items():
        if k == "pools":
            pools = {}
            for pname, pv in v.items():
                if isinstance(pv, list):
                    pv = {"servers": [_server_entry(s) for s in pv]}
                pools[pname] = pv
            cfg["pools"] = pools
        else:
            cfg[k] = v
    return yaml_dump(cfg) + "\n"


# -- zdmd --------------------------------------------------------------------

class Zdmd:
    """The real zdmd, started with a config written from SPEC, ready when its
    listen port accepts connections."""

    instances = []

    def __init__(self, tap, spec, ready_timeout=10.0, start=True):
        self.tap = tap
        self.spec = spec
        self.dir = tmpdir()
        self.config_path = os.path.join(self.dir, "zdm.yaml")
        self.stderr_path = os.path.join(self.dir, "zdmd.stderr")
        self.stdout_path = os.path.join(self.dir, "zdmd.stdout")
        self.proc = None
        self.shown = 0
        Zdmd.instances.append(self)
        if start:
            self.start(ready_timeout)

    def start(self, ready_timeout=10.0):
        for attempt in range(3):
            if "listen" in self.spec:
                first = self.spec["listen"][0]
                self.port = int((first if isinstance(first, str) else first["address"]).rsplit(":", 1)[1])
            else:
                self.port = free_port()
            with open(self.config_path, "w") as f:
                f.write(build_config(self.port, self.spec, self.dir))
            log_from = os.path.getsize(self.stderr_path) if os.path.exists(self.stderr_path) else 0
            err = open(self.stderr_path, "ab")
            out = open(self.stdout_path, "ab")
            self.proc = subprocess.Popen([ZDMD, "-c", self.config_path],
                                         stdout=out, stderr=err,
                                         stdin=subprocess.DEVNULL,
                                         preexec_fn=_die_with_parent)
            err.close()
            out.close()
            _procs.append(self.proc)
            if self._wait_ready(ready_timeout, log_from):
                return
            if self.proc.poll() is not None and "in use" in self.stderr():
                continue    # lost a race for the port; take another one
            break
        self.tap.diag("zdmd did not come up; config:\n" + open(self.config_path).read())
        self.show_stderr(force=True)
        raise RuntimeError("zdmd did not start (exit status %r)" % self.proc.poll())

    def rewrite(self, spec=None, text=None):
        """Writes a new config file for the running zdmd (same port)."""
        if spec is not None:
            self.spec = spec
            text = build_config(self.port, spec, self.dir)
        with open(self.config_path, "w") as f:
            f.write(text)

    def _wait_ready(self, timeout, log_from=0):
        """True once the listen port accepts and, where the log level shows
        it, zdmd has logged that it is listening, which it does when all
        of its start-up is done (the control socket and the rest open):
        descriptor counts taken after this are those of a running zdmd."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                return False
            try:
                s = socket.create_connection((HOST, self.port), timeout=0.5)
                s.close()
                break
            except OSError:
                time.sleep(0.02)
        else:
            return False
        logged = self.spec.get("log_level", "info") not in ("info", "debug")
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                return False
            if not logged:
                with open(self.stderr_path, "rb") as f:
                    f.seek(log_from)
                    logged = b"listening on" in f.read()
            # ... and the connection that found the port open is closed.
            if logged and self.client_sockets() == 0:
                return True
            time.sleep(0.01)
        return True

    SANITIZER_MARKS = ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer",
                       "runtime error:", "WARNING: AddressSanitizer")

    def check_exit(self):
        """Stops zdmd with SIGTERM if it still runs and checks that it
        exited 0 with no sanitizer report on stderr."""
        if self.proc is None or getattr(self, "checked", False):
            return
        self.checked = True
        status = None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            status = self.wait_exit(30)
            if status is None:
                self.proc.kill()
                self.proc.wait(timeout=5)
        err = self.stderr()
        marks = [m for m in self.SANITIZER_MARKS if m in err]
        self.tap.ok(not marks and status in (None, 0),
                    "zdmd (pid %d) exits cleanly at the end" % self.proc.pid,
                    "exit status %r, sanitizer reports: %s" % (status, marks or "none"))
        if marks:
            self.show_stderr(force=True)

    def stderr(self):
        try:
            with open(self.stderr_path, "rb") as f:
                return f.read().decode(errors="replace")
        except OSError:
            return ""

    def show_stderr(self, force=False):
        """Prints the stderr lines not shown yet as TAP comments."""
        lines = self.stderr().splitlines()
        new = lines if force else lines[self.shown:]
        self.shown = len(lines)
        if not new:
            return
        if len(new) > 60:
            new = ["[%d lines before]" % (len(new) - 60)] + new[-60:]
        print("# zdmd stderr (pid %s):" % (self.proc.pid if self.proc else "-"))
        for ln in new:
            print("#   " + ln)
        sys.stdout.flush()

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def signal(self, sig):
        if self.alive():
            self.proc.send_signal(sig)

    def wait_exit(self, timeout):
        """The exit status, or None if still running after TIMEOUT."""
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return None

    def stop(self):
        if self.alive():
            self.proc.terminate()
            if self.wait_exit(5) is None:
                self.proc.kill()
                self.proc.wait(timeout=5)

    def _fd_targets(self):
        d = "/proc/%d/fd" % self.proc.pid
        out = []
        for name in os.listdir(d):
            try:
                out.append(os.readlink(os.path.join(d, name)))
            except OSError:
                pass    # closed meanwhile
        return out

    def fds(self):
        """How many file descriptors zdmd has open, not counting the pipes
        it keeps for splicing (see pipes())."""
        try:
            return len([t for t in self._fd_targets() if not t.startswith("pipe:")])
        except OSError:
            return None

    def client_sockets(self):
        """How many accepted client connections zdmd holds a descriptor for:
        its sockets whose local port is the listen port, the listener aside."""
        try:
            inodes = set(t[8:-1] for t in self._fd_targets() if t.startswith("socket:["))
            n = 0
            for table in ("tcp", "tcp6"):
                try:
                    with open("/proc/%d/net/%s" % (self.proc.pid, table)) as f:
                        rows = f.read().splitlines()[1:]
                except OSError:
                    continue
                for row in rows:
                    col = row.split()
                    port = int(col[1].rsplit(":", 1)[1], 16)
                    if port == self.port and col[3] != "0A" and col[9] in inodes:
                        n += 1
            return n
        except OSError:
            return None

    def pipes(self):
        """How many pipe descriptors zdmd has open (two per splice pipe)."""
        try:
            return len([t for t in self._fd_targets() if t.startswith("pipe:")])
        except OSError:
            return None

    def kill(self):
        if self.alive():
            self.proc.kill()
            self.proc.wait(timeout=5)

    def client(self, timeout=5.0, rcvbuf=None):
        return Client(self.port, timeout=timeout, rcvbuf=rcvbuf)


def run_zdmd(args, timeout=10):
    """Runs zdmd with ARGS to completion: (status, stdout, stderr)."""
    p = subprocess.run([ZDMD] + list(args), stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, stdin=subprocess.DEVNULL,
                       timeout=timeout)
    return p.returncode, p.stdout.decode(errors="replace"), p.stderr.decode(errors="replace")


# -- raw HTTP client ---------------------------------------------------------

class Closed(Exception):
    """The peer closed (or reset) before a whole response arrived. .partial
    holds what had been read of the response."""

    def __init__(self, msg, partial=b"", response=None):
        super().__init__(msg)
        self.partial = partial
        self.response = response


class Response:
    def __init__(self):
        self.version = None
        self.status = None
        self.reason = None
        self.headers = []
        self.body = b""
        self.head = b""
        self.interim = []        # 1xx responses seen before this one
        self.framing = None      # "length", "chunked", "close" or "none"
        self.trailers = []

    def get(self, name):
        name = name.lower()
        for n, v in self.headers:
            if n.lower() == name:
                return v
        return None

    def get_all(self, name):
        name = name.lower()
        return [v for n, v in self.headers if n.lower() == name]

    def has(self, name):
        return self.get(name) is not None

    def tokens(self, name):
        out = []
        for v in self.get_all(name):
            out += [t.strip().lower() for t in v.split(",") if t.strip()]
        return out

    def __repr__(self):
        return "<Response %s %r %s body=%dB>" % (self.status, self.reason,
                                                 self.headers, len(self.body))


class Client:
    """One client connection on a raw socket, with a read buffer."""

    def __init__(self, port, timeout=5.0, host=HOST, rcvbuf=None):
        """rcvbuf: a receive buffer of that size, set before connecting so
        that the window offered to zdmd stays small (a slow reader)."""
        if rcvbuf:
            self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
            self.sock.settimeout(timeout)
            self.sock.connect((host, port))
        else:
            self.sock = socket.create_connection((host, port), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.timeout = timeout
        self.buf = bytearray()
        self.eof = False

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def reset(self):
        """Closes with RST."""
        import struct
        try:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                                 struct.pack("ii", 1, 0))
        except OSError:
            pass
        self.close()

    def __enter__(self):
        return self

    def __exit__(self, *a):
        self.close()

    def send(self, data):
        if isinstance(data, str):
            data = data.encode("latin-1")
        self.sock.sendall(data)

    def _fill(self):
        """Reads more; raises Closed (with the unread buffer as .partial)
        at the end of the stream."""
        if not self.eof:
            try:
                data = self.sock.recv(262144)
            except ConnectionResetError:
                data = b""
            if data:
                self.buf += data
                return
            self.eof = True
        raise Closed("connection closed", bytes(self.buf))

    def _take(self, n):
        out = bytes(self.buf[:n])
        del self.buf[:n]
        return out

    def _line(self):
        start = 0
        while True:
            i = self.buf.find(b"\r\n", start)
            if i >= 0:
                return self._take(i + 2)[:-2]
            start = max(0, len(self.buf) - 1)
            self._fill()

    def _exact(self, n):
        while len(self.buf) < n:
            self._fill()
        return self._take(n)

    def read_head(self):
        start = 0
        while True:
            i = self.buf.find(b"\r\n\r\n", start)
            if i >= 0:
                return self._take(i + 4)
            start = max(0, len(self.buf) - 3)
            self._fill()

    def read_response(self, method="GET", keep_interim=True):
        """Reads one final response (1xx ones are collected in .interim).
        Raises Closed if the connection ends before it is whole, and
        socket.timeout if nothing more comes for self.timeout seconds."""
        interim = []
        while True:
            r = Response()
            r.head = self.read_head()
            lines = r.head[:-4].split(b"\r\n")
            parts = lines[0].decode("latin-1").split(" ", 2)
            r.version = parts[0]
            r.status = int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else None
            r.reason = parts[2] if len(parts) > 2 else ""
            for ln in lines[1:]:
                n, _, v = ln.decode("latin-1").partition(":")
                r.headers.append((n, v.strip(" \t")))
            if r.status is not None and 100 <= r.status < 200 and r.status != 101:
                interim.append(r)
                continue
            break
        r.interim = interim
        if method == "HEAD" or r.status in (204, 304) or \
                (r.status is not None and r.status < 200):
            r.framing = "none"
            return r
        te = r.tokens("transfer-encoding")
        cl = r.get("content-length")
        if te and te[-1] == "chunked":
            r.framing = "chunked"
            body = bytearray()
            try:
                while True:
                    size_line = self._line()
                    size = int(size_line.split(b";")[0].strip(), 16)
                    if size == 0:
                        while True:
                            t = self._line()
                            if not t:
                                break
                            n, _, v = t.decode("latin-1").partition(":")
                            r.trailers.append((n, v.strip()))
                        break
                    body += self._exact(size)
                    if self._exact(2) != b"\r\n":
                        raise ValueError("chunk data not followed by CRLF")
            except Closed as e:
                e.partial = r.head + bytes(body) + e.partial
                e.response = r
                raise
            r.body = bytes(body)
        elif cl is not None:
            r.framing = "length"
            n = int(cl)
            try:
                r.body = self._exact(n)
            except Closed as e:
                e.partial = r.head + e.partial
                e.response = r
                raise
        else:
            r.framing = "close"
            try:
                while True:
                    self._fill()
            except Closed:
                pass
            r.body = self._take(len(self.buf))
        return r

    def request(self, method, target, headers=None, body=None,
                version="HTTP/1.1", host="test.local"):
        self.send(build_request(method, target, headers, body, version, host))
        return self.read_response(method)

    def read_some(self, n):
        """Reads from the socket, past the buffer, until N bytes came or
        the peer closed; returns how many came."""
        got = 0
        while got < n:
            d = self.sock.recv(65536)
            if not d:
                break
            got += len(d)
        return got

    def wait_closed(self, timeout=5.0):
        """True if the peer closes (FIN or RST) within TIMEOUT. Bytes that
        arrive meanwhile are kept in self.buf."""
        deadline = time.monotonic() + timeout
        if self.eof:
            return True
        while time.monotonic() < deadline:
            r, _, _ = select.select([self.sock], [], [],
                                    max(0.0, deadline - time.monotonic()))
            if not r:
                break
            try:
                data = self.sock.recv(65536)
            except ConnectionResetError:
                data = b""
            except OSError:
                data = b""
            if not data:
                self.eof = True
                return True
            self.buf += data
        return False


def build_request(method, target, headers=None, body=None, version="HTTP/1.1",
                  host="test.local"):
    """Request bytes. Host is added unless HEADERS has one (or host is
    None); Content-Length is added for a body unless HEADERS sets
    Content-Length or Transfer-Encoding."""
    headers = list(headers or [])
    names = [n.lower() for n, _ in headers]
    if host is not None and "host" not in names:
        headers.insert(0, ("Host", host))
    if body is not None and "content-length" not in names and \
            "transfer-encoding" not in names:
        headers.append(("Content-Length", str(len(body))))
    head = "%s %s %s\r\n" % (method, target, version)
    head += "".join("%s: %s\r\n" % h for h in headers) + "\r\n"
    out = head.encode("latin-1")
    if body is not None:
        out += body if isinstance(body, bytes) else body.encode()
    return out


def chunked(data, sizes=(7, 1, 100, 4096)):
    """DATA encoded as chunks of varying sizes, with the last chunk."""
    out = bytearray()
    pos, k = 0, 0
    while pos < len(data):
        n = min(sizes[k % len(sizes)], len(data) - pos)
        out += b"%x\r\n" % n + data[pos:pos + n] + b"\r\n"
        pos += n
        k += 1
    return bytes(out) + b"0\r\n\r\n"


def get(port, target, headers=None, timeout=5.0):
    """One GET on a new connection."""
    with Client(port, timeout=timeout) as c:
        return c.request("GET", target, headers)


def is_self_made(r, code):
    """Checks the shape of a response zdmd makes itself: the status line,
    text/plain and a short one-line body. Returns a list of problems."""
    bad = []
    if r.status != code:
        bad.append("status %r, want %d" % (r.status, code))
    if r.version != "HTTP/1.1":
        bad.append("version %r" % r.version)
    if not r.reason:
        bad.append("no reason phrase")
    ct = (r.get("content-type") or "")
    if not ct.lower().startswith("text/plain"):
        bad.append("content-type %r" % ct)
    if not r.body or len(r.body) > 200 or r.body.rstrip(b"\n").count(b"\n"):
        bad.append("body %r is not one short line" % r.body[:200])
    if r.has("x-upstream"):
        bad.append("came from an upstream (X-Upstream: %s)" % r.get("x-upstream"))
    return bad


# -- curl --------------------------------------------------------------------

def curl(args, timeout=30):
    """Runs curl (never through a proxy): (status, stdout bytes, stderr)."""
    env = {k: v for k, v in os.environ.items()
           if k.lower() not in ("http_proxy", "https_proxy", "all_proxy", "no_proxy")}
    p = subprocess.run(["curl", "-sS", "--noproxy", "*"] + list(args),
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       stdin=subprocess.DEVNULL, timeout=timeout, env=env)
    return p.returncode, p.stdout, p.stderr.decode(errors="replace")


def url(port, path):
    return "http://%s:%d%s" % (HOST, port, path)


# -- control socket and zdmctl -------------------------------------------------

class Ctl:
    """One connection to zdmd's control socket: a command line goes out, one
    JSON line comes back, and the connection stays open for the next one."""

    def __init__(self, path, timeout=5.0, connect_timeout=5.0):
        self.path = path
        self.buf = bytearray()
        self.eof = False
        deadline = time.monotonic() + connect_timeout
        while True:
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.settimeout(timeout)
            try:
                s.connect(path)
                break
            except OSError:
                s.close()
                if time.monotonic() >= deadline:
                    raise
                time.sleep(0.02)
        self.sock = s

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def __enter__(self):
        return self

    def __exit__(self, *a):
        self.close()

    def send(self, data):
        if isinstance(data, str):
            data = data.encode()
        self.sock.sendall(data)

    def read_line(self):
        """The next line (without its '\\n'); raises Closed at the end of
        the stream and socket.timeout when nothing comes."""
        start = 0
        while True:
            i = self.buf.find(b"\n", start)
            if i >= 0:
                line = bytes(self.buf[:i])
                del self.buf[:i + 1]
                return line
            start = len(self.buf)
            if self.eof:
                raise Closed("control connection closed", bytes(self.buf))
            try:
                data = self.sock.recv(65536)
            except ConnectionResetError:
                data = b""
            if not data:
                self.eof = True
                continue
            self.buf += data

    def raw(self, line):
        """Sends LINE (bytes or str; '\\n' added) and returns the answer
        line as bytes."""
        if isinstance(line, str):
            line = line.encode()
        self.send(line + b"\n")
        return self.read_line()

    def cmd(self, line):
        """Sends one command, returns the parsed JSON answer."""
        return json.loads(self.raw(line).decode())


def ctl_socket_path(z):
    ctl = z.spec.get("control")
    if isinstance(ctl, dict) and ctl.get("socket"):
        return ctl["socket"]
    return os.path.join(z.dir, "zdm.sock")


Zdmd.sock_path = property(ctl_socket_path)


def _zdmd_ctl(self, line, timeout=5.0):
    """One command on a new control connection: the parsed answer."""
    with Ctl(self.sock_path, timeout=timeout) as c:
        return c.cmd(line)


def _zdmd_ctl_conn(self, timeout=5.0):
    return Ctl(self.sock_path, timeout=timeout)


def _zdmd_status(self):
    return self.ctl("status")


Zdmd.ctl = _zdmd_ctl
Zdmd.ctl_conn = _zdmd_ctl_conn
Zdmd.status = _zdmd_status


def zdmctl(args, sock=None, env=None, timeout=15):
    """Runs $ZDMCTL [-s SOCK] ARGS: (status, stdout, stderr). ENV entries
    are added to the environment (a value of None removes the name);
    ZDM_SOCKET is removed unless ENV sets it."""
    e = {k: v for k, v in os.environ.items() if k != "ZDM_SOCKET"}
    for k, v in (env or {}).items():
        if v is None:
            e.pop(k, None)
        else:
            e[k] = v
    cmd = [ZDMCTL] + (["-s", sock] if sock else []) + list(args)
    p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       stdin=subprocess.DEVNULL, timeout=timeout, env=e)
    return p.returncode, p.stdout.decode(errors="replace"), p.stderr.decode(errors="replace")


def pool_weights(answer):
    """{pool: percent} from a status or set-weight answer."""
    return {p["name"]: p["weight"] for p in (answer or {}).get("pools", [])}


def find_server(status, pool, server):
    """The server's entry in a status answer, or None."""
    for p in (status or {}).get("pools", []):
        if p.get("name") == pool:
            for s in p.get("servers", []):
                if s.get("name") == server:
                    return s
    return None


def syn_blackhole():
    """A listener whose accept queue is full, so that the kernel drops
    further SYNs and a connect to it times out: (address, [sockets to keep
    open]), or None where such a listener cannot be made."""
    bh = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    bh.bind((HOST, 0))
    bh.listen(0)
    keep = [bh]
    for _ in range(4):
        f = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        f.setblocking(False)
        f.connect_ex(bh.getsockname())
        keep.append(f)
    probe = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    probe.settimeout(0.3)
    try:
        probe.connect(bh.getsockname())
        dropped = False
    except (socket.timeout, TimeoutError):
        dropped = True
    except OSError:
        dropped = False
    probe.close()
    if not dropped:
        for k in keep:
            k.close()
        return None
    return "%s:%d" % bh.getsockname(), keep
