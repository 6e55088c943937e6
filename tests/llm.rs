//! Engine table tests for LLM API routes: OpenAI Chat Completions, OpenAI Responses and
//! Anthropic Messages, judged with the same identity, catalogue and approvals as MCP.

mod common;

use aigate::decision::Reason;
use aigate::engine::Decision;
use aigate::response;
use common::*;
use serde_json::{json, Value};

const CHAT: &str = "/v1/chat/completions";
const RESPONSES: &str = "/v1/responses";
const MESSAGES: &str = "/v1/messages";

fn llm_world() -> World {
    World::with(llm_policy)
}

fn llm_policy(p: &mut Value) {
    let routes = p["routes"].as_array_mut().unwrap();
    for (id, prefix, protocol, offers) in [
        ("chat-strip", "/strip/v1/chat/completions", "openai_chat", "strip"),
        ("responses-strip", "/strip/v1/responses", "openai_responses", "strip"),
        ("messages-strip", "/strip/v1/messages", "anthropic_messages", "strip"),
        ("chat", CHAT, "openai_chat", "deny"),
        ("responses", RESPONSES, "openai_responses", "deny"),
        ("messages", MESSAGES, "anthropic_messages", "deny"),
    ] {
        routes.push(
            json!({"id": id, "prefix": prefix, "protocol": protocol, "tool_offers": offers,
                   "owner": "assistants@example.com"}),
        );
    }
    p["models"] = json!({"allow": ["gpt-4o-mini", "claude-haiku-4*"]});
    p["scopes"] = json!({"llm.premium": {"models": ["gpt-4o", "gpt-4.1", "claude-sonnet-4*"]}});
    p["workloads"][0]["scopes"]
        .as_array_mut()
        .unwrap()
        .push(json!("llm.premium"));
    p["data"]["vector_stores"] = json!([
        {"id": "tenant-kb", "ids": ["vs_{tenant}_kb", "{kb_stores}"], "scope": "docs.read"}
    ]);
    p["data"]["mcp_servers"] = json!([
        {"id": "crm", "url_prefix": "https://mcp.example.com/{tenant}/", "scope": "docs.read"}
    ]);
    p["data"]["files"] = json!([
        {"id": "uploads", "ids": ["{files}"], "scope": "docs.read", "owner": "support-data@example.com"}
    ]);
}

/// `llm_world` with hosted tools catalogued by type: a desktop agent, shells, a patcher
/// limited to `docs/`, and web search; and a search model.
fn hosted_world() -> World {
    World::with(hosted_policy)
}

fn hosted_world_without(tool: &str) -> World {
    World::with(|p| {
        hosted_policy(p);
        p["tools"].as_object_mut().unwrap().remove(tool);
    })
}

fn hosted_policy(p: &mut Value) {
    llm_policy(p);
    p["models"]["allow"]
        .as_array_mut()
        .unwrap()
        .push(json!("gpt-4o-mini-search-preview"));
    let tools = p["tools"].as_object_mut().unwrap();
    for (name, tool) in [
        (
            "computer_use_preview",
            json!({"intent": "tickets.desktop", "impact": "external", "owner": "it@example.com"}),
        ),
        (
            "local_shell",
            json!({"intent": "tickets.shell", "impact": "write", "owner": "it@example.com"}),
        ),
        (
            "shell",
            json!({"intent": "tickets.shell", "impact": "write", "owner": "it@example.com",
                   "constraints": {"/commands": {"required": true, "max_items": 2}, "/timeout_ms": {"max": 60000}}}),
        ),
        (
            "apply_patch",
            json!({"intent": "tickets.patch", "impact": "write", "owner": "docs@example.com",
                   "constraints": {"/path": {"required": true, "prefix_in": ["docs/"]}}}),
        ),
        (
            "web_search",
            json!({"intent": "tickets.search", "impact": "read", "owner": "it@example.com"}),
        ),
    ] {
        tools.insert(name.into(), tool);
    }
}

fn headers_for(w: &World, path: &str, token: Option<&str>) -> Vec<(String, Vec<u8>)> {
    let mut h = w.headers(token);
    for (k, v) in h.iter_mut() {
        if k == ":path" {
            *v = path.as_bytes().to_vec();
        }
    }
    h
}

fn decide(w: &World, path: &str, token: &str, body: &Value) -> Decision {
    w.decide(&headers_for(w, path, Some(token)), Some(body))
}

fn reason(w: &World, path: &str, token: &str, body: &Value) -> Option<Reason> {
    decide(w, path, token, body).denial.map(|d| d.reason)
}

fn with_grant(w: &World, path: &str, token: &str, grant: &str, body: &Value) -> Decision {
    let mut h = headers_for(w, path, Some(token));
    h.push(("x-aigate-approval".into(), grant.as_bytes().to_vec()));
    w.decide(&h, Some(body))
}

fn chat_tool(name: &str) -> Value {
    json!({"type": "function", "function": {"name": name, "description": "…", "parameters": {"type": "object", "properties": {}}}})
}

fn chat_call(id: &str, name: &str, args: &Value) -> Value {
    json!({"id": id, "type": "function", "function": {"name": name, "arguments": args.to_string()}})
}

