#!/usr/bin/env bash
# bench/run.sh: load-test bookapi with wrk against bench/baseline, a bare
# net/http server that answers the same routes with the same JSON from memory.
#
#   bench/run.sh                      # full run: 10 s per measurement, 2 alternations
#   QUICK=1 bench/run.sh              # smoke test: 2 s, 1 alternation
#   DURATION=30s ALTERNATIONS=3 CONNS="16 64" BCRYPT_COST=10 bench/run.sh
#
# WORKLOADS picks some of the workloads (all by default):
#   WORKLOADS="list-100 flood" QUICK=1 bench/run.sh
# Names: list-empty invalid-token login list-100 get-one create flood.
# Other knobs: STARTS (start-time samples, 5), FLOOD_LIST_CONNS (connections
# of the list probe in the login-flood test, 1), PORT_BOOKAPI (18080),
# PORT_BASELINE (18081), BOOKAPI_LOG (bookapi's stderr, /dev/null), KEEP=1
# (keep the temporary directory), QUIET_WAIT (seconds to wait, before
# starting, for the machine to be under 25% busy; 0). Loopback only; every
# step is bounded in time; the servers are stopped on exit.
#
# Each run also shows "other%": the CPU that neither wrk nor the server under
# test used during it (other processes, and steal on a VM), in % of all CPUs.
# A run with a high other% was disturbed.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
DURATION=${DURATION:-10s}
ALTERNATIONS=${ALTERNATIONS:-2}
CONNS=${CONNS:-"16 64"}
BCRYPT_COST=${BCRYPT_COST:-10}
STARTS=${STARTS:-5}
FLOOD_LIST_CONNS=${FLOOD_LIST_CONNS:-1}
ALL_WORKLOADS="list-empty invalid-token login list-100 get-one create flood"
WORKLOADS=${WORKLOADS:-$ALL_WORKLOADS}
PORT_BOOKAPI=${PORT_BOOKAPI:-18080}
PORT_BASELINE=${PORT_BASELINE:-18081}
BOOKAPI_LOG=${BOOKAPI_LOG:-/dev/null}
QUIET_WAIT=${QUIET_WAIT:-0}
NCPU=$(nproc)
if [[ ${QUICK:-0} == 1 ]]; then
	DURATION=2s
	ALTERNATIONS=1
fi

# seconds turns a wrk duration (10, 10s, 2m) into whole seconds.
seconds() {
	case $1 in
	*m) echo $((${1%m} * 60)) ;;
	*s) echo "${1%s}" ;;
	*) echo "$1" ;;
	esac
}
DUR_S=$(seconds "$DURATION")
for w in $WORKLOADS; do
	[[ " $ALL_WORKLOADS " == *" $w "* ]] || { echo "run.sh: WORKLOADS: unknown workload $w (known: $ALL_WORKLOADS)" >&2; exit 2; }
done
[[ $DUR_S =~ ^[0-9]+$ && $DUR_S -ge 1 ]] || { echo "run.sh: DURATION=$DURATION: want e.g. 10s or 2m" >&2; exit 2; }
[[ $ALTERNATIONS =~ ^[1-9][0-9]*$ ]] || { echo "run.sh: ALTERNATIONS=$ALTERNATIONS: want a positive number" >&2; exit 2; }

USER_NAME=bench
PASSWORD=bench-password-1
LOGIN_BODY="{\"username\":\"$USER_NAME\",\"password\":\"$PASSWORD\"}"
SECRET_KEY=$(head -c 48 /dev/urandom | base64 -w0)
export SECRET_KEY
HEALTH_WAIT=15 # seconds a server gets to answer /healthz

if ! command -v wrk >/dev/null; then
	echo "installing wrk" >&2
	if [[ $(id -u) != 0 ]]; then
		echo "run.sh: wrk is missing and apt-get needs root" >&2
		exit 1
	fi
	timeout 300 apt-get update -qq >&2
	DEBIAN_FRONTEND=noninteractive timeout 300 apt-get install -y -qq wrk >&2
fi
for tool in go curl timeout awk; do
	command -v "$tool" >/dev/null || { echo "run.sh: $tool is missing" >&2; exit 1; }
done

WORK=$(mktemp -d "${TMPDIR:-/tmp}/bookapi-bench.XXXXXX")
BOOKAPI_PID=
BASELINE_PID=
FLOOD_PID=

