"""aigate in a real Envoy (V8) in front of a stand-in model server, driven by the official
OpenAI and Anthropic Python SDKs: Chat Completions, Responses and Messages, plain and
streaming. Every test runs in both hold variants: (a) `headers` and (b) `body`.

Each denial is checked on three sides: the SDK raises its permission (or authentication)
error carrying aigate's reason and decision id, the model server recorded no body, and the
gateway's audit line names the decision. `strip` routes are checked on the model's side:
the forwarded body lacks the stripped tools and is otherwise what the client sent.
"""

from __future__ import annotations

import json
import re

import anthropic
import httpx
import httpx2
import openai
import pytest

import aigate_e2e as e2e

HEX32 = re.compile(r"^[0-9a-f]{32}$")

CHAT_TOOLS = {
    name: {"type": "function", "function": {"name": name, "description": f"{name} tool",
                                            "parameters": {"type": "object", "properties": {"customer_id": {"type": "string"}}}}}
    for name in ("get_order", "refund_order", "drop_tables")
}
CLAUDE_TOOLS = {
    name: {"name": name, "description": f"{name} tool", "input_schema": {"type": "object", "properties": {}}}
    for name in ("get_order", "refund_order", "drop_tables")
}


# --------------------------------------------------------------------------- fixtures


def llm_policy(keys, approval_key) -> dict:
    """The e2e policy with LLM routes (deny and strip), a model allow-list and data rules."""
    policy = e2e.e2e_policy(keys, approval_key)
    policy["routes"] = [
        {"id": "chat-strip", "prefix": "/strip/v1/chat/completions", "protocol": "openai_chat", "tool_offers": "strip"},
        {"id": "messages-strip", "prefix": "/strip/v1/messages", "protocol": "anthropic_messages", "tool_offers": "strip"},
        {"id": "responses-strip", "prefix": "/strip/v1/responses", "protocol": "openai_responses", "tool_offers": "strip"},
        {"id": "chat", "prefix": "/v1/chat/completions", "protocol": "openai_chat", "owner": "assistants@example.com"},
        {"id": "responses", "prefix": "/v1/responses", "protocol": "openai_responses"},
        {"id": "messages", "prefix": "/v1/messages", "protocol": "anthropic_messages"},
    ]
    policy["models"] = {"allow": ["gpt-4o-mini", "claude-haiku-4*"]}
    policy["scopes"] = {"llm.premium": {"models": ["gpt-4.1"]}}
    policy["workloads"][0]["scopes"].append("llm.premium")
    policy["data"]["vector_stores"] = [{"id": "tenant-kb", "ids": ["vs_{tenant}_kb"], "scope": "docs.read"}]
    policy["data"]["mcp_servers"] = [
        {"id": "crm", "url_prefix": "https://mcp.example.com/{tenant}/", "scope": "orders.read"}
    ]
    policy["data"]["files"] = [{"id": "uploads", "ids": ["{files}"], "scope": "docs.read"}]
    return policy


@pytest.fixture(scope="module", params=["headers", "body"])
def llm(request, workdir, keys, approval_key, model_server, wasm_module, start_envoy):
    envoy = e2e.Envoy(workdir, request.param, llm_policy(keys, approval_key), model_server.port,
                      name=f"llm-{request.param}")
    yield start_envoy(envoy)
    envoy.stop()


@pytest.fixture
def seen(model_server):
    """What reaches the model server during the test."""
    return e2e.Seen(model_server.record)


class Sent:
    """httpx event hook keeping the raw request bodies an SDK sends."""

    def __init__(self):
        self.bodies: list[bytes] = []

    def __call__(self, request) -> None:
        self.bodies.append(request.read())


def base(gw: e2e.Envoy, prefix: str = "") -> str:
    return f"http://127.0.0.1:{gw.listen_port}{prefix}"


def oai(gw, token, prefix="", sent: Sent | None = None) -> openai.OpenAI:
    http = httpx.Client(event_hooks={"request": [sent]}) if sent else None
    return openai.OpenAI(base_url=base(gw, prefix) + "/v1", api_key=token, max_retries=0, timeout=20, http_client=http)


def claude(gw, token, prefix="", sent: Sent | None = None) -> anthropic.Anthropic:
    # The Anthropic SDK runs on httpx2 (the OpenAI SDK on httpx).
    http = httpx2.Client(event_hooks={"request": [sent]}) if sent else None
    return anthropic.Anthropic(base_url=base(gw, prefix), auth_token=token, max_retries=0, timeout=20, http_client=http)


