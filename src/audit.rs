//! Accountability: one JSON line per decision naming who, what, which rule and which owner.
//! Never argument values, tokens or secrets.

use crate::config::{Impact, Mode, Protocol};
use crate::engine::{Call, Decision, Stage};
use crate::policy::Policy;
use std::fmt::Write as _;
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

/// A decision id: the worker's random prefix and its request counter, 32 lowercase hex
/// digits (the same text as `format!("{prefix:016x}{n:016x}")`, without the formatter).
pub fn decision_id(prefix: u64, n: u64) -> String {
    let mut id = String::with_capacity(32);
    for word in [prefix, n] {
        for shift in (0..16).rev() {
            let digit = ((word >> (shift * 4)) & 0xf) as u32;
            id.push(char::from_digit(digit, 16).unwrap_or('0'));
        }
    }
    id
}

/// The audit record for a decision, as one line of JSON. Fields are written in this order,
/// absent ones as `null`, so every line has the same shape; `refused_offers` and `calls`
/// appear only when there is something to list, `hidden` only when an MCP list answer
/// hid items from the caller.
///
/// Written by hand into one buffer, without a serialiser: the line is built on every
/// request, and inside the VM a generic serialiser costs more than the decision it records.
pub fn record(policy: &Policy, d: &Decision, decision_id: &str, now_nanos: u64) -> String {
    let route = d.route.and_then(|i| policy.routes.get(i));
    let call = deciding_call(d);
    let p = d.principal.as_ref();
    let time = humantime::format_rfc3339_millis(UNIX_EPOCH + Duration::from_nanos(now_nanos));
    let mut w = Line::with_capacity(640 + 64 * d.calls.len() + 32 * d.refused_offers.len());
    w.text("type", Some("aigate.decision"));
    w.open_field("time");
    w.out.push('"');
    // RFC 3339 in UTC: digits, dashes, colons and a dot, nothing to escape.
    let _ = write!(w.out, "{time}");
    w.out.push('"');
    w.text("decision_id", Some(decision_id));
    // `request`, or `answer` for the judgement of a model's answer to it (same decision id).
    w.text("stage", Some(stage_label(d.stage)));
    w.text("decision", Some(verdict(policy, d)));
    w.text("reason", d.denial.as_ref().map(|x| x.reason.as_str()));
    match &d.denial {
        Some(x) => w.name("rule", Some(&x.rule)),
        None => allow_rule(&mut w, d, policy),
    }
    w.text(
        "mode",
        Some(match policy.mode {
            Mode::Enforce => "enforce",
            Mode::Monitor => "monitor",
        }),
    );
    w.text("protocol", Some(protocol_label(d.protocol)));
    w.text("route", route.map(|r| r.id.as_str()));
    w.name("http_method", Some(&d.http_method));
    w.name("method", d.rpc_method.as_deref());
    w.name("model", d.model.as_deref());
    let action = call.is_none().then(|| route_action(policy, d)).flatten();
    w.name("tool", call.map(|c| c.tool.as_str()).or(action.map(|(name, _)| name)));
    w.text(
        "intent",
        call.and_then(|c| c.intent.as_deref())
            .or(action.map(|(_, t)| t.intent.as_str())),
    );
    w.text(
        "impact",
        call.and_then(|c| c.impact)
            .or(action.map(|(_, t)| t.impact))
            .map(impact_label),
    );
    w.name("prompt", d.prompt.as_deref());
    w.text("subject", p.map(|p| p.subject.as_str()));
    // Whose word the subject is: alice of a partner's provider is not the main one's.
    w.text("issuer", p.and_then(|p| p.token_issuer()));
    w.text("workload", p.and_then(|p| p.workload.as_deref()));
    w.text("tenant", p.and_then(|p| p.tenant.as_deref()));
    w.name(
        "session",
        p.and_then(|p| p.session.as_deref()).or(d.session_tried.as_deref()),
    );
    w.text("owner", Some(accountable_owner(policy, d)));
    w.text("approver", call.and_then(|c| c.approver.as_deref()));
    w.text("args_digest", call.and_then(|c| c.args_digest.as_deref()));
    w.text("policy_hash", Some(&policy.hash));
    if !d.refused_offers.is_empty() {
        w.open_field("refused_offers");
        w.out.push('[');
        for (i, tool) in d.refused_offers.iter().take(MAX_LISTED).enumerate() {
            if i > 0 {
                w.out.push(',');
            }
            push_name(&mut w.out, tool);
        }
        w.out.push(']');
        w.omitted("refused_offers_omitted", d.refused_offers.len());
    }
    // A batch or a conversation judges several calls: each is listed with who answers
    // for it and, for an approved one, who approved which arguments.
    if d.calls.len() > 1 {
        w.open_field("calls");
        w.out.push('[');
        for (i, c) in d.calls.iter().take(MAX_LISTED).enumerate() {
            w.out.push_str(if i > 0 { ",{\"tool\":" } else { "{\"tool\":" });
            push_name(&mut w.out, &c.tool);
            // The line is never empty here: each field after the tool opens with its comma.
            let mut entry = Line {
                out: std::mem::take(&mut w.out),
            };
            entry.text("intent", c.intent.as_deref());
            entry.text("impact", c.impact.map(impact_label));
            entry.text("owner", Some(call_owner(policy, route, c)));
            entry.text("approver", c.approver.as_deref());
            entry.text("args_digest", c.args_digest.as_deref());
            entry.out.push_str(if c.allowed {
                ",\"allowed\":true}"
            } else {
                ",\"allowed\":false}"
            });
            w.out = entry.out;
        }
        w.out.push(']');
        w.omitted("calls_omitted", d.calls.len());
    }
    // An MCP list answer: how many items the caller was not shown.
    if d.hidden > 0 {
        w.open_field("hidden");
        let _ = write!(w.out, "{}", d.hidden);
    }
    w.out.push('}');
    w.out
}

