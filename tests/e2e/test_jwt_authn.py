"""Variant (c): Envoy's jwt_authn verifies the bearer token and puts its payload in dynamic
metadata (payload_in_metadata); aigate (identity.source "jwt_authn") reads it from there."""

from __future__ import annotations

import json

import httpx

import aigate_e2e as e2e
from test_mcp_gateway import (
    assert_audit,
    assert_decision_id,
    assert_http_deny,
    assert_jsonrpc_deny,
    get_order,
)


def test_allowed_call_via_jwt_authn(gateway_jwt_authn, mint, record):
    gw = gateway_jwt_authn
    before = gw.metrics()
    out = e2e.mcp_client_call(gw.url, mint("RS256"), get_order())
    assert out.error is None, f"{out.error!r}; wire: {[(e.rpc_method, e.status, e.body) for e in out.wire.exchanges]}"
    assert [t["name"] for t in record.tools()] == ["get_order"]
    did = assert_decision_id(out.wire.last("tools/call").decision_id)
    assert_audit(gw, did, decision="allow", tool="get_order", subject="alice", tenant="acme", workload="support-agent")
    delta = e2e.metric_delta(before, gw.metrics())
    ok = delta.get(e2e.metric_key("aigate_identity_total", source="jwt_authn", result="ok"), 0)
    assert ok == len(out.wire.exchanges), delta


def test_eddsa_token_via_jwt_authn(gateway_jwt_authn, mint, record):
    out = e2e.mcp_client_call(gateway_jwt_authn.url, mint("EdDSA"), get_order())
    assert out.error is None, out.error
    assert [t["name"] for t in record.tools()] == ["get_order"]


def test_wrong_customer_denied_via_jwt_authn(gateway_jwt_authn, mint, record):
    gw = gateway_jwt_authn
    out = e2e.mcp_client_call(gw.url, mint(customer_id="cust-1"), get_order(customer_id="cust-2"))
    did = assert_jsonrpc_deny(out, "binding_mismatch")
    assert record.tools() == []
    assert_audit(gw, did, decision="deny", reason="binding_mismatch", subject="alice")


def test_out_of_scope_denied_via_jwt_authn(gateway_jwt_authn, mint, record):
    out = e2e.mcp_client_call(
        gateway_jwt_authn.url, mint(scope="orders.read"),
        lambda c: c.call_tool("refund_order", {"customer_id": "cust-1", "order_id": "o-1", "amount": 1}),
    )
    ex = out.wire.last("tools/call")
    assert_http_deny(ex, 403, "scope_missing")
    assert 'scope="orders.refund"' in ex.headers.get("www-authenticate", "")
    assert record.tools() == []


def test_lifetime_checked_on_jwt_authn_payload(gateway_jwt_authn, mint, record):
    """jwt_authn accepts the token; the plugin still applies max_token_lifetime to exp - iat."""
    out = e2e.mcp_client_call(gateway_jwt_authn.url, mint(lifetime=3600), get_order())
    assert out.error is not None
    assert_http_deny(out.wire.exchanges[0], 401, "token_lifetime_exceeded")
    record.assert_nothing_reached(gateway_jwt_authn)


def test_missing_token_answered_by_plugin(gateway_jwt_authn, record):
    body, headers = e2e.tool_call("get_order", {"customer_id": "cust-1", "order_id": "o-1"})
    r = httpx.post(gateway_jwt_authn.url, content=json.dumps(body), headers=headers, timeout=10)
    assert r.status_code == 401, r.text
    assert r.json()["error"]["reason"] == "unauthenticated"
    record.assert_nothing_reached(gateway_jwt_authn)


def test_forged_token_refused_by_jwt_authn(gateway_jwt_authn, rogue_keys, record):
    body, headers = e2e.tool_call("get_order", {"customer_id": "cust-1", "order_id": "o-1"})
    token = e2e.mint(rogue_keys["RS256"])
    r = httpx.post(gateway_jwt_authn.url, content=json.dumps(body),
                   headers={**headers, "authorization": f"Bearer {token}"}, timeout=10)
    assert r.status_code == 401, r.text  # jwt_authn's own reply, before the plugin
    record.assert_nothing_reached(gateway_jwt_authn)


def test_credential_jwt_authn_did_not_verify_never_reaches_upstream(gateway_jwt_authn, mint, rogue_keys, record):
    """jwt_authn verifies a token from the query string and passes over a header in a
    scheme it does not match (`bearer`): that header would reach the upstream, which may
    take it for the caller's credential. aigate refuses such a request."""
    gw = gateway_jwt_authn
    body, headers = e2e.tool_call("get_order", {"customer_id": "cust-1", "order_id": "o-1"})
    alice = mint()
    for header in (f"bearer {e2e.mint(rogue_keys['RS256'], sub='mallory')}", "Basic bWFsbG9yeTpzZWNyZXQ="):
        r = httpx.post(f"{gw.url}?access_token={alice}", content=json.dumps(body),
                       headers={**headers, "authorization": header}, timeout=10)
        assert r.status_code == 401, r.text
        assert r.json()["error"]["reason"] == "token_invalid", r.text
        assert "did not verify" in r.json()["error"]["message"], r.text
    record.assert_nothing_reached(gw)
    # The query token alone is the caller's credential, verified by jwt_authn: allowed
    # (what the server then says of a call outside a session is its own business).
    r = httpx.post(f"{gw.url}?access_token={alice}", content=json.dumps(body), headers=headers, timeout=10)
    assert_audit(gw, assert_decision_id(r.headers.get("x-aigate-decision-id")), decision="allow", subject="alice")
