//! What a test sends ([`Request`]) and what it gets back ([`Outcome`]).

use std::collections::{BTreeMap, HashMap};

use crate::abi::{Action, LogLevel, Phase, StreamType};
use crate::headers::HeaderMap;

/// One `proxy_log` call.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogEntry {
    pub level: LogLevel,
    pub message: String,
    /// Context the VM was running when it logged (root context id outside requests).
    pub context_id: u32,
}

/// A `proxy_send_local_response` call as the plugin made it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LocalReply {
    pub status: u32,
    /// `status_code_details` (the Rust SDK always passes none: empty).
    pub details: String,
    pub body: Vec<u8>,
    /// Extra headers, names lower-cased as Envoy does.
    pub headers: Vec<(String, Vec<u8>)>,
    /// -1 when not a gRPC reply.
    pub grpc_status: i32,
}

impl LocalReply {
    pub fn header(&self, name: &str) -> Option<String> {
        let name = name.to_ascii_lowercase();
        self.headers
            .iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| String::from_utf8_lossy(v).into_owned())
    }

    pub fn body_str(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// What the upstream answers when a request reaches it.
#[derive(Clone, Debug)]
pub struct UpstreamResponse {
    pub headers: HeaderMap,
    pub body_chunks: Vec<Vec<u8>>,
    pub trailers: Option<HeaderMap>,
    /// The stream is reset after the last chunk: no end of stream, no trailers (a client
    /// or upstream that goes away mid-answer).
    pub cut: bool,
}

impl Default for UpstreamResponse {
    /// `200`, `application/json`, a JSON-RPC result.
    fn default() -> Self {
        let body = br#"{"jsonrpc":"2.0","id":1,"result":{"content":[]}}"#.to_vec();
        UpstreamResponse {
            headers: HeaderMap::from_pairs([
                (":status", "200".to_owned()),
                ("content-type", "application/json".to_owned()),
                ("content-length", body.len().to_string()),
            ]),
            body_chunks: vec![body],
            trailers: None,
            cut: false,
        }
    }
}

impl UpstreamResponse {
    pub fn new(status: u16) -> Self {
        UpstreamResponse {
            headers: HeaderMap::from_pairs([(":status", status.to_string())]),
            body_chunks: Vec::new(),
            trailers: None,
            cut: false,
        }
    }

    pub fn header(mut self, name: &str, value: impl AsRef<[u8]>) -> Self {
        self.headers.add(name, value);
        self
    }

    /// Resets the stream after the last chunk instead of ending it.
    pub fn cut(mut self) -> Self {
        self.cut = true;
        self
    }

    pub fn body(mut self, body: impl Into<Vec<u8>>) -> Self {
        let body = body.into();
        self.body_chunks = if body.is_empty() { Vec::new() } else { vec![body] };
        self
    }
}

/// A downstream request: headers, body chunks as Envoy would deliver them, optional
/// trailers, and properties Envoy would know about the stream (e.g. the peer certificate).
#[derive(Clone, Debug)]
pub struct Request {
    pub headers: HeaderMap,
    pub body_chunks: Vec<Vec<u8>>,
    pub trailers: Option<HeaderMap>,
    /// Property path segments -> value (Envoy's serialisation: strings as raw bytes,
    /// integers as 8-byte little-endian).
    pub properties: Vec<(Vec<String>, Vec<u8>)>,
    pub upstream: UpstreamResponse,
}

impl Request {
    /// A request with `:method`, `:path`, `:authority` (`aigate.test`) and `:scheme` (`https`).
    pub fn new(method: &str, path: &str) -> Self {
        Request {
            headers: HeaderMap::from_pairs([
                (":method", method),
                (":path", path),
                (":authority", "aigate.test"),
                (":scheme", "https"),
            ]),
            body_chunks: Vec::new(),
            trailers: None,
            properties: Vec::new(),
            upstream: UpstreamResponse::default(),
        }
    }

    pub fn get(path: &str) -> Self {
        Self::new("GET", path)
    }

    pub fn post(path: &str) -> Self {
        Self::new("POST", path)
    }

    /// Adds a header (names are lower-cased; values may be any bytes).
    pub fn header(mut self, name: &str, value: impl AsRef<[u8]>) -> Self {
        self.headers.add(name, value);
        self
    }

    /// Sets a header, replacing an existing one.
    pub fn set_header(mut self, name: &str, value: impl AsRef<[u8]>) -> Self {
        self.headers.remove(name);
        self.headers.add(name, value);
        self
    }

    pub fn without_header(mut self, name: &str) -> Self {
        self.headers.remove(name);
        self
    }

    /// `Authorization: Bearer <token>`.
    pub fn bearer(self, token: &str) -> Self {
        self.set_header("authorization", format!("Bearer {token}"))
    }

    /// The whole body as one chunk (an empty body sends no body callback at all).
    pub fn body(mut self, body: impl Into<Vec<u8>>) -> Self {
        let body = body.into();
        self.body_chunks = if body.is_empty() { Vec::new() } else { vec![body] };
        self
    }

    /// A JSON body with `content-type: application/json`.
    pub fn json(self, body: impl Into<Vec<u8>>) -> Self {
        self.set_header("content-type", "application/json").body(body)
    }

    /// Body chunks exactly as given (an empty chunk is delivered as an empty callback).
    pub fn chunks(mut self, chunks: Vec<Vec<u8>>) -> Self {
        self.body_chunks = chunks;
        self
    }

    /// Re-splits the body into chunks of at most `size` bytes.
    pub fn chunked(mut self, size: usize) -> Self {
        let body: Vec<u8> = self.body_chunks.concat();
        self.body_chunks = body.chunks(size.max(1)).map(<[u8]>::to_vec).collect();
        self
    }

    pub fn trailers<K: AsRef<[u8]>, V: AsRef<[u8]>>(mut self, pairs: impl IntoIterator<Item = (K, V)>) -> Self {
        self.trailers = Some(HeaderMap::from_pairs(pairs));
        self
    }

    pub fn property(mut self, path: &[&str], value: impl Into<Vec<u8>>) -> Self {
        self.properties
            .push((path.iter().map(|s| (*s).to_owned()).collect(), value.into()));
        self
    }

    pub fn upstream(mut self, response: UpstreamResponse) -> Self {
        self.upstream = response;
        self
    }

    pub(crate) fn property_map(&self) -> HashMap<Vec<u8>, Vec<u8>> {
        self.properties
            .iter()
            .map(|(path, v)| (property_key(path), v.clone()))
            .collect()
    }
}

/// Path segments joined with NUL: the key the SDK sends to `proxy_get_property`.
pub fn property_key<S: AsRef<str>>(path: &[S]) -> Vec<u8> {
    let mut key = Vec::new();
    for (i, seg) in path.iter().enumerate() {
        if i > 0 {
            key.push(0);
        }
        key.extend_from_slice(seg.as_ref().as_bytes());
    }
    key
}

/// One HTTP callback the host made, and what the plugin returned.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Callback {
    pub phase: Phase,
    /// Header count for header/trailer callbacks, buffered body size for body callbacks.
    pub size: usize,
    pub end_of_stream: bool,
    pub action: Action,
}

