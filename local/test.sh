#!/usr/bin/env bash
# The test command: installs what is missing, starts the real servers (Redis, Tansu, SecantusDB, s3s-fs)
# on free loopback ports, runs every test of the workspace against them, and stops them.
# Extra arguments go to `cargo test` (for example a test name filter).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

bash local/stack.sh install
stack_dir=$(mktemp -d "${TMPDIR:-/tmp}/caas-test-stack.XXXXXX")
trap 'bash local/stack.sh stop "$stack_dir"; rm -rf "$stack_dir"' EXIT
bash local/stack.sh start "$stack_dir" >/dev/null
set -a
# shellcheck disable=SC1091
. "$stack_dir/env"
set +a

# The end-to-end tests run the workspace's binaries; build them once, up front.
cargo build --workspace --bins
export CAAS_E2E_BINARIES_BUILT=1
cargo test --workspace "$@"
