//! MCP list answers (`tools/list`, `resources/list`, `resources/templates/list`,
//! `prompts/list`) cut down to what the caller may use: an agent is not shown tools it
//! cannot call or data outside its boundary (their names and descriptions are themselves
//! information, and a tool description is a classic carrier of injected instructions).
//! Answers come as JSON (one message or a batch) or as server-sent events, one JSON-RPC
//! message per event. A message is filtered by its shape, whatever its id: any result
//! holding a `tools`, `resources`, `resourceTemplates` or `prompts` list. Pairing answers
//! with requests by id would let a client pick an id the server echoes differently (`-0`
//! comes back as `0`, `1.0` as `1`), repeat an id in a batch, or have a list replayed on
//! another stream.

use super::events::{bom_opens_a_line, fields, Events};
use super::RULE;
use crate::decision::{Denial, Reason};
use crate::policy::Limits;
use crate::request::llm::malformed;
use crate::request::mcp::Listing;
use serde_json::{Map, Value};

/// Which items the caller may see.
pub type Keep<'a> = &'a dyn Fn(Listing, &Map<String, Value>) -> bool;

/// The JSON-RPC message (or batch) `body` with the items `keep` refuses removed from its
/// list results: the rewritten document and how many items went, or `None` when nothing
/// did (the body then passes as it is).
pub fn filter(body: &[u8], limits: &Limits, keep: Keep) -> Result<Option<(Vec<u8>, usize)>, Denial> {
    // Keys differing only in case are refused as in requests: clients built on Go's
    // encoding/json (mcp-go) read `"Tools"` or an item's `"Name"` as the member aigate judged.
    let mut doc = crate::json::parse_request(body, limits.max_json_depth)
        .map_err(|e| malformed(RULE, format!("the server's answer: {e}")))?;
    let hidden = match &mut doc {
        Value::Array(messages) => {
            let mut hidden = 0;
            for m in messages {
                hidden += filter_message(m, keep)?;
            }
            hidden
        }
        message => filter_message(message, keep)?,
    };
    if hidden == 0 {
        return Ok(None);
    }
    let bytes = serde_json::to_vec(&doc)
        .map_err(|_| Denial::new(Reason::InternalError, RULE, "could not rewrite the server's answer"))?;
    Ok(Some((bytes, hidden)))
}

const LISTINGS: [Listing; 4] = [
    Listing::Tools,
    Listing::Resources,
    Listing::ResourceTemplates,
    Listing::Prompts,
];

/// The members of a list answer aigate reads, at each level: the message, its result,
/// and an item.
const MESSAGE_READ: [&str; 1] = ["result"];
const RESULT_READ: [&str; 5] = ["tools", "resources", "resourceTemplates", "prompts", "cacheScope"];
const ITEM_READ: [&str; 3] = ["name", "uri", "uriTemplate"];

fn refuse_miscased(object: &Map<String, Value>, read: &[&str]) -> Result<(), Denial> {
    object
        .keys()
        .try_for_each(|key| crate::request::refuse_miscased(key, read, RULE))
}

fn filter_message(m: &mut Value, keep: Keep) -> Result<usize, Denial> {
    if let Some(message) = m.as_object() {
        refuse_miscased(message, &MESSAGE_READ)?;
    }
    let Some(result) = m.get_mut("result").and_then(Value::as_object_mut) else {
        return Ok(0);
    };
    refuse_miscased(result, &RESULT_READ)?;
    let mut hidden = 0;
    for listing in LISTINGS {
        if let Some(items) = result.get_mut(listing.items_key()).and_then(Value::as_array_mut) {
            for item in items.iter().filter_map(Value::as_object) {
                refuse_miscased(item, &ITEM_READ)?;
            }
            let before = items.len();
            items.retain(|item| item.as_object().is_some_and(|o| keep(listing, o)));
            hidden += before - items.len();
        }
    }
    // A list cut for one caller must not be cached for all.
    if hidden > 0 && result.contains_key("cacheScope") {
        result.insert("cacheScope".into(), Value::String("private".into()));
    }
    Ok(hidden)
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

    /// The stream ended: how many items were hidden (or why it could not be read), and
    /// what is left to pass on (an event the stream ended in the middle of, filtered).
    pub fn finish(mut self, keep: Keep) -> (Result<usize, Denial>, Vec<u8>) {
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
        if !self.rewrite {
            rest.clear();
        }
        match self.failure {
            Some(denial) => (Err(denial), Vec::new()),
            None => (Ok(self.hidden), rest),
        }
    }
}

/// One event with its message filtered: its other fields kept, its data in one line.
fn filter_event(event: &[u8], limits: &Limits, keep: Keep) -> Result<Option<(Vec<u8>, usize)>, Denial> {
    // Every reader must see the same message: a line a BOM opens is data to some clients'
    // decoders and an unknown field to others' (the Python SDK's).
    if bom_opens_a_line(event) {
        return Err(malformed(
            RULE,
            "a byte-order mark opens a line of the server's answer: clients read it differently",
        ));
    }
    let (_, data) = fields(event).ok_or_else(|| malformed(RULE, "an event of the server's answer is not UTF-8"))?;
    if data.trim().is_empty() {
        return Ok(None);
    }
    let Some((json, hidden)) = filter(data.as_bytes(), limits, keep)? else {
        return Ok(None);
    };
    let text = String::from_utf8_lossy(event);
    let mut out = Vec::with_capacity(json.len() + 64);
    for line in text.split(['\n', '\r']).filter(|l| !l.is_empty()) {
        let bare = line.strip_prefix('\u{feff}').unwrap_or(line);
        let field = bare.split_once(':').map_or(bare, |(f, _)| f);
        if field != "data" {
            out.extend_from_slice(line.as_bytes());
            out.push(b'\n');
        }
    }
    out.extend_from_slice(b"data: ");
    out.extend_from_slice(&json);
    out.extend_from_slice(b"\n\n");
    Ok(Some((out, hidden)))
}
