//! MCP over Streamable HTTP: JSON-RPC 2.0 messages, single or batched.

use crate::decision::{Denial, Reason};
use crate::policy::Limits;
use serde_json::Value;

#[derive(Debug, Clone, PartialEq)]
pub enum McpAction {
    ToolCall {
        name: String,
        arguments: Value,
    },
    ResourceRead {
        uri: String,
    },
    /// `completion/complete` of a resource template's variable: the URIs the template
    /// names once filled.
    TemplateRef {
        uri: String,
    },
    /// `subscriptions/listen`: a stream of the updates of each resource named, which is
    /// reading them, and of each task named (its status and, once done, its result).
    Subscribe {
        uris: Vec<String>,
        tasks: Vec<String>,
    },
    /// `tasks/get`, `tasks/result`, `tasks/update`, `tasks/cancel`: following, steering or
    /// stopping the task the server created for a tool call (`params.taskId`).
    Task {
        id: String,
    },
    PromptGet {
        name: String,
    },
    /// A list of what the server offers: its answer shows the agent tools and data.
    List(Listing),
    /// `initialize`, `ping`, notifications, responses to the server…: nothing to judge.
    Other,
    /// A method aigate does not know (a later protocol revision's, a server's extension):
    /// what it does cannot be judged.
    Unknown,
}

/// The MCP lists whose items aigate can judge.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Listing {
    Tools,
    Resources,
    ResourceTemplates,
    Prompts,
    /// `tasks/list` (MCP 2025-11-25): the tasks the server keeps.
    Tasks,
}

