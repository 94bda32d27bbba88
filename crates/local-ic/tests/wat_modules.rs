//! Behaviour checked on hand-written modules: globals rollback, missing imports, module limits.

mod common;

use candid::Principal;
use common::wat::{ECHO, GLOBAL_COUNTER, counter, installed, wat_bytes};
use local_ic::{LocalIc, RejectCode};

const ALICE: Principal = Principal::from_slice(&[7]);

#[test]
fn trap_rolls_back_mutable_globals() {
    let (mut ic, canister) = installed(GLOBAL_COUNTER);
    ic.update_call(canister, ALICE, "inc", vec![]).unwrap();
    let err = ic
        .update_call(canister, ALICE, "inc_then_trap", vec![])
        .unwrap_err();
    assert_eq!(err.reject_code, RejectCode::CanisterError);
    assert!(err.reject_message.contains("unreachable"), "{err}");
    assert_eq!(counter(&mut ic, canister), 1);
    ic.update_call(canister, ALICE, "inc", vec![]).unwrap();
    assert_eq!(counter(&mut ic, canister), 2);
}

#[test]
fn missing_import_fails_install_naming_it() {
    let mut ic = LocalIc::new();
    let canister = ic.create_canister();
    let wasm = wat::parse_str(r#"(module (import "ic0" "mint_cycles" (func)))"#).unwrap();
    let err = ic
        .install_canister(canister, wasm, vec![], None)
        .unwrap_err();
    assert!(err.reject_message.contains("`ic0.mint_cycles`"), "{err}");
    assert!(
        ic.canister_status(canister, None)
            .unwrap()
            .module_hash
            .is_none()
    );
}

#[test]
fn method_that_does_not_reply_is_rejected() {
    let mut ic = LocalIc::new();
    let canister = ic.create_canister();
    let wasm = wat::parse_str(r#"(module (func (export "canister_update silent")))"#).unwrap();
    ic.install_canister(canister, wasm, vec![], None).unwrap();
    let err = ic
        .update_call(canister, ALICE, "silent", vec![])
        .unwrap_err();
    assert_eq!(
        err.error_code.as_deref(),
        Some(local_ic::error_codes::CANISTER_DID_NOT_REPLY)
    );
    let err = ic
        .update_call(canister, ALICE, "absent", vec![])
        .unwrap_err();
    assert_eq!(
        err.error_code.as_deref(),
        Some(local_ic::error_codes::CANISTER_METHOD_NOT_FOUND)
    );
}

#[test]
fn heartbeat_runs_every_round() {
    let mut ic = LocalIc::new();
    let canister = ic.create_canister();
    let wasm = GLOBAL_COUNTER.replace(
        r#"(func (export "canister_update inc")"#,
        r#"(func (export "canister_heartbeat")
            (global.set $counter (i32.add (global.get $counter) (i32.const 1))))
          (func (export "canister_update inc")"#,
    );
    ic.install_canister(canister, wat::parse_str(wasm).unwrap(), vec![], None)
        .unwrap();
    for _ in 0..3 {
        ic.tick();
    }
    assert_eq!(counter(&mut ic, canister), 3);
}

#[test]
fn start_function_runs_once_at_install_with_a_counter() {
    let mut ic = LocalIc::new();
    let canister = ic.create_canister();
    let wasm = GLOBAL_COUNTER.replace(
        "(memory 1)",
        r#"(memory 1)
          (func $start (global.set $counter (i32.const 41)))
          (start $start)"#,
    );
    ic.install_canister(canister, wat::parse_str(wasm).unwrap(), vec![], None)
        .unwrap();
    assert_eq!(counter(&mut ic, canister), 41);
    ic.update_call(canister, ALICE, "inc", vec![]).unwrap();
    assert_eq!(counter(&mut ic, canister), 42);
}

#[test]
fn relaxed_simd_is_refused_as_on_the_ic() {
    let mut ic = LocalIc::new();
    let canister = ic.create_canister();
    let wasm = wat::parse_str(
        r#"(module (func (export "canister_update m")
            (drop (i32x4.relaxed_trunc_f32x4_s (v128.const i32x4 0 0 0 0)))))"#,
    )
    .unwrap();
    let err = ic
        .install_canister(canister, wasm, vec![], None)
        .unwrap_err();
    assert_eq!(
        err.error_code.as_deref(),
        Some(local_ic::error_codes::CANISTER_INVALID_WASM)
    );
    assert!(err.reject_message.contains("relaxed SIMD"), "{err}");
}

