#!/usr/bin/env bash
# A Chorus test network on one Linux machine: N nodes, each in its own network namespace
# with its own address, joined by a bridge; optional latency, jitter and loss on every
# node's link (tc netem, or where the kernel has no sch_netem, chorus-netem through an
# NFQUEUE rule); node 1 follows everything (the watchdog archive) and is every other
# node's bootstrap peer. Needs root and iproute2 (ip, tc); chorus-netem needs iptables.
#
#   deploy/testnet.sh up N [--latency MS] [--jitter MS] [--loss PCT] [--bin PATH]
#                          [--shaper auto|netem|nfqueue] [--netem-bin PATH]
#   deploy/testnet.sh cut [--reset] I [J ...]   cut these nodes off from the others (they
#                                      still reach one another: a partition); --reset also
#                                      ends the TCP connections across the cut at once, as a
#                                      partition long enough for TCP to give up would
#   deploy/testnet.sh heal             join every node to the one network again
#   deploy/testnet.sh status           the nodes, their addresses and pids
#   deploy/testnet.sh shaper [--shaper ...] [--netem-bin PATH]
#                                      how latency and loss would be made here, or why not
#   deploy/testnet.sh attach NAME      one more namespace on the network, with no node in
#                                      it, for a tool (e.g. the chorus-rogue test peer);
#                                      prints "NAMESPACE ADDRESS" (NAME: 1-4 of a-z 0-9)
#   deploy/testnet.sh down             stop the nodes (by their recorded pids) and remove
#                                      the namespaces (attached ones too), links and bridges
#
# Latency and loss: with --shaper auto (the default) tc netem where the kernel has it,
# otherwise chorus-netem (crates/netem; --netem-bin, $CHORUS_NETEM_BIN, beside --bin, or
# built), one per node, run in the node's namespace and fed by an iptables NFQUEUE rule on
# its eth0; its pid is recorded and `down` stops it like the nodes. Either way each packet
# between two nodes is delayed once: a round trip takes twice the latency.
# State (data dirs, logs, pids) lives in $CHORUS_TESTNET_DIR (default /tmp/chorus-testnet).
# A second `up` over a running net is refused: run `down` first.
set -euo pipefail

DIR="${CHORUS_TESTNET_DIR:-/tmp/chorus-testnet}"
# Names stay short (interface names are at most 15 bytes); a prefix lets two nets (e.g.
# two test runs) live side by side.
PFX="${CHORUS_TESTNET_PREFIX:-chn}"
NET="${CHORUS_TESTNET_SUBNET:-10.77.0}"
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
BR="${PFX}-br0"   # the network
CUT="${PFX}-br1"  # where cut nodes go
P2P_PORT=7470
API_PORT=7471

die() { echo "testnet: $*" >&2; exit 1; }
say() { echo "testnet: $*"; }

need_root() {
  [ "$(id -u)" = 0 ] || die "needs root (network namespaces, bridges and tc): sudo $0 ..."
  command -v ip >/dev/null || die "needs ip (apt-get install iproute2)"
  command -v tc >/dev/null || die "needs tc (apt-get install iproute2)"
}

ns() { echo "${PFX}-n$1"; }
addr() { echo "${NET}.$1"; }

count() { cat "$DIR/count" 2>/dev/null || echo 0; }

# Whether node $1's link is on the bridge of cut nodes.
is_cut() {
  [ "$(ip -o link show "${PFX}-v$1" 2>/dev/null | grep -o "master [^ ]*" | cut -d' ' -f2)" = "$CUT" ]
}

# Latency and loss. SHAPER is netem or nfqueue once chosen; WHY says why neither works.
SHAPER=""
WHY=""
NETEM_BIN=""

# The delayer for kernels without netem: --netem-bin, $CHORUS_NETEM_BIN, or beside $1 (the
# chorus binary) if there, else this checkout's release build.
find_netem_bin() {
  [ -n "$NETEM_BIN" ] && return 0
  NETEM_BIN="${CHORUS_NETEM_BIN:-}"
  if [ -z "$NETEM_BIN" ] && [ -n "${1:-}" ] && [ -x "$(dirname "$1")/chorus-netem" ]; then
    NETEM_BIN="$(dirname "$1")/chorus-netem"
  fi
  [ -n "$NETEM_BIN" ] || NETEM_BIN="$ROOT/target/release/chorus-netem"
}

