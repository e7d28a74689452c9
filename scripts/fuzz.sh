#!/usr/bin/env bash
# Runs the cargo-fuzz targets (checkpoint, signed_note, tlog_proof, index_answer, recipe) for SECONDS each
# (default 120). Uses the stable toolchain with RUSTC_BOOTSTRAP=1, since cargo fuzz needs
# unstable sanitizer flags and no nightly toolchain can be installed here.
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-120}
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked
export RUSTC_BOOTSTRAP=1
for target in checkpoint signed_note tlog_proof index_answer recipe; do
  echo "== $target ($secs s)"
  cargo fuzz run "$target" "fuzz/corpus/$target" -- -max_total_time="$secs" -max_len=8192 2>&1 |
    grep -E '^(#[0-9]+.*DONE|Done|==.*ERROR|SUMMARY|artifact_prefix|Test unit written)' || true
  if ls "fuzz/artifacts/$target"/crash-* >/dev/null 2>&1; then
    echo "error: $target found a crash: $(ls fuzz/artifacts/$target/crash-*)" >&2
    exit 1
  fi
done
