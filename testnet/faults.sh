#!/usr/bin/env bash
# The fault suite: each scenario against a fresh group of member containers (testnet/lib.sh)
# under a load of requests (the test builder's `load-*` crates for volume, plus real
# crates from crates.io built in the containers' bubblewrap sandboxes), then the
# invariants, then one table row.
#
#   testnet/faults.sh [--profile release|debug] SCENARIO... | all | ci
#
# Scenarios: partition, proposer-isolated, loss, sigkill, sigstop, clock-5s, clock-60s,
# disk-full, byz-equivocate, byz-conflicting-commitments, byz-wrong-reveal,
# byz-withhold-reveal, byz-flood-gossip, byz-flood-cosign, byz-flood-streams,
# byz-flood-requests, byz-2-of-7, and the committee changes: join-partition (a builder
# joins while the group is split 2 + 2), proposer-killed-at-boundary (the proposer of each
# next height killed from the change's scheduling until the epoch ends), removed-byzantine
# (a flooding member removed, its node started again and sending) (all of these: `all`; a
# short subset: `ci`), and
# broken-committee: a deliberately broken group (two members given another committee
# file) that MUST fail an invariant (tests/testnet_faults.rs expects it to).
#
# Invariants, after each scenario (testnet_member check/settle): every honest member has
# every submitted request decided and cosigned (else `no-lost-request`, with each pending
# request's reason); the honest members' roots agree at every common size and every stored
# checkpoint is a prefix of every member's log by a consistency proof (`one-history`); the
# members' index roots agree at every common size (`index-roots`);
# every stored cosigned checkpoint verifies and `log fsck` passes on every honest store
# (`checkpoints-verify`, `fsck`); each honest node's peak resident memory stays under
# MEMORY_MIB (`bounded-memory`). A broken invariant prints `INVARIANT <name>: …` and the
# scenario FAILS; the script exits 1 if any did.
#
# Results: testnet/faults/<scenario>/ (data, logs, ids) and testnet/faults/table.md.
set -euo pipefail
cd "$(dirname "$0")/.."
while [ $# -gt 0 ]; do
  case $1 in
    --profile) export TESTNET_PROFILE=$2; shift 2 ;;
    *) break ;;
  esac
done
# Debug binaries by default (the test tool links the test builder; its dependencies are
# optimised in the dev profile): --profile release for release ones.
export TESTNET_PROFILE=${TESTNET_PROFILE:-debug}
. testnet/lib.sh
. scripts/lib/epochs.sh
root=$PWD/testnet/faults
tool=$PWD/$member_bin
MEMORY_MIB=${MEMORY_MIB:-512}
REAL_CRATE=${REAL_CRATE:-itoa@1.0.15}

ALL=(partition proposer-isolated loss sigkill sigstop clock-5s clock-60s disk-full
  byz-equivocate byz-conflicting-commitments byz-wrong-reveal byz-withhold-reveal
  byz-flood-gossip byz-flood-cosign byz-flood-streams byz-flood-requests byz-2-of-7
  join-partition proposer-killed-at-boundary removed-byzantine)
CI=(partition byz-equivocate sigkill-short)

log() { printf '[%s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

prepare() {
  [ -d "$faketime_lib" ] || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq faketime >/dev/null; }
  command -v nsenter >/dev/null && command -v iptables >/dev/null ||
    { echo "error: nsenter and iptables are needed (util-linux, iptables)" >&2; exit 1; }
  # The image is only the root filesystem, bubblewrap and the toolchain here: both binaries
  # are mounted from the host build.
  build_bins --member
  docker image inspect "$image" >/dev/null 2>&1 || build_image
  remove_containers
  ensure_network
  mkdir -p "$root"
}

# --- the group of one scenario -------------------------------------------------------

