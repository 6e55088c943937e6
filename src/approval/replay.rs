//! Single use of approval grants across all workers of a proxy.
//!
//! Envoy's shared data has compare-and-swap only for keys that already exist (a write to
//! a missing key always succeeds), so "insert if absent" on a per-`jti` key would let two
//! workers both accept one grant. Instead the `jti`s live in a fixed set of buckets that
//! are created once (`prepare`) and then only ever updated with CAS. Memory is bounded:
//! `BUCKETS × BUCKET_CAPACITY` entries of 26 bytes, expired entries are dropped on every
//! write, and a full bucket refuses new grants (fail closed) instead of growing.
//!
//! The record lives as long as the proxy's shared data: a restart of Envoy, or a new
//! `vm_id`, starts an empty one. So the record notes when it began (`SINCE`), and a grant
//! issued before that is refused: whether it was spent before the restart is unknown.

use crate::request::{SetError, SharedData};
use sha2::{Digest, Sha256};

pub const BUCKETS: u32 = 64;
pub const BUCKET_CAPACITY: usize = 1024;
const RETRIES: usize = 16;
const ENTRY: usize = 26; // 16 hex chars of hash + ':' + 8 hex chars of exp + '\n'

/// When the record began (decimal Unix seconds).
const SINCE: &str = "aigate.approvals.since";

fn key(bucket: u32) -> String {
    format!("aigate.approvals.{bucket}")
}

