#!/usr/bin/env bash
# Flowgate benchmarks (issues 2 and 16): durable async ingest, a queued backlog drained,
# end-to-end executions/s, sync request-response, RSS, and the cost of one more step — each
# beside a bare axum handler measured in the same run (the "x bare" ratios), and the per-step
# figures beside the physical floor measured here too (one fsync, one loopback round trip).
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
BIN=${BIN:-target/release/flowgate}   # BIN=… compares another build (e.g. a worktree of the previous commit)
BARE=target/release/bare_axum
LOADGEN=target/release/loadgen
PID=
cleanup() { [ -n "$PID" ] && kill "$PID" 2>/dev/null; wait 2>/dev/null || true; }
trap cleanup EXIT

rss_mb() { awk '/VmRSS/{printf "%.1f", $2/1024}' "/proc/$1/status"; }
wait_ready() { for _ in $(seq 200); do curl -sf "$URL/$1" >/dev/null && return 0; sleep 0.05; done; echo "server did not start"; exit 1; }
wrk_rate() { wrk -t"$THREADS" -c"$CONNS" -d"$DURATION" --latency -s bench/post.lua "$1" | tee /tmp/wrk.out | awk '/Requests\/sec/{print $2}'; }
start_flowgate() { DATA=$(mktemp -d); start_on "$DATA" "$@"; }
start_on() {
  DATA=$1; shift
  FLOWGATE_BOOTSTRAP_TOKEN=$TOKEN FLOWGATE_LOG=warn "$BIN" serve --listen 127.0.0.1:$PORT --data-dir "$DATA" "$@" >/dev/null &
  PID=$!
  wait_ready healthz
  curl -sf -X PUT "$URL/v1/integrations/bench" -H "Authorization: Bearer $TOKEN" -H 'content-type: application/yaml' --data-binary @bench/flows.yaml >/dev/null
}
stop() { kill "$PID"; wait "$PID" 2>/dev/null || true; PID=; }
count_succeeded() { curl -s "$URL/metrics" | awk -F' ' '/^flowgate_executions_total\{.*status="succeeded"/{s+=$2} END{print s+0}'; }
x_bare() { awk -v a="$1" -v b="$BARE_RPS" 'BEGIN{printf "%.2f", a/b}'; }
# wrk's latency (e.g. 812.00us, 1.20ms, 1.01s) in microseconds.
to_us() { awk -v v="$1" 'BEGIN{ if (v ~ /us$/) f=1; else if (v ~ /ms$/) f=1000; else if (v ~ /s$/) f=1000000; sub(/[a-z]+$/, "", v); printf "%.0f", v*f }'; }
p50_us() { wrk -t1 -c1 -d"$STEP_DURATION" --latency -s bench/post.lua "$1" | awk '/ 50%/{print $2}' | { read -r v; to_us "$v"; }; }
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
echo "async ingest (durable, no workers): $INGEST_RPS req/s (p99 $INGEST_P99), $(x_bare "$INGEST_RPS") x bare"
echo "RSS: idle $IDLE_RSS MB, after ingest load $LOADED_RSS MB"

# 2b. The backlog just ingested, drained by the workers of a node started on it: claimed work
#     (issue 16: as fast as work handed straight to a worker).
BACKLOG_DATA=$DATA
start_on "$BACKLOG_DATA"
BACKLOG=$(queued)
T0=$(date +%s.%N)
while [ "$(queued)" != "0" ]; do sleep 0.1; done
T1=$(date +%s.%N)
DRAIN_RATE=$(awk -v n="$BACKLOG" -v a="$T0" -v b="$T1" 'BEGIN{printf "%.0f", n/(b-a)}')
echo "queued backlog drained:             $BACKLOG executions in $(awk -v a="$T0" -v b="$T1" 'BEGIN{printf "%.1f", b-a}') s = $DRAIN_RATE executions/s, $(x_bare "$DRAIN_RATE") x bare (RSS $(rss_mb "$PID") MB)"
stop
rm -rf "$BACKLOG_DATA"

# 3. End to end: ingest at full speed with workers running the 3-step pipeline, then drain.
start_flowgate
T0=$(date +%s.%N)
MIXED_RPS=$(wrk_rate "$URL/hooks/default/bench/pipeline")
while [ "$(queued)" != "0" ]; do sleep 0.2; done
T1=$(date +%s.%N)
DONE=$(count_succeeded)
E2E_RSS=$(rss_mb "$PID")
E2E_RATE=$(awk -v n="$DONE" -v a="$T0" -v b="$T1" 'BEGIN{printf "%.0f", n/(b-a)}')
echo "ingest with workers running:        $MIXED_RPS req/s, $(x_bare "$MIXED_RPS") x bare"
echo "end to end (3-step pipeline):       $DONE executions in $(awk -v a="$T0" -v b="$T1" 'BEGIN{printf "%.1f", b-a}') s = $E2E_RATE executions/s, $(x_bare "$E2E_RATE") x bare (RSS $E2E_RSS MB)"

