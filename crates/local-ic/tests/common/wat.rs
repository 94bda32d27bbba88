//! Shared helpers for tests on hand-written WAT canisters.

use candid::Principal;
use local_ic::LocalIc;

/// A canister whose state is a mutable global (not in linear memory): `inc` adds 1,
/// `inc_then_trap` adds 100 and traps, `get` answers the counter (4 bytes, little-endian).
pub const GLOBAL_COUNTER: &str = r#"(module
  (import "ic0" "msg_reply" (func $reply))
  (import "ic0" "msg_reply_data_append" (func $append (param i32 i32)))
  (memory 1)
  (global $counter (mut i32) (i32.const 0))
  (func (export "canister_update inc")
    (global.set $counter (i32.add (global.get $counter) (i32.const 1)))
    (call $reply))
  (func (export "canister_update inc_then_trap")
    (global.set $counter (i32.add (global.get $counter) (i32.const 100)))
    unreachable)
  (func (export "canister_query get")
    (i32.store (i32.const 0) (global.get $counter))
    (call $append (i32.const 0) (i32.const 4))
    (call $reply)))"#;

/// A canister whose `echo` replies with nothing.
pub const ECHO: &str = r#"(module (import "ic0" "msg_reply" (func $reply))
    (func (export "canister_update echo") (call $reply)))"#;

/// A network with `wat` installed on a new canister.
pub fn installed(wat: &str) -> (LocalIc, Principal) {
    let mut ic = LocalIc::new();
    let canister = install(&mut ic, wat);
    (ic, canister)
}

/// `wat` installed on a new canister of `ic`.
pub fn install(ic: &mut LocalIc, wat: &str) -> Principal {
    let canister = ic.create_canister();
    ic.install_canister(canister, wat::parse_str(wat).unwrap(), vec![], None)
        .unwrap();
    canister
}

/// `principal`'s bytes as a WAT data string, and their length.
pub fn wat_bytes(principal: Principal) -> (String, usize) {
    let bytes = principal.as_slice();
    (
        bytes.iter().map(|b| format!("\\{b:02x}")).collect(),
        bytes.len(),
    )
}

/// The counter of a [`GLOBAL_COUNTER`] canister.
pub fn counter(ic: &mut LocalIc, canister: Principal) -> i32 {
    let bytes = ic
        .query_call(canister, Principal::anonymous(), "get", vec![])
        .unwrap();
    i32::from_le_bytes(bytes.try_into().unwrap())
}
