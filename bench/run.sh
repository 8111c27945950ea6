#!/usr/bin/env bash
# Benchmark zdmd, HAProxy and NGINX as HTTP/1.1 reverse proxies in one run.
#
# Usage: bench/run.sh [plain|obs|tls]
#   plain (default)  response sizes tiny, 4k, 1m; with OBS=1 (the default) also
#                    "zdmd+obs" (admin listener, text access log to a file,
#                    /metrics scraped every second) for tiny and 4k
#   obs              only zdmd and zdmd+obs, tiny and 4k: the cost of metrics
#                    and access log
#   tls              TLS termination: keep-alive requests over TLS, full and
#                    resumed handshakes (Connection: close), and the same load
#                    over plain HTTP for comparison
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
#   OBS=1           plain mode: measure zdmd+obs too (0: do not)
#   OBS_SIZES="tiny 4k"   sizes at which zdmd+obs is measured
#   TLS_TESTS="tiny ka close full resume"   tls mode: what to measure
#   TLS_KEY=ec      tls mode: ec (ECDSA P-256) or rsa (RSA 2048) certificates
#
# Output: markdown tables on stdout, also written to bench/results/latest.md
# (latest-obs.md, latest-tls.md in those modes);
# raw wrk output and every server's stderr in bench/results/raw/.

set -euo pipefail

# The whole script is one compound command, read in full before it runs, so
# editing this file during a run cannot change the running benchmark.
{

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_DIR=$(cd "$BENCH_DIR/.." && pwd)
LIB="$BENCH_DIR/benchlib.py"

MODE=${1:-plain}
case $MODE in
plain | obs | tls) ;;
*)
	echo "usage: bench/run.sh [plain|obs|tls]" >&2
	exit 2
	;;
esac

# The command line that reproduces this run, for the report.
COMMAND="bench/run.sh"
[[ $# -gt 0 ]] && COMMAND+=" $MODE"
for v in ZDMD QUIET_WAIT HAPROXY_SPLICE TLS_KEY TLS_TESTS OBS_SIZES OBS SIZES PROXIES CONNS_1M CONNS WARMUP ROUNDS DURATION QUICK; do
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
case $MODE in
plain)
	PROXIES=${PROXIES:-zdmd haproxy nginx}
	SIZES=${SIZES:-tiny 4k 1m}
	OBS=${OBS:-1}
	;;
obs)
	PROXIES=${PROXIES:-zdmd}
	SIZES=${SIZES:-tiny 4k}
	OBS=1
	;;
tls)
	PROXIES=${PROXIES:-zdmd haproxy nginx}
	OBS=0
	# In tls mode SIZES holds the workloads (see WL_PATH below).
	SIZES=""
	for t in ${TLS_TESTS:-tiny ka close full resume}; do
		case $t in
		tiny | close) SIZES+=" $t" ;;
		ka | full | resume) SIZES+=" tls-$t" ;;
		*)
			echo "bench: error: unknown test '$t' in TLS_TESTS (choose from: tiny ka close full resume)" >&2
			exit 1
			;;
		esac
	done
	SIZES=${SIZES# }
	;;
esac
OBS_SIZES=${OBS_SIZES:-tiny 4k}
TLS_KEY=${TLS_KEY:-ec}
CONNS=${CONNS:-50}
CONNS_1M=${CONNS_1M:-10}
ZDMD=${ZDMD:-$REPO_DIR/src/zdmd}
BASE_PORT=${BASE_PORT:-18080}
CLIENT_CPU=${CLIENT_CPU:-0}
PROXY_CPU=${PROXY_CPU:-1}

HOST=127.0.0.1
PORT_OLD=$((BASE_PORT + 1))
PORT_NEW=$((BASE_PORT + 2))
declare -A PORT=([zdmd]=$((BASE_PORT + 10)) [haproxy]=$((BASE_PORT + 11)) [nginx]=$((BASE_PORT + 12)) [zdmd+obs]=$((BASE_PORT + 13)))
ADMIN_PORT=$((BASE_PORT + 14)) # admin listener of zdmd+obs
declare -A TLS_PORT=([zdmd]=$((BASE_PORT + 20)) [haproxy]=$((BASE_PORT + 21)) [nginx]=$((BASE_PORT + 22)))
declare -A PATH_OF=([tiny]=/tiny [4k]=/4k [1m]=/1m)
declare -A BYTES_OF=([tiny]=13 [4k]=4096 [1m]=1048576)
# Workloads: the plain sizes, plus (tls mode) "close" = tiny with
# "Connection: close" over plain HTTP, and over TLS: "tls-ka" keep-alive,
# "tls-full" a full handshake per request, "tls-resume" a handshake per
# request with the session resumption wrk does by itself.
declare -A WL_PATH=([tiny]=/tiny [4k]=/4k [1m]=/1m [close]=/tiny [tls-ka]=/tiny [tls-full]=/tiny [tls-resume]=/tiny)

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
	zdmd+obs) [[ $MODE != tls ]] || die "zdmd+obs is not measured in tls mode" ;;
	*) die "unknown proxy '$p' in PROXIES (choose from: zdmd zdmd+obs haproxy nginx)" ;;
	esac
