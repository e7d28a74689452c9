#!/usr/bin/env bash
# A local testnet: N member nodes on loopback under testnet/local/.
#
#   scripts/testnet.sh up [-n N] [--follow CRATE,CRATE…] [--follow-interval SECS]
#                                             keys, committee, N nodes in the background;
#                                             with --follow every member follows those crates
#                                             on crates.io and orders each new release
#                                             (exactly once across the group)
#   scripts/testnet.sh demo [CRATE@VERSION] [--keep]
#                                             up (if needed), submit a real crate, wait for the
#                                             cosigned verdict, fetch the proof from a random
#                                             member, verify it offline with the artifact;
#                                             stops the testnet unless --keep
#   scripts/testnet.sh up … --backlog FILE   every member works through the list FILE
#                                             (`[follow] list`: CRATE or CRATE@VERSION lines),
#                                             each line built once across the group
#   scripts/testnet.sh up … --swarm-workers K
#                                             members build through Docker Swarm jobs on this
#                                             engine's swarm (initialised if needed), K jobs
#                                             at once in all: each member's share is K/N
#                                             (at least 1), its jobs labelled with its work
#                                             directory
#   scripts/testnet.sh backlog FILE [-n N] [--swarm-workers K]
#                                             a fresh group (state of an earlier one removed)
#                                             works through FILE; prints the progress until
#                                             every line is decided or given up, then the
#                                             time it took; stops the testnet
#   scripts/testnet.sh status                 each member's height, log size, checkpoint
#   scripts/testnet.sh join                   a new builder joins the running group: keygen,
#                                             its node started from the genesis with --join
#                                             (it follows the log as a non-voter), the next
#                                             committee proposed with it and approved by the
#                                             members; returns once it votes
#   scripts/testnet.sh leave NAME             member NAME leaves (proposed, approved; its node
#                                             stops by itself at the boundary)
#   scripts/testnet.sh down                   stop every node (SIGTERM)
#
# It installs what it needs: the sandbox image (scripts/build-image.sh: debootstrap +
# docker import, or the bubblewrap root filesystem) and a release build.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib/epochs.sh
root=testnet/local
workroot=${XDG_CACHE_HOME:-$HOME/.cache}/synchronicity/testnet
# TESTNET_PROFILE=debug runs the debug binaries (no 30-minute release build; slower nodes).
profile=${TESTNET_PROFILE:-release}
bin=target/$profile/synchronicity
cmd=${1:-demo}
shift || true

prepare() {
  bash scripts/build-image.sh >&2
  if [ "$profile" = release ]; then
    cargo build --release --locked --quiet --bin synchronicity
  else
    cargo build --locked --quiet --bin synchronicity
  fi
}

running() {
  [ -f "$root/pids" ] || return 1
  local any=1
  while read -r pid; do kill -0 "$pid" 2>/dev/null && any=0; done <"$root/pids"
  return $any
}