def denied(exc: pytest.ExceptionInfo, reason: str, gw: e2e.Envoy, status: int = 403) -> dict:
    """The SDK error carries aigate's reason and decision id; the audit line agrees."""
    e = exc.value
    assert e.status_code == status, (e.status_code, e.body)
    did = e.response.headers.get("x-aigate-decision-id")
    assert did and HEX32.match(did), e.response.headers
    text = str(e)
    assert reason in text and did in text, text
    assert "aigate:" in text, text
    audit = gw.audit_for(did)
    assert audit["decision"] == "deny" and audit["reason"] == reason, audit
    return audit


def cut(original: bytes, tools: list[dict]) -> bytes:
    """`original` without the JSON text of `tools` and one comma each, as the SDK wrote them."""
    out = original
    for t in tools:
        for seps in ((",", ":"), (", ", ": ")):
            text = json.dumps(t, separators=seps).encode()
            if text in out:
                break
        else:
            raise AssertionError(f"{t} not found in the sent body {original!r}")
        i = out.index(text)
        j = k = i + len(text)
        while out[k:k + 1].isspace():
            k += 1
        if out[k:k + 1] == b",":  # the element takes the comma (and space) after it
            k += 1
            while out[k:k + 1].isspace():
                k += 1
            out = out[:i] + out[k:]
        else:  # the last element takes the comma before it
            m = i - 1
            while out[m:m + 1].isspace():
                m -= 1
            assert out[m:m + 1] == b",", out
            out = out[:m] + out[j:]
    return out


def history_call(name: str, args: dict) -> list[dict]:
    """A conversation whose latest assistant turn called `name` (and got a result)."""
    return [
        {"role": "system", "content": "You are the support assistant of Example Inc."},
        {"role": "user", "content": "Please handle order o-1."},
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "call_1", "type": "function", "function": {"name": name, "arguments": json.dumps(args)}}]},
        {"role": "tool", "tool_call_id": "call_1", "content": "done"},
    ]


# --------------------------------------------------------------------------- allowed


def test_openai_chat_allowed_reaches_the_model(llm, mint, seen):
    sent = Sent()
    messages = [
        {"role": "system", "content": "You are the support assistant of Example Inc."},
        {"role": "user", "content": [{"type": "text", "text": "Where is order o-1?"},
                                     {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}}]},
    ]
    r = oai(llm, mint(), sent=sent).chat.completions.with_raw_response.create(
        model="gpt-4o-mini", messages=messages, tools=[CHAT_TOOLS["get_order"]], temperature=0.1,
        extra_body={"some_future_field": {"kept": True}},
    )
    assert r.parse().choices[0].message.content == "Your order o-1 has shipped."
    did = r.headers["x-aigate-decision-id"]
    got = seen.one()
    assert got["path"] == "/v1/chat/completions"
    assert got["decision_id"] == did
    assert got["body"].encode() == sent.bodies[-1], "an allowed body is forwarded byte for byte"
    audit = llm.audit_for(did)
    assert (audit["decision"], audit["protocol"], audit["model"]) == ("allow", "openai_chat", "gpt-4o-mini")


def test_streaming_is_judged_and_passes(llm, mint, seen):
    token = mint()
    stream = oai(llm, token).chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}], stream=True,
        stream_options={"include_usage": True},
    )
    text = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
    assert text.strip() == "Your order o-1 has shipped."
    events = [e.type for e in oai(llm, token).responses.create(model="gpt-4o-mini", input="hi", stream=True)]
    assert events[-1] == "response.completed"
    with claude(llm, token).messages.stream(model="claude-haiku-4-5", max_tokens=64,
                                                messages=[{"role": "user", "content": "hi"}]) as s:
        assert s.get_final_text() == "Your order o-1 has shipped."
    assert [json.loads(e["body"])["stream"] for e in seen.bodies()] == [True, True, True]


