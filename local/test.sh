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
sdk_results="$stack_dir/sdk-test.log"
target_dir=$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')
set +e
# The client SDK (sdk/js): type check, unit tests, its protocol types against what the dev mode built above
# really sends, then the demo page in headless Chromium against that dev mode; the SDK's integration test
# against the real stack runs with the cargo tests.
(
  cd sdk/js &&
    npm run --silent typecheck &&
    npm test --silent &&
    CAAS_DEV_BIN="$target_dir/debug/caas-dev" npm run --silent test:protocol &&
    CAAS_DEV_BIN="$target_dir/debug/caas-dev" npm run --silent test:browser
) 2>&1 | tee "$sdk_results"
sdk_status=${PIPESTATUS[0]}
export CAAS_SDK_BUILT=1
cargo test --workspace --no-fail-fast "$@" 2>&1 | tee "$results"
status=${PIPESTATUS[0]}
set -e
# One closing line for the whole run: cargo prints one per test binary (the last being doc-tests), node's
# test runner a `# pass N` / `# fail N` pair per run; a type error counts as one failure.
awk -v sdk_status="$sdk_status" '
  /^test result:/ { for (i = 1; i <= NF; i++) { if ($(i+1) ~ /^passed/) p += $i; if ($(i+1) ~ /^failed/) f += $i } }
  /^# pass / { p += $3; node_runs++ } /^# fail / { f += $3 }
  END { if (sdk_status != 0 && f == 0) f = 1; printf "all tests: %d passed, %d failed\n", p, f }' "$sdk_results" "$results"
[ "$sdk_status" = 0 ] || exit "$sdk_status"
exit "$status"
