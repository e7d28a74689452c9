# This engine as a swarm manager that worker engines can join (sourced by scripts/test.sh,
# scripts/testnet.sh, scripts/bench-swarm.sh and scripts/swarm-workers.sh).

# bridge_addr: this host's address on Docker's default bridge (what containers reach), else
# 127.0.0.1.
bridge_addr() {
  local a=""
  command -v ip >/dev/null && a=$(ip -4 -o addr show docker0 2>/dev/null | awk '{print $4}' | cut -d/ -f1 | head -1)
  # Without iproute2: the first address of the default bridge's subnet (Docker's gateway).
  [ -n "$a" ] || a=$(docker network inspect bridge --format '{{(index .IPAM.Config 0).Subnet}}' 2>/dev/null |
    python3 -c 'import ipaddress,sys; print(next(ipaddress.ip_network(sys.stdin.read().strip()).hosts()))' 2>/dev/null || true)
  echo "${a:-127.0.0.1}"
}

# ensure_swarm: makes this engine a swarm manager advertising bridge_addr, if it is not one.
# A swarm of ours advertising 127.0.0.1 (what earlier versions made) with no service left is
# made again, so that engines in containers can join it; one with services is left alone.
ensure_swarm() {
  local state addr
  state=$(docker info --format '{{.Swarm.LocalNodeState}}')
  addr=$(docker info --format '{{.Swarm.NodeAddr}}')
  if [ "$state" = active ] && [ "${addr#127.}" != "$addr" ] && [ "$(bridge_addr)" != 127.0.0.1 ] &&
    [ -z "$(docker service ls -q 2>/dev/null)" ]; then
    docker swarm leave --force >/dev/null
    state=inactive
  fi
  if [ "$state" != active ]; then
    docker swarm init --advertise-addr "$(bridge_addr)" >/dev/null
  fi
}