# group N: a fresh group of N members (keys, committee with short windows); starts none.
group() {
  n=$1
  data=$root/$scenario
  new_group "$data" "$n" --commit-window-secs 120 --commit-grace-secs 2 --reveal-window-secs 15
  declare -gA DOPTS=() BYZ=() CFILE=() XARGS=()
  honest=()
  EXPECT=()
  local i
  for i in $(seq 0 $((n - 1))); do
    printf 'idle_interval_ms = 1000\n[builder]\nbackend = "sandbox"\nwork_dir = "/work"\n' >"$data/n$i/node.toml"
  done
  : >"$data/ids"
}

# start I: member I's container (options DOPTS[I], misbehaviour BYZ[I], committee CFILE[I]).
start() {
  local i=$1
  # shellcheck disable=SC2086
  run_member "$data" "$i" "${CFILE[$i]:-$data/committee.toml}" \
    -v "$tool:/usr/local/bin/testnet-member:ro" -v "$PWD/$bin:/usr/local/bin/synchronicity:ro" -e SYNC_TEST_BUILD_MS=100 ${DOPTS[$i]:-} -- \
    testnet-member node --dir /data --committee /committee.toml --metrics 0.0.0.0:9100 ${BYZ[$i]:+--byzantine ${BYZ[$i]}} ${XARGS[$i]:-}
}

start_all() {
  local i
  for i in $(seq 0 $((n - 1))); do start "$i"; done
  for i in $(seq 0 $((n - 1))); do wait_ready "$data" "$i" 120; done
  for i in $(seq 0 $((n - 1))); do [ -n "${BYZ[$i]:-}" ] || honest+=("$i"); done
  "$tool" watch --dirs "$(honest_dirs)" --out "$data/growth" &
  watch_pid=$!
}

dirs_of() { local out="" i; for i in "$@"; do out+="${out:+,}$data/n$i"; done; echo "$out"; }
all_dirs() { dirs_of $(seq 0 $((n - 1))); }
honest_dirs() { dirs_of "${honest[@]}"; }

# load COUNT RATE [REAL...]: submits in the background (round-robin over the honest
# members; one that is down passes its turn on).
load() {
  local count=$1 rate=$2
  shift 2
  local real
  real=$(IFS=,; echo "$*")
  "$tool" load --dirs "$(honest_dirs)" --prefix "load-$scenario" --count "$count" --rate "$rate" \
    ${real:+--real "$real"} --out "$data/ids" >"$data/load.log" 2>&1 &
  load_pid=$!
}

wait_load() {
  wait "$load_pid" || { fail "load: $(tail -1 "$data/load.log")"; return 0; }
}

pid_of() { docker inspect -f '{{.State.Pid}}' "sync-n$1"; }
# exit_code I SECS: member I's container's exit code once it has stopped; empty if it still
# runs after SECS.
exit_code() {
  local code="" t
  for t in $(seq 1 $(($2 * 2))); do
    code=$(docker inspect -f '{{if .State.Running}}{{else}}{{.State.ExitCode}}{{end}}' "sync-n$1")
    [ -n "$code" ] && break
    sleep 0.5
  done
  echo "$code"
}
# in_net I CMD...: a command in member I's network namespace (the host's iptables).
in_net() { local p; p=$(pid_of "$1"); shift; nsenter -t "$p" -n "$@"; }

# cut_off I J...: member I drops everything from and to members J... (both directions, at I).
cut_off() {
  local i=$1 j
  shift
  for j in "$@"; do
    in_net "$i" iptables -A INPUT -s "$subnet.$((10 + j))" -j DROP
    in_net "$i" iptables -A OUTPUT -d "$subnet.$((10 + j))" -j DROP
  done
}
heal() { local i; for i in "$@"; do in_net "$i" iptables -F; done; }

sizes() { "$tool" sizes --dirs "$(dirs_of "$@")"; }

# --- committee changes (scripts/lib/epochs.sh: the operators' commands) ---------------

