//! Shared data (with Envoy's CAS rules) and shared queues, process-wide via [`crate::Host`].

use super::{done, status, tri, HostResult};
use crate::abi::Status;
use crate::memory::{self, Ctx};

pub(crate) fn proxy_get_shared_data(
    caller: &mut Ctx<'_>,
    kp: u32,
    kl: u32,
    ptr_ptr: u32,
    size_ptr: u32,
    cas_ptr: u32,
) -> HostResult {
    let key = tri!(memory::read_string(caller, kp, kl));
    let Some((value, cas)) = caller.data().host.lock().get(&key) else {
        return status(Status::NotFound);
    };
    tri!(memory::copy_out(caller, &value, ptr_ptr, size_ptr)?);
    tri!(memory::write_u32(caller, cas_ptr, cas));
    status(Status::Ok)
}

pub(crate) fn proxy_set_shared_data(caller: &mut Ctx<'_>, kp: u32, kl: u32, vp: u32, vl: u32, cas: u32) -> HostResult {
    let key = tri!(memory::read_string(caller, kp, kl));
    let value = tri!(memory::read(caller, vp, vl));
    status(caller.data().host.lock().set(&key, &value, cas))
}

pub(crate) fn proxy_register_shared_queue(caller: &mut Ctx<'_>, np: u32, nl: u32, id_ptr: u32) -> HostResult {
    let name = tri!(memory::read_string(caller, np, nl));
    let id = caller.data().host.lock().register_queue(&name);
    done(memory::write_u32(caller, id_ptr, id))
}

pub(crate) fn proxy_resolve_shared_queue(
    caller: &mut Ctx<'_>,
    _vp: u32,
    _vl: u32,
    np: u32,
    nl: u32,
    id_ptr: u32,
) -> HostResult {
    // Every VM of a harness host shares one vm_id, so the vm_id argument is not checked.
    let name = tri!(memory::read_string(caller, np, nl));
    let Some(id) = caller.data().host.lock().queue_ids.get(&name).copied() else {
        return status(Status::NotFound);
    };
    done(memory::write_u32(caller, id_ptr, id))
}

pub(crate) fn proxy_dequeue_shared_queue(caller: &mut Ctx<'_>, id: u32, ptr_ptr: u32, size_ptr: u32) -> HostResult {
    let item = {
        let mut state = caller.data().host.lock();
        match state.queues.get_mut(&id) {
            None => return status(Status::NotFound),
            Some(q) => q.pop_front(),
        }
    };
    let Some(item) = item else {
        return status(Status::Empty);
    };
    tri!(memory::copy_out(caller, &item, ptr_ptr, size_ptr)?);
    status(Status::Ok)
}

pub(crate) fn proxy_enqueue_shared_queue(caller: &mut Ctx<'_>, id: u32, vp: u32, vl: u32) -> HostResult {
    let value = tri!(memory::read(caller, vp, vl));
    let mut state = caller.data().host.lock();
    match state.queues.get_mut(&id) {
        None => status(Status::NotFound),
        Some(q) => {
            q.push_back(value);
            status(Status::Ok)
        }
    }
}
