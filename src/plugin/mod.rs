//! The proxy-wasm glue: the only code that calls the host. It reads each request's
//! headers once and its body once, hands plain values to the engine, and turns the
//! decision into a local reply or a forwarded request, metrics and an audit line.

mod answer;
mod host;
mod meters;

use crate::config::{Hold, Mode};
use crate::decision::{Denial, Reason};
use crate::engine::{self, Decision, Head};
use crate::identity::cache::TokenCache;
use crate::policy::{self, Policy};
use crate::request::{Headers, Host, SharedData};
use crate::response::{self, DECISION_HEADER};
use crate::{approval, audit};
use host::ProxyHost;
use meters::Meters;
use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{Action, ContextType, LogLevel};
use std::cell::Cell;
use std::rc::Rc;

proxy_wasm::main! {{
    proxy_wasm::set_log_level(LogLevel::Info);
    proxy_wasm::set_root_context(|_| -> Box<dyn RootContext> { Box::new(Root::default()) });
}}

/// Per-VM (per Envoy worker) state shared by that worker's requests.
struct Shared {
    policy: Policy,
    meters: Meters,
    /// Verified tokens of this worker; rebuilt with the policy, so keys never go stale.
    tokens: TokenCache,
    /// Random per VM, so decision ids from different workers never collide.
    id_prefix: u64,
    counter: Cell<u64>,
}

#[derive(Default)]
struct Root {
    shared: Option<Rc<Shared>>,
}

impl Context for Root {}

impl RootContext for Root {
    fn on_configure(&mut self, _size: usize) -> bool {
        let bytes = self.get_plugin_configuration().unwrap_or_default();
        match policy::compile(&bytes).and_then(seal_sessions) {
            Ok(policy) => {
                let meters = Meters::define(&policy);
                meters.config_loaded();
                if policy.approval.is_some() {
                    approval::replay::prepare(&host::ProxyShared, ProxyHost.now());
                }
                if policy.binds_tasks() {
                    crate::tasks::TASKS.prepare(&host::ProxyShared);
                }
                // Monitor mode lets everything through: say so where operators look first.
                match policy.mode {
                    crate::config::Mode::Enforce => log(
                        LogLevel::Info,
                        &format!("aigate: policy {} loaded (mode enforce, hold {})", policy.hash, hold_label(policy.hold)),
                    ),
                    crate::config::Mode::Monitor => log(
                        LogLevel::Warn,
                        &format!(
                            "aigate: policy {} loaded in MONITOR mode: nothing is refused, denials are only logged and counted as would_deny",
                            policy.hash
                        ),
                    ),
                }
                self.shared = Some(Rc::new(Shared {
                    policy,
                    meters,
                    tokens: TokenCache::default(),
                    id_prefix: random_u64(),
                    counter: Cell::new(0),
                }));
                true
            }
            Err(errors) => {
                Meters::config_load_failed();
                for e in errors {
                    log(LogLevel::Error, &format!("aigate: invalid policy: {e}"));
                }
                // Envoy refuses the configuration: no traffic runs without policy.
                false
            }
        }
    }

