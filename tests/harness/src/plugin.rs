//! Loading the module as Envoy does and calling into it.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};
use std::time::SystemTime;

use wasmtime::{Config, Engine, Instance, Linker, Module, Store, Val};

use crate::abi::LogLevel;
use crate::error::HarnessError;
use crate::host::Host;
use crate::imports;
use crate::request::{property_key, LogEntry, Outcome, Request};
use crate::state::{MetricIds, StoreState, VmPhase};
use crate::wasi::{self, Output};
use wasmtime_wasi::p1;

/// Instructions a single callback may execute before the harness calls it a hang.
const FUEL_PER_CALL: u64 = 20_000_000_000;

/// How the simulated Envoy is configured.
#[derive(Clone, Debug)]
pub struct HostOptions {
    /// Envoy ≥ 1.35 `allow_on_headers_stop_iteration`. When false (Envoy's default, and
    /// Istio's only behaviour), `StopIteration` from `proxy_on_request_headers` is turned
    /// into `StopAllIterationAndWatermark`: body callbacks are withheld and the request
    /// hangs.
    pub allow_on_headers_stop_iteration: bool,
    /// The listener/route buffer limit. When the body a plugin buffers
    /// (`StopIterationAndBuffer`) would exceed it, Envoy answers 413 itself.
    pub buffer_limit_bytes: usize,
    /// What `proxy_get_log_level` returns (Envoy's default is info).
    pub log_level: LogLevel,
    /// `vm_config.configuration` (the buffer `proxy_on_vm_start` may read).
    pub vm_configuration: Vec<u8>,
    /// `root_id` of the plugin config.
    pub root_id: String,
    /// `name` of the plugin config (property `plugin_name`).
    pub plugin_name: String,
    /// Extra VM-wide properties (path segments -> value).
    pub root_properties: Vec<(Vec<String>, Vec<u8>)>,
}

impl Default for HostOptions {
    fn default() -> Self {
        HostOptions {
            allow_on_headers_stop_iteration: false,
            buffer_limit_bytes: 1 << 20,
            log_level: LogLevel::Info,
            vm_configuration: Vec::new(),
            root_id: String::new(),
            plugin_name: "aigate".to_owned(),
            root_properties: Vec::new(),
        }
    }
}

fn engine() -> &'static Engine {
    static ENGINE: OnceLock<Engine> = OnceLock::new();
    ENGINE.get_or_init(|| {
        let mut config = Config::new();
        config.consume_fuel(true);
        // `Engine::new` only fails for contradictory settings, which these are not.
        #[allow(clippy::expect_used)]
        Engine::new(&config).expect("wasmtime engine")
    })
}

/// Compiling a release module takes a second or more: compile each file version once per
/// test process.
fn compile(path: &Path) -> Result<Module, HarnessError> {
    type Key = (PathBuf, Option<SystemTime>, u64);
    static CACHE: OnceLock<Mutex<HashMap<Key, Module>>> = OnceLock::new();
    let meta = std::fs::metadata(path).map_err(|_| HarnessError::ModuleMissing { path: path.to_owned() })?;
    let key = (path.to_owned(), meta.modified().ok(), meta.len());
    let cache = CACHE.get_or_init(|| Mutex::new(HashMap::new()));
    if let Some(m) = cache.lock().unwrap_or_else(|e| e.into_inner()).get(&key) {
        return Ok(m.clone());
    }
    let module = Module::from_file(engine(), path).map_err(|e| HarnessError::Load(format!("{e:?}")))?;
    cache
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .insert(key, module.clone());
    Ok(module)
}

/// One worker's VM running the plugin.
pub struct Plugin {
    pub(crate) store: Store<StoreState>,
    instance: Instance,
    pub(crate) host: Host,
    pub(crate) options: HostOptions,
    pub(crate) root_context_id: u32,
    pub(crate) next_context_id: u32,
    vm_start_ok: bool,
    configure_ok: bool,
    failed: Option<String>,
    output: Output,
    unknown_imports: Vec<String>,
    exports: Vec<String>,
}

impl std::fmt::Debug for Plugin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Plugin")
            .field("vm_start_ok", &self.vm_start_ok)
            .field("configure_ok", &self.configure_ok)
            .field("failed", &self.failed)
            .finish_non_exhaustive()
    }
}