impl Listing {
    /// The member of the list result holding the items.
    pub fn items_key(self) -> &'static str {
        match self {
            Listing::Tools => "tools",
            Listing::Resources => "resources",
            Listing::ResourceTemplates => "resourceTemplates",
            Listing::Prompts => "prompts",
            Listing::Tasks => "tasks",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct McpMessage {
    /// Present on requests (not notifications); echoed in JSON-RPC errors.
    pub id: Option<Value>,
    pub method: Option<String>,
    pub action: McpAction,
    /// What the `Mcp-Name` header mirrors (`super::mirror::target`).
    pub target: Option<String>,
    /// Tool calls the client's model chose in answer to a server's sampling request that
    /// offered it tools (MCP 2025-11-25 sampling with tools): the server runs them. They
    /// travel in the client's JSON-RPC response, or in `params.inputResponses` of a
    /// retried request (multi-round-trip requests, and `tasks/update`).
    pub sampled: Vec<SampledCall>,
    /// The task the message says it belongs to (`_meta["io.modelcontextprotocol/related-task"]`
    /// of its params or result): the server files it with that task.
    pub related_task: Option<String>,
}

/// A `tool_use` block of a sampling result: the tool the client's model calls, and with what.
#[derive(Debug, Clone, PartialEq)]
pub struct SampledCall {
    pub name: String,
    pub arguments: Value,
}

#[derive(Debug, Clone, PartialEq)]
pub struct McpBody {
    pub batch: bool,
    pub messages: Vec<McpMessage>,
}

/// Methods whose `params` carry what is judged: anything but an object is malformed.
const JUDGED: [&str; 10] = [
    "tools/call",
    "resources/read",
    "resources/subscribe",
    "prompts/get",
    "completion/complete",
    "subscriptions/listen",
    "tasks/get",
    "tasks/result",
    "tasks/update",
    "tasks/cancel",
];

/// Client requests that carry nothing to judge (MCP 2025-11-25): they pass. Any other
/// method but a notification, a judged one or a list is `McpAction::Unknown`.
const PASSING: [&str; 5] = [
    "initialize",
    // The stateless protocol's initialize: the server's versions and capabilities.
    "server/discover",
    "ping",
    "resources/unsubscribe",
    "logging/setLevel",
];

/// The members of a JSON-RPC message aigate reads.
const MESSAGE_READ: [&str; 6] = ["jsonrpc", "id", "method", "params", "result", "error"];
/// The members of `params` (and of a completion's `ref`) aigate reads.
const PARAMS_READ: [&str; 9] = [
    "name",
    "arguments",
    "uri",
    "ref",
    "type",
    "notifications",
    "taskId",
    "inputResponses",
    "_meta",
];
/// The members of a sampling result and of its `tool_use` blocks aigate reads.
const SAMPLED_READ: [&str; 4] = ["content", "type", "name", "input"];
/// Where a message names the task it belongs to.
const RELATED_TASK: &str = "io.modelcontextprotocol/related-task";

fn malformed(message: impl Into<String>) -> Denial {
    Denial::new(Reason::BodyMalformed, "mcp", message)
}

/// Extracts every message of a JSON-RPC body. Anything that is not well-formed JSON-RPC
/// is refused here, so later stages judge only what an MCP server would act on.
pub fn parse(body: &[u8], limits: &Limits) -> Result<McpBody, Denial> {
    let doc = crate::json::parse_request(body, limits.max_json_depth).map_err(|e| super::json_refused(&e, limits))?;
    let (batch, items) = match doc {
        Value::Array(items) => (true, items),
        single => (false, vec![single]),
    };
    if items.is_empty() {
        return Err(malformed("empty JSON-RPC batch"));
    }
    if items.len() > limits.max_batch_size {
        return Err(Denial::new(
            Reason::BodyMalformed,
            "limits.max_batch_size",
            format!("batch of {} exceeds {}", items.len(), limits.max_batch_size),
        ));
    }
    let messages = items.into_iter().map(message).collect::<Result<_, _>>()?;
    Ok(McpBody { batch, messages })
}

fn message(item: Value) -> Result<McpMessage, Denial> {
    let Value::Object(mut obj) = item else {
        return Err(malformed("a JSON-RPC message must be an object"));
    };
    for key in obj.keys() {
        crate::request::refuse_miscased(key, &MESSAGE_READ, "mcp")?;
    }
    if obj.get("jsonrpc").and_then(Value::as_str) != Some("2.0") {
        return Err(malformed("\"jsonrpc\" must be \"2.0\""));
    }
    let id = match obj.remove("id") {
        None => None,
        // A denial echoes the id, so it must come back exactly as sent: an integer beyond
        // 64 bits or a fraction would come back rounded (MCP ids are strings or integers).
        Some(Value::Number(n)) if n.is_f64() => {
            return Err(malformed("\"id\" must be a string or an integer of at most 64 bits"))
        }
        Some(v @ (Value::String(_) | Value::Number(_) | Value::Null)) => Some(v),
        Some(_) => return Err(malformed("\"id\" must be a string or an integer")),
    };
    let method = match obj.remove("method") {
        None => {
            // A client's response to a server request: it carries no action.
            // (`"error": null` beside a result is JSON-RPC 1.0's way of saying none.)
            let result = obj.contains_key("result");
            let error = obj.get("error").is_some_and(|e| !e.is_null());
            if !(result || error) {
                return Err(malformed(
                    "a JSON-RPC message needs \"method\", \"result\" or \"error\"",
                ));
            }
            // It answers one request, by its id (JSON-RPC 2.0 §5): only an error about a
            // request that could not be read has a null one.
            if result && error {
                return Err(malformed("a JSON-RPC response has \"result\" or \"error\", not both"));
            }
            if id.as_ref().is_none_or(|id| id.is_null() && result) {
                return Err(malformed(
                    "a JSON-RPC response needs the \"id\" of the request it answers",
                ));
            }
            let result = obj.remove("result").unwrap_or(Value::Null);
            return Ok(McpMessage {
                id,
                method: None,
                action: McpAction::Other,
                target: None,
                sampled: sampled_calls(&result)?,
                related_task: related_task(&result)?,
            });
        }
        Some(Value::String(m)) => m,
        Some(_) => return Err(malformed("\"method\" must be a string")),
    };
    // A request's id must not be null (MCP); only an error answer may carry one.
    if id == Some(Value::Null) {
        return Err(malformed("a request's \"id\" must be a string or an integer, not null"));
    }
    let mut params = match obj.remove("params") {
        None => serde_json::Map::new(),
        Some(Value::Object(p)) => p,
        Some(_) if JUDGED.contains(&method.as_str()) => return Err(malformed(format!("{method} needs object params"))),
        Some(_) => serde_json::Map::new(),
    };
    for key in params.keys() {
        crate::request::refuse_miscased(key, &PARAMS_READ, "mcp")?;
        crate::request::refuse_snake_cased(key, &PARAMS_READ, "mcp")?;
    }
    let target = super::mirror::target(&method, &params);
    let related_task = related_task_of(&params)?;
    let sampled = match params.remove("inputResponses") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Object(responses)) => {
            let mut calls = Vec::new();
            for response in responses.values() {
                calls.extend(sampled_calls(response)?);
            }
            calls
        }
        Some(_) => return Err(malformed("params.inputResponses must be an object")),
    };
    let action =
        match method.as_str() {
            "tools/call" => {
                let Some(Value::String(name)) = params.remove("name") else {
                    return Err(malformed("tools/call needs params.name as a string"));
                };
                let arguments = match params.remove("arguments") {
                    None | Some(Value::Null) => Value::Object(serde_json::Map::new()),
                    Some(a @ Value::Object(_)) => a,
                    Some(_) => return Err(malformed("tools/call params.arguments must be an object")),
                };
                McpAction::ToolCall { name, arguments }
            }
            // Subscribing streams the resource's updates: it is reading it.
            "resources/read" | "resources/subscribe" => {
                let Some(Value::String(uri)) = params.remove("uri") else {
                    return Err(malformed(format!("{method} needs params.uri as a string")));
                };
                McpAction::ResourceRead { uri }
            }
            // Completions of a prompt's or a resource template's arguments reveal what lies
            // behind them (another tenant's names, say): judged as fetching that prompt or resource.
            "completion/complete" => {
                let Some(Value::Object(mut r)) = params.remove("ref") else {
                    return Err(malformed("completion/complete needs params.ref as an object"));
                };
                for key in r.keys() {
                    crate::request::refuse_miscased(key, &PARAMS_READ, "mcp")?;
                    crate::request::refuse_snake_cased(key, &PARAMS_READ, "mcp")?;
                }
                match (r.remove("type"), r.remove("name"), r.remove("uri")) {
                    (Some(Value::String(t)), Some(Value::String(name)), _) if t == "ref/prompt" => {
                        McpAction::PromptGet { name }
                    }
                    (Some(Value::String(t)), _, Some(Value::String(uri))) if t == "ref/resource" => {
                        McpAction::TemplateRef { uri }
                    }
                    _ => return Err(malformed(
                        "completion/complete params.ref must be a ref/prompt with a name or a ref/resource with a uri",
                    )),
                }
            }
            "prompts/get" => {
                let Some(Value::String(name)) = params.remove("name") else {
                    return Err(malformed("prompts/get needs params.name as a string"));
                };
                McpAction::PromptGet { name }
            }
            "subscriptions/listen" => {
                let (uris, tasks) = subscribed(params.remove("notifications"))?;
                McpAction::Subscribe { uris, tasks }
            }
            "tasks/get" | "tasks/result" | "tasks/update" | "tasks/cancel" => {
                let Some(Value::String(id)) = params.remove("taskId") else {
                    return Err(malformed(format!("{method} needs params.taskId as a string")));
                };
                McpAction::Task { id }
            }
            "tools/list" => McpAction::List(Listing::Tools),
            "resources/list" => McpAction::List(Listing::Resources),
            "resources/templates/list" => McpAction::List(Listing::ResourceTemplates),
            "prompts/list" => McpAction::List(Listing::Prompts),
            "tasks/list" => McpAction::List(Listing::Tasks),
            m if PASSING.contains(&m) => McpAction::Other,
            // A notification has no id: one that carries an id is a request, and no
            // request of that name is one aigate knows.
            m if m.starts_with("notifications/") && id.is_none() => McpAction::Other,
            _ => McpAction::Unknown,
        };
    Ok(McpMessage {
        id,
        method: Some(method),
        action,
        target,
        sampled,
        related_task,
    })
}

