//! The shared operations layer, through the real wasm of every OHMS canister: caller checks,
//! administrators, pause, audit log, `/metrics`, pagination, install arguments, upgrades and
//! hostile Candid.

use candid::{CandidType, Deserialize, Principal, Reserved};
use ohms_integration_tests::{CANISTERS, Suite, controller, encode, user, wasm};
use ohms_types::{
    AuditEntry, Error, HttpRequest, HttpResponse, InitArgs, InstallArgs, OpsStatus, Page, Paged,
    Siblings, UpgradeArgs,
};

type Unit = Result<(), Error>;

/// Everything a caller could have changed, read as the controller. The canister version is left
/// out: the IC increments it on every update execution, refused or not.
#[derive(Debug, PartialEq)]
struct Snapshot {
    status: OpsStatus,
    admins: Paged<Principal>,
    audit: Paged<AuditEntry>,
}

fn snapshot(suite: &mut Suite, canister: Principal) -> Snapshot {
    let admins: Result<Paged<Principal>, Error> =
        suite.query(canister, controller(), "list_admins", (Page::default(),));
    let audit: Result<Paged<AuditEntry>, Error> =
        suite.query(canister, controller(), "audit_log", (Page::default(),));
    let status: OpsStatus = suite.query(canister, controller(), "ops_status", ());
    Snapshot {
        status: OpsStatus {
            canister_version: 0,
            ..status
        },
        admins: admins.unwrap(),
        audit: audit.unwrap(),
    }
}

fn get(suite: &mut Suite, canister: Principal, url: &str) -> HttpResponse {
    let request = HttpRequest {
        method: "GET".into(),
        url: url.into(),
        headers: vec![],
        body: vec![],
    };
    suite.query(canister, Principal::anonymous(), "http_request", (request,))
}

#[test]
fn anonymous_callers_are_refused_and_change_nothing() {
    let mut suite = Suite::deploy();
    let anonymous = Principal::anonymous();
    for (name, canister) in suite.canisters() {
        let before = snapshot(&mut suite, canister);
        let add: Unit = suite.update(canister, anonymous, "add_admin", (user("mallory"),));
        let remove: Unit = suite.update(canister, anonymous, "remove_admin", (controller(),));
        let pause: Unit = suite.update(canister, anonymous, "pause", ("mine now",));
        let unpause: Unit = suite.update(canister, anonymous, "unpause", ());
        let clear_lock: Unit = suite.update(canister, anonymous, "clear_lock", (user("alice"),));
        let admins: Result<Paged<Principal>, Error> =
            suite.query(canister, anonymous, "list_admins", (Page::default(),));
        let audit: Result<Paged<AuditEntry>, Error> =
            suite.query(canister, anonymous, "audit_log", (Page::default(),));
        for (method, result) in [
            ("add_admin", add),
            ("remove_admin", remove),
            ("pause", pause),
            ("unpause", unpause),
            ("clear_lock", clear_lock),
        ] {
            assert_eq!(result, Err(Error::Anonymous), "{name}.{method}");
        }
        assert_eq!(admins, Err(Error::Anonymous), "{name}.list_admins");
        assert_eq!(audit, Err(Error::Anonymous), "{name}.audit_log");
        assert_eq!(
            snapshot(&mut suite, canister),
            before,
            "{name}: a refused call changed state"
        );
    }
}

