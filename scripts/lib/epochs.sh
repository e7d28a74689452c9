# Committee changes for the local and the container testnets (sourced by scripts/testnet.sh
# and testnet/up.sh). Every step is the operators' path (README, "Change the committee"):
# the chain and the current committee file fetched from a member and verified from the
# genesis, `committee propose`, `committee approve` by the current members, and the wait for
# the next epoch.

# member_addr DIR: the node's multiaddr with its /p2p/ id, from its member.toml.
member_addr() {
  python3 - "$1/member.toml" <<'PY'
import sys, tomllib
m = tomllib.load(open(sys.argv[1], "rb"))
print(f'{m["addrs"][0]}/p2p/{m["peer_id"]}')
PY
}

# voters BIN DIR...: the directories whose node answers and votes in its epoch.
voters() {
  local bin=$1 d
  shift
  for d in "$@"; do
    "$bin" status --node "$d" 2>/dev/null | head -1 | grep -q '  member ' && echo "$d"
  done
  return 0
}

# epoch_of BIN DIR: the epoch the node at DIR is in.
epoch_of() {
  local bin=$1
  "$bin" status --node "$2" --json 2>/dev/null | python3 -c 'import json,sys; print(json.load(sys.stdin)["epoch"])' 2>/dev/null
}

# committee_change BIN GENESIS WORK DIR... -- PROPOSE_ARGS...: fetches the chain and the
# current committee from the first voter, proposes the next committee with PROPOSE_ARGS,
# has every voter approve it, and waits (5 minutes at most) until a voter is in the next
# epoch. WORK keeps chain.toml, current.toml and next-epoch.toml.
committee_change() {
  local bin=$1 genesis=$2 work=$3 dirs=() d
  shift 3
  while [ $# -gt 0 ] && [ "$1" != -- ]; do dirs+=("$1"); shift; done
  shift
  local members=() first epoch next=$work/next-epoch.toml
  mapfile -t members < <(voters "$bin" "${dirs[@]}")
  [ ${#members[@]} -gt 0 ] || { echo "error: no member answers" >&2; return 1; }
  first=${members[0]}
  "$bin" committee chain --peer "$(member_addr "$first")" --trust "$genesis" \
    --out "$work/chain.toml" --current "$work/current.toml"
  epoch=$(epoch_of "$bin" "$first")
  rm -f "$next"
  "$bin" committee propose --from "$work/current.toml" "$@" --out "$next"
  for d in "${members[@]}"; do
    "$bin" committee approve "$next" --node "$d" || echo "warning: $d did not approve" >&2
  done
  local t
  for t in $(seq 1 1500); do
    for d in "${members[@]}"; do
      [ "$(epoch_of "$bin" "$d" || true)" = $((epoch + 1)) ] && { echo "epoch $((epoch + 1)) began"; return 0; }
    done
    sleep 0.2
  done
  echo "error: epoch $((epoch + 1)) did not begin in 5 minutes" >&2
  return 1
}

# wait_voter BIN DIR SECONDS: until the node at DIR votes (a joining node, once its epoch began).
wait_voter() {
  local bin=$1 d=$2 t
  for t in $(seq 1 $(($3 * 5))); do
    [ -n "$(voters "$bin" "$d")" ] && return 0
    sleep 0.2
  done
  echo "error: $d is not a voter after $3 s" >&2
  return 1
}
