//! Human approval for external impact: a signed, single-use grant bound to the exact
//! tool, subject and arguments, verified locally with no callout.

pub mod replay;

use crate::decision::{Denial, Reason};
use crate::identity::Principal;
use crate::policy::{Policy, Tool};
use crate::request::{Headers, Host, Repeated};
use serde_json::{Map, Value};

/// What the approval check found: the verdict, and for the audit and the client the
/// digest of the arguments and who approved.
#[derive(Debug)]
pub struct Grant {
    pub result: Result<(), Denial>,
    pub digest: Option<String>,
    pub approver: Option<String>,
    /// A grant that fits a call happening now, still to be consumed (`redeem`) once every
    /// other check of the request has passed.
    pub ticket: Option<Ticket>,
}

/// A verified grant's single-use key and how long it must be remembered.
#[derive(Debug, Clone)]
pub struct Ticket {
    jti: String,
    issued: u64,
    refused_after: u64,
}

const RULE: &str = "approval";

fn deny(reason: Reason, message: impl Into<String>) -> Result<(), Denial> {
    Err(Denial::new(reason, RULE, message))
}

/// The longest `approval.max_age_seconds` a policy may set. A used grant is remembered
/// until this long after its `iat` (or its `exp`, if sooner) whatever the policy says, so
/// a reload that raises `max_age_seconds` cannot make a spent grant acceptable again.
pub const MAX_AGE_CEILING: u64 = 86_400;

/// How a call's grant is used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Use {
    /// The action happens now: the grant must be fresh and is consumed (single use).
    Claim,
    /// An action taken earlier, carried in an LLM conversation's history: the grant must
    /// be genuine and fit the call exactly; its freshness and single use were settled when
    /// the action was new.
    Recall,
}

/// The refusal of an approval header sent more than once: which one a proxy or an
/// upstream reads is anyone's guess, so the way to send several is said.
pub const REPEATED_HEADER: &str =
    "the approval header appears more than once: send several grants comma-separated in one header";

/// At most this many grants in one approval header (a batch or a conversation with
/// several approved actions carries one per action, comma-separated).
pub const MAX_GRANTS: usize = 32;

/// The grants a request presents, each read and signature-checked once however many calls
/// look for theirs (a conversation may hold many).
#[derive(Debug)]
pub struct Presented {
    /// `Err`: the header itself is refused (repeated, too many grants).
    grants: Result<Vec<Signed>, Denial>,
    /// The `jti`s of grants an earlier call of this request took: one grant, one action.
    taken: Vec<String>,
}

/// A grant's claims once its signature verified, or why it did not.
type Signed = Result<Map<String, Value>, String>;

impl Presented {
    fn of(grants: Result<Vec<Signed>, Denial>) -> Presented {
        Presented {
            grants,
            taken: Vec::new(),
        }
    }

    pub fn read(policy: &Policy, headers: &Headers) -> Presented {
        let Some(cfg) = &policy.approval else {
            return Presented::of(Ok(Vec::new()));
        };
        let raw = match headers.one(&cfg.header) {
            Err(Repeated) => return Presented::of(Err(Denial::new(Reason::ApprovalInvalid, RULE, REPEATED_HEADER))),
            Ok(None) => return Presented::of(Ok(Vec::new())),
            Ok(Some(v)) => v,
        };
        let text = std::str::from_utf8(raw).unwrap_or("");
        let tokens: Vec<&str> = text.split(',').map(str::trim).filter(|t| !t.is_empty()).collect();
        if tokens.len() > MAX_GRANTS {
            return Presented::of(Err(Denial::new(
                Reason::ApprovalInvalid,
                RULE,
                format!("the approval header carries more than {MAX_GRANTS} grants"),
            )));
        }
        let grants = tokens
            .into_iter()
            .map(|t| cfg.keys.verify(t).map_err(|e| format!("approval rejected: {e}")))
            .collect();
        Presented::of(Ok(grants))
    }
}

/// Judges the grants a request presents for one `impact: external` call.
pub fn check(
    policy: &Policy,
    principal: &Principal,
    tool: &Tool,
    args: &Value,
    presented: &mut Presented,
    host: &dyn Host,
    (use_, gate): (Use, Gate),
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
                ticket: None,
            }
        }
    };
    let mut grant = Grant {
        result: Ok(()),
        digest: Some(digest),
        approver: None,
        ticket: None,
    };
    grant.result = judge(policy, principal, tool, presented, host, (use_, gate), &mut grant);
    grant
}

