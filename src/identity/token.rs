//! The subject's token: where it comes from, and whether it is currently valid.

use super::cache::Claims;
use crate::decision::{Denial, Reason};
use crate::jws::{self, JwsError};
use crate::policy::{IdentityPolicy, Issuer, TokenSource};
use crate::request::{Headers, Host, Repeated};
use serde_json::{Map, Value};
use std::rc::Rc;

/// Verified claims from the configured source.
pub(super) fn claims(id: &IdentityPolicy, headers: &Headers, host: &dyn Host, now: u64) -> Result<Claims, Denial> {
    match &id.token {
        TokenSource::JwtAuthn { namespace, payload_key } => {
            // jwt_authn verified one of them; the upstream might read the other.
            if headers.get_all("authorization").nth(1).is_some() {
                return Err(Denial::new(
                    Reason::TokenInvalid,
                    "identity.jwt_authn",
                    "the Authorization header appears more than once",
                ));
            }
            let payload = host.jwt_payload(namespace, payload_key).ok_or_else(|| {
                // A credential jwt_authn passed over (its prefix match is case-sensitive:
                // `bearer …`, or another scheme) was sent: not "no credential".
                let (reason, message) = match headers.get_all("authorization").next() {
                    Some(_) => (
                        Reason::TokenInvalid,
                        "jwt_authn verified no token: the Authorization header's credential was not one it reads (send \"Bearer <token>\")",
                    ),
                    None => (Reason::Unauthenticated, "no verified token payload from jwt_authn"),
                };
                Denial::new(reason, "identity.jwt_authn", message)
            })?;
            // jwt_authn may have verified a token from elsewhere (the query string), or
            // passed over a header in a scheme it does not match (`bearer`, `Token`): an
            // Authorization header still here must be the token it verified (kept with
            // `forward: true`), or the upstream would take another credential for the caller.
            // Compared through the doubles jwt_authn's metadata holds, the claims must also
            // survive them: an integer past 2^53 (or -0) would equal its neighbour there.
            if let Ok(Some(raw)) = headers.one("authorization") {
                let verified = bearer(raw)
                    .and_then(|token| jws::peek_signed_claims(token).ok())
                    .is_some_and(|claims| {
                        super::metadata::survives_doubles(&claims) && super::metadata::as_metadata(&claims) == payload
                    });
                if !verified {
                    return Err(Denial::new(
                        Reason::TokenInvalid,
                        "identity.jwt_authn",
                        "the Authorization header carries a credential jwt_authn did not verify; the upstream could take it for the caller's",
                    ));
                }
            }
            Ok(Rc::new(payload))
        }
        TokenSource::Vouched { issuers } => {
            let rule = "identity.jwt";
            let claims = host
                .jwt_payload("", "")
                .ok_or_else(|| Denial::new(Reason::Unauthenticated, rule, "a bearer token is required"))?;
            accepted(&claims, trusted_issuer(issuers, &claims, rule)?, rule)?;
            Ok(Rc::new(claims))
        }
        TokenSource::Jwt { header, issuers, .. } => {
            let rule = "identity.jwt";
            if let Some(other) = unverified_credential(headers) {
                return Err(Denial::new(
                    Reason::TokenInvalid,
                    rule,
                    format!("{other} carries a credential aigate does not verify; the upstream could take it for the caller's"),
                ));
            }
            let raw = match headers.one(header) {
                Err(Repeated) => {
                    return Err(Denial::new(
                        Reason::TokenInvalid,
                        rule,
                        "the credential header appears more than once",
                    ))
                }
                Ok(None) => return Err(Denial::new(Reason::Unauthenticated, rule, "a bearer token is required")),
                Ok(Some(v)) => v,
            };
            let token =
                bearer(raw).ok_or_else(|| Denial::new(Reason::TokenInvalid, rule, "expected \"Bearer <token>\""))?;
            // Two headers some client or proxy joined into one (`Bearer a, Bearer b`).
            if token.contains([',', ' ', '\t']) {
                return Err(Denial::new(
                    Reason::TokenInvalid,
                    rule,
                    "the credential header holds more than one value",
                ));
            }
            // Signatures are checked once per token per worker; times on every request.
            let cache = host.token_cache();
            if let Some(hit) = cache.and_then(|c| c.get(token, now)) {
                return Ok(hit);
            }
            let claims = Rc::new(verified(token, issuers, rule)?);
            if let (Some(c), Some(exp)) = (cache, claims.get("exp").and_then(Value::as_u64)) {
                c.insert(token, &claims, exp.saturating_add(id.skew), now);
            }
            Ok(claims)
        }
    }
}

/// Where a request carries a second credential beside the one judged, which an upstream may
/// read for the caller: RFC 6750's `access_token` query parameter (its name as servers
/// read it, see [`parameter_name`]), or a `Proxy-Authorization` header (also spelled with
/// `_`, which CGI-style servers read as it), which a proxy consumes and no client sends
/// through one to a service.
fn unverified_credential(headers: &Headers) -> Option<&'static str> {
    let proxy = |name: &str| {
        name.len() == "proxy-authorization".len()
            && name
                .bytes()
                .zip("proxy-authorization".bytes())
                .all(|(n, p)| n.to_ascii_lowercase() == p || (n == b'_' && p == b'-'))
    };
    if headers.names().any(proxy) {
        return Some("the Proxy-Authorization header");
    }
    let query = headers.text(":path")?.split_once('?')?.1;
    let query = query.split('#').next().unwrap_or_default();
    query
        .split(['&', ';'])
        .map(|pair| parameter_name(pair.split('=').next().unwrap_or_default()))
        .any(|name| name.eq_ignore_ascii_case("access_token"))
        .then_some("the query string's access_token")
}

