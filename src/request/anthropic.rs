//! Anthropic Messages (`POST /v1/messages`): `model` and the models named beside it
//! (`fallbacks`, a tool's own `model`), `tools[]` (client and server tools alike carry a
//! `name`), `tool_choice`, remote `mcp_servers[]`, the `tool_use` content blocks of
//! `messages[]` and the tools its `tool_addition` blocks (and compactions) add, and the
//! members that continue state the provider keeps (`container`, `thread`, `diagnostics`).
//! Other content (text, images, documents) is never looked at.

use super::llm::{
    self, malformed, obj, opt_array, string, LlmCall, LlmRequest, McpServer, Offer, ToolChoice, IN_CONVERSATION,
};
use crate::authz::shown;
use crate::decision::{Denial, Reason};
use crate::policy::Limits;
use serde_json::{Map, Value};
use std::collections::HashMap;

const RULE: &str = "anthropic_messages";

pub fn parse(body: &[u8], limits: &Limits) -> Result<LlmRequest, Denial> {
    let top = llm::object(body, limits, RULE)?;
    let mut r = LlmRequest::default();
    let mut model = None;
    for (key, value) in top {
        match key.as_str() {
            "model" => model = Some(string(value, RULE, "model")?),
            "stream" => r.stream = llm::stream_flag(value, RULE)?,
            "tools" => tools(&mut r, value)?,
            "tool_choice" => choice(&mut r.choice, value)?,
            "mcp_servers" => servers(&mut r, value)?,
            // A container (by id, or with stored skills) carries files and code from
            // earlier requests: state the provider keeps.
            "container" if !value.is_null() => r.provider_state.push("container"),
            "thread" => thread(&mut r, value),
            "diagnostics" => diagnostics(&mut r, value)?,
            "fallbacks" => fallbacks(&mut r, value)?,
            // OpenRouter serves this API too: its models to try, and its plugins.
            "models" => llm::router_models(&mut r, value, "models", RULE)?,
            "plugins" => llm::plugins(&mut r, value, RULE)?,
            // An OpenRouter preset the router keeps: a model, fallbacks, a system prompt
            // and tools of its own, none of them in the body.
            "preset" if !value.is_null() => r.provider_state.push("preset"),
            "messages" => {
                llm::collect_files(&value, &mut r.files, RULE)?;
                messages(&mut r, value)?
            }
            other => crate::request::refuse_miscased(other, &READ, RULE)?,
        }
    }
    r.model = model.ok_or_else(|| malformed(RULE, "model is required"))?;
    llm::router_features(&mut r);
    Ok(r)
}

/// The top-level members aigate reads.
const READ: [&str; 13] = [
    "model",
    "preset",
    "fallbacks",
    "models",
    "plugins",
    "stream",
    "tools",
    "tool_choice",
    "mcp_servers",
    "container",
    "thread",
    "diagnostics",
    "messages",
];

/// A thread the provider holds: `{"type": "continue", "previous_message_id": …}` resumes a
/// conversation whose earlier turns (and their tool calls) are not in the body, and may be
/// anyone's. Only `{"type": "create"}`, which starts one from what this body holds, is no
/// such state; any other shape is taken as continuing one.
fn thread(r: &mut LlmRequest, v: Value) {
    let creates = |m: &Map<String, Value>| {
        m.get("type").and_then(Value::as_str) == Some("create")
            && m.get("previous_message_id").is_none_or(Value::is_null)
    };
    match v {
        Value::Null => {}
        Value::Object(m) if creates(&m) => {}
        _ => r.provider_state.push("thread"),
    }
}

/// `diagnostics.previous_message_id` makes the provider compare this request with another
/// one it keeps (and report how their prompts differ), whoever sent it.
fn diagnostics(r: &mut LlmRequest, v: Value) -> Result<(), Denial> {
    match v {
        Value::Null => {}
        Value::Object(m) => {
            if m.get("previous_message_id").is_some_and(|id| !id.is_null()) {
                r.provider_state.push("diagnostics.previous_message_id");
            }
        }
        _ => return Err(malformed(RULE, "diagnostics must be an object")),
    }
    Ok(())
}