/// A support conversation: system prompt, an image, an earlier turn with parallel tool
/// calls and their results, unknown fields everywhere.
fn chat_body(model: &str, tools: &[&str], latest_calls: Vec<Value>) -> Value {
    let mut messages = vec![
        json!({"role": "system", "content": "You are the support assistant of Example Inc."}),
        json!({"role": "user", "content": [
            {"type": "text", "text": "Where is my order o-1? Photo attached."},
            {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo=", "detail": "low"}}
        ]}),
        json!({"role": "assistant", "content": null, "tool_calls": [
            chat_call("call_1", "get_order", &json!({"customer_id": "c-42", "order_id": "o-1"})),
            chat_call("call_2", "get_order", &json!({"customer_id": "c-42", "order_id": "o-2"}))
        ], "refusal": null, "x_vendor_field": {"kept": true}}),
        json!({"role": "tool", "tool_call_id": "call_1", "content": "{\"status\":\"shipped\"}"}),
        json!({"role": "tool", "tool_call_id": "call_2", "content": "{\"status\":\"pending\"}"}),
        json!({"role": "assistant", "content": "Order o-1 has shipped."}),
        json!({"role": "user", "content": "Thanks! Please email me the tracking link."}),
    ];
    if !latest_calls.is_empty() {
        messages.push(json!({"role": "assistant", "content": null, "tool_calls": latest_calls}));
        messages.push(json!({"role": "tool", "tool_call_id": "call_9", "content": "ok"}));
    }
    json!({
        "model": model,
        "messages": messages,
        "tools": tools.iter().map(|t| chat_tool(t)).collect::<Vec<_>>(),
        "temperature": 0.2, "store": false, "metadata": {"ticket": "T-1"}, "some_future_field": [1, 2]
    })
}

fn responses_body(model: &str, tools: Vec<Value>, latest_calls: Vec<Value>) -> Value {
    let mut input = vec![
        json!({"role": "developer", "content": "You are the support assistant of Example Inc."}),
        json!({"role": "user", "content": [
            {"type": "input_text", "text": "Where is my order?"},
            {"type": "input_image", "image_url": "data:image/png;base64,iVBORw0KGgo="}
        ]}),
        json!({"type": "reasoning", "id": "rs_1", "summary": []}),
        json!({"type": "function_call", "id": "fc_1", "call_id": "call_1", "name": "get_order",
               "arguments": "{\"customer_id\":\"c-42\",\"order_id\":\"o-1\"}", "status": "completed"}),
        json!({"type": "function_call_output", "call_id": "call_1", "output": "{\"status\":\"shipped\"}"}),
        json!({"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "It shipped."}]}),
        json!({"role": "user", "content": "Email me the tracking link."}),
    ];
    let n = latest_calls.len();
    input.extend(latest_calls);
    for i in 0..n {
        input.push(json!({"type": "function_call_output", "call_id": format!("call_l{i}"), "output": "ok"}));
    }
    json!({"model": model, "input": input, "tools": tools, "instructions": "Be brief.",
           "reasoning": {"effort": "low"}, "some_future_field": true})
}

fn resp_tool(name: &str) -> Value {
    json!({"type": "function", "name": name, "parameters": {"type": "object"}, "strict": false})
}

fn resp_call(name: &str, args: &Value) -> Value {
    json!({"type": "function_call", "call_id": "call_l0", "name": name, "arguments": args.to_string()})
}

fn anthropic_body(model: &str, tools: &[&str], latest_calls: Vec<Value>) -> Value {
    let mut messages = vec![
        json!({"role": "user", "content": [
            {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="}},
            {"type": "text", "text": "Where is my order?"}
        ]}),
        json!({"role": "assistant", "content": [
            {"type": "text", "text": "Let me look."},
            {"type": "tool_use", "id": "toolu_1", "name": "get_order", "input": {"customer_id": "c-42", "order_id": "o-1"}},
            {"type": "tool_use", "id": "toolu_2", "name": "get_order", "input": {"customer_id": "c-42", "order_id": "o-2"}}
        ]}),
        json!({"role": "user", "content": [
            {"type": "tool_result", "tool_use_id": "toolu_1", "content": "shipped"},
            {"type": "tool_result", "tool_use_id": "toolu_2", "content": [{"type": "text", "text": "pending"}]}
        ]}),
        json!({"role": "assistant", "content": "Order o-1 has shipped."}),
        json!({"role": "user", "content": "Email me the tracking link."}),
    ];
    if !latest_calls.is_empty() {
        messages.push(json!({"role": "assistant", "content": latest_calls}));
        messages.push(
            json!({"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_9", "content": "ok"}]}),
        );
    }
    json!({
        "model": model, "max_tokens": 1024,
        "system": [{"type": "text", "text": "You are the support assistant.", "cache_control": {"type": "ephemeral"}}],
        "messages": messages,
        "tools": tools.iter().map(|t| json!({"name": t, "description": "…", "input_schema": {"type": "object"}})).collect::<Vec<_>>(),
        "metadata": {"user_id": "alice"}, "some_future_field": {}
    })
}

fn tool_use(name: &str, input: Value) -> Value {
    json!({"type": "tool_use", "id": "toolu_9", "name": name, "input": input})
}

#[test]
fn allowed_requests_for_each_protocol() {
    let w = llm_world();
    let t = w.token(json!({}));
    let premium = w.token(json!({"scope": "orders.read docs.read llm.premium"}));
    let rows: Vec<(&str, &str, &String, Value)> = vec![
        (
            "chat",
            CHAT,
            &t,
            chat_body("gpt-4o-mini", &["get_order", "refund_order"], vec![]),
        ),
        (
            "chat premium",
            CHAT,
            &premium,
            chat_body("gpt-4o", &["get_order"], vec![]),
        ),
        (
            "chat no tools",
            CHAT,
            &t,
            json!({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}),
        ),
        (
            "responses",
            RESPONSES,
            &t,
            responses_body(
                "gpt-4o-mini",
                vec![
                    resp_tool("get_order"),
                    json!({"type": "file_search", "vector_store_ids": ["vs_acme_kb"]}),
                    json!({"type": "mcp", "server_label": "crm", "server_url": "https://mcp.example.com/acme/sse", "require_approval": "always"}),
                ],
                vec![],
            ),
        ),
        (
            "responses string input",
            RESPONSES,
            &premium,
            json!({"model": "gpt-4.1", "input": "Hello"}),
        ),
        (
            "anthropic",
            MESSAGES,
            &t,
            anthropic_body("claude-haiku-4-5", &["get_order", "send_email"], vec![]),
        ),
        (
            "anthropic premium",
            MESSAGES,
            &premium,
            anthropic_body("claude-sonnet-4-5-20250929", &["get_order"], vec![]),
        ),
    ];
    for (name, path, token, body) in rows {
        let d = decide(&w, path, token, &body);
        assert!(d.allowed(), "{name}: {:?}", d.denial);
        assert!(d.rewrite.is_none(), "{name}");
        assert_eq!(d.model.as_deref(), body["model"].as_str(), "{name}");
    }
}

#[test]
fn model_allow_list_global_and_per_scope() {
    let w = llm_world();
    let t = w.token(json!({}));
    let premium = w.token(json!({"scope": "orders.read llm.premium"}));
    let rows = [
        (CHAT, &t, chat_body("gpt-4o", &[], vec![])),
        (CHAT, &t, chat_body("gpt-4o-mini-2024", &[], vec![])),
        (CHAT, &premium, chat_body("o3", &[], vec![])),
        (RESPONSES, &t, responses_body("gpt-4.1", vec![], vec![])),
        (MESSAGES, &t, anthropic_body("claude-sonnet-4-5", &[], vec![])),
        (MESSAGES, &premium, anthropic_body("claude-opus-4-1", &[], vec![])),
    ];
    for (path, token, body) in rows {
        assert_eq!(
            reason(&w, path, token, &body),
            Some(Reason::ModelNotAllowed),
            "{path} {}",
            body["model"]
        );
    }
    // The premium scope in the token is not enough when the workload's ceiling lacks it.
    let mut w2 = llm_world();
    w2.host.peer = Some("spiffe://example.org/ns/agents/support".into());
    let p2 = w2.token(json!({"scope": "orders.read llm.premium", "azp": null}));
    assert_eq!(
        reason(&w2, CHAT, &p2, &chat_body("gpt-4o", &[], vec![])),
        Some(Reason::ModelNotAllowed)
    );
    assert!(decide(&w2, CHAT, &p2, &chat_body("gpt-4o-mini", &[], vec![])).allowed());
}

#[test]
fn offered_tools_the_caller_may_not_use_deny_the_request() {
    let w = llm_world();
    let t = w.token(json!({"scope": "orders.read email.send"}));
    let rows = [
        (
            CHAT,
            chat_body("gpt-4o-mini", &["get_order", "refund_order", "drop_tables"], vec![]),
        ),
        (
            RESPONSES,
            responses_body(
                "gpt-4o-mini",
                vec![
                    resp_tool("get_order"),
                    resp_tool("refund_order"),
                    resp_tool("drop_tables"),
                ],
                vec![],
            ),
        ),
        (
            MESSAGES,
            anthropic_body(
                "claude-haiku-4-5",
                &["get_order", "refund_order", "drop_tables"],
                vec![],
            ),
        ),
    ];
    for (path, body) in rows {
        let d = decide(&w, path, &t, &body);
        let denial = d.denial.clone().unwrap();
        assert_eq!(denial.reason, Reason::ToolOfferDenied, "{path}");
        assert!(
            denial.message.contains("\"refund_order\", \"drop_tables\""),
            "{}",
            denial.message
        );
        assert_eq!(d.refused_offers, ["refund_order", "drop_tables"]);
        assert!(denial.rule.ends_with(".tool_offers"), "{}", denial.rule);
    }
    // Hosted tools are catalogued by type: an uncatalogued one is not usable.
    let hosted = responses_body("gpt-4o-mini", vec![json!({"type": "web_search_preview"})], vec![]);
    assert_eq!(reason(&w, RESPONSES, &t, &hosted), Some(Reason::ToolOfferDenied));
    let legacy = json!({"model": "gpt-4o-mini", "messages": [], "functions": [{"name": "drop_tables"}]});
    assert_eq!(reason(&w, CHAT, &t, &legacy), Some(Reason::ToolOfferDenied));
}

#[test]
fn strip_forwards_the_body_without_refused_tools_byte_for_byte() {
    let w = llm_world();
    let t = w.token(json!({"scope": "orders.read email.send docs.read"}));
    let h = headers_for(&w, "/strip/v1/chat/completions", Some(&t));
    let body = r#"{
  "model": "gpt-4o-mini",
  "messages": [{"role": "user", "content": "Refund order o-1"}],
  "tools": [
    {"type": "function", "function": {"name": "refund_order", "parameters": {"type": "object"}}},
    {"type": "function", "function": {"name": "get_order", "parameters": {"type": "object", "properties": {"b": {}, "a": {}}}}},
    {"type": "function", "function": {"name": "drop_tables"}}
  ],
  "tool_choice": "auto",
  "temperature": 0.70
}"#;
    let d = w.decide_raw(&h, Some(body.as_bytes()));
    assert!(d.allowed(), "{:?}", d.denial);
    assert_eq!(d.refused_offers, ["refund_order", "drop_tables"]);
    let forwarded = String::from_utf8(d.rewrite.unwrap()).unwrap();
    assert_eq!(
        forwarded,
        r#"{
  "model": "gpt-4o-mini",
  "messages": [{"role": "user", "content": "Refund order o-1"}],
  "tools": [
    {"type": "function", "function": {"name": "get_order", "parameters": {"type": "object", "properties": {"b": {}, "a": {}}}}}
  ],
  "tool_choice": "auto",
  "temperature": 0.70
}"#
    );

    // No usable tool left: the tools and the settings that need them go.
    let body = r#"{"model":"gpt-4o-mini","tools":[{"type":"function","function":{"name":"drop_tables"}}],"messages":[],"tool_choice":"auto","parallel_tool_calls":false,"stream":true}"#;
    let d = w.decide_raw(&h, Some(body.as_bytes()));
    assert_eq!(
        String::from_utf8(d.rewrite.unwrap()).unwrap(),
        r#"{"model":"gpt-4o-mini","messages":[],"stream":true}"#
    );

    // Responses: data tools stay, the hosted tool without a catalogue entry goes.
    let h = headers_for(&w, "/strip/v1/responses", Some(&t));
    let body = r#"{"model":"gpt-4o-mini","input":"hi","tools":[{"type":"web_search_preview"},{"type":"file_search","vector_store_ids":["vs_acme_kb"]},{"type":"function","name":"get_order"}],"tool_choice":"required"}"#;
    let d = w.decide_raw(&h, Some(body.as_bytes()));
    assert!(d.allowed(), "{:?}", d.denial);
    assert_eq!(
        String::from_utf8(d.rewrite.unwrap()).unwrap(),
        r#"{"model":"gpt-4o-mini","input":"hi","tools":[{"type":"file_search","vector_store_ids":["vs_acme_kb"]},{"type":"function","name":"get_order"}],"tool_choice":"required"}"#
    );

    // Anthropic: the last tool goes with its separator.
    let h = headers_for(&w, "/strip/v1/messages", Some(&t));
    let body = r#"{"model":"claude-haiku-4-5","max_tokens":64,"tools":[{"name":"get_order","input_schema":{}}, {"name":"refund_order","input_schema":{}}],"messages":[{"role":"user","content":"hi"}]}"#;
    let d = w.decide_raw(&h, Some(body.as_bytes()));
    assert_eq!(
        String::from_utf8(d.rewrite.unwrap()).unwrap(),
        r#"{"model":"claude-haiku-4-5","max_tokens":64,"tools":[{"name":"get_order","input_schema":{}}],"messages":[{"role":"user","content":"hi"}]}"#
    );

    // Nothing refused: nothing rewritten.
    let d = w.decide(&h, Some(&anthropic_body("claude-haiku-4-5", &["get_order"], vec![])));
    assert!(d.allowed() && d.rewrite.is_none());
}

