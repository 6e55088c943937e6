//! `aigate readiness POLICY --cases CASES`: the release gate. A policy is ready for
//! go-live when no lint finds an error in how it answers the three questions (what may
//! the AI see, what may it do, who is accountable) and every known outcome replays as
//! expected. Warnings are reported and do not block.

use super::case::{Evaluator, Request};
use crate::config::{Impact, Mode};
use crate::policy::{DataRule, ModelPattern, NamePattern, Pattern, Policy, TokenSource};
use serde::{Deserialize, Serialize};
use std::fmt::Write as _;

/// Longest token lifetime that counts as short-lived (one hour).
pub const MAX_TOKEN_LIFETIME: u64 = 3600;
/// Longest approval max_age before a warning (fifteen minutes).
pub const MAX_APPROVAL_AGE: u64 = 900;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    Error,
    Warning,
}

/// Which of the three questions a lint is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Question {
    See,
    Do,
    Accountable,
}

#[derive(Debug, Serialize)]
pub struct Finding {
    pub lint: &'static str,
    pub level: Level,
    pub question: Question,
    pub message: String,
}

/// The case file: known outcomes.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Cases {
    /// Unix seconds every case runs at, unless it sets its own.
    pub now: Option<u64>,
    pub cases: Vec<Case>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Case {
    pub name: String,
    pub now: Option<u64>,
    pub request: Request,
    /// A JSON answer to the request (a model's, or an MCP server's list): `expect` is
    /// then the answer's decision.
    pub answer: Option<serde_json::Value>,
    pub expect: Expect,
}

/// A decision as a case states it (`expect`) and as the replay observed it (`got`).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Expect {
    /// `allow`, `deny` or `would_deny`.
    pub decision: String,
    pub reason: Option<String>,
    pub status: Option<u32>,
    pub rule: Option<String>,
    /// The accountable owner the audit record names.
    pub owner: Option<String>,
    /// An MCP list answer: how many items the caller is not shown.
    pub hidden: Option<usize>,
}

impl Expect {
    /// How `got` differs from this expectation; fields not given are not compared.
    fn differences(&self, got: &Expect) -> Vec<String> {
        let text = |v: Option<String>| v.unwrap_or_else(|| "none".to_string());
        let mut out = Vec::new();
        if self.decision != got.decision {
            out.push(format!("decision {} (expected {})", got.decision, self.decision));
        }
        let fields = [
            ("reason", self.reason.clone(), got.reason.clone()),
            (
                "status",
                self.status.map(|s| s.to_string()),
                got.status.map(|s| s.to_string()),
            ),
            ("rule", self.rule.clone(), got.rule.clone()),
            ("owner", self.owner.clone(), got.owner.clone()),
            (
                "hidden",
                self.hidden.map(|n| n.to_string()),
                got.hidden.map(|n| n.to_string()),
            ),
        ];
        for (name, expected, observed) in fields {
            if expected.is_some() && expected != observed {
                out.push(format!("{name} {} (expected {})", text(observed), text(expected)));
            }
        }
        out
    }

    /// `deny scope_missing (403)`; with `owner`, the accountable owner too (shown when the
    /// case states one, so the report reads the same on both sides).
    fn summary(&self, owner: bool) -> String {
        let mut s = self.decision.clone();
        if let Some(r) = &self.reason {
            let _ = write!(s, " {r}");
        }
        if let Some(st) = self.status {
            let _ = write!(s, " ({st})");
        }
        if let Some(o) = self.owner.as_deref().filter(|_| owner) {
            let _ = write!(s, ", owner {o}");
        }
        if let Some(n) = self.hidden {
            let _ = write!(s, ", {n} hidden");
        }
        s
    }
}