fn name(m: &mut Map<String, Value>, what: &str) -> Result<String, Denial> {
    llm::opt_string(m, "name", RULE)?.ok_or_else(|| malformed(RULE, format!("{what} needs a name")))
}

fn tools(r: &mut LlmRequest, v: Value) -> Result<(), Denial> {
    for (index, t) in opt_array(Some(v), RULE, "tools")?.into_iter().enumerate() {
        offer(r, obj(t, RULE, "a tool")?, "tools", index)?;
    }
    Ok(())
}

/// One tool definition offered to the model, as a `tools` entry holds it: catalogued by
/// its name, and a model of its own held to the model lists.
fn offer(r: &mut LlmRequest, mut t: Map<String, Value>, list: &'static str, index: usize) -> Result<(), Denial> {
    // A tool that runs a model of its own (the advisor) puts the conversation before it.
    match t.remove("model") {
        None | Some(Value::Null) => {}
        Some(Value::String(model)) => r.other_models.push((model, list)),
        Some(_) => return Err(malformed(RULE, "a tool's model must be a string")),
    }
    // An MCP toolset exposes a server of `mcp_servers`, judged by the data boundary.
    if t.get("type").and_then(Value::as_str) == Some("mcp_toolset") {
        return Ok(());
    }
    let name = match (
        llm::opt_string(&mut t, "name", RULE)?,
        t.get("type").and_then(Value::as_str),
    ) {
        (Some(name), _) => name,
        // A server toolset offered without a name (`computer_toolset_…`) is catalogued by
        // its type, as OpenAI's hosted tools are.
        (None, Some(kind)) if kind != "custom" => kind.to_string(),
        (None, _) => return Err(malformed(RULE, "a tool needs a name")),
    };
    r.offers.push(Offer { name, list, index });
    Ok(())
}

/// `fallbacks`: models the provider retries the request on when the model declines. Each
/// is held to the model lists like `model`; `"default"` (the provider's own choice, as the
/// whole member or an entry's model) names no model aigate could judge, and is refused.
fn fallbacks(r: &mut LlmRequest, v: Value) -> Result<(), Denial> {
    let unjudged = || {
        Denial::new(
            Reason::ModelNotAllowed,
            "models",
            "fallbacks \"default\" lets the provider choose the models to fall back on, which aigate \
             cannot judge: name each fallback model",
        )
    };
    let entries = match v {
        Value::Null => return Ok(()),
        Value::String(s) if s == "default" => return Err(unjudged()),
        Value::Array(entries) => entries,
        _ => return Err(malformed(RULE, "fallbacks must be an array of models or \"default\"")),
    };
    for e in entries {
        let mut e = obj(e, RULE, "a fallbacks entry")?;
        match llm::opt_string(&mut e, "model", RULE)? {
            Some(m) if m == "default" => return Err(unjudged()),
            Some(m) => r.other_models.push((m, "fallbacks")),
            // A provider that filled in a model of its choosing would run one unjudged.
            None => return Err(malformed(RULE, "a fallbacks entry needs a model")),
        }
    }
    Ok(())
}

fn choice(c: &mut ToolChoice, v: Value) -> Result<(), Denial> {
    let mut m = obj(v, RULE, "tool_choice")?;
    match llm::opt_string(&mut m, "type", RULE)?.as_deref() {
        Some("tool") => {
            c.names.push(name(&mut m, "tool_choice")?);
            c.forces = true;
        }
        Some("any") => c.forces = true,
        _ => {}
    }
    Ok(())
}

fn servers(r: &mut LlmRequest, v: Value) -> Result<(), Denial> {
    for s in opt_array(Some(v), RULE, "mcp_servers")? {
        let mut s = obj(s, RULE, "an MCP server")?;
        let url = llm::opt_string(&mut s, "url", RULE)?.ok_or_else(|| malformed(RULE, "an MCP server needs a url"))?;
        // The MCP connector runs the server's tools itself, never asking first.
        r.mcp_servers.push(McpServer::Url { url, asks: false });
    }
    Ok(())
}

