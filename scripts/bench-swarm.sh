#!/usr/bin/env bash
# The swarm backend's figures (issue 27), in one run:
#  1. throughput: N releases of a fixed-duration fixture crate (its build script sleeps
#     SLEEP seconds) built through the swarm backend with K = 1, 2, 4 concurrent builds
#     (swarm tasks); builds per minute and the ratio to K = 1 (goal >= 0.8 K where the
#     cores allow: the sleep takes no core, rustc's build of the fixture does);
#  2. per-build overhead of the swarm path vs the local bubblewrap sandbox for one real
#     crate from crates.io (goal <= 15 s or <= 1.2x), median of RUNS.
# Usage: scripts/bench-swarm.sh [N] [K_LIST] [CRATE@VERSION]
#        (defaults: 40 "1,2,4" itoa@1.0.15; SLEEP=3, RUNS=3)
#        WORKERS=W: the swarm builds run on W worker engines in containers
#        (scripts/swarm-workers.sh), inputs streamed in and results streamed back
set -euo pipefail
cd "$(dirname "$0")/.."
n=${1:-40}
ks=${2:-1,2,4}
real=${3:-itoa@1.0.15}
sleep_secs=${SLEEP:-3}
scripts/build-image.sh >/dev/null
. scripts/lib/swarm.sh
ensure_swarm
workers=()
if [ "${WORKERS:-0}" -gt 0 ]; then
  scripts/swarm-workers.sh up "$WORKERS" >/dev/null
  workers=(--workers)
fi
# The bench only drives the builder: a debug build of it is enough (builds run in the sandbox).
cargo build --locked --quiet --example bench_swarm

# The fixture registry: a sparse index and .crate files on loopback (python's http.server).
reg=$(mktemp -d /tmp/bench-swarm-reg.XXXXXX)
work=${BENCH_WORK:-${XDG_CACHE_HOME:-$HOME/.cache}/synchronicity/bench-swarm}
mkdir -p "$work"
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
python3 - "$reg" "$n" "$sleep_secs" "$port" <<'EOF'
import gzip, hashlib, io, json, os, sys, tarfile
root, n, secs, port = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
name = "sleepy"
os.makedirs(f"{root}/index/sl/ee", exist_ok=True)
os.makedirs(f"{root}/dl/{name}", exist_ok=True)
with open(f"{root}/index/config.json", "w") as f:
    json.dump({"dl": f"http://127.0.0.1:{port}/dl/{{crate}}/{{crate}}-{{version}}.crate"}, f)
lines = []
for i in range(n):
    v = f"0.1.{i}"
    files = {
        "Cargo.toml": f'[package]\nname = "{name}"\nversion = "{v}"\nedition = "2021"\n',
        "Cargo.lock": f'version = 4\n\n[[package]]\nname = "{name}"\nversion = "{v}"\n',
        "build.rs": f"fn main() {{ std::thread::sleep(std::time::Duration::from_secs({secs})); }}\n",
        "src/lib.rs": "pub fn answer() -> u32 { 42 }\n",
    }
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.GNU_FORMAT) as t:
        for p, c in files.items():
            data = c.encode()
            info = tarfile.TarInfo(f"{name}-{v}/{p}")
            info.size, info.mode, info.mtime = len(data), 0o644, 0
            t.addfile(info, io.BytesIO(data))
    crate = gzip.compress(buf.getvalue(), mtime=0)
    with open(f"{root}/dl/{name}/{name}-{v}.crate", "wb") as f:
        f.write(crate)
    lines.append(json.dumps({"name": name, "vers": v, "deps": [], "features": {},
                             "cksum": hashlib.sha256(crate).hexdigest(), "yanked": False}))
with open(f"{root}/index/sl/ee/{name}", "w") as f:
    f.write("\n".join(lines) + "\n")
EOF
python3 -m http.server "$port" --bind 127.0.0.1 --directory "$reg" >/dev/null 2>&1 &
server=$!
trap 'kill $server 2>/dev/null; rm -rf "$reg"' EXIT
for _ in $(seq 50); do curl -sf "http://127.0.0.1:$port/index/config.json" >/dev/null && break; sleep 0.1; done

echo "# scripts/bench-swarm.sh $n $ks $real (SLEEP=$sleep_secs; $(nproc) cores; $(docker info --format 'Docker {{.ServerVersion}}, swarm nodes {{.Swarm.Nodes}}'))"
target/debug/examples/bench_swarm --registry "http://127.0.0.1:$port/index" \
  --versions "$n" --k "$ks" --overhead "$real" --runs "${RUNS:-3}" --work "$work" \
  --toolchain "$(rustc --version | cut -d' ' -f2)" "${workers[@]}"
