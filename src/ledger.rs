//! Bounded records in the host's shared data, seen by every worker of a proxy: which
//! approval grants were used, which caller each MCP task belongs to.
//!
//! Envoy's shared data has compare-and-swap only for keys that already exist (a write to
//! a missing key always succeeds), so "insert if absent" on a per-entry key would let two
//! workers both take one entry. Instead the entries live in a fixed set of buckets that
//! are created once (`prepare`) and then only ever updated with CAS. Memory is bounded:
//! `BUCKETS × BUCKET_CAPACITY` entries of 26 bytes per ledger, expired entries are
//! dropped on every write, and a full bucket refuses new entries (fail closed) instead of
//! growing. An entry is a hash of its scope and item, never the item itself.

use crate::request::{SetError, SharedData};
use sha2::{Digest, Sha256};
use std::collections::HashSet;

pub const BUCKETS: u32 = 64;
pub const BUCKET_CAPACITY: usize = 1024;
const RETRIES: usize = 16;
/// 16 hex chars of hash + ':' + 8 hex chars of expiry + '\n'.
pub const ENTRY: usize = 26;

/// One record: its buckets are `<name>.<n>`.
#[derive(Debug, Clone, Copy)]
pub struct Ledger {
    pub name: &'static str,
    /// What a full bucket refuses, in its error ("approvals", "tasks").
    pub entries: &'static str,
    pub placement: Placement,
}

/// Which bucket an entry lives in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Placement {
    /// Spread by scope and item: no scope fills more than its share of every bucket.
    ByItem,
    /// A scope's entries share one bucket, their ids opening with a mark of the scope, so
    /// that a scope can be held to a number of entries: one caller filling the record
    /// reaches only its own bucket, and only up to its quota.
    ByScope,
}

/// Hex chars of an entry id that mark its scope (`Placement::ByScope`).
const SCOPE_MARK: usize = 6;

/// An entry's id (16 hex chars of a hash of scope and item) and its bucket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Slot {
    pub id: String,
    pub bucket: u32,
}

/// A scope's unexpired entries as one read found them (`Ledger::held`).
pub struct Held {
    ledger: Ledger,
    scope: String,
    ids: HashSet<String>,
}

impl Held {
    /// Whether `item` was recorded for the scope and unexpired when read.
    pub fn contains(&self, item: &str) -> bool {
        self.ids.contains(&self.ledger.slot(&self.scope, item).id)
    }
}

/// What a change to a bucket decided, given its current entries.
enum Edit {
    /// Write this text (with CAS), then answer `true`.
    Write(String),
    /// Answer without writing.
    Answer(bool),
}

/// A secret a proxy makes for itself (a ledger's salt, the key sealing MCP sessions):
/// `words` × 16 hex chars of randomness. std's `RandomState` is seeded from the host's
/// (WASI `random_get` in the plugin).
pub(crate) fn fresh_secret(words: u8) -> String {
    use std::hash::{BuildHasher, Hasher};
    let state = std::collections::hash_map::RandomState::new();
    (0..words)
        .map(|n| {
            let mut h = state.build_hasher();
            h.write_u8(n);
            format!("{:016x}", h.finish())
        })
        .collect()
}

/// The unexpired entries of a bucket's text, as `(id, expiry)`.
fn entries(text: &str, now: u64) -> impl Iterator<Item = (&str, u64)> {
    text.lines().filter_map(move |line| {
        let (id, exp) = line.split_once(':')?;
        let exp = u64::from_str_radix(exp, 16).ok()?;
        (exp > now).then_some((id, exp))
    })
}

impl Ledger {
    pub fn key(&self, bucket: u32) -> String {
        format!("{}.{bucket}", self.name)
    }

    /// Where `item` of `scope` lives.
    pub fn slot(&self, scope: &str, item: &str) -> Slot {
        let hex = |bytes: &[u8]| bytes.iter().map(|b| format!("{b:02x}")).collect::<String>();
        let digest = Sha256::new()
            .chain_update(scope)
            .chain_update([0u8])
            .chain_update(item)
            .finalize();
        match self.placement {
            Placement::ByItem => Slot {
                id: hex(digest.get(..8).unwrap_or_default()),
                bucket: u32::from(digest.first().copied().unwrap_or(0)) % BUCKETS,
            },
            Placement::ByScope => {
                let of_scope = Sha256::digest(scope);
                let mark = hex(of_scope.get(1..1 + SCOPE_MARK / 2).unwrap_or_default());
                Slot {
                    id: mark + &hex(digest.get(..(16 - SCOPE_MARK) / 2).unwrap_or_default()),
                    bucket: u32::from(of_scope.first().copied().unwrap_or(0)) % BUCKETS,
                }
            }
        }
    }

    /// Creates the buckets that do not exist yet. Called when a policy that uses the
    /// ledger is loaded; Envoy's first load runs on its main thread before any worker's
    /// VM exists, so the unconditional writes here never meet an entry being recorded.
    pub fn prepare(&self, store: &dyn SharedData) {
        for b in 0..BUCKETS {
            if store.get(&self.key(b)).is_none() {
                let _ = store.set(&self.key(b), b"v1\n", 0);
            }
        }
        if self.placement == Placement::ByScope && self.salt(store).is_none() {
            let _ = store.set(&self.salt_key(), fresh_secret(2).as_bytes(), 0);
        }
    }

