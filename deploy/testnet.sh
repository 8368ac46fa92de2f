#!/usr/bin/env bash
# A Chorus test network on one Linux machine: N nodes, each in its own network namespace
# with its own address, joined by a bridge; optional latency, jitter and loss on every
# node's link (tc netem); node 1 follows everything (the watchdog archive) and is every
# other node's bootstrap peer. Needs root and iproute2 (ip, tc).
#
#   deploy/testnet.sh up N [--latency MS] [--jitter MS] [--loss PCT] [--bin PATH]
#   deploy/testnet.sh cut I [J ...]    cut these nodes off from the others (they still
#                                      reach one another: a partition)
#   deploy/testnet.sh heal             join every node to the one network again
#   deploy/testnet.sh status           the nodes, their addresses and pids
#   deploy/testnet.sh down             stop the nodes (by their recorded pids) and remove
#                                      the namespaces, links and bridges
#
# State (data dirs, logs, pids) lives in $CHORUS_TESTNET_DIR (default /tmp/chorus-testnet).
# A second `up` over a running net is refused: run `down` first.
set -euo pipefail

DIR="${CHORUS_TESTNET_DIR:-/tmp/chorus-testnet}"
# Names stay short (interface names are at most 15 bytes); a prefix lets two nets (e.g.
# two test runs) live side by side.
PFX="${CHORUS_TESTNET_PREFIX:-chn}"
NET="${CHORUS_TESTNET_SUBNET:-10.77.0}"
BR="${PFX}-br0"   # the network
CUT="${PFX}-br1"  # where cut nodes go
P2P_PORT=7470
API_PORT=7471

die() { echo "testnet: $*" >&2; exit 1; }

need_root() {
  [ "$(id -u)" = 0 ] || die "needs root (network namespaces, bridges and tc): sudo $0 $*"
  command -v ip >/dev/null || die "needs ip (apt-get install iproute2)"
  command -v tc >/dev/null || die "needs tc (apt-get install iproute2)"
}

ns() { echo "${PFX}-n$1"; }
addr() { echo "${NET}.$1"; }

count() { cat "$DIR/count" 2>/dev/null || echo 0; }

up() {
  local n="$1"; shift
  local latency="" jitter="" loss="" bin=""
  while [ $# -gt 0 ]; do
    case "$1" in
      --latency) latency="$2"; shift 2 ;;
      --jitter) jitter="$2"; shift 2 ;;
      --loss) loss="$2"; shift 2 ;;
      --bin) bin="$2"; shift 2 ;;
      *) die "unknown option $1 (see the top of $0)" ;;
    esac
  done
  [[ "$n" =~ ^[0-9]+$ ]] && [ "$n" -ge 1 ] && [ "$n" -le 200 ] || die "N must be 1 to 200"
  if [ -e "$DIR/count" ] || ip link show "$BR" >/dev/null 2>&1; then
    die "a test net is already up ($DIR, bridge $BR): run '$0 down' first"
  fi
  if [ -z "$bin" ]; then
    bin="$(cd "$(dirname "$0")/.." && pwd)/target/release/chorus"
    [ -x "$bin" ] || (cd "$(dirname "$0")/.." && cargo build --release -p chorus-cli) >&2
  fi
  [ -x "$bin" ] || die "no chorus binary at $bin"
  mkdir -p "$DIR"
  echo "$n" > "$DIR/count"
  echo "$bin" > "$DIR/bin"
  : > "$DIR/pids"

  ip link add "$BR" type bridge
  ip link add "$CUT" type bridge
  ip addr add "$(addr 254)/24" dev "$BR"
  ip link set "$BR" up
  ip link set "$CUT" up
  local netem=""
  if [ -n "$latency$loss" ]; then
    netem="delay ${latency:-0}ms"
    [ -n "$jitter" ] && netem="$netem ${jitter}ms distribution normal"
    [ -n "$loss" ] && netem="$netem loss ${loss}%"
  fi
  for i in $(seq 1 "$n"); do
    local name; name="$(ns "$i")"
    ip netns add "$name"
    ip link add "${PFX}-v$i" type veth peer name eth0 netns "$name"
    ip link set "${PFX}-v$i" master "$BR" up
    ip -n "$name" addr add "$(addr "$i")/24" dev eth0
    ip -n "$name" link set eth0 up
    ip -n "$name" link set lo up
    # Every packet a node sends waits (and may be lost) here: each path between two
    # nodes has the latency once each way.
    [ -n "$netem" ] && tc -n "$name" qdisc add dev eth0 root netem $netem
  done
  echo "${netem:-none}" > "$DIR/netem"

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
    [ "$(ip -o link show "${PFX}-v$i" 2>/dev/null | grep -o "master [^ ]*" | cut -d' ' -f2)" = "$CUT" ] && where="cut off"
    echo "  node $i  $(addr "$i")  $state  ($where)"
    echo "    CLI:     sudo ip netns exec $(ns "$i") $(cat "$DIR/bin") --data-dir $DIR/n$i status"
    echo "    browser: sudo ip netns exec $(ns "$i") $(cat "$DIR/bin") --data-dir $DIR/n$i open   (then open the link: http://$(addr "$i"):$API_PORT is reachable from this host)"
  done < "$DIR/pids"
}

cut_off() {
  [ -e "$DIR/count" ] || die "no test net is up"
  [ $# -ge 1 ] || die "cut which nodes? (numbers)"
  for i in "$@"; do
    ip link show "${PFX}-v$i" >/dev/null 2>&1 || die "no node $i"
    ip link set "${PFX}-v$i" master "$CUT"
  done
  echo "cut off: $*"
}

heal() {
  [ -e "$DIR/count" ] || die "no test net is up"
  for i in $(seq 1 "$(count)"); do
    ip link set "${PFX}-v$i" master "$BR" 2>/dev/null || true
  done
  echo "healed: every node on $BR"
}

down() {
  if [ -e "$DIR/pids" ]; then
    while read -r _ pid; do
      kill "$pid" 2>/dev/null || true
    done < "$DIR/pids"
    # A node flushes its store on SIGTERM; give them a moment, then make sure.
    for _ in $(seq 1 50); do
      local alive=0
      while read -r _ pid; do kill -0 "$pid" 2>/dev/null && alive=1; done < "$DIR/pids"
      [ "$alive" = 0 ] && break
      sleep 0.1
    done
    while read -r _ pid; do kill -9 "$pid" 2>/dev/null || true; done < "$DIR/pids"
  fi
  local n; n="$(count)"
  for i in $(seq 1 "$n"); do
    ip link del "${PFX}-v$i" 2>/dev/null || true
    ip netns del "$(ns "$i")" 2>/dev/null || true
  done
  ip link del "$BR" 2>/dev/null || true
  ip link del "$CUT" 2>/dev/null || true
  rm -f "$DIR/count" "$DIR/pids" "$DIR/bootstrap" "$DIR/netem" "$DIR/bin"
  echo "test net down (data dirs and logs kept in $DIR)"
}

cmd="${1:-}"
[ $# -gt 0 ] && shift
case "$cmd" in
  up) need_root; [ $# -ge 1 ] || die "up N"; up "$@" ;;
  cut) need_root; cut_off "$@" ;;
  heal) need_root; heal ;;
  status) [ -e "$DIR/count" ] || die "no test net is up"; summary ;;
  down) need_root; down ;;
  *) sed -n '2,19p' "$0" | sed 's/^# \{0,1\}//'; exit 2 ;;
esac
