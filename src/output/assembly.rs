//! Tool calls put together from a stream's events the way the SDKs put them together, and
//! refused where two readings of the stream could differ:
//! - Chat: `delta.tool_calls` pieces joined per choice and integer index, arguments
//!   concatenated as the OpenAI SDK does; a name given in more than one piece is refused.
//! - Responses: the calls of each `output_item.done` item (a computer call's every
//!   action), cross-checked with what a client may read instead (the `added` item's type
//!   and name, the argument pieces of the `added` item, `*.delta` and `*.done` events),
//!   and the calls of the final `response`. A call announced and never finished is
//!   refused.
//! - Anthropic: events whose name and `type` agree (the SDK skips `ping` and unnamed
//!   events, and reads the rest by `type`); content blocks by position, as the SDK keeps
//!   them (`message_start`'s content first, then each `content_block_start` in order); a
//!   `tool_use` block's input from its `input_json_delta` pieces, else its start (not both).

use super::{answer_calls, events, RULE};
use crate::config::Protocol;
use crate::decision::Denial;
use crate::policy::Limits;
use crate::request::llm::{self, malformed, LlmCall};
use crate::request::openai_responses;
use serde_json::{Map, Value};
use std::collections::{BTreeMap, HashSet};

/// The events of an Anthropic message stream (what the SDK reads, by `type`).
const MESSAGE_EVENTS: [&str; 6] = [
    "message_start",
    "message_delta",
    "message_stop",
    "content_block_start",
    "content_block_delta",
    "content_block_stop",
];

/// A call being put together from pieces.
#[derive(Default)]
struct Pieces {
    name: String,
    /// JSON text of the arguments (a custom tool's input text).
    arguments: String,
    /// Arguments given whole (an Anthropic block's `input` at its start).
    whole: Option<Value>,
    /// What the pieces say the call is: `Some(true)` a custom tool, `Some(false)` a function.
    custom: Option<bool>,
}

/// A Responses call item announced by its events.
#[derive(Default)]
struct Announced {
    /// The item's type and name as the `added` item (or a `*.done` event) gives them.
    kind: Option<String>,
    name: Option<String>,
    /// Arguments (or custom input) from the `added` item and the `*.delta` events.
    pieces: String,
    /// From the `*.done` event.
    done: Option<String>,
    /// What the `added` item does when it says so whole (a computer call's `action` and
    /// `actions`, a shell call's `action`…), as canonical JSON.
    payload: Option<Map<String, Value>>,
    /// The item's `id`, as the `added` item or the first event naming it gives it.
    id: Option<String>,
    /// A shell call's commands as a client puts them together from the `added` item and
    /// the `shell_call_command.*` events (`None` until one arrives).
    commands: Option<Vec<String>>,
    /// Its `output_item.done` arrived.
    closed: bool,
}

impl Announced {
    /// An event names the item it belongs to by `item_id` besides its output index: a
    /// client keying pieces by id would file them under another call when the two disagree.
    fn same_item(&mut self, id: Option<&Value>) -> Result<(), Denial> {
        let Some(id) = id.and_then(Value::as_str) else {
            return Ok(());
        };
        match &self.id {
            Some(known) if known != id => Err(malformed(
                RULE,
                "the answer's events disagree about which item a tool call's pieces belong to",
            )),
            Some(_) => Ok(()),
            None => {
                self.id = Some(id.to_string());
                Ok(())
            }
        }
    }

    /// A `response.shell_call_command.*` event (`step`: `added`, `delta` or `done`) applied
    /// as the SDK applies it: `added` appends a command (or restates one), `delta` extends
    /// one, `done` gives it whole. A command beyond the list, or one of no shell call, is
    /// one no two clients would read alike.
    fn shell_command(&mut self, step: &str, data: &Map<String, Value>) -> Result<(), Denial> {
        let odd = || {
            malformed(
                RULE,
                "a shell command event of the answer fits no command of its shell call",
            )
        };
        if self.kind.as_deref() != Some("shell_call") {
            return Err(odd());
        }
        let index = data
            .get("command_index")
            .and_then(Value::as_u64)
            .and_then(|i| usize::try_from(i).ok())
            .ok_or_else(odd)?;
        let text = |key: &str| data.get(key).and_then(Value::as_str).ok_or_else(odd);
        // The added item's commands, copied at the first command event only: a stream may
        // bring thousands of them for an item of thousands of commands.
        let payload = &self.payload;
        let commands = self
            .commands
            .get_or_insert_with(|| payload.as_ref().map(shell_commands).unwrap_or_default());
        let next = commands.len();
        match (step, commands.get_mut(index)) {
            ("added", None) if index == next => commands.push(text("command")?.to_string()),
            ("added" | "done", Some(command)) => *command = text("command")?.to_string(),
            ("delta", Some(command)) => command.push_str(text("delta")?),
            _ => return Err(odd()),
        }
        Ok(())
    }

