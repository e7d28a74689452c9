# Shared by testnet/up.sh and testnet/faults.sh (sourced, from the repository root).
#
# A member container: its own IP on a private Docker network, its own volume (DATA/nI at
# /data), bubblewrap builds inside. It gets what the sandbox needs and no more than this
# machine kind allows (`--privileged` is refused here: CAP_SYS_RESOURCE is not available):
# CAP_SYS_ADMIN (mount namespaces), CAP_NET_ADMIN (the sandbox's loopback), no seccomp or
# AppArmor filter (bubblewrap's own syscalls), the cgroup hierarchy writable (the build's
# memory and process limits), and the loop devices (the build's disk limit). The host's
# trust store is mounted too: crates.io is reached through whatever CA the host trusts.
#
# TESTNET_PROFILE=release|debug picks the binaries (default release; CI's short fault
# subset uses the debug ones its test build already made: the tests set TESTNET_PREBUILT=1,
# see build_bins).

net=synchronicity-testnet
subnet=172.29.0
image=synchronicity-node:local
profile=${TESTNET_PROFILE:-release}
bin=target/$profile/synchronicity
member_bin=target/$profile/examples/testnet_member
rootfs=/var/lib/synchronicity/rootfs-bookworm-v2
faketime_lib=/usr/lib/x86_64-linux-gnu/faketime

cargo_profile_flag() { [ "$profile" = release ] && echo --release || true; }

# build_bins [--member]: `cargo build` of the node's binary (and with --member the fault
# suite's testnet_member), unless TESTNET_PREBUILT=1: then they are the ones the running
# `cargo test` already made (the tests set it). A `cargo build` there would resolve features
# without the dev-dependencies' (criterion's, the testkit), rebuild libp2p and all above it
# (about two minutes of CI), and leave a binary that the next `cargo test` rebuilds again.
build_bins() {
  local args=(--bin synchronicity) want=("$bin") f
  [ "${1:-}" != --member ] || { args+=(--example testnet_member); want+=("$member_bin"); }
  if [ "${TESTNET_PREBUILT:-0}" = 1 ]; then
    for f in "${want[@]}"; do
      [ -x "$f" ] || { echo "error: TESTNET_PREBUILT=1 but $f is not built" >&2; exit 1; }
    done
    return
  fi
  # shellcheck disable=SC2046
  cargo build $(cargo_profile_flag) --locked --quiet "${args[@]}"
}

# The node image: the sandbox's root filesystem + the binary + bubblewrap + the toolchain;
# rebuilt when the binary or the toolchain changes (label synchronicity.build).
build_image() {
  scripts/build-image.sh >&2
  build_bins
  local toolchain ctx=testnet/.build triple=x86_64-unknown-linux-gnu src want
  toolchain=$(rustc --version | cut -d' ' -f2)
  src=$(readlink -f "${RUSTUP_HOME:-$HOME/.rustup}/toolchains/$toolchain-$triple" 2>/dev/null ||
    readlink -f "${RUSTUP_HOME:-$HOME/.rustup}/toolchains/stable-$triple")
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

# new_group DATA N [committee init flags...]: keys for N members at 172.29.0.(10+i):7000 and
# the committee file DATA/committee.toml.
new_group() {
  local data=$1 n=$2
  shift 2
  rm -rf "$data"
  mkdir -p "$data"
  local dirs=() i
  for i in $(seq 0 $((n - 1))); do
    "$bin" keygen --dir "$data/n$i" --name "n$i" --addr "/ip4/$subnet.$((10 + i))/tcp/7000" >/dev/null 2>&1
    dirs+=("$data/n$i")
  done
  "$bin" committee init --origin example.org/synchronicity/containers --out "$data/committee.toml" \
    "$@" "${dirs[@]}" >/dev/null
}

ensure_network() {
  docker network inspect "$net" >/dev/null 2>&1 ||
    docker network create --subnet "$subnet.0/24" "$net" >/dev/null
}

# What a container that runs the builder needs (run_member, scripts/cross-host-check.sh).
builder_container_opts=(
  --cap-drop ALL --cap-add SYS_ADMIN --cap-add NET_ADMIN --cap-add SETUID --cap-add SETGID
  --cap-add SETPCAP --cap-add CHOWN --cap-add KILL
  --security-opt seccomp=unconfined --security-opt apparmor=unconfined
  --device-cgroup-rule='b 7:* rmw' --device-cgroup-rule='c 10:237 rmw' -v /dev:/dev
  -v /sys/fs/cgroup:/sys/fs/cgroup:rw
  -v "$rootfs:$rootfs:ro" -v /etc/ssl/certs:/etc/ssl/certs:ro
)

# run_member DATA I COMMITTEE [docker run options...] -- COMMAND...: member I's container
# sync-nI. The node runs as root in it with only the capabilities its builder needs, each
# found by taking it away (`synchronicity build` then fails): SYS_ADMIN (the build's loop
# disk, bubblewrap's mounts and pivot_root, which Docker's seccomp profile refuses, hence
# seccomp=unconfined), NET_ADMIN (bubblewrap brings up the sandbox's loopback), SETUID,
# SETGID and SETPCAP (setpriv drops every build process to uid 65534 with no capability),
# CHOWN (the build user's target directory), KILL (build processes of another uid, at a
# limit). Every other default capability is dropped; no build process runs as root. The builder's work directory is in the container's own layer (/work), next to
# the image's toolchain, so the workspace hard-links it instead of copying 1.4 GB onto the
# volume; the log, keys and WAL are on the volume (/data).
run_member() {
  local data=$1 i=$2 committee=$3
  shift 3
  local opts=()
  while [ $# -gt 0 ] && [ "$1" != -- ]; do opts+=("$1"); shift; done
  shift
  docker rm -f "sync-n$i" >/dev/null 2>&1 || true
  docker run -d --name "sync-n$i" --hostname "n$i" --network "$net" --ip "$subnet.$((10 + i))" \
    "${builder_container_opts[@]}" \
    -v "$data/n$i:/data" -v "$committee:/committee.toml:ro" \
    "${opts[@]}" "$image" "$@" >/dev/null
}

# wait_ready DATA I [SECONDS]: until member I's control socket answers.
wait_ready() {
  local data=$1 i=$2 secs=${3:-30} t
  for t in $(seq 1 $((secs * 5))); do
    "$bin" status --node "$data/n$i" >/dev/null 2>&1 && return 0
    sleep 0.2
  done
  echo "member n$i did not start in $secs s:" >&2
  docker logs --tail 5 "sync-n$i" >&2 || true
  return 1
}

remove_containers() {
  local c t
  for c in $(docker ps -aq --filter name=sync-n); do docker rm -f "$c" >/dev/null 2>&1 || true; done
  # A removal still in progress (another `rm -f` of the same container) ends by itself.
  for t in $(seq 1 50); do
    [ -z "$(docker ps -aq --filter name=sync-n)" ] && return 0
    sleep 0.2
  done
  echo "error: member containers remain: $(docker ps -a --filter name=sync-n --format '{{.Names}}' | tr '\n' ' ')" >&2
  return 1
}

# peer_addr COMMITTEE I: member I's multiaddr with its peer id.
peer_addr() {
  python3 - "$1" "$2" <<'PY'
import sys, tomllib
m = tomllib.load(open(sys.argv[1], "rb"))["members"][int(sys.argv[2])]
print(f'{m["addrs"][0]}/p2p/{m["peer_id"]}')
PY
}
