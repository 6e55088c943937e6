//! Decisions: one per request, `allow` or `deny` with a reason from the spec's closed set.

use std::fmt;

/// Why a request was denied. One variant per reason code of the spec; the names are
/// the wire names users script against (audit, metrics, error bodies).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Reason {
    Unauthenticated,
    TokenInvalid,
    TokenExpired,
    TokenLifetimeExceeded,
    WorkloadUntrusted,
    SessionMismatch,
    ScopeMissing,
    ToolUnknown,
    ArgumentViolation,
    BindingMismatch,
    ApprovalRequired,
    ApprovalInvalid,
    ApprovalExpired,
    ApprovalReplayed,
    ApprovalMismatch,
    DataBoundary,
    ModelNotAllowed,
    ToolOfferDenied,
    BodyTooLarge,
    BodyMalformed,
    EncodingUnsupported,
    RouteUnmatched,
    InternalError,
}

impl Reason {
    pub const ALL: [Reason; 23] = [
        Reason::Unauthenticated,
        Reason::TokenInvalid,
        Reason::TokenExpired,
        Reason::TokenLifetimeExceeded,
        Reason::WorkloadUntrusted,
        Reason::SessionMismatch,
        Reason::ScopeMissing,
        Reason::ToolUnknown,
        Reason::ArgumentViolation,
        Reason::BindingMismatch,
        Reason::ApprovalRequired,
        Reason::ApprovalInvalid,
        Reason::ApprovalExpired,
        Reason::ApprovalReplayed,
        Reason::ApprovalMismatch,
        Reason::DataBoundary,
        Reason::ModelNotAllowed,
        Reason::ToolOfferDenied,
        Reason::BodyTooLarge,
        Reason::BodyMalformed,
        Reason::EncodingUnsupported,
        Reason::RouteUnmatched,
        Reason::InternalError,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Unauthenticated => "unauthenticated",
            Reason::TokenInvalid => "token_invalid",
            Reason::TokenExpired => "token_expired",
            Reason::TokenLifetimeExceeded => "token_lifetime_exceeded",
            Reason::WorkloadUntrusted => "workload_untrusted",
            Reason::SessionMismatch => "session_mismatch",
            Reason::ScopeMissing => "scope_missing",
            Reason::ToolUnknown => "tool_unknown",
            Reason::ArgumentViolation => "argument_violation",
            Reason::BindingMismatch => "binding_mismatch",
            Reason::ApprovalRequired => "approval_required",
            Reason::ApprovalInvalid => "approval_invalid",
            Reason::ApprovalExpired => "approval_expired",
            Reason::ApprovalReplayed => "approval_replayed",
            Reason::ApprovalMismatch => "approval_mismatch",
            Reason::DataBoundary => "data_boundary",
            Reason::ModelNotAllowed => "model_not_allowed",
            Reason::ToolOfferDenied => "tool_offer_denied",
            Reason::BodyTooLarge => "body_too_large",
            Reason::BodyMalformed => "body_malformed",
            Reason::EncodingUnsupported => "encoding_unsupported",
            Reason::RouteUnmatched => "route_unmatched",
            Reason::InternalError => "internal_error",
        }
    }

    /// Identity failures answer 401 with a `WWW-Authenticate` challenge.
    pub fn is_identity(self) -> bool {
        matches!(
            self,
            Reason::Unauthenticated
                | Reason::TokenInvalid
                | Reason::TokenExpired
                | Reason::TokenLifetimeExceeded
                | Reason::WorkloadUntrusted
                | Reason::SessionMismatch
        )
    }

    /// Refusals of a missing or bad human approval.
    pub fn is_approval(self) -> bool {
        matches!(
            self,
            Reason::ApprovalRequired
                | Reason::ApprovalInvalid
                | Reason::ApprovalExpired
                | Reason::ApprovalReplayed
                | Reason::ApprovalMismatch
        )
    }

    /// Index into `ALL`, for fixed-size per-reason tables (metric ids).
    pub fn index(self) -> usize {
        self as usize
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A denial: the reason code, the rule that produced it, and a message for the caller.
/// The message never contains argument values, tokens or secrets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Denial {
    pub reason: Reason,
    pub rule: String,
    pub message: String,
    /// For `scope_missing`: the scope(s) that would grant the action.
    pub required_scope: Option<String>,
    /// On MCP routes, the JSON-RPC error code the protocol itself gives this refusal (a
    /// mirror header that disagrees with the body): the reply is then a JSON-RPC error with
    /// the reason's HTTP status, as an MCP server would answer.
    pub jsonrpc_code: Option<i64>,
    /// The HTTP status a protocol gives this refusal in place of the reason's: MCP's `404`
    /// for a session the server does not know, which has clients open a new one.
    pub status: Option<u32>,
}

impl Denial {
    pub fn new(reason: Reason, rule: impl Into<String>, message: impl Into<String>) -> Self {
        Denial {
            reason,
            rule: rule.into(),
            message: message.into(),
            required_scope: None,
            jsonrpc_code: None,
            status: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reason_table_is_complete_and_ordered() {
        for (i, r) in Reason::ALL.iter().enumerate() {
            assert_eq!(r.index(), i, "{r}");
        }
        let mut names: Vec<_> = Reason::ALL.iter().map(|r| r.as_str()).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), Reason::ALL.len());
    }
}
