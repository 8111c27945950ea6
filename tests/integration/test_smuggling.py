#!/usr/bin/env python3
"""Request smuggling and response splitting, against the real zdmd (SPEC §5).

Every case of the corpus below is sent whole, on a connection of its own, to
a zdmd in front of a raw upstream (strict.RawBackend) that records every byte
it gets and reads it with a strict HTTP/1.1 reader. A case is either
refused (400, 501 or 431: the answer is zdmd's own, the connection closes,
and not one byte of it reaches the upstream) or forwarded: the upstream
reads exactly the requests expected, each one unambiguous (normalised where
zdmd rewrites it: Transfer-Encoding, absolute-form), and the client gets
the answer to each. After every case a probe goes out on a new connection,
and on the same one when it stays open: the upstream must read exactly the
probe, and the client get the probe's answer, so nothing of the case was
left to poison what follows.

Then the upstream answers with broken responses: each must reach the client
as zdmd's 502, with none of the broken bytes, and the next request on the
connection must be answered normally.
"""

import socket

from strict import RawBackend, echo_body
from zdmtest import TAP, Closed, Raw, Server, Zdmd, is_self_made

tap = TAP(deadline=240)
backend = RawBackend()
z = Zdmd(tap, {"pools": {"old": [Server(backend.address, name="raw")]},
               "split": {"old": 100},
               "limits": {"max_header_bytes": Raw("4k")},
               "circuit_breaker": {"failures": 0},
               "log_level": "warn"})

HOST = b"h.test"


class Fwd:
    """A request the upstream must read, as zdmd forwards it."""

    def __init__(self, method=b"POST", target=b"/t", host=HOST, body=b"", chunked=None,
                 close=False):
        self.method, self.target, self.host, self.body = method, target, host, body
        self.chunked = chunked    # None: either; True/False: the forwarded framing
        self.close = close        # the client connection ends after its answer

    def key(self):
        return (self.method, self.target, self.host, self.body)


def req(*lines, body=b"", start=b"POST /t HTTP/1.1", host=True):
    """A request: START, Host (unless host is False), LINES, the blank line,
    BODY."""
    head = [start] + ([b"Host: " + HOST] if host else []) + list(lines)
    return b"\r\n".join(head) + b"\r\n\r\n" + body


TE = b"Transfer-Encoding: chunked"
SMUGGLED = b"GET /smuggled HTTP/1.1\r\nHost: h.test\r\n\r\n"
CHUNKED_SMUGGLE = b"0\r\n\r\n" + SMUGGLED

