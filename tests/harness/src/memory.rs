//! Guest memory access for host calls: reading arguments, writing results, and allocating
//! in the guest through its exported allocator, as proxy-wasm-cpp-host does.

use wasmtime::{Caller, Extern, Memory};

use crate::abi::Status;
use crate::state::StoreState;

pub(crate) type Ctx<'a> = Caller<'a, StoreState>;

fn memory(caller: &mut Ctx<'_>) -> Option<Memory> {
    match caller.get_export("memory") {
        Some(Extern::Memory(m)) => Some(m),
        _ => None,
    }
}

/// Reads `len` bytes at `ptr`; `InvalidMemoryAccess` if out of bounds.
pub(crate) fn read(caller: &mut Ctx<'_>, ptr: u32, len: u32) -> Result<Vec<u8>, Status> {
    if len == 0 {
        return Ok(Vec::new());
    }
    let mem = memory(caller).ok_or(Status::InvalidMemoryAccess)?;
    let start = ptr as usize;
    let end = start.checked_add(len as usize).ok_or(Status::InvalidMemoryAccess)?;
    mem.data(&caller)
        .get(start..end)
        .map(<[u8]>::to_vec)
        .ok_or(Status::InvalidMemoryAccess)
}

/// Reads a UTF-8 string argument (keys, names); invalid UTF-8 is replaced.
pub(crate) fn read_string(caller: &mut Ctx<'_>, ptr: u32, len: u32) -> Result<String, Status> {
    read(caller, ptr, len).map(|b| String::from_utf8_lossy(&b).into_owned())
}

fn write(caller: &mut Ctx<'_>, ptr: u32, bytes: &[u8]) -> Result<(), Status> {
    let mem = memory(caller).ok_or(Status::InvalidMemoryAccess)?;
    mem.write(caller, ptr as usize, bytes)
        .map_err(|_| Status::InvalidMemoryAccess)
}

pub(crate) fn write_u32(caller: &mut Ctx<'_>, ptr: u32, value: u32) -> Result<(), Status> {
    write(caller, ptr, &value.to_le_bytes())
}

pub(crate) fn write_u64(caller: &mut Ctx<'_>, ptr: u32, value: u64) -> Result<(), Status> {
    write(caller, ptr, &value.to_le_bytes())
}

/// Allocates `size` bytes in the guest with its exported `malloc` /
/// `proxy_on_memory_allocate`. An error is a trap inside the allocator.
fn allocate(caller: &mut Ctx<'_>, size: u32) -> wasmtime::Result<Option<u32>> {
    let (name, func) = match ["malloc", "proxy_on_memory_allocate"]
        .into_iter()
        .find_map(|n| caller.get_export(n).and_then(Extern::into_func).map(|f| (n, f)))
    {
        Some(found) => found,
        None => return Ok(None),
    };
    let typed = func.typed::<u32, u32>(&caller)?;
    caller.data_mut().count_guest_call(name);
    let ptr = typed.call(&mut *caller, size)?;
    Ok(if ptr == 0 { None } else { Some(ptr) })
}

/// proxy-wasm-cpp-host `copyToPointerSize`: an empty value is written as a null pointer and
/// size 0 (the SDK then sees "no data"); otherwise the bytes are copied into a fresh guest
/// allocation whose address and size are stored at `ptr_ptr` / `size_ptr`.
///
/// Outer error: trap. Inner error: status to return to the guest.
pub(crate) fn copy_out(
    caller: &mut Ctx<'_>,
    data: &[u8],
    ptr_ptr: u32,
    size_ptr: u32,
) -> wasmtime::Result<Result<(), Status>> {
    let mut pointer = 0u32;
    if !data.is_empty() {
        let size = match u32::try_from(data.len()) {
            Ok(s) => s,
            Err(_) => return Ok(Err(Status::InvalidMemoryAccess)),
        };
        pointer = match allocate(caller, size)? {
            Some(p) => p,
            None => return Ok(Err(Status::InvalidMemoryAccess)),
        };
        if let Err(s) = write(caller, pointer, data) {
            return Ok(Err(s));
        }
    }
    if let Err(s) = write_u32(caller, ptr_ptr, pointer) {
        return Ok(Err(s));
    }
    Ok(write_u32(caller, size_ptr, data.len() as u32))
}
