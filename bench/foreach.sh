#!/usr/bin/env bash
# Long loops (issue 18): one execution whose `foreach` runs COUNTS items (a transform per item),
# in order and with concurrency 8 — and `heavy`, three steps per item whose outputs are about
# 1 KB each (so 300 MB of step outputs over 100,000 items) — on a release build with SQLite. Prints, per run, the time,
# the items per second, the journal entries and the node's peak resident memory while it ran
# (sampled every 50 ms) beside its memory before: memory must stay flat as the list grows.
# Usage: bench/foreach.sh   (COUNTS="1000 10000 100000")
set -euo pipefail
cd "$(dirname "$0")/.."
COUNTS=${COUNTS:-"1000 10000 100000"}
PORT=${PORT:-18130}
URL=http://127.0.0.1:$PORT
TOKEN=fgt_bench_token
BIN=${BIN:-target/release/flowgate}
[ -n "${SKIP_BUILD:-}" ] || cargo build --release -p flowgate 2>&1 | tail -1
DATA=$(mktemp -d)
PID=
cleanup() { [ -n "$PID" ] && kill "$PID" 2>/dev/null; wait 2>/dev/null || true; rm -rf "$DATA"; }
trap cleanup EXIT
FLOWGATE_BOOTSTRAP_TOKEN=$TOKEN FLOWGATE_LOG=warn "$BIN" serve --listen 127.0.0.1:$PORT --data-dir "$DATA" >/dev/null 2>&1 &
PID=$!
for _ in $(seq 200); do curl -sf "$URL/readyz" >/dev/null && break; sleep 0.05; done
rss_mb() { awk '/VmRSS/{printf "%.1f", $2/1024}' "/proc/$PID/status"; }
curl -sf -X PUT "$URL/v1/integrations/loops" -H "Authorization: Bearer $TOKEN" -H 'content-type: application/yaml' --data-binary @- >/dev/null <<'YAML'
integration: loops
flows:
  - flow: in-order
    trigger: { manual: {} }
    steps:
      - id: each
        foreach:
          items: '[range(0; .body.n)]'
          collect: '.sq'
          steps:
            - { id: square, transform: '{ i: ., sq: (. * .) }' }
      - { id: total, transform: 'length' }
  - flow: concurrent
    trigger: { manual: {} }
    steps:
      - id: each
        foreach:
          items: '[range(0; .body.n)]'
          concurrency: 8
          collect: '.sq'
          steps:
            - { id: square, transform: '{ i: ., sq: (. * .) }' }
      - { id: total, transform: 'length' }
  - flow: heavy
    trigger: { manual: {} }
    steps:
      - id: each
        foreach:
          items: '[range(0; .body.n)]'
          concurrency: 8
          collect: '.i'
          steps:
            - { id: pad, transform: '{ i: ., text: ([range(0; 64)] | map(tostring) | join("-")) }' }
            - { id: again, transform: '. + { more: (.text + .text + .text + .text) }' }
            - { id: shrink, transform: '{ i: .i }' }
      - { id: total, transform: 'length' }
YAML
printf '%-11s %8s %9s %12s %11s %13s %13s\n' flow items seconds items/s entries "RSS before" "RSS peak"
for flow in ${FLOWS:-in-order concurrent heavy}; do
  for n in $COUNTS; do
    before=$(rss_mb)
    t0=$(date +%s.%N)
    id=$(curl -sf -X POST "$URL/v1/integrations/loops/flows/$flow/run" -H "Authorization: Bearer $TOKEN" \
      -H 'content-type: application/json' -d "{\"body\":{\"n\":$n}}" | python3 -c 'import json,sys; print(json.load(sys.stdin)["executionId"])')
    peak=$before
    while :; do
      r=$(rss_mb); peak=$(awk -v a="$peak" -v b="$r" 'BEGIN{print (b>a)?b:a}')
      st=$(curl -sf "$URL/v1/executions?limit=1" -H "Authorization: Bearer $TOKEN" | python3 -c 'import json,sys; print(json.load(sys.stdin)["items"][0]["status"])')
      [ "$st" = succeeded ] && break
      [ "$st" = failed ] && { echo "execution $id failed"; exit 1; }
      sleep 0.05
    done
    t1=$(date +%s.%N)
    entries=$(python3 - "$DATA" "$id" <<'PY'
import sqlite3, sys, glob
db = glob.glob(sys.argv[1] + "/*.db")[0]
c = sqlite3.connect(db)
print(c.execute("select count(*) from step_attempts where execution_id = ?", (sys.argv[2],)).fetchone()[0])
PY
)
    secs=$(awk -v a="$t0" -v b="$t1" 'BEGIN{printf "%.2f", b-a}')
    rate=$(awk -v n="$n" -v s="$secs" 'BEGIN{printf "%.0f", n/s}')
    printf '%-11s %8s %9s %12s %11s %10s MB %10s MB\n' "$flow" "$n" "$secs" "$rate" "$entries" "$before" "$peak"
  done
done
