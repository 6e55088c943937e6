"""Protocol upgrades through a real Envoy (V8, the real aigate.wasm) that accepts them, as
Istio's sidecars accept WebSocket: an upgraded request becomes a tunnel whose messages
aigate cannot judge, so on a route it is refused at its head, in both hold variants, and
nothing of it reaches the MCP server.
"""

from __future__ import annotations

import json

import httpx
import pytest

import aigate_e2e as e2e

WEBSOCKET = {"connection": "Upgrade", "upgrade": "websocket", "sec-websocket-version": "13",
             "sec-websocket-key": "dGhlIHNhbXBsZSBub25jZQ=="}


@pytest.fixture(scope="module", params=["headers", "body"])
def upgrading(request, workdir, keys, approval_key, mcp_server, wasm_module, start_envoy):
    envoy = e2e.Envoy(workdir, request.param, e2e.e2e_policy(keys, approval_key), mcp_server.port,
                      name=f"upgrades-{request.param}", upgrades=("websocket",))
    yield start_envoy(envoy)
    envoy.stop()


def test_an_upgrade_on_a_route_is_refused_before_the_server_sees_it(upgrading, mcp_server, mint):
    token = mint()
    body, headers = e2e.tool_call("get_order", {"customer_id": "cust-1", "order_id": "o-1"})
    auth = {"authorization": f"Bearer {token}"}
    mark = mcp_server.record.mark()
    for method, content, extra in (
        ("GET", None, {"accept": "text/event-stream"}),
        ("POST", json.dumps(body).encode(), headers),
    ):
        r = httpx.request(method, upgrading.url, content=content, headers={**extra, **auth, **WEBSOCKET}, timeout=10)
        assert r.status_code == 400, (method, r.status_code, r.text)
        error = r.json()["error"]
        assert (error["reason"], error["rule"]) == ("body_malformed", "upgrade"), error
        did = r.headers["x-aigate-decision-id"]
        assert upgrading.audit_for(did)["reason"] == "body_malformed"
    assert mcp_server.record.since(mark) == [], "an upgrade reached the MCP server"
    # The same call without the upgrade goes through that Envoy.
    r = httpx.post(upgrading.url, json=body, headers={**headers, **auth}, timeout=10)
    assert r.status_code == 200 and "result" in r.json(), r.text
