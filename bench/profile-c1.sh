#!/usr/bin/env bash
# One request at a time through a sync flow of bench/steps.yaml (default: http1, whose http
# step calls a bare axum server), with an optional `perf record` of the server (PERF=1 ->
# /tmp/perf.data). Prints the p50, the server's CPU time and its context switches.
# Usage: [PERF=1] [FLOW=steps1|steps9|http1] bench/profile-c1.sh
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-target/release/flowgate}
PORT=${PORT:-18088}
BARE_PORT=$((PORT + 1))
FLOW=${FLOW:-http1}
TOKEN=fgt_bench_token
cargo build --release -p flowgate -p flowgate-bench-baseline 2>&1 | tail -1
target/release/bare_axum 127.0.0.1:$BARE_PORT & BARE_PID=$!
DATA=$(mktemp -d)
FLOWGATE_BOOTSTRAP_TOKEN=$TOKEN FLOWGATE_LOG=warn "$BIN" serve --listen 127.0.0.1:$PORT --data-dir "$DATA" >/dev/null 2>&1 &
PID=$!
trap 'kill $PID $BARE_PID 2>/dev/null; wait 2>/dev/null; rm -rf "$DATA"' EXIT
for _ in $(seq 200); do curl -sf "http://127.0.0.1:$PORT/healthz" >/dev/null && break; sleep 0.05; done
sed "s|BARE_URL|http://127.0.0.1:$BARE_PORT|" bench/steps.yaml | curl -sf -X PUT "http://127.0.0.1:$PORT/v1/integrations/steps" \
  -H "Authorization: Bearer $TOKEN" -H 'content-type: application/yaml' --data-binary @- >/dev/null
URL="http://127.0.0.1:$PORT/hooks/default/bench/$FLOW"
wrk -t1 -c1 -d3s -s bench/post.lua "$URL" >/dev/null   # warm-up
ticks() { awk '{print $14 + $15}' "/proc/$PID/stat"; }
BEFORE=$(ticks)
if [ -n "${PERF:-}" ]; then perf record -q -g -F 1999 -p "$PID" -o /tmp/perf.data -- sleep 8 >/dev/null 2>&1 & PERF_PID=$!; fi
wrk -t1 -c1 -d8s --latency -s bench/post.lua "$URL" > /tmp/wrk-c1.out
[ -n "${PERF:-}" ] && wait "$PERF_PID"
AFTER=$(ticks)
REQS=$(awk '/requests in/{print $1}' /tmp/wrk-c1.out)
echo "flow $FLOW at one connection: p50 $(awk '/ 50%/{print $2}' /tmp/wrk-c1.out), $REQS requests"
awk -v t=$((AFTER - BEFORE)) -v n="$REQS" -v hz="$(getconf CLK_TCK)" 'BEGIN{printf "server CPU per request: %.0f us\n", t / hz / n * 1e6}'
grep -E "voluntary" "/proc/$PID/status"
[ -n "${PERF:-}" ] && echo "perf report -i /tmp/perf.data --no-children --sort sym -g none | head -40"
exit 0
