//! Answers on routes that judge them: a model's (`model_calls: judge`), an MCP server's
//! list answers (`lists: filter`). How to read one is settled at the response head; it is
//! judged at its end (JSON) or as it streams (events), and rewritten before the client
//! sees it when a call is refused or items are hidden.

use super::{set_response_header, Http};
use crate::config::{Mode, Protocol};
use crate::decision::{Denial, Reason};
use crate::engine::{self, Decision};
use crate::output::{self, listing::ListStream, stream::Stream, Format};
use crate::request::Headers;
use crate::response;
use proxy_wasm::hostcalls;
use proxy_wasm::types::{Action, BufferType, MapType};

pub(super) enum Answer {
    /// Read until its end: the pieces so far are kept here, not in the host's buffer, so
    /// the host never holds more than the piece at hand (its own limit resets the stream).
    Json(Decision, Vec<u8>),
    /// A model's, passed on event by event, held from its first tool call.
    Stream(Decision, Stream),
    /// An MCP server's, passed on event by event, each filtered.
    Listing(Decision, ListStream),
    /// Refused whole (unreadable or too large): its pieces are dropped, the error comes at its end.
    Refused(Decision),
    /// Refused mid-stream: the error event went out already, the rest is dropped.
    Ended,
}

/// What an answer refused at its head loses: where it sent the client, how its body was
/// framed, the upgrade it accepted, and what it would have set up for the client.
const REFUSED_HEAD_DROPS: [&str; 7] = [
    "location",
    "content-length",
    "content-encoding",
    "upgrade",
    "sec-websocket-accept",
    "set-cookie",
    crate::sessions::SESSION_HEADER,
];

/// The answer's head, read in one host call.
fn response_head() -> Headers {
    Headers::new(hostcalls::get_map_bytes(MapType::HttpResponseHeaders).unwrap_or_default())
}

fn response_body(size: usize) -> Vec<u8> {
    hostcalls::get_buffer(BufferType::HttpResponseBody, 0, size)
        .ok()
        .flatten()
        .unwrap_or_default()
}

/// Replaces `size` bytes at `start` of the body the host holds now (this piece, or what it
/// buffered). Envoy rewrites from the start only (`start` 0), or appends. A host with
/// nothing to write (Envoy at trailers, when nothing was buffered) refuses, which must not
/// trap the VM: it is logged.
fn set_response_body(start: usize, size: usize, with: &[u8]) {
    if !super::host::set_buffer(BufferType::HttpResponseBody, start, size, with) {
        super::log(
            proxy_wasm::types::LogLevel::Error,
            "aigate: the host refused to rewrite the answer's body",
        );
    }
}

/// A model's stream held since a call began.
#[derive(Debug, Clone)]
pub(super) struct StreamHold {
    /// What passed of the piece where the call began (the events before it), judged
    /// already: it goes out first at the end. Kept here, not at the front of the host's
    /// buffer: Envoy rewrites a buffer from its start only, so the front would be copied
    /// again with every later piece (thousands, in a long stream).
    kept: Vec<u8>,
}

impl Http {
    fn enforcing(&self) -> bool {
        self.shared.policy.mode == Mode::Enforce
    }

