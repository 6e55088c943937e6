"""Markdown reports for scripts/bench/ladder.py: the ladder (bench/RESULTS.md) and the
profile (bench/PROFILE.md), from the runs it measured.
"""

from __future__ import annotations

import json
import statistics
from pathlib import Path

from rungs import ENVOY_CPU, KIB, LOAD_CPU, RUNG_NOTES, Run, fmt_size, note, probe_rungs


def profile_report(meta: dict, runs: list[Run], sizes: list[int], v8: list[dict]) -> str:
    s = summarize(runs)
    L = ["# Where aigate's time goes inside Envoy\n",
         "Produced by `scripts/bench.sh --profile`. The no-op filter (benches/noop-filter) is made to "
         "perform aigate's host interactions, one more step per row, without aigate's computation; "
         "the last rows are aigate itself. Each row's Δ is its cost over the row above; "
         "aigate − the full probe is aigate's own computation inside V8 (identity with the cached "
         "token, JSON parse, policy, audit line and metric ids).\n",
         f"- command: `{meta['command']}`; date: {meta['date']}",
         f"- machine: {meta['cpu']}, {meta['cpus']} CPUs, {meta['kernel']}; Envoy {meta['envoy_version']}",
         f"- schedule: {meta['rounds']} round(s), {meta['warmup']} s warm-up + {meta['seconds']} s per run, "
         f"order rotating; medians shown; wrk -t1 -c{meta['connections']} on CPU {LOAD_CPU}, Envoy on CPU {ENVOY_CPU}",
         f"- load average before / after: {meta['loadavg_before']} / {meta['loadavg_after']}; "
         f"Envoy, wrk and Node at nice {meta.get('nice', 0)}",
         f"- aigate commit `{meta['commit']}`{' (+ uncommitted changes)' if meta['dirty'] else ''}\n"]
    for size in sizes:
        L.append(f"## {fmt_size(size)} body\n")
        L.append("| rung | adds | req/s | Envoy CPU µs/req | Δ CPU µs | Envoy instructions/req | Δ instructions |")
        L.append("|---|---|---:|---:|---:|---:|---:|")
        prev = None
        for rung in meta["rungs"]:
            g = s.get(f"{rung}@{size}")
            if not g:
                continue
            base = prev
            if rung == "aigate":
                base = s.get(f"{probe_rungs()[-1]}@{size}")
            d_cpu = "" if base is None else f"{g['cpu_us'] - base['cpu_us']:+.1f}"
            d_ins = "" if base is None or g["instr"] != g["instr"] else f"{(g['instr'] - base['instr']) / 1000:+,.1f} k"
            label = rung if not rung.startswith("probe:") else "probe +" + rung.split(",")[-1].removeprefix("probe:")
            L.append(f"| {label} | {note(rung)} | {g['rps']:,.0f} | {g['cpu_us']:.1f} | {d_cpu} | "
                     f"{fmt_instr(g['instr'])} | {d_ins} |")
            if rung != "aigate-quiet":
                prev = g
        L.append("")
    L.append("`aigate` is compared with the full probe (every host interaction aigate makes); "
             "`aigate-quiet` (audit line dropped by Envoy's log level) with the row above it.\n")
    for p in v8:
        L.append(f"## aigate's computation in V8, {fmt_size(p['size'])} body\n")
        instr = f", {p['instr_per_request'] / 1000:,.0f} k instructions" if p["instr_per_request"] else ""
        L.append(f"benches/wasm-driver built for wasm32-wasip1 and run by Node's V8 (the engine Envoy embeds): "
                 f"headers handed over, identity with the cached token, body parsed and judged, "
                 f"audit line, decision id, in a loop. {p['ns_per_request'] / 1000:,.1f} µs{instr} per request. "
                 f"Self time by Wasm function (V8 CPU profile, 50 µs sampling; the driver's one-off "
                 f"set-up, policy compile and token signing, is included):\n")
        L.append("| share | function |")
        L.append("|---:|---|")
        for t in p["top"]:
            L.append(f"| {t['share']:.1%} | `{t['function'][:140]}` |")
        L.append("")
    return "\n".join(L)



def median(xs: list[float]) -> float:
    return statistics.median(xs) if xs else float("nan")


def fmt_instr(x: float) -> str:
    return "" if x != x else f"{x / 1000:,.0f} k"


def fmt_ratio(x: float) -> str:
    """A ratio to three places; `n/a` where it could not be measured (no counters)."""
    return "n/a" if x != x else f"{x:.3f}"


