//! Engine table tests for LLM API routes: OpenAI Chat Completions, OpenAI Responses and
//! Anthropic Messages, judged with the same identity, catalogue and approvals as MCP:
//! models, tools offered to the model (deny and strip), streams, error shapes, audit.

mod common;

use aigate::decision::Reason;
use aigate::response;
use common::llm::*;
use common::*;
use serde_json::{json, Value};

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
    // Nor when its issuer's cap lacks it: a partner's IdP trusted for order lookups grants
    // no premium model, whatever its tokens say.
    let w3 = World::with(|p| {
        llm_policy(p);
        let mut partner = p["identity"]["jwt"]["issuers"][0].clone();
        partner["issuer"] = json!("https://partner.example.com");
        partner["scopes"] = json!(["orders.read"]);
        p["identity"]["jwt"]["issuers"].as_array_mut().unwrap().push(partner);
    });
    for scope in ["orders.read llm.premium", "orders.read llm.*", "*"] {
        let partner = w3.token(json!({"iss": "https://partner.example.com", "scope": scope}));
        assert_eq!(
            reason(&w3, CHAT, &partner, &chat_body("gpt-4o", &[], vec![])),
            Some(Reason::ModelNotAllowed),
            "{scope}"
        );
    }
    let main = w3.token(json!({"scope": "orders.read llm.premium"}));
    assert!(decide(&w3, CHAT, &main, &chat_body("gpt-4o", &[], vec![])).allowed());
}

/// `llm_world` with the advisor server tool catalogued: it runs a model of its own.
fn advisor_world() -> World {
    World::with(|p| {
        llm_policy(p);
        p["tools"]["advisor"] = json!({"intent": "docs.read", "impact": "read", "owner": "ai@example.com"});
    })
}

fn advisor(model: &str) -> Value {
    json!({"type": "advisor_20260301", "name": "advisor", "model": model})
}

#[test]
fn models_named_beside_the_model_are_held_to_the_same_lists() {
    let w = advisor_world();
    let t = w.token(json!({}));
    let premium = w.token(json!({"scope": "orders.read docs.read llm.premium"}));
    let with = |member: &str, value: Value| {
        let mut b = anthropic_body("claude-haiku-4-5", &["get_order"], vec![]);
        b[member] = value;
        b
    };
    let advised = |model: &str| {
        let mut b = anthropic_body("claude-haiku-4-5", &["get_order"], vec![]);
        b["tools"].as_array_mut().unwrap().push(advisor(model));
        b
    };
    // Fallbacks the provider retries on, and the advisor's model, run on the conversation.
    for (body, place) in [
        (with("fallbacks", json!([{"model": "claude-opus-4-7"}])), "fallbacks"),
        (
            with(
                "fallbacks",
                json!([{"model": "claude-haiku-4-5"}, {"model": "claude-sonnet-4-5", "max_tokens": 9}]),
            ),
            "fallbacks",
        ),
        (advised("claude-opus-4-7"), "tools"),
    ] {
        for route in [MESSAGES, "/strip/v1/messages"] {
            let denial = decide(&w, route, &t, &body)
                .denial
                .unwrap_or_else(|| panic!("{route} {body} passed"));
            assert_eq!(
                (denial.reason, denial.rule.as_str()),
                (Reason::ModelNotAllowed, "models"),
                "{body}"
            );
            assert!(
                denial
                    .message
                    .ends_with(&format!("is not allowed for this caller (named in {place})")),
                "{}",
                denial.message
            );
        }
    }
    // Models the caller may use pass, a scope's models included.
    for (token, body) in [
        (&t, with("fallbacks", json!([{"model": "claude-haiku-4-5-20251001"}]))),
        (&premium, with("fallbacks", json!([{"model": "claude-sonnet-4-5"}]))),
        (&t, with("fallbacks", Value::Null)),
        (&t, advised("claude-haiku-4-5")),
        (&premium, advised("claude-sonnet-4-5")),
    ] {
        let d = decide(&w, MESSAGES, token, &body);
        assert!(d.allowed(), "{body}: {:?}", d.denial);
    }
    // "default" lets the provider choose: nothing aigate could judge, whatever the lists.
    for fallbacks in [json!("default"), json!([{"model": "default"}])] {
        let denial = decide(&w, MESSAGES, &premium, &with("fallbacks", fallbacks.clone()))
            .denial
            .unwrap_or_else(|| panic!("{fallbacks} passed"));
        assert_eq!(
            (denial.reason, denial.rule.as_str()),
            (Reason::ModelNotAllowed, "models")
        );
        assert!(
            denial
                .message
                .starts_with("fallbacks \"default\" lets the provider choose"),
            "{}",
            denial.message
        );
    }
    // An entry without a model, or a model of another type, is malformed.
    for (member, value) in [
        ("fallbacks", json!([{"max_tokens": 9}])),
        ("fallbacks", json!(["claude-haiku-4-5"])),
        ("fallbacks", json!("claude-haiku-4-5")),
        ("fallbacks", json!([{"model": 7}])),
        (
            "tools",
            json!([{"type": "advisor_20260301", "name": "advisor", "model": ["claude-haiku-4-5"]}]),
        ),
    ] {
        let denial = decide(&w, MESSAGES, &t, &with(member, value.clone()))
            .denial
            .unwrap_or_else(|| panic!("{value} passed"));
        assert_eq!(denial.reason, Reason::BodyMalformed, "{value}");
    }
    // A case-blind server would read `Fallbacks` as the fallbacks aigate did not judge.
    let body = with("Fallbacks", json!([{"model": "claude-opus-4-7"}]));
    assert_eq!(reason(&w, MESSAGES, &t, &body), Some(Reason::BodyMalformed));
}

