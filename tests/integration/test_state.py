#!/usr/bin/env python3
"""Runtime state (SPEC §6): every runtime change is written to state_file
atomically before the reply and restored at start; a corrupt or unknown
state file is reported and ignored, never half-applied; the reload merge
rule; and the control socket file itself: its mode, a stale socket from a
crashed run, a regular file or a live zdmd in the way."""

import grp
import json
import os
import signal
import socket
import stat
import subprocess
import threading

from zdmtest import (TAP, Upstream, Server, Zdmd, tmpdir, wait_for, build_config,
                     free_port, run_zdmd, pool_weights, find_server)

tap = TAP(deadline=180)
a, a2, b, c3 = Upstream("a"), Upstream("a2"), Upstream("b"), Upstream("c3")


def spec_for(state, split=(90, 10), a_weight=None, extra=None):
    pools = {"old": [Server(a.address, "a", a_weight), a2], "new": [b]}
    sp = {"old": split[0], "new": split[1]}
    if extra:
        pools["extra"] = [c3]
        sp = {"old": split[0], "new": split[1], "extra": extra}
    return {"expose_pool_header": True, "state_file": state,
            "pools": pools, "split": sp}


def runtime(z):
    """What a restart must bring back: pool percentages and, per server,
    weight and admin state."""
    st = z.status()
    return (pool_weights(st),
            [(p["name"], s["name"], s["weight"], s["admin"])
             for p in st["pools"] for s in p["servers"]])


def read_json(path):
    with open(path, "rb") as f:
        data = f.read()
    return json.loads(data.decode())


def ino(path):
    try:
        return os.stat(path).st_ino
    except OSError:
        return None


def clean_config_values(z, split=(90, 10)):
    st = z.status()
    return (pool_weights(st) == {"old": split[0], "new": split[1]} and
            [(s["name"], s["weight"], s["admin"]) for p in st["pools"] for s in p["servers"]] ==
            [("a", 1, "enabled"), ("a2", 1, "enabled"), ("b", 1, "enabled")])


def warned(z, path):
    """A warning line on stderr naming the state file."""
    return [ln for ln in z.stderr().splitlines()
            if "warn" in ln.lower() and (path in ln or os.path.basename(path) in ln)]


# -- persistence across a restart ----------------------------------------------------

with tap.section("persistence"):
    d = tmpdir()
    state = os.path.join(d, "state.json")
    z = Zdmd(tap, spec_for(state))
    tap.ok(clean_config_values(z), "first start: the config's values")
    changes = ["set-weight new 25", "set-weight old/a2 5", "drain old/a", "disable new/b"]
    valid, replaced = [], []
    prev = ino(state)
    for cmd in changes:
        r = z.ctl(cmd)
        try:
            read_json(state)
            valid.append(True)
        except (OSError, ValueError) as e:
            valid.append(repr(e))
        cur = ino(state)
        replaced.append(cur is not None and cur != prev)
        prev = cur
    tap.eq(valid, [True] * len(changes),
           "after each change's reply the state file exists and is valid JSON")
    tap.eq(replaced, [True] * len(changes),
           "each change replaced the file (a new inode: written aside and renamed)")
    tap.eq(sorted(os.listdir(d)), ["state.json"], "no temporary file left beside it")
    before = runtime(z)
    tap.eq(before[0], {"old": 75, "new": 25}, "runtime: 75/25")

    z.stop()
    tap.eq(z.proc.returncode, 0, "zdmd stopped with SIGTERM: exit 0")
    z.start()
    tap.eq(runtime(z), before,
           "after a restart, status shows the runtime percentages, weights and admin states")
    with z.client() as c:
        got = [c.request("GET", "/").get("x-upstream") for _ in range(10)]
    tap.eq(got, ["a2"] * 10, "and routing follows them (a draining, b disabled: all to a2)")

    z.ctl("enable old/a")
    z.ctl("enable new/b")
    r = z.ctl("set-weight new 40")
    z.kill()                         # crash right after the reply
    tap.ok(os.path.exists(z.sock_path), "after kill -9 the socket file is left behind (stale)")
    z.start()
    st = runtime(z)
    tap.eq(st[0], {"old": 60, "new": 40},
           "killed right after set-weight's reply: the change survived (written before the reply)")
    tap.eq([x[3] for x in st[1]], ["enabled"] * 3, "and so did the enables")
    tap.ok(z.status().get("ok"), "the stale socket from the killed run was replaced")
    z.stop()

# -- atomic replacement ----------------------------------------------------------