/// Creates the record's parts that do not exist yet, noting `now` as its beginning when
/// it has none. Called whenever a policy with approvals is loaded; Envoy's first load runs
/// on its main thread before any worker's VM exists, so the unconditional writes here
/// never meet a grant being recorded.
pub fn prepare(store: &dyn SharedData, now: u64) {
    if since(store).is_none() {
        // Missing, or not ours to read: the record begins now (CAS 0 writes either way).
        let _ = store.set(SINCE, now.to_string().as_bytes(), 0);
    }
    for b in 0..BUCKETS {
        if store.get(&key(b)).is_none() {
            let _ = store.set(&key(b), b"v1\n", 0);
        }
    }
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

/// Where a grant's `jti` lives: its entry id (16 hex chars of a hash of `scope` and `jti`)
/// and its bucket.
fn slot(scope: &str, jti: &str) -> (String, u32) {
    let digest = Sha256::new()
        .chain_update(scope)
        .chain_update([0u8])
        .chain_update(jti)
        .finalize();
    let id = digest.iter().take(8).map(|b| format!("{b:02x}")).collect();
    (id, u32::from(digest.first().copied().unwrap_or(0)) % BUCKETS)
}

/// What a change to a bucket decided, given its current entries.
enum Edit {
    /// Write this text (with CAS), then answer `true`.
    Write(String),
    /// Answer without writing.
    Answer(bool),
}

/// Changes bucket `k` with compare-and-swap, reading it again whenever another worker
/// wrote in between. `missing` answers for a bucket that does not exist.
fn update(
    store: &dyn SharedData,
    k: &str,
    missing: impl Fn() -> Option<bool>,
    mut edit: impl FnMut(&str) -> Result<Edit, String>,
) -> Result<bool, String> {
    for _ in 0..RETRIES {
        let Some((current, cas)) = store.get(k) else {
            match missing() {
                Some(answer) => return Ok(answer),
                None => continue,
            }
        };
        let text = match edit(&String::from_utf8_lossy(&current))? {
            Edit::Answer(answer) => return Ok(answer),
            Edit::Write(text) => text,
        };
        match store.set(k, text.as_bytes(), cas) {
            Ok(()) => return Ok(true),
            Err(SetError::CasMismatch) => continue,
            Err(SetError::Other) => return Err("shared data write failed".into()),
        }
    }
    Err("approval store is contended; try again".into())
}

/// Records `jti` of `scope` (the issuer, and the gate), a grant issued at `iat` (never
/// after `now`), until `exp`.
pub fn claim(store: &dyn SharedData, scope: &str, jti: &str, iat: u64, exp: u64, now: u64) -> Result<Claim, String> {
    // A record gone missing is created again, beginning now (and the claim retried).
    let began = began(store, now).ok_or("approval record has no beginning")?;
    if iat < began {
        return Ok(Claim::Predates);
    }
    let (id, bucket) = slot(scope, jti);
    let missing = || {
        prepare(store, now);
        None
    };
    let first = update(store, &key(bucket), missing, |current| {
        let mut kept = String::with_capacity(current.len() + ENTRY);
        for line in current.lines() {
            let Some((h, e)) = line.split_once(':') else { continue };
            let Ok(e) = u64::from_str_radix(e, 16) else { continue };
            if e <= now {
                continue; // expired: its grant can no longer be presented anyway
            }
            if h == id {
                return Ok(Edit::Answer(false));
            }
            kept.push_str(line);
            kept.push('\n');
        }
        if kept.len() / ENTRY >= BUCKET_CAPACITY {
            return Err("too many unexpired approvals outstanding".into());
        }
        kept.push_str(&format!("{id}:{:08x}\n", exp.min(u64::from(u32::MAX))));
        Ok(Edit::Write(kept))
    })?;
    Ok(if first { Claim::First } else { Claim::Replayed })
}

/// Whether `jti` of `scope` is recorded as used (and not yet expired): read only, so a
/// request can pass over a spent grant for another it carries before spending any.
pub fn spent(store: &dyn SharedData, scope: &str, jti: &str, now: u64) -> bool {
    let (id, bucket) = slot(scope, jti);
    let Some((text, _)) = store.get(&key(bucket)) else {
        return false;
    };
    String::from_utf8_lossy(&text).lines().any(|line| {
        line.split_once(':')
            .is_some_and(|(h, e)| h == id && u64::from_str_radix(e, 16).is_ok_and(|e| e > now))
    })
}

/// Forgets a `jti` this request claimed but did not use: the request was refused after
/// the claim (a later grant of the same request was replayed), so the grant stays usable.
/// `Ok(false)` when it was not recorded.
pub fn release(store: &dyn SharedData, scope: &str, jti: &str) -> Result<bool, String> {
    let (id, bucket) = slot(scope, jti);
    update(
        store,
        &key(bucket),
        || Some(false),
        |current| {
            let mut kept = String::with_capacity(current.len());
            let mut found = false;
            for line in current.lines() {
                if line.split_once(':').is_some_and(|(h, _)| h == id) {
                    found = true;
                    continue;
                }
                kept.push_str(line);
                kept.push('\n');
            }
            Ok(if found { Edit::Write(kept) } else { Edit::Answer(false) })
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::request::MemoryShared as Mem;

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

    #[test]
    fn memory_is_bounded() {
        let m = Mem::default();
        prepare(&m, 0);
        // Fill one bucket: jtis are spread by hash, so pick those that land in bucket 0.
        let bucket_of = |jti: &str| slot("iss", jti).1;
        let mut accepted = 0;
        let mut refused = 0;
        for i in 0.. {
            let jti = i.to_string();
            if bucket_of(&jti) != 0 {
                continue;
            }
            match claim(&m, "iss", &jti, 0, 10_000, 1) {
                Ok(Claim::First) => accepted += 1,
                Err(_) => refused += 1,
                Ok(other) => unreachable!("{other:?}"),
            }
            if refused == 10 {
                break;
            }
        }
        assert_eq!(accepted, BUCKET_CAPACITY);
        assert!(m.get(&key(0)).unwrap().0.len() <= BUCKET_CAPACITY * ENTRY + 3);
        // Once they expire, room returns.
        let late = (0..)
            .map(|i: u32| format!("late{i}"))
            .find(|j| bucket_of(j) == 0)
            .unwrap();
        assert_eq!(claim(&m, "iss", &late, 0, 20_000, 10_001), Ok(Claim::First));
        assert!(m.get(&key(0)).unwrap().0.len() <= 2 * ENTRY);
    }
}
