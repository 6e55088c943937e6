//! Stream control and local replies. Envoy defers `continueDecoding`/`continueEncoding` and
//! `sendLocalReply` until the VM call returns; the driver applies them then.

use super::{status, tri, HostResult};
use crate::abi::{decode_pairs, Status, StreamType};
use crate::memory::{self, Ctx};
use crate::request::LocalReply;
use crate::state::Deferred;

pub(crate) fn proxy_continue_stream(caller: &mut Ctx<'_>, ty: u32) -> HostResult {
    let ty = match StreamType::from_raw(ty) {
        Some(t @ (StreamType::HttpRequest | StreamType::HttpResponse)) => t,
        _ => return status(Status::BadArgument),
    };
    let state = caller.data_mut();
    match state.stream.as_mut() {
        Some(s) => s.deferred.push(Deferred::Continue(ty)),
        None => state.anomaly("proxy_continue_stream outside an HTTP stream"),
    }
    status(Status::Ok)
}

pub(crate) fn proxy_close_stream(caller: &mut Ctx<'_>, ty: u32) -> HostResult {
    let Some(ty) = StreamType::from_raw(ty) else {
        return status(Status::BadArgument);
    };
    let state = caller.data_mut();
    if let Some(s) = state.stream.as_mut() {
        s.deferred.push(Deferred::Close(ty));
    }
    status(Status::Ok)
}

#[allow(clippy::too_many_arguments)]
pub(crate) fn proxy_send_local_response(
    caller: &mut Ctx<'_>,
    code: u32,
    dp: u32,
    dl: u32,
    bp: u32,
    bl: u32,
    hp: u32,
    hl: u32,
    grpc: i32,
) -> HostResult {
    let details = tri!(memory::read(caller, dp, dl));
    let body = tri!(memory::read(caller, bp, bl));
    let raw_headers = tri!(memory::read(caller, hp, hl));
    let state = caller.data_mut();
    let headers = match decode_pairs(&raw_headers) {
        Some(h) => h,
        None => {
            state.anomaly("proxy_send_local_response: malformed header pairs (treated as empty)");
            Vec::new()
        }
    };
    let reply = LocalReply {
        status: code,
        details: String::from_utf8_lossy(&details).into_owned(),
        body,
        headers: headers
            .into_iter()
            .map(|(k, v)| (String::from_utf8_lossy(&k).to_ascii_lowercase(), v))
            .collect(),
        grpc_status: grpc,
    };
    match state.stream.as_mut() {
        Some(s) => s.deferred.push(Deferred::LocalReply(reply)),
        None => state.anomaly("proxy_send_local_response outside an HTTP stream (ignored)"),
    }
    status(Status::Ok)
}