def test_responses_and_messages_allowed_with_data_tools(llm, mint, seen):
    token = mint()
    r = oai(llm, token).responses.create(
        model="gpt-4o-mini", input=[{"role": "user", "content": "What is our refund policy?"}],
        tools=[{"type": "file_search", "vector_store_ids": ["vs_acme_kb"]},
               {"type": "mcp", "server_label": "crm", "server_url": "https://mcp.example.com/acme/mcp",
                "require_approval": "always"}],
    )
    assert r.output_text == "Your order o-1 has shipped."
    m = claude(llm, token).messages.create(
        model="claude-haiku-4-5", max_tokens=64, system="Be brief.",
        tools=[CLAUDE_TOOLS["get_order"]], messages=[{"role": "user", "content": "Where is o-1?"}],
    )
    assert m.content[0].text == "Your order o-1 has shipped."
    assert [e["path"] for e in seen.bodies()] == ["/v1/responses", "/v1/messages"]


# --------------------------------------------------------------------------- denied


def test_model_not_allowed(llm, mint, seen):
    token = mint()
    with pytest.raises(openai.PermissionDeniedError) as exc:
        oai(llm, token).chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "hi"}])
    assert exc.value.code == "model_not_allowed"
    audit = denied(exc, "model_not_allowed", llm)
    assert (audit["protocol"], audit["model"], audit["rule"]) == ("openai_chat", "gpt-4o", "models")
    # Streaming requests are judged before anything is forwarded.
    with pytest.raises(openai.PermissionDeniedError) as exc:
        oai(llm, token).responses.create(model="o3", input="hi", stream=True)
    denied(exc, "model_not_allowed", llm)
    with pytest.raises(anthropic.PermissionDeniedError) as exc:
        claude(llm, token).messages.create(model="claude-opus-4-1", max_tokens=8, stream=True,
                                               messages=[{"role": "user", "content": "hi"}])
    assert exc.value.body["error"]["type"] == "permission_error"
    denied(exc, "model_not_allowed", llm)
    # The premium model needs the named scope in the token (and the ceiling has it).
    r = oai(llm, mint(scope="orders.read llm.premium")).responses.create(model="gpt-4.1", input="hi")
    assert r.output_text
    assert len(seen.bodies()) == 1


def test_tool_offer_denied_names_the_tools(llm, mint, seen):
    token = mint()  # orders.read docs.read email.send: refund_order is out of scope
    with pytest.raises(openai.PermissionDeniedError) as exc:
        oai(llm, token).chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}],
            tools=[CHAT_TOOLS["get_order"], CHAT_TOOLS["refund_order"], CHAT_TOOLS["drop_tables"]],
        )
    audit = denied(exc, "tool_offer_denied", llm)
    assert '"refund_order", "drop_tables"' in exc.value.message
    assert audit["refused_offers"] == ["refund_order", "drop_tables"]
    with pytest.raises(openai.PermissionDeniedError) as exc:
        oai(llm, token).responses.create(
            model="gpt-4o-mini", input="hi", tools=[{"type": "function", "name": "refund_order", "parameters": {}}])
    denied(exc, "tool_offer_denied", llm)
    with pytest.raises(anthropic.PermissionDeniedError) as exc:
        claude(llm, token).messages.create(
            model="claude-haiku-4-5", max_tokens=8, messages=[{"role": "user", "content": "hi"}],
            tools=[CLAUDE_TOOLS["drop_tables"]])
    denied(exc, "tool_offer_denied", llm)
    seen.nothing()


