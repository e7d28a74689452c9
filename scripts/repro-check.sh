#!/usr/bin/env bash
# Rebuilds a published list of 110 popular crates, each twice: once with the sandbox
# (bubblewrap) backend in one work directory, once with the Docker backend in another at a
# different host path; prints, crate by crate, whether the two manifests are byte for byte
# the same (reproduced), not (DIFFERS), or a build failed (failed: <class> for the class of
# docs/formats.md); then a Markdown table and the reproduced fraction.
#
# Results go to a TSV file as they come (default repro-check.tsv in the current directory;
# --results FILE): crate, kind, result, the two digests, seconds, the two backends, the
# commit. A crate already in it with the same backends is not built again, so a long run
# can stop and go on; a row whose build could not run at all (result `error`: Docker down,
# no network, a full disk) is built again. Everything under the work root (default a new /tmp/repro-check.XXXXXX; --work DIR)
# is kept: build logs are named in the JSON each build prints.
#
# Usage: scripts/repro-check.sh [--results FILE] [--work DIR] [--kind KIND] [--list]
#                               [CRATE@VERSION ...]
# BACKENDS="sandbox docker" (the default) picks the backend of each of the two builds.
set -uo pipefail
results=$PWD/repro-check.tsv
for a in "$@"; do # relative paths are the caller's, not the repository's
  case $a in --results=* | --work=*) echo "error: use --results FILE, --work DIR" >&2; exit 2 ;; esac
done
args=()
while [ $# -gt 0 ]; do
  case $1 in
    --results | --work)
      [ $# -ge 2 ] || { echo "error: $1 needs a path" >&2; exit 2; }
      args+=("$1" "$(realpath -m "$2")"); shift 2 ;;
    *) args+=("$1"); shift ;;
  esac
done
set -- "${args[@]+"${args[@]}"}"
cd "$(dirname "$0")/.."

# The list: kind, then crates pinned to the newest version on 2026-12-05 that builds with
# Rust 1.95 (hyperfine 2 needs 1.97: 1.20.0). Kinds: lib (plain libraries), probe (build
# scripts that probe rustc or the machine), macro (proc macros), c (C or C++ through cc,
# cmake or autoconf, bindgen), alloc (allocators), bin (binaries, the large ones last).
LIST='
lib   itoa@1.0.19 memchr@2.8.3 smallvec@1.16.6 serde_json@1.0.154 log@0.4.35 bytes@1.12.2
lib   bitflags@2.13.2 once_cell@1.21.4 regex@1.13.2 hashbrown@0.17.2 indexmap@2.14.2
lib   itertools@0.15.0 rand@0.10.4 uuid@1.29.3 base64@0.23.1 sha2@0.11.1 crossbeam-channel@0.5.17
lib   semver@1.0.28 url@2.5.9 chrono@0.4.45 time@0.3.55 tokio@1.54.1 futures@0.3.34 http@1.5.0
lib   tracing@0.1.44 clap@4.6.10 toml@1.2.2+spec-1.1.0 rayon@1.12.0 ahash@0.8.12 bstr@1.14.0
lib   tempfile@3.27.0 nom@8.0.0 flate2@1.1.11 encoding_rs@0.8.44 unicode-normalization@0.1.26
lib   hyper@1.13.0 bumpalo@3.20.4 brotli@9.1.3 getrandom@0.4.3 cc@1.11.3
probe serde@1.0.229 libc@0.2.191 proc-macro2@1.0.107 anyhow@1.0.105 rustix@1.1.6
probe num-traits@0.2.19 typenum@1.20.1 crossbeam-utils@0.8.23 thiserror@2.0.21
probe httparse@1.10.1 memoffset@0.9.1 ryu@1.0.23 parking_lot@0.13.0 rustversion@1.0.23
probe zerocopy@0.8.66 generic-array@1.4.5 unicode-ident@1.0.27 num_cpus@1.17.0
probe sysinfo@0.40.4 nix@0.32.0 libloading@0.9.1
macro serde_derive@1.0.229 thiserror-impl@2.0.21 syn@3.0.10 tokio-macros@2.7.2
macro async-trait@0.1.92 pin-project-internal@1.2.0 clap_derive@4.6.8
macro strum_macros@0.28.0 tracing-attributes@0.1.31 futures-macro@0.3.34
macro zerocopy-derive@0.8.66 displaydoc@0.2.7 paste@1.0.15 prost-derive@0.14.6
macro pest_derive@2.9.6 serde_repr@0.1.21 derive_more@2.1.1 darling@0.24.1
c     zstd-sys@2.1.3+zstd.1.5.7 zstd@0.14.4 blake3@1.8.7 libz-sys@1.1.33 ring@0.17.14
c     bzip2-sys@0.1.13+1.0.8 lzma-sys@0.1.20 openssl-sys@0.9.118 lz4-sys@1.11.1+lz4-1.10.0
c     cxx@1.0.205 onig_sys@69.9.3 libz-ng-sys@1.1.33 libgit2-sys@0.18.8+1.9.7
c     clang-sys@1.9.1 bindgen@0.73.2 libsqlite3-sys@0.40.0
alloc libmimalloc-sys@0.1.49 mimalloc@0.1.52 snmalloc-sys@0.7.6
alloc tikv-jemalloc-sys@0.7.1+5.3.1-0-g81034ce1f1373e37dc865038e1bc8eeecf559ce8
alloc tikv-jemallocator@0.7.0
bin   hexyl@0.17.0 sd@1.0.0 cargo-machete@0.9.2 hyperfine@1.20.0 tokei@15.0.0
bin   du-dust@1.2.7 just@1.59.0 fd-find@10.5.0 ripgrep@15.2.0 mdbook@0.5.4
'

