//! What hostile input costs the module as it grows: the same shape of request or answer at
//! n and at 4n must cost about 4 times as much (wasmtime fuel, Wasm operators executed),
//! not 16. A callback is never preempted in Envoy: one whose cost grows with the square of
//! its input blocks its worker thread, and every connection on it, for seconds.
//!
//! Fuel counts work exactly, whatever the machine or its load, so these tests cannot flake
//! on time. The sizes are small: the ratio, not the size, tells linear from quadratic.

mod common;

use aigate_harness::{Outcome, Plugin, Request, UpstreamResponse};
use common::*;
use serde_json::{json, Value};

/// Above 4 (linear, plus what does not grow), well below 16 (quadratic).
const LINEAR: f64 = 6.0;

/// The request `make(n)` builds, sent twice: the second, measured, finds the token
/// verified and cached, as most requests do.
fn measured(plugin: &mut Plugin, make: &dyn Fn(usize) -> Request, n: usize) -> Outcome {
    plugin.request(make(n)).unwrap_or_else(|e| panic!("n={n}: {e}"));
    plugin.request(make(n)).unwrap_or_else(|e| panic!("n={n}: {e}"))
}

/// How many times more the input of size `4n` costs than that of size `n`, after `check`
/// saw each outcome is the one the input is built to reach.
fn growth(plugin: &mut Plugin, n: usize, make: &dyn Fn(usize) -> Request, check: &dyn Fn(usize, &Outcome)) -> f64 {
    let small = measured(plugin, make, n);
    check(n, &small);
    let large = measured(plugin, make, 4 * n);
    check(4 * n, &large);
    large.fuel as f64 / small.fuel as f64
}

fn mcp_plugin(idp: &Idp) -> Plugin {
    let mut p = policy(idp);
    p["hold"] = json!("headers");
    load(&p, envoy_hold_headers())
}

fn llm_plugin(idp: &Idp, change: impl FnOnce(&mut Value)) -> Plugin {
    let mut p = policy(idp);
    p["hold"] = json!("headers");
    let routes = p["routes"].as_array_mut().unwrap();
    routes.push(json!({"id": "responses", "prefix": "/v1/responses", "protocol": "openai_responses"}));
    routes.push(json!({"id": "anthropic", "prefix": "/v1/messages", "protocol": "anthropic_messages"}));
    p["models"] = json!({"allow": ["gpt-4o-mini", "claude-x"]});
    change(&mut p);
    load(&p, envoy_hold_headers())
}

fn upstream(content_type: &str, body: String) -> UpstreamResponse {
    let mut r = UpstreamResponse::new(200).header("content-type", content_type);
    r.body_chunks = vec![body.into_bytes()];
    r
}

/// The request passed, and its answer's record counts `hidden` items withheld.
fn passed_hiding(hidden: usize, o: &Outcome) {
    assert_eq!(o.status(), Some(200), "{:?}", o.logs);
    let audits = audit_lines(o);
    assert_eq!(
        audits.last().map(|a| a["hidden"].clone()),
        Some(json!(hidden)),
        "{audits:?}"
    );
}

/// Each of a tool result's n content blocks links a resource of another tenant: each is
/// withheld, an edit of the server's answer.
#[test]
fn withheld_blocks_cost_linear_time() {
    let idp = Idp::new();
    let token = idp.token();
    let mut plugin = mcp_plugin(&idp);
    let answer = |n: usize| {
        let blocks: Vec<Value> = (0..n)
            .map(|i| json!({"type": "resource_link", "uri": format!("docs://globex/d{i}"), "name": "x"}))
            .collect();
        json!({"jsonrpc": "2.0", "id": 1, "result": {"content": blocks}}).to_string()
    };
    let call = tools_call(json!(1), "get_order", json!({"customer_id": "c-42"}));
    let json = |n| mcp_post(&token, &call).upstream(upstream("application/json", answer(n)));
    let ratio = growth(&mut plugin, 100, &json, &passed_hiding);
    assert!(
        ratio < LINEAR,
        "a JSON answer of 4x the withheld blocks costs {ratio:.1}x"
    );
    let sse = |n| {
        let event = format!("event: message\ndata: {}\n\n", answer(n));
        mcp_post(&token, &call).upstream(upstream("text/event-stream", event))
    };
    let ratio = growth(&mut plugin, 100, &sse, &passed_hiding);
    assert!(ratio < LINEAR, "an event of 4x the withheld blocks costs {ratio:.1}x");
}

