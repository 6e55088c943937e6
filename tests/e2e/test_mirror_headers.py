"""MCP's mirror headers (protocol revision 2026-07-28): `Mcp-Method` and `Mcp-Name` repeat
the body's method and target so intermediaries can act without parsing the body. Through
aigate in a real Envoy, in both hold variants: the MCP SDK's requests, which carry them,
still work, `Mcp-Param-*` ones included; a request whose header disagrees with the body is
answered 400 with the JSON-RPC error -32020 (as the MCP server itself answers it) and never
reaches the server.
"""

from __future__ import annotations

import json

import httpx
import pytest

import aigate_e2e as e2e

HEADER_MISMATCH = -32020
ORDER = {"customer_id": "cust-1", "order_id": "o-1"}


class SentHeaders:
    """An httpx2 request hook keeping the headers of every JSON-RPC request the SDK sends."""

    def __init__(self):
        self.requests: list[tuple[str | None, dict]] = []

    async def __call__(self, request) -> None:
        method = None
        try:
            body = json.loads(request.content or b"null")
            method = body.get("method") if isinstance(body, dict) else None
        except ValueError:
            pass
        self.requests.append((method, {k.lower(): v for k, v in request.headers.items()}))

    def last(self, method: str) -> dict:
        found = [h for m, h in self.requests if m == method]
        assert found, f"the SDK sent no {method}: {[m for m, _ in self.requests]}"
        return found[-1]


def test_the_sdk_mirrors_its_calls_and_they_pass(gateway, mint, record):
    sent = SentHeaders()

    async def op(c):
        call = await c.call_tool("get_order", ORDER)
        # Not plain ASCII: the SDK sends this URI as =?base64?…?=, which aigate decodes.
        read = await c.read_resource("docs://acme/café")
        prompt = await c.get_prompt("support_reply", {"order_id": "o-1"})
        return call, read, prompt

    out = e2e.mcp_client_call(gateway.url, mint(), op, on_request=sent)
    assert out.error is None, f"{out.error!r}; wire: {[(e.rpc_method, e.status, e.body) for e in out.wire.exchanges]}"
    call, read, prompt = out.result
    assert call.is_error is False and "shipped" in call.content[0].text
    assert "café" in read.contents[0].text
    assert "o-1" in prompt.messages[0].content.text

    # The SDK did mirror them (2026-07-28), so aigate compared them with the bodies.
    assert sent.last("tools/call").get("mcp-method") == "tools/call"
    assert sent.last("tools/call").get("mcp-name") == "get_order"
    read_headers = sent.last("resources/read")
    assert read_headers.get("mcp-method") == "resources/read"
    assert read_headers.get("mcp-name", "").startswith("=?base64?"), read_headers
    assert sent.last("prompts/get").get("mcp-name") == "support_reply"
    for method, headers in sent.requests:
        if method is not None:
            assert headers.get("mcp-method") == method, (method, headers)

    assert [(t["name"], t["arguments"]) for t in record.tools()] == [("get_order", ORDER)]
    assert [r["uri"] for r in record.resources()] == ["docs://acme/café"]
    assert [p["name"] for p in record.prompts()] == ["support_reply"]
    for method in ("tools/call", "resources/read", "prompts/get"):
        assert out.wire.last(method).status == 200, method


def test_a_mcp_name_that_disagrees_with_the_body_never_reaches_the_server(gateway, mint, record, mcp_server):
    before = gateway.metrics()
    body, headers = e2e.tool_call("get_order", ORDER, rpc_id="m-1")
    # A router keyed on Mcp-Name would take this for a send_email; the body is a get_order.
    headers = {**headers, "mcp-name": "send_email"}
    r = httpx.post(gateway.url, json=body, headers={**headers, "authorization": f"Bearer {mint()}"}, timeout=15)

    assert r.status_code == 400, r.text
    assert r.headers.get("content-type", "").startswith("application/json"), r.headers
    did = r.headers.get("x-aigate-decision-id")
    reply = r.json()
    assert reply["jsonrpc"] == "2.0" and reply["id"] == "m-1", reply
    assert reply["error"]["code"] == HEADER_MISMATCH, reply
    assert reply["error"]["data"] == {"reason": "body_malformed", "rule": "mcp.mirror", "decision_id": did}, reply
    assert "Mcp-Name" in reply["error"]["message"] and '"get_order"' in reply["error"]["message"], reply

    record.assert_nothing_reached(gateway)
    audit = gateway.audit_for(did)
    assert (audit["decision"], audit["reason"], audit["rule"], audit["method"]) == (
        "deny", "body_malformed", "mcp.mirror", "tools/call"), audit
    delta = e2e.metric_delta(before, gateway.metrics())
    key = e2e.metric_key("aigate_requests_total", protocol="mcp", decision="deny", reason="body_malformed")
    assert delta.get(key) == 1, delta

    # The MCP server, asked directly, refuses the same request the same way: aigate's
    # answer is the one the client would have had from it.
    direct = httpx.post(mcp_server.url, json=body, headers=headers, timeout=15)
    assert direct.status_code == 400, direct.text
    assert direct.json()["id"] == "m-1" and direct.json()["error"]["code"] == HEADER_MISMATCH, direct.text