/// A JSON object being written field by field; keys are this module's own names, which
/// need no escaping.
struct Line {
    out: String,
}

impl Line {
    fn with_capacity(n: usize) -> Line {
        let mut out = String::with_capacity(n);
        out.push('{');
        Line { out }
    }

    fn open_field(&mut self, key: &str) {
        if self.out.len() > 1 {
            self.out.push(',');
        }
        self.out.push('"');
        self.out.push_str(key);
        self.out.push_str("\":");
    }

    /// A name the caller chose (a tool, a method, a model): at most [`MAX_NAME`] characters.
    fn name(&mut self, key: &str, value: Option<&str>) {
        self.open_field(key);
        match value {
            Some(v) => push_name(&mut self.out, v),
            None => self.out.push_str("null"),
        }
    }

    /// How many entries of a list past [`MAX_LISTED`] were left out, when any were.
    fn omitted(&mut self, key: &str, len: usize) {
        if len > MAX_LISTED {
            self.open_field(key);
            let _ = write!(self.out, "{}", len - MAX_LISTED);
        }
    }

    fn text(&mut self, key: &str, value: Option<&str>) {
        self.open_field(key);
        match value {
            Some(v) => push_json_string(&mut self.out, v),
            None => self.out.push_str("null"),
        }
    }
}

/// Longest caller-chosen name an audit line carries whole; longer ones end in `…`, so one
/// request cannot write a megabyte into the log.
pub const MAX_NAME: usize = 256;

/// Most entries of `refused_offers` or `calls` a line lists; the rest are counted.
pub const MAX_LISTED: usize = 64;

/// Appends a caller-chosen name as a JSON string, cut to [`MAX_NAME`] characters.
fn push_name(out: &mut String, s: &str) {
    out.push('"');
    push_cut(out, s);
    out.push('"');
}

/// Appends `s` escaped (no quotes), cut to [`MAX_NAME`] characters with a `…`.
fn push_cut(out: &mut String, s: &str) {
    match s.char_indices().nth(MAX_NAME) {
        Some((cut, _)) => {
            push_escaped(out, s.get(..cut).unwrap_or(""));
            out.push('…');
        }
        None => push_escaped(out, s),
    }
}

