//! What the model answers, on LLM routes that judge it (`model_calls: judge`): the tool
//! calls a response asks the client to run are judged like the calls of a request, before
//! the client sees them. A model talked into acting for another customer (by a prompt
//! injected into a retrieved document, say) is stopped here, not after the client ran
//! the call with its own local function.
//!
//! A JSON answer is read whole. A stream of server-sent events flows through as it comes
//! until the first event of a tool call; from there it is held back until it ends
//! ([`stream`]).

mod assembly;
pub mod events;
pub mod listing;
pub mod redirect;
pub mod stream;

use crate::config::Protocol;
use crate::decision::Denial;
use crate::policy::Limits;
use crate::request::llm::{self, obj, opt_array, LlmCall};
use crate::request::{anthropic, openai_chat, openai_responses};
use serde_json::{json, Map, Value};

const RULE: &str = "model_calls";

/// How a response body is framed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Json,
    EventStream,
}

/// The format of a response from its `content-type`; `None` for one aigate cannot read.
pub fn format(content_type: &[u8]) -> Option<Format> {
    if crate::media::is_json_type(content_type) {
        Some(Format::Json)
    } else if crate::media::is_event_stream(content_type) {
        Some(Format::EventStream)
    } else {
        None
    }
}

/// The tool calls of a complete JSON answer, parsed as strictly as a request.
pub fn calls(protocol: Protocol, body: &[u8], limits: &Limits) -> Result<Vec<LlmCall>, Denial> {
    let top = llm::object(body, limits, RULE)?;
    llm::refuse_miscased_structure(&top, RULE)?;
    answer_calls(protocol, top, limits)
}

/// The calls of one answer object (a completion, a response, a message).
fn answer_calls(protocol: Protocol, mut top: Map<String, Value>, limits: &Limits) -> Result<Vec<LlmCall>, Denial> {
    let mut calls = Vec::new();
    match protocol {
        Protocol::OpenaiChat => {
            for choice in opt_array(top.remove("choices"), RULE, "choices")? {
                let mut choice = obj(choice, RULE, "a choice")?;
                let message = match choice.remove("message") {
                    None | Some(Value::Null) => continue,
                    Some(m) => obj(m, RULE, "a choice's message")?,
                };
                message_calls(&mut calls, message, limits)?;
            }
        }
        Protocol::OpenaiResponses => {
            for item in opt_array(top.remove("output"), RULE, "output")? {
                let mut item = obj(item, RULE, "an output item")?;
                let kind = openai_responses::output_item_kind(&item)?;
                calls.extend(openai_responses::item_calls(&mut item, &kind, limits)?);
            }
        }
        Protocol::AnthropicMessages => {
            for block in opt_array(top.remove("content"), RULE, "content")? {
                let block = obj(block, RULE, "a content block")?;
                if block.get("type").and_then(Value::as_str) == Some("tool_use") {
                    calls.push(anthropic::tool_use(block)?);
                }
            }
        }
        Protocol::Mcp | Protocol::Action => {}
    }
    Ok(calls)
}

/// A Chat message's `tool_calls` and legacy `function_call`.
fn message_calls(calls: &mut Vec<LlmCall>, mut m: Map<String, Value>, limits: &Limits) -> Result<(), Denial> {
    for c in opt_array(m.remove("tool_calls"), RULE, "tool_calls")? {
        calls.push(openai_chat::tool_call(obj(c, RULE, "a tool call")?, limits)?);
    }
    if let Some(f) = m.remove("function_call").filter(|f| !f.is_null()) {
        calls.push(openai_chat::function(obj(f, RULE, "function_call")?, limits)?);
    }
    Ok(())
}

/// The answer with its tool calls replaced by `message`, in the provider's own shape for a
/// refusal, so the client's SDK reads a normal answer that says why: Chat `message.refusal`,
/// a Responses `refusal` content part, an Anthropic text block with `stop_reason: refusal`.
/// `None` when the body is not an answer that can be rewritten.
pub fn refusal(protocol: Protocol, body: &[u8], message: &str, limits: &Limits) -> Option<Vec<u8>> {
    let Ok(Value::Object(mut top)) = crate::json::parse(body, limits.max_json_depth) else {
        return None;
    };
    let is_call = openai_responses::is_judged_item;
    match protocol {
        Protocol::OpenaiChat => {
            for choice in top.get_mut("choices")?.as_array_mut()? {
                let Some(m) = choice.get_mut("message").and_then(Value::as_object_mut) else {
                    continue;
                };
                let calls = m.remove("tool_calls").is_some_and(|v| !v.is_null());
                let legacy = m.remove("function_call").is_some_and(|v| !v.is_null());
                if calls || legacy {
                    m.insert("content".into(), Value::Null);
                    m.insert("refusal".into(), json!(message));
                    if let Some(c) = choice.as_object_mut() {
                        c.insert("finish_reason".into(), json!("stop"));
                    }
                }
            }
        }
        Protocol::OpenaiResponses => {
            let output = top.get_mut("output")?.as_array_mut()?;
            output.retain(|item| !is_call(item));
            output.push(json!({
                "type": "message", "id": "msg_aigate_refusal", "status": "completed", "role": "assistant",
                "content": [{"type": "refusal", "refusal": message}],
            }));
        }
        Protocol::AnthropicMessages => {
            let content = top.get_mut("content")?.as_array_mut()?;
            content.retain(|b| b.get("type").and_then(Value::as_str) != Some("tool_use"));
            content.push(json!({"type": "text", "text": message}));
            top.insert("stop_reason".into(), json!("refusal"));
        }
        Protocol::Mcp | Protocol::Action => return None,
    }
    serde_json::to_vec(&top).ok()
}

/// The event that ends a refused stream: `error` carries the provider's error JSON (as a
/// denied request gets it), which the OpenAI and Anthropic SDKs raise.
pub fn error_event(protocol: Protocol, error: &[u8]) -> Vec<u8> {
    let mut e = Vec::with_capacity(error.len() + 24);
    // Chat streams carry no event names; the SDK raises on an `error` member. An MCP
    // refusal is a JSON-RPC message, as the stream's other messages (no name: `message`).
    if !matches!(protocol, Protocol::OpenaiChat | Protocol::Mcp) {
        e.extend_from_slice(b"event: error\n");
    }
    e.extend_from_slice(b"data: ");
    e.extend_from_slice(error);
    e.extend_from_slice(b"\n\n");
    e
}

#[cfg(test)]
mod tests;