/// A batch answer of n list results, each with an item hidden: n lists cut, after n
/// withheld blocks (cuts sorted among replacements).
#[test]
fn lists_of_a_batch_cost_linear_time() {
    let idp = Idp::new();
    let token = idp.token();
    let mut plugin = mcp_plugin(&idp);
    let list = json!({"jsonrpc": "2.0", "id": 3, "method": "tools/list"}).to_string();
    let make = |n: usize| {
        let blocks: Vec<Value> = (0..n)
            .map(|i| json!({"type": "resource_link", "uri": format!("docs://globex/d{i}")}))
            .collect();
        let mut messages = vec![json!({"jsonrpc": "2.0", "id": 0, "result": {"content": blocks}})];
        messages.extend(
            (1..=n).map(|i| json!({"jsonrpc": "2.0", "id": i, "result": {"tools": [{"name": "refund_order"}]}})),
        );
        let answer = Value::Array(messages).to_string();
        mcp_post(&token, &list).upstream(upstream("application/json", answer))
    };
    let ratio = growth(&mut plugin, 100, &make, &|n, o| passed_hiding(2 * n, o));
    assert!(ratio < LINEAR, "a batch of 4x the lists costs {ratio:.1}x");
}

/// A Responses stream announces a shell call of n commands, then streams n command deltas.
#[test]
fn shell_command_events_cost_linear_time() {
    let idp = Idp::new();
    let token = idp.token();
    let mut plugin = llm_plugin(&idp, |_| {});
    let body = json!({"model": "gpt-4o-mini", "stream": true, "input": "hi"}).to_string();
    let make = |n: usize| {
        let commands: Vec<String> = (0..n).map(|i| format!("echo {i}")).collect();
        let added = json!({"type": "response.output_item.added", "output_index": 0,
            "item": {"type": "shell_call", "id": "sc1", "call_id": "c1", "action": {"commands": commands}}});
        let mut events = format!("data: {added}\n\n");
        let delta = json!({"type": "response.shell_call_command.delta", "output_index": 0,
                           "command_index": 0, "delta": "x"});
        for _ in 0..n {
            events.push_str(&format!("data: {delta}\n\n"));
        }
        Request::post("/v1/responses")
            .bearer(&token)
            .json(body.clone().into_bytes())
            .upstream(upstream("text/event-stream", events))
    };
    let ratio = growth(&mut plugin, 200, &make, &|_, o| {
        assert_eq!(o.status(), Some(200), "{:?}", o.logs)
    });
    assert!(ratio < LINEAR, "4x the commands and their events cost {ratio:.1}x");
}

/// A call of n fractional arguments beside an `Mcp-Param-*` header of n digits that none
/// of them equals: each argument is compared with the header's number.
#[test]
fn fractional_arguments_beside_a_param_header_cost_linear_time() {
    let idp = Idp::new();
    let token = idp.token();
    let mut plugin = mcp_plugin(&idp);
    let make = |n: usize| {
        let args: serde_json::Map<String, Value> = (0..n).map(|i| (format!("k{i}"), json!(0.5))).collect();
        let body = tools_call(json!(1), "get_order", Value::Object(args));
        mcp_post(&token, &body).header("mcp-param-region", "1".repeat(n))
    };
    let ratio = growth(&mut plugin, 500, &make, &|_, o| {
        assert_eq!(o.status(), Some(400), "the header mirrors no argument: {:?}", o.logs)
    });
    assert!(ratio < LINEAR, "4x the arguments and header digits cost {ratio:.1}x");
}

