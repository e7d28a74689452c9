#!/usr/bin/env bash
# Consensus figures for 4 members on loopback (release build):
#   1. last reveal -> cosigned checkpoint, median of 20 requests (goal <= 1.5 s);
#   2. requests decided per second in a batch of 1,000 (a builder that returns chosen
#      manifests at once, so this measures ordering, commit-reveal and logging);
#   3. each idle member's CPU over IDLE_SECONDS (goal <= 0.2 % of one core), RSS, and the
#      growth of its node directory extrapolated to a day (goal <= 1 MiB/day: an idle group
#      decides no empty heights), as separate processes (the real node with that builder).
# Usage: scripts/bench-consensus.sh [BATCH] [IDLE_SECONDS]
set -euo pipefail
cd "$(dirname "$0")/.."
batch=${1:-1000}
idle=${2:-60}

cargo build --release --quiet --features testkit --example bench_consensus --bin fixed_builder_node --bin synchronicity
echo "== in-process group (latency, throughput)"
target/release/examples/bench_consensus "$batch"

echo "== idle members as processes: CPU over ${idle} s and RSS"
work=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT
bin=target/release/synchronicity
for i in 0 1 2 3; do
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  "$bin" keygen --dir "$work/n$i" --name "n$i" --addr "/ip4/127.0.0.1/tcp/$port" >/dev/null 2>&1
done
"$bin" committee init --origin example.org/synchronicity/bench --out "$work/committee.toml" \
  "$work/n0" "$work/n1" "$work/n2" "$work/n3" >/dev/null 2>&1
for i in 0 1 2 3; do
  RUST_LOG=warn target/release/fixed_builder_node --dir "$work/n$i" \
    --committee "$work/committee.toml" 2>"$work/n$i.log" &
  pids+=($!)
done
sleep 10 # connect and settle
ticks=$(getconf CLK_TCK)
declare -A start
declare -A bytes
for i in 0 1 2 3; do
  p=${pids[$i]}
  start[$p]=$(awk '{print $14+$15}' /proc/$p/stat)
  bytes[$i]=$(du -sb "$work/n$i" | cut -f1)
done
sleep "$idle"
for i in 0 1 2 3; do
  p=${pids[$i]}
  end=$(awk '{print $14+$15}' /proc/$p/stat)
  rss=$(awk '/VmRSS/ {print $2}' /proc/$p/status)
  grown=$(( $(du -sb "$work/n$i" | cut -f1) - ${bytes[$i]} ))
  awk -v s="${start[$p]}" -v e="$end" -v t="$ticks" -v d="$idle" -v r="$rss" -v i="$i" -v g="$grown" \
    'BEGIN { printf "member %d: idle CPU %.3f %% of one core over %d s, RSS %.1f MiB, store grew %d bytes (%.3f MiB/day)\n", i, 100*(e-s)/t/d, d, r/1024, g, g*86400/d/1048576 }'
done
