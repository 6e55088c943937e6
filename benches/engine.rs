//! Engine micro-benchmarks, native: what one request costs aigate's pure code, without
//! Envoy or the Wasm VM around it (`cargo bench --bench engine`). The Envoy ladder
//! (`scripts/bench.sh`) measures the same work inside Envoy.
//!
//! - `decide/2KiB/*`: route → identity → parse → judge of an MCP `tools/call` of 2 KiB,
//!   with no token cache (every request verifies the Ed25519 signature), a cold cache
//!   (verify + insert) and a warm one.
//! - `jwt_verify/*`: signature verification and claim parsing per algorithm.
//! - `identity/*`: `identity::authenticate` with the token cache missing and hitting.
//! - `approval_verify/*`: a fresh single-use grant checked for an external-impact call
//!   (digest of the arguments, signature, claims, replay store).
//! - `decide_by_size/*`: the cached-token decision for the body sizes of the ladder, to
//!   see that the cost grows linearly with the body.
//! - `decide_llm/*`: the cached-token decision of a 2 KiB request to each LLM API (a
//!   conversation with a system prompt, an earlier tool call and its result, tools offered).
//! - `answer/*`: reading and judging a model's answer with a tool call (JSON, and a stream
//!   fed in 64-byte pieces) per API, and filtering an MCP `tools/list` answer.

use aigate::approval;
use aigate::config::Protocol;
use aigate::engine::{self, Decision, Head};
use aigate::identity::cache::TokenCache;
use aigate::identity::{self, Principal};
use aigate::jws::{KeySet, SigningKey};
use aigate::output::{self, stream::Stream};
use aigate::policy::{self, Policy};
use aigate::request::{Headers, Host, MemoryShared, SharedData};
use base64::Engine as _;
use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use serde_json::{json, Map, Value};
use std::cell::Cell;
use std::hint::black_box;
use std::time::Duration;

const NOW: u64 = 1_800_000_000;

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

// --- a plain-value host ---------------------------------------------------------------

#[derive(Default)]
struct BenchHost {
    cache: Option<TokenCache>,
    data: MemoryShared,
}

impl BenchHost {
    fn cached() -> Self {
        BenchHost {
            cache: Some(TokenCache::default()),
            ..BenchHost::default()
        }
    }
}

impl Host for BenchHost {
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
        &self.data
    }
    fn token_cache(&self) -> Option<&TokenCache> {
        self.cache.as_ref()
    }
}

// --- the scenario: the ladder's policy, an identity provider, an approval service ----

struct World {
    policy: Policy,
    approvals: SigningKey,
    token: String,
}

fn ed_key(seed: u8, kid: &str) -> SigningKey {
    SigningKey::from_jwk(&json!({"kty": "OKP", "crv": "Ed25519", "kid": kid, "d": b64(&[seed; 32])})).unwrap()
}

fn claims(v: Value) -> Map<String, Value> {
    v.as_object().unwrap().clone()
}

impl World {
    fn new() -> World {
        let idp = ed_key(1, "bench-1");
        let approvals = ed_key(2, "approvals-1");
        let mut doc: Value = serde_json::from_str(include_str!("../envoy/bench/policy.json")).unwrap();
        doc["identity"]["jwt"]["issuers"][0]["jwks"] = json!({"keys": [idp.public_jwk().unwrap()]});
        doc["tools"]["send_email"] = json!({
            "intent": "email.send", "impact": "external", "owner": "comms@example.com",
            "constraints": {"/to": {"required": true, "suffix_in": ["@example.com"]}}
        });
        doc["workloads"][0]["scopes"] = json!(["orders.*", "tickets.*", "email.send"]);
        let routes = doc["routes"].as_array_mut().unwrap();
        for (id, protocol) in [
            ("chat", "openai_chat"),
            ("responses", "openai_responses"),
            ("messages", "anthropic_messages"),
        ] {
            routes.push(json!({"id": id, "prefix": format!("/llm/{id}"), "protocol": protocol}));
        }
        doc["models"] = json!({"allow": ["bench-model"]});
        doc["approval"] = json!({
            "issuer": "https://approvals.bench.example", "audience": "aigate",
            "jwks": {"keys": [approvals.public_jwk().unwrap()]}, "max_age_seconds": 600
        });
        let policy = policy::compile(doc.to_string().as_bytes()).unwrap();
        let token = idp.sign(&claims(json!({
            "iss": "https://idp.bench.example", "aud": "aigate", "sub": "alice", "tenant": "acme",
            "customer_id": "c-42", "azp": "support-agent", "scope": "orders.read tickets.read email.send",
            "iat": NOW - 10, "exp": NOW + 3000
        })));
        World {
            policy,
            approvals,
            token,
        }
    }