    fn create_http_context(&self, _context_id: u32) -> Option<Box<dyn HttpContext>> {
        let shared = self.shared.clone()?;
        Some(Box::new(Http {
            shared,
            headers: Headers::default(),
            pending: None,
            decision_id: String::new(),
            body_size: 0,
            headers_gone: false,
            body_refused: false,
            judging: None,
            answer: None,
            stream_hold: None,
        }))
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}

/// One request.
struct Http {
    shared: Rc<Shared>,
    headers: Headers,
    /// Identity settled, waiting for the body (or trailers).
    pending: Option<Decision>,
    decision_id: String,
    body_size: usize,
    /// The request headers went upstream before the verdict (`hold: body`).
    headers_gone: bool,
    /// Refused before its body was complete: the rest of the body is held, never forwarded.
    body_refused: bool,
    /// An allowed request on a route, until the response head arrives: every answer is
    /// looked at for where it sends the client, and judged where the route judges answers.
    judging: Option<Decision>,
    answer: Option<answer::Answer>,
    stream_hold: Option<answer::StreamHold>,
}

impl Context for Http {}

impl HttpContext for Http {
    fn on_http_request_headers(&mut self, _num_headers: usize, end_of_stream: bool) -> Action {
        let n = self.shared.counter.get().wrapping_add(1);
        self.shared.counter.set(n);
        self.decision_id = audit::decision_id(self.shared.id_prefix, n);
        self.headers = Headers::new(self.get_http_request_headers_bytes());
        let policy = &self.shared.policy;
        let host = WorkerHost {
            tokens: &self.shared.tokens,
        };
        match engine::on_headers(policy, &self.headers, &host, !end_of_stream) {
            Head::Decided(d) => self.finish(d),
            Head::NeedBody(d) => {
                // A body that may lose tools has no known length yet, and with `hold: body`
                // the headers leave now: Envoy frames it anew (chunked, or HTTP/2 frames).
                if policy.mode == Mode::Enforce && policy.strips_tools(d.route) {
                    self.set_http_request_header("content-length", None);
                }
                let route = d.route;
                let session = d.upstream_session.clone();
                self.pending = Some(d);
                match policy.hold {
                    Hold::Headers => Action::Pause,
                    // Istio-style hosts cannot resume body callbacks after a paused
                    // header phase: let headers through, hold the body until the verdict.
                    // Envoy refuses header changes once they are gone (and the SDK traps
                    // on the refusal), so what the upstream sees in them is set now.
                    Hold::Body => {
                        self.upstream_headers(route, session.as_deref());
                        self.headers_gone = true;
                        Action::Continue
                    }
                }
            }
        }
    }

    fn on_http_request_body(&mut self, body_size: usize, end_of_stream: bool) -> Action {
        if self.pending.is_none() {
            return self.decided();
        }
        self.body_size = body_size;
        if body_size > self.shared.policy.limits.max_body_bytes {
            return self.decide_without_body(engine::body_too_large(&self.shared.policy), body_size);
        }
        if !end_of_stream {
            return Action::Pause; // StopIterationAndBuffer
        }
        self.decide_with_body()
    }

    fn on_http_request_trailers(&mut self, _num_trailers: usize) -> Action {
        // A request with trailers has no end-of-stream body callback: decide here.
        let Some(pending) = self.pending.as_ref() else {
            return self.decided();
        };
        let names: Vec<String> = self.get_http_request_trailers().into_iter().map(|(k, _)| k).collect();
        if let Some(denial) = engine::trailers_problem(&self.shared.policy, pending, &names) {
            return self.decide_without_body(denial, self.body_size);
        }
        self.decide_with_body()
    }

    fn on_http_response_headers(&mut self, _num_headers: usize, end_of_stream: bool) -> Action {
        if !self.decision_id.is_empty() {
            self.set_http_response_header(DECISION_HEADER, Some(&self.decision_id));
        }
        if self.headers_gone && self.pending.is_some() && upstream_answered() {
            if let Some(pending) = self.pending.take() {
                self.answer_unjudged(pending);
            }
            return Action::Continue;
        }
        if let Some(request) = self.judging.take() {
            self.answer_head(request, end_of_stream);
        }
        Action::Continue
    }

    fn on_http_response_body(&mut self, body_size: usize, end_of_stream: bool) -> Action {
        self.answer_body(body_size, end_of_stream)
    }

    fn on_http_response_trailers(&mut self, _num_trailers: usize) -> Action {
        self.answer_trailers();
        Action::Continue
    }

