//! `aigate eval POLICY REQUEST` and `aigate readiness POLICY --cases CASES`: the policy
//! judged offline, by the same engine the plugin runs.

use super::case::{Answer, Evaluator, Outcome, Request};
use super::{explain, lint, readiness};
use crate::config::Mode;
use crate::policy::Policy;
use serde_json::json;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// Bad input (unreadable file, invalid policy or request): exit 2, as `aigate check`
/// exits 1 for an invalid policy and `readiness` 1 for "not ready".
const BAD_INPUT: u8 = 2;

fn load(policy: &Path) -> Result<Evaluator, String> {
    let bytes = super::read(policy)?;
    Evaluator::new(&bytes).map_err(|errors| {
        let mut s = format!("{}: invalid policy ({} error(s))", super::name(policy), errors.len());
        for e in errors {
            s.push_str(&format!("\n  error: {e}"));
        }
        s
    })
}

/// Nesting allowed in request, answer and case files (bodies sit a few levels deep).
const CASE_FILE_DEPTH: usize = 256;

/// What a request file holds, said when it holds something else.
const REQUEST_SHAPE: &str = r#"a request file must be an object {"path": …, "claims" or "headers": …, "body": …}"#;
/// What a cases file holds, said when it holds something else.
const CASES_SHAPE: &str = r#"a cases file must be an object {"now": …, "cases": [...]}"#;

/// Reads a file of the CLI's own JSON. `object`: the file must be a JSON object, and this
/// says what it holds when it is not (field by field, serde would name the first value it
/// expected: "invalid type: map, expected u64" for a cases file that is a bare array).
fn parse<T: serde::de::DeserializeOwned>(path: &Path, object: Option<&str>) -> Result<T, String> {
    let bytes = super::read(path)?;
    // As strict as the plugin: a request body with a duplicate key must not replay as the
    // body that kept the last one.
    let doc = super::parse_json(path, &bytes, CASE_FILE_DEPTH)?;
    if let Some(shape) = object.filter(|_| !doc.is_object()) {
        let kind = match doc {
            serde_json::Value::Array(_) => "an array",
            serde_json::Value::String(_) => "a string",
            serde_json::Value::Number(_) => "a number",
            serde_json::Value::Bool(_) => "a boolean",
            _ => "null",
        };
        return Err(format!("{}: {shape}, not {kind}", super::name(path)));
    }
    let mut de = serde_json::Deserializer::from_slice(&bytes);
    let value = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let at = e.path().to_string();
        let at = if at == "." { String::new() } else { format!(" at {at}") };
        format!("{}{at}: {}", super::name(path), e.into_inner())
    })?;
    de.end().map_err(|e| format!("{}: {e}", super::name(path)))?;
    Ok(value)
}

/// The fields every `--json` decision has: verdict, reason, rule, message, audit record.
/// `rule` is the one the audit record names (for an allowed call, its tool), as a case's
/// `expect.rule` is compared with it.
fn verdict_json(policy: &Policy, outcome: &Outcome) -> serde_json::Map<String, serde_json::Value> {
    let denial = outcome.decision.denial.as_ref();
    let mut doc = serde_json::Map::new();
    doc.insert("decision".into(), json!(outcome.verdict));
    doc.insert("reason".into(), json!(denial.map(|x| x.reason.as_str())));
    doc.insert("rule".into(), json!(crate::audit::rule(policy, &outcome.decision)));
    doc.insert("message".into(), json!(denial.map(|x| x.message.as_str())));
    doc.insert("audit".into(), json_or_text(&outcome.audit));
    doc
}

/// A body or record shown as JSON when it is JSON, else as text.
fn json_or_text(text: &str) -> serde_json::Value {
    serde_json::from_str(text).unwrap_or_else(|_| json!(text))
}

/// The policy and one request file, as `eval` reads them.
fn load_case(policy: &Path, request: &Path) -> Result<(Evaluator, Request), String> {
    Ok((load(policy)?, parse(request, Some(REQUEST_SHAPE))?))
}

fn now_or_clock(now: Option<u64>) -> u64 {
    now.unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs())
    })
}

fn fail(e: &str) -> ExitCode {
    eprintln!("error: {e}");
    ExitCode::from(BAD_INPUT)
}

/// One dry-run decision with the explanation of every rule applied.
pub fn eval(policy: &Path, request: &Path, now: Option<u64>, as_json: bool, out: &mut String) -> ExitCode {
    let (evaluator, req) = match load_case(policy, request) {
        Ok(loaded) => loaded,
        Err(e) => return fail(&e),
    };
    let outcome = match evaluator.run(&req, now_or_clock(now)) {
        Ok(o) => o,
        Err(e) => return fail(&format!("{}: {e}", super::name(request))),
    };
    let policy = &evaluator.policy;
    if as_json {
        let mut doc = verdict_json(policy, &outcome);
        doc.insert("status".into(), json!(outcome.status));
        doc.insert("reply".into(), json!(outcome.reply_body.as_deref().map(json_or_text)));
        doc.insert("explanation".into(), json!(explain::explain(policy, &outcome)));
        let _ = writeln!(out, "{:#}", serde_json::Value::Object(doc));
    } else {
        out.push_str(&explain::explain(policy, &outcome));
    }
    ExitCode::SUCCESS
}

/// An answer file as `eval` is given it.
pub enum AnswerFile {
    /// `--answer`: a JSON document.
    Json(PathBuf),
    /// `--answer-text`: the exact body (a stream's events), with its content type.
    Text {
        path: PathBuf,
        content_type: Option<String>,
    },
}