impl Plugin {
    /// Loads the module in a fresh [`Host`] with default options, runs `_initialize`,
    /// creates the root context, and calls `proxy_on_vm_start` and `proxy_on_configure`
    /// with `config_json` as the plugin configuration. A configuration the plugin rejects is
    /// not an error: check [`Plugin::configure_ok`].
    pub fn load(wasm_path: impl AsRef<Path>, config_json: &str) -> Result<Plugin, HarnessError> {
        Self::load_on(&Host::new(), wasm_path, config_json, HostOptions::default())
    }

    /// Like [`Plugin::load`], with options.
    pub fn load_with(
        wasm_path: impl AsRef<Path>,
        config_json: &str,
        options: HostOptions,
    ) -> Result<Plugin, HarnessError> {
        Self::load_on(&Host::new(), wasm_path, config_json, options)
    }

    /// Loads another worker VM into an existing [`Host`]: the VMs share shared data,
    /// shared queues, metrics and the clock, as Envoy's worker threads do.
    pub fn load_on(
        host: &Host,
        wasm_path: impl AsRef<Path>,
        config_json: &str,
        options: HostOptions,
    ) -> Result<Plugin, HarnessError> {
        let path = wasm_path.as_ref();
        if !path.is_file() {
            return Err(HarnessError::ModuleMissing { path: path.to_owned() });
        }
        let module = compile(path)?;
        let mut plugin =
            Self::instantiate(host, &module, config_json, options).map_err(|e| HarnessError::Load(format!("{e:?}")))?;
        plugin.start()?;
        Ok(plugin)
    }

    fn instantiate(host: &Host, module: &Module, config_json: &str, options: HostOptions) -> wasmtime::Result<Plugin> {
        let engine = engine();
        let (wasi_ctx, output, wasi_counts) = wasi::context(host);
        let mut root_properties: HashMap<Vec<u8>, Vec<u8>> = HashMap::new();
        root_properties.insert(property_key(&["plugin_name"]), options.plugin_name.clone().into_bytes());
        root_properties.insert(property_key(&["plugin_root_id"]), options.root_id.clone().into_bytes());
        root_properties.insert(property_key(&["plugin_vm_id"]), Vec::new());
        for (path, value) in &options.root_properties {
            root_properties.insert(property_key(path), value.clone());
        }
        let state = StoreState {
            wasi: wasi_ctx,
            host: host.clone(),
            phase: VmPhase::Idle,
            root_context_id: 1,
            vm_configuration: options.vm_configuration.clone(),
            plugin_configuration: config_json.as_bytes().to_vec(),
            log_level: options.log_level,
            root_properties,
            stream: None,
            metric_ids: MetricIds::default(),
            logs: Vec::new(),
            host_calls: BTreeMap::new(),
            wasi_counts,
            guest_calls: BTreeMap::new(),
            fuel_used: 0,
            fuel_by_export: BTreeMap::new(),
            anomalies: Vec::new(),
            tick_period_ms: None,
            active_context: 0,
        };
        let mut store = Store::new(engine, state);
        let mut linker: Linker<StoreState> = Linker::new(engine);
        imports::add_to_linker(&mut linker)?;
        p1::add_to_linker_sync(&mut linker, |s: &mut StoreState| &mut s.wasi)?;
        let mut unknown_imports = Vec::new();
        for import in module.imports() {
            if linker.get(&mut store, import.module(), import.name()).is_err() {
                unknown_imports.push(format!("{}::{}", import.module(), import.name()));
            }
        }
        // Envoy refuses to load a module importing what it does not provide; the harness
        // links such imports as traps and reports them (`unknown_imports`) so a test can
        // say which one is missing.
        linker.define_unknown_imports_as_traps(module)?;
        let instance = linker.instantiate(&mut store, module)?;
        let exports = module.exports().map(|e| e.name().to_owned()).collect();
        Ok(Plugin {
            store,
            instance,
            host: host.clone(),
            options,
            root_context_id: 1,
            next_context_id: 2,
            vm_start_ok: false,
            configure_ok: false,
            failed: None,
            output,
            unknown_imports,
            exports,
        })
    }

