#!/usr/bin/env bash
# The console with a million executions (issue 19): ingest EVENTS webhook events into a node
# without workers (all queued), run a share of them (journals to show), then time the pages
# a person opens — the executions monitor (first page, a filter, a page deep in the cursor)
# and an execution page — 30 requests each, as the server answers them (curl's time to the
# first byte on loopback; the page is rendered before its first byte).
# Usage: bench/console.sh   (EVENTS=1000000; DATA=dir keeps the data directory, and a second
# run with the same DATA skips the ingest and times the pages again, e.g. after a migration;
# PG=1 runs on PostgreSQL: a fresh database flowgate_console_bench on 127.0.0.1:5432, kept
# for a second run with KEEP_PG=1)
set -euo pipefail
cd "$(dirname "$0")/.."
EVENTS=${EVENTS:-1000000}
PORT=${PORT:-18140}
URL=http://127.0.0.1:$PORT
TOKEN=fgt_bench_token
BIN=${BIN:-target/release/flowgate}
command -v wrk >/dev/null || apt-get install -y wrk >/dev/null
[ -n "${SKIP_BUILD:-}" ] || cargo build --release -p flowgate 2>&1 | tail -1
KEEP=${DATA:-}
DATA=${DATA:-$(mktemp -d)}
mkdir -p "$DATA"
PID=
cleanup() { [ -n "$PID" ] && kill "$PID" 2>/dev/null; wait 2>/dev/null || true; [ -n "$KEEP" ] || rm -rf "$DATA"; }
trap cleanup EXIT
DB_ARGS=()
if [ -n "${PG:-}" ]; then
  PGURL=postgres://postgres@127.0.0.1:5432
  if [ -z "${KEEP_PG:-}" ]; then
    rm -f "$DATA/ingested"
    psql "$PGURL/postgres" -qc 'DROP DATABASE IF EXISTS flowgate_console_bench' -c 'CREATE DATABASE flowgate_console_bench' >/dev/null
  fi
  DB_ARGS=(--database "$PGURL/flowgate_console_bench")
fi
start() {
  FLOWGATE_BOOTSTRAP_TOKEN=$TOKEN FLOWGATE_LOG=warn "$BIN" serve --listen 127.0.0.1:$PORT --data-dir "$DATA" "${DB_ARGS[@]}" "$@" >/dev/null 2>&1 &
  PID=$!
  for _ in $(seq 200); do curl -sf "$URL/readyz" >/dev/null && return 0; sleep 0.05; done
  echo "server did not start"; exit 1
}
if [ -z "$KEEP" ] || [ ! -e "$DATA/ingested" ]; then
start --roles api,scheduler
curl -sf -X PUT "$URL/v1/integrations/bench" -H "Authorization: Bearer $TOKEN" -H 'content-type: application/yaml' --data-binary @bench/flows.yaml >/dev/null
echo "ingesting $EVENTS events (no workers)…"
while :; do
  n=$(curl -s "$URL/metrics" | awk '/^flowgate_events_accepted_total/{s+=$2} END{print s+0}')
  [ "$n" -ge "$EVENTS" ] && break
  wrk -t2 -c64 -d5s -s bench/post_keyed.lua "$URL/hooks/default/bench/pipeline" >/dev/null
done
kill "$PID"; wait "$PID" 2>/dev/null || true
# Workers for a few seconds: the newest executions get journals, the rest stay queued.
start
sleep "${RUN_SECONDS:-5}"
kill "$PID"; wait "$PID" 2>/dev/null || true
touch "$DATA/ingested"
fi
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
key=$(curl -s "$URL/v1/executions/$first" -H "Authorization: Bearer $TOKEN" | python3 -c 'import json,sys; d=json.load(sys.stdin); print(d.get("trigger",{}).get("headers",{}).get("idempotency-key","none"))')
deep=$(curl -s "$URL/v1/executions?limit=500" -H "Authorization: Bearer $TOKEN" | python3 -c 'import json,sys; print(json.load(sys.stdin)["nextCursor"])')
oldest_cursor=$(python3 -c "print(max(1, int('$deep') - $EVENTS + 1000))")
time_page "monitor, first page" "/console/executions"
time_page "monitor, status=succeeded" "/console/executions?status=succeeded"
time_page "monitor, status=failed (none)" "/console/executions?status=failed"
time_page "monitor, flow=pipeline" "/console/executions?flow=pipeline"
time_page "monitor, integration+flow" "/console/executions?integration=bench&flow=pipeline"
time_page "monitor, trigger kind manual (none)" "/console/executions?triggerKind=manual"
time_page "monitor, last hour" "/console/executions?range=1h"
time_page "monitor, search an execution id" "/console/executions?search=$first"
time_page "monitor, search a delivery identity" "/console/executions?search=$key"
time_page "monitor, a page near the oldest" "/console/executions?cursor=$oldest_cursor"
time_page "execution page (succeeded, with journal)" "/console/executions/$first"
time_page "integrations" "/console/integrations"
time_page "dashboard, last hour" "/console/dashboard"
time_page "dashboard, last day" "/console/dashboard?range=day"
rm -f "$JAR"
