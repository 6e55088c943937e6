//! Shared fixtures for tests against the real module: an identity provider that signs
//! EdDSA tokens, and the example policy with its JWKS filled in.
//!
//! Signing uses ed25519-dalek directly rather than the aigate rlib, so these tests depend
//! only on the compiled module.

#![allow(dead_code)]

use aigate_harness::{plugin_wasm, HostOptions, Plugin, Request, DEFAULT_TIME_NANOS};
use base64::Engine as _;
use ed25519_dalek::{Signer, SigningKey};
use serde_json::{json, Map, Value};

pub const ISSUER: &str = "https://idp.example.com";
pub const SUBJECT: &str = "alice@example.com";
pub const NOW: u64 = DEFAULT_TIME_NANOS / 1_000_000_000;

pub const REQUESTS_ALLOW_MCP: &str = "protocol=.=mcp;.;decision=.=allow;.;reason=.=none;.;aigate_requests_total";

pub fn requests_metric(protocol: &str, decision: &str, reason: &str) -> String {
    format!("protocol=.={protocol};.;decision=.={decision};.;reason=.={reason};.;aigate_requests_total")
}

pub struct Idp {
    key: SigningKey,
    kid: &'static str,
    pub public_jwk: Value,
}

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

impl Idp {
    /// A fixed Ed25519 key, so failures are reproducible.
    pub fn new() -> Idp {
        Idp::signer(7, "test-1")
    }

    /// Another fixed Ed25519 signer (an approval service, say), from a seed byte.
    pub fn signer(seed: u8, kid: &'static str) -> Idp {
        let key = SigningKey::from_bytes(&[seed; 32]);
        let public_jwk = json!({
            "kty": "OKP",
            "crv": "Ed25519",
            "x": b64(key.verifying_key().as_bytes()),
            "kid": kid,
            "alg": "EdDSA",
            "use": "sig",
        });
        Idp { key, kid, public_jwk }
    }

    /// Default claims for the support agent acting for alice, valid from `NOW` for 5 min.
    pub fn claims(&self) -> Map<String, Value> {
        let v = json!({
            "iss": ISSUER,
            "aud": "aigate",
            "sub": SUBJECT,
            "tenant": "acme",
            "azp": "support-agent",
            "scope": "orders.read tickets.read email.send docs.read",
            "customer_id": "c-42",
            "iat": NOW,
            "exp": NOW + 300,
        });
        match v {
            Value::Object(m) => m,
            _ => unreachable!(),
        }
    }

    /// A compact JWS: `{"alg":"EdDSA","kid":…,"typ":"JWT"}`.`claims`.`signature`.
    pub fn sign(&self, claims: &Map<String, Value>) -> String {
        let header = json!({"alg": "EdDSA", "kid": self.kid, "typ": "JWT"}).to_string();
        let payload = Value::Object(claims.clone()).to_string();
        let input = format!("{}.{}", b64(header.as_bytes()), b64(payload.as_bytes()));
        let signature = self.key.sign(input.as_bytes());
        format!("{input}.{}", b64(&signature.to_bytes()))
    }

    pub fn token(&self) -> String {
        self.sign(&self.claims())
    }

    /// A token with some claims replaced (`null` removes a claim).
    pub fn token_with(&self, changes: Value) -> String {
        let mut claims = self.claims();
        if let Value::Object(changes) = changes {
            for (k, v) in changes {
                if v.is_null() {
                    claims.remove(&k);
                } else {
                    claims.insert(k, v);
                }
            }
        }
        self.sign(&claims)
    }
}

/// `examples/policy.json` with the IdP's key in the JWKS.
pub fn policy(idp: &Idp) -> Value {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples/policy.json");
    let text = std::fs::read_to_string(path).expect("examples/policy.json");
    let mut policy: Value = serde_json::from_str(&text).expect("policy json");
    policy["identity"]["jwt"]["issuers"][0]["jwks"] = json!({ "keys": [idp.public_jwk.clone()] });
    policy
}

/// Envoy ≥ 1.35 with `allow_on_headers_stop_iteration: true`, policy `hold: headers`.
pub fn envoy_hold_headers() -> HostOptions {
    HostOptions {
        allow_on_headers_stop_iteration: true,
        ..HostOptions::default()
    }
}

/// Loads the module with a policy, asserting it configures.
pub fn load(policy: &Value, options: HostOptions) -> Plugin {
    let wasm = plugin_wasm().unwrap_or_else(|e| panic!("{e}"));
    let plugin = Plugin::load_with(wasm, &policy.to_string(), options).unwrap_or_else(|e| panic!("{e}"));
    assert!(plugin.configure_ok(), "policy rejected; logs: {:?}", plugin.logs());
    plugin
}

/// The two ways to run the plugin in Envoy: hold at headers (needs
/// `allow_on_headers_stop_iteration`) and hold the body only (every host).
pub fn both_hold_modes(idp: &Idp) -> Vec<(&'static str, Plugin)> {
    let mut headers = policy(idp);
    headers["hold"] = json!("headers");
    let mut body = policy(idp);
    body["hold"] = json!("body");
    vec![
        ("hold=headers", load(&headers, envoy_hold_headers())),
        ("hold=body", load(&body, HostOptions::default())),
    ]
}

pub fn tools_call(id: Value, tool: &str, arguments: Value) -> String {
    json!({
        "jsonrpc": "2.0",
        "id": id,
        "method": "tools/call",
        "params": { "name": tool, "arguments": arguments }
    })
    .to_string()
}

/// An MCP POST with a bearer token and JSON body.
pub fn mcp_post(token: &str, body: &str) -> Request {
    Request::post("/mcp")
        .bearer(token)
        .set_header("accept", "application/json, text/event-stream")
        .json(body.as_bytes().to_vec())
}

/// The audit lines (`"type":"aigate.decision"`) logged during a request.
pub fn audit_lines(outcome: &aigate_harness::Outcome) -> Vec<Value> {
    outcome
        .logs
        .iter()
        .filter_map(|l| serde_json::from_str::<Value>(&l.message).ok())
        .filter(|v| v["type"] == "aigate.decision")
        .collect()
}
