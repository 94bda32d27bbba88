//! The `ic0` functions, registered with the wasmtime linker.

use wasmtime::{Error, Linker};

use super::costs;
use super::heap::{
    self, Ctx, bytes, charge, charge_instructions, copy_slice, join_u128, principal_from_heap,
    read_heap, used, utf8_from_heap, write_u128,
};
use super::{
    EntryPoint, MAX_CALL_TIMEOUT_SECONDS, MAX_CALLS_IN_FLIGHT_PER_CALLEE, MAX_CERTIFIED_DATA_BYTES,
    MAX_PAYLOAD_BYTES, OutgoingCall, Response, SystemState, TrapCause, WasmClosure, trap,
    violation,
};

/// Registers every function of [`SYSTEM_API`](super::SYSTEM_API) under module `ic0`.
pub fn link(linker: &mut Linker<SystemState>) -> Result<(), Error> {
    link_message(linker)?;
    link_cycles(linker)?;
    link_canister(linker)?;
    link_calls(linker)?;
    link_stable(linker)?;
    link_certification(linker)?;
    link_misc(linker)?;
    // The import the instrumentation adds: a check found the counter negative.
    linker.func_wrap(
        crate::instrument::INJECTED_MODULE,
        crate::instrument::OUT_OF_INSTRUCTIONS,
        |c: Ctx<'_>| -> Result<(), Error> {
            Err(trap(TrapCause::InstructionLimit(
                c.data().instruction_limit,
            )))
        },
    )?;
    Ok(())
}