    /// The proxy's secret for placing scopes (`Placement::ByScope`), made when the ledger
    /// is prepared; `None` before. Mixed into the scope, it keeps anyone from working out
    /// offline which identities share a bucket, and so from gathering enough of them to
    /// fill the bucket another caller needs.
    pub fn salt(&self, store: &dyn SharedData) -> Option<String> {
        store
            .get(&self.salt_key())
            .and_then(|(v, _)| String::from_utf8(v).ok())
            .filter(|s| !s.is_empty())
    }

    fn salt_key(&self) -> String {
        format!("{}.salt", self.name)
    }

    /// A read that found nothing recorded.
    pub fn nothing_held(&self) -> Held {
        Held {
            ledger: *self,
            scope: String::new(),
            ids: HashSet::new(),
        }
    }

    /// Changes bucket `k` with compare-and-swap, reading it again whenever another worker
    /// wrote in between. `missing` answers for a bucket that does not exist (`None`: try
    /// again, it was created).
    fn update(
        &self,
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
        Err(format!("the record of {} is contended; try again", self.entries))
    }

    /// Records `item` of `scope` until `exp`: `Ok(true)` when it is new, `Ok(false)` when
    /// it is recorded already (and unexpired; its expiry stays).
    pub fn insert(&self, store: &dyn SharedData, scope: &str, item: &str, exp: u64, now: u64) -> Result<bool, String> {
        self.insert_within(store, scope, item, exp, now, usize::MAX)
    }

    /// As `insert`, refusing a new entry when `scope` holds `quota` unexpired ones already
    /// (`Placement::ByScope`; other ledgers cannot count a scope's entries).
    pub fn insert_within(
        &self,
        store: &dyn SharedData,
        scope: &str,
        item: &str,
        exp: u64,
        now: u64,
        quota: usize,
    ) -> Result<bool, String> {
        let slot = self.slot(scope, item);
        let mark = (self.placement == Placement::ByScope).then(|| slot.id.get(..SCOPE_MARK).unwrap_or_default());
        let missing = || {
            self.prepare(store);
            None
        };
        self.update(store, &self.key(slot.bucket), missing, |current| {
            let mut kept = String::with_capacity(current.len() + ENTRY);
            for (id, e) in entries(current, now) {
                if id == slot.id {
                    return Ok(Edit::Answer(false));
                }
                kept.push_str(&format!("{id}:{e:08x}\n"));
            }
            if kept.len() / ENTRY >= BUCKET_CAPACITY {
                return Err(format!("too many unexpired {} recorded", self.entries));
            }
            if let Some(mark) = mark {
                let held = entries(current, now).filter(|(id, _)| id.starts_with(mark)).count();
                if held >= quota {
                    return Err(format!(
                        "{held} unexpired {} recorded for one caller already",
                        self.entries
                    ));
                }
            }
            kept.push_str(&format!("{}:{:08x}\n", slot.id, exp.min(u64::from(u32::MAX))));
            Ok(Edit::Write(kept))
        })
    }

    /// The unexpired entries of `scope`, read once to look many items up
    /// (`Placement::ByScope`, where a scope's entries share one bucket).
    pub fn held(&self, store: &dyn SharedData, scope: &str, now: u64) -> Held {
        let slot = self.slot(scope, "");
        let mark = slot.id.get(..SCOPE_MARK).unwrap_or_default();
        let ids = match (self.placement, store.get(&self.key(slot.bucket))) {
            (Placement::ByScope, Some((text, _))) => {
                let text = String::from_utf8_lossy(&text);
                entries(&text, now)
                    .filter(|(id, _)| id.starts_with(mark))
                    .map(|(id, _)| id.to_string())
                    .collect()
            }
            _ => HashSet::new(),
        };
        Held {
            ledger: *self,
            scope: scope.to_string(),
            ids,
        }
    }

    /// Whether `item` of `scope` is recorded and unexpired: read only.
    pub fn contains(&self, store: &dyn SharedData, scope: &str, item: &str, now: u64) -> bool {
        let slot = self.slot(scope, item);
        let Some((text, _)) = store.get(&self.key(slot.bucket)) else {
            return false;
        };
        let text = String::from_utf8_lossy(&text);
        let found = entries(&text, now).any(|(id, _)| id == slot.id);
        found
    }

