#!/usr/bin/env bash
# Issue 28's figures: a real application's cold `cargo build --release` against
# `cargo synchronicity cook && cargo build --release`, side by side in one run.
#
#   scripts/bench-cook.sh [CRATE@VERSION] [RUNS]      default: hexyl@0.17.0, 1 run
#
# 1. The local testnet (`scripts/testnet.sh up`: 4 members, the sandbox backend) orders the
#    application's recipe (`submit --recipe`, its shipped Cargo.lock) and decides it.
# 2. One cargo home for the user's side, its sources fetched once beforehand (`cargo
#    fetch`), so both sides measure compiling, not downloading crates.
# 3. Each run, in alternating order: COLD is `cargo build --release --locked` in a copy of
#    the application with no target/; COOK is `cook` (recipe, proven lookup, every file
#    fetched from the 4 members, 8 at once, and checked) then the same `cargo build`, in
#    another copy.
#    Wall seconds and CPU (user+sys) of each command, with `/usr/bin/time`.
# Prints the ratio (COOK wall / COLD wall; goal <= 0.3), the bundle's files and bytes, and
# the cook's own CPU (recipe, lookup, verification). Leaves the testnet down.
set -euo pipefail
cd "$(dirname "$0")/.."
spec=${1:-hexyl@0.17.0}
runs=${2:-1}
name=${spec%@*}
version=${spec#*@}
bin=$PWD/target/release/synchronicity
root=testnet/local
command -v /usr/bin/time >/dev/null || { apt-get update -qq && apt-get install -y -qq time >/dev/null; }

scripts/testnet.sh down >/dev/null 2>&1 || true
rm -rf "$root"
scripts/testnet.sh up
work=$(mktemp -d)
cleanup() { scripts/testnet.sh down >/dev/null 2>&1 || true; rm -rf "$work"; }
trap cleanup EXIT

curl -sSfL "https://static.crates.io/crates/$name/$name-$version.crate" | tar xz -C "$work"
app=$work/$name-$version
[ -f "$app/Cargo.lock" ] || { echo "error: $spec ships no Cargo.lock" >&2; exit 1; }
home=$work/cargo-home
mkdir -p "$home"
CARGO_HOME=$home cargo fetch --locked --manifest-path "$app/Cargo.toml" >/dev/null 2>&1

echo "== the group builds the recipe of $spec"
t0=$(date +%s)
id=$(CARGO_HOME=$home "$bin" submit --recipe "$app" --node "$root/n0")
"$bin" status "$id" --node "$root/n0" --watch >/dev/null
echo "decided in $(($(date +%s) - t0)) s (request $id)"

# Every member, as a client config would list them (cook spreads its files over them).
mapfile -t peers < <(python3 - "$root/committee.toml" <<'PY'
import sys, tomllib
for m in tomllib.load(open(sys.argv[1], "rb"))["members"]:
    print("--peer")
    print(f'{m["addrs"][0]}/p2p/{m["peer_id"]}')
PY
)
# cook makes /opt/rustwide/cargo-home a symlink to the user's cargo home (docs/cache.md).
[ -L /opt/rustwide/cargo-home ] && rm /opt/rustwide/cargo-home

timed() { # LABEL COMMAND…: runs it, prints "LABEL wall cpu", keeps stderr in $work/LABEL.err
  local label=$1
  shift
  /usr/bin/time -f "%e %U %S" -o "$work/$label.time" "$@" >"$work/$label.out" 2>"$work/$label.err" ||
    { echo "error: $label failed:" >&2; tail -20 "$work/$label.err" >&2; exit 1; }
  read -r wall user sys <"$work/$label.time"
  echo "$label $wall $(python3 -c "print(f'{$user + $sys:.2f}')")"
}

cold() {
  rm -rf "$work/cold" && cp -r "$app" "$work/cold"
  timed cold env CARGO_HOME="$home" cargo build --release --locked --manifest-path "$work/cold/Cargo.toml"
}
cook() {
  rm -rf "$work/cooked" && cp -r "$app" "$work/cooked"
  timed cook env CARGO_HOME="$home" "$bin" cook --manifest-path "$work/cooked/Cargo.toml" \
    "${peers[@]}" --trust "$root/committee.toml"
  # The environment cook printed (CARGO_HOME at the builders' path).
  local exports
  exports=$(cat "$work/cook.out")
  timed build env $(echo "$exports" | sed 's/^export //') cargo build --release --locked \
    --manifest-path "$work/cooked/Cargo.toml"
  grep -c '^ *Compiling' "$work/build.err" | sed 's/^/  crates compiled after cook: /'
}

echo "== $runs run(s): wall s, CPU s (user+sys)"
for r in $(seq 1 "$runs"); do
  if [ $((r % 2)) = 1 ]; then c=$(cold); k=$(cook); else k=$(cook); c=$(cold); fi
  echo "$c"
  echo "$k"
  cw=$(echo "$c" | awk '{print $2}')
  kw=$(echo "$k" | awk 'NR==1{w=$2} NR==2{w+=$2} END{print w}')
  kc=$(echo "$k" | awk 'NR==1{print $3}')
  python3 -c "print(f'run $r: cold {$cw:.1f} s; cook + build {$kw:.1f} s; ratio {$kw / $cw:.2f} (goal <= 0.3); cook CPU {$kc} s')"
  grep -h "fetched and verified" "$work/cook.err" | sed 's/^/  /'
done