    /// At the response head: how the answer will be read, or its refusal when it cannot be.
    pub(super) fn answer_head(&mut self, request: Decision, end_of_stream: bool) {
        let head = response_head();
        let Some(protocol) = request.protocol else { return };
        if protocol == Protocol::Mcp {
            self.seal_session(&request, &head);
        }
        // A model's error status carries no tool calls: the SDKs raise on it (at 4xx and
        // 5xx; the Go SDKs read a 3xx's body as the answer, so that is judged). An MCP
        // client may read any status's body as the answer (the Python SDK a 300's, mcp-go
        // even a 500's), so an MCP answer is judged whatever its status.
        let status = head.one(":status").ok().flatten().and_then(|s| s.first().copied());
        if status == Some(b'1') {
            // An interim status as the final answer (`101` to a request that asked for no
            // upgrade, aigate refusing every upgrade): no client reads it as an answer, and
            // an HTTP/1 client may take the connection for a tunnel.
            let denial = Denial::new(
                Reason::BodyMalformed,
                "answer.status",
                "the upstream answered with an interim (1xx) status as its final answer",
            );
            self.refuse_at_head(request, denial, end_of_stream);
            return;
        }
        let success = matches!(status, Some(b'2' | b'3'));
        if !success && protocol != Protocol::Mcp {
            return;
        }
        // A reply Envoy made itself (a timeout, no healthy upstream, a body past its
        // buffer limit) is no server's answer: it reaches the client as Envoy wrote it.
        // Asked only off the 2xx path, so an answer that passes costs no host call.
        if status != Some(b'2') && !super::upstream_answered() {
            return;
        }
        if status == Some(b'3') {
            let scheme = self.headers.text(":scheme").unwrap_or_default();
            let authority = self.headers.text(":authority").unwrap_or_default();
            if output::redirect::leaves_origin(head.one("location"), scheme, authority) {
                // The client would send its request there and run what comes back unjudged.
                let denial = Denial::new(
                    Reason::DataBoundary,
                    "answer.location",
                    "the answer redirects the client to another origin, where aigate cannot judge what comes back",
                );
                self.refuse_at_head(request, denial, end_of_stream);
                return;
            }
        }
        if !engine::judges_answer(&self.shared.policy, &request) {
            return; // a route that passes its answers unread
        }
        if end_of_stream {
            // No body: judged (and counted) as the empty answer it is.
            let (d, _) = self.judge_whole(&request, b"");
            self.record(&d, "aigate_answer");
            return;
        }
        let policy = &self.shared.policy;
        let enforce = self.enforcing();
        let answer = match engine::answer_format(policy, &request, &head) {
            Ok(Format::Json) => Answer::Json(request, Vec::new()),
            Ok(Format::EventStream) if protocol == Protocol::Mcp => {
                Answer::Listing(request, ListStream::new(&policy.limits, enforce))
            }
            Ok(Format::EventStream) => Answer::Stream(request, Stream::new(protocol, &policy.limits, enforce)),
            Err(denial) => return self.refuse_at_head(request, denial, false),
        };
        if enforce {
            // The answer may be rewritten: the host frames it anew.
            set_response_header("content-length", None);
        }
        self.answer = Some(answer);
    }

    /// A session the server opens (or names) in its answer reaches the client sealed to the
    /// caller on a route binding sessions: only this caller's requests will reach it.
    fn seal_session(&self, request: &Decision, head: &Headers) {
        let policy = &self.shared.policy;
        let Some(key) = policy.session_seal.as_ref().filter(|_| self.enforcing()) else {
            return;
        };
        let Some(route) = request
            .route
            .and_then(|i| policy.routes.get(i))
            .filter(|r| r.sessions == crate::config::Sessions::Bind)
        else {
            return;
        };
        let sealed = match (head.one(crate::sessions::SESSION_HEADER), request.principal.as_ref()) {
            (Ok(None), _) => return,
            (Ok(Some(id)), Some(p)) => std::str::from_utf8(id)
                .ok()
                .and_then(|id| crate::sessions::seal(key, &route.id, p, id)),
            _ => None,
        };
        // A session that cannot be sealed (an id that is not text, or named twice) is not
        // handed out.
        set_response_header(crate::sessions::SESSION_HEADER, sealed.as_deref());
    }

    /// Refuses the answer at its head (unreadable, or sending the client elsewhere): the
    /// client gets the error in its place, with a head of its own, its status as
    /// [`engine::head_refusal_status`] says.
    fn refuse_at_head(&mut self, request: Decision, denial: Denial, end_of_stream: bool) {
        let d = engine::refused_answer(&self.shared.policy, &request, denial);
        self.record(&d, "aigate_answer");
        if self.enforcing() {
            let status = engine::head_refusal_status(&request, !end_of_stream).to_string();
            set_response_header(":status", Some(&status));
            for name in REFUSED_HEAD_DROPS {
                set_response_header(name, None);
            }
            // The error JSON takes the place of a body; with none to replace, the status
            // alone says it, and no content type claims a body.
            set_response_header("content-type", (!end_of_stream).then_some("application/json"));
        }
        // With a body, the error takes its place at its end; without one, the status says it.
        if !end_of_stream {
            self.answer = Some(Answer::Refused(d));
        }
    }