/// What reached the upstream.
#[derive(Clone, Debug, Default)]
pub struct Upstream {
    /// Request headers as forwarded (after the plugin's mutations).
    pub headers: HeaderMap,
    pub body: Vec<u8>,
    pub trailers: Option<HeaderMap>,
    /// The whole request (every body byte and trailer) was forwarded.
    pub complete: bool,
}

/// What the client received.
#[derive(Clone, Debug, Default)]
pub struct Response {
    pub status: u16,
    /// Response headers as sent downstream (after the plugin's mutations).
    pub headers: HeaderMap,
    pub body: Vec<u8>,
    pub trailers: Option<HeaderMap>,
}

/// Everything observable about one request.
#[derive(Clone, Debug, Default)]
pub struct Outcome {
    pub context_id: u32,
    pub callbacks: Vec<Callback>,
    /// The plugin's local reply, if it sent one.
    pub local_reply: Option<LocalReply>,
    /// How many times `proxy_send_local_response` was called (more than one is a bug).
    pub local_reply_calls: usize,
    /// A reply the host itself generated (Envoy's 413 when the buffer limit is exceeded).
    pub host_reply: Option<LocalReply>,
    /// `Some` once the request headers were forwarded upstream.
    pub upstream: Option<Upstream>,
    /// `None` if the client never got a response (stalled or reset stream).
    pub response: Option<Response>,
    /// The stream never completed: the plugin held headers or body and never released them.
    pub stalled: bool,
    /// The plugin reset the stream with `proxy_close_stream`.
    pub reset: bool,
    pub continue_calls: Vec<StreamType>,
    pub close_calls: Vec<StreamType>,
    /// Logs emitted from context creation to `proxy_on_delete`.
    pub logs: Vec<LogEntry>,
    /// Host calls made during this request, by import name: every `env` import, plus the
    /// WASI `random_get` and `clock_time_get`.
    pub host_calls: BTreeMap<String, u64>,
    /// Calls the host made into the module during this request, by export name
    /// (callbacks and allocations).
    pub guest_calls: BTreeMap<String, u64>,
    /// Wasm operators the module executed for this request, from its context's creation to
    /// its deletion (wasmtime fuel): a measure of its computation that no machine or load
    /// changes, unlike time. Host work (the imports) is not in it.
    pub fuel: u64,
    /// The same, by export the host called (`proxy_on_request_body`, `malloc`…).
    pub fuel_by_export: BTreeMap<String, u64>,
    /// Bytes the plugin wrote into the request's and the answer's body buffers
    /// (`proxy_set_buffer_bytes`): Envoy copies each of them, work outside the fuel count.
    pub body_bytes_written: u64,
    /// Values the plugin set with `proxy_set_property` (Envoy filter state `wasm.<path>`),
    /// keyed by [`property_key`].
    pub filter_state: BTreeMap<Vec<u8>, Vec<u8>>,
    /// Calls that Envoy would reject or ignore (see [`crate::Plugin::anomalies`]).
    pub anomalies: Vec<String>,
    /// What `proxy_on_done` returned.
    pub done: bool,
}

