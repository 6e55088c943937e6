"""aigate in a real Envoy (V8) in front of a real MCP server, driven by the MCP Python SDK
client and by plain HTTP. Every test runs in both hold variants: (a) `headers` and (b) `body`.

Each denial is checked on three sides: what the client got (status, reason, decision id),
what the server recorded (nothing), and what the gateway recorded (audit line, metrics).
"""

from __future__ import annotations

import gzip
import json
import re
import socket
import subprocess
import time

import httpx
import pytest
from mcp.shared.exceptions import MCPError

import aigate_e2e as e2e

HEX32 = re.compile(r"^[0-9a-f]{32}$")
JSONRPC_POLICY_ERROR = -32001


# --------------------------------------------------------------------------- helpers


def get_order(customer_id="cust-1", order_id="o-1"):
    return lambda c: c.call_tool("get_order", {"customer_id": customer_id, "order_id": order_id})


def assert_decision_id(value) -> str:
    assert isinstance(value, str) and HEX32.match(value), f"x-aigate-decision-id {value!r}"
    return value


def assert_http_deny(ex: e2e.Exchange, status: int, reason: str) -> str:
    """A non-JSON-RPC local reply: status, {"error":{reason,message,rule,decision_id}}."""
    assert ex.status == status, f"expected {status} {reason}, got {ex.status} {ex.body}"
    did = assert_decision_id(ex.decision_id)
    assert isinstance(ex.body, dict) and isinstance(ex.body.get("error"), dict), ex.body
    err = ex.body["error"]
    assert err.get("reason") == reason, ex.body
    assert err.get("decision_id") == did, ex.body
    assert isinstance(err.get("message"), str) and err["message"], ex.body
    assert "rule" in err, ex.body
    return did


def assert_jsonrpc_deny(out: e2e.Outcome, reason: str, rpc_method: str = "tools/call") -> str:
    """A policy denial of a well-formed call: HTTP 200, JSON-RPC error echoing the id, which
    the SDK raises as MCPError carrying the reason for the agent."""
    ex = out.wire.last(rpc_method)
    assert ex.status == 200, f"expected 200 JSON-RPC error {reason}, got {ex.status} {ex.body}"
    assert ex.headers.get("content-type", "").startswith("application/json"), ex.headers
    did = assert_decision_id(ex.decision_id)
    assert isinstance(out.error, MCPError), f"expected MCPError({reason}), got {out.error!r} / {out.result!r}"
    assert out.error.code == JSONRPC_POLICY_ERROR, (out.error.code, out.error.message)
    data = out.error.data
    assert isinstance(data, dict), data
    assert data.get("reason") == reason, data
    assert data.get("decision_id") == did, data
    assert "rule" in data, data
    body = ex.body
    assert body.get("jsonrpc") == "2.0" and "error" in body and "id" in body, body
    return did


def assert_audit(gateway: e2e.Envoy, decision_id: str, **fields) -> dict:
    rec = gateway.audit_for(decision_id)
    for k, v in fields.items():
        assert rec.get(k) == v, f"audit {k}={rec.get(k)!r}, expected {v!r}: {rec}"
    return rec


def post(gateway: e2e.Envoy, body, headers: dict, *, content: bytes | None = None) -> httpx.Response:
    data = content if content is not None else json.dumps(body).encode()
    return httpx.post(gateway.url, content=data, headers=headers, timeout=15)


def deny_body(r: httpx.Response) -> dict:
    assert r.headers.get("content-type", "").startswith("application/json"), (r.status_code, r.headers, r.text[:300])
    return r.json()


# --------------------------------------------------------------------------- allowed


@pytest.mark.parametrize("alg", ["RS256", "EdDSA", "ES256", "HS256"])
def test_allowed_get_order_reaches_server(gateway, mint, record, alg):
    out = e2e.mcp_client_call(gateway.url, mint(alg), get_order())
    assert out.error is None, f"{out.error!r}; wire: {[(e.rpc_method, e.status, e.body) for e in out.wire.exchanges]}"
    assert out.result.is_error is False
    assert "shipped" in out.result.content[0].text

    ex = out.wire.last("tools/call")
    assert ex.status == 200
    did = assert_decision_id(ex.decision_id)

    tools = record.tools()
    assert [(t["name"], t["arguments"]) for t in tools] == [("get_order", {"customer_id": "cust-1", "order_id": "o-1"})]
    # Allowed requests carry the decision id upstream too.
    calls = [e for e in record.new() if e["kind"] == "http" and e["rpc_methods"] == ["tools/call"]]
    assert [c["decision_id"] for c in calls] == [did]
    # The caller's token stays at the gateway: a server holding it could replay it there.
    assert not any(e["authorization"] for e in record.new() if e["kind"] == "http"), "token forwarded"

    rec = assert_audit(
        gateway, did,
        decision="allow", protocol="mcp", method="tools/call", tool="get_order",
        intent="orders.read", impact="read", subject="alice", tenant="acme",
        workload="support-agent", owner="orders-team@example.com", mode="enforce",
    )
    assert re.match(r"^[0-9a-f]{64}$", rec.get("policy_hash", "")), rec


