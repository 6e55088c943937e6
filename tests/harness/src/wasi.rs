//! `wasi_snapshot_preview1` for the module, from wasmtime-wasi's preview1 support.
//!
//! The module is a wasip1 reactor: std may call `fd_write` (panic messages), `environ_*`,
//! `random_get` (hash map seeds) and `clock_time_get`. Each WASI import the module uses is
//! wrapped so it is counted like the proxy-wasm imports; the clocks follow the host's test
//! clock; stdout and stderr are captured so a trap report can include them.

use std::time::Duration;

use wasmtime::{Extern, Func, Linker, Module, Store};
use wasmtime_wasi::p1::{self, WasiP1Ctx};
use wasmtime_wasi::p2::pipe::MemoryOutputPipe;
use wasmtime_wasi::{HostMonotonicClock, HostWallClock, WasiCtxBuilder};

use crate::host::Host;
use crate::state::StoreState;

const WASI_MODULE: &str = "wasi_snapshot_preview1";

struct TestWallClock(Host);

impl HostWallClock for TestWallClock {
    fn resolution(&self) -> Duration {
        Duration::from_nanos(1)
    }
    fn now(&self) -> Duration {
        Duration::from_nanos(self.0.time_nanos())
    }
}

struct TestMonotonicClock(Host);

impl HostMonotonicClock for TestMonotonicClock {
    fn resolution(&self) -> u64 {
        1
    }
    fn now(&self) -> u64 {
        self.0.time_nanos()
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

pub(crate) fn context(host: &Host) -> (WasiP1Ctx, Output) {
    let output = Output {
        stdout: MemoryOutputPipe::new(1 << 20),
        stderr: MemoryOutputPipe::new(1 << 20),
    };
    let ctx = WasiCtxBuilder::new()
        .stdout(output.stdout.clone())
        .stderr(output.stderr.clone())
        .wall_clock(TestWallClock(host.clone()))
        .monotonic_clock(TestMonotonicClock(host.clone()))
        .build_p1();
    (ctx, output)
}

/// Defines, in `linker`, a counting wrapper for each WASI function `module` imports.
pub(crate) fn link(
    engine: &wasmtime::Engine,
    linker: &mut Linker<StoreState>,
    store: &mut Store<StoreState>,
    module: &Module,
) -> wasmtime::Result<()> {
    let mut wasi: Linker<StoreState> = Linker::new(engine);
    p1::add_to_linker_sync(&mut wasi, |s: &mut StoreState| &mut s.wasi)?;
    for import in module.imports() {
        if import.module() != WASI_MODULE {
            continue;
        }
        let name = import.name().to_owned();
        let Ok(Extern::Func(inner)) = wasi.get(&mut *store, WASI_MODULE, &name) else {
            continue;
        };
        let ty = inner.ty(&*store);
        let counted = name.clone();
        let wrapper = Func::new(&mut *store, ty, move |mut caller, params, results| {
            caller.data_mut().count_host_call(&counted);
            inner.call(&mut caller, params, results)
        });
        linker.define(&*store, WASI_MODULE, &name, wrapper)?;
    }
    Ok(())
}
