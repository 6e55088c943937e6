"""Session-bound credentials in a real Envoy with the MCP SDK client: identity.bind_session
ties a token to one MCP session (its `sid` claim must equal Mcp-Session-Id), so a token
minted for one session is refused in any other, or with no session at all."""

from __future__ import annotations

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
