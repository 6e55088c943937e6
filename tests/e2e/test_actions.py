"""REST actions in a real Envoy (V8): routes that are one catalogued tool each, the JSON
body the arguments, called with httpx in front of the stand-in upstream (model_server.py
answers `/api/...`). Both hold variants. Each denial is checked on three sides: status and
error JSON, nothing reached the upstream, and the audit line.
"""

from __future__ import annotations

import http.client
import json
import time

import httpx
import pytest

import aigate_e2e as e2e


@pytest.fixture(scope="module", params=["headers", "body"])
def gw(request, workdir, keys, approval_key, model_server, wasm_module, start_envoy):
    policy = e2e.e2e_policy(keys, approval_key)
    policy["routes"] = [
        {"id": "refunds", "prefix": "/api/refunds", "methods": ["POST"], "protocol": "action",
         "tool": "refund_order", "owner": "payments-api@example.com"},
        {"id": "mail", "prefix": "/api/mail", "methods": ["POST"], "protocol": "action", "tool": "send_email"},
        {"id": "orders", "prefix": "/api/orders", "protocol": "action", "tool": "get_order"},
        {"id": "early", "prefix": "/api/early", "methods": ["POST"], "protocol": "action", "tool": "refund_order"},
    ]
    envoy = e2e.Envoy(workdir, request.param, policy, model_server.port, name=f"actions-{request.param}")
    yield start_envoy(envoy)
    envoy.stop()


@pytest.fixture
def seen(model_server):
    return e2e.Seen(model_server.record)


def post(gw: e2e.Envoy, path: str, token: str | None, body, **headers) -> httpx.Response:
    if token:
        headers["authorization"] = f"Bearer {token}"
    return httpx.post(f"http://127.0.0.1:{gw.listen_port}{path}", json=body, headers=headers, timeout=20)


def refused(r: httpx.Response, gw: e2e.Envoy, status: int, reason: str) -> dict:
    assert r.status_code == status, r.text
    error = r.json()["error"]
    assert error["reason"] == reason, error
    assert error["decision_id"] == r.headers["x-aigate-decision-id"]
    audit = gw.audit_for(r.headers["x-aigate-decision-id"])
    assert (audit["decision"], audit["reason"], audit["protocol"]) == ("deny", reason, "action")
    return error


def test_an_allowed_action_reaches_the_endpoint(gw, mint, seen):
    args = {"customer_id": "cust-1", "order_id": "o-1", "amount": 20}
    r = post(gw, "/api/refunds", mint(scope="orders.refund"), args)
    assert r.status_code == 200, r.text
    assert r.json() == {"done": True, "path": "/api/refunds"}
    got = seen.one()
    assert got["decision_id"] == r.headers["x-aigate-decision-id"]
    assert httpx.Response(200, content=got["body"].encode()).json() == args
    audit = gw.audit_for(r.headers["x-aigate-decision-id"])
    assert (audit["decision"], audit["tool"], audit["intent"], audit["route"]) == \
        ("allow", "refund_order", "orders.refund", "refunds")
    assert audit["owner"] == "payments@example.com"


def test_denied_actions_never_reach_the_endpoint(gw, mint, seen):
    token = mint(scope="orders.refund")
    refused(post(gw, "/api/refunds", token, {"customer_id": "cust-1", "amount": 500}), gw, 403, "argument_violation")
    refused(post(gw, "/api/refunds", token, {"customer_id": "cust-9", "amount": 5}), gw, 403, "binding_mismatch")
    error = refused(post(gw, "/api/refunds", mint(), {"customer_id": "cust-1", "amount": 5}), gw, 403, "scope_missing")
    assert error["required_scope"] == "orders.refund"
    refused(post(gw, "/api/refunds", None, {"customer_id": "cust-1", "amount": 5}), gw, 401, "unauthenticated")
    r = post(gw, "/api/refunds", token, ["not", "arguments"])
    refused(r, gw, 400, "body_malformed")
    audit = gw.audit_for(r.headers["x-aigate-decision-id"])
    assert (audit["tool"], audit["owner"]) == ("refund_order", "payments@example.com"), \
        "an unreadable body still names the action attempted"
    seen.nothing()


