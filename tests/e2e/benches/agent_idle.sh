#!/usr/bin/env bash
# Idle footprint of the agent managing N simulated Arma 3 servers (issue "Agent":
# goal ≤ 12 MB RSS and ≤ 0.5 % of a core). The servers are given to the agent the way
# it keeps them across restarts (stored specs with desired_running), so the release
# agent binary starts them itself. Prints figures; asserts nothing.
#   N=10 PLAYERS=0 MEASURE_SECS=60 bash tests/e2e/benches/agent_idle.sh
# PLAYERS>0 makes each simulated server run that many chatting players (log lines,
# player events), i.e. a lightly used fleet rather than an idle one.
set -euo pipefail
cd "$(dirname "$0")/../../.."
N=${N:-10}
MEASURE_SECS=${MEASURE_SECS:-60}
SETTLE_SECS=${SETTLE_SECS:-15}
PLAYERS=${PLAYERS:-0}

cargo build -q --release -p languard-agent -p languard-e2e
AGENT=$PWD/target/release/languard-agent
SIM=$PWD/target/release/arma3server_x64

root=$(mktemp -d /tmp/languard-idle.XXXXXX)
cleanup() {
  [ -n "${agent_pid:-}" ] && kill "$agent_pid" 2>/dev/null || true
  sleep 1
  pkill -9 -f "$root" 2>/dev/null || true
  rm -rf "$root"
}
trap cleanup EXIT
mkdir -p "$root/agent/specs"

port_free() { ! ss -Hlun "sport = :$1" | grep -q .; }
base=34000
for i in $(seq 1 "$N"); do
  while :; do
    game=$base; rcon=$((base + 10)); base=$((base + 20))
    ok=1; for p in $(seq "$game" $((game + 4))) "$rcon"; do port_free "$p" || ok=0; done
    [ "$ok" = 1 ] && break
  done
  id=$(printf 'idle%02d' "$i")
  cat > "$root/agent/specs/$id.json" <<JSON
{"spec": {"id": "$id", "name": "Idle $i",
  "game": {"kind": "arma3", "executable": "$SIM", "game_port": $game, "rcon_port": $rcon,
           "rcon_password": "IdleBench$i", "server": {"hostname": "Idle $i"}},
  "environment": {"ARMA3SIM_PLAYERS": "$PLAYERS", "ARMA3SIM_SEED": "$i"}},
 "desired_running": true}
JSON
done
chmod 600 "$root"/agent/specs/*.json

"$AGENT" --data-dir "$root/agent" --servers-dir "$root/servers" --log-level warn &
agent_pid=$!
echo "agent pid $agent_pid, waiting ${SETTLE_SECS}s for $N servers to start"
sleep "$SETTLE_SECS"
games=$(pgrep -f "^$SIM" | wc -l)
echo "game processes running: $games"

ticks() { awk '{print $14 + $15}' "/proc/$agent_pid/stat"; }
hz=$(getconf CLK_TCK)
t0=$(ticks); s0=$(date +%s.%N)
peak=0
for _ in $(seq 1 "$MEASURE_SECS"); do
  rss=$(awk '/VmRSS/ {print $2}' "/proc/$agent_pid/status")
  [ "$rss" -gt "$peak" ] && peak=$rss
  sleep 1
done
t1=$(ticks); s1=$(date +%s.%N)
rss=$(awk '/VmRSS/ {print $2}' "/proc/$agent_pid/status")
threads=$(awk '/Threads/ {print $2}' "/proc/$agent_pid/status")
cpu=$(awk -v a="$t0" -v b="$t1" -v hz="$hz" -v s0="$s0" -v s1="$s1" \
  'BEGIN { printf "%.3f", (b - a) / hz / (s1 - s0) * 100 }')
outbox=$(du -sk "$root/agent/outbox" | cut -f1)
echo "agent managing $games simulated servers ($PLAYERS players each), measured over ${MEASURE_SECS}s:"
echo "  RSS now ${rss} KiB ($((rss / 1024)) MiB), peak ${peak} KiB; threads $threads"
echo "  CPU ${cpu} % of one core"
echo "  outbox on disk ${outbox} KiB (no controller acknowledges events yet)"