/// A call with n distinct `Mcp-Param-*` headers, each mirroring its argument.
#[test]
fn many_param_headers_cost_linear_time() {
    let idp = Idp::new();
    let token = idp.token();
    let mut plugin = mcp_plugin(&idp);
    let make = |n: usize| {
        let mut args = serde_json::Map::new();
        args.insert("customer_id".into(), json!("c-42"));
        let body = tools_call(json!(1), "get_order", Value::Object(args));
        (0..n).fold(mcp_post(&token, &body), |r, i| {
            r.header(&format!("mcp-param-p{i}"), "c-42")
        })
    };
    let ratio = growth(&mut plugin, 100, &make, &|_, o| {
        assert_eq!(o.status(), Some(200), "{:?}", o.logs)
    });
    assert!(ratio < LINEAR, "4x the Mcp-Param headers cost {ratio:.1}x");
}

/// An Anthropic turn of n provider tool calls and n results, none answering a call.
#[test]
fn provider_tool_calls_of_a_turn_cost_linear_time() {
    let idp = Idp::new();
    let token = idp.token();
    let mut plugin = llm_plugin(&idp, |_| {});
    let make = |n: usize| {
        let mut blocks: Vec<Value> = (0..n)
            .map(|i| json!({"type": "server_tool_use", "id": format!("srvtoolu_{i:012}"), "name": "web_search", "input": {}}))
            .collect();
        blocks.extend((0..n).map(
            |i| json!({"type": "web_search_tool_result", "tool_use_id": format!("srvtoolu_{i:011}x"), "content": []}),
        ));
        let body = json!({"model": "claude-x", "max_tokens": 10, "messages": [
            {"role": "user", "content": "x"},
            {"role": "assistant", "content": blocks}]});
        Request::post("/v1/messages")
            .bearer(&token)
            .json(body.to_string().into_bytes())
    };
    let ratio = growth(&mut plugin, 250, &make, &|_, o| {
        // The provider's calls are judged (its tool is no tool of the catalogue).
        assert_eq!(o.status(), Some(403), "{:?}", o.logs)
    });
    assert!(ratio < LINEAR, "4x the provider tool calls cost {ratio:.1}x");
}

/// A request naming n vector stores, each listed in a claim of n the store rule's template
/// reads.
#[test]
fn stores_named_against_a_claim_array_cost_linear_time() {
    let idp = Idp::new();
    let mut plugin = llm_plugin(&idp, |p| {
        p["data"]["vector_stores"] = json!([{"id": "kb", "ids": ["{kb_stores}"], "scope": "docs.read"}]);
    });
    let make = |n: usize| {
        let stores: Vec<String> = (0..n).map(|i| format!("vs_{i:06}")).collect();
        let token = idp.token_with(json!({"kb_stores": stores}));
        let body = json!({"model": "gpt-4o-mini", "input": "hi",
                          "tools": [{"type": "file_search", "vector_store_ids": stores}]});
        Request::post("/v1/responses")
            .bearer(&token)
            .json(body.to_string().into_bytes())
    };
    let ratio = growth(&mut plugin, 100, &make, &|_, o| {
        assert_eq!(o.status(), Some(200), "every store is the caller's: {:?}", o.logs)
    });
    assert!(ratio < LINEAR, "4x the stores and claim entries cost {ratio:.1}x");
}

/// A token of n scopes, none granting `refund_order`, and a list answer of n such tools.
#[test]
fn hidden_items_against_many_scopes_cost_linear_time() {
    let idp = Idp::new();
    let mut plugin = mcp_plugin(&idp);
    let list = json!({"jsonrpc": "2.0", "id": 3, "method": "tools/list"}).to_string();
    let make = |n: usize| {
        let scopes: Vec<String> = (0..n).map(|i| format!("s{i}")).collect();
        let token = idp.token_with(json!({"scope": scopes.join(" ") + " orders.read"}));
        let tools: Vec<Value> = (0..n).map(|_| json!({"name": "refund_order"})).collect();
        let answer = json!({"jsonrpc": "2.0", "id": 3, "result": {"tools": tools}}).to_string();
        mcp_post(&token, &list).upstream(upstream("application/json", answer))
    };
    let ratio = growth(&mut plugin, 200, &make, &passed_hiding);
    assert!(ratio < LINEAR, "4x the items and scopes cost {ratio:.1}x");
}