/// The task a request's params or a response's result names in its `_meta` as the one it
/// belongs to. A name that is not a `taskId` string is refused: a server reads it its own way.
fn related_task(part: &Value) -> Result<Option<String>, Denial> {
    match part.as_object() {
        Some(part) => related_task_of(part),
        None => Ok(None),
    }
}

fn related_task_of(part: &serde_json::Map<String, Value>) -> Result<Option<String>, Denial> {
    let Some(meta) = part.get("_meta") else { return Ok(None) };
    let Some(meta) = meta.as_object() else {
        return Err(malformed("\"_meta\" must be an object"));
    };
    let Some(related) = meta.get(RELATED_TASK) else {
        return Ok(None);
    };
    if let Some(related) = related.as_object() {
        for key in related.keys() {
            crate::request::refuse_miscased(key, &["taskId"], "mcp")?;
            crate::request::refuse_snake_cased(key, &["taskId"], "mcp")?;
        }
    }
    match related.get("taskId") {
        Some(Value::String(id)) => Ok(Some(id.clone())),
        _ => Err(malformed(format!(
            "_meta[\"{RELATED_TASK}\"] must name its task by a taskId string"
        ))),
    }
}

/// The `tool_use` blocks of a sampling result (`content`: one block or a list of them).
fn sampled_calls(result: &Value) -> Result<Vec<SampledCall>, Denial> {
    let Some(result) = result.as_object() else {
        return Ok(Vec::new());
    };
    for key in result.keys() {
        crate::request::refuse_miscased(key, &SAMPLED_READ, "mcp")?;
    }
    let blocks = match result.get("content") {
        Some(Value::Array(blocks)) => blocks.iter().collect(),
        Some(block @ Value::Object(_)) => vec![block],
        _ => return Ok(Vec::new()),
    };
    let mut calls = Vec::new();
    for block in blocks.into_iter().filter_map(Value::as_object) {
        for key in block.keys() {
            crate::request::refuse_miscased(key, &SAMPLED_READ, "mcp")?;
        }
        if block.get("type").and_then(Value::as_str) != Some("tool_use") {
            continue;
        }
        let (Some(Value::String(name)), Some(arguments @ Value::Object(_))) = (block.get("name"), block.get("input"))
        else {
            return Err(malformed("a tool_use block needs a string name and an object input"));
        };
        calls.push(SampledCall {
            name: name.clone(),
            arguments: arguments.clone(),
        });
    }
    Ok(calls)
}

