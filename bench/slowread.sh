#!/usr/bin/env bash
# Slow-read attack on zdmd, HAProxy and NGINX, one after the other, in front
# of the same upstream, with a normal client measuring what is left of the
# service meanwhile.
#
# Usage: bench/slowread.sh          (about 4 minutes for the three proxies)
#
# For each proxy: the proxy is started alone (configured by bench/configs.sh
# as bench/run.sh configures it, with the connection limits of run.sh's
# extra mode), then `slowhttptest -X` opens CONNS connections that each ask
# for SIZE bytes PIPELINE times and read them a few bytes at a time, for
# LENGTH seconds; a normal client makes PROBES GETs of the same URL, evenly
# over the attack, each on a new connection with PROBE_TIMEOUT seconds for
# the whole response; the proxy's RSS and open descriptors are sampled every
# 0.5 s. The report (bench/results/slowread-latest.md) has one column per
# proxy.
#
# Environment:
#   PROXIES="zdmd haproxy nginx"   which proxies, in this order
#   ZDMD=path       zdmd binary (default: src/zdmd in the repository)
#   CONNS=5000      slowhttptest -c: attack connections
#   RATE=500        slowhttptest -r: connections opened per second
#   LENGTH=60       slowhttptest -l: seconds of attack
#   WIN_MIN=10 WIN_MAX=20   slowhttptest -w/-y: advertised receive window range, bytes
#   READ_EVERY=5    slowhttptest -n: seconds between two reads
#   READ_BYTES=32   slowhttptest -z: bytes taken per read
#   PIPELINE=3      slowhttptest -k: requests per connection
#   SIZE=128k       the response: a file of this size from the upstream (64k..1m)
#   PROBES=70       normal requests over the attack
#   PROBE_TIMEOUT=5 seconds for one normal request (also slowhttptest -p)
#   SETTLE=5        seconds after the attack before the "after" sample
#   CLIENT_WRITE=60s  zdmd timeouts.client_write (60s, as HAProxy's timeout client
#                   and NGINX's send_timeout here), set only when this zdmd
#                   accepts the key (zdmd -t); empty: never set
#   BASE_PORT=18180 upstreams on +1 (old) and +2 (new), zdmd +10, HAProxy
#                   +11, NGINX +12
#   CLIENT_CPU=0 PROXY_CPU=1   cores for slowhttptest, the client and the
#                   upstream / for the proxy
#   KEEP_TMP=1      keep the temporary directory

set -euo pipefail

# Run in a network namespace of our own (unless NETNS=0), where loopback gets
# the MTU of an Ethernet path (see "Slow-read attack" in bench/README.md).
# The kernel's TCP memory limits are those of the machine, readable only
# outside the namespace.
NETNS_NOTE=""
if [[ ${NETNS:-1} == 1 && -z ${_SLOWREAD_NETNS:-} ]]; then
	_SLOWREAD_TCP_MEM=$(cat /proc/sys/net/ipv4/tcp_mem 2>/dev/null | tr '\t' ' ' || true)
	export _SLOWREAD_TCP_MEM
	if command -v unshare >/dev/null 2>&1 && command -v ip >/dev/null 2>&1 && unshare --net true 2>/dev/null; then
		export _SLOWREAD_NETNS=1
		exec unshare --net bash "${BASH_SOURCE[0]}" "$@"
	fi
	NETNS_NOTE="no network namespace could be made (that needs root, unshare and ip): measured on the host's loopback"
fi

