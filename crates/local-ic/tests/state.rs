//! Message atomicity, queries, upgrades, timers, limits, logs and certified data, through the
//! `fixture_state` canister.

mod common;

use std::time::Duration;

use candid::{Encode, Principal};
use local_ic::management_types::CanisterInstallMode;
use local_ic::{InstructionLimits, LocalIc, RejectCode, error_codes};

const ALICE: Principal = Principal::from_slice(&[1, 2, 3, 4]);

fn setup(wasm: Vec<u8>, initial: u64) -> (LocalIc, Principal) {
    let mut ic = LocalIc::new();
    let canister = ic.create_canister();
    ic.install_canister(canister, wasm, Encode!(&initial).unwrap(), None)
        .expect("install fixture_state");
    (ic, canister)
}

fn counters(ic: &mut LocalIc, canister: Principal) -> (u64, u64) {
    ic.query_tuple(canister, ALICE, "counters", ()).unwrap()
}

#[test]
fn init_arg_and_updates_persist() {
    let wasm = fixture_or_skip!("fixture_state");
    let (mut ic, canister) = setup(wasm, 10);
    assert_eq!(
        ic.query::<_, u64>(canister, ALICE, "init_arg", ()).unwrap(),
        10
    );
    // Installing counts as one change of the canister, each update execution as another.
    let version =
        |ic: &mut LocalIc| -> u64 { ic.query(canister, ALICE, "canister_version", ()).unwrap() };
    assert_eq!(version(&mut ic), 1);
    let after: (u64, u64) = ic.update_tuple(canister, ALICE, "increment", ()).unwrap();
    assert_eq!(after, (11, 1));
    assert_eq!(counters(&mut ic, canister), (11, 1));
    assert_eq!(version(&mut ic), 2);
    assert_eq!(
        ic.query::<_, Principal>(canister, ALICE, "whoami", ())
            .unwrap(),
        ALICE
    );
}

#[test]
fn trap_rolls_back_heap_stable_memory_and_certified_data_but_keeps_logs() {
    let wasm = fixture_or_skip!("fixture_state");
    let (mut ic, canister) = setup(wasm, 0);
    ic.update_tuple::<_, (u64, u64)>(canister, ALICE, "increment", ())
        .unwrap();
    let pages_before: u64 = ic.query(canister, ALICE, "stable_pages", ()).unwrap();

    let err = ic
        .update_call(
            canister,
            ALICE,
            "increment_then_trap",
            Encode!(&5u64).unwrap(),
        )
        .unwrap_err();
    assert_eq!(err.reject_code, RejectCode::CanisterError);
    assert_eq!(
        err.error_code.as_deref(),
        Some(error_codes::CANISTER_CALLED_TRAP)
    );
    assert!(
        err.reject_message
            .contains("deliberate trap after mutation"),
        "{err}"
    );

    assert_eq!(counters(&mut ic, canister), (1, 1));
    assert_eq!(
        ic.query::<_, u64>(canister, ALICE, "stable_pages", ())
            .unwrap(),
        pages_before
    );
    let cert: Option<Vec<u8>> = ic.query(canister, ALICE, "data_certificate", ()).unwrap();
    let needle = b"from a trapped message";
    assert!(!cert.unwrap().windows(needle.len()).any(|w| w == needle));
    // The canister keeps working after the trap (stack pointer and heap restored).
    let after: (u64, u64) = ic.update_tuple(canister, ALICE, "increment", ()).unwrap();
    assert_eq!(after, (2, 2));

    let logs = ic
        .fetch_canister_logs(canister, Principal::anonymous())
        .unwrap();
    let text: Vec<String> = logs
        .iter()
        .map(|r| String::from_utf8_lossy(&r.content).into_owned())
        .collect();
    assert!(text.iter().any(|l| l == "about to trap"), "{text:?}");
    assert!(
        text.iter()
            .any(|l| l.starts_with("[TRAP]") && l.contains("deliberate trap")),
        "{text:?}"
    );
    assert!(
        ic.fetch_canister_logs(canister, ALICE).is_err(),
        "logs are for controllers only"
    );
}