# joiner I: a new builder's keys (keygen, at the next address) and its container, started from
# the genesis file with --join: it follows the log as a non-voter.
joiner() {
  local i=$1
  "$bin" keygen --dir "$data/n$i" --name "n$i" --addr "/ip4/$subnet.$((10 + i))/tcp/7000" >/dev/null 2>&1
  printf 'idle_interval_ms = 1000\n[builder]\nbackend = "sandbox"\nwork_dir = "/work"\n' >"$data/n$i/node.toml"
  XARGS[$i]=--join
  start "$i"
  wait_ready "$data" "$i" 120
}

# propose_next PROPOSE_ARGS...: the next committee ($data/next.toml), proposed from the
# current one (fetched with the chain from an honest member and verified from the genesis).
propose_next() {
  "$bin" committee chain --peer "$(member_addr "$data/n${honest[0]}")" --trust "$data/committee.toml" \
    --out "$data/chain.toml" --current "$data/current.toml" 2>>"$data/change.log" || { fail "committee chain"; return 0; }
  rm -f "$data/next.toml"
  "$bin" committee propose --from "$data/current.toml" "$@" --out "$data/next.toml" 2>>"$data/change.log" ||
    { fail "committee propose $*"; return 0; }
}

# approve_next I...: members I... approve $data/next.toml through their control sockets.
approve_next() {
  local i
  for i in "$@"; do
    "$bin" committee approve "$data/next.toml" --node "$data/n$i" 2>>"$data/change.log" || log "n$i did not approve"
  done
}

# change PROPOSE_ARGS...: propose_next, approved by every honest member that votes; does not
# wait for it to take effect.
change() {
  propose_next "$@"
  local i voting=()
  for i in "${honest[@]}"; do [ -n "$(voters "$bin" "$data/n$i")" ] && voting+=("$i"); done
  approve_next "${voting[@]}"
  log "proposed and approved: $*"
}

# wait_epoch E SECS I...: until members I... all serve epoch E (1 if not within SECS).
wait_epoch() {
  local e=$1 secs=$2 t i all
  shift 2
  for t in $(seq 1 $((secs * 2))); do
    all=1
    for i in "$@"; do [ "$(epoch_of "$bin" "$data/n$i" || true)" = "$e" ] || { all=0; break; }; done
    [ "$all" = 1 ] && return 0
    sleep 0.5
  done
  return 1
}

# counters NAME...: the sum of these counters over the honest nodes, now.
counters() {
  local i k
  for i in "${honest[@]}"; do
    curl -s --max-time 3 "http://$subnet.$((10 + i)):9100/metrics" 2>/dev/null || true
  done | awk -v names="$*" 'BEGIN { n = split(names, a, " "); for (j = 1; j <= n; j++) want["synchronicity_" a[j] "_total"] = 1 }
    ($1 in want) { s += $2 } END { printf "%d\n", s }'
}
largest() { tr ' ' '\n' <<<"$1" | sort -n | tail -1; }

failures=()
fail() { log "FAIL $scenario: $*"; failures+=("$scenario: $*"); scenario_failed=1; }