    fn headers(&self) -> Headers {
        self.headers_for("/mcp")
    }

    fn headers_for(&self, path: &str) -> Headers {
        Headers::new(vec![
            (":method".into(), b"POST".to_vec()),
            (":path".into(), path.as_bytes().to_vec()),
            (":authority".into(), b"bench.local".to_vec()),
            ("content-type".into(), b"application/json".to_vec()),
            ("accept".into(), b"application/json, text/event-stream".to_vec()),
            ("authorization".into(), format!("Bearer {}", self.token).into_bytes()),
        ])
    }

    fn decide(&self, headers: &Headers, body: &[u8], host: &BenchHost) -> Decision {
        match engine::on_headers(&self.policy, headers, host, true) {
            Head::Decided(d) => d,
            Head::NeedBody(d) => engine::on_body(&self.policy, d, headers, body, host),
        }
    }

    fn principal(&self, host: &BenchHost) -> Principal {
        identity::authenticate(&self.policy, &self.headers(), host).unwrap()
    }
}

/// The ladder's request: `get_order` with its arguments padded to exactly `size` bytes.
fn tools_call(size: usize) -> Vec<u8> {
    let doc = |pad: &str| {
        json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call",
               "params": {"name": "get_order", "arguments": {"customer_id": "c-42", "note": pad}}})
        .to_string()
        .into_bytes()
    };
    let base = doc("").len();
    let body = doc(&"x".repeat(size.saturating_sub(base)));
    assert_eq!(body.len(), size.max(base));
    body
}

// --- benchmarks -------------------------------------------------------------------------

fn decide_2kib(c: &mut Criterion) {
    let w = World::new();
    let headers = w.headers();
    let body = tools_call(2 * 1024);
    let mut g = c.benchmark_group("decide/2KiB");
    g.throughput(Throughput::Bytes(body.len() as u64));
    let none = BenchHost::default();
    assert!(w.decide(&headers, &body, &none).allowed());
    g.bench_function("no_cache", |b| {
        b.iter(|| black_box(w.decide(&headers, black_box(&body), &none)))
    });
    g.bench_function("cold_cache", |b| {
        b.iter_batched_ref(
            BenchHost::cached,
            |host| black_box(w.decide(&headers, black_box(&body), host)),
            BatchSize::SmallInput,
        )
    });
    let warm = BenchHost::cached();
    assert!(w.decide(&headers, &body, &warm).allowed());
    g.bench_function("warm_cache", |b| {
        b.iter(|| black_box(w.decide(&headers, black_box(&body), &warm)))
    });
    g.finish();
}

