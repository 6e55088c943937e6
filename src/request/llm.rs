//! What an LLM API request asks for, whatever the provider: the model, the tools offered
//! to it, the tool calls already in the conversation, and the data it may reach. The
//! per-provider modules fill this in one pass over the parsed body.

use crate::decision::{Denial, Reason};
use crate::policy::Limits;
use serde_json::{Map, Value};

#[derive(Debug, Clone, Default, PartialEq)]
pub struct LlmRequest {
    pub model: String,
    /// Other models the request may run (fallbacks, a tool's own model), each with where
    /// it is named: held to the same allow-list as `model`.
    pub other_models: Vec<(String, &'static str)>,
    pub stream: bool,
    /// Tools offered to the model that the catalogue judges (functions, custom and
    /// hosted tools); data tools (`file_search`, `mcp`) are judged by the data boundary.
    pub offers: Vec<Offer>,
    pub choice: ToolChoice,
    /// Tool calls already in the conversation, in order.
    pub calls: Vec<LlmCall>,
    /// Retrieval stores named by `file_search` tools.
    pub vector_stores: Vec<String>,
    /// Remote MCP servers the provider is asked to call.
    pub mcp_servers: Vec<McpServer>,
    /// Files stored at the provider that the request puts before the model, by id.
    pub files: Vec<String>,
    /// Members that continue state the provider keeps (`previous_response_id`, …): what
    /// they stand for is not in the body, so aigate cannot judge it.
    pub provider_state: Vec<&'static str>,
    /// Remote MCP calls this request approves (Responses `mcp_approval_response`): the
    /// provider runs each one on receiving the approval, so they are actions taken now.
    pub approved_remote: Vec<LlmCall>,
    /// An approval names a request the body does not hold (the provider keeps it), so the
    /// call it lets the provider run cannot be judged.
    pub approves_unseen: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Offer {
    /// Catalogue name: the function's or tool's name, or the type of a hosted tool
    /// that has none (`web_search_preview`).
    pub name: String,
    /// The top-level array holding it (`tools`, or the legacy `functions`), or the
    /// top-level member that turns it on (Chat `web_search_options`, cut whole by `strip`),
    /// or `IN_CONVERSATION` for a tool the conversation itself adds (it cannot be cut),
    /// or `"model"` for a model that is the offer.
    pub list: &'static str,
    /// Index in that array.
    pub index: usize,
}

/// The `list` of a tool offered inside the conversation (an item or block that adds
/// tools mid-conversation): refused, never stripped, when the caller may not use it.
pub const IN_CONVERSATION: &str = "the conversation";

/// The `list` of a tool a Responses `namespace` tool groups: refused, never stripped, when
/// the caller may not use it (it cannot be cut out of its group).
pub const IN_NAMESPACE: &str = "a namespace";

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ToolChoice {
    /// Tools the choice names: a forced tool or an `allowed_tools` list.
    pub names: Vec<String>,
    /// The choice demands some tool call (`required`, `any`, a named tool).
    pub forces: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub struct LlmCall {
    pub name: String,
    /// Always an object.
    pub arguments: Value,
    /// The call belongs to the model's most recent turn in the conversation.
    pub latest: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum McpServer {
    /// A server by URL. `asks`: the provider asks the client to approve every call before
    /// running it (so each comes back to be judged), rather than running calls unseen.
    Url { url: String, asks: bool },
    /// A provider-hosted connector named by id, with no URL to judge.
    Connector(String),
}

/// Top-level settings a provider refuses once their list is gone, with that list:
/// removed with its last tool.
pub const TOOL_SETTINGS: [(&str, &str); 3] = [
    ("tool_choice", "tools"),
    ("parallel_tool_calls", "tools"),
    ("function_call", "functions"),
];

/// Collects the provider-stored files a part of the request names: every `file_id` string
/// and `file_ids` array at any depth (content parts nest, in tool results too, and new
/// part types keep the name), except inside a `tool_use` block's `input` (a tool call's
/// arguments are judged as the call's) and what the provider returned earlier and the
/// conversation echoes: an answer's citations (`annotations`) and a file search's
/// `results`, which name the files of a store already judged and put no file before the
/// model (their text, if any, is in the body).
pub fn collect_files(v: &Value, into: &mut Vec<String>, rule: &'static str) -> Result<(), Denial> {
    match v {
        Value::Array(items) => items.iter().try_for_each(|x| collect_files(x, into, rule)),
        Value::Object(m) => {
            let kind = m.get("type").and_then(Value::as_str);
            let call = matches!(kind, Some("tool_use" | "server_tool_use"));
            let search = kind == Some("file_search_call");
            for (key, value) in m {
                match (key.as_str(), value) {
                    ("input", _) if call => {}
                    ("annotations", _) => {}
                    ("results", _) if search => {}
                    (k, _)
                        if k != "file_id"
                            && k != "file_ids"
                            && FILE_KEYS.iter().any(|f| crate::json::same_key_ignoring_case(f, k)) =>
                    {
                        return Err(malformed(
                            rule,
                            format!("member {k:?} differs from a file id member only in case"),
                        ))
                    }
                    ("file_id", Value::String(id)) => push_file(into, id),
                    ("file_id", Value::Null) => {}
                    ("file_id", _) => return Err(malformed(rule, "a file_id must be a string")),
                    ("file_ids", Value::Array(ids)) => {
                        for id in ids {
                            match id {
                                Value::String(id) => push_file(into, id),
                                _ => return Err(malformed(rule, "file_ids must be strings")),
                            }
                        }
                    }
                    ("file_ids", Value::Null) => {}
                    ("file_ids", _) => return Err(malformed(rule, "file_ids must be an array")),
                    (_, v) => collect_files(v, into, rule)?,
                }
            }
            Ok(())
        }
        _ => Ok(()),
    }
}

/// The members that name stored files.
const FILE_KEYS: [&str; 2] = ["file_id", "file_ids"];

/// Every mention is kept (a body may name a file many times); the engine judges each
/// distinct id once.
fn push_file(into: &mut Vec<String>, id: &str) {
    into.push(id.to_string());
}

pub fn malformed(rule: &'static str, message: impl Into<String>) -> Denial {
    Denial::new(Reason::BodyMalformed, rule, message)
}

/// Parses the body strictly and requires an object.
pub fn object(body: &[u8], limits: &Limits, rule: &'static str) -> Result<Map<String, Value>, Denial> {
    match crate::json::parse_request(body, limits.max_json_depth) {
        Ok(Value::Object(m)) => Ok(m),
        Ok(_) => Err(malformed(rule, "the request body must be a JSON object")),
        Err(e) => Err(super::json_refused(&e, limits)),
    }
}

pub fn string(v: Value, rule: &'static str, what: &str) -> Result<String, Denial> {
    match v {
        Value::String(s) => Ok(s),
        _ => Err(malformed(rule, format!("{what} must be a string"))),
    }
}

pub fn array(v: Value, rule: &'static str, what: &str) -> Result<Vec<Value>, Denial> {
    match v {
        Value::Array(a) => Ok(a),
        _ => Err(malformed(rule, format!("{what} must be an array"))),
    }
}

/// `null` or absent counts as empty, as the providers accept.
pub fn opt_array(v: Option<Value>, rule: &'static str, what: &str) -> Result<Vec<Value>, Denial> {
    match v {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(v) => array(v, rule, what),
    }
}

/// Every object of a body's structure (a tool, an item, a message, a call, a block): one
/// whose member aigate reads is spelled in another case is refused, as at the top level:
/// parsers that ignore case (Go's `encoding/json`) read `"Type"` as the `type` aigate did
/// not judge.
pub fn obj(v: Value, rule: &'static str, what: &str) -> Result<Map<String, Value>, Denial> {
    match v {
        Value::Object(m) => {
            m.keys()
                .try_for_each(|k| crate::request::refuse_miscased(k, &READ_KEYS, rule))?;
            Ok(m)
        }
        _ => Err(malformed(rule, format!("{what} must be an object"))),
    }
}

/// The member names aigate reads inside LLM requests and answers whose absence means
/// something (a default type, no call): spelled in another case, they are refused. (A
/// `name` aigate needs is required, so a lone `"Name"` is refused as a missing name.)
pub const READ_KEYS: [&str; 50] = [
    // A Responses stream's final response, which repeats every item.
    "response",
    "type",
    "role",
    "arguments",
    "input",
    "content",
    "id",
    "index",
    "output_index",
    "encrypted_content",
    "tools",
    "tool_calls",
    "function_call",
    "function",
    "functions",
    "custom",
    "approval_request_id",
    "approve",
    "code",
    "execution",
    "model",
    "svg",
    "server_url",
    "connector_id",
    "tunnel_id",
    "require_approval",
    "container",
    "environment",
    "vector_store_ids",
    "file_id",
    "file_ids",
    "skills",
    "skill_id",
    "mode",
    "message",
    "choices",
    "output",
    "item",
    "delta",
    "content_block",
    "tool",
    "definition",
    "tool_changes",
    "url",
    "allowed_tools",
    "action",
    "actions",
    "operation",
    "partial_json",
    "source",
];

/// Members under which an answer holds what a model wrote for a tool (its arguments) or
/// what the request named as it liked (schemas a response echoes, metadata, prompt
/// variables): not structure aigate reads, so not searched for miscased names.
const FREE_FORM: [&str; 14] = [
    "input",
    "arguments",
    "action",
    "actions",
    "operation",
    "metadata",
    "parsed",
    "partial_json",
    "parameters",
    "schema",
    "input_schema",
    "json_schema",
    "properties",
    "variables",
];

/// Refuses a member spelled like one aigate reads in another case anywhere in the
/// structure of a model's answer (outside what the model wrote for a tool), where a
/// client whose parser ignores case would find a call aigate did not judge.
pub fn refuse_miscased_structure(m: &Map<String, Value>, rule: &'static str) -> Result<(), Denial> {
    m.iter().try_for_each(|(k, x)| {
        crate::request::refuse_miscased(k, &READ_KEYS, rule)?;
        if FREE_FORM.contains(&k.as_str()) {
            return Ok(());
        }
        refuse_miscased_within(x, rule)
    })
}

fn refuse_miscased_within(v: &Value, rule: &'static str) -> Result<(), Denial> {
    match v {
        Value::Array(items) => items.iter().try_for_each(|x| refuse_miscased_within(x, rule)),
        Value::Object(m) => refuse_miscased_structure(m, rule),
        _ => Ok(()),
    }
}

/// A string member of `m`, if present; present with another type is malformed.
/// `models` (OpenRouter: the models to try in order) and `fallbacks` (LiteLLM's proxy:
/// models to retry on): routers in front of an OpenAI-style API run the request on any of
/// them, so each is held to the model lists like `model`. An entry is a model name or an
/// object naming one in `model`; anything else cannot be judged and is refused.
pub fn router_models(r: &mut LlmRequest, v: Value, place: &'static str, rule: &'static str) -> Result<(), Denial> {
    for entry in opt_array(Some(v), rule, place)? {
        let model = match entry {
            Value::String(m) => m,
            Value::Object(mut o) => opt_string(&mut o, "model", rule)?
                .ok_or_else(|| malformed(rule, format!("a {place} entry names its model in \"model\"")))?,
            _ => return Err(malformed(rule, format!("a {place} entry must be a model name"))),
        };
        r.other_models.push((model, place));
    }
    Ok(())
}

/// The hosted tool that searches the web, as every protocol's offers name it (Chat's
/// `web_search_options` turns it on), as catalogued.
pub const WEB_SEARCH: &str = "web_search";

/// The model asked for is itself an offer of `web_search` (it searches on every request),
/// one that stripping cannot take away.
pub fn offer_web_search_by_model(r: &mut LlmRequest) {
    r.offers.push(Offer {
        name: WEB_SEARCH.to_string(),
        list: "model",
        index: 0,
    });
}

/// What routers in front of any of the APIs (OpenRouter) read in a model's name, asked for
/// as the model or among the router's `models` or `fallbacks`: a preset (`@preset/name`,
/// alone or after a model), which brings a model, a prompt and tools of its own, is state
/// the router keeps; an `:online` variant (`openai/gpt-4o:online`, `…:online:free`)
/// searches the web, an offer of `web_search` (once, however many models ask for it).
pub fn router_features(r: &mut LlmRequest) {
    let preset = |m: &str| m.to_ascii_lowercase().contains("@preset/");
    let online = |m: &str| m.split(':').skip(1).any(|v| v.trim().eq_ignore_ascii_case("online"));
    let names = || std::iter::once(r.model.as_str()).chain(r.other_models.iter().map(|(m, _)| m.as_str()));
    if names().any(preset) && !r.provider_state.contains(&"preset") {
        r.provider_state.push("preset");
    }
    if names().any(online) && !r.offers.iter().any(|o| o.list == "model") {
        offer_web_search_by_model(r);
    }
}

/// OpenRouter's `plugins`, on any of the APIs it serves: each runs at the router on the
/// caller's behalf. `web` searches the web (an offer of `web_search`); any other is an
/// offer of a tool named by its `id`, which the catalogue must hold. Stripping one drops
/// the whole member.
pub fn plugins(r: &mut LlmRequest, v: Value, rule: &'static str) -> Result<(), Denial> {
    for (index, p) in opt_array(Some(v), rule, "plugins")?.into_iter().enumerate() {
        let mut p = obj(p, rule, "a plugin")?;
        let id = opt_string(&mut p, "id", rule)?.ok_or_else(|| malformed(rule, "a plugin names itself in \"id\""))?;
        let name = if id == "web" { WEB_SEARCH.to_string() } else { id };
        r.offers.push(Offer {
            name,
            list: "plugins",
            index,
        });
    }
    Ok(())
}

pub fn opt_string(m: &mut Map<String, Value>, key: &str, rule: &'static str) -> Result<Option<String>, Denial> {
    match m.remove(key) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => string(v, rule, key).map(Some),
    }
}

/// OpenAI sends function arguments as a JSON *string*: parsed as strictly as a body
/// (duplicate keys, keys differing only in case, depth), in a request or in a model's
/// answer (the agent runs the call with its own parser), and it must hold an object.
pub fn json_arguments(text: &str, limits: &Limits, rule: &'static str) -> Result<Value, Denial> {
    match crate::json::parse_request(text.as_bytes(), limits.max_json_depth) {
        Ok(v @ Value::Object(_)) => Ok(v),
        Ok(_) => Err(malformed(rule, "function arguments must be a JSON object")),
        Err(e) => Err(malformed(
            rule,
            format!("function arguments: {}", super::json_problem(&e, limits)),
        )),
    }
}

/// Free-form input of a custom tool call, judged as the argument `/input`.
pub fn text_arguments(input: String) -> Value {
    let mut m = Map::new();
    m.insert("input".into(), Value::String(input));
    Value::Object(m)
}

/// `stream` must be a boolean when present.
pub fn stream_flag(v: Value, rule: &'static str) -> Result<bool, Denial> {
    match v {
        Value::Bool(b) => Ok(b),
        Value::Null => Ok(false),
        _ => Err(malformed(rule, "stream must be a boolean")),
    }
}

/// Marks the calls of the most recent model turn. `turns[i]` is the turn of `calls[i]`.
pub fn mark_latest(calls: &mut [LlmCall], turns: &[usize], last_turn: Option<usize>) {
    for (c, t) in calls.iter_mut().zip(turns) {
        c.latest = Some(*t) == last_turn;
    }
}
