#!/usr/bin/env bash
# The README's test command: installs what the tests need, then runs every test.
# Safe to run on a fresh machine of the project's kind and again on a used one.
set -euo pipefail
cd "$(dirname "$0")/.."

# Needed: a Rust toolchain (rustup, present on the machine kind), a C compiler for blst,
# and the build sandbox (bubblewrap, the Debian root filesystem, the Docker image).
command -v cargo >/dev/null || { echo "error: cargo not found; install Rust with rustup" >&2; exit 1; }
command -v cc >/dev/null || { apt-get update -qq && apt-get install -y -qq gcc libc6-dev >/dev/null; }
scripts/build-image.sh
# The independent tiles client (Go's sumdb/tlog and note), the web view's browser test,
# nginx serving the static tiles, the builders' disk limit (mkfs.ext4, loop mounts), and
# diffoscope.
pkgs=()
command -v go >/dev/null || pkgs+=(golang-go)
[ -d /usr/share/gocode/src/golang.org/x/mod/sumdb ] || pkgs+=(golang-golang-x-mod-dev)
command -v chromium >/dev/null || pkgs+=(chromium)
command -v nginx >/dev/null || pkgs+=(nginx)
command -v mkfs.ext4 >/dev/null || pkgs+=(e2fsprogs)
# `synchronicity diff` compares two members' artifacts with diffoscope.
command -v diffoscope >/dev/null || pkgs+=(diffoscope-minimal)
if [ ${#pkgs[@]} -gt 0 ]; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${pkgs[@]}" >/dev/null
fi

# With a Docker engine present, the docker-vs-sandbox comparisons must run, not skip.
if docker info >/dev/null 2>&1; then
  export SYNCHRONICITY_REQUIRE_DOCKER=1
  # The swarm backend's tests build on this engine's own swarm, and on worker engines in
  # containers joined to it (tests/swarm_workers.rs): it advertises the bridge's address.
  . scripts/lib/swarm.sh
  ensure_swarm
  # Two worker engines in containers (a debootstrap root filesystem with Debian's
  # docker.io, the first time), for the tests of builds on other engines.
  scripts/swarm-workers.sh up 2 >/dev/null
fi
cargo test --workspace --locked "$@"
