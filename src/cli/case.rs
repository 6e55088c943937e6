//! A request described in JSON, run through the engine exactly as the plugin runs it:
//! the shared input of `aigate eval` and of the known-outcome replay of `aigate readiness`.
//!
//! ```json
//! { "method": "POST", "path": "/mcp", "host": "gateway.example.com",
//!   "headers": { "mcp-session-id": "s-1" },
//!   "claims": { "sub": "alice", "tenant": "acme", "scope": "orders.read", "iat": 1800000000, "exp": 1800000300 },
//!   "peer": "spiffe://prod.example.com/agent/support",
//!   "body": { "jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": { "name": "get_order", "arguments": {} } } }
//! ```
//!
//! The caller is either a real credential in `headers` (verified with the policy's keys,
//! as in the plugin) or `claims`: a token payload taken as already verified (as from
//! Envoy's `jwt_authn`), so a corpus of cases needs no signing key and never expires when
//! it also fixes `now`. Everything after the signature (times, workload, ceilings,
//! session, scopes, arguments, approvals, data rules) is judged as in production.

use crate::config::{Mode, Protocol};
use crate::engine::{self, Decision, Head};
use crate::identity::cache::TokenCache;
use crate::policy::{self, Policy, TokenSource};
use crate::request::{Headers, Host, MemoryShared, SharedData};
use crate::response;
use serde::Deserialize;
use serde_json::{Map, Value};
use std::collections::BTreeMap;

/// One request, as written in a case file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Request {
    /// `POST` when there is a body, else `GET`.
    pub method: Option<String>,
    pub path: String,
    #[serde(default = "default_host")]
    pub host: String,
    /// Header name → value, or a list of values for a repeated header.
    #[serde(default)]
    pub headers: BTreeMap<String, HeaderValue>,
    /// A verified token payload standing in for the credential.
    pub claims: Option<Map<String, Value>>,
    /// The mTLS peer's URI SAN (SPIFFE ID).
    pub peer: Option<String>,
    /// The body as JSON (sent as its compact text)…
    pub body: Option<Value>,
    /// …or as exact text, for bodies that are not valid JSON.
    pub body_text: Option<String>,
}

impl Request {
    /// The body's bytes: `body` as its compact text, or `body_text` as written.
    fn body_bytes(&self) -> Option<Vec<u8>> {
        match (&self.body, &self.body_text) {
            (Some(v), _) => Some(v.to_string().into_bytes()),
            (_, Some(t)) => Some(t.clone().into_bytes()),
            _ => None,
        }
    }

    /// Why no client could send this request, if none could: a header name that is no
    /// HTTP field name (`"authorization "` would be another header than the credential's,
    /// which no request carries), or a `content-length` other than the body's length (a
    /// codec reads that many bytes as the body, or refuses the request). Replayed, either
    /// would be judged as no gateway ever judges it.
    fn unsendable(&self) -> Option<String> {
        // Pseudo-headers are refused with their own message when the head is built.
        let field_name = |n: &str| {
            !n.is_empty()
                && n.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
        };
        if let Some(name) = self.headers.keys().find(|n| !n.starts_with(':') && !field_name(n)) {
            return Some(format!(
                "header name {name:?} is no HTTP field name (letters, digits and !#$%&'*+-.^_`|~ only, RFC 9110): \
                 no request carries it"
            ));
        }
        let length = self.body_bytes().map_or(0, |b| b.len());
        let declared = self
            .headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case("content-length"));
        for (_, value) in declared {
            let values = match value {
                HeaderValue::One(v) => std::slice::from_ref(v),
                HeaderValue::Many(vs) => vs.as_slice(),
            };
            if let Some(v) = values
                .iter()
                .find(|v| v.trim_matches([' ', '\t']) != length.to_string())
            {
                return Some(format!(
                    "content-length {v:?} is not the body's length ({length} bytes): a codec reads that many bytes as \
                     the body or refuses the request; leave content-length out, it is added"
                ));
            }
        }
        None
    }
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum HeaderValue {
    One(String),
    Many(Vec<String>),
}

