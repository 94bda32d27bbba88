//! Committing and rolling back copy only the heap pages a message wrote (the write barrier):
//! every way a message can write the heap — stores of every width, a store straddling two
//! pages, bulk fills and copies, System API calls writing into the heap, growth — must be seen,
//! or a trap would leave its writes behind and a commit would lose them. What is committed is
//! checked on a network rebuilt from the saved state, whose instances load the committed heap
//! whole.

use candid::Principal;
use local_ic::LocalIc;

const ALICE: Principal = Principal::from_slice(&[7]);

const MODULE: &str = r#"(module
  (import "ic0" "msg_reply" (func $reply))
  (import "ic0" "msg_reply_data_append" (func $append (param i32 i32)))
  (import "ic0" "msg_arg_data_size" (func $arg_size (result i32)))
  (import "ic0" "msg_arg_data_copy" (func $arg_copy (param i32 i32 i32)))
  (memory 2)

  ;; The 8 bytes at the address given as the argument's first 4 bytes (read into 65,000).
  (func (export "canister_query peek")
    (call $arg_copy (i32.const 65000) (i32.const 0) (i32.const 4))
    (call $append (i32.load (i32.const 65000)) (i32.const 8))
    (call $reply))

  ;; An i64 across the boundary of pages 0 and 1, committed.
  (func (export "canister_update straddle")
    (i64.store (i32.const 4093) (i64.const -1))
    (call $reply))
  ;; The same across pages 1 and 2, then a trap.
  (func (export "canister_update straddle_trap")
    (i64.store (i32.const 8189) (i64.const -1))
    unreachable)
  ;; A v128 and a byte store in page 3, committed.
  (func (export "canister_update vector")
    (v128.store (i32.const 12288) (v128.const i64x2 -1 -1))
    (i32.store8 (i32.const 16383) (i32.const 7))
    (call $reply))
  ;; A fill over pages 5 and 6 and a copy into page 8, then a trap.
  (func (export "canister_update bulk_trap")
    (memory.fill (i32.const 20480) (i32.const 171) (i32.const 8192))
    (memory.copy (i32.const 32768) (i32.const 20480) (i32.const 16))
    unreachable)
  ;; A fill over page 9, committed.
  (func (export "canister_update bulk")
    (memory.fill (i32.const 36864) (i32.const 171) (i32.const 4096))
    (call $reply))
  ;; The host writes the argument into page 10, then a trap.
  (func (export "canister_update host_write_trap")
    (call $arg_copy (i32.const 40960) (i32.const 0) (call $arg_size))
    unreachable)
  ;; A query that writes page 11: nothing of it may remain.
  (func (export "canister_query scribble")
    (i64.store (i32.const 45056) (i64.const -1))
    (call $reply))
  ;; Grows the heap by a page and writes its first byte, committed.
  (func (export "canister_update grow")
    (drop (memory.grow (i32.const 1)))
    (i32.store8 (i32.const 131072) (i32.const 9))
    (call $reply))
)"#;

fn peek(ic: &mut LocalIc, canister: Principal, address: u32) -> [u8; 8] {
    let bytes = ic
        .query_call(canister, ALICE, "peek", address.to_le_bytes().to_vec())
        .unwrap();
    bytes.try_into().unwrap()
}

/// The same network rebuilt from its saved state: instances load the committed heaps whole.
fn reloaded(ic: &LocalIc) -> LocalIc {
    LocalIc::from_state(ic.state().clone())
}

#[test]
fn commits_and_rollbacks_follow_every_kind_of_write() {
    let mut ic = LocalIc::new();
    let canister = ic.create_canister();
    ic.install_canister(canister, wat::parse_str(MODULE).unwrap(), vec![], None)
        .unwrap();

    ic.update_call(canister, ALICE, "straddle", vec![]).unwrap();
    ic.update_call(canister, ALICE, "vector", vec![]).unwrap();
    ic.update_call(canister, ALICE, "bulk", vec![]).unwrap();
    for method in ["straddle_trap", "bulk_trap"] {
        ic.update_call(canister, ALICE, method, vec![]).unwrap_err();
    }
    ic.update_call(canister, ALICE, "host_write_trap", vec![0xEE; 100])
        .unwrap_err();
    ic.query_call(canister, ALICE, "scribble", vec![]).unwrap();
    ic.update_call(canister, ALICE, "grow", vec![]).unwrap();

    let mut rebuilt = reloaded(&ic);
    for (label, network) in [("live", &mut ic), ("reloaded", &mut rebuilt)] {
        let at = |network: &mut LocalIc, address| peek(network, canister, address);
        assert_eq!(
            at(network, 4093),
            [0xFF; 8],
            "{label}: committed straddling store"
        );
        // The trapped straddling store left page 2 as it was; page 1's part is the committed
        // store's tail (4093 + 8 = 4101), the rest zero.
        assert_eq!(
            at(network, 8189),
            [0; 8],
            "{label}: trapped straddling store"
        );
        assert_eq!(
            at(network, 12288),
            [0xFF; 8],
            "{label}: committed v128 store"
        );
        assert_eq!(at(network, 16376)[7], 7, "{label}: committed byte store");
        assert_eq!(at(network, 20480), [0; 8], "{label}: trapped fill");
        assert_eq!(
            at(network, 28664),
            [0; 8],
            "{label}: trapped fill's last page"
        );
        assert_eq!(at(network, 32768), [0; 8], "{label}: trapped copy");
        assert_eq!(at(network, 36864), [0xAB; 8], "{label}: committed fill");
        assert_eq!(at(network, 40960), [0; 8], "{label}: trapped host write");
        assert_eq!(at(network, 45056), [0; 8], "{label}: query write");
        assert_eq!(at(network, 131072)[0], 9, "{label}: grown page");
    }
}
