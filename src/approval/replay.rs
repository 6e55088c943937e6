//! Single use of approval grants across all workers of a proxy: the `jti`s used live in
//! a ledger of the host's shared data (see `crate::ledger` for how it stays consistent
//! and bounded).
//!
//! The record lives as long as the proxy's shared data: a restart of Envoy, or a new
//! `vm_id`, starts an empty one. So the record notes when it began (`SINCE`), and a grant
//! issued before that is refused: whether it was spent before the restart is unknown.

use crate::ledger::{Ledger, Placement};
use crate::request::SharedData;

/// The grants used, until their expiry.
pub const APPROVALS: Ledger = Ledger {
    name: "aigate.approvals",
    entries: "approvals",
    placement: Placement::ByItem,
};

/// When the record began (decimal Unix seconds).
const SINCE: &str = "aigate.approvals.since";

/// Creates the record's parts that do not exist yet, noting `now` as its beginning when
/// it has none. Called whenever a policy with approvals is loaded.
pub fn prepare(store: &dyn SharedData, now: u64) {
    if since(store).is_none() {
        // Missing, or not ours to read: the record begins now (CAS 0 writes either way).
        let _ = store.set(SINCE, now.to_string().as_bytes(), 0);
    }
    APPROVALS.prepare(store);
}

/// When the record began, beginning it now if it has no (readable) beginning.
pub fn began(store: &dyn SharedData, now: u64) -> Option<u64> {
    since(store).or_else(|| {
        prepare(store, now);
        since(store)
    })
}

/// When the record began; `None` when it has no (readable) beginning.
fn since(store: &dyn SharedData) -> Option<u64> {
    let (text, _) = store.get(SINCE)?;
    std::str::from_utf8(&text).ok()?.parse().ok()
}

/// What recording a grant's use found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Claim {
    /// Its first use: now recorded.
    First,
    /// Already used.
    Replayed,
    /// Issued before the record began, so an earlier use may be forgotten: refused.
    Predates,
}

/// Records `jti` of `scope` (the issuer, and the gate), a grant issued at `iat` (never
/// after `now`), until `exp`.
pub fn claim(store: &dyn SharedData, scope: &str, jti: &str, iat: u64, exp: u64, now: u64) -> Result<Claim, String> {
    // A record gone missing is created again, beginning now (and the claim retried).
    let began = began(store, now).ok_or("approval record has no beginning")?;
    if iat < began {
        return Ok(Claim::Predates);
    }
    let first = APPROVALS.insert(store, scope, jti, exp, now)?;
    Ok(if first { Claim::First } else { Claim::Replayed })
}

/// Whether `jti` of `scope` is recorded as used (and not yet expired): read only, so a
/// request can pass over a spent grant for another it carries before spending any.
pub fn spent(store: &dyn SharedData, scope: &str, jti: &str, now: u64) -> bool {
    APPROVALS.contains(store, scope, jti, now)
}

