"""Sampling with tools (MCP 2025-11-25) through a real Envoy (V8, the real aigate.wasm): the
order desk's ask_assistant (tests/e2e/mcp_server.py --sampling) asks the client's model for
a completion, offering it get_order and refund_order, and runs the tool the model picks.
The model is the caller's agent, and what the server runs for it is the caller's action:
aigate shows the model only the tools the caller may call, and judges each tool the model
calls as the caller's own `tools/call` before the server sees it.

Two transports: the MCP SDK client of protocol revision 2026-07-28 (the sampling request
comes back as an `input_required` result, the client retries the call with the model's
answer in `inputResponses`), and a 2025-11-25 session (the sampling request rides the
event stream of the POST, the client posts its JSON-RPC response).
"""

from __future__ import annotations

import json

import httpx
import mcp_types as t
import pytest

import aigate_e2e as e2e
from test_mcp_gateway import assert_audit, assert_jsonrpc_deny

MINE = {"customer_id": "cust-1", "order_id": "o-1"}
THEIRS = {"customer_id": "cust-2", "order_id": "o-9"}
REFUND = {"customer_id": "cust-1", "order_id": "o-1", "amount": 5}
QUESTION = {"question": "Where is my order?"}


def sampling_policy(keys, approval_key) -> dict:
    policy = e2e.e2e_policy(keys, approval_key)
    policy["tools"]["ask_assistant"] = {"intent": "orders.read", "impact": "read", "owner": "support@example.com"}
    return policy


@pytest.fixture(scope="module")
def desk(workdir, keys, approval_key, wasm_module, start_envoy):
    """(Envoy, server) pairs: the server answering JSON (2026-07-28 clients) and the one
    answering event streams (2025-11-25 sessions), each behind its own Envoy."""
    started = []
    try:
        pairs = {}
        for sse in (False, True):
            server = e2e.SamplingMcpServer(workdir, sse=sse).start()
            started.append(server)
            name = "sampling-sse" if sse else "sampling"
            envoy = start_envoy(e2e.Envoy(workdir, "headers", sampling_policy(keys, approval_key), server.port, name=name))
            started.append(envoy)
            pairs[sse] = (envoy, server)
        yield pairs
    finally:
        for process in reversed(started):
            process.stop()


def model(offered: list, name: str, arguments: dict):
    """The agent's model: notes the tools it is offered and calls `name` with `arguments`."""

    async def sampling(ctx, params):
        offered.append(sorted(tool.name for tool in params.tools or []))
        return t.CreateMessageResultWithTools(
            role="assistant", model="agent-model", stop_reason="toolUse",
            content=[t.ToolUseContent(type="tool_use", id="tu1", name=name, input=arguments)])

    return sampling


def ask(gw: e2e.Envoy, token: str, offered: list, name: str, arguments: dict) -> e2e.Outcome:
    return e2e.mcp_client_call(
        gw.url, token, lambda c: c.call_tool("ask_assistant", QUESTION),
        sampling_callback=model(offered, name, arguments),
        sampling_capabilities=t.SamplingCapability(tools=t.SamplingToolsCapability()))


def ran_for_the_model(server: e2e.McpServer, mark: int) -> list:
    return [(e["name"], e["arguments"]) for e in server.record.since(mark) if e.get("via") == "sampling"]


