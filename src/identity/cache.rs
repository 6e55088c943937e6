//! A bounded per-worker cache of verified bearer tokens.
//!
//! Checking a token's signature costs tens of microseconds (Ed25519, P-256) to hundreds
//! (RSA) inside the VM, and an agent sends the same token on every call until it expires.
//! So the claims of a token that passed signature, issuer and audience checks are kept,
//! keyed by the token text itself, and later requests with exactly the same token skip
//! straight to the claims. The full text is the key, compared byte for byte, so no other
//! token can ever hit an entry; a cryptographic digest as the key would cost more per
//! request (SHA-256 of a 400-byte token in Wasm) than everything else on the hit path. Time checks (`exp`, `nbf`,
//! `iat`, lifetime) are not cached: they run against the host clock on every request.
//!
//! One cache belongs to one compiled policy (the plugin keeps both in its per-VM state and
//! rebuilds both on reconfiguration), so a key rotation never meets a stale entry.
//! Memory is bounded: at most `capacity` entries of tokens no larger than
//! [`MAX_CACHED_TOKEN_BYTES`] (each held once, plus its decoded claims: about 2 MiB per
//! worker for a full cache of 1 KiB tokens, 16 MiB at worst); an entry leaves when its token can no longer be accepted
//! (`exp` + clock skew), and a full cache drops expired entries first, then the oldest.

use serde_json::{Map, Value};
use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::rc::Rc;

/// Entries per worker by default: far more distinct live tokens than one worker sees.
pub const DEFAULT_CAPACITY: usize = 1024;

/// Tokens longer than this are verified every time rather than cached, so a full cache
/// stays within a few MiB.
pub const MAX_CACHED_TOKEN_BYTES: usize = 8 * 1024;

/// Verified claims, shared by the cache entry and the requests that present the token.
pub type Claims = Rc<Map<String, Value>>;

/// Counters for benchmarks, tests and diagnostics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CacheStats {
    pub hits: u64,
    pub misses: u64,
    /// Entries dropped because their token could no longer be accepted.
    pub expired: u64,
    /// Live entries dropped to make room (oldest first).
    pub displaced: u64,
}

struct Entry {
    claims: Claims,
    /// First second at which the token is refused whatever the clock skew: `exp + skew`.
    until: u64,
    /// Insertion order, the key into `Inner::order` (and with `until`, `Inner::deadlines`).
    seq: u64,
}

#[derive(Default)]
struct Inner {
    /// By token text; the same allocation is the value in `order`.
    entries: HashMap<Rc<str>, Entry>,
    order: BTreeMap<u64, Rc<str>>,
    /// `(until, seq)` of every entry, soonest first: expired entries leave in O(log n)
    /// each, without a scan of the cache (which would hash every token on every insert).
    deadlines: BTreeSet<(u64, u64)>,
    next_seq: u64,
    stats: CacheStats,
}

impl Inner {
    fn remove(&mut self, token: &str) {
        if let Some(e) = self.entries.remove(token) {
            self.order.remove(&e.seq);
            self.deadlines.remove(&(e.until, e.seq));
        }
    }

    fn drop_expired(&mut self, now: u64) {
        while let Some(&(until, seq)) = self.deadlines.first() {
            if until > now {
                break;
            }
            self.deadlines.pop_first();
            if let Some(k) = self.order.remove(&seq) {
                self.entries.remove(&*k);
            }
            self.stats.expired += 1;
        }
    }

    fn drop_oldest(&mut self) {
        if let Some((seq, k)) = self.order.pop_first() {
            if let Some(e) = self.entries.remove(&*k) {
                self.deadlines.remove(&(e.until, seq));
            }
            self.stats.displaced += 1;
        }
    }
}

/// Verified claims by token, for one worker. Interior mutability because the plugin shares
/// it (with the policy) between the requests of a worker; a VM runs one callback at a
/// time, and should a borrow ever clash the cache answers "miss" rather than panic.
pub struct TokenCache {
    capacity: usize,
    inner: RefCell<Inner>,
}

impl std::fmt::Debug for TokenCache {
    // Sizes and counters only: claims are personal data.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenCache")
            .field("capacity", &self.capacity)
            .field("len", &self.len())
            .field("stats", &self.stats())
            .finish()
    }
}