# 4. Sync request-response: closed-loop throughput, then latency at a fixed 1,000 req/s on a
#    fresh server (steady state; right after the runs above the WAL is still being checkpointed).
stop
start_flowgate
SYNC_RPS=$(wrk_rate "$URL/hooks/default/bench/quote")
SYNC_P50=$(awk '/ 50%/{print $2}' /tmp/wrk.out); SYNC_P99=$(awk '/ 99%/{print $2}' /tmp/wrk.out)
echo "sync request-response:              $SYNC_RPS req/s, $(x_bare "$SYNC_RPS") x bare (p50 $SYNC_P50, p99 $SYNC_P99 at $CONNS connections)"
stop
start_flowgate
echo "sync at a fixed 1,000 req/s for 10 s (fresh server):"
"$LOADGEN" "$URL/hooks/default/bench/quote" 1000 10 "$BODY" | sed 's/^/  /'
echo "RSS after the sync runs: $(rss_mb "$PID") MB"
stop

# 5. The same ingest with synchronous=NORMAL (survives a process crash, not power loss).
start_flowgate --no-workers --durability normal
NORMAL_RPS=$(wrk_rate "$URL/hooks/default/bench/pipeline")
echo "async ingest, --durability normal:  $NORMAL_RPS req/s, $(x_bare "$NORMAL_RPS") x bare"
stop

# 6. The cost of one more step, at one connection (p50 latency of sync flows that differ by
#    steps): eight more `transform` steps, and one durable `http` step calling a bare axum
#    server on this machine. Beside them, the floor an http step cannot go below: one fsync
#    (its journal entry is made durable before the call) and one loopback round trip.
STEP_DURATION=${STEP_DURATION:-5s}
BARE_PORT=$((PORT + 1))
"$BARE" 127.0.0.1:$BARE_PORT & BARE_PID=$!; sleep 0.3
RTT_US=$(p50_us "http://127.0.0.1:$BARE_PORT/hooks/default/rtt")
start_flowgate
# The floor, measured in the data directory: a 4 KB write made durable (fsync), and a
# one-row SQLite commit in WAL mode with synchronous=FULL (the frames it writes, then fsync).
read -r FSYNC_US COMMIT_US < <(python3 - "$DATA" <<'PY'
import os, sqlite3, sys, time, statistics
path = os.path.join(sys.argv[1], "fsync-probe")
fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
took = []
for _ in range(300):
    os.write(fd, b"x" * 4096)
    t = time.perf_counter(); os.fsync(fd); took.append(time.perf_counter() - t)
os.close(fd); os.unlink(path)
db = sqlite3.connect(path + ".db", isolation_level=None)
db.execute("PRAGMA journal_mode=WAL"); db.execute("PRAGMA synchronous=FULL")
db.execute("CREATE TABLE t (id TEXT PRIMARY KEY, body TEXT)")
commits = []
for n in range(300):
    t = time.perf_counter(); db.execute("INSERT INTO t VALUES (?, ?)", (f"{n:08}", "x" * 200)); commits.append(time.perf_counter() - t)
db.close()
for suffix in (".db", ".db-wal", ".db-shm"):
    if os.path.exists(path + suffix): os.unlink(path + suffix)
print(round(statistics.median(took) * 1e6), round(statistics.median(commits) * 1e6))
PY
)
sed "s|BARE_URL|http://127.0.0.1:$BARE_PORT|" bench/steps.yaml | curl -sf -X PUT "$URL/v1/integrations/steps" -H "Authorization: Bearer $TOKEN" -H 'content-type: application/yaml' --data-binary @- >/dev/null
ONE_US=$(p50_us "$URL/hooks/default/bench/steps1")
NINE_US=$(p50_us "$URL/hooks/default/bench/steps9")
HTTP_US=$(p50_us "$URL/hooks/default/bench/http1")
stop
kill "$BARE_PID"; wait "$BARE_PID" 2>/dev/null || true
echo "one more step, at one connection (p50; floor here: fsync $FSYNC_US us, one-row SQLite commit $COMMIT_US us, loopback round trip $RTT_US us):"
echo "  sync flow, 1 transform:           $ONE_US us"
echo "  per extra transform step:         $(awk -v a="$NINE_US" -v b="$ONE_US" 'BEGIN{printf "%.1f", (a-b)/8}') us (9 transforms: $NINE_US us)"
HTTP_STEP=$((HTTP_US - ONE_US))
echo "  durable http step:                $HTTP_STEP us = commit $COMMIT_US + round trip $RTT_US + ours $((HTTP_STEP - COMMIT_US - RTT_US)) us (flow: $HTTP_US us)"
