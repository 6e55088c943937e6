//! `wasi_snapshot_preview1` for the module, from wasmtime-wasi's preview1 support.
//!
//! The module is a wasip1 reactor: std may call `fd_write` (panic messages), `environ_*`,
//! `random_get` (hash map seeds) and `clock_time_get`. The clocks follow the host's test
//! clock; stdout and stderr are captured so a trap report can include them; `random_get`
//! and `clock_time_get` are counted through the RNG and clocks handed to wasmtime-wasi
//! (wasmtime-wasi's functions read guest memory through their caller, so they cannot be
//! wrapped by a forwarding host function).

use std::convert::Infallible;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use wasmtime_wasi::p1::WasiP1Ctx;
use wasmtime_wasi::p2::pipe::MemoryOutputPipe;
use wasmtime_wasi::{HostMonotonicClock, HostWallClock, Rng, WasiCtxBuilder};

use crate::host::Host;

/// WASI calls observed through the objects the harness hands to wasmtime-wasi.
#[derive(Debug, Default)]
pub(crate) struct WasiCounts {
    random_get: AtomicU64,
    clock_time_get: AtomicU64,
}

impl WasiCounts {
    /// `(import name, calls)` for the counted WASI imports.
    pub(crate) fn snapshot(&self) -> [(&'static str, u64); 2] {
        [
            ("random_get", self.random_get.load(Ordering::Relaxed)),
            ("clock_time_get", self.clock_time_get.load(Ordering::Relaxed)),
        ]
    }
}

struct TestWallClock(Host, Arc<WasiCounts>);

impl HostWallClock for TestWallClock {
    fn resolution(&self) -> Duration {
        Duration::from_nanos(1)
    }
    fn now(&self) -> Duration {
        self.1.clock_time_get.fetch_add(1, Ordering::Relaxed);
        Duration::from_nanos(self.0.time_nanos())
    }
}

struct TestMonotonicClock(Host, Arc<WasiCounts>);

impl HostMonotonicClock for TestMonotonicClock {
    fn resolution(&self) -> u64 {
        1
    }
    fn now(&self) -> u64 {
        self.1.clock_time_get.fetch_add(1, Ordering::Relaxed);
        self.0.time_nanos()
    }
}

/// The default secure RNG, counting each fill (one per `random_get`).
struct CountingRng {
    inner: Box<dyn Rng + Send>,
    counts: Arc<WasiCounts>,
}

impl rand_core::TryRng for CountingRng {
    type Error = Infallible;
    fn try_next_u32(&mut self) -> Result<u32, Infallible> {
        Ok(self.inner.next_u32())
    }
    fn try_next_u64(&mut self) -> Result<u64, Infallible> {
        Ok(self.inner.next_u64())
    }
    fn try_fill_bytes(&mut self, dst: &mut [u8]) -> Result<(), Infallible> {
        self.counts.random_get.fetch_add(1, Ordering::Relaxed);
        self.inner.fill_bytes(dst);
        Ok(())
    }
}

/// Captured guest stdout/stderr.
#[derive(Clone)]
pub(crate) struct Output {
    pub(crate) stdout: MemoryOutputPipe,
    pub(crate) stderr: MemoryOutputPipe,
}

impl Output {
    pub(crate) fn stderr_text(&self) -> String {
        String::from_utf8_lossy(&self.stderr.contents()).into_owned()
    }
    pub(crate) fn stdout_text(&self) -> String {
        String::from_utf8_lossy(&self.stdout.contents()).into_owned()
    }
}

pub(crate) fn context(host: &Host) -> (WasiP1Ctx, Output, Arc<WasiCounts>) {
    let output = Output {
        stdout: MemoryOutputPipe::new(1 << 20),
        stderr: MemoryOutputPipe::new(1 << 20),
    };
    let counts = Arc::new(WasiCounts::default());
    let ctx = WasiCtxBuilder::new()
        .stdout(output.stdout.clone())
        .stderr(output.stderr.clone())
        .wall_clock(TestWallClock(host.clone(), counts.clone()))
        .monotonic_clock(TestMonotonicClock(host.clone(), counts.clone()))
        .secure_random(CountingRng {
            inner: wasmtime_wasi::thread_rng(),
            counts: counts.clone(),
        })
        .build_p1();
    (ctx, output, counts)
}
