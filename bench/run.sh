#!/usr/bin/env bash
# Benchmark zdmd, HAProxy and NGINX as HTTP/1.1 reverse proxies in one run.
#
# Usage: bench/run.sh [plain|obs|tls|extra|all]
#   plain (default)  response sizes tiny, 4k, 1m; with OBS=1 (the default) also
#                    "zdmd+obs" (admin listener, text access log to a file,
#                    /metrics scraped every second) for tiny and 4k, and the
#                    floor "relay" (bench/relay.c) for tiny and 4k
#   obs              only zdmd and zdmd+obs, tiny and 4k: the cost of metrics
#                    and access log
#   tls              TLS termination: keep-alive requests over TLS, full and
#                    resumed handshakes (Connection: close), and the same load
#                    over plain HTTP for comparison
#   extra            syscalls per request (strace), instructions per request
#                    (callgrind), allocations per request (malloc-count.c),
#                    memory per idle connection, and 1 vs 2 workers
#   all              plain, then extra, in one run and one report
#
# Two upstream servers (pool "old" and pool "new") are served by one nginx
# instance of our own; every proxy under test runs one worker, keeps
# connections to the upstreams alive and splits 90/10 between them. For each
# response size (tiny, 4 KiB, 1 MiB) the proxies are measured in turn, round
# after round, with wrk; the proxy's CPU time per request is read from /proc.
#
# "relay" (bench/relay.c, built with cc) is not a proxy but the floor under
# them: a byte relay that makes only the socket calls every proxy must make
# (one read and one write per direction, epoll), with no HTTP at all. It
# gets its own upstream connection per client connection, chosen 90/10 per
# connection, and is measured like the proxies, at RELAY_SIZES only; it is
# left out of the tls and extra modes.
#
# Environment:
#   DURATION=10     seconds per measured wrk run
#   ROUNDS=3        measured runs per proxy and size (the median is reported)
#   WARMUP=1        seconds of wrk before every measured run
#   QUIET_WAIT=10   before every run, wait up to this many seconds for other
#                   work on the machine to settle (0: do not wait)
#   QUICK=1         smoke test: DURATION=2 ROUNDS=1 unless those are set
#   PROXIES="zdmd haproxy nginx relay"   which proxies to measure, in this
#                   order (extra and tls modes: "zdmd haproxy nginx"; relay
#                   is not measured there)
#   SIZES="tiny 4k 1m up1m"   up1m: a 1 MiB upload (POST) answered with 3 bytes
#   CONNS=50        wrk connections for tiny and 4k;  CONNS_1M=10 for 1m and up1m
#   ZDMD=path       zdmd binary (default: src/zdmd in the repository)
#   BASE_PORT=18080 ports used: BASE+1, BASE+2 upstreams; BASE+10.. proxies
#   CLIENT_CPU=0 PROXY_CPU=1   cores for wrk+upstream and for the proxy
#   HAPROXY_SPLICE=1  add "option splice-response" to HAProxy (off by default,
#                   as in HAProxy's own defaults)
#   KEEP_TMP=1      keep the temporary directory with all generated configs
#   OBS=1           plain mode: measure zdmd+obs too (0: do not)
#   OBS_SIZES="tiny 4k"   sizes at which zdmd+obs is measured
#   RELAY_SIZES="tiny 4k" sizes at which relay (the floor) is measured
#   TLS_TESTS="tiny ka close full resume"   tls mode: what to measure
#   TLS_KEY=ec      tls mode: ec (ECDSA P-256) or rsa (RSA 2048) certificates
#   EXTRA_TESTS="syscalls instructions allocs idle scaling"   extra and all
#                   modes: what to measure
#   NREQ=20000      requests of a fixed-count run (syscalls, allocs)
#   CG_REQUESTS=20000   callgrind: runs of N and 2N requests
#   CG_SIZES="tiny 4k"  callgrind: response sizes
#   CG_ROUTES="1 50"    callgrind, zdmd: tiny responses again with that many
#                       routes, the request matching the last one
#   IDLE_CONNS="10 1000 10000"   idle: connections held open
#   EXTRA_DURATION=5    idle and scaling: seconds per wrk run
#   SCALE_ROUNDS=3  scaling: measured runs per proxy and worker count
#
# Output: markdown tables on stdout, also written to bench/results/latest.md
# (latest-obs.md, latest-tls.md, latest-extra.md in those modes);
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
plain | obs | tls | extra | all) ;;
*)
	echo "usage: bench/run.sh [plain|obs|tls|extra|all]" >&2
	exit 2
	;;
esac

# The command line that reproduces this run, for the report.
COMMAND="bench/run.sh"
[[ $# -gt 0 ]] && COMMAND+=" $MODE"
# X_ENV: the settings that matter to one test of the extra mode.
X_ENV=""
for v in SCALE_ROUNDS EXTRA_DURATION IDLE_CONNS CG_SIZES CG_ROUTES CG_REQUESTS NREQ EXTRA_TESTS ZDMD QUIET_WAIT HAPROXY_SPLICE TLS_KEY TLS_TESTS RELAY_SIZES OBS_SIZES OBS SIZES PROXIES CONNS_1M CONNS WARMUP ROUNDS DURATION QUICK; do
	[[ -n ${!v+x} ]] && COMMAND="$v=\"${!v}\" $COMMAND"
	case $v in
	SCALE_ROUNDS | EXTRA_DURATION | IDLE_CONNS | CG_SIZES | CG_ROUTES | CG_REQUESTS | NREQ | ZDMD | QUIET_WAIT | PROXIES | CONNS | WARMUP | QUICK)
		[[ -n ${!v+x} ]] && X_ENV="$v=\"${!v}\" $X_ENV"
		;;
	esac
done

if [[ ${QUICK:-0} == 1 ]]; then
	DURATION=${DURATION:-2}
	ROUNDS=${ROUNDS:-1}
	NREQ=${NREQ:-2000}
	CG_REQUESTS=${CG_REQUESTS:-1000}
	IDLE_CONNS=${IDLE_CONNS:-10 1000}
	EXTRA_DURATION=${EXTRA_DURATION:-2}
	SCALE_ROUNDS=${SCALE_ROUNDS:-1}
fi
DURATION=${DURATION:-10}
ROUNDS=${ROUNDS:-3}
WARMUP=${WARMUP:-1}
QUIET_WAIT=${QUIET_WAIT:-10}
# DO_MAIN: the wrk measurements of plain, obs and tls; DO_EXTRA: the extra mode.
DO_MAIN=1
DO_EXTRA=0
case $MODE in
plain | all)
	PROXIES=${PROXIES:-zdmd haproxy nginx relay}
	SIZES=${SIZES:-tiny 4k 1m up1m}
	OBS=${OBS:-1}
	[[ $MODE == all ]] && DO_EXTRA=1
	;;
