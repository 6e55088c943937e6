//! The decision flow for one request: route → input checks → identity → actions.
//!
//! Split in two phases because the host delivers headers before the body: identity and
//! cheap input checks are decided at headers (an unauthenticated caller never makes us
//! buffer or parse), actions at end of body. LLM API requests are judged in `llm`.

mod llm;
mod output;

pub use output::{
    answer_at_once, answer_format, answer_too_large, head_refusal_status, judges_answer, on_answer, on_listing,
    refused_answer, stream_end, visible, whole_answer,
};

use crate::approval;
use crate::authz;
use crate::config::{ExtraInput, Impact, Mode, Protocol, ProviderState, Tasks, UnknownMethods};
use crate::decision::{Denial, Reason};
use crate::identity::{self, Principal};
use crate::media;
use crate::policy::{DataRule, Policy, Tool};
use crate::request::{mcp, mirror, Headers, Host, Repeated};
use serde_json::Value;

/// Everything a decision produced, for the response, the audit line and the metrics.
#[derive(Debug, Clone, Default)]
pub struct Decision {
    pub stage: Stage,
    pub denial: Option<Denial>,
    pub route: Option<usize>,
    pub protocol: Option<Protocol>,
    /// HTTP method of the request.
    pub http_method: String,
    /// The identity check's outcome (`aigate_identity_total`), when identity was checked:
    /// the source is the policy's.
    pub identity: Option<Result<(), Reason>>,
    pub principal: Option<Principal>,
    /// JSON-RPC: the first method, the ids to echo, whether it was a batch.
    pub rpc_method: Option<String>,
    pub rpc_ids: Vec<Value>,
    pub batch: bool,
    /// Tool calls judged, in order (the audit names the deciding one).
    pub calls: Vec<Call>,
    /// The data rule that decided: the denying one, else the last matched.
    pub data: Option<DataUse>,
    /// MCP `prompts/get`: the prompt asked for.
    pub prompt: Option<String>,
    /// The answer's decision: how many listed items and resources the caller was not shown.
    pub hidden: usize,
    pub body_bytes: Option<usize>,
    /// LLM routes: the model asked for.
    pub model: Option<String>,
    /// LLM routes: the request asked for a streamed answer (`"stream": true`).
    pub stream: bool,
    /// LLM routes: offered tools the caller may not use (stripped, or the reason for the denial).
    pub refused_offers: Vec<String>,
    /// LLM routes with `tool_offers: strip`: the body to forward instead of the client's.
    pub rewrite: Option<Vec<u8>>,
    /// The request asks for the route's protected resource metadata: aigate answers it.
    pub metadata: bool,
    /// MCP routes binding sessions: the server's own id of the session the request
    /// presented sealed (see `crate::sessions`), sent upstream in its place.
    pub upstream_session: Option<String>,
    /// The session a request named that no token binds: one its token is not bound to (no
    /// principal is established then), or on an MCP route without `bind_session` the
    /// `Mcp-Session-Id` presented. The audit names it, so a session's requests can be traced.
    pub session_tried: Option<String>,
}

/// What a decision judged: the request, or the model's answer to it (`model_calls: judge`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Stage {
    #[default]
    Request,
    Answer,
}

/// A data rule a request reached (resources, retrieval stores, remote MCP servers, prompts).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DataUse {
    /// e.g. `data.resources.tenant-docs`
    pub rule: String,
    pub owner: Option<String>,
}

impl Decision {
    /// Records the data rule a request reached, then requires its scope: the audit names
    /// the rule and its owner whether or not the scope was granted.
    fn use_data<R: DataRule>(
        &mut self,
        policy: &Policy,
        principal: &Principal,
        rule: Result<&R, Denial>,
    ) -> Result<(), Denial> {
        // Refused by no rule (none covers what was asked): a rule an earlier item reached
        // does not answer for the refusal.
        let rule = rule.inspect_err(|_| self.data = None)?;
        self.data = Some(DataUse {
            rule: rule.rule(),
            owner: rule.owner().map(str::to_string),
        });
        authz::data_scope(policy, principal, rule)
    }
}

#[derive(Debug, Clone)]
pub struct Call {
    pub tool: String,
    pub intent: Option<String>,
    pub impact: Option<Impact>,
    pub owner: Option<String>,
    pub args_digest: Option<String>,
    pub approver: Option<String>,
    /// Passed every check, its approval included.
    pub allowed: bool,
    /// An external-impact call that passed its own checks and waits for its grant to be
    /// examined: not allowed yet, and not what refused the request if another call did
    /// first (a batch refused by its second call never examines the first's approval).
    pub awaiting_grant: bool,
}

impl Call {
    /// A call not yet judged. A catalogued tool's intent, impact and owner are recorded
    /// even if the call is then denied: the audit says what was attempted.
    fn new(policy: &Policy, tool: String) -> Call {
        let known = policy.tools.get(&tool);
        Call {
            intent: known.map(|t| t.intent.clone()),
            impact: known.map(|t| t.impact),
            owner: known.and_then(|t| t.owner.clone()),
            tool,
            args_digest: None,
            approver: None,
            allowed: false,
            awaiting_grant: false,
        }
    }
}

impl Decision {
    pub fn allowed(&self) -> bool {
        self.denial.is_none()
    }

    fn deny(mut self, d: Denial) -> Self {
        self.denial = Some(d);
        self
    }
}

/// Outcome of the header phase.
#[derive(Debug)]
pub enum Head {
    Decided(Decision),
    /// Identity is settled; the verdict needs the body.
    NeedBody(Decision),
}