/// Appends `s` as a JSON string, escaped exactly as serde_json escapes (quote, backslash
/// and control characters; everything else as is), so a line reads back to the same text.
fn push_json_string(out: &mut String, s: &str) {
    out.push('"');
    push_escaped(out, s);
    out.push('"');
}

/// The inside of a JSON string: `s` escaped, without the quotes. Runs of plain text are
/// copied whole; most audit values are all plain.
fn push_escaped(out: &mut String, s: &str) {
    let bytes = s.as_bytes();
    let mut plain = 0;
    for (i, &b) in bytes.iter().enumerate() {
        // Most bytes need nothing: one table lookup decides.
        if NEEDS_LOOK.get(usize::from(b)) != Some(&true) {
            continue;
        }
        // NEL (U+0085) and the Unicode line and paragraph separators are line breaks to
        // readers that split on them (Python's `splitlines`): escaped, a caller-chosen
        // name cannot cut its own record in two.
        let (escape, len) = match (b, bytes.get(i + 1), bytes.get(i + 2)) {
            (0xc2, Some(0x85), _) => (Some("\\u0085"), 2),
            (0xe2, Some(0x80), Some(0xa8)) => (Some("\\u2028"), 3),
            (0xe2, Some(0x80), Some(0xa9)) => (Some("\\u2029"), 3),
            (0xc2 | 0xe2, _, _) => continue,
            _ => (None, 1),
        };
        out.push_str(s.get(plain..i).unwrap_or(""));
        match (escape, b) {
            (Some(e), _) => out.push_str(e),
            (None, b'"') => out.push_str("\\\""),
            (None, b'\\') => out.push_str("\\\\"),
            (None, b'\n') => out.push_str("\\n"),
            (None, b'\r') => out.push_str("\\r"),
            (None, b'\t') => out.push_str("\\t"),
            (None, 0x08) => out.push_str("\\b"),
            (None, 0x0c) => out.push_str("\\f"),
            (None, _) => {
                let _ = write!(out, "\\u{b:04x}");
            }
        }
        plain = i + len;
    }
    out.push_str(s.get(plain..).unwrap_or(""));
}

/// Bytes that may need escaping: controls, `"`, `\`, and the lead bytes of NEL (`C2`) and
/// of the Unicode line and paragraph separators (`E2`).
#[allow(clippy::indexing_slicing)] // evaluated at compile time: out of bounds fails the build
const NEEDS_LOOK: [bool; 256] = {
    let mut t = [false; 256];
    let mut b = 0;
    while b < 256 {
        t[b] = b < 0x20 || b == b'"' as usize || b == b'\\' as usize || b == 0xc2 || b == 0xe2;
        b += 1;
    }
    t
};

/// The deciding call: the denied one; else, for an allowed request, the one with the most
/// impact (the external action approved in a batch, not the read beside it), the last of
/// equals. A request refused by no call (a data rule, its body) has none: an allowed call
/// beside the refusal does not answer for it; a refused answer has the request's calls.
/// Batches list them all.
pub fn deciding_call(d: &Decision) -> Option<&Call> {
    match d.calls.iter().find(|c| !c.allowed && !c.awaiting_grant) {
        Some(denied) => Some(denied),
        // A refused answer is the answer to the request's calls: they answer for it.
        None if d.denial.is_some() && d.stage != crate::engine::Stage::Answer => None,
        None => d.calls.iter().max_by_key(|c| c.impact.map_or(0, |i| i as u8 + 1)),
    }
}

/// On a REST action route, the route's one tool when no call of it was judged: a request
/// refused before its arguments were read (its identity, its body's size or encoding) was
/// still an attempt at that action, and the action's owner answers for it.
fn route_action<'a>(policy: &'a Policy, d: &Decision) -> Option<(&'a str, &'a crate::policy::Tool)> {
    if d.protocol != Some(Protocol::Action) || !d.calls.is_empty() {
        return None;
    }
    let name = d.route.and_then(|i| policy.routes.get(i))?.tool.as_deref()?;
    Some((name, policy.tools.get(name)?))
}

