#!/usr/bin/env bash
# Memory of a controller before and after four concurrent 200 MiB request bodies sent to
# /api/v1/auth/login over HTTP/2 without TLS (prior knowledge: no Content-Length, no
# chunked encoding). Prints figures; asserts nothing. Needs curl with HTTP/2.
#
#   bash controller/benches/h2c_body_rss.sh [path/to/languard]   # default: target/debug/languard
set -euo pipefail
BIN=${1:-${CARGO_TARGET_DIR:-target}/debug/languard}
DIR=$(mktemp -d)
PORT=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
LANGUARD_LINK_LISTEN=off "$BIN" --data-dir "$DIR" serve --listen "127.0.0.1:$PORT" >"$DIR/log" 2>&1 &
PID=$!
trap 'kill "$PID" 2>/dev/null || true; wait "$PID" 2>/dev/null || true; rm -rf "$DIR"' EXIT
for _ in $(seq 1 300); do
  curl -fs "http://127.0.0.1:$PORT/api/v1/system/health" >/dev/null && break
  sleep 0.2
done
kib() { awk -v k="$1" '$1 == k":" {print $2}' "/proc/$PID/status"; }
echo "before: RSS $(kib VmRSS) KiB"
CURLS=()
for _ in 1 2 3 4; do
  head -c 200M /dev/zero | curl -s -o /dev/null -w '%{http_code} after %{size_upload} bytes sent\n' \
    --http2-prior-knowledge -X POST -H 'Content-Type: application/json' -T - \
    "http://127.0.0.1:$PORT/api/v1/auth/login" &
  CURLS+=($!)
done
wait "${CURLS[@]}" || true
echo "after:  RSS $(kib VmRSS) KiB, peak $(kib VmHWM) KiB"
