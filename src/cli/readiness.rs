//! `aigate readiness POLICY --cases CASES`: the release gate. A policy is ready for
//! go-live when no lint finds an error in how it answers the three questions (what may
//! the AI see, what may it do, who is accountable) and every known outcome replays as
//! expected. Warnings are reported and do not block.

use super::case::{Answer, Evaluator, Request};
use super::lint::{Finding, Level, Question};
use crate::decision::Reason;
use crate::policy::Policy;
use serde::de::Error as _;
use serde::{Deserialize, Deserializer, Serialize};
use std::fmt::Write as _;

/// The case file: known outcomes.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Cases {
    /// Unix seconds every case runs at, unless it sets its own.
    #[serde(default, deserialize_with = "super::case::pinned_now")]
    pub now: Option<u64>,
    pub cases: Vec<Case>,
}

/// One known outcome: a request, and the answer to it when the answer's decision is the
/// one expected.
#[derive(Debug, Deserialize)]
#[serde(try_from = "CaseFields")]
pub struct Case {
    pub name: String,
    pub now: Option<u64>,
    pub request: Request,
    /// The answer to the request (a model's, or an MCP server's): `expect` is then the
    /// answer's decision.
    pub answer: Option<Answer>,
    pub expect: Expect,
}

/// A case as the file writes it.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CaseFields {
    name: String,
    #[serde(default, deserialize_with = "super::case::pinned_now")]
    now: Option<u64>,
    request: Request,
    /// A JSON answer…
    answer: Option<serde_json::Value>,
    /// …or the exact body of one (a stream's events), with its content type.
    answer_text: Option<String>,
    answer_content_type: Option<String>,
    expect: Expect,
}

impl TryFrom<CaseFields> for Case {
    type Error = String;

    /// Two answers, or a label for the JSON one, would leave the case's author believing
    /// one answer was replayed when another was: the file is refused (named at the case).
    fn try_from(c: CaseFields) -> Result<Case, String> {
        // The report names each case by its name: one that shows nothing names no case.
        if c.name.trim().is_empty() {
            return Err("a case's name must not be empty or blank: the report names the case by it".into());
        }
        let answer = match (c.answer, c.answer_text, c.answer_content_type) {
            (Some(_), Some(_), _) => {
                return Err(
                    "give either answer (a JSON answer) or answer_text (an answer's exact body), not both".into(),
                )
            }
            (Some(_), None, Some(_)) => {
                return Err(
                    "answer_content_type labels answer_text: answer is JSON, sent as application/json (give the \
                     exact body as answer_text to label it otherwise)"
                        .into(),
                )
            }
            (None, None, Some(_)) => {
                return Err("answer_content_type labels answer_text, which the case does not give".into())
            }
            (Some(json), None, None) => Some(Answer::Json(json)),
            (None, Some(text), content_type) => Some(Answer::Text {
                body: text.into_bytes(),
                content_type,
            }),
            (None, None, None) => None,
        };
        Ok(Case {
            name: c.name,
            now: c.now,
            request: c.request,
            answer,
            expect: c.expect,
        })
    }
}

/// A decision as a case states it (`expect`) and as the replay observed it (`got`).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Expect {
    /// `allow`, `deny` or `would_deny`.
    #[serde(deserialize_with = "decision")]
    pub decision: String,
    /// One of the closed set of reasons: a misspelt one would fail its case, never the file.
    #[serde(default, deserialize_with = "reason")]
    pub reason: Option<String>,
    #[serde(default, deserialize_with = "given")]
    pub status: Option<u32>,
    #[serde(default, deserialize_with = "given")]
    pub rule: Option<String>,
    /// The accountable owner the audit record names.
    #[serde(default, deserialize_with = "given")]
    pub owner: Option<String>,
    /// An MCP list answer: how many items the caller is not shown.
    #[serde(default, deserialize_with = "given")]
    pub hidden: Option<usize>,
}

/// The decisions a case may expect.
const DECISIONS: [&str; 3] = ["allow", "deny", "would_deny"];

fn decision<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    let decision = String::deserialize(d)?;
    if DECISIONS.contains(&decision.as_str()) {
        Ok(decision)
    } else {
        Err(D::Error::custom(format!(
            "unknown decision {decision:?}: expected {}",
            DECISIONS.join(", ")
        )))
    }
}

/// An expected field, when the case gives it. A field left out is not compared; one given
/// as `null` would read the same, so `"reason": null` would pass for every reason while
/// its author believed it checked one: refused, naming the field.
fn given<'de, D: Deserializer<'de>, T: Deserialize<'de>>(d: D) -> Result<Option<T>, D::Error> {
    match Option::<T>::deserialize(d)? {
        None => Err(D::Error::custom(
            "null is no expectation: give a value, or leave the field out to leave it unchecked (only the fields given are compared)",
        )),
        given => Ok(given),
    }
}

fn reason<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    match given::<D, String>(d)? {
        Some(r) if !Reason::ALL.iter().any(|x| x.as_str() == r) => {
            let known: Vec<&str> = Reason::ALL.iter().map(|x| x.as_str()).collect();
            Err(D::Error::custom(format!(
                "unknown reason {r:?}: expected one of {}",
                known.join(", ")
            )))
        }
        r => Ok(r),
    }
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

    /// `deny scope_missing (403), rule tools.get_order`; with `owner`, the accountable
    /// owner too (shown when the case states one, so the report reads the same on both
    /// sides).
    fn summary(&self, owner: bool) -> String {
        let mut s = self.decision.clone();
        if let Some(r) = &self.reason {
            let _ = write!(s, " {r}");
        }
        if let Some(st) = self.status {
            let _ = write!(s, " ({st})");
        }
        if let Some(rule) = &self.rule {
            let _ = write!(s, ", rule {rule}");
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
                rule: Some(crate::audit::rule(&eval.policy, &o.decision)),
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

/// Table cells stay one cell on one line, whatever a case name or a policy id holds:
/// pipes are escaped; line breaks of every kind (a bare CR ends a line in CommonMark as LF
/// does, and so would a heading after it), tabs and other whitespace controls become
/// spaces; any other control character is shown as U+FFFD; `<` is escaped so no HTML tag
/// is rendered.
fn cell(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '|' => out.push_str("\\|"),
            '<' => out.push_str("&lt;"),
            '\u{2028}' | '\u{2029}' => out.push(' '),
            c if c.is_control() && c.is_whitespace() => out.push(' '),
            c if c.is_control() => out.push('\u{FFFD}'),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_cell_is_one_line_of_text() {
        let name = "a refund\r# aigate readiness: READY\n| x | y |\u{2028}\t<h1>z</h1>\u{1b}[31m\u{85}\u{0}";
        let cell = super::cell(name);
        assert_eq!(
            cell,
            "a refund # aigate readiness: READY \\| x \\| y \\|  &lt;h1>z&lt;/h1>\u{FFFD}[31m \u{FFFD}"
        );
        assert!(!cell.chars().any(char::is_control), "{cell:?}");
    }
}