/// Decides what can be decided from the request head. `has_body`: the request continues
/// with a body (the host has not signalled end of stream).
pub fn on_headers(policy: &Policy, headers: &Headers, host: &dyn Host, has_body: bool) -> Head {
    let method = headers.text(":method").unwrap_or("").to_string();
    let path = headers.text(":path").unwrap_or("");
    let path = path.split('?').next().unwrap_or("");
    let authority = headers.text(":authority").unwrap_or("");
    let mut d = Decision {
        http_method: method.clone(),
        ..Decision::default()
    };

    // Whatever `unmatched` says: such a path, method or host could be judged as one route
    // and served as another.
    if let Some(problem) = crate::request::path_problem(path) {
        return Head::Decided(d.deny(Denial::new(
            Reason::RouteUnmatched,
            "routes",
            format!("the request path {problem}: it is matched to no route"),
        )));
    }
    if method.bytes().any(|b| !b.is_ascii() || b.is_ascii_lowercase()) {
        // HTTP/2 carries `:method: post` as it is; Flask and Django upper-case it and run
        // the POST handler that a route for POST judges.
        return Head::Decided(d.deny(Denial::new(
            Reason::RouteUnmatched,
            "routes",
            format!(
                "the request method {} is not in upper case, which servers that upper-case it would read as another: it is matched to no route",
                authz::shown(&method)
            ),
        )));
    }
    if let Some(problem) = crate::request::authority_problem(authority) {
        return Head::Decided(d.deny(Denial::new(
            Reason::RouteUnmatched,
            "routes",
            format!("the request's host (authority) {problem}: it is matched to no route"),
        )));
    }
    // An OAuth client's first step, before it has a token: the route's protected resource
    // metadata, answered by aigate (it names no caller and reaches no upstream).
    if method == "GET" {
        if let Some(i) = policy.metadata_route(authority, path) {
            d.route = Some(i);
            d.protocol = Some(Protocol::Mcp);
            d.metadata = true;
            return Head::Decided(d);
        }
    }
    let Some(route_idx) = policy.route(&method, authority, path) else {
        if policy.unmatched_allow {
            return Head::Decided(d);
        }
        return Head::Decided(d.deny(Denial::new(
            Reason::RouteUnmatched,
            "routes",
            "no route matches this request",
        )));
    };
    d.route = Some(route_idx);
    d.protocol = policy.routes.get(route_idx).map(|r| r.protocol);
    if d.protocol == Some(Protocol::Mcp) && policy.identity.bind_session.is_none() {
        d.session_tried = headers
            .one(crate::sessions::SESSION_HEADER)
            .ok()
            .flatten()
            .map(|v| String::from_utf8_lossy(v).into_owned());
    }
    // MCP's Streamable HTTP transport has three methods; any other is nothing aigate judges.
    if d.protocol == Some(Protocol::Mcp) && !matches!(method.as_str(), "POST" | "GET" | "DELETE") {
        return Head::Decided(d.deny(Denial::new(
            Reason::RouteUnmatched,
            "routes",
            "an MCP endpoint takes POST, GET and DELETE only",
        )));
    }

    if let Some(denial) = input_checks(policy, headers, has_body, d.protocol) {
        return Head::Decided(d.deny(denial));
    }

    match identity::authenticate(policy, headers, host) {
        Ok(p) => {
            // A session-bound token must name its session on every request. MCP's
            // `initialize` alone may come without it (the server assigns the session), and
            // only a body says whether a request is one: a POST's (a GET or DELETE with a
            // body is no handshake, whatever the body says).
            let may_open = d.protocol == Some(Protocol::Mcp) && has_body && method == "POST";
            let unnamed = policy.identity.bind_session.is_some() && p.session.is_none();
            d.principal = Some(p);
            if unnamed && !may_open {
                d.identity = Some(Err(Reason::SessionMismatch));
                return Head::Decided(d.deny(session_missing()));
            }
            d.identity = Some(Ok(()));
            if let Some(denial) = open_session(policy, &mut d, headers) {
                return Head::Decided(d.deny(denial));
            }
        }
        Err(denial) => {
            d.identity = Some(Err(denial.reason));
            // A session the token is not bound to: the audit names the session tried.
            if denial.reason == Reason::SessionMismatch {
                d.session_tried = policy
                    .identity
                    .bind_session
                    .as_ref()
                    .and_then(|b| headers.one(&b.header).ok().flatten())
                    .map(|v| String::from_utf8_lossy(v).into_owned());
            }
            return Head::Decided(d.deny(denial));
        }
    }

    // On an LLM route only a POST to the route's own endpoint is a request aigate judges.
    // Another method, or a path below it, reads, cancels or deletes what the provider stored
    // (a response, a completion, a batch and its results) or reaches another endpoint: not
    // visible to aigate, and another user's if the id is. A body does not change that: web
    // servers ignore a GET's body.
    let route = d.route.and_then(|i| policy.routes.get(i));
    if let Some(r) = route.filter(|r| r.protocol.is_llm() && r.provider_state == ProviderState::Deny) {
        let elsewhere = if method != "POST" {
            Some("a request other than a POST")
        } else if below_prefix(path, &r.prefix) {
            Some("a request to a path below the route's endpoint")
        } else if overriding(headers).is_some() {
            // A proxy or framework honouring it turns the judged POST into a GET or a DELETE
            // of a stored object, or sends it to another endpoint.
            Some("a request overriding its method or path")
        } else {
            None
        };
        if let Some(what) = elsewhere {
            return Head::Decided(d.deny(Denial::new(
                Reason::DataBoundary,
                format!("routes.{}.provider_state", r.id),
                format!(
                    "{what} reads or changes what the provider stored, or reaches another endpoint, which aigate cannot judge; this route does not allow it"
                ),
            )));
        }
    }
    // An action's input outside its body is in the head: refused there, so that with
    // `hold: body` the upstream never receives the head of a request refused for it. A
    // body declared empty (`Content-Length: 0`) is judged as none, as at end of stream.
    if let Some(r) = route.filter(|r| r.protocol == Protocol::Action) {
        let body_follows = has_body && headers.text("content-length").map(str::trim) != Some("0");
        let found = extra_input(&r.prefix, headers).or_else(|| undeclared_body(headers, body_follows));
        if let Err(denial) = refuse_extra_input(policy, &mut d, r, found) {
            return Head::Decided(d.deny(denial));
        }
    }
    // MCP sends its messages in POSTs; a server reads no body of a GET (its stream) or a
    // DELETE (the session's end). Judged, such a body would be audited (and its mirror
    // headers taken) as a call no server runs.
    if has_body && d.protocol == Some(Protocol::Mcp) && method != "POST" {
        return Head::Decided(d.deny(Denial::new(
            Reason::BodyMalformed,
            "mcp",
            format!("an MCP {method} carries no JSON-RPC message: MCP sends its messages in POST requests"),
        )));
    }
    if has_body {
        return Head::NeedBody(d);
    }
    // An action route is its tool whatever the method: without a body, no arguments.
    if d.protocol == Some(Protocol::Action) {
        return Head::Decided(on_body(policy, d, headers, b"", host));
    }
    // Without a body a POST has nothing to judge.
    if method == "POST" {
        let rule = crate::audit::protocol_label(d.protocol);
        return Head::Decided(d.deny(Denial::new(Reason::BodyMalformed, rule, "a POST needs a JSON body")));
    }
    // MCP's GET (server stream) and DELETE (end session) carry no action, and no message
    // for a mirror header to name.
    if d.protocol == Some(Protocol::Mcp) {
        if let Err(denial) = mirror::check_bodiless(headers, &method) {
            return Head::Decided(d.deny(denial));
        }
    }
    Head::Decided(d)
}