def summarize(runs: list[Run]) -> dict:
    groups: dict[tuple[str, int], list[Run]] = {}
    for r in runs:
        groups.setdefault((r.rung, r.size), []).append(r)
    out = {}
    for (rung, size), rs in groups.items():
        out[f"{rung}@{size}"] = {
            "rung": rung, "size": size, "n": len(rs),
            "rps": median([r.rps for r in rs]),
            "rps_min": min(r.rps for r in rs), "rps_max": max(r.rps for r in rs),
            "cpu_us": median([r.cpu_us_per_req for r in rs]),
            "cpu_us_min": min(r.cpu_us_per_req for r in rs),
            "cpu_us_max": max(r.cpu_us_per_req for r in rs),
            "p50_us": median([r.lat_p50_us for r in rs]),
            "p99_us": median([r.lat_p99_us for r in rs]),
            "non2xx": sum(r.non2xx for r in rs), "errors": sum(r.errors for r in rs),
            "cpu0_busy": median([r.cpu0_busy for r in rs]),
            "cpu1_busy": median([r.cpu1_busy for r in rs]),
            "instr": median([r.instr_per_req for r in rs if r.instr_per_req is not None]),
        }
    return out


def report(meta: dict, runs: list[Run], memory: dict | None, criterion: list[dict], sizes: list[int],
           fuel: list[dict] | None = None) -> str:
    s = summarize(runs)
    get = lambda rung, size: s.get(f"{rung}@{size}")  # noqa: E731
    L: list[str] = []
    L.append("# aigate benchmark results\n")
    L.append("Produced by `scripts/bench.sh`; the numbers below are from the run described here. "
             "Performance is measured, never asserted in tests. Ratios compare runs made in the "
             "same session, interleaved, on the same machine.\n")
    L.append("## Run\n")
    L.append(f"- command: `{meta['command']}`")
    L.append(f"- date: {meta['date']}")
    L.append(f"- machine: {meta['cpu']}, {meta['cpus']} CPUs, {meta['kernel']}; {meta['mem']}")
    L.append(f"- Envoy: {meta['envoy_version']}; `--concurrency 1`, pinned to CPU {ENVOY_CPU}; "
             f"wrk {meta['wrk_version']} (`-t1 -c{meta['connections']}`, HTTP/1.1 keep-alive) pinned to CPU {LOAD_CPU}; loopback only")
    L.append(f"- aigate: commit `{meta['commit']}`{' (+ uncommitted changes)' if meta['dirty'] else ''}, "
             f"rustc {meta['rustc']}; `.wasm` {meta['aigate_wasm_bytes']:,} bytes "
             f"(no-op filter: {meta['noop_wasm_bytes']:,} bytes)")
    L.append(f"- schedule: {meta['rounds']} round(s); per run {meta['warmup']} s warm-up (discarded) + "
             f"{meta['seconds']} s measured; rung order rotates each round; median over rounds shown, "
             f"min–max in the detail table")
    L.append(f"- load average before / after: {meta['loadavg_before']} / {meta['loadavg_after']}; "
             f"Envoy and wrk at nice {meta.get('nice', 0)}")
    L.append(f"- request: `POST /mcp`, MCP `tools/call` of `get_order` whose arguments are padded to the "
             f"body size, `Authorization: Bearer` EdDSA JWT ({meta['token_bytes']} bytes), "
             f"`Accept: application/json, text/event-stream`")
    L.append(f"- checks before measuring: " + "; ".join(meta["sanity"]))
    L.append(f"- native rung: mcp filter metadata namespace `{meta['mcp_namespace']}`")
    L.append("")
    L.append("Rungs:\n")
    for r in meta["rungs"]:
        L.append(f"- **{r}**: {RUNG_NOTES[r]}")
    L.append("")
    L.append("Envoy CPU per request is the whole Envoy process (utime + stime over the measured run "
             "divided by requests), so it includes the fixed upstream listener; the `upstream` row "
             "is that constant share, and \"front\" columns subtract it.\n")
    if all(r.instr_per_req is None for r in runs):
        L.append("This machine exposes no hardware instruction counters (`perf stat -e instructions:u` "
                 "reports `<not supported>`), so the instruction columns are `n/a` and only time-based "
                 "figures compare the rungs.\n")

    L.append("## Throughput and CPU by body size\n")
    L.append("| body | rung | req/s | Envoy CPU µs/req | front CPU µs/req | Envoy instructions/req | p50 ms | p99 ms | non-2xx | CPU0 busy | CPU1 busy |")
    L.append("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for size in sizes:
        up = get("upstream", size)
        for rung in meta["rungs"]:
            g = get(rung, size)
            if not g:
                continue
            front = g["cpu_us"] - up["cpu_us"] if (up and rung != "upstream") else float("nan")
            L.append(f"| {fmt_size(size)} | {rung} | {g['rps']:,.0f} | {g['cpu_us']:.1f} | "
                     f"{'' if front != front else f'{front:.1f}'} | {fmt_instr(g['instr'])} | {g['p50_us'] / 1000:.2f} | "
                     f"{g['p99_us'] / 1000:.2f} | {g['non2xx'] + g['errors']} | {g['cpu0_busy']:.0%} | {g['cpu1_busy']:.0%} |")
    L.append("")

    L.append("## Ratios (aigate, token cached)\n")
    L.append("req/s ratio = aigate req/s ÷ other rung's req/s (higher is better for aigate). "
             "Instructions ratio = other rung's Envoy instructions per request ÷ aigate's: the req/s ratio "
             "a saturated core would give at equal instructions per cycle, and the figure least disturbed "
             "by other processes on the machine; with large bodies the rungs' instructions per cycle differ "
             "(moving bytes vs parsing them), so there req/s is the measure. "
             "CPU ratio = other rung's front CPU per request ÷ aigate's.\n")
    L.append("| body | aigate/bare req/s | aigate/noop req/s | aigate/native req/s | bare/aigate instructions | noop/aigate instructions | native/aigate instructions | aigate−noop CPU µs | aigate−noop instructions | bare/aigate front CPU | noop/aigate front CPU | native/aigate front CPU |")
    L.append("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    ratios = {}
    for size in sizes:
        a, b, n, x, up = (get(r, size) for r in ("aigate", "bare", "noop", "native", "upstream"))
        if not (a and b and n and x):
            continue
        u = up["cpu_us"] if up else 0.0
        fa, fb, fn, fx = (g["cpu_us"] - u for g in (a, b, n, x))
        ratios[size] = dict(bare=a["rps"] / b["rps"], noop=a["rps"] / n["rps"], native=a["rps"] / x["rps"],
                            extra_vs_bare=fa - fb, extra_vs_noop=fa - fn,
                            cpu_bare=fb / fa, cpu_noop=fn / fa, cpu_native=fx / fa)
        r = ratios[size]
        r["instr_vs_noop"] = a["instr"] - n["instr"]
        # Whole-process instructions per request: what a saturated single core's req/s
        # ratio would be at equal IPC, and nearly blind to other processes' noise.
        r["ins_bare"], r["ins_noop"], r["ins_native"] = (g["instr"] / a["instr"] for g in (b, n, x))
        L.append(f"| {fmt_size(size)} | {r['bare']:.3f} | {r['noop']:.3f} | {r['native']:.3f} | "
                 f"{fmt_ratio(r['ins_bare'])} | {fmt_ratio(r['ins_noop'])} | {fmt_ratio(r['ins_native'])} | "
                 f"{r['extra_vs_noop']:.1f} | {fmt_instr(r['instr_vs_noop'])} | {r['cpu_bare']:.3f} | "
                 f"{r['cpu_noop']:.3f} | {r['cpu_native']:.3f} |")
    L.append("")

    hit, miss, quiet = get("aigate", KIB), get("aigate-miss", KIB), get("aigate-quiet", KIB)
    if hit and (miss or quiet):
        L.append("## The cost of identity and audit (1 KiB)\n")
        L.append("| variant | req/s | Envoy CPU µs/req | vs aigate (cached) |")
        L.append("|---|---:|---:|---:|")
        L.append(f"| aigate, token cached | {hit['rps']:,.0f} | {hit['cpu_us']:.1f} | — |")
        if miss:
            L.append(f"| aigate, token not cached (Ed25519 verify per request) | {miss['rps']:,.0f} | "
                     f"{miss['cpu_us']:.1f} | {miss['cpu_us'] - hit['cpu_us']:+.1f} µs |")
        if quiet:
            L.append(f"| aigate, audit line dropped by Envoy | {quiet['rps']:,.0f} | {quiet['cpu_us']:.1f} | "
                     f"{quiet['cpu_us'] - hit['cpu_us']:+.1f} µs |")
        L.append("")

    if memory:
        L.append("## Worker memory over a long run (aigate, 1 KiB, token cached)\n")
        L.append(f"{memory['requests']:,} requests in {memory['seconds']:.0f} s. Envoy process RSS "
                 f"(one worker; the Wasm VM's linear memory is part of it):\n")
        L.append("| after requests | VmRSS KiB | RssAnon KiB | VmHWM KiB |")
        L.append("|---:|---:|---:|---:|")
        samples = memory["samples"]
        step = max(1, -(-len(samples) // 12))  # at most about a dozen rows, the last always
        shown = samples[::step] + ([samples[-1]] if (len(samples) - 1) % step else [])
        for p in shown:
            L.append(f"| {p['requests']:,} | {p['VmRSS']:,} | {p['RssAnon']:,} | {p['VmHWM']:,} |")
        L.append("")
        L.append(f"RSS change from {memory['baseline_requests']:,} requests (after the first chunk) to the "
                 f"end: {memory['rss_delta_kib']:+,} KiB "
                 f"({memory['rss_delta_kib'] * 1024 / max(1, memory['requests'] - memory['baseline_requests']):.3f} bytes/request).\n")

    if criterion:
        L.append("## Engine micro-benchmarks (native, criterion)\n")
        L.append("`cargo bench --bench engine` (benches/engine.rs), pinned to CPU 0 before Envoy starts. "
                 "Native code: inside Envoy's V8 the same work runs slower (compare the Envoy CPU columns).\n")
        L.append("| benchmark | time/op | throughput |")
        L.append("|---|---:|---:|")
        for c in criterion:
            L.append(f"| `{c['name']}` | {c['time']} | {c.get('thrpt', '')} |")
        L.append("")

    if fuel:
        L.append("## aigate's computation in Wasm operators\n")
        L.append("`cargo run --release -p aigate-harness --example cost`: the module in wasmtime, one request "
                 "per case, counting the Wasm operators it executes (fuel) from the request's first callback "
                 "to its last, answer included; the host's work (Envoy copying headers and bodies, logging) "
                 "is not in it. Unlike the times above, these counts do not move with the machine or its "
                 "load: they show a change in aigate's own cost exactly.\n")
        L.append("| case | body bytes | status | Wasm operators | request headers | request body | answer |")
        L.append("|---|---:|---:|---:|---:|---:|---:|")
        for f in fuel:
            by = f.get("fuel_by_export", {})
            answer = by.get("proxy_on_response_headers", 0) + by.get("proxy_on_response_body", 0)
            L.append(f"| {f['case']} | {f['body_bytes']:,} | {f.get('status')} | {f['fuel']:,} | "
                     f"{by.get('proxy_on_request_headers', 0):,} | {by.get('proxy_on_request_body', 0):,} | {answer:,} |")
        L.append("")

    L.append("## Goals\n")
    L.append(goals(ratios, s, memory, sizes))
    L.append("")
    L.append("## Detail: every measured run\n")
    L.append("| round | body | rung | req/s | Envoy CPU µs/req | requests | non-2xx | errors | CPU0 busy | CPU1 busy |")
    L.append("|---:|---|---|---:|---:|---:|---:|---:|---:|---:|")
    for r in runs:
        L.append(f"| {r.round} | {fmt_size(r.size)} | {r.rung} | {r.rps:,.0f} | {r.cpu_us_per_req:.1f} | "
                 f"{r.requests:,} | {r.non2xx} | {r.errors} | {r.cpu0_busy:.0%} | {r.cpu1_busy:.0%} |")
    L.append("")
    return "\n".join(L)


def goals(ratios: dict, s: dict, memory: dict | None, sizes: list[int]) -> str:
    out = ["| goal | measured | met |", "|---|---|---|"]
    mark = lambda ok: "yes" if ok else "**no**"  # noqa: E731

    def marks(oks: list[bool]) -> str:
        return "yes" if all(oks) else "**partly**" if any(oks) else "**no**"

    r1 = ratios.get(KIB)
    ins = lambda r, k: "" if r[k] != r[k] else f"; instructions {r[k]:.3f}"  # noqa: E731
    # The same ratios for the floor rung: what aigate's host calls alone leave of the goal.
    floor, bare, noop = (s.get(f"{r}@{KIB}") for r in ("floor", "bare", "noop"))

    def host_floor(base: dict | None) -> str:
        if not (floor and base):
            return ""
        by_ins = "" if floor["instr"] != floor["instr"] else f", instructions {base['instr'] / floor['instr']:.3f}"
        return f" (floor, aigate's host calls without its computation: req/s {floor['rps'] / base['rps']:.3f}{by_ins})"

    if r1:
        out.append(f"| aigate (cached token) ≥ 0.90 × bare req/s at 1 KiB | req/s {r1['bare']:.3f}{ins(r1, 'ins_bare')}"
                   f"{host_floor(bare)} | {mark(r1['bare'] >= 0.90)} |")
        out.append(f"| aigate ≥ 0.95 × no-op wasm req/s at 1 KiB | req/s {r1['noop']:.3f}{ins(r1, 'ins_noop')}"
                   f"{host_floor(noop)} | {mark(r1['noop'] >= 0.95)} |")
    nat = [(sz, r["native"], r["ins_native"]) for sz, r in sorted(ratios.items())]
    if nat:
        txt = ", ".join(f"{fmt_size(sz)}: {q:.2f}× req/s" + ("" if i != i else f" ({i:.2f}× by instructions)")
                        for sz, q, i in nat)
        out.append(f"| aigate ≥ native jwt_authn+mcp+rbac (req/s) | {txt} | "
                   f"{marks([q >= 1.0 for _, q, _ in nat])} |")
    per = [(sz, r["extra_vs_noop"]) for sz, r in sorted(ratios.items())]
    if len(per) >= 2:
        (s0, e0), (s1, e1) = per[0], per[-1]
        slope = (e1 - e0) / max(1, s1 - s0)  # µs per byte
        lin = ", ".join(f"{fmt_size(sz)}: {e:.0f} µs" for sz, e in per)
        ins = [(sz, r["instr_vs_noop"]) for sz, r in sorted(ratios.items()) if r["instr_vs_noop"] == r["instr_vs_noop"]]
        if len(ins) >= 2:
            (i0s, i0), (i1s, i1) = ins[0], ins[-1]
            lin += ("; instructions " + ", ".join(f"{fmt_size(sz)}: {v / 1000:,.0f} k" for sz, v in ins)
                    + f" ≈ {(i1 - i0) / max(1, i1s - i0s):.1f} per extra byte")
        out.append(f"| engine cost linear in body size (aigate − noop per request) | CPU {lin}; "
                   f"CPU ≈ {slope * 1024:.2f} µs per extra KiB | see the table |")
    big = ratios.get(1024 * KIB)
    if big:
        out.append(f"| 1 MiB body decided in < 5 ms inside Envoy (aigate − noop CPU/request) | "
                   f"{big['extra_vs_noop'] / 1000:.2f} ms | {mark(big['extra_vs_noop'] < 5000)} |")
    if memory:
        per_req = memory["rss_delta_kib"] * 1024 / max(1, memory["requests"] - memory["baseline_requests"])
        out.append(f"| worker memory flat over {memory['requests']:,} requests | "
                   f"{memory['rss_delta_kib']:+,} KiB ({per_req:.3f} B/request) | "
                   f"{mark(abs(memory['rss_delta_kib']) < 4096)} |")
    return "\n".join(out)


def parse_fuel(path: Path | None) -> list[dict]:
    """The cost example's JSON lines (other lines, such as cargo's, are skipped)."""
    if path is None or not path.exists():
        return []
    out = []
    for line in path.read_text().splitlines():
        if line.startswith("{"):
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError:
                continue
    return out


def parse_criterion(path: Path | None) -> list[dict]:
    if not path or not path.exists():
        return []
    rows, name = [], None
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if "time:" in line:
            head, _, rest = line.partition("time:")
            if head.strip():
                name = head.strip()
            mid = rest.strip().strip("[]").split()
            if "%" in rest:
                continue  # criterion's change against a previous run, not a time
            if name and len(mid) >= 4:
                rows.append({"name": name, "time": f"{mid[2]} {mid[3]}"})
        elif "thrpt:" in line and rows and "%" not in line:
            mid = line.partition("thrpt:")[2].strip().strip("[]").split()
            if len(mid) >= 4:
                rows[-1]["thrpt"] = f"{mid[2]} {mid[3]}"
        elif line and not line.startswith(("Benchmarking", "Found", "Warning", "Gnuplot", "change:",
                                             "No change", "Performance", "Change within")) \
                and "outliers" not in line and not line[0].isdigit() and ":" not in line:
            name = line
    return rows


