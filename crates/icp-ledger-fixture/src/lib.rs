//! DFINITY's ICP ledger module, as the project's tests, benchmarks and local network install it.
//!
//! The module is the real ledger (`../shared/fixtures/icp-ledger.wasm.gz`, the one that holds
//! ICP on mainnet as `ryjl3-tyaaa-aaaaa-aaaba-cai`); this crate only finds it and builds its init
//! argument: a minting account, funded accounts, the fee, ICRC-2 switched on, and no archive
//! unless asked for (the ledger then creates archive canisters itself, paying for them from its
//! own cycles, as on mainnet).

use std::path::{Path, PathBuf};

use candid::{CandidType, Principal};
use ic_ledger_types::{AccountIdentifier, DEFAULT_SUBACCOUNT, Subaccount, Tokens};
use serde::Deserialize;

/// The ICP ledger's fee on mainnet, in e8s.
pub const MAINNET_FEE_E8S: u64 = 10_000;

/// Environment variable naming another copy of the module.
pub const WASM_ENV: &str = "OHMS_ICP_LEDGER_WASM";

/// Where the module is: `$OHMS_ICP_LEDGER_WASM`, else `shared/fixtures/` beside the workspace.
pub fn wasm_path() -> PathBuf {
    if let Some(path) = std::env::var_os(WASM_ENV) {
        return PathBuf::from(path);
    }
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/fixtures/icp-ledger.wasm.gz")
}

/// The gzipped module's bytes (the IC installs gzipped modules as they are).
pub fn wasm() -> Result<Vec<u8>, String> {
    let path = wasm_path();
    std::fs::read(&path).map_err(|err| {
        format!(
            "cannot read the ICP ledger module at {}: {err} (set {WASM_ENV} to its path)",
            path.display()
        )
    })
}

/// An account to fund at install: owner, subaccount, e8s.
#[derive(Debug, Clone, Copy)]
pub struct Funded {
    pub owner: Principal,
    pub subaccount: Option<[u8; 32]>,
    pub e8s: u64,
}

impl Funded {
    pub fn main_account(owner: Principal, e8s: u64) -> Self {
        Self {
            owner,
            subaccount: None,
            e8s,
        }
    }
}

/// How to install the ledger.
#[derive(Debug, Clone)]
pub struct LedgerSetup {
    /// The minting account's owner (transfers from it mint, transfers to it burn).
    pub minting_owner: Principal,
    pub funded: Vec<Funded>,
    pub fee_e8s: u64,
    /// Move old blocks to archive canisters (none when absent).
    pub archive: Option<Archiving>,
}

/// When the ledger archives: once it holds `trigger_threshold` blocks, it moves the oldest
/// `num_blocks_to_archive` to an archive canister it creates (controlled by `controller`).
#[derive(Debug, Clone, Copy)]
pub struct Archiving {
    pub trigger_threshold: u64,
    pub num_blocks_to_archive: u64,
    pub controller: Principal,
    /// Cycles the ledger gives each archive it creates.
    pub cycles_for_archive_creation: u64,
}

/// The legacy account identifier of an ICRC-1 account, as the ledger's text form (hex).
pub fn account_id_hex(owner: Principal, subaccount: Option<[u8; 32]>) -> String {
    let subaccount = subaccount.map(Subaccount).unwrap_or(DEFAULT_SUBACCOUNT);
    AccountIdentifier::new(&owner, &subaccount).to_hex()
}

/// The init argument (`LedgerCanisterPayload::Init`), Candid-encoded.
pub fn init_arg(setup: &LedgerSetup) -> Vec<u8> {
    let init = LedgerCanisterPayload::Init(InitArgs {
        minting_account: account_id_hex(setup.minting_owner, None),
        icrc1_minting_account: Some(Icrc1Account {
            owner: setup.minting_owner,
            subaccount: None,
        }),
        initial_values: setup
            .funded
            .iter()
            .map(|f| {
                (
                    account_id_hex(f.owner, f.subaccount),
                    Tokens::from_e8s(f.e8s),
                )
            })
            .collect(),
        max_message_size_bytes: None,
        transaction_window: None,
        archive_options: setup.archive.map(|archive| ArchiveOptions {
            trigger_threshold: archive.trigger_threshold,
            num_blocks_to_archive: archive.num_blocks_to_archive,
            node_max_memory_size_bytes: None,
            max_message_size_bytes: None,
            controller_id: archive.controller,
            more_controller_ids: None,
            cycles_for_archive_creation: Some(archive.cycles_for_archive_creation),
            max_transactions_per_response: None,
        }),
        send_whitelist: vec![],
        transfer_fee: Some(Tokens::from_e8s(setup.fee_e8s)),
        token_symbol: Some("ICP".into()),
        token_name: Some("Internet Computer".into()),
        feature_flags: Some(FeatureFlags { icrc2: true }),
    });
    candid::encode_one(init).expect("the ledger's init argument encodes")
}

// The part of the ledger's init interface this crate sets (icp-ledger.did, `InitArgs`).

#[derive(CandidType, Deserialize)]
enum LedgerCanisterPayload {
    Init(InitArgs),
}

#[derive(CandidType, Deserialize)]
struct InitArgs {
    minting_account: String,
    icrc1_minting_account: Option<Icrc1Account>,
    initial_values: Vec<(String, Tokens)>,
    max_message_size_bytes: Option<u64>,
    transaction_window: Option<Duration>,
    archive_options: Option<ArchiveOptions>,
    send_whitelist: Vec<Principal>,
    transfer_fee: Option<Tokens>,
    token_symbol: Option<String>,
    token_name: Option<String>,
    feature_flags: Option<FeatureFlags>,
}

#[derive(CandidType, Deserialize)]
struct ArchiveOptions {
    trigger_threshold: u64,
    num_blocks_to_archive: u64,
    node_max_memory_size_bytes: Option<u64>,
    max_message_size_bytes: Option<u64>,
    controller_id: Principal,
    more_controller_ids: Option<Vec<Principal>>,
    cycles_for_archive_creation: Option<u64>,
    max_transactions_per_response: Option<u64>,
}

#[derive(CandidType, Deserialize)]
struct Icrc1Account {
    owner: Principal,
    subaccount: Option<[u8; 32]>,
}

#[derive(CandidType, Deserialize)]
struct Duration {
    secs: u64,
    nanos: u32,
}

#[derive(CandidType, Deserialize)]
struct FeatureFlags {
    icrc2: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn account_ids_are_the_ledgers_text_form() {
        let hex = account_id_hex(Principal::anonymous(), None);
        assert_eq!(hex.len(), 64);
        assert!(hex.bytes().all(|b| b.is_ascii_hexdigit()));
        assert_ne!(hex, account_id_hex(Principal::anonymous(), Some([1; 32])));
    }

    #[test]
    fn the_module_is_where_the_fixtures_readme_says() {
        match wasm() {
            Ok(bytes) => assert_eq!(&bytes[..3], &[0x1f, 0x8b, 0x08], "gzipped"),
            Err(err) if std::env::var_os("CI").is_none() => eprintln!("skipped: {err}"),
            Err(err) => panic!("{err}"),
        }
    }
}
