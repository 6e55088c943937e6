//! Accountability: one JSON line per decision naming who, what, which rule and which owner.
//! Never argument values, tokens or secrets.

use crate::config::{Impact, Mode, Protocol};
use crate::engine::{Call, Decision, Stage};
use crate::policy::Policy;
use serde::Serialize;
use std::borrow::Cow;
use std::time::{Duration, UNIX_EPOCH};

pub fn protocol_label(p: Option<Protocol>) -> &'static str {
    match p {
        Some(Protocol::Mcp) => "mcp",
        Some(Protocol::OpenaiChat) => "openai_chat",
        Some(Protocol::OpenaiResponses) => "openai_responses",
        Some(Protocol::AnthropicMessages) => "anthropic_messages",
        Some(Protocol::Action) => "action",
        None => "none",
    }
}

pub fn impact_label(i: Impact) -> &'static str {
    match i {
        Impact::Read => "read",
        Impact::Write => "write",
        Impact::External => "external",
    }
}

pub fn stage_label(s: Stage) -> &'static str {
    match s {
        Stage::Request => "request",
        Stage::Answer => "answer",
    }
}

/// `allow`, `deny`, or `would_deny` (a denial in monitor mode).
pub fn verdict(policy: &Policy, d: &Decision) -> &'static str {
    match (&d.denial, policy.mode) {
        (None, _) => "allow",
        (Some(_), Mode::Enforce) => "deny",
        (Some(_), Mode::Monitor) => "would_deny",
    }
}

/// One audit line. Fields are written in this order, absent ones as `null`, so every line
/// has the same shape; `refused_offers` and `calls` appear only when there is something to list.
#[derive(Serialize)]
struct Record<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    time: String,
    decision_id: &'a str,
    /// `request`, or `answer` for the judgement of a model's answer to it (same decision id).
    stage: &'static str,
    decision: &'static str,
    reason: Option<&'static str>,
    rule: Cow<'a, str>,
    mode: &'static str,
    protocol: &'static str,
    route: Option<&'a str>,
    http_method: &'a str,
    method: Option<&'a str>,
    model: Option<&'a str>,
    tool: Option<&'a str>,
    intent: Option<&'a str>,
    impact: Option<&'static str>,
    prompt: Option<&'a str>,
    subject: Option<&'a str>,
    workload: Option<&'a str>,
    tenant: Option<&'a str>,
    session: Option<&'a str>,
    owner: &'a str,
    approver: Option<&'a str>,
    args_digest: Option<&'a str>,
    policy_hash: &'a str,
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    refused_offers: &'a [String],
    #[serde(skip_serializing_if = "Vec::is_empty")]
    calls: Vec<CallRecord<'a>>,
    /// An MCP list answer: how many items the caller was not shown.
    #[serde(skip_serializing_if = "is_zero")]
    hidden: usize,
}

fn is_zero(n: &usize) -> bool {
    *n == 0
}

/// A batch or a conversation judges several calls: each is listed.
#[derive(Serialize)]
struct CallRecord<'a> {
    tool: &'a str,
    intent: Option<&'a str>,
    allowed: bool,
}

/// The audit record for a decision, as one line of JSON. Written straight from the
/// decision (no intermediate JSON tree): it runs on every request.
pub fn record(policy: &Policy, d: &Decision, decision_id: &str, now_nanos: u64) -> String {
    let route = d.route.and_then(|i| policy.routes.get(i));
    let call = deciding_call(d);
    let p = d.principal.as_ref();
    let calls = if d.calls.len() > 1 {
        d.calls
            .iter()
            .map(|c| CallRecord {
                tool: &c.tool,
                intent: c.intent.as_deref(),
                allowed: c.allowed,
            })
            .collect()
    } else {
        Vec::new()
    };
    let rec = Record {
        kind: "aigate.decision",
        time: humantime::format_rfc3339_millis(UNIX_EPOCH + Duration::from_nanos(now_nanos)).to_string(),
        decision_id,
        stage: stage_label(d.stage),
        decision: verdict(policy, d),
        reason: d.denial.as_ref().map(|x| x.reason.as_str()),
        rule: d
            .denial
            .as_ref()
            .map_or_else(|| Cow::Owned(allow_rule(d, policy)), |x| Cow::Borrowed(x.rule.as_str())),
        mode: match policy.mode {
            Mode::Enforce => "enforce",
            Mode::Monitor => "monitor",
        },
        protocol: protocol_label(d.protocol),
        route: route.map(|r| r.id.as_str()),
        http_method: &d.http_method,
        method: d.rpc_method.as_deref(),
        model: d.model.as_deref(),
        tool: call.map(|c| c.tool.as_str()),
        intent: call.and_then(|c| c.intent.as_deref()),
        impact: call.and_then(|c| c.impact).map(impact_label),
        prompt: d.prompt.as_deref(),
        subject: p.map(|p| p.subject.as_str()),
        workload: p.and_then(|p| p.workload.as_deref()),
        tenant: p.and_then(|p| p.tenant.as_deref()),
        session: p.and_then(|p| p.session.as_deref()),
        owner: accountable_owner(policy, d),
        approver: call.and_then(|c| c.approver.as_deref()),
        args_digest: call.and_then(|c| c.args_digest.as_deref()),
        policy_hash: &policy.hash,
        refused_offers: &d.refused_offers,
        calls,
        hidden: d.hidden,
    };
    // Only strings, booleans and arrays of them: serialising cannot fail.
    serde_json::to_string(&rec).unwrap_or_default()
}

/// The deciding call: the denied one, else the last judged (batches list them all).
pub fn deciding_call(d: &Decision) -> Option<&Call> {
    d.calls.iter().find(|c| !c.allowed).or(d.calls.last())
}

/// Who answers for a decision: the deciding tool's owner, else the data rule's, else the
/// route's, else the policy's default owner.
pub fn accountable_owner<'a>(policy: &'a Policy, d: &'a Decision) -> &'a str {
    let tool = deciding_call(d).and_then(|c| policy.tools.get(&c.tool));
    let route = d.route.and_then(|i| policy.routes.get(i));
    policy.owner_for(tool, d.data.as_ref().and_then(|u| u.owner.as_deref()), route)
}

fn allow_rule(d: &Decision, policy: &Policy) -> String {
    if let Some(c) = d.calls.last() {
        return format!("tools.{}", c.tool);
    }
    if let Some(u) = &d.data {
        return u.rule.clone();
    }
    match d.route.and_then(|i| policy.routes.get(i)) {
        Some(r) => format!("routes.{}", r.id),
        None => "unmatched".into(),
    }
}