    /// What the `added` item does, as a client holds it once the item is done: a shell
    /// call's commands are the done item's (`done_commands`) when the events streamed them
    /// (compared with the done item's apart) or the added item gave none yet (an empty list
    /// is nothing a client could run).
    fn announced_payload(&self, done_commands: &[String]) -> Result<Option<String>, Denial> {
        let Some(mut payload) = self.payload.clone() else {
            return Ok(None);
        };
        let completed = self.commands.is_some() || shell_commands(&payload).is_empty();
        if let (true, Some(Value::Object(action))) = (completed, payload.get_mut("action")) {
            if action.contains_key("commands") || !done_commands.is_empty() {
                action.insert(
                    "commands".into(),
                    done_commands.iter().map(|c| Value::String(c.clone())).collect(),
                );
            }
        }
        canonical(payload).map(Some)
    }
}

/// A shell call item's commands (`action.commands`), as far as they are strings.
fn shell_commands(item: &Map<String, Value>) -> Vec<String> {
    item.get("action")
        .and_then(|a| a.get("commands"))
        .and_then(Value::as_array)
        .map(|c| c.iter().filter_map(Value::as_str).map(str::to_string).collect())
        .unwrap_or_default()
}

/// The members of a client-run call item that say what it does, given whole (not text).
const PAYLOAD_KEYS: [&str; 5] = ["action", "actions", "operation", "arguments", "input"];

/// What a call item does, given whole: its payload members that are objects or arrays,
/// or `None` when it gives none.
fn payload(item: &Map<String, Value>) -> Option<Map<String, Value>> {
    let whole: Map<String, Value> = PAYLOAD_KEYS
        .iter()
        .filter_map(|k| {
            item.get(*k)
                .filter(|v| v.is_object() || v.is_array())
                .map(|v| (k.to_string(), v.clone()))
        })
        .collect();
    (!whole.is_empty()).then_some(whole)
}

/// Payload members as canonical JSON: key order and number spelling are no difference.
fn canonical(payload: Map<String, Value>) -> Result<String, Denial> {
    crate::digest::canonical_json(&Value::Object(payload))
        .map_err(|e| malformed(RULE, format!("a tool call of the answer: {e}")))
}

#[derive(Default)]
pub(super) struct Assembly {
    /// Chat: calls by (choice, index).
    chat: BTreeMap<(u64, u64), Pieces>,
    /// Anthropic: content blocks in order (`None` for a block that is not a tool call).
    blocks: Vec<Option<Pieces>>,
    /// Anthropic: the `message_start` event has been read.
    started: bool,
    /// Responses: calls by output index, and the calls delivered whole.
    announced: BTreeMap<u64, Announced>,
    whole: Vec<LlmCall>,
    /// The calls in `whole`, as text: a call delivered again (`output_item.done`, then in
    /// `response.completed`) is found in constant time, not by a scan of every call.
    whole_seen: HashSet<String>,
}

/// The output index a Responses event files its call under. The SDKs key an item's events
/// by it, reading `1.0` as 1: anything but an unsigned integer would file pieces under
/// another call than a client does.
fn output_index(data: &Map<String, Value>) -> Result<u64, Denial> {
    match data.get("output_index") {
        Some(i) => i
            .as_u64()
            .ok_or_else(|| malformed(RULE, "an output_index of the answer is not an unsigned integer")),
        None => Err(malformed(
            RULE,
            "an event of a tool call in the answer has no output_index",
        )),
    }
}

