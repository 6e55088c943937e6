//! `aigate keygen`, `aigate digest`, `aigate approve`: what an approval service (and a
//! test) needs to mint grants the plugin accepts.

use crate::jws::SigningKey;
use base64::Engine as _;
use serde_json::{json, Map, Value};
use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

fn random<const N: usize>() -> Result<[u8; N], String> {
    let mut buf = [0u8; N];
    getrandom::fill(&mut buf).map_err(|e| format!("no randomness available: {e}"))?;
    Ok(buf)
}

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// A new signing key as `{"private": JWK, "public": {"keys": [JWK]}}`; the public half
/// is a JWKS ready to paste into `approval.jwks`. HS256 keys have no public half. The
/// private JWK is complete (an Ed25519 one carries `x` beside `d`, as RFC 8037 requires),
/// so JOSE libraries in the approval service's own language can sign with it too.
pub fn keygen(alg: &str, kid: Option<String>) -> Result<Value, String> {
    let kid = match kid {
        Some(k) => k,
        None => format!("approvals-{}", b64(&random::<6>()?)),
    };
    let secret = match alg {
        "EdDSA" => json!({"kty": "OKP", "crv": "Ed25519", "d": b64(&random::<32>()?), "alg": "EdDSA", "kid": kid}),
        "HS256" => json!({"kty": "oct", "k": b64(&random::<32>()?), "alg": "HS256", "use": "sig", "kid": kid}),
        other => return Err(format!("unsupported --alg {other:?}: use EdDSA or HS256")),
    };
    let key = SigningKey::from_jwk(&secret)?;
    Ok(match key.public_jwk() {
        Some(public) => {
            let mut private = public.clone();
            if let (Some(p), Some(d)) = (private.as_object_mut(), secret.get("d")) {
                p.insert("d".into(), d.clone());
            }
            json!({"private": private, "public": {"keys": [public]}})
        }
        // A shared secret: the verifier's JWKS holds the secret itself.
        None => json!({"private": secret, "public": {"keys": [secret]}}),
    })
}

pub fn read_json(path: &Path) -> Result<Value, String> {
    let bytes = if path == Path::new("-") {
        let mut buf = Vec::new();
        std::io::Read::read_to_end(&mut std::io::stdin(), &mut buf).map_err(|e| format!("cannot read stdin: {e}"))?;
        buf
    } else {
        super::read(path)?
    };
    crate::json::parse(&bytes, 64).map_err(|e| format!("{}: {e}", path.display()))
}

pub fn digest(path: &Path) -> Result<String, String> {
    let args = read_json(path)?;
    if !args.is_object() {
        return Err(format!("{}: tool arguments are a JSON object", path.display()));
    }
    crate::digest::args_digest(&args).map_err(|e| e.to_string())
}

/// The grant's `iss` and `aud`: given, else the policy's approval issuer and audience. A
/// guess would mint grants the gateway refuses (`approval_invalid`), so neither is assumed.
pub fn addressing(policy: Option<&Path>, iss: Option<String>, aud: Option<String>) -> Result<(String, String), String> {
    let (p_iss, p_aud) = match policy {
        Some(path) => {
            let compiled = crate::policy::compile(&super::read(path)?).map_err(|errors| {
                let first = errors.first().map(ToString::to_string).unwrap_or_default();
                format!("{}: invalid policy ({first}); run aigate check", path.display())
            })?;
            let a = compiled
                .approval
                .ok_or_else(|| format!("{}: the policy has no approval section", path.display()))?;
            (Some(a.issuer), Some(a.audience))
        }
        None => (None, None),
    };
    match (iss.or(p_iss), aud.or(p_aud)) {
        (Some(i), Some(a)) => Ok((i, a)),
        _ => Err(
            "name the gateway the grant is for: --policy POLICY (its approval.issuer and approval.audience), or both --iss and --aud".into(),
        ),
    }
}

pub struct Approve<'a> {
    pub key: &'a Path,
    pub issuer: String,
    pub audience: String,
    pub subject: String,
    pub subject_issuer: Option<String>,
    pub tool: String,
    pub args: &'a Path,
    pub approver: String,
    pub ttl: u64,
    pub jti: Option<String>,
    pub iat: Option<u64>,
}

pub fn approve(a: Approve<'_>) -> Result<String, String> {
    let jwk = read_json(a.key)?;
    // Accept the `keygen` output as is, or a bare private JWK.
    let jwk = jwk.get("private").cloned().unwrap_or(jwk);
    if jwk.get("keys").is_some() {
        return Err(format!(
            "{}: a JWKS (the public half, for the policy's approval.jwks) cannot sign: pass the private JWK, or the whole `aigate keygen` output",
            a.key.display()
        ));
    }
    if jwk.get("kty").and_then(Value::as_str) == Some("OKP") && jwk.get("d").is_none() {
        return Err(format!(
            "{}: a public key cannot sign: pass the private JWK (with \"d\"), as `aigate keygen` prints it under \"private\"",
            a.key.display()
        ));
    }
    let key = SigningKey::from_jwk(&jwk).map_err(|e| format!("{}: {e}", a.key.display()))?;
    if a.ttl == 0 || a.ttl > crate::approval::MAX_AGE_CEILING {
        return Err(format!(
            "--ttl must be between 1 and {} seconds: an approval is for an action about to happen",
            crate::approval::MAX_AGE_CEILING
        ));
    }
    let now = match a.iat {
        Some(t) => t,
        None => SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_err(|e| e.to_string())?
            .as_secs(),
    };
    let jti = match a.jti {
        Some(j) => j,
        None => b64(&random::<16>()?),
    };
    let mut claims = Map::new();
    claims.insert("iss".into(), json!(a.issuer));
    claims.insert("aud".into(), json!(a.audience));
    claims.insert("sub".into(), json!(a.subject));
    if let Some(iss) = a.subject_issuer {
        claims.insert("sub_iss".into(), json!(iss));
    }
    claims.insert("tool".into(), json!(a.tool));
    claims.insert("args_digest".into(), json!(digest(a.args)?));
    claims.insert("approver".into(), json!(a.approver));
    claims.insert("iat".into(), json!(now));
    let exp = now
        .checked_add(a.ttl)
        .ok_or("--iat plus --ttl is past the end of time")?;
    claims.insert("exp".into(), json!(exp));
    claims.insert("jti".into(), json!(jti));
    Ok(key.sign(&claims))
}