with tap.section("atomic writes"):
    d = tmpdir()
    state = os.path.join(d, "state.json")
    z = Zdmd(tap, spec_for(state))
    z.ctl("set-weight new 10")
    stop = threading.Event()
    reads = {"n": 0, "bad": []}

    def reader():
        while not stop.is_set():
            try:
                with open(state, "rb") as f:
                    data = f.read()
                json.loads(data.decode())
                reads["n"] += 1
            except Exception as e:
                reads["bad"].append(repr(e)[:200])

    t = threading.Thread(target=reader, daemon=True)
    t.start()
    bad_answers = 0
    with z.ctl_conn() as c:
        for i in range(400):
            cmd = ("set-weight new %d.%02d" % (i % 100, i % 100) if i % 3 else
                   "set-weight old/a2 %d" % (i % 1000))
            if not c.cmd(cmd).get("ok"):
                bad_answers += 1
    stop.set()
    t.join(5)
    tap.eq(bad_answers, 0, "400 changes answered ok")
    tap.ok(reads["n"] > 100, "the reader parsed the state file %d times meanwhile" % reads["n"])
    tap.eq(reads["bad"][:3], [], "every read was whole, valid JSON (%d bad reads)" % len(reads["bad"]))
    tap.eq(sorted(os.listdir(d)), ["state.json"], "no temporary file left beside it")
    last = runtime(z)
    z.stop()
    z.start()
    tap.eq(runtime(z), last, "a restart brings back the last of those changes")
    z.stop()

# -- corrupt and unknown state --------------------------------------------------------

def real_state(spec, cmds):
    """The state file zdmd writes for SPEC after CMDS."""
    z = Zdmd(tap, spec)
    for cmd in cmds:
        r = z.ctl(cmd)
        assert r.get("ok"), (cmd, r)
    z.stop()
    with open(spec["state_file"], "rb") as f:
        return f.read()


