//! aigate: identity-bound, intent-based authorisation for AI traffic.
//!
//! The engine (everything but `plugin`) is pure: config → compiled policy; request →
//! actions; principal + actions → decision. Only `plugin` talks to the proxy-wasm host.
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)
)]

pub mod approval;
pub mod audit;
pub mod authz;
#[cfg(not(target_arch = "wasm32"))]
pub mod cli;
pub mod config;
pub mod decision;
pub mod digest;
pub mod engine;
pub mod identity;
pub mod json;
pub mod jws;
pub mod ledger;
pub mod media;
pub mod metrics;
pub mod output;
#[cfg(target_arch = "wasm32")]
mod plugin;
pub mod policy;
pub mod request;
pub mod response;
pub mod sessions;
pub mod tasks;