def test_audit_names_the_policy_hash_the_release_gate_reports(gateway, mint, tmp_path):
    """The policy Envoy loaded (rendered into its YAML) and the same policy written another
    way (indented, keys sorted) for `aigate check` carry one hash."""
    out = e2e.mcp_client_call(gateway.url, mint(), get_order())
    assert out.error is None, out.error
    did = out.wire.exchanges[-1].decision_id
    policy_file = tmp_path / "policy.json"
    loaded = e2e.envoy_config.policy_for_variant(gateway.variant, gateway.policy)
    policy_file.write_text(json.dumps(loaded, indent=4, sort_keys=True))
    check = subprocess.run([str(e2e.REPO / "target" / "release" / "aigate"), "check", str(policy_file)],
                           capture_output=True, text=True, timeout=30)
    assert check.returncode == 0, check.stderr
    reported = re.search(r"sha256:([0-9a-f]{64})", check.stdout).group(1)
    assert gateway.audit_for(did)["policy_hash"] == reported


def test_every_response_carries_a_decision_id(gateway, mint):
    out = e2e.mcp_client_call(gateway.url, mint(), lambda c: c.list_tools())
    assert out.error is None, out.error
    assert out.wire.exchanges
    for ex in out.wire.exchanges:
        assert_decision_id(ex.decision_id)


def test_lists_show_the_agent_only_what_it_may_use(gateway, mint):
    """The server offers four tools, two documents of two tenants, a template and two
    prompts; alice (tenant acme, scopes orders.read docs.read email.send) sees hers."""
    async def everything(c):
        return (await c.list_tools(), await c.list_resources(), await c.list_resource_templates(),
                await c.list_prompts())

    out = e2e.mcp_client_call(gateway.url, mint(), everything)
    assert out.error is None, out.error
    tools, resources, templates, prompts = out.result
    assert sorted(t.name for t in tools.tools) == ["get_order", "search_docs", "send_email"]
    assert [str(r.uri) for r in resources.resources] == ["docs://acme/handbook"]
    # docs://{tenant}/{name} could name any tenant's documents: not shown.
    assert templates.resource_templates == []
    assert [p.name for p in prompts.prompts] == ["support_reply"]
    # Each list answer's audit line says how many items the agent was not shown.
    ids = {ex.decision_id for ex in out.wire.exchanges}
    # (The four lists' answers: initialize's has a line too, and a client that also opened
    # a GET stream gets its own.)
    lists = {"tools/list", "resources/list", "resources/templates/list", "prompts/list"}
    hidden = sorted(a.get("hidden", 0) for a in gateway.audit_lines_until(
        lambda a: a.get("stage") == "answer" and a["decision_id"] in ids and a.get("method") in lists,
        count=4))
    # Tools: refund_order (out of scope) and track_order (not in the catalogue).
    assert hidden == [1, 1, 1, 2], hidden
    # The server declares its tool list the same for every caller, cacheable for a
    # minute; what the agent got is its own view, so a shared cache must not serve it.
    answer = out.wire.last("tools/list").body
    assert answer["result"]["ttlMs"] == 60_000, answer
    assert answer["result"]["cacheScope"] == "private", answer
    assert tools.cache_scope == "private"

    # With orders.refund in the token, refund_order is listed too.
    out = e2e.mcp_client_call(gateway.url, mint(scope="orders.read orders.refund"), lambda c: c.list_tools())
    assert sorted(t.name for t in out.result.tools) == ["get_order", "refund_order"]


# --------------------------------------------------------------------------- identity


def test_missing_token_is_401_without_error(gateway, record):
    body, headers = e2e.tool_call("get_order", {"customer_id": "cust-1", "order_id": "o-1"})
    r = post(gateway, body, headers)
    assert r.status_code == 401, r.text
    challenge = r.headers.get("www-authenticate", "")
    assert challenge.startswith("Bearer"), challenge
    assert "error=" not in challenge, challenge
    assert deny_body(r)["error"]["reason"] == "unauthenticated"
    record.assert_nothing_reached(gateway)


