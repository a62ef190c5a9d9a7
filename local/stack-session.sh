# Sourced (not run) by scripts that need the real servers for their own lifetime: installs what is
# missing, starts the stack on free loopback ports in a fresh directory ($stack_dir), exports its CAAS_*
# variables, and stops it when the sourcing script exits.
# shellcheck shell=bash
start_stack_session() {
  local purpose=$1
  bash local/stack.sh install
  stack_dir=$(mktemp -d "${TMPDIR:-/tmp}/caas-$purpose-stack.XXXXXX")
  trap 'bash local/stack.sh stop "$stack_dir" 2>/dev/null; rm -rf "$stack_dir"' EXIT
  bash local/stack.sh start "$stack_dir" >/dev/null
  set -a
  # shellcheck disable=SC1091
  . "$stack_dir/env"
  set +a
}