done
for s in $SIZES; do
	if [[ $MODE == tls ]]; then
		[[ -n ${WL_PATH[$s]:-} ]] || die "unknown workload '$s'"
	else
		[[ -n ${PATH_OF[$s]:-} ]] || die "unknown size '$s' in SIZES (choose from: tiny 4k 1m)"
	fi
done
for s in $OBS_SIZES; do
	[[ -n ${PATH_OF[$s]:-} ]] || die "unknown size '$s' in OBS_SIZES (choose from: tiny 4k 1m)"
done
[[ $OBS == 0 || $OBS == 1 ]] || die "OBS must be 0 or 1"
[[ $TLS_KEY == ec || $TLS_KEY == rsa ]] || die "TLS_KEY must be ec (ECDSA P-256) or rsa (RSA 2048)"
# zdmd+obs runs next to zdmd (right after it in every round) when OBS=1.
if [[ $OBS == 1 && " $PROXIES " == *" zdmd "* && " $PROXIES " != *" zdmd+obs "* ]]; then
	PROXIES=$(echo " $PROXIES " | sed 's/ zdmd / zdmd zdmd+obs /')
	PROXIES=$(echo $PROXIES)
elif [[ $OBS == 0 && $MODE != tls ]]; then
	drop_proxy zdmd+obs
fi
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
[[ $MODE == tls ]] && need openssl openssl

CORES=$(getconf _NPROCESSORS_ONLN)
if ((CORES < 2)); then
	note "only $CORES core online: wrk, upstream and proxy all share CPU 0"
	CLIENT_CPU=0
	PROXY_CPU=0
fi
CLK_TCK=$(getconf CLK_TCK)

if [[ " $PROXIES " == *" zdmd"* ]]; then
	if [[ ! -x $ZDMD ]]; then
		note "zdmd skipped: no executable at $ZDMD (build it with: autoreconf -fi && ./configure && make, or set ZDMD=path)"
		drop_proxy zdmd
		drop_proxy zdmd+obs
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

ports_used() {
	echo $PORT_OLD $PORT_NEW
	for p in $PROXIES; do
		echo "${PORT[$p]}"
		[[ $MODE == tls ]] && echo "${TLS_PORT[$p]}"
		[[ $p == zdmd+obs ]] && echo "$ADMIN_PORT"
	done
	return 0
}
for port in $(ports_used); do
	port_busy "$port" && die "port $port on $HOST is already in use (choose other ports with BASE_PORT=...)"
done

