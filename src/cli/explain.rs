//! The explanation `aigate eval` prints: every rule the engine applied to a request, in
//! the order it applies them, each passed, failed or not reached.
//!
//! The engine stops at the first failing rule and names it (`Denial::rule`), and it
//! checks in a fixed order: route; the request head (encodings, the body's declared type
//! and size, repeated or disguised headers); identity, from the headers alone; then the
//! body (its size and JSON), and per call: catalogue, scope, bindings, constraints,
//! approval; data and model rules. So the rules before the failing one passed and those
//! after it were not reached.

use super::case::Outcome;
use crate::audit::impact_label;
use crate::decision::Reason;
use crate::engine::{Call, Decision};
use crate::identity::Principal;
use crate::policy::{Policy, Tool};
use std::fmt::Write as _;

const PASS: &str = "pass";
const FAIL: &str = "FAIL";
const SKIP: &str = "----";

/// Where along the engine's order a denial stopped.
#[derive(PartialEq)]
enum Stop {
    None,
    Route,
    /// The request head: checked before identity.
    Headers,
    Identity,
    /// After identity, before the body was read (an LLM route's provider state).
    State,
    /// The body's size and JSON.
    Body,
    /// A call's rule (or the call list as a whole: batch size, offers).
    Call,
    /// Data boundary, model and offered tools.
    Request,
}

fn rank(s: &Stop) -> u8 {
    match s {
        Stop::Route => 0,
        Stop::Headers => 1,
        Stop::Identity => 2,
        Stop::State => 3,
        Stop::Body => 4,
        Stop::Call | Stop::Request | Stop::None => 5,
    }
}

fn stop(d: &Decision) -> Stop {
    let Some(denial) = &d.denial else {
        return Stop::None;
    };
    // Whether identity was settled (it is, once the head passed): what failed after it
    // was the body or what the body asks for.
    let identified = d.identity.is_some();
    let input = matches!(
        denial.reason,
        Reason::BodyTooLarge | Reason::BodyMalformed | Reason::EncodingUnsupported
    ) || denial.rule == "approval.header";
    match denial.reason {
        Reason::RouteUnmatched => Stop::Route,
        _ if input && !identified => Stop::Headers,
        _ if input => Stop::Body,
        // A session-bound token's MCP message without its session is refused per message.
        r if r.is_identity() && d.identity != Some(Ok(())) => Stop::Identity,
        _ if d.body_bytes.is_none() => Stop::State,
        r if r.is_approval() || denial.rule.starts_with("tools") => Stop::Call,
        _ => Stop::Request,
    }
}

