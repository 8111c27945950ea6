#!/usr/bin/env bash
# fuzz/run.sh [SECONDS] [BUILD-DIR] [DRIVER...] — runs the libFuzzer drivers
# that `make fuzz` built in BUILD-DIR/fuzz/ (default: the current
# directory), each for SECONDS (default 30) on a copy of its seed corpus
# fuzz/corpus/DRIVER/ in a temporary directory, so that the tree's corpus is
# never changed. Prints TAP, one test point per driver; exits non-zero when
# any driver crashed, leaked, timed out or ran out of memory.
#
# It builds nothing: run `make fuzz` in BUILD-DIR first (see fuzz/README).
#
# Environment:
#   FUZZ_JOBS       drivers run at the same time (default 2), one worker each
#   FUZZ_ARTIFACTS  where the inputs of failures are kept (default
#                   BUILD-DIR/fuzz/artifacts); never removed by this script
#   FUZZ_FLAGS      more libFuzzer flags for every driver
set -uo pipefail

here=$(cd "$(dirname "$0")" && pwd)
secs=${1:-30}
build=${2:-.}
shift $(($# < 2 ? $# : 2))
jobs_max=${FUZZ_JOBS:-2}

case $secs in '' | *[!0-9]*) echo "usage: $0 [SECONDS] [BUILD-DIR] [DRIVER...]" >&2; exit 2 ;; esac
build=$(cd "$build" 2>/dev/null && pwd) || { echo "Bail out! no build directory ${2:-.}"; exit 2; }
arts=${FUZZ_ARTIFACTS:-$build/fuzz/artifacts}

if [ $# -gt 0 ]; then
	drivers=("$@")
else
	drivers=()
	for f in "$here"/fuzz_*.c; do
		n=${f##*/}
		drivers+=("${n%.c}")
	done
fi
for d in "${drivers[@]}"; do
	if [ ! -x "$build/fuzz/$d" ]; then
		echo "Bail out! $build/fuzz/$d is not built: run 'make fuzz' in $build first"
		exit 2
	fi
done
mkdir -p "$arts" || { echo "Bail out! cannot create $arts"; exit 2; }
arts=$(cd "$arts" && pwd)

# One stack trace for an error UBSan finds (the build does not recover).
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}

tmp=$(mktemp -d "${TMPDIR:-/tmp}/zdm-fuzz.XXXXXX") || exit 2
cleanup() { # stops the drivers still running (each under its timeout)
	local p
	for p in "$tmp"/*/pid; do
		[ -e "$p" ] && [ ! -e "${p%/pid}/rc" ] && kill "$(cat "$p")" 2>/dev/null
	done
	wait 2>/dev/null
	rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# run_one INDEX DRIVER: one driver in its own directory; leaves rc, the
# elapsed seconds and the log there, then "done".
run_one() {
	local i=$1 d=$2 w=$tmp/$2 start rc dict=()
	mkdir -p "$w/corpus" "$w/art"
	if [ -d "$here/corpus/$d" ]; then
		cp -R "$here/corpus/$d/." "$w/corpus/"
	fi
	if [ -f "$here/$d.dict" ]; then
		dict=("-dict=$here/$d.dict")
	fi
	start=$(date +%s)
	# (timeout: a stuck run must not hold CI; libFuzzer stops at SECONDS)
	(cd "$w" && exec timeout -k 10 $((secs + 120)) "$build/fuzz/$d" \
		-max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
		-artifact_prefix="$w/art/" "${dict[@]}" ${FUZZ_FLAGS:-} corpus) \
		</dev/null >"$w/log" 2>&1 &
	echo $! >"$w/pid"
	wait $!
	rc=$?
	echo $(($(date +%s) - start)) >"$w/secs"
	echo "$rc" >"$w/rc"
	: >"$w/done"
}

# show_failure LOG: the report of a failure, as TAP comments: from the
# first line of the sanitizer's or the driver's report on (at most 80
# lines, without ASan's shadow map), then what libFuzzer says at the end.
show_failure() {
	local at
	at=$(grep -n -m 1 -E '==ERROR|==fuzz==|runtime error:|^ALARM:|ERROR: libFuzzer|ERROR: LeakSanitizer' "$1" |
		cut -d: -f1)
	if [ -z "$at" ]; then
		tail -n 40 "$1" | sed 's/^/# /'
		return
	fi
	awk -v from=$((at > 6 ? at - 6 : 1)) '
	NR < from { next }
	/^Shadow bytes around/ { shadow = 1 }
	shadow { if (/Right alloca redzone/) shadow = 0; next }
	n < 80 { print; n++; next }
	/^(SUMMARY|MS:|artifact_prefix|Base64:)/ { print }
	' "$1" | sed 's/^/# /'
}

# report INDEX DRIVER: its TAP line; 1 when it failed.
failures=0
report() {
	local i=$1 d=$2 w=$tmp/$2 rc runs secs art kind line base
	rc=$(cat "$w/rc")
	runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$w/log" | tail -n 1)
	secs=$(sed -n 's/^Done [0-9]* runs in \([0-9]*\) second.*/\1/p' "$w/log" | tail -n 1)
	[ -n "$secs" ] || secs=$(cat "$w/secs")
	art=$(find "$w/art" -type f 2>/dev/null | sort | head -n 1)
	if [ "$rc" = 0 ] && [ -z "$art" ]; then
		echo "ok $i - $d: ${runs:-?} runs in $secs s, no crash"
		line=$(grep -E '^#[0-9]+[[:space:]]+(DONE|pulse|NEW|REDUCE|INITED)' "$w/log" | tail -n 1 |
			grep -oE 'cov: [0-9]+ ft: [0-9]+ corp: [0-9]+/[0-9]+[a-zA-Z]*')
		[ -z "$line" ] || echo "# $d: $line"
		return 0
	fi
	if [ -n "$art" ]; then
		base=${art##*/}
		kind=${base%%-*}
		[ "$kind" = crash ] || [ "$kind" = leak ] || [ "$kind" = timeout ] || [ "$kind" = oom ] ||
			kind=crash
		mkdir -p "$arts"
		cp "$art" "$arts/$d-$base"
		echo "not ok $i - $d: $kind (artifact $arts/$d-$base)"
	elif [ "$rc" = 124 ] || [ "$rc" = 137 ]; then
		echo "not ok $i - $d: did not stop after $secs s (exit $rc, no artifact)"
	else
		echo "not ok $i - $d: exited with status $rc (no artifact)"
	fi
	cp "$w/log" "$arts/$d.log" 2>/dev/null
	show_failure "$w/log"
	if [ -n "$art" ] && [ "$(wc -c <"$art")" -le 4096 ] && ! grep -q '^Base64: ' "$w/log"; then
		echo "# the input, base64 (base64 -d > crash; BUILD/fuzz/$d crash):"
		base64 -w 76 "$art" | sed 's/^/#   /'
	fi
	return 1
}

echo "1..${#drivers[@]}"
next=0 # the next driver to report, in order
flush() {
	while [ "$next" -lt "${#drivers[@]}" ] && [ -e "$tmp/${drivers[$next]}/done" ]; do
		report $((next + 1)) "${drivers[$next]}" || failures=$((failures + 1))
		next=$((next + 1))
	done
}
for i in "${!drivers[@]}"; do
	while [ "$(jobs -rp | wc -l)" -ge "$jobs_max" ]; do
		wait -n
		flush
	done
	run_one $((i + 1)) "${drivers[$i]}" &
done
while [ -n "$(jobs -rp)" ]; do
	wait -n
	flush
done
flush
if [ "$failures" -gt 0 ]; then
	echo "# $failures of ${#drivers[@]} drivers failed; inputs and logs in $arts"
	exit 1
fi
exit 0