    /// Forgets `item` of `scope`: `Ok(false)` when it was not recorded.
    pub fn remove(&self, store: &dyn SharedData, scope: &str, item: &str) -> Result<bool, String> {
        let slot = self.slot(scope, item);
        self.update(
            store,
            &self.key(slot.bucket),
            || Some(false),
            |current| {
                let mut kept = String::with_capacity(current.len());
                let mut found = false;
                for line in current.lines() {
                    if line.split_once(':').is_some_and(|(id, _)| id == slot.id) {
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
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::request::MemoryShared as Mem;

    const L: Ledger = Ledger {
        name: "test.ledger",
        entries: "things",
        placement: Placement::ByItem,
    };
    const BY_SCOPE: Ledger = Ledger {
        name: "test.scoped",
        entries: "things",
        placement: Placement::ByScope,
    };

    #[test]
    fn entries_live_until_expiry_and_are_scoped() {
        let m = Mem::default();
        L.prepare(&m);
        assert_eq!(L.insert(&m, "a", "x", 200, 100), Ok(true));
        assert_eq!(L.insert(&m, "a", "x", 300, 150), Ok(false), "recorded already");
        assert!(L.contains(&m, "a", "x", 199));
        assert!(!L.contains(&m, "a", "x", 200), "expired");
        assert!(!L.contains(&m, "b", "x", 150), "another scope's");
        assert_eq!(L.insert(&m, "a", "x", 300, 201), Ok(true), "expired entries are pruned");
        assert_eq!(L.remove(&m, "a", "x"), Ok(true));
        assert_eq!(L.remove(&m, "a", "x"), Ok(false));
        assert!(!L.contains(&m, "a", "x", 202));
    }

    #[test]
    fn each_proxy_places_scopes_by_a_secret_of_its_own() {
        let (a, b) = (Mem::default(), Mem::default());
        assert_eq!(BY_SCOPE.salt(&a), None);
        BY_SCOPE.prepare(&a);
        BY_SCOPE.prepare(&b);
        let salt = BY_SCOPE.salt(&a).unwrap();
        assert_eq!(salt.len(), 32);
        BY_SCOPE.prepare(&a);
        assert_eq!(BY_SCOPE.salt(&a), Some(salt.clone()), "kept once made");
        assert_ne!(BY_SCOPE.salt(&b), Some(salt), "another proxy's is another");
        // Spread by item, entries need none.
        L.prepare(&a);
        assert_eq!(L.salt(&a), None);
    }

    #[test]
    fn a_missing_bucket_is_created_again() {
        let m = Mem::default();
        assert!(!L.contains(&m, "a", "x", 0));
        assert_eq!(L.insert(&m, "a", "x", 200, 100), Ok(true));
        assert!(L.contains(&m, "a", "x", 100));
    }

    #[test]
    fn memory_is_bounded() {
        let m = Mem::default();
        L.prepare(&m);
        let in_zero = |i: u32| {
            let item = format!("{i}");
            (L.slot("a", &item).bucket == 0).then_some(item)
        };
        let items: Vec<String> = (0..).filter_map(in_zero).take(BUCKET_CAPACITY + 1).collect();
        let (last, first) = items.split_last().unwrap();
        for item in first {
            assert_eq!(L.insert(&m, "a", item, 10_000, 1), Ok(true));
        }
        let full = L.insert(&m, "a", last, 10_000, 1).unwrap_err();
        assert_eq!(full, "too many unexpired things recorded");
        assert!(m.get(&L.key(0)).unwrap().0.len() <= BUCKET_CAPACITY * ENTRY + 3);
        // Once they expire, room returns.
        assert_eq!(L.insert(&m, "a", last, 20_000, 10_001), Ok(true));
        assert!(m.get(&L.key(0)).unwrap().0.len() <= 2 * ENTRY);
    }

    #[test]
    fn a_scope_is_held_to_its_quota_in_its_own_bucket() {
        let m = Mem::default();
        BY_SCOPE.prepare(&m);
        let a = BY_SCOPE.slot("alice", "t1");
        assert_eq!(a.bucket, BY_SCOPE.slot("alice", "t2").bucket, "one bucket per scope");
        assert_eq!(a.id.len(), 16);
        assert_eq!(
            a.id.get(..SCOPE_MARK),
            BY_SCOPE.slot("alice", "t2").id.get(..SCOPE_MARK)
        );
        for i in 0..3 {
            assert_eq!(
                BY_SCOPE.insert_within(&m, "alice", &format!("t{i}"), 100, 1, 3),
                Ok(true)
            );
        }
        let over = BY_SCOPE.insert_within(&m, "alice", "t3", 100, 1, 3).unwrap_err();
        assert_eq!(over, "3 unexpired things recorded for one caller already");
        assert_eq!(
            BY_SCOPE.insert_within(&m, "alice", "t0", 100, 1, 3),
            Ok(false),
            "held already"
        );
        // Another scope in the same bucket is not counted against alice's quota.
        let bob = (0..)
            .map(|i: u32| format!("bob{i}"))
            .find(|b| {
                BY_SCOPE.slot(b, "t").bucket == a.bucket
                    && BY_SCOPE.slot(b, "t").id.get(..SCOPE_MARK) != a.id.get(..SCOPE_MARK)
            })
            .unwrap();
        assert_eq!(BY_SCOPE.insert_within(&m, &bob, "t9", 100, 1, 3), Ok(true));
        assert!(BY_SCOPE.contains(&m, "alice", "t1", 50) && !BY_SCOPE.contains(&m, &bob, "t1", 50));
        // Room returns as alice's entries expire.
        assert_eq!(BY_SCOPE.insert_within(&m, "alice", "t3", 200, 100, 3), Ok(true));
    }
}