with tap.section("corrupt or unknown state"):
    d = tmpdir()
    sample = real_state(spec_for(os.path.join(d, "s1.json")),
                        ["set-weight new 30", "set-weight old/a 7", "drain old/a2"])
    with_extra = real_state(spec_for(os.path.join(d, "s2.json"), split=(70, 20), extra=10),
                            ["set-weight extra 20", "set-weight new 30",
                             "set-weight old/a 7", "drain old/a2"])
    tap.ok(b"old" in sample, "the state file names the pools")
    renamed = sample.replace(b'"old"', b'"gone"')
    cases = [
        ("garbage", b"this is { not json \x00\xff\n", True),
        ("truncated JSON", sample[:len(sample) // 2], True),
        ("JSON of another shape", b'{"pools": 5, "servers": "x"}\n', True),
        ("a JSON array", b"[1, 2, 3]\n", True),
        ("a pool renamed to an unknown one", renamed, True),
        ("a pool the config no longer has", with_extra, True),
        ("an empty file", b"", False),
    ]
    if renamed == sample:
        tap.diag("the state file has no '\"old\"' string; the renamed-pool case is moot")
        cases = [cs for cs in cases if cs[1] is not renamed]
    for desc, content, must_warn in cases:
        state = os.path.join(tmpdir(), "state.json")
        with open(state, "wb") as f:
            f.write(content)
        try:
            z = Zdmd(tap, spec_for(state))
        except RuntimeError as e:
            tap.ok(False, "%s: zdmd starts anyway" % desc, repr(e))
            continue
        tap.ok(z.alive(), "%s: zdmd starts anyway" % desc)
        if must_warn:
            tap.ok(warned(z, state), "%s: a warning naming the state file on stderr" % desc,
                   z.stderr())
        tap.ok(clean_config_values(z), "%s: the config's values, nothing half-applied" % desc,
               runtime(z))
        with z.client() as c:
            tap.eq(c.request("GET", "/").status, 200, "%s: serving" % desc)
        z.ctl("set-weight new 20")
        try:
            ok = pool_weights(z.status()) == {"old": 80, "new": 20} and read_json(state) is not None
        except (OSError, ValueError):
            ok = False
        tap.ok(ok, "%s: the next change writes a valid state file" % desc)
        z.stop()

    # The sample itself, restored into the config it came from.
    state = os.path.join(tmpdir(), "state.json")
    with open(state, "wb") as f:
        f.write(sample)
    z = Zdmd(tap, spec_for(state))
    st = runtime(z)
    tap.eq(st, ({"old": 70, "new": 30},
                [("old", "a", 7, "enabled"), ("old", "a2", 1, "draining"),
                 ("new", "b", 1, "enabled")]),
           "a copied state file is restored in full")
    tap.eq(warned(z, state), [], "without a warning")
    z.stop()

# -- reload merge rule ------------------------------------------------------------------

with tap.section("reload merge rule"):
    state = os.path.join(tmpdir(), "state.json")
    z = Zdmd(tap, spec_for(state, split=(90, 10)))
    z.ctl("set-weight new 50")
    tap.eq(z.ctl("reload", timeout=15), {"ok": True, "reloaded": True}, "reload: reloaded")
    tap.eq(pool_weights(z.status()), {"old": 50, "new": 50},
           "config 90/10, runtime 50/50, reload of the same file: still 50/50")
    z.rewrite(spec_for(state, split=(80, 20)))
    z.ctl("reload", timeout=15)
    tap.eq(pool_weights(z.status()), {"old": 80, "new": 20},
           "reload of a file saying 80/20: 80/20 (the file changed the split)")
    z.ctl("set-weight new 30")
    z.ctl("reload", timeout=15)
    tap.eq(pool_weights(z.status()), {"old": 70, "new": 30},
           "runtime 70/30, reload of the same 80/20 file: still 70/30")

    z.ctl("set-weight old/a 5")
    z.ctl("set-weight old/a2 4")
    z.ctl("drain old/a2")
    z.ctl("reload", timeout=15)
    st = z.status()
    tap.eq(((find_server(st, "old", "a") or {}).get("weight"),
            (find_server(st, "old", "a2") or {}).get("weight"),
            (find_server(st, "old", "a2") or {}).get("admin")), (5, 4, "draining"),
           "server weights 5 and 4 and a2 draining survive a reload of the same file")
    z.rewrite(spec_for(state, split=(80, 20), a_weight=3))
    z.ctl("reload", timeout=15)
    st = z.status()
    tap.eq(((find_server(st, "old", "a") or {}).get("weight"),
            (find_server(st, "old", "a2") or {}).get("weight"),
            pool_weights(st)), (3, 4, {"old": 70, "new": 30}),
           "a file giving a weight 3: a gets 3, a2 keeps 4, the split keeps 70/30")
    before = runtime(z)
    z.stop()
    z.start()
    tap.eq(runtime(z), before, "a restart with that file brings the same values back")

    # SIGHUP follows the same rule. The new file also adds a server, so that
    # we can see when the reload has happened.
    z.ctl("set-weight new 45")
    sp = spec_for(state, split=(80, 20), a_weight=3)
    sp["pools"]["new"] = [b, c3]
    z.rewrite(sp)
    z.signal(signal.SIGHUP)
    tap.ok(wait_for(lambda: find_server(z.status(), "new", "c3"), timeout=5),
           "SIGHUP: the reload happened (server c3 added)")
    tap.eq(pool_weights(z.status()), {"old": 55, "new": 45},
           "SIGHUP with an unchanged split: the runtime 55/45 stays")
    z.stop()

    # A reload that adds a pool: whatever wins, the split must stay whole.
    z = Zdmd(tap, spec_for(os.path.join(tmpdir(), "state.json"), split=(90, 10)))
    z.ctl("set-weight new 50")
    z.rewrite(spec_for(z.spec["state_file"], split=(80, 10), extra=10))
    r = z.ctl("reload", timeout=15)
    w = pool_weights(z.status())
    tap.ok(r.get("ok") and set(w) == {"old", "new", "extra"} and abs(sum(w.values()) - 100) < 1e-6,
           "reload adding a pool to a runtime-changed split: the three percentages sum to 100", w)
    z.stop()

    # The file wins where it changed, and the state file then says so too.
    z = Zdmd(tap, spec_for(os.path.join(tmpdir(), "state.json"), split=(90, 10)))
    z.ctl("set-weight new 50")
    z.rewrite(spec_for(z.spec["state_file"], split=(60, 40)))
    z.ctl("reload", timeout=15)
    tap.eq(pool_weights(z.status()), {"old": 60, "new": 40}, "reload with 60/40: 60/40")
    z.stop()
    z.start()
    tap.eq(pool_weights(z.status()), {"old": 60, "new": 40},
           "restarted after that: 60/40, not the 50/50 the reload overrode")
    z.stop()

with tap.section("config edited while zdmd was down"):
    state = os.path.join(tmpdir(), "state.json")
    z = Zdmd(tap, spec_for(state, split=(90, 10)))
    z.ctl("set-weight new 50")
    z.ctl("set-weight old/a2 6")
    z.ctl("drain old/a2")
    z.stop()
    z.spec = spec_for(state, split=(80, 20))
    z.start()
    st = z.status()
    tap.eq((pool_weights(st), (find_server(st, "old", "a2") or {}).get("weight"),
            (find_server(st, "old", "a2") or {}).get("admin")),
           ({"old": 80, "new": 20}, 6, "draining"),
           "restart with the split edited: the edited split wins, a2's runtime weight "
           "and admin state stay (the reload rule, applied at start)")
    z.stop()

with tap.section("state file that cannot be written"):
    state = os.path.join(tmpdir(), "no-such-dir", "state.json")
    try:
        z = Zdmd(tap, spec_for(state))
        r = z.ctl("set-weight new 20")
        w = pool_weights(z.status())
        tap.ok((r.get("ok") is True and w == {"old": 80, "new": 20}) or
               (r.get("ok") is False and r.get("error") and w == {"old": 90, "new": 10}),
               "set-weight when the state file cannot be written: either applied and ok, or "
               "refused with an error and not applied", (r, w))
        tap.ok(z.alive(), "zdmd keeps running")
        z.stop()
    except RuntimeError as e:
        tap.ok(True, "zdmd refuses to start with an unwritable state file (%s)" % e)

# -- the socket file -------------------------------------------------------------------

def spec_with_socket(path, mode=None):
    ctl = {"socket": path}
    if mode is not None:
        ctl["mode"] = mode
    return {"pools": {"old": [a], "new": [b]}, "split": {"old": 100, "new": 0},
            "control": ctl}


def try_start(spec):
    """Runs zdmd on a generated config expecting it to refuse: (exit status
    or None if it kept running, stderr)."""
    d = tmpdir()
    path = os.path.join(d, "zdm.yaml")
    with open(path, "w") as f:
        f.write(build_config(free_port(), spec, d))
    try:
        rc, out, err = run_zdmd(["-c", path], timeout=10)
    except subprocess.TimeoutExpired:
        return None, ""
    return rc, out + err


def _group_gid(name):
    try:
        return grp.getgrnam(name).gr_gid
    except KeyError:
        return None


with tap.section("socket file"):
    d = tmpdir()
    z = Zdmd(tap, spec_with_socket(os.path.join(d, "zdm.sock")))
    tap.ok(z.status().get("ok"), "the socket answers")
    m = os.stat(z.sock_path).st_mode
    tap.ok(stat.S_ISSOCK(m), "the path is a socket")
    tap.eq(oct(m & 0o777), oct(0o600), "created with mode 0600 by default")
    z.stop()

    for mode, want in (("0640", 0o640), ("0666", 0o666)):
        z = Zdmd(tap, spec_with_socket(os.path.join(tmpdir(), "zdm.sock"), mode))
        z.status()
        tap.eq(oct(os.stat(z.sock_path).st_mode & 0o777), oct(want),
               "mode: \"%s\" gives %s (whatever the umask)" % (mode, mode))
        z.stop()

    others = [g for g in ("daemon", "nogroup", "users", "adm") if _group_gid(g) not in (None, os.getegid())]
    if os.geteuid() != 0 or not others:
        tap.skip("group: sets the socket's group", "needs root and a second group")
    else:
        sp = spec_with_socket(os.path.join(tmpdir(), "zdm.sock"), "0660")
        sp["control"]["group"] = others[0]
        z = Zdmd(tap, sp)
        z.status()
        st = os.stat(z.sock_path)
        tap.eq((st.st_gid, oct(st.st_mode & 0o777)), (grp.getgrnam(others[0]).gr_gid, oct(0o660)),
               "group: %s with mode 0660: the socket belongs to that group" % others[0])
        z.stop()

    stale = os.path.join(tmpdir(), "zdm.sock")
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.bind(stale)
    s.close()
    try:
        z = Zdmd(tap, spec_with_socket(stale))
        tap.ok(z.status().get("ok"), "a stale socket file nobody listens on is replaced")
        z.stop()
    except RuntimeError as e:
        tap.ok(False, "a stale socket file nobody listens on is replaced", repr(e))

    regular = os.path.join(tmpdir(), "zdm.sock")
    with open(regular, "w") as f:
        f.write("precious\n")
    rc, err = try_start(spec_with_socket(regular))
    tap.ok(rc not in (None, 0), "the path is a regular file: zdmd refuses to start (exit %r)" % rc)
    tap.ok(regular in err, "with an error naming the path", err)
    tap.eq(open(regular).read(), "precious\n", "and the file is left alone")

    dirpath = os.path.join(tmpdir(), "zdm.sock")
    os.mkdir(dirpath)
    rc, err = try_start(spec_with_socket(dirpath))
    tap.ok(rc not in (None, 0) and os.path.isdir(dirpath),
           "the path is a directory: zdmd refuses to start (exit %r)" % rc, err)

    busy = os.path.join(tmpdir(), "zdm.sock")
    z1 = Zdmd(tap, spec_with_socket(busy))
    z1.status()
    rc, err = try_start(spec_with_socket(busy))
    tap.ok(rc not in (None, 0), "another zdmd listens there: zdmd refuses to start (exit %r)" % rc)
    tap.ok(busy in err, "with an error naming the path", err)
    tap.ok(os.path.exists(busy) and z1.status().get("ok"),
           "the running zdmd's socket still works")
    z1.stop()

tap.done()
