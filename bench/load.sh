#!/usr/bin/env bash
# The load benchmark in one command: installs what is missing (the servers, Node.js's socket.io), starts
# the real stack (Redis, Tansu, SecantusDB) on loopback, builds the socket node and the benchmark, runs
# every scenario against the socket node and a Socket.IO 4 server, prints the report and writes it.
#
#   bash bench/load.sh            full run, optimised build; writes docs/benchmarks/load.{md,json}
#   bash bench/load.sh --smoke    a few seconds at small sizes (CI runs the same through the tests)
# Other arguments go to load-bench (for example --connections 20000 or --out PREFIX).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

profile=release
args=()
out_given=false
for arg in "$@"; do
  case $arg in
    --smoke) profile=dev ;;
    --out) out_given=true ;;
  esac
  args+=("$arg")
done
if [ "$profile" = release ] && ! $out_given; then
  args+=(--out docs/benchmarks/load)
fi

# shellcheck source=local/stack-session.sh
. local/stack-session.sh
start_stack_session load
# Redis and the Kafka broker work for every message the socket node takes: the report counts their CPU.
CAAS_BENCH_BACKEND_PIDS=$(awk '$1 == "redis" || $1 == "tansu" { printf "%s%s:%s", sep, $1, $2; sep = "," }' "$stack_dir/pids")
export CAAS_BENCH_BACKEND_PIDS
# Each fan-out scenario of the socket node starts on freshly restarted (empty) Redis and broker.
export CAAS_BENCH_STACK_DIR=$stack_dir
# Every connection is a file descriptor; take all this machine allows (the benchmark splits the idle
# connections over as many processes as that limit needs).
ulimit -n "$(ulimit -Hn)"

cargo build --profile "$profile" -p caas-bench -p socket-node --bins
target_dir=$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')
bin_dir="$target_dir/$([ "$profile" = dev ] && echo debug || echo release)"
"$bin_dir/load-bench" "${args[@]}"