    /// The stream is over, however it ended. A request that never got its verdict (its
    /// client stopped mid-body; with `hold: body` its head went upstream) or an answer that
    /// never reached its end (either side closed the stream) still gets its audit line and
    /// is counted: every decision id that left aigate has a record.
    fn on_log(&mut self) {
        if let Some(pending) = self.pending.take() {
            self.request_unfinished(pending);
        }
        if let Some(answer) = self.answer.take() {
            self.answer_unfinished(answer);
        }
    }
}

impl Http {
    /// The request's body after its verdict: forwarded, unless the request was refused
    /// while its body was still arriving (none of it goes upstream then).
    fn decided(&self) -> Action {
        if self.body_refused {
            Action::Pause
        } else {
            Action::Continue
        }
    }

    fn decide_with_body(&mut self) -> Action {
        let Some(pending) = self.pending.take() else {
            return Action::Continue;
        };
        let body = self.get_http_request_body(0, self.body_size).unwrap_or_default();
        let d = engine::on_body(&self.shared.policy, pending, &self.headers, &body, &ProxyHost);
        self.finish(d)
    }

    fn decide_without_body(&mut self, denial: Denial, body_size: usize) -> Action {
        let Some(mut d) = self.pending.take() else {
            return Action::Continue;
        };
        d.body_bytes = Some(body_size);
        d.denial = Some(denial);
        self.finish(d)
    }

    /// Records the decision and enforces it. Returns the action for the current callback.
    fn finish(&mut self, d: Decision) -> Action {
        let shared = Rc::clone(&self.shared);
        let policy = &shared.policy;
        self.record(&d, "aigate_decision");

        match (&d.denial, policy.mode) {
            (Some(denial), Mode::Enforce) => {
                let reply = response::render(policy, &d, denial, &self.decision_id);
                let headers: Vec<(&str, &str)> = reply.headers.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
                self.send_http_response(reply.status, headers, Some(&reply.body));
                Action::Pause
            }
            // The route's protected resource metadata: public, answered here.
            _ if d.metadata => {
                let document = policy.resource_metadata(d.route).map_or("{}", |m| m.document.as_str());
                let headers = vec![
                    ("content-type", "application/json"),
                    ("cache-control", "public, max-age=3600"),
                    (DECISION_HEADER, self.decision_id.as_str()),
                ];
                self.send_http_response(200, headers, Some(document.as_bytes()));
                Action::Pause
            }
            _ => {
                if let (Some(body), Mode::Enforce) = (&d.rewrite, policy.mode) {
                    self.set_http_request_body(0, self.body_size, body);
                }
                if !self.headers_gone {
                    self.upstream_headers(d.route, d.upstream_session.as_deref());
                }
                // Every answer on a route is looked at for where it sends the client; the
                // route's answers are judged further when it judges them.
                if d.route.is_some() {
                    self.judging = Some(d);
                }
                Action::Continue
            }
        }
    }

    /// Counts a decision and writes its audit line (also kept as the filter state `property`
    /// for access logs).
    fn record(&self, d: &Decision, property: &str) {
        let policy = &self.shared.policy;
        self.shared.meters.record(policy, d);
        // An MCP answer that passes whole adds nothing to the request's line: counted only,
        // so the common path costs no second log line.
        let passed_whole = d.stage == engine::Stage::Answer
            && d.protocol == Some(crate::config::Protocol::Mcp)
            && d.denial.is_none()
            && d.hidden == 0;
        if passed_whole {
            return;
        }
        let now = self
            .get_current_time()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |t| t.as_nanos() as u64);
        let line = audit::record(policy, d, &self.decision_id, now);
        log(LogLevel::Info, &line);
        let _ = proxy_wasm::hostcalls::set_property(vec![property], Some(line.as_bytes()));
    }

