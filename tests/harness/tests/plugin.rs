//! The compiled module driven as Envoy drives it, asserting docs/plugin-contract.md.
//!
//! Needs `target/wasm32-wasip1/release/aigate.wasm` (`cargo build --release --target
//! wasm32-wasip1`) or `AIGATE_WASM`.

mod common;

use aigate_harness::{Action, HostOptions, LogLevel, Phase, Plugin, Request};
use common::*;
use serde_json::{json, Value};

fn body_json(outcome: &aigate_harness::Outcome) -> Value {
    serde_json::from_slice(outcome.response_body())
        .unwrap_or_else(|e| panic!("response body is not JSON ({e}): {}", outcome.response_body_str()))
}

fn assert_decision_id(value: Option<String>, what: &str) -> String {
    let id = value.unwrap_or_else(|| panic!("{what}: no x-aigate-decision-id"));
    assert_eq!(id.len(), 32, "{what}: decision id {id:?} is not 32 hex chars");
    assert!(id.chars().all(|c| c.is_ascii_hexdigit()), "{what}: {id:?}");
    id
}

#[test]
fn invalid_config_is_refused_and_counted() {
    let wasm = aigate_harness::plugin_wasm().unwrap_or_else(|e| panic!("{e}"));
    let plugin = Plugin::load(&wasm, r#"{"mode":"enforce","no_such_field":true}"#).expect("no trap");
    assert!(!plugin.configure_ok());
    assert_eq!(plugin.metric("result=.=error;.;aigate_config_loads_total"), Some(1));
    assert_eq!(plugin.metric("result=.=ok;.;aigate_config_loads_total").unwrap_or(0), 0);
    assert!(
        plugin.logs().iter().any(|l| l.level >= LogLevel::Warn),
        "no error log for a refused policy: {:?}",
        plugin.logs()
    );

    let not_json = Plugin::load(&wasm, "{").expect("no trap");
    assert!(!not_json.configure_ok());
    let empty = Plugin::load(&wasm, "").expect("no trap");
    assert!(!empty.configure_ok());
}

#[test]
fn valid_config_is_counted_and_imports_are_all_provided() {
    let idp = Idp::new();
    let plugin = load(&policy(&idp), HostOptions::default());
    assert_eq!(plugin.metric("result=.=ok;.;aigate_config_loads_total"), Some(1));
    assert!(plugin.unknown_imports().is_empty(), "{:?}", plugin.unknown_imports());
    assert!(plugin.has_export("proxy_abi_version_0_2_1"));
}

#[test]
fn allowed_tool_call_is_forwarded_with_decision_id_metric_and_audit() {
    let idp = Idp::new();
    for (mode, mut plugin) in both_hold_modes(&idp) {
        let body = tools_call(json!(7), "get_order", json!({"customer_id": "c-42", "order_id": "o-1"}));
        let outcome = plugin
            .request(mcp_post(&idp.token(), &body))
            .unwrap_or_else(|e| panic!("{mode}: {e}"));

        assert!(outcome.local_reply.is_none(), "{mode}: {:?}", outcome.local_reply);
        assert!(
            outcome.forwarded(),
            "{mode}: request did not reach upstream: {outcome:?}"
        );
        let upstream = outcome.upstream.as_ref().unwrap();
        assert_eq!(upstream.body, body.as_bytes(), "{mode}: body altered");
        let up_id = assert_decision_id(outcome.upstream_header("x-aigate-decision-id"), mode);
        assert_eq!(outcome.status(), Some(200), "{mode}");
        let down_id = assert_decision_id(outcome.response_header("x-aigate-decision-id"), mode);
        assert_eq!(up_id, down_id, "{mode}: upstream and response decision ids differ");
        // The caller's token is aigate's to judge: a server holding it could replay it.
        assert_eq!(
            outcome.upstream_header("authorization"),
            None,
            "{mode}: token forwarded"
        );

        assert_eq!(plugin.metric(REQUESTS_ALLOW_MCP), Some(1), "{mode}");
        assert_eq!(
            plugin.metric("impact=.=read;.;decision=.=allow;.;aigate_tool_calls_total"),
            Some(1),
            "{mode}"
        );
        assert_eq!(
            plugin.metric("source=.=jwt;.;result=.=ok;.;aigate_identity_total"),
            Some(1),
            "{mode}"
        );

        let audits = audit_lines(&outcome);
        // The request's line; its answer passed whole, so it is counted, not logged.
        assert_eq!(audits.len(), 1, "{mode}: {:?}", outcome.logs);
        assert_eq!(
            plugin.metric("protocol=.=mcp;.;decision=.=allow;.;reason=.=none;.;aigate_answers_total"),
            Some(1),
            "{mode}"
        );
        let a = &audits[0];
        assert_eq!(a["decision"], "allow", "{mode}: {a}");
        assert_eq!(a["tool"], "get_order", "{mode}: {a}");
        assert_eq!(a["subject"], SUBJECT, "{mode}: {a}");
        assert_eq!(a["owner"], "orders-team@example.com", "{mode}: {a}");
        assert_eq!(a["decision_id"], down_id.as_str(), "{mode}: {a}");
        assert!(a["policy_hash"].as_str().is_some_and(|h| !h.is_empty()), "{mode}: {a}");
        let audit_log = outcome
            .logs
            .iter()
            .find(|l| l.message.contains("aigate.decision"))
            .unwrap();
        assert_eq!(audit_log.level, LogLevel::Info, "{mode}");
        // The same line is the filter state Envoy's access log reads.
        let state = outcome
            .property(&["aigate_decision"])
            .expect("filter state aigate_decision");
        assert_eq!(serde_json::from_slice::<Value>(state).unwrap(), *a, "{mode}");
        assert!(outcome.anomalies.is_empty(), "{mode}: {:?}", outcome.anomalies);
    }
}

#[test]
fn missing_token_is_401_with_bare_challenge() {
    let idp = Idp::new();
    for (mode, mut plugin) in both_hold_modes(&idp) {
        let body = tools_call(json!(1), "get_order", json!({"customer_id": "c-42"}));
        let outcome = plugin
            .request(mcp_post("x", &body).without_header("authorization"))
            .unwrap_or_else(|e| panic!("{mode}: {e}"));
        assert_eq!(outcome.status(), Some(401), "{mode}");
        let challenge = outcome.response_header("www-authenticate").expect("WWW-Authenticate");
        assert!(challenge.starts_with("Bearer realm=\"aigate\""), "{mode}: {challenge}");
        assert!(
            !challenge.contains("error="),
            "{mode}: no error= without a token: {challenge}"
        );
        assert_eq!(body_json(&outcome)["error"]["reason"], "unauthenticated", "{mode}");
        assert_decision_id(outcome.response_header("x-aigate-decision-id"), mode);
        assert!(!outcome.forwarded(), "{mode}");
        // Decided at headers: the body is never read.
        assert_eq!(
            outcome
                .callbacks
                .iter()
                .filter(|c| c.phase == Phase::RequestBody)
                .count(),
            0,
            "{mode}"
        );
        assert_eq!(
            plugin.metric(&requests_metric("mcp", "deny", "unauthenticated")),
            Some(1),
            "{mode}"
        );
    }
}

#[test]
fn bad_token_is_401_invalid_token() {
    let idp = Idp::new();
    let mut plugin = load(&policy(&idp), HostOptions::default());
    let body = tools_call(json!(1), "get_order", json!({"customer_id": "c-42"}));
    let expired = idp.token_with(json!({"iat": NOW - 600, "exp": NOW - 300}));
    let outcome = plugin.request(mcp_post(&expired, &body)).unwrap();
    assert_eq!(outcome.status(), Some(401));
    let challenge = outcome.response_header("www-authenticate").unwrap();
    assert!(challenge.contains("error=\"invalid_token\""), "{challenge}");
    assert_eq!(body_json(&outcome)["error"]["reason"], "token_expired");

    let outcome = plugin.request(mcp_post("not-a-jwt", &body)).unwrap();
    assert_eq!(outcome.status(), Some(401));
    assert_eq!(body_json(&outcome)["error"]["reason"], "token_invalid");
}

#[test]
fn token_expiry_follows_the_host_clock() {
    let idp = Idp::new();
    let mut plugin = load(&policy(&idp), HostOptions::default());
    let token = idp.token(); // exp = NOW + 300, skew 30
    let body = tools_call(json!(1), "get_order", json!({"customer_id": "c-42"}));
    plugin.set_time_secs(NOW + 200);
    let outcome = plugin.request(mcp_post(&token, &body)).unwrap();
    assert_ne!(outcome.status(), Some(401), "{}", outcome.response_body_str());
    plugin.set_time_secs(NOW + 400);
    let outcome = plugin.request(mcp_post(&token, &body)).unwrap();
    assert_eq!(outcome.status(), Some(401));
    assert_eq!(body_json(&outcome)["error"]["reason"], "token_expired");
}

#[test]
fn missing_scope_is_403_naming_the_scope() {
    let idp = Idp::new();
    for (mode, mut plugin) in both_hold_modes(&idp) {
        let body = tools_call(json!(3), "refund_order", json!({"customer_id": "c-42", "amount": 10}));
        let outcome = plugin
            .request(mcp_post(&idp.token(), &body))
            .unwrap_or_else(|e| panic!("{mode}: {e}"));
        assert_eq!(outcome.status(), Some(403), "{mode}: {}", outcome.response_body_str());
        let challenge = outcome.response_header("www-authenticate").expect("WWW-Authenticate");
        assert!(
            challenge.contains("error=\"insufficient_scope\""),
            "{mode}: {challenge}"
        );
        assert!(challenge.contains("scope=\"orders.refund\""), "{mode}: {challenge}");
        assert_eq!(body_json(&outcome)["error"]["reason"], "scope_missing", "{mode}");
        assert!(!outcome.forwarded(), "{mode}");
        assert_eq!(
            plugin.metric(&requests_metric("mcp", "deny", "scope_missing")),
            Some(1),
            "{mode}"
        );
    }
}

#[test]
fn constraint_violation_is_a_json_rpc_error_echoing_the_id() {
    let idp = Idp::new();
    let token = idp.token_with(json!({"scope": "orders.read orders.refund"}));
    for (mode, mut plugin) in both_hold_modes(&idp) {
        let body = tools_call(
            json!("req-9"),
            "refund_order",
            json!({"customer_id": "c-42", "amount": 500}),
        );
        let outcome = plugin
            .request(mcp_post(&token, &body))
            .unwrap_or_else(|e| panic!("{mode}: {e}"));
        assert_eq!(outcome.status(), Some(200), "{mode}: {}", outcome.response_body_str());
        let ct = outcome.response_header("content-type").unwrap_or_default();
        assert!(ct.starts_with("application/json"), "{mode}: content-type {ct:?}");
        let v = body_json(&outcome);
        assert_eq!(v["jsonrpc"], "2.0", "{mode}: {v}");
        assert_eq!(v["id"], "req-9", "{mode}: {v}");
        assert_eq!(v["error"]["code"], -32001, "{mode}: {v}");
        assert_eq!(v["error"]["data"]["reason"], "argument_violation", "{mode}: {v}");
        let id = assert_decision_id(outcome.response_header("x-aigate-decision-id"), mode);
        assert_eq!(v["error"]["data"]["decision_id"], id.as_str(), "{mode}: {v}");
        assert!(!outcome.forwarded(), "{mode}");
        // Exactly one content-type reaches the client.
        let resp = outcome.response.as_ref().unwrap();
        assert_eq!(
            resp.headers.get_all("content-type").len(),
            1,
            "{mode}: {:?}",
            resp.headers
        );
    }
}

#[test]
fn oversized_body_in_chunks_is_413() {
    let idp = Idp::new();
    let mut p = policy(&idp);
    p["limits"]["max_body_bytes"] = json!(1024);
    p["hold"] = json!("headers");
    let mut plugin = load(&p, envoy_hold_headers());
    let padding = "x".repeat(3000);
    let body = tools_call(json!(1), "get_order", json!({"customer_id": "c-42", "pad": padding}));
    let outcome = plugin.request(mcp_post(&idp.token(), &body).chunked(500)).unwrap();
    assert_eq!(outcome.status(), Some(413), "{}", outcome.response_body_str());
    assert!(
        outcome.host_reply.is_none(),
        "the plugin, not Envoy's buffer limit, must answer"
    );
    assert_eq!(body_json(&outcome)["error"]["reason"], "body_too_large");
    assert!(!outcome.forwarded());
    // It stops buffering as soon as the limit is passed, not at end of stream.
    let body_callbacks = outcome.actions(Phase::RequestBody).len();
    assert!(
        body_callbacks < body.len().div_ceil(500),
        "{body_callbacks} body callbacks"
    );
    assert_eq!(
        plugin.metric(&requests_metric("mcp", "deny", "body_too_large")),
        Some(1)
    );
}

#[test]
fn declared_oversized_content_length_is_413_at_headers() {
    let idp = Idp::new();
    let mut p = policy(&idp);
    p["limits"]["max_body_bytes"] = json!(1024);
    let mut plugin = load(&p, HostOptions::default());
    let body = tools_call(json!(1), "get_order", json!({"customer_id": "c-42"}));
    let outcome = plugin
        .request(mcp_post(&idp.token(), &body).set_header("content-length", "999999"))
        .unwrap();
    assert_eq!(outcome.status(), Some(413));
    assert_eq!(outcome.actions(Phase::RequestBody).len(), 0);
}

#[test]
fn gzip_body_is_415() {
    let idp = Idp::new();
    let mut plugin = load(&policy(&idp), HostOptions::default());
    let body = tools_call(json!(1), "get_order", json!({"customer_id": "c-42"}));
    let outcome = plugin
        .request(mcp_post(&idp.token(), &body).set_header("content-encoding", "gzip"))
        .unwrap();
    assert_eq!(outcome.status(), Some(415));
    assert_eq!(body_json(&outcome)["error"]["reason"], "encoding_unsupported");
    assert!(!outcome.forwarded());
}

#[test]
fn duplicate_json_keys_are_400() {
    let idp = Idp::new();
    for (mode, mut plugin) in both_hold_modes(&idp) {
        let body = r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"get_order","name":"refund_order","arguments":{"customer_id":"c-42"}}}"#;
        let outcome = plugin
            .request(mcp_post(&idp.token(), body))
            .unwrap_or_else(|e| panic!("{mode}: {e}"));
        assert_eq!(outcome.status(), Some(400), "{mode}: {}", outcome.response_body_str());
        assert_eq!(body_json(&outcome)["error"]["reason"], "body_malformed", "{mode}");
        assert!(!outcome.forwarded(), "{mode}");
    }
}

