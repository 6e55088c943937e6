//! OpenAI Chat Completions (`POST /v1/chat/completions`): `model`, `tools[]` (and the
//! legacy `functions[]`), `web_search_options` (an offer of the hosted `web_search`),
//! `tool_choice` (and the legacy `function_call`), and `messages[].tool_calls` (and the
//! legacy `function_call`). Content (text, images, audio) is never looked at.

use super::llm::{self, malformed, obj, opt_array, string, LlmCall, LlmRequest, Offer, ToolChoice, WEB_SEARCH};
use crate::decision::{Denial, Reason};
use crate::policy::Limits;
use serde_json::{Map, Value};

const RULE: &str = "openai_chat";

pub fn parse(body: &[u8], limits: &Limits) -> Result<LlmRequest, Denial> {
    let top = llm::object(body, limits, RULE)?;
    let mut r = LlmRequest::default();
    let mut model = None;
    for (key, value) in top {
        match key.as_str() {
            "model" => model = Some(string(value, RULE, "model")?),
            "stream" => r.stream = llm::stream_flag(value, RULE)?,
            "tools" => offers(&mut r, value, "tools", tool_name)?,
            "functions" => offers(&mut r, value, "functions", |f| legacy_name(f, "a functions entry"))?,
            "tool_choice" => choice(&mut r.choice, value)?,
            "models" => llm::router_models(&mut r, value, "models", RULE)?,
            "fallbacks" => llm::router_models(&mut r, value, "fallbacks", RULE)?,
            "function_call" => function_choice(&mut r.choice, value)?,
            "web_search_options" => web_search(&mut r, value)?,
            "plugins" => llm::plugins(&mut r, value, RULE)?,
            // An OpenRouter preset the router keeps: a model, fallbacks, a system prompt
            // and tools of its own, none of them in the body.
            "preset" if !value.is_null() => r.provider_state.push("preset"),
            // Azure OpenAI "On Your Data": the provider retrieves from a search index or
            // store of its own choosing (with the resource's identity), which no `data`
            // rule describes. A retrieval store aigate cannot judge is outside the boundary.
            "data_sources" | "dataSources" if !is_empty(&value) => {
                return Err(Denial::new(
                    Reason::DataBoundary,
                    "openai_chat.data_sources",
                    format!(
                        "{key} has the provider retrieve from data sources (Azure OpenAI On Your Data) that aigate \
                         cannot judge against the caller's data boundary: retrieve in the application, or use file_search \
                         on the Responses API with a store a data.vector_stores rule names"
                    ),
                ))
            }
            "messages" => {
                llm::collect_files(&value, &mut r.files, RULE)?;
                messages(&mut r, value, limits)?
            }
            other => crate::request::refuse_miscased(other, &READ, RULE)?,
        }
    }
    r.model = model.ok_or_else(|| malformed(RULE, "model is required"))?;
    // Search models search the web on every request, `web_search_options` or not: the
    // model is an offer of the hosted tool, one that stripping cannot take away.
    if is_search_model(&r.model) {
        llm::offer_web_search_by_model(&mut r);
    }
    llm::router_features(&mut r);
    Ok(r)
}

/// `null` or `[]`: no data source.
fn is_empty(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::Array(a) => a.is_empty(),
        _ => false,
    }
}

/// OpenAI's search models (`gpt-4o-search-preview`, `gpt-5-search-api` and their dated
/// snapshots).
fn is_search_model(model: &str) -> bool {
    let m = model.to_ascii_lowercase();
    m.contains("-search-preview") || m.contains("-search-api")
}