#[test]
fn admin_methods_refuse_users_directly_and_through_a_canister() {
    let mut suite = Suite::deploy();
    let relay = suite.install_fixture("relay");
    let (alice, bob) = (user("alice"), user("bob"));
    for (name, canister) in suite.canisters() {
        let before = snapshot(&mut suite, canister);
        for (method, arg) in [("add_admin", alice), ("clear_lock", bob)] {
            let direct: Unit = suite.update(canister, alice, method, (arg,));
            assert!(
                matches!(direct, Err(Error::NotAuthorized { .. })),
                "{name}.{method}: {direct:?}"
            );
        }

        // A canister caller never passes through inspect_message: the method itself must refuse.
        let relayed: Result<Vec<u8>, String> = suite.update(
            relay,
            alice,
            "relay",
            (canister, "pause".to_string(), encode(&"relayed")),
        );
        let relayed: Unit =
            candid::decode_one(&relayed.expect("the call reaches the canister")).unwrap();
        assert!(
            matches!(relayed, Err(Error::NotAuthorized { .. })),
            "{name}: {relayed:?}"
        );
        assert_eq!(
            snapshot(&mut suite, canister),
            before,
            "{name}: a refused call changed state"
        );

        // An added administrator acts until removed; controllers stay administrators.
        let added: Unit = suite.update(canister, controller(), "add_admin", (bob,));
        assert_eq!(added, Ok(()));
        assert_eq!(
            suite.update::<_, Unit>(canister, bob, "pause", ("maintenance",)),
            Ok(())
        );
        assert_eq!(
            suite.update::<_, Unit>(canister, bob, "unpause", ()),
            Ok(())
        );
        assert_eq!(
            suite.update::<_, Unit>(canister, controller(), "remove_admin", (bob,)),
            Ok(())
        );
        let after_removal: Unit = suite.update(canister, bob, "pause", ("again",));
        assert!(
            matches!(after_removal, Err(Error::NotAuthorized { .. })),
            "{name}: {after_removal:?}"
        );
        let status: OpsStatus = suite.query(canister, controller(), "ops_status", ());
        assert!(!status.paused);
    }
}

#[test]
fn pause_shows_in_status_audit_log_and_metrics() {
    let mut suite = Suite::deploy();
    for (name, canister) in suite.canisters() {
        assert_eq!(
            suite.update::<_, Unit>(canister, controller(), "pause", ("ledger incident",)),
            Ok(())
        );
        let status: OpsStatus = suite.query(canister, controller(), "ops_status", ());
        assert!(status.paused);
        assert_eq!(status.pause_reason.as_deref(), Some("ledger incident"));
        let again: Unit = suite.update(canister, controller(), "pause", ("twice",));
        assert!(
            matches!(again, Err(Error::InvalidState { .. })),
            "{name}: {again:?}"
        );

        let metrics = String::from_utf8(get(&mut suite, canister, "/metrics").body).unwrap();
        assert!(
            metrics.lines().any(|l| l.starts_with("paused 1 ")),
            "{name}:\n{metrics}"
        );

        let log: Result<Paged<AuditEntry>, Error> =
            suite.query(canister, controller(), "audit_log", (Page::default(),));
        let last = log.unwrap().items.pop().unwrap();
        assert_eq!((last.method.as_str(), last.caller), ("pause", controller()));
        assert!(last.summary.contains("ledger incident"));
        assert_eq!(
            suite.update::<_, Unit>(canister, controller(), "unpause", ()),
            Ok(())
        );
    }
}

#[test]
fn metrics_are_served_uncached_and_other_paths_are_not_found() {
    let mut suite = Suite::deploy();
    for (name, canister) in suite.canisters() {
        let response = get(&mut suite, canister, "/metrics");
        assert_eq!(response.status_code, 200, "{name}");
        assert!(
            response
                .headers
                .contains(&("Cache-Control".into(), "no-store".into())),
            "{name}"
        );
        let body = String::from_utf8(response.body).unwrap();
        for metric in [
            "cycle_balance",
            "stable_memory_bytes",
            "heap_memory_bytes",
            &format!("{name}_canister_version"),
        ] {
            let line = body
                .lines()
                .find(|l| l.starts_with(&format!("{metric} ")))
                .unwrap_or_else(|| panic!("{name}: no {metric} in\n{body}"));
            let value: f64 = line.split_whitespace().nth(1).unwrap().parse().unwrap();
            assert!(value > 0.0, "{name}: {line}");
        }
        assert_eq!(
            get(&mut suite, canister, "/admin").status_code,
            404,
            "{name}"
        );
    }
}

