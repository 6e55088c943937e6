//! MCP sessions bound to the caller they were opened for.
//!
//! A Streamable HTTP server names the session it opens in the `initialize` answer's
//! `Mcp-Session-Id`, and the client sends that id with every later request; whoever holds
//! the id acts in the session (answers what the server asked there, reads its stream, ends
//! it). Behind aigate the server never sees the caller's token (`jwt.forward: false`), so
//! it cannot tie its sessions to callers itself. aigate does: the id the client gets is the
//! server's id sealed to the caller (`<id>.<tag>`, the tag a MAC of the route, the caller
//! and the id under the proxy's key), and a request presenting it reaches the server with
//! the server's own id only if the tag is the presenting caller's. Nothing is stored: any
//! worker, and with a shared `session_key` any replica, checks a seal by itself.
//!
//! The caller is the same as for tasks: its token's issuer, subject, tenant and workload
//! (a fresh token of the same caller goes on with the session).

use crate::identity::Principal;
use hmac::{Hmac, Mac};
use sha2::Sha256;

/// The header MCP's Streamable HTTP transport names the session in.
pub const SESSION_HEADER: &str = "mcp-session-id";

/// Bytes of MAC kept in a seal: 128 bits, 22 base64url characters.
const TAG_BYTES: usize = 16;

/// The keys seals are made and opened with: the current key seals, and it and the retired
/// keys (`retired_session_keys`, the keys it replaced) open. Their bytes never show in
/// `Debug` output.
#[derive(Clone, PartialEq, Eq)]
pub struct SealKey {
    current: Vec<u8>,
    retired: Vec<Vec<u8>>,
}

impl SealKey {
    pub fn new(bytes: Vec<u8>) -> Self {
        SealKey {
            current: bytes,
            retired: Vec::new(),
        }
    }

    /// The same key, also opening the seals `retired` keys made.
    pub fn with_retired(self, retired: Vec<Vec<u8>>) -> Self {
        SealKey { retired, ..self }
    }
}

impl std::fmt::Debug for SealKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SealKey(… and {} retired)", self.retired.len())
    }
}

/// Where a proxy keeps the key it made for itself (a policy without `session_key`).
const PROXY_KEY: &str = "aigate.sessions.key";

/// The proxy's own key, made when a policy binding sessions first loads and kept in its
/// shared data, so every worker seals alike (another proxy, or this one once restarted,
/// has another: its clients open new sessions). Envoy's first load runs on its main
/// thread before any worker's VM, so the key is made once. `None` when the shared data
/// fails: the policy is then refused rather than sessions left unbound.
pub fn proxy_key(store: &dyn crate::request::SharedData) -> Option<SealKey> {
    let read = || store.get(PROXY_KEY).map(|(v, _)| v).filter(|v| v.len() >= 32);
    if let Some(key) = read() {
        return Some(SealKey::new(key));
    }
    let _ = store.set(PROXY_KEY, crate::ledger::fresh_secret(4).as_bytes(), 0);
    read().map(SealKey::new)
}

/// The MAC binding `id` to the caller on `route` under `key`.
fn mac(key: &[u8], route: &str, p: &Principal, id: &str) -> Option<Hmac<Sha256>> {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).ok()?;
    // Each part with its length first: no two (route, caller, id) read as one.
    for part in [route, &crate::tasks::caller_id(p), id] {
        mac.update(&(part.len() as u64).to_be_bytes());
        mac.update(part.as_bytes());
    }
    Some(mac)
}

/// The id the client gets for the server's session `id`: sealed to the caller on `route`.
/// `None` only if the key cannot key a MAC (never for an HMAC key).
pub fn seal(key: &SealKey, route: &str, p: &Principal, id: &str) -> Option<String> {
    use base64::Engine as _;
    let tag = mac(&key.current, route, p, id)?.finalize().into_bytes();
    let tag = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(tag.get(..TAG_BYTES)?);
    Some(format!("{id}.{tag}"))
}