#[test]
fn strip_treats_a_null_tool_list_as_empty() {
    let w = llm_world();
    let t = w.token(json!({"scope": "orders.read"}));
    let h = headers_for(&w, "/strip/v1/chat/completions", Some(&t));
    let body = r#"{"model":"gpt-4o-mini","messages":[],"tools":null,"functions":[{"name":"wire_money"}]}"#;
    let d = w.decide_raw(&h, Some(body.as_bytes()));
    assert!(d.allowed(), "{:?}", d.denial);
    assert_eq!(d.refused_offers, ["wire_money"]);
    assert_eq!(
        String::from_utf8(d.rewrite.unwrap()).unwrap(),
        r#"{"model":"gpt-4o-mini","messages":[]}"#
    );
}

#[test]
fn strip_denies_a_tool_choice_naming_a_stripped_tool() {
    let w = llm_world();
    let t = w.token(json!({"scope": "orders.read"}));
    let rows = [
        (
            "/strip/v1/chat/completions",
            json!({"model": "gpt-4o-mini", "messages": [],
            "tools": [chat_tool("get_order"), chat_tool("refund_order")],
            "tool_choice": {"type": "function", "function": {"name": "refund_order"}}}),
        ),
        (
            "/strip/v1/chat/completions",
            json!({"model": "gpt-4o-mini", "messages": [],
            "tools": [chat_tool("get_order"), chat_tool("refund_order")],
            "tool_choice": {"type": "allowed_tools", "allowed_tools": {"mode": "auto", "tools": [{"type": "function", "function": {"name": "refund_order"}}]}}}),
        ),
        (
            "/strip/v1/chat/completions",
            json!({"model": "gpt-4o-mini", "messages": [],
            "tools": [chat_tool("refund_order")], "tool_choice": "required"}),
        ),
        (
            "/strip/v1/responses",
            json!({"model": "gpt-4o-mini", "input": "x",
            "tools": [resp_tool("get_order"), resp_tool("refund_order")],
            "tool_choice": {"type": "function", "name": "refund_order"}}),
        ),
        (
            "/strip/v1/messages",
            json!({"model": "claude-haiku-4-5", "messages": [],
            "tools": [{"name": "get_order", "input_schema": {}}, {"name": "refund_order", "input_schema": {}}],
            "tool_choice": {"type": "tool", "name": "refund_order"}}),
        ),
        (
            "/strip/v1/messages",
            json!({"model": "claude-haiku-4-5", "messages": [],
            "tools": [{"name": "refund_order", "input_schema": {}}], "tool_choice": {"type": "any"}}),
        ),
    ];
    for (path, body) in rows {
        let d = decide(&w, path, &t, &body);
        assert_eq!(
            d.denial.as_ref().map(|x| x.reason),
            Some(Reason::ToolOfferDenied),
            "{body}"
        );
        assert!(d.rewrite.is_none());
    }
}

#[test]
fn smuggled_tool_calls_are_judged_like_mcp_calls() {
    let w = llm_world();
    let t = w.token(json!({"scope": "orders.read email.send"}));
    let email = json!({"to": "alice@example.com", "subject": "Tracking"});
    let rows: Vec<(&str, &str, Value, Reason)> = vec![
        (
            "chat scope",
            CHAT,
            chat_body(
                "gpt-4o-mini",
                &[],
                vec![chat_call(
                    "call_9",
                    "refund_order",
                    &json!({"customer_id": "c-42", "amount": 5}),
                )],
            ),
            Reason::ScopeMissing,
        ),
        (
            "chat binding",
            CHAT,
            chat_body(
                "gpt-4o-mini",
                &[],
                vec![chat_call("call_9", "get_order", &json!({"customer_id": "c-99"}))],
            ),
            Reason::BindingMismatch,
        ),
        (
            "chat unknown",
            CHAT,
            chat_body("gpt-4o-mini", &[], vec![chat_call("call_9", "drop_tables", &json!({}))]),
            Reason::ToolUnknown,
        ),
        (
            "chat constraint",
            CHAT,
            chat_body(
                "gpt-4o-mini",
                &[],
                vec![chat_call("call_9", "send_email", &json!({"to": "x@evil.com"}))],
            ),
            Reason::ArgumentViolation,
        ),
        (
            "chat approval",
            CHAT,
            chat_body("gpt-4o-mini", &[], vec![chat_call("call_9", "send_email", &email)]),
            Reason::ApprovalRequired,
        ),
        (
            "chat legacy",
            CHAT,
            json!({"model": "gpt-4o-mini", "messages": [{"role": "assistant", "function_call": {"name": "refund_order", "arguments": "{}"}}]}),
            Reason::ScopeMissing,
        ),
        (
            "responses scope",
            RESPONSES,
            responses_body(
                "gpt-4o-mini",
                vec![],
                vec![resp_call("refund_order", &json!({"customer_id": "c-42", "amount": 5}))],
            ),
            Reason::ScopeMissing,
        ),
        (
            "responses binding",
            RESPONSES,
            responses_body(
                "gpt-4o-mini",
                vec![],
                vec![resp_call("get_order", &json!({"customer_id": "c-99"}))],
            ),
            Reason::BindingMismatch,
        ),
        (
            "responses approval",
            RESPONSES,
            responses_body("gpt-4o-mini", vec![], vec![resp_call("send_email", &email)]),
            Reason::ApprovalRequired,
        ),
        (
            "anthropic scope",
            MESSAGES,
            anthropic_body(
                "claude-haiku-4-5",
                &[],
                vec![tool_use("refund_order", json!({"customer_id": "c-42", "amount": 5}))],
            ),
            Reason::ScopeMissing,
        ),
        (
            "anthropic binding",
            MESSAGES,
            anthropic_body(
                "claude-haiku-4-5",
                &[],
                vec![tool_use("get_order", json!({"customer_id": "c-99"}))],
            ),
            Reason::BindingMismatch,
        ),
        (
            "anthropic approval",
            MESSAGES,
            anthropic_body("claude-haiku-4-5", &[], vec![tool_use("send_email", email.clone())]),
            Reason::ApprovalRequired,
        ),
    ];
    for (name, path, body, want) in rows {
        assert_eq!(reason(&w, path, &t, &body), Some(want), "{name}");
    }
    // Strictly parsed argument strings: duplicate keys or broken JSON are refused.
    for args in ["{\"customer_id\":\"c-42\",\"customer_id\":\"c-99\"}", "{", "[]", ""] {
        let body = json!({"model": "gpt-4o-mini", "messages": [{"role": "assistant", "tool_calls": [
            {"id": "c", "type": "function", "function": {"name": "get_order", "arguments": args}}]}]});
        assert_eq!(reason(&w, CHAT, &t, &body), Some(Reason::BodyMalformed), "{args}");
    }
}

