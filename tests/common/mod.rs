//! Shared fixtures for the engine tests: a policy, signing keys, a plain-value host.
#![allow(dead_code)]

pub mod llm;

use aigate::engine::{self, Decision, Head};
use aigate::jws::SigningKey;
use aigate::policy::{self, Policy};
use aigate::request::{Headers, Host, MemoryShared, SetError, SharedData};
use base64::Engine as _;
use serde_json::{json, Map, Value};

pub const NOW: u64 = 1_800_000_000;
/// How long before `NOW` the policy was loaded (when the approval record began).
pub const LOADED_BEFORE: u64 = 3600;

/// RFC 8037's Ed25519 test key: the identity provider.
pub fn idp_key() -> Value {
    json!({"kty": "OKP", "crv": "Ed25519", "kid": "idp-1",
        "d": "nWGxne_9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A",
        "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"})
}

/// The approval service's HMAC key.
pub fn approval_key() -> Value {
    json!({"kty": "oct", "kid": "approvals-1", "k": b64(&[7u8; 32])})
}

pub fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

pub fn call(tool: &str, args: Value) -> Value {
    json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": tool, "arguments": args}})
}

pub fn rpc(method: &str, params: Value) -> Value {
    json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": params})
}

#[derive(Default)]
pub struct TestHost {
    pub now: u64,
    pub peer: Option<String>,
    pub payload: Option<Map<String, Value>>,
    pub shared_fails: bool,
    /// How many times shared data was read: the cost that must not grow with what a
    /// request or an answer repeats.
    pub shared_reads: std::cell::Cell<usize>,
    store: MemoryShared,
}

impl TestHost {
    /// The gateway restarts at `at`: its shared data, and with it the record of used
    /// grants, starts empty; loading the policy begins a new record.
    pub fn restart(&mut self, at: u64) {
        self.store = MemoryShared::default();
        aigate::approval::replay::prepare(&self.store, at);
    }
}

impl Host for TestHost {
    fn now(&self) -> u64 {
        self.now
    }
    fn peer_uri_san(&self) -> Option<String> {
        self.peer.clone()
    }
    fn jwt_payload(&self, _ns: &str, _key: &str) -> Option<Map<String, Value>> {
        self.payload.clone()
    }
    fn shared(&self) -> &dyn SharedData {
        self
    }
}

impl SharedData for TestHost {
    fn get(&self, key: &str) -> Option<(Vec<u8>, u32)> {
        self.shared_reads.set(self.shared_reads.get() + 1);
        self.store.get(key)
    }
    fn set(&self, key: &str, value: &[u8], cas: u32) -> Result<(), SetError> {
        if self.shared_fails {
            return Err(SetError::Other);
        }
        self.store.set(key, value, cas)
    }
}

pub struct World {
    pub policy: Policy,
    pub host: TestHost,
    pub idp: SigningKey,
    pub approvals: SigningKey,
}

pub fn policy_doc() -> Value {
    let mut p: Value = serde_json::from_str(include_str!("../../examples/policy.json")).unwrap();
    let idp = SigningKey::from_jwk(&idp_key()).unwrap();
    p["identity"]["jwt"]["issuers"][0]["jwks"] = json!({"keys": [idp.public_jwk().unwrap()]});
    p["approval"] = json!({
        "issuer": "https://approvals.example.com",
        "audience": "aigate",
        "jwks": {"keys": [approval_key()]},
        "max_age_seconds": 600,
        "request_url": "https://approvals.example.com/new?tool={tool}&digest={digest}&subject={subject}"
    });
    p
}

/// `base` with each key of `overrides` set, or removed where the override is `null`.
fn overridden(mut base: Map<String, Value>, overrides: Value) -> Map<String, Value> {
    for (k, v) in overrides.as_object().unwrap() {
        if v.is_null() {
            base.remove(k);
        } else {
            base.insert(k.clone(), v.clone());
        }
    }
    base
}

impl World {
    pub fn new() -> World {
        World::with(|_| {})
    }

