#!/usr/bin/env bash
# Benchmark zdmd, HAProxy and NGINX as HTTP/1.1 reverse proxies in one run.
#
# Two upstream servers (pool "old" and pool "new") are served by one nginx
# instance of our own; every proxy under test runs one worker, keeps
# connections to the upstreams alive and splits 90/10 between them. For each
# response size (tiny, 4 KiB, 1 MiB) the proxies are measured in turn, round
# after round, with wrk; the proxy's CPU time per request is read from /proc.
#
# Environment:
#   DURATION=10     seconds per measured wrk run
#   ROUNDS=3        measured runs per proxy and size (the median is reported)
#   WARMUP=1        seconds of wrk before every measured run
#   QUIET_WAIT=10   before every run, wait up to this many seconds for other
#                   work on the machine to settle (0: do not wait)
#   QUICK=1         smoke test: DURATION=2 ROUNDS=1 unless those are set
#   PROXIES="zdmd haproxy nginx"   which proxies to measure, in this order
#   SIZES="tiny 4k 1m"
#   CONNS=50        wrk connections for tiny and 4k;  CONNS_1M=10 for 1m
#   ZDMD=path       zdmd binary (default: src/zdmd in the repository)
#   BASE_PORT=18080 ports used: BASE+1, BASE+2 upstreams; BASE+10.. proxies
#   CLIENT_CPU=0 PROXY_CPU=1   cores for wrk+upstream and for the proxy
#   HAPROXY_SPLICE=1  add "option splice-response" to HAProxy (off by default,
#                   as in HAProxy's own defaults)
#   KEEP_TMP=1      keep the temporary directory with all generated configs
#
# Output: markdown tables on stdout, also written to bench/results/latest.md;
# raw wrk output and every server's stderr in bench/results/raw/.

set -euo pipefail