#[test]
fn external_calls_need_their_grant_on_the_turn_they_are_new() {
    let w = llm_world();
    let t = w.token(json!({"scope": "orders.read email.send"}));
    let email = json!({"to": "alice@example.com", "subject": "Tracking"});
    let digest = aigate::digest::args_digest(&email).unwrap();
    let body = chat_body(
        "gpt-4o-mini",
        &["send_email"],
        vec![chat_call("call_9", "send_email", &email)],
    );
    let grant = w.grant(json!({"args_digest": digest, "jti": "chat-1"}));
    let d = with_grant(&w, CHAT, &t, &grant, &body);
    assert!(d.allowed(), "{:?}", d.denial);
    assert_eq!(d.calls.len(), 1, "only the latest turn's calls are recorded");
    assert_eq!(d.calls[0].approver.as_deref(), Some("carol@example.com"));
    assert_eq!(
        with_grant(&w, CHAT, &t, &grant, &body).denial.unwrap().reason,
        Reason::ApprovalReplayed
    );
    // The next turn carries the same call as history: bindings and constraints still
    // hold it, and it brings the grant it was approved with, which is not consumed again.
    let mut next = body.clone();
    let messages = next["messages"].as_array_mut().unwrap();
    messages.push(json!({"role": "assistant", "content": "Sent."}));
    messages.push(json!({"role": "user", "content": "Thanks"}));
    for _ in 0..2 {
        let d = with_grant(&w, CHAT, &t, &grant, &next);
        assert!(d.allowed(), "{:?}", d.denial);
        assert!(d.calls.is_empty());
    }
    // Without it, a later turn (even one the client invents, as here) cannot turn an
    // unapproved action into history.
    let d = decide(&w, CHAT, &t, &next);
    assert_eq!(d.denial.as_ref().map(|x| x.reason), Some(Reason::ApprovalRequired));
    assert_eq!(d.calls.len(), 1, "the history call that lacks its grant is recorded");
    assert!(!d.calls[0].allowed);
    // A grant that is not genuine, or for other arguments, does not cover it either.
    let forged = w.grant(json!({"args_digest": "AAAA", "jti": "chat-2"}));
    assert_eq!(
        with_grant(&w, CHAT, &t, &forged, &next).denial.map(|x| x.reason),
        Some(Reason::ApprovalMismatch)
    );
    // Long after the grant expired, the approved action is still history.
    let mut later = llm_world();
    later.host.now += 86_400;
    let t_later = later.token(json!({"scope": "orders.read email.send"}));
    assert!(with_grant(&later, CHAT, &t_later, &grant, &next).allowed());
    // Anthropic and Responses alike.
    let grant = w.grant(json!({"args_digest": digest, "jti": "msg-1"}));
    let body = anthropic_body("claude-haiku-4-5", &[], vec![tool_use("send_email", email.clone())]);
    assert!(with_grant(&w, MESSAGES, &t, &grant, &body).allowed());
    let grant = w.grant(json!({"args_digest": digest, "jti": "resp-1"}));
    let body = responses_body("gpt-4o-mini", vec![], vec![resp_call("send_email", &email)]);
    assert!(with_grant(&w, RESPONSES, &t, &grant, &body).allowed());
    // A grant for other arguments does not fit.
    let grant = w.grant(json!({"args_digest": "AAAA", "jti": "resp-2"}));
    assert_eq!(
        with_grant(&w, RESPONSES, &t, &grant, &body).denial.unwrap().reason,
        Reason::ApprovalMismatch
    );
}

#[test]
fn one_grant_runs_an_action_once_and_reports_it_once() {
    let w = llm_world();
    let t = w.token(json!({"scope": "orders.read email.send"}));
    let email = json!({"to": "alice@example.com", "subject": "Tracking"});
    let digest = aigate::digest::args_digest(&email).unwrap();
    let grant = w.grant(json!({"args_digest": digest, "jti": "run-and-report"}));
    // The application runs the tool through the gateway (MCP tools/call)...
    let mut h = w.headers(Some(&t));
    h.push(("x-aigate-approval".into(), grant.as_bytes().to_vec()));
    let run = call("send_email", email.clone());
    assert!(w.decide(&h, Some(&run)).allowed());
    assert_eq!(
        w.decide(&h, Some(&run)).denial.map(|x| x.reason),
        Some(Reason::ApprovalReplayed)
    );
    // ...then tells the model, the call in the latest turn, with the same grant: once.
    let report = chat_body(
        "gpt-4o-mini",
        &["send_email"],
        vec![chat_call("call_1", "send_email", &email)],
    );
    assert!(with_grant(&w, CHAT, &t, &grant, &report).allowed());
    assert_eq!(
        with_grant(&w, CHAT, &t, &grant, &report).denial.map(|x| x.reason),
        Some(Reason::ApprovalReplayed)
    );
}

#[test]
fn provider_kept_state_is_refused_unless_the_route_allows_it() {
    let t = llm_world().token(json!({}));
    let ask = json!({"model": "gpt-4o-mini", "input": "And the refund?"});
    for (member, value) in [
        ("previous_response_id", json!("resp_123")),
        ("conversation", json!({"id": "conv_9"})),
        ("prompt", json!({"id": "pmpt_1", "version": "2"})),
    ] {
        let mut body = ask.clone();
        body[member] = value;
        let d = decide(&llm_world(), RESPONSES, &t, &body);
        let denial = d.denial.unwrap_or_else(|| panic!("{member} passed"));
        assert_eq!(
            (denial.reason, denial.rule.as_str()),
            (Reason::DataBoundary, "routes.responses.provider_state")
        );
        assert!(denial.message.starts_with(member), "{}", denial.message);
        // null is no state.
        body[member] = Value::Null;
        assert!(decide(&llm_world(), RESPONSES, &t, &body).allowed(), "{member}: null");
    }
    // An input item naming a stored item (an earlier call, say) by id: typed, or with
    // neither type nor role, as the API also takes it.
    let output = json!({"type": "function_call_output", "call_id": "call_1", "output": "ok"});
    for reference in [
        json!({"type": "item_reference", "id": "fc_123"}),
        json!({"id": "fc_123"}),
    ] {
        let body = json!({"model": "gpt-4o-mini", "input": [reference.clone(), output.clone()]});
        let denial = decide(&llm_world(), RESPONSES, &t, &body)
            .denial
            .unwrap_or_else(|| panic!("{reference} passed"));
        assert_eq!(
            (denial.reason, denial.rule.as_str()),
            (Reason::DataBoundary, "routes.responses.provider_state")
        );
        assert!(denial.message.contains("item_reference"), "{}", denial.message);
    }
    // An Anthropic container carries files and code from earlier requests.
    for container in [
        json!("container_011"),
        json!({"id": "container_011"}),
        json!({"skills": [{"type": "custom", "skill_id": "skill_1"}]}),
    ] {
        let mut body = anthropic_body("claude-haiku-4-5", &[], vec![]);
        body["container"] = container.clone();
        let denial = decide(&llm_world(), MESSAGES, &t, &body)
            .denial
            .unwrap_or_else(|| panic!("{container} passed"));
        assert_eq!(
            (denial.reason, denial.rule.as_str()),
            (Reason::DataBoundary, "routes.messages.provider_state")
        );
    }
    // Messages without a type are messages, not references.
    let body = json!({"model": "gpt-4o-mini", "input": [{"role": "user", "content": "hi"}]});
    assert!(decide(&llm_world(), RESPONSES, &t, &body).allowed());
    // A route that allows it judges the rest of the request as usual.
    let w = World::with(|p| {
        llm_policy(p);
        let r = p["routes"]
            .as_array_mut()
            .unwrap()
            .iter_mut()
            .find(|r| r["id"] == "responses")
            .unwrap();
        r["provider_state"] = json!("allow");
    });
    let mut body = ask.clone();
    body["previous_response_id"] = json!("resp_123");
    assert!(decide(&w, RESPONSES, &t, &body).allowed());
    body["model"] = json!("o3");
    assert_eq!(reason(&w, RESPONSES, &t, &body), Some(Reason::ModelNotAllowed));
    // Reading or deleting a stored response or completion has no body to judge: it is
    // refused on a route that does not allow provider state, whoever's id it names.
    for (path, method) in [
        ("/v1/responses/resp_123", "GET"),
        ("/v1/responses/resp_123/input_items", "GET"),
        ("/v1/responses/resp_123", "DELETE"),
        ("/v1/chat/completions/chatcmpl_9", "GET"),
    ] {
        let mut h = headers_for(&llm_world(), path, Some(&t));
        h[0].1 = method.as_bytes().to_vec();
        let d = llm_world().decide_raw(&h, None);
        let denial = d.denial.unwrap_or_else(|| panic!("{method} {path} passed"));
        assert_eq!(denial.reason, Reason::DataBoundary, "{method} {path}");
        assert!(denial.rule.ends_with(".provider_state"), "{}", denial.rule);
    }
    let mut h = headers_for(&w, "/v1/responses/resp_123", Some(&t));
    h[0].1 = b"GET".to_vec();
    assert!(w.decide_raw(&h, None).allowed(), "the route allows it");
    // Only LLM routes reach a provider.
    let e = aigate::policy::compile(
        {
            let mut doc = policy_doc();
            doc["routes"][0]["provider_state"] = json!("allow"); // the MCP route
            doc
        }
        .to_string()
        .as_bytes(),
    )
    .unwrap_err();
    assert!(e.iter().any(|x| x.path == "routes[0].provider_state"), "{e:?}");
}