    /// The upstream answered a request whose verdict was still pending: with `hold: body`
    /// its head went ahead, and an upstream that acts on the head alone (a GET handler, an
    /// action that takes no body) answers before the body is complete. Never judged, the
    /// request is refused now and its answer withheld: the client gets the denial in place
    /// of the answer, and the rest of the request body is never forwarded.
    pub(super) fn answer_unjudged(&mut self, mut request: Decision) {
        let denial = Denial::new(
            Reason::BodyMalformed,
            "hold",
            "the upstream answered before the request body was complete, so aigate never judged the request; its answer is withheld",
        );
        let reply = response::render(&self.shared.policy, &request, &denial, &self.decision_id);
        request.denial = Some(denial);
        self.record(&request, "aigate_decision");
        if !self.enforcing() {
            return;
        }
        self.body_refused = true;
        // The answer's head is withheld with its body: a cookie, a session id or a
        // redirect the upstream set must not reach the client either. Only the denial's.
        let status = reply.status.to_string();
        let head: Vec<(&str, &str)> = std::iter::once((":status", status.as_str()))
            .chain(reply.headers.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .collect();
        let _ = proxy_wasm::hostcalls::set_map(proxy_wasm::types::MapType::HttpResponseHeaders, head);
        self.answer = Some(Answer::Refused(request));
    }

    /// The request ended before its body was complete: never judged, recorded as refused
    /// (nothing more of it was forwarded).
    pub(super) fn request_unfinished(&mut self, mut request: Decision) {
        request.denial = Some(Denial::new(
            Reason::BodyMalformed,
            "body",
            "the request ended before its body was complete, so aigate never judged it",
        ));
        self.record(&request, "aigate_decision");
    }

    /// The stream ended before the answer did. A list answer's events passed filtered as
    /// they came: its count so far is recorded, as refused when it was cut inside an event
    /// (held, that one never reached the client). A whole answer, or a model's held tool
    /// calls, never reached the client: recorded as refused.
    pub(super) fn answer_unfinished(&mut self, answer: Answer) {
        let policy = &self.shared.policy;
        let cut = || {
            Denial::new(
                Reason::BodyMalformed,
                "answer",
                "the answer ended before it was complete; what aigate held of it never reached the client",
            )
        };
        let d = match answer {
            Answer::Listing(request, stream) if stream.holds_part_of_an_event() => {
                engine::on_listing(&request, stream.hidden(), Some(cut()))
            }
            Answer::Listing(request, stream) => engine::on_listing(&request, stream.hidden(), None),
            Answer::Json(request, _) | Answer::Stream(request, _) => engine::refused_answer(policy, &request, cut()),
            Answer::Refused(_) | Answer::Ended => return, // recorded when it was refused
        };
        self.record(&d, "aigate_answer");
    }

    /// One piece of the answer (`size` bytes held by the host now).
    pub(super) fn answer_body(&mut self, size: usize, end_of_stream: bool) -> Action {
        let Some(answer) = self.answer.take() else {
            return Action::Continue;
        };
        let shared = std::rc::Rc::clone(&self.shared);
        let policy = &shared.policy;
        match answer {
            Answer::Json(request, mut whole) => {
                // The host's buffer holds only this piece: the ones before are in `whole`.
                let piece = response_body(size);
                if whole.len() + piece.len() > policy.limits.max_body_bytes {
                    let d = engine::refused_answer(policy, &request, engine::answer_too_large(policy));
                    self.record(&d, "aigate_answer");
                    if !self.enforcing() {
                        // Monitor: what was read passes on after all.
                        whole.extend_from_slice(&piece);
                        set_response_body(0, size, &whole);
                    }
                    return self.refuse(d, size, end_of_stream);
                }
                // An answer in one piece is still all in the host's buffer.
                let in_host = whole.is_empty();
                whole.extend_from_slice(&piece);
                if !end_of_stream {
                    if size > 0 {
                        set_response_body(0, size, &[]);
                    }
                    self.answer = Some(Answer::Json(request, whole));
                    return Action::Pause; // the host keeps an (empty) buffer, writable at trailers
                }
                let (d, rewritten) = self.judge_whole(&request, &whole);
                self.record(&d, "aigate_answer");
                match (rewritten, self.enforcing()) {
                    (Some(rewritten), true) => set_response_body(0, size, &rewritten),
                    _ if in_host => {}
                    _ => set_response_body(0, size, &whole),
                }
                Action::Continue
            }
            Answer::Listing(request, mut stream) => {
                let chunk = response_body(size);
                let mut out = stream.feed(&chunk, &engine::visible(policy, &request, &super::host::ProxyHost));
                if end_of_stream {
                    let (hidden, refused, rest) =
                        stream.finish(&engine::visible(policy, &request, &super::host::ProxyHost));
                    let d = engine::on_listing(&request, hidden, refused);
                    self.record(&d, "aigate_answer");
                    let tail = self.stream_end(&d, rest);
                    if !tail.is_empty() {
                        let mut whole = out.unwrap_or(chunk);
                        whole.extend_from_slice(&tail);
                        out = Some(whole);
                    }
                } else {
                    self.answer = Some(Answer::Listing(request, stream));
                }
                if let Some(out) = out {
                    set_response_body(0, size, &out);
                }
                Action::Continue
            }
            Answer::Stream(request, stream) => self.stream_body(request, stream, size, end_of_stream),
            Answer::Refused(d) => self.refuse(d, size, end_of_stream),
            Answer::Ended => {
                if size > 0 {
                    set_response_body(0, size, &[]);
                }
                if !end_of_stream {
                    self.answer = Some(Answer::Ended);
                }
                Action::Continue
            }
        }
    }

    /// A piece of a model's stream. Until a call begins each piece is passed on (the events
    /// it completes). From the piece where one begins, the stream is held (Pause), each
    /// piece taken out of the host's buffer as it comes: at the end what passed in that
    /// piece goes first, then the held events (allowed) or one error event (refused). The
    /// host keeps an (empty) buffer, writable when the stream ends in trailers.
    fn stream_body(&mut self, request: Decision, mut stream: Stream, size: usize, end_of_stream: bool) -> Action {
        // The host's buffer holds only this piece: the ones before were taken out.
        let fresh = response_body(size);
        let out = stream.feed(&fresh);
        if end_of_stream {
            let finished = stream.finish();
            let d = engine::on_answer(&self.shared.policy, &request, finished.calls);
            self.record(&d, "aigate_answer");
            let tail = self.stream_end(&d, finished.held);
            match self.stream_hold.take() {
                // What passed before the call goes out first, then the held events.
                Some(h) => {
                    let mut whole = h.kept;
                    whole.extend_from_slice(&tail);
                    set_response_body(0, size, &whole);
                }
                None if out.is_some() || !tail.is_empty() => {
                    let mut whole = out.unwrap_or(fresh);
                    whole.extend_from_slice(&tail);
                    set_response_body(0, size, &whole);
                }
                None => {}
            }
            return Action::Continue;
        }
        // Refused before its end (too large, unreadable): the error event goes out now,
        // after what passed, and the rest is dropped. Holding on would only grow the host's
        // buffer to its own limit, which resets the stream with no error event at all.
        if self.enforcing() {
            if let Some(denial) = stream.take_failure() {
                let d = engine::on_answer(&self.shared.policy, &request, Err(denial));
                self.record(&d, "aigate_answer");
                let mut whole = match self.stream_hold.take() {
                    Some(h) => h.kept,
                    None => out.unwrap_or_default(),
                };
                whole.extend_from_slice(&self.stream_end(&d, Vec::new()));
                set_response_body(0, size, &whole);
                self.answer = Some(Answer::Ended);
                return Action::Continue;
            }
        }
        let holding = stream.holding();
        self.answer = Some(Answer::Stream(request, stream));
        match self.stream_hold.as_ref() {
            // The held events are in the plugin (`Stream`), the judged front too: the
            // host's buffer is emptied, so it never holds more than one piece.
            Some(_) => {
                if size > 0 {
                    set_response_body(0, size, &[]);
                }
                Action::Pause
            }
            None if holding => {
                if size > 0 {
                    set_response_body(0, size, &[]);
                }
                self.stream_hold = Some(StreamHold {
                    kept: out.unwrap_or(fresh),
                });
                Action::Pause
            }
            None => {
                if let Some(out) = out {
                    set_response_body(0, size, &out);
                }
                Action::Continue
            }
        }
    }

    /// Response trailers end the answer without an end-of-stream body callback.
    pub(super) fn answer_trailers(&mut self) {
        if self.answer.is_some() {
            // Every piece was taken out of the host's buffer as it came.
            let _ = self.answer_body(0, true);
        }
    }

    fn judge_whole(&self, request: &Decision, body: &[u8]) -> (Decision, Option<Vec<u8>>) {
        engine::whole_answer(
            &self.shared.policy,
            request,
            body,
            &self.decision_id,
            &super::host::ProxyHost,
        )
    }

    /// Drops a piece of a refused answer; at its end, puts the error in its place. The host
    /// buffers (emptied each time), so its buffer is there to write at trailers too.
    fn refuse(&mut self, d: Decision, size: usize, end_of_stream: bool) -> Action {
        if !self.enforcing() {
            if !end_of_stream {
                self.answer = Some(Answer::Refused(d));
            }
            return Action::Continue;
        }
        let error = match (&d.denial, end_of_stream) {
            (Some(denial), true) => self.error_json(&d, denial),
            _ => Vec::new(),
        };
        set_response_body(0, size, &error);
        if end_of_stream {
            return Action::Continue;
        }
        self.answer = Some(Answer::Refused(d));
        Action::Pause
    }

    /// What ends a judged stream: `rest` (held or unfinished events) when it is allowed or
    /// only watched, else one error event in the protocol's shape.
    fn stream_end(&self, d: &Decision, rest: Vec<u8>) -> Vec<u8> {
        engine::stream_end(&self.shared.policy, d, rest, &self.decision_id)
    }

    /// The provider's error JSON, as a denied request gets it.
    fn error_json(&self, d: &Decision, denial: &Denial) -> Vec<u8> {
        response::render(&self.shared.policy, d, denial, &self.decision_id).body
    }
}