/// The content block types of `messages[]` aigate knows: the SDK's request blocks, and the
/// answer's blocks a client sends back. `tool_use` and `tool_addition` (and a compaction's
/// tool changes) are judged; the rest carry nothing to judge: content, thinking, the
/// provider's own tool calls and results, markers. Any other type is refused: a new kind
/// of block may offer a tool, run a model or reach state, and must not pass unjudged.
const KNOWN_BLOCKS: [&str; 24] = [
    "text",
    "image",
    "document",
    "search_result",
    "thinking",
    "redacted_thinking",
    "tool_use",
    "tool_result",
    "server_tool_use",
    "web_search_tool_result",
    "web_fetch_tool_result",
    "advisor_tool_result",
    "code_execution_tool_result",
    "bash_code_execution_tool_result",
    "text_editor_code_execution_tool_result",
    "tool_search_tool_result",
    "mcp_tool_use",
    "mcp_tool_result",
    "container_upload",
    "compaction",
    "tool_addition",
    "tool_removal",
    "mcp_tool_listing",
    "fallback",
];

fn messages(r: &mut LlmRequest, v: Value) -> Result<(), Denial> {
    // Calls by turn: consecutive assistant messages are one turn, as the provider merges
    // them; only the last turn's calls are new.
    let mut turns = Vec::new();
    let (mut turn, mut last_turn, mut in_assistant) = (0, None, false);
    // The provider's own tool calls (`server_tool_use`, `mcp_tool_use`) of the last turn,
    // answered or not: one left without its result is run by the provider on this request
    // (a paused turn goes on), with the input the client sent.
    let mut provider_calls: Vec<ProviderCall> = Vec::new();
    // Each of them by its id, so that a turn of thousands is checked for a repeated id
    // and matched with its results without comparing every pair.
    let mut by_id: HashMap<String, usize> = HashMap::new();
    for m in llm::array(v, RULE, "messages")? {
        let mut m = obj(m, RULE, "a message")?;
        let assistant = m.get("role").and_then(Value::as_str) == Some("assistant");
        if assistant && !in_assistant {
            turn += 1;
            last_turn = Some(turn);
            // A later turn: what was pending before it is the provider's history.
            provider_calls.clear();
            by_id.clear();
        }
        in_assistant = assistant;
        let blocks = match m.remove("content") {
            Some(Value::Array(blocks)) => blocks,
            None | Some(Value::Null | Value::String(_)) => continue,
            Some(_) => {
                return Err(malformed(
                    RULE,
                    "a message's content must be a string or an array of blocks",
                ))
            }
        };
        for b in blocks {
            let mut b = obj(b, RULE, "a content block")?;
            match b.get("type").and_then(Value::as_str) {
                Some("tool_use") => {
                    r.calls.push(tool_use(b)?);
                    turns.push(turn);
                }
                Some(kind @ ("server_tool_use" | "mcp_tool_use")) if assistant => {
                    if let Some(id) = b.get("id").and_then(Value::as_str) {
                        if by_id.insert(id.to_string(), provider_calls.len()).is_some() {
                            return Err(malformed(RULE, "two provider tool calls of one turn share an id"));
                        }
                    }
                    provider_calls.push(ProviderCall {
                        mcp: kind == "mcp_tool_use",
                        block: b,
                        answered: false,
                    });
                }
                Some("tool_addition") => tool_addition(r, b)?,
                // A compaction carries the tool changes of the turns it replaces.
                Some("compaction") => {
                    for c in opt_array(b.remove("tool_changes"), RULE, "a compaction block's tool_changes")? {
                        let c = obj(c, RULE, "a tool change")?;
                        match c.get("type").and_then(Value::as_str) {
                            Some("tool_addition") => tool_addition(r, c)?,
                            Some("tool_removal") => {}
                            _ => {
                                return Err(malformed(
                                    RULE,
                                    "a compaction block's tool_changes holds only tool_addition and tool_removal",
                                ))
                            }
                        }
                    }
                }
                Some(kind) if KNOWN_BLOCKS.contains(&kind) => {
                    // A provider tool's result answers its call when it follows it in the
                    // same turn, of the call's kind (an MCP server's, or a server tool's).
                    if assistant && kind.ends_with("_tool_result") && kind != "tool_result" {
                        let id = b.get("tool_use_id").and_then(Value::as_str);
                        let mcp = kind == "mcp_tool_result";
                        let call = id.and_then(|id| by_id.get(id)).and_then(|k| provider_calls.get_mut(*k));
                        if let Some(c) = call.filter(|c| c.mcp == mcp) {
                            c.answered = true;
                        }
                    }
                }
                Some(kind) => {
                    return Err(malformed(
                        RULE,
                        format!(
                            "content block type {} is not one aigate knows, so it cannot judge it",
                            shown(kind)
                        ),
                    ))
                }
                None => return Err(malformed(RULE, "a content block needs a string type")),
            }
        }
    }
    // What is left is the last turn's (a user message after it does not say it ran).
    for c in provider_calls.into_iter().filter(|c| !c.answered) {
        r.calls.push(tool_use(c.block)?);
        turns.push(turn);
    }
    llm::mark_latest(&mut r.calls, &turns, last_turn);
    Ok(())
}

