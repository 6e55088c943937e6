//! MCP answers cut down to what the caller may see. List answers (`tools/list`,
//! `resources/list`, `resources/templates/list`, `prompts/list`): an agent is not shown
//! tools it cannot call or data outside its boundary (their names and descriptions are
//! themselves information, and a tool description is a classic carrier of injected
//! instructions). Resources in answers: a tool's result (`content`) or a prompt's messages
//! may link or embed a resource, and a resource read's `contents` name theirs; one outside
//! the caller's boundary is withheld, so a server that hands out another tenant's data
//! does not hand it to this caller.
//! Answers come as JSON (one message or a batch) or as server-sent events, one JSON-RPC
//! message per event. A message is judged by its shape, whatever its id: any result
//! holding a list, content blocks, contents or messages. Pairing answers with requests by
//! id would let a client pick an id the server echoes differently (`-0` comes back as `0`,
//! `1.0` as `1`), repeat an id in a batch, or have an answer replayed on another stream.

use super::events::{ambiguity, fields, Events};
use crate::decision::{Denial, Reason};
use crate::policy::Limits;
use crate::request::llm::malformed;
use crate::request::mcp::Listing;
use crate::request::splice::{self, Span, Step};
use serde_json::{Map, Value};
use std::collections::HashMap;

/// What an answer shows the caller that the policy may refuse.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shown {
    /// An item of a list result.
    Listed(Listing),
    /// A resource, by its `uri`: a tool's result or a prompt's message links or embeds
    /// it, or a resource read returns its contents.
    Resource,
    /// A task the server created for the caller (the object holding its `taskId`): shown
    /// only once it is bound to the caller, so that the caller alone can follow it.
    Created,
}

/// The rule an unreadable MCP answer is refused under.
const RULE: &str = "answer";

/// Which items and resources the caller may see.
pub type Keep<'a> = &'a dyn Fn(Shown, &Map<String, Value>) -> bool;

/// What a content block refused to the caller becomes: still a block, so the answer keeps
/// its shape, saying that something was withheld and not what (a URI is information).
const WITHHELD_BLOCK: &[u8] =
    br#"{"type":"text","text":"aigate: a resource outside the caller's data boundary was withheld"}"#;

/// Where in the answer a value sits: the steps from its root.
type Path<'d> = Vec<Step<'d>>;

/// What becomes of something the caller may not see.
enum Edit<'d> {
    /// A list's element goes, with its separator.
    Drop(Path<'d>),
    /// A value becomes other JSON text.
    Replace(Path<'d>, &'static [u8]),
    /// Members go first in the object at the path (JSON text ending in a comma: the
    /// object has members already).
    Prepend(Path<'d>, &'static [u8]),
}

/// Every edit of one answer, and how many of them hide something from the caller.
#[derive(Default)]
struct Edits<'d> {
    edits: Vec<Edit<'d>>,
    hidden: usize,
}

impl<'d> Edits<'d> {
    fn hide(&mut self, edit: Edit<'d>) {
        self.edits.push(edit);
        self.hidden += 1;
    }
}