pub fn explain(policy: &Policy, o: &Outcome) -> String {
    let d = &o.decision;
    let mut out = String::new();
    let status = o.status.map_or_else(
        || "forwarded upstream".to_string(),
        |s| format!("answered {s} by aigate"),
    );
    let _ = writeln!(
        out,
        "decision  {}{}  ({status})",
        o.verdict,
        d.denial.as_ref().map_or(String::new(), |x| format!(" {}", x.reason))
    );
    if let Some(x) = &d.denial {
        let _ = writeln!(out, "          {}", x.message);
        let _ = writeln!(out, "rule      {}", x.rule);
    }
    let stopped = stop(d);
    let _ = writeln!(out, "steps");

    // Route.
    let route = d.route.and_then(|i| policy.routes.get(i));
    match route {
        Some(r) => step(
            &mut out,
            1,
            if stopped == Stop::Route { FAIL } else { PASS },
            "route",
            &format!(
                "{} (prefix {}, {})",
                r.id,
                r.prefix,
                crate::audit::protocol_label(Some(r.protocol))
            ),
        ),
        None if stopped == Stop::Route => step(&mut out, 1, FAIL, "route", "no route matches"),
        None => step(
            &mut out,
            1,
            PASS,
            "route",
            "no route matches: passed unjudged (unmatched: allow)",
        ),
    }
    if route.is_none() || stopped == Stop::Route {
        return finish(out, policy, o);
    }
    if d.metadata {
        step(
            &mut out,
            1,
            PASS,
            "metadata",
            "the route's OAuth protected resource metadata, answered by aigate (no caller, no upstream)",
        );
        return finish(out, policy, o);
    }
    let mark = |at: Stop| {
        if stopped == at {
            FAIL
        } else if stopped != Stop::None && rank(&stopped) < rank(&at) {
            SKIP
        } else {
            PASS
        }
    };
    step(
        &mut out,
        1,
        mark(Stop::Headers),
        "headers",
        "encoding, the body's declared type and size, repeated or disguised headers",
    );

    // Identity, from the headers alone: before the body is read.
    let who = d
        .principal
        .as_ref()
        .map_or_else(|| "no principal".to_string(), |p| principal(policy, p));
    step(&mut out, 1, mark(Stop::Identity), "identity", &who);
    if let (Stop::State, Some(x)) = (&stopped, &d.denial) {
        step(&mut out, 1, FAIL, "request", &x.rule);
    }

    // The body.
    let body = mark(Stop::Body);
    let detail = match d.body_bytes {
        Some(n) if body == PASS => format!("{n} bytes: size, JSON"),
        None if body == PASS => "none".to_string(),
        _ => "size, JSON".to_string(),
    };
    step(&mut out, 1, body, "body", &detail);
    if stopped != Stop::None && rank(&stopped) <= rank(&Stop::Body) {
        return finish(out, policy, o);
    }

    // Model, offers, data, calls.
    if let Some(m) = &d.model {
        let failed = d.denial.as_ref().is_some_and(|x| x.reason == Reason::ModelNotAllowed);
        step(&mut out, 1, if failed { FAIL } else { PASS }, "model", m);
    }
    if !d.refused_offers.is_empty() {
        let denied = d.denial.as_ref().is_some_and(|x| x.reason == Reason::ToolOfferDenied);
        let what = if denied { "refused" } else { "stripped" };
        step(
            &mut out,
            1,
            if denied { FAIL } else { PASS },
            "offers",
            &format!("{what}: {}", d.refused_offers.join(", ")),
        );
    }
    if let Some(p) = &d.prompt {
        step(&mut out, 1, PASS, "prompt", p);
    }
    if let Some(u) = &d.data {
        let denied_here = d.denial.as_ref().is_some_and(|x| x.rule == u.rule);
        let owner = u.owner.as_deref().map(|o| format!(", owner {o}")).unwrap_or_default();
        if !denied_here {
            step(&mut out, 1, PASS, "data", &format!("{}{owner}", u.rule));
        }
    }
    if stopped == Stop::Request {
        if let Some(x) = &d.denial {
            if !matches!(x.reason, Reason::ModelNotAllowed | Reason::ToolOfferDenied) {
                let what = match x.reason {
                    Reason::DataBoundary => "data",
                    Reason::SessionMismatch => "session",
                    _ => "request",
                };
                step(&mut out, 1, FAIL, what, &x.rule);
            }
        }
    }
    // The call that refused the request: not an external call whose grant was never
    // examined because another call refused it first.
    let deciding = d.calls.iter().position(|c| !c.allowed && !c.awaiting_grant);
    for (i, c) in d.calls.iter().enumerate() {
        call(&mut out, policy, d, c, Some(i) == deciding && stopped == Stop::Call);
    }
    finish(out, policy, o)
}

fn principal(policy: &Policy, p: &Principal) -> String {
    let mut s = format!("subject {}", p.subject);
    if let Some(t) = &p.tenant {
        let _ = write!(s, ", tenant {t}");
    }
    if let Some(w) = &p.workload {
        let _ = write!(s, ", workload {w}");
    }
    if let Some(c) = p.ceiling.and_then(|i| policy.ceilings.get(i)) {
        let _ = write!(s, " (ceiling {})", c.id);
    }
    if let Some(session) = &p.session {
        let _ = write!(s, ", session {session}");
    }
    let _ = write!(s, "; token scopes: {}", p.scopes.join(" "));
    s
}