#[test]
fn data_boundary_for_vector_stores_and_mcp_servers() {
    let w = llm_world();
    let t = w.token(json!({"scope": "orders.read docs.read", "kb_stores": ["vs_shared_1", "vs_shared_2"]}));
    let store = |ids: Value| {
        responses_body(
            "gpt-4o-mini",
            vec![json!({"type": "file_search", "vector_store_ids": ids})],
            vec![],
        )
    };
    let mcp = |url: &str| {
        responses_body(
            "gpt-4o-mini",
            vec![json!({"type": "mcp", "server_label": "crm", "server_url": url})],
            vec![],
        )
    };
    let anthropic_mcp = |url: &str| {
        let mut b = anthropic_body("claude-haiku-4-5", &[], vec![]);
        b["mcp_servers"] = json!([{"type": "url", "url": url, "name": "crm"}]);
        b
    };
    for body in [
        store(json!(["vs_acme_kb"])),
        store(json!(["vs_shared_2", "vs_acme_kb"])),
        mcp("https://mcp.example.com/acme/sse"),
    ] {
        let d = decide(&w, RESPONSES, &t, &body);
        assert!(d.allowed(), "{body}: {:?}", d.denial);
    }
    // Calls the provider would run without asking (Anthropic's connector, OpenAI with
    // require_approval "never" or a filter) are never seen: refused unless the rule says so.
    let unasked = |approval: Value| {
        responses_body(
            "gpt-4o-mini",
            vec![
                json!({"type": "mcp", "server_label": "crm", "server_url": "https://mcp.example.com/acme/sse",
                        "require_approval": approval}),
            ],
            vec![],
        )
    };
    let any = World::with(|p| {
        llm_policy(p);
        p["data"]["mcp_servers"][0]["provider_calls"] = json!("any");
    });
    for (path, body) in [
        (MESSAGES, anthropic_mcp("https://mcp.example.com/acme/mcp")),
        (RESPONSES, unasked(json!("never"))),
        (RESPONSES, unasked(json!({"never": {"tool_names": ["lookup"]}}))),
    ] {
        let denial = decide(&w, path, &t, &body)
            .denial
            .unwrap_or_else(|| panic!("{body} passed"));
        assert_eq!(
            (denial.reason, denial.rule.as_str()),
            (Reason::DataBoundary, "data.mcp_servers.crm.provider_calls"),
            "{body}"
        );
        let t = any.token(json!({"scope": "orders.read docs.read"}));
        assert!(decide(&any, path, &t, &body).allowed(), "{body}");
    }
    assert!(decide(&w, RESPONSES, &t, &unasked(json!("always"))).allowed());
    let rows = [
        (RESPONSES, store(json!(["vs_globex_kb"]))),
        (RESPONSES, store(json!(["vs_acme_kb", "vs_other"]))),
        (RESPONSES, mcp("https://mcp.example.com/globex/sse")),
        (RESPONSES, mcp("https://mcp.example.com/acme/../globex/sse")),
        (RESPONSES, mcp("https://mcp.example.com/acme/%2e%2e/globex")),
        (RESPONSES, mcp("https://mcp.example.com.evil.net/acme/")),
        (
            RESPONSES,
            responses_body(
                "gpt-4o-mini",
                vec![json!({"type": "mcp", "server_label": "g", "connector_id": "connector_gmail"})],
                vec![],
            ),
        ),
        (MESSAGES, anthropic_mcp("https://mcp.example.com/globex/mcp")),
    ];
    for (path, body) in rows {
        assert_eq!(reason(&w, path, &t, &body), Some(Reason::DataBoundary), "{body}");
        assert_eq!(reason(&any, path, &t, &body), Some(Reason::DataBoundary), "{body}");
    }
    // The store is the caller's, the scope that opens it is not granted.
    let no_docs = w.token(json!({"scope": "orders.read"}));
    let d = decide(&w, RESPONSES, &no_docs, &store(json!(["vs_acme_kb"])));
    assert_eq!(d.denial.as_ref().unwrap().reason, Reason::ScopeMissing);
    assert_eq!(d.denial.unwrap().rule, "data.vector_stores.tenant-kb");
}

#[test]
fn approving_a_remote_mcp_call_is_judged_as_the_call() {
    // The provider asked to run a tool of a remote MCP server; the client approves it.
    let w = llm_world();
    let t = w.token(json!({"scope": "orders.read docs.read email.send"}));
    let approve = |name: &str, args: &Value, approve: Value| {
        json!({"model": "gpt-4o-mini",
               "tools": [{"type": "mcp", "server_label": "crm", "server_url": "https://mcp.example.com/acme/mcp"}],
               "input": [
                   {"role": "user", "content": "Where is my order?"},
                   {"type": "mcp_approval_request", "id": "mcpr_1", "server_label": "crm", "name": name,
                    "arguments": args.to_string()},
                   {"type": "mcp_approval_response", "approval_request_id": "mcpr_1", "approve": approve}]})
    };
    let mine = json!({"customer_id": "c-42"});
    let d = decide(&w, RESPONSES, &t, &approve("get_order", &mine, json!(true)));
    assert!(d.allowed(), "{:?}", d.denial);
    assert_eq!(
        d.calls.iter().map(|c| (c.tool.as_str(), c.allowed)).collect::<Vec<_>>(),
        [("get_order", true)]
    );
    // Approved for another customer, a tool not in the catalogue, an external action
    // without a human's grant: the agent cannot wave them through.
    let email = json!({"to": "bob@example.com", "subject": "Refund"});
    for (name, args, want) in [
        ("get_order", json!({"customer_id": "c-99"}), Reason::BindingMismatch),
        ("delete_account", json!({}), Reason::ToolUnknown),
        ("send_email", email.clone(), Reason::ApprovalRequired),
    ] {
        assert_eq!(
            reason(&w, RESPONSES, &t, &approve(name, &args, json!(true))),
            Some(want),
            "{name}"
        );
        // Declining is always fine.
        assert!(
            decide(&w, RESPONSES, &t, &approve(name, &args, json!(false))).allowed(),
            "{name}"
        );
    }
    // With a grant for exactly that e-mail, approving it goes through, once.
    let grant = w.grant_for(&email, "remote-1");
    assert!(with_grant(&w, RESPONSES, &t, &grant, &approve("send_email", &email, json!(true))).allowed());
    assert_eq!(
        with_grant(&w, RESPONSES, &t, &grant, &approve("send_email", &email, json!(true)))
            .denial
            .map(|x| x.reason),
        Some(Reason::ApprovalReplayed)
    );
    // Approving a request the provider keeps (not in input): not judgeable, refused.
    let mut unseen = approve("get_order", &mine, json!(true));
    unseen["input"].as_array_mut().unwrap().remove(1);
    let denial = decide(&w, RESPONSES, &t, &unseen).denial.unwrap();
    assert_eq!(
        (denial.reason, denial.rule.as_str()),
        (Reason::DataBoundary, "routes.responses.provider_state")
    );
    assert_eq!(
        reason(&w, RESPONSES, &t, &approve("get_order", &mine, json!("yes"))),
        Some(Reason::BodyMalformed)
    );
}

#[test]
fn files_stored_at_the_provider_stay_inside_the_callers_boundary() {
    let w = llm_world();
    // The caller's uploads, as the token lists them.
    let t = w.token(json!({"scope": "orders.read docs.read", "files": ["file-acme-1", "file-acme-2"]}));
    let chat = |id: &str| {
        json!({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": [
            {"type": "text", "text": "Summarise this"},
            {"type": "file", "file": {"file_id": id}}]}]})
    };
    let responses = |id: &str| {
        json!({"model": "gpt-4o-mini", "input": [{"role": "user", "content": [
            {"type": "input_text", "text": "What does it say?"},
            {"type": "input_image", "file_id": "file-acme-2", "detail": "auto"},
            {"type": "input_file", "file_id": id}]}]})
    };
    let interpreter = |ids: Value| {
        json!({"model": "gpt-4o-mini", "input": "Plot it",
               "tools": [{"type": "code_interpreter", "container": {"type": "auto", "file_ids": ids}}]})
    };
    let anthropic = |id: &str| {
        json!({"model": "claude-haiku-4-5", "max_tokens": 64, "messages": [
            {"role": "user", "content": [{"type": "document", "source": {"type": "file", "file_id": "file-acme-1"}}]},
            {"role": "assistant", "content": [{"type": "tool_use", "id": "t1", "name": "get_order",
                                               "input": {"customer_id": "c-42", "file_id": "not-a-file"}}]},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t1", "content": [
                {"type": "image", "source": {"type": "file", "file_id": id}}]}]}]})
    };
    let hosted = World::with(|p| {
        llm_policy(p);
        p["tools"]["code_interpreter"] =
            json!({"intent": "orders.read", "impact": "read", "owner": "data@example.com"});
    });
    // Each protocol: the caller's own upload passes, someone else's is refused wherever it
    // is named. (In the Anthropic case a tool call's own `file_id` argument is no file.)
    for (w, path, own, other) in [
        (&w, CHAT, chat("file-acme-1"), chat("file-globex-9")),
        (&w, RESPONSES, responses("file-acme-1"), responses("file-globex-9")),
        (
            &hosted,
            RESPONSES,
            interpreter(json!(["file-acme-1", "file-acme-2"])),
            interpreter(json!(["file-acme-1", "file-globex-9"])),
        ),
        (&w, MESSAGES, anthropic("file-acme-2"), anthropic("file-globex-9")),
    ] {
        let t = w.token(json!({"scope": "orders.read docs.read", "files": ["file-acme-1", "file-acme-2"]}));
        let d = decide(w, path, &t, &own);
        assert!(d.allowed(), "{own}: {:?}", d.denial);
        let denial = decide(w, path, &t, &other)
            .denial
            .unwrap_or_else(|| panic!("{other} passed"));
        assert_eq!(
            (denial.reason, denial.rule.as_str()),
            (Reason::DataBoundary, "data.files"),
            "{other}"
        );
        assert!(denial.message.contains("file-globex-9"), "{}", denial.message);
    }
    // The file is the caller's, the scope that opens it is not granted.
    let no_docs = w.token(json!({"scope": "orders.read", "files": ["file-acme-1"]}));
    let d = decide(&w, CHAT, &no_docs, &chat("file-acme-1"));
    let denial = d.denial.unwrap();
    assert_eq!(
        (denial.reason, denial.rule.as_str()),
        (Reason::ScopeMissing, "data.files.uploads")
    );
    // Without a data.files rule, no stored file is inside anyone's boundary.
    assert_eq!(
        reason(&World::with(llm_policy_without_files), CHAT, &t, &chat("file-acme-1")),
        Some(Reason::DataBoundary)
    );
    // A file id that is not text is no request aigate can judge.
    let mut bad = chat("x");
    bad["messages"][0]["content"][1]["file"]["file_id"] = json!(7);
    assert_eq!(reason(&w, CHAT, &t, &bad), Some(Reason::BodyMalformed));
}

