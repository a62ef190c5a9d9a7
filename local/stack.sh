#!/usr/bin/env bash
# Native stack for machines without Docker: Redis, a Kafka-protocol broker (Tansu), a MongoDB-protocol
# server (SecantusDB) and an S3 server (s3s-fs), all on loopback, on free ports, with data in one folder.
#
#   local/stack.sh install          install what is missing (idempotent)
#   local/stack.sh start DIR        start everything; writes DIR/env (CAAS_* variables) and DIR/pids
#   local/stack.sh stop DIR         stop what start (or redis-cluster) started
#   local/stack.sh redis-cluster DIR [MASTERS]
#                                   start a Redis Cluster of MASTERS (default 3) masters, no replicas, on
#                                   loopback; writes DIR/env (CAAS_CACHE_URL=redis+cluster://…) and DIR/pids
#   local/stack.sh restart DIR NAME [DOWN_SECS]
#                                   kill -9 one server (redis, tansu, secantus, s3s), wait, start it again
#                                   on its port with its data (fault tests)
#
# Tools go to $CAAS_TOOLS_DIR (default ~/.cache/caas/tools). Prebuilt tansu/s3s-fs from ../shared/bin are
# used when present and verified; otherwise they are built with cargo install (slow: ~40 min for tansu).
set -euo pipefail

TOOLS_DIR="${CAAS_TOOLS_DIR:-$HOME/.cache/caas/tools}"
REPO_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PREBUILT_DIR="${CAAS_PREBUILT_DIR:-$REPO_DIR/../shared/bin}"
TANSU_VERSION=0.6.0
S3S_VERSION=0.14.1
SECANTUS_VERSION=0.7.0b3
SOCKETIO_VERSION=4.8.1
# The replaced system's own stack, the load benchmark's second peer (bench/socketio/stack.js), and the
# client its apps use (tests/socketio/, the Socket.IO-compatibility tests and bench scenario).
SOCKETIO_STACK_PACKAGES="@socket.io/redis-adapter@8.3.0 redis@4.7.0 kafkajs@2.2.4 socket.io-client@4.8.1"

log() { printf '[stack] %s\n' "$*" >&2; }

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