    /// `_initialize` (or `_start`), root context creation, `proxy_on_vm_start`,
    /// `proxy_on_configure`: proxy-wasm-cpp-host's `WasmBase::start` + `configure`.
    fn start(&mut self) -> Result<(), HarnessError> {
        self.set_phase(VmPhase::Initialize);
        if self.has_export("_initialize") {
            self.call("_initialize", &[])?;
        } else if self.has_export("_start") {
            self.call("_start", &[])?;
        }
        let root = self.root_context_id;
        self.store.data_mut().active_context = root;
        self.call("proxy_on_context_create", &[Val::I32(root as i32), Val::I32(0)])?;
        self.set_phase(VmPhase::VmStart);
        let vm_config_len = self.options.vm_configuration.len() as i32;
        self.vm_start_ok = self
            .call("proxy_on_vm_start", &[Val::I32(root as i32), Val::I32(vm_config_len)])?
            .is_none_or(|r| r != 0);
        if self.vm_start_ok {
            self.set_phase(VmPhase::Configure);
            let len = self.store.data().plugin_configuration.len() as i32;
            self.configure_ok = self
                .call("proxy_on_configure", &[Val::I32(root as i32), Val::I32(len)])?
                .is_none_or(|r| r != 0);
        }
        self.set_phase(VmPhase::Idle);
        Ok(())
    }

    pub(crate) fn set_phase(&mut self, phase: VmPhase) {
        self.store.data_mut().phase = phase;
    }

    pub fn has_export(&self, name: &str) -> bool {
        self.exports.iter().any(|e| e == name)
    }

    /// Calls an export. `Ok(None)` if the module does not export it (the host then uses the
    /// ABI default) or it returns nothing. A trap fails the VM.
    pub(crate) fn call(&mut self, export: &str, args: &[Val]) -> Result<Option<u32>, HarnessError> {
        if let Some(msg) = &self.failed {
            return Err(HarnessError::VmFailed(msg.clone()));
        }
        let Some(func) = self.instance.get_func(&mut self.store, export) else {
            return Ok(None);
        };
        self.store.data_mut().count_guest_call(export);
        // Fuel only runs out in an endless loop; `set_fuel` fails only without fuel enabled.
        let _ = self.store.set_fuel(FUEL_PER_CALL);
        let n_results = func.ty(&self.store).results().len();
        let mut results = vec![Val::I32(0); n_results];
        let log_mark = self.store.data().logs.len();
        let called = func.call(&mut self.store, args, &mut results);
        let left = self.store.get_fuel().unwrap_or(0);
        let spent = FUEL_PER_CALL.saturating_sub(left);
        let data = self.store.data_mut();
        data.fuel_used += spent;
        *data.fuel_by_export.entry(export.to_owned()).or_insert(0) += spent;
        match called {
            Ok(()) => Ok(results.first().and_then(Val::i32).map(|v| v as u32)),
            Err(e) => {
                let mut message = format!("{e:?}");
                let criticals: Vec<&LogEntry> = self.store.data().logs[log_mark..]
                    .iter()
                    .filter(|l| l.level >= LogLevel::Error)
                    .collect();
                for l in criticals {
                    message.push_str(&format!("\nplugin log ({:?}): {}", l.level, l.message));
                }
                let stderr = self.output.stderr_text();
                if !stderr.is_empty() {
                    message.push_str(&format!("\nguest stderr: {stderr}"));
                }
                self.failed = Some(message.clone());
                Err(HarnessError::Trap {
                    export: export.to_owned(),
                    message,
                })
            }
        }
    }

    /// Whether `proxy_on_configure` returned true (false also when vm start failed).
    pub fn configure_ok(&self) -> bool {
        self.vm_start_ok && self.configure_ok
    }

    pub fn vm_start_ok(&self) -> bool {
        self.vm_start_ok
    }

    /// Reconfigures the running VM (Envoy pushes a new plugin config to the same VM only
    /// when the VM config is unchanged). Returns what `proxy_on_configure` returned.
    pub fn reconfigure(&mut self, config_json: &str) -> Result<bool, HarnessError> {
        self.store.data_mut().plugin_configuration = config_json.as_bytes().to_vec();
        self.set_phase(VmPhase::Configure);
        let root = self.root_context_id;
        self.store.data_mut().active_context = root;
        let len = config_json.len() as i32;
        let result = self.call("proxy_on_configure", &[Val::I32(root as i32), Val::I32(len)]);
        self.set_phase(VmPhase::Idle);
        self.configure_ok = result?.is_none_or(|r| r != 0);
        Ok(self.configure_ok)
    }

