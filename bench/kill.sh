#!/usr/bin/env bash
# The kill test at benchmark scale: more events and more SIGKILLs than CI runs.
# Usage: bench/kill.sh   (EVENTS=5000 KILLS=30)
set -euo pipefail
cd "$(dirname "$0")/.."
FLOWGATE_KILL_TEST_EVENTS=${EVENTS:-5000} FLOWGATE_KILL_TEST_KILLS=${KILLS:-30} \
  cargo test --release -p flowgate --test crash -- --nocapture 2>&1 | grep -E "kill test|test result|panicked"
