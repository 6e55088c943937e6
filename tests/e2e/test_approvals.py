"""Human approval end to end, the way an approval service and an agent use it: the MCP SDK
client meets `approval_required` with the digest of its exact arguments, a grant minted by
`aigate approve` (signed with a key from `aigate keygen`) lets that call through once, and
every other use of the grant is refused before the MCP server sees anything.

The gateway runs Envoy with two workers, so single use is proved where it matters: copies
of one grant racing through both workers at once are accepted exactly once.
"""

from __future__ import annotations

import json
import re
import subprocess
import threading
import time
from pathlib import Path

import httpx
import pytest

import aigate_e2e as e2e
from test_mcp_gateway import JSONRPC_POLICY_ERROR, assert_audit, assert_decision_id, assert_jsonrpc_deny

CLI = e2e.REPO / "target" / "release" / "aigate"
EMAIL = {"to": "carol@example.com", "subject": "Your refund", "body": "Refund of 20 EUR for order o-1"}
# Copies of one grant sent at once, each on its own connection (spread over the workers).
RACERS = 24


def aigate(*args: str, stdin: str | None = None) -> str:
    out = subprocess.run([str(CLI), *args], input=stdin, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, f"aigate {' '.join(args)} exited {out.returncode}: {out.stderr}"
    return out.stdout.strip()


class ApprovalService:
    """What an approval service does with the CLI: a key pair from `aigate keygen`, grants
    from `aigate approve`."""

    def __init__(self, workdir: Path):
        if not CLI.exists():
            pytest.fail(f"{CLI} is missing: build it with `cargo build --release --bin aigate` (scripts/setup.sh does)")
        self.workdir = workdir
        pair = json.loads(aigate("keygen", "--alg", "EdDSA", "--kid", "approvals-e2e"))
        self.key_file = workdir / "approval-service-key.json"
        self.key_file.write_text(json.dumps(pair["private"]))
        self.public_jwks = pair["public"]
        self.minted = 0

    def args_file(self, arguments: dict) -> Path:
        self.minted += 1
        path = self.workdir / f"approved-args-{self.minted}.json"
        path.write_text(json.dumps(arguments))
        return path

    def digest(self, arguments: dict) -> str:
        return aigate("digest", str(self.args_file(arguments)))

    def approve(self, arguments: dict, *, sub: str = "alice", tool: str = "send_email", ttl: int = 120) -> str:
        return aigate(
            "approve", "--key", str(self.key_file), "--sub", sub, "--tool", tool,
            "--args", str(self.args_file(arguments)), "--approver", "bob@example.com", "--ttl", str(ttl),
            "--iss", e2e.APPROVAL_ISSUER, "--aud", e2e.APPROVAL_AUDIENCE,
        )


@pytest.fixture(scope="module")
def service(workdir) -> ApprovalService:
    return ApprovalService(workdir)


@pytest.fixture(scope="module")
def gw(workdir, keys, service, mcp_server, wasm_module, start_envoy):
    policy = e2e.e2e_policy(keys)
    policy["approval"] = {
        "issuer": e2e.APPROVAL_ISSUER,
        "audience": e2e.APPROVAL_AUDIENCE,
        "jwks": service.public_jwks,
        "max_age_seconds": 300,
        "request_url": "https://approvals.example.com/request?tool={tool}&digest={digest}&subject={subject}",
    }
    envoy = e2e.Envoy(workdir, "headers", policy, mcp_server.port, name="approvals-2-workers", concurrency=2)
    yield start_envoy(envoy)
    envoy.stop()


def send_email(gw: e2e.Envoy, grant: str | None, token: str, arguments: dict = EMAIL) -> e2e.Outcome:
    """send_email through the MCP SDK client, the grant (if any) in `x-aigate-approval`."""
    headers = {"x-aigate-approval": grant} if grant else {}
    return e2e.mcp_client_call(gw.url, token, lambda c: c.call_tool("send_email", arguments), headers=headers)


def sent(record) -> list[dict]:
    return [t for t in record.tools() if t["name"] == "send_email"]


def test_round_trip_with_the_cli(gw, service, mint, record):
    token = mint()
    # 1. Without a grant: refused, with what to get approved.
    out = send_email(gw, None, token)
    did = assert_jsonrpc_deny(out, "approval_required")
    data = out.error.data
    digest = service.digest(EMAIL)
    assert data["args_digest"] == digest == e2e.args_digest(EMAIL), data
    assert (data["tool"], data["subject"]) == ("send_email", "alice"), data
    assert data["approval_url"] == (
        f"https://approvals.example.com/request?tool=send_email&digest={digest}&subject=alice"), data
    assert sent(record) == []
    assert_audit(gw, did, decision="deny", reason="approval_required", args_digest=digest, approver=None)

    # 2. A human approves exactly these arguments; the retry goes through, once, and the
    #    grant itself stays at the gateway.
    grant = service.approve(EMAIL)
    out = send_email(gw, grant, token)
    assert out.error is None, out.error
    assert not out.result.is_error, out.result
    did = assert_decision_id(out.wire.last("tools/call").decision_id)
    assert len(sent(record)) == 1
    forwarded = [e for e in record.new() if e["kind"] == "http"]
    assert forwarded and not any(e["approval"] for e in forwarded), forwarded
    rec = assert_audit(gw, did, decision="allow", tool="send_email", approver="bob@example.com", args_digest=digest)
    assert "Refund of 20 EUR" not in json.dumps(rec)

    # 3. The same grant again (a replay): refused, nothing more reaches the server.
    assert_jsonrpc_deny(send_email(gw, grant, token), "approval_replayed")
    assert len(sent(record)) == 1


def test_the_cli_digest_is_the_gateways_for_any_number_spelling(gw, service, mint, record):
    # The agent's SDK sends 1000.0 and 0.5; the approval service's file spells them 1e3
    # and 5E-1 and orders the keys differently. RFC 8785 makes both one digest.
    sent_args = {**EMAIL, "retries": 1000.0, "weight": 0.5, "tags": [1, 2.0, -0.0]}
    out = send_email(gw, None, mint(), sent_args)
    assert_jsonrpc_deny(out, "approval_required")
    path = service.workdir / "approved-args-numbers.json"
    path.write_text('{"weight": 5E-1, "tags": [1, 2, 0], "retries": 1e3, '
                    + ", ".join(f"{json.dumps(k)}: {json.dumps(v)}" for k, v in EMAIL.items()) + "}")
    assert out.error.data["args_digest"] == aigate("digest", str(path))
    assert sent(record) == []


def test_a_repeated_approval_header_is_refused(gw, service, mint, record):
    body, headers = e2e.tool_call("send_email", EMAIL)
    first, second = service.approve(EMAIL), service.approve(EMAIL)
    pairs = [*headers.items(), ("authorization", f"Bearer {mint()}"),
             ("x-aigate-approval", first), ("x-aigate-approval", second)]
    r = httpx.post(gw.url, content=json.dumps(body).encode(), headers=pairs, timeout=20)
    # Refused at the headers, before the body (and its JSON-RPC id) is read.
    assert r.status_code == 403, r.text
    assert r.json()["error"]["reason"] == "approval_invalid", r.text
    assert_audit(gw, r.headers["x-aigate-decision-id"], decision="deny", reason="approval_invalid")
    assert sent(record) == []
    # Neither grant was spent.
    out = send_email(gw, first, mint())
    assert out.error is None and not out.result.is_error, out.error or out.result


def test_grant_does_not_cover_other_arguments(gw, service, mint, record):
    token = mint()
    grant = service.approve(EMAIL)
    changed = {**EMAIL, "to": "dave@example.com"}  # allowed, not approved
    out = send_email(gw, grant, token, changed)
    assert_jsonrpc_deny(out, "approval_mismatch")
    assert out.error.data["args_digest"] == service.digest(changed)
    assert sent(record) == []
    # A mismatched use does not burn the grant: the approved call still goes through.
    out = send_email(gw, grant, token)
    assert out.error is None and not out.result.is_error, out.error or out.result
    assert [t["arguments"]["to"] for t in sent(record)] == ["carol@example.com"]


def test_one_grant_sends_one_email_even_in_a_batch(gw, service, mint, record):
    grant = service.approve(EMAIL)
    one, headers = e2e.tool_call("send_email", EMAIL, rpc_id=1)
    two, _ = e2e.tool_call("send_email", EMAIL, rpc_id=2)
    headers = {**headers, "authorization": f"Bearer {mint()}", "x-aigate-approval": grant}
    r = httpx.post(gw.url, json=[one, two], headers=headers, timeout=20)
    assert r.status_code == 200, r.text
    replies = r.json()
    assert [m["id"] for m in replies] == [1, 2], replies
    assert {m["error"]["data"]["reason"] for m in replies} == {"approval_replayed"}, replies
    assert sent(record) == []
    # Refused before anything was spent: the grant still sends the e-mail, once.
    out = send_email(gw, grant, mint())
    assert out.error is None and not out.result.is_error, out.error or out.result
    assert len(sent(record)) == 1


def test_grant_is_for_one_subject_and_one_tool(gw, service, mint, record):
    assert_jsonrpc_deny(send_email(gw, service.approve(EMAIL, sub="bob"), mint()), "approval_mismatch")
    assert_jsonrpc_deny(send_email(gw, service.approve(EMAIL, tool="get_order"), mint()), "approval_mismatch")
    assert sent(record) == []


def test_expired_and_stale_grants_are_refused(gw, service, mint, record):
    before = gw.metrics()
    key = _service_key(service)
    now = int(time.time())
    expired = e2e.mint_approval(key, sub="alice", tool="send_email", arguments=EMAIL, iat=now - 200, exp=now - 100)
    assert_jsonrpc_deny(send_email(gw, expired, mint()), "approval_expired")
    # Still within exp, but issued longer ago than approval.max_age_seconds (300 s).
    stale = e2e.mint_approval(key, sub="alice", tool="send_email", arguments=EMAIL, iat=now - 400, exp=now + 600)
    assert_jsonrpc_deny(send_email(gw, stale, mint()), "approval_expired")
    assert sent(record) == []
    grew = e2e.metric_delta(before, gw.metrics())
    assert grew.get(e2e.metric_key("aigate_approvals_total", result="approval_expired")) == 2, grew
    assert grew.get(e2e.metric_key("aigate_tool_calls_total", impact="external", decision="deny")) == 2, grew


def test_forged_grant_is_invalid(gw, service, mint, record):
    forger = e2e.generate_keys("approvals")["EdDSA"]
    forger.kid = "approvals-e2e"  # the service's kid, another key
    forged = e2e.mint_approval(forger, sub="alice", tool="send_email", arguments=EMAIL)
    assert_jsonrpc_deny(send_email(gw, forged, mint()), "approval_invalid")
    assert sent(record) == []


def _service_key(service: ApprovalService) -> e2e.SigningKey:
    """The approval service's key as PyJWT signs with it, for grants the CLI will not mint
    (already expired, issued in the past)."""
    from jwt.algorithms import OKPAlgorithm

    jwk = json.loads(service.key_file.read_text())
    return e2e.SigningKey("EdDSA", jwk["kid"], OKPAlgorithm.from_jwk(json.dumps(jwk)), {})


# --------------------------------------------------------------------------- single use across workers

_THREAD = re.compile(r"^\[[^\]]*\]\[(\d+)\]")


def _worker_of(gw: e2e.Envoy, decision_id: str) -> str | None:
    """The Envoy thread that logged this decision's audit line."""
    for line in gw.log.read_text(errors="replace").splitlines():
        if decision_id in line and "aigate.decision" in line:
            m = _THREAD.match(line)
            return m.group(1) if m else None
    return None


def _race(gw: e2e.Envoy, body: bytes, headers: dict) -> list[httpx.Response]:
    """RACERS copies of one request, released together, each on a fresh connection."""
    start = threading.Barrier(RACERS)
    results: list[httpx.Response | BaseException] = [None] * RACERS  # type: ignore[list-item]

    def one(i: int) -> None:
        try:
            with httpx.Client(timeout=20) as client:
                start.wait(timeout=20)
                results[i] = client.post(gw.url, content=body, headers=headers)
        except BaseException as e:  # noqa: BLE001 - reported below
            results[i] = e

    threads = [threading.Thread(target=one, args=(i,)) for i in range(RACERS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    errors = [r for r in results if not isinstance(r, httpx.Response)]
    assert not errors, errors[:3]
    return results  # type: ignore[return-value]


def test_concurrent_copies_of_a_grant_are_accepted_once(gw, service, mint, record):
    token = mint()
    before = gw.metrics()
    workers = set()
    accepted_total = 0
    for round_ in range(3):
        arguments = {**EMAIL, "subject": f"Your refund ({round_})"}
        body, headers = e2e.tool_call("send_email", arguments)
        headers = {**headers, "authorization": f"Bearer {token}", "x-aigate-approval": service.approve(arguments)}
        responses = _race(gw, json.dumps(body).encode(), headers)
        accepted, replayed = [], []
        for r in responses:
            assert r.status_code == 200, r.text
            doc = r.json()
            if "error" in doc:
                assert doc["error"]["code"] == JSONRPC_POLICY_ERROR, doc
                assert doc["error"]["data"]["reason"] == "approval_replayed", doc
                replayed.append(r)
            else:
                accepted.append(r)
        assert (len(accepted), len(replayed)) == (1, RACERS - 1), [r.text[:200] for r in accepted]
        accepted_total += 1
        assert [t["arguments"]["subject"] for t in sent(record)][-1:] == [arguments["subject"]]
        for r in responses:
            w = _worker_of_eventually(gw, r.headers["x-aigate-decision-id"])
            workers.add(w)
    assert len(sent(record)) == accepted_total
    # Both workers judged copies: the single use held across them, not within one.
    assert len(workers - {None}) == 2, workers
    grew = e2e.metric_delta(before, gw.metrics())
    assert grew.get(e2e.metric_key("aigate_approvals_total", result="accepted")) == 3, grew
    assert grew.get(e2e.metric_key("aigate_approvals_total", result="approval_replayed")) == 3 * (RACERS - 1), grew


def _worker_of_eventually(gw: e2e.Envoy, decision_id: str, timeout: float = 5) -> str | None:
    deadline = time.monotonic() + timeout
    while True:
        w = _worker_of(gw, decision_id)
        if w is not None or time.monotonic() > deadline:
            return w
        time.sleep(0.1)
