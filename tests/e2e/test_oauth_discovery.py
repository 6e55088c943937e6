"""OAuth discovery in a real Envoy: an MCP route with `protected_resource` publishes its
OAuth 2.0 Protected Resource Metadata (RFC 9728) and points its 401 and 403 challenges at
it, as MCP's authorization specification asks, so an OAuth-capable MCP client finds the
authorization server. Read here with the MCP SDK's own discovery helpers and models."""

from __future__ import annotations

import json

import httpx
import pytest
from mcp.client.auth.utils import (
    build_protected_resource_metadata_discovery_urls,
    extract_resource_metadata_from_www_auth,
    extract_scope_from_www_auth,
)
from mcp.shared.auth import ProtectedResourceMetadata

import aigate_e2e as e2e
from test_mcp_gateway import assert_audit

RESOURCE = "https://mcp.example.com/mcp"
METADATA_URL = "https://mcp.example.com/.well-known/oauth-protected-resource/mcp"


@pytest.fixture(scope="module")
def discoverable(workdir, keys, approval_key, mcp_server, wasm_module, start_envoy):
    policy = e2e.e2e_policy(keys, approval_key)
    policy["routes"][0]["protected_resource"] = {"resource": RESOURCE, "scopes_supported": ["orders.read"]}
    envoy = e2e.Envoy(workdir, "headers", policy, mcp_server.port, name="oauth")
    yield start_envoy(envoy)
    envoy.stop()


def test_a_client_without_a_token_is_pointed_at_the_metadata(discoverable, record):
    body, headers = e2e.tool_call("get_order", {"customer_id": "cust-1", "order_id": "o-1"})
    r = httpx.post(discoverable.url, content=json.dumps(body), headers=headers, timeout=10)
    assert r.status_code == 401, r.text
    assert extract_resource_metadata_from_www_auth(r) == METADATA_URL, r.headers
    urls = build_protected_resource_metadata_discovery_urls(extract_resource_metadata_from_www_auth(r), RESOURCE)
    assert urls[0] == METADATA_URL
    record.assert_nothing_reached(discoverable)


def test_the_metadata_names_the_authorization_server(discoverable, record):
    base = discoverable.url.removesuffix("/mcp")
    r = httpx.get(f"{base}/.well-known/oauth-protected-resource/mcp", timeout=10)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "application/json"
    meta = ProtectedResourceMetadata.model_validate_json(r.content)
    assert str(meta.resource) == RESOURCE
    assert [str(s).rstrip("/") for s in meta.authorization_servers] == [e2e.ISSUER]
    assert meta.scopes_supported == ["orders.read"]
    assert meta.bearer_methods_supported == ["header"]
    # Answered by aigate, recorded, and never sent upstream.
    assert_audit(discoverable, r.headers["x-aigate-decision-id"], decision="allow", subject=None)
    record.assert_nothing_reached(discoverable)
    # Another path under .well-known is no metadata of aigate's.
    r = httpx.get(f"{base}/.well-known/oauth-protected-resource/other", timeout=10)
    assert r.status_code == 404, r.text


def test_a_missing_scope_challenge_points_at_the_metadata_too(discoverable, mint, record):
    body, headers = e2e.tool_call("refund_order", {"customer_id": "cust-1", "order_id": "o-1", "amount": 1})
    r = httpx.post(discoverable.url, content=json.dumps(body),
                   headers={**headers, "authorization": f"Bearer {mint(scope='orders.read')}"}, timeout=10)
    assert r.status_code == 403, r.text
    assert extract_scope_from_www_auth(r) == "orders.refund"
    assert extract_resource_metadata_from_www_auth(r) == METADATA_URL
    record.assert_nothing_reached(discoverable)
