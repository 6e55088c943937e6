"""Session-bound credentials in a real Envoy with the MCP SDK client: identity.bind_session
ties a token to one MCP session (its `sid` claim must equal Mcp-Session-Id), so a token
minted for one session is refused in any other, or with no session at all."""

from __future__ import annotations

import base64
import contextlib
import os

import httpx
import pytest

import aigate_e2e as e2e
from test_mcp_gateway import assert_audit, get_order


@pytest.fixture(scope="module")
def bound(workdir, keys, approval_key, mcp_server, wasm_module, start_envoy):
    policy = e2e.e2e_policy(keys, approval_key)
    policy["identity"]["bind_session"] = {"claim": "sid"}
    envoy = e2e.Envoy(workdir, "headers", policy, mcp_server.port, name="sessions")
    yield start_envoy(envoy)
    envoy.stop()


def test_a_session_bound_token_works_in_its_session_only(bound, keys, record):
    minted: dict[str, str] = {}

    async def broker(request):
        # Once the server has named the session, every request carries a token minted for it.
        sid = request.headers.get("mcp-session-id")
        if sid:
            minted.setdefault(sid, e2e.mint(keys["RS256"], sid=sid))
            request.headers["authorization"] = f"Bearer {minted[sid]}"

    # initialize goes first without a session (the server assigns it), with a token for none.
    out = e2e.mcp_client_call(bound.url, e2e.mint(keys["RS256"], sid="unassigned"), get_order(), on_request=broker)
    assert out.error is None, f"{out.error!r}; wire: {[(e.rpc_method, e.status, e.body) for e in out.wire.exchanges]}"
    assert [t["name"] for t in record.tools()] == ["get_order"]
    ((sid, token),) = minted.items()
    did = out.wire.last("tools/call").decision_id
    assert_audit(bound, did, decision="allow", session=sid)

    # The same token replayed in another session, or with no session: refused at the gateway.
    body, headers = e2e.tool_call("get_order", {"customer_id": "cust-1", "order_id": "o-1"})
    for session in ({"mcp-session-id": "another-session"}, {}):
        r = httpx.post(bound.url, json=body, headers={**headers, "authorization": f"Bearer {token}", **session}, timeout=15)
        assert r.status_code == 401, r.text
        assert r.json()["error"]["reason"] == "session_mismatch", r.text
        assert r.headers["www-authenticate"].startswith("Bearer"), r.headers
        assert_audit(bound, r.headers["x-aigate-decision-id"], decision="deny", reason="session_mismatch")
    assert [t["name"] for t in record.tools()] == ["get_order"], "nothing more reached the server"


VERSION = "2025-11-25"
INIT = {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
    "protocolVersion": VERSION, "clientInfo": {"name": "e2e", "version": "0"}, "capabilities": {}}}
LISTING = {"jsonrpc": "2.0", "id": 2, "method": "tools/list"}


def send_to(url: str, token: str, body: dict | None, session: str | None = None, method: str = "POST") -> httpx.Response:
    headers = {"authorization": f"Bearer {token}", "accept": "application/json, text/event-stream",
               "content-type": "application/json", "mcp-protocol-version": VERSION}
    if session:
        headers["mcp-session-id"] = session
    return httpx.request(method, url, json=body, headers=headers, timeout=10)


def test_an_mcp_session_is_its_openers_alone(gateway, mint, mcp_server):
    """Without bind_session, aigate seals the session id the server hands out to the caller
    it was opened for (`sessions: bind`, the default): another caller holding the id gets
    404, as for a session the server does not know, and nothing reaches the server."""

    def send(token: str, body: dict | None, session: str | None = None, method: str = "POST") -> httpx.Response:
        return send_to(gateway.url, token, body, session, method)

    alice, bob = mint(), mint(sub="bob")
    r = send(alice, INIT)
    assert r.status_code == 200, r.text
    sealed = r.headers["mcp-session-id"]
    bare, tag = sealed.rsplit(".", 1)
    assert bare and len(tag) == 22, sealed
    assert send(alice, {"jsonrpc": "2.0", "method": "notifications/initialized"}, sealed).status_code == 202
    # Its opener's requests reach the session (the server gets its own id back).
    r = send(alice, LISTING, sealed)
    assert r.status_code == 200 and "result" in r.json(), r.text

    mark = mcp_server.record.mark()
    for token, session, method, body in (
        (bob, sealed, "POST", LISTING),
        (bob, sealed, "DELETE", None),
        (alice, bare, "POST", LISTING),
    ):
        r = send(token, body, session, method)
        assert r.status_code == 404, (method, r.status_code, r.text)
        error = r.json()["error"]
        assert (error["reason"], error["rule"]) == ("session_mismatch", "routes.support-mcp.sessions"), error
        record = gateway.audit_for(r.headers["x-aigate-decision-id"])
        assert (record["decision"], record["session"]) == ("deny", session), record
    assert mcp_server.record.since(mark) == [], "a request in another's session reached the server"
    # Bob's DELETE ended nothing: the session goes on for alice.
    r = send(alice, LISTING, sealed)
    assert r.status_code == 200 and "result" in r.json(), r.text


def test_replicas_sharing_a_session_key_share_sessions_and_rotate_it(
    workdir, keys, approval_key, mcp_server, wasm_module, start_envoy, mint
):
    """Replicas given one `session_key` accept each other's sessions; a new key with the old
    one in `retired_session_keys` keeps the sessions the old key sealed and seals new ones
    with the new key; a replica that dropped the old key refuses its sessions (404)."""
    old, new = (base64.urlsafe_b64encode(os.urandom(32)).rstrip(b"=").decode() for _ in range(2))
    replicas = {}
    with contextlib.ExitStack() as stack:
        for name, key, retired in (("old", old, []), ("rotating", new, [old]), ("rotated", new, [])):
            policy = e2e.e2e_policy(keys, approval_key)
            policy["session_key"] = key
            if retired:
                policy["retired_session_keys"] = retired
            envoy = start_envoy(e2e.Envoy(workdir, "headers", policy, mcp_server.port, name=f"replica-{name}"))
            stack.callback(envoy.stop)
            replicas[name] = envoy.url
        alice = mint()

        def opened_through(name: str) -> str:
            r = send_to(replicas[name], alice, INIT)
            assert r.status_code == 200, r.text
            return r.headers["mcp-session-id"]

        def status(name: str, session: str) -> int:
            return send_to(replicas[name], alice, LISTING, session).status_code

        before = opened_through("old")
        after = opened_through("rotating")
        assert before.rsplit(".", 1)[0] != after.rsplit(".", 1)[0], "two sessions"
        # The session sealed before the rotation goes on where the old key is kept; a
        # session sealed after it is sealed with the new key, which the old replica lacks.
        assert (status("old", before), status("rotating", before), status("rotated", before)) == (200, 200, 404)
        assert (status("old", after), status("rotating", after), status("rotated", after)) == (404, 200, 200)
        # A second replica with the same key as the first accepts its sessions.
        assert status("rotated", opened_through("rotating")) == 200
