#!/usr/bin/env python3
"""The layout of src/ (README "Layout"): every file lives in a wing, and a
wing includes only its own headers and those of the wings below it:

    core  <-  net, http1  <-  proxy  <-  rollout  <-  control  <-  obs  <-  zdmd, zdmctl

Every project header is included by its wing-qualified path ("core/log.h"),
so the check reads the #include lines of each source and header file. It
prints TAP: one point per file, failing with the includes that point up
(or sideways, between net and http1)."""

import os
import re
import sys

SRC = os.path.join(os.environ.get("ZDM_TESTDIR", os.path.dirname(os.path.abspath(__file__))),
                   "..", "src")
# What each wing may include, itself included.
ALLOWED = {
    "core": {"core"},
    "net": {"core", "net"},
    "http1": {"core", "http1"},
    "proxy": {"core", "net", "http1", "proxy"},
    "rollout": {"core", "proxy", "rollout"},
    "control": {"core", "net", "http1", "proxy", "rollout", "control"},
    "obs": {"core", "net", "http1", "proxy", "rollout", "control", "obs"},
    "": {"core", "net", "http1", "proxy", "rollout", "control", "obs"},   # zdmd.c, zdmctl.c
}
INCLUDE = re.compile(r'^\s*#\s*include\s+"([^"]+)"', re.M)

files = []
for root, dirs, names in os.walk(SRC):
    dirs[:] = sorted(d for d in dirs if d != "llhttp")
    for n in sorted(names):
        if n.endswith((".c", ".h", ".def")):
            files.append(os.path.relpath(os.path.join(root, n), SRC))

n = 0
failed = 0
for rel in files:
    wing = os.path.dirname(rel)
    n += 1
    if wing not in ALLOWED:
        print("not ok %d - %s: not in a wing (%s)" % (n, rel, ", ".join(sorted(ALLOWED)[1:])))
        failed += 1
        continue
    with open(os.path.join(SRC, rel), errors="replace") as f:
        text = f.read()
    bad = []
    for inc in INCLUDE.findall(text):
        target = os.path.dirname(inc)
        if not os.path.exists(os.path.join(SRC, inc)):
            bad.append("%s (no such project header)" % inc)
        elif target not in ALLOWED[wing]:
            bad.append(inc)
    if bad:
        failed += 1
        print("not ok %d - src/%s includes a higher wing: %s" % (n, rel, ", ".join(bad)))
    else:
        print("ok %d - src/%s includes only its own wing and those below it" % (n, rel))
print("1..%d" % n)
sys.exit(1 if failed else 0)
