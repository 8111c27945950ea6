#!/usr/bin/env bash
# The zdm demo: installs what is missing (Debian 12, as root), builds zdm in
# build/, and starts zdmd with conf/zdm.yaml in front of three demo upstream
# servers — pool "old" (a on :9001, b on :9002) and pool "new" (c on :9101) —
# all in the background, so that curl works at once.
#
# "rollout" starts the same demo with a config of its own ($run/zdm.yaml:
# conf/zdm.yaml with the split at old 100 / new 0 and a rollout section with
# short holds), then, under a bounded client load, lets zdmd run two rollouts
# of pool new: a healthy one to "promoted", then one whose upstream starts
# answering 500, to "rolled_back". It takes about a minute; the demo stays up.
#
#   contrib/demo.sh          start (or restart) the demo
#   contrib/demo.sh rollout  start (or restart) it and run the two rollouts
#   contrib/demo.sh stop     stop it
set -euo pipefail
cd "$(dirname "$0")/.."
top=$PWD
run=${ZDM_DEMO_DIR:-/tmp/zdm-demo}
listen=127.0.0.1:8080
sock=/run/zdm/zdm.sock

usage() {
	echo "usage: contrib/demo.sh [rollout|stop]" >&2
	exit 2
}

stop() {
	if [ -d "$run" ]; then
		for f in "$run"/*.pid; do
			[ -e "$f" ] || continue
			kill "$(cat "$f")" 2>/dev/null || true
			rm -f "$f"
		done
	fi
}

wait_port() { # PORT NAME
	for _ in $(seq 1 100); do
		if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then return 0; fi
		sleep 0.1
	done
	echo "demo: $2 did not start listening on port $1; see $run/" >&2
	exit 1
}

# 1. What the build needs.
install_needs() {
	local need=() pc tool
	for pc in libevent_core libevent_openssl libevent_pthreads libssl yaml-0.1; do
		pkg-config --exists "$pc" 2>/dev/null || need+=(libevent-dev libssl-dev libyaml-dev)
	done
	[ -f /usr/share/llhttp/llhttp.c ] || need+=(node-llhttp)
	for tool in autoreconf:autoconf automake:automake libtoolize:libtool pkg-config:pkg-config \
		make:make gcc:gcc python3:python3 curl:curl; do
		command -v "${tool%%:*}" >/dev/null || need+=("${tool##*:}")
	done
	if [ ${#need[@]} -gt 0 ]; then
		echo "demo: installing ${need[*]}"
		export DEBIAN_FRONTEND=noninteractive
		apt-get update -qq
		apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
	fi
}

# 2. Build (out of tree, in build/).
build() {
	if [ ! -x configure ]; then
		autoreconf -fi >/dev/null 2>&1
	fi
	mkdir -p build
	if [ ! -f build/Makefile ]; then
		(cd build && ../configure -q)
	fi
	make -C build -j"$(nproc)" -s >/dev/null
}

# 3. Start the upstreams and zdmd.
start() { # NAME PIDFILE COMMAND...
	local name=$1 pidfile=$2; shift 2
	"$@" >"$run/$name.log" 2>&1 &
	echo $! >"$pidfile"
}

start_demo() { # CONFIG
	stop
	mkdir -p "$run" /run/zdm
	start old-a "$run/old-a.pid" python3 tests/upstream.py --port 9001 --name old-a
	start old-b "$run/old-b.pid" python3 tests/upstream.py --port 9002 --name old-b
	start new-c "$run/new-c.pid" python3 tests/upstream.py --port 9101 --name new-c
	wait_port 9001 "upstream old-a"
	wait_port 9002 "upstream old-b"
	wait_port 9101 "upstream new-c"
	start zdmd "$run/zdmd.pid" "$top/build/src/zdmd" -c "$1"
	wait_port 8080 zdmd
}

if [ $# -gt 1 ]; then usage; fi
case "${1:-}" in
stop)
	stop
	echo "demo stopped"
	exit 0
	;;
"" | rollout) ;;
*) usage ;;
esac

install_needs
build

if [ -z "${1:-}" ]; then
	start_demo "$top/conf/zdm.yaml"
	cat <<MSG
zdmd is running on http://$listen in front of pool old (a :9001, b :9002: 90%)
and pool new (c :9101: 10%). Logs: $run/zdmd.log. Try:

  curl http://$listen/                       # answered by old-a, old-b or new-c
  curl -H 'canary: true' http://$listen/     # pinned to the new pool
  for i in \$(seq 100); do curl -s http://$listen/; done | sort | uniq -c
                                             # 90 from old, 10 from new
  curl -i http://$listen/size/100            # headers as clients see them
  $top/build/src/zdmctl status               # pools, servers, health, circuits, last minute
  $top/build/src/zdmctl set-weight new 50    # the loop above then gives new-c 50
  curl http://127.0.0.1:9090/metrics         # Prometheus metrics (admin listener)

Stop it with: contrib/demo.sh stop
MSG
	exit 0
fi

# ---- contrib/demo.sh rollout ------------------------------------------------

zdmctl() { "$top/build/src/zdmctl" -s "$sock" "$@"; }

say() { printf '\n== [%2ds] %s\n' "$SECONDS" "$*"; }

fail() {
	echo "demo: $*; see $run/zdmd.log" >&2
	exit 1
}

# The rollout's "STATE STEP PERCENT", from zdmctl --json rollout status.
rollout_now() {
	zdmctl --json rollout status | python3 -c '
import json, sys
r = json.load(sys.stdin)["rollout"]
print(r["state"], r["step"], r["percent"])'
}

# Print the rollout status at every change of state or step, and every 5 s
# otherwise, until its state is STATE; fail after TIMEOUT seconds or if it
# ends in another state.
watch_until() { # STATE TIMEOUT
	local want=$1 deadline=$((SECONDS + $2)) now last="" shown=0 state step percent
	while :; do
		now=$(rollout_now)
		read -r state step percent <<<"$now"
		if [ "$now" != "$last" ] || [ $((SECONDS - shown)) -ge 5 ]; then
			say "rollout status: $state, step $step, new at $percent% (until $want)"
			zdmctl rollout status
			last=$now shown=$SECONDS
		fi
		case $state in
		"$want") return 0 ;;
		running) ;;
		*) fail "the rollout is $state, not $want" ;;
		esac
		[ $SECONDS -lt "$deadline" ] || fail "the rollout is still $state after $2 s, not $want"
		sleep 1
	done
}

# Bounded client load: about 100 requests a second to zdmd for at most
# SECONDS seconds, over keep-alive connections; at the end (or on SIGTERM) a
# count of the answers by upstream and status goes to $run/load.log.
start_load() { # SECONDS
	cat >"$run/load.py" <<'PY'
import collections, http.client, signal, sys, time

host, port = sys.argv[1].rsplit(":", 1)
end = time.monotonic() + float(sys.argv[2])
seen = collections.Counter()
signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
try:
    conn = None
    while time.monotonic() < end:
        try:
            conn = conn or http.client.HTTPConnection(host, int(port), timeout=2)
            conn.request("GET", "/")
            resp = conn.getresponse()
            resp.read()
            seen[f"{resp.getheader('X-Upstream', 'zdmd')} {resp.status}"] += 1
        except (OSError, http.client.HTTPException) as e:
            seen[f"error {type(e).__name__}"] += 1
            conn = None
            time.sleep(0.1)
        time.sleep(0.01)
finally:
    print("load:", sum(seen.values()), "requests:",
          ", ".join(f"{k} x{n}" for k, n in sorted(seen.items())), flush=True)
PY
	start load "$run/load.pid" python3 "$run/load.py" "$listen" "$1"
}

stop_load() {
	local pid
	if [ -e "$run/load.pid" ]; then
		pid=$(cat "$run/load.pid")
		kill "$pid" 2>/dev/null || true
		wait "$pid" 2>/dev/null || true
		rm -f "$run/load.pid"
	fi
}

# The demo's config: conf/zdm.yaml with the split at old 100 / new 0, then a
# state file and a rollout section with holds short enough for a demo.
conf=$run/zdm.yaml
mkdir -p "$run"
grep -q '^split:' conf/zdm.yaml || fail "conf/zdm.yaml has no top-level split"
{
	echo "# Written by contrib/demo.sh rollout: conf/zdm.yaml, new at 0%, and a rollout."
	awk '/^split:/ { print "split:\n  old: 100\n  new: 0"; skip = 1; next }
	     skip && /^[ \t]/ { next }
	     { skip = 0; print }' conf/zdm.yaml
	cat <<YAML

# contrib/demo.sh rollout: runtime changes (and the rollout) survive a
# restart of zdmd with this config; the demo starts each run afresh.
state_file: "$run/state.json"

rollout:
  pool: new
  steps: [10, 25, 50, 100]
  hold: 5s
  interval: 1s
  window: 10s
  min_requests: 20
  failures: 2
YAML
} >"$conf"
"$top/build/src/zdmd" -t -c "$conf" >/dev/null || fail "$conf is not valid"
stop # before removing the state file, which a running zdmd would write again
rm -f "$run/state.json"
start_demo "$conf"
trap stop_load EXIT
SECONDS=0

say "demo started with $conf: pool new at 0%; client load for at most 150 s"
start_load 150
sleep 2

say "first rollout: pool new is healthy (zdmctl rollout start)"
zdmctl rollout start >/dev/null # its status is the first one watch_until prints
watch_until promoted 60

say "second rollout: everything back to old (zdmctl rollback), then zdmctl rollout start"
zdmctl rollback
zdmctl rollout start
sleep 6
say "new-c now answers every request with 500 (curl 'http://127.0.0.1:9101/__mode?all=500')"
curl -fsS 'http://127.0.0.1:9101/__mode?all=500' >/dev/null
watch_until rolled_back 30

say "rolled back by zdmd itself:"
zdmctl --json rollout status | python3 -c '
import json, sys
r = json.load(sys.stdin)["rollout"]
print("  reason:", r["reason"])
print("  pool new at %s%%" % r["percent"])'
zdmctl status
echo "20 requests now:"
for _ in $(seq 20); do curl -s "http://$listen/"; done | sort | uniq -c

say "new-c back to normal (curl 'http://127.0.0.1:9101/__mode?reset=1'); load stopped"
curl -fsS 'http://127.0.0.1:9101/__mode?reset=1' >/dev/null
stop_load
cat "$run/load.log"

cat <<MSG

Both rollouts done in ${SECONDS} s. zdmd is still running on http://$listen
with $conf: pool new at 0%, new-c answering normally again (its circuit,
opened by the 500s, lets requests through again within 30 s).
Logs: $run/zdmd.log (the rollout's transitions). Try:

  while :; do curl -s http://$listen/ >/dev/null; done &   # some load (kill %1 after)
  $top/build/src/zdmctl rollout start       # a third rollout ...
  $top/build/src/zdmctl rollout status      # ... steps, hold left, last analysis
  $top/build/src/zdmctl rollout pause       # stay at this step; resume, next, abort
  curl http://127.0.0.1:9090/                # the dashboard, rollout included

Stop it with: contrib/demo.sh stop
MSG