mkdir -p "$WORK/upstream/www" "$WORK/upstream/tmp" "$WORK/nginx/tmp" "$WORK/haproxy" "$WORK/zdmd" "$WORK/zdmd-obs" "$WORK/tls"
# Run a private copy of zdmd, so a rebuild during the run changes nothing.
if [[ " $PROXIES " == *" zdmd"* ]]; then
	cp "$ZDMD" "$WORK/zdmd/zdmd"
	ZDMD_SRC=$ZDMD
	ZDMD_ID="$ZDMD_SRC as of $(date -u -r "$ZDMD_SRC" '+%Y-%m-%d %H:%M:%S UTC'), sha256 $(sha256sum "$WORK/zdmd/zdmd" | cut -c1-12)"
	ZDMD=$WORK/zdmd/zdmd
fi
head -c 4096 /dev/zero | tr '\0' 'a' >"$WORK/upstream/www/4k"
head -c 1048576 /dev/zero | tr '\0' 'b' >"$WORK/upstream/www/1m"
# nginx workers run as an unprivileged user when started by root.
chmod -R a+rX "$WORK"

# ------------------------------------------------------------ TLS material

TLS_DIR=$WORK/tls
SHIM=""
if [[ $MODE == tls ]]; then
	# A CA of our own and a certificate for "bench.test" signed by it; every
	# proxy serves the same certificate and key.
	if [[ $TLS_KEY == ec ]]; then
		KEYGEN=(-newkey ec -pkeyopt ec_paramgen_curve:P-256)
		TLS_KEY_DESC="ECDSA P-256"
	else
		KEYGEN=(-newkey rsa:2048)
		TLS_KEY_DESC="RSA 2048"
	fi
	{
		openssl req -x509 -new "${KEYGEN[@]}" -nodes -sha256 -days 2 -subj "/CN=zdm bench CA" \
			-addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign" \
			-keyout "$TLS_DIR/ca.key" -out "$TLS_DIR/ca.pem"
		openssl req -new "${KEYGEN[@]}" -nodes -subj "/CN=bench.test" \
			-keyout "$TLS_DIR/server.key" -out "$TLS_DIR/server.csr"
		printf '%s\n' "subjectAltName=DNS:bench.test" "basicConstraints=CA:FALSE" \
			"keyUsage=critical,digitalSignature,keyEncipherment" "extendedKeyUsage=serverAuth" >"$TLS_DIR/server.ext"
		openssl x509 -req -sha256 -days 2 -in "$TLS_DIR/server.csr" -CA "$TLS_DIR/ca.pem" -CAkey "$TLS_DIR/ca.key" \
			-CAcreateserial -extfile "$TLS_DIR/server.ext" -out "$TLS_DIR/server.pem"
	} >"$RAW/openssl-certs.log" 2>&1 || die "openssl could not make the certificates (see $RAW/openssl-certs.log)"
	cat "$TLS_DIR/server.pem" "$TLS_DIR/server.key" >"$TLS_DIR/combined.pem" # for HAProxy
	# wrk resumes TLS sessions by itself; the shim counts resumed connections
	# and, for "full", makes every handshake a full one (see wrk-tls-shim.c).
	if command -v cc >/dev/null 2>&1 &&
		cc -shared -fPIC -O2 -o "$WORK/tls/wrk-tls-shim.so" "$BENCH_DIR/wrk-tls-shim.c" -ldl >"$RAW/shim-build.log" 2>&1; then
		SHIM=$WORK/tls/wrk-tls-shim.so
	else
		note "no C compiler (or the shim did not build, see bench/results/raw/shim-build.log): full-handshake runs skipped, resumption not counted"
		SIZES=$(echo " $SIZES " | sed 's/ tls-full / /')
		SIZES=$(echo $SIZES)
	fi
