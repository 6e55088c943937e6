//! Accountability: one JSON line per decision naming who, what, which rule and which owner.
//! Never argument values, tokens or secrets.

use crate::config::{Impact, Mode, Protocol};
use crate::engine::Decision;
use crate::policy::Policy;
use serde_json::{json, Value};
use std::time::{Duration, UNIX_EPOCH};

pub fn protocol_label(p: Option<Protocol>) -> &'static str {
    match p {
        Some(Protocol::Mcp) => "mcp",
        Some(Protocol::OpenaiChat) => "openai_chat",
        Some(Protocol::OpenaiResponses) => "openai_responses",
        Some(Protocol::AnthropicMessages) => "anthropic_messages",
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

/// `allow`, `deny`, or `would_deny` (a denial in monitor mode).
pub fn verdict(policy: &Policy, d: &Decision) -> &'static str {
    match (&d.denial, policy.mode) {
        (None, _) => "allow",
        (Some(_), Mode::Enforce) => "deny",
        (Some(_), Mode::Monitor) => "would_deny",
    }
}

/// The audit record for a decision, as one line of JSON.
pub fn record(policy: &Policy, d: &Decision, decision_id: &str, now_nanos: u64) -> String {
    let time = humantime::format_rfc3339_millis(UNIX_EPOCH + Duration::from_nanos(now_nanos)).to_string();
    let route = d.route.and_then(|i| policy.routes.get(i));
    // The deciding call: the denied one, else the last judged (batches list them all).
    let call = d.calls.iter().find(|c| !c.allowed).or(d.calls.last());
    let tool = call.and_then(|c| policy.tools.get(&c.tool));
    let p = d.principal.as_ref();
    let mut rec = json!({
        "type": "aigate.decision",
        "time": time,
        "decision_id": decision_id,
        "decision": verdict(policy, d),
        "reason": d.denial.as_ref().map(|x| x.reason.as_str()),
        "rule": d.denial.as_ref().map_or_else(|| allow_rule(d, policy), |x| x.rule.clone()),
        "mode": match policy.mode { Mode::Enforce => "enforce", Mode::Monitor => "monitor" },
        "protocol": protocol_label(d.protocol),
        "route": route.map(|r| r.id.as_str()),
        "http_method": d.http_method,
        "method": d.rpc_method,
        "model": d.model,
        "tool": call.map(|c| c.tool.as_str()),
        "intent": call.and_then(|c| c.intent.as_deref()),
        "impact": call.and_then(|c| c.impact).map(impact_label),
        "subject": p.map(|p| p.subject.as_str()),
        "workload": p.and_then(|p| p.workload.as_deref()),
        "tenant": p.and_then(|p| p.tenant.as_deref()),
        "session": p.and_then(|p| p.session.as_deref()),
        "owner": policy.owner_for(tool, route),
        "approver": call.and_then(|c| c.approver.as_deref()),
        "args_digest": call.and_then(|c| c.args_digest.as_deref()),
        "policy_hash": policy.hash,
    });
    if !d.refused_offers.is_empty() {
        if let Value::Object(m) = &mut rec {
            m.insert("refused_offers".into(), json!(d.refused_offers));
        }
    }
    if d.calls.len() > 1 {
        if let Value::Object(m) = &mut rec {
            let calls: Vec<Value> = d
                .calls
                .iter()
                .map(|c| json!({"tool": c.tool, "intent": c.intent, "allowed": c.allowed}))
                .collect();
            m.insert("calls".into(), Value::Array(calls));
        }
    }
    rec.to_string()
}

fn allow_rule(d: &Decision, policy: &Policy) -> String {
    if let Some(c) = d.calls.last() {
        return format!("tools.{}", c.tool);
    }
    if let Some(r) = &d.resource {
        return format!("data.resources.{r}");
    }
    match d.route.and_then(|i| policy.routes.get(i)) {
        Some(r) => format!("routes.{}", r.id),
        None => "unmatched".into(),
    }
}
