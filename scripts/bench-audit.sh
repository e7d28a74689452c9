#!/usr/bin/env bash
# `audit` figures for the 480-package fixture lockfile (tests/fixtures/audit/Cargo.lock)
# against 4 members on loopback that logged every one of its packages (release build; the
# members run the real node with a builder that returns chosen manifests at once, so the
# log fills in seconds). Prints the CPU (user+sys) and wall time of:
#   1. a cold audit, proofs fetched from ONE member in batches (goal <= 3 s wall);
#   2. the same audit with every proof cached (`--offline`; goal <= 0.5 s CPU);
#   3. `mirror --url` of member 0's HTTP tiles: the mirror's size on disk (bytes per entry,
#      and per 10^5 entries), and a refresh after 20 more entries (bytes downloaded);
#   4. the audit from the mirror (`--mirror`, no network; goal <= 0.2 s CPU), whose JSON
#      table must equal the online audit's (the script fails otherwise).
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
hport=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
for i in 0 1 2 3; do
  http=()
  [ "$i" = 0 ] && http=(--http "127.0.0.1:$hport")
  RUST_LOG=warn target/release/fixed_builder_node --dir "$work/n$i" \
    --committee "$work/committee.toml" "${http[@]}" 2>"$work/n$i.log" &
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

echo "== mirror of member 0's tiles (http://127.0.0.1:$hport)"
"$bin" mirror --url "http://127.0.0.1:$hport" --trust "$work/committee.toml" --out "$work/mirror"
bytes=$(du -sb "$work/mirror" | cut -f1)
echo "mirror: $bytes bytes for $cosigned entries = $((bytes / cosigned)) bytes/entry, $((bytes / cosigned * 100000 / 1048576)) MiB per 10^5 entries"
online=$work/online.json
"$bin" audit --lockfile "$lock" --peer "$m" --trust "$work/committee.toml" --cache "$work/cache-compare" --max-age 0s --json >"$online"
"$bin" audit --lockfile "$lock" --mirror "$work/mirror" --trust "$work/committee.toml" --json >"$work/mirror.json"
if ! cmp -s "$online" "$work/mirror.json"; then
  echo "error: the mirror's audit table differs from the online one" >&2
  diff "$online" "$work/mirror.json" | head -20 >&2
  exit 1
fi
echo "the mirror's audit table equals the online one ($(python3 -c "import json; print(len(json.load(open('$online'))))") rows)"
echo "== audit --mirror, $runs runs: wall s, CPU s (user s)"
for r in $(seq 1 "$runs"); do
  echo "run $r: $(measure "$bin" audit --lockfile "$lock" --mirror "$work/mirror" --trust "$work/committee.toml" --json --deny not-reproduced,failed,unknown,source-mismatch)"
done
echo "== a refresh after 20 more entries"
for k in $(seq 1 20); do "$bin" submit "refresh-$k@1.0.0" --node "$work/n0" >/dev/null; done
want=$((cosigned + 20))
for _ in $(seq 1 600); do
  now=$("$bin" status --node "$work/n0" --json | python3 -c 'import json,sys; d=json.load(sys.stdin); print(d.get("checkpoint_size") or 0)')
  [ "$now" -ge "$want" ] && break
  sleep 0.5
done
"$bin" mirror --url "http://127.0.0.1:$hport" --trust "$work/committee.toml" --out "$work/mirror"