impl Assembly {
    /// Reads one event; `true` when it belongs to a tool call.
    pub(super) fn event(&mut self, protocol: Protocol, event: &[u8], limits: &Limits) -> Result<bool, Denial> {
        // Where calls are assembled, every reader must see the same events.
        if let Some(problem) = events::ambiguity(event) {
            return Err(malformed(RULE, problem));
        }
        let (name, data) =
            events::fields(event).ok_or_else(|| malformed(RULE, "an event of the answer is not UTF-8"))?;
        if data.is_empty() || data == "[DONE]" {
            return Ok(false);
        }
        // An event wraps what it carries one level deeper than a request would. Its keys
        // are read as a whole answer's are: two differing only in case (`"name"` and
        // `"Name"`) are one member to Go's encoding/json, the last winning.
        let data = match crate::json::parse_request(data.as_bytes(), limits.max_json_depth + 1) {
            Ok(Value::Object(m)) => m,
            Ok(_) => return Ok(false),
            Err(e) => return Err(malformed(RULE, format!("an event of the answer: {e}"))),
        };
        // A member aigate reads spelled in another case (`"Tool_calls"`): a client whose
        // parser ignores case would assemble a call from it that aigate did not see.
        llm::refuse_miscased_structure(&data, RULE)?;
        match protocol {
            Protocol::OpenaiChat => self.chat(data),
            Protocol::OpenaiResponses => self.responses(data, limits),
            Protocol::AnthropicMessages => self.anthropic(name, data),
            Protocol::Mcp | Protocol::Action => Ok(false),
        }
    }

    /// Chat pieces are filed by choice and call index, which must be integers as the SDKs
    /// key them (`1.0` is index 1 to Python and JavaScript, not a position); a name comes
    /// whole in one piece, as OpenAI sends it, since clients join name pieces differently
    /// (one keeps the first, another the last, another all), so a split name could be read
    /// as another tool than the one judged. The chunk is read as strictly as a JSON answer
    /// (`choices` an array of objects…): JavaScript reads `choices[0]` of an object too.
    fn chat(&mut self, mut data: Map<String, Value>) -> Result<bool, Denial> {
        let index = |v: Option<&Value>, what: &str| match v {
            None => Ok(None),
            Some(v) => v
                .as_u64()
                .map(Some)
                .ok_or_else(|| malformed(RULE, format!("a {what} index of the answer is not an unsigned integer"))),
        };
        let mut call = false;
        let choices = llm::opt_array(data.remove("choices"), RULE, "choices")?;
        for (position, choice) in choices.into_iter().enumerate() {
            let mut choice = llm::obj(choice, RULE, "a choice")?;
            let mut delta = match choice.remove("delta") {
                None | Some(Value::Null) => continue,
                Some(d) => llm::obj(d, RULE, "a choice's delta")?,
            };
            let pieces = llm::opt_array(delta.remove("tool_calls"), RULE, "tool_calls")?;
            let legacy = delta.remove("function_call").filter(|f| !f.is_null());
            if pieces.is_empty() && legacy.is_none() {
                continue;
            }
            // Loops that read a chunk's `choices[0]` by position (OpenAI's guide, LangChain)
            // and the SDKs that key choices by `index` must file a call piece alike: a choice
            // carrying one sits at the position its index names (a repeated or absent index
            // would hide a piece from one of them).
            let c = index(choice.get("index"), "choice")?;
            if c != Some(position as u64) {
                return Err(malformed(
                    RULE,
                    "a choice carrying a tool call piece is not at the position its index names in its chunk",
                ));
            }
            let c = position as u64;
            for t in pieces {
                let mut t = llm::obj(t, RULE, "a tool call piece")?;
                let i = index(t.get("index"), "tool call")?
                    .ok_or_else(|| malformed(RULE, "a tool call piece of the answer has no index"))?;
                let p = self.chat.entry((c, i)).or_default();
                let mut part = |key: &str| match t.remove(key) {
                    None | Some(Value::Null) => Ok(None),
                    Some(f) => llm::obj(f, RULE, key).map(Some),
                };
                let (function, custom) = (part("function")?, part("custom")?);
                kind_piece(&mut p.custom, t.get("type"), function.is_some(), custom.is_some())?;
                if let Some(f) = function {
                    name_piece(&mut p.name, f.get("name"))?;
                    join(&mut p.arguments, f.get("arguments"));
                }
                if let Some(f) = custom {
                    name_piece(&mut p.name, f.get("name"))?;
                    join(&mut p.arguments, f.get("input"));
                }
                call = true;
            }
            if let Some(f) = legacy {
                let f = llm::obj(f, RULE, "function_call")?;
                let p = self.chat.entry((c, u64::MAX)).or_default();
                name_piece(&mut p.name, f.get("name"))?;
                join(&mut p.arguments, f.get("arguments"));
                call = true;
            }
        }
        Ok(call)
    }