impl Default for TokenCache {
    fn default() -> Self {
        TokenCache::new(DEFAULT_CAPACITY)
    }
}

impl TokenCache {
    /// A cache of at most `capacity` tokens (0 disables caching).
    pub fn new(capacity: usize) -> Self {
        TokenCache {
            capacity,
            inner: RefCell::new(Inner::default()),
        }
    }

    /// The claims of a token verified earlier, if it can still be accepted at `now`.
    /// An entry past its deadline is dropped.
    pub fn get(&self, token: &str, now: u64) -> Option<Claims> {
        let mut inner = self.inner.try_borrow_mut().ok()?;
        if token.len() > MAX_CACHED_TOKEN_BYTES {
            inner.stats.misses += 1;
            return None; // never stored: not worth hashing
        }
        let found = inner.entries.get(token).map(|e| (e.until, Rc::clone(&e.claims)));
        match found {
            Some((until, claims)) if until > now => {
                inner.stats.hits += 1;
                Some(claims)
            }
            Some(_) => {
                inner.remove(token);
                inner.stats.expired += 1;
                inner.stats.misses += 1;
                None
            }
            None => {
                inner.stats.misses += 1;
                None
            }
        }
    }

    /// Remembers the claims of a token that passed verification, until `until` (the first
    /// second at which it would be refused). Tokens already past it are not stored.
    pub fn insert(&self, token: &str, claims: &Claims, until: u64, now: u64) {
        if self.capacity == 0 || until <= now || token.len() > MAX_CACHED_TOKEN_BYTES {
            return;
        }
        let Ok(mut inner) = self.inner.try_borrow_mut() else {
            return;
        };
        inner.remove(token);
        if inner.entries.len() >= self.capacity {
            inner.drop_expired(now);
        }
        while inner.entries.len() >= self.capacity {
            inner.drop_oldest();
        }
        let seq = inner.next_seq;
        inner.next_seq = seq.wrapping_add(1);
        let key: Rc<str> = Rc::from(token);
        inner.order.insert(seq, Rc::clone(&key));
        inner.deadlines.insert((until, seq));
        inner.entries.insert(
            key,
            Entry {
                claims: Rc::clone(claims),
                until,
                seq,
            },
        );
    }