fn link_message(l: &mut Linker<SystemState>) -> Result<(), Error> {
    l.func_wrap(
        "ic0",
        "msg_arg_data_size",
        |mut c: Ctx<'_>| -> Result<i32, Error> {
            charge(&mut c, costs::msg_arg_data_size, 0)?;
            let s = c.data();
            s.require(s.entry().has_arg_data(), "msg_arg_data_size")?;
            Ok(s.arg.len() as i32)
        },
    )?;
    l.func_wrap(
        "ic0",
        "msg_arg_data_copy",
        |mut c: Ctx<'_>, dst: i32, off: i32, size: i32| {
            charge(&mut c, costs::msg_arg_data_copy, bytes(size))?;
            let s = c.data();
            s.require(s.entry().has_arg_data(), "msg_arg_data_copy")?;
            let arg = std::mem::take(&mut c.data_mut().arg);
            let result = copy_slice(&mut c, &arg, dst, off, size, "msg_arg_data_copy");
            c.data_mut().arg = arg;
            result
        },
    )?;
    l.func_wrap(
        "ic0",
        "msg_caller_size",
        |mut c: Ctx<'_>| -> Result<i32, Error> {
            charge(&mut c, costs::msg_caller_size, 0)?;
            let caller = c
                .data()
                .caller
                .ok_or_else(|| violation("msg_caller is not available here"))?;
            Ok(caller.as_slice().len() as i32)
        },
    )?;
    l.func_wrap(
        "ic0",
        "msg_caller_copy",
        |mut c: Ctx<'_>, dst: i32, off: i32, size: i32| {
            charge(&mut c, costs::msg_caller_copy, bytes(size))?;
            let caller = c
                .data()
                .caller
                .ok_or_else(|| violation("msg_caller is not available here"))?;
            copy_slice(&mut c, caller.as_slice(), dst, off, size, "msg_caller_copy")
        },
    )?;
    // The local network has no delegated callers: caller info is always empty.
    l.func_wrap(
        "ic0",
        "msg_caller_info_data_size",
        |mut c: Ctx<'_>| -> Result<i32, Error> {
            charge(&mut c, costs::msg_caller_info_data_size, 0)?;
            Ok(0)
        },
    )?;
    l.func_wrap(
        "ic0",
        "msg_caller_info_data_copy",
        |mut c: Ctx<'_>, dst: i32, off: i32, size: i32| {
            charge(&mut c, costs::msg_caller_info_data_copy, bytes(size))?;
            copy_slice(&mut c, &[], dst, off, size, "msg_caller_info_data_copy")
        },
    )?;
    l.func_wrap(
        "ic0",
        "msg_caller_info_signer_size",
        |mut c: Ctx<'_>| -> Result<i32, Error> {
            charge(&mut c, costs::msg_caller_info_signer_size, 0)?;
            Ok(0)
        },
    )?;
    l.func_wrap(
        "ic0",
        "msg_caller_info_signer_copy",
        |mut c: Ctx<'_>, dst: i32, off: i32, size: i32| {
            charge(&mut c, costs::msg_caller_info_signer_copy, bytes(size))?;
            copy_slice(&mut c, &[], dst, off, size, "msg_caller_info_signer_copy")
        },
    )?;
    l.func_wrap(
        "ic0",
        "msg_reject_code",
        |mut c: Ctx<'_>| -> Result<i32, Error> {
            charge(&mut c, costs::msg_reject_code, 0)?;
            let s = c.data();
            s.require(s.entry().is_callback(), "msg_reject_code")?;
            Ok(s.reject.as_ref().map_or(0, |(code, _)| *code) as i32)
        },
    )?;
    l.func_wrap(
        "ic0",
        "msg_reject_msg_size",
        |mut c: Ctx<'_>| -> Result<i32, Error> {
            charge(&mut c, costs::msg_reject_msg_size, 0)?;
            let s = c.data();
            s.require(
                s.entry() == EntryPoint::RejectCallback,
                "msg_reject_msg_size",
            )?;
            Ok(s.reject.as_ref().map_or(0, |(_, m)| m.len()) as i32)
        },
    )?;
    l.func_wrap(
        "ic0",
        "msg_reject_msg_copy",
        |mut c: Ctx<'_>, dst: i32, off: i32, size: i32| {
            charge(&mut c, costs::msg_reject_msg_copy, bytes(size))?;
            let s = c.data();
            s.require(
                s.entry() == EntryPoint::RejectCallback,
                "msg_reject_msg_copy",
            )?;
            let message = s
                .reject
                .as_ref()
                .map(|(_, m)| m.clone())
                .unwrap_or_default();
            copy_slice(
                &mut c,
                message.as_bytes(),
                dst,
                off,
                size,
                "msg_reject_msg_copy",
            )
        },
    )?;
    l.func_wrap(
        "ic0",
        "msg_deadline",
        |mut c: Ctx<'_>| -> Result<i64, Error> {
            charge(&mut c, costs::msg_deadline, 0)?;
            let s = c.data();
            s.require(s.entry().may_respond(), "msg_deadline")?;
            Ok(s.deadline as i64)
        },
    )?;
    l.func_wrap("ic0", "msg_reply_data_append", |mut c: Ctx<'_>, src: i32, size: i32| {
            charge(&mut c, costs::msg_reply_data_append, bytes(size))?;
        let s = c.data();
        s.require(s.entry().may_respond(), "msg_reply_data_append")?;
        if s.call_context_responded || s.response.is_some() {
            return Err(violation("msg_reply_data_append: the call was already responded to"));
        }
        let bytes = read_heap(&mut c, src, size, "msg_reply_data_append")?;
        let buffer = &mut c.data_mut().reply_buffer;
        if buffer.len() + bytes.len() > MAX_PAYLOAD_BYTES {
            return Err(violation(format!(
                "msg_reply_data_append: the reply exceeds the limit of {MAX_PAYLOAD_BYTES} bytes"
            )));
        }
        buffer.extend_from_slice(&bytes);
        Ok(())
    })?;
    l.func_wrap("ic0", "msg_reply", |mut c: Ctx<'_>| {
        charge(&mut c, costs::msg_reply, 0)?;
        let s = c.data_mut();
        s.require(s.entry().may_respond(), "msg_reply")?;
        if s.call_context_responded || s.response.is_some() {
            return Err(violation("msg_reply: the call was already responded to"));
        }
        s.response = Some(Response::Reply(std::mem::take(&mut s.reply_buffer)));
        Ok(())
    })?;
    l.func_wrap(
        "ic0",
        "msg_reject",
        |mut c: Ctx<'_>, src: i32, size: i32| {
            charge(&mut c, costs::msg_reject, bytes(size))?;
            let s = c.data();
            s.require(s.entry().may_respond(), "msg_reject")?;
            if s.call_context_responded || s.response.is_some() {
                return Err(violation("msg_reject: the call was already responded to"));
            }
            let message = utf8_from_heap(&mut c, src, size, "msg_reject")?;
            c.data_mut().response = Some(Response::Reject(message));
            Ok(())
        },
    )?;
    l.func_wrap(
        "ic0",
        "msg_method_name_size",
        |mut c: Ctx<'_>| -> Result<i32, Error> {
            charge(&mut c, costs::msg_method_name_size, 0)?;
            let s = c.data();
            s.require(
                matches!(
                    s.entry(),
                    EntryPoint::Update | EntryPoint::Query | EntryPoint::InspectMessage
                ),
                "msg_method_name_size",
            )?;
            Ok(s.method_name.len() as i32)
        },
    )?;
    l.func_wrap(
        "ic0",
        "msg_method_name_copy",
        |mut c: Ctx<'_>, dst: i32, off: i32, size: i32| {
            charge(&mut c, costs::msg_method_name_copy, bytes(size))?;
            let s = c.data();
            s.require(
                matches!(
                    s.entry(),
                    EntryPoint::Update | EntryPoint::Query | EntryPoint::InspectMessage
                ),
                "msg_method_name_copy",
            )?;
            let name = s.method_name.clone();
            copy_slice(
                &mut c,
                name.as_bytes(),
                dst,
                off,
                size,
                "msg_method_name_copy",
            )
        },
    )?;
    l.func_wrap("ic0", "accept_message", |mut c: Ctx<'_>| {
        charge(&mut c, costs::accept_message, 0)?;
        let s = c.data_mut();
        s.require(s.entry() == EntryPoint::InspectMessage, "accept_message")?;
        if s.message_accepted {
            return Err(violation(
                "accept_message: the message was already accepted",
            ));
        }
        s.message_accepted = true;
        Ok(())
    })?;
    Ok(())
}

