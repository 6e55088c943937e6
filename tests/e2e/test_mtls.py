"""Workload identity from mTLS in a real Envoy: the listener asks for a client certificate,
Envoy validates it against a test CA, and aigate reads the peer's SPIFFE ID (URI SAN)
through the `connection.uri_san_peer_certificate` attribute. The certificates are made
here with `cryptography`; the MCP server behind is the real one.

The policy is the example's (trust domain example.org, ceiling prod-agents for
spiffe://example.org/ns/agents/ allowing only orders.read) with `require_mtls: true`.
"""

from __future__ import annotations

import datetime
import ipaddress
import ssl
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

import aigate_e2e as e2e
from test_mcp_gateway import assert_audit

AGENT = "spiffe://example.org/ns/agents/support"
STRANGER = "spiffe://evil.org/ns/agents/support"


@dataclass
class Pki:
    ca: Path
    server: tuple[Path, Path]
    clients: dict[str, tuple[Path, Path]]


def _write(dirpath: Path, name: str, cert: x509.Certificate, key) -> tuple[Path, Path]:
    crt, pem = dirpath / f"{name}.crt", dirpath / f"{name}.key"
    crt.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    pem.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                      serialization.NoEncryption()))
    return crt, pem


def _issue(ca_cert, ca_key, subject: str, san: list[x509.GeneralName], *, server: bool):
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.timezone.utc)
    usage = x509.oid.ExtendedKeyUsageOID.SERVER_AUTH if server else x509.oid.ExtendedKeyUsageOID.CLIENT_AUTH
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(x509.SubjectAlternativeName(san), critical=False)
        .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    return cert, key


def _ca(name: str):
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.timezone.utc)
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    return cert, key


@pytest.fixture(scope="module")
def pki(workdir) -> Pki:
    d = workdir / "pki"
    d.mkdir(exist_ok=True)
    ca_cert, ca_key = _ca("aigate e2e mesh CA")
    ca = d / "ca.crt"
    ca.write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    loopback = [x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
    server = _write(d, "server", *_issue(ca_cert, ca_key, "gateway", loopback, server=True))
    clients = {
        uri: _write(d, f"client-{i}", *_issue(ca_cert, ca_key, "agent", [x509.UniformResourceIdentifier(uri)], server=False))
        for i, uri in enumerate([AGENT, STRANGER])
    }
    return Pki(ca, server, clients)


@dataclass
class TlsEnvoy(e2e.Envoy):
    """The e2e Envoy with a TLS listener that asks for (and validates) a client certificate
    but lets connections without one through, so the plugin decides what they may do."""

    pki: Pki | None = None

    def render(self) -> str:
        text = super().render()
        assert self.pki is not None
        crt, key = self.pki.server
        tls = f"""    filter_chains:
    - transport_socket:
        name: envoy.transport_sockets.tls
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext
          require_client_certificate: false
          common_tls_context:
            tls_certificates:
            - certificate_chain: {{ filename: "{crt}" }}
              private_key: {{ filename: "{key}" }}
            validation_context:
              trusted_ca: {{ filename: "{self.pki.ca}" }}
      filters:"""
        before = "    filter_chains:\n    - filters:"
        assert text.count(before) == 1, "the template's listener changed shape"
        return text.replace(before, tls)

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.listen_port}/mcp"


@pytest.fixture(scope="module")
def mesh(workdir, keys, approval_key, mcp_server, wasm_module, start_envoy, pki):
    policy = e2e.e2e_policy(keys, approval_key)
    policy["identity"]["workload"]["require_mtls"] = True
    envoy = TlsEnvoy(workdir, "headers", policy, mcp_server.port, name="mtls", pki=pki)
    yield start_envoy(envoy)
    envoy.stop()


def call(mesh: TlsEnvoy, pki: Pki, token: str, tool: str, arguments: dict, peer: str | None) -> httpx.Response:
    ctx = ssl.create_default_context(cafile=str(pki.ca))
    if peer is not None:
        crt, key = pki.clients[peer]
        ctx.load_cert_chain(str(crt), str(key))
    body, headers = e2e.tool_call(tool, arguments)
    with httpx.Client(verify=ctx, timeout=15) as client:
        return client.post(mesh.url, json=body, headers={**headers, "authorization": f"Bearer {token}"})


def test_the_peer_certificate_names_the_workload_and_its_ceiling_applies(mesh, pki, mint, record):
    # The token would allow a refund; the mesh identity's ceiling (prod-agents) allows reads only.
    token = mint(scope="orders.read orders.refund", azp="support-agent")
    r = call(mesh, pki, token, "get_order", {"customer_id": "cust-1", "order_id": "o-1"}, AGENT)
    assert r.status_code == 200, r.text
    assert [t["name"] for t in record.tools()] == ["get_order"]
    assert_audit(mesh, r.headers["x-aigate-decision-id"], decision="allow", workload=AGENT)
    r = call(mesh, pki, token, "refund_order", {"customer_id": "cust-1", "order_id": "o-1", "amount": 5}, AGENT)
    assert r.status_code == 403, r.text
    assert r.json()["error"]["reason"] == "scope_missing"
    assert_audit(mesh, r.headers["x-aigate-decision-id"], decision="deny", workload=AGENT)
    assert [t["name"] for t in record.tools()] == ["get_order"]


@pytest.mark.parametrize("peer, rule", [
    (STRANGER, "identity.workload.spiffe_trust_domains"),
    (None, "identity.workload.require_mtls"),
])
def test_an_untrusted_or_missing_peer_is_refused(mesh, pki, mint, record, peer, rule):
    # The token's azp would name a workload; with require_mtls it does not count.
    r = call(mesh, pki, mint(azp="support-agent"), "get_order", {"customer_id": "cust-1", "order_id": "o-1"}, peer)
    assert r.status_code == 401, r.text
    error = r.json()["error"]
    assert (error["reason"], error["rule"]) == ("workload_untrusted", rule)
    assert record.tools() == []
