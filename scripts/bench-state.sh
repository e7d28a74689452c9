#!/usr/bin/env bash
# State bounded by open work, not by history: a real log store with 10^4, 10^5 and 10^6
# synthetic decided requests; for each, in a fresh process, start-up (open the store and
# restore the node's state as `synchronicity node` does), RSS, and the cost of applying a
# block (prepare + durable append + commit). Goals: start-up <= 2 s and RSS <= 100 MiB at
# 10^6; apply cost at 10^6 within 1.5x of 10^4.
# Usage: scripts/bench-state.sh [WORK_DIR]   (stores are kept there and reused)
set -euo pipefail
cd "$(dirname "$0")/.."
work=${1:-${TMPDIR:-/tmp}/synchronicity-bench-state}
mkdir -p "$work"
cargo build --release --locked --quiet --example state_bench
bin=target/release/examples/state_bench
for n in 10000 100000 1000000; do
  if [ ! -f "$work/n$n/done" ]; then
    echo "filling a store with $n entries..." >&2
    rm -rf "$work/n$n"
    "$bin" fill "$work/n$n" "$n"
    touch "$work/n$n/done"
  fi
  "$bin" run "$work/n$n"
done
