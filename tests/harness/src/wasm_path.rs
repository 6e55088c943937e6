//! Where the plugin module is.

use std::path::PathBuf;

use crate::error::HarnessError;

/// `AIGATE_WASM` if set, else `target/wasm32-wasip1/release/aigate.wasm` in the repository
/// this harness belongs to.
pub fn default_wasm_path() -> PathBuf {
    if let Some(p) = std::env::var_os("AIGATE_WASM") {
        return PathBuf::from(p);
    }
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target/wasm32-wasip1/release/aigate.wasm")
}

/// [`default_wasm_path`], checked to exist, with a message saying how to build it.
pub fn plugin_wasm() -> Result<PathBuf, HarnessError> {
    let path = default_wasm_path();
    if path.is_file() {
        Ok(path)
    } else {
        Err(HarnessError::ModuleMissing { path })
    }
}