/// A `server_tool_use` or `mcp_tool_use` block of the last turn.
struct ProviderCall {
    mcp: bool,
    block: Map<String, Value>,
    answered: bool,
}

/// A `tool_addition` block offers the model a tool from this point of the conversation on:
/// defined inline (`tool_definition`, a `tools` entry) or named (`tool_reference`, a tool of
/// `tools` or one defined earlier). Either is judged as an offer that cannot be stripped,
/// since cutting it would rewrite the conversation. MCP tools come from a server of
/// `mcp_servers`, judged by the data boundary.
fn tool_addition(r: &mut LlmRequest, mut b: Map<String, Value>) -> Result<(), Denial> {
    let mut tool = obj(
        b.remove("tool").unwrap_or(Value::Null),
        RULE,
        "a tool_addition block's tool",
    )?;
    match llm::opt_string(&mut tool, "type", RULE)?.as_deref() {
        Some("tool_definition") => {
            let definition = obj(
                tool.remove("definition").unwrap_or(Value::Null),
                RULE,
                "a tool_definition's definition",
            )?;
            offer(r, definition, IN_CONVERSATION, 0)
        }
        Some("tool_reference") => {
            let name = name(&mut tool, "a tool_reference")?;
            r.offers.push(Offer {
                name,
                list: IN_CONVERSATION,
                index: 0,
            });
            Ok(())
        }
        Some("mcp_tool_reference" | "mcp_toolset_reference") => Ok(()),
        Some(other) => Err(malformed(
            RULE,
            format!(
                "a tool_addition block adds a tool of type {}, which aigate does not know and so cannot judge",
                shown(other)
            ),
        )),
        None => Err(malformed(RULE, "a tool_addition block's tool needs a type")),
    }
}