fn required(tool: &Tool, use_: Use) -> Result<(), Denial> {
    let also = match use_ {
        Use::Claim => "",
        Use::Recall => " (a call in the conversation's history carries the grant it was approved with)",
    };
    deny(
        Reason::ApprovalRequired,
        format!("{:?} has external impact and needs a human approval{also}", tool.name),
    )
}

/// The grants presented: the one that fits the call decides; when none does, the refusal
/// of the one meant for it (same tool and digest), else of the first. A grant already
/// taken by an earlier call of the same request does not fit again: one grant, one action.
fn judge(
    policy: &Policy,
    principal: &Principal,
    tool: &Tool,
    presented: &mut Presented,
    host: &dyn Host,
    (use_, gate): (Use, Gate),
    grant: &mut Grant,
) -> Result<(), Denial> {
    let grants = match &presented.grants {
        Err(denial) => return Err(denial.clone()),
        Ok(g) if g.is_empty() || policy.approval.is_none() => return required(tool, use_),
        Ok(g) => g,
    };
    let mut first: Option<(Result<(), Denial>, Option<String>)> = None;
    let mut meant: Option<(Result<(), Denial>, Option<String>)> = None;
    for claims in grants {
        let mut one = Grant {
            result: Ok(()),
            digest: grant.digest.clone(),
            approver: None,
            ticket: None,
        };
        let (mut result, fits) = match claims {
            Ok(claims) => verify(policy, principal, tool, claims, host, use_, &mut one),
            Err(e) => (deny(Reason::ApprovalInvalid, e.clone()), false),
        };
        if one.ticket.as_ref().is_some_and(|t| presented.taken.contains(&t.jti)) {
            result = deny(
                Reason::ApprovalReplayed,
                "this approval already covers another call of the request; it runs one action, once",
            );
        }
        // A call happening now passes over a grant already spent at its gate for another
        // the header carries (clients list grants in any order).
        let spent = |t: &Ticket| used_for(policy, host, &t.jti, gate);
        if result.is_ok() && use_ == Use::Claim && one.ticket.as_ref().is_some_and(spent) {
            result = deny(Reason::ApprovalReplayed, "approval has already been used");
        }
        if result.is_ok() {
            grant.approver = one.approver;
            grant.ticket = one.ticket;
            presented.taken.extend(grant.ticket.as_ref().map(|t| t.jti.clone()));
            return Ok(());
        }
        if fits && meant.is_none() {
            meant = Some((result, one.approver));
        } else if first.is_none() {
            first = Some((result, one.approver));
        }
    }
    // A grant for another call names an approver who never saw this one: only the grant
    // meant for the call names its approver on the refusal.
    let (result, approver) = match (meant, first) {
        (Some(meant), _) => meant,
        (None, Some((result, _))) => (result, None),
        (None, None) => (required(tool, use_), None),
    };
    grant.approver = approver;
    result
}

