//! The engine's view of the host, backed by proxy-wasm host calls.

use crate::request::{Host, SetError, SharedData};
use proxy_wasm::hostcalls;
use proxy_wasm::types::{BufferType, Status};
use serde_json::{Map, Value};

pub struct ProxyHost;
pub struct ProxyShared;

impl Host for ProxyHost {
    fn now(&self) -> u64 {
        hostcalls::get_current_time()
            .ok()
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map_or(0, |d| d.as_secs())
    }

    fn peer_uri_san(&self) -> Option<String> {
        let raw = hostcalls::get_property(vec!["connection", "uri_san_peer_certificate"]).ok()??;
        String::from_utf8(raw).ok().filter(|s| !s.is_empty())
    }

    fn jwt_payload(&self, namespace: &str, key: &str) -> Option<Map<String, Value>> {
        let raw = hostcalls::get_property(vec!["metadata"]).ok()??;
        crate::identity::metadata::payload_from_metadata(&raw, namespace, key)
    }

    fn shared(&self) -> &dyn SharedData {
        &ProxyShared
    }
}

impl SharedData for ProxyShared {
    fn get(&self, key: &str) -> Option<(Vec<u8>, u32)> {
        match hostcalls::get_shared_data(key) {
            // An empty value comes back as no bytes but a CAS: the key exists.
            Ok((value, Some(cas))) => Some((value.unwrap_or_default(), cas)),
            _ => None,
        }
    }

    fn set(&self, key: &str, value: &[u8], cas: u32) -> Result<(), SetError> {
        match hostcalls::set_shared_data(key, Some(value), Some(cas)) {
            Ok(()) => Ok(()),
            Err(Status::CasMismatch) => Err(SetError::CasMismatch),
            Err(_) => Err(SetError::Other),
        }
    }
}

#[link(wasm_import_module = "env")]
extern "C" {
    fn proxy_set_buffer_bytes(
        buffer_type: BufferType,
        start: usize,
        size: usize,
        buffer_data: *const u8,
        buffer_size: usize,
    ) -> Status;
}

/// Replaces `size` bytes at `start` of a host buffer; `false` when the host refuses. The
/// SDK's `set_buffer` panics on a refusal (a VM trap), and Envoy refuses when it holds no
/// body (a response ending in trailers after its pieces were passed on).
pub fn set_buffer(buffer: BufferType, start: usize, size: usize, data: &[u8]) -> bool {
    // SAFETY: the pointer and length describe `data`, which outlives the call; the host
    // copies the bytes before it returns.
    let status = unsafe { proxy_set_buffer_bytes(buffer, start, size, data.as_ptr(), data.len()) };
    matches!(status, Status::Ok)
}