CASES = [
    # -- CL.TE and TE.CL: both framing headers ------------------------------------------
    ("CL then TE", req(b"Content-Length: 6", TE, body=b"0\r\n\r\nX"), 400),
    ("TE then CL", req(TE, b"Content-Length: 6", body=b"0\r\n\r\nX"), 400),
    ("CL.TE with a smuggled GET", req(b"Content-Length: 44", TE, body=CHUNKED_SMUGGLE), 400),
    ("TE.CL with a smuggled GET", req(TE, b"Content-Length: 4", body=b"2d\r\n" + SMUGGLED +
                                      b"\r\n0\r\n\r\n"), 400),
    ("CL: 0 and TE", req(b"Content-Length: 0", TE, body=CHUNKED_SMUGGLE), 400),
    ("two differing Content-Lengths", req(b"Content-Length: 5", b"Content-Length: 6",
                                          body=b"hello!"), 400),
    ("two equal Content-Lengths", req(b"Content-Length: 5", b"Content-Length: 5",
                                      body=b"hello"), 400),
    ("a Content-Length list", req(b"Content-Length: 5, 5", body=b"hello"), 400),
    ("Content-Length: +5", req(b"Content-Length: +5", body=b"hello"), 400),
    ("Content-Length: -1", req(b"Content-Length: -1"), 400),
    ("Content-Length: 0x5", req(b"Content-Length: 0x5", body=b"hello"), 400),
    ("Content-Length: 5.0", req(b"Content-Length: 5.0", body=b"hello"), 400),
    ("Content-Length: 5e0", req(b"Content-Length: 5e0", body=b"hello"), 400),
    ("Content-Length with a tab inside", req(b"Content-Length: 5\t5", body=b"hello"), 400),
    ("an empty Content-Length", req(b"Content-Length:", body=b"hello"), 400),
    ("a Content-Length that overflows", req(b"Content-Length: 99999999999999999999999",
                                            body=b"hello"), 400),
    ("Content-Length : 5 (space before the colon)", req(b"Content-Length : 5",
                                                        body=b"hello"), 400),
    ("Content-Length\\t: 5", req(b"Content-Length\t: 5", body=b"hello"), 400),
    ("Content-Length with OWS around it", req(b"Content-Length: \t5  ", body=b"hello"),
     Fwd(body=b"hello", chunked=False)),
    # (llhttp refuses a tab after a Content-Length or a Transfer-Encoding, which
    # RFC 9110 would let through as OWS: stricter, so it stays)
    ("Content-Length with a tab after it", req(b"Content-Length: 5\t", body=b"hello"), 400),
    ("Content-Length: 05", req(b"Content-Length: 05", body=b"hello"),
     Fwd(body=b"hello", chunked=False)),
    ("a Content-Length body, then a pipelined GET",
     req(b"Content-Length: 5", body=b"hello" + SMUGGLED),
     [Fwd(body=b"hello"), Fwd(method=b"GET", target=b"/smuggled")]),
    ("Connection: Content-Length does not remove the framing",
     req(b"Connection: Content-Length", b"Content-Length: 5", body=b"hello"),
     Fwd(body=b"hello", chunked=False)),

    # -- TE.TE: obfuscated Transfer-Encoding ------------------------------------------------
    ("Transfer-Encoding : chunked", req(b"Transfer-Encoding : chunked", body=b"0\r\n\r\n"), 400),
    ("Transfer-Encoding\\x0b: chunked", req(b"Transfer-Encoding\x0b: chunked",
                                           body=b"0\r\n\r\n"), 400),
    ("Transfer-Encoding: \\x0bchunked", req(b"Transfer-Encoding: \x0bchunked",
                                           body=b"0\r\n\r\n"), 400),
    ("Transfer-Encoding: xchunked", req(b"Transfer-Encoding: xchunked", body=b"0\r\n\r\n"), 400),
    ("Transfer-Encoding: chunkedx", req(b"Transfer-Encoding: chunkedx", body=b"0\r\n\r\n"), 400),
    ("Transfer-Encoding: chunk", req(b"Transfer-Encoding: chunk", body=b"0\r\n\r\n"), 400),
    ("Transfer-Encoding: chunked chunked", req(b"Transfer-Encoding: chunked chunked",
                                               body=b"0\r\n\r\n"), 400),
    ("Transfer-Encoding: chunked, identity", req(b"Transfer-Encoding: chunked, identity",
                                                 body=b"0\r\n\r\n"), 400),
    ("Transfer-Encoding: chunked, gzip", req(b"Transfer-Encoding: chunked, gzip",
                                             body=b"0\r\n\r\n"), 400),
    ("Transfer-Encoding: identity, chunked", req(b"Transfer-Encoding: identity, chunked",
                                                 body=b"0\r\n\r\n"), 501),
    ("Transfer-Encoding: gzip, chunked", req(b"Transfer-Encoding: gzip, chunked",
                                             body=b"0\r\n\r\n"), 501),
    ("Transfer-Encoding: x, chunked", req(b"Transfer-Encoding: x, chunked",
                                          body=b"0\r\n\r\n"), 501),
    ("gzip then chunked on two lines", req(b"Transfer-Encoding: gzip", TE,
                                           body=b"0\r\n\r\n"), 501),
    ("Transfer-Encoding: gzip alone", req(b"Transfer-Encoding: gzip", body=b"abc"), 400),
    ("Transfer-Encoding twice", req(TE, TE, body=b"0\r\n\r\n"), 400),
    ("Transfer-Encoding: chunked, chunked", req(b"Transfer-Encoding: chunked, chunked",
                                                body=b"0\r\n\r\n"), 400),
    ("chunked then identity on two lines", req(TE, b"Transfer-Encoding: identity",
                                               body=b"0\r\n\r\n"), 400),
    ("Transfer-Encoding: chunked;q=1", req(b"Transfer-Encoding: chunked;q=1",
                                           body=b"0\r\n\r\n"), 400),
    ('Transfer-Encoding: "chunked"', req(b'Transfer-Encoding: "chunked"', body=b"0\r\n\r\n"), 400),
    ("an empty Transfer-Encoding", req(b"Transfer-Encoding:", body=b"0\r\n\r\n"), 400),
    ("Transfer-Encoding: chunked with a NUL", req(b"Transfer-Encoding: chun\x00ked",
                                                  body=b"0\r\n\r\n"), 400),
    ("Transfer-Encoding: chunked with a Cyrillic e",
     req("Transfer-Encoding: chunk\u0435d".encode(), body=b"0\r\n\r\n"), 400),
    ("Transfer-Encoding in HTTP/1.0", req(TE, start=b"POST /t HTTP/1.0", body=b"0\r\n\r\n"), 400),
    ("Transfer-Encoding in HTTP/1.0 with Content-Length",
     req(TE, b"Content-Length: 5", start=b"POST /t HTTP/1.0", body=b"hello"), 400),
    ("Transfer-Encoding:\\tchunked", req(b"Transfer-Encoding:\tchunked",
                                        body=b"5\r\nhello\r\n0\r\n\r\n"),
     Fwd(body=b"hello", chunked=True)),
    ("Transfer-Encoding: chunked\\t", req(b"Transfer-Encoding: chunked\t",
                                         body=b"5\r\nhello\r\n0\r\n\r\n"), 400),
    ("Transfer-Encoding: chunked and spaces", req(b"Transfer-Encoding: chunked  ",
                                                  body=b"5\r\nhello\r\n0\r\n\r\n"),
     Fwd(body=b"hello", chunked=True)),
    ("Transfer-Encoding: CHUNKED", req(b"Transfer-Encoding: CHUNKED",
                                       body=b"5\r\nhello\r\n0\r\n\r\n"),
     Fwd(body=b"hello", chunked=True)),
    ("TRANSFER-ENCODING: Chunked", req(b"TRANSFER-ENCODING: Chunked",
                                       body=b"5\r\nhello\r\n0\r\n\r\n"),
     Fwd(body=b"hello", chunked=True)),
    ("Transfer-Encoding: , chunked", req(b"Transfer-Encoding: , chunked",
                                         body=b"5\r\nhello\r\n0\r\n\r\n"),
     Fwd(body=b"hello", chunked=True)),
    ("Transfer_Encoding is another field", req(b"Transfer_Encoding: chunked",
                                               b"Content-Length: 5", body=b"hello"),
     Fwd(body=b"hello", chunked=False)),
    ("Connection: Transfer-Encoding keeps the framing",
     req(b"Connection: Transfer-Encoding", TE, body=b"5\r\nhello\r\n0\r\n\r\n"),
     Fwd(body=b"hello", chunked=True)),
    ("TE.CL: a smuggled request inside a chunk is data",
     req(TE, body=b"%x\r\n%s\r\n0\r\n\r\n" % (len(SMUGGLED), SMUGGLED)),
     Fwd(body=SMUGGLED, chunked=True)),

    # -- obs-fold, whitespace, bare CR and LF --------------------------------------------
    ("obs-fold after an empty Transfer-Encoding", req(b"Transfer-Encoding:", b" chunked",
                                                      body=b"0\r\n\r\n"), 400),
    ("obs-fold (tab) after an empty Transfer-Encoding",
     req(b"Transfer-Encoding:", b"\tchunked", body=b"0\r\n\r\n"), 400),
    ("obs-fold after Transfer-Encoding: chunked", req(TE, b" identity", body=b"0\r\n\r\n"), 400),
    ("obs-fold hiding Transfer-Encoding", req(b"X-A: b", b" Transfer-Encoding: chunked",
                                              b"Content-Length: 5", body=b"hello"), 400),
    ("obs-fold after an empty value", req(b"X-A:", b" b"), 400),
    ("obs-fold of Host", req(b"X-A: a", start=b"GET /t HTTP/1.1\r\nHost:\r\n h.test",
                             host=False), 400),
    ("whitespace before the first field", req(start=b"GET /t HTTP/1.1\r\n Host: h.test",
                                              host=False), 400),
    ("Transfer-Encoding: chunked ending in a bare LF",
     req(body=b"0\r\n\r\n", start=b"POST /t HTTP/1.1\r\nHost: h.test\r\n"
                                  b"Transfer-Encoding: chunked\nX-A: b", host=False), 400),
    ("Transfer-Encoding: chunked ending in a bare CR",
     req(b"Transfer-Encoding: chunked\rX-A: b", body=b"0\r\n\r\n"), 400),
    ("a request line ending in a bare LF", b"GET /t HTTP/1.1\nHost: h.test\r\n\r\n", 400),
    ("a head ending in a bare LF", b"GET /t HTTP/1.1\r\nHost: h.test\r\n\n", 400),
    ("a head of bare LFs", b"GET /t HTTP/1.1\nHost: h.test\n\n", 400),
    ("a bare CR in a value", req(b"X-A: a\rb"), 400),
    ("a DEL in a value", req(b"X-A: a\x7fb"), 400),
    ("a NUL in a value", req(b"X-A: a\x00b"), 400),
    ("a NUL in a name", req(b"X-\x00A: b"), 400),
    ("a control byte in a name", req(b"X-\x01A: b"), 400),
    ("obs-text in a value is forwarded", req(b"X-A: \x80\xff", start=b"GET /t HTTP/1.1"),
     Fwd(method=b"GET")),
    ("an empty field name", req(b": x"), 400),
    ("an empty field name first", req(b": x", start=b"GET /t HTTP/1.1"), 400),
    ("a field name with a slash", req(b"X/A: b"), 400),
    ("a field name with a quote", req(b'X"A: b'), 400),
    ("a field name with brackets", req(b"X[A]: b"), 400),
    ("a field line without a colon", req(b"X-A b"), 400),

    # -- chunk lines ------------------------------------------------------------------------
    ("a chunk extension", req(TE, body=b"5;ext\r\nhello\r\n0\r\n\r\n"),
     Fwd(body=b"hello", chunked=True)),
    ("chunk extensions with values", req(TE, body=b'5;a;c="d;e f"\r\nhello\r\n0;z=y\r\n\r\n'),
     Fwd(body=b"hello", chunked=True)),
    # (llhttp refuses a quoted-pair in an extension value, and an extension
    # after one with a value: stricter than RFC 9112 §7.1.1, so it stays)
    ("a quoted-pair in an extension", req(TE, body=b'5;c="d\\"f"\r\nhello\r\n0\r\n\r\n'), 400),
    ("an extension after a value", req(TE, body=b'5;a=b;c\r\nhello\r\n0\r\n\r\n'), 400),
    ("a quoted extension holding CRLF", req(TE, body=b'5;a="b\r\nc"\r\nhello\r\n0\r\n\r\n'), 400),
    ("a bare LF in an extension", req(TE, body=b"5;a\nb\r\nhello\r\n0\r\n\r\n"), 400),
    ("a bare CR in an extension", req(TE, body=b"5;a\rb\r\nhello\r\n0\r\n\r\n"), 400),
    ("a NUL in an extension", req(TE, body=b"5;a\x00\r\nhello\r\n0\r\n\r\n"), 400),
    ("';' without an extension", req(TE, body=b"5;\r\nhello\r\n0\r\n\r\n"), 400),
    ("an extension '=' without a value", req(TE, body=b"5;a=\r\nhello\r\n0\r\n\r\n"), 400),
    ("a chunk size with 0x", req(TE, body=b"0x5\r\nhello\r\n0\r\n\r\n"), 400),
    ("a space before a chunk size", req(TE, body=b" 5\r\nhello\r\n0\r\n\r\n"), 400),
    ("a space after a chunk size", req(TE, body=b"5 \r\nhello\r\n0\r\n\r\n"), 400),
    ("a tab after a chunk size", req(TE, body=b"5\t\r\nhello\r\n0\r\n\r\n"), 400),
    ("a negative chunk size", req(TE, body=b"-5\r\nhello\r\n0\r\n\r\n"), 400),
    ("a chunk size with a sign", req(TE, body=b"+5\r\nhello\r\n0\r\n\r\n"), 400),
    ("a chunk size that overflows 64 bits", req(TE, body=b"10000000000000005\r\nhello\r\n"
                                                      b"0\r\n\r\n"), 400),
    ("a chunk size of 16 f", req(TE, body=b"ffffffffffffffff\r\nhello\r\n0\r\n\r\n"), 400),
    ("a chunk size of 16 digits", req(TE, body=b"0000000000000005\r\nhello\r\n0\r\n\r\n"), 400),
    ("a chunk size that is not hex", req(TE, body=b"zz\r\nhello\r\n0\r\n\r\n"), 400),
    ("an empty chunk size", req(TE, body=b"\r\nhello\r\n0\r\n\r\n"), 400),
    ("leading zeros and upper-case hex", req(TE, body=b"000A\r\n0123456789\r\n0\r\n\r\n"),
     Fwd(body=b"0123456789", chunked=True)),
    ("chunk data longer than its size", req(TE, body=b"3\r\nhello\r\n0\r\n\r\n"), 400),
    ("chunk data shorter than its size", req(TE, body=b"7\r\nhello\r\n0\r\n\r\n"), 400),
    ("a bare LF after a chunk size", req(TE, body=b"5\nhello\r\n0\r\n\r\n"), 400),
    ("a bare LF after chunk data", req(TE, body=b"5\r\nhello\n0\r\n\r\n"), 400),
    ("a bare LF ending the body", req(TE, body=b"5\r\nhello\r\n0\r\n\n"), 400),
    ("a bare CR after chunk data", req(TE, body=b"5\r\nhello\rX0\r\n\r\n"), 400),
    ("a chunked body, then a pipelined GET", req(TE, body=b"5\r\nhello\r\n" + CHUNKED_SMUGGLE),
     [Fwd(body=b"hello", chunked=True), Fwd(method=b"GET", target=b"/smuggled")]),

    # -- trailers ----------------------------------------------------------------------------
    ("a trailer field is forwarded", req(TE, body=b"5\r\nhello\r\n0\r\nX-Sum: 1\r\n\r\n"),
     Fwd(body=b"hello", chunked=True)),
    ("Content-Length in a trailer", req(TE, body=b"0\r\nContent-Length: 44\r\n\r\n" + SMUGGLED),
     400),
    ("Transfer-Encoding in a trailer", req(TE, body=b"0\r\nTransfer-Encoding: chunked\r\n\r\n"),
     400),
    ("Host in a trailer", req(TE, body=b"0\r\nHost: evil.test\r\n\r\n"), 400),
    ("Connection in a trailer", req(TE, body=b"0\r\nConnection: close\r\n\r\n"), 400),
    ("X-Forwarded-For in a trailer", req(TE, body=b"0\r\nX-Forwarded-For: 10.9.9.9\r\n\r\n"), 400),
    ("Trailer in a trailer", req(TE, body=b"0\r\nTrailer: X-Sum\r\n\r\n"), 400),
    ("a trailer line starting with a space", req(TE, body=b"0\r\n X-Sum: 1\r\n\r\n"), 400),
    ("obs-fold in a trailer", req(TE, body=b"0\r\nX-Sum: 1\r\n 2\r\n\r\n"), 400),
    ("an empty trailer name", req(TE, body=b"0\r\n: 1\r\n\r\n"), 400),
    ("whitespace before a trailer colon", req(TE, body=b"0\r\nX-Sum : 1\r\n\r\n"), 400),
    ("a bare LF after a trailer", req(TE, body=b"0\r\nX-Sum: 1\n\r\n"), 400),
    ("a NUL in a trailer", req(TE, body=b"0\r\nX-Sum: a\x00b\r\n\r\n"), 400),
    ("a request line as a trailer", req(TE, body=b"0\r\n" + SMUGGLED), 400),

    # -- request lines -------------------------------------------------------------------------
    ("two spaces after the method", b"GET  /t HTTP/1.1\r\nHost: h.test\r\n\r\n", 400),
    ("a space after the version", b"GET /t HTTP/1.1 \r\nHost: h.test\r\n\r\n", 400),
    ("a tab after the method", b"GET\t/t HTTP/1.1\r\nHost: h.test\r\n\r\n", 400),
    ("a tab before the version", b"GET /t\tHTTP/1.1\r\nHost: h.test\r\n\r\n", 400),
    ("HTTP/1.10", b"GET /t HTTP/1.10\r\nHost: h.test\r\n\r\n", 400),
    ("HTTP/1.2", b"GET /t HTTP/1.2\r\nHost: h.test\r\n\r\n", 400),
    ("HTTP/01.1", b"GET /t HTTP/01.1\r\nHost: h.test\r\n\r\n", 400),
    ("HTTP/2.0", b"GET /t HTTP/2.0\r\nHost: h.test\r\n\r\n", 400),
    ("HTTP/0.9", b"GET /t HTTP/0.9\r\nHost: h.test\r\n\r\n", 400),
    ("no version", b"GET /t\r\nHost: h.test\r\n\r\n", 400),
    ("http/1.1 in lower case", b"GET /t http/1.1\r\nHost: h.test\r\n\r\n", 400),
    ("a method in lower case", b"get /t HTTP/1.1\r\nHost: h.test\r\n\r\n", 400),
    ("a NUL in the method", b"G\x00ET /t HTTP/1.1\r\nHost: h.test\r\n\r\n", 400),
    ("CONNECT", b"CONNECT h.test:443 HTTP/1.1\r\nHost: h.test:443\r\n\r\n", 400),
    ("GET *", b"GET * HTTP/1.1\r\nHost: h.test\r\n\r\n", 400),
    ("OPTIONS *", b"OPTIONS * HTTP/1.1\r\nHost: h.test\r\n\r\n",
     Fwd(method=b"OPTIONS", target=b"*")),
    ("a relative target", b"GET t/u HTTP/1.1\r\nHost: h.test\r\n\r\n", 400),
    ("a fragment", b"GET /t#frag HTTP/1.1\r\nHost: h.test\r\n\r\n", 400),
    ('a " in the target', b'GET /t"u HTTP/1.1\r\nHost: h.test\r\n\r\n', 400),
    ("a < in the target", b"GET /t<u HTTP/1.1\r\nHost: h.test\r\n\r\n", 400),
    ("a > in the target", b"GET /t>u HTTP/1.1\r\nHost: h.test\r\n\r\n", 400),
    ("a backslash in the target", b"GET /t\\u HTTP/1.1\r\nHost: h.test\r\n\r\n", 400),
    ("a ^ in the target", b"GET /t^u HTTP/1.1\r\nHost: h.test\r\n\r\n", 400),
    ("a backtick in the target", b"GET /t`u HTTP/1.1\r\nHost: h.test\r\n\r\n", 400),
    ("a { in the target", b"GET /t{u HTTP/1.1\r\nHost: h.test\r\n\r\n", 400),
    ("a | in the target", b"GET /t|u HTTP/1.1\r\nHost: h.test\r\n\r\n", 400),
    ("a } in the target", b"GET /t}u HTTP/1.1\r\nHost: h.test\r\n\r\n", 400),
    ("a [ in the target", b"GET /t[u] HTTP/1.1\r\nHost: h.test\r\n\r\n", 400),
    ("UTF-8 in the target", "GET /caf\u00e9 HTTP/1.1\r\nHost: h.test\r\n\r\n".encode(), 400),
    ("a control byte in the target", b"GET /t\x01u HTTP/1.1\r\nHost: h.test\r\n\r\n", 400),
    ("a NUL in the target", b"GET /t\x00u HTTP/1.1\r\nHost: h.test\r\n\r\n", 400),
    ("a DEL in the target", b"GET /t\x7fu HTTP/1.1\r\nHost: h.test\r\n\r\n", 400),
    ("a bad percent-encoding", b"GET /t%zz HTTP/1.1\r\nHost: h.test\r\n\r\n", 400),
    ("a cut percent-encoding", b"GET /t%2 HTTP/1.1\r\nHost: h.test\r\n\r\n", 400),
    ("percent-encodings are forwarded", b"GET /t%2Fu?q=%20 HTTP/1.1\r\nHost: h.test\r\n\r\n",
     Fwd(method=b"GET", target=b"/t%2Fu?q=%20")),
    ("a path starting with //", b"GET //t/u HTTP/1.1\r\nHost: h.test\r\n\r\n",
     Fwd(method=b"GET", target=b"//t/u")),
    ("absolute-form: the authority wins over Host",
     b"GET http://a.example/x?y=1 HTTP/1.1\r\nHost: b.example\r\n\r\n",
     Fwd(method=b"GET", target=b"/x?y=1", host=b"a.example")),
    ("absolute-form with an empty path", b"GET HTTP://a.example:8080 HTTP/1.1\r\n"
                                         b"Host: a.example:8080\r\n\r\n",
     Fwd(method=b"GET", target=b"/", host=b"a.example:8080")),
    ("absolute-form with a query and no path", b"GET https://a.example?q HTTP/1.1\r\n"
                                                b"Host: a.example\r\n\r\n",
     Fwd(method=b"GET", target=b"/?q", host=b"a.example")),
    ("absolute-form, HTTP/1.0 without Host", b"GET http://a.example/x HTTP/1.0\r\n\r\n",
     Fwd(method=b"GET", target=b"/x", host=b"a.example", close=True)),
    ("absolute-form with a body", b"POST http://a.example/x HTTP/1.1\r\nHost: b\r\n"
                                  b"Content-Length: 5\r\n\r\nhello",
     Fwd(target=b"/x", host=b"a.example", body=b"hello")),
    ("absolute-form with userinfo", b"GET http://u@a.example/ HTTP/1.1\r\nHost: a.example\r\n\r\n",
     400),
    ("absolute-form without a host", b"GET http:///x HTTP/1.1\r\nHost: a.example\r\n\r\n", 400),
    ("absolute-form, empty Host", b"GET http://a.example/x HTTP/1.1\r\nHost:\r\n\r\n", 400),
    ("absolute-form, no Host in HTTP/1.1", b"GET http://a.example/x HTTP/1.1\r\n\r\n", 400),
    ("absolute-form with another scheme", b"GET ftp://a.example/x HTTP/1.1\r\n"
                                          b"Host: a.example\r\n\r\n", 400),
    ("absolute-form with a fragment", b"GET http://a.example/x#y HTTP/1.1\r\n"
                                      b"Host: a.example\r\n\r\n", 400),

    # -- Host --------------------------------------------------------------------------------
    ("no Host in HTTP/1.1", req(start=b"GET /t HTTP/1.1", host=False), 400),
    ("two Hosts", req(b"Host: h.test", start=b"GET /t HTTP/1.1"), 400),
    ("two Hosts, different", req(b"Host: evil.test", start=b"GET /t HTTP/1.1"), 400),
    ("a Host list", b"GET /t HTTP/1.1\r\nHost: h.test, evil.test\r\n\r\n", 400),
    ("a Host list without space", b"GET /t HTTP/1.1\r\nHost: h.test,evil.test\r\n\r\n", 400),
    ("a space in Host", b"GET /t HTTP/1.1\r\nHost: h test\r\n\r\n", 400),
    ("a tab in Host", b"GET /t HTTP/1.1\r\nHost: h\ttest\r\n\r\n", 400),
    ("userinfo in Host", b"GET /t HTTP/1.1\r\nHost: u@h.test\r\n\r\n", 400),
    ("a path in Host", b"GET /t HTTP/1.1\r\nHost: h.test/x\r\n\r\n", 400),
    ("a bad port in Host", b"GET /t HTTP/1.1\r\nHost: h.test:80x\r\n\r\n", 400),
    ("a port without a host", b"GET /t HTTP/1.1\r\nHost: :80\r\n\r\n", 400),
    ("UTF-8 in Host", "GET /t HTTP/1.1\r\nHost: h\u00e9.test\r\n\r\n".encode(), 400),
    ("Host : h.test", b"GET /t HTTP/1.1\r\nHost : h.test\r\n\r\n", 400),
    ("a bad Host in HTTP/1.0", b"GET /t HTTP/1.0\r\nHost: a b\r\n\r\n", 400),
    ("an IPv6 Host", b"GET /t HTTP/1.1\r\nHost: [::1]:8080\r\n\r\n",
     Fwd(method=b"GET", host=b"[::1]:8080")),
    ("an empty Host with an origin-form target", b"GET /t HTTP/1.1\r\nHost:\r\n\r\n",
     Fwd(method=b"GET", host=b"")),
    ("Connection: Host keeps Host", req(b"Connection: Host", start=b"GET /t HTTP/1.1"),
     Fwd(method=b"GET")),

    # -- empty lines before a request, limits ------------------------------------------------
    ("empty lines before a request are ignored", b"\r\n\r\n\r\nGET /t HTTP/1.1\r\n"
                                                 b"Host: h.test\r\n\r\n", Fwd(method=b"GET")),
    ("empty lines between pipelined requests",
     b"GET /a HTTP/1.1\r\nHost: h.test\r\n\r\n\r\n\r\nGET /b HTTP/1.1\r\nHost: h.test\r\n\r\n",
     [Fwd(method=b"GET", target=b"/a"), Fwd(method=b"GET", target=b"/b")]),
    ("a bare LF before a request", b"\nGET /t HTTP/1.1\r\nHost: h.test\r\n\r\n", 400),
    ("a bare CR before a request", b"\r\r\nGET /t HTTP/1.1\r\nHost: h.test\r\n\r\n", 400),
    ("a space before a request", b"\r\n GET /t HTTP/1.1\r\nHost: h.test\r\n\r\n", 400),
    ("empty lines past max_header_bytes", b"\r\n" * 3000 + b"GET /t HTTP/1.1\r\n"
                                                          b"Host: h.test\r\n\r\n", 431),
    ("101 header lines", req(*[b"X-H%d: %d" % (i, i) for i in range(100)],
                             start=b"GET /t HTTP/1.1"), 431),
    ("a header section over max_header_bytes", req(*[b"X-Big-%d: %s" % (i, b"v" * 100)
                                                     for i in range(50)],
                                                   start=b"GET /t HTTP/1.1"), 431),
    ("one header line over max_header_bytes", req(b"X-One: " + b"w" * 5000,
                                                  start=b"GET /t HTTP/1.1"), 431),
    ("100 header lines are taken", req(*[b"X-H%d: %d" % (i, i) for i in range(99)],
                                       start=b"GET /t HTTP/1.1"), Fwd(method=b"GET")),

    # -- hop-by-hop and forwarding fields ---------------------------------------------------
    ("Connection, Keep-Alive, TE and Upgrade are not forwarded",
     req(b"Connection: keep-alive, X-Hop", b"Keep-Alive: 5", b"TE: trailers", b"X-Hop: 1",
         b"Upgrade: h2c", b"Proxy-Connection: keep-alive", start=b"GET /t HTTP/1.1"),
     Fwd(method=b"GET")),
    ("the client's X-Forwarded-* are replaced",
     req(b"X-Forwarded-For: 10.1.1.1", b"X-Forwarded-For: 10.2.2.2", b"X-Real-IP: 10.3.3.3",
         b"X-Forwarded-Proto: https", start=b"GET /t HTTP/1.1"), Fwd(method=b"GET")),
    ("Connection: close", req(b"Connection: close", start=b"GET /t HTTP/1.1"),
     Fwd(method=b"GET", close=True)),
    ("an HTTP/1.0 request", b"GET /t HTTP/1.0\r\n\r\n",
     Fwd(method=b"GET", host=None, close=True)),
    ("Expect: 100-continue with its body", req(b"Expect: 100-continue", b"Content-Length: 5",
                                               body=b"hello"), Fwd(body=b"hello")),
]

