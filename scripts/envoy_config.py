#!/usr/bin/env python3
"""Render a runnable Envoy config for aigate from a template in envoy/templates/.

Ports, paths and the policy differ between the committed example, the demo and each test
run, so the Envoy configs are templates with ${NAME} placeholders and this renders them.
Usable as a library (tests, demo) and from the command line:

    python3 scripts/envoy_config.py --variant headers --policy examples/policy.json \\
        --listen-port 10000 --admin-port 9901 --upstream-port 8000 -o envoy/envoy.yaml

Variants (see the comment at the top of each template):
  headers        envoy/templates/mcp-hold-headers.yaml  policy "hold": "headers" + allow_on_headers_stop_iteration
  body           envoy/templates/mcp-hold-body.yaml     policy "hold": "body" (the Istio way)
  jwt_authn      envoy/templates/mcp-jwt-authn.yaml     jwt_authn verifies; policy identity.source "jwt_authn"
  istio          envoy/templates/istio-wasmplugin.yaml  an Istio WasmPlugin manifest ("hold": "body")
  envoy_gateway  envoy/templates/envoy-gateway-extension.yaml  an Envoy Gateway EnvoyExtensionPolicy ("hold": "body")

The policy is embedded inline (google.protobuf.StringValue). Its "hold" must agree with the
variant: it is filled in when absent and a conflict is an error (a mismatch hangs requests).
"""

from __future__ import annotations

import argparse
import json
import string
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
TEMPLATES = REPO / "envoy" / "templates"
DEFAULT_WASM = "target/wasm32-wasip1/release/aigate.wasm"

VARIANTS = {
    "headers": ("mcp-hold-headers.yaml", "headers"),
    "body": ("mcp-hold-body.yaml", "body"),
    "jwt_authn": ("mcp-jwt-authn.yaml", "headers"),
    "istio": ("istio-wasmplugin.yaml", "body"),
    "envoy_gateway": ("envoy-gateway-extension.yaml", "body"),
}
# Kubernetes manifests: the policy is YAML (a JSON object) under pluginConfig / config.
MANIFESTS = {"istio": 4, "envoy_gateway": 8}

# The plugin's default limits.max_body_bytes (src/config.rs).
DEFAULT_MAX_BODY_BYTES = 1024 * 1024
# Envoy must be able to buffer a body somewhat over the policy limit so that the plugin
# sees it and answers 413 body_too_large itself (with an audit record and a decision id).
# Bodies beyond limit + headroom get Envoy's own 413 (buffer overflow), still never forwarded.
BUFFER_HEADROOM_BYTES = 64 * 1024
# The upstream cluster's buffer limit: how much Envoy reads from the upstream at a time.
# Half the headroom, so the listener buffer fits what the plugin holds plus one piece.
UPSTREAM_READ_BYTES = BUFFER_HEADROOM_BYTES // 2

# Column of the policy JSON inside the `value: |` block scalar of the templates.
POLICY_INDENT = 20


class RenderError(ValueError):
    pass


def _scalar(value: object) -> str:
    """A YAML flow scalar: JSON is valid YAML for strings, numbers and lists."""
    return json.dumps(value)


def policy_for_variant(variant: str, policy: dict) -> dict:
    """Return a copy of the policy with `hold` (and the identity source) checked for the variant."""
    if variant not in VARIANTS:
        raise RenderError(f"unknown variant {variant!r}; one of {', '.join(VARIANTS)}")
    hold = VARIANTS[variant][1]
    policy = json.loads(json.dumps(policy))
    have = policy.get("hold")
    if have is None:
        policy["hold"] = hold
    elif have != hold:
        raise RenderError(
            f"variant {variant!r} needs policy \"hold\": \"{hold}\", the policy says \"{have}\""
        )
    source = policy.get("identity", {}).get("source")
    if variant == "jwt_authn" and source != "jwt_authn":
        raise RenderError('variant "jwt_authn" needs policy identity.source "jwt_authn"')
    if variant != "jwt_authn" and source == "jwt_authn":
        raise RenderError(
            f'policy identity.source "jwt_authn" needs variant "jwt_authn", not {variant!r}'
        )
    return policy


def buffer_limit(policy: dict) -> int:
    max_body = policy.get("limits", {}).get("max_body_bytes", DEFAULT_MAX_BODY_BYTES)
    return int(max_body) + BUFFER_HEADROOM_BYTES