impl Outcome {
    /// HTTP status the client received.
    pub fn status(&self) -> Option<u16> {
        self.response.as_ref().map(|r| r.status)
    }

    pub fn response_header(&self, name: &str) -> Option<String> {
        self.response.as_ref().and_then(|r| r.headers.get_str(name))
    }

    pub fn response_body(&self) -> &[u8] {
        self.response.as_ref().map_or(&[], |r| r.body.as_slice())
    }

    pub fn response_body_str(&self) -> String {
        String::from_utf8_lossy(self.response_body()).into_owned()
    }

    /// Request header as the upstream received it.
    pub fn upstream_header(&self, name: &str) -> Option<String> {
        self.upstream.as_ref().and_then(|u| u.headers.get_str(name))
    }

    /// The whole request reached the upstream and no local reply was sent.
    pub fn forwarded(&self) -> bool {
        self.local_reply.is_none() && self.host_reply.is_none() && self.upstream.as_ref().is_some_and(|u| u.complete)
    }

    /// Actions returned by every callback of `phase`, in order.
    pub fn actions(&self, phase: Phase) -> Vec<Action> {
        self.callbacks
            .iter()
            .filter(|c| c.phase == phase)
            .map(|c| c.action)
            .collect()
    }

    /// Action returned by the first callback of `phase`.
    pub fn action(&self, phase: Phase) -> Option<Action> {
        self.actions(phase).first().copied()
    }

    pub fn host_call(&self, name: &str) -> u64 {
        self.host_calls.get(name).copied().unwrap_or(0)
    }

    /// Total host calls during the request.
    pub fn host_calls_total(&self) -> u64 {
        self.host_calls.values().sum()
    }

    /// A value the plugin set with `proxy_set_property`.
    pub fn property(&self, path: &[&str]) -> Option<&[u8]> {
        self.filter_state.get(&property_key(path)).map(Vec::as_slice)
    }

    pub fn logs_at(&self, level: LogLevel) -> Vec<&LogEntry> {
        self.logs.iter().filter(|l| l.level == level).collect()
    }
}