/// Who answers for one call: its tool's owner, else the route's, else the default.
fn call_owner<'a>(policy: &'a Policy, route: Option<&'a crate::policy::Route>, c: &'a Call) -> &'a str {
    policy.owner_for(policy.tools.get(&c.tool), None, route)
}

/// Who answers for a decision: the deciding tool's owner, else the data rule's, else the
/// route's, else the policy's default owner.
pub fn accountable_owner<'a>(policy: &'a Policy, d: &'a Decision) -> &'a str {
    let tool = match deciding_call(d) {
        Some(c) => policy.tools.get(&c.tool),
        None => route_action(policy, d).map(|(_, t)| t),
    };
    let route = d.route.and_then(|i| policy.routes.get(i));
    policy.owner_for(tool, d.data.as_ref().and_then(|u| u.owner.as_deref()), route)
}

/// The rule an allowed request went by: the deciding call's tool, else the data rule,
/// else the route (`unmatched` when none matched and unmatched requests are allowed), as
/// a prefix and a name.
fn allow_rule_parts<'d>(d: &'d Decision, policy: &'d Policy) -> (&'static str, &'d str) {
    if let Some(c) = deciding_call(d) {
        ("tools.", c.tool.as_str())
    } else if let Some(u) = &d.data {
        ("", u.rule.as_str())
    } else if let Some(r) = d.route.and_then(|i| policy.routes.get(i)) {
        ("routes.", r.id.as_str())
    } else {
        ("", "unmatched")
    }
}

/// The rule the audit line names: the denial's, else the one an allowed request went by.
pub fn rule(policy: &Policy, d: &Decision) -> String {
    match &d.denial {
        Some(x) => x.rule.clone(),
        None => {
            let (prefix, name) = allow_rule_parts(d, policy);
            format!("{prefix}{name}")
        }
    }
}