#[derive(Debug, Serialize)]
pub struct CaseResult {
    pub name: String,
    pub passed: bool,
    pub expected: Expect,
    /// What the replay decided; absent when the case could not run.
    pub got: Option<Expect>,
    /// Why the case failed, or could not run.
    pub problem: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct Report {
    pub ready: bool,
    pub policy_hash: String,
    pub findings: Vec<Finding>,
    pub cases: Vec<CaseResult>,
}

pub fn lint(p: &Policy) -> Vec<Finding> {
    let mut f = Vec::new();
    let mut add = |lint, level, question, message: String| {
        f.push(Finding {
            lint,
            level,
            question,
            message,
        })
    };
    use Level::{Error, Warning};
    use Question::{Accountable, Do, See};

    if p.mode == Mode::Monitor {
        add(
            "fail-closed",
            Error,
            Do,
            "mode is monitor: denials are only recorded, nothing is blocked".into(),
        );
    }
    if p.unmatched_allow {
        add(
            "fail-closed",
            Error,
            See,
            "unmatched: allow passes requests no route covers without judging them".into(),
        );
    }

    // Who is accountable: identity and owners.
    match p.identity.max_lifetime {
        None => add(
            "short-lived-tokens",
            Error,
            Accountable,
            "identity.max_token_lifetime_seconds is not set: long-lived tokens are accepted".into(),
        ),
        Some(s) if s > MAX_TOKEN_LIFETIME => add(
            "short-lived-tokens",
            Error,
            Accountable,
            format!("identity.max_token_lifetime_seconds is {s}: tokens should live at most {MAX_TOKEN_LIFETIME}s"),
        ),
        Some(_) => {}
    }
    if p.identity.workload.is_none() {
        add(
            "workload-identity",
            Warning,
            Accountable,
            "identity.workload is not set: requests are not tied to a calling workload".into(),
        );
    }
    if let Some(w) = &p.identity.workload {
        if w.trust_domains.is_empty() && w.claim.is_some() {
            add(
                "workload-identity",
                Warning,
                Accountable,
                "the workload is named by a token claim only: whoever holds a token brings its workload \
                 (and that workload's ceiling); identify workloads by mTLS (spiffe_trust_domains)"
                    .into(),
            );
        }
        if !w.trust_domains.is_empty() && w.claim.is_some() && !w.require_mtls {
            add(
                "workload-identity",
                Warning,
                Accountable,
                "a caller without a client certificate is identified by its token's workload claim: \
                 set identity.workload.require_mtls where every caller comes through the mesh"
                    .into(),
            );
        }
    }
    if p.ceilings.is_empty() {
        add(
            "workload-ceilings",
            Warning,
            Do,
            "no workload ceilings: an agent may use every scope its user's token holds".into(),
        );
    }
    // With several identity providers, each one trusted for every scope makes the weakest
    // (a partner's, an HS256 shared secret) as strong as the main one.
    if let crate::policy::TokenSource::Jwt { issuers, .. } = &p.identity.token {
        if issuers.len() > 1 {
            let limited = |i: &&crate::policy::Issuer| p.identity.issuer_scopes.iter().any(|(n, _)| *n == i.issuer);
            for i in issuers.iter().filter(|i| !limited(i)) {
                add(
                    "issuer-scopes",
                    Warning,
                    Do,
                    format!(
                        "issuer {:?} is one of several and may grant every scope: give it `scopes`",
                        i.issuer
                    ),
                );
            }
        }
    }
    let mcp = p.routes.iter().any(|r| r.protocol == crate::config::Protocol::Mcp);
    if mcp && p.identity.bind_session.is_none() {
        add(
            "session-bound",
            Warning,
            Accountable,
            "identity.bind_session is not set: a token is not bound to one MCP session".into(),
        );
    }
    if let TokenSource::Jwt { issuers, .. } = &p.identity.token {
        if issuers.iter().any(|i| i.audiences.iter().any(|a| a == "*")) {
            add(
                "token-audience",
                Error,
                Accountable,
                "an issuer accepts audience \"*\"".into(),
            );
        }
    }
    if p.identity.skew > 60 {
        add(
            "short-lived-tokens",
            Warning,
            Accountable,
            format!(
                "identity.clock_skew_seconds is {}: more than a minute of grace",
                p.identity.skew
            ),
        );
    }

    // What may it do: scopes, tools, approvals.
    let mut named: Vec<(&String, &Vec<Pattern>)> = p.scopes.iter().collect();
    named.sort_by(|a, b| a.0.cmp(b.0));
    for (name, patterns) in named {
        if patterns.iter().any(|x| matches!(x, Pattern::Any)) {
            add(
                "no-bare-star",
                Error,
                Do,
                format!("scope {name:?} grants every intent (\"*\")"),
            );
        }
    }
    for c in &p.ceilings {
        if c.scopes.iter().any(|s| s == "*") {
            add(
                "no-bare-star",
                Error,
                Do,
                format!("workload ceiling {:?} allows every scope (\"*\")", c.id),
            );
        }
    }
    for (issuer, scopes) in &p.identity.issuer_scopes {
        if scopes.iter().any(|s| s == "*") {
            add(
                "no-bare-star",
                Error,
                Do,
                format!("issuer {issuer:?} may grant every scope (\"*\")"),
            );
        }
    }
    let mut tools: Vec<_> = p.tools.values().collect();
    tools.sort_by(|a, b| a.name.cmp(&b.name));
    for t in &tools {
        if t.impact == Impact::External {
            if t.owner.is_none() {
                add(
                    "external-owner",
                    Error,
                    Accountable,
                    format!("external-impact tool {:?} names no owner of its own", t.name),
                );
            }
            if p.approval.is_none() {
                add(
                    "external-approval",
                    Warning,
                    Do,
                    format!(
                        "external-impact tool {:?} can never run: no approval section to verify grants",
                        t.name
                    ),
                );
            }
        }
        if t.impact != Impact::Read && t.bind.is_empty() {
            add(
                "bound-arguments",
                Warning,
                Do,
                format!(
                    "{} tool {:?} binds no argument to the caller (bind)",
                    crate::audit::impact_label(t.impact),
                    t.name
                ),
            );
        }
    }
    if let Some(a) = &p.approval {
        if a.max_age > MAX_APPROVAL_AGE {
            add(
                "approval-max-age",
                Warning,
                Do,
                format!(
                    "approval.max_age_seconds is {}: grants should be used within minutes",
                    a.max_age
                ),
            );
        }
    }

    // What may it see: models and data.
    if p.models.iter().any(|m| matches!(m, ModelPattern::Any)) {
        add(
            "no-bare-star",
            Warning,
            See,
            "models.allow lets every caller use any model (\"*\")".into(),
        );
    }
    let mut scope_models: Vec<_> = p.scope_models.iter().collect();
    scope_models.sort_by(|a, b| a.0.cmp(b.0));
    for (name, models) in scope_models {
        if models.iter().any(|m| matches!(m, ModelPattern::Any)) {
            add(
                "no-bare-star",
                Warning,
                See,
                format!("scope {name:?} lets its holders use any model (\"*\")"),
            );
        }
    }
    // Route settings that let something through unjudged: one warning per route using one.
    type Applies = fn(&Policy, &crate::policy::Route) -> bool;
    let unjudged: [(&str, Question, Applies, &str); 6] = [
        (
            "provider-state",
            See,
            |_, r| r.provider_state == crate::config::ProviderState::Allow,
            "lets requests reach state the provider keeps (previous_response_id, conversation, \
             stored prompts and objects), which aigate cannot judge",
        ),
        (
            "action-extra-input",
            Do,
            |_, r| r.protocol == crate::config::Protocol::Action && r.extra_input == crate::config::ExtraInput::Allow,
            "passes a query string, a path below its prefix and non-JSON bodies unjudged: an upstream \
             that reads parameters from them acts on values aigate never saw",
        ),
        (
            "model-calls",
            Do,
            |_, r| r.protocol.is_llm() && r.model_calls == crate::config::ModelCalls::Pass,
            "passes the model's answers unread: a tool call the model was talked into reaches the \
             client unjudged",
        ),
        (
            "mcp-lists",
            See,
            |_, r| r.protocol == crate::config::Protocol::Mcp && r.lists == crate::config::Lists::Pass,
            "shows the agent every tool, prompt and resource the server lists, including those it \
             may not use",
        ),
        (
            "mcp-unknown-methods",
            Do,
            |_, r| {
                r.protocol == crate::config::Protocol::Mcp && r.unknown_methods == crate::config::UnknownMethods::Pass
            },
            "passes MCP methods aigate does not know unjudged: a server extension or a later \
             protocol revision's method may act or read data nobody checked",
        ),
        (
            "action-hold-body",
            Do,
            |p, r| p.hold == crate::config::Hold::Body && r.protocol == crate::config::Protocol::Action,
            "is a REST action and the policy holds only the body (hold: body): its endpoint gets the \
             request line before the verdict, and one that acts without reading the body acts on \
             requests aigate then refuses; use hold: headers where the host allows it",
        ),
    ];
    for (lint, question, applies, finding) in unjudged {
        for r in p.routes.iter().filter(|r| applies(p, r)) {
            add(lint, Warning, question, format!("route {:?} {finding}", r.id));
        }
    }
    for r in p
        .mcp_servers
        .iter()
        .filter(|r| r.provider_calls == crate::config::ProviderCalls::Any)
    {
        add(
            "provider-calls",
            Warning,
            Do,
            format!(
                "remote MCP servers of data.mcp_servers {:?} may have their tools run by the model provider \
                 without asking: those calls are never judged",
                r.id
            ),
        );
    }
    for r in &p.prompts {
        if r.names
            .iter()
            .any(|n| matches!(n, NamePattern::Prefix(stem) if stem.is_empty()))
        {
            add(
                "no-bare-star",
                Warning,
                See,
                format!("{} opens every prompt of the server (\"*\")", r.rule()),
            );
        }
    }
    for rule in p.data_rules() {
        if rule.owner().is_none() {
            add(
                "data-owner",
                Warning,
                Accountable,
                format!(
                    "{} names no owner: the route's or the default owner answers for its data",
                    rule.rule()
                ),
            );
        }
    }
    f
}

/// Replays the cases against the policy.
pub fn replay(eval: &Evaluator, cases: &Cases, default_now: u64) -> Vec<CaseResult> {
    let mut out = Vec::new();
    for c in &cases.cases {
        let now = c.now.or(cases.now).unwrap_or(default_now);
        let outcome = match &c.answer {
            Some(answer) => eval.run_answer(&c.request, answer, now),
            None => eval.run(&c.request, now),
        };
        let got = outcome.map(|o| {
            let denial = o.decision.denial.as_ref();
            Expect {
                decision: o.verdict.to_string(),
                reason: denial.map(|x| x.reason.as_str().to_string()),
                status: o.status,
                rule: denial.map(|x| x.rule.clone()),
                owner: Some(crate::audit::accountable_owner(&eval.policy, &o.decision).to_string()),
                hidden: c.answer.as_ref().map(|_| o.decision.hidden),
            }
        });
        let (got, problem) = match got {
            Err(e) => (None, Some(format!("cannot run: {e}"))),
            Ok(g) => {
                let wrong = c.expect.differences(&g);
                (Some(g), (!wrong.is_empty()).then(|| wrong.join("; ")))
            }
        };
        out.push(CaseResult {
            name: c.name.clone(),
            passed: got.is_some() && problem.is_none(),
            expected: c.expect.clone(),
            got,
            problem,
        });
    }
    out
}

pub fn report(policy: &Policy, findings: Vec<Finding>, cases: Vec<CaseResult>) -> Report {
    let ready = !cases.is_empty() && cases.iter().all(|c| c.passed) && findings.iter().all(|f| f.level != Level::Error);
    Report {
        ready,
        policy_hash: policy.hash.clone(),
        findings,
        cases,
    }
}

pub fn markdown(r: &Report) -> String {
    let mut s = String::new();
    let verdict = if r.ready { "READY" } else { "NOT READY" };
    let _ = writeln!(s, "# aigate readiness: {verdict}\n");
    let _ = writeln!(s, "Policy `sha256:{}`.\n", r.policy_hash);
    let errors = r.findings.iter().filter(|f| f.level == Level::Error).count();
    let warnings = r.findings.len() - errors;
    let passed = r.cases.iter().filter(|c| c.passed).count();
    let _ = writeln!(
        s,
        "- lints: {errors} error(s), {warnings} warning(s)\n- known outcomes: {passed} of {} as expected\n",
        r.cases.len()
    );
    let _ = writeln!(s, "## Lints\n");
    if r.findings.is_empty() {
        let _ = writeln!(s, "No findings.\n");
    } else {
        let _ = writeln!(s, "| level | lint | question | finding |\n|---|---|---|---|");
        for f in &r.findings {
            let q = match f.question {
                Question::See => "what may it see",
                Question::Do => "what may it do",
                Question::Accountable => "who is accountable",
            };
            let level = match f.level {
                Level::Error => "error",
                Level::Warning => "warning",
            };
            let _ = writeln!(s, "| {level} | `{}` | {q} | {} |", f.lint, cell(&f.message));
        }
        s.push('\n');
    }
    let _ = writeln!(s, "## Known outcomes\n");
    if r.cases.is_empty() {
        let _ = writeln!(s, "No cases: a policy is not ready until its known outcomes replay.\n");
    } else {
        let _ = writeln!(s, "| | case | expected | got |\n|---|---|---|---|");
        for c in &r.cases {
            let mark = if c.passed { "pass" } else { "**FAIL**" };
            let owner = c.expected.owner.is_some();
            let expected = c.expected.summary(owner);
            let got = match (&c.got, &c.problem) {
                (Some(g), Some(p)) => format!("{} — {p}", g.summary(owner)),
                (Some(g), None) => g.summary(owner),
                (None, p) => p.clone().unwrap_or_default(),
            };
            let _ = writeln!(
                s,
                "| {mark} | {} | {} | {} |",
                cell(&c.name),
                cell(&expected),
                cell(&got)
            );
        }
        s.push('\n');
    }
    s
}

/// Table cells stay on one line and keep their pipes.
fn cell(text: &str) -> String {
    text.replace('|', "\\|").replace('\n', " ")
}
