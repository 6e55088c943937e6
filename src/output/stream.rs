//! A streamed answer (server-sent events). Text flows through event by event; from the
//! first event of a tool call on, everything is held back until the stream ends, because a
//! call's arguments arrive in pieces and only the whole call can be judged. The held part
//! is then released, or replaced by one error event. How the calls are put together from
//! the events is in [`super::assembly`].

use super::assembly::Assembly;
use super::events::Events;
use crate::config::Protocol;
use crate::decision::{Denial, Reason};
use crate::policy::Limits;
use crate::request::llm::LlmCall;

pub struct Stream {
    protocol: Protocol,
    limits: Limits,
    /// Enforce: hold from the first call on. Monitor: only watch.
    hold: bool,
    events: Events,
    /// A call began: everything from its first event on is held (enforce) or counted.
    holding: bool,
    held: Vec<u8>,
    /// Bytes from the first call event on, in both modes: the size limit applies to them.
    held_len: usize,
    calls: Assembly,
    failure: Option<Denial>,
}

/// The stream's end: the calls it carried, and the bytes held back (to release if the
/// calls are allowed; always empty in monitor mode, where everything passed).
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
            events: Events::default(),
            holding: false,
            held: Vec::new(),
            held_len: 0,
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
        self.events.push(chunk);
        let mut out = Vec::new();
        self.events.take(|event| {
            match self.calls.event(self.protocol, event, &self.limits) {
                Ok(call) if !self.holding && !call => out.extend_from_slice(event),
                Ok(_) => {
                    self.holding = true;
                    self.held_len += event.len();
                    if self.hold {
                        self.held.extend_from_slice(event);
                    }
                }
                Err(denial) => {
                    self.failure = Some(denial);
                    return false;
                }
            }
            true
        });
        if self.failure.is_none() && self.events.waiting() + self.held_len > self.limits.max_body_bytes {
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
            return None;
        }
        if self.failure.is_some() {
            return Some(out);
        }
        (out != chunk).then_some(out)
    }

    /// Nothing more passes before the end: a call began, or the answer is refused.
    pub fn holding(&self) -> bool {
        self.hold && (self.holding || self.failure.is_some())
    }

    /// Why the answer is refused already (too large, unreadable), taken once: the caller
    /// ends the stream with the error event now instead of holding the rest.
    pub fn take_failure(&mut self) -> Option<Denial> {
        self.failure.take()
    }

    /// The stream ended.
    pub fn finish(mut self) -> Finished {
        // An event the stream ended in the middle of is read as it stands.
        let last = self.events.rest();
        if self.failure.is_none() && !last.iter().all(u8::is_ascii_whitespace) {
            if let Err(denial) = self.calls.event(self.protocol, &last, &self.limits) {
                self.failure = Some(denial);
            }
        }
        let mut held = Vec::new();
        if self.hold {
            held = self.held;
            held.extend_from_slice(&last);
        }
        let calls = match self.failure.take() {
            Some(denial) => Err(denial),
            None => self.calls.finish(&self.limits),
        };
        Finished { calls, held }
    }
}