def test_expired_token_401(gateway, mint, record):
    token = mint(lifetime=300, iat_offset=-1000)  # expired 700 s ago, skew is 30 s
    out = e2e.mcp_client_call(gateway.url, token, get_order())
    assert out.error is not None and out.result is None
    first = out.wire.exchanges[0]
    did = assert_http_deny(first, 401, "token_expired")
    challenge = first.headers.get("www-authenticate", "")
    assert challenge.startswith("Bearer") and 'error="invalid_token"' in challenge, challenge
    for ex in out.wire.exchanges:  # the SDK may retry with the legacy handshake: all refused
        assert ex.status == 401
    record.assert_nothing_reached(gateway)
    assert_audit(gateway, did, decision="deny", reason="token_expired")


def test_token_lifetime_exceeded_401(gateway, mint, record):
    token = mint(lifetime=3600)  # policy max_token_lifetime_seconds is 900
    out = e2e.mcp_client_call(gateway.url, token, get_order())
    assert out.error is not None
    did = assert_http_deny(out.wire.exchanges[0], 401, "token_lifetime_exceeded")
    assert 'error="invalid_token"' in out.wire.exchanges[0].headers.get("www-authenticate", "")
    record.assert_nothing_reached(gateway)
    assert_audit(gateway, did, decision="deny", reason="token_lifetime_exceeded")


def test_forged_signature_401(gateway, rogue_keys, record):
    token = e2e.mint(rogue_keys["RS256"])  # same kid, wrong key
    body, headers = e2e.tool_call("get_order", {"customer_id": "cust-1", "order_id": "o-1"})
    r = post(gateway, body, {**headers, "authorization": f"Bearer {token}"})
    assert r.status_code == 401, r.text
    assert deny_body(r)["error"]["reason"] == "token_invalid"
    record.assert_nothing_reached(gateway)


# --------------------------------------------------------------------------- actions


def test_out_of_scope_call_is_403_insufficient_scope(gateway, mint, record):
    token = mint(scope="orders.read")  # refund_order needs orders.refund
    out = e2e.mcp_client_call(
        gateway.url, token, lambda c: c.call_tool("refund_order", {"customer_id": "cust-1", "order_id": "o-1", "amount": 10})
    )
    assert out.error is not None, out.result
    ex = out.wire.last("tools/call")
    did = assert_http_deny(ex, 403, "scope_missing")
    challenge = ex.headers.get("www-authenticate", "")
    assert challenge.startswith("Bearer") and 'error="insufficient_scope"' in challenge, challenge
    assert 'scope="orders.refund"' in challenge, challenge
    assert record.tools() == []
    _assert_call_not_forwarded(gateway, record)
    assert_audit(gateway, did, decision="deny", reason="scope_missing", tool="refund_order", intent="orders.refund")


def _assert_call_not_forwarded(gateway, record):
    """Earlier requests of the same SDK session (server/discover) were allowed and forwarded;
    the denied tools/call must not have been."""
    calls = [e for e in record.new() if e["kind"] == "http" and "tools/call" in e["rpc_methods"]]
    assert calls == [], calls
    assert record.tools() == [] and record.resources() == []
    if gateway.variant != "body":
        partial = [e for e in record.new() if e["kind"] == "http" and not e.get("complete")]
        assert partial == [], partial


def test_one_denied_call_denies_the_whole_batch(gateway, mint, record):
    mine, headers = e2e.tool_call("get_order", {"customer_id": "cust-1", "order_id": "o-1"}, rpc_id=1)
    theirs, _ = e2e.tool_call("get_order", {"customer_id": "cust-2", "order_id": "o-9"}, rpc_id="b")
    r = post(gateway, [mine, theirs], {**headers, "authorization": f"Bearer {mint()}"})
    assert r.status_code == 200, r.text
    replies = deny_body(r)
    assert [m["id"] for m in replies] == [1, "b"], replies
    assert all(m["error"]["code"] == JSONRPC_POLICY_ERROR for m in replies), replies
    assert {m["error"]["data"]["reason"] for m in replies} == {"binding_mismatch"}, replies
    record.assert_nothing_reached(gateway)
    rec = assert_audit(gateway, r.headers["x-aigate-decision-id"], decision="deny", reason="binding_mismatch")
    assert [(c["tool"], c["allowed"]) for c in rec["calls"]] == [("get_order", True), ("get_order", False)], rec


def test_wrong_customer_is_binding_mismatch(gateway, mint, record):
    out = e2e.mcp_client_call(gateway.url, mint(customer_id="cust-1"), get_order(customer_id="cust-2"))
    did = assert_jsonrpc_deny(out, "binding_mismatch")
    _assert_call_not_forwarded(gateway, record)
    assert_audit(gateway, did, decision="deny", reason="binding_mismatch", tool="get_order", subject="alice")