#[test]
fn queries_never_persist() {
    let wasm = fixture_or_skip!("fixture_state");
    let (mut ic, canister) = setup(wasm, 3);
    let seen: (u64, u64) = ic
        .query_tuple(canister, ALICE, "increment_in_query", ())
        .unwrap();
    assert_eq!(seen, (4, 1));
    assert_eq!(counters(&mut ic, canister), (3, 0));
    let err = ic
        .query_call(canister, ALICE, "increment", Encode!().unwrap())
        .unwrap_err();
    assert_eq!(
        err.error_code.as_deref(),
        Some(error_codes::CANISTER_METHOD_NOT_FOUND)
    );
}

#[test]
fn upgrade_keeps_stable_memory_and_resets_heap() {
    let wasm = fixture_or_skip!("fixture_state");
    let (mut ic, canister) = setup(wasm.clone(), 0);
    for _ in 0..3 {
        ic.update_tuple::<_, (u64, u64)>(canister, ALICE, "increment", ())
            .unwrap();
    }
    let version_before: u64 = ic.query(canister, ALICE, "canister_version", ()).unwrap();
    ic.upgrade_canister(canister, wasm.clone(), Encode!(&42u64).unwrap(), None)
        .unwrap();
    assert_eq!(counters(&mut ic, canister), (0, 3));
    assert_eq!(
        ic.query::<_, u64>(canister, ALICE, "init_arg", ()).unwrap(),
        42
    );
    assert_eq!(
        ic.query::<_, u64>(canister, ALICE, "upgrades", ()).unwrap(),
        1
    );
    assert!(
        ic.query::<_, u64>(canister, ALICE, "canister_version", ())
            .unwrap()
            > version_before
    );
    let logs = ic
        .fetch_canister_logs(canister, Principal::anonymous())
        .unwrap();
    assert!(logs.iter().any(|r| r.content == b"pre_upgrade ran"));

    // Reinstall wipes stable memory too.
    ic.reinstall_canister(canister, wasm, Encode!(&5u64).unwrap(), None)
        .unwrap();
    assert_eq!(counters(&mut ic, canister), (5, 0));
}

#[test]
fn timers_fire_on_tick_and_are_rearmed_after_upgrade() {
    let wasm = fixture_or_skip!("fixture_state");
    let (mut ic, canister) = setup(wasm.clone(), 0);
    ic.update::<_, ()>(canister, ALICE, "start_ticker", (10u64,))
        .unwrap();
    for _ in 0..3 {
        ic.tick();
    }
    assert_eq!(
        ic.query::<_, u64>(canister, ALICE, "ticks", ()).unwrap(),
        0,
        "not due yet"
    );
    ic.advance_time(Duration::from_secs(10));
    for _ in 0..3 {
        ic.tick();
    }
    assert_eq!(ic.query::<_, u64>(canister, ALICE, "ticks", ()).unwrap(), 1);

    ic.upgrade_canister(canister, wasm, Encode!(&0u64).unwrap(), None)
        .unwrap();
    ic.advance_time(Duration::from_secs(10));
    for _ in 0..3 {
        ic.tick();
    }
    assert_eq!(ic.query::<_, u64>(canister, ALICE, "ticks", ()).unwrap(), 2);
}