install_apt_packages() {
  local missing=()
  command -v redis-server >/dev/null || missing+=(redis-server)
  command -v cmake >/dev/null || missing+=(cmake)
  command -v sqlite3 >/dev/null || missing+=(sqlite3)
  dpkg -s libcurl4-openssl-dev >/dev/null 2>&1 || missing+=(libcurl4-openssl-dev)
  # The demo page's browser test drives Debian's Chromium (never a downloaded browser).
  command -v chromium >/dev/null || missing+=(chromium)
  if [ ${#missing[@]} -gt 0 ]; then
    log "installing Debian packages: ${missing[*]}"
    as_root apt-get update -qq
    DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq "${missing[@]}" >/dev/null
  fi
}

# Copies a verified prebuilt binary, or builds it from the crates registry.
install_binary() {
  local name=$1; shift
  local target="$TOOLS_DIR/bin/$name"
  [ -x "$target" ] && return 0
  mkdir -p "$TOOLS_DIR/bin"
  if [ -x "$PREBUILT_DIR/$name" ] && [ -f "$PREBUILT_DIR/SHA256SUMS" ] &&
     (cd "$PREBUILT_DIR" && grep " $name\$" SHA256SUMS | sha256sum -c --status -); then
    log "using prebuilt $name"
    cp "$PREBUILT_DIR/$name" "$target.tmp" && chmod +x "$target.tmp" && mv "$target.tmp" "$target"
  else
    log "building $name with cargo install (this takes a while)"
    cargo install --root "$TOOLS_DIR" "$@"
  fi
}

# The load benchmark's peers run on Node.js: plain socket.io (bench/socketio/server.js), and socket.io with
# the Redis adapter and a kafkajs producer (bench/socketio/stack.js).
install_socketio() {
  local modules="$TOOLS_DIR/socketio/node_modules"
  if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
    log "installing Node.js and npm"
    as_root apt-get update -qq
    DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq nodejs npm >/dev/null
  fi
  if ! grep -qs "\"version\": \"$SOCKETIO_VERSION\"" "$modules/socket.io/package.json"; then
    log "installing socket.io $SOCKETIO_VERSION"
    mkdir -p "$TOOLS_DIR/socketio"
    npm install --prefix "$TOOLS_DIR/socketio" --no-audit --no-fund --silent "socket.io@$SOCKETIO_VERSION"
  fi
  local package missing=()
  for package in $SOCKETIO_STACK_PACKAGES; do
    grep -qs "\"version\": \"${package##*@}\"" "$modules/${package%@*}/package.json" || missing+=("$package")
  done
  if [ ${#missing[@]} -gt 0 ]; then
    log "installing ${missing[*]}"
    npm install --prefix "$TOOLS_DIR/socketio" --no-audit --no-fund --silent \
      "socket.io@$SOCKETIO_VERSION" $SOCKETIO_STACK_PACKAGES
  fi
}

# The client SDK's build and test tools (TypeScript, ws, playwright-core), exactly as its lock file says;
# reinstalled only when the lock file changed.
install_sdk() {
  local sdk modules stamp
  sdk="$(dirname "${BASH_SOURCE[0]}")/../sdk/js"
  modules="$sdk/node_modules"
  stamp=$(sha256sum "$sdk/package-lock.json" | cut -d' ' -f1)
  if [ "$(cat "$modules/.caas-lock" 2>/dev/null)" != "$stamp" ]; then
    log "installing the SDK's npm packages (npm ci)"
    (cd "$sdk" && npm ci --no-audit --no-fund --silent)
    echo "$stamp" >"$modules/.caas-lock"
  fi
}

install_all() {
  install_apt_packages
  if [ ! -x "$TOOLS_DIR/venv/bin/secantusd-py" ]; then
    log "installing secantusdb $SECANTUS_VERSION"
    python3 -m venv "$TOOLS_DIR/venv"
    "$TOOLS_DIR/venv/bin/pip" install -q "secantusdb==$SECANTUS_VERSION"
  fi
  # cargo-lambda (its PyPI wheel ships the static binary) and cfn-lint, for `cargo lambda watch` and CI.
  if [ ! -x "$TOOLS_DIR/venv/bin/cargo-lambda" ] || [ ! -x "$TOOLS_DIR/venv/bin/cfn-lint" ]; then
    log "installing cargo-lambda and cfn-lint"
    "$TOOLS_DIR/venv/bin/pip" install -q cargo-lambda cfn-lint
  fi
  install_socketio
  install_sdk
  install_binary tansu tansu --version "$TANSU_VERSION" --locked --no-default-features --features dynostore,libsql
  install_binary s3s-fs s3s-fs --version "$S3S_VERSION" --features binary --locked
}

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

wait_for_port() {
  local port=$1 name=$2
  for _ in $(seq 1 300); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then return 0; fi
    sleep 0.1
  done
  log "$name did not open port $port"; return 1
}

# One server, on its recorded port, with its data in DIR (so a restart finds what it had).
start_server() {
  local dir=$1 name=$2 port
  port=$(sed -n "s/^$name //p" "$dir/ports")
  case "$name" in
    redis)
      # No persistence: a restart loses everything, as a cache node replaced without a replica does.
      redis-server --port "$port" --bind 127.0.0.1 --save '' --appendonly no \
        --daemonize yes --pidfile "$dir/redis.pid" --logfile "$dir/redis.log"
      wait_for_port "$port" redis
      echo "redis $(cat "$dir/redis.pid")" >>"$dir/pids" ;;
    tansu)
      # In memory by default (fast); CAAS_STACK_KAFKA_STORAGE=sqlite at start keeps the log across restarts.
      local storage=memory://tansu/
      [ "$(cat "$dir/kafka-storage")" = sqlite ] && storage="sqlite://tansu.db"  # relative to $dir/kafka, where it runs
      (cd "$dir/kafka" && exec "$TOOLS_DIR/bin/tansu" broker \
         --listener-url "tcp://127.0.0.1:$port" --advertised-listener-url "tcp://127.0.0.1:$port" \
         --storage-engine "$storage" >>"$dir/tansu.log" 2>&1) &
      echo "tansu $!" >>"$dir/pids"
      wait_for_port "$port" tansu ;;
    secantus)
      "$TOOLS_DIR/venv/bin/secantusd-py" --host 127.0.0.1 --port "$port" --storage-path "$dir/mongo" \
        >>"$dir/secantus.log" 2>&1 &
      echo "secantus $!" >>"$dir/pids"
      wait_for_port "$port" secantusdb ;;
    s3s)
      "$TOOLS_DIR/bin/s3s-fs" --host 127.0.0.1 --port "$port" --access-key caas-local --secret-key caas-local-secret \
        "$dir/s3" >>"$dir/s3s.log" 2>&1 &
      echo "s3s $!" >>"$dir/pids"
      wait_for_port "$port" s3s-fs ;;
    *) log "no server named $name"; return 2 ;;
  esac
}