/// An answer to a request, as the upstream would send it back (with status 200).
#[derive(Debug)]
pub enum Answer {
    /// A JSON document, sent as its compact text labelled `application/json` (`answer`).
    Json(Value),
    /// The exact body (`answer_text`: server-sent events, or JSON text), labelled
    /// `content_type`; by default as [`default_content_type`] says.
    Text {
        body: Vec<u8>,
        content_type: Option<String>,
    },
}

/// The status a replayed answer comes with.
const ANSWER_STATUS: u32 = 200;

/// The last second a pinned time may name: 9999-12-31T23:59:59Z.
const LAST_SECOND: u64 = 253_402_300_799;

/// A pinned time (`--now`, a cases file's `now`) as the gateway's clock could read it:
/// at 0 it finds no clock and refuses every request (`internal_error`), and past year 9999
/// no token is alive, so a case expecting only "deny" would pass for a reason it never saw.
pub fn unix_second(t: u64) -> Result<u64, String> {
    if (1..=LAST_SECOND).contains(&t) {
        Ok(t)
    } else {
        Err(format!(
            "{t} is no time the gateway's clock reads: name a Unix second between 1 and {LAST_SECOND} (year 9999)"
        ))
    }
}

/// `--now` as clap reads it.
pub fn parse_now(text: &str) -> Result<u64, String> {
    unix_second(text.parse::<u64>().map_err(|e| format!("{e}"))?)
}

/// A cases file's `now`, refused as `--now` is.
pub fn pinned_now<'de, D: serde::Deserializer<'de>>(de: D) -> Result<Option<u64>, D::Error> {
    Option::<u64>::deserialize(de)?
        .map(unix_second)
        .transpose()
        .map_err(serde::de::Error::custom)
}

/// The label of an answer given as text without one: an event stream when the request
/// asked for a stream (`"stream": true` on an LLM route; an MCP `GET`, which opens the
/// server's own event stream), else JSON.
pub fn default_content_type(request: &Decision) -> &'static str {
    let mcp_stream = request.protocol == Some(Protocol::Mcp) && request.http_method.eq_ignore_ascii_case("GET");
    if request.stream || mcp_stream {
        "text/event-stream"
    } else {
        "application/json"
    }
}

fn default_host() -> String {
    "aigate.local".into()
}

/// Claims without `iss` stand for a token of the policy's only issuer, and without `aud`
/// for one addressed to their issuer's first audience: a corpus need not repeat them.
/// With several issuers a case must say whose token it is (each may be held to its own
/// scopes). Given values are judged as given: an untrusted `iss` or a foreign `aud` is
/// `token_invalid`, as in the plugin.
fn addressed(mut claims: Map<String, Value>, issuers: &[crate::policy::Issuer]) -> Result<Map<String, Value>, String> {
    let issuer = match (claims.get("iss"), issuers) {
        (Some(iss), _) => issuers.iter().find(|i| iss.as_str() == Some(i.issuer.as_str())),
        (None, [only]) => {
            claims.insert("iss".into(), Value::String(only.issuer.clone()));
            Some(only)
        }
        (None, _) => return Err("claims must name their iss: the policy trusts several issuers".into()),
    };
    if let (false, Some(aud)) = (claims.contains_key("aud"), issuer.and_then(|i| i.audiences.first())) {
        claims.insert("aud".into(), Value::String(aud.clone()));
    }
    Ok(claims)
}

/// What the engine decided and what the client (and the upstream) would see.
pub struct Outcome {
    pub decision: Decision,
    /// `allow`, `deny` or `would_deny`.
    pub verdict: &'static str,
    /// The local reply's status when denied in enforce mode; `None` when forwarded.
    pub status: Option<u32>,
    pub reply_body: Option<String>,
    pub audit: String,
}

pub const DECISION_ID: &str = "0000000000000000-eval";

/// The engine's view of a policy for a case: the policy as written, and for cases that
/// give `claims`, the same policy taking identity from that payload.
pub struct Evaluator {
    pub policy: Policy,
    from_claims: Policy,
    shared: MemoryShared,
    cache: TokenCache,
}