fn link_cycles(l: &mut Linker<SystemState>) -> Result<(), Error> {
    l.func_wrap(
        "ic0",
        "msg_cycles_available128",
        |mut c: Ctx<'_>, dst: i32| {
            charge(&mut c, costs::msg_cycles_available128, 0)?;
            let s = c.data();
            s.require(s.entry().may_accept_cycles(), "msg_cycles_available128")?;
            let available = s.cycles_available;
            write_u128(&mut c, dst, available, "msg_cycles_available128")
        },
    )?;
    l.func_wrap(
        "ic0",
        "msg_cycles_refunded128",
        |mut c: Ctx<'_>, dst: i32| {
            charge(&mut c, costs::msg_cycles_refunded128, 0)?;
            let s = c.data();
            s.require(s.entry().is_callback(), "msg_cycles_refunded128")?;
            let refunded = s.cycles_refunded;
            write_u128(&mut c, dst, refunded, "msg_cycles_refunded128")
        },
    )?;
    l.func_wrap(
        "ic0",
        "msg_cycles_accept128",
        |mut c: Ctx<'_>, high: i64, low: i64, dst: i32| {
            charge(&mut c, costs::msg_cycles_accept128, 0)?;
            let s = c.data_mut();
            s.require(s.entry().may_accept_cycles(), "msg_cycles_accept128")?;
            let amount = join_u128(high, low).min(s.cycles_available);
            s.cycles_available -= amount;
            s.cycles_accepted = s.cycles_accepted.saturating_add(amount);
            s.balance = s.balance.saturating_add(amount);
            write_u128(&mut c, dst, amount, "msg_cycles_accept128")
        },
    )?;
    l.func_wrap(
        "ic0",
        "cycles_burn128",
        |mut c: Ctx<'_>, high: i64, low: i64, dst: i32| {
            charge(&mut c, costs::cycles_burn128, 0)?;
            let s = c.data_mut();
            s.require(!s.entry().is_query(), "cycles_burn128")?;
            let amount = join_u128(high, low).min(s.balance);
            s.balance -= amount;
            s.cycles_burned = s.cycles_burned.saturating_add(amount);
            write_u128(&mut c, dst, amount, "cycles_burn128")
        },
    )?;
    l.func_wrap(
        "ic0",
        "canister_cycle_balance128",
        |mut c: Ctx<'_>, dst: i32| {
            charge(&mut c, costs::canister_cycle_balance128, 0)?;
            let balance = c.data().balance;
            write_u128(&mut c, dst, balance, "canister_cycle_balance128")
        },
    )?;
    l.func_wrap(
        "ic0",
        "canister_liquid_cycle_balance128",
        |mut c: Ctx<'_>, dst: i32| {
            charge(&mut c, costs::canister_liquid_cycle_balance128, 0)?;
            let balance = c.data().balance;
            write_u128(&mut c, dst, balance, "canister_liquid_cycle_balance128")
        },
    )?;
    l.func_wrap(
        "ic0",
        "cost_call",
        |mut c: Ctx<'_>, name_size: i64, payload_size: i64, dst: i32| {
            charge(&mut c, costs::cost_call, 0)?;
            let cost = c.data().fees.call(name_size as u64, payload_size as u64);
            write_u128(&mut c, dst, cost, "cost_call")
        },
    )?;
    l.func_wrap("ic0", "cost_create_canister", |mut c: Ctx<'_>, dst: i32| {
        charge(&mut c, costs::cost_create_canister, 0)?;
        let cost = c.data().fees.canister_creation;
        write_u128(&mut c, dst, cost, "cost_create_canister")
    })?;
    Ok(())
}