    fn responses(&mut self, mut data: Map<String, Value>, limits: &Limits) -> Result<bool, Denial> {
        let kind = data.get("type").and_then(Value::as_str).unwrap_or("").to_string();
        let is_call = openai_responses::is_judged_item;
        match kind.as_str() {
            "response.output_item.added" => {
                if let Some(item) = data.get("item").and_then(Value::as_object) {
                    openai_responses::output_item_kind(item)?;
                }
                let Some(item) = data.get("item").filter(|i| is_call(i)) else {
                    return Ok(false);
                };
                let a = self.open(output_index(&data)?)?;
                // A second announcement at one index is a second call to clients that keep
                // items by position, and another name for the first to those keyed by index.
                if a.kind.is_some() {
                    return Err(malformed(
                        RULE,
                        "the answer announces two tool calls at one output_index",
                    ));
                }
                join(&mut a.pieces, item.get("arguments").or_else(|| item.get("input")));
                a.kind = item.get("type").and_then(Value::as_str).map(str::to_string);
                a.name = item.get("name").and_then(Value::as_str).map(str::to_string);
                a.payload = item.as_object().and_then(payload);
                a.id = item.get("id").and_then(Value::as_str).map(str::to_string);
                Ok(true)
            }
            "response.function_call_arguments.delta" | "response.custom_tool_call_input.delta" => {
                let a = self.open(output_index(&data)?)?;
                a.same_item(data.get("item_id"))?;
                join(&mut a.pieces, data.get("delta"));
                Ok(true)
            }
            "response.shell_call_command.added"
            | "response.shell_call_command.delta"
            | "response.shell_call_command.done" => {
                let step = kind.rsplit('.').next().unwrap_or_default();
                self.open(output_index(&data)?)?.shell_command(step, &data)?;
                Ok(true)
            }
            "response.function_call_arguments.done" | "response.custom_tool_call_input.done" => {
                let text = data
                    .get("arguments")
                    .or_else(|| data.get("input"))
                    .and_then(Value::as_str);
                let a = self.open(output_index(&data)?)?;
                a.same_item(data.get("item_id"))?;
                a.done = text.map(str::to_string);
                if let Some(name) = data.get("name").and_then(Value::as_str) {
                    if a.name.as_deref().is_some_and(|n| n != name) {
                        return Err(malformed(RULE, "the answer's events disagree about a tool call's name"));
                    }
                    a.name = Some(name.to_string());
                }
                Ok(true)
            }
            "response.output_item.done" => {
                let index = output_index(&data);
                let Some(Value::Object(mut item)) = data.remove("item") else {
                    return Ok(false);
                };
                let kind = openai_responses::output_item_kind(&item)?;
                let text = item
                    .get("arguments")
                    .or_else(|| item.get("input"))
                    .and_then(Value::as_str)
                    .map(str::to_string);
                let done_payload = payload(&item).map(canonical).transpose()?;
                let done_commands = shell_commands(&item);
                // Most items make one call; a computer call makes one per action.
                let calls = openai_responses::item_calls(&mut item, &kind, limits)?;
                if calls.is_empty() {
                    return Ok(false);
                }
                let a = self.announced.entry(index?).or_default();
                a.same_item(item.get("id"))?;
                // The commands a client put together from the command events are what the
                // judged item runs.
                if a.commands.as_ref().is_some_and(|c| *c != done_commands) {
                    return Err(malformed(
                        RULE,
                        "the answer's events disagree about what a tool call does",
                    ));
                }
                // A client may act on the `added` item (the SDK hands it over as it comes):
                // what it does must be what the judged item does.
                let announced = a.announced_payload(&done_commands)?;
                if announced.is_some() && announced != done_payload {
                    return Err(malformed(
                        RULE,
                        "the answer's events disagree about what a tool call does",
                    ));
                }
                // A client may act on the `added` item's name: it must be the one judged.
                if a.kind.as_deref().is_some_and(|k| k != kind)
                    || a.name.as_deref().is_some_and(|n| calls.iter().any(|c| c.name != n))
                {
                    return Err(malformed(
                        RULE,
                        "the answer's events disagree about which tool a call is",
                    ));
                }
                let pieces = (!a.pieces.is_empty()).then_some(&a.pieces);
                if [pieces, a.done.as_ref()]
                    .into_iter()
                    .flatten()
                    .any(|t| Some(t) != text.as_ref())
                {
                    return Err(malformed(
                        RULE,
                        "the answer's events disagree about a tool call's arguments",
                    ));
                }
                a.closed = true;
                calls.into_iter().for_each(|c| self.add_whole(c));
                Ok(true)
            }
            // An event aigate does not know that carries a call item (an `added` or `done`
            // under a new name): a client applying it would hold a call not judged.
            _ if data.get("item").is_some_and(is_call) => Err(malformed(
                RULE,
                format!("the answer's {kind:?} event carries a tool call aigate does not read there"),
            )),
            // The final response repeats every item: a client reading only it sees them too.
            _ => match data.remove("response") {
                Some(Value::Object(response)) => {
                    let calls = answer_calls(Protocol::OpenaiResponses, response, limits)?;
                    let call = !calls.is_empty();
                    calls.into_iter().for_each(|c| self.add_whole(c));
                    Ok(call)
                }
                _ => Ok(false),
            },
        }
    }