impl Evaluator {
    pub fn new(bytes: &[u8]) -> Result<Evaluator, Vec<policy::ConfigError>> {
        let mut policy = policy::compile(bytes)?;
        // A request replayed offline presents the session id its case names, which no
        // proxy sealed: it is taken as the caller's (the seal is the proxy's business).
        policy.session_seal = None;
        // Claims stand for a signed token: behind jwt_authn as Envoy hands them over, else
        // still held to the issuers and audiences the policy trusts.
        let mut from_claims = policy::compile(bytes)?;
        from_claims.session_seal = None;
        let payload = TokenSource::JwtAuthn {
            namespace: String::new(),
            payload_key: String::new(),
        };
        from_claims.identity.token = match std::mem::replace(&mut from_claims.identity.token, payload) {
            TokenSource::Jwt { issuers, .. } => TokenSource::Vouched { issuers },
            payload => payload,
        };
        // Shared by the cases of one run, as a worker's shared data would be: a grant
        // replayed by a later case is refused. The record covers all of time, as cases
        // are judged at the times they name.
        let shared = MemoryShared::default();
        if policy.approval.is_some() {
            crate::approval::replay::prepare(&shared, 0);
        }
        Ok(Evaluator {
            policy,
            from_claims,
            shared,
            cache: TokenCache::default(),
        })
    }

    /// Why `req` cannot stand for a request the plugin would see, if it cannot.
    ///
    /// Claims stand for the token a policy that verifies tokens itself (`source: jwt`)
    /// reads from its credential header. A request giving both has two callers: the
    /// plugin would verify the header's token (refusing a bad or repeated one) and never
    /// see the claims. Judging the header and then taking the claims as its payload is a
    /// request no gateway ever sees (a case asserting `allow` for two Authorization
    /// headers passed); judging the header alone drops the claims the case was written
    /// with. Either way the replay would disagree with the case's author without a word,
    /// so the case is refused instead: a malformed or repeated credential is tested
    /// without claims, a caller with claims without the header. Behind `jwt_authn` the
    /// plugin itself checks the header beside the verified payload, so both are judged.
    ///
    /// Nor can a request no client could send ([`Request::unsendable`]) stand for one.
    pub fn refuses(&self, req: &Request) -> Option<String> {
        if let Some(problem) = req.unsendable() {
            return Some(problem);
        }
        let TokenSource::Jwt { header, .. } = &self.policy.identity.token else {
            return None;
        };
        let sent = req.headers.keys().any(|k| k.eq_ignore_ascii_case(header));
        (req.claims.is_some() && sent).then(|| {
            format!(
                "the request gives claims and the credential header {header:?}: the plugin verifies that \
                 header's token and never sees the claims, which stand for it; give the caller either as claims or as a real \
                 credential in headers (a malformed or repeated credential needs no claims)"
            )
        })
    }