/// One tool call: catalogue, scope, bindings, constraints, approval.
fn call(out: &mut String, policy: &Policy, d: &Decision, c: &Call, deciding: bool) {
    let Some(tool) = policy.tools.get(&c.tool) else {
        step(
            out,
            1,
            if c.allowed { PASS } else { FAIL },
            "call",
            &format!("{}: not in the catalogue", c.tool),
        );
        return;
    };
    let summary = format!(
        "{} -> intent {}, impact {}, owner {}",
        c.tool,
        tool.intent,
        impact_label(tool.impact),
        policy.owner_for(Some(tool), None, None)
    );
    let state = match (c.allowed, deciding) {
        (true, _) => PASS,
        (false, true) => FAIL,
        (false, false) => SKIP,
    };
    step(out, 1, state, "call", &summary);
    if state == SKIP {
        let why = if c.awaiting_grant {
            "its rules held, its approval was never examined: the request was denied on another call"
        } else {
            "not judged: the request was denied on another call"
        };
        step(out, 2, SKIP, "rules", why);
        return;
    }
    // Which of the call's rules failed, by the denial's rule name and reason.
    let failed = if c.allowed { None } else { d.denial.as_ref() };
    let rule = failed.map_or("", |x| x.rule.as_str());
    let reason = failed.map(|x| x.reason);
    let mut reached = true;
    let mut mark = |fails: bool| -> &'static str {
        if !reached {
            SKIP
        } else if fails {
            reached = false;
            FAIL
        } else {
            PASS
        }
    };
    let scope_state = mark(reason == Some(Reason::ScopeMissing));
    step(out, 2, scope_state, "scope", &scope(policy, d.principal.as_ref(), tool));
    for (ptr, claim) in &tool.bind {
        let state = mark(rule == format!("tools.{}.bind.{ptr}", tool.name));
        step(out, 2, state, "bind", &format!("argument {ptr} = caller's {claim}"));
    }
    for (ptr, _) in &tool.constraints {
        let state = mark(rule == format!("tools.{}.constraints.{ptr}", tool.name));
        step(out, 2, state, "constraint", &format!("argument {ptr}"));
    }
    if tool.impact == crate::config::Impact::External {
        let state = mark(reason.is_some_and(Reason::is_approval));
        let detail = match (&c.approver, &c.args_digest) {
            (Some(who), Some(digest)) => format!("granted by {who} for args_digest {digest}"),
            (None, Some(digest)) => format!("a grant for args_digest {digest} is needed"),
            _ => "a signed grant for these exact arguments is needed".to_string(),
        };
        step(out, 2, state, "approval", &detail);
    }
}

fn scope(policy: &Policy, p: Option<&Principal>, tool: &Tool) -> String {
    let Some(p) = p else {
        return format!("intent {}", tool.intent);
    };
    let granting: Vec<&str> = p
        .scopes
        .iter()
        .filter(|s| policy.scope_grants(s, &tool.intent))
        .map(String::as_str)
        .collect();
    let mut s = if granting.is_empty() {
        format!("no token scope grants {}", tool.intent)
    } else {
        format!("{} granted by {}", tool.intent, granting.join(", "))
    };
    if let Some(c) = p.ceiling.and_then(|i| policy.ceilings.get(i)) {
        let within = c.scopes.iter().any(|x| policy.scope_grants(x, &tool.intent));
        let _ = write!(
            s,
            "; ceiling {} {}",
            c.id,
            if within { "allows it" } else { "does not allow it" }
        );
    }
    if let Some((issuer, scopes)) = p.issuer.and_then(|i| policy.identity.issuer_scopes.get(i)) {
        let within = scopes.iter().any(|x| policy.scope_grants(x, &tool.intent));
        let _ = write!(
            s,
            "; issuer {issuer} {}",
            if within { "may grant it" } else { "may not grant it" }
        );
    }
    s
}

fn step(out: &mut String, depth: usize, state: &str, what: &str, detail: &str) {
    let _ = writeln!(out, "{:indent$}{state}  {what:<10} {detail}", "", indent = depth * 2);
}

fn finish(mut out: String, policy: &Policy, o: &Outcome) -> String {
    let d = &o.decision;
    let _ = writeln!(
        out,
        "owner     {} (accountable)",
        crate::audit::accountable_owner(policy, d)
    );
    if let Some(body) = &o.reply_body {
        let _ = writeln!(out, "reply     {body}");
    }
    let _ = writeln!(out, "audit     {}", o.audit);
    out
}