# Tries netem, then NFQUEUE, in a throwaway namespace; sets SHAPER, or WHY and fails.
# $1: auto, netem or nfqueue.
choose_shaper() {
  local want="$1" probe="${PFX}-probe"
  ip netns del "$probe" 2>/dev/null || true
  ip netns add "$probe" || { WHY="cannot make a network namespace"; return 1; }
  ip -n "$probe" link set lo up
  local netem_err="" rc=1
  if [ "$want" != nfqueue ]; then
    if netem_err="$(tc -n "$probe" qdisc add dev lo root netem delay 1ms 2>&1)"; then
      SHAPER=netem; rc=0
    fi
  fi
  if [ "$rc" != 0 ] && [ "$want" != netem ]; then
    local err
    if ! command -v iptables >/dev/null; then
      WHY="iptables is missing (apt-get install iptables)"
    elif ! [ -x "$NETEM_BIN" ]; then
      WHY="no chorus-netem at $NETEM_BIN (cargo build --release -p chorus-netem, or --netem-bin)"
    elif ! err="$(ip netns exec "$probe" iptables -w -t mangle -A PREROUTING -i lo \
                    -j NFQUEUE --queue-num 0 --queue-bypass 2>&1)"; then
      WHY="the kernel refuses an NFQUEUE rule: $err"
    elif ! err="$(ip netns exec "$probe" "$NETEM_BIN" --probe 2>&1)"; then
      WHY="${err:-$NETEM_BIN --probe failed}"
    else
      SHAPER=nfqueue; rc=0
    fi
  fi
  if [ "$rc" != 0 ] && [ "$want" = netem ]; then
    WHY="tc netem: ${netem_err:-refused}"
  elif [ "$rc" != 0 ] && [ "$want" = auto ]; then
    WHY="no netem (tc: ${netem_err:-refused}) and no NFQUEUE: $WHY"
  fi
  ip netns del "$probe" 2>/dev/null || true
  return "$rc"
}

# Starts node $1's delayer in its namespace, then sends it the packets that arrive on its
# eth0. On their way in, not out (as netem does): a packet held on its way out still
# counts against its socket, and TCP's small-queue limit then lets a connection have a
# couple of packets held at a time (about 18 KB/s at 150 ms); one that has arrived belongs
# to no socket yet.
start_delayer() {
  local i="$1" name log
  name="$(ns "$i")"; log="$DIR/netem-n$i.log"
  ip netns exec "$name" "$NETEM_BIN" --queue 0 --latency "$LATENCY" --jitter "$JITTER" \
    --loss "$LOSS" > "$log" 2>&1 &
  echo "$i $!" >> "$DIR/netem-pids"
  for _ in $(seq 1 100); do
    grep -q "ready" "$log" && break
    kill -0 "$!" 2>/dev/null || break
    sleep 0.1
  done
  grep -q "ready" "$log" || die "chorus-netem did not start in $name: $(cat "$log")"
  ip netns exec "$name" iptables -w -t mangle -A PREROUTING -i eth0 \
    -j NFQUEUE --queue-num 0 --queue-bypass
}

# Stops the processes listed (one "I PID" a line) in file $1: TERM, a moment, then KILL.
stop_pids() {
  [ -e "$1" ] || return 0
  while read -r _ pid; do
    kill "$pid" 2>/dev/null || true
  done < "$1"
  for _ in $(seq 1 50); do
    local alive=0
    while read -r _ pid; do kill -0 "$pid" 2>/dev/null && alive=1; done < "$1"
    [ "$alive" = 0 ] && break
    sleep 0.1
  done
  while read -r _ pid; do kill -9 "$pid" 2>/dev/null || true; done < "$1"
}