# finish: settle, peak memory, stop, check; one table row.
finish() {
  local settle_out decided pending stall mem=0 i m check_out forks lost fsck
  settle_out=$("$tool" settle --dirs "$(honest_dirs)" --ids "$data/ids" --timeout "${SETTLE_SECS:-240}" || true)
  echo "$settle_out" >"$data/settle.txt"
  echo "$settle_out" | grep '^pending' >&2 || true
  decided=$(echo "$settle_out" | sed -n 's/^decided=\([0-9]*\).*/\1/p')
  pending=$(echo "$settle_out" | sed -n 's/.*pending=\([0-9]*\).*/\1/p')
  kill "$watch_pid" 2>/dev/null || true
  # The longest time the honest members' log did not grow, from its first growth to the
  # last (when everything was decided).
  stall=$(awk 'NR > 1 && $1 - prev > max { max = $1 - prev } { prev = $1 } END { printf "%.1f", max / 1000 }' "$data/growth")
  [ "${pending:-1}" = 0 ] || fail "${pending:-?} request(s) not decided on every honest member"
  for i in "${honest[@]}"; do
    m=$(docker exec "sync-n$i" sh -c 'grep VmHWM /proc/1/status' 2>/dev/null | awk '{print int($2/1024)}' || echo 0)
    [ "${m:-0}" -gt "$mem" ] && mem=$m
  done
  if [ "$mem" -gt "$MEMORY_MIB" ]; then
    echo "INVARIANT bounded-memory: an honest node peaked at $mem MiB (bound $MEMORY_MIB MiB)" >&2
    fail "bounded-memory"
  fi
  for i in $(seq 0 $((n - 1))); do docker logs "sync-n$i" >"$data/n$i.log" 2>&1 || true; done
  # Each honest node's counters (what was dropped where, under the floods): DATA/nI.metrics,
  # and the sums of the telling ones in DATA/drops.txt.
  for i in "${honest[@]}"; do
    curl -s --max-time 3 "http://$subnet.$((10 + i)):9100/metrics" >"$data/n$i.metrics" 2>/dev/null || true
  done
  local k
  for k in net_gossip_dropped_author_share net_gossip_dropped_node_busy net_validations_dropped \
    net_frames_dropped frames_dropped; do
    printf '%s=%s\n' "$k" "$(cat "$data"/n*.metrics 2>/dev/null | awk -v k="synchronicity_${k}_total" '$1 == k { s += $2 } END { print s + 0 }')"
  done >"$data/drops.txt"
  log "honest nodes' counters: $(tr '\n' ' ' <"$data/drops.txt")"
  docker stop -t 10 $(docker ps -q --filter name=sync-n) >/dev/null 2>&1 || true
  check_out=$("$tool" check --dirs "$(honest_dirs)" --committee "$data/committee.toml" --ids "$data/ids" 2>&1) ||
    fail "$(echo "$check_out" | grep -m1 '^INVARIANT' || echo "$check_out" | tail -1)"
  echo "$check_out" >"$data/check.txt"
  echo "$check_out" | grep '^INVARIANT' >&2 || true
  # What the scenario expects the log to say: its real crates reproduced, the Byzantine
  # member's provable misbehaviour recorded.
  local spec e
  for spec in $(awk '{print $1}' "$data/ids" | grep -v '^load-' || true); do
    echo "$check_out" | grep -q "^real: $spec Reproduced" || fail "$spec was not reproduced"
  done
  if [ -f "$data/killed_heights" ]; then
    local boundary
    boundary=$(echo "$check_out" | sed -n 's/^change: epoch 1 began after height \([0-9]*\)/\1/p')
    log "the epoch ended at height ${boundary:-?}"
    grep -qw "${boundary:-none}" "$data/killed_heights" || fail "the boundary height ${boundary:-?} was not one whose proposer was killed"
  fi
  for e in "${EXPECT[@]}"; do
    echo "$check_out" | grep '^recorded:' | grep -q "\"$e\"" || fail "the log does not record $e"
  done
  forks=$(echo "$check_out" | sed -n 's/.*forks=\([0-9]*\).*/\1/p')
  lost=$(echo "$check_out" | sed -n 's/.*lost=\([0-9]*\).*/\1/p')
  fsck=$(echo "$check_out" | sed -n 's/.*fsck=\([a-zA-Z]*\).*/\1/p')
  local submitted
  submitted=$(wc -l <"$data/ids")
  row=$(printf '| %s | %s | %s | %s | %s s | %s | %s | %s MiB | %s s | %s |' "$scenario" "$submitted" \
    "${decided:-?}" "${lost:-?}" "${stall:-?}" "${forks:-?}" "${fsck:-?}" "$mem" \
    "$(($(date +%s) - t0))" "$([ "$scenario_failed" = 0 ] && echo ok || echo FAILED)")
  echo "$row" >>"$root/table.md"
  log "$row"
  remove_containers
}

