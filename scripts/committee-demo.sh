#!/usr/bin/env bash
# Creates N node directories and a committee file under testnet/local/ and checks it:
# the README's walk-through in one command. Usage: scripts/committee-demo.sh [N] (default 4).
set -euo pipefail
cd "$(dirname "$0")/.."
n=${1:-4}
root=testnet/local
if [ -e "$root" ]; then
  echo "error: $root exists; remove it first (rm -rf $root)" >&2
  exit 1
fi
cargo build --release --locked --quiet
bin=target/release/synchronicity
dirs=()
for i in $(seq 0 $((n - 1))); do
  "$bin" keygen --dir "$root/n$i" --name "n$i" --addr "/ip4/127.0.0.1/tcp/$((7000 + i))" >/dev/null
  dirs+=("$root/n$i")
done
"$bin" committee init --origin example.org/synchronicity/local --out "$root/committee.toml" "${dirs[@]}"
"$bin" committee check "$root/committee.toml"
