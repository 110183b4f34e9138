#!/usr/bin/env bash
# GET /api/v1/servers with a valid token, driven by wrk from a separate process against a
# release build of `languard serve` (SQLite in a temp data dir, then PostgreSQL if
# LANGUARD_TEST_PG_URL / LANGUARD_BENCH_PG_URL points at an admin URL), plus login cost.
#
#   controller/benches/api_wrk.sh            # both backends
#   BACKENDS=sqlite DURATION=10s CONNS=32 THREADS=1 controller/benches/api_wrk.sh
#
# Needs: wrk, curl, python3 (JSON), psql only if PostgreSQL is benchmarked (for the temp DB).
# Prints figures; asserts nothing.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
BIN="$ROOT/target/release/languard"
DURATION="${DURATION:-10s}"
CONNS="${CONNS:-32}"
THREADS="${THREADS:-1}"
SERVERS="${SERVERS:-10}"
LOGINS="${LOGINS:-10}"
PG_ADMIN_URL="${LANGUARD_BENCH_PG_URL:-${LANGUARD_TEST_PG_URL:-postgres://languard:languard@127.0.0.1:5432/postgres}}"
BACKENDS="${BACKENDS:-sqlite postgres}"
# Server worker threads (tokio). Default: all cores; wrk competes for the same 2 cores.
export PGOPTIONS="--client-min-messages=warning"
export TOKIO_WORKER_THREADS="${TOKIO_WORKER_THREADS:-}"
[ -z "$TOKIO_WORKER_THREADS" ] && unset TOKIO_WORKER_THREADS

command -v wrk >/dev/null || { echo "wrk not found (apt-get install -y wrk)" >&2; exit 1; }

if [ "${SKIP_BUILD:-0}" != 1 ]; then
  (cd "$ROOT" && cargo build --release -q -p languard-controller --bin languard)
fi

WORK="$(mktemp -d)"
SERVER_PID=""
PG_DB=""
cleanup() {
  if [ -n "$SERVER_PID" ]; then kill "$SERVER_PID" 2>/dev/null || true; wait "$SERVER_PID" 2>/dev/null || true; fi
  if [ -n "$PG_DB" ]; then psql -q "$PG_ADMIN_URL" -c "DROP DATABASE IF EXISTS $PG_DB WITH (FORCE)" >/dev/null 2>&1 || true; fi
  rm -rf "$WORK"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
json() { python3 -c "import json,sys; print(json.load(sys.stdin)$1)"; }

run_backend() {
  local backend="$1" dir="$WORK/$1" port url db_args=()
  mkdir -p "$dir"
  port="$(free_port)"
  if [ "$backend" = postgres ]; then
    PG_DB="languard_bench_$$"
    psql -q "$PG_ADMIN_URL" -c "DROP DATABASE IF EXISTS $PG_DB WITH (FORCE)" -c "CREATE DATABASE $PG_DB" >/dev/null
    db_args=(--database-url "${PG_ADMIN_URL%/*}/$PG_DB")
  fi
  export LANGUARD_MASTER_KEY="$(head -c 32 /dev/urandom | base64)"
  # User created through the CLI while no server runs.
  echo 'bench-password-1' | "$BIN" --data-dir "$dir" "${db_args[@]}" admin create-user bench --role admin --password-stdin >/dev/null
  RUST_LOG="${RUST_LOG:-warn}" "$BIN" --data-dir "$dir" "${db_args[@]}" serve --listen "127.0.0.1:$port" >"$dir/serve.log" 2>&1 &
  SERVER_PID=$!
  url="http://127.0.0.1:$port/api/v1"
  for _ in $(seq 100); do curl -fs "$url/system/health" >/dev/null 2>&1 && break; sleep 0.1; done

  # Login cost: sequential logins (argon2id verify + refresh token insert + JWT), timed
  # by curl (request sent .. response received).
  local token login_ms
  login_ms=$(for _ in $(seq "$LOGINS"); do
    curl -fs -o "$dir/login.json" -w '%{time_total}\n' -H 'content-type: application/json' \
      -d '{"username":"bench","password":"bench-password-1"}' "$url/auth/login"
  done | awk '{s += $1; if ($1 > m) m = $1} END {printf "mean %.1f ms, max %.1f ms", s * 1000 / NR, m * 1000}')
  token=$(json '["access_token"]' <"$dir/login.json")

  local host
  host=$(curl -fs -H "authorization: Bearer $token" -H 'content-type: application/json' \
    -d '{"name":"bench-host","os":"linux"}' "$url/hosts" | json '["id"]')
  for i in $(seq 0 $((SERVERS - 1))); do
    curl -fs -o /dev/null -H "authorization: Bearer $token" -H 'content-type: application/json' \
      -d "{\"host_id\":\"$host\",\"name\":\"s$i\",\"game\":\"arma3\",\"game_port\":$((2302 + i * 10)),\"rcon_port\":$((2309 + i * 10)),\"executable_path\":\"/srv/arma3/arma3server_x64\"}" \
      "$url/servers"
  done
  local n
  n=$(curl -fs -H "authorization: Bearer $token" "$url/servers" | json '.__len__()')
  [ "$n" = "$SERVERS" ] || { echo "expected $SERVERS servers, got $n" >&2; exit 1; }

  # Warm-up, then the measured run.
  wrk -t"$THREADS" -c"$CONNS" -d2s -H "authorization: Bearer $token" "$url/servers" >/dev/null
  local out
  out=$(wrk -t"$THREADS" -c"$CONNS" -d"$DURATION" --latency -H "authorization: Bearer $token" "$url/servers")
  local rps p50 p99 errs
  rps=$(awk '/Requests\/sec/ {print $2}' <<<"$out")
  p50=$(awk '$1=="50%" {print $2}' <<<"$out")
  p99=$(awk '$1=="99%" {print $2}' <<<"$out")
  errs=$(grep -E 'Non-2xx|Socket errors' <<<"$out" || true)
  printf 'backend=%-8s GET /api/v1/servers (%s servers): %s req/s, p50 %s, p99 %s  [wrk -t%s -c%s -d%s]%s\n' \
    "$backend" "$SERVERS" "$rps" "$p50" "$p99" "$THREADS" "$CONNS" "$DURATION" "${errs:+  ERRORS: $errs}"
  printf 'backend=%-8s login (POST /auth/login, %s sequential): %s\n' "$backend" "$LOGINS" "$login_ms"
  [ "${VERBOSE:-0}" = 1 ] && echo "$out"

  kill "$SERVER_PID"; wait "$SERVER_PID" 2>/dev/null || true; SERVER_PID=""
  if [ -n "$PG_DB" ]; then psql -q "$PG_ADMIN_URL" -c "DROP DATABASE IF EXISTS $PG_DB WITH (FORCE)" >/dev/null; PG_DB=""; fi
}

echo "cores: $(nproc), wrk $(wrk -v 2>&1 | head -1 | awk '{print $2}')"
for b in $BACKENDS; do run_backend "$b"; done
