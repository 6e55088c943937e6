//! A streamed answer (server-sent events). Text flows through event by event; from the
//! first event of a tool call on, everything is held back until the stream ends, because a
//! call's arguments arrive in pieces and only the whole call can be judged. The held part
//! is then released, or replaced by one error event.
//!
//! The calls are assembled the way the SDKs assemble them from the events: Chat
//! `delta.tool_calls` pieces joined per choice and index, Responses `output_item.done`
//! items (and the final `response`), Anthropic `tool_use` blocks and their
//! `input_json_delta` pieces.

use super::{answer_calls, RULE};
use crate::config::Protocol;
use crate::decision::{Denial, Reason};
use crate::policy::Limits;
use crate::request::llm::{self, malformed, LlmCall};
use crate::request::openai_responses;
use serde_json::{Map, Value};
use std::collections::BTreeMap;

pub struct Stream {
    protocol: Protocol,
    limits: Limits,
    /// Enforce: hold from the first call on. Monitor: only watch.
    hold: bool,
    /// The start of an event not complete yet, not passed on.
    partial: Vec<u8>,
    /// Everything from the first event of a tool call on.
    held: Option<Vec<u8>>,
    calls: Assembly,
    failure: Option<Denial>,
}

/// The stream's end: the calls it carried, and the bytes held back (to release if the
/// calls are allowed).
pub struct Finished {
    pub calls: Result<Vec<LlmCall>, Denial>,
    pub held: Vec<u8>,
}

impl Stream {
    pub fn new(protocol: Protocol, limits: &Limits, hold: bool) -> Stream {
        Stream {
            protocol,
            limits: *limits,
            hold,
            partial: Vec::new(),
            held: None,
            calls: Assembly::default(),
            failure: None,
        }
    }

    /// Takes the next piece of the body; returns what to pass on in its place, or `None`
    /// to pass it on unchanged.
    pub fn feed(&mut self, chunk: &[u8]) -> Option<Vec<u8>> {
        if self.failure.is_some() {
            return self.hold.then(Vec::new);
        }
        self.partial.extend_from_slice(chunk);
        let mut out = Vec::new();
        take_events(&mut self.partial, |event| {
            match self.calls.event(self.protocol, event, &self.limits) {
                Ok(call) if self.held.is_none() && !call => out.extend_from_slice(event),
                Ok(_) => self.held.get_or_insert_with(Vec::new).extend_from_slice(event),
                Err(denial) => {
                    self.failure = Some(denial);
                    return false;
                }
            }
            true
        });
        let kept = self.partial.len() + self.held.as_ref().map_or(0, Vec::len);
        if self.failure.is_none() && kept > self.limits.max_body_bytes {
            self.failure = Some(Denial::new(
                Reason::BodyTooLarge,
                "limits.max_body_bytes",
                format!(
                    "the model's answer holds a tool call and exceeds {} bytes",
                    self.limits.max_body_bytes
                ),
            ));
        }
        if !self.hold {
            // Monitor: everything passes; parsing only follows along.
            self.held = None;
            return None;
        }
        if self.failure.is_some() {
            return Some(out);
        }
        (out != chunk).then_some(out)
    }

    /// The stream ended.
    pub fn finish(mut self) -> Finished {
        // An event the stream ended in the middle of is read as it stands.
        let last = std::mem::take(&mut self.partial);
        if self.failure.is_none() && !last.iter().all(u8::is_ascii_whitespace) {
            if let Err(denial) = self.calls.event(self.protocol, &last, &self.limits) {
                self.failure = Some(denial);
            }
        }
        let mut held = self.held.take().unwrap_or_default();
        held.extend_from_slice(&last);
        let calls = match self.failure.take() {
            Some(denial) => Err(denial),
            None => self.calls.finish(&self.limits),
        };
        Finished { calls, held }
    }
}

/// Hands the complete events at the front of `partial` (each through the blank line ending
/// it) to `each`, in order, while it returns `true`; removes those it was handed.
pub(super) fn take_events(partial: &mut Vec<u8>, mut each: impl FnMut(&[u8]) -> bool) {
    let mut start = 0;
    while let Some(len) = partial.get(start..).and_then(event_end) {
        let event = partial.get(start..start + len).unwrap_or_default();
        start += len;
        if !each(event) {
            break;
        }
    }
    partial.drain(..start.min(partial.len()));
}

/// The length of the first complete event in `buf` (through the blank line ending it).
/// Lines end in `\n`, `\r\n` or `\r`; a trailing `\r` may be half of a `\r\n`, so waits.
fn event_end(buf: &[u8]) -> Option<usize> {
    let mut line_empty = true;
    let mut i = 0;
    while let Some(&b) = buf.get(i) {
        if b != b'\r' && b != b'\n' {
            line_empty = false;
            i += 1;
            continue;
        }
        let mut next = i + 1;
        if b == b'\r' {
            match buf.get(next) {
                Some(b'\n') => next += 1,
                None => return None,
                Some(_) => {}
            }
        }
        if line_empty {
            return Some(next);
        }
        line_empty = true;
        i = next;
    }
    None
}

/// The `event` name and joined `data` lines of one event.
pub(super) fn fields(event: &[u8]) -> Result<(Option<&str>, String), Denial> {
    let text = std::str::from_utf8(event).map_err(|_| malformed(RULE, "an event of the answer is not UTF-8"))?;
    let (mut name, mut data): (Option<&str>, Option<String>) = (None, None);
    for line in text.split(['\n', '\r']) {
        let (field, value) = line.split_once(':').unwrap_or((line, ""));
        let value = value.strip_prefix(' ').unwrap_or(value);
        match field {
            "event" => name = Some(value),
            "data" => match &mut data {
                Some(d) => {
                    d.push('\n');
                    d.push_str(value);
                }
                None => data = Some(value.to_string()),
            },
            _ => {}
        }
    }
    Ok((name, data.unwrap_or_default()))
}

