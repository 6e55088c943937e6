//! Metrics through the host. Every label combination is defined once per worker in
//! `on_configure` and its id kept in a table indexed by the label values, so a request
//! builds no names and looks nothing up: it indexes and increments (one host call per
//! counter).

use crate::audit::{impact_label, protocol_label, verdict};
use crate::config::{Impact, Protocol};
use crate::decision::Reason;
use crate::engine::{Decision, Stage};
use crate::metrics::{self, tagged};
use crate::policy::Policy;
use proxy_wasm::hostcalls;
use proxy_wasm::types::MetricType;

const PROTOCOLS: [Option<Protocol>; 6] = [
    Some(Protocol::Mcp),
    Some(Protocol::OpenaiChat),
    Some(Protocol::OpenaiResponses),
    Some(Protocol::AnthropicMessages),
    Some(Protocol::Action),
    None,
];
/// Protocols whose answers are judged, and the reasons an answer can be refused for.
/// Protocols whose answers aigate judges: REST actions for where their answers send the
/// client (a redirect off the origin).
const ANSWERING: [Protocol; 5] = [
    Protocol::Mcp,
    Protocol::OpenaiChat,
    Protocol::OpenaiResponses,
    Protocol::AnthropicMessages,
    Protocol::Action,
];
const ANSWER_DENIALS: [Reason; 9] = [
    Reason::ToolUnknown,
    // Another caller's task, a redirect off the origin.
    Reason::DataBoundary,
    Reason::ScopeMissing,
    Reason::ArgumentViolation,
    Reason::BindingMismatch,
    Reason::BodyMalformed,
    Reason::BodyTooLarge,
    Reason::EncodingUnsupported,
    Reason::InternalError,
];
const VERDICTS: [&str; 3] = ["allow", "deny", "would_deny"];
const IMPACTS: [Impact; 3] = [Impact::Read, Impact::Write, Impact::External];
const APPROVAL_DENIALS: [Reason; 6] = [
    Reason::ApprovalRequired,
    Reason::ApprovalInvalid,
    Reason::ApprovalExpired,
    Reason::ApprovalReplayed,
    Reason::ApprovalMismatch,
    Reason::InternalError,
];

/// Slots per reason table: one per reason, plus [`NO_REASON`] for `none`/`ok`/`accepted`.
const NO_REASON: usize = Reason::ALL.len();
type ByReason = [Option<u32>; NO_REASON + 1];

pub struct Meters {
    /// `aigate_requests_total` by `[protocol][verdict][reason]`.
    requests: [[ByReason; 3]; PROTOCOLS.len()],
    /// `aigate_answers_total` by `[protocol][verdict][reason]` (protocols as in `ANSWERING`).
    answers: [[ByReason; 3]; ANSWERING.len()],
    /// `aigate_tool_calls_total` by `[impact][decision]`.
    tool_calls: [[Option<u32>; 3]; 3],
    /// `aigate_identity_total` by result (the source is the policy's).
    identity: ByReason,
    /// `aigate_approvals_total` by result.
    approvals: ByReason,
    config_ok: Option<u32>,
    body_bytes: Option<u32>,
}

fn counter(name: &str) -> Option<u32> {
    hostcalls::define_metric(MetricType::Counter, name).ok()
}

fn protocol_index(p: Option<Protocol>) -> usize {
    match p {
        Some(Protocol::Mcp) => 0,
        Some(Protocol::OpenaiChat) => 1,
        Some(Protocol::OpenaiResponses) => 2,
        Some(Protocol::AnthropicMessages) => 3,
        Some(Protocol::Action) => 4,
        None => 5,
    }
}

fn impact_index(i: Impact) -> usize {
    match i {
        Impact::Read => 0,
        Impact::Write => 1,
        Impact::External => 2,
    }
}

fn reason_slot(r: Option<Reason>) -> usize {
    r.map_or(NO_REASON, Reason::index)
}

// Tables are filled and read through `get`: an index bug loses a count, never traps the VM.
fn at(table: &ByReason, slot: usize) -> Option<u32> {
    table.get(slot).copied().flatten()
}

fn put(table: &mut ByReason, slot: usize, id: Option<u32>) {
    if let Some(s) = table.get_mut(slot) {
        *s = id;
    }
}

fn set(requests: &mut [[ByReason; 3]; PROTOCOLS.len()], [p, v, r]: [usize; 3], id: Option<u32>) {
    if let Some(row) = requests.get_mut(p).and_then(|by_verdict| by_verdict.get_mut(v)) {
        put(row, r, id);
    }
}

