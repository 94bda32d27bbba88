//! Inter-canister calls through the `fixture_calls` canister: interleaving at awaits,
//! callback traps, reject codes, best-effort deadlines, cycles and the management canister.

mod common;

use std::time::{Duration, UNIX_EPOCH};

use candid::{CandidType, Deserialize, Encode, Principal};
use local_ic::{LocalIc, RejectCode};

const ALICE: Principal = Principal::from_slice(&[9, 9]);

#[derive(CandidType, Deserialize, Debug, PartialEq, Eq)]
enum CallOutcome {
    Replied(Vec<u8>),
    Rejected { code: u32, message: String },
    NotPerformed(String),
}

fn setup(wasm: &[u8], count: usize) -> (LocalIc, Vec<Principal>) {
    let mut ic = LocalIc::new();
    let ids = (0..count)
        .map(|_| {
            let id = ic.create_canister();
            ic.install_canister(id, wasm.to_vec(), Encode!().unwrap(), None)
                .unwrap();
            id
        })
        .collect();
    (ic, ids)
}

fn forward(
    ic: &mut LocalIc,
    from: Principal,
    to: Principal,
    method: &str,
    arg: Vec<u8>,
) -> CallOutcome {
    ic.update(from, ALICE, "forward", (to, method, arg, None::<u32>))
        .unwrap()
}

#[test]
fn messages_interleave_at_awaits() {
    let wasm = fixture_or_skip!("fixture_calls");
    let (mut ic, ids) = setup(&wasm, 1);
    let a = ic
        .submit_call(ids[0], ALICE, "tagged_roundtrip", Encode!(&"a").unwrap())
        .unwrap();
    let b = ic
        .submit_call(ids[0], ALICE, "tagged_roundtrip", Encode!(&"b").unwrap())
        .unwrap();
    ic.await_call(a).unwrap();
    ic.await_call(b).unwrap();
    let events: Vec<String> = ic.query(ids[0], ALICE, "events", ()).unwrap();
    assert_eq!(events, ["start a", "start b", "end a true", "end b true"]);
}

#[test]
fn trap_in_callback_rolls_back_only_the_callback() {
    let wasm = fixture_or_skip!("fixture_calls");
    let (mut ic, ids) = setup(&wasm, 1);
    let err = ic
        .update_call(ids[0], ALICE, "increment_await_trap", Encode!().unwrap())
        .unwrap_err();
    assert_eq!(err.reject_code, RejectCode::CanisterError);
    assert!(err.reject_message.contains("trap in callback"), "{err}");
    assert_eq!(ic.query::<_, u64>(ids[0], ALICE, "counter", ()).unwrap(), 1);
}

#[test]
fn reject_codes_reach_the_caller() {
    let wasm = fixture_or_skip!("fixture_calls");
    let (mut ic, ids) = setup(&wasm, 2);
    let (a, b) = (ids[0], ids[1]);
    let code = |o: CallOutcome| match o {
        CallOutcome::Rejected { code, .. } => code,
        other => panic!("expected a reject, got {other:?}"),
    };
    assert_eq!(
        code(forward(
            &mut ic,
            a,
            b,
            "reject_always",
            Encode!(&"no").unwrap()
        )),
        4
    );
    assert_eq!(
        code(forward(
            &mut ic,
            a,
            b,
            "trap_always",
            Encode!(&"boom").unwrap()
        )),
        5
    );
    assert_eq!(
        code(forward(&mut ic, a, b, "no_such_method", Encode!().unwrap())),
        5
    );
    let nowhere = local_ic::canister_id_from_index(999);
    assert_eq!(
        code(forward(&mut ic, a, nowhere, "noop", Encode!().unwrap())),
        3
    );
    assert!(matches!(
        forward(&mut ic, a, b, "noop", Encode!().unwrap()),
        CallOutcome::Replied(_)
    ));
}