def test_input_outside_the_body_never_reaches_the_endpoint(gw, mint, seen):
    # The body is within bounds; a framework merging query or path parameters would read
    # another customer and another amount.
    token = mint(scope="orders.refund")
    args = {"customer_id": "cust-1", "order_id": "o-1", "amount": 5}
    for path in ("/api/refunds?customer_id=cust-2&amount=100000", "/api/refunds/cust-2/o-9"):
        error = refused(post(gw, path, token, args), gw, 403, "argument_violation")
        assert error["rule"] == "routes.refunds.extra_input", error
    seen.nothing()
    assert post(gw, "/api/refunds/", token, args).status_code == 200
    assert seen.one()["path"] == "/api/refunds/"


def test_input_refused_for_its_head_never_sends_the_head_upstream(gw, mint, seen):
    # With `hold: body` a head waiting for its body goes upstream; one refused for what the
    # head alone carries is refused before that, as a bad token is: nothing reaches the
    # endpoint, not even the request line.
    token = mint(scope="orders.refund")
    args = {"customer_id": "cust-1", "order_id": "o-1", "amount": 5}
    for path, headers in (("/api/refunds?amount=100000", {}),
                          ("/api/refunds", {"x-http-method-override": "DELETE"}),
                          ("/api/refunds", {"x-original-url": "/api/mail"}),
                          ("/api/refunds", {"x-forwarded-uri": "/api/mail"})):
        error = refused(post(gw, path, token, args, **headers), gw, 403, "argument_violation")
        assert error["rule"] == "routes.refunds.extra_input", error
    # Content-Type given twice: Envoy joins the two into one list, refused as on MCP routes.
    r = httpx.post(f"http://127.0.0.1:{gw.listen_port}/api/refunds", content=json.dumps(args).encode(),
                   headers=[("authorization", f"Bearer {token}"), ("content-type", "application/json"),
                            ("content-type", "application/json")], timeout=20)
    assert refused(r, gw, 415, "encoding_unsupported")["rule"] == "content_type"
    assert seen.rec.since(seen.start) == [], "no head went upstream"


def test_an_argument_spelled_as_its_alias_never_reaches_the_endpoint(gw, mint, seen):
    # A pydantic endpoint with camelCase aliases would read customerId, cust-9.
    token = mint()
    for body in ({"customer_id": "cust-1", "customerId": "cust-9"}, {"customer_id": "cust-1", "customer-id": "cust-9"}):
        error = refused(post(gw, "/api/orders", token, body), gw, 403, "binding_mismatch")
        assert error["rule"] == "tools.get_order.bind./customer_id", error
    seen.nothing()


def test_an_external_action_needs_a_grant_for_its_exact_body(gw, mint, approval_key, seen):
    args = {"to": "bob@example.com", "subject": "Your refund"}
    token = mint()
    error = refused(post(gw, "/api/mail", token, args), gw, 403, "approval_required")
    digest = e2e.args_digest(args)
    assert (error["tool"], error["subject"], error["args_digest"]) == ("send_email", "alice", digest), error
    assert error["approval_url"] == (
        f"https://approvals.example.com/request?tool=send_email&digest={digest}&subject=alice"), error
    seen.nothing()
    grant = e2e.mint_approval(approval_key, sub="alice", tool="send_email", arguments=args)
    r = post(gw, "/api/mail", token, args, **{"x-aigate-approval": grant})
    assert r.status_code == 200, r.text
    got = seen.one()
    assert got["approval"] is None, "the grant is for aigate, not the endpoint"
    assert gw.audit_for(r.headers["x-aigate-decision-id"])["approver"] == "bob@example.com"
    refused(post(gw, "/api/mail", token, args, **{"x-aigate-approval": grant}), gw, 403, "approval_replayed")


