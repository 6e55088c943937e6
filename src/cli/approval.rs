//! `aigate keygen`, `aigate digest`, `aigate approve`: what an approval service (and a
//! test) needs to mint grants the plugin accepts.

use crate::config::Impact;
use crate::jws::SigningKey;
use crate::policy::{ApprovalPolicy, Policy, TokenSource};
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

/// Reads a JSON file (`-`: stdin) nested at most `depth` deep.
pub fn read_json(path: &Path, depth: usize) -> Result<Value, String> {
    super::parse_json(path, &super::read(path)?, depth)
}

/// The digest of the arguments in `path`, read as deep as a gateway may read them: the
/// policy's `limits.max_json_depth`, or without a policy the deepest any policy allows.
/// (Below an action route the body is the arguments; an MCP call's sit two levels into
/// the body: the depth a route would take.)
pub fn digest(path: &Path, depth: Option<usize>) -> Result<String, String> {
    args_digest(&arguments(path, depth)?)
}

/// The tool call's arguments in `path`, read as [`digest`] reads them.
fn arguments(path: &Path, depth: Option<usize>) -> Result<Value, String> {
    let depth = depth.unwrap_or(crate::policy::MAX_JSON_DEPTH);
    let bytes = super::read(path)?;
    let args = super::parse_json(path, &bytes, depth)?;
    // As strictly as the gateway reads a call: keys differing only in case (`to` and `To`)
    // are a call it refuses, so no grant is minted for them.
    crate::json::parse_request(&bytes, depth).map_err(|e| format!("{}: {e}", super::name(path)))?;
    if !args.is_object() {
        return Err(format!("{}: tool arguments are a JSON object", super::name(path)));
    }
    Ok(args)
}

fn args_digest(args: &Value) -> Result<String, String> {
    crate::digest::args_digest(args).map_err(|e| e.to_string())
}

/// A compiled policy and the file it came from.
struct Gateway<'a> {
    path: &'a Path,
    policy: Policy,
}