#[test]
fn hostile_header_bytes_and_empty_bodies_never_trap() {
    let idp = Idp::new();
    for (mode, mut plugin) in both_hold_modes(&idp) {
        let body = tools_call(json!(1), "get_order", json!({"customer_id": "c-42"}));
        // Each case and what it gets: a status, and for a refusal its reason.
        let cases: Vec<(&str, Request, u16, Option<&str>)> = vec![
            (
                "non-utf8 authorization",
                mcp_post("t", &body).set_header("authorization", b"Bearer \xff\xfe\xfd"),
                401,
                Some("token_invalid"),
            ),
            (
                "non-utf8 other header",
                mcp_post(&idp.token(), &body).header("x-junk", b"\xc3\x28\xa0\xa1"),
                200,
                None,
            ),
            (
                "non-utf8 path",
                mcp_post(&idp.token(), &body).set_header(":path", b"/mcp/\xff"),
                404,
                Some("route_unmatched"),
            ),
            // An MCP body must be declared JSON.
            (
                "non-utf8 content-type",
                mcp_post(&idp.token(), &body).set_header("content-type", b"\xff"),
                415,
                Some("encoding_unsupported"),
            ),
            (
                "POST without body",
                mcp_post(&idp.token(), "").chunks(Vec::new()),
                400,
                Some("body_malformed"),
            ),
            (
                "POST with one empty chunk",
                mcp_post(&idp.token(), "").chunks(vec![Vec::new()]),
                400,
                Some("body_malformed"),
            ),
            ("GET", Request::get("/mcp").bearer(&idp.token()), 200, None),
            (
                "no pseudo headers",
                Request::post("/mcp").without_header(":path").without_header(":method"),
                404,
                Some("route_unmatched"),
            ),
            (
                "binary body",
                mcp_post(&idp.token(), "").chunks(vec![vec![0xff, 0x00, 0xfe]]),
                400,
                Some("body_malformed"),
            ),
        ];
        for (name, request, status, reason) in cases {
            let outcome = plugin
                .request(request)
                .unwrap_or_else(|e| panic!("{mode}: {name}: {e}"));
            assert_eq!(outcome.status(), Some(status), "{mode}: {name}: {outcome:?}");
            assert_decision_id(outcome.response_header("x-aigate-decision-id"), name);
            let refused = outcome
                .local_reply
                .as_ref()
                .and_then(|r| serde_json::from_slice::<Value>(&r.body).ok())
                .and_then(|v| v["error"]["reason"].as_str().map(str::to_string));
            assert_eq!(refused.as_deref(), reason, "{mode}: {name}");
        }
        assert!(plugin.failure().is_none());
    }
}

