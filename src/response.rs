//! What a denied client sees: status, headers and a body its libraries understand.

use crate::approval;
use crate::config::Protocol;
use crate::decision::{Denial, Reason};
use crate::engine::{Decision, Stage};
use crate::policy::Policy;
use serde_json::{json, Map, Value};

pub const DECISION_HEADER: &str = "x-aigate-decision-id";

/// JSON-RPC error code for policy denials (implementation-defined server error range).
pub const JSONRPC_POLICY_DENIED: i64 = -32001;
/// JSON-RPC's "internal error": the server's answer could not be passed on.
pub const JSONRPC_INTERNAL_ERROR: i64 = -32603;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalReply {
    pub status: u32,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

/// Policy denials of a well-formed MCP call travel as JSON-RPC errors so MCP clients
/// surface the message to the agent instead of failing the transport.
fn is_jsonrpc_denial(reason: Reason) -> bool {
    matches!(
        reason,
        Reason::ToolUnknown
            | Reason::ArgumentViolation
            | Reason::BindingMismatch
            | Reason::ApprovalRequired
            | Reason::ApprovalInvalid
            | Reason::ApprovalExpired
            | Reason::ApprovalReplayed
            | Reason::ApprovalMismatch
            | Reason::DataBoundary
    )
}

fn status(reason: Reason) -> u32 {
    match reason {
        r if r.is_identity() => 401,
        Reason::BodyTooLarge => 413,
        Reason::EncodingUnsupported => 415,
        Reason::BodyMalformed => 400,
        Reason::RouteUnmatched => 404,
        Reason::InternalError => 500,
        _ => 403,
    }
}

/// The local reply for a denied decision.
pub fn render(policy: &Policy, d: &Decision, denial: &Denial, decision_id: &str) -> LocalReply {
    let mut headers = vec![
        (DECISION_HEADER.to_string(), decision_id.to_string()),
        ("content-type".to_string(), "application/json".to_string()),
    ];
    let mut data = Map::new();
    data.insert("reason".into(), json!(denial.reason.as_str()));
    data.insert("rule".into(), json!(denial.rule));
    data.insert("decision_id".into(), json!(decision_id));
    if let Some(s) = &denial.required_scope {
        data.insert("required_scope".into(), json!(s));
    }
    approval_details(policy, d, denial, &mut data);
    let denial = &next_step(policy, denial, &data);

    let reason = denial.reason;
    if let Some(p) = d.protocol.filter(|p| p.is_llm()) {
        return provider_error(p, denial, decision_id, headers, data);
    }
    // A server's answer aigate refused is, to the client, the request's failure: a JSON-RPC
    // error too, so the agent reads why (a policy denial of the request is -32001).
    // A refusal MCP itself gives a code (a mirror header that disagrees with the body) is a
    // JSON-RPC error too, at the reason's status, as an MCP server would answer it.
    let answer = d.stage == Stage::Answer;
    let protocol_code = denial.jsonrpc_code.filter(|_| !answer);
    let jsonrpc = answer || is_jsonrpc_denial(reason) || protocol_code.is_some();
    if d.protocol == Some(Protocol::Mcp) && jsonrpc && !d.rpc_ids.is_empty() {
        let code = match protocol_code {
            Some(code) => code,
            None if answer => JSONRPC_INTERNAL_ERROR,
            None => JSONRPC_POLICY_DENIED,
        };
        let error = |id: &Value| {
            json!({"jsonrpc": "2.0", "id": id, "error": {
                "code": code,
                "message": format!("aigate: {} ({})", denial.message, reason.as_str()),
                "data": Value::Object(data.clone()),
            }})
        };
        let body = if d.batch {
            Value::Array(d.rpc_ids.iter().map(error).collect())
        } else {
            d.rpc_ids.first().map(error).unwrap_or(Value::Null)
        };
        return LocalReply {
            status: if protocol_code.is_some() { status(reason) } else { 200 },
            headers,
            body: body.to_string().into_bytes(),
        };
    }

    let status = denial.status.unwrap_or_else(|| status(reason));
    // An MCP route that publishes its protected resource metadata points its challenges
    // at it: an OAuth client finds its authorization server from there.
    let metadata = policy.resource_metadata(d.route).map(|m| m.url.as_str());
    challenge_header(denial, status, metadata, &mut headers);
    let mut error = Map::new();
    error.insert("message".into(), json!(format!("aigate: {}", denial.message)));
    error.extend(data);
    let body = json!({ "error": Value::Object(error) });
    LocalReply {
        status,
        headers,
        body: body.to_string().into_bytes(),
    }
}

fn challenge_header(denial: &Denial, status: u32, metadata: Option<&str>, headers: &mut Vec<(String, String)>) {
    let scope = match (status, denial.reason) {
        (401, _) => None,
        (_, Reason::ScopeMissing) => denial.required_scope.as_deref(),
        _ => return,
    };
    let mut value = challenge(denial, scope);
    if let Some(url) = metadata {
        value.push_str(&format!(", resource_metadata=\"{url}\""));
    }
    headers.push(("www-authenticate".into(), value));
}

/// LLM routes answer in the provider's error shape, so the official SDKs raise their
/// `AuthenticationError` (401) or `PermissionDeniedError` (403) with aigate's message.
/// The message names the reason and the decision id too: SDKs show the message first.
fn provider_error(
    protocol: Protocol,
    denial: &Denial,
    decision_id: &str,
    mut headers: Vec<(String, String)>,
    data: Map<String, Value>,
) -> LocalReply {
    let reason = denial.reason;
    // Every policy denial of a well-formed request is a 403 permission error.
    let status = status(reason);
    challenge_header(denial, status, None, &mut headers);
    let message = format!(
        "aigate: {} (reason: {}, decision: {decision_id})",
        denial.message,
        reason.as_str()
    );
    let mut error = Map::new();
    let body = if protocol == Protocol::AnthropicMessages {
        let kind = match status {
            401 => "authentication_error",
            403 => "permission_error",
            404 => "not_found_error",
            413 => "request_too_large",
            500 => "api_error",
            _ => "invalid_request_error",
        };
        error.insert("type".into(), json!(kind));
        error.insert("message".into(), json!(message));
        error.extend(data);
        json!({"type": "error", "error": Value::Object(error)})
    } else {
        let kind = match status {
            401 => "authentication_error",
            403 => "permission_error",
            404 => "not_found_error",
            500 => "server_error",
            _ => "invalid_request_error",
        };
        error.insert("message".into(), json!(message));
        error.insert("type".into(), json!(kind));
        error.insert("code".into(), json!(reason.as_str()));
        error.insert("param".into(), Value::Null);
        error.extend(data);
        json!({ "error": Value::Object(error) })
    };
    LocalReply {
        status,
        headers,
        body: body.to_string().into_bytes(),
    }
}

/// RFC 6750 challenge. A missing token gets no error code, as the RFC asks.
fn challenge(denial: &Denial, scope: Option<&str>) -> String {
    let quote = |s: &str| s.replace(['"', '\\'], "'");
    match (denial.reason, scope) {
        (Reason::ScopeMissing, Some(scope)) => format!(
            "Bearer realm=\"aigate\", error=\"insufficient_scope\", scope=\"{}\", error_description=\"{}\"",
            quote(scope),
            quote(&denial.message)
        ),
        (Reason::Unauthenticated, _) => "Bearer realm=\"aigate\"".to_string(),
        _ => format!(
            "Bearer realm=\"aigate\", error=\"invalid_token\", error_description=\"{}\"",
            quote(&denial.message)
        ),
    }
}

/// An approval refusal's message says what to do next, in the text itself: most agent
/// frameworks hand the model the message and drop `data`.
fn next_step(policy: &Policy, denial: &Denial, data: &Map<String, Value>) -> Denial {
    let mut denial = denial.clone();
    let Some(header) = policy.approval.as_ref().map(|a| a.header.as_str()) else {
        return denial;
    };
    if denial.reason == Reason::ApprovalRequired {
        let digest = data.get("args_digest").and_then(Value::as_str);
        match (data.get("approval_url").and_then(Value::as_str), digest) {
            (Some(url), _) => denial.message.push_str(&format!(
                ": have a human approve it at {url}, then send the same call again with the grant in the {header} header"
            )),
            (None, Some(digest)) => denial.message.push_str(&format!(
                ": send the same call again with a grant for args_digest {digest} in the {header} header"
            )),
            (None, None) => {}
        }
    }
    denial
}

/// For approval denials: what a client needs to route the action to a human.
fn approval_details(policy: &Policy, d: &Decision, denial: &Denial, data: &mut Map<String, Value>) {
    if !matches!(
        denial.reason,
        Reason::ApprovalRequired
            | Reason::ApprovalInvalid
            | Reason::ApprovalExpired
            | Reason::ApprovalReplayed
            | Reason::ApprovalMismatch
    ) {
        return;
    }
    // The call the grant was judged for: the denied one.
    let call = crate::audit::deciding_call(d).or(d.calls.last());
    let (Some(call), Some(p)) = (call, d.principal.as_ref()) else {
        return;
    };
    data.insert("tool".into(), json!(call.tool));
    data.insert("subject".into(), json!(p.subject));
    // The subject's identity provider: a grant names it (sub_iss) where several are trusted.
    let issuer = p.token_issuer().unwrap_or_default();
    data.insert("issuer".into(), json!(issuer));
    // The tenant the caller acts in: a grant may name it (one person, several tenants).
    if let Some(tenant) = &p.tenant {
        data.insert("tenant".into(), json!(tenant));
    }
    if let Some(digest) = &call.args_digest {
        data.insert("args_digest".into(), json!(digest));
        if let Some(url) = approval::request_url(policy, &call.tool, digest, p) {
            data.insert("approval_url".into(), json!(url));
        }
    }
}
