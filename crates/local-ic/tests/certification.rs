//! The root key and data certificates a canister sees: the gateway's key
//! (`RootKey::from_seed(random_seed)`) and real certificates that verify under it.

mod common;

use candid::Principal;
use common::wat::install;
use ic_certificate::{Lookup, RootKey, leb128, verify_certificate};
use local_ic::LocalIc;

/// `set` certifies its argument; the queries `root_key` and `certificate` answer the bytes of
/// `ic0.root_key_copy` and `ic0.data_certificate_copy` (nothing when no certificate is present).
const CERTIFYING: &str = r#"(module
  (import "ic0" "msg_reply" (func $reply))
  (import "ic0" "msg_reply_data_append" (func $append (param i32 i32)))
  (import "ic0" "msg_arg_data_size" (func $arg_size (result i32)))
  (import "ic0" "msg_arg_data_copy" (func $arg_copy (param i32 i32 i32)))
  (import "ic0" "certified_data_set" (func $certify (param i32 i32)))
  (import "ic0" "root_key_size" (func $key_size (result i32)))
  (import "ic0" "root_key_copy" (func $key_copy (param i32 i32 i32)))
  (import "ic0" "data_certificate_present" (func $present (result i32)))
  (import "ic0" "data_certificate_size" (func $cert_size (result i32)))
  (import "ic0" "data_certificate_copy" (func $cert_copy (param i32 i32 i32)))
  (memory 1)
  (func (export "canister_update set") (local $n i32)
    (local.set $n (call $arg_size))
    (call $arg_copy (i32.const 0) (i32.const 0) (local.get $n))
    (call $certify (i32.const 0) (local.get $n))
    (call $reply))
  (func (export "canister_query root_key") (local $n i32)
    (local.set $n (call $key_size))
    (call $key_copy (i32.const 0) (i32.const 0) (local.get $n))
    (call $append (i32.const 0) (local.get $n))
    (call $reply))
  (func (export "canister_query certificate") (local $n i32)
    (if (call $present)
      (then
        (local.set $n (call $cert_size))
        (call $cert_copy (i32.const 0) (i32.const 0) (local.get $n))
        (call $append (i32.const 0) (local.get $n))))
    (call $reply)))"#;

fn query(ic: &mut LocalIc, canister: Principal, method: &str) -> Vec<u8> {
    ic.query_call(canister, Principal::anonymous(), method, vec![])
        .unwrap()
}

#[test]
fn a_canister_sees_the_root_key_of_its_networks_seed() {
    let seed = [42; 32];
    let mut ic = LocalIc::with_seed(seed);
    let canister = install(&mut ic, CERTIFYING);
    let key = query(&mut ic, canister, "root_key");
    assert_eq!(key, RootKey::from_seed(seed).public_key_der());
    assert_eq!(key.len(), 133);

    let mut other = LocalIc::with_seed([43; 32]);
    let canister = install(&mut other, CERTIFYING);
    assert_ne!(query(&mut other, canister, "root_key"), key);
}

#[test]
fn a_query_certificate_verifies_and_holds_certified_data_and_time() {
    let mut ic = LocalIc::with_seed([7; 32]);
    let canister = install(&mut ic, CERTIFYING);
    ic.update_call(
        canister,
        Principal::anonymous(),
        "set",
        b"certified bytes".to_vec(),
    )
    .unwrap();
    let root_key = query(&mut ic, canister, "root_key");
    let cert = query(&mut ic, canister, "certificate");
    let tree = verify_certificate(&cert, &root_key).expect("the certificate verifies");
    assert_eq!(
        tree.lookup(&[
            b"canister".as_slice(),
            canister.as_slice(),
            b"certified_data"
        ]),
        Lookup::Found(b"certified bytes")
    );
    assert_eq!(
        tree.lookup(&[b"time".as_slice()]),
        Lookup::Found(&leb128(ic.state().time_nanos))
    );
    // Another network's key does not verify it.
    assert!(verify_certificate(&cert, &RootKey::from_seed([8; 32]).public_key_der()).is_err());
    // Replicated executions see no certificate.
    let in_update = ic
        .update_call(canister, Principal::anonymous(), "certificate", vec![])
        .unwrap();
    assert!(in_update.is_empty());
}
