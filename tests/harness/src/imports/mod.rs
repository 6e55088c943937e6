//! Host side of every `env` import the proxy-wasm Rust SDK 0.2.5 can reference (ABI 0.2.1).
//!
//! Each import counts itself in [`crate::state::StoreState::host_calls`] before doing its
//! work, so tests can assert how many crossings a request costs. Semantics follow Envoy's
//! `source/extensions/common/wasm/context.cc` and proxy-wasm-cpp-host `exports.cc`.

mod buffers;
mod callouts;
mod headers;
mod metrics;
mod misc;
mod properties;
mod shared;
mod stream;

use wasmtime::{Caller, Linker};

use crate::abi::Status;
use crate::state::StoreState;

/// Result of a host function: `Err` traps the guest, `Ok` is the status code returned.
pub(crate) type HostResult = wasmtime::Result<u32>;

pub(crate) fn status(s: Status) -> HostResult {
    Ok(s.code())
}

pub(crate) fn done(r: Result<(), Status>) -> HostResult {
    Ok(match r {
        Ok(()) => Status::Ok.code(),
        Err(s) => s.code(),
    })
}

/// Every import name this module implements.
pub const IMPORTS: &[&str] = &[
    "proxy_log",
    "proxy_get_log_level",
    "proxy_get_current_time_nanoseconds",
    "proxy_set_tick_period_milliseconds",
    "proxy_get_buffer_bytes",
    "proxy_set_buffer_bytes",
    "proxy_get_header_map_pairs",
    "proxy_set_header_map_pairs",
    "proxy_get_header_map_value",
    "proxy_remove_header_map_value",
    "proxy_replace_header_map_value",
    "proxy_add_header_map_value",
    "proxy_get_property",
    "proxy_set_property",
    "proxy_get_shared_data",
    "proxy_set_shared_data",
    "proxy_register_shared_queue",
    "proxy_resolve_shared_queue",
    "proxy_dequeue_shared_queue",
    "proxy_enqueue_shared_queue",
    "proxy_continue_stream",
    "proxy_close_stream",
    "proxy_send_local_response",
    "proxy_http_call",
    "proxy_grpc_call",
    "proxy_grpc_stream",
    "proxy_grpc_send",
    "proxy_grpc_cancel",
    "proxy_grpc_close",
    "proxy_get_status",
    "proxy_set_effective_context",
    "proxy_call_foreign_function",
    "proxy_done",
    "proxy_define_metric",
    "proxy_get_metric",
    "proxy_record_metric",
    "proxy_increment_metric",
];

/// Links `f` as `env.<name>`, counting every call.
macro_rules! link {
    ($linker:ident, $module:ident :: $name:ident ( $($arg:ident : $ty:ty),* )) => {
        $linker.func_wrap(
            "env",
            stringify!($name),
            |mut caller: Caller<'_, StoreState>, $($arg: $ty),*| -> HostResult {
                caller.data_mut().count_host_call(stringify!($name));
                $module::$name(&mut caller, $($arg),*)
            },
        )?;
    };
}