# Stops one server abruptly (SIGKILL: no shutdown work, as a crash) and forgets its pid.
kill_server() {
  local dir=$1 name=$2 pid
  pid=$(sed -n "s/^$name //p" "$dir/pids")
  [ -n "$pid" ] || { log "$name is not running in $dir"; return 2; }
  kill -9 "$pid" 2>/dev/null || true
  # Gone, or a zombie nobody reaped yet (state Z): either way it holds no port any more.
  for _ in $(seq 1 200); do
    kill -0 "$pid" 2>/dev/null || break
    [ "$(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null)" = Z ] && break
    sleep 0.05
  done
  sed -i "/^$name /d" "$dir/pids"
}

start_all() {
  local dir=$1
  # s3s-fs serves each directory under its root as a bucket: `caas` is the platform's.
  mkdir -p "$dir"/{mongo,s3/caas,kafka}
  dir=$(cd "$dir" && pwd)
  : >"$dir/pids"
  : >"$dir/ports"
  echo "${CAAS_STACK_KAFKA_STORAGE:-memory}" >"$dir/kafka-storage"
  local name
  for name in redis tansu secantus s3s; do echo "$name $(free_port)" >>"$dir/ports"; done
  for name in redis tansu secantus s3s; do start_server "$dir" "$name"; done
  port_of() { sed -n "s/^$1 //p" "$dir/ports"; }

  # Values with & are single-quoted: the file is sourced by shells.
  cat >"$dir/env" <<ENV
CAAS_CACHE_URL=redis://127.0.0.1:$(port_of redis)
CAAS_BUS_URL=kafka://127.0.0.1:$(port_of tansu)
CAAS_KAFKA_REPLICATION_FACTOR=1
CAAS_KAFKA_MIN_INSYNC_REPLICAS=1
CAAS_STORE_URL=mongodb://127.0.0.1:$(port_of secantus)/?directConnection=true
CAAS_BLOB_URL='s3://caas?endpoint=http://127.0.0.1:$(port_of s3s)&region=us-east-1'
CAAS_S3_ACCESS_KEY=caas-local
CAAS_S3_SECRET_KEY=caas-local-secret
CAAS_SEARCH_DIR=$dir/search
ENV
  log "stack up in $dir"
  cat "$dir/env"
}

