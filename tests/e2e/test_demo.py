"""The README's first command runs scripts/demo.py after building: it must keep working and
keep showing what it says it shows (each decision, the audit lines, the metrics, the gate)."""

from __future__ import annotations

import os
import subprocess
import sys

import aigate_e2e as e2e


def test_the_demo_shows_each_decision_it_promises(wasm_module, tmp_path):
    r = subprocess.run(
        [sys.executable, str(e2e.REPO / "scripts" / "demo.py"), "--workdir", str(tmp_path)],
        cwd=e2e.REPO, capture_output=True, text=True, timeout=300, env={**os.environ, "NO_COLOR": "1"},
    )
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    out = r.stdout
    for shown in [
        "the agent is shown: get_order, search_docs, send_email",
        "[1] get_order", "decision=allow",
        "reason=binding_mismatch", "reason=scope_missing", "WWW-Authenticate: Bearer",
        "reason=approval_required", "approval_url", "approver bob", "reason=approval_replayed",
        "reason=data_boundary",
        "PermissionDeniedError", "tool_offer_denied", "the model was offered: get_order\n",
        "answer refused", "tool_calls=None", "message.refusal: aigate: the model's tool call was refused",
        "the MCP server executed: get_order, send_email, search_docs\n",
        "the agent gets: text \"2 documents match 'returns'.\"; resource_link docs://acme/handbook; "
        "text \"aigate: a resource outside the caller's data boundary was withheld\"",
        '"stage": "answer", "decision": "allow", "rule": "tools.search_docs", "tool": "search_docs", '
        '"intent": "docs.read", "impact": "read", "subject": "alice", "workload": "support-agent", '
        '"tenant": "acme", "owner": "knowledge@example.com", "hidden": 1}',
        '"approver": "bob@example.com"', '"refused_offers": ["refund_order"]',
        '"stage": "answer", "decision": "deny", "reason": "binding_mismatch"',
        'aigate_requests_total{protocol="mcp",decision="deny",reason="binding_mismatch"} 1',
        "# aigate readiness: READY",
    ]:
        assert shown in out, f"{shown!r} missing from the demo's output:\n{out[-4000:]}"
    assert "no audit line found" not in out, out
    assert not list(tmp_path.glob("pids")), "the demo stops what it started"
