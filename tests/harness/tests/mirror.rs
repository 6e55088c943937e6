//! The compiled module and MCP's mirror headers (`Mcp-Method`, `Mcp-Name`): a header that
//! disagrees with the body is answered locally, 400 with the JSON-RPC error MCP servers
//! give it, and the request never reaches the upstream.
//!
//! Needs `target/wasm32-wasip1/release/aigate.wasm` (`cargo build --release --target
//! wasm32-wasip1`) or `AIGATE_WASM`.

mod common;

use aigate_harness::HostOptions;
use common::*;
use serde_json::{json, Value};

fn body_json(outcome: &aigate_harness::Outcome) -> Value {
    serde_json::from_slice(outcome.response_body())
        .unwrap_or_else(|e| panic!("response body is not JSON ({e}): {}", outcome.response_body_str()))
}

#[test]
fn a_mismatched_mcp_name_is_answered_locally_and_never_reaches_upstream() {
    let idp = Idp::new();
    for (mode, mut plugin) in both_hold_modes(&idp) {
        let body = tools_call(
            json!("req-3"),
            "get_order",
            json!({"customer_id": "c-42", "order_id": "o-1"}),
        );
        let request = mcp_post(&idp.token(), &body)
            .header("mcp-method", "tools/call")
            .header("mcp-name", "send_email");
        let outcome = plugin.request(request).unwrap_or_else(|e| panic!("{mode}: {e}"));

        assert_eq!(outcome.status(), Some(400), "{mode}: {}", outcome.response_body_str());
        assert!(outcome.local_reply.is_some(), "{mode}: not the plugin's reply");
        let ct = outcome.response_header("content-type").unwrap_or_default();
        assert!(ct.starts_with("application/json"), "{mode}: content-type {ct:?}");
        let id = outcome
            .response_header("x-aigate-decision-id")
            .unwrap_or_else(|| panic!("{mode}: no decision id"));
        let v = body_json(&outcome);
        assert_eq!(v["jsonrpc"], "2.0", "{mode}: {v}");
        assert_eq!(v["id"], "req-3", "{mode}: {v}");
        assert_eq!(v["error"]["code"], -32020, "{mode}: {v}");
        assert_eq!(
            v["error"]["data"],
            json!({"reason": "body_malformed", "rule": "mcp.mirror", "decision_id": id}),
            "{mode}: {v}"
        );
        let message = v["error"]["message"].as_str().unwrap_or_default();
        assert!(
            message.contains("Mcp-Name") && message.contains("\"get_order\""),
            "{mode}: {message}"
        );

        // Never upstream: no body byte with hold=body (Envoy has sent the headers on),
        // nothing at all with hold=headers.
        assert!(!outcome.forwarded(), "{mode}");
        match &outcome.upstream {
            Some(up) => {
                assert_eq!(mode, "hold=body", "{mode}: the upstream saw the request head");
                assert!(up.body.is_empty() && !up.complete, "{mode}: {:?}", up.body);
            }
            None => assert_eq!(mode, "hold=headers"),
        }

        assert_eq!(
            plugin.metric(&requests_metric("mcp", "deny", "body_malformed")),
            Some(1),
            "{mode}"
        );
        let audits = audit_lines(&outcome);
        assert_eq!(audits.len(), 1, "{mode}: {:?}", outcome.logs);
        let a = &audits[0];
        assert_eq!(
            (&a["decision"], &a["reason"], &a["rule"], &a["method"]),
            (
                &json!("deny"),
                &json!("body_malformed"),
                &json!("mcp.mirror"),
                &json!("tools/call")
            ),
            "{mode}: {a}"
        );
        assert!(outcome.anomalies.is_empty(), "{mode}: {:?}", outcome.anomalies);
    }
}

#[test]
fn agreeing_mirror_headers_reach_the_upstream_unchanged() {
    let idp = Idp::new();
    for (mode, mut plugin) in both_hold_modes(&idp) {
        let body = tools_call(json!(1), "get_order", json!({"customer_id": "c-42", "order_id": "o-1"}));
        let request = mcp_post(&idp.token(), &body)
            .header("mcp-method", "tools/call")
            .header("mcp-name", "get_order");
        let outcome = plugin.request(request).unwrap_or_else(|e| panic!("{mode}: {e}"));
        assert!(outcome.forwarded(), "{mode}: {}", outcome.response_body_str());
        assert_eq!(
            outcome.upstream_header("mcp-name").as_deref(),
            Some("get_order"),
            "{mode}"
        );
        assert_eq!(
            outcome.upstream_header("mcp-method").as_deref(),
            Some("tools/call"),
            "{mode}"
        );
        assert_eq!(plugin.metric(REQUESTS_ALLOW_MCP), Some(1), "{mode}");
    }
}

#[test]
fn hostile_mirror_header_bytes_are_refused_without_a_trap() {
    let idp = Idp::new();
    let mut plugin = load(&policy(&idp), HostOptions::default());
    let body = tools_call(json!(1), "get_order", json!({"customer_id": "c-42", "order_id": "o-1"}));
    for value in [&b"get_\xff\xfe"[..], b"=?base64?/w==?=", b"get_order\x00"] {
        let outcome = plugin
            .request(mcp_post(&idp.token(), &body).header("mcp-name", value))
            .unwrap_or_else(|e| panic!("{value:?}: {e}"));
        assert_eq!(
            outcome.status(),
            Some(400),
            "{value:?}: {}",
            outcome.response_body_str()
        );
        assert_eq!(body_json(&outcome)["error"]["data"]["rule"], "mcp.mirror", "{value:?}");
    }
    // The VM lives on: the next request is judged as usual.
    let outcome = plugin.request(mcp_post(&idp.token(), &body)).unwrap();
    assert!(outcome.forwarded(), "{}", outcome.response_body_str());
}