def test_the_model_is_offered_and_runs_only_what_the_caller_may_call(desk, mint):
    gw, server = desk[False]
    token = mint()  # alice: orders.read docs.read email.send, customer cust-1
    offered: list = []
    mark = server.record.mark()
    out = ask(gw, token, offered, "get_order", MINE)
    assert out.error is None, out.error
    assert json.loads(out.result.content[0].text) == {"ran": [{"tool": "get_order", "arguments": MINE}]}
    # refund_order needs orders.refund: the model never hears of it.
    assert offered == [["get_order"]], offered
    assert ran_for_the_model(server, mark) == [("get_order", MINE)]
    retried = out.wire.last("tools/call")
    rec = assert_audit(gw, retried.decision_id, decision="allow", method="tools/call")
    # The audit line names both actions: the call, and the tool the model had the server run.
    assert [(c["tool"], c["allowed"]) for c in rec["calls"]] == [("ask_assistant", True), ("get_order", True)], rec

    # Another customer's order: the retried call is refused with the binding's reason.
    mark = server.record.mark()
    out = ask(gw, token, [], "get_order", THEIRS)
    did = assert_jsonrpc_deny(out, "binding_mismatch")
    assert_audit(gw, did, decision="deny", reason="binding_mismatch", tool="get_order", method="tools/call")
    assert ran_for_the_model(server, mark) == []

    # A tool outside the caller's scopes, though a model talked into it calls it anyway.
    mark = server.record.mark()
    out = ask(gw, token, [], "refund_order", REFUND)
    refused = out.wire.last("tools/call")
    assert refused.status == 403, (refused.status, refused.body)
    assert 'scope="orders.refund"' in refused.headers.get("www-authenticate", ""), refused.headers
    assert_audit(gw, refused.decision_id, decision="deny", reason="scope_missing", tool="refund_order")
    assert ran_for_the_model(server, mark) == []


def session_call(gw: e2e.Envoy, token: str, name: str, arguments: dict) -> tuple[list, httpx.Response, dict | None]:
    """A 2025-11-25 session calling ask_assistant: the tools the sampling request on the
    stream offers, the answer to the client's posted response, and the call's final
    message (None when the server never got the model's answer)."""
    version = "2025-11-25"
    headers = {"authorization": f"Bearer {token}", "accept": "application/json, text/event-stream",
               "content-type": "application/json", "mcp-protocol-version": version}
    with httpx.Client(timeout=15) as client:
        init = {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
            "protocolVersion": version, "clientInfo": {"name": "e2e", "version": "0"},
            "capabilities": {"sampling": {"tools": {}}}}}
        r = client.post(gw.url, json=init, headers=headers)
        assert r.status_code == 200, r.text
        headers["mcp-session-id"] = r.headers["mcp-session-id"]
        r = client.post(gw.url, json={"jsonrpc": "2.0", "method": "notifications/initialized"}, headers=headers)
        assert r.status_code == 202, r.text
        call = {"jsonrpc": "2.0", "id": 2, "method": "tools/call",
                "params": {"name": "ask_assistant", "arguments": QUESTION}}
        offered, posted = [], None
        with client.stream("POST", gw.url, json=call, headers=headers) as stream:
            for line in stream.iter_lines():
                if not line.startswith("data:"):
                    continue
                message = json.loads(line[5:])
                if message.get("method") == "sampling/createMessage":
                    offered = sorted(tool["name"] for tool in message["params"].get("tools", []))
                    answer = {"jsonrpc": "2.0", "id": message["id"], "result": {
                        "role": "assistant", "model": "agent-model", "stopReason": "toolUse",
                        "content": [{"type": "tool_use", "id": "tu1", "name": name, "input": arguments}]}}
                    posted = client.post(gw.url, json=answer, headers=headers)
                    if posted.status_code != 202:
                        return offered, posted, None  # the server waits for an answer that never comes
                elif "result" in message or "error" in message:
                    return offered, posted, message
    raise AssertionError("the call's stream ended without its answer")


def test_a_sessions_posted_answer_is_judged_before_the_server_runs_its_tools(desk, mint):
    gw, server = desk[True]
    token = mint()
    mark = server.record.mark()
    offered, posted, final = session_call(gw, token, "get_order", MINE)
    assert offered == ["get_order"], offered
    assert posted.status_code == 202, posted.text
    assert json.loads(final["result"]["content"][0]["text"]) == {"ran": [{"tool": "get_order", "arguments": MINE}]}
    assert ran_for_the_model(server, mark) == [("get_order", MINE)]

    mark = server.record.mark()
    offered, posted, final = session_call(gw, token, "get_order", THEIRS)
    assert final is None
    body = posted.json()
    # A JSON-RPC error naming the reason, echoing the id of the answer it refuses.
    assert posted.status_code == 200 and body["error"]["data"]["reason"] == "binding_mismatch", body
    did = posted.headers["x-aigate-decision-id"]
    assert body["error"]["data"]["decision_id"] == did
    assert_audit(gw, did, decision="deny", reason="binding_mismatch", tool="get_order", method=None)
    assert ran_for_the_model(server, mark) == []