#[test]
fn pages_are_capped_whatever_the_caller_asks() {
    let mut suite = Suite::deploy();
    let canister = suite.id("economics");
    for n in 0..120u32 {
        let added: Unit = suite.update(
            canister,
            controller(),
            "add_admin",
            (user(&format!("admin-{n}")),),
        );
        added.unwrap();
    }
    let all = Page {
        start: 0,
        limit: u32::MAX,
    };
    let reply = suite
        .env
        .query_call(canister, controller(), "list_admins", encode(&all))
        .unwrap();
    assert!(reply.len() < 2 * 1024 * 1024);
    let admins: Result<Paged<Principal>, Error> = candid::decode_one(&reply).unwrap();
    let admins = admins.unwrap();
    assert_eq!(
        (admins.items.len() as u32, admins.total, admins.next_start),
        (Page::MAX_LIMIT, 120, Some(100))
    );
    let audit: Result<Paged<AuditEntry>, Error> =
        suite.query(canister, controller(), "audit_log", (all,));
    assert_eq!(audit.unwrap().items.len() as u32, Page::MAX_LIMIT);
}

#[test]
fn mismatched_install_arguments_are_refused() {
    let mut suite = Suite::deploy();
    let fresh = suite
        .env
        .create_canister_with_controllers(vec![controller()]);
    suite
        .env
        .add_cycles(fresh, ohms_integration_tests::INITIAL_CYCLES);
    let upgrade_arg = encode(&InstallArgs::Upgrade(None));
    let err = suite
        .env
        .install_canister(fresh, wasm("model_repo"), upgrade_arg, Some(controller()))
        .unwrap_err();
    assert!(
        err.reject_message.contains("install argument mismatch"),
        "{err}"
    );

    for name in CANISTERS {
        let canister = suite.id(name);
        let before = snapshot(&mut suite, canister);
        let err = suite
            .upgrade(name, Some(InstallArgs::Init(InitArgs::default())))
            .unwrap_err();
        assert!(
            err.to_string().contains("install argument mismatch"),
            "{name}: {err}"
        );
        assert_eq!(
            snapshot(&mut suite, canister),
            before,
            "{name}: a refused upgrade changed state"
        );
    }
}

#[test]
fn upgrades_keep_admins_audit_log_pause_and_siblings() {
    let mut suite = Suite::deploy();
    for name in CANISTERS {
        let canister = suite.id(name);
        for admin in ["ann", "ben", "cho"] {
            suite
                .update::<_, Unit>(canister, controller(), "add_admin", (user(admin),))
                .unwrap();
        }
        suite
            .update::<_, Unit>(canister, controller(), "pause", ("upgrade window",))
            .unwrap();
        let before = snapshot(&mut suite, canister);

        suite.upgrade(name, None).unwrap();
        let after = snapshot(&mut suite, canister);
        assert_eq!(after.admins, before.admins, "{name}");
        assert_eq!(
            after.audit.items[..before.audit.items.len()],
            before.audit.items[..],
            "{name}: audit history changed"
        );
        assert_eq!(after.audit.items.last().unwrap().method, "upgrade");
        assert!(
            after.status.paused && after.status.siblings == suite.siblings,
            "{name}: {:?}",
            after.status
        );
        let version: OpsStatus = suite.query(canister, controller(), "ops_status", ());
        assert!(
            version.canister_version > 1,
            "{name}: an upgrade increments the canister version"
        );

        let new_economics = suite.env.create_canister();
        let moved = Siblings {
            economics: Some(new_economics),
            ..suite.siblings.clone()
        };
        let arg = InstallArgs::Upgrade(Some(UpgradeArgs {
            siblings: Some(moved.clone()),
        }));
        suite.upgrade(name, Some(arg)).unwrap();
        let again = snapshot(&mut suite, canister);
        assert_eq!(again.status.siblings, moved, "{name}");
        assert_eq!(again.admins, before.admins, "{name}");
        assert!(again.status.paused, "{name}");
        assert_eq!(
            again.audit.total,
            before.audit.total + 3,
            "{name}: upgrade, siblings, upgrade"
        );
    }
}