/// On an MCP route binding sessions, the session the request presents must have been
/// sealed to its caller: the server's own id then goes upstream in its place. One that was
/// not (another caller's, the server's bare id, one sealed by a proxy since restarted) is
/// a session this caller does not have: `404`, as MCP servers answer a session they do not
/// know, so the client opens a new one. Monitor mode seals nothing and so checks nothing.
fn open_session(policy: &Policy, d: &mut Decision, headers: &Headers) -> Option<Denial> {
    let route = d
        .route
        .and_then(|i| policy.routes.get(i))
        .filter(|r| r.protocol == Protocol::Mcp && r.sessions == crate::config::Sessions::Bind)?;
    let key = policy.session_seal.as_ref().filter(|_| policy.mode == Mode::Enforce)?;
    let rule = format!("routes.{}.sessions", route.id);
    let presented = match headers.one(crate::sessions::SESSION_HEADER) {
        Ok(None) => return None,
        Ok(Some(v)) => v,
        Err(Repeated) => {
            return Some(Denial::new(
                Reason::BodyMalformed,
                rule,
                "the session header appears twice",
            ))
        }
    };
    let principal = d.principal.as_ref()?;
    let id = std::str::from_utf8(presented)
        .ok()
        .and_then(|v| crate::sessions::unseal(key, &route.id, principal, v));
    match id {
        Some(id) => {
            d.upstream_session = Some(id.to_string());
            None
        }
        None => Some(Denial {
            status: Some(404),
            ..Denial::new(
                Reason::SessionMismatch,
                rule,
                "this session was not opened for this caller through aigate, or the gateway restarted since: start a new session",
            )
        }),
    }
}

fn session_missing() -> Denial {
    Denial::new(
        Reason::SessionMismatch,
        "identity.bind_session",
        "this token is bound to a session: send the session header",
    )
}

/// Header-level input checks: duplicated credentials, headers in another spelling,
/// encodings, the body's declared type and size.
fn input_checks(policy: &Policy, headers: &Headers, has_body: bool, protocol: Option<Protocol>) -> Option<Denial> {
    // An upgraded request (WebSocket, HTTP/2 extended CONNECT) becomes a tunnel: what
    // crosses it is no body aigate reads, and with `hold: body` its head would already
    // have reached the upstream, which answers it at once.
    if headers.get_all("upgrade").next().is_some() || headers.get_all(":protocol").next().is_some() {
        return Some(Denial::new(
            Reason::BodyMalformed,
            "upgrade",
            "a protocol upgrade (Upgrade, or CONNECT with :protocol) opens a tunnel whose messages aigate cannot judge",
        ));
    }
    if let Some(name) = underscored_alias(policy, headers, protocol) {
        let dashed = name.replace('_', "-");
        return Some(Denial::new(
            Reason::BodyMalformed,
            "headers",
            format!(
                "header {} is read as {dashed:?} by CGI-style servers (WSGI, Rack, PHP), which aigate reads only under that name: send it as {dashed:?}",
                authz::shown(name)
            ),
        ));
    }
    if let Some(a) = &policy.approval {
        if headers.get_all(&a.header).count() > 1 {
            return Some(Denial::new(
                Reason::ApprovalInvalid,
                "approval.header",
                crate::approval::REPEATED_HEADER,
            ));
        }
    }
    let encodings: Vec<&[u8]> = headers.get_all("content-encoding").collect();
    if encodings
        .iter()
        .any(|e| !e.trim_ascii().eq_ignore_ascii_case(b"identity"))
    {
        return Some(Denial::new(
            Reason::EncodingUnsupported,
            "content_encoding",
            "compressed bodies cannot be inspected; send Content-Encoding: identity",
        ));
    }
    if has_body {
        if let Some(problem) = body_type_problem(headers, protocol) {
            return Some(Denial::new(Reason::EncodingUnsupported, "content_type", problem));
        }
        let declared = headers.one("content-length");
        let too_big = match declared {
            Err(Repeated) => {
                return Some(Denial::new(
                    Reason::BodyMalformed,
                    "content_length",
                    "Content-Length appears more than once",
                ))
            }
            Ok(Some(v)) => std::str::from_utf8(v)
                .ok()
                .and_then(|s| s.trim().parse::<u64>().ok())
                .is_none_or(|n| n > policy.limits.max_body_bytes as u64),
            Ok(None) => false,
        };
        if too_big {
            return Some(body_too_large(policy));
        }
    }
    None
}

