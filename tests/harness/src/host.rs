//! Process-wide host state: what every worker VM of one Envoy process shares.
//!
//! In Envoy, shared data and shared queues are per VM id across all worker threads, stats
//! live in the process-wide store, and the clock is the server's time source. A [`Host`] is
//! that process; each [`crate::Plugin`] loaded from it is one worker's VM.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use crate::abi::{MetricType, Status};

/// 2026-01-01T00:00:00Z: the default test clock, so tests are deterministic.
pub const DEFAULT_TIME_NANOS: u64 = 1_767_225_600 * 1_000_000_000;

/// A stat as Envoy's store holds it.
#[derive(Clone, Debug, PartialEq)]
pub enum MetricValue {
    Counter(u64),
    Gauge(i64),
    /// Every recorded sample, in order.
    Histogram(Vec<u64>),
}

impl MetricValue {
    pub fn metric_type(&self) -> MetricType {
        match self {
            MetricValue::Counter(_) => MetricType::Counter,
            MetricValue::Gauge(_) => MetricType::Gauge,
            MetricValue::Histogram(_) => MetricType::Histogram,
        }
    }
}

#[derive(Default)]
pub(crate) struct SharedState {
    /// key -> (value, cas)
    pub(crate) shared_data: HashMap<String, (Vec<u8>, u32)>,
    /// Envoy's `SharedData::cas_`: starts at 1, skips 0 on wrap.
    next_cas: u32,
    /// name -> queue id; queue id -> items
    pub(crate) queue_ids: HashMap<String, u32>,
    pub(crate) queues: HashMap<u32, VecDeque<Vec<u8>>>,
    next_queue_id: u32,
    /// (type, stat name) -> value. Keyed by the name the plugin defined (Envoy exposes it
    /// as `wasmcustom.<name>`).
    pub(crate) metrics: BTreeMap<(u32, String), MetricValue>,
}

impl SharedState {
    fn next_cas(&mut self) -> u32 {
        if self.next_cas == 0 {
            self.next_cas = 1;
        }
        let cas = self.next_cas;
        self.next_cas = self.next_cas.wrapping_add(1);
        if self.next_cas == 0 {
            self.next_cas = 1;
        }
        cas
    }

    /// proxy-wasm-cpp-host `SharedData::get`.
    pub(crate) fn get(&self, key: &str) -> Option<(Vec<u8>, u32)> {
        self.shared_data.get(key).cloned()
    }

    /// proxy-wasm-cpp-host `SharedData::set`: `cas == 0` writes unconditionally; a non-zero
    /// `cas` must match the stored one (a missing key accepts any cas). Every write gets a
    /// fresh cas.
    pub(crate) fn set(&mut self, key: &str, value: &[u8], cas: u32) -> Status {
        if let Some(entry) = self.shared_data.get(key) {
            if cas != 0 && cas != entry.1 {
                return Status::CasMismatch;
            }
        }
        let new_cas = self.next_cas();
        self.shared_data.insert(key.to_owned(), (value.to_vec(), new_cas));
        Status::Ok
    }

    pub(crate) fn register_queue(&mut self, name: &str) -> u32 {
        if let Some(id) = self.queue_ids.get(name) {
            return *id;
        }
        self.next_queue_id += 1;
        let id = self.next_queue_id;
        self.queue_ids.insert(name.to_owned(), id);
        self.queues.insert(id, VecDeque::new());
        id
    }
}

pub(crate) struct HostInner {
    pub(crate) state: Mutex<SharedState>,
    pub(crate) clock_nanos: AtomicU64,
}

/// One Envoy process. Cheap to clone (shared handle).
#[derive(Clone)]
pub struct Host {
    pub(crate) inner: Arc<HostInner>,
}

impl Default for Host {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Debug for Host {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Host")
            .field("time_nanos", &self.time_nanos())
            .finish_non_exhaustive()
    }
}