/// The name in a tool, a forced choice or an allowed-tools entry: `{"type": "function",
/// "function": {"name": …}}`, `{"type": "custom", "custom": {"name": …}}`, the legacy
/// `{"name": …}`, or for other types the type itself.
fn tool_name(mut t: Map<String, Value>) -> Result<String, Denial> {
    let inner = match kind(&mut t, "a tool")? {
        Kind::Function => "function",
        Kind::Custom => "custom",
        Kind::Unsaid => {
            return llm::opt_string(&mut t, "name", RULE)?.ok_or_else(|| malformed(RULE, "a tool needs a name"))
        }
        Kind::Other(other) => return Ok(other),
    };
    // OpenAI reads the name inside the definition; compatible servers that flatten tools
    // read a top-level one. Carrying both, a tool could be judged as one and run as another.
    if t.contains_key("name") {
        return Err(malformed(
            RULE,
            format!("a {inner} tool is named inside its {inner} member, not also at the top level"),
        ));
    }
    let mut inner = obj(t.remove(inner).unwrap_or(Value::Null), RULE, "a tool's definition")?;
    llm::opt_string(&mut inner, "name", RULE)?.ok_or_else(|| malformed(RULE, "a tool needs a name"))
}

/// What a tool or a tool call is.
enum Kind {
    Function,
    Custom,
    /// Another type, named.
    Other(String),
    /// No type and no definition: a legacy entry.
    Unsaid,
}

/// What a tool or a tool call (`what`) is, as the SDKs read it: its `type`, or else the
/// `function` or `custom` member it carries (`null` says nothing). One that says two
/// things (both members, or a type and another kind's member) could be offered or run as
/// either by clients that dispatch on the member they find: refused.
fn kind(t: &mut Map<String, Value>, what: &str) -> Result<Kind, Denial> {
    let declared = llm::opt_string(t, "type", RULE)?;
    let has = |member: &str| t.get(member).is_some_and(|v| !v.is_null());
    let (function, custom) = (has("function"), has("custom"));
    let kind = match declared {
        Some(d) if d == "function" && !custom => Kind::Function,
        Some(d) if d == "custom" && !function => Kind::Custom,
        Some(d) if d != "function" && d != "custom" && !function && !custom => Kind::Other(d),
        None if function && !custom => Kind::Function,
        None if custom && !function => Kind::Custom,
        None if !function && !custom => Kind::Unsaid,
        _ => {
            return Err(malformed(
                RULE,
                format!(
                "{what} says it is two kinds of tool (its type, function, custom): clients could take it for either"
            ),
            ))
        }
    };
    Ok(kind)
}

/// Each entry of the top-level array `list` (`tools`, or the legacy `functions`) is an
/// offer, named by `name_of`.
fn offers(
    r: &mut LlmRequest,
    v: Value,
    list: &'static str,
    name_of: impl Fn(Map<String, Value>) -> Result<String, Denial>,
) -> Result<(), Denial> {
    for (index, t) in opt_array(Some(v), RULE, list)?.into_iter().enumerate() {
        let name = name_of(obj(t, RULE, "a tool")?)?;
        r.offers.push(Offer { name, list, index });
    }
    Ok(())
}

/// The name of a legacy function definition or `function_call` choice: `{"name": …}`,
/// nothing else. The provider reads the top-level `name`, so an entry that also carries
/// a `function` member (whose name would differ) is refused rather than guessed at.
fn legacy_name(mut f: Map<String, Value>, what: &str) -> Result<String, Denial> {
    if f.contains_key("function") {
        return Err(malformed(
            RULE,
            format!("{what} takes a top-level name, not a function member"),
        ));
    }
    llm::opt_string(&mut f, "name", RULE)?.ok_or_else(|| malformed(RULE, format!("{what} needs a name")))
}

/// Legacy `function_call` choice: `"none"`, `"auto"` or `{"name": …}` (forces that call).
fn function_choice(c: &mut ToolChoice, v: Value) -> Result<(), Denial> {
    match v {
        Value::String(_) | Value::Null => {}
        Value::Object(m) => {
            c.names.push(legacy_name(m, "function_call")?);
            c.forces = true;
        }
        _ => return Err(malformed(RULE, "function_call must be a string or an object")),
    }
    Ok(())
}

/// `web_search_options` turns on the provider's hosted web search with no `tools[]`
/// entry: an offer of the hosted tool `web_search` (`strip` removes the whole member).
fn web_search(r: &mut LlmRequest, v: Value) -> Result<(), Denial> {
    match v {
        Value::Null => {}
        Value::Object(_) => {
            r.offers.push(Offer {
                name: WEB_SEARCH.to_string(),
                list: "web_search_options",
                index: 0,
            });
        }
        _ => return Err(malformed(RULE, "web_search_options must be an object")),
    }
    Ok(())
}

