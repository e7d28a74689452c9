#!/usr/bin/env bash
# Builds popular crates of different kinds twice each, in two work directories at
# different host paths (with the sandbox backend, or docker with BACKEND=docker), and prints
# which reproduced byte for byte and the reproduced fraction.
# Usage: scripts/repro-check.sh [CRATE@VERSION ...]
set -uo pipefail
cd "$(dirname "$0")/.."
backend=${BACKEND:-sandbox}
crates=("$@")
if [ ${#crates[@]} -eq 0 ]; then
  crates=(
    itoa@1.0.15 memchr@2.7.4 smallvec@1.15.0 serde@1.0.219 serde_json@1.0.140 log@0.4.27   # plain libs
    libc@0.2.172 proc-macro2@1.0.95 anyhow@1.0.105                                       # build scripts
    serde_derive@1.0.219 thiserror-impl@2.0.12                                           # proc macros
    zstd-sys@2.0.15+zstd.1.5.7 blake3@1.8.2 libz-sys@1.1.22                               # C through cc
    hexyl@0.16.0 ripgrep@14.1.1                                                          # binaries
  )
fi
scripts/build-image.sh >/dev/null
cargo build --release --locked --quiet
bin=$PWD/target/release/synchronicity
root=$(mktemp -d /tmp/repro-check.XXXXXX)
ok=0
total=0
printf '%-34s %-12s %-12s %s\n' crate first second result
for c in "${crates[@]}"; do
  total=$((total + 1))
  d1=$("$bin" build "$c" --backend "$backend" --work-dir "$root/a" --json 2>/dev/null | python3 -c 'import json,sys; d=json.load(sys.stdin); print(d["status"][0]+":"+d["digest"])' 2>/dev/null || echo "error:")
  d2=$("$bin" build "$c" --backend "$backend" --work-dir "$root/elsewhere/b" --json 2>/dev/null | python3 -c 'import json,sys; d=json.load(sys.stdin); print(d["status"][0]+":"+d["digest"])' 2>/dev/null || echo "error:")
  if [ "$d1" = "$d2" ] && [ "${d1%%:*}" = "s" ]; then
    ok=$((ok + 1)); res=reproduced
  elif [ "${d1%%:*}" != "s" ] || [ "${d2%%:*}" != "s" ]; then
    res="build failed (see logs under $root)"
  else
    res="DIFFERENT"
  fi
  printf '%-34s %-12s %-12s %s\n' "$c" "${d1:2:12}" "${d2:2:12}" "$res"
done
echo "reproduced $ok of $total ($(( 100 * ok / total ))%) with the $backend backend"