def test_unknown_tool_is_denied(gateway, mint, record):
    body, headers = e2e.tool_call("delete_all_orders", {"customer_id": "cust-1"}, rpc_id=7)
    r = post(gateway, body, {**headers, "authorization": f"Bearer {mint()}"})
    assert r.status_code == 200, r.text
    doc = deny_body(r)
    did = assert_decision_id(r.headers.get("x-aigate-decision-id"))
    assert doc["id"] == 7 and doc["error"]["code"] == JSONRPC_POLICY_ERROR, doc
    assert doc["error"]["data"]["reason"] == "tool_unknown" and doc["error"]["data"]["decision_id"] == did, doc
    record.assert_nothing_reached(gateway)
    assert_audit(gateway, did, decision="deny", reason="tool_unknown")


def test_unknown_method_is_denied(gateway, mint, record):
    """A method aigate does not know (a server extension) cannot be judged: refused."""
    body = {"jsonrpc": "2.0", "id": "x-1", "method": "acme/run_sql", "params": {"sql": "DELETE FROM orders"}}
    headers = {"content-type": "application/json", "accept": "application/json, text/event-stream"}
    r = post(gateway, body, {**headers, "authorization": f"Bearer {mint()}"})
    assert r.status_code == 200, r.text
    doc = deny_body(r)
    did = assert_decision_id(r.headers.get("x-aigate-decision-id"))
    assert doc["id"] == "x-1" and doc["error"]["code"] == JSONRPC_POLICY_ERROR, doc
    assert doc["error"]["data"]["reason"] == "tool_unknown", doc
    assert doc["error"]["data"]["rule"] == "routes.support-mcp.unknown_methods", doc
    assert '"acme/run_sql"' in doc["error"]["message"], doc
    record.assert_nothing_reached(gateway)
    assert_audit(gateway, did, decision="deny", reason="tool_unknown", method="acme/run_sql")


def test_unknown_tool_through_sdk(gateway, mint, record):
    out = e2e.mcp_client_call(gateway.url, mint(), lambda c: c.call_tool("delete_all_orders", {"customer_id": "cust-1"}))
    assert_jsonrpc_deny(out, "tool_unknown")
    _assert_call_not_forwarded(gateway, record)


def test_argument_violation(gateway, mint, record):
    token = mint(scope="orders.read orders.refund")
    out = e2e.mcp_client_call(
        gateway.url, token, lambda c: c.call_tool("refund_order", {"customer_id": "cust-1", "order_id": "o-1", "amount": 5000})
    )
    assert_jsonrpc_deny(out, "argument_violation")
    _assert_call_not_forwarded(gateway, record)


def test_refund_within_limits_allowed(gateway, mint, record):
    token = mint(scope="orders.read orders.refund")
    out = e2e.mcp_client_call(
        gateway.url, token, lambda c: c.call_tool("refund_order", {"customer_id": "cust-1", "order_id": "o-1", "amount": 25})
    )
    assert out.error is None, out.error
    assert [t["name"] for t in record.tools()] == ["refund_order"]


# --------------------------------------------------------------------------- approvals

EMAIL = {"to": "carol@example.com", "subject": "Your refund", "body": "secret-body-text-4711"}


def test_send_email_needs_approval(gateway, mint, record):
    out = e2e.mcp_client_call(gateway.url, mint(), lambda c: c.call_tool("send_email", EMAIL))
    did = assert_jsonrpc_deny(out, "approval_required")
    # The client learns what to get approved: the digest of exactly these arguments.
    raw = json.dumps(out.wire.last("tools/call").body)
    assert e2e.args_digest(EMAIL) in raw, raw
    _assert_call_not_forwarded(gateway, record)
    rec = assert_audit(gateway, did, decision="deny", reason="approval_required", tool="send_email", impact="external")
    # No argument values in the audit trail.
    assert "secret-body-text-4711" not in json.dumps(rec)


def test_send_email_with_approval_then_replay(gateway, mint, approval_key, record):
    token = mint()
    grant = e2e.mint_approval(approval_key, sub="alice", tool="send_email", arguments=EMAIL)
    body, headers = e2e.tool_call("send_email", EMAIL)
    headers = {**headers, "authorization": f"Bearer {token}", "x-aigate-approval": grant}

    r = post(gateway, body, headers)
    assert r.status_code == 200, r.text
    assert "error" not in r.json(), r.text
    did = assert_decision_id(r.headers.get("x-aigate-decision-id"))
    assert [t["name"] for t in record.tools()] == ["send_email"]
    assert_audit(gateway, did, decision="allow", tool="send_email", approver="bob@example.com", args_digest=e2e.args_digest(EMAIL))

    again = post(gateway, body, headers)  # the same grant a second time
    assert again.status_code == 200, again.text
    assert again.json()["error"]["data"]["reason"] == "approval_replayed", again.text
    assert [t["name"] for t in record.tools()] == ["send_email"]


