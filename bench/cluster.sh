#!/usr/bin/env bash
# Cluster benchmark (issue 3): durable ingest and end-to-end executions/s with 1, 2 and 3
# nodes on PostgreSQL, and one node on SQLite for comparison.
# Usage: bench/cluster.sh   (PG=postgres://postgres@127.0.0.1:5432/test DURATION=10s CONNS=64)
set -euo pipefail
cd "$(dirname "$0")/.."

PG=${PG:-postgres://postgres@127.0.0.1:5432/test}
DURATION=${DURATION:-10s}
CONNS=${CONNS:-64}
TOKEN=fgt_bench_token
BASE_PORT=${BASE_PORT:-18110}

command -v wrk >/dev/null || apt-get install -y wrk >/dev/null
cargo build --release -p flowgate 2>&1 | tail -1
BIN=target/release/flowgate
PIDS=()
cleanup() { for p in "${PIDS[@]:-}"; do [ -n "$p" ] && kill "$p" 2>/dev/null; done; wait 2>/dev/null || true; PIDS=(); }
trap cleanup EXIT

wait_ready() { for _ in $(seq 400); do curl -sf "$1/readyz" >/dev/null && return 0; sleep 0.05; done; echo "node $1 did not start"; exit 1; }
queued() { curl -s "$1/metrics" | awk '/^flowgate_queue_depth\{status="queued"\}/{q=$2} /^flowgate_queue_depth\{status="running"\}/{r=$2} END{print q+r}'; }

# start_nodes N DATABASE EXTRA_ARGS...: N nodes on one database.
start_nodes() {
  local n=$1 db=$2; shift 2
  for i in $(seq 0 $((n - 1))); do
    local port=$((BASE_PORT + i)) dir
    dir=$(mktemp -d)
    FLOWGATE_BOOTSTRAP_TOKEN=$TOKEN FLOWGATE_MASTER_KEY=$(printf "7f%.0s" $(seq 32)) FLOWGATE_LOG=warn FLOWGATE_DATABASE_URL=$db \
      "$BIN" serve --listen 127.0.0.1:$port --data-dir "$dir" "$@" >/dev/null 2>&1 &
    PIDS+=($!)
    wait_ready "http://127.0.0.1:$port"
  done
  curl -sf -X PUT "http://127.0.0.1:$BASE_PORT/v1/integrations/bench" -H "Authorization: Bearer $TOKEN" \
    -H 'content-type: application/yaml' --data-binary @bench/flows.yaml >/dev/null
  sleep 0.5 # the other nodes load the integration (NOTIFY)
}

# load N: wrk against every node at once (CONNS split between them); prints the summed req/s.
load() {
  local n=$1 per=$(( CONNS / $1 )) outs=() wrks=()
  for i in $(seq 0 $((n - 1))); do
    local out
    out=$(mktemp)
    outs+=("$out")
    wrk -t1 -c"$per" -d"$DURATION" -s bench/post.lua "http://127.0.0.1:$((BASE_PORT + i))/hooks/default/bench/pipeline" >"$out" &
    wrks+=($!)
  done
  wait "${wrks[@]}"
  cat "${outs[@]}" | awk '/Requests\/sec/{s+=$2} END{printf "%.0f", s}'
}

# fresh_db KIND: sets DB to a new, empty database (a SQLite file or a PostgreSQL schema).
fresh_db() {
  if [ "$1" = sqlite ]; then DB="sqlite://$(mktemp -d)/bench.db"; else
    local schema="fgb_$(date +%s%N)"
    SCHEMAS+=("$schema")
    DB="$PG?schema=$schema"
  fi
}
SCHEMAS=()

run() { # run LABEL N KIND
  local label=$1 n=$2 kind=$3
  fresh_db "$kind"
  start_nodes "$n" "$DB" --roles api,scheduler
  local ingest
  ingest=$(load "$n")
  cleanup
  fresh_db "$kind"
  start_nodes "$n" "$DB"
  local t0 t1 done_count
  t0=$(date +%s.%N)
  load "$n" >/dev/null
  while [ "$(queued "http://127.0.0.1:$BASE_PORT")" != "0" ]; do sleep 0.2; done
  t1=$(date +%s.%N)
  done_count=0
  for i in $(seq 0 $((n - 1))); do
    c=$(curl -s "http://127.0.0.1:$((BASE_PORT + i))/metrics" | awk '/^flowgate_executions_total\{.*status="succeeded"/{s+=$2} END{print s+0}')
    done_count=$((done_count + c))
  done
  cleanup
  printf "%-22s ingest %6s req/s   end to end %6.0f executions/s (%s in %.1f s)\n" "$label" "$ingest" \
    "$(awk -v n="$done_count" -v a="$t0" -v b="$t1" 'BEGIN{print n/(b-a)}')" "$done_count" "$(awk -v a="$t0" -v b="$t1" 'BEGIN{print b-a}')"
}

echo "machine: $(nproc) cores, $(awk '/MemTotal/{printf "%.0f GiB", $2/1048576}' /proc/meminfo); load: wrk, $CONNS connections split over the nodes, $DURATION"
run "SQLite, 1 node" 1 sqlite
for n in 1 2 3; do
  run "PostgreSQL, $n node(s)" "$n" pg
done
for s in "${SCHEMAS[@]}"; do psql "$PG" -qc "DROP SCHEMA $s CASCADE" >/dev/null 2>&1 || true; done
