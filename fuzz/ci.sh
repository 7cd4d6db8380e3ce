#!/usr/bin/env bash
# Brief fuzzing for CI (called by .ci/run): builds every fuzz target and runs each for
# FUZZ_SECONDS seconds (default 20) from its checked-in corpus. Any crash, panic, timeout,
# stack overflow or out-of-memory fails the script; the reproducer is left in
# fuzz/artifacts/<target>/.
#
# Stable Rust only: cargo-fuzz passes nightly-only flags (-Zsanitizer=address, …), which
# RUSTC_BOOTSTRAP=1 allows on a stable toolchain. FUZZ_SANITIZER=none builds without the
# address sanitizer (faster; stack overflows and panics are still caught).
set -euo pipefail
cd "$(dirname "$0")"

FUZZ_SECONDS="${FUZZ_SECONDS:-20}"
FUZZ_SANITIZER="${FUZZ_SANITIZER:-address}"
export RUSTC_BOOTSTRAP=1

if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "== installing cargo-fuzz"
  cargo install cargo-fuzz --locked
fi

echo "== building fuzz targets (sanitizer: $FUZZ_SANITIZER)"
cargo fuzz build -O -s "$FUZZ_SANITIZER"

status=0
for target in $(cargo fuzz list); do
  echo "== fuzzing $target for ${FUZZ_SECONDS}s"
  # A scratch copy of the corpus: what the run finds is not written back into the repo.
  work="$(mktemp -d)"
  cp -R "corpus/$target/." "$work/" 2>/dev/null || true
  dict=()
  if [[ -f "dict/$target.dict" ]]; then dict=(-dict="dict/$target.dict"); fi
  if ! cargo fuzz run -O -s "$FUZZ_SANITIZER" "$target" "$work" -- \
      -max_total_time="$FUZZ_SECONDS" -rss_limit_mb=2048 -timeout=10 -print_final_stats=1 "${dict[@]}"; then
    echo "!! $target failed: reproducer in fuzz/artifacts/$target/" >&2
    status=1
  fi
  rm -rf "$work"
done
exit "$status"
