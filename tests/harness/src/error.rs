//! Harness errors. A trap is an error, never a panic, so a test can assert the plugin
//! never traps.

use std::path::PathBuf;

#[derive(Debug, Clone)]
pub enum HarnessError {
    /// The `.wasm` file does not exist.
    ModuleMissing { path: PathBuf },
    /// Reading, compiling, linking or instantiating the module failed.
    Load(String),
    /// The module trapped (panic, unreachable, out of bounds, fuel exhausted, ...) while
    /// running `export`. The VM is unusable afterwards, as in Envoy.
    Trap { export: String, message: String },
    /// An earlier trap left the VM failed (Envoy answers every later request with 503 under
    /// `FAIL_CLOSED`).
    VmFailed(String),
    /// `proxy_on_vm_start` or `proxy_on_configure` returned false: Envoy would reject the
    /// configuration and never send requests to this VM.
    NotConfigured,
}

impl std::fmt::Display for HarnessError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            HarnessError::ModuleMissing { path } => write!(
                f,
                "plugin module not found at {}: run `cargo build --release --target wasm32-wasip1` \
                 in the repository root first (or point AIGATE_WASM at the module)",
                path.display()
            ),
            HarnessError::Load(msg) => write!(f, "loading the plugin module failed: {msg}"),
            HarnessError::Trap { export, message } => {
                write!(f, "the plugin trapped in {export}: {message}")
            }
            HarnessError::VmFailed(msg) => {
                write!(f, "the plugin VM failed earlier and cannot serve requests: {msg}")
            }
            HarnessError::NotConfigured => write!(
                f,
                "the plugin rejected its configuration (on_vm_start/on_configure returned false)"
            ),
        }
    }
}

impl std::error::Error for HarnessError {}

impl HarnessError {
    pub fn is_trap(&self) -> bool {
        matches!(self, HarnessError::Trap { .. } | HarnessError::VmFailed(_))
    }
}