def test_approval_for_other_arguments_is_mismatch(gateway, mint, approval_key, record):
    grant = e2e.mint_approval(approval_key, sub="alice", tool="send_email", arguments={**EMAIL, "to": "dave@example.com"})
    body, headers = e2e.tool_call("send_email", EMAIL)
    r = post(gateway, body, {**headers, "authorization": f"Bearer {mint()}", "x-aigate-approval": grant})
    assert r.status_code == 200, r.text
    assert r.json()["error"]["data"]["reason"] == "approval_mismatch", r.text
    record.assert_nothing_reached(gateway)


# --------------------------------------------------------------------------- data boundary


def test_resource_of_own_tenant_allowed(gateway, mint, record):
    out = e2e.mcp_client_call(gateway.url, mint(tenant="acme"), lambda c: c.read_resource("docs://acme/refund-policy"))
    assert out.error is None, out.error
    assert "tenant acme" in out.result.contents[0].text
    assert [r["uri"] for r in record.resources()] == ["docs://acme/refund-policy"]
    did = assert_decision_id(out.wire.last("resources/read").decision_id)
    assert_audit(gateway, did, decision="allow", method="resources/read", tenant="acme")


def test_resource_of_other_tenant_is_data_boundary(gateway, mint, record):
    out = e2e.mcp_client_call(gateway.url, mint(tenant="acme"), lambda c: c.read_resource("docs://globex/secrets"))
    did = assert_jsonrpc_deny(out, "data_boundary", rpc_method="resources/read")
    assert record.resources() == []
    calls = [e for e in record.new() if e["kind"] == "http" and "resources/read" in e["rpc_methods"]]
    assert calls == []
    assert_audit(gateway, did, decision="deny", reason="data_boundary", method="resources/read")
    assert gateway.audit_for(did)["owner"] == "support-platform@example.com", "no data rule matched: the route answers"


def test_a_tool_result_shows_only_resources_inside_the_boundary(gateway, mint, record):
    """search_docs links acme's handbook and embeds globex's price list: alice (acme) gets
    the link; the embedded document is withheld before it reaches her agent."""
    out = e2e.mcp_client_call(gateway.url, mint(tenant="acme"), lambda c: c.call_tool("search_docs", {"query": "returns"}))
    assert out.error is None, out.error
    content = out.result.content
    assert [b.type for b in content] == ["text", "resource_link", "text"], content
    assert str(content[1].uri) == "docs://acme/handbook"
    assert content[2].text == "aigate: a resource outside the caller's data boundary was withheld"
    assert "Globex" not in out.result.model_dump_json()
    # The tool ran (the call was allowed); its answer's audit line counts what was withheld.
    assert [t["name"] for t in record.tools()] == ["search_docs"]
    did = assert_decision_id(out.wire.last("tools/call").decision_id)
    answer = gateway.audit_lines_until(
        lambda a: a.get("stage") == "answer" and a["decision_id"] == did, count=1)[0]
    assert (answer["decision"], answer["hidden"], answer["method"]) == ("allow", 1, "tools/call"), answer

    # globex's caller gets the embedded price list, and not acme's handbook.
    out = e2e.mcp_client_call(gateway.url, mint(tenant="globex"), lambda c: c.call_tool("search_docs", {"query": "x"}))
    assert out.error is None, out.error
    content = out.result.content
    assert [b.type for b in content] == ["text", "text", "resource"], content
    assert content[2].resource.text == "Globex prices."


def test_resource_rule_owner_is_accountable(gateway, mint, record):
    out = e2e.mcp_client_call(gateway.url, mint(tenant="acme", scope="orders.read"),
                              lambda c: c.read_resource("docs://acme/refund-policy"))
    assert out.error is not None, out.result
    ex = out.wire.last("resources/read")
    did = assert_http_deny(ex, 403, "scope_missing")
    assert 'scope="docs.read"' in ex.headers.get("www-authenticate", ""), ex.headers
    assert record.resources() == []
    assert_audit(gateway, did, decision="deny", reason="scope_missing", rule="data.resources.tenant-docs",
                 owner="knowledge@example.com")


