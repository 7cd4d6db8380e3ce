#!/usr/bin/env bash
# The console with a million executions (issue 19): ingest EVENTS webhook events into a node
# without workers (all queued), run a share of them (journals to show), then time the pages
# a person opens — the executions monitor (first page, a filter, a page deep in the cursor)
# and an execution page — 30 requests each, as the server answers them (curl's time to the
# first byte on loopback; the page is rendered before its first byte).
# Usage: bench/console.sh   (EVENTS=1000000)
set -euo pipefail
cd "$(dirname "$0")/.."
EVENTS=${EVENTS:-1000000}
PORT=${PORT:-18140}
URL=http://127.0.0.1:$PORT
TOKEN=fgt_bench_token
BIN=${BIN:-target/release/flowgate}
command -v wrk >/dev/null || apt-get install -y wrk >/dev/null
[ -n "${SKIP_BUILD:-}" ] || cargo build --release -p flowgate 2>&1 | tail -1
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
start --roles api,scheduler
curl -sf -X PUT "$URL/v1/integrations/bench" -H "Authorization: Bearer $TOKEN" -H 'content-type: application/yaml' --data-binary @bench/flows.yaml >/dev/null
echo "ingesting $EVENTS events (no workers)…"
while :; do
  n=$(curl -s "$URL/metrics" | awk '/^flowgate_events_accepted_total/{s+=$2} END{print s+0}')
  [ "$n" -ge "$EVENTS" ] && break
  wrk -t2 -c64 -d5s -s bench/post.lua "$URL/hooks/default/bench/pipeline" >/dev/null
done
kill "$PID"; wait "$PID" 2>/dev/null || true
# Workers for a few seconds: the newest executions get journals, the rest stay queued.
start
sleep "${RUN_SECONDS:-5}"
kill "$PID"; wait "$PID" 2>/dev/null || true
start --roles api,scheduler
total=$(curl -s "$URL/v1/executions?limit=1" -H "Authorization: Bearer $TOKEN" >/dev/null; curl -s "$URL/metrics" | awk '/^flowgate_queue_depth\{status="queued"\}/{print $2}')
echo "executions queued still: $total"
JAR=$(mktemp)
curl -s -c "$JAR" -o /dev/null -X POST "$URL/console/signin" -H 'content-type: application/x-www-form-urlencoded' --data "token=$TOKEN"
time_page() {
  local what=$1 path=$2
  local times=()
  curl -s -b "$JAR" -o /dev/null "$URL$path"   # warm
  for _ in $(seq 30); do
    times+=("$(curl -s -b "$JAR" -o /dev/null -w '%{time_starttransfer}' "$URL$path")")
  done
  printf '%s\n' "${times[@]}" | sort -n | awk -v w="$what" '{a[NR]=$1*1000} END {printf "%-44s p50 %6.1f ms   p90 %6.1f ms   max %6.1f ms\n", w, a[int(NR*0.5)], a[int(NR*0.9)], a[NR]}'
}
first=$(curl -s "$URL/v1/executions?limit=1&status=succeeded" -H "Authorization: Bearer $TOKEN" | python3 -c 'import json,sys; print(json.load(sys.stdin)["items"][0]["id"])')
deep=$(curl -s "$URL/v1/executions?limit=500" -H "Authorization: Bearer $TOKEN" | python3 -c 'import json,sys; print(json.load(sys.stdin)["nextCursor"])')
oldest_cursor=$(python3 -c "print(max(1, int('$deep') - $EVENTS + 1000))")
time_page "monitor, first page" "/console/executions"
time_page "monitor, status=succeeded" "/console/executions?status=succeeded"
time_page "monitor, flow=pipeline" "/console/executions?flow=pipeline"
time_page "monitor, a page near the oldest" "/console/executions?cursor=$oldest_cursor"
time_page "execution page (succeeded, with journal)" "/console/executions/$first"
time_page "integrations" "/console/integrations"
rm -f "$JAR"
