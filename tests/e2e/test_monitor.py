"""`mode: monitor` in a real Envoy: the shadow roll-out a team runs before enforcing. Every
request is decided, audited and counted as it would be, and nothing is blocked: what
enforcement would deny reaches the server, recorded as `would_deny`.
"""

from __future__ import annotations

import pytest

import aigate_e2e as e2e
from test_mcp_gateway import assert_audit, assert_decision_id


@pytest.fixture(scope="module")
def shadow(workdir, keys, approval_key, mcp_server, wasm_module, start_envoy):
    policy = e2e.e2e_policy(keys, approval_key)
    policy["mode"] = "monitor"
    envoy = e2e.Envoy(workdir, "headers", policy, mcp_server.port, name="monitor")
    yield start_envoy(envoy)
    envoy.stop()


def test_monitor_mode_decides_and_counts_but_never_blocks(shadow, mint, record):
    before = shadow.metrics()
    refund = {"customer_id": "cust-1", "order_id": "o-1", "amount": 10}
    # Out of scope (enforce: 403 scope_missing) and for another customer (enforce:
    # binding_mismatch): both reach the server and succeed.
    out = e2e.mcp_client_call(shadow.url, mint(scope="orders.read"), lambda c: c.call_tool("refund_order", refund))
    assert out.error is None and not out.result.is_error, out.error or out.result
    scope_id = assert_decision_id(out.wire.last("tools/call").decision_id)
    theirs = {"customer_id": "cust-2", "order_id": "o-9"}
    out = e2e.mcp_client_call(shadow.url, mint(), lambda c: c.call_tool("get_order", theirs))
    assert out.error is None and not out.result.is_error, out.error or out.result
    binding_id = assert_decision_id(out.wire.last("tools/call").decision_id)
    assert [(t["name"], t["arguments"]["customer_id"]) for t in record.tools()] == [
        ("refund_order", "cust-1"), ("get_order", "cust-2")]

    assert_audit(shadow, scope_id, decision="would_deny", reason="scope_missing", mode="monitor", tool="refund_order")
    assert_audit(shadow, binding_id, decision="would_deny", reason="binding_mismatch", mode="monitor")
    grew = e2e.metric_delta(before, shadow.metrics())
    for reason in ("scope_missing", "binding_mismatch"):
        key = e2e.metric_key("aigate_requests_total", protocol="mcp", decision="would_deny", reason=reason)
        assert grew.get(key) == 1, (reason, grew)
    assert not any(k[0] == "aigate_requests_total" and ("decision", "deny") in k[1] for k in grew), grew


def test_the_policy_load_is_counted(shadow):
    loads = shadow.metrics()
    ok = loads.get(e2e.metric_key("aigate_config_loads_total", result="ok"), 0)
    # The configuration check on the main thread, the main thread's VM, the worker's VM.
    assert ok >= 1, loads
    assert loads.get(e2e.metric_key("aigate_config_loads_total", result="error"), 0) == 0, loads