impl Meters {
    pub fn define(policy: &Policy) -> Meters {
        // Series for what this policy can produce only: the protocols of its routes (and
        // none, for requests no route matched), and `deny` or `would_deny` by its mode. A
        // pod exports tens of series, not hundreds.
        let used = |p: Option<Protocol>| p.is_none_or(|p| policy.routes.iter().any(|r| r.protocol == p));
        let refusal = match policy.mode {
            crate::config::Mode::Enforce => 1,
            crate::config::Mode::Monitor => 2,
        };
        let verdicts = || {
            VERDICTS
                .iter()
                .enumerate()
                .filter(move |(vi, _)| *vi == 0 || *vi == refusal)
        };
        let mut requests = [[[None; NO_REASON + 1]; 3]; PROTOCOLS.len()];
        for p in PROTOCOLS.into_iter().filter(|p| used(*p)) {
            let name = |v: &str, r: &str| {
                tagged(
                    metrics::REQUESTS,
                    &[("protocol", protocol_label(p)), ("decision", v), ("reason", r)],
                )
            };
            for (vi, v) in verdicts() {
                // An allow has no reason; a denial always has one.
                let reasons: Vec<Option<Reason>> = match vi {
                    0 => vec![None],
                    _ => Reason::ALL.into_iter().map(Some).collect(),
                };
                for r in reasons {
                    set(
                        &mut requests,
                        [protocol_index(p), vi, reason_slot(r)],
                        counter(&name(v, r.map_or("none", Reason::as_str))),
                    );
                }
            }
        }
        let mut answers = [[[None; NO_REASON + 1]; 3]; ANSWERING.len()];
        for (pi, p) in ANSWERING.into_iter().enumerate().filter(|(_, p)| used(Some(*p))) {
            for (vi, v) in verdicts() {
                let reasons: Vec<Option<Reason>> = match vi {
                    0 => vec![None],
                    _ => ANSWER_DENIALS.into_iter().map(Some).collect(),
                };
                for r in reasons {
                    let labels = [
                        ("protocol", protocol_label(Some(p))),
                        ("decision", *v),
                        ("reason", r.map_or("none", Reason::as_str)),
                    ];
                    if let Some(row) = answers.get_mut(pi).and_then(|by_verdict| by_verdict.get_mut(vi)) {
                        put(row, reason_slot(r), counter(&tagged(metrics::ANSWERS, &labels)));
                    }
                }
            }
        }
        let mut tool_calls = [[None; 3]; 3];
        for i in IMPACTS {
            for (vi, v) in verdicts() {
                let id = counter(&tagged(
                    metrics::TOOL_CALLS,
                    &[("impact", impact_label(i)), ("decision", v)],
                ));
                if let Some(slot) = tool_calls.get_mut(impact_index(i)).and_then(|row| row.get_mut(vi)) {
                    *slot = id;
                }
            }
        }
        let source = policy.identity.token.label();
        let mut identity = [None; NO_REASON + 1];
        let results = std::iter::once(None).chain(Reason::ALL.into_iter().filter(|r| r.is_identity()).map(Some));
        for r in results {
            let label = r.map_or("ok", Reason::as_str);
            put(
                &mut identity,
                reason_slot(r),
                counter(&tagged(metrics::IDENTITY, &[("source", source), ("result", label)])),
            );
        }
        let mut approvals = [None; NO_REASON + 1];
        for r in std::iter::once(None).chain(APPROVAL_DENIALS.into_iter().map(Some)) {
            let label = r.map_or("accepted", Reason::as_str);
            put(
                &mut approvals,
                reason_slot(r),
                counter(&tagged(metrics::APPROVALS, &[("result", label)])),
            );
        }
        Meters {
            requests,
            answers,
            tool_calls,
            identity,
            approvals,
            config_ok: counter(&tagged(metrics::CONFIG_LOADS, &[("result", "ok")])),
            body_bytes: hostcalls::define_metric(MetricType::Histogram, metrics::BODY_BYTES).ok(),
        }
    }

    fn inc(id: Option<u32>) {
        if let Some(id) = id {
            let _ = hostcalls::increment_metric(id, 1);
        }
    }

    pub fn config_loaded(&self) {
        Meters::inc(self.config_ok);
    }

    /// A refused configuration has no `Meters`: define and count directly.
    pub fn config_load_failed() {
        Meters::inc(counter(&tagged(metrics::CONFIG_LOADS, &[("result", "error")])));
    }

    pub fn record(&self, policy: &Policy, d: &Decision) {
        let name = verdict(policy, d);
        let v = VERDICTS.iter().position(|x| *x == name).unwrap_or(1);
        let reason = d.denial.as_ref().map(|x| x.reason);
        if d.stage == Stage::Answer {
            let p = ANSWERING.iter().position(|p| Some(*p) == d.protocol);
            let row = p
                .and_then(|p| self.answers.get(p))
                .and_then(|by_verdict| by_verdict.get(v));
            Meters::inc(row.and_then(|by_reason| at(by_reason, reason_slot(reason))));
            return;
        }
        Meters::inc(
            self.requests
                .get(protocol_index(d.protocol))
                .and_then(|by_verdict| by_verdict.get(v))
                .and_then(|by_reason| by_reason.get(reason_slot(reason)))
                .copied()
                .flatten(),
        );
        for call in &d.calls {
            if let Some(impact) = call.impact {
                let cv = if call.allowed { 0 } else { v };
                Meters::inc(
                    self.tool_calls
                        .get(impact_index(impact))
                        .and_then(|row| row.get(cv))
                        .copied()
                        .flatten(),
                );
                // Counted when the grant was examined (the call got that far), and not for
                // a grant that held in a request refused for something else: it was given
                // back unused, and counts when it is used.
                let unused = call.allowed && d.denial.is_some();
                if impact == Impact::External && call.args_digest.is_some() && !unused {
                    let result = match (reason, call.allowed) {
                        (_, true) => None,
                        (Some(r), false) => Some(r),
                        (None, false) => Some(Reason::InternalError),
                    };
                    Meters::inc(at(&self.approvals, reason_slot(result)));
                }
            }
        }
        if let Some(outcome) = d.identity {
            Meters::inc(at(&self.identity, reason_slot(outcome.err())));
        }
        if let (Some(id), Some(n)) = (self.body_bytes, d.body_bytes) {
            let _ = hostcalls::record_metric(id, n as u64);
        }
    }
}