fn jwt_verify(c: &mut Criterion) {
    // RS256: RFC 7515 appendix A.2 (the RSA-2048 key and its token). The others: a token
    // with the ladder's claims signed here.
    const A2_N: &str = "ofgWCuLjybRlzo0tZWJjNiuSfb4p4fAkd_wWJcyQoTbji9k0l8W26mPddxHmfHQp-Vaw-4qPCJrcS2mJPMEzP1Pt0Bm4d4QlL-yRT-SFd2lZS-pCgNMsD1W_YpRPEwOWvG6b32690r2jZ47soMZo9wGzjb_7OMg0LOL-bSf63kpaSHSXndS5z5rexMdbBYUsLA9e-KXBdQOS-UTo7WTBEMa2R2CapHg665xsmtdVMTBQY4uDZlxvb3qCo5ZwKh9kG4LT6_I5IhlJH7aGhyxXFvUK-DWNmoudF8NAco9_h9iaGNj8q2ethFkMLs91kzk2PAcDTW9gb54h4FRWyuXpoQ";
    const A2_TOKEN: &str = "eyJhbGciOiJSUzI1NiJ9.eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFtcGxlLmNvbS9pc19yb290Ijp0cnVlfQ.cC4hiUPoj9Eetdgtv3hF80EGrhuB__dzERat0XF9g2VtQgr9PJbu3XOiZj5RZmh7AAuHIm4Bh-0Qc_lF5YKt_O8W2Fp5jujGbds9uJdbF9CUAr7t1dnZcAcQjbKBYNX4BAynRFdiuB--f_nZLgrnbyTyWzO75vRK5h6xBArLIARNPvkSjtQBMHlb1L07Qe7K0GarZRmB_eSN9383LcOLn6_dO--xi12jzDwusC-eOkHWEsqtFZESc6BfI7noOPqvhJ1phCnvWh6IeYI2w9QOYEUipUTI8np6LbgGY9Fs98rqVt5AXLIhWkWywlVmtVrBp0igcN_IoypGlUPQGe77Rw";
    let c_ = claims(json!({
        "iss": "https://idp.bench.example", "aud": "aigate", "sub": "alice", "tenant": "acme",
        "customer_id": "c-42", "azp": "support-agent", "scope": "orders.read tickets.read",
        "iat": NOW - 10, "exp": NOW + 3000
    }));
    let es = SigningKey::from_jwk(&json!({"kty": "EC", "crv": "P-256", "kid": "es",
        "d": "jpsQnnGQmL-YBIffH1136cspYG6-0iY7X1fCE9-E9LI"}))
    .unwrap();
    let ed = ed_key(1, "ed");
    let hs = SigningKey::from_jwk(&json!({"kty": "oct", "kid": "hs", "k": b64(&[7u8; 32])})).unwrap();
    let cases: Vec<(&str, KeySet, String)> = vec![
        (
            "RS256",
            KeySet::from_jwks(&json!({"keys": [{"kty": "RSA", "n": A2_N, "e": "AQAB"}]})).unwrap(),
            A2_TOKEN.to_string(),
        ),
        (
            "ES256",
            KeySet::from_jwks(&json!({"keys": [es.public_jwk().unwrap()]})).unwrap(),
            es.sign(&c_),
        ),
        (
            "EdDSA",
            KeySet::from_jwks(&json!({"keys": [ed.public_jwk().unwrap()]})).unwrap(),
            ed.sign(&c_),
        ),
        (
            "HS256",
            KeySet::from_jwks(&json!({"keys": [{"kty": "oct", "kid": "hs", "k": b64(&[7u8; 32])}]})).unwrap(),
            hs.sign(&c_),
        ),
    ];
    let mut g = c.benchmark_group("jwt_verify");
    for (alg, keys, token) in &cases {
        assert!(keys.verify(token).is_ok(), "{alg}");
        g.bench_function(*alg, |b| b.iter(|| black_box(keys.verify(black_box(token)))));
    }
    g.finish();
}

fn identity_cache(c: &mut Criterion) {
    let w = World::new();
    let headers = w.headers();
    let mut g = c.benchmark_group("identity");
    let none = BenchHost::default();
    g.bench_function("no_cache", |b| {
        b.iter(|| black_box(identity::authenticate(&w.policy, &headers, &none)))
    });
    g.bench_function("cache_miss", |b| {
        b.iter_batched_ref(
            BenchHost::cached,
            |host| black_box(identity::authenticate(&w.policy, &headers, host)),
            BatchSize::SmallInput,
        )
    });
    let warm = BenchHost::cached();
    w.principal(&warm);
    g.bench_function("cache_hit", |b| {
        b.iter(|| black_box(identity::authenticate(&w.policy, &headers, &warm)))
    });
    g.finish();
}

fn approval_verify(c: &mut Criterion) {
    let w = World::new();
    let host = BenchHost::default();
    let principal = w.principal(&host);
    let tool = w.policy.tools.get("send_email").unwrap();
    let args = json!({"to": "bob@example.com", "subject": "Your refund", "body": "It is on its way."});
    let digest = aigate::digest::args_digest(&args).unwrap();
    let jti = Cell::new(0u64);
    // A fresh grant (new jti) and a fresh replay store per iteration: signing and store
    // set-up happen outside the measurement.
    let fresh = || {
        jti.set(jti.get() + 1);
        let grant = w.approvals.sign(&claims(json!({
            "iss": "https://approvals.bench.example", "aud": "aigate", "sub": "alice",
            "tool": "send_email", "args_digest": digest, "approver": "carol@example.com",
            "jti": format!("grant-{}", jti.get()), "iat": NOW - 5, "exp": NOW + 120
        })));
        let mut pairs = vec![("x-aigate-approval".to_string(), grant.into_bytes())];
        pairs.push(("authorization".to_string(), format!("Bearer {}", w.token).into_bytes()));
        let host = BenchHost::default();
        approval::replay::prepare(&host.data, NOW - 3600);
        (Headers::new(pairs), host)
    };
    {
        let (h, host) = fresh();
        let g = approval::check(
            &w.policy,
            &principal,
            tool,
            &args,
            &mut approval::Presented::read(&w.policy, &h),
            &host,
            (approval::Use::Claim, approval::Gate::Action),
        );
        assert!(g.result.is_ok(), "{:?}", g.result);
        assert!(approval::redeem(&w.policy, &host, g.ticket.as_ref().unwrap(), approval::Gate::Action).is_ok());
    }
    let mut g = c.benchmark_group("approval_verify");
    g.bench_function("EdDSA", |b| {
        b.iter_batched_ref(
            fresh,
            |(h, host)| {
                // Verified and consumed, as a request does.
                let g = approval::check(
                    &w.policy,
                    &principal,
                    tool,
                    &args,
                    &mut approval::Presented::read(&w.policy, h),
                    host,
                    (approval::Use::Claim, approval::Gate::Action),
                );
                black_box(
                    g.result.is_ok()
                        && g.ticket
                            .is_some_and(|t| approval::redeem(&w.policy, &*host, &t, approval::Gate::Action).is_ok()),
                )
            },
            BatchSize::SmallInput,
        )
    });
    g.finish();
}