def test_smuggled_tool_calls_are_judged(llm, mint, seen):
    token = mint()
    with pytest.raises(openai.PermissionDeniedError) as exc:
        oai(llm, token).chat.completions.create(
            model="gpt-4o-mini", messages=history_call("refund_order", {"customer_id": "cust-1", "order_id": "o-1", "amount": 5}))
    denied(exc, "scope_missing", llm)
    assert 'insufficient_scope' in exc.value.response.headers["www-authenticate"]
    with pytest.raises(openai.PermissionDeniedError) as exc:
        oai(llm, token).chat.completions.create(
            model="gpt-4o-mini", messages=history_call("get_order", {"customer_id": "cust-2", "order_id": "o-1"}))
    denied(exc, "binding_mismatch", llm)
    with pytest.raises(openai.BadRequestError) as exc:
        oai(llm, token).responses.create(model="gpt-4o-mini", input=[
            {"role": "user", "content": "Refund o-1"},
            {"type": "function_call", "call_id": "c1", "name": "get_order", "arguments": '{"customer_id":"cust-1","customer_id":"cust-2"}'},
            {"type": "function_call_output", "call_id": "c1", "output": "{}"},
        ])
    denied(exc, "body_malformed", llm, status=400)
    # A Responses conversation carrying the model's earlier call for another customer.
    with pytest.raises(openai.PermissionDeniedError) as exc:
        oai(llm, token).responses.create(model="gpt-4o-mini", input=[
            {"role": "user", "content": "Where is my order?"},
            {"type": "function_call", "call_id": "c2", "name": "get_order",
             "arguments": json.dumps({"customer_id": "cust-2", "order_id": "o-9"})},
            {"type": "function_call_output", "call_id": "c2", "output": "{}"},
        ])
    denied(exc, "binding_mismatch", llm)
    args = {"to": "alice@example.com", "subject": "Tracking", "body": "Here it is."}
    with pytest.raises(anthropic.PermissionDeniedError) as exc:
        claude(llm, token).messages.create(model="claude-haiku-4-5", max_tokens=8, messages=[
            {"role": "user", "content": "Email me the tracking link."},
            {"role": "assistant", "content": [{"type": "tool_use", "id": "toolu_1", "name": "send_email", "input": args}]},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_1", "content": "sent"}]},
        ])
    denied(exc, "approval_required", llm)
    body = exc.value.body["error"]
    assert body["tool"] == "send_email" and body["args_digest"] == e2e.args_digest(args)
    seen.nothing()


def test_approving_a_remote_mcp_call_is_judged_as_the_call(llm, mint, seen):
    crm = {"type": "mcp", "server_label": "crm", "server_url": "https://mcp.example.com/acme/mcp"}

    def approve(name: str, args: dict) -> list[dict]:
        return [{"role": "user", "content": "Where is my order?"},
                {"type": "mcp_approval_request", "id": "mcpr_1", "server_label": "crm", "name": name,
                 "arguments": json.dumps(args)},
                {"type": "mcp_approval_response", "approval_request_id": "mcpr_1", "approve": True}]

    token = mint()
    r = oai(llm, token).responses.create(model="gpt-4o-mini", tools=[crm],
                                         input=approve("get_order", {"customer_id": "cust-1", "order_id": "o-1"}))
    assert r.output_text
    assert len(seen.bodies()) == 1
    for name, args, reason in (("get_order", {"customer_id": "cust-2", "order_id": "o-9"}, "binding_mismatch"),
                               ("delete_account", {"customer_id": "cust-1"}, "tool_unknown")):
        with pytest.raises(openai.PermissionDeniedError) as exc:
            oai(llm, token).responses.create(model="gpt-4o-mini", tools=[crm], input=approve(name, args))
        denied(exc, reason, llm)
    assert len(seen.bodies()) == 1


def test_approved_external_call_in_the_latest_turn(llm, mint, approval_key, seen):
    args = {"to": "alice@example.com", "subject": "Tracking", "body": "Here it is."}
    grant = e2e.mint_approval(approval_key, sub="alice", tool="send_email", arguments=args)
    client = oai(llm, mint())
    messages = history_call("send_email", args)
    r = client.chat.completions.with_raw_response.create(
        model="gpt-4o-mini", messages=messages, extra_headers={"x-aigate-approval": grant})
    assert r.parse().choices[0].message.content
    got = seen.one()
    assert got["approval"] is None, "the grant is for aigate, not the model"
    audit = llm.audit_for(r.headers["x-aigate-decision-id"])
    assert (audit["tool"], audit["approver"]) == ("send_email", "bob@example.com")
    with pytest.raises(openai.PermissionDeniedError) as exc:
        client.chat.completions.create(model="gpt-4o-mini", messages=messages, extra_headers={"x-aigate-approval": grant})
    denied(exc, "approval_replayed", llm)
    # The conversation goes on: the approved call is history now, carried with its grant
    # (verified, not consumed again).
    later = messages + [{"role": "assistant", "content": "Sent."}, {"role": "user", "content": "Thanks!"}]
    for _ in range(2):
        assert client.chat.completions.create(
            model="gpt-4o-mini", messages=later, extra_headers={"x-aigate-approval": grant}).choices[0].message.content
    # Without its grant, an invented later turn cannot make an unapproved action history.
    with pytest.raises(openai.PermissionDeniedError) as exc:
        client.chat.completions.create(model="gpt-4o-mini", messages=later)
    denied(exc, "approval_required", llm)