up() {
  local n="$1"; shift
  local latency="" jitter="" loss="" bin="" shaper=auto
  while [ $# -gt 0 ]; do
    [ $# -ge 2 ] || die "$1 needs a value"
    case "$1" in
      --latency) latency="$2"; shift 2 ;;
      --jitter) jitter="$2"; shift 2 ;;
      --loss) loss="$2"; shift 2 ;;
      --bin) bin="$2"; shift 2 ;;
      --shaper) shaper="$2"; shift 2 ;;
      --netem-bin) NETEM_BIN="$2"; shift 2 ;;
      *) die "unknown option $1 (see the top of $0)" ;;
    esac
  done
  if ! [[ "$n" =~ ^[0-9]+$ ]] || [ "$n" -lt 1 ] || [ "$n" -gt 200 ]; then
    die "N must be 1 to 200"
  fi
  for v in "$latency" "$jitter"; do
    [ -z "$v" ] || [[ "$v" =~ ^[0-9]+$ ]] || die "--latency and --jitter are whole ms"
  done
  [ -z "$loss" ] || [[ "$loss" =~ ^[0-9]+(\.[0-9]+)?$ ]] || die "--loss is a percentage"
  [[ "$shaper" =~ ^(auto|netem|nfqueue)$ ]] || die "--shaper is auto, netem or nfqueue"
  if [ -e "$DIR/count" ] || ip link show "$BR" >/dev/null 2>&1; then
    die "a test net is already up ($DIR, bridge $BR): run '$0 down' first"
  fi
  if [ -z "$bin" ]; then
    bin="$(cd "$(dirname "$0")/.." && pwd)/target/release/chorus"
    [ -x "$bin" ] || (cd "$(dirname "$0")/.." && cargo build --release -p chorus-cli) >&2
  fi
  [ -x "$bin" ] || die "no chorus binary at $bin"
  if [ -n "$latency$loss" ]; then
    find_netem_bin "$bin"
    if [ "$shaper" != netem ] && ! [ -x "$NETEM_BIN" ] \
       && [ "$NETEM_BIN" = "$ROOT/target/release/chorus-netem" ]; then
      # Only needed where the kernel has no netem; cheap to build.
      (cd "$ROOT" && cargo build --release -p chorus-netem) >&2 || true
    fi
    choose_shaper "$shaper" || die "cannot make latency and loss here: $WHY"
  fi
  mkdir -p "$DIR"
  echo "$n" > "$DIR/count"
  echo "$bin" > "$DIR/bin"
  : > "$DIR/pids"

  ip link add "$BR" type bridge
  ip link add "$CUT" type bridge
  ip addr add "$(addr 254)/24" dev "$BR"
  ip link set "$BR" up
  ip link set "$CUT" up
  local netem="" links="none"
  if [ "$SHAPER" = netem ]; then
    netem="delay ${latency:-0}ms"
    [ -n "$jitter" ] && netem="$netem ${jitter}ms distribution normal"
    [ -n "$loss" ] && netem="$netem loss ${loss}%"
    links="tc netem $netem"
  elif [ "$SHAPER" = nfqueue ]; then
    LATENCY="${latency:-0}"; JITTER="${jitter:-0}"; LOSS="${loss:-0}"
    local because="this kernel has no sch_netem"
    [ "$shaper" = nfqueue ] && because="--shaper nfqueue"
    links="chorus-netem through NFQUEUE ($because): delay ${LATENCY}ms, jitter ${JITTER}ms normal, loss ${LOSS}%"
    : > "$DIR/netem-pids"
  fi
  for i in $(seq 1 "$n"); do
    local name; name="$(ns "$i")"
    ip netns add "$name"
    ip link add "${PFX}-v$i" type veth peer name eth0 netns "$name"
    ip link set "${PFX}-v$i" master "$BR" up
    ip -n "$name" addr add "$(addr "$i")/24" dev eth0
    ip -n "$name" link set eth0 up
    ip -n "$name" link set lo up
    # netem: every packet a node sends waits (and may be lost) on its way out;
    # chorus-netem: every packet it receives, on its way in. Either way each path between
    # two nodes has the latency once each way.
    # shellcheck disable=SC2086 # netem's arguments are words
    if [ -n "$netem" ]; then tc -n "$name" qdisc add dev eth0 root netem $netem; fi
    if [ "$SHAPER" = nfqueue ]; then start_delayer "$i"; fi
  done
  echo "$links" > "$DIR/netem"
  if [ -n "$SHAPER" ]; then say "latency and loss by $links"; fi

  local boot=""
  for i in $(seq 1 "$n"); do
    local name data log
    name="$(ns "$i")"; data="$DIR/n$i"; log="$DIR/n$i.log"
    mkdir -p "$data"
    local args=(node --data-dir "$data" --listen "/ip4/$(addr "$i")/tcp/$P2P_PORT"
                --api "$(addr "$i"):$API_PORT" --no-mdns)
    [ "$i" = 1 ] && args+=(--follow-all)
    [ -n "$boot" ] && args+=(--bootstrap "$boot")
    ip netns exec "$name" "$bin" "${args[@]}" > "$log" 2>&1 &
    echo "$i $!" >> "$DIR/pids"
    if [ "$i" = 1 ]; then
      # Every other node bootstraps from the archive: wait for its address.
      for _ in $(seq 1 200); do
        boot="$(grep -o "/ip4/$(addr 1)/tcp/$P2P_PORT/p2p/[A-Za-z0-9]*" "$log" | head -1 || true)"
        [ -n "$boot" ] && break
        sleep 0.1
      done
      [ -n "$boot" ] || die "node 1 did not start (see $log)"
      echo "$boot" > "$DIR/bootstrap"
    fi
  done
  for i in $(seq 1 "$n"); do
    for _ in $(seq 1 200); do
      [ -s "$DIR/n$i/api.json" ] && break
      sleep 0.1
    done
    [ -s "$DIR/n$i/api.json" ] || die "node $i did not serve its API (see $DIR/n$i.log)"
  done
  summary
}