extra)
	PROXIES=${PROXIES:-zdmd haproxy nginx}
	SIZES="" # no plain wrk runs
	OBS=0
	DO_MAIN=0
	DO_EXTRA=1
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
RELAY_SIZES=${RELAY_SIZES:-tiny 4k}
TLS_KEY=${TLS_KEY:-ec}
CONNS=${CONNS:-50}
CONNS_1M=${CONNS_1M:-10}
ZDMD=${ZDMD:-$REPO_DIR/src/zdmd}
BASE_PORT=${BASE_PORT:-18080}
CLIENT_CPU=${CLIENT_CPU:-0}
PROXY_CPU=${PROXY_CPU:-1}
EXTRA_TESTS=${EXTRA_TESTS:-syscalls instructions allocs idle scaling}
NREQ=${NREQ:-20000}
CG_REQUESTS=${CG_REQUESTS:-20000}
CG_SIZES=${CG_SIZES:-tiny 4k}
CG_ROUTES=${CG_ROUTES:-1 50}
IDLE_CONNS=${IDLE_CONNS:-10 1000 10000}
EXTRA_DURATION=${EXTRA_DURATION:-5}
SCALE_ROUNDS=${SCALE_ROUNDS:-$ROUNDS}
NREQ_CONNS=50 # connections of every fixed-count run

HOST=127.0.0.1
PORT_OLD=$((BASE_PORT + 1))
PORT_NEW=$((BASE_PORT + 2))
declare -A PORT=([zdmd]=$((BASE_PORT + 10)) [haproxy]=$((BASE_PORT + 11)) [nginx]=$((BASE_PORT + 12)) [zdmd+obs]=$((BASE_PORT + 13))
	[relay]=$((BASE_PORT + 15)))
ADMIN_PORT=$((BASE_PORT + 14)) # admin listener of zdmd+obs
declare -A TLS_PORT=([zdmd]=$((BASE_PORT + 20)) [haproxy]=$((BASE_PORT + 21)) [nginx]=$((BASE_PORT + 22)))
# Extra mode: the instances started for one measurement (one at a time per
# proxy) on +30..+32, the scaling instances (1 and 2 workers) on +40..+45.
declare -A X_PORT=([zdmd]=$((BASE_PORT + 30)) [haproxy]=$((BASE_PORT + 31)) [nginx]=$((BASE_PORT + 32)))
declare -A SCALE_PORT=([zdmd/1]=$((BASE_PORT + 40)) [zdmd/2]=$((BASE_PORT + 41)) [haproxy/1]=$((BASE_PORT + 42))
	[haproxy/2]=$((BASE_PORT + 43)) [nginx/1]=$((BASE_PORT + 44)) [nginx/2]=$((BASE_PORT + 45)))
declare -A PATH_OF=([tiny]=/tiny [4k]=/4k [1m]=/1m [up1m]=/upload)
declare -A BYTES_OF=([tiny]=13 [4k]=4096 [1m]=1048576 [up1m]=3)
UPLOAD_LUA="$BENCH_DIR/upload.lua" # up1m: wrk POSTs 1 MiB bodies
# Workloads: the plain sizes, plus (tls mode) "close" = tiny with
# "Connection: close" over plain HTTP, and over TLS: "tls-ka" keep-alive,
# "tls-full" a full handshake per request, "tls-resume" a handshake per
# request with the session resumption wrk does by itself.
declare -A WL_PATH=([tiny]=/tiny [4k]=/4k [1m]=/1m [up1m]=/upload [close]=/tiny [tls-ka]=/tiny [tls-full]=/tiny [tls-resume]=/tiny)

RESULTS_DIR="$BENCH_DIR/results"
RAW="$RESULTS_DIR/raw"

declare -A PID=()     # name -> pid of every server we started
declare -A HELPER=()  # pid -> name of strace, perf and nreq -H while they run
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
X_NOTES=() # notes of the extra tests
xnote() {
	say "bench: note: $*"
	X_NOTES+=("$*")
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
	relay) [[ $MODE != tls ]] || die "relay (the floor, plain HTTP only) is not measured in tls mode" ;;
	*) die "unknown proxy '$p' in PROXIES (choose from: zdmd zdmd+obs haproxy nginx relay)" ;;
	esac
done
for s in $SIZES; do
	if [[ $MODE == tls ]]; then
		[[ -n ${WL_PATH[$s]:-} ]] || die "unknown workload '$s'"
	else
		[[ -n ${PATH_OF[$s]:-} ]] || die "unknown size '$s' in SIZES (choose from: tiny 4k 1m up1m)"
	fi
done
for s in $OBS_SIZES; do
	[[ -n ${PATH_OF[$s]:-} ]] || die "unknown size '$s' in OBS_SIZES (choose from: tiny 4k 1m)"
done
for s in $RELAY_SIZES; do
	[[ -n ${PATH_OF[$s]:-} ]] || die "unknown size '$s' in RELAY_SIZES (choose from: tiny 4k 1m up1m)"
done
# relay has no part in the extra tests, and is started only when one of
# SIZES is among RELAY_SIZES.
if [[ " $PROXIES " == *" relay "* ]]; then
	if [[ $MODE == extra ]]; then
		say "bench: relay is not measured in extra mode; left out"
		drop_proxy relay
	else
		relay_sizes=""
		for s in $SIZES; do [[ " $RELAY_SIZES " == *" $s "* ]] && relay_sizes+=" $s"; done
		if [[ -z $relay_sizes ]]; then
			note "relay skipped: none of SIZES ($SIZES) is in RELAY_SIZES ($RELAY_SIZES)"
			drop_proxy relay
		fi
	fi
