//! A Chat stream as a provider sends it, shared by the engine, CLI and module tests so
//! that each judges the same events.

use serde_json::{json, Value};

/// Text, then a call of `get_order` for `customer` whose arguments come in two pieces, then
/// `[DONE]`; and the length of the text event, which passes before the call begins.
pub fn chat_events(customer: &str) -> (String, usize) {
    let chunk = |delta: Value| {
        format!(
            "data: {}\n\n",
            json!({"id": "c", "object": "chat.completion.chunk", "choices": [{"index": 0, "delta": delta, "finish_reason": null}]})
        )
    };
    let text = chunk(json!({"role": "assistant", "content": "Checking."}));
    let args = json!({"customer_id": customer}).to_string();
    let (a, b) = args.split_at(7);
    let mut events = text.clone();
    events.push_str(&chunk(
        json!({"tool_calls": [{"index": 0, "id": "call_1", "type": "function", "function": {"name": "get_order", "arguments": a}}]}),
    ));
    events.push_str(&chunk(
        json!({"tool_calls": [{"index": 0, "function": {"arguments": b}}]}),
    ));
    events.push_str("data: [DONE]\n\n");
    (events, text.len())
}
