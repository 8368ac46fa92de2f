#!/usr/bin/env bash
# Starts N chorus nodes on loopback (default 3), the first as everyone's bootstrap peer.
#   deploy/local-net.sh 5      start five nodes
#   deploy/local-net.sh stop   stop them
set -euo pipefail
cd "$(dirname "$0")/.."
NET=.chorus-net
if [[ "${1:-}" == "stop" ]]; then
  for pidfile in "$NET"/*/pid; do
    [[ -f "$pidfile" ]] && kill -TERM "$(cat "$pidfile")" 2>/dev/null || true
    rm -f "$pidfile"
  done
  exit 0
fi
N="${1:-3}"
cargo build --release -p chorus-cli
BIN=target/release/chorus
mkdir -p "$NET"
boot=""
for i in $(seq 1 "$N"); do
  dir="$NET/node$i"
  mkdir -p "$dir"
  args=(--data-dir "$dir/data" node --listen /ip4/127.0.0.1/tcp/0 --listen /ip4/127.0.0.1/udp/0/quic-v1 --no-mdns --api "127.0.0.1:$((7480 + i))")
  [[ -n "$boot" ]] && args+=(--bootstrap "$boot")
  "$BIN" "${args[@]}" >"$dir/out.log" 2>"$dir/err.log" &
  echo $! >"$dir/pid"
  if [[ -z "$boot" ]]; then
    for _ in $(seq 1 100); do
      boot=$(grep -m1 -o 'listening /ip4/127.0.0.1/tcp/[^ ]*' "$dir/out.log" | cut -d' ' -f2 || true)
      [[ -n "$boot" ]] && break
      sleep 0.1
    done
    [[ -n "$boot" ]] || { echo "node1 did not start; see $dir/err.log" >&2; exit 1; }
    echo "bootstrap: $boot"
  fi
  echo "node$i: pid $(cat "$dir/pid"), data $dir/data"
done
