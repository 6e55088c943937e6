//! Per-VM host state (the `T` of the wasmtime `Store`) and the state of the HTTP stream
//! being driven.

use std::collections::{BTreeMap, HashMap};

use wasmtime_wasi::p1::WasiP1Ctx;

use crate::abi::{LogLevel, MetricType, StreamType};
use crate::headers::HeaderMap;
use crate::host::Host;
use crate::request::{LocalReply, LogEntry};

/// What the VM is doing, which decides what host calls may see (Envoy hands out the plugin
/// configuration only during `proxy_on_configure`, header maps only while their filter
/// callback may touch them, and so on).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum VmPhase {
    Idle,
    Initialize,
    VmStart,
    Configure,
    Stream,
}

/// One header map and whether Envoy currently hands it to the plugin.
#[derive(Clone, Debug, Default)]
pub(crate) struct MapSlot {
    pub(crate) map: HeaderMap,
    /// Envoy's `request_headers_` & co: set when the callback for this map starts, cleared
    /// once the callback returns `Continue`. While unset, reads fail with `BadArgument`
    /// (`proxy_get_header_map_pairs` returns an empty list) and writes fail with
    /// `BadArgument`.
    pub(crate) live: bool,
    /// Whether the map exists at all (trailers may not).
    pub(crate) present: bool,
}

#[derive(Clone, Debug, Default)]
pub(crate) struct BodySlot {
    /// What `get_buffer_bytes` sees: the buffered data (all chunks since the plugin started
    /// returning `StopIterationAndBuffer`) or the current chunk.
    pub(crate) data: Vec<u8>,
    /// Envoy's `request_body_buffer_` / buffering flag: a buffer is visible.
    pub(crate) visible: bool,
}

/// A host call's effect that Envoy defers until the VM call returns.
#[derive(Clone, Debug)]
pub(crate) enum Deferred {
    LocalReply(LocalReply),
    Continue(StreamType),
    Close(StreamType),
}

#[derive(Debug)]
pub(crate) struct Stream {
    pub(crate) context_id: u32,
    pub(crate) request_headers: MapSlot,
    pub(crate) request_trailers: MapSlot,
    pub(crate) response_headers: MapSlot,
    pub(crate) response_trailers: MapSlot,
    pub(crate) request_body: BodySlot,
    pub(crate) response_body: BodySlot,
    pub(crate) end_of_stream: bool,
    /// `proxy_on_log` sees the final request and response headers read-only.
    pub(crate) access_log_phase: bool,
    /// Test-provided properties, keyed by path segments joined with NUL.
    pub(crate) properties: HashMap<Vec<u8>, Vec<u8>>,
    /// Values the plugin set with `proxy_set_property` (Envoy filter state `wasm.<path>`).
    pub(crate) filter_state: BTreeMap<Vec<u8>, Vec<u8>>,
    /// Bytes the plugin wrote into body buffers (`proxy_set_buffer_bytes`).
    pub(crate) body_bytes_written: u64,
    pub(crate) deferred: Vec<Deferred>,
}

impl Stream {
    pub(crate) fn new(context_id: u32, headers: HeaderMap, properties: HashMap<Vec<u8>, Vec<u8>>) -> Self {
        Stream {
            context_id,
            request_headers: MapSlot {
                map: headers,
                live: false,
                present: true,
            },
            request_trailers: MapSlot::default(),
            response_headers: MapSlot::default(),
            response_trailers: MapSlot::default(),
            request_body: BodySlot::default(),
            response_body: BodySlot::default(),
            end_of_stream: false,
            access_log_phase: false,
            properties,
            filter_state: BTreeMap::new(),
            body_bytes_written: 0,
            deferred: Vec::new(),
        }
    }
}

/// Per-VM metric id table. Envoy gives every `proxy_define_metric` call a fresh id (the low
/// two bits encode the type) but ids of the same name point at the same stat.
#[derive(Debug)]
pub(crate) struct MetricIds {
    next: [u32; 3],
    pub(crate) by_id: HashMap<u32, (MetricType, String)>,
}

impl Default for MetricIds {
    fn default() -> Self {
        // Envoy: next_counter_metric_id_ = Counter (0), gauge = 1, histogram = 2;
        // kMetricIdIncrement = 4.
        MetricIds {
            next: [0, 1, 2],
            by_id: HashMap::new(),
        }
    }
}

impl MetricIds {
    pub(crate) fn define(&mut self, ty: MetricType, name: &str) -> u32 {
        let slot = ty as usize;
        let id = self.next[slot];
        self.next[slot] = id.wrapping_add(4);
        self.by_id.insert(id, (ty, name.to_owned()));
        id
    }
}

pub(crate) struct StoreState {
    pub(crate) wasi: WasiP1Ctx,
    pub(crate) host: Host,
    pub(crate) phase: VmPhase,
    pub(crate) root_context_id: u32,
    pub(crate) vm_configuration: Vec<u8>,
    pub(crate) plugin_configuration: Vec<u8>,
    pub(crate) log_level: LogLevel,
    pub(crate) root_properties: HashMap<Vec<u8>, Vec<u8>>,
    pub(crate) stream: Option<Stream>,
    pub(crate) metric_ids: MetricIds,
    pub(crate) logs: Vec<LogEntry>,
    /// Calls to the `env` imports, by import name.
    pub(crate) host_calls: BTreeMap<String, u64>,
    /// Calls to the WASI imports the harness can observe.
    pub(crate) wasi_counts: std::sync::Arc<crate::wasi::WasiCounts>,
    /// Calls the host made into the module, by export name.
    pub(crate) guest_calls: BTreeMap<String, u64>,
    /// Wasm operators the module has executed (wasmtime fuel spent), across every call.
    pub(crate) fuel_used: u64,
    /// The same, by export called.
    pub(crate) fuel_by_export: BTreeMap<String, u64>,
    /// Things the module did that Envoy would tolerate but that indicate a bug
    /// (malformed pairs, writes to maps that are no longer live, ...).
    pub(crate) anomalies: Vec<String>,
    pub(crate) tick_period_ms: Option<u32>,
    /// Context id of the callback being run (what the host attributes calls to).
    pub(crate) active_context: u32,
}

impl StoreState {
    pub(crate) fn count_host_call(&mut self, name: &str) {
        *self.host_calls.entry(name.to_owned()).or_insert(0) += 1;
    }

    /// Host calls made by the module, by import name: every `env` import plus the WASI
    /// `random_get` and `clock_time_get`.
    pub(crate) fn host_calls_snapshot(&self) -> BTreeMap<String, u64> {
        let mut calls = self.host_calls.clone();
        for (name, n) in self.wasi_counts.snapshot() {
            if n > 0 {
                calls.insert(name.to_owned(), n);
            }
        }
        calls
    }

    pub(crate) fn count_guest_call(&mut self, name: &str) {
        *self.guest_calls.entry(name.to_owned()).or_insert(0) += 1;
    }

    pub(crate) fn anomaly(&mut self, msg: impl Into<String>) {
        self.anomalies.push(msg.into());
    }
}
