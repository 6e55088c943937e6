//! Engine tests for judging a model's answer (`model_calls: judge`): its tool calls are
//! held to the request's principal as calls the client sent would be.

#[path = "common/chat_stream.rs"]
mod chat_stream;
mod common;

use aigate::audit;
use aigate::decision::Reason;
use aigate::engine::{self, Decision, Stage};
use aigate::output;
use aigate::policy;
use chat_stream::chat_events;
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
    asking(w, scope, false)
}

/// The allowed request a model answers, as a stream when `stream`.
fn asking(w: &World, scope: &str, stream: bool) -> Decision {
    let mut h = w.headers(Some(&w.token(json!({ "scope": scope }))));
    for (k, v) in h.iter_mut() {
        if k == ":path" {
            *v = CHAT.as_bytes().to_vec();
        }
    }
    let d = w.decide(
        &h,
        Some(
            &json!({"model": "gpt-4o-mini", "stream": stream, "messages": [{"role": "user", "content": "refund me"}]}),
        ),
    );
    assert!(d.allowed(), "{:?}", d.denial);
    assert_eq!(d.stream, stream);
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
fn an_answer_read_otherwise_by_its_client_is_replaced_whole_not_rewritten() {
    // Go's encoding/json binds "Tool_calls" as tool_calls, and a Responses item's or an
    // Anthropic block's "Type" as type: a rewrite that removed only what aigate reads
    // would hand the client the call. The provider's error comes instead.
    let w = World::with(|p| {
        p["routes"].as_array_mut().unwrap().extend([
            json!({"id": "chat", "prefix": CHAT, "protocol": "openai_chat"}),
            json!({"id": "responses", "prefix": "/v1/responses", "protocol": "openai_responses"}),
            json!({"id": "messages", "prefix": "/v1/messages", "protocol": "anthropic_messages"}),
        ]);
        p["models"] = json!({"allow": ["gpt-4o-mini"]});
    });
    let refund = json!({"customer_id": "c-99", "amount": 5000}).to_string();
    for (path, ask, body) in [
        (
            CHAT,
            json!({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}),
            json!({"choices": [{"index": 0, "finish_reason": "tool_calls", "message": {"role": "assistant",
                "Tool_calls": [{"id": "c1", "type": "function", "function": {"name": "refund_order", "arguments": refund}}]}}]}),
        ),
        (
            "/v1/responses",
            json!({"model": "gpt-4o-mini", "input": "hi"}),
            json!({"output": [{"Type": "function_call", "call_id": "c1", "name": "refund_order", "arguments": refund}]}),
        ),
        (
            "/v1/messages",
            json!({"model": "gpt-4o-mini", "max_tokens": 10, "messages": [{"role": "user", "content": "hi"}]}),
            json!({"content": [{"Type": "tool_use", "id": "t1", "name": "refund_order", "input": {"customer_id": "c-99"}}]}),
        ),
    ] {
        let mut h = w.headers(Some(&w.token(json!({}))));
        h.retain(|(k, _)| k != ":path");
        h.push((":path".into(), path.as_bytes().to_vec()));
        let req = w.decide(&h, Some(&ask));
        assert!(req.allowed(), "{path}: {:?}", req.denial);
        let (d, rewritten) = engine::whole_answer(&w.policy, &req, body.to_string().as_bytes(), "abc", &w.host);
        assert_eq!(d.denial.map(|x| x.reason), Some(Reason::BodyMalformed), "{path}");
        let sent: Value = serde_json::from_slice(&rewritten.unwrap()).unwrap();
        assert!(!sent.to_string().contains("refund_order"), "{path}: {sent}");
        assert_eq!(sent["error"]["reason"], "body_malformed", "{path}: {sent}");
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
fn routes_judge_answers_unless_they_pass_them_and_options_fit_the_protocol() {
    let w = world();
    let route = |id: &str| w.policy.routes.iter().position(|r| r.id == id);
    assert!(w.policy.judges_answers(route("chat")));
    assert!(!w.policy.judges_answers(route("chat-unread")));
    // MCP routes judge answers unless they pass lists, resources and tasks.
    assert!(w.policy.judges_answers(route("support-mcp")));
    let unlisted = World::with(|p| p["routes"][0]["lists"] = json!("pass"));
    assert!(unlisted.policy.judges_answers(Some(0)));
    let tasks_bound = World::with(|p| {
        p["routes"][0]["lists"] = json!("pass");
        p["routes"][0]["answer_resources"] = json!("pass");
    });
    assert!(
        tasks_bound.policy.judges_answers(Some(0)),
        "the tasks answers create are bound"
    );
    let unread = World::with(|p| {
        p["routes"][0]["lists"] = json!("pass");
        p["routes"][0]["answer_resources"] = json!("pass");
        p["routes"][0]["tasks"] = json!("pass");
    });
    assert!(!unread.policy.judges_answers(Some(0)));
    let mut doc = policy_doc();
    doc["routes"]
        .as_array_mut()
        .unwrap()
        .push(json!({"id": "chat", "prefix": CHAT, "protocol": "openai_chat", "answer_resources": "pass"}));
    doc["models"] = json!({"allow": ["gpt-4o-mini"]});
    let errors = policy::compile(doc.to_string().as_bytes()).unwrap_err();
    assert!(
        errors
            .iter()
            .any(|e| e.to_string().contains("routes[1].answer_resources")),
        "{errors:?}"
    );

    let mut doc = policy_doc();
    doc["routes"][0]["model_calls"] = json!("judge");
    let errors = policy::compile(doc.to_string().as_bytes()).unwrap_err();
    assert!(
        errors.iter().any(|e| e.to_string().contains("routes[0].model_calls")),
        "{errors:?}"
    );
    // On an LLM route, where model_calls applies, only judge or pass is a setting.
    let mut doc = policy_doc();
    doc["routes"]
        .as_array_mut()
        .unwrap()
        .push(json!({"id": "chat", "prefix": CHAT, "protocol": "openai_chat", "model_calls": "sometimes"}));
    doc["models"] = json!({"allow": ["gpt-4o-mini"]});
    let errors = policy::compile(doc.to_string().as_bytes()).unwrap_err();
    assert!(
        errors
            .iter()
            .any(|e| e.to_string().starts_with("routes[1].model_calls")),
        "{errors:?}"
    );
    doc["routes"][1]["model_calls"] = json!("pass");
    assert!(policy::compile(doc.to_string().as_bytes()).is_ok());
    let mut doc = policy_doc();
    doc["routes"]
        .as_array_mut()
        .unwrap()
        .push(json!({"id": "chat", "prefix": CHAT, "protocol": "openai_chat", "lists": "filter"}));
    doc["models"] = json!({"allow": ["gpt-4o-mini"]});
    let errors = policy::compile(doc.to_string().as_bytes()).unwrap_err();
    assert!(
        errors.iter().any(|e| e.to_string().contains("routes[1].lists")),
        "{errors:?}"
    );
}

#[test]
fn mcp_lists_show_what_the_caller_may_use() {
    use aigate::authz::visible;
    use aigate::request::mcp::Listing;
    let w = world();
    let mut h = w.headers(Some(&w.token(json!({"scope": "orders.read docs.read"}))));
    h.push(("mcp-session-id".into(), b"s-1".to_vec()));
    let d = w.decide(
        &h,
        Some(&json!([
            {"jsonrpc": "2.0", "id": 1, "method": "tools/list"},
            {"jsonrpc": "2.0", "id": 2, "method": "prompts/list", "params": {"cursor": "x"}},
            {"jsonrpc": "2.0", "method": "notifications/initialized"}
        ])),
    );
    assert!(d.allowed(), "{:?}", d.denial);
    assert!(engine::judges_answer(&w.policy, &d));
    // In monitor mode a caller without a credential is forwarded: its answer has no
    // principal to be held to, so it is not judged (rather than judged as a failure).
    let monitored = World::with(|p| p["mode"] = json!("monitor"));
    let mut anonymous = monitored.headers(None);
    for (k, v) in anonymous.iter_mut() {
        if k == ":method" {
            *v = b"GET".to_vec(); // the server's event stream: judged whatever it lists
        }
    }
    let shadow = monitored.decide(&anonymous, None);
    assert_eq!(shadow.denial.as_ref().map(|x| x.reason), Some(Reason::Unauthenticated));
    assert!(shadow.principal.is_none() && !engine::judges_answer(&monitored.policy, &shadow));
    let p = d.principal.as_ref().unwrap();
    let item = |v: Value| v.as_object().unwrap().clone();
    let seen = |listing, v: Value| visible(&w.policy, p, listing, &item(v));
    assert!(seen(Listing::Tools, json!({"name": "get_order", "description": "…"})));
    assert!(
        !seen(Listing::Tools, json!({"name": "refund_order"})),
        "scope not granted"
    );
    assert!(!seen(Listing::Tools, json!({"name": "drop_tables"})), "not catalogued");
    assert!(!seen(Listing::Tools, json!({"title": "no name"})));
    assert!(seen(Listing::Prompts, json!({"name": "support_reply"})));
    assert!(!seen(Listing::Prompts, json!({"name": "admin_console"})));
    assert!(seen(Listing::Resources, json!({"uri": "docs://acme/handbook"})));
    assert!(!seen(Listing::Resources, json!({"uri": "docs://globex/pricing"})));
    assert!(!seen(
        Listing::Resources,
        json!({"uri": "docs://acme/../globex/pricing"})
    ));
    assert!(seen(
        Listing::ResourceTemplates,
        json!({"uriTemplate": "docs://acme/{name}"})
    ));
    assert!(!seen(
        Listing::ResourceTemplates,
        json!({"uriTemplate": "docs://{tenant}/{name}"})
    ));
    assert!(seen(
        Listing::ResourceTemplates,
        json!({"uriTemplate": "docs://acme/{kind}/{name}.txt"})
    ));
    for escaping in [
        "docs://acme/{a}/../../globex/payroll-{doc}",
        "docs://acme/{+path}",
        "docs://acme/{/segments}",
        "docs://acme/{#frag}",
        "docs://acme/{name}%2F..%2Fglobex",
        "docs://acme/{name",
    ] {
        assert!(
            !seen(Listing::ResourceTemplates, json!({ "uriTemplate": escaping })),
            "{escaping}"
        );
    }

    // Without the data rule's scope, nothing of it is shown.
    let mut h = w.headers(Some(&w.token(json!({"scope": "orders.read"}))));
    h.push(("mcp-session-id".into(), b"s-1".to_vec()));
    let d = w.decide(
        &h,
        Some(&json!({"jsonrpc": "2.0", "id": 1, "method": "resources/list"})),
    );
    let p = d.principal.as_ref().unwrap();
    assert!(!visible(
        &w.policy,
        p,
        Listing::Resources,
        &item(json!({"uri": "docs://acme/handbook"}))
    ));

    // Any request's answer is judged (by its shape), and so is whatever a server sends
    // back to notifications or responses alone: it owes them an empty 202, and a body
    // is held to the caller's boundary like any answer.
    for body in [
        json!({"jsonrpc": "2.0", "id": 1, "method": "ping"}),
        json!({"jsonrpc": "2.0", "method": "notifications/initialized"}),
        json!({"jsonrpc": "2.0", "id": "srv-1", "result": {}}),
    ] {
        let d = w.decide(&h, Some(&body));
        assert!(d.allowed() && engine::judges_answer(&w.policy, &d), "{body}");
    }
}

#[test]
fn a_list_answers_decision_counts_what_was_hidden() {
    let w = world();
    let req = request(&w, "orders.read");
    let d = engine::on_listing(&req, 3, None);
    assert!(d.allowed());
    let line: Value = serde_json::from_str(&audit::record(&w.policy, &d, "abc", 0)).unwrap();
    assert_eq!(
        (line["stage"].as_str(), line["hidden"].as_u64()),
        (Some("answer"), Some(3))
    );
    let d = engine::on_listing(&req, 0, None);
    let line: Value = serde_json::from_str(&audit::record(&w.policy, &d, "abc", 0)).unwrap();
    assert!(line.get("hidden").is_none(), "{line}");
}

#[test]
fn resources_in_mcp_answers_are_held_to_the_callers_data_boundary() {
    let answer = json!({"jsonrpc": "2.0", "id": 1, "result": {"content": [
        {"type": "text", "text": "Order o-1 ships Monday."},
        {"type": "resource_link", "uri": "docs://acme/shipping", "name": "shipping"},
        {"type": "resource", "resource": {"uri": "docs://globex/pricing", "text": "globex price list"}}
    ]}})
    .to_string();
    let judged = |w: &World, scope: &str| {
        let mut h = w.headers(Some(&w.token(json!({ "scope": scope }))));
        h.push(("mcp-session-id".into(), b"s-1".to_vec()));
        let d = w.decide(&h, Some(&call("get_order", json!({"customer_id": "c-42"}))));
        assert!(d.allowed() && engine::judges_answer(&w.policy, &d), "{:?}", d.denial);
        engine::whole_answer(&w.policy, &d, answer.as_bytes(), "abc", &w.host)
    };
    let w = world();
    // acme's caller sees acme's document; globex's embedded price list is withheld.
    let (d, rewritten) = judged(&w, "orders.read docs.read");
    assert!(d.allowed());
    assert_eq!(d.hidden, 1);
    let out: Value = serde_json::from_slice(&rewritten.unwrap()).unwrap();
    let content = out["result"]["content"].as_array().unwrap();
    assert_eq!(content[1]["uri"], "docs://acme/shipping");
    assert_eq!(content[2]["type"], "text");
    assert!(!out.to_string().contains("globex"), "{out}");
    let line: Value = serde_json::from_str(&audit::record(&w.policy, &d, "abc", 0)).unwrap();
    assert_eq!(
        (line["stage"].as_str(), line["hidden"].as_u64()),
        (Some("answer"), Some(1))
    );
    // The called tool's owner answers for what its answer showed.
    assert_eq!(
        (line["tool"].as_str(), line["owner"].as_str()),
        (Some("get_order"), Some("orders-team@example.com"))
    );
    // Without the data rule's scope, not even the caller's own tenant's document.
    let (d, _) = judged(&w, "orders.read");
    assert_eq!(d.hidden, 2);
    // A route that passes resources in answers shows them all.
    let passing = World::with(|p| p["routes"][0]["answer_resources"] = json!("pass"));
    let (d, rewritten) = judged(&passing, "orders.read docs.read");
    assert_eq!((d.hidden, rewritten), (0, None));
}

/// An answer's head: `content-type` and whatever else is given.
fn head(content_type: &str, more: &[(&str, &str)]) -> aigate::request::Headers {
    let mut pairs = vec![
        (":status".to_string(), b"200".to_vec()),
        ("content-type".to_string(), content_type.as_bytes().to_vec()),
    ];
    pairs.extend(more.iter().map(|(k, v)| (k.to_string(), v.as_bytes().to_vec())));
    aigate::request::Headers::new(pairs)
}

#[test]
fn a_refused_stream_reaches_the_client_as_what_passed_and_the_error_event() {
    let w = world();
    let req = asking(&w, "orders.read", true);
    let (events, text_len) = chat_events("c-99");
    let sse = head("text/event-stream", &[]);
    let (d, reply) = engine::answer_at_once(&w.policy, &req, &sse, events.as_bytes(), "abc", &w.host);
    let denial = d.denial.as_ref().unwrap();
    assert_eq!(
        (denial.reason, denial.rule.as_str()),
        (Reason::BindingMismatch, "tools.get_order.bind./customer_id")
    );
    assert_eq!(d.stage, Stage::Answer);
    let reply = String::from_utf8(reply.unwrap()).unwrap();
    // The text passed before the call began; the held call became one error event, as
    // the plugin ends the stream (no event name on Chat streams).
    assert_eq!(&reply[..text_len], &events[..text_len]);
    let error = engine::stream_end(&w.policy, &d, Vec::new(), "abc");
    assert_eq!(&reply.as_bytes()[text_len..], error.as_slice());
    let data: Value = serde_json::from_str(
        reply[text_len..]
            .strip_prefix("data: ")
            .and_then(|r| r.strip_suffix("\n\n"))
            .unwrap(),
    )
    .unwrap();
    assert_eq!(
        (data["error"]["code"].as_str(), data["error"]["decision_id"].as_str()),
        (Some("binding_mismatch"), Some("abc"))
    );
    assert!(!reply.contains("c-99"), "{reply}");

    // Allowed, the stream reaches the client as it is.
    let (events, _) = chat_events("c-42");
    let (d, reply) = engine::answer_at_once(&w.policy, &req, &sse, events.as_bytes(), "abc", &w.host);
    assert!(d.allowed(), "{:?}", d.denial);
    assert_eq!((d.calls.len(), reply), (1, None));

    // A stream cut in the middle of its call never releases it.
    let (events, text_len) = chat_events("c-42");
    let cut = &events.as_bytes()[..events.len() - 30];
    let (d, reply) = engine::answer_at_once(&w.policy, &req, &sse, cut, "abc", &w.host);
    assert_eq!(d.denial.map(|x| x.reason), Some(Reason::BodyMalformed));
    let reply = reply.unwrap();
    assert_eq!(&reply[..text_len], &cut[..text_len]);
    assert!(!String::from_utf8_lossy(&reply).contains("get_order"));
}

#[test]
fn an_answer_at_once_is_read_as_its_head_says() {
    let w = world();
    let streamed = asking(&w, "orders.read", true);
    let whole = asking(&w, "orders.read", false);
    let (events, _) = chat_events("c-42");
    let json_answer = answer(&[("get_order", json!({"customer_id": "c-99"}))]);
    let mut huge = answer(&[("get_order", json!({"customer_id": "c-42"}))]);
    huge.resize(w.policy.limits.max_body_bytes + 1, b' ');
    type Row<'a> = (
        &'a str,
        &'a Decision,
        aigate::request::Headers,
        &'a [u8],
        Option<Reason>,
    );
    let rows: Vec<Row> = vec![
        // Events read as one JSON document are no answer.
        (
            "events labelled JSON",
            &streamed,
            head("application/json", &[]),
            events.as_bytes(),
            Some(Reason::BodyMalformed),
        ),
        // A whole answer was asked for: the SDKs parse it as JSON whatever its label.
        (
            "JSON labelled a stream",
            &whole,
            head("text/event-stream", &[]),
            &json_answer,
            Some(Reason::BindingMismatch),
        ),
        (
            "neither JSON nor events",
            &streamed,
            head("text/plain", &[]),
            events.as_bytes(),
            Some(Reason::BodyMalformed),
        ),
        (
            "compressed",
            &streamed,
            head("text/event-stream", &[("content-encoding", "gzip")]),
            events.as_bytes(),
            Some(Reason::EncodingUnsupported),
        ),
        (
            "another charset",
            &streamed,
            head("text/event-stream; charset=latin1", &[]),
            events.as_bytes(),
            Some(Reason::EncodingUnsupported),
        ),
        (
            "labelled twice",
            &streamed,
            head("text/event-stream", &[("content-type", "application/json")]),
            events.as_bytes(),
            Some(Reason::BodyMalformed),
        ),
        (
            "declared too large",
            &whole,
            head("application/json", &[("content-length", "99999999")]),
            &json_answer,
            Some(Reason::BodyTooLarge),
        ),
        (
            "too large",
            &whole,
            head("application/json", &[]),
            &huge,
            Some(Reason::BodyTooLarge),
        ),
        (
            "events",
            &streamed,
            head("text/event-stream", &[]),
            events.as_bytes(),
            None,
        ),
    ];
    for (name, req, head, body, expected) in rows {
        let format = engine::answer_format(&w.policy, req, &head);
        let (d, reply) = engine::answer_at_once(&w.policy, req, &head, body, "abc", &w.host);
        assert_eq!(d.denial.as_ref().map(|x| x.reason), expected, "{name}");
        match (expected, format) {
            (None, Ok(_)) => assert_eq!(reply, None, "{name}"),
            // Refused at its head: the provider's error JSON in place of the answer.
            (Some(reason), Err(denial)) => {
                assert_eq!(denial.reason, reason, "{name}");
                let error: Value = serde_json::from_slice(&reply.unwrap()).unwrap();
                assert_eq!(error["error"]["code"].as_str(), Some(reason.as_str()), "{name}");
            }
            (Some(_), Ok(_)) => assert!(reply.is_some(), "{name}"),
            (None, Err(denial)) => panic!("{name}: {denial:?}"),
        }
    }
}

#[test]
fn monitor_mode_judges_an_answer_at_once_and_changes_nothing() {
    let w = World::with(|p| {
        p["routes"]
            .as_array_mut()
            .unwrap()
            .push(json!({"id": "chat", "prefix": CHAT, "protocol": "openai_chat"}));
        p["models"] = json!({"allow": ["gpt-4o-mini"]});
        p["mode"] = json!("monitor");
    });
    let req = asking(&w, "orders.read", true);
    let (events, _) = chat_events("c-99");
    for (label, body) in [
        ("text/event-stream", events.into_bytes()),
        (
            "application/json",
            answer(&[("get_order", json!({"customer_id": "c-99"}))]),
        ),
        ("text/plain", b"get_order".to_vec()),
    ] {
        let (d, reply) = engine::answer_at_once(&w.policy, &req, &head(label, &[]), &body, "abc", &w.host);
        assert!(d.denial.is_some(), "{label}");
        assert_eq!(audit::verdict(&w.policy, &d), "would_deny", "{label}");
        assert_eq!(reply, None, "{label}");
        assert_eq!(
            engine::stream_end(&w.policy, &d, b"held".to_vec(), "abc"),
            b"held",
            "{label}"
        );
    }
}

#[test]
fn an_mcp_event_stream_at_once_is_filtered_message_by_message() {
    let w = world();
    let mut h = w.headers(Some(&w.token(json!({"scope": "orders.read"}))));
    h.push(("mcp-session-id".into(), b"s-1".to_vec()));
    let d = w.decide(&h, Some(&json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list"})));
    assert!(d.allowed() && engine::judges_answer(&w.policy, &d), "{:?}", d.denial);
    let listed = json!({"jsonrpc": "2.0", "id": 1, "result": {"tools": [
        {"name": "get_order", "inputSchema": {"type": "object"}},
        {"name": "refund_order", "inputSchema": {"type": "object"}},
        {"name": "send_email", "inputSchema": {"type": "object"}}
    ]}});
    let events = format!("id: 7\nevent: message\ndata: {listed}\n\n: keep-alive\n\n");
    let (answer, reply) = engine::answer_at_once(
        &w.policy,
        &d,
        &head("text/event-stream", &[]),
        events.as_bytes(),
        "abc",
        &w.host,
    );
    assert!(answer.allowed(), "{:?}", answer.denial);
    assert_eq!(answer.hidden, 2);
    let reply = String::from_utf8(reply.unwrap()).unwrap();
    assert!(reply.starts_with("id: 7\nevent: message\ndata: "), "{reply}");
    assert!(reply.ends_with("\n\n: keep-alive\n\n"), "{reply}");
    assert!(
        reply.contains("get_order") && !reply.contains("refund_order"),
        "{reply}"
    );
    // Everything listed may be used: the stream passes as it is.
    let mut h = w.headers(Some(&w.token(json!({"scope": "orders.* email.send"}))));
    h.push(("mcp-session-id".into(), b"s-1".to_vec()));
    let all = w.decide(&h, Some(&json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list"})));
    let (answer, reply) = engine::answer_at_once(
        &w.policy,
        &all,
        &head("text/event-stream", &[]),
        events.as_bytes(),
        "abc",
        &w.host,
    );
    assert_eq!((answer.hidden, reply), (0, None), "{:?}", answer.denial);
    // An event readers disagree on refuses the stream: nothing of it passes, a JSON-RPC
    // error event answers the request instead.
    let bad = format!("data: {listed}\r\rdata: x\n\n");
    let (answer, reply) = engine::answer_at_once(
        &w.policy,
        &d,
        &head("text/event-stream", &[]),
        bad.as_bytes(),
        "abc",
        &w.host,
    );
    assert_eq!(answer.denial.map(|x| x.reason), Some(Reason::BodyMalformed));
    let reply = String::from_utf8(reply.unwrap()).unwrap();
    let data = reply
        .strip_prefix("data: ")
        .and_then(|r| r.strip_suffix("\n\n"))
        .unwrap();
    let error: Value = serde_json::from_str(data).unwrap();
    assert_eq!(
        (error["id"].as_u64(), error["error"]["data"]["reason"].as_str()),
        (Some(1), Some("body_malformed")),
        "{reply}"
    );
}

#[test]
fn an_empty_answer_carries_nothing_to_judge_and_passes() {
    let w = world();
    // However it comes (ending at its head, or after an empty piece), an empty body is
    // read as nothing: no client reads a message from it.
    let chat = request(&w, "orders.read");
    let (d, rewritten) = engine::whole_answer(&w.policy, &chat, b"", "abc", &w.host);
    assert!(
        d.allowed() && d.calls.is_empty() && rewritten.is_none(),
        "{:?}",
        d.denial
    );
    let t = w.token(json!({}));
    let mcp = w.decide(
        &w.headers(Some(&t)),
        Some(&call("get_order", json!({"customer_id": "c-42"}))),
    );
    let (d, rewritten) = engine::whole_answer(&w.policy, &mcp, b"", "abc", &w.host);
    assert!(d.allowed() && d.hidden == 0 && rewritten.is_none(), "{:?}", d.denial);
    // One byte of whitespace is no JSON message: refused, as before.
    let (d, _) = engine::whole_answer(&w.policy, &mcp, b" ", "abc", &w.host);
    assert_eq!(d.denial.map(|x| x.reason), Some(Reason::BodyMalformed));
}
