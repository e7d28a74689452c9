#!/usr/bin/env bash
# A joining member's time from start to first vote, on a group whose log already holds
# ENTRIES entries: four members as processes (`testnet_member node`: the real node, with a
# builder that answers `load-*` requests at once), the log filled by `testnet_member load`;
# then a fifth builder is made with `keygen`, started from the genesis file with `--join`,
# and added by `committee propose --add` + four approvals right away. Printed: the time the
# follower took to hold the whole log (its size equal to a member's), and to its first vote
# (`status` no longer says `joining`: it restarted into the epoch that adds it), with the
# heights it applied per second.
#
# Usage: scripts/bench-join.sh [ENTRIES] [RATE]   (default 100000 entries, submitted at 200/s)
# PROFILE=debug uses the debug binaries (no release build; slower nodes).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib/epochs.sh
entries=${1:-100000}
rate=${2:-200}
profile=${PROFILE:-release}
if [ "$profile" = release ]; then
  cargo build --release --locked --quiet --bin synchronicity --example testnet_member
else
  cargo build --locked --quiet --bin synchronicity --example testnet_member
fi
bin=target/$profile/synchronicity
tool=target/$profile/examples/testnet_member
work=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
dirs=()
for i in 0 1 2 3; do
  "$bin" keygen --dir "$work/n$i" --name "n$i" --addr "/ip4/127.0.0.1/tcp/$(port)" >/dev/null 2>&1
  printf 'idle_interval_ms = 1000\n' >"$work/n$i/node.toml"
  dirs+=("$work/n$i")
done
"$bin" committee init --origin example.org/synchronicity/bench-join --out "$work/committee.toml" \
  --commit-window-secs 120 --commit-grace-secs 1 --reveal-window-secs 15 "${dirs[@]}" >/dev/null
start() { # DIR [ARGS...]
  local d=$1
  shift
  SYNC_TEST_BUILD_MS=0 "$tool" node --dir "$d" --committee "$work/committee.toml" "$@" 2>>"$d/node.log" &
  pids+=($!)
}
for d in "${dirs[@]}"; do start "$d"; done
for d in "${dirs[@]}"; do
  for _ in $(seq 1 100); do "$bin" status --node "$d" >/dev/null 2>&1 && break; sleep 0.2; done
done
json() { "$bin" status --node "$1" --json 2>/dev/null | python3 -c "import json,sys; s=json.load(sys.stdin); print(s['$2'])" 2>/dev/null || echo 0; }

echo "filling the log with $entries entries at $rate/s..." >&2
t=$(date +%s)
"$tool" load --dirs "$(IFS=,; echo "${dirs[*]}")" --prefix load-bench --count "$entries" --rate "$rate" --out "$work/ids" >"$work/load.log" 2>&1
submitted=$(wc -l <"$work/ids")
while [ "$(json "$work/n0" log_size)" -lt "$submitted" ]; do sleep 1; done
size=$(json "$work/n0" log_size)
height=$(json "$work/n0" applied_height)
echo "log filled: $size entries in $height heights, $(($(date +%s) - t)) s" >&2

j=$work/n4
"$bin" keygen --dir "$j" --name n4 --addr "/ip4/127.0.0.1/tcp/$(port)" >/dev/null 2>&1
printf 'idle_interval_ms = 1000\n' >"$j/node.toml"
t0=$(date +%s.%N)
start "$j" --join
for _ in $(seq 1 100); do "$bin" status --node "$j" >/dev/null 2>&1 && break; sleep 0.1; done
committee_change "$bin" "$work/committee.toml" "$work" "${dirs[@]}" -- --add "$j" >/dev/null 2>&1 &
change=$!
caught="" voted=""
while [ -z "$voted" ]; do
  now=$(date +%s.%N)
  if [ -z "$caught" ] && [ "$(json "$j" log_size)" -ge "$size" ]; then caught=$now; fi
  if [ -n "$(voters "$bin" "$j")" ]; then voted=$now; fi
  if python3 -c "import sys; sys.exit(0 if $now - $t0 > 3600 else 1)"; then
    echo "error: the joining member did not vote within an hour" >&2
    exit 1
  fi
  sleep 0.2
done
wait "$change" || true
python3 - "$t0" "${caught:-$voted}" "$voted" "$size" "$height" <<'PY'
import sys
t0, caught, voted, size, height = map(float, sys.argv[1:])
print(f"joining member, log of {int(size)} entries in {int(height)} heights: whole log held after "
      f"{caught - t0:.1f} s ({height / max(caught - t0, 1e-9):.0f} heights/s), first vote after {voted - t0:.1f} s")
PY