up() {
  local n=4 follow="" interval=300 backlog="" workers=0
  while [ $# -gt 0 ]; do
    case $1 in
      -n) n=$2; shift 2 ;;
      --follow) follow=$2; shift 2 ;;
      --follow-interval) interval=$2; shift 2 ;;
      --backlog) backlog=$(realpath "$2"); shift 2 ;;
      --swarm-workers) workers=$2; shift 2 ;;
      *) echo "error: unknown option $1" >&2; exit 2 ;;
    esac
  done
  if running; then echo "testnet already up ($root)"; return; fi
  prepare
  if [ "$workers" -gt 0 ]; then
    . scripts/lib/swarm.sh
    ensure_swarm
  fi
  if [ ! -f "$root/committee.toml" ]; then
    rm -rf "$root"
    mkdir -p "$root"
    local dirs=()
    for i in $(seq 0 $((n - 1))); do
      port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
      "$bin" keygen --dir "$root/n$i" --name "n$i" --addr "/ip4/127.0.0.1/tcp/$port" >/dev/null 2>&1
      dirs+=("$root/n$i")
    done
    # The group's rules, short for a demo: 15 minutes to build and commit at most (a 30 s
    # least grace once t committed), 1 minute to reveal; at most 8 new requests a block.
    "$bin" committee init --origin example.org/synchronicity/local --out "$root/committee.toml" \
      --commit-window-secs 900 --commit-grace-secs 30 --reveal-window-secs 60 \
      --max-requests-per-block 8 "${dirs[@]}" >/dev/null
  fi
  # Local settings, written on every `up` (the follow list may change between runs).
  # Builds happen outside this Cargo project (host-side cargo would take it for a
  # workspace): the work directories live in the user's cache.
  for d in "$root"/n*/; do
    d=${d%/}
    printf 'idle_interval_ms = 5000\n[builder]\nwork_dir = "%s"\n' "$workroot/$(basename "$d")" >"$d/node.toml"
    if [ "$workers" -gt 0 ]; then
      local share=$((workers / n))
      [ "$share" -ge 1 ] || share=1
      printf 'backend = "swarm"\nmax_parallel = %s\n' "$share" >>"$d/node.toml"
    fi
    if [ -n "$follow" ] || [ -n "$backlog" ]; then
      printf '[follow]\ninterval_secs = %s\n' "$interval" >>"$d/node.toml"
      [ -z "$follow" ] || printf 'crates = [%s]\n' \
        "$(echo "$follow" | sed 's/[^,][^,]*/"&"/g; s/,/, /g')" >>"$d/node.toml"
      if [ -n "$backlog" ]; then
        cp "$backlog" "$d/backlog.txt"
        printf 'list = "backlog.txt"\n' >>"$d/node.toml"
      fi
    fi
  done
  : >"$root/pids"
  for d in "$root"/n*/; do
    d=${d%/}
    [ -f "$d/removed" ] && continue # it left the group (`leave`)
    # --join: a node that joined and is not yet a member follows the log again.
    "$bin" node --dir "$d" --committee "$root/committee.toml" --join 2>>"$d/node.log" &
    echo $! >>"$root/pids"
  done
  # Wait until every member's control socket answers and sees the others.
  for d in "$root"/n*/; do
    for _ in $(seq 1 100); do
      "$bin" status --node "${d%/}" >/dev/null 2>&1 && break
      sleep 0.2
    done
  done
  echo "testnet up: $(wc -l <"$root/pids") members under $root (logs: $root/n*/node.log)"
}

# backlog FILE [up options]: a fresh group works through FILE (see the header).
backlog() {
  local file=${1:?usage: scripts/testnet.sh backlog FILE [-n N] [--swarm-workers K]}
  shift
  [ -f "$file" ] || { echo "error: $file: no such file" >&2; exit 2; }
  if running; then down >/dev/null; fi
  rm -rf "$root"
  up --backlog "$file" "$@"
  local start=$SECONDS line done_all
  while true; do
    done_all=1
    for d in $(live_dirs); do
      line=$("$bin" status --node "$d" 2>/dev/null | grep -m1 'backlog:' || echo "  backlog: (no answer)")
      printf '%s %s\n' "$(basename "$d")" "${line#  }"
      # Done: nothing ordered or waiting any more.
      echo "$line" | grep -q ', 0 ordered, 0 waiting,' || done_all=0
    done
    [ "$done_all" = 1 ] && break
    if [ $((SECONDS - start)) -gt "${BACKLOG_TIMEOUT:-7200}" ]; then
      echo "error: the backlog was not worked through in ${BACKLOG_TIMEOUT:-7200} s" >&2
      down >/dev/null
      exit 1
    fi
    sleep 30
  done
  echo "backlog of $(grep -cv '^\s*\(#\|$\)' "$file") lines worked through in $((SECONDS - start)) s by $(live_dirs | wc -l) members"
  "$bin" status --node "$root/n0" | sed -n '1,2p'
  down
}

down() {
  [ -f "$root/pids" ] || { echo "no testnet"; return; }
  while read -r pid; do kill -TERM "$pid" 2>/dev/null || true; done <"$root/pids"
  while read -r pid; do
    for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  done <"$root/pids"
  rm -f "$root/pids"
  echo "testnet down (state kept in $root; rm -rf $root to start afresh)"
}

status() {
  for d in "$root"/n*/; do
    printf '%s: ' "$(basename "$d")"
    if [ -f "$d/removed" ]; then echo "left the group"; continue; fi
    "$bin" status --node "${d%/}" 2>&1 | head -1 || true
  done
}

live_dirs() { for d in "$root"/n*/; do [ -f "${d%/}/removed" ] || echo "${d%/}"; done; }