PROBE = b"GET /probe/%d HTTP/1.1\r\nHost: probe.test\r\n\r\n"


def probe_key(n):
    return (b"GET", b"/probe/%d" % n, b"probe.test", b"")


def read(c, method=b"GET"):
    try:
        return c.read_response(method.decode())
    except (Closed, socket.timeout, OSError):
        return None


def answer_problem(r, want):
    """What is wrong with response r to the request want (a Fwd)."""
    if r is None:
        return "no answer"
    body = echo_body(want.method, want.target, want.host, want.body)
    if r.status != 200 or r.body != body:
        return "got %s %r, want 200 %r" % (r.status, r.body[:120], body)
    return None


def run_case(n, what, raw, expect):
    problems = []
    fwd = expect if isinstance(expect, list) else [expect] if isinstance(expect, Fwd) else []
    mark = backend.mark()
    probes = [n * 2]
    with z.client(timeout=5) as c:
        c.send(raw)
        if not fwd:
            r = read(c)
            if r is None:
                problems.append("%d: got a close without an answer" % expect)
            else:
                problems += is_self_made(r, expect)
            if not c.wait_closed(3):
                problems.append("the connection stays open after the %d" % expect)
        else:
            for f in fwd:
                p = answer_problem(read(c, f.method), f)
                if p:
                    problems.append("%s %s: %s" % (f.method.decode(), f.target.decode(), p))
            if fwd[-1].close:
                if not c.wait_closed(3):
                    problems.append("the connection stays open after Connection: close")
            else:
                # the same connection goes on with the probe
                probes.append(n * 2 + 1)
                c.send(PROBE % probes[-1])
                p = answer_problem(read(c), Fwd(*probe_key(probes[-1])))
                if p:
                    problems.append("probe on the same connection: " + p)
    with z.client(timeout=5) as c:
        c.send(PROBE % probes[0])
        p = answer_problem(read(c), Fwd(*probe_key(probes[0])))
        if p:
            problems.append("probe on a new connection: " + p)
    if not backend.settle():
        problems.append("the upstream did not settle")
    reqs, violations, leftovers = backend.since(mark)
    problems += ["upstream read an ambiguous request: " + v for v in violations]
    problems += ["upstream holds unread bytes: " + v for v in leftovers]
    got = sorted((r.method, r.target, r.get(b"host"), r.body) for r in reqs)
    want = sorted([f.key() for f in fwd] + [probe_key(p) for p in probes])
    if got != want:
        problems.append("upstream read %r, want %r" % (got, want))
    for f, r in zip(fwd, [r for r in reqs if not r.target.startswith(b"/probe/")]):
        if f.chunked is not None and r.chunked != f.chunked:
            problems.append("forwarded %s, want %s" % ("chunked" if r.chunked else "by length",
                                                       "chunked" if f.chunked else "by length"))
    verdict = "%d" % expect if not fwd else "forwarded (%d request%s)" % (
        len(fwd), "" if len(fwd) == 1 else "s")
    tap.ok(not problems, "%s: %s, nothing else reaches the upstream" % (what, verdict),
           "\n".join(problems) + "\nsent: %r" % raw[:300])