/// Forgets a `jti` this request claimed but did not use: the request was refused after
/// the claim (a later grant of the same request was replayed), so the grant stays usable.
/// `Ok(false)` when it was not recorded.
pub fn release(store: &dyn SharedData, scope: &str, jti: &str) -> Result<bool, String> {
    APPROVALS.remove(store, scope, jti)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::request::{MemoryShared as Mem, SetError};

    fn slot(scope: &str, jti: &str) -> (String, u32) {
        let s = APPROVALS.slot(scope, jti);
        (s.id, s.bucket)
    }

    fn key(bucket: u32) -> String {
        APPROVALS.key(bucket)
    }

    #[test]
    fn single_use_until_expiry() {
        let m = Mem::default();
        prepare(&m, 0);
        assert_eq!(claim(&m, "iss", "a", 0, 200, 100), Ok(Claim::First));
        assert_eq!(claim(&m, "iss", "a", 0, 200, 150), Ok(Claim::Replayed));
        assert_eq!(
            claim(&m, "other", "a", 0, 200, 150),
            Ok(Claim::First),
            "jti is scoped by issuer"
        );
        // After exp the entry is pruned (the grant itself is refused as expired upstream).
        assert_eq!(claim(&m, "iss", "a", 0, 300, 201), Ok(Claim::First));
    }

    #[test]
    fn grants_issued_before_the_record_began_are_refused() {
        let m = Mem::default();
        prepare(&m, 1000);
        prepare(&m, 5000); // a reload keeps the record and its beginning
        assert_eq!(claim(&m, "iss", "a", 999, 2000, 1500), Ok(Claim::Predates));
        assert_eq!(claim(&m, "iss", "a", 1000, 2000, 1500), Ok(Claim::First));
        // A record with no beginning (never prepared) begins at the first claim.
        let m = Mem::default();
        assert_eq!(claim(&m, "iss", "a", 1499, 2000, 1500), Ok(Claim::Predates));
        assert_eq!(claim(&m, "iss", "a", 1500, 2000, 1501), Ok(Claim::First));
        assert_eq!(claim(&m, "iss", "a", 1500, 2000, 1502), Ok(Claim::Replayed));
        // An unreadable beginning is not taken as "always": the record begins anew.
        let m = Mem::default();
        prepare(&m, 1000);
        let (_, cas) = m.get(SINCE).unwrap();
        m.set(SINCE, b"garbage", cas).unwrap();
        assert_eq!(
            claim(&m, "iss", "a", 1000, 2000, 1500),
            Ok(Claim::Predates),
            "{:?}",
            m.get(SINCE)
        );
    }

    #[test]
    fn a_released_claim_can_be_made_again() {
        let m = Mem::default();
        prepare(&m, 0);
        assert_eq!(claim(&m, "iss", "a", 0, 200, 100), Ok(Claim::First));
        assert_eq!(claim(&m, "iss", "b", 0, 200, 100), Ok(Claim::First));
        assert_eq!(release(&m, "iss", "a"), Ok(true));
        assert_eq!(release(&m, "iss", "a"), Ok(false), "nothing left to release");
        assert_eq!(
            claim(&m, "iss", "b", 0, 200, 100),
            Ok(Claim::Replayed),
            "other entries stay"
        );
        assert_eq!(claim(&m, "iss", "a", 0, 200, 100), Ok(Claim::First));
        assert_eq!(release(&m, "other", "a"), Ok(false), "scoped like claims");
    }

    #[test]
    fn lost_race_is_retried_and_sees_the_winner() {
        let m = Mem::default();
        prepare(&m, 0);
        // Simulate another worker writing between our read and write: the CAS fails,
        // the retry re-reads and finds the jti.
        let (_, bucket) = slot("iss", "x");
        let (_, cas) = m.get(&key(bucket)).unwrap();
        assert_eq!(claim(&m, "iss", "x", 0, 500, 1), Ok(Claim::First));
        assert_eq!(m.set(&key(bucket), b"", cas), Err(SetError::CasMismatch));
        assert_eq!(claim(&m, "iss", "x", 0, 500, 2), Ok(Claim::Replayed));
    }

    /// What another worker does to the store.
    type Rival<'a> = Box<dyn FnOnce(&Mem) + 'a>;

    /// Shared data where another worker gets in between a read and the write that follows
    /// it: just before the first write, `rival` runs against the same store.
    struct Racing<'a> {
        inner: &'a Mem,
        rival: std::cell::RefCell<Option<Rival<'a>>>,
    }

    impl SharedData for Racing<'_> {
        fn get(&self, key: &str) -> Option<(Vec<u8>, u32)> {
            self.inner.get(key)
        }
        fn set(&self, key: &str, value: &[u8], cas: u32) -> Result<(), SetError> {
            let rival = self.rival.borrow_mut().take();
            if let Some(rival) = rival {
                rival(self.inner);
            }
            self.inner.set(key, value, cas)
        }
    }

    #[test]
    fn two_workers_claiming_one_jti_at_once_accept_it_once() {
        let m = Mem::default();
        prepare(&m, 0);
        let rival_answer = std::cell::Cell::new(None);
        let racing = Racing {
            inner: &m,
            rival: std::cell::RefCell::new(Some(Box::new(|store: &Mem| {
                rival_answer.set(Some(claim(store, "iss", "x", 0, 500, 1)));
            }))),
        };
        // Our claim read the bucket before the rival wrote it; its write must not land on
        // top of the rival's, nor count as a success.
        let ours = claim(&racing, "iss", "x", 0, 500, 1);
        assert_eq!(
            rival_answer.take(),
            Some(Ok(Claim::First)),
            "the rival ran first and won"
        );
        assert_eq!(ours, Ok(Claim::Replayed), "the loser sees the winner's entry");
        // The jti is recorded once, and stays spent.
        let (id, bucket) = slot("iss", "x");
        let text = String::from_utf8(m.get(&key(bucket)).unwrap().0).unwrap();
        assert_eq!(text.matches(id.as_str()).count(), 1, "{text}");
        assert_eq!(claim(&m, "iss", "x", 0, 500, 2), Ok(Claim::Replayed));

        // A rival that writes something else to the bucket (another jti) in between does
        // not cost our claim: it is retried against the new text and keeps both entries.
        let m = Mem::default();
        prepare(&m, 0);
        let other = (0..)
            .map(|i: u32| format!("y{i}"))
            .find(|j| slot("iss", j).1 == slot("iss", "x").1)
            .unwrap();
        let racing = Racing {
            inner: &m,
            rival: std::cell::RefCell::new(Some(Box::new(|store: &Mem| {
                assert_eq!(claim(store, "iss", &other, 0, 500, 1), Ok(Claim::First));
            }))),
        };
        assert_eq!(claim(&racing, "iss", "x", 0, 500, 1), Ok(Claim::First));
        assert_eq!(
            claim(&m, "iss", &other, 0, 500, 2),
            Ok(Claim::Replayed),
            "the rival's entry survived"
        );
        assert_eq!(claim(&m, "iss", "x", 0, 500, 2), Ok(Claim::Replayed));
    }
}
