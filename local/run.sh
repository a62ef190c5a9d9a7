#!/usr/bin/env bash
# Runs the platform on the native stack: servers (installed if missing) plus the gateway on :3000, a
# socket node on :3002 and the Kafka→function bridge. Data lives in .local-run/. Ctrl-C stops everything.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

run_dir="$PWD/.local-run"
bash local/stack.sh start "$run_dir" >/dev/null
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  bash local/stack.sh stop "$run_dir"
}
trap cleanup EXIT INT TERM

set -a
# shellcheck disable=SC1091
. "$run_dir/env"
CAAS_JWT_SECRET="${CAAS_JWT_SECRET:-local-development-secret-change-me-please}"
CAAS_ADMIN_TOKEN="${CAAS_ADMIN_TOKEN:-local-admin-token}"
CAAS_SOCKET_URLS="${CAAS_SOCKET_URLS:-ws://127.0.0.1:3002/ws}"
set +a

cargo build --bins -p socket-node -p caas-local
target_dir="${CARGO_TARGET_DIR:-target}/debug"
"$target_dir/caas-gateway" & pids+=($!)
"$target_dir/caas-bridge" & pids+=($!)
CAAS_SOCKET_BIND=127.0.0.1:3002 "$target_dir/socket-node" & pids+=($!)

cat <<INFO
CaaS is starting:
  HTTP API   http://127.0.0.1:3000/api/v1/...
  WebSocket  ws://127.0.0.1:3002/ws
Create an app, then get a token:
  curl -s -X POST localhost:3000/api/v1/admin/apps -H 'authorization: Bearer $CAAS_ADMIN_TOKEN' \\
       -H 'content-type: application/json' -d '{"name":"my app"}'
  curl -s -X POST localhost:3000/api/v1/auth/sdk/token -H 'content-type: application/json' \\
       -d '{"app_id":"<app_id>","app_secret":"<app_secret>","user_external_id":"alice"}'
INFO
wait -n "${pids[@]}"