/// One grant (its signature already verified) against one call. The flag says whether
/// the grant names this call (its tool and arguments), so the client hears why the grant
/// meant for it was refused.
fn verify(
    policy: &Policy,
    principal: &Principal,
    tool: &Tool,
    claims: &Map<String, Value>,
    host: &dyn Host,
    use_: Use,
    grant: &mut Grant,
) -> (Result<(), Denial>, bool) {
    let Some(cfg) = &policy.approval else {
        return (required(tool, use_), false);
    };
    let text = |name: &str| claims.get(name).and_then(Value::as_str).filter(|s| !s.is_empty());
    let fits = text("tool") == Some(tool.name.as_str()) && text("args_digest") == grant.digest.as_deref();
    let fail = |reason, message: &str| (deny(reason, message.to_string()), fits);
    if text("iss") != Some(cfg.issuer.as_str()) {
        return fail(
            Reason::ApprovalInvalid,
            "approval was not issued by the configured approval service",
        );
    }
    // This gateway alone: a grant addressed to several would run once at each of them.
    let aud_ok = match claims.get("aud") {
        Some(Value::String(a)) => *a == cfg.audience,
        Some(Value::Array(l)) => matches!(l.as_slice(), [Value::String(a)] if *a == cfg.audience),
        _ => false,
    };
    if !aud_ok {
        return fail(Reason::ApprovalInvalid, "approval audience is not this gateway (alone)");
    }
    // An approver of blank text names nobody: the audit record must name a person.
    let approver = text("approver").filter(|a| !a.trim().is_empty());
    let (Some(jti), Some(approver)) = (text("jti"), approver) else {
        return fail(Reason::ApprovalInvalid, "approval must name its jti and approver");
    };
    grant.approver = Some(approver.to_string());
    let (Some(iat), Some(exp)) = (
        claims.get("iat").and_then(Value::as_u64),
        claims.get("exp").and_then(Value::as_u64),
    ) else {
        return fail(Reason::ApprovalInvalid, "approval must carry whole-second iat and exp");
    };
    let now = host.now();
    let skew = policy.identity.skew;
    if iat > now.saturating_add(skew) {
        return fail(Reason::ApprovalInvalid, "approval is issued in the future");
    }
    // An approval for a later window ("run this tomorrow") does not run before it.
    match claims.get("nbf") {
        None => {}
        Some(v) => match v.as_u64() {
            Some(nbf) if nbf > exp => {
                return fail(
                    Reason::ApprovalInvalid,
                    "approval expires before it is valid (nbf after exp)",
                )
            }
            Some(nbf) if nbf > now.saturating_add(skew) => {
                return fail(Reason::ApprovalInvalid, "approval is not valid yet (nbf)")
            }
            Some(_) => {}
            None => return fail(Reason::ApprovalInvalid, "approval nbf must be whole seconds"),
        },
    }
    let stale = now >= exp || now.saturating_sub(iat) > cfg.max_age;
    if use_ == Use::Claim && stale {
        return fail(Reason::ApprovalExpired, "approval has expired");
    }
    if text("sub") != Some(principal.subject.as_str()) {
        return fail(Reason::ApprovalMismatch, "approval was granted for another subject");
    }
    // A subject is named by its identity provider: with several trusted, alice of a
    // partner's provider is not the alice a human approved.
    let issuer = principal.token_issuer();
    match text("sub_iss") {
        Some(named) if Some(named) != issuer => {
            return fail(
                Reason::ApprovalMismatch,
                "approval was granted for a subject of another identity provider",
            )
        }
        None if policy.identity.several_issuers() => {
            return fail(
                Reason::ApprovalMismatch,
                "approval must name its subject's identity provider (sub_iss): this gateway trusts several",
            )
        }
        _ => {}
    }
    // One person may act in several tenants under one identity provider (organisations of
    // one account): a grant naming a tenant is that tenant's.
    if let Some(named) = text("tenant") {
        if principal.tenant.as_deref() != Some(named) {
            return fail(Reason::ApprovalMismatch, "approval was granted for another tenant");
        }
    } else if claims.get("tenant").is_some_and(|t| !t.is_null()) {
        return fail(Reason::ApprovalInvalid, "approval tenant must be a non-empty string");
    }
    if text("tool") != Some(tool.name.as_str()) {
        return fail(Reason::ApprovalMismatch, "approval was granted for another tool");
    }
    if !fits {
        return fail(Reason::ApprovalMismatch, "approval was granted for other arguments");
    }
    // A call from the conversation's history whose grant is still fresh may be reported
    // for the first time (the client put it there, or sent parallel calls back
    // interleaved with their outputs): its grant is spent now unless it already was
    // (`redeem_recalled`). A stale one was approved long ago and is only checked.
    if use_ == Use::Claim || !stale {
        // Remembered until no policy could accept it again: its exp, or the longest max_age
        // any policy may set after iat if that comes first (a reload may raise max_age), so
        // a grant minted with a year-long exp does not hold a slot for a year.
        grant.ticket = Some(Ticket {
            jti: jti.to_string(),
            issued: iat,
            refused_after: exp.min(iat.saturating_add(MAX_AGE_CEILING).saturating_add(1)),
        });
    }
    (Ok(()), true)
}

/// Where a grant is consumed. Each gate accepts a grant once: an action is approved once
/// to run it (MCP `tools/call`, a REST action, a remote MCP call a Responses request
/// approves) and once to report a call the client ran in an LLM conversation, so an
/// application that runs the tool through aigate and then tells the model needs one
/// grant, not two; running the action a second time needs another.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Gate {
    Action,
    Conversation,
}