fn choice(c: &mut ToolChoice, v: Value) -> Result<(), Denial> {
    match v {
        Value::String(s) => c.forces |= s == "required",
        Value::Object(mut m) => {
            if m.get("type").and_then(Value::as_str) == Some("allowed_tools") {
                let mut allowed = obj(m.remove("allowed_tools").unwrap_or(Value::Null), RULE, "allowed_tools")?;
                c.forces |= allowed.get("mode").and_then(Value::as_str) == Some("required");
                for t in opt_array(allowed.remove("tools"), RULE, "allowed_tools.tools")? {
                    c.names.push(tool_name(obj(t, RULE, "an allowed tool")?)?);
                }
            } else {
                c.names.push(tool_name(m)?);
                c.forces = true;
            }
        }
        Value::Null => {}
        _ => return Err(malformed(RULE, "tool_choice must be a string or an object")),
    }
    Ok(())
}

/// The top-level members aigate reads.
const READ: [&str; 14] = [
    "model",
    "preset",
    "models",
    "fallbacks",
    "data_sources",
    "dataSources",
    "stream",
    "tools",
    "functions",
    "tool_choice",
    "function_call",
    "web_search_options",
    "plugins",
    "messages",
];

/// The members of a message aigate reads.
const MESSAGE_READ: [&str; 5] = ["role", "content", "tool_calls", "function_call", "audio"];

fn messages(r: &mut LlmRequest, v: Value, limits: &Limits) -> Result<(), Denial> {
    let mut turns = Vec::new();
    let mut last_turn = None;
    for (i, m) in llm::array(v, RULE, "messages")?.into_iter().enumerate() {
        let mut m = obj(m, RULE, "a message")?;
        for key in m.keys() {
            crate::request::refuse_miscased(key, &MESSAGE_READ, RULE)?;
        }
        // An earlier audio answer named by id is kept by the provider, not in the request.
        if m.get("audio").and_then(|a| a.get("id")).is_some_and(|id| !id.is_null())
            && !r.provider_state.contains(&"messages[].audio.id")
        {
            r.provider_state.push("messages[].audio.id");
        }
        // Each assistant message is one model turn; only the last one's calls are new.
        if m.get("role").and_then(Value::as_str) == Some("assistant") {
            last_turn = Some(i);
        }
        for call in opt_array(m.remove("tool_calls"), RULE, "tool_calls")? {
            r.calls.push(tool_call(obj(call, RULE, "a tool call")?, limits)?);
            turns.push(i);
        }
        if let Some(f) = m.remove("function_call").filter(|f| !f.is_null()) {
            r.calls.push(function(obj(f, RULE, "function_call")?, limits)?);
            turns.push(i);
        }
    }
    llm::mark_latest(&mut r.calls, &turns, last_turn);
    Ok(())
}

pub(crate) fn tool_call(mut c: Map<String, Value>, limits: &Limits) -> Result<LlmCall, Denial> {
    match kind(&mut c, "a tool call")? {
        Kind::Function | Kind::Unsaid => function(
            obj(
                c.remove("function").unwrap_or(Value::Null),
                RULE,
                "a tool call's function",
            )?,
            limits,
        ),
        Kind::Custom => {
            let mut custom = obj(c.remove("custom").unwrap_or(Value::Null), RULE, "a custom tool call")?;
            let name = llm::opt_string(&mut custom, "name", RULE)?
                .ok_or_else(|| malformed(RULE, "a tool call needs a name"))?;
            let input = llm::opt_string(&mut custom, "input", RULE)?.unwrap_or_default();
            Ok(LlmCall {
                name,
                arguments: llm::text_arguments(input),
                latest: false,
            })
        }
        Kind::Other(other) => Err(malformed(RULE, format!("unknown tool call type {other:?}"))),
    }
}