fi
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

# Extra mode: check the settings; a test whose tool is missing is skipped
# with a note.
drop_test() { # drop_test TEST REASON
	local t kept=""
	for t in $EXTRA_TESTS; do [[ $t == "$1" ]] || kept+=" $t"; done
	[[ " $EXTRA_TESTS " == *" $1 "* ]] && xnote "$1 skipped: $2"
	EXTRA_TESTS=${kept# }
}
if ((DO_EXTRA)); then
	for t in $EXTRA_TESTS; do
		case $t in
		syscalls | instructions | allocs | idle | scaling) ;;
		*) die "unknown test '$t' in EXTRA_TESTS (choose from: syscalls instructions allocs idle scaling)" ;;
		esac
	done
	for v in NREQ CG_REQUESTS EXTRA_DURATION SCALE_ROUNDS; do
		[[ ${!v} =~ ^[0-9]+$ && ${!v} -gt 0 ]] || die "$v must be a positive integer"
	done
	for n in $IDLE_CONNS; do
		[[ $n =~ ^[0-9]+$ && $n -gt 0 ]] || die "IDLE_CONNS must hold positive integers"
	done
	for s in $CG_SIZES; do
		[[ -n ${PATH_OF[$s]:-} ]] || die "unknown size '$s' in CG_SIZES (choose from: tiny 4k 1m)"
	done
	if ! command -v cc >/dev/null 2>&1; then
		for t in syscalls instructions allocs idle; do
			drop_test $t "no C compiler for bench/nreq.c (apt-get install -y gcc)"
		done
	fi
	command -v strace >/dev/null 2>&1 || drop_test syscalls "strace not found (apt-get install -y strace)"
	command -v valgrind >/dev/null 2>&1 || drop_test instructions "valgrind not found (apt-get install -y valgrind)"