fn link_canister(l: &mut Linker<SystemState>) -> Result<(), Error> {
    l.func_wrap(
        "ic0",
        "canister_self_size",
        |mut c: Ctx<'_>| -> Result<i32, Error> {
            charge(&mut c, costs::canister_self_size, 0)?;
            Ok(c.data().canister_id.as_slice().len() as i32)
        },
    )?;
    l.func_wrap(
        "ic0",
        "canister_self_copy",
        |mut c: Ctx<'_>, dst: i32, off: i32, size: i32| {
            charge(&mut c, costs::canister_self_copy, bytes(size))?;
            let id = c.data().canister_id;
            copy_slice(&mut c, id.as_slice(), dst, off, size, "canister_self_copy")
        },
    )?;
    l.func_wrap(
        "ic0",
        "canister_status",
        |mut c: Ctx<'_>| -> Result<i32, Error> {
            charge(&mut c, costs::canister_status, 0)?;
            Ok(c.data().status_code as i32)
        },
    )?;
    l.func_wrap(
        "ic0",
        "canister_version",
        |mut c: Ctx<'_>| -> Result<i64, Error> {
            charge(&mut c, costs::canister_version, 0)?;
            Ok(c.data().canister_version as i64)
        },
    )?;
    l.func_wrap(
        "ic0",
        "subnet_self_size",
        |mut c: Ctx<'_>| -> Result<i32, Error> {
            charge(&mut c, costs::subnet_self_size, 0)?;
            Ok(c.data().subnet_id.as_slice().len() as i32)
        },
    )?;
    l.func_wrap(
        "ic0",
        "subnet_self_copy",
        |mut c: Ctx<'_>, dst: i32, off: i32, size: i32| {
            charge(&mut c, costs::subnet_self_copy, bytes(size))?;
            let id = c.data().subnet_id;
            copy_slice(&mut c, id.as_slice(), dst, off, size, "subnet_self_copy")
        },
    )?;
    l.func_wrap(
        "ic0",
        "subnet_self_node_count",
        |mut c: Ctx<'_>| -> Result<i32, Error> {
            charge(&mut c, costs::subnet_self_node_count, 0)?;
            Ok(c.data().fees.subnet_size as i32)
        },
    )?;
    l.func_wrap(
        "ic0",
        "is_controller",
        |mut c: Ctx<'_>, src: i32, size: i32| -> Result<i32, Error> {
            charge(&mut c, costs::is_controller, bytes(size))?;
            let principal = principal_from_heap(&mut c, src, size, "is_controller")?;
            Ok(i32::from(c.data().controllers.contains(&principal)))
        },
    )?;
    Ok(())
}

