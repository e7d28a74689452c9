#!/usr/bin/env bash
# A multi-host group in containers: each member in its own container with its own IP on a
# private Docker network and its own volume (testnet/data/nI), builds inside the container
# with the bubblewrap sandbox. The container gets what that needs and no more than this
# machine kind allows (`--privileged` is refused here: CAP_SYS_RESOURCE is not available):
# CAP_SYS_ADMIN (mount namespaces), CAP_NET_ADMIN (the sandbox's loopback), no seccomp or
# AppArmor filter (bubblewrap's own syscalls), the cgroup hierarchy writable (the build's
# memory and process limits), and the loop devices (the build's disk limit). The host's
# trust store is mounted too: crates.io is reached through whatever CA the host trusts.
#
#   testnet/up.sh [-n N]        image (if needed), keys, committee, N members (default 4)
#   testnet/up.sh demo [CRATE@VERSION]
#                               up (if needed); submit a real crate to member 0's container;
#                               wait for the cosigned verdict; fetch the proof from member
#                               N-1's ADDRESS on the host and verify it offline on the host
#   testnet/up.sh status        each member's status line
#   testnet/up.sh logs I        member I's log
#   testnet/up.sh down          stop and remove the containers and the network (data kept;
#                               rm -rf testnet/data for a fresh group)
set -euo pipefail
cd "$(dirname "$0")/.."
net=synchronicity-testnet
subnet=172.29.0
image=synchronicity-node:local
data=$PWD/testnet/data
bin=target/release/synchronicity
rootfs=/var/lib/synchronicity/rootfs-bookworm-v2
cmd=up
case ${1:-} in up|demo|status|logs|down) cmd=$1; shift ;; esac

build_image() {
  scripts/build-image.sh >&2
  cargo build --release --locked --quiet --bin synchronicity
  local toolchain ctx=testnet/.build
  toolchain=$(rustc --version | cut -d' ' -f2)
  local triple=x86_64-unknown-linux-gnu
  local src
  src=$(readlink -f "${RUSTUP_HOME:-$HOME/.rustup}/toolchains/$toolchain-$triple" 2>/dev/null ||
    readlink -f "${RUSTUP_HOME:-$HOME/.rustup}/toolchains/stable-$triple")
  local want
  want=$(sha256sum "$bin" | cut -c1-16)-$toolchain
  if docker image inspect "$image" --format '{{index .Config.Labels "synchronicity.build"}}' 2>/dev/null | grep -qx "$want"; then
    return
  fi
  rm -rf "$ctx"
  mkdir -p "$ctx/rustup/toolchains" "$ctx/cargo-bin"
  cp "$bin" "$ctx/synchronicity"
  cp "$(command -v bwrap)" "$ctx/bwrap"
  cp -al "$src" "$ctx/rustup/toolchains/$toolchain-$triple" 2>/dev/null ||
    cp -a "$src" "$ctx/rustup/toolchains/$toolchain-$triple"
  cp "${CARGO_HOME:-$HOME/.cargo}/bin/rustup" "$ctx/cargo-bin/rustup"
  echo "building the node image $image (binary, bubblewrap, toolchain $toolchain)" >&2
  docker build -q -t "$image" --label "synchronicity.build=$want" -f testnet/Dockerfile "$ctx" >/dev/null
  rm -rf "$ctx"
}

members() { ls -d "$data"/n* 2>/dev/null | wc -l; }

