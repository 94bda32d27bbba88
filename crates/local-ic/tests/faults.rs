//! Injected faults: a callback that traps, a reply that is lost.

mod common;

use candid::Principal;
use common::wat::{GLOBAL_COUNTER, counter, install, wat_bytes};
use local_ic::{Fault, LocalIc, RejectCode, error_codes};

const ALICE: Principal = Principal::from_slice(&[7]);

/// A canister whose `go` calls `inc` on `callee` and answers from the callbacks: the reply
/// callback (table 0) counts replies, the reject callback (1) records the reject code, the
/// cleanup callback (2) counts cleanups. `state` answers the three as little-endian i32s.
fn caller_wat(callee: Principal) -> String {
    let (id, len) = wat_bytes(callee);
    format!(
        r#"(module
      (import "ic0" "call_new" (func $call_new (param i32 i32 i32 i32 i32 i32 i32 i32)))
      (import "ic0" "call_on_cleanup" (func $call_on_cleanup (param i32 i32)))
      (import "ic0" "call_perform" (func $call_perform (result i32)))
      (import "ic0" "msg_reject_code" (func $reject_code (result i32)))
      (import "ic0" "msg_reply" (func $reply))
      (import "ic0" "msg_reply_data_append" (func $append (param i32 i32)))
      (memory 1)
      (table 3 funcref)
      (elem (i32.const 0) $on_reply $on_reject $on_cleanup)
      (global $replies (mut i32) (i32.const 0))
      (global $reject_code (mut i32) (i32.const 0))
      (global $cleanups (mut i32) (i32.const 0))
      (data (i32.const 0) "{id}")
      (data (i32.const 64) "inc")
      (func $on_reply (param i32)
        (global.set $replies (i32.add (global.get $replies) (i32.const 1)))
        (call $reply))
      (func $on_reject (param i32)
        (global.set $reject_code (call $reject_code))
        (call $reply))
      (func $on_cleanup (param i32)
        (global.set $cleanups (i32.add (global.get $cleanups) (i32.const 1))))
      (func (export "canister_update go")
        (call $call_new (i32.const 0) (i32.const {len}) (i32.const 64) (i32.const 3)
          (i32.const 0) (i32.const 0) (i32.const 1) (i32.const 0))
        (call $call_on_cleanup (i32.const 2) (i32.const 0))
        (drop (call $call_perform)))
      (func (export "canister_query state")
        (i32.store (i32.const 128) (global.get $replies))
        (i32.store (i32.const 132) (global.get $reject_code))
        (i32.store (i32.const 136) (global.get $cleanups))
        (call $append (i32.const 128) (i32.const 12))
        (call $reply)))"#
    )
}

/// A network with a counter (the callee) and a caller of its `inc`.
fn setup() -> (LocalIc, Principal, Principal) {
    let mut ic = LocalIc::new();
    let callee = install(&mut ic, GLOBAL_COUNTER);
    let caller = install(&mut ic, &caller_wat(callee));
    (ic, caller, callee)
}

/// The caller's (replies, reject code, cleanups).
fn caller_state(ic: &mut LocalIc, caller: Principal) -> (i32, i32, i32) {
    let bytes = ic.query_call(caller, ALICE, "state", vec![]).unwrap();
    let word = |i: usize| i32::from_le_bytes(bytes[4 * i..4 * i + 4].try_into().unwrap());
    (word(0), word(1), word(2))
}

#[test]
fn a_trap_in_the_callback_rolls_it_back_and_runs_the_cleanup_once() {
    let (mut ic, caller, callee) = setup();
    ic.inject_fault(Fault::TrapInCallback {
        canister: caller,
        callee,
        method: Some("inc".into()),
    });
    assert_eq!(ic.pending_faults(), 1);

    let err = ic.update_call(caller, ALICE, "go", vec![]).unwrap_err();
    assert_eq!(err.reject_code, RejectCode::CanisterError, "{err}");
    assert_eq!(
        err.error_code.as_deref(),
        Some(error_codes::CANISTER_CALLED_TRAP),
        "{err}"
    );
    assert_eq!(ic.pending_faults(), 0);
    // The callee's change stands; the callback's is gone; the cleanup's persists.
    assert_eq!(counter(&mut ic, callee), 1);
    assert_eq!(caller_state(&mut ic, caller), (0, 0, 1));
    let logs = ic
        .fetch_canister_logs(caller, Principal::anonymous())
        .unwrap();
    assert!(
        logs.iter()
            .any(|l| String::from_utf8_lossy(&l.content).contains("injected fault")),
        "the trap is in the caller's log"
    );

    // The fault applied once: the next call goes through.
    ic.update_call(caller, ALICE, "go", vec![]).unwrap();
    assert_eq!(counter(&mut ic, callee), 2);
    assert_eq!(caller_state(&mut ic, caller), (1, 0, 1));
}

#[test]
fn a_lost_reply_is_a_sys_unknown_reject_after_the_callee_committed() {
    let (mut ic, caller, callee) = setup();
    // A fault for another method (or another caller) does not apply.
    ic.inject_fault(Fault::LoseReply {
        canister: caller,
        callee,
        method: Some("other".into()),
    });
    ic.inject_fault(Fault::LoseReply {
        canister: callee,
        callee: caller,
        method: None,
    });
    ic.update_call(caller, ALICE, "go", vec![]).unwrap();
    assert_eq!(caller_state(&mut ic, caller), (1, 0, 0));
    assert_eq!(ic.pending_faults(), 2);

    ic.inject_fault(Fault::LoseReply {
        canister: caller,
        callee,
        method: None,
    });
    ic.update_call(caller, ALICE, "go", vec![]).unwrap();
    assert_eq!(ic.pending_faults(), 2);
    assert_eq!(caller_state(&mut ic, caller), (1, 6, 0));
    assert_eq!(RejectCode::from_u32(6), Some(RejectCode::SysUnknown));
    assert_eq!(counter(&mut ic, callee), 2);
}

#[test]
fn pending_faults_are_saved_with_the_network() {
    let (mut ic, caller, callee) = setup();
    ic.inject_fault(Fault::TrapInCallback {
        canister: caller,
        callee,
        method: None,
    });
    let mut bytes = Vec::new();
    ciborium::into_writer(ic.state(), &mut bytes).expect("the network state serializes");
    let saved: local_ic::NetworkState =
        ciborium::from_reader(bytes.as_slice()).expect("the network state deserializes");
    let mut resumed = LocalIc::from_state(saved);
    assert_eq!(resumed.pending_faults(), 1);
    assert!(resumed.update_call(caller, ALICE, "go", vec![]).is_err());
    assert_eq!(resumed.pending_faults(), 0);
    assert_eq!(caller_state(&mut resumed, caller), (0, 0, 1));
}