def test_the_sdk_surfaces_the_refusal_to_the_agent(gateway, mint, record):
    """A client whose own header disagrees (rewritten on its way out here) gets an MCP error
    carrying aigate's reason, not a transport failure."""

    async def rewrite(request) -> None:
        if request.headers.get("mcp-name") == "get_order":
            request.headers["mcp-name"] = "refund_order"

    out = e2e.mcp_client_call(gateway.url, mint(), lambda c: c.call_tool("get_order", ORDER), on_request=rewrite)
    assert out.error is not None, out.result
    assert getattr(out.error, "code", None) == HEADER_MISMATCH, repr(out.error)
    assert out.error.data["reason"] == "body_malformed" and out.error.data["rule"] == "mcp.mirror", out.error.data
    assert out.wire.last("tools/call").status == 400
    assert record.tools() == []
    calls = [e for e in e2e.reached(record.new()) if e["kind"] == "http" and "tools/call" in e["rpc_methods"]]
    assert calls == [], calls


TRACK = {"customer_id": "cust-1", "order_id": "o-1", "region": "eu-west"}


@pytest.fixture(scope="module")
def declared(workdir, keys, approval_key, mcp_server, wasm_module, start_envoy):
    """A gateway whose catalogue repeats track_order's x-mcp-header declaration."""
    policy = e2e.e2e_policy(keys, approval_key)
    policy["tools"]["track_order"] = {
        "intent": "orders.read", "impact": "read", "owner": "logistics@example.com",
        "bind": {"/customer_id": "customer_id"},
        "param_headers": {"Region": "/region"},
    }
    envoy = e2e.Envoy(workdir, "headers", policy, mcp_server.port, name="mirror-declared")
    yield start_envoy(envoy)
    envoy.stop()


def test_the_sdk_mirrors_a_declared_argument_and_it_passes(declared, mint, record):
    sent = SentHeaders()

    async def op(c):
        # The SDK learns which arguments to mirror from the tool's schema in the listing.
        await c.list_tools()
        return await c.call_tool("track_order", TRACK)

    out = e2e.mcp_client_call(declared.url, mint(), op, on_request=sent)
    assert out.error is None, f"{out.error!r}; wire: {[(e.rpc_method, e.status, e.body) for e in out.wire.exchanges]}"
    assert out.result.is_error is False and "in transit" in out.result.content[0].text
    assert sent.last("tools/call").get("mcp-param-region") == "eu-west"
    assert [(t["name"], t["arguments"]) for t in record.tools()] == [("track_order", TRACK)]


def test_a_declared_argument_header_of_another_value_never_reaches_the_server(declared, mint, record, mcp_server):
    body, headers = e2e.tool_call("track_order", TRACK, rpc_id="p-1")
    # A router keyed on Mcp-Param-Region would send this to the warehouse of "cust-1"; the
    # value is one of the call's arguments, but not the one the header mirrors.
    headers = {**headers, "mcp-param-region": "cust-1"}
    r = httpx.post(declared.url, json=body, headers={**headers, "authorization": f"Bearer {mint()}"}, timeout=15)

    assert r.status_code == 400, r.text
    reply = r.json()
    assert reply["id"] == "p-1" and reply["error"]["code"] == HEADER_MISMATCH, reply
    assert reply["error"]["data"]["rule"] == "mcp.mirror", reply
    assert '"mcp-param-region" does not match argument "/region"' in reply["error"]["message"], reply
    record.assert_nothing_reached(declared)
    audit = declared.audit_for(r.headers["x-aigate-decision-id"])
    assert (audit["decision"], audit["reason"], audit["rule"]) == ("deny", "body_malformed", "mcp.mirror"), audit

    # The server, asked directly, refuses it the same way.
    direct = httpx.post(mcp_server.url, json=body, headers=headers, timeout=15)
    assert direct.status_code == 400, direct.text
    assert direct.json()["error"]["code"] == HEADER_MISMATCH, direct.text