fi

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
if [[ " $PROXIES " == *" relay "* ]] && ! command -v cc >/dev/null 2>&1; then
	note "relay skipped: no C compiler for bench/relay.c (apt-get install -y gcc)"
	drop_proxy relay
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
	all+=("${!HELPER[@]}")
	if ((${#all[@]})); then
		kill -TERM "${all[@]}" 2>/dev/null || true
		for _ in $(seq 30); do
			local alive=0
			for pid in "${all[@]}"; do running "$pid" && alive=1; done
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

# running PID: the process exists and has not exited (a child that exited
# stays a zombie until it is waited for; kill -0 still succeeds on it).
running() {
	local stat
	stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
	stat=${stat##*) }
	[[ ${stat:0:1} != Z ]]
}

alive() { running "${PID[$1]}"; }

# wait_ready NAME PORT [LIMIT]: until GET /tiny answers 200, LIMIT seconds
# (default 10) at most; a LIMIT above 10 (a server under valgrind) also gives
# each attempt 10 s instead of 1.
wait_ready() {
	local name=$1 port=$2 limit=${3:-10} deadline code max=1
	deadline=$((SECONDS + limit))
	((limit > 10)) && max=10
	while ((SECONDS < deadline)); do
		if ! alive "$name"; then
			obituary "$name"
			return 1
		fi
		code=$(curl -s -o /dev/null -w '%{http_code}' --max-time $max "http://$HOST:$port/tiny" || true)
		[[ $code == 200 ]] && return 0
		sleep 0.1
	done
	say "bench: $name did not answer 200 on $HOST:$port/tiny within $limit s (last status: ${code:-none})"
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
	if ((DO_EXTRA)); then
		echo "${X_PORT[@]}" "${SCALE_PORT[@]}"
	fi
	return 0
}
for port in $(ports_used); do
	port_busy "$port" && die "port $port on $HOST is already in use (choose other ports with BASE_PORT=...)"
done

mkdir -p "$WORK/upstream/www" "$WORK/upstream/tmp" "$WORK/nginx/tmp" "$WORK/haproxy" "$WORK/zdmd" "$WORK/zdmd-obs" "$WORK/tls"
# Run a private copy of zdmd, so a rebuild during the run changes nothing.
if [[ " $PROXIES " == *" zdmd"* ]]; then
	cp "$ZDMD" "$WORK/zdmd/zdmd"
	# its zdmctl (the rollout's measure starts one), when there is one
	[[ -x $(dirname "$ZDMD")/zdmctl ]] && cp "$(dirname "$ZDMD")/zdmctl" "$WORK/zdmd/zdmctl"
	ZDMD_SRC=$ZDMD
	ZDMD_ID="$ZDMD_SRC as of $(date -u -r "$ZDMD_SRC" '+%Y-%m-%d %H:%M:%S UTC'), sha256 $(sha256sum "$WORK/zdmd/zdmd" | cut -c1-12)"
	ZDMD=$WORK/zdmd/zdmd
fi
# relay: built into the temporary directory, as nreq.c and malloc-count.c
# are for the extra mode.
RELAY=$WORK/relay
if [[ " $PROXIES " == *" relay "* ]]; then
	RELAY_ID="sha256 $(sha256sum "$BENCH_DIR/relay.c" | cut -c1-12)"
	if ! cc -O2 -o "$RELAY" "$BENCH_DIR/relay.c" >"$RAW/relay-build.log" 2>&1; then
		note "relay skipped: bench/relay.c did not build (see bench/results/raw/relay-build.log)"
		drop_proxy relay
		[[ -n $PROXIES ]] || die "no proxy left to measure"
	fi
fi
head -c 4096 /dev/zero | tr '\0' 'a' >"$WORK/upstream/www/4k"
head -c 1048576 /dev/zero | tr '\0' 'b' >"$WORK/upstream/www/1m"
printf 'ok\n' >"$WORK/upstream/www/upload" # up1m's answer (see upstream_server)
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

source "$BENCH_DIR/configs.sh"

upstream_config >"$WORK/upstream/nginx.conf"

haproxy_tls_port=""
[[ $MODE == tls ]] && haproxy_tls_port=${TLS_PORT[haproxy]}
haproxy_config "${PORT[haproxy]}" "$haproxy_tls_port" >"$WORK/haproxy/haproxy.cfg"

nginx_tls_port=""
[[ $MODE == tls ]] && nginx_tls_port=${TLS_PORT[nginx]}
nginx_config "$WORK/nginx" "$RAW/nginx.error.log" "${PORT[nginx]}" "$nginx_tls_port" >"$WORK/nginx/nginx.conf"

# zdmd+obs is zdmd with the admin listener (scraped every second during its
# runs) and a text access log written to a file.
ACCESS_LOG=$WORK/zdmd-obs/access.log
zdmd_config zdmd "$WORK/zdmd" >"$WORK/zdmd/zdm.yaml"
zdmd_config zdmd+obs "$WORK/zdmd-obs" >"$WORK/zdmd-obs/zdm.yaml"

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
[[ $MODE == extra ]] && CHECK_SIZES="tiny 4k"
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
	relay) start relay "$PROXY_CPU" "$RELAY" "${PORT[relay]}" "$PORT_OLD" "$PORT_NEW" 90 10 ;;
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
	# relay chooses the upstream per connection, not per request: the 200
	# requests of the split check share one connection and one upstream, so
	# the check does not apply to it.
	if [[ $p != relay ]]; then
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

conns_for() { [[ $1 == 1m || $1 == up1m ]] && echo "$CONNS_1M" || echo "$CONNS"; }

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
	# An upload of UPLOAD_BYTES per request.
	if [[ $size == up1m ]]; then
		args=(-s "$UPLOAD_LUA")
		wrk_cmd="wrk -s bench/upload.lua -t1 -c$c"
	fi
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
	[[ ${UNPINNED:-0} == 1 ]] && same=2 # the server may run on any core
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
# only for plain HTTP; zdmd+obs only at OBS_SIZES, relay at RELAY_SIZES).
wanted() {
	case $1 in
	direct) [[ $2 != tls-* ]] ;;
	zdmd+obs) [[ " $OBS_SIZES " == *" $2 "* ]] ;;
	relay) [[ " $RELAY_SIZES " == *" $2 "* ]] ;;
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
((DO_MAIN)) && say "bench: $runs runs of ${DURATION}s (+${WARMUP}s warm-up each), about $((runs * (DURATION + WARMUP + 1) / 60 + 1)) min"

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

# ------------------------------------------------------------ extra mode
#
# Each test starts instances of its own (ports X_PORT, SCALE_PORT) with the
# same configs as above, limits raised for 10,000+ client connections, and
# stops them when done; "syscalls" attaches to the proxies started above.
# Results go to extra.tsv as lines "test, proxy, key, k=v k=v ...".

X_TSV=$RAW/extra.tsv
SCALE_TSV=$RAW/scaling.tsv # wrk runs of the scaling test, in the format of results.tsv
IDLE_TSV=$RAW/idle.tsv     # wrk runs of the idle test, likewise
X_PROXIES="" # the proxies of the plain mode, without zdmd+obs and relay
for p in $PROXIES; do [[ $p == zdmd+obs || $p == relay ]] || X_PROXIES+=" $p"; done
X_PROXIES=${X_PROXIES# }
FD_HARD=$(ulimit -Hn)
[[ $FD_HARD == unlimited ]] && FD_HARD=1048576
X_MAXCONN=20000      # zdmd limits.max_connections and HAProxy maxconn
X_NGINX_CONNS=20480  # NGINX worker_connections (client and upstream connections)
X_NOFILE=$((FD_HARD < 65536 ? FD_HARD : 65536))
NREQ_BIN=$WORK/nreq
MC_SO=$WORK/malloc-count.so
declare -A X_SECONDS=() # test -> seconds it took

xrec() { # xrec TEST PROXY KEY VALUE
	printf '%s\t%s\t%s\t%s\n' "$1" "$2" "$3" "$4" >>"$X_TSV"
}

# x_config KIND NAME PORT WORKERS [MASTER]: write the config of an extra
# instance into $WORK/x/NAME/ and print its path.
x_config() {
	local kind=$1 name=$2 port=$3 workers=$4 master=${5:-on} dir=$WORK/x/$2 conf
	mkdir -p "$dir/tmp"
	case $kind in
	zdmd)
		conf=$dir/zdm.yaml
		zdmd_config zdmd "$dir" "$port" "" "$workers" "$X_MAXCONN" >"$conf"
		;;
	haproxy)
		conf=$dir/haproxy.cfg
		haproxy_config "$port" "" "$workers" "$X_MAXCONN" >"$conf"
		;;
	nginx)
		conf=$dir/nginx.conf
		nginx_config "$dir" "$RAW/$name.error.log" "$port" "" "$workers" "$X_NGINX_CONNS" "$X_NOFILE" "$master" >"$conf"
		;;
	esac
	chmod -R a+rX "$dir"
	cp "$conf" "$RAW/$name-$(basename "$conf")"
	echo "$conf"
}

# x_start NAME KIND CONF CPUS [PREFIX...]: start an instance with the
# open-file limit raised to the hard limit; PREFIX (env ..., valgrind ...)
# comes before the server's command.
x_start() {
	local name=$1 kind=$2 conf=$3 cpus=$4
	shift 4
	local -a cmd
	case $kind in
	zdmd) cmd=("$ZDMD" -c "$conf") ;;
	haproxy) cmd=(haproxy -db -f "$conf") ;;
	nginx) cmd=(nginx -e "$RAW/$name.error.log" -p "$(dirname "$conf")" -c "$conf") ;;
	esac
	# shellcheck disable=SC2016
	start "$name" "$cpus" bash -c 'ulimit -Sn "$(ulimit -Hn)" 2>/dev/null; exec "$@"' bash "$@" "${cmd[@]}"
}