fn llm_policy_without_files(p: &mut Value) {
    llm_policy(p);
    p["data"].as_object_mut().unwrap().remove("files");
}

#[test]
fn streaming_requests_are_judged_the_same() {
    let w = llm_world();
    let t = w.token(json!({"scope": "orders.read"}));
    let cases = [
        (CHAT, chat_body("gpt-4o-mini", &["get_order"], vec![]), None),
        (CHAT, chat_body("gpt-4o", &[], vec![]), Some(Reason::ModelNotAllowed)),
        (
            CHAT,
            chat_body("gpt-4o-mini", &["refund_order"], vec![]),
            Some(Reason::ToolOfferDenied),
        ),
        (
            RESPONSES,
            responses_body("gpt-4o-mini", vec![resp_tool("get_order")], vec![]),
            None,
        ),
        (
            RESPONSES,
            responses_body(
                "gpt-4o-mini",
                vec![],
                vec![resp_call("get_order", &json!({"customer_id": "c-1"}))],
            ),
            Some(Reason::BindingMismatch),
        ),
        (
            MESSAGES,
            anthropic_body("claude-haiku-4-5", &["get_order"], vec![]),
            None,
        ),
        (
            MESSAGES,
            anthropic_body("claude-haiku-4-5", &["send_email"], vec![]),
            Some(Reason::ToolOfferDenied),
        ),
    ];
    for (path, mut body, want) in cases {
        assert_eq!(reason(&w, path, &t, &body), want, "{path}");
        body["stream"] = json!(true);
        if path == CHAT {
            body["stream_options"] = json!({"include_usage": true});
        }
        assert_eq!(reason(&w, path, &t, &body), want, "{path} stream");
    }
}

#[test]
fn denials_come_in_each_providers_error_shape() {
    let w = llm_world();
    let t = w.token(json!({"scope": "orders.read"}));
    let id = "0123456789abcdef0123456789abcdef";

    let d = decide(&w, CHAT, &t, &chat_body("gpt-4o", &[], vec![]));
    let r = response::render(&w.policy, &d, d.denial.as_ref().unwrap(), id);
    assert_eq!(r.status, 403);
    assert!(r.headers.contains(&("x-aigate-decision-id".into(), id.into())));
    let v: Value = serde_json::from_slice(&r.body).unwrap();
    let e = &v["error"];
    assert_eq!(e["type"], "permission_error");
    assert_eq!(e["code"], "model_not_allowed");
    assert_eq!(e["param"], Value::Null);
    assert_eq!(e["decision_id"], id);
    let msg = e["message"].as_str().unwrap();
    assert!(msg.starts_with("aigate: model \"gpt-4o\" is not allowed"), "{msg}");
    assert!(msg.contains("model_not_allowed") && msg.contains(id), "{msg}");

    let d = decide(
        &w,
        MESSAGES,
        &t,
        &anthropic_body("claude-haiku-4-5", &["refund_order"], vec![]),
    );
    let r = response::render(&w.policy, &d, d.denial.as_ref().unwrap(), id);
    assert_eq!(r.status, 403);
    let v: Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(v["type"], "error");
    assert_eq!(v["error"]["type"], "permission_error");
    assert_eq!(v["error"]["reason"], "tool_offer_denied");
    assert!(v["error"]["message"].as_str().unwrap().contains("\"refund_order\""));

    // Identity failures: 401, the challenge, the provider's authentication error.
    for (path, body) in [
        (RESPONSES, responses_body("gpt-4o-mini", vec![], vec![])),
        (MESSAGES, anthropic_body("claude-haiku-4-5", &[], vec![])),
    ] {
        let d = w.decide(&headers_for(&w, path, None), Some(&body));
        let r = response::render(&w.policy, &d, d.denial.as_ref().unwrap(), id);
        assert_eq!(r.status, 401);
        assert!(r
            .headers
            .contains(&("www-authenticate".into(), "Bearer realm=\"aigate\"".into())));
        let v: Value = serde_json::from_slice(&r.body).unwrap();
        assert_eq!(v["error"]["type"], "authentication_error", "{path}");
        assert_eq!(v["type"] == "error", path == MESSAGES);
        assert_eq!(v["error"]["reason"], "unauthenticated");
    }

    // Scope missing keeps its challenge; approval denials carry what a client needs.
    let d = decide(
        &w,
        CHAT,
        &t,
        &chat_body(
            "gpt-4o-mini",
            &[],
            vec![chat_call("call_9", "refund_order", &json!({}))],
        ),
    );
    let r = response::render(&w.policy, &d, d.denial.as_ref().unwrap(), id);
    assert_eq!(r.status, 403);
    assert!(r
        .headers
        .iter()
        .any(|(k, v)| k == "www-authenticate" && v.contains("scope=\"orders.refund\"")));
    let mailer = w.token(json!({"scope": "orders.read email.send"}));
    let email = json!({"to": "alice@example.com"});
    let d = decide(
        &w,
        MESSAGES,
        &mailer,
        &anthropic_body("claude-haiku-4-5", &[], vec![tool_use("send_email", email.clone())]),
    );
    let r = response::render(&w.policy, &d, d.denial.as_ref().unwrap(), id);
    let v: Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(r.status, 403);
    assert_eq!(v["error"]["reason"], "approval_required");
    assert_eq!(v["error"]["tool"], "send_email");
    assert_eq!(
        v["error"]["args_digest"],
        aigate::digest::args_digest(&email).unwrap().as_str()
    );
    assert!(v["error"]["approval_url"]
        .as_str()
        .unwrap()
        .starts_with("https://approvals.example.com/new?tool=send_email"));

    // Malformed bodies are the provider's invalid request error.
    let d = w.decide_raw(
        &headers_for(&w, CHAT, Some(&t)),
        Some(b"{\"model\":\"gpt-4o-mini\",\"model\":\"gpt-4o\"}"),
    );
    let r = response::render(&w.policy, &d, d.denial.as_ref().unwrap(), id);
    assert_eq!(r.status, 400);
    let v: Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(v["error"]["type"], "invalid_request_error");
    assert_eq!(v["error"]["code"], "body_malformed");
}

#[test]
fn audit_names_protocol_model_and_refused_tools() {
    let w = llm_world();
    let t = w.token(json!({"scope": "orders.read"}));
    let h = headers_for(&w, "/strip/v1/messages", Some(&t));
    let d = w.decide(
        &h,
        Some(&anthropic_body(
            "claude-haiku-4-5",
            &["get_order", "refund_order"],
            vec![],
        )),
    );
    assert!(d.allowed());
    let v: Value = serde_json::from_str(&aigate::audit::record(&w.policy, &d, "x", 0)).unwrap();
    assert_eq!(v["protocol"], "anthropic_messages");
    assert_eq!(v["route"], "messages-strip");
    assert_eq!(v["model"], "claude-haiku-4-5");
    assert_eq!(v["refused_offers"], json!(["refund_order"]));
    assert_eq!(v["owner"], "assistants@example.com");
    let d = decide(
        &w,
        CHAT,
        &t,
        &chat_body(
            "gpt-4o-mini",
            &[],
            vec![chat_call(
                "call_9",
                "get_order",
                &json!({"customer_id": "c-99", "order_id": "secret-order"}),
            )],
        ),
    );
    let line = aigate::audit::record(&w.policy, &d, "x", 0);
    let v: Value = serde_json::from_str(&line).unwrap();
    assert_eq!(v["protocol"], "openai_chat");
    assert_eq!(v["reason"], "binding_mismatch");
    assert_eq!(v["tool"], "get_order");
    assert_eq!(
        v["intent"], "orders.read",
        "a denied call still names what it attempted"
    );
    assert_eq!(v["owner"], "orders-team@example.com");
    assert!(!line.contains("secret-order") && !line.contains("Tracking"), "{line}");
}