#[test]
fn empty_post_is_400() {
    let idp = Idp::new();
    let mut plugin = load(&policy(&idp), HostOptions::default());
    for request in [
        mcp_post(&idp.token(), "").chunks(Vec::new()),
        mcp_post(&idp.token(), "").chunks(vec![Vec::new()]),
    ] {
        let outcome = plugin.request(request).unwrap();
        assert_eq!(outcome.status(), Some(400));
        assert_eq!(body_json(&outcome)["error"]["reason"], "body_malformed");
    }
}

#[test]
fn many_chunks_decide_like_one_chunk() {
    let idp = Idp::new();
    let token = idp.token_with(json!({"scope": "orders.read orders.refund"}));
    // Each body with the reason it is refused for (`None`: allowed), whatever the chunking.
    let bodies = [
        (tools_call(json!(1), "get_order", json!({"customer_id": "c-42"})), None),
        (
            tools_call(json!(2), "refund_order", json!({"customer_id": "c-42", "amount": 500})),
            Some("argument_violation"),
        ),
        (
            tools_call(json!(3), "refund_order", json!({"customer_id": "c-1", "amount": 5})),
            Some("binding_mismatch"),
        ),
        (tools_call(json!(4), "no_such_tool", json!({})), Some("tool_unknown")),
    ];
    for (mode, mut plugin) in both_hold_modes(&idp) {
        for (body, reason) in &bodies {
            let one = plugin
                .request(mcp_post(&token, body))
                .unwrap_or_else(|e| panic!("{mode}: {e}"));
            let audit = audit_lines(&one);
            assert_eq!(audit.len(), 1, "{mode}: {body}");
            assert_eq!(audit[0]["reason"].as_str(), *reason, "{mode}: {body}");
            assert_eq!(
                audit[0]["decision"],
                if reason.is_some() { "deny" } else { "allow" },
                "{mode}: {body}"
            );
            assert_eq!(one.forwarded(), reason.is_none(), "{mode}: {body}");
            for size in [1, 7, 64] {
                let many = plugin
                    .request(mcp_post(&token, body).chunked(size))
                    .unwrap_or_else(|e| panic!("{mode}: {e}"));
                assert_eq!(one.status(), many.status(), "{mode}: chunks of {size}: {body}");
                assert_eq!(one.forwarded(), many.forwarded(), "{mode}: chunks of {size}");
                let (a, b) = (audit_lines(&one), audit_lines(&many));
                assert_eq!(a[0]["decision"], b[0]["decision"], "{mode}: chunks of {size}");
                assert_eq!(a[0]["reason"], b[0]["reason"], "{mode}: chunks of {size}");
                if many.forwarded() {
                    assert_eq!(many.upstream.as_ref().unwrap().body, body.as_bytes(), "{mode}");
                }
            }
        }
    }
}