pub fn body_too_large(policy: &Policy) -> Denial {
    Denial::new(
        Reason::BodyTooLarge,
        "limits.max_body_bytes",
        format!("request body exceeds {} bytes", policy.limits.max_body_bytes),
    )
}

/// Decides a request whose body arrived in full.
pub fn on_body(policy: &Policy, mut d: Decision, headers: &Headers, body: &[u8], host: &dyn Host) -> Decision {
    d.body_bytes = Some(body.len());
    if body.len() > policy.limits.max_body_bytes {
        return d.deny(body_too_large(policy));
    }
    let Some(principal) = d.principal.take() else {
        // on_headers always settles identity before asking for the body.
        return d.deny(Denial::new(
            Reason::InternalError,
            "engine",
            "body phase without a principal",
        ));
    };
    let denial = match d.protocol {
        Some(Protocol::Mcp) => judge_mcp(policy, &mut d, &principal, headers, body, host).err(),
        Some(Protocol::Action) => judge_action(policy, &mut d, &principal, headers, body, host).err(),
        Some(p) => llm::judge(policy, &mut d, p, &principal, headers, body, host).err(),
        None => None,
    };
    d.principal = Some(principal);
    match denial {
        Some(x) => d.deny(x),
        None => d,
    }
}

fn judge_mcp(
    policy: &Policy,
    d: &mut Decision,
    principal: &Principal,
    headers: &Headers,
    body: &[u8],
    host: &dyn Host,
) -> Result<(), Denial> {
    let parsed = mcp::parse(body, &policy.limits)?;
    d.batch = parsed.batch;
    d.rpc_ids = parsed.messages.iter().filter_map(|m| m.id.clone()).collect();
    // The first message with a method: a client's response leading a batch names none.
    d.rpc_method = parsed.messages.iter().find_map(|m| m.method.clone());
    // What intermediaries read in the headers must be what was judged in the body.
    mirror::check(headers, &parsed, &policy.tools)?;
    // Every element is judged; the first denial denies the whole batch. Approval grants
    // are claimed last, so a batch another element denies never spends one.
    let mut external = Vec::new();
    // The message each awaiting call came in: a refused grant is that message's refusal.
    let mut asked_by = Vec::new();
    for m in parsed.messages {
        // The audit's method is the message that decided: in a batch, the one refused.
        let method = m.method.clone();
        let before = external.len();
        if let Err(denial) = judge_message(policy, d, principal, host, m, &mut external) {
            d.rpc_method = method;
            return Err(denial);
        }
        asked_by.extend(std::iter::repeat_n(method, external.len() - before));
    }
    let calls: Vec<Option<usize>> = external.iter().map(|a| a.call).collect();
    claim_grants(policy, d, principal, headers, host, external).inspect_err(|_| {
        // The call whose grant failed: judged (no longer awaiting) and not allowed.
        let failed = calls.iter().position(|i| {
            i.and_then(|i| d.calls.get(i))
                .is_some_and(|c| !c.allowed && !c.awaiting_grant)
        });
        if let Some(method) = failed.and_then(|f| asked_by.get(f)) {
            d.rpc_method = method.clone();
        }
    })
}