root=
only_kind=
list_only=
crates=()
while [ $# -gt 0 ]; do
  case $1 in
    --results) results=$2; shift 2 ;;
    --work) root=$2; shift 2 ;;
    --kind) only_kind=$2; shift 2 ;;
    --list) list_only=1; shift ;;
    -*) echo "error: unknown option $1" >&2; exit 2 ;;
    *) crates+=("other $1"); shift ;;
  esac
done
if [ ${#crates[@]} -eq 0 ]; then
  while read -r kind rest; do
    [ -z "$kind" ] && continue
    [ -n "$only_kind" ] && [ "$kind" != "$only_kind" ] && continue
    for c in $rest; do crates+=("$kind $c"); done
  done <<<"$LIST"
fi
if [ -n "$list_only" ]; then
  printf '%s\n' "${crates[@]}"
  exit 0
fi
read -r -a backends <<<"${BACKENDS:-sandbox docker}"
[ ${#backends[@]} -eq 2 ] || { echo "error: BACKENDS must name two backends" >&2; exit 2; }

scripts/build-image.sh >/dev/null || exit 1
cargo build --release --locked --quiet || exit 1
bin=$PWD/target/release/synchronicity
root=${root:-$(mktemp -d /tmp/repro-check.XXXXXX)}
mkdir -p "$root"
touch "$results"

# build BACKEND WORKDIR SPEC: "s:<digest>", "f:<class>", or "error:<why>" (the CLI failed).
build() {
  local json
  json=$("$bin" build "$3" --backend "$1" --work-dir "$2" --json 2>"$root/last-stderr") ||
    [ -n "$json" ] || { echo "error:$(tail -1 "$root/last-stderr" | tr '\t' ' ')"; return; }
  python3 -c '
import json, sys
d = json.load(sys.stdin)
print(("s:" + d["digest"]) if d["status"] == "success" else ("f:" + (d["failure_class"] or "?")))
' <<<"$json" 2>/dev/null || echo "error:unreadable JSON"
}

echo "results in $results, work under $root (${backends[0]} at $root/a, ${backends[1]} at $root/elsewhere/b)" >&2
for entry in "${crates[@]}"; do
  kind=${entry%% *}
  c=${entry#* }
  if awk -F'\t' -v c="$c" -v b="${backends[*]}" '$1 == c && $7 == b && $3 != "error" { f = 1 } END { exit !f }' "$results"; then
    continue
  fi
  start=$(date +%s)
  d1=$(build "${backends[0]}" "$root/a" "$c")
  d2=$(build "${backends[1]}" "$root/elsewhere/b" "$c")
  if [ "${d1%%:*}" = error ] || [ "${d2%%:*}" = error ]; then
    res=error
  elif [ "${d1%%:*}" = s ] && [ "$d1" = "$d2" ]; then
    res=reproduced
  elif [ "${d1%%:*}" = s ] && [ "${d2%%:*}" = s ]; then
    res=DIFFERS
  elif [ "${d1%%:*}" = f ] && [ "$d1" = "$d2" ]; then
    res="failed: ${d1#f:}"
  else
    res="failed: ${d1#?:} / ${d2#?:}"
  fi
  secs=$(($(date +%s) - start))
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$c" "$kind" "$res" "${d1:0:14}" "${d2:0:14}" "$secs" \
    "${backends[*]}" "$(git rev-parse --short HEAD)" >>"$results"
  [ "$res" = error ] && res="error: $d1 / $d2"
  printf '%-40s %-6s %-12s %-12s %5ss %s\n' "$c" "$kind" "${d1:2:12}" "${d2:2:12}" "$secs" "$res" >&2
done

echo "| crate | kind | ${backends[0]} | ${backends[1]} | result |"
echo "|---|---|---|---|---|"
total=0
ok=0
for entry in "${crates[@]}"; do
  c=${entry#* }
  row=$(awk -F'\t' -v c="$c" -v b="${backends[*]}" '$1 == c && $7 == b' "$results" | tail -1)
  [ -z "$row" ] && continue
  IFS=$'\t' read -r _ kind res d1 d2 _ <<<"$row"
  total=$((total + 1))
  [ "$res" = reproduced ] && ok=$((ok + 1))
  echo "| $c | $kind | \`${d1:2:12}\` | \`${d2:2:12}\` | $res |"
done
[ "$total" -gt 0 ] || { echo "nothing built" >&2; exit 1; }
commits=$(awk -F'\t' -v b="${backends[*]}" '$7 == b { print $8 }' "$results" | sort -u | tr '\n' ' ')
echo
echo "reproduced $ok of $total ($((100 * ok / total)) %), ${backends[0]} vs ${backends[1]} at two host paths, built at ${commits% }, table made $(date -u +%F)"
[ "$ok" -eq "$total" ]