#[test]
fn trailers_end_the_request() {
    let idp = Idp::new();
    for (mode, mut plugin) in both_hold_modes(&idp) {
        let allowed = tools_call(json!(1), "get_order", json!({"customer_id": "c-42"}));
        let outcome = plugin
            .request(
                mcp_post(&idp.token(), &allowed)
                    .chunked(16)
                    .trailers([("x-checksum", "abc")]),
            )
            .unwrap_or_else(|e| panic!("{mode}: {e}"));
        assert!(outcome.forwarded(), "{mode}: {outcome:?}");
        let up = outcome.upstream.as_ref().unwrap();
        assert_eq!(up.body, allowed.as_bytes(), "{mode}");
        assert_eq!(
            up.trailers.as_ref().and_then(|t| t.get_str("x-checksum")).as_deref(),
            Some("abc")
        );
        assert_eq!(outcome.action(Phase::RequestTrailers), Some(Action::Continue), "{mode}");

        let denied = tools_call(json!(1), "no_such_tool", json!({}));
        let outcome = plugin
            .request(mcp_post(&idp.token(), &denied).trailers([("x-checksum", "abc")]))
            .unwrap_or_else(|e| panic!("{mode}: {e}"));
        assert!(!outcome.forwarded(), "{mode}");
        assert_eq!(body_json(&outcome)["error"]["data"]["reason"], "tool_unknown", "{mode}");

        // A trailer named as a header aigate reads is refused: an upstream merging
        // trailers into headers would run the call as a DELETE, or as another caller's.
        for (name, value) in [
            ("x-http-method-override", "DELETE"),
            ("Authorization", "Bearer other"),
            ("Proxy-Authorization", "Bearer other"),
            ("upgrade", "websocket"),
            ("mcp_name", "send_email"),
        ] {
            let outcome = plugin
                .request(mcp_post(&idp.token(), &allowed).chunked(16).trailers([(name, value)]))
                .unwrap_or_else(|e| panic!("{mode} {name}: {e}"));
            let reached = outcome.upstream.as_ref().is_some_and(|u| u.complete);
            assert!(!reached, "{mode} {name}: the request reached the upstream whole");
            // Refused before the body is read: the generic error shape, at 400.
            assert_eq!(outcome.status(), Some(400), "{mode} {name}");
            let error = &body_json(&outcome)["error"];
            assert_eq!(
                (&error["reason"], &error["rule"]),
                (&json!("body_malformed"), &json!("trailers")),
                "{mode} {name}: {error}"
            );
        }
    }
}

