//! Metric names. Labels are encoded in the name as `key=.=value;.;` pairs (the Istio
//! convention Envoy's `stats_tags` can extract); every label value comes from a closed
//! set, so tool names, subjects and paths never become series.

pub const REQUESTS: &str = "aigate_requests_total";
pub const TOOL_CALLS: &str = "aigate_tool_calls_total";
pub const APPROVALS: &str = "aigate_approvals_total";
pub const IDENTITY: &str = "aigate_identity_total";
pub const CONFIG_LOADS: &str = "aigate_config_loads_total";
/// Model answers judged (`model_calls: judge`), by protocol, decision and reason.
pub const ANSWERS: &str = "aigate_answers_total";
pub const BODY_BYTES: &str = "aigate_request_body_bytes";

/// `name` with `labels` encoded in front of it.
pub fn tagged(name: &str, labels: &[(&str, &str)]) -> String {
    let mut s = String::with_capacity(name.len() + labels.len() * 24);
    for (k, v) in labels {
        s.push_str(k);
        s.push_str("=.=");
        s.push_str(v);
        s.push_str(";.;");
    }
    s.push_str(name);
    s
}

#[cfg(test)]
mod tests {
    #[test]
    fn encodes_labels_in_order() {
        assert_eq!(
            super::tagged(super::REQUESTS, &[("decision", "deny"), ("reason", "scope_missing")]),
            "decision=.=deny;.;reason=.=scope_missing;.;aigate_requests_total"
        );
    }
}