def test_listed_prompt_reaches_the_server_and_names_its_owner(gateway, mint, record):
    out = e2e.mcp_client_call(gateway.url, mint(), lambda c: c.get_prompt("support_reply", {"order_id": "o-7"}))
    assert out.error is None, out.error
    assert "order o-7" in out.result.messages[0].content.text
    assert [(p["name"], p["arguments"]) for p in record.prompts()] == [("support_reply", {"order_id": "o-7"})]
    did = assert_decision_id(out.wire.last("prompts/get").decision_id)
    assert_audit(gateway, did, decision="allow", method="prompts/get", prompt="support_reply",
                 rule="data.prompts.support-prompts", owner="knowledge@example.com")


def test_unlisted_prompt_is_data_boundary(gateway, mint, record):
    out = e2e.mcp_client_call(gateway.url, mint(), lambda c: c.get_prompt("admin_console"))
    did = assert_jsonrpc_deny(out, "data_boundary", rpc_method="prompts/get")
    assert record.prompts() == []
    assert [e for e in record.new() if e["kind"] == "http" and "prompts/get" in e["rpc_methods"]] == []
    assert_audit(gateway, did, decision="deny", reason="data_boundary", prompt="admin_console", rule="data.prompts")


# --------------------------------------------------------------------------- bad input


def test_gzip_body_is_415(gateway, mint, record):
    body, headers = e2e.tool_call("get_order", {"customer_id": "cust-1", "order_id": "o-1"})
    r = post(gateway, None, {**headers, "authorization": f"Bearer {mint()}", "content-encoding": "gzip"},
             content=gzip.compress(json.dumps(body).encode()))
    assert r.status_code == 415, r.text
    err = deny_body(r)["error"]
    assert err["reason"] == "encoding_unsupported"
    assert err["decision_id"] == assert_decision_id(r.headers.get("x-aigate-decision-id"))
    record.assert_nothing_reached(gateway)


@pytest.mark.parametrize("content_type", ["application/json; charset=utf-7", "text/plain"])
def test_a_body_not_declared_utf8_json_is_415(gateway, mint, record, content_type):
    """Express's json() decodes a body by its declared charset: in UTF-7, `+ACI-` is a quote,
    so the call aigate would parse is not the one such a server runs. Refused before it is read."""
    hidden = "+ACIAfQAsACIAbgBhAG0AZQAiADoAIgByAGUAZgB1AG4AZABfAG8AcgBkAGUAcgAi-"
    body, headers = e2e.tool_call("get_order", {"customer_id": "cust-1", "order_id": f"o-1{hidden}"})
    r = post(gateway, body, {**headers, "authorization": f"Bearer {mint()}", "content-type": content_type})
    assert r.status_code == 415, r.text
    err = deny_body(r)["error"]
    assert (err["reason"], err["rule"]) == ("encoding_unsupported", "content_type"), err
    record.assert_nothing_reached(gateway)


def test_an_underscored_alias_of_a_header_aigate_reads_is_400(gateway, mint, record):
    body, headers = e2e.tool_call("get_order", {"customer_id": "cust-1", "order_id": "o-1"})
    r = post(gateway, body, {**headers, "authorization": f"Bearer {mint()}", "x_http_method_override": "DELETE"})
    assert r.status_code == 400, r.text
    assert deny_body(r)["error"]["reason"] == "body_malformed"
    record.assert_nothing_reached(gateway)


def test_oversized_body_is_413(gateway, mint, record):
    limit = gateway.policy["limits"]["max_body_bytes"]
    body, headers = e2e.tool_call("get_order", {"customer_id": "cust-1", "order_id": "x" * (limit + 100)})
    r = post(gateway, body, {**headers, "authorization": f"Bearer {mint()}"})
    assert r.status_code == 413, r.text[:300]
    err = deny_body(r)["error"]
    assert err["reason"] == "body_too_large"
    did = assert_decision_id(r.headers.get("x-aigate-decision-id"))
    record.assert_nothing_reached(gateway)
    assert_audit(gateway, did, decision="deny", reason="body_too_large")


def test_far_oversized_body_is_413(gateway, mint, record):
    """Beyond Envoy's buffer limit (policy limit + headroom): still 413, nothing forwarded,
    whether the plugin (Content-Length) or Envoy's buffer limit answers."""
    limit = gateway.policy["limits"]["max_body_bytes"]
    body, headers = e2e.tool_call("get_order", {"customer_id": "cust-1", "order_id": "x" * (4 * limit)})
    r = post(gateway, body, {**headers, "authorization": f"Bearer {mint()}"})
    assert r.status_code == 413, r.text[:300]
    record.assert_nothing_reached(gateway)


