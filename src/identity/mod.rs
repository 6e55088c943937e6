//! Who is calling, on whose behalf: the principal behind a request.

pub mod cache;
pub mod metadata;
mod token;

use crate::decision::{Denial, Reason};
use crate::policy::Policy;
use crate::request::{Headers, Host, Repeated};
use cache::Claims;
use serde_json::{Map, Value};
use std::borrow::Cow;

#[derive(Debug, Clone, Default)]
pub struct Principal {
    /// The user or customer the agent acts for.
    pub subject: String,
    /// The calling agent (SPIFFE ID or client id).
    pub workload: Option<String>,
    pub tenant: Option<String>,
    /// Scopes as carried by the token (before the workload ceiling).
    pub scopes: Vec<String>,
    /// Index of the workload ceiling that applies, if ceilings are configured.
    pub ceiling: Option<usize>,
    /// The scope ceiling of the token's issuer (index in `identity.issuer_scopes`), if it
    /// has one.
    pub issuer: Option<usize>,
    /// Session presented by the request (when `bind_session` is configured).
    pub session: Option<String>,
    pub exp: Option<u64>,
    pub iat: Option<u64>,
    /// Shared with the worker's token cache: a cached token costs no copy.
    pub claims: Claims,
}

impl Principal {
    /// Effective grant: the token's scopes grant `wanted` and so does the workload ceiling
    /// (the intersection, judged on the thing wanted so wildcards intersect correctly).
    pub fn grants(&self, policy: &Policy, wanted: &str) -> bool {
        let token = self.scopes.iter().any(|s| policy.scope_grants(s, wanted));
        let ceiling = match self.ceiling.and_then(|i| policy.ceilings.get(i)) {
            Some(c) => c.scopes.iter().any(|s| policy.scope_grants(s, wanted)),
            None => policy.ceilings.is_empty(),
        };
        let issuer = self
            .issuer
            .and_then(|i| policy.identity.issuer_scopes.get(i))
            .is_none_or(|(_, scopes)| scopes.iter().any(|s| policy.scope_grants(s, wanted)));
        token && ceiling && issuer
    }

    /// The `iss` of the caller's token, if it names one.
    pub fn token_issuer(&self) -> Option<&str> {
        self.claims.get("iss").and_then(Value::as_str)
    }

    /// Value for a `{name}` template hole or a `bind` claim: `tenant`, `subject` and
    /// `workload` name the principal's fields; anything else is a claim (dotted path).
    /// A claim is lent, not copied: one may list thousands of ids, and templates are
    /// filled for every item of a list answer.
    pub fn attribute(&self, name: &str) -> Option<Cow<'_, Value>> {
        match name {
            "subject" => Some(Cow::Owned(Value::String(self.subject.clone()))),
            "tenant" => self.tenant.clone().map(|t| Cow::Owned(Value::String(t))),
            "workload" => self.workload.clone().map(|w| Cow::Owned(Value::String(w))),
            _ => claim_path(&self.claims, name).map(Cow::Borrowed),
        }
    }
}

pub(crate) fn claim_path<'a>(claims: &'a Map<String, Value>, path: &str) -> Option<&'a Value> {
    let mut parts = path.split('.');
    let mut cur = claims.get(parts.next()?)?;
    for p in parts {
        cur = cur.as_object()?.get(p)?;
    }
    Some(cur)
}

/// Establishes the principal for a request, or the identity denial.
pub fn authenticate(policy: &Policy, headers: &Headers, host: &dyn Host) -> Result<Principal, Denial> {
    let id = &policy.identity;
    let now = host.now();
    if now == 0 {
        // The host could not tell the time: expiry cannot be checked.
        return Err(Denial::new(
            Reason::InternalError,
            "identity",
            "the host clock is unavailable",
        ));
    }
    let claims = token::claims(id, headers, host, now)?;
    token::check_times(id, &claims, now)?;

    let subject = match claims.get(&id.subject_claim) {
        Some(Value::String(s)) if !s.is_empty() => s.clone(),
        found => {
            // A subject is a string (RFC 7519's StringOrURI): say which way it is not.
            let why = match found {
                None => "has no",
                Some(Value::String(_)) => "has an empty",
                Some(_) => "has a non-string",
            };
            return Err(Denial::new(
                Reason::TokenInvalid,
                "identity.claims.subject",
                format!("token {why} {:?} claim naming the subject", id.subject_claim),
            ));
        }
    };
    // A tenant id may be a number: as in bindings, an exact integer stands for its text
    // (one that is not exact, or any other value, names no tenant).
    let tenant = match claims.get(&id.tenant_claim) {
        Some(Value::String(s)) => Some(s.clone()),
        Some(Value::Number(n)) if !n.is_f64() => Some(n.to_string()),
        _ => None,
    };
    let scopes = scopes_of(claims.get(&id.scopes_claim));
    let workload = workload(policy, &claims, host)?;
    let ceiling = match (&workload, policy.ceilings.is_empty()) {
        (_, true) => None,
        (Some(w), false) => match policy.ceiling(w) {
            Some(c) => policy.ceilings.iter().position(|x| std::ptr::eq(x, c)),
            None => {
                return Err(Denial::new(
                    Reason::WorkloadUntrusted,
                    "workloads",
                    format!(
                        "no workload ceiling covers the calling workload {}",
                        crate::authz::shown(w)
                    ),
                ))
            }
        },
        (None, false) => {
            return Err(Denial::new(
                Reason::WorkloadUntrusted,
                "identity.workload",
                "the request names no workload",
            ))
        }
    };
    let session = session(policy, headers, &claims)?;
    // The token was verified against the issuer its `iss` names.
    let issuer = if id.issuer_scopes.is_empty() {
        None
    } else {
        let iss = claims.get("iss").and_then(Value::as_str);
        id.issuer_scopes.iter().position(|(name, _)| Some(name.as_str()) == iss)
    };
    Ok(Principal {
        subject,
        workload,
        tenant,
        scopes,
        ceiling,
        issuer,
        session,
        exp: claims.get("exp").and_then(Value::as_u64),
        iat: claims.get("iat").and_then(Value::as_u64),
        claims,
    })
}

