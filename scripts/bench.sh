#!/usr/bin/env bash
# Benchmark ladder: bare Envoy -> Envoy + no-op wasm -> Envoy + aigate -> Envoy's native
# jwt_authn + mcp + rbac, across request body sizes, plus aigate's engine micro-benchmarks.
# Run by hand (not part of scripts/test.sh). Writes bench/RESULTS.md and bench/results.json.
#
#   scripts/bench.sh            full run, about 20 minutes: 3 interleaved rounds, 10 s per
#                               run after a 2 s warm-up, 1 KiB / 16 KiB / 256 KiB / 1 MiB,
#                               token-cache miss and audit-off variants at 1 KiB, the floor
#                               (the no-op filter making aigate's host calls), a long
#                               run for worker memory (a million requests), criterion micro-benchmarks
#   scripts/bench.sh --quick    about 3 minutes, one round of 3 s runs; writes
#                               bench/RESULTS-quick.md (not committed)
#   scripts/bench.sh --profile  about 10 minutes: where aigate's cost goes inside Envoy (the
#                               no-op filter doing aigate's host calls step by step, Envoy
#                               instructions per request) and in V8 (benches/wasm-driver
#                               run by Node with a CPU profile); writes bench/PROFILE.md
#
# Options: --quick, --profile, --no-criterion, --keep (keep the work dir with the rendered
# Envoy configs), and anything after `--` goes to scripts/bench/ladder.py (see --help).
#
# Envoy runs with --concurrency 1 pinned to CPU 0 and wrk pinned to CPU 1, all on
# 127.0.0.1. Needs: .venv/bin/envoy (scripts/setup.sh), wrk (installed here from Debian
# packages if missing), taskset, the wasm32-wasip1 Rust target. Honours CARGO_TARGET_DIR.
# Other busy processes on the machine skew the numbers: the report records load averages
# and how busy each CPU was during every run.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

command_line="scripts/bench.sh${*:+ $*}"
quick=0
profile=0
criterion=1
keep=()
extra=()
while [ $# -gt 0 ]; do
  case "$1" in
    --quick) quick=1 ;;
    --profile) profile=1; criterion=0 ;;
    --no-criterion) criterion=0 ;;
    --keep) keep=(--keep) ;;
    --) shift; extra=("$@"); break ;;
    -h|--help) sed -n '2,25p' "$0"; exit 0 ;;
    *) echo "bench.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
  shift
done

step() { printf '\n==> %s\n' "$*"; }
die() { printf 'bench.sh: %s\n' "$*" >&2; exit 1; }

[ "$(nproc)" -ge 2 ] || die "needs two CPUs (Envoy on one, the load generator on the other)"
command -v taskset >/dev/null || die "taskset not found (util-linux)"

step "Load generator: wrk"
if ! command -v wrk >/dev/null; then
  # Debian/Ubuntu package; apt-get update only when the plain install cannot find it.
  apt-get install -y wrk >/dev/null 2>&1 || { apt-get update >/dev/null && apt-get install -y wrk >/dev/null; } \
    || die "could not install wrk (apt-get install wrk)"
fi
{ wrk -v 2>&1 || true; } | head -1

step "Envoy"
[ -x .venv/bin/envoy ] || bash scripts/setup.sh --no-build
.venv/bin/envoy --version | sed 's/^/envoy: /'

target="${CARGO_TARGET_DIR:-$ROOT/target}"
step "Build aigate.wasm and the no-op filter (release, wasm32-wasip1)"
cargo build --release --target wasm32-wasip1 --lib
# Its own workspace: build it into a directory of its own under the target dir.
CARGO_TARGET_DIR="$target/noop-filter" \
  cargo build --release --target wasm32-wasip1 --manifest-path benches/noop-filter/Cargo.toml
aigate_wasm="$target/wasm32-wasip1/release/aigate.wasm"
noop_wasm="$target/noop-filter/wasm32-wasip1/release/aigate_bench_noop.wasm"
[ -f "$aigate_wasm" ] && [ -f "$noop_wasm" ] || die "wasm modules missing ($aigate_wasm, $noop_wasm)"
echo "aigate.wasm: $(wc -c < "$aigate_wasm") bytes; no-op: $(wc -c < "$noop_wasm") bytes"

read -r load1 _ < /proc/loadavg
if awk -v l="$load1" 'BEGIN { exit !(l > 0.5) }'; then
  echo "bench.sh: warning: load average $load1: other processes are busy, numbers will be noisy" >&2
fi

if [ "$profile" = 1 ]; then
  out=bench/PROFILE.md json=bench/profile.json
  ladder=(--profile --sizes 1024,1048576 --rounds 2)
  if command -v node >/dev/null; then
    step "Profiling driver (benches/wasm-driver, wasm32-wasip1, names kept)"
    CARGO_TARGET_DIR="$target/wasm-driver" \
      cargo build --release --target wasm32-wasip1 --manifest-path benches/wasm-driver/Cargo.toml
    ladder+=(--driver-wasm "$target/wasm-driver/wasm32-wasip1/release/aigate-bench-driver.wasm")
  else
    echo "bench.sh: node not found: skipping the V8 profile of aigate's computation" >&2
  fi
elif [ "$quick" = 1 ]; then
  out=bench/RESULTS-quick.md json=bench/results-quick.json
  ladder=(--rounds 1 --seconds 3 --warmup 1 --extras aigate-miss,floor --memory-seconds 15)
else
  out=bench/RESULTS.md json=bench/results.json
  ladder=()
fi

# Other sessions' busy processes would take an equal share of the pinned cores under
# autogroup scheduling whatever our nice level: raise this session's group (root only;
# ladder.py does the same for each Envoy it starts).
prio=()
if [ "$(id -u)" = 0 ]; then
  echo -20 > /proc/self/autogroup 2>/dev/null || true
  prio=(nice -n -20)
fi

crit_out=""
if [ "$criterion" = 1 ]; then
  step "Engine micro-benchmarks (criterion, native, CPU 0)"
  crit_out="$(mktemp /tmp/aigate-criterion.XXXXXX)"
  crit_args=()
  # Quick mode: only the headline groups.
  [ "$quick" = 1 ] && crit_args=(-- "decide/2KiB|jwt_verify|identity")
  cargo bench --bench engine --no-run
  "${prio[@]}" taskset -c 0 cargo bench --bench engine "${crit_args[@]}" 2>&1 | tee "$crit_out" | grep -E 'time:|thrpt:' || true
fi

# The module's own computation per request in Wasm operators (wasmtime fuel): exact and
# repeatable on any machine, where the ladder's times move with the machine and its load.
fuel_out="$(mktemp /tmp/aigate-fuel.XXXXXX)"
trap 'rm -f "$crit_out" "$fuel_out"' EXIT
if [ "$profile" = 0 ]; then
  step "Wasm operators per request (wasmtime harness, fuel)"
  AIGATE_WASM="$aigate_wasm" cargo run --release -p aigate-harness --example cost > "$fuel_out"
  cat "$fuel_out"
fi

step "Envoy ladder ($out)"
.venv/bin/python scripts/bench/ladder.py --envoy .venv/bin/envoy \
  --aigate-wasm "$aigate_wasm" --noop-wasm "$noop_wasm" \
  --out "$out" --json "$json" --command "$command_line" \
  ${crit_out:+--criterion "$crit_out"} --fuel "$fuel_out" "${keep[@]}" "${ladder[@]}" "${extra[@]}"
