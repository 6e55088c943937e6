//! Metrics through the host. Every label combination is defined once per worker in
//! `on_configure`, so a request only increments (one host call per counter).

use crate::audit::{impact_label, protocol_label, verdict};
use crate::config::{Impact, Protocol};
use crate::decision::Reason;
use crate::engine::Decision;
use crate::metrics::{self, tagged};
use crate::policy::Policy;
use proxy_wasm::hostcalls;
use proxy_wasm::types::MetricType;
use std::collections::HashMap;

pub struct Meters {
    ids: HashMap<String, u32>,
    body_bytes: Option<u32>,
}

const PROTOCOLS: [Option<Protocol>; 5] = [
    Some(Protocol::Mcp),
    Some(Protocol::OpenaiChat),
    Some(Protocol::OpenaiResponses),
    Some(Protocol::AnthropicMessages),
    None,
];
const VERDICTS: [&str; 3] = ["allow", "deny", "would_deny"];
const IMPACTS: [Impact; 3] = [Impact::Read, Impact::Write, Impact::External];
const APPROVAL_RESULTS: [&str; 7] = [
    "accepted",
    "approval_required",
    "approval_invalid",
    "approval_expired",
    "approval_replayed",
    "approval_mismatch",
    "internal_error",
];

fn define(kind: MetricType, name: String, ids: &mut HashMap<String, u32>) {
    if let Ok(id) = hostcalls::define_metric(kind, &name) {
        ids.insert(name, id);
    }
}

fn requests_name(protocol: Option<Protocol>, verdict: &str, reason: &str) -> String {
    tagged(
        metrics::REQUESTS,
        &[
            ("protocol", protocol_label(protocol)),
            ("decision", verdict),
            ("reason", reason),
        ],
    )
}

impl Meters {
    pub fn define(policy: &Policy) -> Meters {
        let mut ids = HashMap::new();
        let c = MetricType::Counter;
        for p in PROTOCOLS {
            define(c, requests_name(p, "allow", "none"), &mut ids);
            for v in ["deny", "would_deny"] {
                for r in Reason::ALL {
                    define(c, requests_name(p, v, r.as_str()), &mut ids);
                }
            }
        }
        for i in IMPACTS {
            for v in VERDICTS {
                define(
                    c,
                    tagged(metrics::TOOL_CALLS, &[("impact", impact_label(i)), ("decision", v)]),
                    &mut ids,
                );
            }
        }
        let source = policy.identity.token.label();
        for r in std::iter::once("ok").chain(Reason::ALL.iter().filter(|r| r.is_identity()).map(|r| r.as_str())) {
            define(
                c,
                tagged(metrics::IDENTITY, &[("source", source), ("result", r)]),
                &mut ids,
            );
        }
        for r in APPROVAL_RESULTS {
            define(c, tagged(metrics::APPROVALS, &[("result", r)]), &mut ids);
        }
        define(c, tagged(metrics::CONFIG_LOADS, &[("result", "ok")]), &mut ids);
        let body_bytes = hostcalls::define_metric(MetricType::Histogram, metrics::BODY_BYTES).ok();
        Meters { ids, body_bytes }
    }

    fn inc(&self, name: &str) {
        if let Some(id) = self.ids.get(name) {
            let _ = hostcalls::increment_metric(*id, 1);
        }
    }

    pub fn config_load(&self, ok: bool) {
        self.inc(&tagged(
            metrics::CONFIG_LOADS,
            &[("result", if ok { "ok" } else { "error" })],
        ));
    }

    /// A refused configuration has no `Meters`: define and count directly.
    pub fn config_load_failed() {
        let name = tagged(metrics::CONFIG_LOADS, &[("result", "error")]);
        if let Ok(id) = hostcalls::define_metric(MetricType::Counter, &name) {
            let _ = hostcalls::increment_metric(id, 1);
        }
    }

    pub fn record(&self, policy: &Policy, d: &Decision) {
        let v = verdict(policy, d);
        let reason = d.denial.as_ref().map_or("none", |x| x.reason.as_str());
        self.inc(&requests_name(d.protocol, v, reason));
        for call in &d.calls {
            if let Some(impact) = call.impact {
                let cv = if call.allowed { "allow" } else { v };
                self.inc(&tagged(
                    metrics::TOOL_CALLS,
                    &[("impact", impact_label(impact)), ("decision", cv)],
                ));
                // Counted when the grant was examined (the call got that far).
                if impact == Impact::External && call.args_digest.is_some() {
                    let result = match (&d.denial, call.allowed) {
                        (_, true) => "accepted",
                        (Some(x), false) => x.reason.as_str(),
                        (None, false) => "internal_error",
                    };
                    self.inc(&tagged(metrics::APPROVALS, &[("result", result)]));
                }
            }
        }
        if let Some((source, result)) = d.identity {
            self.inc(&tagged(metrics::IDENTITY, &[("source", source), ("result", result)]));
        }
        if let (Some(id), Some(n)) = (self.body_bytes, d.body_bytes) {
            let _ = hostcalls::record_metric(id, n as u64);
        }
    }
}
