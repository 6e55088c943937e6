//! Properties (`proxy_get_property`) and filter state (`proxy_set_property`).
//!
//! Paths are the SDK's serialisation: segments joined with NUL. Lookup order: values the
//! plugin set on this stream (Envoy filter state `wasm.<path>`), properties the test gave
//! the request, properties Envoy derives from the request headers (`request.path`, ...),
//! then VM-wide properties (`plugin_name`, ...).

use super::{status, tri, HostResult};
use crate::abi::{encode_pairs, Status};
use crate::memory::{self, Ctx};
use crate::state::Stream;

fn derived(stream: &Stream, path: &[u8]) -> Option<Vec<u8>> {
    let headers = &stream.request_headers.map;
    let segments: Vec<&[u8]> = path.split(|b| *b == 0).collect();
    let header = |name: &str| headers.get(name).map(<[u8]>::to_vec);
    match segments.as_slice() {
        [b"request", b"path"] => header(":path"),
        [b"request", b"url_path"] => header(":path").map(|p| {
            let end = p.iter().position(|b| *b == b'?').unwrap_or(p.len());
            p[..end].to_vec()
        }),
        [b"request", b"host"] => header(":authority"),
        [b"request", b"scheme"] => header(":scheme"),
        [b"request", b"method"] => header(":method"),
        [b"request", b"id"] => header("x-request-id"),
        [b"request", b"useragent"] => header("user-agent"),
        [b"request", b"referer"] => header("referer"),
        [b"request", b"protocol"] => Some(b"HTTP/1.1".to_vec()),
        [b"request", b"headers"] => {
            let pairs: Vec<(&str, &[u8])> = headers.iter().collect();
            Some(encode_pairs(&pairs))
        }
        [b"request", b"headers", name] => headers.get(name).map(<[u8]>::to_vec),
        [b"response", b"code"] => {
            let code = stream.response_headers.map.get(":status")?;
            let code: i64 = std::str::from_utf8(code).ok()?.parse().ok()?;
            Some(code.to_le_bytes().to_vec())
        }
        _ => None,
    }
}

pub(crate) fn proxy_get_property(caller: &mut Ctx<'_>, pp: u32, pl: u32, ptr_ptr: u32, size_ptr: u32) -> HostResult {
    let path = tri!(memory::read(caller, pp, pl));
    let state = caller.data();
    let found = state
        .stream
        .as_ref()
        .and_then(|s| {
            s.filter_state
                .get(&path)
                .or_else(|| s.properties.get(&path))
                .cloned()
                .or_else(|| derived(s, &path))
        })
        .or_else(|| state.root_properties.get(&path).cloned());
    let Some(value) = found else {
        return status(Status::NotFound);
    };
    tri!(memory::copy_out(caller, &value, ptr_ptr, size_ptr)?);
    status(Status::Ok)
}

/// Envoy stores the value as filter state `wasm.<path>`; without a stream (root context)
/// there is no stream info and the call fails with `NotFound` (the SDK panics on it).
pub(crate) fn proxy_set_property(caller: &mut Ctx<'_>, pp: u32, pl: u32, vp: u32, vl: u32) -> HostResult {
    let path = tri!(memory::read(caller, pp, pl));
    let value = tri!(memory::read(caller, vp, vl));
    let state = caller.data_mut();
    match state.stream.as_mut() {
        Some(stream) => {
            stream.filter_state.insert(path, value);
            status(Status::Ok)
        }
        None => {
            state.anomaly("proxy_set_property outside an HTTP stream (NotFound)");
            status(Status::NotFound)
        }
    }
}
