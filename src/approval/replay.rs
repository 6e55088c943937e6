//! Single use of approval grants across all workers of a proxy.
//!
//! Envoy's shared data has compare-and-swap only for keys that already exist (a write to
//! a missing key always succeeds), so "insert if absent" on a per-`jti` key would let two
//! workers both accept one grant. Instead the `jti`s live in a fixed set of buckets that
//! are created once (`prepare`) and then only ever updated with CAS. Memory is bounded:
//! `BUCKETS × BUCKET_CAPACITY` entries of 26 bytes, expired entries are dropped on every
//! write, and a full bucket refuses new grants (fail closed) instead of growing.

use crate::request::{SetError, SharedData};
use sha2::{Digest, Sha256};

pub const BUCKETS: u32 = 64;
pub const BUCKET_CAPACITY: usize = 1024;
const RETRIES: usize = 16;
const ENTRY: usize = 26; // 16 hex chars of hash + ':' + 8 hex chars of exp + '\n'

fn key(bucket: u32) -> String {
    format!("aigate.approvals.{bucket}")
}

/// Creates the buckets that do not exist yet. Called whenever a policy with approvals is
/// loaded; Envoy's first load runs on its main thread before any worker's VM exists, so
/// the unconditional writes here never meet a grant being recorded.
pub fn prepare(store: &dyn SharedData) {
    for b in 0..BUCKETS {
        if store.get(&key(b)).is_none() {
            let _ = store.set(&key(b), b"v1\n", 0);
        }
    }
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

/// Records `jti` of `scope` (the issuer, and the gate) until `exp`. `Ok(true)`: first use;
/// `Ok(false)`: replay.
pub fn claim(store: &dyn SharedData, scope: &str, jti: &str, exp: u64, now: u64) -> Result<bool, String> {
    let (id, bucket) = slot(scope, jti);
    // A bucket gone missing is created again (and the claim retried).
    let missing = || {
        prepare(store);
        None
    };
    update(store, &key(bucket), missing, |current| {
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
        prepare(&m);
        assert_eq!(claim(&m, "iss", "a", 200, 100), Ok(true));
        assert_eq!(claim(&m, "iss", "a", 200, 150), Ok(false));
        assert_eq!(claim(&m, "other", "a", 200, 150), Ok(true), "jti is scoped by issuer");
        // After exp the entry is pruned (the grant itself is refused as expired upstream).
        assert_eq!(claim(&m, "iss", "a", 300, 201), Ok(true));
    }

    #[test]
    fn a_released_claim_can_be_made_again() {
        let m = Mem::default();
        prepare(&m);
        assert_eq!(claim(&m, "iss", "a", 200, 100), Ok(true));
        assert_eq!(claim(&m, "iss", "b", 200, 100), Ok(true));
        assert_eq!(release(&m, "iss", "a"), Ok(true));
        assert_eq!(release(&m, "iss", "a"), Ok(false), "nothing left to release");
        assert_eq!(claim(&m, "iss", "b", 200, 100), Ok(false), "other entries stay");
        assert_eq!(claim(&m, "iss", "a", 200, 100), Ok(true));
        assert_eq!(release(&m, "other", "a"), Ok(false), "scoped like claims");
    }

    #[test]
    fn lost_race_is_retried_and_sees_the_winner() {
        let m = Mem::default();
        prepare(&m);
        // Simulate another worker writing between our read and write: the CAS fails,
        // the retry re-reads and finds the jti.
        let (_, bucket) = slot("iss", "x");
        let (_, cas) = m.get(&key(bucket)).unwrap();
        assert_eq!(claim(&m, "iss", "x", 500, 1), Ok(true));
        assert_eq!(m.set(&key(bucket), b"", cas), Err(SetError::CasMismatch));
        assert_eq!(claim(&m, "iss", "x", 500, 2), Ok(false));
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
        prepare(&m);
        let rival_answer = std::cell::Cell::new(None);
        let racing = Racing {
            inner: &m,
            rival: std::cell::RefCell::new(Some(Box::new(|store: &Mem| {
                rival_answer.set(Some(claim(store, "iss", "x", 500, 1)));
            }))),
        };
        // Our claim read the bucket before the rival wrote it; its write must not land on
        // top of the rival's, nor count as a success.
        let ours = claim(&racing, "iss", "x", 500, 1);
        assert_eq!(rival_answer.take(), Some(Ok(true)), "the rival ran first and won");
        assert_eq!(ours, Ok(false), "the loser sees the winner's entry");
        // The jti is recorded once, and stays spent.
        let (id, bucket) = slot("iss", "x");
        let text = String::from_utf8(m.get(&key(bucket)).unwrap().0).unwrap();
        assert_eq!(text.matches(id.as_str()).count(), 1, "{text}");
        assert_eq!(claim(&m, "iss", "x", 500, 2), Ok(false));

        // A rival that writes something else to the bucket (another jti) in between does
        // not cost our claim: it is retried against the new text and keeps both entries.
        let m = Mem::default();
        prepare(&m);
        let other = (0..)
            .map(|i: u32| format!("y{i}"))
            .find(|j| slot("iss", j).1 == slot("iss", "x").1)
            .unwrap();
        let racing = Racing {
            inner: &m,
            rival: std::cell::RefCell::new(Some(Box::new(|store: &Mem| {
                assert_eq!(claim(store, "iss", &other, 500, 1), Ok(true));
            }))),
        };
        assert_eq!(claim(&racing, "iss", "x", 500, 1), Ok(true));
        assert_eq!(
            claim(&m, "iss", &other, 500, 2),
            Ok(false),
            "the rival's entry survived"
        );
        assert_eq!(claim(&m, "iss", "x", 500, 2), Ok(false));
    }

    #[test]
    fn memory_is_bounded() {
        let m = Mem::default();
        prepare(&m);
        // Fill one bucket: jtis are spread by hash, so pick those that land in bucket 0.
        let bucket_of = |jti: &str| slot("iss", jti).1;
        let mut accepted = 0;
        let mut refused = 0;
        for i in 0.. {
            let jti = i.to_string();
            if bucket_of(&jti) != 0 {
                continue;
            }
            match claim(&m, "iss", &jti, 10_000, 1) {
                Ok(true) => accepted += 1,
                Err(_) => refused += 1,
                Ok(false) => unreachable!(),
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
        assert_eq!(claim(&m, "iss", &late, 20_000, 10_001), Ok(true));
        assert!(m.get(&key(0)).unwrap().0.len() <= 2 * ENTRY);
    }
}