def render(
    variant: str,
    policy: dict,
    *,
    listen_port: int,
    admin_port: int,
    upstream_port: int,
    wasm_path: str = DEFAULT_WASM,
    access_log_path: str = "/dev/stdout",
    jwt_provider: dict | None = None,
    with_wasm: bool = True,
    source_note: str | None = None,
) -> str:
    """Render one variant. `jwt_provider` = {"issuer", "audiences", "jwks"} for jwt_authn.

    `with_wasm=False` drops the aigate filter (for debugging the Envoy/upstream path only).
    """
    policy = policy_for_variant(variant, policy)
    template_name = VARIANTS[variant][0]
    text = (TEMPLATES / template_name).read_text()
    values = {
        "LISTEN_PORT": str(int(listen_port)),
        "ADMIN_PORT": str(int(admin_port)),
        "UPSTREAM_PORT": str(int(upstream_port)),
        "WASM_PATH": _scalar(str(wasm_path)),
        "ACCESS_LOG_PATH": _scalar(str(access_log_path)),
        "MAX_BODY_BYTES": str(policy.get("limits", {}).get("max_body_bytes", DEFAULT_MAX_BODY_BYTES)),
        "BUFFER_LIMIT": str(buffer_limit(policy)),
        "UPSTREAM_READ_BYTES": str(UPSTREAM_READ_BYTES),
        "POLICY": "\n".join(
            " " * MANIFESTS.get(variant, POLICY_INDENT) + line
            for line in json.dumps(policy, indent=2).splitlines()
        ),
    }
    if variant == "jwt_authn":
        if jwt_provider is None:
            # A jwt_authn policy carries no issuers of its own: Envoy's provider is separate.
            raise RenderError("variant jwt_authn needs --jwt-provider (issuer, audiences, jwks)")
        payload_key = policy.get("identity", {}).get("jwt_authn", {}).get("payload_key")
        if not payload_key:
            raise RenderError("policy identity.jwt_authn.payload_key is required for jwt_authn")
        values.update(
            JWT_ISSUER=_scalar(jwt_provider["issuer"]),
            JWT_AUDIENCES=_scalar(list(jwt_provider["audiences"])),
            JWT_PAYLOAD_KEY=_scalar(payload_key),
            JWT_JWKS=_scalar(json.dumps(jwt_provider["jwks"], separators=(",", ":"))),
        )
    # Drop the template-only note; say where the file came from instead.
    lines = [l for l in text.splitlines() if not l.startswith("# Template for scripts/envoy_config.py")]
    text = "\n".join(lines) + "\n"
    out = string.Template(text).substitute(values)
    if not with_wasm:
        out = _drop_wasm_filter(out)
    header = f"# Rendered by scripts/envoy_config.py from envoy/templates/{template_name}"
    if source_note:
        header += f" ({source_note})"
    header += "; edit the template, not this file.\n"
    if variant not in MANIFESTS:
        header += "# Relative paths resolve against Envoy's working directory: run it from the repository root.\n"
    return header + out


def _drop_wasm_filter(text: str) -> str:
    out, skipping = [], False
    for line in text.splitlines():
        if line.strip() == "- name: envoy.filters.http.wasm":
            skipping = True
            continue
        if skipping and line.strip().startswith("- name: envoy.filters.http.router"):
            skipping = False
        if not skipping:
            out.append(line)
    return "\n".join(out) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--variant", choices=sorted(VARIANTS), default="headers")
    p.add_argument("--policy", required=True, help="policy JSON file")
    p.add_argument("--listen-port", type=int, default=10000)
    p.add_argument("--admin-port", type=int, default=9901)
    p.add_argument("--upstream-port", type=int, default=8000)
    p.add_argument("--wasm", default=DEFAULT_WASM, help="path to aigate.wasm (relative to Envoy's cwd)")
    p.add_argument("--access-log", default="/dev/stdout")
    p.add_argument("--jwt-provider", help="JSON file {issuer, audiences, jwks} for --variant jwt_authn")
    p.add_argument("--jwks", help="JWKS file to put into the policy's first issuer (identity.jwt.issuers[0].jwks)")
    p.add_argument("--no-wasm", action="store_true", help="omit the aigate filter (debugging only)")
    p.add_argument("-o", "--output", help="write here (default stdout)")
    p.add_argument("--check", action="store_true", help="exit 1 if --output differs from the rendering")
    p.add_argument("--policy-out", help="also write the policy exactly as embedded (with hold and --jwks "
                   "filled in): the file to give `aigate readiness`, whose policy_hash the audit lines name")
    a = p.parse_args(argv)
    try:
        policy = json.loads(Path(a.policy).read_text())
        if a.jwks:
            issuers = policy.get("identity", {}).get("jwt", {}).get("issuers") or []
            if not issuers:
                raise RenderError("--jwks needs a policy with identity.jwt.issuers")
            issuers[0]["jwks"] = json.loads(Path(a.jwks).read_text())
        provider = json.loads(Path(a.jwt_provider).read_text()) if a.jwt_provider else None
        text = render(
            a.variant,
            policy,
            listen_port=a.listen_port,
            admin_port=a.admin_port,
            upstream_port=a.upstream_port,
            wasm_path=a.wasm,
            access_log_path=a.access_log,
            jwt_provider=provider,
            with_wasm=not a.no_wasm,
            source_note=f"--variant {a.variant} --policy {a.policy}" + (f" --jwks {a.jwks}" if a.jwks else ""),
        )
    except (OSError, ValueError, KeyError) as e:
        print(f"envoy_config: {e}", file=sys.stderr)
        return 2
    if a.check:
        if not a.output:
            print("envoy_config: --check needs --output", file=sys.stderr)
            return 2
        if not Path(a.output).is_file() or Path(a.output).read_text() != text:
            print(f"envoy_config: {a.output} is out of date; re-render it", file=sys.stderr)
            return 1
        return 0
    if a.policy_out:
        Path(a.policy_out).write_text(json.dumps(policy_for_variant(a.variant, policy), indent=2) + "\n")
    if a.output:
        Path(a.output).write_text(text)
    else:
        sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