summary() {
  local n; n="$(count)"
  echo "test net: $n nodes on $NET.0/24 (bridge $BR), links: $(cat "$DIR/netem" 2>/dev/null)"
  echo "node 1 follows everything (the watchdog archive); bootstrap: $(cat "$DIR/bootstrap" 2>/dev/null)"
  while read -r i pid; do
    local state="stopped"
    kill -0 "$pid" 2>/dev/null && state="pid $pid"
    local where="network"
    is_cut "$i" && where="cut off"
    echo "  node $i  $(addr "$i")  $state  ($where)"
    echo "    CLI:     sudo ip netns exec $(ns "$i") $(cat "$DIR/bin") --data-dir $DIR/n$i status"
    echo "    browser: sudo ip netns exec $(ns "$i") $(cat "$DIR/bin") --data-dir $DIR/n$i open   (then open the link: http://$(addr "$i"):$API_PORT is reachable from this host)"
  done < "$DIR/pids"
  if [ -e "$DIR/attached" ]; then
    while read -r name a; do
      echo "  attached ${PFX}-x$name  $a"
    done < "$DIR/attached"
  fi
}

attach() {
  [ -e "$DIR/count" ] || die "no test net is up"
  local name="${1:-}"
  [[ "$name" =~ ^[a-z0-9]{1,4}$ ]] || die "attach NAME: 1 to 4 of a-z and 0-9"
  local ns="${PFX}-x$name"
  ! grep -q "^$name " "$DIR/attached" 2>/dev/null || die "$ns is attached already"
  # Addresses from .250 down: nodes have .1 to .200, the bridge .254.
  local k=0
  [ -e "$DIR/attached" ] && k="$(wc -l < "$DIR/attached")"
  [ "$k" -lt 50 ] || die "at most 50 attached namespaces"
  local a; a="$(addr $((250 - k)))"
  echo "$name $a" >> "$DIR/attached"
  ip netns add "$ns"
  ip link add "$ns" type veth peer name eth0 netns "$ns"
  ip link set "$ns" master "$BR" up
  ip -n "$ns" addr add "$a/24" dev eth0
  ip -n "$ns" link set eth0 up
  ip -n "$ns" link set lo up
  echo "$ns $a"
}