    /// The call at an output index, still open: an event for a call whose item is done
    /// (other arguments, say) is read by some clients and not judged with the item.
    fn open(&mut self, index: u64) -> Result<&mut Announced, Denial> {
        let a = self.announced.entry(index).or_default();
        if a.closed {
            return Err(malformed(
                RULE,
                "the answer adds to a tool call after its item is done: clients could read either",
            ));
        }
        Ok(a)
    }

    fn add_whole(&mut self, call: LlmCall) {
        // As JSON text: unambiguous, and an object's members serialise in one order.
        let key = serde_json::json!([call.name, call.arguments, call.latest]).to_string();
        if self.whole_seen.insert(key) {
            self.whole.push(call);
        }
    }

    fn anthropic(&mut self, name: Option<&str>, data: Map<String, Value>) -> Result<bool, Denial> {
        let kind = data.get("type").and_then(Value::as_str);
        // The SDK skips unnamed and `ping` events and reads the others by their `type`;
        // another reader may go by the name alone. Where the two differ on an event that
        // is part of the message, the stream could be read two ways: refused.
        if name != kind {
            let in_message = |k: Option<&str>| k.is_some_and(|k| MESSAGE_EVENTS.contains(&k));
            if in_message(kind) || in_message(name) {
                return Err(malformed(
                    RULE,
                    "an event of the answer is named one thing and carries another: readers could take it differently",
                ));
            }
            return Ok(false);
        }
        let kind = kind.unwrap_or("");
        let index = data.get("index").and_then(Value::as_u64);
        match kind {
            "message_start" => {
                // The SDK keeps the first message_start only; a second one must not add
                // blocks (it would shift aigate's numbering away from the SDK's).
                if self.started {
                    return Err(malformed(RULE, "the answer starts its message twice"));
                }
                self.started = true;
                // As strictly as a JSON answer: the SDK reads a content object's members too.
                let content = match data.get("message") {
                    None | Some(Value::Null) => Vec::new(),
                    Some(m) => {
                        let mut m = llm::obj(m.clone(), RULE, "the started message")?;
                        llm::opt_array(m.remove("content"), RULE, "content")?
                    }
                };
                let mut call = false;
                for block in &content {
                    call |= self.open_block(block);
                }
                Ok(call)
            }
            "content_block_start" => {
                if index != Some(self.blocks.len() as u64) {
                    return Err(malformed(RULE, "the answer's content blocks arrive out of order"));
                }
                Ok(data.get("content_block").is_some_and(|b| self.open_block(b)))
            }
            "content_block_delta" => {
                let block = index
                    .and_then(|i| usize::try_from(i).ok())
                    .and_then(|i| self.blocks.get_mut(i));
                let Some(block) = block else {
                    return Err(malformed(RULE, "a piece of the answer names no content block"));
                };
                let delta = data.get("delta");
                let json = delta.and_then(|d| d.get("type")).and_then(Value::as_str) == Some("input_json_delta");
                match block {
                    Some(p) if json => {
                        join(&mut p.arguments, delta.and_then(|d| d.get("partial_json")));
                        Ok(true)
                    }
                    Some(_) => Ok(true),
                    None => Ok(false),
                }
            }
            _ => Ok(false),
        }
    }