# --- scenarios -----------------------------------------------------------------------

# A 2 + 2 split: nothing decided while split, no fork; healed, deciding again within 15 s.
sc_partition() {
  group 4; start_all
  load 40 4 "$REAL_CRATE"
  sleep 8
  cut_off 0 2 3; cut_off 1 2 3; cut_off 2 0 1; cut_off 3 0 1
  sleep 4 # a height whose votes were all out before the cut may still complete
  local before after
  before=$(sizes 0 1 2 3)
  sleep 25
  after=$(sizes 0 1 2 3)
  # A member one height behind at the cut may still fetch that height from its own side
  # (sync, not a decision); a new height needs 3 of 4, so the largest size must not grow.
  [ "$(largest "$after")" = "$(largest "$before")" ] || fail "decided while split: sizes $before -> $after"
  log "split 25 s: sizes $before -> $after"
  heal 0 1 2 3
  local took
  if took=$("$tool" grows --dirs "$(all_dirs)" --within 15); then
    log "healed: deciding again after $took s"
    echo "$took" >"$data/healed_after_s"
  else
    fail "not deciding within 15 s of the heal"
  fi
  wait_load
}

# The proposer of the next height cut off from everyone for 30 s, then back.
sc_proposer_isolated() {
  group 4; start_all
  load 60 3
  sleep 6
  local h p
  h=$("$bin" status --node "$data/n0" --json 2>/dev/null | python3 -c 'import json,sys; print(json.load(sys.stdin)["applied_height"])')
  p=$((h % n))
  log "isolating n$p (round-0 proposer of height $((h + 1)))"
  # shellcheck disable=SC2046
  cut_off "$p" $(seq 0 $((n - 1)) | grep -vx "$p")
  local others
  others=$(seq 0 $((n - 1)) | grep -vx "$p" | tr '\n' ' ')
  # shellcheck disable=SC2086
  "$tool" grows --dirs "$(dirs_of $others)" --within 30 >/dev/null || fail "the others decided nothing without n$p"
  sleep 25
  heal "$p"
  wait_load
}

# One member behind 20 % packet loss (both directions) for the whole load.
sc_loss() {
  group 4; start_all
  in_net 2 iptables -A INPUT -m statistic --mode random --probability 0.2 -j DROP
  in_net 2 iptables -A OUTPUT -m statistic --mode random --probability 0.2 -j DROP
  load 80 4 "$REAL_CRATE"
  wait_load
  SETTLE_SECS=300
}

# SIGKILL of a random member, KILLS times during the load; each restarted at once.
sc_sigkill() {
  local kills=${KILLS:-50} count=${COUNT:-200}
  group 4; start_all
  load "$count" 2 "$REAL_CRATE"
  local k i
  for k in $(seq 1 "$kills"); do
    i=$((RANDOM % n))
    docker kill -s KILL "sync-n$i" >/dev/null
    sleep 0.$((RANDOM % 9 + 1))
    docker start "sync-n$i" >/dev/null
    wait_ready "$data" "$i" 60 || fail "n$i did not come back after kill $k"
    sleep 1.$((RANDOM % 9))
  done
  log "$kills kills done"
  wait_load
}
sc_sigkill_short() { KILLS=10 COUNT=40 sc_sigkill; }

# SIGSTOP of one member for 60 s, then SIGCONT: it catches up.
sc_sigstop() {
  group 4; start_all
  load 100 2
  sleep 5
  docker kill -s STOP sync-n1 >/dev/null
  "$tool" grows --dirs "$(dirs_of 0 2 3)" --within 20 >/dev/null || fail "the others decided nothing while n1 was stopped"
  sleep 55
  docker kill -s CONT sync-n1 >/dev/null
  wait_load
}