fn link_calls(l: &mut Linker<SystemState>) -> Result<(), Error> {
    l.func_wrap(
        "ic0",
        "call_new",
        |mut c: Ctx<'_>,
         callee_src: i32,
         callee_size: i32,
         name_src: i32,
         name_size: i32,
         reply_fun: i32,
         reply_env: i32,
         reject_fun: i32,
         reject_env: i32| {
            charge(
                &mut c,
                costs::call_new,
                bytes(callee_size) + bytes(name_size),
            )?;
            let s = c.data();
            s.require(s.entry().may_call(), "call_new")?;
            let callee = principal_from_heap(&mut c, callee_src, callee_size, "call_new")?;
            let method = utf8_from_heap(&mut c, name_src, name_size, "call_new")?;
            // A call assembled but never performed is discarded by a new `call_new`.
            c.data_mut().pending_call = Some(OutgoingCall {
                callee,
                method,
                arg: Vec::new(),
                cycles: 0,
                on_reply: WasmClosure {
                    table_index: reply_fun as u32,
                    env: reply_env as u32,
                },
                on_reject: WasmClosure {
                    table_index: reject_fun as u32,
                    env: reject_env as u32,
                },
                on_cleanup: None,
                timeout_seconds: None,
            });
            Ok(())
        },
    )?;
    l.func_wrap(
        "ic0",
        "call_on_cleanup",
        |mut c: Ctx<'_>, fun: i32, env: i32| {
            charge(&mut c, costs::call_on_cleanup, 0)?;
            let call = pending_call(&mut c, "call_on_cleanup")?;
            if call.on_cleanup.is_some() {
                return Err(violation(
                    "call_on_cleanup: a cleanup callback is already set",
                ));
            }
            call.on_cleanup = Some(WasmClosure {
                table_index: fun as u32,
                env: env as u32,
            });
            Ok(())
        },
    )?;
    l.func_wrap(
        "ic0",
        "call_data_append",
        |mut c: Ctx<'_>, src: i32, size: i32| {
            charge(&mut c, costs::call_data_append, bytes(size))?;
            pending_call(&mut c, "call_data_append")?;
            let bytes = read_heap(&mut c, src, size, "call_data_append")?;
            let call = pending_call(&mut c, "call_data_append")?;
            if call.arg.len() + bytes.len() > MAX_PAYLOAD_BYTES {
                return Err(violation(format!(
                    "call_data_append: the payload exceeds the limit of {MAX_PAYLOAD_BYTES} bytes"
                )));
            }
            call.arg.extend_from_slice(&bytes);
            Ok(())
        },
    )?;
    l.func_wrap(
        "ic0",
        "call_with_best_effort_response",
        |mut c: Ctx<'_>, timeout: i32| {
            charge(&mut c, costs::call_with_best_effort_response, 0)?;
            let call = pending_call(&mut c, "call_with_best_effort_response")?;
            if call.timeout_seconds.is_some() {
                return Err(violation(
                    "call_with_best_effort_response: called twice for one call",
                ));
            }
            call.timeout_seconds = Some((timeout as u32).min(MAX_CALL_TIMEOUT_SECONDS));
            Ok(())
        },
    )?;
    l.func_wrap(
        "ic0",
        "call_cycles_add128",
        |mut c: Ctx<'_>, high: i64, low: i64| {
            charge(&mut c, costs::call_cycles_add128, 0)?;
            let amount = join_u128(high, low);
            let balance = c.data().balance;
            if balance < amount {
                return Err(violation(format!(
                    "call_cycles_add128: cannot add {amount} cycles, the balance is {balance}"
                )));
            }
            let call = pending_call(&mut c, "call_cycles_add128")?;
            call.cycles = call.cycles.saturating_add(amount);
            c.data_mut().balance -= amount;
            Ok(())
        },
    )?;
    l.func_wrap(
        "ic0",
        "call_perform",
        |mut c: Ctx<'_>| -> Result<i32, Error> {
            charge(&mut c, costs::call_perform, 0)?;
            pending_call(&mut c, "call_perform")?;
            let s = c.data_mut();
            let call = s.pending_call.take().expect("checked by pending_call");
            let fee = s.fees.call(call.method.len() as u64, call.arg.len() as u64);
            let in_flight = s.calls_in_flight.get(&call.callee).copied().unwrap_or(0)
                + s.calls.iter().filter(|c| c.callee == call.callee).count() as u32;
            if s.balance < fee || in_flight >= MAX_CALLS_IN_FLIGHT_PER_CALLEE {
                // The cycles added to the call go back to the balance (spec: call_perform fails).
                s.balance = s.balance.saturating_add(call.cycles);
                return Ok(crate::reject::RejectCode::SysTransient.as_u32() as i32);
            }
            s.balance -= fee;
            s.calls.push(call);
            Ok(0)
        },
    )?;
    Ok(())
}

fn pending_call<'a>(c: &'a mut Ctx<'_>, function: &str) -> Result<&'a mut OutgoingCall, Error> {
    let s = c.data_mut();
    s.require(s.entry().may_call(), function)?;
    s.pending_call.as_mut().ok_or_else(|| {
        violation(format!(
            "ic0.{function} called without a preceding ic0.call_new"
        ))
    })
}

fn link_stable(l: &mut Linker<SystemState>) -> Result<(), Error> {
    l.func_wrap(
        "ic0",
        "stable64_size",
        |mut c: Ctx<'_>| -> Result<i64, Error> {
            charge(&mut c, costs::stable64_size, 0)?;
            Ok(c.data().stable.size_pages() as i64)
        },
    )?;
    l.func_wrap(
        "ic0",
        "stable64_grow",
        |mut c: Ctx<'_>, new_pages: i64| -> Result<i64, Error> {
            charge(&mut c, costs::stable64_grow, 0)?;
            let s = c.data_mut();
            let max = s.max_stable_pages;
            Ok(s.stable
                .grow(new_pages as u64, max)
                .map_or(-1, |old| old as i64))
        },
    )?;
    l.func_wrap(
        "ic0",
        "stable64_write",
        |c: Ctx<'_>, offset: i64, src: i64, size: i64| {
            let (src, size) = wasm32_range(src, size, "stable64_write")?;
            stable_write(c, costs::stable64_write, offset as u64, src, size)
        },
    )?;
    l.func_wrap(
        "ic0",
        "stable64_read",
        |c: Ctx<'_>, dst: i64, offset: i64, size: i64| {
            let (dst, size) = wasm32_range(dst, size, "stable64_read")?;
            stable_read(c, costs::stable64_read, dst, offset as u64, size)
        },
    )?;
    link_stable32(l)
}

