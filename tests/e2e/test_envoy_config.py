"""The shipped Envoy configs: templates render, Envoy (with the real plugin) accepts them,
the committed example is current, and an invalid policy is refused by Envoy."""

from __future__ import annotations

import json
import subprocess

import pytest

import aigate_e2e as e2e
import envoy_config

EXAMPLE = e2e.REPO / "envoy" / "envoy.yaml"
# The command that renders envoy/envoy.yaml (also in envoy/README.md).
EXAMPLE_ARGS = ["--variant", "headers", "--policy", "examples/policy.json", "--jwks", "envoy/example-jwks.json",
                "--listen-port", "10000", "--admin-port", "9901", "--upstream-port", "8000", "-o", "envoy/envoy.yaml"]


def validate(path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [e2e.envoy_bin(), "--mode", "validate", "-c", str(path), "--log-level", "warn", "--base-id", str(e2e.free_port())],
        capture_output=True, text=True, timeout=120, cwd=e2e.REPO,
    )


def test_committed_example_is_current(monkeypatch):
    monkeypatch.chdir(e2e.REPO)
    assert envoy_config.main([*EXAMPLE_ARGS, "--check"]) == 0, \
        "envoy/envoy.yaml is stale: python3 scripts/envoy_config.py " + " ".join(EXAMPLE_ARGS)


def test_committed_example_validates(wasm_module):
    r = validate(EXAMPLE)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]


@pytest.mark.parametrize("variant", ["headers", "body", "jwt_authn"])
def test_variant_validates(variant, tmp_path, keys, approval_key, wasm_module):
    policy = e2e.e2e_policy(keys, approval_key, source="jwt_authn" if variant == "jwt_authn" else "jwt")
    provider = {"issuer": e2e.ISSUER, "audiences": [e2e.AUDIENCE], "jwks": e2e.jwks(keys)}
    text = envoy_config.render(variant, policy, listen_port=e2e.free_port(), admin_port=e2e.free_port(),
                               upstream_port=e2e.free_port(), wasm_path=str(wasm_module), jwt_provider=provider)
    assert "failure_policy: FAIL_CLOSED" in text and "envoy.wasm.runtime.v8" in text
    assert ("allow_on_headers_stop_iteration: true" in text) == (variant != "body")
    assert f'"hold": "{"body" if variant == "body" else "headers"}"' in text
    assert f"per_connection_buffer_limit_bytes: {e2e.E2E_MAX_BODY_BYTES + envoy_config.BUFFER_HEADROOM_BYTES}" in text
    path = tmp_path / "envoy.yaml"
    path.write_text(text)
    r = validate(path)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]


def test_invalid_policy_is_refused_by_envoy(tmp_path, keys, wasm_module):
    policy = e2e.e2e_policy(keys)
    policy["identity"]["no_such_field"] = True  # config is strict: unknown fields are errors
    text = envoy_config.render("headers", policy, listen_port=e2e.free_port(), admin_port=e2e.free_port(),
                               upstream_port=e2e.free_port(), wasm_path=str(wasm_module))
    path = tmp_path / "envoy.yaml"
    path.write_text(text)
    r = validate(path)
    assert r.returncode != 0, "Envoy accepted a config whose policy has an unknown field"
    # Refused by the plugin (its on_configure logs why), not by Envoy over something else.
    output = r.stdout + r.stderr
    assert "aigate: invalid policy: identity.no_such_field" in output, output[-3000:]


def test_renderer_refuses_hold_mismatch(keys):
    policy = e2e.e2e_policy(keys)
    policy["hold"] = "headers"
    with pytest.raises(envoy_config.RenderError):
        envoy_config.render("body", policy, listen_port=1, admin_port=2, upstream_port=3)
    policy["hold"] = "body"
    with pytest.raises(envoy_config.RenderError):
        envoy_config.render("headers", policy, listen_port=1, admin_port=2, upstream_port=3)


