//! Moving bytes between a canister's linear memory and the host, charging instructions.

use candid::Principal;
use wasmtime::{AsContextMut, Caller, Error, Global, Memory, Val};

use super::costs::Ic0Cost;
use super::{SystemState, TrapCause, trap, violation};

pub(super) type Ctx<'a> = Caller<'a, SystemState>;

/// The counter's value when a message with `limit` instructions starts.
pub fn counter_start(limit: u64) -> i64 {
    i64::try_from(limit).unwrap_or(i64::MAX)
}

/// Instructions used so far by the running message: the limit less what the counter has left
/// (more than the limit once the counter has gone negative).
pub fn instructions_used(counter: &Global, ctx: impl AsContextMut, limit: u64) -> u64 {
    let left = counter.get(ctx).i64().unwrap_or(0);
    (i128::from(counter_start(limit)) - i128::from(left)).clamp(0, i128::from(u64::MAX)) as u64
}

fn counter(caller: &Ctx<'_>) -> Result<Global, Error> {
    caller
        .data()
        .counter
        .ok_or_else(|| violation("the module has no instruction counter"))
}

/// Charges a System API call: its row's overhead plus its per-byte cost of `bytes`.
pub(super) fn charge(caller: &mut Ctx<'_>, cost: Ic0Cost, bytes: u64) -> Result<(), Error> {
    charge_instructions(caller, cost.of(bytes))
}

/// Subtracts `instructions` from the counter, as the replica's `charge_direct_fee` does: a
/// counter that goes negative ends the message.
pub(super) fn charge_instructions(caller: &mut Ctx<'_>, instructions: u64) -> Result<(), Error> {
    let counter = counter(caller)?;
    let left = counter.get(&mut *caller).i64().unwrap_or(0);
    let cost = i64::try_from(instructions).unwrap_or(i64::MAX);
    let left = left.saturating_sub(cost);
    counter.set(&mut *caller, Val::I64(left))?;
    if left < 0 {
        return Err(trap(TrapCause::InstructionLimit(
            caller.data().instruction_limit,
        )));
    }
    Ok(())
}

/// Instructions the running message has used, for `ic0.performance_counter`.
pub(super) fn used(caller: &mut Ctx<'_>) -> Result<u64, Error> {
    let limit = caller.data().instruction_limit;
    Ok(instructions_used(&counter(caller)?, &mut *caller, limit))
}

pub(super) fn memory(caller: &Ctx<'_>) -> Result<Memory, Error> {
    caller
        .data()
        .memory
        .ok_or_else(|| violation("the module has no memory"))
}

pub(super) fn range(start: i32, len: i32) -> Option<std::ops::Range<usize>> {
    let start = start as u32 as usize;
    let end = start.checked_add(len as u32 as usize)?;
    Some(start..end)
}

/// Reads `size` bytes of heap at `src` (the caller has charged for them).
pub(super) fn read_heap(
    caller: &mut Ctx<'_>,
    src: i32,
    size: i32,
    function: &'static str,
) -> Result<Vec<u8>, Error> {
    let memory = memory(caller)?;
    let heap = memory.data(&*caller);
    range(src, size)
        .and_then(|r| heap.get(r))
        .map(<[u8]>::to_vec)
        .ok_or_else(|| trap(TrapCause::HeapOutOfBounds(function)))
}

/// Writes `bytes` into the heap at `dst` (the caller has charged for them).
pub(super) fn write_heap(
    caller: &mut Ctx<'_>,
    dst: i32,
    bytes: &[u8],
    function: &'static str,
) -> Result<(), Error> {
    let memory = memory(caller)?;
    let heap = memory.data_mut(&mut *caller);
    let target =
        range(dst, bytes.len() as i32).ok_or_else(|| trap(TrapCause::HeapOutOfBounds(function)))?;
    heap.get_mut(target.clone())
        .ok_or_else(|| trap(TrapCause::HeapOutOfBounds(function)))?
        .copy_from_slice(bytes);
    mark_written(caller, target);
    Ok(())
}

/// Marks heap bytes the host wrote for the write barrier (see `write_barrier`), as the module's
/// own stores mark theirs.
pub(super) fn mark_written(caller: &mut Ctx<'_>, written: std::ops::Range<usize>) {
    use crate::write_barrier::PAGE_BYTES;
    let Some(map) = caller.data().written else {
        return;
    };
    if written.is_empty() {
        return;
    }
    let pages = written.start / PAGE_BYTES..=(written.end - 1) / PAGE_BYTES;
    if let Some(marks) = map.data_mut(&mut *caller).get_mut(pages) {
        marks.fill(1);
    }
}

/// The `*_copy(dst, offset, size)` pattern: copies `source[offset..offset+size]` to `dst`.
pub(super) fn copy_slice(
    caller: &mut Ctx<'_>,
    source: &[u8],
    dst: i32,
    offset: i32,
    size: i32,
    function: &'static str,
) -> Result<(), Error> {
    let chunk = range(offset, size)
        .and_then(|r| source.get(r))
        .ok_or_else(|| {
            violation(format!(
                "ic0.{function}: offset + size exceeds the source length"
            ))
        })?
        .to_vec();
    write_heap(caller, dst, &chunk, function)
}

pub(super) fn write_u128(
    caller: &mut Ctx<'_>,
    dst: i32,
    value: u128,
    function: &'static str,
) -> Result<(), Error> {
    write_heap(caller, dst, &value.to_le_bytes(), function)
}

pub(super) fn join_u128(high: i64, low: i64) -> u128 {
    (u128::from(high as u64) << 64) | u128::from(low as u64)
}

pub(super) fn principal_from_heap(
    caller: &mut Ctx<'_>,
    src: i32,
    size: i32,
    function: &'static str,
) -> Result<Principal, Error> {
    let bytes = read_heap(caller, src, size, function)?;
    Principal::try_from_slice(&bytes)
        .map_err(|e| violation(format!("ic0.{function}: invalid principal: {e}")))
}

pub(super) fn utf8_from_heap(
    caller: &mut Ctx<'_>,
    src: i32,
    size: i32,
    function: &'static str,
) -> Result<String, Error> {
    let bytes = read_heap(caller, src, size, function)?;
    String::from_utf8(bytes)
        .map_err(|_| violation(format!("ic0.{function}: text is not valid UTF-8")))
}

/// A size argument as the byte count a charge uses.
pub(super) fn bytes(size: i32) -> u64 {
    u64::from(size as u32)
}
