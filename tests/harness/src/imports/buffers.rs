//! Body and configuration buffers.

use super::{status, tri, HostResult};
use crate::abi::{BufferType, Status};
use crate::memory::{self, Ctx};
use crate::state::{StoreState, VmPhase};

/// Envoy `getBuffer`: `None` is a null buffer (`NotFound`).
fn buffer(state: &StoreState, ty: BufferType) -> Option<Vec<u8>> {
    match ty {
        BufferType::VmConfiguration => Some(state.vm_configuration.clone()),
        // Only while `proxy_on_configure` runs (Envoy's `temp_plugin_`).
        BufferType::PluginConfiguration => {
            (state.phase == VmPhase::Configure).then(|| state.plugin_configuration.clone())
        }
        // Envoy returns a buffer wrapping the current body (possibly none: size 0).
        BufferType::HttpRequestBody => Some(
            state
                .stream
                .as_ref()
                .filter(|s| s.request_body.visible)
                .map(|s| s.request_body.data.clone())
                .unwrap_or_default(),
        ),
        BufferType::HttpResponseBody => Some(
            state
                .stream
                .as_ref()
                .filter(|s| s.response_body.visible)
                .map(|s| s.response_body.data.clone())
                .unwrap_or_default(),
        ),
        BufferType::CallData => Some(Vec::new()),
        _ => None,
    }
}

/// proxy-wasm-cpp-host `get_buffer_bytes`: the range is clamped to the buffer; an empty
/// range returns `Ok` without writing anything (the SDK then sees `None`).
pub(crate) fn proxy_get_buffer_bytes(
    caller: &mut Ctx<'_>,
    ty: u32,
    start: u32,
    max: u32,
    ptr_ptr: u32,
    size_ptr: u32,
) -> HostResult {
    let Some(ty) = BufferType::from_raw(ty) else {
        return status(Status::BadArgument);
    };
    let Some(data) = buffer(caller.data(), ty) else {
        return status(Status::NotFound);
    };
    let start = start as usize;
    if start > data.len() {
        return status(Status::BadArgument);
    }
    let len = (max as usize).min(data.len() - start);
    if len > 0 {
        tri!(memory::copy_out(caller, &data[start..start + len], ptr_ptr, size_ptr)?);
    }
    status(Status::Ok)
}

/// Envoy `Buffer::copyFrom` on a body: `start == 0 && size == 0` prepends,
/// `start == 0 && size >= len` replaces everything, `start >= len` appends; anything else
/// is `BadArgument`. Configuration buffers are immutable.
pub(crate) fn proxy_set_buffer_bytes(
    caller: &mut Ctx<'_>,
    ty: u32,
    start: u32,
    size: u32,
    ptr: u32,
    len: u32,
) -> HostResult {
    let data = tri!(memory::read(caller, ptr, len));
    let written = data.len() as u64;
    let state = caller.data_mut();
    let Some(stream) = state.stream.as_mut() else {
        return status(Status::BadArgument);
    };
    let body = match BufferType::from_raw(ty) {
        Some(BufferType::HttpRequestBody) => &mut stream.request_body,
        Some(BufferType::HttpResponseBody) => &mut stream.response_body,
        _ => return status(Status::BadArgument),
    };
    if !body.visible {
        return status(Status::BadArgument);
    }
    let (start, size) = (start as usize, size as usize);
    let current = body.data.len();
    if start == 0 && size == 0 {
        let mut new = data;
        new.extend_from_slice(&body.data);
        body.data = new;
    } else if start == 0 && size >= current {
        body.data = data;
    } else if start >= current {
        body.data.extend_from_slice(&data);
    } else {
        return status(Status::BadArgument);
    }
    stream.body_bytes_written += written;
    status(Status::Ok)
}