    /// Adds a content block; `true` when it is a tool call.
    fn open_block(&mut self, block: &Value) -> bool {
        if block.get("type").and_then(Value::as_str) != Some("tool_use") {
            self.blocks.push(None);
            return false;
        }
        let mut p = Pieces::default();
        join(&mut p.name, block.get("name"));
        p.whole = block.get("input").cloned();
        self.blocks.push(Some(p));
        true
    }

    pub(super) fn finish(self, limits: &Limits) -> Result<Vec<LlmCall>, Denial> {
        if self.announced.values().any(|a| !a.closed) {
            return Err(malformed(RULE, "the answer ended inside a tool call"));
        }
        let mut calls = self.whole;
        for p in self.chat.into_values().chain(self.blocks.into_iter().flatten()) {
            // A block's input at its start and in pieces: a reader of the start alone and
            // one of the pieces would act on different arguments.
            if !p.arguments.is_empty()
                && p.whole
                    .as_ref()
                    .is_some_and(|w| w.as_object().is_none_or(|o| !o.is_empty()))
            {
                return Err(malformed(
                    RULE,
                    "a tool call of the answer gives its input both whole and in pieces",
                ));
            }
            let arguments = if p.custom == Some(true) {
                llm::text_arguments(p.arguments)
            } else if p.arguments.is_empty() {
                match p.whole {
                    Some(v @ Value::Object(_)) => v,
                    _ => return Err(malformed(RULE, "a tool call of the answer has no arguments")),
                }
            } else {
                llm::json_arguments(&p.arguments, limits, RULE)?
            };
            if p.name.is_empty() {
                return Err(malformed(RULE, "a tool call of the answer has no name"));
            }
            calls.push(LlmCall {
                name: p.name,
                arguments,
                latest: true,
            });
        }
        Ok(calls)
    }
}

/// What kind of call a Chat piece says it is, as the SDKs read it: `type`, or a non-null
/// `function` or `custom` member (`"custom": null` says nothing). Pieces that disagree,
/// within one piece or across a call's pieces, could be run as a function by one client
/// and a custom tool by another: refused.
fn kind_piece(kind: &mut Option<bool>, declared: Option<&Value>, function: bool, custom: bool) -> Result<(), Denial> {
    let declared = match declared.and_then(Value::as_str) {
        Some("custom") => Some(true),
        Some("function") => Some(false),
        _ => None,
    };
    for said in [declared, function.then_some(false), custom.then_some(true)]
        .into_iter()
        .flatten()
    {
        if kind.is_some_and(|k| k != said) {
            return Err(malformed(
                RULE,
                "a tool call of the answer is both a function and a custom tool: clients could run either",
            ));
        }
        *kind = Some(said);
    }
    Ok(())
}

/// A Chat call's name: given once (an empty piece aside).
fn name_piece(name: &mut String, piece: Option<&Value>) -> Result<(), Denial> {
    match piece.and_then(Value::as_str) {
        Some(s) if !s.is_empty() && !name.is_empty() => Err(malformed(
            RULE,
            "a tool call's name comes in pieces: clients join them differently",
        )),
        _ => {
            join(name, piece);
            Ok(())
        }
    }
}

/// Appends a string piece; anything else adds nothing.
fn join(to: &mut String, piece: Option<&Value>) {
    if let Some(s) = piece.and_then(Value::as_str) {
        to.push_str(s);
    }
}