/// One message of an MCP body (a batch's element), judged; the external-impact calls it
/// makes join `external`, to claim their grants once every message has been judged.
fn judge_message<'p>(
    policy: &'p Policy,
    d: &mut Decision,
    principal: &Principal,
    host: &dyn Host,
    m: mcp::McpMessage,
    external: &mut Vec<Awaiting<'p>>,
) -> Result<(), Denial> {
    // Only `initialize` opens a session; a response to the server answers a request it
    // made within one.
    if policy.identity.bind_session.is_some()
        && principal.session.is_none()
        && m.method.as_deref() != Some("initialize")
    {
        return Err(session_missing());
    }
    // A message the server files with a task (a client's answer to what the task asked,
    // the draft's `tasks/input_response`) reaches that task: the caller's own only.
    if let Some(task) = &m.related_task {
        follow_tasks(policy, d, principal, std::slice::from_ref(task), host)?;
    }
    match m.action {
        mcp::McpAction::ToolCall { name, arguments } => {
            if let Some(tool) = judge_call(policy, d, principal, name, &arguments)? {
                external.push(Awaiting::claim(d, tool, arguments, approval::Gate::Action));
            }
        }
        mcp::McpAction::ResourceRead { uri } => {
            d.use_data(policy, principal, authz::resource(policy, principal, &uri))?;
        }
        mcp::McpAction::TemplateRef { uri } => {
            d.use_data(policy, principal, authz::resource_template(policy, principal, &uri))?;
        }
        mcp::McpAction::Subscribe { uris, tasks } => {
            for uri in uris {
                d.use_data(policy, principal, authz::resource(policy, principal, &uri))?;
            }
            follow_tasks(policy, d, principal, &tasks, host)?;
        }
        mcp::McpAction::Task { id } => follow_tasks(policy, d, principal, &[id], host)?,
        mcp::McpAction::PromptGet { name } => {
            let rule = authz::prompt(policy, &name);
            d.prompt = Some(name);
            d.use_data(policy, principal, rule)?;
        }
        mcp::McpAction::List(_) | mcp::McpAction::Other => {}
        mcp::McpAction::Unknown => {
            let route = d.route.and_then(|i| policy.routes.get(i));
            if route.is_none_or(|r| r.unknown_methods == UnknownMethods::Deny) {
                return Err(Denial::new(
                    Reason::ToolUnknown,
                    route.map_or("routes".into(), |r| format!("routes.{}.unknown_methods", r.id)),
                    format!(
                        "MCP method {} is not one aigate knows, so what it does cannot be judged",
                        authz::shown(m.method.as_deref().unwrap_or_default())
                    ),
                ));
            }
        }
    }
    // The tools the client's model called in answer to a server's sampling request: the
    // server runs them for this caller, so each is judged as the caller's own call.
    for call in m.sampled {
        if let Some(tool) = judge_call(policy, d, principal, call.name, &call.arguments)? {
            external.push(Awaiting::claim(d, tool, call.arguments, approval::Gate::Action));
        }
    }
    Ok(())
}

/// A request naming tasks (to follow, steer or stop them) is allowed for the caller the
/// tasks were created for only, on routes that bind tasks (`tasks: bind`). The caller's
/// tasks are read once, however many the request names (a `subscriptions/listen`), and a
/// request naming more than a caller can hold names another's.
fn follow_tasks(
    policy: &Policy,
    d: &Decision,
    principal: &Principal,
    ids: &[String],
    host: &dyn Host,
) -> Result<(), Denial> {
    let Some(route) = d.route.and_then(|i| policy.routes.get(i)) else {
        return Err(Denial::new(Reason::RouteUnmatched, "routes", "no route"));
    };
    if route.tasks == Tasks::Pass || ids.is_empty() {
        return Ok(());
    }
    let rule = format!("routes.{}.tasks", route.id);
    let quota = policy.limits.max_tasks_per_caller;
    if ids.len() > quota {
        return Err(Denial::new(
            Reason::DataBoundary,
            rule,
            format!(
                "the request names {} tasks, more than the {quota} one caller can hold (limits.max_tasks_per_caller)",
                ids.len()
            ),
        ));
    }
    let held = crate::tasks::held(host, &route.id, principal);
    match ids.iter().find(|id| !held.contains(id)) {
        None => Ok(()),
        // Whether the task exists, and whose it is, is not said: that too is information.
        Some(id) => Err(Denial::new(
            Reason::DataBoundary,
            rule,
            format!(
                "task {} was not created for this caller through aigate, or its binding expired",
                authz::shown(id)
            ),
        )),
    }
}

/// A REST action: the route's tool, called with the JSON body (an object; none = `{}`).
fn judge_action(
    policy: &Policy,
    d: &mut Decision,
    principal: &Principal,
    headers: &Headers,
    body: &[u8],
    host: &dyn Host,
) -> Result<(), Denial> {
    let route = d.route.and_then(|i| policy.routes.get(i));
    let Some((route, tool)) = route.and_then(|r| Some((r, r.tool.clone()?))) else {
        return Err(Denial::new(
            Reason::InternalError,
            "engine",
            "action route without a tool",
        ));
    };
    let has_body = !body.iter().all(u8::is_ascii_whitespace);
    // The rest was judged at the head; a body the head did not announce has its type yet.
    refuse_extra_input(policy, d, route, undeclared_body(headers, has_body))?;
    let args = if !has_body {
        Ok(Value::Object(serde_json::Map::new()))
    } else {
        crate::json::parse_request(body, policy.limits.max_json_depth)
            .map_err(|e| crate::request::json_refused(&e, &policy.limits))
            .and_then(|v| match v {
                Value::Object(_) => Ok(v),
                _ => Err(Denial::new(
                    Reason::BodyMalformed,
                    "action",
                    "an action's body is a JSON object of arguments",
                )),
            })
    };
    // Laravel and Symfony (and Express's method-override set to read the body) take the
    // method from a `_method` member: the body form of the override headers.
    let overridden = route.extra_input == ExtraInput::Deny
        && args.as_ref().is_ok_and(|a| {
            a.as_object()
                .is_some_and(|o| o.keys().any(|k| k.eq_ignore_ascii_case("_method")))
        });
    if overridden {
        d.calls.push(Call::new(policy, tool));
        return Err(Denial::new(
            Reason::ArgumentViolation,
            format!("routes.{}.extra_input", route.id),
            "a method override member (_method) carries input aigate does not judge: send the action's arguments in its JSON body",
        ));
    }
    match args {
        Ok(args) => match judge_call(policy, d, principal, tool, &args)? {
            Some(external) => {
                let pending = vec![Awaiting::claim(d, external, args, approval::Gate::Action)];
                claim_grants(policy, d, principal, headers, host, pending)
            }
            None => Ok(()),
        },
        Err(denial) => {
            // The route says which action was attempted even when its body is unreadable.
            d.calls.push(Call::new(policy, tool));
            Err(denial)
        }
    }
}