join() {
  running || { echo "error: no testnet is up (scripts/testnet.sh up)" >&2; exit 1; }
  local i=0 d port dirs
  while [ -d "$root/n$i" ]; do i=$((i + 1)); done
  d=$root/n$i
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  "$bin" keygen --dir "$d" --name "n$i" --addr "/ip4/127.0.0.1/tcp/$port" >/dev/null 2>&1
  printf 'idle_interval_ms = 5000\n[builder]\nwork_dir = "%s"\n' "$workroot/n$i" >"$d/node.toml"
  mapfile -t dirs < <(live_dirs)
  "$bin" node --dir "$d" --committee "$root/committee.toml" --join 2>>"$d/node.log" &
  echo $! >>"$root/pids"
  echo "n$i started with --join: it follows the log as a non-voter"
  committee_change "$bin" "$root/committee.toml" "$root" "${dirs[@]}" -- --add "$d"
  wait_voter "$bin" "$d" 120
  echo "n$i joined: $("$bin" status --node "$d" | head -1)"
}

leave() {
  local name=${1:?usage: scripts/testnet.sh leave NAME}
  running || { echo "error: no testnet is up (scripts/testnet.sh up)" >&2; exit 1; }
  local dirs
  mapfile -t dirs < <(live_dirs)
  committee_change "$bin" "$root/committee.toml" "$root" "${dirs[@]}" -- --remove "$name"
  # Its node stopped by itself at the boundary; `up` leaves it stopped.
  [ -d "$root/$name" ] && touch "$root/$name/removed"
  echo "$name left the group"
}

peer_addr() { # the multiaddr of member $1 with its /p2p/ id, from the committee file
  python3 - "$root/committee.toml" "$1" <<'PY'
import sys, tomllib
c = tomllib.load(open(sys.argv[1], "rb"))
m = c["members"][int(sys.argv[2])]
print(f'{m["addrs"][0]}/p2p/{m["peer_id"]}')
PY
}

demo() {
  local spec=itoa@1.0.15 keep=0
  while [ $# -gt 0 ]; do
    case $1 in
      --keep) keep=1; shift ;;
      *@*) spec=$1; shift ;;
      *) echo "error: unknown argument $1" >&2; exit 2 ;;
    esac
  done
  up
  local t0 id n m
  t0=$(date +%s.%N)
  id=$("$bin" submit "$spec" --node "$root/n0")
  echo "submitted $spec: request $id"
  "$bin" status "$spec" --node "$root/n0" --watch
  local t1
  t1=$(date +%s.%N)
  n=$(wc -l <"$root/pids")
  m=$((RANDOM % n))
  local proof="$root/${spec/@/-}.tlog-proof" manifest="$root/${spec/@/-}.manifest" lock="$root/${spec/@/-}.Cargo.lock"
  # Fetched with the lockfile and the manifest the entry pins; verified before writing.
  "$bin" proof "$spec" --with-inputs --peer "$(peer_addr "$m")" --trust "$root/committee.toml" --out "$proof" >/dev/null
  echo "proof fetched from member n$m: $proof ($(wc -c <"$proof") bytes), with $manifest and $lock"
  # The artifact in hand: the file member n0 built (any member's is byte-identical).
  local name artifact
  name=$(head -1 "$manifest" | cut -d' ' -f3 | awk -F/ '{print $NF}')
  artifact=$(find "$workroot/n0" -name "$name" -path '*release*' -printf '%T@ %p\n' | sort -n | tail -1 | cut -d' ' -f2-)
  echo "== offline verification (committee file, proof file, manifest, lockfile, artifact $artifact)"
  "$bin" verify "$proof" --trust "$root/committee.toml" --crate "$spec" \
    --manifest "$manifest" --lockfile "$lock" --artifact "$artifact"
  python3 -c "print(f'request to cosigned verdict: {$t1 - $t0:.1f} s')"
  if [ "$keep" = 0 ]; then down; else echo "testnet left running: scripts/testnet.sh down"; fi
}

case $cmd in
  up) up "$@" ;;
  down) down ;;
  status) status ;;
  demo) demo "$@" ;;
  join) join ;;
  leave) leave "$@" ;;
  backlog) backlog "$@" ;;
  *) echo "usage: scripts/testnet.sh up [-n N] [--follow CRATES] [--follow-interval SECS] [--backlog FILE] [--swarm-workers K] | backlog FILE | demo [CRATE@VERSION] [--keep] | status | join | leave NAME | down" >&2; exit 2 ;;
esac