impl<'a> Gateway<'a> {
    fn load(path: &'a Path) -> Result<Gateway<'a>, String> {
        let policy = crate::policy::compile(&super::read(path)?).map_err(|errors| {
            let first = errors.first().map(ToString::to_string).unwrap_or_default();
            format!("{}: invalid policy ({first}); run aigate check", super::name(path))
        })?;
        Ok(Gateway { path, policy })
    }

    fn approval(&self) -> Result<&ApprovalPolicy, String> {
        self.policy
            .approval
            .as_ref()
            .ok_or_else(|| format!("{}: the policy has no approval section", super::name(self.path)))
    }

    /// Refuses a grant this gateway would refuse whoever presents it, before it is signed.
    fn admits(&self, a: &Approve<'_>, issuer: &str, audience: &str) -> Result<(), String> {
        let cfg = self.approval()?;
        let refuses = |what: String, reason: &str| {
            Err(format!(
                "{what}: the gateway of {} would refuse the grant ({reason})",
                super::name(self.path)
            ))
        };
        if issuer != cfg.issuer {
            return refuses(
                format!("--iss {issuer:?} is not the policy's approval.issuer {:?}", cfg.issuer),
                "approval_invalid",
            );
        }
        if audience != cfg.audience {
            return refuses(
                format!(
                    "--aud {audience:?} is not the policy's approval.audience {:?}",
                    cfg.audience
                ),
                "approval_invalid",
            );
        }
        let Some(tool) = self.policy.tools.get(&a.tool) else {
            return Err(format!(
                "--tool {:?} is not in the policy's tool catalogue: the gateway of {} refuses its calls \
                 (tool_unknown) whatever grant they carry",
                a.tool,
                super::name(self.path)
            ));
        };
        if tool.impact != Impact::External {
            eprintln!(
                "warning: tool {:?} has {} impact: the gateway of {} asks no approval for it, so this grant is never used",
                a.tool,
                crate::audit::impact_label(tool.impact),
                super::name(self.path)
            );
        }
        // A subject is named by its identity provider where the gateway trusts several.
        let issuers: Vec<&str> = match &self.policy.identity.token {
            TokenSource::Jwt { issuers, .. } | TokenSource::Vouched { issuers } => {
                issuers.iter().map(|i| i.issuer.as_str()).collect()
            }
            // Behind jwt_authn the providers are Envoy's: not known here.
            TokenSource::JwtAuthn { .. } => Vec::new(),
        };
        match &a.subject_issuer {
            None if self.policy.identity.several_issuers() => refuses(
                format!(
                    "the policy trusts several identity issuers ({}): name the subject's with --sub-iss",
                    issuers.join(", ")
                ),
                "approval_mismatch",
            ),
            Some(named) if !issuers.is_empty() && !issuers.contains(&named.as_str()) => refuses(
                format!(
                    "--sub-iss {named:?} is not an identity issuer the policy trusts ({}): no caller's token names it",
                    issuers.join(", ")
                ),
                "approval_mismatch",
            ),
            _ => Ok(()),
        }
    }

    /// Refuses arguments the tool's `constraints` refuse: its gateway denies the call
    /// (`argument_violation`) before it looks at any grant. Bindings to the caller's claims
    /// are not judged here: they depend on the token the call comes with.
    fn allows_arguments(&self, tool: &str, args: &Value, file: &Path) -> Result<(), String> {
        let Some(tool) = self.policy.tools.get(tool) else {
            return Ok(());
        };
        crate::authz::constraints(tool, args).map_err(|d| {
            format!(
                "{}: {} (rule {}): the gateway of {} refuses the call ({}) whatever grant it carries",
                super::name(file),
                d.message,
                d.rule,
                super::name(self.path),
                d.reason.as_str()
            )
        })
    }

    /// A grant older than `approval.max_age_seconds` is refused however long it was
    /// signed for: a longer `--ttl` is cut to it, so the grant's `exp` says when it stops
    /// working.
    fn ttl(&self, ttl: u64) -> Result<u64, String> {
        let max_age = self.approval()?.max_age;
        if ttl <= max_age {
            return Ok(ttl);
        }
        eprintln!(
            "warning: --ttl {ttl} is above approval.max_age_seconds ({max_age}) of {}: its gateway refuses \
             grants older than that, so the grant's lifetime is cut to {max_age}s",
            super::name(self.path)
        );
        Ok(max_age)
    }

    /// Refuses a signed grant whose signature this gateway's approval keys do not accept.
    fn verifies(&self, grant: &str, key: &Path) -> Result<(), String> {
        match self.approval()?.keys.verify(grant) {
            Ok(_) => Ok(()),
            Err(e) => Err(format!(
                "{}: the policy's approval.jwks does not verify grants signed with this key ({e}): the gateway of {} \
                 would refuse the grant (approval_invalid); add its public half to approval.jwks",
                super::name(key),
                super::name(self.path)
            )),
        }
    }
}

pub struct Approve<'a> {
    pub key: &'a Path,
    /// The policy the grant is for: its approval issuer and audience address the grant,
    /// and nothing its gateway would refuse is signed.
    pub policy: Option<&'a Path>,
    /// `--iss` and `--aud`: without a policy, required; with one, equal to its own.
    pub issuer: Option<String>,
    pub audience: Option<String>,
    pub subject: String,
    pub subject_issuer: Option<String>,
    pub tenant: Option<String>,
    pub tool: String,
    pub args: &'a Path,
    pub approver: String,
    pub ttl: u64,
    pub jti: Option<String>,
    pub iat: Option<u64>,
    /// When the gateway is presented the grant (`None`: the clock).
    pub now: Option<u64>,
}