/// Refuses an action whose request carries input outside its body (`found`: see
/// [`extra_input`] and [`undeclared_body`]), unless its route allows it; the refusal names
/// the route's action as attempted.
fn refuse_extra_input(
    policy: &Policy,
    d: &mut Decision,
    route: &crate::policy::Route,
    found: Option<&'static str>,
) -> Result<(), Denial> {
    let Some(what) = found.filter(|_| route.extra_input == ExtraInput::Deny) else {
        return Ok(());
    };
    if let Some(tool) = &route.tool {
        d.calls.push(Call::new(policy, tool.clone()));
    }
    Err(Denial::new(
        Reason::ArgumentViolation,
        format!("routes.{}.extra_input", route.id),
        format!("{what} carries input aigate does not judge: send the action's arguments in its JSON body"),
    ))
}

/// Headers that web frameworks (Rack, Express, ASP.NET Core, gorilla…) read as the request's
/// method, and those in which a proxy hands a service the method it was sent
/// (`X-Forwarded-Method`: Traefik's forward auth; `X-Original-Method`: nginx's
/// `auth_request` convention): the endpoint would run another action than the route judged.
pub(crate) const METHOD_OVERRIDES: [&str; 5] = [
    "x-http-method-override",
    "x-http-method",
    "x-method-override",
    "x-forwarded-method",
    "x-original-method",
];

/// Headers that web frameworks read as the request's path (IIS URL Rewrite, Symfony and
/// Zend: `X-Original-URL`, `X-Rewrite-URL`), then the path records of proxies, which
/// services behind them read as the path the request was sent to (`X-Forwarded-Uri`:
/// Traefik; `X-Original-URI`: nginx's `auth_request` convention; `X-Forwarded-Path`: Kong):
/// the endpoint would run, or authorise, the action at that path. A record of the request's
/// own path (Kong adds one to every request) is none. (`X-Forwarded-Prefix`, a path base,
/// and `X-Envoy-Original-Path`, which an Envoy in front sets on every rewrite, as an Istio
/// ingress does, change no route: they pass.)
pub(crate) const PATH_OVERRIDES: [&str; 5] = [
    "x-original-url",
    "x-rewrite-url",
    "x-forwarded-uri",
    "x-original-uri",
    "x-forwarded-path",
];
/// How many of [`PATH_OVERRIDES`] route by themselves, whatever path they name.
const PATH_ROUTERS: usize = 2;

/// Headers that applications behind a trusted proxy read as the request's host: Rails,
/// Django, Express and Werkzeug `X-Forwarded-Host`; some applications `X-Host` in its
/// place (a known lever of cache poisoning). `Forwarded: host=` is read apart: one pair of many.
const FORWARDED_HOSTS: [&str; 2] = ["x-forwarded-host", "x-host"];

/// A method or path override header the request carries, if any.
fn overriding(headers: &Headers) -> Option<&'static str> {
    let carries = |names: &[&str]| names.iter().any(|h| headers.get_all(h).next().is_some());
    let own = headers.text(":path").unwrap_or("");
    let own_path = own.split('?').next().unwrap_or("");
    let elsewhere = |name: &&str| {
        headers
            .get_all(name)
            .any(|v| std::str::from_utf8(v).map_or(true, |v| v != own && v != own_path))
    };
    let (routers, records) = PATH_OVERRIDES.split_at(PATH_ROUTERS);
    if carries(&METHOD_OVERRIDES) {
        Some("a method override header")
    } else if carries(routers) || records.iter().any(elsewhere) {
        Some("a path override header")
    } else {
        None
    }
}

/// Whether the request names, in `X-Forwarded-Host`, `X-Host` or `Forwarded: host=`, a host other
/// than the one it was routed by: Rails, Django, Express and Werkzeug behind a trusted
/// proxy take the request's host from them, so a host-routed endpoint would act for
/// another host than the route judged.
fn forwarded_elsewhere(headers: &Headers) -> bool {
    let routed = crate::policy::bare_host(headers.text(":authority").unwrap_or(""));
    let elsewhere = |named: &str| {
        let named = named.trim().trim_matches('"');
        !crate::policy::bare_host(named).eq_ignore_ascii_case(routed)
    };
    let texts = |name| {
        headers
            .get_all(name)
            .map(|v| std::str::from_utf8(v).ok())
            .collect::<Vec<_>>()
    };
    let x_forwarded: Vec<_> = FORWARDED_HOSTS.iter().flat_map(|h| texts(h)).collect();
    let forwarded = texts("forwarded");
    // A value that is not text cannot be compared: it names some other host.
    if x_forwarded.iter().chain(&forwarded).any(Option::is_none) {
        return true;
    }
    let x_hosts = x_forwarded.iter().flatten().flat_map(|v| v.split(','));
    let hosts = forwarded
        .iter()
        .flatten()
        .flat_map(|v| v.split([',', ';']))
        .filter_map(|pair| pair.split_once('='))
        .filter(|(key, _)| key.trim().eq_ignore_ascii_case("host"))
        .map(|(_, value)| value);
    x_hosts.chain(hosts).any(elsewhere)
}

/// Whether `path` goes below `prefix` (a trailing `/` alone does not; `;` parameters do).
fn below_prefix(path: &str, prefix: &str) -> bool {
    let below = path.get(prefix.trim_end_matches('/').len()..).unwrap_or("");
    !below.trim_start_matches('/').is_empty()
}