    pub fn len(&self) -> usize {
        self.inner.try_borrow().map_or(0, |i| i.entries.len())
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn capacity(&self) -> usize {
        self.capacity
    }

    pub fn stats(&self) -> CacheStats {
        self.inner
            .try_borrow()
            .map_or_else(|_| CacheStats::default(), |i| i.stats)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decision::Reason;
    use crate::identity::{self, Principal};
    use crate::jws::SigningKey;
    use crate::policy::{self, Policy};
    use crate::request::{Headers, Host, SetError, SharedData};
    use base64::Engine as _;
    use serde_json::json;

    fn claims(sub: &str) -> Claims {
        let mut m = Map::new();
        m.insert("sub".into(), Value::from(sub));
        Rc::new(m)
    }

    #[test]
    fn miss_then_hit_returns_the_stored_claims() {
        let c = TokenCache::new(4);
        let k = "a.b.c";
        assert_eq!(c.get(k, 100), None);
        c.insert(k, &claims("alice"), 200, 100);
        assert_eq!(c.get(k, 150), Some(claims("alice")));
        assert_eq!(c.get("a.b.d", 150), None, "another token is another key");
        assert_eq!(
            c.stats(),
            CacheStats {
                hits: 1,
                misses: 2,
                expired: 0,
                displaced: 0
            }
        );
    }

    #[test]
    fn entries_leave_at_their_deadline() {
        let c = TokenCache::new(4);
        let k = "t";
        c.insert(k, &claims("alice"), 200, 100);
        assert!(c.get(k, 199).is_some());
        assert_eq!(c.get(k, 200), None);
        assert!(c.is_empty(), "the expired entry is gone, not just hidden");
        assert_eq!(c.stats().expired, 1);
        // A token already past its deadline is never stored.
        c.insert(k, &claims("alice"), 200, 200);
        assert!(c.is_empty());
    }

    #[test]
    fn a_full_cache_drops_expired_entries_first_then_the_oldest() {
        let c = TokenCache::new(3);
        c.insert("old-long", &claims("a"), 1_000, 0);
        c.insert("short", &claims("b"), 50, 0);
        c.insert("mid", &claims("c"), 1_000, 0);
        // At t=60 "short" is expired: it goes, the older live entry stays.
        c.insert("new", &claims("d"), 1_000, 60);
        assert_eq!(c.len(), 3);
        assert!(c.get("old-long", 60).is_some());
        assert!(c.get("short", 60).is_none());
        // Nothing expired: the oldest live entry makes room.
        c.insert("newer", &claims("e"), 1_000, 60);
        assert_eq!(c.len(), 3);
        assert!(c.get("old-long", 60).is_none());
        for k in ["mid", "new", "newer"] {
            assert!(c.get(k, 60).is_some(), "{k}");
        }
        assert_eq!(c.stats().displaced, 1);
        assert_eq!(c.stats().expired, 1);
        let inner = c.inner.borrow();
        assert_eq!(inner.order.len(), 3);
        assert_eq!(inner.deadlines.len(), 3);
    }

    #[test]
    fn the_bound_holds_under_many_tokens() {
        let c = TokenCache::new(16);
        for i in 0..1_000 {
            c.insert(&format!("tok-{i}"), &claims("a"), 10_000, 0);
            assert!(c.len() <= 16);
        }
        assert_eq!(c.len(), 16);
        // The most recent ones are kept.
        assert!(c.get("tok-999", 1).is_some());
        assert!(c.get("tok-983", 1).is_none());
        let inner = c.inner.borrow();
        assert_eq!(inner.order.len(), inner.entries.len(), "no stale order entries");
        assert_eq!(inner.deadlines.len(), inner.entries.len(), "no stale deadlines");
    }

    #[test]
    fn reinserting_a_token_refreshes_it_without_duplicating() {
        let c = TokenCache::new(2);
        c.insert("a", &claims("a"), 100, 0);
        c.insert("b", &claims("b"), 100, 0);
        c.insert("a", &claims("a2"), 100, 0);
        assert_eq!(c.len(), 2);
        // "a" is now the newest: adding "c" displaces "b".
        c.insert("c", &claims("c"), 100, 0);
        assert_eq!(c.get("a", 1), Some(claims("a2")));
        assert_eq!(c.get("b", 1), None);
    }

    #[test]
    fn zero_capacity_caches_nothing() {
        let c = TokenCache::new(0);
        c.insert("a", &claims("a"), 100, 0);
        assert!(c.is_empty());
        assert_eq!(c.get("a", 1), None);
    }

    #[test]
    fn a_clashing_borrow_is_a_miss_not_a_panic() {
        let c = TokenCache::new(2);
        c.insert("a", &claims("a"), 100, 0);
        let _held = c.inner.borrow_mut();
        assert_eq!(c.get("a", 1), None);
        c.insert("b", &claims("b"), 100, 0);
        assert_eq!(c.len(), 0, "len reads as empty while borrowed");
    }

    // --- through identity::authenticate ------------------------------------------------

    const NOW: u64 = 1_800_000_000;

    struct CachingHost {
        now: u64,
        cache: TokenCache,
    }

    impl SharedData for CachingHost {
        fn get(&self, _key: &str) -> Option<(Vec<u8>, u32)> {
            None
        }
        fn set(&self, _key: &str, _value: &[u8], _cas: u32) -> Result<(), SetError> {
            Err(SetError::Other)
        }
    }

    impl Host for CachingHost {
        fn now(&self) -> u64 {
            self.now
        }
        fn peer_uri_san(&self) -> Option<String> {
            None
        }
        fn jwt_payload(&self, _namespace: &str, _key: &str) -> Option<Map<String, Value>> {
            None
        }
        fn shared(&self) -> &dyn SharedData {
            self
        }
        fn token_cache(&self) -> Option<&TokenCache> {
            Some(&self.cache)
        }
    }

    fn idp() -> SigningKey {
        let d = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode([5u8; 32]);
        SigningKey::from_jwk(&json!({"kty": "OKP", "crv": "Ed25519", "kid": "k1", "d": d})).unwrap()
    }

    fn policy() -> Policy {
        let doc = json!({
            "default_owner": "o",
            "routes": [{"id": "r", "prefix": "/mcp", "protocol": "mcp"}],
            "identity": {
                "source": "jwt",
                "jwt": {"issuers": [{"issuer": "https://idp", "audiences": ["aigate"],
                                     "jwks": {"keys": [idp().public_jwk().unwrap()]}}]},
                "clock_skew_seconds": 30,
                "max_token_lifetime_seconds": 900
            }
        });
        policy::compile(doc.to_string().as_bytes()).unwrap()
    }

    fn token(overrides: Value) -> String {
        let mut c = json!({"iss": "https://idp", "aud": "aigate", "sub": "alice",
                           "iat": NOW - 10, "exp": NOW + 300});
        for (k, v) in overrides.as_object().unwrap() {
            c[k] = v.clone();
        }
        idp().sign(c.as_object().unwrap())
    }

    fn auth(p: &Policy, host: &CachingHost, token: &str) -> Result<Principal, Reason> {
        let headers = Headers::new(vec![(
            "authorization".to_string(),
            format!("Bearer {token}").into_bytes(),
        )]);
        identity::authenticate(p, &headers, host).map_err(|d| d.reason)
    }

    fn host(now: u64) -> CachingHost {
        CachingHost {
            now,
            cache: TokenCache::new(8),
        }
    }

    #[test]
    fn a_verified_token_is_verified_once_then_served_from_the_cache() {
        let p = policy();
        let mut h = host(NOW);
        let t = token(json!({}));
        let first = auth(&p, &h, &t).unwrap();
        assert_eq!(h.cache.len(), 1);
        assert_eq!(h.cache.stats().hits, 0);
        h.now += 5;
        let second = auth(&p, &h, &t).unwrap();
        assert_eq!(h.cache.stats().hits, 1);
        assert_eq!(first.subject, second.subject);
        assert_eq!(first.claims, second.claims);
    }

    #[test]
    fn time_checks_still_run_on_a_hit() {
        let p = policy();
        // Valid from NOW+100 (nbf): refused, but its signature was good, so it is cached.
        let t = token(json!({"nbf": NOW + 100}));
        let mut h = host(NOW);
        assert_eq!(auth(&p, &h, &t).unwrap_err(), Reason::TokenInvalid);
        assert_eq!(
            auth(&p, &h, &t).unwrap_err(),
            Reason::TokenInvalid,
            "a hit, still refused"
        );
        assert_eq!(h.cache.stats().hits, 1);
        h.now = NOW + 100;
        assert!(auth(&p, &h, &t).is_ok());
        // Past exp + skew the entry is dropped and the token refused as expired.
        h.now = NOW + 300 + 30;
        assert_eq!(auth(&p, &h, &t).unwrap_err(), Reason::TokenExpired);
        assert!(h.cache.is_empty());
    }

    #[test]
    fn refused_tokens_are_not_cached() {
        let p = policy();
        let h = host(NOW);
        let good = token(json!({}));
        let (rest, sig) = good.rsplit_once('.').unwrap();
        let flipped = if sig.starts_with('A') { "B" } else { "A" };
        let forged = format!("{rest}.{flipped}{}", &sig[1..]);
        let wrong_aud = token(json!({"aud": "someone-else"}));
        // The good token is cached first: a forgery that shares all but its last
        // signature bytes with it must still miss and be verified (and refused).
        assert!(auth(&p, &h, &good).is_ok());
        for t in [forged.as_str(), wrong_aud.as_str()] {
            assert_eq!(auth(&p, &h, t).unwrap_err(), Reason::TokenInvalid);
            assert_eq!(auth(&p, &h, t).unwrap_err(), Reason::TokenInvalid);
        }
        assert_eq!(h.cache.len(), 1, "only the good token is cached");
        assert_eq!(h.cache.stats().hits, 0);
    }

    #[test]
    fn oversized_tokens_are_verified_every_time() {
        let p = policy();
        let h = host(NOW);
        let big = token(json!({"pad": "x".repeat(MAX_CACHED_TOKEN_BYTES)}));
        assert!(auth(&p, &h, &big).is_ok());
        assert!(auth(&p, &h, &big).is_ok());
        assert!(h.cache.is_empty());
    }
}