#[test]
fn unmatched_route_is_404() {
    let idp = Idp::new();
    let mut plugin = load(&policy(&idp), HostOptions::default());
    let outcome = plugin.request(Request::get("/elsewhere").bearer(&idp.token())).unwrap();
    assert_eq!(outcome.status(), Some(404));
    assert_eq!(body_json(&outcome)["error"]["reason"], "route_unmatched");
    assert_eq!(
        plugin.metric(&requests_metric("none", "deny", "route_unmatched")),
        Some(1)
    );
}

#[test]
fn monitor_mode_never_blocks() {
    let idp = Idp::new();
    let mut p = policy(&idp);
    p["mode"] = json!("monitor");
    for (mode, options) in [
        ("hold=headers", envoy_hold_headers()),
        ("hold=body", HostOptions::default()),
    ] {
        p["hold"] = json!(mode.trim_start_matches("hold="));
        let mut plugin = load(&p, options);
        let body = tools_call(json!(1), "refund_order", json!({"customer_id": "c-42", "amount": 5}));
        let outcome = plugin
            .request(mcp_post(&idp.token(), &body))
            .unwrap_or_else(|e| panic!("{mode}: {e}"));
        assert!(outcome.forwarded(), "{mode}: {outcome:?}");
        assert_eq!(audit_lines(&outcome)[0]["decision"], "would_deny", "{mode}");
        assert_eq!(
            plugin.metric(&requests_metric("mcp", "would_deny", "scope_missing")),
            Some(1),
            "{mode}"
        );
    }
}