#[test]
fn untrustworthy_siblings_are_refused_at_install_and_upgrade() {
    let mut suite = Suite::deploy();
    let fresh = suite
        .env
        .create_canister_with_controllers(vec![controller()]);
    suite
        .env
        .add_cycles(fresh, ohms_integration_tests::INITIAL_CYCLES);
    let anonymous_economics = InstallArgs::Init(InitArgs {
        admins: vec![],
        siblings: Siblings {
            economics: Some(Principal::anonymous()),
            ..suite.siblings.clone()
        },
    });
    let err = suite
        .env
        .install_canister(
            fresh,
            wasm("model_repo"),
            encode(&anonymous_economics),
            Some(controller()),
        )
        .unwrap_err();
    assert!(
        err.reject_message
            .contains("invalid argument `siblings.economics`"),
        "{err}"
    );

    let economics = suite.id("economics");
    let coordinator = suite.id("coordinator");
    let before = snapshot(&mut suite, economics);
    for (siblings, field) in [
        (
            Siblings {
                model_repo: Some(Principal::management_canister()),
                ..Default::default()
            },
            "siblings.model_repo",
        ),
        (
            // Economics' own id in the coordinator's slot.
            Siblings {
                coordinator: Some(economics),
                ..Default::default()
            },
            "siblings.coordinator",
        ),
        (
            Siblings {
                agent_factory: Some(coordinator),
                coordinator: Some(coordinator),
                ..Default::default()
            },
            "siblings.coordinator",
        ),
        (
            Siblings {
                agent_factory: Some(user("mallory")),
                ..Default::default()
            },
            "siblings.agent_factory",
        ),
    ] {
        let arg = InstallArgs::Upgrade(Some(UpgradeArgs {
            siblings: Some(siblings.clone()),
        }));
        let err = suite.upgrade("economics", Some(arg)).unwrap_err();
        assert!(
            err.to_string()
                .contains(&format!("invalid argument `{field}`")),
            "{siblings:?}: {err}"
        );
        assert_eq!(
            snapshot(&mut suite, economics),
            before,
            "{siblings:?}: a refused upgrade changed state"
        );
    }
}

/// `ops_probe`'s report of decoding one argument.
#[derive(CandidType, Deserialize, Debug)]
struct DecodeCost {
    instructions: u64,
    headers: Option<u64>,
    error: Option<String>,
}

#[test]
fn skipped_data_is_refused_cheaply_with_a_typed_error() {
    /// `Page` with a huge field the canister does not know: tiny on the wire, costly to skip.
    /// ic-cdk's default decoder refuses it too, by its skipping quota.
    #[derive(CandidType)]
    struct PaddedPage {
        start: u64,
        limit: u32,
        padding: Vec<Reserved>,
    }
    let mut suite = Suite::deploy();
    let hostile = encode(&PaddedPage {
        start: 0,
        limit: 10,
        padding: vec![Reserved; 50_000_000],
    });
    assert!(hostile.len() < 100);
    for (name, canister) in suite.canisters() {
        let reply = suite
            .env
            .query_call(canister, controller(), "list_admins", hostile.clone())
            .unwrap_or_else(|err| panic!("{name}: {err}"));
        let refused: Result<Paged<Principal>, Error> = candid::decode_one(&reply).unwrap();
        match refused {
            Err(Error::InvalidArgument { field, reason }) => {
                assert_eq!(field, "page", "{name}");
                // Skipped data weighs 50 times against the decoding quota: that one runs out first.
                assert!(
                    reason.contains("cost exceeds the limit"),
                    "{name}: {reason}"
                );
            }
            other => panic!("{name}: {other:?}"),
        }
        match suite.env.last_call_instructions() {
            Some(used) => {
                eprintln!("{name}: skipped padding refused in {used} instructions");
                assert!(
                    used < 5_000_000,
                    "{name}: refusing the padding took {used} instructions"
                );
            }
            None => eprintln!("{name}: refused (this backend does not report instructions)"),
        }
    }
}

