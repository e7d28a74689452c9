#!/usr/bin/env bash
# Sandboxed build wall time ÷ plain `cargo build --release --locked` of the same crate,
# both with warm caches (sources and dependencies already downloaded), measured in the same
# run, interleaved, best of two each. Prints where the sandbox's time goes.
# Usage: scripts/bench-build.sh [CRATE@VERSION ...]   (BACKEND=docker|sandbox, default sandbox)
set -euo pipefail
cd "$(dirname "$0")/.."
backend=${BACKEND:-sandbox}
crates=("$@")
[ ${#crates[@]} -gt 0 ] || crates=(serde_json@1.0.140 hexyl@0.16.0 regex@1.11.1)
scripts/build-image.sh >/dev/null
cargo build --release --locked --quiet
bin=$PWD/target/release/synchronicity
work=$(mktemp -d /tmp/bench-build.XXXXXX)
jobs=$(nproc)

now() { date +%s.%N; }
calc() { python3 -c "print($1)"; }
printf '%-22s %9s %9s %7s   %s\n' crate plain_s sandbox_s ratio "sandbox phases (resolve/fetch/prepare/build/hash s)"
for c in "${crates[@]}"; do
  name=${c%@*}; version=${c#*@}
  # Warm up: downloads, toolchain copy, the crate's lockfile (shipped or generated).
  "$bin" build "$c" --backend "$backend" --work-dir "$work/ws" --json >"$work/warm.json" 2>/dev/null || true
  src="$work/src/$name-$version"
  if [ ! -d "$src" ]; then
    mkdir -p "$src"
    sha=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["source_sha256"])' "$work/warm.json")
    crate="$work/ws/cache/crates/$sha.crate"
    tar -xzf "$crate" -C "$work/src"
    [ -f "$src/Cargo.lock" ] || (cd "$src" && cargo generate-lockfile --quiet)
    (cd "$src" && cargo fetch --locked --quiet)
  fi
  best_plain=999999; best_box=999999; phases=""
  for round in 1 2; do
    rm -rf "$work/plain-target"
    t0=$(now)
    (cd "$src" && CARGO_TARGET_DIR="$work/plain-target" cargo build --release --locked -j "$jobs" --quiet 2>/dev/null)
    t1=$(now)
    out=$("$bin" build "$c" --backend "$backend" --work-dir "$work/ws" --json 2>/dev/null)
    t2=$(now)
    p=$(calc "$t1 - $t0"); s=$(calc "$t2 - $t1")
    if [ "$(calc "int($p < $best_plain)")" = 1 ]; then best_plain=$p; fi
    if [ "$(calc "int($s < $best_box)")" = 1 ]; then
      best_box=$s
      phases=$(echo "$out" | python3 -c 'import json,sys; d=json.load(sys.stdin)["durations_secs"]; print("/".join("%.1f" % d[k] for k in ["resolve","fetch","prepare","build","hash"]))')
    fi
  done
  printf '%-22s %9.1f %9.1f %6.2fx   %s\n' "$c" "$best_plain" "$best_box" "$(calc "$best_box / $best_plain")" "$phases"
done
