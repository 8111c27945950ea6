"""Helpers for the TLS tests (test_tls.py, test_tls_upstream.py).

    pki = PKI()                       certificates made now with `openssl`
    spec["listen"] = [tls_listen(free_port(), {"cert": pki.a_pem, "key": pki.a_key})]
    c = TLSClient(port, pki.ca, "a.test")      an HTTP client over TLS (python ssl)
    s = s_client(port, "b.test", ca=pki.ca)    one `openssl s_client` run, parsed
    up = TLSUpstream(pki.a_pem, pki.a_key)     an HTTPS upstream (python ssl)

Nothing here changes zdmtest.py; the harness renders listen entries given
as mappings and pool entries given as mappings (with `tls`) as they are.
"""

import hashlib
import http.server
import json
import os
import re
import shutil
import socket
import socketserver
import ssl
import subprocess
import threading
import time

import zdmtest
from zdmtest import HOST, Client, Raw

# -- certificates --------------------------------------------------------------


def _openssl(args, cwd, timeout=20):
    p = subprocess.run(["openssl"] + args, cwd=cwd, stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, timeout=timeout)
    if p.returncode != 0:
        raise RuntimeError("openssl %s failed: %s" % (" ".join(args),
                                                      p.stderr.decode(errors="replace")))
    return p.stdout.decode(errors="replace")


class PKI:
    """A throw-away PKI in a temp dir, made with the openssl command:

    ca.pem/ca.key         the root CA (the only thing clients trust)
    int.pem/int.key       an intermediate CA signed by the root
    a.pem/a.key           a.test, SAN a.test and *.a.test, signed by the root
    b.pem/b.key           b.test, signed by the intermediate; b.pem is the
                          full chain (leaf, then the intermediate)
    a2.pem/a2.key         another a.test certificate (CN rot.a.test, serial
                          0x2002), for rotation
    c.pem/c.key           CN c.test and no subjectAltName, signed by the root
    ip.pem/ip.key         SAN IP:127.0.0.1 (CN ip.test), signed by the root
    self.pem/self.key     a.test, self-signed
    other.key             a key that matches none of the certificates
    junk.pem              not PEM at all
    """

    def __init__(self):
        self.dir = zdmtest.tmpdir()
        d = self.dir
        self.ca, self.ca_key = self._p("ca.pem"), self._p("ca.key")
        self._key("ca.key")
        _openssl(["req", "-x509", "-new", "-key", "ca.key", "-out", "ca.pem", "-days", "2",
                  "-subj", "/CN=zdm test root CA", "-set_serial", "1",
                  "-addext", "basicConstraints=critical,CA:TRUE",
                  "-addext", "keyUsage=critical,keyCertSign,cRLSign",
                  "-addext", "subjectKeyIdentifier=hash"], d)
        self._key("int.key")
        _openssl(["req", "-new", "-key", "int.key", "-out", "int.csr",
                  "-subj", "/CN=zdm test intermediate CA"], d)
        self._ext("int.ext", "basicConstraints=critical,CA:TRUE,pathlen:0\n"
                  "keyUsage=critical,keyCertSign,cRLSign\n"
                  "subjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid,issuer\n")
        _openssl(["x509", "-req", "-in", "int.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
                  "-set_serial", "2", "-days", "2", "-out", "int.pem", "-extfile", "int.ext"], d)
        self.a_pem, self.a_key = self._leaf("a", "a.test", ["a.test", "*.a.test"], 0x1001)
        self.b_pem, self.b_key = self._leaf("b", "b.test", ["b.test"], 0x1002,
                                            ca=("int.pem", "int.key"))
        with open(self.b_pem, "a") as f:       # the full chain
            f.write(open(self._p("int.pem")).read())
        self.a2_pem, self.a2_key = self._leaf("a2", "rot.a.test", ["a.test", "*.a.test"], 0x2002)
        self.c_pem, self.c_key = self._leaf("c", "c.test", [], 0x1003)
        self.ip_pem, self.ip_key = self._leaf("ip", "ip.test", ["IP:127.0.0.1"], 0x1004)
        self._key("self.key")
        _openssl(["req", "-x509", "-new", "-key", "self.key", "-out", "self.pem", "-days", "2",
                  "-subj", "/CN=a.test", "-set_serial", "77",
                  "-addext", "subjectAltName=DNS:a.test"], d)
        self.self_pem, self.self_key = self._p("self.pem"), self._p("self.key")
        self._key("other.key")
        self.other_key = self._p("other.key")
        self.junk = self._p("junk.pem")
        with open(self.junk, "w") as f:
            f.write("this is not a certificate\n" * 3)

    def _p(self, name):
        return os.path.join(self.dir, name)

    def _key(self, name):
        _openssl(["genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256",
                  "-out", name], self.dir)

    def _ext(self, name, text):
        with open(self._p(name), "w") as f:
            f.write(text)

    def _leaf(self, base, cn, names, serial, ca=("ca.pem", "ca.key")):
        self._key(base + ".key")
        _openssl(["req", "-new", "-key", base + ".key", "-out", base + ".csr",
                  "-subj", "/CN=" + cn], self.dir)
        self._ext(base + ".ext", "basicConstraints=critical,CA:FALSE\n"
                  "keyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n"
                  "subjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid,issuer\n" +
                  ("subjectAltName=" + ",".join(n if n.startswith("IP:") else "DNS:" + n
                                                for n in names) + "\n" if names else ""))
        _openssl(["x509", "-req", "-in", base + ".csr", "-CA", ca[0], "-CAkey", ca[1],
                  "-set_serial", str(serial), "-days", "2", "-out", base + ".pem",
                  "-extfile", base + ".ext"], self.dir)
        return self._p(base + ".pem"), self._p(base + ".key")

    def copy(self, src, dst):
        """Replaces DST by SRC's content (write a temp file, rename)."""
        tmp = dst + ".tmp"
        shutil.copyfile(src, tmp)
        os.replace(tmp, dst)