up() {
  local n=4
  while [ $# -gt 0 ]; do
    case $1 in
      -n) n=$2; shift 2 ;;
      *) echo "error: unknown option $1" >&2; exit 2 ;;
    esac
  done
  build_image
  if [ ! -f "$data/committee.toml" ]; then
    rm -rf "$data"
    mkdir -p "$data"
    local dirs=()
    for i in $(seq 0 $((n - 1))); do
      "$bin" keygen --dir "$data/n$i" --name "n$i" --addr "/ip4/$subnet.$((10 + i))/tcp/7000" >/dev/null 2>&1
      dirs+=("$data/n$i")
    done
    "$bin" committee init --origin example.org/synchronicity/containers --out "$data/committee.toml" \
      --commit-window-secs 900 --commit-grace-secs 30 --reveal-window-secs 60 "${dirs[@]}" >/dev/null
  fi
  n=$(members)
  docker network inspect "$net" >/dev/null 2>&1 ||
    docker network create --subnet "$subnet.0/24" "$net" >/dev/null
  # The builder's work directory is in the container's own layer (/work), next to the
  # image's toolchain, so the workspace hard-links it instead of copying 1.4 GB onto the
  # volume; the log, keys and WAL are on the volume (/data).
  for i in $(seq 0 $((n - 1))); do
    printf 'idle_interval_ms = 5000\n[builder]\nbackend = "sandbox"\nwork_dir = "/work"\n' >"$data/n$i/node.toml"
    docker rm -f "sync-n$i" >/dev/null 2>&1 || true
    docker run -d --name "sync-n$i" --hostname "n$i" --network "$net" --ip "$subnet.$((10 + i))" \
      --cap-add SYS_ADMIN --cap-add NET_ADMIN \
      --security-opt seccomp=unconfined --security-opt apparmor=unconfined \
      --device-cgroup-rule='b 7:* rmw' --device-cgroup-rule='c 10:237 rmw' -v /dev:/dev \
      -v /sys/fs/cgroup:/sys/fs/cgroup:rw \
      -v "$data/n$i:/data" -v "$data/committee.toml:/committee.toml:ro" \
      -v "$rootfs:$rootfs:ro" -v /etc/ssl/certs:/etc/ssl/certs:ro \
      "$image" synchronicity node --dir /data --committee /committee.toml --http 0.0.0.0:8080 >/dev/null
  done
  for i in $(seq 0 $((n - 1))); do
    for _ in $(seq 1 100); do
      docker exec "sync-n$i" synchronicity status --node /data >/dev/null 2>&1 && break
      sleep 0.3
    done
  done
  echo "testnet up: $n members in containers sync-n0..sync-n$((n - 1)) on $subnet.0/24 (http://$subnet.10:8080/ …)"
}

status() {
  for i in $(seq 0 $(($(members) - 1))); do
    printf 'n%s: ' "$i"
    docker exec "sync-n$i" synchronicity status --node /data 2>&1 | head -1
  done
}

down() {
  for c in $(docker ps -aq --filter name=sync-n); do docker rm -f "$c" >/dev/null; done
  docker network rm "$net" >/dev/null 2>&1 || true
  echo "testnet down (data kept in $data)"
}

peer_addr() {
  python3 - "$data/committee.toml" "$1" <<'PY'
import sys, tomllib
m = tomllib.load(open(sys.argv[1], "rb"))["members"][int(sys.argv[2])]
print(f'{m["addrs"][0]}/p2p/{m["peer_id"]}')
PY
}

demo() {
  local spec=${1:-itoa@1.0.15}
  docker ps -q --filter name=sync-n0 | grep -q . || up
  local n last proof
  n=$(members)
  last=$((n - 1))
  echo "submitting $spec to member n0's container"
  docker exec sync-n0 synchronicity submit "$spec" --node /data
  docker exec sync-n0 synchronicity status "$spec" --node /data --watch
  proof="$data/${spec/@/-}.tlog-proof"
  "$bin" proof "$spec" --peer "$(peer_addr "$last")" --trust "$data/committee.toml" --out "$proof" >/dev/null
  echo "proof fetched from n$last at $(peer_addr "$last")"
  "$bin" verify "$proof" --trust "$data/committee.toml" --crate "$spec"
}

case $cmd in
  up) up "$@" ;;
  demo) demo "$@" ;;
  status) status ;;
  logs) docker logs "sync-n${1:-0}" ;;
  down) down ;;
esac