# One member's wall clock ahead (libfaketime; the monotonic clock is left alone).
clock_ahead() {
  group 4
  DOPTS[3]="-v $faketime_lib:$faketime_lib:ro -e LD_PRELOAD=$faketime_lib/libfaketime.so.1 -e FAKETIME=+$1 -e FAKETIME_DONT_FAKE_MONOTONIC=1 -e FAKETIME_DONT_RESET=1"
  start_all
  local skew
  skew=$(($(docker exec sync-n3 date +%s) - $(date +%s)))
  log "n3's clock is $skew s ahead"
  load 80 4 "$REAL_CRATE"
  wait_load
}
sc_clock_5s() { clock_ahead 5s; }
sc_clock_60s() { clock_ahead 60s; }

# One member's volume fills up: it stops with one line; the others go on; space freed and
# restarted, it catches up.
sc_disk_full() {
  group 4
  local img=$root/disk-full.img mnt=$data/n3
  umount "$mnt" 2>/dev/null || true
  mv "$mnt" "$mnt.keys"
  truncate -s 256M "$img"
  mkfs.ext4 -q -F -m 0 "$img"
  mkdir -p "$mnt"
  mount -o loop "$img" "$mnt"
  cp -a "$mnt.keys/." "$mnt/"
  start_all
  load 150 2
  sleep 5
  # Leave no room: a filler file takes every free block (redb and the WAL then fail at
  # their next write that needs a new block).
  dd if=/dev/zero of="$mnt/filler" bs=1M status=none 2>/dev/null || true
  sync -f "$mnt/filler"
  local code
  code=$(exit_code 3 120)
  if [ -z "$code" ] || [ "$code" = 0 ]; then
    fail "n3 did not stop when its disk filled (exit code '${code}')"
  else
    log "n3 stopped, exit $code: $(docker logs --tail 1 sync-n3 2>&1)"
    docker logs --tail 1 sync-n3 2>&1 | grep -q 'halted\|error' || fail "n3's last line does not say why it stopped"
  fi
  "$tool" grows --dirs "$(dirs_of 0 1 2)" --within 20 >/dev/null || fail "the others decided nothing without n3"
  rm -f "$mnt/filler"
  docker start sync-n3 >/dev/null
  wait_ready "$data" 3 60 || fail "n3 did not come back"
  wait_load
}
disk_full_cleanup() {
  local mnt=$root/disk-full/n3
  mountpoint -q "$mnt" 2>/dev/null && umount "$mnt"
  rm -f "$root/disk-full.img"
}

# byzantine BEHAVIOURS [RECORDED...]: member 3 misbehaves; the log must record RECORDED.
byzantine() {
  group 4
  BYZ[3]=$1
  shift
  EXPECT=("$@")
  start_all
  load 60 4 "$REAL_CRATE"
  wait_load
}
sc_byz_equivocate() { byzantine equivocate; }
sc_byz_conflicting_commitments() { byzantine conflicting-commitments m3:DoubleCommitment; }
sc_byz_wrong_reveal() { byzantine wrong-reveal m3:RevealMismatch; }
sc_byz_withhold_reveal() { byzantine withhold-reveal m3:Silent; }
sc_byz_flood_gossip() { byzantine flood-gossip; }
sc_byz_flood_cosign() { byzantine flood-cosign; }
sc_byz_flood_streams() { byzantine flood-streams; }
sc_byz_flood_requests() { byzantine flood-requests; }

# A builder joins while the group is split 2 + 2: it follows the log as a non-voter from
# before the split; the approvals wait in each half's mempool (nothing is decided while
# split); after the heal the change is decided once, all five serve epoch 1, the newcomer
# votes, and every invariant holds on all five (one history).
sc_join_partition() {
  group 4; start_all
  joiner 4
  load 40 4 "$REAL_CRATE"
  sleep 8
  cut_off 0 2 3; cut_off 1 2 3; cut_off 2 0 1; cut_off 3 0 1
  sleep 4
  change --add "$data/n4"
  local before after
  before=$(sizes 0 1 2 3)
  sleep 20
  after=$(sizes 0 1 2 3)
  [ "$(largest "$after")" = "$(largest "$before")" ] || fail "decided while split: sizes $before -> $after"
  wait_epoch 0 2 0 1 2 3 4 || fail "the epoch changed while split"
  heal 0 1 2 3
  if wait_epoch 1 120 0 1 2 3 4; then
    log "healed: all five in epoch 1; n4: $("$bin" status --node "$data/n4" | head -1)"
  else
    fail "not all five in epoch 1 within 120 s of the heal"
  fi
  [ -n "$(voters "$bin" "$data/n4")" ] || fail "n4 does not vote in epoch 1"
  honest+=(4)
  n=5
  wait_load
}