def tls_listen(port, tls):
    """A listen entry for the harness' spec."""
    return {"address": "%s:%d" % (HOST, port), "tls": tls}


# -- openssl s_client ------------------------------------------------------------


class SClient:
    """One `openssl s_client` run, parsed."""

    def __init__(self, rc, out, err):
        self.rc = rc
        self.out = out
        self.err = err
        m = re.search(r"^subject=(.*)$", out, re.M)
        self.subject = m.group(1).strip() if m else None
        m = re.search(r"CN\s*=\s*([^,/\n]+)", self.subject or "")
        self.cn = m.group(1).strip() if m else None
        m = re.search(r"^ALPN protocol: (.*)$", out, re.M)
        self.alpn = m.group(1).strip() if m else None
        m = re.search(r"^(New|Reused), (TLSv[\d.]+|\(NONE\)), Cipher is (\S+)", out, re.M)
        self.reused = bool(m and m.group(1) == "Reused")
        self.protocol = m.group(2) if m else None
        self.cipher = m.group(3) if m else None
        m = re.search(r"Verify return code: (\d+)", out)
        self.verify = int(m.group(1)) if m else None
        m = re.search(r"^HTTP/1\.[01] (\d{3})", out, re.M)
        self.http_status = int(m.group(1)) if m else None
        self.handshake = self.protocol not in (None, "(NONE)") and self.cipher not in (None, "(NONE)")

    def __repr__(self):
        return "<s_client rc=%s cn=%s proto=%s alpn=%s reused=%s http=%s>" % (
            self.rc, self.cn, self.protocol, self.alpn, self.reused, self.http_status)

    def tail(self):
        return (self.out[-1500:] + "\n--- stderr:\n" + self.err[-800:]).strip()


