#!/usr/bin/env bash
# One binary's durable ingest (no workers) and end to end (workers, backlog drained), 10 s of
# wrk each on a fresh data directory: run it for two binaries in turn to compare them.
# Usage: bench/ingest_ab.sh BINARY
set -euo pipefail
BIN=$1; PORT=18160; URL=http://127.0.0.1:$PORT; TOKEN=fgt_bench_token
cd "$(dirname "$0")/.."
run() {
  local mode=$1; DATA=$(mktemp -d)
  local args=(); [ "$mode" = ingest ] && args=(--no-workers)
  FLOWGATE_BOOTSTRAP_TOKEN=$TOKEN FLOWGATE_LOG=warn "$BIN" serve --listen 127.0.0.1:$PORT --data-dir "$DATA" "${args[@]}" >/dev/null 2>&1 &
  PID=$!
  for _ in $(seq 200); do curl -sf "$URL/readyz" >/dev/null && break; sleep 0.05; done
  curl -sf -X PUT "$URL/v1/integrations/bench" -H "Authorization: Bearer $TOKEN" -H 'content-type: application/yaml' --data-binary @bench/flows.yaml >/dev/null
  r=$(wrk -t2 -c64 -d10s -s bench/post.lua "$URL/hooks/default/bench/pipeline" | awk '/Requests\/sec/{print $2}')
  if [ "$mode" = e2e ]; then
    t0=$(date +%s.%N)
    while :; do q=$(curl -s "$URL/metrics" | awk '/^flowgate_queue_depth\{status="(queued|running)"\}/{s+=$2} END{print s+0}'); [ "$q" = 0 ] && break; sleep 0.2; done
    n=$(curl -s "$URL/metrics" | awk '/^flowgate_events_accepted_total/{s+=$2} END{print s+0}')
    t=$(python3 -c "print(10 + $(date +%s.%N) - $t0)")
    echo "$mode $(basename $BIN): accepted $r req/s, $n executions done in ${t}s = $(python3 -c "print(round($n/$t))")/s"
  else
    echo "$mode $(basename $BIN): $r req/s"
  fi
  kill $PID; wait $PID 2>/dev/null || true; rm -rf "$DATA"
}
run ingest; run e2e