fn decide_by_size(c: &mut Criterion) {
    let w = World::new();
    let headers = w.headers();
    let host = BenchHost::cached();
    let mut g = c.benchmark_group("decide_by_size");
    for (label, size) in [
        ("1KiB", 1024),
        ("16KiB", 16 * 1024),
        ("256KiB", 256 * 1024),
        ("1MiB", 1024 * 1024),
    ] {
        let body = tools_call(size);
        assert!(w.decide(&headers, &body, &host).allowed(), "{label}");
        g.throughput(Throughput::Bytes(size as u64));
        if size >= 256 * 1024 {
            g.sample_size(20);
        }
        g.bench_function(label, |b| {
            b.iter(|| black_box(w.decide(&headers, black_box(&body), &host)))
        });
    }
    g.finish();
}

/// A 2 KiB request to an LLM API: system prompt, user turns padded to size, an earlier
/// `get_order` call with its result, `get_order` offered.
fn llm_request(protocol: &str) -> Vec<u8> {
    let args = json!({"customer_id": "c-42", "order_id": "o-1"});
    let doc = |pad: &str| {
        match protocol {
        "chat" => json!({"model": "bench-model", "tools": [{"type": "function", "function": {"name": "get_order", "parameters": {"type": "object"}}}],
            "messages": [{"role": "system", "content": "You are the support assistant."}, {"role": "user", "content": pad},
                {"role": "assistant", "content": null, "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "get_order", "arguments": args.to_string()}}]},
                {"role": "tool", "tool_call_id": "c1", "content": "shipped"}]}),
        "responses" => json!({"model": "bench-model", "instructions": "You are the support assistant.",
            "tools": [{"type": "function", "name": "get_order", "parameters": {"type": "object"}}],
            "input": [{"role": "user", "content": pad}, {"type": "function_call", "call_id": "c1", "name": "get_order", "arguments": args.to_string()},
                {"type": "function_call_output", "call_id": "c1", "output": "shipped"}]}),
        _ => json!({"model": "bench-model", "max_tokens": 512, "system": "You are the support assistant.",
            "tools": [{"name": "get_order", "input_schema": {"type": "object"}}],
            "messages": [{"role": "user", "content": pad}, {"role": "assistant", "content": [{"type": "tool_use", "id": "t1", "name": "get_order", "input": args}]},
                {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t1", "content": "shipped"}]}]}),
    }
    .to_string()
    .into_bytes()
    };
    let base = doc("").len();
    doc(&"x".repeat(2048usize.saturating_sub(base)))
}

fn decide_llm(c: &mut Criterion) {
    let w = World::new();
    let host = BenchHost::cached();
    let mut g = c.benchmark_group("decide_llm/2KiB");
    for id in ["chat", "responses", "messages"] {
        let headers = w.headers_for(&format!("/llm/{id}"));
        let body = llm_request(id);
        assert!(w.decide(&headers, &body, &host).allowed(), "{id}");
        g.bench_function(id, |b| {
            b.iter(|| black_box(w.decide(&headers, black_box(&body), &host)))
        });
    }
    g.finish();
}

/// A model's answer calling `get_order` (JSON, and as events), per API.
fn answers() -> Vec<(&'static str, Protocol, Vec<u8>, Vec<u8>)> {
    let args = json!({"customer_id": "c-42", "order_id": "o-1"}).to_string();
    let sse = |events: Vec<Value>, named: bool| -> Vec<u8> {
        let mut s = String::new();
        for e in events {
            if named {
                s += &format!("event: {}\n", e["type"].as_str().unwrap());
            }
            s += &format!("data: {e}\n\n");
        }
        s.into_bytes()
    };
    let text: Vec<Value> = (0..20)
        .map(|i| json!({"choices": [{"index": 0, "delta": {"content": format!("word{i} ")}}]}))
        .collect();
    let mut chat_events = text;
    chat_events.push(json!({"choices": [{"index": 0, "delta": {"tool_calls": [{"index": 0, "id": "c", "type": "function", "function": {"name": "get_order", "arguments": args}}]}}]}));
    let item = json!({"type": "function_call", "id": "fc", "call_id": "c", "name": "get_order", "arguments": args});
    let responses_events = vec![
        json!({"type": "response.output_item.added", "output_index": 0, "item": {"type": "function_call", "id": "fc", "call_id": "c", "name": "get_order", "arguments": ""}}),
        json!({"type": "response.function_call_arguments.delta", "output_index": 0, "delta": args}),
        json!({"type": "response.output_item.done", "output_index": 0, "item": item}),
        json!({"type": "response.completed", "response": {"output": [item]}}),
    ];
    let anthropic_events = vec![
        json!({"type": "message_start", "message": {"id": "m", "content": []}}),
        json!({"type": "content_block_start", "index": 0, "content_block": {"type": "tool_use", "id": "t", "name": "get_order", "input": {}}}),
        json!({"type": "content_block_delta", "index": 0, "delta": {"type": "input_json_delta", "partial_json": args}}),
        json!({"type": "message_stop"}),
    ];
    vec![
        (
            "chat",
            Protocol::OpenaiChat,
            json!({"choices": [{"index": 0, "message": {"role": "assistant", "tool_calls": [{"id": "c", "type": "function", "function": {"name": "get_order", "arguments": args}}]}}]}).to_string().into_bytes(),
            sse(chat_events, false),
        ),
        ("responses", Protocol::OpenaiResponses, json!({"output": [item]}).to_string().into_bytes(), sse(responses_events, true)),
        (
            "messages",
            Protocol::AnthropicMessages,
            json!({"content": [{"type": "tool_use", "id": "t", "name": "get_order", "input": {"customer_id": "c-42", "order_id": "o-1"}}]}).to_string().into_bytes(),
            sse(anthropic_events, true),
        ),
    ]
}

fn answer(c: &mut Criterion) {
    let w = World::new();
    let host = BenchHost::cached();
    let mut g = c.benchmark_group("answer");
    for (id, protocol, json_answer, stream_answer) in answers() {
        let request = w.decide(&w.headers_for(&format!("/llm/{id}")), &llm_request(id), &host);
        assert!(engine::on_answer(
            &w.policy,
            &request,
            output::calls(protocol, &json_answer, &w.policy.limits)
        )
        .allowed());
        g.bench_function(format!("{id}/json"), |b| {
            b.iter(|| {
                let calls = output::calls(protocol, black_box(&json_answer), &w.policy.limits);
                black_box(engine::on_answer(&w.policy, &request, calls))
            })
        });
        g.bench_function(format!("{id}/stream"), |b| {
            b.iter(|| {
                let mut s = Stream::new(protocol, &w.policy.limits, true);
                for piece in black_box(&stream_answer).chunks(64) {
                    black_box(s.feed(piece));
                }
                black_box(engine::on_answer(&w.policy, &request, s.finish().calls))
            })
        });
    }
    let tools: Vec<Value> = (0..20).map(|i| json!({"name": format!("tool_{i}"), "description": "A tool the server offers.", "inputSchema": {"type": "object"}})).collect();
    let list = json!({"jsonrpc": "2.0", "id": 1, "result": {"tools": tools}})
        .to_string()
        .into_bytes();
    let request = w.decide(
        &w.headers(),
        br#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#,
        &host,
    );
    g.bench_function("mcp/tools_list_20", |b| {
        b.iter(|| {
            black_box(output::listing::filter(
                black_box(&list),
                &w.policy.limits,
                &engine::visible(&w.policy, &request, &host),
            ))
        })
    });
    g.finish();
}

fn settings() -> Criterion {
    // Short runs: the whole file takes about a minute, so scripts/bench.sh can include it.
    Criterion::default()
        .warm_up_time(Duration::from_millis(700))
        .measurement_time(Duration::from_secs(2))
        .sample_size(40)
        .without_plots()
}

criterion_group! {
    name = benches;
    config = settings();
    targets = decide_2kib, jwt_verify, identity_cache, approval_verify, decide_by_size, decide_llm, answer
}
criterion_main!(benches);