# The whole script is one compound command, read in full before it runs, so
# editing this file during a run cannot change the running benchmark.
{

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_DIR=$(cd "$BENCH_DIR/.." && pwd)
LIB="$BENCH_DIR/benchlib.py"

# The command line that reproduces this run, for the report.
COMMAND="bench/run.sh"
for v in ZDMD QUIET_WAIT HAPROXY_SPLICE SIZES PROXIES CONNS_1M CONNS WARMUP ROUNDS DURATION QUICK; do
	[[ -n ${!v+x} ]] && COMMAND="$v=\"${!v}\" $COMMAND"
done

if [[ ${QUICK:-0} == 1 ]]; then
	DURATION=${DURATION:-2}
	ROUNDS=${ROUNDS:-1}
fi
DURATION=${DURATION:-10}
ROUNDS=${ROUNDS:-3}
WARMUP=${WARMUP:-1}
QUIET_WAIT=${QUIET_WAIT:-10}
PROXIES=${PROXIES:-zdmd haproxy nginx}
SIZES=${SIZES:-tiny 4k 1m}
CONNS=${CONNS:-50}
CONNS_1M=${CONNS_1M:-10}
ZDMD=${ZDMD:-$REPO_DIR/src/zdmd}
BASE_PORT=${BASE_PORT:-18080}
CLIENT_CPU=${CLIENT_CPU:-0}
PROXY_CPU=${PROXY_CPU:-1}

HOST=127.0.0.1
PORT_OLD=$((BASE_PORT + 1))
PORT_NEW=$((BASE_PORT + 2))
declare -A PORT=([zdmd]=$((BASE_PORT + 10)) [haproxy]=$((BASE_PORT + 11)) [nginx]=$((BASE_PORT + 12)))
declare -A PATH_OF=([tiny]=/tiny [4k]=/4k [1m]=/1m)
declare -A BYTES_OF=([tiny]=13 [4k]=4096 [1m]=1048576)

RESULTS_DIR="$BENCH_DIR/results"
RAW="$RESULTS_DIR/raw"

declare -A PID=()     # name -> pid of every server we started
NOTES=()

say() { printf '%s\n' "$*" >&2; }
die() {
	say "bench: error: $*"
	exit 1
}
note() {
	say "bench: note: $*"
	NOTES+=("$*")
}

# ------------------------------------------------------------ prerequisites

drop_proxy() { # remove one name from PROXIES
	local p kept=""
	for p in $PROXIES; do [[ $p == "$1" ]] || kept+=" $p"; done
	PROXIES=${kept# }
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
for s in $SIZES; do
	[[ -n ${PATH_OF[$s]:-} ]] || die "unknown size '$s' in SIZES (choose from: tiny 4k 1m)"
done
[[ $DURATION =~ ^[0-9]+$ && $DURATION -gt 0 ]] || die "DURATION must be a positive integer (seconds)"
[[ $ROUNDS =~ ^[0-9]+$ && $ROUNDS -gt 0 ]] || die "ROUNDS must be a positive integer"
[[ $WARMUP =~ ^[0-9]+$ ]] || die "WARMUP must be an integer (seconds)"
[[ $QUIET_WAIT =~ ^[0-9]+$ ]] || die "QUIET_WAIT must be an integer (seconds)"

need wrk wrk
need nginx nginx # the upstream servers, even when NGINX is not measured
need curl curl
need taskset util-linux
need pgrep procps
need getconf libc-bin
need python3 python3
[[ " $PROXIES " == *" haproxy "* ]] && need haproxy haproxy

CORES=$(getconf _NPROCESSORS_ONLN)
if ((CORES < 2)); then
	note "only $CORES core online: wrk, upstream and proxy all share CPU 0"
	CLIENT_CPU=0
	PROXY_CPU=0
fi
CLK_TCK=$(getconf CLK_TCK)

if [[ " $PROXIES " == *" zdmd "* ]]; then
	if [[ ! -x $ZDMD ]]; then
		note "zdmd skipped: no executable at $ZDMD (build it with: autoreconf -fi && ./configure && make, or set ZDMD=path)"
		drop_proxy zdmd
	fi
fi
PROXIES=$(echo $PROXIES)
[[ -n $PROXIES ]] || die "no proxy left to measure"

# ------------------------------------------------------------ process control

WORK=$(mktemp -d "${TMPDIR:-/tmp}/zdm-bench.XXXXXX")

# All pids of a server: the process and its direct children (nginx workers).
pids_of() {
	local pid=$1
	echo "$pid"
	pgrep -P "$pid" 2>/dev/null || true
}

cleanup() {
	local rc=$? name pid
	trap - EXIT INT TERM
	local all=()
	for name in "${!PID[@]}"; do
		pid=${PID[$name]}
		mapfile -t -O "${#all[@]}" all < <(pids_of "$pid")
	done
	if ((${#all[@]})); then
		kill -TERM "${all[@]}" 2>/dev/null || true
		for _ in $(seq 30); do
			local alive=0
			for pid in "${all[@]}"; do kill -0 "$pid" 2>/dev/null && alive=1; done
			((alive)) || break
			sleep 0.1
		done
		kill -KILL "${all[@]}" 2>/dev/null || true
		wait 2>/dev/null || true
	fi
	if [[ ${KEEP_TMP:-0} == 1 ]]; then
		say "bench: temporary files kept in $WORK"
	else
		rm -rf "$WORK"
	fi
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

port_busy() { # true when something already accepts on 127.0.0.1:PORT
	(exec 3<>"/dev/tcp/$HOST/$1") 2>/dev/null
}

start() { # start NAME CPU COMMAND...
	local name=$1 cpu=$2
	shift 2
	taskset -c "$cpu" "$@" >"$RAW/$name.stdout" 2>"$RAW/$name.stderr" &
	PID[$name]=$!
}

# Describe why a server is gone: exit status or signal, and its stderr.
obituary() {
	local name=$1 pid=${PID[$1]} rc=0
	wait "$pid" 2>/dev/null || rc=$?
	if ((rc > 128)); then
		say "bench: $name (pid $pid) was killed by signal $((rc - 128)) ($(kill -l $((rc - 128)) 2>/dev/null || echo ?))"
	else
		say "bench: $name (pid $pid) exited with status $rc"
	fi
	say "---- last lines of $name stderr ($RAW/$name.stderr) ----"
	tail -n 30 "$RAW/$name.stderr" >&2 || true
	say "----"
}

alive() { kill -0 "${PID[$1]}" 2>/dev/null; }

wait_ready() { # wait_ready NAME PORT: until GET /tiny answers 200, 10 s at most
	local name=$1 port=$2 deadline=$((SECONDS + 10)) code
	while ((SECONDS < deadline)); do
		if ! alive "$name"; then
			obituary "$name"
			return 1
		fi
		code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 1 "http://$HOST:$port/tiny" || true)
		[[ $code == 200 ]] && return 0
		sleep 0.1
	done
	say "bench: $name did not answer 200 on $HOST:$port/tiny within 10 s (last status: ${code:-none})"
	tail -n 30 "$RAW/$name.stderr" >&2 || true
	return 1
}

cpu_ticks() { # utime+stime, in clock ticks, of a server and its children
	local total=0 pid stat rest f
	for pid in $(pids_of "$1"); do
		stat=$(cat "/proc/$pid/stat" 2>/dev/null) || continue
		rest=${stat##*) } # fields from 3 (state) on; comm may hold spaces
		read -r -a f <<<"$rest"
		total=$((total + f[11] + f[12])) # fields 14 (utime) and 15 (stime)
	done
	echo "$total"
}

peak_rss_kb() { # peak resident memory (VmHWM, kB) of a server and its children
	local total=0 pid kb
	for pid in $(pids_of "$1"); do
		kb=$(awk '/^VmHWM:/ { print $2 }' "/proc/$pid/status" 2>/dev/null) || continue
		total=$((total + ${kb:-0}))
	done
	echo "$total"
}

# ------------------------------------------------------------ configuration

mkdir -p "$RAW"
rm -f "$RAW"/*

for port in $PORT_OLD $PORT_NEW $(for p in $PROXIES; do echo "${PORT[$p]}"; done); do
	port_busy "$port" && die "port $port on $HOST is already in use (choose other ports with BASE_PORT=...)"
done

mkdir -p "$WORK/upstream/www" "$WORK/upstream/tmp" "$WORK/nginx/tmp" "$WORK/haproxy" "$WORK/zdmd"
# Run a private copy of zdmd, so a rebuild during the run changes nothing.
if [[ " $PROXIES " == *" zdmd "* ]]; then
	cp "$ZDMD" "$WORK/zdmd/zdmd"
	ZDMD_SRC=$ZDMD
	ZDMD_ID="$ZDMD_SRC as of $(date -u -r "$ZDMD_SRC" '+%Y-%m-%d %H:%M:%S UTC'), sha256 $(sha256sum "$WORK/zdmd/zdmd" | cut -c1-12)"
	ZDMD=$WORK/zdmd/zdmd
fi
head -c 4096 /dev/zero | tr '\0' 'a' >"$WORK/upstream/www/4k"
head -c 1048576 /dev/zero | tr '\0' 'b' >"$WORK/upstream/www/1m"
# nginx workers run as an unprivileged user when started by root.
chmod -R a+rX "$WORK"

temp_paths() { # nginx temp directories inside DIR
	local d=$1
	cat <<EOF
    client_body_temp_path $d/client_body;
    proxy_temp_path       $d/proxy;
    fastcgi_temp_path     $d/fastcgi;
    uwsgi_temp_path       $d/uwsgi;
    scgi_temp_path        $d/scgi;
EOF
}

upstream_server() { # upstream_server PORT POOL
	cat <<EOF
    server {
        listen $HOST:$1 backlog=4096;
        root $WORK/upstream/www;
        location = /tiny {
            default_type text/plain;
            add_header X-Pool $2;
            return 200 "hello world!\n";
        }
        location / {
            default_type application/octet-stream;
            add_header X-Pool $2;
        }
    }
EOF
}

cat >"$WORK/upstream/nginx.conf" <<EOF
# Upstream servers for the benchmark: pool "old" on $PORT_OLD, pool "new" on $PORT_NEW.
daemon off;
worker_processes 1;
pid $WORK/upstream/nginx.pid;
error_log $RAW/upstream.error.log warn;
worker_rlimit_nofile 65536;
events { worker_connections 8192; }
http {
    access_log off;
    server_tokens off;
    sendfile on;
    tcp_nopush on;
    tcp_nodelay on;
    keepalive_requests 100000000;
    keepalive_timeout 300s;
$(temp_paths "$WORK/upstream/tmp")
$(upstream_server $PORT_OLD old)
$(upstream_server $PORT_NEW new)
}
EOF

# HAProxy: one thread, 90/10 round robin, idle server connections shared.
# Headers as zdmd adds them: X-Forwarded-For, X-Real-IP, X-Forwarded-Proto.
cat >"$WORK/haproxy/haproxy.cfg" <<EOF
global
    nbthread 1
    maxconn 4096

defaults
    mode http
    option http-keep-alive
    http-reuse always
    timeout connect 2s
    timeout client 60s
    timeout server 30s
    timeout http-request 10s
    timeout http-keep-alive 60s

frontend bench
    bind $HOST:${PORT[haproxy]}
    option forwardfor
    http-request set-header X-Real-IP %[src]
    http-request set-header X-Forwarded-Proto http
    default_backend pools

backend pools
    balance roundrobin
$([[ ${HAPROXY_SPLICE:-0} == 1 ]] && echo "    option splice-response")
    server old $HOST:$PORT_OLD weight 90
    server new $HOST:$PORT_NEW weight 10
EOF

# NGINX as a proxy: one worker, 90/10 upstream with idle keep-alive
# connections, default proxy buffering, the same forwarding headers.
cat >"$WORK/nginx/nginx.conf" <<EOF
daemon off;
worker_processes 1;
pid $WORK/nginx/nginx.pid;
error_log $RAW/nginx.error.log warn;
worker_rlimit_nofile 65536;
events { worker_connections 8192; }
http {
    access_log off;
    keepalive_requests 100000000;
    keepalive_timeout 300s;
$(temp_paths "$WORK/nginx/tmp")
    upstream pools {
        server $HOST:$PORT_OLD weight=90;
        server $HOST:$PORT_NEW weight=10;
        keepalive 64;
        keepalive_requests 100000000;
        keepalive_timeout 300s;
    }
    server {
        listen $HOST:${PORT[nginx]} backlog=4096;
        location / {
            proxy_pass http://pools;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header X-Forwarded-For \$proxy_add_x_forwarded_for;
            proxy_set_header X-Real-IP \$remote_addr;
            proxy_set_header X-Forwarded-Proto \$scheme;
        }
    }
}
EOF

cat >"$WORK/zdmd/zdm.yaml" <<EOF
listen:
  - "$HOST:${PORT[zdmd]}"
control:
  socket: "$WORK/zdmd/zdm.sock"
workers: 1
access_log: "off"
pools:
  old:
    servers:
      - {address: "$HOST:$PORT_OLD"}
  new:
    servers:
      - {address: "$HOST:$PORT_NEW"}
split: {old: 90, new: 10}
EOF

for f in upstream/nginx.conf haproxy/haproxy.cfg nginx/nginx.conf zdmd/zdm.yaml; do
	cp "$WORK/$f" "$RAW/$(echo "$f" | tr / -)"
done

# ------------------------------------------------------------ start servers

say "bench: starting upstream nginx on $HOST:$PORT_OLD (old) and $HOST:$PORT_NEW (new), CPU $CLIENT_CPU"
start upstream "$CLIENT_CPU" nginx -e "$RAW/upstream.error.log" -p "$WORK/upstream" -c "$WORK/upstream/nginx.conf"
wait_ready upstream $PORT_OLD || die "upstream nginx did not start"
wait_ready upstream $PORT_NEW || die "upstream nginx did not start"
for s in $SIZES; do
	for port in $PORT_OLD $PORT_NEW; do
		got=$(python3 "$LIB" fetch $HOST "$port" "${PATH_OF[$s]}")
		[[ $got == "200 ${BYTES_OF[$s]}" ]] || die "upstream $HOST:$port${PATH_OF[$s]} answered '$got', expected '200 ${BYTES_OF[$s]}'"
	done
done

if [[ " $PROXIES " == *" zdmd "* ]]; then
	if ! "$ZDMD" -t -c "$WORK/zdmd/zdm.yaml" >"$RAW/zdmd.configtest" 2>&1; then
		cat "$RAW/zdmd.configtest" >&2
		note "zdmd skipped: '$ZDMD_SRC -t -c zdm.yaml' rejected the benchmark config: $(head -n 3 "$RAW/zdmd.configtest" | tr '\n' ' ')"
		drop_proxy zdmd
	fi
fi
[[ -n $PROXIES ]] || die "no proxy left to measure"

for p in $PROXIES; do
	say "bench: starting $p on $HOST:${PORT[$p]}, CPU $PROXY_CPU"
	case $p in
	zdmd) start zdmd "$PROXY_CPU" "$ZDMD" -c "$WORK/zdmd/zdm.yaml" ;;
	haproxy) start haproxy "$PROXY_CPU" haproxy -db -f "$WORK/haproxy/haproxy.cfg" ;;
	nginx) start nginx "$PROXY_CPU" nginx -e "$RAW/nginx.error.log" -p "$WORK/nginx" -c "$WORK/nginx/nginx.conf" ;;
	esac
done

# Every proxy must answer, return whole bodies and split about 90/10.
ready=""
for p in $PROXIES; do
	if ! wait_ready "$p" "${PORT[$p]}"; then
		note "$p skipped: it did not come up (see bench/results/raw/$p.stderr)"
		continue
	fi
	ok=1
	for s in $SIZES; do
		got=$(python3 "$LIB" fetch $HOST "${PORT[$p]}" "${PATH_OF[$s]}" 2>&1) || true
		if [[ $got != "200 ${BYTES_OF[$s]}" ]]; then
			note "$p skipped: GET ${PATH_OF[$s]} answered '$got', expected '200 ${BYTES_OF[$s]}'"
			ok=0
			break
		fi
	done
	((ok)) || continue
	split=$(python3 "$LIB" split $HOST "${PORT[$p]}" /tiny 200 2>&1) || true
	say "bench: $p split over 200 keep-alive requests: $split"
	if [[ $split =~ ^old=([0-9]+)\ new=([0-9]+)\ other=([0-9]+)$ ]]; then
		old=${BASH_REMATCH[1]} new=${BASH_REMATCH[2]} other=${BASH_REMATCH[3]}
		if ((other > 0 || old < 170 || old > 190)); then
			note "$p split over 200 requests was old=$old new=$new other=$other (expected about 180/20)"
		fi
	else
		note "$p skipped: split check failed: $split"
		continue
	fi
	ready+=" $p"
done
PROXIES=$(echo $ready)
[[ -n $PROXIES ]] || die "no proxy is ready to measure"

# ------------------------------------------------------------ measure

RESULTS="$RAW/results.tsv"
printf '# %s\n' "$(tr '\n' '\t' <<<"size proxy round requests rps p99_ms errors server_ticks upstream_ticks wrk_s clk_tck same_core
c_busy c_irq c_steal c_total p_busy p_irq p_steal p_total peak_rss_kb" | tr ' ' '\t')" >"$RESULTS"

conns_for() { [[ $1 == 1m ]] && echo "$CONNS_1M" || echo "$CONNS"; }

# core_stat CPU: busy (user+nice+system), irq+softirq, steal and total
# ticks of one core from /proc/stat.
core_stat() {
	local name v
	local -a f
	while read -r name v; do
		if [[ $name == "cpu$1" ]]; then
			read -r -a f <<<"$v"
			echo "$((f[0] + f[1] + f[2])) $((f[5] + f[6])) $((f[7])) $((f[0] + f[1] + f[2] + f[3] + f[4] + f[5] + f[6] + f[7]))"
			return
		fi
	done </proc/stat
	echo "0 0 0 0"
}

# all_stat: busy (user+nice+system+irq+softirq+steal) and total ticks of all cores.
all_stat() {
	local -a f
	read -r -a f </proc/stat # the first line: "cpu" and the sums over all cores
	f=("${f[@]:1}")
	echo "$((f[0] + f[1] + f[2] + f[5] + f[6] + f[7])) $((f[0] + f[1] + f[2] + f[3] + f[4] + f[5] + f[6] + f[7]))"
}

# wait_quiet: with every server idle, wait (QUIET_WAIT seconds at most) until
# other work uses less than 5% of a core, so that runs start on a quiet machine.
wait_quiet() {
	((QUIET_WAIT > 0)) || return 0
	local deadline=$((SECONDS + QUIET_WAIT)) waited=0 pct
	local -a a b
	while :; do
		read -r -a a <<<"$(all_stat)"
		sleep 0.5
		read -r -a b <<<"$(all_stat)"
		pct=$(((b[0] - a[0]) * 100 * CORES / ((b[1] - a[1]) > 0 ? (b[1] - a[1]) : 1)))
		((pct < 5)) && break
		if ((SECONDS >= deadline)); then
			say "bench: the machine is still busy (other work: ${pct}% of a core); measuring anyway"
			break
		fi
		((waited)) || say "bench: other work uses ${pct}% of a core; waiting up to ${QUIET_WAIT}s for it to settle"
		waited=1
	done
}

# measure NAME SERVER_NAME PORT SIZE ROUND: one warm-up and one measured wrk
# run; SERVER_NAME is the process whose CPU time is charged to the run.
measure() {
	local name=$1 server=$2 port=$3 size=$4 round=$5
	local url="http://$HOST:$port${PATH_OF[$size]}" c out parsed
	local t0 t1 u0 u1 wrk_s
	local -a c0 c1 p0 p1
	c=$(conns_for "$size")
	out="$RAW/wrk-$size-$name-$round.txt"
	DEATH="between runs, before the warm-up of"
	DEATH_OUT=""
	alive "$server" || return 1
	wait_quiet
	if ((WARMUP > 0)); then
		DEATH="during the warm-up (wrk -t1 -c$c -d${WARMUP}s $url) of"
		DEATH_OUT="$out.warmup"
		taskset -c "$CLIENT_CPU" wrk -t1 -c"$c" -d"${WARMUP}s" "$url" >"$out.warmup" 2>&1 || true
	fi
	alive "$server" || return 1
	DEATH="during the measured run (taskset -c $CLIENT_CPU wrk -t1 -c$c -d${DURATION}s --latency $url) of"
	DEATH_OUT="$out"
	t0=$(cpu_ticks "${PID[$server]}")
	u0=$(cpu_ticks "${PID[upstream]}")
	read -r -a c0 <<<"$(core_stat "$CLIENT_CPU")"
	read -r -a p0 <<<"$(core_stat "$PROXY_CPU")"
	local TIMEFORMAT='wrk-cpu %3U %3S'
	{ time taskset -c "$CLIENT_CPU" wrk -t1 -c"$c" -d"${DURATION}s" --latency "$url" >"$out" 2>&1 || true; } 2>"$out.time"
	read -r -a p1 <<<"$(core_stat "$PROXY_CPU")"
	read -r -a c1 <<<"$(core_stat "$CLIENT_CPU")"
	u1=$(cpu_ticks "${PID[upstream]}")
	t1=$(cpu_ticks "${PID[$server]}")
	alive "$server" || return 1
	wrk_s=$(awk '$1 == "wrk-cpu" { s = $2 + $3 } END { print s + 0 }' "$out.time")
	parsed=$(python3 "$LIB" parse-wrk "$out")
	read -r requests rps p99 errors <<<"$parsed"
	local same=0
	[[ $CLIENT_CPU == "$PROXY_CPU" ]] && same=1
	local -a row=("$size" "$name" "$round" "$requests" "$rps" "$p99" "$errors" $((t1 - t0)) $((u1 - u0)) "$wrk_s" "$CLK_TCK" "$same")
	local i
	for i in 0 1 2 3; do row+=($((c1[i] - c0[i]))); done
	for i in 0 1 2 3; do row+=($((p1[i] - p0[i]))); done
	row+=("$(peak_rss_kb "${PID[$server]}")")
	(IFS=$'\t' && echo "${row[*]}") >>"$RESULTS"
	say "bench: $(python3 "$LIB" run-line "$RESULTS")"
	if ((requests == 0)); then
		say "---- wrk output ($out) ----"
		cat "$out" >&2
		say "----"
	fi
}

declare -A FAILED=()
DEATH="" DEATH_OUT="" # where a server was found dead, set by measure
runs=$(($(wc -w <<<"$SIZES") * (1 + ROUNDS * $(wc -w <<<"$PROXIES"))))
say "bench: $runs runs of ${DURATION}s (+${WARMUP}s warm-up each), about $((runs * (DURATION + WARMUP + 1) / 60 + 1)) min"

for size in $SIZES; do
	measure direct upstream $PORT_OLD "$size" 1 || die "upstream nginx died"
	for round in $(seq "$ROUNDS"); do
		for p in $PROXIES; do
			[[ -n ${FAILED[$p]:-} ]] && continue
			if ! measure "$p" "$p" "${PORT[$p]}" "$size" "$round"; then
				FAILED[$p]=1
				say "bench: $p died $DEATH $size round $round"
				obituary "$p"
				if [[ -n $DEATH_OUT ]]; then
					say "---- wrk output ($DEATH_OUT) ----"
					cat "$DEATH_OUT" >&2 2>/dev/null || true
					say "----"
				fi
				note "$p died $DEATH $size round $round; its later runs were skipped (its stderr and the wrk output are in bench/results/raw/)"
			fi
			alive upstream || die "the upstream nginx died (see $RAW/upstream.error.log)"
		done
	done
done

# ------------------------------------------------------------ report

META="$RAW/meta.txt"
{
	echo "date=$(date -u '+%Y-%m-%d %H:%M:%S UTC')"
	echo "cpu=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')"
	echo "cores=$CORES"
	echo "kernel=$(uname -r)"
	echo "command=$COMMAND"
	echo "duration=$DURATION"
	echo "rounds=$ROUNDS"
	echo "warmup=$WARMUP"
	echo "conns=$CONNS"
	echo "conns_1m=$CONNS_1M"
	echo "client_cpu=$CLIENT_CPU"
	echo "proxy_cpu=$PROXY_CPU"
	echo "sizes=$SIZES"
	echo "proxies=$PROXIES"
	if { zcat /proc/config.gz 2>/dev/null || cat "/boot/config-$(uname -r)" 2>/dev/null; } | grep -q '^CONFIG_IRQ_TIME_ACCOUNTING=y'; then
		echo "note=This kernel accounts irq/softirq time separately: the kernel's packet work on loopback is charged to no process, so CPU µs/req leave it out (for every proxy alike)."
	fi
	for n in "${NOTES[@]}"; do echo "note=$n"; done
	if [[ " $PROXIES " == *" zdmd "* ]]; then
		echo "version=$("$ZDMD" -V 2>&1 | tr '\n' ' ' | sed 's/ *$//') ($ZDMD_ID)"
	fi
	if command -v haproxy >/dev/null; then echo "version=$(haproxy -v 2>&1 | head -n 1)"; fi
	echo "version=$(nginx -v 2>&1 | head -n 1)"
	echo "version=$(wrk -v 2>&1 | head -n 1 | sed 's/ *Copyright.*//')"
	echo "version=$(python3 --version 2>&1)"
} >"$META"

report=$(python3 "$LIB" report "$RESULTS" "$META")
printf '%s\n' "$report" >"$RESULTS_DIR/latest.md"
printf '%s\n' "$report"
say "bench: table written to $RESULTS_DIR/latest.md; raw output in $RAW/"
exit 0
}