/// A SPIFFE ID as the SPIFFE standard writes a workload's: `spiffe://`, a trust domain of
/// lowercase letters, digits, `.`, `-` and `_`, and a path of one or more segments of
/// letters, digits, `.`, `-` and `_`, none empty, `.` or `..`; no port, user, query,
/// fragment or percent-encoding. Anything else names its workload ambiguously
/// (`…/agents/../admin` is under `…/agents/` as text and `…/admin` once resolved), so a
/// prefix-matched ceiling must not take it.
fn is_workload_spiffe_id(san: &str) -> bool {
    let Some((domain, path)) = san.strip_prefix("spiffe://").and_then(|rest| rest.split_once('/')) else {
        return false;
    };
    let domain_ok = !domain.is_empty()
        && domain
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'.' | b'-' | b'_'));
    let segment_ok = |seg: &str| {
        !matches!(seg, "" | "." | "..")
            && seg
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_'))
    };
    san.len() <= 2048 && domain_ok && path.split('/').all(segment_ok)
}

/// `scope` as a space-separated string (RFC 8693/9068) or `scp`-style array.
fn scopes_of(v: Option<&Value>) -> Vec<String> {
    match v {
        Some(Value::String(s)) => s.split_ascii_whitespace().map(str::to_string).collect(),
        Some(Value::Array(a)) => a.iter().filter_map(Value::as_str).map(str::to_string).collect(),
        _ => Vec::new(),
    }
}

fn workload(policy: &Policy, claims: &Map<String, Value>, host: &dyn Host) -> Result<Option<String>, Denial> {
    let Some(src) = &policy.identity.workload else {
        return Ok(None);
    };
    if !src.trust_domains.is_empty() {
        if let Some(san) = host.peer_uri_san() {
            if !is_workload_spiffe_id(&san) {
                return Err(Denial::new(
                    Reason::WorkloadUntrusted,
                    "identity.workload.spiffe_trust_domains",
                    "the peer certificate's URI SAN is not a well-formed workload SPIFFE ID",
                ));
            }
            let domain = san
                .strip_prefix("spiffe://")
                .and_then(|rest| rest.split('/').next())
                .unwrap_or("");
            if src.trust_domains.iter().any(|td| td == domain) {
                return Ok(Some(san));
            }
            return Err(Denial::new(
                Reason::WorkloadUntrusted,
                "identity.workload.spiffe_trust_domains",
                "the peer certificate's SPIFFE ID is not in a trusted domain",
            ));
        }
        if src.require_mtls {
            return Err(Denial::new(
                Reason::WorkloadUntrusted,
                "identity.workload.require_mtls",
                "no mTLS peer certificate: this gateway identifies workloads by mTLS only",
            ));
        }
    }
    if let Some(path) = &src.claim {
        let mut cur = claims.get(path.first().map(String::as_str).unwrap_or(""));
        for p in path.iter().skip(1) {
            cur = cur.and_then(Value::as_object).and_then(|o| o.get(p));
        }
        if let Some(Value::String(w)) = cur {
            // A SPIFFE ID is proven by a certificate, not asserted in a token: a stolen
            // delegation token (`act.sub` is often the actor's SVID) must not bring an
            // mTLS workload's ceiling from outside the mesh.
            if !src.trust_domains.is_empty() && w.get(..7).is_some_and(|s| s.eq_ignore_ascii_case("spiffe:")) {
                return Err(Denial::new(
                    Reason::WorkloadUntrusted,
                    "identity.workload.claim",
                    "the workload claim names a SPIFFE ID, which only an mTLS peer certificate proves",
                ));
            }
            if !w.is_empty() {
                return Ok(Some(w.clone()));
            }
        }
    }
    Err(Denial::new(
        Reason::WorkloadUntrusted,
        "identity.workload",
        "no workload identity: neither a trusted mTLS peer nor the workload claim",
    ))
}

fn session(policy: &Policy, headers: &Headers, claims: &Map<String, Value>) -> Result<Option<String>, Denial> {
    let Some(bind) = &policy.identity.bind_session else {
        return Ok(None);
    };
    let rule = "identity.bind_session";
    let presented = match headers.one(&bind.header) {
        Err(Repeated) => {
            return Err(Denial::new(
                Reason::SessionMismatch,
                rule,
                "the session header appears twice",
            ))
        }
        Ok(None) => return Ok(None),
        Ok(Some(v)) => std::str::from_utf8(v)
            .map_err(|_| Denial::new(Reason::SessionMismatch, rule, "the session header is not text"))?,
    };
    match claims.get(&bind.claim).and_then(Value::as_str) {
        // An empty claim binds nothing (as in `bind`): it names no session to hold to.
        Some("") => Err(Denial::new(
            Reason::SessionMismatch,
            rule,
            format!("the token's {:?} claim is empty, binding it to no session", bind.claim),
        )),
        Some(bound) if bound == presented => Ok(Some(presented.to_string())),
        Some(_) => Err(Denial::new(
            Reason::SessionMismatch,
            rule,
            "the token is bound to another session",
        )),
        None => Err(Denial::new(
            Reason::SessionMismatch,
            rule,
            format!("the token carries no {:?} claim binding it to a session", bind.claim),
        )),
    }
}