pub(crate) fn add_to_linker(linker: &mut Linker<StoreState>) -> wasmtime::Result<()> {
    link!(linker, misc::proxy_log(level: u32, ptr: u32, len: u32));
    link!(linker, misc::proxy_get_log_level(ptr: u32));
    link!(linker, misc::proxy_get_current_time_nanoseconds(ptr: u32));
    link!(linker, misc::proxy_set_tick_period_milliseconds(period: u32));
    link!(linker, misc::proxy_set_effective_context(id: u32));
    link!(linker, misc::proxy_done());

    link!(linker, buffers::proxy_get_buffer_bytes(ty: u32, start: u32, max: u32, ptr_ptr: u32, size_ptr: u32));
    link!(linker, buffers::proxy_set_buffer_bytes(ty: u32, start: u32, size: u32, ptr: u32, len: u32));

    link!(linker, headers::proxy_get_header_map_pairs(ty: u32, ptr_ptr: u32, size_ptr: u32));
    link!(linker, headers::proxy_set_header_map_pairs(ty: u32, ptr: u32, len: u32));
    link!(linker, headers::proxy_get_header_map_value(ty: u32, kp: u32, kl: u32, ptr_ptr: u32, size_ptr: u32));
    link!(linker, headers::proxy_remove_header_map_value(ty: u32, kp: u32, kl: u32));
    link!(linker, headers::proxy_replace_header_map_value(ty: u32, kp: u32, kl: u32, vp: u32, vl: u32));
    link!(linker, headers::proxy_add_header_map_value(ty: u32, kp: u32, kl: u32, vp: u32, vl: u32));

    link!(linker, properties::proxy_get_property(pp: u32, pl: u32, ptr_ptr: u32, size_ptr: u32));
    link!(linker, properties::proxy_set_property(pp: u32, pl: u32, vp: u32, vl: u32));

    link!(linker, shared::proxy_get_shared_data(kp: u32, kl: u32, ptr_ptr: u32, size_ptr: u32, cas_ptr: u32));
    link!(linker, shared::proxy_set_shared_data(kp: u32, kl: u32, vp: u32, vl: u32, cas: u32));
    link!(linker, shared::proxy_register_shared_queue(np: u32, nl: u32, id_ptr: u32));
    link!(linker, shared::proxy_resolve_shared_queue(vp: u32, vl: u32, np: u32, nl: u32, id_ptr: u32));
    link!(linker, shared::proxy_dequeue_shared_queue(id: u32, ptr_ptr: u32, size_ptr: u32));
    link!(linker, shared::proxy_enqueue_shared_queue(id: u32, vp: u32, vl: u32));

    link!(linker, stream::proxy_continue_stream(ty: u32));
    link!(linker, stream::proxy_close_stream(ty: u32));
    link!(linker, stream::proxy_send_local_response(code: u32, dp: u32, dl: u32, bp: u32, bl: u32, hp: u32, hl: u32, grpc: i32));

    link!(linker, callouts::proxy_http_call(up: u32, ul: u32, hp: u32, hl: u32, bp: u32, bl: u32, tp: u32, tl: u32, timeout: u32, token_ptr: u32));
    link!(linker, callouts::proxy_grpc_call(up: u32, ul: u32, sp: u32, sl: u32, mp: u32, ml: u32, ip: u32, il: u32, msgp: u32, msgl: u32, timeout: u32, token_ptr: u32));
    link!(linker, callouts::proxy_grpc_stream(up: u32, ul: u32, sp: u32, sl: u32, mp: u32, ml: u32, ip: u32, il: u32, token_ptr: u32));
    link!(linker, callouts::proxy_grpc_send(token: u32, mp: u32, ml: u32, end: u32));
    link!(linker, callouts::proxy_grpc_cancel(token: u32));
    link!(linker, callouts::proxy_grpc_close(token: u32));
    link!(linker, callouts::proxy_get_status(code_ptr: u32, ptr_ptr: u32, size_ptr: u32));
    link!(linker, callouts::proxy_call_foreign_function(np: u32, nl: u32, ap: u32, al: u32, ptr_ptr: u32, size_ptr: u32));

    link!(linker, metrics::proxy_define_metric(ty: u32, np: u32, nl: u32, id_ptr: u32));
    link!(linker, metrics::proxy_get_metric(id: u32, ptr: u32));
    link!(linker, metrics::proxy_record_metric(id: u32, value: u64));
    link!(linker, metrics::proxy_increment_metric(id: u32, offset: i64));
    Ok(())
}

/// Unwraps a guest-memory result inside a host function: a failed read/write returns its
/// status to the guest.
macro_rules! tri {
    ($e:expr) => {
        match $e {
            Ok(v) => v,
            Err(s) => return $crate::imports::status(s),
        }
    };
}
pub(crate) use tri;