fi

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
$([[ $MODE == tls ]] && echo "    bind $HOST:${TLS_PORT[haproxy]} ssl crt $TLS_DIR/combined.pem alpn http/1.1")
    option forwardfor
    http-request set-header X-Real-IP %[src]
    http-request set-header X-Forwarded-Proto http if !{ ssl_fc }
    http-request set-header X-Forwarded-Proto https if { ssl_fc }
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
$([[ $MODE == tls ]] && cat <<EOT
        listen $HOST:${TLS_PORT[nginx]} ssl backlog=4096;
        ssl_certificate $TLS_DIR/server.pem;
        ssl_certificate_key $TLS_DIR/server.key;
        ssl_session_cache shared:SSL:10m;
        ssl_protocols TLSv1.2 TLSv1.3;
EOT
)
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

zdmd_config() { # zdmd_config NAME DIR: listeners, control socket and logging
	echo "listen:"
	echo "  - \"$HOST:${PORT[$1]}\""
	if [[ $MODE == tls ]]; then
		echo "  - {address: \"$HOST:${TLS_PORT[$1]}\", tls: {cert: \"$TLS_DIR/server.pem\", key: \"$TLS_DIR/server.key\"}}"
	fi
	echo "control:"
	echo "  socket: \"$2/zdm.sock\""
	echo "workers: 1"
	if [[ $1 == zdmd+obs ]]; then
		echo "admin: \"$HOST:$ADMIN_PORT\""
		echo "access_log: \"$2/access.log\""
		echo "access_log_format: text"
	else
		echo "access_log: \"off\""
	fi
}

# zdmd+obs is zdmd with the admin listener (scraped every second during its
# runs) and a text access log written to a file.
ACCESS_LOG=$WORK/zdmd-obs/access.log
for p in zdmd zdmd+obs; do
	dir=$WORK/zdmd
	[[ $p == zdmd+obs ]] && dir=$WORK/zdmd-obs
	cat >"$dir/zdm.yaml" <<EOF
$(zdmd_config $p "$dir")
pools:
  old:
    servers:
      - {address: "$HOST:$PORT_OLD"}
  new:
    servers:
      - {address: "$HOST:$PORT_NEW"}
split: {old: 90, new: 10}
EOF
done

for f in upstream/nginx.conf haproxy/haproxy.cfg nginx/nginx.conf zdmd/zdm.yaml zdmd-obs/zdm.yaml; do
	cp "$WORK/$f" "$RAW/$(echo "$f" | tr / -)"
done

# ------------------------------------------------------------ start servers

say "bench: starting upstream nginx on $HOST:$PORT_OLD (old) and $HOST:$PORT_NEW (new), CPU $CLIENT_CPU"
start upstream "$CLIENT_CPU" nginx -e "$RAW/upstream.error.log" -p "$WORK/upstream" -c "$WORK/upstream/nginx.conf"
wait_ready upstream $PORT_OLD || die "upstream nginx did not start"
wait_ready upstream $PORT_NEW || die "upstream nginx did not start"
CHECK_SIZES=$SIZES # the bodies checked through every proxy
[[ $MODE == tls ]] && CHECK_SIZES=tiny
for s in $CHECK_SIZES; do
	for port in $PORT_OLD $PORT_NEW; do
		got=$(python3 "$LIB" fetch $HOST "$port" "${PATH_OF[$s]}")
		[[ $got == "200 ${BYTES_OF[$s]}" ]] || die "upstream $HOST:$port${PATH_OF[$s]} answered '$got', expected '200 ${BYTES_OF[$s]}'"
	done
done

declare -A ZDMD_CONF=([zdmd]=$WORK/zdmd/zdm.yaml [zdmd+obs]=$WORK/zdmd-obs/zdm.yaml)
for p in zdmd zdmd+obs; do
	[[ " $PROXIES " == *" $p "* ]] || continue
	if ! "$ZDMD" -t -c "${ZDMD_CONF[$p]}" >"$RAW/$p.configtest" 2>&1; then
		cat "$RAW/$p.configtest" >&2
		note "$p skipped: '$ZDMD_SRC -t -c zdm.yaml' rejected the benchmark config: $(head -n 3 "$RAW/$p.configtest" | tr '\n' ' ')"
		drop_proxy "$p"
	fi