def test_renderer_refuses_identity_source_mismatch(keys):
    with pytest.raises(envoy_config.RenderError):
        envoy_config.render("jwt_authn", e2e.e2e_policy(keys), listen_port=1, admin_port=2, upstream_port=3)
    with pytest.raises(envoy_config.RenderError):
        envoy_config.render("headers", e2e.e2e_policy(keys, source="jwt_authn"), listen_port=1, admin_port=2,
                            upstream_port=3)


def test_policy_is_embedded_verbatim(keys):
    policy = e2e.e2e_policy(keys)
    text = envoy_config.render("body", policy, listen_port=1, admin_port=2, upstream_port=3)
    block = text.split("value: |\n", 1)[1].split("\n          - name: envoy.filters.http.router", 1)[0]
    embedded = json.loads("\n".join(line[envoy_config.POLICY_INDENT:] for line in block.splitlines()))
    assert embedded == {**policy, "hold": "body"}


# Kubernetes manifests: the committed files are current, and the policy they carry is one
# the plugin accepts (loaded by a real Envoy the way the mesh would load it: hold "body").
MANIFESTS = {"istio": ("envoy/istio/wasmplugin.yaml", "pluginConfig:"),
             "envoy_gateway": ("envoy/envoy-gateway/extension-policy.yaml", "config:")}


@pytest.mark.parametrize("variant", sorted(MANIFESTS))
def test_manifest_is_current_and_its_policy_loads(variant, tmp_path, monkeypatch, wasm_module):
    path, key = MANIFESTS[variant]
    monkeypatch.chdir(e2e.REPO)
    args = ["--variant", variant, "--policy", "examples/policy.json", "-o", path]
    assert envoy_config.main([*args, "--check"]) == 0, \
        f"{path} is stale: python3 scripts/envoy_config.py " + " ".join(args)
    text = (e2e.REPO / path).read_text()
    assert "FAIL_CLOSE" in text or "failOpen: false" in text
    # The policy is the JSON object after the key, to the end of the file.
    policy = json.loads(text.split(f"\n{' ' * (2 if variant == 'istio' else 6)}{key}\n", 1)[1])
    assert policy["hold"] == "body", "meshes have no allow_on_headers_stop_iteration"
    expected = json.loads((e2e.REPO / "examples" / "policy.json").read_text())
    assert {k: v for k, v in policy.items() if k != "hold"} == expected
    if variant == "envoy_gateway":
        # Envoy Gateway's 32 KiB listener buffer would answer larger calls with its own 413.
        assert f"bufferLimit: {envoy_config.buffer_limit(policy)}\n" in text
    envoy_yaml = tmp_path / "envoy.yaml"
    envoy_yaml.write_text(envoy_config.render("body", policy, listen_port=e2e.free_port(), admin_port=e2e.free_port(),
                                              upstream_port=e2e.free_port(), wasm_path=str(wasm_module)))
    r = validate(envoy_yaml)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]


def test_policy_out_is_the_policy_the_manifest_carries(tmp_path, monkeypatch):
    """`--policy-out` writes the policy as embedded (hold filled in), so the release gate
    judges, and names the hash of, the bytes the mesh loads."""
    monkeypatch.chdir(e2e.REPO)
    out, policy_out = tmp_path / "wasmplugin.yaml", tmp_path / "policy.json"
    assert envoy_config.main(["--variant", "istio", "--policy", "examples/policy.json", "-o", str(out),
                              "--policy-out", str(policy_out)]) == 0
    embedded = json.loads(out.read_text().split("\n  pluginConfig:\n", 1)[1])
    written = json.loads(policy_out.read_text())
    assert written == embedded and written["hold"] == "body"
    # A stale or missing --check target is reported, never a traceback.
    assert envoy_config.main(["--variant", "istio", "--policy", "examples/policy.json",
                              "-o", str(tmp_path / "missing.yaml"), "--check"]) == 1