/// A `tool_use` content block: `{"name": …, "input": {…}}`.
pub(crate) fn tool_use(mut b: Map<String, Value>) -> Result<LlmCall, Denial> {
    let name = name(&mut b, "a tool_use block")?;
    let arguments = match b.remove("input") {
        Some(v @ Value::Object(_)) => v,
        _ => return Err(malformed(RULE, "a tool_use block needs an object input")),
    };
    Ok(LlmCall {
        name,
        arguments,
        latest: false,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn limits() -> Limits {
        Limits::for_tests()
    }

    #[test]
    fn extracts_tools_servers_and_tool_use() {
        let body = json!({
            "model": "claude-sonnet-4-5", "max_tokens": 1024, "system": [{"type": "text", "text": "Be brief."}],
            "tools": [
                {"name": "get_order", "input_schema": {"type": "object"}},
                {"type": "web_search_20250305", "name": "web_search", "max_uses": 3},
                {"type": "mcp_toolset", "mcp_server_name": "crm"}
            ],
            "mcp_servers": [{"type": "url", "url": "https://mcp.example.com/acme/", "name": "crm"}],
            "tool_choice": {"type": "tool", "name": "get_order"},
            "messages": [
                {"role": "user", "content": "hi"},
                {"role": "assistant", "content": [{"type": "text", "text": "ok"}, {"type": "tool_use", "id": "a", "name": "get_order", "input": {}}]},
                {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "a", "content": "{}"}, {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": ""}}]},
                {"role": "assistant", "content": [{"type": "tool_use", "id": "b", "name": "send_email", "input": {"to": "x"}}, {"type": "tool_use", "id": "c", "name": "get_order", "input": {}}]},
                {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "b"}, {"type": "tool_result", "tool_use_id": "c"}]}
            ]
        });
        let r = parse(body.to_string().as_bytes(), &limits()).unwrap();
        let offered: Vec<_> = r.offers.iter().map(|o| (o.name.as_str(), o.index)).collect();
        assert_eq!(offered, [("get_order", 0), ("web_search", 1)]);
        assert_eq!(
            r.mcp_servers,
            [McpServer::Url {
                url: "https://mcp.example.com/acme/".into(),
                asks: false
            }]
        );
        assert_eq!(
            r.choice,
            ToolChoice {
                names: vec!["get_order".into()],
                forces: true
            }
        );
        let calls: Vec<_> = r.calls.iter().map(|c| (c.name.as_str(), c.latest)).collect();
        assert_eq!(calls, [("get_order", false), ("send_email", true), ("get_order", true)]);
    }

    #[test]
    fn malformed_shapes() {
        for body in [
            json!({"messages": []}),
            json!({"model": "m", "tools": [{"input_schema": {}}]}),
            json!({"model": "m", "tool_choice": "auto"}),
            json!({"model": "m", "mcp_servers": [{"type": "url"}]}),
            json!({"model": "m", "messages": [{"role": "assistant", "content": [{"type": "tool_use", "name": "x", "input": "{}"}]}]}),
            json!({"model": "m", "messages": [{"role": "assistant", "content": [3]}]}),
            json!({"model": "m", "messages": [{"role": "user", "content": [{"type": "future_block"}]}]}),
            json!({"model": "m", "messages": [{"role": "user", "content": [{"text": "untyped"}]}]}),
            json!({"model": "m", "messages": [{"role": "user", "content": {"type": "text", "text": "x"}}]}),
            json!({"model": "m", "fallbacks": [{"max_tokens": 1}]}),
            json!({"model": "m", "diagnostics": "msg_1"}),
        ] {
            let e = parse(body.to_string().as_bytes(), &limits()).unwrap_err();
            assert_eq!(e.reason, Reason::BodyMalformed, "{body}");
        }
    }

    #[test]
    fn a_nameless_server_toolset_is_catalogued_by_its_type() {
        let body = serde_json::json!({"model": "m", "max_tokens": 1, "messages": [],
            "tools": [{"type": "computer_toolset_20260801"}, {"name": "get_order", "input_schema": {}}]});
        let r = parse(body.to_string().as_bytes(), &Limits::for_tests()).unwrap();
        let names: Vec<&str> = r.offers.iter().map(|o| o.name.as_str()).collect();
        assert_eq!(names, ["computer_toolset_20260801", "get_order"]);
        for nameless in [
            serde_json::json!({"input_schema": {}}),
            serde_json::json!({"type": "custom"}),
        ] {
            let body = serde_json::json!({"model": "m", "max_tokens": 1, "messages": [], "tools": [nameless]});
            let e = parse(body.to_string().as_bytes(), &Limits::for_tests()).unwrap_err();
            assert_eq!(e.reason, crate::decision::Reason::BodyMalformed, "{body}");
        }
    }
}