#[test]
fn best_effort_call_times_out_with_sys_unknown() {
    let wasm = fixture_or_skip!("fixture_calls");
    let (mut ic, ids) = setup(&wasm, 2);
    let now = ic.get_time().duration_since(UNIX_EPOCH).unwrap().as_nanos() as u64;
    let until = now + 3_600 * 1_000_000_000;
    let arg = Encode!(
        &ids[1],
        &"wait_until",
        &Encode!(&until).unwrap(),
        &Some(10u32)
    )
    .unwrap();
    let call = ic.submit_call(ids[0], ALICE, "forward", arg).unwrap();
    for _ in 0..5 {
        ic.tick();
    }
    assert!(ic.ingress_status(call).is_none(), "still waiting");
    ic.advance_time(Duration::from_secs(11));
    let reply = ic.await_call(call).unwrap();
    let outcome: CallOutcome = candid::decode_one(&reply).unwrap();
    match outcome {
        CallOutcome::Rejected { code, .. } => assert_eq!(code, RejectCode::SysUnknown.as_u32()),
        other => panic!("expected SYS_UNKNOWN, got {other:?}"),
    }
}

#[test]
fn cycles_are_attached_accepted_and_refunded() {
    let wasm = fixture_or_skip!("fixture_calls");
    let (mut ic, ids) = setup(&wasm, 2);
    let (a, b) = (ids[0], ids[1]);
    let (a0, b0) = (ic.cycle_balance(a), ic.cycle_balance(b));
    let (accepted, refunded): (u128, u128) = ic
        .update_tuple(a, ALICE, "send_cycles", (b, 1_000_000u128, 400_000u128))
        .unwrap();
    assert_eq!((accepted, refunded), (400_000, 600_000));
    assert_eq!(ic.cycle_balance(b), b0 + 400_000);
    let fee = local_ic::Fees::APPLICATION_SUBNET.call(
        "accept_cycles".len() as u64,
        Encode!(&400_000u128).unwrap().len() as u64,
    );
    assert_eq!(ic.cycle_balance(a), a0 - 400_000 - fee);
}

#[test]
fn canister_creates_and_installs_a_canister() {
    let calls = fixture_or_skip!("fixture_calls");
    let state = fixture_or_skip!("fixture_state");
    let (mut ic, ids) = setup(&calls, 1);
    let factory = ids[0];
    let created: Result<Principal, String> = ic
        .update(
            factory,
            ALICE,
            "create_and_install",
            (
                state,
                Encode!(&77u64).unwrap(),
                1_000_000_000_000u128,
                ALICE,
            ),
        )
        .unwrap();
    let child = created.expect("created and installed");
    assert_eq!(
        ic.query::<_, u64>(child, ALICE, "init_arg", ()).unwrap(),
        77
    );
    let controllers = ic.get_controllers(child);
    assert!(controllers.contains(&factory) && controllers.contains(&ALICE));
    assert_eq!(ic.cycle_balance(child), 1_000_000_000_000);
    // An invalid module is refused by install_code, with the reason.
    let refused: Result<Principal, String> = ic
        .update(
            factory,
            ALICE,
            "create_and_install",
            (Vec::<u8>::new(), Vec::<u8>::new(), 0u128, ALICE),
        )
        .unwrap();
    let reason = refused.unwrap_err();
    assert!(
        reason.contains("install_code") && reason.contains("invalid Wasm module"),
        "{reason}"
    );
}

#[test]
fn raw_rand_is_deterministic_per_seed() {
    let wasm = fixture_or_skip!("fixture_calls");
    let (mut ic, ids) = setup(&wasm, 1);
    let first: Result<Vec<u8>, String> = ic.update(ids[0], ALICE, "random_bytes", ()).unwrap();
    let second: Result<Vec<u8>, String> = ic.update(ids[0], ALICE, "random_bytes", ()).unwrap();
    let (first, second) = (first.unwrap(), second.unwrap());
    assert_eq!(first.len(), 32);
    assert_ne!(first, second);
    let (mut again, ids) = setup(&wasm, 1);
    let replay: Result<Vec<u8>, String> = again.update(ids[0], ALICE, "random_bytes", ()).unwrap();
    assert_eq!(replay.unwrap(), first);
}