def test_duplicate_keys_are_malformed(gateway, mint, record):
    raw = (b'{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"get_order",'
           b'"arguments":{"customer_id":"cust-1","customer_id":"cust-2","order_id":"o-1"}}}')
    _, headers = e2e.tool_call("get_order", {})
    r = post(gateway, None, {**headers, "authorization": f"Bearer {mint()}"}, content=raw)
    assert r.status_code == 400, r.text
    assert deny_body(r)["error"]["reason"] == "body_malformed"
    record.assert_nothing_reached(gateway)


def test_unmatched_route_is_404(gateway, mint, record):
    r = httpx.get(gateway.url.replace("/mcp", "/admin/secrets"), headers={"authorization": f"Bearer {mint()}"}, timeout=10)
    assert r.status_code == 404, r.text
    assert deny_body(r)["error"]["reason"] == "route_unmatched"
    record.assert_nothing_reached(gateway)


@pytest.mark.parametrize("segment", ["%2e%2e;", "..;", "..;jsessionid=1"])
def test_a_parameter_dot_segment_cannot_leave_the_route(gateway, mint, record, segment):
    """Envoy's path normalisation leaves `..;` alone, and Tomcat, Spring or Jetty serve
    `/mcp/..;/admin/export` as `/admin/export`: judging it as the MCP route it names would
    let a notification-shaped body reach another endpoint."""
    body = {"jsonrpc": "2.0", "method": "notifications/initialized", "customer_id": "cust-9", "amount": 100000}
    url = gateway.url + f"/{segment}/admin/export"
    r = httpx.post(url, content=json.dumps(body).encode(), timeout=10,
                   headers={"authorization": f"Bearer {mint()}", "content-type": "application/json"})
    assert r.status_code == 404, (r.status_code, r.text)
    assert deny_body(r)["error"]["reason"] == "route_unmatched"
    record.assert_nothing_reached(gateway)


def test_a_request_abandoned_mid_body_is_recorded(gateway, mint, record):
    """The client sends the head and part of the body, then goes: never judged, but (with
    hold: body its head went upstream carrying a decision id) it is audited and counted."""
    subject = f"abandoner-{time.monotonic_ns()}"
    body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "tools/call",
                       "params": {"name": "refund_order", "arguments": {"customer_id": "cust-9", "amount": 100000}}}).encode()
    url = httpx.URL(gateway.url)
    head = (f"POST {url.path} HTTP/1.1\r\nHost: {url.host}\r\nAuthorization: Bearer {mint(sub=subject)}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n").encode()
    before = gateway.metrics()
    with socket.create_connection((url.host, url.port), timeout=5) as s:
        s.sendall(head + body[:40])
        time.sleep(0.3)
    lines = gateway.audit_lines_until(lambda a: a.get("subject") == subject, count=1)
    assert len(lines) == 1, lines
    rec = lines[0]
    assert (rec["decision"], rec["reason"], rec["rule"], rec["stage"]) == ("deny", "body_malformed", "body", "request"), rec
    delta = e2e.metric_delta(before, gateway.metrics())
    key = e2e.metric_key("aigate_requests_total", protocol="mcp", decision="deny", reason="body_malformed")
    assert delta.get(key) == 1, delta
    # Nothing of the call was acted on.
    assert [e for e in record.new() if "tools/call" in e.get("rpc_methods", [])] == []


# --------------------------------------------------------------------------- metrics, audit


def _send_metric_traffic(gateway, mint) -> tuple[list[str], list[str]]:
    """2 allowed calls, and one each of binding_mismatch, scope_missing, tool_unknown,
    token_expired. Returns the decision ids the client saw and the tokens used."""
    ids = []
    good, narrow, expired = mint(), mint(scope="orders.read"), mint(iat_offset=-1000)
    cases = [
        (good, "get_order", {"customer_id": "cust-1", "order_id": "o-1"}, 200),
        (good, "get_order", {"customer_id": "cust-1", "order_id": "o-2"}, 200),
        (good, "get_order", {"customer_id": "cust-9", "order_id": "o-1"}, 200),  # binding_mismatch
        (narrow, "refund_order", {"customer_id": "cust-1", "order_id": "o-1", "amount": 1}, 403),
        (good, "no_such_tool", {}, 200),
        (expired, "get_order", {"customer_id": "cust-1", "order_id": "o-1"}, 401),
    ]
    for token, tool, args, status in cases:
        body, headers = e2e.tool_call(tool, args)
        r = post(gateway, body, {**headers, "authorization": f"Bearer {token}"})
        assert r.status_code == status, (tool, r.status_code, r.text)
        ids.append(r.headers["x-aigate-decision-id"])
    return ids, [good, narrow, expired]