fn allow_rule(w: &mut Line, d: &Decision, policy: &Policy) {
    let (prefix, name) = allow_rule_parts(d, policy);
    w.open_field("rule");
    w.out.push('"');
    w.out.push_str(prefix); // needs no escaping
    push_cut(&mut w.out, name);
    w.out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decision_ids_are_the_prefix_and_counter_in_hex() {
        for (p, n) in [(0, 0), (u64::MAX, 1), (0x0123_4567_89ab_cdef, 0xfedc_ba98_7654_3210)] {
            assert_eq!(decision_id(p, n), format!("{p:016x}{n:016x}"));
        }
    }

    #[test]
    fn strings_are_escaped_as_json_that_holds_no_line_break_of_any_kind() {
        let mut every_ascii = String::new();
        for c in 0u8..0x80 {
            every_ascii.push(c as char);
        }
        for s in [
            "",
            "plain",
            every_ascii.as_str(),
            "quote \" backslash \\ slash / end",
            "\u{7f}\u{80}é漢字🙂\u{2028}\u{2029}\u{85}\u{feff}",
            "\u{0}\u{1f}\n\r\t\u{8}\u{c}",
            "hide\u{2028}me\u{85}now\u{2029}",
            "\u{2027}\u{202a}\u{84}\u{86}",
        ] {
            let mut ours = String::new();
            push_json_string(&mut ours, s);
            // The same string once read back, and on one line whoever splits it.
            assert_eq!(serde_json::from_str::<String>(&ours).unwrap(), s, "{ours}");
            assert_eq!(ours.lines().count().max(1), 1, "{ours}");
            assert!(!ours.contains(['\u{85}', '\u{2028}', '\u{2029}']), "{ours}");
            // Otherwise exactly what serde_json writes.
            let theirs = serde_json::to_string(s)
                .unwrap()
                .replace('\u{85}', "\\u0085")
                .replace('\u{2028}', "\\u2028")
                .replace('\u{2029}', "\\u2029");
            assert_eq!(ours, theirs, "{s:?}");
        }
    }

    /// The smallest policy: one MCP route `r1`, one HS256 issuer.
    fn one_route_policy() -> Policy {
        let doc = serde_json::json!({
            "default_owner": "o",
            "routes": [{"id": "r1", "prefix": "/mcp", "protocol": "mcp"}],
            "identity": {"source": "jwt", "jwt": {"issuers": [{"issuer": "https://idp", "audiences": ["aigate"],
                "jwks": {"keys": [{"kty": "oct", "kid": "k", "alg": "HS256",
                                   "k": "a2tra2tra2tra2tra2tra2tra2tra2tra2tra2tra2s"}]}}]}}
        });
        crate::policy::compile(doc.to_string().as_bytes()).unwrap()
    }

    #[test]
    fn a_line_reads_back_with_every_field_in_order() {
        let policy = one_route_policy();
        let mut d = Decision {
            route: Some(0),
            protocol: Some(Protocol::Mcp),
            http_method: "POST".into(),
            rpc_method: Some("tools/call".into()),
            refused_offers: vec!["a\nb".into()],
            hidden: 2,
            ..Decision::default()
        };
        for (tool, allowed) in [("first", true), ("second\u{1}", false)] {
            d.calls.push(Call {
                tool: tool.into(),
                intent: None,
                impact: Some(Impact::Read),
                owner: None,
                args_digest: None,
                approver: None,
                allowed,
                awaiting_grant: false,
            });
        }
        let line = record(&policy, &d, "id\"x", 1_700_000_000_123_000_000);
        let v: serde_json::Value = serde_json::from_str(&line).unwrap();
        let keys: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
        let mut expected = vec![
            "type",
            "time",
            "decision_id",
            "stage",
            "decision",
            "reason",
            "rule",
            "mode",
            "protocol",
            "route",
            "http_method",
            "method",
            "model",
            "tool",
            "intent",
            "impact",
            "prompt",
            "subject",
            "issuer",
            "workload",
            "tenant",
            "session",
            "owner",
            "approver",
            "args_digest",
            "policy_hash",
            "refused_offers",
            "calls",
            "hidden",
        ];
        let mut got = keys.clone();
        got.sort_unstable();
        expected.sort_unstable();
        assert_eq!(got, expected);
        // In writing order: the order operators' parsers and our docs rely on.
        let order: Vec<usize> = ["type", "time", "decision_id", "rule", "policy_hash", "calls", "hidden"]
            .iter()
            .map(|k| line.find(&format!("\"{k}\":")).unwrap())
            .collect();
        assert!(order.windows(2).all(|w| w[0] < w[1]), "{line}");
        assert_eq!(v["time"], "2023-11-14T22:13:20.123Z");
        assert_eq!(v["decision_id"], "id\"x");
        assert_eq!(v["route"], "r1");
        assert_eq!(v["reason"], serde_json::Value::Null);
        assert_eq!(v["rule"], "tools.second\u{1}");
        assert_eq!(v["tool"], "second\u{1}", "the denied call decides");
        assert_eq!(v["refused_offers"], serde_json::json!(["a\nb"]));
        let entry = |tool: &str, allowed: bool| {
            serde_json::json!({"tool": tool, "intent": null, "impact": "read", "owner": "o",
                               "approver": null, "args_digest": null, "allowed": allowed})
        };
        assert_eq!(
            v["calls"],
            serde_json::json!([entry("first", true), entry("second\u{1}", false)])
        );
        assert_eq!(v["hidden"], 2);
    }

    /// An MCP `tools/call` on route `r1`, allowed so far.
    fn tools_call() -> Decision {
        Decision {
            route: Some(0),
            protocol: Some(Protocol::Mcp),
            http_method: "POST".into(),
            rpc_method: Some("tools/call".into()),
            ..Decision::default()
        }
    }

    /// An allowed call of `tool`, approved by `approver` when one is named.
    fn allowed_call(tool: &str, impact: Impact, approver: Option<&str>) -> Call {
        Call {
            tool: tool.into(),
            intent: None,
            impact: Some(impact),
            owner: None,
            args_digest: approver.map(|_| "digest".to_string()),
            approver: approver.map(str::to_string),
            allowed: true,
            awaiting_grant: false,
        }
    }

    fn line(policy: &Policy, d: &Decision) -> serde_json::Value {
        serde_json::from_str(&record(policy, d, "id", 0)).unwrap()
    }

    #[test]
    fn a_batch_refused_by_a_data_rule_answers_by_that_rule() {
        let policy = one_route_policy();
        let mut d = tools_call();
        d.denial = Some(crate::decision::Denial::new(
            crate::decision::Reason::ScopeMissing,
            "data.resources.docs",
            "no",
        ));
        d.data = Some(crate::engine::DataUse {
            rule: "data.resources.docs".into(),
            owner: Some("knowledge".into()),
        });
        d.calls.push(allowed_call("get_order", Impact::Read, None));
        let v = line(&policy, &d);
        assert_eq!(
            (v["owner"].as_str(), v["tool"].as_str(), v["rule"].as_str()),
            (Some("knowledge"), None, Some("data.resources.docs"))
        );
    }

    #[test]
    fn an_allowed_batch_answers_by_its_call_with_the_most_impact() {
        let policy = one_route_policy();
        let mut d = tools_call();
        d.calls
            .push(allowed_call("send_email", Impact::External, Some("carol")));
        d.calls.push(allowed_call("get_order", Impact::Read, None));
        let v = line(&policy, &d);
        assert_eq!(
            (
                v["tool"].as_str(),
                v["impact"].as_str(),
                v["approver"].as_str(),
                v["args_digest"].as_str()
            ),
            (Some("send_email"), Some("external"), Some("carol"), Some("digest"))
        );
        // Each approved call keeps its approver in the list.
        d.calls.push(allowed_call("send_email", Impact::External, Some("dave")));
        let v = line(&policy, &d);
        assert_eq!(v["approver"], "dave");
        let approvers: Vec<Option<&str>> = v["calls"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["approver"].as_str())
            .collect();
        assert_eq!(approvers, [Some("carol"), None, Some("dave")]);
    }

    #[test]
    fn caller_chosen_names_and_lists_are_bounded() {
        let policy = one_route_policy();
        let long = "é".repeat(60_000);
        let mut d = Decision {
            route: Some(0),
            protocol: Some(Protocol::Mcp),
            http_method: "POST".into(),
            rpc_method: Some(long.clone()),
            refused_offers: (0..1000).map(|i| format!("offer-{i}")).collect(),
            ..Decision::default()
        };
        for _ in 0..100 {
            d.calls.push(Call {
                tool: long.clone(),
                intent: None,
                impact: None,
                owner: None,
                args_digest: None,
                approver: None,
                allowed: true,
                awaiting_grant: false,
            });
        }
        let line = record(&policy, &d, "id", 0);
        assert!(line.len() < 64 * 1024, "{} bytes", line.len());
        let v: serde_json::Value = serde_json::from_str(&line).unwrap();
        let cut = format!("{}…", "é".repeat(MAX_NAME));
        assert_eq!(v["method"], cut.as_str());
        assert_eq!(v["tool"], cut.as_str());
        assert_eq!(v["refused_offers"].as_array().unwrap().len(), MAX_LISTED);
        assert_eq!(v["refused_offers"][0], "offer-0");
        assert_eq!(v["refused_offers_omitted"], 1000 - MAX_LISTED);
        assert_eq!(v["calls"].as_array().unwrap().len(), MAX_LISTED);
        assert_eq!(v["calls_omitted"], 100 - MAX_LISTED);
        // A short name is whole, and nothing is said to be omitted from a short list.
        d.rpc_method = Some("tools/call".into());
        d.refused_offers.truncate(2);
        d.calls.truncate(2);
        let v: serde_json::Value = serde_json::from_str(&record(&policy, &d, "id", 0)).unwrap();
        assert_eq!(v["method"], "tools/call");
        assert!(v.get("refused_offers_omitted").is_none() && v.get("calls_omitted").is_none());
    }
}