/// Traps and limits carry the same error codes in queries as in updates (IC0503 for an
/// explicit trap, IC0522 for the instruction limit, IC0502 for a wasm trap).
#[test]
fn queries_report_the_replicas_error_codes() {
    const TRAPS: &str = r#"(module
      (import "ic0" "trap" (func $trap (param i32 i32)))
      (memory 1)
      (data (i32.const 0) "no")
      (func (export "canister_query called_trap") (call $trap (i32.const 0) (i32.const 2)))
      (func (export "canister_query unreachable") unreachable)
      (func (export "canister_query forever") (loop $l (br $l))))"#;
    let mut ic = LocalIc::new();
    ic.set_instruction_limits(local_ic::InstructionLimits {
        query: 1_000_000,
        ..local_ic::InstructionLimits::IC
    });
    let canister = ic.create_canister();
    ic.install_canister(canister, wat::parse_str(TRAPS).unwrap(), vec![], None)
        .unwrap();
    for (method, code) in [
        ("called_trap", local_ic::error_codes::CANISTER_CALLED_TRAP),
        ("unreachable", local_ic::error_codes::CANISTER_TRAPPED),
        (
            "forever",
            local_ic::error_codes::CANISTER_INSTRUCTION_LIMIT_EXCEEDED,
        ),
    ] {
        let err = ic.query_call(canister, ALICE, method, vec![]).unwrap_err();
        assert_eq!(err.reject_code, RejectCode::CanisterError, "{method}");
        assert_eq!(err.error_code.as_deref(), Some(code), "{method}: {err}");
    }
}

#[test]
fn a_canister_without_a_module_answers_ic0537_as_a_canister_error() {
    let mut ic = LocalIc::new();
    let canister = ic.create_canister();
    let err = ic.update_call(canister, ALICE, "m", vec![]).unwrap_err();
    assert_eq!(err.reject_code, RejectCode::CanisterError);
    assert_eq!(
        err.error_code.as_deref(),
        Some(local_ic::error_codes::CANISTER_WASM_MODULE_NOT_FOUND)
    );
}

#[test]
fn cycle_top_ups_saturate_instead_of_overflowing() {
    let mut ic = LocalIc::new();
    let canister = ic.create_canister();
    ic.add_cycles(canister, u128::MAX);
    ic.add_cycles(canister, u128::MAX);
    assert_eq!(ic.cycle_balance(canister), u128::MAX);
}

/// A canister that calls `echo` on `callee` and replies at once, leaving the callback open;
/// the callback (table entry 0) records `marker`.
fn caller_module(callee: Principal, marker: i32) -> Vec<u8> {
    let (id, len) = wat_bytes(callee);
    wat::parse_str(format!(
        r#"(module
      (import "ic0" "call_new" (func $call_new (param i32 i32 i32 i32 i32 i32 i32 i32)))
      (import "ic0" "call_perform" (func $call_perform (result i32)))
      (import "ic0" "msg_reply" (func $reply))
      (import "ic0" "msg_reply_data_append" (func $append (param i32 i32)))
      (memory 1)
      (table 1 funcref)
      (elem (i32.const 0) $on_response)
      (global $seen (mut i32) (i32.const 0))
      (data (i32.const 0) "{id}")
      (data (i32.const 64) "echo")
      (func $on_response (param i32) (global.set $seen (i32.const {marker})))
      (func (export "canister_update go")
        (call $call_new (i32.const 0) (i32.const {len}) (i32.const 64) (i32.const 4)
          (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 0))
        (drop (call $call_perform))
        (call $reply))
      (func (export "canister_query seen")
        (i32.store (i32.const 128) (global.get $seen))
        (call $append (i32.const 128) (i32.const 4))
        (call $reply)))"#
    ))
    .unwrap()
}

/// The IC does not require a canister to be stopped before an upgrade: a response that
/// arrives afterwards runs the callback's table entry in the new module.
#[test]
fn a_response_after_an_upgrade_runs_the_new_modules_callback() {
    let mut ic = LocalIc::new();
    let callee = ic.create_canister();
    ic.install_canister(callee, wat::parse_str(ECHO).unwrap(), vec![], None)
        .unwrap();
    let caller = ic.create_canister();
    ic.install_canister(caller, caller_module(callee, 1), vec![], None)
        .unwrap();

    let call = ic.submit_call(caller, ALICE, "go", vec![]).unwrap();
    ic.tick(); // `go` runs: the call to `echo` is queued, the ingress is answered.
    assert!(ic.ingress_status(call).is_some_and(|r| r.is_ok()));
    ic.upgrade_canister(caller, caller_module(callee, 2), vec![], None)
        .unwrap();
    ic.tick(); // `echo` runs.
    ic.tick(); // Its response reaches the upgraded caller.
    let seen = ic.query_call(caller, ALICE, "seen", vec![]).unwrap();
    assert_eq!(i32::from_le_bytes(seen.try_into().unwrap()), 2);
}