#[test]
fn config_errors_name_their_path() {
    let errs = |edit: &dyn Fn(&mut Value)| {
        let mut doc = policy_doc();
        doc["routes"] = json!([{"id": "chat", "prefix": "/v1/chat/completions", "protocol": "openai_chat"}]);
        doc["models"] = json!({"allow": ["*"]});
        edit(&mut doc);
        match aigate::policy::compile(doc.to_string().as_bytes()) {
            Ok(_) => vec![],
            Err(e) => e.into_iter().map(|e| e.to_string()).collect::<Vec<_>>(),
        }
    };
    assert!(errs(&|_| {}).is_empty());
    type Edit<'a> = &'a dyn Fn(&mut Value);
    let rows: Vec<(Edit, &str)> = vec![
        (
            &|d| d["models"] = json!({}),
            "routes[0].protocol: LLM routes need a model allow-list",
        ),
        (&|d| d["models"] = json!({"allow": ["gpt*4"]}), "models.allow[0]"),
        (
            &|d| d["routes"][0]["tool_offers"] = json!("maybe"),
            "routes[0].tool_offers",
        ),
        (
            &|d| d["routes"] = json!([{"id": "m", "prefix": "/mcp", "protocol": "mcp", "tool_offers": "strip"}]),
            "routes[0].tool_offers: applies only to LLM routes",
        ),
        (
            &|d| d["scopes"] = json!({"premium": {"models": ["a**"]}}),
            "scopes.premium.models[0]",
        ),
        (&|d| d["scopes"] = json!({"empty": {}}), "scopes.empty.grants"),
        (
            &|d| d["data"]["mcp_servers"] = json!([{"id": "x", "url_prefix": "https://mcp.example.com", "scope": "a"}]),
            "data.mcp_servers[0].url_prefix",
        ),
        (
            &|d| d["data"]["mcp_servers"] = json!([{"id": "x", "url_prefix": "mcp://x/", "scope": "a"}]),
            "data.mcp_servers[0].url_prefix",
        ),
        (
            &|d| d["data"]["vector_stores"] = json!([{"id": "x", "ids": [], "scope": "a"}]),
            "data.vector_stores[0].ids",
        ),
        (
            &|d| d["data"]["vector_stores"] = json!([{"id": "x", "ids": ["vs_{tenant"], "scope": "a"}]),
            "data.vector_stores[0].ids[0]",
        ),
    ];
    for (edit, want) in rows {
        let e = errs(edit);
        assert!(e.iter().any(|m| m.contains(want)), "{want}: {e:?}");
    }
    // Per-scope models alone are a model allow-list too.
    assert!(errs(&|d| {
        d["models"] = json!({});
        d["scopes"] = json!({"premium": {"models": ["gpt-4o"]}});
    })
    .is_empty());
}

fn computer_call(call_id: &str, action: Value) -> Value {
    json!({"type": "computer_call", "id": format!("cu_{call_id}"), "call_id": call_id, "action": action,
           "pending_safety_checks": [], "status": "completed"})
}

fn computer_output(call_id: &str) -> Value {
    json!({"type": "computer_call_output", "call_id": call_id,
           "output": {"type": "computer_screenshot", "image_url": "data:image/png;base64,iVBORw0KGgo="}})
}

/// A Responses conversation whose last model turn holds `latest` (a client-run call),
/// followed by its output as the client sends it back.
fn client_call_body(tools: Vec<Value>, latest: Value, output: Value) -> Value {
    let mut b = responses_body("gpt-4o-mini", tools, vec![]);
    let input = b["input"].as_array_mut().unwrap();
    input.push(json!({"type": "reasoning", "id": "rs_9", "summary": []}));
    input.push(latest);
    input.push(output);
    b
}

