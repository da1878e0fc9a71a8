#!/usr/bin/env bash
# bench/ab.sh: compare two or more bookapi binaries on one workload, in
# short runs that alternate between them, and print each binary's median
# req/s and median server CPU per request (user + system time of its
# process, from /proc, over the requests wrk counted). On a shared machine
# whose speed drifts by 10% from minute to minute, many short alternated
# runs compare builds more closely than bench/run.sh's long ones.
#
#   go build -o /tmp/old . && git stash && go build -o /tmp/new . && git stash pop
#   bench/ab.sh /tmp/old /tmp/new
#   WORKLOAD=invalid-token ALTS=12 CONNS=16 DUR=3s bench/ab.sh /tmp/old /tmp/new
#
# WORKLOAD is list-empty (the default), list-100, invalid-token or create.
# Each binary serves its own fresh SQLite database in a temporary directory
# on 127.0.0.1 from port 18100 up, at bcrypt cost 4, for the whole run; the
# servers are stopped on exit. Linux only (/proc).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
WORKLOAD=${WORKLOAD:-list-empty}
ALTS=${ALTS:-10}
CONNS=${CONNS:-16}
DUR=${DUR:-3s}
(($# >= 2)) || { echo "usage: bench/ab.sh BINARY BINARY..." >&2; exit 2; }
case $WORKLOAD in
list-empty | list-100) SCRIPT=static.lua ;;
invalid-token) SCRIPT=unauthorized.lua ;;
create) SCRIPT=create.lua ;;
*) echo "bench/ab.sh: WORKLOAD=$WORKLOAD: want list-empty, list-100, invalid-token or create" >&2; exit 2 ;;
esac
command -v wrk >/dev/null || { echo "bench/ab.sh: wrk is missing (apt-get install wrk)" >&2; exit 1; }

WORK=$(mktemp -d)
PIDS=()
cleanup() {
	for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
	wait 2>/dev/null || true
	rm -rf "$WORK"
}
trap cleanup EXIT

# tamper changes one character of a token's signature (as bench/run.sh does).
tamper() {
	local t=$1 i=$((${#1} - 20)) c=A
	[[ ${t:i:1} == A ]] && c=B
	echo "${t:0:i}$c${t:i+1}"
}

TOKENS=()
for i in $(seq 0 $(($# - 1))); do
	bin=${*:i+1:1} port=$((18100 + i)) dir=$WORK/$i
	mkdir "$dir"
	printf 'bench-password-1\n' | "$bin" user add -db "$dir/b.db" -bcrypt-cost 4 bench >/dev/null 2>&1
	GOGC=${GOGC:-150} "$bin" -addr "127.0.0.1:$port" -db "$dir/b.db" -bcrypt-cost 4 -token-ttl 24h 2>/dev/null &
	PIDS+=($!)
	for _ in $(seq 200); do
		curl -s -o /dev/null "http://127.0.0.1:$port/healthz" && break
		sleep 0.05
	done
	token=$(curl -s -H 'Content-Type: application/json' -d '{"username":"bench","password":"bench-password-1"}' \
		"http://127.0.0.1:$port/login" | sed -n 's/.*"token":"\([^"]*\)".*/\1/p')
	[[ -n $token ]] || { echo "bench/ab.sh: no token from $bin" >&2; exit 1; }
	if [[ $WORKLOAD == list-100 ]]; then
		for n in $(seq 100); do
			curl -s -o /dev/null -H "Authorization: Bearer $token" -H 'Content-Type: application/json' \
				-d "$(printf '{"title":"Bench book %03d","author":"Bench Author"}' "$n")" "http://127.0.0.1:$port/bookapi/books"
		done
	fi
	if [[ $WORKLOAD == invalid-token ]]; then
		token=$(tamper "$token")
	fi
	TOKENS+=("$token")
done

ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
for alt in $(seq "$ALTS"); do
	for i in $(seq 0 $(($# - 1))); do
		pid=${PIDS[i]}
		a=$(ticks "$pid")
		args=()
		[[ $WORKLOAD != create ]] || args=(-- "ab$alt-$RANDOM") # a new title prefix each run
		out=$(wrk -t2 -c"$CONNS" -d"$DUR" --timeout 30s -s "$ROOT/bench/wrk/$SCRIPT" -H "Authorization: Bearer ${TOKENS[i]}" \
			"http://127.0.0.1:$((18100 + i))/bookapi/books" "${args[@]}" 2>&1)
		b=$(ticks "$pid")
		awk -v bin="${*:i+1:1}" -v alt="$alt" -v t=$((b - a)) '/^BENCH/ {
			for (f = 2; f <= NF; f++) { split($f, kv, "="); v[kv[1]] = kv[2] }
			printf "%s\t%s\t%.1f\t%.2f\n", bin, alt, v["requests"] / (v["duration_us"] / 1e6), t * 10000 / v["requests"]
		}' <<<"$out"
	done
done | tee "$WORK/runs.tsv" | awk -F'\t' '{printf "  alt %-3s %-30s %10s req/s %8s µs CPU/request\n", $2, $1, $3, $4}'

echo "medians over $ALTS alternations ($WORKLOAD, wrk -t2 -c$CONNS -d$DUR):"
# median prints the median of the numbers on stdin, one a line.
median() { sort -g | awk '{v[NR] = $1} END {print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2}'; }
for bin in "$@"; do
	rps=$(awk -F'\t' -v bin="$bin" '$1 == bin {print $3}' "$WORK/runs.tsv" | median)
	cpu=$(awk -F'\t' -v bin="$bin" '$1 == bin {print $4}' "$WORK/runs.tsv" | median)
	printf '  %-30s %10.1f req/s %8.2f µs CPU/request\n' "$bin" "$rps" "$cpu"
done