    /// The request headers as the upstream should see them: the decision id added, the
    /// approval grant removed (it is for aigate; the tool server has no use for it), the
    /// caller's token removed unless `identity.jwt.forward` (a server holding it could
    /// replay it at the gateway for any tool the caller may use), and where the answer is
    /// judged, no compression offered (a compressed answer is unreadable).
    fn upstream_headers(&self, route: Option<usize>, session: Option<&str>) {
        self.set_http_request_header(DECISION_HEADER, Some(&self.decision_id));
        // The server's own id of a session the client presented sealed.
        if let Some(session) = session {
            self.set_http_request_header(crate::sessions::SESSION_HEADER, Some(session));
        }
        // Only on a route's traffic: a request no route matched (`unmatched: allow`) goes
        // to some other service, whose own credentials it may carry in that header.
        if let (
            Some(_),
            crate::policy::TokenSource::Jwt {
                header, forward: false, ..
            },
        ) = (route, &self.shared.policy.identity.token)
        {
            if self.headers.get_all(header).next().is_some() {
                self.set_http_request_header(header, None);
            }
        }
        if self.shared.policy.judges_answers(route) && self.headers.get_all("accept-encoding").next().is_some() {
            self.set_http_request_header("accept-encoding", None);
        }
        if let Some(a) = &self.shared.policy.approval {
            if self.headers.get_all(&a.header).next().is_some() {
                self.set_http_request_header(&a.header, None);
            }
        }
    }
}

/// The proxy's host calls plus this worker's token cache, for the identity phase.
struct WorkerHost<'a> {
    tokens: &'a TokenCache,
}

impl Host for WorkerHost<'_> {
    fn now(&self) -> u64 {
        ProxyHost.now()
    }
    fn peer_uri_san(&self) -> Option<String> {
        ProxyHost.peer_uri_san()
    }
    fn jwt_payload(&self, namespace: &str, key: &str) -> Option<serde_json::Map<String, serde_json::Value>> {
        ProxyHost.jwt_payload(namespace, key)
    }
    fn shared(&self) -> &dyn SharedData {
        &host::ProxyShared
    }
    fn token_cache(&self) -> Option<&TokenCache> {
        Some(self.tokens)
    }
}

/// A policy binding MCP sessions without a `session_key` of its own seals them with the
/// proxy's (made once, in its shared data); one that cannot get it is refused.
fn seal_sessions(mut policy: Policy) -> Result<Policy, Vec<policy::ConfigError>> {
    if policy.binds_sessions() && policy.session_seal.is_none() {
        policy.session_seal = crate::sessions::proxy_key(&host::ProxyShared);
        if policy.session_seal.is_none() {
            return Err(vec![policy::ConfigError {
                path: "session_key".into(),
                message: "the proxy's shared data holds no key to seal MCP sessions with, and the policy gives none"
                    .into(),
            }]);
        }
    }
    Ok(policy)
}

/// Whether the response being encoded is the upstream's (Envoy's `response.code_details`
/// is `via_upstream`, or `websocket_handshake_unsuccessful` for its answer to an upgrade it
/// did not accept) rather than one Envoy made itself (a timeout, a body over its buffer
/// limit). Unknown counts as the upstream's: the caller then withholds the answer.
fn upstream_answered() -> bool {
    match proxy_wasm::hostcalls::get_property(vec!["response", "code_details"]) {
        Ok(Some(details)) => matches!(
            details.as_slice(),
            b"via_upstream" | b"websocket_handshake_unsuccessful"
        ),
        _ => true,
    }
}

/// Sets or removes a response header; a refusal by the host must not trap the VM.
fn set_response_header(name: &str, value: Option<&str>) {
    let _ = proxy_wasm::hostcalls::set_map_value(proxy_wasm::types::MapType::HttpResponseHeaders, name, value);
}

fn log(level: LogLevel, message: &str) {
    let _ = proxy_wasm::hostcalls::log(level, message);
}

/// std's `RandomState` is seeded from WASI `random_get`: no extra crate needed.
fn random_u64() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u8(0);
    h.finish()
}

#[allow(dead_code)]
fn internal(message: &str) -> Denial {
    Denial::new(Reason::InternalError, "plugin", message)
}

/// The policy's `hold`, as written in it.
fn hold_label(hold: Hold) -> &'static str {
    match hold {
        Hold::Headers => "headers",
        Hold::Body => "body",
    }
}