# stop ends a server (or wrk) this script started, by its pid.
stop() {
	local pid=$1
	[[ -n $pid ]] || return 0
	kill "$pid" 2>/dev/null || return 0
	for _ in $(seq 50); do
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.1
	done
	kill -9 "$pid" 2>/dev/null || true
	wait "$pid" 2>/dev/null || true
}
cleanup() {
	stop "$FLOOD_PID"
	stop "$BOOKAPI_PID"
	stop "$BASELINE_PID"
	if [[ ${KEEP:-0} == 1 ]]; then
		echo "kept $WORK" >&2
	else
		rm -rf "$WORK"
	fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

for port in "$PORT_BOOKAPI" "$PORT_BASELINE"; do
	if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
		echo "run.sh: 127.0.0.1:$port is already in use (set PORT_BOOKAPI / PORT_BASELINE)" >&2
		exit 1
	fi
done

echo "building bookapi and the baseline" >&2
(cd "$ROOT" && go build -o "$WORK/bookapi" . && go build -o "$WORK/baseline" ./bench/baseline)

# wait_healthy waits for the first 200 from /healthz on port $1 of pid $2.
wait_healthy() {
	local port=$1 pid=$2 deadline=$((SECONDS + HEALTH_WAIT))
	while ((SECONDS < deadline)); do
		kill -0 "$pid" 2>/dev/null || { echo "run.sh: server on port $port exited at start" >&2; return 1; }
		[[ $(curl -s -o /dev/null -w '%{http_code}' --max-time 1 "http://127.0.0.1:$port/healthz") == 200 ]] && return 0
		sleep 0.05
	done
	echo "run.sh: no 200 from 127.0.0.1:$port/healthz within ${HEALTH_WAIT}s" >&2
	return 1
}

# start_bookapi starts bookapi as the README's deployment runs it: with
# GOGC=150 unless the environment sets GOGC.
start_bookapi() {
	GOGC=${GOGC:-150} "$WORK/bookapi" -addr "127.0.0.1:$PORT_BOOKAPI" -db "$WORK/bench.db" -bcrypt-cost "$BCRYPT_COST" \
		-token-ttl 24h -login-max-failures 1000000 -login-max-address-failures 1000000 2>>"$BOOKAPI_LOG" &
	BOOKAPI_PID=$!
	wait_healthy "$PORT_BOOKAPI" "$BOOKAPI_PID"
}

# start_baseline starts the baseline with $1 canned books.
start_baseline() {
	stop "$BASELINE_PID"
	printf '%s\n' "$PASSWORD" | "$WORK/baseline" -addr "127.0.0.1:$PORT_BASELINE" -books "$1" -user "$USER_NAME" \
		-bcrypt-cost "$BCRYPT_COST" -token-ttl 24h 2>>"$WORK/baseline.log" &
	BASELINE_PID=$!
	wait_healthy "$PORT_BASELINE" "$BASELINE_PID"
}

# login prints a token from the server on port $1.
login() {
	local body
	body=$(curl -s --max-time 30 -H 'Content-Type: application/json' -d "$LOGIN_BODY" "http://127.0.0.1:$1/login")
	sed -n 's/.*"token":"\([^"]*\)".*/\1/p' <<<"$body" | grep . || { echo "run.sh: login on port $1: $body" >&2; return 1; }
}

# tamper changes one character in the middle of a token's signature, keeping
# it canonical base64url, so the token fails only at the HMAC comparison.
tamper() {
	local t=$1 i=$((${#1} - 20)) c=A
	[[ ${t:i:1} == A ]] && c=B
	echo "${t:0:i}$c${t:i+1}"
}

# settle waits (at most 10 s) until process $1 uses under 5% of a CPU.
settle() {
	local pid=$1 a b
	sleep 0.5
	for _ in $(seq 40); do
		[[ -r /proc/$pid/stat ]] || return 0
		a=$(awk '{print $14 + $15}' "/proc/$pid/stat")
		sleep 0.25
		b=$(awk '{print $14 + $15}' "/proc/$pid/stat")
		(((b - a) * 100 <= 5 * 25)) && return 0 # clock ticks are 10 ms
	done
	return 0
}

# busy_ticks prints the clock ticks all CPUs have spent busy: user, nice,
# system and steal (interrupt time is left out: loopback traffic lands there).
busy_ticks() { awk '/^cpu / {print $2 + $3 + $4 + $9}' /proc/stat; }

# proc_ticks prints the clock ticks process $1 has used.
proc_ticks() { awk '{print $14 + $15}' "/proc/$1/stat" 2>/dev/null || echo 0; }

# wait_quiet waits up to QUIET_WAIT seconds for 5 s in which the machine is
# under 25% busy.
wait_quiet() {
	local deadline=$((SECONDS + QUIET_WAIT)) a b
	((QUIET_WAIT > 0)) || return 0
	while ((SECONDS < deadline)); do
		a=$(busy_ticks)
		sleep 5
		b=$(busy_ticks)
		if (((b - a) < 5 * 100 * NCPU / 4)); then
			echo "the machine is quiet ($(((b - a) / (5 * NCPU)))% busy over 5 s)"
			return 0
		fi
		echo "waiting for a quiet machine: $(((b - a) / (5 * NCPU)))% busy over 5 s" >&2
	done
	echo "warning: the machine stayed busy for QUIET_WAIT=${QUIET_WAIT}s; starting anyway"
}

# get prints "STATUS BYTES" of an authenticated GET.
get() {
	curl -s -o /dev/null -w '%{http_code} %{size_download}' --max-time 10 -H "Authorization: Bearer $2" "$1"
}

RESULTS=$WORK/results.tsv
: >"$RESULTS"

# measure runs one wrk and appends a result row.
#   measure WORKLOAD CONNS ALT SERVER PID THREADS URL SCRIPT WRK-ARGS... [-- SCRIPT-ARGS...]
measure() {
	local workload=$1 conns=$2 alt=$3 server=$4 pid=$5 threads=$6 url=$7 script=$8
	shift 8
	local out line m0 p0 t0 other
	m0=$(busy_ticks)
	p0=$(proc_ticks "$pid")
	t0=$EPOCHREALTIME
	out=$({
		TIMEFORMAT='%U %S'
		time timeout $((DUR_S + 60)) wrk -t"$threads" -c"$conns" -d"$DURATION" --timeout 30s --latency \
			-s "$ROOT/bench/wrk/$script" "$@" "$url" "${SCRIPT_ARGS[@]}" 2>&1
	} 2>"$WORK/wrk.time") || true
	# CPU used by neither this wrk nor the server, in % of all CPUs.
	other=$(awk -v m="$(($(busy_ticks) - m0))" -v p="$(($(proc_ticks "$pid") - p0))" -v t0="$t0" -v t1="$EPOCHREALTIME" \
		-v n="$NCPU" '{o = (m - p - ($1 + $2) * 100) / ((t1 - t0) * 100 * n) * 100; printf "%.0f", o < 0 ? 0 : o}' "$WORK/wrk.time")
	line=$(grep '^BENCH ' <<<"$out" || true)
	if [[ -z $line ]]; then
		echo "run.sh: wrk gave no result for $workload/$server:" >&2
		echo "$out" >&2
		line="BENCH requests=0 duration_us=1 p50_us=0 p99_us=0 status=0 connect=1 read=0 write=0 timeout=0 wrong=0"
	fi
	awk -v w="$workload" -v c="$conns" -v a="$alt" -v s="$server" -v other="$other" -v expect401="$([[ $script == unauthorized.lua ]] && echo 1 || echo 0)" '
	{
		for (i = 2; i <= NF; i++) { split($i, kv, "="); v[kv[1]] = kv[2] }
		bad = expect401 ? v["wrong"] : v["status"]
		rps = (v["requests"] - bad) / (v["duration_us"] / 1e6)
		errors = bad + v["connect"] + v["read"] + v["write"] + v["timeout"]
		printf "%s\t%s\t%s\t%s\t%.1f\t%.3f\t%.3f\t%d\t%d\n", w, c, a, s, rps, v["p50_us"] / 1000, v["p99_us"] / 1000, errors, other
	}' <<<"$line" | tee -a "$RESULTS" |
		awk -F'\t' '{printf "  %-13s c%-3s alt %s %-8s %10.1f req/s  p50 %8.2f ms  p99 %8.2f ms  errors %-5d other %3d%%\n", $1, $2, $3, $4, $5, $6, $7, $8, $9}'
	settle "$pid"
}

# wanted succeeds when workload $1 is in WORKLOADS.
wanted() { [[ " $WORKLOADS " == *" $1 "* ]]; }

# pair runs one workload against both servers, alternating, ALTERNATIONS times.
#   pair WORKLOAD PATH SCRIPT BOOKAPI-TOKEN BASELINE-TOKEN [SCRIPT-ARGS...]
pair() {
	local workload=$1 path=$2 script=$3 tb=$4 tr=$5
	shift 5
	wanted "$workload" || return 0
	SCRIPT_ARGS=()
	(($# > 0)) && SCRIPT_ARGS=(-- "$@")
	local hb=() hr=()
	[[ -n $tb ]] && hb=(-H "Authorization: Bearer $tb")
	[[ -n $tr ]] && hr=(-H "Authorization: Bearer $tr")
	for c in $CONNS; do
		for alt in $(seq "$ALTERNATIONS"); do
			[[ $workload == create ]] && SCRIPT_ARGS=(-- "$(head -c 6 /dev/urandom | base64 -w0 | tr '+/' '-_')")
			measure "$workload" "$c" "$alt" bookapi "$BOOKAPI_PID" 2 "http://127.0.0.1:$PORT_BOOKAPI$path" "$script" "${hb[@]}"
			measure "$workload" "$c" "$alt" baseline "$BASELINE_PID" 2 "http://127.0.0.1:$PORT_BASELINE$path" "$script" "${hr[@]}"
		done
	done
}

wait_quiet
LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)
T0=$SECONDS
echo "bookapi $(cd "$ROOT" && git describe --always --dirty 2>/dev/null || echo unknown); $(nproc) CPUs,$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2); $(date -u '+%Y-%m-%d %H:%M UTC')"
echo "DURATION=$DURATION ALTERNATIONS=$ALTERNATIONS CONNS=\"$CONNS\" BCRYPT_COST=$BCRYPT_COST; wrk, bookapi and the baseline share the machine"
if awk -v n="$(nproc)" '{exit !($1 > n / 2)}' /proc/loadavg; then
	echo "warning: load average ${LOAD_START%% *} on $(nproc) CPUs before the run: other work is running and the numbers will be noisy"
fi

# Start time: exec to the first 200 on /healthz, on an empty database.
echo "start time (exec to first 200 on /healthz, empty database), $STARTS starts:"
STARTUP_MS=()
for i in $(seq "$STARTS"); do
	ms=$("$WORK/baseline" startup -url "http://127.0.0.1:$PORT_BOOKAPI/healthz" -- \
		"$WORK/bookapi" -addr "127.0.0.1:$PORT_BOOKAPI" -db "$WORK/start$i.db" -bcrypt-cost "$BCRYPT_COST" 2>>"$WORK/startup.log") ||
		{ echo "run.sh: start-time helper failed:" >&2; tail -5 "$WORK/startup.log" >&2; exit 1; }
	STARTUP_MS+=("$ms")
done
STARTUP_MEDIAN=$(printf '%s\n' "${STARTUP_MS[@]}" | sort -n | awk '{v[NR] = $1} END {print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2}')
echo "  ${STARTUP_MS[*]} ms; median $STARTUP_MEDIAN ms"

# Phase 1: an empty database and an empty baseline.
printf '%s\n' "$PASSWORD" | "$WORK/bookapi" user add -db "$WORK/bench.db" -bcrypt-cost "$BCRYPT_COST" "$USER_NAME" >/dev/null
start_bookapi
start_baseline 0
TB=$(login "$PORT_BOOKAPI")
TR=$(login "$PORT_BASELINE")
echo
echo "phase 1: an empty database; the baseline has no books"
echo "answers (status bytes), bookapi | baseline:"
echo "  GET /bookapi/books, empty:  $(get "http://127.0.0.1:$PORT_BOOKAPI/bookapi/books" "$TB") | $(get "http://127.0.0.1:$PORT_BASELINE/bookapi/books" "$TR")"
echo "  GET /bookapi/books, invalid token: $(get "http://127.0.0.1:$PORT_BOOKAPI/bookapi/books" "$(tamper "$TB")") | $(get "http://127.0.0.1:$PORT_BASELINE/bookapi/books" "$(tamper "$TR")")"
echo
echo "runs (wrk -t2 --latency -d$DURATION --timeout 30s). req/s counts the expected answers only (2xx; 401"
echo "for invalid-token); errors are the other answers (non-2xx/3xx; for invalid-token non-401) and socket errors:"
pair list-empty /bookapi/books static.lua "$TB" "$TR"
pair invalid-token /bookapi/books unauthorized.lua "$(tamper "$TB")" "$(tamper "$TR")"
pair login /login static.lua "" "" POST "$LOGIN_BODY"

# Phase 2: 100 books in both.
for i in $(seq 100); do
	code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 10 -H "Authorization: Bearer $TB" -H 'Content-Type: application/json' \
		-d "$(printf '{"title":"Bench book %03d","author":"Bench Author"}' "$i")" "http://127.0.0.1:$PORT_BOOKAPI/bookapi/books")
	[[ $code == 201 ]] || { echo "run.sh: seeding book $i: status $code" >&2; exit 1; }
done
start_baseline 100
TR=$(login "$PORT_BASELINE")
echo
echo "phase 2: 100 books in both"
echo "answers (status bytes), bookapi | baseline:"
echo "  GET /bookapi/books, 100 books: $(get "http://127.0.0.1:$PORT_BOOKAPI/bookapi/books" "$TB") | $(get "http://127.0.0.1:$PORT_BASELINE/bookapi/books" "$TR")"
echo "  GET /bookapi/books/50: $(get "http://127.0.0.1:$PORT_BOOKAPI/bookapi/books/50" "$TB") | $(get "http://127.0.0.1:$PORT_BASELINE/bookapi/books/50" "$TR")"
pair list-100 /bookapi/books static.lua "$TB" "$TR"
pair get-one /bookapi/books/50 static.lua "$TB" "$TR"
pair create /bookapi/books create.lua "$TB" "$TR"

# Login flood: list-100 p99 alone, then during a 64-client login flood from a
# second wrk; on bookapi, then on the baseline for reference (what the same
# flood does to a bare server's p99 on this machine).
echo
wanted flood && echo "login flood: list-100 p99 with wrk -t1 -c$FLOOD_LIST_CONNS, alone then during wrk -t1 -c64 POST /login:"
SCRIPT_ARGS=()
# flood SERVER PID PORT TOKEN ALT
flood() {
	local server=$1 pid=$2 port=$3 token=$4 alt=$5
	measure flood-alone "$FLOOD_LIST_CONNS" "$alt" "$server" "$pid" 1 "http://127.0.0.1:$port/bookapi/books" static.lua \
		-H "Authorization: Bearer $token"
	timeout $((DUR_S + 60)) wrk -t1 -c64 -d$((DUR_S + 2))s --timeout 30s -s "$ROOT/bench/wrk/static.lua" \
		"http://127.0.0.1:$port/login" -- POST "$LOGIN_BODY" >"$WORK/flood.txt" 2>&1 &
	FLOOD_PID=$!
	sleep 1 # let the logins fill the bcrypt queue
	measure flood-during "$FLOOD_LIST_CONNS" "$alt" "$server" "$pid" 1 "http://127.0.0.1:$port/bookapi/books" static.lua \
		-H "Authorization: Bearer $token"
	wait "$FLOOD_PID" || true
	FLOOD_PID=
	awk -v a="$alt" -v s="$server" '/^BENCH/ {
		for (i = 2; i <= NF; i++) { split($i, kv, "="); v[kv[1]] = kv[2] }
		printf "  the flood, alt %s, %s: %.1f logins/s, errors %d\n", a, s, (v["requests"] - v["status"]) / (v["duration_us"] / 1e6),
			v["status"] + v["connect"] + v["read"] + v["write"] + v["timeout"]
	}' "$WORK/flood.txt"
	settle "$pid"
}
for alt in $(seq "$ALTERNATIONS"); do
	wanted flood || break
	flood bookapi "$BOOKAPI_PID" "$PORT_BOOKAPI" "$TB" "$alt"
	flood baseline "$BASELINE_PID" "$PORT_BASELINE" "$TR" "$alt"
done

HWM_BOOKAPI=$(awk '/^VmHWM/ {print $2, $3}' "/proc/$BOOKAPI_PID/status")
HWM_BASELINE=$(awk '/^VmHWM/ {print $2, $3}' "/proc/$BASELINE_PID/status")
LOAD_END=$(cut -d' ' -f1-3 /proc/loadavg)

echo
echo "summary (medians over $ALTERNATIONS alternation(s); ratio: median of bookapi/baseline req/s per alternation;"
echo "errors: summed; other%: the highest of the row's runs; flood-during's other% includes the login wrk):"
awk -F'\t' -v out="$WORK/ratios" '
function median(list,    n, a, i, j, t) {
	n = split(list, a, " ")
	for (i = 2; i <= n; i++) for (j = i; j > 1 && a[j - 1] + 0 > a[j] + 0; j--) { t = a[j]; a[j] = a[j - 1]; a[j - 1] = t }
	return (n % 2) ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
}
# row prints key k of both servers under name, with ratio (text) last.
function row(name, k, ratio,    c) {
	split(k, c, SUBSEP)
	printf "%-13s %5s  %11.1f %9.2f %9.2f %6d  %11.1f %9.2f %9.2f %6d  %6s %7d\n", name, c[2],
		median(rps[k, "bookapi"]), median(p50[k, "bookapi"]), median(p99[k, "bookapi"]), err[k, "bookapi"],
		median(rps[k, "baseline"]), median(p50[k, "baseline"]), median(p99[k, "baseline"]), err[k, "baseline"], ratio, oth[k]
}
# p99ratio is the median over alternations of the p99 of server s under kd
# (during the flood) over its p99 under k (alone).
function p99ratio(k, kd, s,    x, y, n, i, ratios) {
	n = split(p99[k, s], x, " "); split(p99[kd, s], y, " ")
	for (i = 1; i <= n; i++) if (x[i] > 0) ratios = ratios " " y[i] / x[i]
	return median(ratios)
}
{
	k = $1 SUBSEP $2
	if (!(k in seen)) { seen[k] = 1; keys[++nk] = k }
	rps[k, $4] = rps[k, $4] " " $5; p50[k, $4] = p50[k, $4] " " $6; p99[k, $4] = p99[k, $4] " " $7
	err[k, $4] += $8; r[k, $3, $4] = $5
	if ($9 > oth[k]) oth[k] = $9
	alts[k] = ($3 > alts[k]) ? $3 : alts[k]
}
END {
	printf "%-13s %5s  %11s %9s %9s %6s  %11s %9s %9s %6s  %6s %7s\n", "workload", "conns", "bookapi/s", "p50 ms", "p99 ms", "errors", "baseline/s", "p50 ms", "p99 ms", "errors", "ratio", "other%"
	order = "list-empty list-100 invalid-token get-one create login"
	n = split(order, ws, " ")
	for (i = 1; i <= n; i++) for (j = 1; j <= nk; j++) {
		split(keys[j], kc, SUBSEP)
		if (kc[1] != ws[i]) continue
		k = keys[j]; ratios = ""
		for (a = 1; a <= alts[k]; a++) if (r[k, a, "baseline"] > 0) ratios = ratios " " r[k, a, "bookapi"] / r[k, a, "baseline"]
		row(kc[1], k, sprintf("%.2f", median(ratios)))
		print kc[1], kc[2], median(ratios), median(rps[k, "bookapi"]) > out
	}
	for (j = 1; j <= nk; j++) {
		split(keys[j], kc, SUBSEP)
		if (kc[1] != "flood-alone") continue
		k = keys[j]; kd = "flood-during" SUBSEP kc[2]
		row("flood-alone", k, ""); row("flood-during", kd, "")
		ratio = p99ratio(k, kd, "bookapi")
		printf "%-13s %5s  %11.2f %40s %11.2f %33s\n", "p99 during/alone", "", ratio, "", p99ratio(k, kd, "baseline"), ""
		print "flood", kc[2], ratio, 0 > out
	}
}' "$RESULTS"

echo
echo "targets:"
MAXC=$(tr ' ' '\n' <<<"$CONNS" | grep . | sort -n | tail -1)
awk -v maxc="$MAXC" '
function check(name, value, op, goal, unit) {
	ok = (op == ">=") ? value >= goal : value <= goal
	printf "  %-48s %10.2f%s  %s %s%s  %s\n", name, value, unit, op, goal, unit, ok ? "PASS" : "FAIL"
}
$1 == "list-empty"    { check("authenticated list, empty, c" $2 ", vs baseline", $3, ">=", 0.5, "x") }
$1 == "list-100"      { check("list of 100, c" $2 ", vs baseline in memory", $3, ">=", 0.35, "x") }
$1 == "invalid-token" { check("invalid token (401), c" $2 ", vs baseline", $3, ">=", 0.8, "x") }
$1 == "create" && $2 == maxc { check("creates/s at c" $2 " (absolute, durable)", $4, ">=", 3000, "") }
$1 == "login"         { check("login, c" $2 ", vs the bcrypt limit (baseline)", $3, ">=", 0.9, "x") }
$1 == "flood"         { check("list p99 during a c64 login flood vs alone", $3, "<=", 3, "x") }
' "$WORK/ratios"

echo
echo "bookapi peak RSS (VmHWM over the whole run): $HWM_BOOKAPI (baseline, 100 books: $HWM_BASELINE)"
echo "bookapi start time, exec to first 200 on /healthz, empty database: median $STARTUP_MEDIAN ms of $STARTS (${STARTUP_MS[*]})"
echo "load average: $LOAD_START at the start, $LOAD_END at the end; run took $((SECONDS - T0)) s"
