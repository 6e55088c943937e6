//! aigate's per-request computation in a loop, without a host: what the plugin runs
//! between its host calls for one allowed MCP `tools/call` (headers handed over, identity
//! with the cached token, body parsed and judged, audit line, decision id; metric ids are
//! table lookups, nothing to measure; then the server's answer, read for resources).
//!
//!     aigate-bench-driver [BODY_BYTES [ITERATIONS [cached|nocache]]]
//!
//! Prints nanoseconds per request. Built for wasm32-wasip1 and run by Node (V8, the
//! runtime Envoy embeds) with `--cpu-prof`, or natively under callgrind, to see where
//! the time goes (`scripts/bench.sh --profile`).

use aigate::engine::{self, Head};
use aigate::identity::cache::TokenCache;
use aigate::jws::SigningKey;
use aigate::policy::{self, Policy};
use aigate::request::{Headers, Host, SetError, SharedData};
use serde_json::{json, Map, Value};
use std::hint::black_box;
use std::time::Instant;

const NOW: u64 = 1_800_000_000;

struct DriverHost {
    cache: Option<TokenCache>,
}

impl SharedData for DriverHost {
    fn get(&self, _key: &str) -> Option<(Vec<u8>, u32)> {
        None
    }
    fn set(&self, _key: &str, _value: &[u8], _cas: u32) -> Result<(), SetError> {
        Err(SetError::Other)
    }
}

impl Host for DriverHost {
    fn now(&self) -> u64 {
        NOW
    }
    fn peer_uri_san(&self) -> Option<String> {
        None
    }
    fn jwt_payload(&self, _namespace: &str, _key: &str) -> Option<Map<String, Value>> {
        None
    }
    fn shared(&self) -> &dyn SharedData {
        self
    }
    fn token_cache(&self) -> Option<&TokenCache> {
        self.cache.as_ref()
    }
}

fn setup() -> (Policy, Vec<(String, Vec<u8>)>) {
    // An Ed25519 key from a fixed seed (base64url of 32 bytes of 1).
    let idp = SigningKey::from_jwk(&json!({"kty": "OKP", "crv": "Ed25519", "kid": "bench-1",
        "d": "AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE"}))
    .expect("key");
    let mut doc: Value = serde_json::from_str(include_str!("../../../envoy/bench/policy.json")).expect("policy");
    doc["identity"]["jwt"]["issuers"][0]["jwks"] = json!({"keys": [idp.public_jwk().expect("jwk")]});
    let policy = policy::compile(doc.to_string().as_bytes()).expect("compile");
    let claims = json!({
        "iss": "https://idp.bench.example", "aud": "aigate", "sub": "alice", "tenant": "acme",
        "customer_id": "c-42", "azp": "support-agent", "scope": "orders.read tickets.read",
        "iat": NOW - 10, "exp": NOW + 3000
    });
    let token = idp.sign(claims.as_object().expect("claims"));
    let headers = vec![
        (":authority".into(), b"bench.local".to_vec()),
        (":path".into(), b"/mcp".to_vec()),
        (":method".into(), b"POST".to_vec()),
        (":scheme".into(), b"http".to_vec()),
        ("content-length".into(), b"1024".to_vec()),
        ("content-type".into(), b"application/json".to_vec()),
        ("accept".into(), b"application/json, text/event-stream".to_vec()),
        ("authorization".into(), format!("Bearer {token}").into_bytes()),
        ("x-forwarded-proto".into(), b"http".to_vec()),
        ("x-request-id".into(), b"5f0c5b0e-2b8f-4f43-9a8a-0d2b9e0f6d1a".to_vec()),
    ];
    (policy, headers)
}

fn body(size: usize) -> Vec<u8> {
    let doc = |pad: &str| {
        json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call",
               "params": {"name": "get_order", "arguments": {"customer_id": "c-42", "note": pad}}})
        .to_string()
        .into_bytes()
    };
    let base = doc("").len();
    doc(&"x".repeat(size.saturating_sub(base)))
}

fn one(
    policy: &Policy,
    pairs: &[(String, Vec<u8>)],
    body: &[u8],
    host: &DriverHost,
    n: u64,
) {
    let decision_id = aigate::audit::decision_id(0x1234_5678_9abc_def0, n);
    let headers = Headers::new(pairs.to_vec());
    let d = match engine::on_headers(policy, &headers, host, true) {
        Head::Decided(d) => d,
        Head::NeedBody(d) => engine::on_body(policy, d, &headers, body, host),
    };
    assert!(d.allowed(), "{:?}", d.denial);
    black_box(aigate::audit::record(policy, &d, &decision_id, NOW * 1_000_000_000));
    // The server's answer, read for resources outside the caller's boundary; it passes
    // whole, so it writes no audit line of its own.
    let (answer, rewritten) = engine::whole_answer(policy, &d, ANSWER, &decision_id);
    assert!(answer.allowed() && rewritten.is_none(), "{:?}", answer.denial);
    black_box(answer);
}

/// A tool's result as an MCP server sends it.
const ANSWER: &[u8] =
    br#"{"jsonrpc":"2.0","id":1,"result":{"content":[{"type":"text","text":"order o-1: shipped"}],"isError":false}}"#;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let size: usize = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(1024);
    let iters: u64 = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(20_000);
    let cached = args.get(3).is_none_or(|m| m != "nocache");
    let (policy, pairs) = setup();
    let body = body(size);
    let host = DriverHost {
        cache: cached.then(TokenCache::default),
    };
    // Warm-up: V8 tiers hot functions up (Liftoff -> TurboFan) after a while.
    for n in 0..iters / 4 {
        one(&policy, &pairs, &body, &host, n);
    }
    let t = Instant::now();
    for n in 0..iters {
        one(&policy, &pairs, &body, &host, n);
    }
    let ns = t.elapsed().as_nanos() as f64 / iters as f64;
    println!(
        "{{\"body_bytes\":{},\"iterations\":{iters},\"cached\":{cached},\"ns_per_request\":{ns:.0}}}",
        body.len()
    );
}