# The proposer killed at the boundary: after a load, once no round is open, a rule change is
# approved by two members; the round-0 proposer of the next height is SIGKILLed and the third
# approval sent, so the block that takes it (and, with no round open, ends the epoch) is
# proposed by another member in a later round; the proposer of every later height is killed
# too until the epoch ends (each started again 3 s later). The height whose block ended the
# epoch (from the log) must be one whose proposer was killed. Then a second load: the group
# goes on deciding; every member reaches epoch 1 (the killed ones by sync, fetching the
# handoff checkpoint); no request is lost.
member_state() { # epoch, applied height and open rounds of the first member that answers
  local i st
  for i in $(seq 0 $((n - 1))); do
    st=$("$bin" status --node "$data/n$i" --json 2>/dev/null |
      python3 -c 'import json,sys; s=json.load(sys.stdin); print(s["epoch"], s["applied_height"], len(s["open"]))' 2>/dev/null) &&
      { echo "$st"; return 0; }
  done
  return 1
}
sc_proposer_killed_at_boundary() {
  group 4; start_all
  load 40 4
  wait_load
  local killed=() restarts=() last=-1 t st e h open p approved=0
  for t in $(seq 1 300); do
    st=$(member_state) && read -r e h open <<<"$st" && [ "$open" = 0 ] && break
    sleep 0.2
  done
  propose_next --reveal-window-secs 20
  approve_next 0 1
  for t in $(seq 1 1500); do
    st=$(member_state) || { sleep 0.2; continue; }
    read -r e h open <<<"$st"
    [ "$e" = 1 ] && break
    if [ "$h" != "$last" ]; then
      p=$((h % n))
      docker kill -s KILL "sync-n$p" >/dev/null 2>&1 || true
      killed+=($((h + 1)))
      last=$h
      (sleep 3; docker start "sync-n$p" >/dev/null 2>&1) &
      restarts+=($!)
      if [ "$approved" = 0 ]; then
        local a
        for a in 2 3; do
          [ "$a" != "$p" ] && "$bin" committee approve "$data/next.toml" --node "$data/n$a" 2>>"$data/change.log" && { approved=1; break; }
        done
      fi
    fi
    sleep 0.1
  done
  for p in "${restarts[@]}"; do wait "$p" || true; done
  for p in $(seq 0 $((n - 1))); do wait_ready "$data" "$p" 60 || fail "n$p did not come back"; done
  log "killed the round-0 proposer of heights: ${killed[*]}"
  echo "${killed[*]}" >"$data/killed_heights"
  [ "$approved" = 1 ] || fail "the last approval was not sent"
  wait_epoch 1 180 0 1 2 3 || fail "not every member in epoch 1 within 180 s"
  load 20 4
  wait_load
}