    pub fn with(edit: impl FnOnce(&mut Value)) -> World {
        let mut doc = policy_doc();
        edit(&mut doc);
        let policy = policy::compile(doc.to_string().as_bytes()).unwrap_or_else(|e| panic!("{e:?}"));
        let host = TestHost {
            now: NOW,
            ..TestHost::default()
        };
        // As the plugin does when it loads the policy: an hour before the requests.
        aigate::approval::replay::prepare(&host.store, NOW - LOADED_BEFORE);
        World {
            policy,
            host,
            idp: SigningKey::from_jwk(&idp_key()).unwrap(),
            approvals: SigningKey::from_jwk(&approval_key()).unwrap(),
        }
    }

    /// A world whose tokens are signed by a key the policy does not trust.
    pub fn with_other_key() -> World {
        let mut w = World::new();
        let mut k = idp_key();
        k["d"] = json!(b64(&[9u8; 32]));
        k.as_object_mut().unwrap().remove("x");
        w.idp = SigningKey::from_jwk(&k).unwrap();
        w
    }

    /// Default claims, overridden by `overrides` (a null removes the claim).
    pub fn claims(&self, overrides: Value) -> Map<String, Value> {
        let c = json!({
            "iss": "https://idp.example.com", "aud": "aigate", "sub": "alice", "tenant": "acme",
            "customer_id": "c-42", "azp": "support-agent",
            "scope": "orders.read orders.refund email.send docs.read",
            "iat": self.host.now - 10, "exp": self.host.now + 300,
        })
        .as_object()
        .unwrap()
        .clone();
        overridden(c, overrides)
    }

    pub fn token(&self, overrides: Value) -> String {
        self.idp.sign(&self.claims(overrides))
    }

    pub fn grant_claims(&self, overrides: Value) -> Map<String, Value> {
        let c = json!({
            "iss": "https://approvals.example.com", "aud": "aigate", "sub": "alice", "tool": "send_email",
            "approver": "carol@example.com", "jti": "grant-1",
            "iat": self.host.now - 5, "exp": self.host.now + 120,
        })
        .as_object()
        .unwrap()
        .clone();
        overridden(c, overrides)
    }

    pub fn grant(&self, overrides: Value) -> String {
        self.approvals.sign(&self.grant_claims(overrides))
    }

    /// A grant for exactly these arguments of `send_email`, with this `jti`.
    pub fn grant_for(&self, args: &Value, jti: &str) -> String {
        self.grant(json!({"args_digest": aigate::digest::args_digest(args).unwrap(), "jti": jti}))
    }

    /// Decides an MCP request of `token` carrying `approval` (one or more grants).
    pub fn decide_approved(&self, token: &str, approval: &str, body: &Value) -> Decision {
        let mut h = self.headers(Some(token));
        h.push(("x-aigate-approval".into(), approval.as_bytes().to_vec()));
        self.decide(&h, Some(body))
    }

    pub fn headers(&self, token: Option<&str>) -> Vec<(String, Vec<u8>)> {
        let mut h = vec![
            (":method".to_string(), b"POST".to_vec()),
            (":path".to_string(), b"/mcp".to_vec()),
            (":authority".to_string(), b"gateway.example.com".to_vec()),
            ("content-type".to_string(), b"application/json".to_vec()),
        ];
        if let Some(t) = token {
            h.push(("authorization".to_string(), format!("Bearer {t}").into_bytes()));
        }
        h
    }

    pub fn decide(&self, headers: &[(String, Vec<u8>)], body: Option<&Value>) -> Decision {
        let bytes = body.map(|b| b.to_string().into_bytes());
        self.decide_raw(headers, bytes.as_deref())
    }

    pub fn decide_raw(&self, headers: &[(String, Vec<u8>)], body: Option<&[u8]>) -> Decision {
        let headers = Headers::new(headers.to_vec());
        match engine::on_headers(&self.policy, &headers, &self.host, body.is_some()) {
            Head::Decided(d) => d,
            Head::NeedBody(d) => engine::on_body(&self.policy, d, &headers, body.unwrap_or_default(), &self.host),
        }
    }
}