def raw_post(gw: e2e.Envoy, path: str, token: str, body) -> tuple[int, dict, bytes]:
    """POST with the path sent byte for byte (httpx would resolve dot segments itself)."""
    conn = http.client.HTTPConnection("127.0.0.1", gw.listen_port, timeout=20)
    try:
        conn.request("POST", path, body=json.dumps(body),
                     headers={"authorization": f"Bearer {token}", "content-type": "application/json"})
        r = conn.getresponse()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, r.read()
    finally:
        conn.close()


def test_a_crafted_path_is_judged_as_the_endpoint_it_reaches(gw, mint, seen):
    # The path names the orders route (a read this token may do); it resolves to refunds.
    args = {"customer_id": "cust-1", "order_id": "o-1", "amount": 20}
    token = mint(scope="orders.read")
    status, headers, body = raw_post(gw, "/api/orders/../refunds", token, args)
    assert status == 403, body
    error = json.loads(body)["error"]
    assert (error["reason"], error["required_scope"]) == ("scope_missing", "orders.refund")
    audit = gw.audit_for(headers["x-aigate-decision-id"])
    assert (audit["route"], audit["tool"]) == ("refunds", "refund_order"), "judged as what it would run"
    # Encoded slashes are refused by Envoy before any filter runs.
    status, headers, _ = raw_post(gw, "/api/orders%2F..%2Frefunds", token, args)
    assert status == 400 and "x-aigate-decision-id" not in headers
    # Prefixes match whole segments: /api/orders-export is no route, so it is refused.
    status, headers, body = raw_post(gw, "/api/orders-export", token, {"customer_id": "cust-1"})
    assert status == 404 and json.loads(body)["error"]["reason"] == "route_unmatched", body
    seen.nothing()


def test_an_answer_to_a_request_not_yet_judged_never_reaches_the_client(gw, mint, seen):
    # The body arrives a second after the head. With `hold: body` the head goes ahead, and
    # this endpoint answers on the request line alone: its answer must not reach the client,
    # and the request must still be decided, audited and counted.
    before = gw.metrics()
    conn = http.client.HTTPConnection("127.0.0.1", gw.listen_port, timeout=20)
    try:
        conn.putrequest("POST", "/api/early")
        for name, value in (("authorization", f"Bearer {mint(scope='orders.read')}"),
                            ("content-type", "application/json"), ("content-length", "2")):
            conn.putheader(name, value)
        conn.endheaders()
        time.sleep(1.0)
        try:
            conn.send(b"{}")
        except OSError:
            pass  # Envoy may have answered and closed already
        r = conn.getresponse()
        status, headers, body = r.status, {k.lower(): v for k, v in r.getheaders()}, r.read()
    finally:
        conn.close()
    error = json.loads(body)["error"]
    audit = gw.audit_for(headers["x-aigate-decision-id"])
    assert (audit["decision"], audit["route"]) == ("deny", "early"), audit
    if gw.variant == "headers":
        # Nothing went upstream before the verdict: judged whole, refused for its scope.
        assert (status, error["reason"]) == (403, "scope_missing"), body
        assert seen.rec.since(seen.start) == []
    else:
        assert (status, error["reason"], error["rule"]) == (400, "body_malformed", "hold"), body
        assert (audit["reason"], audit["rule"]) == ("body_malformed", "hold")
        assert b"done" not in body, "the endpoint's answer was withheld"
        assert "set-cookie" not in headers and "x-upstream-secret" not in headers, "its head too"
        heads = seen.rec.since(seen.start)
        assert [(e["path"], e["complete"]) for e in heads] == [("/api/early", False)], heads
        key = e2e.metric_key("aigate_requests_total", protocol="action", decision="deny", reason="body_malformed")
        grew = e2e.metric_delta(before, gw.metrics())
        assert grew.get(key) == 1, grew
