//! Logging, time, ticks, effective context, `proxy_done`.

use super::{status, tri, HostResult};
use crate::abi::{LogLevel, Status};
use crate::memory::{self, Ctx};
use crate::request::LogEntry;

pub(crate) fn proxy_log(caller: &mut Ctx<'_>, level: u32, ptr: u32, len: u32) -> HostResult {
    let Some(level) = LogLevel::from_raw(level) else {
        return status(Status::BadArgument);
    };
    let bytes = tri!(memory::read(caller, ptr, len));
    let state = caller.data_mut();
    let entry = LogEntry {
        level,
        message: String::from_utf8_lossy(&bytes).into_owned(),
        context_id: state.active_context,
    };
    if std::env::var_os("AIGATE_HARNESS_LOG").is_some() {
        eprintln!("[wasm {:?} ctx={}] {}", entry.level, entry.context_id, entry.message);
    }
    state.logs.push(entry);
    status(Status::Ok)
}

pub(crate) fn proxy_get_log_level(caller: &mut Ctx<'_>, ptr: u32) -> HostResult {
    let level = caller.data().log_level as u32;
    tri!(memory::write_u32(caller, ptr, level));
    status(Status::Ok)
}

pub(crate) fn proxy_get_current_time_nanoseconds(caller: &mut Ctx<'_>, ptr: u32) -> HostResult {
    let now = caller.data().host.time_nanos();
    tri!(memory::write_u64(caller, ptr, now));
    status(Status::Ok)
}

pub(crate) fn proxy_set_tick_period_milliseconds(caller: &mut Ctx<'_>, period: u32) -> HostResult {
    caller.data_mut().tick_period_ms = Some(period);
    status(Status::Ok)
}

pub(crate) fn proxy_set_effective_context(caller: &mut Ctx<'_>, id: u32) -> HostResult {
    let state = caller.data();
    let known = id == state.root_context_id || state.stream.as_ref().is_some_and(|s| s.context_id == id);
    status(if known { Status::Ok } else { Status::BadArgument })
}

pub(crate) fn proxy_done(_caller: &mut Ctx<'_>) -> HostResult {
    status(Status::Ok)
}