done
[[ -n $PROXIES ]] || die "no proxy left to measure"

for p in $PROXIES; do
	say "bench: starting $p on $HOST:${PORT[$p]}, CPU $PROXY_CPU"
	case $p in
	zdmd | zdmd+obs) start "$p" "$PROXY_CPU" "$ZDMD" -c "${ZDMD_CONF[$p]}" ;;
	haproxy) start haproxy "$PROXY_CPU" haproxy -db -f "$WORK/haproxy/haproxy.cfg" ;;
	nginx) start nginx "$PROXY_CPU" nginx -e "$RAW/nginx.error.log" -p "$WORK/nginx" -c "$WORK/nginx/nginx.conf" ;;
	esac
done

# Every proxy must answer, return whole bodies and split about 90/10.
declare -A TLS_INFO=()
ready=""
for p in $PROXIES; do
	if ! wait_ready "$p" "${PORT[$p]}"; then
		note "$p skipped: it did not come up (see bench/results/raw/$p.stderr)"
		continue
	fi
	ok=1
	for s in $CHECK_SIZES; do
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
	if [[ $p == zdmd+obs ]]; then
		# The admin listener answers and the access log gets its lines.
		got=$(python3 "$LIB" fetch $HOST $ADMIN_PORT /metrics 2>&1) || true
		lines=$(wc -l <"$ACCESS_LOG" 2>/dev/null || echo 0)
		say "bench: zdmd+obs: GET /metrics on the admin port: '$got'; access log lines so far: $lines"
		if [[ $got != "200 "* ]]; then
			note "zdmd+obs skipped: GET http://$HOST:$ADMIN_PORT/metrics answered '$got'"
			continue
		fi
		((lines > 0)) || note "zdmd+obs: the access log $ACCESS_LOG is still empty after the checks (buffered?)"
	fi
	if [[ $MODE == tls ]]; then
		# A verified request over TLS, and what each proxy negotiates.
		got=$(curl -s -o /dev/null -w '%{http_code} %{size_download}' --max-time 5 --cacert "$TLS_DIR/ca.pem" \
			--resolve "bench.test:${TLS_PORT[$p]}:$HOST" "https://bench.test:${TLS_PORT[$p]}/tiny" 2>&1) || true
		if [[ $got != "200 13" ]]; then
			note "$p skipped: GET https://bench.test:${TLS_PORT[$p]}/tiny (curl --cacert) answered '$got', expected '200 13'"
			continue
		fi
		timeout 10 openssl s_client -connect "$HOST:${TLS_PORT[$p]}" -servername bench.test -alpn http/1.1 \
			-CAfile "$TLS_DIR/ca.pem" -verify_hostname bench.test </dev/null >"$RAW/s_client-$p.txt" 2>&1 || true
		TLS_INFO[$p]=$(python3 "$LIB" tls-info "$RAW/s_client-$p.txt")
		say "bench: $p TLS: ${TLS_INFO[$p]}"
	fi
	ready+=" $p"
done
PROXIES=$(echo $ready)
[[ -n $PROXIES ]] || die "no proxy is ready to measure"

# ------------------------------------------------------------ measure