def s_client(port, servername=None, ca=None, extra=(), request=True, host="a.test",
             timeout=10):
    """Runs openssl s_client against 127.0.0.1:PORT. With REQUEST, sends one
    GET with Connection: close and reads until the server closes (so that
    TLS 1.3 session tickets arrive too); otherwise closes after the handshake."""
    args = ["openssl", "s_client", "-connect", "%s:%d" % (HOST, port)]
    if servername:
        args += ["-servername", servername]
    else:
        args += ["-noservername"]
    if ca:
        args += ["-CAfile", ca]
    args += list(extra)
    data = b""
    if request:
        args += ["-ign_eof"]
        data = ("GET / HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n" % host).encode()
    try:
        p = subprocess.run(args, input=data, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           timeout=timeout)
        return SClient(p.returncode, p.stdout.decode(errors="replace"),
                       p.stderr.decode(errors="replace"))
    except subprocess.TimeoutExpired as e:
        return SClient("timeout", (e.stdout or b"").decode(errors="replace"),
                       (e.stderr or b"").decode(errors="replace"))


def peer_cert(port, servername, timeout=5.0):
    """(CN, serial) of the certificate served for SERVERNAME, from a
    handshake without verification."""
    out = s_client(port, servername, request=False, extra=["-showcerts"], timeout=timeout)
    m = re.search(r"-----BEGIN CERTIFICATE-----.*?-----END CERTIFICATE-----", out.out, re.S)
    if not m:
        return None, None
    p = subprocess.run(["openssl", "x509", "-noout", "-serial", "-subject"],
                       input=m.group(0).encode(), stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, timeout=timeout)
    text = p.stdout.decode(errors="replace")
    serial = re.search(r"serial=([0-9A-Fa-f]+)", text)
    cn = re.search(r"CN\s*=\s*([^,/\n]+)", text)
    return (cn.group(1).strip() if cn else None,
            int(serial.group(1), 16) if serial else None)


# -- an HTTP client over TLS -----------------------------------------------------


def client_context(ca=None, verify=True, alpn=("http/1.1",), maximum=None, minimum=None):
    ctx = ssl.create_default_context(cafile=ca) if verify else ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    if not verify:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    if alpn:
        ctx.set_alpn_protocols(list(alpn))
    if maximum:
        ctx.maximum_version = maximum
    if minimum:
        ctx.minimum_version = minimum
    return ctx


class TLSClient(Client):
    """zdmtest.Client over TLS: the same request/response methods."""

    def __init__(self, port, ca=None, server_hostname="a.test", timeout=5.0, ctx=None):
        super().__init__(port, timeout=timeout)
        ctx = ctx or client_context(ca)
        self.raw_sock = self.sock
        self.sock = ctx.wrap_socket(self.raw_sock, server_hostname=server_hostname)

    def cert_cn(self):
        der = self.sock.getpeercert(binary_form=True)
        cert = self.sock.getpeercert()
        for rdn in (cert or {}).get("subject", ()):
            for k, v in rdn:
                if k == "commonName":
                    return v
        return der and "?"

    def wait_closed(self, timeout=5.0):
        """True if the peer closes (close_notify, FIN or RST) within TIMEOUT."""
        deadline = time.monotonic() + timeout
        if self.eof:
            return True
        while time.monotonic() < deadline:
            self.sock.settimeout(max(0.01, deadline - time.monotonic()))
            try:
                data = self.sock.recv(65536)
            except (socket.timeout, TimeoutError):
                break
            except (ssl.SSLError, OSError):
                data = b""
            if not data:
                self.eof = True
                return True
            self.buf += data
        self.sock.settimeout(self.timeout)
        return False


def https_get(port, path="/", ca=None, host="a.test", headers=None, timeout=5.0):
    with TLSClient(port, ca, host, timeout=timeout) as c:
        return c.request("GET", path, headers, host=host)


def client_hello(server_hostname="a.test"):
    """The bytes of a real ClientHello (made in memory, sent nowhere)."""
    ctx = client_context(verify=False)
    inc, out = ssl.MemoryBIO(), ssl.MemoryBIO()
    obj = ctx.wrap_bio(inc, out, server_hostname=server_hostname)
    try:
        obj.do_handshake()
    except ssl.SSLWantReadError:
        pass
    return out.read()