# x_stop NAME [LIMIT]: SIGTERM, wait LIMIT seconds (default 10) for the exit,
# then SIGKILL. Sets X_EXIT to the exit status.
x_stop() {
	local name=$1 limit=${2:-10} pid=${PID[$1]:-} deadline
	X_EXIT=0
	[[ -n $pid ]] || return 0
	local -a all
	mapfile -t all < <(pids_of "$pid")
	kill -TERM "${all[@]}" 2>/dev/null || true
	deadline=$((SECONDS + limit))
	while running "$pid" && ((SECONDS < deadline)); do sleep 0.1; done
	if running "$pid"; then
		say "bench: $name did not exit within ${limit}s of SIGTERM; killing it"
	fi
	kill -KILL "${all[@]}" 2>/dev/null || true
	wait "$pid" 2>/dev/null || X_EXIT=$?
	unset "PID[$name]"
}

# run_nreq PORT PATH REQUESTS OUT: a fixed-count run of nreq on the client's
# core; true when every request was answered 200.
run_nreq() {
	local port=$1 path=$2 n=$3 out=$4
	taskset -c "$CLIENT_CPU" timeout 900 "$NREQ_BIN" -c "$NREQ_CONNS" -n "$n" -t 600 "$HOST" "$port" "$path" >"$out" 2>&1 || true
	grep -q "^requests $n errors 0 " "$out"
}

# stop_helper PID [SIGNAL]: signal (default INT: strace and perf then print
# their counts) a helper we started, wait 20 s at most for it, and reap it.
stop_helper() {
	local pid=$1 sig=${2:-INT} deadline
	kill -"$sig" "$pid" 2>/dev/null || true
	deadline=$((SECONDS + 20))
	while running "$pid" && ((SECONDS < deadline)); do sleep 0.1; done
	kill -KILL "$pid" 2>/dev/null || true
	wait "$pid" 2>/dev/null || true
	unset "HELPER[$pid]"
}

rss_kb() { # "Rss Pss" in kB, from smaps_rollup, of a server and its children
	local rss=0 pss=0 pid r p
	for pid in $(pids_of "$1"); do
		read -r r p < <(awk '$1 == "Rss:" { r = $2 } $1 == "Pss:" { p = $2 } END { print r + 0, p + 0 }' \
			"/proc/$pid/smaps_rollup" 2>/dev/null || echo "0 0")
		rss=$((rss + r))
		pss=$((pss + p))
	done
	echo "$rss $pss"
}

task_ticks() { # "tid:ticks" (utime+stime) of every thread of a server and its children
	local pid task stat rest
	local -a f
	for pid in $(pids_of "$1"); do
		for task in /proc/"$pid"/task/*; do
			stat=$(cat "$task/stat" 2>/dev/null) || continue
			rest=${stat##*) }
			read -r -a f <<<"$rest"
			printf '%s:%s ' "${task##*/}" $((f[11] + f[12]))
		done
	done
}

