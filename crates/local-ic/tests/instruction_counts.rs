//! The IC's instruction count, checked exactly: each method below is counted by hand from the
//! replica's cost table (instrumentation.rs `instruction_to_cost`) and its System API charges
//! (linker.rs / system_api_complexity.rs), and the runtime must report the same number both
//! through `ic0.performance_counter` and as the call's instructions.
//!
//! How a count is made: the module is cut into basic blocks (a function's start, and after
//! every `loop`, `if`, `else`, `br`, `br_if`, `br_table`, `end`, `return`, `unreachable`); a
//! function's first block costs 1 extra; a block costs the sum of its instructions' weights
//! and is charged in full when it starts. `end` and `loop` weigh 0, `call` 5, `br_if` 2, f32
//! arithmetic 2, most integer, local, constant and SIMD instructions 1. System API calls add
//! their overhead (500 for most, 200 for `performance_counter`) and per-byte charges (1 per
//! byte copied, 50 per byte of a reply).

use candid::Principal;
use local_ic::{InstructionLimits, LocalIc, RejectCode, error_codes};

const ALICE: Principal = Principal::from_slice(&[7]);

const MODULE: &str = r#"(module
  (import "ic0" "msg_reply" (func $reply))
  (import "ic0" "msg_reply_data_append" (func $append (param i32 i32)))
  (import "ic0" "msg_arg_data_size" (func $arg_size (result i32)))
  (import "ic0" "msg_arg_data_copy" (func $arg_copy (param i32 i32 i32)))
  (import "ic0" "performance_counter" (func $perf (param i32) (result i64)))
  (memory 1)

  ;; entry 1 (+ loop 0); body: local.get, i32.const, i32.add, local.set, local.get,
  ;; i32.const, i32.lt_u (7 × 1) + br_if 2 = 9 per turn; after: call 5.
  ;; 1 + 1,000 × 9 + 5 = 9,006, + msg_reply 500 = 9,506.
  (func (export "canister_update int_loop") (local $i i32)
    (loop $l
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br_if $l (i32.lt_u (local.get $i) (i32.const 1000))))
    (call $reply))

  ;; The same loop, then the counter is read and replied as 8 bytes. The last block is
  ;; i32.const, i32.const, call, i64.store, i32.const, i32.const, call, call = 20 and is
  ;; charged when it starts, so performance_counter sees 1 + 9,000 + 20 + its own 200 = 9,221;
  ;; the call then pays 8 × 50 + 500 for the reply data and 500 for msg_reply: 10,621.
  (func (export "canister_update counted") (local $i i32)
    (loop $l
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br_if $l (i32.lt_u (local.get $i) (i32.const 1000))))
    (i64.store (i32.const 0) (call $perf (i32.const 0)))
    (call $append (i32.const 0) (i32.const 8))
    (call $reply))

  ;; Floats weigh 2: body local.get 1, f32.const 1, f32.mul 2, f32.const 1, f32.add 2,
  ;; local.set 1 = 8, then the counter step 4, the test 3 and br_if 2: 17 per turn.
  ;; 1 + 1,000 × 17 + 5 + 500 = 17,506.
  (func (export "canister_update float_loop") (local $i i32) (local $x f32)
    (loop $l
      (local.set $x (f32.add (f32.mul (local.get $x) (f32.const 1.5)) (f32.const 0.25)))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br_if $l (i32.lt_u (local.get $i) (i32.const 1000))))
    (call $reply))

  ;; $inc costs its entry 1 + local.get, i32.const, i32.add = 4. The loop body: local.get 1,
  ;; call 5, local.set 1, local.get 1, i32.const 1, i32.lt_u 1, br_if 2 = 12, + 4 in $inc.
  ;; 1 + 100 × 16 + 5 + 500 = 2,106.
  (func $inc (param i32) (result i32) (i32.add (local.get 0) (i32.const 1)))
  (func (export "canister_update calls") (local $i i32)
    (loop $l
      (local.set $i (call $inc (local.get $i)))
      (br_if $l (i32.lt_u (local.get $i) (i32.const 100))))
    (call $reply))

  ;; memory.copy weighs 100 and pays its length: 1 + 3 consts + 100 + call 5 = 109,
  ;; + 50,000 bytes + 500 = 50,609.
  (func (export "canister_update bulk_copy")
    (memory.copy (i32.const 0) (i32.const 1000) (i32.const 50000))
    (call $reply))

  ;; Echo the argument: code 1 + call 5, local.set 1, 3 pushes, call 5, 2 pushes, call 5,
  ;; call 5 = 27; msg_arg_data_size 500, msg_arg_data_copy 500 + n, msg_reply_data_append
  ;; 500 + 50 n, msg_reply 500. With n = 1,000: 27 + 2,000 + 51,000 = 53,027.
  (func (export "canister_update echo") (local $n i32)
    (local.set $n (call $arg_size))
    (call $arg_copy (i32.const 0) (i32.const 0) (local.get $n))
    (call $append (i32.const 0) (local.get $n))
    (call $reply))

  ;; SIMD: i32x4.add, i8x16.swizzle, i32x4.dot_i16x8_s weigh 1, f32x4.mul 2. Per turn:
  ;; (local.get, v128.const, i32x4.add, local.set) 4 + (get, get, f32x4.mul, set) 5 +
  ;; swizzle line 4 + dot line 4 + counter 4 + test 3 + br_if 2 = 26.
  ;; 1 + 1,000 × 26 + 5 + 500 = 26,506.
  (func (export "canister_update simd_loop") (local $i i32) (local $v v128)
    (loop $l
      (local.set $v (i32x4.add (local.get $v) (v128.const i32x4 1 2 3 4)))
      (local.set $v (f32x4.mul (local.get $v) (local.get $v)))
      (local.set $v (i8x16.swizzle (local.get $v) (local.get $v)))
      (local.set $v (i32x4.dot_i16x8_s (local.get $v) (local.get $v)))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br_if $l (i32.lt_u (local.get $i) (i32.const 1000))))
    (call $reply))

  ;; Runs until the counter is spent.
  (func (export "canister_update forever")
    (loop $l (br $l)))
)"#;