/// The 32-bit stable memory API, which the IC still offers beside the 64-bit one: the same
/// memory, addressed with 32-bit offsets; each function traps once the memory is larger than
/// the 4 GiB it can address, and growing past that fails (-1).
fn link_stable32(l: &mut Linker<SystemState>) -> Result<(), Error> {
    l.func_wrap(
        "ic0",
        "stable_size",
        |mut c: Ctx<'_>| -> Result<i32, Error> {
            charge(&mut c, costs::stable_size, 0)?;
            stable32_pages(&c, "stable_size").map(|pages| pages as i32)
        },
    )?;
    l.func_wrap(
        "ic0",
        "stable_grow",
        |mut c: Ctx<'_>, new_pages: i32| -> Result<i32, Error> {
            charge(&mut c, costs::stable_grow, 0)?;
            let pages = stable32_pages(&c, "stable_grow")?;
            if pages + u64::from(new_pages as u32) > STABLE32_MAX_PAGES {
                return Ok(-1);
            }
            let s = c.data_mut();
            let max = s.max_stable_pages;
            Ok(s.stable
                .grow(u64::from(new_pages as u32), max)
                .map_or(-1, |old| old as i32))
        },
    )?;
    l.func_wrap(
        "ic0",
        "stable_write",
        |c: Ctx<'_>, offset: i32, src: i32, size: i32| {
            stable32_pages(&c, "stable_write")?;
            stable_write(c, costs::stable_write, u64::from(offset as u32), src, size)
        },
    )?;
    l.func_wrap(
        "ic0",
        "stable_read",
        |c: Ctx<'_>, dst: i32, offset: i32, size: i32| {
            stable32_pages(&c, "stable_read")?;
            stable_read(c, costs::stable_read, dst, u64::from(offset as u32), size)
        },
    )?;
    Ok(())
}

/// 4 GiB of 64 KiB pages: what 32-bit offsets address.
const STABLE32_MAX_PAGES: u64 = 1 << 16;

fn stable32_pages(c: &Ctx<'_>, function: &'static str) -> Result<u64, Error> {
    let pages = c.data().stable.size_pages();
    if pages > STABLE32_MAX_PAGES {
        return Err(trap(TrapCause::StableOutOfBounds(format!(
            "ic0.{function}: stable memory is larger than the 4 GiB the 32-bit API addresses"
        ))));
    }
    Ok(pages)
}

/// `size` heap bytes at `src` to stable memory at `offset`.
fn stable_write(
    mut c: Ctx<'_>,
    cost: costs::Ic0Cost,
    offset: u64,
    src: i32,
    size: i32,
) -> Result<(), Error> {
    let first_dirtied = c
        .data_mut()
        .dirty_stable_pages(offset, u64::from(size as u32))?;
    charge(&mut c, cost, u64::from(size as u32))?;
    charge_instructions(
        &mut c,
        first_dirtied.saturating_mul(costs::DIRTY_PAGE_OVERHEAD),
    )?;
    let bytes = read_heap(&mut c, src, size, cost.name)?;
    c.data_mut()
        .stable
        .write(offset, &bytes)
        .map_err(|e| trap(TrapCause::StableOutOfBounds(e.to_string())))
}

/// `size` stable bytes at `offset` into the heap at `dst`.
fn stable_read(
    mut c: Ctx<'_>,
    cost: costs::Ic0Cost,
    dst: i32,
    offset: u64,
    size: i32,
) -> Result<(), Error> {
    charge(&mut c, cost, u64::from(size as u32))?;
    // Straight into the heap: the host allocates nothing a canister could inflate.
    let memory = heap::memory(&c)?;
    let (heap, state) = memory.data_and_store_mut(&mut c);
    let written = heap::range(dst, size)
        .filter(|r| r.end <= heap.len())
        .ok_or_else(|| trap(TrapCause::HeapOutOfBounds(cost.name)))?;
    state
        .stable
        .read(offset, &mut heap[written.clone()])
        .map_err(|e| trap(TrapCause::StableOutOfBounds(e.to_string())))?;
    heap::mark_written(&mut c, written);
    Ok(())
}

