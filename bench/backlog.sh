#!/usr/bin/env bash
# Backpressure and backlog (issue 4): ingest EVENTS events into a node that runs nothing, then
# start workers and sample resident memory every second while the backlog drains.
# Usage: bench/backlog.sh   (EVENTS=1000000)
set -euo pipefail
cd "$(dirname "$0")/.."
EVENTS=${EVENTS:-1000000}
PORT=${PORT:-18120}
URL=http://127.0.0.1:$PORT
TOKEN=fgt_bench_token
command -v wrk >/dev/null || apt-get install -y wrk >/dev/null
cargo build --release -p flowgate 2>&1 | tail -1
BIN=target/release/flowgate
DATA=$(mktemp -d)
PID=
cleanup() { [ -n "$PID" ] && kill "$PID" 2>/dev/null; wait 2>/dev/null || true; rm -rf "$DATA"; }
trap cleanup EXIT
start() {
  FLOWGATE_BOOTSTRAP_TOKEN=$TOKEN FLOWGATE_LOG=warn "$BIN" serve --listen 127.0.0.1:$PORT --data-dir "$DATA" "$@" >/dev/null 2>&1 &
  PID=$!
  for _ in $(seq 200); do curl -sf "$URL/readyz" >/dev/null && return 0; sleep 0.05; done
  echo "server did not start"; exit 1
}
rss_mb() { awk '/VmRSS/{printf "%.1f", $2/1024}' "/proc/$PID/status"; }
queued() { curl -s "$URL/metrics" | awk '/^flowgate_queue_depth\{status="queued"\}/{q=$2} /^flowgate_queue_depth\{status="running"\}/{r=$2} END{print q+r}'; }

start --roles api,scheduler
curl -sf -X PUT "$URL/v1/integrations/bench" -H "Authorization: Bearer $TOKEN" -H 'content-type: application/yaml' --data-binary @bench/flows.yaml >/dev/null
echo "ingesting $EVENTS events (no workers)…"
T0=$(date +%s)
# wrk in rounds until the count is reached (wrk has no request count).
while :; do
  n=$(curl -s "$URL/metrics" | awk -F' ' '/^flowgate_events_accepted_total/{s+=$2} END{print s+0}')
  [ "$n" -ge "$EVENTS" ] && break
  wrk -t2 -c64 -d5s -s bench/post.lua "$URL/hooks/default/bench/pipeline" >/dev/null
done
echo "ingested in $(( $(date +%s) - T0 )) s; RSS $(rss_mb) MB"
kill "$PID"; wait "$PID" 2>/dev/null || true
start
echo "draining with workers; RSS every 5 s:"
T0=$(date +%s); MIN=999999; MAX=0
while :; do
  q=$(queued); r=$(rss_mb)
  MIN=$(awk -v a="$MIN" -v b="$r" 'BEGIN{print (b<a)?b:a}'); MAX=$(awk -v a="$MAX" -v b="$r" 'BEGIN{print (b>a)?b:a}')
  [ $(( ($(date +%s) - T0) % 5 )) -eq 0 ] && echo "  t=$(( $(date +%s) - T0 ))s queued=$q rss=${r}MB"
  [ "$q" = "0" ] && break
  sleep 1
done
echo "drained in $(( $(date +%s) - T0 )) s; RSS min $MIN MB, max $MAX MB"