/// What of an action's request head is input outside its body: a method or path override,
/// a forwarded host, a query string, a path below the route's prefix (a trailing `/` alone
/// is none).
fn extra_input(prefix: &str, headers: &Headers) -> Option<&'static str> {
    if let Some(what) = overriding(headers) {
        return Some(what);
    }
    if forwarded_elsewhere(headers) {
        return Some("a forwarded host other than the request's");
    }
    let path = headers.text(":path").unwrap_or("");
    let (path, query) = path.split_once('?').unwrap_or((path, ""));
    if !query.is_empty() {
        return Some("the query string");
    }
    below_prefix(path, prefix).then_some("the path below the route's prefix")
}

/// A body not declared as UTF-8 JSON, if the request has one: the endpoint would parse a
/// form (or anything but JSON) as other arguments than the JSON aigate judged
/// (`{"x":"&amount=100000&"}` is both), and Rack reads a POST without a content type as a
/// form, so a body must say it is JSON.
fn undeclared_body(headers: &Headers, has_body: bool) -> Option<&'static str> {
    match headers.one("content-type") {
        _ if !has_body => None,
        Ok(Some(v)) if media::is_json_type(v) => None,
        _ => Some("a body that is not declared JSON"),
    }
}

/// A header aigate reads (a method override, the body's framing and type, the session or
/// approval header, on MCP routes the mirror headers) sent under a name with `_` for `-`.
/// CGI-style servers (WSGI, Rack, PHP) turn both spellings into one variable, so such a
/// server could read a value aigate never saw: `X_HTTP_Method_Override: DELETE`, or a
/// second session.
fn underscored_alias<'h>(policy: &Policy, headers: &'h Headers, protocol: Option<Protocol>) -> Option<&'h str> {
    let read = || headers_read(policy);
    let mcp = protocol == Some(Protocol::Mcp);
    // `Mcp-Param-Tenant_Id` is the header a tool's schema names (`x-mcp-header`), its
    // underscore its own: only one standing in for a dash of the prefix is an alias.
    headers.names().filter(|n| n.contains('_')).find(|n| {
        let dashed = n.replace('_', "-");
        read().any(|h| dashed.eq_ignore_ascii_case(h)) || (mcp && mirror::is_mirror(&dashed) && !mirror::is_param(n))
    })
}

/// The headers aigate reads to decide, besides MCP's mirror headers: the method and path
/// overrides, the forwarded host, the body's framing and type, and the policy's token,
/// session and approval headers.
fn headers_read(policy: &Policy) -> impl Iterator<Item = &str> {
    let token = match &policy.identity.token {
        crate::policy::TokenSource::Jwt { header, .. } => Some(header.as_str()),
        _ => None,
    };
    let session = policy.identity.bind_session.as_ref().map(|b| b.header.as_str());
    // The session an MCP route seals, read whenever a route binds sessions.
    let sealed = policy.binds_sessions().then_some(crate::sessions::SESSION_HEADER);
    let approval = policy.approval.as_ref().map(|a| a.header.as_str());
    METHOD_OVERRIDES
        .into_iter()
        .chain(PATH_OVERRIDES)
        .chain(FORWARDED_HOSTS)
        .chain([
            "forwarded",
            "content-type",
            "content-encoding",
            "content-length",
            "transfer-encoding",
        ])
        .chain(token)
        .chain(session)
        .chain(sealed)
        .chain(approval)
}

/// Why a request's trailers are refused, if they are: one named as a header aigate reads
/// (the credential, a grant, a method override, the body's type, on MCP routes a mirror
/// header), in any case or with `_` for `-`. aigate decides on the headers; an upstream
/// that merges trailers into them (HTTP/2 upstreams get the trailers) would act on what
/// aigate never read.
pub fn trailers_problem(policy: &Policy, d: &Decision, names: &[String]) -> Option<Denial> {
    let mcp = d.protocol == Some(Protocol::Mcp);
    let named = names.iter().find(|n| {
        let dashed = n.replace('_', "-");
        headers_read(policy)
            .chain(["authorization", "proxy-authorization", ":authority", "host", "upgrade"])
            .any(|h| dashed.eq_ignore_ascii_case(h))
            || (mcp && mirror::is_mirror(&dashed))
    })?;
    Some(Denial::new(
        Reason::BodyMalformed,
        "trailers",
        format!(
            "trailer {} is a header aigate reads: it decides on the headers, and an upstream merging trailers into them would act on what aigate never read",
            authz::shown(named)
        ),
    ))
}

const REPEATED_TYPE: &str = "Content-Type appears more than once, or lists several types: send one";

/// Why the body's declared type cannot be judged, if it cannot. Every body: given once, and
/// in UTF-8 if it names a charset (an endpoint that decodes by the declared charset, UTF-7
/// say, would read other JSON than the UTF-8 aigate parsed). MCP and LLM bodies: declared
/// JSON, as their servers require (an action route says itself what else it takes:
/// `extra_input`).
fn body_type_problem(headers: &Headers, protocol: Option<Protocol>) -> Option<&'static str> {
    // Envoy joins a repeated Content-Type into one value with a comma, which no single
    // media type holds (outside a quoted parameter, which no JSON type needs): one reader
    // takes the first type, another the last.
    let label = match headers.one("content-type") {
        Ok(Some(v)) if v.contains(&b',') => return Some(REPEATED_TYPE),
        Err(Repeated) => return Some(REPEATED_TYPE),
        Ok(label) => label,
    };
    if label.is_some_and(|v| std::str::from_utf8(v).is_err()) {
        return Some("Content-Type is not text");
    }
    if label.is_some_and(|v| !media::utf8_charset(v)) {
        return Some(
            "the body declares a character set other than UTF-8, which aigate does not read: send it as UTF-8 JSON",
        );
    }
    let json_only = protocol.is_some_and(|p| p == Protocol::Mcp || p.is_llm());
    if json_only && !label.is_some_and(media::is_json_type) {
        return Some("the body must be declared JSON (Content-Type: application/json)");
    }
    None
}

