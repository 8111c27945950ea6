#!/usr/bin/env python3
"""The soak test (tests/soak.py) in the suite: a short run of it, 45 s of
load and faults (ZDM_SOAK_SECONDS sets another length), on the plain build
only. Under AddressSanitizer and UndefinedBehaviorSanitizer zdmd runs several
times slower and the whole suite already runs every path with them, so
there the soak adds only time: it is skipped when configure was run with
--enable-sanitizers (ZDM_SANITIZERS=yes, set by the Makefile) or when the
zdmd binary is linked with a sanitizer runtime. tests/soak.py itself runs
with any binary (run it by hand for hours, see its header)."""

import os
import runpy
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from zdmtest import ZDMD  # noqa: E402

SANITIZER_MARKS = (b"__asan_init", b"__ubsan_handle_", b"__tsan_init", b"__msan_init")


def sanitizer_build():
    """Why this zdmd is a sanitizer build, or None."""
    if os.environ.get("ZDM_SANITIZERS") == "yes":
        return "configured with --enable-sanitizers"
    try:
        with open(ZDMD, "rb") as f:
            data = f.read()
    except OSError:
        return None
    for mark in SANITIZER_MARKS:
        if mark in data:
            return "zdmd is linked with a sanitizer runtime (%s)" % mark.decode()
    return None


why = sanitizer_build()
if why:
    print("1..0 # SKIP the soak test runs in the plain build only: %s" % why, flush=True)
    sys.exit(0)

seconds = os.environ.get("ZDM_SOAK_SECONDS", "45")
sys.argv = [os.path.join(HERE, "..", "soak.py"), "--duration", seconds]
runpy.run_path(sys.argv[0], run_name="__main__")