RESULTS="$RAW/results.tsv"
printf '# %s\n' "$(tr '\n' '\t' <<<"size proxy round requests rps p99_ms errors server_ticks upstream_ticks wrk_s clk_tck same_core
c_busy c_irq c_steal c_total p_busy p_irq p_steal p_total peak_rss_kb tls_conns tls_resumed scrapes scrape_errors log_lines" | tr ' ' '\t')" >"$RESULTS"

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
	local url c out parsed
	local t0 t1 u0 u1 wrk_s
	local -a c0 c1 p0 p1 args=() envs=()
	c=$(conns_for "$size")
	case $size in
	tls-*)
		url="https://$HOST:$port${WL_PATH[$size]}"
		[[ -n $SHIM ]] && envs=(env "LD_PRELOAD=$SHIM")
		[[ $size == tls-full ]] && envs+=(BENCH_TLS_FULL=1)
		;;
	*) url="http://$HOST:$port${WL_PATH[$size]}" ;;
	esac
	# A new connection (and, over TLS, a new handshake) for every request.
	[[ $size == close || $size == tls-full || $size == tls-resume ]] && args=(-H "Connection: close")
	local wrk_cmd="wrk ${args[*]:+-H 'Connection: close' }-t1 -c$c"
	out="$RAW/wrk-$size-$name-$round.txt"
	DEATH="between runs, before the warm-up of"
	DEATH_OUT=""
	alive "$server" || return 1
	wait_quiet
	if ((WARMUP > 0)); then
		DEATH="during the warm-up ($wrk_cmd -d${WARMUP}s $url) of"
		DEATH_OUT="$out.warmup"
		taskset -c "$CLIENT_CPU" "${envs[@]}" wrk "${args[@]}" -t1 -c"$c" -d"${WARMUP}s" "$url" >"$out.warmup" 2>&1 || true
	fi
	alive "$server" || return 1
	# zdmd+obs: /metrics is scraped once per second during the measured run
	# (the scraper runs on the client's core); the access log is counted and
	# emptied after every run.
	local scraper="" log0=0 log1=0 scrapes=0 scrape_errors=0
	if [[ $name == zdmd+obs ]]; then
		log0=$(wc -l <"$ACCESS_LOG" 2>/dev/null || echo 0)
		taskset -c "$CLIENT_CPU" python3 "$LIB" scrape $HOST $ADMIN_PORT /metrics 1 >"$out.scrape" 2>&1 &
		scraper=$!
	fi
	DEATH="during the measured run (taskset -c $CLIENT_CPU $wrk_cmd -d${DURATION}s --latency $url) of"
	DEATH_OUT="$out"
	t0=$(cpu_ticks "${PID[$server]}")
	u0=$(cpu_ticks "${PID[upstream]}")
	read -r -a c0 <<<"$(core_stat "$CLIENT_CPU")"
	read -r -a p0 <<<"$(core_stat "$PROXY_CPU")"
	local TIMEFORMAT='wrk-cpu %3U %3S'
	{ time taskset -c "$CLIENT_CPU" "${envs[@]}" wrk "${args[@]}" -t1 -c"$c" -d"${DURATION}s" --latency "$url" >"$out" 2>&1 || true; } 2>"$out.time"
	read -r -a p1 <<<"$(core_stat "$PROXY_CPU")"
	read -r -a c1 <<<"$(core_stat "$CLIENT_CPU")"
	u1=$(cpu_ticks "${PID[upstream]}")
	t1=$(cpu_ticks "${PID[$server]}")
	if [[ -n $scraper ]]; then
		kill -TERM "$scraper" 2>/dev/null || true
		wait "$scraper" 2>/dev/null || true
		read -r scrapes scrape_errors < <(awk '$1 == "scrapes" { print $2, $4 }' "$out.scrape") || true
		sleep 0.2 # let buffered access-log lines reach the file
		log1=$(wc -l <"$ACCESS_LOG" 2>/dev/null || echo 0)
		: >"$ACCESS_LOG" # opened with O_APPEND: writing continues at the new end
	fi
	alive "$server" || return 1
	wrk_s=$(awk '$1 == "wrk-cpu" { s = $2 + $3 } END { print s + 0 }' "$out.time")
	parsed=$(python3 "$LIB" parse-wrk "$out")
	local tls_conns tls_resumed
	read -r requests rps p99 errors tls_conns tls_resumed <<<"$parsed"
	local same=0
	[[ $CLIENT_CPU == "$PROXY_CPU" ]] && same=1
	local -a row=("$size" "$name" "$round" "$requests" "$rps" "$p99" "$errors" $((t1 - t0)) $((u1 - u0)) "$wrk_s" "$CLK_TCK" "$same")
	local i
	for i in 0 1 2 3; do row+=($((c1[i] - c0[i]))); done
	for i in 0 1 2 3; do row+=($((p1[i] - p0[i]))); done
	row+=("$(peak_rss_kb "${PID[$server]}")")
	row+=("$tls_conns" "$tls_resumed" "${scrapes:-0}" "${scrape_errors:-0}" $((log1 - log0)))
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
# wanted PROXY SIZE: whether PROXY is measured at SIZE ("direct" = no proxy,
# only for plain HTTP; zdmd+obs only at OBS_SIZES).
wanted() {
	case $1 in
	direct) [[ $2 != tls-* ]] ;;
	zdmd+obs) [[ " $OBS_SIZES " == *" $2 "* ]] ;;
	*) return 0 ;;
	esac
}
runs=0
for size in $SIZES; do
	for p in direct $PROXIES; do
		wanted "$p" "$size" || continue
		[[ $p == direct ]] && runs=$((runs + 1)) || runs=$((runs + ROUNDS))
	done
