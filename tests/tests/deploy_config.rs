//! The install arguments `dfx.json` and `icp.yaml` give each canister are what its `.did` says
//! `init` takes: a deployment with either tool must not fail on its first install.

use std::path::Path;

use candid_parser::utils::{CandidSource, instantiate_candid};
use ohms_integration_tests::CANISTERS;

fn root() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
}

/// Checks `text` against `canister`'s init argument types and returns the encoded argument.
fn encode_against_did(canister: &str, text: &str) -> Vec<u8> {
    let did = std::fs::read_to_string(root().join(format!("candid/{canister}.did"))).unwrap();
    let (init_types, (env, _)) = instantiate_candid(CandidSource::Text(&did)).unwrap();
    let args = candid_parser::parse_idl_args(text)
        .unwrap_or_else(|err| panic!("{canister}: the install argument does not parse: {err}"));
    args.to_bytes_with_types(&env, &init_types)
        .unwrap_or_else(|err| panic!("{canister}: {text} is not the .did's init argument: {err}"))
}

/// icp-cli encodes `init_args` from the text alone (a bare `10_000` is a `nat`): the bytes must
/// still decode as the `.did`'s init argument, which is what the canister does.
fn check_untyped_encoding(canister: &str, text: &str) {
    let did = std::fs::read_to_string(root().join(format!("candid/{canister}.did"))).unwrap();
    let (init_types, (env, _)) = instantiate_candid(CandidSource::Text(&did)).unwrap();
    let untyped = candid_parser::parse_idl_args(text)
        .unwrap()
        .to_bytes()
        .unwrap();
    candid::IDLArgs::from_bytes_with_types(&untyped, &env, &init_types).unwrap_or_else(|err| {
        panic!(
            "{canister}: {text} encoded without types does not decode as the init argument: {err}"
        )
    });
}

fn dfx_init_args() -> Vec<(String, String)> {
    let dfx: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(root().join("dfx.json")).unwrap()).unwrap();
    CANISTERS
        .iter()
        .map(|name| {
            let arg = dfx["canisters"][name]["init_arg"]
                .as_str()
                .unwrap_or_else(|| panic!("dfx.json: {name} has no init_arg"));
            (name.to_string(), arg.to_string())
        })
        .collect()
}

/// `init_args: "…"` of each `- name: X` entry (the file's own simple layout).
fn icp_init_args() -> Vec<(String, String)> {
    let yaml = std::fs::read_to_string(root().join("icp.yaml")).unwrap();
    let mut args = Vec::new();
    let mut current = None;
    for line in yaml.lines() {
        let line = line.trim();
        if let Some(name) = line.strip_prefix("- name: ") {
            current = Some(name.to_string());
        } else if let Some(quoted) = line.strip_prefix("init_args: ") {
            let text = quoted
                .strip_prefix('"')
                .and_then(|q| q.strip_suffix('"'))
                .expect("a double-quoted init_args")
                .replace("\\\"", "\"");
            args.push((current.clone().expect("init_args under a canister"), text));
        }
    }
    args
}

#[test]
fn deploy_configs_install_every_canister_with_its_init_argument() {
    for (source, args) in [("dfx.json", dfx_init_args()), ("icp.yaml", icp_init_args())] {
        let names: Vec<&str> = args.iter().map(|(name, _)| name.as_str()).collect();
        assert_eq!(names, CANISTERS, "{source}: one entry per canister");
        for (name, text) in &args {
            let bytes = encode_against_did(name, text);
            if source == "icp.yaml" {
                check_untyped_encoding(name, text);
            }
            if name == "economics" {
                let decoded: ohms_types::EconomicsInstallArgs = candid::decode_one(&bytes).unwrap();
                let ohms_types::EconomicsInstallArgs::Init(init) = decoded else {
                    panic!("{source}: economics is installed with Init")
                };
                assert_eq!(
                    init.ledger.to_text(),
                    "ryjl3-tyaaa-aaaaa-aaaba-cai",
                    "{source}: economics takes payments on the mainnet ICP ledger"
                );
            } else {
                let _: ohms_types::InstallArgs = candid::decode_one(&bytes).unwrap();
            }
        }
    }
}