# -- an HTTPS upstream -------------------------------------------------------------


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    timeout = 15

    def setup(self):
        srv = self.server.owner
        self.timeout = srv.idle
        try:
            self.request.settimeout(self.timeout)
            self.request.do_handshake()
        except Exception as e:
            with srv.lock:
                srv.handshake_errors.append(repr(e))
            raise
        with srv.lock:
            srv.handshakes += 1
        super().setup()

    def log_message(self, *a):
        pass

    def _answer(self, body, status=200, extra=()):
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("X-Upstream", self.server.owner.name)
        for k, v in extra:
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body)

    def _count(self):
        srv = self.server.owner
        with srv.lock:
            srv.requests.append(self.path)

    def do_GET(self):
        self._count()
        if self.path.startswith("/size/"):
            self._answer(zdmtest.content(int(self.path[6:])))
        elif self.path == "/headers":
            self._answer(json.dumps({"headers": list(self.headers.items())}).encode())
        else:
            self._answer(("%s\n" % self.server.owner.name).encode())

    def do_POST(self):
        self._count()
        n = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(n)
        self._answer(body, extra=[("X-Body-Sha256", hashlib.sha256(body).hexdigest())])


class _Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 64

    def get_request(self):
        sock, addr = self.socket.accept()
        with self.owner.lock:
            self.owner.connections += 1
        return self.owner.ctx.wrap_socket(sock, server_side=True,
                                          do_handshake_on_connect=False), addr

    def handle_error(self, request, client_address):
        pass


class TLSUpstream:
    """An HTTPS/1.1 server (python ssl, keep-alive) in a thread of this
    process. It counts the TCP connections it accepts, the handshakes that
    completed and failed, the request paths, and the SNI names it was sent.

      /            "NAME\\n"         /size/N   N bytes of zdmtest.content
      /headers     JSON of the request headers
      POST *       the body back, with X-Body-Sha256
    """

    def __init__(self, cert, key, name="tls", port=0, idle=15.0):
        self.name = name
        self.idle = idle                 # a connection idle this long is closed
        self.lock = threading.Lock()
        self.connections = 0
        self.handshakes = 0
        self.handshake_errors = []
        self.requests = []
        self.sni = []
        self.ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.ctx.load_cert_chain(cert, key)
        self.ctx.set_alpn_protocols(["http/1.1"])

        def on_sni(sslobj, name, ctx):
            with self.lock:
                self.sni.append(name)
        self.ctx.sni_callback = on_sni
        self.server = None
        self.thread = None
        self.port = port
        self.start()

    def start(self):
        deadline = time.monotonic() + 5
        while True:
            try:
                self.server = _Server((HOST, self.port), _Handler)
                break
            except OSError:
                if time.monotonic() >= deadline:
                    raise
                time.sleep(0.05)
        self.server.owner = self
        self.port = self.server.server_address[1]
        self.address = "%s:%d" % (HOST, self.port)
        self.thread = threading.Thread(target=self.server.serve_forever,
                                       kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()

    def stop(self):
        """Closes the listening socket (new connections are refused)."""
        if self.server:
            self.server.shutdown()
            self.server.server_close()
            self.server = None

    def snapshot(self):
        with self.lock:
            return {"connections": self.connections, "handshakes": self.handshakes,
                    "handshake_errors": list(self.handshake_errors),
                    "requests": list(self.requests), "sni": list(self.sni)}


def tls_pool(servers, tls, **more):
    """A pool entry for the harness' spec: {servers: [...], tls: {...}}."""
    p = {"servers": [{"address": s.address, "name": s.name} if hasattr(s, "name") and s.name
                     else {"address": s.address} for s in servers],
         "tls": tls}
    p.update(more)
    return p


__all__ = ["PKI", "tls_listen", "s_client", "SClient", "peer_cert", "client_context",
           "TLSClient", "https_get", "client_hello", "TLSUpstream", "tls_pool", "Raw"]