def test_prometheus_counters_match_traffic(gateway, mint):
    before = gateway.metrics()
    _send_metric_traffic(gateway, mint)
    after = gateway.metrics()
    delta = e2e.metric_delta(before, after)
    k = e2e.metric_key

    requests = {key: v for key, v in delta.items() if key[0] == "aigate_requests_total"}
    assert requests == {
        k("aigate_requests_total", protocol="mcp", decision="allow", reason="none"): 2,
        k("aigate_requests_total", protocol="mcp", decision="deny", reason="binding_mismatch"): 1,
        k("aigate_requests_total", protocol="mcp", decision="deny", reason="scope_missing"): 1,
        k("aigate_requests_total", protocol="mcp", decision="deny", reason="tool_unknown"): 1,
        k("aigate_requests_total", protocol="mcp", decision="deny", reason="token_expired"): 1,
    }, requests

    identity = {key: v for key, v in delta.items() if key[0] == "aigate_identity_total"}
    assert identity == {
        k("aigate_identity_total", source="jwt", result="ok"): 5,
        k("aigate_identity_total", source="jwt", result="token_expired"): 1,
    }, identity

    tools = {key: v for key, v in delta.items() if key[0] == "aigate_tool_calls_total"}
    assert tools.get(k("aigate_tool_calls_total", impact="read", decision="allow")) == 2, tools
    assert tools.get(k("aigate_tool_calls_total", impact="read", decision="deny")) == 1, tools
    assert tools.get(k("aigate_tool_calls_total", impact="write", decision="deny")) == 1, tools

    # Names as Prometheus shows them: the wasmcustom. prefix stripped, labels extracted.
    text = gateway.prometheus()
    assert "# TYPE aigate_requests_total counter" in text
    assert "wasmcustom" not in text and "=.=" not in text
    assert 'aigate_config_loads_total{result="ok"}' in text
    assert 'aigate_config_loads_total{result="error"}' not in text or \
        after.get(k("aigate_config_loads_total", result="error"), 0) == 0


def test_body_size_histogram(gateway, mint):
    key = e2e.metric_key("aigate_request_body_bytes_count")
    before = gateway.metrics().get(key, 0)
    _send_metric_traffic(gateway, mint)
    # Envoy merges histograms at its stats flush (every 5 s): wait for it, bounded.
    deadline = time.monotonic() + 15
    while True:
        text = gateway.prometheus()
        now = e2e.parse_prometheus(text).get(key, 0)
        if now - before >= 5 or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert "# TYPE aigate_request_body_bytes histogram" in text
    assert now - before >= 5, (before, now)
    # Buckets in bytes (the shipped configs' histogram_bucket_settings), not in milliseconds.
    assert 'aigate_request_body_bytes_bucket{le="1024"}' in text, text[-2000:]
    assert 'aigate_request_body_bytes_bucket{le="1048576"}' in text
    assert 'aigate_request_body_bytes_bucket{le="0.5"}' not in text


def test_audit_lines_match_decision_ids(gateway, mint):
    ids, tokens = _send_metric_traffic(gateway, mint)
    expected = ["allow", "allow", "deny", "deny", "deny", "deny"]
    for did, decision in zip(ids, expected):
        rec = assert_audit(gateway, did, decision=decision)
        for field in ("time", "decision_id", "decision", "reason", "rule", "mode", "protocol", "method",
                      "tool", "intent", "impact", "subject", "issuer", "workload", "tenant", "session", "owner",
                      "approver", "args_digest", "policy_hash"):
            assert field in rec, (field, rec)
    audit = gateway.audit()
    for did in ids:
        # One line each: an answer that passed whole is counted, not logged.
        assert sum(1 for a in audit if a.get("decision_id") == did) == 1, did
    # Tokens (or their signatures) never reach the log.
    log = gateway.log.read_text(errors="replace")
    for token in tokens:
        assert token.rsplit(".", 1)[1] not in log


def test_access_log_carries_decision_filter_state(gateway, mint):
    body, headers = e2e.tool_call("get_order", {"customer_id": "cust-9", "order_id": "o-1"})
    r = post(gateway, body, {**headers, "authorization": f"Bearer {mint()}"})
    did = assert_decision_id(r.headers.get("x-aigate-decision-id"))
    deadline = time.monotonic() + 5
    while True:
        lines = [l for l in gateway.access_lines() if f"decision_id={did}" in l]
        if lines or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert len(lines) == 1, gateway.access_lines()[-5:]
    state = json.loads(lines[0].split(" aigate=", 1)[1])
    assert state["decision_id"] == did and state["reason"] == "binding_mismatch", state