    /// Runs one request at time `now` (Unix seconds).
    pub fn run(&self, req: &Request, now: u64) -> Result<Outcome, String> {
        if let Some(problem) = self.refuses(req) {
            return Err(problem);
        }
        if req.body.is_some() && req.body_text.is_some() {
            return Err("give either body or body_text, not both".into());
        }
        if !req.path.starts_with('/') {
            return Err(format!("path {:?} must start with '/'", req.path));
        }
        let body = req.body_bytes();
        let headers = headers(req, body.as_deref())?;
        let policy = if req.claims.is_some() {
            &self.from_claims
        } else {
            &self.policy
        };
        // Behind jwt_authn every claim number reaches the plugin as a double.
        let claims = match (&req.claims, &self.from_claims.identity.token) {
            (Some(c), TokenSource::JwtAuthn { .. }) => Some(crate::identity::metadata::as_metadata(c)),
            (Some(c), TokenSource::Vouched { issuers }) => Some(addressed(c.clone(), issuers)?),
            (c, _) => c.clone(),
        };
        let host = CaseHost {
            now,
            peer: req.peer.clone(),
            claims,
            shared: &self.shared,
            cache: &self.cache,
        };
        // An empty body is none to Envoy: its headers end the stream (`Content-Length: 0`).
        let has_body = body.as_ref().is_some_and(|b| !b.is_empty());
        let decision = match engine::on_headers(policy, &headers, &host, has_body) {
            Head::Decided(d) => d,
            Head::NeedBody(mut d) => {
                let body = body.unwrap_or_default();
                // The plugin refuses an oversized body before reading it.
                if body.len() > policy.limits.max_body_bytes {
                    d.body_bytes = Some(body.len());
                    d.denial = Some(engine::body_too_large(policy));
                    d
                } else {
                    engine::on_body(policy, d, &headers, &body, &host)
                }
            }
        };
        let verdict = crate::audit::verdict(policy, &decision);
        let (status, reply_body) = match (&decision.denial, policy.mode) {
            (Some(denial), Mode::Enforce) => {
                let reply = response::render(policy, &decision, denial, DECISION_ID);
                (
                    Some(reply.status),
                    Some(String::from_utf8_lossy(&reply.body).into_owned()),
                )
            }
            // The route's OAuth metadata: answered by aigate, as the plugin answers it.
            (None, _) if decision.metadata => (
                Some(200),
                Some(
                    policy
                        .resource_metadata(decision.route)
                        .map_or("{}", |m| m.document.as_str())
                        .to_string(),
                ),
            ),
            _ => (None, None),
        };
        let audit = crate::audit::record(policy, &decision, DECISION_ID, now.saturating_mul(1_000_000_000));
        Ok(Outcome {
            decision,
            verdict,
            status,
            reply_body,
            audit,
        })
    }

    /// Runs `req`, then judges `answer` as the plugin judges the answer to it: read as its
    /// label says (whole as JSON, or event by event), in one piece. The request must be
    /// allowed and its route must judge answers. `reply_body` is what the client would get
    /// instead (a refusal, an error, a filtered list, a stream ending in the error event),
    /// `None` when the answer reaches it as it is.
    pub fn run_answer(&self, req: &Request, answer: &Answer, now: u64) -> Result<Outcome, String> {
        let request = self.run(req, now)?;
        if let Some(denial) = &request.decision.denial {
            return Err(format!(
                "the request itself is {} ({}), so no answer comes back",
                request.verdict,
                denial.reason.as_str()
            ));
        }
        let policy = if req.claims.is_some() {
            &self.from_claims
        } else {
            &self.policy
        };
        if !engine::judges_answer(policy, &request.decision) {
            return Err(unread(policy, &request.decision));
        }
        let (body, content_type) = match answer {
            Answer::Json(v) => (v.to_string().into_bytes(), "application/json"),
            Answer::Text { body, content_type } => (
                body.clone(),
                content_type
                    .as_deref()
                    .unwrap_or_else(|| default_content_type(&request.decision)),
            ),
        };
        let head = Headers::new(vec![
            (":status".into(), ANSWER_STATUS.to_string().into_bytes()),
            ("content-type".into(), content_type.as_bytes().to_vec()),
        ]);
        // The answer reads the same shared data as the requests (the tasks it creates are
        // bound there), nothing of the caller's connection.
        let host = CaseHost {
            now,
            peer: None,
            claims: None,
            shared: &self.shared,
            cache: &self.cache,
        };
        let (decision, reply) = engine::answer_at_once(policy, &request.decision, &head, &body, DECISION_ID, &host);
        // The client gets a refusal in the answer's place: with the gateway's status when
        // it was refused at its head (unreadable), else under the status the answer's head
        // went out with. Nothing replaces an answer that passes, or in monitor mode.
        let status = match (&decision.denial, policy.mode) {
            (Some(_), Mode::Enforce) => Some(match engine::answer_format(policy, &request.decision, &head) {
                Err(_) => engine::head_refusal_status(&request.decision, !body.is_empty()),
                Ok(_) => ANSWER_STATUS,
            }),
            _ => None,
        };
        let verdict = crate::audit::verdict(policy, &decision);
        let audit = crate::audit::record(policy, &decision, DECISION_ID, now.saturating_mul(1_000_000_000));
        Ok(Outcome {
            decision,
            verdict,
            status,
            reply_body: reply.map(|b| String::from_utf8_lossy(&b).into_owned()),
            audit,
        })
    }
}