impl Host {
    pub fn new() -> Self {
        Host {
            inner: Arc::new(HostInner {
                state: Mutex::new(SharedState::default()),
                clock_nanos: AtomicU64::new(DEFAULT_TIME_NANOS),
            }),
        }
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, SharedState> {
        // A poisoned lock only means another test thread panicked; the data is still usable.
        self.inner.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Current host time (what `proxy_get_current_time_nanoseconds` and WASI clocks return).
    pub fn time_nanos(&self) -> u64 {
        self.inner.clock_nanos.load(Ordering::SeqCst)
    }

    pub fn set_time_nanos(&self, nanos: u64) {
        self.inner.clock_nanos.store(nanos, Ordering::SeqCst);
    }

    /// Sets the clock to a Unix time in seconds.
    pub fn set_time_secs(&self, secs: u64) {
        self.set_time_nanos(secs.saturating_mul(1_000_000_000));
    }

    pub fn advance(&self, by: std::time::Duration) {
        self.inner.clock_nanos.fetch_add(by.as_nanos() as u64, Ordering::SeqCst);
    }

    /// Shared data value and cas, as `proxy_get_shared_data` would return them.
    pub fn shared_data(&self, key: &str) -> Option<(Vec<u8>, u32)> {
        self.lock().get(key)
    }

    /// Writes shared data with Envoy's CAS rule (`cas == 0`: unconditional).
    pub fn set_shared_data(&self, key: &str, value: &[u8], cas: u32) -> Result<(), Status> {
        match self.lock().set(key, value, cas) {
            Status::Ok => Ok(()),
            other => Err(other),
        }
    }

    /// All shared data keys, sorted.
    pub fn shared_data_keys(&self) -> Vec<String> {
        let mut keys: Vec<String> = self.lock().shared_data.keys().cloned().collect();
        keys.sort();
        keys
    }

    /// Counter or gauge value (gauges clamped at 0), or the number of samples of a
    /// histogram, by the name the plugin defined. A `wasmcustom.` prefix (as Envoy's admin
    /// output shows it) is accepted and ignored. `None` if no metric has that name.
    pub fn metric(&self, name: &str) -> Option<u64> {
        let name = name.strip_prefix("wasmcustom.").unwrap_or(name);
        let state = self.lock();
        state
            .metrics
            .iter()
            .find(|((_, n), _)| n == name)
            .map(|(_, v)| match v {
                MetricValue::Counter(c) => *c,
                MetricValue::Gauge(g) => (*g).max(0) as u64,
                MetricValue::Histogram(samples) => samples.len() as u64,
            })
    }

    /// Samples recorded into a histogram.
    pub fn histogram(&self, name: &str) -> Option<Vec<u64>> {
        let name = name.strip_prefix("wasmcustom.").unwrap_or(name);
        let state = self.lock();
        state
            .metrics
            .get(&(MetricType::Histogram as u32, name.to_owned()))
            .and_then(|v| match v {
                MetricValue::Histogram(s) => Some(s.clone()),
                _ => None,
            })
    }

    /// Every defined metric by name.
    pub fn metrics(&self) -> BTreeMap<String, MetricValue> {
        self.lock()
            .metrics
            .iter()
            .map(|((_, n), v)| (n.clone(), v.clone()))
            .collect()
    }

    /// Items currently in a shared queue, by name.
    pub fn queue_len(&self, name: &str) -> Option<usize> {
        let state = self.lock();
        let id = state.queue_ids.get(name)?;
        state.queues.get(id).map(|q| q.len())
    }

    /// Loads one worker VM of this process (see [`crate::Plugin::load_on`]).
    pub fn load(
        &self,
        wasm_path: impl AsRef<std::path::Path>,
        config_json: &str,
    ) -> Result<crate::Plugin, crate::HarnessError> {
        crate::Plugin::load_on(self, wasm_path, config_json, crate::HostOptions::default())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cas_semantics_match_envoy() {
        let host = Host::new();
        assert_eq!(host.shared_data("k"), None);
        // Missing key: any cas is accepted.
        host.set_shared_data("k", b"a", 77).unwrap();
        let (v, cas) = host.shared_data("k").unwrap();
        assert_eq!(v, b"a");
        assert_ne!(cas, 0);
        assert_eq!(host.set_shared_data("k", b"b", cas + 1), Err(Status::CasMismatch));
        host.set_shared_data("k", b"b", cas).unwrap();
        let (_, cas2) = host.shared_data("k").unwrap();
        assert_ne!(cas, cas2);
        // Stale cas now fails; cas 0 always wins.
        assert_eq!(host.set_shared_data("k", b"c", cas), Err(Status::CasMismatch));
        host.set_shared_data("k", b"d", 0).unwrap();
        assert_eq!(host.shared_data("k").unwrap().0, b"d");
    }
}