/// What a `subscriptions/listen` asks to follow: the resources of
/// `notifications.resourceSubscriptions[]` (URIs) and the tasks of `notifications.taskIds[]`.
fn subscribed(notifications: Option<Value>) -> Result<(Vec<String>, Vec<String>), Denial> {
    let mut n = match notifications {
        None | Some(Value::Null) => return Ok((Vec::new(), Vec::new())),
        Some(Value::Object(n)) => n,
        Some(_) => return Err(malformed("subscriptions/listen params.notifications must be an object")),
    };
    for key in n.keys() {
        crate::request::refuse_miscased(key, &["resourceSubscriptions", "taskIds"], "mcp")?;
        crate::request::refuse_snake_cased(key, &["resourceSubscriptions", "taskIds"], "mcp")?;
    }
    // Each named once: a list repeating one id a million times is one subscription, and
    // judging it must cost one.
    let once = |mut list: Vec<String>| {
        let mut seen = std::collections::HashSet::new();
        list.retain(|x| seen.insert(x.clone()));
        list
    };
    Ok((
        once(strings(n.remove("resourceSubscriptions"), "resourceSubscriptions")?),
        once(strings(n.remove("taskIds"), "taskIds")?),
    ))
}

/// A list of strings, or none.
fn strings(list: Option<Value>, name: &str) -> Result<Vec<String>, Denial> {
    match list {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Array(items)) => items
            .into_iter()
            .map(|u| match u {
                Value::String(u) => Ok(u),
                _ => Err(malformed(format!("{name} must hold strings"))),
            })
            .collect(),
        Some(_) => Err(malformed(format!("{name} must be an array"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn limits() -> Limits {
        Limits::for_tests()
    }

    #[test]
    fn single_tool_call_with_unescaped_name() {
        let b = br#"{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"send\u005femail","arguments":{"to":"a@b"}}}"#;
        let m = parse(b, &limits()).unwrap();
        assert!(!m.batch);
        assert_eq!(m.messages[0].id, Some(Value::from(7)));
        match &m.messages[0].action {
            McpAction::ToolCall { name, arguments } => {
                assert_eq!(name, "send_email");
                assert_eq!(arguments["to"], "a@b");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn batch_and_other_methods() {
        let b = br#"[{"jsonrpc":"2.0","id":"a","method":"ping"},{"jsonrpc":"2.0","method":"notifications/initialized"},{"jsonrpc":"2.0","id":3,"result":{}},{"jsonrpc":"2.0","id":4,"method":"tools/list","params":{"cursor":"c"}},{"jsonrpc":"2.0","id":5,"method":"resources/templates/list"}]"#;
        let limits = Limits {
            max_batch_size: 8,
            ..limits()
        };
        let m = parse(b, &limits).unwrap();
        assert!(m.batch);
        assert_eq!(m.messages.len(), 5);
        assert!(m.messages[..3].iter().all(|x| x.action == McpAction::Other));
        assert_eq!(m.messages[1].id, None);
        assert_eq!(m.messages[3].action, McpAction::List(Listing::Tools));
        assert_eq!(m.messages[4].action, McpAction::List(Listing::ResourceTemplates));
    }

    #[test]
    fn listening_names_each_resource_and_task() {
        let b = br#"{"jsonrpc":"2.0","id":2,"method":"subscriptions/listen","params":{"notifications":{"resourceSubscriptions":["docs://acme/a","docs://globex/b"],"taskIds":["t1"],"toolsListChanged":true},"_meta":{}}}"#;
        let m = parse(b, &limits()).unwrap();
        assert_eq!(
            m.messages[0].action,
            McpAction::Subscribe {
                uris: vec!["docs://acme/a".into(), "docs://globex/b".into()],
                tasks: vec!["t1".into()],
            }
        );
        for (notifications, error) in [
            (r#"{"taskIds":"t1"}"#, "taskIds must be an array"),
            (r#"{"taskIds":[1]}"#, "taskIds must hold strings"),
            (
                r#"{"resourceSubscriptions":[{}]}"#,
                "resourceSubscriptions must hold strings",
            ),
            (r#"{"TaskIds":["t1"]}"#, "TaskIds"),
        ] {
            let b = format!(
                r#"{{"jsonrpc":"2.0","id":2,"method":"subscriptions/listen","params":{{"notifications":{notifications}}}}}"#
            );
            let d = parse(b.as_bytes(), &limits()).unwrap_err();
            assert_eq!(d.reason, Reason::BodyMalformed);
            assert!(d.message.contains(error), "{notifications}: {}", d.message);
        }
        // An error answer may carry a null id; a response carries no action.
        let b = br#"{"jsonrpc":"2.0","id":null,"error":{"code":-32700,"message":"parse error"}}"#;
        assert_eq!(parse(b, &limits()).unwrap().messages[0].action, McpAction::Other);
        let b = br#"{"jsonrpc":"2.0","id":2,"result":{},"error":null}"#;
        assert_eq!(parse(b, &limits()).unwrap().messages[0].action, McpAction::Other);
        // A result answers a request by its id, and is no error too.
        for b in [
            r#"{"jsonrpc":"2.0","result":{}}"#,
            r#"{"jsonrpc":"2.0","id":null,"result":{}}"#,
            r#"{"jsonrpc":"2.0","error":{"code":1,"message":"x"}}"#,
            r#"{"jsonrpc":"2.0","id":1,"result":{},"error":{"code":1,"message":"x"}}"#,
            r#"{"jsonrpc":"2.0","id":1,"error":null}"#,
        ] {
            let d = parse(b.as_bytes(), &limits()).unwrap_err();
            assert_eq!(d.reason, Reason::BodyMalformed, "{b}");
        }
    }

    #[test]
    fn task_requests_name_their_task() {
        for method in ["tasks/get", "tasks/result", "tasks/update", "tasks/cancel"] {
            let b = format!(
                r#"{{"jsonrpc":"2.0","id":1,"method":"{method}","params":{{"taskId":"t-1","inputResponses":{{}}}}}}"#
            );
            let m = parse(b.as_bytes(), &limits()).unwrap();
            assert_eq!(m.messages[0].action, McpAction::Task { id: "t-1".into() }, "{method}");
            for params in [
                r#"{}"#,
                r#"{"taskId":7}"#,
                r#"{"TaskId":"t-1","taskId":"t-2"}"#,
                r#""t-1""#,
            ] {
                let b = format!(r#"{{"jsonrpc":"2.0","id":1,"method":"{method}","params":{params}}}"#);
                let d = parse(b.as_bytes(), &limits()).unwrap_err();
                assert_eq!(d.reason, Reason::BodyMalformed, "{method} {params}");
            }
        }
        let b = br#"{"jsonrpc":"2.0","id":1,"method":"tasks/list","params":{"cursor":"c"}}"#;
        assert_eq!(
            parse(b, &limits()).unwrap().messages[0].action,
            McpAction::List(Listing::Tasks)
        );
    }

    #[test]
    fn integer_and_string_ids_are_kept_exactly() {
        for id in [
            json!(18446744073709551615u64),
            json!(-9223372036854775808i64),
            json!(0),
            json!("a-1"),
        ] {
            let b = json!({"jsonrpc": "2.0", "id": id, "method": "ping"}).to_string();
            let m = parse(b.as_bytes(), &limits()).unwrap();
            assert_eq!(m.messages[0].id.as_ref().map(Value::to_string), Some(id.to_string()));
        }
    }

    #[test]
    fn malformed_cases() {
        for b in [
            &b"[]"[..],
            br#"{"jsonrpc":"1.0","id":1,"method":"ping"}"#,
            br#"{"jsonrpc":"2.0","id":{},"method":"ping"}"#,
            br#"{"jsonrpc":"2.0","id":123456789012345678901234567890,"method":"ping"}"#,
            br#"{"jsonrpc":"2.0","id":1.5,"method":"ping"}"#,
            br#"{"jsonrpc":"2.0","id":1e2,"method":"ping"}"#,
            br#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"arguments":{}}}"#,
            br#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"x","arguments":[1]}}"#,
            br#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":[]}"#,
            br#"{"jsonrpc":"2.0","id":1,"method":"resources/read","params":{"uri":5}}"#,
            br#"{"jsonrpc":"2.0","id":1}"#,
            br#"[1]"#,
            br#"{"jsonrpc":"2.0","id":1,"method":"ping","method":"tools/call"}"#,
            // Go servers read these members whatever their case.
            br#"{"jsonrpc":"2.0","id":1,"Method":"tools/call","params":{"name":"x"},"error":{"code":0,"message":""}}"#,
            br#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"x","Arguments":{"a":1}}}"#,
            br#"{"jsonrpc":"2.0","id":1,"method":"resources/read","params":{"uri":"docs://a/b","URI":"docs://b/c"}}"#,
            br#"{"jsonrpc":"2.0","id":null,"method":"tools/call","params":{"name":"x"}}"#,
            br#"{"jsonrpc":"2.0","id":1,"method":"subscriptions/listen","params":{"notifications":{"resourceSubscriptions":[5]}}}"#,
            br#"{"jsonrpc":"2.0","id":1,"method":"subscriptions/listen","params":{"notifications":{"ResourceSubscriptions":["docs://b/c"]}}}"#,
            br#"[{"jsonrpc":"2.0","method":"a"},{"jsonrpc":"2.0","method":"a"},{"jsonrpc":"2.0","method":"a"},{"jsonrpc":"2.0","method":"a"},{"jsonrpc":"2.0","method":"a"}]"#,
        ] {
            let e = parse(b, &limits()).unwrap_err();
            assert_eq!(e.reason, Reason::BodyMalformed, "{}", String::from_utf8_lossy(b));
        }
    }
}
