#!/usr/bin/env bash
# aigate demo: build, start the sample MCP server and Envoy with the plugin, then show an
# allowed call, denied calls and an approval-required call made with the MCP Python SDK,
# each decision's status/reason/decision id, the audit lines and the aigate metrics.
# Everything it starts is stopped when it exits; nothing waits forever.
#
#   scripts/demo.sh                 # build (scripts/setup.sh) and run
#   scripts/demo.sh --serve 120     # keep Envoy up 120 s at the end to poke at it
#   scripts/demo.sh --variant body  # the hold-body (Istio-style) Envoy config
#   AIGATE_DEMO_SKIP_SETUP=1 scripts/demo.sh   # reuse the existing build and venv
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

if [ "${AIGATE_DEMO_SKIP_SETUP:-0}" != 1 ]; then
  setup_log="$(mktemp -t aigate-setup.XXXXXX.log)"
  echo "Building (scripts/setup.sh; log: $setup_log) ..."
  if ! timeout 3600 bash scripts/setup.sh >"$setup_log" 2>&1; then
    tail -30 "$setup_log" >&2
    echo "demo: setup failed (full log: $setup_log)" >&2
    exit 1
  fi
  echo "Build done."
fi

workdir="$(mktemp -d -t aigate-demo-XXXXXX)"
serve=0
args=("$@")
for ((i = 0; i < ${#args[@]}; i++)); do
  if [ "${args[$i]}" = "--serve" ] && [ $((i + 1)) -lt ${#args[@]} ]; then serve="${args[$((i + 1))]}"; fi
done
# The demo itself takes well under a minute; --serve adds its own bounded time.
limit=$((180 + serve))

demo_pid=""
cleanup() {
  # Stop the demo (it stops Envoy and the MCP server itself), then anything it left,
  # by the process ids it recorded - never by name.
  if [ -n "$demo_pid" ] && kill -0 "$demo_pid" 2>/dev/null; then
    kill -TERM "$demo_pid" 2>/dev/null || true
    for _ in $(seq 50); do kill -0 "$demo_pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$demo_pid" 2>/dev/null || true
  fi
  if [ -f "$workdir/pids" ]; then
    while read -r pid; do
      [ -n "$pid" ] && kill -TERM "$pid" 2>/dev/null || true
    done < "$workdir/pids"
  fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

timeout "$limit" .venv/bin/python scripts/demo.py --workdir "$workdir" "$@" &
demo_pid=$!
wait "$demo_pid"