/// `{"name": …, "arguments": "<JSON text>"}`
pub(crate) fn function(mut f: Map<String, Value>, limits: &Limits) -> Result<LlmCall, Denial> {
    let name = llm::opt_string(&mut f, "name", RULE)?.ok_or_else(|| malformed(RULE, "a tool call needs a name"))?;
    let args = llm::opt_string(&mut f, "arguments", RULE)?
        .ok_or_else(|| malformed(RULE, "a tool call needs its arguments"))?;
    let arguments = llm::json_arguments(&args, limits, RULE)?;
    Ok(LlmCall {
        name,
        arguments,
        latest: false,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decision::Reason;
    use serde_json::json;

    fn limits() -> Limits {
        Limits::for_tests()
    }

    #[test]
    fn extracts_model_offers_and_calls() {
        let body = json!({
            "model": "gpt-4o", "stream": true, "temperature": 0.2,
            "tools": [
                {"type": "function", "function": {"name": "get_order", "parameters": {"type": "object"}}},
                {"type": "custom", "custom": {"name": "grep"}}
            ],
            "functions": [{"name": "legacy"}],
            "tool_choice": {"type": "function", "function": {"name": "get_order"}},
            "messages": [
                {"role": "system", "content": "Be brief."},
                {"role": "user", "content": [{"type": "text", "text": "hi"}, {"type": "image_url", "image_url": {"url": "data:,"}}]},
                {"role": "assistant", "tool_calls": [{"id": "a", "type": "function", "function": {"name": "get_order", "arguments": "{\"customer_id\":\"c-1\"}"}}]},
                {"role": "tool", "tool_call_id": "a", "content": "{}"},
                {"role": "assistant", "content": null, "tool_calls": [
                    {"id": "b", "type": "function", "function": {"name": "send\u{5f}email", "arguments": "{}"}},
                    {"id": "c", "type": "custom", "custom": {"name": "grep", "input": "x"}}
                ]}
            ]
        });
        let r = parse(body.to_string().as_bytes(), &limits()).unwrap();
        assert_eq!(r.model, "gpt-4o");
        assert!(r.stream);
        let offered: Vec<_> = r.offers.iter().map(|o| (o.name.as_str(), o.list, o.index)).collect();
        assert_eq!(
            offered,
            [
                ("legacy", "functions", 0),
                ("get_order", "tools", 0),
                ("grep", "tools", 1)
            ]
        );
        assert_eq!(
            r.choice,
            ToolChoice {
                names: vec!["get_order".into()],
                forces: true
            }
        );
        let calls: Vec<_> = r.calls.iter().map(|c| (c.name.as_str(), c.latest)).collect();
        assert_eq!(calls, [("get_order", false), ("send_email", true), ("grep", true)]);
        assert_eq!(r.calls[0].arguments, json!({"customer_id": "c-1"}));
        assert_eq!(r.calls[2].arguments, json!({"input": "x"}));
    }

    #[test]
    fn malformed_shapes() {
        for body in [
            json!({"messages": []}),
            json!({"model": 4, "messages": []}),
            json!({"model": "m", "stream": "yes"}),
            json!({"model": "m", "tools": {}}),
            json!({"model": "m", "tools": [{"type": "function", "function": {}}]}),
            json!({"model": "m", "messages": [{"role": "assistant", "tool_calls": [{"type": "function", "function": {"name": "x", "arguments": "{\"a\":1,\"a\":2}"}}]}]}),
            json!({"model": "m", "messages": [{"role": "assistant", "tool_calls": [{"type": "function", "function": {"name": "x", "arguments": "[1]"}}]}]}),
            json!({"model": "m", "messages": [{"role": "assistant", "tool_calls": [{"type": "function", "function": {"name": "x", "arguments": {"a": 1}}}]}]}),
            json!({"model": "m", "messages": [{"role": "assistant", "tool_calls": [{"type": "shell"}]}]}),
            json!({"model": "m", "tool_choice": 3}),
        ] {
            let e = parse(body.to_string().as_bytes(), &limits()).unwrap_err();
            assert_eq!(e.reason, Reason::BodyMalformed, "{body}");
        }
    }
}