# Read in full before it runs, as bench/run.sh is.
{

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_DIR=$(cd "$BENCH_DIR/.." && pwd)
SR="$BENCH_DIR/slowread.py"
LIB="$BENCH_DIR/benchlib.py"

COMMAND="bench/slowread.sh"
for v in LO_MTU NETNS KEEP_TMP CLIENT_CPU PROXY_CPU BASE_PORT CLIENT_WRITE SETTLE PROBE_TIMEOUT PROBES SIZE PIPELINE READ_BYTES READ_EVERY WIN_MAX WIN_MIN LENGTH RATE CONNS ZDMD PROXIES; do
	[[ -n ${!v+x} && $v != KEEP_TMP ]] && COMMAND="$v=\"${!v}\" $COMMAND"
done

PROXIES=${PROXIES:-zdmd haproxy nginx}
ZDMD=${ZDMD:-$REPO_DIR/src/zdmd}
CONNS=${CONNS:-5000}
RATE=${RATE:-500}
LENGTH=${LENGTH:-60}
WIN_MIN=${WIN_MIN:-10}
WIN_MAX=${WIN_MAX:-20}
READ_EVERY=${READ_EVERY:-5}
READ_BYTES=${READ_BYTES:-32}
PIPELINE=${PIPELINE:-3}
SIZE=${SIZE:-128k}
PROBES=${PROBES:-70}
PROBE_TIMEOUT=${PROBE_TIMEOUT:-5}
SETTLE=${SETTLE:-5}
CLIENT_WRITE=${CLIENT_WRITE-60s}
BASE_PORT=${BASE_PORT:-18180}
LOG_CAP=$((16 * 1048576)) # bytes of each proxy's log kept and read
CLIENT_CPU=${CLIENT_CPU:-0}
PROXY_CPU=${PROXY_CPU:-1}
LO_MTU=${LO_MTU:-1500}
MODE=plain # for configs.sh: no TLS listeners
if [[ -n ${_SLOWREAD_NETNS:-} ]]; then
	ip link set lo mtu "$LO_MTU" up || { echo "slowread: error: cannot set up loopback in the namespace" >&2; exit 1; }
fi

HOST=127.0.0.1
PORT_OLD=$((BASE_PORT + 1))
PORT_NEW=$((BASE_PORT + 2))
declare -A PORT=([zdmd]=$((BASE_PORT + 10)) [haproxy]=$((BASE_PORT + 11)) [nginx]=$((BASE_PORT + 12)))
declare -A TLS_PORT=()
ADMIN_PORT=$((BASE_PORT + 14))
HAPROXY_SPLICE=${HAPROXY_SPLICE:-0}
# The limits bench/run.sh's extra mode gives the proxies for 10,000 and more
# client connections (see "Extra mode" in bench/README.md).
X_MAXCONN=20000     # zdmd limits.max_connections and HAProxy maxconn
X_NGINX_CONNS=20480 # NGINX worker_connections (client and upstream connections)

RESULTS_DIR="$BENCH_DIR/results"
RAW="$RESULTS_DIR/raw-slowread"
LATEST="$RESULTS_DIR/slowread-latest.md"
NOTES=()
declare -A PID=()

say() { printf '%s\n' "$*" >&2; }
die() {
	say "slowread: error: $*"
	exit 1
}
note() {
	say "slowread: note: $*"
	NOTES+=("$*")
}
need() { # need COMMAND DEBIAN_PACKAGE
	command -v "$1" >/dev/null 2>&1 || die "'$1' not found; install it with: apt-get install -y $2"
}

for p in $PROXIES; do
	case $p in
	zdmd | haproxy | nginx) ;;
	*) die "unknown proxy '$p' in PROXIES (choose from: zdmd haproxy nginx)" ;;
	esac
done
for v in CONNS RATE LENGTH WIN_MIN WIN_MAX READ_EVERY READ_BYTES PIPELINE PROBES PROBE_TIMEOUT SETTLE; do
	[[ ${!v} =~ ^[0-9]+$ && ${!v} -gt 0 ]] || die "$v must be a positive integer"
done
case $SIZE in
*[kK]) BYTES=$((${SIZE%[kK]} * 1024)) ;;
*[mM]) BYTES=$((${SIZE%[mM]} * 1048576)) ;;
*) BYTES=$SIZE ;;
esac
[[ $BYTES =~ ^[0-9]+$ && $BYTES -gt 0 ]] || die "SIZE must be a size such as 128k"
URL_PATH=/slowread-$SIZE

need slowhttptest slowhttptest
need nginx nginx # the upstream, even when NGINX is not measured
need curl curl
need taskset util-linux
need python3 python3
[[ " $PROXIES " == *" haproxy "* ]] && need haproxy haproxy

