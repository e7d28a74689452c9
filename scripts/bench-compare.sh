#!/usr/bin/env bash
# The consensus and audit figures of two commits, in one run, side by side: BASE's own
# scripts/bench-consensus.sh and scripts/bench-audit.sh in a worktree of BASE (its own
# target/), then this checkout's, consensus first, audit second, so both see the same
# machine at about the same time. For "within N % of before" after a refactor.
# Usage: scripts/bench-compare.sh BASE [BATCH] [IDLE_SECONDS] [AUDIT_RUNS]
# BENCHES="audit" (or "consensus") runs one of the two; BENCH_BASE_TREE names the worktree
# (a kept one is checked out at BASE, so its target/ is reused).
set -euo pipefail
cd "$(dirname "$0")/.."
base=${1:?usage: scripts/bench-compare.sh BASE [BATCH] [IDLE_SECONDS] [AUDIT_RUNS]}
batch=${2:-1000}
idle=${3:-60}
runs=${4:-5}
head=$(git rev-parse --short HEAD)
base=$(git rev-parse --short "$base^{commit}")
tree=${BENCH_BASE_TREE:-$(dirname "$PWD")/bench-base-$base}
if [ -d "$tree" ]; then
  git -C "$tree" checkout --detach -q "$base"
else
  git worktree add --detach "$tree" "$base" >/dev/null
fi
out=$(mktemp -d)
# Build both sides first (each script's own `cargo build` line), so no measurement shares
# the machine with a compiler.
for dir in "$tree" "$PWD"; do
  echo ">> building in $dir" >&2
  (cd "$dir" && eval "$(grep -h '^cargo build' scripts/bench-consensus.sh scripts/bench-audit.sh)")
done
for bench in ${BENCHES:-consensus audit}; do
  case $bench in
    consensus) args=("$batch" "$idle") ;;
    audit) args=("$runs") ;;
  esac
  for side in base head; do
    dir=$PWD
    [ "$side" = base ] && dir=$tree
    echo ">> $bench at $side ($([ "$side" = base ] && echo "$base" || echo "$head"))" >&2
    if ! (cd "$dir" && scripts/bench-$bench.sh "${args[@]}") >"$out/$bench-$side.txt" 2>&1; then
      echo "error: bench-$bench.sh failed at $side:" >&2
      tail -20 "$out/$bench-$side.txt" >&2
      exit 1
    fi
  done
  echo "== bench-$bench.sh ${args[*]}: base $base | head $head"
  paste -d '|' <(awk '{printf "%-78.78s\n", $0}' "$out/$bench-base.txt") "$out/$bench-head.txt"
done
case " ${BENCHES:-consensus audit} " in
  *" audit "*)
    # The cold audit's kernel time varies with the disk between runs: the two clients once
    # more, taking turns, against the same members and disk.
    echo "== bench-audit.sh $runs, head's members; 'other client' is base $base's binary"
    scripts/bench-audit.sh "$runs" "$tree/target/release/synchronicity"
    ;;
esac
echo "(the base worktree is kept at $tree for the next run; remove it with: git worktree remove $tree)"