/// A query parameter's name as servers read it: percent-decoded (`+` a space), an array's
/// brackets dropped (`access_token[]`: Rack and PHP), and as PHP names its variables, with
/// `.`, a space and an unclosed `[` read as `_` (`access.token` is `access_token`).
fn parameter_name(raw: &str) -> String {
    let decoded = crate::authz::percent_decoded(&raw.replace('+', " "));
    let name = String::from_utf8_lossy(&decoded);
    let name = match name.split_once('[') {
        Some((base, rest)) if rest.contains(']') => base.to_string(),
        _ => name.into_owned(),
    };
    name.replace(['.', ' ', '['], "_")
}

/// Signature, issuer and audience: everything about a token that does not depend on the clock.
fn verified(token: &str, issuers: &[Issuer], rule: &'static str) -> Result<Map<String, Value>, Denial> {
    let invalid = |e: JwsError| Denial::new(Reason::TokenInvalid, rule, format!("token rejected: {e}"));
    let unverified = jws::peek_claims(token).map_err(invalid)?;
    let issuer = trusted_issuer(issuers, &unverified, rule)?;
    let claims = issuer.keys.verify(token).map_err(invalid)?;
    accepted(&claims, issuer, rule)?;
    Ok(claims)
}

/// The configured issuer a token's `iss` names.
fn trusted_issuer<'a>(
    issuers: &'a [Issuer],
    claims: &Map<String, Value>,
    rule: &'static str,
) -> Result<&'a Issuer, Denial> {
    let iss = claims.get("iss").and_then(Value::as_str).unwrap_or("");
    issuers
        .iter()
        .find(|i| i.issuer == iss)
        .ok_or_else(|| Denial::new(Reason::TokenInvalid, rule, "token issuer is not trusted"))
}

/// Whether the token's `aud` (a string or a list) names an audience its issuer may address.
fn accepted(claims: &Map<String, Value>, issuer: &Issuer, rule: &'static str) -> Result<(), Denial> {
    let aud_ok = match claims.get("aud") {
        Some(Value::String(a)) => issuer.audiences.iter().any(|x| x == a),
        Some(Value::Array(list)) => list
            .iter()
            .filter_map(Value::as_str)
            .any(|a| issuer.audiences.iter().any(|x| x == a)),
        _ => false,
    };
    if aud_ok {
        Ok(())
    } else {
        Err(Denial::new(
            Reason::TokenInvalid,
            rule,
            "token audience is not accepted here",
        ))
    }
}

fn bearer(raw: &[u8]) -> Option<&str> {
    let text = std::str::from_utf8(raw).ok()?;
    let (scheme, token) = text.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return None;
    }
    let token = token.trim_start();
    (!token.is_empty()).then_some(token)
}

/// Time claims as numbers of seconds; fractional or negative values are malformed.
fn time_claim(claims: &Map<String, Value>, name: &str) -> Result<Option<u64>, Denial> {
    match claims.get(name) {
        None => Ok(None),
        Some(v) => v.as_u64().map(Some).ok_or_else(|| {
            Denial::new(
                Reason::TokenInvalid,
                "identity",
                format!("claim {name:?} is not a whole number of seconds"),
            )
        }),
    }
}

/// `exp` (required), `nbf`, `iat` against the host clock with skew, and the JIT lifetime bound.
pub(super) fn check_times(id: &IdentityPolicy, claims: &Map<String, Value>, now: u64) -> Result<(), Denial> {
    let exp = time_claim(claims, "exp")?
        .ok_or_else(|| Denial::new(Reason::TokenInvalid, "identity", "token has no expiry (exp)"))?;
    let nbf = time_claim(claims, "nbf")?;
    let iat = time_claim(claims, "iat")?;
    if now >= exp.saturating_add(id.skew) {
        return Err(Denial::new(Reason::TokenExpired, "identity", "token has expired"));
    }
    if nbf.is_some_and(|nbf| now.saturating_add(id.skew) < nbf) {
        return Err(Denial::new(
            Reason::TokenInvalid,
            "identity",
            "token is not valid yet (nbf)",
        ));
    }
    if iat.is_some_and(|iat| now.saturating_add(id.skew) < iat) {
        return Err(Denial::new(
            Reason::TokenInvalid,
            "identity",
            "token is issued in the future (iat)",
        ));
    }
    if iat.is_some_and(|iat| iat > exp) || nbf.is_some_and(|nbf| nbf > exp) {
        return Err(Denial::new(
            Reason::TokenInvalid,
            "identity",
            "token expires before it is issued or valid (exp before iat or nbf)",
        ));
    }
    if let Some(max) = id.max_lifetime {
        let rule = "identity.max_token_lifetime_seconds";
        let Some(iat) = iat else {
            return Err(Denial::new(
                Reason::TokenLifetimeExceeded,
                rule,
                "token has no iat, so its lifetime is unbounded",
            ));
        };
        if exp.saturating_sub(iat) > max {
            return Err(Denial::new(
                Reason::TokenLifetimeExceeded,
                rule,
                format!("token lifetime {}s exceeds the {max}s allowed", exp.saturating_sub(iat)),
            ));
        }
    }
    Ok(())
}