/// The server's session id in `presented`, if it was sealed to this caller on `route`
/// (by the current key or a retired one).
pub fn unseal<'a>(key: &SealKey, route: &str, p: &Principal, presented: &'a str) -> Option<&'a str> {
    use base64::Engine as _;
    // The tag has no dot, the server's id may: the seal is after the last one.
    let (id, tag) = presented.rsplit_once('.')?;
    let tag = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(tag).ok()?;
    if tag.len() != TAG_BYTES {
        return None;
    }
    // Compared in constant time, so a caller cannot find a tag byte by byte.
    std::iter::once(&key.current)
        .chain(&key.retired)
        .any(|k| mac(k, route, p, id).is_some_and(|m| m.verify_truncated_left(&tag).is_ok()))
        .then_some(id)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn principal(sub: &str, tenant: &str) -> Principal {
        let claims = json!({"iss": "https://idp.example.com"}).as_object().unwrap().clone();
        Principal {
            subject: sub.into(),
            tenant: Some(tenant.into()),
            workload: Some("support-agent".into()),
            claims: std::rc::Rc::new(claims),
            ..Principal::default()
        }
    }

    #[test]
    fn a_sealed_session_opens_for_its_caller_on_its_route_only() {
        let key = SealKey::new(vec![7; 32]);
        let alice = principal("alice", "acme");
        let sealed = seal(&key, "mcp", &alice, "a.b-c").unwrap();
        assert!(
            sealed.starts_with("a.b-c.") && sealed.len() == "a.b-c.".len() + 22,
            "{sealed}"
        );
        assert_eq!(unseal(&key, "mcp", &alice, &sealed), Some("a.b-c"));
        for (route, p) in [
            ("mcp", principal("bob", "acme")),
            ("mcp", principal("alice", "globex")),
            ("other-mcp", alice.clone()),
        ] {
            assert_eq!(unseal(&key, route, &p, &sealed), None, "{route} {}", p.subject);
        }
        assert_eq!(unseal(&SealKey::new(vec![8; 32]), "mcp", &alice, &sealed), None);
        // The server's bare id, a truncated or altered tag: no session.
        for presented in ["a.b-c", "a", "", &sealed[..sealed.len() - 1], &format!("{sealed}A")] {
            assert_eq!(unseal(&key, "mcp", &alice, presented), None, "{presented}");
        }
        let mut flipped = sealed.clone().into_bytes();
        let last = flipped.len() - 1;
        flipped[last] = if flipped[last] == b'A' { b'B' } else { b'A' };
        assert_eq!(
            unseal(&key, "mcp", &alice, std::str::from_utf8(&flipped).unwrap()),
            None
        );
        assert_eq!(format!("{key:?}"), "SealKey(… and 0 retired)");
    }

    #[test]
    fn a_retired_key_opens_what_it_sealed_and_seals_nothing() {
        let alice = principal("alice", "acme");
        let old = SealKey::new(vec![1; 32]);
        let sealed_before = seal(&old, "mcp", &alice, "s-1").unwrap();
        let rotated = SealKey::new(vec![2; 32]).with_retired(vec![vec![1; 32]]);
        assert_eq!(unseal(&rotated, "mcp", &alice, &sealed_before), Some("s-1"));
        let sealed_after = seal(&rotated, "mcp", &alice, "s-2").unwrap();
        assert_eq!(
            sealed_after,
            seal(&SealKey::new(vec![2; 32]), "mcp", &alice, "s-2").unwrap()
        );
        assert_eq!(unseal(&old, "mcp", &alice, &sealed_after), None, "the new key seals");
        // Still only for its caller, and not once the key is dropped.
        assert_eq!(unseal(&rotated, "mcp", &principal("bob", "acme"), &sealed_before), None);
        assert_eq!(unseal(&SealKey::new(vec![2; 32]), "mcp", &alice, &sealed_before), None);
        assert_eq!(format!("{rotated:?}"), "SealKey(… and 1 retired)");
    }

    #[test]
    fn callers_whose_parts_run_together_are_apart() {
        let key = SealKey::new(vec![7; 32]);
        let a = principal("victim\0acme", "t");
        let b = principal("victim", "acme\0t");
        let mut no_tenant = principal("alice", "");
        no_tenant.tenant = None;
        let empty_tenant = principal("alice", "");
        for (one, other) in [(&a, &b), (&no_tenant, &empty_tenant)] {
            let sealed = seal(&key, "mcp", one, "s-1").unwrap();
            assert_eq!(unseal(&key, "mcp", other, &sealed), None, "{sealed}");
        }
        // Nor do a route and an id that run together.
        let sealed = seal(&key, "m", &a, "cp.s-1").unwrap();
        let (_, tag) = sealed.rsplit_once('.').unwrap();
        assert_eq!(unseal(&key, "mcp", &a, &format!("s-1.{tag}")), None);
    }
}
