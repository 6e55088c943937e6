//! Human approval for external impact: a signed, single-use grant bound to the exact
//! tool, subject and arguments, verified locally with no callout.

pub mod replay;

use crate::decision::{Denial, Reason};
use crate::identity::Principal;
use crate::policy::{Policy, Tool};
use crate::request::{Headers, Host, Repeated};
use serde_json::Value;

/// What the approval check found: the verdict, and for the audit and the client the
/// digest of the arguments and who approved.
#[derive(Debug)]
pub struct Grant {
    pub result: Result<(), Denial>,
    pub digest: Option<String>,
    pub approver: Option<String>,
}

const RULE: &str = "approval";

fn deny(reason: Reason, message: impl Into<String>) -> Result<(), Denial> {
    Err(Denial::new(reason, RULE, message))
}

/// Judges the grant attached to a request for an `impact: external` call.
pub fn check(
    policy: &Policy,
    principal: &Principal,
    tool: &Tool,
    args: &Value,
    headers: &Headers,
    host: &dyn Host,
) -> Grant {
    let digest = match crate::digest::args_digest(args) {
        Ok(d) => d,
        Err(e) => {
            return Grant {
                result: deny(
                    Reason::ArgumentViolation,
                    format!("arguments cannot be canonicalised: {e}"),
                ),
                digest: None,
                approver: None,
            }
        }
    };
    let mut grant = Grant {
        result: Ok(()),
        digest: Some(digest),
        approver: None,
    };
    grant.result = verify(policy, principal, tool, headers, host, &mut grant);
    grant
}

fn verify(
    policy: &Policy,
    principal: &Principal,
    tool: &Tool,
    headers: &Headers,
    host: &dyn Host,
    grant: &mut Grant,
) -> Result<(), Denial> {
    let Some(cfg) = &policy.approval else {
        return deny(
            Reason::ApprovalRequired,
            format!("{:?} has external impact and needs a human approval", tool.name),
        );
    };
    let raw = match headers.one(&cfg.header) {
        Err(Repeated) => return deny(Reason::ApprovalInvalid, "the approval header appears more than once"),
        Ok(None) => {
            return deny(
                Reason::ApprovalRequired,
                format!("{:?} has external impact and needs a human approval", tool.name),
            )
        }
        Ok(Some(v)) => v,
    };
    let token = std::str::from_utf8(raw).map(str::trim).unwrap_or("");
    let claims = match cfg.keys.verify(token) {
        Ok(c) => c,
        Err(e) => return deny(Reason::ApprovalInvalid, format!("approval rejected: {e}")),
    };
    let text = |name: &str| claims.get(name).and_then(Value::as_str).filter(|s| !s.is_empty());
    if text("iss") != Some(cfg.issuer.as_str()) {
        return deny(
            Reason::ApprovalInvalid,
            "approval was not issued by the configured approval service",
        );
    }
    let aud_ok = match claims.get("aud") {
        Some(Value::String(a)) => *a == cfg.audience,
        Some(Value::Array(l)) => l.iter().any(|a| a.as_str() == Some(cfg.audience.as_str())),
        _ => false,
    };
    if !aud_ok {
        return deny(Reason::ApprovalInvalid, "approval audience is not this gateway");
    }
    let (Some(jti), Some(approver)) = (text("jti"), text("approver")) else {
        return deny(Reason::ApprovalInvalid, "approval must name its jti and approver");
    };
    grant.approver = Some(approver.to_string());
    let (Some(iat), Some(exp)) = (
        claims.get("iat").and_then(Value::as_u64),
        claims.get("exp").and_then(Value::as_u64),
    ) else {
        return deny(Reason::ApprovalInvalid, "approval must carry whole-second iat and exp");
    };
    let now = host.now();
    let skew = policy.identity.skew;
    if iat > now.saturating_add(skew) {
        return deny(Reason::ApprovalInvalid, "approval is issued in the future");
    }
    if now >= exp || now.saturating_sub(iat) > cfg.max_age {
        return deny(Reason::ApprovalExpired, "approval has expired");
    }
    if text("sub") != Some(principal.subject.as_str()) {
        return deny(Reason::ApprovalMismatch, "approval was granted for another subject");
    }
    if text("tool") != Some(tool.name.as_str()) {
        return deny(Reason::ApprovalMismatch, "approval was granted for another tool");
    }
    if text("args_digest") != grant.digest.as_deref() {
        return deny(Reason::ApprovalMismatch, "approval was granted for other arguments");
    }
    // Checked last: a grant is consumed only by a request it fully authorises.
    // Remembered until it could no longer be accepted: its exp, or max_age after iat if that
    // comes first, so a grant minted with a year-long exp does not hold a slot for a year.
    let refused_after = exp.min(iat.saturating_add(cfg.max_age).saturating_add(1));
    match replay::claim(host.shared(), &cfg.issuer, jti, refused_after, now) {
        Ok(true) => Ok(()),
        Ok(false) => deny(Reason::ApprovalReplayed, "approval has already been used"),
        Err(e) => Err(Denial::new(Reason::InternalError, "approval.replay", e)),
    }
}

/// The approval-request URL for a denied call, from the configured template.
pub fn request_url(policy: &Policy, tool: &str, digest: &str, subject: &str) -> Option<String> {
    let template = policy.approval.as_ref()?.request_url.as_ref()?;
    Some(
        template
            .replace("{tool}", &url_escape(tool))
            .replace("{digest}", &url_escape(digest))
            .replace("{subject}", &url_escape(subject)),
    )
}

fn url_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}
