//! Header and trailer maps.
//!
//! Envoy hands a map to the plugin only while the filter callback that owns it may use it:
//! request headers from `proxy_on_request_headers` until a callback returns `Continue` for
//! them, and so on. Outside that window reads fail with `BadArgument` (the SDK panics on
//! it), `proxy_get_header_map_pairs` silently returns an empty list, and writes fail with
//! `BadArgument`. During `proxy_on_log` the final request and response headers are
//! readable; a missing key there is `NotFound`.

use super::{done, status, tri, HostResult};
use crate::abi::{decode_pairs, MapType, Status};
use crate::headers::HeaderMap;
use crate::memory::{self, Ctx};
use crate::state::{MapSlot, Stream};

fn slot(stream: &mut Stream, ty: MapType) -> Option<&mut MapSlot> {
    Some(match ty {
        MapType::RequestHeaders => &mut stream.request_headers,
        MapType::RequestTrailers => &mut stream.request_trailers,
        MapType::ResponseHeaders => &mut stream.response_headers,
        MapType::ResponseTrailers => &mut stream.response_trailers,
        _ => return None,
    })
}

/// Envoy `getConstMap`.
fn readable(caller: &mut Ctx<'_>, ty: u32) -> Option<HeaderMap> {
    let ty = MapType::from_raw(ty)?;
    let stream = caller.data_mut().stream.as_mut()?;
    let access_log = stream.access_log_phase;
    let slot = slot(stream, ty)?;
    if access_log {
        // Request trailers are not available to the access log.
        if ty == MapType::RequestTrailers || !slot.present {
            return None;
        }
        return Some(slot.map.clone());
    }
    slot.live.then(|| slot.map.clone())
}

fn in_access_log(caller: &Ctx<'_>) -> bool {
    caller.data().stream.as_ref().is_some_and(|s| s.access_log_phase)
}

/// Envoy `getMap`, then `f` on the mutable map. Trailers are created on demand when asked
/// for at the end of the stream during a body callback (Envoy `addDecodedTrailers`).
fn with_writable(caller: &mut Ctx<'_>, ty: u32, what: &str, f: impl FnOnce(&mut HeaderMap)) -> Result<(), Status> {
    let state = caller.data_mut();
    let result = (|| {
        let ty = MapType::from_raw(ty)?;
        let stream = state.stream.as_mut()?;
        if stream.access_log_phase {
            return None;
        }
        let body_visible_at_end = match ty {
            MapType::RequestTrailers => stream.request_body.visible && stream.end_of_stream,
            MapType::ResponseTrailers => stream.response_body.visible && stream.end_of_stream,
            _ => false,
        };
        let slot = slot(stream, ty)?;
        if !slot.live && !slot.present && body_visible_at_end {
            slot.present = true;
            slot.live = true;
        }
        if !slot.live {
            return None;
        }
        f(&mut slot.map);
        Some(())
    })();
    match result {
        Some(()) => Ok(()),
        None => {
            state.anomaly(format!(
                "{what} on map type {ty} while Envoy does not hand it out (BadArgument)"
            ));
            Err(Status::BadArgument)
        }
    }
}

pub(crate) fn proxy_get_header_map_pairs(caller: &mut Ctx<'_>, ty: u32, ptr_ptr: u32, size_ptr: u32) -> HostResult {
    let encoded = match readable(caller, ty) {
        Some(map) if !map.is_empty() => map.encode(),
        _ => Vec::new(),
    };
    tri!(memory::copy_out(caller, &encoded, ptr_ptr, size_ptr)?);
    status(Status::Ok)
}

pub(crate) fn proxy_set_header_map_pairs(caller: &mut Ctx<'_>, ty: u32, ptr: u32, len: u32) -> HostResult {
    let bytes = tri!(memory::read(caller, ptr, len));
    let pairs = match decode_pairs(&bytes) {
        Some(p) => p,
        None => {
            caller
                .data_mut()
                .anomaly("proxy_set_header_map_pairs: malformed pairs (treated as empty)");
            Vec::new()
        }
    };
    done(with_writable(caller, ty, "proxy_set_header_map_pairs", |m| {
        m.replace_all(pairs)
    }))
}

pub(crate) fn proxy_get_header_map_value(
    caller: &mut Ctx<'_>,
    ty: u32,
    kp: u32,
    kl: u32,
    ptr_ptr: u32,
    size_ptr: u32,
) -> HostResult {
    let key = tri!(memory::read(caller, kp, kl));
    let Some(map) = readable(caller, ty) else {
        return status(if in_access_log(caller) {
            Status::NotFound
        } else {
            Status::BadArgument
        });
    };
    let Some(value) = map.get(&key) else {
        return status(Status::NotFound);
    };
    let value = value.to_vec();
    tri!(memory::copy_out(caller, &value, ptr_ptr, size_ptr)?);
    status(Status::Ok)
}

pub(crate) fn proxy_remove_header_map_value(caller: &mut Ctx<'_>, ty: u32, kp: u32, kl: u32) -> HostResult {
    let key = tri!(memory::read(caller, kp, kl));
    done(with_writable(caller, ty, "proxy_remove_header_map_value", |m| {
        m.remove(&key)
    }))
}

pub(crate) fn proxy_replace_header_map_value(
    caller: &mut Ctx<'_>,
    ty: u32,
    kp: u32,
    kl: u32,
    vp: u32,
    vl: u32,
) -> HostResult {
    let key = tri!(memory::read(caller, kp, kl));
    let value = tri!(memory::read(caller, vp, vl));
    done(with_writable(caller, ty, "proxy_replace_header_map_value", |m| {
        m.set(&key, &value)
    }))
}

pub(crate) fn proxy_add_header_map_value(
    caller: &mut Ctx<'_>,
    ty: u32,
    kp: u32,
    kl: u32,
    vp: u32,
    vl: u32,
) -> HostResult {
    let key = tri!(memory::read(caller, kp, kl));
    let value = tri!(memory::read(caller, vp, vl));
    done(with_writable(caller, ty, "proxy_add_header_map_value", |m| {
        m.add(&key, &value)
    }))
}
