//! HTTP/gRPC callouts and foreign functions. The harness has no upstream clusters, so each
//! fails the way Envoy fails for an unknown cluster, with a status the SDK turns into `Err`
//! rather than a panic.

use super::{status, tri, HostResult};
use crate::abi::Status;
use crate::memory::{self, Ctx};

#[allow(clippy::too_many_arguments)]
pub(crate) fn proxy_http_call(
    caller: &mut Ctx<'_>,
    up: u32,
    ul: u32,
    _hp: u32,
    _hl: u32,
    _bp: u32,
    _bl: u32,
    _tp: u32,
    _tl: u32,
    _timeout: u32,
    _token_ptr: u32,
) -> HostResult {
    let cluster = tri!(memory::read_string(caller, up, ul));
    caller
        .data_mut()
        .anomaly(format!("proxy_http_call to unknown cluster {cluster:?}"));
    // Envoy: unknown cluster -> BadArgument.
    status(Status::BadArgument)
}

#[allow(clippy::too_many_arguments)]
pub(crate) fn proxy_grpc_call(
    caller: &mut Ctx<'_>,
    up: u32,
    ul: u32,
    _sp: u32,
    _sl: u32,
    _mp: u32,
    _ml: u32,
    _ip: u32,
    _il: u32,
    _msgp: u32,
    _msgl: u32,
    _timeout: u32,
    _token_ptr: u32,
) -> HostResult {
    let cluster = tri!(memory::read_string(caller, up, ul));
    caller
        .data_mut()
        .anomaly(format!("proxy_grpc_call to unknown cluster {cluster:?}"));
    // Envoy: neither a GrpcService proto nor a known cluster -> ParseFailure.
    status(Status::ParseFailure)
}

#[allow(clippy::too_many_arguments)]
pub(crate) fn proxy_grpc_stream(
    caller: &mut Ctx<'_>,
    up: u32,
    ul: u32,
    _sp: u32,
    _sl: u32,
    _mp: u32,
    _ml: u32,
    _ip: u32,
    _il: u32,
    _token_ptr: u32,
) -> HostResult {
    let cluster = tri!(memory::read_string(caller, up, ul));
    caller
        .data_mut()
        .anomaly(format!("proxy_grpc_stream to unknown cluster {cluster:?}"));
    status(Status::ParseFailure)
}

pub(crate) fn proxy_grpc_send(_caller: &mut Ctx<'_>, _token: u32, _mp: u32, _ml: u32, _end: u32) -> HostResult {
    status(Status::NotFound)
}

pub(crate) fn proxy_grpc_cancel(_caller: &mut Ctx<'_>, _token: u32) -> HostResult {
    status(Status::NotFound)
}

pub(crate) fn proxy_grpc_close(_caller: &mut Ctx<'_>, _token: u32) -> HostResult {
    status(Status::NotFound)
}

/// No callout ever completed: status 0, no message.
pub(crate) fn proxy_get_status(caller: &mut Ctx<'_>, code_ptr: u32, ptr_ptr: u32, size_ptr: u32) -> HostResult {
    tri!(memory::write_u32(caller, code_ptr, 0));
    tri!(memory::copy_out(caller, &[], ptr_ptr, size_ptr)?);
    status(Status::Ok)
}

pub(crate) fn proxy_call_foreign_function(
    _caller: &mut Ctx<'_>,
    _np: u32,
    _nl: u32,
    _ap: u32,
    _al: u32,
    _ptr_ptr: u32,
    _size_ptr: u32,
) -> HostResult {
    status(Status::NotFound)
}
