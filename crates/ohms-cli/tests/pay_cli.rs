//! `ohms local deploy` and `ohms pay …` as a user runs them: the local network's ICP ledger
//! funds the demo user, who approves economics and subscribes (ICRC-2); the balances, the
//! subscription and the receipt are printed and checked by the command itself.

mod cli;

use cli::{deploy_inputs, ohms, scratch, text};

#[test]
fn the_demo_user_approves_economics_subscribes_and_gets_a_receipt() {
    let Some(wasm_dir) = deploy_inputs() else {
        return;
    };
    let dir = scratch("pay");
    let state = dir.join("network.cbor");
    let state = state.to_str().unwrap();

    let o = ohms(&[
        "local",
        "deploy",
        "--state",
        state,
        "--wasm-dir",
        wasm_dir.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let deployed = text(&o.stdout);
    assert!(deployed.contains("icp_ledger "), "{deployed}");

    let o = ohms(&["pay", "--local-state", state, "balances"]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert!(
        text(&o.stdout).contains("100.00000000 ICP (10000000000 e8s)"),
        "{}",
        text(&o.stdout)
    );

    let o = ohms(&[
        "pay",
        "--local-state",
        state,
        "subscribe",
        "--tier",
        "basic",
        "--months",
        "1",
    ]);
    let out = text(&o.stdout);
    assert!(o.status.success(), "{out}{}", text(&o.stderr));
    assert!(out.contains("subscription: Basic, active"), "{out}");
    assert!(out.contains("ICRC-2, completed, ledger block"), "{out}");
    assert!(out.contains("checked: "), "{out}");

    let o = ohms(&["pay", "--local-state", state, "receipts"]);
    let out = text(&o.stdout);
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert!(out.starts_with("1 receipt(s)"), "{out}");

    // Refused before anything is approved or charged.
    let o = ohms(&[
        "pay",
        "--local-state",
        state,
        "subscribe",
        "--tier",
        "basic",
        "--months",
        "13",
    ]);
    assert!(!o.status.success());

    let _ = std::fs::remove_dir_all(&dir);
}