/// Why the answer to an allowed request is not judged, for a case or `eval` that gives
/// one: the plugin passes it to the client unread (at the `200` a replayed answer comes
/// with), so there is no decision on it to replay.
fn unread(policy: &Policy, request: &Decision) -> String {
    let route = request.route.and_then(|i| policy.routes.get(i));
    let why = match route {
        _ if request.metadata => {
            "aigate answers this request itself (the route's OAuth metadata): no upstream answer comes back".to_string()
        }
        None => "no route takes the request (unmatched: allow): its answer passes to the client unread".to_string(),
        Some(r) if !policy.judges_answers(request.route) => {
            let passes = match r.protocol {
                Protocol::Action => {
                    "is a REST action: its endpoint's answer passes to the client as it is, only a redirect off the \
                     request's origin being refused (502, rule answer.location), and a replayed answer is a 200"
                }
                Protocol::Mcp => "passes MCP answers unread (lists, answer_resources and tasks \"pass\")",
                _ => "passes model answers unread (model_calls \"pass\")",
            };
            format!("route {:?} {passes}", r.id)
        }
        Some(_) => {
            "the request names no caller, whose boundary the answer would be held to: it passes unread".to_string()
        }
    };
    format!("{why}; there is no decision on the answer to replay (leave the answer out to replay the request)")
}

fn headers(req: &Request, body: Option<&[u8]>) -> Result<Headers, String> {
    let method = req
        .method
        .clone()
        .unwrap_or_else(|| if body.is_some() { "POST" } else { "GET" }.into());
    let mut pairs = vec![
        (":method".to_string(), method.into_bytes()),
        (":path".to_string(), req.path.clone().into_bytes()),
        (":authority".to_string(), req.host.clone().into_bytes()),
        (":scheme".to_string(), b"https".to_vec()),
    ];
    let has = |name: &str| req.headers.keys().any(|k| k.eq_ignore_ascii_case(name));
    if body.is_some() && !has("content-type") {
        pairs.push(("content-type".into(), b"application/json".to_vec()));
    }
    if let (Some(b), false) = (body, has("content-length")) {
        pairs.push(("content-length".into(), b.len().to_string().into_bytes()));
    }
    for (name, given) in &req.headers {
        if name.starts_with(':') {
            return Err(format!(
                "header {name:?}: set pseudo-headers with method, path and host"
            ));
        }
        let name = name.to_ascii_lowercase();
        // Envoy's codecs strip the spaces and tabs around a header value (RFC 9110's
        // optional whitespace) before any filter reads it: so does the replay.
        let value = |v: &String| v.trim_matches([' ', '\t']).as_bytes().to_vec();
        match given {
            HeaderValue::One(v) => pairs.push((name, value(v))),
            HeaderValue::Many(vs) => pairs.extend(vs.iter().map(|v| (name.clone(), value(v)))),
        }
    }
    Ok(Headers::new(pairs))
}

struct CaseHost<'a> {
    now: u64,
    peer: Option<String>,
    claims: Option<Map<String, Value>>,
    shared: &'a MemoryShared,
    cache: &'a TokenCache,
}

impl Host for CaseHost<'_> {
    fn now(&self) -> u64 {
        self.now
    }
    fn peer_uri_san(&self) -> Option<String> {
        self.peer.clone()
    }
    fn jwt_payload(&self, _namespace: &str, _key: &str) -> Option<Map<String, Value>> {
        self.claims.clone()
    }
    fn shared(&self) -> &dyn SharedData {
        self.shared
    }
    fn token_cache(&self) -> Option<&TokenCache> {
        Some(self.cache)
    }
}
