#!/usr/bin/env bash
# Dry runs (issue 20): record EXECUTIONS executions of bench/flows.yaml's `pipeline` flow (three
# pure steps: a mapping, a filter, a pricing), then dry-run against all of them (1) the same
# version — every one `same` — and (2) a version whose pricing adds one for quantities over 5
# — about 2 in 7 `different` —, timing each from the POST to `done` (polled every 50 ms).
# Usage: bench/dry_run.sh   (EXECUTIONS=20000; PG=1 runs on PostgreSQL: a fresh database
# flowgate_dry_bench on 127.0.0.1:5432; WORKERS=n sets --dry-run-workers)
set -euo pipefail
cd "$(dirname "$0")/.."
EXECUTIONS=${EXECUTIONS:-20000}
PORT=${PORT:-18150}
URL=http://127.0.0.1:$PORT
TOKEN=fgt_bench_token
BIN=${BIN:-target/release/flowgate}
command -v wrk >/dev/null || apt-get install -y wrk >/dev/null
[ -n "${SKIP_BUILD:-}" ] || cargo build --release -p flowgate 2>&1 | tail -1
DATA=$(mktemp -d)
PID=
cleanup() { [ -n "$PID" ] && kill "$PID" 2>/dev/null; wait 2>/dev/null || true; rm -rf "$DATA"; }
trap cleanup EXIT
ARGS=()
if [ -n "${PG:-}" ]; then
  PGURL=postgres://postgres@127.0.0.1:5432
  psql "$PGURL/postgres" -qc 'DROP DATABASE IF EXISTS flowgate_dry_bench' -c 'CREATE DATABASE flowgate_dry_bench' >/dev/null
  ARGS+=(--database "$PGURL/flowgate_dry_bench")
fi
[ -z "${WORKERS:-}" ] || ARGS+=(--dry-run-workers "$WORKERS")
FLOWGATE_BOOTSTRAP_TOKEN=$TOKEN FLOWGATE_LOG=warn "$BIN" serve --listen 127.0.0.1:$PORT --data-dir "$DATA" "${ARGS[@]}" >/dev/null 2>&1 &
PID=$!
for _ in $(seq 200); do curl -sf "$URL/readyz" >/dev/null && break; sleep 0.05; done
api() { curl -sf -H "Authorization: Bearer $TOKEN" "$@"; }
put() { api -X PUT "$URL/v1/integrations/bench" -H 'content-type: application/yaml' --data-binary @"$1" >/dev/null; }
put bench/flows.yaml
echo "recording $EXECUTIONS executions…"
while :; do
  n=$(curl -s "$URL/metrics" | awk '/^flowgate_events_accepted_total/{s+=$2} END{print s+0}')
  [ "$n" -ge "$EXECUTIONS" ] && break
  wrk -t1 -c16 -d2s -s bench/post_varied.lua "$URL/hooks/default/bench/pipeline" >/dev/null
done
while :; do
  q=$(curl -s "$URL/metrics" | awk '/^flowgate_queue_depth\{status="(queued|running)"\}/{s+=$2} END{print s+0}')
  [ "$q" = 0 ] && break
  sleep 0.5
done
recorded=$(curl -s "$URL/metrics" | awk '/^flowgate_events_accepted_total/{s+=$2} END{print s+0}')
echo "recorded: $recorded executions"
dry_run() {
  local what=$1 body=$2
  local t0 id run
  t0=$(date +%s.%N)
  id=$(api -X POST "$URL/v1/integrations/bench/dry-runs" -H 'content-type: application/json' -d "$body" | python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')
  while :; do
    run=$(api "$URL/v1/dry-runs/$id?limit=1")
    [ "$(echo "$run" | python3 -c 'import json,sys; print(json.load(sys.stdin)["status"])')" != running ] && break
    sleep 0.05
  done
  echo "$run" | python3 -c "
import json, sys
r = json.load(sys.stdin); s = $(date +%s.%N) - $t0
print(f'{\"$what\":<34} {r[\"done\"]:>7} executions in {s:6.2f} s = {r[\"done\"]/s:8.0f}/s   same {r[\"same\"]}, different {r[\"different\"]}, would fail {r[\"wouldFail\"]}, unanswered {r[\"unanswered\"]} ({r[\"status\"]})')"
}
dry_run "the same version" "{\"version\": 1, \"flows\": [\"pipeline\"], \"limit\": $recorded}"
sed 's/total: (.qty \* 12.5)/total: (.qty * 12.5 + (if .qty > 5 then 1 else 0 end))/' bench/flows.yaml > "$DATA/changed.yaml"
put "$DATA/changed.yaml"
dry_run "a changed pricing" "{\"flows\": [\"pipeline\"], \"limit\": $recorded}"
dry_run "a changed pricing (again)" "{\"flows\": [\"pipeline\"], \"limit\": $recorded}"
