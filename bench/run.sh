#!/usr/bin/env bash
# Flowgate benchmarks (issue 2): durable async ingest, sync request-response, end-to-end
# executions/s, RSS — against a bare axum handler measured in the same run.
# Usage: bench/run.sh            (DURATION=10s CONNS=64 THREADS=2 by default)
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION=${DURATION:-10s}
CONNS=${CONNS:-64}
THREADS=${THREADS:-2}
PORT=${PORT:-18088}
URL=http://127.0.0.1:$PORT
TOKEN=fgt_bench_token
BODY='{"id": 7, "name": "Ann Example", "email": "Ann@Example.com", "qty": 3, "active": true}'

command -v wrk >/dev/null || apt-get install -y wrk >/dev/null
if curl -s "$URL/healthz" >/dev/null 2>&1; then echo "port $PORT is in use; set PORT"; exit 1; fi
cargo build --release -p flowgate -p flowgate-bench-baseline 2>&1 | tail -1
BIN=target/release/flowgate
BARE=target/release/bare_axum
LOADGEN=target/release/loadgen
PID=
cleanup() { [ -n "$PID" ] && kill "$PID" 2>/dev/null; wait 2>/dev/null || true; }
trap cleanup EXIT

rss_mb() { awk '/VmRSS/{printf "%.1f", $2/1024}' "/proc/$1/status"; }
wait_ready() { for _ in $(seq 200); do curl -sf "$URL/$1" >/dev/null && return 0; sleep 0.05; done; echo "server did not start"; exit 1; }
wrk_rate() { wrk -t"$THREADS" -c"$CONNS" -d"$DURATION" --latency -s bench/post.lua "$1" | tee /tmp/wrk.out | awk '/Requests\/sec/{print $2}'; }
start_flowgate() {
  DATA=$(mktemp -d)
  FLOWGATE_BOOTSTRAP_TOKEN=$TOKEN FLOWGATE_LOG=warn "$BIN" serve --listen 127.0.0.1:$PORT --data-dir "$DATA" "$@" >/dev/null &
  PID=$!
  wait_ready healthz
  curl -sf -X PUT "$URL/v1/integrations/bench" -H "Authorization: Bearer $TOKEN" -H 'content-type: application/yaml' --data-binary @bench/flows.yaml >/dev/null
}
stop() { kill "$PID"; wait "$PID" 2>/dev/null || true; PID=; }
count_succeeded() { curl -s "$URL/metrics" | awk -F' ' '/^flowgate_executions_total\{.*status="succeeded"/{s+=$2} END{print s+0}'; }
queued() { curl -s "$URL/metrics" | awk '/^flowgate_queue_depth\{status="queued"\}/{q=$2} /^flowgate_queue_depth\{status="running"\}/{r=$2} END{print q+r}'; }

echo "machine: $(nproc) cores, $(awk '/MemTotal/{printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(uname -r)"
echo "load: wrk -t$THREADS -c$CONNS -d$DURATION, JSON body ${#BODY} bytes"

# 1. Baseline: a handler that only answers.
"$BARE" 127.0.0.1:$PORT & PID=$!; sleep 0.3
BARE_RPS=$(wrk_rate "$URL/hooks/default/bench/pipeline")
stop
echo "bare axum handler:                  $BARE_RPS req/s"

# 2. Durable async ingest, no workers (events committed, nothing executed).
start_flowgate --no-workers
IDLE_RSS=$(rss_mb "$PID")
INGEST_RPS=$(wrk_rate "$URL/hooks/default/bench/pipeline")
INGEST_P99=$(awk '/ 99%/{print $2}' /tmp/wrk.out)
LOADED_RSS=$(rss_mb "$PID")
stop
echo "async ingest (durable, no workers): $INGEST_RPS req/s (p99 $INGEST_P99), $(awk -v a="$INGEST_RPS" -v b="$BARE_RPS" 'BEGIN{printf "%.2f", a/b}') x bare"
echo "RSS: idle $IDLE_RSS MB, after ingest load $LOADED_RSS MB"

# 3. End to end: ingest at full speed with workers running the 3-step pipeline, then drain.
start_flowgate
T0=$(date +%s.%N)
MIXED_RPS=$(wrk_rate "$URL/hooks/default/bench/pipeline")
while [ "$(queued)" != "0" ]; do sleep 0.2; done
T1=$(date +%s.%N)
DONE=$(count_succeeded)
E2E_RSS=$(rss_mb "$PID")
echo "ingest with workers running:        $MIXED_RPS req/s"
echo "end to end (3-step pipeline):       $DONE executions in $(awk -v a="$T0" -v b="$T1" 'BEGIN{printf "%.1f", b-a}') s = $(awk -v n="$DONE" -v a="$T0" -v b="$T1" 'BEGIN{printf "%.0f", n/(b-a)}') executions/s (RSS $E2E_RSS MB)"

# 4. Sync request-response: closed-loop throughput, then latency at a fixed 1,000 req/s on a
#    fresh server (steady state; right after the runs above the WAL is still being checkpointed).
stop
start_flowgate
SYNC_RPS=$(wrk_rate "$URL/hooks/default/bench/quote")
SYNC_P50=$(awk '/ 50%/{print $2}' /tmp/wrk.out); SYNC_P99=$(awk '/ 99%/{print $2}' /tmp/wrk.out)
echo "sync request-response:              $SYNC_RPS req/s (p50 $SYNC_P50, p99 $SYNC_P99 at $CONNS connections)"
stop
start_flowgate
echo "sync at a fixed 1,000 req/s for 10 s (fresh server):"
"$LOADGEN" "$URL/hooks/default/bench/quote" 1000 10 "$BODY" | sed 's/^/  /'
echo "RSS after the sync runs: $(rss_mb "$PID") MB"
stop

# 5. The same ingest with synchronous=NORMAL (survives a process crash, not power loss).
start_flowgate --no-workers --durability normal
NORMAL_RPS=$(wrk_rate "$URL/hooks/default/bench/pipeline")
echo "async ingest, --durability normal:  $NORMAL_RPS req/s"
stop
