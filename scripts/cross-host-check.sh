#!/usr/bin/env bash
# Builds the same crates on two "hosts" and compares the manifests: two member containers
# (the node image of testnet/, the sandbox backend inside, as a member runs it) that differ
# in everything a member's machine may differ in and a build could see:
#
#   host   CPUs (quota, cpuset)        host name          work directory         [builder] jobs
#   A      --cpus 1, --cpuset-cpus 0   builder-a          /work/a                1
#   B      --cpus 2, --cpuset-cpus 0-1 other-host.example /srv/synchronicity/b   2
#
# Prints one row per crate (reproduced / DIFFERS / failed: class) and exits 1 unless every
# crate reproduced. On a difference, both artifact stores are copied out and the
# differing files named (for `diffoscope`, docs/reproducibility.md "Across hosts").
#
# Usage: scripts/cross-host-check.sh [--profile release|debug] [CRATE@VERSION ...]
# (debug uses the debug binary a test build made, as CI's subset does.)
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "${1:-}" = --profile ]; then
  export TESTNET_PROFILE=$2
  shift 2
fi
# shellcheck source=../testnet/lib.sh
source testnet/lib.sh
crates=("$@")
if [ ${#crates[@]} -eq 0 ]; then
  # Build scripts that read the machine or run C compilers with the job count, allocators
  # built by autoconf and cmake, a C++ build, and plain and large Rust for contrast.
  crates=(
    itoa@1.0.19 num_cpus@1.17.0 sysinfo@0.40.4 proc-macro2@1.0.107 libc@0.2.191
    zstd-sys@2.1.3+zstd.1.5.7 blake3@1.8.7 ring@0.17.14 libz-ng-sys@1.1.33 cxx@1.0.205
    tikv-jemalloc-sys@0.7.1+5.3.1-0-g81034ce1f1373e37dc865038e1bc8eeecf559ce8
    libmimalloc-sys@0.1.49 openssl-sys@0.9.118 bindgen@0.73.2 serde_derive@1.0.229
    ripgrep@15.2.0
  )
fi
[ "$(nproc)" -ge 2 ] || { echo "error: needs 2 CPUs for the two cpusets" >&2; exit 1; }
build_image
out=$(mktemp -d /tmp/cross-host.XXXXXX)
# The image has the toolchain but no rustc proxy: name it, as a node's committee does.
toolchain=$(rustc --version | cut -d' ' -f2)
hosts=(a b)
declare -A opts=(
  [a]="--cpus 1 --cpuset-cpus 0 --hostname builder-a"
  [b]="--cpus 2 --cpuset-cpus 0-1 --hostname other-host.example"
)
declare -A work=([a]=/work/a [b]=/srv/synchronicity/b)
declare -A jobs=([a]=1 [b]=2)
cleanup() { for h in "${hosts[@]}"; do docker rm -f "sync-xhost-$h" >/dev/null 2>&1 || true; done; }
trap cleanup EXIT
cleanup
for h in "${hosts[@]}"; do
  # shellcheck disable=SC2086
  docker run -d --name "sync-xhost-$h" "${builder_container_opts[@]}" ${opts[$h]} \
    "$image" sleep infinity >/dev/null
  # What a build script would see of the machine.
  echo "host $h: nproc $(docker exec "sync-xhost-$h" nproc), hostname $(docker exec "sync-xhost-$h" hostname), work ${work[$h]}, jobs ${jobs[$h]}" >&2
done

# build HOST SPEC: the build's JSON in $out/HOST-SPEC.json; prints "s:<digest>" or "f:<class>".
build() {
  local h=$1 c=$2 f="$out/$1-$2.json"
  docker exec "sync-xhost-$h" synchronicity build "$c" --backend sandbox \
    --work-dir "${work[$h]}" --jobs "${jobs[$h]}" --toolchain "$toolchain" --json >"$f" 2>"$out/$h-$c.err" || true
  python3 -c '
import json, sys
d = json.load(open(sys.argv[1]))
print(("s:" + d["digest"]) if d["status"] == "success" else ("f:" + (d["failure_class"] or "?")))
' "$f" 2>/dev/null || echo "error:$(tail -1 "$out/$h-$c.err")"
}

# The first 12 characters of a digest, or the class of a failure.
short() { case $1 in s:*) echo "${1:2:12}" ;; f:*) echo "${1:2}" ;; *) echo "error" ;; esac; }

ok=0
total=0
printf '%-44s %-14s %-14s %s\n' crate A B result
for c in "${crates[@]}"; do
  total=$((total + 1))
  da=$(build a "$c")
  db=$(build b "$c")
  if [ "${da%%:*}" = s ] && [ "$da" = "$db" ]; then
    ok=$((ok + 1))
    res=reproduced
  elif [ "${da%%:*}" = s ] && [ "${db%%:*}" = s ]; then
    res=DIFFERS
    # The differing artifacts, by name, from the two manifests.
    python3 - "$out/a-$c.json" "$out/b-$c.json" <<'PY' >&2
import json, sys
def arts(p):
    m = json.load(open(p))["manifest"]
    return {l.split()[-1]: l.split()[0] for l in m.splitlines() if l.count(" ") >= 1 and len(l.split()[0]) == 64}
a, b = arts(sys.argv[1]), arts(sys.argv[2])
for name in sorted(set(a) | set(b)):
    if a.get(name) != b.get(name):
        print(f"  differs: {name}: {a.get(name, 'missing')[:12]} vs {b.get(name, 'missing')[:12]}")
PY
    # Both builds' artifacts (<work dir>/artifacts/<request id>/), for diffoscope.
    id=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["request_id"])' "$out/a-$c.json")
    for h in "${hosts[@]}"; do
      docker cp "sync-xhost-$h:${work[$h]}/artifacts/$id" "$out/$h-$c-artifacts" >/dev/null 2>&1 || true
    done
    echo "  artifacts: $out/{a,b}-$c-artifacts (diffoscope one file of each)" >&2
  else
    res="failed: ${da#*:} / ${db#*:}"
  fi
  printf '%-44s %-14s %-14s %s\n' "$c" "$(short "$da")" "$(short "$db")" "$res"
done
echo "reproduced $ok of $total across hosts A (1 CPU, jobs 1) and B (2 CPUs, jobs 2); JSON in $out"
[ "$ok" -eq "$total" ]
