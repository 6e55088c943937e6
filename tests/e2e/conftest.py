"""Fixtures: keys, tokens, the MCP server, and one Envoy (V8, the real aigate.wasm) per
variant - hold at headers (a), hold the body (b), identity from jwt_authn (c).

Set AIGATE_E2E_KEEP=DIR to keep configs and logs in DIR (the default is pytest's tmp dir).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

import aigate_e2e as e2e


@pytest.fixture(scope="session")
def workdir(tmp_path_factory) -> Path:
    keep = os.environ.get("AIGATE_E2E_KEEP")
    if keep:
        path = Path(keep)
        path.mkdir(parents=True, exist_ok=True)
        return path
    return tmp_path_factory.mktemp("aigate-e2e")


@pytest.fixture(scope="session")
def keys() -> dict[str, e2e.SigningKey]:
    """The identity provider's keys: RS256, ES256, EdDSA, HS256 (all in the policy's JWKS)."""
    return e2e.generate_keys("idp")


@pytest.fixture(scope="session")
def rogue_keys() -> dict[str, e2e.SigningKey]:
    """Keys with the same kids as the IdP's but not in any JWKS (forged tokens)."""
    return e2e.generate_keys("idp")


@pytest.fixture(scope="session")
def approval_key() -> e2e.SigningKey:
    return e2e.generate_keys("approvals")["EdDSA"]


@pytest.fixture(scope="session")
def mint(keys):
    """mint(alg="RS256", **claims) -> a signed JWT with the e2e defaults."""

    def _mint(alg: str = "RS256", **kw) -> str:
        return e2e.mint(keys[alg], **kw)

    return _mint


@pytest.fixture(scope="session")
def mcp_server(workdir):
    server = e2e.McpServer(workdir).start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def wasm_module() -> Path:
    if not e2e.WASM.exists():
        pytest.fail(
            f"{e2e.WASM} is missing: build it with "
            "`cargo build --release --target wasm32-wasip1 --lib` (scripts/setup.sh does)"
        )
    return e2e.WASM


def _start(envoy: e2e.Envoy):
    try:
        return envoy.start()
    except e2e.StartError as err:
        envoy.stop()
        pytest.fail(f"Envoy did not start: {err}")


@pytest.fixture(scope="session")
def start_envoy():
    """start_envoy(e2e.Envoy(...)) -> the started Envoy; the test fails (and the process is
    stopped) when it does not come up."""
    return _start


@pytest.fixture(scope="session", params=["headers", "body"])
def gateway(request, workdir, keys, approval_key, mcp_server, wasm_module):
    """Envoy + aigate in front of the MCP server, in hold variant (a) `headers` and (b) `body`."""
    policy = e2e.e2e_policy(keys, approval_key)
    envoy = _start(e2e.Envoy(workdir, request.param, policy, mcp_server.port))
    yield envoy
    envoy.stop()


@pytest.fixture(scope="session")
def gateway_jwt_authn(workdir, keys, approval_key, mcp_server, wasm_module):
    """Variant (c): Envoy's jwt_authn verifies the token, the plugin reads its payload."""
    policy = e2e.e2e_policy(keys, approval_key, source="jwt_authn")
    provider = {"issuer": e2e.ISSUER, "audiences": [e2e.AUDIENCE], "jwks": e2e.jwks(keys)}
    envoy = _start(e2e.Envoy(workdir, "jwt_authn", policy, mcp_server.port, jwt_provider=provider))
    yield envoy
    envoy.stop()


@pytest.fixture
def record(mcp_server):
    """The server's record and a mark taken before the test sent anything."""
    return RecordView(mcp_server.record)


class RecordView:
    def __init__(self, rec: e2e.Record):
        self.rec = rec
        self.start = rec.mark()

    def new(self) -> list[dict]:
        return self.rec.since(self.start)

    def tools(self) -> list[dict]:
        return [e for e in self.new() if e["kind"] == "tool"]

    def resources(self) -> list[dict]:
        return [e for e in self.new() if e["kind"] == "resource"]

    def prompts(self) -> list[dict]:
        return [e for e in self.new() if e["kind"] == "prompt"]

    def assert_nothing_reached(self, gateway: e2e.Envoy) -> None:
        new = self.new()
        if gateway.variant == "body":
            # Hold-body: the upstream may have seen the headers, never a body or a call.
            got = e2e.reached(new)
        else:
            # Hold-headers (and jwt_authn, which holds at headers): nothing at all.
            got = new
        assert got == [], f"the MCP server saw: {got}"


@pytest.fixture(scope="session")
def model_server(workdir):
    """The stand-in upstream (tests/e2e/model_server.py): model APIs and REST endpoints."""
    server = e2e.ModelServer(workdir).start()
    yield server
    server.stop()