/// `path` and then `steps`.
fn at<'d>(path: &[Step<'d>], steps: &[Step<'d>]) -> Path<'d> {
    [path, steps].concat()
}

/// The JSON-RPC message (or batch) `body` with what `keep` refuses removed: list items and
/// resource contents dropped, content blocks replaced by a notice. Every other byte is the
/// server's. The rewritten document and how many went, or `None` when nothing did (the
/// body then passes as it is).
pub fn filter(body: &[u8], limits: &Limits, keep: Keep) -> Result<Option<(Vec<u8>, usize)>, Denial> {
    // Keys differing only in case are refused as in requests: clients built on Go's
    // encoding/json (mcp-go) read `"Tools"` or an item's `"Name"` as the member aigate judged.
    let doc = crate::json::parse_request(body, limits.max_json_depth)
        .map_err(|e| malformed(RULE, format!("the server's answer: {e}")))?;
    let mut edits = Edits::default();
    match &doc {
        Value::Array(messages) => {
            for (i, m) in messages.iter().enumerate() {
                judge_message(m, &[Step::Index(i)], keep, &mut edits)?;
            }
        }
        message => judge_message(message, &[], keep, &mut edits)?,
    }
    // Nothing hidden may still change the answer: a per-caller view marked private.
    if edits.edits.is_empty() {
        return Ok(None);
    }
    let bytes = write(body, &edits.edits)
        .ok_or_else(|| Denial::new(Reason::InternalError, RULE, "could not rewrite the server's answer"))?;
    Ok(Some((bytes, edits.hidden)))
}

/// `body` with the edits made: the elements dropped from each list, the values replaced.
/// The document is walked once for every edit together: an answer may withhold thousands
/// of blocks, and finding each from the root again would cost their number times the
/// answer's size.
fn write(body: &[u8], edits: &[Edit]) -> Option<Vec<u8>> {
    // Each list is read once, whatever number of its elements go.
    let mut lists: Vec<(&[Step], Vec<usize>)> = Vec::new();
    let mut list_at: HashMap<&[Step], usize> = HashMap::new();
    // Where each edit other than a drop applies, in the order of `edits`.
    let mut paths: Vec<&[Step]> = Vec::new();
    for edit in edits {
        match edit {
            Edit::Drop(path) => {
                let (Step::Index(i), list) = path.split_last()? else {
                    return None;
                };
                let k = *list_at.entry(list).or_insert_with(|| {
                    lists.push((list, Vec::new()));
                    lists.len() - 1
                });
                lists.get_mut(k)?.1.push(*i);
            }
            Edit::Replace(path, _) | Edit::Prepend(path, _) => paths.push(path),
        }
    }
    let edited = paths.len();
    paths.extend(lists.iter().map(|(list, _)| *list));
    let found = splice::locate_all(body, &paths)?;
    let (at_edits, at_lists) = found.split_at_checked(edited)?;
    let mut spans: Vec<(Span, &[u8])> = Vec::with_capacity(edits.len());
    let replaced = edits.iter().filter(|e| !matches!(e, Edit::Drop(_)));
    for (edit, &(start, end)) in replaced.zip(at_edits) {
        match edit {
            Edit::Replace(_, with) => spans.push(((start, end), with)),
            Edit::Prepend(_, with) => {
                if body.get(start) != Some(&b'{') {
                    return None;
                }
                spans.push(((start + 1, start + 1), with));
            }
            Edit::Drop(_) => return None,
        }
    }
    for ((_, indexes), &list) in lists.iter().zip(at_lists) {
        let elements = splice::elements(body, list)?;
        let mut remove = vec![false; elements.len()];
        for i in indexes {
            *remove.get_mut(*i)? = true;
        }
        spans.extend(splice::cuts(&elements, &remove).into_iter().map(|cut| (cut, &[][..])));
    }
    splice::rewrite(body, spans)
}

const LISTINGS: [Listing; 5] = [
    Listing::Tools,
    Listing::Resources,
    Listing::ResourceTemplates,
    Listing::Prompts,
    Listing::Tasks,
];

/// The members of a list answer aigate reads, at each level: the message, its result,
/// and an item.
const MESSAGE_READ: [&str; 2] = ["result", "params"];
const PARAMS_READ: [&str; 2] = ["messages", "tools"];
const RESULT_READ: [&str; 15] = [
    "tools",
    "resources",
    "resourceTemplates",
    "prompts",
    "tasks",
    "cacheScope",
    "ttlMs",
    "content",
    "contents",
    "messages",
    "inputRequests",
    "task",
    "taskId",
    "resultType",
    "result",
];
const ITEM_READ: [&str; 4] = ["name", "uri", "uriTemplate", "taskId"];
const TASK_READ: [&str; 3] = ["taskId", "ttl", "ttlMs"];
const MESSAGE_ITEM_READ: [&str; 1] = ["content"];
const BLOCK_READ: [&str; 4] = ["type", "uri", "resource", "content"];
const RESOURCE_READ: [&str; 1] = ["uri"];

fn refuse_miscased(object: &Map<String, Value>, read: &[&str]) -> Result<(), Denial> {
    object.keys().try_for_each(|key| {
        crate::request::refuse_miscased(key, read, RULE)?;
        // Clients whose models also take snake_case names (pydantic's populate_by_name)
        // read `resource_templates` as `resourceTemplates`.
        crate::request::refuse_snake_cased(key, read, RULE)
    })
}

/// One JSON-RPC message at `path`.
fn judge_message<'d>(m: &'d Value, path: &[Step<'d>], keep: Keep, edits: &mut Edits<'d>) -> Result<(), Denial> {
    if let Some(message) = m.as_object() {
        refuse_miscased(message, &MESSAGE_READ)?;
    }
    // A message tied to a task (a status, a progress notification, a question the task asks
    // its caller) belongs to that task's caller alone.
    // (One that names it in another shape than a `taskId` names no task of the caller's.)
    let unnamed = Map::new();
    for part in ["params", "result"] {
        if let Some(task) = m.get(part).and_then(related_task) {
            own_task(task.as_object().unwrap_or(&unnamed), keep)?;
        }
    }
    if let Some(params) = m.get("params").and_then(Value::as_object) {
        let path = at(path, &[Step::Key("params")]);
        // A request of the server's (`sampling/createMessage`): messages for the client's model.
        withhold_in_request(params, &path, keep, edits)?;
        if params.contains_key("taskId") {
            // A task's state pushed to the client (`notifications/tasks`): the caller's
            // own tasks only; once done it carries the result, and while it waits, the
            // requests the server makes. (A request of the server's naming a task, its
            // `tasks/get` of a task the client runs for it, is no state of the caller's.)
            refuse_miscased(params, &RESULT_READ)?;
            // `"id": null` reads as a notification to clients that ignore the member.
            if m.get("id").is_none_or(Value::is_null) {
                own_task(params, keep)?;
            }
            judge_task_state(params, &path, keep, edits)?;
        }
    }
    let Some(result) = m.get("result").and_then(Value::as_object) else {
        return Ok(());
    };
    judge_result(result, &at(path, &[Step::Key("result")]), keep, edits)
}

/// A result at `path`: a list, a tool's result, a resource read, a prompt, a task created
/// or a task's state.
fn judge_result<'d>(
    result: &'d Map<String, Value>,
    path: &[Step<'d>],
    keep: Keep,
    edits: &mut Edits<'d>,
) -> Result<(), Denial> {
    let before = edits.hidden;
    refuse_miscased(result, &RESULT_READ)?;
    for listing in LISTINGS {
        hide_unlisted(result, listing, path, keep, edits)?;
    }
    // A task created in place of the result: bound to the caller before it learns the id.
    if let Some(task) = crate::tasks::created(result).map_err(|m| malformed(RULE, m))? {
        refuse_miscased(task, &TASK_READ)?;
        if !keep(Shown::Created, task) {
            return Err(Denial::new(
                Reason::InternalError,
                RULE,
                "the server created a task that aigate could not bind to its caller (no taskId or lifetime it \
                 can read, the caller holding limits.max_tasks_per_caller tasks already, the record full, or a \
                 GET's stream, which answers no request of the caller's, without identity.bind_session), \
                 so it is not shown",
            ));
        }
    } else if result.contains_key("taskId") {
        // A task's state (`tasks/get`, `tasks/cancel`): the caller's own tasks only (a task
        // just created is, being bound now).
        own_task(result, keep)?;
    }
    // A tool's result (a task's too): content blocks.
    if let Some(blocks) = result.get("content").filter(|c| c.is_array()) {
        withhold_blocks(blocks, &at(path, &[Step::Key("content")]), keep, edits)?;
    }
    // A resource read: the contents of each resource it returns.
    if let Some(contents) = result.get("contents").and_then(Value::as_array) {
        for item in contents.iter().filter_map(Value::as_object) {
            refuse_miscased(item, &RESOURCE_READ)?;
        }
        for (i, item) in contents.iter().enumerate() {
            if !item.as_object().is_some_and(|o| keep(Shown::Resource, o)) {
                edits.hide(Edit::Drop(at(path, &[Step::Key("contents"), Step::Index(i)])));
            }
        }
    }
    // A prompt's messages.
    if let Some(messages) = result.get("messages") {
        withhold_in_messages(messages, &at(path, &[Step::Key("messages")]), keep, edits)?;
    }
    judge_task_state(result, path, keep, edits)?;
    // A list or a read judged for one caller is that caller's view, whatever was hidden
    // from it: cached for all (`public`), another caller would be served it. A result
    // with a lifetime (`ttlMs`) and no scope reads as `public` (the schema's default), so
    // it is given one; without a lifetime nothing caches it. (A task's state has a
    // `ttlMs` of its own, the task's lifetime.)
    let per_caller = LISTINGS.iter().any(|l| result.contains_key(l.items_key())) || result.contains_key("contents");
    if per_caller || edits.hidden > before {
        match result.get("cacheScope") {
            Some(scope) if scope.as_str() != Some("private") => {
                let scope = at(path, &[Step::Key("cacheScope")]);
                edits.edits.push(Edit::Replace(scope, br#""private""#));
            }
            None if result.contains_key("ttlMs") && !result.contains_key("taskId") => {
                edits
                    .edits
                    .push(Edit::Prepend(path.to_vec(), br#""cacheScope":"private","#));
            }
            _ => {}
        }
    }
    Ok(())
}

/// Drops the items of the `listing` in `holder` (its `tools`, its `resources`…) that the
/// caller may not see.
fn hide_unlisted<'d>(
    holder: &'d Map<String, Value>,
    listing: Listing,
    path: &[Step<'d>],
    keep: Keep,
    edits: &mut Edits<'d>,
) -> Result<(), Denial> {
    let key = listing.items_key();
    let Some(items) = holder.get(key).and_then(Value::as_array) else {
        return Ok(());
    };
    for item in items.iter().filter_map(Value::as_object) {
        refuse_miscased(item, &ITEM_READ)?;
    }
    for (i, item) in items.iter().enumerate() {
        if !item.as_object().is_some_and(|o| keep(Shown::Listed(listing), o)) {
            edits.hide(Edit::Drop(at(path, &[Step::Key(key), Step::Index(i)])));
        }
    }
    Ok(())
}

/// The task a message says it belongs to (`_meta["io.modelcontextprotocol/related-task"]`,
/// holding its `taskId`).
fn related_task(part: &Value) -> Option<&Value> {
    part.get("_meta")?.get("io.modelcontextprotocol/related-task")
}

/// A task's state (`taskId` and what goes with it) shown to the caller must be of one of
/// its own tasks: a server answering with another caller's hands over that caller's
/// status and result.
fn own_task(state: &Map<String, Value>, keep: Keep) -> Result<(), Denial> {
    if keep(Shown::Listed(Listing::Tasks), state) {
        return Ok(());
    }
    Err(Denial::new(
        Reason::DataBoundary,
        RULE,
        "the server's answer gives the state of a task that was not created for this caller",
    ))
}

/// What a result or a task's state carries for the client to act on: the requests a
/// server makes while it waits for input (MCP's multi-round calls, a task's
/// `input_required`: a sampling request's messages go to the client's model), and the
/// result a finished task carries in place (the tasks extension's `tasks/get` and
/// `notifications/tasks`).
fn judge_task_state<'d>(
    state: &'d Map<String, Value>,
    path: &[Step<'d>],
    keep: Keep,
    edits: &mut Edits<'d>,
) -> Result<(), Denial> {
    if let Some(requests) = state.get("inputRequests").and_then(Value::as_object) {
        for (name, request) in requests {
            let Some(request) = request.as_object() else { continue };
            refuse_miscased(request, &MESSAGE_READ)?;
            if let Some(params) = request.get("params").and_then(Value::as_object) {
                let steps = [Step::Key("inputRequests"), Step::Key(name), Step::Key("params")];
                withhold_in_request(params, &at(path, &steps), keep, edits)?;
            }
        }
    }
    if let Some(inner) = state.get("result").and_then(Value::as_object) {
        judge_result(inner, &at(path, &[Step::Key("result")]), keep, edits)?;
    }
    Ok(())
}

/// The parameters of a request the server makes of the client: its `messages`, if any,
/// and the `tools` a sampling request offers the client's model (MCP 2025-11-25), which it
/// is shown as a `tools/list` answer would show them: only those the caller may call.
fn withhold_in_request<'d>(
    params: &'d Map<String, Value>,
    path: &[Step<'d>],
    keep: Keep,
    edits: &mut Edits<'d>,
) -> Result<(), Denial> {
    refuse_miscased(params, &PARAMS_READ)?;
    hide_unlisted(params, Listing::Tools, path, keep, edits)?;
    match params.get("messages") {
        Some(messages) => withhold_in_messages(messages, &at(path, &[Step::Key("messages")]), keep, edits),
        None => Ok(()),
    }
}

/// Messages (a prompt's, a sampling request's): each holds a content block, or a list of
/// them.
fn withhold_in_messages<'d>(
    messages: &'d Value,
    path: &[Step<'d>],
    keep: Keep,
    edits: &mut Edits<'d>,
) -> Result<(), Denial> {
    for (i, message) in messages.as_array().into_iter().flatten().enumerate() {
        let Some(message) = message.as_object() else { continue };
        refuse_miscased(message, &MESSAGE_ITEM_READ)?;
        if let Some(content) = message.get("content") {
            withhold_blocks(content, &at(path, &[Step::Index(i), Step::Key("content")]), keep, edits)?;
        }
    }
    Ok(())
}

/// A content block, or a list of them.
fn withhold_blocks<'d>(content: &'d Value, path: &[Step<'d>], keep: Keep, edits: &mut Edits<'d>) -> Result<(), Denial> {
    match content {
        Value::Array(blocks) => blocks
            .iter()
            .enumerate()
            .try_for_each(|(i, block)| withhold_block(block, &at(path, &[Step::Index(i)]), keep, edits)),
        block => withhold_block(block, path, keep, edits),
    }
}

/// A content block that links (`resource_link`) or embeds (`resource`) a resource the
/// caller may not see becomes a text block saying so. A tool's result in a conversation
/// (`tool_result`) holds blocks of its own.
fn withhold_block<'d>(block: &'d Value, path: &[Step<'d>], keep: Keep, edits: &mut Edits<'d>) -> Result<(), Denial> {
    let Some(fields) = block.as_object() else {
        return Ok(());
    };
    refuse_miscased(fields, &BLOCK_READ)?;
    if fields.get("type").and_then(Value::as_str) == Some("tool_result") {
        return match block.get("content") {
            Some(content) => withhold_blocks(content, &at(path, &[Step::Key("content")]), keep, edits),
            None => Ok(()),
        };
    }
    let none = Map::new();
    // A block without a type is read by its members, as lenient clients fill the type in
    // (an embedded `resource`, or a link's `uri`).
    let kind = match fields.get("type") {
        Some(kind) => kind.as_str(),
        None if fields.contains_key("resource") => Some("resource"),
        None if fields.contains_key("uri") => Some("resource_link"),
        None => None,
    };
    let resource = match kind {
        Some("resource_link") => fields,
        Some("resource") => match fields.get("resource") {
            Some(Value::Object(embedded)) => {
                refuse_miscased(embedded, &RESOURCE_READ)?;
                embedded
            }
            // No resource to judge, nothing to show: withheld (clients refuse it anyway).
            _ => &none,
        },
        _ => return Ok(()),
    };
    if !keep(Shown::Resource, resource) {
        edits.hide(Edit::Replace(path.to_vec(), WITHHELD_BLOCK));
    }
    Ok(())
}

/// A list answer streamed as server-sent events: each complete event passes, its message
/// filtered; an event not complete yet waits for the rest.
pub struct ListStream {
    limits: Limits,
    /// Enforce: rewrite. Monitor: only count.
    rewrite: bool,
    events: Events,
    hidden: usize,
    failure: Option<Denial>,
}

impl ListStream {
    pub fn new(limits: &Limits, rewrite: bool) -> ListStream {
        ListStream {
            limits: *limits,
            rewrite,
            events: Events::default(),
            hidden: 0,
            failure: None,
        }
    }

    /// How many items were hidden so far.
    pub fn hidden(&self) -> usize {
        self.hidden
    }

    /// Whether part of an event is held, waiting for its end: cut there, the stream never
    /// brought it to the client.
    pub fn holds_part_of_an_event(&self) -> bool {
        self.events.waiting() > 0
    }

    /// Takes the next piece; returns what to pass on in its place, or `None` to pass it on
    /// unchanged.
    pub fn feed(&mut self, chunk: &[u8], keep: Keep) -> Option<Vec<u8>> {
        if self.failure.is_some() {
            return self.rewrite.then(Vec::new);
        }
        self.events.push(chunk);
        let mut out = Vec::new();
        let too_large = || {
            Denial::new(
                Reason::BodyTooLarge,
                "limits.max_body_bytes",
                format!(
                    "an event of the server's answer exceeds {} bytes",
                    self.limits.max_body_bytes
                ),
            )
        };
        // However it arrived (in pieces, or whole in one read), an event has one limit.
        let max = self.limits.max_body_bytes;
        // Refused before it is parsed: nothing is read of an event over the limit.
        self.events.take(|event| {
            let judged = match event.len() {
                n if n > max => Err(too_large()),
                _ => filter_event(event, &self.limits, keep),
            };
            match judged {
                Ok(Some((rewritten, n))) => {
                    self.hidden += n;
                    out.extend_from_slice(&rewritten);
                    true
                }
                Ok(None) => {
                    out.extend_from_slice(event);
                    true
                }
                Err(denial) => {
                    self.failure = Some(denial);
                    false
                }
            }
        });
        if self.failure.is_none() && self.events.waiting() > max {
            self.failure = Some(too_large());
        }
        if !self.rewrite {
            return None;
        }
        (out != chunk).then_some(out)
    }

    /// The stream ended: how many items were hidden, why it could not be read (if so), and
    /// what is left to pass on (an event the stream ended in the middle of, filtered).
    pub fn finish(mut self, keep: Keep) -> (usize, Option<Denial>, Vec<u8>) {
        let last = std::mem::take(&mut self.events).rest();
        let mut rest = Vec::new();
        if self.failure.is_none() && !last.iter().all(u8::is_ascii_whitespace) {
            match filter_event(&last, &self.limits, keep) {
                Ok(Some((rewritten, n))) => {
                    self.hidden += n;
                    rest = rewritten;
                }
                Ok(None) => rest = last,
                Err(denial) => self.failure = Some(denial),
            }
        }
        // Monitor: every byte passed already.
        if !self.rewrite || self.failure.is_some() {
            rest.clear();
        }
        (self.hidden, self.failure, rest)
    }
}

/// One event with its message filtered: its other fields kept, its data on as many lines
/// as the server wrote it on.
fn filter_event(event: &[u8], limits: &Limits, keep: Keep) -> Result<Option<(Vec<u8>, usize)>, Denial> {
    // Every reader must see the same message: a line a BOM opens is data to some clients'
    // decoders and an unknown field to others' (the Python SDK's).
    if let Some(problem) = ambiguity(event) {
        return Err(malformed(RULE, problem));
    }
    let (_, data) = fields(event).ok_or_else(|| malformed(RULE, "an event of the server's answer is not UTF-8"))?;
    if data.trim().is_empty() {
        return Ok(None);
    }
    let Some((json, hidden)) = filter(data.as_bytes(), limits, keep)? else {
        return Ok(None);
    };
    let text = String::from_utf8_lossy(event);
    // Lines end as the server ended them (a lone carriage return was refused above).
    let eol: &[u8] = match event.iter().position(|b| *b == b'\n') {
        Some(i) if i > 0 && event.get(i - 1) == Some(&b'\r') => b"\r\n",
        _ => b"\n",
    };
    let mut out = Vec::with_capacity(json.len() + 64);
    for line in text.split(['\n', '\r']).filter(|l| !l.is_empty()) {
        let bare = line.strip_prefix('\u{feff}').unwrap_or(line);
        let field = bare.split_once(':').map_or(bare, |(f, _)| f);
        if field != "data" {
            out.extend_from_slice(line.as_bytes());
            out.extend_from_slice(eol);
        }
    }
    // The data was joined with `\n` from its lines; JSON text holds no raw line break
    // inside a string, so each line of it is a data line again.
    for line in json.split(|b| *b == b'\n') {
        out.extend_from_slice(b"data: ");
        out.extend_from_slice(line);
        out.extend_from_slice(eol);
    }
    out.extend_from_slice(eol);
    Ok(Some((out, hidden)))
}
