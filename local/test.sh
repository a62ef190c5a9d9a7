#!/usr/bin/env bash
# The test command: installs what is missing, starts the real servers (Redis, Tansu, SecantusDB, s3s-fs)
# on free loopback ports, runs every test of the workspace against them, and stops them.
# Extra arguments go to `cargo test` (for example a test name filter).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

# shellcheck source=local/stack-session.sh
. local/stack-session.sh
start_stack_session test

# The end-to-end tests run the workspace's binaries; build them once, up front.
cargo build --workspace --bins
export CAAS_E2E_BINARIES_BUILT=1
# The release artifacts `sam build` deploys, built the same way (cargo-lambda, linked with zig): every
# `Binary` of template.yaml. The lambda_artifacts test invokes each one.
mapfile -t functions < <(sed -n 's/^ *Binary: *//p' template.yaml)
PATH="${CAAS_TOOLS_DIR:-$HOME/.cache/caas/tools}/venv/bin:$PATH" \
  cargo lambda build --release "${functions[@]/#/--bin=}"
export CAAS_LAMBDA_ARTIFACTS_BUILT=1
results="$stack_dir/cargo-test.log"
set +e
cargo test --workspace --no-fail-fast "$@" 2>&1 | tee "$results"
status=${PIPESTATUS[0]}
set -e
# One closing line for the whole run (cargo prints one per test binary, the last being doc-tests).
awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($(i+1) ~ /^passed/) p += $i; if ($(i+1) ~ /^failed/) f += $i } }
     END { printf "all tests: %d passed, %d failed\n", p, f }' "$results"
exit "$status"
