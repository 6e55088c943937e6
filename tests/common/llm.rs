//! LLM API routes for the engine tests: the policy with chat, Responses and Messages
//! routes, hosted tools, and request bodies of each provider.

use super::*;
use aigate::decision::Reason;
use aigate::engine::Decision;
use serde_json::{json, Value};

pub const CHAT: &str = "/v1/chat/completions";
pub const RESPONSES: &str = "/v1/responses";
pub const MESSAGES: &str = "/v1/messages";

pub fn llm_world() -> World {
    World::with(llm_policy)
}

pub fn llm_policy(p: &mut Value) {
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

/// `llm_world` with hosted tools catalogued by type: desktop agents (the preview and GA
/// computer tools), shells, a patcher limited to `docs/`, and web search; and a search
/// model.
pub fn hosted_world() -> World {
    World::with(hosted_policy)
}

pub fn hosted_world_without(tool: &str) -> World {
    World::with(|p| {
        hosted_policy(p);
        p["tools"].as_object_mut().unwrap().remove(tool);
    })
}

pub fn hosted_policy(p: &mut Value) {
    llm_policy(p);
    p["models"]["allow"]
        .as_array_mut()
        .unwrap()
        .extend([json!("gpt-4o-mini-search-preview"), json!("gpt-4o-search-preview*")]);
    let tools = p["tools"].as_object_mut().unwrap();
    for (name, tool) in [
        (
            "computer_use_preview",
            json!({"intent": "tickets.desktop", "impact": "external", "owner": "it@example.com"}),
        ),
        (
            "computer",
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

pub fn headers_for(w: &World, path: &str, token: Option<&str>) -> Vec<(String, Vec<u8>)> {
    let mut h = w.headers(token);
    for (k, v) in h.iter_mut() {
        if k == ":path" {
            *v = path.as_bytes().to_vec();
        }
    }
    h
}

pub fn decide(w: &World, path: &str, token: &str, body: &Value) -> Decision {
    w.decide(&headers_for(w, path, Some(token)), Some(body))
}

pub fn reason(w: &World, path: &str, token: &str, body: &Value) -> Option<Reason> {
    decide(w, path, token, body).denial.map(|d| d.reason)
}

pub fn with_grant(w: &World, path: &str, token: &str, grant: &str, body: &Value) -> Decision {
    let mut h = headers_for(w, path, Some(token));
    h.push(("x-aigate-approval".into(), grant.as_bytes().to_vec()));
    w.decide(&h, Some(body))
}

pub fn chat_tool(name: &str) -> Value {
    json!({"type": "function", "function": {"name": name, "description": "…", "parameters": {"type": "object", "properties": {}}}})
}

pub fn chat_call(id: &str, name: &str, args: &Value) -> Value {
    json!({"id": id, "type": "function", "function": {"name": name, "arguments": args.to_string()}})
}

/// A support conversation: system prompt, an image, an earlier turn with parallel tool
/// calls and their results, unknown fields everywhere.
pub fn chat_body(model: &str, tools: &[&str], latest_calls: Vec<Value>) -> Value {
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

pub fn responses_body(model: &str, tools: Vec<Value>, latest_calls: Vec<Value>) -> Value {
    let mut input = vec![
        json!({"role": "developer", "content": "You are the support assistant of Example Inc."}),
        json!({"role": "user", "content": [
            {"type": "input_text", "text": "Where is my order?"},
            {"type": "input_image", "image_url": "data:image/png;base64,iVBORw0KGgo="}
        ]}),
        json!({"type": "reasoning", "id": "rs_1", "summary": [], "encrypted_content": "gAAAAB-rs_1"}),
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

pub fn resp_tool(name: &str) -> Value {
    json!({"type": "function", "name": name, "parameters": {"type": "object"}, "strict": false})
}

pub fn resp_call(name: &str, args: &Value) -> Value {
    json!({"type": "function_call", "call_id": "call_l0", "name": name, "arguments": args.to_string()})
}

pub fn anthropic_body(model: &str, tools: &[&str], latest_calls: Vec<Value>) -> Value {
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

pub fn tool_use(name: &str, input: Value) -> Value {
    json!({"type": "tool_use", "id": "toolu_9", "name": name, "input": input})
}