#[test]
fn a_request_costs_few_host_calls() {
    let idp = Idp::new();
    for (mode, mut plugin) in both_hold_modes(&idp) {
        let body = tools_call(json!(1), "get_order", json!({"customer_id": "c-42"}));
        let outcome = plugin
            .request(mcp_post(&idp.token(), &body).chunked(8))
            .unwrap_or_else(|e| panic!("{mode}: {e}"));
        assert!(outcome.forwarded(), "{mode}");
        let calls = &outcome.host_calls;
        // Each header map is read once, each body once at end of stream, no metric is
        // defined per request.
        assert_eq!(outcome.host_call("proxy_get_header_map_pairs"), 2, "{mode}: {calls:?}");
        assert_eq!(outcome.host_call("proxy_get_header_map_value"), 0, "{mode}: {calls:?}");
        assert_eq!(outcome.host_call("proxy_get_buffer_bytes"), 2, "{mode}: {calls:?}");
        assert_eq!(outcome.host_call("proxy_define_metric"), 0, "{mode}: {calls:?}");
        // Every host call of an allowed request and its answer (read for the resources it
        // may carry), pinned: one more is a cost to justify.
        let expected: std::collections::BTreeMap<String, u64> = [
            ("proxy_get_header_map_pairs", 2),         // the request's headers, the answer's
            ("proxy_get_buffer_bytes", 2),             // each body, once at its end
            ("proxy_get_current_time_nanoseconds", 2), // token times; the audit line
            ("proxy_increment_metric", 4),             // requests, identity, tool calls, answers
            ("proxy_record_metric", 1),                // body bytes histogram
            ("proxy_get_property", 1),                 // the mTLS peer, for workload identity
            ("proxy_set_property", 1),                 // the decision for access logs
            ("proxy_log", 1),                          // the audit line (the answer passed whole)
            ("proxy_replace_header_map_value", 2),     // decision id upstream and to the client
            ("proxy_remove_header_map_value", 2),      // the caller's token; the answer's length
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        assert_eq!(calls, &expected, "{mode}: host calls on the allow path changed");
    }
}

#[test]
fn the_callers_token_reaches_the_upstream_only_when_the_policy_forwards_it() {
    let idp = Idp::new();
    let body = tools_call(json!(1), "get_order", json!({"customer_id": "c-42"}));
    let mut p = policy(&idp);
    p["identity"]["jwt"]["forward"] = json!(true);
    let mut forwarding = load(&p, HostOptions::default());
    let outcome = forwarding.request(mcp_post(&idp.token(), &body)).unwrap();
    assert!(outcome.forwarded());
    assert_eq!(
        outcome.upstream_header("authorization"),
        Some(format!("Bearer {}", idp.token()))
    );
    // A request no route covers, passed by `unmatched: allow`, keeps its own credentials.
    let mut p = policy(&idp);
    p["unmatched"] = json!("allow");
    let mut plugin = load(&p, HostOptions::default());
    let other = mcp_post("other-service-credential", &body).set_header(":path", "/elsewhere");
    let outcome = plugin.request(other).unwrap();
    assert!(outcome.forwarded());
    assert_eq!(
        outcome.upstream_header("authorization").as_deref(),
        Some("Bearer other-service-credential")
    );
}

#[test]
fn two_workers_share_metrics_and_clock() {
    let idp = Idp::new();
    let wasm = aigate_harness::plugin_wasm().unwrap_or_else(|e| panic!("{e}"));
    let host = aigate_harness::Host::new();
    let config = policy(&idp).to_string();
    let mut w1 = Plugin::load_on(&host, &wasm, &config, HostOptions::default()).unwrap();
    let mut w2 = Plugin::load_on(&host, &wasm, &config, HostOptions::default()).unwrap();
    assert!(w1.configure_ok() && w2.configure_ok());
    assert_eq!(host.metric("result=.=ok;.;aigate_config_loads_total"), Some(2));
    let body = tools_call(json!(1), "get_order", json!({"customer_id": "c-42"}));
    let a = w1.request(mcp_post(&idp.token(), &body)).unwrap();
    let b = w2.request(mcp_post(&idp.token(), &body)).unwrap();
    assert_eq!(host.metric(REQUESTS_ALLOW_MCP), Some(2));
    // Decision ids from different workers never collide.
    assert_ne!(
        a.response_header("x-aigate-decision-id"),
        b.response_header("x-aigate-decision-id")
    );
    host.set_time_secs(NOW + 10_000);
    let c = w2.request(mcp_post(&idp.token(), &body)).unwrap();
    assert_eq!(c.status(), Some(401));
}

#[test]
fn hold_headers_without_envoy_option_hangs() {
    // Documents the host requirement: `hold: headers` on an Envoy without
    // `allow_on_headers_stop_iteration` never sees the body.
    let idp = Idp::new();
    let mut p = policy(&idp);
    p["hold"] = json!("headers");
    let mut plugin = load(&p, HostOptions::default());
    let body = tools_call(json!(1), "get_order", json!({"customer_id": "c-42"}));
    let outcome = plugin.request(mcp_post(&idp.token(), &body)).unwrap();
    assert_eq!(outcome.action(Phase::RequestHeaders), Some(Action::StopIteration));
    assert!(outcome.stalled);
    assert!(outcome.response.is_none());
}

/// A grant from carol for the `send_email` call `body`: sent without one first, the
/// refusal names the digest to approve.
fn grant_for_refused(plugin: &mut Plugin, idp: &Idp, approvals: &Idp, body: &str, jti: &str) -> String {
    grant_for_refused_with(plugin, idp, approvals, body, jti, [])
}

/// As [`grant_for_refused`], with claims of its own (`iat`, `exp`…).
fn grant_for_refused_with<const N: usize>(
    plugin: &mut Plugin,
    idp: &Idp,
    approvals: &Idp,
    body: &str,
    jti: &str,
    extra: [(&str, Value); N],
) -> String {
    let first = plugin.request(mcp_post(&idp.token(), body)).unwrap();
    let reply: Value = serde_json::from_slice(&first.local_reply.expect("approval_required").body).unwrap();
    let digest = reply["error"]["data"]["args_digest"].as_str().unwrap().to_string();
    let mut claims = idp.claims();
    for (k, v) in [
        ("iss", json!("https://approvals.example.com")),
        ("tool", json!("send_email")),
        ("args_digest", json!(digest)),
        ("approver", json!("carol@example.com")),
        ("jti", json!(jti)),
    ]
    .into_iter()
    .chain(extra)
    {
        claims.insert(k.into(), v);
    }
    approvals.sign(&claims)
}

#[test]
fn a_grant_given_back_unused_is_not_counted_as_accepted() {
    // A batch of two e-mails carries a grant for the first only: refused, its grant given
    // back. Counted once the grant is used, not also when it was examined.
    let idp = Idp::new();
    let approvals = Idp::signer(9, "approvals-1");
    let mut p = policy(&idp);
    p["approval"]["jwks"] = json!({"keys": [approvals.public_jwk.clone()]});
    let mut plugin = load(&p, HostOptions::default());
    let (a, b) = (
        json!({"to": "a@example.com", "subject": "A"}),
        json!({"to": "b@example.com", "subject": "B"}),
    );
    let grant = grant_for_refused(
        &mut plugin,
        &idp,
        &approvals,
        &tools_call(json!(1), "send_email", a.clone()),
        "only-a",
    );
    let accepted = "result=.=accepted;.;aigate_approvals_total";
    let batch = format!(
        "[{},{}]",
        tools_call(json!(1), "send_email", a.clone()),
        tools_call(json!(2), "send_email", b)
    );
    let refused = plugin
        .request(mcp_post(&idp.token(), &batch).set_header("x-aigate-approval", &grant))
        .unwrap();
    assert!(!refused.forwarded());
    assert_eq!(plugin.metric(accepted), Some(0), "a grant given back was counted");
    let alone = plugin
        .request(mcp_post(&idp.token(), &tools_call(json!(1), "send_email", a)).set_header("x-aigate-approval", &grant))
        .unwrap();
    assert!(alone.forwarded());
    assert_eq!(plugin.metric(accepted), Some(1));
}

#[test]
fn an_internal_failure_denies_and_is_counted() {
    // The replay store refuses to grow: every bucket full of unexpired grants. A valid
    // grant can then not be recorded as used, so it is not honoured: the plugin fails
    // closed, says so, and counts it.
    let idp = Idp::new();
    for (mode, mut p) in [
        ("hold=headers", envoy_hold_headers()),
        ("hold=body", HostOptions::default()),
    ] {
        let mut policy = policy(&idp);
        policy["hold"] = json!(mode.trim_start_matches("hold="));
        let approvals = Idp::signer(9, "approvals-1");
        policy["approval"]["jwks"] = json!({"keys": [approvals.public_jwk.clone()]});
        let mut plugin = load(&policy, std::mem::take(&mut p));
        let args = json!({"to": "bob@example.com", "subject": "Refund"});
        let body = tools_call(json!(7), "send_email", args);
        let grant = grant_for_refused(&mut plugin, &idp, &approvals, &body, "full-store-1");
        let full: String = (0..1024).map(|i| format!("{i:016x}:ffffffff\n")).collect();
        for b in 0..64 {
            plugin
                .set_shared_data(&format!("aigate.approvals.{b}"), full.as_bytes(), 0)
                .unwrap();
        }
        let outcome = plugin
            .request(mcp_post(&idp.token(), &body).set_header("x-aigate-approval", &grant))
            .unwrap_or_else(|e| panic!("{mode}: {e}"));
        assert!(
            !outcome.forwarded(),
            "{mode}: a grant that cannot be recorded was honoured"
        );
        let reply = outcome.local_reply.clone().expect("a local reply");
        let doc: Value = serde_json::from_slice(&reply.body).unwrap();
        // Not a policy answer to the call: the generic error, as a server error.
        assert_eq!(reply.status, 500, "{mode}: {doc}");
        assert_eq!(doc["error"]["reason"], "internal_error", "{mode}: {doc}");
        assert_eq!(doc["error"]["rule"], "approval.replay", "{mode}: {doc}");
        let audit = &audit_lines(&outcome)[0];
        assert_eq!(
            (audit["decision"].as_str(), audit["reason"].as_str()),
            (Some("deny"), Some("internal_error"))
        );
        assert_eq!(
            plugin.metric(&requests_metric("mcp", "deny", "internal_error")),
            Some(1),
            "{mode}"
        );
        assert_eq!(
            plugin.metric("result=.=internal_error;.;aigate_approvals_total"),
            Some(1),
            "{mode}: {:?}",
            plugin
                .metrics()
                .keys()
                .filter(|k| k.contains("approvals"))
                .collect::<Vec<_>>()
        );
    }
}

#[test]
fn a_restarted_proxy_refuses_grants_issued_before_it() {
    // Single use lives in the proxy's shared data, which a restart empties. The module
    // notes when its record began, so a grant spent before the restart cannot run again.
    let idp = Idp::new();
    let wasm = aigate_harness::plugin_wasm().unwrap_or_else(|e| panic!("{e}"));
    let approvals = Idp::signer(9, "approvals-1");
    let mut p = policy(&idp);
    p["approval"]["jwks"] = json!({"keys": [approvals.public_jwk.clone()]});
    let config = p.to_string();
    let args = json!({"to": "bob@example.com", "subject": "Refund"});
    let body = tools_call(json!(7), "send_email", args.clone());
    let grant = |jti: &str, iat: u64| {
        let mut fresh = load(&p, HostOptions::default());
        let times = [("iat", json!(iat)), ("exp", json!(iat + 300))];
        grant_for_refused_with(&mut fresh, &idp, &approvals, &body, jti, times)
    };
    let spent = grant("before-restart", NOW);
    let send = |plugin: &mut Plugin, grant: &str, token: &str| {
        plugin
            .request(mcp_post(token, &body).set_header("x-aigate-approval", grant))
            .unwrap()
    };

    let before = aigate_harness::Host::new();
    let mut first = Plugin::load_on(&before, &wasm, &config, HostOptions::default()).unwrap();
    assert!(first.configure_ok());
    assert!(send(&mut first, &spent, &idp.token()).forwarded());
    let again = send(&mut first, &spent, &idp.token());
    assert_eq!(body_json(&again)["error"]["data"]["reason"], "approval_replayed");

    // The restarted proxy: empty shared data, 30 s later.
    let after = aigate_harness::Host::new();
    after.set_time_secs(NOW + 30);
    let mut restarted = Plugin::load_on(&after, &wasm, &config, HostOptions::default()).unwrap();
    assert!(restarted.configure_ok());
    let since = after.shared_data("aigate.approvals.since").map(|(v, _)| v);
    assert_eq!(since, Some((NOW + 30).to_string().into_bytes()));
    let token = idp.token_with(json!({"iat": NOW + 30, "exp": NOW + 330}));
    let replay = send(&mut restarted, &spent, &token);
    assert!(!replay.forwarded(), "a grant spent before the restart ran again");
    let doc = body_json(&replay);
    assert_eq!(doc["error"]["data"]["reason"], "approval_expired", "{doc}");
    assert!(
        doc["error"]["message"]
            .as_str()
            .unwrap()
            .contains("ask for a new approval"),
        "{doc}"
    );
    assert_eq!(
        restarted.metric("result=.=approval_expired;.;aigate_approvals_total"),
        Some(1),
        "{:?}",
        restarted
            .metrics()
            .keys()
            .filter(|k| k.contains("approvals"))
            .collect::<Vec<_>>()
    );
    // A grant issued since the restart is honoured.
    let fresh = grant("after-restart", NOW + 30);
    assert!(send(&mut restarted, &fresh, &token).forwarded());

    // Hot restart: the old process keeps serving its connections with its own record
    // while the new one starts. With restart_overlap_seconds, the new process refuses
    // grants issued before the old one is surely gone; later ones run once.
    let mut guarded = p.clone();
    guarded["approval"]["restart_overlap_seconds"] = json!(600);
    let config = guarded.to_string();
    let old = aigate_harness::Host::new();
    old.set_time_secs(NOW - 3600); // serving for an hour
    let mut old_process = Plugin::load_on(&old, &wasm, &config, HostOptions::default()).unwrap();
    assert!(old_process.configure_ok());
    let new = aigate_harness::Host::new();
    new.set_time_secs(NOW + 30);
    let mut new_process = Plugin::load_on(&new, &wasm, &config, HostOptions::default()).unwrap();
    assert!(new_process.configure_ok());
    old.set_time_secs(NOW + 40);
    new.set_time_secs(NOW + 40);
    let token = idp.token_with(json!({"iat": NOW + 40, "exp": NOW + 340}));
    let drained = grant("during-overlap", NOW + 40);
    assert!(send(&mut old_process, &drained, &token).forwarded());
    let twice = send(&mut new_process, &drained, &token);
    assert!(
        !twice.forwarded(),
        "a grant spent in the old process ran again in the new one"
    );
    let doc = body_json(&twice);
    assert_eq!(doc["error"]["data"]["reason"], "approval_expired", "{doc}");
    let message = doc["error"]["message"].as_str().unwrap();
    assert!(message.contains("approval.restart_overlap_seconds"), "{doc}");
    assert!(message.contains("in 590 s"), "{doc}");
    new.set_time_secs(NOW + 630);
    let token = idp.token_with(json!({"iat": NOW + 630, "exp": NOW + 930}));
    let late = grant("after-overlap", NOW + 630);
    assert!(send(&mut new_process, &late, &token).forwarded());
}