#[test]
fn instruction_limit_traps_the_message_only() {
    let wasm = fixture_or_skip!("fixture_state");
    let (mut ic, canister) = setup(wasm, 0);
    let used: u64 = ic
        .update(canister, ALICE, "burn_update", (1_000u64,))
        .unwrap();
    assert!(used > 1_000, "performance_counter counts the loop: {used}");
    let measured = ic.last_call_instructions().unwrap();
    assert!(measured >= used, "{measured} < {used}");

    ic.set_instruction_limits(InstructionLimits {
        update: 20_000_000,
        query: 10_000_000,
        ..InstructionLimits::IC
    });
    let err = ic
        .update_call(
            canister,
            ALICE,
            "burn_update",
            Encode!(&10_000_000u64).unwrap(),
        )
        .unwrap_err();
    assert_eq!(
        err.error_code.as_deref(),
        Some(error_codes::CANISTER_INSTRUCTION_LIMIT_EXCEEDED),
        "{err}"
    );
    assert_eq!(
        counters(&mut ic, canister),
        (0, 1),
        "the trapped burn did not count"
    );
    let err = ic
        .query_call(
            canister,
            ALICE,
            "burn_query",
            Encode!(&10_000_000u64).unwrap(),
        )
        .unwrap_err();
    assert!(
        err.reject_message.contains("10000000 instructions"),
        "{err}"
    );
}

#[test]
fn stable_memory_limit_and_bounds() {
    let wasm = fixture_or_skip!("fixture_state");
    let (mut ic, canister) = setup(wasm, 0);
    let grown: u64 = ic
        .update(canister, ALICE, "grow_stable", (u64::MAX / 2,))
        .unwrap();
    assert_eq!(grown, u64::MAX, "growth beyond 500 GiB fails");
    let pages: u64 = ic.query(canister, ALICE, "stable_pages", ()).unwrap();
    let err = ic
        .update_call(
            canister,
            ALICE,
            "write_stable",
            Encode!(&(pages * 65536), &1u8, &1u64).unwrap(),
        )
        .unwrap_err();
    assert!(
        err.reject_message
            .contains("Stable memory access out of bounds"),
        "{err}"
    );
}

#[test]
fn certified_data_is_in_the_query_certificate() {
    let wasm = fixture_or_skip!("fixture_state");
    let (mut ic, canister) = setup(wasm, 0);
    ic.update::<_, ()>(
        canister,
        ALICE,
        "set_certified_data",
        (b"certified!".to_vec(),),
    )
    .unwrap();
    let cert: Option<Vec<u8>> = ic.query(canister, ALICE, "data_certificate", ()).unwrap();
    let cert = cert.expect("queries see a certificate");
    // A real certificate, signed with the root key the gateway derives from the network's seed.
    let root_key = ic_certificate::RootKey::from_seed(ic.state().random_seed).public_key_der();
    let tree = ic_certificate::verify_certificate(&cert, &root_key).expect("it verifies");
    assert_eq!(
        tree.lookup(&[
            b"canister".as_slice(),
            canister.as_slice(),
            b"certified_data"
        ]),
        ic_certificate::Lookup::Found(b"certified!")
    );
    assert_eq!(
        tree.lookup(&[b"time".as_slice()]),
        ic_certificate::Lookup::Found(&ic_certificate::leb128(ic.state().time_nanos))
    );
    let in_update: Option<Vec<u8>> = ic
        .update(canister, ALICE, "data_certificate_in_update", ())
        .unwrap();
    assert_eq!(in_update, None);
}

#[test]
fn inspect_message_filters_ingress() {
    let wasm = fixture_or_skip!("fixture_state");
    let (mut ic, canister) = setup(wasm, 0);
    let err = ic
        .update_call(canister, ALICE, "blocked_by_inspect", Encode!().unwrap())
        .unwrap_err();
    assert_eq!(err.reject_code, RejectCode::CanisterReject);
}