/// Heap addresses of the 64-bit stable API must fit the 32-bit heap.
fn wasm32_range(addr: i64, size: i64, function: &'static str) -> Result<(i32, i32), Error> {
    let fits = |v: i64| u32::try_from(v as u64).is_ok();
    if fits(addr) && fits(size) {
        Ok((addr as u32 as i32, size as u32 as i32))
    } else {
        Err(trap(TrapCause::HeapOutOfBounds(function)))
    }
}

fn link_certification(l: &mut Linker<SystemState>) -> Result<(), Error> {
    l.func_wrap("ic0", "certified_data_set", |mut c: Ctx<'_>, src: i32, size: i32| {
            charge(&mut c, costs::certified_data_set, bytes(size))?;
        let s = c.data();
        s.require(!s.entry().is_query(), "certified_data_set")?;
        if size as u32 as usize > MAX_CERTIFIED_DATA_BYTES {
            return Err(violation(format!(
                "certified_data_set: {} bytes given, at most {MAX_CERTIFIED_DATA_BYTES} allowed",
                size as u32
            )));
        }
        let data = read_heap(&mut c, src, size, "certified_data_set")?;
        c.data_mut().certified_data = Some(data);
        Ok(())
    })?;
    l.func_wrap(
        "ic0",
        "data_certificate_present",
        |mut c: Ctx<'_>| -> Result<i32, Error> {
            charge(&mut c, costs::data_certificate_present, 0)?;
            Ok(i32::from(c.data().data_certificate.is_some()))
        },
    )?;
    l.func_wrap(
        "ic0",
        "data_certificate_size",
        |mut c: Ctx<'_>| -> Result<i32, Error> {
            charge(&mut c, costs::data_certificate_size, 0)?;
            let s = c.data();
            let certificate = s.data_certificate.as_ref().ok_or_else(|| {
                violation("data_certificate_size: no certificate outside a non-replicated query")
            })?;
            Ok(certificate.get().len() as i32)
        },
    )?;
    l.func_wrap(
        "ic0",
        "data_certificate_copy",
        |mut c: Ctx<'_>, dst: i32, off: i32, size: i32| {
            charge(&mut c, costs::data_certificate_copy, bytes(size))?;
            let certificate = c
                .data()
                .data_certificate
                .as_ref()
                .map(|certificate| certificate.get().clone())
                .ok_or_else(|| {
                    violation(
                        "data_certificate_copy: no certificate outside a non-replicated query",
                    )
                })?;
            copy_slice(
                &mut c,
                &certificate,
                dst,
                off,
                size,
                "data_certificate_copy",
            )
        },
    )?;
    l.func_wrap(
        "ic0",
        "root_key_size",
        |mut c: Ctx<'_>| -> Result<i32, Error> {
            charge(&mut c, costs::root_key_size, 0)?;
            Ok(c.data().root_key.len() as i32)
        },
    )?;
    l.func_wrap(
        "ic0",
        "root_key_copy",
        |mut c: Ctx<'_>, dst: i32, off: i32, size: i32| {
            charge(&mut c, costs::root_key_copy, bytes(size))?;
            let key = c.data().root_key.clone();
            copy_slice(&mut c, &key, dst, off, size, "root_key_copy")
        },
    )?;
    Ok(())
}