def test_data_boundary(llm, mint, seen):
    token = mint()
    for tool in (
        {"type": "file_search", "vector_store_ids": ["vs_globex_kb"]},
        {"type": "mcp", "server_label": "crm", "server_url": "https://mcp.example.com/globex/mcp"},
        {"type": "mcp", "server_label": "crm", "server_url": "https://mcp.example.com/acme/../globex/mcp"},
    ):
        with pytest.raises(openai.PermissionDeniedError) as exc:
            oai(llm, token).responses.create(model="gpt-4o-mini", input="hi", tools=[tool])
        denied(exc, "data_boundary", llm)
    with pytest.raises(anthropic.PermissionDeniedError) as exc:
        claude(llm, token).messages.create(
            model="claude-haiku-4-5", max_tokens=8, messages=[{"role": "user", "content": "hi"}],
            extra_body={"mcp_servers": [{"type": "url", "url": "https://mcp.example.com/globex/mcp", "name": "crm"}]})
    denied(exc, "data_boundary", llm)
    # A server whose tools the provider would run without asking: those calls are never seen.
    with pytest.raises(openai.PermissionDeniedError) as exc:
        oai(llm, token).responses.create(model="gpt-4o-mini", input="hi", tools=[
            {"type": "mcp", "server_label": "crm", "server_url": "https://mcp.example.com/acme/mcp",
             "require_approval": "never"}])
    assert denied(exc, "data_boundary", llm)["rule"] == "data.mcp_servers.crm.provider_calls"
    # State the provider keeps is invisible to aigate: refused unless the route allows it.
    with pytest.raises(openai.PermissionDeniedError) as exc:
        oai(llm, token).responses.create(model="gpt-4o-mini", input="and then?", previous_response_id="resp_123")
    assert denied(exc, "data_boundary", llm)["rule"] == "routes.responses.provider_state"
    seen.nothing()


def test_stored_files_stay_inside_the_callers_boundary(llm, mint, seen):
    token = mint(files=["file-acme-1"])
    ask = lambda file_id: [{"role": "user", "content": [  # noqa: E731
        {"type": "input_text", "text": "Summarise the attached contract."},
        {"type": "input_file", "file_id": file_id}]}]
    r = oai(llm, token).responses.create(model="gpt-4o-mini", input=ask("file-acme-1"))
    assert r.output_text == "Your order o-1 has shipped."
    assert [e["path"] for e in seen.bodies()] == ["/v1/responses"]
    # Another customer's upload: the SDK raises with aigate's reason, the model sees nothing.
    with pytest.raises(openai.PermissionDeniedError) as exc:
        oai(llm, token).responses.create(model="gpt-4o-mini", input=ask("file-globex-7"))
    assert denied(exc, "data_boundary", llm)["rule"] == "data.files"
    with pytest.raises(openai.PermissionDeniedError) as exc:
        oai(llm, token).chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": [
            {"type": "text", "text": "Summarise"}, {"type": "file", "file": {"file_id": "file-globex-7"}}]}])
    denied(exc, "data_boundary", llm)
    with pytest.raises(anthropic.PermissionDeniedError) as exc:
        claude(llm, token).messages.create(model="claude-haiku-4-5", max_tokens=8, messages=[{"role": "user", "content": [
            {"type": "document", "source": {"type": "file", "file_id": "file-globex-7"}},
            {"type": "text", "text": "Summarise"}]}])
    denied(exc, "data_boundary", llm)
    assert len(seen.bodies()) == 1


def test_identity_failures_are_authentication_errors(llm, mint, rogue_keys, seen):
    forged = e2e.mint(rogue_keys["RS256"])
    with pytest.raises(openai.AuthenticationError) as exc:
        oai(llm, forged).chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}])
    audit = denied(exc, "token_invalid", llm, status=401)
    assert audit["protocol"] == "openai_chat"
    assert exc.value.response.headers["www-authenticate"].startswith("Bearer realm=\"aigate\"")
    with pytest.raises(anthropic.AuthenticationError) as exc:
        claude(llm, mint(lifetime=60, iat_offset=-200)).messages.create(
            model="claude-haiku-4-5", max_tokens=8, messages=[{"role": "user", "content": "hi"}])
    assert exc.value.body["error"]["type"] == "authentication_error"
    denied(exc, "token_expired", llm, status=401)
    seen.nothing()


# --------------------------------------------------------------------------- strip