/// Consumes a verified grant at a gate: the first presentation wins across every worker;
/// any later one is `approval_replayed`. Called last, so a grant is spent only by a request
/// that everything else allows.
pub fn redeem(policy: &Policy, host: &dyn Host, ticket: &Ticket, gate: Gate) -> Result<(), Denial> {
    let scope = replay_scope(policy, gate)?;
    let (jti, iat, exp, now) = (&ticket.jti, ticket.issued, ticket.refused_after, host.now());
    // The record of spent grants begins at a restart and refuses grants issued before
    // that: sound only if no grant is spent before its iat on this clock. One from an
    // approval service whose clock runs ahead waits (nothing is spent meanwhile).
    if iat > now {
        return deny(
            Reason::ApprovalInvalid,
            format!(
                "approval is issued {} s in this gateway's future (the approval service's clock is ahead); retry then",
                iat - now
            ),
        );
    }
    // An older Envoy process (hot restart) or listener (drain) keeps its own record for a
    // while after this one began: a grant issued meanwhile may be spent there too.
    let overlap_ends = policy.approval.as_ref().map_or(0, |a| a.restart_overlap);
    if overlap_ends > 0 {
        let began = replay::began(host.shared(), now).unwrap_or(now);
        let from = began.saturating_add(overlap_ends);
        if iat >= began && iat < from {
            return deny(
                Reason::ApprovalExpired,
                format!(
                    "approval was issued while an older gateway process could still accept it \
                     (approval.restart_overlap_seconds); ask for a new approval in {} s",
                    from.saturating_sub(now).max(1)
                ),
            );
        }
    }
    if gate == Gate::Action && used_for(policy, host, jti, Gate::Conversation) {
        return deny(
            Reason::ApprovalReplayed,
            "approval was used already: a conversation reported its call as run",
        );
    }
    match replay::claim(host.shared(), &scope, jti, iat, exp, now) {
        Ok(replay::Claim::First) => Ok(()),
        Ok(replay::Claim::Replayed) => deny(Reason::ApprovalReplayed, "approval has already been used"),
        Ok(replay::Claim::Predates) => deny(
            Reason::ApprovalExpired,
            "approval was issued before this gateway began recording used grants (it restarted); ask for a new approval",
        ),
        Err(e) => Err(Denial::new(Reason::InternalError, "approval.replay", e)),
    }
}

/// Consumes the grant of a call from the conversation's history on its first report:
/// `Ok(true)` when it is spent now, `Ok(false)` when it already was (an earlier request
/// reported the call), predates the record, or is not yet due on this clock: a call in
/// history is not refused for having been reported before.
pub fn redeem_recalled(policy: &Policy, host: &dyn Host, ticket: &Ticket) -> Result<bool, Denial> {
    let scope = replay_scope(policy, Gate::Conversation)?;
    let now = host.now();
    if ticket.issued > now {
        return Ok(false);
    }
    match replay::claim(
        host.shared(),
        &scope,
        &ticket.jti,
        ticket.issued,
        ticket.refused_after,
        now,
    ) {
        Ok(replay::Claim::First) => Ok(true),
        Ok(replay::Claim::Replayed | replay::Claim::Predates) => Ok(false),
        Err(e) => Err(Denial::new(Reason::InternalError, "approval.replay", e)),
    }
}

/// Undoes [`redeem`] for a request refused after it: its grant was not used. Best effort;
/// `false` when the grant could not be given back (it then stays spent: fail closed).
pub fn unredeem(policy: &Policy, host: &dyn Host, ticket: &Ticket, gate: Gate) -> bool {
    replay_scope(policy, gate)
        .is_ok_and(|scope| matches!(replay::release(host.shared(), &scope, &ticket.jti), Ok(true)))
}

/// Grants are single-use per issuer and per gate.
/// Whether grant `jti` can no longer be used at `gate`: spent there, or, for running an
/// action, reported by a conversation as a call the client ran (it cannot run again
/// through a tool; the other way round, run through aigate and then reported, is the one
/// grant's whole life).
fn used_for(policy: &Policy, host: &dyn Host, jti: &str, gate: Gate) -> bool {
    let spent_at = |g| replay_scope(policy, g).is_ok_and(|scope| replay::spent(host.shared(), &scope, jti, host.now()));
    spent_at(gate) || (gate == Gate::Action && spent_at(Gate::Conversation))
}

fn replay_scope(policy: &Policy, gate: Gate) -> Result<String, Denial> {
    let Some(cfg) = &policy.approval else {
        return Err(Denial::new(
            Reason::InternalError,
            "approval",
            "no approval service configured",
        ));
    };
    Ok(match gate {
        Gate::Action => cfg.issuer.clone(),
        Gate::Conversation => format!("{}#conversation", cfg.issuer),
    })
}

/// The approval-request URL for a denied call, from the configured template.
/// `{tenant}` is the caller's tenant, empty when it has none.
pub fn request_url(policy: &Policy, tool: &str, digest: &str, p: &Principal) -> Option<String> {
    let template = policy.approval.as_ref()?.request_url.as_ref()?;
    Some(
        template
            .replace("{tool}", &url_escape(tool))
            .replace("{digest}", &url_escape(digest))
            .replace("{subject}", &url_escape(&p.subject))
            .replace("{issuer}", &url_escape(p.token_issuer().unwrap_or_default()))
            .replace("{tenant}", &url_escape(p.tenant.as_deref().unwrap_or_default())),
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