fn link_misc(l: &mut Linker<SystemState>) -> Result<(), Error> {
    l.func_wrap("ic0", "time", |mut c: Ctx<'_>| -> Result<i64, Error> {
        charge(&mut c, costs::time, 0)?;
        Ok(c.data().time as i64)
    })?;
    l.func_wrap(
        "ic0",
        "global_timer_set",
        |mut c: Ctx<'_>, timestamp: i64| -> Result<i64, Error> {
            charge(&mut c, costs::global_timer_set, 0)?;
            let s = c.data_mut();
            s.require(!s.entry().is_query(), "global_timer_set")?;
            Ok(std::mem::replace(&mut s.global_timer, timestamp as u64) as i64)
        },
    )?;
    l.func_wrap(
        "ic0",
        "performance_counter",
        |mut c: Ctx<'_>, counter: i32| -> Result<i64, Error> {
            charge(&mut c, costs::performance_counter, 0)?;
            let used = used(&mut c)?;
            match counter {
                0 => Ok(used as i64),
                1 => Ok((c.data().call_context_instructions + used) as i64),
                other => Err(violation(format!(
                    "performance_counter: unknown counter type {other}"
                ))),
            }
        },
    )?;
    l.func_wrap(
        "ic0",
        "in_replicated_execution",
        |mut c: Ctx<'_>| -> Result<i32, Error> {
            charge(&mut c, costs::in_replicated_execution, 0)?;
            Ok(i32::from(c.data().replicated))
        },
    )?;
    // Environment variables come from the canister settings (`environment_variables`).
    l.func_wrap(
        "ic0",
        "env_var_count",
        |mut c: Ctx<'_>| -> Result<i32, Error> {
            charge(&mut c, costs::env_var_count, 0)?;
            Ok(c.data().env_vars.len() as i32)
        },
    )?;
    l.func_wrap(
        "ic0",
        "env_var_name_size",
        |mut c: Ctx<'_>, index: i32| -> Result<i32, Error> {
            charge(&mut c, costs::env_var_name_size, 0)?;
            Ok(env_var_at(c.data(), index)?.0.len() as i32)
        },
    )?;
    l.func_wrap(
        "ic0",
        "env_var_name_copy",
        |mut c: Ctx<'_>, index: i32, dst: i32, off: i32, size: i32| {
            charge(&mut c, costs::env_var_name_copy, bytes(size))?;
            let name = env_var_at(c.data(), index)?.0.clone();
            copy_slice(&mut c, name.as_bytes(), dst, off, size, "env_var_name_copy")
        },
    )?;
    l.func_wrap(
        "ic0",
        "env_var_name_exists",
        |mut c: Ctx<'_>, src: i32, size: i32| -> Result<i32, Error> {
            charge(&mut c, costs::env_var_name_exists, 0)?;
            let name = utf8_from_heap(&mut c, src, size, "env_var_name_exists")?;
            Ok(i32::from(c.data().env_vars.iter().any(|(n, _)| *n == name)))
        },
    )?;
    l.func_wrap(
        "ic0",
        "env_var_value_size",
        |mut c: Ctx<'_>, src: i32, size: i32| -> Result<i32, Error> {
            charge(&mut c, costs::env_var_value_size, 0)?;
            let name = utf8_from_heap(&mut c, src, size, "env_var_value_size")?;
            Ok(env_var_named(c.data(), &name)?.len() as i32)
        },
    )?;
    l.func_wrap(
        "ic0",
        "env_var_value_copy",
        |mut c: Ctx<'_>, src: i32, size: i32, dst: i32, off: i32, len: i32| {
            charge(&mut c, costs::env_var_value_copy, bytes(len))?;
            let name = utf8_from_heap(&mut c, src, size, "env_var_value_copy")?;
            let value = env_var_named(c.data(), &name)?.to_string();
            copy_slice(
                &mut c,
                value.as_bytes(),
                dst,
                off,
                len,
                "env_var_value_copy",
            )
        },
    )?;
    l.func_wrap(
        "ic0",
        "debug_print",
        |mut c: Ctx<'_>, src: i32, size: i32| {
            let logging = costs::logging_bytes(bytes(size), c.data().logged_bytes());
            charge(&mut c, costs::debug_print, logging)?;
            let bytes = read_heap(&mut c, src, size, "debug_print")?;
            c.data_mut().log(&bytes);
            Ok(())
        },
    )?;
    l.func_wrap("ic0", "trap", |mut c: Ctx<'_>, src: i32, size: i32| {
        let logging = costs::logging_bytes(bytes(size), c.data().logged_bytes());
        charge(&mut c, costs::trap, bytes(size).saturating_add(logging))?;
        let bytes = read_heap(&mut c, src, size, "trap")?;
        Err::<(), _>(trap(TrapCause::Explicit(
            String::from_utf8_lossy(&bytes).into_owned(),
        )))
    })?;
    Ok(())
}

fn env_var_at(state: &SystemState, index: i32) -> Result<&(String, String), Error> {
    state.env_vars.get(index as u32 as usize).ok_or_else(|| {
        violation(format!(
            "env var index {} out of range: there are {} environment variables",
            index as u32,
            state.env_vars.len()
        ))
    })
}

fn env_var_named<'a>(state: &'a SystemState, name: &str) -> Result<&'a str, Error> {
    state
        .env_vars
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.as_str())
        .ok_or_else(|| violation(format!("no environment variable `{name}`")))
}