cut_off() {
  [ -e "$DIR/count" ] || die "no test net is up"
  local reset=0
  if [ "${1:-}" = --reset ]; then reset=1; shift; fi
  [ $# -ge 1 ] || die "cut which nodes? (numbers)"
  for i in "$@"; do
    ip link show "${PFX}-v$i" >/dev/null 2>&1 || die "no node $i"
    ip link set "${PFX}-v$i" master "$CUT"
  done
  if [ "$reset" = 1 ]; then
    # Without this, connections across the cut outlive it and TCP delivers after `heal`
    # what was sent meanwhile; a partition of many minutes ends them.
    local inside=() outside=()
    for i in $(seq 1 "$(count)"); do
      if is_cut "$i"; then inside+=("$i"); else outside+=("$i"); fi
    done
    for i in "${inside[@]}"; do end_connections "$i" "${outside[@]}"; done
    for i in "${outside[@]}"; do end_connections "$i" "${inside[@]}"; done
    echo "cut off: $* (connections across the cut ended)"
  else
    echo "cut off: $*"
  fi
}

# Ends node $1's TCP connections to the nodes named after it (ss -K, in its namespace).
end_connections() {
  local i="$1" filter="" j
  shift
  [ $# -gt 0 ] || return 0
  for j in "$@"; do filter="${filter:+$filter or }dst $(addr "$j")"; done
  ip netns exec "$(ns "$i")" ss -t -K "( $filter )" >/dev/null
}

heal() {
  [ -e "$DIR/count" ] || die "no test net is up"
  for i in $(seq 1 "$(count)"); do
    ip link set "${PFX}-v$i" master "$BR" 2>/dev/null || true
  done
  echo "healed: every node on $BR"
}

down() {
  # A node flushes its store on SIGTERM; stop_pids gives them a moment, then makes sure.
  stop_pids "$DIR/pids"
  # The delayers after the nodes: their rules let packets through once they are gone.
  stop_pids "$DIR/netem-pids"
  local n; n="$(count)"
  for i in $(seq 1 "$n"); do
    if [ -e "$DIR/netem-pids" ]; then
      ip netns exec "$(ns "$i")" iptables -w -t mangle -F PREROUTING 2>/dev/null || true
    fi
    ip link del "${PFX}-v$i" 2>/dev/null || true
    ip netns del "$(ns "$i")" 2>/dev/null || true
  done
  # What runs in an attached namespace is its starter's to stop.
  if [ -e "$DIR/attached" ]; then
    while read -r name _; do
      ip link del "${PFX}-x$name" 2>/dev/null || true
      ip netns del "${PFX}-x$name" 2>/dev/null || true
    done < "$DIR/attached"
  fi
  ip link del "$BR" 2>/dev/null || true
  ip link del "$CUT" 2>/dev/null || true
  ip netns del "${PFX}-probe" 2>/dev/null || true
  rm -f "$DIR/count" "$DIR/pids" "$DIR/netem-pids" "$DIR/bootstrap" "$DIR/netem" "$DIR/bin" \
    "$DIR/attached"
  echo "test net down (data dirs and logs kept in $DIR)"
}

# Says how latency and loss would be made here (exit 0), or why they cannot (exit 1).
shaper() {
  local want=auto
  while [ $# -gt 0 ]; do
    [ $# -ge 2 ] || die "$1 needs a value"
    case "$1" in
      --shaper) want="$2"; shift 2 ;;
      --netem-bin) NETEM_BIN="$2"; shift 2 ;;
      *) die "unknown option $1 (see the top of $0)" ;;
    esac
  done
  find_netem_bin ""
  if choose_shaper "$want"; then
    case "$SHAPER" in
      netem) echo "netem: tc netem (the kernel's sch_netem)" ;;
      nfqueue) echo "nfqueue: $NETEM_BIN through an iptables NFQUEUE rule (no sch_netem here)" ;;
    esac
  else
    echo "none: $WHY"
    return 1
  fi
}

cmd="${1:-}"
[ $# -gt 0 ] && shift
case "$cmd" in
  up) need_root; [ $# -ge 1 ] || die "up N"; up "$@" ;;
  cut) need_root; cut_off "$@" ;;
  heal) need_root; heal ;;
  status) [ -e "$DIR/count" ] || die "no test net is up"; summary ;;
  shaper) need_root; shaper "$@" ;;
  attach) need_root; attach "$@" ;;
  down) need_root; down ;;
  *) sed -n '2,29p' "$0" | sed 's/^# \{0,1\}//'; exit 2 ;;
esac