/// A call being put together from pieces.
#[derive(Default)]
struct Pieces {
    name: String,
    /// JSON text of the arguments (a custom tool's input text).
    arguments: String,
    /// Arguments given whole (an Anthropic `tool_use` block's `input` at its start).
    whole: Option<Value>,
    custom: bool,
}

#[derive(Default)]
struct Assembly {
    /// Chat and Anthropic: calls by (choice, index) / (0, block index).
    pieces: BTreeMap<(u64, u64), Pieces>,
    /// Responses: calls delivered whole.
    whole: Vec<LlmCall>,
    /// Responses: call items announced and not yet done.
    open: usize,
}

impl Assembly {
    /// Reads one event; `true` when it belongs to a tool call.
    fn event(&mut self, protocol: Protocol, event: &[u8], limits: &Limits) -> Result<bool, Denial> {
        let (name, data) = fields(event)?;
        if data.is_empty() || data == "[DONE]" {
            return Ok(false);
        }
        let data = match crate::json::parse(data.as_bytes(), limits.max_json_depth) {
            Ok(Value::Object(m)) => m,
            Ok(_) => return Ok(false),
            Err(e) => return Err(malformed(RULE, format!("an event of the answer: {e}"))),
        };
        match protocol {
            Protocol::OpenaiChat => Ok(self.chat(data)),
            Protocol::OpenaiResponses => self.responses(data, limits),
            Protocol::AnthropicMessages => Ok(self.anthropic(name, data)),
            Protocol::Mcp | Protocol::Action => Ok(false),
        }
    }

    fn chat(&mut self, data: Map<String, Value>) -> bool {
        let mut call = false;
        for choice in data.get("choices").and_then(Value::as_array).into_iter().flatten() {
            let c = choice.get("index").and_then(Value::as_u64).unwrap_or(0);
            let Some(delta) = choice.get("delta") else { continue };
            for (i, t) in delta
                .get("tool_calls")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .enumerate()
            {
                let i = t.get("index").and_then(Value::as_u64).unwrap_or(i as u64);
                let p = self.pieces.entry((c, i)).or_default();
                if let Some(f) = t.get("function") {
                    join(&mut p.name, f.get("name"));
                    join(&mut p.arguments, f.get("arguments"));
                }
                if let Some(f) = t.get("custom") {
                    p.custom = true;
                    join(&mut p.name, f.get("name"));
                    join(&mut p.arguments, f.get("input"));
                }
                call = true;
            }
            if let Some(f) = delta.get("function_call").filter(|f| !f.is_null()) {
                let p = self.pieces.entry((c, u64::MAX)).or_default();
                join(&mut p.name, f.get("name"));
                join(&mut p.arguments, f.get("arguments"));
                call = true;
            }
        }
        call
    }

    fn responses(&mut self, mut data: Map<String, Value>, limits: &Limits) -> Result<bool, Denial> {
        let kind = data.get("type").and_then(Value::as_str).unwrap_or("").to_string();
        let is_call = |item: &Value| {
            item.get("type")
                .and_then(Value::as_str)
                .is_some_and(openai_responses::is_client_call)
        };
        match kind.as_str() {
            "response.output_item.added" => {
                let call = data.get("item").is_some_and(is_call);
                self.open += usize::from(call);
                Ok(call)
            }
            "response.output_item.done" => {
                let Some(Value::Object(mut item)) = data.remove("item") else {
                    return Ok(false);
                };
                let Some(kind) = item.get("type").and_then(Value::as_str).map(str::to_string) else {
                    return Ok(false);
                };
                let Some(call) = openai_responses::item_call(&mut item, &kind, limits)? else {
                    return Ok(false);
                };
                self.open = self.open.saturating_sub(1);
                self.add_whole(call);
                Ok(true)
            }
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

    fn add_whole(&mut self, call: LlmCall) {
        if !self.whole.contains(&call) {
            self.whole.push(call);
        }
    }

    fn anthropic(&mut self, name: Option<&str>, data: Map<String, Value>) -> bool {
        let kind = data.get("type").and_then(Value::as_str).or(name).unwrap_or("");
        let index = data.get("index").and_then(Value::as_u64).unwrap_or(0);
        match kind {
            "content_block_start" => {
                let Some(block) = data.get("content_block") else {
                    return false;
                };
                if block.get("type").and_then(Value::as_str) != Some("tool_use") {
                    return false;
                }
                let p = self.pieces.entry((0, index)).or_default();
                join(&mut p.name, block.get("name"));
                p.whole = block.get("input").cloned();
                true
            }
            "content_block_delta" => {
                let delta = data.get("delta");
                if delta.and_then(|d| d.get("type")).and_then(Value::as_str) != Some("input_json_delta") {
                    return false;
                }
                if let Some(p) = self.pieces.get_mut(&(0, index)) {
                    join(&mut p.arguments, delta.and_then(|d| d.get("partial_json")));
                }
                true
            }
            _ => false,
        }
    }

    fn finish(self, limits: &Limits) -> Result<Vec<LlmCall>, Denial> {
        if self.open > 0 {
            return Err(malformed(RULE, "the answer ended inside a tool call"));
        }
        let mut calls = self.whole;
        for p in self.pieces.into_values() {
            let arguments = if p.custom {
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

/// Appends a string piece; anything else adds nothing.
fn join(to: &mut String, piece: Option<&Value>) {
    if let Some(s) = piece.and_then(Value::as_str) {
        to.push_str(s);
    }
}