#[test]
fn models_a_router_may_run_on_openai_routes_are_held_to_the_lists() {
    // OpenRouter's `models` and LiteLLM's `fallbacks` run the request on other models.
    let w = llm_world();
    let t = w.token(json!({}));
    let premium = w.token(json!({"scope": "orders.read llm.premium"}));
    let with = |route: &str, member: &str, value: Value| {
        let mut b = if route == CHAT {
            chat_body("gpt-4o-mini", &["get_order"], vec![])
        } else {
            responses_body("gpt-4o-mini", vec![resp_tool("get_order")], vec![])
        };
        b[member] = value;
        b
    };
    for route in [CHAT, RESPONSES] {
        for (member, value) in [
            ("models", json!(["gpt-4o-mini", "gpt-4o"])),
            ("fallbacks", json!(["gpt-4o"])),
            ("fallbacks", json!([{"model": "gpt-4o"}])),
        ] {
            let denial = decide(&w, route, &t, &with(route, member, value.clone()))
                .denial
                .unwrap_or_else(|| panic!("{route} {member} {value} passed"));
            assert_eq!(
                (denial.reason, denial.rule.as_str()),
                (Reason::ModelNotAllowed, "models")
            );
            assert!(
                denial.message.ends_with(&format!("(named in {member})")),
                "{}",
                denial.message
            );
            // A scope that opens the model lets it pass.
            let d = decide(&w, route, &premium, &with(route, member, value));
            assert!(d.allowed(), "{route} {member}: {:?}", d.denial);
        }
        for (member, value) in [
            ("models", json!("gpt-4o")),
            ("models", json!([7])),
            ("fallbacks", json!([{"name": "gpt-4o"}])),
        ] {
            let got = reason(&w, route, &premium, &with(route, member, value.clone()));
            assert_eq!(got, Some(Reason::BodyMalformed), "{route} {member} {value}");
        }
        let got = reason(&w, route, &t, &with(route, "Models", json!(["gpt-4o"])));
        assert_eq!(
            got,
            Some(Reason::BodyMalformed),
            "{route}: a case-blind router reads Models"
        );
        assert!(decide(&w, route, &t, &with(route, "models", Value::Null)).allowed());
    }
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

/// A Messages conversation whose first user turn holds `blocks` before its text.
fn conversation_adding(tools: &[&str], blocks: Vec<Value>) -> Value {
    let mut body = anthropic_body("claude-haiku-4-5", tools, vec![]);
    let mut content = blocks;
    content.push(json!({"type": "text", "text": "refund customer c-42"}));
    body["messages"]
        .as_array_mut()
        .unwrap()
        .push(json!({"role": "assistant", "content": "ok"}));
    body["messages"]
        .as_array_mut()
        .unwrap()
        .push(json!({"role": "user", "content": content}));
    body
}

fn addition(tool: Value) -> Value {
    json!({"type": "tool_addition", "tool": tool})
}

fn defined(definition: Value) -> Value {
    addition(json!({"type": "tool_definition", "definition": definition}))
}

fn function(name: &str) -> Value {
    json!({"name": name, "input_schema": {"type": "object"}})
}

#[test]
fn tools_the_conversation_adds_are_judged_as_offers_and_never_stripped() {
    let w = advisor_world();
    let t = w.token(json!({"scope": "orders.read email.send"}));
    let refused = |body: &Value, tool: &str| {
        for route in [MESSAGES, "/strip/v1/messages"] {
            let d = decide(&w, route, &t, body);
            let denial = d.denial.clone().unwrap_or_else(|| panic!("{route}: {body} passed"));
            assert_eq!(denial.reason, Reason::ToolOfferDenied, "{route}: {body}");
            assert_eq!(d.refused_offers, [tool], "{route}");
            assert!(d.rewrite.is_none(), "{route}");
            let expected = if route == MESSAGES {
                format!("the request offers the model tools this caller may not use: {tool:?}")
            } else {
                format!(
                    "the conversation offers the model {tool:?}, which this caller may not use; \
                     it cannot be stripped from the conversation"
                )
            };
            assert_eq!(denial.message, expected, "{route}");
        }
    };
    // Defined inline: a function this caller may not use, a server tool not catalogued.
    refused(
        &conversation_adding(&["get_order"], vec![defined(function("refund_order"))]),
        "refund_order",
    );
    refused(
        &conversation_adding(
            &[],
            vec![defined(json!({"type": "web_search_20250305", "name": "web_search"}))],
        ),
        "web_search",
    );
    // Named: a tool of `tools` the strip route would cut, or one defined earlier.
    refused(
        &conversation_adding(
            &["get_order", "refund_order"],
            vec![addition(json!({"type": "tool_reference", "name": "refund_order"}))],
        ),
        "refund_order",
    );
    // The tool changes a compaction carries, and a system message adding a tool.
    let mut compacted = conversation_adding(&["get_order"], vec![]);
    compacted["messages"].as_array_mut().unwrap().insert(
        0,
        json!({"role": "user", "content": [{"type": "compaction", "content": "Earlier: refunds discussed.",
            "tool_changes": [
                {"type": "tool_removal", "tool": {"type": "tool_reference", "name": "get_order"}},
                defined(function("refund_order"))]}]}),
    );
    refused(&compacted, "refund_order");
    let mut system = conversation_adding(&["get_order"], vec![]);
    system["messages"]
        .as_array_mut()
        .unwrap()
        .push(json!({"role": "system", "content": [defined(function("refund_order"))]}));
    refused(&system, "refund_order");

    // A tool the caller may use passes, as in `tools`; so do removals and MCP tools (their
    // server is judged by the data boundary).
    let docs = w.token(json!({"scope": "orders.read email.send docs.read"}));
    for body in [
        conversation_adding(&[], vec![defined(function("send_email"))]),
        conversation_adding(
            &["get_order"],
            vec![
                addition(json!({"type": "tool_reference", "name": "get_order"})),
                json!({"type": "tool_removal", "tool": {"type": "tool_reference", "name": "get_order"}}),
                addition(json!({"type": "mcp_toolset_reference", "server_name": "crm"})),
                addition(json!({"type": "mcp_tool_reference", "server_name": "crm", "name": "lookup"})),
            ],
        ),
        conversation_adding(&[], vec![defined(advisor("claude-haiku-4-5"))]),
    ] {
        let d = decide(&w, "/strip/v1/messages", &docs, &body);
        assert!(d.allowed(), "{body}: {:?}", d.denial);
        assert!(d.rewrite.is_none());
    }
    // A model an inline tool runs is held to the model lists.
    let body = conversation_adding(&[], vec![defined(advisor("claude-opus-4-7"))]);
    let denial = decide(&w, MESSAGES, &docs, &body).denial.unwrap();
    assert_eq!(
        (denial.reason, denial.message.as_str()),
        (
            Reason::ModelNotAllowed,
            "model \"claude-opus-4-7\" is not allowed for this caller (named in the conversation)"
        )
    );
    // What aigate cannot read as a tool is malformed.
    for block in [
        addition(json!({"type": "tool_blueprint", "name": "refund_order"})),
        addition(json!({"name": "refund_order"})),
        json!({"type": "tool_addition"}),
        addition(json!({"type": "tool_definition"})),
        addition(json!({"type": "tool_definition", "definition": {"input_schema": {}}})),
        json!({"type": "compaction", "tool_changes": [{"type": "tool_swap"}]}),
    ] {
        let denial = decide(&w, MESSAGES, &docs, &conversation_adding(&[], vec![block.clone()]))
            .denial
            .unwrap_or_else(|| panic!("{block} passed"));
        assert_eq!(denial.reason, Reason::BodyMalformed, "{block}");
    }
    let unknown = conversation_adding(&[], vec![addition(json!({"type": "tool_blueprint"}))]);
    assert_eq!(
        decide(&w, MESSAGES, &docs, &unknown).denial.unwrap().message,
        "a tool_addition block adds a tool of type \"tool_blueprint\", which aigate does not know and so cannot judge"
    );
}

#[test]
fn content_blocks_aigate_does_not_know_are_refused() {
    let w = llm_world();
    let t = w.token(json!({}));
    // A block type the SDK does not list may offer a tool, run a model or reach state.
    for (block, message) in [
        (
            json!({"type": "tool_grant", "tool": {"name": "refund_order"}}),
            "content block type \"tool_grant\" is not one aigate knows, so it cannot judge it",
        ),
        // Types are exact: another spelling is another type.
        (
            json!({"type": "Tool_Use", "id": "t", "name": "refund_order", "input": {}}),
            "content block type \"Tool_Use\" is not one aigate knows, so it cannot judge it",
        ),
        (json!({"text": "no type"}), "a content block needs a string type"),
        (json!({"type": 7}), "a content block needs a string type"),
    ] {
        let body = conversation_adding(&[], vec![block.clone()]);
        for route in [MESSAGES, "/strip/v1/messages"] {
            let denial = decide(&w, route, &t, &body)
                .denial
                .unwrap_or_else(|| panic!("{route}: {block} passed"));
            assert_eq!(
                (denial.reason, denial.rule.as_str(), denial.message.as_str()),
                (Reason::BodyMalformed, "anthropic_messages", message),
                "{block}"
            );
        }
    }
    let mut body = anthropic_body("claude-haiku-4-5", &[], vec![]);
    body["messages"][0]["content"] = json!({"type": "text", "text": "one block, not in an array"});
    assert_eq!(reason(&w, MESSAGES, &t, &body), Some(Reason::BodyMalformed));
    // Every block type the SDK sends (an answer's blocks included) passes.
    let known = vec![
        json!({"type": "text", "text": "hi"}),
        json!({"type": "image", "source": {"type": "url", "url": "https://example.com/a.png"}}),
        json!({"type": "document", "source": {"type": "text", "media_type": "text/plain", "data": "x"}}),
        json!({"type": "search_result", "source": "s", "title": "t", "content": [{"type": "text", "text": "x"}]}),
        json!({"type": "thinking", "thinking": "hm", "signature": "sig"}),
        json!({"type": "redacted_thinking", "data": "opaque"}),
        json!({"type": "server_tool_use", "id": "srvtoolu_1", "name": "web_search", "input": {"query": "x"}}),
        json!({"type": "web_search_tool_result", "tool_use_id": "srvtoolu_1", "content": []}),
        json!({"type": "web_fetch_tool_result", "tool_use_id": "srvtoolu_1", "content": {}}),
        json!({"type": "advisor_tool_result", "tool_use_id": "srvtoolu_1", "content": {}}),
        json!({"type": "code_execution_tool_result", "tool_use_id": "srvtoolu_1", "content": {}}),
        json!({"type": "bash_code_execution_tool_result", "tool_use_id": "srvtoolu_1", "content": {}}),
        json!({"type": "text_editor_code_execution_tool_result", "tool_use_id": "srvtoolu_1", "content": {}}),
        json!({"type": "tool_search_tool_result", "tool_use_id": "srvtoolu_1", "content": {}}),
        json!({"type": "mcp_tool_use", "id": "mcptoolu_1", "name": "lookup", "server_name": "crm", "input": {}}),
        json!({"type": "mcp_tool_result", "tool_use_id": "mcptoolu_1", "content": "ok"}),
        json!({"type": "container_upload", "file_id": null}),
        json!({"type": "compaction", "content": "summary"}),
        json!({"type": "tool_removal", "tool": {"type": "tool_reference", "name": "get_order"}}),
        json!({"type": "mcp_tool_listing", "mcp_server_name": "crm", "tools": []}),
        json!({"type": "fallback", "from": {"model": "claude-opus-4-7"}, "to": {"model": "claude-haiku-4-5"}}),
    ];
    let body = conversation_adding(&["get_order"], known);
    let d = decide(&w, MESSAGES, &t, &body);
    assert!(d.allowed(), "{:?}", d.denial);
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
fn strip_keeps_each_setting_with_its_own_list() {
    let w = llm_world();
    let t = w.token(json!({"scope": "orders.read"}));
    let h = headers_for(&w, "/strip/v1/chat/completions", Some(&t));
    // `tools` emptied, the legacy `functions` kept: tool_choice and parallel_tool_calls
    // go with `tools`, function_call stays with `functions`.
    let body = r#"{"model":"gpt-4o-mini","messages":[],"tools":[{"type":"function","function":{"name":"send_email"}}],"tool_choice":"auto","parallel_tool_calls":true,"functions":[{"name":"get_order"}],"function_call":"auto"}"#;
    let d = w.decide_raw(&h, Some(body.as_bytes()));
    assert!(d.allowed(), "{:?}", d.denial);
    assert_eq!(
        String::from_utf8(d.rewrite.unwrap()).unwrap(),
        r#"{"model":"gpt-4o-mini","messages":[],"functions":[{"name":"get_order"}],"function_call":"auto"}"#
    );
    // And the reverse.
    let body = r#"{"model":"gpt-4o-mini","messages":[],"tools":[{"type":"function","function":{"name":"get_order"}}],"tool_choice":"auto","functions":[{"name":"send_email"}],"function_call":"auto"}"#;
    let d = w.decide_raw(&h, Some(body.as_bytes()));
    assert_eq!(
        String::from_utf8(d.rewrite.unwrap()).unwrap(),
        r#"{"model":"gpt-4o-mini","messages":[],"tools":[{"type":"function","function":{"name":"get_order"}}],"tool_choice":"auto"}"#
    );
}

#[test]
fn strip_refuses_an_anthropic_conversation_left_without_tools_for_its_tool_calls() {
    // Anthropic refuses tool_use blocks without tools: the request could not be served.
    let w = llm_world();
    let t = w.token(json!({"scope": "orders.read"}));
    let h = headers_for(&w, "/strip/v1/messages", Some(&t));
    let body = json!({"model": "claude-haiku-4-5", "max_tokens": 10,
    "tools": [{"name": "send_email", "input_schema": {}}],
    "messages": [
        {"role": "user", "content": "order o-1?"},
        {"role": "assistant", "content": [{"type": "tool_use", "id": "t1", "name": "get_order", "input": {"customer_id": "c-42"}}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t1", "content": "shipped"}]}
    ]});
    let d = w.decide(&h, Some(&body));
    let denial = d.denial.expect("forwarded a conversation the provider refuses");
    assert_eq!(denial.reason, Reason::ToolOfferDenied);
    assert!(
        denial.message.starts_with("the conversation holds tool calls"),
        "{}",
        denial.message
    );
    // With a usable tool left it is served, stripped.
    let mut body = body;
    body["tools"] = json!([{"name": "send_email", "input_schema": {}}, {"name": "get_order", "input_schema": {}}]);
    let d = w.decide(&h, Some(&body));
    assert!(d.allowed() && d.rewrite.is_some(), "{:?}", d.denial);
}

#[test]
fn many_offers_are_judged_and_stripped_one_by_one() {
    // Tens of thousands of offers fit in a body: each is judged once, and stripping cuts
    // exactly the refused ones (the cost stays linear; see bench/).
    let w = llm_world();
    let t = w.token(json!({"scope": "orders.read"}));
    let h = headers_for(&w, "/strip/v1/responses", Some(&t));
    let n = 25_000;
    let mut tools: Vec<Value> = (0..n)
        .map(|i| json!({"type": "function", "name": format!("f{i}")}))
        .collect();
    tools[n / 2] = json!({"type": "function", "name": "get_order"});
    let body = json!({"model": "gpt-4o-mini", "input": "x", "tools": tools});
    let d = w.decide(&h, Some(&body));
    assert!(d.allowed(), "{:?}", d.denial);
    assert_eq!(d.refused_offers.len(), n - 1);
    let forwarded: Value = serde_json::from_slice(&d.rewrite.unwrap()).unwrap();
    assert_eq!(forwarded["tools"], json!([{"type": "function", "name": "get_order"}]));
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
        // Ids are exact: a pattern would match nothing.
        (
            &|d| d["data"]["vector_stores"] = json!([{"id": "x", "ids": ["*"], "scope": "a"}]),
            "data.vector_stores[0].ids[0]: ids are matched exactly",
        ),
        (
            &|d| d["data"]["files"] = json!([{"id": "x", "ids": ["file-{tenant}-*"], "scope": "a"}]),
            "data.files[0].ids[0]: ids are matched exactly",
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

#[test]
fn mcp_and_llm_bodies_must_be_declared_utf8_json() {
    // Express's json() decodes by the declared charset: a UTF-7 body aigate parses as one
    // call (or one model) is another to the server. MCP and LLM servers take JSON only.
    let w = llm_world();
    let t = w.token(json!({}));
    let chat = json!({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]});
    let mcp = call("get_order", json!({"customer_id": "c-42"}));
    for (path, body) in [(CHAT, &chat), ("/mcp", &mcp)] {
        let with_type = |label: Option<&str>| {
            let mut h = headers_for(&w, path, Some(&t));
            h.retain(|(k, _)| k != "content-type");
            if let Some(label) = label {
                h.push(("content-type".into(), label.as_bytes().to_vec()));
            }
            if path == "/mcp" {
                h.push(("mcp-session-id".into(), b"s-1".to_vec()));
            }
            w.decide(&h, Some(body))
        };
        for label in [
            Some("application/json; charset=utf-7"),
            Some("application/json; charset=iso-8859-1"),
            Some("text/plain"),
            Some("application/x-www-form-urlencoded"),
            Some("application/json, text/plain"),
            None,
        ] {
            let denial = with_type(label)
                .denial
                .unwrap_or_else(|| panic!("{path} {label:?} passed"));
            assert_eq!(
                (denial.reason, denial.rule.as_str()),
                (Reason::EncodingUnsupported, "content_type"),
                "{path} {label:?}"
            );
        }
        let mut twice = headers_for(&w, path, Some(&t));
        twice.push(("content-type".into(), b"application/json".to_vec()));
        assert_eq!(
            w.decide(&twice, Some(body)).denial.map(|d| d.reason),
            Some(Reason::EncodingUnsupported),
            "{path}: Content-Type twice"
        );
        for label in [
            "application/json",
            "application/json; charset=UTF-8",
            "Application/Json",
        ] {
            let d = with_type(Some(label));
            assert!(d.allowed(), "{path} {label}: {:?}", d.denial);
        }
    }
}

/// A Responses request whose conversation adds `tools` mid-way, in an item of `kind`.
fn tools_in_input(kind: &str, tools: Value) -> Value {
    let item = match kind {
        "additional_tools" => json!({"type": "additional_tools", "role": "developer", "tools": tools}),
        _ => json!({"type": "tool_search_output", "execution": "client", "call_id": "ts_1",
                    "status": "completed", "tools": tools}),
    };
    json!({"model": "gpt-4o-mini", "input": [{"role": "user", "content": "summarise the KB"}, item]})
}

#[test]
fn tools_the_conversation_adds_are_judged_and_refused_not_stripped() {
    let w = llm_world();
    let t = w.token(json!({"scope": "orders.read docs.read"}));
    for kind in ["additional_tools", "tool_search_output"] {
        // Tools the caller may use pass, on both kinds of route, unchanged.
        let fine = tools_in_input(kind, json!([resp_tool("get_order")]));
        for path in [RESPONSES, "/strip/v1/responses"] {
            let d = decide(&w, path, &t, &fine);
            assert!(d.allowed(), "{kind} {path}: {:?}", d.denial);
            assert!(d.rewrite.is_none(), "{kind} {path}");
        }
        // A function the caller may not use: refused on a deny route as tools[] would be,
        // and refused (not stripped) on a strip route.
        let body = tools_in_input(kind, json!([resp_tool("get_order"), resp_tool("refund_order")]));
        let d = decide(&w, RESPONSES, &t, &body);
        let denial = d.denial.unwrap();
        assert_eq!(
            (denial.reason, denial.rule.as_str()),
            (Reason::ToolOfferDenied, "routes.responses.tool_offers"),
            "{kind}"
        );
        assert!(denial.message.contains("\"refund_order\""), "{}", denial.message);
        assert_eq!(d.refused_offers, ["refund_order"]);
        let d = decide(&w, "/strip/v1/responses", &t, &body);
        assert!(d.rewrite.is_none(), "{kind}: nothing cut from a conversation");
        let denial = d.denial.unwrap();
        assert_eq!(
            (denial.reason, denial.rule.as_str()),
            (Reason::ToolOfferDenied, "routes.responses-strip.tool_offers"),
            "{kind}"
        );
        assert_eq!(
            denial.message,
            "the conversation offers the model \"refund_order\", which this caller may not use; \
             it cannot be stripped from the conversation"
        );
        // A hosted tool the catalogue does not grant, likewise.
        let hosted = tools_in_input(kind, json!([{"type": "web_search"}]));
        assert_eq!(
            reason(&w, "/strip/v1/responses", &t, &hosted),
            Some(Reason::ToolOfferDenied),
            "{kind}"
        );
        // Without its tools the item is not one aigate can read.
        let mut bare = tools_in_input(kind, json!([]));
        bare["input"][1].as_object_mut().unwrap().remove("tools");
        assert_eq!(reason(&w, RESPONSES, &t, &bare), Some(Reason::BodyMalformed), "{kind}");
    }
}

#[test]
fn models_a_tool_runs_are_held_to_the_allow_list() {
    let w = World::with(|p| {
        llm_policy(p);
        p["tools"]["image_generation"] = json!({"intent": "docs.read", "impact": "read", "owner": "ai@example.com"});
        p["models"]["allow"].as_array_mut().unwrap().push(json!("gpt-image-1"));
    });
    let t = w.token(json!({"scope": "orders.read docs.read"}));
    let premium = w.token(json!({"scope": "orders.read docs.read llm.premium"}));
    let draw = |tool: Value| json!({"model": "gpt-4o-mini", "input": "draw a cat", "tools": [tool]});
    let fine = draw(json!({"type": "image_generation", "model": "gpt-image-1"}));
    assert!(decide(&w, RESPONSES, &t, &fine).allowed());
    for (tool, place) in [
        (
            json!({"type": "image_generation", "model": "gpt-image-1", "output_format": "svg", "svg": {"model": "gpt-4.1"}}),
            "tools[].svg.model",
        ),
        (json!({"type": "image_generation", "model": "gpt-4.1"}), "tools[].model"),
    ] {
        let body = draw(tool.clone());
        let denial = decide(&w, RESPONSES, &t, &body).denial.unwrap();
        assert_eq!(
            (denial.reason, denial.rule.as_str()),
            (Reason::ModelNotAllowed, "models"),
            "{tool}"
        );
        assert!(denial.message.contains("\"gpt-4.1\""), "{}", denial.message);
        assert!(
            denial.message.ends_with(&format!("(named in {place})")),
            "{}",
            denial.message
        );
        // A caller whose scope grants the model may run it there too.
        assert!(decide(&w, RESPONSES, &premium, &body).allowed(), "{tool}");
    }
    // So in a tool the conversation adds.
    let added = tools_in_input(
        "additional_tools",
        json!([{"type": "image_generation", "svg": {"model": "gpt-4.1"}}]),
    );
    let denial = decide(&w, RESPONSES, &t, &added).denial.unwrap();
    assert_eq!(denial.reason, Reason::ModelNotAllowed);
    assert!(
        denial.message.ends_with("(named in input[].tools[].svg.model)"),
        "{}",
        denial.message
    );
    // A model that is not a string is not one aigate can judge.
    let odd = draw(json!({"type": "image_generation", "svg": {"model": ["gpt-4.1"]}}));
    let denial = decide(&w, RESPONSES, &premium, &odd).denial.unwrap();
    assert_eq!(
        (denial.reason, denial.message.as_str()),
        (Reason::BodyMalformed, "tools[].svg.model must be a string")
    );
}

#[test]
fn members_aigate_reads_spelled_in_another_case_are_refused_inside_the_body() {
    // Compatible servers on parsers that ignore case read "Type" as `type`: a tool offered
    // mid-conversation, a call, a tool definition judged as something else.
    let w = llm_world();
    let t = w.token(json!({"scope": "orders.read"}));
    let refund = json!({"type": "function", "name": "refund_order"});
    for (path, body) in [
        (
            RESPONSES,
            json!({"model": "gpt-4o-mini", "input": [
            {"role": "developer", "content": "tools", "Type": "additional_tools", "tools": [refund]}]}),
        ),
        (
            RESPONSES,
            json!({"model": "gpt-4o-mini", "input": [
            {"role": "assistant", "content": [], "Type": "function_call", "name": "refund_order", "arguments": "{}"}]}),
        ),
        (
            CHAT,
            json!({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}],
            "tools": [{"Type": "custom", "function": {"name": "get_order"}, "custom": {"name": "refund_order"}}]}),
        ),
    ] {
        let d = decide(&w, path, &t, &body)
            .denial
            .unwrap_or_else(|| panic!("{body} passed"));
        assert_eq!(d.reason, Reason::BodyMalformed, "{body}");
        assert!(d.message.contains("only in case"), "{}", d.message);
    }
}

#[test]
fn tools_a_namespace_groups_are_judged_by_their_own_names() {
    let w = llm_world();
    let t = w.token(json!({"scope": "orders.read"}));
    let namespace = |tools: Value| {
        json!({"model": "gpt-4o-mini", "input": "hi",
               "tools": [{"type": "namespace", "name": "crm", "description": "CRM", "tools": tools}]})
    };
    let get = json!({"type": "function", "name": "get_order", "parameters": {}});
    let refund = json!({"type": "function", "name": "refund_order", "parameters": {}});
    // Usable tools in a namespace pass, though no tool is catalogued as "namespace".
    let d = decide(&w, RESPONSES, &t, &namespace(json!([get])));
    assert!(d.allowed(), "{:?}", d.denial);
    // One the caller may not use refuses the request, on a strip route too: it cannot be
    // cut out of its group.
    for route in [RESPONSES, "/strip/v1/responses"] {
        let d = decide(&w, route, &t, &namespace(json!([get, refund])))
            .denial
            .unwrap_or_else(|| panic!("{route} passed"));
        assert_eq!(d.reason, Reason::ToolOfferDenied, "{route}");
        assert!(d.message.contains("refund_order"), "{}", d.message);
    }
}