    /// Drives one HTTP stream through the plugin (see [`crate::driver`]).
    pub fn request(&mut self, request: Request) -> Result<Outcome, HarnessError> {
        if let Some(msg) = &self.failed {
            return Err(HarnessError::VmFailed(msg.clone()));
        }
        if !self.configure_ok() {
            return Err(HarnessError::NotConfigured);
        }
        crate::driver::run(self, request)
    }

    /// Calls `proxy_on_tick` on the root context.
    pub fn tick(&mut self) -> Result<(), HarnessError> {
        let root = self.root_context_id;
        self.store.data_mut().active_context = root;
        self.call("proxy_on_tick", &[Val::I32(root as i32)])?;
        Ok(())
    }

    /// Calls `proxy_on_queue_ready` on the root context for a queue id.
    pub fn queue_ready(&mut self, queue_id: u32) -> Result<(), HarnessError> {
        let root = self.root_context_id;
        self.store.data_mut().active_context = root;
        self.call(
            "proxy_on_queue_ready",
            &[Val::I32(root as i32), Val::I32(queue_id as i32)],
        )?;
        Ok(())
    }

    /// The process this VM belongs to.
    pub fn host(&self) -> &Host {
        &self.host
    }

    pub fn options(&self) -> &HostOptions {
        &self.options
    }

    /// Counter/gauge value or histogram sample count, by the name the plugin defined.
    pub fn metric(&self, name: &str) -> Option<u64> {
        self.host.metric(name)
    }

    pub fn histogram(&self, name: &str) -> Option<Vec<u64>> {
        self.host.histogram(name)
    }

    pub fn metrics(&self) -> BTreeMap<String, crate::host::MetricValue> {
        self.host.metrics()
    }

    pub fn set_time_nanos(&self, nanos: u64) {
        self.host.set_time_nanos(nanos);
    }

    pub fn set_time_secs(&self, secs: u64) {
        self.host.set_time_secs(secs);
    }

    pub fn time_nanos(&self) -> u64 {
        self.host.time_nanos()
    }

    pub fn shared_data(&self, key: &str) -> Option<(Vec<u8>, u32)> {
        self.host.shared_data(key)
    }

    pub fn set_shared_data(&self, key: &str, value: &[u8], cas: u32) -> Result<(), crate::abi::Status> {
        self.host.set_shared_data(key, value, cas)
    }

    /// Every log line of this VM since load.
    pub fn logs(&self) -> &[LogEntry] {
        &self.store.data().logs
    }

    /// Host calls made by the module since load, by import name (every `env` import, and
    /// the WASI `random_get` and `clock_time_get`).
    pub fn host_calls(&self) -> BTreeMap<String, u64> {
        self.store.data().host_calls_snapshot()
    }

    /// Calls into the module since load, by export name.
    pub fn guest_calls(&self) -> &BTreeMap<String, u64> {
        &self.store.data().guest_calls
    }

    /// Calls Envoy would reject or ignore (writes to a map that is no longer handed out,
    /// malformed pairs, local replies outside a stream, callouts to unknown clusters, ...).
    pub fn anomalies(&self) -> &[String] {
        &self.store.data().anomalies
    }

    /// Imports the module references that the harness (and Envoy) do not provide.
    pub fn unknown_imports(&self) -> &[String] {
        &self.unknown_imports
    }

    /// The period the plugin asked for with `proxy_set_tick_period_milliseconds`.
    pub fn tick_period_ms(&self) -> Option<u32> {
        self.store.data().tick_period_ms
    }

    /// The trap message if the VM has failed.
    pub fn failure(&self) -> Option<&str> {
        self.failed.as_deref()
    }

    /// Text the guest wrote to stdout / stderr.
    pub fn guest_output(&self) -> (String, String) {
        (self.output.stdout_text(), self.output.stderr_text())
    }

    /// Bytes of linear memory the instance has now (to spot leaks across requests).
    pub fn memory_size(&mut self) -> usize {
        self.instance
            .get_memory(&mut self.store, "memory")
            .map_or(0, |m| m.data_size(&self.store))
    }
}