/// Judges one tool call (scope, bindings, constraints) and records it for metrics and
/// audit, allowed or not. An external-impact call comes back for its approval, which
/// `claim_grants` checks once everything else in the request is allowed.
fn judge_call<'p>(
    policy: &'p Policy,
    d: &mut Decision,
    principal: &Principal,
    name: String,
    args: &Value,
) -> Result<Option<&'p Tool>, Denial> {
    let mut call = Call::new(policy, name);
    let result = authz::tool_call(policy, principal, &call.tool, args);
    let external = result.as_ref().is_ok_and(|t| t.impact == Impact::External);
    call.allowed = result.is_ok() && !external;
    call.awaiting_grant = external;
    d.calls.push(call);
    let tool = result?;
    Ok(external.then_some(tool))
}

/// An external-impact call awaiting its approval.
struct Awaiting<'p> {
    /// Its record in `Decision::calls`; `None` for a call recalled from an LLM conversation's
    /// history, recorded only if its grant fails.
    call: Option<usize>,
    tool: &'p Tool,
    args: Value,
    use_: approval::Use,
    /// Where a claimed grant is spent.
    gate: approval::Gate,
}

impl<'p> Awaiting<'p> {
    /// The call just recorded last in `d.calls`, happening now: its grant is consumed at `gate`.
    fn claim(d: &Decision, tool: &'p Tool, args: Value, gate: approval::Gate) -> Self {
        Awaiting {
            call: d.calls.len().checked_sub(1),
            tool,
            args,
            use_: approval::Use::Claim,
            gate,
        }
    }

    /// A call from an LLM conversation's history, approved when it was new: its grant is
    /// checked, not consumed; it is recorded only if the grant fails.
    fn recall(tool: &'p Tool, args: Value) -> Self {
        Awaiting {
            call: None,
            tool,
            args,
            use_: approval::Use::Recall,
            gate: approval::Gate::Conversation,
        }
    }
}

/// Checks the approval of each external-impact call, last: a grant is single-use, so it is
/// consumed only by a request everything else allows, its other grants included.
fn claim_grants(
    policy: &Policy,
    d: &mut Decision,
    principal: &Principal,
    headers: &Headers,
    host: &dyn Host,
    pending: Vec<Awaiting<'_>>,
) -> Result<(), Denial> {
    if pending.is_empty() {
        return Ok(());
    }
    let mut presented = approval::Presented::read(policy, headers);
    // The grants this request consumes, this turn's calls first: for each, the call it
    // covers (its record in `d.calls`), or for a call from history, what to record of it
    // should this request be the first to report it.
    let mut tickets = Vec::new();
    // Calls happening now choose their grants first: a call from history can do with a
    // grant spent or stale, a call now cannot, so history must not take the fresh one.
    let (now, history): (Vec<_>, Vec<_>) = pending.into_iter().partition(|a| a.use_ == approval::Use::Claim);
    for a in now.into_iter().chain(history) {
        let grant = approval::check(
            policy,
            principal,
            a.tool,
            &a.args,
            &mut presented,
            host,
            (a.use_, a.gate),
        );
        let index = match a.call {
            Some(i) => Some(i),
            None if grant.result.is_err() => {
                d.calls.push(Call::new(policy, a.tool.name.clone()));
                d.calls.len().checked_sub(1)
            }
            None => None,
        };
        if let Some(call) = index.and_then(|i| d.calls.get_mut(i)) {
            call.args_digest = grant.digest.clone();
            call.approver = grant.approver.clone();
            call.allowed = grant.result.is_ok();
            call.awaiting_grant = false;
        }
        grant.result?;
        if let Some(ticket) = grant.ticket {
            let recalled = (a.use_ == approval::Use::Recall).then(|| {
                let mut call = Call::new(policy, a.tool.name.clone());
                call.args_digest = grant.digest;
                call.approver = grant.approver;
                call.allowed = true;
                call
            });
            tickets.push((ticket, index, recalled, a.gate));
        }
    }
    // Spent now, to give back if a later grant of the request is refused: all or none.
    let mut spent: Vec<(&approval::Ticket, approval::Gate)> = Vec::new();
    // History calls reported for the first time are recorded before this turn's calls,
    // where the conversation has them: the deciding call stays one of this turn's.
    let mut earlier = 0;
    for (ticket, index, recalled, gate) in &tickets {
        let result = match recalled {
            // A call in history: spent on its first report, already spent is no refusal.
            Some(call) => {
                let result = approval::redeem_recalled(policy, host, ticket);
                if result == Ok(true) {
                    d.calls.insert(earlier.min(d.calls.len()), call.clone());
                    earlier += 1;
                }
                result
            }
            None => approval::redeem(policy, host, ticket, *gate).map(|()| true),
        };
        match result {
            Ok(true) => spent.push((ticket, *gate)),
            Ok(false) => {}
            Err(denial) => {
                if let Some(call) = index.and_then(|i| d.calls.get_mut(i)) {
                    call.allowed = false;
                }
                for (earlier, gate) in spent {
                    approval::unredeem(policy, host, earlier, gate);
                }
                return Err(denial);
            }
        }
    }
    Ok(())
}