# A Byzantine member (every flood) is removed from a group of five. Its node stops at the
# boundary (exit 0), is started again (--join: it follows the log as a non-voter) and keeps
# sending with the same identity: the four ignore it (its gossip, streams and requests are a
# non-member's: refused or rate limited, and counted) and go on deciding.
sc_removed_byzantine() {
  group 5
  BYZ[4]=flood-gossip,flood-cosign,flood-streams,flood-requests
  XARGS[4]=--join
  start_all
  load 80 3 "$REAL_CRATE"
  sleep 5
  change --remove n4
  wait_epoch 1 180 0 1 2 3 || fail "the four did not reach epoch 1 within 180 s"
  local code t
  code=$(exit_code 4 60)
  [ "$code" = 0 ] || fail "n4 did not stop with exit 0 when removed (exit '$code')"
  docker start sync-n4 >/dev/null
  local seen=0
  for t in $(seq 1 60); do
    docker logs sync-n4 2>&1 | grep -q "following the log as a non-voter" && { seen=1; break; }
    sleep 0.5
  done
  [ "$seen" = 1 ] || fail "n4 did not start again as a non-voter"
  local names="net_gossip_rejected_non_member net_streams_rejected net_requests_rate_limited net_requests_not_member" c0 c1
  c0=$(counters $names)
  "$tool" grows --dirs "$(honest_dirs)" --within 30 >/dev/null || fail "the four decided nothing while n4 kept sending"
  sleep 20
  c1=$(counters $names)
  log "the removed member's traffic refused and counted: $c0 -> $c1"
  [ "$c1" -gt "$c0" ] || fail "nothing of the removed member's traffic was counted ($c0 -> $c1)"
  echo "$c0 $c1" >"$data/removed_counted"
  wait_load
}

# Seven members, two of them Byzantine: every lie and every flood between them.
sc_byz_2_of_7() {
  group 7
  BYZ[5]=equivocate,wrong-reveal,flood-gossip,flood-streams
  BYZ[6]=conflicting-commitments,withhold-reveal,flood-cosign,flood-requests
  EXPECT=(m5:RevealMismatch m6:DoubleCommitment)
  start_all
  load 60 4 "$REAL_CRATE"
  wait_load
}

# Seven members, one equivocating (the equivocation of byz-2-of-7 on its own).
sc_byz_equivocate_of_7() {
  group 7
  BYZ[5]=equivocate
  start_all
  load 60 4
  wait_load
}

# Deliberately broken: members 2 and 3 run with another committee file (another reveal
# window, so another signing domain): neither half has a quorum, nothing is decided, and
# the invariants must say so.
sc_broken_committee() {
  group 4
  "$bin" committee init --origin example.org/synchronicity/containers --out "$data/other.toml" \
    --commit-window-secs 120 --commit-grace-secs 2 --reveal-window-secs 16 \
    "$data/n0" "$data/n1" "$data/n2" "$data/n3" >/dev/null
  CFILE[2]=$data/other.toml
  CFILE[3]=$data/other.toml
  start_all
  load 10 5
  wait_load
  SETTLE_SECS=30
}

# --- main ----------------------------------------------------------------------------

[ $# -gt 0 ] || { sed -n '2,25p' "$0" | sed 's/^# \{0,1\}//'; exit 2; }
list=()
for a in "$@"; do
  case $a in
    all) list+=("${ALL[@]}") ;;
    ci) list+=("${CI[@]}") ;;
    *) declare -F "sc_${a//-/_}" >/dev/null || { echo "error: unknown scenario $a" >&2; exit 2; }
      list+=("$a") ;;
  esac
done
prepare
suite_start=$(date +%s)
printf '| scenario | submitted | decided | lost | longest stall | forks | fsck | peak memory | time | result |\n|---|---|---|---|---|---|---|---|---|---|\n' >"$root/table.md"
for scenario in "${list[@]}"; do
  log "=== $scenario"
  scenario_failed=0
  t0=$(date +%s)
  SETTLE_SECS=240
  "sc_${scenario//-/_}"
  finish
  [ "$scenario" = disk-full ] && disk_full_cleanup
done
echo
cat "$root/table.md"
echo
echo "$((($(date +%s) - suite_start) / 60)) min for ${#list[@]} scenario(s)"
if [ ${#failures[@]} -gt 0 ]; then
  printf 'FAILED: %s\n' "${failures[@]}"
  exit 1
fi
echo "every scenario passed: 0 lost, 0 forks, fsck ok"