# syscalls: strace -c -f attached to the running proxy (every process and
# thread) over NREQ keep-alive requests for /tiny on NREQ_CONNS connections.
# Then, when perf is there, the same run counted by perf stat on the
# syscall tracepoints, which does not slow the proxy down as strace does.
x_syscalls() {
	local p=$1 pid spid deadline n e events plist
	local out=$RAW/strace-$p.txt err=$RAW/strace-$p.stderr
	local port=${PORT[$p]}
	local -a pargs=()
	run_nreq "$port" /tiny $((NREQ / 10 > 1000 ? NREQ / 10 : 1000)) "$RAW/syscalls-$p.warmup.txt" ||
		xnote "syscalls, $p: the warm-up run had errors ($(head -n 1 "$RAW/syscalls-$p.warmup.txt"))"
	for pid in $(pids_of "${PID[$p]}"); do pargs+=(-p "$pid"); done
	strace -c -f -o "$out" "${pargs[@]}" 2>"$err" &
	spid=$!
	HELPER[$spid]=strace
	# strace reports on stderr each process it has attached to.
	deadline=$((SECONDS + 10))
	while :; do
		n=$(grep -c 'attached' "$err" 2>/dev/null || true)
		((${n:-0} >= ${#pargs[@]} / 2 || SECONDS >= deadline)) && break
		sleep 0.1
	done
	sleep 0.5
	run_nreq "$port" /tiny "$NREQ" "$RAW/syscalls-$p.nreq.txt" ||
		xnote "syscalls, $p: the measured run had errors ($(head -n 1 "$RAW/syscalls-$p.nreq.txt"))"
	sleep 0.3
	stop_helper "$spid"
	n=$(awk '$1 == "requests" { print $2 }' "$RAW/syscalls-$p.nreq.txt")
	xrec syscalls "$p" run "requests=${n:-0} conns=$NREQ_CONNS file=$out processes=$((${#pargs[@]} / 2))"
	say "bench: syscalls $p (strace): $(python3 "$LIB" strace-line "$out" "${n:-0}")"
	command -v perf >/dev/null 2>&1 || return 0
	events=raw_syscalls:sys_enter
	# The list of tracepoints is in tracefs, which may not be mounted
	# until something (perf itself, the first time) mounts it: without
	# it, only the total would be counted.
	local avail=/sys/kernel/tracing/available_events
	[[ -r $avail ]] || mount -t tracefs tracefs /sys/kernel/tracing 2>/dev/null || true
	[[ -r $avail ]] || avail=/sys/kernel/debug/tracing/available_events
	for e in read readv recvfrom recvmsg write writev sendto sendmsg epoll_wait epoll_pwait epoll_pwait2 epoll_ctl; do
		grep -qx "syscalls:sys_enter_$e" "$avail" 2>/dev/null && events+=",syscalls:sys_enter_$e"
	done
	[[ $events == *,* ]] || xnote "syscalls, $p: no syscall tracepoints found ($avail): perf counted the total only"
	plist=$(pids_of "${PID[$p]}" | paste -sd,)
	out=$RAW/perf-$p.txt
	perf stat -x, -o "$out" -e "$events" -p "$plist" 2>"$RAW/perf-$p.stderr" &
	spid=$!
	HELPER[$spid]=perf
	sleep 1
	run_nreq "$port" /tiny "$NREQ" "$RAW/syscalls-$p.perf-nreq.txt" ||
		xnote "syscalls, $p: the run counted by perf had errors ($(head -n 1 "$RAW/syscalls-$p.perf-nreq.txt"))"
	sleep 0.3
	stop_helper "$spid"
	n=$(awk '$1 == "requests" { print $2 }' "$RAW/syscalls-$p.perf-nreq.txt")
	if grep -q ',raw_syscalls:sys_enter,' "$out" 2>/dev/null; then
		xrec syscalls "$p" perf "requests=${n:-0} file=$out"
		say "bench: syscalls $p (perf): $(python3 "$LIB" perf-line "$out" "${n:-0}")"
	else
		xnote "syscalls, $p: perf stat counted nothing (see bench/results/raw/perf-$p.stderr)"
	fi
}

# instructions: callgrind (no cache or branch simulation) runs the proxy in
# the foreground twice, for CG_REQUESTS and for 2 x CG_REQUESTS requests;
# the difference of the totals over CG_REQUESTS is the cost of one request,
# without start-up, connection set-up and exit.
x_instructions() {
	local p=$1 size r conf
	local name=x-cg-$p
	conf=$(x_config "$p" "$name" "${X_PORT[$p]}" 1 off)
	for size in $CG_SIZES; do
		x_callgrind "$p" "$name" "$conf" "$size" "$size" || return 0
	done
	[[ $p == zdmd ]] || return 0
	for r in $CG_ROUTES; do
		conf=$(ZDMD_ROUTES=$r x_config "$p" "$name-routes$r" "${X_PORT[$p]}" 1 off)
		x_callgrind "$p" "$name-routes$r" "$conf" tiny "tiny-routes$r" || return 0
	done
	# A rollout running (analysed every second) over the same split.
	conf=$(ZDMD_ROLLOUT=1 x_config "$p" "$name-rollout" "${X_PORT[$p]}" 1 off)
	X_AFTER_READY="$(dirname "$ZDMD")/zdmctl -s $WORK/x/$name-rollout/zdm.sock rollout start" \
		x_callgrind "$p" "$name-rollout" "$conf" tiny "tiny-rollout" || return 0
}

# x_callgrind PROXY NAME CONF SIZE KEY: the two runs of x_instructions,
# recorded under KEY. Returns 1 when the proxy did not come up.
x_callgrind() {
	local p=$1 name=$2 conf=$3 size=$4 key=$5 n out ir rc
	local port=${X_PORT[$p]}
	for n in "$CG_REQUESTS" $((2 * CG_REQUESTS)); do
		out=$RAW/callgrind-$p-$key-$n.out
		rm -f "$out"
		x_start "$name" "$p" "$conf" "$PROXY_CPU" valgrind --tool=callgrind --collect-atstart=yes \
			--cache-sim=no --branch-sim=no --trace-children=no --callgrind-out-file="$out"
		if ! wait_ready "$name" "$port" 120; then
			xnote "instructions, $p: did not come up under valgrind (see bench/results/raw/$name.stderr)"
			x_stop "$name" 60
			return 1
		fi
		rc=0
		if [[ -n ${X_AFTER_READY:-} ]] && ! $X_AFTER_READY >"$RAW/callgrind-$p-$key-$n.ready.txt" 2>&1; then
			xnote "instructions, $p, $key: '$X_AFTER_READY' failed ($(head -n 1 "$RAW/callgrind-$p-$key-$n.ready.txt"))"
			x_stop "$name" 120
			continue
		fi
		run_nreq "$port" "${PATH_OF[$size]}" "$n" "$RAW/callgrind-$p-$key-$n.nreq.txt" || rc=1
		x_stop "$name" 120
		cp "$RAW/$name.stderr" "$RAW/callgrind-$p-$key-$n.stderr" 2>/dev/null || true
		if ((rc)); then
			xnote "instructions, $p, $key: the run of $n requests had errors ($(head -n 1 "$RAW/callgrind-$p-$key-$n.nreq.txt"))"
			continue
		fi
		ir=$(awk '$1 == "totals:" { print $2 }' "$out" 2>/dev/null || true)
		if [[ -z $ir ]]; then
			xnote "instructions, $p, $key: callgrind wrote no totals for the run of $n requests (exit status $X_EXIT)"
			continue
		fi
		xrec instructions "$p" "$key" "requests=$n ir=$ir"
		say "bench: instructions $p $key: $n requests, $ir instructions in all (exit status $X_EXIT)"
	done
}

# allocs: the proxy runs with malloc-count.so preloaded. After a warm-up of
# NREQ requests the counters are read around two keep-alive runs of NREQ
# requests (NREQ_CONNS connections each) and around a connection churn of
# CHURN_RUNS x NREQ_CONNS connections that make one request each.
CHURN_RUNS=20
x_allocs() {
	local p=$1 conf c0 c1 c2 c3 ok=1 i
	local name=x-mc-$p cnt=$WORK/x/mc-$p.counts
	local port=${X_PORT[$p]}
	conf=$(x_config "$p" "$name" "$port" 1)
	rm -f "$cnt"
	x_start "$name" "$p" "$conf" "$PROXY_CPU" env "MALLOC_COUNT_FILE=$cnt" "LD_PRELOAD=$MC_SO"
	if ! wait_ready "$name" "$port"; then
		xnote "allocs, $p: did not come up with malloc-count.so preloaded (see bench/results/raw/$name.stderr)"
		x_stop "$name"
		return 0
	fi
	if [[ ! -s $cnt ]]; then
		xnote "allocs, $p: malloc-count.so wrote no counter file"
		x_stop "$name"
		return 0
	fi
	run_nreq "$port" /tiny "$NREQ" "$RAW/allocs-$p.warmup.txt" || ok=0
	sleep 0.3
	c0=$(python3 "$LIB" malloc-counts "$cnt")
	run_nreq "$port" /tiny "$NREQ" "$RAW/allocs-$p.run1.txt" || ok=0
	sleep 0.3
	c1=$(python3 "$LIB" malloc-counts "$cnt")
	run_nreq "$port" /tiny "$NREQ" "$RAW/allocs-$p.run2.txt" || ok=0
	sleep 0.3
	c2=$(python3 "$LIB" malloc-counts "$cnt")
	for i in $(seq "$CHURN_RUNS"); do
		run_nreq "$port" /tiny "$NREQ_CONNS" "$RAW/allocs-$p.churn.txt" || ok=0
	done
	sleep 0.3
	c3=$(python3 "$LIB" malloc-counts "$cnt")
	x_stop "$name"
	((ok)) || xnote "allocs, $p: some runs had errors (see bench/results/raw/allocs-$p.*.txt)"
	xrec allocs "$p" run "requests=$NREQ conns=$NREQ_CONNS churn=$((CHURN_RUNS * NREQ_CONNS))"
	xrec allocs "$p" c0 "$c0"
	xrec allocs "$p" c1 "$c1"
	xrec allocs "$p" c2 "$c2"
	xrec allocs "$p" c3 "$c3"
	say "bench: allocs $p: $(python3 "$LIB" allocs-line "$c0" "$c1" "$c2" "$c3" "$NREQ" "$NREQ_CONNS" $((CHURN_RUNS * NREQ_CONNS)))"
}

# idle: a fresh instance per count; after a warm-up, N connections each send
# one request and stay open (nreq -H); the RSS before and after, then a wrk
# run with the N connections still open.
x_idle() {
	local p=$1 conf n hout hpid deadline rss0 rss1 rss2 held closed
	local name=x-idle-$p
	local port=${X_PORT[$p]}
	conf=$(x_config "$p" "$name" "$port" 1)
	for n in $IDLE_CONNS; do
		if ((n + 200 > FD_HARD)); then
			xnote "idle, $n connections: skipped, the open-file limit (ulimit -Hn) is $FD_HARD"
			continue
		fi
		x_start "$name" "$p" "$conf" "$PROXY_CPU"
		if ! wait_ready "$name" "$port"; then
			xnote "idle, $p: did not come up (see bench/results/raw/$name.stderr)"
			x_stop "$name"
			return 0
		fi
		run_nreq "$port" /tiny 1000 "$RAW/idle-$p-$n.warmup.txt" || true
		sleep 0.5
		rss0=$(rss_kb "${PID[$name]}")
		hout=$RAW/idle-$p-$n.hold.txt
		taskset -c "$CLIENT_CPU" timeout $((300 + EXTRA_DURATION)) "$NREQ_BIN" -H -c "$n" -p 50 -t $((240 + EXTRA_DURATION)) \
			"$HOST" "$port" /tiny >"$hout" 2>&1 &
		hpid=$!
		HELPER[$hpid]=nreq
		deadline=$((SECONDS + 120))
		while ! grep -q '^held' "$hout" 2>/dev/null && running "$hpid" && ((SECONDS < deadline)); do sleep 0.1; done
		sleep 1
		rss1=$(rss_kb "${PID[$name]}")
		held=$(awk '$1 == "held" { print $2; exit }' "$hout")
		say "bench: idle $p: $n connections held: ${held:-0}, RSS ${rss0% *} -> ${rss1% *} kB"
		# The wrk run, as in plain mode (warm-up, CPU time, other load), into idle.tsv.
		if ! DURATION=$EXTRA_DURATION RESULTS=$IDLE_TSV measure "x-idle-$p-$n" "$name" "$port" tiny 1; then
			say "bench: $name died $DEATH tiny with $n connections held"
			obituary "$name"
			xnote "idle, $p: died $DEATH the wrk run with $n connections held (see bench/results/raw/)"
		fi
		rss2=$(rss_kb "${PID[$name]}")
		stop_helper "$hpid" TERM
		closed=$(awk '$1 == "closed_by_server" { print $2 }' "$hout")
		x_stop "$name"
		xrec idle "$p" "$n" "rss0=${rss0% *} pss0=${rss0#* } rss1=${rss1% *} pss1=${rss1#* } rss2=${rss2% *} held=${held:-0} closed=${closed:-0}"
		[[ ${held:-0} == "$n" ]] || xnote "idle, $p: only ${held:-0} of $n connections were held open ($(head -n 1 "$hout"))"
		[[ ${closed:-0} == 0 ]] || xnote "idle, $p: the proxy closed $closed of the $n idle connections during the wrk run"
	done
}

# scaling: 1 and 2 workers (zdmd workers, HAProxy nbthread, NGINX
# worker_processes), the proxy free to run on every core; wrk and the upstream
# stay on the client's core. Interleaved rounds, as in plain mode.
x_scaling() {
	local p w name cpus="0-$((CORES - 1))" round a0 a1 ok
	local -a names=()
	for p in $X_PROXIES; do
		for w in 1 2; do
			name=x-$p-w$w
			x_start "$name" "$p" "$(x_config "$p" "$name" "${SCALE_PORT[$p/$w]}" "$w")" "$cpus"
		done
	done
	for p in $X_PROXIES; do
		for w in 1 2; do
			name=x-$p-w$w
			if wait_ready "$name" "${SCALE_PORT[$p/$w]}"; then
				names+=("$name")
			else
				xnote "scaling, $p with $w workers: did not come up (see bench/results/raw/$name.stderr)"
			fi
		done
	done
	for round in $(seq "$SCALE_ROUNDS"); do
		for name in "${names[@]}"; do
			[[ -n ${FAILED[$name]:-} ]] && continue
			p=${name#x-}
			p=${p%-w*}
			w=${name##*-w}
			a0=$(task_ticks "${PID[$name]}")
			ok=1
			UNPINNED=1 DURATION=$EXTRA_DURATION RESULTS=$SCALE_TSV measure "$name" "$name" "${SCALE_PORT[$p/$w]}" tiny "$round" || ok=0
			if ((!ok)); then
				FAILED[$name]=1
				say "bench: $name died $DEATH tiny round $round"
				obituary "$name"
				xnote "scaling: $p with $w workers died $DEATH round $round (see bench/results/raw/)"
				continue
			fi
			a1=$(task_ticks "${PID[$name]}")
			xrec scaling "$name" "round$round" "proxy=$p workers=$w before=${a0// /,} after=${a1// /,}"
		done
		alive upstream || die "the upstream nginx died (see $RAW/upstream.error.log)"
	done
	for name in "${names[@]}"; do x_stop "$name"; done
}

if ((DO_EXTRA)); then
	: >"$X_TSV"
	printf '# %s\n' "$(tr '\n' '\t' <<<"size proxy round requests rps p99_ms errors server_ticks upstream_ticks wrk_s clk_tck same_core
c_busy c_irq c_steal c_total p_busy p_irq p_steal p_total peak_rss_kb tls_conns tls_resumed scrapes scrape_errors log_lines" | tr ' ' '\t')" >"$SCALE_TSV"
	cp "$SCALE_TSV" "$IDLE_TSV"
	need_nreq=0
	for t in syscalls instructions allocs idle; do [[ " $EXTRA_TESTS " == *" $t "* ]] && need_nreq=1; done
	if ((need_nreq)); then
		cc -O2 -o "$NREQ_BIN" "$BENCH_DIR/nreq.c" >"$RAW/nreq-build.log" 2>&1 ||
			die "bench/nreq.c did not build (see $RAW/nreq-build.log)"
	fi
	if [[ " $EXTRA_TESTS " == *" allocs "* ]] &&
		! cc -shared -fPIC -O2 -o "$MC_SO" "$BENCH_DIR/malloc-count.c" -ldl >"$RAW/malloc-count-build.log" 2>&1; then
		drop_test allocs "bench/malloc-count.c did not build (see bench/results/raw/malloc-count-build.log)"
	fi
	say "bench: extra tests: $EXTRA_TESTS; proxies: $X_PROXIES"
	for t in $EXTRA_TESTS; do
		t0=$SECONDS
		say "bench: ---- $t"
		for p in $X_PROXIES; do
			case $t in
			syscalls) x_syscalls "$p" ;;
			instructions) x_instructions "$p" ;;
			allocs) x_allocs "$p" ;;
			idle) x_idle "$p" ;;
			esac
			alive upstream || die "the upstream nginx died (see $RAW/upstream.error.log)"
		done
		[[ $t == scaling ]] && x_scaling
		X_SECONDS[$t]=$((SECONDS - t0))
		say "bench: $t took ${X_SECONDS[$t]} s"
	done
fi

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
	[[ " $PROXIES " == *" relay "* ]] && echo "relay_sizes=$RELAY_SIZES"
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
	if [[ " $PROXIES " == *" relay "* ]]; then
		echo "version=relay: bench/relay.c ($RELAY_ID) built with $(cc --version 2>&1 | head -n 1) -O2"
	fi
	echo "version=$(nginx -v 2>&1 | head -n 1)"
	echo "version=$(wrk -v 2>&1 | head -n 1 | sed 's/ *Copyright.*//')"
	echo "version=$(python3 --version 2>&1)"
	if ((DO_EXTRA)); then
		echo "version=$(valgrind --version 2>&1 | head -n 1)"
		echo "version=$(strace -V 2>&1 | head -n 1)"
		echo "version=$(cc --version 2>&1 | head -n 1) (builds nreq.c and malloc-count.c with -O2)"
		# Short versions, repeated under every table of the extra report.
		[[ " $PROXIES " == *" zdmd"* ]] && echo "xversion=zdmd $("$ZDMD" -V 2>&1 | awk 'NR == 1 { print $2 }') (sha256 ${ZDMD_ID##*sha256 })"
		command -v haproxy >/dev/null && echo "xversion=HAProxy $(haproxy -v 2>&1 | awk 'NR == 1 { print $3 }')"
		echo "xversion=nginx $(nginx -v 2>&1 | sed -n 's|.*nginx/||p')"
		echo "xversion=wrk $(wrk -v 2>&1 | awk 'NR == 1 { print $2 }')"
		echo "xversion=valgrind $(valgrind --version 2>&1 | sed 's/^valgrind-//')"
		echo "xversion=strace $(strace -V 2>&1 | awk 'NR == 1 { print $4 }')"
		echo "x_env=$X_ENV"
		echo "x_proxies=$X_PROXIES"
		echo "extra_tests=$EXTRA_TESTS"
		echo "nreq=$NREQ"
		echo "nreq_conns=$NREQ_CONNS"
		echo "churn=$((CHURN_RUNS * NREQ_CONNS))"
		echo "cg_requests=$CG_REQUESTS"
		echo "cg_sizes=$CG_SIZES"
		echo "cg_routes=$CG_ROUTES"
		echo "idle_conns=$IDLE_CONNS"
		echo "extra_duration=$EXTRA_DURATION"
		echo "scale_rounds=$SCALE_ROUNDS"
		echo "x_maxconn=$X_MAXCONN"
		echo "x_nginx_conns=$X_NGINX_CONNS"
		echo "fd_hard=$FD_HARD"
		for t in "${!X_SECONDS[@]}"; do echo "x_seconds=$t ${X_SECONDS[$t]}"; done
		for n in "${X_NOTES[@]}"; do echo "xnote=$n"; done
	fi
} >"$META"

# plain, obs and tls write latest.md, latest-obs.md, latest-tls.md; extra
# writes latest-extra.md; all writes both reports, one after the other, to
# latest.md.
report=""
((DO_MAIN)) && report=$(python3 "$LIB" report "$RESULTS" "$META")
if ((DO_EXTRA)); then
	xreport=$(python3 "$LIB" extra-report "$X_TSV" "$SCALE_TSV" "$IDLE_TSV" "$META")
	report=${report:+$report$'\n\n'}$xreport
fi
LATEST=$RESULTS_DIR/latest.md
[[ $MODE != plain && $MODE != all ]] && LATEST=$RESULTS_DIR/latest-$MODE.md
printf '%s\n' "$report" >"$LATEST"
printf '%s\n' "$report"
say "bench: table written to $LATEST; raw output in $RAW/"
exit 0
}
