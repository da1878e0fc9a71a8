#!/usr/bin/env bash
# bench/pg-instances.sh: durable creates on PostgreSQL from one bookapi
# instance, then from two sharing the database, with the same number of
# concurrent writers; as one user and as many users.
#
#   bench/pg-instances.sh
#   DURATION=20s CONNS=64 USERS="1 64" ALTERNATIONS=2 bench/pg-instances.sh
#   BENCH_DATABASE_URL=postgres://user@host:5432/postgres bench/pg-instances.sh
#
# It creates a database of its own on the server BENCH_DATABASE_URL names
# (with psql) and drops it at the end. One instance gets wrk -t2 -cCONNS;
# two instances get wrk -t1 -c(CONNS/2) each, at once. Every answer should be
# 201; "errors" counts any other status and any connection error. The ratio
# is two instances' creates per second over one instance's. Loopback only;
# every step is bounded in time; the servers are stopped on exit.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
DURATION=${DURATION:-20s}
CONNS=${CONNS:-64}
USERS=${USERS:-"1 64"}
ALTERNATIONS=${ALTERNATIONS:-2}
BENCH_DATABASE_URL=${BENCH_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable}
PORTS=(18090 18091)

for tool in go curl psql timeout awk; do
	command -v "$tool" >/dev/null || { echo "pg-instances.sh: $tool is missing" >&2; exit 1; }
done
if ! command -v wrk >/dev/null; then
	[[ $(id -u) == 0 ]] || { echo "pg-instances.sh: wrk is missing and apt-get needs root" >&2; exit 1; }
	echo "installing wrk" >&2
	timeout 300 apt-get update -qq >&2
	DEBIAN_FRONTEND=noninteractive timeout 300 apt-get install -y -qq wrk >&2
fi

WORK=$(mktemp -d "${TMPDIR:-/tmp}/bookapi-pg.XXXXXX")
NAME=bookapi_bench_$$
PIDS=()
DB_MADE=
cleanup() {
	for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
	for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
	[[ -n $DB_MADE ]] && timeout 60 psql -q "$BENCH_DATABASE_URL" -c "DROP DATABASE IF EXISTS $NAME" >/dev/null || true
	rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

echo "building bookapi" >&2
(cd "$ROOT" && go build -o "$WORK/bookapi" .)
SECRET_KEY=$(head -c 48 /dev/urandom | base64 -w0)
export SECRET_KEY

# dburl prints BENCH_DATABASE_URL with its database replaced by $1.
dburl() {
	local base=${BENCH_DATABASE_URL%%\?*} query=
	[[ $BENCH_DATABASE_URL == *\?* ]] && query="?${BENCH_DATABASE_URL#*\?}"
	echo "${base%/*}/$1$query"
}

# start starts instance $1 (0 or 1) on the database $2.
start() {
	"$WORK/bookapi" -addr "127.0.0.1:${PORTS[$1]}" -db "$2" -bcrypt-cost 4 -token-ttl 24h \
		-login-max-failures 1000000 -login-max-address-failures 1000000 2>>"$WORK/bookapi-$1.log" &
	PIDS+=($!)
	for _ in $(seq 150); do
		[[ $(curl -s -o /dev/null -w '%{http_code}' --max-time 1 "http://127.0.0.1:${PORTS[$1]}/healthz") == 200 ]] && return 0
		sleep 0.1
	done
	echo "pg-instances.sh: instance $1 did not start:" >&2
	cat "$WORK/bookapi-$1.log" >&2
	exit 1
}

# stop_all stops every instance.
stop_all() {
	for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
	for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
	PIDS=()
}

# tokens prints $1 access tokens of new users, made through instance 0.
tokens() {
	local base="http://127.0.0.1:${PORTS[0]}" i body
	for i in $(seq "$1"); do
		body="{\"username\":\"user$i-$RANDOM\",\"password\":\"bench-password-1\"}"
		curl -s -o /dev/null --max-time 10 -H 'Content-Type: application/json' -d "$body" "$base/signup"
		curl -s --max-time 10 -H 'Content-Type: application/json' -d "$body" "$base/login" |
			sed -n 's/.*"token":"\([^"]*\)".*/\1/p'
	done
}

# load runs wrk -t$2 -c$3 against instance $1 and prints its BENCH line.
load() {
	timeout 120 wrk -t"$2" -c"$3" -d"$DURATION" --timeout 30s -s "$ROOT/bench/wrk/create.lua" \
		"http://127.0.0.1:${PORTS[$1]}/bookapi/books" -- "r$RANDOM" "${TOKENS[@]}" 2>&1 | grep '^BENCH ' || echo "BENCH requests=0 duration_us=1 status=1"
}

# rate sums BENCH lines into "creates/s errors".
rate() {
	awk '{
		for (i = 2; i <= NF; i++) { split($i, kv, "="); v[kv[1]] = kv[2] }
		bad = v["status"] + v["connect"] + v["read"] + v["write"] + v["timeout"]
		rps += (v["requests"] - v["status"]) / (v["duration_us"] / 1e6); errors += bad
	} END { printf "%.1f %d\n", rps, errors }'
}

timeout 60 psql -q "$BENCH_DATABASE_URL" -c "CREATE DATABASE $NAME" >/dev/null
DB_MADE=1
DB=$(dburl "$NAME")
RESULTS=$WORK/results
: >"$RESULTS"
echo "wrk -d$DURATION, $CONNS connections in all; $(nproc) CPUs; PostgreSQL $(psql -XAtq "$BENCH_DATABASE_URL" -c 'SHOW server_version')"
for alt in $(seq "$ALTERNATIONS"); do
	for users in $USERS; do
		start 0 "$DB"
		mapfile -t TOKENS < <(tokens "$users")
		[[ ${#TOKENS[@]} == "$users" ]] || { echo "pg-instances.sh: got ${#TOKENS[@]} of $users tokens" >&2; exit 1; }
		read -r one one_err < <(load 0 2 "$CONNS" | rate)
		start 1 "$DB"
		read -r two two_err < <({ load 0 1 $((CONNS / 2)) & load 1 1 $((CONNS / 2)) & wait; } | rate)
		stop_all
		printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$alt" "$users" "$one" "$one_err" "$two" "$two_err" | tee -a "$RESULTS" |
			awk -F'\t' '{printf "  alt %s, %3d user(s): one instance %8.1f creates/s (errors %d), two %8.1f creates/s (errors %d), ratio %.2f\n", $1, $2, $3, $4, $5, $6, $5 / $3}'
	done
done
echo "medians over $ALTERNATIONS alternation(s):"
for users in $USERS; do
	awk -F'\t' -v u="$users" '$2 == u {one[++n] = $3; two[n] = $5; e1 += $4; e2 += $6}
		END {
			asort(one); asort(two)
			m1 = n % 2 ? one[(n + 1) / 2] : (one[n / 2] + one[n / 2 + 1]) / 2
			m2 = n % 2 ? two[(n + 1) / 2] : (two[n / 2] + two[n / 2 + 1]) / 2
			printf "  %3d user(s): one instance %8.1f creates/s, two %8.1f; ratio %.2f; errors %d and %d\n", u, m1, m2, m2 / m1, e1, e2
		}' "$RESULTS"
done
