//! A proxy-wasm host on wasmtime for testing the aigate module as Envoy runs it.
//!
//! The harness implements every `env` import the proxy-wasm Rust SDK 0.2.5 can reference
//! (ABI 0.2.1) with Envoy's semantics where a plugin can observe them, provides
//! `wasi_snapshot_preview1` through wasmtime-wasi, and drives HTTP streams through the
//! module's callbacks in Envoy's order. It records everything a test may assert: the action
//! each callback returned, local replies, request headers as forwarded upstream, response
//! headers as sent downstream, logs, metrics, filter state, shared data, and how many host
//! calls each request cost.
//!
//! ```no_run
//! use aigate_harness::{plugin_wasm, Plugin, Request};
//! let mut plugin = Plugin::load(plugin_wasm()?, r#"{"mode":"enforce"}"#)?;
//! assert!(plugin.configure_ok());
//! let outcome = plugin.request(Request::post("/mcp").json(r#"{"jsonrpc":"2.0","id":1,"method":"ping"}"#))?;
//! println!("{:?} {:?}", outcome.status(), outcome.host_calls);
//! # Ok::<(), aigate_harness::HarnessError>(())
//! ```
//!
//! Several [`Plugin`]s loaded from one [`Host`] behave as Envoy worker threads: they share
//! shared data (with CAS), shared queues, metrics and the clock.

pub mod abi;
mod driver;
mod error;
pub mod headers;
mod host;
mod imports;
mod memory;
mod plugin;
mod request;
mod state;
mod wasi;
mod wasm_path;

pub use abi::{Action, LogLevel, MetricType, Phase, Status, StreamType};
pub use error::HarnessError;
pub use headers::HeaderMap;
pub use host::{Host, MetricValue, DEFAULT_TIME_NANOS};
pub use imports::IMPORTS;
pub use plugin::{HostOptions, Plugin};
pub use request::{
    property_key, Callback, LocalReply, LogEntry, Outcome, Request, Response, Upstream, UpstreamResponse,
};
pub use wasm_path::{default_wasm_path, plugin_wasm};
