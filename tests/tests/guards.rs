//! The guards of state-changing user methods, through the wasm of the `ops_probe` test canister
//! (built on ohms-ops like every OHMS canister; none of those has a user method yet): the
//! per-principal lock across an await, its release when a callback traps, an administrator
//! clearing a stale lock, and the pause.

use candid::{CandidType, Deserialize, Principal};
use ohms_integration_tests::{Suite, controller, user};
use ohms_types::{AuditEntry, Error, Page, Paged};

type Unit = Result<(), Error>;

/// `ops_probe`'s `Fault`: where `locked_call` fails on purpose.
#[derive(CandidType, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
enum Fault {
    None,
    TrapAfterReply,
    TrapInCleanup,
}

fn probe() -> (Suite, Principal) {
    let mut suite = Suite::deploy();
    let probe = suite.install_fixture("ops_probe");
    (suite, probe)
}

fn locked_call(suite: &mut Suite, probe: Principal, caller: Principal) -> Unit {
    suite.update(probe, caller, "locked_call", (Fault::None,))
}

/// Runs `locked_call` with a fault that traps in the callback: the call is rejected.
fn faulted_call(suite: &mut Suite, probe: Principal, caller: Principal, fault: Fault) {
    let err = suite
        .env
        .update::<_, Unit>(probe, caller, "locked_call", (fault,))
        .unwrap_err();
    assert!(
        err.to_string().contains("injected fault after the reply"),
        "{fault:?}: {err}"
    );
}

#[test]
fn one_call_per_principal_holds_the_lock_across_its_await() {
    let (mut suite, probe) = probe();
    let (alice, bob) = (user("alice"), user("bob"));
    let arg = candid::encode_one(Fault::None).unwrap();
    // Submitted together, so both start before either callback runs.
    let calls: Vec<_> = [alice, alice, bob]
        .into_iter()
        .map(|caller| {
            suite
                .env
                .submit_call(probe, caller, "locked_call", arg.clone())
                .unwrap()
        })
        .collect();
    let results: Vec<Unit> = calls
        .into_iter()
        .map(|call| candid::decode_one(&suite.env.await_call(call).unwrap()).unwrap())
        .collect();
    assert_eq!(results, vec![Ok(()), Err(Error::Busy), Ok(())]);
    assert_eq!(
        locked_call(&mut suite, probe, alice),
        Ok(()),
        "a later call proceeds"
    );
}

#[test]
fn a_callback_that_traps_still_releases_the_lock() {
    let (mut suite, probe) = probe();
    let alice = user("alice");
    faulted_call(&mut suite, probe, alice, Fault::TrapAfterReply);
    // Not Busy: ic-cdk's cleanup callback dropped the call's future, and with it the lock.
    assert_eq!(locked_call(&mut suite, probe, alice), Ok(()));
}

#[test]
fn an_admin_clears_a_stale_lock_and_the_audit_log_records_it() {
    let (mut suite, probe) = probe();
    let (alice, bob) = (user("alice"), user("bob"));
    // The cleanup traps too, so the IC discards the lock's release: alice is locked out.
    faulted_call(&mut suite, probe, alice, Fault::TrapInCleanup);
    assert_eq!(locked_call(&mut suite, probe, alice), Err(Error::Busy));
    assert_eq!(locked_call(&mut suite, probe, bob), Ok(()), "only alice");

    let by_user: Unit = suite.update(probe, bob, "clear_lock", (alice,));
    assert!(
        matches!(by_user, Err(Error::NotAuthorized { .. })),
        "{by_user:?}"
    );
    let by_anonymous: Unit = suite.update(probe, Principal::anonymous(), "clear_lock", (alice,));
    assert_eq!(by_anonymous, Err(Error::Anonymous));
    assert_eq!(locked_call(&mut suite, probe, alice), Err(Error::Busy));

    let cleared: Unit = suite.update(probe, controller(), "clear_lock", (alice,));
    assert_eq!(cleared, Ok(()));
    let log: Result<Paged<AuditEntry>, Error> =
        suite.query(probe, controller(), "audit_log", (Page::default(),));
    let entry = log.unwrap().items.pop().unwrap();
    assert_eq!(
        (entry.method.as_str(), entry.caller),
        ("clear_lock", controller())
    );
    assert!(
        entry.summary.contains(&alice.to_text()),
        "{}",
        entry.summary
    );

    assert_eq!(locked_call(&mut suite, probe, alice), Ok(()));
    let again: Unit = suite.update(probe, controller(), "clear_lock", (alice,));
    assert!(matches!(again, Err(Error::NotFound { .. })), "{again:?}");
}

#[test]
fn state_changing_user_calls_are_refused_while_paused_and_for_anonymous() {
    let (mut suite, probe) = probe();
    let alice = user("alice");
    assert_eq!(
        locked_call(&mut suite, probe, Principal::anonymous()),
        Err(Error::Anonymous)
    );
    let paused: Unit = suite.update(probe, controller(), "pause", ("ledger incident",));
    paused.unwrap();
    assert_eq!(
        locked_call(&mut suite, probe, alice),
        Err(Error::Paused {
            reason: "ledger incident".into()
        })
    );
    let unpaused: Unit = suite.update(probe, controller(), "unpause", ());
    unpaused.unwrap();
    // The refused call took no lock.
    assert_eq!(locked_call(&mut suite, probe, alice), Ok(()));
}
