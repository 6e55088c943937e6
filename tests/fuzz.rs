//! Fuzzing on stable Rust, bounded and seeded: generated and mutated input to the config
//! loader, the request parsers, the JWS code and canonical JSON. The properties are the
//! ones a fuzzer guards: nothing panics (a panic traps the VM in Envoy), malformed input
//! is refused with its reason, a tampered credential never verifies, and canonical JSON
//! is stable. Each property runs a fixed number of cases (proptest's default seed
//! handling: a failure prints the minimal input and is saved for replay).

mod common;

use aigate::decision::Reason;
use aigate::digest;
use aigate::jws::KeySet;
use common::*;
use proptest::prelude::*;
use serde_json::{json, Value};

fn config(cases: u32) -> ProptestConfig {
    ProptestConfig {
        cases,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

/// Byte edits at positions given as fractions of the input's length.
fn mutate(mut bytes: Vec<u8>, edits: &[(f64, u8, u8)]) -> Vec<u8> {
    for &(at, byte, op) in edits {
        if bytes.is_empty() {
            bytes.push(byte);
            continue;
        }
        let i = ((bytes.len() - 1) as f64 * at) as usize;
        match op % 3 {
            0 => bytes[i] = byte,
            1 => bytes.insert(i, byte),
            _ => {
                bytes.remove(i);
            }
        }
    }
    bytes
}

fn edits() -> impl Strategy<Value = Vec<(f64, u8, u8)>> {
    prop::collection::vec((0.0..1.0f64, any::<u8>(), any::<u8>()), 1..8)
}

/// JSON values of bounded size: what tool arguments look like, and worse.
fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i32>().prop_map(Value::from),
        (-1.0e6..1.0e6f64).prop_map(|f| json!(f)),
        "[a-z\u{e9}\u{1F600}\"\\\\ \n]{0,12}".prop_map(Value::from),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::from),
            prop::collection::btree_map("[a-z_]{1,6}", inner, 0..6)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

proptest! {
    #![proptest_config(config(3000))]

    /// The config loader refuses garbage with at least one path-named error.
    #[test]
    fn config_loader_refuses_garbage_without_panicking(bytes in prop::collection::vec(any::<u8>(), 0..256)) {
        if let Err(errors) = aigate::policy::compile(&bytes) {
            prop_assert!(!errors.is_empty());
        }
    }

    /// A damaged copy of a valid policy either loads or is refused with messages.
    #[test]
    fn config_loader_survives_damaged_policies(e in edits()) {
        let doc = policy_doc().to_string().into_bytes();
        if let Err(errors) = aigate::policy::compile(&mutate(doc, &e)) {
            prop_assert!(errors.iter().all(|x| !x.to_string().is_empty()));
        }
    }
}

proptest! {
    #![proptest_config(config(1500))]

    /// Any body on an MCP route: decided without panicking; a body that is not JSON is
    /// `body_malformed`, never allowed.
    #[test]
    fn mcp_bodies_are_decided_and_malformed_ones_refused(
        e in edits(),
        args in json_value(),
        tool in prop_oneof![Just("get_order"), Just("refund_order"), Just("send_email"), Just("x")],
    ) {
        let w = World::new();
        let token = w.token(json!({}));
        let headers = w.headers(Some(&token));
        let body = mutate(call(tool, args).to_string().into_bytes(), &e);
        let d = w.decide_raw(&headers, Some(&body));
        if serde_json::from_slice::<Value>(&body).is_err() {
            prop_assert_eq!(d.denial.map(|x| x.reason), Some(Reason::BodyMalformed));
        }
    }

    /// LLM request bodies (OpenAI Chat and Responses, Anthropic Messages), damaged.
    #[test]
    fn llm_bodies_are_decided_without_panicking(e in edits(), which in 0..3usize, args in json_value()) {
        let w = World::with(|p| {
            p["routes"] = json!([
                {"id": "chat", "prefix": "/v1/chat/completions", "protocol": "openai_chat", "tool_offers": "strip"},
                {"id": "resp", "prefix": "/v1/responses", "protocol": "openai_responses"},
                {"id": "claude", "prefix": "/v1/messages", "protocol": "anthropic_messages"}
            ]);
            p["models"] = json!({"allow": ["*"]});
        });
        let (path, body) = match which {
            0 => ("/v1/chat/completions", json!({"model": "gpt-4o", "messages": [
                {"role": "user", "content": "hi"},
                {"role": "assistant", "tool_calls": [{"id": "c1", "type": "function",
                  "function": {"name": "get_order", "arguments": args.to_string()}}]}],
                "tools": [{"type": "function", "function": {"name": "send_email", "parameters": {}}}]})),
            1 => ("/v1/responses", json!({"model": "gpt-4o", "input": [
                {"type": "function_call", "call_id": "c1", "name": "get_order", "arguments": args.to_string()}],
                "tools": [{"type": "file_search", "vector_store_ids": ["vs_1"]}]})),
            _ => ("/v1/messages", json!({"model": "claude-x", "max_tokens": 10, "messages": [
                {"role": "assistant", "content": [{"type": "tool_use", "id": "t1", "name": "get_order", "input": args}]}]})),
        };
        let token = w.token(json!({}));
        let mut headers = w.headers(Some(&token));
        headers[1].1 = path.as_bytes().to_vec();
        let body = mutate(body.to_string().into_bytes(), &e);
        let d = w.decide_raw(&headers, Some(&body));
        if serde_json::from_slice::<Value>(&body).is_err() {
            prop_assert_eq!(d.denial.map(|x| x.reason), Some(Reason::BodyMalformed));
        }
    }

    /// REST action bodies (the arguments themselves), damaged: decided without panicking;
    /// anything but a JSON object is `body_malformed`.
    #[test]
    fn action_bodies_are_decided_and_malformed_ones_refused(e in edits(), args in json_value()) {
        let w = World::with(|p| {
            p["routes"] = json!([{"id": "refunds", "prefix": "/api/refunds", "protocol": "action", "tool": "refund_order"}]);
        });
        let token = w.token(json!({}));
        let mut headers = w.headers(Some(&token));
        headers[1].1 = b"/api/refunds".to_vec();
        let body = mutate(args.to_string().into_bytes(), &e);
        let d = w.decide_raw(&headers, Some(&body));
        let parsed = serde_json::from_slice::<Value>(&body);
        let blank = body.iter().all(u8::is_ascii_whitespace);
        if !blank && !parsed.as_ref().is_ok_and(Value::is_object) {
            prop_assert_eq!(d.denial.map(|x| x.reason), Some(Reason::BodyMalformed));
        }
    }

    /// Paths built from segments that resolve elsewhere: a route is chosen only for a path
    /// with no dot segment (`..;` included), empty segment or encoded separator, and only at
    /// a segment boundary.
    #[test]
    fn a_route_is_chosen_only_for_a_canonical_path(
        segs in prop::collection::vec(prop::sample::select(vec![
            "api", "refunds", "orders", "orders-admin", ".", "..", "", "%2e%2e", "%2F", "a%5Cb", "x\\y", "o-1",
            "..;", ".;x", "orders;v=1",
        ]), 0..6),
    ) {
        let w = World::with(|p| {
            p["unmatched"] = json!("allow");
            p["routes"] = json!([{"id": "orders", "prefix": "/api/orders", "protocol": "action", "tool": "get_order"}]);
        });
        let path = format!("/{}", segs.join("/"));
        let mut headers = w.headers(Some(&w.token(json!({}))));
        headers[1].1 = path.clone().into_bytes();
        let d = w.decide_raw(&headers, None);
        let canonical = aigate::request::path_problem(&path).is_none();
        if d.route.is_some() {
            prop_assert!(canonical, "{} routed", path);
            // As servers that drop `;` parameters from segments route it.
            let plain = path.split('/').map(|s| s.split(';').next().unwrap()).collect::<Vec<_>>().join("/");
            prop_assert!(plain == "/api/orders" || plain.starts_with("/api/orders/"), "{} routed", path);
        }
        if !canonical {
            prop_assert_eq!(d.denial.map(|x| x.reason), Some(Reason::RouteUnmatched), "{}", path);
        }
    }

    /// A token changed anywhere (one character) never verifies.
    #[test]
    fn a_tampered_token_never_verifies(at in 0.0..1.0f64, c in "[A-Za-z0-9_.=-]") {
        let w = World::new();
        let token = w.token(json!({}));
        let keys = KeySet::from_jwks(&json!({"keys": [w.idp.public_jwk().unwrap()]})).unwrap();
        prop_assert!(keys.verify(&token).is_ok());
        let i = ((token.len() - 1) as f64 * at) as usize;
        let mut tampered = token.clone();
        tampered.replace_range(i..=i, &c);
        prop_assume!(tampered != token);
        prop_assert!(keys.verify(&tampered).is_err(), "verified after changing byte {}", i);
    }

    /// Arbitrary text as a credential or a grant: refused, never a panic.
    #[test]
    fn arbitrary_credentials_are_refused(text in "[ -~]{0,200}", dots in 0..4usize) {
        let w = World::new();
        let mut t = text.clone();
        for _ in 0..dots {
            t.push('.');
            t.push_str(&text);
        }
        let headers = w.headers(Some(&t));
        let d = w.decide(&headers, Some(&rpc("tools/list", json!({}))));
        let reason = d.denial.map(|x| x.reason);
        prop_assert!(
            matches!(reason, Some(Reason::TokenInvalid | Reason::Unauthenticated)),
            "credential {:?}: {:?}", t, reason
        );
        // As a grant, beside a valid token: never verifies, so it is invalid (or, when the
        // header lists nothing at all, no grant was offered).
        let blank = t.split(',').all(|g| g.trim().is_empty());
        let mut headers = w.headers(Some(&w.token(json!({}))));
        headers.push(("x-aigate-approval".into(), t.clone().into_bytes()));
        let d = w.decide(&headers, Some(&call("send_email", json!({"to": "bob@example.com"}))));
        let reason = d.denial.map(|x| x.reason);
        let want = if blank { Reason::ApprovalRequired } else { Reason::ApprovalInvalid };
        prop_assert_eq!(reason, Some(want), "grant {:?}", t);
    }

    /// An approval header listing junk, and genuine grants for other arguments, in any
    /// order and with any spacing: never lets the call through, never panics.
    #[test]
    fn a_list_of_grants_without_the_fitting_one_never_passes(
        junk in prop::collection::vec("[ -+--~]{0,60}", 0..6),
        others in 0..3usize,
        order in any::<u64>(),
    ) {
        let w = World::new();
        let mut items: Vec<String> = junk;
        for i in 0..others {
            let args = json!({"to": format!("other{i}@example.com")});
            items.push(w.grant(json!({"args_digest": aigate::digest::args_digest(&args).unwrap(), "jti": format!("o{i}")})));
        }
        let n = items.len().max(1);
        items.rotate_left((order as usize) % n);
        let mut headers = w.headers(Some(&w.token(json!({}))));
        headers.push(("x-aigate-approval".into(), items.join(" , ").into_bytes()));
        let d = w.decide(&headers, Some(&call("send_email", json!({"to": "bob@example.com"}))));
        let reason = d.denial.map(|x| x.reason);
        prop_assert!(reason.is_some_and(|r| r.is_approval()), "{:?}", reason);
    }

    /// Canonical JSON (RFC 8785) is a fixed point: canonicalising its own output gives
    /// the same text, so a digest never depends on how the arguments were formatted.
    #[test]
    fn canonical_json_is_stable(v in json_value()) {
        // Every generated value (finite numbers, bounded depth) has a canonical form.
        let c = digest::canonical_json(&v);
        prop_assert!(c.is_ok(), "{}: {:?}", v, c);
        let c = c.unwrap();
        let again: Value = serde_json::from_str(&c).unwrap();
        prop_assert_eq!(digest::canonical_json(&again).unwrap(), c.clone());
        let pretty = serde_json::to_string_pretty(&v).unwrap();
        let reparsed: Value = serde_json::from_str(&pretty).unwrap();
        prop_assert_eq!(digest::args_digest(&reparsed).unwrap(), digest::args_digest(&v).unwrap());
    }
}

/// A chat stream whose second call piece carries `args`, as events.
fn chat_stream(args: &Value) -> Vec<u8> {
    let chunk = |delta: Value| format!("data: {}\n\n", json!({"choices": [{"index": 0, "delta": delta}]}));
    let text = args.to_string();
    let half = text.char_indices().nth(text.chars().count() / 2).map_or(0, |(i, _)| i);
    let (a, b) = text.split_at(half);
    let mut s = chunk(json!({"content": "hi"}));
    s += &chunk(json!({"tool_calls": [{"index": 0, "function": {"name": "get_order", "arguments": a}}]}));
    s += &chunk(json!({"tool_calls": [{"index": 0, "function": {"arguments": b}}]}));
    s += "data: [DONE]\n\n";
    s.into_bytes()
}

proptest! {
    #![proptest_config(config(1500))]

    /// A model's answer streamed in pieces of any size: intact, what passes before the end
    /// never holds the tool call and the whole passes in the end; damaged, no panic.
    #[test]
    fn answer_streams_survive_damage_and_any_cut(e in edits(), args in json_value(), piece in 1..64usize, damage in any::<bool>()) {
        use aigate::config::Protocol;
        use aigate::output::stream::Stream;
        let args = json!({ "customer_id": args });
        let clean = chat_stream(&args);
        let body = if damage { mutate(clean.clone(), &e) } else { clean.clone() };
        let mut s = Stream::new(Protocol::OpenaiChat, &World::new().policy.limits, true);
        let mut passed = Vec::new();
        for p in body.chunks(piece) {
            passed.extend(s.feed(p).unwrap_or_else(|| p.to_vec()));
        }
        let end = s.finish();
        if !damage {
            prop_assert!(!String::from_utf8_lossy(&passed).contains("get_order"));
            passed.extend(&end.held);
            prop_assert_eq!(&passed, &clean);
            let calls = end.calls.unwrap();
            prop_assert_eq!(calls.len(), 1);
            prop_assert_eq!(&calls[0].arguments, &args);
        }
    }

    /// Damaged JSON answers of each provider and damaged MCP list answers: read or refused,
    /// never a panic; a refused answer can always be rewritten or replaced.
    #[test]
    fn damaged_answers_are_read_or_refused(e in edits(), which in 0..4usize, args in json_value()) {
        use aigate::config::Protocol;
        use aigate::output;
        let limits = World::new().policy.limits;
        let (protocol, doc) = match which {
            0 => (Protocol::OpenaiChat, json!({"choices": [{"message": {"tool_calls": [
                {"type": "function", "function": {"name": "get_order", "arguments": args.to_string()}}]}}]})),
            1 => (Protocol::OpenaiResponses, json!({"output": [
                {"type": "function_call", "name": "get_order", "arguments": args.to_string()}]})),
            2 => (Protocol::AnthropicMessages, json!({"content": [{"type": "tool_use", "name": "get_order", "input": args}]})),
            _ => (Protocol::Mcp, json!({"jsonrpc": "2.0", "id": 1, "result": {"tools": [{"name": "a"}, args]}})),
        };
        let body = mutate(doc.to_string().into_bytes(), &e);
        if protocol == Protocol::Mcp {
            // Filtered (or left as it is) when it reads as JSON-RPC, else refused as malformed.
            let filtered = output::listing::filter(&body, &limits, &|_, item| item.contains_key("name"));
            if let Err(d) = &filtered {
                prop_assert_eq!(d.reason, Reason::BodyMalformed, "{}", d.message);
            }
            if let Ok(Some((rewritten, hidden))) = filtered {
                prop_assert!(hidden > 0);
                prop_assert!(serde_json::from_slice::<Value>(&rewritten).is_ok());
            }
        } else {
            match output::calls(protocol, &body, &limits) {
                Err(d) => prop_assert_eq!(d.reason, Reason::BodyMalformed, "{}", d.message),
                // An answer with calls to refuse can always be rewritten into a refusal,
                // and what is left of it asks for no call.
                Ok(calls) if !calls.is_empty() => {
                    let refused = output::refusal(protocol, &body, "refused", &limits);
                    prop_assert!(refused.is_some(), "{}", String::from_utf8_lossy(&body));
                    let left = output::calls(protocol, &refused.unwrap(), &limits);
                    prop_assert!(left.as_ref().is_ok_and(Vec::is_empty), "{:?}", left.map(|c| c.len()));
                }
                Ok(_) => {}
            }
        }
    }
}

/// An MCP answer of a generated shape: list items and content blocks the caller may see
/// (an even digit) or not, among arbitrary values, in one message or a batch.
fn mcp_answer() -> impl Strategy<Value = Value> {
    let item = prop_oneof![
        "[0-9]".prop_map(|d| json!({"name": format!("t{d}"), "description": "x"})),
        json_value(),
    ];
    let block = prop_oneof![
        "[0-9]".prop_map(|d| json!({"type": "resource_link", "uri": format!("docs://t{d}")})),
        "[0-9]".prop_map(|d| json!({"type": "resource", "resource": {"uri": format!("docs://t{d}"), "text": "x"}})),
        json_value(),
    ];
    let message = (
        prop::collection::vec(item, 0..6),
        prop::collection::vec(block, 0..6),
        any::<bool>(),
        json_value(),
    )
        .prop_map(|(tools, content, scoped, extra)| {
            let mut result =
                json!({"tools": tools, "content": content, "extra": extra, "big": 12345678901234567890u64});
            if scoped {
                result["cacheScope"] = json!("public");
            }
            json!({"jsonrpc": "2.0", "id": 1, "result": result})
        })
        .boxed();
    prop_oneof![
        message.clone(),
        prop::collection::vec(message, 1..4).prop_map(Value::from)
    ]
}

/// The caller of these properties sees names and URIs ending in an even digit.
fn sees_even(shown: aigate::output::listing::Shown, item: &serde_json::Map<String, Value>) -> bool {
    let key = match shown {
        aigate::output::listing::Shown::Listed(aigate::request::mcp::Listing::Tasks)
        | aigate::output::listing::Shown::Created => "taskId",
        aigate::output::listing::Shown::Listed(_) => "name",
        aigate::output::listing::Shown::Resource => "uri",
    };
    item.get(key)
        .and_then(Value::as_str)
        .and_then(|s| s.chars().last())
        .and_then(|c| c.to_digit(10))
        .is_some_and(|d| d % 2 == 0)
}

proptest! {
    #![proptest_config(config(256))]

    /// A rewritten MCP answer is valid JSON with nothing left to withhold, keeps the items
    /// the caller may see in order, and leaves everything else as the server wrote it,
    /// compact or pretty-printed.
    #[test]
    fn mcp_answers_lose_exactly_what_is_withheld(answer in mcp_answer(), pretty in any::<bool>()) {
        let limits = World::new().policy.limits;
        let text = if pretty { serde_json::to_string_pretty(&answer).unwrap() } else { answer.to_string() };
        let filtered = aigate::output::listing::filter(text.as_bytes(), &limits, &sees_even);
        prop_assert!(filtered.is_ok(), "{:?}", filtered.err());
        let Some((out, hidden)) = filtered.unwrap() else { return Ok(()) };
        let out_text = String::from_utf8(out).unwrap();
        // Rewritten with nothing hidden: only a public list made private.
        if hidden == 0 {
            prop_assert!(text.contains("public") && !out_text.contains("\"public\""), "{}", out_text);
        }
        prop_assert!(out_text.contains("12345678901234567890"), "{}", out_text);
        prop_assert_eq!(aigate::output::listing::filter(out_text.as_bytes(), &limits, &sees_even).unwrap(), None);
        let got: Value = serde_json::from_str(&out_text).unwrap();
        let pairs: Vec<(&Value, &Value)> = match (&answer, &got) {
            (Value::Array(a), Value::Array(g)) => a.iter().zip(g).collect(),
            (a, g) => vec![(a, g)],
        };
        for (sent, seen) in pairs {
            let kept: Vec<&Value> = sent["result"]["tools"].as_array().unwrap().iter()
                .filter(|t| t.as_object().is_some_and(|o| sees_even(aigate::output::listing::Shown::Listed(aigate::request::mcp::Listing::Tools), o)))
                .collect();
            let shown: Vec<&Value> = seen["result"]["tools"].as_array().unwrap().iter().collect();
            prop_assert_eq!(kept, shown);
            prop_assert_eq!(&sent["result"]["extra"], &seen["result"]["extra"]);
            if sent["result"].get("cacheScope").is_some() {
                prop_assert_eq!(&seen["result"]["cacheScope"], &json!("private"));
            }
            prop_assert_eq!(sent["result"]["content"].as_array().map(Vec::len), seen["result"]["content"].as_array().map(Vec::len));
        }
    }
}
