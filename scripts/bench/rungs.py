"""What the benchmark rungs are, and what one measured run records: shared by
scripts/bench/ladder.py (which runs them) and scripts/bench/report.py (which reports them).
"""

from __future__ import annotations

from dataclasses import dataclass

KIB = 1024
ENVOY_CPU = "0"
LOAD_CPU = "1"

# Rungs: name -> (filter snippet, what it is). "upstream" drives the upstream listener
# directly: the constant share of every rung's CPU per request.
LADDER = ["bare", "noop", "aigate", "native"]
RUNG_NOTES = {
    "bare": "Envoy alone: front listener -> router -> upstream",
    "noop": "+ a Rust proxy-wasm filter that does nothing (benches/noop-filter)",
    "aigate": "+ aigate: JWT verified in the plugin (cached), MCP tools/call judged, hold: headers",
    "native": "+ jwt_authn (JWT cache on) + mcp + rbac: tool allowed by a JWT claim",
    "aigate-miss": "aigate, every request a token not in the cache (2048 tokens in rotation)",
    "aigate-quiet": "aigate with the audit log line dropped by Envoy (wasm logger at warn)",
    "upstream": "the fixed upstream alone (wrk straight to the upstream listener)",
    "floor": "the no-op filter making every host call aigate makes (headers, hold, body, clock, "
             "metrics, log, filter state, decision-id headers) and computing nothing: the best a "
             "plugin with aigate's duties can do in this host",
}
# --profile: the no-op filter doing aigate's host interactions, one more step per rung.
PROBE_STEPS = ["headers", "hold", "body", "time", "metrics", "log", "property", "stamp", "reply"]
PROBE_NOTES = {
    "headers": "read the request headers (1 host call)",
    "hold": "pause at headers until the body is buffered, then continue",
    "body": "read the buffered body (1 host call)",
    "time": "read the clock twice",
    "metrics": "3 counter increments + 1 histogram record",
    "log": "a 600-byte info line to Envoy's log (the audit line)",
    "property": "a 600-byte filter-state property (the decision record)",
    "stamp": "set a request header (the decision id, for the upstream)",
    "reply": "set a response header (the decision id, for the client)",
}


def floor_probe() -> str:
    """The Envoy behind the `floor` rung: the probe with every step."""
    return "probe:" + ",".join(PROBE_STEPS)


def probe_rungs() -> list[str]:
    return [f"probe:{','.join(PROBE_STEPS[:i + 1])}" for i in range(len(PROBE_STEPS))]


def note(rung: str) -> str:
    if rung.startswith("probe:"):
        last = rung.split(",")[-1].removeprefix("probe:")
        return f"no-op + … + {last}: {PROBE_NOTES[last]}"
    return RUNG_NOTES.get(rung, rung)


def logs_per_request(rung: str) -> bool:
    return rung.startswith("aigate") or (rung.startswith("probe:") and "log" in rung)


@dataclass
class Run:
    rung: str
    size: int
    round: int
    seconds: float
    requests: int
    rps: float
    non2xx: int
    errors: int
    cpu_s: float
    cpu_us_per_req: float
    lat_p50_us: float
    lat_p99_us: float
    cpu0_busy: float
    cpu1_busy: float
    instr_per_req: float | None = None
    cycles_per_req: float | None = None


def fmt_size(n: int) -> str:
    return f"{n // (1024 * KIB)} MiB" if n >= 1024 * KIB else f"{n // KIB} KiB"
