#!/usr/bin/env python3
"""Canary pins (SPEC §4.1): header name case-insensitive, value exact, first
match wins, and a pinned pool without an available server answers 503."""

from zdmtest import TAP, Upstream, Zdmd, is_self_made

tap = TAP()
a, b, c = Upstream("a"), Upstream("b"), Upstream("c")


def who(z, headers, n=5):
    """The set of upstreams that answered N requests with HEADERS."""
    got = set()
    with z.client() as cl:
        for _ in range(n):
            r = cl.request("GET", "/", headers)
            got.add(r.get("x-upstream") if r.status == 200 else r.status)
    return got


with tap.section("pins at 0% new"):
    z = Zdmd(tap, {"expose_pool_header": True,
                   "pools": {"old": [a], "new": [b], "third": [c]},
                   "split": {"old": 100, "new": 0, "third": 0},
                   "pins": [{"header": "canary", "value": "true", "pool": "new"},
                            {"header": "x-team", "value": "qa", "pool": "third"},
                            {"header": "x-team", "value": "qa2", "pool": "new"}]})
    tap.eq(who(z, [("canary", "true")]), {"b"}, "canary: true goes to new at 0%")
    tap.eq(who(z, [("CANARY", "true")]), {"b"}, "CANARY: true goes to new (name case-insensitive)")
    tap.eq(who(z, [("Canary", "true")]), {"b"}, "Canary: true goes to new")
    tap.eq(who(z, [("canary", "True")]), {"a"}, "canary: True goes to old (value exact)")
    tap.eq(who(z, [("canary", "truex")]), {"a"}, "canary: truex goes to old (no prefix match)")
    tap.eq(who(z, [("canary", "tru")]), {"a"}, "canary: tru goes to old")
    tap.eq(who(z, []), {"a"}, "no pin header goes to old")
    tap.eq(who(z, [("X-Canary", "true")]), {"a"}, "a header that merely contains the name goes to old")
    tap.eq(who(z, [("canary", "  true  ")]), {"b"},
           "surrounding whitespace is not part of the value: canary:   true   goes to new")
    tap.eq(who(z, [("x-team", "qa")]), {"c"}, "second pin: x-team: qa goes to third")
    tap.eq(who(z, [("x-team", "qa2")]), {"b"}, "third pin: x-team: qa2 goes to new")
    tap.eq(who(z, [("x-team", "qa"), ("canary", "true")]), {"b"},
           "first matching pin in config order wins, whatever the header order")
    # Interleaved pinned and unpinned requests on one connection: the
    # decision is per request.
    with z.client() as cl:
        seq = []
        for i in range(10):
            h = [("canary", "true")] if i % 2 else []
            r = cl.request("GET", "/", h)
            seq.append(r.get("x-upstream"))
    tap.eq(seq, ["a", "b"] * 5, "per request, not per connection: alternating pinned requests")
    with z.client() as cl:
        r = cl.request("GET", "/", [("canary", "true")])
    tap.eq(r.get("x-zdm-pool"), "new", "a pinned response carries X-Zdm-Pool: new")
    z.stop()

with tap.section("cookie pins: one cookie among many"):
    z = Zdmd(tap, {"pools": {"old": [a], "new": [b]},
                   "split": {"old": 100, "new": 0},
                   "pins": [{"cookie": "beta", "value": "1", "pool": "new"}]})
    tap.eq(who(z, [("Cookie", "beta=1")]), {"b"}, "Cookie: beta=1 goes to new")
    tap.eq(who(z, [("Cookie", "session=abc; beta=1; theme=dark")]), {"b"},
           "beta=1 among other cookies goes to new")
    tap.eq(who(z, [("Cookie", "session=abc"), ("Cookie", "beta=1")]), {"b"},
           "beta=1 in a second Cookie line goes to new")
    tap.eq(who(z, [("Cookie", "beta=\"1\"")]), {"b"}, "a quoted value counts as its value")
    tap.eq(who(z, [("Cookie", "beta=10; xbeta=1; Beta=1")]), {"a"},
           "beta=10, xbeta=1, Beta=1 go to old (name and value exact)")
    tap.eq(who(z, [("X-Cookie", "beta=1")]), {"a"}, "only Cookie lines count")
    tap.eq(who(z, []), {"a"}, "no cookie goes to old")
    st = z.status()
    tap.eq(st.get("pins"), [{"cookie": "beta", "value": "1", "pool": "new"}],
           "status lists the pin with its cookie")
    z.stop()

with tap.section("pinned pool unavailable"):
    z = Zdmd(tap, {"pools": {"old": [a], "new": [Upstream("b0", weight=0)]},
                   "split": {"old": 100, "new": 0},
                   "pins": [{"header": "canary", "value": "true", "pool": "new"}]})
    with z.client() as cl:
        r = cl.request("GET", "/", [("canary", "true")])
        tap.eq(r.status, 503, "pinned pool whose only server has weight 0: 503")
        bad = is_self_made(r, 503)
        tap.ok(not bad, "the 503 is zdmd's own short text/plain answer", "; ".join(bad))
        tap.ok(r.get("x-upstream") != "a", "a pinned request never falls back to old")
    with z.client() as cl:
        r2 = cl.request("GET", "/")
        tap.eq((r2.status, r2.get("x-upstream")), (200, "a"),
               "an unpinned request still goes to old")
    z.stop()

tap.done()