pub fn approve(a: Approve<'_>) -> Result<String, String> {
    let gateway = a.policy.map(Gateway::load).transpose()?;
    // The grant's `iss` and `aud`: given, else the policy's. A guess would mint grants
    // the gateway refuses (`approval_invalid`), so neither is assumed.
    let (p_iss, p_aud) = match &gateway {
        Some(g) => {
            let cfg = g.approval()?;
            (Some(cfg.issuer.clone()), Some(cfg.audience.clone()))
        }
        None => (None, None),
    };
    let (Some(issuer), Some(audience)) = (a.issuer.clone().or(p_iss), a.audience.clone().or(p_aud)) else {
        return Err(
            "name the gateway the grant is for: --policy POLICY (its approval.issuer and approval.audience), or both --iss and --aud".into(),
        );
    };
    // A grant names who approved what for whom (the audit record names the approver),
    // and has an id to be used once by.
    for (flag, value) in [
        ("--approver", Some(&a.approver)),
        ("--sub", Some(&a.subject)),
        ("--tool", Some(&a.tool)),
        ("--jti", a.jti.as_ref()),
        ("--sub-iss", a.subject_issuer.as_ref()),
        ("--tenant", a.tenant.as_ref()),
        // A gateway's approval issuer and audience are never blank (`aigate check`).
        ("--iss", Some(&issuer)),
        ("--aud", Some(&audience)),
    ] {
        if value.is_some_and(|v| v.trim().is_empty()) {
            return Err(format!(
                "{flag} must not be empty or blank: a grant names who approved what for whom"
            ));
        }
    }
    if let Some(g) = &gateway {
        g.admits(&a, &issuer, &audience)?;
    }
    let args = arguments(a.args, gateway.as_ref().map(|g| g.policy.limits.max_json_depth))?;
    if let Some(g) = &gateway {
        g.allows_arguments(&a.tool, &args, a.args)?;
    }
    let jwk = read_json(a.key, crate::policy::MAX_JSON_DEPTH)?;
    // Accept the `keygen` output as is, or a bare private JWK.
    let jwk = jwk.get("private").cloned().unwrap_or(jwk);
    if jwk.get("keys").is_some() {
        return Err(format!(
            "{}: a JWKS (the public half, for the policy's approval.jwks) cannot sign: pass the private JWK, or the whole `aigate keygen` output",
            super::name(a.key)
        ));
    }
    if jwk.get("kty").and_then(Value::as_str) == Some("OKP") && jwk.get("d").is_none() {
        return Err(format!(
            "{}: a public key cannot sign: pass the private JWK (with \"d\"), as `aigate keygen` prints it under \"private\"",
            super::name(a.key)
        ));
    }
    let key = SigningKey::from_jwk(&jwk).map_err(|e| format!("{}: {e}", super::name(a.key)))?;
    if a.ttl == 0 || a.ttl > crate::approval::MAX_AGE_CEILING {
        return Err(format!(
            "--ttl must be between 1 and {} seconds: an approval is for an action about to happen",
            crate::approval::MAX_AGE_CEILING
        ));
    }
    let ttl = match &gateway {
        Some(g) => g.ttl(a.ttl)?,
        None => a.ttl,
    };
    let now = match a.now {
        Some(t) => t,
        None => SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_err(|e| e.to_string())?
            .as_secs(),
    };
    let iat = a.iat.unwrap_or(now);
    // A grant issued after the gateway's clock reads is refused (approval_invalid): within
    // the policy's clock skew it verifies, but it is not spent before its iat.
    if iat > now {
        let clock = if a.now.is_some() { "--now" } else { "the clock" };
        return Err(format!(
            "--iat {iat} is after {clock} ({now}): the gateway refuses a grant issued in its future \
             (approval_invalid); for a case file replayed at a pinned now, give that time with --now"
        ));
    }
    let jti = match a.jti {
        Some(j) => j,
        None => b64(&random::<16>()?),
    };
    let mut claims = Map::new();
    claims.insert("iss".into(), json!(issuer));
    claims.insert("aud".into(), json!(audience));
    claims.insert("sub".into(), json!(a.subject));
    if let Some(iss) = a.subject_issuer {
        claims.insert("sub_iss".into(), json!(iss));
    }
    if let Some(tenant) = a.tenant {
        claims.insert("tenant".into(), json!(tenant));
    }
    claims.insert("tool".into(), json!(a.tool));
    claims.insert("args_digest".into(), json!(args_digest(&args)?));
    claims.insert("approver".into(), json!(a.approver));
    claims.insert("iat".into(), json!(iat));
    let exp = iat.checked_add(ttl).ok_or("--iat plus --ttl is past the end of time")?;
    claims.insert("exp".into(), json!(exp));
    claims.insert("jti".into(), json!(jti));
    let grant = key.sign(&claims);
    if let Some(g) = &gateway {
        g.verifies(&grant, a.key)?;
    }
    Ok(grant)
}