done
say "bench: $runs runs of ${DURATION}s (+${WARMUP}s warm-up each), about $((runs * (DURATION + WARMUP + 1) / 60 + 1)) min"

for size in $SIZES; do
	if wanted direct "$size"; then
		measure direct upstream $PORT_OLD "$size" 1 || die "upstream nginx died"
	fi
	for round in $(seq "$ROUNDS"); do
		for p in $PROXIES; do
			[[ -n ${FAILED[$p]:-} ]] && continue
			wanted "$p" "$size" || continue
			port=${PORT[$p]}
			[[ $size == tls-* ]] && port=${TLS_PORT[$p]}
			if ! measure "$p" "$p" "$port" "$size" "$round"; then
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
	echo "mode=$MODE"
	[[ " $PROXIES " == *" zdmd+obs "* ]] && echo "obs_sizes=$OBS_SIZES"
	if [[ $MODE == tls ]]; then
		echo "tls_key=$TLS_KEY_DESC"
		echo "tls_shim=$([[ -n $SHIM ]] && echo 1 || echo 0)"
		for p in $PROXIES; do echo "tls_info=$p|${TLS_INFO[$p]:-}"; done
		echo "version=$(openssl version 2>&1 | head -n 1) (openssl command; wrk links $(ldd "$(command -v wrk)" 2>/dev/null | awk '/libssl/ { print $1 }'))"
	fi
	if { zcat /proc/config.gz 2>/dev/null || cat "/boot/config-$(uname -r)" 2>/dev/null; } | grep -q '^CONFIG_IRQ_TIME_ACCOUNTING=y'; then
		echo "note=This kernel accounts irq/softirq time separately: the kernel's packet work on loopback is charged to no process, so CPU µs/req leave it out (for every proxy alike)."
	fi
	for n in "${NOTES[@]}"; do echo "note=$n"; done
	if [[ " $PROXIES " == *" zdmd"* ]]; then
		echo "version=$("$ZDMD" -V 2>&1 | tr '\n' ' ' | sed 's/ *$//') ($ZDMD_ID)"
	fi
	if command -v haproxy >/dev/null; then echo "version=$(haproxy -v 2>&1 | head -n 1)"; fi
	echo "version=$(nginx -v 2>&1 | head -n 1)"
	echo "version=$(wrk -v 2>&1 | head -n 1 | sed 's/ *Copyright.*//')"
	echo "version=$(python3 --version 2>&1)"
} >"$META"

report=$(python3 "$LIB" report "$RESULTS" "$META")
LATEST=$RESULTS_DIR/latest.md # the obs and tls modes keep their own latest table
[[ $MODE != plain ]] && LATEST=$RESULTS_DIR/latest-$MODE.md
printf '%s\n' "$report" >"$LATEST"
printf '%s\n' "$report"
say "bench: table written to $LATEST; raw output in $RAW/"
exit 0
}