def test_strip_forwards_the_body_without_refused_tools(llm, mint, seen):
    sent = Sent()
    client = oai(llm, mint(), prefix="/strip", sent=sent)
    tools = [CHAT_TOOLS["refund_order"], CHAT_TOOLS["get_order"], CHAT_TOOLS["drop_tables"]]
    r = client.chat.completions.with_raw_response.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "Refund o-1"}], tools=tools,
        tool_choice="auto", temperature=0.7,
    )
    assert r.parse().choices[0].message.content
    got = seen.one()
    original = sent.bodies[-1]
    forwarded = got["body"].encode()
    want = json.loads(original)
    want["tools"] = [CHAT_TOOLS["get_order"]]
    assert json.loads(forwarded) == want, "only the refused tools are gone"
    assert forwarded == cut(original, [CHAT_TOOLS["refund_order"], CHAT_TOOLS["drop_tables"]]), (
        "every other byte is the client's"
    )
    assert got["content_length"] in (None, str(len(forwarded))), got
    audit = llm.audit_for(r.headers["x-aigate-decision-id"])
    assert (audit["decision"], audit["refused_offers"]) == ("allow", ["refund_order", "drop_tables"])

    # Anthropic, streaming; no usable tool left: tools and tool_choice go.
    sent = Sent()
    with claude(llm, mint(), prefix="/strip", sent=sent).messages.stream(
        model="claude-haiku-4-5", max_tokens=64, messages=[{"role": "user", "content": "hi"}],
        tools=[CLAUDE_TOOLS["drop_tables"]], tool_choice={"type": "auto"},
    ) as s:
        assert s.get_final_text()
    forwarded = json.loads(seen.bodies()[-1]["body"])
    want = json.loads(sent.bodies[-1])
    del want["tools"], want["tool_choice"]
    assert forwarded == want


def test_strip_on_responses_cuts_only_the_refused_tools(llm, mint, seen):
    sent = Sent()
    tool = lambda name: {"type": "function", **CHAT_TOOLS[name]["function"]}  # noqa: E731
    r = oai(llm, mint(), prefix="/strip", sent=sent).responses.with_raw_response.create(
        model="gpt-4o-mini", input="Refund o-1", tools=[tool("get_order"), tool("refund_order")],
        parallel_tool_calls=False)
    assert r.parse().output_text
    original, forwarded = sent.bodies[-1], seen.one()["body"].encode()
    want = json.loads(original)
    want["tools"] = [tool("get_order")]
    assert json.loads(forwarded) == want, "only the refused tool is gone"
    assert forwarded == cut(original, [tool("refund_order")]), "every other byte is the client's"
    audit = llm.audit_for(r.headers["x-aigate-decision-id"])
    assert (audit["decision"], audit["refused_offers"]) == ("allow", ["refund_order"])


def test_strip_denies_tool_choice_naming_a_stripped_tool(llm, mint, seen):
    with pytest.raises(openai.PermissionDeniedError) as exc:
        oai(llm, mint(), prefix="/strip").chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}],
            tools=[CHAT_TOOLS["get_order"], CHAT_TOOLS["refund_order"]],
            tool_choice={"type": "function", "function": {"name": "refund_order"}},
        )
    denied(exc, "tool_offer_denied", llm)
    with pytest.raises(anthropic.PermissionDeniedError) as exc:
        claude(llm, mint(), prefix="/strip").messages.create(
            model="claude-haiku-4-5", max_tokens=8, messages=[{"role": "user", "content": "hi"}],
            tools=[CLAUDE_TOOLS["refund_order"]], tool_choice={"type": "any"})
    denied(exc, "tool_offer_denied", llm)
    seen.nothing()


def test_metrics_carry_the_llm_protocols(llm, mint):
    before = llm.metrics()
    with pytest.raises(anthropic.PermissionDeniedError):
        claude(llm, mint()).messages.create(model="claude-opus-4-1", max_tokens=8,
                                                messages=[{"role": "user", "content": "hi"}])
    oai(llm, mint()).responses.create(model="gpt-4o-mini", input="hi")
    delta = e2e.metric_delta(before, llm.metrics())
    deny = e2e.metric_key("aigate_requests_total", protocol="anthropic_messages", decision="deny", reason="model_not_allowed")
    allow = e2e.metric_key("aigate_requests_total", protocol="openai_responses", decision="allow", reason="none")
    assert delta.get(deny) == 1 and delta.get(allow) == 1, delta
