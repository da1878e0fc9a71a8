#!/usr/bin/env bash
# bench/scale.sh: how bookapi answers as the library grows. For each N it
# runs BenchmarkScale (scale_test.go): load N books straight into a database
# at the schema before search, open it with bookapi's store (which upgrades
# it: the "open" row is the upgrade's time), then time each route through
# the real handler, one request at a time, and print one table per store:
# p50 and p99 in ms for each N, and p99 at the largest N over p99 at the
# smallest.
#
#   bench/scale.sh                            # N = 10000 100000 1000000, SQLite
#   NS="10000 100000" bench/scale.sh
#   SCALE_POSTGRES='postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable' bench/scale.sh
#
# SQLite files go to SCALE_DIR (/tmp/bookapi-scale), PostgreSQL schemas are
# bookapi_scale_N in the database SCALE_POSTGRES names (PostgreSQL runs only
# when it is set; STORES="postgres" runs it alone). Both are kept, and a
# later run reuses them as they are (no load, no upgrade); FRESH=1 deletes
# them first. SCALE_REQUESTS (1000) requests per route, after 20 unmeasured;
# a route stops after 10 s once it has 200.
# 1M books took 25 s to load into SQLite (37 s into PostgreSQL) on 2 cores,
# and take 0.55 GB of SQLite (0.66 GB of PostgreSQL) on disk.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
NS=${NS:-"10000 100000 1000000"}
SCALE_DIR=${SCALE_DIR:-/tmp/bookapi-scale}
STORES=${STORES:-"sqlite postgres"}
FRESH=${FRESH:-0}
OUT=$(mktemp)
trap 'rm -f "$OUT"' EXIT
mkdir -p "$SCALE_DIR"

cd "$ROOT"
go test -c -o "$SCALE_DIR/bookapi.test" .

# pgschema prints the PostgreSQL URL whose connections use schema $1.
pgschema() {
	case $SCALE_POSTGRES in
	*\?*) echo "$SCALE_POSTGRES&search_path=$1" ;;
	*) echo "$SCALE_POSTGRES?search_path=$1" ;;
	esac
}

for store in $STORES; do
	if [[ $store == postgres && -z ${SCALE_POSTGRES:-} ]]; then
		echo "scale.sh: SCALE_POSTGRES is not set: PostgreSQL skipped" >&2
		continue
	fi
	for n in $NS; do
		if [[ $store == sqlite ]]; then
			db=$SCALE_DIR/scale-$n.db
			[[ $FRESH == 1 ]] && rm -f "$db" "$db-wal" "$db-shm" "$db.secret"
		else
			db=$(pgschema "bookapi_scale_$n")
			if [[ $FRESH == 1 ]]; then
				psql -q "$SCALE_POSTGRES" -c "SET client_min_messages = warning" -c "DROP SCHEMA IF EXISTS bookapi_scale_$n CASCADE"
			fi
		fi
		echo "scale.sh: $store, N=$n" >&2
		SCALE_N=$n SCALE_DB=$db "$SCALE_DIR/bookapi.test" -test.run '^$' -test.bench '^BenchmarkScale$' \
			-test.benchtime 1x -test.timeout 2h | grep '^scale' | tee -a "$OUT" >&2
	done
done

# One table per store: a row per route, p50/p99 per N, and the p99 ratio.
awk -F'\t' '
	!(($2) in known) { known[$2] = 1; stores[++nstores] = $2 }
	$4 == "route" { key = $2 SUBSEP $5; if (!(key in seen)) { seen[key] = 1; order[$2, ++nr[$2]] = $5 }
		p50[$2, $3, $5] = $6; p99[$2, $3, $5] = $7; rate[$2, $3, $5] = $8
		if (!(($2, $3) in hasn)) { hasn[$2, $3] = 1; ns[$2, ++nn[$2]] = $3 } }
	$4 == "load" { load[$2, $3] = $5 " (" $6 ")" }
	$4 == "open" { open[$2, $3] = $5 }
	$4 == "size" { size[$2, $3] = $6 }
	END {
		for (k = 1; k <= nstores; k++) {
			s = stores[k]
			printf "\n%s\n\n| route |", s
			for (i = 1; i <= nn[s]; i++) printf " p50 / p99 ms, N=%s |", ns[s, i]
			printf " p99 %s / %s |\n|---|", ns[s, nn[s]], ns[s, 1]
			for (i = 1; i <= nn[s]; i++) printf "---|"
			printf "---|\n"
			for (r = 1; r <= nr[s]; r++) {
				name = order[s, r]; printf "| %s |", name
				for (i = 1; i <= nn[s]; i++) printf " %s / %s |", p50[s, ns[s, i], name], p99[s, ns[s, i], name]
				lo = p99[s, ns[s, 1], name]; hi = p99[s, ns[s, nn[s]], name]
				printf " %s |\n", (lo > 0 ? sprintf("%.1fx", hi / lo) : "-")
			}
			printf "| creates/s (one client) |"
			for (i = 1; i <= nn[s]; i++) printf " %s |", rate[s, ns[s, i], "create"]
			printf " |\n| load |"
			for (i = 1; i <= nn[s]; i++) printf " %s |", ((s, ns[s, i]) in load ? load[s, ns[s, i]] : "reused")
			printf " |\n| open (upgrade) s |"
			for (i = 1; i <= nn[s]; i++) printf " %s |", open[s, ns[s, i]]
			printf " |\n| bytes per book |"
			for (i = 1; i <= nn[s]; i++) printf " %s |", size[s, ns[s, i]]
			printf " |\n"
		}
	}' "$OUT"
