//! What one request costs the module, in Wasm operators executed (wasmtime fuel): a figure
//! no machine, load or clock changes, so a change to the engine's cost shows up exactly,
//! where requests per second drown it in noise. Host work (Envoy copying headers and
//! bodies, logging) is not in it: the benchmark ladder measures that.
//!
//!   cargo run --release -p aigate-harness --example cost
//!
//! Prints one JSON object per line: `{"case": …, "body_bytes": …, "fuel": …}`, each case
//! measured on its second request (the token already verified and cached) unless it says
//! otherwise. Uses target/wasm32-wasip1/release/aigate.wasm (or AIGATE_WASM).

#[path = "../tests/common/mod.rs"]
mod common;

use aigate_harness::HostOptions;
use common::*;
use serde_json::{json, Value};

/// A `get_order` call padded to about `size` bytes, the benchmark ladder's request.
fn padded_call(size: usize) -> String {
    let bare = tools_call(json!(1), "get_order", json!({"customer_id": "c-42", "note": ""}));
    let pad = size.saturating_sub(bare.len());
    tools_call(
        json!(1),
        "get_order",
        json!({"customer_id": "c-42", "note": "x".repeat(pad)}),
    )
}

fn main() {
    let idp = Idp::new();
    let mut p = policy(&idp);
    p["hold"] = json!("headers");
    let mut plugin = load(&p, envoy_hold_headers());
    let token = idp.token();
    let mut report = |case: &str, body: &str, token: &str| {
        let outcome = plugin
            .request(mcp_post(token, body))
            .unwrap_or_else(|e| panic!("{case}: {e}"));
        let line = json!({"case": case, "body_bytes": body.len(), "fuel": outcome.fuel,
                          "fuel_by_export": outcome.fuel_by_export,
                          "status": outcome.status(), "forwarded": outcome.forwarded()});
        println!("{line}");
        line
    };
    let small = padded_call(1024);
    report("token not yet cached (Ed25519 verify)", &small, &token);
    let line: Value = report("allow, 1 KiB", &small, &token);
    assert_eq!(line["forwarded"], true, "the allowed request was not forwarded: {line}");
    for (label, size) in [
        ("16 KiB", 16 << 10),
        ("256 KiB", 256 << 10),
        ("1 MiB", (1 << 20) - 4096),
    ] {
        report(&format!("allow, {label}"), &padded_call(size), &token);
    }
    let refund = tools_call(json!(2), "refund_order", json!({"customer_id": "c-42", "amount": 5}));
    let reader = idp.token_with(json!({"scope": "orders.read"}));
    report("token not yet cached (Ed25519 verify), second token", &refund, &reader);
    report("deny scope_missing, 1 KiB token cached", &refund, &reader);
    let _ = HostOptions::default();
}