#[test]
fn responses_client_run_calls_are_judged_as_their_tool() {
    let w = hosted_world();
    let all = w.token(json!({"scope": "orders.read tickets.desktop tickets.shell tickets.patch"}));
    let orders_only = w.token(json!({"scope": "orders.read"}));
    let click = json!({"type": "click", "button": "left", "x": 156, "y": 50});
    let local = json!({"type": "local_shell_call", "id": "lsh_1", "call_id": "call_s1", "status": "completed",
        "action": {"type": "exec", "command": ["ls", "-la"], "env": {}, "working_directory": "/srv/tickets", "timeout_ms": 10000}});
    let local_out =
        json!({"type": "local_shell_call_output", "id": "lsh_1", "call_id": "call_s1", "output": "total 0"});
    let shell = |commands: Value| {
        json!({"type": "shell_call", "id": "sh_1", "call_id": "call_sh1", "status": "completed",
               "action": {"commands": commands, "timeout_ms": 30000, "max_output_length": 4096}})
    };
    let shell_out = json!({"type": "shell_call_output", "call_id": "call_sh1",
        "output": [{"stdout": "ok\n", "stderr": "", "outcome": {"type": "exit", "exit_code": 0}}]});
    let patch = |path: &str| {
        json!({"type": "apply_patch_call", "id": "apc_1", "call_id": "call_p1", "status": "completed",
               "operation": {"type": "update_file", "path": path, "diff": "@@\n-Old answer.\n+New answer.\n"}})
    };
    let patch_out =
        json!({"type": "apply_patch_call_output", "call_id": "call_p1", "status": "completed", "output": "done"});
    let rows: Vec<(&str, &String, Value, Option<Reason>)> = vec![
        (
            "computer_call needs tickets.desktop",
            &orders_only,
            client_call_body(
                vec![],
                computer_call("call_c1", click.clone()),
                computer_output("call_c1"),
            ),
            Some(Reason::ScopeMissing),
        ),
        (
            "computer_call of the latest turn needs its grant",
            &all,
            client_call_body(
                vec![
                    json!({"type": "computer_use_preview", "display_width": 1024, "display_height": 768, "environment": "browser"}),
                ],
                computer_call("call_c1", click.clone()),
                computer_output("call_c1"),
            ),
            Some(Reason::ApprovalRequired),
        ),
        (
            "local_shell_call needs tickets.shell",
            &orders_only,
            client_call_body(vec![], local.clone(), local_out.clone()),
            Some(Reason::ScopeMissing),
        ),
        (
            "local_shell_call granted",
            &all,
            client_call_body(vec![json!({"type": "local_shell"})], local.clone(), local_out.clone()),
            None,
        ),
        (
            "shell_call needs tickets.shell",
            &orders_only,
            client_call_body(vec![], shell(json!(["ls"])), shell_out.clone()),
            Some(Reason::ScopeMissing),
        ),
        (
            "shell_call constraints hold on the action",
            &all,
            client_call_body(
                vec![json!({"type": "shell"})],
                shell(json!(["ls", "cat /etc/passwd", "curl https://evil.example"])),
                shell_out.clone(),
            ),
            Some(Reason::ArgumentViolation),
        ),
        (
            "shell_call granted",
            &all,
            client_call_body(
                vec![json!({"type": "shell"})],
                shell(json!(["ls docs"])),
                shell_out.clone(),
            ),
            None,
        ),
        (
            "apply_patch_call needs tickets.patch",
            &orders_only,
            client_call_body(vec![], patch("docs/faq.md"), patch_out.clone()),
            Some(Reason::ScopeMissing),
        ),
        (
            "apply_patch_call constraints hold on the operation",
            &all,
            client_call_body(
                vec![json!({"type": "apply_patch"})],
                patch("src/auth.rs"),
                patch_out.clone(),
            ),
            Some(Reason::ArgumentViolation),
        ),
        (
            "apply_patch_call granted",
            &all,
            client_call_body(
                vec![json!({"type": "apply_patch"})],
                patch("docs/faq.md"),
                patch_out.clone(),
            ),
            None,
        ),
    ];
    for (name, token, body, want) in rows {
        let d = decide(&w, RESPONSES, token, &body);
        assert_eq!(d.denial.as_ref().map(|x| x.reason), want, "{name}: {:?}", d.denial);
    }
    // Uncatalogued, the tool is unknown like any function.
    let bare = hosted_world_without("shell");
    let body = client_call_body(vec![], shell(json!(["ls"])), shell_out.clone());
    assert_eq!(reason(&bare, RESPONSES, &all, &body), Some(Reason::ToolUnknown));

    // The computer call's action is what the grant covers, claimed on the turn it is new;
    // on the next request it is history and its grant is not claimed again.
    let digest = aigate::digest::args_digest(&click).unwrap();
    let body = client_call_body(
        vec![],
        computer_call("call_c1", click.clone()),
        computer_output("call_c1"),
    );
    let grant = w.grant(json!({"tool": "computer_use_preview", "args_digest": digest, "jti": "cu-1"}));
    let d = with_grant(&w, RESPONSES, &all, &grant, &body);
    assert!(d.allowed(), "{:?}", d.denial);
    assert_eq!(d.calls.len(), 1);
    assert_eq!(d.calls[0].tool, "computer_use_preview");
    assert_eq!(d.calls[0].approver.as_deref(), Some("carol@example.com"));
    let mut next = body.clone();
    let input = next["input"].as_array_mut().unwrap();
    input.push(
        json!({"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "Clicked."}]}),
    );
    input.push(json!({"role": "user", "content": "Thanks"}));
    // Marked latest again, it would claim the spent grant (approval_replayed).
    let d = with_grant(&w, RESPONSES, &all, &grant, &next);
    assert!(d.allowed(), "{:?}", d.denial);
    assert!(d.calls.is_empty());
}

#[test]
fn responses_items_provider_run_pass_and_unknown_calls_are_refused() {
    let w = hosted_world();
    let t = w.token(json!({"scope": "orders.read docs.read"}));
    // Provider-run calls, outputs and MCP approvals: judged by the offered tools and the
    // data boundary, not as calls. (An item_reference is provider state: refused apart.)
    let mut body = responses_body("gpt-4o-mini", vec![], vec![]);
    let input = body["input"].as_array_mut().unwrap();
    for item in [
        json!({"type": "web_search_call", "id": "ws_1", "status": "completed", "action": {"type": "search", "query": "tracking"}}),
        json!({"type": "file_search_call", "id": "fs_1", "status": "completed", "queries": ["returns"], "results": null}),
        json!({"type": "code_interpreter_call", "id": "ci_1", "status": "completed", "code": "print(1)", "container_id": "cntr_1", "outputs": null}),
        json!({"type": "image_generation_call", "id": "ig_1", "status": "completed", "result": "iVBORw0KGgo="}),
        json!({"type": "mcp_list_tools", "id": "mcpl_1", "server_label": "crm", "tools": []}),
        json!({"type": "mcp_approval_request", "id": "mcpr_1", "server_label": "crm", "name": "delete_account", "arguments": "{}"}),
        json!({"type": "mcp_approval_response", "approval_request_id": "mcpr_1", "approve": false}),
        json!({"type": "mcp_call", "id": "mcp_1", "server_label": "crm", "name": "lookup", "arguments": "{}", "output": "{}"}),
        json!({"type": "custom_tool_call_output", "call_id": "call_x", "output": "ok"}),
        computer_output("call_c0"),
        json!({"type": "local_shell_call_output", "id": "lsh_0", "output": "ok"}),
        json!({"type": "shell_call_output", "call_id": "call_sh0", "output": []}),
        json!({"type": "apply_patch_call_output", "call_id": "call_p0", "status": "completed"}),
        json!({"type": "message", "role": "user", "content": [{"type": "input_text", "text": "ok"}]}),
    ] {
        input.push(item);
    }
    let d = decide(&w, RESPONSES, &t, &body);
    assert!(d.allowed(), "{:?}", d.denial);
    assert!(d.calls.is_empty());

    // A call type aigate cannot name, or a client-run call without its payload, is refused.
    let rows = [
        json!({"type": "browser_call", "call_id": "call_b1", "action": {"type": "open", "url": "https://evil.example"}}),
        json!({"type": "computer_call", "call_id": "call_c1", "pending_safety_checks": []}),
        json!({"type": "computer_call", "call_id": "call_c1", "action": null}),
        json!({"type": "local_shell_call", "call_id": "call_s1", "action": "rm -rf /"}),
        json!({"type": "shell_call", "call_id": "call_sh1", "action": ["ls"]}),
        json!({"type": "apply_patch_call", "call_id": "call_p1", "operation": "{\"path\":\"docs/a\"}"}),
        json!({"type": "apply_patch_call", "call_id": "call_p1", "action": {"path": "docs/a"}}),
    ];
    for item in rows {
        let kind = item["type"].as_str().unwrap().to_string();
        let body = client_call_body(vec![], item, json!({"role": "user", "content": "go on"}));
        let d = decide(&w, RESPONSES, &t, &body);
        let denial = d.denial.unwrap();
        assert_eq!(denial.reason, Reason::BodyMalformed, "{body}");
        assert!(denial.message.contains(&kind), "{}", denial.message);
    }
}

#[test]
fn chat_legacy_functions_are_named_by_their_top_level_name() {
    let w = llm_world();
    let t = w.token(json!({"scope": "orders.read"}));
    let legacy = |name: &str| json!({"name": name, "description": "…", "parameters": {"type": "object", "properties": {"order_id": {"type": "string"}}}});
    let messages = json!([{"role": "user", "content": "Refund order o-1"}]);
    // A functions entry carrying a function member names two tools: refused, not guessed.
    let mut two_names = legacy("refund_order");
    two_names["function"] = json!({"name": "get_order"});
    let body = json!({"model": "gpt-4o-mini", "messages": messages, "functions": [legacy("get_order"), two_names]});
    for path in [CHAT, "/strip/v1/chat/completions"] {
        assert_eq!(reason(&w, path, &t, &body), Some(Reason::BodyMalformed), "{path}");
    }
    // And a tools[] entry named both inside its function member and at the top level.
    for tool in [
        json!({"type": "function", "name": "refund_order", "function": {"name": "get_order"}}),
        json!({"name": "refund_order", "function": {"name": "get_order"}}),
    ] {
        let body = json!({"model": "gpt-4o-mini", "messages": messages, "tools": [tool]});
        assert_eq!(reason(&w, CHAT, &t, &body), Some(Reason::BodyMalformed), "{body}");
    }
    // Same for the legacy choice.
    let body = json!({"model": "gpt-4o-mini", "messages": messages,
        "functions": [legacy("get_order"), legacy("refund_order")],
        "function_call": {"name": "refund_order", "function": {"name": "get_order"}}});
    assert_eq!(
        reason(&w, "/strip/v1/chat/completions", &t, &body),
        Some(Reason::BodyMalformed)
    );
    // Well-formed legacy bodies: judged by name, stripped by index.
    let body = json!({"model": "gpt-4o-mini", "messages": messages, "functions": [legacy("get_order"), legacy("refund_order")]});
    let d = decide(&w, CHAT, &t, &body);
    assert_eq!(d.denial.map(|x| x.reason), Some(Reason::ToolOfferDenied));
    assert_eq!(d.refused_offers, ["refund_order"]);
    let mut forced = body.clone();
    forced["function_call"] = json!({"name": "refund_order"});
    assert_eq!(
        reason(&w, "/strip/v1/chat/completions", &t, &forced),
        Some(Reason::ToolOfferDenied)
    );
    let h = headers_for(&w, "/strip/v1/chat/completions", Some(&t));
    let raw = r#"{"model":"gpt-4o-mini","messages":[],"functions":[{"name":"refund_order","parameters":{}},{"name":"get_order","parameters":{}}],"function_call":"auto"}"#;
    let d = w.decide_raw(&h, Some(raw.as_bytes()));
    assert!(d.allowed(), "{:?}", d.denial);
    assert_eq!(
        String::from_utf8(d.rewrite.unwrap()).unwrap(),
        r#"{"model":"gpt-4o-mini","messages":[],"functions":[{"name":"get_order","parameters":{}}],"function_call":"auto"}"#
    );
}

#[test]
fn chat_web_search_options_offer_the_hosted_web_search() {
    let w = hosted_world();
    let searcher = w.token(json!({"scope": "orders.read tickets.search"}));
    let orders_only = w.token(json!({"scope": "orders.read"}));
    let body = json!({
        "model": "gpt-4o-mini-search-preview",
        "web_search_options": {"search_context_size": "low",
            "user_location": {"type": "approximate", "approximate": {"country": "GB", "city": "London"}}},
        "messages": [{"role": "user", "content": "What is the carrier's delivery status page?"}]
    });
    let d = decide(&w, CHAT, &searcher, &body);
    assert!(d.allowed() && d.rewrite.is_none(), "{:?}", d.denial);
    let d = decide(&w, CHAT, &orders_only, &body);
    let denial = d.denial.unwrap();
    assert_eq!(denial.reason, Reason::ToolOfferDenied);
    assert!(denial.message.contains("\"web_search\""), "{}", denial.message);
    assert_eq!(d.refused_offers, ["web_search"]);
    // Not catalogued: not usable, whoever asks.
    let bare = hosted_world_without("web_search");
    assert_eq!(reason(&bare, CHAT, &searcher, &body), Some(Reason::ToolOfferDenied));
    // strip removes the whole member; the rest of the body keeps its bytes.
    let strip = "/strip/v1/chat/completions";
    let h = headers_for(&w, strip, Some(&orders_only));
    let raw =
        r#"{"model":"gpt-4o-mini-search-preview","web_search_options":{"search_context_size":"low"},"messages":[]}"#;
    let d = w.decide_raw(&h, Some(raw.as_bytes()));
    assert!(d.allowed(), "{:?}", d.denial);
    assert_eq!(d.refused_offers, ["web_search"]);
    assert_eq!(
        String::from_utf8(d.rewrite.unwrap()).unwrap(),
        r#"{"model":"gpt-4o-mini-search-preview","messages":[]}"#
    );
    // Usable, it stays while refused tools go.
    let h = headers_for(&w, strip, Some(&searcher));
    let raw = r#"{"model":"gpt-4o-mini-search-preview","web_search_options":{},"messages":[],"tools":[{"type":"function","function":{"name":"refund_order"}}],"tool_choice":"auto"}"#;
    let d = w.decide_raw(&h, Some(raw.as_bytes()));
    assert!(d.allowed(), "{:?}", d.denial);
    assert_eq!(
        String::from_utf8(d.rewrite.unwrap()).unwrap(),
        r#"{"model":"gpt-4o-mini-search-preview","web_search_options":{},"messages":[]}"#
    );
    // null is no offer; another type is malformed.
    let mut off = body.clone();
    off["web_search_options"] = Value::Null;
    assert!(decide(&w, CHAT, &orders_only, &off).allowed());
    off["web_search_options"] = json!(true);
    assert_eq!(reason(&w, CHAT, &searcher, &off), Some(Reason::BodyMalformed));
}
