//! Engine tests for judging a model's answer (`model_calls: judge`): its tool calls are
//! held to the request's principal as calls the client sent would be.

mod common;

use aigate::audit;
use aigate::decision::Reason;
use aigate::engine::{self, Decision, Stage};
use aigate::output;
use aigate::policy;
use common::*;
use serde_json::{json, Value};

const CHAT: &str = "/v1/chat/completions";

fn world() -> World {
    World::with(|p| {
        p["routes"].as_array_mut().unwrap().extend([
            json!({"id": "chat", "prefix": CHAT, "protocol": "openai_chat", "owner": "assistants@example.com"}),
            json!({"id": "chat-unread", "prefix": "/unread/v1/chat/completions", "protocol": "openai_chat", "model_calls": "pass"}),
        ]);
        p["models"] = json!({"allow": ["gpt-4o-mini"]});
    })
}

/// The allowed request a model answers.
fn request(w: &World, scope: &str) -> Decision {
    let mut h = w.headers(Some(&w.token(json!({ "scope": scope }))));
    for (k, v) in h.iter_mut() {
        if k == ":path" {
            *v = CHAT.as_bytes().to_vec();
        }
    }
    let d = w.decide(
        &h,
        Some(&json!({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "refund me"}]})),
    );
    assert!(d.allowed(), "{:?}", d.denial);
    d
}

fn answer(calls: &[(&str, Value)]) -> Vec<u8> {
    let tool_calls: Vec<Value> = calls
        .iter()
        .enumerate()
        .map(|(i, (name, args))| json!({"id": format!("call_{i}"), "type": "function", "function": {"name": name, "arguments": args.to_string()}}))
        .collect();
    json!({"id": "chatcmpl-1", "object": "chat.completion", "model": "gpt-4o-mini", "choices": [
        {"index": 0, "finish_reason": "tool_calls", "message": {"role": "assistant", "content": null, "tool_calls": tool_calls}}
    ]})
    .to_string()
    .into_bytes()
}

fn judge(w: &World, scope: &str, calls: &[(&str, Value)]) -> Decision {
    let req = request(w, scope);
    let body = answer(calls);
    engine::on_answer(
        &w.policy,
        &req,
        output::calls(req.protocol.unwrap(), &body, &w.policy.limits),
    )
}

#[test]
fn answer_calls_are_held_to_the_callers_scope_bindings_and_constraints() {
    let w = world();
    type Row<'a> = (&'a str, &'a str, Vec<(&'a str, Value)>, Option<Reason>);
    let rows: Vec<Row> = vec![
        (
            "allowed",
            "orders.read",
            vec![("get_order", json!({"customer_id": "c-42"}))],
            None,
        ),
        (
            "scope",
            "orders.read",
            vec![
                ("get_order", json!({"customer_id": "c-42"})),
                ("refund_order", json!({"customer_id": "c-42", "amount": 5})),
            ],
            Some(Reason::ScopeMissing),
        ),
        (
            "another customer",
            "orders.read",
            vec![("get_order", json!({"customer_id": "c-99"}))],
            Some(Reason::BindingMismatch),
        ),
        (
            "constraint",
            "orders.read orders.refund",
            vec![("refund_order", json!({"customer_id": "c-42", "amount": 5000}))],
            Some(Reason::ArgumentViolation),
        ),
        (
            "unknown",
            "orders.read",
            vec![("drop_tables", json!({}))],
            Some(Reason::ToolUnknown),
        ),
        // Proposing an external action is not taking it: its grant is asked for when the
        // client sends the call back or calls the tool.
        (
            "external proposed",
            "email.send",
            vec![("send_email", json!({"to": "bob@example.com", "subject": "Refund"}))],
            None,
        ),
    ];
    for (name, scope, calls, want) in rows {
        let d = judge(&w, scope, &calls);
        assert_eq!(d.stage, Stage::Answer, "{name}");
        assert_eq!(d.denial.as_ref().map(|x| x.reason), want, "{name}");
        // The deciding call is recorded, allowed or not.
        let last = d.calls.last().unwrap();
        assert_eq!(last.allowed, want.is_none(), "{name}");
        assert_eq!(d.calls.len(), calls.len(), "{name}");
    }
}

#[test]
fn an_unreadable_answer_is_refused() {
    let w = world();
    let req = request(&w, "orders.read");
    for body in [&b"{\"choices\": 3}"[..], b"<html>", b"{\"choices\":[{\"message\":{\"tool_calls\":[{\"type\":\"function\",\"function\":{\"name\":\"get_order\",\"arguments\":\"{\\\"customer_id\\\":\\\"c-42\\\"\"}}]}}]}"] {
        let d = engine::on_answer(&w.policy, &req, output::calls(req.protocol.unwrap(), body, &w.policy.limits));
        assert_eq!(d.denial.map(|x| x.reason), Some(Reason::BodyMalformed));
    }
}

#[test]
fn the_audit_line_of_an_answer_shares_the_decision_id_and_names_the_call() {
    let w = world();
    let d = judge(&w, "orders.read", &[("get_order", json!({"customer_id": "c-99"}))]);
    let line: Value = serde_json::from_str(&audit::record(&w.policy, &d, "abc", 0)).unwrap();
    assert_eq!(line["stage"], "answer");
    assert_eq!(line["decision_id"], "abc");
    assert_eq!(line["decision"], "deny");
    assert_eq!(line["reason"], "binding_mismatch");
    assert_eq!(line["rule"], "tools.get_order.bind./customer_id");
    assert_eq!(line["tool"], "get_order");
    assert_eq!(line["intent"], "orders.read");
    assert_eq!(line["subject"], "alice");
    assert_eq!(line["model"], "gpt-4o-mini");
    assert_eq!(line["protocol"], "openai_chat");
    assert_eq!(line["route"], "chat");
    assert!(
        !line.to_string().contains("c-99"),
        "argument values stay out of the audit"
    );

    let req = request(&w, "orders.read");
    let line: Value = serde_json::from_str(&audit::record(&w.policy, &req, "abc", 0)).unwrap();
    assert_eq!(line["stage"], "request");
}

#[test]
fn routes_judge_answers_unless_they_pass_them() {
    let w = world();
    let route = |id: &str| w.policy.routes.iter().position(|r| r.id == id);
    assert!(w.policy.judges_answers(route("chat")));
    assert!(!w.policy.judges_answers(route("chat-unread")));
    assert!(!w.policy.judges_answers(route("support-mcp")));

    let mut doc = policy_doc();
    doc["routes"][0]["model_calls"] = json!("judge");
    let errors = policy::compile(doc.to_string().as_bytes()).unwrap_err();
    assert!(
        errors.iter().any(|e| e.to_string().contains("routes[0].model_calls")),
        "{errors:?}"
    );
    doc["routes"][0]["model_calls"] = json!("sometimes");
    assert!(policy::compile(doc.to_string().as_bytes()).is_err());
}
