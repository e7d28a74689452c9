#!/usr/bin/env bash
# A multi-host group in containers: each member in its own container with its own IP on a
# private Docker network and its own volume (testnet/data/nI), builds inside the container
# with the bubblewrap sandbox (what the containers get, and why: testnet/lib.sh).
#
#   testnet/up.sh [-n N] [--swarm-workers K]
#                               image (if needed), keys, committee, N members (default 4);
#                               with --swarm-workers, K worker engines in containers
#                               (scripts/swarm-workers.sh) joined to this engine's swarm, and
#                               every member builds on them (backend "swarm", swarm_workers,
#                               max_parallel K/N: its own share), through the host's engine
#                               (`down` leaves the workers: scripts/swarm-workers.sh down)
#   testnet/up.sh demo [CRATE@VERSION]
#                               up (if needed); submit a real crate to member 0's container;
#                               wait for the cosigned verdict; fetch the proof from member
#                               N-1's ADDRESS on the host and verify it offline on the host
#   testnet/up.sh status        each member's status line
#   testnet/up.sh join          a new builder joins the running group: keys, its container
#                               started from the genesis with --join (a non-voter until its
#                               epoch), the next committee proposed and approved by the
#                               members (scripts/lib/epochs.sh); returns once it votes
#   testnet/up.sh leave NAME    member NAME leaves (its node stops by itself at the boundary)
#   testnet/up.sh logs I        member I's log
#   testnet/up.sh down          stop and remove the containers and the network (data kept;
#                               rm -rf testnet/data for a fresh group)
set -euo pipefail
cd "$(dirname "$0")/.."
. testnet/lib.sh
. scripts/lib/epochs.sh
data=$PWD/testnet/data
cmd=up
case ${1:-} in up|demo|status|join|leave|logs|down) cmd=$1; shift ;; esac

members() { ls -d "$data"/n[0-9]* 2>/dev/null | wc -l; }

up() {
  local n=4
  workers=0
  while [ $# -gt 0 ]; do
    case $1 in
      -n) n=$2; shift 2 ;;
      --swarm-workers) workers=$2; shift 2 ;;
      *) echo "error: unknown option $1" >&2; exit 2 ;;
    esac
  done
  build_image
  [ "$workers" -eq 0 ] || scripts/swarm-workers.sh up "$workers"
  if [ ! -f "$data/committee.toml" ]; then
    new_group "$data" "$n" --commit-window-secs 900 --commit-grace-secs 30 --reveal-window-secs 60
  fi
  n=$(members)
  ensure_network
  for i in $(seq 0 $((n - 1))); do
    [ -f "$data/n$i/removed" ] && continue # it left the group (`leave`)
    start_member "$i"
    # The first member on workers builds the workers' image (minutes); the others find it.
    if [ "$workers" -gt 0 ] && [ "$i" = 0 ]; then wait_ready "$data" 0 900; fi
  done
  for i in $(seq 0 $((n - 1))); do [ -f "$data/n$i/removed" ] || wait_ready "$data" "$i" 30; done
  echo "testnet up: $n members in containers sync-n0..sync-n$((n - 1)) on $subnet.0/24 (http://$subnet.10:8080/ …)"
}

# start_member I: member I's container (--join: a node that joined and is not yet a member
# follows the log again).
start_member() {
  local opts=()
  if [ "${workers:-0}" -gt 0 ]; then
    # Builds on the swarm's workers: the member drives the host's engine (its socket and
    # CLI: the node is the trusted part, its builds never see either) and reaches the
    # workers' engines on the default bridge. Its share: K/N builds at once.
    local share=$((workers / $(members)))
    [ "$share" -ge 1 ] || share=1
    printf 'idle_interval_ms = 5000\n[builder]\nbackend = "swarm"\nswarm_workers = true\nmax_parallel = %s\nwork_dir = "/work"\n' "$share" >"$data/n$1/node.toml"
    opts=(-v /var/run/docker.sock:/var/run/docker.sock -v "$(command -v docker):/usr/bin/docker:ro")
  else
    printf 'idle_interval_ms = 5000\n[builder]\nbackend = "sandbox"\nwork_dir = "/work"\n' >"$data/n$1/node.toml"
  fi
  run_member "$data" "$1" "$data/committee.toml" "${opts[@]}" -- \
    synchronicity node --dir /data --committee /committee.toml --join --http 0.0.0.0:8080
  [ "${workers:-0}" -eq 0 ] || docker network connect bridge "sync-n$1"
}

live_dirs() { for d in "$data"/n*/; do [ -f "${d%/}/removed" ] || echo "${d%/}"; done; }

join() {
  local i dirs
  i=$(members)
  mapfile -t dirs < <(live_dirs)
  "$bin" keygen --dir "$data/n$i" --name "n$i" --addr "/ip4/$subnet.$((10 + i))/tcp/7000" >/dev/null 2>&1
  start_member "$i"
  wait_ready "$data" "$i" 60
  echo "n$i started with --join: it follows the log as a non-voter"
  committee_change "$bin" "$data/committee.toml" "$data" "${dirs[@]}" -- --add "$data/n$i"
  wait_voter "$bin" "$data/n$i" 120
  echo "n$i joined: $("$bin" status --node "$data/n$i" | head -1)"
}

leave() {
  local name=${1:?usage: testnet/up.sh leave NAME} dirs
  mapfile -t dirs < <(live_dirs)
  committee_change "$bin" "$data/committee.toml" "$data" "${dirs[@]}" -- --remove "$name"
  [ -d "$data/$name" ] && touch "$data/$name/removed"
  echo "$name left the group"
}

status() {
  for i in $(seq 0 $(($(members) - 1))); do
    printf 'n%s: ' "$i"
    if [ -f "$data/n$i/removed" ]; then echo "left the group"; continue; fi
    docker exec "sync-n$i" synchronicity status --node /data 2>&1 | head -1 || true
  done
}

down() {
  remove_containers
  docker network rm "$net" >/dev/null 2>&1 || true
  echo "testnet down (data kept in $data)"
}

demo() {
  local spec=${1:-itoa@1.0.15}
  docker ps -q --filter name=sync-n0 | grep -q . || up
  local n last proof addr
  n=$(members)
  last=$((n - 1))
  echo "submitting $spec to member n0's container"
  docker exec sync-n0 synchronicity submit "$spec" --node /data
  docker exec sync-n0 synchronicity status "$spec" --node /data --watch
  proof="$data/${spec/@/-}.tlog-proof"
  addr=$(peer_addr "$data/committee.toml" "$last")
  "$bin" proof "$spec" --peer "$addr" --trust "$data/committee.toml" --out "$proof" >/dev/null
  echo "proof fetched from n$last at $addr"
  "$bin" verify "$proof" --trust "$data/committee.toml" --crate "$spec"
}

case $cmd in
  up) up "$@" ;;
  demo) demo "$@" ;;
  status) status ;;
  join) join ;;
  leave) leave "$@" ;;
  logs) docker logs "sync-n${1:-0}" ;;
  down) down ;;
esac