impl AnswerFile {
    pub fn path(&self) -> &Path {
        match self {
            AnswerFile::Json(path) | AnswerFile::Text { path, .. } => path,
        }
    }

    fn read(self) -> Result<Answer, String> {
        match self {
            AnswerFile::Json(path) => parse(&path, None).map(Answer::Json),
            AnswerFile::Text { path, content_type } => Ok(Answer::Text {
                body: super::read(&path)?,
                content_type,
            }),
        }
    }
}

/// The decision on an answer to a request: the answer's verdict, what the client would
/// get instead (a refusal, a filtered list, a stream ending in the error event), and its
/// audit record.
pub fn eval_answer(
    policy: &Path,
    request: &Path,
    answer: AnswerFile,
    now: Option<u64>,
    as_json: bool,
    out: &mut String,
) -> ExitCode {
    let (evaluator, req) = match load_case(policy, request) {
        Ok(loaded) => loaded,
        Err(e) => return fail(&e),
    };
    let file = super::name(answer.path());
    let body = match answer.read() {
        Ok(b) => b,
        Err(e) => return fail(&e),
    };
    let outcome = match evaluator.run_answer(&req, &body, now_or_clock(now)) {
        Ok(o) => o,
        Err(e) => return fail(&format!("{file}: {e}")),
    };
    let d = &outcome.decision;
    // The bytes the engine puts in the answer's place, as text: a filtered list keeps the
    // server's key order and numbers (a re-serialised one would show another document
    // than the client gets), a stream its events.
    let replaced = outcome.reply_body.as_deref();
    if as_json {
        let mut doc = verdict_json(&evaluator.policy, &outcome);
        doc.insert("hidden".into(), json!(d.hidden));
        doc.insert("replaced_by".into(), json!(replaced));
        let _ = writeln!(out, "{:#}", serde_json::Value::Object(doc));
        return ExitCode::SUCCESS;
    }
    let _ = match &d.denial {
        Some(x) => writeln!(
            out,
            "answer: {} {} (rule {}): {}",
            outcome.verdict,
            x.reason.as_str(),
            x.rule,
            x.message
        ),
        // In monitor mode nothing is cut: the items are counted as they would have been hidden.
        None if d.hidden > 0 && evaluator.policy.mode == Mode::Monitor => writeln!(
            out,
            "answer: allow, {} listed item(s) the caller would not be shown (monitor mode: counted, not hidden)",
            d.hidden
        ),
        None if d.hidden > 0 => writeln!(out, "answer: allow, {} listed item(s) hidden from the caller", d.hidden),
        None => writeln!(out, "answer: allow"),
    };
    for c in &d.calls {
        let verdict = match (c.allowed, c.awaiting_grant) {
            (true, _) => "allowed",
            (false, true) => "not reached (its approval was never examined)",
            (false, false) => "refused",
        };
        let _ = writeln!(
            out,
            "  call {} ({}): {verdict}",
            c.tool,
            c.intent.as_deref().unwrap_or("not catalogued")
        );
    }
    let _ = match replaced {
        // Events end their own lines; a JSON body gets one to end the output's.
        Some(text) if text.ends_with('\n') => write!(out, "the client gets instead:\n{text}"),
        Some(text) => writeln!(out, "the client gets instead:\n{text}"),
        None => writeln!(out, "the client gets the answer as it is"),
    };
    let _ = writeln!(out, "audit: {}", outcome.audit);
    ExitCode::SUCCESS
}

pub fn readiness(
    policy: &Path,
    cases: &Path,
    now: Option<u64>,
    as_json: bool,
    file: Option<&Path>,
    out: &mut String,
) -> ExitCode {
    let evaluator = match load(policy) {
        Ok(e) => e,
        Err(e) => return fail(&e),
    };
    let corpus: readiness::Cases = match parse(cases, Some(CASES_SHAPE)) {
        Ok(c) => c,
        Err(e) => return fail(&e),
    };
    // A case that cannot stand for a request the plugin sees is a wrong case file, not a
    // wrong outcome: refused before anything is replayed. So is a name two cases share:
    // the report names a failed case by it.
    let mut named = std::collections::HashMap::new();
    for (i, c) in corpus.cases.iter().enumerate() {
        if let Some(first) = named.insert(c.name.as_str(), i) {
            return fail(&format!(
                "{} at cases[{i}]: the name {:?} is also that of cases[{first}]: give each case its own name, \
                 which the report names it by",
                super::name(cases),
                c.name
            ));
        }
        if let Some(problem) = evaluator.refuses(&c.request) {
            return fail(&format!(
                "{} at cases[{i}] ({:?}): {problem}",
                super::name(cases),
                c.name
            ));
        }
    }
    let findings = lint::lint(&evaluator.policy);
    let results = readiness::replay(&evaluator, &corpus, now_or_clock(now));
    let report = readiness::report(&evaluator.policy, findings, results);
    let text = if as_json {
        format!("{:#}\n", serde_json::to_value(&report).unwrap_or_default())
    } else {
        readiness::markdown(&report)
    };
    match file {
        Some(path) => {
            if let Err(e) = std::fs::write(path, &text) {
                return fail(&format!("cannot write {}: {e}", path.display()));
            }
            let verdict = if report.ready { "ready" } else { "NOT ready" };
            eprintln!("{verdict}: report written to {}", path.display());
        }
        None => out.push_str(&text),
    }
    if report.ready {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}