/// The IC queues at most 500 calls from one canister to another: `call_perform` answers
/// SYS_TRANSIENT (2) for the next one until responses free room.
#[test]
fn calls_in_flight_to_one_callee_are_capped_at_the_queue_capacity() {
    let mut ic = LocalIc::new();
    let callee = ic.create_canister();
    ic.install_canister(callee, wat::parse_str(ECHO).unwrap(), vec![], None)
        .unwrap();
    let (id, len) = wat_bytes(callee);
    // Performs 501 calls and replies with how many `call_perform` refused.
    let fanout = format!(
        r#"(module
      (import "ic0" "call_new" (func $call_new (param i32 i32 i32 i32 i32 i32 i32 i32)))
      (import "ic0" "call_perform" (func $call_perform (result i32)))
      (import "ic0" "msg_reply" (func $reply))
      (import "ic0" "msg_reply_data_append" (func $append (param i32 i32)))
      (memory 1)
      (table 1 funcref)
      (elem (i32.const 0) $ignore)
      (data (i32.const 0) "{id}")
      (data (i32.const 64) "echo")
      (func $ignore (param i32))
      (func (export "canister_update fanout") (local $i i32) (local $refused i32)
        (loop $l
          (call $call_new (i32.const 0) (i32.const {len}) (i32.const 64) (i32.const 4)
            (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 0))
          (if (i32.eq (call $call_perform) (i32.const 2))
            (then (local.set $refused (i32.add (local.get $refused) (i32.const 1)))))
          (local.set $i (i32.add (local.get $i) (i32.const 1)))
          (br_if $l (i32.lt_u (local.get $i) (i32.const 501))))
        (i32.store (i32.const 128) (local.get $refused))
        (call $append (i32.const 128) (i32.const 4))
        (call $reply)))"#
    );
    let caller = ic.create_canister();
    ic.install_canister(caller, wat::parse_str(fanout).unwrap(), vec![], None)
        .unwrap();
    let refused = |reply: Vec<u8>| i32::from_le_bytes(reply.try_into().unwrap());
    let first = ic.update_call(caller, ALICE, "fanout", vec![]).unwrap();
    assert_eq!(refused(first), 1);
    // The ingress was answered with the calls still out; once the callee has answered them
    // all, there is room for 500 again.
    ic.tick();
    ic.tick();
    let second = ic.update_call(caller, ALICE, "fanout", vec![]).unwrap();
    assert_eq!(refused(second), 1);
}

/// Replies do not pile up: five minutes after a call completed its reply leaves the ingress
/// history (the call is still known as done), and later the call is forgotten.
#[test]
fn the_ingress_history_is_pruned() {
    let (mut ic, canister) = installed(GLOBAL_COUNTER);
    let call = ic.submit_call(canister, ALICE, "inc", vec![]).unwrap();
    assert!(ic.await_call(call).is_ok());
    ic.advance_time(std::time::Duration::from_secs(4 * 60));
    ic.tick();
    assert!(ic.ingress_status(call).is_some_and(|r| r.is_ok()));
    ic.advance_time(std::time::Duration::from_secs(2 * 60));
    ic.tick();
    let done = ic.ingress_status(call).unwrap().unwrap_err();
    assert_eq!(done.reject_code, RejectCode::SysUnknown);
    assert!(done.reject_message.contains("no longer"), "{done}");
    ic.advance_time(std::time::Duration::from_secs(10 * 60));
    ic.tick();
    assert!(ic.ingress_status(call).is_none());
}

/// The 32-bit stable memory API (which the ICP ledger's archive still uses) addresses the same
/// memory as the 64-bit one.
#[test]
fn the_32_bit_stable_api_shares_the_64_bit_ones_memory() {
    let (mut ic, canister) = installed(
        r#"(module
  (import "ic0" "msg_reply" (func $reply))
  (import "ic0" "msg_reply_data_append" (func $append (param i32 i32)))
  (import "ic0" "stable_size" (func $size (result i32)))
  (import "ic0" "stable_grow" (func $grow (param i32) (result i32)))
  (import "ic0" "stable_write" (func $write (param i32 i32 i32)))
  (import "ic0" "stable_read" (func $read (param i32 i32 i32)))
  (import "ic0" "stable64_read" (func $read64 (param i64 i64 i64)))
  (memory 1)
  (data (i32.const 0) "ohms")
  (func (export "canister_update roundtrip")
    ;; grow by 2 pages from 0: returns the old size, 0
    (i32.store (i32.const 16) (call $grow (i32.const 2)))
    (i32.store (i32.const 20) (call $size))
    ;; growing past 4 GiB fails with -1
    (i32.store (i32.const 24) (call $grow (i32.const 65535)))
    (call $write (i32.const 70000) (i32.const 0) (i32.const 4))
    (call $read (i32.const 28) (i32.const 70000) (i32.const 4))
    (call $read64 (i64.const 32) (i64.const 70000) (i64.const 4))
    (call $append (i32.const 16) (i32.const 20))
    (call $reply)))"#,
    );
    let reply = ic
        .update_call(canister, Principal::anonymous(), "roundtrip", vec![])
        .unwrap();
    let word = |i: usize| i32::from_le_bytes(reply[i * 4..i * 4 + 4].try_into().unwrap());
    assert_eq!((word(0), word(1), word(2)), (0, 2, -1));
    assert_eq!(&reply[12..16], b"ohms");
    assert_eq!(
        &reply[16..20],
        b"ohms",
        "the 64-bit API reads what the 32-bit one wrote"
    );
}