# Every process started from here on may hold CONNS connections and more.
ulimit -Sn "$(ulimit -Hn)" 2>/dev/null || true
NOFILE=$(ulimit -Sn)
[[ $NOFILE == unlimited ]] && NOFILE=1048576
((NOFILE >= CONNS + 200)) || die "the open-file limit ($NOFILE) is too low for CONNS=$CONNS; raise the hard limit (ulimit -Hn) or lower CONNS"
X_NOFILE=$((NOFILE < 65536 ? NOFILE : 65536))

if [[ " $PROXIES " == *" zdmd "* && ! -x $ZDMD ]]; then
	note "zdmd skipped: no executable at $ZDMD (build it, or set ZDMD=path)"
	PROXIES=$(echo " $PROXIES " | sed 's/ zdmd / /')
	PROXIES=$(echo $PROXIES)
fi
[[ -n $PROXIES ]] || die "no proxy left to measure"

WORK=$(mktemp -d "${TMPDIR:-/tmp}/zdm-slowread.XXXXXX")
TLS_DIR=$WORK/tls

running() {
	local stat
	stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
	stat=${stat##*) }
	[[ ${stat:0:1} != Z ]]
}

stop() { # stop NAME: SIGTERM, 10 s, then SIGKILL (the process and its children)
	local name=$1 pid=${PID[$1]:-} all deadline
	[[ -n $pid ]] || return 0
	all="$pid $( (pgrep -P "$pid" 2>/dev/null || true) | tr "\n" " ")"
	# shellcheck disable=SC2086
	kill -TERM $all 2>/dev/null || true
	deadline=$((SECONDS + 10))
	while running "$pid" && ((SECONDS < deadline)); do sleep 0.1; done
	# shellcheck disable=SC2086
	kill -KILL $all 2>/dev/null || true
	wait "$pid" 2>/dev/null || true
	unset "PID[$name]"
}

cleanup() {
	local rc=$? name
	trap - EXIT INT TERM
	for name in "${!PID[@]}"; do stop "$name"; done
	if [[ ${KEEP_TMP:-0} == 1 ]]; then
		say "slowread: temporary files kept in $WORK"
	else
		rm -rf "$WORK"
	fi
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

start() { # start NAME CPU COMMAND...
	local name=$1 cpu=$2
	shift 2
	taskset -c "$cpu" "$@" >"$RAW/$name.stdout" 2>"$RAW/$name.stderr" &
	PID[$name]=$!
}

port_busy() { (exec 3<>"/dev/tcp/$HOST/$1") 2>/dev/null; }

wait_ready() { # wait_ready NAME PORT: until GET URL_PATH answers 200 (10 s at most)
	local name=$1 port=$2 deadline=$((SECONDS + 10)) code=""
	while ((SECONDS < deadline)); do
		running "${PID[$name]}" || { say "slowread: $name exited: $(tail -n 5 "$RAW/$name.stderr")"; return 1; }
		code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 1 "http://$HOST:$port$URL_PATH" || true)
		[[ $code == 200 ]] && return 0
		sleep 0.1
	done
	say "slowread: $name did not answer 200 on $HOST:$port$URL_PATH within 10 s (last: ${code:-none})"
	return 1
}

mkdir -p "$RAW"
rm -f "$RAW"/*
for port in $PORT_OLD $PORT_NEW ${PORT[zdmd]} ${PORT[haproxy]} ${PORT[nginx]}; do
	port_busy "$port" && die "port $port on $HOST is already in use (choose other ports with BASE_PORT=...)"
done

# shellcheck source=bench/configs.sh
source "$BENCH_DIR/configs.sh"

mkdir -p "$WORK/upstream/www" "$WORK/upstream/tmp" "$WORK/zdmd" "$WORK/haproxy" "$WORK/nginx/tmp" "$WORK/tls"
head -c "$BYTES" /dev/zero | tr '\0' 's' >"$WORK/upstream/www/${URL_PATH#/}"
upstream_config >"$WORK/upstream/nginx.conf"
chmod -R a+rX "$WORK"

# A private copy of zdmd, so that a rebuild during the run changes nothing.
ZDMD_NOTE=""
if [[ " $PROXIES " == *" zdmd "* ]]; then
	ZDMD_ID="$ZDMD as of $(date -u -r "$ZDMD" '+%Y-%m-%d %H:%M:%S UTC'), sha256 $(sha256sum "$ZDMD" | cut -c1-12)"
	cp "$ZDMD" "$WORK/zdmd/zdmd"
	ZDMD_SRC=$ZDMD
	ZDMD=$WORK/zdmd/zdmd
	zdmd_config zdmd "$WORK/zdmd" "${PORT[zdmd]}" "" 1 "$X_MAXCONN" >"$WORK/zdmd/zdm.yaml"
	# timeouts.client_write only where this zdmd knows the key.
	if [[ -n $CLIENT_WRITE ]]; then
		cp "$WORK/zdmd/zdm.yaml" "$WORK/zdmd/probe.yaml"
		echo "timeouts: {client_write: $CLIENT_WRITE}" >>"$WORK/zdmd/probe.yaml"
		if "$ZDMD" -t -c "$WORK/zdmd/probe.yaml" >"$RAW/zdmd.probe-configtest" 2>&1; then
			cp "$WORK/zdmd/probe.yaml" "$WORK/zdmd/zdm.yaml"
			ZDMD_NOTE="timeouts: {client_write: $CLIENT_WRITE} set (this zdmd accepts the key)."
		else
			ZDMD_NOTE="run without timeouts.client_write: this zdmd does not accept it ($(head -n 1 "$RAW/zdmd.probe-configtest" | sed "s|$WORK/zdmd/||"))."
		fi
		rm -f "$WORK/zdmd/probe.yaml"
	fi
	if ! "$ZDMD" -t -c "$WORK/zdmd/zdm.yaml" >"$RAW/zdmd.configtest" 2>&1; then
		note "zdmd skipped: '$ZDMD_SRC -t' rejected the config: $(head -n 2 "$RAW/zdmd.configtest" | tr '\n' ' ')"
		PROXIES=$(echo " $PROXIES " | sed 's/ zdmd / /')
		PROXIES=$(echo $PROXIES)
	fi
fi
haproxy_config "${PORT[haproxy]}" "" 1 "$X_MAXCONN" >"$WORK/haproxy/haproxy.cfg"
nginx_config "$WORK/nginx" "$RAW/nginx.error.log" "${PORT[nginx]}" "" 1 "$X_NGINX_CONNS" "$X_NOFILE" >"$WORK/nginx/nginx.conf"
for f in upstream/nginx.conf zdmd/zdm.yaml haproxy/haproxy.cfg nginx/nginx.conf; do
	[[ -f $WORK/$f ]] && cp "$WORK/$f" "$RAW/$(echo "$f" | tr / -)"
done
chmod -R a+rX "$WORK"

say "slowread: upstream nginx on $HOST:$PORT_OLD and $HOST:$PORT_NEW, CPU $CLIENT_CPU"
start upstream "$CLIENT_CPU" nginx -e "$RAW/upstream.error.log" -p "$WORK/upstream" -c "$WORK/upstream/nginx.conf"
wait_ready upstream $PORT_OLD || die "the upstream nginx did not start"
got=$(python3 "$LIB" fetch $HOST $PORT_OLD "$URL_PATH")
[[ $got == "200 $BYTES" ]] || die "the upstream answered '$got' for $URL_PATH, expected '200 $BYTES'"

META=$RAW/meta.txt
declare -A PNOTE=()
results=()
t_start=$SECONDS
for p in $PROXIES; do
	say "slowread: ---- $p on $HOST:${PORT[$p]}, CPU $PROXY_CPU"
	case $p in
	zdmd) start zdmd "$PROXY_CPU" "$ZDMD" -c "$WORK/zdmd/zdm.yaml" ;;
	haproxy) start haproxy "$PROXY_CPU" haproxy -db -f "$WORK/haproxy/haproxy.cfg" ;;
	nginx) start nginx "$PROXY_CPU" nginx -e "$RAW/nginx.error.log" -p "$WORK/nginx" -c "$WORK/nginx/nginx.conf" ;;
	esac
	if ! wait_ready "$p" "${PORT[$p]}"; then
		note "$p skipped: it did not come up (see bench/results/raw-slowread/$p.stderr)"
		stop "$p"
		continue
	fi
	got=$(python3 "$LIB" fetch $HOST "${PORT[$p]}" "$URL_PATH" 2>&1) || true
	if [[ $got != "200 $BYTES" ]]; then
		note "$p skipped: GET $URL_PATH answered '$got', expected '200 $BYTES'"
		stop "$p"
		continue
	fi
	sleep 1
	attack=(taskset -c "$CLIENT_CPU" slowhttptest -X -c "$CONNS" -r "$RATE" -l "$LENGTH" -w "$WIN_MIN" -y "$WIN_MAX"
		-n "$READ_EVERY" -z "$READ_BYTES" -k "$PIPELINE" -p "$PROBE_TIMEOUT"
		-u "http://$HOST:${PORT[$p]}$URL_PATH" -g -o "$RAW/slowhttptest-$p")
	taskset -c "$CLIENT_CPU" python3 "$SR" measure --pid "${PID[$p]}" --port "${PORT[$p]}" --path "$URL_PATH" \
		--bytes "$BYTES" --probes "$PROBES" --over "$LENGTH" --timeout "$PROBE_TIMEOUT" --settle "$SETTLE" \
		--attack-log "$RAW/slowhttptest-$p.log" --out "$RAW/$p.json" -- "${attack[@]}" ||
		die "the measurement of $p failed"
	python3 - "$RAW/$p.json" "$PROBES" <<'EOF' >&2
import json, sys
r = json.load(open(sys.argv[1]))
ok = sum(1 for p in r["probes"] if p and p["kind"] == "ok")
print("slowread: %d of %s normal requests OK; peak RSS %d KiB, peak descriptors %d; alive: %s"
      % (ok, sys.argv[2], max(r["hwm_kb"], r["peak_rss_kb"]), r["peak_fds"], r["alive"]))
EOF
	if ! running "${PID[$p]}"; then
		rc=0
		wait "${PID[$p]}" 2>/dev/null || rc=$?
		PNOTE[$p]="exited during the attack (status $rc); last lines of its stderr: $(tail -n 3 "$RAW/$p.stderr" | tr '\n' ' ')"
	fi
	stop "$p"
	# What the proxy logged, by level or severity, for the report.
	case $p in
	zdmd) logf=$RAW/zdmd.stderr ;;
	haproxy) logf=$RAW/haproxy.stderr ;;
	nginx) logf=$RAW/nginx.error.log ;;
	esac
	# A proxy that logs without bound (as on a failing accept) must not fill
	# the disk: the log is read and kept up to LOG_CAP bytes, its lines
	# counted in full.
	total_lines=$(wc -l <"$logf" 2>/dev/null || echo 0)
	if (($(stat -c %s "$logf" 2>/dev/null || echo 0) > LOG_CAP)); then
		head -c "$LOG_CAP" "$logf" | sed '$d' >"$logf.cut" # whole lines only
		echo "[slowread: cut here; $total_lines lines in all]" >>"$logf.cut"
		mv "$logf.cut" "$logf"
		PNOTE[$p]="${PNOTE[$p]:+${PNOTE[$p]} }It logged $(echo "$total_lines" | sed ':a;s/\B[0-9]\{3\}\>/,&/;ta') lines in $LENGTH s (kept: the first $((LOG_CAP / 1048576)) MiB); the counts that follow are of those."
	fi
	counts=$(grep -oE '\[(error|warn|info|alert|crit|emerg|notice|WARNING|ALERT|NOTICE)\]' "$logf" 2>/dev/null | sort | uniq -c | awk '{printf "%s%s %s", sep, $2, $1; sep=", "}' || true)
	PNOTE[$p]="${PNOTE[$p]:+${PNOTE[$p]} }Log lines: ${counts:-none}."
	top=$(grep -v '^\[slowread:' "$logf" 2>/dev/null | sed -E 's/^[0-9T:.-]+Z //; s/^[0-9\/]+ [0-9:]+ //; s/[0-9]+/N/g' | sort | uniq -c | sort -rn | head -n 3 |
		awk '{c=$1; $1=""; sub(/^ /, ""); printf "%s%d× `%s`", sep, c, substr($0, 1, 140); sep="; "}' || true)
	[[ -n $top ]] && PNOTE[$p]+=" Most frequent: $top."
	results+=("$RAW/$p.json")
	# The next proxy starts once the upstream holds no connection of this one.
	for _ in $(seq 100); do
		ss -Htn state established "( sport = :$PORT_OLD or sport = :$PORT_NEW )" 2>/dev/null | grep -q . || break
		sleep 0.1
	done
done
((${#results[@]})) || die "no proxy was measured"

{
	echo "date=$(date -u '+%Y-%m-%d %H:%M UTC')"
	echo "command=$COMMAND"
	echo "attack=slowhttptest -X -c $CONNS -r $RATE -l $LENGTH -w $WIN_MIN -y $WIN_MAX -n $READ_EVERY -z $READ_BYTES -k $PIPELINE -p $PROBE_TIMEOUT"
	echo "conns=$CONNS"
	echo "rate=$RATE"
	echo "length=$LENGTH"
	echo "win_min=$WIN_MIN"
	echo "win_max=$WIN_MAX"
	echo "read_every=$READ_EVERY"
	echo "read_bytes=$READ_BYTES"
	echo "pipeline=$PIPELINE"
	echo "path=$URL_PATH"
	echo "bytes=$BYTES"
	echo "probes=$PROBES"
	echo "probe_timeout=$PROBE_TIMEOUT"
	echo "nofile=$NOFILE"
	echo "cpu=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')"
	echo "cores=$(getconf _NPROCESSORS_ONLN)"
	echo "kernel=$(uname -r)"
	echo "tcp_mem=${_SLOWREAD_TCP_MEM:-$(cat /proc/sys/net/ipv4/tcp_mem 2>/dev/null | tr '\t' ' ' || true)}"
	echo "tcp_wmem=$(cat /proc/sys/net/ipv4/tcp_wmem 2>/dev/null | tr '\t' ' ')"
	echo "page_size=$(getconf PAGESIZE)"
	echo "lo_mtu=$(ip -o link show lo 2>/dev/null | sed -n 's/.* mtu \([0-9]*\).*/\1/p')"
	echo "netns=${_SLOWREAD_NETNS:-0}"
	[[ -n $NETNS_NOTE ]] && echo "note=$NETNS_NOTE"
	echo "client_cpu=$CLIENT_CPU"
	echo "proxy_cpu=$PROXY_CPU"
	[[ -n ${PNOTE[zdmd]:-} || -n $ZDMD_NOTE ]] && echo "proxy_note=zdmd|$ZDMD_NOTE ${PNOTE[zdmd]:-}"
	[[ -n ${PNOTE[haproxy]:-} ]] && echo "proxy_note=haproxy|${PNOTE[haproxy]}"
	[[ -n ${PNOTE[nginx]:-} ]] && echo "proxy_note=nginx|${PNOTE[nginx]}"
	echo "note=Configurations: bench/configs.sh, as bench/run.sh uses it, with the connection limits of its extra mode: zdmd \`limits: {max_connections: $X_MAXCONN}\`, HAProxy \`maxconn $X_MAXCONN\` (\`timeout client 60s\`, \`timeout server 30s\`), NGINX \`worker_connections $X_NGINX_CONNS\` (its \`send_timeout\` at the default 60 s, proxy buffering on). The upstream serves $URL_PATH from a file (sendfile), keep-alive on everywhere. Each proxy runs alone, one worker."
	for n in "${NOTES[@]}"; do echo "note=$n"; done
	[[ " $PROXIES " == *" zdmd "* ]] && echo "version=$("$ZDMD" -V 2>&1 | head -n 1) ($ZDMD_ID)"
	command -v haproxy >/dev/null && echo "version=$(haproxy -v 2>&1 | head -n 1)"
	echo "version=$(nginx -v 2>&1 | head -n 1)"
	echo "version=$(slowhttptest -h 2>&1 | grep -m1 -o 'version [0-9.]*' | sed 's/^/slowhttptest /')"
	echo "version=$(python3 --version 2>&1) (the normal client)"
	echo "duration=$((SECONDS - t_start))"
} >"$META"

python3 "$SR" report "$META" "${results[@]}" >"$LATEST"
cat "$LATEST"
say "slowread: report written to $LATEST (raw output in $RAW/); $((SECONDS - t_start)) s"
exit 0
}