with tap.section("a well-formed request"):
    run_case(0, "a plain GET", req(start=b"GET /t HTTP/1.1"), Fwd(method=b"GET"))

nreq = 0
for i, (what, raw, expect) in enumerate(CASES):
    with tap.section(what):
        run_case(i + 1, what, raw, expect)
        nreq += 1
tap.ok(nreq >= 100, "the request corpus has %d cases" % nreq)

# -- responses ----------------------------------------------------------------------------

MARK = b"BROKEN"
OK_BODY = b"HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nBROKEN"
EARLY = b"HTTP/1.1 103 Early Hints\r\nLink: </style.css>\r\n\r\n"
RESPONSES = [
    ("status 099", b"HTTP/1.1 099 BROKEN\r\nContent-Length: 0\r\n\r\n", 502),
    ("status 000", b"HTTP/1.1 000 BROKEN\r\nContent-Length: 0\r\n\r\n", 502),
    ("status 600", b"HTTP/1.1 600 BROKEN\r\nContent-Length: 0\r\n\r\n", 502),
    ("status 999", b"HTTP/1.1 999 BROKEN\r\nContent-Length: 0\r\n\r\n", 502),
    ("status 1000", b"HTTP/1.1 1000 BROKEN\r\nContent-Length: 0\r\n\r\n", 502),
    ("a status of four digits", b"HTTP/1.1 0200 BROKEN\r\nContent-Length: 0\r\n\r\n", 502),
    ("a two-digit status", b"HTTP/1.1 20 BROKEN\r\nContent-Length: 0\r\n\r\n", 502),
    ("HTTP/2 in the status line", b"HTTP/2 200 BROKEN\r\nContent-Length: 0\r\n\r\n", 502),
    ("HTTP/2.0 in the status line", b"HTTP/2.0 200 BROKEN\r\nContent-Length: 0\r\n\r\n", 502),
    ("HTTP/0.9 in the status line", b"HTTP/0.9 200 BROKEN\r\nContent-Length: 0\r\n\r\n", 502),
    ("an empty field name", b"HTTP/1.1 200 OK\r\n: BROKEN\r\nContent-Length: 0\r\n\r\n", 502),
    ("whitespace before a colon", b"HTTP/1.1 200 OK\r\nX-Mark : BROKEN\r\nContent-Length: 0"
                                  b"\r\n\r\n", 502),
    ("obs-fold", b"HTTP/1.1 200 OK\r\nX-Mark: a\r\n BROKEN\r\nContent-Length: 0\r\n\r\n", 502),
    ("obs-fold after an empty Transfer-Encoding",
     b"HTTP/1.1 200 OK\r\nTransfer-Encoding:\r\n chunked\r\n\r\n6\r\nBROKEN\r\n0\r\n\r\n", 502),
    ("Content-Length and Transfer-Encoding",
     b"HTTP/1.1 200 OK\r\nContent-Length: 6\r\nTransfer-Encoding: chunked\r\n\r\n"
     b"6\r\nBROKEN\r\n0\r\n\r\n", 502),
    ("differing Content-Lengths", b"HTTP/1.1 200 OK\r\nContent-Length: 6\r\nContent-Length: 7"
                                  b"\r\n\r\nBROKEN!", 502),
    ("a negative Content-Length", b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\nBROKEN", 502),
    ("Transfer-Encoding: gzip, chunked", b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked"
                                         b"\r\n\r\n6\r\nBROKEN\r\n0\r\n\r\n", 502),
    ("Transfer-Encoding: gzip (to the close)", b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip"
                                               b"\r\n\r\nBROKEN", 502),
    ("chunked twice", b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n"
                      b"Transfer-Encoding: chunked\r\n\r\n6\r\nBROKEN\r\n0\r\n\r\n", 502),
    ("Transfer-Encoding in HTTP/1.0", b"HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                                      b"6\r\nBROKEN\r\n0\r\n\r\n", 502),
    ("a bad chunk size", b"HTTP/1.1 200 OK\r\nX-Mark: BROKEN\r\nTransfer-Encoding: chunked"
                         b"\r\n\r\nzz\r\nhello\r\n0\r\n\r\n", 502),
    ("a chunk size that overflows", b"HTTP/1.1 200 OK\r\nX-Mark: BROKEN\r\n"
                                    b"Transfer-Encoding: chunked\r\n\r\n"
                                    b"ffffffffffffffffffff\r\nhello\r\n0\r\n\r\n", 502),
    ("a chunk without its CRLF", b"HTTP/1.1 200 OK\r\nX-Mark: BROKEN\r\n"
                                 b"Transfer-Encoding: chunked\r\n\r\n5\r\nhelloXX0\r\n\r\n", 502),
    ("Content-Length in a trailer", b"HTTP/1.1 200 OK\r\nX-Mark: BROKEN\r\n"
                                    b"Transfer-Encoding: chunked\r\n\r\n0\r\n"
                                    b"Content-Length: 5\r\n\r\n", 502),
    ("an empty line before the status line", b"\r\n" + OK_BODY, 502),
    ("a bare LF after the status line", b"HTTP/1.1 200 OK\nContent-Length: 6\r\n\r\nBROKEN", 502),
    ("a control byte in the reason phrase", b"HTTP/1.1 200 O\x01K\r\nX-Mark: BROKEN\r\n"
                                            b"Content-Length: 0\r\n\r\n", 502),
    ("a NUL in a value", b"HTTP/1.1 200 OK\r\nX-Mark: BROK\x00EN\r\nContent-Length: 0\r\n\r\n", 502),
    ("11 interim responses", EARLY * 10 + b"HTTP/1.1 103 BROKEN\r\n\r\n" + OK_BODY, 502),
    ("not HTTP at all", b"BROKEN\r\n\r\n", 502),
    # what is fine is relayed
    ("10 interim responses", EARLY * 10 + b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", 200),
    ("chunked, upper case", b"HTTP/1.1 200 OK\r\nTransfer-Encoding: Chunked\r\n\r\n"
                            b"2\r\nok\r\n0\r\n\r\n", 200),
]

for i, (what, raw, want) in enumerate(RESPONSES):
    with tap.section("response: " + what):
        target = b"/script/%d" % i
        backend.script(target, raw)
        problems = []
        with z.client(timeout=5) as c:
            c.send(b"GET " + target + b" HTTP/1.1\r\nHost: h.test\r\n\r\n")
            r = read(c)
            if r is None:
                problems.append("no answer")
            else:
                seen = r.head + r.body + b"".join(x.head for x in r.interim)
                if want == 502:
                    problems += is_self_made(r, 502)
                    if MARK in seen:
                        problems.append("the broken bytes reached the client: %r" % seen[:300])
                elif r.status != want or r.body != b"ok":
                    problems.append("got %s %r, want %d ok" % (r.status, r.body, want))
                if len(r.interim) > 10:
                    problems.append("%d interim responses relayed" % len(r.interim))
                n = 2 * len(CASES) + 10 + 2 * i
                c.send(PROBE % n)
                p = answer_problem(read(c), Fwd(*probe_key(n)))
                if p:
                    problems.append("the next request on the connection: " + p)
        if want == 200:
            # the normalised framing the client got
            te = r.get_all("transfer-encoding") if r else []
            if te not in ([], ["chunked"]):
                problems.append("Transfer-Encoding relayed as %r" % te)
        tap.ok(not problems, "response with %s: %s%s" % (
            what, "502, none of its bytes relayed" if want == 502 else "relayed",
            ", the next request answered"), "\n".join(problems))

tap.ok(z.alive(), "zdmd is still running")
backend.stop()
tap.done()
