#!/usr/bin/env bash
# Builds the build sandbox's root filesystem from Debian packages (debootstrap, no image
# registry needed) and imports it into Docker when an engine answers.
#
#   rootfs:  $SYNC_ROOTFS (default /var/lib/synchronicity/rootfs-bookworm-v2), used by the
#            `sandbox` (bubblewrap) backend directly;
#   image:   synchronicity-sandbox:bookworm-v2, used by the `docker` backend.
#
# Both backends see the same files, so the same request gives the same bytes in either.
# Idempotent: an existing complete rootfs / image is reused.
set -euo pipefail

release=bookworm
tag=${SYNC_IMAGE:-synchronicity-sandbox:bookworm-v2}
rootfs=${SYNC_ROOTFS:-/var/lib/synchronicity/rootfs-bookworm-v2}
mirror=${SYNC_DEBIAN_MIRROR:-http://deb.debian.org/debian}
# What popular -sys crates need: a C/C++ toolchain, make/cmake, pkg-config, and the
# headers of the most common system libraries.
packages=gcc,g++,libc6-dev,make,cmake,pkg-config,libssl-dev,zlib1g-dev,libzstd-dev,liblzma-dev,libbz2-dev,libsqlite3-dev,libcurl4-openssl-dev,libclang-dev,perl

need=()
command -v debootstrap >/dev/null || need+=(debootstrap)
command -v bwrap >/dev/null || need+=(bubblewrap)
if [ ${#need[@]} -gt 0 ]; then
  echo "installing ${need[*]}" >&2
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi

if [ ! -f "$rootfs/.synchronicity-complete" ]; then
  echo "debootstrap $release into $rootfs (a minute or two)" >&2
  rm -rf "$rootfs"
  mkdir -p "$(dirname "$rootfs")"
  debootstrap --variant=minbase --include="$packages" "$release" "$rootfs" "$mirror" >/tmp/synchronicity-debootstrap.log 2>&1 ||
    { echo "error: debootstrap failed; see /tmp/synchronicity-debootstrap.log" >&2; exit 1; }
  # Drop what makes two runs differ without mattering to builds.
  rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/log/*
  # Mount points the sandboxes use.
  mkdir -p "$rootfs/opt/rustwide"
  chroot "$rootfs" dpkg-query -W -f '${Package}=${Version}\n' | sort >"$rootfs/.synchronicity-packages"
  touch "$rootfs/.synchronicity-complete"
fi

if docker info >/dev/null 2>&1; then
  if ! docker image inspect "$tag" >/dev/null 2>&1; then
    echo "docker import $tag" >&2
    tar -C "$rootfs" --numeric-owner -c . | docker import - "$tag" >/dev/null
  fi
  echo "image $tag $(docker image inspect -f '{{.Id}}' "$tag")"
else
  echo "no Docker engine: only the sandbox backend will be available" >&2
fi
echo "rootfs $rootfs ($(sha256sum <"$rootfs/.synchronicity-packages" | cut -c1-16) package set)"