# A Redis Cluster on loopback: MASTERS cluster-enabled servers, their 16,384 slots split evenly by
# `redis-cli --cluster create`, ready once every node reports cluster_state:ok.
start_redis_cluster() {
  local dir=$1 masters=${2:-3} port bus seeds=() node
  mkdir -p "$dir"
  dir=$(cd "$dir" && pwd)
  : >"$dir/pids"
  for node in $(seq 1 "$masters"); do
    port=$(free_port); bus=$(free_port)
    mkdir -p "$dir/redis-$node"
    # cluster-port: the bus port is otherwise port+10000, which may be taken or beyond 65535.
    (cd "$dir/redis-$node" && redis-server --port "$port" --cluster-port "$bus" --bind 127.0.0.1 \
       --cluster-enabled yes --cluster-config-file nodes.conf --cluster-node-timeout 5000 \
       --save '' --appendonly no --daemonize yes --pidfile "$dir/redis-$node/redis.pid" \
       --logfile "$dir/redis-$node/redis.log")
    wait_for_port "$port" "redis cluster node $node"
    # The daemon may write its pid file just after it starts listening: an empty read here left a node
    # running after `stop` (seen after the e2e cluster test).
    for _ in $(seq 1 50); do [ -s "$dir/redis-$node/redis.pid" ] && break; sleep 0.1; done
    [ -s "$dir/redis-$node/redis.pid" ] || { log "redis cluster node $node wrote no pid file"; return 1; }
    echo "redis-$node $(cat "$dir/redis-$node/redis.pid")" >>"$dir/pids"
    seeds+=("127.0.0.1:$port")
  done
  redis-cli --cluster create "${seeds[@]}" --cluster-replicas 0 --cluster-yes >"$dir/cluster-create.log" 2>&1 ||
    { log "redis-cli --cluster create failed:"; cat "$dir/cluster-create.log" >&2; return 1; }
  local seed ready
  for _ in $(seq 1 100); do
    ready=1
    for seed in "${seeds[@]}"; do
      redis-cli -h 127.0.0.1 -p "${seed##*:}" cluster info 2>/dev/null | grep -q '^cluster_state:ok' || ready=0
    done
    [ "$ready" = 1 ] && break
    sleep 0.1
  done
  [ "$ready" = 1 ] || { log "the redis cluster did not reach cluster_state:ok"; return 1; }
  local joined
  joined=$(IFS=,; echo "${seeds[*]}")
  echo "CAAS_CACHE_URL=redis+cluster://$joined" >"$dir/env"
  log "redis cluster of $masters masters up in $dir"
  cat "$dir/env"
}

stop_all() {
  local dir=$1
  [ -f "$dir/pids" ] || return 0
  while read -r name pid; do
    kill "$pid" 2>/dev/null || true
  done <"$dir/pids"
  sleep 0.5
  while read -r name pid; do
    kill -9 "$pid" 2>/dev/null || true
  done <"$dir/pids"
  rm -f "$dir/pids"
  log "stack in $dir stopped"
}

case "${1:-}" in
  install) install_all ;;
  start) [ -n "${2:-}" ] || { echo "usage: $0 start DIR" >&2; exit 2; }; install_all; start_all "$2" ;;
  stop) [ -n "${2:-}" ] || { echo "usage: $0 stop DIR" >&2; exit 2; }; stop_all "$2" ;;
  redis-cluster)
    [ -n "${2:-}" ] || { echo "usage: $0 redis-cluster DIR [MASTERS]" >&2; exit 2; }
    install_apt_packages; start_redis_cluster "$2" "${3:-3}" ;;
  restart)
    [ -n "${3:-}" ] || { echo "usage: $0 restart DIR redis|tansu|secantus|s3s [DOWN_SECS]" >&2; exit 2; }
    kill_server "$2" "$3"; sleep "${4:-0}"; start_server "$2" "$3" ;;
  *) echo "usage: $0 install | start DIR | stop DIR | restart DIR SERVER [DOWN_SECS] | redis-cluster DIR [MASTERS]" >&2
     exit 2 ;;
esac