#[test]
fn tiny_elements_that_ic_cdks_decoder_accepts_are_refused_by_the_decoding_quota() {
    let mut suite = Suite::deploy();
    let probe = suite.install_fixture("ops_probe");
    // 100,000 empty header pairs: 200 KB on the wire (a tenth of the IC's 2 MiB), 1,300,000
    // units of decoding work against ohms_ops::decode's quota of 100,000.
    const PAIRS: u64 = 100_000;
    let hostile = encode(&HttpRequest {
        method: "GET".into(),
        url: "/metrics".into(),
        headers: vec![(String::new(), String::new()); PAIRS as usize],
        body: vec![],
    });
    assert!(hostile.len() < 256 * 1024, "{} bytes", hostile.len());
    let anonymous = Principal::anonymous();

    // ic-cdk's default decoder, run by a plain `#[query]`, decodes all of it...
    let reply = suite
        .env
        .query_call(probe, anonymous, "decode_default", hostile.clone())
        .expect("ic-cdk's default decoder accepts the argument");
    let default: DecodeCost = candid::decode_one(&reply).unwrap();
    assert_eq!(default.headers, Some(PAIRS));
    // ...ohms_ops::decode stops at its quota, measured the same way inside the canister.
    let ours: DecodeCost = suite.query(probe, anonymous, "decode_ohms", (hostile.clone(),));
    let error = ours.error.as_deref().unwrap_or_default();
    assert!(
        error.contains("Decoding cost exceeds the limit"),
        "{ours:?}"
    );
    eprintln!(
        "{PAIRS} empty header pairs ({} bytes): ic-cdk's default decoder accepts them in {} instructions; \
         ohms_ops::decode refuses them in {}",
        hostile.len(),
        default.instructions,
        ours.instructions
    );
    assert!(
        ours.instructions * 5 < default.instructions,
        "the quota did not cut the work: {} against {}",
        ours.instructions,
        default.instructions
    );

    // Every OHMS canister answers with a typed refusal naming the argument: `http_request`
    // answers the HTTP gateway, so it is 400 Bad Request.
    for (name, canister) in suite.canisters() {
        let reply = suite
            .env
            .query_call(canister, anonymous, "http_request", hostile.clone())
            .unwrap_or_else(|err| panic!("{name}: {err}"));
        let response: HttpResponse = candid::decode_one(&reply).unwrap();
        let body = String::from_utf8_lossy(&response.body);
        assert_eq!(response.status_code, 400, "{name}: {body}");
        assert!(
            body.contains("invalid argument `request`")
                && body.contains("Decoding cost exceeds the limit"),
            "{name}: {body}"
        );
        match suite.env.last_call_instructions() {
            Some(used) => {
                eprintln!("{name}: http_request refused them in {used} instructions (whole call)");
                assert!(
                    used * 5 < default.instructions,
                    "{name}: refusing took {used} instructions"
                );
            }
            None => eprintln!("{name}: refused (this backend does not report instructions)"),
        }
    }
}

#[test]
fn bulk_endpoints_take_arguments_up_to_the_ics_limit() {
    let mut suite = Suite::deploy();
    let probe = suite.install_fixture("ops_probe");
    let chunk = HttpRequest {
        method: "PUT".into(),
        url: "/chunk".into(),
        headers: vec![],
        body: vec![7; 1_900 * 1024],
    };
    let length: Result<u64, Error> =
        suite.query(probe, controller(), "body_length", (chunk.clone(),));
    assert_eq!(length, Ok(chunk.body.len() as u64));
    // The same argument is over an ordinary endpoint's quota.
    let response: HttpResponse = suite.query(probe, controller(), "http_request", (chunk,));
    assert_eq!(response.status_code, 400);
}
