#!/usr/bin/env bash
# The zdm demo: installs what is missing (Debian 12, as root), builds zdm in
# build/, and starts zdmd with conf/zdm.yaml in front of three demo upstream
# servers — pool "old" (a on :9001, b on :9002) and pool "new" (c on :9101) —
# all in the background, so that curl works at once.
#
#   contrib/demo.sh          start (or restart) the demo
#   contrib/demo.sh stop     stop it
set -euo pipefail
cd "$(dirname "$0")/.."
top=$PWD
run=${ZDM_DEMO_DIR:-/tmp/zdm-demo}
listen=127.0.0.1:8080

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

if [ "${1:-}" = stop ]; then
	stop
	echo "demo stopped"
	exit 0
fi

# 1. What the build needs.
need=()
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

# 2. Build (out of tree, in build/).
if [ ! -x configure ]; then
	autoreconf -fi >/dev/null 2>&1
fi
mkdir -p build
if [ ! -f build/Makefile ]; then
	(cd build && ../configure -q)
fi
make -C build -j"$(nproc)" -s >/dev/null

# 3. Start the upstreams and zdmd.
stop
mkdir -p "$run" /run/zdm
start() { # NAME PIDFILE COMMAND...
	local name=$1 pidfile=$2; shift 2
	"$@" >"$run/$name.log" 2>&1 &
	echo $! >"$pidfile"
}
start old-a "$run/old-a.pid" python3 tests/upstream.py --port 9001 --name old-a
start old-b "$run/old-b.pid" python3 tests/upstream.py --port 9002 --name old-b
start new-c "$run/new-c.pid" python3 tests/upstream.py --port 9101 --name new-c
wait_port 9001 "upstream old-a"
wait_port 9002 "upstream old-b"
wait_port 9101 "upstream new-c"
start zdmd "$run/zdmd.pid" "$top/build/src/zdmd" -c "$top/conf/zdm.yaml"
wait_port 8080 zdmd

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