fn installed() -> (LocalIc, Principal) {
    let mut ic = LocalIc::new();
    let canister = ic.create_canister();
    ic.install_canister(canister, wat::parse_str(MODULE).unwrap(), vec![], None)
        .unwrap();
    (ic, canister)
}

fn instructions_of(method: &str, arg: Vec<u8>) -> u64 {
    let (mut ic, canister) = installed();
    ic.update_call(canister, ALICE, method, arg).unwrap();
    ic.last_call_instructions().unwrap()
}

#[test]
fn integer_loop() {
    assert_eq!(instructions_of("int_loop", vec![]), 9_506);
}

#[test]
fn performance_counter_sees_the_ic_count() {
    let (mut ic, canister) = installed();
    let reply = ic.update_call(canister, ALICE, "counted", vec![]).unwrap();
    assert_eq!(u64::from_le_bytes(reply.try_into().unwrap()), 9_221);
    assert_eq!(ic.last_call_instructions(), Some(10_621));
}

#[test]
fn float_loop_weighs_floats_double() {
    assert_eq!(instructions_of("float_loop", vec![]), 17_506);
}

#[test]
fn calls_cost_five_and_the_callee_its_own_entry() {
    assert_eq!(instructions_of("calls", vec![]), 2_106);
}

#[test]
fn bulk_copy_pays_its_length() {
    assert_eq!(instructions_of("bulk_copy", vec![]), 50_609);
}

#[test]
fn system_api_payloads_pay_per_byte() {
    assert_eq!(instructions_of("echo", vec![7; 1_000]), 53_027);
    // 51 more per argument byte: 1 to copy it in, 50 to reply with it.
    assert_eq!(instructions_of("echo", vec![7; 1_001]), 53_078);
}

#[test]
fn simd_runs_and_is_counted_with_its_ic_weights() {
    assert_eq!(instructions_of("simd_loop", vec![]), 26_506);
}

#[test]
fn the_limit_is_the_ics_count() {
    let (mut ic, canister) = installed();
    ic.set_instruction_limits(InstructionLimits {
        update: 10_000,
        ..InstructionLimits::IC
    });
    // 9,506 fit under 10,000...
    ic.update_call(canister, ALICE, "int_loop", vec![]).unwrap();
    // ...17,506 do not: the float loop stops at its first check past the limit.
    let err = ic
        .update_call(canister, ALICE, "float_loop", vec![])
        .unwrap_err();
    assert_eq!(err.reject_code, RejectCode::CanisterError);
    assert_eq!(
        err.error_code.as_deref(),
        Some(error_codes::CANISTER_INSTRUCTION_LIMIT_EXCEEDED)
    );
    assert!(err.reject_message.contains("10000 instructions"), "{err}");
    let err = ic
        .update_call(canister, ALICE, "forever", vec![])
        .unwrap_err();
    assert_eq!(
        err.error_code.as_deref(),
        Some(error_codes::CANISTER_INSTRUCTION_LIMIT_EXCEEDED)
    );
}

#[test]
fn each_canister_counts_what_its_code_executed() {
    let (mut ic, canister) = installed();
    let before = ic.canister_instructions(canister).expect("installed");
    ic.update_call(canister, Principal::anonymous(), "int_loop", vec![])
        .unwrap();
    assert_eq!(ic.canister_instructions(canister), Some(before + 9_506));
    ic.update_call(canister, Principal::anonymous(), "float_loop", vec![])
        .unwrap();
    assert_eq!(
        ic.canister_instructions(canister),
        Some(before + 9_506 + 17_506)
    );
    assert_eq!(
        ic.canister_instructions(Principal::management_canister()),
        None
    );
}
