//! Metrics with Envoy's rules: every `proxy_define_metric` call returns a new id whose low
//! two bits are the type, ids of one name share one stat; counters only grow
//! (`increment` with offset <= 0 is `BadArgument`), `record` adds to a counter, sets a
//! gauge, and samples a histogram; histograms cannot be read back (`BadArgument`).

use super::{done, status, tri, HostResult};
use crate::abi::{MetricType, Status};
use crate::host::MetricValue;
use crate::memory::{self, Ctx};

pub(crate) fn proxy_define_metric(caller: &mut Ctx<'_>, ty: u32, np: u32, nl: u32, id_ptr: u32) -> HostResult {
    let Some(ty) = MetricType::from_raw(ty) else {
        return status(Status::BadArgument);
    };
    let name = tri!(memory::read_string(caller, np, nl));
    let state = caller.data_mut();
    let id = state.metric_ids.define(ty, &name);
    state.host.lock().metrics.entry((ty as u32, name)).or_insert(match ty {
        MetricType::Counter => MetricValue::Counter(0),
        MetricType::Gauge => MetricValue::Gauge(0),
        MetricType::Histogram => MetricValue::Histogram(Vec::new()),
    });
    done(memory::write_u32(caller, id_ptr, id))
}

fn with_metric<R>(caller: &mut Ctx<'_>, id: u32, f: impl FnOnce(&mut MetricValue) -> R) -> Option<R> {
    let state = caller.data();
    let (ty, name) = state.metric_ids.by_id.get(&id)?.clone();
    let mut shared = state.host.lock();
    shared.metrics.get_mut(&(ty as u32, name)).map(f)
}

pub(crate) fn proxy_increment_metric(caller: &mut Ctx<'_>, id: u32, offset: i64) -> HostResult {
    let result = with_metric(caller, id, |m| match m {
        MetricValue::Counter(c) if offset > 0 => {
            *c = c.saturating_add(offset as u64);
            Status::Ok
        }
        MetricValue::Counter(_) | MetricValue::Histogram(_) => Status::BadArgument,
        MetricValue::Gauge(g) => {
            *g = g.saturating_add(offset);
            Status::Ok
        }
    });
    status(result.unwrap_or(Status::NotFound))
}

pub(crate) fn proxy_record_metric(caller: &mut Ctx<'_>, id: u32, value: u64) -> HostResult {
    let result = with_metric(caller, id, |m| match m {
        MetricValue::Counter(c) => *c = c.saturating_add(value),
        MetricValue::Gauge(g) => *g = value as i64,
        MetricValue::Histogram(samples) => samples.push(value),
    });
    status(if result.is_some() { Status::Ok } else { Status::NotFound })
}

pub(crate) fn proxy_get_metric(caller: &mut Ctx<'_>, id: u32, ptr: u32) -> HostResult {
    let value = with_metric(caller, id, |m| match m {
        MetricValue::Counter(c) => Ok(*c),
        MetricValue::Gauge(g) => Ok(*g as u64),
        MetricValue::Histogram(_) => Err(Status::BadArgument),
    });
    match value {
        None => status(Status::NotFound),
        Some(Err(s)) => status(s),
        Some(Ok(v)) => done(memory::write_u64(caller, ptr, v)),
    }
}
