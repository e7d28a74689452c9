#!/usr/bin/env bash
# `audit` figures for the 480-package fixture lockfile (tests/fixtures/audit/Cargo.lock)
# against 4 members on loopback that logged every one of its packages (release build; the
# members run the real node with a builder that returns chosen manifests at once, so the
# log fills in seconds). Prints the CPU (user+sys) and wall time of:
#   1. a cold audit, proofs fetched from ONE member in batches (goal <= 3 s wall);
#   2. the same audit with every proof cached (`--offline`; goal <= 0.5 s CPU).
# CPU is user+sys, then user alone in parentheses (kernel time, e.g. the cache's file
# writes, varies with the disk's other work; before 6b5f4ba each cached proof was fsynced).
# With OTHER_CLIENT (another build's `synchronicity`, e.g. a worktree's), each run also
# times that client's audits against the SAME members, the two taking turns going first,
# so two clients compare on one group and one disk (the light protocol must be the same).
# Usage: scripts/bench-audit.sh [RUNS] [OTHER_CLIENT]
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-5}
other=${2:-}
cargo build --release --quiet --features testkit --bin fixed_builder_node --bin synchronicity
bin=$PWD/target/release/synchronicity
work=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT
for i in 0 1 2 3; do
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  "$bin" keygen --dir "$work/n$i" --name "n$i" --addr "/ip4/127.0.0.1/tcp/$port" >/dev/null 2>&1
done
"$bin" committee init --origin example.org/synchronicity/bench --out "$work/committee.toml" \
  --commit-grace-secs 1 "$work/n0" "$work/n1" "$work/n2" "$work/n3" >/dev/null 2>&1
for i in 0 1 2 3; do
  RUST_LOG=warn target/release/fixed_builder_node --dir "$work/n$i" \
    --committee "$work/committee.toml" 2>"$work/n$i.log" &
  pids+=($!)
done
# The test builder pins every source as sha256 0101…: the audited lockfile says the same,
# so every row is "reproduced" (what is measured is fetching and verifying).
lock=$work/Cargo.lock
sed -E 's/^checksum = "[0-9a-f]{64}"/checksum = "'"$(printf '01%.0s' $(seq 32))"'"/' \
  tests/fixtures/audit/Cargo.lock >"$lock"
specs=$(python3 - "$lock" <<'PY'
import sys, tomllib
l = tomllib.load(open(sys.argv[1], "rb"))
print("\n".join(sorted({f'{p["name"]}@{p["version"]}' for p in l["package"] if p.get("source", "").startswith("registry+")})))
PY
)
n=$(echo "$specs" | wc -l)
for _ in $(seq 1 100); do "$bin" status --node "$work/n0" >/dev/null 2>&1 && break; sleep 0.2; done
echo "== logging $n packages"
for s in $specs; do "$bin" submit "$s" --node "$work/n0" >/dev/null; done
for _ in $(seq 1 600); do
  cosigned=$("$bin" status --node "$work/n0" --json | python3 -c 'import json,sys; d=json.load(sys.stdin); print(d.get("checkpoint_size") or 0)')
  [ "$cosigned" -ge "$n" ] && break
  sleep 0.5
done
echo "logged and cosigned: $cosigned entries"
m=$(python3 -c "import tomllib; c=tomllib.load(open('$work/committee.toml','rb'))['members'][0]; print(c['addrs'][0]+'/p2p/'+c['peer_id'])")
measure() { # prints "wall user+sys" of the command
  python3 - "$@" <<'PY'
import os, subprocess, sys, time, resource
t = time.monotonic()
p = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
wall = time.monotonic() - t
r = resource.getrusage(resource.RUSAGE_CHILDREN)
if p.returncode != 0:
    sys.exit("audit failed: " + p.stderr.decode()[-400:])
print(f"{wall:.3f} {r.ru_utime + r.ru_stime:.3f} ({r.ru_utime:.3f})")
PY
}
audits() { # BINARY CACHE: "cold WALL CPU (USER) | cached WALL CPU (USER)"
  local cold warm
  cold=$(measure "$1" audit --lockfile "$lock" --peer "$m" --trust "$work/committee.toml" --cache "$2" --json --deny not-reproduced,failed,unknown,source-mismatch) || return 1
  warm=$(measure "$1" audit --lockfile "$lock" --offline --trust "$work/committee.toml" --cache "$2" --json --deny not-reproduced,failed,unknown,source-mismatch) || return 1
  echo "cold $cold | cached $warm"
}
echo "== cold (batches from one member) and cached (--offline), $runs runs each: wall s, CPU s (user s)"
for r in $(seq 1 "$runs"); do
  if [ -n "$other" ] && [ $((r % 2)) -eq 0 ]; then
    line=$(audits "$other" "$work/other-cache-$r") || exit 1
    echo "run $r, other client: $line"
  fi
  line=$(audits "$bin" "$work/cache-$r") || exit 1
  echo "run $r: $line"
  if [ -n "$other" ] && [ $((r % 2)) -eq 1 ]; then
    line=$(audits "$other" "$work/other-cache-$r") || exit 1
    echo "run $r, other client: $line"
  fi
done