#[test]
fn only_controllers_manage_a_canister() {
    let wasm = fixture_or_skip!("fixture_state");
    let mut ic = LocalIc::new();
    let canister = ic.create_canister_with_settings(Some(ALICE), None);
    let err = ic
        .install_canister(canister, wasm.clone(), Encode!(&0u64).unwrap(), None)
        .unwrap_err();
    assert_eq!(
        err.error_code.as_deref(),
        Some(error_codes::CANISTER_INVALID_CONTROLLER)
    );
    assert!(ic.canister_status(canister, None).is_err());
    ic.install_canister(canister, wasm, Encode!(&0u64).unwrap(), Some(ALICE))
        .unwrap();
    let status = ic.canister_status(canister, Some(ALICE)).unwrap();
    assert_eq!(status.settings.controllers, vec![ALICE]);
    assert!(status.module_hash.is_some());
    assert!(
        ic.query::<_, bool>(canister, ALICE, "is_controller", (ALICE,))
            .unwrap()
    );
    assert!(
        !ic.query::<_, bool>(canister, ALICE, "is_controller", (Principal::anonymous(),))
            .unwrap()
    );
    assert!(ic.stop_canister(canister, None).is_err());
}

#[test]
fn chunked_install() {
    let wasm = fixture_or_skip!("fixture_state");
    let mut ic = LocalIc::new();
    let canister = ic.create_canister();
    let mut hashes = Vec::new();
    for chunk in wasm.chunks(300 * 1024) {
        hashes.push(ic.upload_chunk(canister, None, chunk.to_vec()).unwrap());
    }
    assert_eq!(
        ic.stored_chunks(canister, None).unwrap().len(),
        hashes.len()
    );
    let wasm_hash = {
        use sha2::Digest;
        sha2::Sha256::digest(&wasm).to_vec()
    };
    let err = ic
        .install_chunked_canister(
            canister,
            None,
            CanisterInstallMode::Install,
            canister,
            hashes.clone(),
            vec![0; 32],
            Encode!(&1u64).unwrap(),
        )
        .unwrap_err();
    assert!(err.reject_message.contains("hash mismatch"), "{err}");
    ic.install_chunked_canister(
        canister,
        None,
        CanisterInstallMode::Install,
        canister,
        hashes,
        wasm_hash,
        Encode!(&9u64).unwrap(),
    )
    .unwrap();
    assert_eq!(
        ic.query::<_, u64>(canister, ALICE, "init_arg", ()).unwrap(),
        9
    );
    ic.clear_chunk_store(canister, None).unwrap();
    assert!(ic.stored_chunks(canister, None).unwrap().is_empty());
}

#[test]
fn stop_start_delete() {
    let wasm = fixture_or_skip!("fixture_state");
    let (mut ic, canister) = setup(wasm, 0);
    ic.stop_canister(canister, None).unwrap();
    let err = ic
        .update_call(canister, ALICE, "increment", Encode!().unwrap())
        .unwrap_err();
    assert_eq!(
        err.error_code.as_deref(),
        Some(error_codes::CANISTER_STOPPED)
    );
    ic.start_canister(canister, None).unwrap();
    ic.update_tuple::<_, (u64, u64)>(canister, ALICE, "increment", ())
        .unwrap();
    assert!(
        ic.delete_canister(canister, None).is_err(),
        "running canisters cannot be deleted"
    );
    ic.stop_canister(canister, None).unwrap();
    ic.stop_canister(canister, None)
        .expect("stopping a stopped canister succeeds at once");
    ic.delete_canister(canister, None).unwrap();
    assert!(!ic.canister_exists(canister));
}

#[test]
fn saved_state_resumes() {
    let wasm = fixture_or_skip!("fixture_state");
    let (mut ic, canister) = setup(wasm, 0);
    ic.update_tuple::<_, (u64, u64)>(canister, ALICE, "increment", ())
        .unwrap();
    // Through bytes, as a save to disk would go.
    let mut bytes = Vec::new();
    ciborium::into_writer(ic.state(), &mut bytes).expect("the network state serializes");
    let saved: local_ic::NetworkState =
        ciborium::from_reader(bytes.as_slice()).expect("the network state deserializes");
    let mut resumed = LocalIc::from_state(saved);
    assert_eq!(counters(&mut resumed, canister), (1, 1));
    let after: (u64, u64) = resumed
        .update_tuple(canister, ALICE, "increment", ())
        .unwrap();
    assert_eq!(after, (2, 2));
}
