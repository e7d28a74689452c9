#!/usr/bin/env bash
# Worker engines for the swarm backend on this machine: K Docker engines, each in a container
# whose root filesystem is made like the sandbox image's (debootstrap, plus Debian's
# docker.io), joined to this engine's swarm as workers and labelled for builds:
#
#   synchronicity.worker=true                 the swarm backend places builds here
#   synchronicity.engine=tcp://ADDR:2375      where the node reaches this worker's engine API
#
# An operator with real machines does the same by hand (README, "Run a node"): join the
# machine to the swarm, give it the two labels, and let the node reach its engine's API on
# a private network.
#
#   scripts/swarm-workers.sh up K     start (or keep) workers 1..K; prints one line a worker
#   scripts/swarm-workers.sh stop I   stop worker I's engine (a machine lost mid-build)
#   scripts/swarm-workers.sh down     remove every worker (containers, swarm nodes, volumes)
#
# The manager must advertise an address the containers reach: a swarm made with
# `--advertise-addr 127.0.0.1` cannot take workers (this script says so and stops).
# Each engine's API is plain TCP on the docker0 bridge: reachable from this host only.
set -euo pipefail
cd "$(dirname "$0")/.."
image=${SYNC_WORKER_IMAGE:-synchronicity-worker-engine:bookworm-v1}
rootfs=${SYNC_WORKER_ROOTFS:-/var/lib/synchronicity/rootfs-worker-engine-v1}
mirror=${SYNC_DEBIAN_MIRROR:-http://deb.debian.org/debian}
prefix=synchronicity-worker
. scripts/lib/swarm.sh

image() {
  docker image inspect "$image" >/dev/null 2>&1 && return
  if [ ! -f "$rootfs/.synchronicity-complete" ]; then
    command -v debootstrap >/dev/null || {
      apt-get update -qq
      DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap >/dev/null
    }
    echo "debootstrap a worker engine's root filesystem into $rootfs (a few minutes)" >&2
    rm -rf "$rootfs"
    mkdir -p "$(dirname "$rootfs")"
    debootstrap --variant=minbase --include=docker.io,iptables,ca-certificates,procps,iproute2 \
      bookworm "$rootfs" "$mirror" >/tmp/synchronicity-worker-debootstrap.log 2>&1 ||
      { echo "error: debootstrap failed; see /tmp/synchronicity-worker-debootstrap.log" >&2; exit 1; }
    rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/log/*
    touch "$rootfs/.synchronicity-complete"
  fi
  tar -C "$rootfs" --numeric-owner -c . | docker import - "$image" >/dev/null
}

manager_addr() {
  local state addr
  state=$(docker info --format '{{.Swarm.LocalNodeState}} {{.Swarm.ControlAvailable}}')
  addr=$(docker info --format '{{.Swarm.NodeAddr}}')
  if [ "$state" != "active true" ]; then
    echo "error: this engine is not a swarm manager; run: docker swarm init --advertise-addr $(bridge_addr)" >&2
    exit 1
  fi
  case $addr in
    127.*) echo "error: this swarm advertises $addr, which engines in containers cannot reach; make it again with: docker swarm leave --force && docker swarm init --advertise-addr $(bridge_addr)" >&2
      exit 1 ;;
  esac
  echo "$addr"
}

# The engine of worker I answers (at most 60 s).
wait_engine() {
  local i
  for i in $(seq 1 300); do
    docker exec "$1" docker info >/dev/null 2>&1 && return 0
    sleep 0.2
  done
  echo "error: the engine in $1 did not start; its log:" >&2
  docker logs --tail 20 "$1" >&2
  return 1
}

up() {
  local k=${1:?usage: scripts/swarm-workers.sh up K} addr token i name ip node
  ensure_swarm
  addr=$(manager_addr)
  image
  token=$(docker swarm join-token -q worker)
  for i in $(seq 1 "$k"); do
    name=$prefix-$i
    if [ "$(docker inspect --format '{{.State.Running}}' "$name" 2>/dev/null)" != true ]; then
      docker rm -f "$name" >/dev/null 2>&1 || true
      # What an engine needs in a container here (--privileged is refused): mounts and
      # cgroups (SYS_ADMIN), bridges and iptables (NET_ADMIN), no seccomp filter on the
      # engine itself (the builds it runs get Docker's default one), its own cgroup
      # namespace whose controllers it may write (Docker mounts them read-only: remounted
      # read-write), and its image store on a volume (overlay2 cannot sit on overlay).
      docker run -d --name "$name" --hostname "$name" \
        --cap-add SYS_ADMIN --cap-add NET_ADMIN --cap-add SYS_PTRACE \
        --security-opt seccomp=unconfined --security-opt apparmor=unconfined \
        --cgroupns private \
        -v "$name:/var/lib/docker" --tmpfs /run --tmpfs /tmp \
        --label synchronicity.worker-engine=1 \
        "$image" /bin/sh -c 'for c in /sys/fs/cgroup/*/; do mount -o remount,bind,rw "$c" || exit 1; done; exec dockerd -H unix:///var/run/docker.sock -H tcp://0.0.0.0:2375 --storage-driver overlay2 2>/var/lib/docker/dockerd.log' >/dev/null
      wait_engine "$name"
    fi
    if [ "$(docker exec "$name" docker info --format '{{.Swarm.LocalNodeState}}')" != active ]; then
      docker exec "$name" docker swarm join --token "$token" "$addr:2377" >/dev/null
    fi
    ip=$(docker inspect --format '{{.NetworkSettings.IPAddress}}' "$name")
    node=$(docker exec "$name" docker info --format '{{.Swarm.NodeID}}')
    docker node update --label-add synchronicity.worker=true \
      --label-add "synchronicity.engine=tcp://$ip:2375" "$node" >/dev/null
    echo "worker $i: node $node, engine tcp://$ip:2375"
  done
}

stop() {
  docker stop -t 1 "$prefix-${1:?usage: scripts/swarm-workers.sh stop I}" >/dev/null
}

down() {
  local name node
  for name in $(docker ps -a --filter label=synchronicity.worker-engine=1 --format '{{.Names}}'); do
    node=$(docker exec "$name" docker info --format '{{.Swarm.NodeID}}' 2>/dev/null || true)
    docker rm -f "$name" >/dev/null
    docker volume rm "$name" >/dev/null 2>&1 || true
    [ -z "$node" ] || docker node rm --force "$node" >/dev/null 2>&1 || true
  done
  # Nodes whose containers are already gone.
  for node in $(docker node ls --filter role=worker -q 2>/dev/null); do
    [ "$(docker node inspect --format '{{.Spec.Labels}}' "$node")" = "map[]" ] && continue
    docker node rm --force "$node" >/dev/null 2>&1 || true
  done
}

case ${1:-} in
  up) shift; up "$@" ;;
  stop) shift; stop "$@" ;;
  down) down ;;
  *) echo "usage: scripts/swarm-workers.sh up K | stop I | down" >&2; exit 2 ;;
esac
