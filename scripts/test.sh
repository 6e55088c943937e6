#!/usr/bin/env bash
# Run every check, in order, stopping at the first failure:
#   setup (toolchain, venv, builds) -> cargo fmt --check -> clippy (native, wasm32-wasip1)
#   -> cargo test (engine, CLI) -> cargo test -p aigate-harness (the .wasm in wasmtime)
#   -> pytest tests/e2e (the .wasm in a real Envoy, real MCP server and SDK client).
# Prints each step's time and the total.
#
# Options: --skip-setup (use the existing venv and builds), --e2e-only, and anything after
# `--` goes to pytest (e.g. `scripts/test.sh --skip-setup -- -k jwt_authn -x`).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

skip_setup=0
e2e_only=0
pytest_args=()
while [ $# -gt 0 ]; do
  case "$1" in
    --skip-setup) skip_setup=1 ;;
    --e2e-only) e2e_only=1 ;;
    --) shift; pytest_args=("$@"); break ;;
    -h|--help) sed -n '2,10p' "$0"; exit 0 ;;
    *) echo "test.sh: unknown option $1" >&2; exit 2 ;;
  esac
  shift
done

T0=$SECONDS
current=""
summary=()

finish() {
  local rc=$?
  local total=$((SECONDS - T0))
  echo
  echo "==================== aigate test summary ===================="
  for line in "${summary[@]}"; do echo "  $line"; done
  if [ $rc -ne 0 ]; then
    echo "  FAILED: step '$current' (exit $rc); later steps were not run."
  else
    echo "  all steps passed"
  fi
  printf '  total time: %dm%02ds\n' $((total / 60)) $((total % 60))
  # Disk is the resource a clean clone runs out of first: show what the builds took.
  echo "  target/: $(du -sh target 2>/dev/null | cut -f1); free on its disk: $(df -h --output=avail . 2>/dev/null | tail -1 | tr -d ' ')"
  exit $rc
}
trap finish EXIT

run() {
  local name="$1"; shift
  current="$name"
  local t=$SECONDS
  printf '\n######## %s\n######## $ %s\n' "$name" "$*"
  "$@"
  summary+=("$(printf 'ok  %-28s %4ds' "$name" $((SECONDS - t)))")
}

export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"
# One build per run: incremental caches would only add gigabytes to a clean clone's disk use.
export CARGO_INCREMENTAL="${CARGO_INCREMENTAL:-0}"

if [ "$skip_setup" = 0 ]; then
  run "setup" bash scripts/setup.sh
fi

if [ "$e2e_only" = 0 ]; then
  run "cargo fmt --check" cargo fmt --all -- --check
  run "clippy (native)" cargo clippy --workspace --all-targets -- -D warnings
  run "clippy (wasm32-wasip1)" cargo clippy --target wasm32-wasip1 --lib -- -D warnings
  run "cargo test (engine, CLI)" cargo test --workspace --exclude aigate-harness
  [ -f target/wasm32-wasip1/release/aigate.wasm ] \
    || { current="harness"; echo "target/wasm32-wasip1/release/aigate.wasm missing (run scripts/setup.sh)" >&2; exit 1; }
  run "cargo test (wasm harness)" cargo test -p aigate-harness
fi

e2e() {
  local rc=0
  .venv/bin/python -m pytest tests/e2e "${pytest_args[@]}" || rc=$?
  if [ $rc -eq 5 ]; then
    echo "pytest collected no tests: that is a failure here" >&2
  fi
  return $rc
}
run "pytest tests/e2e (Envoy)" e2e
